#!/usr/bin/env bash
# bench_t5.sh OLD_BIN [NEW_BIN]: CPU time of T5 decoding, two binaries
# alternately (A/B for changes to the T5 decoder, e.g. its paged cache).
# The model: a random Flan-T5-small-shaped folder (d_model 512, 8+8 layers,
# 6 heads of 64, gated-gelu d_ff 1024, vocab 32128, f16 safetensors) written
# by numpy into ~/.cache/fastchat/bench/t5-small-random (no torch needed).
# Each run: `fastchat logits --threads 1` over a 200-token prompt and 256
# teacher-forced decoder tokens (encoder once, 256 decoder steps), exact
# and fast; user CPU seconds (GNU time) summed over BENCH_T5_REPS (3)
# alternating repetitions. Prints one line per mode:
#   ratio: t5 decode exact: old 4.10 s, new 4.02 s -> new/old 0.98x
# (CPU time, not wall: valid on a loaded machine; lower is better.)
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: scripts/bench_t5.sh OLD_BIN [NEW_BIN]}
NEW=${2:-build/fastchat}
REPS=${BENCH_T5_REPS:-3}
PY=${PYTHON:-.venv/bin/python}
CACHE="${FASTCHAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastchat}"
M="$CACHE/bench/t5-small-random"
if [ ! -f "$M/model.safetensors" ]; then
    mkdir -p "$M"
    "$PY" - "$M" <<'PYEOF'
import json, struct, sys
import numpy as np
d = sys.argv[1]
C, NH, HS, FF, L, V, NB = 512, 6, 64, 1024, 8, 32128, 32
cfg = {"model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "d_model": C, "d_kv": HS,
       "num_heads": NH, "d_ff": FF, "num_layers": L, "num_decoder_layers": L, "vocab_size": V,
       "relative_attention_num_buckets": NB, "relative_attention_max_distance": 128,
       "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False, "layer_norm_epsilon": 1e-6,
       "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}
rng = np.random.default_rng(0)
T = {}
def w(name, *shape, scale=None):
    T[name] = (rng.standard_normal(shape) * (scale or shape[-1] ** -0.5)).astype(np.float16)
w("shared.weight", V, C, scale=1.0)
w("lm_head.weight", V, C)
Q = NH * HS
for stack in ("encoder", "decoder"):
    for i in range(L):
        p = f"{stack}.block.{i}.layer."
        for x in "qkv":
            w(p + f"0.SelfAttention.{x}.weight", Q, C)
        w(p + "0.SelfAttention.o.weight", C, Q)
        T[p + "0.layer_norm.weight"] = np.ones(C, np.float16)
        if i == 0:
            w(p + "0.SelfAttention.relative_attention_bias.weight", NB, NH, scale=1.0)
        f = 1
        if stack == "decoder":
            for x in "qkv":
                w(p + f"1.EncDecAttention.{x}.weight", Q, C)
            w(p + "1.EncDecAttention.o.weight", C, Q)
            T[p + "1.layer_norm.weight"] = np.ones(C, np.float16)
            f = 2
        w(p + f"{f}.DenseReluDense.wi_0.weight", FF, C)
        w(p + f"{f}.DenseReluDense.wi_1.weight", FF, C)
        w(p + f"{f}.DenseReluDense.wo.weight", C, FF)
        T[p + f"{f}.layer_norm.weight"] = np.ones(C, np.float16)
    T[f"{stack}.final_layer_norm.weight"] = np.ones(C, np.float16)
hdr, off = {}, 0
for k, a in T.items():
    hdr[k] = {"dtype": "F16", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
    off += a.nbytes
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
with open(f"{d}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for a in T.values():
        f.write(a.tobytes())
json.dump(cfg, open(f"{d}/config.json", "w"))
PYEOF
fi
ENC=$(seq 2 201 | paste -sd,)
DEC=$(seq 0 255 | awk '{print ($1 * 37) % 32000 + 2}' | paste -sd,)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cpu() { # BIN MODE_FLAGS... -> user seconds
    local bin=$1; shift
    /usr/bin/time -f '%U' -o "$TMP/t" "$bin" logits --model-path "$M" --threads 1 --prompt-ids "$ENC" \
        --decoder-ids "$DEC" --out "$TMP/l.f32" "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
    cat "$TMP/t"
}
for mode in exact fast; do
    flags=(); [ "$mode" = exact ] && flags=(--exact)
    o=0; n=0
    for ((r = 0; r < REPS; r++)); do
        if ((r % 2)); then b=$(cpu "$NEW" "${flags[@]}"); a=$(cpu "$OLD" "${flags[@]}")
        else a=$(cpu "$OLD" "${flags[@]}"); b=$(cpu "$NEW" "${flags[@]}"); fi
        o=$(echo "$o + $a" | bc -l); n=$(echo "$n + $b" | bc -l)
    done
    printf 'ratio: t5 decode %s: old %.2f s, new %.2f s -> new/old %.3fx\n' "$mode" "$o" "$n" "$(echo "$n / $o" | bc -l)"
done
