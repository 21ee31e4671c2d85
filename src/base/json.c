/*
 * json.c: JSON string escaping and scalar writers (json.h). Bytes that need
 * no escape are copied in runs, one fc_str_putn per run.
 */
#include "base/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"

static const char hexd[] = "0123456789abcdef";

static void put_u(fc_str *out, uint32_t u)
{
    char e[6] = {'\\', 'u', hexd[u >> 12 & 15], hexd[u >> 8 & 15], hexd[u >> 4 & 15], hexd[u & 15]};
    fc_str_putn(out, e, 6);
}

/* The two-character escape of an ASCII byte, or 0 when it has none. */
static char short_escape(unsigned char c)
{
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    case '\b': return 'b';
    case '\f': return 'f';
    default: return 0;
    }
}

void fc_json_put_strn_flags(fc_str *out, const char *s, size_t n, unsigned flags)
{
    const unsigned char *u = (const unsigned char *)s;
    bool ascii = flags & FC_JSON_ASCII, sesc = flags & FC_JSON_SURROGATEESCAPE;
    fc_str_putc(out, '"');
    size_t run = 0, i = 0; /* s[run..i) is copied as it is */
    while (i < n) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') { i++; continue; }
        if (c == 0x7F && !ascii) { i++; continue; }
        int len = c >= 0x80 ? fc_utf8_len(u + i, n - i) : 0;
        if (len && !ascii) { i += (size_t)len; continue; }
        fc_str_putn(out, s + run, i - run);
        if (c < 0x80) {
            char e = short_escape(c);
            if (e) {
                char two[2] = {'\\', e};
                fc_str_putn(out, two, 2);
            } else {
                put_u(out, c);
            }
            i++;
        } else if (len) { /* ascii: escape the code point */
            uint32_t cp = fc_utf8_decode(u + i, len);
            if (cp >= 0x10000) {
                put_u(out, 0xD800 + ((cp - 0x10000) >> 10));
                put_u(out, 0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else {
                put_u(out, cp);
            }
            i += (size_t)len;
        } else if (sesc) { /* one invalid byte */
            put_u(out, 0xDC00 + c);
            i++;
        } else { /* one maximal ill-formed subpart */
            if (ascii) put_u(out, 0xFFFD);
            else fc_str_putn(out, "\xEF\xBF\xBD", 3);
            i += fc_utf8_bad_len(u + i, n - i, NULL);
        }
        run = i;
    }
    fc_str_putn(out, s + run, n - run);
    fc_str_putc(out, '"');
}

void fc_json_put_strn(fc_str *out, const char *s, size_t n)
{
    fc_json_put_strn_flags(out, s, n, 0);
}

void fc_json_put_str(fc_str *out, const char *s)
{
    if (!s) fc_json_put_null(out);
    else fc_json_put_strn_flags(out, s, strlen(s), 0);
}

void fc_json_put_key(fc_str *out, const char *key, const char *sep)
{
    fc_json_put_strn_flags(out, key, strlen(key), 0);
    fc_str_puts(out, sep);
}

void fc_json_put_number(fc_str *out, double v, int digits)
{
    if (!isfinite(v)) { fc_json_put_null(out); return; }
    if (digits > 0) { fc_str_printf(out, "%.*g", digits, v); return; }
    char tmp[32];
    for (int d = 15; d <= 17; d++) {
        snprintf(tmp, sizeof tmp, "%.*g", d, v);
        if (d == 17 || strtod(tmp, NULL) == v) break;
    }
    fc_str_puts(out, tmp);
}

void fc_json_put_int(fc_str *out, long long v) { fc_str_printf(out, "%lld", v); }
void fc_json_put_bool(fc_str *out, bool v) { fc_str_puts(out, v ? "true" : "false"); }
void fc_json_put_null(fc_str *out) { fc_str_puts(out, "null"); }
