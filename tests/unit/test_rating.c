/*
 * test_rating.c: arena/rating.c on cases small enough to check by hand:
 * Elo updates written out, the two-model Bradley-Terry fit against its
 * one-dimensional optimality condition (and the closed form it tends to
 * without the L2 term), the llama-13b anchor, ranks by upper bound, the
 * heatmaps, filters, errors and the JSON; then the time of a recompute over
 * 100,000 battles (printed, not asserted; the pytest compares everything
 * with FastChat's own code).
 */
#include "arena/rating.h"
#include "base/fc_base.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

static const fc_rating_row *row_of(const fc_leaderboard *lb, const char *name)
{
    for (int i = 0; i < lb->n_rows; i++)
        if (!strcmp(lb->rows[i].model, name)) return &lb->rows[i];
    return NULL;
}

static int idx_of(const fc_leaderboard *lb, const char *name)
{
    for (int i = 0; i < lb->n_rows; i++)
        if (!strcmp(lb->rows[i].model, name)) return i;
    return -1;
}

static void add(fc_battle *b, int *n, const char *x, const char *y, enum fc_outcome w, int times)
{
    for (int i = 0; i < times; i++) {
        b[*n] = (fc_battle){x, y, w, 1000.0 + *n, true};
        (*n)++;
    }
}

static void test_elo_by_hand(void)
{
    fc_battle b[3] = {
        {"x", "y", FC_OUTCOME_A, 1.0, true},
        {"y", "x", FC_OUTCOME_A, 2.0, true},  /* y wins as model_a */
        {"x", "y", FC_OUTCOME_TIE_BOTHBAD, 3.0, true},
    };
    fc_rating_opts o = {.n_bootstrap = 0, .anony_only = true};
    fc_leaderboard lb;
    CHECK(fc_leaderboard_compute(b, 1, &o, &lb) == 0);
    CHECK(row_of(&lb, "x")->elo == 1002.0 && row_of(&lb, "y")->elo == 998.0);
    fc_leaderboard_free(&lb);

    /* second battle: y (998) beats x (1002) */
    double x = 1002, y = 998;
    double ey = 1 / (1 + pow(10, (x - y) / 400)), ex = 1 / (1 + pow(10, (y - x) / 400));
    y += 4 * (1 - ey);
    x += 4 * (1 - 1 - ex);
    /* third: a tie, x as model_a */
    double ex3 = 1 / (1 + pow(10, (y - x) / 400)), ey3 = 1 / (1 + pow(10, (x - y) / 400));
    x += 4 * (0.5 - ex3);
    y += 4 * (1 - 0.5 - ey3);
    /* given out of time order: sorted by tstamp first */
    fc_battle shuffled[3] = {b[2], b[0], b[1]};
    CHECK(fc_leaderboard_compute(shuffled, 3, &o, &lb) == 0);
    CHECKF(row_of(&lb, "x")->elo == x && row_of(&lb, "y")->elo == y, "%.17g %.17g vs %.17g %.17g",
           row_of(&lb, "x")->elo, row_of(&lb, "y")->elo, x, y);
    CHECK(lb.n_battles == 3 && row_of(&lb, "x")->n_battles == 3);
    fc_leaderboard_free(&lb);
}

/* Two models: by symmetry w_x = -w_y = u at the optimum of
 * 0.5 (2 u^2) + pos softplus(-2 L u) + neg softplus(2 L u), i.e.
 * u + L (N sigma(2 L u) - pos) = 0; solved here by bisection. */
static double two_model_u(double pos, double neg)
{
    const double L = log(10.0);
    double lo = -50, hi = 50;
    for (int i = 0; i < 200; i++) {
        double u = 0.5 * (lo + hi);
        double g = u + L * ((pos + neg) / (1 + exp(-2 * L * u)) - pos);
        if (g > 0) hi = u;
        else lo = u;
    }
    return 0.5 * (lo + hi);
}

static void test_bt_two_models(void)
{
    static fc_battle b[20000];
    int n = 0;
    add(b, &n, "x", "y", FC_OUTCOME_A, 6000);
    add(b, &n, "y", "x", FC_OUTCOME_B, 1000); /* x wins from the B seat */
    add(b, &n, "x", "y", FC_OUTCOME_B, 2000);
    add(b, &n, "y", "x", FC_OUTCOME_TIE, 500);
    add(b, &n, "x", "y", FC_OUTCOME_TIE_BOTHBAD, 500);
    fc_rating_opts o = {.n_bootstrap = 50, .seed = 7, .anony_only = true, .bt_exact = true};
    fc_leaderboard lb;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb) == 0);
    double pos = 2 * 7000 + 1000, neg = 2 * 2000 + 1000;
    double u = two_model_u(pos, neg);
    const fc_rating_row *x = row_of(&lb, "x"), *y = row_of(&lb, "y");
    CHECKF(fabs(x->rating - (1000 + 400 * u)) < 1e-8, "%.12f vs %.12f", x->rating, 1000 + 400 * u);
    CHECKF(fabs(y->rating - (1000 - 400 * u)) < 1e-8, "%.12f", y->rating);
    /* without the L2 term: win share 15000/20000 = 10^(d/400) / (1 + 10^(d/400)),
     * d = 400 log10(3) = 190.85; the penalty pulls it in by ~1/N */
    double d_closed = 400 * log10(pos / neg);
    CHECKF(fabs((x->rating - y->rating) - d_closed) < 0.2, "%.4f vs %.4f", x->rating - y->rating, d_closed);
    CHECK(x->rating - y->rating < d_closed);
    CHECK(x->q025 < x->rating && x->rating < x->q975 && x->q975 - x->q025 < 20);
    CHECK(x->rank_ub == 1 && y->rank_ub == 2 && lb.rows[0].model == x->model);
    /* win fraction of x over y, ties excluded: (6000 + 1000) / 9000 */
    int ix = idx_of(&lb, "x"), iy = idx_of(&lb, "y");
    CHECK(fabs(lb.win_fraction[ix * 2 + iy] - 7000.0 / 9000.0) < 1e-12);
    CHECK(fabs(lb.win_fraction[iy * 2 + ix] - 2000.0 / 9000.0) < 1e-12);
    CHECK(isnan(lb.win_fraction[ix * 2 + ix]));
    CHECK(lb.battle_count[ix * 2 + iy] == 9000 && lb.battle_count[iy * 2 + ix] == 9000);
    CHECK(x->n_battles == 10000);

    /* the default stops where scikit-learn's lbfgs stops: max |gradient| of
     * the mean loss <= 1e-4, i.e. near but not at the optimum */
    {
        fc_rating_opts od = o;
        od.bt_exact = false;
        od.n_bootstrap = 0;
        fc_leaderboard ld;
        CHECK(fc_leaderboard_compute(b, (size_t)n, &od, &ld) == 0);
        double dx = fabs(row_of(&ld, "x")->rating - x->rating);
        CHECKF(dx < 1.0, "%.6f", dx);
        /* gradient of sklearn's objective at the default's answer */
        double w = (row_of(&ld, "x")->rating - 1000) / 400, L = log(10.0), N = 2.0 * n;
        double gx = (w + L * ((pos + neg) / (1 + exp(-2 * L * w)) - pos)) / N;
        CHECKF(fabs(gx) <= 1e-4, "%g", gx);
        fc_leaderboard_free(&ld);
    }

    /* same seed, same intervals; another seed, close ones */
    fc_leaderboard lb2;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb2) == 0);
    CHECK(row_of(&lb2, "x")->q025 == x->q025 && row_of(&lb2, "x")->q975 == x->q975);
    fc_leaderboard_free(&lb2);
    o.seed = 8;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb2) == 0);
    CHECK(row_of(&lb2, "x")->q025 != x->q025 && fabs(row_of(&lb2, "x")->q025 - x->q025) < 3);
    fc_leaderboard_free(&lb2);

    /* --exclude-tie drops the 1000 ties */
    o.exclude_tie = true;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb2) == 0);
    CHECK(lb2.n_battles == 9000);
    double u2 = two_model_u(14000, 4000);
    CHECK(fabs(row_of(&lb2, "x")->rating - (1000 + 400 * u2)) < 1e-8);
    fc_leaderboard_free(&lb2);
    fc_leaderboard_free(&lb);
}

static void test_anchor_rank_filters(void)
{
    static fc_battle b[30000];
    int n = 0;
    /* strong > (mid1 = mid2) > llama-13b, clearly apart */
    add(b, &n, "strong", "mid1", FC_OUTCOME_A, 3000);
    add(b, &n, "strong", "mid1", FC_OUTCOME_B, 1000);
    add(b, &n, "strong", "mid2", FC_OUTCOME_A, 3000);
    add(b, &n, "mid2", "strong", FC_OUTCOME_A, 1000);
    add(b, &n, "mid1", "mid2", FC_OUTCOME_A, 2000);
    add(b, &n, "mid1", "mid2", FC_OUTCOME_B, 2000);
    add(b, &n, "mid1", "llama-13b", FC_OUTCOME_A, 3000);
    add(b, &n, "mid1", "llama-13b", FC_OUTCOME_B, 1000);
    add(b, &n, "llama-13b", "mid2", FC_OUTCOME_B, 3000);
    add(b, &n, "llama-13b", "mid2", FC_OUTCOME_A, 1000);
    int n_anony = n;
    /* named battles: ignored by default */
    for (int i = 0; i < 5000; i++) b[n++] = (fc_battle){"llama-13b", "strong", FC_OUTCOME_A, 5e4 + i, false};
    fc_rating_opts o = {.n_bootstrap = 100, .seed = 1, .anony_only = true};
    fc_leaderboard lb;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb) == 0);
    CHECK(lb.n_battles == n_anony && lb.n_models == 4);
    CHECK(row_of(&lb, "llama-13b")->rating == 800.0);
    CHECK(!strcmp(lb.rows[0].model, "strong") && !strcmp(lb.rows[3].model, "llama-13b"));
    CHECK(row_of(&lb, "strong")->rank_ub == 1);
    CHECK(row_of(&lb, "mid1")->rank_ub == 2 && row_of(&lb, "mid2")->rank_ub == 2);
    CHECK(row_of(&lb, "llama-13b")->rank_ub == 4);
    CHECK(fabs(row_of(&lb, "mid1")->rating - row_of(&lb, "mid2")->rating) < 1e-6);
    /* every bootstrap round has llama-13b, so its interval is a point */
    CHECK(row_of(&lb, "llama-13b")->q025 == 800.0 && row_of(&lb, "llama-13b")->q975 == 800.0);

    char *js = fc_leaderboard_json(&lb);
    cJSON *j = cJSON_Parse(js);
    CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "models")) == 4);
    cJSON *wf = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "win_fraction"), 0);
    CHECK(cJSON_IsNull(cJSON_GetArrayItem(wf, 0)));
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "models"), 0), "model")->valuestring,
                  "strong"));
    cJSON_Delete(j);
    free(js);
    fc_leaderboard_free(&lb);

    /* all battles, named included */
    o.anony_only = false;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb) == 0);
    CHECK(lb.n_battles == n && row_of(&lb, "llama-13b")->rating == 800.0);
    CHECK(row_of(&lb, "llama-13b")->rank_ub == 1);
    fc_leaderboard_free(&lb);

    /* Elo rating system: the rating is the rounded bootstrap median */
    o.anony_only = true;
    o.rating_system = FC_RATING_ELO;
    CHECK(fc_leaderboard_compute(b, (size_t)n, &o, &lb) == 0);
    for (int i = 0; i < lb.n_rows; i++) {
        CHECK(lb.rows[i].rating == floor(lb.rows[i].rating));
        CHECK(lb.rows[i].q025 <= lb.rows[i].rating && lb.rows[i].rating <= lb.rows[i].q975);
    }
    CHECK(!strcmp(lb.rows[0].model, "strong"));
    fc_leaderboard_free(&lb);
}

static void test_edges(void)
{
    fc_leaderboard lb;
    fc_rating_opts o = {.n_bootstrap = 10, .anony_only = true};
    CHECK(fc_leaderboard_compute(NULL, 0, &o, &lb) == 0 && lb.n_rows == 0);
    char *js = fc_leaderboard_json(&lb);
    CHECK(js && strstr(js, "\"models\":[]"));
    free(js);
    fc_leaderboard_free(&lb);
    fc_leaderboard_free(NULL);
    fc_battle bad = {NULL, "y", FC_OUTCOME_A, 1, true};
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    CHECK(fc_leaderboard_compute(&bad, 1, &o, &lb) < 0);
    bad = (fc_battle){"x", "y", (enum fc_outcome)9, 1, true};
    CHECK(fc_leaderboard_compute(&bad, 1, &o, &lb) < 0);
    bad = (fc_battle){"x", "y", FC_OUTCOME_A, NAN, true};
    CHECK(fc_leaderboard_compute(&bad, 1, &o, &lb) < 0);
    fc_log_set_level(FC_LOG_LEVEL_INFO);
    /* a model that only ever loses gets a finite rating (the L2 term) */
    fc_battle one[2] = {{"x", "y", FC_OUTCOME_A, 1, true}, {"x", "x", FC_OUTCOME_B, 2, true}};
    CHECK(fc_leaderboard_compute(one, 2, &o, &lb) == 0);
    CHECK(lb.n_rows == 2 && isfinite(lb.rows[0].rating) && isfinite(lb.rows[1].rating));
    int ix = idx_of(&lb, "x");
    CHECK(lb.win_fraction[ix * 2 + ix] == 0.5 && lb.battle_count[ix * 2 + ix] == 2);
    fc_leaderboard_free(&lb);
}

/* 100,000 battles among 12 models drawn from known strengths; timed. */
static void test_timing(void)
{
    enum { N = 100000, M = 12 };
    static fc_battle b[N];
    static char names[M][16];
    double strength[M];
    for (int i = 0; i < M; i++) {
        snprintf(names[i], sizeof(names[i]), "model-%02d", i);
        strength[i] = 1300 - 40.0 * i;
    }
    uint64_t s = 12345;
    for (int k = 0; k < N; k++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int a = (int)((s >> 33) % M), c = (int)((s >> 40) % (M - 1));
        if (c >= a) c++;
        double u = (double)((s >> 11) & 0xfffff) / 1048576.0;
        double p = 1 / (1 + pow(10, (strength[c] - strength[a]) / 400));
        enum fc_outcome w = u < 0.1 ? FC_OUTCOME_TIE : u < 0.15 ? FC_OUTCOME_TIE_BOTHBAD
                          : (u - 0.15) / 0.85 < p ? FC_OUTCOME_A : FC_OUTCOME_B;
        b[k] = (fc_battle){names[a], names[c], w, 1.7e9 + k, true};
    }
    fc_rating_opts o = {.n_bootstrap = 100, .seed = 42, .anony_only = true};
    fc_leaderboard lb;
    double t0 = fc_time_sec();
    CHECK(fc_leaderboard_compute(b, N, &o, &lb) == 0);
    double t1 = fc_time_sec();
    printf("100000 battles, %d models, BT + 100 bootstrap rounds: %.3f s\n", M, t1 - t0);
    CHECK(lb.n_rows == M && !strcmp(lb.rows[0].model, "model-00") && !strcmp(lb.rows[M - 1].model, "model-11"));
    for (int i = 0; i < M; i++) CHECK(lb.rows[i].rank_ub == i + 1);
    fc_leaderboard_free(&lb);
    o.rating_system = FC_RATING_ELO;
    t0 = fc_time_sec();
    CHECK(fc_leaderboard_compute(b, N, &o, &lb) == 0);
    t1 = fc_time_sec();
    printf("100000 battles, %d models, Elo + 100 bootstrap rounds: %.3f s\n", M, t1 - t0);
    fc_leaderboard_free(&lb);
}

int main(void)
{
    test_elo_by_hand();
    test_bt_two_models();
    test_anchor_rank_filters();
    test_edges();
    test_timing();
    return TEST_END();
}
