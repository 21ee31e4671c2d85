/*
 * utf8.c: UTF-8 validation, decoding, encoding and the U+FFFD rule of
 * maximal subparts (utf8.h). Table 3-7 of the Unicode standard gives the
 * allowed second byte of each lead byte; every later byte is 80..BF.
 */
#include "base/utf8.h"

#include <string.h>

#include "base/str.h"

/* Sequence length of a lead byte and the range of its second byte; 0 for a
 * byte that never starts a sequence (80..C1, F5..FF). */
static int lead_info(uint8_t c, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80, *hi = 0xBF;
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return 2;
    if (c < 0xF0) {
        if (c == 0xE0) *lo = 0xA0;      /* no overlongs */
        else if (c == 0xED) *hi = 0x9F; /* no surrogates */
        return 3;
    }
    if (c < 0xF5) {
        if (c == 0xF0) *lo = 0x90;      /* no overlongs */
        else if (c == 0xF4) *hi = 0x8F; /* nothing above U+10FFFF */
        return 4;
    }
    return 0;
}

int fc_utf8_len(const uint8_t *s, size_t n)
{
    if (n == 0) return 0;
    uint8_t lo, hi;
    int len = lead_info(s[0], &lo, &hi);
    if (len == 0 || (size_t)len > n) return 0;
    if (len >= 2 && (s[1] < lo || s[1] > hi)) return 0;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

uint32_t fc_utf8_decode(const uint8_t *s, int len)
{
    switch (len) {
    case 1: return s[0];
    case 2: return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3: return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
               (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
    }
}

int fc_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    int len = fc_utf8_len((const uint8_t *)s, n);
    *cp = len ? fc_utf8_decode((const uint8_t *)s, len) : 0xFFFD;
    return len;
}

int fc_utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t fc_utf8_bad_len(const uint8_t *s, size_t n, bool *could_complete)
{
    uint8_t lo, hi;
    int len = lead_info(s[0], &lo, &hi);
    if (could_complete) *could_complete = false;
    if (len == 0) return 1;
    size_t i = 1;
    for (; i < (size_t)len && i < n; i++) {
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (s[i] < l || s[i] > h) return i;
    }
    if (could_complete) *could_complete = i == n && i < (size_t)len;
    return i;
}

bool fc_utf8_valid(const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        if (i + 8 <= n) { /* ASCII runs eight bytes at a time */
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (!(w & 0x8080808080808080ull)) { i += 8; continue; }
        }
        if (u[i] < 0x80) { i++; continue; }
        int len = fc_utf8_len(u + i, n - i);
        if (!len) return false;
        i += (size_t)len;
    }
    return true;
}

size_t fc_utf8_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((uint8_t)s[i] & 0xC0) != 0x80;
    return c;
}

size_t fc_utf8_complete_len(const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    /* an incomplete tail is at most 3 bytes: look for its lead byte */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = u[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation: keep looking */
        if (c < 0x80) return n;
        bool could = false;
        fc_utf8_bad_len(u + n - back, back, &could);
        return could ? n - back : n;
    }
    return n;
}

void fc_utf8_put_lossy(fc_str *out, const char *s, size_t n)
{
    if (n == 0) return; /* s may be NULL then */
    const uint8_t *u = (const uint8_t *)s;
    size_t run = 0, i = 0;
    while (i < n) {
        if (u[i] < 0x80) { i++; continue; }
        int len = fc_utf8_len(u + i, n - i);
        if (len) { i += (size_t)len; continue; }
        fc_str_putn(out, s + run, i - run);
        fc_str_putn(out, "\xEF\xBF\xBD", 3);
        i += fc_utf8_bad_len(u + i, n - i, NULL);
        run = i;
    }
    fc_str_putn(out, s + run, n - run);
}
