#!/usr/bin/env bash
# run.sh BIN: the main job: `fastchat serve` on the default model
# (controller + worker + OpenAI-compatible API in one process; it prints
# the URLs). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
MODEL=$(scripts/fetch_model.sh)
exec "$BIN" serve --model-path "$MODEL" "${@:2}"
