#!/usr/bin/env bash
# bench_train.sh [BIN]: training speed and peak memory of `fastchat train`
# against torch on the default model (SmolLM2-135M-Instruct Q4_1 GGUF,
# dequantized to f32 by both), same CPU, same threads, same run, one after
# the other: full fine-tuning, then LoRA (r 16, alpha 32, the seven
# projections, dropout 0), each optionally with gradient checkpointing.
#
# Ours: `fastchat train` on conversations long enough that every example is
# truncated to --model-max-length, so each step computes B x T tokens; the
# figure is B*T over the median step time of the steps after the first.
# Torch: tools/bench/train_torch.py (AutoModelForCausalLM from the same GGUF
# in float32, AdamW, B x T random ids all labelled, torch.set_num_threads),
# with BENCH_TORCH_PYTHON (default .venv/bin/python; skipped when it cannot
# import torch, transformers, gguf and peft; here /work/gvenv/bin/python).
# Peak RSS: /usr/bin/time -v (the whole process: weights, optimizer,
# activations). Our run also writes its final checkpoint (not in tokens/s).
# Note: our loss skips the lm_head rows of unlabelled positions (exact); in
# this data almost every position is labelled, so that saves little here.
# lora-bf16: the same LoRA with --bf16 True (ours: the frozen base in bf16
# on AMX tiles; skipped where the CPU has no AMX-BF16) against torch with
# its forward under torch.autocast("cpu", torch.bfloat16).
# Knobs: TRAIN_B=2 TRAIN_T=128 TRAIN_STEPS=4 TRAIN_THREADS=2
#        TRAIN_MODES="full lora lora-bf16" TRAIN_CKPT=0 (1: also with checkpointing)
#        TRAIN_PHASES=0 (1: also print our per-phase times of a step, from
#        fastchat train --verbose: wall and calling-thread CPU ms per pass)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
B=${TRAIN_B:-2}
T=${TRAIN_T:-128}
STEPS=${TRAIN_STEPS:-4}
TH=${TRAIN_THREADS:-2}
MODES=${TRAIN_MODES:-full lora lora-bf16}
CKPT=${TRAIN_CKPT:-0}
PHASES=${TRAIN_PHASES:-0}
PY=${BENCH_TORCH_PYTHON:-.venv/bin/python}
OUT=${OUT:-build/bench/train}
M=$(scripts/fetch_model.sh)
mkdir -p "$OUT"
. scripts/bench_lib.sh
train_bench_data "$OUT/data.json"

ours_tps() { train_tps "$1"; }
rss_mib() { peak_rss_mib "$1"; }

have_torch=0
if "$PY" -c "import torch, transformers, gguf, peft" 2>/dev/null; then have_torch=1; fi
echo "training benchmark: B=$B T=$T steps=$STEPS threads=$TH model $(basename "$M")"
for mode in $MODES; do
    for ck in 0 $([ "$CKPT" = 1 ] && echo 1); do
        tag=$mode$([ "$ck" = 1 ] && echo "+ckpt" || true)
        extra=()
        targs=()
        if [ "$mode" != full ]; then
            extra=(--lora-r 16 --lora-alpha 32 --lora-dropout 0
                   --lora-target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
            targs=(--lora-r 16)
        fi
        if [ "$mode" = lora-bf16 ]; then
            if ! grep -qw amx_bf16 /proc/cpuinfo; then echo "lora-bf16: skipped (this CPU has no AMX-BF16)"; continue; fi
            extra+=(--bf16 True)
            targs+=(--bf16)
        fi
        if [ "$ck" = 1 ]; then extra+=(--gradient-checkpointing True); targs+=(--gradient-checkpointing); fi
        if [ "$PHASES" = 1 ]; then extra+=(--verbose); fi
        rm -rf "$OUT/$tag"
        /usr/bin/time -v "$BIN" train --model-path "$M" --data-path "$OUT/data.json" --output-dir "$OUT/$tag" \
            --model-max-length "$T" --per-device-train-batch-size "$B" --max-steps "$STEPS" --threads "$TH" \
            --save-steps 0 --learning-rate 1e-5 --lr-scheduler-type constant "${extra[@]}" \
            >"$OUT/$tag.log" 2>"$OUT/$tag.time" || { echo "$tag: fastchat train failed"; tail -3 "$OUT/$tag.time"; continue; }
        ours=$(ours_tps "$OUT/$tag.log")
        ours_rss=$(rss_mib "$OUT/$tag.time")
        echo "fastchat $tag: tokens/s $ours  peak_rss_mib $ours_rss"
        if [ "$PHASES" = 1 ]; then grep -A 19 'train phases' "$OUT/$tag.time" | sed 's/^\[info\] */    /' || true; fi
        if [ "$have_torch" = 1 ]; then
            if /usr/bin/time -v "$PY" tools/bench/train_torch.py "$M" --batch "$B" --seq "$T" --steps "$STEPS" \
                   --threads "$TH" "${targs[@]}" >"$OUT/$tag.torch.log" 2>"$OUT/$tag.torch.time"; then
                theirs=$(grep -o 'tokens/s=[0-9.]*' "$OUT/$tag.torch.log" | cut -d= -f2)
                theirs_rss=$(rss_mib "$OUT/$tag.torch.time")
                echo "torch    $tag: tokens/s $theirs  peak_rss_mib $theirs_rss"
                echo "ratio    $tag: $(python3 -c "print(f'{$ours / $theirs:.2f}x tokens/s, peak RSS {$ours_rss / $theirs_rss:.2f}x torch\'s')")"
            else
                echo "torch    $tag: failed ($(tail -1 "$OUT/$tag.torch.time"))"
            fi
        else
            echo "torch    $tag: skipped ($PY cannot import torch, transformers, gguf, peft; set BENCH_TORCH_PYTHON)"
        fi
    done
done
