/*
 * http_client.c: the HTTP client half of http.h, on libcurl's easy
 * interface: one handle per call, so any number of threads may call at once
 * (CURLOPT_NOSIGNAL keeps libcurl's timeouts from using signals).
 *
 * Not done here: connection reuse across calls (each call connects anew;
 * on loopback that costs tens of microseconds), retries, cookies.
 */
#include "http.h"
#include "base/fc_base.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

void fc_http_global_init(void) { pthread_once(&once, global_init); }

void fc_http_response_free(fc_http_response *r)
{
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

typedef struct sink {
    char *p;
    size_t len, cap;
} sink;

static size_t to_sink(char *data, size_t size, size_t n, void *user)
{
    sink *s = user;
    size_t len = size * n;
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len + 1) cap *= 2;
        s->p = fc_xrealloc(s->p, cap);
        s->cap = cap;
    }
    memcpy(s->p + s->len, data, len);
    s->len += len;
    s->p[s->len] = 0;
    return len;
}

typedef struct relay {
    bool (*on_data)(const char *, size_t, void *);
    void *user;
    bool aborted;
} relay;

static size_t to_relay(char *data, size_t size, size_t n, void *user)
{
    relay *r = user;
    size_t len = size * n;
    if (len == 0) return 0;
    if (!r->on_data(data, len, r->user)) {
        r->aborted = true;
        return 0; /* CURLE_WRITE_ERROR ends the transfer */
    }
    return len;
}

/* A handle with what every call shares; *hdrs gets the header list to free. */
static CURL *handle(const char *url, const char *json, size_t len, const char *const *headers,
                    struct curl_slist **hdrs, char *errbuf)
{
    fc_http_global_init();
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    /* --ssl: our own servers' certificate is trusted (it may be self-signed) */
    if (fc_http_tls_ca_file()) curl_easy_setopt(c, CURLOPT_CAINFO, fc_http_tls_ca_file());
    struct curl_slist *h = NULL;
    if (json) {
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    for (int i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    if (h) curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    *hdrs = h;
    return c;
}

/* curl_easy_perform, or with call->keep_going a multi loop that asks it
 * every 100 ms at most and stops the transfer when it says no. */
static CURLcode perform(CURL *c, const fc_http_call *call, bool *stopped)
{
    *stopped = false;
    if (!call || !call->keep_going) return curl_easy_perform(c);
    if (!call->keep_going(call->user)) {
        *stopped = true;
        return CURLE_ABORTED_BY_CALLBACK;
    }
    CURLM *m = curl_multi_init();
    if (!m) return curl_easy_perform(c);
    curl_multi_add_handle(m, c);
    CURLcode rc = CURLE_OK;
    for (;;) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) {
            rc = CURLE_RECV_ERROR;
            break;
        }
        if (!running) {
            int left = 0;
            CURLMsg *msg;
            rc = CURLE_RECV_ERROR;
            while ((msg = curl_multi_info_read(m, &left)))
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == c) rc = msg->data.result;
            break;
        }
        if (!call->keep_going(call->user)) {
            *stopped = true;
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    curl_multi_remove_handle(m, c);
    curl_multi_cleanup(m);
    return rc;
}

static bool finish(CURL *c, CURLcode rc, bool aborted, struct curl_slist *hdrs, const char *errbuf,
                   fc_http_response *out)
{
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    out->status = (int)status;
    bool ok = rc == CURLE_OK || (aborted && rc == CURLE_WRITE_ERROR);
    if (!ok) {
        out->status = aborted ? out->status : 0;
        snprintf(out->error, sizeof out->error, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return ok;
}

static bool request(const char *url, const char *json, size_t len, double timeout_s, const fc_http_call *call,
                    fc_http_response *out)
{
    const char *const *headers = call ? call->headers : NULL;
    memset(out, 0, sizeof *out);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    CURL *c = handle(url, json, len, headers, &hdrs, errbuf);
    if (!c) {
        snprintf(out->error, sizeof out->error, "cannot create a libcurl handle");
        return false;
    }
    if (call && call->loopback) curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    sink s = {0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    if (timeout_s > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    bool stopped;
    CURLcode rc = perform(c, call, &stopped);
    bool ok = finish(c, rc, false, hdrs, errbuf, out);
    if (stopped) snprintf(out->error, sizeof out->error, "aborted");
    if (!ok) {
        free(s.p);
        return false;
    }
    if (!s.p) s.p = fc_xstrdup("");
    out->body = s.p;
    out->len = s.len;
    return true;
}

bool fc_http_post_json(const char *url, const char *json, size_t len, double timeout_s,
                       const char *const *headers, fc_http_response *out)
{
    fc_http_call call = {.headers = headers};
    return request(url, json ? json : "", json ? len : 0, timeout_s, &call, out);
}

bool fc_http_post_json_ex(const char *url, const char *json, size_t len, double timeout_s, const fc_http_call *call,
                          fc_http_response *out)
{
    return request(url, json ? json : "", json ? len : 0, timeout_s, call, out);
}

bool fc_http_get(const char *url, double timeout_s, const char *const *headers, fc_http_response *out)
{
    fc_http_call call = {.headers = headers};
    return request(url, NULL, 0, timeout_s, &call, out);
}

bool fc_http_post_stream(const char *url, const char *json, size_t len, double timeout_s,
                         const char *const *headers, bool (*on_data)(const char *data, size_t len, void *user),
                         void *user, fc_http_response *out)
{
    fc_http_call call = {.headers = headers};
    return fc_http_post_stream_ex(url, json, len, timeout_s, &call, on_data, user, out);
}

bool fc_http_post_stream_ex(const char *url, const char *json, size_t len, double timeout_s, const fc_http_call *call,
                            bool (*on_data)(const char *data, size_t len, void *user), void *user,
                            fc_http_response *out)
{
    const char *const *headers = call ? call->headers : NULL;
    memset(out, 0, sizeof *out);
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    CURL *c = handle(url, json ? json : "", json ? len : 0, headers, &hdrs, errbuf);
    if (!c) {
        snprintf(out->error, sizeof out->error, "cannot create a libcurl handle");
        return false;
    }
    if (call && call->loopback) curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    relay r = {.on_data = on_data, .user = user};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_relay);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    if (timeout_s > 0) {
        /* a read timeout: fewer than 1 byte/s for timeout_s aborts */
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_s * 1000));
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(timeout_s + 0.999));
    }
    bool stopped;
    CURLcode rc = perform(c, call, &stopped);
    bool ok = finish(c, rc, r.aborted, hdrs, errbuf, out);
    if (stopped) snprintf(out->error, sizeof out->error, "aborted");
    return ok;
}
