/*
 * attn.h: attention over a paged KV cache, one cache block at a time, for a
 * tile of query rows (flash-attention style: a running max, sum and
 * weighted value sum per row, so the scores of a long context are never
 * all held at once).
 *
 * A tile is up to FC_ATTN_ROWS query rows that read the same key/value head:
 * the G heads of grouped-query attention that share it, for one or several
 * consecutive tokens of a sequence. Each cached block of keys and values is
 * converted from its stored type (f32 in exact mode, f16 in fast mode) once
 * per tile, not once per row, and its scores come from small matrix
 * products (rows x 16 keys x head size), not from one dot product per pair.
 *
 *   fc_attn_state st;
 *   fc_attn_begin(&st, scratch, q, G, tok_stride, R, HS, 1 / sqrt(HS));
 *   for each cache block: fc_attn_block(&st, k, v, kv_type, n, lim);
 *   fc_attn_end(&st, out, G, tok_stride);         out row r = softmax(q_r K^T) V
 *
 * A context may also be cut into chunks processed by different threads, each
 * with its own state, and joined by fc_attn_merge (flash-decoding).
 */
#ifndef FC_ATTN_H
#define FC_ATTN_H

#include <stddef.h>
#include <stdint.h>
#include "dtype.h"

#define FC_ATTN_BLOCK 16 /* keys per fc_attn_block call (the KV cache block) */
#define FC_ATTN_ROWS 32  /* most query rows of a tile */
#define FC_ATTN_SMALL_R 4 /* tiles of at most this many rows (decode: one token's G heads) take the small path */

typedef struct fc_attn_state {
    int R, RP, HS;   /* rows, rows rounded up to 8, head size */
    int small;       /* decode path (R <= FC_ATTN_SMALL_R, AVX2): qt holds the rows untransposed (R, HS)
                        and the keys and values are read where they are, not converted to kf / vf */
    float *qt;       /* (HS, RP) the scaled query rows, transposed (small: (R, HS)) */
    float *m, *l;    /* (RP) running max and sum of exp(score - max) */
    float *acc;      /* (R, HS) running sum of exp(score - max) * value */
    float *kf, *vf;  /* (FC_ATTN_BLOCK, HS) the block's keys and values in f32 */
    float *p;        /* (FC_ATTN_BLOCK, RP) scores, then weights, key-major */
    float cap;       /* > 0: scores soft-capped, s -> cap * tanh(s / cap) (Gemma 2); fc_attn_begin sets 0 */
} fc_attn_state;

/* Floats of scratch a state of R rows and head size HS needs (64-byte
 * aligned scratch keeps every array aligned). */
size_t fc_attn_scratch_floats(int R, int HS);
/* Rows come G per token: row r lives at  base + (r / G) * tok_stride + (r % G) * HS
 * (the G heads of a token are adjacent; tokens tok_stride floats apart). */
/* Starts a tile: rows r < R of q, times scale. */
void fc_attn_begin(fc_attn_state *st, float *scratch, const float *q, int G, int64_t tok_stride, int R, int HS,
                   float scale);
/* Soft-caps the (scaled) scores of this tile from here on: cap * tanh(s / cap)
 * before the softmax (Gemma 2's attn_logit_softcapping); cap <= 0: none. */
void fc_attn_set_softcap(fc_attn_state *st, float cap);
/* Adds n <= FC_ATTN_BLOCK keys and values (rows of HS values of kv_type,
 * HS apart; f32 or f16). Row r sees the first lim[r] of them (0..n). */
void fc_attn_block(fc_attn_state *st, const void *k, const void *v, enum fc_dtype kv_type, int n, const int *lim);
/* out row r = acc_r / l_r; a row that saw no key gets zeros. */
void fc_attn_end(const fc_attn_state *st, float *out, int G, int64_t tok_stride);
/* The same from n states of the same rows that saw disjoint chunks of keys. */
void fc_attn_merge(const fc_attn_state *const *parts, int n, float *out, int G, int64_t tok_stride);

/* Scalar reference (double sums, two-pass softmax) for the tests: rows q
 * (R x HS, contiguous) against n keys/values of kv_type, row r seeing the
 * first lim[r] keys; out (R x HS). */
void fc_attn_ref(const float *q, int R, int HS, float scale, const void *k, const void *v, enum fc_dtype kv_type, int n,
                 const int *lim, float *out);

#endif
