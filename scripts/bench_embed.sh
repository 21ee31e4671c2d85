#!/usr/bin/env bash
# bench_embed.sh [BIN_DIR]: sentence embeddings per second of all-MiniLM-L6-v2,
# `fastchat embed --bench` next to sentence-transformers on the same CPU and
# the same 236 texts (tests/data/bert/minilm_golden.npz: several languages,
# near-empty ones and 512+ token ones cut at 256 tokens), batch 32, all CPUs
# (part of `make bench`). The two sides run alternately, BENCH_EMBED_REPS
# times (default 3), best of each reported, so a load that comes and goes
# hits both alike.
#
# The torch side needs a Python with sentence-transformers: BENCH_TORCH_PYTHON
# (default .venv/bin/python, which has no torch in CI); when it cannot import
# sentence_transformers that side is skipped and said so (our figure alone).
# Writes build/bench/embed.md (BENCH_OUT) and prints it.
set -uo pipefail
cd "$(dirname "$0")/.."
ARG=${1:-build}
if [ -f "$ARG" ]; then BINDIR=$(dirname "$ARG"); else BINDIR=${ARG%/}; fi
BIN=$BINDIR/fastchat
OUT=${BENCH_OUT:-build/bench}
REPS=${BENCH_EMBED_REPS:-3}
PY=${BENCH_TORCH_PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
MODEL=$(scripts/fetch_embed_model.sh) || { echo "bench_embed: no all-MiniLM-L6-v2 (scripts/fetch_embed_model.sh)" >&2; exit 1; }
TEXTS="$OUT/embed_texts.json"
.venv/bin/python -c "import json, numpy as np; json.dump([str(t) for t in np.load('tests/data/bert/minilm_golden.npz')['texts']], open('$TEXTS', 'w'))"

torch_ok=0
"$PY" -c "import sentence_transformers" 2>/dev/null && torch_ok=1
ours=0; theirs=0; ours_cpu=0; theirs_cpu=0
maxf() { python3 -c "print(max($1, ${2:-0}))"; }
for r in $(seq "$REPS"); do
    line=$("$BIN" embed --model-path "$MODEL" --input "$TEXTS" --bench)
    v=$(echo "$line" | sed -n 's/.* \([0-9.]*\) embeddings\/s.*/\1/p')
    c=$(echo "$line" | sed -n 's/.* \([0-9.]*\) embeddings per CPU-second.*/\1/p')
    echo "fastchat rep $r: $v embeddings/s, $c per CPU-second" >&2
    ours=$(maxf "$ours" "$v"); ours_cpu=$(maxf "$ours_cpu" "$c")
    if [ $torch_ok = 1 ]; then
        v=$("$PY" - "$MODEL" "$TEXTS" <<'PYEOF'
import json, sys, time
from sentence_transformers import SentenceTransformer
m = SentenceTransformer(sys.argv[1], device="cpu")
t = json.load(open(sys.argv[2]))
m.encode(t[:8], batch_size=32)  # warm-up
t0, c0 = time.perf_counter(), time.process_time()
m.encode(t, batch_size=32)
print(f"{len(t) / (time.perf_counter() - t0):.1f} {len(t) / (time.process_time() - c0):.1f}")
PYEOF
)
        echo "sentence-transformers rep $r: $v (embeddings/s, per CPU-second)" >&2
        theirs=$(maxf "$theirs" "${v% *}"); theirs_cpu=$(maxf "$theirs_cpu" "${v#* }")
    fi
done
{
    echo "### Embeddings: all-MiniLM-L6-v2, 236 texts, batch 32, $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)"
    echo
    echo "| engine | embeddings/s (best of $REPS) | embeddings per CPU-second |"
    echo "|---|---|---|"
    echo "| fastchat embed | $ours | $ours_cpu |"
    if [ $torch_ok = 1 ]; then
        echo "| sentence-transformers (torch $("$PY" -c 'import torch; print(torch.__version__, torch.get_num_threads(), "threads")' 2>/dev/null)) | $theirs | $theirs_cpu |"
        echo
        echo "ratio: $(python3 -c "print(f'{$ours / $theirs:.2f}x wall, {$ours_cpu / $theirs_cpu:.2f}x per CPU-second' if $theirs and $theirs_cpu else 'n/a')")"
    else
        echo "| sentence-transformers | skipped: $PY cannot import sentence_transformers (set BENCH_TORCH_PYTHON) | |"
    fi
} > "$OUT/embed.md"
cat "$OUT/embed.md"
