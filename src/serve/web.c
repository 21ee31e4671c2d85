/*
 * web.c: the web UI's endpoints (web.h): static files, chats, the streaming
 * relay to the OpenAI API for one or two sides at once, votes, the
 * leaderboard, and FastChat's log records (§7.6) written to the store.
 *
 * Not here: the page itself (web/), the SQLite schema (arena/store.c), pair
 * sampling (arena/battle.c), ratings (arena/rating.h), generation (the
 * OpenAI API server and the workers behind it).
 */
#include "serve/web.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "arena/battle.h"
#include "arena/battles.h"
#include "arena/rating.h"
#include "arena/store.h"
#include "base/fc_base.h"
#include "base/file.h"
#include "base/str.h"
#include "eval/mt_files.h"
#include "eval/report.h"
#include "net/nulstream.h"
#include "serve/protocol.h"
#include "serve/web_assets.h"

/* FastChat's UI messages and limits (fastchat/constants.py). */
#define CONVERSATION_LIMIT_MSG                                                                                 \
    "YOU HAVE REACHED THE CONVERSATION LENGTH LIMIT. PLEASE CLEAR HISTORY AND START A NEW CONVERSATION."
#define RATE_LIMIT_MSG "**RATE LIMIT OF THIS MODEL IS REACHED. PLEASE COME BACK LATER OR TRY OTHER MODELS.**"
#define CONVERSATION_TURN_LIMIT 50
#define RATE_SLOTS 1024

typedef struct endpoint {  /* one model of --register-api-endpoint-file */
    char *name, *model_name, *api_base, *api_key, *system_prompt;
    bool anony_only;
    double temperature, top_p; /* recommended_config; < 0: unset */
    int max_new_tokens;
} endpoint;

typedef struct rate_slot {
    char ip[64];
    long window; /* minute since the epoch */
    int count;
} rate_slot;

struct fc_web {
    fc_store *store;
    fc_arena_config *arena;
    endpoint *eps;
    int n_eps;
    char *api_base, *api_key;
    int input_limit, blind_input_limit, rate_limit;
    double worker_timeout_s;
    pthread_mutex_t mu; /* busy chats, rate slots, rng */
    char **busy;
    int n_busy;
    rate_slot rate[RATE_SLOTS];
    uint64_t rng;
    char **cache[2];       /* the last model lists (pickers, arena) and when they were read */
    int n_cache[2];
    double cache_t[2];
    pthread_mutex_t lb_mu; /* the leaderboard cache */
    char *lb_json;
    long lb_votes;
    char *judge_dir, *judge_bench, *judge_model; /* the /results page; judge_dir NULL: none */
};

/* ---- small helpers ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* FastChat's round(time.time(), 4). */
static double round4(double t) { return round(t * 1e4) / 1e4; }

/* uuid.uuid4().hex */
static void uuid_hex(char out[33])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)(now_s() * 1e9) ^ (uint64_t)(uintptr_t)out;
        for (int i = 0; i < 16; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL, r[i] = (unsigned char)(x >> 56);
    }
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static int env_int(const char *name, int dflt)
{
    const char *s = getenv(name);
    return s && *s && atoi(s) > 0 ? atoi(s) : dflt;
}

/* Bytes of the first `limit` characters (code points) of UTF-8 text s. */
static size_t utf8_prefix(const char *s, size_t len, int limit)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            if (n == limit) return i;
            n++;
        }
    }
    return len;
}

static void reply_error(fc_http_reply *r, int status, const char *msg, int code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    cJSON_AddNumberToObject(o, "code", code);
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(r, status, s);
    free(s);
    cJSON_Delete(o);
}

static void reply_obj(fc_http_reply *r, int status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_header(r, "Cache-Control", "no-store");
    fc_http_reply_json(r, status, s);
    free(s);
    cJSON_Delete(o);
}

/* FastChat's get_ip(): cf-connecting-ip, else the first x-forwarded-for, else the peer. */
static void client_ip(const fc_http_request *req, char out[64])
{
    const char *h = fc_http_header(req, "cf-connecting-ip");
    if (h && *h) {
        snprintf(out, 64, "%s", h);
        return;
    }
    h = fc_http_header(req, "x-forwarded-for");
    if (h && *h) {
        size_t n = strcspn(h, ",");
        while (n && h[n - 1] == ' ') n--;
        snprintf(out, 64, "%.*s", (int)(n < 63 ? n : 63), h);
        return;
    }
    snprintf(out, 64, "%s", req->peer ? req->peer : "");
}

/* The id after a route prefix ("/web/api/chat/<id>"), checked to be hex. */
static const char *path_id(const fc_http_request *req, const char *prefix)
{
    const char *id = req->path + strlen(prefix);
    size_t n = strlen(id);
    if (n == 0 || n > 64 || strspn(id, "0123456789abcdef") != n) return NULL;
    return id;
}

static cJSON *parse_body(const fc_http_request *req, fc_http_reply *reply)
{
    cJSON *b = cJSON_ParseWithLength(req->body, req->body_len);
    if (!b || !cJSON_IsObject(b)) {
        cJSON_Delete(b);
        reply_error(reply, 400, "the request body is not a JSON object", 40001);
        return NULL;
    }
    return b;
}

/* ---- models ---- */

static const endpoint *find_endpoint(const fc_web *w, const char *name)
{
    for (int i = 0; i < w->n_eps; i++)
        if (!strcmp(w->eps[i].name, name)) return &w->eps[i];
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The models the controller's workers serve (via our API's /v1/models, which
 * refreshes the workers first) plus the endpoint models; anony_only ones only
 * when `arena`. Sorted, malloc'd names; *err set when the API failed. */
static char **list_models(fc_web *w, bool arena, int *n, char *err, size_t err_len)
{
    char **out = NULL;
    *n = 0;
    if (err) err[0] = '\0';
    char *url = fc_xasprintf("%s/v1/models", w->api_base ? w->api_base : "http://127.0.0.1:8000");
    char *auth = w->api_key ? fc_xasprintf("Authorization: Bearer %s", w->api_key) : NULL;
    const char *hdrs[] = {auth, NULL};
    fc_http_response r = {0};
    if (fc_http_get(url, 20, auth ? hdrs : NULL, &r) && r.status == 200) {
        cJSON *o = cJSON_Parse(r.body);
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "data"))
        {
            const cJSON *id = cJSON_GetObjectItem(it, "id");
            if (!cJSON_IsString(id)) continue;
            out = fc_xrealloc(out, sizeof(char *) * (size_t)(*n + 1));
            out[(*n)++] = fc_xstrdup(id->valuestring);
        }
        cJSON_Delete(o);
    } else if (err) {
        snprintf(err, err_len, "cannot list the models at %s: %s", url, r.status ? "HTTP error" : r.error);
    }
    fc_http_response_free(&r);
    free(url);
    free(auth);
    for (int i = 0; i < w->n_eps; i++) {
        if (w->eps[i].anony_only && !arena) continue;
        out = fc_xrealloc(out, sizeof(char *) * (size_t)(*n + 1));
        out[(*n)++] = fc_xstrdup(w->eps[i].name);
    }
    if (*n > 1) qsort(out, (size_t)*n, sizeof(char *), cmp_str);
    return out;
}

static void free_list(char **l, int n)
{
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

static char **dup_list(char **l, int n)
{
    char **o = fc_xcalloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) o[i] = fc_xstrdup(l[i]);
    return o;
}

/* list_models, answered from the last list when it is under 5 s old (a new
 * chat need not make the controller ask every worker again; the page
 * refreshes its pickers itself, and a model gone since is reported when it
 * is asked). Every fresh list is remembered. */
static char **models_cached(fc_web *w, bool arena, bool fresh, int *n, char *err, size_t err_len)
{
    int k = arena;
    if (err) err[0] = '\0';
    pthread_mutex_lock(&w->mu);
    if (!fresh && w->cache[k] && fc_time_sec() - w->cache_t[k] < 5) {
        char **o = dup_list(w->cache[k], w->n_cache[k]);
        *n = w->n_cache[k];
        pthread_mutex_unlock(&w->mu);
        return o;
    }
    pthread_mutex_unlock(&w->mu);
    char **l = list_models(w, arena, n, err, err_len);
    if (err && err[0]) return l; /* a failed listing is not remembered */
    pthread_mutex_lock(&w->mu);
    free_list(w->cache[k], w->n_cache[k]);
    w->cache[k] = dup_list(l, *n);
    w->n_cache[k] = *n;
    w->cache_t[k] = fc_time_sec();
    pthread_mutex_unlock(&w->mu);
    return l;
}

static bool in_names(char **l, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(l[i], name)) return true;
    return false;
}

/* ---- FastChat's log records ---- */

/* STATE of §7.6 for one side of a stored chat. */
static cJSON *state_json(const cJSON *chat, int side)
{
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(chat, "sides"), side);
    cJSON *o = cJSON_CreateObject();
    /* the prompt is rendered by the worker's template behind the OpenAI API */
    cJSON_AddStringToObject(o, "template_name", "openai-api");
    cJSON_AddStringToObject(o, "system_message", cJSON_GetStringValue(cJSON_GetObjectItem(s, "system_message")));
    cJSON *roles = cJSON_AddArrayToObject(o, "roles");
    cJSON_AddItemToArray(roles, cJSON_CreateString("user"));
    cJSON_AddItemToArray(roles, cJSON_CreateString("assistant"));
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(s, "messages"))
    {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(cJSON_GetStringValue(cJSON_GetObjectItem(m, "role"))));
        cJSON_AddItemToArray(pair, cJSON_CreateString(cJSON_GetStringValue(cJSON_GetObjectItem(m, "content"))));
        cJSON_AddItemToArray(msgs, pair);
    }
    cJSON_AddNumberToObject(o, "offset", 0);
    cJSON_AddStringToObject(o, "conv_id", cJSON_GetStringValue(cJSON_GetObjectItem(s, "conv_id")));
    cJSON_AddStringToObject(o, "model_name", cJSON_GetStringValue(cJSON_GetObjectItem(s, "model")));
    return o;
}

static const char *side_model(const cJSON *chat, int side)
{
    return cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(chat, "sides"), side), "model"));
}

/* The chat as the page sees it: battle names hidden until the vote. */
static cJSON *chat_for_page(const cJSON *chat)
{
    cJSON *o = cJSON_Duplicate(chat, true);
    cJSON_DeleteItemFromObject(o, "ip");
    bool hide = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "mode")), "battle") &&
                cJSON_IsNull(cJSON_GetObjectItem(o, "vote"));
    cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(o, "sides"))
    {
        if (hide) {
            cJSON_ReplaceItemInObject(s, "model", cJSON_CreateNull());
            cJSON_ReplaceItemInObject(s, "system_message", cJSON_CreateString(""));
        }
    }
    return o;
}

/* ---- busy chats and rate limits ---- */

static bool busy_enter(fc_web *w, const char *id)
{
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->n_busy; i++)
        if (!strcmp(w->busy[i], id)) {
            pthread_mutex_unlock(&w->mu);
            return false;
        }
    w->busy = fc_xrealloc(w->busy, sizeof(char *) * (size_t)(w->n_busy + 1));
    w->busy[w->n_busy++] = fc_xstrdup(id);
    pthread_mutex_unlock(&w->mu);
    return true;
}

static void busy_leave(fc_web *w, const char *id)
{
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->n_busy; i++)
        if (!strcmp(w->busy[i], id)) {
            free(w->busy[i]);
            w->busy[i] = w->busy[--w->n_busy];
            break;
        }
    pthread_mutex_unlock(&w->mu);
}

/* One send more for ip in this minute; false when over the limit. */
static bool rate_ok(fc_web *w, const char *ip)
{
    if (w->rate_limit <= 0) return true;
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = ip; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    long minute = (long)(now_s() / 60);
    pthread_mutex_lock(&w->mu);
    rate_slot *s = &w->rate[h % RATE_SLOTS];
    if (strcmp(s->ip, ip) != 0 || s->window != minute) {
        snprintf(s->ip, sizeof s->ip, "%s", ip);
        s->window = minute;
        s->count = 0;
    }
    bool ok = s->count < w->rate_limit;
    if (ok) s->count++;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

/* ---- the relay of one side ---- */

typedef struct side_run {
    fc_web *w;
    fc_http_stream *out;
    atomic_bool *gone;
    int side;
    char *url, *auth, *body;
    fc_sse_parser *parser;
    fc_str text;      /* the answer so far */
    fc_str raw;       /* a non-200 body */
    int status;
    int error_code;   /* 0: none */
    char *error_msg;  /* what the page and the log say went wrong */
    bool done, got_event;
    char finish[32];
    double start, finish_t;
} side_run;

static void page_event(side_run *r, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    size_t n;
    char *ev = fc_sse_format(NULL, s, strlen(s), &n);
    if (!fc_http_stream_write(r->out, ev, n)) atomic_store(r->gone, true);
    free(ev);
    free(s);
    cJSON_Delete(o);
}

/* What the error code means for a user: worker gone, context too long, ... */
static const char *error_kind(int code, int status)
{
    const char *t = fc_error_code_user_text(code);
    if (t) return t;
    if (status == 429) return "Rate limited";
    if (status == 401) return "The API refused the key";
    return "The model failed";
}

static void set_error(side_run *r, int code, const char *detail)
{
    if (r->error_code) return;
    r->error_code = code ? code : 50001;
    r->error_msg = fc_xasprintf("%s: %s", error_kind(code, r->status), detail && *detail ? detail : "no details");
}

static bool on_sse(const fc_sse_event *ev, void *user)
{
    side_run *r = user;
    r->got_event = true;
    if (!strcmp(ev->data, "[DONE]")) {
        r->done = true;
        return false;
    }
    cJSON *o = cJSON_ParseWithLength(ev->data, ev->data_len);
    if (!o) return true;
    const cJSON *err = cJSON_GetObjectItem(o, "error");
    if (err) {
        const cJSON *code = cJSON_GetObjectItem(o, "error_code");
        if (!cJSON_IsNumber(code)) code = cJSON_GetObjectItem(err, "code");
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(err, "message"));
        if (!msg) msg = cJSON_GetStringValue(cJSON_GetObjectItem(o, "text"));
        set_error(r, cJSON_IsNumber(code) ? code->valueint : 50001, msg);
        cJSON_Delete(o);
        return true;
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
    const char *delta = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "delta"), "content"));
    const char *fin = cJSON_GetStringValue(cJSON_GetObjectItem(ch, "finish_reason"));
    if (fin) snprintf(r->finish, sizeof r->finish, "%s", fin);
    if (delta && *delta) {
        fc_str_putn(&r->text, delta, strlen(delta));
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "type", "delta");
        cJSON_AddNumberToObject(e, "side", r->side);
        cJSON_AddStringToObject(e, "text", delta);
        page_event(r, e);
    }
    cJSON_Delete(o);
    return !atomic_load(r->gone);
}

static bool on_data(const char *data, size_t len, void *user)
{
    side_run *r = user;
    if (atomic_load(r->gone)) return false;
    /* the status is known only at the end: keep the start of the body in
     * case it is an error (JSON, no events) rather than a stream */
    if (!r->got_event && r->raw.len + len < (64u << 10)) fc_str_putn(&r->raw, data, len);
    fc_sse_parser_feed(r->parser, data, len, on_sse, r);
    return !r->done && !atomic_load(r->gone);
}

static void *side_main(void *arg)
{
    side_run *r = arg;
    const char *hdrs[] = {r->auth, NULL};
    fc_http_response resp = {0};
    r->start = now_s();
    bool ok = fc_http_post_stream(r->url, r->body, strlen(r->body), r->w->worker_timeout_s, r->auth ? hdrs : NULL,
                                  on_data, r, &resp);
    r->status = resp.status;
    if (!ok && !atomic_load(r->gone)) {
        set_error(r, 50006, resp.error);
    } else if (resp.status != 200 && !atomic_load(r->gone)) {
        /* the body was fed to the SSE parser before the status was known: re-read it as JSON */
        cJSON *o = cJSON_Parse(r->raw.p ? r->raw.p : "");
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItem(o, "message"));
        const cJSON *code = cJSON_GetObjectItem(o, "code");
        if (!msg) msg = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message"));
        if (!cJSON_IsNumber(code)) code = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "code");
        char detail[96];
        snprintf(detail, sizeof detail, "HTTP %d from the API", resp.status);
        set_error(r, cJSON_IsNumber(code) ? code->valueint : (resp.status == 429 ? 42901 : 50001), msg ? msg : detail);
        cJSON_Delete(o);
    } else if (!r->done && !r->error_code && !atomic_load(r->gone)) {
        set_error(r, 50006, "the stream ended before it was complete");
    }
    fc_http_response_free(&resp);
    r->finish_t = now_s();
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "side", r->side);
    if (r->error_code) {
        cJSON_AddStringToObject(e, "type", "error");
        cJSON_AddStringToObject(e, "message", r->error_msg);
        cJSON_AddNumberToObject(e, "code", r->error_code);
    } else {
        cJSON_AddStringToObject(e, "type", "done");
        cJSON_AddStringToObject(e, "finish_reason", atomic_load(r->gone) ? "stopped" : r->finish);
    }
    if (!atomic_load(r->gone)) page_event(r, e);
    else cJSON_Delete(e);
    return NULL;
}

/* ---- handlers ---- */

static void h_index(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    for (int i = 0; i < fc_web_n_assets; i++)
        if (!strcmp(fc_web_assets[i].path, "/web/static/index.html")) {
            const fc_web_asset *a = &fc_web_assets[i];
            fc_http_reply_header(reply, "Cache-Control", "no-cache");
            /* scripts only from this server (no inline ones), so text that
             * slips past the sanitizer still cannot run */
            fc_http_reply_header(reply, "Content-Security-Policy",
                                 "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                                 "img-src 'self' data:; font-src 'self'; object-src 'none'; base-uri 'none'");
            fc_http_reply_body(reply, 200, a->mime, a->start, (size_t)(a->end - a->start));
            return;
        }
    reply_error(reply, 500, "the page is missing from this build", 50001);
}

static void h_static(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    for (int i = 0; i < fc_web_n_assets; i++)
        if (!strcmp(fc_web_assets[i].path, req->path)) {
            const fc_web_asset *a = &fc_web_assets[i];
            fc_http_reply_header(reply, "Cache-Control", "no-cache");
            fc_http_reply_header(reply, "X-Content-Type-Options", "nosniff");
            fc_http_reply_body(reply, 200, a->mime, a->start, (size_t)(a->end - a->start));
            return;
        }
    fc_http_reply_json(reply, 404, "{\"detail\":\"Not Found\"}");
}

static void h_config(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_char_len_limit", w->input_limit);
    cJSON_AddNumberToObject(o, "blind_mode_input_char_len_limit", w->blind_input_limit);
    cJSON_AddNumberToObject(o, "conversation_turn_limit", CONVERSATION_TURN_LIMIT);
    cJSON_AddStringToObject(o, "conversation_limit_msg", CONVERSATION_LIMIT_MSG);
    cJSON_AddStringToObject(o, "server_error_msg", FC_SERVER_ERROR_MSG);
    cJSON_AddStringToObject(o, "rate_limit_msg", RATE_LIMIT_MSG);
    cJSON_AddBoolToObject(o, "mt_bench_results", w->judge_dir != NULL);
    reply_obj(reply, 200, o);
}

static void h_models(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    int n, na;
    char err[512];
    char **l = models_cached(w, false, true, &n, err, sizeof err);
    char **la = models_cached(w, true, true, &na, NULL, 0);
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(l[i]));
    a = cJSON_AddArrayToObject(o, "arena");
    for (int i = 0; i < na; i++)
        if (fc_arena_weight(w->arena, la[i]) > 0) cJSON_AddItemToArray(a, cJSON_CreateString(la[i]));
    if (err[0]) cJSON_AddStringToObject(o, "error", err);
    free_list(l, n);
    free_list(la, na);
    reply_obj(reply, 200, o);
}

static const char *system_prompt_of(const fc_web *w, const char *model)
{
    const endpoint *e = find_endpoint(w, model);
    if (e && e->system_prompt) return e->system_prompt;
    fc_arena_model m = fc_arena_model_settings(w->arena, model);
    return m.system_prompt ? m.system_prompt : "";
}

static void h_chat_new(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    cJSON *b = parse_body(req, reply);
    if (!b) return;
    const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(b, "mode"));
    const cJSON *want = cJSON_GetObjectItem(b, "models");
    int n_sides = mode && !strcmp(mode, "direct") ? 1 : 2;
    if (!mode || (strcmp(mode, "direct") && strcmp(mode, "battle") && strcmp(mode, "sbs"))) {
        reply_error(reply, 400, "mode must be \"direct\", \"battle\" or \"sbs\"", 40001);
        cJSON_Delete(b);
        return;
    }
    bool battle = !strcmp(mode, "battle");
    int n;
    char err[512];
    char **names = models_cached(w, battle, false, &n, err, sizeof err);
    const char *chosen[2] = {NULL, NULL};
    if (battle) {
        /* the pool: every model with a positive weight */
        const char **pool = fc_xcalloc((size_t)n + 1, sizeof(char *));
        int np = 0;
        for (int i = 0; i < n; i++)
            if (fc_arena_weight(w->arena, names[i]) > 0) pool[np++] = names[i];
        int l = -1, r = -1;
        pthread_mutex_lock(&w->mu);
        int rc = fc_battle_pair(w->arena, pool, np, &w->rng, &l, &r);
        pthread_mutex_unlock(&w->mu);
        if (rc == FC_OK) chosen[0] = pool[l], chosen[1] = pool[r];
        free(pool);
    } else {
        for (int i = 0; i < n_sides; i++) {
            const char *m = cJSON_GetStringValue(cJSON_GetArrayItem(want, i));
            if (!m || !in_names(names, n, m)) {
                char *msg = fc_xasprintf("model %s is not available%s%s", m ? m : "(none given)", err[0] ? ": " : "", err);
                reply_error(reply, 400, msg, 40301);
                free(msg);
                free_list(names, n);
                cJSON_Delete(b);
                return;
            }
            chosen[i] = m;
        }
    }
    if (!chosen[0]) {
        char *msg = fc_xasprintf("no models to battle with%s%s", err[0] ? ": " : "", err);
        reply_error(reply, 503, msg, 50005);
        free(msg);
        free_list(names, n);
        cJSON_Delete(b);
        return;
    }
    char id[33], conv[2][33], ip[64];
    uuid_hex(id);
    client_ip(req, ip);
    fc_store_side sides[2];
    for (int i = 0; i < n_sides; i++) {
        uuid_hex(conv[i]);
        sides[i] = (fc_store_side){conv[i], chosen[i], system_prompt_of(w, chosen[i])};
    }
    int rc = fc_store_chat_create(w->store, id, mode, sides, n_sides, ip, now_s());
    free_list(names, n);
    cJSON_Delete(b);
    if (rc != FC_OK) {
        reply_error(reply, 500, "cannot store the chat (see the server log)", 50001);
        return;
    }
    cJSON *chat = fc_store_chat_get(w->store, id);
    reply_obj(reply, 200, chat_for_page(chat));
    cJSON_Delete(chat);
}

static void h_chat_get(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    const char *id = path_id(req, "/web/api/chat/");
    cJSON *chat = id ? fc_store_chat_get(w->store, id) : NULL;
    if (!chat) {
        reply_error(reply, 404, "no such chat", 40400);
        return;
    }
    reply_obj(reply, 200, chat_for_page(chat));
    cJSON_Delete(chat);
}

static double num_or(const cJSON *o, const char *k, double dflt, double lo, double hi)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return dflt;
    return v->valuedouble < lo ? lo : v->valuedouble > hi ? hi : v->valuedouble;
}

/* The body of one side's POST /chat/completions and where it goes. */
static void build_request(fc_web *w, const cJSON *chat, int side, bool battle, const cJSON *params, side_run *r,
                          double *temp, double *top_p, int *max_tokens)
{
    const char *model = side_model(chat, side);
    const endpoint *e = find_endpoint(w, model);
    fc_arena_model cfg = fc_arena_model_settings(w->arena, model);
    if (e) cfg.temperature = e->temperature, cfg.top_p = e->top_p, cfg.max_new_tokens = e->max_new_tokens;
    /* the page's sliders (FastChat's defaults and ranges); in battles the
     * model's own settings win (FastChat's use_recommended_config) */
    *temp = num_or(params, "temperature", 0.7, 0, 2);
    *top_p = num_or(params, "top_p", 1.0, 0, 1);
    *max_tokens = (int)num_or(params, "max_new_tokens", battle ? 2000 : 1024, 16, 4096);
    if (battle || !cJSON_GetObjectItem(params, "temperature")) {
        if (cfg.temperature >= 0) *temp = cfg.temperature;
    }
    if (battle || !cJSON_GetObjectItem(params, "top_p")) {
        if (cfg.top_p >= 0) *top_p = cfg.top_p;
    }
    if (battle || !cJSON_GetObjectItem(params, "max_new_tokens")) {
        if (cfg.max_new_tokens > 0) *max_tokens = cfg.max_new_tokens;
    }
    const cJSON *s = cJSON_GetArrayItem(cJSON_GetObjectItem(chat, "sides"), side);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", e ? e->model_name : model);
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
    const char *sys = cJSON_GetStringValue(cJSON_GetObjectItem(s, "system_message"));
    if (sys && *sys) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", sys);
        cJSON_AddItemToArray(msgs, m);
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(s, "messages"))
    {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "role", cJSON_GetStringValue(cJSON_GetObjectItem(m, "role")));
        cJSON_AddStringToObject(x, "content", cJSON_GetStringValue(cJSON_GetObjectItem(m, "content")));
        cJSON_AddItemToArray(msgs, x);
    }
    cJSON_AddNumberToObject(o, "temperature", *temp);
    cJSON_AddNumberToObject(o, "top_p", *top_p);
    cJSON_AddNumberToObject(o, "max_tokens", *max_tokens);
    cJSON_AddBoolToObject(o, "stream", true);
    r->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (e) {
        size_t n = strlen(e->api_base);
        r->url = fc_xasprintf("%.*s/chat/completions", (int)(n && e->api_base[n - 1] == '/' ? n - 1 : n), e->api_base);
        r->auth = e->api_key && *e->api_key ? fc_xasprintf("Authorization: Bearer %s", e->api_key) : NULL;
    } else {
        r->url = fc_xasprintf("%s/v1/chat/completions", w->api_base ? w->api_base : "http://127.0.0.1:8000");
        r->auth = w->api_key ? fc_xasprintf("Authorization: Bearer %s", w->api_key) : NULL;
    }
}

static void on_page_gone(void *user) { atomic_store((atomic_bool *)user, true); }

static void h_send(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    const char *id = path_id(req, "/web/api/send/");
    cJSON *chat = id ? fc_store_chat_get(w->store, id) : NULL;
    if (!chat) {
        reply_error(reply, 404, "no such chat", 40400);
        return;
    }
    cJSON *b = parse_body(req, reply);
    if (!b) {
        cJSON_Delete(chat);
        return;
    }
    const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(chat, "mode"));
    bool battle = !strcmp(mode, "battle");
    cJSON *sides = cJSON_GetObjectItem(chat, "sides");
    int n_sides = cJSON_GetArraySize(sides);
    const cJSON *text = cJSON_GetObjectItem(b, "text");
    bool regen = cJSON_IsTrue(cJSON_GetObjectItem(b, "regenerate"));
    char ip[64];
    client_ip(req, ip);
    int status = 0, code = 0;
    const char *msg = NULL;
    cJSON *first_msgs = cJSON_GetObjectItem(cJSON_GetArrayItem(sides, 0), "messages");
    int n_msgs = cJSON_GetArraySize(first_msgs);
    if (!rate_ok(w, ip)) /* every attempt counts, as a call to the model would */
        status = 429, code = 42901, msg = RATE_LIMIT_MSG;
    else if (strcmp(mode, "direct") && !cJSON_IsNull(cJSON_GetObjectItem(chat, "vote")))
        status = 409, code = 40900, msg = "this battle has its vote; start a new round";
    else if (memmem(req->body, req->body_len, "\\u0000", 6))
        status = 400, code = 40001, msg = "the text contains a NUL character (U+0000), which cannot be stored";
    else if (!regen && (!cJSON_IsString(text) || !*text->valuestring))
        status = 400, code = 40001, msg = "nothing to send: \"text\" is empty";
    else if (regen && n_msgs == 0)
        status = 400, code = 40001, msg = "nothing to regenerate yet";
    else if (!regen && n_msgs / 2 >= CONVERSATION_TURN_LIMIT)
        status = 400, code = 40302, msg = CONVERSATION_LIMIT_MSG;
    else if (!busy_enter(w, id))
        status = 409, code = 40901, msg = "a reply is still being generated in this chat";
    if (status) {
        reply_error(reply, status, msg, code);
        cJSON_Delete(b);
        cJSON_Delete(chat);
        return;
    }

    /* the user's turn, stored on every side before anything is generated */
    double t0 = now_s();
    for (int s = 0; s < n_sides; s++) {
        cJSON *ms = cJSON_GetObjectItem(cJSON_GetArrayItem(sides, s), "messages");
        int nm = cJSON_GetArraySize(ms);
        if (regen) {
            const char *last = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, nm - 1), "role"));
            if (last && !strcmp(last, "assistant")) fc_store_message_truncate(w->store, id, s, nm - 1);
        } else {
            size_t len = strlen(text->valuestring);
            size_t cut = utf8_prefix(text->valuestring, len, battle ? w->blind_input_limit : w->input_limit);
            char *content = fc_xmalloc(cut + 1);
            memcpy(content, text->valuestring, cut);
            content[cut] = 0;
            /* an unanswered user turn left by a failed send is replaced */
            const char *last = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(ms, nm - 1), "role"));
            if (last && !strcmp(last, "user")) fc_store_message_truncate(w->store, id, s, nm - 1);
            fc_store_message_add(w->store, id, s, "user", content, cut < len ? text->valuestring : NULL, 0, t0, t0);
            free(content);
        }
    }
    cJSON_Delete(chat);
    chat = fc_store_chat_get(w->store, id);
    sides = cJSON_GetObjectItem(chat, "sides");

    fc_http_reply_header(reply, "Cache-Control", "no-cache");
    fc_http_reply_header(reply, "X-Accel-Buffering", "no");
    fc_http_stream *out = fc_http_reply_stream(reply, 200, "text/event-stream");
    atomic_bool gone = false;
    fc_http_stream_on_disconnect(out, on_page_gone, &gone);
    side_run runs[2];
    memset(runs, 0, sizeof runs);
    double temps[2], tops[2];
    int maxs[2];
    pthread_t th[2];
    bool started[2] = {false, false};
    for (int s = 0; s < n_sides; s++) {
        side_run *r = &runs[s];
        r->w = w, r->out = out, r->gone = &gone, r->side = s;
        r->parser = fc_sse_parser_new(16u << 20);
        build_request(w, chat, s, battle, b, r, &temps[s], &tops[s], &maxs[s]);
        started[s] = pthread_create(&th[s], NULL, side_main, r) == 0;
        if (!started[s]) side_main(r);
    }
    for (int s = 0; s < n_sides; s++)
        if (started[s]) pthread_join(th[s], NULL);

    /* the answers (partial when stopped; FastChat's text plus the error when failed) and the "chat" records */
    for (int s = 0; s < n_sides; s++) {
        side_run *r = &runs[s];
        char *content;
        if (r->error_code)
            content = fc_xasprintf("%s%s%s\n\n(error_code: %d) %s", r->text.p ? r->text.p : "", r->text.len ? "\n\n" : "",
                                FC_SERVER_ERROR_MSG, r->error_code, r->error_msg);
        else content = fc_xstrdup(r->text.p ? r->text.p : "");
        fc_store_message_add(w->store, id, s, "assistant", content, NULL, r->error_code, r->start, r->finish_t);
        free(content);
    }
    cJSON_Delete(chat);
    chat = fc_store_chat_get(w->store, id);
    for (int s = 0; chat && s < n_sides; s++) {
        side_run *r = &runs[s];
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddNumberToObject(ev, "tstamp", round4(r->finish_t));
        cJSON_AddStringToObject(ev, "type", "chat");
        cJSON_AddStringToObject(ev, "model", side_model(chat, s));
        cJSON *gp = cJSON_AddObjectToObject(ev, "gen_params");
        cJSON_AddNumberToObject(gp, "temperature", temps[s]);
        cJSON_AddNumberToObject(gp, "top_p", tops[s]);
        cJSON_AddNumberToObject(gp, "max_new_tokens", maxs[s]);
        cJSON_AddNumberToObject(ev, "start", round4(r->start));
        cJSON_AddNumberToObject(ev, "finish", round4(r->finish_t));
        cJSON_AddItemToObject(ev, "state", state_json(chat, s));
        cJSON_AddStringToObject(ev, "ip", ip);
        char *js = cJSON_PrintUnformatted(ev);
        fc_store_event_add(w->store, r->finish_t, "chat", id, js);
        free(js);
        cJSON_Delete(ev);
    }
    for (int s = 0; s < n_sides; s++) {
        side_run *r = &runs[s];
        fc_sse_parser_free(r->parser);
        free(r->text.p);
        free(r->raw.p);
        free(r->url);
        free(r->auth);
        free(r->body);
        free(r->error_msg);
    }
    /* everything is stored: the chat takes the next send before the page hears "end" */
    busy_leave(w, id);
    if (!atomic_load(&gone)) {
        static const char end[] = "data: {\"type\":\"end\"}\n\n";
        fc_http_stream_write(out, end, sizeof end - 1);
    }
    fc_http_stream_close(out);
    cJSON_Delete(chat);
    cJSON_Delete(b);
}

static void h_vote(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    const char *id = path_id(req, "/web/api/vote/");
    cJSON *b = parse_body(req, reply);
    if (!b) return;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(b, "type"));
    static const char *const arena_votes[] = {"leftvote", "rightvote", "tievote", "bothbad_vote"};
    static const char *const direct_votes[] = {"upvote", "downvote", "flag"};
    bool arena_vote = false, direct_vote = false;
    for (int i = 0; type && i < 4; i++) arena_vote |= !strcmp(type, arena_votes[i]);
    for (int i = 0; type && i < 3; i++) direct_vote |= !strcmp(type, direct_votes[i]);
    cJSON *chat = id ? fc_store_chat_get(w->store, id) : NULL;
    if (!chat) {
        reply_error(reply, 404, "no such chat: the vote was not recorded", 40400);
        cJSON_Delete(b);
        return;
    }
    const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(chat, "mode"));
    bool direct = !strcmp(mode, "direct");
    if ((direct && !direct_vote) || (!direct && !arena_vote)) {
        reply_error(reply, 400,
                    direct ? "a direct chat takes upvote, downvote or flag"
                           : "an arena vote is leftvote, rightvote, tievote or bothbad_vote",
                    40001);
        cJSON_Delete(b);
        cJSON_Delete(chat);
        return;
    }
    cJSON *sides = cJSON_GetObjectItem(chat, "sides");
    for (int s = 0; s < cJSON_GetArraySize(sides); s++) {
        cJSON *ms = cJSON_GetObjectItem(cJSON_GetArrayItem(sides, s), "messages");
        const char *last = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetArrayItem(ms, cJSON_GetArraySize(ms) - 1), "role"));
        if (!last || strcmp(last, "assistant") != 0) {
            reply_error(reply, 400, "nothing to vote on yet: wait for the answers", 40001);
            cJSON_Delete(b);
            cJSON_Delete(chat);
            return;
        }
    }
    char ip[64];
    client_ip(req, ip);
    double t = now_s();
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "tstamp", round4(t));
    cJSON_AddStringToObject(ev, "type", type);
    if (direct) {
        cJSON_AddStringToObject(ev, "model", side_model(chat, 0));
        cJSON_AddItemToObject(ev, "state", state_json(chat, 0));
    } else {
        /* FastChat logs the labels shown: "" while a battle's names are hidden */
        cJSON *models = cJSON_AddArrayToObject(ev, "models");
        cJSON *states = cJSON_AddArrayToObject(ev, "states");
        for (int s = 0; s < 2; s++) {
            cJSON_AddItemToArray(models, cJSON_CreateString(!strcmp(mode, "battle") ? "" : side_model(chat, s)));
            cJSON_AddItemToArray(states, state_json(chat, s));
        }
    }
    cJSON_AddStringToObject(ev, "ip", ip);
    char *js = cJSON_PrintUnformatted(ev);
    cJSON_Delete(ev);
    int rc = direct ? fc_store_event_add(w->store, t, type, id, js) : fc_store_vote(w->store, id, type, t, js);
    free(js);
    if (rc == FC_STORE_ALREADY_VOTED) reply_error(reply, 409, "this battle already has its vote", 40900);
    else if (rc == FC_STORE_NOT_FOUND) reply_error(reply, 404, "no such chat: the vote was not recorded", 40400);
    else if (rc != FC_OK) reply_error(reply, 500, "the vote could not be stored (see the server log)", 50001);
    else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "saved", true);
        cJSON_AddStringToObject(o, "type", type);
        cJSON *models = cJSON_AddArrayToObject(o, "models");
        for (int s = 0; s < cJSON_GetArraySize(sides); s++)
            cJSON_AddItemToArray(models, cJSON_CreateString(side_model(chat, s)));
        reply_obj(reply, 200, o);
    }
    cJSON_Delete(b);
    cJSON_Delete(chat);
}

static void h_leaderboard(const fc_http_request *req, fc_http_reply *reply, void *user);

/* GET /results: the MT-bench results page, built from the judge files as
 * they are now (a run in progress shows what it has written so far). */
static void h_results(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    (void)req;
    fc_web *w = user;
    static const char off[] = "The MT-bench results page is off: start the server with --judge-data-dir DIR "
                              "(FastChat's data/ folder, as `fastchat judge` writes it).\n";
    fc_http_reply_header(reply, "Cache-Control", "no-store");
    if (!w->judge_dir) {
        fc_http_reply_body(reply, 404, "text/plain; charset=utf-8", off, sizeof off - 1);
        return;
    }
    const fc_mt_source src = {.data_dir = w->judge_dir, .bench = w->judge_bench, .judge_model = w->judge_model};
    cJSON *d;
    if (fc_mt_report_collect(&src, &d) != FC_OK) {
        char *msg = fc_xasprintf("The results could not be read: %s\n", fc_last_error());
        fc_http_reply_body(reply, 500, "text/plain; charset=utf-8", msg, strlen(msg));
        free(msg);
        return;
    }
    size_t len;
    char *html = fc_mt_report_html(d, &len);
    cJSON_Delete(d);
    if (!html) {
        reply_error(reply, 500, "out of memory", 50001);
        return;
    }
    fc_http_reply_header(reply, "Content-Security-Policy",
                         "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:");
    fc_http_reply_body(reply, 200, "text/html; charset=utf-8", html, len);
    free(html);
}

/* ---- lifetime ---- */

static char *json_str_dup(const cJSON *o, const char *k)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return s ? fc_xstrdup(s) : NULL;
}

/* FastChat's --register-api-endpoint-file: {"name": {model_name, api_type,
 * api_base, api_key, anony_only, recommended_config: {temperature, top_p,
 * max_new_tokens}, "text-arena", custom_system_prompt, system_prompt}}.
 * Only api_type "openai" (any OpenAI-compatible server) is spoken. */
static int load_endpoints(fc_web *w, const char *path)
{
    char *text = fc_file_read(path, NULL, 16u << 20);
    if (!text) return FC_ERR_IO;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        FC_LOG_ERROR("web: %s: not a JSON object", path);
        cJSON_Delete(root);
        return FC_ERR_FORMAT;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, root)
    {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(it, "api_type"));
        const cJSON *ta = cJSON_GetObjectItem(it, "text-arena");
        if (cJSON_IsFalse(ta)) continue;
        if (!type || (strcmp(type, "openai") && strcmp(type, "openai_no_stream"))) {
            FC_LOG_WARN("web: %s: endpoint %s: api_type %s is not supported (only openai); skipped", path, it->string,
                        type ? type : "(none)");
            continue;
        }
        endpoint e = {0};
        e.name = fc_xstrdup(it->string);
        e.model_name = json_str_dup(it, "model_name");
        if (!e.model_name) e.model_name = fc_xstrdup(it->string);
        e.api_base = json_str_dup(it, "api_base");
        if (!e.api_base) e.api_base = fc_xstrdup("https://api.openai.com/v1");
        e.api_key = json_str_dup(it, "api_key");
        e.anony_only = cJSON_IsTrue(cJSON_GetObjectItem(it, "anony_only"));
        e.system_prompt = json_str_dup(it, "system_prompt");
        const cJSON *rc = cJSON_GetObjectItem(it, "recommended_config");
        e.temperature = num_or(rc, "temperature", -1, 0, 2);
        e.top_p = num_or(rc, "top_p", -1, 0, 1);
        e.max_new_tokens = (int)num_or(rc, "max_new_tokens", 0, 1, 1 << 20);
        w->eps = fc_xrealloc(w->eps, sizeof(endpoint) * (size_t)(w->n_eps + 1));
        w->eps[w->n_eps++] = e;
    }
    cJSON_Delete(root);
    return FC_OK;
}

fc_web *fc_web_new(const fc_web_params *p)
{
    fc_web *w = fc_xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->lb_mu, NULL);
    w->input_limit = env_int("FASTCHAT_INPUT_CHAR_LEN_LIMIT", 12000);
    w->blind_input_limit = env_int("FASTCHAT_BLIND_MODE_INPUT_CHAR_LEN_LIMIT", 30000);
    w->worker_timeout_s = env_int("FASTCHAT_WORKER_API_TIMEOUT", 100);
    w->rate_limit = p->rate_limit_per_min > 0 ? p->rate_limit_per_min : env_int("FASTCHAT_WEB_RATE_LIMIT", 0);
    w->api_key = p->api_key ? fc_xstrdup(p->api_key) : NULL;
    if (getrandom(&w->rng, sizeof w->rng, 0) != (ssize_t)sizeof w->rng) w->rng = (uint64_t)(now_s() * 1e9);
    fc_http_global_init();
    const char *db = p->db_path && *p->db_path ? p->db_path : "fastchat_arena.db";
    w->store = fc_store_open(db);
    if (!w->store) goto fail;
    w->arena = fc_arena_config_load(p->arena_config);
    if (!w->arena) goto fail;
    if (p->api_endpoint_file && load_endpoints(w, p->api_endpoint_file) != FC_OK) goto fail;
    if (p->judge_data_dir) {
        struct stat sb;
        if (stat(p->judge_data_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            FC_LOG_ERROR("--judge-data-dir %s: not a folder", p->judge_data_dir);
            goto fail;
        }
        w->judge_dir = fc_xstrdup(p->judge_data_dir);
        w->judge_bench = fc_xstrdup(p->judge_bench ? p->judge_bench : "fc_bench");
        w->judge_model = fc_xstrdup(p->judge_model ? p->judge_model : "gpt-4");
    }
    return w;
fail:
    fc_web_free(w);
    return NULL;
}

void fc_web_set_api_base(fc_web *w, const char *url)
{
    free(w->api_base);
    w->api_base = fc_xstrdup(url);
}

void fc_web_mount(fc_web *w, fc_http_server *s)
{
    static const struct {
        const char *method, *path;
        fc_http_handler h;
    } routes[] = {
        {"GET", "/", h_index},
        {"GET", "/web/static/*", h_static},
        {"GET", "/web/api/config", h_config},
        {"GET", "/web/api/models", h_models},
        {"POST", "/web/api/chat", h_chat_new},
        {"GET", "/web/api/chat/*", h_chat_get},
        {"POST", "/web/api/send/*", h_send},
        {"POST", "/web/api/vote/*", h_vote},
        {"GET", "/web/api/leaderboard", h_leaderboard},
        {"GET", "/results", h_results},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        fc_http_server_route(s, routes[i].method, routes[i].path, routes[i].h, w);
}

void fc_web_mount_hook(fc_http_server *s, void *user) { fc_web_mount(user, s); }

void fc_web_free(fc_web *w)
{
    if (!w) return;
    fc_store_close(w->store);
    fc_arena_config_free(w->arena);
    for (int i = 0; i < w->n_eps; i++) {
        free(w->eps[i].name);
        free(w->eps[i].model_name);
        free(w->eps[i].api_base);
        free(w->eps[i].api_key);
        free(w->eps[i].system_prompt);
    }
    free(w->eps);
    for (int i = 0; i < w->n_busy; i++) free(w->busy[i]);
    free(w->busy);
    free(w->api_base);
    free(w->api_key);
    free(w->lb_json);
    free(w->judge_dir);
    free(w->judge_bench);
    free(w->judge_model);
    for (int k = 0; k < 2; k++) free_list(w->cache[k], w->n_cache[k]);
    pthread_mutex_destroy(&w->lb_mu);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* ---- import of FastChat's logs ---- */

static bool import_vote(fc_store *st, const cJSON *row, const char *type, double t, const char *ip)
{
    const cJSON *models = cJSON_GetObjectItem(row, "models"), *states = cJSON_GetObjectItem(row, "states");
    if (cJSON_GetArraySize(states) != 2 || cJSON_GetArraySize(models) != 2) return false;
    const char *pub = cJSON_GetStringValue(cJSON_GetArrayItem(models, 0));
    bool anony = !pub || !*pub || !strcmp(pub, "Model A");
    char id[33], conv[2][33];
    fc_store_side sides[2];
    for (int i = 0; i < 2; i++) {
        const cJSON *sti = cJSON_GetArrayItem(states, i);
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(sti, "model_name"));
        if (!m) m = cJSON_GetStringValue(cJSON_GetArrayItem(models, i));
        if (!m || !cJSON_IsArray(cJSON_GetObjectItem(sti, "messages"))) return false;
        const char *cid = cJSON_GetStringValue(cJSON_GetObjectItem(sti, "conv_id"));
        snprintf(conv[i], sizeof conv[i], "%s", cid ? cid : "");
        const char *sys = cJSON_GetStringValue(cJSON_GetObjectItem(sti, "system_message"));
        sides[i] = (fc_store_side){conv[i], m, sys ? sys : ""};
    }
    uuid_hex(id);
    if (fc_store_chat_create(st, id, anony ? "battle" : "sbs", sides, 2, ip, t) != FC_OK) return false;
    for (int i = 0; i < 2; i++) {
        const cJSON *sti = cJSON_GetArrayItem(states, i);
        const cJSON *off = cJSON_GetObjectItem(sti, "offset");
        int k = 0, from = cJSON_IsNumber(off) ? off->valueint : 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(sti, "messages"))
        {
            if (k++ < from) continue;
            const cJSON *text = cJSON_GetArrayItem(m, 1);
            char *owned = cJSON_IsString(text) ? NULL : cJSON_PrintUnformatted(text);
            fc_store_message_add(st, id, i, (k - from) % 2 ? "user" : "assistant",
                                 owned ? owned : text->valuestring, NULL, 0, t, t);
            free(owned);
        }
    }
    return fc_store_vote(st, id, type, t, NULL) == FC_OK;
}

int fc_web_import_log(fc_store *st, const char *path, long *n_records, long *n_votes, long *n_bad)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        FC_LOG_ERROR("import: cannot read %s", path);
        return FC_ERR_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long recs = 0, votes = 0, bad = 0;
    int rc = FC_OK;
    fc_store_set_durable(st, false);
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        cJSON *row = cJSON_ParseWithLength(line, (size_t)len);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(row, "type"));
        const cJSON *ts = cJSON_GetObjectItem(row, "tstamp");
        if (!row || !type || !cJSON_IsNumber(ts)) {
            bad++;
            cJSON_Delete(row);
            continue;
        }
        double t = ts->valuedouble;
        const char *ip = cJSON_GetStringValue(cJSON_GetObjectItem(row, "ip"));
        bool vote = !strcmp(type, "leftvote") || !strcmp(type, "rightvote") || !strcmp(type, "tievote") ||
                    !strcmp(type, "bothbad_vote");
        if (vote && import_vote(st, row, type, t, ip ? ip : "")) votes++;
        if (fc_store_event_add(st, t, type, NULL, line) != FC_OK) rc = FC_ERR_IO;
        else recs++;
        cJSON_Delete(row);
    }
    free(line);
    fclose(f);
    if (fc_store_set_durable(st, true) != FC_OK) rc = FC_ERR_IO;
    if (n_records) *n_records = recs;
    if (n_votes) *n_votes = votes;
    if (n_bad) *n_bad = bad;
    return rc;
}

/* ---- leaderboard ---- */

/* The stored votes as FastChat's logs, cleaned by clean_battle_data.py's
 * rules (arena/battles.h: leaked identities and error messages dropped,
 * anonymity from the logged labels), rated as elo_analysis rates them
 * (anonymous battles, BT with 100 bootstrap rounds). Recomputed when the
 * number of votes changed; the last JSON is kept. */
static void h_leaderboard(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_web *w = user;
    size_t len = 0;
    long n_votes = 0;
    char *logs = fc_store_votes_jsonl(w->store, &len, &n_votes);
    if (!logs) {
        reply_error(reply, 500, "cannot read the votes (see the server log)", 50001);
        return;
    }
    pthread_mutex_lock(&w->lb_mu);
    if (!w->lb_json || w->lb_votes != n_votes) {
        fc_battles *bs = fc_battles_new();
        int rc = fc_battles_read_log_mem(bs, logs, len, "votes", NULL);
        fc_battles_finish(bs);
        fc_rating_opts o = {.n_bootstrap = 100, .seed = 42, .anony_only = true}; /* fastchat leaderboard's defaults */
        fc_leaderboard lb = {0};
        if (rc == FC_OK && fc_leaderboard_compute(bs->b, bs->n, &o, &lb) == FC_OK) {
            /* extra fields spliced in front: a cJSON round trip would round the numbers */
            char *js = fc_leaderboard_json(&lb);
            if (js && js[0] == '{') {
                free(w->lb_json);
                w->lb_json = fc_xasprintf("{\"n_votes\":%ld,\"n_leaked\":%d,\"n_invalid\":%d%s%s", n_votes,
                                       bs->stats.n_leaked, bs->stats.n_invalid, js[1] == '}' ? "" : ",", js + 1);
                w->lb_votes = n_votes;
            }
            free(js);
            fc_leaderboard_free(&lb);
        }
        fc_battles_free(bs);
    }
    char *out = w->lb_json ? fc_xstrdup(w->lb_json) : NULL;
    pthread_mutex_unlock(&w->lb_mu);
    free(logs);
    if (!out) {
        reply_error(reply, 500, "the ratings could not be computed (see the server log)", 50001);
        return;
    }
    fc_http_reply_header(reply, "Cache-Control", "no-store");
    fc_http_reply_json(reply, 200, out);
    free(out);
}
