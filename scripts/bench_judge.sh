#!/usr/bin/env bash
# bench_judge.sh BIN MODEL: `fastchat judge gen-answer` on the project's bench
# (data/fc_bench, both turns of each question) with every question in flight
# (continuous batching) against the same questions one at a time
# (--sequential), on the local engine; prints one markdown table. Called by
# scripts/bench.sh (step 9); BENCH_QUICK=1 takes 12 questions and answers of at
# most 128 tokens instead of all 40 and 256; BENCH_THREADS sets the threads.
# Below the table: the engine's forward steps and tokens per step of each run.
set -euo pipefail
BIN=$1
MODEL=$2
# the runs work in a temporary folder: relative paths are made absolute
case $BIN in */*) BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN") ;; esac
case $MODEL in /*) ;; *) [ -e "$MODEL" ] && MODEL=$PWD/$MODEL ;; esac
T=${BENCH_THREADS:-2}
if [ "${BENCH_QUICK:-0}" = 1 ]; then NQ=12; MAXT=128; else NQ=40; MAXT=256; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/data/fc_bench"
head -n "$NQ" "$ROOT/data/fc_bench/question.jsonl" > "$WORK/data/fc_bench/question.jsonl"
run() {
    (cd "$WORK" && "$BIN" judge gen-answer --model-path "$MODEL" --model-id "$1" --max-tokens "$MAXT" \
        --threads "$T" --no-progress "${@:2}" 2>&1 | grep -E '^(gen-answer|engine):')
}
seq_out=$(run seq --sequential)
bat_out=$(run batch)
seq_line=$(grep '^gen-answer:' <<<"$seq_out")
bat_line=$(grep '^gen-answer:' <<<"$bat_out")
rate() { sed -E 's/.*: ([0-9.]+) answers\/s.*/\1/' <<<"$1"; }
echo "| judge gen-answer ($NQ questions x 2 turns, <= $MAXT tokens, $T threads) | answers/s | line |"
echo "|---|---|---|"
echo "| one at a time | $(rate "$seq_line") | $seq_line |"
echo "| batched | $(rate "$bat_line") | $bat_line |"
python3 -c "import sys; a, b = map(float, sys.argv[1:]); print(f'| batched / one at a time | {b / a:.2f}x | |')" \
    "$(rate "$seq_line")" "$(rate "$bat_line")"
echo
echo "one at a time: $(grep '^engine:' <<<"$seq_out" || true)"
echo "batched: $(grep '^engine:' <<<"$bat_out" || true)"
