/*
 * http.h: the HTTP server (on GNU libmicrohttpd) and client (on libcurl)
 * that the controller, the workers, the OpenAI API server and the web UI use.
 *
 * Server model: handlers run on the server's threads and may block while
 * they wait for a result (they never compute: the engine thread does).
 * A streaming response (Server-Sent Events, FastChat's NUL-delimited JSON) is
 * opened by the handler with fc_http_reply_stream; any thread then writes to
 * it and closes it, and the server sends each write as it comes (chunked
 * transfer encoding). A client that disconnects is reported to the writer
 * (fc_http_stream_write returns false and the disconnect callback runs) so
 * the work behind it can be cancelled; a client that leaves an idle stream
 * is noticed within a quarter second, without any write.
 *
 * Threads (http_server.c): one thread per connection (libmicrohttpd's
 * thread-per-connection mode with poll()) and one more per request running
 * its handler, so no request ever waits behind another's blocking handler.
 * Checked with 1500 concurrent streams on loopback.
 *
 * Limits: request bodies larger than max_body are refused with 413 and a
 * JSON {"detail"} before the handler runs; a request whose length is
 * ambiguous (Content-Length headers that differ, or Transfer-Encoding with
 * Content-Length: RFC 9112 6.3) gets 400 and the connection is closed;
 * other malformed requests are answered by libmicrohttpd itself. SIGPIPE is
 * ignored from fc_http_server_new on.
 *
 * Shutdown (fc_http_server_free): the server stops accepting, then gives the
 * handlers still running and the streams still open up to 1 s to give their
 * clients a last answer (fc_http_request_server_stopping and
 * fc_http_request_client_gone turn true), then cuts what is left. A process
 * with several servers (fastchat serve) calls fc_http_shutdown_begin first:
 * all of them stop accepting at once and share one deadline, so that their
 * frees, run in parallel, end together instead of one grace after another.
 *
 * Also here: nulstream.h, the parsers of the NUL-delimited and SSE streams.
 */
#ifndef FC_HTTP_H
#define FC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- server ---- */

typedef struct fc_http_server fc_http_server;
typedef struct fc_http_reply fc_http_reply;
typedef struct fc_http_stream fc_http_stream;

typedef struct fc_http_request {
    const char *method;     /* "GET", "POST", ... */
    const char *path;       /* URL path without the query string */
    const char *body;       /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    const char *peer;       /* client address as text */
    void *impl;
} fc_http_request;

/* Request header by name, case-insensitive; NULL when absent. */
const char *fc_http_header(const fc_http_request *r, const char *name);
/* True once the server is stopping (fc_http_server_free has begun): a
 * handler should give its client a last answer (an error) promptly. */
bool fc_http_request_server_stopping(const fc_http_request *r);
/* Query-string argument by name (URL-decoded); NULL when absent. */
const char *fc_http_query(const fc_http_request *r, const char *name);
/* For a handler that blocks before answering (waiting for a result): true
 * when the client has closed its connection or the server is stopping, so
 * the work can be cancelled. Checks the socket; cheap enough to poll about
 * once a second. */
bool fc_http_request_client_gone(const fc_http_request *r);

/* A handler must answer exactly once: with fc_http_reply_body (or _json), or
 * by opening a stream. Runs on a server thread of its own: the answer goes
 * out as soon as it is given, so a handler may open a stream and go on
 * writing to it itself until it closes it (a relay), or return at once and
 * leave the writing to another thread. A handler that returns without
 * answering gets 500. The request (and its headers and body) stays valid
 * until the handler returns. */
typedef void (*fc_http_handler)(const fc_http_request *req, fc_http_reply *reply, void *user);

/* Adds a header to the reply (before the body or stream is set). */
void fc_http_reply_header(fc_http_reply *r, const char *name, const char *value);
/* A complete response; body copied. */
void fc_http_reply_body(fc_http_reply *r, int status, const char *content_type, const char *body, size_t len);
/* Same with content type application/json. */
void fc_http_reply_json(fc_http_reply *r, int status, const char *json);

/* Opens a streaming response (chunked transfer encoding; content_type NULL
 * sends no Content-Type, as FastChat's worker stream). The returned stream is
 * owned jointly by the caller and the server: the caller must call
 * fc_http_stream_close exactly once, from any thread, when done writing. */
fc_http_stream *fc_http_reply_stream(fc_http_reply *r, int status, const char *content_type);
/* Queues data for the client; false when the client has gone (stop writing,
 * but still close). Thread-safe. */
bool fc_http_stream_write(fc_http_stream *s, const char *data, size_t len);
/* Ends the response (after what was written is sent) and releases the
 * caller's reference. If the disconnect callback is running on another
 * thread, waits for it to return; after close the callback never runs, so
 * the caller may free its user data. */
void fc_http_stream_close(fc_http_stream *s);
/* Called once, from a server thread, if the client disconnects before the
 * stream is closed (at once, from this call, if it already has). */
void fc_http_stream_on_disconnect(fc_http_stream *s, void (*cb)(void *user), void *user);

typedef struct fc_http_server_params {
    const char *host;        /* NULL or "0.0.0.0": all interfaces */
    int port;                /* 0: any free port (see fc_http_server_port) */
    size_t max_body;         /* bytes; 0: 8 MiB */
    int connection_limit;    /* 0: 4096 */
    double timeout_s;        /* idle connection timeout; 0: 300 */
    /* CORS: when allow_origins is set, responses carry
     * Access-Control-Allow-Origin and OPTIONS preflights are answered. */
    const char *allow_origins;   /* e.g. "*" */
    const char *allow_methods;   /* default "*" */
    const char *allow_headers;   /* default "*" */
    bool allow_credentials;
} fc_http_server_params;

/* Creates a server; routes are added before fc_http_server_start. NULL on
 * error (logged). */
fc_http_server *fc_http_server_new(const fc_http_server_params *p);
/* path: exact ("/v1/models") or a prefix ending in '*' (the path "/v1/engines/" plus a star).
 * method NULL matches any; a "GET" route also answers HEAD. The first
 * matching route wins; unmatched requests get 404 {"detail":"Not Found"},
 * a known path with another method 405 {"detail":"Method Not Allowed"} (as
 * FastAPI answers). */
void fc_http_server_route(fc_http_server *s, const char *method, const char *path, fc_http_handler h, void *user);
/* Calls cb after each routed handler returns, on its thread, with the
 * route's path as registered (a prefix route with its '*'), the status it
 * answered with (500 when it did not answer) and how long the handler ran
 * (a relay: until its stream ended). For request counters (/metrics). Set
 * before fc_http_server_start; cb must be thread-safe. */
void fc_http_server_on_answer(fc_http_server *s, void (*cb)(const char *route, int status, double seconds, void *user),
                              void *user);
/* Starts listening. FC_OK or an error (logged: port in use, ...). */
int fc_http_server_start(fc_http_server *s);
/* The bound port (useful with port 0). */
int fc_http_server_port(const fc_http_server *s);
/* Stops listening, waits up to 1 s for running handlers and open streams to
 * end (they see fc_http_request_server_stopping), closes the connections
 * left (their streams see their clients go) and frees the server. NULL is a
 * no-op. */
void fc_http_server_free(fc_http_server *s);
/* Every started server of this process stops accepting new connections
 * now (servers started afterwards at once), and every fc_http_server_free
 * from now on ends by one deadline, grace_ms from now (<= 0: the servers'
 * own grace, 1 s), or its own grace, whichever comes first. The handlers see the server stopping only when
 * it is freed (its owner flags its own state first). For a process that
 * then frees its servers in parallel. */
void fc_http_shutdown_begin(int grace_ms);
/* After fc_http_shutdown_begin: waits until the server of this process on
 * `port` has begun its fc_http_server_free (or is not there), at most until
 * the shutdown deadline. A server that other servers of the process relay
 * to (a worker, the controller) waits for the one that relays (the API
 * server) before it refuses connections, so that the relay's owner knows it
 * is stopping when its calls fail, and its clients are told so. */
void fc_http_shutdown_wait_for(int port);

/* ---- TLS (FastChat's --ssl) ---- */

/* Reads the PEM key and certificate named by the environment variables
 * SSL_KEYFILE and SSL_CERTFILE (as FastChat's uvicorn ssl_keyfile /
 * ssl_certfile). From then on every server of this process started by
 * fc_http_server_start serves HTTPS only (a plain HTTP request to it fails),
 * and the client (below) trusts SSL_CERTFILE as a certificate authority
 * (CURLOPT_CAINFO, instead of the system's), so that the controller,
 * workers and API server sharing one certificate, self-signed or not, can
 * call each other over https URLs. FC_OK, or an error logged: a variable
 * unset, a file missing, unreadable or not PEM, libmicrohttpd without TLS.
 * A key that does not match its certificate is reported by
 * fc_http_server_start. Call before starting servers or threads. */
int fc_http_tls_enable_from_env(void);
bool fc_http_tls_enabled(void);
/* "https" after fc_http_tls_enable_from_env, else "http" (for the URLs a
 * process gives out for itself). */
const char *fc_http_scheme(void);
/* SSL_CERTFILE once TLS is enabled, else NULL. */
const char *fc_http_tls_ca_file(void);

/* ---- client ---- */

typedef struct fc_http_response {
    int status;     /* HTTP status; 0 when no response (connection failed) */
    char *body;     /* NUL-terminated, malloc'd (free with fc_http_response_free) */
    size_t len;
    char error[256];/* transport error text when status is 0 */
} fc_http_response;

void fc_http_response_free(fc_http_response *r);
/* POST a JSON body (content type application/json). Returns true when a
 * response arrived (any status). timeout_s bounds the whole exchange; <= 0:
 * none. Extra headers are "Name: value" strings (NULL-terminated list, may
 * be NULL). Thread-safe (one connection per call). */
bool fc_http_post_json(const char *url, const char *json, size_t len, double timeout_s,
                       const char *const *headers, fc_http_response *out);
bool fc_http_get(const char *url, double timeout_s, const char *const *headers, fc_http_response *out);
/* Streaming POST: on_data receives the body in pieces as they arrive; it
 * returns false to abort the transfer. Returns true when the whole response
 * was received (or on_data aborted), false on a transport error (out->error).
 * out->status is set; out->body stays NULL. timeout_s bounds connecting and
 * each silence between pieces (httpx's read timeout, as FastChat's
 * WORKER_API_TIMEOUT), not the whole stream. */
bool fc_http_post_stream(const char *url, const char *json, size_t len, double timeout_s,
                         const char *const *headers, bool (*on_data)(const char *data, size_t len, void *user),
                         void *user, fc_http_response *out);

/* Optional controls of a client call (the _ex variants). */
typedef struct fc_http_call {
    const char *const *headers;  /* extra "Name: value" headers, NULL-terminated; may be NULL */
    /* Called at least every 100 ms while the call runs (and after each piece
     * of a streamed body); returning false aborts the call at once: the
     * connection is closed, the call returns false with out->error "aborted"
     * (out->status what had arrived). Runs on the calling thread. */
    bool (*keep_going)(void *user);
    void *user;
    /* The peer is this process's own server (a loopback call): over TLS its
     * certificate is verified but not the host name in it (the URL says
     * 127.0.0.1, the certificate may name the machine). */
    bool loopback;
} fc_http_call;

/* fc_http_post_json / fc_http_post_stream with controls (call may be NULL). */
bool fc_http_post_json_ex(const char *url, const char *json, size_t len, double timeout_s, const fc_http_call *call,
                          fc_http_response *out);
bool fc_http_post_stream_ex(const char *url, const char *json, size_t len, double timeout_s, const fc_http_call *call,
                            bool (*on_data)(const char *data, size_t len, void *user), void *user,
                            fc_http_response *out);

/* Call once at start-up before threads use the client (curl_global_init). */
void fc_http_global_init(void);

#endif
