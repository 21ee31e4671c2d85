/*
 * sampler.c: the logits processor chain, the draw, and log-probabilities.
 * See sampler.h for the semantics and where they come from.
 */
#include "sampler.h"
#include "base/fc_base.h"
#include "tensor/vexp.h"

#include <math.h>
#include <string.h>
#include <time.h>

fc_sampling_params fc_sampling_default(void)
{
    fc_sampling_params p = {.temperature = 1.0f, .top_p = 1.0f, .top_k = -1, .repetition_penalty = 1.0f};
    return p;
}

bool fc_sampling_is_greedy(const fc_sampling_params *p)
{
    return p->temperature < 1e-5f || p->top_p < 1e-8f;
}

/* ---- top-p ---- */

typedef struct cand { float logit; int32_t id; } cand;

static int cand_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? 1 : -1; /* ties: higher id first, like a stable ascending sort read backwards */
}

/* transformers' TopPLogitsWarper: sort ascending, cumulative softmax, drop
 * tokens whose cumulative probability is <= 1 - top_p; the most likely
 * token always stays. Only tokens with probability above (1 - top_p) / (2V)
 * need sorting: all the others together hold less than 1 - top_p, so they
 * are dropped whatever their order. */
static void top_p_filter(float *logits, int V, float top_p)
{
    float maxv = -INFINITY;
    for (int i = 0; i < V; i++) maxv = fmaxf(maxv, logits[i]);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)logits[i] - maxv);
    double eps = (1.0 - top_p) / (2.0 * V);
    double cut = maxv + log(eps * z); /* logit whose probability is eps */
    int n = 0;
    for (int i = 0; i < V; i++) n += logits[i] >= cut;
    cand *c = fc_xmalloc(sizeof(cand) * (size_t)(n ? n : 1));
    n = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] >= cut) c[n++] = (cand){logits[i], i};
    qsort(c, (size_t)n, sizeof(cand), cand_desc);
    /* tail mass below the candidates, then walk candidates from least likely */
    double tail = 0;
    for (int i = 0; i < V; i++)
        if (logits[i] < cut) {
            tail += exp((double)logits[i] - maxv) / z;
            logits[i] = -INFINITY;
        }
    double cum = tail;
    for (int j = n - 1; j >= 1; j--) { /* j = 0 (the best) is always kept */
        cum += exp((double)c[j].logit - maxv) / z;
        if (cum <= 1.0 - top_p) logits[c[j].id] = -INFINITY;
        else break;
    }
    free(c);
}

/* transformers' TopKLogitsWarper: keep logits >= the k-th largest. */
static void top_k_filter(float *logits, int V, int k)
{
    if (k >= V) return;
    /* k-th largest by a partial selection over a copy */
    float *tmp = fc_xmalloc(sizeof(float) * (size_t)V);
    memcpy(tmp, logits, sizeof(float) * (size_t)V);
    int lo = 0, hi = V - 1, want = k - 1; /* index in descending order */
    while (lo < hi) {
        float pivot = tmp[(lo + hi) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (tmp[i] > pivot) i++;
            while (tmp[j] < pivot) j--;
            if (i <= j) { float t = tmp[i]; tmp[i] = tmp[j]; tmp[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;
    }
    float kth = tmp[want];
    free(tmp);
    for (int i = 0; i < V; i++)
        if (logits[i] < kth) logits[i] = -INFINITY;
}

void fc_sampling_process(const fc_sampling_params *p, float *logits, int V, const int32_t *counts,
                         const int32_t *out_counts)
{
    if (out_counts && (p->presence_penalty != 0 || p->frequency_penalty != 0))
        for (int i = 0; i < V; i++)
            if (out_counts[i] > 0)
                logits[i] -= p->presence_penalty + p->frequency_penalty * (float)out_counts[i];
    if (p->temperature >= 1e-5f && p->temperature != 1.0f)
        for (int i = 0; i < V; i++) logits[i] /= p->temperature;
    if (counts && p->repetition_penalty > 1.0f)
        for (int i = 0; i < V; i++)
            if (counts[i] > 0)
                logits[i] = logits[i] < 0 ? logits[i] * p->repetition_penalty : logits[i] / p->repetition_penalty;
    if (p->top_p >= 1e-8f && p->top_p < 1.0f) top_p_filter(logits, V, p->top_p);
    if (p->top_k > 0) top_k_filter(logits, V, p->top_k);
}

/* ---- per-request sampler ---- */

struct fc_sampler {
    fc_sampling_params p;
    int V;
    int32_t *counts;      /* (V) prompt + output occurrences */
    int32_t *out_counts;  /* (V) output occurrences */
    double *w;            /* (V) draw weights, allocated on the first draw */
    uint64_t rng[4];      /* xoshiro256** */
};

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

fc_sampler *fc_sampler_new(const fc_sampling_params *p, int n_vocab)
{
    fc_sampler *s = fc_xcalloc(1, sizeof *s);
    s->p = *p;
    s->V = n_vocab;
    s->counts = fc_xcalloc((size_t)n_vocab, sizeof(int32_t));
    s->out_counts = fc_xcalloc((size_t)n_vocab, sizeof(int32_t));
    uint64_t seed = p->has_seed ? p->seed : 0;
    if (!p->has_seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)s;
    }
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix(&seed);
    return s;
}

void fc_sampler_free(fc_sampler *s)
{
    if (!s) return;
    free(s->counts);
    free(s->out_counts);
    free(s->w);
    free(s);
}

void fc_sampler_add_prompt(fc_sampler *s, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < s->V) s->counts[ids[i]]++;
}

/* Index of the largest logit (the first of equals; NaNs never win unless
 * logits[0] is one, as the plain scan). */
static int32_t argmax(const float *l, int V)
{
    int i = 0;
#ifdef FC_VEXP_AVX2
    if (V >= 8 && !isnan(l[0])) {
        __m256 mv = _mm256_loadu_ps(l);
        for (i = 8; i + 8 <= V; i += 8) mv = _mm256_max_ps(_mm256_loadu_ps(l + i), mv); /* NaN lanes keep mv */
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mv), _mm256_extractf128_ps(mv, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float m = _mm_cvtss_f32(m4);
        for (; i < V; i++) m = l[i] > m ? l[i] : m;
        for (int j = 0; j < V; j++)
            if (l[j] == m) return j;
        return 0;
    }
#endif
    int32_t best = 0;
    for (i = 1; i < V; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* Blocks of the draw walk: w's sums per block let it skip to the block the
 * draw falls in. */
#define DRAW_BLOCK 64

int32_t fc_sampler_sample(fc_sampler *s, float *logits)
{
    const int V = s->V;
    fc_sampling_process(&s->p, logits, V, s->counts, s->out_counts);
    const int32_t best = argmax(logits, V);
    int32_t tok = best;
    if (!fc_sampling_is_greedy(&s->p)) {
        /* weights exp(logit - top) (removed tokens, -inf, weigh 0), kept
         * per token and summed per block of DRAW_BLOCK */
        const int nblk = (V + DRAW_BLOCK - 1) / DRAW_BLOCK;
        if (!s->w) s->w = fc_xmalloc(sizeof(double) * ((size_t)V + (size_t)nblk));
        double *w = s->w, *bsum = w + V, z = 0;
        const float top = logits[best];
        for (int b = 0; b < nblk; b++) {
            const int i0 = b * DRAW_BLOCK, i1 = i0 + DRAW_BLOCK < V ? i0 + DRAW_BLOCK : V;
            int i = i0;
            double bz = 0;
#ifdef FC_VEXP_AVX2
            __m256d acc = _mm256_setzero_pd();
            for (; i + 8 <= i1; i += 8) {
                const __m256 e = fc_exp8(_mm256_sub_ps(_mm256_loadu_ps(logits + i), _mm256_set1_ps(top)));
                const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(e)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1));
                _mm256_storeu_pd(w + i, lo);
                _mm256_storeu_pd(w + i + 4, hi);
                acc = _mm256_add_pd(acc, _mm256_add_pd(lo, hi));
            }
            __m128d a2 = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
            bz = _mm_cvtsd_f64(_mm_add_sd(a2, _mm_unpackhi_pd(a2, a2)));
#endif
            for (; i < i1; i++) {
                w[i] = logits[i] == -INFINITY ? 0.0 : (double)expf(logits[i] - top);
                bz += w[i];
            }
            bsum[b] = bz;
            z += bz;
        }
        double u = (double)(next_u64(s->rng) >> 11) / 9007199254740992.0 * z;
        for (int b = 0; b < nblk; b++) {
            if (u >= bsum[b]) {
                u -= bsum[b];
                continue;
            }
            const int i1 = (b + 1) * DRAW_BLOCK < V ? (b + 1) * DRAW_BLOCK : V;
            /* the draw is in this block (its last token with weight if
             * rounding leaves u just short of the block's end) */
            for (int i = b * DRAW_BLOCK; i < i1; i++)
                if (w[i] > 0) {
                    tok = i;
                    if ((u -= w[i]) < 0) break;
                }
            break;
        }
    }
    s->counts[tok]++;
    s->out_counts[tok]++;
    return tok;
}

/* ---- log-probabilities ---- */

float fc_logprob_of(const float *logits, int V, int32_t token, int k, fc_logprob *top)
{
    float maxv = -INFINITY;
    for (int i = 0; i < V; i++) maxv = fmaxf(maxv, logits[i]);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp((double)logits[i] - maxv);
    double lz = log(z) + maxv;
    if (k > 0) {
        /* insertion into a small sorted list: k is at most 20 */
        int n = 0;
        for (int i = 0; i < V; i++) {
            if (n == k && logits[i] <= top[k - 1].logprob) continue;
            int j = n < k ? n++ : k - 1;
            while (j > 0 && top[j - 1].logprob < logits[i]) { top[j] = top[j - 1]; j--; }
            top[j] = (fc_logprob){i, logits[i]};
        }
        for (int j = 0; j < n; j++) top[j].logprob = (float)(top[j].logprob - lz);
    }
    return (float)(logits[token] - lz);
}
