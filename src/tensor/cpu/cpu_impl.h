/*
 * cpu_impl.h: private interface between the CPU kernel files.
 *
 *   ops_cpu.c    the public entry points of ops.h (fc_matmul_fast, ...): act
 *                row layout, dispatch on weight type to one kernel per build
 *   generic.c    portable C kernels, suffix _generic, always compiled (so the
 *                tests can check them on any machine)
 *   x86_avx2.c   AVX2 + FMA + F16C kernels, suffix _avx2, compiled only when
 *                the compiler targets them (FC_CPU_AVX2)
 *   x86_avx512.c AVX-512 (F, BW, VL; VNNI where present) kernels, suffix
 *                _avx512, for packed weights and q4_K / q6_K, compiled only
 *                when the compiler targets them (FC_CPU_AVX512); called from
 *                x86_avx2.c
 *
 * Nothing here is part of the library API; tests include it to reach the
 * generic kernels of an AVX2 build.
 *
 * ---- Activation rows of the fast matmul ----
 * fc_matmul_quantize_act converts one f32 row of K values into:
 *   f32 weights (F32, F16, BF16):   K floats, nothing else.
 *   q8_K (weights Q2_K .. Q6_K):    K/256 fc_block_q8_K, as quant_ref.c writes.
 *   q8_0 / q8_1 / a16 (the 32-value weight types):
 *        K/32 fc_block_q8_0, fc_block_q8_1 or fc_block_a16 exactly as
 *        quant_ref.c writes them, then, from byte fc_cpu_act_side_offset(), a side table of two
 *        f32 arrays of nbp = K/32 rounded up to a multiple of 8 (zeros
 *        after the K/32 used ones, so kernels load 8 at a time without
 *        masks): d[b] = the block's d (f16 widened, or a16's f32), and
 *        s[b] = d[b] * sum(qs of block b). The kernels read their scales
 *        there instead of widening f16 per row, and s folds the weight's
 *        offset (q4_0: -8, q5_0: -16, q4_1 / q5_1: m) into one product per
 *        block: sum_j (dw*q_j + m)(dx*x_j) = dw*dx*sum(q_j*x_j) + m*s.
 *        (q8_1's own f16 s is rounded; s here is exact to f32.)
 * Every row size is a multiple of 32 bytes so rows packed back to back stay
 * 32-byte aligned when the first is.
 */
#ifndef FC_CPU_IMPL_H
#define FC_CPU_IMPL_H

#include "tensor/ops.h"

#include <string.h>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define FC_CPU_AVX2 1
#endif
/* AVX-512 kernels (x86_avx512.c) add to the AVX2 ones, never replace them */
#if FC_CPU_AVX2 && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define FC_CPU_AVX512 1
#endif
/* AMX tiles (x86_amx.c) for the packed-weight matmul of token batches */
#if FC_CPU_AVX512 && defined(__AMX_TILE__) && defined(__AMX_INT8__)
#define FC_CPU_AMX 1
#endif
/* and bf16 tiles for the bf16 GEMM of ops.h */
#if FC_CPU_AMX && defined(__AMX_BF16__) && defined(__AVX512BF16__)
#define FC_CPU_AMX_BF16 1
#endif

/* ---- activation row layout ---- */
static inline size_t fc_cpu_round32(size_t n) { return (n + 31) & ~(size_t)31; }

/* Byte offset of the f32 side table in a q8_0 / q8_1 / a16 act row (act_type). */
static inline size_t fc_cpu_act_side_offset(int act_type, int64_t K)
{
    return fc_cpu_round32((size_t)(K / FC_QK) * fc_dtype_type_size(act_type));
}
/* Entries of each side-table array: K/32 rounded up to a multiple of 8. */
static inline int64_t fc_cpu_act_nbp(int64_t K) { return (K / FC_QK + 7) & ~(int64_t)7; }
#if FC_CPU_AMX
/* AMX builds append to an a16 row, from this 64-byte aligned offset, K/32
 * runs of 64 bytes: the block's 32 codes' high bytes (signed) then their
 * low bytes (unsigned), in order: the A tiles of x86_amx.c read them in
 * place, one token a tile row. */
static inline size_t fc_cpu_act_planes_offset(int64_t K)
{
    const size_t end = fc_cpu_act_side_offset(FC_DTYPE_A16, K) + (size_t)fc_cpu_act_nbp(K) * 2 * sizeof(float);
    return (end + 63) & ~(size_t)63;
}
/* Writes those planes from the row's a16 blocks. */
void fc_cpu_act_planes(uint8_t *row, int64_t K);
#endif
/* The side table's d[] and s[] arrays (fc_cpu_act_nbp(K) floats each). */
static inline const float *fc_cpu_act_d(const void *xa, int act_type, int64_t K)
{
    return (const float *)((const uint8_t *)xa + fc_cpu_act_side_offset(act_type, K));
}
static inline const float *fc_cpu_act_s(const void *xa, int act_type, int64_t K)
{
    return fc_cpu_act_d(xa, act_type, K) + fc_cpu_act_nbp(K);
}

/* The 8 six-bit scales and mins of a q4_K / q5_K block (quant_ref.c layout)
 * as bytes: sc[0..8), mn[0..8). Bytes 0..3 hold sc 0..3 plus the top bits
 * of sc 4..7, bytes 4..7 mins 0..3 plus the top bits of mins 4..7, bytes
 * 8..11 the low nibbles of sc/mins 4..7. (The SIMD kernels' form; generic.c
 * keeps its own scalar loop.) */
static inline void fc_cpu_k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8])
{
    uint32_t u0, u1, u2;
    memcpy(&u0, s, 4);
    memcpy(&u1, s + 4, 4);
    memcpy(&u2, s + 8, 4);
    const uint32_t s03 = u0 & 0x3f3f3f3fu, m03 = u1 & 0x3f3f3f3fu;
    const uint32_t s47 = (u2 & 0x0f0f0f0fu) | ((u0 >> 6) & 0x03030303u) << 4;
    const uint32_t m47 = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 6) & 0x03030303u) << 4;
    memcpy(sc, &s03, 4);
    memcpy(sc + 4, &s47, 4);
    memcpy(mn, &m03, 4);
    memcpy(mn + 4, &m47, 4);
}

/* fc_matmul_set_prefetch's setting (ops_cpu.c; read with __atomic_load_n) */
extern bool fc_cpu_prefetch_packed;
/* fc_matmul_set_amx's setting (ops_cpu.c; read with __atomic_load_n) */
extern bool fc_cpu_amx_on;

/* ---- generic kernels (generic.c), the fallbacks of every build ---- */
void fc_cpu_quantize_act_generic(enum fc_dtype atype, const float *x, void *dst, int64_t K);
/* Supports every weight type fc_matmul_act_type knows; 0 for others. */
float fc_cpu_vec_dot_generic(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K);
/* fc_matmul_fast / fc_matmul_exact, built on the generic dots. */
void fc_cpu_matmul_fast_generic(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K, enum fc_dtype atype,
                                const void *xa, size_t xa_stride, int T,
                                float *y, int64_t y_stride, int64_t r0, int64_t r1);
void fc_cpu_matmul_exact_generic(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                                 const float *x, int64_t x_stride, int T,
                                 float *y, int64_t y_stride, int64_t r0, int64_t r1);
void fc_cpu_rmsnorm_generic(float *y, const float *x, const float *w, int n, float eps);
void fc_cpu_swiglu_generic(float *y, const float *g, const float *u, int n);
float fc_cpu_dot_f32_generic(const float *a, const float *b, int n);
void fc_cpu_axpy_f32_generic(float *y, float a, const float *x, int n);

/* ---- AVX2 kernels (x86_avx2.c) ---- */
#if FC_CPU_AVX2
void fc_cpu_quantize_act_avx2(enum fc_dtype atype, const float *x, void *dst, int64_t K);
/* True for the weight types with AVX2 kernels (the others use generic). */
bool fc_cpu_has_avx2(enum fc_dtype wtype);
float fc_cpu_vec_dot_avx2(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K);
void fc_cpu_matmul_fast_avx2(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K, enum fc_dtype atype,
                             const void *xa, size_t xa_stride, int T,
                             float *y, int64_t y_stride, int64_t r0, int64_t r1);
void fc_cpu_matmul_exact_avx2(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                              const float *x, int64_t x_stride, int T,
                              float *y, int64_t y_stride, int64_t r0, int64_t r1);
void fc_cpu_dequant_chunk_avx2(enum fc_dtype wtype, const void *row, int64_t k0, int64_t n, float *dst);
void fc_cpu_rmsnorm_avx2(float *y, const float *x, const float *w, int n, float eps);
void fc_cpu_swiglu_avx2(float *y, const float *g, const float *u, int n);
float fc_cpu_dot_f32_avx2(const float *a, const float *b, int n);
void fc_cpu_axpy_f32_avx2(float *y, float a, const float *x, int n);
#endif

/* ---- AVX-512 kernels (x86_avx512.c) ---- */
#if FC_CPU_AVX512
/* Rows [r0, r1) of a packed matrix (r0 a multiple of 8, r1 - r0 of 16), as
 * fc_matmul_fast; weights prefetched prefetch_bytes ahead when T = 1 (0: not
 * at all), tokens
 * walked in blocks of about token_block_bytes of activations when T > 1. */
void fc_cpu_matmul_x16_avx512(int ptype, const uint8_t *w, size_t w_stride, int64_t K,
                              const uint8_t *xa, size_t xa_stride, int T,
                              float *y, int64_t y_stride, int64_t r0, int64_t r1,
                              size_t prefetch_bytes, size_t token_block_bytes);
#if FC_CPU_AMX
/* Batches of at least this many tokens take the AMX tiles: below, the
 * 512-bit tiles of x86_avx512.c are as fast (measured on a Sapphire Rapids
 * core: batched decode of 8 sequences within 3% either way, of 32 1.2-1.35x
 * faster on the tiles). */
#define FC_AMX_MIN_T(ptype) ((ptype) == FC_DTYPE_Q8_0_X8 ? 12 : 10)
/* fc_cpu_amx_on and Linux granted this process the tile state. */
bool fc_cpu_amx_ready(void);
/* As fc_cpu_matmul_x16_avx512 (r1 - r0 a multiple of 16), bit-identical
 * results; false (nothing done) when its scratch cannot be allocated. */
bool fc_cpu_matmul_x16_amx(int ptype, const uint8_t *w, size_t w_stride, int64_t K,
                           const uint8_t *xa, size_t xa_stride, int T,
                           float *y, int64_t y_stride, int64_t r0, int64_t r1);
#endif
/* q4_K / q6_K weights (fc_cpu_has_k_avx512) against q8_K rows, any rows,
 * same conventions. */
bool fc_cpu_has_k_avx512(enum fc_dtype wtype);
void fc_cpu_matmul_k_avx512(enum fc_dtype wtype, const uint8_t *w, size_t w_stride, int64_t K,
                            const uint8_t *xa, size_t xa_stride, int T,
                            float *y, int64_t y_stride, int64_t r0, int64_t r1,
                            size_t prefetch_bytes, size_t token_block_bytes);
#endif

#endif
