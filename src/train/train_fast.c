/*
 * train_fast.c: the matrix products of the fast training path as OpenBLAS
 * GEMMs. OpenBLAS is told to use one thread; each of our pool's threads
 * computes a slab of the output (rows or columns, whichever side is longer),
 * so a product costs one pool dispatch and the cores run one thread each.
 * The sums are ordered by OpenBLAS's kernel, so results differ from the
 * scalar reference loops of train_ref.c in the last bits (tested within
 * 1e-5 relative in tests/unit/test_train_fast.c). Also here: the
 * element-wise passes in AVX2 lanes (SiLU split over the pool) and causal
 * attention of one (batch, head) as GEMMs over row blocks.
 */
#include "train_fast.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/fc_base.h"
#include "tensor/ops.h"
#include "tensor/vexp.h"

/* OpenBLAS's own (declared in its cblas.h, not in every cblas.h) */
void openblas_set_num_threads(int n);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }

/* C (M, Nn) = alpha op(A) op(B) + beta C, row-major; op transposes when t*. */
typedef struct gemm_ctx {
    bool ta, tb;
    long M, Nn, K;
    const float *A, *B;
    long lda, ldb, ldc;
    float alpha, beta;
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
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(hi - lo), (int)g->Nn, (int)g->K, g->alpha, A, (int)g->lda,
                    g->B, (int)g->ldb, g->beta, g->C + lo * g->ldc, (int)g->ldc);
    } else {
        /* columns of C: columns of op(B) */
        fc_split_range(g->Nn, ith, nth, 16, &lo, &hi);
        if (lo >= hi) return;
        const float *B = g->tb ? g->B + lo * g->ldb : g->B + lo;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)g->M, (int)(hi - lo), (int)g->K, g->alpha, g->A, (int)g->lda,
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

void fc_train_gemm(fc_pool *pool, bool ta, bool tb, long M, long Nn, long K, float alpha, const float *A, long lda,
                   const float *B, long ldb, float beta, float *C, long ldc)
{
    gemm_ctx g = {.ta = ta, .tb = tb, .M = M, .Nn = Nn, .K = K, .A = A, .lda = lda, .B = B, .ldb = ldb,
                  .alpha = alpha, .beta = beta, .C = C, .ldc = ldc};
    gemm(pool, &g);
}

void fc_train_gemm_forward(fc_pool *pool, float *out, const float *inp, const float *w,
                           const float *bias, long N, long IC, long OC)
{
    gemm_ctx g = {.ta = false, .tb = true, .M = N, .Nn = OC, .K = IC, .A = inp, .lda = IC,
                  .B = w, .ldb = IC, .alpha = 1.0f, .beta = 0.0f, .C = out, .ldc = OC};
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
                      .B = w, .ldb = IC, .alpha = 1.0f, .beta = 1.0f, .C = dinp, .ldc = IC};
        gemm(pool, &g);
    }
    if (dw) {
        gemm_ctx g = {.ta = true, .tb = false, .M = OC, .Nn = IC, .K = N, .A = dout, .lda = OC,
                      .B = inp, .ldb = IC, .alpha = 1.0f, .beta = 1.0f, .C = dw, .ldc = IC};
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

/* ---- AVX2 lanes (scalar fast_exp for the tails and other targets) ---- */

#ifdef FC_VEXP_AVX2
static inline __m256 sigmoid8(__m256 g)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, fc_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}
#endif

double fc_train_softmax_row(float *z, long n, double *lse)
{
    float mx = -INFINITY;
    long i = 0;
#ifdef FC_VEXP_AVX2
    if (n >= 8) {
        __m256 vm = _mm256_loadu_ps(z);
        for (i = 8; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(z + i));
        float t[8];
        _mm256_storeu_ps(t, vm);
        for (int j = 0; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
    }
#endif
    for (; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    double s = 0;
    i = 0;
#ifdef FC_VEXP_AVX2
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = fc_exp8(_mm256_sub_ps(_mm256_loadu_ps(z + i), vmx));
        _mm256_storeu_ps(z + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(s0, s1));
    s = (t[0] + t[1]) + (t[2] + t[3]);
#endif
    for (; i < n; i++) s += z[i] = fast_exp(z[i] - mx);
    *lse = mx + log(s);
    return s;
}

void fc_train_scale(float *z, float k, long n)
{
    for (long i = 0; i < n; i++) z[i] *= k;
}

/* The element-wise passes split over the pool in slabs of whole cache lines. */
typedef struct ew_ctx {
    float *a, *b;
    const float *x, *y, *z;
    long n;
} ew_ctx;

static void ew_run(fc_pool *pool, fc_pool_fn fn, ew_ctx *c)
{
    if (pool && fc_pool_size(pool) > 1 && c->n >= 16384) fc_pool_run(pool, fn, c);
    else fn(c, 0, 1);
}

static void silu_mul_fn(void *p, int ith, int nth)
{
    const ew_ctx *c = p;
    long lo, hi;
    fc_split_range(c->n, ith, nth, 16, &lo, &hi);
    float *h = c->a;
    const float *g = c->x, *u = c->y;
    long i = lo;
#ifdef FC_VEXP_AVX2
    for (; i + 8 <= hi; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(gv, sigmoid8(gv)), _mm256_loadu_ps(u + i)));
    }
#endif
    for (; i < hi; i++) h[i] = g[i] / (1.0f + fast_exp(-g[i])) * u[i];
}

void fc_train_silu_mul(fc_pool *pool, float *h, const float *g, const float *u, long n)
{
    ew_ctx c = {.a = h, .x = g, .y = u, .n = n};
    ew_run(pool, silu_mul_fn, &c);
}

static void silu_mul_bwd_fn(void *p, int ith, int nth)
{
    const ew_ctx *c = p;
    long lo, hi;
    fc_split_range(c->n, ith, nth, 16, &lo, &hi);
    float *dg = c->a, *du = c->b;
    const float *dh = c->x, *g = c->y, *u = c->z;
    long i = lo;
#ifdef FC_VEXP_AVX2
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= hi; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i), dv = _mm256_loadu_ps(dh + i), sg = sigmoid8(gv);
        _mm256_storeu_ps(du + i, _mm256_mul_ps(_mm256_mul_ps(dv, gv), sg));
        const __m256 k = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, sg)));
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dv, _mm256_loadu_ps(u + i)), sg), k));
    }
#endif
    for (; i < hi; i++) {
        const float gi = g[i], sg = 1.0f / (1.0f + fast_exp(-gi));
        du[i] = dh[i] * gi * sg;
        dg[i] = dh[i] * u[i] * sg * (1.0f + gi * (1.0f - sg));
    }
}

void fc_train_silu_mul_backward(fc_pool *pool, float *dg, float *du, const float *dh, const float *g,
                                const float *u, long n)
{
    ew_ctx c = {.a = dg, .b = du, .x = dh, .y = g, .z = u, .n = n};
    ew_run(pool, silu_mul_bwd_fn, &c);
}

/* ---- attention of one (batch, head) pair as GEMMs ---- */

/* Row t of s (T x T, scaled scores) becomes the causal softmax over [0, t];
 * the rest of the row is zeroed. */
static void causal_softmax(float *s, int T, float scale)
{
    for (int t = 0; t < T; t++) {
        float *r = s + (long)t * T;
        const long n = t + 1;
        fc_train_scale(r, scale, n);
        double lse;
        const double sum = fc_train_softmax_row(r, n, &lse);
        fc_train_scale(r, (float)(1.0 / sum), n);
        memset(r + n, 0, (size_t)(T - n) * sizeof(float));
    }
}

/* Row blocks of the causal square: block [r0, r1) of rows reads keys [0, r1)
 * only, so the GEMMs skip the masked part above the diagonal (a quarter of
 * the work at T = 2 * ATT_BLOCK, more for longer T). */
#define ATT_BLOCK 64

void fc_train_attn_forward(float *att, float *o, const float *q, const float *k, const float *v, int T, int HS,
                           long ldq, long ldkv, float scale)
{
    pthread_once(&blas_once, blas_init);
    /* att = q k^T (T, T), then the causal softmax (which zeroes the rest of
     * each row), then o = att v */
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        const int r1 = FC_MIN(T, r0 + ATT_BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HS, 1.0f, q + r0 * ldq, (int)ldq, k,
                    (int)ldkv, 0.0f, att + (long)r0 * T, T);
    }
    causal_softmax(att, T, scale);
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        const int r1 = FC_MIN(T, r0 + ATT_BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, HS, r1, 1.0f, att + (long)r0 * T, T, v,
                    (int)ldkv, 0.0f, o + r0 * ldq, (int)ldq);
    }
}

void fc_train_attn_backward(float *dq, float *dk, float *dv, float *scratch, const float *att, const float *dout,
                            const float *q, const float *k, const float *v, int T, int HS, long ldq, long ldkv,
                            float scale)
{
    pthread_once(&blas_once, blas_init);
    /* dP = dout v^T (row blocks, the causal part) */
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        const int r1 = FC_MIN(T, r0 + ATT_BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HS, 1.0f, dout + r0 * ldq, (int)ldq, v,
                    (int)ldkv, 0.0f, scratch + (long)r0 * T, T);
    }
    /* dS = att * (dP - sum_s dP att) * scale, in place of dP; zero above the diagonal */
    for (int t = 0; t < T; t++) {
        const float *a = att + (long)t * T;
        float *d = scratch + (long)t * T;
        float dsum = 0;
        for (int s2 = 0; s2 <= t; s2++) dsum += d[s2] * a[s2];
        for (int s2 = 0; s2 <= t; s2++) d[s2] = a[s2] * (d[s2] - dsum) * scale;
        for (int s2 = t + 1; s2 < T; s2++) d[s2] = 0;
    }
    for (int c0 = 0; c0 < T; c0 += ATT_BLOCK) {
        const int c1 = FC_MIN(T, c0 + ATT_BLOCK);
        /* dq rows [c0, c1) += dS[c0:c1, 0:c1] k[0:c1] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c1 - c0, HS, c1, 1.0f, scratch + (long)c0 * T, T, k,
                    (int)ldkv, 1.0f, dq + c0 * ldq, (int)ldq);
        /* dv rows [c0, c1) += att[c0:T, c0:c1]^T dout[c0:T]; dk likewise from dS and q */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, HS, T - c0, 1.0f, att + (long)c0 * T + c0, T,
                    dout + c0 * ldq, (int)ldq, 1.0f, dv + c0 * ldkv, (int)ldkv);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, HS, T - c0, 1.0f, scratch + (long)c0 * T + c0,
                    T, q + c0 * ldq, (int)ldq, 1.0f, dk + c0 * ldkv, (int)ldkv);
    }
}

/* ---- bf16 copies of frozen matrices (train_fast.h) ---- */

typedef struct bf16_mat {
    const float *w;  /* the key: the f32 matrix (OC, IC) */
    long OC, IC;
    void *fwd, *bwd; /* packed B of out = x W^T (K = IC, N = OC) and of dinp += dout W (K = OC, N = IC) */
} bf16_mat;

struct fc_bf16set {
    bf16_mat *m;
    int n, cap;
    size_t bytes;
};

fc_bf16set *fc_bf16set_new(void)
{
    if (!fc_gemm_bf16_packed_size(32, 32)) return NULL; /* no AMX-BF16 here */
    return fc_xcalloc(1, sizeof(fc_bf16set));
}

void fc_bf16set_free(fc_bf16set *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        fc_aligned_free(s->m[i].fwd);
        fc_aligned_free(s->m[i].bwd);
    }
    free(s->m);
    free(s);
}

size_t fc_bf16set_bytes(const fc_bf16set *s) { return s ? s->bytes : 0; }

bool fc_bf16set_add(fc_bf16set *s, const float *w, long OC, long IC)
{
    const size_t fb = fc_gemm_bf16_packed_size(IC, OC), bb = fc_gemm_bf16_packed_size(OC, IC);
    if (!fb || !bb) return false;
    bf16_mat m = {.w = w, .OC = OC, .IC = IC, .fwd = fc_aligned_alloc(fb), .bwd = fc_aligned_alloc(bb)};
    if (!m.fwd || !m.bwd) {
        fc_aligned_free(m.fwd);
        fc_aligned_free(m.bwd);
        return false;
    }
    fc_gemm_bf16_pack(w, IC, true, IC, OC, m.fwd);  /* B[k][n] = W[n][k] */
    fc_gemm_bf16_pack(w, IC, false, OC, IC, m.bwd); /* B[k][n] = W[k][n] */
    if (s->n == s->cap) s->m = fc_xrealloc(s->m, (size_t)(s->cap = s->cap ? 2 * s->cap : 64) * sizeof *s->m);
    s->m[s->n++] = m;
    s->bytes += fb + bb;
    return true;
}

static const bf16_mat *bf16_find(const fc_bf16set *s, const float *w, long OC, long IC)
{
    for (int i = 0; i < s->n; i++)
        if (s->m[i].w == w) return s->m[i].OC == OC && s->m[i].IC == IC ? &s->m[i] : NULL;
    return NULL;
}

typedef struct bf16_ctx {
    const void *bp;
    long K, Nc, M;
    const float *a;
    float *c;
    bool acc;
    bool failed;
} bf16_ctx;

static void bf16_fn(void *p, int ith, int nth)
{
    bf16_ctx *g = p;
    long lo, hi;
    fc_split_range((g->Nc + 31) / 32, ith, nth, 1, &lo, &hi);
    if (lo < hi && !fc_gemm_bf16(g->bp, g->K, g->Nc, g->a, g->K, g->M, g->c, g->Nc, g->acc, lo * 32, hi * 32))
        g->failed = true;
}

static bool bf16_run(fc_pool *pool, bf16_ctx *g)
{
    if (pool && fc_pool_size(pool) > 1) fc_pool_run(pool, bf16_fn, g);
    else bf16_fn(g, 0, 1);
    return !g->failed;
}

bool fc_bf16set_forward(const fc_bf16set *s, fc_pool *pool, float *out, const float *inp, const float *w,
                        const float *bias, long N, long IC, long OC)
{
    const bf16_mat *m = s ? bf16_find(s, w, OC, IC) : NULL;
    if (!m) return false;
    bf16_ctx g = {.bp = m->fwd, .K = IC, .Nc = OC, .M = N, .a = inp, .c = out, .acc = false};
    if (!bf16_run(pool, &g)) return false;
    if (bias)
        for (long n = 0; n < N; n++)
            for (long o = 0; o < OC; o++) out[n * OC + o] += bias[o];
    return true;
}

bool fc_bf16set_backward(const fc_bf16set *s, fc_pool *pool, float *dinp, const float *dout, const float *w, long N,
                         long IC, long OC)
{
    const bf16_mat *m = s ? bf16_find(s, w, OC, IC) : NULL;
    if (!m) return false;
    bf16_ctx g = {.bp = m->bwd, .K = OC, .Nc = IC, .M = N, .a = dout, .c = dinp, .acc = true};
    return bf16_run(pool, &g);
}
