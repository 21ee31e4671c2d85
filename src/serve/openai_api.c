/*
 * openai_api.c: FastChat's OpenAI-compatible API server (openai_api_server.py)
 * in C. What it serves, and where it differs from FastChat, is in
 * openai_api.h. This file never computes: it validates, asks the controller
 * for a worker, renders the prompt with the worker's template, and relays the
 * worker's answer (NUL-delimited JSON holding the cumulative text) to the
 * client as OpenAI JSON or Server-Sent Events.
 *
 * Layout: helpers, errors, upstream calls (controller, worker), request
 * parsing and validation, worker parameters, non-streamed generation,
 * streamed generation (relayed by the handler's thread), the handlers, and
 * the server's lifetime.
 */
#include "serve/openai_api.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "base/fc_base.h"
#include "base/json.h"
#include "chat/conv.h"
#include "net/http.h"
#include "net/nulstream.h"
#include "serve/ollama.h"
#include "serve/reqguard.h"
#include "serve/responses.h"
#include "serve/response_format.h"
#include "serve/tool_calls.h"
#include "chat/chat_template.h"

/* FastChat's constants.py ErrorCode and messages */
#define ERR_VALIDATION_TYPE_ERROR 40001
#define ERR_INVALID_MODEL 40301
#define ERR_PARAM_OUT_OF_RANGE 40302
#define ERR_CONTEXT_OVERFLOW 40303
#define ERR_INTERNAL_ERROR 50001
#define ERR_CONTROLLER_NO_WORKER 50005
#define SERVER_ERROR_MSG "**NETWORK ERROR DUE TO HIGH TRAFFIC. PLEASE REGENERATE OR REFRESH THIS PAGE.**"

#define MAX_N 128            /* OpenAI's bound on n */
#define MAX_LOGPROBS 20      /* the engine's bound on alternatives per token */
#define MAX_STOP 32          /* stop sequences per request (OpenAI: 4; the worker: 64) */
#define GENERATE_TIMEOUT_S 10800.0 /* FastChat's fetch_remote: aiohttp total 3 h */
#define NO_MAX_TOKENS (1024 * 1024) /* check_length: max_tokens None */
#define MAX_TASKS_AT_ONCE 32 /* non-streamed choices in flight per request */
#define CHECK_N_CTX 8192     /* fc_openai_api_check_request: the context assumed */
#define MAX_CHOICES 8192     /* completions: prompts x n per request */
#define MAX_EMBED_INPUTS 2048 /* embeddings: inputs per request (OpenAI's bound) */
#define MAX_EMBED_TOKENS 65536 /* embeddings: tokens per request (the worker's bound per call too) */
#define STALL_PROBE_S 10.0   /* a worker silent this long is asked /worker_get_status ... */
#define PROBE_TIMEOUT_S 5.0  /* ... and taken for dead when it does not answer in this time */

struct fc_openai_api {
    fc_http_server *http;
    char *ctl;                 /* controller address, no trailing '/' */
    char **keys;               /* API keys (n_keys) */
    int n_keys;
    double worker_timeout_s;   /* FASTCHAT_WORKER_API_TIMEOUT */
    int embed_batch;           /* FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE */

    pthread_mutex_t mu;
    /* conversation templates by "address\nmodel" (conv_template_map) */
    char **conv_keys;
    fc_conv **convs;
    int n_convs, cap_convs;
    /* streaming relays still running */
    pthread_cond_t cv;
    int n_jobs;
    atomic_bool stopping;      /* fc_openai_api_free has begun */
    fc_ollama *ollama;         /* Ollama API, /health, /metrics (serve/ollama.h) */
    fc_responses *responses;   /* /v1/responses (serve/responses.h) */
};

/* ---- helpers ---- */

static double env_num(const char *name, double dflt)
{
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    double v = strtod(s, &end);
    return (end != s && v > 0) ? v : dflt;
}

/* shortuuid.random(): 22 characters of its 57-letter alphabet. */
static void short_uuid(char *out /* >= 23 bytes */)
{
    static const char alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    unsigned char r[22];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out ^ (uint64_t)(fc_time_sec() * 1e9);
        for (int i = 0; i < 22; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            r[i] = (unsigned char)(x >> 56);
        }
    }
    for (int i = 0; i < 22; i++) out[i] = alphabet[r[i] % 57];
    out[22] = '\0';
}

/* Removes every U+FFFD (EF BF BD), as FastChat's .replace("\ufffd", ""). */
static void strip_fffd(const char *s, size_t n, fc_str *out)
{
    fc_str_truncate(out, 0);
    fc_str_putn(out, "", 0);
    size_t i = 0, start = 0;
    while (i + 2 < n) {
        if ((unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBF && (unsigned char)s[i + 2] == 0xBD) {
            fc_str_putn(out, s + start, i - start);
            i += 3;
            start = i;
        } else {
            i++;
        }
    }
    fc_str_putn(out, s + start, n - start);
}

static cJSON *json_get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static char *json_print(const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    FC_ASSERT(s);
    return s;
}

static void add_int(cJSON *o, const char *k, double v) { cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v)); }

/* ---- errors ---- */

typedef struct api_err {
    int http;         /* 0: no error */
    int code;         /* FastChat ErrorCode */
    const char *param;
    char *msg;
} api_err;

static void err_set(api_err *e, int http, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void err_set(api_err *e, int http, int code, const char *param, const char *fmt, ...)
{
    if (e->http) return; /* the first error wins */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    e->msg = fc_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(e->msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    e->http = http;
    e->code = code;
    e->param = param;
}

static void err_free(api_err *e)
{
    free(e->msg);
    memset(e, 0, sizeof *e);
}

static const char *err_type(int code)
{
    if (code == ERR_CONTEXT_OVERFLOW || code == ERR_PARAM_OUT_OF_RANGE || code == ERR_VALIDATION_TYPE_ERROR ||
        code == ERR_INVALID_MODEL)
        return "invalid_request_error";
    return code >= 50000 ? "server_error" : "invalid_request_error";
}

/* FastChat's ErrorResponse {"object":"error","message","code"} plus an
 * OpenAI error object, which the official clients read. */
static cJSON *error_body(const char *msg, int code, const char *param)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "error");
    cJSON_AddStringToObject(o, "message", msg);
    add_int(o, "code", code);
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", err_type(code));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    add_int(e, "code", code);
    return o;
}

static void reply_err(fc_http_reply *r, const api_err *e)
{
    cJSON *o = error_body(e->msg ? e->msg : "", e->code, e->param);
    char *s = json_print(o);
    fc_http_reply_json(r, e->http, s);
    free(s);
    cJSON_Delete(o);
}

static void reply_obj(fc_http_reply *r, cJSON *o)
{
    char *s = json_print(o);
    fc_http_reply_json(r, 200, s);
    free(s);
    cJSON_Delete(o);
}

/* check_api_key: "Authorization: Bearer <key>" with a listed key. */
static bool auth_ok(const fc_openai_api *a, const fc_http_request *req, fc_http_reply *reply)
{
    if (a->n_keys == 0) return true;
    const char *h = fc_http_header(req, "Authorization");
    if (h) {
        while (*h == ' ') h++;
        if (!strncasecmp(h, "bearer", 6) && (h[6] == ' ' || h[6] == '\t')) {
            const char *k = h + 6;
            while (*k == ' ' || *k == '\t') k++;
            size_t n = strlen(k);
            while (n && (k[n - 1] == ' ' || k[n - 1] == '\t')) n--;
            for (int i = 0; i < a->n_keys; i++)
                if (strlen(a->keys[i]) == n && !memcmp(a->keys[i], k, n)) return true;
        }
    }
    if (reply)
        fc_http_reply_json(reply, 401,
                       "{\"detail\":{\"error\":{\"message\":\"\",\"type\":\"invalid_request_error\",\"param\":null,"
                       "\"code\":\"invalid_api_key\"}}}");
    return false;
}

bool fc_openai_api_auth(const fc_openai_api *a, const fc_http_request *req, fc_http_reply *reply)
{
    return auth_ok(a, req, reply);
}

/* ---- upstream calls ---- */

enum up_status { UP_OK = 0, UP_DOWN = -1 /* no response at all */, UP_HTTP = -2, UP_BAD = -3 };

/* POSTs json to base+path and parses the JSON answer into *out (caller
 * frees). On failure *why (malloc'd) says what happened. */
static enum up_status up_post_call(const char *base, const char *path, const char *json, double timeout_s,
                                   const fc_http_call *call, cJSON **out, char **why)
{
    char *url = fc_xasprintf("%s%s", base, path);
    fc_http_response r = {0};
    enum up_status st = UP_OK;
    *out = NULL;
    if (!fc_http_post_json_ex(url, json, strlen(json), timeout_s, call, &r) || r.status == 0) {
        st = UP_DOWN;
        *why = fc_xasprintf("%s: %s", url, r.error[0] ? r.error : "no response");
    } else if (r.status != 200) {
        st = UP_HTTP; /* FastChat's fetch_remote reports the reason phrase */
        *why = r.status == 404 ? fc_xstrdup("Not Found")
               : r.status == 500 ? fc_xstrdup("Internal Server Error")
                                 : fc_xasprintf("HTTP %d", r.status);
        /* our worker's 400s say why in "detail" (an embedding-only model asked to chat) */
        cJSON *eb = r.status == 400 ? cJSON_ParseWithLength(r.body ? r.body : "", r.len) : NULL;
        const cJSON *det = cJSON_GetObjectItemCaseSensitive(eb, "detail");
        if (cJSON_IsString(det)) {
            free(*why);
            *why = fc_xstrdup(det->valuestring);
        }
        cJSON_Delete(eb);
    } else {
        *out = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        if (!*out) {
            st = UP_BAD;
            *why = fc_xasprintf("%s: malformed JSON answer", url);
        }
    }
    fc_http_response_free(&r);
    free(url);
    return st;
}

static enum up_status up_post(const char *base, const char *path, const char *json, double timeout_s, cJSON **out,
                              char **why)
{
    return up_post_call(base, path, json, timeout_s, NULL, out, why);
}

/* The controller's model list (a cJSON array the caller frees). */
static cJSON *ctl_list_models(fc_openai_api *a, api_err *e)
{
    cJSON *o = NULL;
    char *why = NULL;
    if (up_post(a->ctl, "/list_models", "{}", a->worker_timeout_s, &o, &why) != UP_OK) {
        err_set(e, 500, ERR_INTERNAL_ERROR, NULL, "controller unavailable: %s", why);
        free(why);
        return NULL;
    }
    cJSON *models = cJSON_DetachItemFromObjectCaseSensitive(o, "models");
    cJSON_Delete(o);
    if (!cJSON_IsArray(models)) {
        cJSON_Delete(models);
        err_set(e, 500, ERR_INTERNAL_ERROR, NULL, "controller: malformed /list_models answer");
        return NULL;
    }
    return models;
}

static void ctl_refresh(fc_openai_api *a)
{
    cJSON *o = NULL;
    char *why = NULL;
    if (up_post(a->ctl, "/refresh_all_workers", "{}", a->worker_timeout_s, &o, &why) != UP_OK) {
        FC_LOG_WARN("api: refresh_all_workers: %s", why);
        free(why);
    }
    cJSON_Delete(o);
}

/* check_model: 40301 unless the controller lists the model. */
static bool check_model(fc_openai_api *a, const char *model, api_err *e)
{
    cJSON *models = ctl_list_models(a, e);
    if (!models) return false;
    bool found = false;
    fc_str list = FC_STR_INIT;
    const cJSON *it;
    cJSON_ArrayForEach(it, models) {
        if (!cJSON_IsString(it)) continue;
        if (!strcmp(it->valuestring, model)) found = true;
        if (list.len) fc_str_puts(&list, "&&");
        fc_str_puts(&list, it->valuestring);
    }
    if (!found)
        err_set(e, 400, ERR_INVALID_MODEL, "model", "Only %s allowed now, your model %s", list.p ? list.p : "", model);
    fc_str_free(&list);
    cJSON_Delete(models);
    return found;
}

/* get_worker_address; NULL (error set) when none serves the model. */
static char *worker_address(fc_openai_api *a, const char *model, api_err *e)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    char *body = json_print(req);
    cJSON_Delete(req);
    cJSON *o = NULL;
    char *why = NULL;
    enum up_status st = up_post(a->ctl, "/get_worker_address", body, a->worker_timeout_s, &o, &why);
    free(body);
    if (st != UP_OK) {
        err_set(e, 500, ERR_INTERNAL_ERROR, NULL, "controller unavailable: %s", why);
        free(why);
        return NULL;
    }
    const cJSON *addr = json_get(o, "address");
    char *out = NULL;
    if (cJSON_IsString(addr) && *addr->valuestring) out = fc_xstrdup(addr->valuestring);
    else err_set(e, 500, ERR_CONTROLLER_NO_WORKER, "model", "No available worker for %s", model);
    cJSON_Delete(o);
    return out;
}

/* A worker call that answers a number field ("context_length", "count").
 * Returns the upstream status; on UP_OK *v is set. Other failures set e. */
static enum up_status worker_number(fc_openai_api *a, const char *addr, const char *path, const char *model,
                                    const char *prompt, const char *field, long *v, api_err *e)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    if (prompt) cJSON_AddStringToObject(req, "prompt", prompt);
    char *body = json_print(req);
    cJSON_Delete(req);
    cJSON *o = NULL;
    char *why = NULL;
    enum up_status st = up_post(addr, path, body, a->worker_timeout_s, &o, &why);
    free(body);
    if (st == UP_OK) {
        const cJSON *n = json_get(o, field);
        if (cJSON_IsNumber(n)) {
            *v = fc_json_long(n->valuedouble);
        } else {
            st = UP_BAD;
            const cJSON *t = json_get(o, "text");
            why = fc_xasprintf("%s%s: %s", addr, path, cJSON_IsString(t) ? t->valuestring : "malformed answer");
        }
    }
    if (st != UP_OK && st != UP_DOWN) err_set(e, 400, ERR_INTERNAL_ERROR, NULL, "%s", why);
    free(why);
    cJSON_Delete(o);
    return st;
}

/* get_conv: the worker's template for the model, fetched once per (address,
 * model); returns a copy the caller frees. */
static enum up_status worker_conv(fc_openai_api *a, const char *addr, const char *model, fc_conv **out, api_err *e)
{
    char *key = fc_xasprintf("%s\n%s", addr, model);
    *out = NULL;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->n_convs; i++)
        if (!strcmp(a->conv_keys[i], key)) {
            *out = fc_conv_copy(a->convs[i]);
            break;
        }
    pthread_mutex_unlock(&a->mu);
    if (*out) {
        free(key);
        return UP_OK;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    char *body = json_print(req);
    cJSON_Delete(req);
    cJSON *o = NULL;
    char *why = NULL;
    enum up_status st = up_post(addr, "/worker_get_conv_template", body, a->worker_timeout_s, &o, &why);
    free(body);
    fc_conv *conv = NULL;
    if (st == UP_OK) {
        conv = fc_conv_from_json(json_get(o, "conv"));
        if (!conv) {
            st = UP_BAD;
            why = fc_xasprintf("%s/worker_get_conv_template: unusable template: %s", addr, fc_last_error());
        }
    }
    cJSON_Delete(o);
    if (st != UP_OK) {
        if (st != UP_DOWN) err_set(e, 400, ERR_INTERNAL_ERROR, NULL, "%s", why);
        free(why);
        free(key);
        return st;
    }
    pthread_mutex_lock(&a->mu);
    if (a->n_convs == a->cap_convs) {
        a->cap_convs = a->cap_convs ? 2 * a->cap_convs : 8;
        a->conv_keys = fc_xrealloc(a->conv_keys, sizeof(char *) * (size_t)a->cap_convs);
        a->convs = fc_xrealloc(a->convs, sizeof(fc_conv *) * (size_t)a->cap_convs);
    }
    a->conv_keys[a->n_convs] = key;
    a->convs[a->n_convs++] = conv;
    *out = fc_conv_copy(conv);
    pthread_mutex_unlock(&a->mu);
    return UP_OK;
}

/* ---- request parsing and validation ---- */

enum req_kind { K_CHAT, K_COMPLETION, K_API_CHAT, K_EMBEDDINGS };

static const char *kind_schema(enum req_kind k)
{
    switch (k) {
    case K_CHAT: return "ChatCompletionRequest";
    case K_COMPLETION: return "CompletionRequest";
    case K_API_CHAT: return "APIChatCompletionRequest";
    case K_EMBEDDINGS: return "EmbeddingsRequest";
    }
    return "Request";
}

typedef struct gen_req {
    enum req_kind kind;
    cJSON *body;               /* owns everything borrowed below */
    const char *model;
    const cJSON *messages;     /* chat: string or array */
    const char **prompts;      /* completions / embeddings inputs */
    int n_prompts;
    const cJSON **prompt_ids;  /* completions: per prompt, its token ids (checked ints) or NULL (text); NULL: all text */
    double temperature, top_p, presence_penalty, frequency_penalty, repetition_penalty;
    bool has_repetition_penalty;
    long top_k, n;
    bool has_max_tokens;       /* false: None (no limit but the context) */
    long max_tokens;           /* when has_max_tokens */
    const char *max_tokens_param; /* "max_tokens" or "max_completion_tokens" */
    const cJSON *stop;         /* string or array of strings, or NULL */
    bool stream, echo;
    bool has_seed;
    long long seed;
    long logprobs;             /* -1: None; completions: int; chat: top_logprobs when logprobs */
    bool chat_logprobs;
    bool include_usage;
    const cJSON *best_of, *use_beam_search; /* passed through when set */
    const char *encoding_format;
    const cJSON *response_format; /* structured outputs: a validated constraint, passed to the worker */
    fc_tool_req tools;         /* chat: tools, tool_choice, tool parts of the history (tool_calls.h) */
} gen_req;

static void req_free(gen_req *r)
{
    cJSON_Delete(r->body);
    free(r->prompts);
    free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}

/* Field readers: 1 when absent or null (keep the default), 0 when read, -1
 * (error set, 40001) on a wrong type. Numbers may come as numeric strings,
 * as pydantic's lax mode accepts. */
static int type_error(api_err *e, enum req_kind k, const char *field, const char *what)
{
    err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, field, "1 validation error for %s\n%s\n  %s",
            kind_schema(k), field, what);
    return -1;
}

static bool str_to_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    return end != s && !*end && errno == 0 && isfinite(*v);
}

static int f_num(const cJSON *o, const char *k, double *v, enum req_kind kind, api_err *e)
{
    const cJSON *it = json_get(o, k);
    if (!it || cJSON_IsNull(it)) return 1;
    if (cJSON_IsNumber(it)) {
        *v = it->valuedouble;
        return 0;
    }
    if (cJSON_IsString(it) && str_to_double(it->valuestring, v)) return 0;
    return type_error(e, kind, k, "Input should be a valid number");
}

static int f_int(const cJSON *o, const char *k, long long *v, enum req_kind kind, api_err *e)
{
    const cJSON *it = json_get(o, k);
    if (!it || cJSON_IsNull(it)) return 1;
    double d;
    if (cJSON_IsNumber(it)) d = it->valuedouble;
    else if (!(cJSON_IsString(it) && str_to_double(it->valuestring, &d)))
        return type_error(e, kind, k, "Input should be a valid integer");
    if (d != floor(d) || fabs(d) > 9e15) return type_error(e, kind, k, "Input should be a valid integer");
    *v = (long long)d;
    return 0;
}

static int f_bool(const cJSON *o, const char *k, bool *v, enum req_kind kind, api_err *e)
{
    const cJSON *it = json_get(o, k);
    if (!it || cJSON_IsNull(it)) return 1;
    if (cJSON_IsBool(it)) {
        *v = cJSON_IsTrue(it);
        return 0;
    }
    if (cJSON_IsNumber(it) && (it->valuedouble == 0 || it->valuedouble == 1)) {
        *v = it->valuedouble == 1;
        return 0;
    }
    if (cJSON_IsString(it)) {
        static const char *t[] = {"true", "1", "yes", "on", "t", "y"}, *f[] = {"false", "0", "no", "off", "f", "n"};
        for (size_t i = 0; i < FC_ARRAY_LEN(t); i++)
            if (!strcasecmp(it->valuestring, t[i])) return *v = true, 0;
        for (size_t i = 0; i < FC_ARRAY_LEN(f); i++)
            if (!strcasecmp(it->valuestring, f[i])) return *v = false, 0;
    }
    return type_error(e, kind, k, "Input should be a valid boolean");
}

static bool f_long(const cJSON *o, const char *k, long *v, enum req_kind kind, api_err *e)
{
    long long x;
    int rc = f_int(o, k, &x, kind, e);
    if (rc == 0) *v = (long)x;
    return rc >= 0;
}

/* A list of token ids: each an integer in [0, 2^31); the vocabulary is
 * checked by the worker (/worker_detokenize in prepare). */
static bool ids_ok(const cJSON *ids)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || it->valuedouble >= 2147483648.0 ||
            it->valuedouble != floor(it->valuedouble))
            return false;
    }
    return true;
}

/* Completions' prompt as a list: strings, lists of token ids, or token ids
 * (one prompt). r->prompts is allocated for the list's size. */
static bool read_id_prompts(gen_req *r, const cJSON *p, api_err *e)
{
    const char *what = "Input should be a valid string, a list of strings, a list of token ids (integers "
                       "from 0) or a list of such lists";
    if (cJSON_IsNumber(p->child)) {
        if (!ids_ok(p)) return type_error(e, r->kind, "prompt", what), false;
        r->prompt_ids = fc_xcalloc(1, sizeof *r->prompt_ids);
        r->prompt_ids[0] = p;
        r->prompts[0] = "";
        r->n_prompts = 1;
        return true;
    }
    r->prompt_ids = fc_xcalloc((size_t)cJSON_GetArraySize(p), sizeof *r->prompt_ids);
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        if (cJSON_IsArray(it) && ids_ok(it)) {
            r->prompt_ids[r->n_prompts] = it;
            r->prompts[r->n_prompts++] = "";
        } else if (cJSON_IsString(it)) {
            r->prompts[r->n_prompts++] = it->valuestring;
        } else {
            return type_error(e, r->kind, "prompt", what), false;
        }
    }
    return true;
}

/* Strings of a prompt/input: a string or a list of strings (completions:
 * or token ids, read_id_prompts). */
static bool read_texts(gen_req *r, const char *field, api_err *e)
{
    const cJSON *p = json_get(r->body, field);
    if (cJSON_IsString(p)) {
        r->prompts = fc_xmalloc(sizeof(char *));
        r->prompts[0] = p->valuestring;
        r->n_prompts = 1;
        return true;
    }
    if (!cJSON_IsArray(p)) {
        type_error(e, r->kind, field, p ? "Input should be a valid string or a list of strings" : "Field required");
        return false;
    }
    int n = cJSON_GetArraySize(p);
    if (n == 0) {
        type_error(e, r->kind, field, "Input should be a non-empty list");
        return false;
    }
    r->prompts = fc_xcalloc((size_t)n, sizeof(char *));
    if (r->kind == K_COMPLETION) return read_id_prompts(r, p, e);
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        if (cJSON_IsNumber(it) || cJSON_IsArray(it)) {
            err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, field,
                    "token id %ss are not supported: FastChat decodes them with OpenAI's tiktoken vocabularies, "
                    "which do not match the served models; send text",
                    field);
            return false;
        }
        if (!cJSON_IsString(it)) {
            type_error(e, r->kind, field, "Input should be a valid string or a list of strings");
            return false;
        }
        r->prompts[r->n_prompts++] = it->valuestring;
    }
    return true;
}

static bool check_messages(gen_req *r, api_err *e)
{
    const cJSON *m = r->messages;
    if (cJSON_IsString(m)) return true;
    if (!cJSON_IsArray(m)) {
        type_error(e, r->kind, "messages",
                   m ? "Input should be a valid string or a list of messages" : "Field required");
        return false;
    }
    const cJSON *msg;
    cJSON_ArrayForEach(msg, m) {
        const cJSON *role = json_get(msg, "role"), *content = json_get(msg, "content");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
            type_error(e, r->kind, "messages",
                       "Input should be a list of {\"role\": string, \"content\": ...} objects");
            return false;
        }
        if (cJSON_IsString(content)) continue;
        const cJSON *calls = json_get(msg, "tool_calls");
        if (r->kind == K_CHAT && (!content || cJSON_IsNull(content)) && calls && !cJSON_IsNull(calls))
            continue; /* an assistant's tool calls without text (tool_calls.c checks them) */
        if (cJSON_IsArray(content) && r->kind == K_CHAT) {
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *type = json_get(part, "type");
                if (!cJSON_IsString(type)) {
                    type_error(e, r->kind, "messages", "Input should be content parts with a \"type\"");
                    return false;
                }
                if (!strcmp(type->valuestring, "text") && !cJSON_IsString(json_get(part, "text"))) {
                    type_error(e, r->kind, "messages", "Input should be text parts with a string \"text\"");
                    return false;
                }
                if (!strcmp(type->valuestring, "image_url")) {
                    err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, "messages",
                            "image inputs are not supported: the served models are text-only");
                    return false;
                }
            }
            continue;
        }
        type_error(e, r->kind, "messages", "Input should be messages whose content is a string");
        return false;
    }
    return true;
}

/* Parses and validates a generation request: FastChat's schema (40001)
 * first, then check_model (40301), then check_requests (40302). */
static bool parse_gen_req(fc_openai_api *a, const fc_http_request *hr, enum req_kind kind, gen_req *r, api_err *e)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    if (fc_json_has_nul(hr->body, hr->body_len)) {
        err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, NULL, "1 validation error for %s\nbody\n  %s", kind_schema(kind),
                FC_JSON_NUL_MSG);
        return false;
    }
    r->body = cJSON_ParseWithLength(hr->body, hr->body_len);
    if (!cJSON_IsObject(r->body)) {
        err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, NULL, "1 validation error for %s\nbody\n  %s", kind_schema(kind),
                r->body ? "Input should be a valid dictionary" : "JSON decode error");
        return false;
    }
    const cJSON *model = json_get(r->body, "model");
    if (!cJSON_IsString(model)) {
        type_error(e, kind, "model",
                   model && !cJSON_IsNull(model) ? "Input should be a valid string" : "Field required");
        return false;
    }
    r->model = model->valuestring;
    int rc;
    char why_tools[320];
    const char *param_tools = NULL;

    /* defaults (openai_api_protocol.py / api_protocol.py) */
    r->temperature = 0.7;
    r->top_p = 1.0;
    r->top_k = -1;
    r->n = 1;
    r->has_max_tokens = kind == K_COMPLETION; /* CompletionRequest: 16; chat: None */
    r->max_tokens = 16;
    r->max_tokens_param = "max_tokens";
    r->repetition_penalty = 1.0;
    r->logprobs = -1;

    if (kind == K_COMPLETION) {
        if (!read_texts(r, "prompt", e)) return false;
    } else {
        r->messages = json_get(r->body, "messages");
        if (!check_messages(r, e)) return false;
    }
    long long seed = 0;
    if (f_num(r->body, "temperature", &r->temperature, kind, e) < 0) return false;
    if (f_num(r->body, "top_p", &r->top_p, kind, e) < 0) return false;
    if (!f_long(r->body, "top_k", &r->top_k, kind, e)) return false;
    if (!f_long(r->body, "n", &r->n, kind, e)) return false;
    long long mt = 0;
    if ((rc = f_int(r->body, "max_tokens", &mt, kind, e)) < 0) return false;
    if (rc == 0) r->has_max_tokens = true, r->max_tokens = mt < LONG_MIN ? LONG_MIN : (long)mt;
    if (kind != K_COMPLETION) { /* OpenAI's newer name wins when both are given */
        if ((rc = f_int(r->body, "max_completion_tokens", &mt, kind, e)) < 0) return false;
        if (rc == 0)
            r->has_max_tokens = true, r->max_tokens = (long)mt, r->max_tokens_param = "max_completion_tokens";
    }
    if (f_bool(r->body, "stream", &r->stream, kind, e) < 0) return false;
    if (f_num(r->body, "presence_penalty", &r->presence_penalty, kind, e) < 0) return false;
    if (f_num(r->body, "frequency_penalty", &r->frequency_penalty, kind, e) < 0) return false;
    if ((rc = f_int(r->body, "seed", &seed, kind, e)) < 0) return false;
    r->has_seed = rc == 0;
    r->seed = seed;
    if (kind == K_API_CHAT) {
        if ((rc = f_num(r->body, "repetition_penalty", &r->repetition_penalty, kind, e)) < 0) return false;
        r->has_repetition_penalty = true; /* FastChat sends its default 1.0 too */
    }
    r->stop = json_get(r->body, "stop");
    if (cJSON_IsNull(r->stop)) r->stop = NULL;
    if (r->stop && !cJSON_IsString(r->stop)) {
        bool ok = cJSON_IsArray(r->stop);
        const cJSON *it;
        if (ok) cJSON_ArrayForEach(it, r->stop) ok = ok && cJSON_IsString(it);
        if (!ok) return type_error(e, kind, "stop", "Input should be a valid string or a list of strings"), false;
    }
    if (kind == K_COMPLETION) {
        if (f_bool(r->body, "echo", &r->echo, kind, e) < 0) return false;
        if (!f_long(r->body, "logprobs", &r->logprobs, kind, e)) return false;
        const cJSON *bo = json_get(r->body, "best_of"), *bs = json_get(r->body, "use_beam_search");
        if (bo && !cJSON_IsNull(bo) && !cJSON_IsNumber(bo))
            return type_error(e, kind, "best_of", "Input should be a valid integer"), false;
        if (bs && !cJSON_IsNull(bs) && !cJSON_IsBool(bs))
            return type_error(e, kind, "use_beam_search", "Input should be a valid boolean"), false;
        r->best_of = bo && cJSON_IsNumber(bo) ? bo : NULL;
        r->use_beam_search = bs && cJSON_IsBool(bs) ? bs : NULL;
    } else {
        long top = -1;
        if (f_bool(r->body, "logprobs", &r->chat_logprobs, kind, e) < 0) return false;
        if (!f_long(r->body, "top_logprobs", &top, kind, e)) return false;
        if (top >= 0 && !r->chat_logprobs) {
            err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "top_logprobs",
                    "logprobs must be set to true if top_logprobs is set - 'top_logprobs'");
            return false;
        }
        if (top > MAX_LOGPROBS || top < -1) {
            err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "top_logprobs",
                    "%ld is out of range: top_logprobs must be between 0 and %d - 'top_logprobs'", top, MAX_LOGPROBS);
            return false;
        }
        if (r->chat_logprobs) r->logprobs = top > 0 ? top : 0;
    }
    const cJSON *so = json_get(r->body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return type_error(e, kind, "stream_options", "Input should be a valid dictionary"), false;
        bool inc = false;
        if (f_bool(so, "include_usage", &inc, kind, e) < 0) return false;
        r->include_usage = inc;
    }
    if (kind == K_CHAT || kind == K_COMPLETION || kind == K_API_CHAT) {
        /* structured outputs: refused here (400) when the schema cannot be
         * compiled; the worker compiles it again for its engine */
        const cJSON *rf = json_get(r->body, "response_format");
        char *grammar = NULL, why[320];
        const char *param = NULL;
        int rc_rf = fc_response_format_grammar(rf, &grammar, why, sizeof why, &param);
        free(grammar);
        if (rc_rf < 0) return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, param, "%s", why), false;
        if (rc_rf > 0) r->response_format = rf;
    }
    if (kind == K_CHAT && fc_tool_req_parse(r->body, &r->tools, why_tools, sizeof why_tools, &param_tools) < 0)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, param_tools, "%s", why_tools), false;

    /* check_model (not without a server: fc_openai_api_check_request), then
     * check_requests, in FastChat's order */
    if (a && !check_model(a, r->model, e)) return false;
    if (r->has_max_tokens && r->max_tokens <= 0)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, r->max_tokens_param, "%ld is less than the minimum of 1 - '%s'",
                       r->max_tokens, r->max_tokens_param),
               false;
    if (r->n <= 0)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "n", "%ld is less than the minimum of 1 - 'n'", r->n), false;
    if (r->n > MAX_N)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "n", "%ld is greater than the maximum of %d - 'n'", r->n, MAX_N),
               false;
    if (kind == K_COMPLETION && (long)r->n_prompts * r->n > MAX_CHOICES)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "prompt",
                       "%ld is greater than the maximum of %d - 'prompt' (prompts x n per request)",
                       (long)r->n_prompts * r->n, MAX_CHOICES),
               false;
    if (r->temperature < 0)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "temperature",
                       "%g is less than the minimum of 0 - 'temperature'", r->temperature),
               false;
    if (r->temperature > 2)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "temperature",
                       "%g is greater than the maximum of 2 - 'temperature'", r->temperature),
               false;
    if (r->top_p < 0)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "top_p", "%g is less than the minimum of 0 - 'top_p'", r->top_p),
               false;
    if (r->top_p > 1)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "top_p", "%g is greater than the maximum of 1 - 'top_p'",
                       r->top_p),
               false;
    if (r->top_k > -1 && r->top_k < 1)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "top_k",
                       "%ld is out of Range. Either set top_k to -1 or >=1.", r->top_k),
               false;
    if (r->presence_penalty < -2 || r->presence_penalty > 2)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "presence_penalty",
                       "%g is out of range: presence_penalty must be between -2 and 2 - 'presence_penalty'",
                       r->presence_penalty),
               false;
    if (r->frequency_penalty < -2 || r->frequency_penalty > 2)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "frequency_penalty",
                       "%g is out of range: frequency_penalty must be between -2 and 2 - 'frequency_penalty'",
                       r->frequency_penalty),
               false;
    if (kind == K_COMPLETION && (r->logprobs < -1 || r->logprobs > MAX_LOGPROBS))
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "logprobs",
                       "%ld is out of range: logprobs must be between 0 and %d - 'logprobs'", r->logprobs,
                       MAX_LOGPROBS),
               false;
    int n_stop = cJSON_IsArray(r->stop) ? cJSON_GetArraySize(r->stop) : 0;
    if (n_stop > MAX_STOP) /* the worker takes 64 with the template's (at most 3) */
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "stop",
                       "%d stop sequences are too many: at most %d - 'stop'", n_stop, MAX_STOP),
               false;
    if (kind == K_API_CHAT && r->repetition_penalty <= 0)
        return err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "repetition_penalty",
                       "%g is less than or equal to 0 - 'repetition_penalty'", r->repetition_penalty),
               false;
    return true;
}

/* ---- prompt assembly and worker parameters (get_gen_params) ---- */

/* Renders the chat messages with the template. NULL with e set on an
 * unknown role. */
static char *render_chat(fc_conv *conv, const cJSON *messages, api_err *e)
{
    if (cJSON_IsString(messages)) return fc_xstrdup(messages->valuestring);
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = json_get(m, "role")->valuestring;
        const cJSON *content = json_get(m, "content");
        fc_str text = FC_STR_INIT;
        if (cJSON_IsString(content)) {
            fc_str_puts(&text, content->valuestring);
        } else { /* text parts joined by newlines */
            const cJSON *part;
            bool first = true;
            cJSON_ArrayForEach(part, content) {
                if (strcmp(json_get(part, "type")->valuestring, "text")) continue;
                if (!first) fc_str_puts(&text, "\n");
                fc_str_puts(&text, json_get(part, "text")->valuestring);
                first = false;
            }
            if (!text.p) fc_str_putn(&text, "", 0);
        }
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            fc_conv_set_system_message(conv, text.p);
        } else if (!strcmp(role, "user")) {
            fc_conv_append_message(conv, 0, text.p);
        } else if (!strcmp(role, "assistant")) {
            fc_conv_append_message(conv, 1, text.p);
        } else {
            err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, "messages", "Unknown role: %s", role);
            fc_str_free(&text);
            return NULL;
        }
        fc_str_free(&text);
    }
    fc_conv_append_message(conv, 1, NULL);
    char *prompt = fc_conv_get_prompt(conv);
    if (!prompt) err_set(e, 400, ERR_INTERNAL_ERROR, NULL, "cannot render the conversation: %s", fc_last_error());
    return prompt;
}

/* The worker request for one choice. seed_offset is added to the seed. */
static char *gen_params_json(const gen_req *r, const fc_conv *conv, const char *prompt, long max_new_tokens,
                             int seed_offset)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddNumberToObject(o, "temperature", r->temperature);
    if (r->logprobs >= 0) add_int(o, "logprobs", (double)r->logprobs);
    else cJSON_AddNullToObject(o, "logprobs");
    cJSON_AddNumberToObject(o, "top_p", r->top_p);
    add_int(o, "top_k", (double)r->top_k);
    cJSON_AddNumberToObject(o, "presence_penalty", r->presence_penalty);
    cJSON_AddNumberToObject(o, "frequency_penalty", r->frequency_penalty);
    add_int(o, "max_new_tokens", (double)max_new_tokens);
    cJSON_AddBoolToObject(o, "echo", r->kind == K_COMPLETION && r->echo);
    int n_ids = 0;
    const int32_t *ids = fc_conv_stop_token_ids(conv, &n_ids);
    cJSON *sti = cJSON_AddArrayToObject(o, "stop_token_ids");
    for (int i = 0; i < n_ids; i++) cJSON_AddItemToArray(sti, cJSON_CreateNumber(ids[i]));
    if (r->best_of) cJSON_AddItemToObject(o, "best_of", cJSON_Duplicate(r->best_of, true));
    if (r->use_beam_search) cJSON_AddItemToObject(o, "use_beam_search", cJSON_Duplicate(r->use_beam_search, true));
    /* stop: the union of the request's and the template's (FastChat's set) */
    cJSON *stop = cJSON_AddArrayToObject(o, "stop");
    const char *cand[256];
    int n_cand = 0;
    if (cJSON_IsString(r->stop)) {
        cand[n_cand++] = r->stop->valuestring;
    } else if (cJSON_IsArray(r->stop)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, r->stop) if (n_cand < 200) cand[n_cand++] = it->valuestring;
    }
    for (int i = 0; i < fc_conv_n_stop_str(conv) && n_cand < 256; i++) cand[n_cand++] = fc_conv_stop_str(conv, i);
    for (int i = 0; i < n_cand; i++) {
        if (!cand[i] || !*cand[i]) continue;
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) dup = cand[j] && !strcmp(cand[j], cand[i]);
        if (!dup) cJSON_AddItemToArray(stop, cJSON_CreateString(cand[i]));
    }
    if (r->has_repetition_penalty) cJSON_AddNumberToObject(o, "repetition_penalty", r->repetition_penalty);
    if (r->has_seed) add_int(o, "seed", (double)(r->seed + seed_offset));
    if (r->response_format) cJSON_AddItemToObject(o, "response_format", cJSON_Duplicate(r->response_format, true));
    char *s = json_print(o);
    cJSON_Delete(o);
    return s;
}

/* gen_params_json for prompt k, with its token ids as our worker's
 * prompt_token_ids (serve/worker.h) when it was given as ids. */
static char *prompt_payload(const gen_req *r, const fc_conv *conv, const char *prompt, int k, long max_new_tokens,
                            int seed_offset)
{
    char *s = gen_params_json(r, conv, prompt, max_new_tokens, seed_offset);
    if (!r->prompt_ids || !r->prompt_ids[k]) return s;
    char *ids = json_print(r->prompt_ids[k]);
    size_t n = strlen(s); /* "{...}" */
    char *o = fc_xasprintf("%.*s,\"prompt_token_ids\":%s}", (int)(n - 1), s, ids);
    free(ids);
    free(s);
    return o;
}

/* What a request needs from its worker: the address, the template, the
 * rendered prompts and the clamped max_new_tokens. */
typedef struct prep {
    char *addr;
    fc_conv *conv;
    char **prompts;  /* n_prompts rendered prompts */
    int n_prompts;
    long max_new_tokens;
    bool tools_active;  /* the answer is parsed for tool calls */
    char *tool_grammar; /* a forced call's grammar, or NULL */
    const char *tool_trigger; /* the grammar is lazy from this text on (static), or NULL */
} prep;

static void prep_free(prep *p)
{
    free(p->addr);
    fc_conv_free(p->conv);
    for (int i = 0; i < p->n_prompts; i++) free(p->prompts[i]);
    free(p->prompts);
    free(p->tool_grammar);
    memset(p, 0, sizeof *p);
}

/* A chat with tools or tool history (tool_calls.h): the model's own chat
 * template when it takes tools (the worker sends it with its conversation
 * template), the generic format through the conversation template
 * otherwise. Sets p->tools_active and p->tool_grammar. a NULL: generic. */
static char *render_tools(fc_openai_api *a, prep *p, const gen_req *r, fc_conv *conv, api_err *e)
{
    cJSON *info = NULL;
    if (a) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "model", r->model);
        char *body = json_print(req);
        cJSON_Delete(req);
        char *why = NULL;
        if (up_post(p->addr, "/worker_get_conv_template", body, a->worker_timeout_s, &info, &why) != UP_OK) {
            cJSON_Delete(info);
            info = NULL;
        }
        free(why);
        free(body);
    }
    const cJSON *tmpl = json_get(info, "chat_template"), *bos = json_get(info, "bos_token"),
                *eos = json_get(info, "eos_token");
    const char *jt = cJSON_IsString(tmpl) ? tmpl->valuestring : NULL;
    bool active = fc_tool_req_active(&r->tools);
    char *prompt = NULL;
    enum fc_tool_style style = FC_TOOL_STYLE_HERMES;
    if (fc_tool_template_takes_tools(jt)) {
        style = fc_tool_style_of(jt);
        cJSON *msgs = fc_tool_messages_for_template(r->messages);
        cJSON *extra = cJSON_CreateObject();
        if (active) cJSON_AddItemToObject(extra, "tools", cJSON_Duplicate(r->tools.tools, true));
        char *err = NULL;
        prompt = fc_chat_template_render(jt, msgs, cJSON_IsString(bos) ? bos->valuestring : NULL,
                                         cJSON_IsString(eos) ? eos->valuestring : NULL, true, extra, NULL, &err);
        if (!prompt) err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "messages", "the chat template refused these messages: %s",
                             err ? err : "error");
        /* the worker's tokenizer adds BOS to every prompt: not twice */
        size_t bl = cJSON_IsString(bos) ? strlen(bos->valuestring) : 0;
        if (prompt && bl && cJSON_IsTrue(json_get(info, "add_bos_token")) && !strncmp(prompt, bos->valuestring, bl))
            memmove(prompt, prompt + bl, strlen(prompt + bl) + 1);
        free(err);
        cJSON_Delete(extra);
        cJSON_Delete(msgs);
    } else {
        cJSON *msgs = fc_tool_messages_generic(r->messages, &r->tools);
        prompt = render_chat(conv, msgs, e);
        cJSON_Delete(msgs);
    }
    cJSON_Delete(info);
    p->tools_active = active;
    if (prompt && fc_tool_req_forced(&r->tools)) {
        char why[320] = "";
        p->tool_grammar = fc_tool_grammar(&r->tools, style, why, sizeof why);
        if (!p->tool_grammar) {
            err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "tools", "Invalid schema for a tool: %s", why);
            free(prompt);
            prompt = NULL;
        }
    } else if (prompt && active) { /* auto with strict tools: lazy, from the call marker on */
        char why[320] = "";
        p->tool_grammar = fc_tool_lazy_grammar(&r->tools, style, &p->tool_trigger, why, sizeof why);
        if (!p->tool_grammar && why[0]) {
            err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "tools", "Invalid schema for a tool: %s", why);
            free(prompt);
            prompt = NULL;
        }
    }
    return prompt;
}

/* A worker payload with the forced call's grammar added (our extension of
 * the worker protocol, "tool_grammar"; it replaces response_format, which
 * shapes text answers); takes payload. */
static char *with_tool_grammar(char *payload, const prep *p)
{
    if (!p->tool_grammar) return payload;
    cJSON *o = cJSON_Parse(payload);
    if (!o) return payload;
    cJSON_AddStringToObject(o, "tool_grammar", p->tool_grammar);
    if (p->tool_trigger) cJSON_AddStringToObject(o, "tool_grammar_trigger", p->tool_trigger);
    else cJSON_DeleteItemFromObjectCaseSensitive(o, "response_format"); /* a forced call is no text answer */
    free(payload);
    payload = json_print(o);
    cJSON_Delete(o);
    return payload;
}

/* True when the request's work should stop: its client left, or the server
 * is shutting down (then the answer says so). */
static bool must_stop(fc_openai_api *a, const fc_http_request *hr)
{
    return atomic_load(&a->stopping) || (hr && fc_http_request_client_gone(hr));
}

static void err_stopped(fc_openai_api *a, api_err *e)
{
    if (atomic_load(&a->stopping))
        err_set(e, 503, ERR_INTERNAL_ERROR, NULL, "%s\n\n(the server is shutting down)", SERVER_ERROR_MSG);
    else
        err_set(e, 400, ERR_INTERNAL_ERROR, NULL, "the client left before the answer was ready");
}

/* check_length for one prompt: min(max_tokens or 2^20, context - tokens);
 * ctx is the worker's context length. */
static enum up_status check_length(fc_openai_api *a, const char *addr, const gen_req *r, const char *prompt, long ctx,
                                   long n_tokens /* < 0: ask /count_token */, long *allowed, api_err *e)
{
    long count = n_tokens;
    enum up_status st = n_tokens >= 0 ? UP_OK : worker_number(a, addr, "/count_token", r->model, prompt, "count", &count, e);
    if (st != UP_OK) return st;
    if (count <= 0) {
        err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, r->kind == K_COMPLETION ? "prompt" : "messages",
                "The prompt is empty: it has no tokens to continue - '%s'",
                r->kind == K_COMPLETION ? "prompt" : "messages");
        return UP_BAD;
    }
    long mt = r->has_max_tokens ? r->max_tokens : NO_MAX_TOKENS;
    long len = FC_MIN(mt, ctx - count);
    if (len <= 0) {
        err_set(e, 400, ERR_CONTEXT_OVERFLOW, "messages",
                "This model's maximum context length is %ld tokens. However, your messages resulted in %ld tokens. "
                "Please reduce the length of the messages.",
                ctx, count);
        return UP_BAD;
    }
    *allowed = len;
    return UP_OK;
}

/* A prompt given as token ids, decoded by the worker (/worker_detokenize),
 * which also checks them against the model's vocabulary: an id outside it
 * is the client's mistake (40302). *text is malloc'd. */
static enum up_status detok_prompt(fc_openai_api *a, const char *addr, const gen_req *r, int k, char **text,
                                   api_err *e)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", r->model);
    cJSON_AddItemToObject(req, "tokens", cJSON_Duplicate(r->prompt_ids[k], true));
    char *body = json_print(req);
    cJSON_Delete(req);
    char *url = fc_xasprintf("%s/worker_detokenize", addr);
    fc_http_response res = {0};
    bool ok = fc_http_post_json_ex(url, body, strlen(body), a->worker_timeout_s, NULL, &res) && res.status;
    cJSON *o = ok ? cJSON_ParseWithLength(res.body ? res.body : "", res.len) : NULL;
    const cJSON *pr = json_get(o, "prompt"), *t = json_get(o, "text");
    enum up_status st = UP_OK;
    if (!ok) {
        st = UP_DOWN;
    } else if (res.status == 200 && cJSON_IsString(pr)) {
        *text = fc_xstrdup(pr->valuestring);
    } else if (res.status == 400 && cJSON_IsString(t)) {
        /* the worker names its own field: "'tokens' must be a list of ..." */
        static const char head[] = "'tokens' must be a list of token ids of the model's vocabulary";
        const char *m = t->valuestring, *tail = strncmp(m, head, sizeof head - 1) ? NULL : m + sizeof head - 1;
        char where[32] = "";
        if (r->n_prompts > 1) snprintf(where, sizeof where, " of prompt %d", k);
        if (tail)
            err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "prompt",
                    "The token ids%s must be ids of the model's vocabulary%s - 'prompt'", where, tail);
        else
            err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "prompt", "%s%s - 'prompt'", m, where);
        st = UP_BAD;
    } else {
        err_set(e, 400, ERR_INTERNAL_ERROR, NULL, "%s: HTTP %d", url, res.status);
        st = UP_BAD;
    }
    cJSON_Delete(o);
    fc_http_response_free(&res);
    free(url);
    free(body);
    return st;
}

/* Resolves the worker and prepares the prompts. A worker that does not answer
 * at all is taken for dead: the controller refreshes its list (dropping it)
 * and another replica is tried. Stops early (e set) when must_stop. */
static bool prepare(fc_openai_api *a, const fc_http_request *hr, const gen_req *r, prep *p, api_err *e)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        memset(p, 0, sizeof *p);
        if (attempt > 0 && must_stop(a, hr)) return err_stopped(a, e), false; /* the worker refused: stopping */
        p->addr = worker_address(a, r->model, e);
        if (!p->addr) return false;
        enum up_status st = worker_conv(a, p->addr, r->model, &p->conv, e);
        if (st == UP_OK) {
            if (r->kind == K_COMPLETION) {
                p->prompts = fc_xcalloc((size_t)r->n_prompts, sizeof(char *));
                for (int i = 0; i < r->n_prompts && st == UP_OK; i++) {
                    if (r->prompt_ids && r->prompt_ids[i]) st = detok_prompt(a, p->addr, r, i, &p->prompts[i], e);
                    else p->prompts[i] = fc_xstrdup(r->prompts[i]);
                    if (st == UP_OK) p->n_prompts++;
                }
            } else {
                fc_conv *c = fc_conv_copy(p->conv);
                char *prompt = fc_tool_req_needed(&r->tools) && cJSON_IsArray(r->messages)
                                   ? render_tools(a, p, r, c, e)
                                   : render_chat(c, r->messages, e);
                fc_conv_free(c);
                if (!prompt) {
                    prep_free(p);
                    return false;
                }
                p->prompts = fc_xmalloc(sizeof(char *));
                p->prompts[0] = prompt;
                p->n_prompts = 1;
            }
            long ctx = 0;
            if (st == UP_OK) st = worker_number(a, p->addr, "/model_details", r->model, NULL, "context_length", &ctx, e);
            /* completions: the smallest clamp over the prompts wins */
            p->max_new_tokens = 0;
            for (int i = 0; i < p->n_prompts && st == UP_OK; i++) {
                if (must_stop(a, hr)) {
                    err_stopped(a, e);
                    prep_free(p);
                    return false;
                }
                long allowed = 0;
                long n_ids = r->prompt_ids && r->prompt_ids[i] ? cJSON_GetArraySize(r->prompt_ids[i]) : -1;
                st = check_length(a, p->addr, r, p->prompts[i], ctx, n_ids, &allowed, e);
                if (st == UP_OK && (p->max_new_tokens <= 0 || allowed < p->max_new_tokens)) p->max_new_tokens = allowed;
            }
        }
        if (st == UP_OK) return true;
        if (st != UP_DOWN) {
            prep_free(p);
            return false;
        }
        FC_LOG_WARN("api: worker %s does not answer; refreshing the controller", p->addr);
        prep_free(p);
        ctl_refresh(a);
    }
    err_set(e, 500, ERR_CONTROLLER_NO_WORKER, "model", "No available worker for %s", r->model);
    return false;
}

/* ---- logprobs ---- */

/* A slice [from, to) of FastChat's logprobs dict, as a completion's
 * {"text_offset","token_logprobs","tokens","top_logprobs"}. */
static cJSON *completion_logprobs(const cJSON *lp, int from, int to)
{
    static const char *keys[] = {"text_offset", "token_logprobs", "tokens", "top_logprobs"};
    cJSON *o = cJSON_CreateObject();
    for (size_t k = 0; k < FC_ARRAY_LEN(keys); k++) {
        const cJSON *src = json_get(lp, keys[k]);
        cJSON *arr = cJSON_AddArrayToObject(o, keys[k]);
        for (int i = from; i < to; i++) {
            const cJSON *it = cJSON_GetArrayItem(src, i);
            cJSON_AddItemToArray(arr, it ? cJSON_Duplicate(it, true) : cJSON_CreateNull());
        }
    }
    return o;
}

static cJSON *token_bytes(const char *s)
{
    cJSON *b = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) cJSON_AddItemToArray(b, cJSON_CreateNumber(*p));
    return b;
}

/* The same slice in OpenAI's chat shape: {"content": [{token, logprob, bytes,
 * top_logprobs: [{token, logprob, bytes}]}]}. */
static cJSON *chat_logprobs(const cJSON *lp, int from, int to)
{
    const cJSON *tokens = json_get(lp, "tokens"), *lps = json_get(lp, "token_logprobs"),
                *tops = json_get(lp, "top_logprobs");
    cJSON *o = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    for (int i = from; i < to; i++) {
        const cJSON *t = cJSON_GetArrayItem(tokens, i), *l = cJSON_GetArrayItem(lps, i),
                    *top = cJSON_GetArrayItem(tops, i);
        const char *ts = cJSON_IsString(t) ? t->valuestring : "";
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", ts);
        if (cJSON_IsNumber(l)) cJSON_AddNumberToObject(e, "logprob", l->valuedouble);
        else cJSON_AddNullToObject(e, "logprob");
        cJSON_AddItemToObject(e, "bytes", token_bytes(ts));
        cJSON *ta = cJSON_AddArrayToObject(e, "top_logprobs");
        const cJSON *alt;
        if (cJSON_IsObject(top)) {
            cJSON_ArrayForEach(alt, top) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "token", alt->string);
                cJSON_AddNumberToObject(x, "logprob", cJSON_IsNumber(alt) ? alt->valuedouble : 0.0);
                cJSON_AddItemToObject(x, "bytes", token_bytes(alt->string));
                cJSON_AddItemToArray(ta, x);
            }
        }
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

static int logprobs_len(const cJSON *lp)
{
    return cJSON_GetArraySize(json_get(lp, "tokens"));
}

/* ---- usage ---- */

typedef struct usage {
    double prompt, completion, total;
} usage;

static void usage_add(usage *u, const cJSON *chunk)
{
    const cJSON *us = json_get(chunk, "usage");
    const cJSON *p = json_get(us, "prompt_tokens"), *c = json_get(us, "completion_tokens"),
                *t = json_get(us, "total_tokens");
    if (cJSON_IsNumber(p)) u->prompt += p->valuedouble;
    if (cJSON_IsNumber(c)) u->completion += c->valuedouble;
    if (cJSON_IsNumber(t)) u->total += t->valuedouble;
}

static cJSON *usage_json(const usage *u, bool with_completion)
{
    cJSON *o = cJSON_CreateObject();
    add_int(o, "prompt_tokens", u->prompt);
    add_int(o, "total_tokens", u->total);
    if (with_completion) add_int(o, "completion_tokens", u->completion);
    return o;
}

/* ---- non-streamed generation (concurrent /worker_generate calls) ---- */

/* A worker that has been silent STALL_PROBE_S: false when it does not answer
 * a status request either (frozen, e.g. SIGSTOP; FastChat would wait out
 * FASTCHAT_WORKER_API_TIMEOUT). */
static bool worker_alive(const char *addr)
{
    char *url = fc_xasprintf("%s/worker_get_status", addr);
    fc_http_response r = {0};
    bool ok = fc_http_post_json(url, "{}", 2, PROBE_TIMEOUT_S, NULL, &r) && r.status == 200;
    fc_http_response_free(&r);
    free(url);
    if (!ok) FC_LOG_WARN("api: worker %s sent nothing for %.0f s and does not answer", addr, STALL_PROBE_S);
    return ok;
}

struct taskset;

typedef struct task {
    struct taskset *set;
    const char *addr;
    char *payload;
    cJSON *result;   /* the worker's last chunk */
    char *why;       /* transport failure */
    double since;    /* fc_time_sec() of the last sign of life */
} task;

/* The tasks of one request: threads take them in order until all are done or
 * the request is aborted (client gone, server stopping, a dead worker). */
typedef struct taskset {
    task *ts;
    int n;
    atomic_int next;
    atomic_bool abort;
    atomic_bool dead;      /* a worker stopped answering */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;           /* threads still taking tasks */
} taskset;

static bool task_keep_going(void *user)
{
    task *t = user;
    if (atomic_load(&t->set->abort)) return false;
    if (fc_time_sec() - t->since < STALL_PROBE_S) return true;
    if (worker_alive(t->addr)) {
        t->since = fc_time_sec();
        return true;
    }
    atomic_store(&t->set->dead, true);
    atomic_store(&t->set->abort, true);
    return false;
}

static void task_run(task *t)
{
    t->since = fc_time_sec();
    char *url = fc_xasprintf("%s/worker_generate", t->addr);
    fc_http_call call = {.keep_going = task_keep_going, .user = t};
    fc_http_response r = {0};
    bool got = fc_http_post_json_ex(url, t->payload, strlen(t->payload), GENERATE_TIMEOUT_S, &call, &r) &&
               r.status != 0;
    if (!got) {
        t->why = fc_xasprintf("%s: %s", url, atomic_load(&t->set->dead) ? "the worker stopped answering"
                                          : r.error[0]                ? r.error
                                                                      : "no response");
    } else if (r.status != 200) { /* fetch_remote turns a non-200 into an error chunk */
        t->result = cJSON_CreateObject();
        char *why = r.status == 404 ? fc_xstrdup("Not Found")
                    : r.status == 500 ? fc_xstrdup("Internal Server Error")
                                      : fc_xasprintf("HTTP %d", r.status);
        /* a worker's 400 carries its reason in "text" */
        cJSON *body = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        const cJSON *text = json_get(body, "text");
        cJSON_AddStringToObject(t->result, "text", cJSON_IsString(text) ? text->valuestring : why);
        add_int(t->result, "error_code", ERR_INTERNAL_ERROR);
        cJSON_Delete(body);
        free(why);
    } else {
        t->result = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        if (!t->result) t->why = fc_xasprintf("%s: malformed JSON answer", url);
    }
    fc_http_response_free(&r);
    free(url);
}

static void *task_thread(void *arg)
{
    taskset *set = arg;
    int i;
    while (!atomic_load(&set->abort) && (i = atomic_fetch_add(&set->next, 1)) < set->n) task_run(&set->ts[i]);
    pthread_mutex_lock(&set->mu);
    set->running--;
    pthread_cond_broadcast(&set->cv);
    pthread_mutex_unlock(&set->mu);
    return NULL;
}

/* Runs the tasks, at most MAX_TASKS_AT_ONCE at a time, on threads of their
 * own while this (the handler's) thread watches the client and the server:
 * a client that leaves, or a server that stops, aborts what runs at once
 * (the worker sees its connection close and cancels) and what waits never
 * starts. False when aborted. */
static bool run_tasks(fc_openai_api *a, const fc_http_request *hr, task *ts, int n)
{
    taskset set = {.ts = ts, .n = n};
    atomic_init(&set.next, 0);
    atomic_init(&set.abort, false);
    atomic_init(&set.dead, false);
    pthread_mutex_init(&set.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&set.cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < n; i++) ts[i].set = &set;
    int k = FC_MIN(n, MAX_TASKS_AT_ONCE);
    pthread_t th[MAX_TASKS_AT_ONCE];
    bool started[MAX_TASKS_AT_ONCE] = {0};
    for (int i = 0; i < k; i++) {
        pthread_mutex_lock(&set.mu);
        set.running++;
        pthread_mutex_unlock(&set.mu);
        started[i] = pthread_create(&th[i], NULL, task_thread, &set) == 0;
        if (!started[i]) {
            pthread_mutex_lock(&set.mu);
            set.running--;
            pthread_mutex_unlock(&set.mu);
        }
    }
    bool any = false;
    for (int i = 0; i < k; i++) any = any || started[i];
    if (!any) { /* no thread at all: run them here */
        pthread_mutex_lock(&set.mu);
        set.running++;
        pthread_mutex_unlock(&set.mu);
        task_thread(&set);
    }
    pthread_mutex_lock(&set.mu);
    while (set.running > 0) {
        struct timespec ts_;
        clock_gettime(CLOCK_MONOTONIC, &ts_);
        ts_.tv_nsec += 100 * 1000000L;
        if (ts_.tv_nsec >= 1000000000L) ts_.tv_sec++, ts_.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&set.cv, &set.mu, &ts_);
        if (set.running > 0 && !atomic_load(&set.abort)) {
            pthread_mutex_unlock(&set.mu);
            if (must_stop(a, hr)) atomic_store(&set.abort, true);
            pthread_mutex_lock(&set.mu);
        }
    }
    pthread_mutex_unlock(&set.mu);
    for (int i = 0; i < k; i++)
        if (started[i]) pthread_join(th[i], NULL);
    bool aborted = atomic_load(&set.abort) && !atomic_load(&set.dead);
    pthread_mutex_destroy(&set.mu);
    pthread_cond_destroy(&set.cv);
    for (int i = 0; i < n; i++) ts[i].set = NULL;
    return !aborted;
}

/* Builds tasks for every prompt x n (choice index = prompt * n + i). */
static task *make_tasks(const gen_req *r, const prep *p, int *n_tasks)
{
    int n = p->n_prompts * (int)r->n;
    task *ts = fc_xcalloc((size_t)n, sizeof(task));
    for (int k = 0; k < p->n_prompts; k++)
        for (int i = 0; i < r->n; i++) {
            task *t = &ts[k * r->n + i];
            t->addr = p->addr;
            t->payload = with_tool_grammar(prompt_payload(r, p->conv, p->prompts[k], k, p->max_new_tokens, i), p);
        }
    *n_tasks = n;
    return ts;
}

static void free_tasks(task *ts, int n)
{
    for (int i = 0; i < n; i++) {
        free(ts[i].payload);
        free(ts[i].why);
        cJSON_Delete(ts[i].result);
    }
    free(ts);
}

static const char *finish_of(const cJSON *chunk, const char *dflt)
{
    const cJSON *f = json_get(chunk, "finish_reason");
    if (cJSON_IsString(f)) return f->valuestring;
    return f ? NULL : dflt; /* content.get("finish_reason", "stop") */
}

/* A chat answer parsed for tool calls into msg's content and tool_calls. */
static void tool_message(cJSON *msg, const char *text, const cJSON *tools, bool *made)
{
    char *content = NULL;
    cJSON *calls = fc_tool_parse_text(text, strlen(text), tools, &content);
    if (calls && !content) cJSON_AddNullToObject(msg, "content");
    else cJSON_AddStringToObject(msg, "content", content ? content : "");
    if (calls) cJSON_AddItemToObject(msg, "tool_calls", calls);
    *made = calls != NULL;
    free(content);
}

/* /metrics: when the generation request on this handler thread arrived */
static _Thread_local double metrics_t0;

static void generate_blocking(fc_openai_api *a, const fc_http_request *hr, const gen_req *r, const prep *p,
                              fc_http_reply *reply)
{
    int n = 0;
    task *ts = make_tasks(r, p, &n);
    FC_LOG_DEBUG("api: %d x /worker_generate on %s: %s", n, p->addr, ts[0].payload);
    api_err e = {0};
    bool ran = run_tasks(a, hr, ts, n);
    /* /metrics: one choice's timings from the worker ("timings", worker.h):
     * first token = this request's time minus the worker's first token to reply */
    double ttft = -1, first_to_last = -1;
    const cJSON *tm = n == 1 ? json_get(ts[0].result, "timings") : NULL;
    const cJSON *ftl = json_get(tm, "first_to_last_s"), *ftr = json_get(tm, "first_to_reply_s");
    if (ran && cJSON_IsNumber(ftl) && cJSON_IsNumber(ftr) && metrics_t0 > 0) {
        ttft = FC_MAX(0.0, fc_time_sec() - metrics_t0 - ftr->valuedouble);
        first_to_last = FC_MAX(0.0, ftl->valuedouble);
        if (!(ttft < 1e9) || !(first_to_last < 1e9)) ttft = first_to_last = -1; /* nan, inf */
    }
    if (!ran) {
        err_stopped(a, &e);
        free_tasks(ts, n);
        reply_err(reply, &e);
        err_free(&e);
        return;
    }
    usage u = {0};
    char id[32];
    short_uuid(id);
    cJSON *out = cJSON_CreateObject();
    char *full_id = fc_xasprintf("%s-%s", r->kind == K_COMPLETION ? "cmpl" : "chatcmpl", id);
    cJSON_AddStringToObject(out, "id", full_id);
    free(full_id);
    cJSON_AddStringToObject(out, "object", r->kind == K_COMPLETION ? "text_completion" : "chat.completion");
    add_int(out, "created", (double)time(NULL));
    cJSON_AddStringToObject(out, "model", r->model);
    cJSON *choices = cJSON_AddArrayToObject(out, "choices");
    for (int i = 0; i < n && !e.http; i++) {
        const cJSON *c = ts[i].result;
        if (!c) {
            err_set(&e, 400, ERR_INTERNAL_ERROR, NULL, "%s", ts[i].why ? ts[i].why : "worker failed");
            break;
        }
        const cJSON *code = json_get(c, "error_code"), *text = json_get(c, "text");
        if (cJSON_IsNumber(code) && code->valueint != 0) {
            err_set(&e, 400, code->valueint, NULL, "%s", cJSON_IsString(text) ? text->valuestring : "worker error");
            break;
        }
        const char *t = cJSON_IsString(text) ? text->valuestring : "";
        bool tool_calls_made = false;
        cJSON *ch = cJSON_CreateObject();
        add_int(ch, "index", i);
        const cJSON *lp = json_get(c, "logprobs");
        if (r->kind == K_COMPLETION) {
            cJSON_AddStringToObject(ch, "text", t);
            if (cJSON_IsObject(lp)) cJSON_AddItemToObject(ch, "logprobs", completion_logprobs(lp, 0, logprobs_len(lp)));
            else cJSON_AddNullToObject(ch, "logprobs");
        } else {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            if (p->tools_active) tool_message(msg, t, r->tools.tools, &tool_calls_made);
            else cJSON_AddStringToObject(msg, "content", t);
            if (r->chat_logprobs && cJSON_IsObject(lp))
                cJSON_AddItemToObject(ch, "logprobs", chat_logprobs(lp, 0, logprobs_len(lp)));
            else if (r->chat_logprobs)
                cJSON_AddNullToObject(ch, "logprobs");
        }
        const char *fin = finish_of(c, "stop");
        if (tool_calls_made && fin && !strcmp(fin, "stop")) fin = "tool_calls";
        if (fin) cJSON_AddStringToObject(ch, "finish_reason", fin);
        else cJSON_AddNullToObject(ch, "finish_reason");
        cJSON_AddItemToArray(choices, ch);
        usage_add(&u, c);
    }
    free_tasks(ts, n);
    if (e.http) {
        reply_err(reply, &e);
        err_free(&e);
        cJSON_Delete(out);
        return;
    }
    cJSON_AddItemToObject(out, "usage", usage_json(&u, true));
    fc_ollama_observe(a->ollama, r->model, fc_json_long(u.prompt), fc_json_long(u.completion), ttft, first_to_last);
    reply_obj(reply, out);
}

/* ---- streamed generation: the handler's thread relays ---- */

typedef struct job {
    fc_openai_api *a;
    fc_http_stream *st;
    enum req_kind kind;
    char id[48];
    double created;
    char *model;
    char *addr;
    char **payloads;    /* one per choice, in index order */
    int n_payloads;
    bool include_usage, chat_logprobs;
    bool client_gone, done;
    atomic_bool gone_flag; /* set by the disconnect callback */
    /* the choice being relayed */
    int index;
    fc_nulsplit *split; /* the worker's NUL-delimited chunks */
    fc_str prev;            /* text already sent (U+FFFD removed) */
    fc_str scratch;
    int lp_sent;        /* logprob entries already sent */
    bool saw_finish, saw_chunk;
    cJSON *last;        /* the choice's last chunk (usage) */
    double since;       /* fc_time_sec() of the worker's last sign of life */
    const char *stop_why; /* why job_keep_going ended the worker request */
    usage u;
    fc_str deferred;        /* finish events held back until all choices end */
    bool tools;         /* the answer is parsed for tool calls */
    const cJSON *tool_defs; /* the request's tools (borrowed: job_main runs within the handler) */
    const cJSON *tool_lp;   /* the chunk being parsed: its logprobs, up to tool_lp_to */
    int tool_lp_to;
    fc_tool_parser *tp; /* the choice's parser when tools */
    double t0, t_first, t_last; /* /metrics: request start, first and last text of choice 0 */
} job;

static bool job_write(job *j, const char *s, size_t n)
{
    if (j->client_gone) return false;
    if (!fc_http_stream_write(j->st, s, n)) j->client_gone = true;
    return !j->client_gone;
}

static bool job_event(job *j, cJSON *o)
{
    char *s = json_print(o);
    cJSON_Delete(o);
    fc_str ev = FC_STR_INIT;
    fc_str_puts(&ev, "data: ");
    fc_str_puts(&ev, s);
    fc_str_puts(&ev, "\n\n");
    free(s);
    bool ok = job_write(j, ev.p, ev.len);
    fc_str_free(&ev);
    return ok;
}

static cJSON *chunk_head(const job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->kind == K_COMPLETION ? "text_completion" : "chat.completion.chunk");
    add_int(o, "created", j->created);
    cJSON_AddStringToObject(o, "model", j->model);
    return o;
}

static void chunk_tail(const job *j, cJSON *o)
{
    if (j->include_usage) cJSON_AddNullToObject(o, "usage");
}

/* One choice's event: the text delta (or the role for the first chat event),
 * the logprobs of its tokens, the finish reason. */
static cJSON *choice_event(const job *j, const char *role, const char *delta, const cJSON *lp, int lp_from, int lp_to,
                           const char *finish)
{
    cJSON *o = chunk_head(j);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    add_int(ch, "index", j->index);
    if (j->kind == K_COMPLETION) {
        cJSON_AddStringToObject(ch, "text", delta ? delta : "");
        if (cJSON_IsObject(lp)) cJSON_AddItemToObject(ch, "logprobs", completion_logprobs(lp, lp_from, lp_to));
        else cJSON_AddNullToObject(ch, "logprobs");
    } else {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role) cJSON_AddStringToObject(d, "role", role);
        if (delta) cJSON_AddStringToObject(d, "content", delta);
        if (j->chat_logprobs) {
            if (cJSON_IsObject(lp) && lp_to > lp_from)
                cJSON_AddItemToObject(ch, "logprobs", chat_logprobs(lp, lp_from, lp_to));
            else cJSON_AddNullToObject(ch, "logprobs");
        }
    }
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    chunk_tail(j, o);
    return o;
}

/* The error event FastChat sends ({"text","error_code"}) with an OpenAI
 * "error" object that makes the official clients raise; then [DONE]. */
static void job_fail(job *j, const char *text, int code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", text);
    add_int(o, "error_code", code);
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", text);
    cJSON_AddStringToObject(e, "type", err_type(code));
    cJSON_AddNullToObject(e, "param");
    add_int(e, "code", code);
    job_event(j, o);
    job_write(j, "data: [DONE]\n\n", 14);
    j->done = true;
}

/* The parser's events as OpenAI's chunks: content deltas, then per call a
 * chunk with index, id, type, name and arguments "", then argument
 * fragments. */
static void job_tool_ev(const fc_tool_ev *ev, void *user)
{
    job *j = user;
    /* the logprobs of the tokens read so far go with the next event */
    int lp_from = j->lp_sent;
    if (j->tool_lp_to > j->lp_sent) j->lp_sent = j->tool_lp_to;
    if (ev->kind == FC_TOOL_EV_CONTENT) {
        char *text = fc_xasprintf("%.*s", (int)ev->len, ev->text);
        job_event(j, choice_event(j, NULL, text, j->tool_lp, lp_from, j->lp_sent, NULL));
        free(text);
        return;
    }
    cJSON *o = choice_event(j, NULL, NULL, j->tool_lp, lp_from, j->lp_sent, NULL);
    cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(json_get(o, "choices"), 0), "delta");
    cJSON *call = cJSON_CreateObject();
    add_int(call, "index", ev->index);
    if (ev->kind == FC_TOOL_EV_START) {
        cJSON_AddStringToObject(call, "id", ev->id);
        cJSON_AddStringToObject(call, "type", "function");
    }
    cJSON *fn = cJSON_AddObjectToObject(call, "function");
    if (ev->kind == FC_TOOL_EV_START) cJSON_AddStringToObject(fn, "name", ev->name);
    char *args = fc_xasprintf("%.*s", (int)ev->len, ev->text);
    cJSON_AddStringToObject(fn, "arguments", args);
    free(args);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), call);
    job_event(j, o);
}

/* job_chunk with tools: the delta goes through the parser; the finish
 * reason is "tool_calls" when a call was made. */
static bool job_tool_chunk(job *j, const char *delta, const char *finish, const cJSON *lp, int lp_to)
{
    j->tool_lp = cJSON_IsObject(lp) ? lp : NULL;
    j->tool_lp_to = j->tool_lp ? lp_to : 0;
    if (delta) fc_tool_parser_feed(j->tp, delta, strlen(delta));
    if (finish && !j->saw_finish) {
        fc_tool_parser_finish(j->tp);
        const char *f = !strcmp(finish, "stop") && fc_tool_parser_n_calls(j->tp) ? "tool_calls" : finish;
        int lp_from = j->lp_sent; /* what no event took yet */
        if (j->tool_lp_to > j->lp_sent) j->lp_sent = j->tool_lp_to;
        cJSON *ev = choice_event(j, NULL, NULL, j->tool_lp, lp_from, j->lp_sent, f);
        char *s2 = json_print(ev);
        cJSON_Delete(ev);
        fc_str_puts(&j->deferred, "data: ");
        fc_str_puts(&j->deferred, s2);
        fc_str_puts(&j->deferred, "\n\n");
        free(s2);
    }
    if (finish) j->saw_finish = true;
    return !j->client_gone;
}

/* Handles one worker chunk; false to stop relaying. */
static bool job_chunk(job *j, const char *s, size_t n)
{
    cJSON *c = cJSON_ParseWithLength(s, n);
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        char *msg = fc_xasprintf("%s\n\n(malformed chunk from worker %s)", SERVER_ERROR_MSG, j->addr);
        job_fail(j, msg, ERR_INTERNAL_ERROR);
        free(msg);
        return false;
    }
    j->saw_chunk = true;
    const cJSON *code = json_get(c, "error_code");
    if (cJSON_IsNumber(code) && code->valueint != 0) {
        const cJSON *t = json_get(c, "text");
        job_fail(j, cJSON_IsString(t) ? t->valuestring : SERVER_ERROR_MSG, code->valueint);
        cJSON_Delete(c);
        return false;
    }
    const cJSON *text = json_get(c, "text");
    const char *t = cJSON_IsString(text) ? text->valuestring : "";
    strip_fffd(t, strlen(t), &j->scratch);
    const char *delta = NULL;
    if (j->scratch.len > j->prev.len) {
        size_t from = j->prev.len;
        /* never start inside a UTF-8 sequence, should the text not extend the last */
        while (from < j->scratch.len && ((unsigned char)j->scratch.p[from] & 0xC0) == 0x80) from++;
        if (from < j->scratch.len) delta = j->scratch.p + from;
        fc_str_truncate(&j->prev, 0);
        fc_str_putn(&j->prev, j->scratch.p, j->scratch.len);
    }
    const char *finish = finish_of(c, NULL);
    const cJSON *lp = json_get(c, "logprobs");
    int lp_to = cJSON_IsObject(lp) ? logprobs_len(lp) : 0;
    if (lp_to < j->lp_sent) lp_to = j->lp_sent;
    if (delta && j->index == 0) { /* /metrics */
        j->t_last = fc_time_sec();
        if (j->t_first == 0) j->t_first = j->t_last;
    }
    cJSON_Delete(j->last);
    j->last = c;
    if (j->tp) return job_tool_chunk(j, delta, finish, lp, lp_to);
    if (!delta) {
        if (finish && !j->saw_finish) {
            cJSON *ev;
            if (j->kind == K_COMPLETION) {
                ev = choice_event(j, NULL, "", lp, j->lp_sent, lp_to, finish);
            } else { /* delta {} */
                ev = choice_event(j, NULL, NULL, lp, j->lp_sent, lp_to, finish);
            }
            j->lp_sent = lp_to;
            char *s2 = json_print(ev);
            cJSON_Delete(ev);
            fc_str_puts(&j->deferred, "data: ");
            fc_str_puts(&j->deferred, s2);
            fc_str_puts(&j->deferred, "\n\n");
            free(s2);
        }
        if (finish) j->saw_finish = true;
        return true;
    }
    cJSON *ev = choice_event(j, NULL, delta, lp, j->lp_sent, lp_to, finish);
    j->lp_sent = lp_to;
    if (finish) j->saw_finish = true;
    return job_event(j, ev);
}

static bool job_msg(const char *msg, size_t len, void *user)
{
    job *j = user;
    return len == 0 || job_chunk(j, msg, len);
}

static bool job_on_data(const char *data, size_t len, void *user)
{
    job *j = user;
    j->since = fc_time_sec();
    if (j->done || j->client_gone) return false;
    return fc_nulsplit_feed(j->split, data, len, job_msg, j);
}

static void job_on_disconnect(void *user)
{
    job *j = user; /* job_keep_going sees it within 100 ms and aborts the worker request */
    atomic_store(&j->gone_flag, true);
}

/* The relay's watch (every 100 ms): the client, the server, the worker. */
static bool job_keep_going(void *user)
{
    job *j = user;
    if (j->done || j->client_gone || atomic_load(&j->gone_flag)) return false;
    if (atomic_load(&j->a->stopping)) {
        j->stop_why = "the server is shutting down";
        return false;
    }
    if (fc_time_sec() - j->since < STALL_PROBE_S) return true;
    if (worker_alive(j->addr)) {
        j->since = fc_time_sec();
        return true;
    }
    j->stop_why = "the worker stopped answering";
    return false;
}

static void *job_main(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->n_payloads && !j->done && !j->client_gone; i++) {
        j->index = i;
        fc_nulsplit_free(j->split);
        j->split = fc_nulsplit_new(0);
        fc_str_truncate(&j->prev, 0);
        j->lp_sent = 0;
        j->saw_finish = j->saw_chunk = false;
        cJSON_Delete(j->last);
        j->last = NULL;
        fc_tool_parser_free(j->tp);
        j->tp = j->tools ? fc_tool_parser_new(job_tool_ev, j) : NULL;
        if (j->tp) fc_tool_parser_set_tools(j->tp, j->tool_defs);
        if (j->kind != K_COMPLETION) {
            cJSON *first = choice_event(j, "assistant", NULL, NULL, 0, 0, NULL);
            if (!job_event(j, first)) break;
        }
        if (atomic_load(&j->a->stopping)) {
            j->stop_why = "the server is shutting down";
            char *msg = fc_xasprintf("%s\n\n(%s)", SERVER_ERROR_MSG, j->stop_why);
            job_fail(j, msg, ERR_INTERNAL_ERROR);
            free(msg);
            break;
        }
        char *url = fc_xasprintf("%s/worker_generate_stream", j->addr);
        fc_http_response resp = {0};
        fc_http_call call = {.keep_going = job_keep_going, .user = j};
        j->since = fc_time_sec();
        bool ok = fc_http_post_stream_ex(url, j->payloads[i], strlen(j->payloads[i]), j->a->worker_timeout_s, &call,
                                         job_on_data, j, &resp);
        free(url);
        size_t tail_len = 0;
        const char *tail = fc_nulsplit_tail(j->split, &tail_len);
        if (!j->done && !j->client_gone && ok && !fc_nulsplit_error(j->split) && tail_len)
            job_chunk(j, tail, tail_len); /* a last chunk without its NUL */
        if (!j->done && !j->client_gone) {
            if (!ok || resp.status != 200 || !j->saw_finish) {
                char *msg;
                if (j->stop_why)
                    msg = fc_xasprintf("%s\n\n(worker %s: %s)", SERVER_ERROR_MSG, j->addr, j->stop_why);
                else if (fc_nulsplit_error(j->split))
                    msg = fc_xasprintf("%s\n\n(worker %s sent an oversized chunk)", SERVER_ERROR_MSG, j->addr);
                else if (!ok)
                    msg = fc_xasprintf("%s\n\n(worker %s failed mid-stream: %s)", SERVER_ERROR_MSG, j->addr, resp.error);
                else if (resp.status != 200)
                    msg = fc_xasprintf("%s\n\n(worker %s: HTTP %d)", SERVER_ERROR_MSG, j->addr, resp.status);
                else
                    msg = fc_xasprintf("%s\n\n(worker %s ended the stream without a finish reason)", SERVER_ERROR_MSG,
                                    j->addr);
                FC_LOG_WARN("api: %s", msg);
                job_fail(j, msg, ERR_INTERNAL_ERROR);
                free(msg);
            } else if (j->last) {
                usage_add(&j->u, j->last);
            }
        }
        fc_http_response_free(&resp);
    }
    if (!j->done && !j->client_gone) {
        if (j->deferred.len) job_write(j, j->deferred.p, j->deferred.len);
        if (j->include_usage) {
            cJSON *o = chunk_head(j);
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", usage_json(&j->u, true));
            job_event(j, o);
        }
        job_write(j, "data: [DONE]\n\n", 14);
        fc_ollama_observe(j->a->ollama, j->model, fc_json_long(j->u.prompt), fc_json_long(j->u.completion),
                          j->t_first > 0 ? j->t_first - j->t0 : -1,
                          j->t_first > 0 && j->n_payloads == 1 ? j->t_last - j->t_first : -1);
    }
    fc_http_stream_close(j->st);

    fc_openai_api *a = j->a;
    for (int i = 0; i < j->n_payloads; i++) free(j->payloads[i]);
    free(j->payloads);
    free(j->model);
    free(j->addr);
    fc_nulsplit_free(j->split);
    fc_str_free(&j->prev);
    fc_str_free(&j->scratch);
    fc_str_free(&j->deferred);
    cJSON_Delete(j->last);
    fc_tool_parser_free(j->tp);
    free(j);
    pthread_mutex_lock(&a->mu);
    a->n_jobs--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void generate_streaming(fc_openai_api *a, const gen_req *r, const prep *p, fc_http_reply *reply)
{
    job *j = fc_xcalloc(1, sizeof *j);
    j->a = a;
    j->kind = r->kind;
    char id[32];
    short_uuid(id);
    snprintf(j->id, sizeof j->id, "%s-%s", r->kind == K_COMPLETION ? "cmpl" : "chatcmpl", id);
    j->created = (double)time(NULL);
    j->model = fc_xstrdup(r->model);
    j->addr = fc_xstrdup(p->addr);
    j->include_usage = r->include_usage;
    j->chat_logprobs = r->chat_logprobs;
    j->tools = p->tools_active;
    j->tool_defs = r->tools.tools;
    j->t0 = metrics_t0 > 0 ? metrics_t0 : fc_time_sec();
    atomic_init(&j->gone_flag, false);
    j->n_payloads = p->n_prompts * (int)r->n;
    j->payloads = fc_xcalloc((size_t)j->n_payloads, sizeof(char *));
    for (int k = 0; k < p->n_prompts; k++)
        for (int i = 0; i < r->n; i++)
            j->payloads[k * r->n + i] =
                with_tool_grammar(prompt_payload(r, p->conv, p->prompts[k], k, p->max_new_tokens, i), p);
    FC_LOG_DEBUG("api: %d x /worker_generate_stream on %s: %s", j->n_payloads, j->addr, j->payloads[0]);
    j->st = fc_http_reply_stream(reply, 200, "text/event-stream");
    fc_http_stream_on_disconnect(j->st, job_on_disconnect, j);

    pthread_mutex_lock(&a->mu);
    a->n_jobs++;
    pthread_mutex_unlock(&a->mu);
    job_main(j); /* on this handler's own thread: the stream is already open */
}

/* ---- handlers ---- */

static void handle_generation(fc_openai_api *a, const fc_http_request *hr, fc_http_reply *reply, enum req_kind kind)
{
    metrics_t0 = fc_time_sec();
    gen_req r;
    api_err e = {0};
    prep p = {0};
    if (!parse_gen_req(a, hr, kind, &r, &e) || !prepare(a, hr, &r, &p, &e)) {
        reply_err(reply, &e);
        err_free(&e);
        req_free(&r);
        return;
    }
    fc_ollama_in_flight(a->ollama, 1);
    if (r.stream) generate_streaming(a, &r, &p, reply);
    else generate_blocking(a, hr, &r, &p, reply);
    fc_ollama_in_flight(a->ollama, -1);
    prep_free(&p);
    req_free(&r);
}

static void h_chat(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (auth_ok(user, req, reply)) handle_generation(user, req, reply, K_CHAT);
}

static void h_api_chat(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (auth_ok(user, req, reply)) handle_generation(user, req, reply, K_API_CHAT);
}

static void h_completions(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (auth_ok(user, req, reply)) handle_generation(user, req, reply, K_COMPLETION);
}

static void h_models(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_openai_api *a = user;
    if (!auth_ok(a, req, reply)) return;
    ctl_refresh(a);
    api_err e = {0};
    cJSON *models = ctl_list_models(a, &e);
    if (!models) {
        reply_err(reply, &e);
        err_free(&e);
        return;
    }
    int n = cJSON_GetArraySize(models);
    const char **names = fc_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, models) if (cJSON_IsString(it)) names[k++] = it->valuestring;
    for (int i = 1; i < k; i++) /* models.sort() */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    double now = (double)time(NULL);
    for (int i = 0; i < k; i++) {
        cJSON *card = cJSON_CreateObject();
        cJSON_AddStringToObject(card, "id", names[i]);
        cJSON_AddStringToObject(card, "object", "model");
        add_int(card, "created", now);
        cJSON_AddStringToObject(card, "owned_by", "fastchat");
        cJSON_AddStringToObject(card, "root", names[i]);
        cJSON_AddNullToObject(card, "parent");
        cJSON *perms = cJSON_AddArrayToObject(card, "permission");
        cJSON *perm = cJSON_CreateObject();
        char pid[32];
        short_uuid(pid);
        char *perm_id = fc_xasprintf("modelperm-%s", pid);
        cJSON_AddStringToObject(perm, "id", perm_id);
        free(perm_id);
        cJSON_AddStringToObject(perm, "object", "model_permission");
        add_int(perm, "created", now);
        cJSON_AddBoolToObject(perm, "allow_create_engine", false);
        cJSON_AddBoolToObject(perm, "allow_sampling", true);
        cJSON_AddBoolToObject(perm, "allow_logprobs", true);
        cJSON_AddBoolToObject(perm, "allow_search_indices", true);
        cJSON_AddBoolToObject(perm, "allow_view", true);
        cJSON_AddBoolToObject(perm, "allow_fine_tuning", false);
        cJSON_AddStringToObject(perm, "organization", "*");
        cJSON_AddNullToObject(perm, "group");
        cJSON_AddBoolToObject(perm, "is_blocking", false);
        cJSON_AddItemToArray(perms, perm);
        cJSON_AddItemToArray(data, card);
    }
    free(names);
    cJSON_Delete(models);
    reply_obj(reply, out);
}

/* Parses and validates an embeddings request (the model from the body, else
 * url_model); without a server (a NULL) the model is not checked. */
static bool parse_embed_req(fc_openai_api *a, const fc_http_request *hr, const char *url_model, gen_req *r,
                            api_err *e)
{
    memset(r, 0, sizeof *r);
    r->kind = K_EMBEDDINGS;
    if (fc_json_has_nul(hr->body, hr->body_len)) {
        err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, NULL, "1 validation error for EmbeddingsRequest\nbody\n  %s",
                FC_JSON_NUL_MSG);
        return false;
    }
    r->body = cJSON_ParseWithLength(hr->body, hr->body_len);
    if (!cJSON_IsObject(r->body)) {
        err_set(e, 400, ERR_VALIDATION_TYPE_ERROR, NULL, "1 validation error for EmbeddingsRequest\nbody\n  %s",
                r->body ? "Input should be a valid dictionary" : "JSON decode error");
        return false;
    }
    const cJSON *model = json_get(r->body, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) {
        type_error(e, r->kind, "model", "Input should be a valid string");
        return false;
    }
    r->model = cJSON_IsString(model) ? model->valuestring : url_model;
    if (!r->model) {
        type_error(e, r->kind, "model", "Field required");
        return false;
    }
    if (!read_texts(r, "input", e)) return false;
    if (r->n_prompts > MAX_EMBED_INPUTS) {
        err_set(e, 400, ERR_PARAM_OUT_OF_RANGE, "input", "%d is greater than the maximum of %d - 'input'",
                r->n_prompts, MAX_EMBED_INPUTS);
        return false;
    }
    const cJSON *fmt = json_get(r->body, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt) && !cJSON_IsString(fmt)) {
        type_error(e, r->kind, "encoding_format", "Input should be a valid string");
        return false;
    }
    r->encoding_format = cJSON_IsString(fmt) ? fmt->valuestring : NULL;
    return !a || check_model(a, r->model, e);
}

/* The /worker_get_embeddings body for inputs [start, start + bs). */
static char *embed_payload(const gen_req *r, int start, int bs)
{
    cJSON *pl = cJSON_CreateObject();
    cJSON_AddStringToObject(pl, "model", r->model);
    cJSON *in = cJSON_AddArrayToObject(pl, "input");
    for (int i = start; i < r->n_prompts && i < start + bs; i++)
        cJSON_AddItemToArray(in, cJSON_CreateString(r->prompts[i]));
    if (r->encoding_format) cJSON_AddStringToObject(pl, "encoding_format", r->encoding_format);
    else cJSON_AddNullToObject(pl, "encoding_format");
    char *payload = json_print(pl);
    cJSON_Delete(pl);
    return payload;
}

/* What an embeddings call to a worker watches (every 100 ms). */
typedef struct embed_watch {
    fc_openai_api *a;
    const fc_http_request *hr;
    const char *addr;
    double since;
    bool stopped, dead;
} embed_watch;

static bool embed_keep_going(void *user)
{
    embed_watch *w = user;
    if (must_stop(w->a, w->hr)) return !(w->stopped = true);
    if (fc_time_sec() - w->since < STALL_PROBE_S) return true;
    if (worker_alive(w->addr)) {
        w->since = fc_time_sec();
        return true;
    }
    w->stopped = w->dead = true;
    return false;
}

/* /v1/embeddings and /v1/engines/{model}/embeddings */
static void embeddings(fc_openai_api *a, const fc_http_request *hr, fc_http_reply *reply, const char *url_model)
{
    gen_req r;
    api_err e = {0};
    cJSON *out = NULL;
    if (!parse_embed_req(a, hr, url_model, &r, &e)) goto done;

    /* the token bound before any compute: a token is at least one byte (plus
     * the few special ones a tokenizer adds), so only long inputs are counted */
    size_t bytes = 0;
    for (int i = 0; i < r.n_prompts; i++) bytes += strlen(r.prompts[i]) + 4;
    if (bytes > MAX_EMBED_TOKENS) {
        char *addr = worker_address(a, r.model, &e);
        long total = 0;
        for (int i = 0; addr && i < r.n_prompts && !e.http && total <= MAX_EMBED_TOKENS; i++) {
            if (must_stop(a, hr)) {
                err_stopped(a, &e);
                break;
            }
            long count = 0;
            if (worker_number(a, addr, "/count_token", r.model, r.prompts[i], "count", &count, &e) != UP_OK) break;
            total += count;
        }
        free(addr);
        if (!e.http && total > MAX_EMBED_TOKENS)
            err_set(&e, 400, ERR_PARAM_OUT_OF_RANGE, "input",
                    "the inputs hold more than %d tokens: at most %d per request - 'input'", MAX_EMBED_TOKENS,
                    MAX_EMBED_TOKENS);
        if (e.http) goto done;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    double tokens = 0;
    int bs = a->embed_batch;
    for (int start = 0; start < r.n_prompts && !e.http; start += bs) {
        if (must_stop(a, hr)) {
            err_stopped(a, &e);
            break;
        }
        char *payload = embed_payload(&r, start, bs);
        cJSON *res = NULL;
        for (int attempt = 0; attempt < 3 && !e.http; attempt++) {
            char *addr = worker_address(a, r.model, &e);
            if (!addr) break;
            char *why = NULL;
            embed_watch wt = {.a = a, .hr = hr, .addr = addr, .since = fc_time_sec()};
            fc_http_call call = {.keep_going = embed_keep_going, .user = &wt};
            enum up_status st =
                up_post_call(addr, "/worker_get_embeddings", payload, GENERATE_TIMEOUT_S, &call, &res, &why);
            if (wt.stopped) {
                free(why);
                free(addr);
                cJSON_Delete(res);
                res = NULL;
                if (wt.dead) err_set(&e, 400, ERR_INTERNAL_ERROR, NULL, "%s\n\n(worker stopped answering)",
                                     SERVER_ERROR_MSG);
                else err_stopped(a, &e);
                break;
            }
            if (st == UP_DOWN) {
                FC_LOG_WARN("api: %s; refreshing the controller", why);
                free(why);
                free(addr);
                ctl_refresh(a);
                continue;
            }
            if (st != UP_OK) err_set(&e, 400, ERR_INTERNAL_ERROR, NULL, "%s", why);
            free(why);
            free(addr);
            break;
        }
        free(payload);
        if (!res) {
            err_set(&e, 500, ERR_CONTROLLER_NO_WORKER, "model", "No available worker for %s", r.model);
            break;
        }
        if (e.http) {
            cJSON_Delete(res);
            break;
        }
        const cJSON *code = json_get(res, "error_code"), *emb = json_get(res, "embedding");
        if (cJSON_IsNumber(code) && code->valueint != 0) {
            const cJSON *t = json_get(res, "text");
            err_set(&e, 400, code->valueint, NULL, "%s", cJSON_IsString(t) ? t->valuestring : "worker error");
        } else if (!cJSON_IsArray(emb)) {
            err_set(&e, 400, ERR_INTERNAL_ERROR, NULL, "worker: malformed /worker_get_embeddings answer");
        } else {
            int i = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, emb) {
                cJSON *d = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "object", "embedding");
                cJSON_AddItemToObject(d, "embedding", cJSON_Duplicate(v, true));
                add_int(d, "index", start + i++);
                cJSON_AddItemToArray(data, d);
            }
            const cJSON *tn = json_get(res, "token_num");
            if (cJSON_IsNumber(tn)) tokens += tn->valuedouble;
            if (tokens > MAX_EMBED_TOKENS)
                err_set(&e, 400, ERR_PARAM_OUT_OF_RANGE, "input",
                        "the inputs hold more than %d tokens: at most %d per request - 'input'", MAX_EMBED_TOKENS,
                        MAX_EMBED_TOKENS);
        }
        cJSON_Delete(res);
    }
    if (!e.http) {
        cJSON_AddStringToObject(out, "model", r.model);
        fc_ollama_observe(a->ollama, r.model, fc_json_long(tokens), 0, -1, -1);
        usage u = {.prompt = tokens, .total = tokens};
        cJSON_AddItemToObject(out, "usage", usage_json(&u, false));
    }
done:
    if (e.http) {
        reply_err(reply, &e);
        cJSON_Delete(out);
    } else {
        reply_obj(reply, out);
    }
    err_free(&e);
    req_free(&r);
}

static void h_embeddings(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (auth_ok(user, req, reply)) embeddings(user, req, reply, NULL);
}

static void h_engines(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    static const char prefix[] = "/v1/engines/", suffix[] = "/embeddings";
    const char *p = req->path + strlen(prefix);
    size_t n = strlen(p), ns = strlen(suffix);
    if (strncmp(req->path, prefix, strlen(prefix)) || n <= ns || strcmp(p + n - ns, suffix)) {
        fc_http_reply_json(reply, 404, "{\"detail\":\"Not Found\"}");
        return;
    }
    if (!auth_ok(user, req, reply)) return;
    char *model = fc_xmalloc(n - ns + 1);
    memcpy(model, p, n - ns);
    model[n - ns] = '\0';
    embeddings(user, req, reply, model);
    free(model);
}

static void h_token_check(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_openai_api *a = user;
    if (!auth_ok(a, req, reply)) return;
    api_err e = {0};
    cJSON *body = fc_json_has_nul(req->body, req->body_len) ? NULL : cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *prompts = json_get(body, "prompts");
    cJSON *out = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(out, "prompts");
    if (!cJSON_IsArray(prompts)) {
        err_set(&e, 400, ERR_VALIDATION_TYPE_ERROR, "prompts",
                "1 validation error for APITokenCheckRequest\nprompts\n  Input should be a list of "
                "{\"model\", \"prompt\", \"max_tokens\"} objects");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, prompts) {
        if (e.http) break;
        const cJSON *m = json_get(it, "model"), *p = json_get(it, "prompt"), *mt = json_get(it, "max_tokens");
        if (!cJSON_IsString(m) || !cJSON_IsString(p) || !cJSON_IsNumber(mt)) {
            err_set(&e, 400, ERR_VALIDATION_TYPE_ERROR, "prompts",
                    "1 validation error for APITokenCheckRequest\nprompts\n  each item needs a string \"model\", "
                    "a string \"prompt\" and an integer \"max_tokens\"");
            break;
        }
        long ctx = 0, count = 0;
        enum up_status st = UP_DOWN;
        for (int attempt = 0; attempt < 3 && st == UP_DOWN && !e.http; attempt++) {
            char *addr = worker_address(a, m->valuestring, &e);
            if (!addr) break;
            st = worker_number(a, addr, "/model_details", m->valuestring, p->valuestring, "context_length", &ctx, &e);
            if (st == UP_OK)
                st = worker_number(a, addr, "/count_token", m->valuestring, p->valuestring, "count", &count, &e);
            free(addr);
            if (st == UP_DOWN) ctl_refresh(a);
        }
        if (st != UP_OK) {
            err_set(&e, 500, ERR_CONTROLLER_NO_WORKER, "model", "No available worker for %s", m->valuestring);
            break;
        }
        cJSON *item = cJSON_CreateObject();
        cJSON_AddBoolToObject(item, "fits", count + fc_json_long(mt->valuedouble) <= ctx);
        add_int(item, "tokenCount", (double)count);
        add_int(item, "contextLength", (double)ctx);
        cJSON_AddItemToArray(list, item);
    }
    cJSON_Delete(body);
    if (e.http) {
        reply_err(reply, &e);
        err_free(&e);
        cJSON_Delete(out);
        return;
    }
    reply_obj(reply, out);
}

/* ---- checking a request offline (tests, fuzzing) ---- */

int fc_openai_api_check_request(const char *path, const char *body, size_t len, const char *conv_template, char **out)
{
    enum req_kind kind;
    if (!strcmp(path, "/v1/chat/completions")) kind = K_CHAT;
    else if (!strcmp(path, "/v1/completions")) kind = K_COMPLETION;
    else if (!strcmp(path, "/api/v1/chat/completions")) kind = K_API_CHAT;
    else if (!strcmp(path, "/v1/embeddings")) kind = K_EMBEDDINGS;
    else {
        *out = fc_xstrdup("{\"detail\":\"Not Found\"}");
        return 404;
    }
    char *copy = fc_xmalloc(len + 1); /* the server hands handlers a NUL-terminated body */
    if (len) memcpy(copy, body, len);
    copy[len] = 0;
    fc_http_request hr = {.method = "POST", .path = path, .body = copy, .body_len = len, .peer = "check"};
    gen_req r;
    api_err e = {0};
    cJSON *res = NULL;
    fc_conv *conv = NULL;
    prep tp = {0}; /* the tool settings render_tools finds */
    if (kind == K_EMBEDDINGS) {
        if (parse_embed_req(NULL, &hr, NULL, &r, &e)) {
            res = cJSON_CreateArray();
            for (int start = 0; start < r.n_prompts; start += 4) {
                char *pl = embed_payload(&r, start, 4);
                cJSON_AddItemToArray(res, cJSON_Parse(pl));
                free(pl);
            }
        }
    } else if (parse_gen_req(NULL, &hr, kind, &r, &e)) {
        conv = fc_conv_new(conv_template ? conv_template : "chatml");
        if (!conv) err_set(&e, 400, ERR_INTERNAL_ERROR, NULL, "no conversation template %s", conv_template);
        char *prompt = NULL;
        if (conv && kind != K_COMPLETION) {
            fc_conv *c = fc_conv_copy(conv);
            prompt = fc_tool_req_needed(&r.tools) && cJSON_IsArray(r.messages)
                         ? render_tools(NULL, &tp, &r, c, &e)
                         : render_chat(c, r.messages, &e);
            fc_conv_free(c);
        }
        if (!e.http) {
            long mt = r.has_max_tokens && r.max_tokens < CHECK_N_CTX ? r.max_tokens : CHECK_N_CTX;
            res = cJSON_CreateArray();
            for (int i = 0; i < (prompt ? 1 : r.n_prompts); i++) {
                char *pl = with_tool_grammar(prompt_payload(&r, conv, prompt ? prompt : r.prompts[i], i, mt, 0), &tp);
                cJSON_AddItemToArray(res, cJSON_Parse(pl));
                free(pl);
            }
        }
        free(prompt);
    }
    int status = 200;
    if (e.http) {
        cJSON *b = error_body(e.msg, e.code, e.param);
        *out = json_print(b);
        cJSON_Delete(b);
        status = e.http;
        cJSON_Delete(res);
    } else {
        *out = json_print(res);
        cJSON_Delete(res);
    }
    fc_conv_free(conv);
    free(tp.tool_grammar);
    err_free(&e);
    req_free(&r);
    free(copy);
    return status;
}

/* ---- lifetime ---- */

fc_openai_api *fc_openai_api_start(const fc_openai_api_params *p)
{
    fc_openai_api *a = fc_xcalloc(1, sizeof *a);
    const char *ctl =
        p->controller_address && *p->controller_address ? p->controller_address : "http://localhost:21001";
    a->ctl = fc_xstrdup(ctl);
    size_t n = strlen(a->ctl);
    while (n && a->ctl[n - 1] == '/') a->ctl[--n] = '\0';
    for (int i = 0; i < p->n_api_keys && p->api_keys; i++)
        if (p->api_keys[i] && *p->api_keys[i]) {
            a->keys = fc_xrealloc(a->keys, sizeof(char *) * (size_t)(a->n_keys + 1));
            a->keys[a->n_keys++] = fc_xstrdup(p->api_keys[i]);
        }
    a->worker_timeout_s = env_num("FASTCHAT_WORKER_API_TIMEOUT", 100);
    a->embed_batch = (int)env_num("FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE", 4);
    if (a->embed_batch < 1) a->embed_batch = 4;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    atomic_init(&a->stopping, false);
    fc_http_global_init();

    fc_http_server_params hp = {0};
    hp.host = p->host;
    hp.port = p->port;
    hp.allow_origins = p->allow_origins ? p->allow_origins : "*";
    hp.allow_methods = p->allow_methods ? p->allow_methods : "*";
    hp.allow_headers = p->allow_headers ? p->allow_headers : "*";
    hp.allow_credentials = p->allow_credentials;
    a->http = fc_http_server_new(&hp);
    if (!a->http) goto fail;
    fc_http_server_route(a->http, "GET", "/v1/models", h_models, a);
    fc_http_server_route(a->http, "POST", "/v1/chat/completions", h_chat, a);
    fc_http_server_route(a->http, "POST", "/v1/completions", h_completions, a);
    fc_http_server_route(a->http, "POST", "/v1/embeddings", h_embeddings, a);
    fc_http_server_route(a->http, "POST", "/v1/engines/*", h_engines, a);
    fc_http_server_route(a->http, "POST", "/api/v1/token_check", h_token_check, a);
    fc_http_server_route(a->http, "POST", "/api/v1/chat/completions", h_api_chat, a);
    a->ollama = fc_ollama_mount(a->http, a, p->host, a->ctl);
    a->responses = fc_responses_mount(a->http, a, p->host);
    if (p->mount) p->mount(a->http, p->mount_user);
    if (fc_http_server_start(a->http) != FC_OK) goto fail;
    FC_LOG_INFO("api: listening on port %d, controller %s", fc_http_server_port(a->http), a->ctl);
    return a;
fail:
    fc_http_server_free(a->http);
    a->http = NULL;
    fc_openai_api_free(a);
    return NULL;
}

int fc_openai_api_port(const fc_openai_api *a)
{
    return fc_http_server_port(a->http);
}

void fc_openai_api_free(fc_openai_api *a)
{
    if (!a) return;
    /* handlers and relays see stopping within 100 ms and answer with an
     * error; the server gives them a grace period, then cuts what is left */
    atomic_store(&a->stopping, true);
    fc_http_server_free(a->http);
    fc_ollama_free(a->ollama);
    fc_responses_free(a->responses);
    pthread_mutex_lock(&a->mu);
    while (a->n_jobs > 0) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < a->n_convs; i++) {
        free(a->conv_keys[i]);
        fc_conv_free(a->convs[i]);
    }
    free(a->conv_keys);
    free(a->convs);
    for (int i = 0; i < a->n_keys; i++) free(a->keys[i]);
    free(a->keys);
    free(a->ctl);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
