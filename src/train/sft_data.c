/*
 * sft_data.c: FastChat's `preprocess` (fastchat/train/train.py) in C: vicuna
 * rendering, tokenization with truncation and padding, and the turn masking
 * arithmetic described in sft_data.h. Python slice semantics are kept where
 * train.py slices (target[a:b] clamps to the array).
 */
#include "sft_data.h"

#include <string.h>
#include <cjson/cJSON.h>

#include "../base/file.h"
#include "../chat/conv.h"

/* len(tokenizer(text).input_ids): with special tokens, no truncation. */
static int count_tokens(const fc_tokenizer *tok, const char *s, size_t n)
{
    int32_t *ids = NULL;
    int k = fc_tokenizer_encode(tok, s, n, true, true, &ids);
    free(ids);
    return k;
}

/* target[a:b] = IGNORE with Python's clamping (a, b >= 0 here). */
static void mask_range(int32_t *t, int n, long a, long b)
{
    if (a < 0) a = 0;
    if (b > n) b = n;
    for (long i = a; i < b; i++) t[i] = FC_IGNORE_INDEX;
}

/* The next occurrence of needle in [s, end), or NULL. */
static const char *find(const char *s, const char *end, const char *needle)
{
    size_t nl = strlen(needle);
    for (const char *p = s; p + nl <= end; p++)
        if (memcmp(p, needle, nl) == 0) return p;
    return NULL;
}

void fc_sft_example_free(fc_sft_example *ex)
{
    if (!ex) return;
    free(ex->ids);
    free(ex->labels);
    memset(ex, 0, sizeof *ex);
}

enum fc_status fc_sft_preprocess(const fc_tokenizer *tok, const cJSON *convs,
                                 const fc_sft_params *p, fc_sft_example *out)
{
    memset(out, 0, sizeof *out);
    const int T = p->model_max_length;
    if (T <= 0 || !cJSON_IsArray(convs)) {
        FC_LOG_ERROR("%s: conversations must be an array and model_max_length > 0", __func__);
        return FC_ERR_FORMAT;
    }
    fc_conv *conv = fc_conv_new("vicuna_v1.1");
    if (!conv) return FC_ERR_UNSUPPORTED;
    enum fc_status st = FC_ERR_FORMAT;
    char *prompt = NULL;
    int32_t *raw = NULL;

    /* ---- render: drop a first message not from human, roles alternate ---- */
    int n_msg = cJSON_GetArraySize(convs);
    int first = 0, j = 0;
    for (int i = 0; i < n_msg; i++) {
        const cJSON *m = cJSON_GetArrayItem(convs, i);
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(m, "from");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(m, "value");
        if (!cJSON_IsString(from) || !cJSON_IsString(value)) {
            FC_LOG_ERROR("%s: message %d lacks a string from/value", __func__, i);
            goto done;
        }
        int role = !strcmp(from->valuestring, "human") ? 0 : !strcmp(from->valuestring, "gpt") ? 1 : -1;
        if (role < 0) {
            FC_LOG_ERROR("%s: message %d: unknown role '%s' (human or gpt)", __func__, i, from->valuestring);
            goto done;
        }
        if (i == 0 && role != 0) { first = 1; continue; }
        if (role != (i - first) % 2) {
            FC_LOG_ERROR("%s: message %d: roles must alternate human/gpt", __func__, i);
            goto done;
        }
        fc_conv_append_message(conv, role, value->valuestring);
        j++;
    }
    prompt = fc_conv_get_prompt(conv);
    if (!prompt) goto done;
    size_t plen = strlen(prompt);

    /* ---- tokenize: truncation keeps room for the special tokens ---- */
    int n_raw = fc_tokenizer_encode(tok, prompt, plen, false, true, &raw);
    if (n_raw < 0) { st = (enum fc_status)n_raw; goto done; }
    bool bos = fc_tokenizer_adds_bos(tok) && fc_tokenizer_bos(tok) >= 0;
    bool eos = fc_tokenizer_adds_eos(tok) && fc_tokenizer_eos(tok) >= 0;
    int room = T - (int)bos - (int)eos;
    if (room < 0) room = 0;
    int keep = FC_MIN(n_raw, room);
    out->ids = fc_xmalloc((size_t)T * sizeof(int32_t));
    out->labels = fc_xmalloc((size_t)T * sizeof(int32_t));
    out->n = T;
    int n = 0;
    if (bos && n < T) out->ids[n++] = fc_tokenizer_bos(tok);
    for (int i = 0; i < keep; i++) out->ids[n++] = raw[i];
    if (eos && n < T) out->ids[n++] = fc_tokenizer_eos(tok);
    out->n_tokens = n;
    for (int i = n; i < T; i++) out->ids[i] = p->pad_id;
    memcpy(out->labels, out->ids, (size_t)T * sizeof(int32_t));

    /* ---- mask (train.py's arithmetic) ---- */
    int32_t *target = out->labels;
    int total_len = 0;
    for (int i = 0; i < T; i++) total_len += out->ids[i] != p->pad_id;
    const char *sep2 = fc_conv_sep2(conv);
    char sep[64];
    snprintf(sep, sizeof sep, "%s%s: ", fc_conv_sep(conv), fc_conv_role(conv, 1));
    size_t sep_len = strlen(sep);
    size_t sep2_len = strlen(sep2);

    long cur_len = 1;
    mask_range(target, T, 0, cur_len);
    int n_turns = 1; /* len(conversation.split(sep2)) */
    for (const char *s = prompt, *end = prompt + plen; (s = find(s, end, sep2)); s += sep2_len)
        n_turns++;
    int i_turn = 0;
    for (const char *s = prompt, *end = prompt + plen; ; i_turn++) {
        const char *e = find(s, end, sep2);
        bool last = !e;
        if (!e) e = end;
        if (e == s) break; /* turn == "" */
        int turn_len = count_tokens(tok, s, (size_t)(e - s));
        const char *a = find(s, e, sep);
        if (!a || find(a + sep_len, e, sep)) break; /* len(parts) != 2 */
        /* parts[0] + sep: the instruction with the separator */
        int instruction_len = count_tokens(tok, s, (size_t)(a - s) + sep_len) - 2;
        if (i_turn != 0 && !p->legacy) instruction_len -= 1;
        mask_range(target, T, cur_len, cur_len + instruction_len);
        cur_len += turn_len;
        if (i_turn != 0 && !p->legacy) cur_len -= 1;
        if (last) break;
        s = e + sep2_len;
    }
    mask_range(target, T, cur_len, T);
    if (cur_len < T && cur_len != total_len) {
        mask_range(target, T, 0, T);
        out->mismatch = true;
        out->mismatch_cur = (int)cur_len;
        out->mismatch_total = total_len;
        out->mismatch_turns = n_turns - 1;
    }
    for (int i = 0; i < T; i++) out->n_label += target[i] != FC_IGNORE_INDEX;
    st = FC_OK;
done:
    if (st != FC_OK) fc_sft_example_free(out);
    free(raw);
    free(prompt);
    fc_conv_free(conv);
    return st;
}

/* ---- data set ---- */
struct fc_sft_dataset {
    int n;
    fc_sft_example *ex; /* (n) */
};

fc_sft_dataset *fc_sft_dataset_load(const char *path, const fc_tokenizer *tok, const fc_sft_params *p)
{
    size_t len = 0;
    char *text = fc_file_read(path, &len, (size_t)1 << 32);
    if (!text) return NULL;
    fc_sft_dataset *d = fc_xcalloc(1, sizeof *d);
    cJSON *root = cJSON_ParseWithLength(text, len);
    cJSON *jsonl = NULL;
    if (!root || !cJSON_IsArray(root)) {
        /* JSON Lines: one record per non-empty line */
        cJSON_Delete(root);
        root = NULL;
        jsonl = cJSON_CreateArray();
        for (char *s = text, *e; s < text + len; s = e + 1) {
            e = memchr(s, '\n', (size_t)(text + len - s));
            if (!e) e = text + len;
            const char *q = s;
            while (q < e && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
            if (q == e) continue;
            cJSON *rec = cJSON_ParseWithLength(s, (size_t)(e - s));
            if (!rec) {
                FC_LOG_ERROR("%s: %s: neither a JSON array nor JSON Lines", __func__, path);
                goto fail;
            }
            cJSON_AddItemToArray(jsonl, rec);
        }
    }
    const cJSON *arr = root ? root : jsonl;
    d->n = cJSON_GetArraySize(arr);
    d->ex = fc_xcalloc((size_t)FC_MAX(d->n, 1), sizeof *d->ex);
    for (int i = 0; i < d->n; i++) {
        const cJSON *rec = cJSON_GetArrayItem(arr, i);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(rec, "conversations");
        if (fc_sft_preprocess(tok, c, p, &d->ex[i]) != FC_OK) {
            char why[512]; /* fc_last_error's buffer is rewritten by the next log call */
            snprintf(why, sizeof why, "%s", fc_last_error());
            FC_LOG_ERROR("%s: %s: record %d: %s", __func__, path, i, why);
            goto fail;
        }
        if (d->ex[i].mismatch)
            fprintf(stderr, "WARNING: tokenization mismatch: %d vs. %d. #turn = %d. (ignored)\n",
                    d->ex[i].mismatch_cur, d->ex[i].mismatch_total, d->ex[i].mismatch_turns);
    }
    cJSON_Delete(root);
    cJSON_Delete(jsonl);
    free(text);
    return d;
fail:
    cJSON_Delete(root);
    cJSON_Delete(jsonl);
    free(text);
    fc_sft_dataset_free(d);
    return NULL;
}

void fc_sft_dataset_free(fc_sft_dataset *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) fc_sft_example_free(&d->ex[i]);
    free(d->ex);
    free(d);
}

int fc_sft_dataset_size(const fc_sft_dataset *d) { return d->n; }

const fc_sft_example *fc_sft_dataset_get(const fc_sft_dataset *d, int i)
{
    return i >= 0 && i < d->n ? &d->ex[i] : NULL;
}
