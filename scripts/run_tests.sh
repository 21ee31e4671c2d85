#!/usr/bin/env bash
# run_tests.sh BUILD_DIR: runs every unit test binary, the Python end-to-end
# suite and a short run of every fuzz target, then prints one summary line.
# Exits non-zero if anything failed. PYTEST_ARGS (default -x) replaces the
# options of the pytest step, e.g. PYTEST_ARGS="--durations=20" runs it all.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD_ABS="$PWD/$BUILD" ;; esac
export FASTCHAT_BIN="${BUILD_ABS:-$BUILD}/fastchat"
export FASTCHAT_MODEL="$(scripts/fetch_model.sh)"
export FASTCHAT_EMBED_MODEL="$(scripts/fetch_embed_model.sh)"
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
pass=0; fail=0; skip=0; failed=()

# A sanitized build (make DEBUG=1: ASan + UBSan) is told by its binary. Then
# every step runs sanitized code (test_kernels_isa.sh too, SANITIZE=1), and
# the sanitizers write their reports into $BUILD/logs/sanitizer/STEP/: a report
# from any process of a step fails it, also one from a server that a test
# stops with SIGTERM and whose exit status no test reads.
SANITIZE=0
grep -q __asan_init "$FASTCHAT_BIN" 2>/dev/null && SANITIZE=1
export SANITIZE
mkdir -p "$BUILD/logs"
SAN_DIR="$(cd "$BUILD/logs" && pwd)/sanitizer"

run() { # name, command...
    local name=$1; shift
    local log="$BUILD/logs/$name.log"
    mkdir -p "$(dirname "$log")"
    local t0=$SECONDS
    local san="$SAN_DIR/$name"
    rm -rf "$san"
    if [ $SANITIZE = 1 ]; then
        mkdir -p "$san"
        ASAN_OPTIONS="log_path=$san/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
        UBSAN_OPTIONS="log_path=$san/ubsan:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
            "$@" >"$log" 2>&1
    else
        "$@" >"$log" 2>&1
    fi
    local rc=$?
    if [ $SANITIZE = 1 ] && [ -n "$(ls -A "$san")" ]; then
        for f in "$san"/*; do echo "--- sanitizer report $f"; cat "$f"; done >>"$log"
        echo "sanitizer reports in $san" >>"$log"
        if [ $rc -eq 0 ] || [ $rc -eq 77 ]; then rc=1; fi
    fi
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)); printf 'PASS %-40s %4ds\n' "$name" $((SECONDS - t0))
    elif [ $rc -eq 77 ]; then # the test cannot run on this machine: said, not counted as passed
        skip=$((skip + 1)); printf 'SKIP %-40s %4ds (%s)\n' "$name" $((SECONDS - t0)) "$(tail -n 1 "$log")"
    else
        fail=$((fail + 1)); failed+=("$name"); printf 'FAIL %-40s %4ds (log: %s)\n' "$name" $((SECONDS - t0)) "$log"
        tail -n 30 "$log" | sed 's/^/    | /'
    fi
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && run "unit/$(basename "$t")" "$t"
done

# the kernels a narrower x86 target selects (no-ops where the CPU lacks it)
if grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    run "unit/test_kernels@haswell" scripts/test_kernels_isa.sh haswell "$BUILD"
    run "unit/test_kernels@alderlake" scripts/test_kernels_isa.sh alderlake "$BUILD"
    run "unit/test_kernels@skylake-avx512" scripts/test_kernels_isa.sh skylake-avx512 "$BUILD"
fi

if ls tests/py/test_*.py >/dev/null 2>&1; then
    run "pytest" .venv/bin/python -m pytest -q ${PYTEST_ARGS--x} tests/py
    grep -E '(passed|failed)' "$BUILD/logs/pytest.log" | tail -1 | sed 's/^/    pytest: /'
fi

# fuzz targets: independent, so as many at once as there are cores; each
# result is reported (in target order) when all have finished
fuzz_jobs=$(nproc 2>/dev/null || echo 2)
fuzz_names=()
for f in build/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus="build/fuzz/corpus-$name"
    mkdir -p "$corpus" "$BUILD/logs/fuzz"
    seeds=""; [ -d "tests/data/fuzz/$name" ] && seeds="tests/data/fuzz/$name"
    while [ "$(jobs -rp | wc -l)" -ge "$fuzz_jobs" ]; do wait -n || true; done
    ( t0=$SECONDS
      "$f" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -rss_limit_mb=2048 "$corpus" $seeds \
          >"$BUILD/logs/fuzz/$name.log" 2>&1
      echo "$? $((SECONDS - t0))" >"$BUILD/logs/fuzz/$name.rc" ) &
    fuzz_names+=("$name")
done
wait
for name in "${fuzz_names[@]}"; do
    read -r rc secs <"$BUILD/logs/fuzz/$name.rc"
    log="$BUILD/logs/fuzz/$name.log"
    if [ "$rc" = 0 ]; then
        pass=$((pass + 1)); printf 'PASS %-40s %4ds\n' "fuzz/$name" "$secs"
    else
        fail=$((fail + 1)); failed+=("fuzz/$name"); printf 'FAIL %-40s %4ds (log: %s)\n' "fuzz/$name" "$secs" "$log"
        tail -n 30 "$log" | sed 's/^/    | /'
    fi
done

echo
if [ $fail -gt 0 ]; then echo "failed: ${failed[*]}"; fi
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
