/*
 * sft_data.c: FastChat's `preprocess` (fastchat/train/train.py) in C: vicuna
 * rendering, tokenization with truncation and padding, and the turn masking
 * arithmetic described in sft_data.h. Python slice semantics are kept where
 * train.py slices (target[a:b] clamps to the array).
 */
#include "sft_data.h"

#include <string.h>
#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/str.h"
#include "chat/conv.h"

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

/* Renders convs into conv as FastChat's preprocess does: a first message not
 * from human is dropped, roles must then alternate. */
static enum fc_status render(fc_conv *conv, const cJSON *convs)
{
    int n_msg = cJSON_GetArraySize(convs);
    int first = 0;
    for (int i = 0; i < n_msg; i++) {
        const cJSON *m = cJSON_GetArrayItem(convs, i);
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(m, "from");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(m, "value");
        if (!cJSON_IsString(from) || !cJSON_IsString(value)) {
            FC_LOG_ERROR("%s: message %d lacks a string from/value", __func__, i);
            return FC_ERR_FORMAT;
        }
        int role = !strcmp(from->valuestring, "human") ? 0 : !strcmp(from->valuestring, "gpt") ? 1 : -1;
        if (role < 0) {
            FC_LOG_ERROR("%s: message %d: unknown role '%s' (human or gpt)", __func__, i, from->valuestring);
            return FC_ERR_FORMAT;
        }
        if (i == 0 && role != 0) { first = 1; continue; }
        if (role != (i - first) % 2) {
            FC_LOG_ERROR("%s: message %d: roles must alternate human/gpt", __func__, i);
            return FC_ERR_FORMAT;
        }
        fc_conv_append_message(conv, role, value->valuestring);
    }
    return FC_OK;
}

/* tokenizer(prompt, padding="max_length", truncation=True): special tokens
 * added, truncation keeps room for them; labels = a copy of the ids. */
static enum fc_status tokenize_pad(const fc_tokenizer *tok, const char *prompt, size_t plen,
                                   const fc_sft_params *p, fc_sft_example *out)
{
    const int T = p->model_max_length;
    int32_t *raw = NULL;
    int n_raw = fc_tokenizer_encode(tok, prompt, plen, false, true, &raw);
    if (n_raw < 0) return (enum fc_status)n_raw;
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
    free(raw);
    return FC_OK;
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
    enum fc_status st;
    char *prompt = NULL;

    if ((st = render(conv, convs)) != FC_OK) goto done;
    st = FC_ERR_NOMEM;
    prompt = fc_conv_get_prompt(conv);
    if (!prompt) goto done;
    size_t plen = strlen(prompt);
    if ((st = tokenize_pad(tok, prompt, plen, p, out)) != FC_OK) goto done;

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
    free(prompt);
    fc_conv_free(conv);
    return st;
}

/* len(tokenizer(s, add_special_tokens=False).input_ids) */
static int count_plain(const fc_tokenizer *tok, const char *s, size_t n)
{
    int32_t *ids = NULL;
    int k = fc_tokenizer_encode(tok, s, n, false, true, &ids);
    free(ids);
    return k;
}

/* train_with_template.py's get_prompt_separator: false for the styles it
 * does not know (Python fails there with a NameError). */
static bool prompt_separators(const fc_conv *conv, char *user, char *asst, size_t cap)
{
    const char *sep = fc_conv_sep(conv), *sep2 = fc_conv_sep2(conv);
    const char *role1 = fc_conv_role(conv, 1), *role0 = fc_conv_role(conv, 0);
    switch (fc_conv_sep_style(conv)) {
    case FC_SEP_ADD_COLON_SINGLE:
    case FC_SEP_ADD_COLON_TWO:
        if (!sep2) return false; /* Python would split on None: TypeError */
        snprintf(user, cap, "%s", sep2);
        snprintf(asst, cap, "%s: ", role1);
        return true;
    case FC_SEP_ADD_COLON_SPACE_SINGLE:
        if (sep2) snprintf(user, cap, "%s", sep2);
        else snprintf(user, cap, "%s: ", role0);
        snprintf(asst, cap, "%s: ", role1);
        return true;
    case FC_SEP_LLAMA2:
        if (!sep2) return false;
        snprintf(user, cap, "%s", sep2);
        snprintf(asst, cap, "%s ", role1);
        return true;
    case FC_SEP_CHATML:
        if (!sep2 && !sep) return false;
        snprintf(user, cap, "%s\n", sep2 ? sep2 : sep);
        snprintf(asst, cap, "%s\n", role1);
        return true;
    default:
        return false;
    }
}

enum fc_status fc_sft_preprocess_template(const fc_tokenizer *tok, const cJSON *convs,
                                          const char *system, const fc_sft_params *p,
                                          fc_sft_example *out)
{
    memset(out, 0, sizeof *out);
    const int T = p->model_max_length;
    if (T <= 0 || !cJSON_IsArray(convs)) {
        FC_LOG_ERROR("%s: conversations must be an array and model_max_length > 0", __func__);
        return FC_ERR_FORMAT;
    }
    const char *tname = p->conv_template ? p->conv_template : "vicuna_v1.1";
    fc_conv *conv = fc_conv_new(tname);
    if (!conv) {
        FC_LOG_ERROR("%s: unknown conversation template '%s'", __func__, tname);
        return FC_ERR_UNSUPPORTED;
    }
    enum fc_status st;
    char *prompt = NULL;
    char user_sep[256], asst_sep[256];
    if (!prompt_separators(conv, user_sep, asst_sep, sizeof user_sep) || !user_sep[0]) {
        FC_LOG_ERROR("%s: template '%s' (%s): train_with_template.py has no turn separators for it",
                     __func__, tname, fc_conv_sep_style_name(fc_conv_sep_style(conv)));
        st = FC_ERR_UNSUPPORTED;
        goto done;
    }
    if ((st = render(conv, convs)) != FC_OK) goto done;
    if (system && *system) fc_conv_set_system_message(conv, system);
    st = FC_ERR_NOMEM;
    prompt = fc_conv_get_prompt(conv);
    if (!prompt) goto done;
    size_t plen = strlen(prompt);
    if ((st = tokenize_pad(tok, prompt, plen, p, out)) != FC_OK) goto done;

    /* ---- mask (mask_targets' arithmetic) ---- */
    int32_t *target = out->labels;
    int total_len = 0;
    for (int i = 0; i < T; i++) total_len += out->ids[i] != p->pad_id;
    long cur_len = fc_tokenizer_eos(tok) >= 0 && fc_tokenizer_bos(tok) >= 0 &&
                   target[0] == fc_tokenizer_bos(tok) ? 1 : 0;
    mask_range(target, T, 0, cur_len);
    size_t us_len = strlen(user_sep), as_len = strlen(asst_sep);
    const char *end = prompt + plen;
    fc_str turn = FC_STR_INIT;
    for (const char *s = prompt; ; ) {
        const char *e = find(s, end, user_sep);
        bool last = !e;
        if (!e) e = end;
        if (!last && e == s) break; /* an empty turn that is not the last */
        fc_str_reset(&turn);
        if (s != prompt) fc_str_puts(&turn, user_sep);
        fc_str_putn(&turn, s, (size_t)(e - s));
        if (fc_str_failed(&turn)) { fc_str_free(&turn); st = FC_ERR_NOMEM; goto done; }
        const char *t = fc_str_cstr(&turn), *tend = t + fc_str_len(&turn);
        int turn_len = count_plain(tok, t, fc_str_len(&turn));
        const char *a = find(t, tend, asst_sep);
        size_t ilen = a ? (size_t)(a - t) + as_len : fc_str_len(&turn);
        int instruction_len = count_plain(tok, t, ilen);
        if (turn_len < 0 || instruction_len < 0) { fc_str_free(&turn); st = FC_ERR_FORMAT; goto done; }
        mask_range(target, T, cur_len, cur_len + instruction_len);
        cur_len += turn_len;
        if (last) break;
        s = e + us_len;
    }
    fc_str_free(&turn);
    mask_range(target, T, cur_len, T);
    if (cur_len < T && cur_len != total_len) {
        mask_range(target, T, 0, T);
        out->mismatch = true;
        out->mismatch_cur = (int)cur_len;
        out->mismatch_total = total_len;
        out->mismatch_turns = -1; /* train_with_template.py's warning has no turn count */
    }
    for (int i = 0; i < T; i++) out->n_label += target[i] != FC_IGNORE_INDEX;
    st = FC_OK;
done:
    if (st != FC_OK) fc_sft_example_free(out);
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
        const cJSON *sys = cJSON_GetObjectItemCaseSensitive(rec, "system");
        enum fc_status pst = p->masking == FC_SFT_MASK_TEMPLATE
            ? fc_sft_preprocess_template(tok, c, cJSON_IsString(sys) ? sys->valuestring : NULL, p, &d->ex[i])
            : fc_sft_preprocess(tok, c, p, &d->ex[i]);
        if (pst != FC_OK) {
            char why[512]; /* fc_last_error's buffer is rewritten by the next log call */
            snprintf(why, sizeof why, "%s", fc_last_error());
            FC_LOG_ERROR("%s: %s: record %d: %s", __func__, path, i, why);
            goto fail;
        }
        if (d->ex[i].mismatch && d->ex[i].mismatch_turns < 0)
            fprintf(stderr, "WARNING: tokenization mismatch: %d vs. %d. (ignored)\n",
                    d->ex[i].mismatch_cur, d->ex[i].mismatch_total);
        else if (d->ex[i].mismatch)
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
