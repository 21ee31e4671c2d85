/*
 * fuzz_wordpiece.c: libFuzzer target for the BERT WordPiece tokenizer
 * (tokenizer/wordpiece.h): its tokenizer.json parser and its encoder.
 *
 * Byte 0 picks the mode:
 *   bit 7 set: the rest is a tokenizer.json to parse (NULL or a tokenizer;
 *     a tokenizer must then encode "Hello, 世界 [CLS]" with ids in range);
 *   else: the rest is text to encode with a small built-in vocabulary
 *     (word pieces, ## continuations, CJK, accents, added tokens) and, when
 *     present, all-MiniLM-L6-v2's tokenizer.json ($FASTCHAT_EMBED_MODEL or
 *     the fetch_embed_model.sh cache path); bits 0-5 give max_len (0: none),
 *     bit 6 add_special. Every id must be in the vocabulary, the count at
 *     most max_len, and with add_special the first id [CLS] and the last [SEP].
 * Seeds: tests/data/fuzz/fuzz_wordpiece/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "tokenizer/wordpiece.h"

static const char SMALL[] =
    "{\"added_tokens\": [{\"id\": 0, \"content\": \"[PAD]\"}, {\"id\": 1, \"content\": \"[UNK]\"},"
    " {\"id\": 2, \"content\": \"[CLS]\"}, {\"id\": 3, \"content\": \"[SEP]\"}, {\"id\": 4, \"content\": \"[MASK]\"}],"
    " \"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": true, \"handle_chinese_chars\": true,"
    " \"strip_accents\": null, \"lowercase\": true},"
    " \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"special_tokens\": {\"[CLS]\": {\"ids\": [2]},"
    " \"[SEP]\": {\"ids\": [3]}}},"
    " \"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"continuing_subword_prefix\": \"##\","
    " \"max_input_chars_per_word\": 20, \"vocab\": {\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3,"
    " \"[MASK]\": 4, \"hello\": 5, \"world\": 6, \"##s\": 7, \"##ing\": 8, \"play\": 9, \"un\": 10,"
    " \"##able\": 11, \",\": 12, \".\": 13, \"!\": 14, \"世\": 15, \"界\": 16, \"cafe\": 17, \"a\": 18,"
    " \"##a\": 19, \"i\": 20, \"e\": 21, \"##e\": 22, \"x\": 23, \"##x\": 24, \"'\": 25, \"-\": 26}}}";

static fc_wordpiece *wps[2];
static int n_wps;

static void check(const fc_wordpiece *wp, const char *s, size_t n, int max_len, bool add_special)
{
    int32_t *ids = NULL;
    int k = fc_wordpiece_encode(wp, s, n, add_special, max_len, &ids);
    if (k < 0) return; /* allocation failure */
    if (max_len > 0 && k > (max_len < 2 && add_special ? 2 : max_len)) {
        fprintf(stderr, "%d ids over max_len %d\n", k, max_len);
        abort();
    }
    for (int i = 0; i < k; i++)
        if (!fc_wordpiece_token(wp, ids[i])) {
            fprintf(stderr, "id %d outside the vocabulary\n", ids[i]);
            abort();
        }
    if (add_special && (k < 2 || strcmp(fc_wordpiece_token(wp, ids[0]), "[CLS]") ||
                        strcmp(fc_wordpiece_token(wp, ids[k - 1]), "[SEP]"))) {
        fprintf(stderr, "no [CLS] ... [SEP]\n");
        abort();
    }
    free(ids);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    wps[n_wps++] = fc_wordpiece_parse(SMALL, sizeof SMALL - 1, "small");
    if (!wps[0]) abort();
    const char *env = getenv("FASTCHAT_EMBED_MODEL");
    char path[1024];
    if (env) snprintf(path, sizeof path, "%s", env);
    else snprintf(path, sizeof path, "%s/.cache/fastchat/models/all-MiniLM-L6-v2", getenv("HOME") ? getenv("HOME") : ".");
    fc_wordpiece *m = fc_wordpiece_load(path);
    if (m) wps[n_wps++] = m;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t b = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (b & 0x80) {
        fc_wordpiece *wp = fc_wordpiece_parse(s, n, "fuzz");
        if (wp) {
            static const char t[] = "Hello, \xe4\xb8\x96\xe7\x95\x8c [CLS]";
            check(wp, t, sizeof t - 1, 0, true);
            fc_wordpiece_free(wp);
        }
        return 0;
    }
    for (int i = 0; i < n_wps; i++) check(wps[i], s, n, b & 0x3f, (b & 0x40) != 0);
    return 0;
}
