/*
 * ops.h: the numeric operations of a forward pass.
 *
 * Every op has a scalar reference (ops_ref.c, suffix _ref) that is the oracle
 * for the fast versions. The fast versions (under cpu/) carry no suffix; exactly
 * one definition of each is compiled (AVX2/AVX-512 under #if, else generic).
 *
 * Matrix products: W is (R rows, K columns) in a stored type; X holds T
 * activation rows of K values; Y = X W^T is (T, R). Threads split the rows of
 * W: every fc_matmul_* call computes rows [r0, r1) for all T tokens, so the
 * caller can partition work with fc_split_range.
 *
 * Fast mode first converts each activation row into the "dot type" the weight
 * type wants (fc_matmul_act_type): blocks of int16 (a16, the default for the
 * 32-value types) or int8 (q8_0, q8_1, q8_K: llama.cpp's scheme) with a
 * scale, so the inner loops are integer dot products; f32/f16/bf16 weights
 * take f32 activations. Exact mode dequantizes weights to f32 and keeps f32
 * activations, which is what transformers computes on dequantized weights.
 */
#ifndef FC_OPS_H
#define FC_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "dtype.h"

/* ---- activation quantization for fast matmul ---- */
/* The type activation rows are converted to for weights of type wtype:
 * a16 = false: FC_DTYPE_Q8_0, Q8_1 or Q8_K (llama.cpp's 8-bit scheme), or
 * F32 for f32/f16/bf16 weights; a16 = true: FC_DTYPE_A16 (16-bit codes) for
 * the 32-value types (q4_0, q4_1, q5_0, q5_1, q8_0), the same as a16 = false
 * for the others. */
enum fc_dtype fc_matmul_act_type(enum fc_dtype wtype, bool a16);
/* Bytes of one converted activation row of K values of act type atype. */
size_t fc_matmul_act_row_size(enum fc_dtype atype, int64_t K);
/* (A converted row starts with K values of the act type exactly as
 * fc_quantize_row_ref writes them, so fc_dequantize_row_ref reads it; for
 * q8_0 / q8_1 / a16 an f32 side table of block scales and sums follows,
 * private to the kernels (cpu/cpu_impl.h). Row sizes are multiples of 32
 * bytes: rows packed back to back in a 32-byte aligned buffer stay aligned.
 * Convert once per matmul input, reuse for every weight matrix it meets.) */
/* Converts one f32 row x[0..K) into act type atype at dst. */
void fc_matmul_quantize_act(enum fc_dtype atype, const float *x, void *dst, int64_t K);

/* ---- matrix products over rows [r0, r1) of W ----
 * w: first row of W, rows w_stride bytes apart (fc_dtype_row_size(wtype, K)).
 * xa: T converted activation rows of type atype (one of the two
 *     fc_matmul_act_type(wtype, .) gives), xa_stride bytes apart (fast) or T
 *     f32 rows of K floats, x_stride floats apart (exact / ref).
 * y: T output rows, y_stride floats apart; y[t*y_stride + r] is written. */
void fc_matmul_fast(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K, enum fc_dtype atype,
                    const void *xa, size_t xa_stride, int T,
                    float *y, int64_t y_stride, int64_t r0, int64_t r1);
void fc_matmul_exact(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                     const float *x, int64_t x_stride, int T,
                     float *y, int64_t y_stride, int64_t r0, int64_t r1);
/* dst[0..n) = values [k0, k0 + n) of one weight row of type t (any type
 * fc_dequantize_row_ref reads; k0 and n multiples of its block size),
 * bit-identical to fc_dequantize_row_ref, vectorized for q4_0 / q4_1 / q8_0
 * and the 16/32-bit floats (the QLoRA trainer's row tiles, train/qbase.h). */
void fc_dequantize_chunk(enum fc_dtype t, const void *row, int64_t k0, int64_t n, float *dst);
/* Scalar oracle: dequantizes each weight row with fc_dequantize_row_ref and
 * accumulates in double. */
void fc_matmul_ref(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                   const float *x, int64_t x_stride, int T,
                   float *y, int64_t y_stride, int64_t r0, int64_t r1);

/* ---- row-interleaved weights (pack.c) ----
 * A q4_0 / q4_1 / q8_0 matrix whose row count is a multiple of 8 can be
 * rearranged once (at model load) into groups of 8 interleaved rows
 * (FC_DTYPE_*_X8), so that one vector of int32 sums holds the 8 rows of a
 * group: the fast matmul with a16 activations then converts and scales 8
 * rows at once, and walks one weight stream instead of several. The packed
 * matrix takes the same bytes as the original, and fc_matmul_fast takes it
 * with the base type's row stride; r0 and r1 must then be multiples of 8,
 * and the activations a16 (fc_matmul_act_type of a packed type is a16). */
/* The packed type of wtype, or -1 if it has none. */
enum fc_dtype fc_pack_type(enum fc_dtype wtype);
/* The base type of a packed type (or t itself). */
enum fc_dtype fc_pack_base_type(enum fc_dtype t);
/* Rearranges R rows (R % 8 == 0) of K values of type wtype, src_stride
 * bytes apart, into dst (R * fc_dtype_row_size(wtype, K) bytes). Returns
 * false if wtype has no packed type or R, K do not fit it. */
bool fc_pack_rows(enum fc_dtype wtype, const void *src, size_t src_stride, int64_t R, int64_t K, void *dst);
/* The inverse, for tests: R packed rows of type ptype into plain rows. */
bool fc_unpack_rows(int ptype, const void *src, int64_t R, int64_t K, void *dst);
/* Copies row r (0..7) of one packed group block (the 8 blocks of one block
 * column) out as a block of the base type. */
void fc_pack_block_row(int ptype, const uint8_t *gblk, int r, uint8_t *blk);

/* Packed q4_0 (FC_DTYPE_Q4_0_X8) times 8-bit activations in a pre-broadcast
 * layout (cpu/q4x8_a8.c): ~1.7x the a16 kernel's rate at T = 1 from L2,
 * ~1.0-1.2x at prefill, at llama.cpp's activation precision (8 bits and one
 * f32 scale per 32 values). The forward pass takes it only when
 * FASTCHAT_Q4_ACT8=1 (arch_llama.c: the precision cost).
 * Available on AVX2 builds only (fc_q4x8a8_available); row sizes are
 * multiples of 32 bytes; r0, r1 multiples of 8; w with the q4_0 row stride. */
bool fc_q4x8a8_available(void);
size_t fc_q4x8a8_row_size(int64_t K);
void fc_q4x8a8_quantize(const float *x, void *dst, int64_t K);
void fc_matmul_q4x8a8(const void *w, size_t w_stride, int64_t K, const void *xa, size_t xa_stride, int T,
                      float *y, int64_t y_stride, int64_t r0, int64_t r1);

/* Software prefetch in the single-token kernels of packed weights. It pays
 * when the weights come from the last-level cache; from DRAM it caps a
 * core's bandwidth (each prefetch holds an L1 fill buffer while the
 * hardware prefetcher follows a packed matrix's single stream alone:
 * 1B Q4_0 decode 35 -> 40 tokens/s without it). Process-wide, on by
 * default; fc_exec_new sets it from the model's size against the LLC. */
void fc_matmul_set_prefetch(bool on);

/* AMX tiles for the packed q4_0 / q4_1 / q8_0 weights when a matmul has 10
 * or more tokens, 12 for q8_0 (x86_amx.c; bit-identical to the AVX-512
 * kernels). Built when the compiler targets AMX-INT8 (-march=native on such
 * a CPU), used when Linux grants the tile state. fc_matmul_set_amx(false) turns it off
 * process-wide (FASTCHAT_AMX=0 does at start); fc_matmul_amx_available:
 * built, on, and granted. */
void fc_matmul_set_amx(bool on);
bool fc_matmul_amx_available(void);
/* The fewest tokens a q4_0 / q4_1 product takes the tiles with (q8_0 needs
 * 12; INT_MAX: never). */
int fc_matmul_amx_min_tokens(void);

/* ---- bf16 GEMM on AMX tiles (x86_amx.c): the frozen matrices of training ----
 * C (M x N) (+)= bf16(A) (M x K) times a bf16 copy of B (K x N), f32 sums.
 * Bytes of B packed: 0 when this build or CPU has no AMX-BF16, AMX is off,
 * or K or N is not a multiple of 32 (the caller keeps its f32 path). */
size_t fc_gemm_bf16_packed_size(int64_t K, int64_t N);
/* Rounds B to bf16 (nearest even) into dst: element (k, n) is b[k * ldb + n],
 * or b[n * ldb + k] with trans. */
void fc_gemm_bf16_pack(const float *b, int64_t ldb, bool trans, int64_t K, int64_t N, void *dst);
/* Columns [n0, min(n1, N)) (n0, n1 multiples of 32) of C = (accumulate ? C : 0) + bf16(A) Bp,
 * A's M rows lda floats apart, C's ldc apart; one thread's share (the
 * caller splits the columns). false when out of memory (nothing done). */
bool fc_gemm_bf16(const void *bp, int64_t K, int64_t N, const float *a, int64_t lda, int64_t M, float *c,
                  int64_t ldc, bool accumulate, int64_t n0, int64_t n1);

/* ---- single vector dot products (fast path building blocks, exposed for tests) ---- */
/* Dot of one weight row (wtype, K values) with one converted activation row
 * of type atype. */
float fc_vec_dot(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K);
float fc_vec_dot_ref(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K);

/* ---- elementwise and row ops (ref versions in ops_ref.c) ---- */
/* y = x / rms(x) * w, rms over n values. y may alias x. */
void fc_rmsnorm_ref(float *y, const float *x, const float *w, int n, float eps);
void fc_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* In place softmax over n values. */
void fc_softmax_ref(float *x, int n);
/* y[i] = silu(g[i]) * u[i] */
void fc_swiglu_ref(float *y, const float *g, const float *u, int n);
void fc_swiglu(float *y, const float *g, const float *u, int n);
/* dot of two f32 vectors, and y += a * x */
float fc_dot_f32(const float *a, const float *b, int n);
void fc_axpy_f32(float *y, float a, const float *x, int n);

#endif
