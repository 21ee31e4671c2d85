#!/usr/bin/env bash
# bench.sh BIN: FastChat-C against llama.cpp on this machine (`make bench`).
#
#   1. builds llama.cpp (scripts/build_llamacpp.sh, cached outside the tree);
#   2. measures DRAM read bandwidth (bench/membw.c), the decode bound;
#   3. prepares the models: the default model as shipped (Q4_1) and
#      requantized to Q8_0 and Q4_0 (llama-quantize --allow-requantize, or
#      `fastchat quantize` when llama.cpp is missing), plus random-weight
#      Llama models of 1B (TinyLlama shape) and 7B (Llama-2 shape) made by
#      bench/make_random_gguf.c, all cached in ~/.cache/fastchat/bench/;
#   4. runs, interleaved model by model with the same thread count:
#      `fastchat bench`, llama-bench (pp, tg, tg at depth), llama-batched-bench
#      (batched decode), and a short generation of each under /usr/bin/time -v
#      (peak RSS, load time);
#   5. prints the table (bench/report.py) and writes it to build/bench/results.md.
#
# Knobs (environment):
#   BENCH_QUICK=1       a short run (~5 min): fewer tokens, one rep, no 7B
#   BENCH_THREADS=2     threads for both engines
#   BENCH_REPS=3        repetitions of each test
#   BENCH_RANDOM=0      skip the random 1B/7B models;  BENCH_7B=0 skips only 7B
#   BENCH_TYPES="q4_1 q8_0 q4_0"   default-model types to run
#   BENCH_TIMEOUT=600   seconds before one benchmark command is abandoned
#   BENCH_OURS_ONLY=1   do not build or run llama.cpp
#   BENCH_MOE=0         skip the random Mixtral (bench/make_random_gguf.c --shape moe)
#   BENCH_WAIT_QUIET=20 seconds to wait, before each repetition, for other work
#   BENCH_BUSY_PCT=15   on the machine to drop below this CPU percentage
#   BENCH_QUANT_PURE=1  requantize every matrix to the type (llama-quantize --pure);
#                       by default token_embd stays q8_0 as in the shipped file
#   BENCH_TOKENIZER=0   skip the tokenizer benchmark (scripts/bench_tokenizer.sh)
#   BENCH_TRAIN=0       skip the training benchmarks (scripts/bench_train_lora.sh, bench_train_mpi.sh)
#   BENCH_SERVE=0       skip the serving benchmark (scripts/bench_serve.sh)
#   BENCH_JSON=0        skip the structured-output benchmark (scripts/bench_json.py)
#   BENCH_FAMILIES=0    skip Gemma 2 / Phi-3 / Mixtral vs llama.cpp (scripts/bench_families.sh)
#   BENCH_JUDGE=0       skip the gen-answer benchmark (scripts/bench_judge.sh)
#   BENCH_LLAMA_ARGS    extra llama-bench flags (e.g. "--poll 0" on a busy host)
#   LLAMACPP_PY_VERSION the llama-cpp-python source distribution to take llama.cpp from
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=${1:-build/fastchat}
BINDIR=$(dirname "$BIN")
OUT=build/bench
CACHE="${FASTCHAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastchat}"
MODELS="$CACHE/bench"
QUICK=${BENCH_QUICK:-0}
T=${BENCH_THREADS:-2}
TIMEOUT=${BENCH_TIMEOUT:-600}
if [ "$QUICK" = 1 ]; then
    REPS=${BENCH_REPS:-1}; P=128; G=32; DEPTH=256; BATCHES=8; BCTX=32
    RANDOM_MODELS=${BENCH_RANDOM:-1}; DO7B=${BENCH_7B:-0}; RAND_TYPES_1B="q4_0"
else
    REPS=${BENCH_REPS:-3}; P=512; G=128; DEPTH=1024; BATCHES=8,32; BCTX=64
    RANDOM_MODELS=${BENCH_RANDOM:-1}; DO7B=${BENCH_7B:-1}; RAND_TYPES_1B="q4_0 q8_0 q4_1"
fi
TYPES=${BENCH_TYPES:-q4_1 q8_0 q4_0}
RAND_REPS=$(( REPS < 2 ? REPS : 2 ))
mkdir -p "$OUT/logs" "$MODELS"
RAW="$OUT/raw.tsv"
: > "$RAW"
: > "$OUT/busy.txt"
T0=$SECONDS

log() { echo "bench: $*" >&2; }
# run_to LOG cmd...: runs with a timeout, stdout to LOG, stderr to LOG.err;
# never fails the script (a missing figure shows as "-" in the table).
run_to() {
    local logf=$1; shift
    timeout "$TIMEOUT" "$@" >"$logf" 2>"$logf.err" </dev/null
    local rc=$?
    if [ $rc -ne 0 ]; then
        log "  ($(basename "$1") exited with $rc$([ $rc = 124 ] && echo ', timed out'); log: $logf.err)"
        tail -n 5 "$logf.err" | sed 's/^/    | /' >&2
    fi
    return 0
}
report() { python3 bench/report.py "$@" >> "$RAW"; }
slug() { echo "$1" | tr ' /' '__'; }
# cpu_busy, wait_quiet (prints the busy percent before each repetition)
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh

if [ ! -x "$BIN" ]; then
    echo "bench: $BIN not built (run make first)" >&2
    exit 1
fi

# ---- 1. llama.cpp ----
LL=""
if [ "${BENCH_OURS_ONLY:-0}" != 1 ]; then
    if LL=$(LLAMACPP_TARGETS="llama-bench llama-batched-bench llama-simple llama-quantize" \
            scripts/build_llamacpp.sh 2>"$OUT/logs/build_llamacpp.log"); then
        log "llama.cpp in $LL ($(cat "$LL/.stamp" 2>/dev/null))"
    else
        log "llama.cpp did not build (log: $OUT/logs/build_llamacpp.log); only our figures follow"
        tail -n 20 "$OUT/logs/build_llamacpp.log" | sed 's/^/    | /' >&2
        LL=""
    fi
fi

META="$OUT/meta.txt"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs; $(grep -o -w -E 'avx512f|avx512_vnni|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    llc=$(getconf LEVEL3_CACHE_SIZE 2>/dev/null || echo 0)
    [ -n "$llc" ] && [ "$llc" -gt 0 ] 2>/dev/null &&
        echo "last-level cache: $((llc / 1048576)) MiB (a model smaller than it is read partly from cache: its % of the DRAM bound can pass 100)"
    echo "threads: $T, reps: $REPS, quick: $QUICK"
    echo "fastchat: $(git rev-parse --short HEAD 2>/dev/null || echo '?') (plus uncommitted changes, if any)"
    if [ -n "$LL" ]; then echo "llama.cpp: from $(cat "$LL/.stamp" 2>/dev/null), GGML_NATIVE=ON"
    else echo "llama.cpp: not built"; fi
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$META"

# ---- 2. memory bandwidth ----
wait_quiet >> "$OUT/busy.txt"
if [ ! -x "$OUT/membw" ] || [ bench/membw.c -nt "$OUT/membw" ]; then
    cc -O3 -march=native -pthread -std=c11 bench/membw.c -o "$OUT/membw"
fi
"$OUT/membw" -t "$T" -r 10 | tee "$OUT/membw.txt" >&2
BW=$(awk -v t="$T" '/^membw: dram/ { for (i = 1; i <= NF; i++) { if ($i == "threads=" t) ok = 1; if ($i ~ /^best_gbs=/ && ok) { sub("best_gbs=", "", $i); print $i; exit } } }' "$OUT/membw.txt")
BW=${BW:-0}

# ---- 3. models ----
DEFAULT=$(scripts/fetch_model.sh)
declare -A MODEL
MODEL[q4_1]=$DEFAULT
have_our_quantize() { "$BIN" quantize --help >/dev/null 2>&1; }
for t in $TYPES; do
    [ "$t" = q4_1 ] && continue
    dst="$MODELS/SmolLM2-135M-Instruct.$(echo "$t" | tr a-z A-Z)${BENCH_QUANT_PURE:+-pure}.gguf"
    if [ ! -s "$dst" ]; then
        log "requantizing the default model to $t"
        if [ -n "$LL" ] && [ -x "$LL/llama-quantize" ]; then
            "$LL/llama-quantize" --allow-requantize ${BENCH_QUANT_PURE:+--pure} "$DEFAULT" "$dst.part" "$(echo "$t" | tr a-z A-Z)" 2 \
                >"$OUT/logs/quantize_$t.log" 2>&1 && mv "$dst.part" "$dst"
        elif have_our_quantize; then
            "$BIN" quantize --model-path "$DEFAULT" --type "$t" --out "$dst.part" \
                >"$OUT/logs/quantize_$t.log" 2>&1 && mv "$dst.part" "$dst"
        fi
        [ -s "$dst" ] || { log "  could not make $t (log: $OUT/logs/quantize_$t.log)"; rm -f "$dst.part"; continue; }
    fi
    MODEL[$t]=$dst
done

RANDOM_LIST=()
if [ "$RANDOM_MODELS" = 1 ]; then
    LIB="$BINDIR/libfastchat.a"
    GEN="$OUT/make_random_gguf"
    if [ ! -x "$GEN" ] || [ bench/make_random_gguf.c -nt "$GEN" ] || [ "$LIB" -nt "$GEN" ]; then
        cc -std=c11 -O3 -march=native -D_GNU_SOURCE -pthread -Isrc bench/make_random_gguf.c "$LIB" \
           -lcjson -lpcre2-8 -lutf8proc -lm -lpthread -o "$GEN" 2>"$OUT/logs/make_random_gguf.build.log" \
           || log "make_random_gguf did not build (log: $OUT/logs/make_random_gguf.build.log)"
    fi
    want=()
    for t in $RAND_TYPES_1B; do want+=("1b:$t"); done
    [ "$DO7B" = 1 ] && want+=("7b:q4_0")
    [ "${BENCH_MOE:-1}" = 1 ] && want+=("moe:q4_0")   # a small random Mixtral (8 experts, top-2)
    for st in "${want[@]}"; do
        shape=${st%%:*}; t=${st##*:}
        f="$MODELS/random-$shape-$t.gguf"
        if [ ! -s "$f" ] && [ -x "$GEN" ]; then
            log "writing random $shape $t model to $f"
            "$GEN" --shape "$shape" --type "$t" --out "$f" --threads "$(nproc)" 2>&1 | sed 's/^/    /' >&2
        fi
        [ -s "$f" ] && RANDOM_LIST+=("$f")
    done
fi
log "models ready after $((SECONDS - T0)) s"

# ---- 4. runs ----
SHORT_IDS=1,9690,198,2683,359,253,5356,5646,30,2
# Each call runs one repetition; the repetitions of the two engines alternate
# (see below) and bench/report.py averages them.
ours_bench() { # label tag model extra-args...
    local label=$1 tag=$2 m=$3; shift 3
    log "[$label] fastchat bench ($tag)"
    local lf="$OUT/logs/ours_$(slug "$label")_$tag.log"
    run_to "$lf" "$BIN" bench --model-path "$m" --threads "$T" --reps 1 --bw-gbs "$BW" "$@"
    report parse-ours "$label" "$lf"
}
llama_bench() { # label tag model args...
    local label=$1 tag=$2 m=$3; shift 3
    [ -n "$LL" ] || return 0
    log "[$label] llama-bench $* ($tag)"
    local lf="$OUT/logs/llama_$(slug "$label")_$tag.json"
    run_to "$lf" "$LL/llama-bench" -m "$m" -t "$T" -r 1 -o json ${BENCH_LLAMA_ARGS:-} "$@"
    report parse-llama-bench "$label" "$lf"
}
llama_batched() { # label tag model
    local label=$1 tag=$2 m=$3
    [ -n "$LL" ] && [ -n "$BATCHES" ] || return 0
    local maxb=${BATCHES##*,}
    local ctx=$(( maxb * (BCTX + G / 4) + 256 ))
    log "[$label] llama-batched-bench -npl $BATCHES ($tag)"
    local lf="$OUT/logs/llama_$(slug "$label")_$tag.jsonl"
    run_to "$lf" "$LL/llama-batched-bench" -m "$m" -t "$T" -tb "$T" \
        -c "$ctx" -b 2048 -ub 512 -npp "$BCTX" -ntg $(( G / 4 )) -npl "$BATCHES" --output-format jsonl
    report parse-batched "$label" "$lf"
}
# Peak RSS of a short generation (16 tokens) of each engine under
# /usr/bin/time -v, and llama.cpp's load time: llama-simple's "load time"
# runs from the start of loading to the end of the first prompt evaluation,
# so the prompt evaluation is subtracted. (llama-simple has no thread flag;
# its wall time is therefore not compared.)
short_gen() { # label model
    local label=$1 m=$2
    log "[$label] short generations under /usr/bin/time -v"
    local lo="$OUT/logs/time_ours_$(slug "$label").log" ll="$OUT/logs/time_llama_$(slug "$label").log"
    run_to "$lo" /usr/bin/time -v "$BIN" generate --model-path "$m" \
        --prompt-ids "$SHORT_IDS" --max-new-tokens 16 --threads "$T" --ignore-eos
    report parse-time "$label" ours "$lo.err"
    if [ -n "$LL" ]; then
        run_to "$ll" /usr/bin/time -v "$LL/llama-simple" -m "$m" -n 16 "Hello, my name is"
        report parse-time "$label" llama.cpp "$ll.err"
    fi
}

# Repetition r of ours and of llama.cpp run back to back, and who goes first
# alternates, so that the host's drift (it is shared and noisy) hits both.
for t in $TYPES; do
    m=${MODEL[$t]:-}
    [ -n "$m" ] || continue
    label="SmolLM2-135M $(echo "$t" | tr a-z A-Z)"
    ours() { ours_bench "$label" "r$1" "$m" --prompt "$P" --gen "$G" --depths "0,$DEPTH" --batches "$BATCHES" --batch-ctx "$BCTX"; }
    theirs() {
        llama_bench "$label" "pp_tg_r$1" "$m" -p "$P" -n "$G"
        llama_bench "$label" "depth_r$1" "$m" -p 0 -n "$G" -d "$DEPTH"
        llama_batched "$label" "batched_r$1" "$m"
    }
    for r in $(seq 1 "$REPS"); do
        wait_quiet >> "$OUT/busy.txt"
        if [ $((r % 2)) = 1 ]; then ours "$r"; theirs "$r"; else theirs "$r"; ours "$r"; fi
    done
    short_gen "$label" "$m"
done

for f in "${RANDOM_LIST[@]}"; do
    b=$(basename "$f" .gguf)                 # random-1b-q4_0
    shape=${b#random-}; shape=${shape%%-*}; t=${b##*-}
    label="random $(echo "$shape" | tr a-z A-Z) $(echo "$t" | tr a-z A-Z)"
    ours() { ours_bench "$label" "r$1" "$f" --prompt 128 --gen 32 --depths 0 --batches ''; }
    theirs() { llama_bench "$label" "pp_tg_r$1" "$f" -p 128 -n 32; }
    for r in $(seq 1 "$RAND_REPS"); do
        wait_quiet >> "$OUT/busy.txt"
        if [ $((r % 2)) = 1 ]; then ours "$r"; theirs "$r"; else theirs "$r"; ours "$r"; fi
    done
done

# ---- 5. table ----
"$OUT/membw" -t "$T" -r 10 | sed 's/^membw: dram/membw: dram-end/' >> "$OUT/membw.txt"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$META"
echo "duration: $((SECONDS - T0)) s" >> "$META"
if [ -s "$OUT/busy.txt" ]; then
    echo "CPU in use by other work just before each repetition: $(sort -n "$OUT/busy.txt" | tr '\n' ' ')(percent)" >> "$META"
fi
python3 bench/report.py render "$RAW" "$OUT/membw.txt" "$OUT/results.md" "$T" "$META"

# ---- 6. tokenizers: encode MB/s against Hugging Face tokenizers ----
if [ "${BENCH_TOKENIZER:-1}" = 1 ]; then
    log "tokenizers (scripts/bench_tokenizer.sh)"
    if BENCH_QUICK=$QUICK scripts/bench_tokenizer.sh "$BINDIR" >"$OUT/logs/bench_tokenizer.log" 2>&1; then
        { echo; cat "$OUT/tokenizer.md"; } >> "$OUT/results.md"
        cat "$OUT/tokenizer.md"
    else
        log "tokenizer benchmark failed or token counts differ (log: $OUT/logs/bench_tokenizer.log)"
    fi
fi
# ---- 6b. embeddings: all-MiniLM-L6-v2 against sentence-transformers ----
if [ "${BENCH_EMBED:-1}" = 1 ]; then
    log "embeddings (scripts/bench_embed.sh)"
    if scripts/bench_embed.sh "$BINDIR" >"$OUT/logs/bench_embed.log" 2>&1 && [ -s "$OUT/embed.md" ]; then
        { echo; cat "$OUT/embed.md"; } >> "$OUT/results.md"
        cat "$OUT/embed.md"
    else
        log "embedding benchmark failed (log: $OUT/logs/bench_embed.log)"
    fi
fi
# ---- 6c. Gemma 2, Phi-3, Mixtral random GGUFs against llama.cpp ----
if [ "${BENCH_FAMILIES:-1}" = 1 ]; then
    log "model families (scripts/bench_families.sh)"
    if BENCH_THREADS=$T BENCH_OUT=$OUT scripts/bench_families.sh "$BIN" >"$OUT/logs/bench_families.log" 2>&1 &&
       [ -s "$OUT/families.md" ]; then
        { echo; cat "$OUT/families.md"; } >> "$OUT/results.md"
        cat "$OUT/families.md"
    else
        log "families benchmark failed (log: $OUT/logs/bench_families.log)"
    fi
fi
# ---- 6d. training speed: fastchat train against torch (full fine-tune and LoRA) ----
# BENCH_TRAIN_SPEED=0 skips it; the torch side needs BENCH_TORCH_PYTHON (scripts/bench_train.sh)
if [ "${BENCH_TRAIN_SPEED:-1}" = 1 ]; then
    log "training speed (scripts/bench_train.sh)"
    if timeout "$((3 * TIMEOUT))" scripts/bench_train.sh "$BIN" >"$OUT/train_speed.txt" 2>"$OUT/logs/bench_train.log"; then
        { echo; echo '```'; cat "$OUT/train_speed.txt"; echo '```'; } >> "$OUT/results.md"
        cat "$OUT/train_speed.txt"
    else
        log "training speed benchmark failed (log: $OUT/logs/bench_train.log)"
    fi
fi
# ---- 7. serving: the HTTP API against llama-server at 1, 4, 16 and 64 clients ----
if [ "${BENCH_SERVE:-1}" = 1 ]; then
    log "serving (scripts/bench_serve.sh)"
    if BENCH_QUICK=$QUICK BENCH_THREADS=$T scripts/bench_serve.sh "$BINDIR" >"$OUT/logs/bench_serve.log" 2>&1 &&
       [ -s "$OUT/serve.md" ]; then
        { echo; cat "$OUT/serve.md"; } >> "$OUT/results.md"
        cat "$OUT/serve.md"
    else
        log "serving benchmark failed (log: $OUT/logs/bench_serve.log)"
    fi
fi
# ---- 8. structured outputs: decode with a JSON Schema vs unconstrained ----
if [ "${BENCH_JSON:-1}" = 1 ]; then
    log "structured outputs (scripts/bench_json.py)"
    if BENCH_THREADS=$T timeout "$TIMEOUT" python3 scripts/bench_json.py "$BIN" "$DEFAULT" >"$OUT/json.txt" 2>"$OUT/logs/bench_json.log" &&
       [ -s "$OUT/json.txt" ]; then
        { echo; cat "$OUT/json.txt"; } >> "$OUT/results.md"
        cat "$OUT/json.txt"
    else
        log "structured-output benchmark failed (log: $OUT/logs/bench_json.log)"
    fi
fi
# ---- 9. MT-bench answers: gen-answer batched against one question at a time ----
if [ "${BENCH_JUDGE:-1}" = 1 ]; then
    log "judge gen-answer (scripts/bench_judge.sh)"
    if BENCH_QUICK=$QUICK BENCH_THREADS=$T timeout "$((3 * TIMEOUT))" scripts/bench_judge.sh "$BIN" "$DEFAULT" >"$OUT/judge.md" \
           2>"$OUT/logs/bench_judge.log" && [ -s "$OUT/judge.md" ]; then
        { echo; cat "$OUT/judge.md"; } >> "$OUT/results.md"
        cat "$OUT/judge.md"
    else
        log "judge benchmark failed (log: $OUT/logs/bench_judge.log)"
    fi
fi
# ---- 10. training: LoRA identity end to end, MPI data parallel memory ----
if [ "${BENCH_TRAIN:-1}" = 1 ]; then
    for s in train_lora train_mpi; do
        log "training (scripts/bench_$s.sh)"
        if timeout "$((3 * TIMEOUT))" "scripts/bench_$s.sh" "$BIN" >"$OUT/$s.txt" 2>"$OUT/logs/bench_$s.log"; then
            { echo; echo '```'; cat "$OUT/$s.txt"; echo '```'; } >> "$OUT/results.md"
            cat "$OUT/$s.txt"
        else
            log "training benchmark $s failed (log: $OUT/logs/bench_$s.log, $OUT/$s.txt)"
        fi
    done
fi
log "total $((SECONDS - T0)) s; table in $OUT/results.md, logs in $OUT/logs/"
