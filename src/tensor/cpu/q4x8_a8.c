/*
 * q4x8_a8.c: packed q4_0 weights (q4_0x8, pack.c) times 8-bit activations
 * in a pre-broadcast layout (ops.h: fc_q4x8a8_*), AVX2.
 *
 * The a16 kernel (x86_avx2.c tile_x8) widens every 16-byte chunk of codes to
 * int16 and pays a vpmaddwd + add per pair of values and token: 8 rows x 2
 * values (16 MACs) per two ALU operations, which keeps q4_0 decode at about
 * half a core's DRAM bandwidth. Here the codes stay bytes: a 32-byte load is
 * two chunks (8 rows x 2 values each, low and high lane), the low nibbles
 * (AND) and the high nibbles (shift, AND) are unsigned bytes, and one
 * vpmaddubsw with the activation bytes laid out to match gives row r's sums
 * of two value pairs in int16 lanes r and r + 8: 32 MACs per two ALU
 * operations, four times fewer code widenings.
 *
 * Activation row (K values, nb = K/32 blocks), 32-byte aligned:
 *   nb * 256 bytes: per block, 8 vectors of 32 int8:
 *       vector i (0..3):     x[4i], x[4i+1] eight times, then x[4i+2], x[4i+3] eight times
 *       vector 4 + i:        the same from x[16 + 4i]
 *   nbp floats: d[b]  (the block's scale: x ~ d * q, q in [-127, 127])
 *   nbp floats: s[b] = -8 * d[b] * sum(q of block b)  (q4_0's offset folded in)
 * Per block and row the int16 sum of the eight products is at most
 * 8 * 2 * 15 * 127 = 30480 (no saturation); the two lanes are widened to
 * int32 before they are added. Quantization: d = max|x| / 127, q =
 * round(x / d) (llama.cpp's q8_0 rule, kept in f32).
 */
#include "cpu_impl.h"
#include "base/fc_base.h"

#include <math.h>
#include <string.h>

#if FC_CPU_AVX2
#include <immintrin.h>

static int64_t nbp_of(int64_t K) { return (K / FC_QK + 7) & ~(int64_t)7; }

bool fc_q4x8a8_available(void) { return true; }

size_t fc_q4x8a8_row_size(int64_t K)
{
    return (size_t)(K / FC_QK) * 256 + 2 * sizeof(float) * (size_t)nbp_of(K);
}

void fc_q4x8a8_quantize(const float *x, void *dst, int64_t K)
{
    const int64_t nb = K / FC_QK, nbp = nbp_of(K);
    int8_t *codes = dst;
    float *dd = (float *)(codes + (size_t)nb * 256), *ss = dd + nbp;
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * FC_QK;
        __m256 mx = _mm256_setzero_ps();
        const __m256 sign = _mm256_set1_ps(-0.0f);
        for (int j = 0; j < FC_QK; j += 8) mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4), d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        /* q = round-to-nearest-even(x / d) as lrintf, 8 at a time; packed to
         * bytes in order (packs work per 128-bit lane: permute back) */
        int8_t q[FC_QK] __attribute__((aligned(32)));
        const __m256 idv = _mm256_set1_ps(id);
        __m256i i32[4];
        for (int j = 0; j < 4; j++) i32[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * j), idv));
        __m256i sv = _mm256_add_epi32(_mm256_add_epi32(i32[0], i32[1]), _mm256_add_epi32(i32[2], i32[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sv), _mm256_extracti128_si256(sv, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        const int sum = _mm_cvtsi128_si32(s4);
        const __m256i p16 = _mm256_packs_epi32(i32[0], i32[1]), p16b = _mm256_packs_epi32(i32[2], i32[3]);
        const __m256i p8 = _mm256_packs_epi16(p16, p16b);
        _mm256_store_si256((__m256i *)q, _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        int8_t *o = codes + (size_t)b * 256;
        for (int v = 0; v < 8; v++) { /* vector v: pairs at 4v (low lane) and 4v + 2 (high) of q + 16 * (v / 4) */
            const int8_t *p = q + 4 * v;
            int16_t w0, w1;
            memcpy(&w0, p, 2);
            memcpy(&w1, p + 2, 2);
            _mm256_storeu_si256((__m256i *)(o + 32 * v), _mm256_set_m128i(_mm_set1_epi16(w1), _mm_set1_epi16(w0)));
        }
        dd[b] = d;
        ss[b] = -8.0f * d * (float)sum;
    }
    for (int64_t b = nb; b < nbp; b++) dd[b] = ss[b] = 0.0f;
}

#define INLINE static inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
/* Pins a running sum in a register here: left free, GCC formed every
 * product of a block first, spilled them and summed them as a tree. */
#define PIN(v) __asm__("" : "+x"(v))

/* Rows 8 of one group times TT tokens: y[t * ys + r] for r < 8. */
INLINE void tile(const int TT, const uint8_t *w, int64_t K, const uint8_t *xa, size_t xs, float *y, int64_t ys)
{
    const int64_t nb = K / FC_QK, nbp = nbp_of(K);
    const size_t gbs = 8 * 18;
    const float *xd[6], *xsum[6];
    __m256 acc[6];
    for (int t = 0; t < TT; t++) {
        xd[t] = (const float *)(xa + (size_t)t * xs + (size_t)nb * 256);
        xsum[t] = xd[t] + nbp;
        acc[t] = _mm256_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = w + (size_t)b * gbs, *qs = gb + 16;
        __m256i s[6];
        for (int i = 0; i < 4; i++) {
            const __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * i));
            const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            for (int t = 0; t < TT; t++) {
                const __m256i *a = (const __m256i *)(xa + (size_t)t * xs + (size_t)b * 256);
                const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_load_si256(a + i));
                s[t] = i == 0 ? p0 : _mm256_add_epi16(s[t], p0);
                PIN(s[t]);
                s[t] = _mm256_add_epi16(s[t], _mm256_maddubs_epi16(hi, _mm256_load_si256(a + 4 + i)));
                PIN(s[t]);
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)gb));
        for (int t = 0; t < TT; t++) {
            const __m256i i32 = _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(s[t])),
                                                 _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s[t], 1)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32), _mm256_mul_ps(d, _mm256_broadcast_ss(xd[t] + b)), acc[t]);
            acc[t] = _mm256_fmadd_ps(d, _mm256_broadcast_ss(xsum[t] + b), acc[t]);
        }
    }
    for (int t = 0; t < TT; t++) _mm256_storeu_ps(y + (int64_t)t * ys, acc[t]);
}

#define TTM 4
typedef void (*tile_fn)(const uint8_t *w, int64_t K, const uint8_t *xa, size_t xs, float *y, int64_t ys);
#define DEF(n) \
    static NOINLINE void tile_##n(const uint8_t *w, int64_t K, const uint8_t *xa, size_t xs, float *y, int64_t ys) \
    { tile(n, w, K, xa, xs, y, ys); }
DEF(1) DEF(2) DEF(3) DEF(4)
static const tile_fn tiles[TTM] = {tile_1, tile_2, tile_3, tile_4};

/* activations of a token block kept within about this much (L2) */
#define TOKEN_BLOCK_BYTES (256 * 1024)

void fc_matmul_q4x8a8(const void *w_, size_t w_stride, int64_t K, const void *xa_, size_t xa_stride, int T,
                      float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    const uint8_t *w = w_, *xa = xa_;
    FC_ASSERT(r0 % 8 == 0 && r1 % 8 == 0);
    if (T == 1) {
        for (int64_t r = r0; r < r1; r += 8) tile_1(w + (size_t)r * w_stride, K, xa, 0, y + r, 0);
        return;
    }
    int tb = (int)(TOKEN_BLOCK_BYTES / (xa_stride ? xa_stride : 1));
    tb = tb < TTM ? TTM : tb - tb % TTM;
    for (int t0 = 0; t0 < T; t0 += tb) {
        const int t1 = FC_MIN(T, t0 + tb);
        for (int64_t r = r0; r < r1; r += 8)
            for (int t = t0; t < t1; t += TTM) {
                const int n = FC_MIN(TTM, t1 - t);
                tiles[n - 1](w + (size_t)r * w_stride, K, xa + (size_t)t * xa_stride, xa_stride,
                             y + (int64_t)t * y_stride + r, y_stride);
            }
    }
}

#else /* no AVX2: the callers keep the a16 kernels */

bool fc_q4x8a8_available(void) { return false; }
size_t fc_q4x8a8_row_size(int64_t K) { (void)K; return 32; }
void fc_q4x8a8_quantize(const float *x, void *dst, int64_t K) { (void)x; (void)dst; (void)K; FC_ASSERT(0); }
void fc_matmul_q4x8a8(const void *w, size_t w_stride, int64_t K, const void *xa, size_t xa_stride, int T,
                      float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    (void)w; (void)w_stride; (void)K; (void)xa; (void)xa_stride; (void)T; (void)y; (void)y_stride; (void)r0; (void)r1;
    FC_ASSERT(0);
}

#endif
