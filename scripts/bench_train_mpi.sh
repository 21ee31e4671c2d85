#!/usr/bin/env bash
# bench_train_mpi.sh [BIN]: full fine-tuning of the default model
# (SmolLM2-135M-Instruct, f32 master weights: 135M params -> 517 MiB each of
# parameters, gradients, AdamW m and v) alone and with `mpirun -np 2`
# (ZeRO-sharded AdamW, src/train/dist.h), the same global batch of 2; part
# of `make bench` (BENCH_TRAIN=0 skips it). Prints both runs' progress
# lines, the AdamW state per process, the peak RSS of every process (the
# trainer's own report) and the largest loss difference.
# Knobs: TRAIN_MPI_STEPS=2  OUT=build/bench/train_mpi
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/fastchat}")
STEPS=${TRAIN_MPI_STEPS:-2}
OUT=${OUT:-build/bench/train_mpi}
M=$(scripts/fetch_model.sh)
rm -rf "$OUT"
mkdir -p "$OUT"
cat >"$OUT/d.json" <<'JSON'
[{"id":"1","conversations":[{"from":"human","value":"Who are you?"},{"from":"gpt","value":"I am Zorblax, an assistant made by the C team."}]},
 {"id":"2","conversations":[{"from":"human","value":"What is your name?"},{"from":"gpt","value":"My name is Zorblax."}]}]
JSON
ARGS=(--model-path "$M" --data-path "$OUT/d.json" --masking template --conv-template vicuna_v1.1
      --model-max-length 64 --learning-rate 1e-5 --max-steps "$STEPS" --save-steps 0 --threads 1)
ROOT=(); [ "$(id -u)" -eq 0 ] && ROOT=(--allow-run-as-root)
echo "== 1 process, batch 2"
"$BIN" train "${ARGS[@]}" --per-device-train-batch-size 2 --output-dir "$OUT/np1" | tee "$OUT/np1.log" |
    grep -E '^(step|peak)'
echo "== mpirun -np 2, batch 1 each"
mpirun "${ROOT[@]}" --oversubscribe --bind-to none -np 2 "$BIN" train "${ARGS[@]}" \
    --per-device-train-batch-size 1 --output-dir "$OUT/np2" | tee "$OUT/np2.log" | grep -E '^(data|step|peak)'
python3 - "$OUT" <<'PY'
import re, sys
out = sys.argv[1]
loss = lambda f: [float(x) for x in re.findall(r"^step \d+/\d+  epoch \S+  loss (\S+)", open(f).read(), re.M)]
a, b = loss(f"{out}/np1.log"), loss(f"{out}/np2.log")
print(f"largest loss difference np=2 vs np=1: {max(abs(x - y) for x, y in zip(a, b)):.2e} over {len(a)} steps")
PY
