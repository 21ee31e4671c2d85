/*
 * test_train_fast.c: the fast training path (OpenBLAS GEMMs split over the
 * pool, src/train/train_fast.c; the labelled rows packed before lm_head)
 * against the scalar reference path of train_ref.c, and gradient
 * checkpointing against the plain pass.
 *
 * On the tiny golden models (tests/data/train/tiny_{llama,qwen2}, the batch
 * of grad_<arch>.safetensors: B=2, T=24, masked labels), full fine-tuning and
 * LoRA (all seven projections, r=4, dropout 0.1 so the masks matter):
 *   - every parameter's gradient of the fast path within 1e-5 of the
 *     reference's, relative to the gradient's norm (norm of the difference
 *     and largest element), on 1 thread and on a pool of 2;
 *   - 20 AdamW steps (clipping, cosine schedule): the fast path's losses equal
 *     the reference's within 1e-5;
 *   - gradient checkpointing: the same gradients as without, bit for bit
 *     (same path, same threads), and the same 20 losses; the activation
 *     buffer is smaller (printed).
 * The fast and reference paths are each checked against torch in
 * test_train_ref.c / test_train_lora.c. Run from the repository root.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "model/safetensors.h"
#include "train/train.h"
#include "test_util.h"
#include "train_golden_test.h"

typedef struct batch {
    int32_t *ids, *labels;
    int B, T;
} batch;

static bool load_batch(const char *arch, batch *b)
{
    char gpath[256];
    snprintf(gpath, sizeof gpath, "tests/data/train/grad_%s.safetensors", arch);
    fc_safetensors *g = fc_safetensors_open(gpath);
    if (!g) return false;
    const fc_tensor *it = fc_safetensors_find(g, "ids"), *lt = fc_safetensors_find(g, "labels");
    if (!it || !lt || it->type != FC_DTYPE_F32 || lt->type != FC_DTYPE_F32) {
        fc_safetensors_free(g);
        return false;
    }
    b->B = (int)it->ne[1];
    b->T = (int)it->ne[0];
    const long n = (long)b->B * b->T;
    b->ids = malloc((size_t)n * sizeof(int32_t));
    b->labels = malloc((size_t)n * sizeof(int32_t));
    for (long i = 0; i < n; i++) {
        b->ids[i] = (int32_t)((const float *)it->data)[i];
        b->labels[i] = (int32_t)((const float *)lt->data)[i];
    }
    fc_safetensors_free(g);
    return true;
}

static fc_train_model *make(const fc_model *m, bool ref, bool ckpt, bool lora, fc_pool *pool)
{
    fc_train_model *tm = fc_train_model_from_model(m);
    if (!tm) return NULL;
    fc_train_model_set_reference(tm, ref);
    fc_train_model_set_checkpointing(tm, ckpt);
    fc_train_model_set_pool(tm, pool);
    if (lora) {
        fc_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.1,
                             .targets = fc_lora_parse_targets("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"),
                             .seed = 11};
        if (fc_train_model_add_lora(tm, &lc) != FC_OK) {
            fc_train_model_free(tm);
            return NULL;
        }
        /* B = 0 would leave A's gradient zero: give B values */
        for (int k = 0; k < fc_train_model_n_params(tm); k++) {
            const fc_train_param *p = fc_train_model_param(tm, k);
            if (!strstr(p->name, "lora_B")) continue;
            float *v = fc_train_model_params(tm) + p->offset;
            for (size_t i = 0; i < p->n; i++) v[i] = 0.02f * (float)sin(1.0 + (double)(i + 7 * k));
        }
    }
    return tm;
}

static double worst_rel(fc_train_model *a, fc_train_model *b, const char **worst_name)
{
    return tg_worst_rel(a, b, true, worst_name);
}

static void adamw_losses(fc_train_model *tm, const batch *b, double *out, int n)
{
    tg_adamw_losses(tm, b->ids, b->labels, b->B, b->T, out, n);
}

static void check_arch(const char *arch, bool lora)
{
    char dir[256];
    snprintf(dir, sizeof dir, "tests/data/train/tiny_%s", arch);
    const char *what = lora ? "lora" : "full";
    fc_model *m = fc_model_load(dir);
    batch b = {0};
    CHECKF(m && load_batch(arch, &b), "%s: loading", arch);
    if (!m || !b.ids) { fc_model_free(m); return; }
    fc_pool *pool = fc_pool_new(2);

    fc_train_model *ref = make(m, true, false, lora, NULL);
    fc_train_model *fast = make(m, false, false, lora, NULL);
    fc_train_model *fast2 = make(m, false, false, lora, pool);
    fc_train_model *ck = make(m, false, true, lora, NULL);
    fc_train_model *ck2 = make(m, false, true, lora, pool);
    CHECK(ref && fast && fast2 && ck && ck2);
    if (!ref || !fast || !fast2 || !ck || !ck2) goto out;
    fc_train_model *all[] = {ref, fast, fast2, ck, ck2};
    double loss[5];
    for (int i = 0; i < 5; i++) {
        fc_train_zero_grad(all[i]);
        loss[i] = fc_train_step_grad(all[i], b.ids, b.labels, b.B, b.T, 0);
    }
    const char *wn = "";
    double w1 = worst_rel(fast, ref, &wn);
    CHECKF(w1 <= 1e-5 && fabs(loss[1] - loss[0]) <= 1e-6, "%s %s: fast vs ref: worst %.3g (%s), loss %.8f vs %.8f",
           arch, what, w1, wn, loss[1], loss[0]);
    printf("%-6s %s: fast vs reference: loss %.8f vs %.8f, worst gradient difference %.2e (%s)\n", arch, what,
           loss[1], loss[0], w1, wn);
    double w2 = worst_rel(fast2, ref, &wn);
    CHECKF(w2 <= 1e-5, "%s %s: fast (2 threads) vs ref: worst %.3g (%s)", arch, what, w2, wn);
    /* checkpointing: bit-identical gradients on the same path and threads */
    size_t nf = fc_train_model_n_floats(fast);
    CHECKF(loss[3] == loss[1] && !memcmp(fc_train_model_grads(ck), fc_train_model_grads(fast), nf * sizeof(float)),
           "%s %s: checkpointed gradients differ (1 thread)", arch, what);
    CHECKF(loss[4] == loss[2] && !memcmp(fc_train_model_grads(ck2), fc_train_model_grads(fast2), nf * sizeof(float)),
           "%s %s: checkpointed gradients differ (2 threads)", arch, what);
    size_t a_plain = fc_train_model_activation_bytes(fast), a_ck = fc_train_model_activation_bytes(ck);
    CHECKF(a_ck < a_plain, "%s %s: activations %zu with checkpointing, %zu without", arch, what, a_ck, a_plain);
    printf("%-6s %s: gradient checkpointing: same gradients bit for bit; activation buffer %zu -> %zu bytes\n",
           arch, what, a_plain, a_ck);
    /* the evaluation pass agrees with the gradient pass (no dropout in it) */
    if (!lora) CHECK(fabs(fc_train_loss(ck, b.ids, b.labels, b.B, b.T, 0) - loss[1]) < 1e-6);

    /* 20 AdamW steps: fast vs reference, checkpointed vs not */
    double lr[20], lf[20], lc[20];
    adamw_losses(ref, &b, lr, 20);
    adamw_losses(fast, &b, lf, 20);
    adamw_losses(ck, &b, lc, 20);
    double dmax = 0;
    for (int s = 0; s < 20; s++) {
        dmax = fmax(dmax, fabs(lf[s] - lr[s]));
        CHECKF(fabs(lf[s] - lr[s]) <= 1e-5, "%s %s: step %d: fast %.8f ref %.8f", arch, what, s, lf[s], lr[s]);
        CHECKF(lc[s] == lf[s], "%s %s: step %d: checkpointed %.8f plain %.8f", arch, what, s, lc[s], lf[s]);
    }
    printf("%-6s %s: 20 AdamW losses %.5f -> %.5f, fast vs reference largest difference %.2e\n", arch, what,
           lr[0], lr[19], dmax);
out:
    for (int i = 0; i < 5; i++) fc_train_model_free(i == 0 ? ref : i == 1 ? fast : i == 2 ? fast2 : i == 3 ? ck : ck2);
    fc_pool_free(pool);
    free(b.ids);
    free(b.labels);
    fc_model_free(m);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_ERROR);
    if (access("tests/data/train/tiny_llama/config.json", R_OK) != 0) {
        fprintf(stderr, "tests/data/train: missing (run from the repository root)\n");
        return 1;
    }
    check_arch("llama", false);
    check_arch("llama", true);
    check_arch("qwen2", false);
    check_arch("qwen2", true);
    return TEST_END();
}
