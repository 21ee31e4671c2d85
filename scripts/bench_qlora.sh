#!/usr/bin/env bash
# bench_qlora.sh [BIN]: QLoRA (`fastchat train --q-lora True`: the frozen
# base matrices stay in the GGUF's Q4_1, src/train/qbase.h) against LoRA on
# the same base dequantized to f32 master weights (the default without
# --q-lora), on the default model (SmolLM2-135M-Instruct Q4_1 GGUF): LoRA r16,
# alpha 32, the seven projections, dropout 0, B x T tokens per step, same
# data, same threads, one run after the other, QBENCH_REPS times alternately.
#
# Printed per run: tokens/s (median of the progress lines after the first
# step), peak RSS (/usr/bin/time -v, the whole process) and user CPU seconds
# (the whole process: load, steps, the final save). The ratio line compares
# the medians over the repetitions. On a loaded machine trust the RSS and
# the user CPU figures, not the wall-clock tokens/s (BRIEF_COMMON).
# QBENCH_CKPT=1 adds a third run: QLoRA with --gradient-checkpointing True
# (activations of one layer instead of all: the rest of the peak).
# Knobs: QBENCH_B=2 QBENCH_T=128 QBENCH_STEPS=4 QBENCH_THREADS=2 QBENCH_REPS=1
#        QBENCH_CKPT=0
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
B=${QBENCH_B:-2}
T=${QBENCH_T:-128}
STEPS=${QBENCH_STEPS:-4}
TH=${QBENCH_THREADS:-2}
REPS=${QBENCH_REPS:-1}
CKPT=${QBENCH_CKPT:-0}
OUT=${OUT:-build/bench/qlora}
M=$(scripts/fetch_model.sh)
mkdir -p "$OUT"
. scripts/bench_lib.sh
train_bench_data "$OUT/data.json"

user_s() { awk -F': ' '/User time/ {print $2}' "$1"; }

echo "QLoRA benchmark: B=$B T=$T steps=$STEPS threads=$TH reps=$REPS model $(basename "$M")"
for rep in $(seq 1 "$REPS"); do
    for mode in lora qlora $([ "$CKPT" = 1 ] && echo qlora_ckpt || true); do
        extra=()
        [ "$mode" = qlora ] && extra=(--q-lora True)
        [ "$mode" = qlora_ckpt ] && extra=(--q-lora True --gradient-checkpointing True)
        tag=$mode.$rep
        rm -rf "$OUT/$tag"
        /usr/bin/time -v "$BIN" train --model-path "$M" --data-path "$OUT/data.json" --output-dir "$OUT/$tag" \
            --model-max-length "$T" --per-device-train-batch-size "$B" --max-steps "$STEPS" --threads "$TH" \
            --save-steps 0 --learning-rate 1e-4 --lr-scheduler-type constant --lora-r 16 --lora-alpha 32 \
            --lora-dropout 0 --lora-target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj \
            "${extra[@]}" >"$OUT/$tag.log" 2>"$OUT/$tag.time" || { echo "$tag: fastchat train failed"; tail -3 "$OUT/$tag.time"; exit 1; }
        case $mode in
            lora) name="lora  (f32 dequantized)  " ;;
            qlora) name="qlora (q4_1 base kept)   " ;;
            *) name="qlora + gradient ckpt    " ;;
        esac
        echo "fastchat $name run $rep: tokens/s $(train_tps "$OUT/$tag.log")  peak_rss_mib $(peak_rss_mib "$OUT/$tag.time")  user_cpu_s $(user_s "$OUT/$tag.time")  losses $(grep -o 'loss [0-9.]*' "$OUT/$tag.log" | awk '{printf "%s ", $2}')"
    done
done
med() { for r in $(seq 1 "$REPS"); do "$1" "$OUT/$2.$r.$3"; done | median_of_lines; }
tl=$(med train_tps lora log); tq=$(med train_tps qlora log)
rl=$(med peak_rss_mib lora time); rq=$(med peak_rss_mib qlora time)
ul=$(med user_s lora time); uq=$(med user_s qlora time)
echo "ratio qlora/lora: $(python3 -c "print(f'tokens/s {$tq / $tl:.2f}x ($tq vs $tl), peak RSS {$rq / $rl:.2f}x ($rq vs $rl MiB), user CPU {$uq / $ul:.2f}x ($uq vs $ul s)')")"
