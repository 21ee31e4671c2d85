/*
 * attn.c: tiled attention over cache blocks (see attn.h). AVX2 + FMA + F16C
 * paths for head sizes that are multiples of 8, plain C otherwise; the
 * scalar reference fc_attn_ref is the oracle of tests/unit/test_attn.c.
 *
 * Per block of n keys, for the tile's R rows (RP = R rounded up to 8, the
 * padding rows see no key):
 *   1. keys and values to f32 (kf, vf), once for all rows;
 *   2. scores p[j][r] = sum_d kf[j][d] * qt[d][r]: one broadcast key value
 *      times 8 rows per FMA, several keys at once so the FMA chains overlap;
 *   3. p[j][r] = -inf where key j is beyond row r's limit;
 *   4. online softmax, 8 rows per vector: m' = max(m, max_j p[j]),
 *      alpha = exp(m - m'), p = exp(p - m'), l = l * alpha + sum_j p;
 *   5. acc[r] = acc[r] * alpha[r] + sum_j p[j][r] * vf[j].
 * Tiles of at most FC_ATTN_SMALL_R rows (decode: one token's G heads) skip
 * the padding and step 1: block_small reads each key and value row where it
 * is, converts it in registers once for all rows, and forms the scores as
 * dot products along the head (8 keys reduced together).
 * exp is a vectorized polynomial (vexp.h: Cephes' expf scheme, ~1 ulp) in the AVX2
 * path and expf in the portable one.
 */
#include "attn.h"
#include "base/fc_base.h"
#include "vexp.h"

#include <math.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define ATTN_AVX2 1
#endif

static inline int round8(int n) { return (n + 7) & ~7; }
/* array lengths rounded to 16 floats keep each array of the scratch 64-byte aligned */
static inline size_t pad16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t fc_attn_scratch_floats(int R, int HS)
{
    const size_t RP = (size_t)round8(R), H = (size_t)HS;
    return pad16(H * RP) + 2 * pad16(RP) + pad16((size_t)R * H) + 2 * pad16(FC_ATTN_BLOCK * H) +
           pad16(FC_ATTN_BLOCK * RP);
}

static inline int64_t row_off(int r, int G, int64_t tok_stride, int HS)
{
    return (int64_t)(r / G) * tok_stride + (int64_t)(r % G) * HS;
}

void fc_attn_begin(fc_attn_state *st, float *scratch, const float *q, int G, int64_t tok_stride, int R, int HS,
                   float scale)
{
    FC_ASSERT(R >= 1 && R <= FC_ATTN_ROWS && HS >= 1);
    const int RP = round8(R);
    st->R = R;
    st->RP = RP;
    st->HS = HS;
    float *p = scratch;
    st->qt = p;  p += pad16((size_t)HS * RP);
    st->m = p;   p += pad16((size_t)RP);
    st->l = p;   p += pad16((size_t)RP);
    st->acc = p; p += pad16((size_t)R * HS);
    st->kf = p;  p += pad16((size_t)FC_ATTN_BLOCK * HS);
    st->vf = p;  p += pad16((size_t)FC_ATTN_BLOCK * HS);
    st->p = p;
    st->cap = 0.0f;
#ifdef ATTN_AVX2
    st->small = R <= FC_ATTN_SMALL_R && HS % 8 == 0;
#else
    st->small = 0;
#endif
    if (st->small) {
        for (int r = 0; r < R; r++) {
            const float *qr = q + row_off(r, G, tok_stride, HS);
            for (int d = 0; d < HS; d++) st->qt[(size_t)r * HS + d] = qr[d] * scale;
        }
    } else {
        for (int r = 0; r < RP; r++) {
            const float *qr = r < R ? q + row_off(r, G, tok_stride, HS) : NULL;
            for (int d = 0; d < HS; d++) st->qt[(size_t)d * RP + r] = qr ? qr[d] * scale : 0.0f;
        }
    }
    for (int r = 0; r < RP; r++) {
        st->m[r] = -INFINITY;
        st->l[r] = 0.0f;
    }
    memset(st->acc, 0, sizeof(float) * (size_t)R * (size_t)HS);
}

void fc_attn_set_softcap(fc_attn_state *st, float cap) { st->cap = cap > 0 ? cap : 0.0f; }

/* n rows of HS values of kv_type -> f32, and zeros up to the padded key count np. */
static void to_f32(float *dst, const void *src, enum fc_dtype kv_type, int n, int np, int HS)
{
    const size_t nv = (size_t)n * (size_t)HS;
    if (kv_type == FC_DTYPE_F32) {
        memcpy(dst, src, sizeof(float) * nv);
    } else {
        const fc_f16 *h = src;
        size_t i = 0;
#ifdef ATTN_AVX2
        for (; i + 8 <= nv; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
#endif
        for (; i < nv; i++) dst[i] = fc_f16_to_f32(h[i]);
    }
    memset(dst + nv, 0, sizeof(float) * (size_t)(np - n) * (size_t)HS);
}

#ifdef ATTN_AVX2

/* Step 2 for NG row groups, KJ keys at a time: p[j][8g..8g+8). */
#define SCORE_TILE(NG, KJ)                                                                            \
    static void scores_##NG##_##KJ(const fc_attn_state *st, int np)                                \
    {                                                                                              \
        const int RP = st->RP, HS = st->HS;                                                        \
        for (int j0 = 0; j0 < np; j0 += KJ) {                                                      \
            __m256 acc[KJ][NG];                                                                    \
            for (int j = 0; j < KJ; j++)                                                           \
                for (int g = 0; g < NG; g++) acc[j][g] = _mm256_setzero_ps();                      \
            const float *kr = st->kf + (size_t)j0 * HS;                                            \
            for (int d = 0; d < HS; d++) {                                                         \
                __m256 qv[NG];                                                                     \
                for (int g = 0; g < NG; g++) qv[g] = _mm256_load_ps(st->qt + (size_t)d * RP + 8 * g); \
                for (int j = 0; j < KJ; j++) {                                                     \
                    const __m256 kv = _mm256_broadcast_ss(kr + (size_t)j * HS + d);                \
                    for (int g = 0; g < NG; g++) acc[j][g] = _mm256_fmadd_ps(kv, qv[g], acc[j][g]); \
                }                                                                                  \
            }                                                                                      \
            for (int j = 0; j < KJ; j++)                                                           \
                for (int g = 0; g < NG; g++) _mm256_store_ps(st->p + (size_t)(j0 + j) * RP + 8 * g, acc[j][g]); \
        }                                                                                          \
    }
SCORE_TILE(1, 8)
SCORE_TILE(2, 4)
SCORE_TILE(3, 4)
SCORE_TILE(4, 2)

static void block_avx2(fc_attn_state *st, int np, const int *lim)
{
    const int R = st->R, RP = st->RP, HS = st->HS, NG = RP / 8;
    switch (NG) {
    case 1: scores_1_8(st, np); break;
    case 2: scores_2_4(st, np); break;
    case 3: scores_3_4(st, np); break;
    default: scores_4_2(st, np); break;
    }
    float alpha[FC_ATTN_ROWS] __attribute__((aligned(32)));
    int limp[FC_ATTN_ROWS] __attribute__((aligned(32)));
    for (int r = 0; r < RP; r++) limp[r] = r < R ? lim[r] : 0;
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256 capv = _mm256_set1_ps(st->cap), icapv = _mm256_set1_ps(st->cap > 0 ? 1.0f / st->cap : 0.0f);
    for (int g = 0; g < NG; g++) {
        const __m256i lv = _mm256_load_si256((const __m256i *)(limp + 8 * g));
        __m256 mx = _mm256_load_ps(st->m + 8 * g);
        const __m256 m_old = mx;
        for (int j = 0; j < np; j++) {
            float *pj = st->p + (size_t)j * RP + 8 * g;
            const __m256 vis = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lv, _mm256_set1_epi32(j)));
            __m256 sc = _mm256_load_ps(pj);
            if (st->cap > 0)
                sc = _mm256_mul_ps(capv, fc_tanh8(_mm256_mul_ps(sc, icapv)));
            const __m256 s = _mm256_blendv_ps(ninf, sc, vis);
            _mm256_store_ps(pj, s);
            mx = _mm256_max_ps(mx, s);
        }
        /* rows that have seen nothing yet keep max -inf: subtract 0 instead */
        const __m256 ms = _mm256_blendv_ps(mx, _mm256_setzero_ps(), _mm256_cmp_ps(mx, ninf, _CMP_EQ_OQ));
        const __m256 a = fc_exp8(_mm256_sub_ps(m_old, ms));
        __m256 sum = _mm256_setzero_ps();
        for (int j = 0; j < np; j++) {
            float *pj = st->p + (size_t)j * RP + 8 * g;
            const __m256 e = fc_exp8(_mm256_sub_ps(_mm256_load_ps(pj), ms));
            _mm256_store_ps(pj, e);
            sum = _mm256_add_ps(sum, e);
        }
        _mm256_store_ps(st->l + 8 * g, _mm256_fmadd_ps(_mm256_load_ps(st->l + 8 * g), a, sum));
        _mm256_store_ps(st->m + 8 * g, mx);
        _mm256_store_ps(alpha + 8 * g, a);
    }
    /* acc[r] = acc[r] * alpha[r] + sum_j p[j][r] vf[j], 32 columns of a row
     * pair per pass (8 accumulators), then 8 at a time */
    int r = 0;
    for (; r < R; r += 2) {
        const int two = r + 1 < R;
        float *a0 = st->acc + (size_t)r * HS, *a1 = two ? a0 + HS : a0;
        const __m256 al0 = _mm256_set1_ps(alpha[r]), al1 = _mm256_set1_ps(alpha[r + two]);
        int d = 0;
        for (; d + 32 <= HS; d += 32) {
            __m256 c0[4], c1[4];
            for (int u = 0; u < 4; u++) {
                c0[u] = _mm256_mul_ps(_mm256_loadu_ps(a0 + d + 8 * u), al0);
                c1[u] = _mm256_mul_ps(_mm256_loadu_ps(a1 + d + 8 * u), al1);
            }
            for (int j = 0; j < np; j++) {
                const __m256 p0 = _mm256_broadcast_ss(st->p + (size_t)j * RP + r);
                const __m256 p1 = _mm256_broadcast_ss(st->p + (size_t)j * RP + r + two);
                const float *vr = st->vf + (size_t)j * HS + d;
                for (int u = 0; u < 4; u++) {
                    const __m256 vv = _mm256_loadu_ps(vr + 8 * u);
                    c0[u] = _mm256_fmadd_ps(p0, vv, c0[u]);
                    c1[u] = _mm256_fmadd_ps(p1, vv, c1[u]);
                }
            }
            for (int u = 0; u < 4; u++) {
                if (two) _mm256_storeu_ps(a1 + d + 8 * u, c1[u]);
                _mm256_storeu_ps(a0 + d + 8 * u, c0[u]);
            }
        }
        for (; d < HS; d += 8) {
            __m256 c0 = _mm256_mul_ps(_mm256_loadu_ps(a0 + d), al0);
            __m256 c1 = _mm256_mul_ps(_mm256_loadu_ps(a1 + d), al1);
            for (int j = 0; j < np; j++) {
                const __m256 vv = _mm256_loadu_ps(st->vf + (size_t)j * HS + d);
                c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(st->p + (size_t)j * RP + r), vv, c0);
                c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(st->p + (size_t)j * RP + r + two), vv, c1);
            }
            if (two) _mm256_storeu_ps(a1 + d, c1);
            _mm256_storeu_ps(a0 + d, c0);
        }
    }
}
static inline float hsum_ps8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 values of a cached row (f16 or f32) from index i, as f32. */
static inline __m256 kv_load8(const void *p, const int f16, size_t i)
{
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const fc_f16 *)p + i)))
               : _mm256_loadu_ps((const float *)p + i);
}

/* Lane i of the result = the sum of the 8 lanes of v[i]. */
static inline __m256 hsum8x8(const __m256 *v)
{
    const __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* The small path (decode: R <= FC_ATTN_SMALL_R rows, e.g. one token's G
 * heads): no padding rows and no conversion pass. Scores are dot products
 * along the head (each key row converted in registers, used for all R rows),
 * reduced 8 keys at a time; the weighted value sum walks the head in chunks
 * of 16 with each value row converted once for all rows. */
static inline __attribute__((always_inline)) void block_small_t(fc_attn_state *st, const void *k, const void *v,
                                                                const int f16, const int R, int n, const int *lim)
{
    const int HS = st->HS;
    const float *q = st->qt;
    __m256 part[FC_ATTN_SMALL_R][FC_ATTN_BLOCK];
    float p[FC_ATTN_SMALL_R][FC_ATTN_BLOCK] __attribute__((aligned(32)));
    const int n8 = (n + 7) & ~7;
    /* KJ keys at a time: KJ * R independent FMA chains (one key's R chains
     * alone wait on the FMA latency); each chain sums along the head in the
     * same order as one key alone would */
    const int KJ = R <= 3 ? 4 : 2;
    int j = 0;
    for (; j + KJ <= n; j += KJ) {
        __m256 a[4][FC_ATTN_SMALL_R];
        for (int u = 0; u < KJ; u++)
            for (int r = 0; r < R; r++) a[u][r] = _mm256_setzero_ps();
        for (int d = 0; d < HS; d += 8) {
            __m256 kv[4];
            for (int u = 0; u < KJ; u++) kv[u] = kv_load8(k, f16, (size_t)(j + u) * HS + d);
            for (int r = 0; r < R; r++) {
                const __m256 qv = _mm256_loadu_ps(q + (size_t)r * HS + d);
                for (int u = 0; u < KJ; u++) a[u][r] = _mm256_fmadd_ps(kv[u], qv, a[u][r]);
            }
        }
        for (int u = 0; u < KJ; u++)
            for (int r = 0; r < R; r++) part[r][j + u] = a[u][r];
    }
    for (; j < n; j++) {
        __m256 a[FC_ATTN_SMALL_R];
        for (int r = 0; r < R; r++) a[r] = _mm256_setzero_ps();
        for (int d = 0; d < HS; d += 8) {
            const __m256 kv = kv_load8(k, f16, (size_t)j * HS + d);
            for (int r = 0; r < R; r++) a[r] = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q + (size_t)r * HS + d), a[r]);
        }
        for (int r = 0; r < R; r++) part[r][j] = a[r];
    }
    for (int j = n; j < n8; j++)
        for (int r = 0; r < R; r++) part[r][j] = _mm256_setzero_ps();
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    float alpha[FC_ATTN_SMALL_R];
    for (int r = 0; r < R; r++) {
        const __m256i lv = _mm256_set1_epi32(lim[r]);
        __m256 s[FC_ATTN_BLOCK / 8];
        __m256 mx = _mm256_set1_ps(st->m[r]);
        for (int g = 0; g < n8 / 8; g++) {
            const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(8 * g), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            const __m256 vis = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lv, idx));
            __m256 sc = hsum8x8(part[r] + 8 * g);
            if (st->cap > 0)
                sc = _mm256_mul_ps(_mm256_set1_ps(st->cap), fc_tanh8(_mm256_mul_ps(sc, _mm256_set1_ps(1.0f / st->cap))));
            s[g] = _mm256_blendv_ps(ninf, sc, vis);
            mx = _mm256_max_ps(mx, s[g]);
        }
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float m_new = _mm_cvtss_f32(m4), ms = m_new == -INFINITY ? 0.0f : m_new;
        const __m256 msv = _mm256_set1_ps(ms);
        alpha[r] = _mm_cvtss_f32(_mm256_castps256_ps128(fc_exp8(_mm256_set1_ps(st->m[r] - ms))));
        __m256 sum = _mm256_setzero_ps();
        for (int g = 0; g < n8 / 8; g++) {
            const __m256 e = fc_exp8(_mm256_sub_ps(s[g], msv));
            _mm256_store_ps(p[r] + 8 * g, e);
            sum = _mm256_add_ps(sum, e);
        }
        st->l[r] = st->l[r] * alpha[r] + hsum_ps8(sum);
        st->m[r] = m_new;
    }
    for (int d = 0; d < HS; d += 16) {
        const int two = d + 16 <= HS;
        __m256 c0[FC_ATTN_SMALL_R], c1[FC_ATTN_SMALL_R];
        for (int r = 0; r < R; r++) {
            float *a = st->acc + (size_t)r * HS + d;
            const __m256 al = _mm256_set1_ps(alpha[r]);
            c0[r] = _mm256_mul_ps(_mm256_loadu_ps(a), al);
            c1[r] = two ? _mm256_mul_ps(_mm256_loadu_ps(a + 8), al) : _mm256_setzero_ps();
        }
        for (int j = 0; j < n; j++) {
            const __m256 v0 = kv_load8(v, f16, (size_t)j * HS + d);
            const __m256 v1 = two ? kv_load8(v, f16, (size_t)j * HS + d + 8) : _mm256_setzero_ps();
            for (int r = 0; r < R; r++) {
                const __m256 w = _mm256_broadcast_ss(&p[r][j]);
                c0[r] = _mm256_fmadd_ps(w, v0, c0[r]);
                if (two) c1[r] = _mm256_fmadd_ps(w, v1, c1[r]);
            }
        }
        for (int r = 0; r < R; r++) {
            float *a = st->acc + (size_t)r * HS + d;
            _mm256_storeu_ps(a, c0[r]);
            if (two) _mm256_storeu_ps(a + 8, c1[r]);
        }
    }
}

/* One instance per row count and key type: with R a constant the per-row
 * sums stay in registers (a run-time R kept them on the stack). */
#define SMALL_CASE(R_)                                                        \
    case R_:                                                                  \
        if (f16) block_small_t(st, k, v, 1, R_, n, lim);                      \
        else block_small_t(st, k, v, 0, R_, n, lim);                          \
        break;
static void block_small(fc_attn_state *st, const void *k, const void *v, int kv_type, int n, const int *lim)
{
    const int f16 = kv_type == FC_DTYPE_F16;
    switch (st->R) {
    SMALL_CASE(1)
    SMALL_CASE(2)
    SMALL_CASE(3)
    default:
        FC_ASSERT(st->R == 4);
        if (f16) block_small_t(st, k, v, 1, 4, n, lim);
        else block_small_t(st, k, v, 0, 4, n, lim);
        break;
    }
}
#undef SMALL_CASE
#endif /* ATTN_AVX2 */

/* Steps 2-5 in plain C (any head size). */
static void block_generic(fc_attn_state *st, int np, const int *lim)
{
    const int R = st->R, RP = st->RP, HS = st->HS;
    for (int j = 0; j < np; j++) {
        float *pj = st->p + (size_t)j * RP;
        for (int r = 0; r < RP; r++) pj[r] = 0.0f;
        for (int d = 0; d < HS; d++) {
            const float kv = st->kf[(size_t)j * HS + d];
            const float *qd = st->qt + (size_t)d * RP;
            for (int r = 0; r < RP; r++) pj[r] += kv * qd[r];
        }
    }
    float alpha[FC_ATTN_ROWS];
    for (int r = 0; r < R; r++) {
        float mx = st->m[r];
        for (int j = 0; j < np; j++) {
            float *s = &st->p[(size_t)j * RP + r];
            if (st->cap > 0) *s = st->cap * tanhf(*s / st->cap);
            if (j >= lim[r]) *s = -INFINITY;
            mx = fmaxf(mx, *s);
        }
        const float ms = mx == -INFINITY ? 0.0f : mx;
        alpha[r] = expf(st->m[r] - ms);
        float sum = 0;
        for (int j = 0; j < np; j++) {
            float *s = &st->p[(size_t)j * RP + r];
            *s = expf(*s - ms);
            sum += *s;
        }
        st->l[r] = st->l[r] * alpha[r] + sum;
        st->m[r] = mx;
    }
    for (int r = 0; r < R; r++) {
        float *a = st->acc + (size_t)r * HS;
        for (int d = 0; d < HS; d++) a[d] *= alpha[r];
        for (int j = 0; j < np; j++) {
            const float w = st->p[(size_t)j * RP + r];
            const float *vr = st->vf + (size_t)j * HS;
            for (int d = 0; d < HS; d++) a[d] += w * vr[d];
        }
    }
}

void fc_attn_block(fc_attn_state *st, const void *k, const void *v, enum fc_dtype kv_type, int n, const int *lim)
{
    FC_ASSERT(n >= 0 && n <= FC_ATTN_BLOCK);
    int limc[FC_ATTN_ROWS], nvis = 0;
    for (int r = 0; r < st->R; r++) {
        limc[r] = lim[r] < 0 ? 0 : lim[r] > n ? n : lim[r];
        if (limc[r] > nvis) nvis = limc[r];
    }
    if (nvis == 0) return;
#ifdef ATTN_AVX2
    if (st->small) {
        block_small(st, k, v, kv_type, nvis, limc);
        return;
    }
#endif
    /* keys no row sees are skipped; the rest padded (with zeros, masked) to
     * the score tile's key step */
    const int NG = st->RP / 8, KJ = NG == 1 ? 8 : NG <= 3 ? 4 : 2;
    const int np = (nvis + KJ - 1) / KJ * KJ;
    to_f32(st->kf, k, kv_type, nvis, np, st->HS);
    to_f32(st->vf, v, kv_type, nvis, np, st->HS);
#ifdef ATTN_AVX2
    if (st->HS % 8 == 0) {
        block_avx2(st, np, limc);
        return;
    }
#endif
    block_generic(st, np, limc);
}

void fc_attn_end(const fc_attn_state *st, float *out, int G, int64_t tok_stride)
{
    for (int r = 0; r < st->R; r++) {
        const float *a = st->acc + (size_t)r * st->HS;
        float *o = out + row_off(r, G, tok_stride, st->HS);
        const float inv = st->l[r] > 0 ? 1.0f / st->l[r] : 0.0f;
        for (int d = 0; d < st->HS; d++) o[d] = a[d] * inv;
    }
}

void fc_attn_merge(const fc_attn_state *const *parts, int n, float *out, int G, int64_t tok_stride)
{
    const int R = parts[0]->R, HS = parts[0]->HS;
    for (int r = 0; r < R; r++) {
        float M = -INFINITY;
        for (int i = 0; i < n; i++) M = fmaxf(M, parts[i]->m[r]);
        float *o = out + row_off(r, G, tok_stride, HS);
        memset(o, 0, sizeof(float) * (size_t)HS);
        if (M == -INFINITY) continue;
        float L = 0;
        for (int i = 0; i < n; i++) {
            if (parts[i]->m[r] == -INFINITY) continue;
            const float w = expf(parts[i]->m[r] - M);
            const float *a = parts[i]->acc + (size_t)r * HS;
            L += parts[i]->l[r] * w;
            for (int d = 0; d < HS; d++) o[d] += a[d] * w;
        }
        const float inv = L > 0 ? 1.0f / L : 0.0f;
        for (int d = 0; d < HS; d++) o[d] *= inv;
    }
}

static inline double kv_get(const void *p, enum fc_dtype kv_type, size_t i)
{
    return kv_type == FC_DTYPE_F32 ? ((const float *)p)[i] : fc_f16_to_f32(((const fc_f16 *)p)[i]);
}

void fc_attn_ref(const float *q, int R, int HS, float scale, const void *k, const void *v, enum fc_dtype kv_type, int n,
                 const int *lim, float *out)
{
    double s[1024];
    FC_ASSERT(n <= 1024);
    for (int r = 0; r < R; r++) {
        const int m = lim[r] < n ? lim[r] : n;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < m; j++) {
            double acc = 0;
            for (int d = 0; d < HS; d++) acc += (double)q[(size_t)r * HS + d] * scale * kv_get(k, kv_type, (size_t)j * HS + d);
            s[j] = acc;
            if (acc > mx) mx = acc;
        }
        for (int j = 0; j < m; j++) sum += s[j] = exp(s[j] - mx);
        for (int d = 0; d < HS; d++) {
            double acc = 0;
            for (int j = 0; j < m; j++) acc += s[j] * kv_get(v, kv_type, (size_t)j * HS + d);
            out[(size_t)r * HS + d] = m ? (float)(acc / sum) : 0.0f;
        }
    }
}
