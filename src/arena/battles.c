/*
 * battles.c: Chatbot Arena battles from FastChat's conversation logs and
 * clean battle files (battles.h). The cleaning follows fschat 0.2.36's
 * serve/monitor/clean_battle_data.py rule by rule, in its order:
 *   1. only rows whose type is a vote (tievote, leftvote, rightvote,
 *      bothbad_vote); models[i] == null: skipped, uncounted;
 *   2. public names = models[] with legacy "<h3>...: name</h3>\n" stripped,
 *      hidden names = states[i].model_name (public when states[0] has none
 *      or it is null);
 *   3. exactly one public name empty: invalid; public[0] "" or "Model A":
 *      anonymous, rated under the hidden names; otherwise the public names
 *      must equal the hidden ones (invalid if not);
 *   4. states[0].offset past its messages: invalid;
 *   5. the messages of both sides from their offsets, lowercased (Python's
 *      str.lower()) and concatenated, containing any identity word or UI
 *      error string (IDENTITY_WORDS below): leaked, dropped;
 *   6. names renamed as replace_model_name (gpt-4 / gpt-3.5-turbo by date,
 *      bard -> palm-2, ...), then excluded names: invalid;
 *   7. judge from the IP (sanitized ids numbered by first appearance, before
 *      the ban check), banned IPs dropped;
 *   8. sorted by tstamp (stable).
 * 0.2.36 has no separate unfinished-marker or None-message filter; the UI
 * error strings are part of its identity-word list, so this does the same.
 */
#include "arena/battles.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "base/fc_base.h"
#include "base/str.h"

static const char *const VOTE_TYPES[] = {"leftvote", "rightvote", "tievote", "bothbad_vote"};
static const enum fc_outcome VOTE_OUTCOME[] = {FC_OUTCOME_A, FC_OUTCOME_B, FC_OUTCOME_TIE, FC_OUTCOME_TIE_BOTHBAD};
static const char *const WINNER_NAMES[] = {"model_a", "model_b", "tie", "tie (bothbad)"};

/* clean_battle_data.py's IDENTITY_WORDS, already lowercased as the script
 * lowercases them at import ("KEG lab" -> "keg lab", "Tülu" -> "tülu"). */
static const char *const IDENTITY_WORDS[] = {
    "vicuna", "lmsys", "koala", "uc berkeley", "open assistant", "laion", "chatglm", "chatgpt", "gpt-4",
    "openai", "anthropic", "claude", "bard", "palm", "lamda", "google", "llama", "qianwan", "alibaba",
    "mistral", "zhipu", "keg lab", "01.ai", "ai2", "t\xc3\xbclu", "tulu",
    "network error due to high traffic. please regenerate or refresh this page.",
    "$moderation$ your input violates our content moderation guidelines.",
    "api request error. please increase the number of max tokens.",
    "**api request error** reason: the response was blocked.",
    "**api request error**",
};

/* replace_model_name's table; gpt-4 and gpt-3.5-turbo get a date suffix. */
static const char *const RENAME[][2] = {
    {"bard", "palm-2"},
    {"claude-v1", "claude-1"},
    {"claude-instant-v1", "claude-instant-1"},
    {"oasst-sft-1-pythia-12b", "oasst-pythia-12b"},
    {"claude-2", "claude-2.0"},
};
#define GPT4_DATE_SWITCH 1687849200.0 /* 2023-06-27: -0314 before, -0613 after */

/* ---- interned strings ---- */

struct fc_battles_impl {
    char **str; /* (n) owned */
    int n, cap;
    int *slot;  /* (nslot) index + 1 */
    size_t nslot;
    /* IPs in order of first appearance, for sanitize_ip */
    char **ip;
    int n_ip, cap_ip;
};

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void intern_grow(struct fc_battles_impl *t)
{
    size_t ns = t->nslot ? t->nslot * 2 : 256;
    int *slot = fc_xcalloc(ns, sizeof(int));
    for (int i = 0; i < t->n; i++) {
        size_t h = (size_t)fnv1a(t->str[i]) & (ns - 1);
        while (slot[h]) h = (h + 1) & (ns - 1);
        slot[h] = i + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = ns;
}

static const char *intern(struct fc_battles_impl *t, const char *s)
{
    if ((size_t)(t->n + 1) * 2 > t->nslot) intern_grow(t);
    size_t h = (size_t)fnv1a(s) & (t->nslot - 1);
    while (t->slot[h]) {
        const char *x = t->str[t->slot[h] - 1];
        if (!strcmp(x, s)) return x;
        h = (h + 1) & (t->nslot - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->str = fc_xrealloc(t->str, sizeof(char *) * (size_t)t->cap);
    }
    t->str[t->n] = fc_xstrdup(s);
    t->slot[h] = t->n + 1;
    return t->str[t->n++];
}

/* The number a sanitized judge gets: index of first appearance. */
static int ip_index(struct fc_battles_impl *t, const char *ip)
{
    for (int i = 0; i < t->n_ip; i++)
        if (t->ip[i] == ip) return i; /* interned: pointer equality */
    if (t->n_ip == t->cap_ip) {
        t->cap_ip = t->cap_ip ? t->cap_ip * 2 : 64;
        t->ip = fc_xrealloc(t->ip, sizeof(char *) * (size_t)t->cap_ip);
    }
    t->ip[t->n_ip] = (char *)ip;
    return t->n_ip++;
}

fc_battles *fc_battles_new(void)
{
    fc_battles *s = fc_xcalloc(1, sizeof(*s));
    s->impl = fc_xcalloc(1, sizeof(*s->impl));
    return s;
}

void fc_battles_free(fc_battles *s)
{
    if (!s) return;
    for (int i = 0; i < s->impl->n; i++) free(s->impl->str[i]);
    free(s->impl->str);
    free(s->impl->slot);
    free(s->impl->ip);
    free(s->impl);
    free(s->b);
    free(s->info);
    free(s);
}

static void push(fc_battles *s, const fc_battle *b, const fc_battle_info *info)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->b = fc_xrealloc(s->b, sizeof(fc_battle) * s->cap);
        s->info = fc_xrealloc(s->info, sizeof(fc_battle_info) * s->cap);
    }
    s->b[s->n] = *b;
    s->info[s->n] = *info;
    s->n++;
}

/* ---- text helpers ---- */

/* Appends Python's str.lower() of UTF-8 text: the simple lowercase mapping
 * plus the one unconditional multi-code-point rule (U+0130 -> "i\u0307").
 * Invalid bytes are copied through (Python would have refused the file). */
static void put_lower(fc_str *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] < 0x80) j++;
        if (j > i) { /* ASCII run */
            size_t at = b->len;
            fc_str_putn(b, s + i, j - i);
            for (size_t k = at; k < b->len; k++)
                if (b->p[k] >= 'A' && b->p[k] <= 'Z') b->p[k] = (char)(b->p[k] + 32);
            i = j;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            fc_str_putn(b, s + i, 1);
            i++;
            continue;
        }
        if (cp == 0x130) {
            fc_str_putn(b, "i\xcc\x87", 3);
        } else {
            utf8proc_uint8_t enc[4];
            utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(cp), enc);
            fc_str_putn(b, (const char *)enc, (size_t)m);
        }
        i += (size_t)k;
    }
}

static bool has_identity_word(const fc_str *b)
{
    if (!b->len) return false;
    for (size_t w = 0; w < FC_ARRAY_LEN(IDENTITY_WORDS); w++)
        if (memmem(b->p, b->len, IDENTITY_WORDS[w], strlen(IDENTITY_WORDS[w]))) return true;
    return false;
}

/* remove_html: raw[raw.find(": ") + 2 : -len("</h3>\n")] when raw starts
 * with "<h3>", with Python's slice rules (character positions). Writes into
 * out (at least strlen(raw) + 1 bytes). */
static void remove_html(const char *raw, char *out)
{
    size_t n = strlen(raw);
    if (strncmp(raw, "<h3>", 4) != 0) {
        memcpy(out, raw, n + 1);
        return;
    }
    const char *c = strstr(raw, ": ");
    size_t start = c ? (size_t)(c - raw) + 2 : 1; /* find() == -1 -> slice from 1 */
    /* end = 6 code points before the end */
    size_t end = n;
    for (int k = 0; k < 6 && end > 0; k++) {
        end--;
        while (end > 0 && ((unsigned char)raw[end] & 0xC0) == 0x80) end--;
    }
    if (start >= end) {
        out[0] = '\0';
        return;
    }
    memcpy(out, raw + start, end - start);
    out[end - start] = '\0';
}

static const char *rename_model(const char *name, double tstamp, char *tmp, size_t tmp_len)
{
    if (!strcmp(name, "gpt-4") || !strcmp(name, "gpt-3.5-turbo")) {
        snprintf(tmp, tmp_len, "%s%s", name, tstamp > GPT4_DATE_SWITCH ? "-0613" : "-0314");
        return tmp;
    }
    for (size_t i = 0; i < FC_ARRAY_LEN(RENAME); i++)
        if (!strcmp(name, RENAME[i][0])) return RENAME[i][1];
    return name;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* JSON false/null/0/""/[]/{} are falsy as Python's `if msg:` sees them. */
static bool json_falsy(const cJSON *x)
{
    if (!x || cJSON_IsNull(x) || cJSON_IsFalse(x)) return true;
    if (cJSON_IsNumber(x)) return x->valuedouble == 0;
    if (cJSON_IsString(x)) return x->valuestring[0] == '\0';
    if (cJSON_IsArray(x) || cJSON_IsObject(x)) return x->child == NULL;
    return false;
}

/* The start index of messages[offset:] (Python slicing), or -1 when offset
 * is not an integer. */
static int slice_start(const cJSON *offset, int len)
{
    if (!cJSON_IsNumber(offset) || offset->valuedouble != floor(offset->valuedouble) ||
        fabs(offset->valuedouble) > 1e9)
        return -1;
    int off = (int)offset->valuedouble;
    if (off < 0) off = FC_MAX(0, len + off);
    return FC_MIN(off, len);
}

/* One JSON value filling p[0..n) but for white space (cJSON alone would
 * accept trailing bytes that Python's json.loads rejects as extra data). */
static cJSON *parse_whole(const char *p, size_t n)
{
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(p, n, &end, false);
    if (!v) return NULL;
    for (const char *q = end; q && q < p + n; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(v);
            return NULL;
        }
    return v;
}

/* ---- one log row ---- */

enum row_result { ROW_SKIP, ROW_BATTLE, ROW_INVALID, ROW_MALFORMED, ROW_LEAKED, ROW_BANNED };

static enum row_result clean_row(fc_battles *s, const cJSON *row, const fc_clean_opts *o, int vote, fc_str *text)
{
    struct fc_battles_impl *t = s->impl;
    const cJSON *models = get(row, "models"), *states = get(row, "states"), *tst = get(row, "tstamp");
    if (!cJSON_IsArray(models) || cJSON_GetArraySize(models) < 2) return ROW_MALFORMED;
    const cJSON *m0 = cJSON_GetArrayItem(models, 0), *m1 = cJSON_GetArrayItem(models, 1);
    if (cJSON_IsNull(m0) || cJSON_IsNull(m1)) return ROW_SKIP;
    if (!cJSON_IsString(m0) || !cJSON_IsString(m1)) return ROW_MALFORMED;
    if (!cJSON_IsArray(states) || cJSON_GetArraySize(states) < 2) return ROW_MALFORMED;
    const cJSON *s0 = cJSON_GetArrayItem(states, 0), *s1 = cJSON_GetArrayItem(states, 1);
    if (!cJSON_IsObject(s0) || !cJSON_IsObject(s1)) return ROW_MALFORMED;
    if (!cJSON_IsNumber(tst) || !isfinite(tst->valuedouble)) return ROW_MALFORMED;
    double tstamp = tst->valuedouble;

    size_t l0 = strlen(m0->valuestring), l1 = strlen(m1->valuestring);
    char *pub0 = fc_xmalloc(l0 + 1), *pub1 = fc_xmalloc(l1 + 1);
    remove_html(m0->valuestring, pub0);
    remove_html(m1->valuestring, pub1);
    enum row_result res = ROW_INVALID;
    const char *hid0 = pub0, *hid1 = pub1;
    const cJSON *mn0 = get(s0, "model_name");
    if (mn0) {
        const cJSON *mn1 = get(s1, "model_name");
        if (!cJSON_IsNull(mn0)) {
            /* a null or missing second name, or a non-string, would make a
             * battle against None (or crash) in FastChat: we drop it */
            if (!cJSON_IsString(mn0) || !cJSON_IsString(mn1)) {
                res = ROW_MALFORMED;
                goto out;
            }
            hid0 = mn0->valuestring;
            hid1 = mn1->valuestring;
        }
    }
    if ((pub0[0] == '\0') != (pub1[0] == '\0')) goto out; /* invalid */
    bool anony;
    const char *name0, *name1;
    if (pub0[0] == '\0' || !strcmp(pub0, "Model A")) {
        anony = true;
        name0 = hid0;
        name1 = hid1;
        s->stats.n_anony++;
    } else {
        anony = false;
        name0 = pub0;
        name1 = pub1;
        if (strcmp(pub0, hid0) || strcmp(pub1, hid1)) goto out; /* invalid */
    }

    /* language detection reads states[0].messages[offset][1] */
    const cJSON *msgs0 = get(s0, "messages");
    if (!cJSON_IsArray(msgs0)) {
        res = ROW_MALFORMED;
        goto out;
    }
    int len0 = cJSON_GetArraySize(msgs0);
    const cJSON *off0 = get(s0, "offset");
    if (cJSON_IsNumber(off0) && off0->valuedouble >= len0) goto out; /* invalid */
    if (slice_start(off0, len0) < 0 || off0->valuedouble < -len0) {
        res = ROW_MALFORMED;
        goto out;
    }

    /* identity words in both sides' messages from their offsets */
    fc_str_truncate(text, 0);
    int turn = 0;
    for (int side = 0; side < 2; side++) {
        const cJSON *st = side ? s1 : s0, *msgs = get(st, "messages");
        if (!cJSON_IsArray(msgs)) {
            res = ROW_MALFORMED;
            goto out;
        }
        int len = cJSON_GetArraySize(msgs), start = slice_start(get(st, "offset"), len);
        if (start < 0) {
            res = ROW_MALFORMED;
            goto out;
        }
        if (side == 0) turn = (len - start) / 2;
        int i = 0;
        for (const cJSON *m = msgs->child; m; m = m->next, i++) {
            if (i < start) continue;
            if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2) {
                res = ROW_MALFORMED;
                goto out;
            }
            const cJSON *msg = cJSON_GetArrayItem(m, 1);
            if (json_falsy(msg)) continue;
            if (!cJSON_IsString(msg)) { /* msg.lower() fails on images ([text, [urls]]) */
                res = ROW_MALFORMED;
                goto out;
            }
            put_lower(text, msg->valuestring, strlen(msg->valuestring));
        }
    }
    if (has_identity_word(text)) {
        res = ROW_LEAKED;
        goto out;
    }

    char r0[32], r1[32]; /* room for "gpt-3.5-turbo-0613" */
    const char *n0 = rename_model(name0, tstamp, r0, sizeof(r0)), *n1 = rename_model(name1, tstamp, r1, sizeof(r1));
    for (int i = 0; o && i < o->n_exclude_models; i++)
        if (!strcmp(n0, o->exclude_models[i]) || !strcmp(n1, o->exclude_models[i])) goto out; /* invalid */

    /* judge: ip as Python's f"{ip}" prints it for strings and None */
    const cJSON *ipj = get(row, "ip");
    const char *ip = cJSON_IsString(ipj) ? ipj->valuestring : "None";
    if (ipj && !cJSON_IsString(ipj) && !cJSON_IsNull(ipj)) {
        res = ROW_MALFORMED;
        goto out;
    }
    const char *ip_in = intern(t, ip);
    int ip_no = ip_index(t, ip_in);
    size_t jl = strlen(ip) + 48;
    char *judge = fc_xmalloc(jl);
    if (o && o->sanitize_ip) snprintf(judge, jl, "arena_user_arena_user_%d", ip_no);
    else snprintf(judge, jl, "arena_user_%s", ip);
    const char *judge_in = intern(t, judge);
    free(judge);
    for (int i = 0; o && i < o->n_ban_ips; i++)
        if (!strcmp(ip, o->ban_ips[i])) {
            res = ROW_BANNED;
            goto out;
        }

    const cJSON *conv_id = get(s0, "conv_id");
    fc_battle b = {intern(t, n0), intern(t, n1), VOTE_OUTCOME[vote], tstamp, anony};
    fc_battle_info info = {judge_in, cJSON_IsString(conv_id) ? intern(t, conv_id->valuestring) : NULL,
                           intern(t, "unknown"), turn};
    push(s, &b, &info);
    res = ROW_BATTLE;
out:
    free(pub0);
    free(pub1);
    return res;
}

int fc_battles_read_log_mem(fc_battles *s, const char *data, size_t len, const char *name, const fc_clean_opts *o)
{
    fc_str text = FC_STR_INIT; /* the lowercased messages of one row */
    int line = 0, rc = FC_OK;
    size_t i = 0;
    while (i < len) {
        const char *p = data + i;
        const char *nl = memchr(p, '\n', len - i);
        size_t n = nl ? (size_t)(nl - p) : len - i;
        i += n + (nl ? 1 : 0);
        line++;
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k == n) continue;
        cJSON *row = parse_whole(p, n);
        if (!row) {
            FC_LOG_ERROR("%s:%d: not a JSON line (a conversation log has one JSON object per line)", name, line);
            rc = FC_ERR_FORMAT;
            break;
        }
        const cJSON *type = get(row, "type");
        int vote = -1;
        for (int v = 0; cJSON_IsString(type) && v < 4; v++)
            if (!strcmp(type->valuestring, VOTE_TYPES[v])) vote = v;
        if (vote >= 0) {
            s->stats.n_votes++;
            switch (clean_row(s, row, o, vote, &text)) {
            case ROW_SKIP: s->stats.n_null_models++; break;
            case ROW_MALFORMED: s->stats.n_malformed++; s->stats.n_invalid++; break;
            case ROW_INVALID: s->stats.n_invalid++; break;
            case ROW_LEAKED: s->stats.n_leaked++; break;
            case ROW_BANNED: s->stats.n_banned++; break;
            case ROW_BATTLE: break;
            }
        }
        cJSON_Delete(row);
    }
    free(text.p);
    return rc;
}

int fc_battles_read_log(fc_battles *s, const char *path, const fc_clean_opts *o)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return FC_ERR_IO;
    int rc = fc_battles_read_log_mem(s, (const char *)m->data, m->size, path, o);
    fc_mmap_free(m);
    return rc;
}

/* ---- clean battle files ---- */

int fc_battles_read_clean_mem(fc_battles *s, const char *data, size_t len, const char *name)
{
    cJSON *arr = parse_whole(data, len);
    if (!arr) {
        FC_LOG_ERROR("%s: not JSON (a clean battle file is one JSON array)", name);
        return FC_ERR_FORMAT;
    }
    if (!cJSON_IsArray(arr)) {
        FC_LOG_ERROR("%s: not a JSON array of battles", name);
        cJSON_Delete(arr);
        return FC_ERR_FORMAT;
    }
    struct fc_battles_impl *t = s->impl;
    size_t n0 = s->n;
    int i = 0, rc = FC_OK;
    for (const cJSON *x = arr->child; x; x = x->next, i++) {
        const cJSON *a = get(x, "model_a"), *b = get(x, "model_b"), *w = get(x, "winner"), *an = get(x, "anony"),
                    *ts = get(x, "tstamp"), *judge = get(x, "judge"), *turn = get(x, "turn"),
                    *lang = get(x, "language"), *qid = get(x, "question_id");
        const char *what = NULL;
        int win = -1;
        for (int k = 0; cJSON_IsString(w) && k < 4; k++)
            if (!strcmp(w->valuestring, WINNER_NAMES[k])) win = k;
        if (!cJSON_IsObject(x)) what = "not an object";
        else if (!cJSON_IsString(a) || !cJSON_IsString(b)) what = "model_a/model_b missing or not strings";
        else if (win < 0) what = "winner is not model_a, model_b, tie or tie (bothbad)";
        else if (!cJSON_IsBool(an)) what = "anony missing or not true/false";
        else if (!cJSON_IsNumber(ts) || !isfinite(ts->valuedouble)) what = "tstamp missing or not a number";
        if (what) {
            FC_LOG_ERROR("%s: battle %d: %s", name, i, what);
            rc = FC_ERR_FORMAT;
            break;
        }
        fc_battle bt = {intern(t, a->valuestring), intern(t, b->valuestring), (enum fc_outcome)win, ts->valuedouble,
                        cJSON_IsTrue(an)};
        fc_battle_info info = {cJSON_IsString(judge) ? intern(t, judge->valuestring) : NULL,
                               cJSON_IsString(qid) ? intern(t, qid->valuestring) : NULL,
                               cJSON_IsString(lang) ? intern(t, lang->valuestring) : NULL,
                               cJSON_IsNumber(turn) ? turn->valueint : 0};
        push(s, &bt, &info);
    }
    if (rc) s->n = n0;
    cJSON_Delete(arr);
    return rc;
}

int fc_battles_read_clean(fc_battles *s, const char *path)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return FC_ERR_IO;
    int rc = fc_battles_read_clean_mem(s, (const char *)m->data, m->size, path);
    fc_mmap_free(m);
    return rc;
}

/* ---- order and output ---- */

typedef struct order {
    double t;
    size_t i;
} order;

static int cmp_order(const void *x, const void *y)
{
    const order *a = x, *b = y;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

void fc_battles_finish(fc_battles *s)
{
    if (s->n < 2) return;
    order *o = fc_xmalloc(sizeof(order) * s->n);
    for (size_t i = 0; i < s->n; i++) o[i] = (order){s->b[i].tstamp, i};
    qsort(o, s->n, sizeof(order), cmp_order);
    fc_battle *b = fc_xmalloc(sizeof(fc_battle) * s->n);
    fc_battle_info *info = fc_xmalloc(sizeof(fc_battle_info) * s->n);
    for (size_t i = 0; i < s->n; i++) {
        b[i] = s->b[o[i].i];
        info[i] = s->info[o[i].i];
    }
    free(o);
    free(s->b);
    free(s->info);
    s->b = b;
    s->info = info;
    s->cap = s->n;
}

char *fc_battles_clean_json(const fc_battles *s)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < s->n; i++) {
        const fc_battle *b = &s->b[i];
        const fc_battle_info *f = &s->info[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "model_a", b->model_a);
        cJSON_AddStringToObject(x, "model_b", b->model_b);
        cJSON_AddStringToObject(x, "winner", WINNER_NAMES[b->winner]);
        if (f->judge) cJSON_AddStringToObject(x, "judge", f->judge);
        else cJSON_AddNullToObject(x, "judge");
        cJSON_AddNumberToObject(x, "turn", f->turn);
        cJSON_AddBoolToObject(x, "anony", b->anony);
        cJSON_AddStringToObject(x, "language", f->language ? f->language : "unknown");
        char ts[40];
        for (int prec = 15; prec <= 17; prec++) { /* shortest exact form */
            snprintf(ts, sizeof(ts), "%.*g", prec, b->tstamp);
            if (strtod(ts, NULL) == b->tstamp) break;
        }
        cJSON_AddRawToObject(x, "tstamp", ts);
        cJSON_AddItemToArray(arr, x);
    }
    char *out = cJSON_Print(arr);
    cJSON_Delete(arr);
    return out;
}

/* ---- log discovery ---- */

typedef struct log_file {
    char *path;
    double mtime;
} log_file;

static int cmp_log(const void *x, const void *y)
{
    const log_file *a = x, *b = y;
    if (a->mtime != b->mtime) return a->mtime < b->mtime ? -1 : 1;
    return strcmp(a->path, b->path);
}

char **fc_battles_list_logs(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        FC_LOG_ERROR("%s: %s", dir, strerror(errno));
        return NULL;
    }
    log_file *f = NULL;
    int k = 0, cap = 0;
    const char *suffix = "-conv.json";
    size_t ls = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t ln = strlen(e->d_name);
        if (ln < ls || strcmp(e->d_name + ln - ls, suffix)) continue;
        size_t pl = strlen(dir) + ln + 2;
        char *p = fc_xmalloc(pl);
        snprintf(p, pl, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(p);
            continue;
        }
        if (k == cap) f = fc_xrealloc(f, sizeof(log_file) * (size_t)(cap = cap ? cap * 2 : 16));
        f[k++] = (log_file){p, (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec};
    }
    closedir(d);
    if (k) qsort(f, (size_t)k, sizeof(log_file), cmp_log);
    char **out = fc_xmalloc(sizeof(char *) * (size_t)(k ? k : 1));
    for (int i = 0; i < k; i++) out[i] = f[i].path;
    free(f);
    *n = k;
    return out;
}
