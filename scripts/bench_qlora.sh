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
# Knobs: QBENCH_B=2 QBENCH_T=128 QBENCH_STEPS=4 QBENCH_THREADS=2 QBENCH_REPS=1
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
B=${QBENCH_B:-2}
T=${QBENCH_T:-128}
STEPS=${QBENCH_STEPS:-4}
TH=${QBENCH_THREADS:-2}
REPS=${QBENCH_REPS:-1}
OUT=${OUT:-build/bench/qlora}
M=$(scripts/fetch_model.sh)
mkdir -p "$OUT"
python3 - "$OUT/data.json" <<'PYEOF'
import json, sys
words = ("the river carries small stones down from the hills and every spring the water "
         "rises over the old bridge while children watch from the bank and count the boats").split()
convs = []
for i in range(64):
    reply = " ".join(words[(i + k * 7) % len(words)] for k in range(600))
    convs.append({"id": str(i), "conversations": [
        {"from": "human", "value": f"Tell me story number {i}."},
        {"from": "gpt", "value": reply}]})
json.dump(convs, open(sys.argv[1], "w"))
PYEOF

ours_tps() { grep -o 'tokens/s [0-9.]*' "$1" | awk 'NR > 1 {print $2}' | sort -g |
             awk '{a[NR] = $1} END {if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print 0}'; }
rss_mib() { awk '/Maximum resident/ {printf "%.0f", $NF / 1024}' "$1"; }
user_s() { awk -F': ' '/User time/ {print $2}' "$1"; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

echo "QLoRA benchmark: B=$B T=$T steps=$STEPS threads=$TH reps=$REPS model $(basename "$M")"
for rep in $(seq 1 "$REPS"); do
    for mode in lora qlora; do
        extra=()
        [ "$mode" = qlora ] && extra=(--q-lora True)
        tag=$mode.$rep
        rm -rf "$OUT/$tag"
        /usr/bin/time -v "$BIN" train --model-path "$M" --data-path "$OUT/data.json" --output-dir "$OUT/$tag" \
            --model-max-length "$T" --per-device-train-batch-size "$B" --max-steps "$STEPS" --threads "$TH" \
            --save-steps 0 --learning-rate 1e-4 --lr-scheduler-type constant --lora-r 16 --lora-alpha 32 \
            --lora-dropout 0 --lora-target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj \
            "${extra[@]}" >"$OUT/$tag.log" 2>"$OUT/$tag.time" || { echo "$tag: fastchat train failed"; tail -3 "$OUT/$tag.time"; exit 1; }
        name=$([ "$mode" = qlora ] && echo "qlora (q4_1 base kept)   " || echo "lora  (f32 dequantized)  ")
        echo "fastchat $name run $rep: tokens/s $(ours_tps "$OUT/$tag.log")  peak_rss_mib $(rss_mib "$OUT/$tag.time")  user_cpu_s $(user_s "$OUT/$tag.time")  losses $(grep -o 'loss [0-9.]*' "$OUT/$tag.log" | awk '{printf "%s ", $2}')"
    done
done
med() { for r in $(seq 1 "$REPS"); do "$1" "$OUT/$2.$r.$3"; done | median; }
tl=$(med ours_tps lora log); tq=$(med ours_tps qlora log)
rl=$(med rss_mib lora time); rq=$(med rss_mib qlora time)
ul=$(med user_s lora time); uq=$(med user_s qlora time)
echo "ratio qlora/lora: $(python3 -c "print(f'tokens/s {$tq / $tl:.2f}x ($tq vs $tl), peak RSS {$rq / $rl:.2f}x ($rq vs $rl MiB), user CPU {$uq / $ul:.2f}x ($uq vs $ul s)')")"
