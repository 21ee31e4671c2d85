/*
 * train_fast.h: the fast path's matrix products for train_ref.c: OpenBLAS
 * f32 GEMMs (cblas_sgemm, single-threaded inside) split across the model's
 * thread pool, so our threads and OpenBLAS's never compete for the cores.
 *
 * Shapes as train_ref.c: inp (N, IC), w (OC, IC) row-major (PyTorch's
 * Linear.weight), out / dout (N, OC). Buffers are borrowed; pool may be NULL
 * (everything on the calling thread).
 */
#ifndef FC_TRAIN_FAST_H
#define FC_TRAIN_FAST_H

#include <stdbool.h>
#include <stddef.h>

#include "base/pool.h"

/* C (M, Nn) = alpha op(A) op(B) + beta C, row-major, op(X) = X^T when ta /
 * tb; lda, ldb, ldc are the row lengths of A, B, C as stored. */
void fc_train_gemm(fc_pool *pool, bool ta, bool tb, long M, long Nn, long K, float alpha, const float *A, long lda,
                   const float *B, long ldb, float beta, float *C, long ldc);

/* out = inp @ w^T (+ bias when not NULL); out is overwritten. */
void fc_train_gemm_forward(fc_pool *pool, float *out, const float *inp, const float *w,
                           const float *bias, long N, long IC, long OC);

/* dinp += dout @ w (when dinp), dw += dout^T @ inp (when dw),
 * db += column sums of dout (when db). */
void fc_train_gemm_backward(fc_pool *pool, float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, long N, long IC, long OC);

/* Element-wise kernels of the fast path, with a vectorized e^x (about 1 ulp
 * from expf):
 * fc_train_softmax_row: z = exp(z - max z) in place; returns their sum (in
 * double) and sets *lse = log(sum exp(z)) of the input row. */
double fc_train_softmax_row(float *z, long n, double *lse);
void fc_train_scale(float *z, float k, long n);
/* h = silu(g) * u, and its backward: dg, du (overwritten) from dh; split
 * over pool (may be NULL). */
void fc_train_silu_mul(fc_pool *pool, float *h, const float *g, const float *u, long n);
void fc_train_silu_mul_backward(fc_pool *pool, float *dg, float *du, const float *dh, const float *g,
                                const float *u, long n);

/* Causal softmax attention of one (batch, head) pair on the calling thread,
 * as OpenBLAS GEMMs over blocks of rows that skip most of the masked part:
 * q (T, HS) rows ldq apart, k, v rows ldkv apart (grouped-query heads share
 * them). Forward: att (T, T) = softmax(q k^T * scale) with zeros above the
 * diagonal, o (T, HS, rows ldq apart) = att v. Backward from dout (as o):
 * dq += dS k, dk += dS^T q, dv += att^T dout with dS the softmax's backward;
 * scratch holds T * T floats. */
void fc_train_attn_forward(float *att, float *o, const float *q, const float *k, const float *v, int T, int HS,
                           long ldq, long ldkv, float scale);
void fc_train_attn_backward(float *dq, float *dk, float *dv, float *scratch, const float *att, const float *dout,
                            const float *q, const float *k, const float *v, int T, int HS, long ldq, long ldkv,
                            float scale);

/* ---- bf16 compute for frozen matrices (--bf16 True with LoRA) ----
 * A set of frozen f32 matrices (OC, IC), each rounded once to bf16 in the
 * two tile layouts of fc_gemm_bf16 (tensor/ops.h: AMX-BF16), keyed by the
 * f32 matrix's address. The products round the activations (inputs and
 * output gradients) to bf16 and sum in f32.
 *   forward   out (N, OC) = bf16(inp) bf16(W)^T (+ bias)
 *   backward  dinp (N, IC) += bf16(dout) bf16(W)
 * Any sizes (the packing pads them to multiples of 32). new: NULL where
 * this build or CPU has no AMX-BF16 (or AMX is off); add: false when out of
 * memory; forward / backward: false (nothing done) when w is not in the
 * set, its shape differs, or the scratch cannot be allocated. */
typedef struct fc_bf16set fc_bf16set;
fc_bf16set *fc_bf16set_new(void);
void fc_bf16set_free(fc_bf16set *s);
bool fc_bf16set_add(fc_bf16set *s, const float *w, long OC, long IC);
size_t fc_bf16set_bytes(const fc_bf16set *s);
bool fc_bf16set_forward(const fc_bf16set *s, fc_pool *pool, float *out, const float *inp, const float *w,
                        const float *bias, long N, long IC, long OC);
bool fc_bf16set_backward(const fc_bf16set *s, fc_pool *pool, float *dinp, const float *dout, const float *w, long N,
                         long IC, long OC);

#endif
