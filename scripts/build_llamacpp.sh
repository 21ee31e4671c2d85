#!/usr/bin/env bash
# build_llamacpp.sh: builds llama.cpp, the speed anchor for `make bench`, and
# prints the path of its bin directory on stdout (everything else on stderr).
#
# The source is the llama.cpp tree vendored in the llama-cpp-python source
# distribution on PyPI (vendor/llama.cpp), pinned below so that results stay
# comparable between runs. It is built outside the source tree, in
#   ~/.cache/fastchat/llama.cpp-<version>/{src,build,bin}
# with cmake (Release, GGML_NATIVE=ON, CPU only, no curl), and nothing is
# redone when bin/ already holds every target. llama.cpp code never enters
# this repository.
#
# Knobs: LLAMACPP_PY_VERSION (the llama-cpp-python version), FASTCHAT_CACHE,
#        LLAMACPP_JOBS (parallel compile jobs, default nproc),
#        LLAMACPP_TARGETS (space-separated targets, default all seven below).
set -euo pipefail

VERSION=${LLAMACPP_PY_VERSION:-0.3.36}
CACHE="${FASTCHAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastchat}"
# On CPUs with AMX, -march=native compiles ggml's AMX matrix kernels, and in
# this version they crash (SIGSEGV in ggml_backend_amx_mul_mat) on the bench
# models; with AMX left out ggml uses its AVX-512 VNNI kernels and its CPU
# weight repacking, the fastest configuration that runs. (GCC's explicit
# -mno-* flags win over -march=native in any order.) LLAMACPP_AMX=1 keeps it.
FLAGS=""
SUFFIX=""
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && [ "${LLAMACPP_AMX:-0}" != 1 ]; then
    FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    SUFFIX="-noamx"
fi
ROOT="$CACHE/llama.cpp-$VERSION$SUFFIX"
BIN="$ROOT/bin"
# LLAMACPP_TARGETS narrows the set: `make bench` needs only the first four,
# which skip the multimodal library that llama-cli and llama-server pull in.
read -r -a TARGETS <<<"${LLAMACPP_TARGETS:-llama-bench llama-batched-bench llama-simple llama-quantize llama-completion llama-cli llama-server}"
JOBS=${LLAMACPP_JOBS:-$(nproc)}

log() { echo "build_llamacpp: $*" >&2; }

built() {
    local t
    for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
    [ -f "$BIN/.stamp" ]
}

if built; then
    echo "$BIN"
    exit 0
fi

# One build at a time: a second caller waits for the first one's result.
mkdir -p "$ROOT"
exec 9>"$ROOT/.lock"
flock 9
if built; then
    echo "$BIN"
    exit 0
fi

if ! command -v cmake >/dev/null; then
    log "installing cmake"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends cmake >&2
fi

# ---- source: the sdist's vendored llama.cpp ----
SRC="$ROOT/src"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "downloading llama-cpp-python==$VERSION (source distribution) from PyPI"
    pip=pip3; command -v pip3 >/dev/null || pip="python3 -m pip"
    $pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$tmp" >&2
    sdist=$(find "$tmp" -maxdepth 1 -name 'llama[_-]cpp[_-]python-*.tar.gz' | head -1)
    [ -n "$sdist" ] || { log "no sdist in $tmp"; exit 1; }
    tar -xzf "$sdist" -C "$tmp"
    vend=$(find "$tmp" -maxdepth 3 -type d -path '*/vendor/llama.cpp' | head -1)
    [ -n "$vend" ] && [ -f "$vend/CMakeLists.txt" ] || { log "vendor/llama.cpp missing from $sdist"; exit 1; }
    rm -rf "$SRC.part"
    mv "$vend" "$SRC.part"
    mv "$SRC.part" "$SRC"
fi

# ---- build ----
log "building llama.cpp from llama-cpp-python $VERSION with $JOBS jobs (takes a while)"
cmake -S "$SRC" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
      -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_SERVER=ON ${FLAGS:+"-DCMAKE_C_FLAGS=$FLAGS" "-DCMAKE_CXX_FLAGS=$FLAGS"} >&2
avail=()
help=$(cmake --build "$ROOT/build" --target help 2>/dev/null || true)
for t in "${TARGETS[@]}"; do
    if grep -qE "(^|[ :.])$t(:|\$| )" <<<"$help"; then avail+=("$t"); else log "target $t not in this version"; fi
done
cmake --build "$ROOT/build" --config Release -j "$JOBS" --target "${avail[@]}" >&2

mkdir -p "$BIN"
for t in "${avail[@]}"; do
    f=$(find "$ROOT/build" -type f -name "$t" -perm -u+x | head -1)
    [ -n "$f" ] && cp "$f" "$BIN/$t"
done
# Every requested target must exist for `built` to succeed; a version that
# lacks one (e.g. llama-cli) gets a stub that says so, so the check settles.
for t in "${TARGETS[@]}"; do
    if [ ! -x "$BIN/$t" ]; then
        printf '#!/bin/sh\necho "%s: not built in llama.cpp from llama-cpp-python %s" >&2\nexit 127\n' "$t" "$VERSION" > "$BIN/$t"
        chmod +x "$BIN/$t"
    fi
done
(cd "$SRC" && echo "llama-cpp-python $VERSION${FLAGS:+, built with $FLAGS}") > "$BIN/.stamp"
log "done"
echo "$BIN"
