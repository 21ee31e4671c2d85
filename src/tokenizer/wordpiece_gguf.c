/*
 * wordpiece_gguf.c: the WordPiece tokenizer of a GGUF "bert" file
 * (tokenizer.ggml.model "bert", as llama.cpp's converter writes it), turned
 * back into the tokenizer.json form wordpiece.c reads.
 *
 * The converter's "phantom space" vocabulary: a control token (type 3) is
 * kept as it is, a continuation piece "##x" is stored as "x", every other
 * token t as "\u2581t". So: control -> as is, "\u2581t" -> "t", "x" -> "##x".
 * The normalizer is BertNormalizer with tokenizer.ggml.normalizer.lowercase
 * (default true, what llama.cpp's WPM tokenizer does; accents are stripped
 * when lowercasing, as transformers' default), the control tokens are the
 * added tokens, [CLS] is tokenizer.ggml.cls_token_id (else bos_token_id),
 * [SEP] tokenizer.ggml.seperator_token_id (else eos_token_id), [UNK]
 * tokenizer.ggml.unknown_token_id.
 */
#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "format/gguf.h"

#define PHANTOM "\xe2\x96\x81" /* U+2581 */

static bool gguf_id(const fc_gguf *g, const char *key, const char *key2, uint64_t n, int32_t *out)
{
    uint32_t v;
    if (!fc_gguf_get_u32(g, key, &v) && !(key2 && fc_gguf_get_u32(g, key2, &v))) return false;
    if (v >= n) return false;
    *out = (int32_t)v;
    return true;
}

fc_wordpiece *fc_wordpiece_from_gguf(const fc_gguf *g, const char *name)
{
    fc_gguf_str s;
    if (!fc_gguf_get_str(g, "tokenizer.ggml.model", &s) || s.len != 4 || memcmp(s.ptr, "bert", 4)) {
        FC_LOG_ERROR("%s: tokenizer.ggml.model is not \"bert\" (a WordPiece vocabulary)", name);
        return NULL;
    }
    enum fc_gguf_type et;
    uint64_t n = 0, nt = 0;
    const void *tt = NULL;
    if (!fc_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, NULL) || et != FC_GGUF_STRING || n == 0 ||
        n > (1u << 24)) {
        FC_LOG_ERROR("%s: tokenizer.ggml.tokens missing or not a string array", name);
        return NULL;
    }
    if (!fc_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &nt, &tt) || et != FC_GGUF_INT32 || nt != n) {
        FC_LOG_ERROR("%s: tokenizer.ggml.token_type missing or not %llu int32 values", name, (unsigned long long)n);
        return NULL;
    }
    int32_t unk, cls, sep;
    if (!gguf_id(g, "tokenizer.ggml.unknown_token_id", NULL, n, &unk) ||
        !gguf_id(g, "tokenizer.ggml.cls_token_id", "tokenizer.ggml.bos_token_id", n, &cls) ||
        !gguf_id(g, "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.eos_token_id", n, &sep)) {
        FC_LOG_ERROR("%s: tokenizer.ggml unknown / bos (cls) / eos (sep) token ids missing or out of range", name);
        return NULL;
    }
    bool lower = true;
    fc_gguf_get_bool(g, "tokenizer.ggml.normalizer.lowercase", &lower);

    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "WordPiece");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    char *unk_text = NULL;
    fc_wordpiece *wp = NULL;
    for (uint64_t i = 0; i < n; i++) {
        fc_gguf_str t;
        if (!fc_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &t) || t.len == 0 || t.len > 4096 ||
            memchr(t.ptr, 0, t.len)) {
            FC_LOG_ERROR("%s: token %llu of tokenizer.ggml.tokens is empty or malformed", name,
                         (unsigned long long)i);
            goto done;
        }
        int32_t type;
        memcpy(&type, (const uint8_t *)tt + 4 * i, 4);
        char *text;
        if (type == 3) text = fc_xasprintf("%.*s", (int)t.len, t.ptr);
        else if (t.len > 3 && !memcmp(t.ptr, PHANTOM, 3)) text = fc_xasprintf("%.*s", (int)t.len - 3, t.ptr + 3);
        else text = fc_xasprintf("##%.*s", (int)t.len, t.ptr);
        if (cJSON_GetObjectItemCaseSensitive(vocab, text)) {
            FC_LOG_ERROR("%s: token '%s' appears twice in tokenizer.ggml.tokens", name, text);
            free(text);
            goto done;
        }
        cJSON_AddNumberToObject(vocab, text, (double)i);
        if (type == 3) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", text);
            cJSON_AddItemToArray(added, a);
        }
        if ((int32_t)i == unk) unk_text = fc_xstrdup(text);
        free(text);
    }
    cJSON_AddStringToObject(model, "unk_token", unk_text);
    cJSON_AddStringToObject(model, "continuing_subword_prefix", "##");
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "BertNormalizer");
    cJSON_AddBoolToObject(norm, "lowercase", lower);
    cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "type", "BertPreTokenizer");
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON *sp = cJSON_AddObjectToObject(post, "special_tokens");
    cJSON_AddItemToObject(cJSON_AddObjectToObject(sp, "[CLS]"), "ids", cJSON_CreateIntArray((int[]){cls}, 1));
    cJSON_AddItemToObject(cJSON_AddObjectToObject(sp, "[SEP]"), "ids", cJSON_CreateIntArray((int[]){sep}, 1));
    char *json = cJSON_PrintUnformatted(root);
    if (json) wp = fc_wordpiece_parse(json, strlen(json), name);
    else FC_LOG_ERROR("%s: out of memory", name);
    free(json);
done:
    free(unk_text);
    cJSON_Delete(root);
    return wp;
}
