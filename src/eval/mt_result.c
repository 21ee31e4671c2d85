/*
 * mt_result.c: show_result.py and compute_agreement.py numbers (see
 * mt_result.h).
 */
#include "eval/mt_result.h"
#include "eval/jsonl.h"
#include "base/fc_base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool listed(const char *m, const char *const *models, int n)
{
    if (!models) return true;
    for (int i = 0; i < n; i++)
        if (!strcmp(models[i], m)) return true;
    return false;
}

/* ---- single ---- */

typedef struct acc { char *model; double sum[3]; int cnt[3]; } acc;

static int single_cmp(const void *a, const void *b)
{
    const fc_mt_single_row *x = a, *y = b;
    double u = isnan(x->mean[2]) ? -INFINITY : x->mean[2], v = isnan(y->mean[2]) ? -INFINITY : y->mean[2];
    if (u != v) return u > v ? -1 : 1;
    return strcmp(x->model, y->model);
}

int fc_mt_result_single(const char *path, const char *const *models, int n_models, fc_mt_result *out)
{
    memset(out, 0, sizeof *out);
    cJSON **items;
    int n;
    int rc = fc_jsonl_read(path, false, &items, &n);
    if (rc != FC_OK) return rc;
    acc *a = fc_xcalloc((size_t)n + 1, sizeof *a);
    int na = 0;
    out->rows_read = n;
    for (int i = 0; i < n; i++) {
        const char *m = str_of(items[i], "model");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(items[i], "score");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(items[i], "turn");
        if (!m || !cJSON_IsNumber(s) || !cJSON_IsNumber(t)) {
            FC_LOG_ERROR("%s: %s: row %d lacks model, score or turn", __func__, path, i + 1);
            rc = FC_ERR_FORMAT;
            break;
        }
        if (s->valuedouble == -1 || !listed(m, models, n_models)) continue;
        out->rows_used++;
        int k = 0;
        while (k < na && strcmp(a[k].model, m)) k++;
        if (k == na) a[na++].model = fc_xstrdup(m);
        if (t->valuedouble == 1 || t->valuedouble == 2) {
            int turn = t->valuedouble == 1 ? 1 : 2;
            a[k].sum[turn - 1] += s->valuedouble;
            a[k].cnt[turn - 1]++;
        }
        a[k].sum[2] += s->valuedouble;
        a[k].cnt[2]++;
    }
    fc_jsonl_free(items, n);
    if (rc != FC_OK) {
        for (int k = 0; k < na; k++) free(a[k].model);
        free(a);
        return rc;
    }
    out->single = fc_xcalloc((size_t)na + 1, sizeof *out->single);
    for (int k = 0; k < na; k++) {
        fc_mt_single_row *r = &out->single[k];
        r->model = a[k].model;
        for (int j = 0; j < 3; j++) {
            r->count[j] = a[k].cnt[j];
            r->mean[j] = a[k].cnt[j] ? a[k].sum[j] / a[k].cnt[j] : NAN;
        }
    }
    out->n_single = na;
    free(a);
    qsort(out->single, (size_t)na, sizeof *out->single, single_cmp);
    return FC_OK;
}

/* ---- pairwise ---- */

static fc_mt_pair_row *pair_row(fc_mt_result *out, int *cap, const char *m)
{
    for (int i = 0; i < out->n_pair; i++)
        if (!strcmp(out->pair[i].model, m)) return &out->pair[i];
    if (out->n_pair == *cap) out->pair = fc_xrealloc(out->pair, sizeof(*out->pair) * (size_t)(*cap = *cap * 2 + 8));
    fc_mt_pair_row *r = &out->pair[out->n_pair++];
    memset(r, 0, sizeof *r);
    r->model = fc_xstrdup(m);
    return r;
}

static int pair_cmp(const void *a, const void *b)
{
    const fc_mt_pair_row *x = a, *y = b;
    if (x->win_rate_adjusted != y->win_rate_adjusted) return x->win_rate_adjusted > y->win_rate_adjusted ? -1 : 1;
    return strcmp(x->model, y->model);
}

int fc_mt_result_pair(const char *path, const char *const *models, int n_models, const char *baseline,
                      fc_mt_result *out)
{
    memset(out, 0, sizeof *out);
    cJSON **items;
    int n;
    int rc = fc_jsonl_read(path, false, &items, &n);
    if (rc != FC_OK) return rc;
    int cap = 0;
    out->rows_read = n;
    for (int i = 0; i < n; i++) {
        const char *m1 = str_of(items[i], "model_1"), *m2 = str_of(items[i], "model_2");
        const char *g1 = str_of(items[i], "g1_winner"), *g2 = str_of(items[i], "g2_winner");
        if (!m1 || !m2 || !g1 || !g2) {
            FC_LOG_ERROR("%s: %s: row %d lacks model_1, model_2, g1_winner or g2_winner", __func__, path, i + 1);
            rc = FC_ERR_FORMAT;
            break;
        }
        if (!strcmp(g1, "error") || !strcmp(g2, "error")) continue;
        if (!listed(m1, models, n_models)) continue;
        if (baseline && strcmp(baseline, m1) && strcmp(baseline, m2)) continue;
        out->rows_used++;
        fc_mt_pair_row *r1 = pair_row(out, &cap, m1), *r2 = pair_row(out, &cap, m2);
        if (!strcmp(g1, "tie") || strcmp(g1, g2)) {
            r1->tie++;
            r2->tie++;
        } else if (!strcmp(g1, "model_1")) {
            r1->win++;
            r2->loss++;
        } else {
            r2->win++;
            r1->loss++;
        }
    }
    fc_jsonl_free(items, n);
    if (rc != FC_OK) { fc_mt_result_free(out); return rc; }
    int k = 0;
    for (int i = 0; i < out->n_pair; i++) {
        fc_mt_pair_row r = out->pair[i];
        if (baseline && !strcmp(r.model, baseline)) { free(r.model); continue; }
        double tot = r.win + r.loss + r.tie;
        r.win_rate = r.win / tot;
        r.loss_rate = r.loss / tot;
        r.win_rate_adjusted = (r.win + 0.5 * r.tie) / tot;
        out->pair[k++] = r;
    }
    out->n_pair = k;
    if (k) qsort(out->pair, (size_t)k, sizeof *out->pair, pair_cmp);
    return FC_OK;
}

void fc_mt_result_free(fc_mt_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_single; i++) free(r->single[i].model);
    for (int i = 0; i < r->n_pair; i++) free(r->pair[i].model);
    free(r->single);
    free(r->pair);
    memset(r, 0, sizeof *r);
}

/* ---- agreement ---- */

enum { J_NONE, J_GPT4, J_HUMAN, J_AUTHOR };

typedef struct vote_set { char *winners[64]; int n; } vote_set;   /* one judge's votes on a game */

typedef struct game {
    char *key;           /* "qid\x1fmodel_a\x1fmodel_b" */
    vote_set v[4];       /* by judge kind */
    int extra;           /* votes past 64, counted as dropped */
} game;

typedef struct games { game *g; int n, cap; } games;

static int judge_kind(const cJSON *j)
{
    if (cJSON_IsArray(j)) {
        const cJSON *a = cJSON_GetArrayItem(j, 0), *b = cJSON_GetArrayItem(j, 1);
        if (cJSON_IsString(a) && cJSON_IsString(b) && !strcmp(a->valuestring, "gpt-4") &&
            !strncmp(b->valuestring, "pair", 4))
            return J_GPT4;
        return J_NONE;
    }
    if (cJSON_IsString(j)) {
        if (!strncmp(j->valuestring, "expert", 6)) return J_HUMAN;
        if (!strncmp(j->valuestring, "author", 6)) return J_AUTHOR;
    }
    return J_NONE;
}

static const char *revert(const char *v)
{
    if (!strcmp(v, "model_a")) return "model_b";
    if (!strcmp(v, "model_b")) return "model_a";
    return v;
}

static void add_vote(games gs[2], int turn, const char *qid, const char *ma, const char *mb, const char *winner,
                     int kind)
{
    if (turn != 1 && turn != 2) return;
    games *G = &gs[turn - 1];
    const char *w = winner;
    if (strcmp(ma, mb) >= 0) {
        const char *t = ma; ma = mb; mb = t;
        w = revert(winner);
    }
    size_t kl = strlen(qid) + strlen(ma) + strlen(mb) + 3;
    char *key = fc_xmalloc(kl);
    snprintf(key, kl, "%s\x1f%s\x1f%s", qid, ma, mb);
    int i = 0;
    while (i < G->n && strcmp(G->g[i].key, key)) i++;
    if (i == G->n) {
        if (G->n == G->cap) G->g = fc_xrealloc(G->g, sizeof(*G->g) * (size_t)(G->cap = G->cap * 2 + 64));
        memset(&G->g[i], 0, sizeof G->g[i]);
        G->g[i].key = key;
        G->n++;
    } else {
        free(key);
    }
    vote_set *vs = &G->g[i].v[kind];
    if (vs->n < 64) vs->winners[vs->n++] = fc_xstrdup(w);
    else G->g[i].extra++;
}

static bool is_tie(const char *v) { return strstr(v, "tie") != NULL; }
static bool equal_vote(const char *a, const char *b) { return (is_tie(a) && is_tie(b)) || !strcmp(a, b); }

static int load_votes(const char *path, games gs[2])
{
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) { FC_LOG_ERROR("%s: cannot open %s", __func__, path); return FC_ERR_IO; }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = fc_xmalloc((size_t)(sz > 0 ? sz : 0) + 1);
    len = fread(buf, 1, (size_t)(sz > 0 ? sz : 0), f);
    buf[len] = 0;
    fclose(f);
    size_t s = 0;
    while (s < len && strchr(" \t\r\n", buf[s])) s++;
    if (buf[s] == '[') {
        cJSON *arr = cJSON_Parse(buf);
        free(buf);
        if (!cJSON_IsArray(arr)) {
            cJSON_Delete(arr);
            FC_LOG_ERROR("%s: %s: not a JSON array", __func__, path);
            return FC_ERR_FORMAT;
        }
        const cJSON *v;
        cJSON_ArrayForEach(v, arr) {
            const char *ma = str_of(v, "model_a"), *mb = str_of(v, "model_b"), *w = str_of(v, "winner");
            const cJSON *q = cJSON_GetObjectItemCaseSensitive(v, "question_id");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "turn");
            if (!ma || !mb || !w || !q || !cJSON_IsNumber(t)) continue;
            int kind = judge_kind(cJSON_GetObjectItemCaseSensitive(v, "judge"));
            char *qs = cJSON_PrintUnformatted(q);
            add_vote(gs, t->valueint, qs, ma, mb, w, kind);
            cJSON_free(qs);
        }
        cJSON_Delete(arr);
        return FC_OK;
    }
    free(buf);
    cJSON **items;
    int n;
    int rc = fc_jsonl_read(path, false, &items, &n);
    if (rc != FC_OK) return rc;
    for (int i = 0; i < n; i++) {
        const char *m1 = str_of(items[i], "model_1"), *m2 = str_of(items[i], "model_2");
        const char *g1 = str_of(items[i], "g1_winner"), *g2 = str_of(items[i], "g2_winner");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(items[i], "question_id");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(items[i], "turn");
        if (!m1 || !m2 || !g1 || !g2 || !q || !cJSON_IsNumber(t)) continue;
        if (!strcmp(g1, "error") || !strcmp(g2, "error")) continue;
        const char *w = strcmp(g1, g2) ? "tie (inconsistent)"
                        : !strcmp(g1, "model_1") ? "model_a" : !strcmp(g1, "model_2") ? "model_b" : "tie";
        char *qs = cJSON_PrintUnformatted(q);
        add_vote(gs, t->valueint, qs, m1, m2, w, J_GPT4);
        cJSON_free(qs);
    }
    fc_jsonl_free(items, n);
    return FC_OK;
}

static int name_kind(const char *s)
{
    if (!strncmp(s, "gpt4", 4)) return J_GPT4;
    if (!strcmp(s, "human")) return J_HUMAN;
    return J_NONE;
}

static int agree_turn(const games *G, int k1, int k2, bool ban_tie, int *agree, int *total)
{
    *agree = *total = 0;
    for (int i = 0; i < G->n; i++) {
        const game *g = &G->g[i];
        if (k1 == J_GPT4 && k2 == J_HUMAN) {
            if (!g->v[J_GPT4].n || !g->v[J_HUMAN].n) continue;
            if (g->v[J_GPT4].n != 1) {
                FC_LOG_ERROR("fc_mt_agreement_compute: game %s has %d gpt4-pair votes (FastChat asserts one)",
                             g->key, g->v[J_GPT4].n);
                return FC_ERR_FORMAT;
            }
            const char *a = g->v[J_GPT4].winners[0];
            if (ban_tie && is_tie(a)) continue;
            for (int j = 0; j < g->v[J_HUMAN].n; j++) {
                const char *b = g->v[J_HUMAN].winners[j];
                if (ban_tie && is_tie(b)) continue;
                (*total)++;
                *agree += equal_vote(a, b);
            }
        } else {
            const vote_set *h = &g->v[J_HUMAN];
            for (int x = 0; x + 1 < h->n; x++)
                for (int y = x + 1; y < h->n; y++) {
                    if (ban_tie && (is_tie(h->winners[x]) || is_tie(h->winners[y]))) continue;
                    (*total)++;
                    *agree += equal_vote(h->winners[x], h->winners[y]);
                }
        }
    }
    return FC_OK;
}

int fc_mt_agreement_compute(const char *judge1, const char *judge2, const char *const *files, int n_files,
                            fc_mt_agreement *out)
{
    memset(out, 0, sizeof *out);
    int k1 = name_kind(judge1), k2 = name_kind(judge2);
    if (!((k1 == J_GPT4 && k2 == J_HUMAN) || (k1 == J_HUMAN && k2 == J_HUMAN))) {
        FC_LOG_ERROR("%s: unsupported judges %s, %s (gpt4-pair human, or human human)", __func__, judge1, judge2);
        return FC_ERR_ARG;
    }
    games gs[2] = {{0}, {0}};
    int rc = FC_OK;
    for (int i = 0; i < n_files && rc == FC_OK; i++) rc = load_votes(files[i], gs);
    for (int t = 0; t < 2 && rc == FC_OK; t++)
        for (int b = 0; b < 2 && rc == FC_OK; b++)
            rc = agree_turn(&gs[t], k1, k2, b == 1, &out->agree[t][b], &out->total[t][b]);
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < gs[t].n; i++) {
            for (int k = 0; k < 4; k++)
                for (int j = 0; j < gs[t].g[i].v[k].n; j++) free(gs[t].g[i].v[k].winners[j]);
            free(gs[t].g[i].key);
        }
        free(gs[t].g);
    }
    return rc;
}
