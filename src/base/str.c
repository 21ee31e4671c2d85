/*
 * str.c: fc_str, the growable string builder with a size cap and a sticky
 * error flag (str.h). Capacity doubles from 64 bytes; a failed builder keeps
 * its last good text and ignores further appends.
 */
#include "base/str.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fc_str_init(fc_str *s, size_t max)
{
    s->p = NULL;
    s->len = s->cap = 0;
    s->max = max ? max : SIZE_MAX;
    s->failed = false;
}

/* Room for `extra` more bytes plus the NUL; false (and failed set) when the
 * cap or memory says no. */
static bool grow(fc_str *s, size_t extra)
{
    if (s->failed) return false;
    if (extra > s->max - s->len) { s->failed = true; return false; }
    size_t need = s->len + extra + 1;
    if (need <= s->cap) return true;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(s->p, cap);
    if (!p) { s->failed = true; return false; }
    s->p = p;
    s->cap = cap;
    return true;
}

void fc_str_putn(fc_str *s, const void *data, size_t n)
{
    if (!grow(s, n)) return;
    if (n) memcpy(s->p + s->len, data, n);
    s->len += n;
    s->p[s->len] = '\0';
}

void fc_str_puts(fc_str *s, const char *str)
{
    if (str) fc_str_putn(s, str, strlen(str));
}

void fc_str_putc(fc_str *s, char c)
{
    if (s->len + 1 < s->cap && !s->failed && s->len < s->max) {
        s->p[s->len++] = c;
        s->p[s->len] = '\0';
        return;
    }
    fc_str_putn(s, &c, 1);
}

void fc_str_vprintf(fc_str *s, const char *fmt, va_list ap)
{
    if (s->failed) return;
    va_list ap2;
    va_copy(ap2, ap);
    size_t room = s->cap > s->len ? s->cap - s->len : 0;
    int n = vsnprintf(room ? s->p + s->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0) { s->failed = true; goto out; }
    if ((size_t)n < room && (size_t)n <= s->max - s->len) { /* it fit */
        s->len += (size_t)n;
        goto out;
    }
    if (!grow(s, (size_t)n)) goto out;
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    s->len += (size_t)n;
out:
    if (s->p) s->p[s->len] = '\0'; /* a write that did not fit is undone */
}

void fc_str_printf(fc_str *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fc_str_vprintf(s, fmt, ap);
    va_end(ap);
}

char *fc_str_reserve(fc_str *s, size_t extra)
{
    return grow(s, extra) ? s->p + s->len : NULL;
}

void fc_str_commit(fc_str *s, size_t n)
{
    if (s->failed || !s->p) return;
    if (n > s->cap - s->len - 1) n = s->cap - s->len - 1;
    s->len += n;
    s->p[s->len] = '\0';
}

void fc_str_truncate(fc_str *s, size_t n)
{
    if (n >= s->len) return;
    s->len = n;
    s->p[n] = '\0';
}

bool fc_str_failed(const fc_str *s) { return s->failed; }
size_t fc_str_len(const fc_str *s) { return s->len; }
const char *fc_str_cstr(const fc_str *s) { return s->p ? s->p : ""; }

char *fc_str_take(fc_str *s)
{
    if (s->failed) {
        fc_str_free(s);
        return NULL;
    }
    char *p = s->p ? s->p : calloc(1, 1);
    s->p = NULL;
    s->len = s->cap = 0;
    return p;
}

void fc_str_reset(fc_str *s)
{
    s->len = 0;
    s->failed = false;
    if (s->p) s->p[0] = '\0';
}

void fc_str_free(fc_str *s)
{
    if (!s) return;
    free(s->p);
    s->p = NULL;
    s->len = s->cap = 0;
    s->failed = false;
}
