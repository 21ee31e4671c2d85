/*
 * optim.c: torch.optim.AdamW (decoupled weight decay, bias-corrected moments,
 * eps added to the corrected square root, as torch computes it) and the
 * learning-rate multipliers of transformers' get_scheduler.
 *
 * Moments are f32 like the parameters (torch keeps them in the parameter's
 * dtype); the per-element update is computed in double and rounded once.
 */
#include "train.h"

#include <math.h>
#include <string.h>

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

void fc_adamw_step(fc_adamw *o, fc_train_model *tm, double lr)
{
    o->t++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t);
    const double bc2_sqrt = sqrt(1.0 - pow(o->beta2, (double)o->t));
    const double step_size = lr / bc1;
    /* the moments are of floats [lo, lo + n): m[j], v[j] belong to float lo + j */
    float *p = fc_train_model_params(tm), *m = o->m, *v = o->v;
    const size_t lo = o->lo;
    const float *g = fc_train_model_grads(tm);
    for (int k = 0; k < fc_train_model_n_params(tm); k++) {
        const fc_train_param *tp = fc_train_model_param(tm, k);
        const float decay = tp->decay ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
        const size_t a = FC_MAX(tp->offset, o->lo), b = FC_MIN(tp->offset + tp->n, o->lo + o->n);
        for (size_t i = a; i < b; i++) {
            float w = p[i] * decay;
            const float gi = g[i];
            const size_t j = i - lo;
            m[j] = (float)(m[j] + (gi - m[j]) * (1.0 - o->beta1)); /* lerp */
            v[j] = (float)(v[j] * o->beta2 + (1.0 - o->beta2) * gi * gi);
            const double denom = sqrt((double)v[j]) / bc2_sqrt + o->eps;
            p[i] = (float)(w - step_size * m[j] / denom);
        }
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
