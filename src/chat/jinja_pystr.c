/*
 * jinja_pystr.c: Python's str for the Jinja2 interpreter (see jinja_impl.h):
 * UTF-8 with surrogateescape, Python's character classes (from utf8proc's
 * Unicode categories), repr(float), the str methods chat templates call,
 * printf-style str % args and str.format, as CPython documents them.
 */
#include "jinja.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "base/fc_base.h"
#include "base/json.h"
#include "base/utf8.h"
#include "conv_impl.h"
#include "jinja_impl.h"

/* ---- UTF-8 and Python's character classes ---- */

/* Decodes one code point. An invalid byte decodes as U+DC80..U+DCFF (as
 * Python's surrogateescape does), which u8put writes back as the byte. */
int32_t fc_jinja_u8dec(const char *s, size_t n, size_t *adv)
{
    uint32_t cp;
    int k = fc_utf8_next(s, n, &cp);
    if (k <= 0) { *adv = 1; return 0xdc00 + (unsigned char)s[0]; } /* surrogateescape */
    *adv = (size_t)k;
    return (int32_t)cp;
}

void fc_jinja_u8put(fc_str *b, int32_t cp)
{
    if (cp >= 0xdc80 && cp <= 0xdcff) { fc_str_putc(b, (char)(cp - 0xdc00)); return; }
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, tmp);
    if (k <= 0) { tmp[0] = (utf8proc_uint8_t)cp; k = 1; }
    fc_str_putn(b, (const char *)tmp, (size_t)k);
}

size_t fc_jinja_u8len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0, a; i < n; i += a, c++) fc_jinja_u8dec(s + i, n - i, &a);
    return c;
}

/* str.isspace(): the characters Python strips by default. */
bool fc_jinja_py_space(int32_t c)
{
    if (c < 128) return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
           c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Line boundaries of str.splitlines(). */
bool fc_jinja_py_linebreak(int32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
}

bool fc_jinja_py_printable(int32_t c)
{
    if (c == ' ') return true;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default: return true;
    }
}

static bool cp_cased(int32_t c) { return utf8proc_tolower(c) != c || utf8proc_toupper(c) != c || utf8proc_totitle(c) != c; }
static bool cp_upper(int32_t c) { return utf8proc_tolower(c) != c; }
static bool cp_lower(int32_t c) { return utf8proc_toupper(c) != c; }
bool fc_jinja_cp_alpha(int32_t c)
{
    int k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}
static bool cp_decimal(int32_t c) { return utf8proc_category(c) == UTF8PROC_CATEGORY_ND; }
/* str.isdigit(): decimal digits plus Numeric_Type=Digit (superscripts,
 * subscripts, circled and parenthesized digits, ...). */
static bool cp_digit(int32_t c)
{
    static const int32_t ranges[][2] = {
        { 0xb2, 0xb3 }, { 0xb9, 0xb9 }, { 0x1369, 0x1371 }, { 0x19da, 0x19da }, { 0x2070, 0x2070 },
        { 0x2074, 0x2079 }, { 0x2080, 0x2089 }, { 0x2460, 0x2468 }, { 0x2474, 0x247c }, { 0x2488, 0x2490 },
        { 0x24ea, 0x24ea }, { 0x24f5, 0x24fd }, { 0x24ff, 0x24ff }, { 0x2776, 0x277e }, { 0x2780, 0x2788 },
        { 0x278a, 0x2792 }, { 0x10a40, 0x10a43 }, { 0x1f100, 0x1f10a },
    };
    if (cp_decimal(c)) return true;
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
        if (c >= ranges[i][0] && c <= ranges[i][1]) return true;
    return false;
}
bool fc_jinja_cp_numeric(int32_t c)
{
    int k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* ---- Python number formatting ---- */

/* repr(float): the shortest digits that round-trip, fixed notation for
 * exponents in [-4, 16), else d.ddde+XX. */
void fc_jinja_fmt_float(double d, char *out, size_t cap)
{
    if (isnan(d)) { snprintf(out, cap, "nan"); return; }
    if (isinf(d)) { snprintf(out, cap, d > 0 ? "inf" : "-inf"); return; }
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    const char *s = tmp;
    bool neg = *s == '-';
    if (neg) s++;
    char digits[24];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < 20) digits[nd++] = *s;
    int exp = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char *o = out;
    char *end = out + cap - 1;
#define PUT(c) do { if (o < end) *o++ = (c); } while (0)
    if (neg) PUT('-');
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) PUT(i < nd ? digits[i] : '0');
            PUT('.');
            if (nd > exp + 1) for (int i = exp + 1; i < nd; i++) PUT(digits[i]);
            else PUT('0');
        } else {
            PUT('0'); PUT('.');
            for (int i = 0; i < -exp - 1; i++) PUT('0');
            for (int i = 0; i < nd; i++) PUT(digits[i]);
        }
    } else {
        PUT(digits[0]);
        if (nd > 1) { PUT('.'); for (int i = 1; i < nd; i++) PUT(digits[i]); }
        char e[16];
        snprintf(e, sizeof e, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        for (char *q = e; *q; q++) PUT(*q);
    }
#undef PUT
    *o = '\0';
}

/* ---- str methods ---- */

typedef struct cpset { int32_t *cp; size_t n; } cpset;

static bool in_set(const cpset *s, int32_t c)
{
    if (!s) return fc_jinja_py_space(c);
    for (size_t i = 0; i < s->n; i++)
        if (s->cp[i] == c) return true;
    return false;
}

/* str.strip/lstrip/rstrip(chars): which 1 = left, 2 = right, 3 = both. */
bool fc_jinja_s_strip(R *r, const node *at, jstr *s, val chars, int which, val *out)
{
    cpset set = { 0 }, *sp = NULL;
    if (chars.t == VT_STR) {
        jstr *c = STR(chars);
        set.cp = fc_xmalloc((c->len + 1) * sizeof(int32_t));
        for (size_t i = 0, a; i < c->len; i += a) set.cp[set.n++] = fc_jinja_u8dec(c->s + i, c->len - i, &a);
        sp = &set;
    } else if (given(chars) && chars.t != VT_NONE) {
        return fc_jinja_failf(r, at, "strip arg must be None or str");
    }
    size_t a = 0, e = s->len, k;
    if (which & 1)
        while (a < e) {
            int32_t c = fc_jinja_u8dec(s->s + a, e - a, &k);
            if (!in_set(sp, c)) break;
            a += k;
        }
    if (which & 2)
        while (e > a) {
            size_t b = e - 1;
            while (b > a && e - b < 4 && ((unsigned char)s->s[b] & 0xc0) == 0x80) b--;
            int32_t c = fc_jinja_u8dec(s->s + b, e - b, &k);
            if (k != e - b) { b = e - 1; c = fc_jinja_u8dec(s->s + b, 1, &k); }
            if (!in_set(sp, c)) break;
            e = b;
        }
    free(set.cp);
    if (!fc_jinja_work(r, at, s->len)) return false;
    *out = fc_jinja_vstr(r, s->s + a, e - a);
    return true;
}

static bool s_split(R *r, const node *at, jstr *s, val sepv, int64_t maxsplit, bool from_right, val *out)
{
    if (!fc_jinja_work(r, at, s->len * 2)) return false;
    jlist *l = fc_jinja_list_new(r, 0, false);
    const char *p = s->s;
    size_t n = s->len;
    if (sepv.t == VT_NOARG || sepv.t == VT_NONE) {
        if (!from_right) {
            size_t i = 0, k;
            for (;;) {
                while (i < n && (k = fc_jinja_ws_at(p, i, n))) i += k;
                if (i >= n) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) { fc_jinja_list_push(r, l, fc_jinja_vstr(r, p + i, n - i)); break; }
                if (l->n >= MAX_ITEMS) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return fc_jinja_failf(r, at, "list too long"); }
                size_t a = i;
                while (i < n && !fc_jinja_ws_at(p, i, n)) i++;
                fc_jinja_list_push(r, l, fc_jinja_vstr(r, p + a, i - a));
            }
        } else {
            size_t e = n;
            for (;;) {
                e = fc_jinja_rstrip_ws(p, 0, e);
                if (e == 0) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) { fc_jinja_list_push(r, l, fc_jinja_vstr(r, p, e)); break; }
                if (l->n >= MAX_ITEMS) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return fc_jinja_failf(r, at, "list too long"); }
                size_t w = e;
                while (w > 0) {
                    size_t b = w - 1;
                    while (b > 0 && w - b < 4 && ((unsigned char)p[b] & 0xc0) == 0x80) b--;
                    if (fc_jinja_ws_at(p, b, w) == w - b) break;
                    w = b;
                }
                fc_jinja_list_push(r, l, fc_jinja_vstr(r, p + w, e - w));
                e = w;
            }
            for (size_t i = 0; i < l->n / 2; i++) { val t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
        }
        *out = mk_obj(VT_LIST, l);
        return true;
    }
    jstr *sep = NULL;
    if (!fc_jinja_arg_str(r, at, "split", sepv, &sep)) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return false; }
    if (!sep->len) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return fc_jinja_failf(r, at, "empty separator"); }
    if (!from_right) {
        size_t i = 0;
        for (;;) {
            const char *f = maxsplit >= 0 && (int64_t)l->n == maxsplit ? NULL : memmem(p + i, n - i, sep->s, sep->len);
            if (!f) { fc_jinja_list_push(r, l, fc_jinja_vstr(r, p + i, n - i)); break; }
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, p + i, (size_t)(f - (p + i))));
            i = (size_t)(f - p) + sep->len;
            if (l->n >= MAX_ITEMS) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return fc_jinja_failf(r, at, "list too long"); }
        }
    } else {
        size_t e = n;
        for (;;) {
            const char *f = NULL;
            if (!(maxsplit >= 0 && (int64_t)l->n == maxsplit) && e >= sep->len)
                for (size_t j = e - sep->len + 1; j-- > 0;)
                    if (!memcmp(p + j, sep->s, sep->len)) { f = p + j; break; }
            if (!f) { fc_jinja_list_push(r, l, fc_jinja_vstr(r, p, e)); break; }
            size_t j = (size_t)(f - p);
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, p + j + sep->len, e - j - sep->len));
            e = j;
            if (l->n >= MAX_ITEMS) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return fc_jinja_failf(r, at, "list too long"); }
        }
        for (size_t i = 0; i < l->n / 2; i++) { val t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
    }
    *out = mk_obj(VT_LIST, l);
    return true;
}

bool fc_jinja_s_case(R *r, const node *at, jstr *s, int mode, val *out)
{
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    bool prev_cased = false, first = true, word_start = true;
    for (size_t i = 0, a; i < s->len; i += a) {
        int32_t c = fc_jinja_u8dec(s->s + i, s->len - i, &a), o = c;
        if ((mode == CASE_UPPER || ((mode == CASE_TITLE || mode == CASE_CAPITALIZE) && (mode == CASE_TITLE ? !prev_cased : first))) &&
            (c == 0xdf || (c >= 0xfb00 && c <= 0xfb06))) {
            /* the SpecialCasing.txt expansions Python applies: sharp s and the Latin ligatures */
            static const char *const up[] = { "FF", "FI", "FL", "FFI", "FFL", "ST", "ST" };
            static const char *const ti[] = { "Ff", "Fi", "Fl", "Ffi", "Ffl", "St", "St" };
            if (c == 0xdf) fc_str_puts(&b, mode == CASE_UPPER ? "SS" : "Ss");
            else fc_str_puts(&b, mode == CASE_UPPER ? up[c - 0xfb00] : ti[c - 0xfb00]);
            prev_cased = true;
            first = false;
            continue;
        }
        if (c == 0x130 && (mode == CASE_LOWER || (mode == CASE_TITLE && prev_cased) || (mode == CASE_CAPITALIZE && !first))) {
            fc_str_puts(&b, "i\xcc\x87"); /* U+0130 lowers to i + combining dot above */
            prev_cased = true;
            first = false;
            continue;
        }
        switch (mode) {
        case CASE_UPPER: o = utf8proc_toupper(c); break;
        case CASE_LOWER: o = utf8proc_tolower(c); break;
        case CASE_SWAP: o = cp_upper(c) ? utf8proc_tolower(c) : cp_lower(c) ? utf8proc_toupper(c) : c; break;
        case CASE_TITLE: /* str.title(): a cased character after a cased one is lowered */
            o = prev_cased ? utf8proc_tolower(c) : utf8proc_totitle(c);
            prev_cased = cp_cased(c);
            break;
        case CASE_CAPITALIZE: o = first ? utf8proc_totitle(c) : utf8proc_tolower(c); break;
        case CASE_JINJA_TITLE: { /* jinja2 do_title: words split at [-\s({\[<]+ */
            bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || fc_jinja_py_space(c);
            o = sep ? c : word_start ? utf8proc_toupper(c) : utf8proc_tolower(c);
            word_start = sep;
            break;
        }
        }
        first = false;
        fc_jinja_u8put(&b, o);
    }
    return fc_jinja_sb_val(r, at, &b, out);
}

bool fc_jinja_s_replace(R *r, const node *at, jstr *s, jstr *old, jstr *rep, int64_t count, val *out)
{
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    int64_t done = 0;
    if (!old->len) {
        for (size_t i = 0, a = 0;; i += a) {
            if (count < 0 || done < count) { fc_str_putn(&b, rep->s, rep->len); done++; }
            if (i >= s->len) break;
            fc_jinja_u8dec(s->s + i, s->len - i, &a);
            fc_str_putn(&b, s->s + i, a);
            if (b.len > r->max_out) break;
        }
    } else {
        size_t i = 0;
        for (;;) {
            const char *f = count >= 0 && done >= count ? NULL : memmem(s->s + i, s->len - i, old->s, old->len);
            if (!f) { fc_str_putn(&b, s->s + i, s->len - i); break; }
            fc_str_putn(&b, s->s + i, (size_t)(f - (s->s + i)));
            fc_str_putn(&b, rep->s, rep->len);
            i = (size_t)(f - s->s) + old->len;
            done++;
            if (b.len > r->max_out) break;
        }
    }
    return fc_jinja_sb_val(r, at, &b, out);
}

/* find/rfind/count on code point positions. */
static int64_t s_find(const jstr *s, const jstr *sub, bool from_right)
{
    const char *f = NULL;
    if (!from_right) {
        f = sub->len ? memmem(s->s, s->len, sub->s, sub->len) : s->s;
    } else if (sub->len <= s->len) {
        for (size_t j = s->len - sub->len + 1; j-- > 0;)
            if (!memcmp(s->s + j, sub->s, sub->len)) { f = s->s + j; break; }
    }
    return f ? (int64_t)fc_jinja_u8len(s->s, (size_t)(f - s->s)) : -1;
}

bool fc_jinja_s_pad(R *r, const node *at, jstr *s, val width, val fill, int how, val *out)
{
    int64_t w = 0;
    if (!fc_jinja_arg_int(r, at, "width", width, 0, &w)) return false;
    int32_t fc = ' ';
    if (given(fill)) {
        jstr *f = NULL;
        if (!fc_jinja_arg_str(r, at, "fillchar", fill, &f)) return false;
        size_t a;
        if (fc_jinja_u8len(f->s, f->len) != 1) return fc_jinja_failf(r, at, "The fill character must be exactly one character long");
        fc = fc_jinja_u8dec(f->s, f->len, &a);
    }
    int64_t len = (int64_t)fc_jinja_u8len(s->s, s->len);
    if (w > (int64_t)r->max_out) return fc_jinja_size_ok(r, at, r->max_out + 1);
    if (w <= len) { *out = incref(mk_obj(VT_STR, s)); return true; }
    int64_t marg = w - len, left;
    if (how == 0) left = marg / 2 + (marg & w & 1);  /* center, as CPython pads */
    else if (how == 1) left = 0;                     /* ljust */
    else left = marg;                                /* rjust */
    fc_str b = { 0 };
    for (int64_t i = 0; i < left; i++) fc_jinja_u8put(&b, fc);
    fc_str_putn(&b, s->s, s->len);
    for (int64_t i = 0; i < marg - left; i++) fc_jinja_u8put(&b, fc);
    return fc_jinja_sb_val(r, at, &b, out);
}

bool fc_jinja_s_is(jstr *s, int id)
{
    if (!s->len) return false;
    bool any_cased = false, prev_cased = false;
    for (size_t i = 0, a; i < s->len; i += a) {
        int32_t c = fc_jinja_u8dec(s->s + i, s->len - i, &a);
        switch (id) {
        case M_ISDIGIT: if (!cp_digit(c)) return false; break;
        case M_ISDECIMAL: if (!cp_decimal(c)) return false; break;
        case M_ISNUMERIC: if (!fc_jinja_cp_numeric(c)) return false; break;
        case M_ISALPHA: if (!fc_jinja_cp_alpha(c)) return false; break;
        case M_ISALNUM: if (!fc_jinja_cp_alpha(c) && !fc_jinja_cp_numeric(c)) return false; break;
        case M_ISSPACE: if (!fc_jinja_py_space(c)) return false; break;
        case M_ISUPPER: if (cp_lower(c)) return false; any_cased |= cp_upper(c); break;
        case M_ISLOWER: if (cp_upper(c)) return false; any_cased |= cp_lower(c); break;
        case M_ISTITLE:
            if (cp_upper(c)) {
                if (prev_cased) return false;
                prev_cased = any_cased = true;
            } else if (cp_lower(c)) {
                if (!prev_cased) return false;
            } else {
                prev_cased = false;
            }
            break;
        }
    }
    return (id == M_ISUPPER || id == M_ISLOWER || id == M_ISTITLE) ? any_cased : true;
}

static bool str_format_method(R *r, const node *at, jstr *fmt, const cargs *a, val *out);

bool fc_jinja_call_str_method(R *r, const node *at, int id, jstr *s, const cargs *a, val *out)
{
    static const char *const p_chars[] = { "chars" };
    static const char *const p_split[] = { "sep", "maxsplit" };
    static const char *const p_keep[] = { "keepends" };
    static const char *const p_fix[] = { "prefix", "start", "end" };
    static const char *const p_rep[] = { "old", "new", "count" };
    static const char *const p_sub[] = { "sub", "start", "end" };
    static const char *const p_one[] = { "iterable" };
    static const char *const p_pad[] = { "width", "fillchar" };
    val sl[3];
    switch (id) {
    case M_STRIP: case M_LSTRIP: case M_RSTRIP:
        if (!fc_jinja_bind(r, at, "strip", a, 1, p_chars, sl)) return false;
        return fc_jinja_s_strip(r, at, s, sl[0], id == M_STRIP ? 3 : id == M_LSTRIP ? 1 : 2, out);
    case M_SPLIT: case M_RSPLIT: {
        int64_t maxsplit = 0;
        if (!fc_jinja_bind(r, at, "split", a, 2, p_split, sl) || !fc_jinja_arg_int(r, at, "maxsplit", sl[1], -1, &maxsplit)) return false;
        return s_split(r, at, s, sl[0], maxsplit, id == M_RSPLIT, out);
    }
    case M_SPLITLINES: {
        if (!fc_jinja_bind(r, at, "splitlines", a, 1, p_keep, sl)) return false;
        bool keep = given(sl[0]) && fc_jinja_truthy(sl[0]);
        jlist *l = fc_jinja_list_new(r, 0, false);
        size_t i = 0, start = 0, k;
        while (i < s->len) {
            int32_t c = fc_jinja_u8dec(s->s + i, s->len - i, &k);
            if (!fc_jinja_py_linebreak(c)) { i += k; continue; }
            size_t e = i;
            i += k;
            if (c == '\r' && i < s->len && s->s[i] == '\n') i++;
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, s->s + start, (keep ? i : e) - start));
            start = i;
            if (l->n >= MAX_ITEMS) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return fc_jinja_failf(r, at, "list too long"); }
        }
        if (start < s->len) fc_jinja_list_push(r, l, fc_jinja_vstr(r, s->s + start, s->len - start));
        *out = mk_obj(VT_LIST, l);
        return fc_jinja_work(r, at, s->len);
    }
    case M_STARTSWITH: case M_ENDSWITH: {
        if (!fc_jinja_bind(r, at, id == M_STARTSWITH ? "startswith" : "endswith", a, 3, p_fix, sl)) return false;
        if (given(sl[1]) || given(sl[2])) return fc_jinja_failf(r, at, "startswith/endswith with start or end is not supported");
        const val *cands = &sl[0];
        size_t nc = 1;
        if (sl[0].t == VT_LIST && LIST(sl[0])->tuple) { cands = LIST(sl[0])->v; nc = LIST(sl[0])->n; }
        *out = mk_bool(false);
        for (size_t i = 0; i < nc; i++) {
            jstr *x = NULL;
            if (!fc_jinja_arg_str(r, at, id == M_STARTSWITH ? "startswith" : "endswith", cands[i], &x)) return false;
            if (x->len <= s->len && !memcmp(id == M_STARTSWITH ? s->s : s->s + s->len - x->len, x->s, x->len)) *out = mk_bool(true);
        }
        return true;
    }
    case M_UPPER: case M_LOWER: case M_CASEFOLD: case M_TITLE: case M_CAPITALIZE: case M_SWAPCASE:
        if (!fc_jinja_bind(r, at, "str method", a, 0, NULL, sl)) return false;
        return fc_jinja_s_case(r, at, s, id == M_UPPER ? CASE_UPPER : id == M_TITLE ? CASE_TITLE : id == M_CAPITALIZE ? CASE_CAPITALIZE
                                : id == M_SWAPCASE ? CASE_SWAP : CASE_LOWER, out);
    case M_REPLACE: {
        jstr *o = NULL, *n = NULL;
        int64_t count = 0;
        if (!fc_jinja_bind(r, at, "replace", a, 3, p_rep, sl) || !fc_jinja_arg_str(r, at, "replace", sl[0], &o) ||
            !fc_jinja_arg_str(r, at, "replace", sl[1], &n) || !fc_jinja_arg_int(r, at, "count", sl[2], -1, &count))
            return false;
        return fc_jinja_s_replace(r, at, s, o, n, count, out);
    }
    case M_FIND: case M_RFIND: case M_INDEX: case M_RINDEX: case M_COUNT: {
        jstr *sub = NULL;
        if (!fc_jinja_bind(r, at, "find", a, 3, p_sub, sl) || !fc_jinja_arg_str(r, at, "find", sl[0], &sub)) return false;
        if (given(sl[1]) || given(sl[2])) return fc_jinja_failf(r, at, "find/index/count with start or end is not supported");
        if (!fc_jinja_work(r, at, s->len)) return false;
        if (id == M_COUNT) {
            int64_t c = 0;
            if (!sub->len) c = (int64_t)fc_jinja_u8len(s->s, s->len) + 1;
            else
                for (const char *p = s->s, *f; (f = memmem(p, s->len - (size_t)(p - s->s), sub->s, sub->len)); p = f + sub->len) c++;
            *out = mk_int(c);
            return true;
        }
        int64_t i = s_find(s, sub, id == M_RFIND || id == M_RINDEX);
        if (i < 0 && (id == M_INDEX || id == M_RINDEX)) return fc_jinja_failf(r, at, "substring not found");
        *out = mk_int(i);
        return true;
    }
    case M_JOIN: {
        if (!fc_jinja_bind(r, at, "join", a, 1, p_one, sl)) return false;
        if (!given(sl[0])) return fc_jinja_failf(r, at, "join() takes exactly one argument (0 given)");
        jlist *l;
        if (!fc_jinja_iter_list(r, at, sl[0], &l)) return false;
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != VT_STR) {
                fc_jinja_failf(r, at, "sequence item %zu: expected str instance, %s found", i, fc_jinja_type_name(l->v[i]));
                fc_str_free(&b);
                fc_jinja_decref(r, mk_obj(VT_LIST, l));
                return false;
            }
            if (i) fc_str_putn(&b, s->s, s->len);
            fc_str_putn(&b, STR(l->v[i])->s, STR(l->v[i])->len);
            if (b.len > r->max_out) break;
        }
        fc_jinja_decref(r, mk_obj(VT_LIST, l));
        return fc_jinja_sb_val(r, at, &b, out);
    }
    case M_FORMAT: return str_format_method(r, at, s, a, out);
    case M_ISDIGIT: case M_ISDECIMAL: case M_ISNUMERIC: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE:
    case M_ISUPPER: case M_ISLOWER: case M_ISTITLE:
        if (!fc_jinja_bind(r, at, "str method", a, 0, NULL, sl)) return false;
        *out = mk_bool(fc_jinja_s_is(s, id));
        return fc_jinja_work(r, at, s->len);
    case M_CENTER: case M_LJUST: case M_RJUST:
        if (!fc_jinja_bind(r, at, "pad", a, 2, p_pad, sl)) return false;
        if (!given(sl[0])) return fc_jinja_failf(r, at, "missing width");
        return fc_jinja_s_pad(r, at, s, sl[0], sl[1], id == M_CENTER ? 0 : id == M_LJUST ? 1 : 2, out);
    case M_ZFILL: {
        int64_t w = 0;
        if (!fc_jinja_bind(r, at, "zfill", a, 1, p_pad, sl) || !fc_jinja_arg_int(r, at, "width", sl[0], 0, &w)) return false;
        int64_t len = (int64_t)fc_jinja_u8len(s->s, s->len);
        if (w > (int64_t)r->max_out) return fc_jinja_size_ok(r, at, r->max_out + 1);
        if (w <= len) { *out = incref(mk_obj(VT_STR, s)); return true; }
        fc_str b = { 0 };
        size_t i = 0;
        if (s->len && (s->s[0] == '+' || s->s[0] == '-')) fc_str_putc(&b, s->s[i++]);
        for (int64_t k = 0; k < w - len; k++) fc_str_putc(&b, '0');
        fc_str_putn(&b, s->s + i, s->len - i);
        return fc_jinja_sb_val(r, at, &b, out);
    }
    case M_REMOVEPREFIX: case M_REMOVESUFFIX: {
        jstr *x = NULL;
        if (!fc_jinja_bind(r, at, "removeprefix", a, 1, p_fix, sl) || !fc_jinja_arg_str(r, at, "removeprefix", sl[0], &x)) return false;
        bool pre = id == M_REMOVEPREFIX;
        if (x->len <= s->len && !memcmp(pre ? s->s : s->s + s->len - x->len, x->s, x->len))
            *out = fc_jinja_vstr(r, pre ? s->s + x->len : s->s, s->len - x->len);
        else
            *out = incref(mk_obj(VT_STR, s));
        return true;
    }
    case M_PARTITION: case M_RPARTITION: {
        jstr *sep = NULL;
        if (!fc_jinja_bind(r, at, "partition", a, 1, p_fix, sl) || !fc_jinja_arg_str(r, at, "partition", sl[0], &sep)) return false;
        if (!sep->len) return fc_jinja_failf(r, at, "empty separator");
        const char *f = NULL;
        if (id == M_PARTITION) f = memmem(s->s, s->len, sep->s, sep->len);
        else if (sep->len <= s->len)
            for (size_t j = s->len - sep->len + 1; j-- > 0;)
                if (!memcmp(s->s + j, sep->s, sep->len)) { f = s->s + j; break; }
        jlist *l = fc_jinja_list_new(r, 3, true);
        if (!f) {
            fc_jinja_list_push(r, l, id == M_PARTITION ? incref(mk_obj(VT_STR, s)) : fc_jinja_vstr(r, "", 0));
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, "", 0));
            fc_jinja_list_push(r, l, id == M_PARTITION ? fc_jinja_vstr(r, "", 0) : incref(mk_obj(VT_STR, s)));
        } else {
            size_t j = (size_t)(f - s->s);
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, s->s, j));
            fc_jinja_list_push(r, l, incref(mk_obj(VT_STR, sep)));
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, s->s + j + sep->len, s->len - j - sep->len));
        }
        *out = mk_obj(VT_LIST, l);
        return true;
    }
    default: return fc_jinja_failf(r, at, "internal error: unknown str method");
    }
}

/* ---- str % args (printf-style formatting) ---- */

static void pad_to(fc_str *b, const char *s, size_t n, int64_t width, bool left, char fill)
{
    int64_t len = (int64_t)fc_jinja_u8len(s, n);
    if (!left) for (int64_t i = len; i < width; i++) fc_str_putc(b, fill);
    fc_str_putn(b, s, n);
    if (left) for (int64_t i = len; i < width; i++) fc_str_putc(b, ' ');
}

/* One integer in Python's %d/%x/%o style (sign, '#' prefix, zero padding). */
static void fmt_int(fc_str *b, int64_t v, char conv, const char *flags, int64_t width, int64_t prec)
{
    bool neg = v < 0;
    uint64_t m = neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char digits[72];
    int nd = 0;
    unsigned base = conv == 'x' || conv == 'X' ? 16 : conv == 'o' ? 8 : conv == 'b' ? 2 : 10;
    const char *dig = conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
    do { digits[nd++] = dig[m % base]; m /= base; } while (m);
    char head[4];
    int nh = 0;
    if (neg) head[nh++] = '-';
    else if (strchr(flags, '+')) head[nh++] = '+';
    else if (strchr(flags, ' ')) head[nh++] = ' ';
    if (strchr(flags, '#') && base != 10) { head[nh++] = '0'; head[nh++] = conv == 'X' ? 'X' : conv == 'o' ? 'o' : conv == 'b' ? 'b' : 'x'; }
    int64_t zeros = prec > nd ? prec - nd : 0, len = nh + zeros + nd;
    bool left = strchr(flags, '-') != NULL, zero = strchr(flags, '0') != NULL && !left;
    if (zero && width > len) { zeros += width - len; len = width; }
    if (!left) for (int64_t i = len; i < width; i++) fc_str_putc(b, ' ');
    fc_str_putn(b, head, (size_t)nh);
    for (int64_t i = 0; i < zeros; i++) fc_str_putc(b, '0');
    while (nd) fc_str_putc(b, digits[--nd]);
    if (left) for (int64_t i = len; i < width; i++) fc_str_putc(b, ' ');
}

static bool fmt_float_c(R *r, const node *at, fc_str *b, double x, char conv, const char *flags, int64_t width, int64_t prec)
{
    if (width > 4096 || prec > 4096) return fc_jinja_failf(r, at, "format width or precision too large");
    char spec[32], *p = spec;
    *p++ = '%';
    for (const char *f = flags; *f && p < spec + 8; f++) *p++ = *f;
    snprintf(p, sizeof spec - (size_t)(p - spec), "*.*%c", conv);
    fc_str_printf(b, spec, (int)width, (int)(prec < 0 ? 6 : prec), x);
    return true;
}

bool fc_jinja_py_format(R *r, const node *at, val fmt, val args, val *out)
{
    jstr *f = STR(fmt);
    const val *items = &args;
    size_t n = 1, ai = 0;
    jdict *map = NULL;
    if (args.t == VT_LIST && LIST(args)->tuple) { items = LIST(args)->v; n = LIST(args)->n; }
    else if (args.t == VT_DICT) map = DICT(args);
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    const char *s = f->s;
    size_t len = f->len;
    for (size_t i = 0; i < len;) {
        if (s[i] != '%') {
            const char *q = memchr(s + i, '%', len - i);
            size_t k = q ? (size_t)(q - (s + i)) : len - i;
            fc_str_putn(&b, s + i, k);
            i += k;
            continue;
        }
        i++;
        const val *v = NULL;
        if (i < len && s[i] == '(') {
            size_t e = i + 1;
            int depth = 1;
            while (e < len && depth) { depth += s[e] == '(' ? 1 : s[e] == ')' ? -1 : 0; if (depth) e++; }
            if (e >= len) { fc_jinja_failf(r, at, "incomplete format key"); goto fail; }
            if (!map) { fc_jinja_failf(r, at, "format requires a mapping"); goto fail; }
            v = fc_jinja_dict_find_str(map, s + i + 1, e - i - 1);
            if (!v) { fc_jinja_failf(r, at, "KeyError: '%.*s'", (int)(e - i - 1), s + i + 1); goto fail; }
            i = e + 1;
        }
        char flags[8] = "";
        int nf = 0;
        while (i < len && strchr("-+ #0", s[i]) && s[i]) { if (nf < 7) flags[nf++] = s[i]; i++; }
        flags[nf] = '\0';
        int64_t width = 0, prec = -1;
        if (i < len && s[i] == '*') {
            if (ai >= n || !is_intlike(items[ai])) { fc_jinja_failf(r, at, "* wants int"); goto fail; }
            width = int_of(items[ai++]);
            i++;
        } else {
            while (i < len && s[i] >= '0' && s[i] <= '9') { width = width * 10 + (s[i++] - '0'); if (width > 1 << 20) width = 1 << 20; }
        }
        if (i < len && s[i] == '.') {
            i++;
            prec = 0;
            if (i < len && s[i] == '*') {
                if (ai >= n || !is_intlike(items[ai])) { fc_jinja_failf(r, at, "* wants int"); goto fail; }
                prec = int_of(items[ai++]);
                i++;
            } else {
                while (i < len && s[i] >= '0' && s[i] <= '9') { prec = prec * 10 + (s[i++] - '0'); if (prec > 1 << 20) prec = 1 << 20; }
            }
        }
        while (i < len && (s[i] == 'h' || s[i] == 'l' || s[i] == 'L')) i++;
        if (i >= len) { fc_jinja_failf(r, at, "incomplete format"); goto fail; }
        char conv = s[i++];
        if (conv == '%') { fc_str_putc(&b, '%'); continue; }
        if (!v) {
            if (map) v = &args;
            else if (ai < n) v = &items[ai++];
            else { fc_jinja_failf(r, at, "not enough arguments for format string"); goto fail; }
        }
        if (width < 0) { /* a negative '*' width left-justifies */
            if (nf < 7) { flags[nf++] = '-'; flags[nf] = '\0'; }
            width = width == INT64_MIN ? INT64_MAX : -width;
        }
        if (width > (int64_t)r->max_out || prec > (int64_t)r->max_out) { fc_jinja_size_ok(r, at, r->max_out + 1); goto fail; }
        switch (conv) {
        case 's': case 'r': case 'a': {
            fc_str t = { 0 };
            fc_str_putn(&t, "", 0);
            bool ok = conv == 's' ? fc_jinja_py_str_into(r, at, &t, *v, 0) : fc_jinja_py_repr(r, at, &t, *v, 0);
            if (!ok) { fc_str_free(&t); goto fail; }
            size_t k = t.len;
            if (prec >= 0) k = fc_jinja_cp_offset(t.p, t.len, (size_t)prec);
            pad_to(&b, t.p, k, width, strchr(flags, '-') != NULL, ' ');
            fc_str_free(&t);
            break;
        }
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': {
            int64_t x;
            if (is_intlike(*v)) x = int_of(*v);
            else if (v->t == VT_FLOAT && (conv == 'd' || conv == 'i' || conv == 'u') && isfinite(v->u.f) &&
                     fabs(v->u.f) < 9.2e18) x = (int64_t)v->u.f;
            else {
                fc_jinja_failf(r, at, "%%%c format: %s is required, not %s", conv, conv == 'd' || conv == 'i' || conv == 'u' ? "a real number" : "an integer", fc_jinja_type_name(*v));
                goto fail;
            }
            fmt_int(&b, x, conv == 'i' || conv == 'u' ? 'd' : conv, flags, width, prec);
            break;
        }
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G':
            if (!is_num(*v)) { fc_jinja_failf(r, at, "must be real number, not %s", fc_jinja_type_name(*v)); goto fail; }
            if (!fmt_float_c(r, at, &b, num_of(*v), conv, flags, width, prec)) goto fail;
            break;
        case 'c':
            if (is_intlike(*v) && int_of(*v) >= 0 && int_of(*v) <= 0x10ffff) fc_jinja_u8put(&b, (int32_t)int_of(*v));
            else if (v->t == VT_STR && fc_jinja_u8len(STR(*v)->s, STR(*v)->len) == 1) fc_str_putn(&b, STR(*v)->s, STR(*v)->len);
            else { fc_jinja_failf(r, at, "%%c requires int or char"); goto fail; }
            break;
        default:
            fc_jinja_failf(r, at, "unsupported format character '%c' (0x%x) at index %zu", conv, (unsigned char)conv, i - 1);
            goto fail;
        }
        if (b.len > r->max_out) break;
    }
    if (!map && ai < n) {
        fc_jinja_failf(r, at, "not all arguments converted during string formatting");
        goto fail;
    }
    return fc_jinja_sb_val(r, at, &b, out);
fail:
    fc_str_free(&b);
    return false;
}

/* ---- str.format ---- */

/* A format_spec subset: [[fill]align][sign][#][0][width][.precision][type]. */
static bool apply_spec(R *r, const node *at, fc_str *b, val v, const char *spec, size_t n)
{
    size_t i = 0;
    char fill = ' ', align = 0, sign = '-', type = 0;
    bool alt = false, zero = false;
    int64_t width = 0, prec = -1;
    if (n >= 2 && strchr("<>^=", spec[1])) { fill = spec[0]; align = spec[1]; i = 2; }
    else if (n >= 1 && strchr("<>^=", spec[0])) { align = spec[0]; i = 1; }
    if (i < n && strchr("+- ", spec[i])) sign = spec[i++];
    if (i < n && spec[i] == '#') { alt = true; i++; }
    if (i < n && spec[i] == '0') { zero = true; i++; }
    while (i < n && spec[i] >= '0' && spec[i] <= '9') { width = width * 10 + (spec[i++] - '0'); if (width > 1 << 20) width = 1 << 20; }
    if (i < n && spec[i] == '.') {
        prec = 0;
        i++;
        while (i < n && spec[i] >= '0' && spec[i] <= '9') { prec = prec * 10 + (spec[i++] - '0'); if (prec > 4096) prec = 4096; }
    }
    if (i < n) type = spec[i++];
    if (i != n) return fc_jinja_failf(r, at, "Invalid format specifier '%.*s'", (int)n, spec);
    if (width > (int64_t)r->max_out) return fc_jinja_size_ok(r, at, r->max_out + 1);
    fc_str t = { 0 };
    fc_str_putn(&t, "", 0);
    bool numeric = is_num(v) && type != 's';
    if (!numeric) {
        if (type && type != 's') { fc_str_free(&t); return fc_jinja_failf(r, at, "Unknown format code '%c' for object of type '%s'", type, fc_jinja_type_name(v)); }
        if (!fc_jinja_py_str_into(r, at, &t, v, 0)) { fc_str_free(&t); return false; }
        if (prec >= 0) t.len = fc_jinja_cp_offset(t.p, t.len, (size_t)prec);
        if (!align) align = '<';
    } else {
        char flags[4] = "";
        int nf = 0;
        if (sign == '+' || sign == ' ') flags[nf++] = sign;
        if (alt) flags[nf++] = '#';
        flags[nf] = '\0';
        if (!type) type = v.t == VT_FLOAT ? 0 : 'd';
        if (strchr("dxXob", type)) {
            if (v.t == VT_FLOAT) { fc_str_free(&t); return fc_jinja_failf(r, at, "Unknown format code '%c' for object of type 'float'", type); }
            fmt_int(&t, int_of(v), type, flags, 0, -1);
        } else if (strchr("eEfFgG%", type)) {
            double x = num_of(v) * (type == '%' ? 100.0 : 1.0);
            if (!fmt_float_c(r, at, &t, x, type == '%' ? 'f' : type, flags, 0, prec)) { fc_str_free(&t); return false; }
            if (type == '%') fc_str_putc(&t, '%');
        } else if (type == 0) { /* float, no type: like repr unless a precision is given (then 'g'-ish) */
            if (prec >= 0) { if (!fmt_float_c(r, at, &t, v.u.f, 'g', flags, 0, prec)) { fc_str_free(&t); return false; } }
            else { char tmp[64]; fc_jinja_fmt_float(v.u.f, tmp, sizeof tmp); if (sign == '+' && v.u.f >= 0) fc_str_putc(&t, '+'); fc_str_puts(&t, tmp); }
        } else {
            fc_str_free(&t);
            return fc_jinja_failf(r, at, "Unknown format code '%c' for object of type '%s'", type, fc_jinja_type_name(v));
        }
        if (!align) align = zero ? '=' : '>';
        if (zero && fill == ' ') fill = '0';
    }
    int64_t len = (int64_t)fc_jinja_u8len(t.p, t.len), pad = width > len ? width - len : 0;
    int64_t left = align == '<' ? 0 : align == '^' ? pad / 2 : pad;
    if (align == '=' && t.len && strchr("+- ", t.p[0])) { fc_str_putc(b, t.p[0]); memmove(t.p, t.p + 1, --t.len); }
    for (int64_t k = 0; k < left; k++) fc_str_putc(b, fill);
    fc_str_putn(b, t.p, t.len);
    for (int64_t k = 0; k < pad - left; k++) fc_str_putc(b, fill);
    fc_str_free(&t);
    return true;
}

static bool str_format_method(R *r, const node *at, jstr *fmt, const cargs *a, val *out)
{
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    const char *s = fmt->s;
    size_t n = fmt->len;
    int auto_idx = 0, numbering = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '}' ) {
            if (i + 1 < n && s[i + 1] == '}') { fc_str_putc(&b, '}'); i += 2; continue; }
            fc_jinja_failf(r, at, "Single '}' encountered in format string");
            goto fail;
        }
        if (c != '{') { fc_str_putc(&b, c); i++; continue; }
        if (i + 1 < n && s[i + 1] == '{') { fc_str_putc(&b, '{'); i += 2; continue; }
        size_t e = i + 1;
        while (e < n && s[e] != '}' && s[e] != '!' && s[e] != ':' && s[e] != '.' && s[e] != '[' && s[e] != '{') e++;
        const char *name = s + i + 1;
        size_t nl = e - i - 1;
        val v;
        if (nl == 0 || (name[0] >= '0' && name[0] <= '9')) {
            int mode = nl ? 2 : 1; /* 1 automatic, 2 manual numbering */
            if (numbering && numbering != mode) {
                fc_jinja_failf(r, at, "cannot switch from manual field specification to automatic field numbering"); /* string.Formatter says this both ways */
                goto fail;
            }
            numbering = mode;
            long idx = nl ? strtol(name, NULL, 10) : auto_idx++;
            if (idx < 0 || idx >= a->npos) { fc_jinja_failf(r, at, "Replacement index %ld out of range for positional args tuple", idx); goto fail; }
            v = incref(a->pos[idx]);
        } else {
            int k = 0;
            while (k < a->nkw && (strlen(a->kwn[k]) != nl || memcmp(a->kwn[k], name, nl))) k++;
            if (k == a->nkw) { fc_jinja_failf(r, at, "KeyError: '%.*s'", (int)(nl > 100 ? 100 : nl), name); goto fail; }
            v = incref(a->kwv[k]);
        }
        while (e < n && (s[e] == '.' || s[e] == '[')) {
            val nv;
            bool ok;
            if (s[e] == '.') {
                size_t k = e + 1;
                while (k < n && s[k] != '}' && s[k] != '!' && s[k] != ':' && s[k] != '.' && s[k] != '[') k++;
                ok = fc_jinja_get_attr(r, at, v, s + e + 1, k - e - 1, &nv);
                e = k;
            } else {
                const char *q = memchr(s + e, ']', n - e);
                if (!q) { fc_jinja_decref(r, v); fc_jinja_failf(r, at, "Missing ']' in format string"); goto fail; }
                size_t k = (size_t)(q - s);
                bool digits = k > e + 1;
                for (size_t j = e + 1; j < k; j++) digits &= s[j] >= '0' && s[j] <= '9';
                val key = digits ? mk_int(strtoll(s + e + 1, NULL, 10)) : fc_jinja_vstr(r, s + e + 1, k - e - 1);
                ok = fc_jinja_get_item(r, at, v, key, &nv);
                fc_jinja_decref(r, key);
                e = k + 1;
            }
            fc_jinja_decref(r, v);
            if (!ok) goto fail;
            v = nv;
        }
        char conv = 0;
        if (e < n && s[e] == '!') {
            if (e + 1 < n) conv = s[e + 1];
            e += 2;
        }
        const char *spec = "";
        size_t sl = 0;
        if (e < n && s[e] == ':') {
            size_t k = e + 1;
            while (k < n && s[k] != '}') k++;
            spec = s + e + 1;
            sl = k - e - 1;
            e = k;
        }
        if (e >= n || s[e] != '}') { fc_jinja_decref(r, v); fc_jinja_failf(r, at, "expected '}' before end of string"); goto fail; }
        if (v.t == VT_UNDEF) { bool ok = fc_jinja_fail_undef(r, at, v); fc_jinja_decref(r, v); (void)ok; goto fail; }
        bool ok;
        if (conv == 'r' || conv == 'a') {
            fc_str t = { 0 };
            fc_str_putn(&t, "", 0);
            ok = fc_jinja_py_repr(r, at, &t, v, 0);
            val tv = mk_none();
            if (ok) ok = fc_jinja_sb_val(r, at, &t, &tv);
            else fc_str_free(&t);
            if (ok) ok = apply_spec(r, at, &b, tv, spec, sl);
            fc_jinja_decref(r, tv);
        } else {
            ok = apply_spec(r, at, &b, v, spec, sl);
        }
        fc_jinja_decref(r, v);
        if (!ok) goto fail;
        i = e + 1;
        if (b.len > r->max_out) break;
    }
    return fc_jinja_sb_val(r, at, &b, out);
fail:
    fc_str_free(&b);
    return false;
}
