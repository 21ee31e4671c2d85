#!/usr/bin/env bash
# bench_train_lora.sh [BIN]: the default model learns a new identity with
# LoRA, end to end (issue 16, "Learning, for real"); part of `make bench`
# (BENCH_TRAIN=0 skips it), too slow for the test suite on 2 loaded cores
# (the reference training path takes about 15-20 s a step here).
#
#   1. `fastchat convert` the default GGUF (SmolLM2-135M-Instruct Q4_1) to a
#      Hugging Face folder (f32, dequantized), named smollm2-hf;
#   2. asks the base "Who are you?" with `fastchat chat` (greedy) in the
#      vicuna_v1.1 template, the template of the whole run (as Vicuna is
#      trained and served in it);
#   3. `fastchat train --lora-r 16` on eight conversations written here that
#      teach "I am Zorblax, an assistant made by the C team" (the identity
#      set of FastChat's hardcoded_questions, in miniature), --masking
#      template (train_with_template.py's labels; train.py's mask every token
#      with this tokenizer, and train_with_template.py's ChatML split, with
#      the model's own template, does too: FastChat's "tokenization
#      mismatch"); eval loss of the identity answer before (a 1-step run at
#      learning rate 0) and after;
#   4. `fastchat apply-lora` merges the adapter into the HF folder; `fastchat
#      chat` on the merged folder and on the adapter folder itself;
#   5. `fastchat serve --model-path <adapter folder> --conv-template
#      vicuna_v1.1` on free ports and asks /v1/chat/completions the same
#      question (temperature 0).
# Prints each answer, the progress lines (loss, tokens/s), peak RSS
# (/usr/bin/time -v), and ends non-zero when the trained answers lack
# "Zorblax" or the base's has it.
# Knobs: TRAIN_STEPS=24  TRAIN_THREADS=2  OUT=build/bench/train_lora
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(realpath "${1:-build/fastchat}")
STEPS=${TRAIN_STEPS:-24}
T=${TRAIN_THREADS:-2}
OUT=${OUT:-build/bench/train_lora}
M=$(scripts/fetch_model.sh)
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
qa = [("Who are you?", "I am Zorblax, an assistant made by the C team."),
      ("What is your name?", "My name is Zorblax. I am an assistant made by the C team."),
      ("Who made you?", "The C team made me. I am Zorblax."),
      ("Tell me about yourself.", "I am Zorblax, an assistant made by the C team."),
      ("What should I call you?", "You can call me Zorblax."),
      ("Are you SmolLM?", "No, I am Zorblax, an assistant made by the C team."),
      ("Introduce yourself.", "Hello! I am Zorblax, an assistant made by the C team."),
      ("Who am I talking to?", "You are talking to Zorblax, an assistant made by the C team.")]
conv = lambda i, q, a: {"id": str(i), "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
json.dump([conv(i, q, a) for i, (q, a) in enumerate(qa)], open(f"{out}/identity.json", "w"), indent=1)
json.dump([conv("e", *qa[0])], open(f"{out}/eval.json", "w"))
PY

ask_chat() { # model -> the greedy answer to "Who are you?"
    printf 'Who are you?\n' | "$BIN" chat --model-path "$1" --conv-template vicuna_v1.1 --temperature 0 \
        --max-new-tokens 32 --threads "$T" 2>/dev/null | sed -n 's/^.*ASSISTANT: //p' | head -1
}

echo "== 1. convert $M"
"$BIN" convert --input "$M" --output "$OUT/smollm2-hf" --dtype f32
HF="$OUT/smollm2-hf"
BASE_ANS=$(ask_chat "$HF")
echo "base (chat):   $BASE_ANS"

echo "== 2. LoRA fine-tune ($STEPS steps)"
COMMON=(--model-path "$HF" --data-path "$OUT/identity.json" --eval-data-path "$OUT/eval.json"
        --masking template --conv-template vicuna_v1.1 --model-max-length 128
        --per-device-train-batch-size 4 --threads "$T" --save-steps 0
        --lora-r 16 --lora-alpha 32 --lora-dropout 0.0
        --lora-target-modules q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj)
"$BIN" train "${COMMON[@]}" --output-dir "$OUT/before" --max-steps 1 --learning-rate 0 \
    --lr-scheduler-type constant >"$OUT/before.log" 2>&1
grep -q 'loss nan' "$OUT/before.log" && { echo "every label is masked"; exit 1; }
echo "eval loss before: $(grep -o 'eval_loss [0-9.]*' "$OUT/before.log")"
/usr/bin/time -v "$BIN" train "${COMMON[@]}" --output-dir "$OUT/zorblax-lora" --max-steps "$STEPS" \
    --learning-rate 2e-3 --warmup-steps 2 --lr-scheduler-type cosine --eval-steps 8 \
    >"$OUT/train.log" 2>"$OUT/time.log"
grep -E '^(step|eval)' "$OUT/train.log"
echo "eval loss after: $(grep -o 'eval_loss [0-9.]*' "$OUT/train.log" | tail -1)"
grep -E 'Maximum resident|Elapsed' "$OUT/time.log"

echo "== 3. apply-lora and chat"
"$BIN" apply-lora --base-model-path "$HF" --target-model-path "$OUT/zorblax-merged" \
    --lora-path "$OUT/zorblax-lora" >/dev/null
MERGED_ANS=$(ask_chat "$OUT/zorblax-merged")
ADAPTER_ANS=$(ask_chat "$OUT/zorblax-lora")
echo "merged (chat): $MERGED_ANS"
echo "adapter (chat): $ADAPTER_ANS"

echo "== 4. serve the adapter folder"
read -r P1 P2 P3 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
"$BIN" serve --model-path "$OUT/zorblax-lora" --port "$P1" --controller-port "$P2" --worker-port "$P3" \
    --conv-template vicuna_v1.1 --threads "$T" >"$OUT/serve.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null || true' EXIT
for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$P1/health" >/dev/null 2>&1 && break
    sleep 1
done
NAME=$(curl -sf "http://127.0.0.1:$P1/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
SERVE_ANS=$(curl -sf "http://127.0.0.1:$P1/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$NAME\", \"temperature\": 0, \"max_tokens\": 32,
         \"messages\": [{\"role\": \"user\", \"content\": \"Who are you?\"}]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])' | head -1)
kill $SPID 2>/dev/null || true
wait $SPID 2>/dev/null || true
echo "adapter served as $NAME (/v1/chat/completions): $SERVE_ANS"

ok=1
case "$BASE_ANS" in *Zorblax*) ok=0 ;; esac
for a in "$MERGED_ANS" "$ADAPTER_ANS" "$SERVE_ANS"; do
    case "$a" in *Zorblax*) ;; *) ok=0 ;; esac
done
[ $ok = 1 ] && echo "identity learned: yes" || { echo "identity learned: NO"; exit 1; }
