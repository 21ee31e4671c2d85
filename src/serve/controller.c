/*
 * controller.c: FastChat's controller (see controller.h for the endpoints
 * and the differences from fastchat/serve/controller.py).
 *
 * The registry is an array of workers in registration order (FastChat's
 * dict keeps insertion order, and shortest_queue breaks ties by it). One
 * mutex guards it; network calls (status requests, relays) run unlocked on
 * copies of what they need.
 */
#include "serve/controller.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/fc_base.h"
#include "net/http.h"
#include "net/nulstream.h"
#include "serve/protocol.h"
#include "serve/reqguard.h"

#define STATUS_TIMEOUT_S 5.0 /* controller.py get_worker_status */
/* Loops: every call a controller makes to a "worker" (status, relay) carries
 * RELAY_HEADER, the ids of the controllers it went through. A controller
 * refuses a call that already went through itself, or through MAX_HOPS
 * controllers (one parent above a child controller is fine). */
#define RELAY_HEADER "X-FastChat-Relay"
#define MAX_HOPS 2
/* A relay that gets nothing from its worker for STALL_PROBE_S asks the
 * worker's /worker_get_status (PROBE_TIMEOUT_S); a worker that does not
 * answer (frozen, SIGSTOP) is dropped and the client gets the 50006 chunk. */
#define STALL_PROBE_S 10.0
#define PROBE_TIMEOUT_S 5.0

typedef struct worker {
    char *name;            /* its URL, e.g. "http://localhost:21002" */
    char **model_names;
    int n_models;
    double speed;
    double queue_length;   /* float: shortest_queue adds 1 per pick; heartbeats set it */
    bool check_heart_beat;
    bool multimodal;
    double last_heart_beat; /* fc_time_sec() */
} worker;

/* What /worker_get_status returns. */
typedef struct worker_status {
    char **model_names;
    int n_models;
    double speed;
    double queue_length;
} worker_status;

struct fc_controller {
    fc_http_server *http;
    char id[24];           /* random, names this controller in RELAY_HEADER */
    char *host;            /* the listen address given (for the self-registration check) */
    enum fc_dispatch dispatch;
    double expiration_s;
    double worker_api_timeout_s;

    pthread_mutex_t mu;
    worker *workers;       /* (n_workers) in registration order */
    int n_workers, cap_workers;
    uint64_t rng;          /* xorshift64* state for the lottery */

    /* sweeper thread */
    pthread_t sweeper;
    pthread_cond_t cv;     /* wakes the sweeper at shutdown, and free() when relays end */
    bool stopping;
    int n_relays;          /* relay threads still running */
};

/* ---- small helpers ---- */

static double env_seconds(const char *name, double dflt)
{
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    double v = strtod(s, &end);
    return (end != s && v > 0) ? v : dflt;
}

static char *join_url(const char *base, const char *path)
{
    size_t a = strlen(base), b = strlen(path);
    char *u = fc_xmalloc(a + b + 1);
    memcpy(u, base, a);
    memcpy(u + a, path, b + 1);
    return u;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void reply_detail(fc_http_reply *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "detail", msg);
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(r, status, s);
    free(s);
    cJSON_Delete(o);
}

static void reply_cjson(fc_http_reply *r, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(r, 200, s);
    free(s);
    cJSON_Delete(o);
}

/* The RELAY_HEADER of a call made for req (NULL: a call of the controller's
 * own): the request's chain plus this controller; malloc'd "Name: value". */
static char *relay_header(const fc_controller *c, const fc_http_request *req)
{
    const char *in = req ? fc_http_header(req, RELAY_HEADER) : NULL;
    size_t n = strlen(RELAY_HEADER) + (in ? strlen(in) : 0) + sizeof c->id + 8;
    char *h = fc_xmalloc(n);
    snprintf(h, n, "%s: %s%s%s", RELAY_HEADER, in && *in ? in : "", in && *in ? "," : "", c->id);
    return h;
}

/* NULL when req may be passed on, else why not. */
static const char *relay_refusal(const fc_controller *c, const fc_http_request *req)
{
    const char *in = fc_http_header(req, RELAY_HEADER);
    if (!in || !*in) return NULL;
    int hops = 1;
    for (const char *p = in; *p; p++) hops += *p == ',';
    size_t idl = strlen(c->id);
    for (const char *p = in; (p = strstr(p, c->id)); p += idl)
        if ((p == in || p[-1] == ',' || p[-1] == ' ') && (p[idl] == 0 || p[idl] == ',' || p[idl] == ' '))
            return "a relay loop: the request already went through this controller";
    if (hops >= MAX_HOPS) return "too many relays: the request already went through 2 controllers";
    return NULL;
}

/* True when url names this controller itself: its port on a loopback or
 * any-address host, or on the host it listens on. */
static bool is_self_address(const fc_controller *c, const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    char host[256];
    size_t n = 0;
    if (*p == '[') {
        p++;
        while (*p && *p != ']' && n + 1 < sizeof host) host[n++] = *p++;
        if (*p == ']') p++;
    } else {
        while (*p && *p != ':' && *p != '/' && n + 1 < sizeof host) host[n++] = *p++;
    }
    host[n] = 0;
    long port = 80;
    if (*p == ':') port = strtol(p + 1, NULL, 10);
    if (port != fc_http_server_port(c->http)) return false;
    for (char *q = host; *q; q++) *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
    if (!strcmp(host, "localhost") || !strcmp(host, "0.0.0.0") || !strcmp(host, "::1") || !strcmp(host, "::") ||
        !strncmp(host, "127.", 4) || !strcmp(host, "localhost.localdomain") || !strcmp(host, "ip6-localhost"))
        return true;
    return c->host && !strcasecmp(host, c->host);
}

/* Reads a status object ({model_names, speed, queue_length}); false when it
 * is not one. */
static bool parse_status(const cJSON *o, worker_status *st)
{
    memset(st, 0, sizeof *st);
    if (!cJSON_IsObject(o)) return false;
    const cJSON *names = cJSON_GetObjectItemCaseSensitive(o, "model_names");
    const cJSON *speed = cJSON_GetObjectItemCaseSensitive(o, "speed");
    const cJSON *ql = cJSON_GetObjectItemCaseSensitive(o, "queue_length");
    if (!cJSON_IsArray(names)) return false;
    int n = cJSON_GetArraySize(names);
    st->model_names = fc_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    const cJSON *it;
    cJSON_ArrayForEach(it, names) {
        if (!cJSON_IsString(it)) {
            free_names(st->model_names, st->n_models);
            st->model_names = NULL;
            st->n_models = 0;
            return false;
        }
        st->model_names[st->n_models++] = fc_xstrdup(it->valuestring);
    }
    st->speed = cJSON_IsNumber(speed) ? speed->valuedouble : 1.0;
    st->queue_length = cJSON_IsNumber(ql) ? ql->valuedouble : 0.0;
    return true;
}

/* POST {worker}/worker_get_status (5 s). False when the worker does not
 * answer 200 with a status object. */
static bool fetch_status(const fc_controller *c, const fc_http_request *req, const char *worker_name,
                         worker_status *st)
{
    char *url = join_url(worker_name, "/worker_get_status");
    fc_http_response r = {0};
    char *hdr = relay_header(c, req);
    const char *hdrs[] = {hdr, NULL};
    bool ok = fc_http_post_json(url, "{}", 2, STATUS_TIMEOUT_S, hdrs, &r) && r.status == 200;
    free(hdr);
    if (!ok) {
        if (r.status == 0) FC_LOG_WARN("controller: get status fails: %s: %s", worker_name, r.error);
        else FC_LOG_WARN("controller: get status fails: %s: HTTP %d", worker_name, r.status);
    } else {
        cJSON *o = cJSON_ParseWithLength(r.body, r.len);
        ok = parse_status(o, st);
        if (!ok) FC_LOG_WARN("controller: get status fails: %s: malformed status", worker_name);
        cJSON_Delete(o);
    }
    fc_http_response_free(&r);
    free(url);
    return ok;
}

static void status_free(worker_status *st)
{
    free_names(st->model_names, st->n_models);
    st->model_names = NULL;
    st->n_models = 0;
}

/* ---- the registry (callers hold c->mu) ---- */

static int find_worker(const fc_controller *c, const char *name)
{
    for (int i = 0; i < c->n_workers; i++)
        if (!strcmp(c->workers[i].name, name)) return i;
    return -1;
}

static void worker_clear(worker *w)
{
    free(w->name);
    free_names(w->model_names, w->n_models);
    memset(w, 0, sizeof *w);
}

static void remove_worker_at(fc_controller *c, int i)
{
    worker_clear(&c->workers[i]);
    memmove(&c->workers[i], &c->workers[i + 1], sizeof(worker) * (size_t)(c->n_workers - i - 1));
    c->n_workers--;
}

/* Inserts or overwrites (keeping its place, as a Python dict does). Takes
 * ownership of st's names. */
static void upsert_worker(fc_controller *c, const char *name, bool check_hb, bool multimodal, worker_status *st)
{
    int i = find_worker(c, name);
    worker *w;
    if (i >= 0) {
        w = &c->workers[i];
        free_names(w->model_names, w->n_models);
        FC_LOG_INFO("controller: register an existing worker: %s", name);
    } else {
        if (c->n_workers == c->cap_workers) {
            c->cap_workers = c->cap_workers ? 2 * c->cap_workers : 8;
            c->workers = fc_xrealloc(c->workers, sizeof(worker) * (size_t)c->cap_workers);
        }
        w = &c->workers[c->n_workers++];
        memset(w, 0, sizeof *w);
        w->name = fc_xstrdup(name);
        FC_LOG_INFO("controller: register a new worker: %s", name);
    }
    w->model_names = st->model_names;
    w->n_models = st->n_models;
    st->model_names = NULL;
    st->n_models = 0;
    w->speed = st->speed;
    w->queue_length = st->queue_length;
    w->check_heart_beat = check_hb;
    w->multimodal = multimodal;
    w->last_heart_beat = fc_time_sec();
}

static bool serves(const worker *w, const char *model)
{
    for (int j = 0; j < w->n_models; j++)
        if (!strcmp(w->model_names[j], model)) return true;
    return false;
}

static double rng_uniform(fc_controller *c)
{
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

/* controller.py get_worker_address; returns a malloc'd address ("" when none). */
static char *dispatch(fc_controller *c, const char *model)
{
    char *out = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->dispatch == FC_DISPATCH_LOTTERY) {
        double norm = 0;
        for (int i = 0; i < c->n_workers; i++)
            if (serves(&c->workers[i], model) && c->workers[i].speed > 0) norm += c->workers[i].speed;
        if (norm >= 1e-4) {
            double u = rng_uniform(c) * norm, acc = 0;
            int pick = -1;
            for (int i = 0; i < c->n_workers; i++) {
                if (!serves(&c->workers[i], model) || c->workers[i].speed <= 0) continue;
                pick = i; /* the last candidate absorbs rounding */
                acc += c->workers[i].speed;
                if (u < acc) break;
            }
            if (pick >= 0) out = fc_xstrdup(c->workers[pick].name);
        }
    } else {
        int best = -1;
        double best_q = 0;
        for (int i = 0; i < c->n_workers; i++) {
            const worker *w = &c->workers[i];
            if (!serves(w, model)) continue;
            double q = w->speed > 0 ? w->queue_length / w->speed : INFINITY;
            if (best < 0 || q < best_q) best = i, best_q = q;
        }
        if (best >= 0) {
            c->workers[best].queue_length += 1;
            out = fc_xstrdup(c->workers[best].name);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return out ? out : fc_xstrdup("");
}

/* ---- the sweeper (controller.py heart_beat_controller) ---- */

static void *sweeper_main(void *arg)
{
    fc_controller *c = arg;
    double period = FC_MIN(c->expiration_s, 10.0);
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double t = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + period;
        ts.tv_sec = (time_t)t;
        ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
        int rc = 0; /* the cv is also signalled when relays end: wait out the period */
        while (!c->stopping && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stopping) break;
        double expire = fc_time_sec() - c->expiration_s;
        for (int i = 0; i < c->n_workers;) {
            if (c->workers[i].check_heart_beat && c->workers[i].last_heart_beat < expire) {
                FC_LOG_WARN("controller: remove stale worker %s (no heartbeat for %.0f s)", c->workers[i].name,
                            c->expiration_s);
                remove_worker_at(c, i);
            } else {
                i++;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- endpoints ---- */

static cJSON *parse_body(const fc_http_request *req)
{
    if (fc_json_has_nul(req->body, req->body_len)) return NULL; /* answered as malformed: 400 */
    return cJSON_ParseWithLength(req->body, req->body_len);
}

static void h_register_worker(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_controller *c = user;
    cJSON *o = parse_body(req);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "worker_name");
    const cJSON *chk = cJSON_GetObjectItemCaseSensitive(o, "check_heart_beat");
    const cJSON *st_j = cJSON_GetObjectItemCaseSensitive(o, "worker_status");
    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(o, "multimodal");
    if (!cJSON_IsObject(o) || !cJSON_IsString(name) || !*name->valuestring) {
        reply_detail(reply, 400, "register_worker: expected {\"worker_name\": url, \"check_heart_beat\": bool, ...}");
        cJSON_Delete(o);
        return;
    }
    if (is_self_address(c, name->valuestring)) {
        FC_LOG_WARN("controller: refused to register %s: this controller's own address", name->valuestring);
        reply_detail(reply, 400, "register_worker: the worker address is this controller's own address");
        cJSON_Delete(o);
        return;
    }
    const char *loop = relay_refusal(c, req);
    if (loop) {
        reply_detail(reply, 508, loop);
        cJSON_Delete(o);
        return;
    }
    bool check_hb = cJSON_IsTrue(chk) || (cJSON_IsNumber(chk) && chk->valuedouble != 0);
    bool multimodal = cJSON_IsTrue(mm);
    worker_status st;
    bool ok;
    if (st_j && !cJSON_IsNull(st_j) && !(cJSON_IsObject(st_j) && !st_j->child)) {
        ok = parse_status(st_j, &st);
        if (!ok) {
            reply_detail(reply, 400, "register_worker: malformed worker_status");
            cJSON_Delete(o);
            return;
        }
    } else {
        ok = fetch_status(c, req, name->valuestring, &st); /* unlocked: may take 5 s */
    }
    if (ok) {
        pthread_mutex_lock(&c->mu);
        upsert_worker(c, name->valuestring, check_hb, multimodal, &st);
        pthread_mutex_unlock(&c->mu);
        status_free(&st);
    }
    fc_http_reply_json(reply, 200, "null");
    cJSON_Delete(o);
}

static void h_refresh_all_workers(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_controller *c = user;
    /* Snapshot the names, ask each worker unlocked, then apply. */
    pthread_mutex_lock(&c->mu);
    int n = c->n_workers;
    char **names = fc_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    for (int i = 0; i < n; i++) names[i] = fc_xstrdup(c->workers[i].name);
    pthread_mutex_unlock(&c->mu);

    worker_status *st = fc_xcalloc((size_t)(n ? n : 1), sizeof(worker_status));
    bool *ok = fc_xcalloc((size_t)(n ? n : 1), sizeof(bool));
    for (int i = 0; i < n; i++) ok[i] = fetch_status(c, req, names[i], &st[i]);

    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < n; i++) {
        int k = find_worker(c, names[i]);
        if (k < 0) continue; /* removed meanwhile */
        if (ok[i]) {
            worker *w = &c->workers[k];
            upsert_worker(c, names[i], w->check_heart_beat, w->multimodal, &st[i]);
        } else {
            FC_LOG_WARN("controller: remove stale worker: %s", names[i]);
            remove_worker_at(c, k);
        }
    }
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < n; i++) status_free(&st[i]);
    free(st);
    free(ok);
    free_names(names, n);
    fc_http_reply_json(reply, 200, "null");
}

enum { LIST_ALL, LIST_MULTIMODAL, LIST_LANGUAGE };

static void list_models(fc_controller *c, fc_http_reply *reply, int which)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n_workers; i++) {
        const worker *w = &c->workers[i];
        if ((which == LIST_MULTIMODAL && !w->multimodal) || (which == LIST_LANGUAGE && w->multimodal)) continue;
        for (int j = 0; j < w->n_models; j++) {
            bool seen = false; /* a set, as FastChat's */
            const cJSON *it;
            cJSON_ArrayForEach(it, arr) if (!strcmp(it->valuestring, w->model_names[j])) seen = true;
            if (!seen) cJSON_AddItemToArray(arr, cJSON_CreateString(w->model_names[j]));
        }
    }
    pthread_mutex_unlock(&c->mu);
    reply_cjson(reply, o);
}

static void h_list_models(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    list_models(user, reply, LIST_ALL);
}
static void h_list_multimodal(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    list_models(user, reply, LIST_MULTIMODAL);
}
static void h_list_language(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    list_models(user, reply, LIST_LANGUAGE);
}

static void h_get_worker_address(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_controller *c = user;
    cJSON *o = parse_body(req);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!cJSON_IsString(model)) {
        reply_detail(reply, 400, "get_worker_address: expected {\"model\": name}");
        cJSON_Delete(o);
        return;
    }
    char *addr = dispatch(c, model->valuestring);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "address", addr);
    free(addr);
    cJSON_Delete(o);
    reply_cjson(reply, out);
}

static void h_receive_heart_beat(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_controller *c = user;
    cJSON *o = parse_body(req);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "worker_name");
    const cJSON *ql = cJSON_GetObjectItemCaseSensitive(o, "queue_length");
    if (!cJSON_IsString(name) || !cJSON_IsNumber(ql)) {
        reply_detail(reply, 400, "receive_heart_beat: expected {\"worker_name\": url, \"queue_length\": n}");
        cJSON_Delete(o);
        return;
    }
    pthread_mutex_lock(&c->mu);
    int i = find_worker(c, name->valuestring);
    if (i >= 0) {
        c->workers[i].queue_length = ql->valuedouble;
        c->workers[i].last_heart_beat = fc_time_sec();
    }
    pthread_mutex_unlock(&c->mu);
    if (i < 0) FC_LOG_INFO("controller: receive unknown heart beat: %s", name->valuestring);
    fc_http_reply_json(reply, 200, i >= 0 ? "{\"exist\": true}" : "{\"exist\": false}");
    cJSON_Delete(o);
}

static void h_worker_get_status(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_controller *c = user;
    const char *loop = relay_refusal(c, req);
    if (loop) { /* 508 Loop Detected: the asker drops us as a worker */
        reply_detail(reply, 508, loop);
        return;
    }
    pthread_mutex_lock(&c->mu);
    int n = c->n_workers;
    char **names = fc_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    for (int i = 0; i < n; i++) names[i] = fc_xstrdup(c->workers[i].name);
    pthread_mutex_unlock(&c->mu);

    char **all = NULL;
    int n_all = 0, cap = 0;
    double speed = 0, ql = 0;
    for (int i = 0; i < n; i++) {
        worker_status st;
        if (!fetch_status(c, req, names[i], &st)) continue;
        for (int j = 0; j < st.n_models; j++) {
            bool seen = false;
            for (int k = 0; k < n_all && !seen; k++) seen = !strcmp(all[k], st.model_names[j]);
            if (seen) continue;
            if (n_all == cap) all = fc_xrealloc(all, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 8));
            all[n_all++] = fc_xstrdup(st.model_names[j]);
        }
        speed += st.speed;
        ql += st.queue_length;
        status_free(&st);
    }
    /* sorted, as FastChat's sorted(list(set)) (byte order = Python's code point order) */
    for (int i = 1; i < n_all; i++)
        for (int j = i; j > 0 && strcmp(all[j - 1], all[j]) > 0; j--) {
            char *t = all[j];
            all[j] = all[j - 1];
            all[j - 1] = t;
        }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "model_names");
    for (int i = 0; i < n_all; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(all[i]));
    cJSON_AddNumberToObject(o, "speed", speed);
    cJSON_AddNumberToObject(o, "queue_length", ql);
    free_names(all, n_all);
    free_names(names, n);
    reply_cjson(reply, o);
}

static void h_test_connection(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_http_reply_json(reply, 200, "\"success\"");
}

/* ---- /worker_generate_stream relay ---- */

typedef struct relay {
    fc_controller *c;
    fc_http_stream *st;
    char *addr;       /* worker address, "" when none */
    char *params;     /* the request body */
    size_t params_len;
    fc_nulsplit *split;
    bool client_gone;
    char *hdr;        /* RELAY_HEADER line */
    double last_data; /* fc_time_sec() of the last bytes from the worker */
    const char *why;  /* set when keep_going stopped the transfer */
} relay;

static bool ctl_stopping(fc_controller *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stopping;
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* Drops a worker that stopped answering (it registers again when it can). */
static void drop_worker(fc_controller *c, const char *name)
{
    pthread_mutex_lock(&c->mu);
    int i = find_worker(c, name);
    if (i >= 0) remove_worker_at(c, i);
    pthread_mutex_unlock(&c->mu);
}

/* The relay's watch (every 100 ms): the controller stopping, or a worker
 * silent for STALL_PROBE_S that does not answer a status request. */
static bool relay_keep_going(void *user)
{
    relay *r = user;
    if (r->client_gone) return false;
    if (ctl_stopping(r->c)) {
        r->why = "the controller is shutting down";
        return false;
    }
    if (fc_time_sec() - r->last_data < STALL_PROBE_S) return true;
    char *url = join_url(r->addr, "/worker_get_status");
    fc_http_response resp = {0};
    const char *hdrs[] = {r->hdr, NULL};
    bool alive = fc_http_post_json(url, "{}", 2, PROBE_TIMEOUT_S, hdrs, &resp) && resp.status == 200;
    fc_http_response_free(&resp);
    free(url);
    if (alive) {
        r->last_data = fc_time_sec();
        return true;
    }
    FC_LOG_WARN("controller: worker %s sent nothing for %.0f s and does not answer; dropping it", r->addr,
                STALL_PROBE_S);
    drop_worker(r->c, r->addr);
    r->why = "the worker stopped answering";
    return false;
}

static void relay_error_chunk(relay *r, int code)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"text\": \"%s\", \"error_code\": %d}", FC_SERVER_ERROR_MSG, code);
    if (!r->client_gone) fc_http_stream_write(r->st, buf, (size_t)n + 1); /* with the NUL */
}

/* Relays whole NUL-terminated chunks only, so an error chunk never lands in
 * the middle of a relayed one. */
static bool relay_msg(const char *msg, size_t len, void *user)
{
    relay *r = user;
    if (len == 0) return true;
    if (!fc_http_stream_write(r->st, msg, len + 1)) { /* with its NUL */
        r->client_gone = true;
        return false; /* aborts the worker request; the worker cancels */
    }
    return true;
}

static bool relay_on_data(const char *data, size_t len, void *user)
{
    relay *r = user;
    r->last_data = fc_time_sec();
    return fc_nulsplit_feed(r->split, data, len, relay_msg, r);
}

static void *relay_main(void *arg)
{
    relay *r = arg;
    if (!*r->addr) {
        FC_LOG_INFO("controller: no worker for the relayed request");
        relay_error_chunk(r, FC_EC_CONTROLLER_NO_WORKER);
    } else {
        char *url = join_url(r->addr, "/worker_generate_stream");
        fc_http_response resp = {0};
        const char *hdrs[] = {r->hdr, NULL};
        fc_http_call call = {.headers = hdrs, .keep_going = relay_keep_going, .user = r};
        r->last_data = fc_time_sec();
        bool ok = fc_http_post_stream_ex(url, r->params, r->params_len, r->c->worker_api_timeout_s, &call,
                                         relay_on_data, r, &resp);
        if (!r->client_gone) {
            size_t tail_len = 0;
            const char *tail = fc_nulsplit_tail(r->split, &tail_len);
            if (ok && !fc_nulsplit_error(r->split) &&
                tail_len) /* a last chunk without its NUL, as iter_lines yields it */
                relay_msg(tail, tail_len, r);
            if (!ok || fc_nulsplit_error(r->split)) {
                FC_LOG_WARN("controller: worker timeout: %s: %s", r->addr,
                            ok ? "oversized chunk" : r->why ? r->why : resp.error);
                relay_error_chunk(r, FC_EC_CONTROLLER_WORKER_TIMEOUT);
            }
        }
        fc_http_response_free(&resp);
        free(url);
    }
    fc_http_stream_close(r->st);
    fc_controller *c = r->c;
    free(r->addr);
    free(r->params);
    free(r->hdr);
    fc_nulsplit_free(r->split);
    free(r);
    pthread_mutex_lock(&c->mu);
    c->n_relays--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void relay_on_disconnect(void *user)
{
    (void)user; /* the next write fails and aborts the transfer */
}

static void h_worker_generate_stream(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_controller *c = user;
    cJSON *o = parse_body(req);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!cJSON_IsObject(o) || !cJSON_IsString(model)) {
        reply_detail(reply, 400, "worker_generate_stream: expected a JSON object with \"model\"");
        cJSON_Delete(o);
        return;
    }
    const char *loop = relay_refusal(c, req);
    if (loop) { /* 508 Loop Detected, and FastChat's error chunk for stream readers */
        FC_LOG_WARN("controller: refused a relay: %s", loop);
        char buf[320];
        int n = snprintf(buf, sizeof buf, "{\"text\": \"%s\\n\\n(%s)\", \"error_code\": %d}", FC_SERVER_ERROR_MSG,
                         loop, FC_EC_CONTROLLER_WORKER_TIMEOUT);
        fc_http_reply_body(reply, 508, "application/octet-stream", buf, (size_t)n + 1);
        cJSON_Delete(o);
        return;
    }
    relay *r = fc_xcalloc(1, sizeof *r);
    r->c = c;
    r->hdr = relay_header(c, req);
    r->addr = dispatch(c, model->valuestring);
    cJSON_Delete(o);
    r->params = fc_xmalloc(req->body_len + 1);
    memcpy(r->params, req->body, req->body_len + 1);
    r->params_len = req->body_len;
    r->split = fc_nulsplit_new(0);
    r->st = fc_http_reply_stream(reply, 200, "application/octet-stream");
    fc_http_stream_on_disconnect(r->st, relay_on_disconnect, NULL);

    pthread_mutex_lock(&c->mu);
    c->n_relays++;
    pthread_mutex_unlock(&c->mu);
    relay_main(r); /* on this handler's own thread: the stream is already open */
}

/* ---- lifetime ---- */

int fc_dispatch_from_str(const char *s)
{
    if (!s) return -1;
    if (!strcmp(s, "lottery")) return FC_DISPATCH_LOTTERY;
    if (!strcmp(s, "shortest_queue")) return FC_DISPATCH_SHORTEST_QUEUE;
    return -1;
}

const char *fc_dispatch_name(enum fc_dispatch d)
{
    return d == FC_DISPATCH_LOTTERY ? "lottery" : "shortest_queue";
}

fc_controller *fc_controller_start(const fc_controller_params *p)
{
    fc_controller *c = fc_xcalloc(1, sizeof *c);
    c->dispatch = p->dispatch;
    c->expiration_s = p->heart_beat_expiration_s > 0
                          ? p->heart_beat_expiration_s
                          : env_seconds("FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION", 90);
    c->worker_api_timeout_s = env_seconds("FASTCHAT_WORKER_API_TIMEOUT", 100);
    if (getrandom(&c->rng, sizeof c->rng, 0) != (ssize_t)sizeof c->rng || !c->rng)
        c->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)time(NULL);
    snprintf(c->id, sizeof c->id, "ctl-%016llx", (unsigned long long)(c->rng * 0x2545F4914F6CDD1DULL));
    c->host = p->host ? fc_xstrdup(p->host) : NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    fc_http_global_init();

    fc_http_server_params hp = {0};
    hp.host = p->host;
    hp.port = p->port;
    c->http = fc_http_server_new(&hp);
    if (!c->http) goto fail;
    fc_http_server_route(c->http, "POST", "/register_worker", h_register_worker, c);
    fc_http_server_route(c->http, "POST", "/refresh_all_workers", h_refresh_all_workers, c);
    fc_http_server_route(c->http, "POST", "/list_models", h_list_models, c);
    fc_http_server_route(c->http, "POST", "/list_multimodal_models", h_list_multimodal, c);
    fc_http_server_route(c->http, "POST", "/list_language_models", h_list_language, c);
    fc_http_server_route(c->http, "POST", "/get_worker_address", h_get_worker_address, c);
    fc_http_server_route(c->http, "POST", "/receive_heart_beat", h_receive_heart_beat, c);
    fc_http_server_route(c->http, "POST", "/worker_generate_stream", h_worker_generate_stream, c);
    fc_http_server_route(c->http, "POST", "/worker_get_status", h_worker_get_status, c);
    fc_http_server_route(c->http, "GET", "/test_connection", h_test_connection, c);
    if (pthread_create(&c->sweeper, NULL, sweeper_main, c) != 0) {
        FC_LOG_ERROR("%s: cannot start the heartbeat sweeper", __func__);
        goto fail;
    }
    if (fc_http_server_start(c->http) != FC_OK) {
        pthread_mutex_lock(&c->mu);
        c->stopping = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->sweeper, NULL);
        goto fail;
    }
    FC_LOG_INFO("controller: listening on port %d, dispatch %s, heartbeat expiration %.0f s",
                fc_http_server_port(c->http), fc_dispatch_name(c->dispatch), c->expiration_s);
    return c;
fail:
    fc_http_server_free(c->http);
    free(c->host);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

int fc_controller_port(const fc_controller *c)
{
    return fc_http_server_port(c->http);
}

void fc_controller_free(fc_controller *c)
{
    if (!c) return;
    /* relays see stopping and end with the 50006 chunk; then the server stops */
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    fc_http_server_free(c->http);
    pthread_join(c->sweeper, NULL);
    pthread_mutex_lock(&c->mu);
    while (c->n_relays > 0) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->n_workers; i++) worker_clear(&c->workers[i]);
    free(c->workers);
    free(c->host);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
