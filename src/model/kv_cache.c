/*
 * kv_cache.c: the paged key/value cache: a pool of fixed-size blocks, a
 * free stack, reference counts for shared prefixes, and a block table per
 * sequence. See kv_cache.h for the contract.
 */
#include "kv_cache_impl.h"
#include "tensor/dtype.h"

#include <string.h>
#include <sys/mman.h>

fc_kv_cache *fc_kv_cache_new(const fc_model_config *cfg, const fc_kv_params *p)
{
    if (p->n_tokens <= 0 || p->n_seq_max <= 0 || (p->dtype != FC_DTYPE_F32 && p->dtype != FC_DTYPE_F16)) {
        FC_LOG_ERROR("fc_kv_cache_new: bad parameters (tokens %lld, seqs %d, dtype %d)",
                     (long long)p->n_tokens, p->n_seq_max, p->dtype);
        return NULL;
    }
    fc_kv_cache *kv = fc_xcalloc(1, sizeof *kv);
    kv->L = cfg->n_layer;
    kv->NKV = cfg->n_head_kv;
    kv->HS = cfg->head_dim;
    kv->dtype = p->dtype;
    kv->elt = p->dtype == FC_DTYPE_F32 ? 4 : 2;
    kv->half_bytes = (size_t)kv->NKV * FC_KV_BLOCK * (size_t)kv->HS * kv->elt;
    kv->n_blocks = (p->n_tokens + FC_KV_BLOCK - 1) / FC_KV_BLOCK;
    size_t bytes = (size_t)kv->n_blocks * (size_t)kv->L * 2 * kv->half_bytes;
    /* anonymous mapping: pages are committed only when a block is first
     * written, so a large budget costs address space, not memory */
    void *pool = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    kv->pool = pool == MAP_FAILED ? NULL : pool;
    kv->pool_bytes = bytes;
    if (!kv->pool) {
        FC_LOG_ERROR("fc_kv_cache_new: cannot allocate %zu MiB for %lld tokens", bytes >> 20, (long long)p->n_tokens);
        free(kv);
        return NULL;
    }
    kv->refcnt = fc_xcalloc((size_t)kv->n_blocks, sizeof(int32_t));
    kv->free_ids = fc_xmalloc(sizeof(int32_t) * (size_t)kv->n_blocks);
    for (int64_t i = 0; i < kv->n_blocks; i++) kv->free_ids[i] = (int32_t)(kv->n_blocks - 1 - i);
    kv->n_free = kv->n_blocks;
    kv->n_seq_max = p->n_seq_max;
    kv->seqs = fc_xcalloc((size_t)p->n_seq_max, sizeof(fc_kv_seq));
    return kv;
}

void fc_kv_cache_free(fc_kv_cache *kv)
{
    if (!kv) return;
    for (int s = 0; s < kv->n_seq_max; s++) free(kv->seqs[s].blocks);
    free(kv->seqs);
    free(kv->refcnt);
    free(kv->free_ids);
    if (kv->pool) munmap(kv->pool, kv->pool_bytes);
    free(kv);
}

static void release(fc_kv_cache *kv, int32_t b)
{
    FC_ASSERT(kv->refcnt[b] > 0);
    if (--kv->refcnt[b] == 0) kv->free_ids[kv->n_free++] = b;
}

static int32_t take(fc_kv_cache *kv)
{
    FC_ASSERT(kv->n_free > 0);
    int32_t b = kv->free_ids[--kv->n_free];
    kv->refcnt[b] = 1;
    return b;
}

static void table_grow(fc_kv_seq *s, int n)
{
    if (n <= s->cap) return;
    int cap = s->cap ? s->cap : 8;
    while (cap < n) cap *= 2;
    s->blocks = fc_xrealloc(s->blocks, sizeof(int32_t) * (size_t)cap);
    s->cap = cap;
}

int fc_kv_cache_seq_len(const fc_kv_cache *kv, int seq)
{
    FC_ASSERT(seq >= 0 && seq < kv->n_seq_max);
    return kv->seqs[seq].len;
}

enum fc_status fc_kv_cache_reserve(fc_kv_cache *kv, int seq, int n)
{
    FC_ASSERT(seq >= 0 && seq < kv->n_seq_max && n >= 0);
    fc_kv_seq *s = &kv->seqs[seq];
    int need_blocks = (s->len + n + FC_KV_BLOCK - 1) / FC_KV_BLOCK;
    int64_t new_blocks = need_blocks > s->n_blocks ? need_blocks - s->n_blocks : 0;
    /* the block holding position len is written next: it must not be shared */
    int first = s->len / FC_KV_BLOCK;
    bool cow = n > 0 && first < s->n_blocks && kv->refcnt[s->blocks[first]] > 1;
    if (new_blocks + (cow ? 1 : 0) > kv->n_free) return FC_ERR_FULL;
    if (cow) {
        int32_t old = s->blocks[first], b = take(kv);
        memcpy(fc_kv_block_ptr(kv, b, 0, 0), fc_kv_block_ptr(kv, old, 0, 0), (size_t)kv->L * 2 * kv->half_bytes);
        release(kv, old);
        s->blocks[first] = b;
    }
    table_grow(s, need_blocks);
    while (s->n_blocks < need_blocks) s->blocks[s->n_blocks++] = take(kv);
    return FC_OK;
}

void fc_kv_cache_seq_truncate(fc_kv_cache *kv, int seq, int len)
{
    FC_ASSERT(seq >= 0 && seq < kv->n_seq_max && len >= 0);
    fc_kv_seq *s = &kv->seqs[seq];
    if (len < s->len) s->len = len;
    int keep = (s->len + FC_KV_BLOCK - 1) / FC_KV_BLOCK;
    while (s->n_blocks > keep) release(kv, s->blocks[--s->n_blocks]);
}

void fc_kv_cache_seq_fork(fc_kv_cache *kv, int src, int dst, int n)
{
    FC_ASSERT(src >= 0 && src < kv->n_seq_max && dst >= 0 && dst < kv->n_seq_max && src != dst);
    fc_kv_cache_seq_truncate(kv, dst, 0);
    fc_kv_seq *s = &kv->seqs[src], *d = &kv->seqs[dst];
    if (n > s->len) n = s->len;
    int nb = (n + FC_KV_BLOCK - 1) / FC_KV_BLOCK;
    table_grow(d, nb);
    for (int i = 0; i < nb; i++) {
        d->blocks[i] = s->blocks[i];
        kv->refcnt[s->blocks[i]]++;
    }
    d->n_blocks = nb;
    d->len = n;
}

int64_t fc_kv_cache_free_blocks(const fc_kv_cache *kv) { return kv->n_free; }
int64_t fc_kv_cache_total_blocks(const fc_kv_cache *kv) { return kv->n_blocks; }
int fc_kv_cache_n_seq_max(const fc_kv_cache *kv) { return kv->n_seq_max; }
