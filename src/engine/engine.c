/*
 * engine.c: the scheduler thread, admission with prefix reuse, chunked
 * prefill, preemption, sampling and the text stream. See engine.h.
 */
#include "engine.h"
#include "../model/kv_cache.h"

#include <pthread.h>
#include <string.h>

/* ---- requests ---- */

typedef struct req {
    uint64_t id;
    fc_engine_cb cb;
    void *user;
    int32_t *tokens;        /* prompt then generated tokens */
    int n_tokens, cap;
    int n_prompt;
    int n_gen;
    int n_computed;         /* tokens of `tokens` in the KV cache */
    int n_cached;           /* prompt tokens reused from the prefix cache */
    int seq;                /* KV sequence slot, -1 while waiting */
    fc_sampler *sampler;
    int max_new;
    char **stop;
    int n_stop;
    int32_t *stop_ids;
    int n_stop_ids;
    int logprobs;
    fc_detok *detok;
    char *text;             /* all generated text so far */
    size_t text_len, text_cap, sent;
    bool cancelled;
    const char *error;      /* set: finish with FC_FINISH_ERROR at the next step */
    struct req *next;       /* waiting list / incoming queue */
} req;

enum slot_state { SLOT_FREE = 0, SLOT_RUNNING, SLOT_CACHED };

typedef struct slot {
    enum slot_state state;
    req *owner;             /* RUNNING */
    int32_t *tokens;        /* CACHED: the tokens whose keys/values the slot holds */
    int n_tokens;
    uint64_t last_used;
} slot;

struct fc_engine {
    const fc_model *m;
    const fc_tokenizer *tok;
    fc_exec *exec;
    fc_kv_cache *kv;
    fc_batch *batch;
    int V, n_ctx, n_seq_max, n_batch_max;
    float *logits;          /* (n_seq_max, V) */
    float *raw;             /* (V) copy of raw logits for logprobs */
    req **row_req;          /* (n_seq_max) which request each logits row belongs to */
    slot *slots;            /* (n_seq_max) */
    req **running;          /* (n_seq_max) in admission order */
    int n_running;
    req *waiting;           /* FIFO, scheduler-owned */
    uint64_t clock;
    /* shared with other threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    req *incoming, *incoming_tail;
    uint64_t *cancels;
    int n_cancels, cap_cancels;
    uint64_t next_id;
    bool stop;
    fc_engine_stats stats;
    pthread_t thread;
};

const char *fc_finish_name(enum fc_finish f)
{
    switch (f) {
    case FC_FINISH_STOP: return "stop";
    case FC_FINISH_LENGTH: return "length";
    case FC_FINISH_ABORT: return "abort";
    case FC_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

static void req_free(req *r)
{
    if (!r) return;
    free(r->tokens);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->stop_ids);
    fc_sampler_free(r->sampler);
    fc_detok_free(r->detok);
    free(r->text);
    free(r);
}

static void push_token(req *r, int32_t t)
{
    if (r->n_tokens == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->tokens = fc_xrealloc(r->tokens, sizeof(int32_t) * (size_t)r->cap);
    }
    r->tokens[r->n_tokens++] = t;
}

static void text_append(req *r, const char *s, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        r->text_cap = (r->text_len + n + 1) * 2;
        r->text = fc_xrealloc(r->text, r->text_cap);
    }
    memcpy(r->text + r->text_len, s, n);
    r->text_len += n;
    r->text[r->text_len] = 0;
}

/* ---- events ---- */

static void emit(fc_engine *e, req *r, const char *text, size_t len, int32_t token, float lp, const fc_logprob *top,
                 int n_top, enum fc_finish fin)
{
    fc_gen_event ev = {
        .id = r->id, .text = text ? text : "", .len = len, .token = token, .logprob = lp, .top = top,
        .n_top = n_top, .finish = fin, .error = fin == FC_FINISH_ERROR ? r->error : NULL,
        .prompt_tokens = r->n_prompt, .completion_tokens = r->n_gen, .cached_tokens = r->n_cached,
    };
    (void)e;
    r->cb(&ev, r->user);
}

/* ---- slots and the KV cache ---- */

/* Frees the least recently used cached slot's blocks; false if none. */
static bool evict_one(fc_engine *e, int keep)
{
    int best = -1;
    for (int s = 0; s < e->n_seq_max; s++)
        if (s != keep && e->slots[s].state == SLOT_CACHED && (best < 0 || e->slots[s].last_used < e->slots[best].last_used))
            best = s;
    if (best < 0) return false;
    fc_kv_cache_seq_truncate(e->kv, best, 0);
    free(e->slots[best].tokens);
    e->slots[best] = (slot){0};
    return true;
}

static int free_slot(fc_engine *e)
{
    for (int s = 0; s < e->n_seq_max; s++)
        if (e->slots[s].state == SLOT_FREE) return s;
    if (!evict_one(e, -1)) return -1;
    return free_slot(e);
}

/* The tokens held by slot s, whichever its state. */
static const int32_t *slot_tokens(const fc_engine *e, int s, int *n)
{
    const slot *sl = &e->slots[s];
    if (sl->state == SLOT_RUNNING) {
        *n = sl->owner->n_computed;
        return sl->owner->tokens;
    }
    *n = sl->n_tokens;
    return sl->tokens;
}

/* Releases r's slot: its computed tokens stay cached for later prompts. */
static void release_slot(fc_engine *e, req *r)
{
    if (r->seq < 0) return;
    slot *sl = &e->slots[r->seq];
    int n = r->n_computed;
    fc_kv_cache_seq_truncate(e->kv, r->seq, n);
    if (n > 0) {
        sl->state = SLOT_CACHED;
        sl->tokens = fc_xmalloc(sizeof(int32_t) * (size_t)n);
        memcpy(sl->tokens, r->tokens, sizeof(int32_t) * (size_t)n);
        sl->n_tokens = n;
        sl->owner = NULL;
        sl->last_used = ++e->clock;
    } else {
        *sl = (slot){0};
    }
    r->seq = -1;
}

static void remove_running(fc_engine *e, req *r)
{
    for (int i = 0; i < e->n_running; i++)
        if (e->running[i] == r) {
            memmove(&e->running[i], &e->running[i + 1], sizeof(req *) * (size_t)(e->n_running - i - 1));
            e->n_running--;
            return;
        }
}

static void finish(fc_engine *e, req *r, enum fc_finish fin)
{
    /* what the stop-string hold-back and the UTF-8 hold-back kept */
    if (fin == FC_FINISH_LENGTH || fin == FC_FINISH_ABORT) {
        size_t n;
        const char *tail = r->detok ? fc_detok_flush(r->detok, &n) : "";
        if (r->detok) text_append(r, tail, n);
    }
    size_t from = r->sent, len = r->text_len > from ? r->text_len - from : 0;
    if (fin == FC_FINISH_ERROR) len = 0;
    emit(e, r, r->text ? r->text + from : "", len, -1, 0, NULL, 0, fin);
    release_slot(e, r);
    remove_running(e, r);
    req_free(r);
}

/* Longest common prefix of a and b, at most n. */
static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

/* Gives r a slot, reusing the longest cached or running prefix of its
 * tokens. Returns false when no slot or not enough KV room is available
 * now (r keeps waiting). */
static bool admit(fc_engine *e, req *r)
{
    int best = -1, best_len = 0;
    for (int s = 0; s < e->n_seq_max; s++) {
        if (e->slots[s].state == SLOT_FREE) continue;
        int n;
        const int32_t *t = slot_tokens(e, s, &n);
        int l = common_prefix(t, n, r->tokens, r->n_tokens - 1); /* the last token is always computed */
        if (l > best_len) { best = s; best_len = l; }
    }
    int s;
    if (best >= 0 && e->slots[best].state == SLOT_CACHED) {
        s = best;
        free(e->slots[s].tokens);
        e->slots[s].tokens = NULL;
        fc_kv_cache_seq_truncate(e->kv, s, best_len);
    } else {
        s = free_slot(e);
        if (s < 0) return false;
        if (best >= 0 && best_len >= FC_KV_BLOCK) fc_kv_cache_seq_fork(e->kv, best, s, best_len);
        else best_len = 0;
    }
    e->slots[s] = (slot){.state = SLOT_RUNNING, .owner = r, .last_used = ++e->clock};
    r->seq = s;
    r->n_computed = best_len;
    if (r->n_gen == 0) {
        r->n_cached = best_len;
        e->stats.prompt_tokens_cached += (uint64_t)best_len;
    }
    /* room for the rest of the prompt, evicting cached sequences if needed */
    int need = (r->n_tokens - r->n_computed + FC_KV_BLOCK) / FC_KV_BLOCK + 1;
    while (fc_kv_cache_free_blocks(e->kv) < need && evict_one(e, s)) {}
    if (fc_kv_cache_free_blocks(e->kv) < need && e->n_running > 0) {
        release_slot(e, r);
        return false;
    }
    e->running[e->n_running++] = r;
    return true;
}

/* Frees the newest running request's blocks and puts it back at the head of
 * the queue; it recomputes its prompt and output when readmitted. */
static bool preempt_newest(fc_engine *e, req *except)
{
    for (int i = e->n_running - 1; i >= 0; i--) {
        req *r = e->running[i];
        if (r == except) continue;
        fc_kv_cache_seq_truncate(e->kv, r->seq, 0);
        e->slots[r->seq] = (slot){0};
        r->seq = -1;
        r->n_computed = 0;
        remove_running(e, r);
        r->next = e->waiting;
        e->waiting = r;
        e->stats.preemptions++;
        return true;
    }
    return false;
}

/* Reserves KV room for n more tokens of r, evicting and preempting. */
static bool reserve(fc_engine *e, req *r, int n)
{
    while (fc_kv_cache_reserve(e->kv, r->seq, n) != FC_OK) {
        if (evict_one(e, r->seq)) continue;
        if (!preempt_newest(e, r)) return false;
    }
    return true;
}

/* ---- stop strings ---- */

/* Applies stop strings to the text not yet sent: returns true (and cuts the
 * text) on a full match; otherwise sets *safe to the length of text that can
 * be sent now (a tail that is a prefix of a stop string is held back). */
static bool check_stop(req *r, size_t *safe)
{
    *safe = r->text_len;
    for (int i = 0; i < r->n_stop; i++) {
        size_t sl = strlen(r->stop[i]);
        if (sl == 0) continue;
        /* a match can start at most sl - 1 bytes before what is unsent */
        size_t from = r->sent > sl ? r->sent - sl + 1 : 0;
        const char *hit = r->text_len >= sl ? memmem(r->text + from, r->text_len - from, r->stop[i], sl) : NULL;
        if (hit) {
            size_t at = (size_t)(hit - r->text);
            if (at < r->text_len) {
                r->text_len = at;
                r->text[at] = 0;
            }
            if (r->text_len < r->sent) r->text_len = r->sent; /* never unsend */
            *safe = r->text_len;
            return true;
        }
        for (size_t k = sl - 1; k > 0; k--) {
            if (k > r->text_len) continue;
            if (!memcmp(r->text + r->text_len - k, r->stop[i], k)) {
                size_t keep = r->text_len - k;
                if (keep < *safe) *safe = keep;
                break;
            }
        }
    }
    if (*safe < r->sent) *safe = r->sent;
    return false;
}

/* ---- one step ---- */

static void take_incoming(fc_engine *e)
{
    pthread_mutex_lock(&e->mu);
    req *in = e->incoming;
    e->incoming = e->incoming_tail = NULL;
    int nc = e->n_cancels;
    uint64_t cancels[64];
    if (nc > 64) nc = 64;
    if (nc > 0) {
        memcpy(cancels, e->cancels, sizeof(uint64_t) * (size_t)nc);
        memmove(e->cancels, e->cancels + nc, sizeof(uint64_t) * (size_t)(e->n_cancels - nc));
        e->n_cancels -= nc;
    }
    pthread_mutex_unlock(&e->mu);
    /* append to the waiting list in order */
    req **tail = &e->waiting;
    while (*tail) tail = &(*tail)->next;
    *tail = in;
    for (int i = 0; i < nc; i++) {
        for (req *r = e->waiting; r; r = r->next)
            if (r->id == cancels[i]) r->cancelled = true;
        for (int j = 0; j < e->n_running; j++)
            if (e->running[j]->id == cancels[i]) e->running[j]->cancelled = true;
    }
}

static void drop_finished_waiting(fc_engine *e)
{
    req **pp = &e->waiting;
    while (*pp) {
        req *r = *pp;
        if (r->cancelled || r->error) {
            *pp = r->next;
            finish(e, r, r->error ? FC_FINISH_ERROR : FC_FINISH_ABORT);
        } else {
            pp = &r->next;
        }
    }
    for (int i = e->n_running - 1; i >= 0; i--)
        if (e->running[i]->cancelled) finish(e, e->running[i], FC_FINISH_ABORT);
}

static void after_logits(fc_engine *e, req *r, float *row)
{
    float lp = 0;
    fc_logprob top[20];
    int n_top = 0;
    if (r->logprobs >= 0) memcpy(e->raw, row, sizeof(float) * (size_t)e->V);
    int32_t tok = fc_sampler_sample(r->sampler, row);
    if (r->logprobs >= 0) {
        n_top = r->logprobs > 20 ? 20 : r->logprobs;
        lp = fc_logprob_of(e->raw, e->V, tok, n_top, top);
    }
    push_token(r, tok);
    r->n_gen++;
    e->stats.tokens_generated++;
    enum fc_finish fin = FC_FINISH_NONE;
    bool by_string = false;
    for (int i = 0; i < r->n_stop_ids; i++)
        if (tok == r->stop_ids[i]) fin = FC_FINISH_STOP;
    size_t safe = r->sent;
    if (fin == FC_FINISH_NONE) {
        if (r->detok) {
            size_t n;
            const char *d = fc_detok_push(r->detok, tok, &n);
            text_append(r, d, n);
        }
        if (check_stop(r, &safe)) fin = FC_FINISH_STOP, by_string = true;
    }
    if (fin == FC_FINISH_NONE && (r->n_gen >= r->max_new || r->n_tokens >= e->n_ctx)) fin = FC_FINISH_LENGTH;
    if (fin != FC_FINISH_NONE) {
        /* the last event carries the token and everything still unsent:
         * a held-back stop-string prefix, and bytes of an unfinished
         * character (as U+FFFD), unless a stop string cut the text */
        if (!by_string && r->detok) {
            size_t n;
            const char *tail = fc_detok_flush(r->detok, &n);
            text_append(r, tail, n);
        }
        size_t from = r->sent;
        emit(e, r, r->text ? r->text + from : "", r->text_len - from, tok, lp, top, n_top, fin);
        release_slot(e, r);
        remove_running(e, r);
        req_free(r);
        return;
    }
    emit(e, r, r->text ? r->text + r->sent : "", safe - r->sent, tok, lp, top, n_top, FC_FINISH_NONE);
    r->sent = safe;
}

/* Builds and runs one batch; returns false when there was nothing to do. */
static bool step(fc_engine *e)
{
    take_incoming(e);
    drop_finished_waiting(e);
    /* admit waiting requests in order while they fit */
    while (e->waiting && e->n_running < e->n_seq_max) {
        req *r = e->waiting;
        if (!admit(e, r)) {
            if (e->n_running == 0) { /* cannot fit even alone */
                e->waiting = r->next;
                r->error = "the prompt does not fit the KV cache";
                finish(e, r, FC_FINISH_ERROR);
                continue;
            }
            break;
        }
        e->waiting = r->next;
        r->next = NULL;
    }
    if (e->n_running == 0) return false;

    fc_batch *b = e->batch;
    fc_batch_clear(b);
    int n_rows = 0, budget = e->n_batch_max;
    /* decoding sequences first (one token each), then prompt chunks */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < e->n_running && budget > 0; i++) {
            req *r = e->running[i];
            int left = r->n_tokens - r->n_computed;
            bool decoding = left == 1;
            if ((pass == 0) != decoding || left <= 0) continue;
            int k = left < budget ? left : budget;
            if (!reserve(e, r, k)) {
                r->error = "the KV cache is too small for this request";
                continue;
            }
            if (r->seq < 0) continue; /* preempted by a reservation above */
            bool ends = k == left;
            for (int j = 0; j < k; j++)
                fc_batch_add(b, r->tokens[r->n_computed + j], r->n_computed + j, r->seq, ends && j == k - 1);
            if (ends) e->row_req[n_rows++] = r;
            if (!decoding) e->stats.prompt_tokens_computed += (uint64_t)k;
            r->n_computed += k;
            budget -= k;
        }
    }
    /* a reservation may have preempted a request already in this batch:
     * rebuild without it (rare; keeps the batch consistent) */
    for (int t = 0; t < b->n_tokens; t++) {
        bool ok = false;
        for (int i = 0; i < e->n_running; i++) ok |= e->running[i]->seq == b->seq[t];
        if (!ok) {
            for (int i = 0; i < e->n_running; i++) {
                req *r = e->running[i];
                int cnt = 0;
                for (int u = 0; u < b->n_tokens; u++) cnt += b->seq[u] == r->seq;
                r->n_computed -= cnt;
                fc_kv_cache_seq_truncate(e->kv, r->seq, r->n_computed);
            }
            return true;
        }
    }
    if (b->n_tokens > 0) {
        enum fc_status st = fc_model_forward(e->m, e->exec, e->kv, b, e->logits);
        if (st != FC_OK) {
            for (int i = e->n_running - 1; i >= 0; i--) {
                e->running[i]->error = "the forward pass failed";
                finish(e, e->running[i], FC_FINISH_ERROR);
            }
            return true;
        }
        e->stats.steps++;
    }
    for (int i = 0; i < n_rows; i++) after_logits(e, e->row_req[i], e->logits + (size_t)i * (size_t)e->V);
    for (int i = e->n_running - 1; i >= 0; i--)
        if (e->running[i]->error) finish(e, e->running[i], FC_FINISH_ERROR);
    return true;
}

static void *scheduler_main(void *arg)
{
    fc_engine *e = arg;
    for (;;) {
        bool worked = step(e);
        pthread_mutex_lock(&e->mu);
        int nw = 0;
        for (req *r = e->waiting; r; r = r->next) nw++;
        e->stats.waiting = nw;
        e->stats.running = e->n_running;
        e->stats.kv_blocks_free = fc_kv_cache_free_blocks(e->kv);
        if (!worked) {
            while (!e->stop && !e->incoming && e->n_cancels == 0) pthread_cond_wait(&e->cv, &e->mu);
        }
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop) break;
    }
    /* shutting down: everything still here is aborted */
    take_incoming(e);
    while (e->waiting) {
        req *r = e->waiting;
        e->waiting = r->next;
        finish(e, r, FC_FINISH_ABORT);
    }
    while (e->n_running > 0) finish(e, e->running[e->n_running - 1], FC_FINISH_ABORT);
    return NULL;
}

/* ---- public ---- */

fc_engine *fc_engine_new(const fc_model *m, const fc_tokenizer *tok, const fc_engine_params *p)
{
    const fc_model_config *c = fc_model_get_config(m);
    fc_engine *e = fc_xcalloc(1, sizeof *e);
    e->m = m;
    e->tok = tok;
    e->V = c->n_vocab;
    e->n_ctx = c->n_ctx_train > 0 ? c->n_ctx_train : 2048;
    if (c->n_ctx_train <= 0)
        FC_LOG_WARN("engine: the model gives no usable context length (%d); using %d tokens", c->n_ctx_train, e->n_ctx);
    e->n_seq_max = p->n_seq_max > 0 ? p->n_seq_max : 64;
    e->n_batch_max = p->n_batch_max > 0 ? p->n_batch_max : 512;
    if (e->n_batch_max < e->n_seq_max) e->n_batch_max = e->n_seq_max;
    int64_t kv_tokens = p->kv_tokens > 0 ? p->kv_tokens : FC_MIN((int64_t)2 * e->n_ctx, 32768);
    fc_exec_params ep = {.n_threads = p->n_threads, .exact = p->exact, .act8 = p->act8, .n_batch_max = e->n_batch_max};
    e->exec = fc_exec_new(m, &ep);
    /* each sequence may hold one partially filled block beyond its tokens */
    fc_kv_params kp = {.n_tokens = kv_tokens + (int64_t)e->n_seq_max * FC_KV_BLOCK, .n_seq_max = e->n_seq_max,
                       .dtype = p->exact ? FC_DTYPE_F32 : FC_DTYPE_F16};
    e->kv = fc_kv_cache_new(c, &kp);
    if (!e->exec || !e->kv) goto fail;
    e->batch = fc_batch_new(e->n_batch_max);
    e->logits = fc_aligned_alloc(sizeof(float) * (size_t)e->n_seq_max * (size_t)e->V);
    e->raw = fc_xmalloc(sizeof(float) * (size_t)e->V);
    if (!e->logits) goto fail;
    e->row_req = fc_xcalloc((size_t)e->n_seq_max, sizeof(req *));
    e->slots = fc_xcalloc((size_t)e->n_seq_max, sizeof(slot));
    e->running = fc_xcalloc((size_t)e->n_seq_max, sizeof(req *));
    e->stats.kv_blocks_total = fc_kv_cache_total_blocks(e->kv);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, scheduler_main, e) != 0) {
        FC_LOG_ERROR("fc_engine_new: cannot start the scheduler thread");
        goto fail;
    }
    return e;
fail:
    fc_exec_free(e->exec);
    fc_kv_cache_free(e->kv);
    fc_batch_free(e->batch);
    fc_aligned_free(e->logits);
    free(e->raw);
    free(e->row_req);
    free(e->slots);
    free(e->running);
    free(e);
    return NULL;
}

void fc_engine_free(fc_engine *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    for (int s = 0; s < e->n_seq_max; s++) free(e->slots[s].tokens);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    fc_exec_free(e->exec);
    fc_kv_cache_free(e->kv);
    fc_batch_free(e->batch);
    fc_aligned_free(e->logits);
    free(e->raw);
    free(e->row_req);
    free(e->slots);
    free(e->running);
    free(e->cancels);
    free(e);
}

uint64_t fc_engine_submit(fc_engine *e, const fc_gen_request *q, fc_engine_cb cb, void *user)
{
    req *r = fc_xcalloc(1, sizeof *r);
    r->cb = cb;
    r->user = user;
    r->seq = -1;
    r->max_new = q->max_new_tokens;
    r->logprobs = q->logprobs;
    r->sampler = fc_sampler_new(&q->sampling, e->V);
    int n = q->n_prompt, skip = 0;
    if (q->truncate && n + q->max_new_tokens + 1 > e->n_ctx) {
        /* FastChat: keep the last n_ctx - max_new_tokens - 1 prompt tokens */
        int keep = e->n_ctx - q->max_new_tokens - 1;
        if (keep < 1) keep = 1;
        if (keep < n) skip = n - keep;
    }
    for (int i = skip; i < n; i++) push_token(r, q->prompt[i]);
    r->n_prompt = r->n_tokens;
    fc_sampler_add_prompt(r->sampler, r->tokens, r->n_tokens);
    if (r->n_prompt == 0) r->error = "the prompt is empty";
    else if (r->n_prompt >= e->n_ctx) r->error = "the prompt is longer than the model's context";
    else if (q->max_new_tokens <= 0) r->error = "max_new_tokens must be positive";
    for (int i = 0; i < r->n_prompt && !r->error; i++)
        if (r->tokens[i] < 0 || r->tokens[i] >= e->V) r->error = "a prompt token id is outside the vocabulary";
    if (q->n_stop > 0) {
        r->stop = fc_xcalloc((size_t)q->n_stop, sizeof(char *));
        for (int i = 0; i < q->n_stop; i++)
            if (q->stop[i] && q->stop[i][0]) r->stop[r->n_stop++] = fc_xstrdup(q->stop[i]);
    }
    int32_t eos = fc_model_get_config(e->m)->eos_id;
    r->stop_ids = fc_xmalloc(sizeof(int32_t) * (size_t)(q->n_stop_ids + 1));
    for (int i = 0; i < q->n_stop_ids; i++) r->stop_ids[r->n_stop_ids++] = q->stop_ids[i];
    if (!q->ignore_eos && eos >= 0) r->stop_ids[r->n_stop_ids++] = eos;
    if (e->tok) r->detok = fc_detok_new(e->tok, !q->keep_special);
    pthread_mutex_lock(&e->mu);
    r->id = ++e->next_id;
    if (e->incoming_tail) e->incoming_tail->next = r;
    else e->incoming = r;
    e->incoming_tail = r;
    pthread_cond_signal(&e->cv);
    uint64_t id = r->id;
    pthread_mutex_unlock(&e->mu);
    return id;
}

void fc_engine_cancel(fc_engine *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    if (e->n_cancels == e->cap_cancels) {
        e->cap_cancels = e->cap_cancels ? e->cap_cancels * 2 : 16;
        e->cancels = fc_xrealloc(e->cancels, sizeof(uint64_t) * (size_t)e->cap_cancels);
    }
    e->cancels[e->n_cancels++] = id;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void fc_engine_get_stats(fc_engine *e, fc_engine_stats *s)
{
    pthread_mutex_lock(&e->mu);
    *s = e->stats;
    pthread_mutex_unlock(&e->mu);
}

int fc_engine_n_ctx(const fc_engine *e) { return e->n_ctx; }
