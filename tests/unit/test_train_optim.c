/*
 * test_train_optim.c: fc_adamw_step (src/train/optim.c), whose update runs in
 * AVX2 lanes of doubles split over the model's pool, against the scalar
 * formula written out here (torch.optim.AdamW's update computed in double
 * and rounded once, as optim.c documents): the parameters and both moments
 * must be equal bit for bit, on the calling thread and on a pool of 2, for
 * the whole state and for shards whose bounds are not multiples of the
 * vector width (the scalar tails), with weight decay on some parameters.
 * The model is made from a config (fc_train_model_new), big enough that
 * its embedding goes through the pool and small tensors (norms, biases) stay
 * on the calling thread.
 */
#include <math.h>
#include <string.h>

#include "train/train.h"
#include "test_util.h"

/* The update of optim.c's documentation, one float at a time. */
static void scalar_step(const fc_train_model *tm, float *p, float *m, float *v, const float *g, size_t lo,
                        size_t n, long t, double lr, double b1, double b2, double eps, double wd)
{
    const double bc1 = 1.0 - pow(b1, (double)t), bc2_sqrt = sqrt(1.0 - pow(b2, (double)t));
    const double step_size = lr / bc1;
    for (int k = 0; k < fc_train_model_n_params(tm); k++) {
        const fc_train_param *tp = fc_train_model_param(tm, k);
        const float decay = tp->decay ? (float)(1.0 - lr * wd) : 1.0f;
        const size_t a = FC_MAX(tp->offset, lo), b = FC_MIN(tp->offset + tp->n, lo + n);
        for (size_t i = a; i < b; i++) {
            const float w = p[i] * decay, gi = g[i];
            const size_t j = i - lo;
            m[j] = (float)(m[j] + (gi - m[j]) * (1.0 - b1));
            v[j] = (float)(v[j] * b2 + (1.0 - b2) * gi * gi);
            const double denom = sqrt((double)v[j]) / bc2_sqrt + eps;
            p[i] = (float)(w - step_size * m[j] / denom);
        }
    }
}

static void check_adamw(const fc_model_config *cfg, fc_pool *pool, size_t lo, size_t cnt)
{
    fc_train_model *tm = fc_train_model_new(cfg);
    CHECK(tm != NULL);
    if (!tm) return;
    fc_train_model_set_pool(tm, pool);
    const size_t n = fc_train_model_n_floats(tm);
    for (size_t i = 0; i < n; i++) fc_train_model_params(tm)[i] = (float)sin(0.37 * (double)i) * 0.05f;
    if (cnt == 0) cnt = n - lo;
    fc_adamw o;
    CHECK(fc_adamw_init_shard(&o, tm, lo, cnt, 0.9, 0.999, 1e-8, 0.1) == FC_OK);
    float *p = malloc(n * sizeof(float)), *m = calloc(cnt, sizeof(float)), *v = calloc(cnt, sizeof(float));
    memcpy(p, fc_train_model_params(tm), n * sizeof(float));
    float *p0 = malloc(n * sizeof(float));
    memcpy(p0, p, n * sizeof(float));
    uint64_t s = 777 + lo;
    bool moved = false;
    for (int step = 1; step <= 4; step++) {
        float *g = fc_train_model_grads(tm);
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            /* a spread of magnitudes, some exact zeros */
            const double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
            g[i] = i % 97 == 3 ? 0.0f : (float)(u * pow(10.0, (double)(i % 7) - 5.0));
        }
        const double lr = 1e-3 * step;
        fc_adamw_step(&o, tm, lr);
        scalar_step(tm, p, m, v, g, lo, cnt, step, lr, 0.9, 0.999, 1e-8, 0.1);
    }
    const float *q = fc_train_model_params(tm);
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&q[i], &p[i], sizeof(float)) != 0;
    for (size_t i = lo; i < lo + cnt; i++) moved |= q[i] != p0[i];
    CHECKF(bad == 0, "pool %d shard [%zu, +%zu): %ld parameters differ from the scalar update",
           pool ? fc_pool_size(pool) : 0, lo, cnt, bad);
    CHECKF(memcmp(o.m, m, cnt * sizeof(float)) == 0 && memcmp(o.v, v, cnt * sizeof(float)) == 0,
           "pool %d shard [%zu, +%zu): moments differ", pool ? fc_pool_size(pool) : 0, lo, cnt);
    CHECK(moved);
    fc_adamw_free(&o);
    free(p);
    free(p0);
    free(m);
    free(v);
    fc_train_model_free(tm);
}

int main(void)
{
    fc_model_config cfg = {.n_vocab = 1003, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                           .head_dim = 16, .n_ff = 96, .rms_eps = 1e-5f, .rope_theta = 10000.0f,
                           .rope_neox = true, .qkv_bias = true};
    fc_pool *pool = fc_pool_new(2);
    fc_train_model *tm = fc_train_model_new(&cfg);
    CHECK(tm != NULL);
    if (!tm) return TEST_END();
    const size_t n = fc_train_model_n_floats(tm);
    fc_train_model_free(tm);
    printf("AdamW on %zu parameter floats (the embedding %d x %d)\n", n, cfg.n_vocab, cfg.n_embd);
    for (int k = 0; k < 2; k++) {
        fc_pool *pl = k ? pool : NULL;
        check_adamw(&cfg, pl, 0, 0);
        check_adamw(&cfg, pl, 3, n / 3 + 5);
        check_adamw(&cfg, pl, n / 2 + 1, 0);
    }
    fc_pool_free(pool);
    return TEST_END();
}
