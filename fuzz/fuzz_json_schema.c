/*
 * fuzz_json_schema.c: libFuzzer target for the JSON Schema translation and
 * the grammar engine (src/sampling/json_schema.c, grammar.c).
 *
 * The input is a JSON Schema text; it is also compiled as grammar text
 * (fc_grammar_parse), so both parsers see hostile input. Either must give a
 * grammar or an error message, never crash or leak. A grammar that compiles
 * is walked at random over a small synthetic vocabulary (every single byte
 * plus JSON-ish multi-byte pieces and split UTF-8 characters), and at each
 * step the token mask must equal brute force (advance a copy by each
 * token), the distance to completion must be finite, and the chosen token
 * must advance the state. Seeds: tests/data/fuzz/fuzz_json_schema/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "sampling/grammar.h"

static const char *EXTRA[] = {"{\"", "\":", "\": ", "\",", "\"}", " \"", "true", "false", "null", "[1", "},",
                              "\n  ", "\xc3\xa9", "\xe2\x82", "\xac\"", "ab", "12", ".5", "e+", "\\u00", "\\\""};
#define N_EXTRA (sizeof EXTRA / sizeof *EXTRA)
#define V (256 + N_EXTRA + 1) /* + one EOS */

static fc_grammar_vocab *vocab(void)
{
    static fc_grammar_vocab *v;
    if (v) return v;
    static char bytes[256];
    const char *pieces[V];
    size_t lens[V];
    for (int i = 0; i < 256; i++) {
        bytes[i] = (char)i;
        pieces[i] = &bytes[i];
        lens[i] = 1;
    }
    for (size_t i = 0; i < N_EXTRA; i++) {
        pieces[256 + i] = EXTRA[i];
        lens[256 + i] = strlen(EXTRA[i]);
    }
    pieces[V - 1] = NULL;
    lens[V - 1] = 0;
    int32_t eos = V - 1;
    v = fc_grammar_vocab_from_pieces(pieces, lens, V, &eos, 1);
    return v;
}

static void walk(const fc_grammar *g, uint64_t seed)
{
    fc_grammar_vocab *v = vocab();
    fc_grammar_matcher *m = fc_grammar_matcher_new(g, v);
    fc_grammar_state *s = fc_grammar_state_new(g), *t = fc_grammar_state_new(g);
    uint64_t mask[(V + 63) / 64];
    int32_t allowed[V];
    for (int step = 0; step < 24; step++) {
        fc_grammar_matcher_mask(m, s, mask);
        int n = 0;
        for (int32_t k = 0; k < (int32_t)V; k++) {
            fc_grammar_state_copy(t, s);
            bool want = fc_grammar_matcher_accept(m, t, k), got = (mask[k >> 6] >> (k & 63)) & 1;
            if (want != got) abort();
            if (got && k != (int32_t)V - 1) allowed[n++] = k;
        }
        if (fc_grammar_state_distance(s) == SIZE_MAX) abort();
        if (!n) {
            if (!fc_grammar_state_can_end(s)) abort(); /* a dead end */
            break;
        }
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        if (!fc_grammar_matcher_accept(m, s, allowed[(seed >> 33) % (uint64_t)n])) abort();
    }
    fc_grammar_state_free(s);
    fc_grammar_state_free(t);
    fc_grammar_matcher_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    if (size > 4096) return 0;
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++) seed = (seed ^ data[i]) * 1099511628211ull;
    char err[256];
    fc_grammar *g = fc_grammar_from_json_schema((const char *)data, size, err, sizeof err);
    if (g) {
        walk(g, seed);
        fc_grammar_free(g);
    } else if (!err[0]) {
        abort(); /* an error must say what */
    }
    char *rules = fc_json_schema_to_rules((const char *)data, size, "p-", err, sizeof err);
    if (!rules && !err[0]) abort();
    free(rules);
    g = fc_grammar_parse((const char *)data, size, err, sizeof err);
    if (g) {
        walk(g, seed);
        fc_grammar_free(g);
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
