#!/usr/bin/env bash
# test_kernels_isa.sh ARCH OUTDIR: builds tests/unit/test_kernels with
# -march=ARCH (instead of the build's -march=native) and runs it, so that a
# machine with more SIMD than ARCH also checks the kernels ARCH selects:
# on an AVX-512 machine "haswell" covers the AVX2-only kernels,
# "alderlake" the AVX2 ones with AVX-VNNI, and "skylake-avx512" the AVX-512
# ones without VNNI. Exits 77 (skipped, as automake's test drivers read it)
# with a note when this CPU cannot run ARCH's instructions.
# SANITIZE=1 (run_tests.sh sets it for a sanitized build, make DEBUG=1)
# builds it the way DEBUG=1 builds the rest: -O1 with ASan + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=$1
OUT=${2:-build}/isa-$ARCH
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { for f in "$@"; do grep -qw "$f" <<<"$flags" || return 1; done; }
case $ARCH in
    haswell)        need=(avx2 fma f16c bmi2) ;;
    alderlake)      need=(avx2 fma f16c avx_vnni) ;;
    skylake-avx512) need=(avx2 fma f16c avx512f avx512bw avx512vl avx512dq) ;;
    *)              echo "test_kernels_isa: unknown ARCH $ARCH" >&2; exit 2 ;;
esac
if ! has "${need[@]}"; then
    echo "test_kernels_isa: this CPU lacks some of ${need[*]}: -march=$ARCH not tested here"
    exit 77
fi
mkdir -p "$OUT"
src=(src/base/*.c src/tensor/*.c src/tensor/cpu/*.c)
opt=(-O2)
if [ "${SANITIZE:-0}" = 1 ]; then
    opt=(-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined)
fi
${CC:-cc} -std=c11 "${opt[@]}" -g -D_GNU_SOURCE -pthread -Isrc -Itests/unit -march="$ARCH" \
    tests/unit/test_kernels.c "${src[@]}" -lm -o "$OUT/test_kernels"
"$OUT/test_kernels"
