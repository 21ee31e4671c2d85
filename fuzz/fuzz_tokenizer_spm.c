/*
 * fuzz_tokenizer_spm.c: libFuzzer target for SentencePiece tokenizer.model
 * files (fc_tokenizer_from_spm, src/tokenizer/spm_model.c: the protobuf
 * reader, then load_gguf.c's "llama" path for BPE models, unigram.c for
 * Unigram ones, with their precompiled_charsmap).
 *
 * A hostile file must fail cleanly; one that loads must encode a few hard
 * strings into ids in range, decode them, and survive the GGUF export
 * (written keys load again with the same vocabulary size).
 * Seeds: tests/data/fuzz/fuzz_tokenizer_spm/ (small models trained with
 * sentencepiece by tools/golden/make_tiny_with_tokenizer.py).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "tokenizer/tok_impl.h"

static const char *const TEXTS[] = {
    "Hello world! I'm 12345 ", "  two  spaces\t\n", "<s></s><unk> <tool>x",
    "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 e\xCC\x81", "x\xC3(\xFF", "",
};

static void exercise(const fc_tokenizer *t)
{
    int32_t nv = fc_tokenizer_n_vocab(t);
    for (size_t k = 0; k < FC_ARRAY_LEN(TEXTS); k++) {
        int32_t *ids;
        int m = fc_tokenizer_encode(t, TEXTS[k], strlen(TEXTS[k]), true, k & 1, &ids);
        if (m < 0) abort();
        for (int i = 0; i < m; i++)
            if (ids[i] < 0 || ids[i] >= nv) abort();
        size_t dl;
        free(fc_tokenizer_decode(t, ids, (size_t)m, k & 2, &dl));
        free(ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_tokenizer *t = fc_tokenizer_from_spm(data, size, "fuzz.model");
    if (!t) return 0;
    exercise(t);
    fc_gguf_writer *w = fc_gguf_writer_new();
    if (t->uni) { /* a Unigram model (unigram.c): GGUF export refuses it */
        if (fc_tokenizer_to_gguf(t, w) == FC_OK) abort();
        fc_gguf_writer_free(w);
        fc_tokenizer_free(t);
        return 0;
    }
    if (fc_tokenizer_to_gguf(t, w) != FC_OK) abort(); /* BPE: always SentencePiece-style */
    fc_tokenizer *r = fc_tok_from_writer(w, "fuzz.gguf");
    if (!r || fc_tokenizer_n_vocab(r) != fc_tokenizer_n_vocab(t)) abort();
    exercise(r);
    fc_tokenizer_free(r);
    fc_gguf_writer_free(w);
    fc_tokenizer_free(t);
    return 0;
}
