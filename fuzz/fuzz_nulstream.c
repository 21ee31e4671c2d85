/*
 * fuzz_nulstream.c: libFuzzer target for the two stream readers of
 * src/net/nulstream.c: the splitter of FastChat's NUL-delimited worker
 * stream (read by the API server, the controller's relay and test-message)
 * and the Server-Sent Events parser (read by bench-serve), plus the SSE
 * formatter.
 *
 * Input: byte 0 picks the message size limit and the seed of the piece
 * sizes; the rest is the stream. Checked, for both parsers: fed the whole
 * stream at once and fed in random pieces (a network's), they hand back
 * exactly what a plain reference reader (below, written from the format's
 * definition: NUL-terminated messages; the WHATWG event-stream
 * interpretation) finds in it: the same messages and the same events, with
 * their event type, data, last id and retry. And fc_sse_format of the input as
 * event data reads back as that data (line breaks \r\n and \r as \n).
 * Seeds: tests/data/fuzz/fuzz_nulstream/.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "net/nulstream.h"

/* ---- a record of what a parser handed back ---- */

typedef struct rec {
    char *p;
    size_t len, cap;
    int n;
} rec;

static void rec_add(rec *r, const void *s, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 64;
        r->p = realloc(r->p, r->cap);
        if (!r->p) abort();
    }
    memcpy(r->p + r->len, s, n);
    r->len += n;
}

static void rec_item(rec *r, const void *s, size_t n) /* length-prefixed */
{
    uint64_t l = n;
    rec_add(r, &l, sizeof l);
    rec_add(r, s, n);
}

static bool same(const rec *a, const rec *b)
{
    return a->n == b->n && a->len == b->len && (!a->len || !memcmp(a->p, b->p, a->len));
}

/* piece sizes: a small PRNG */
static uint32_t next(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* ---- NUL-delimited ---- */

static bool nul_cb(const char *msg, size_t len, void *user)
{
    rec *r = user;
    if (msg[len] != 0 || memchr(msg, 0, len)) abort(); /* NUL-terminated, none inside */
    rec_item(r, msg, len);
    r->n++;
    return true;
}

static void check_nul(const uint8_t *d, size_t n, size_t max, uint32_t seed)
{
    /* reference: each NUL ends a message; one longer than max is an error
     * that ends the stream; so is an unterminated tail longer than max */
    rec ref = {0};
    bool ref_err = false;
    size_t i = 0, tail = 0;
    while (i < n) {
        const uint8_t *z = memchr(d + i, 0, n - i);
        size_t l = z ? (size_t)(z - (d + i)) : n - i;
        if (l > max) {
            ref_err = true;
            break;
        }
        if (!z) {
            tail = l;
            break;
        }
        rec_item(&ref, d + i, l);
        ref.n++;
        i += l + 1;
    }
    for (int mode = 0; mode < 2; mode++) {
        rec got = {0};
        fc_nulsplit *s = fc_nulsplit_new(max);
        uint32_t st = seed;
        for (size_t at = 0; at < n;) {
            size_t k = mode == 0 ? n : 1 + next(&st) % 9;
            if (k > n - at) k = n - at;
            bool ok = fc_nulsplit_feed(s, (const char *)d + at, k, nul_cb, &got);
            if (!ok && !fc_nulsplit_error(s)) abort(); /* the callback never stops it */
            at += k;
        }
        if (!same(&ref, &got) || fc_nulsplit_error(s) != ref_err) abort();
        size_t tl = 0;
        const char *t = fc_nulsplit_tail(s, &tl);
        if (!ref_err && (tl != tail || fc_nulsplit_pending(s) != tail || memcmp(t, d + n - tail, tail) || t[tl]))
            abort();
        fc_nulsplit_free(s);
        free(got.p);
    }
    free(ref.p);
}

/* ---- Server-Sent Events ---- */

static void rec_event(rec *r, const char *event, const char *data, size_t data_len, const char *id, int retry)
{
    rec_item(r, event, strlen(event));
    rec_item(r, data, data_len);
    rec_item(r, id, strlen(id));
    rec_add(r, &retry, sizeof retry);
    r->n++;
}

static bool sse_cb(const fc_sse_event *ev, void *user)
{
    if (ev->data[ev->data_len] != 0) abort();
    rec_event(user, ev->event, ev->data, ev->data_len, ev->id, ev->retry_ms);
    return true;
}

/* The WHATWG interpretation of a whole stream, line by line. */
static void sse_reference(const uint8_t *d, size_t n, rec *out)
{
    char *data = malloc(n + 2), *event = malloc(n + 1), *id = malloc(n + 1);
    size_t dl = 0;
    event[0] = id[0] = 0;
    int retry = -1;
    size_t i = 0;
    if (n >= 3 && d[0] == 0xEF && d[1] == 0xBB && d[2] == 0xBF) i = 3;
    while (i < n) {
        size_t e = i;
        while (e < n && d[e] != '\n' && d[e] != '\r') e++;
        if (e == n) break; /* an unfinished line is never processed */
        const char *l = (const char *)d + i;
        size_t ll = e - i;
        i = e + 1;
        if (d[e] == '\r' && i < n && d[i] == '\n') i++;
        if (ll == 0) {
            if (dl > 0) {
                data[dl - 1] = 0;
                rec_event(out, event, data, dl - 1, id, retry);
            }
            dl = 0;
            event[0] = 0;
            continue;
        }
        if (l[0] == ':') continue;
        const char *c = memchr(l, ':', ll);
        size_t fl = c ? (size_t)(c - l) : ll;
        const char *v = c ? c + 1 : l + ll;
        size_t vl = c ? ll - fl - 1 : 0;
        if (vl && v[0] == ' ') v++, vl--;
        if (fl == 4 && !memcmp(l, "data", 4)) {
            memcpy(data + dl, v, vl);
            dl += vl;
            data[dl++] = '\n';
        } else if (fl == 5 && !memcmp(l, "event", 5)) {
            memcpy(event, v, vl);
            event[vl] = 0;
        } else if (fl == 2 && !memcmp(l, "id", 2)) {
            if (!memchr(v, 0, vl)) memcpy(id, v, vl), id[vl] = 0;
        } else if (fl == 5 && !memcmp(l, "retry", 5)) {
            bool ok = vl > 0 && vl < 10; /* the parser's bound: an int's worth of digits */
            int r = 0;
            for (size_t k = 0; k < vl && ok; k++) {
                if (v[k] < '0' || v[k] > '9') ok = false;
                else r = r * 10 + (v[k] - '0');
            }
            if (ok) retry = r;
        }
    }
    free(data);
    free(event);
    free(id);
}

static void check_sse(const uint8_t *d, size_t n, uint32_t seed)
{
    rec ref = {0};
    sse_reference(d, n, &ref);
    for (int mode = 0; mode < 2; mode++) {
        rec got = {0};
        fc_sse_parser *p = fc_sse_parser_new(0);
        uint32_t st = seed;
        for (size_t at = 0; at < n;) {
            size_t k = mode == 0 ? n : 1 + next(&st) % 9;
            if (k > n - at) k = n - at;
            if (!fc_sse_parser_feed(p, (const char *)d + at, k, sse_cb, &got)) abort();
            at += k;
        }
        if (!same(&ref, &got)) abort();
        /* reset: a fresh stream reads the same */
        fc_sse_parser_reset(p);
        rec again = {0};
        if (!fc_sse_parser_feed(p, (const char *)d, n, sse_cb, &again) || !same(&ref, &again)) abort();
        fc_sse_parser_free(p);
        free(got.p);
        free(again.p);
    }
    free(ref.p);
}

/* A small event limit: the parser refuses (false) instead of growing, and
 * what it hands out stays within the limit. */
static bool sse_small_cb(const fc_sse_event *ev, void *user)
{
    if (ev->data_len > *(size_t *)user) abort();
    return true;
}

static void check_sse_limit(const uint8_t *d, size_t n, size_t max)
{
    fc_sse_parser *p = fc_sse_parser_new(max);
    fc_sse_parser_feed(p, (const char *)d, n, sse_small_cb, &max);
    fc_sse_parser_free(p);
}

/* fc_sse_format reads back as its data. */
static bool fmt_cb(const fc_sse_event *ev, void *user)
{
    rec *r = user;
    rec_item(r, ev->data, ev->data_len);
    rec_item(r, ev->event, strlen(ev->event));
    r->n++;
    return true;
}

static void check_format(const uint8_t *d, size_t n, bool with_event)
{
    size_t fl = 0;
    char *f = fc_sse_format(with_event ? "delta" : NULL, (const char *)d, n, &fl);
    if (!f || f[fl] != 0) abort();
    rec got = {0}, want = {0};
    fc_sse_parser *p = fc_sse_parser_new(0);
    if (!fc_sse_parser_feed(p, f, fl, fmt_cb, &got)) abort();
    fc_sse_parser_free(p);
    char *w = malloc(n + 1);
    size_t wl = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '\r') {
            w[wl++] = '\n';
            if (i + 1 < n && d[i + 1] == '\n') i++;
        } else {
            w[wl++] = (char)d[i];
        }
    }
    rec_item(&want, w, wl);
    rec_item(&want, with_event ? "delta" : "", with_event ? 5 : 0);
    want.n = 1;
    if (!same(&want, &got)) abort();
    free(w);
    free(f);
    free(got.p);
    free(want.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    if (size < 1) return 0;
    uint8_t ctl = data[0];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    static const size_t limits[4] = {1, 7, 64, 0};
    size_t max = limits[ctl & 3];
    uint32_t seed = ctl;
    check_nul(d, n, max ? max : (size_t)64 << 20, seed);
    check_sse(d, n, seed);
    if (max) check_sse_limit(d, n, max);
    check_format(d, n, ctl & 4);
    return 0;
}
