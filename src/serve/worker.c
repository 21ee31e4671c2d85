/*
 * worker.c: FastChat's model worker on the engine. See worker.h for the
 * protocol; this file is organised as:
 *   text building (a growable buffer, JSON strings, base64)
 *   the admission semaphore (FIFO, abandoned by waiters whose client leaves)
 *   generation: parameters, the engine callback that formats chunks, handlers
 *   the other endpoints (status, count_token, template, details, embeddings)
 *   registration and heartbeats
 *   start and free
 *
 * Threads: handlers run on the HTTP server's threads (one per request) and
 * only parse, tokenize, wait for a slot, submit and wait. The engine's
 * scheduler thread runs on_event, which formats each chunk into one buffer
 * and queues it on the HTTP stream (never blocking). Embeddings and prompt
 * scores are request kinds of the same engine. One more thread sends
 * heartbeats.
 *
 * Mirrors fastchat/serve/base_model_worker.py (routes, semaphore, heartbeat),
 * model_worker.py (generate_stream_gate, get_embeddings) and inference.py
 * generate_stream (parameters, echo, logprobs payload, chunk cadence).
 */
#include "worker.h"
#include "base/json.h"
#include "base/str.h"
#include "chat/template_pick.h"
#include "model/bert.h"
#include "tokenizer/wordpiece.h"
#include "serve/protocol.h"
#include "reqguard.h"
#include "response_format.h"
#include "base/fc_base.h"
#include "chat/conv.h"
#include "engine/engine.h"
#include "net/http.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#define REGISTER_TIMEOUT_S 10.0
#define HEART_BEAT_TIMEOUT_S 5.0
#define RETRY_S 5.0
#define POLL_MS 100             /* a waiting handler checks its client this often */
/* Embedding bounds per request (OpenAI's: 2048 inputs); each input also fits
 * the context unless --embed-in-truncate (FastChat's flag) cuts it there. */
#define MAX_EMBED_INPUTS 2048
/* inputs per forward pass of a BERT encoder (model/bert.h) */
#define ENC_BATCH 64
#define MAX_EMBED_TOKENS 65536

/* ---- text building ---- */

static void put_base64(fc_str *b, const uint8_t *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o0 = fc_str_reserve(b, (n + 2) / 3 * 4), *o = o0;
    if (!o) return;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63], *o++ = tab[(v >> 6) & 63], *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *o++ = tab[v >> 18], *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    fc_str_commit(b, (size_t)(o - o0));
}

/* Unicode code points in UTF-8 text (Python's len of the decoded str). */
static long n_chars(const char *s, size_t n)
{
    long k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* FastChat's in-band error object. */
static char *error_json(int code, const char *why)
{
    fc_str b = FC_STR_INIT;
    size_t wl = strlen(why);
    size_t cap = sizeof FC_SERVER_ERROR_MSG + wl + 8;
    char *text = fc_xmalloc(cap);
    int n = snprintf(text, cap, "%s\n\n(%s)", FC_SERVER_ERROR_MSG, why);
    fc_str_puts(&b, "{\"text\": ");
    fc_json_put_strn(&b, text, (size_t)n);
    fc_str_printf(&b, ", \"error_code\": %d}", code);
    free(text);
    return b.p;
}

/* An in-band error whose text is the message itself (a request the client
 * must change, not a server fault). */
static char *plain_error_json(int code, const char *msg)
{
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"text\": ");
    fc_json_put_strn(&b, msg, strlen(msg));
    fc_str_printf(&b, ", \"error_code\": %d}", code);
    return b.p;
}

/* HTTP 400 for a body we cannot use; also readable as a FastChat chunk. */
static void reply_bad_request(fc_http_reply *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply_bad_request(fc_http_reply *rep, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"detail\": ");
    fc_json_put_strn(&b, msg, strlen(msg));
    fc_str_puts(&b, ", \"text\": ");
    fc_json_put_strn(&b, msg, strlen(msg));
    fc_str_printf(&b, ", \"error_code\": %d}", FC_EC_VALIDATION_TYPE_ERROR);
    fc_http_reply_json(rep, 400, b.p);
    free(b.p);
}

/* ---- the worker ---- */

typedef struct wmodel {
    char *path;
    char **names;
    int n_names;
    fc_model *model;
    fc_t5 *t5;              /* a T5 encoder-decoder model instead of model (engine_new_t5) */
    fc_tokenizer *tok;
    fc_engine *engine;
    char *conv_json;        /* the /worker_get_conv_template answer */
    int n_ctx;
    /* a BERT sentence encoder (model/bert.h) instead of model/tok/engine
     * (which are then NULL): it serves embeddings only */
    fc_bert *bert;
    fc_wordpiece *wp;
} wmodel;

/* One request waiting for admission. */
typedef struct waiter {
    bool granted;
    pthread_cond_t cv;
    struct waiter *next;
} waiter;

struct fc_worker {
    wmodel *models;
    int n_models;
    fc_http_server *http;
    char *address, *controller;
    int limit, stream_interval;
    bool has_seed;
    uint64_t seed;
    bool embed_in_truncate;
    bool no_register;
    double heart_beat_s;
    /* admission, under mu */
    pthread_mutex_t mu;
    int active;                 /* requests holding a slot */
    int n_waiting;
    waiter *wait_head, *wait_tail;
    bool stopping;
    struct gen *gens;           /* generations submitted and not yet final */
    /* heartbeat thread */
    pthread_t hb;
    bool hb_started;
    pthread_cond_t hb_cv;       /* wakes the heartbeat thread to stop */
};

/* ---- admission (FastChat's asyncio.Semaphore(limit_worker_concurrency)) ---- */

/* Takes a slot, waiting in arrival order. Gives up (false) when the client
 * leaves or the worker stops. */
static bool slot_acquire(fc_worker *w, const fc_http_request *req)
{
    pthread_mutex_lock(&w->mu);
    if (!w->stopping && w->active < w->limit && !w->wait_head) {
        w->active++;
        pthread_mutex_unlock(&w->mu);
        return true;
    }
    waiter me = {0};
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&me.cv, &a);
    pthread_condattr_destroy(&a);
    if (w->wait_tail) w->wait_tail->next = &me;
    else w->wait_head = &me;
    w->wait_tail = &me;
    w->n_waiting++;
    while (!me.granted && !w->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&me.cv, &w->mu, &ts);
        if (me.granted || w->stopping || !req) continue;
        pthread_mutex_unlock(&w->mu);
        bool gone = fc_http_request_client_gone(req);
        pthread_mutex_lock(&w->mu);
        if (gone) break;
    }
    bool ok = me.granted;
    if (!ok) { /* leave the queue */
        waiter **pp = &w->wait_head, *prev = NULL;
        while (*pp && *pp != &me) prev = *pp, pp = &(*pp)->next;
        if (*pp) {
            *pp = me.next;
            if (w->wait_tail == &me) w->wait_tail = prev;
            w->n_waiting--;
        }
    }
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&me.cv);
    return ok;
}

/* Hands the slot to the first waiter, or frees it. Never blocks for long
 * (the engine thread calls it). */
static void slot_release(fc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    waiter *next = w->wait_head;
    if (next) {
        w->wait_head = next->next;
        if (!w->wait_head) w->wait_tail = NULL;
        w->n_waiting--;
        next->granted = true;
        pthread_cond_signal(&next->cv);
    } else {
        w->active--;
    }
    pthread_mutex_unlock(&w->mu);
}

int fc_worker_queue_length(fc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    int n = w->active + w->n_waiting;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* ---- request bodies ---- */

#define PARAM_ERROR_MAX 512 /* bytes of a 400's message */

/* A body that must be a JSON object; NULL with the reason in why
 * (PARAM_ERROR_MAX bytes). */
static cJSON *parse_object(const char *body, size_t len, char *why)
{
    if (fc_json_has_nul(body, len)) {
        snprintf(why, PARAM_ERROR_MAX, "%s", FC_JSON_NUL_MSG);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!j) {
        size_t at = end && end >= body ? (size_t)(end - body) : 0;
        snprintf(why, PARAM_ERROR_MAX, "Request body is not valid JSON (near byte %zu)", at);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(why, PARAM_ERROR_MAX, "Request body must be a JSON object");
        return NULL;
    }
    return j;
}

static cJSON *parse_body(const fc_http_request *req, fc_http_reply *rep)
{
    char why[PARAM_ERROR_MAX];
    cJSON *j = parse_object(req->body, req->body_len, why);
    if (!j) reply_bad_request(rep, "%s", why);
    return j;
}

/* The model a request addresses: the only one, or the one named "model". */
static wmodel *pick_model(fc_worker *w, const cJSON *body, fc_http_reply *rep)
{
    if (w->n_models == 1) return &w->models[0];
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (!cJSON_IsString(m)) {
        reply_bad_request(rep, "'model' is required: this worker serves several models");
        return NULL;
    }
    for (int i = 0; i < w->n_models; i++)
        for (int k = 0; k < w->models[i].n_names; k++)
            if (!strcmp(w->models[i].names[k], m->valuestring)) return &w->models[i];
    reply_bad_request(rep, "this worker does not serve model '%s'", m->valuestring);
    return NULL;
}

/* Chat, completion and tokenizer endpoints refuse an embedding model with a
 * 400 naming it (true: refused, the reply is set). */
static bool refuse_encoder(const wmodel *m, fc_http_reply *rep)
{
    if (!m || !m->bert) return false;
    reply_bad_request(rep,
                      "model '%s' is an embedding model (BERT sentence encoder): it serves /v1/embeddings only, "
                      "not chat or text completions",
                      m->names[0]);
    return true;
}

/* A number field (Python's float()/int() also take numeric strings).
 * 1: set, 0: absent or null, -1: wrong type or not finite ("nan", "inf" or
 * 1e999: no parameter has a meaning for them, and top_k would not convert). */
static int get_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return isfinite(*out) ? 1 : -1;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v) ? 1 : 0;
        return 1;
    }
    if (cJSON_IsString(v)) {
        char *end;
        errno = 0;
        double d = strtod(v->valuestring, &end);
        while (*end == ' ') end++;
        if (end != v->valuestring && !*end && errno == 0 && isfinite(d)) {
            *out = d;
            return 1;
        }
    }
    return -1;
}

/* ---- generation ---- */

typedef struct gen {
    struct gen *prev, *next;    /* fc_worker.gens, under w->mu */
    bool listed;
    fc_worker *w;
    wmodel *m;
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* non-streaming: the final event arrived */
    uint64_t id;
    bool have_id, cancel_pending, cancelled;
    fc_http_stream *stream;     /* NULL: non-streaming */
    int interval;
    bool logprobs;
    int top_k;
    /* engine thread (then the waiting handler, after done) */
    fc_str text;                    /* cumulative text (the echoed prompt first) */
    int prompt_tokens, completion_tokens;
    fc_str lp_off, lp_tok, lp_val, lp_top; /* the logprobs arrays' contents so far */
    int n_lp;
    long char_pos;
    fc_str out;                     /* the chunk being built */
    bool done;
    char *final;                /* non-streaming: the last chunk */
    double t_first, t_last;     /* fc_time_sec() of the first and last sampled token (0: none) */
} gen;

static void gen_unref(gen *g)
{
    if (atomic_fetch_sub(&g->refs, 1) != 1) return;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->text.p);
    free(g->lp_off.p);
    free(g->lp_tok.p);
    free(g->lp_val.p);
    free(g->lp_top.p);
    free(g->out.p);
    free(g->final);
    free(g);
}

static void gen_list(gen *g)
{
    fc_worker *w = g->w;
    pthread_mutex_lock(&w->mu);
    g->next = w->gens;
    if (w->gens) w->gens->prev = g;
    w->gens = g;
    g->listed = true;
    pthread_mutex_unlock(&w->mu);
}

static void gen_unlist(gen *g)
{
    fc_worker *w = g->w;
    pthread_mutex_lock(&w->mu);
    if (g->listed) {
        if (g->prev) g->prev->next = g->next;
        else w->gens = g->next;
        if (g->next) g->next->prev = g->prev;
        g->prev = g->next = NULL;
        g->listed = false;
    }
    pthread_mutex_unlock(&w->mu);
}

static bool worker_stopping(fc_worker *w)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stopping;
    pthread_mutex_unlock(&w->mu);
    return s;
}

/* Appends one token to the logprobs arrays: its text as decode([id]) gives
 * it, its offset in characters, its logprob (or null) and top alternatives. */
static void lp_add(gen *g, int32_t id, bool has_lp, float lp, const fc_logprob *top, int n_top)
{
    const fc_tokenizer *tok = g->m->tok;
    size_t tl;
    char *t = fc_tokenizer_decode(tok, &id, 1, false, &tl);
    const char *sep = g->n_lp ? ", " : "";
    fc_str_printf(&g->lp_off, "%s%ld", sep, g->char_pos);
    fc_str_puts(&g->lp_tok, sep);
    fc_json_put_strn(&g->lp_tok, t, tl);
    fc_str_puts(&g->lp_val, sep);
    if (has_lp) fc_json_put_number(&g->lp_val, lp, 9);
    else fc_str_puts(&g->lp_val, "null");
    fc_str_puts(&g->lp_top, sep);
    fc_str_puts(&g->lp_top, "{");
    for (int i = 0; i < n_top; i++) {
        size_t al;
        char *alt = fc_tokenizer_decode(tok, &top[i].token, 1, false, &al);
        if (i) fc_str_puts(&g->lp_top, ", ");
        fc_json_put_strn(&g->lp_top, alt, al);
        fc_str_puts(&g->lp_top, ": ");
        fc_json_put_number(&g->lp_top, top[i].logprob, 9);
        free(alt);
    }
    fc_str_puts(&g->lp_top, "}");
    g->char_pos += n_chars(t, tl);
    g->n_lp++;
    free(t);
}

/* The chunk FastChat's generate_stream_gate yields, into g->out. */
static void build_chunk(gen *g, const char *finish)
{
    fc_str *b = &g->out;
    fc_str_reset(b);
    fc_str_puts(b, "{\"text\": ");
    fc_json_put_strn(b, g->text.p ? g->text.p : "", g->text.len);
    fc_str_printf(b,
              ", \"error_code\": 0, \"usage\": {\"prompt_tokens\": %d, \"completion_tokens\": %d, "
              "\"total_tokens\": %d}, \"finish_reason\": ",
              g->prompt_tokens, g->completion_tokens, g->prompt_tokens + g->completion_tokens);
    if (finish) fc_str_printf(b, "\"%s\"", finish);
    else fc_str_puts(b, "null");
    fc_str_puts(b, ", \"logprobs\": ");
    if (!g->logprobs) {
        fc_str_puts(b, "null}");
        return;
    }
    fc_str_puts(b, "{\"text_offset\": [");
    if (g->lp_off.p) fc_str_putn(b, g->lp_off.p, g->lp_off.len);
    fc_str_puts(b, "], \"tokens\": [");
    if (g->lp_tok.p) fc_str_putn(b, g->lp_tok.p, g->lp_tok.len);
    fc_str_puts(b, "], \"token_logprobs\": [");
    if (g->lp_val.p) fc_str_putn(b, g->lp_val.p, g->lp_val.len);
    fc_str_puts(b, "], \"top_logprobs\": [");
    if (g->lp_top.p) fc_str_putn(b, g->lp_top.p, g->lp_top.len);
    fc_str_puts(b, "]}}");
}

/* The engine's callback (scheduler thread): never blocks. */
static void on_event(const fc_gen_event *ev, void *user)
{
    gen *g = user;
    bool final = ev->finish != FC_FINISH_NONE;
    char *err = NULL;
    if (ev->finish == FC_FINISH_ERROR) {
        const char *why = ev->error ? ev->error : "generation failed";
        err = error_json(strstr(why, "KV cache") ? FC_EC_CUDA_OUT_OF_MEMORY : FC_EC_INTERNAL_ERROR, why);
    } else {
        if (ev->len) fc_str_putn(&g->text, ev->text, ev->len);
        if (g->logprobs && ev->token >= 0) lp_add(g, ev->token, true, ev->logprob, ev->top, ev->n_top);
        g->prompt_tokens = ev->prompt_tokens;
        g->completion_tokens = ev->completion_tokens;
        if (ev->token >= 0) {
            g->t_last = fc_time_sec();
            if (g->t_first == 0) g->t_first = g->t_last;
        }
    }
    if (!final) {
        /* FastChat yields when i % stream_interval == 0, i the 0-based step */
        if (g->stream && (g->completion_tokens - 1) % g->interval == 0) {
            build_chunk(g, NULL);
            fc_str_putn(&g->out, "\0", 1);
            fc_http_stream_write(g->stream, g->out.p, g->out.len);
        }
        return;
    }
    gen_unlist(g);
    if (!err && ev->finish == FC_FINISH_ABORT && worker_stopping(g->w))
        err = error_json(FC_EC_INTERNAL_ERROR, "the worker is shutting down");
    const char *reason = ev->finish == FC_FINISH_LENGTH ? "length" : ev->finish == FC_FINISH_STOP ? "stop" : "abort";
    if (!err) build_chunk(g, reason);
    if (g->stream) {
        if (err) {
            fc_http_stream_write(g->stream, err, strlen(err) + 1); /* with its NUL */
        } else {
            fc_str_putn(&g->out, "\0", 1);
            fc_http_stream_write(g->stream, g->out.p, g->out.len);
        }
        free(err);
        fc_http_stream_close(g->stream); /* after this, on_client_gone never runs */
        g->stream = NULL;
        slot_release(g->w);
        gen_unref(g);
        return;
    }
    pthread_mutex_lock(&g->mu);
    g->final = err ? err : fc_xstrdup(g->out.p);
    g->done = true;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    gen_unref(g);
}

/* The stream's client left: stop the generation. */
static void on_client_gone(void *user)
{
    gen *g = user;
    pthread_mutex_lock(&g->mu);
    if (g->have_id && !g->cancelled) {
        g->cancelled = true;
        fc_engine_cancel(g->m->engine, g->id);
    } else {
        g->cancel_pending = true;
    }
    pthread_mutex_unlock(&g->mu);
}

/* The generation parameters of a request (stop strings and ids point into
 * the body or the arrays here). */
typedef struct gen_params {
    const char *prompt;
    fc_gen_request r;
    const char *stop[64];
    int32_t stop_ids[256];
    bool echo;
    bool logprobs;
    int top_k;
} gen_params;

/* The message of a 400 for read_params (a string that reply_bad_request sends). */
static void param_error(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void param_error(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, PARAM_ERROR_MAX, fmt, ap);
    va_end(ap);
}

/* Reads the generation parameters into p; false with the 400's message in
 * why (PARAM_ERROR_MAX bytes) when the body is refused. */
static bool read_params(bool has_seed, uint64_t w_seed, cJSON *body, gen_params *p, char *why)
{
    memset(p, 0, sizeof *p);
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(body, "prompt");
    if (!cJSON_IsString(pr)) {
        param_error(why, "'prompt' must be a string");
        return false;
    }
    p->prompt = pr->valuestring;
    fc_gen_request *r = &p->r;
    r->sampling = fc_sampling_default();
    r->max_new_tokens = 256;
    r->logprobs = -1;
    r->truncate = true;
    struct { const char *key; double def; double v; } num[] = {
        {"temperature", 1.0, 0}, {"top_p", 1.0, 0}, {"top_k", -1, 0}, {"repetition_penalty", 1.0, 0},
        {"presence_penalty", 0, 0}, {"frequency_penalty", 0, 0}, {"max_new_tokens", 256, 0},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(num); i++) {
        num[i].v = num[i].def;
        if (get_num(body, num[i].key, &num[i].v) < 0) {
            param_error(why, "'%s' must be a finite number", num[i].key);
            return false;
        }
    }
    r->sampling.temperature = (float)num[0].v;
    r->sampling.top_p = (float)num[1].v;
    r->sampling.top_k = num[2].v > INT32_MAX ? INT32_MAX : num[2].v < -1 ? -1 : (int)num[2].v;
    r->sampling.repetition_penalty = (float)num[3].v;
    r->sampling.presence_penalty = (float)num[4].v;
    r->sampling.frequency_penalty = (float)num[5].v;
    if (!(num[6].v >= -1e9 && num[6].v <= 1e9)) {
        param_error(why, "'max_new_tokens' is out of range");
        return false;
    }
    r->max_new_tokens = (int)num[6].v;
    double seed;
    int sr = get_num(body, "seed", &seed);
    /* any 64-bit integer, signed or not (OpenAI's seeds may be negative) */
    if (sr < 0 || (sr > 0 && !(seed >= -9.2e18 && seed < 1.8e19))) {
        param_error(why, "'seed' must be a 64-bit integer");
        return false;
    }
    if (sr > 0)
        r->sampling.has_seed = true, r->sampling.seed = seed < 0 ? (uint64_t)(int64_t)seed : (uint64_t)seed;
    else if (has_seed) r->sampling.has_seed = true, r->sampling.seed = w_seed;

    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (cJSON_IsString(stop)) {
        p->stop[r->n_stop++] = stop->valuestring;
    } else if (cJSON_IsArray(stop)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stop) {
            if (!cJSON_IsString(s)) {
                param_error(why, "'stop' must be a string or a list of strings");
                return false;
            }
            if (r->n_stop == (int)FC_ARRAY_LEN(p->stop)) {
                param_error(why, "too many stop strings (at most %zu)", FC_ARRAY_LEN(p->stop));
                return false;
            }
            p->stop[r->n_stop++] = s->valuestring;
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        param_error(why, "'stop' must be a string or a list of strings");
        return false;
    }
    r->stop = p->stop;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(body, "stop_token_ids");
    if (cJSON_IsArray(ids)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, ids) {
            if (!cJSON_IsNumber(s) || !(s->valuedouble >= INT32_MIN && s->valuedouble <= INT32_MAX) ||
                r->n_stop_ids == (int)FC_ARRAY_LEN(p->stop_ids)) {
                param_error(why, "'stop_token_ids' must be a list of at most %zu integers",
                            FC_ARRAY_LEN(p->stop_ids));
                return false;
            }
            p->stop_ids[r->n_stop_ids++] = (int32_t)s->valuedouble;
        }
    } else if (ids && !cJSON_IsNull(ids)) {
        param_error(why, "'stop_token_ids' must be a list of integers");
        return false;
    }
    r->stop_ids = p->stop_ids;
    /* echo: bool(params.get("echo", True)) */
    const cJSON *echo = cJSON_GetObjectItemCaseSensitive(body, "echo");
    p->echo = !echo || cJSON_IsTrue(echo) || (cJSON_IsNumber(echo) && echo->valuedouble != 0) ||
              (cJSON_IsString(echo) && echo->valuestring[0]) || (cJSON_IsArray(echo) && cJSON_GetArraySize(echo)) ||
              (cJSON_IsObject(echo) && echo->child);
    /* logprobs: anything but null enables; an integer k > 0 asks for the top k */
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(body, "logprobs");
    if (lp && !cJSON_IsNull(lp)) {
        p->logprobs = true;
        if (cJSON_IsNumber(lp) && lp->valuedouble >= 1) p->top_k = lp->valuedouble > 20 ? 20 : (int)lp->valuedouble;
        r->logprobs = p->top_k;
    }
    /* response_format (our extension of the protocol): compiled to grammar
     * text, kept in the body (which outlives the submit) */
    char *grammar = NULL;
    const char *param = NULL;
    int rf = fc_response_format_grammar(cJSON_GetObjectItemCaseSensitive(body, "response_format"), &grammar, why,
                                        PARAM_ERROR_MAX, &param);
    if (rf < 0) return false;
    if (rf > 0) {
        cJSON *held = cJSON_AddStringToObject(body, "\001grammar", grammar);
        free(grammar);
        if (!held) {
            param_error(why, "'response_format' cannot be held");
            return false;
        }
        r->grammar = held->valuestring;
    }
    /* tool_grammar (our extension): a forced tool call's grammar text, made
     * by the API server (serve/tool_calls.h); response_format wins */
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(body, "tool_grammar");
    /* tool_grammar_trigger (ours too): the grammar is lazy, applied from this
     * text on (a call in tool_choice "auto" with strict tools) */
    const cJSON *tt = cJSON_GetObjectItemCaseSensitive(body, "tool_grammar_trigger");
    if (tt && !cJSON_IsNull(tt) && !cJSON_IsString(tt)) {
        param_error(why, "'tool_grammar_trigger' must be a string");
        return false;
    }
    if (!r->grammar && cJSON_IsString(tg) && tg->valuestring[0]) {
        r->grammar = tg->valuestring;
        if (cJSON_IsString(tt) && tt->valuestring[0]) r->grammar_trigger = tt->valuestring;
    } else if (tg && !cJSON_IsNull(tg) && !cJSON_IsString(tg)) {
        param_error(why, "'tool_grammar' must be a string");
        return false;
    }
    return true;
}

bool fc_worker_parse_generate(const char *body, size_t len,
                              void (*use)(const char *prompt, const fc_gen_request *r, bool echo, void *user),
                              void *user, char *err, size_t err_size)
{
    char why[PARAM_ERROR_MAX];
    gen_params *p = fc_xmalloc(sizeof *p);
    cJSON *j = parse_object(body, len, why);
    bool ok = j && read_params(false, 0, j, p, why);
    if (ok && use) use(p->prompt, &p->r, p->echo, user);
    if (!ok && err && err_size) snprintf(err, err_size, "%s", why);
    cJSON_Delete(j);
    free(p);
    return ok;
}

/* A JSON list of token ids of tok's vocabulary into *out (malloc'd, one
 * extra slot); returns their number, or -1 with the 400's message in why
 * (PARAM_ERROR_MAX bytes). field names the list in the message. */
static int read_token_ids(const cJSON *list, const fc_tokenizer *tok, const char *field, int32_t **out, char *why)
{
    *out = NULL;
    if (!cJSON_IsArray(list)) {
        param_error(why, "'%s' must be a list of token ids of the model's vocabulary", field);
        return -1;
    }
    int n_vocab = fc_tokenizer_n_vocab(tok), k = 0;
    int32_t *ids = fc_xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *ids);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || it->valuedouble >= n_vocab ||
            it->valuedouble != floor(it->valuedouble)) {
            char v[64];
            if (cJSON_IsNumber(it)) snprintf(v, sizeof v, "%.17g", it->valuedouble);
            else snprintf(v, sizeof v, "a non-number");
            param_error(why, "'%s' must be a list of token ids of the model's vocabulary (0..%d): item %d is %s", field,
                        n_vocab - 1, k, v);
            free(ids);
            return -1;
        }
        ids[k++] = (int32_t)it->valuedouble;
    }
    *out = ids;
    return k;
}

/* With echo and logprobs, FastChat reports the prompt's tokens too: the
 * first without a logprob, each other with its logprob given those before. */
static bool score_prompt(gen *g, const gen_params *p)
{
    int n = p->r.n_prompt, k = g->top_k;
    float *lp = fc_xmalloc(sizeof(float) * (size_t)n);
    fc_logprob *top = k > 0 ? fc_xmalloc(sizeof(fc_logprob) * (size_t)n * (size_t)k) : NULL;
    enum fc_status st = fc_engine_score(g->m->engine, p->r.prompt, n, k, lp, top, NULL, NULL);
    if (st == FC_OK)
        for (int i = 0; i < n; i++)
            lp_add(g, p->r.prompt[i], i > 0, lp[i], i > 0 && top ? top + (size_t)i * (size_t)k : NULL, i > 0 ? k : 0);
    free(lp);
    free(top);
    return st == FC_OK;
}

/* /worker_generate_stream (streaming) and /worker_generate. Every refusal
 * before the engine takes the request leaves through `done`. */
static void generate(const fc_http_request *req, fc_http_reply *rep, fc_worker *w, bool streaming)
{
    cJSON *body = parse_body(req, rep);
    if (!body) return;
    int32_t *ids = NULL;
    char *err = NULL; /* an in-band error object to send with err_status */
    int err_status = 200;
    gen *g = NULL;
    wmodel *m = pick_model(w, body, rep);
    if (!m || refuse_encoder(m, rep)) goto done;
    gen_params p;
    char why[PARAM_ERROR_MAX];
    if (!read_params(w->has_seed, w->seed, body, &p, why)) {
        reply_bad_request(rep, "%s", why);
        goto done;
    }
    if (p.r.max_new_tokens < 1) {
        reply_bad_request(rep, "'max_new_tokens' must be at least 1 (got %d)", p.r.max_new_tokens);
        goto done;
    }
    /* prompt_token_ids (ours, not FastChat's): the prompt as token ids, used
     * as they are instead of tokenizing `prompt` */
    const cJSON *pti = cJSON_GetObjectItemCaseSensitive(body, "prompt_token_ids");
    int n;
    if (pti && !cJSON_IsNull(pti)) {
        n = read_token_ids(pti, m->tok, "prompt_token_ids", &ids, why);
        if (n < 0) {
            reply_bad_request(rep, "%s", why);
            goto done;
        }
    } else {
        n = fc_tokenizer_encode(m->tok, p.prompt, strlen(p.prompt), true, true, &ids);
    }
    if (n == 0) {
        reply_bad_request(rep, "'prompt' is empty: it has no tokens to continue");
        goto done;
    }
    if (n < 0) {
        err = error_json(FC_EC_INTERNAL_ERROR, "the prompt cannot be tokenized");
        goto done;
    }
    /* FastChat's truncation, done here so that echo shows what is kept */
    int skip = fc_engine_prompt_skip(n, m->t5 ? -1 : p.r.max_new_tokens, m->n_ctx); /* T5: max_src_len = n_ctx */
    p.r.prompt = ids + skip;
    p.r.n_prompt = n - skip;

    if (!slot_acquire(w, req)) {
        err = error_json(FC_EC_INTERNAL_ERROR, "the worker is shutting down or the client left");
        err_status = 503;
        goto done;
    }
    g = fc_xcalloc(1, sizeof *g);
    g->w = w;
    g->m = m;
    atomic_init(&g->refs, 2); /* this handler and the engine's last event */
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    g->interval = w->stream_interval;
    g->logprobs = p.logprobs;
    g->top_k = p.top_k;
    g->prompt_tokens = p.r.n_prompt;
    fc_str_putn(&g->text, "", 0);
    if (p.echo) {
        size_t tl;
        char *t = fc_tokenizer_decode(m->tok, p.r.prompt, (size_t)p.r.n_prompt, true, &tl);
        fc_str_putn(&g->text, t, tl);
        free(t);
        if (g->logprobs && p.r.n_prompt > 0 && !score_prompt(g, &p)) {
            err = error_json(FC_EC_INTERNAL_ERROR, "the prompt cannot be scored for its logprobs");
            goto done;
        }
    }
    if (streaming) {
        g->stream = fc_http_reply_stream(rep, 200, NULL);
        fc_http_stream_on_disconnect(g->stream, on_client_gone, g);
    }
    gen_list(g);
    uint64_t id = fc_engine_submit(m->engine, &p.r, on_event, g);
    free(ids);
    cJSON_Delete(body);
    body = NULL, ids = NULL;
    pthread_mutex_lock(&g->mu);
    g->id = id;
    g->have_id = true;
    if (g->cancel_pending && !g->cancelled) {
        g->cancelled = true;
        fc_engine_cancel(m->engine, id);
    }
    if (streaming) {
        pthread_mutex_unlock(&g->mu);
        gen_unref(g);
        return;
    }
    while (!g->done) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        if (!g->done && !g->cancelled) {
            pthread_mutex_unlock(&g->mu);
            bool gone = fc_http_request_client_gone(req);
            pthread_mutex_lock(&g->mu);
            if (gone && !g->cancelled) {
                g->cancelled = true;
                fc_engine_cancel(m->engine, id);
            }
        }
    }
    pthread_mutex_unlock(&g->mu);
    /* "timings" (our extension, non-streaming only): the API server's
     * /metrics derives time to first token and inter-token latency from it */
    size_t fl = strlen(g->final);
    if (g->t_first > 0 && fl && g->final[fl - 1] == '}') {
        char *f = fc_xasprintf("%.*s, \"timings\": {\"first_to_last_s\": %.6f, \"first_to_reply_s\": %.6f}}",
                               (int)fl - 1, g->final, g->t_last - g->t_first, fc_time_sec() - g->t_first);
        free(g->final);
        g->final = f;
    }
    fc_http_reply_json(rep, 200, g->final);
    slot_release(w);
    gen_unref(g);
    return;

done:
    if (err) fc_http_reply_json(rep, err_status, err);
    free(err);
    if (g) { /* refused before the engine saw it: this handler holds the only reference */
        slot_release(w);
        atomic_store(&g->refs, 1);
        gen_unref(g);
    }
    free(ids);
    cJSON_Delete(body);
}

static void h_generate_stream(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    generate(req, rep, user, true);
}

static void h_generate(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    generate(req, rep, user, false);
}

/* ---- the other endpoints ---- */

static char *status_json(fc_worker *w)
{
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"model_names\": [");
    int k = 0;
    for (int i = 0; i < w->n_models; i++)
        for (int j = 0; j < w->models[i].n_names; j++) {
            if (k++) fc_str_puts(&b, ", ");
            fc_json_put_strn(&b, w->models[i].names[j], strlen(w->models[i].names[j]));
        }
    fc_str_printf(&b, "], \"speed\": 1, \"queue_length\": %d}", fc_worker_queue_length(w));
    return b.p;
}

/* POST /worker_get_engine_stats (ours; FastChat's /worker_get_status is kept
 * exactly as FastChat sends it): the queue and each model's KV cache and
 * scheduler, for the API server's /metrics. */
static void h_engine_stats(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    (void)req;
    fc_worker *w = user;
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"model_names\": [");
    int k = 0;
    for (int i = 0; i < w->n_models; i++)
        for (int j = 0; j < w->models[i].n_names; j++) {
            if (k++) fc_str_puts(&b, ", ");
            fc_json_put_strn(&b, w->models[i].names[j], strlen(w->models[i].names[j]));
        }
    fc_str_printf(&b, "], \"queue_length\": %d, \"kv_cache\": [", fc_worker_queue_length(w));
    k = 0;
    for (int i = 0; i < w->n_models; i++) {
        if (!w->models[i].engine) continue;
        fc_engine_stats st;
        fc_engine_get_stats(w->models[i].engine, &st);
        for (int j = 0; j < w->models[i].n_names; j++) {
            if (k++) fc_str_puts(&b, ", ");
            fc_str_puts(&b, "{\"model\": ");
            fc_json_put_strn(&b, w->models[i].names[j], strlen(w->models[i].names[j]));
            fc_str_printf(&b, ", \"blocks_used\": %lld, \"blocks_total\": %lld, \"running\": %d, \"waiting\": %d",
                      (long long)(st.kv_blocks_total - st.kv_blocks_free), (long long)st.kv_blocks_total, st.running,
                      st.waiting);
            fc_str_printf(&b, ", \"preemptions\": %llu}", (unsigned long long)st.preemptions);
        }
    }
    fc_str_puts(&b, "]}");
    fc_http_reply_json(rep, 200, b.p);
    free(b.p);
}

static void h_status(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    (void)req;
    char *s = status_json(user);
    fc_http_reply_json(rep, 200, s);
    free(s);
}

/* Bodies are optional for these (FastChat's multi-model worker reads
 * "model"); an empty body is {}. */
static cJSON *parse_optional(const fc_http_request *req, fc_http_reply *rep)
{
    const char *p = req->body;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    if (!*p) return cJSON_CreateObject();
    return parse_body(req, rep);
}

static void h_count_token(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    fc_worker *w = user;
    cJSON *body = parse_body(req, rep);
    if (!body) return;
    wmodel *m = pick_model(w, body, rep);
    const cJSON *pr = m ? cJSON_GetObjectItemCaseSensitive(body, "prompt") : NULL;
    if (m && !cJSON_IsString(pr)) reply_bad_request(rep, "'prompt' must be a string");
    if (!m || !cJSON_IsString(pr)) {
        cJSON_Delete(body);
        return;
    }
    int n;
    if (m->bert) { /* the tokens the encoder computes: cut at max_seq_length */
        int32_t *ids = NULL;
        n = fc_wordpiece_encode(m->wp, pr->valuestring, strlen(pr->valuestring), true, m->n_ctx, &ids);
        free(ids);
    } else {
        n = fc_tokenizer_encode_buf(m->tok, pr->valuestring, strlen(pr->valuestring), true, true, NULL, 0);
    }
    cJSON_Delete(body);
    char out[96];
    if (n < 0) {
        char *e = error_json(FC_EC_INTERNAL_ERROR, "the prompt cannot be tokenized");
        fc_http_reply_json(rep, 200, e);
        free(e);
        return;
    }
    snprintf(out, sizeof out, "{\"count\": %d, \"error_code\": 0}", n);
    fc_http_reply_json(rep, 200, out);
}

/* /worker_tokenize {model, prompt, add_special_tokens (default true)} ->
 * {"tokens": [...], "count", "max_model_len", "error_code": 0} (the API
 * server's /tokenize) */
static void h_tokenize(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    cJSON *body = parse_body(req, rep);
    if (!body) return;
    wmodel *m = pick_model(user, body, rep);
    bool ok = m && !refuse_encoder(m, rep);
    const cJSON *pr = ok ? cJSON_GetObjectItemCaseSensitive(body, "prompt") : NULL;
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(body, "add_special_tokens");
    if (ok && !cJSON_IsString(pr)) {
        reply_bad_request(rep, "'prompt' must be a string");
        ok = false;
    }
    if (!ok) {
        cJSON_Delete(body);
        return;
    }
    int32_t *ids = NULL;
    int n = fc_tokenizer_encode(m->tok, pr->valuestring, strlen(pr->valuestring), !cJSON_IsFalse(as), true, &ids);
    cJSON_Delete(body);
    if (n < 0) {
        char *e = error_json(FC_EC_INTERNAL_ERROR, "the prompt cannot be tokenized");
        fc_http_reply_json(rep, 200, e);
        free(e);
        return;
    }
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
    free(ids);
    cJSON_AddNumberToObject(o, "count", n);
    cJSON_AddNumberToObject(o, "max_model_len", m->n_ctx);
    cJSON_AddNumberToObject(o, "error_code", 0);
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(rep, 200, s);
    free(s);
    cJSON_Delete(o);
}

/* /worker_detokenize {model, tokens: [ids]} -> {"prompt", "error_code": 0} */
static void h_detokenize(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    cJSON *body = parse_body(req, rep);
    if (!body) return;
    wmodel *m = pick_model(user, body, rep);
    if (refuse_encoder(m, rep)) {
        cJSON_Delete(body);
        return;
    }
    const cJSON *toks = m ? cJSON_GetObjectItemCaseSensitive(body, "tokens") : NULL;
    char why[PARAM_ERROR_MAX];
    int32_t *ids = NULL;
    int k = m ? read_token_ids(toks, m->tok, "tokens", &ids, why) : -1;
    bool ok = k >= 0;
    if (m && !ok) reply_bad_request(rep, "%s", why);
    if (m && ok) {
        size_t len = 0;
        char *text = fc_tokenizer_decode(m->tok, ids, (size_t)k, false, &len);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", text);
        cJSON_AddNumberToObject(o, "error_code", 0);
        char *s = cJSON_PrintUnformatted(o);
        fc_http_reply_json(rep, 200, s);
        free(s);
        free(text);
        cJSON_Delete(o);
    }
    free(ids);
    cJSON_Delete(body);
}

static void h_conv_template(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    cJSON *body = parse_optional(req, rep);
    if (!body) return;
    wmodel *m = pick_model(user, body, rep);
    cJSON_Delete(body);
    if (m && !refuse_encoder(m, rep)) fc_http_reply_json(rep, 200, m->conv_json);
}

static void h_model_details(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    cJSON *body = parse_optional(req, rep);
    if (!body) return;
    wmodel *m = pick_model(user, body, rep);
    cJSON_Delete(body);
    if (!m) return;
    char out[64];
    snprintf(out, sizeof out, "{\"context_length\": %d}", m->n_ctx);
    fc_http_reply_json(rep, 200, out);
}

/* The engine asks between embedding steps: still worth computing? (The
 * request stays valid: its handler waits for the engine.) */
static bool embed_keep_going(void *user) { return !fc_http_request_client_gone(user); }

static void h_embeddings(const fc_http_request *req, fc_http_reply *rep, void *user)
{
    fc_worker *w = user;
    cJSON *body = parse_body(req, rep);
    if (!body) return;
    wmodel *m = pick_model(w, body, rep);
    const cJSON *in = m ? cJSON_GetObjectItemCaseSensitive(body, "input") : NULL;
    bool one = cJSON_IsString(in);
    bool ok = one || (cJSON_IsArray(in) && cJSON_GetArraySize(in) > 0);
    const cJSON *it;
    if (ok && !one) cJSON_ArrayForEach(it, in) ok = ok && cJSON_IsString(it);
    if (m && !ok) {
        reply_bad_request(rep, "'input' must be a string or a non-empty list of strings");
    } else if (ok && !one && cJSON_GetArraySize(in) > MAX_EMBED_INPUTS) {
        reply_bad_request(rep, "'input' has %d items: at most %d per request", cJSON_GetArraySize(in),
                          MAX_EMBED_INPUTS);
        ok = false;
    }
    if (!ok) {
        cJSON_Delete(body);
        return;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(body, "encoding_format");
    bool b64 = cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "base64");
    if (!slot_acquire(w, req)) {
        cJSON_Delete(body);
        char *e = error_json(FC_EC_INTERNAL_ERROR, "the worker is shutting down or the client left");
        fc_http_reply_json(rep, 503, e);
        free(e);
        return;
    }
    /* tokenize everything first: lengths are checked before any compute */
    int n_in = one ? 1 : cJSON_GetArraySize(in);
    int32_t **all = fc_xcalloc((size_t)n_in, sizeof(int32_t *));
    int *lens = fc_xcalloc((size_t)n_in, sizeof(int));
    long token_num = 0;
    char *err = NULL;
    int k = 0;
    for (const cJSON *s = one ? in : in->child; s && !err; s = one ? NULL : s->next, k++) {
        /* an encoder cuts at max_seq_length, as sentence-transformers does */
        int n = m->bert ? fc_wordpiece_encode(m->wp, s->valuestring, strlen(s->valuestring), true, m->n_ctx, &all[k])
                        : fc_tokenizer_encode(m->tok, s->valuestring, strlen(s->valuestring), true, true, &all[k]);
        if (n <= 0) {
            char why[96];
            snprintf(why, sizeof why, n == 0 ? "input %d is empty: it has no tokens" : "input %d cannot be tokenized",
                     k);
            err = n == 0 ? plain_error_json(FC_EC_VALIDATION_TYPE_ERROR, why) : error_json(FC_EC_INTERNAL_ERROR, why);
            break;
        }
        if (w->embed_in_truncate && n > m->n_ctx) n = m->n_ctx;
        if (n > m->n_ctx) { /* FastChat's context check (openai_api_server check_length) */
            char why[256];
            snprintf(why, sizeof why,
                     "This model's maximum context length is %d tokens. However, your messages resulted in %d "
                     "tokens. Please reduce the length of the messages.",
                     m->n_ctx, n);
            err = plain_error_json(FC_EC_CONTEXT_OVERFLOW, why);
            break;
        }
        lens[k] = n;
        token_num += n;
        if (token_num > MAX_EMBED_TOKENS) {
            char why[200];
            snprintf(why, sizeof why, "the inputs hold more than %d tokens: at most %d per request", MAX_EMBED_TOKENS,
                     MAX_EMBED_TOKENS);
            err = plain_error_json(FC_EC_VALIDATION_TYPE_ERROR, why);
            break;
        }
    }
    int C = m->bert ? fc_bert_dim(m->bert) : fc_engine_embed_dim(m->engine);
    float *vec = fc_xmalloc(sizeof(float) * (size_t)C);
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"embedding\": [");
    /* an encoder embeds the inputs in batches of ENC_BATCH, all at once */
    float *encv = NULL;
    if (m->bert && !err) {
        encv = malloc(sizeof(float) * (size_t)C * (size_t)n_in);
        for (int s0 = 0; s0 < n_in && !err && encv; s0 += ENC_BATCH) {
            if (fc_http_request_client_gone(req)) {
                err = error_json(FC_EC_INTERNAL_ERROR, "the client left or the worker is shutting down");
                break;
            }
            int nb = n_in - s0 < ENC_BATCH ? n_in - s0 : ENC_BATCH;
            enum fc_status st =
                fc_bert_embed(m->bert, (const int32_t *const *)all + s0, lens + s0, nb, encv + (size_t)s0 * C);
            if (st != FC_OK) {
                char why[160];
                snprintf(why, sizeof why, "embedding inputs %d..%d failed: %s", s0, s0 + nb - 1, fc_status_str(st));
                err = error_json(st == FC_ERR_NOMEM ? FC_EC_CUDA_OUT_OF_MEMORY : FC_EC_INTERNAL_ERROR, why);
            }
        }
        if (!encv) err = error_json(FC_EC_CUDA_OUT_OF_MEMORY, "out of memory");
    }
    for (k = 0; k < n_in && !err; k++) {
        if (fc_http_request_client_gone(req)) { /* the client left, or the worker stops */
            err = error_json(FC_EC_INTERNAL_ERROR, "the client left or the worker is shutting down");
            break;
        }
        enum fc_status st = FC_OK;
        if (encv) memcpy(vec, encv + (size_t)k * C, sizeof(float) * (size_t)C);
        else st = fc_engine_embed(m->engine, all[k], lens[k], vec, embed_keep_going, (void *)req);
        if (st != FC_OK && fc_http_request_client_gone(req)) {
            err = error_json(FC_EC_INTERNAL_ERROR, "the client left or the worker is shutting down");
            break;
        }
        if (st != FC_OK) {
            char why[160];
            snprintf(why, sizeof why, "embedding input %d failed: %s", k, fc_status_str(st));
            err = error_json(st == FC_ERR_NOMEM ? FC_EC_CUDA_OUT_OF_MEMORY : FC_EC_INTERNAL_ERROR, why);
            break;
        }
        if (k) fc_str_puts(&b, ", ");
        if (b64) {
            fc_str_puts(&b, "\"");
            put_base64(&b, (const uint8_t *)vec, sizeof(float) * (size_t)C); /* little-endian float32 */
            fc_str_puts(&b, "\"");
        } else {
            fc_str_puts(&b, "[");
            for (int i = 0; i < C; i++) {
                if (i) fc_str_puts(&b, ", ");
                fc_json_put_number(&b, vec[i], 9);
            }
            fc_str_puts(&b, "]");
        }
    }
    for (int i = 0; i < n_in; i++) free(all[i]);
    free(all);
    free(lens);
    slot_release(w);
    cJSON_Delete(body);
    free(vec);
    free(encv);
    if (err) {
        fc_http_reply_json(rep, 200, err);
        free(err);
    } else {
        fc_str_printf(&b, "], \"token_num\": %ld}", token_num);
        fc_http_reply_json(rep, 200, b.p);
    }
    free(b.p);
}

/* ---- registration and heartbeats ---- */

/* Registration and heartbeat calls end at once when the worker stops. */
static bool hb_keep_going(void *user) { return !worker_stopping(user); }

static bool register_worker(fc_worker *w)
{
    char *status = status_json(w);
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"worker_name\": ");
    fc_json_put_strn(&b, w->address, strlen(w->address));
    fc_str_printf(&b, ", \"check_heart_beat\": true, \"worker_status\": %s, \"multimodal\": false}", status);
    free(status);
    char url[1024];
    snprintf(url, sizeof url, "%s/register_worker", w->controller);
    fc_http_response r;
    fc_http_call call = {.keep_going = hb_keep_going, .user = w};
    bool ok = fc_http_post_json_ex(url, b.p, b.len, REGISTER_TIMEOUT_S, &call, &r) && r.status == 200;
    if (ok) FC_LOG_INFO("worker: registered %s with %s", w->address, w->controller);
    else FC_LOG_ERROR("worker: cannot register with %s: %s", w->controller, r.status ? "HTTP error" : r.error);
    fc_http_response_free(&r);
    free(b.p);
    return ok;
}

/* One heartbeat: 1 the controller knows us, 0 it does not, -1 no answer. */
static int heart_beat(fc_worker *w)
{
    fc_str b = FC_STR_INIT;
    fc_str_puts(&b, "{\"worker_name\": ");
    fc_json_put_strn(&b, w->address, strlen(w->address));
    fc_str_printf(&b, ", \"queue_length\": %d}", fc_worker_queue_length(w));
    char url[1024];
    snprintf(url, sizeof url, "%s/receive_heart_beat", w->controller);
    fc_http_response r;
    int res = -1;
    fc_http_call call = {.keep_going = hb_keep_going, .user = w};
    if (fc_http_post_json_ex(url, b.p, b.len, HEART_BEAT_TIMEOUT_S, &call, &r) && r.status == 200) {
        cJSON *j = cJSON_Parse(r.body);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "exist");
        if (cJSON_IsBool(e)) res = cJSON_IsTrue(e) ? 1 : 0;
        cJSON_Delete(j);
    }
    if (res < 0) FC_LOG_ERROR("worker: heart beat to %s failed: %s", w->controller, r.status ? "bad answer" : r.error);
    fc_http_response_free(&r);
    free(b.p);
    return res;
}

/* Sleeps up to s seconds; false when the worker is stopping. */
static bool hb_sleep(fc_worker *w, double s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + s;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        if (pthread_cond_timedwait(&w->hb_cv, &w->mu, &ts) == ETIMEDOUT) break;
    }
    bool go = !w->stopping;
    pthread_mutex_unlock(&w->mu);
    return go;
}

static void *hb_main(void *arg)
{
    fc_worker *w = arg;
    /* registration first, retried until it works */
    while (!register_worker(w))
        if (!hb_sleep(w, RETRY_S)) return NULL;
    while (hb_sleep(w, w->heart_beat_s)) {
        int r;
        while ((r = heart_beat(w)) < 0)
            if (!hb_sleep(w, RETRY_S)) return NULL;
        if (r == 0)
            while (!register_worker(w))
                if (!hb_sleep(w, RETRY_S)) return NULL;
    }
    return NULL;
}

/* ---- start and free ---- */

static char *basename_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    char *b = fc_xmalloc(n - s + 1);
    memcpy(b, path + s, n - s);
    b[n - s] = 0;
    return b;
}

static bool load_model(fc_worker *w, wmodel *m, const fc_worker_model *spec, const fc_worker_params *p)
{
    m->path = fc_xstrdup(spec->model_path);
    if (spec->model_names && *spec->model_names) {
        const char *s = spec->model_names;
        while (*s) {
            const char *e = strchr(s, ',');
            size_t l = e ? (size_t)(e - s) : strlen(s);
            while (l > 0 && *s == ' ') s++, l--;
            while (l > 0 && s[l - 1] == ' ') l--;
            if (l > 0) {
                m->names = fc_xrealloc(m->names, sizeof(char *) * (size_t)(m->n_names + 1));
                char *nm = fc_xmalloc(l + 1);
                memcpy(nm, s, l);
                nm[l] = 0;
                m->names[m->n_names++] = nm;
            }
            if (!e) break;
            s = e + 1;
        }
    }
    if (m->n_names == 0) {
        m->names = fc_xmalloc(sizeof(char *));
        m->names[m->n_names++] = basename_of(spec->model_path);
    }
    if (fc_bert_is_encoder(spec->model_path)) {
        m->bert = fc_bert_load(spec->model_path, p->n_threads);
        if (!m->bert) return false;
        m->wp = fc_wordpiece_load(spec->model_path);
        if (!m->wp) return false;
        if (fc_wordpiece_n_vocab(m->wp) > fc_bert_n_vocab(m->bert)) {
            FC_LOG_ERROR("worker: %s: the tokenizer has %d tokens, the model %d", spec->model_path,
                         fc_wordpiece_n_vocab(m->wp), fc_bert_n_vocab(m->bert));
            return false;
        }
        m->n_ctx = fc_bert_max_seq(m->bert);
        return true;
    }
    fc_model_load_params lp = {.load_8bit = p->load_8bit, .plain_layout = p->exact || p->act8};
    if (fc_t5_is_t5(spec->model_path)) {
        m->t5 = fc_t5_load(spec->model_path);
        if (!m->t5) return false;
        m->tok = fc_tokenizer_load(spec->model_path); /* T5: folder or GGUF */
    } else if (!(m->model = fc_model_load_ex(spec->model_path, &lp))) {
        return false;
    } else if (fc_model_format(m->model) == FC_FORMAT_GGUF)
        m->tok = fc_tokenizer_from_gguf(fc_model_gguf(m->model), fc_model_path(m->model));
    else
        m->tok = fc_tokenizer_from_hf(fc_model_path(m->model));
    if (!m->tok) {
        FC_LOG_ERROR("worker: %s: no tokenizer that can be read", spec->model_path);
        return false;
    }
    fc_conv *conv = fc_template_pick(spec->conv_template, spec->model_path, m->tok);
    if (!conv) {
        FC_LOG_ERROR("worker: unknown conversation template '%s'", spec->conv_template);
        return false;
    }
    cJSON *cj = cJSON_CreateObject();
    cJSON_AddItemToObject(cj, "conv", fc_conv_to_json(conv));
    /* our extension: the model's own chat template, which the API server
     * renders tool conversations with (serve/tool_calls.h) */
    const char *jt = fc_tokenizer_chat_template(m->tok);
    if (jt) {
        cJSON_AddStringToObject(cj, "chat_template", jt);
        int32_t bos = fc_tokenizer_bos(m->tok), eos = fc_tokenizer_eos(m->tok);
        if (bos >= 0) cJSON_AddStringToObject(cj, "bos_token", fc_tokenizer_token_text(m->tok, bos));
        if (eos >= 0) cJSON_AddStringToObject(cj, "eos_token", fc_tokenizer_token_text(m->tok, eos));
        cJSON_AddBoolToObject(cj, "add_bos_token", fc_tokenizer_adds_bos(m->tok));
    }
    m->conv_json = cJSON_PrintUnformatted(cj);
    cJSON_Delete(cj);
    fc_conv_free(conv);
    /* room for every admitted request plus cached prefixes */
    int seqs = w->limit + 16 > 64 ? w->limit + 16 : 64;
    fc_engine_params ep = {.n_threads = p->n_threads, .exact = p->exact, .act8 = p->act8, .kv_tokens = p->kv_cache_tokens,
                           .n_seq_max = seqs};
    m->engine = m->t5 ? fc_engine_new_t5(m->t5, m->tok, &ep) : fc_engine_new(m->model, m->tok, &ep);
    if (!m->engine) return false;
    m->n_ctx = fc_engine_n_ctx(m->engine);
    return true;
}

static void free_model(wmodel *m)
{
    fc_engine_free(m->engine);
    fc_bert_free(m->bert);
    fc_wordpiece_free(m->wp);
    fc_tokenizer_free(m->tok);
    fc_model_free(m->model);
    fc_t5_free(m->t5);
    for (int i = 0; i < m->n_names; i++) free(m->names[i]);
    free(m->names);
    free(m->conv_json);
    free(m->path);
}

fc_worker *fc_worker_start(const fc_worker_params *p)
{
    if (!p || p->n_models < 1 || !p->models) {
        FC_LOG_ERROR("fc_worker_start: no model given");
        return NULL;
    }
    fc_http_global_init();
    fc_worker *w = fc_xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->hb_cv, &ca);
    pthread_condattr_destroy(&ca);
    w->limit = p->limit_worker_concurrency > 0 ? p->limit_worker_concurrency : 5;
    w->stream_interval = p->stream_interval > 0 ? p->stream_interval : 2;
    w->has_seed = p->has_seed;
    w->seed = p->seed;
    w->embed_in_truncate = p->embed_in_truncate;
    w->no_register = p->no_register;
    w->heart_beat_s = p->heart_beat_interval_s;
    if (w->heart_beat_s <= 0) {
        const char *env = getenv("FASTCHAT_WORKER_HEART_BEAT_INTERVAL");
        w->heart_beat_s = env && atof(env) > 0 ? atof(env) : 45;
    }
    w->controller = fc_xstrdup(p->controller_address ? p->controller_address : "http://localhost:21001");
    size_t cl = strlen(w->controller);
    while (cl > 0 && w->controller[cl - 1] == '/') w->controller[--cl] = 0;
    w->models = fc_xcalloc((size_t)p->n_models, sizeof(wmodel));
    w->n_models = p->n_models;
    for (int i = 0; i < p->n_models; i++) {
        if (!load_model(w, &w->models[i], &p->models[i], p)) goto fail;
        FC_LOG_INFO("worker: loaded %s as %s (context %d)", w->models[i].path, w->models[i].names[0],
                    w->models[i].n_ctx);
    }
    fc_http_server_params hp = {.host = p->host ? p->host : "localhost", .port = p->port};
    w->http = fc_http_server_new(&hp);
    if (!w->http) goto fail;
    fc_http_server_route(w->http, "POST", "/worker_generate_stream", h_generate_stream, w);
    fc_http_server_route(w->http, "POST", "/worker_generate", h_generate, w);
    fc_http_server_route(w->http, "POST", "/worker_get_embeddings", h_embeddings, w);
    fc_http_server_route(w->http, "POST", "/worker_get_status", h_status, w);
    fc_http_server_route(w->http, "POST", "/worker_get_engine_stats", h_engine_stats, w);
    fc_http_server_route(w->http, "POST", "/count_token", h_count_token, w);
    fc_http_server_route(w->http, "POST", "/worker_tokenize", h_tokenize, w);
    fc_http_server_route(w->http, "POST", "/worker_detokenize", h_detokenize, w);
    fc_http_server_route(w->http, "POST", "/worker_get_conv_template", h_conv_template, w);
    fc_http_server_route(w->http, "POST", "/model_details", h_model_details, w);
    if (fc_http_server_start(w->http) != FC_OK) goto fail;
    if (p->worker_address && *p->worker_address) {
        w->address = fc_xstrdup(p->worker_address);
        size_t al = strlen(w->address);
        while (al > 0 && w->address[al - 1] == '/') w->address[--al] = 0;
    } else {
        char a[64];
        snprintf(a, sizeof a, "%s://localhost:%d", fc_http_scheme(), fc_http_server_port(w->http));
        w->address = fc_xstrdup(a);
    }
    if (!w->no_register) {
        if (pthread_create(&w->hb, NULL, hb_main, w) != 0) {
            FC_LOG_ERROR("fc_worker_start: cannot start the heartbeat thread");
            goto fail;
        }
        w->hb_started = true;
    }
    return w;
fail:
    fc_worker_free(w);
    return NULL;
}

int fc_worker_port(const fc_worker *w) { return fc_http_server_port(w->http); }

const char *fc_worker_address(const fc_worker *w) { return w->address; }

void fc_worker_free(fc_worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    for (waiter *q = w->wait_head; q; q = q->next) pthread_cond_signal(&q->cv);
    /* what runs ends now: each gets a last chunk with an error (on_event) */
    for (gen *g = w->gens; g; g = g->next) {
        pthread_mutex_lock(&g->mu);
        if (g->have_id && !g->cancelled) {
            g->cancelled = true;
            fc_engine_cancel(g->m->engine, g->id);
        } else {
            g->cancel_pending = true;
        }
        pthread_mutex_unlock(&g->mu);
    }
    pthread_cond_broadcast(&w->hb_cv);
    pthread_mutex_unlock(&w->mu);
    if (w->hb_started) pthread_join(w->hb, NULL);
    /* the server first: open streams are cancelled and handlers return while
     * the engines still run to deliver their last events */
    fc_http_server_free(w->http);
    for (int i = 0; i < w->n_models; i++) free_model(&w->models[i]);
    free(w->models);
    free(w->address);
    free(w->controller);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->hb_cv);
    free(w);
}
