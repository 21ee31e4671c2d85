/*
 * x86_amx.c: the packed-weight matmul (q4_0x8, q4_1x8, q8_0x8 against a16
 * activations) on AMX tiles, for batches of tokens.
 *
 * Compiled only when the compiler targets AMX-TILE and AMX-INT8 besides
 * AVX-512 (FC_CPU_AMX in cpu_impl.h); taken by fc_cpu_matmul_x16_avx512
 * when T >= FC_AMX_MIN_T, the kernel asked Linux for the tile state
 * (arch_prctl ARCH_REQ_XCOMP_PERM) and fc_matmul_set_amx left it on.
 *
 * The results are bit-identical to the AVX-512 tiles (x86_avx512.c): the
 * int16 activations are split into a signed high byte and an unsigned low
 * byte, x = 256 hi + lo, and per 32-value block two tile products give
 * the block's exact int32 sums, sum(q hi) and sum(q lo) (TDPBSUD / TDPBUUD
 * for the unsigned 4-bit codes, TDPBSSD / TDPBUSD for q8_0), which the
 * AVX-512 epilogue then weighs in the same order as the AVX-512 tiles.
 *
 * Tiles, K = 32 values (one block) per product:
 *   A (tmm2 hi, tmm3 lo): 16 tokens x 32 bytes, read in place from the
 *     byte planes that fc_matmul_quantize_act appends to a16 rows in AMX
 *     builds (cpu_impl.h), one token a tile row; a last tile of fewer
 *     tokens is copied out with zero rows;
 *   B (tmm4): the 16 weight rows of two 8-row groups in the VNNI layout,
 *     8 rows of 16 x 4 bytes (B row c: values 4c..4c+3 of each weight row),
 *     built once per row pair and block;
 *   C (tmm0 hi, tmm1 lo): 16 tokens x 16 rows of int32.
 */
#include "cpu_impl.h"

#if FC_CPU_AMX

#include "base/fc_base.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define INLINE static inline __attribute__((always_inline))
#define NOINLINE static __attribute__((noinline))
#define UNROLL _Pragma("GCC unroll 16")

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define TOK 16          /* tokens per tile */
#define BBYTES 512      /* B of one row pair and block */

static pthread_once_t perm_once = PTHREAD_ONCE_INIT;
static bool perm_ok;
static pthread_key_t scratch_key;

typedef struct scratch {
    uint8_t *p;
    size_t cap;
} scratch;

static void scratch_free(void *p)
{
    scratch *s = p;
    free(s->p);
    free(s);
}

static void perm_init(void)
{
    const char *env = getenv("FASTCHAT_AMX");
    if (env && !strcmp(env, "0")) return; /* the process-wide off switch (ops.h) */
    perm_ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 &&
              pthread_key_create(&scratch_key, scratch_free) == 0;
}

bool fc_cpu_amx_ready(void)
{
    if (!__atomic_load_n(&fc_cpu_amx_on, __ATOMIC_RELAXED)) return false;
    pthread_once(&perm_once, perm_init);
    return perm_ok;
}

/* This thread's scratch of at least n bytes, 64-byte aligned (freed when
 * the thread exits); NULL when out of memory. */
static uint8_t *scratch_get(size_t n)
{
    scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof *s))) return NULL;
        if (pthread_setspecific(scratch_key, s)) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < n) {
        free(s->p);
        s->cap = 0;
        if (!(s->p = aligned_alloc(64, (n + 63) & ~(size_t)63))) return NULL;
        s->cap = n;
    }
    return s->p;
}

typedef struct tilecfg {
    uint8_t palette, start_row, rsv[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* Tiles of m token rows (a lone tile of fewer than 16 tokens takes only
 * its rows: the products and tile moves take time by the row). */
static void tiles_config(int m)
{
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 2; t++) { c.rows[t] = (uint8_t)m; c.colsb[t] = 64; }  /* C hi, lo */
    for (int t = 5; t < 7; t++) { c.rows[t] = (uint8_t)m; c.colsb[t] = 64; }  /* C hi, lo (odd blocks) */
    for (int t = 2; t < 4; t++) { c.rows[t] = (uint8_t)m; c.colsb[t] = 32; }  /* A hi, lo */
    c.rows[4] = 8; c.colsb[4] = 64;                                         /* B */
    _tile_loadconfig(&c);
}

/* Bytes of one block of an 8-row group (a constant where BT is). */
INLINE size_t group_block_bytes(int BT)
{
    return 8 * (BT == FC_DTYPE_Q4_0 ? sizeof(fc_block_q4_0) : BT == FC_DTYPE_Q4_1 ? sizeof(fc_block_q4_1)
                                                                                     : sizeof(fc_block_q8_0));
}

/* 16 bytes at a and 16 at b as one 256-bit vector (a low). */
INLINE __m256i join(const uint8_t *a, const uint8_t *b)
{
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)),
                                   _mm_loadu_si128((const __m128i *)b), 1);
}

/* The A side of one token tile (tokens [t0, t0 + n), n <= 16): ad + b * 128
 * holds the tokens' side-table d[b] and s[b] (16 floats each, zero past
 * n); with n < 16 also the tokens' planes at pl, rows nb * 64 bytes apart,
 * and zero rows up to 16 (a full tile reads the rows' own planes). */
static void tile_side(const uint8_t *xa, size_t xs, int t0, int n, int64_t K, float *ad, uint8_t *pl)
{
    const int64_t nb = K / FC_QK, nbp = fc_cpu_act_nbp(K);
    const size_t side = fc_cpu_act_side_offset(FC_DTYPE_A16, K), po = fc_cpu_act_planes_offset(K);
    for (int t = 0; t < TOK; t++) {
        if (t >= n) {
            for (int64_t b = 0; b < nb; b++) ad[b * 32 + t] = ad[b * 32 + TOK + t] = 0;
            if (pl) memset(pl + (size_t)t * nb * 64, 0, (size_t)nb * 64);
            continue;
        }
        const uint8_t *row = xa + (size_t)(t0 + t) * xs;
        const float *rs = (const float *)(row + side);
        for (int64_t b = 0; b < nb; b++) {
            ad[b * 32 + t] = rs[b];
            ad[b * 32 + TOK + t] = rs[nbp + b];
        }
        if (pl) memcpy(pl + (size_t)t * nb * 64, row + po, (size_t)nb * 64);
    }
}

void fc_cpu_act_planes(uint8_t *row, int64_t K)
{
    uint8_t *o = row + fc_cpu_act_planes_offset(K);
    for (int64_t b = 0; b < K / FC_QK; b++) {
        const __m512i v = _mm512_loadu_si512(row + (size_t)b * sizeof(fc_block_a16) + 4);
        _mm256_storeu_si256((__m256i *)(o + 64 * b), _mm512_cvtepi16_epi8(_mm512_srai_epi16(v, 8)));
        _mm256_storeu_si256((__m256i *)(o + 64 * b + 32), _mm512_cvtepi16_epi8(v));
    }
}

/* vpermt2w indices over (g0's 64 bytes, g1's 64 bytes): the 16 rows' words
 * of chunks 2s and 2s+1 of the four chunks loaded, side by side (B row
 * c's four bytes a weight row: its bytes 4c..4c+3 for q8_0; the codes
 * 4c..4c+3 in the low nibbles of bytes 2c..2c+1 of the nibble types' 16,
 * then 16+4c.. in the high nibbles, per the packed layout's chunk c =
 * byte pair c). */
static const uint16_t IDX_PAIR[2][32] __attribute__((aligned(64))) = {
#define J(s, j) (uint16_t)(((j) < 8 ? 0 : 32) + 16 * (s) + (j) % 8), (uint16_t)(((j) < 8 ? 0 : 32) + 16 * (s) + 8 + (j) % 8)
#define ROW(s) { J(s, 0), J(s, 1), J(s, 2), J(s, 3), J(s, 4), J(s, 5), J(s, 6), J(s, 7), \
                 J(s, 8), J(s, 9), J(s, 10), J(s, 11), J(s, 12), J(s, 13), J(s, 14), J(s, 15) }
    ROW(0), ROW(1)
#undef ROW
#undef J
};

/* B tiles of the 16 rows at g0 (rows 0-7) and g1 (8-15), every block. */
static void build_b(int BT, const uint8_t *g0, const uint8_t *g1, int64_t nb, uint8_t *dst)
{
    const size_t gbs = group_block_bytes(BT), hb = BT == FC_DTYPE_Q4_1 ? 32 : 16;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i i0 = _mm512_load_si512(IDX_PAIR[0]), i1 = _mm512_load_si512(IDX_PAIR[1]);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q0 = g0 + (size_t)b * gbs + hb, *q1 = g1 + (size_t)b * gbs + hb;
        uint8_t *o = dst + (size_t)b * BBYTES;
        if (BT == FC_DTYPE_Q8_0) {
            /* 16 chunks of 16 bytes: B row c = chunks 2c, 2c+1 */
            UNROLL for (int h = 0; h < 4; h++) {
                const __m512i x0 = _mm512_loadu_si512(q0 + 64 * h), x1 = _mm512_loadu_si512(q1 + 64 * h);
                _mm512_store_si512(o + 64 * (2 * h), _mm512_permutex2var_epi16(x0, i0, x1));
                _mm512_store_si512(o + 64 * (2 * h + 1), _mm512_permutex2var_epi16(x0, i1, x1));
            }
        } else {
            /* 8 chunks: B row c (< 4) = the low nibbles of chunks 2c, 2c+1,
             * B row 4 + c their high nibbles */
            UNROLL for (int h = 0; h < 2; h++) {
                const __m512i x0 = _mm512_loadu_si512(q0 + 64 * h), x1 = _mm512_loadu_si512(q1 + 64 * h);
                UNROLL for (int s2 = 0; s2 < 2; s2++) {
                    const __m512i w = _mm512_permutex2var_epi16(x0, s2 ? i1 : i0, x1);
                    _mm512_store_si512(o + 64 * (2 * h + s2), _mm512_and_si512(w, m4));
                    _mm512_store_si512(o + 64 * (4 + 2 * h + s2), _mm512_and_si512(_mm512_srli_epi16(w, 4), m4));
                }
            }
        }
    }
}

/* Block b's two tile products into C tiles CH, CL (A hi / lo in tmm2 / 3:
 * 32 bytes at ap + 64 b, rows as apart; B in tmm4). */
#define PRODUCTS(BT, CH, CL, ap, as, bt, b)                                       \
    do {                                                                         \
        const uint8_t *a_ = (ap) + (size_t)(b) * 64;                             \
        _tile_loadd(4, (bt) + (size_t)(b) * BBYTES, 64);                         \
        _tile_loadd(2, a_, (as));                                                \
        _tile_loadd(3, a_ + 32, (as));                                           \
        _tile_zero(CH);                                                          \
        _tile_zero(CL);                                                          \
        if ((BT) == FC_DTYPE_Q8_0) {                                             \
            _tile_dpbssd(CH, 2, 4);                                              \
            _tile_dpbusd(CL, 3, 4);                                              \
        } else {                                                                 \
            _tile_dpbsud(CH, 2, 4);                                              \
            _tile_dpbuud(CL, 3, 4);                                              \
        }                                                                        \
    } while (0)

/* acc[t] += block b's sums (c: hi tile then lo tile, 16 x 16 int32 each)
 * weighed as the AVX-512 tiles weigh them; sd: the tokens' d[b], then s[b]. */
INLINE void weigh(const int BT, const int TT, __m512 *acc, const int32_t *c, const uint8_t *g0, const uint8_t *g1,
                  int64_t b, const float *sd)
{
    const size_t gbs = group_block_bytes(BT);
    const uint8_t *g0b = g0 + (size_t)b * gbs, *g1b = g1 + (size_t)b * gbs;
    const __m512 d = _mm512_cvtph_ps(join(g0b, g1b));
    __m512 off = d;
    if (BT == FC_DTYPE_Q4_1) off = _mm512_cvtph_ps(join(g0b + 16, g1b + 16));
    if (BT == FC_DTYPE_Q4_0) off = _mm512_mul_ps(d, _mm512_set1_ps(-8.0f));
    UNROLL for (int t = 0; t < TT; t++) {
        const __m512i hi = _mm512_load_si512(c + 16 * t), lo = _mm512_load_si512(c + 256 + 16 * t);
        const __m512 f = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32(hi, 8), lo));
        acc[t] = _mm512_fmadd_ps(f, _mm512_mul_ps(d, _mm512_set1_ps(sd[t])), acc[t]);
        if (BT != FC_DTYPE_Q8_0) acc[t] = _mm512_fmadd_ps(off, _mm512_set1_ps(sd[TOK + t]), acc[t]);
    }
}

/*
 * One token tile (TT tokens) x the 16 rows at g0 / g1: y[t * ys + 0..16)
 * for t < TT. ap / as: the tokens' planes (PRODUCTS), ad: their side
 * tables (tile_side), bt: the rows' B, cbuf: 2 x 2 KiB. The products of
 * block b + 1 (C tiles 5 / 6 or 0 / 1, alternately) run while the vector
 * units weigh block b's.
 */
INLINE void tile_amx(const int BT, const int TT, const uint8_t *g0, const uint8_t *g1, int64_t K,
                     const uint8_t *ap, size_t as, const float *ad, const uint8_t *bt, int32_t *cbuf,
                     float *y, int64_t ys)
{
    const int64_t nb = K / FC_QK;
    int32_t *c0 = cbuf, *c1 = cbuf + 512;
    __m512 acc[TOK];
    UNROLL for (int t = 0; t < TT; t++) acc[t] = _mm512_setzero_ps();
    PRODUCTS(BT, 0, 1, ap, as, bt, 0);
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        /* block b is in tiles 0 / 1; start b + 1 in 5 / 6, weigh b */
        PRODUCTS(BT, 5, 6, ap, as, bt, b + 1);
        _tile_stored(0, c0, 64);
        _tile_stored(1, c0 + 256, 64);
        weigh(BT, TT, acc, c0, g0, g1, b, ad + b * 32);
        /* start b + 2 in 0 / 1, weigh b + 1 */
        if (b + 2 < nb) PRODUCTS(BT, 0, 1, ap, as, bt, b + 2);
        _tile_stored(5, c1, 64);
        _tile_stored(6, c1 + 256, 64);
        weigh(BT, TT, acc, c1, g0, g1, b + 1, ad + (b + 1) * 32);
    }
    if (b < nb) { /* odd nb: the last block is in tiles 0 / 1 */
        _tile_stored(0, c0, 64);
        _tile_stored(1, c0 + 256, 64);
        weigh(BT, TT, acc, c0, g0, g1, b, ad + b * 32);
    }
    UNROLL for (int t = 0; t < TT; t++) _mm512_storeu_ps(y + (int64_t)t * ys, acc[t]);
}

typedef void (*amx_fn)(const uint8_t *g0, const uint8_t *g1, int64_t K, const uint8_t *ap, size_t as,
                       const float *ad, const uint8_t *bt, int32_t *cbuf, float *y, int64_t ys);
#define DEF_ONE(BT, name, n)                                                                           \
    NOINLINE void name##_##n(const uint8_t *g0, const uint8_t *g1, int64_t K, const uint8_t *ap,       \
                             size_t as, const float *ad, const uint8_t *bt, int32_t *cbuf, float *y,   \
                             int64_t ys)                                                               \
    { tile_amx(BT, n, g0, g1, K, ap, as, ad, bt, cbuf, y, ys); }
#define DEF_SET(BT, name)                                                                                  \
    DEF_ONE(BT, name, 1) DEF_ONE(BT, name, 2) DEF_ONE(BT, name, 3) DEF_ONE(BT, name, 4)                    \
    DEF_ONE(BT, name, 5) DEF_ONE(BT, name, 6) DEF_ONE(BT, name, 7) DEF_ONE(BT, name, 8)                    \
    DEF_ONE(BT, name, 9) DEF_ONE(BT, name, 10) DEF_ONE(BT, name, 11) DEF_ONE(BT, name, 12)                 \
    DEF_ONE(BT, name, 13) DEF_ONE(BT, name, 14) DEF_ONE(BT, name, 15) DEF_ONE(BT, name, 16)                \
    static const amx_fn name[TOK] = { name##_1, name##_2, name##_3, name##_4, name##_5, name##_6,          \
                                      name##_7, name##_8, name##_9, name##_10, name##_11, name##_12,       \
                                      name##_13, name##_14, name##_15, name##_16 };
DEF_SET(FC_DTYPE_Q4_0, amx_q4_0)
DEF_SET(FC_DTYPE_Q4_1, amx_q4_1)
DEF_SET(FC_DTYPE_Q8_0, amx_q8_0)

bool fc_cpu_matmul_x16_amx(int ptype, const uint8_t *w, size_t w_stride, int64_t K,
                           const uint8_t *xa, size_t xa_stride, int T,
                           float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    const int BT = fc_pack_base_type(ptype);
    const amx_fn *fn = BT == FC_DTYPE_Q4_0 ? amx_q4_0 : BT == FC_DTYPE_Q4_1 ? amx_q4_1 : amx_q8_0;
    const int64_t nb = K / FC_QK;
    const size_t gbytes = 8 * w_stride, po = fc_cpu_act_planes_offset(K);
    const int tiles = (T + TOK - 1) / TOK, last = T - (tiles - 1) * TOK;
    /* scratch: the side tables of every tile, the last tile's planes when
     * it is short, one row pair's B, the C buffers */
    const size_t d_bytes = (size_t)tiles * nb * 32 * sizeof(float), p_bytes = last < TOK ? (size_t)TOK * nb * 64 : 0;
    const size_t b_bytes = (size_t)nb * BBYTES;
    uint8_t *buf = scratch_get(b_bytes + 4 * 1024 + d_bytes + p_bytes);
    if (!buf) return false;
    uint8_t *bbuf = buf, *pbuf = buf + b_bytes + 4 * 1024 + d_bytes;
    int32_t *cbuf = (int32_t *)(buf + b_bytes);
    float *dbuf = (float *)(buf + b_bytes + 4 * 1024);
    FC_ASSERT(r0 % 8 == 0 && (r1 - r0) % 16 == 0);
    for (int c = 0; c < tiles; c++) {
        const int n = c + 1 < tiles ? TOK : last;
        tile_side(xa, xa_stride, c * TOK, n, K, dbuf + (size_t)c * nb * 32, n < TOK ? pbuf : NULL);
    }
    tiles_config(FC_MIN(T, TOK));
    for (int64_t r = r0; r < r1; r += 16) {
        const uint8_t *g = w + (size_t)r * w_stride;
        build_b(BT, g, g + gbytes, nb, bbuf);
        for (int c = 0; c < tiles; c++) {
            const int t = c * TOK, n = c + 1 < tiles ? TOK : last;
            const uint8_t *ap = n < TOK ? pbuf : xa + (size_t)t * xa_stride + po;
            const size_t as = n < TOK ? (size_t)nb * 64 : xa_stride;
            fn[n - 1](g, g + gbytes, K, ap, as, dbuf + (size_t)c * nb * 32, bbuf, cbuf,
                      y + (int64_t)t * y_stride + r, y_stride);
        }
    }
    _tile_release();
    return true;
}

/* ---- bf16 GEMM on AMX tiles (training's frozen matrices, ops.h) ----
 *
 * B (K x N) is packed once (K and N padded with zeros to multiples of
 * 32): panels of 32 columns, each a run of K / 32 steps of two 16-column tiles (16 rows of 16 bf16 pairs: rows are pairs
 * of k, the VNNI layout TDPBF16PS reads), 2 KiB a step. A is rounded to
 * bf16 (nearest even) into this thread's scratch, 32 rows at a time padded
 * with zero rows; a 32 x 32 block of C is four f32 tiles (tmm0-3) fed by
 * two A tiles (tmm4, tmm5) and two B tiles (tmm6, tmm7) per step of 32 k.
 */
#if FC_CPU_AMX_BF16
#define BF_STEP 2048 /* bytes of one panel step: two B tiles */

static int64_t up32(int64_t n) { return (n + 31) / 32 * 32; }

size_t fc_gemm_bf16_packed_size(int64_t K, int64_t N)
{
    if (K <= 0 || N <= 0 || !fc_cpu_amx_ready()) return 0;
    return (size_t)(up32(N) / 32) * (size_t)(up32(K) / 32) * BF_STEP;
}

/* f to bf16, nearest even (as VCVTNEPS2BF16; NaNs stay quiet NaNs) */
static inline uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

void fc_gemm_bf16_pack(const float *b, int64_t ldb, bool trans, int64_t K, int64_t N, void *dst)
{
    uint16_t *o = dst;
    const int64_t nkb = up32(K) / 32;
    memset(dst, 0, fc_gemm_bf16_packed_size(K, N));
    /* element (k, n): panel n / 32, step k / 32, tile (n % 32) / 16, row (k % 32) / 2, column n % 16,
     * half k % 2; the source is read in its own row order */
#define AT(k, n) (((size_t)((n) / 32 * nkb + (k) / 32) * 2 + (size_t)((n) % 32 / 16)) * 512 + \
                  (size_t)((k) % 32 / 2) * 32 + (size_t)((n) % 16) * 2 + (size_t)((k) % 2))
    if (trans)
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) o[AT(k, n)] = to_bf16(b[n * ldb + k]);
    else
        for (int64_t k = 0; k < K; k++)
            for (int64_t n = 0; n < N; n++) o[AT(k, n)] = to_bf16(b[k * ldb + n]);
#undef AT
}

static void bf16_tiles_config(void)
{
    tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
}

/* Lanes below n of 16 (all for n >= 16). */
static __mmask16 lanes(int64_t n) { return n >= 16 ? 0xFFFF : (__mmask16)((1u << (n > 0 ? n : 0)) - 1); }

bool fc_gemm_bf16(const void *bp, int64_t K, int64_t N, const float *a, int64_t lda, int64_t M, float *c,
                  int64_t ldc, bool accumulate, int64_t n0, int64_t n1)
{
    if (M <= 0 || n0 >= n1) return true;
    const int64_t Mp = up32(M), Kp = up32(K), nkb = Kp / 32;
    uint8_t *buf = scratch_get((size_t)Mp * Kp * 2 + 32 * 32 * sizeof(float));
    if (!buf) return false;
    uint16_t *ab = (uint16_t *)buf;
    float *cb = (float *)(buf + (size_t)Mp * Kp * 2);
    /* A in bf16, rows Kp apart, zero past K and in the rows up to Mp */
    for (int64_t m = 0; m < Mp; m++) {
        uint16_t *dst = ab + m * Kp;
        if (m >= M) {
            memset(dst, 0, (size_t)Kp * 2);
            continue;
        }
        const float *src = a + m * lda;
        for (int64_t k = 0; k < Kp; k += 32) {
            const __m512 lo = _mm512_maskz_loadu_ps(lanes(K - k), src + k);
            const __m512 hi = _mm512_maskz_loadu_ps(lanes(K - k - 16), src + k + 16);
            _mm512_storeu_si512((__m512i *)(dst + k), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
    bf16_tiles_config();
    const size_t astride = (size_t)Kp * 2;
    for (int64_t n = n0; n < n1; n += 32) {
        const uint8_t *panel = (const uint8_t *)bp + (size_t)(n / 32) * nkb * BF_STEP;
        for (int64_t m = 0; m < Mp; m += 32) {
            const uint8_t *a0 = (const uint8_t *)(ab + m * Kp), *a1 = a0 + 16 * astride;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int64_t kb = 0; kb < nkb; kb++) {
                const uint8_t *bt = panel + (size_t)kb * BF_STEP;
                _tile_loadd(4, a0 + kb * 64, astride);
                _tile_loadd(5, a1 + kb * 64, astride);
                _tile_loadd(6, bt, 64);
                _tile_loadd(7, bt + 1024, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, cb, 128);
            _tile_stored(1, cb + 16, 128);
            _tile_stored(2, cb + 16 * 32, 128);
            _tile_stored(3, cb + 16 * 32 + 16, 128);
            const int64_t rows = FC_MIN(32, M - m);
            for (int64_t r = 0; r < rows; r++) {
                float *y = c + (m + r) * ldc + n;
                const float *sv = cb + r * 32;
                for (int h = 0; h < 32; h += 16) {
                    const __mmask16 k16 = lanes(N - n - h);
                    __m512 v = _mm512_loadu_ps(sv + h);
                    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k16, y + h));
                    _mm512_mask_storeu_ps(y + h, k16, v);
                }
            }
        }
    }
    _tile_release();
    return true;
}
#endif

#endif /* FC_CPU_AMX */
