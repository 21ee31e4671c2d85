#!/usr/bin/env bash
# bench_families.sh [BIN]: FastChat-C against llama.cpp on random-weight GGUFs
# of the other decoder-only families (part of `make bench`, step 6c):
#   gemma2  Gemma-2-2B shape with 8 of its 26 layers (1.2B parameters)
#   phi3    Phi-3-mini shape with 10 of its 32 layers (1.3B)
#   moe     a Mixtral of 16 layers: 8 experts, top-2 (1.2B; file random-moe16-*)
# (bench/make_random_gguf.c --shape ...; cached in ~/.cache/fastchat/bench/),
# each in Q4_0 and Q8_0. Per model, prefill (pp128) and decode (tg32) of
# `fastchat bench` and llama-bench with the same thread count, repetitions
# alternating between the engines (who goes first swaps), averaged by
# bench/report.py. Writes build/bench/families.md (the table, ratio column
# "ours / llama.cpp") and prints one line per model and test:
#   ratio: random GEMMA2 Q4_0 pp128: ours 41.2 t/s, llama.cpp 38.0 t/s -> 1.08x
#
# T5 (encoder-decoder; llama-bench cannot run it): a random Flan-T5-large
# shaped GGUF (783M parameters, tools/bench/make_random_t5_gguf.py) in F16 and
# Q8_0 (llama-quantize), `fastchat generate --verbose` against llama.cpp's
# llama-completion on the same ~128-token prompt, greedy, --ignore-eos:
#   pp_encoder  the encoder over the prompt (~400 tokens of the bench vocabulary). Ours: the encoder's own timer.
#               llama.cpp books its encoder pass under "unaccounted time" (no prompt
#               eval is counted for it), so its figure is that time with the
#               prompt minus that time with a one-word prompt (two -n 1 runs)
#   tg<G>       decoder tokens/s (llama.cpp: "eval time", G runs)
#
# Knobs: BENCH_THREADS (2), BENCH_FAMILY_SHAPES ("gemma2 phi3 moe"),
#        BENCH_FAMILY_TYPES ("q4_0 q8_0"), BENCH_FAMILY_REPS (2),
#        BENCH_FAMILY_PROMPT (128), BENCH_FAMILY_GEN (32), BENCH_TIMEOUT (600),
#        BENCH_OURS_ONLY=1 (no llama.cpp), LLAMACPP_PY_VERSION (build_llamacpp.sh),
#        BENCH_FAMILY_T5 (1; 0 skips T5), BENCH_FAMILY_T5_SHAPE (large|base|small),
#        BENCH_FAMILY_T5_TYPES ("f16 q8_0"), PYTHON (.venv/bin/python: numpy, gguf).
# FASTCHAT_Q4_ACT8=1 in the environment runs our packed q4_0 with 8-bit
# activations (llama.cpp's precision; off by default, see arch_llama.c):
# compare both, e.g. FASTCHAT_Q4_ACT8=1 BENCH_OUT=build/bench_a8 scripts/bench_families.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/fastchat}
BINDIR=$(dirname "$BIN")
OUT=${BENCH_OUT:-build/bench}
CACHE="${FASTCHAT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fastchat}"
MODELS="$CACHE/bench"
T=${BENCH_THREADS:-2}
REPS=${BENCH_FAMILY_REPS:-2}
P=${BENCH_FAMILY_PROMPT:-128}
G=${BENCH_FAMILY_GEN:-32}
TIMEOUT=${BENCH_TIMEOUT:-600}
mkdir -p "$OUT/logs" "$MODELS"
RAW="$OUT/families_raw.tsv"
: > "$RAW"
log() { echo "bench_families: $*" >&2; }
# shellcheck source=scripts/bench_lib.sh
. scripts/bench_lib.sh
run_to() {
    local logf=$1; shift
    timeout "$TIMEOUT" "$@" >"$logf" 2>"$logf.err" </dev/null
    local rc=$?
    [ $rc -ne 0 ] && { log "  ($(basename "$1") exited with $rc; log: $logf.err)"; tail -n 5 "$logf.err" | sed 's/^/    | /' >&2; }
    return 0
}
[ -x "$BIN" ] || { log "$BIN not built (run make first)"; exit 1; }

LL=""
if [ "${BENCH_OURS_ONLY:-0}" != 1 ]; then
    LL=$(LLAMACPP_TARGETS="llama-bench llama-batched-bench llama-simple llama-quantize llama-completion" \
         scripts/build_llamacpp.sh 2>"$OUT/logs/build_llamacpp_families.log") ||
        { log "llama.cpp did not build (log: $OUT/logs/build_llamacpp_families.log); only our figures follow"; LL=""; }
fi

GEN="$OUT/make_random_gguf"
LIB="$BINDIR/libfastchat.a"
if [ ! -x "$GEN" ] || [ bench/make_random_gguf.c -nt "$GEN" ] || [ "$LIB" -nt "$GEN" ]; then
    cc -std=c11 -O3 -march=native -D_GNU_SOURCE -pthread -Isrc bench/make_random_gguf.c "$LIB" \
       -lcjson -lpcre2-8 -lutf8proc -lm -lpthread -o "$GEN" 2>"$OUT/logs/make_random_gguf.build.log" ||
        { log "make_random_gguf did not build (log: $OUT/logs/make_random_gguf.build.log)"; exit 1; }
fi

META="$OUT/families_meta.txt"
{ echo "threads: $T, reps: $REPS, pp$P, tg$G"; echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$META"

LIST=()
for shape in ${BENCH_FAMILY_SHAPES-gemma2 phi3 moe}; do
    for t in ${BENCH_FAMILY_TYPES:-q4_0 q8_0}; do
        # the issue's "at least 1B": the moe shape's 8 layers are 0.6B, 16 are 1.2B
        extra=(); tag=$shape
        [ "$shape" = moe ] && { extra=(--layers 16); tag=moe16; }
        f="$MODELS/random-$tag-$t.gguf"
        if [ ! -s "$f" ]; then
            log "writing random $tag $t model to $f"
            "$GEN" --shape "$shape" --type "$t" "${extra[@]}" --out "$f.part" --threads "$(nproc)" 2>&1 | sed 's/^/    /' >&2
            [ -s "$f.part" ] && mv "$f.part" "$f"
        fi
        [ -s "$f" ] && LIST+=("$f")
    done
done

for f in "${LIST[@]}"; do
    b=$(basename "$f" .gguf)                 # random-gemma2-q4_0
    shape=${b#random-}; shape=${shape%-*}; t=${b##*-}
    label="random $(echo "$shape" | tr a-z A-Z) $(echo "$t" | tr a-z A-Z)"
    slug=$(echo "$label" | tr ' /' '__')
    ours() {
        log "[$label] fastchat bench (r$1)"
        run_to "$OUT/logs/fam_ours_${slug}_r$1.log" "$BIN" bench --model-path "$f" --threads "$T" --reps 1 \
            --prompt "$P" --gen "$G" --depths 0 --batches ''
        python3 bench/report.py parse-ours "$label" "$OUT/logs/fam_ours_${slug}_r$1.log" >> "$RAW"
    }
    theirs() {
        [ -n "$LL" ] || return 0
        log "[$label] llama-bench (r$1)"
        run_to "$OUT/logs/fam_llama_${slug}_r$1.json" "$LL/llama-bench" -m "$f" -t "$T" -r 1 -o json \
            ${BENCH_LLAMA_ARGS:-} -p "$P" -n "$G"
        python3 bench/report.py parse-llama-bench "$label" "$OUT/logs/fam_llama_${slug}_r$1.json" >> "$RAW"
    }
    for r in $(seq 1 "$REPS"); do
        wait_quiet > /dev/null
        if [ $((r % 2)) = 1 ]; then ours "$r"; theirs "$r"; else theirs "$r"; ours "$r"; fi
    done
done

# ---- T5: encoder (pp) and decoder (tg) against llama-completion ----
T5_TEXT="The history of the city begins with a small village on the river, where farmers and traders met every week to sell grain, fish, wool and tools. Over the centuries the village grew into a market town with a stone bridge, a church, a school and a town hall. Merchants built houses along the main street, and the harbour brought ships from distant ports carrying spices, cloth and news of the world. In the nineteenth century the railway arrived, factories opened near the station, and thousands of workers moved in from the countryside."
t5_row() { printf '%s\t%s\t%s\t%s\t\t\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >> "$RAW"; }
if [ "${BENCH_FAMILY_T5:-1}" = 1 ]; then
    PY=${PYTHON:-.venv/bin/python}
    T5S=${BENCH_FAMILY_T5_SHAPE:-large}
    f16="$MODELS/random-t5$T5S-f16.gguf"
    if [ ! -s "$f16" ]; then
        log "writing random T5 ($T5S) f16 model to $f16"
        "$PY" tools/bench/make_random_t5_gguf.py "$f16.part" --shape "$T5S" --type f16 >&2 && mv "$f16.part" "$f16"
    fi
    for t in ${BENCH_FAMILY_T5_TYPES:-f16 q8_0}; do
        f="$MODELS/random-t5$T5S-$t.gguf"
        if [ ! -s "$f" ] && [ -s "$f16" ]; then
            log "quantizing $f16 to $t"
            if [ -n "$LL" ]; then "$LL/llama-quantize" "$f16" "$f.part" "$t" > "$OUT/logs/t5_quantize_$t.log" 2>&1
            else "$BIN" quantize --model-path "$f16" --type "$t" --out "$f.part" > "$OUT/logs/t5_quantize_$t.log" 2>&1; fi
            [ -s "$f.part" ] && mv "$f.part" "$f"
        fi
        [ -s "$f" ] || { log "no T5 $t model ($f)"; continue; }
        label="random T5-$(echo "$T5S" | tr a-z A-Z) $(echo "$t" | tr a-z A-Z)"
        slug=$(echo "$label" | tr ' /' '__')
        t5_ours() {
            local lg="$OUT/logs/fam_ours_${slug}_r$1.log"
            log "[$label] fastchat generate (r$1)"
            run_to "$lg" "$BIN" generate --model-path "$f" --prompt "$T5_TEXT" --max-new-tokens "$G" --ignore-eos \
                --threads "$T" --verbose
            # encoder: 104 tokens in 0.284 s / decode: 32 tokens in 0.391 s (81.8 tokens/s)
            read -r n s < <(sed -n 's/^encoder: \([0-9]*\) tokens in \([0-9.]*\) s.*/\1 \2/p' "$lg.err")
            [ -n "${s:-}" ] && t5_row "$label" pp_encoder ours "$(python3 -c "print($n / $s)")" "$n prompt tokens"
            read -r n s < <(sed -n 's/^decode: \([0-9]*\) tokens in \([0-9.]*\) s.*/\1 \2/p' "$lg.err")
            [ -n "${s:-}" ] && t5_row "$label" "tg$n" ours "$(python3 -c "print($n / $s)")"
        }
        t5_theirs() {
            [ -n "$LL" ] || return 0
            local lg="$OUT/logs/fam_llama_${slug}_r$1" n s u1 up np
            log "[$label] llama-completion (r$1)"
            run_to "$lg.tg.log" "$LL/llama-completion" -m "$f" -t "$T" -p "$T5_TEXT" -n "$G" --ignore-eos -no-cnv --temp 0
            run_to "$lg.pp.log" "$LL/llama-completion" -m "$f" -t "$T" -p "$T5_TEXT" -n 1 --ignore-eos -no-cnv --temp 0
            run_to "$lg.p1.log" "$LL/llama-completion" -m "$f" -t "$T" -p "Hello" -n 1 --ignore-eos -no-cnv --temp 0
            # common_perf_print:        eval time =  1637.97 ms /    32 runs   (...)
            read -r s n < <(sed -n 's/.*common_perf_print: *eval time = *\([0-9.]*\) ms \/ *\([0-9]*\) runs.*/\1 \2/p' "$lg.tg.log.err")
            [ -n "${s:-}" ] && t5_row "$label" "tg$n" llama.cpp "$(python3 -c "print($n / ($s / 1e3))")"
            unacc() { sed -n 's/.*common_perf_print: unaccounted time = *\([0-9.]*\) ms.*/\1/p' "$1"; }
            up=$(unacc "$lg.pp.log.err"); u1=$(unacc "$lg.p1.log.err")
            np=$(sed -n 's/.*common_perf_print: prompt eval time = .* \/ *\([0-9]*\) tokens.*/\1/p' "$lg.pp.log.err")
            n1=$(sed -n 's/.*common_perf_print: prompt eval time = .* \/ *\([0-9]*\) tokens.*/\1/p' "$lg.p1.log.err")
            [ -n "$up" ] && [ -n "$u1" ] && [ -n "$np" ] && [ -n "$n1" ] &&
                t5_row "$label" pp_encoder llama.cpp "$(python3 -c "print(($np - $n1) / (($up - $u1) / 1e3))")" "$np prompt tokens"
        }
        for r in $(seq 1 "$REPS"); do
            wait_quiet > /dev/null
            if [ $((r % 2)) = 1 ]; then t5_ours "$r"; t5_theirs "$r"; else t5_theirs "$r"; t5_ours "$r"; fi
        done
    done
fi

MEMBW="$OUT/membw.txt"; [ -s "$MEMBW" ] || MEMBW=/dev/null
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$META"
python3 bench/report.py render "$RAW" "$MEMBW" "$OUT/families.md" "$T" "$META" > /dev/null
# one line per model and test: the ratios
python3 - "$RAW" <<'PYEOF' | tee -a "$OUT/families.md"
import sys
vals = {}
for line in open(sys.argv[1]):
    p = line.rstrip("\n").split("\t")
    if len(p) >= 4 and p[3] and p[1].startswith(("pp", "tg")):
        vals.setdefault((p[0], p[1]), {}).setdefault(p[2], []).append(float(p[3]))
for (label, test), d in vals.items():
    o = sum(d["ours"]) / len(d["ours"]) if d.get("ours") else None
    l = sum(d["llama.cpp"]) / len(d["llama.cpp"]) if d.get("llama.cpp") else None
    r = f"{o / l:.2f}x" if o and l else "-"
    print(f"ratio: {label} {test}: ours {o or 0:.1f} t/s, llama.cpp {l or 0:.1f} t/s -> {r}")
PYEOF
