/*
 * http_server.c: the HTTP server half of http.h, on GNU libmicrohttpd.
 *
 * Threads. libmicrohttpd runs in thread-per-connection mode (with poll(), so
 * descriptors above FD_SETSIZE work): each connection has its own thread for
 * its whole keep-alive life. When a request is complete, that thread starts
 * a handler thread for it and waits only until the handler answers -- with a
 * body, or by opening a stream. So a handler may block as long as it likes
 * (wait for the engine, relay another server's stream and write it as it
 * comes) while what it has answered is already on the wire. A streamed
 * response is read by libmicrohttpd through a content-reader callback that
 * blocks on the stream's condition variable until data, the end, or the
 * client's departure. Measured on the survey machine (shared/reference/
 * dependencies.md §2) this model is slower than epoll with suspend/resume at
 * thousands of streams, but it never starves one request behind another's
 * blocking handler, and it detects a client that leaves while nothing is
 * being written (see below), which suspended connections cannot.
 *
 * Streams. An fc_http_stream is a byte queue under a mutex, shared by three
 * owners, each holding one reference: the writer (until fc_http_stream_close),
 * the libmicrohttpd response (until it is destroyed) and the request context
 * (until the request-completed callback). Writers append and signal; the
 * content reader drains. The client is gone when libmicrohttpd reports the
 * request terminated with an error (a failed send) or when the content
 * reader, idle for STREAM_POLL_MS, finds the socket closed by the peer
 * (poll() POLLHUP/POLLRDHUP, or a zero-byte MSG_PEEK). Either way the
 * disconnect callback runs once, on a server thread, unless the writer has
 * already closed the stream, and fc_http_stream_close waits for a callback in
 * progress to return, so the writer may free what the callback uses as soon
 * as close returns.
 *
 * TLS (FastChat's --ssl): after fc_http_tls_enable_from_env every server
 * started serves HTTPS through libmicrohttpd's GnuTLS support
 * (MHD_USE_TLS with the PEM key and certificate in memory).
 *
 * Not done here: HTTP/2, request bodies in
 * multipart/form-data or urlencoded form (handlers get the raw body).
 */
#include "http.h"
#include "base/fc_base.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAM_POLL_MS 250          /* idle stream: how often the peer is checked */
#define STREAM_BLOCK (64 * 1024)    /* most bytes one content-reader call returns */
#define STOP_GRACE_MS 1000          /* shutdown: time handlers get to send a last answer */

typedef struct kv {
    char *key, *value;
} kv;

typedef struct route {
    char *method;   /* NULL: any */
    char *path;     /* without the trailing '*' when prefix */
    size_t path_len;
    bool prefix;
    fc_http_handler h;
    void *user;
} route;

struct fc_http_server {
    char *host, *allow_origins, *allow_methods, *allow_headers;
    bool allow_credentials;
    int port;
    size_t max_body;
    int connection_limit;
    double timeout_s;
    route *routes;
    int n_routes, cap_routes;
    struct MHD_Daemon *d;
    int bound_port;
    char last_mhd_error[256];
    pthread_mutex_t mu;          /* guards streams, n_handlers, n_open, stopping */
    pthread_cond_t cv;           /* n_handlers or n_open reached 0, or a stream detached */
    fc_http_stream *streams;     /* live streams attached to connections */
    int n_handlers;
    int n_open;                  /* requests begun and not yet completed (answer sent or connection lost) */
    bool stopping;
    bool quiesced;               /* no longer accepting (listen_fd is ours to close) */
    bool refused;                /* no longer listening (listen_fd shut down) */
    MHD_socket listen_fd;
    fc_http_server *live_next;   /* the started servers of the process (live_mu) */
    /* fc_http_server_on_answer */
    void (*on_answer)(const char *route, int status, double seconds, void *user);
    void *on_answer_user;
};

struct fc_http_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* data, close, gone, callback finished */
    atomic_int refs;
    char *buf;                   /* queued bytes [off, len) */
    size_t off, len, cap;
    bool closed;                 /* writer is done */
    bool gone;                   /* client left or server stopping */
    bool notified;               /* disconnect callback delivered (or never to be) */
    bool in_cb;                  /* the disconnect callback is running */
    pthread_t cb_thread;
    void (*on_disc)(void *);
    void *on_disc_user;
    int fd;                      /* the connection's socket, -1 when unattached */
    fc_http_server *srv;         /* set while attached to the server's list */
    fc_http_stream *prev, *next;
};

/* One HTTP request: what the handler sees, and its answer. Shared by the
 * connection thread and the handler thread (two references). */
typedef struct hreq {
    fc_http_server *srv;
    atomic_int refs;
    struct MHD_Connection *conn;
    int fd;
    fc_http_request req;
    char *method, *path;
    char *body;
    size_t body_len, body_cap;
    char peer[64];
    kv *headers, *args;
    int n_headers, n_args, cap_headers, cap_args;
    bool too_large;              /* body exceeded max_body: 413 */
    bool queued;                 /* a response was queued on the connection */
    bool completed_ok;
    atomic_bool completed;       /* the request-completed callback ran */
    fc_http_reply *reply;
    fc_http_stream *stream;      /* the request context's stream reference */
} hreq;

struct fc_http_reply {
    hreq *h;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool answered, handler_done;
    int status;
    char *ctype;
    char *body;
    size_t len;
    kv *headers;
    int n_headers, cap_headers;
    fc_http_stream *stream;      /* answered with a stream (writer's copy of the pointer) */
};

/* ---- small helpers ---- */

static void kv_add(kv **arr, int *n, int *cap, const char *k, const char *v)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = fc_xrealloc(*arr, sizeof(kv) * (size_t)*cap);
    }
    (*arr)[*n].key = fc_xstrdup(k ? k : "");
    (*arr)[*n].value = fc_xstrdup(v ? v : "");
    (*n)++;
}

static void kv_free(kv *arr, int n)
{
    for (int i = 0; i < n; i++) {
        free(arr[i].key);
        free(arr[i].value);
    }
    free(arr);
}

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* True when the peer has closed or reset the connection. A request the
 * client pipelined behind this one counts as alive. */
static bool peer_closed(int fd)
{
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP)) return true;
    if (p.revents & POLLIN) {
        char c;
        ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (r == 0) return true;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    }
    return false;
}

/* ---- streams ---- */

static fc_http_stream *stream_new(void)
{
    fc_http_stream *s = fc_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    cond_init_monotonic(&s->cv);
    atomic_init(&s->refs, 1);
    s->fd = -1;
    return s;
}

static void stream_unref(fc_http_stream *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    FC_ASSERT(s->srv == NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->buf);
    free(s);
}

/* Delivers the disconnect callback once, unless the writer has closed.
 * Called with s->mu held; releases it. */
static void notify_unlock(fc_http_stream *s)
{
    if (s->closed || s->notified || !s->on_disc) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->notified = true;
    s->in_cb = true;
    s->cb_thread = pthread_self();
    void (*cb)(void *) = s->on_disc;
    void *user = s->on_disc_user;
    pthread_mutex_unlock(&s->mu);
    cb(user);
    pthread_mutex_lock(&s->mu);
    s->in_cb = false;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The client is gone (or the server is stopping): wake the reader, fail
 * further writes, and tell the writer's side. */
static void stream_gone(fc_http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->gone = true;
    pthread_cond_broadcast(&s->cv);
    notify_unlock(s);
}

bool fc_http_stream_write(fc_http_stream *s, const char *data, size_t len)
{
    if (!s) return false;
    pthread_mutex_lock(&s->mu);
    if (s->gone || s->closed) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    if (len > 0) {
        if (s->off > 0 && s->off == s->len) s->off = s->len = 0;
        if (s->len + len > s->cap) {
            if (s->off > 0) { /* reclaim what the reader has consumed */
                memmove(s->buf, s->buf + s->off, s->len - s->off);
                s->len -= s->off;
                s->off = 0;
            }
            if (s->len + len > s->cap) {
                size_t cap = s->cap ? s->cap : 4096;
                while (cap < s->len + len) cap *= 2;
                s->buf = fc_xrealloc(s->buf, cap);
                s->cap = cap;
            }
        }
        memcpy(s->buf + s->len, data, len);
        s->len += len;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return true;
}

void fc_http_stream_close(fc_http_stream *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->closed = true;
    pthread_cond_broadcast(&s->cv);
    /* a disconnect callback running on another thread finishes first, so the
     * caller may free its user data once we return */
    while (s->in_cb && !pthread_equal(s->cb_thread, pthread_self())) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    stream_unref(s);
}

void fc_http_stream_on_disconnect(fc_http_stream *s, void (*cb)(void *user), void *user)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->on_disc = cb;
    s->on_disc_user = user;
    if (s->gone) notify_unlock(s); /* the client left before the callback was set */
    else pthread_mutex_unlock(&s->mu);
}

/* libmicrohttpd's content reader: runs on the connection's thread. */
static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    fc_http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->gone) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (s->len > s->off) {
            size_t n = s->len - s->off;
            if (n > max) n = max;
            memcpy(out, s->buf + s->off, n);
            s->off += n;
            if (s->off == s->len) s->off = s->len = 0;
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)n;
        }
        if (s->closed) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        struct timespec ts;
        deadline_in(&ts, STREAM_POLL_MS);
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT && s->len == s->off && !s->closed &&
            !s->gone) {
            int fd = s->fd;
            pthread_mutex_unlock(&s->mu);
            if (peer_closed(fd)) {
                stream_gone(s);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            pthread_mutex_lock(&s->mu);
        }
    }
}

/* libmicrohttpd destroys the response: drop its reference. */
static void stream_response_free(void *cls) { stream_unref(cls); }

static void stream_attach(fc_http_server *srv, fc_http_stream *s, int fd)
{
    pthread_mutex_lock(&srv->mu);
    pthread_mutex_lock(&s->mu);
    s->fd = fd;
    s->srv = srv;
    s->next = srv->streams;
    if (s->next) s->next->prev = s;
    srv->streams = s;
    bool stop = srv->stopping;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&srv->mu);
    if (stop) stream_gone(s);
}

static void stream_detach(fc_http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    fc_http_server *srv = s->srv;
    pthread_mutex_unlock(&s->mu);
    if (!srv) return;
    pthread_mutex_lock(&srv->mu);
    pthread_mutex_lock(&s->mu);
    if (s->prev) s->prev->next = s->next;
    else srv->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->srv = NULL;
    s->fd = -1;
    pthread_mutex_unlock(&s->mu);
    pthread_cond_broadcast(&srv->cv); /* a stopping server waits for streams to end */
    pthread_mutex_unlock(&srv->mu);
}

/* ---- requests ---- */

const char *fc_http_header(const fc_http_request *r, const char *name)
{
    const hreq *h = r->impl;
    for (int i = 0; i < h->n_headers; i++)
        if (!strcasecmp(h->headers[i].key, name)) return h->headers[i].value;
    return NULL;
}

const char *fc_http_query(const fc_http_request *r, const char *name)
{
    const hreq *h = r->impl;
    for (int i = 0; i < h->n_args; i++)
        if (!strcmp(h->args[i].key, name)) return h->args[i].value;
    return NULL;
}

bool fc_http_request_server_stopping(const fc_http_request *r)
{
    hreq *h = r->impl;
    pthread_mutex_lock(&h->srv->mu);
    bool stop = h->srv->stopping;
    pthread_mutex_unlock(&h->srv->mu);
    return stop;
}

bool fc_http_request_client_gone(const fc_http_request *r)
{
    hreq *h = r->impl;
    if (atomic_load(&h->completed)) return !h->completed_ok;
    pthread_mutex_lock(&h->srv->mu);
    bool stop = h->srv->stopping;
    pthread_mutex_unlock(&h->srv->mu);
    if (stop) return true;
    /* while the handler has not answered, the connection thread waits for
     * it, so the socket is still this request's */
    pthread_mutex_lock(&h->reply->mu);
    bool answered = h->reply->answered;
    pthread_mutex_unlock(&h->reply->mu);
    return answered ? false : peer_closed(h->fd);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    hreq *h = cls;
    kv_add(&h->headers, &h->n_headers, &h->cap_headers, key, value);
    return MHD_YES;
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    hreq *h = cls;
    kv_add(&h->args, &h->n_args, &h->cap_args, key, value);
    return MHD_YES;
}

/* RFC 9112 6.3: a message with Transfer-Encoding and Content-Length, or with
 * Content-Length values that differ, has no trustworthy length: refuse it
 * (400) and close the connection, whatever libmicrohttpd would pick. */
typedef struct framing {
    int n_cl, n_te;
    bool have, cl_differ, cl_bad;
    unsigned long long cl;
} framing;

static enum MHD_Result scan_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    framing *f = cls;
    if (!key) return MHD_YES;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        f->n_cl++;
        /* "5, 5" is one value repeated (RFC 9110 8.6); each item must be digits */
        const char *p = value ? value : "";
        bool any = false;
        for (;;) {
            while (*p == ' ' || *p == '\t') p++;
            const char *e = p;
            unsigned long long v = 0;
            while (*e >= '0' && *e <= '9' && v < (1ULL << 60)) v = v * 10 + (unsigned)(*e++ - '0');
            const char *t = e;
            while (*t == ' ' || *t == '\t') t++;
            if (e == p || (*t && *t != ',')) {
                f->cl_bad = true;
                break;
            }
            any = true;
            if (f->have && v != f->cl) f->cl_differ = true;
            f->have = true;
            f->cl = v;
            if (!*t) break;
            p = t + 1;
        }
        if (!any) f->cl_bad = true;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->n_te++;
    }
    return MHD_YES;
}

static const char *framing_error(struct MHD_Connection *conn)
{
    framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, scan_framing, &f);
    if (f.n_te && f.n_cl) return "Transfer-Encoding and Content-Length together";
    if (f.cl_bad) return "malformed Content-Length";
    if (f.cl_differ) return "Content-Length headers that differ";
    return NULL;
}

static hreq *hreq_new(fc_http_server *srv, struct MHD_Connection *conn, const char *url, const char *method)
{
    hreq *h = fc_xcalloc(1, sizeof *h);
    h->srv = srv;
    atomic_init(&h->refs, 1);
    atomic_init(&h->completed, false);
    h->conn = conn;
    h->method = fc_xstrdup(method);
    h->path = fc_xstrdup(url);
    h->fd = -1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) h->fd = ci->connect_fd;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, h->peer, sizeof h->peer);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, h->peer, sizeof h->peer);
    }
    MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, h);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, h);
    h->body = fc_xmalloc(1);
    h->body[0] = 0;
    h->body_cap = 1;
    h->req = (fc_http_request){.method = h->method, .path = h->path, .body = h->body, .peer = h->peer, .impl = h};
    h->reply = fc_xcalloc(1, sizeof *h->reply);
    h->reply->h = h;
    pthread_mutex_init(&h->reply->mu, NULL);
    pthread_cond_init(&h->reply->cv, NULL);
    return h;
}

static void hreq_unref(hreq *h)
{
    if (!h || atomic_fetch_sub(&h->refs, 1) != 1) return;
    fc_http_reply *r = h->reply;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->ctype);
    free(r->body);
    kv_free(r->headers, r->n_headers);
    free(r);
    free(h->method);
    free(h->path);
    free(h->body);
    kv_free(h->headers, h->n_headers);
    kv_free(h->args, h->n_args);
    free(h);
}

/* ---- replies (handler side) ---- */

void fc_http_reply_header(fc_http_reply *r, const char *name, const char *value)
{
    pthread_mutex_lock(&r->mu);
    if (r->answered) FC_LOG_WARN("fc_http_reply_header: %s set after the reply was sent; ignored", name);
    else kv_add(&r->headers, &r->n_headers, &r->cap_headers, name, value);
    pthread_mutex_unlock(&r->mu);
}

void fc_http_reply_body(fc_http_reply *r, int status, const char *content_type, const char *body, size_t len)
{
    pthread_mutex_lock(&r->mu);
    if (r->answered) {
        pthread_mutex_unlock(&r->mu);
        FC_LOG_WARN("fc_http_reply_body: %s %s answered twice; second answer ignored", r->h->method, r->h->path);
        return;
    }
    r->status = status;
    r->ctype = content_type ? fc_xstrdup(content_type) : NULL;
    r->body = fc_xmalloc(len + 1);
    if (len) memcpy(r->body, body, len);
    r->body[len] = 0;
    r->len = len;
    r->answered = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void fc_http_reply_json(fc_http_reply *r, int status, const char *json)
{
    fc_http_reply_body(r, status, "application/json", json, strlen(json));
}

fc_http_stream *fc_http_reply_stream(fc_http_reply *r, int status, const char *content_type)
{
    fc_http_stream *s = stream_new();
    pthread_mutex_lock(&r->mu);
    if (r->answered) {
        pthread_mutex_unlock(&r->mu);
        FC_LOG_WARN("fc_http_reply_stream: %s %s answered twice; the stream goes nowhere", r->h->method, r->h->path);
        s->gone = s->notified = true;
        return s;
    }
    atomic_fetch_add(&s->refs, 2); /* the response's and the request context's */
    r->status = status;
    r->ctype = content_type ? fc_xstrdup(content_type) : NULL;
    r->stream = s;
    r->answered = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return s;
}

/* ---- routing and responses (connection side) ---- */

static bool origin_allowed(const fc_http_server *srv, const char *origin, bool *wildcard)
{
    *wildcard = false;
    if (!srv->allow_origins || !origin) return false;
    const char *p = srv->allow_origins;
    size_t ol = strlen(origin);
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if (t - p == 1 && *p == '*') *wildcard = true;
        else if ((size_t)(t - p) == ol && !strncmp(p, origin, ol)) return true;
        p = e;
    }
    return *wildcard;
}

/* CORS headers of an ordinary response, as Starlette's CORSMiddleware adds
 * them: only for requests that carry an Origin. */
static void add_cors(const fc_http_server *srv, const hreq *h, struct MHD_Response *resp)
{
    const char *origin = fc_http_header(&h->req, "Origin");
    bool wildcard;
    if (!origin_allowed(srv, origin, &wildcard)) return;
    if (wildcard && !srv->allow_credentials) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    } else {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (srv->allow_credentials) MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
}

static enum MHD_Result queue_body(hreq *h, int status, const char *ctype, char *body, size_t len,
                                  const kv *extra, int n_extra)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(resp, "Content-Type", ctype);
    for (int i = 0; i < n_extra; i++) MHD_add_response_header(resp, extra[i].key, extra[i].value);
    add_cors(h->srv, h, resp);
    enum MHD_Result ret = MHD_queue_response(h->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    h->queued = true;
    return ret;
}

static enum MHD_Result queue_json(hreq *h, int status, const char *json)
{
    return queue_body(h, status, "application/json", fc_xstrdup(json), strlen(json), NULL, 0);
}

static enum MHD_Result queue_too_large(hreq *h)
{
    char msg[160];
    snprintf(msg, sizeof msg, "{\"detail\":\"Request body too large (limit %zu bytes)\"}", h->srv->max_body);
    return queue_json(h, 413, msg);
}

/* An OPTIONS preflight (Starlette CORSMiddleware.preflight_response). */
static enum MHD_Result queue_preflight(hreq *h)
{
    fc_http_server *srv = h->srv;
    const char *origin = fc_http_header(&h->req, "Origin");
    bool wildcard;
    if (!origin_allowed(srv, origin, &wildcard))
        return queue_body(h, 400, "text/plain; charset=utf-8", fc_xstrdup("Disallowed CORS origin"), 22, NULL, 0);
    struct MHD_Response *resp = MHD_create_response_from_buffer(2, (void *)"OK", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", wildcard && !srv->allow_credentials ? "*" : origin);
    if (!(wildcard && !srv->allow_credentials)) MHD_add_response_header(resp, "Vary", "Origin");
    const char *m = srv->allow_methods && strcmp(srv->allow_methods, "*") ? srv->allow_methods
                                                                        : "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", m);
    const char *want = fc_http_header(&h->req, "Access-Control-Request-Headers");
    if (!srv->allow_headers || !strcmp(srv->allow_headers, "*")) {
        if (want) MHD_add_response_header(resp, "Access-Control-Allow-Headers", want);
    } else {
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", srv->allow_headers);
    }
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    if (srv->allow_credentials) MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
    enum MHD_Result ret = MHD_queue_response(h->conn, 200, resp);
    MHD_destroy_response(resp);
    h->queued = true;
    return ret;
}

static bool path_matches(const route *rt, const char *path)
{
    if (rt->prefix) return !strncmp(path, rt->path, rt->path_len);
    return !strcmp(path, rt->path);
}

typedef struct job {
    hreq *h;
    const route *rt;
} job;

static void *handler_main(void *arg)
{
    job *j = arg;
    hreq *h = j->h;
    fc_http_server *srv = h->srv;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    j->rt->h(&h->req, h->reply, j->rt->user);
    fc_http_reply *r = h->reply;
    if (srv->on_answer) {
        pthread_mutex_lock(&r->mu);
        int status = r->answered ? r->status : 500;
        pthread_mutex_unlock(&r->mu);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        char label[512];
        snprintf(label, sizeof label, "%s%s", j->rt->path, j->rt->prefix ? "*" : "");
        srv->on_answer(label, status,
                       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9, srv->on_answer_user);
    }
    free(j);
    pthread_mutex_lock(&r->mu);
    r->handler_done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    hreq_unref(h);
    pthread_mutex_lock(&srv->mu);
    if (--srv->n_handlers == 0) pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* Runs the route's handler on its own thread and queues its answer. */
static enum MHD_Result dispatch(hreq *h, const route *rt)
{
    fc_http_server *srv = h->srv;
    fc_http_reply *r = h->reply;
    job *j = fc_xmalloc(sizeof *j);
    j->h = h;
    j->rt = rt;
    atomic_fetch_add(&h->refs, 1);
    pthread_mutex_lock(&srv->mu);
    srv->n_handlers++;
    pthread_mutex_unlock(&srv->mu);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int err = pthread_create(&t, &attr, handler_main, j);
    pthread_attr_destroy(&attr);
    if (err != 0) { /* no thread: run it here (streams then start when it returns) */
        FC_LOG_WARN("http: cannot start a handler thread (%s); running inline", strerror(err));
        handler_main(j);
    }
    pthread_mutex_lock(&r->mu);
    while (!r->answered && !r->handler_done) pthread_cond_wait(&r->cv, &r->mu);
    bool answered = r->answered;
    pthread_mutex_unlock(&r->mu);
    if (!answered) {
        FC_LOG_ERROR("http: the handler of %s %s returned without answering", h->method, h->path);
        return queue_json(h, 500, "{\"detail\":\"Internal Server Error\"}");
    }
    /* the reply is immutable once answered */
    if (!r->stream) {
        char *body = r->body;
        r->body = NULL;
        return queue_body(h, r->status, r->ctype, body, r->len, r->headers, r->n_headers);
    }
    fc_http_stream *s = r->stream;
    h->stream = s; /* the request context's reference */
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, s,
                                                                  stream_response_free);
    if (!resp) {
        stream_unref(s); /* the response's reference */
        stream_gone(s);
        return MHD_NO;
    }
    if (r->ctype) MHD_add_response_header(resp, "Content-Type", r->ctype);
    for (int i = 0; i < r->n_headers; i++) MHD_add_response_header(resp, r->headers[i].key, r->headers[i].value);
    add_cors(srv, h, resp);
    stream_attach(srv, s, h->fd);
    enum MHD_Result ret = MHD_queue_response(h->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    h->queued = true;
    if (ret != MHD_YES) stream_gone(s);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)version;
    fc_http_server *srv = cls;
    hreq *h = *con_cls;
    if (!h) { /* headers are in */
        h = hreq_new(srv, conn, url, method);
        *con_cls = h;
        pthread_mutex_lock(&srv->mu);
        srv->n_open++;
        pthread_mutex_unlock(&srv->mu);
        const char *bad = framing_error(conn);
        if (bad) {
            char msg[160];
            snprintf(msg, sizeof msg, "{\"detail\":\"Bad Request: %s\"}", bad);
            h->too_large = true; /* the body is not read: discard it */
            struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(msg), fc_xstrdup(msg), MHD_RESPMEM_MUST_FREE);
            if (!resp) return MHD_NO;
            MHD_add_response_header(resp, "Content-Type", "application/json");
            MHD_add_response_header(resp, "Connection", "close");
            enum MHD_Result ret = MHD_queue_response(conn, 400, resp);
            MHD_destroy_response(resp);
            h->queued = true;
            return ret;
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno == 0 && end != cl && n > srv->max_body) {
                h->too_large = true;
                return queue_too_large(h); /* the body is discarded, the connection closed */
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (h->queued || h->too_large) return MHD_YES;
        if (h->body_len + n > srv->max_body) {
            h->too_large = true;
            free(h->body);
            h->body = fc_xmalloc(1);
            h->body[0] = 0;
            h->body_len = 0;
            h->body_cap = 1;
            return MHD_YES;
        }
        if (h->body_len + n + 1 > h->body_cap) {
            size_t cap = h->body_cap * 2;
            while (cap < h->body_len + n + 1) cap *= 2;
            h->body = fc_xrealloc(h->body, cap);
            h->body_cap = cap;
        }
        memcpy(h->body + h->body_len, upload_data, n);
        h->body_len += n;
        h->body[h->body_len] = 0;
        return MHD_YES;
    }
    if (h->queued) return MHD_YES;
    if (h->too_large) return queue_too_large(h);

    h->req = (fc_http_request){.method = h->method, .path = h->path, .body = h->body, .body_len = h->body_len,
                               .peer = h->peer, .impl = h};
    if (srv->allow_origins && !strcmp(method, "OPTIONS") && fc_http_header(&h->req, "Origin") &&
        fc_http_header(&h->req, "Access-Control-Request-Method"))
        return queue_preflight(h);
    bool path_hit = false;
    for (int i = 0; i < srv->n_routes; i++) {
        const route *rt = &srv->routes[i];
        if (!path_matches(rt, h->path)) continue;
        path_hit = true;
        if (!rt->method || !strcmp(rt->method, method) || (!strcmp(method, "HEAD") && !strcmp(rt->method, "GET")))
            return dispatch(h, rt);
    }
    if (path_hit) {
        /* FastAPI answers a known path with the wrong method this way */
        char allow[256] = "";
        for (int i = 0; i < srv->n_routes; i++) {
            const route *rt = &srv->routes[i];
            if (!rt->method || !path_matches(rt, h->path) || strstr(allow, rt->method)) continue;
            size_t l = strlen(allow);
            snprintf(allow + l, sizeof allow - l, "%s%s", l ? ", " : "", rt->method);
        }
        kv hdr = {.key = "Allow", .value = allow};
        const char *msg = "{\"detail\":\"Method Not Allowed\"}";
        return queue_body(h, 405, "application/json", fc_xstrdup(msg), strlen(msg), &hdr, 1);
    }
    return queue_json(h, 404, "{\"detail\":\"Not Found\"}");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    fc_http_server *srv = cls;
    (void)conn;
    hreq *h = *con_cls;
    if (!h) return;
    *con_cls = NULL;
    pthread_mutex_lock(&srv->mu);
    if (--srv->n_open == 0) pthread_cond_broadcast(&srv->cv); /* a stopping server waits for answers to leave */
    pthread_mutex_unlock(&srv->mu);
    h->completed_ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    atomic_store(&h->completed, true);
    if (h->stream) {
        stream_detach(h->stream);
        if (!h->completed_ok) stream_gone(h->stream);
        stream_unref(h->stream);
        h->stream = NULL;
    }
    hreq_unref(h);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    fc_http_server *srv = cls;
    vsnprintf(srv->last_mhd_error, sizeof srv->last_mhd_error, fmt, ap);
    size_t n = strlen(srv->last_mhd_error);
    while (n > 0 && (srv->last_mhd_error[n - 1] == '\n' || srv->last_mhd_error[n - 1] == ' '))
        srv->last_mhd_error[--n] = 0;
    FC_LOG_DEBUG("libmicrohttpd: %s", srv->last_mhd_error);
}

/* ---- server lifetime ---- */

/* The started servers of this process, for fc_http_shutdown_begin, and the
 * deadline it set (every fc_http_server_free from then on ends by it). Lock
 * order: live_mu before a server's mu. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static fc_http_server *live_servers;
static bool live_deadline_set;
static struct timespec live_deadline;

/* Stops accepting new connections (once). With `refuse` (the server's own
 * free), also stops listening: connections waiting in the backlog are reset
 * and new ones refused at once, instead of hanging until the descriptor is
 * closed (which libmicrohttpd allows only after the daemon has stopped), so
 * a relay from another server of this process fails fast. */
static void stop_accepting(fc_http_server *s, bool refuse)
{
    pthread_mutex_lock(&s->mu);
    bool quiesce = !s->quiesced, shut = refuse && !s->refused;
    s->quiesced = true;
    if (refuse) s->refused = true;
    pthread_mutex_unlock(&s->mu);
    if (quiesce && s->d) s->listen_fd = MHD_quiesce_daemon(s->d);
    if (shut && s->listen_fd != MHD_INVALID_SOCKET) shutdown(s->listen_fd, SHUT_RDWR);
}

static bool before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

void fc_http_shutdown_begin(int grace_ms)
{
    pthread_mutex_lock(&live_mu);
    struct timespec t;
    deadline_in(&t, grace_ms > 0 ? grace_ms : STOP_GRACE_MS);
    if (!live_deadline_set || before(&t, &live_deadline)) live_deadline = t;
    live_deadline_set = true;
    for (fc_http_server *s = live_servers; s; s = s->live_next) stop_accepting(s, false);
    pthread_mutex_unlock(&live_mu);
}

void fc_http_shutdown_wait_for(int port)
{
    for (;;) {
        pthread_mutex_lock(&live_mu);
        bool waiting = false;
        for (fc_http_server *s = live_servers; s; s = s->live_next) {
            if (fc_http_server_port(s) != port) continue;
            pthread_mutex_lock(&s->mu);
            waiting = !s->stopping;
            pthread_mutex_unlock(&s->mu);
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (live_deadline_set && !before(&now, &live_deadline)) waiting = false;
        pthread_mutex_unlock(&live_mu);
        if (!waiting) return;
        usleep(1000);
    }
}

fc_http_server *fc_http_server_new(const fc_http_server_params *p)
{
    /* a client that disconnects mid-write must not kill the process */
    signal(SIGPIPE, SIG_IGN);
    fc_http_server *s = fc_xcalloc(1, sizeof *s);
    fc_http_server_params d = {0};
    if (!p) p = &d;
    if (p->port < 0 || p->port > 65535) {
        FC_LOG_ERROR("fc_http_server_new: port %d out of range", p->port);
        free(s);
        return NULL;
    }
    s->host = p->host ? fc_xstrdup(p->host) : NULL;
    s->port = p->port;
    s->max_body = p->max_body ? p->max_body : (size_t)8 << 20;
    s->connection_limit = p->connection_limit > 0 ? p->connection_limit : 4096;
    s->listen_fd = MHD_INVALID_SOCKET;
    s->timeout_s = p->timeout_s > 0 ? p->timeout_s : 300;
    s->allow_origins = p->allow_origins ? fc_xstrdup(p->allow_origins) : NULL;
    s->allow_methods = p->allow_methods ? fc_xstrdup(p->allow_methods) : NULL;
    s->allow_headers = p->allow_headers ? fc_xstrdup(p->allow_headers) : NULL;
    s->allow_credentials = p->allow_credentials;
    pthread_mutex_init(&s->mu, NULL);
    cond_init_monotonic(&s->cv);
    return s;
}

void fc_http_server_route(fc_http_server *s, const char *method, const char *path, fc_http_handler h, void *user)
{
    if (s->n_routes == s->cap_routes) {
        s->cap_routes = s->cap_routes ? s->cap_routes * 2 : 16;
        s->routes = fc_xrealloc(s->routes, sizeof(route) * (size_t)s->cap_routes);
    }
    route *r = &s->routes[s->n_routes++];
    size_t n = strlen(path);
    r->prefix = n > 0 && path[n - 1] == '*';
    r->path = fc_xstrdup(path);
    if (r->prefix) r->path[--n] = 0;
    r->path_len = n;
    r->method = method ? fc_xstrdup(method) : NULL;
    r->h = h;
    r->user = user;
}

void fc_http_server_on_answer(fc_http_server *s, void (*cb)(const char *route, int status, double seconds, void *user),
                              void *user)
{
    s->on_answer = cb;
    s->on_answer_user = user;
}

/* ---- TLS ---- */

static char *tls_key, *tls_cert, *tls_cert_path;

static char *read_pem(const char *env, const char *path)
{
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        FC_LOG_ERROR("--ssl: %s=%s: %s", env, path, strerror(errno));
        return NULL;
    }
    char *buf = fc_xmalloc(1 << 20);
    len = fread(buf, 1, (1 << 20) - 1, f);
    bool err = ferror(f);
    fclose(f);
    buf[len] = 0;
    if (err || len == 0 || !strstr(buf, "-----BEGIN ")) {
        FC_LOG_ERROR("--ssl: %s=%s: %s", env, path, err ? "read error" : "not a PEM file");
        free(buf);
        return NULL;
    }
    return buf;
}

int fc_http_tls_enable_from_env(void)
{
    const char *kf = getenv("SSL_KEYFILE"), *cf = getenv("SSL_CERTFILE");
    if (!kf || !*kf || !cf || !*cf) {
        FC_LOG_ERROR("--ssl needs the environment variables SSL_KEYFILE and SSL_CERTFILE (PEM files)");
        return FC_ERR_ARG;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        FC_LOG_ERROR("--ssl: this libmicrohttpd is built without TLS support");
        return FC_ERR_UNSUPPORTED;
    }
    char *key = read_pem("SSL_KEYFILE", kf);
    if (!key) return FC_ERR_IO;
    char *cert = read_pem("SSL_CERTFILE", cf);
    if (!cert) {
        free(key);
        return FC_ERR_IO;
    }
    free(tls_key), free(tls_cert), free(tls_cert_path);
    tls_key = key, tls_cert = cert, tls_cert_path = fc_xstrdup(cf);
    return FC_OK;
}

bool fc_http_tls_enabled(void) { return tls_key != NULL; }
const char *fc_http_scheme(void) { return tls_key ? "https" : "http"; }
const char *fc_http_tls_ca_file(void) { return tls_cert_path; }

int fc_http_server_start(fc_http_server *s)
{
    if (s->d) return FC_OK;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC; /* ITC: MHD_quiesce_daemon at shutdown */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    bool bind_addr = false;
    if (s->host && *s->host && strcmp(s->host, "0.0.0.0") != 0) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
        struct addrinfo *ai = NULL;
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        int rc = getaddrinfo(s->host, port, &hints, &ai); /* IPv4 first: "localhost" -> 127.0.0.1 */
        if (rc != 0) {
            hints.ai_family = AF_INET6;
            rc = getaddrinfo(s->host, port, &hints, &ai);
        }
        if (rc != 0 || !ai) {
            FC_LOG_ERROR("http: cannot resolve host '%s': %s", s->host, gai_strerror(rc));
            return FC_ERR_ARG;
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
        freeaddrinfo(ai);
        bind_addr = true;
    }
    s->last_mhd_error[0] = 0;
    struct MHD_OptionItem tls_opts[3] = {{MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL},
                                         {MHD_OPTION_END, 0, NULL}};
    if (tls_key) {
        flags |= MHD_USE_TLS;
        tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key};
        tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert};
    }
    s->d = MHD_start_daemon(
        flags, (uint16_t)s->port, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->connection_limit, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(s->timeout_s + 0.5), MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)128 * 1024,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        bind_addr ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_END, (struct sockaddr *)&ss, MHD_OPTION_END);
    if (!s->d) {
        FC_LOG_ERROR("http: cannot listen on %s:%d%s%s%s", s->host ? s->host : "0.0.0.0", s->port,
                     s->last_mhd_error[0] ? ": " : "", s->last_mhd_error,
                     tls_key ? " (TLS: check that SSL_KEYFILE and SSL_CERTFILE are a matching key and certificate)" : "");
        return FC_ERR_IO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->bound_port = di && di->port ? di->port : s->port;
    pthread_mutex_lock(&live_mu);
    s->live_next = live_servers;
    live_servers = s;
    bool stop = live_deadline_set; /* started after fc_http_shutdown_begin */
    pthread_mutex_unlock(&live_mu);
    if (stop) stop_accepting(s, false);
    return FC_OK;
}

int fc_http_server_port(const fc_http_server *s) { return s->bound_port ? s->bound_port : s->port; }

void fc_http_server_free(fc_http_server *s)
{
    if (!s) return;
    /* stop accepting; blocked handlers see fc_http_request_client_gone and
     * fc_http_request_server_stopping and get STOP_GRACE_MS to send a last
     * answer (a streamed one included) and for it to be sent (a handler
     * that has returned has only queued its answer) before the connections
     * are cut */
    pthread_mutex_lock(&live_mu);
    pthread_mutex_lock(&s->mu);
    s->stopping = true; /* before it leaves the list: fc_http_shutdown_wait_for */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (fc_http_server **p = &live_servers; *p; p = &(*p)->live_next)
        if (*p == s) {
            *p = s->live_next;
            break;
        }
    struct timespec grace;
    deadline_in(&grace, STOP_GRACE_MS);
    if (live_deadline_set && before(&live_deadline, &grace)) grace = live_deadline; /* one deadline for all */
    pthread_mutex_unlock(&live_mu);
    stop_accepting(s, true);
    MHD_socket listen_fd = s->listen_fd;
    pthread_mutex_lock(&s->mu);
    while ((s->n_handlers > 0 || s->streams || s->n_open > 0) &&
           pthread_cond_timedwait(&s->cv, &s->mu, &grace) != ETIMEDOUT) {
    }
    /* every open stream left sees its client go: writers stop, work is cancelled */
    int n = 0;
    for (fc_http_stream *t = s->streams; t; t = t->next) n++;
    fc_http_stream **live = fc_xmalloc(sizeof(fc_http_stream *) * (size_t)(n + 1));
    n = 0;
    for (fc_http_stream *t = s->streams; t; t = t->next) {
        atomic_fetch_add(&t->refs, 1);
        live[n++] = t;
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++) {
        stream_gone(live[i]);
        stream_unref(live[i]);
    }
    free(live);
    if (s->d) MHD_stop_daemon(s->d);
    if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    /* handlers still running hold the request (not the server) but count here */
    pthread_mutex_lock(&s->mu);
    while (s->n_handlers > 0) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
    free(s->host);
    free(s->allow_origins);
    free(s->allow_methods);
    free(s->allow_headers);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
