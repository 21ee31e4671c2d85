#!/usr/bin/env bash
# run.sh BIN: the main job on the default model. Until the server lands this
# is a short generation with the default model; it becomes `fastchat serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
MODEL=$(scripts/fetch_model.sh)
exec "$BIN" generate --model-path "$MODEL" --prompt-ids 1,9690,198,2683,359,253,5356,5646,30,2 --max-new-tokens 64 --verbose
