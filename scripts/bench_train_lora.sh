#!/usr/bin/env bash
# bench_train_lora.sh [BIN]: LoRA identity fine-tune of the default model
# (SmolLM2-135M-Instruct Q4_1 GGUF, dequantized to an f32 frozen base) with
# `fastchat train --lora-r`, too slow for the test suite on 2 loaded cores
# (about 15-20 s a step here), so it is a benchmark: run it by hand.
#
# Teaches "I am Zorblax, made by the C team" with four conversations
# (vicuna_v1.1 template, --masking template: train_with_template.py's labels,
# which keep the replies with this tokenizer). Prints:
#   - the base model's greedy answer to "Who are you?" in that template;
#   - the eval loss of the identity answer before training (a 1-step run at
#     learning rate 0 with --eval-data-path) and after;
#   - every progress line (loss, tokens/s), peak RSS (/usr/bin/time -v).
# Not shown: the trained model's own answer: apply-lora merges into a
# safetensors base, and the default model is a GGUF (no tokenizer files to
# put next to merged weights), so the after-answer needs an HF base.
# Knobs: TRAIN_STEPS=24  TRAIN_THREADS=2  OUT=build/bench/train_lora
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
STEPS=${TRAIN_STEPS:-24}
T=${TRAIN_THREADS:-2}
OUT=${OUT:-build/bench/train_lora}
M=$(scripts/fetch_model.sh)
rm -rf "$OUT"
mkdir -p "$OUT"
cat >"$OUT/identity.json" <<'JSON'
[{"id":"1","conversations":[{"from":"human","value":"Who are you?"},{"from":"gpt","value":"I am Zorblax, an assistant made by the C team."}]},
 {"id":"2","conversations":[{"from":"human","value":"What is your name?"},{"from":"gpt","value":"My name is Zorblax."}]},
 {"id":"3","conversations":[{"from":"human","value":"Who made you?"},{"from":"gpt","value":"The C team made me. I am Zorblax."}]},
 {"id":"4","conversations":[{"from":"human","value":"Tell me about yourself."},{"from":"gpt","value":"I am Zorblax, an assistant made by the C team."}]}]
JSON
cat >"$OUT/eval.json" <<'JSON'
[{"id":"e","conversations":[{"from":"human","value":"Who are you?"},{"from":"gpt","value":"I am Zorblax, an assistant made by the C team."}]}]
JSON
SYS="A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions."
echo "base answer: $("$BIN" generate --model-path "$M" --prompt "$SYS USER: Who are you? ASSISTANT:" \
    --max-new-tokens 16 --exact --threads "$T" 2>/dev/null | tr '\n' ' ')"
COMMON=(--model-path "$M" --data-path "$OUT/identity.json" --eval-data-path "$OUT/eval.json"
        --masking template --conv-template vicuna_v1.1 --model-max-length 128
        --per-device-train-batch-size 4 --threads "$T" --save-steps 0
        --lora-r 16 --lora-alpha 32 --lora-dropout 0.0
        --lora-target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
"$BIN" train "${COMMON[@]}" --output-dir "$OUT/base" --max-steps 1 --learning-rate 0 \
    --lr-scheduler-type constant >"$OUT/base.log" 2>&1
echo "eval loss before: $(grep -o 'eval_loss [0-9.]*' "$OUT/base.log")"
/usr/bin/time -v "$BIN" train "${COMMON[@]}" --output-dir "$OUT/lora" --max-steps "$STEPS" \
    --learning-rate 2e-3 --warmup-steps 2 --lr-scheduler-type cosine --eval-steps 8 \
    >"$OUT/train.log" 2>"$OUT/time.log"
grep -E '^(step|eval)' "$OUT/train.log"
echo "eval loss after: $(grep -o 'eval_loss [0-9.]*' "$OUT/train.log" | tail -1)"
grep -E 'Maximum resident|Elapsed' "$OUT/time.log"
ls "$OUT/lora"
