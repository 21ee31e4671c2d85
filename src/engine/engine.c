/*
 * engine.c: the scheduler thread, admission with prefix reuse, chunked
 * prefill, preemption, sampling and the text stream. See engine.h.
 */
#include "engine.h"
#include "../model/kv_cache.h"
#include "../sampling/grammar.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- grammars (structured outputs) ----
 *
 * Everything grammar-side lives on the scheduler thread, which makes it
 * thread-safe by confinement: the vocabulary (sorted once per engine, i.e.
 * per model, on the first constrained request), and a small cache of
 * compiled grammars keyed by their text, each with its matcher (whose
 * per-position mask caches then stay warm for the next request with the
 * same schema). An entry in use by a request is never evicted. */

#define GCACHE_MAX 8

typedef struct gcache {
    char *text;
    fc_grammar *g;
    fc_grammar_matcher *m;
    int refs;             /* requests bound to it */
    uint64_t last_used;
} gcache;

static void gcache_free(gcache *c)
{
    if (!c) return;
    fc_grammar_matcher_free(c->m);
    fc_grammar_free(c->g);
    free(c->text);
    free(c);
}

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
    char *grammar_text;     /* constrained output: grammar to bind at the first step */
    gcache *gce;            /* bound grammar (a reference), NULL when none */
    fc_grammar_state *gstate;
    fc_detok *detok;
    char *text;             /* all generated text so far */
    size_t text_len, text_cap, sent;
    bool cancelled;
    const char *error;      /* set: finish with FC_FINISH_ERROR at the next step */
    struct req *next;       /* waiting list / incoming queue */
} req;

enum slot_state { SLOT_FREE = 0, SLOT_RUNNING, SLOT_CACHED, SLOT_JOB };

typedef struct slot {
    enum slot_state state;
    req *owner;             /* RUNNING */
    int32_t *tokens;        /* CACHED: the tokens whose keys/values the slot holds */
    int n_tokens;
    uint64_t last_used;
} slot;

/* An embedding or prompt-scoring request (fc_engine_embed / _score): its
 * caller waits on it, so everything it points to is the caller's. */
typedef struct job {
    bool score;             /* fc_engine_score: out is lp */
    const int32_t *ids;
    int n;
    float *out;
    int k;                  /* scoring: alternatives per position */
    fc_logprob *top;
    bool (*keep_going)(void *user); /* asked before each step; false stops it (FC_ERR_ARG) */
    void *user;
    /* progress, scheduler thread only */
    int seq;                /* KV slot, -1 before the first step */
    int c0, t0;             /* embedding: chunk start, offset in the chunk; scoring: t0 */
    /* the result, under mu */
    enum fc_status status;
    bool done;
    struct job *next;
} job;

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
    /* grammars: scheduler thread only */
    fc_grammar_vocab *gvocab; /* built on first use */
    uint64_t *gmask;          /* (fc_grammar_mask_words) */
    float *gtmp;              /* (V) the masked logits before the sampler */
    fc_grammar_state *gprobe;
    const fc_grammar *gprobe_g;
    gcache **gc;              /* (GCACHE_MAX + n_seq_max): idle entries beyond GCACHE_MAX are evicted */
    int n_gc;
    /* embedding and scoring jobs: the FIFO is the scheduler's, the incoming
     * list and the results are under mu, completions signalled on job_cv */
    job *jobs_in, *jobs_in_tail;
    job *jobs;
    pthread_cond_t job_cv;
    int C, chunk_len;
    float *hidden;            /* (JOB_STEP, C), on first use */
    float *score_logits;      /* (SCORE_STEP, V), on first use */
    double *sum;              /* (C) */
    double t_gen, t_job;      /* recent compute seconds of each kind (decaying), for JOB_SHARE */
};

/* Embedding and scoring steps: 128 tokens per forward (a client that leaves
 * stops the work within one step), 32 when every token's logits are kept
 * (a (32, V) buffer). While generation has work, jobs get at most JOB_SHARE
 * of the compute time (so a burst of embeddings slows chat streams by at
 * most about that much); alone, they run back to back. */
#define JOB_STEP 128
#define SCORE_STEP 32
#define JOB_SHARE 0.2
#define SHARE_DECAY 0.98

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
    free(r->grammar_text);
    fc_grammar_state_free(r->gstate);
    if (r->gce) r->gce->refs--;
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
        if (e->slots[s].state == SLOT_FREE || e->slots[s].state == SLOT_JOB) continue;
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

/* Binds r to its compiled grammar (cache hit or compile); false with
 * r->error set when it cannot. */
static bool grammar_bind(fc_engine *e, req *r)
{
    if (!e->gvocab) {
        if (!e->tok) return r->error = "constrained output needs the model's tokenizer", false;
        e->gvocab = fc_grammar_vocab_new(e->tok);
        if (!e->gvocab) return r->error = "cannot index the vocabulary for constrained output", false;
        e->gmask = fc_xmalloc(sizeof *e->gmask * fc_grammar_mask_words(e->gvocab));
        e->gtmp = fc_xmalloc(sizeof(float) * (size_t)e->V);
        e->gc = fc_xcalloc((size_t)(GCACHE_MAX + e->n_seq_max), sizeof *e->gc);
    }
    gcache *c = NULL;
    for (int i = 0; i < e->n_gc && !c; i++)
        if (!strcmp(e->gc[i]->text, r->grammar_text)) c = e->gc[i];
    if (!c) {
        char err[256];
        fc_grammar *g = fc_grammar_parse(r->grammar_text, strlen(r->grammar_text), err, sizeof err);
        if (!g) {
            FC_LOG_WARN("engine: request grammar refused: %s", err);
            return r->error = "the output grammar does not compile", false;
        }
        if (e->n_gc >= GCACHE_MAX) { /* evict the least recently used idle entry */
            int victim = -1;
            for (int i = 0; i < e->n_gc; i++)
                if (e->gc[i]->refs == 0 && (victim < 0 || e->gc[i]->last_used < e->gc[victim]->last_used))
                    victim = i;
            if (victim >= 0) {
                if (e->gprobe_g == e->gc[victim]->g) {
                    fc_grammar_state_free(e->gprobe);
                    e->gprobe = NULL;
                    e->gprobe_g = NULL;
                }
                gcache_free(e->gc[victim]);
                e->gc[victim] = e->gc[--e->n_gc];
            }
        }
        c = fc_xcalloc(1, sizeof *c);
        c->text = fc_xstrdup(r->grammar_text);
        c->g = g;
        c->m = fc_grammar_matcher_new(g, e->gvocab);
        /* room: at most GCACHE_MAX idle entries plus one per running sequence */
        e->gc[e->n_gc++] = c;
    }
    c->refs++;
    c->last_used = ++e->clock;
    r->gce = c;
    r->gstate = fc_grammar_state_new(c->g);
    return true;
}

/* Does token t end the output (where it may end) or bring its end nearer
 * than dist bytes? */
static bool grammar_closes(fc_engine *e, req *r, int32_t t, size_t dist)
{
    if (fc_grammar_vocab_is_eog(e->gvocab, t)) return fc_grammar_state_can_end(r->gstate);
    if (e->gprobe_g != r->gce->g) {
        fc_grammar_state_free(e->gprobe);
        e->gprobe = fc_grammar_state_clone(r->gstate);
        e->gprobe_g = r->gce->g;
    }
    fc_grammar_state_copy(e->gprobe, r->gstate);
    return fc_grammar_matcher_accept(r->gce->m, e->gprobe, t) && fc_grammar_state_distance(e->gprobe) < dist;
}

/* Closing: the most likely allowed token (by the masked logits) that ends
 * the output or brings its end nearer than dist bytes; -1 when none. Tries
 * the best few by repeated argmax (tokens tried and refused become
 * -INFINITY in masked), then scans every allowed token. */
static int32_t grammar_closing_pick(fc_engine *e, req *r, float *masked, size_t dist)
{
    int V = e->V;
    for (int tries = 0; tries < 16; tries++) {
        int32_t best = -1;
        for (int t = 0; t < V; t++)
            if (masked[t] > -INFINITY && (best < 0 || masked[t] > masked[best])) best = t;
        if (best < 0) return -1;
        if (grammar_closes(e, r, best, dist)) return best;
        masked[best] = -INFINITY;
    }
    int32_t pick = -1;
    for (int t = 0; t < V; t++)
        if (masked[t] > -INFINITY && (pick < 0 || masked[t] > masked[pick]) && grammar_closes(e, r, t, dist))
            pick = t;
    return pick;
}

/* Samples under the grammar: mask, then the sampler's chain on the allowed
 * tokens. Keeps the output closable: with `left` tokens to go, a token
 * whose continuation needs more bytes than that is replaced by the best
 * closing token, and once left <= distance + 2 only closing tokens are
 * drawn (each lowers the distance by at least one byte, so the output is
 * complete within the limit). Returns -1 when no token is allowed. */
static int32_t grammar_sample(fc_engine *e, req *r, float *row)
{
    fc_grammar_matcher *m = r->gce->m;
    fc_grammar_matcher_mask(m, r->gstate, e->gmask);
    fc_grammar_mask_apply(e->gvocab, e->gmask, row, e->V);
    int left = r->max_new - r->n_gen;
    if (e->n_ctx - r->n_tokens < left) left = e->n_ctx - r->n_tokens;
    size_t dist = fc_grammar_state_distance(r->gstate);
    if (dist != SIZE_MAX && (size_t)left <= dist + 2) {
        int32_t t = grammar_closing_pick(e, r, row, dist);
        if (t < 0) return -1;
        /* the sampler still draws (and records) it: the only finite logit */
        float keep = row[t];
        for (int i = 0; i < e->V; i++) row[i] = -INFINITY;
        row[t] = keep;
        return fc_sampler_sample(r->sampler, row);
    }
    memcpy(e->gtmp, row, sizeof(float) * (size_t)e->V);
    int32_t t = fc_sampler_sample(r->sampler, row);
    if (t < 0 || t >= e->V || !(e->gtmp[t] > -INFINITY)) return -1;
    if (fc_grammar_vocab_is_eog(e->gvocab, t) || dist == SIZE_MAX) return t;
    if (e->gprobe_g != r->gce->g) {
        fc_grammar_state_free(e->gprobe);
        e->gprobe = fc_grammar_state_clone(r->gstate);
        e->gprobe_g = r->gce->g;
    }
    fc_grammar_state_copy(e->gprobe, r->gstate);
    if (!fc_grammar_matcher_accept(m, e->gprobe, t)) return -1;
    size_t d2 = fc_grammar_state_distance(e->gprobe);
    if (d2 + 3 <= (size_t)left) return t;
    int32_t c = grammar_closing_pick(e, r, e->gtmp, dist);
    return c >= 0 ? c : t;
}

static void after_logits(fc_engine *e, req *r, float *row)
{
    float lp = 0;
    fc_logprob top[20];
    int n_top = 0;
    if (r->logprobs >= 0) memcpy(e->raw, row, sizeof(float) * (size_t)e->V);
    int32_t tok;
    bool g_end = false; /* the grammar ends here: an end token, or nothing may follow */
    if (r->grammar_text) {
        if (!r->gce && !grammar_bind(e, r)) {
            finish(e, r, FC_FINISH_ERROR);
            return;
        }
        tok = grammar_sample(e, r, row);
        if (tok < 0) {
            r->error = "no token is allowed by the output grammar";
            finish(e, r, FC_FINISH_ERROR);
            return;
        }
        if (fc_grammar_vocab_is_eog(e->gvocab, tok)) g_end = true;
        else if (!fc_grammar_matcher_accept(r->gce->m, r->gstate, tok)) {
            r->error = "the sampled token breaks the output grammar";
            finish(e, r, FC_FINISH_ERROR);
            return;
        } else g_end = fc_grammar_state_is_final(r->gstate);
    } else {
        tok = fc_sampler_sample(r->sampler, row);
    }
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
    if (g_end && fc_grammar_vocab_is_eog(e->gvocab, tok)) fin = FC_FINISH_STOP;
    size_t safe = r->sent;
    if (fin == FC_FINISH_NONE) {
        if (r->detok) {
            size_t n;
            const char *d = fc_detok_push(r->detok, tok, &n);
            text_append(r, d, n);
        }
        if (check_stop(r, &safe)) fin = FC_FINISH_STOP, by_string = true;
        if (fin == FC_FINISH_NONE && g_end) fin = FC_FINISH_STOP;
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
/* ---- embedding and scoring jobs ---- */

static void job_done(fc_engine *e, job *j, enum fc_status st)
{
    if (j->seq >= 0) {
        fc_kv_cache_seq_truncate(e->kv, j->seq, 0);
        e->slots[j->seq] = (slot){0};
        j->seq = -1;
    }
    e->jobs = j->next;
    pthread_mutex_lock(&e->mu);
    j->status = st;
    j->done = true;
    pthread_cond_broadcast(&e->job_cv);
    pthread_mutex_unlock(&e->mu);
}

static void take_jobs(fc_engine *e)
{
    pthread_mutex_lock(&e->mu);
    job *in = e->jobs_in;
    e->jobs_in = e->jobs_in_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    job **tail = &e->jobs;
    while (*tail) tail = &(*tail)->next;
    *tail = in;
}

/* Room for n more tokens of the job's sequence: cached sequences go first,
 * then the newest generation requests are preempted (a job holds at most one
 * context of tokens, which the cache always has room for next to one
 * request). */
static bool job_reserve(fc_engine *e, job *j, int n)
{
    while (fc_kv_cache_reserve(e->kv, j->seq, n) != FC_OK)
        if (!evict_one(e, j->seq) && !preempt_newest(e, NULL)) return false;
    return true;
}

/* One forward step of the job at the head of the FIFO. Returns false when
 * it could not run now (no free slot), so generation takes the step. */
static bool job_step(fc_engine *e)
{
    job *j = e->jobs;
    if (j->keep_going && !j->keep_going(j->user)) { /* the caller gave up */
        job_done(e, j, FC_ERR_ARG);
        return true;
    }
    if (j->seq < 0) {
        bool bad = j->n <= 0 || (j->score && (j->n > e->chunk_len || j->k < 0 || j->k > 20));
        for (int i = 0; i < j->n && !bad; i++) bad = j->ids[i] < 0 || j->ids[i] >= e->V;
        if (bad) {
            job_done(e, j, FC_ERR_ARG);
            return true;
        }
        if (!e->hidden) {
            e->hidden = fc_aligned_alloc(sizeof(float) * JOB_STEP * (size_t)e->C);
            e->score_logits = fc_aligned_alloc(sizeof(float) * SCORE_STEP * (size_t)e->V);
            e->sum = fc_xmalloc(sizeof(double) * (size_t)e->C);
            if (!e->hidden || !e->score_logits) {
                fc_aligned_free(e->hidden);
                fc_aligned_free(e->score_logits);
                free(e->sum);
                e->hidden = e->score_logits = NULL;
                e->sum = NULL;
                job_done(e, j, FC_ERR_NOMEM);
                return true;
            }
        }
        int s = free_slot(e);
        if (s < 0) return false;
        e->slots[s] = (slot){.state = SLOT_JOB, .last_used = ++e->clock};
        j->seq = s;
        j->c0 = j->t0 = 0;
        memset(e->sum, 0, sizeof(double) * (size_t)e->C);
        if (j->score) {
            j->out[0] = NAN;
            if (j->n == 1) {
                job_done(e, j, FC_OK);
                return true;
            }
        }
    }
    fc_batch *b = e->batch;
    fc_batch_clear(b);
    enum fc_status st;
    if (j->score) {
        /* positions t0 .. t0+tn predict tokens t0+1 .. t0+tn; the last token predicts nothing we need */
        int tn = FC_MIN(SCORE_STEP, j->n - 1 - j->t0);
        for (int t = 0; t < tn; t++) fc_batch_add(b, j->ids[j->t0 + t], j->t0 + t, j->seq, true);
        st = job_reserve(e, j, tn) ? fc_model_forward(e->m, e->exec, e->kv, b, e->score_logits) : FC_ERR_NOMEM;
        for (int t = 0; t < tn && st == FC_OK; t++) {
            int i = j->t0 + t + 1;
            j->out[i] = fc_logprob_of(e->score_logits + (size_t)t * (size_t)e->V, e->V, j->ids[i], j->k,
                                      j->k > 0 ? j->top + (size_t)i * (size_t)j->k : NULL);
        }
        j->t0 += tn;
        if (st != FC_OK || j->t0 >= j->n - 1) job_done(e, j, st);
        return true;
    }
    /* embedding: FastChat's chunks of the context length, each from an
     * empty cache; the mean of every token's last hidden state, normalized */
    int cn = FC_MIN(e->chunk_len, j->n - j->c0), tn = FC_MIN(JOB_STEP, cn - j->t0);
    for (int t = 0; t < tn; t++) fc_batch_add(b, j->ids[j->c0 + j->t0 + t], j->t0 + t, j->seq, true);
    st = job_reserve(e, j, tn) ? fc_model_forward_hidden(e->m, e->exec, e->kv, b, e->hidden) : FC_ERR_NOMEM;
    if (st != FC_OK) {
        job_done(e, j, st);
        return true;
    }
    const int C = e->C;
    for (int t = 0; t < tn; t++) {
        const float *h = e->hidden + (size_t)t * (size_t)C;
        for (int i = 0; i < C; i++) e->sum[i] += h[i];
    }
    j->t0 += tn;
    if (j->t0 < cn) return true;
    fc_kv_cache_seq_truncate(e->kv, j->seq, 0); /* the next chunk starts from an empty cache */
    j->c0 += cn;
    j->t0 = 0;
    if (j->c0 < j->n) return true;
    double norm = 0;
    for (int i = 0; i < C; i++) {
        e->sum[i] /= j->n;
        norm += e->sum[i] * e->sum[i];
    }
    norm = sqrt(norm);
    if (norm < 1e-12) norm = 1e-12;
    for (int i = 0; i < C; i++) j->out[i] = (float)(e->sum[i] / norm);
    job_done(e, j, FC_OK);
    return true;
}

/* Whether this step goes to the job at the head of the FIFO. */
static bool jobs_turn(const fc_engine *e)
{
    if (!e->jobs) return false;
    if (e->n_running == 0 && !e->waiting) return true;
    return e->t_job <= JOB_SHARE * (e->t_job + e->t_gen);
}

static bool step(fc_engine *e)
{
    take_incoming(e);
    take_jobs(e);
    drop_finished_waiting(e);
    e->t_gen *= SHARE_DECAY;
    e->t_job *= SHARE_DECAY;
    if (jobs_turn(e)) {
        double t = fc_time_sec();
        bool ran = job_step(e);
        e->t_job += fc_time_sec() - t;
        if (ran) return true;
    }
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
    if (e->n_running == 0) return e->jobs != NULL;

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
        double t0 = fc_time_sec();
        enum fc_status st = fc_model_forward(e->m, e->exec, e->kv, b, e->logits);
        e->t_gen += fc_time_sec() - t0;
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
            while (!e->stop && !e->incoming && !e->jobs_in && e->n_cancels == 0) pthread_cond_wait(&e->cv, &e->mu);
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
    take_jobs(e);
    while (e->jobs) job_done(e, e->jobs, FC_ERR_ARG);
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
    e->C = c->n_embd;
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
    e->chunk_len = p->embed_chunk_len > 0 ? FC_MIN(p->embed_chunk_len, e->n_ctx) : e->n_ctx;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pthread_cond_init(&e->job_cv, NULL);
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
    pthread_cond_destroy(&e->job_cv);
    fc_aligned_free(e->hidden);
    fc_aligned_free(e->score_logits);
    free(e->sum);
    fc_exec_free(e->exec);
    fc_kv_cache_free(e->kv);
    fc_batch_free(e->batch);
    fc_aligned_free(e->logits);
    free(e->raw);
    free(e->row_req);
    free(e->slots);
    free(e->running);
    free(e->cancels);
    for (int i = 0; i < e->n_gc; i++) gcache_free(e->gc[i]);
    free(e->gc);
    fc_grammar_state_free(e->gprobe);
    fc_grammar_vocab_free(e->gvocab);
    free(e->gmask);
    free(e->gtmp);
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
    if (q->grammar) r->grammar_text = fc_xstrdup(q->grammar);
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

int fc_engine_embed_dim(const fc_engine *e) { return e->C; }

/* Queues a job and waits for the scheduler to finish it. */
static enum fc_status run_job(fc_engine *e, job *j)
{
    j->seq = -1;
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        pthread_mutex_unlock(&e->mu);
        return FC_ERR_ARG;
    }
    if (e->jobs_in_tail) e->jobs_in_tail->next = j;
    else e->jobs_in = j;
    e->jobs_in_tail = j;
    pthread_cond_signal(&e->cv);
    while (!j->done) pthread_cond_wait(&e->job_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return j->status;
}

enum fc_status fc_engine_embed(fc_engine *e, const int32_t *ids, int n, float *out, bool (*keep_going)(void *user),
                               void *user)
{
    job j = {.ids = ids, .n = n, .out = out, .keep_going = keep_going, .user = user};
    return run_job(e, &j);
}

enum fc_status fc_engine_score(fc_engine *e, const int32_t *ids, int n, int k, float *lp, fc_logprob *top,
                               bool (*keep_going)(void *user), void *user)
{
    job j = {.score = true, .ids = ids, .n = n, .out = lp, .k = k, .top = top, .keep_going = keep_going, .user = user};
    return run_job(e, &j);
}
