/*
 * ollama.c: Ollama's API and /health, /metrics over the OpenAI routes
 * (see ollama.h).
 */
#include "serve/ollama.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "base/fc_base.h"
#include "base/json.h"
#include "base/str.h"
#include "net/http.h"
#include "net/nulstream.h"
#include "serve/loopback.h"
#include "serve/protocol.h"
#include "serve/openai_api.h"
#include "serve/response_format.h"

#define OLLAMA_VERSION "0.6.3"   /* the API version we follow (the pinned client's) */
#define MAX_MODELS 64           /* per-model metric series */
#define N_BUCKETS 12

static const double BUCKETS[N_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

typedef struct hist {
    unsigned long long n[N_BUCKETS + 1]; /* last: +Inf */
    double sum;
    unsigned long long count;
} hist;

typedef struct model_stats {
    char *name;
    unsigned long long prompt_tokens, completion_tokens, requests;
    hist ttft, itl;
} model_stats;

typedef struct route_stat {
    char *route;
    int status;
    unsigned long long n;
} route_stat;

struct fc_ollama {
    const fc_openai_api *api;
    char *host;     /* loopback host for URLs ("127.0.0.1", "[::1]", ...) */
    char *ctl;
    pthread_mutex_t mu;
    route_stat *routes;
    int n_routes;
    model_stats models[MAX_MODELS];
    int n_models;
    long in_flight;
};

/* ---- metrics ---- */

static void count_request(fc_ollama *o, const char *route, int status)
{
    pthread_mutex_lock(&o->mu);
    int i = 0;
    for (; i < o->n_routes; i++)
        if (o->routes[i].status == status && !strcmp(o->routes[i].route, route)) break;
    if (i == o->n_routes) {
        o->routes = fc_xrealloc(o->routes, sizeof *o->routes * (size_t)(o->n_routes + 1));
        o->routes[i] = (route_stat){fc_xstrdup(route), status, 0};
        o->n_routes++;
    }
    o->routes[i].n++;
    pthread_mutex_unlock(&o->mu);
}

static void on_answer(const char *route, int status, double seconds, void *user)
{
    (void)seconds;
    count_request(user, route, status);
}

/* with o->mu held; NULL when the table is full */
static model_stats *model_of(fc_ollama *o, const char *model)
{
    for (int i = 0; i < o->n_models; i++)
        if (!strcmp(o->models[i].name, model)) return &o->models[i];
    if (o->n_models == MAX_MODELS) return NULL;
    model_stats *m = &o->models[o->n_models++];
    memset(m, 0, sizeof *m);
    m->name = fc_xstrdup(model);
    return m;
}

static void hist_add(hist *h, double v)
{
    int i = 0;
    while (i < N_BUCKETS && v > BUCKETS[i]) i++;
    h->n[i]++;
    h->sum += v;
    h->count++;
}

void fc_ollama_in_flight(fc_ollama *o, int delta)
{
    if (!o) return;
    pthread_mutex_lock(&o->mu);
    o->in_flight += delta;
    pthread_mutex_unlock(&o->mu);
}

void fc_ollama_observe(fc_ollama *o, const char *model, long prompt_tokens, long completion_tokens, double ttft_s,
                       double first_to_last_s)
{
    if (!o || !model) return;
    pthread_mutex_lock(&o->mu);
    model_stats *ms = model_of(o, model);
    if (ms) {
        ms->requests++;
        if (prompt_tokens > 0) ms->prompt_tokens += (unsigned long long)prompt_tokens;
        if (completion_tokens > 0) ms->completion_tokens += (unsigned long long)completion_tokens;
        if (ttft_s >= 0) hist_add(&ms->ttft, ttft_s);
        /* the worker streams a piece every few tokens: each token after the
         * first is observed at the mean gap of its request */
        if (first_to_last_s >= 0 && completion_tokens > 1)
            for (long k = 1; k < completion_tokens; k++)
                hist_add(&ms->itl, first_to_last_s / (double)(completion_tokens - 1));
    }
    pthread_mutex_unlock(&o->mu);
}

/* ---- helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void rfc3339_now(char *out /* >= 40 */)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

static char *xfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s ? s : fc_xstrdup("");
}

static void reply_error(fc_http_reply *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(r, status, s);
    free(s);
    cJSON_Delete(o);
}

static void reply_cjson(fc_http_reply *r, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(r, status, s);
    free(s);
    cJSON_Delete(o);
}

/* --api-keys, answered as Ollama answers a refused key */
static bool auth(fc_ollama *o, const fc_http_request *req, fc_http_reply *reply)
{
    if (fc_openai_api_auth(o->api, req, NULL)) return true;
    reply_error(reply, 401, "unauthorized");
    return false;
}

/* ---- translation (pure) ---- */

void fc_ollama_req_free(fc_ollama_req *r)
{
    if (!r) return;
    free(r->model);
    free(r->path);
    free(r->body);
    memset(r, 0, sizeof *r);
}

static int bad(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    *err = s ? s : fc_xstrdup("invalid request");
    return 400;
}

/* Copies option `from` (a number) to the OpenAI body as `to`. */
static int opt_num(const cJSON *opts, const char *from, cJSON *dst, const char *to, bool integer, char **err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(opts, from);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return bad(err, "json: cannot unmarshal %s into Go struct field Options.%s of type %s",
                   cJSON_IsString(v) ? "string" : "value", from, integer ? "int" : "float32");
    if (integer && (v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9.2e18))
        return bad(err, "json: cannot unmarshal number %g into Go struct field Options.%s of type int",
                   v->valuedouble, from);
    cJSON_AddNumberToObject(dst, to, v->valuedouble);
    return 0;
}

static int add_options(const cJSON *req, cJSON *dst, bool chat_route, char **err)
{
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(req, "options");
    if (!opts || cJSON_IsNull(opts)) return 0;
    if (!cJSON_IsObject(opts)) return bad(err, "json: cannot unmarshal value into Go struct field options of type map");
    int rc;
    if ((rc = opt_num(opts, "temperature", dst, "temperature", false, err))) return rc;
    if ((rc = opt_num(opts, "top_p", dst, "top_p", false, err))) return rc;
    if ((rc = opt_num(opts, "top_k", dst, "top_k", true, err))) return rc;
    if ((rc = opt_num(opts, "seed", dst, "seed", true, err))) return rc;
    if ((rc = opt_num(opts, "presence_penalty", dst, "presence_penalty", false, err))) return rc;
    if ((rc = opt_num(opts, "frequency_penalty", dst, "frequency_penalty", false, err))) return rc;
    if (chat_route && (rc = opt_num(opts, "repeat_penalty", dst, "repetition_penalty", false, err))) return rc;
    const cJSON *np = cJSON_GetObjectItemCaseSensitive(opts, "num_predict");
    if (np && !cJSON_IsNull(np)) {
        if (!cJSON_IsNumber(np) || np->valuedouble != floor(np->valuedouble) || fabs(np->valuedouble) > 9.2e18)
            return bad(err, "json: cannot unmarshal value into Go struct field Options.num_predict of type int");
        if (np->valuedouble > 0) cJSON_AddNumberToObject(dst, "max_tokens", np->valuedouble);
        /* 0: Ollama generates nothing; treat as 1 token at least? It answers
         * an empty response: ask for 1 token and the caller cuts it. Keep
         * simple: < 1 means unlimited, as -1 and -2 do in Ollama. */
    }
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(opts, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        if (cJSON_IsString(stop)) {
            cJSON_AddItemToObject(dst, "stop", cJSON_CreateString(stop->valuestring));
        } else if (cJSON_IsArray(stop)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, stop) if (!cJSON_IsString(it))
                return bad(err, "json: cannot unmarshal value into Go struct field Options.stop of type string");
            cJSON_AddItemToObject(dst, "stop", cJSON_Duplicate(stop, 1));
        } else {
            return bad(err, "json: cannot unmarshal value into Go struct field Options.stop of type []string");
        }
    }
    return 0;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Optional string field: 0 (absent/null: *v NULL), or 400. */
static int str_field(const cJSON *o, const char *k, const char **v, char **err)
{
    const cJSON *x = get(o, k);
    *v = NULL;
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsString(x)) return bad(err, "json: cannot unmarshal value into Go struct field .%s of type string", k);
    *v = x->valuestring;
    return 0;
}

int fc_ollama_translate(enum fc_ollama_kind kind, const char *body, size_t len, fc_ollama_req *out, char **err)
{
    memset(out, 0, sizeof *out);
    *err = NULL;
    if (len == 0) return bad(err, "missing request body");
    for (size_t i = 0; i < len; i++)
        if (!body[i]) return bad(err, "invalid character '\\x00' in request body");
    cJSON *req = cJSON_ParseWithLength(body, len);
    if (!req) return bad(err, "invalid JSON in request body");
    int rc = 0;
    cJSON *dst = NULL;
    if (!cJSON_IsObject(req)) {
        rc = bad(err, "json: cannot unmarshal value into Go value of type api.Request");
        goto done;
    }
    const char *model = NULL, *s;
    if ((rc = str_field(req, "model", &model, err))) goto done;
    if (!model && kind == FC_OLLAMA_SHOW && (rc = str_field(req, "name", &model, err))) goto done;
    if (!model || !*model) {
        rc = bad(err, "model is required");
        goto done;
    }
    out->model = fc_xstrdup(model);
    const cJSON *stream = get(req, "stream");
    if (stream && !cJSON_IsNull(stream) && !cJSON_IsBool(stream)) {
        rc = bad(err, "json: cannot unmarshal value into Go struct field .stream of type bool");
        goto done;
    }
    out->stream = !cJSON_IsFalse(stream);
    if (kind == FC_OLLAMA_SHOW) goto done;
    /* format: "json" or a JSON schema, as OpenAI's response_format (checked
     * here so that a bad schema is a 400 before anything is relayed) */
    cJSON *rf = NULL;
    const cJSON *fmt = get(req, "format");
    if (fmt && !cJSON_IsNull(fmt) && !(cJSON_IsString(fmt) && !*fmt->valuestring) &&
        kind != FC_OLLAMA_EMBED && kind != FC_OLLAMA_EMBEDDINGS) {
        if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "json")) {
            rf = cJSON_CreateObject();
            cJSON_AddStringToObject(rf, "type", "json_object");
        } else if (cJSON_IsObject(fmt)) {
            rf = cJSON_CreateObject();
            cJSON_AddStringToObject(rf, "type", "json_schema");
            cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
            cJSON_AddStringToObject(js, "name", "format");
            cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(fmt, 1));
        } else {
            rc = bad(err, "invalid format: expected \"json\" or a valid JSON schema");
            goto done;
        }
        char *grammar = NULL, why[320];
        int rc_rf = fc_response_format_grammar(rf, &grammar, why, sizeof why, NULL);
        free(grammar);
        if (rc_rf < 0) {
            cJSON_Delete(rf);
            rc = bad(err, "invalid format: %s", why);
            goto done;
        }
    }
    dst = cJSON_CreateObject();
    if (rf) cJSON_AddItemToObject(dst, "response_format", rf);
    cJSON_AddStringToObject(dst, "model", model);
    if (kind == FC_OLLAMA_EMBED || kind == FC_OLLAMA_EMBEDDINGS) {
        const cJSON *in = get(req, kind == FC_OLLAMA_EMBED ? "input" : "prompt");
        if (kind == FC_OLLAMA_EMBED && cJSON_IsArray(in)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, in) if (!cJSON_IsString(it)) {
                rc = bad(err, "invalid input type");
                goto done;
            }
            out->n_inputs = cJSON_GetArraySize(in);
            if (out->n_inputs == 0) goto done; /* answered with no embeddings */
            cJSON_AddItemToObject(dst, "input", cJSON_Duplicate(in, 1));
        } else if (cJSON_IsString(in)) {
            out->n_inputs = 1;
            cJSON_AddStringToObject(dst, "input", in->valuestring);
        } else if (!in || cJSON_IsNull(in)) {
            out->n_inputs = 0; /* Ollama answers an empty list (a load request) */
            goto done;
        } else {
            rc = bad(err, "invalid input type");
            goto done;
        }
        out->path = fc_xstrdup("/v1/embeddings");
        goto done;
    }
    bool raw = false;
    const cJSON *rw = get(req, "raw");
    if (rw && !cJSON_IsNull(rw)) {
        if (!cJSON_IsBool(rw)) {
            rc = bad(err, "json: cannot unmarshal value into Go struct field GenerateRequest.raw of type bool");
            goto done;
        }
        raw = cJSON_IsTrue(rw);
    }
    if (kind == FC_OLLAMA_GENERATE && raw) {
        const char *prompt;
        if ((rc = str_field(req, "prompt", &prompt, err))) goto done;
        if (!prompt || !*prompt) goto done; /* load request */
        cJSON_AddStringToObject(dst, "prompt", prompt);
        out->path = fc_xstrdup("/v1/completions");
    } else {
        cJSON *msgs = cJSON_AddArrayToObject(dst, "messages");
        if (kind == FC_OLLAMA_GENERATE) {
            const char *prompt, *system;
            if ((rc = str_field(req, "prompt", &prompt, err))) goto done;
            if ((rc = str_field(req, "system", &system, err))) goto done;
            if ((rc = str_field(req, "suffix", &s, err))) goto done;
            if (s && *s) {
                rc = bad(err, "model does not support insert");
                goto done;
            }
            const cJSON *imgs = get(req, "images");
            if (cJSON_IsArray(imgs) && cJSON_GetArraySize(imgs) > 0) {
                rc = bad(err, "model does not support images");
                goto done;
            }
            if (!prompt || !*prompt) goto done; /* load request */
            if (system && *system) {
                cJSON *m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "role", "system");
                cJSON_AddStringToObject(m, "content", system);
                cJSON_AddItemToArray(msgs, m);
            }
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", prompt);
            cJSON_AddItemToArray(msgs, m);
        } else {
            const cJSON *in = get(req, "messages");
            if (in && !cJSON_IsNull(in) && !cJSON_IsArray(in)) {
                rc = bad(err, "json: cannot unmarshal value into Go struct field ChatRequest.messages of type []api.Message");
                goto done;
            }
            const cJSON *it;
            cJSON_ArrayForEach(it, in) {
                const char *role, *content;
                if (!cJSON_IsObject(it)) {
                    rc = bad(err, "json: cannot unmarshal value into Go struct field ChatRequest.messages of type api.Message");
                    goto done;
                }
                if ((rc = str_field(it, "role", &role, err)) || (rc = str_field(it, "content", &content, err))) goto done;
                if (!role || !*role) {
                    rc = bad(err, "invalid message: role is required");
                    goto done;
                }
                if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
                    rc = bad(err, "invalid role: %s", role);
                    goto done;
                }
                const cJSON *imgs = get(it, "images");
                if (cJSON_IsArray(imgs) && cJSON_GetArraySize(imgs) > 0) {
                    rc = bad(err, "model does not support images");
                    goto done;
                }
                cJSON *m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "role", role);
                cJSON_AddStringToObject(m, "content", content ? content : "");
                cJSON_AddItemToArray(msgs, m);
            }
            if (cJSON_GetArraySize(msgs) == 0) goto done; /* load request */
        }
        out->path = fc_xstrdup("/api/v1/chat/completions");
    }
    if ((rc = add_options(req, dst, !raw, err))) goto done;
    cJSON_AddBoolToObject(dst, "stream", true);
    cJSON *so = cJSON_AddObjectToObject(dst, "stream_options");
    cJSON_AddBoolToObject(so, "include_usage", true);
done:
    if (rc == 0 && out->path) out->body = cJSON_PrintUnformatted(dst);
    if (rc == 0 && !out->path) free(out->body), out->body = NULL;
    cJSON_Delete(dst);
    cJSON_Delete(req);
    if (rc) {
        fc_ollama_req_free(out);
        if (!*err) *err = fc_xstrdup("invalid request");
    }
    return rc == 0 ? 200 : rc;
}

/* ---- loopback calls to the OpenAI routes ---- */

static char *url_of(const fc_ollama *o, const char *path) { return fc_loopback_url(o->api, o->host, path); }

/* "Authorization: ..." passed on, as a NULL-terminated header list */
typedef struct fwd_headers {
    char *auth;
    const char *list[2];
} fwd_headers;

static void fwd_init(fwd_headers *h, const fc_http_request *req)
{
    const char *a = fc_http_header(req, "Authorization");
    h->auth = a ? xfmt("Authorization: %s", a) : NULL;
    h->list[0] = h->auth;
    h->list[1] = NULL;
}

/* The OpenAI server's error body {"message","code"} as Ollama's error and
 * status. */
static void reply_upstream_error(fc_http_reply *r, int status, const char *body, const char *model)
{
    cJSON *o = body ? cJSON_Parse(body) : NULL;
    const cJSON *msg = get(o, "message"), *code = get(o, "code");
    if (!cJSON_IsString(msg)) {
        const cJSON *eo = get(o, "error");
        msg = cJSON_IsString(eo) ? eo : get(eo, "message");
    }
    if (!cJSON_IsString(msg)) msg = get(o, "detail");
    if (status == 401) {
        reply_error(r, 401, "unauthorized");
    } else if (cJSON_IsNumber(code) && code->valueint == FC_EC_INVALID_MODEL) {
        char *m = xfmt("model \"%s\" not found, try pulling it first", model ? model : "");
        reply_error(r, 404, m);
        free(m);
    } else {
        int st = status >= 400 && status < 600 ? status : 500;
        reply_error(r, st, cJSON_IsString(msg) ? msg->valuestring : "upstream error");
    }
    cJSON_Delete(o);
}

typedef struct relay {
    fc_ollama *o;
    const fc_http_request *hr;
    fc_http_reply *reply;
    enum fc_ollama_kind kind;
    const char *model;
    bool want_stream;
    fc_http_stream *st;        /* the client's NDJSON stream, once opened */
    fc_loopback lb;            /* the call to the OpenAI route (client_gone, raw body) */
    fc_str text;               /* all text (non-streamed answer) */
    char *error;               /* an error event */
    char done_reason[16];
    long prompt_tokens, completion_tokens;
    double t0, t_first, t_last;
    int n_chunks;
} relay;

static void relay_open(relay *r)
{
    if (!r->st) r->st = fc_http_reply_stream(r->reply, 200, "application/x-ndjson");
}

static void relay_line(relay *r, cJSON *o)
{
    relay_open(r);
    char *s = cJSON_PrintUnformatted(o);
    fc_str line;
    fc_str_init(&line, 0);
    fc_str_puts(&line, s);
    fc_str_putc(&line, '\n');
    if (!fc_http_stream_write(r->st, fc_str_cstr(&line), fc_str_len(&line))) r->lb.client_gone = true;
    fc_str_free(&line);
    free(s);
}

static cJSON *head(const relay *r)
{
    char ts[40];
    rfc3339_now(ts);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "created_at", ts);
    return o;
}

static void put_text(const relay *r, cJSON *o, const char *text)
{
    if (r->kind == FC_OLLAMA_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(o, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(o, "response", text);
    }
}

static bool relay_event(const fc_sse_event *ev, void *user)
{
    relay *r = user;
    if (!strcmp(ev->data, "[DONE]")) return true;
    cJSON *c = cJSON_Parse(ev->data);
    if (!c) return true;
    const cJSON *err = get(c, "error");
    if (err && !cJSON_IsNull(err)) {
        const cJSON *m = cJSON_IsString(err) ? err : get(err, "message");
        if (!cJSON_IsString(m)) m = get(c, "text");
        free(r->error);
        r->error = fc_xstrdup(cJSON_IsString(m) ? m->valuestring : "generation failed");
        cJSON_Delete(c);
        return true;
    }
    const cJSON *u = get(c, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *pt = get(u, "prompt_tokens"), *ct = get(u, "completion_tokens");
        if (cJSON_IsNumber(pt)) r->prompt_tokens = fc_json_long(pt->valuedouble);
        if (cJSON_IsNumber(ct)) r->completion_tokens = fc_json_long(ct->valuedouble);
    }
    const cJSON *ch = cJSON_GetArrayItem(get(c, "choices"), 0);
    if (ch) {
        const cJSON *t = r->kind == FC_OLLAMA_CHAT || !get(ch, "text") ? get(get(ch, "delta"), "content")
                                                                        : get(ch, "text");
        const cJSON *fr = get(ch, "finish_reason");
        if (cJSON_IsString(fr)) snprintf(r->done_reason, sizeof r->done_reason, "%s", fr->valuestring);
        if (cJSON_IsString(t) && *t->valuestring) {
            double now = now_s();
            if (!r->n_chunks) r->t_first = now;
            r->t_last = now;
            r->n_chunks++;
            if (r->want_stream) {
                cJSON *o = head(r);
                put_text(r, o, t->valuestring);
                cJSON_AddBoolToObject(o, "done", false);
                relay_line(r, o);
                cJSON_Delete(o);
            } else {
                fc_str_puts(&r->text, t->valuestring);
            }
        }
    }
    cJSON_Delete(c);
    return !r->lb.client_gone;
}

static void relay_finish(relay *r)
{
    double t_end = now_s();
    long long total = (long long)((t_end - r->t0) * 1e9);
    long long pe = r->n_chunks ? (long long)((r->t_first - r->t0) * 1e9) : total;
    cJSON *o = head(r);
    put_text(r, o, r->want_stream ? "" : fc_str_cstr(&r->text));
    cJSON_AddBoolToObject(o, "done", true);
    cJSON_AddStringToObject(o, "done_reason", *r->done_reason ? r->done_reason : "stop");
    cJSON_AddNumberToObject(o, "total_duration", (double)total);
    cJSON_AddNumberToObject(o, "load_duration", 0);
    cJSON_AddNumberToObject(o, "prompt_eval_count", (double)r->prompt_tokens);
    cJSON_AddNumberToObject(o, "prompt_eval_duration", (double)pe);
    cJSON_AddNumberToObject(o, "eval_count", (double)r->completion_tokens);
    cJSON_AddNumberToObject(o, "eval_duration", (double)(total - pe));
    if (r->want_stream) {
        relay_line(r, o);
        cJSON_Delete(o);
    } else {
        reply_cjson(r->reply, 200, o);
    }
}

/* Answers a "load" request (no prompt / no messages), as Ollama does. */
static void reply_load(fc_http_reply *reply, enum fc_ollama_kind kind, const char *model)
{
    relay r = {.kind = kind, .model = model};
    cJSON *o = head(&r);
    put_text(&r, o, "");
    cJSON_AddBoolToObject(o, "done", true);
    cJSON_AddStringToObject(o, "done_reason", "load");
    reply_cjson(reply, 200, o);
}

/* Is `model` one the controller lists? -1 when the controller fails. */
static int model_known(fc_ollama *o, const char *model, cJSON **models_out)
{
    fc_http_response res = {0};
    char *u = xfmt("%s/list_models", o->ctl);
    bool ok = fc_http_post_json(u, "{}", 2, 10, NULL, &res);
    free(u);
    int known = -1;
    if (ok && res.status == 200) {
        cJSON *j = cJSON_Parse(res.body);
        const cJSON *ms = get(j, "models"), *it;
        known = 0;
        cJSON_ArrayForEach(it, ms) if (cJSON_IsString(it) && model && !strcmp(it->valuestring, model)) known = 1;
        if (models_out) *models_out = cJSON_Duplicate(ms, 1);
        cJSON_Delete(j);
    }
    fc_http_response_free(&res);
    return known;
}

static void do_generation(fc_ollama *o, const fc_http_request *req, fc_http_reply *reply, enum fc_ollama_kind kind)
{
    if (!auth(o, req, reply)) return;
    fc_ollama_req q;
    char *err = NULL;
    int st = fc_ollama_translate(kind, req->body, req->body_len, &q, &err);
    if (st != 200) {
        reply_error(reply, st, err);
        free(err);
        return;
    }
    if (!q.body) {
        int k = model_known(o, q.model, NULL);
        if (k == 0) {
            char *m = xfmt("model \"%s\" not found, try pulling it first", q.model);
            reply_error(reply, 404, m);
            free(m);
        } else {
            reply_load(reply, kind, q.model);
        }
        fc_ollama_req_free(&q);
        return;
    }
    relay r = {.o = o, .hr = req, .reply = reply, .kind = kind, .model = q.model, .want_stream = q.stream != 0};
    fc_str_init(&r.text, 0);
    r.t0 = now_s();
    bool ok = fc_loopback_post(&r.lb, o->api, o->host, req, q.path, q.body, relay_event, &r);
    const fc_http_response *res = &r.lb.res;
    if (r.lb.client_gone) {
        if (!r.st) reply_error(reply, 499, "client gone");
    } else if (!ok && !r.st) {
        reply_error(reply, 500, res->error[0] ? res->error : "upstream failed");
    } else if (res->status != 200 && !r.st) {
        fc_str_putc(&r.lb.raw, '\0');
        reply_upstream_error(reply, res->status, fc_str_cstr(&r.lb.raw), q.model);
    } else if (r.error) {
        if (r.st) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "error", r.error);
            relay_line(&r, e);
            cJSON_Delete(e);
        } else {
            reply_error(reply, 500, r.error);
        }
    } else {
        relay_finish(&r);
        /* the model's counters and histograms were recorded by the OpenAI
         * route this was relayed to (fc_ollama_observe) */
        pthread_mutex_unlock(&o->mu);
    }
    if (r.st) fc_http_stream_close(r.st);
    fc_loopback_free(&r.lb);
    fc_str_free(&r.text);
    free(r.error);
    fc_ollama_req_free(&q);
}

static void h_chat(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    do_generation(user, req, reply, FC_OLLAMA_CHAT);
}

static void h_generate(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    do_generation(user, req, reply, FC_OLLAMA_GENERATE);
}

static void do_embed(fc_ollama *o, const fc_http_request *req, fc_http_reply *reply, enum fc_ollama_kind kind)
{
    if (!auth(o, req, reply)) return;
    fc_ollama_req q;
    char *err = NULL;
    int st = fc_ollama_translate(kind, req->body, req->body_len, &q, &err);
    if (st != 200) {
        reply_error(reply, st, err);
        free(err);
        return;
    }
    double t0 = now_s();
    if (!q.body) {
        int k = model_known(o, q.model, NULL);
        if (k == 0) {
            char *m = xfmt("model \"%s\" not found, try pulling it first", q.model);
            reply_error(reply, 404, m);
            free(m);
        } else {
            cJSON *r = cJSON_CreateObject();
            if (kind == FC_OLLAMA_EMBED) {
                cJSON_AddStringToObject(r, "model", q.model);
                cJSON_AddArrayToObject(r, "embeddings");
            } else {
                cJSON_AddArrayToObject(r, "embedding");
            }
            reply_cjson(reply, 200, r);
        }
        fc_ollama_req_free(&q);
        return;
    }
    fwd_headers h;
    fwd_init(&h, req);
    fc_http_call call = {.headers = h.list, .loopback = true};
    fc_http_response res = {0};
    char *u = url_of(o, q.path);
    bool ok = fc_http_post_json_ex(u, q.body, strlen(q.body), 0, &call, &res);
    free(u);
    if (!ok) {
        reply_error(reply, 500, res.error[0] ? res.error : "upstream failed");
    } else if (res.status != 200) {
        reply_upstream_error(reply, res.status, res.body, q.model);
    } else {
        cJSON *j = cJSON_Parse(res.body), *r = cJSON_CreateObject();
        const cJSON *data = get(j, "data"), *it;
        const cJSON *ptj = get(get(j, "usage"), "prompt_tokens");
        long pt = cJSON_IsNumber(ptj) ? fc_json_long(ptj->valuedouble) : 0;
        if (pt < 0) pt = 0;
        if (kind == FC_OLLAMA_EMBED) {
            cJSON_AddStringToObject(r, "model", q.model);
            cJSON *arr = cJSON_AddArrayToObject(r, "embeddings");
            cJSON_ArrayForEach(it, data) cJSON_AddItemToArray(arr, cJSON_Duplicate(get(it, "embedding"), 1));
            cJSON_AddNumberToObject(r, "total_duration", (double)(long long)((now_s() - t0) * 1e9));
            cJSON_AddNumberToObject(r, "load_duration", 0);
            cJSON_AddNumberToObject(r, "prompt_eval_count", (double)pt);
        } else {
            const cJSON *e0 = get(cJSON_GetArrayItem(data, 0), "embedding");
            cJSON_AddItemToObject(r, "embedding", e0 ? cJSON_Duplicate(e0, 1) : cJSON_CreateArray());
        }
        reply_cjson(reply, 200, r);
        cJSON_Delete(j);
    }
    fc_http_response_free(&res);
    free(h.auth);
    fc_ollama_req_free(&q);
}

static void h_embed(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    do_embed(user, req, reply, FC_OLLAMA_EMBED);
}

static void h_embeddings(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    do_embed(user, req, reply, FC_OLLAMA_EMBEDDINGS);
}

/* ---- model listing ---- */

static cJSON *details_of(const char *name)
{
    cJSON *d = cJSON_CreateObject();
    const char *dot = strrchr(name, '.');
    bool gguf = dot && !strcasecmp(dot, ".gguf");
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", gguf ? "gguf" : "safetensors");
    cJSON_AddStringToObject(d, "family", "");
    cJSON_AddArrayToObject(d, "families");
    cJSON_AddStringToObject(d, "parameter_size", "");
    /* the quantization as the file name says it (".Q4_1.gguf") */
    char q[16] = "";
    if (gguf) {
        const char *p = dot;
        while (p > name && p[-1] != '.' && p[-1] != '-') p--;
        if (dot - p > 0 && dot - p < (long)sizeof q && (p[0] == 'Q' || p[0] == 'q' || p[0] == 'F' || p[0] == 'B'))
            memcpy(q, p, (size_t)(dot - p)), q[dot - p] = '\0';
    }
    cJSON_AddStringToObject(d, "quantization_level", q);
    return d;
}

static cJSON *model_entry(const char *name, bool ps)
{
    char ts[40];
    rfc3339_now(ts);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", name);
    cJSON_AddStringToObject(m, "model", name);
    if (!ps) cJSON_AddStringToObject(m, "modified_at", ts);
    cJSON_AddNumberToObject(m, "size", 0);
    cJSON_AddStringToObject(m, "digest", "");
    cJSON_AddItemToObject(m, "details", details_of(name));
    if (ps) {
        cJSON_AddStringToObject(m, "expires_at", "2318-01-01T00:00:00Z");
        cJSON_AddNumberToObject(m, "size_vram", 0);
    }
    return m;
}

static void list_models(fc_ollama *o, fc_http_reply *reply, bool ps)
{
    cJSON *models = NULL;
    if (model_known(o, NULL, &models) < 0) {
        reply_error(reply, 503, "controller unavailable");
        return;
    }
    cJSON *r = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(r, "models");
    const cJSON *it;
    cJSON_ArrayForEach(it, models) if (cJSON_IsString(it)) cJSON_AddItemToArray(arr, model_entry(it->valuestring, ps));
    cJSON_Delete(models);
    reply_cjson(reply, 200, r);
}

static void h_tags(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (!auth(user, req, reply)) return;
    list_models(user, reply, false);
}

static void h_ps(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (!auth(user, req, reply)) return;
    list_models(user, reply, true);
}

static void h_show(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_ollama *o = user;
    if (!auth(o, req, reply)) return;
    fc_ollama_req q;
    char *err = NULL;
    int st = fc_ollama_translate(FC_OLLAMA_SHOW, req->body, req->body_len, &q, &err);
    if (st != 200) {
        reply_error(reply, st, err);
        free(err);
        return;
    }
    int k = model_known(o, q.model, NULL);
    if (k <= 0) {
        char *m = k < 0 ? fc_xstrdup("controller unavailable") : xfmt("model '%s' not found", q.model);
        reply_error(reply, k < 0 ? 503 : 404, m);
        free(m);
    } else {
        char ts[40];
        rfc3339_now(ts);
        cJSON *r = cJSON_CreateObject();
        char *mf = xfmt("FROM %s\n", q.model);
        cJSON_AddStringToObject(r, "modelfile", mf);
        free(mf);
        cJSON_AddStringToObject(r, "parameters", "");
        cJSON_AddStringToObject(r, "template", "");
        cJSON_AddItemToObject(r, "details", details_of(q.model));
        cJSON_AddObjectToObject(r, "model_info");
        cJSON *caps = cJSON_AddArrayToObject(r, "capabilities");
        cJSON_AddItemToArray(caps, cJSON_CreateString("completion"));
        cJSON_AddItemToArray(caps, cJSON_CreateString("embedding"));
        cJSON_AddStringToObject(r, "modified_at", ts);
        reply_cjson(reply, 200, r);
    }
    fc_ollama_req_free(&q);
}

static void h_version(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    (void)req;
    fc_http_reply_json(reply, 200, "{\"version\":\"" OLLAMA_VERSION "\"}");
}

/* ---- operations ---- */

/* /tokenize {model, prompt, add_special_tokens} and /detokenize {model,
 * tokens}: relayed to a worker of the model (/worker_tokenize,
 * /worker_detokenize); errors as the OpenAI routes give them. */
static void tok_relay(const fc_http_request *req, fc_http_reply *reply, fc_ollama *o, const char *wpath)
{
    if (!fc_openai_api_auth(o->api, req, reply)) return;
    cJSON *b = cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *m = get(b, "model");
    if (!cJSON_IsObject(b) || !cJSON_IsString(m)) {
        fc_http_reply_json(reply, 400, "{\"object\":\"error\",\"message\":\"a JSON object with a string 'model' is required\","
                                       "\"code\":40001}");
        cJSON_Delete(b);
        return;
    }
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "model", m->valuestring);
    char *qs = cJSON_PrintUnformatted(q), *u = xfmt("%s/get_worker_address", o->ctl);
    fc_http_response res = {0};
    char *addr = NULL;
    if (fc_http_post_json(u, qs, strlen(qs), 10, NULL, &res) && res.status == 200) {
        cJSON *j = cJSON_Parse(res.body);
        const cJSON *a = get(j, "address");
        if (cJSON_IsString(a) && *a->valuestring) addr = fc_xstrdup(a->valuestring);
        cJSON_Delete(j);
    }
    fc_http_response_free(&res);
    free(u);
    free(qs);
    cJSON_Delete(q);
    if (!addr) {
        cJSON *e = cJSON_CreateObject();
        char *msg = xfmt("Only %s allowed now, your model %s", "served models are", m->valuestring);
        cJSON_AddStringToObject(e, "object", "error");
        cJSON_AddStringToObject(e, "message", msg);
        cJSON_AddNumberToObject(e, "code", FC_EC_INVALID_MODEL);
        free(msg);
        reply_cjson(reply, 400, e);
    } else {
        char *wu = xfmt("%s%s", addr, wpath);
        fc_http_response wr = {0};
        if (fc_http_post_json(wu, req->body, req->body_len, 30, NULL, &wr) && wr.status) {
            cJSON *j = cJSON_Parse(wr.body);
            const cJSON *ec = get(j, "error_code");
            int st = wr.status != 200 ? wr.status : cJSON_IsNumber(ec) && ec->valueint ? 400 : 200;
            if (j && st != 200) {
                /* the worker's {"detail"|"text"} as the OpenAI routes' error */
                const cJSON *msg = get(j, "text");
                if (!cJSON_IsString(msg)) msg = get(j, "detail");
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "object", "error");
                cJSON_AddStringToObject(e, "message", cJSON_IsString(msg) ? msg->valuestring : "bad request");
                cJSON_AddNumberToObject(e, "code", FC_EC_VALIDATION_TYPE_ERROR);
                cJSON_Delete(j);
                j = e;
            }
            if (j) cJSON_DeleteItemFromObjectCaseSensitive(j, "error_code");
            if (j) reply_cjson(reply, st, j);
            else fc_http_reply_json(reply, 502, "{\"object\":\"error\",\"message\":\"bad worker answer\",\"code\":50001}");
        } else {
            fc_http_reply_json(reply, 503, "{\"object\":\"error\",\"message\":\"the worker did not answer\",\"code\":50001}");
        }
        fc_http_response_free(&wr);
        free(wu);
        free(addr);
    }
    cJSON_Delete(b);
}

static void h_tokenize(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    tok_relay(req, reply, user, "/worker_tokenize");
}

static void h_detokenize(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    tok_relay(req, reply, user, "/worker_detokenize");
}

static void h_health(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    (void)req;
    fc_ollama *o = user;
    cJSON *models = NULL;
    int k = model_known(o, NULL, &models);
    int n = k < 0 ? 0 : cJSON_GetArraySize(models);
    cJSON_Delete(models);
    if (n > 0) fc_http_reply_json(reply, 200, "{\"status\":\"ok\"}");
    else fc_http_reply_json(reply, 503, k < 0 ? "{\"status\":\"controller unavailable\"}" : "{\"status\":\"no model served\"}");
}

/* Prometheus label value: \\, \" and \n escaped */
static void put_label(fc_str *s, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') fc_str_putc(s, '\\'), fc_str_putc(s, *v);
        else if (*v == '\n') fc_str_puts(s, "\\n");
        else fc_str_putc(s, *v);
    }
}

static void put_hist(fc_str *s, const char *name, const char *model, const hist *h)
{
    unsigned long long cum = 0;
    for (int i = 0; i <= N_BUCKETS; i++) {
        cum += h->n[i];
        fc_str_printf(s, "%s_bucket{model=\"", name);
        put_label(s, model);
        if (i < N_BUCKETS) fc_str_printf(s, "\",le=\"%g\"} %llu\n", BUCKETS[i], cum);
        else fc_str_printf(s, "\",le=\"+Inf\"} %llu\n", cum);
    }
    fc_str_printf(s, "%s_sum{model=\"", name);
    put_label(s, model);
    fc_str_printf(s, "\"} %.9g\n%s_count{model=\"", h->sum, name);
    put_label(s, model);
    fc_str_printf(s, "\"} %llu\n", h->count);
}

/* POST url with body; the parsed JSON answer of a 200, else NULL */
static cJSON *post_get(const char *url, const char *body, double timeout_s)
{
    fc_http_response res = {0};
    cJSON *j = NULL;
    if (fc_http_post_json(url, body, strlen(body), timeout_s, NULL, &res) && res.status == 200) j = cJSON_Parse(res.body);
    fc_http_response_free(&res);
    return j;
}

/* The per-model gauges read from the workers: the controller's models, the
 * worker it dispatches each to (/get_worker_address), and that worker's
 * /worker_get_engine_stats (ours: queue_length and kv_cache entries). A
 * worker that is not ours (a FastChat worker) has no such route: no gauges. */
static void put_worker_gauges(fc_ollama *o, fc_str *s)
{
    char *u = xfmt("%s/list_models", o->ctl);
    cJSON *lm = post_get(u, "{}", 5);
    free(u);
    const cJSON *ms = get(lm, "models"), *m;
    cJSON *seen = cJSON_CreateArray(); /* worker addresses already asked */
    fc_str q, kv;
    fc_str_init(&q, 0);
    fc_str_init(&kv, 0);
    int n_workers = 0;
    cJSON_ArrayForEach(m, ms) {
        if (!cJSON_IsString(m) || n_workers >= MAX_MODELS) continue;
        cJSON *qo = cJSON_CreateObject();
        cJSON_AddStringToObject(qo, "model", m->valuestring);
        char *qs = cJSON_PrintUnformatted(qo);
        cJSON_Delete(qo);
        u = xfmt("%s/get_worker_address", o->ctl);
        cJSON *wa = post_get(u, qs, 5);
        free(u);
        free(qs);
        const cJSON *addr = get(wa, "address"), *it;
        bool dup = !cJSON_IsString(addr) || !*addr->valuestring;
        cJSON_ArrayForEach(it, seen) if (!dup && !strcmp(it->valuestring, addr->valuestring)) dup = true;
        if (!dup) {
            cJSON_AddItemToArray(seen, cJSON_CreateString(addr->valuestring));
            n_workers++;
            u = xfmt("%s/worker_get_engine_stats", addr->valuestring);
            cJSON *st = post_get(u, "{}", 5);
            free(u);
            const cJSON *ql = get(st, "queue_length"), *names = get(st, "model_names"), *n, *e;
            if (cJSON_IsNumber(ql))
                cJSON_ArrayForEach(n, names) if (cJSON_IsString(n)) {
                    fc_str_puts(&q, "fastchat_model_queue_length{model=\"");
                    put_label(&q, n->valuestring);
                    fc_str_printf(&q, "\"} %ld\n", fc_json_long(ql->valuedouble));
                }
            cJSON_ArrayForEach(e, get(st, "kv_cache")) {
                const cJSON *mn = get(e, "model"), *bu = get(e, "blocks_used"), *bt = get(e, "blocks_total"),
                            *ru = get(e, "running"), *wt = get(e, "waiting");
                if (!cJSON_IsString(mn) || !cJSON_IsNumber(bu) || !cJSON_IsNumber(bt)) continue;
                static const char *const names4[4] = {"fastchat_kv_cache_blocks_used", "fastchat_kv_cache_blocks_total",
                                                      "fastchat_model_requests_running", "fastchat_model_requests_waiting"};
                const cJSON *vals[4] = {bu, bt, ru, wt};
                for (int k = 0; k < 4; k++) {
                    if (!cJSON_IsNumber(vals[k])) continue;
                    fc_str_printf(&kv, "%s{model=\"", names4[k]);
                    put_label(&kv, mn->valuestring);
                    fc_str_printf(&kv, "\"} %ld\n", fc_json_long(vals[k]->valuedouble));
                }
                fc_str_puts(&kv, "fastchat_kv_cache_usage_ratio{model=\"");
                put_label(&kv, mn->valuestring);
                fc_str_printf(&kv, "\"} %.6g\n", bt->valuedouble > 0 ? bu->valuedouble / bt->valuedouble : 0.0);
            }
            cJSON_Delete(st);
        }
        cJSON_Delete(wa);
    }
    fc_str_puts(s, "# HELP fastchat_model_queue_length Requests queued or running on the worker serving the model.\n"
                   "# TYPE fastchat_model_queue_length gauge\n");
    fc_str_puts(s, fc_str_cstr(&q));
    /* one TYPE line per family: the samples are grouped by metric */
    static const char *const fam[5][2] = {
        {"fastchat_kv_cache_blocks_used", "KV cache blocks in use (running and cached sequences)."},
        {"fastchat_kv_cache_blocks_total", "KV cache blocks of the model's engine."},
        {"fastchat_kv_cache_usage_ratio", "KV cache blocks in use over all blocks."},
        {"fastchat_model_requests_running", "Sequences the engine is decoding now."},
        {"fastchat_model_requests_waiting", "Sequences waiting for the engine to admit them."}};
    const char *all = fc_str_cstr(&kv);
    for (int k = 0; k < 5; k++) {
        fc_str_printf(s, "# HELP %s %s\n# TYPE %s gauge\n", fam[k][0], fam[k][1], fam[k][0]);
        size_t nl = strlen(fam[k][0]);
        for (const char *line = all; *line;) {
            const char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line + 1) : strlen(line);
            if (!strncmp(line, fam[k][0], nl) && line[nl] == '{') fc_str_putn(s, line, len);
            line += len;
        }
    }
    fc_str_free(&q);
    fc_str_free(&kv);
    cJSON_Delete(seen);
    cJSON_Delete(lm);
}

static void h_metrics(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    (void)req;
    fc_ollama *o = user; /* this scrape counts itself */
    /* the controller's sum over its workers (FastChat's /worker_get_status) */
    long queue = -1;
    fc_http_response res = {0};
    char *u = xfmt("%s/worker_get_status", o->ctl);
    if (fc_http_post_json(u, "{}", 2, 5, NULL, &res) && res.status == 200) {
        cJSON *j = cJSON_Parse(res.body);
        const cJSON *q = get(j, "queue_length");
        if (cJSON_IsNumber(q)) queue = fc_json_long(q->valuedouble);
        cJSON_Delete(j);
    }
    free(u);
    fc_http_response_free(&res);
    fc_str s;
    fc_str_init(&s, 0);
    put_worker_gauges(o, &s);
    if (queue >= 0)
        fc_str_printf(&s, "# HELP fastchat_queue_length Requests queued or running on the workers (controller's sum).\n"
                          "# TYPE fastchat_queue_length gauge\nfastchat_queue_length %ld\n", queue);
    pthread_mutex_lock(&o->mu);
    fc_str_puts(&s, "# HELP fastchat_requests_total HTTP requests answered, by route (as registered) and status.\n"
                    "# TYPE fastchat_requests_total counter\n");
    for (int i = 0; i < o->n_routes; i++) {
        fc_str_puts(&s, "fastchat_requests_total{route=\"");
        put_label(&s, o->routes[i].route);
        fc_str_printf(&s, "\",status=\"%d\"} %llu\n", o->routes[i].status, o->routes[i].n);
    }
    fc_str_printf(&s, "# HELP fastchat_requests_in_flight Generation and embedding requests running now.\n"
                      "# TYPE fastchat_requests_in_flight gauge\nfastchat_requests_in_flight %ld\n",
                  o->in_flight);
    static const char *const tok_help[2] = {"fastchat_prompt_tokens_total", "fastchat_completion_tokens_total"};
    for (int k = 0; k < 2; k++) {
        fc_str_printf(&s, "# HELP %s %s tokens, by model.\n# TYPE %s counter\n", tok_help[k],
                      k ? "Generated" : "Prompt", tok_help[k]);
        for (int i = 0; i < o->n_models; i++) {
            fc_str_printf(&s, "%s{model=\"", tok_help[k]);
            put_label(&s, o->models[i].name);
            fc_str_printf(&s, "\"} %llu\n", k ? o->models[i].completion_tokens : o->models[i].prompt_tokens);
        }
    }
    fc_str_puts(&s, "# HELP fastchat_model_requests_total Successful generation and embedding requests, by model.\n"
                    "# TYPE fastchat_model_requests_total counter\n");
    for (int i = 0; i < o->n_models; i++) {
        fc_str_puts(&s, "fastchat_model_requests_total{model=\"");
        put_label(&s, o->models[i].name);
        fc_str_printf(&s, "\"} %llu\n", o->models[i].requests);
    }
    fc_str_puts(&s, "# HELP fastchat_time_to_first_token_seconds Time from request to first generated text.\n"
                    "# TYPE fastchat_time_to_first_token_seconds histogram\n");
    for (int i = 0; i < o->n_models; i++)
        put_hist(&s, "fastchat_time_to_first_token_seconds", o->models[i].name, &o->models[i].ttft);
    fc_str_puts(&s, "# HELP fastchat_inter_token_latency_seconds Time per generated token after the first (mean of its request).\n"
                    "# TYPE fastchat_inter_token_latency_seconds histogram\n");
    for (int i = 0; i < o->n_models; i++)
        put_hist(&s, "fastchat_inter_token_latency_seconds", o->models[i].name, &o->models[i].itl);
    pthread_mutex_unlock(&o->mu);
    fc_http_reply_body(reply, 200, "text/plain; version=0.0.4; charset=utf-8", fc_str_cstr(&s), fc_str_len(&s));
    fc_str_free(&s);
}

/* ---- setup ---- */

fc_ollama *fc_ollama_mount(fc_http_server *s, const fc_openai_api *api, const char *host, const char *ctl)
{
    fc_ollama *o = fc_xcalloc(1, sizeof *o);
    o->api = api;
    if (!host || !*host || !strcmp(host, "0.0.0.0")) o->host = fc_xstrdup("127.0.0.1");
    else if (!strcmp(host, "::")) o->host = fc_xstrdup("[::1]");
    else if (strchr(host, ':')) o->host = xfmt("[%s]", host);
    else o->host = fc_xstrdup(host);
    o->ctl = fc_xstrdup(ctl);
    pthread_mutex_init(&o->mu, NULL);
    fc_http_server_on_answer(s, on_answer, o);
    fc_http_server_route(s, "POST", "/api/chat", h_chat, o);
    fc_http_server_route(s, "POST", "/api/generate", h_generate, o);
    fc_http_server_route(s, "POST", "/api/embed", h_embed, o);
    fc_http_server_route(s, "POST", "/api/embeddings", h_embeddings, o);
    fc_http_server_route(s, "POST", "/api/show", h_show, o);
    fc_http_server_route(s, "GET", "/api/tags", h_tags, o);
    fc_http_server_route(s, "GET", "/api/ps", h_ps, o);
    fc_http_server_route(s, "GET", "/api/version", h_version, o);
    fc_http_server_route(s, "GET", "/health", h_health, o);
    fc_http_server_route(s, "GET", "/metrics", h_metrics, o);
    fc_http_server_route(s, "POST", "/tokenize", h_tokenize, o);
    fc_http_server_route(s, "POST", "/detokenize", h_detokenize, o);
    return o;
}

void fc_ollama_free(fc_ollama *o)
{
    if (!o) return;
    for (int i = 0; i < o->n_routes; i++) free(o->routes[i].route);
    free(o->routes);
    for (int i = 0; i < o->n_models; i++) free(o->models[i].name);
    pthread_mutex_destroy(&o->mu);
    free(o->host);
    free(o->ctl);
    free(o);
}
