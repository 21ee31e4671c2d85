/*
 * bpe.c: the BPE model: one pre-tokenized piece in, token ids out. Mirrors
 * Hugging Face tokenizers' models/bpe (Word::merge_all): the piece is cut
 * into symbols (bytes for a byte-level vocabulary, else characters; a
 * character outside the vocabulary becomes its <0xNN> byte tokens under
 * byte_fallback, else the unk token -- consecutive unks fused under fuse_unk
 * -- or nothing when there is no unk), then the adjacent pair with the
 * lowest merge rank is merged, the leftmost one among equal ranks, until no
 * pair has a merge. With ignore_merges a piece that is itself in the
 * vocabulary is one token.
 *
 * SentencePiece BPE (GGUF "llama") needs no separate algorithm: its rule,
 * "merge the pair whose union has the best score", is this one with ranks
 * ordered by score (load_gguf.c builds those ranks, as transformers does).
 *
 * Speed: a linked list over a symbol array; short pieces (the usual case) find
 * the best pair by a scan of cached pair ranks, long ones use a binary heap
 * with lazy invalidation, so a 100 kB run of one letter stays O(n log n). A
 * direct-mapped cache of recent pieces (locked per shard, so tokenizers can
 * be shared between threads) skips all of it for repeated words.
 */
#include "tok_impl.h"

#include <limits.h>
#include <string.h>

/* ---- word cache ---- */

enum fc_status fc_tok_cache_init(fc_tok_cache *c)
{
    c->e = fc_xcalloc(TK_CACHE_SLOTS, sizeof(fc_tok_cache_entry));
    for (int i = 0; i < TK_CACHE_SHARDS; i++) pthread_mutex_init(&c->mu[i], NULL);
    return FC_OK;
}

void fc_tok_cache_free(fc_tok_cache *c)
{
    if (!c->e) return;
    for (int i = 0; i < TK_CACHE_SHARDS; i++) pthread_mutex_destroy(&c->mu[i]);
    free(c->e);
    c->e = NULL;
}

static bool cache_get(const fc_tokenizer *t, uint64_t h, const char *s, size_t n, fc_tok_ivec *out)
{
    fc_tok_cache *c = (fc_tok_cache *)&t->cache;
    uint32_t slot = (uint32_t)h & (TK_CACHE_SLOTS - 1);
    pthread_mutex_t *mu = &c->mu[slot % TK_CACHE_SHARDS];
    fc_tok_cache_entry *e = &c->e[slot];
    bool hit = false;
    pthread_mutex_lock(mu);
    if (e->key_len == n && e->hash == (uint32_t)(h >> 32) && !memcmp(e->key, s, n)) {
        for (int i = 0; i < e->n_ids; i++) fc_tok_ivec_push(out, e->ids[i]);
        hit = true;
    }
    pthread_mutex_unlock(mu);
    return hit;
}

static void cache_put(const fc_tokenizer *t, uint64_t h, const char *s, size_t n, const int32_t *ids,
                      size_t n_ids)
{
    if (n_ids > TK_CACHE_IDS) return;
    fc_tok_cache *c = (fc_tok_cache *)&t->cache;
    uint32_t slot = (uint32_t)h & (TK_CACHE_SLOTS - 1);
    pthread_mutex_t *mu = &c->mu[slot % TK_CACHE_SHARDS];
    fc_tok_cache_entry *e = &c->e[slot];
    pthread_mutex_lock(mu);
    e->hash = (uint32_t)(h >> 32);
    e->key_len = (uint8_t)n;
    e->n_ids = (uint8_t)n_ids;
    memcpy(e->key, s, n);
    if (n_ids) memcpy(e->ids, ids, n_ids * sizeof(int32_t));
    pthread_mutex_unlock(mu);
}

/* ---- symbols ---- */

typedef struct sym {
    int32_t id;
    int32_t prev, next;     /* -1 at the ends */
    int32_t rank, merged;   /* merge of (this, next): rank (INT_MAX none) and result */
} sym;

typedef struct heap_item { int32_t rank, pos; } heap_item;

static sym *sym_buf(fc_tok_scratch *sc, size_t n)
{
    if (sc->bpe_cap < n) {
        sc->bpe_cap = n < 64 ? 64 : n;
        free(sc->bpe);
        sc->bpe = fc_xmalloc(sc->bpe_cap * sizeof(sym));
    }
    return sc->bpe;
}

static void pair_rank(const fc_tokenizer *t, sym *v, int32_t i)
{
    int32_t j = v[i].next;
    v[i].rank = INT_MAX;
    if (j < 0) return;
    const fc_tok_merge *m = fc_tok_mergemap_get(&t->merges, v[i].id, v[j].id);
    if (m) {
        v[i].rank = m->rank;
        v[i].merged = m->id;
    }
}

/* Merges symbol i with its right neighbour. */
static void merge_at(sym *v, int32_t i)
{
    int32_t j = v[i].next;
    v[i].id = v[i].merged;
    v[i].next = v[j].next;
    if (v[j].next >= 0) v[v[j].next].prev = i;
    v[j].id = -1; /* dead */
}

static void merge_linear(const fc_tokenizer *t, sym *v, int32_t n)
{
    for (int32_t i = 0; i < n; i++) pair_rank(t, v, i);
    for (;;) {
        int32_t best = INT_MAX, bi = -1;
        for (int32_t i = 0; i >= 0; i = v[i].next)
            if (v[i].rank < best) { best = v[i].rank; bi = i; }
        if (bi < 0) return;
        merge_at(v, bi);
        pair_rank(t, v, bi);
        if (v[bi].prev >= 0) pair_rank(t, v, v[bi].prev);
    }
}

static bool heap_less(heap_item a, heap_item b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
    return top;
}

static void merge_heap(const fc_tokenizer *t, fc_tok_scratch *sc, sym *v, int32_t n)
{
    /* every merge pushes at most two entries */
    size_t need = (size_t)n * 3 * sizeof(heap_item);
    if (sc->heap_cap < need) {
        free(sc->heap);
        sc->heap = fc_xmalloc(need);
        sc->heap_cap = need;
    }
    heap_item *h = sc->heap;
    size_t hn = 0;
    for (int32_t i = 0; i < n; i++) {
        pair_rank(t, v, i);
        if (v[i].rank != INT_MAX) heap_push(h, &hn, (heap_item){v[i].rank, i});
    }
    while (hn) {
        heap_item top = heap_pop(h, &hn);
        int32_t i = top.pos;
        /* stale entries: the symbol died, or its pair changed since */
        if (v[i].id < 0 || v[i].next < 0 || v[i].rank != top.rank) continue;
        merge_at(v, i);
        pair_rank(t, v, i);
        if (v[i].rank != INT_MAX) heap_push(h, &hn, (heap_item){v[i].rank, i});
        int32_t p = v[i].prev;
        if (p >= 0) {
            pair_rank(t, v, p);
            if (v[p].rank != INT_MAX) heap_push(h, &hn, (heap_item){v[p].rank, p});
        }
    }
}

/* ---- one piece ---- */

void fc_tok_bpe_word(const fc_tokenizer *t, fc_tok_scratch *sc, const char *s, size_t n, fc_tok_ivec *out)
{
    if (n == 0) return;
    if (n == 1 && t->byte_level && t->byte_tok[(uint8_t)s[0]] >= 0) { /* most punctuation, digits */
        fc_tok_ivec_push(out, t->byte_tok[(uint8_t)s[0]]);
        return;
    }
    uint64_t h = 0;
    bool cacheable = n <= TK_CACHE_KEY;
    if (cacheable) {
        h = fc_tok_hash(s, n);
        if (cache_get(t, h, s, n, out)) return;
    }
    size_t out0 = out->n;
    if (t->ignore_merges) {
        int32_t id = fc_tok_strmap_get(&t->by_key, s, n);
        if (id >= 0) {
            fc_tok_ivec_push(out, id);
            goto done;
        }
    }

    /* Symbols. Byte-fallback can turn one character into up to 4 symbols, so
     * n (bytes) bounds the count either way. */
    sym *v = sym_buf(sc, n);
    int32_t ns = 0, unk_pending = 0;
    const uint8_t *u = (const uint8_t *)s;
#define PUSH(x) do { v[ns] = (sym){(x), ns - 1, ns + 1, INT_MAX, -1}; ns++; } while (0)
    for (size_t i = 0; i < n;) {
        int32_t id;
        size_t l = 1;
        if (t->byte_level) {
            id = t->byte_tok[u[i]];
        } else {
            int cl = fc_utf8_len(u + i, n - i);
            l = cl ? (size_t)cl : 1;
            id = fc_tok_strmap_get(&t->by_key, s + i, l);
        }
        if (id >= 0) {
            if (unk_pending) { PUSH(t->model_unk); unk_pending = 0; }
            PUSH(id);
        } else {
            bool done_bytes = false;
            if (t->byte_fallback && !t->byte_level) {
                bool all = true;
                for (size_t k = 0; k < l; k++) all = all && t->byte_tok[u[i + k]] >= 0;
                if (all) {
                    /* HF pushes the byte tokens before a pending unk */
                    for (size_t k = 0; k < l; k++) PUSH(t->byte_tok[u[i + k]]);
                    done_bytes = true;
                }
            }
            if (!done_bytes && t->model_unk >= 0) {
                if (unk_pending && !t->fuse_unk) PUSH(t->model_unk);
                unk_pending = 1;
            }
        }
        i += l;
    }
    if (unk_pending) PUSH(t->model_unk);
#undef PUSH
    if (ns == 0) goto done;
    v[ns - 1].next = -1;
    if (ns > 1) {
        if (ns <= 64) merge_linear(t, v, ns);
        else merge_heap(t, sc, v, ns);
    }
    for (int32_t i = 0; i >= 0; i = v[i].next) fc_tok_ivec_push(out, v[i].id);
done:
    if (cacheable) cache_put(t, h, s, n, out->n > out0 ? out->v + out0 : NULL, out->n - out0);
}
