/*
 * x86_avx2.c: AVX2 + FMA + F16C kernels (suffix _avx2) of the fast ops.
 *
 * Compiled only when the compiler targets those extensions (FC_CPU_AVX2 in
 * cpu_impl.h); ops_cpu.c then routes the weight types listed in
 * fc_cpu_has_avx2() here and the rest to generic.c.
 *
 * ---- How the quantized matmul is organized ----
 * Integer products: a weight block's unsigned codes (q4: 0..15, q5: 0..31,
 * q6: 0..63) times the signed int8 activation codes with vpmaddubsw (pairs
 * summed to int16, no overflow for these ranges), widened and paired again
 * with vpmaddwd (by 1, or by the K types' integer sub-scales) to 8 int32
 * lanes. q8_0 weights are signed: |w| times sign(x, w) gives the same sums.
 * With 16-bit activations (a16, the default) the codes are widened to
 * int16 instead and multiplied by vpmaddwd alone (two per 32 values): about
 * a fifth more work in prefill, none measurable in decode, and the logits of
 * the default model within 0.05 of the f32 result instead of 3.
 * Offsets (q4_0's -8, q5_0's -16, q4_1's m) never touch the integer work:
 * they factor into one product per block with the activation block sum s
 * (cpu_impl.h), c * s, added to the f32 accumulators.
 *
 * Register tiles: every kernel computes an RR x TT tile (weight rows x
 * tokens) at once. A weight block is loaded and unpacked once per row and
 * used for TT tokens; an activation block is loaded once per token and
 * used for RR rows. On Zen 3 vpmaddubsw, vpmaddwd, vmulps and the FMAs all
 * issue to the same two pipes, so that is the budget to spend: per (row,
 * token, 32 values) the 32-value types pay maddubs + madd + fma (their
 * block scale products are formed eight blocks per vmulps beforehand), the
 * K types maddubs + madd (their sub-scales are integers, applied by the
 * madd) and convert once per 256 values.
 * T = 1 (decode) uses 4 x 1 tiles: four weight streams share each
 * activation load, and the weights are prefetched a few KiB ahead. T > 1
 * (prefill, batched decode) uses 2 x 4 tiles and walks tokens in blocks
 * sized so their activations stay in L2 while the weights of a row pair
 * sit in L1.
 *
 * Exact mode dequantizes 4 rows at a time (bit-identical to quant_ref.c:
 * the same f32 products, never fused) into a stack buffer and runs f32
 * 4 x 3 tiles on it; f16 / bf16 / f32 weights take the same path for T > 1
 * (vcvtph2ps ymm is too slow to redo for every token).
 *
 * AVX-512 (x86_avx512.c) takes over, where the compiler targets it, the
 * packed weights (16 rows per instruction) and q4_K / q6_K (64 values per
 * instruction); vpdpwssd (VNNI) is used where present, in both files.
 * Not here: AVX2 kernels for q2_K, q3_K, q5_K (generic.c serves them).
 */
#include "cpu_impl.h"

#if FC_CPU_AVX2

#include "base/fc_base.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
/* Tile arrays are sized for the largest tile so they are not VLAs (which
 * would live in memory); the unrolled loops touch only [RR][TT]. */
#define MAXR 4
#define MAXT 4
#define UNROLL _Pragma("GCC unroll 8")
/* Pins a running int32 sum in a register at this point: without it GCC
 * reassociates the unrolled chain of adds into one sum tree at the end and
 * spills every product on the way. */
#define PIN(v) __asm__("" : "+x"(v))
#define NOINLINE static __attribute__((noinline))

/* ---- small helpers ---- */

INLINE float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE uint16_t ld16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
INLINE uint32_t ld32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
INLINE __m256i ldu256(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* An f16 at p widened and broadcast to 8 lanes. */
INLINE __m256 bcast_h(const void *p)
{
    return _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(ld16(p))));
}

/* 16 packed nibbles -> 32 bytes: the low nibbles (values 0..15) in the low
 * lane, the high nibbles (values 16..31) in the high lane. */
INLINE __m256i q4_unpack(const uint8_t *qs)
{
    const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    return _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
                            _mm256_set1_epi8(0x0F));
}

/* q5's 32 high bits (bit j = value j) -> 32 bytes of 0x10 or 0. */
INLINE __m256i q5_high(const uint8_t *qh)
{
    __m256i v = _mm256_set1_epi32((int)ld32(qh));
    v = _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* ---- 32-value block types (q4_0, q4_1, q5_0, q5_1, q8_0) ---- */

/* Byte layout of each type's block (quant_ref.c). */
INLINE size_t wblk_size(const int WT)
{
    return WT == FC_DTYPE_Q4_0 ? 18 : WT == FC_DTYPE_Q4_1 ? 20 : WT == FC_DTYPE_Q5_0 ? 22
         : WT == FC_DTYPE_Q5_1 ? 24 : 34;
}
/* Activation blocks (q8_0, q8_1 or a16): size and where the codes start. */
INLINE size_t act_blk_size(const int AT) { return AT == FC_DTYPE_A16 ? 68 : AT == FC_DTYPE_Q8_1 ? 36 : 34; }
INLINE size_t act_qs_off(const int AT) { return AT == FC_DTYPE_A16 ? 4 : AT == FC_DTYPE_Q8_1 ? 4 : 2; }

/* The block's 32 codes in value order (q8_0: the raw signed bytes). */
INLINE __m256i codes32(const int WT, const uint8_t *blk)
{
    switch (WT) {
    case FC_DTYPE_Q4_0: return q4_unpack(blk + 2);
    case FC_DTYPE_Q4_1: return q4_unpack(blk + 4);
    case FC_DTYPE_Q5_0: return _mm256_or_si256(q4_unpack(blk + 6), q5_high(blk + 2));
    case FC_DTYPE_Q5_1: return _mm256_or_si256(q4_unpack(blk + 8), q5_high(blk + 4));
    default:            return ldu256(blk + 2);
    }
}

/* The block's 32 codes widened to int16 for a16 activations: values 0..15
 * in lo, 16..31 in hi (q8_0: signed). */
INLINE void codes16(const int WT, const uint8_t *blk, __m256i *lo, __m256i *hi)
{
    if (WT == FC_DTYPE_Q4_0 || WT == FC_DTYPE_Q4_1) {
        /* byte j holds value j (low nibble) and j + 16 (high nibble) */
        const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(blk + (WT == FC_DTYPE_Q4_0 ? 2 : 4))));
        *lo = _mm256_and_si256(b, _mm256_set1_epi16(0x0F));
        *hi = _mm256_srli_epi16(b, 4);
    } else if (WT == FC_DTYPE_Q8_0) {
        *lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 2)));
        *hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(blk + 18)));
    } else {
        const __m256i c = codes32(WT, blk);
        *lo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(c));
        *hi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(c, 1));
    }
}

/* sum_j code_j * x_j of one block in 8 int32 lanes, x: 32 int16 codes. */
INLINE __m256i dot16(__m256i lo, __m256i hi, const uint8_t *xq)
{
    return _mm256_add_epi32(_mm256_madd_epi16(lo, ldu256(xq)), _mm256_madd_epi16(hi, ldu256(xq + 32)));
}

/* Per-block offset coefficient c of  value = dw * code + c  (see header):
 * which f16 of the block holds it, and the factor applied to it. */
INLINE size_t off_field(const int WT) { return (WT == FC_DTYPE_Q4_1 || WT == FC_DTYPE_Q5_1) ? 2 : 0; }
INLINE float off_factor(const int WT)
{
    return WT == FC_DTYPE_Q4_0 ? -8.0f : WT == FC_DTYPE_Q5_0 ? -16.0f : 1.0f;
}
INLINE bool has_off(const int WT) { return WT != FC_DTYPE_Q8_0; }

/* The activation side table of token row xr (cpu_impl.h). */
INLINE const float *side_d(const int AT, const uint8_t *xr, int64_t nb)
{
    return (const float *)(xr + fc_cpu_round32((size_t)nb * act_blk_size(AT)));
}

/*
 * Decode tile: RR rows x 1 token. Per row and block the f16 pair at the
 * block head (d and m, or d and the first code bytes) is widened once;
 * times the activation's (d, s) it gives both the scale of the integer dot
 * (lane 0) and the offset term c * s (lane 1), which a per-row xmm
 * accumulator collects. Four rows share each activation load.
 */
INLINE void tile32_t1(const int WT, const int AT, const int RR, const uint8_t *w, size_t ws, int64_t K,
                      const uint8_t *xa, float *y)
{
    const int64_t nb = K / FC_QK;
    const size_t wbs = wblk_size(WT), xbs = act_blk_size(AT), xqo = act_qs_off(AT);
    const float *xd = side_d(AT, xa, nb), *xsum = xd + fc_cpu_act_nbp(K);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[MAXR];
    __m128 off[MAXR];
    UNROLL for (int r = 0; r < RR; r++) {
        acc[r] = _mm256_setzero_ps();
        off[r] = _mm_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const __m256i xv = AT == FC_DTYPE_A16 ? _mm256_setzero_si256() : ldu256(xa + (size_t)b * xbs + xqo);
        const __m128 ds = _mm_unpacklo_ps(_mm_load_ss(xd + b), _mm_load_ss(xsum + b)); /* dx, s */
        UNROLL for (int r = 0; r < RR; r++) {
            const uint8_t *blk = w + (size_t)r * ws + (size_t)b * wbs;
            __m256i v;
            if (AT == FC_DTYPE_A16) {
                __m256i lo, hi;
                codes16(WT, blk, &lo, &hi);
                v = dot16(lo, hi, xa + (size_t)b * xbs + xqo);
            } else {
                const __m256i raw = codes32(WT, blk);
                if (WT == FC_DTYPE_Q8_0)
                    v = _mm256_maddubs_epi16(_mm256_sign_epi8(raw, raw), _mm256_sign_epi8(xv, raw));
                else
                    v = _mm256_maddubs_epi16(raw, xv);
                v = _mm256_madd_epi16(v, ones);
            }
            __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)ld32(blk))); /* (d, m) or (d, junk) */
            if (has_off(WT) && !off_field(WT)) dm = _mm_moveldup_ps(dm); /* (d, d) */
            const __m128 p = _mm_mul_ps(dm, ds);          /* (d dx, c s) */
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_broadcastss_ps(p), acc[r]);
            if (has_off(WT)) off[r] = _mm_add_ps(off[r], p);
        }
    }
    UNROLL for (int r = 0; r < RR; r++) {
        float sum = hsum_ps(acc[r]);
        if (has_off(WT)) sum += off_factor(WT) * _mm_cvtss_f32(_mm_movehdup_ps(off[r]));
        y[r] = sum;
    }
}

/*
 * Prefill tile: RR rows x TT tokens. pre holds, per row, the f32 scales
 * dw[0..nb) and offsets c[0..nb) (already times off_factor), widened once
 * per row for a whole token block by pre32() (both zero-padded to nbp, like
 * the activation side table, so 8 are loaded at a time). For each chunk of
 * SB blocks the tile first forms every scale product dw * dx it will need,
 * eight blocks per multiply, and adds the offset terms c * s, so the inner
 * loop pays per (row, token, block) only maddubs + madd + fma on the two
 * multiply pipes plus a convert and a broadcast load.
 */
#define SB 32

INLINE void tile32(const int WT, const int AT, const int RR, const int TT,
                   const uint8_t *w, size_t ws, int64_t K,
                   const uint8_t *xa, size_t xs, float *y, int64_t ys, const float *pre)
{
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    const size_t wbs = wblk_size(WT), xbs = act_blk_size(AT), xqo = act_qs_off(AT);
    const size_t side = fc_cpu_round32((size_t)nb * xbs);
    const __m256i ones = _mm256_set1_epi16(1);
    float S[MAXR * MAXT * SB] __attribute__((aligned(32))); /* [r][t][block in chunk] */
    __m256 acc[MAXR][MAXT];
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) acc[r][t] = _mm256_setzero_ps();

    for (int64_t b0 = 0; b0 < nb; b0 += SB) {
        const int64_t bn = FC_MIN(SB, nb - b0);
        /* scale products for the chunk, and the offset terms c * s folded
         * straight into the accumulators (their lanes are summed anyway) */
        for (int64_t j = 0; j < bn; j += 8) {
            __m256 dx[MAXT], sx[MAXT];
            UNROLL for (int t = 0; t < TT; t++) {
                const float *xd = (const float *)(xa + (size_t)t * xs + side);
                dx[t] = _mm256_loadu_ps(xd + b0 + j);
                if (has_off(WT)) sx[t] = _mm256_loadu_ps(xd + nbp + b0 + j);
            }
            UNROLL for (int r = 0; r < RR; r++) {
                const float *pr = pre + (size_t)r * 2 * nbp;
                const __m256 dw = _mm256_loadu_ps(pr + b0 + j);
                const __m256 c = has_off(WT) ? _mm256_loadu_ps(pr + nbp + b0 + j) : dw;
                UNROLL for (int t = 0; t < TT; t++) {
                    _mm256_store_ps(S + (r * TT + t) * SB + j, _mm256_mul_ps(dw, dx[t]));
                    if (has_off(WT)) acc[r][t] = _mm256_fmadd_ps(c, sx[t], acc[r][t]);
                }
            }
        }
        for (int64_t b = b0; b < b0 + bn; b++) {
            UNROLL for (int r = 0; r < RR; r++) {
                const uint8_t *blk = w + (size_t)r * ws + (size_t)b * wbs;
                if (AT == FC_DTYPE_A16) {
                    __m256i lo, hi;
                    codes16(WT, blk, &lo, &hi);
                    UNROLL for (int t = 0; t < TT; t++) {
                        const __m256i v = dot16(lo, hi, xa + (size_t)t * xs + (size_t)b * xbs + xqo);
                        acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_broadcast_ss(S + (r * TT + t) * SB + (b - b0)),
                                                    acc[r][t]);
                    }
                    continue;
                }
                const __m256i raw = codes32(WT, blk);
                const __m256i c = WT == FC_DTYPE_Q8_0 ? _mm256_sign_epi8(raw, raw) : raw;
                UNROLL for (int t = 0; t < TT; t++) {
                    __m256i xv = ldu256(xa + (size_t)t * xs + (size_t)b * xbs + xqo);
                    if (WT == FC_DTYPE_Q8_0) xv = _mm256_sign_epi8(xv, raw);
                    const __m256i v = _mm256_madd_epi16(_mm256_maddubs_epi16(c, xv), ones);
                    acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), _mm256_broadcast_ss(S + (r * TT + t) * SB + (b - b0)),
                                                acc[r][t]);
                }
            }
        }
    }
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) y[(int64_t)t * ys + r] = hsum_ps(acc[r][t]);
}

/* Fills pre for rows w[0..rr) of a 32-value type: per row dw[nbp] then
 * c[nbp], zero after the nb used entries (see tile32). */
static void pre32(enum fc_dtype wtype, const uint8_t *w, size_t ws, int64_t nb, int rr, float *pre)
{
    const size_t wbs = wblk_size(wtype);
    const bool has_m = off_field(wtype) != 0;
    const float f = off_factor(wtype);
    const int64_t nbp = (nb + 7) & ~(int64_t)7;
    for (int r = 0; r < rr; r++) {
        const uint8_t *blk = w + (size_t)r * ws;
        float *dw = pre + (size_t)r * 2 * nbp, *c = dw + nbp;
        for (int64_t b = 0; b < nb; b++, blk += wbs) {
            dw[b] = _cvtsh_ss(ld16(blk));
            c[b] = has_m ? _cvtsh_ss(ld16(blk + 2)) : f * dw[b];
        }
        for (int64_t b = nb; b < nbp; b++) dw[b] = c[b] = 0.0f;
    }
}

/* ---- row-interleaved weights (q4_0x8, q4_1x8, q8_0x8; pack.c) with a16 ----
 *
 * A group block holds 8 rows' blocks of one block column; each 16-byte
 * chunk of its codes widens (vpmovzxbw / vpmovsxbw) to 8 rows x one value
 * pair (two pairs for the 4-bit types: AND and shift), and one vpmaddwd
 * with the activation pair broadcast adds to all 8 rows' sums at once, in
 * int32 lane r for row r. Per block and token the 8 rows then share one
 * convert, one scale product and one FMA (and one for the offset), where
 * the plain layout pays a convert and two FMAs per row. The group's bytes
 * are one sequential stream, which the hardware prefetcher follows alone.
 * Tiles are 8 rows x TT tokens; weights are widened once per group block
 * and used for the TT tokens.
 */
/* acc (+)= the int16 pair products of w and the int32 at p broadcast to
 * all lanes, summed per int32 lane; first: the sum starts here (acc is
 * ignored). With AVX-512 VNNI one vpdpwssd with the broadcast folded in
 * ({1to8}); else a broadcast load and vpdpwssd (AVX-VNNI) or vpmaddwd +
 * vpaddd. In asm because GCC otherwise hoists a whole block's broadcasts,
 * materializes them as vectors on the stack and reads them back. */
INLINE __m256i dp_bcast(__m256i acc, __m256i w, const void *p, const bool first)
{
    const int32_t *m = p;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    if (first) acc = _mm256_setzero_si256();
    __asm__("vpdpwssd %[x]%{1to8%}, %[w], %[a]" : [a] "+v"(acc) : [w] "v"(w), [x] "m"(*m));
    return acc;
#else
    __m256i x;
    __asm__("vpbroadcastd %[m], %[x]" : [x] "=x"(x) : [m] "m"(*m));
#if defined(__AVXVNNI__)
    if (first) acc = _mm256_setzero_si256();
    return _mm256_dpwssd_avx_epi32(acc, w, x);
#else
    const __m256i r = _mm256_madd_epi16(w, x);
    return first ? r : _mm256_add_epi32(acc, r);
#endif
#endif
}

#define X8_MAXT 6
INLINE void tile_x8(const int PT, const int TT, const uint8_t *w, int64_t K,
                    const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    /* the base type as a constant (fc_pack_base_type is out of line: the
     * tiles then branched on it per block and computed the strides) */
    const int BT = PT == FC_DTYPE_Q4_0_X8 ? FC_DTYPE_Q4_0 : PT == FC_DTYPE_Q4_1_X8 ? FC_DTYPE_Q4_1 : FC_DTYPE_Q8_0;
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    const size_t gbs = 8 * wblk_size(BT), hb = BT == FC_DTYPE_Q4_1 ? 32 : 16;
    const size_t side = fc_cpu_round32((size_t)nb * sizeof(fc_block_a16));
    const float *xd[X8_MAXT], *xsum[X8_MAXT];
    __m256 acc[X8_MAXT];
    UNROLL for (int t = 0; t < TT; t++) {
        xd[t] = (const float *)(xa + (size_t)t * xs + side);
        xsum[t] = xd[t] + nbp;
        acc[t] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi16(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = w + (size_t)b * gbs, *qs = gb + hb;
        const uint8_t *xq[X8_MAXT];
        /* one running int32 sum per token, pinned (PIN) after every add:
         * left free, GCC formed all 64 products of a 4-token block first,
         * spilled them and summed them as a tree (x8_*_4 read and wrote the
         * stack ~230 times per block; batched decode ran at ~32 GMAC/s per
         * core, now ~44). Integer sums: the result is bit-identical. */
        __m256i is[X8_MAXT];
        UNROLL for (int t = 0; t < TT; t++) {
            xq[t] = xa + (size_t)t * xs + (size_t)b * sizeof(fc_block_a16) + 4;
        }
        if (BT == FC_DTYPE_Q8_0) {
            UNROLL for (int p = 0; p < 16; p += 2) {
                const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16 * p)));
                const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16 * p + 16)));
                UNROLL for (int t = 0; t < TT; t++) {
                    is[t] = dp_bcast(is[t], w0, xq[t] + 4 * p, p == 0);
                    PIN(is[t]);
                    is[t] = dp_bcast(is[t], w1, xq[t] + 4 * p + 4, false);
                    PIN(is[t]);
                }
            }
        } else {
            UNROLL for (int c = 0; c < 8; c++) {
                const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16 * c)));
                const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_srli_epi16(v, 4);
                UNROLL for (int t = 0; t < TT; t++) {
                    is[t] = dp_bcast(is[t], lo, xq[t] + 4 * c, c == 0);
                    PIN(is[t]);
                    is[t] = dp_bcast(is[t], hi, xq[t] + 4 * c + 32, false);
                    PIN(is[t]);
                }
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)gb));
        __m256 c = d;
        if (BT == FC_DTYPE_Q4_1) c = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + 16)));
        if (BT == FC_DTYPE_Q4_0) c = _mm256_mul_ps(d, _mm256_set1_ps(-8.0f));
        UNROLL for (int t = 0; t < TT; t++) {
            const __m256 f = _mm256_cvtepi32_ps(is[t]);
            acc[t] = _mm256_fmadd_ps(f, _mm256_mul_ps(d, _mm256_broadcast_ss(xd[t] + b)), acc[t]);
            if (BT != FC_DTYPE_Q8_0) acc[t] = _mm256_fmadd_ps(c, _mm256_broadcast_ss(xsum[t] + b), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < TT; t++) _mm256_storeu_ps(y + (int64_t)t * ys, acc[t]);
}

/* Tokens per tile: 6 (the weights' unpacking shared by more tokens; the
 * 6 int32 sums, 6 f32 accumulators and 2 weight vectors fit the 16 ymm
 * registers) ran ~5% faster than 4 at T = 32..40 on Zen 3; 8 spilled the
 * token pointers even with AVX-512's 32 vector registers. */
#define X8_TT 6
typedef void (*x8_fn)(const uint8_t *w, int64_t K, const uint8_t *xa, size_t xs, float *y, int64_t ys);
#define DEF_X8_ONE(PT, name, n) \
    NOINLINE void name##_##n(const uint8_t *w, int64_t K, const uint8_t *xa, size_t xs, float *y, int64_t ys) \
    { tile_x8(PT, n, w, K, xa, xs, y, ys); }
#define DEF_X8(PT, name)                                                                         \
    DEF_X8_ONE(PT, name, 1) DEF_X8_ONE(PT, name, 2) DEF_X8_ONE(PT, name, 3) DEF_X8_ONE(PT, name, 4) \
    DEF_X8_ONE(PT, name, 5) DEF_X8_ONE(PT, name, 6) \
    static const x8_fn name[X8_TT] = { name##_1, name##_2, name##_3, name##_4, name##_5, name##_6 };
DEF_X8(FC_DTYPE_Q4_0_X8, x8_q4_0)
DEF_X8(FC_DTYPE_Q4_1_X8, x8_q4_1)
DEF_X8(FC_DTYPE_Q8_0_X8, x8_q8_0)

/* ---- q4_K ---- */

/*
 * Per row and super-block the K tiles first unpack the sub-scales to int16
 * lanes (one vpshufb then broadcasts the one a 32-value group needs) and
 * park the rest (struct krow) in memory, so the loop over 32-value groups
 * pays per (row, token) only maddubs + madd (by the integer sub-scale) +
 * add into int32 sums, converted to f32 once per 256 values.
 */
struct krow {
    __m256i mins;      /* q4_K: mins[g] in int16 lanes 2g, 2g+1 (to pair with bsums) */
    float d, dmin;
};

/* vpshufb controls that broadcast int16 lane j of a 128-bit lane */
static const int8_t bcast16_ctl[8][32] __attribute__((aligned(32))) = {
#define C(j) { 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, \
               2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1, 2*j, 2*j+1 }
    C(0), C(1), C(2), C(3), C(4), C(5), C(6), C(7),
#undef C
};

INLINE void tile_q4K(const int RR, const int TT, const uint8_t *w, size_t ws, int64_t K,
                     const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    const int64_t nb = K / FC_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    struct krow kr[MAXR];
    __m256 acc[MAXR * MAXT];
    UNROLL for (int i = 0; i < RR * TT; i++) acc[i] = _mm256_setzero_ps();

    for (int64_t i = 0; i < nb; i++) {
        const fc_block_q4_K *wb[MAXR];
        const fc_block_q8_K *xb[MAXT];
        __m256i sc16[MAXR]; /* the 8 sub-scales as int16, in both 128-bit lanes */
        UNROLL for (int r = 0; r < RR; r++) {
            uint8_t sc[8], mn[8];
            wb[r] = (const fc_block_q4_K *)(w + (size_t)r * ws) + i;
            fc_cpu_k4_scales(wb[r]->scales, sc, mn);
            const __m128i s8 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)sc));
            sc16[r] = _mm256_set_m128i(s8, s8);
            const __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);
            kr[r].mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
            kr[r].d = _cvtsh_ss(wb[r]->d);
            kr[r].dmin = _cvtsh_ss(wb[r]->dmin);
        }
        UNROLL for (int t = 0; t < TT; t++) xb[t] = (const fc_block_q8_K *)(xa + (size_t)t * xs) + i;

        __m256i isum[MAXR][MAXT];
        UNROLL for (int r = 0; r < RR; r++)
            UNROLL for (int t = 0; t < TT; t++) isum[r][t] = _mm256_setzero_si256();
        UNROLL for (int j = 0; j < 8; j++) {
            const __m256i ctl = _mm256_load_si256((const __m256i *)bcast16_ctl[j]);
            UNROLL for (int r = 0; r < RR; r++) {
                /* sub-block j = nibble j%2 of qs[32*(j/2) ..] */
                const __m256i q = ldu256(wb[r]->qs + 32 * (j / 2));
                const __m256i c = (j & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
                const __m256i sj = _mm256_shuffle_epi8(sc16[r], ctl);
                UNROLL for (int t = 0; t < TT; t++) {
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(c, ldu256(xb[t]->qs + 32 * j)), sj);
                    isum[r][t] = _mm256_add_epi32(isum[r][t], p);
                    PIN(isum[r][t]);
                }
            }
        }
        UNROLL for (int r = 0; r < RR; r++) {
            UNROLL for (int t = 0; t < TT; t++) {
                /* mins: sum_g mn[g] * (bsums[2g] + bsums[2g+1]) */
                const __m256i ms = _mm256_madd_epi16(ldu256(xb[t]->bsums), kr[r].mins);
                const __m256 f = _mm256_fmsub_ps(_mm256_cvtepi32_ps(isum[r][t]), _mm256_set1_ps(kr[r].d),
                                                 _mm256_mul_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(kr[r].dmin)));
                acc[r * TT + t] = _mm256_fmadd_ps(f, _mm256_broadcast_ss(&xb[t]->d), acc[r * TT + t]);
            }
        }
    }
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) y[(int64_t)t * ys + r] = hsum_ps(acc[r * TT + t]);
}

/* ---- q6_K ---- */

INLINE void tile_q6K(const int RR, const int TT, const uint8_t *w, size_t ws, int64_t K,
                     const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    const int64_t nb = K / FC_QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    /* vpshufb controls picking int16 scale 2k (low lane) and 2k+1 (high lane)
     * out of the 8 scales of one half, repeated in both lanes */
    static const int8_t ctl[4][32] __attribute__((aligned(32))) = {
        { 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3 },
        { 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7 },
        { 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11 },
        { 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15 },
    };
    struct krow kr[MAXR];
    __m256 acc[MAXR * MAXT];
    UNROLL for (int i = 0; i < RR * TT; i++) acc[i] = _mm256_setzero_ps();

    for (int64_t i = 0; i < nb; i++) {
        const fc_block_q6_K *wb[MAXR];
        const fc_block_q8_K *xb[MAXT];
        __m256i sc16[MAXR]; /* the 16 scales as int16 */
        UNROLL for (int r = 0; r < RR; r++) {
            wb[r] = (const fc_block_q6_K *)(w + (size_t)r * ws) + i;
            sc16[r] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)wb[r]->scales));
            kr[r].d = _cvtsh_ss(wb[r]->d);
        }
        UNROLL for (int t = 0; t < TT; t++) xb[t] = (const fc_block_q8_K *)(xa + (size_t)t * xs) + i;

        __m256i isum[MAXR][MAXT];
        UNROLL for (int r = 0; r < RR; r++)
            UNROLL for (int t = 0; t < TT; t++) isum[r][t] = _mm256_setzero_si256();
        UNROLL for (int h = 0; h < 2; h++) {
            UNROLL for (int k = 0; k < 4; k++) {
                const __m256i ck = _mm256_load_si256((const __m256i *)ctl[k]);
                UNROLL for (int r = 0; r < RR; r++) {
                    /* 6-bit codes of values 128h + 32k + l: low nibble from ql,
                     * bits 4-5 from bits 2k..2k+1 of qh */
                    const __m256i ql = ldu256(wb[r]->ql + 64 * h + 32 * (k & 1));
                    const __m256i qh = ldu256(wb[r]->qh + 32 * h);
                    const __m256i lo = k < 2 ? _mm256_and_si256(ql, m4) : _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4);
                    const __m256i hb = k == 0 ? _mm256_slli_epi16(qh, 4) : k == 1 ? _mm256_slli_epi16(qh, 2)
                                     : k == 2 ? qh : _mm256_srli_epi16(qh, 2);
                    const __m256i c = _mm256_or_si256(lo, _mm256_and_si256(hb, m2));
                    /* scales 8h+2k (low lane) and 8h+2k+1 (high lane) as int16 */
                    const __m256i sh = h ? _mm256_permute4x64_epi64(sc16[r], 0xEE) : _mm256_permute4x64_epi64(sc16[r], 0x44);
                    const __m256i sk = _mm256_shuffle_epi8(sh, ck);
                    UNROLL for (int t = 0; t < TT; t++) {
                        const __m256i p = _mm256_maddubs_epi16(c, ldu256(xb[t]->qs + 128 * h + 32 * k));
                        isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(p, sk));
                        PIN(isum[r][t]);
                    }
                }
            }
        }
        UNROLL for (int r = 0; r < RR; r++) {
            UNROLL for (int t = 0; t < TT; t++) {
                /* codes are stored +32: subtract 32 * sum_g sc[g] * bsums[g] */
                const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(ldu256(xb[t]->bsums), sc16[r]), 5);
                const __m256 f = _mm256_cvtepi32_ps(_mm256_sub_epi32(isum[r][t], corr));
                acc[r * TT + t] = _mm256_fmadd_ps(f, _mm256_set1_ps(kr[r].d * xb[t]->d), acc[r * TT + t]);
            }
        }
    }
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++) y[(int64_t)t * ys + r] = hsum_ps(acc[r * TT + t]);
}

/* ---- f32 / f16 / bf16 weights against f32 activations ---- */

INLINE __m256 wload8(const int WT, const uint8_t *w, int64_t k)
{
    switch (WT) {
    case FC_DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * k)));
    case FC_DTYPE_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + 2 * k))), 16));
    default:
        return _mm256_loadu_ps((const float *)w + k);
    }
}

INLINE float wload1(const int WT, const uint8_t *w, int64_t k)
{
    switch (WT) {
    case FC_DTYPE_F16:  return fc_f16_to_f32(ld16(w + 2 * k));
    case FC_DTYPE_BF16: return fc_bf16_to_f32(ld16(w + 2 * k));
    default:            { float f; memcpy(&f, w + 4 * k, 4); return f; }
    }
}

/* RR x TT tile of float-like weights; x rows are xs floats apart. With
 * `accum` the tile adds into y instead of storing (exact mode's chunks).
 * U independent accumulators per (row, token) hide FMA latency when the
 * tile is small. */
INLINE void tile_f(const int WT, const int RR, const int TT, const int U,
                   const uint8_t *w, size_t ws, int64_t K,
                   const float *x, int64_t xs, float *y, int64_t ys, bool accum)
{
    __m256 acc[MAXR][MAXT][2];
    UNROLL for (int r = 0; r < RR; r++)
        UNROLL for (int t = 0; t < TT; t++)
            UNROLL for (int u = 0; u < U; u++) acc[r][t][u] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 * U <= K; k += 8 * U) {
        UNROLL for (int u = 0; u < U; u++) {
            __m256 xv[MAXT];
            /* the empty asm keeps the compiler from folding these loads
             * into every FMA (16 loads per 12 FMAs instead of 7) */
            UNROLL for (int t = 0; t < TT; t++) {
                xv[t] = _mm256_loadu_ps(x + t * xs + k + 8 * u);
                __asm__("" : "+x"(xv[t]));
            }
            UNROLL for (int r = 0; r < RR; r++) {
                __m256 wv = wload8(WT, w + (size_t)r * ws, k + 8 * u);
                __asm__("" : "+x"(wv));
                UNROLL for (int t = 0; t < TT; t++) acc[r][t][u] = _mm256_fmadd_ps(wv, xv[t], acc[r][t][u]);
            }
        }
    }
    for (; k + 8 <= K; k += 8) {
        UNROLL for (int r = 0; r < RR; r++) {
            const __m256 wv = wload8(WT, w + (size_t)r * ws, k);
            UNROLL for (int t = 0; t < TT; t++)
                acc[r][t][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * xs + k), acc[r][t][0]);
        }
    }
    UNROLL for (int r = 0; r < RR; r++) {
        UNROLL for (int t = 0; t < TT; t++) {
            __m256 a = acc[r][t][0];
            UNROLL for (int u = 1; u < U; u++) a = _mm256_add_ps(a, acc[r][t][u]);
            float sum = hsum_ps(a);
            for (int64_t kk = k; kk < K; kk++) sum += wload1(WT, w + (size_t)r * ws, kk) * x[t * xs + kk];
            float *dst = &y[(int64_t)t * ys + r];
            *dst = accum ? *dst + sum : sum;
        }
    }
}

/* ---- tile instantiation and the row / token walk ---- */

typedef void (*tile_fn)(const uint8_t *w, size_t ws, int64_t K, const uint8_t *xa, size_t xs,
                        float *y, int64_t ys, const float *pre);

/* Tile shapes. T = 1 uses RR1 x 1 (and 1 x 1 for the last rows); T > 1
 * uses RRM x TTM plus RRM x 1..3 for the last tokens of a block and
 * 1 x 1..TTM for a last odd row (quantized types; f32-activation types
 * take matmul_f32_rows for T > 1). */
#define RR1 4
#define RRM 2
#define TTM 4

struct tile_set {
    tile_fn t1;          /* RR1 rows x 1 token */
    tile_fn t1r;         /* 1 row x 1 token */
    tile_fn m[TTM];      /* RRM rows x 1..TTM tokens */
    tile_fn r[TTM];      /* 1 row x 1..TTM tokens */
    bool pre;            /* m and r want pre32's scales */
};

#define TILE_ARGS const uint8_t *w, size_t ws, int64_t K, const uint8_t *xa, size_t xs, \
                  float *y, int64_t ys, const float *pre
#define DEF_ONE(name, RR_, TT_, body) \
    NOINLINE void name(TILE_ARGS) { enum { RR = RR_, TT = TT_ }; (void)xs; (void)ys; (void)pre; body; }
#define DEF_T1(name, t1body) DEF_ONE(name##_t1, RR1, 1, t1body) DEF_ONE(name##_t1r, 1, 1, t1body)
#define DEF_TILE_SET(name, t1body, body, usepre)                                                   \
    DEF_T1(name, t1body)                                                                           \
    DEF_ONE(name##_m1, RRM, 1, body) DEF_ONE(name##_m2, RRM, 2, body)                              \
    DEF_ONE(name##_m3, RRM, 3, body) DEF_ONE(name##_m4, RRM, 4, body)                              \
    DEF_ONE(name##_r1, 1, 1, body) DEF_ONE(name##_r2, 1, 2, body)                                  \
    DEF_ONE(name##_r3, 1, 3, body) DEF_ONE(name##_r4, 1, 4, body)                                  \
    static const struct tile_set name = { name##_t1, name##_t1r,                                  \
                                          { name##_m1, name##_m2, name##_m3, name##_m4 },          \
                                          { name##_r1, name##_r2, name##_r3, name##_r4 }, usepre };

#define DEF_TILE32(WT, AT, name) \
    DEF_TILE_SET(name, tile32_t1(WT, AT, RR, w, ws, K, xa, y), tile32(WT, AT, RR, TT, w, ws, K, xa, xs, y, ys, pre), true)
#define DEF_TILEK(fn, name) \
    DEF_TILE_SET(name, fn(RR, 1, w, ws, K, xa, xs, y, ys), fn(RR, TT, w, ws, K, xa, xs, y, ys), false)
/* f32-activation types: decode tiles only (T > 1 goes through matmul_f32_rows) */
#define DEF_TILEF(WT, name)                                                                        \
    DEF_T1(name, tile_f(WT, RR, 1, 2, w, ws, K, (const float *)xa, 0, y, ys, false))              \
    static const struct tile_set name = { name##_t1, name##_t1r, { NULL }, { NULL }, false };

DEF_TILE32(FC_DTYPE_Q4_0, FC_DTYPE_Q8_0, ts_q4_0)
DEF_TILE32(FC_DTYPE_Q4_1, FC_DTYPE_Q8_1, ts_q4_1)
DEF_TILE32(FC_DTYPE_Q5_0, FC_DTYPE_Q8_0, ts_q5_0)
DEF_TILE32(FC_DTYPE_Q5_1, FC_DTYPE_Q8_1, ts_q5_1)
DEF_TILE32(FC_DTYPE_Q8_0, FC_DTYPE_Q8_0, ts_q8_0)
DEF_TILE32(FC_DTYPE_Q4_0, FC_DTYPE_A16, ts_q4_0_a16)
DEF_TILE32(FC_DTYPE_Q4_1, FC_DTYPE_A16, ts_q4_1_a16)
DEF_TILE32(FC_DTYPE_Q5_0, FC_DTYPE_A16, ts_q5_0_a16)
DEF_TILE32(FC_DTYPE_Q5_1, FC_DTYPE_A16, ts_q5_1_a16)
DEF_TILE32(FC_DTYPE_Q8_0, FC_DTYPE_A16, ts_q8_0_a16)
DEF_TILEK(tile_q4K, ts_q4_K)
DEF_TILEK(tile_q6K, ts_q6_K)
DEF_TILEF(FC_DTYPE_F32, ts_f32)
DEF_TILEF(FC_DTYPE_F16, ts_f16)
DEF_TILEF(FC_DTYPE_BF16, ts_bf16)

static const struct tile_set *tiles_of(enum fc_dtype wtype, enum fc_dtype atype)
{
    if (atype == FC_DTYPE_A16) {
        switch (wtype) {
        case FC_DTYPE_Q4_0: return &ts_q4_0_a16;
        case FC_DTYPE_Q4_1: return &ts_q4_1_a16;
        case FC_DTYPE_Q5_0: return &ts_q5_0_a16;
        case FC_DTYPE_Q5_1: return &ts_q5_1_a16;
        case FC_DTYPE_Q8_0: return &ts_q8_0_a16;
        default:            return NULL;
        }
    }
    switch (wtype) {
    case FC_DTYPE_Q4_0: return &ts_q4_0;
    case FC_DTYPE_Q4_1: return &ts_q4_1;
    case FC_DTYPE_Q5_0: return &ts_q5_0;
    case FC_DTYPE_Q5_1: return &ts_q5_1;
    case FC_DTYPE_Q8_0: return &ts_q8_0;
    case FC_DTYPE_Q4_K: return &ts_q4_K;
    case FC_DTYPE_Q6_K: return &ts_q6_K;
    case FC_DTYPE_F32:  return &ts_f32;
    case FC_DTYPE_F16:  return &ts_f16;
    case FC_DTYPE_BF16: return &ts_bf16;
    default:            return NULL;
    }
}

bool fc_cpu_has_avx2(enum fc_dtype wtype)
{
    return fc_pack_base_type(wtype) != wtype || tiles_of(wtype, fc_matmul_act_type(wtype, false)) != NULL;
}

/* How far ahead of the decode tiles the weights are prefetched. */
#ifndef PREFETCH_BYTES
#define PREFETCH_BYTES 8192
#endif
/* Activation bytes of a token block kept hot in L2 while a row pair walks it. */
#ifndef TOKEN_BLOCK_BYTES
#define TOKEN_BLOCK_BYTES (192 * 1024)
#endif
/* Largest K / 32 the prefill tiles take their row scales for (K = 65536). */
#define PRE_MAX_NB 2048

static void matmul_f32_rows(enum fc_dtype wtype, const uint8_t *w, size_t w_stride, int64_t K,
                            const float *x, int64_t x_stride, int T,
                            float *y, int64_t y_stride, int64_t r0, int64_t r1);

/* Packed weights: row groups of 8, tokens in blocks whose activations stay
 * in L2 while a group's weights (8 rows) sit in L1. */
static void matmul_x8(int ptype, const uint8_t *w, size_t w_stride, int64_t K,
                      const uint8_t *xa, size_t xa_stride, int T,
                      float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    const x8_fn *fn = ptype == FC_DTYPE_Q4_0_X8 ? x8_q4_0 : ptype == FC_DTYPE_Q4_1_X8 ? x8_q4_1 : x8_q8_0;
    FC_ASSERT(r0 % 8 == 0 && r1 % 8 == 0);
#if FC_CPU_AVX512
    /* pairs of groups go to the 512-bit kernel; an odd last group stays here */
    const int64_t r16 = r0 + (r1 - r0) / 16 * 16;
    if (r16 > r0)
        fc_cpu_matmul_x16_avx512(ptype, w, w_stride, K, xa, xa_stride, T, y, y_stride, r0, r16,
                                 __atomic_load_n(&fc_cpu_prefetch_packed, __ATOMIC_RELAXED) ? PREFETCH_BYTES : 0, TOKEN_BLOCK_BYTES);
    r0 = r16;
    if (r0 == r1) return;
#endif
    if (T == 1) {
        /* software prefetch PREFETCH_BYTES ahead, when the weights are
         * likely in the LLC (fc_matmul_set_prefetch) */
        const size_t gbytes = 8 * w_stride, end = (size_t)r1 * w_stride;
        const bool prefetch = __atomic_load_n(&fc_cpu_prefetch_packed, __ATOMIC_RELAXED);
        for (int64_t r = r0; r < r1; r += 8) {
            const size_t pf = (size_t)r * w_stride + PREFETCH_BYTES;
            if (prefetch && pf + gbytes <= end)
                for (size_t o = 0; o < gbytes; o += 64) _mm_prefetch((const char *)w + pf + o, _MM_HINT_T0);
            fn[0](w + (size_t)r * w_stride, K, xa, 0, y + r, 0);
        }
        return;
    }
    int tb = (int)(TOKEN_BLOCK_BYTES / (xa_stride ? xa_stride : 1));
    tb = tb < X8_TT ? X8_TT : tb - tb % X8_TT;
    for (int t0 = 0; t0 < T; t0 += tb) {
        const int t1 = FC_MIN(T, t0 + tb);
        for (int64_t r = r0; r < r1; r += 8)
            for (int t = t0; t < t1; t += X8_TT) {
                const int n = FC_MIN(X8_TT, t1 - t);
                fn[n - 1](w + (size_t)r * w_stride, K, xa + (size_t)t * xa_stride, xa_stride,
                          y + (int64_t)t * y_stride + r, y_stride);
            }
    }
}

void fc_cpu_matmul_fast_avx2(enum fc_dtype wtype, const void *w_, size_t w_stride, int64_t K, enum fc_dtype atype,
                             const void *xa_, size_t xa_stride, int T,
                             float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    const uint8_t *w = w_, *xa = xa_;
    if (fc_pack_base_type(wtype) != wtype) {
        matmul_x8(wtype, w, w_stride, K, xa, xa_stride, T, y, y_stride, r0, r1);
        return;
    }
#if FC_CPU_AVX512
    if (fc_cpu_has_k_avx512(wtype)) {
        fc_cpu_matmul_k_avx512(wtype, w, w_stride, K, xa, xa_stride, T, y, y_stride, r0, r1,
                               PREFETCH_BYTES, TOKEN_BLOCK_BYTES);
        return;
    }
#endif
    const struct tile_set *ts = tiles_of(wtype, atype);
    FC_ASSERT(ts);
    if (T == 1) {
        int64_t r = r0;
        const size_t tile_bytes = RR1 * w_stride;
        const size_t end = (size_t)r1 * w_stride;
        for (; r + RR1 <= r1; r += RR1) {
            /* Software prefetch of the rows PREFETCH_BYTES ahead: the
             * hardware prefetchers alone left ~30% of the DRAM bandwidth
             * unused on this walk of four interleaved short streams (Zen 3,
             * 49152 x 576 q4_1: 6.5 -> 9.5 GB/s on one core). */
            const size_t pf = (size_t)r * w_stride + PREFETCH_BYTES;
            if (pf + tile_bytes <= end)
                for (size_t o = 0; o < tile_bytes; o += 64) _mm_prefetch((const char *)w + pf + o, _MM_HINT_T0);
            ts->t1(w + (size_t)r * w_stride, w_stride, K, xa, xa_stride, y + r, y_stride, NULL);
        }
        for (; r < r1; r++) ts->t1r(w + (size_t)r * w_stride, w_stride, K, xa, xa_stride, y + r, y_stride, NULL);
        return;
    }
    if (wtype == FC_DTYPE_F32 || wtype == FC_DTYPE_F16 || wtype == FC_DTYPE_BF16) {
        matmul_f32_rows(wtype, w, w_stride, K, (const float *)xa, (int64_t)(xa_stride / sizeof(float)), T,
                        y, y_stride, r0, r1);
        return;
    }
    float pre[RRM * 2 * PRE_MAX_NB];
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    FC_ASSERT(!ts->pre || nbp <= PRE_MAX_NB);
    int tb = (int)(TOKEN_BLOCK_BYTES / (xa_stride ? xa_stride : 1));
    tb = tb < TTM ? TTM : tb - tb % TTM;
    for (int t0 = 0; t0 < T; t0 += tb) {
        const int t1 = FC_MIN(T, t0 + tb);
        for (int64_t r = r0; r < r1; r += RRM) {
            const int rr = (int)FC_MIN(RRM, r1 - r);
            const uint8_t *wr = w + (size_t)r * w_stride;
            if (ts->pre) pre32(wtype, wr, w_stride, nb, rr, pre);
            if (rr == RRM) {
                for (int t = t0; t < t1; t += TTM) {
                    const int n = FC_MIN(TTM, t1 - t);
                    ts->m[n - 1](wr, w_stride, K, xa + (size_t)t * xa_stride, xa_stride, y + (int64_t)t * y_stride + r, y_stride, pre);
                }
            } else {
                for (int i = 0; i < rr; i++)
                    for (int t = t0; t < t1; t += TTM) {
                        const int n = FC_MIN(TTM, t1 - t);
                        ts->r[n - 1](wr + (size_t)i * w_stride, w_stride, K, xa + (size_t)t * xa_stride, xa_stride,
                                     y + (int64_t)t * y_stride + r + i, y_stride, pre + (size_t)i * 2 * nbp);
                    }
            }
        }
    }
}

float fc_cpu_vec_dot_avx2(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K)
{
    const struct tile_set *ts = tiles_of(wtype, atype);
    FC_ASSERT(ts);
    float y;
    ts->t1r(wrow, 0, K, xa, 0, &y, 1, NULL);
    return y;
}

/* ---- exact mode ---- */

/* Dequantizes values [k0, k0 + n) of a weight row into dst, bit-identical
 * to fc_dequantize_row_ref (same f32 products, never fused). k0 and n are
 * multiples of the block size. */
static void dequant_chunk(enum fc_dtype wtype, const uint8_t *wr, int64_t k0, int64_t n, float *dst)
{
    const int bs = fc_dtype_block_size(wtype);
    const uint8_t *p = wr + (size_t)(k0 / bs) * fc_dtype_type_size(wtype);
    switch (wtype) {
    case FC_DTYPE_Q4_0: case FC_DTYPE_Q4_1: {
        const bool q41 = wtype == FC_DTYPE_Q4_1;
        const size_t bsz = q41 ? 20 : 18;
        for (int64_t b = 0; b < n / FC_QK; b++, p += bsz, dst += FC_QK) {
            const __m256i c = q4_unpack(p + (q41 ? 4 : 2));
            const __m256 d = bcast_h(p);
            __m256i c0 = _mm256_cvtepu8_epi32(_mm256_castsi256_si128(c));
            __m256i c1 = _mm256_cvtepu8_epi32(_mm_srli_si128(_mm256_castsi256_si128(c), 8));
            __m256i c2 = _mm256_cvtepu8_epi32(_mm256_extracti128_si256(c, 1));
            __m256i c3 = _mm256_cvtepu8_epi32(_mm_srli_si128(_mm256_extracti128_si256(c, 1), 8));
            __m256i cv[4] = { c0, c1, c2, c3 };
            if (q41) {
                const __m256 m = bcast_h(p + 2);
                for (int j = 0; j < 4; j++)
                    _mm256_storeu_ps(dst + 8 * j, _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(cv[j]), d), m));
            } else {
                const __m256i eight = _mm256_set1_epi32(8);
                for (int j = 0; j < 4; j++)
                    _mm256_storeu_ps(dst + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(cv[j], eight)), d));
            }
        }
        return;
    }
    case FC_DTYPE_Q8_0:
        for (int64_t b = 0; b < n / FC_QK; b++, p += 34, dst += FC_QK) {
            const __m256 d = bcast_h(p);
            for (int j = 0; j < 4; j++) {
                const __m256i c = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 2 + 8 * j)));
                _mm256_storeu_ps(dst + 8 * j, _mm256_mul_ps(_mm256_cvtepi32_ps(c), d));
            }
        }
        return;
    case FC_DTYPE_F16: case FC_DTYPE_BF16: case FC_DTYPE_F32: {
        int64_t k = 0;
        for (; k + 8 <= n; k += 8) _mm256_storeu_ps(dst + k, wload8(wtype, p, k));
        for (; k < n; k++) dst[k] = wload1(wtype, p, k);
        return;
    }
    default: {
        bool ok = fc_dequantize_row_ref(wtype, p, dst, n);
        FC_ASSERT(ok);
        return;
    }
    }
}

void fc_cpu_dequant_chunk_avx2(enum fc_dtype wtype, const void *row, int64_t k0, int64_t n, float *dst)
{
    dequant_chunk(wtype, row, k0, n, dst);
}

#define EXACT_RR 4
#define EXACT_KC 1024 /* a multiple of every block size */

/* f32 tiles over rows of f32 weights ws bytes apart: EXACT_RR x 3 (12
 * accumulators, 7 loads per 12 FMAs) and the remainders. */
NOINLINE void f32_tiles(int rr, int tt, const uint8_t *w, size_t ws, int64_t kn, const float *x, int64_t xs,
                        float *y, int64_t ys, bool accum)
{
#define F32T(R, TT_, U) tile_f(FC_DTYPE_F32, R, TT_, U, w, ws, kn, x, xs, y, ys, accum)
    if (rr == 4) {
        if (tt == 3) F32T(4, 3, 1); else if (tt == 2) F32T(4, 2, 1); else F32T(4, 1, 2);
    } else {
        for (int r = 0; r < rr; r++, w += ws, y++) {
            if (tt == 3) F32T(1, 3, 1); else if (tt == 2) F32T(1, 2, 1); else F32T(1, 1, 2);
        }
    }
#undef F32T
}

/* y = x W^T through f32: rows of W are widened EXACT_RR at a time, EXACT_KC
 * values at a time, into a stack buffer (f32 weights are used in place) and
 * every chunk serves all T tokens. Exact mode for every type, and the fast
 * mode of f16 / bf16 / f32 weights when T > 1 (where a widened row serves
 * many tokens; vcvtph2ps is too slow to redo per token). */
static void matmul_f32_rows(enum fc_dtype wtype, const uint8_t *w, size_t w_stride, int64_t K,
                            const float *x, int64_t x_stride, int T,
                            float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    float buf[EXACT_RR * EXACT_KC] __attribute__((aligned(32)));
    for (int64_t r = r0; r < r1; r += EXACT_RR) {
        const int rr = (int)FC_MIN(EXACT_RR, r1 - r);
        for (int64_t k0 = 0; k0 < K; k0 += EXACT_KC) {
            const int64_t kn = FC_MIN(EXACT_KC, K - k0);
            const uint8_t *wt;
            size_t wts;
            if (wtype == FC_DTYPE_F32) {
                wt = w + (size_t)r * w_stride + (size_t)k0 * sizeof(float);
                wts = w_stride;
            } else {
                for (int i = 0; i < rr; i++)
                    dequant_chunk(wtype, w + (size_t)(r + i) * w_stride, k0, kn, buf + (size_t)i * EXACT_KC);
                wt = (const uint8_t *)buf;
                wts = EXACT_KC * sizeof(float);
            }
            for (int t = 0; t < T; t += 3) {
                const int tt = FC_MIN(3, T - t);
                f32_tiles(rr, tt, wt, wts, kn, x + (int64_t)t * x_stride + k0, x_stride,
                          y + (int64_t)t * y_stride + r, y_stride, k0 > 0);
            }
        }
    }
}

void fc_cpu_matmul_exact_avx2(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                              const float *x, int64_t x_stride, int T,
                              float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    matmul_f32_rows(wtype, w, w_stride, K, x, x_stride, T, y, y_stride, r0, r1);
}

/* ---- activation quantization ---- */

/* roundf (half away from zero), exactly: trunc, then step away from zero
 * when the dropped fraction is at least one half. */
INLINE __m256 round_away(__m256 v)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), step));
}

/* Four vectors of int32 (values 8j..8j+7) -> 32 int8 in order. */
INLINE __m256i pack_i8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i v = _mm256_packs_epi16(ab, cd);
    /* packs interleave 128-bit lanes: dwords come out as a0 b0 c0 d0 a1 b1 c1 d1 */
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

INLINE float absmax_ps(const float *x, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* q8_0 / q8_1 block of 32 exactly as quant_ref.c: d = amax/127, codes
 * roundf(x * (1/d)); returns the code sum. */
INLINE int quant_q8_32(const float *x, fc_f16 *dh, int8_t *qs, float *d_f32)
{
    const float amax = absmax_ps(x, 32);
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    const __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int j = 0; j < 4; j++)
        q[j] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), idv)));
    const __m256i p = pack_i8(q[0], q[1], q[2], q[3]);
    _mm256_storeu_si256((__m256i *)qs, p);
    *dh = fc_f32_to_f16(d);
    *d_f32 = d;
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    return _mm_cvtsi128_si32(s4);
}

static void quant_q8_K_avx2(const float *x, fc_block_q8_K *y, int64_t nb)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < nb; i++, x += FC_QK_K) {
        const float amax = absmax_ps(x, FC_QK_K);
        if (!amax) {
            memset(&y[i], 0, sizeof(y[i]));
            continue;
        }
        /* the first value of largest magnitude, with its sign (quant_ref.c) */
        float max = 0;
        const __m256 am = _mm256_set1_ps(amax);
        for (int j = 0; j < FC_QK_K; j += 8) {
            const int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), am, _CMP_EQ_OQ));
            if (mask) { max = x[j + __builtin_ctz((unsigned)mask)]; break; }
        }
        const float iscale = -127.f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        for (int j = 0; j < FC_QK_K; j += 32) {
            __m256i q[4];
            for (int u = 0; u < 4; u++) /* round to nearest even, as lrintf */
                q[u] = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x + j + 8 * u)));
            const __m256i p = pack_i8(q[0], q[1], q[2], q[3]); /* saturation = min(127, .) */
            _mm256_storeu_si256((__m256i *)(y[i].qs + j), p);
            /* bsums of the two 16-value groups */
            const __m256i s16 = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), p), _mm256_set1_epi16(1));
            __m128i lo = _mm256_castsi256_si128(s16), hi = _mm256_extracti128_si256(s16, 1);
            lo = _mm_hadd_epi32(lo, hi);      /* 4 sums of 8 */
            lo = _mm_hadd_epi32(lo, lo);      /* 2 sums of 16 */
            y[i].bsums[j / 16] = (int16_t)_mm_cvtsi128_si32(lo);
            y[i].bsums[j / 16 + 1] = (int16_t)_mm_extract_epi32(lo, 1);
        }
        y[i].d = 1 / iscale;
    }
}

/* a16 block of 32 exactly as quant_ref.c: d = amax/32767, codes rounded
 * to nearest even (vcvtps2dq), saturated by the pack; returns the code sum. */
INLINE int quant_a16_32(const float *x, fc_block_a16 *y)
{
    const float d = absmax_ps(x, 32) / 32767;
    const __m256 idv = _mm256_set1_ps(d ? 1.0f / d : 0.0f);
    __m256i q[4];
    for (int j = 0; j < 4; j++) q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), idv));
    /* packs interleave 128-bit lanes: qwords come out as a0 b0 a1 b1 */
    const __m256i p0 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
    const __m256i p1 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[2], q[3]), 0xD8);
    y->d = d;
    _mm256_storeu_si256((__m256i *)y->qs, p0);
    _mm256_storeu_si256((__m256i *)(y->qs + 16), p1);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(p0, ones), _mm256_madd_epi16(p1, ones));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    return _mm_cvtsi128_si32(s4);
}

void fc_cpu_quantize_act_avx2(int at, const float *x, void *dst, int64_t K)
{
    if (at == FC_DTYPE_Q8_K) {
        quant_q8_K_avx2(x, dst, K / FC_QK_K);
        return;
    }
    if (at == FC_DTYPE_F32) {
        memcpy(dst, x, (size_t)K * sizeof(float));
        return;
    }
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    float *sd = (float *)((uint8_t *)dst + fc_cpu_act_side_offset(at, K));
    float *ss = sd + nbp;
    for (int64_t b = nb; b < nbp; b++) sd[b] = ss[b] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        float d;
        int sum;
        if (at == FC_DTYPE_A16) {
            fc_block_a16 *blk = (fc_block_a16 *)dst + b;
            sum = quant_a16_32(x + b * FC_QK, blk);
            sd[b] = blk->d;
            ss[b] = blk->d * (float)sum;
            continue;
        }
        if (at == FC_DTYPE_Q8_1) {
            fc_block_q8_1 *blk = (fc_block_q8_1 *)dst + b;
            sum = quant_q8_32(x + b * FC_QK, &blk->d, blk->qs, &d);
            blk->s = fc_f32_to_f16((float)sum * d);
        } else {
            fc_block_q8_0 *blk = (fc_block_q8_0 *)dst + b;
            sum = quant_q8_32(x + b * FC_QK, &blk->d, blk->qs, &d);
        }
        fc_f16 dh;
        memcpy(&dh, (const uint8_t *)dst + (size_t)b * fc_dtype_type_size(at), 2);
        sd[b] = fc_f16_to_f32(dh);
        ss[b] = sd[b] * (float)sum;
    }
}

/* ---- row ops ---- */

void fc_cpu_rmsnorm_avx2(float *y, const float *x, const float *w, int n, float eps)
{
    /* sum of squares in f64 (as the reference) */
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    a0 = _mm256_add_pd(a0, a1);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a0), _mm256_extractf128_pd(a0, 1));
    double ss = _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / n + eps));
    const __m256 sv = _mm256_set1_ps(scale);
    i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = x[i] * scale * w[i];
}

/*
 * exp(-|g|) for the sigmoid, accurate to a few ulp: n = round(v / ln 2),
 * r = v - n ln 2 in two parts (Cody-Waite), exp(r) by its Taylor series to
 * degree 7 (truncation < 1e-8 relative for |r| <= ln2 / 2), and 2^n applied
 * as two factors so results down to the subnormal range stay right.
 */
INLINE __m256 exp_neg(__m256 v) /* v <= 0 */
{
    v = _mm256_max_ps(v, _mm256_set1_ps(-104.0f)); /* exp(-104) is below the f32 range */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), v);      /* ln2 high part */
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);      /* ln2 low part */
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n = 2^n1 * 2^n2 with n1 = n/2 truncated, both within the normal range */
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
}

/* silu(g) = g * sigmoid(g); with z = exp(-|g|), sigmoid = 1/(1+z) for
 * g >= 0 and z/(1+z) for g < 0, so nothing overflows. */
void fc_cpu_swiglu_avx2(float *y, const float *g, const float *u, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 z = exp_neg(_mm256_or_ps(gv, sign));
        const __m256 num = _mm256_blendv_ps(one, z, gv); /* sign bit of g picks z */
        const __m256 sg = _mm256_div_ps(num, _mm256_add_ps(one, z));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(gv, sg), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

float fc_cpu_dot_f32_avx2(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float sum = hsum_ps(_mm256_add_ps(s0, s1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

void fc_cpu_axpy_f32_avx2(float *y, float a, const float *x, int n)
{
    const __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

#endif /* FC_CPU_AVX2 */
