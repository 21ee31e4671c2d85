/*
 * fuzz_tokenizer_gguf.c: libFuzzer target for the tokenizer of a GGUF file
 * (fc_tokenizer_from_gguf, src/tokenizer/load_gguf.c: the "gpt2", "llama"
 * and "t5" paths; "t5" builds a Unigram model with its precompiled_charsmap,
 * user-defined and byte pieces). The input is a GGUF file; when it parses and
 * its tokenizer loads, a few hard texts are encoded (every id in range) and
 * decoded, whole and streamed.
 * Seeds: tests/data/fuzz/fuzz_tokenizer_gguf/ (small "t5" and "llama"
 * vocabularies, tools/golden/make_fuzz_tokenizer_gguf.py).
 */
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#define EXPECT(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_gguf *g = fc_gguf_parse(data, size, "fuzz");
    if (!g) return 0;
    fc_tokenizer *t = fc_tokenizer_from_gguf(g, "fuzz");
    fc_gguf_free(g); /* nothing of g is borrowed */
    if (!t) return 0;
    static const char *texts[] = {"Hello world!  two  spaces\t\n", "</s><pad><unk> x", "",
                                  "\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 e\xCC\x81 \xEF\xBD\x86", "x\xC3(\xFF"};
    const int32_t nv = fc_tokenizer_n_vocab(t);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        int n = fc_tokenizer_encode(t, texts[i], strlen(texts[i]), i & 1, i & 2, &ids);
        EXPECT(n >= 0);
        for (int j = 0; j < n; j++) EXPECT(ids[j] >= 0 && ids[j] < nv);
        size_t len;
        char *s = fc_tokenizer_decode(t, ids, (size_t)n, i & 1, &len);
        free(s);
        fc_detok *d = fc_detok_new(t, false);
        for (int j = 0; j < n; j++) fc_detok_push(d, ids[j], &len);
        fc_detok_flush(d, &len);
        fc_detok_free(d);
        free(ids);
    }
    fc_tokenizer_free(t);
    return 0;
}
