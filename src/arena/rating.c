/*
 * rating.c: Chatbot Arena ratings from battles, as FastChat 0.2.36's
 * serve/monitor/elo_analysis.py computes them:
 *   - compute_elo: online Elo in time order (K=4, base 10, scale 400,
 *     start 1000, a tie of either kind = 0.5), the same floating-point
 *     operations in the same order, so the numbers are bit-equal;
 *   - compute_elo_mle_with_tie: the Bradley-Terry maximum-likelihood fit
 *     (scikit-learn LogisticRegression, default L2 penalty C=1, no intercept,
 *     every battle counted twice and a tie as one win each), on the unique
 *     (pair, outcome) counts instead of a 2n-row design matrix: by default
 *     with the same L-BFGS steps scikit-learn's lbfgs solver takes, so it
 *     stops where FastChat's fit stops; or (bt_exact) solved to convergence
 *     by Newton's method on the n_models x n_models system;
 *   - get_bootstrap_result: 2.5% / 97.5% quantiles over resampled battle
 *     sets. FastChat resamples rows (battles.sample(frac=1, replace=True));
 *     the counts of the unique cells of such a resample are multinomial, so we
 *     draw them directly (Walker's alias method) and refit on small matrices;
 *   - compute_pairwise_win_fraction and the battle-count heatmap (ties
 *     excluded, as report_elo_analysis_results passes battles_no_ties).
 * Rank (UB) is the later FastChat leaderboard's: 1 + the number of models
 * whose lower bound exceeds this model's upper bound.
 *
 * Not done: style control, categories, outlier detection, the per-user vote
 * cap (later FastChat), and pandas' NaN quirks where a model never appears
 * on one side (see fc_leaderboard's comments: we count what is there).
 */
#include "arena/rating.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"

#define ELO_K 4.0
#define ELO_SCALE 400.0
#define ELO_BASE 10.0
#define ELO_INIT 1000.0
#define ANCHOR_MODEL "llama-13b" /* compute_elo_mle_with_tie: "calibrate llama-13b to 800" */
#define ANCHOR_RATING 800.0

/* ---- model names -> dense ids (open addressing, FNV-1a) ---- */

typedef struct names {
    const char **name; /* (n) borrowed from the battles */
    int n, cap_name;
    int *slot;         /* (nslot) id + 1, 0 = empty */
    size_t nslot;
} names;

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void names_grow(names *t)
{
    size_t ns = t->nslot ? t->nslot * 2 : 64;
    int *slot = fc_xcalloc(ns, sizeof(int));
    for (int i = 0; i < t->n; i++) {
        size_t h = (size_t)fnv1a(t->name[i]) & (ns - 1);
        while (slot[h]) h = (h + 1) & (ns - 1);
        slot[h] = i + 1;
    }
    free(t->slot);
    t->slot = slot;
    t->nslot = ns;
}

static int names_id(names *t, const char *s)
{
    if ((size_t)(t->n + 1) * 2 > t->nslot) names_grow(t);
    size_t h = (size_t)fnv1a(s) & (t->nslot - 1);
    while (t->slot[h]) {
        int id = t->slot[h] - 1;
        if (!strcmp(t->name[id], s)) return id;
        h = (h + 1) & (t->nslot - 1);
    }
    if (t->n == t->cap_name) {
        t->cap_name = t->cap_name ? t->cap_name * 2 : 16;
        t->name = fc_xrealloc(t->name, sizeof(char *) * (size_t)t->cap_name);
    }
    t->name[t->n] = s;
    t->slot[h] = t->n + 1;
    return t->n++;
}

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, n) without modulo bias worth noticing (n < 2^32). */
static inline uint32_t rng_below(rng *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* ---- online Elo (compute_elo) ---- */

static double elo_score(enum fc_outcome w)
{
    return w == FC_OUTCOME_A ? 1.0 : w == FC_OUTCOME_B ? 0.0 : 0.5;
}

/* One update, written as elo_analysis.compute_elo writes it (ea and eb are
 * computed separately; the two ratings are updated one after the other). */
static inline void elo_update(double *rating, int a, int b, double sa)
{
    double ra = rating[a], rb = rating[b];
    double ea = 1 / (1 + pow(ELO_BASE, (rb - ra) / ELO_SCALE));
    double eb = 1 / (1 + pow(ELO_BASE, (ra - rb) / ELO_SCALE));
    rating[a] += ELO_K * (sa - ea);
    rating[b] += ELO_K * (1 - sa - eb);
}

/* ---- Bradley-Terry fit ---- */

/* One unordered pair a < b with its logistic counts: pos = rows where a wins
 * (2 per win of a, 1 per tie), neg = rows where b wins.
 * SELF: b = -1 is a model's battles against itself. FastChat's design matrix
 * sets X[row, a] = +ln10 and then X[row, b] = -ln10, so when a == b the second
 * write wins and the row is z = -ln10 * w_a (y = 1 when "model_a" won); we
 * keep that quirk so the numbers agree. */
typedef struct bt_pair {
    int a, b;
    double pos, neg;
} bt_pair;

static double softplus(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* 0.5 |w|^2 + sum pos * softplus(-z) + neg * softplus(z), z = ln10 (w_a - w_b) */
static double bt_loss(const double *w, int m, const bt_pair *p, int np)
{
    const double L = log(ELO_BASE);
    double f = 0;
    for (int i = 0; i < m; i++) f += 0.5 * w[i] * w[i];
    for (int k = 0; k < np; k++) {
        double z = L * (p[k].b >= 0 ? w[p[k].a] - w[p[k].b] : -w[p[k].a]);
        if (p[k].pos > 0) f += p[k].pos * softplus(-z);
        if (p[k].neg > 0) f += p[k].neg * softplus(z);
    }
    return f;
}

/* In-place Cholesky solve of H x = g (H (m, m) SPD, overwritten). */
static void chol_solve(double *H, int m, double *g)
{
    for (int j = 0; j < m; j++) {
        double d = H[j * m + j];
        for (int k = 0; k < j; k++) d -= H[j * m + k] * H[j * m + k];
        FC_ASSERT(d > 0);
        d = sqrt(d);
        H[j * m + j] = d;
        for (int i = j + 1; i < m; i++) {
            double s = H[i * m + j];
            for (int k = 0; k < j; k++) s -= H[i * m + k] * H[j * m + k];
            H[i * m + j] = s / d;
        }
    }
    for (int i = 0; i < m; i++) { /* L y = g */
        double s = g[i];
        for (int k = 0; k < i; k++) s -= H[i * m + k] * g[k];
        g[i] = s / H[i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) { /* L^T x = y */
        double s = g[i];
        for (int k = i + 1; k < m; k++) s -= H[k * m + i] * g[k];
        g[i] = s / H[i * m + i];
    }
}

/* Minimizes bt_loss over w (m), starting from w as given. Damped Newton: the
 * loss is strictly convex (Hessian >= I), so this converges from anywhere;
 * from a nearby start (a bootstrap round from the full fit) in 2-4 steps.
 * scratch: m*m + 3*m doubles. */
static void bt_fit(double *w, int m, const bt_pair *p, int np, double *scratch)
{
    const double L = log(ELO_BASE);
    double *H = scratch, *g = H + (size_t)m * m, *d = g + m, *wt = d + m;
    double f = bt_loss(w, m, p, np);
    for (int it = 0; it < 100; it++) {
        memset(H, 0, sizeof(double) * (size_t)m * m);
        for (int i = 0; i < m; i++) {
            g[i] = w[i];
            H[i * m + i] = 1;
        }
        for (int k = 0; k < np; k++) {
            int a = p[k].a, b = p[k].b;
            double n = p[k].pos + p[k].neg;
            if (b < 0) { /* self-battle row: z = -ln10 w_a (see SELF below) */
                double s = 1 / (1 + exp(L * w[a]));
                g[a] -= L * (n * s - p[k].pos);
                H[a * m + a] += L * L * n * s * (1 - s);
                continue;
            }
            double s = 1 / (1 + exp(-L * (w[a] - w[b])));
            double gk = L * (n * s - p[k].pos);
            double hk = L * L * n * s * (1 - s);
            g[a] += gk;
            g[b] -= gk;
            H[a * m + a] += hk;
            H[b * m + b] += hk;
            H[a * m + b] -= hk;
            H[b * m + a] -= hk;
        }
        double gmax = 0;
        for (int i = 0; i < m; i++) gmax = FC_MAX(gmax, fabs(g[i]));
        if (gmax < 1e-11) break;
        memcpy(d, g, sizeof(double) * (size_t)m);
        chol_solve(H, m, d);
        double gd = 0, dmax = 0;
        for (int i = 0; i < m; i++) {
            gd += g[i] * d[i];
            dmax = FC_MAX(dmax, fabs(d[i]));
        }
        double t = 1, ft = f;
        for (int ls = 0; ls < 60; ls++, t *= 0.5) {
            for (int i = 0; i < m; i++) wt[i] = w[i] - t * d[i];
            ft = bt_loss(wt, m, p, np);
            if (ft <= f - 1e-4 * t * gd || t * dmax < 1e-15) break;
        }
        memcpy(w, wt, sizeof(double) * (size_t)m);
        f = ft;
        if (t * dmax < 1e-14) break;
    }
}

/* ---- the fit as scikit-learn's lbfgs solver computes it ----
 * LogisticRegression(fit_intercept=False) with the lbfgs solver minimizes
 *   f(w) = mean over the 2n rows of the logistic loss + 0.5 / (2n) |w|^2
 * (sklearn's LinearModelLoss: C = 1 becomes l2 = 1 / (C * n_samples)) from
 * w = 0 with scipy's L-BFGS-B (10 corrections, gtol = tol = 1e-4 on the max
 * |gradient|, ftol = 64 eps, at most 100 iterations, 50 line-search steps).
 * Without bounds L-BFGS-B's search direction is the L-BFGS two-loop
 * direction -H g with H0 = (s'y / y'y) I, its first step is 1/|g| along -g,
 * later steps start at 1, and its line search is MINPACK-2's dcsrch (ftol
 * 1e-3, gtol 0.9, xtol 0.1). Doing the same steps on the same function lands
 * where scikit-learn stops (agreement ~1e-13 rating points, tested), which is
 * up to a few tenths of a point short of the exact optimum bt_fit finds. */

typedef struct bt_problem {
    int m;
    const bt_pair *p;
    int np;
    double inv_rows; /* 1 / (2 * battles) */
} bt_problem;

static double bt_fg(const bt_problem *pb, const double *w, double *g)
{
    const double L = log(ELO_BASE);
    double f = 0, ww = 0;
    for (int i = 0; i < pb->m; i++) {
        g[i] = 0;
        ww += w[i] * w[i];
    }
    for (int k = 0; k < pb->np; k++) {
        const bt_pair *q = &pb->p[k];
        double z = L * (q->b >= 0 ? w[q->a] - w[q->b] : -w[q->a]);
        double n = q->pos + q->neg;
        if (q->pos > 0) f += q->pos * softplus(-z);
        if (q->neg > 0) f += q->neg * softplus(z);
        double gz = L * (n / (1 + exp(-z)) - q->pos); /* d loss / d w_a for a pair */
        if (q->b >= 0) {
            g[q->a] += gz;
            g[q->b] -= gz;
        } else {
            g[q->a] -= gz;
        }
    }
    for (int i = 0; i < pb->m; i++) g[i] = g[i] * pb->inv_rows + pb->inv_rows * w[i];
    return f * pb->inv_rows + 0.5 * pb->inv_rows * ww;
}

/* MINPACK-2 dcstep: a safeguarded step for the line search (Moré and
 * Thuente 1994, "Line search algorithms with guaranteed sufficient decrease",
 * ACM TOMS 20(3)); four cases by what the new trial point tells. */
static void dcstep(double *stx, double *fx, double *dx, double *sty, double *fy, double *dy, double *stp,
                   double fp, double dp, bool *brackt, double stpmin, double stpmax)
{
    double sgnd = dp * (*dx / fabs(*dx)), stpf, stpc, stpq, theta, s, gamma, p, q, r;
    if (fp > *fx) { /* higher function value: the minimum is bracketed */
        theta = 3 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp < *stx) gamma = -gamma;
        p = (gamma - *dx) + theta;
        q = ((gamma - *dx) + gamma) + dp;
        r = p / q;
        stpc = *stx + r * (*stp - *stx);
        stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2) * (*stp - *stx);
        stpf = fabs(stpc - *stx) < fabs(stpq - *stx) ? stpc : stpc + (stpq - stpc) / 2;
        *brackt = true;
    } else if (sgnd < 0) { /* derivatives of opposite sign: bracketed */
        theta = 3 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = ((gamma - dp) + gamma) + *dx;
        r = p / q;
        stpc = *stp + r * (*stx - *stp);
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
        *brackt = true;
    } else if (fabs(dp) < fabs(*dx)) { /* derivative decreases in magnitude */
        theta = 3 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = fmax(fabs(theta), fmax(fabs(*dx), fabs(dp)));
        gamma = s * sqrt(fmax(0.0, (theta / s) * (theta / s) - (*dx / s) * (dp / s)));
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = (gamma + (*dx - dp)) + gamma;
        r = p / q;
        if (r < 0 && gamma != 0) stpc = *stp + r * (*stx - *stp);
        else if (*stp > *stx) stpc = stpmax;
        else stpc = stpmin;
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (*brackt) {
            stpf = fabs(stpc - *stp) < fabs(stpq - *stp) ? stpc : stpq;
            if (*stp > *stx) stpf = fmin(*stp + 0.66 * (*sty - *stp), stpf);
            else stpf = fmax(*stp + 0.66 * (*sty - *stp), stpf);
        } else {
            stpf = fabs(stpc - *stp) > fabs(stpq - *stp) ? stpc : stpq;
            stpf = fmin(stpmax, stpf);
            stpf = fmax(stpmin, stpf);
        }
    } else { /* derivative does not decrease */
        if (*brackt) {
            theta = 3 * (fp - *fy) / (*sty - *stp) + *dy + dp;
            s = fmax(fabs(theta), fmax(fabs(*dy), fabs(dp)));
            gamma = s * sqrt((theta / s) * (theta / s) - (*dy / s) * (dp / s));
            if (*stp > *sty) gamma = -gamma;
            p = (gamma - dp) + theta;
            q = ((gamma - dp) + gamma) + *dy;
            r = p / q;
            stpc = *stp + r * (*sty - *stp);
            stpf = stpc;
        } else if (*stp > *stx) {
            stpf = stpmax;
        } else {
            stpf = stpmin;
        }
    }
    if (fp > *fx) {
        *sty = *stp;
        *fy = fp;
        *dy = dp;
    } else {
        if (sgnd < 0) {
            *sty = *stx;
            *fy = *fx;
            *dy = *dx;
        }
        *stx = *stp;
        *fx = fp;
        *dx = dp;
    }
    *stp = stpf;
}

/* MINPACK-2 dcsrch's state between trial points. */
typedef struct dcsrch {
    double ftol, gtol, xtol, stpmin, stpmax;
    bool brackt;
    int stage;
    double finit, ginit, gtest, width, width1, stx, fx, gx, sty, fy, gy, stmin, stmax;
} dcsrch;

static void dcsrch_start(dcsrch *s, double f, double g, double stp, double stpmax)
{
    *s = (dcsrch){.ftol = 1e-3, .gtol = 0.9, .xtol = 0.1, .stpmin = 0, .stpmax = stpmax};
    s->stage = 1;
    s->finit = f;
    s->ginit = g;
    s->gtest = s->ftol * g;
    s->width = s->stpmax - s->stpmin;
    s->width1 = s->width / 0.5;
    s->stx = 0;
    s->fx = f;
    s->gx = g;
    s->sty = 0;
    s->fy = f;
    s->gy = g;
    s->stmin = 0;
    s->stmax = stp + 4.0 * stp;
}

/* One trial point (f, g = directional derivative at stp). Returns 1 when the
 * search is over (converged or a warning), 0 with *stp the next trial. */
static int dcsrch_step(dcsrch *s, double f, double g, double *stp)
{
    double ftest = s->finit + *stp * s->gtest;
    if (s->stage == 1 && f <= ftest && g >= 0) s->stage = 2;
    if (s->brackt && (*stp <= s->stmin || *stp >= s->stmax)) return 1;
    if (s->brackt && s->stmax - s->stmin <= s->xtol * s->stmax) return 1;
    if (*stp == s->stpmax && f <= ftest && g <= s->gtest) return 1;
    if (*stp == s->stpmin && (f > ftest || g >= s->gtest)) return 1;
    if (f <= ftest && fabs(g) <= s->gtol * (-s->ginit)) return 1;
    if (s->stage == 1 && f <= s->fx && f > ftest) { /* the modified function */
        double fm = f - *stp * s->gtest, fxm = s->fx - s->stx * s->gtest, fym = s->fy - s->sty * s->gtest;
        double gm = g - s->gtest, gxm = s->gx - s->gtest, gym = s->gy - s->gtest;
        dcstep(&s->stx, &fxm, &gxm, &s->sty, &fym, &gym, stp, fm, gm, &s->brackt, s->stmin, s->stmax);
        s->fx = fxm + s->stx * s->gtest;
        s->fy = fym + s->sty * s->gtest;
        s->gx = gxm + s->gtest;
        s->gy = gym + s->gtest;
    } else {
        dcstep(&s->stx, &s->fx, &s->gx, &s->sty, &s->fy, &s->gy, stp, f, g, &s->brackt, s->stmin, s->stmax);
    }
    if (s->brackt) {
        if (fabs(s->sty - s->stx) >= 0.66 * s->width1) *stp = s->stx + 0.5 * (s->sty - s->stx);
        s->width1 = s->width;
        s->width = fabs(s->sty - s->stx);
        s->stmin = fmin(s->stx, s->sty);
        s->stmax = fmax(s->stx, s->sty);
    } else {
        s->stmin = *stp + 1.1 * (*stp - s->stx);
        s->stmax = *stp + 4.0 * (*stp - s->stx);
    }
    *stp = fmax(*stp, s->stpmin);
    *stp = fmin(*stp, s->stpmax);
    if (s->brackt && (*stp <= s->stmin || *stp >= s->stmax || s->stmax - s->stmin <= s->xtol * s->stmax))
        *stp = s->stx;
    return 0;
}

#define LBFGS_M 10
#define LBFGS_MAXITER 100
#define LBFGS_MAXLS 50
#define LBFGS_PGTOL 1e-4
#define LBFGS_STPMAX 1e10

static double dot(const double *a, const double *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s = fmax(s, fabs(a[i]));
    return s;
}

/* From w = 0 (w is overwritten), as sklearn's lbfgs path runs. */
static void bt_fit_lbfgs(double *w, const bt_problem *pb)
{
    const int m = pb->m;
    const double eps = 2.220446049250313e-16, factr = 64.0;
    double *mem = fc_xcalloc((size_t)(2 * LBFGS_M + 6) * m, sizeof(double));
    double *S = mem, *Y = S + LBFGS_M * m, *g = Y + LBFGS_M * m, *d = g + m, *t = d + m, *rg = t + m,
           *q = rg + m, *y = q + m;
    double alpha[LBFGS_M];
    int col = 0, head = 0; /* stored pairs: (head + i) % M for i < col, oldest first */
    double theta = 1;
    for (int i = 0; i < m; i++) w[i] = 0;
    double f = bt_fg(pb, w, g);
    if (max_abs(g, m) <= LBFGS_PGTOL) goto done;
    for (int it = 0; it < LBFGS_MAXITER; it++) {
        /* direction: -H g by the two-loop recursion over the stored pairs */
        memcpy(q, g, sizeof(double) * (size_t)m);
        for (int j = col - 1; j >= 0; j--) {
            int k = (head + j) % LBFGS_M;
            double *sk = S + (size_t)k * m, *yk = Y + (size_t)k * m;
            alpha[k] = dot(sk, q, m) / dot(yk, sk, m);
            for (int i = 0; i < m; i++) q[i] -= alpha[k] * yk[i];
        }
        for (int i = 0; i < m; i++) q[i] /= theta;
        for (int j = 0; j < col; j++) {
            int k = (head + j) % LBFGS_M;
            double *sk = S + (size_t)k * m, *yk = Y + (size_t)k * m;
            double beta = dot(yk, q, m) / dot(yk, sk, m);
            for (int i = 0; i < m; i++) q[i] += sk[i] * (alpha[k] - beta);
        }
        for (int i = 0; i < m; i++) d[i] = -q[i];

        double dnorm = sqrt(dot(d, d, m));
        double stp = it == 0 ? fmin(1.0 / dnorm, LBFGS_STPMAX) : 1.0;
        memcpy(t, w, sizeof(double) * (size_t)m);
        memcpy(rg, g, sizeof(double) * (size_t)m);
        double fold = f, gd = dot(g, d, m), gdold = gd;
        if (!(gd < 0)) break; /* not a descent direction (rounding at the optimum) */
        dcsrch ls;
        dcsrch_start(&ls, f, gd, stp, LBFGS_STPMAX);
        bool ok = false;
        for (int nls = 0; nls < LBFGS_MAXLS; nls++) {
            for (int i = 0; i < m; i++) w[i] = stp == 1 ? t[i] + d[i] : stp * d[i] + t[i];
            f = bt_fg(pb, w, g);
            gd = dot(g, d, m);
            if (dcsrch_step(&ls, f, gd, &stp)) {
                ok = true;
                break;
            }
        }
        if (!ok) { /* L-BFGS-B would restart; scikit-learn warns. Keep the best. */
            if (f > fold) {
                memcpy(w, t, sizeof(double) * (size_t)m);
                f = fold;
            }
            break;
        }
        if (it + 1 >= LBFGS_MAXITER) break;
        if (max_abs(g, m) <= LBFGS_PGTOL) break;
        if (fold - f <= factr * eps * fmax(fmax(fabs(fold), fabs(f)), 1.0)) break;
        /* the correction pair s = stp d, y = g - g_old */
        for (int i = 0; i < m; i++) y[i] = g[i] - rg[i];
        double rr = dot(y, y, m), dr, ddum;
        if (stp == 1) {
            dr = gd - gdold;
            ddum = -gdold;
        } else {
            dr = (gd - gdold) * stp;
            ddum = -gdold * stp;
        }
        if (dr <= eps * ddum) continue; /* skip the update */
        int k;
        if (col < LBFGS_M) {
            k = (head + col) % LBFGS_M;
            col++;
        } else {
            k = head;
            head = (head + 1) % LBFGS_M;
        }
        for (int i = 0; i < m; i++) {
            S[(size_t)k * m + i] = stp == 1 ? d[i] : stp * d[i];
            Y[(size_t)k * m + i] = y[i];
        }
        theta = rr / dr;
    }
done:
    free(mem);
}

/* Ratings on FastChat's scale from fitted w; models not in `present` are NaN. */
static void bt_scale(const double *w, int m, const bool *present, int anchor, double *out)
{
    for (int i = 0; i < m; i++) out[i] = present[i] ? ELO_SCALE * w[i] + ELO_INIT : NAN;
    if (anchor >= 0 && present[anchor]) {
        double shift = ANCHOR_RATING - out[anchor];
        for (int i = 0; i < m; i++) out[i] += shift;
    }
}

/* ---- quantiles (numpy's default 'linear' method over the non-NaN values) ---- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double quantile(double *v, int n, double q) /* v sorted, no NaN */
{
    if (n == 0) return NAN;
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    if (lo >= n - 1) return v[n - 1];
    double t = h - lo;
    return v[lo] + t * (v[lo + 1] - v[lo]);
}

/* ---- the leaderboard ---- */

typedef struct sort_key {
    double tstamp;
    size_t i;
} sort_key;

static int cmp_time(const void *x, const void *y)
{
    const sort_key *a = x, *b = y;
    if (a->tstamp != b->tstamp) return a->tstamp < b->tstamp ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

typedef struct row_order {
    double rating;
    const char *name;
    int id;
} row_order;

static int cmp_rows(const void *x, const void *y)
{
    const row_order *a = x, *b = y;
    if (a->rating != b->rating) return a->rating > b->rating ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* A resampled battle set's cell counts, drawn from the multinomial with
 * probabilities count / total (Walker/Vose alias table over the cells). */
typedef struct alias {
    int n;
    double *prob; /* (n) */
    int *other;   /* (n) */
} alias;

static void alias_init(alias *al, const double *w, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) sum += w[i];
    al->n = n;
    al->prob = fc_xmalloc(sizeof(double) * (size_t)n);
    al->other = fc_xmalloc(sizeof(int) * (size_t)n);
    int *small = fc_xmalloc(sizeof(int) * (size_t)n), *large = fc_xmalloc(sizeof(int) * (size_t)n);
    int ns = 0, nl = 0;
    double *p = al->prob;
    for (int i = 0; i < n; i++) {
        p[i] = w[i] * n / sum;
        al->other[i] = i;
        if (p[i] < 1) small[ns++] = i;
        else large[nl++] = i;
    }
    while (ns && nl) {
        int s = small[--ns], l = large[nl - 1];
        al->other[s] = l;
        p[l] -= 1 - p[s];
        if (p[l] < 1) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) p[large[--nl]] = 1;
    while (ns) p[small[--ns]] = 1;
    free(small);
    free(large);
}

static inline int alias_draw(const alias *al, rng *r)
{
    uint64_t x = rng_next(r);
    uint32_t i = (uint32_t)(((x >> 32) * (uint64_t)al->n) >> 32);
    double u = (double)(x & 0xffffffffu) * (1.0 / 4294967296.0);
    return u < al->prob[i] ? (int)i : al->other[i];
}

static void alias_free(alias *al)
{
    free(al->prob);
    free(al->other);
}

/* Outcome cells of the unique-count representation: (pair k, outcome o) with
 * o = 0: a (lower id) wins, 1: b wins, 2: tie (either kind). */
static void cells_to_pairs(const double *cnt, bt_pair *p, int np)
{
    for (int k = 0; k < np; k++) {
        p[k].pos = 2 * cnt[3 * k + 0] + cnt[3 * k + 2];
        p[k].neg = 2 * cnt[3 * k + 1] + cnt[3 * k + 2];
    }
}

/* ---- fc_leaderboard_compute, phase by phase ---- */

/* The battles being rated: after the filters, in time order, as model ids. */
typedef struct rated {
    names nm;
    size_t nb;
    int *ia, *ib;      /* (nb) model ids of A and B */
    unsigned char *wo; /* (nb) enum fc_outcome */
} rated;

static void rated_free(rated *r)
{
    free(r->ia);
    free(r->ib);
    free(r->wo);
    free(r->nm.name);
    free(r->nm.slot);
}

static int check_args(const fc_battle *b, size_t n, const fc_rating_opts *o, const fc_leaderboard *out)
{
    if (!out || (n && !b)) {
        FC_LOG_ERROR("fc_leaderboard_compute: NULL argument");
        return FC_ERR_ARG;
    }
    if (o->n_bootstrap < 0 || o->n_bootstrap > 100000 ||
        (o->rating_system != FC_RATING_BT && o->rating_system != FC_RATING_ELO)) {
        FC_LOG_ERROR("fc_leaderboard_compute: bad options (n_bootstrap %d, rating_system %d)", o->n_bootstrap,
                     o->rating_system);
        return FC_ERR_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!b[i].model_a || !b[i].model_b || (unsigned)b[i].winner > FC_OUTCOME_TIE_BOTHBAD ||
            !isfinite(b[i].tstamp)) {
            FC_LOG_ERROR("fc_leaderboard_compute: battle %zu: missing model name, unknown winner or non-finite tstamp",
                         i);
            return FC_ERR_ARG;
        }
    }
    if (n > (size_t)INT32_MAX) {
        FC_LOG_ERROR("fc_leaderboard_compute: %zu battles is more than we rate at once", n);
        return FC_ERR_ARG;
    }
    return FC_OK;
}

/* Filters, then time order (stable: equal tstamps keep input order), then
 * model ids in order of first appearance. */
static void rated_build(const fc_battle *b, size_t n, const fc_rating_opts *o, rated *r)
{
    sort_key *ord = fc_xmalloc(sizeof(sort_key) * (n ? n : 1));
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        if (o->anony_only && !b[i].anony) continue;
        if (o->exclude_tie && (b[i].winner == FC_OUTCOME_TIE || b[i].winner == FC_OUTCOME_TIE_BOTHBAD)) continue;
        ord[nb].tstamp = b[i].tstamp;
        ord[nb].i = i;
        nb++;
    }
    qsort(ord, nb, sizeof(sort_key), cmp_time);
    *r = (rated){.nb = nb};
    r->ia = fc_xmalloc(sizeof(int) * (nb ? nb : 1));
    r->ib = fc_xmalloc(sizeof(int) * (nb ? nb : 1));
    r->wo = fc_xmalloc(nb ? nb : 1);
    for (size_t k = 0; k < nb; k++) {
        const fc_battle *x = &b[ord[k].i];
        r->ia[k] = names_id(&r->nm, x->model_a);
        r->ib[k] = names_id(&r->nm, x->model_b);
        r->wo[k] = (unsigned char)x->winner;
    }
    free(ord);
}

/* The unique-count representation: one bt_pair per pair of models that met
 * (a < b; b = -1 for a model's battles against itself) and its outcome
 * counts cnt[3 * k + o] (cells_to_pairs). */
typedef struct cells {
    int np;
    bt_pair *pairs;
    double *cnt; /* (np, 3) */
} cells;

static void cells_build(const rated *r, int m, cells *c)
{
    int *pid = fc_xmalloc(sizeof(int) * (size_t)m * m); /* pid[lo * m + hi]: pair index */
    for (int i = 0; i < m * m; i++) pid[i] = -1;
    int cap = 0;
    *c = (cells){0};
    for (size_t k = 0; k < r->nb; k++) {
        int a = r->ia[k], b = r->ib[k], o;
        enum fc_outcome w = (enum fc_outcome)r->wo[k];
        if (w == FC_OUTCOME_TIE || w == FC_OUTCOME_TIE_BOTHBAD) o = 2;
        else if (a <= b) o = w == FC_OUTCOME_A ? 0 : 1;
        else o = w == FC_OUTCOME_A ? 1 : 0;
        int lo = FC_MIN(a, b), hi = FC_MAX(a, b);
        int *slot = &pid[lo * m + hi];
        if (*slot < 0) {
            if (c->np == cap) {
                cap = cap ? cap * 2 : 64;
                c->pairs = fc_xrealloc(c->pairs, sizeof(bt_pair) * (size_t)cap);
                c->cnt = fc_xrealloc(c->cnt, sizeof(double) * 3 * (size_t)cap);
            }
            c->pairs[c->np] = (bt_pair){lo, lo == hi ? -1 : hi, 0, 0};
            c->cnt[3 * c->np] = c->cnt[3 * c->np + 1] = c->cnt[3 * c->np + 2] = 0;
            *slot = c->np++;
        }
        c->cnt[3 * *slot + o] += 1;
    }
    free(pid);
}

/* One Bradley-Terry fit per round over nb cells drawn with replacement
 * (weights: the cell counts). boot: (R, m), NaN where a model is absent. */
static void bootstrap_bt(const rated *r, const cells *c, int m, int R, const fc_rating_opts *o, int anchor,
                         const double *w_full, double *scratch, rng *rg, double *boot)
{
    const int nc = 3 * c->np;
    const double inv_rows = 1.0 / (2.0 * (double)r->nb);
    alias al;
    alias_init(&al, c->cnt, nc);
    double *rc = fc_xmalloc(sizeof(double) * (size_t)nc);
    bt_pair *rp = fc_xmalloc(sizeof(bt_pair) * (size_t)(c->np ? c->np : 1));
    double *w = fc_xmalloc(sizeof(double) * (size_t)m);
    bool *present = fc_xmalloc(sizeof(bool) * (size_t)m);
    for (int rd = 0; rd < R; rd++) {
        memset(rc, 0, sizeof(double) * (size_t)nc);
        for (size_t k = 0; k < r->nb; k++) rc[alias_draw(&al, rg)] += 1;
        for (int i = 0; i < m; i++) present[i] = false;
        int nrp = 0;
        for (int k = 0; k < c->np; k++) {
            const double *c3 = &rc[3 * k];
            if (c3[0] + c3[1] + c3[2] == 0) continue;
            present[c->pairs[k].a] = true;
            if (c->pairs[k].b >= 0) present[c->pairs[k].b] = true;
            rp[nrp].a = c->pairs[k].a;
            rp[nrp].b = c->pairs[k].b;
            rp[nrp].pos = 2 * c3[0] + c3[2];
            rp[nrp].neg = 2 * c3[1] + c3[2];
            nrp++;
        }
        if (o->bt_exact) {
            memcpy(w, w_full, sizeof(double) * (size_t)m);
            bt_fit(w, m, rp, nrp, scratch);
        } else {
            bt_fit_lbfgs(w, &(bt_problem){m, rp, nrp, inv_rows});
        }
        bt_scale(w, m, present, anchor, &boot[(size_t)rd * m]);
    }
    free(present);
    free(w);
    free(rp);
    free(rc);
    alias_free(&al);
}

/* Online Elo over nb battles drawn with replacement, in the order drawn
 * (battles.sample returns rows in sampled order). boot as bootstrap_bt's. */
static void bootstrap_elo(const rated *r, int m, int R, rng *rg, double *boot)
{
    double *er = fc_xmalloc(sizeof(double) * (size_t)m);
    bool *present = fc_xmalloc(sizeof(bool) * (size_t)m);
    for (int rd = 0; rd < R; rd++) {
        for (int i = 0; i < m; i++) {
            er[i] = ELO_INIT;
            present[i] = false;
        }
        for (size_t k = 0; k < r->nb; k++) {
            uint32_t j = rng_below(rg, (uint32_t)r->nb);
            /* eb = 1 - ea: one exp instead of two pows (the bootstrap
             * agrees with FastChat's only statistically anyway) */
            int a = r->ia[j], b = r->ib[j];
            double sa = elo_score((enum fc_outcome)r->wo[j]);
            double ea = 1 / (1 + exp((er[b] - er[a]) * (M_LN10 / ELO_SCALE)));
            er[a] += ELO_K * (sa - ea);
            er[b] += ELO_K * (ea - sa);
            present[a] = present[b] = true;
        }
        for (int i = 0; i < m; i++) boot[(size_t)rd * m + i] = present[i] ? er[i] : NAN;
    }
    free(present);
    free(er);
}

/* The 2.5% and 97.5% quantiles of each model's bootstrap ratings (and, for
 * Elo, the rounded median as its rating). */
static void quantiles(const double *boot, int m, int R, bool elo, double *q025, double *q975, double *rating)
{
    double *col = fc_xmalloc(sizeof(double) * (size_t)(R ? R : 1));
    for (int i = 0; i < m; i++) {
        int k = 0;
        for (int rd = 0; rd < R; rd++) {
            double v = boot[(size_t)rd * m + i];
            if (!isnan(v)) col[k++] = v;
        }
        qsort(col, (size_t)k, sizeof(double), cmp_double);
        q025[i] = quantile(col, k, 0.025);
        q975[i] = quantile(col, k, 0.975);
        if (elo && k) rating[i] = floor(quantile(col, k, 0.5) + 0.5);
    }
    free(col);
}

/* out->rows, best first, with their upper-bound ranks; pos_of[id] = row. */
static void fill_rows(fc_leaderboard *out, const rated *r, const double *rating, const double *q025,
                      const double *q975, const double *elo, const int *nbat, int *pos_of)
{
    const int m = r->nm.n;
    row_order *ro = fc_xmalloc(sizeof(row_order) * (size_t)m);
    for (int i = 0; i < m; i++) ro[i] = (row_order){rating[i], r->nm.name[i], i};
    qsort(ro, (size_t)m, sizeof(row_order), cmp_rows);
    out->rows = fc_xcalloc((size_t)m, sizeof(fc_rating_row));
    for (int k = 0; k < m; k++) {
        int id = ro[k].id;
        fc_rating_row *row = &out->rows[k];
        row->model = fc_xstrdup(r->nm.name[id]);
        row->rating = rating[id];
        row->q025 = q025[id];
        row->q975 = q975[id];
        row->elo = elo[id];
        row->n_battles = nbat[id];
        pos_of[id] = k;
    }
    free(ro);
    for (int k = 0; k < m; k++) {
        fc_rating_row *row = &out->rows[k];
        int rank = 1;
        for (int s = 0; s < m; s++) {
            const fc_rating_row *o = &out->rows[s];
            if (out->n_bootstrap ? o->q025 > row->q975 : o->rating > row->rating) rank++;
        }
        row->rank_ub = rank;
    }
}

/* Heatmaps over the battles without ties, in rows order. */
static void fill_heatmaps(fc_leaderboard *out, const rated *r, const int *pos_of)
{
    const int m = r->nm.n;
    int *wins = fc_xcalloc((size_t)m * m, sizeof(int)); /* wins[i][j]: i beat j */
    out->battle_count = fc_xcalloc((size_t)m * m, sizeof(int));
    out->win_fraction = fc_xmalloc(sizeof(double) * (size_t)m * m);
    for (size_t k = 0; k < r->nb; k++) {
        enum fc_outcome w = (enum fc_outcome)r->wo[k];
        if (w != FC_OUTCOME_A && w != FC_OUTCOME_B) continue;
        int a = pos_of[r->ia[k]], b = pos_of[r->ib[k]];
        out->battle_count[a * m + b]++;
        if (a != b) out->battle_count[b * m + a]++;
        if (w == FC_OUTCOME_A) wins[a * m + b]++;
        else wins[b * m + a]++;
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            /* (a_win[i][j] + b_win[j][i]) / (n[i][j] + n[j][i]); a self-pair
             * counts twice in the denominator (ptbl + ptbl.T), and its wins
             * (as A or as B) once each: 0.5. */
            int nn = out->battle_count[i * m + j] * (i == j ? 2 : 1);
            int ww = wins[i * m + j];
            out->win_fraction[i * m + j] = nn ? (double)ww / nn : NAN;
        }
    /* battle_count's diagonal: pandas' ptbl + ptbl.T doubles self-battles */
    for (int i = 0; i < m; i++) out->battle_count[i * m + i] *= 2;
    free(wins);
}

int fc_leaderboard_compute(const fc_battle *b, size_t n, const fc_rating_opts *opts_in, fc_leaderboard *out)
{
    fc_rating_opts opts = {.n_bootstrap = 100, .seed = 0, .anony_only = true};
    if (opts_in) opts = *opts_in;
    if (out) memset(out, 0, sizeof(*out));
    int rc = check_args(b, n, &opts, out);
    if (rc != FC_OK) return rc;

    rated r;
    rated_build(b, n, &opts, &r);
    const int m = r.nm.n;
    out->n_battles = (int)r.nb;
    out->n_models = out->n_rows = m;
    out->rating_system = opts.rating_system;
    out->n_bootstrap = r.nb ? opts.n_bootstrap : 0;
    if (m == 0) {
        rated_free(&r);
        return FC_OK;
    }

    /* Online Elo and battle counts. */
    double *elo = fc_xmalloc(sizeof(double) * (size_t)m);
    int *nbat = fc_xcalloc((size_t)m, sizeof(int));
    for (int i = 0; i < m; i++) elo[i] = ELO_INIT;
    for (size_t k = 0; k < r.nb; k++) {
        elo_update(elo, r.ia[k], r.ib[k], elo_score((enum fc_outcome)r.wo[k]));
        nbat[r.ia[k]]++;
        nbat[r.ib[k]]++;
    }

    cells c;
    cells_build(&r, m, &c);
    int anchor = -1;
    for (int i = 0; i < m; i++)
        if (!strcmp(r.nm.name[i], ANCHOR_MODEL)) anchor = i;

    /* The ratings on all battles. */
    double *scratch = fc_xmalloc(sizeof(double) * ((size_t)m * m + 3 * (size_t)m));
    double *w_full = fc_xcalloc((size_t)m, sizeof(double));
    double *rating = fc_xmalloc(sizeof(double) * (size_t)m);
    if (opts.rating_system == FC_RATING_BT) {
        bool *present = fc_xmalloc(sizeof(bool) * (size_t)m);
        for (int i = 0; i < m; i++) present[i] = true;
        cells_to_pairs(c.cnt, c.pairs, c.np);
        if (opts.bt_exact) bt_fit(w_full, m, c.pairs, c.np, scratch);
        else bt_fit_lbfgs(w_full, &(bt_problem){m, c.pairs, c.np, 1.0 / (2.0 * (double)r.nb)});
        bt_scale(w_full, m, present, anchor, rating);
        free(present);
    } else {
        memcpy(rating, elo, sizeof(double) * (size_t)m);
    }

    /* Bootstrap: (rounds, m) ratings, NaN where a model is absent. */
    const int R = out->n_bootstrap;
    double *boot = R ? fc_xmalloc(sizeof(double) * (size_t)R * m) : NULL;
    if (R) {
        rng rg;
        rng_seed(&rg, opts.seed);
        if (opts.rating_system == FC_RATING_BT) bootstrap_bt(&r, &c, m, R, &opts, anchor, w_full, scratch, &rg, boot);
        else bootstrap_elo(&r, m, R, &rg, boot);
    }
    double *q025 = fc_xmalloc(sizeof(double) * (size_t)m), *q975 = fc_xmalloc(sizeof(double) * (size_t)m);
    quantiles(boot, m, R, opts.rating_system == FC_RATING_ELO, q025, q975, rating);

    int *pos_of = fc_xmalloc(sizeof(int) * (size_t)m); /* model id -> row */
    fill_rows(out, &r, rating, q025, q975, elo, nbat, pos_of);
    fill_heatmaps(out, &r, pos_of);

    free(pos_of);
    free(q025);
    free(q975);
    free(boot);
    free(rating);
    free(w_full);
    free(scratch);
    free(c.cnt);
    free(c.pairs);
    free(nbat);
    free(elo);
    rated_free(&r);
    return FC_OK;
}

void fc_leaderboard_free(fc_leaderboard *lb)
{
    if (!lb) return;
    for (int i = 0; i < lb->n_rows; i++) free(lb->rows[i].model);
    free(lb->rows);
    free(lb->win_fraction);
    free(lb->battle_count);
    memset(lb, 0, sizeof(*lb));
}

/* ---- JSON ---- */

/* The shortest of %.15g..%.17g that reads back as the same double (cJSON's
 * own printer accepts a 1-ulp difference), or null for NaN/inf. */
static cJSON *num_or_null(double v)
{
    if (!isfinite(v)) return cJSON_CreateNull();
    char b[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof(b), "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    return cJSON_CreateRaw(b);
}

char *fc_leaderboard_json(const fc_leaderboard *lb)
{
    if (!lb) return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "rating_system", lb->rating_system == FC_RATING_ELO ? "elo" : "bt");
    cJSON_AddNumberToObject(o, "n_battles", lb->n_battles);
    cJSON_AddNumberToObject(o, "n_bootstrap", lb->n_bootstrap);
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    int m = lb->n_rows;
    for (int i = 0; i < m; i++) {
        const fc_rating_row *r = &lb->rows[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "model", r->model);
        cJSON_AddItemToObject(x, "rating", num_or_null(r->rating));
        cJSON_AddItemToObject(x, "q025", num_or_null(r->q025));
        cJSON_AddItemToObject(x, "q975", num_or_null(r->q975));
        cJSON_AddItemToObject(x, "elo", num_or_null(r->elo));
        cJSON_AddNumberToObject(x, "rank_ub", r->rank_ub);
        cJSON_AddNumberToObject(x, "n_battles", r->n_battles);
        cJSON_AddItemToArray(models, x);
    }
    cJSON *wf = cJSON_AddArrayToObject(o, "win_fraction");
    cJSON *bc = cJSON_AddArrayToObject(o, "battle_count");
    for (int i = 0; i < m; i++) {
        cJSON *rw = cJSON_CreateArray(), *rb = cJSON_CreateArray();
        for (int j = 0; j < m; j++) {
            cJSON_AddItemToArray(rw, num_or_null(lb->win_fraction[i * m + j]));
            cJSON_AddItemToArray(rb, cJSON_CreateNumber(lb->battle_count[i * m + j]));
        }
        cJSON_AddItemToArray(wf, rw);
        cJSON_AddItemToArray(bc, rb);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
