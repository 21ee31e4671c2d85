/*
 * data_tok.c: the two tools that count tokens: split-long
 * (split_long_conversation.py) and stats (get_stats.py).
 *
 * split-long mirrors the script's rule exactly, including its quirks: the
 * conversation is cut to an even number of turns; each turn costs
 * len(tokenizer(value).input_ids) + 6; pairs are accumulated and a new sample
 * starts when the next pair would pass --max-length (the sample so far is
 * emitted even when empty, and a split on the very last pair drops that
 * pair); new ids are "<id>_<start turn>", with "model" copied (or ""); then
 * samples that are empty or do not alternate human/gpt are dropped.
 *
 * Tokens come from our tokenizer (tokenizer.h) with Hugging Face's defaults:
 * tokenizer(text) adds the special tokens the post-processor adds (BOS for
 * Llama-2, none for SmolLM2), tokenizer.tokenize(text) (stats) adds none.
 * FastChat loads the slow tokenizer (use_fast=False); ours follows the
 * model's tokenizer.json / GGUF, which is what the fast one does.
 */
#include "data/data_impl.h"

#include <math.h>
#include <string.h>

#include "base/fc_base.h"
#include "tokenizer/tokenizer.h"

static int count_tokens(const fc_tokenizer *tok, const char *s, size_t n, bool add_special)
{
    int32_t ids[256];
    return fc_tokenizer_encode_buf(tok, s, n, add_special, true, ids, (int)FC_ARRAY_LEN(ids));
}

/* ---- split-long ---- */

typedef struct split_ctx {
    const fc_tokenizer *tok;
    long long max_length;
} split_ctx;

static bool roles_alternate(const fc_pj *convs, size_t lo, size_t hi, bool *bad_shape)
{
    static const char *const ROLES[2] = {"human", "gpt"};
    for (size_t j = lo; j < hi; j++) {
        fc_pj *from = fc_pj_get(&convs->items[j], "from");
        if (!from) { *bad_shape = true; return false; }
        if (!fc_pj_str_eq(from, ROLES[(j - lo) % 2])) return false;
    }
    return true;
}

static int emit_piece(fc_pj_arena *a, fc_pj *v, const fc_pj *id, const fc_pj *convs, size_t lo,
                      size_t hi, fc_pj_out *out, fc_pj_out *aux)
{
    /* filter_invalid_roles() on the new sample */
    if (hi <= lo) return 0;
    bool bad = false;
    if (!roles_alternate(convs, lo, hi, &bad)) {
        if (bad) { fc_pj_out_puts(aux, "a turn without \"from\""); return -1; }
        return 0;
    }
    char num[32];
    int nl = snprintf(num, sizeof num, "_%zu", lo);
    char *nid = fc_pj_alloc(a, id->len + (size_t)nl);
    memcpy(nid, id->str, id->len);
    memcpy(nid + id->len, num, (size_t)nl);
    fc_pj *model = fc_pj_get(v, "model");
    fc_pj *kv = fc_pj_alloc(a, 6 * sizeof(fc_pj));
    memset(kv, 0, 6 * sizeof(fc_pj));
    kv[0].type = kv[1].type = kv[2].type = kv[4].type = FC_PJ_STR;
    kv[0].str = "id"; kv[0].len = 2;
    kv[1].str = nid; kv[1].len = id->len + (size_t)nl;
    kv[2].str = "model"; kv[2].len = 5;
    if (model) kv[3] = *model;
    else { kv[3].type = FC_PJ_STR; kv[3].str = ""; kv[3].len = 0; }
    kv[4].str = "conversations"; kv[4].len = 13;
    kv[5].type = FC_PJ_ARR;
    kv[5].len = hi - lo;
    kv[5].items = convs->items + lo;
    fc_pj obj = {0};
    obj.type = FC_PJ_OBJ;
    obj.len = 3;
    obj.items = kv;
    dt_put_elem(out, &obj, false);
    return 1;
}

static int split_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    split_ctx *c = ctx;
    fc_pj *convs = fc_pj_get(v, "conversations");
    if (!convs || convs->type != FC_PJ_ARR) {
        fc_pj_out_puts(aux, "no \"conversations\" list");
        return -1;
    }
    size_t n = convs->len / 2 * 2;
    long long *lens = fc_pj_alloc(a, (n + 1) * sizeof(long long));
    for (size_t k = 0; k < n; k++) {
        fc_pj *s = fc_pj_get(&convs->items[k], "value");
        if (!s || s->type != FC_PJ_STR) {
            fc_pj_out_puts(aux, "a turn without a string \"value\"");
            return -1;
        }
        int t = count_tokens(c->tok, s->str, s->len, true);
        if (t < 0) {
            fc_pj_out_puts(aux, "tokenizer failed");
            return -1;
        }
        lens[k] = t + 6;
    }
    if (n < 2) return 0;
    fc_pj *id = fc_pj_get(v, "id");
    if (!id || id->type != FC_PJ_STR) {
        fc_pj_out_puts(aux, "\"id\" is not a string (the script appends \"_<n>\" to it)");
        return -1;
    }
    int emitted = 0, r;
    size_t start = 0;
    long long cur = 0;
    for (size_t i = 0; i < n; i += 2) {
        long long tmp = lens[i] + lens[i + 1];
        if (cur + tmp > c->max_length) {
            if ((r = emit_piece(a, v, id, convs, start, i, out, aux)) < 0) return -1;
            emitted += r;
            start = i;
            cur = 0;
        } else if (i == n - 2) {
            if ((r = emit_piece(a, v, id, convs, start, i + 2, out, aux)) < 0) return -1;
            emitted += r;
        }
        cur += tmp;
    }
    return emitted;
}

bool fc_data_split_long(const char *in_file, const char *out_file, long long begin, bool has_begin,
                        long long end, bool has_end, const fc_tokenizer *tok,
                        long long max_length, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t n = fc_data_file_count(f), lo, hi;
    fc_data_pyslice(begin, has_begin, end, has_end, n, &lo, &hi);
    size_t *idx = fc_xmalloc((hi - lo + 1) * sizeof(size_t));
    for (size_t i = lo; i < hi; i++) idx[i - lo] = i;
    split_ctx c = {tok, max_length};
    dt_writer w;
    bool ok = dt_writer_open(&w, out_file);
    if (ok) {
        if (dt_run(f, idx, hi - lo, split_elem, NULL, &c, &w, o, "split-long")) {
            fprintf(dt_msg(o), "#in: %zu, #out: %zu\n", n, w.count);
            ok = dt_writer_close(&w);
        } else {
            dt_writer_abort(&w);
            ok = false;
        }
    }
    free(idx);
    fc_data_file_free(f);
    return ok;
}

/* ---- stats ---- */

enum { R_HUMAN, R_GPT, R_OTHER, N_ROLES };

typedef struct stats_acc {
    /* get_stats.py */
    double sum_sample_len, sum_turns, sum_prompt, sum_res;
    size_t n_samples, n_pairs;
    size_t hist[6];
    /* per role (ours) */
    size_t role_msgs[N_ROLES], role_tokens[N_ROLES];
    size_t max_sample_len;
    const fc_tokenizer *tok;
} stats_acc;

static const long long EDGES[7] = {0, 1024, 2048, 4096, 8192, 16384, 32768};

/* Each element's numbers are passed to the reducer through aux as raw
 * integers: turns, n_pairs, sample_len, then pairs of (p, r), then the role
 * message/token counts. */
typedef struct stats_rec {
    long long turns, sample_len, sum_p, sum_r, n_pairs;
    long long role_msgs[N_ROLES], role_tokens[N_ROLES];
} stats_rec;

static int stats_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    const fc_tokenizer *tok = ((const stats_acc *)ctx)->tok; /* read-only on workers */
    fc_pj *convs = fc_pj_get(v, "conversations");
    if (!convs || convs->type != FC_PJ_ARR) {
        fc_pj_out_puts(aux, "no \"conversations\" list");
        return -1;
    }
    stats_rec r;
    memset(&r, 0, sizeof r);
    long long *tl = fc_pj_alloc(a, (convs->len + 1) * sizeof(long long));
    for (size_t k = 0; k < convs->len; k++) {
        fc_pj *s = fc_pj_get(&convs->items[k], "value");
        if (!s || s->type != FC_PJ_STR) {
            fc_pj_out_puts(aux, "a turn without a string \"value\"");
            return -1;
        }
        int t = count_tokens(tok, s->str, s->len, false);
        if (t < 0) {
            fc_pj_out_puts(aux, "tokenizer failed");
            return -1;
        }
        tl[k] = t;
        fc_pj *from = fc_pj_get(&convs->items[k], "from");
        int role = fc_pj_str_eq(from, "human") ? R_HUMAN : fc_pj_str_eq(from, "gpt") ? R_GPT : R_OTHER;
        r.role_msgs[role]++;
        r.role_tokens[role] += t;
    }
    r.turns = (long long)(convs->len / 2);
    r.n_pairs = r.turns;
    for (size_t i = 0; i < convs->len / 2; i++) {
        r.sample_len += tl[2 * i] + tl[2 * i + 1];
        r.sum_p += tl[2 * i];
        r.sum_r += tl[2 * i + 1];
    }
    fc_pj_out_putn(out, (const char *)&r, sizeof r);
    return 0;
}

static bool stats_reduce(void *ctx, size_t idx, int code, const char *out, size_t out_len,
                         const char *aux, size_t aux_len, dt_writer *w, FILE *msg)
{
    stats_acc *s = ctx;
    stats_rec r;
    FC_ASSERT(out_len == sizeof r);
    memcpy(&r, out, sizeof r);
    s->n_samples++;
    s->sum_turns += (double)r.turns;
    s->sum_sample_len += (double)r.sample_len;
    s->sum_prompt += (double)r.sum_p;
    s->sum_res += (double)r.sum_r;
    s->n_pairs += (size_t)r.n_pairs;
    if ((size_t)r.sample_len > s->max_sample_len) s->max_sample_len = (size_t)r.sample_len;
    /* np.histogram: [e_i, e_i+1) and the last bin closed */
    for (int b = 0; b < 6; b++)
        if (r.sample_len >= EDGES[b] && (r.sample_len < EDGES[b + 1] || (b == 5 && r.sample_len == EDGES[6]))) {
            s->hist[b]++;
            break;
        }
    for (int k = 0; k < N_ROLES; k++) {
        s->role_msgs[k] += (size_t)r.role_msgs[k];
        s->role_tokens[k] += (size_t)r.role_tokens[k];
    }
    return true;
}

static void put_mean(FILE *f, const char *label, double sum, size_t n)
{
    /* np.mean of an empty list is nan (printed "nan") */
    if (!n) fprintf(f, "%s: nan\n", label);
    else fprintf(f, "%s: %.2f\n", label, sum / (double)n);
}

bool fc_data_stats(const char *in_file, const fc_tokenizer *tok, bool by_role, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    stats_acc s;
    memset(&s, 0, sizeof s);
    s.tok = tok;
    bool ok = dt_run(f, NULL, fc_data_file_count(f), stats_elem, stats_reduce, &s, NULL, o,
                     "stats");
    if (ok) {
        FILE *m = dt_msg(o);
        fprintf(m, "#sequence: %.2f K\n", (double)s.n_samples / 1e3);
        fprintf(m, "#tokens: %.2f M\n", s.sum_sample_len / 1e6);
        put_mean(m, "avg. turns", s.sum_turns, s.n_samples);
        put_mean(m, "avg. prompt length", s.sum_prompt, s.n_pairs);
        put_mean(m, "avg. response length", s.sum_res, s.n_pairs);
        fprintf(m, "\n- Histogram -\n");
        for (int b = 0; b < 6; b++) fprintf(m, "L%lld - %lld: %zu\n", EDGES[b], EDGES[b + 1], s.hist[b]);
        if (by_role) {
            static const char *const NAMES[N_ROLES] = {"human", "gpt", "other"};
            size_t tm = 0, tt = 0;
            fprintf(m, "\n%-8s %12s %14s %12s\n", "role", "messages", "tokens", "tokens/msg");
            for (int k = 0; k < N_ROLES; k++) {
                tm += s.role_msgs[k];
                tt += s.role_tokens[k];
                fprintf(m, "%-8s %12zu %14zu %12.1f\n", NAMES[k], s.role_msgs[k], s.role_tokens[k],
                        s.role_msgs[k] ? (double)s.role_tokens[k] / (double)s.role_msgs[k] : 0.0);
            }
            fprintf(m, "%-8s %12zu %14zu %12.1f\n", "all", tm, tt, tm ? (double)tt / (double)tm : 0.0);
            fprintf(m, "conversations: %zu, longest (paired turns): %zu tokens\n", s.n_samples,
                    s.max_sample_len);
        }
    }
    fc_data_file_free(f);
    return ok;
}
