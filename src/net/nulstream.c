/*
 * nulstream.c: the NUL-delimited message splitter and the Server-Sent Events
 * parser and formatter. See nulstream.h.
 */
#include "nulstream.h"
#include "base/fc_base.h"
#include "base/str.h"

#include <string.h>

#define DEFAULT_MAX ((size_t)64 << 20)

/* Empties b and puts n bytes of s there (allocating, so b->p is never NULL). */
static void str_set(fc_str *b, const char *s, size_t n)
{
    fc_str_truncate(b, 0);
    fc_str_putn(b, s, n);
}

/* ---- NUL-delimited messages ---- */

struct fc_nulsplit {
    fc_str part;       /* an unterminated message carried over between feeds */
    size_t max;
    bool error;
};

fc_nulsplit *fc_nulsplit_new(size_t max_msg)
{
    fc_nulsplit *s = fc_xcalloc(1, sizeof *s);
    s->max = max_msg ? max_msg : DEFAULT_MAX;
    str_set(&s->part, "", 0);
    return s;
}

void fc_nulsplit_free(fc_nulsplit *s)
{
    if (!s) return;
    fc_str_free(&s->part);
    free(s);
}

bool fc_nulsplit_feed(fc_nulsplit *s, const char *data, size_t len, fc_nulsplit_cb cb, void *user)
{
    if (s->error) return false;
    while (len > 0) {
        const char *nul = memchr(data, 0, len);
        size_t n = nul ? (size_t)(nul - data) : len;
        if (s->part.len + n > s->max) {
            s->error = true;
            fc_str_truncate(&s->part, 0);
            return false;
        }
        if (!nul) {
            fc_str_putn(&s->part, data, n);
            return true;
        }
        bool go;
        if (s->part.len == 0) {
            go = cb(data, n, user); /* the NUL ends it in place: no copy */
        } else {
            fc_str_putn(&s->part, data, n);
            go = cb(s->part.p, s->part.len, user);
            fc_str_truncate(&s->part, 0);
        }
        data += n + 1;
        len -= n + 1;
        if (!go) return false;
    }
    return true;
}

size_t fc_nulsplit_pending(const fc_nulsplit *s) { return s->part.len; }

const char *fc_nulsplit_tail(const fc_nulsplit *s, size_t *len)
{
    if (len) *len = s->part.len;
    return s->part.p;
}

bool fc_nulsplit_error(const fc_nulsplit *s) { return s->error; }

/* ---- Server-Sent Events ---- */

struct fc_sse_parser {
    fc_str line;        /* the current, unfinished line */
    fc_str data;        /* data lines of the current event, each + '\n' */
    fc_str event;       /* event type of the current event */
    fc_str id;          /* last event id (persists across events) */
    int retry_ms;
    bool after_cr;   /* the previous byte was '\r': a following '\n' is part of the break */
    bool started;    /* past the optional byte order mark */
    size_t bom_seen; /* bytes of a BOM matched so far */
    size_t max;
};

fc_sse_parser *fc_sse_parser_new(size_t max_event)
{
    fc_sse_parser *p = fc_xcalloc(1, sizeof *p);
    p->max = max_event ? max_event : DEFAULT_MAX;
    str_set(&p->line, "", 0);
    str_set(&p->data, "", 0);
    str_set(&p->event, "", 0);
    str_set(&p->id, "", 0);
    p->retry_ms = -1;
    return p;
}

void fc_sse_parser_free(fc_sse_parser *p)
{
    if (!p) return;
    fc_str_free(&p->line);
    fc_str_free(&p->data);
    fc_str_free(&p->event);
    fc_str_free(&p->id);
    free(p);
}

void fc_sse_parser_reset(fc_sse_parser *p)
{
    fc_str_truncate(&p->line, 0);
    fc_str_truncate(&p->data, 0);
    fc_str_truncate(&p->event, 0);
    fc_str_truncate(&p->id, 0);
    p->retry_ms = -1;
    p->after_cr = p->started = false;
    p->bom_seen = 0;
}

/* Processes one complete line (without its break). Returns false to stop. */
static bool sse_line(fc_sse_parser *p, fc_sse_cb cb, void *user)
{
    const char *l = p->line.p;
    size_t n = p->line.len;
    if (n == 0) { /* blank line: dispatch */
        bool go = true;
        if (p->data.len > 0) {
            fc_str_truncate(&p->data, p->data.len - 1); /* the last data line's '\n' */
            fc_sse_event ev = {.event = p->event.p, .data = p->data.p, .data_len = p->data.len,
                               .id = p->id.p, .retry_ms = p->retry_ms};
            go = cb(&ev, user);
        }
        fc_str_truncate(&p->data, 0);
        fc_str_truncate(&p->event, 0);
        return go;
    }
    if (l[0] == ':') return true; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = colon ? n - fl - 1 : 0;
    if (vl > 0 && v[0] == ' ') v++, vl--;
    if (fl == 4 && !memcmp(l, "data", 4)) {
        fc_str_putn(&p->data, v, vl);
        fc_str_putn(&p->data, "\n", 1);
    } else if (fl == 5 && !memcmp(l, "event", 5)) {
        str_set(&p->event, v, vl);
    } else if (fl == 2 && !memcmp(l, "id", 2)) {
        if (!memchr(v, 0, vl)) str_set(&p->id, v, vl);
    } else if (fl == 5 && !memcmp(l, "retry", 5)) {
        bool digits = vl > 0 && vl < 10;
        int r = 0;
        for (size_t i = 0; i < vl && digits; i++) {
            if (v[i] < '0' || v[i] > '9') digits = false;
            else r = r * 10 + (v[i] - '0');
        }
        if (digits) p->retry_ms = r;
    }
    return true;
}

bool fc_sse_parser_feed(fc_sse_parser *p, const char *data, size_t len, fc_sse_cb cb, void *user)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    size_t i = 0;
    while (!p->started && i < len) {
        if ((unsigned char)data[i] == bom[p->bom_seen]) {
            i++;
            if (++p->bom_seen == 3) p->started = true;
        } else {
            /* not a BOM: the bytes matched so far were text */
            if (p->bom_seen) fc_str_putn(&p->line, (const char *)bom, p->bom_seen);
            p->started = true;
        }
    }
    for (; i < len; i++) {
        char c = data[i];
        if (c == '\n' && p->after_cr) { /* the \n of \r\n */
            p->after_cr = false;
            continue;
        }
        p->after_cr = false;
        if (c == '\n' || c == '\r') {
            p->after_cr = c == '\r';
            bool go = sse_line(p, cb, user);
            fc_str_truncate(&p->line, 0);
            if (!go) return false;
            continue;
        }
        /* the rest of the line up to the next break in one append */
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        if (p->line.len + (j - i) + p->data.len > p->max) {
            fc_str_truncate(&p->line, 0);
            fc_str_truncate(&p->data, 0);
            return false;
        }
        fc_str_putn(&p->line, data + i, j - i);
        i = j - 1;
    }
    return true;
}

char *fc_sse_format(const char *event, const char *data, size_t len, size_t *out_len)
{
    fc_str b = FC_STR_INIT;
    fc_str_putn(&b, "", 0);
    if (event) {
        fc_str_putn(&b, "event: ", 7);
        fc_str_putn(&b, event, strlen(event));
        fc_str_putn(&b, "\n", 1);
    }
    for (size_t i = 0;;) {
        size_t j = i;
        while (j < len && data[j] != '\n' && data[j] != '\r') j++;
        fc_str_putn(&b, "data: ", 6);
        fc_str_putn(&b, data + i, j - i);
        fc_str_putn(&b, "\n", 1);
        if (j >= len) break;
        if (data[j] == '\r' && j + 1 < len && data[j + 1] == '\n') j++;
        i = j + 1;
    }
    fc_str_putn(&b, "\n", 1);
    if (out_len) *out_len = b.len;
    return fc_str_take(&b);
}
