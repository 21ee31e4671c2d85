/*
 * train_fast.c: the matrix products of the fast training path as OpenBLAS
 * GEMMs. OpenBLAS is told to use one thread; each of our pool's threads
 * computes a slab of the output (rows or columns, whichever side is longer),
 * so a product costs one pool dispatch and the cores run one thread each.
 * The sums are ordered by OpenBLAS's kernel, so results differ from the
 * scalar reference loops of train_ref.c in the last bits (tested within
 * 1e-5 relative in tests/unit/test_train_fast.c).
 */
#include "train_fast.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/fc_base.h"

/* OpenBLAS's own (declared in its cblas.h, not in every cblas.h) */
void openblas_set_num_threads(int n);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }

/* C (M, Nn) = op(A) op(B) + beta C, row-major; op transposes when t*. */
typedef struct gemm_ctx {
    bool ta, tb;
    long M, Nn, K;
    const float *A, *B;
    long lda, ldb, ldc;
    float beta;
    float *C;
} gemm_ctx;

static void gemm_fn(void *p, int ith, int nth)
{
    const gemm_ctx *g = p;
    const enum CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = g->tb ? CblasTrans : CblasNoTrans;
    long lo, hi;
    if (g->M >= g->Nn) {
        /* rows of C: rows of op(A) */
        fc_split_range(g->M, ith, nth, 8, &lo, &hi);
        if (lo >= hi) return;
        const float *A = g->ta ? g->A + lo : g->A + lo * g->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(hi - lo), (int)g->Nn, (int)g->K, 1.0f, A, (int)g->lda,
                    g->B, (int)g->ldb, g->beta, g->C + lo * g->ldc, (int)g->ldc);
    } else {
        /* columns of C: columns of op(B) */
        fc_split_range(g->Nn, ith, nth, 16, &lo, &hi);
        if (lo >= hi) return;
        const float *B = g->tb ? g->B + lo * g->ldb : g->B + lo;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)g->M, (int)(hi - lo), (int)g->K, 1.0f, g->A, (int)g->lda,
                    B, (int)g->ldb, g->beta, g->C + lo, (int)g->ldc);
    }
}

static void gemm(fc_pool *pool, gemm_ctx *g)
{
    pthread_once(&blas_once, blas_init);
    if (g->M <= 0 || g->Nn <= 0) return;
    if (pool && fc_pool_size(pool) > 1 && g->M * g->Nn * g->K >= 32768) fc_pool_run(pool, gemm_fn, g);
    else gemm_fn(g, 0, 1);
}

void fc_train_gemm_forward(fc_pool *pool, float *out, const float *inp, const float *w,
                           const float *bias, long N, long IC, long OC)
{
    gemm_ctx g = {.ta = false, .tb = true, .M = N, .Nn = OC, .K = IC, .A = inp, .lda = IC,
                  .B = w, .ldb = IC, .beta = 0.0f, .C = out, .ldc = OC};
    gemm(pool, &g);
    if (bias)
        for (long n = 0; n < N; n++)
            for (long o = 0; o < OC; o++) out[n * OC + o] += bias[o];
}

void fc_train_gemm_backward(fc_pool *pool, float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, long N, long IC, long OC)
{
    if (dinp) {
        gemm_ctx g = {.ta = false, .tb = false, .M = N, .Nn = IC, .K = OC, .A = dout, .lda = OC,
                      .B = w, .ldb = IC, .beta = 1.0f, .C = dinp, .ldc = IC};
        gemm(pool, &g);
    }
    if (dw) {
        gemm_ctx g = {.ta = true, .tb = false, .M = OC, .Nn = IC, .K = N, .A = dout, .lda = OC,
                      .B = inp, .ldb = IC, .beta = 1.0f, .C = dw, .ldc = IC};
        gemm(pool, &g);
    }
    if (db)
        for (long n = 0; n < N; n++)
            for (long o = 0; o < OC; o++) db[o] += dout[n * OC + o];
}

/* ---- element-wise kernels written so that gcc vectorizes them ---- */

/* e^x for x <= 88, Cody-Waite reduction and Cephes' degree-6 polynomial for
 * expf (about 1 ulp); below -87 it gives e^-87 (about 1.6e-38), which is
 * nothing next to the 1 that a softmax row always holds. */
static inline float fast_exp(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    union { int32_t i; float f; } s = {.i = ((int32_t)n + 127) << 23};
    return y * s.f;
}

double fc_train_softmax_row(float *z, long n, double *lse)
{
    float mx = -INFINITY;
    for (long i = 0; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    for (long i = 0; i < n; i++) z[i] = fast_exp(z[i] - mx);
    double s = 0;
    for (long i = 0; i < n; i++) s += z[i];
    *lse = mx + log(s);
    return s;
}

void fc_train_scale(float *z, float k, long n)
{
    for (long i = 0; i < n; i++) z[i] *= k;
}

void fc_train_silu_mul(float *h, const float *g, const float *u, long n)
{
    for (long i = 0; i < n; i++) h[i] = g[i] / (1.0f + fast_exp(-g[i])) * u[i];
}

void fc_train_silu_mul_backward(float *dg, float *du, const float *dh, const float *g, const float *u, long n)
{
    for (long i = 0; i < n; i++) {
        const float gi = g[i], sg = 1.0f / (1.0f + fast_exp(-gi));
        du[i] = dh[i] * gi * sg;
        dg[i] = dh[i] * u[i] * sg * (1.0f + gi * (1.0f - sg));
    }
}
