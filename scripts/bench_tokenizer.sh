#!/usr/bin/env bash
# bench_tokenizer.sh [BIN_DIR]: encode speed of our tokenizer next to Hugging
# Face `tokenizers` (part of `make bench`).
#
#   1. builds bench/bench_tokenizer.c against BIN_DIR/libfastchat.a (BIN_DIR
#      defaults to build; the path of a binary in it works too);
#   2. for each of the tokenizers the tests use -- SmolLM2 from the default
#      GGUF (scripts/fetch_model.sh), and the SentencePiece, Llama-3-style and
#      Qwen2-style folders in tests/data/tokenizer -- runs bench_tokenizer and
#      bench/bench_tokenizer_hf.py (.venv's `tokenizers`) on the same corpus,
#      one thread each, in two modes: every corpus text encoded on its own
#      (as a server encodes prompts) and the corpus as one text;
#   3. checks that both sides give the same number of tokens (a difference is
#      printed loudly, marked in the table, and makes the exit status 2);
#   4. writes the table to build/bench/tokenizer.md and prints it.
# Speeds are MB of UTF-8 per second of CPU time of the encoding (see the
# comments at the top of bench/bench_tokenizer.c).
#
# Knobs (environment):
#   BENCH_QUICK=1            1 s per measurement instead of 3
#   BENCH_TOK_SECONDS=S      seconds of CPU time per measurement
#   BENCH_TOK_CORPUS=FILE    a .jsonl of {"text": ...} or a plain text file
#                            (default tests/data/tokenizer/corpus.jsonl)
#   BENCH_TOK_MODES=both     texts, whole or both
#   BENCH_OUT=build/bench    where the table, the binary and the logs go
set -uo pipefail
cd "$(dirname "$0")/.."

ARG=${1:-build}
if [ -f "$ARG" ]; then BINDIR=$(dirname "$ARG"); else BINDIR=${ARG%/}; fi
LIB="$BINDIR/libfastchat.a"
OUT=${BENCH_OUT:-build/bench}
if [ "${BENCH_QUICK:-0}" = 1 ]; then SECS=${BENCH_TOK_SECONDS:-1}; else SECS=${BENCH_TOK_SECONDS:-3}; fi
CORPUS=${BENCH_TOK_CORPUS:-tests/data/tokenizer/corpus.jsonl}
MODES=${BENCH_TOK_MODES:-both}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
log() { echo "bench_tokenizer: $*" >&2; }
mkdir -p "$OUT/logs"

# ---- 1. build ----
if [ ! -f "$LIB" ]; then
    log "$LIB missing (run make first)"
    exit 1
fi
GEN="$OUT/bench_tokenizer"
if [ ! -x "$GEN" ] || [ bench/bench_tokenizer.c -nt "$GEN" ] || [ "$LIB" -nt "$GEN" ]; then
    if ! cc -std=c11 -O3 -march=native -D_GNU_SOURCE -pthread -Isrc bench/bench_tokenizer.c "$LIB" \
            -lcjson -lpcre2-8 -lutf8proc -lm -lpthread -o "$GEN" 2>"$OUT/logs/bench_tokenizer.build.log"; then
        log "bench_tokenizer did not build (log: $OUT/logs/bench_tokenizer.build.log)"
        tail -n 20 "$OUT/logs/bench_tokenizer.build.log" | sed 's/^/    | /' >&2
        exit 1
    fi
fi
HF=1
if ! "$PY" -c 'import tokenizers' 2>/dev/null; then
    log "no Python 'tokenizers' ($PY): only our figures follow (scripts/setup.sh installs it)"
    HF=0
fi

# ---- 2. runs ----
TOKS=()
if MODEL=$(scripts/fetch_model.sh 2>"$OUT/logs/fetch_model.log") && [ -s "$MODEL" ]; then
    TOKS+=("smollm2|$MODEL|SmolLM2 (default GGUF)")
else
    log "the default model is missing (scripts/fetch_model.sh; log: $OUT/logs/fetch_model.log): SmolLM2 skipped"
fi
TOKS+=("spm|tests/data/tokenizer/spm|SentencePiece BPE (spm/)"
       "llama3|tests/data/tokenizer/llama3|Llama-3-style byte-level BPE (llama3/)"
       "qwen2|tests/data/tokenizer/qwen2|Qwen2-style byte-level BPE (qwen2/)")

mismatch=0
: > "$OUT/logs/tokbench.txt"
for entry in "${TOKS[@]}"; do
    IFS='|' read -r name src label <<< "$entry"
    ours="$OUT/logs/tokbench_ours_$name.log"
    hf="$OUT/logs/tokbench_hf_$name.log"
    log "[$name] fastchat"
    "$GEN" "$src" "$CORPUS" --name "$name" --seconds "$SECS" --mode "$MODES" >"$ours" 2>"$ours.err" \
        || { log "  bench_tokenizer exited with $? (log: $ours.err)"; tail -n 5 "$ours.err" | sed 's/^/    | /' >&2; }
    : > "$hf"
    if [ "$HF" = 1 ]; then
        log "[$name] Hugging Face tokenizers"
        "$PY" bench/bench_tokenizer_hf.py "$src" "$CORPUS" --name "$name" --seconds "$SECS" --mode "$MODES" \
            --expect "$ours" >"$hf" 2>"$hf.err"
        rc=$?
        if [ $rc = 2 ]; then
            mismatch=1
            grep MISMATCH "$hf" >&2
        elif [ $rc != 0 ]; then
            log "  bench_tokenizer_hf.py exited with $rc (log: $hf.err)"
            tail -n 5 "$hf.err" | sed 's/^/    | /' >&2
        fi
    fi
    awk -v l="$label" 'BEGIN { gsub(/ /, "_", l) } /^tokbench: tokenizer=/ { print $0 " label=" l }' \
        "$ours" "$hf" >> "$OUT/logs/tokbench.txt"
done

# ---- 3. table ----
{
    echo "## Tokenizer encode speed: FastChat-C vs Hugging Face tokenizers"
    echo
    echo "One thread each, MB of UTF-8 text per second of CPU time; corpus $CORPUS;" \
         "encode without BOS/EOS, special tokens parsed; $SECS s per figure."
    echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
         "tokenizers $("$PY" -c 'import tokenizers; print(tokenizers.__version__)' 2>/dev/null || echo '-')."
    echo
    "$PY" - "$OUT/logs/tokbench.txt" <<'EOF'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    if kv.get("op") != "encode":
        continue
    key = (kv["tokenizer"], kv["mode"])
    if key not in rows:
        rows[key] = {"label": kv["label"].replace("_", " "), "texts": int(kv["texts"]), "bytes": int(kv["bytes"])}
        order.append(key)
    rows[key][kv["engine"]] = (float(kv["mb_per_s"]), int(kv["tokens"]))
print("| tokenizer | input | tokens | fastchat MB/s | HF MB/s | fastchat / HF |")
print("|---|---|---:|---:|---:|---:|")
for key in order:
    r = rows[key]
    ours, hf = r.get("fastchat"), r.get("hf")
    inp = (f"{r['texts']} texts, {r['bytes'] / 1e3:.0f} kB" if key[1] == "texts"
           else f"one text, {r['bytes'] / 1e3:.0f} kB")
    if ours and hf and ours[1] != hf[1]:
        tokens = f"**MISMATCH** {ours[1]} vs {hf[1]}"
    else:
        tokens = str((ours or hf or (0, "-"))[1])
    fmt = lambda x: f"{x[0]:.2f}" if x else "-"
    ratio = f"{ours[0] / hf[0]:.1f}x" if ours and hf and hf[0] > 0 else "-"
    print(f"| {r['label']} | {inp} | {tokens} | {fmt(ours)} | {fmt(hf)} | {ratio} |")
EOF
    if [ $mismatch = 1 ]; then
        echo
        echo "**Token counts differ between fastchat and Hugging Face: see MISMATCH above.**"
    fi
} > "$OUT/tokenizer.md"
cat "$OUT/tokenizer.md"
if [ $mismatch = 1 ]; then
    log "!!! token counts differ between fastchat and Hugging Face (MISMATCH rows in $OUT/tokenizer.md) !!!"
    exit 2
fi
log "table in $OUT/tokenizer.md, logs in $OUT/logs/tokbench_*"
