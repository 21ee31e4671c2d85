/*
 * generic.c: portable C versions of the fast CPU kernels (suffix _generic).
 *
 * These are what a build without AVX2 runs (make NATIVE=0, or another
 * architecture), and the fallback for weight types that have no AVX2 kernel.
 * They compute exactly what the AVX2 kernels compute: integer dot products
 * of each weight block's codes with the int8 or int16 activation codes,
 * scaled once per block (or per sub-block) in f32. The compiler's auto-vectorizer is left
 * to do what it can with the plain loops.
 *
 * Activation rows are those of cpu_impl.h: q8 blocks as quant_ref.c writes
 * them, plus an f32 side table (d, s) for the 32-value weight types.
 *
 * Not here: threading (callers split rows), the scalar oracles (ops_ref.c).
 */
#include "cpu_impl.h"

#include "base/fc_base.h"

#include <math.h>
#include <string.h>

static inline float h2f(fc_f16 h) { return fc_f16_to_f32(h); }

/* ---- activation quantization ---- */

void fc_cpu_quantize_act_generic(enum fc_dtype atype, const float *x, void *dst, int64_t K)
{
    bool ok = fc_quantize_row_ref(atype, x, dst, K);
    FC_ASSERT(ok);
    if (atype != FC_DTYPE_Q8_0 && atype != FC_DTYPE_Q8_1 && atype != FC_DTYPE_A16) return;
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    float *d = (float *)((uint8_t *)dst + fc_cpu_act_side_offset(atype, K));
    float *s = d + nbp;
    for (int64_t b = nb; b < nbp; b++) d[b] = s[b] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int sum = 0;
        if (atype == FC_DTYPE_A16) {
            const fc_block_a16 *blk = (const fc_block_a16 *)dst + b;
            for (int j = 0; j < FC_QK; j++) sum += blk->qs[j];
            d[b] = blk->d;
        } else {
            /* q8_0 and q8_1 both start with f16 d; q8_1's qs sit 2 bytes later */
            const uint8_t *blk = (const uint8_t *)dst + (size_t)b * fc_dtype_type_size(atype);
            const int8_t *qs = (const int8_t *)(blk + (atype == FC_DTYPE_Q8_1 ? 4 : 2));
            fc_f16 dh;
            memcpy(&dh, blk, sizeof dh);
            for (int j = 0; j < FC_QK; j++) sum += qs[j];
            d[b] = h2f(dh);
        }
        s[b] = d[b] * (float)sum;
    }
}

/* ---- dot products of one weight row with one activation row ---- */

static float dot_f32(const float *w, const float *x, int64_t K)
{
    float acc[8] = { 0 };
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += w[k + j] * x[k + j];
    float sum = 0;
    for (; k < K; k++) sum += w[k] * x[k];
    for (int j = 0; j < 8; j++) sum += acc[j];
    return sum;
}

static float dot_f16(const fc_f16 *w, const float *x, int64_t K)
{
    float acc[8] = { 0 };
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += h2f(w[k + j]) * x[k + j];
    float sum = 0;
    for (; k < K; k++) sum += h2f(w[k]) * x[k];
    for (int j = 0; j < 8; j++) sum += acc[j];
    return sum;
}

static float dot_bf16(const fc_bf16 *w, const float *x, int64_t K)
{
    float acc[8] = { 0 };
    int64_t k = 0;
    for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; j++) acc[j] += fc_bf16_to_f32(w[k + j]) * x[k + j];
    float sum = 0;
    for (; k < K; k++) sum += fc_bf16_to_f32(w[k]) * x[k];
    for (int j = 0; j < 8; j++) sum += acc[j];
    return sum;
}

/* The 32 unsigned codes of a q4 / q5 block in value order. */
static inline void q4_codes(const uint8_t qs[16], uint8_t c[32])
{
    for (int j = 0; j < 16; j++) {
        c[j] = qs[j] & 0xF;
        c[j + 16] = qs[j] >> 4;
    }
}

static inline void q5_codes(const uint8_t qs[16], const uint8_t qh[4], uint8_t c[32])
{
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    q4_codes(qs, c);
    for (int j = 0; j < 32; j++) c[j] |= (uint8_t)(((h >> j) & 1) << 4);
}

static inline int idot32(const uint8_t c[32], const int8_t *x)
{
    int s = 0;
    for (int j = 0; j < 32; j++) s += c[j] * x[j];
    return s;
}

/*
 * The 32-value types: value = dw * (code - off) (q4_0: off 8, q5_0: 16) or
 * dw * code + m (q4_1, q5_1), against activation blocks x = dx * qx with
 * s = dx * sum(qx) (side table):
 *   sum_j value_j * x_j = dw * dx * sum_j(code_j * qx_j) + c * s,
 * with c = -off * dw or m.
 */
static float dot_q4_0(const fc_block_q4_0 *w, const fc_block_q8_0 *x, const float *xd, const float *xs, int64_t nb)
{
    float acc = 0;
    uint8_t c[32];
    for (int64_t b = 0; b < nb; b++) {
        q4_codes(w[b].qs, c);
        const float dw = h2f(w[b].d);
        acc += dw * xd[b] * (float)idot32(c, x[b].qs) - 8 * dw * xs[b];
    }
    return acc;
}

static float dot_q4_1(const fc_block_q4_1 *w, const fc_block_q8_1 *x, const float *xd, const float *xs, int64_t nb)
{
    float acc = 0;
    uint8_t c[32];
    for (int64_t b = 0; b < nb; b++) {
        q4_codes(w[b].qs, c);
        acc += h2f(w[b].d) * xd[b] * (float)idot32(c, x[b].qs) + h2f(w[b].m) * xs[b];
    }
    return acc;
}

static float dot_q5_0(const fc_block_q5_0 *w, const fc_block_q8_0 *x, const float *xd, const float *xs, int64_t nb)
{
    float acc = 0;
    uint8_t c[32];
    for (int64_t b = 0; b < nb; b++) {
        q5_codes(w[b].qs, w[b].qh, c);
        const float dw = h2f(w[b].d);
        acc += dw * xd[b] * (float)idot32(c, x[b].qs) - 16 * dw * xs[b];
    }
    return acc;
}

static float dot_q5_1(const fc_block_q5_1 *w, const fc_block_q8_1 *x, const float *xd, const float *xs, int64_t nb)
{
    float acc = 0;
    uint8_t c[32];
    for (int64_t b = 0; b < nb; b++) {
        q5_codes(w[b].qs, w[b].qh, c);
        acc += h2f(w[b].d) * xd[b] * (float)idot32(c, x[b].qs) + h2f(w[b].m) * xs[b];
    }
    return acc;
}

static float dot_q8_0(const fc_block_q8_0 *w, const fc_block_q8_0 *x, const float *xd, int64_t nb)
{
    float acc = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += w[b].qs[j] * x[b].qs[j];
        acc += h2f(w[b].d) * xd[b] * (float)s;
    }
    return acc;
}

/*
 * The 32-value types against a16 activations: the same sums with 16-bit
 * activation codes (an int32 holds 32 products of |code| <= 128 and
 * |x| <= 32768).
 */
static float dot_a16(enum fc_dtype wtype, const uint8_t *w, const fc_block_a16 *x, const float *xd, const float *xs, int64_t nb)
{
    const size_t wbs = fc_dtype_type_size(wtype);
    float acc = 0;
    for (int64_t b = 0; b < nb; b++, w += wbs) {
        int c[32];
        float dw, off = 0;
        fc_f16 h[2];
        memcpy(h, w, sizeof h);
        dw = h2f(h[0]);
        uint8_t u[32];
        switch (wtype) {
        case FC_DTYPE_Q4_0: q4_codes(w + 2, u); off = -8 * dw; break;
        case FC_DTYPE_Q4_1: q4_codes(w + 4, u); off = h2f(h[1]); break;
        case FC_DTYPE_Q5_0: q5_codes(w + 6, w + 2, u); off = -16 * dw; break;
        case FC_DTYPE_Q5_1: q5_codes(w + 8, w + 4, u); off = h2f(h[1]); break;
        default: break;
        }
        for (int j = 0; j < 32; j++) c[j] = wtype == FC_DTYPE_Q8_0 ? ((const int8_t *)(w + 2))[j] : u[j];
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += c[j] * x[b].qs[j];
        acc += dw * xd[b] * (float)isum + off * xs[b];
    }
    return acc;
}

/*
 * The K types against q8_K (x = dx * qx, bsums[g] = sum of qx over the
 * 16-value group g). Sub-block integer dots are scaled by their integer
 * sub-scale and summed in int32 per super-block; mins fold in through bsums.
 */

/* Unpacks the 6-bit scales and mins of q4_K / q5_K (layout in quant_ref.c). */
static inline void k4_scales(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int g = 0; g < 4; g++) {
        sc[g] = s[g] & 63;
        mn[g] = s[g + 4] & 63;
        sc[g + 4] = (uint8_t)((s[g + 8] & 0xF) | (s[g] >> 6) << 4);
        mn[g + 4] = (uint8_t)((s[g + 8] >> 4) | (s[g + 4] >> 6) << 4);
    }
}

static float dot_q2_K(const fc_block_q2_K *w, const fc_block_q8_K *x, int64_t nb)
{
    float acc = 0;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0, msum = 0;
        const int8_t *q8 = x[i].qs;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = w[i].qs + 32 * h;
            for (int s = 0; s < 4; s++) {
                for (int half = 0; half < 2; half++) {
                    const int g = 8 * h + 2 * s + half;
                    int sum = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) sum += ((q[l] >> (2 * s)) & 3) * *q8++;
                    isum += (w[i].scales[g] & 0xF) * sum;
                    msum += (w[i].scales[g] >> 4) * x[i].bsums[g];
                }
            }
        }
        acc += x[i].d * (h2f(w[i].d) * (float)isum - h2f(w[i].dmin) * (float)msum);
    }
    return acc;
}

static float dot_q3_K(const fc_block_q3_K *w, const fc_block_q8_K *x, int64_t nb)
{
    float acc = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *s = w[i].scales;
        int isum = 0;
        const int8_t *q8 = x[i].qs;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = w[i].qs + 32 * h;
            for (int sh = 0; sh < 4; sh++) {
                const uint8_t hbit = (uint8_t)(1u << (4 * h + sh));
                for (int half = 0; half < 2; half++) {
                    const int g = 8 * h + 2 * sh + half;
                    const int sc = (((s[g % 8] >> (4 * (g / 8))) & 0xF) | ((s[8 + g % 4] >> (2 * (g / 4))) & 3) << 4) - 32;
                    int sum = 0;
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int v = ((q[l] >> (2 * sh)) & 3) - ((w[i].hmask[l] & hbit) ? 0 : 4);
                        sum += v * *q8++;
                    }
                    isum += sc * sum;
                }
            }
        }
        acc += x[i].d * h2f(w[i].d) * (float)isum;
    }
    return acc;
}

static float dot_q4_K(const fc_block_q4_K *w, const fc_block_q8_K *x, int64_t nb)
{
    float acc = 0;
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; i++) {
        k4_scales(w[i].scales, sc, mn);
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = w[i].qs + 32 * c;
            const int8_t *q8 = x[i].qs + 64 * c;
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (q[l] & 0xF) * q8[l];
                s1 += (q[l] >> 4) * q8[l + 32];
            }
            isum += sc[2 * c] * s0 + sc[2 * c + 1] * s1;
        }
        for (int g = 0; g < 8; g++) msum += mn[g] * (x[i].bsums[2 * g] + x[i].bsums[2 * g + 1]);
        acc += x[i].d * (h2f(w[i].d) * (float)isum - h2f(w[i].dmin) * (float)msum);
    }
    return acc;
}

static float dot_q5_K(const fc_block_q5_K *w, const fc_block_q8_K *x, int64_t nb)
{
    float acc = 0;
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; i++) {
        k4_scales(w[i].scales, sc, mn);
        int isum = 0, msum = 0;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = w[i].qs + 32 * c;
            const int8_t *q8 = x[i].qs + 64 * c;
            const uint8_t b0 = (uint8_t)(1u << (2 * c)), b1 = (uint8_t)(2u << (2 * c));
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += ((q[l] & 0xF) | ((w[i].qh[l] & b0) ? 16 : 0)) * q8[l];
                s1 += ((q[l] >> 4) | ((w[i].qh[l] & b1) ? 16 : 0)) * q8[l + 32];
            }
            isum += sc[2 * c] * s0 + sc[2 * c + 1] * s1;
        }
        for (int g = 0; g < 8; g++) msum += mn[g] * (x[i].bsums[2 * g] + x[i].bsums[2 * g + 1]);
        acc += x[i].d * (h2f(w[i].d) * (float)isum - h2f(w[i].dmin) * (float)msum);
    }
    return acc;
}

static float dot_q6_K(const fc_block_q6_K *w, const fc_block_q8_K *x, int64_t nb)
{
    float acc = 0;
    for (int64_t i = 0; i < nb; i++) {
        int isum = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            for (int k = 0; k < 4; k++) {
                const int8_t *q8 = x[i].qs + 128 * h + 32 * k;
                int s0 = 0, s1 = 0;
                for (int l = 0; l < 32; l++) {
                    int lo = (ql[32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
                    int hi = (qh[l] >> (2 * k)) & 3;
                    int v = ((lo | hi << 4) - 32) * q8[l];
                    if (l < 16) s0 += v; else s1 += v;
                }
                isum += w[i].scales[8 * h + 2 * k] * s0 + w[i].scales[8 * h + 2 * k + 1] * s1;
            }
        }
        acc += x[i].d * h2f(w[i].d) * (float)isum;
    }
    return acc;
}

float fc_cpu_vec_dot_generic(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K)
{
    const int64_t nb = K / FC_QK, nbk = K / FC_QK_K;
    const float *xd = NULL, *xs = NULL;
    if (atype == FC_DTYPE_Q8_0 || atype == FC_DTYPE_Q8_1 || atype == FC_DTYPE_A16) {
        xd = fc_cpu_act_d(xa, atype, K);
        xs = fc_cpu_act_s(xa, atype, K);
    }
    if (atype == FC_DTYPE_A16) return dot_a16(wtype, wrow, xa, xd, xs, nb);
    switch (wtype) {
    case FC_DTYPE_F32:  return dot_f32(wrow, xa, K);
    case FC_DTYPE_F16:  return dot_f16(wrow, xa, K);
    case FC_DTYPE_BF16: return dot_bf16(wrow, xa, K);
    case FC_DTYPE_Q4_0: return dot_q4_0(wrow, xa, xd, xs, nb);
    case FC_DTYPE_Q4_1: return dot_q4_1(wrow, xa, xd, xs, nb);
    case FC_DTYPE_Q5_0: return dot_q5_0(wrow, xa, xd, xs, nb);
    case FC_DTYPE_Q5_1: return dot_q5_1(wrow, xa, xd, xs, nb);
    case FC_DTYPE_Q8_0: return dot_q8_0(wrow, xa, xd, nb);
    case FC_DTYPE_Q2_K: return dot_q2_K(wrow, xa, nbk);
    case FC_DTYPE_Q3_K: return dot_q3_K(wrow, xa, nbk);
    case FC_DTYPE_Q4_K: return dot_q4_K(wrow, xa, nbk);
    case FC_DTYPE_Q5_K: return dot_q5_K(wrow, xa, nbk);
    case FC_DTYPE_Q6_K: return dot_q6_K(wrow, xa, nbk);
    default: return 0.0f;
    }
}

/* ---- matrix products ---- */

/* Row-interleaved weights (pack.c): each row's block is copied out of its
 * group block and dotted as the base type's. */
static void matmul_packed(int ptype, const uint8_t *w, size_t w_stride, int64_t K,
                          const uint8_t *xa, size_t xa_stride, int T,
                          float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    const int base = fc_pack_base_type(ptype);
    const int64_t nb = K / FC_QK;
    const size_t wbs = fc_dtype_type_size(base);
    FC_ASSERT(r0 % 8 == 0 && r1 % 8 == 0);
    for (int64_t g = r0 / 8; g < r1 / 8; g++) {
        const uint8_t *gw = w + (size_t)(8 * g) * w_stride;
        for (int t = 0; t < T; t++) {
            const uint8_t *x = xa + (size_t)t * xa_stride;
            const float *xd = fc_cpu_act_d(x, FC_DTYPE_A16, K), *xs = fc_cpu_act_s(x, FC_DTYPE_A16, K);
            for (int r = 0; r < 8; r++) {
                float acc = 0;
                for (int64_t b = 0; b < nb; b++) {
                    uint8_t blk[sizeof(fc_block_q8_0)];
                    fc_pack_block_row(ptype, gw + (size_t)b * 8 * wbs, r, blk);
                    acc += dot_a16(base, blk, (const fc_block_a16 *)x + b, xd + b, xs + b, 1);
                }
                y[(int64_t)t * y_stride + 8 * g + r] = acc;
            }
        }
    }
}

void fc_cpu_matmul_fast_generic(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K, enum fc_dtype atype,
                                const void *xa, size_t xa_stride, int T,
                                float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    if (fc_pack_base_type(wtype) != wtype) {
        matmul_packed(wtype, w, w_stride, K, xa, xa_stride, T, y, y_stride, r0, r1);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        const void *wr = (const uint8_t *)w + (size_t)r * w_stride;
        for (int t = 0; t < T; t++)
            y[(int64_t)t * y_stride + r] =
                fc_cpu_vec_dot_generic(wtype, wr, atype, (const uint8_t *)xa + (size_t)t * xa_stride, K);
    }
}

/* Exact mode dequantizes KC values of a row at a time into a stack buffer
 * (a multiple of every block size) and accumulates f32 dots per token. */
#define EXACT_KC 1024

void fc_cpu_matmul_exact_generic(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                                 const float *x, int64_t x_stride, int T,
                                 float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    float buf[EXACT_KC];
    const int bs = fc_dtype_block_size(wtype);
    const size_t tsz = fc_dtype_type_size(wtype);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;
        for (int64_t k0 = 0; k0 < K; k0 += EXACT_KC) {
            const int64_t kn = FC_MIN(EXACT_KC, K - k0);
            bool ok = fc_dequantize_row_ref(wtype, wr + (size_t)(k0 / bs) * tsz, buf, kn);
            FC_ASSERT(ok);
            for (int t = 0; t < T; t++) {
                float *yt = &y[(int64_t)t * y_stride + r];
                const float part = dot_f32(buf, x + (int64_t)t * x_stride + k0, kn);
                *yt = k0 == 0 ? part : *yt + part;
            }
        }
    }
}

/* ---- row ops ---- */

void fc_cpu_rmsnorm_generic(float *y, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void fc_cpu_swiglu_generic(float *y, const float *g, const float *u, int n)
{
    for (int i = 0; i < n; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

float fc_cpu_dot_f32_generic(const float *a, const float *b, int n)
{
    return dot_f32(a, b, n);
}

void fc_cpu_axpy_f32_generic(float *y, float a, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}
