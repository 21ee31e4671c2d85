#!/usr/bin/env bash
# bench_decode_step.sh [LIB_A [LIB_B]]: CPU and wall milliseconds of one
# batched decode step of the forward pass (bench/decode_step.c: 33 sequences
# at 250 cached positions each, one token each per step, logits for all, the
# shape of `judge gen-answer`'s batched steps) for one or two builds of
# libfastchat.a, run alternately (A B A B ...) so that a busy machine slows
# both alike; prints the medians and, with two libraries, the ratio line.
# Default LIB_A: build/libfastchat.a. Environment: MODEL (default
# scripts/fetch_model.sh), THREADS (default "1 2"), REPS (default 3),
# N_SEQ (33), CTX (250), STEPS (8). Compare CPU ms with THREADS=1 on a loaded
# machine; wall ms with 2 threads only on a quiet one.
# A/B example: cp build/libfastchat.a /tmp/old.a; (change, make) ;
#   scripts/bench_decode_step.sh /tmp/old.a build/libfastchat.a
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
A=${1:-build/libfastchat.a}
B=${2:-}
MODEL=${MODEL:-$(scripts/fetch_model.sh)}
THREADS=${THREADS:-1 2}
REPS=${REPS:-3}
N_SEQ=${N_SEQ:-33}
CTX=${CTX:-250}
STEPS=${STEPS:-8}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
LIBS="-lmicrohttpd -lcurl -lcjson -lpcre2-8 -lutf8proc -ledit -lsqlite3 -lcrypto -lm -lpthread"
LIBS="$LIBS $(pkg-config --libs openblas 2>/dev/null || echo -lopenblas) $(pkg-config --libs ompi-c 2>/dev/null || true)"
build() { cc -O3 -march=native -Isrc bench/decode_step.c "$1" $LIBS -o "$2"; }
build "$A" "$WORK/a"
names=(a)
[ -n "$B" ] && build "$B" "$WORK/b" && names=(a b)
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "| decode step ($N_SEQ sequences x $CTX cached positions) | threads | CPU ms / step | wall ms / step | logits hash |"
echo "|---|---|---|---|---|"
for t in $THREADS; do
    for n in "${names[@]}"; do : > "$WORK/$n.$t"; done
    for r in $(seq "$REPS"); do
        for n in "${names[@]}"; do "$WORK/$n" "$MODEL" "$N_SEQ" "$CTX" "$STEPS" "$t" >> "$WORK/$n.$t"; done
    done
    for n in "${names[@]}"; do
        cpu=$(sed -E 's/.*cpu_ms_per_step=([0-9.]+).*/\1/' "$WORK/$n.$t" | median)
        wall=$(sed -E 's/.*wall_ms_per_step=([0-9.]+).*/\1/' "$WORK/$n.$t" | median)
        hash=$(sed -E 's/.*logits_hash=([0-9a-f]+).*/\1/' "$WORK/$n.$t" | sort -u | tr '\n' ' ')
        lib=$A; [ "$n" = b ] && lib=$B
        echo "| $lib | $t | $cpu | $wall | $hash|"
        eval "cpu_${n}_$t=$cpu wall_${n}_$t=$wall"
    done
    if [ -n "$B" ]; then
        eval "ca=\$cpu_a_$t cb=\$cpu_b_$t wa=\$wall_a_$t wb=\$wall_b_$t"
        python3 -c "import sys; ca, cb, wa, wb = map(float, sys.argv[1:5]); print(f'| B / A, {sys.argv[5]} threads | | CPU {cb / ca:.3f}x | wall {wb / wa:.3f}x | |')" \
            "$ca" "$cb" "$wa" "$wb" "$t"
    fi
done
