/*
 * kv_cache_impl.h: the inside of fc_kv_cache, for the forward pass.
 */
#ifndef FC_KV_CACHE_IMPL_H
#define FC_KV_CACHE_IMPL_H

#include "kv_cache.h"

typedef struct fc_kv_seq {
    int len;          /* tokens written */
    int n_blocks;     /* blocks in the table (capacity n_blocks * FC_KV_BLOCK) */
    int cap;          /* allocated entries of blocks[] */
    int32_t *blocks;  /* block ids, in position order */
} fc_kv_seq;

struct fc_kv_cache {
    int L, NKV, HS;
    enum fc_dtype dtype;    /* FC_DTYPE_F32 or FC_DTYPE_F16 */
    size_t elt;             /* bytes per element */
    size_t half_bytes;      /* bytes of K (or V) of one layer of one block: NKV*BLOCK*HS*elt */
    int64_t n_blocks;
    uint8_t *pool;          /* (n_blocks, L, 2, NKV, BLOCK, HS), anonymous mapping */
    size_t pool_bytes;
    int32_t *refcnt;        /* (n_blocks) */
    int32_t *free_ids;      /* stack of free block ids */
    int64_t n_free;
    int n_seq_max;
    fc_kv_seq *seqs;        /* (n_seq_max) */
};

/* K (kv = 0) or V (kv = 1) of layer l in block b: (NKV, BLOCK, HS). */
static inline void *fc_kv_block_ptr(const fc_kv_cache *kv, int32_t b, int l, int which)
{
    return kv->pool + (((size_t)b * (size_t)kv->L + (size_t)l) * 2 + (size_t)which) * kv->half_bytes;
}

#endif
