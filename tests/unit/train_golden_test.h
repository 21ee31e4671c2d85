/*
 * train_golden_test.h: what the trainer's golden tests (test_train_ref.c,
 * test_train_lora.c; test_train_fast.c and test_train_qlora.c use the
 * comparisons) share: a float32 tensor of a golden file, and one
 * case: a tiny model of tests/data/train/ as a trainable model and the
 * golden batch written for it by tools/golden/ (ids, labels, the loss).
 *
 * Header-only, included by one test file each after test_util.h (CHECK,
 * CHECKF); everything is static inline. Run from the repository root.
 */
#ifndef FC_TRAIN_GOLDEN_TEST_H
#define FC_TRAIN_GOLDEN_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/model.h"
#include "model/safetensors.h"
#include "train/train.h"

/* A float32 tensor's data and (n) element count; NULL when absent or of
 * another type. */
static inline const float *tg_tensor_f32(const fc_safetensors *st, const char *name, int64_t *n)
{
    const fc_tensor *t = fc_safetensors_find(st, name);
    if (!t || t->type != FC_DTYPE_F32) return NULL;
    if (n) *n = fc_tensor_nelem(t);
    return t->data;
}

/* A gradient against its golden value: |want| (nr), |ours - want| (nd) and
 * the largest element difference (md), accumulated in double. */
static inline void tg_grad_diff(const float *ours, const float *want, size_t n, double *nr, double *nd, double *md)
{
    double r = 0, d2 = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ours[i] - want[i];
        r += (double)want[i] * want[i];
        d2 += d * d;
        m = fmax(m, fabs(d));
    }
    *nr = sqrt(r), *nd = sqrt(d2), *md = m;
}

/* Every parameter's gradient of tm against the golden's "grad.NAME":
 * checked max(|a - b|, max_i |a_i - b_i|) / |b| <= tol (label names the
 * case in a failure); the worst of them, its name in *worst_name. */
static inline double tg_check_golden_grads(fc_train_model *tm, fc_safetensors *g, double tol, const char *label,
                                           const char **worst_name)
{
    double worst = 0;
    *worst_name = "";
    for (int k = 0; k < fc_train_model_n_params(tm); k++) {
        const fc_train_param *p = fc_train_model_param(tm, k);
        char nm[160];
        snprintf(nm, sizeof nm, "grad.%s", p->name);
        int64_t n;
        const float *want = tg_tensor_f32(g, nm, &n);
        CHECKF(want && (size_t)n == p->n, "%s: golden %s", label, nm);
        if (!want || (size_t)n != p->n) continue;
        double nr, nd, md;
        tg_grad_diff(fc_train_model_grads(tm) + p->offset, want, p->n, &nr, &nd, &md);
        const double rel = nr > 0 ? fmax(nd, md) / nr : nd;
        CHECKF(nr > 0 && rel <= tol, "%s: %s: relative difference %.3g", label, p->name, rel);
        if (rel > worst) {
            worst = rel;
            *worst_name = p->name;
        }
    }
    return worst;
}

/* Worst over b's parameters of max(|a - b|, max_i |a_i - b_i|) / |b| (of the
 * gradients when grads, else of the parameters); *worst_name gets its name.
 * Two models with one parameter table (test_train_fast.c, test_train_qlora.c). */
static inline double tg_worst_rel(fc_train_model *a, fc_train_model *b, bool grads, const char **worst_name)
{
    double worst = 0;
    for (int k = 0; k < fc_train_model_n_params(b); k++) {
        const fc_train_param *p = fc_train_model_param(b, k);
        const float *x = (grads ? fc_train_model_grads(a) : fc_train_model_params(a)) + p->offset;
        const float *y = (grads ? fc_train_model_grads(b) : fc_train_model_params(b)) + p->offset;
        double nr, nd, md;
        tg_grad_diff(x, y, p->n, &nr, &nd, &md);
        double rel = nr > 0 ? fmax(nd, md) / nr : nd + md;
        if (rel > worst) {
            worst = rel;
            *worst_name = p->name;
        }
    }
    return worst;
}

/* n AdamW steps (betas 0.9 / 0.95, weight decay 0.1, clipping at 1, cosine
 * schedule from 3e-3 with 3 warmup steps) on one (B, T) batch; out[s] is the
 * loss of step s. */
static inline void tg_adamw_losses(fc_train_model *tm, const int32_t *ids, const int32_t *labels, int B, int T,
                                   double *out, int n)
{
    fc_adamw opt;
    CHECK(fc_adamw_init(&opt, tm, 0.9, 0.95, 1e-8, 0.1) == FC_OK);
    for (int s = 0; s < n; s++) {
        fc_train_zero_grad(tm);
        out[s] = fc_train_step_grad(tm, ids, labels, B, T, 0);
        fc_train_clip_grad_norm(tm, 1.0);
        fc_adamw_step(&opt, tm, 3e-3 * fc_lr_lambda("cosine", s, 3, n));
    }
    fc_adamw_free(&opt);
}

typedef struct tg_case {
    const char *mode;         /* "ref" (scalar reference matmuls) or "fast" */
    char dir[256];            /* the model's folder */
    fc_model *m;
    fc_safetensors *g;        /* the golden file */
    fc_train_model *tm;       /* over m; the test frees it */
    int B, T;
    int32_t *ids, *labels;    /* (B, T) */
    double want_loss;
} tg_case;

/* Loads tests/data/train/tiny_<arch> and tests/data/train/<golden_prefix>
 * <arch>.safetensors, makes the trainable model (reference matmuls when
 * ref) and reads the batch. False, after a failed CHECK, when a file or the
 * model is missing (a missing trainable model leaves m and g held, as the
 * tests always did). */
static inline bool tg_open(tg_case *c, const char *arch, const char *golden_prefix, bool ref)
{
    char gpath[256];
    *c = (tg_case){.mode = ref ? "ref" : "fast"};
    snprintf(c->dir, sizeof c->dir, "tests/data/train/tiny_%s", arch);
    snprintf(gpath, sizeof gpath, "tests/data/train/%s%s.safetensors", golden_prefix, arch);
    c->m = fc_model_load(c->dir);
    c->g = fc_safetensors_open(gpath);
    CHECKF(c->m && c->g, "%s: loading %s / %s", arch, c->dir, gpath);
    if (!c->m || !c->g) {
        fc_model_free(c->m);
        fc_safetensors_free(c->g);
        return false;
    }
    c->tm = fc_train_model_from_model(c->m);
    CHECK(c->tm != NULL);
    if (!c->tm) return false;
    fc_train_model_set_reference(c->tm, ref);
    int64_t n_ids = 0;
    const float *fids = tg_tensor_f32(c->g, "ids", &n_ids), *flab = tg_tensor_f32(c->g, "labels", NULL);
    const fc_tensor *ids_t = fc_safetensors_find(c->g, "ids");
    c->B = (int)ids_t->ne[1], c->T = (int)ids_t->ne[0];
    c->ids = malloc((size_t)n_ids * 4), c->labels = malloc((size_t)n_ids * 4);
    for (int64_t i = 0; i < n_ids; i++) {
        c->ids[i] = (int32_t)fids[i];
        c->labels[i] = (int32_t)flab[i];
    }
    c->want_loss = ((const double *)fc_safetensors_find(c->g, "loss")->data)[0];
    return true;
}

/* Frees the batch, the golden file and the model (not tm). */
static inline void tg_close(tg_case *c)
{
    free(c->ids);
    free(c->labels);
    fc_safetensors_free(c->g);
    fc_model_free(c->m);
}

#endif
