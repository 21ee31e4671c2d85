/*
 * optim.c: torch.optim.AdamW (decoupled weight decay, bias-corrected moments,
 * eps added to the corrected square root, as torch computes it) and the
 * learning-rate multipliers of transformers' get_scheduler.
 *
 * Moments are f32 like the parameters (torch keeps them in the parameter's
 * dtype); the per-element update is computed in double and rounded once.
 * The update runs on the model's pool (fc_train_model_pool), 4 lanes of AVX2
 * doubles at a time, with the scalar loop's operations in the same order.
 */
#include "train.h"

#include <math.h>
#include <string.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

enum fc_status fc_adamw_init(fc_adamw *o, const fc_train_model *tm, double beta1, double beta2,
                             double eps, double weight_decay)
{
    return fc_adamw_init_shard(o, tm, 0, fc_train_model_n_floats(tm), beta1, beta2, eps, weight_decay);
}

enum fc_status fc_adamw_init_shard(fc_adamw *o, const fc_train_model *tm, size_t lo, size_t n,
                                   double beta1, double beta2, double eps, double weight_decay)
{
    memset(o, 0, sizeof *o);
    if (lo > fc_train_model_n_floats(tm) || n > fc_train_model_n_floats(tm) - lo) {
        FC_LOG_ERROR("%s: shard [%zu, +%zu) outside the %zu parameters", __func__, lo, n,
                     fc_train_model_n_floats(tm));
        return FC_ERR_ARG;
    }
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->lo = lo;
    o->n = n;
    o->m = fc_aligned_alloc(FC_MAX(n, 1) * sizeof(float));
    o->v = fc_aligned_alloc(FC_MAX(n, 1) * sizeof(float));
    if (!o->m || !o->v) {
        FC_LOG_ERROR("%s: out of memory for the optimizer state", __func__);
        fc_adamw_free(o);
        return FC_ERR_NOMEM;
    }
    return FC_OK;
}

void fc_adamw_free(fc_adamw *o)
{
    if (!o) return;
    fc_aligned_free(o->m);
    fc_aligned_free(o->v);
    o->m = o->v = NULL;
}

/* One parameter's floats [a, b): the update of fc_adamw_step. The AVX2 lanes
 * do the scalar loop's operations in the same order and precision (double,
 * no fused multiply-add), so both give the same bits. */
typedef struct adamw_ctx {
    const fc_adamw *o;
    float *p, *m, *v;
    const float *g;
    float decay;
    double step_size, bc2_sqrt;
    size_t a, b;
} adamw_ctx;

static void adamw_range(const adamw_ctx *c, size_t a, size_t b)
{
    const fc_adamw *o = c->o;
    float *p = c->p, *m = c->m, *v = c->v; /* m[i - lo], v[i - lo] belong to parameter float i */
    const size_t lo = o->lo;
    const float *g = c->g;
    const float decay = c->decay;
    const double b1c = 1.0 - o->beta1, b2 = o->beta2, b2c = 1.0 - o->beta2, eps = o->eps;
    size_t i = a;
#if defined(__AVX2__)
    const __m256d vb1c = _mm256_set1_pd(b1c), vb2 = _mm256_set1_pd(b2), vb2c = _mm256_set1_pd(b2c),
                  veps = _mm256_set1_pd(eps), vss = _mm256_set1_pd(c->step_size),
                  vbc2 = _mm256_set1_pd(c->bc2_sqrt);
    const __m128 vdec = _mm_set1_ps(decay);
    for (; i + 4 <= b; i += 4) {
        const __m256d w = _mm256_cvtps_pd(_mm_mul_ps(_mm_loadu_ps(p + i), vdec));
        const __m128 gf = _mm_loadu_ps(g + i), mf0 = _mm_loadu_ps(m + i - lo);
        const __m256d gi = _mm256_cvtps_pd(gf);
        const __m256d vi = _mm256_cvtps_pd(_mm_loadu_ps(v + i - lo));
        /* gi - m is a float subtraction in the scalar code too */
        const __m128 mf = _mm256_cvtpd_ps(
            _mm256_add_pd(_mm256_cvtps_pd(mf0), _mm256_mul_pd(_mm256_cvtps_pd(_mm_sub_ps(gf, mf0)), vb1c)));
        const __m128 vf = _mm256_cvtpd_ps(
            _mm256_add_pd(_mm256_mul_pd(vi, vb2), _mm256_mul_pd(_mm256_mul_pd(vb2c, gi), gi)));
        _mm_storeu_ps(m + i - lo, mf);
        _mm_storeu_ps(v + i - lo, vf);
        const __m256d denom = _mm256_add_pd(_mm256_div_pd(_mm256_sqrt_pd(_mm256_cvtps_pd(vf)), vbc2), veps);
        const __m256d upd = _mm256_div_pd(_mm256_mul_pd(vss, _mm256_cvtps_pd(mf)), denom);
        _mm_storeu_ps(p + i, _mm256_cvtpd_ps(_mm256_sub_pd(w, upd)));
    }
#endif
    for (; i < b; i++) {
        float w = p[i] * decay;
        const float gi = g[i];
        const size_t j = i - lo;
        m[j] = (float)(m[j] + (gi - m[j]) * b1c); /* lerp */
        v[j] = (float)(v[j] * b2 + b2c * gi * gi);
        const double denom = sqrt((double)v[j]) / c->bc2_sqrt + eps;
        p[i] = (float)(w - c->step_size * m[j] / denom);
    }
}

static void adamw_fn(void *ctx, int ith, int nth)
{
    const adamw_ctx *c = ctx;
    long lo, hi;
    fc_split_range((long)(c->b - c->a), ith, nth, 64, &lo, &hi);
    if (lo < hi) adamw_range(c, c->a + (size_t)lo, c->a + (size_t)hi);
}

void fc_adamw_step(fc_adamw *o, fc_train_model *tm, double lr)
{
    o->t++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t);
    const double bc2_sqrt = sqrt(1.0 - pow(o->beta2, (double)o->t));
    const double step_size = lr / bc1;
    /* the moments are of floats [lo, lo + n): m[j], v[j] belong to float lo + j */
    adamw_ctx c = {.o = o, .p = fc_train_model_params(tm), .m = o->m, .v = o->v,
                   .g = fc_train_model_grads(tm), .step_size = step_size, .bc2_sqrt = bc2_sqrt};
    fc_pool *pool = fc_train_model_pool(tm);
    for (int k = 0; k < fc_train_model_n_params(tm); k++) {
        const fc_train_param *tp = fc_train_model_param(tm, k);
        c.decay = tp->decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
        c.a = FC_MAX(tp->offset, o->lo);
        c.b = FC_MIN(tp->offset + tp->n, o->lo + o->n);
        if (c.a >= c.b) continue;
        /* a dispatch costs microseconds: small tensors (norms, biases) stay here */
        if (pool && fc_pool_size(pool) > 1 && c.b - c.a >= 16384) fc_pool_run(pool, adamw_fn, &c);
        else adamw_range(&c, c.a, c.b);
    }
}

double fc_lr_lambda(const char *type, long step, long warmup, long total)
{
    const double s = (double)step;
    if (!strcmp(type, "constant")) return 1.0;
    if (step < warmup && (!strcmp(type, "cosine") || !strcmp(type, "linear") ||
                          !strcmp(type, "constant_with_warmup")))
        return s / (double)FC_MAX(1, warmup);
    if (!strcmp(type, "constant_with_warmup")) return 1.0;
    if (!strcmp(type, "linear"))
        return fmax(0.0, (double)(total - step) / (double)FC_MAX(1, total - warmup));
    if (!strcmp(type, "cosine")) {
        const double progress = (double)(step - warmup) / (double)FC_MAX(1, total - warmup);
        return fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress)));
    }
    return -1;
}

bool fc_lr_type_known(const char *type)
{
    return fc_lr_lambda(type, 0, 0, 1) >= 0;
}
