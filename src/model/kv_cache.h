/*
 * kv_cache.h: a paged key/value cache (vLLM-style).
 *
 * Keys and values live in fixed-size blocks of FC_KV_BLOCK tokens taken from
 * one pool sized by a token budget. Each sequence owns a block table mapping
 * its positions to blocks. Blocks are reference-counted, so a sequence can
 * share another's prefix without copying (fc_kv_cache_seq_fork); a shared
 * block that must be written is copied first (copy-on-write of the partial
 * last block only).
 *
 * Layout of one block, per layer: K then V, each (NKV, FC_KV_BLOCK, HS)
 * in f32 or f16.
 *
 * Engine thread only: no internal locking.
 */
#ifndef FC_KV_CACHE_H
#define FC_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include "model.h"

#define FC_KV_BLOCK 16

typedef struct fc_kv_cache fc_kv_cache;

typedef struct fc_kv_params {
    int64_t n_tokens;  /* token budget: the pool holds ceil(n_tokens / FC_KV_BLOCK) blocks */
    int n_seq_max;     /* sequence ids are in [0, n_seq_max) */
    enum fc_dtype dtype; /* FC_DTYPE_F32 or FC_DTYPE_F16 */
} fc_kv_params;

/* NULL (logged) if the pool cannot be allocated. */
fc_kv_cache *fc_kv_cache_new(const fc_model_config *cfg, const fc_kv_params *p);
void fc_kv_cache_free(fc_kv_cache *kv);

/* Number of tokens stored for seq (0 if unused). */
int fc_kv_cache_seq_len(const fc_kv_cache *kv, int seq);
/* Makes room for n more tokens of seq (allocating blocks, copying a shared
 * last block). FC_ERR_FULL if the pool cannot supply them; nothing changes
 * then. */
enum fc_status fc_kv_cache_reserve(fc_kv_cache *kv, int seq, int n);
/* Drops positions >= len of seq (len 0 removes the sequence), freeing blocks. */
void fc_kv_cache_seq_truncate(fc_kv_cache *kv, int seq, int len);
/* dst becomes a sequence sharing the first n tokens of src without copying
 * (dst is cleared first). */
void fc_kv_cache_seq_fork(fc_kv_cache *kv, int src, int dst, int n);
int64_t fc_kv_cache_free_blocks(const fc_kv_cache *kv);
int64_t fc_kv_cache_total_blocks(const fc_kv_cache *kv);
int fc_kv_cache_n_seq_max(const fc_kv_cache *kv);

#endif
