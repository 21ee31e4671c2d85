/*
 * quant_ref.c: scalar reference dequantizers and quantizers for the GGUF
 * block formats (fc_dequantize_row_ref / fc_quantize_row_ref in dtype.h).
 *
 * This file is the oracle: every SIMD, threaded or GPU kernel that reads or
 * writes these blocks is tested against it. It is written for clarity, not
 * speed, but its float arithmetic is ordered exactly like llama.cpp's ggml
 * reference code (ggml-quants.c, *_ref functions), so that
 *   - dequantized values are bit-identical to ggml's and to gguf-py's
 *     (tests/unit/test_quant.c checks them against gguf-py golden data), and
 *   - quantized blocks are byte-identical to what ggml's reference (round to
 *     nearest, no importance matrix) quantizers write, so files we write are
 *     of the same quality.
 * Products are never fused into FMAs here (GCC does not contract in -std=c11
 * mode; clang is told so below), since a fused multiply-add rounds once and
 * would change the last bit of, e.g., d*q + m.
 *
 * Not here: importance-matrix ("imatrix") quantization, the IQ* / TQ* types,
 * and anything fast.
 *
 * ---- Block layouts ----
 * All multi-byte fields are little-endian; "f16" is an IEEE half. In each
 * layout "value e" is the e-th of the block's values in row order.
 *
 * q4_0   18 bytes / 32 values   { f16 d; u8 qs[16]; }
 *        qs[j] holds value j in its low nibble and value j+16 in its high
 *        nibble (the first and second halves of the block, not neighbours).
 *        value = d * (nibble - 8), so codes span -8..7.
 * q4_1   20 bytes / 32 values   { f16 d, m; u8 qs[16]; }
 *        nibbles as q4_0, unsigned: value = d * nibble + m.
 * q5_0   22 bytes / 32 values   { f16 d; u8 qh[4]; u8 qs[16]; }
 *        qs as q4_0 gives the low 4 bits; qh read as one little-endian u32
 *        gives bit 4 of value e in its bit e. value = d * (q - 16).
 * q5_1   24 bytes / 32 values   { f16 d, m; u8 qh[4]; u8 qs[16]; }
 *        5-bit q as q5_0, unsigned: value = d * q + m.
 * q8_0   34 bytes / 32 values   { f16 d; i8 qs[32]; }   value = d * qs[e].
 * q8_1   36 bytes / 32 values   { f16 d, s; i8 qs[32]; }
 *        value = d * qs[e]; s caches d * sum(qs) (computed with the f32 d
 *        before it was rounded to f16) for the q4_1/q5_1 dot products.
 * a16    68 bytes / 32 values   { f32 d; i16 qs[32]; }   value = d * qs[e].
 *        Ours, not GGML's: the 16-bit activations of the fast matmul's
 *        default mode (d = amax / 32767).
 *
 * The K types group 256 values into a super-block of sub-blocks of 16 or 32
 * values; each sub-block has a small integer scale (and min) that is itself
 * scaled by the super-block's f16 d (and dmin).
 *
 * q2_K   84 bytes / 256 values  { u8 scales[16]; u8 qs[64]; f16 d, dmin; }
 *        16 sub-blocks of 16. scales[g]: low nibble = scale sc, high nibble
 *        = min m of sub-block g. Value e = 128*h + 32*s + l (h 0..1, s 0..3,
 *        l 0..31) has code q = (qs[32*h + l] >> 2*s) & 3 and lies in
 *        sub-block g = e / 16. value = d*sc * q - dmin*m.
 * q3_K   110 bytes / 256 values { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }
 *        16 sub-blocks of 16 with 6-bit scales stored biased by 32. For
 *        sub-block g: low 4 bits = nibble (g/8) of scales[g%8], high 2 bits
 *        = bits 2*(g/4)..+1 of scales[8 + g%4]. Value e = 128*h + 32*s + l:
 *        low 2 bits as q2_K from qs; high bit = bit (4*h + s) of hmask[l].
 *        q = low2 - (high bit set ? 0 : 4), i.e. -4..3 (the stored high bit
 *        is the complement of a sign). value = d * (scale - 32) * q.
 * q4_K   144 bytes / 256 values { f16 d, dmin; u8 scales[12]; u8 qs[128]; }
 *        8 sub-blocks of 32, each with a 6-bit scale sc and 6-bit min m
 *        packed in 12 bytes: for g < 4, sc = scales[g] & 63 and
 *        m = scales[g+4] & 63; for g >= 4, sc = (scales[g+4] & 15) |
 *        (scales[g-4] >> 6) << 4 and m = (scales[g+4] >> 4) | (scales[g] >> 6)
 *        << 4 (the spare top bits of bytes 0..7 carry the high bits of
 *        sub-blocks 4..7). Value e = 64*c + 32*n + l (c 0..3, n 0..1) is
 *        nibble n (0 low, 1 high) of qs[32*c + l] and lies in sub-block
 *        2*c + n. value = d*sc * q - dmin*m, q in 0..15.
 * q5_K   176 bytes / 256 values { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
 *        as q4_K for the low 4 bits; bit 4 of value e = 64*c + 32*n + l is
 *        bit (2*c + n) of qh[l]. q in 0..31.
 * q6_K   210 bytes / 256 values { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
 *        16 sub-blocks of 16 with signed 8-bit scales. Value
 *        e = 128*h + 32*k + l (h 0..1, k 0..3, l 0..31): low 4 bits =
 *        nibble (k/2) of ql[64*h + 32*(k%2) + l], high 2 bits =
 *        (qh[32*h + l] >> 2*k) & 3; q = that 6-bit number - 32 (-32..31).
 *        value = d * scales[e/16] * q.
 * q8_K   292 bytes / 256 values { f32 d; i8 qs[256]; i16 bsums[16]; }
 *        value = d * qs[e]; bsums[g] = sum of qs[16*g .. 16*g+15]. The
 *        activation side of the K-quant dot products (bsums lets them fold
 *        the mins in without touching each value); never stored in files.
 */
#include "dtype.h"

#include <math.h>
#include <string.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define GROUP_MAX_EPS 1e-15f /* a sub-block with |x| below this is all zero (ggml's choice) */

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* Round to nearest, ties to even (the default FP rounding mode), as ggml's
 * nearest_int. Only meaningful for |x| < 2^22. */
static inline int nearest_int(float x) { return (int)lrintf(x); }

static inline float h2f(fc_f16 h) { return fc_f16_to_f32(h); }
static inline fc_f16 f2h(float f) { return fc_f32_to_f16(f); }

/* ---- plain types ---- */

static void deq_f32(const void *src, float *y, int64_t n) { memcpy(y, src, (size_t)n * sizeof(float)); }

static void deq_f16(const fc_f16 *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = h2f(x[i]);
}

static void deq_bf16(const fc_bf16 *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = fc_bf16_to_f32(x[i]);
}

/* ---- 32-value block types: dequantize ---- */

static void deq_q4_0(const fc_block_q4_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < FC_QK / 2; j++) {
            y[j]             = ((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + FC_QK / 2] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const fc_block_q4_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < FC_QK / 2; j++) {
            y[j]             = (x[i].qs[j] & 0x0F) * d + m;
            y[j + FC_QK / 2] = (x[i].qs[j] >> 4) * d + m;
        }
    }
}

static inline uint32_t load_u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void deq_q5_0(const fc_block_q5_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK) {
        const float d = h2f(x[i].d);
        const uint32_t qh = load_u32_le(x[i].qh);
        for (int j = 0; j < FC_QK / 2; j++) {
            int q0 = (x[i].qs[j] & 0x0F) | ((qh >> j) & 1) << 4;
            int q1 = (x[i].qs[j] >> 4) | ((qh >> (j + FC_QK / 2)) & 1) << 4;
            y[j]             = (q0 - 16) * d;
            y[j + FC_QK / 2] = (q1 - 16) * d;
        }
    }
}

static void deq_q5_1(const fc_block_q5_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        const uint32_t qh = load_u32_le(x[i].qh);
        for (int j = 0; j < FC_QK / 2; j++) {
            int q0 = (x[i].qs[j] & 0x0F) | ((qh >> j) & 1) << 4;
            int q1 = (x[i].qs[j] >> 4) | ((qh >> (j + FC_QK / 2)) & 1) << 4;
            y[j]             = q0 * d + m;
            y[j + FC_QK / 2] = q1 * d + m;
        }
    }
}

static void deq_q8_0(const fc_block_q8_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < FC_QK; j++) y[j] = x[i].qs[j] * d;
    }
}

static void deq_a16(const fc_block_a16 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK)
        for (int j = 0; j < FC_QK; j++) y[j] = x[i].qs[j] * x[i].d;
}

static void deq_q8_1(const fc_block_q8_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < FC_QK; j++) y[j] = x[i].qs[j] * d;
    }
}

/* ---- K types: dequantize ---- */

static void deq_q2_K(const fc_block_q2_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = x[i].qs + 32 * h;
            for (int s = 0; s < 4; s++) {
                for (int half = 0; half < 2; half++) { /* two sub-blocks of 16 */
                    const uint8_t sc = x[i].scales[8 * h + 2 * s + half];
                    const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
                    for (int l = 16 * half; l < 16 * half + 16; l++)
                        *y++ = dl * ((q[l] >> (2 * s)) & 3) - ml;
                }
            }
        }
    }
}

/* The 6-bit scale of q3_K sub-block g, still biased by 32. */
static inline int q3_K_scale(const uint8_t *scales, int g)
{
    int lo = (scales[g % 8] >> (4 * (g / 8))) & 0xF;
    int hi = (scales[8 + g % 4] >> (2 * (g / 4))) & 3;
    return lo | hi << 4;
}

static void deq_q3_K(const fc_block_q3_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = x[i].qs + 32 * h;
            for (int s = 0; s < 4; s++) {
                const uint8_t hbit = (uint8_t)(1u << (4 * h + s));
                for (int half = 0; half < 2; half++) {
                    const float dl = d * (q3_K_scale(x[i].scales, 8 * h + 2 * s + half) - 32);
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int v = ((q[l] >> (2 * s)) & 3) - ((x[i].hmask[l] & hbit) ? 0 : 4);
                        *y++ = dl * v;
                    }
                }
            }
        }
    }
}

/* The 6-bit scale and min of q4_K / q5_K sub-block g (0..7). */
static inline void k4_scale_min(const uint8_t *q, int g, uint8_t *sc, uint8_t *m)
{
    if (g < 4) {
        *sc = q[g] & 63;
        *m = q[g + 4] & 63;
    } else {
        *sc = (uint8_t)((q[g + 4] & 0xF) | (q[g - 4] >> 6) << 4);
        *m = (uint8_t)((q[g + 4] >> 4) | (q[g] >> 6) << 4);
    }
}

static void deq_q4_K(const fc_block_q4_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = x[i].qs + 32 * c;
            for (int n = 0; n < 2; n++) {
                uint8_t sc, m;
                k4_scale_min(x[i].scales, 2 * c + n, &sc, &m);
                const float d1 = d * sc, m1 = dmin * m;
                for (int l = 0; l < 32; l++) *y++ = d1 * ((q[l] >> (4 * n)) & 0xF) - m1;
            }
        }
    }
}

static void deq_q5_K(const fc_block_q5_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = x[i].qs + 32 * c;
            for (int n = 0; n < 2; n++) {
                uint8_t sc, m;
                k4_scale_min(x[i].scales, 2 * c + n, &sc, &m);
                const float d1 = d * sc, m1 = dmin * m;
                const uint8_t hbit = (uint8_t)(1u << (2 * c + n));
                for (int l = 0; l < 32; l++) {
                    int v = ((q[l] >> (4 * n)) & 0xF) + ((x[i].qh[l] & hbit) ? 16 : 0);
                    *y++ = d1 * v - m1;
                }
            }
        }
    }
}

static void deq_q6_K(const fc_block_q6_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(x[i].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            for (int k = 0; k < 4; k++) {
                for (int l = 0; l < 32; l++) {
                    int lo = (ql[32 * (k % 2) + l] >> (4 * (k / 2))) & 0xF;
                    int hi = (qh[l] >> (2 * k)) & 3;
                    int sc = x[i].scales[8 * h + 2 * k + l / 16];
                    *y++ = d * sc * ((lo | hi << 4) - 32);
                }
            }
        }
    }
}

static void deq_q8_K(const fc_block_q8_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, y += FC_QK_K)
        for (int j = 0; j < FC_QK_K; j++) y[j] = x[i].d * x[i].qs[j];
}

bool fc_dequantize_row_ref(enum fc_dtype t, const void *src, float *dst, int64_t n)
{
    const int bs = fc_dtype_block_size(t);
    if (bs == 0 || n < 0 || n % bs != 0) return false;
    const int64_t nb = n / bs;
    switch (t) {
    case FC_DTYPE_F32:  deq_f32(src, dst, n); return true;
    case FC_DTYPE_F16:  deq_f16(src, dst, n); return true;
    case FC_DTYPE_BF16: deq_bf16(src, dst, n); return true;
    case FC_DTYPE_Q4_0: deq_q4_0(src, dst, nb); return true;
    case FC_DTYPE_Q4_1: deq_q4_1(src, dst, nb); return true;
    case FC_DTYPE_Q5_0: deq_q5_0(src, dst, nb); return true;
    case FC_DTYPE_Q5_1: deq_q5_1(src, dst, nb); return true;
    case FC_DTYPE_Q8_0: deq_q8_0(src, dst, nb); return true;
    case FC_DTYPE_Q8_1: deq_q8_1(src, dst, nb); return true;
    case FC_DTYPE_A16:  deq_a16(src, dst, nb); return true;
    case FC_DTYPE_Q2_K: deq_q2_K(src, dst, nb); return true;
    case FC_DTYPE_Q3_K: deq_q3_K(src, dst, nb); return true;
    case FC_DTYPE_Q4_K: deq_q4_K(src, dst, nb); return true;
    case FC_DTYPE_Q5_K: deq_q5_K(src, dst, nb); return true;
    case FC_DTYPE_Q6_K: deq_q6_K(src, dst, nb); return true;
    case FC_DTYPE_Q8_K: deq_q8_K(src, dst, nb); return true;
    default: return false;
    }
}

/* ---- 32-value block types: quantize ----
 * Symmetric types (q4_0, q5_0) pick d so that the value of largest magnitude
 * maps exactly to the most negative code (-8 / -16), which gains one level
 * over using +7 / +15. Asymmetric ones (q4_1, q5_1) map [min, max] onto
 * [0, 15] / [0, 31]. Codes are round-half-up via truncation of x/d + 0.5
 * (all operands are non-negative there), as ggml does. The f32 d is used
 * for the codes and only then rounded to f16 for storage. */

/* First value of largest magnitude, with its sign (ties keep the first). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < n; j++)
        if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

static void min_max(const float *x, int n, float *min, float *max)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *min = lo; *max = hi;
}

static void quant_q4_0(const float *x, fc_block_q4_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        const float d = signed_absmax(x, FC_QK) / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < FC_QK / 2; j++) {
            int q0 = imax(0, imin(15, (int)(x[j] * id + 8.5f)));
            int q1 = imax(0, imin(15, (int)(x[j + FC_QK / 2] * id + 8.5f)));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

static void quant_q4_1(const float *x, fc_block_q4_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        float min, max;
        min_max(x, FC_QK, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < FC_QK / 2; j++) {
            int q0 = imax(0, imin(15, (int)((x[j] - min) * id + 0.5f)));
            int q1 = imax(0, imin(15, (int)((x[j + FC_QK / 2] - min) * id + 0.5f)));
            y[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

/* Packs 32 five-bit codes into q5's qs (low nibbles) and qh (bit 4). */
static void pack_q5(const int *q, uint8_t qs[FC_QK / 2], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < FC_QK / 2; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + FC_QK / 2] & 0xF) << 4);
        h |= (uint32_t)((q[j] >> 4) & 1) << j;
        h |= (uint32_t)((q[j + FC_QK / 2] >> 4) & 1) << (j + FC_QK / 2);
    }
    for (int b = 0; b < 4; b++) qh[b] = (uint8_t)(h >> (8 * b));
}

static void quant_q5_0(const float *x, fc_block_q5_0 *y, int64_t nb)
{
    int q[FC_QK];
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        const float d = signed_absmax(x, FC_QK) / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < FC_QK; j++) q[j] = imax(0, imin(31, (int)(x[j] * id + 16.5f)));
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

static void quant_q5_1(const float *x, fc_block_q5_1 *y, int64_t nb)
{
    int q[FC_QK];
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        float min, max;
        min_max(x, FC_QK, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        /* ggml does not clamp here ((max-min)*id + 0.5 < 32 always); we do
         * for safety, which changes nothing for finite inputs. */
        for (int j = 0; j < FC_QK; j++) q[j] = imax(0, imin(31, (int)((x[j] - min) * id + 0.5f)));
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

static float absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(x[j]));
    return amax;
}

/* q8_0 / q8_1: d = amax / 127, codes rounded half away from zero (roundf). */
static void quant_q8_0(const float *x, fc_block_q8_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        const float d = absmax(x, FC_QK) / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < FC_QK; j++) y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

/* a16 (ours): d = amax / 32767 kept in f32, codes rounded to nearest even
 * (the rounding of vcvtps2dq) and clamped. */
static void quant_a16(const float *x, fc_block_a16 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        const float d = absmax(x, FC_QK) / 32767;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = d;
        for (int j = 0; j < FC_QK; j++) y[i].qs[j] = (int16_t)fmaxf(-32768.0f, fminf(32767.0f, nearbyintf(x[j] * id)));
    }
}

static void quant_q8_1(const float *x, fc_block_q8_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += FC_QK) {
        const float d = absmax(x, FC_QK) / 127;
        const float id = d ? 1.0f / d : 0.0f;
        int sum = 0;
        y[i].d = f2h(d);
        for (int j = 0; j < FC_QK; j++) {
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
            sum += y[i].qs[j];
        }
        y[i].s = f2h(sum * d);
    }
}

/* ---- K types: quantize ----
 * Each sub-block first gets its own best float scale (and min) by a small
 * search; the super-block then stores d = largest scale / 63 (q4_K, q5_K) or
 * a signed 8-bit ratio (q6_K), quantizes each sub-block's scale against it,
 * and finally re-rounds every value against the scale it will actually be
 * decoded with (f16 d times the integer sub-scale). */

/*
 * Asymmetric fit for a sub-block of n values to codes 0..nmax:
 *   x ~ scale * L - min_out   (min_out >= 0: the offset is never positive
 *                              so that 0 stays representable).
 * Starts from the plain [min(x,0), max(x)] mapping, then tries nstep+1
 * alternative grid spacings iscale = (nmax + rmin + rdelta*is) / range; for
 * each it rounds the codes, solves the weighted least-squares (scale, min)
 * for those codes in closed form, and keeps the candidate with the lowest
 * weighted squared error (or absolute error with use_mad). Returns scale,
 * stores -min in *min_out and the codes in L (Laux is scratch of n).
 * Same algorithm and operation order as ggml's make_qkx2_quants.
 */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *min_out, uint8_t *Laux, float rmin, float rdelta, int nstep,
                           bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *min_out = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_err = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_err += w[i] * diff;
    }
    if (nstep < 1) {
        *min_out = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            err += w[i] * diff;
        }
        if (err < best_err) {
            memcpy(L, Laux, (size_t)n);
            best_err = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *min_out = -min;
    return scale;
}

/*
 * Symmetric fit for codes -nmax..nmax-1, weighted by x^2 (ggml's
 * make_qx_quants with rmse_type 1): the scale maps the value of largest
 * magnitude to -nmax; 18 nearby spacings (nmax +- 0.1*k, k = 1..9) are tried
 * and the one maximizing (sum w x l)^2 / sum w l^2 (equivalently minimizing
 * the weighted error after the optimal rescale) wins. Returns the
 * least-squares scale; L receives codes biased by +nmax.
 */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/*
 * Symmetric 3-bit fit (ggml's make_q3_quants with do_rmse): like
 * fit_scale_sym's start, then up to 5 passes of coordinate descent that
 * move single codes when that raises (sum w x l)^2 / sum w l^2, w = x^2.
 * L receives codes biased by +nmax.
 */
static float fit_scale_q3(int n, int nmax, const float *x, int8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx <= 0) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            int new_l = imax(-nmax, imin(nmax - 1, nearest_int(x[i] * sl2 / slx)));
            if (new_l == L[i]) continue;
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Inverse of k4_scale_min: stores 6-bit (sc, m) of sub-block g. Bytes must
 * start zeroed for g >= 4 to OR into; we write g in increasing order and
 * bytes 0..7 are fully assigned for g < 4 before any OR. */
static void k4_pack_scale_min(uint8_t *q, int g, uint8_t sc, uint8_t m)
{
    if (g < 4) {
        q[g] = sc;
        q[g + 4] = m;
    } else {
        q[g + 4] = (uint8_t)((sc & 0xF) | (m & 0xF) << 4);
        q[g - 4] |= (uint8_t)((sc >> 4) << 6);
        q[g] |= (uint8_t)((m >> 4) << 6);
    }
}

/*
 * Shared by q4_K (nmax 15) and q5_K (nmax 31): per 32-value sub-block,
 * weights w = rms(x) + |x| (error on large values counts more), scale/min
 * fit with fit_scale_min; then 6-bit sub-scales against d = max scale / 63,
 * dmin = max min / 63, and the final codes re-rounded against them.
 * Leaves codes 0..nmax in L[256].
 */
static void quant_k4_common(const float *x, int nmax, float rmin, int nstep, fc_f16 *d_out,
                            fc_f16 *dmin_out, uint8_t scales_out[FC_K_SCALE_SIZE], uint8_t L[FC_QK_K])
{
    uint8_t Laux[32];
    float w[32], mins[FC_QK_K / 32], scales[FC_QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < FC_QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, FC_K_SCALE_SIZE);
    for (int j = 0; j < FC_QK_K / 32; j++) {
        /* ggml stores nearest_int into a uint8_t before clamping to 63; the
         * value is within 0..63 anyway, since each scale <= the max. */
        uint8_t ls = (uint8_t)imin(63, (uint8_t)nearest_int(inv_scale * scales[j]));
        uint8_t lm = (uint8_t)imin(63, (uint8_t)nearest_int(inv_min * mins[j]));
        k4_pack_scale_min(scales_out, j, ls, lm);
    }
    *d_out = f2h(max_scale / 63.f);
    *dmin_out = f2h(max_min / 63.f);
    for (int j = 0; j < FC_QK_K / 32; j++) {
        uint8_t sc, m;
        k4_scale_min(scales_out, j, &sc, &m);
        const float d = h2f(*d_out) * sc;
        if (!d) continue; /* keep the fit's codes; they decode to -dmin*m anyway */
        const float dm = h2f(*dmin_out) * m;
        for (int l = 0; l < 32; l++) {
            int q = nearest_int((x[32 * j + l] + dm) / d);
            L[32 * j + l] = (uint8_t)imax(0, imin(nmax, q));
        }
    }
}

static void quant_q4_K(const float *x, fc_block_q4_K *y, int64_t nb)
{
    uint8_t L[FC_QK_K];
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        quant_k4_common(x, 15, -1.0f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
    }
}

static void quant_q5_K(const float *x, fc_block_q5_K *y, int64_t nb)
{
    uint8_t L[FC_QK_K];
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        quant_k4_common(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) {
                int q0 = L[64 * c + l], q1 = L[64 * c + 32 + l];
                y[i].qs[32 * c + l] = (uint8_t)((q0 & 0xF) | (q1 & 0xF) << 4);
                y[i].qh[l] |= (uint8_t)((q0 >> 4) << (2 * c) | (q1 >> 4) << (2 * c + 1));
            }
        }
    }
}

/*
 * q6_K: each 16-value sub-block gets a signed scale from fit_scale_sym
 * (codes -32..31); the one of largest magnitude maps to -128 so d =
 * -max_scale/128 and every sub-scale fits an int8 (clamped to 127 at the
 * other end); codes are then re-rounded against d * scale.
 */
static void quant_q6_K(const float *x, fc_block_q6_K *y, int64_t nb)
{
    int8_t L[FC_QK_K];
    float scales[FC_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < FC_QK_K / 16; g++) {
            scales[g] = fit_scale_sym(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > max_abs_scale) {
                max_abs_scale = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int g = 0; g < FC_QK_K / 16; g++)
            y[i].scales[g] = (int8_t)imin(127, nearest_int(iscale * scales[g]));
        for (int g = 0; g < FC_QK_K / 16; g++) {
            const float d = h2f(y[i].d) * y[i].scales[g];
            if (!d) continue;
            for (int l = 0; l < 16; l++) {
                int q = nearest_int(x[16 * g + l] / d);
                L[16 * g + l] = (int8_t)(imax(-32, imin(31, q)) + 32);
            }
        }
        for (int h = 0; h < 2; h++) {
            const int8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                y[i].ql[64 * h + l]      = (uint8_t)((Lh[l] & 0xF) | (Lh[l + 64] & 0xF) << 4);
                y[i].ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0xF) | (Lh[l + 96] & 0xF) << 4);
                y[i].qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | (Lh[l + 32] >> 4) << 2 |
                                                (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
            }
        }
    }
}

/* Packs 2-bit codes L[256] as q2_K / q3_K qs: value 128h+32s+l -> bits 2s of qs[32h+l]. */
static void pack_2bit(const uint8_t *L, uint8_t qs[FC_QK_K / 4])
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *Lh = L + 128 * h;
            qs[32 * h + l] = (uint8_t)(Lh[l] | Lh[l + 32] << 2 | Lh[l + 64] << 4 | Lh[l + 96] << 6);
        }
}

/*
 * q2_K: per 16-value sub-block an asymmetric fit to codes 0..3 weighted by
 * |x| with absolute error (ggml's choice for 2 bits), then 4-bit sub-scales
 * and sub-mins against d = max scale / 15 and dmin = max min / 15.
 */
static void quant_q2_K(const float *x, fc_block_q2_K *y, int64_t nb)
{
    uint8_t L[FC_QK_K], Laux[16];
    float w[16], mins[FC_QK_K / 16], scales[FC_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        float max_scale = 0, max_min = 0;
        for (int g = 0; g < FC_QK_K / 16; g++) {
            for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * g + l]);
            scales[g] = fit_scale_min(16, 3, x + 16 * g, w, L + 16 * g, &mins[g], Laux, -0.5f, 0.1f, 15, true);
            if (scales[g] > max_scale) max_scale = scales[g];
            if (mins[g] > max_min) max_min = mins[g];
        }
        if (max_scale > 0) {
            const float iscale = 15.f / max_scale;
            for (int g = 0; g < FC_QK_K / 16; g++) y[i].scales[g] = (uint8_t)nearest_int(iscale * scales[g]);
            y[i].d = f2h(max_scale / 15.f);
        } else {
            memset(y[i].scales, 0, sizeof(y[i].scales));
            y[i].d = f2h(0.f);
        }
        if (max_min > 0) {
            const float iscale = 15.f / max_min;
            for (int g = 0; g < FC_QK_K / 16; g++) y[i].scales[g] |= (uint8_t)(nearest_int(iscale * mins[g]) << 4);
            y[i].dmin = f2h(max_min / 15.f);
        } else {
            y[i].dmin = f2h(0.f);
        }
        for (int g = 0; g < FC_QK_K / 16; g++) {
            const float d = h2f(y[i].d) * (y[i].scales[g] & 0xF);
            if (!d) continue;
            const float dm = h2f(y[i].dmin) * (y[i].scales[g] >> 4);
            for (int l = 0; l < 16; l++) {
                int q = nearest_int((x[16 * g + l] + dm) / d);
                L[16 * g + l] = (uint8_t)imax(0, imin(3, q));
            }
        }
        pack_2bit(L, y[i].qs);
    }
}

/*
 * q3_K: per 16-value sub-block a symmetric 3-bit fit (fit_scale_q3); the
 * sub-scale of largest magnitude maps to -32, giving 6-bit biased
 * sub-scales; codes re-rounded to -4..3, stored as 2 low bits in qs and the
 * "not negative" bit (code+4 > 3) in hmask.
 */
static void quant_q3_K(const float *x, fc_block_q3_K *y, int64_t nb)
{
    int8_t L[FC_QK_K];
    uint8_t Lu[FC_QK_K];
    float scales[FC_QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        float max_scale = 0, amax = 0;
        for (int g = 0; g < FC_QK_K / 16; g++) {
            scales[g] = fit_scale_q3(16, 4, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > amax) {
                amax = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        memset(y[i].scales, 0, sizeof(y[i].scales));
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            for (int g = 0; g < FC_QK_K / 16; g++) {
                int l = imax(-32, imin(31, (int8_t)nearest_int(iscale * scales[g]))) + 32;
                y[i].scales[g % 8] |= (uint8_t)((l & 0xF) << (4 * (g / 8)));
                y[i].scales[8 + g % 4] |= (uint8_t)((l >> 4) << (2 * (g / 4)));
            }
            y[i].d = f2h(1 / iscale);
        } else {
            y[i].d = f2h(0.f);
        }
        for (int g = 0; g < FC_QK_K / 16; g++) {
            const float d = h2f(y[i].d) * (q3_K_scale(y[i].scales, g) - 32);
            if (!d) continue;
            for (int l = 0; l < 16; l++) {
                int q = nearest_int(x[16 * g + l] / d);
                L[16 * g + l] = (int8_t)(imax(-4, imin(3, q)) + 4);
            }
        }
        /* value e = 128h + 32s + l: high bit to bit (4h + s) of hmask[l] */
        memset(y[i].hmask, 0, sizeof(y[i].hmask));
        for (int e = 0; e < FC_QK_K; e++) {
            int q = L[e];
            if (q > 3) {
                y[i].hmask[e % 32] |= (uint8_t)(1u << (e / 32));
                q -= 4;
            }
            Lu[e] = (uint8_t)q;
        }
        pack_2bit(Lu, y[i].qs);
    }
}

/*
 * q8_K: d = -max/127 for the value of largest magnitude (so it maps to -127
 * exactly; ggml once used 128 and moved to 127 for its IQ2 kernels), codes
 * round-to-nearest-even, and bsums for the K-quant dot products. An all-zero
 * block gets d = 0 and zero codes.
 */
static void quant_q8_K(const float *x, fc_block_q8_K *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < FC_QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (!amax) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < FC_QK_K; j++) y[i].qs[j] = (int8_t)imin(127, nearest_int(iscale * x[j]));
        for (int g = 0; g < FC_QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

bool fc_quantize_row_ref(enum fc_dtype t, const float *src, void *dst, int64_t n)
{
    const int bs = fc_dtype_block_size(t);
    if (bs == 0 || n < 0 || n % bs != 0) return false;
    const int64_t nb = n / bs;
    switch (t) {
    case FC_DTYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return true;
    case FC_DTYPE_F16: {
        fc_f16 *y = dst;
        for (int64_t i = 0; i < n; i++) y[i] = f2h(src[i]);
        return true;
    }
    case FC_DTYPE_BF16: {
        fc_bf16 *y = dst;
        for (int64_t i = 0; i < n; i++) y[i] = fc_f32_to_bf16(src[i]);
        return true;
    }
    case FC_DTYPE_Q4_0: quant_q4_0(src, dst, nb); return true;
    case FC_DTYPE_Q4_1: quant_q4_1(src, dst, nb); return true;
    case FC_DTYPE_Q5_0: quant_q5_0(src, dst, nb); return true;
    case FC_DTYPE_Q5_1: quant_q5_1(src, dst, nb); return true;
    case FC_DTYPE_Q8_0: quant_q8_0(src, dst, nb); return true;
    case FC_DTYPE_Q8_1: quant_q8_1(src, dst, nb); return true;
    case FC_DTYPE_A16:  quant_a16(src, dst, nb); return true;
    case FC_DTYPE_Q2_K: quant_q2_K(src, dst, nb); return true;
    case FC_DTYPE_Q3_K: quant_q3_K(src, dst, nb); return true;
    case FC_DTYPE_Q4_K: quant_q4_K(src, dst, nb); return true;
    case FC_DTYPE_Q5_K: quant_q5_K(src, dst, nb); return true;
    case FC_DTYPE_Q6_K: quant_q6_K(src, dst, nb); return true;
    case FC_DTYPE_Q8_K: quant_q8_K(src, dst, nb); return true;
    default: return false;
    }
}
