/*
 * fuzz_tokenizer_json.c: libFuzzer target for the Hugging Face tokenizer
 * loader (fc_tokenizer_from_hf_json, src/tokenizer/load_hf.c) and for what a
 * loaded tokenizer is then asked to do.
 *
 * The input is a tokenizer.json; when it holds a NUL byte, what follows the
 * first one is a tokenizer_config.json. A file that loads must encode a set
 * of hard strings into ids in range, decode them (whole and streamed: equal
 * wherever the text has no U+FFFD and no Strip decoder has a `stop` count,
 * tokenizer.h), answer the vocabulary accessors, and survive the GGUF
 * export: fc_tokenizer_to_gguf either refuses the tokenizer or writes keys
 * that fc_tokenizer_from_gguf loads again.
 * Seeds: tests/data/fuzz/fuzz_tokenizer_json/ (small hand-made files).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "tokenizer/tok_impl.h"

static const char *const TEXTS[] = {
    "Hello world! I'm 12345 ",
    "  two  spaces\t\n\r\n",
    "<|im_end|><s></s><unk><mask> a <mask>",
    "\xE2\x96\x81x \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 e\xCC\x81",
    "x\xC3(\xF0\x9F\x98y\xFF",
    "",
};

static bool has_fffd(const char *s, size_t n) { return memmem(s, n, "\xEF\xBF\xBD", 3) != NULL; }

static void exercise(const fc_tokenizer *t, bool stream_exact)
{
    int32_t nv = fc_tokenizer_n_vocab(t);
    if (nv <= 0) abort();
    for (size_t k = 0; k < FC_ARRAY_LEN(TEXTS); k++) {
        for (int f = 0; f < 4; f++) {
            int32_t *ids;
            int m = fc_tokenizer_encode(t, TEXTS[k], strlen(TEXTS[k]), f & 1, f & 2, &ids);
            if (m < 0) abort();
            for (int i = 0; i < m; i++)
                if (ids[i] < 0 || ids[i] >= nv) abort();
            size_t dl, l, acc = 0;
            char *d = fc_tokenizer_decode(t, ids, (size_t)m, f & 1, &dl);
            fc_detok *st = fc_detok_new(t, f & 1);
            bool same = true;
            for (int i = 0; i <= m; i++) {
                const char *p = i < m ? fc_detok_push(st, ids[i], &l) : fc_detok_flush(st, &l);
                same = same && acc + l <= dl && !memcmp(d + acc, p, l);
                acc += l;
            }
            if (stream_exact && !has_fffd(d, dl) && (!same || acc != dl)) {
                fprintf(stderr, "stream != decode for text %zu, flags %d\n", k, f);
                abort();
            }
            fc_detok_free(st);
            free(d);
            free(ids);
        }
    }
    for (int32_t id = -1; id <= nv && id < 64; id++) {
        size_t l;
        const char *txt = fc_tokenizer_token_text(t, id);
        fc_tokenizer_token_to_piece(t, id, &l);
        if (txt) fc_tokenizer_find(t, txt, strlen(txt));
        fc_tokenizer_is_special(t, id);
        fc_tokenizer_is_eog(t, id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    const char *json = (const char *)data, *cfg = NULL;
    size_t len = size, cfg_len = 0;
    const char *nul = memchr(data, 0, size);
    if (nul) {
        len = (size_t)(nul - json);
        cfg = nul + 1;
        cfg_len = size - len - 1;
    }
    fc_tokenizer *t = fc_tokenizer_from_hf_json(json, len, cfg, cfg_len, "fuzz");
    if (!t) return 0;
    bool stream_exact = true;
    for (int i = 0; i < t->n_dec; i++) stream_exact &= !(t->dec[i].kind == TK_DEC_STRIP && t->dec[i].stop > 0);
    exercise(t, stream_exact);

    fc_gguf_writer *w = fc_gguf_writer_new();
    if (fc_tokenizer_to_gguf(t, w) == FC_OK) {
        fc_tokenizer *r = fc_tok_from_writer(w, "fuzz.gguf");
        if (!r) {
            fc_log_set_level(FC_LOG_LEVEL_ERROR);
            fprintf(stderr, "the exported GGUF does not load\n");
            r = fc_tok_from_writer(w, "fuzz.gguf");
            abort();
        }
        if (fc_tokenizer_n_vocab(r) != fc_tokenizer_n_vocab(t)) abort();
        exercise(r, true);
        fc_tokenizer_free(r);
    }
    fc_gguf_writer_free(w);
    fc_tokenizer_free(t);
    return 0;
}
