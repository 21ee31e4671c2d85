#!/usr/bin/env bash
# run.sh BIN: the main job on the default model. Until the server lands this
# is a short chat-formatted generation with the default model; it becomes
# `fastchat serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
MODEL=$(scripts/fetch_model.sh)
PROMPT=${PROMPT:-"What is the capital of France?"}
exec "$BIN" generate --model-path "$MODEL" --max-new-tokens 128 --verbose \
    --prompt "<|im_start|>user
$PROMPT<|im_end|>
<|im_start|>assistant
"
