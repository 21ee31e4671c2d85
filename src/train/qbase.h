/*
 * qbase.h: the frozen base matrices of QLoRA training kept in their stored
 * (quantized) form: q4_0, q4_1, q5_0, q5_1, q8_0, the K-quants, f16, bf16
 * or f32, read in place from the loaded model (a GGUF file's mapping).
 *
 * train_ref.c registers each frozen projection matrix under a key, the
 * address its f32 copy would have had (the trainer's weight pointers stay
 * unique but point at one placeholder float each); matmul_forward /
 * matmul_backward of train_ref.c hand a product to fc_qbase_forward /
 * fc_qbase_backward, which take it when the weight is one of theirs:
 *
 *   forward   out (N, OC) = inp (N, IC) W^T (+ bias): each thread takes a
 *             range of W's rows, dequantizes a tile of them at a time into
 *             its own scratch buffer (2 MiB) and multiplies it with an
 *             OpenBLAS sgemm;
 *   backward  dinp (N, IC) += dout (N, OC) W: each thread takes a range of
 *             W's columns (whole blocks), dequantizes that slice of a tile of
 *             rows at a time, sgemm with beta 1. No dW (the base is frozen).
 *
 * W is never held in f32: memory is the stored matrix plus one tile per
 * thread. Measured (N = 256 tokens, one thread, CPU time, q4_1, SmolLM2's
 * shapes): 1.02-1.10x the f32 sgemm's time forward, 1.03-1.08x backward;
 * the engine's own kernels are slower at this N (fc_matmul_fast with
 * 16-bit activations 1.3-1.6x, fc_matmul_exact 1.0-1.2x, forward only) and
 * the 16-bit activations would not give f32's results. The tiles hold exactly the values fc_dequantize_row_ref gives, so
 * the products equal those over the dequantized f32 matrix up to the order
 * of the sums (OpenBLAS blocks the K dimension differently on a tile).
 * GGUF llama files store the Q/K rows of each head interleaved; a matrix
 * registered with perm_heads > 0 is read in Hugging Face's rotate-half row
 * order (the same mapping as train_ref.c's unpermute_rows).
 *
 * Threads: one fc_qbase serves one fc_train_model (one product at a time);
 * its scratch buffers are per pool thread.
 */
#ifndef FC_TRAIN_QBASE_H
#define FC_TRAIN_QBASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "tensor/tensor.h"

typedef struct fc_qbase fc_qbase;

fc_qbase *fc_qbase_new(void);
void fc_qbase_free(fc_qbase *qb); /* NULL is a no-op */

/* Registers tensor t (borrowed: it must outlive qb) as the (rows, cols)
 * matrix known by key. perm_heads > 0: rows are GGUF-interleaved per head of
 * head_dim rows. false when t's type cannot be read, its shape differs or
 * cols is not a multiple of its block size (logged). */
bool fc_qbase_add(fc_qbase *qb, const float *key, const fc_tensor *t, int64_t rows, int64_t cols,
                  int perm_heads, int head_dim);

/* Bytes of the registered matrices as stored. */
size_t fc_qbase_bytes(const fc_qbase *qb);
/* Matrices registered. */
int fc_qbase_count(const fc_qbase *qb);

/* The products above when w is a registered key (shapes must match: false
 * and nothing done otherwise). pool may be NULL. backward: dw must be NULL
 * (frozen); db, when not NULL, gets the column sums of dout added. */
bool fc_qbase_forward(fc_qbase *qb, fc_pool *pool, float *out, const float *inp, const float *w,
                      const float *bias, long N, long IC, long OC);
bool fc_qbase_backward(fc_qbase *qb, fc_pool *pool, float *dinp, float *dw, float *db, const float *dout,
                       const float *w, long N, long IC, long OC);

#endif
