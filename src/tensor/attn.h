/*
 * attn.h: the inner loops of attention over a paged KV cache: dot products
 * of a query with cached keys and weighted sums of cached values, for keys
 * and values stored as f32 (exact mode) or f16 (fast mode, half the memory
 * traffic of long contexts).
 *
 * Each function handles G query heads at once (grouped-query attention: the
 * G heads that share one key/value head read each cached row once).
 */
#ifndef FC_ATTN_H
#define FC_ATTN_H

#include <stdint.h>
#include "dtype.h"

/* s[g * s_stride] = dot(q + g * HS, k) for g < G; k has HS values of kv_type. */
void fc_attn_qk(const float *q, int G, int HS, const void *k, int kv_type, float *s, int s_stride);
/* out[g*HS + i] += w[g * w_stride] * v[i] for g < G; v has HS values of kv_type. */
void fc_attn_av(float *out, int G, int HS, const void *v, int kv_type, const float *w, int w_stride);
/* Scalar references of the two, for the tests. */
void fc_attn_qk_ref(const float *q, int G, int HS, const void *k, int kv_type, float *s, int s_stride);
void fc_attn_av_ref(float *out, int G, int HS, const void *v, int kv_type, const float *w, int w_stride);

#endif
