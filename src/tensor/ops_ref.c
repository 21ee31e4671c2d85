/*
 * ops_ref.c: scalar references of the numeric ops in ops.h.
 *
 * These are the oracles the fast kernels (cpu/) are tested against, and the
 * documentation of what each op computes. They favour clarity over speed:
 * weights are dequantized with fc_dequantize_row_ref (quant_ref.c), every
 * reduction runs in double, and nothing is vectorized by hand.
 *
 * Not here: anything fast, threading, or the activation quantizer of the
 * fast path (cpu/ops_cpu.c); fc_vec_dot_ref reads those activation rows only
 * through the reference dequantizer, so it checks their encoding too.
 *
 * The row ops mirror Hugging Face transformers' LlamaRMSNorm (x * rsqrt(mean
 * (x^2) + eps) * w), torch.softmax, and the SwiGLU MLP act_fn(gate) * up with
 * act_fn = SiLU.
 */
#include "ops.h"

#include "base/fc_base.h"

#include <math.h>
#include <string.h>

/* ---- matrix products ---- */

void fc_matmul_ref(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                   const float *x, int64_t x_stride, int T,
                   float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    float *wrow = fc_xmalloc((size_t)K * sizeof(float));
    for (int64_t r = r0; r < r1; r++) {
        bool ok = fc_dequantize_row_ref(wtype, (const uint8_t *)w + (size_t)r * w_stride, wrow, K);
        FC_ASSERT(ok);
        for (int t = 0; t < T; t++) {
            const float *xt = x + (int64_t)t * x_stride;
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)wrow[k] * xt[k];
            y[(int64_t)t * y_stride + r] = (float)acc;
        }
    }
    free(wrow);
}

float fc_vec_dot_ref(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K)
{
    float *wf = fc_xmalloc((size_t)K * sizeof(float));
    float *xf = fc_xmalloc((size_t)K * sizeof(float));
    bool ok = fc_dequantize_row_ref(wtype, wrow, wf, K);
    FC_ASSERT(ok);
    /* The activation row begins with K values of its act type (q8 blocks or
     * f32); whatever follows them (the fast kernels' side table) is ignored. */
    ok = fc_dequantize_row_ref(atype, xa, xf, K);
    FC_ASSERT(ok);
    double acc = 0;
    for (int64_t k = 0; k < K; k++) acc += (double)wf[k] * xf[k];
    free(wf);
    free(xf);
    return (float)acc;
}

/* ---- row ops ---- */

void fc_rmsnorm_ref(float *y, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const double scale = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = (float)(x[i] * scale * w[i]);
}

void fc_softmax_ref(float *x, int n)
{
    if (n <= 0) return;
    float max = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - max);
    for (int i = 0; i < n; i++) x[i] = (float)(exp((double)x[i] - max) / sum);
}

void fc_swiglu_ref(float *y, const float *g, const float *u, int n)
{
    for (int i = 0; i < n; i++) {
        const double gi = g[i];
        y[i] = (float)(gi / (1.0 + exp(-gi)) * u[i]);
    }
}
