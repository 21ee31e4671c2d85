/*
 * sbuf.c: the growable string buffer of the chat module (conv_impl.h).
 * Capacity doubles, so building an n-byte prompt costs O(n).
 */
#include "conv_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"

static void reserve(fc_sbuf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->p = fc_xrealloc(b->p, cap);
    b->cap = cap;
}

void fc_sbuf_putn(fc_sbuf *b, const char *s, size_t n)
{
    reserve(b, n);
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void fc_sbuf_puts(fc_sbuf *b, const char *s)
{
    if (s) fc_sbuf_putn(b, s, strlen(s));
}

void fc_sbuf_putc(fc_sbuf *b, char c)
{
    fc_sbuf_putn(b, &c, 1);
}

void fc_sbuf_printf(fc_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    FC_ASSERT(n >= 0);
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *fc_sbuf_take(fc_sbuf *b)
{
    reserve(b, 0);
    b->p[b->len] = '\0';
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void fc_sbuf_free(fc_sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
