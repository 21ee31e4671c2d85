/*
 * embed.c: the embedder's thread and the pooling. See embed.h.
 *
 * Per request: for each chunk of at most chunk_len tokens, from an empty
 * KV sequence, forward the tokens n_batch_max at a time asking for every
 * token's hidden state (fc_model_forward_hidden), and add the states up in
 * double; then divide by the number of tokens and L2-normalize
 * (torch.nn.functional.normalize: x / max(||x||, 1e-12)).
 *
 * Scoring a prompt runs the ordinary forward with logits for every token,
 * SCORE_BATCH tokens at a time, and reads log-softmax at the next token.
 */
#include "embed.h"
#include "../model/kv_cache.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#define SCORE_BATCH 32 /* tokens per forward when scoring: a (32, V) logits buffer */

typedef struct job {
    const int32_t *ids;
    int n;
    float *out;
    bool score;             /* fc_embedder_score: out is lp */
    int k;
    fc_logprob *top;
    enum fc_status status;
    bool done;
    bool (*keep_going)(void *user); /* asked between forward steps; false stops (FC_ERR_ARG) */
    void *user;
    struct job *next;
} job;

struct fc_embedder {
    const fc_model *m;
    fc_embed_params p;
    int C, V;
    /* embedder thread only */
    fc_exec *exec;
    fc_kv_cache *kv;
    int64_t kv_tokens;      /* capacity of kv */
    fc_batch *batch;
    float *hidden;          /* (n_batch_max, C) */
    double *sum;            /* (C) */
    float *logits;          /* (SCORE_BATCH, V), scoring only */
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* new job, or a job done */
    job *head, *tail;
    bool stop;
    pthread_t thread;
};

/* Scratch and a cache for chunks of n tokens. */
static enum fc_status prepare(fc_embedder *e, int n)
{
    if (!e->exec) {
        fc_exec_params ep = {.n_threads = e->p.n_threads, .exact = e->p.exact, .act8 = e->p.act8,
                             .n_batch_max = e->p.n_batch_max};
        e->exec = fc_exec_new(e->m, &ep);
        e->batch = fc_batch_new(e->p.n_batch_max);
        e->hidden = fc_aligned_alloc(sizeof(float) * (size_t)e->p.n_batch_max * (size_t)e->C);
        e->sum = fc_xmalloc(sizeof(double) * (size_t)e->C);
        if (!e->exec || !e->hidden) return FC_ERR_NOMEM;
    }
    if (!e->kv || e->kv_tokens < n) {
        fc_kv_cache_free(e->kv);
        /* round up so a few slightly longer inputs do not each reallocate */
        int64_t want = ((int64_t)n + 255) / 256 * 256;
        if (want > e->p.chunk_len) want = e->p.chunk_len;
        fc_kv_params kp = {.n_tokens = want + FC_KV_BLOCK, .n_seq_max = 1,
                           .dtype = e->p.exact ? FC_DTYPE_F32 : FC_DTYPE_F16};
        e->kv = fc_kv_cache_new(fc_model_get_config(e->m), &kp);
        e->kv_tokens = e->kv ? want : 0;
        if (!e->kv) return FC_ERR_NOMEM;
    }
    return FC_OK;
}

static enum fc_status run(fc_embedder *e, const int32_t *ids, int n, float *out, const job *j)
{
    const int C = e->C;
    if (n <= 0) return FC_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= e->V) return FC_ERR_ARG;
    enum fc_status st = prepare(e, FC_MIN(n, e->p.chunk_len));
    if (st != FC_OK) return st;
    memset(e->sum, 0, sizeof(double) * (size_t)C);
    for (int c0 = 0; c0 < n; c0 += e->p.chunk_len) {
        int cn = FC_MIN(e->p.chunk_len, n - c0);
        fc_kv_cache_seq_truncate(e->kv, 0, 0);
        for (int t0 = 0; t0 < cn; t0 += e->p.n_batch_max) {
            int tn = FC_MIN(e->p.n_batch_max, cn - t0);
            if (j->keep_going && !j->keep_going(j->user)) { /* the caller gave up */
                fc_kv_cache_seq_truncate(e->kv, 0, 0);
                return FC_ERR_ARG;
            }
            fc_batch_clear(e->batch);
            for (int t = 0; t < tn; t++) fc_batch_add(e->batch, ids[c0 + t0 + t], t0 + t, 0, true);
            st = fc_kv_cache_reserve(e->kv, 0, tn);
            if (st == FC_OK) st = fc_model_forward_hidden(e->m, e->exec, e->kv, e->batch, e->hidden);
            if (st != FC_OK) {
                fc_kv_cache_seq_truncate(e->kv, 0, 0);
                return st;
            }
            for (int t = 0; t < tn; t++) {
                const float *h = e->hidden + (size_t)t * (size_t)C;
                for (int i = 0; i < C; i++) e->sum[i] += h[i];
            }
        }
    }
    fc_kv_cache_seq_truncate(e->kv, 0, 0);
    double norm = 0;
    for (int i = 0; i < C; i++) {
        e->sum[i] /= n;
        norm += e->sum[i] * e->sum[i];
    }
    norm = sqrt(norm);
    if (norm < 1e-12) norm = 1e-12;
    for (int i = 0; i < C; i++) out[i] = (float)(e->sum[i] / norm);
    return FC_OK;
}

static enum fc_status run_score(fc_embedder *e, const int32_t *ids, int n, int k, float *lp, fc_logprob *top)
{
    if (n <= 0 || n > e->p.chunk_len || k < 0 || k > 20) return FC_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= e->V) return FC_ERR_ARG;
    enum fc_status st = prepare(e, n);
    if (st != FC_OK) return st;
    if (!e->logits) {
        e->logits = fc_aligned_alloc(sizeof(float) * SCORE_BATCH * (size_t)e->V);
        if (!e->logits) return FC_ERR_NOMEM;
    }
    lp[0] = NAN;
    fc_kv_cache_seq_truncate(e->kv, 0, 0);
    int step = FC_MIN(SCORE_BATCH, e->p.n_batch_max);
    for (int t0 = 0; t0 < n - 1 && st == FC_OK; t0 += step) {
        int tn = FC_MIN(step, n - 1 - t0); /* the last token predicts nothing we need */
        fc_batch_clear(e->batch);
        for (int t = 0; t < tn; t++) fc_batch_add(e->batch, ids[t0 + t], t0 + t, 0, true);
        st = fc_kv_cache_reserve(e->kv, 0, tn);
        if (st == FC_OK) st = fc_model_forward(e->m, e->exec, e->kv, e->batch, e->logits);
        for (int t = 0; t < tn && st == FC_OK; t++) {
            int i = t0 + t + 1;
            lp[i] = fc_logprob_of(e->logits + (size_t)t * (size_t)e->V, e->V, ids[i], k,
                                  k > 0 ? top + (size_t)i * (size_t)k : NULL);
        }
    }
    fc_kv_cache_seq_truncate(e->kv, 0, 0);
    return st;
}

static void *embed_main(void *arg)
{
    fc_embedder *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->head) pthread_cond_wait(&e->cv, &e->mu);
        if (!e->head) break; /* stopping with nothing left */
        job *j = e->head;
        pthread_mutex_unlock(&e->mu);
        enum fc_status st = j->score ? run_score(e, j->ids, j->n, j->k, j->out, j->top) : run(e, j->ids, j->n, j->out, j);
        pthread_mutex_lock(&e->mu);
        e->head = j->next;
        if (!e->head) e->tail = NULL;
        j->status = st;
        j->done = true;
        pthread_cond_broadcast(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

fc_embedder *fc_embedder_new(const fc_model *m, const fc_embed_params *p)
{
    const fc_model_config *c = fc_model_get_config(m);
    fc_embedder *e = fc_xcalloc(1, sizeof *e);
    e->m = m;
    e->p = p ? *p : (fc_embed_params){0};
    if (e->p.n_batch_max <= 0) e->p.n_batch_max = 512;
    if (e->p.chunk_len <= 0) e->p.chunk_len = c->n_ctx_train > 0 ? c->n_ctx_train : 2048;
    e->C = c->n_embd;
    e->V = c->n_vocab;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, embed_main, e) != 0) {
        FC_LOG_ERROR("fc_embedder_new: cannot start the embedder thread");
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        free(e);
        return NULL;
    }
    return e;
}

void fc_embedder_free(fc_embedder *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    fc_exec_free(e->exec);
    fc_kv_cache_free(e->kv);
    fc_batch_free(e->batch);
    fc_aligned_free(e->hidden);
    fc_aligned_free(e->logits);
    free(e->sum);
    free(e);
}

int fc_embedder_dim(const fc_embedder *e) { return e->C; }

/* Queues a job and waits for the embedder's thread to finish it. */
static enum fc_status submit(fc_embedder *e, job *j)
{
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        return FC_ERR_ARG;
    }
    if (e->tail) e->tail->next = j;
    else e->head = j;
    e->tail = j;
    pthread_cond_broadcast(&e->cv);
    while (!j->done) pthread_cond_wait(&e->cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return j->status;
}

enum fc_status fc_embedder_embed(fc_embedder *e, const int32_t *ids, int n, float *out)
{
    job j = {.ids = ids, .n = n, .out = out};
    return submit(e, &j);
}

enum fc_status fc_embedder_embed_ex(fc_embedder *e, const int32_t *ids, int n, float *out,
                                    bool (*keep_going)(void *user), void *user)
{
    job j = {.ids = ids, .n = n, .out = out, .keep_going = keep_going, .user = user};
    return submit(e, &j);
}

enum fc_status fc_embedder_score(fc_embedder *e, const int32_t *ids, int n, int k, float *lp, fc_logprob *top)
{
    job j = {.ids = ids, .n = n, .out = lp, .score = true, .k = k, .top = top};
    return submit(e, &j);
}
