/*
 * x86_avx512.c: AVX-512 kernels (F, BW, VL; VNNI where present) of the fast
 * matmul on row-interleaved weights (q4_0x8, q4_1x8, q8_0x8, pack.c) with
 * 16-bit activations.
 *
 * Compiled only when the compiler targets AVX-512 (FC_CPU_AVX512 in
 * cpu_impl.h); x86_avx2.c hands it the rows it can take in pairs of 8-row
 * groups and keeps an odd last group.
 *
 * Two adjacent groups fill a 512-bit register: a 16-byte code chunk of
 * each, widened to int16, is 16 rows x one value pair, and one vpdpwssd
 * with the activation pair broadcast from memory ({1to16}) adds 32
 * products into the 16 rows' int32 sums. Against the AVX2 kernel (8 rows
 * per instruction) that halves the instructions and, above all, the
 * activation broadcasts, which bounded it by the load ports. Per block and
 * token the 16 rows share one convert, one scale product and two FMAs
 * (the second for the offset: q4_0's -8 d, q4_1's m).
 */
#include "cpu_impl.h"

#if FC_CPU_AVX512

#include "base/fc_base.h"

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define NOINLINE static __attribute__((noinline))
#define UNROLL _Pragma("GCC unroll 16")
/* Tokens per tile: 8 tokens' 16 int32 sums and 8 f32 sums fit the 32
 * registers with the codes (measured: 8 tokens ~8% faster than 4 or 6). */
#define MAXT 8

/* acc (+)= the pair products of w and the int32 at p broadcast to all
 * lanes; first: the sum starts here (acc is ignored). With VNNI the
 * broadcast is folded into vpdpwssd ({1to16}); the asm keeps it there,
 * since GCC otherwise materializes every broadcast of a block as a full
 * vector on the stack and reads it back. */
INLINE __m512i dp_bcast(__m512i acc, __m512i w, const void *p, const bool first)
{
    const int32_t *m = p;
#ifdef __AVX512VNNI__
    if (first) acc = _mm512_setzero_si512();
    __asm__("vpdpwssd %[x]%{1to16%}, %[w], %[a]" : [a] "+v"(acc) : [w] "v"(w), [x] "m"(*m));
    return acc;
#else
    __m512i x;
    __asm__("vpbroadcastd %[m], %[x]" : [x] "=v"(x) : [m] "m"(*m));
    const __m512i r = _mm512_madd_epi16(w, x);
    return first ? r : _mm512_add_epi32(acc, r);
#endif
}

/* 16 bytes at a and 16 at b as one 256-bit vector (a low). */
INLINE __m256i join(const uint8_t *a, const uint8_t *b)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                   _mm_loadu_si128((const __m128i *)b), 1);
}

/*
 * 16 rows (groups at w0 and w1 = w0 + 8 rows) x TT tokens. PT is the
 * packed type; xa holds TT a16 activation rows xs bytes apart; y[t * ys +
 * 0..16) receives token t's 16 results.
 */
INLINE void tile_x16(const int PT, const int TT, const uint8_t *w0, const uint8_t *w1, int64_t K,
                     const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    const int BT = fc_pack_base_type(PT);
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    const size_t gbs = 8 * fc_dtype_type_size(BT), hb = BT == FC_DTYPE_Q4_1 ? 32 : 16;
    const size_t side = fc_cpu_act_side_offset(FC_DTYPE_A16, K);
    const __m512i m4 = _mm512_set1_epi16(0x0F);
    __m512 acc[MAXT];
    UNROLL for (int t = 0; t < TT; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g0 = w0 + (size_t)b * gbs, *g1 = w1 + (size_t)b * gbs;
        const uint8_t *q0 = g0 + hb, *q1 = g1 + hb;
        /* token t's code pairs at xb + t * xs + 4 p */
        const uint8_t *xb = xa + (size_t)b * sizeof(fc_block_a16) + 4;
        __m512i is0[MAXT], is1[MAXT];
        if (BT == FC_DTYPE_Q8_0) {
            UNROLL for (int p = 0; p < 16; p += 2) {
                const __m512i v0 = _mm512_cvtepi8_epi16(join(q0 + 16 * p, q1 + 16 * p));
                const __m512i v1 = _mm512_cvtepi8_epi16(join(q0 + 16 * p + 16, q1 + 16 * p + 16));
                UNROLL for (int t = 0; t < TT; t++) {
                    is0[t] = dp_bcast(is0[t], v0, xb + (size_t)t * xs + 4 * p, p == 0);
                    is1[t] = dp_bcast(is1[t], v1, xb + (size_t)t * xs + 4 * p + 4, p == 0);
                }
            }
        } else {
            UNROLL for (int c = 0; c < 8; c++) {
                const __m512i v = _mm512_cvtepu8_epi16(join(q0 + 16 * c, q1 + 16 * c));
                const __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_srli_epi16(v, 4);
                UNROLL for (int t = 0; t < TT; t++) {
                    is0[t] = dp_bcast(is0[t], lo, xb + (size_t)t * xs + 4 * c, c == 0);
                    is1[t] = dp_bcast(is1[t], hi, xb + (size_t)t * xs + 4 * c + 32, c == 0);
                }
            }
        }
        const __m512 d = _mm512_cvtph_ps(join(g0, g1));
        __m512 off = d;
        if (BT == FC_DTYPE_Q4_1) off = _mm512_cvtph_ps(join(g0 + 16, g1 + 16));
        if (BT == FC_DTYPE_Q4_0) off = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
        UNROLL for (int t = 0; t < TT; t++) {
            const float *sd = (const float *)(xa + (size_t)t * xs + side);
            const __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(is0[t], is1[t]));
            acc[t] = _mm512_fmadd_ps(f, _mm512_mul_ps(d, _mm512_set1_ps(sd[b])), acc[t]);
            if (BT != FC_DTYPE_Q8_0) acc[t] = _mm512_fmadd_ps(off, _mm512_set1_ps(sd[nbp + b]), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < TT; t++) _mm512_storeu_ps(y + (int64_t)t * ys, acc[t]);
}

typedef void (*x16_fn)(const uint8_t *w0, const uint8_t *w1, int64_t K, const uint8_t *xa, size_t xs,
                       float *y, int64_t ys);
#define DEF_ONE(PT, name, n)                                                                          \
    NOINLINE void name##_##n(const uint8_t *w0, const uint8_t *w1, int64_t K, const uint8_t *xa,      \
                             size_t xs, float *y, int64_t ys)                                         \
    { tile_x16(PT, n, w0, w1, K, xa, xs, y, ys); }
#define DEF_SET(PT, name)                                                                 \
    DEF_ONE(PT, name, 1) DEF_ONE(PT, name, 2) DEF_ONE(PT, name, 3) DEF_ONE(PT, name, 4)   \
    DEF_ONE(PT, name, 5) DEF_ONE(PT, name, 6) DEF_ONE(PT, name, 7) DEF_ONE(PT, name, 8)   \
    static const x16_fn name[MAXT] = { name##_1, name##_2, name##_3, name##_4,           \
                                       name##_5, name##_6, name##_7, name##_8 };
DEF_SET(FC_DTYPE_Q4_0_X8, x16_q4_0)
DEF_SET(FC_DTYPE_Q4_1_X8, x16_q4_1)
DEF_SET(FC_DTYPE_Q8_0_X8, x16_q8_0)

void fc_cpu_matmul_x16_avx512(int ptype, const uint8_t *w, size_t w_stride, int64_t K,
                              const uint8_t *xa, size_t xa_stride, int T,
                              float *y, int64_t y_stride, int64_t r0, int64_t r1,
                              size_t prefetch_bytes, size_t token_block_bytes)
{
    const x16_fn *fn = ptype == FC_DTYPE_Q4_0_X8 ? x16_q4_0 : ptype == FC_DTYPE_Q4_1_X8 ? x16_q4_1 : x16_q8_0;
    const size_t gbytes = 8 * w_stride;
    FC_ASSERT(r0 % 8 == 0 && (r1 - r0) % 16 == 0);
    if (T == 1) {
        const size_t end = (size_t)r1 * w_stride;
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t *g = w + (size_t)r * w_stride;
            const size_t pf = (size_t)r * w_stride + prefetch_bytes;
            if (prefetch_bytes && pf + 2 * gbytes <= end)
                for (size_t o = 0; o < 2 * gbytes; o += 64) _mm_prefetch((const char *)w + pf + o, _MM_HINT_T0);
            fn[0](g, g + gbytes, K, xa, 0, y + r, 0);
        }
        return;
    }
    int tb = (int)(token_block_bytes / (xa_stride ? xa_stride : 1));
    tb = tb < MAXT ? MAXT : tb - tb % MAXT;
    for (int t0 = 0; t0 < T; t0 += tb) {
        const int t1 = FC_MIN(T, t0 + tb);
        for (int64_t r = r0; r < r1; r += 16) {
            const uint8_t *g = w + (size_t)r * w_stride;
            for (int t = t0; t < t1; t += MAXT) {
                const int n = FC_MIN(MAXT, t1 - t);
                fn[n - 1](g, g + gbytes, K, xa + (size_t)t * xa_stride, xa_stride, y + (int64_t)t * y_stride + r, y_stride);
            }
        }
    }
}

#endif /* FC_CPU_AVX512 */
