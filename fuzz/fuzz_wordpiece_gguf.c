/*
 * fuzz_wordpiece_gguf.c: libFuzzer target for the WordPiece vocabulary of a
 * GGUF "bert" file (tokenizer/wordpiece_gguf.c): the input is a GGUF file;
 * when it parses and holds a usable "bert" vocabulary, a few texts are
 * tokenized with it and every id must lie inside the vocabulary.
 * Seeds: tests/data/fuzz/fuzz_wordpiece_gguf/ (small bert vocabularies).
 */
#include "format/gguf.h"
#include "tokenizer/wordpiece.h"

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
    fc_wordpiece *wp = fc_wordpiece_from_gguf(g, "fuzz");
    if (wp) {
        static const char *texts[] = {"hello world", "Ünïcödé café 東京!", "", "[CLS] a##b [SEP] x"};
        const int n = fc_wordpiece_n_vocab(wp);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            int32_t *ids = NULL;
            int k = fc_wordpiece_encode(wp, texts[i], strlen(texts[i]), true, 16, &ids);
            EXPECT(k >= 0 && k <= 16);
            for (int j = 0; j < k; j++) EXPECT(ids[j] >= 0 && ids[j] < n);
            free(ids);
        }
        fc_wordpiece_free(wp);
    }
    fc_gguf_free(g);
    return 0;
}
