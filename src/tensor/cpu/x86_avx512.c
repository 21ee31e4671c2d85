/*
 * x86_avx512.c: AVX-512 kernels (F, BW, VL; VNNI where present) of the fast
 * matmul on row-interleaved weights (q4_0x8, q4_1x8, q8_0x8, pack.c) with
 * 16-bit activations.
 *
 * Compiled only when the compiler targets AVX-512 (FC_CPU_AVX512 in
 * cpu_impl.h); x86_avx2.c hands it the rows it can take in pairs of 8-row
 * groups and keeps an odd last group, and every q4_K / q6_K product (end
 * of this file).
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
#if FC_CPU_AMX
    if (T >= FC_AMX_MIN_T(ptype) && fc_cpu_amx_ready() &&
        fc_cpu_matmul_x16_amx(ptype, w, w_stride, K, xa, xa_stride, T, y, y_stride, r0, r1))
        return;
#endif
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

/* ---- K-quant weights (q4_K, q6_K) against q8_K activations ----
 *
 * As the AVX2 tiles (x86_avx2.c), but 64 values per instruction: the codes
 * of two 32-value groups (q4_K) or four 16-value groups (q6_K) fill one
 * register, one vpmaddubsw multiplies them by 64 activation bytes, and one
 * vpdpwssd (VNNI; else vpmaddwd + vpaddd) weighs the int16 pair sums by
 * the groups' integer sub-scales (spread over their lanes by one vpermw)
 * and adds them to the int32 sums. The sums of the two 256-bit halves are
 * folded once per super-block and finished as in the AVX2 tiles.
 */
#define KRR 4 /* rows of the single-token tile */
#define KMR 2 /* rows x ... */
#define KMT 4 /* ... tokens of the prefill tile */

INLINE __m512i dpwssd(__m512i acc, __m512i a, __m512i b)
{
#ifdef __AVX512VNNI__
    return _mm512_dpwssd_epi32(acc, a, b);
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(a, b));
#endif
}

INLINE __m512i cat256(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }
INLINE __m256i fold512(__m512i v) { return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)); }
INLINE __m256i ldu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }
INLINE float hsum256(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* vpermw indices: lanes 0-15 take int16 a, lanes 16-31 int16 b (q4_K), or
 * four runs of 8 lanes take a..a+3 (q6_K) */
INLINE __m512i idx2(int a, int b)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
}
INLINE __m512i idx4(int a)
{
    const __m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)(a + 1)), _mm_set1_epi16((short)a));
    const __m256i hi = _mm256_set_m128i(_mm_set1_epi16((short)(a + 3)), _mm_set1_epi16((short)(a + 2)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

INLINE void tile_q4K_512(const int RR, const int TT, const uint8_t *w, size_t ws, int64_t K,
                         const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    const int64_t nb = K / FC_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[KRR][KMT];
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const fc_block_q4_K *wb[KRR];
        const fc_block_q8_K *xb[KMT];
        __m512i sc16[KRR];
        __m256i mins[KRR];
        float d[KRR], dmin[KRR];
        UNROLL for (int r = 0; r < RR; r++) {
            uint8_t sc[8], mn[8];
            wb[r] = (const fc_block_q4_K *)(w + (size_t)r * ws) + i;
            fc_cpu_k4_scales(wb[r]->scales, sc, mn);
            sc16[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc)));
            const __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);
            mins[r] = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
            d[r] = _cvtsh_ss(wb[r]->d);
            dmin[r] = _cvtsh_ss(wb[r]->dmin);
        }
        UNROLL for (int t = 0; t < TT; t++) xb[t] = (const fc_block_q8_K *)(xa + (size_t)t * xs) + i;
        __m512i isum[KRR][KMT];
        UNROLL for (int r = 0; r < RR; r++)
            UNROLL for (int t = 0; t < TT; t++) isum[r][t] = _mm512_setzero_si512();
        UNROLL for (int j = 0; j < 4; j++) {
            /* values 64j .. 64j+63: groups 2j (low nibbles) and 2j+1 (high) */
            const __m512i ix = idx2(2 * j, 2 * j + 1);
            UNROLL for (int r = 0; r < RR; r++) {
                const __m256i q = ldu256(wb[r]->qs + 32 * j);
                const __m512i c = cat256(_mm256_and_si256(q, m4), _mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
                const __m512i s = _mm512_permutexvar_epi16(ix, sc16[r]);
                UNROLL for (int t = 0; t < TT; t++) {
                    const __m512i p = _mm512_maddubs_epi16(c, _mm512_loadu_si512(xb[t]->qs + 64 * j));
                    isum[r][t] = dpwssd(isum[r][t], p, s);
                }
            }
        }
        UNROLL for (int r = 0; r < RR; r++) {
            UNROLL for (int t = 0; t < TT; t++) {
                const __m256i ms = _mm256_madd_epi16(ldu256(xb[t]->bsums), mins[r]);
                const __m256 f = _mm256_fmsub_ps(_mm256_cvtepi32_ps(fold512(isum[r][t])), _mm256_set1_ps(d[r]),
                                                 _mm256_mul_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(dmin[r])));
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_set1_ps(xb[t]->d), acc[r][t]);
            }
        }
    }
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) y[(int64_t)t * ys + r] = hsum256(acc[r][t]);
}

INLINE void tile_q6K_512(const int RR, const int TT, const uint8_t *w, size_t ws, int64_t K,
                         const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    const int64_t nb = K / FC_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    __m256 acc[KRR][KMT];
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const fc_block_q6_K *wb[KRR];
        const fc_block_q8_K *xb[KMT];
        __m256i sc16[KRR];
        UNROLL for (int r = 0; r < RR; r++) {
            wb[r] = (const fc_block_q6_K *)(w + (size_t)r * ws) + i;
            sc16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb[r]->scales));
        }
        UNROLL for (int t = 0; t < TT; t++) xb[t] = (const fc_block_q8_K *)(xa + (size_t)t * xs) + i;
        __m512i isum[KRR][KMT];
        UNROLL for (int r = 0; r < RR; r++)
            UNROLL for (int t = 0; t < TT; t++) isum[r][t] = _mm512_setzero_si512();
        UNROLL for (int h = 0; h < 2; h++) {
            UNROLL for (int half = 0; half < 2; half++) {
                /* values 128h + 64 half + 0..63: k = 2 half and 2 half + 1 of the AVX2 tile */
                const __m512i ix = idx4(8 * h + 4 * half);
                UNROLL for (int r = 0; r < RR; r++) {
                    const __m256i ql0 = ldu256(wb[r]->ql + 64 * h), ql1 = ldu256(wb[r]->ql + 64 * h + 32);
                    const __m256i qh = ldu256(wb[r]->qh + 32 * h);
                    __m256i a, b;
                    if (half == 0) {
                        a = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
                        b = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
                    } else {
                        a = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2));
                        b = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
                    }
                    const __m512i c = cat256(a, b);
                    const __m512i s = _mm512_permutexvar_epi16(ix, _mm512_castsi256_si512(sc16[r]));
                    UNROLL for (int t = 0; t < TT; t++) {
                        const __m512i p = _mm512_maddubs_epi16(c, _mm512_loadu_si512(xb[t]->qs + 128 * h + 64 * half));
                        isum[r][t] = dpwssd(isum[r][t], p, s);
                    }
                }
            }
        }
        UNROLL for (int r = 0; r < RR; r++) {
            const float d = _cvtsh_ss(wb[r]->d);
            UNROLL for (int t = 0; t < TT; t++) {
                /* codes are stored +32: subtract 32 * sum_g sc[g] * bsums[g] */
                const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(ldu256(xb[t]->bsums), sc16[r]), 5);
                const __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(fold512(isum[r][t]), corr));
                acc[r][t] = _mm256_fmadd_ps(f, _mm256_set1_ps(d * xb[t]->d), acc[r][t]);
            }
        }
    }
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) y[(int64_t)t * ys + r] = hsum256(acc[r][t]);
}

typedef void (*k_fn)(const uint8_t *w, size_t ws, int64_t K, const uint8_t *xa, size_t xs, float *y, int64_t ys);
#define DEF_K(fn, name, RR, TT)                                                                           \
    NOINLINE void name(const uint8_t *w, size_t ws, int64_t K, const uint8_t *xa, size_t xs, float *y,    \
                       int64_t ys)                                                                        \
    { fn(RR, TT, w, ws, K, xa, xs, y, ys); }
#define DEF_KSET(fn, name)                                                                                \
    DEF_K(fn, name##_t1, KRR, 1) DEF_K(fn, name##_r1, 1, 1) DEF_K(fn, name##_m1, KMR, 1)                  \
    DEF_K(fn, name##_m2, KMR, 2) DEF_K(fn, name##_m3, KMR, 3) DEF_K(fn, name##_m4, KMR, 4)                \
    DEF_K(fn, name##_r2, 1, 2) DEF_K(fn, name##_r3, 1, 3) DEF_K(fn, name##_r4, 1, 4)                      \
    static const k_fn name[2 + 2 * KMT] = { name##_t1, name##_r1, name##_m1, name##_m2, name##_m3,        \
                                            name##_m4, name##_r1, name##_r2, name##_r3, name##_r4 };
DEF_KSET(tile_q4K_512, k_q4_K)
DEF_KSET(tile_q6K_512, k_q6_K)

bool fc_cpu_has_k_avx512(enum fc_dtype wtype) { return wtype == FC_DTYPE_Q4_K || wtype == FC_DTYPE_Q6_K; }

void fc_cpu_matmul_k_avx512(enum fc_dtype wtype, const uint8_t *w, size_t w_stride, int64_t K,
                            const uint8_t *xa, size_t xa_stride, int T,
                            float *y, int64_t y_stride, int64_t r0, int64_t r1,
                            size_t prefetch_bytes, size_t token_block_bytes)
{
    /* [0] KRR x 1, [1] 1 x 1, [2 + n - 1] KMR x n, [2 + KMT + n - 1] 1 x n tokens */
    const k_fn *fn = wtype == FC_DTYPE_Q4_K ? k_q4_K : k_q6_K;
    FC_ASSERT(fc_cpu_has_k_avx512(wtype));
    if (T == 1) {
        int64_t r = r0;
        const size_t tile_bytes = KRR * w_stride, end = (size_t)r1 * w_stride;
        for (; r + KRR <= r1; r += KRR) {
            const size_t pf = (size_t)r * w_stride + prefetch_bytes;
            if (prefetch_bytes && pf + tile_bytes <= end)
                for (size_t o = 0; o < tile_bytes; o += 64) _mm_prefetch((const char *)w + pf + o, _MM_HINT_T0);
            fn[0](w + (size_t)r * w_stride, w_stride, K, xa, 0, y + r, 0);
        }
        for (; r < r1; r++) fn[1](w + (size_t)r * w_stride, w_stride, K, xa, 0, y + r, 0);
        return;
    }
    int tb = (int)(token_block_bytes / (xa_stride ? xa_stride : 1));
    tb = tb < KMT ? KMT : tb - tb % KMT;
    for (int t0 = 0; t0 < T; t0 += tb) {
        const int t1 = FC_MIN(T, t0 + tb);
        for (int64_t r = r0; r < r1; r += KMR) {
            const int rr = (int)FC_MIN(KMR, r1 - r);
            for (int i = 0; i < rr; i += (rr == KMR ? KMR : 1)) {
                const uint8_t *wr = w + (size_t)(r + i) * w_stride;
                for (int t = t0; t < t1; t += KMT) {
                    const int n = FC_MIN(KMT, t1 - t);
                    const k_fn f = rr == KMR ? fn[2 + n - 1] : fn[2 + KMT + n - 1];
                    f(wr, w_stride, K, xa + (size_t)t * xa_stride, xa_stride, y + (int64_t)t * y_stride + r + i, y_stride);
                }
            }
        }
    }
}

#endif /* FC_CPU_AVX512 */
