#!/usr/bin/env bash
# run.sh BIN: the main job: `fastchat serve` on the default model
# (controller + worker + OpenAI-compatible API in one process; it prints
# the URLs). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
MODEL=$(scripts/fetch_model.sh)
# The web UI (http://localhost:8000/) battles the default model against a second
# contestant made from it: the same weights under another name, with its own
# system prompt and sampling settings (scripts/arena.json).
exec "$BIN" serve --model-path "$MODEL" --model-names "$(basename "$MODEL"),SmolLM2-135M-Pirate" \
    --arena-config scripts/arena.json "${@:2}"
