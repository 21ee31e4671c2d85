#!/usr/bin/env bash
# setup.sh: installs what the build and the tests need, and nothing twice.
#   - Debian packages (apt-get) that are missing;
#   - the Python test tools into .venv/ (from tests/requirements.txt);
#   - the default model into the cache (scripts/fetch_model.sh).
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential pkg-config clang libclang-rt-14-dev
          libcjson-dev libpcre2-dev libutf8proc-dev
          libmicrohttpd-dev libcurl4-openssl-dev
          libedit-dev python3-venv unzip
          libsqlite3-dev libssl-dev
          libjs-marked libjs-highlight.js libjs-katex fonts-katex node-dompurify
          chromium chromium-driver
          libopenmpi-dev openmpi-bin)

missing=()
APT_PKGS+=(libopenblas-dev)   # the fast training path (src/train/train_fast.c)
for p in "${APT_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python test tools, in a virtualenv inside the tree (ignored by git).
req=tests/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating .venv with $(tr '\n' ' ' < "$req")"
    PY=python3
    [ -x /usr/bin/python3 ] && ! python3 -c 'import venv, ensurepip' 2>/dev/null && PY=/usr/bin/python3
    $PY -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -r "$req"
    echo "$want" > "$stamp"
fi
[ -d .venv/ollama-py/ollama ] || .venv/bin/pip install -q --target .venv/ollama-py -r tests/requirements-ollama.txt

scripts/fetch_model.sh >/dev/null
