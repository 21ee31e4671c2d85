/*
 * judge.c: verdict parsing, str.format filling and the judge-prompt table
 * of FastChat's llm_judge/common.py (see judge.h).
 */
#include "eval/judge.h"
#include "eval/jsonl.h"
#include "base/fc_base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

const char *const fc_judge_prompt_names[8] = {
    "single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn",
    "pair-v2", "pair-math-v1", "pair-v2-multi-turn", "pair-math-v1-multi-turn",
};

const char *fc_verdict_name(enum fc_verdict v)
{
    switch (v) {
    case FC_VERDICT_A: return "A";
    case FC_VERDICT_B: return "B";
    case FC_VERDICT_TIE: return "tie";
    default: return "error";
    }
}

/* ---- numbers as the regexes and ast.literal_eval see them ---- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Matches \d+\.?\d* at s; returns its length (0: no match). */
static size_t match_number(const char *s)
{
    size_t i = 0;
    while (is_digit(s[i])) i++;
    if (i == 0) return 0;
    if (s[i] == '.') {
        i++;
        while (is_digit(s[i])) i++;
    }
    return i;
}

/* ast.literal_eval of a matched number; false where Python raises (an
 * integer literal with a leading zero, other than all zeros). */
static bool eval_number(const char *s, size_t n, double *v, bool *is_int)
{
    bool dot = memchr(s, '.', n) != NULL;
    if (!dot && n > 1 && s[0] == '0') {
        for (size_t i = 0; i < n; i++)
            if (s[i] != '0') return false;
    }
    char buf[64];
    if (n >= sizeof buf) {
        /* a very long literal: Python gives a big int / float; so do we */
        char *t = fc_xmalloc(n + 1);
        memcpy(t, s, n);
        t[n] = 0;
        *v = strtod(t, NULL);
        free(t);
    } else {
        memcpy(buf, s, n);
        buf[n] = 0;
        *v = strtod(buf, NULL);
    }
    if (is_int) *is_int = !dot;
    return true;
}

/* Leftmost match of open number close, e.g. "[[" \d+\.?\d* "]]". */
static const char *find_one(const char *text, const char *open, const char *close, size_t *num_len)
{
    size_t lo = strlen(open), lc = strlen(close);
    for (const char *p = text; (p = strstr(p, open)) != NULL; p++) {
        size_t n = match_number(p + lo);
        if (n && !strncmp(p + lo + n, close, lc)) {
            *num_len = n;
            return p + lo;
        }
    }
    return NULL;
}

double fc_judge_parse_rating(const char *text, bool *is_int)
{
    if (is_int) *is_int = false;
    if (!text) return -1;
    size_t n = 0;
    const char *s = find_one(text, "[[", "]]", &n);
    if (!s) s = find_one(text, "[", "]", &n);
    double v;
    if (!s || !eval_number(s, n, &v, is_int)) {
        if (is_int) *is_int = true;   /* FastChat's -1 is an int */
        return -1;
    }
    return v;
}

enum fc_verdict fc_judge_parse_ab(const char *text)
{
    if (!text) return FC_VERDICT_ERROR;
    if (strstr(text, "[[A]]")) return FC_VERDICT_A;
    if (strstr(text, "[[B]]")) return FC_VERDICT_B;
    if (strstr(text, "[[C]]")) return FC_VERDICT_TIE;
    return FC_VERDICT_ERROR;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* open a "," \s? b close, leftmost. */
static bool find_two(const char *text, const char *open, const char *close, double *a, double *b)
{
    size_t lo = strlen(open), lc = strlen(close);
    for (const char *p = text; (p = strstr(p, open)) != NULL; p++) {
        const char *q = p + lo;
        size_t n1 = match_number(q);
        if (!n1 || q[n1] != ',') continue;
        const char *r = q + n1 + 1;
        size_t n2 = match_number(r);
        if (!n2 && is_space(*r)) { r++; n2 = match_number(r); }
        if (!n2 || strncmp(r + n2, close, lc)) continue;
        if (!eval_number(q, n1, a, NULL) || !eval_number(r, n2, b, NULL)) return false;
        return true;
    }
    return false;
}

enum fc_verdict fc_judge_parse_two(const char *text)
{
    if (!text) return FC_VERDICT_ERROR;
    double a, b;
    bool found = find_two(text, "[[", "]]", &a, &b);
    if (!found) found = find_two(text, "[", "]", &a, &b);
    if (!found) return FC_VERDICT_ERROR;
    if (fabs(a - b) <= FC_JUDGE_TIE_DELTA) return FC_VERDICT_TIE;
    return a > b ? FC_VERDICT_A : FC_VERDICT_B;
}

enum fc_verdict fc_judge_parse(const char *output_format, const char *text, bool *known)
{
    if (known) *known = true;
    if (output_format && !strcmp(output_format, "[[A]]")) return fc_judge_parse_ab(text);
    if (output_format && !strcmp(output_format, "[[rating_a,rating_b]]")) return fc_judge_parse_two(text);
    if (known) *known = false;
    return FC_VERDICT_ERROR;
}

/* ---- str.format ---- */

typedef struct buf { char *p; size_t n, cap; } buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = fc_xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

char *fc_judge_format(const char *tpl, const char *const *keys, const char *const *vals, int n, const char **err)
{
    if (err) *err = NULL;
    if (!tpl) { if (err) *err = "no template"; return NULL; }
    buf b = {0};
    put(&b, "", 0);
    const char *s = tpl;
    while (*s) {
        const char *brace = strpbrk(s, "{}");
        if (!brace) { put(&b, s, strlen(s)); break; }
        put(&b, s, (size_t)(brace - s));
        if (brace[0] == brace[1]) {            /* "{{" or "}}" */
            put(&b, brace, 1);
            s = brace + 2;
            continue;
        }
        if (*brace == '}') { if (err) *err = "single '}' in template"; goto fail; }
        const char *end = strchr(brace + 1, '}');
        if (!end) { if (err) *err = "unmatched '{' in template"; goto fail; }
        size_t kl = (size_t)(end - brace - 1);
        const char *key = brace + 1;
        if (memchr(key, ':', kl) || memchr(key, '!', kl) || memchr(key, '{', kl)) {
            if (err) *err = "format specs are not supported";
            goto fail;
        }
        int found = -1;
        for (int i = 0; i < n && found < 0; i++)
            if (strlen(keys[i]) == kl && !memcmp(keys[i], key, kl)) found = i;
        if (found < 0) { if (err) *err = "template names a field that is not given"; goto fail; }
        put(&b, vals[found] ? vals[found] : "None", vals[found] ? strlen(vals[found]) : 4);
        s = end + 1;
    }
    return b.p;
fail:
    free(b.p);
    return NULL;
}

/* ---- judge prompts ---- */

static char *dup_field(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? fc_xstrdup(v->valuestring) : NULL;
}

static void prompt_clear(fc_judge_prompt *p)
{
    free(p->name); free(p->type); free(p->system_prompt); free(p->prompt_template);
    free(p->description); free(p->category); free(p->output_format);
    memset(p, 0, sizeof *p);
}

int fc_judge_prompts_load(const char *path, fc_judge_prompts *out)
{
    memset(out, 0, sizeof *out);
    cJSON **items;
    int n;
    int rc = fc_jsonl_read(path, false, &items, &n);
    if (rc != FC_OK) return rc;
    out->items = fc_xcalloc((size_t)(n ? n : 1), sizeof *out->items);
    for (int i = 0; i < n; i++) {
        fc_judge_prompt p = {
            .name = dup_field(items[i], "name"), .type = dup_field(items[i], "type"),
            .system_prompt = dup_field(items[i], "system_prompt"),
            .prompt_template = dup_field(items[i], "prompt_template"),
            .description = dup_field(items[i], "description"), .category = dup_field(items[i], "category"),
            .output_format = dup_field(items[i], "output_format"),
        };
        if (!p.name || !p.prompt_template) {
            FC_LOG_ERROR("%s: %s: entry %d has no name or prompt_template", __func__, path, i + 1);
            prompt_clear(&p);
            fc_jsonl_free(items, n);
            fc_judge_prompts_free(out);
            return FC_ERR_FORMAT;
        }
        if (!p.system_prompt) p.system_prompt = fc_xstrdup("");
        fc_judge_prompt *old = (fc_judge_prompt *)fc_judge_prompts_get(out, p.name);
        if (old) { prompt_clear(old); *old = p; }
        else out->items[out->n++] = p;
    }
    fc_jsonl_free(items, n);
    return FC_OK;
}

const fc_judge_prompt *fc_judge_prompts_get(const fc_judge_prompts *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->items[i].name, name)) return &p->items[i];
    return NULL;
}

void fc_judge_prompts_free(fc_judge_prompts *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) prompt_clear(&p->items[i]);
    free(p->items);
    memset(p, 0, sizeof *p);
}

/* ---- category tables (common.py NEED_REF_CATS, temperature_config) ---- */

bool fc_judge_needs_ref(const char *c)
{
    static const char *const cats[] = {"math", "reasoning", "coding", "arena-hard-200"};
    for (size_t i = 0; c && i < FC_ARRAY_LEN(cats); i++)
        if (!strcmp(c, cats[i])) return true;
    return false;
}

double fc_judge_category_temperature(const char *c)
{
    static const struct { const char *cat; double t; } tab[] = {
        {"writing", 0.7}, {"roleplay", 0.7}, {"extraction", 0.0}, {"math", 0.0}, {"coding", 0.0},
        {"reasoning", 0.0}, {"stem", 0.1}, {"humanities", 0.1}, {"arena-hard-200", 0.0},
    };
    for (size_t i = 0; c && i < FC_ARRAY_LEN(tab); i++)
        if (!strcmp(c, tab[i].cat)) return tab[i].t;
    return 0.7;
}
