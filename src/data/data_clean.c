/*
 * data_clean.c: `fastchat data clean-sharegpt` (clean_sharegpt.py).
 *
 * Per sample (on all cores): drop a leading non-human turn and a trailing
 * human turn; error 1 "too short" when one turn or fewer remain; then turn by
 * turn: error 2 "wrong format" when roles do not alternate human/gpt, error 3
 * "blocked words" when the raw value contains "openai" or "chatgpt" in any
 * case (Python's str.lower(), so U+0130 İ lowers to "i" + U+0307 and matches),
 * else the value goes through html_to_markdown(): <div...> and <span...>
 * openings removed (re "<div.*?>"), markdownify (html_md.h), strip, the
 * "```lang Copy code ...```" fences rewritten, a leading "N / N" regenerate
 * counter, "CopyN chars / N words" and empty "```...Copy code```" blocks
 * removed, "\n\n\n" -> "\n", strip. A value that comes out empty or starts
 * with a non-printable character ends the conversation there; turns are cut
 * to an even number; fewer than 16 characters in all (counted before the
 * cut) or no turns left: error 1.
 * Then in input order (one thread): skip errors, duplicate ids, samples with
 * "plugins", and samples whose first question and answer (after cleaning)
 * were seen before; print the script's per-sample lines and its summary.
 * Turn objects are rebuilt as {"from", "value"} (other keys dropped), as the
 * script does. Parser errors (error 4, bs4's ParserRejectedMarkup) never
 * happen here: our parser accepts every input.
 *
 * The regular expressions are the script's, run with PCRE2 (same
 * backtracking semantics as Python's re), Python's str-pattern \s and \d
 * spelled out (\d is Unicode Nd).
 */
#include "data/data_impl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <string.h>

#include "base/fc_base.h"
#include "data/html_md.h"

#define WSC "\\t-\\r\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define WS "[" WSC "]"

enum { RC_CODE_LANG, RC_REGEN, RC_COPY_CHARS, RC_COPY_CODE, N_RC };
static const char *const RC_SRC[N_RC] = {
    "(*LF)(?s)```" WS "*(.*?)(?:Copy code)+(.+?)" WS "*?```",
    "(*LF)\\p{Nd}+ / \\p{Nd}+",
    "(*LF)Copy\\p{Nd}+ chars / \\p{Nd}+ words",
    "(*LF)```(.*?)Copy code" WS "*```",
};
static pcre2_code *RC[N_RC];
static pthread_once_t rc_once = PTHREAD_ONCE_INIT;

static void rc_init(void)
{
    for (int i = 0; i < N_RC; i++) {
        int err;
        PCRE2_SIZE off;
        RC[i] = pcre2_compile((PCRE2_SPTR)RC_SRC[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                              &off, NULL);
        FC_ASSERT(RC[i]);
        pcre2_jit_compile(RC[i], PCRE2_JIT_COMPLETE);
    }
}

/* re.sub(pattern, repl, s): repl NULL deletes; code_lang writes
 * "```\1\n\2\n```". Appends to out. */
static void re_sub(int which, pcre2_match_data *md, const char *s, size_t n, fc_pj_out *out)
{
    size_t pos = 0;
    while (pos <= n) {
        int rc = pcre2_match(RC[which], (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        fc_pj_out_putn(out, s + pos, ov[0] - pos);
        if (which == RC_CODE_LANG) {
            fc_pj_out_putn(out, "```", 3);
            fc_pj_out_putn(out, s + ov[2], ov[3] - ov[2]);
            fc_pj_out_putn(out, "\n", 1);
            fc_pj_out_putn(out, s + ov[4], ov[5] - ov[4]);
            fc_pj_out_putn(out, "\n```", 4);
        }
        if (ov[1] == ov[0]) { /* never for these patterns */
            if (ov[1] < n) fc_pj_out_putn(out, s + ov[1], 1);
            pos = ov[1] + 1;
            continue;
        }
        pos = ov[1];
    }
    if (pos < n) fc_pj_out_putn(out, s + pos, n - pos);
}

/* re.sub("<tag.*?>", "", s) for tag "div" / "span": '.' stops at '\n' */
static void remove_open_tags(const char *s, size_t n, const char *tag, fc_pj_out *out)
{
    size_t tl = strlen(tag), pos = 0, i = 0;
    while (i + tl + 1 <= n) {
        const char *lt = memchr(s + i, '<', n - i);
        if (!lt) break;
        size_t p = (size_t)(lt - s);
        if (p + 1 + tl <= n && !memcmp(s + p + 1, tag, tl)) {
            size_t j = p + 1 + tl;
            while (j < n && s[j] != '>' && s[j] != '\n') j++;
            if (j < n && s[j] == '>') {
                fc_pj_out_putn(out, s + pos, p - pos);
                pos = i = j + 1;
                continue;
            }
        }
        i = p + 1;
    }
    fc_pj_out_putn(out, s + pos, n - pos);
}

/* contain_blocked_words(): "openai" / "chatgpt" in val.lower(). Non-ASCII
 * characters never lower to these letters except U+0130, which becomes
 * "i" + U+0307. */
static bool blocked(const char *s, size_t n, fc_pj_out *scratch)
{
    scratch->len = 0;
    fc_pj_out_reserve(scratch, n * 2 + 1);
    char *w = scratch->p;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') *w++ = (char)(c + 32);
        else if (c == 0xC4 && i + 1 < n && (unsigned char)s[i + 1] == 0xB0) {
            *w++ = 'i';
            *w++ = '\xCC';
            *w++ = '\x87';
            i++;
        } else *w++ = (char)c;
    }
    size_t m = (size_t)(w - scratch->p);
    return memmem(scratch->p, m, "openai", 6) || memmem(scratch->p, m, "chatgpt", 7);
}

/* Lone surrogates (WTF-8 from \udXXX escapes) are not UTF-8: PCRE2 and the
 * parser get U+FFFD in their place. Returns s itself when there are none. */
static const char *sanitize(fc_pj_arena *a, const char *s, size_t n, size_t *out_n)
{
    *out_n = n;
    bool any = false;
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)s[i] == 0xED && (unsigned char)s[i + 1] >= 0xA0) { any = true; break; }
    if (!any) return s;
    char *c = fc_pj_alloc(a, n);
    memcpy(c, s, n);
    for (size_t i = 0; i + 2 < n; i++)
        if ((unsigned char)c[i] == 0xED && (unsigned char)c[i + 1] >= 0xA0) {
            c[i] = (char)0xEF; c[i + 1] = (char)0xBF; c[i + 2] = (char)0xBD;
        }
    return c;
}

typedef struct scratch {
    fc_pj_out a, b, low;
    pcre2_match_data *md;
} scratch;

/* html_to_markdown(val) into the arena */
static fc_pj *html_to_markdown(fc_pj_arena *ar, const char *val, size_t n, scratch *sc)
{
    val = sanitize(ar, val, n, &n);
    fc_pj_out *x = &sc->a, *y = &sc->b;
    x->len = 0;
    remove_open_tags(val, n, "div", x);
    y->len = 0;
    remove_open_tags(x->p ? x->p : "", x->len, "span", y);
    x->len = 0;
    fc_html_to_markdown(ar, y->p ? y->p : "", y->len, x);
    size_t lo, hi;
    dt_py_strip(x->p ? x->p : "", x->len, &lo, &hi);
    y->len = 0;
    re_sub(RC_CODE_LANG, sc->md, x->p + lo, hi - lo, y);
    /* a "N / N" regenerate counter at the very start */
    const char *s = y->p ? y->p : "";
    size_t sn = y->len, start = 0;
    if (pcre2_match(RC[RC_REGEN], (PCRE2_SPTR)s, sn, 0, PCRE2_NO_UTF_CHECK, sc->md, NULL) >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        if (ov[0] == 0) start = ov[1];
    }
    x->len = 0;
    re_sub(RC_COPY_CHARS, sc->md, s + start, sn - start, x);
    y->len = 0;
    re_sub(RC_COPY_CODE, sc->md, x->p ? x->p : "", x->len, y);
    /* val.replace("\n\n\n", "\n").strip() */
    x->len = 0;
    s = y->p ? y->p : "";
    for (size_t i = 0; i < y->len;) {
        if (i + 3 <= y->len && s[i] == '\n' && s[i + 1] == '\n' && s[i + 2] == '\n') {
            fc_pj_out_putn(x, "\n", 1);
            i += 3;
        } else {
            const char *nl = memchr(s + i + 1, '\n', y->len - i - 1 > 0 ? y->len - i - 1 : 0);
            size_t e = nl ? (size_t)(nl - s) : y->len;
            if (s[i] == '\n') e = i + 1;
            fc_pj_out_putn(x, s + i, e - i);
            i = e;
        }
    }
    dt_py_strip(x->p ? x->p : "", x->len, &lo, &hi);
    return fc_pj_new_str(ar, x->p ? x->p + lo : "", hi - lo);
}

/* ---- per sample ---- */

typedef struct clean_ctx {
    /* reduce state (main thread) */
    struct set *ids, *keys;
    size_t total, skip, n_new, blocked_words, parser_error, wrong_format, too_short, id_dup, value_dup, plugin;
} clean_ctx;

static void put_blob(fc_pj_out *o, const char *s, size_t n)
{
    uint64_t l = n;
    fc_pj_out_putn(o, (const char *)&l, sizeof l);
    fc_pj_out_putn(o, s, n);
}

static int clean_one(scratch *sc, fc_pj_arena *a, fc_pj *v, fc_pj **new_convs)
{
    static const char *const ROLES[2] = {"human", "gpt"};
    fc_pj *cv = fc_pj_get(v, "conversations");
    *new_convs = NULL;
    size_t lo = 0, hi = cv->len;
    if (hi - lo <= 1) return 1;
    if (!fc_pj_str_eq(fc_pj_get(&cv->items[lo], "from"), "human")) lo++;
    if (hi - lo <= 1) return 1;
    if (fc_pj_str_eq(fc_pj_get(&cv->items[hi - 1], "from"), "human")) hi--;
    if (hi - lo <= 1) return 1;
    fc_pj *turns = fc_pj_alloc(a, (hi - lo) * sizeof(fc_pj));
    size_t nt = 0, chars = 0;
    for (size_t i = lo; i < hi; i++) {
        fc_pj *t = &cv->items[i];
        fc_pj *from = fc_pj_get(t, "from"), *val = fc_pj_get(t, "value");
        if (!fc_pj_str_eq(from, ROLES[(i - lo) % 2])) return 2;
        if (blocked(val->str, val->len, &sc->low)) return 3;
        fc_pj *nv = html_to_markdown(a, val->str, val->len, sc);
        if (!nv->len) break;
        size_t k = 0;
        if (!dt_py_isprintable(dt_next_cp(nv->str, nv->len, &k))) break;
        chars += fc_pj_str_cplen(nv->str, nv->len);
        fc_pj *kv = fc_pj_alloc(a, 4 * sizeof(fc_pj));
        memset(kv, 0, 4 * sizeof(fc_pj));
        kv[0].type = kv[2].type = FC_PJ_STR;
        kv[0].str = "from"; kv[0].len = 4;
        kv[1] = *from;
        kv[2].str = "value"; kv[2].len = 5;
        kv[3] = *nv;
        memset(&turns[nt], 0, sizeof(fc_pj));
        turns[nt].type = FC_PJ_OBJ;
        turns[nt].len = 2;
        turns[nt].items = kv;
        nt++;
    }
    nt = nt / 2 * 2;
    cv->items = turns; /* sample["conversations"] = new_conversations */
    cv->len = nt;
    *new_convs = cv;
    if (chars < 16 || nt == 0) return 1;
    return 0;
}

/* Checks the shape the script indexes into, so that a bad sample is an error
 * line rather than a crash (Python stops with a KeyError there). */
static bool shape_ok(fc_pj *v, fc_pj_out *aux)
{
    fc_pj *cv = fc_pj_get(v, "conversations");
    if (!fc_pj_get(v, "id")) { fc_pj_out_puts(aux, "no \"id\""); return false; }
    if (!cv || cv->type != FC_PJ_ARR) { fc_pj_out_puts(aux, "no \"conversations\" list"); return false; }
    for (size_t i = 0; i < cv->len; i++) {
        fc_pj *t = &cv->items[i];
        fc_pj *f = fc_pj_get(t, "from"), *val = fc_pj_get(t, "value");
        if (!f || !val || val->type != FC_PJ_STR) {
            fc_pj_out_puts(aux, "a turn without \"from\" and a string \"value\"");
            return false;
        }
    }
    return true;
}

static int clean_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    if (!shape_ok(v, aux)) return -1;
    fc_pj *convs;
    scratch sc = {{0}, {0}, {0}, pcre2_match_data_create(8, NULL)};
    int code = clean_one(&sc, a, v, &convs);
    fc_pj_out_free(&sc.a);
    fc_pj_out_free(&sc.b);
    fc_pj_out_free(&sc.low);
    pcre2_match_data_free(sc.md);
    /* aux: id as JSON (identity), id as str() (messages), first Q and A, plugins flag */
    fc_pj *id = fc_pj_get(v, "id");
    fc_pj_out tmp = {0};
    fc_pyjson_write(&tmp, id, 0, false);
    put_blob(aux, tmp.p, tmp.len);
    tmp.len = 0;
    fc_pyjson_write_pystr(&tmp, id);
    put_blob(aux, tmp.p, tmp.len);
    fc_pj_out_free(&tmp);
    if (code == 0) {
        fc_pj *q = fc_pj_get(&convs->items[0], "value"), *r = fc_pj_get(&convs->items[1], "value");
        put_blob(aux, q->str, q->len);
        put_blob(aux, r->str, r->len);
        fc_pj *pl = fc_pj_get(v, "plugins");
        char has = pl && pl->type != FC_PJ_NULL;
        fc_pj_out_putn(aux, &has, 1);
        dt_put_elem(out, v, false);
    }
    return code;
}

/* ---- a string set (open addressing) ---- */

typedef struct set {
    char **k;
    size_t *kl;
    char **val; /* the id (str) that first took the key */
    size_t *vl;
    size_t cap, n;
} set;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static size_t set_find(set *s, const char *k, size_t n)
{
    size_t i = hash(k, n) & (s->cap - 1);
    while (s->k[i] && !(s->kl[i] == n && !memcmp(s->k[i], k, n))) i = (i + 1) & (s->cap - 1);
    return i;
}

static void set_init(set *s)
{
    s->cap = 1024;
    s->n = 0;
    s->k = fc_xcalloc(s->cap, sizeof(char *));
    s->kl = fc_xcalloc(s->cap, sizeof(size_t));
    s->val = fc_xcalloc(s->cap, sizeof(char *));
    s->vl = fc_xcalloc(s->cap, sizeof(size_t));
}

static void set_add(set *s, const char *k, size_t n, const char *v, size_t vn)
{
    if ((s->n + 1) * 2 > s->cap) {
        set old = *s;
        s->cap *= 2;
        s->n = 0;
        s->k = fc_xcalloc(s->cap, sizeof(char *));
        s->kl = fc_xcalloc(s->cap, sizeof(size_t));
        s->val = fc_xcalloc(s->cap, sizeof(char *));
        s->vl = fc_xcalloc(s->cap, sizeof(size_t));
        for (size_t i = 0; i < old.cap; i++)
            if (old.k[i]) {
                size_t j = set_find(s, old.k[i], old.kl[i]);
                s->k[j] = old.k[i]; s->kl[j] = old.kl[i];
                s->val[j] = old.val[i]; s->vl[j] = old.vl[i];
                s->n++;
            }
        free(old.k); free(old.kl); free(old.val); free(old.vl);
    }
    size_t i = set_find(s, k, n);
    if (s->k[i]) return;
    s->k[i] = fc_xmalloc(n + 1);
    memcpy(s->k[i], k, n);
    s->kl[i] = n;
    s->val[i] = fc_xmalloc(vn + 1);
    memcpy(s->val[i], v, vn);
    s->vl[i] = vn;
    s->n++;
}

static void set_free(set *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->k[i]);
        free(s->val[i]);
    }
    free(s->k); free(s->kl); free(s->val); free(s->vl);
}

static const char *get_blob(const char **p, size_t *n)
{
    uint64_t l;
    memcpy(&l, *p, sizeof l);
    const char *s = *p + sizeof l;
    *p = s + l;
    *n = (size_t)l;
    return s;
}

static bool clean_reduce(void *ctx, size_t idx, int code, const char *out, size_t out_len,
                         const char *aux, size_t aux_len, dt_writer *w, FILE *msg)
{
    clean_ctx *c = ctx;
    const char *p = aux;
    size_t idn, ids_n;
    const char *idj = get_blob(&p, &idn);
    const char *ids = get_blob(&p, &ids_n);
    bool skipped = true;
    c->total++;
    if (code != 0) {
        static const char *const WHAT[] = {"", "is too short", "has a wrong format", "contains blocked words",
                                           "contains parser errors"};
        fprintf(msg, "id %.*s %s\n", (int)ids_n, ids, WHAT[code]);
        if (code == 1) c->too_short++;
        else if (code == 2) c->wrong_format++;
        else if (code == 3) c->blocked_words++;
        else c->parser_error++;
    } else {
        size_t qn, rn;
        const char *q = get_blob(&p, &qn), *r = get_blob(&p, &rn);
        bool plugins = *p != 0;
        size_t i = set_find(c->ids, idj, idn);
        if (c->ids->k[i]) {
            fprintf(msg, "id %.*s is an id duplication of %.*s\n", (int)ids_n, ids, (int)c->ids->vl[i],
                    c->ids->val[i]);
            c->id_dup++;
        } else if (plugins) {
            fprintf(msg, "id %.*s contains plugin\n", (int)ids_n, ids);
            c->plugin++;
        } else {
            /* the key (q, r): lengths first so that no two pairs collide */
            size_t kn = 16 + qn + rn;
            char *key = fc_xmalloc(kn);
            uint64_t l1 = qn, l2 = rn;
            memcpy(key, &l1, 8);
            memcpy(key + 8, &l2, 8);
            memcpy(key + 16, q, qn);
            memcpy(key + 16 + qn, r, rn);
            size_t j = set_find(c->keys, key, kn);
            if (c->keys->k[j]) {
                fprintf(msg, "id %.*s is a value duplication of %.*s\n", (int)ids_n, ids,
                        (int)c->keys->vl[j], c->keys->val[j]);
                c->value_dup++;
            } else {
                set_add(c->ids, idj, idn, ids, ids_n);
                set_add(c->keys, key, kn, ids, ids_n);
                skipped = false;
            }
            free(key);
        }
    }
    if (!skipped) {
        c->n_new++;
        return dt_writer_put(w, out, out_len, 1);
    }
    c->skip++;
    return true;
}

bool fc_data_clean_sharegpt(const char *in_file, const char *out_file, long long begin,
                            bool has_begin, long long end, bool has_end, const fc_data_opts *o)
{
    pthread_once(&rc_once, rc_init);
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t lo, hi;
    fc_data_pyslice(begin, has_begin, end, has_end, fc_data_file_count(f), &lo, &hi);
    size_t *idx = fc_xmalloc((hi - lo + 1) * sizeof(size_t));
    for (size_t i = lo; i < hi; i++) idx[i - lo] = i;
    clean_ctx *c = fc_xcalloc(1, sizeof(*c));
    set ids, keys;
    set_init(&ids);
    set_init(&keys);
    c->ids = &ids;
    c->keys = &keys;
    dt_writer w;
    bool ok = dt_writer_open(&w, out_file);
    if (ok) {
        if (dt_run(f, idx, hi - lo, clean_elem, clean_reduce, c, &w, o, "clean-sharegpt")) {
            fprintf(dt_msg(o),
                    "total: %zu, skip: %zu, new: %zu, cnt_blocked_words: %zu, cnt_parser_error: %zu, "
                    "cnt_wrong_format: %zu, cnt_too_short: %zu, cnt_id_duplication: %zu, "
                    "cnt_value_duplication: %zu, cnt_plugin: %zu\n",
                    hi - lo, c->skip, c->n_new, c->blocked_words, c->parser_error, c->wrong_format,
                    c->too_short, c->id_dup, c->value_dup, c->plugin);
            ok = dt_writer_close(&w);
        } else {
            dt_writer_abort(&w);
            ok = false;
        }
    }
    free(c);
    set_free(&ids);
    set_free(&keys);
    free(idx);
    fc_data_file_free(f);
    return ok;
}
