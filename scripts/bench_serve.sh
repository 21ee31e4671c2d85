#!/usr/bin/env bash
# bench_serve.sh [BIN_DIR]: serving speed through the HTTP API, FastChat-C's
# `fastchat serve` next to llama.cpp's `llama-server` on the same machine in
# the same run (part of `make bench`).
#
#   1. builds llama-server (scripts/build_llamacpp.sh, cached outside the tree;
#      the llama.cpp vendored in the llama-cpp-python sdist);
#   2. starts both servers on the default model, each with BENCH_THREADS
#      threads and room for the largest concurrency at once:
#        fastchat serve --threads T --limit-worker-concurrency C
#                       --kv-cache-tokens C*CTX --stream-interval 1
#        llama-server -t T -tb T --parallel C -c C*CTX -cb
#      (--stream-interval 1: one token per streamed chunk, as llama-server;
#      both keep their prompt/prefix caches, their defaults);
#   3. at each concurrency (1 4 16 64) runs `fastchat bench-serve` against
#      one server and then the other (the order alternates from level to
#      level): streaming chat completions with the same request on both, a
#      fixed prompt, max_tokens, temperature 0, a fixed seed and
#      "ignore_eos": true;
#   4. stops the servers (also on any exit) and writes the table, ours next to
#      llama-server with the ratios, to build/bench/serve.md
#      (bench/serve_report.py; raw figures in build/bench/serve/*.json).
#
# Knobs (environment):
#   BENCH_THREADS=2            threads for both servers
#   BENCH_SERVE_CLIENTS="1 4 16 64"   concurrency levels
#   BENCH_SERVE_REQ_MULT=3     requests per level = max(MULT*clients, MIN)
#   BENCH_SERVE_REQ_MIN=12
#   BENCH_SERVE_MAX_TOKENS=64  generated tokens per request
#   BENCH_SERVE_CTX=256        context per slot (KV cache = CTX * max clients)
#   BENCH_SERVE_PROMPT         the user message
#   BENCH_QUICK=1              levels 1 4 16, fewer requests, 32 tokens
#   BENCH_OURS_ONLY=1          do not build or run llama-server
#   BENCH_SERVE_LLAMA_ARGS     extra llama-server flags (e.g. "--poll 0")
#   BENCH_SERVE_MAX_S=60       no request starts after this many seconds of a run
#                              (bounds the time on a slow or busy machine)
#   BENCH_TIMEOUT=300          seconds before one bench-serve run is abandoned
#   BENCH_WAIT_QUIET=20        seconds to wait, before each run, for other work
#   BENCH_BUSY_PCT=15          on the machine to drop below this CPU percentage
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

BINDIR=${1:-build}
[ -d "$BINDIR" ] || BINDIR=$(dirname "$BINDIR") # a path to the binary works too
BIN="$BINDIR/fastchat"
OUT=build/bench
RAWDIR="$OUT/serve"
LOGS="$OUT/logs"
T=${BENCH_THREADS:-2}
TIMEOUT=${BENCH_TIMEOUT:-300}
MAXS=${BENCH_SERVE_MAX_S:-60}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    LEVELS=${BENCH_SERVE_CLIENTS:-1 4 16}; MULT=${BENCH_SERVE_REQ_MULT:-2}; MINREQ=${BENCH_SERVE_REQ_MIN:-4}
    MAXTOK=${BENCH_SERVE_MAX_TOKENS:-32}
else
    LEVELS=${BENCH_SERVE_CLIENTS:-1 4 16 64}; MULT=${BENCH_SERVE_REQ_MULT:-3}; MINREQ=${BENCH_SERVE_REQ_MIN:-12}
    MAXTOK=${BENCH_SERVE_MAX_TOKENS:-64}
fi
CTX=${BENCH_SERVE_CTX:-256}
PROMPT=${BENCH_SERVE_PROMPT:-Tell me a story with more than 1000 words.}
SEED=42
CMAX=1
for c in $LEVELS; do [ "$c" -gt "$CMAX" ] && CMAX=$c; done
mkdir -p "$RAWDIR" "$LOGS"
rm -f "$RAWDIR"/*.json
T0=$SECONDS

log() { echo "bench-serve: $*" >&2; }

if [ ! -x "$BIN" ]; then
    log "$BIN not built (run make first)"
    exit 1
fi

# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh
# CPU accounting, to tell how much other work ran during a measurement:
# busy and total ticks of the machine, ticks of one process (all threads),
# and ticks of this shell's finished children (bash's `times`).
sys_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }
pid_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
child_ticks() {
    times | awk -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" 'NR == 2 {
        s = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
        printf "%d\n", s * hz }'
}
# A TCP port nobody listens on (the kernel's pick; released before use).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---- servers are stopped on any exit ----
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_ready NAME PID URL SECONDS: until URL answers 200 (and, for a model
# list, lists a model), or the server dies, or time runs out.
wait_ready() {
    local name=$1 pid=$2 url=$3 limit=$4 i=0 body
    while [ $i -lt $((limit * 2)) ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited before it was ready"
            return 1
        fi
        if body=$(curl -sf --max-time 2 "$url" 2>/dev/null) && { [[ "$url" != */models ]] || [[ "$body" == *'"id"'* ]]; }; then
            return 0
        fi
        sleep 0.5; i=$((i + 1))
    done
    log "$name not ready after $limit s"
    return 1
}

MODEL=$(scripts/fetch_model.sh) || { log "no default model"; exit 1; }

# ---- llama-server ----
LL=""
if [ "${BENCH_OURS_ONLY:-0}" != 1 ]; then
    if LL=$(LLAMACPP_TARGETS="llama-server" scripts/build_llamacpp.sh 2>"$LOGS/build_llamacpp_server.log") &&
       [ -x "$LL/llama-server" ]; then
        log "llama-server in $LL ($(cat "$LL/.stamp" 2>/dev/null))"
    else
        log "llama-server did not build (log: $LOGS/build_llamacpp_server.log); only our figures follow"
        tail -n 20 "$LOGS/build_llamacpp_server.log" | sed 's/^/    | /' >&2
        LL=""
    fi
fi

# ---- start both ----
API=$(free_port); CTL=$(free_port); WRK=$(free_port)
while [ "$CTL" = "$API" ]; do CTL=$(free_port); done
while [ "$WRK" = "$API" ] || [ "$WRK" = "$CTL" ] || [ "$((WRK + 1))" = "$API" ] || [ "$((WRK + 1))" = "$CTL" ]; do
    WRK=$(free_port)
done
OURS_URL="http://127.0.0.1:$API"
log "starting fastchat serve on :$API (threads $T, $CMAX slots, KV $((CMAX * CTX)) tokens)"
"$BIN" serve --model-path "$MODEL" --host 127.0.0.1 --port "$API" --controller-port "$CTL" --worker-port "$WRK" \
    --threads "$T" --limit-worker-concurrency "$CMAX" --kv-cache-tokens $((CMAX * CTX)) --stream-interval 1 \
    >"$LOGS/serve_ours.log" 2>&1 </dev/null &
OURS_PID=$!
PIDS+=("$OURS_PID")
OURS_OK=1
wait_ready "fastchat serve" "$OURS_PID" "$OURS_URL/v1/models" 120 || {
    OURS_OK=0; tail -n 20 "$LOGS/serve_ours.log" | sed 's/^/    | /' >&2
}

LLAMA_OK=0
if [ -n "$LL" ]; then
    LPORT=$(free_port)
    while [ "$LPORT" = "$API" ] || [ "$LPORT" = "$CTL" ] || [ "$LPORT" = "$WRK" ] || [ "$LPORT" = "$((WRK + 1))" ]; do
        LPORT=$(free_port)
    done
    LLAMA_URL="http://127.0.0.1:$LPORT"
    # -cb: continuous batching (the default in this version; explicit for older ones)
    LARGS=(-m "$MODEL" --host 127.0.0.1 --port "$LPORT" -t "$T" -tb "$T" --parallel "$CMAX" -c $((CMAX * CTX)) -cb)
    # shellcheck disable=SC2206
    [ -n "${BENCH_SERVE_LLAMA_ARGS:-}" ] && LARGS+=($BENCH_SERVE_LLAMA_ARGS)
    "$LL/llama-server" --help 2>/dev/null | grep -q -- '--no-webui' && LARGS+=(--no-webui)
    log "starting llama-server on :$LPORT (${LARGS[*]:2})"
    "$LL/llama-server" "${LARGS[@]}" >"$LOGS/serve_llama.log" 2>&1 </dev/null &
    LLAMA_PID=$!
    PIDS+=("$LLAMA_PID")
    if wait_ready "llama-server" "$LLAMA_PID" "$LLAMA_URL/health" 120; then
        LLAMA_OK=1
    else
        tail -n 20 "$LOGS/serve_llama.log" | sed 's/^/    | /' >&2
    fi
fi
[ $OURS_OK = 1 ] || [ $LLAMA_OK = 1 ] || { log "no server came up"; exit 1; }

# ---- runs ----
COMMON=(--max-tokens "$MAXTOK" --temperature 0 --seed "$SEED" --ignore-eos --prompt "$PROMPT")
# bench ENGINE PID URL CLIENTS REQUESTS OUTFILE
bench() {
    local eng=$1 pid=$2 url=$3 c=$4 n=$5 outf=$6 busy s0 s1 p0 p1 c0 c1
    busy=$(wait_quiet)
    read -r -a s0 < <(sys_ticks); p0=$(pid_ticks "$pid"); c0=$(child_ticks)
    timeout "$TIMEOUT" "$BIN" bench-serve --url "$url" --clients "$c" --requests "$n" --duration "$MAXS" "${COMMON[@]}" --json \
        >"$outf.part" 2>"$LOGS/bench_serve_${eng}_c$c.err" </dev/null
    local rc=$?
    read -r -a s1 < <(sys_ticks); p1=$(pid_ticks "$pid"); c1=$(child_ticks)
    # CPU used by everything but the server and the client during the run, in
    # percent of the whole machine
    local tot=$((s1[1] - s0[1])) other=$(( (s1[0] - s0[0]) - (p1 - p0) - (c1 - c0) ))
    other=$(( tot > 0 && other > 0 ? 100 * other / tot : 0 ))
    if [ -s "$outf.part" ]; then
        python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); o["engine"]=sys.argv[2]; o["busy_pct_before"]=int(sys.argv[3]); o["other_load_pct"]=int(sys.argv[4]); o["server_cpu_s"]=float(sys.argv[5]); json.dump(o, open(sys.argv[6], "w"))' \
            "$outf.part" "$eng" "$busy" "$other" "$(awk -v t=$((p1 - p0)) -v hz="$(getconf CLK_TCK 2>/dev/null || echo 100)" 'BEGIN { print t / hz }')" \
            "$outf" 2>/dev/null || mv "$outf.part" "$outf"
    fi
    rm -f "$outf.part"
    if [ $rc -ne 0 ]; then
        log "  bench-serve against $eng at $c clients exited with $rc$([ $rc = 124 ] && echo ', timed out')"
        tail -n 3 "$LOGS/bench_serve_${eng}_c$c.err" | sed 's/^/    | /' >&2
    fi
}
ENGINES=()
[ $OURS_OK = 1 ] && ENGINES+=("ours|$OURS_PID|$OURS_URL")
[ $LLAMA_OK = 1 ] && ENGINES+=("llama|$LLAMA_PID|$LLAMA_URL")

# warm-up (page cache, first allocations, prompt caches on both sides)
for e in "${ENGINES[@]}"; do
    timeout "$TIMEOUT" "$BIN" bench-serve --url "${e##*|}" --clients 2 --requests 4 "${COMMON[@]}" --json \
        >/dev/null 2>&1 </dev/null
done

k=0
for c in $LEVELS; do
    n=$(( MULT * c > MINREQ ? MULT * c : MINREQ ))
    order=("${ENGINES[@]}")
    if [ $((k % 2)) = 1 ] && [ ${#ENGINES[@]} = 2 ]; then order=("${ENGINES[1]}" "${ENGINES[0]}"); fi
    for e in "${order[@]}"; do
        IFS='|' read -r eng pid url <<<"$e"
        log "$eng: $c clients, $n requests of $MAXTOK tokens"
        bench "$eng" "$pid" "$url" "$c" "$n" "$RAWDIR/${eng}_c$c.json"
    done
    k=$((k + 1))
done
cleanup

META="threads $T, max_tokens $MAXTOK, temperature 0, ignore_eos, context $CTX per slot, $CMAX slots"
META="$META; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) CPUs"
[ -n "$LL" ] && META="$META; llama.cpp $(cat "$LL/.stamp" 2>/dev/null)"
python3 bench/serve_report.py "$RAWDIR" "$OUT/serve.md" "$META"
log "done in $((SECONDS - T0)) s; table in $OUT/serve.md"
