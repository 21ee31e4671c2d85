/*
 * test_train_qlora.c: QLoRA (fc_train_model_from_model_qlora, src/train/qbase.c):
 * LoRA training over frozen matrices kept in their stored quantized type
 * against the same LoRA training over the same model dequantized to f32
 * (fc_train_model_from_model + fc_train_model_add_lora): the weights have
 * the same values, so results agree up to the order of the sums.
 *
 *   - qbase products alone, for q4_0 q4_1 q5_0 q5_1 q8_0 q4_K q6_K f16 bf16
 *     f32, GGUF-interleaved Q/K rows, matrices of several tiles: forward and dX against double sums over
 *     the dequantized matrix (1e-5 relative to the output's largest value);
 *   - whole models: tests/data/train/qlora_llama_{q8_0,q4_0}.gguf
 *     (`fastchat quantize` of tests/data/tiny_tok/llama_spm: tied embeddings
 *     stored quantized, GGUF's interleaved Q/K rows) and
 *     tests/data/tiny/qwen2_f32 loaded with load_8bit (q8_0 in memory; qkv
 *     biases, untied lm_head, which then stays q8_0 too). LoRA on all seven
 *     projections, r=4, dropout 0.1: every adapter gradient within 1e-5 of
 *     the f32 run's (relative to its norm), on 1 thread and on a pool of 2;
 *     20 AdamW steps: losses within 1e-5 relative, final adapters within
 *     1e-4 relative; the frozen matrices are held in their stored bytes
 *     (printed next to their f32 size).
 * Run from the repository root.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "tensor/dtype.h"
#include "tensor/ops.h"
#include "train/qbase.h"
#include "train/sft_data.h"
#include "train/train.h"
#include "test_util.h"
#include "train_golden_test.h"

static uint64_t rng = 88172645463325252ULL;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1.0p-53;
}

/* ---- qbase alone ---- */

static void check_qbase(enum fc_dtype t, long OC, long IC, int perm_heads, int hs, fc_pool *pool)
{
    const size_t rb = fc_dtype_row_size(t, IC);
    uint8_t *wq = fc_xmalloc(rb * (size_t)OC);
    float *wf = fc_xmalloc(sizeof(float) * (size_t)(OC * IC)), *row = fc_xmalloc(sizeof(float) * (size_t)IC);
    for (long o = 0; o < OC; o++) {
        for (long i = 0; i < IC; i++) row[i] = (float)(urand() * 2 - 1);
        CHECK(fc_quantize_row_ref(t, row, wq + (size_t)o * rb, IC));
    }
    /* the f32 matrix in Hugging Face row order */
    for (long o = 0; o < OC; o++) {
        long src = o;
        if (perm_heads) {
            const long h = o / hs, i = o % hs, half = hs / 2;
            src = h * hs + 2 * (i % half) + i / half;
        }
        CHECK(fc_dequantize_row_ref(t, wq + (size_t)src * rb, wf + o * IC, IC));
    }
    fc_tensor ten = {.type = t, .ne = {IC, OC, 1, 1}, .data = wq, .nbytes = rb * (size_t)OC};
    fc_qbase *qb = fc_qbase_new();
    float key[1];
    CHECK(fc_qbase_add(qb, key, &ten, OC, IC, perm_heads, hs));
    CHECK(fc_qbase_bytes(qb) == rb * (size_t)OC && fc_qbase_count(qb) == 1);
    const long N = 19;
    float *x = fc_xmalloc(sizeof(float) * (size_t)(N * IC)), *y = fc_xmalloc(sizeof(float) * (size_t)(N * OC));
    float *dy = fc_xmalloc(sizeof(float) * (size_t)(N * OC)), *dx = fc_xmalloc(sizeof(float) * (size_t)(N * IC));
    float *bias = fc_xmalloc(sizeof(float) * (size_t)OC), *db = fc_xcalloc((size_t)OC, sizeof(float));
    for (long i = 0; i < N * IC; i++) x[i] = (float)(urand() * 2 - 1);
    for (long i = 0; i < N * OC; i++) dy[i] = (float)(urand() * 2 - 1);
    for (long i = 0; i < N * IC; i++) dx[i] = 0.5f;
    for (long o = 0; o < OC; o++) bias[o] = (float)o * 0.01f;
    float other[1];
    CHECK(!fc_qbase_forward(qb, pool, y, x, other, NULL, N, IC, OC)); /* not a registered key */
    CHECK(fc_qbase_forward(qb, pool, y, x, key, bias, N, IC, OC));
    CHECK(fc_qbase_backward(qb, pool, dx, NULL, db, dy, key, N, IC, OC));
    double ey = 0, my = 0, ex = 0, mx = 0, eb = 0;
    for (long n = 0; n < N; n++)
        for (long o = 0; o < OC; o++) {
            double s = bias[o];
            for (long i = 0; i < IC; i++) s += (double)x[n * IC + i] * wf[o * IC + i];
            ey = fmax(ey, fabs(s - y[n * OC + o]));
            my = fmax(my, fabs(s));
        }
    for (long n = 0; n < N; n++)
        for (long i = 0; i < IC; i++) {
            double s = 0.5;
            for (long o = 0; o < OC; o++) s += (double)dy[n * OC + o] * wf[o * IC + i];
            ex = fmax(ex, fabs(s - dx[n * IC + i]));
            mx = fmax(mx, fabs(s));
        }
    for (long o = 0; o < OC; o++) {
        double s = 0;
        for (long n = 0; n < N; n++) s += dy[n * OC + o];
        eb = fmax(eb, fabs(s - db[o]));
    }
    CHECKF(ey <= 1e-5 * my && ex <= 1e-5 * mx && eb <= 1e-5 * N,
           "qbase %s %ldx%ld perm %d (%d threads): forward %.3g of %.3g, backward %.3g of %.3g, bias %.3g",
           fc_dtype_name(t), OC, IC, perm_heads, pool ? fc_pool_size(pool) : 1, ey, my, ex, mx, eb);
    fc_qbase_free(qb);
    free(wq); free(wf); free(row); free(x); free(y); free(dy); free(dx); free(bias); free(db);
}

/* ---- whole models ---- */

static const char *ALL = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";

/* B = 0 would leave A's gradient zero: give B the same values in both models */
static void set_b(fc_train_model *tm)
{
    for (int k = 0; k < fc_train_model_n_params(tm); k++) {
        const fc_train_param *p = fc_train_model_param(tm, k);
        if (!strstr(p->name, "lora_B")) continue;
        float *v = fc_train_model_params(tm) + p->offset;
        for (size_t i = 0; i < p->n; i++) v[i] = 0.02f * (float)sin(1.0 + (double)(i + 7 * k));
    }
}

static fc_train_model *make(const fc_model *m, bool q, fc_pool *pool)
{
    fc_lora_config lc = {.r = 4, .alpha = 8, .dropout = 0.1, .targets = fc_lora_parse_targets(ALL), .seed = 5};
    fc_train_model *tm;
    if (q) {
        tm = fc_train_model_from_model_qlora(m, &lc);
    } else {
        tm = fc_train_model_from_model(m);
        if (tm && fc_train_model_add_lora(tm, &lc) != FC_OK) {
            fc_train_model_free(tm);
            tm = NULL;
        }
    }
    if (!tm) return NULL;
    fc_train_model_set_pool(tm, pool);
    set_b(tm);
    return tm;
}

static void check_model(const char *what, fc_model *m, fc_pool *pool)
{
    CHECKF(m != NULL, "%s: loading", what);
    if (!m) return;
    const fc_model_config *c = fc_model_get_config(m);
    enum { B = 2, T = 20 };
    int32_t ids[B * T], labels[B * T];
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)(urand() * c->n_vocab);
        labels[i] = (i % T) < 6 || (i >= T && i % T > 16) ? FC_IGNORE_INDEX : ids[i]; /* masked prompt, padding */
    }
    fc_train_model *f = make(m, false, NULL), *q = make(m, true, NULL), *q2 = make(m, true, pool);
    CHECKF(f && q && q2, "%s: models", what);
    if (f && q && q2) {
        double lf = fc_train_step_grad(f, ids, labels, B, T, 0), lq = fc_train_step_grad(q, ids, labels, B, T, 0);
        double lq2 = fc_train_step_grad(q2, ids, labels, B, T, 0);
        const char *wn = "", *wn2 = "";
        const double w = tg_worst_rel(q, f, true, &wn), w2 = tg_worst_rel(q2, f, true, &wn2);
        CHECKF(fabs(lq - lf) <= 1e-5 * lf && fabs(lq2 - lf) <= 1e-5 * lf && w <= 1e-5 && w2 <= 1e-5,
               "%s: loss %.8f / %.8f vs f32 %.8f; worst gradient %.3g (%s), 2 threads %.3g (%s)", what, lq, lq2, lf,
               w, wn, w2, wn2);
        printf("%-28s qlora vs f32 base: loss %.8f vs %.8f, worst adapter gradient difference %.2e (1 thread), "
               "%.2e (2 threads)\n", what, lq, lf, w, w2);
        double af[20], aq[20], dmax = 0;
        tg_adamw_losses(f, ids, labels, B, T, af, 20);
        tg_adamw_losses(q2, ids, labels, B, T, aq, 20);
        for (int s = 0; s < 20; s++) {
            dmax = fmax(dmax, fabs(aq[s] - af[s]) / af[s]);
            CHECKF(fabs(aq[s] - af[s]) <= 1e-5 * af[s], "%s: step %d: qlora %.8f f32 %.8f", what, s, aq[s], af[s]);
        }
        CHECKF(af[19] < af[0], "%s: the loss falls (%.5f -> %.5f)", what, af[0], af[19]);
        const double wp = tg_worst_rel(q2, f, false, &wn);
        CHECKF(wp <= 1e-4, "%s: adapters after 20 steps differ by %.3g (%s)", what, wp, wn);
        const size_t qbytes = fc_train_model_qbase_bytes(q);
        CHECK(qbytes > 0 && fc_train_model_qbase_bytes(f) == 0);
        printf("%-28s 20 AdamW losses %.5f -> %.5f, largest relative difference %.2e, adapters %.2e; frozen "
               "matrices held in %zu bytes as stored\n", what, af[0], af[19], dmax, wp, qbytes);
    }
    fc_train_model_free(f);
    fc_train_model_free(q);
    fc_train_model_free(q2);
    fc_model_free(m);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_ERROR);
    if (access("tests/data/train/qlora_llama_q8_0.gguf", R_OK) != 0) {
        fprintf(stderr, "tests/data/train: missing (run from the repository root)\n");
        return 1;
    }
    fc_pool *pool = fc_pool_new(2);
    const enum fc_dtype types[] = {FC_DTYPE_Q4_0, FC_DTYPE_Q4_1, FC_DTYPE_Q5_0, FC_DTYPE_Q5_1, FC_DTYPE_Q8_0,
                                   FC_DTYPE_Q4_K, FC_DTYPE_Q6_K, FC_DTYPE_F16, FC_DTYPE_BF16, FC_DTYPE_F32};
    for (size_t i = 0; i < FC_ARRAY_LEN(types); i++) {
        const long IC = fc_dtype_block_size(types[i]) == FC_QK_K ? 512 : 96;
        check_qbase(types[i], 40, IC, 0, 0, NULL);
        check_qbase(types[i], 300, IC, 0, 0, pool);
        check_qbase(types[i], 64, IC, 4, 16, pool);
    }
    /* more rows than one 2 MiB tile holds (several tiles per thread, both directions) */
    check_qbase(FC_DTYPE_Q4_1, 12000, 96, 0, 0, NULL);
    check_qbase(FC_DTYPE_Q8_0, 12000, 96, 0, 0, pool);
    printf("qbase: forward, dX and bias sums of %zu types equal double sums over the dequantized matrix "
           "within 1e-5 (1 and 2 threads, permuted Q/K rows)\n", FC_ARRAY_LEN(types));
    check_model("llama q8_0 gguf (tied)", fc_model_load("tests/data/train/qlora_llama_q8_0.gguf"), pool);
    check_model("llama q4_0 gguf (tied)", fc_model_load("tests/data/train/qlora_llama_q4_0.gguf"), pool);
    fc_model_load_params lp = {.load_8bit = true, .plain_layout = true};
    check_model("qwen2 --load-8bit (bias)", fc_model_load_ex("tests/data/tiny/qwen2_f32", &lp), pool);
    fc_pool_free(pool);
    return TEST_END();
}
