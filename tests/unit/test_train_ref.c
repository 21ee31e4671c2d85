/*
 * test_train_ref.c: the reference forward and backward pass (train_ref.c)
 * and AdamW with the cosine schedule (optim.c) against torch.
 *
 * Golden data (tools/golden/make_train_golden.py, torch autograd in float64):
 * tests/data/train/tiny_{llama,qwen2}/ (random models: llama untied with GQA
 * 2; qwen2 tied with GQA 2 and q/k/v biases) and grad_<arch>.safetensors (a
 * B=2, T=24 batch with masked labels, its loss, every parameter's gradient,
 * and the losses of 20 AdamW steps: lr 3e-3, betas (0.9, 0.95), eps 1e-8,
 * weight decay 0.1 except biases and norms, cosine schedule with 3 warmup
 * steps, gradient clipping at 1.0).
 * Tolerances (the task's): every gradient within 1e-4 of its norm, both as
 * the norm of the difference and as the largest element difference; the 20
 * losses within 1e-4. Also: the pool-threaded pass gives the same gradients
 * as the single-threaded one, fc_train_loss equals the loss of the gradient
 * pass, and a checkpoint written by fc_train_save_hf loads back bit-exact
 * through the model loader.
 * Both matmul paths are checked: the scalar reference loops and the fast
 * kernels (fc_train_model_set_reference).
 * Run from the repository root.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "train/sft_data.h"
#include "train/train.h"
#include "test_util.h"
#include "train_golden_test.h"

static void check_arch(const char *arch, bool ref)
{
    tg_case c;
    if (!tg_open(&c, arch, "grad_", ref)) return;
    fc_safetensors *g = c.g;
    fc_train_model *tm = c.tm;
    const char *mode = c.mode;
    const int B = c.B, T = c.T;
    const int32_t *ids = c.ids, *labels = c.labels;
    const double want_loss = c.want_loss;
    const char *dir = c.dir;

    /* ---- gradients, single-threaded ---- */
    fc_train_zero_grad(tm);
    double loss = fc_train_step_grad(tm, ids, labels, B, T, 0);
    CHECKF(fabs(loss - want_loss) < 1e-5, "%s: loss %.8f want %.8f", arch, loss, want_loss);
    char label[64];
    snprintf(label, sizeof label, "%s %s", arch, mode);
    const char *worst_name;
    const double worst = tg_check_golden_grads(tm, g, 1e-4, label, &worst_name);
    const int n_checked = fc_train_model_n_params(tm);
    printf("%-6s %-4s loss %.8f (torch %.8f); %d gradients, worst relative difference %.2e (%s)\n", arch,
           mode, loss, want_loss, n_checked, worst, worst_name);

    /* ---- the same on a pool of 3 threads ---- */
    size_t nf = fc_train_model_n_floats(tm);
    float *g1 = malloc(nf * sizeof(float));
    memcpy(g1, fc_train_model_grads(tm), nf * sizeof(float));
    fc_pool *pool = fc_pool_new(3);
    fc_train_model_set_pool(tm, pool);
    fc_train_zero_grad(tm);
    double loss3 = fc_train_step_grad(tm, ids, labels, B, T, 0);
    double dmax = 0, gmax = 0;
    for (size_t i = 0; i < nf; i++) {
        dmax = fmax(dmax, fabs((double)fc_train_model_grads(tm)[i] - g1[i]));
        gmax = fmax(gmax, fabs((double)g1[i]));
    }
    CHECKF(fabs(loss3 - loss) < 1e-6 && dmax <= 1e-5 * gmax, "%s: threaded: loss %.8f, grad diff %.3g",
           arch, loss3, dmax);
    CHECK(fabs(fc_train_loss(tm, ids, labels, B, T, 0) - loss) < 1e-6);
    /* accumulation: the same batch twice with denom doubled gives the same gradient */
    fc_train_zero_grad(tm);
    double d2 = 2.0 * (double)fc_train_count_labels(labels, B, T);
    fc_train_step_grad(tm, ids, labels, B, T, d2);
    fc_train_step_grad(tm, ids, labels, B, T, d2);
    dmax = 0;
    for (size_t i = 0; i < nf; i++) dmax = fmax(dmax, fabs((double)fc_train_model_grads(tm)[i] - g1[i]));
    CHECKF(dmax <= 1e-5 * gmax, "%s: accumulation grad diff %.3g", arch, dmax);
    free(g1);

    /* ---- 20 AdamW steps ---- */
    int64_t n_steps;
    const fc_tensor *at = fc_safetensors_find(g, "adamw_loss");
    n_steps = at ? fc_tensor_nelem(at) : 0;
    CHECK(n_steps == 20);
    const double *want = at ? (const double *)at->data : NULL;
    fc_adamw opt;
    CHECK(fc_adamw_init(&opt, tm, 0.9, 0.95, 1e-8, 0.1) == FC_OK);
    double maxdiff = 0, last = 0;
    for (int s = 0; s < n_steps; s++) {
        fc_train_zero_grad(tm);
        double l = fc_train_step_grad(tm, ids, labels, B, T, 0);
        fc_train_clip_grad_norm(tm, 1.0);
        fc_adamw_step(&opt, tm, 3e-3 * fc_lr_lambda("cosine", s, 3, 20));
        maxdiff = fmax(maxdiff, fabs(l - want[s]));
        CHECKF(fabs(l - want[s]) <= 1e-4, "%s: AdamW step %d: loss %.8f torch %.8f", arch, s, l, want[s]);
        last = l;
    }
    printf("%-6s %-4s AdamW: 20 losses %.5f -> %.5f (torch %.5f -> %.5f), largest difference %.2e\n", arch,
           mode, want[0], last, want[0], want[n_steps - 1], maxdiff);
    fc_adamw_free(&opt);

    /* ---- checkpoint round trip ---- */
    char out[] = "/tmp/fc_train_ckpt_XXXXXX";
    CHECK(mkdtemp(out) != NULL);
    CHECK(fc_train_save_hf(tm, out, dir) == FC_OK);
    fc_model *m2 = fc_model_load(out);
    CHECKF(m2 != NULL, "%s: checkpoint does not load", arch);
    if (m2) {
        fc_train_model *tm2 = fc_train_model_from_model(m2);
        CHECK(tm2 && fc_train_model_n_floats(tm2) == nf &&
              !memcmp(fc_train_model_params(tm2), fc_train_model_params(tm), nf * sizeof(float)));
        fc_train_model_free(tm2);
        fc_model_free(m2);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    CHECK(system(cmd) == 0);

    fc_train_model_free(tm);
    fc_pool_free(pool);
    tg_close(&c);
}

static void check_schedules(void)
{
    /* transformers' get_cosine_schedule_with_warmup(warmup 3, total 20) */
    CHECK(fc_lr_lambda("cosine", 0, 3, 20) == 0.0);
    CHECK(fabs(fc_lr_lambda("cosine", 2, 3, 20) - 2.0 / 3) < 1e-12);
    CHECK(fc_lr_lambda("cosine", 3, 3, 20) == 1.0);
    CHECK(fabs(fc_lr_lambda("cosine", 11, 3, 20) - 0.5 * (1 + cos(M_PI * 8.0 / 17))) < 1e-12);
    CHECK(fabs(fc_lr_lambda("linear", 11, 3, 20) - 9.0 / 17) < 1e-12);
    CHECK(fc_lr_lambda("constant", 0, 3, 20) == 1.0);
    CHECK(fc_lr_lambda("nope", 0, 3, 20) < 0 && !fc_lr_type_known("nope") && fc_lr_type_known("cosine"));
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_ERROR);
    if (access("tests/data/train/tiny_llama/config.json", R_OK) != 0) {
        fprintf(stderr, "tests/data/train: missing (run from the repository root)\n");
        return 1;
    }
    check_schedules();
    check_arch("llama", true);
    check_arch("llama", false);
    check_arch("qwen2", true);
    check_arch("qwen2", false);
    return TEST_END();
}
