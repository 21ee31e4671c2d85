/*
 * pyjson.c: a JSON reader and writer that behave as Python's json module does
 * for FastChat's data files (pyjson.h says exactly what that means).
 *
 * One recursive-descent parser serves three callers: the validating scan of
 * the whole file (no arena: nothing is built), the per-element parse (values
 * built in an arena), and fc_pyjson_validate. Error messages follow Python's
 * wording ("Expecting ',' delimiter") with a byte offset instead of Python's
 * line/column/char triple.
 */
#include "data/pyjson.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"

#define MAX_DEPTH 1000

/* ---- arena ---- */

typedef struct block {
    struct block *next;
    size_t cap, used;
    char data[];
} block;

struct fc_pj_arena {
    block *head; /* current block first */
};

fc_pj_arena *fc_pj_arena_new(void)
{
    return fc_xcalloc(1, sizeof(fc_pj_arena));
}

void *fc_pj_alloc(fc_pj_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = 64 * 1024;
        if (cap < n) cap = n;
        b = fc_xmalloc(sizeof(block) + cap);
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void fc_pj_arena_reset(fc_pj_arena *a)
{
    if (!a->head) return;
    /* keep the oldest block (the last of the list), free the rest */
    block *b = a->head, *keep = NULL;
    while (b) {
        block *next = b->next;
        if (!next) keep = b;
        else free(b);
        b = next;
    }
    keep->used = 0;
    keep->next = NULL;
    a->head = keep;
}

void fc_pj_arena_free(fc_pj_arena *a)
{
    if (!a) return;
    block *b = a->head;
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

/* ---- parser ---- */

typedef struct parser {
    const char *b;
    size_t n, i;
    fc_pj_arena *a; /* NULL: validate only */
    fc_pj_error *err;
    int depth;
} parser;

static bool fail(parser *p, size_t at, const char *msg)
{
    p->err->offset = at;
    p->err->msg = msg;
    return false;
}

static void skip_ws(parser *p)
{
    while (p->i < p->n) {
        char c = p->b[p->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->i++;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at s (s[0] >= 0x80), 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail < 2 || (s[1] & 0xC0) != 0x80) return 0;
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;
        if (c == 0xF4 && s[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

static size_t put_cp(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* p->i at the opening quote. */
static bool parse_string(parser *p, fc_pj *out)
{
    const unsigned char *b = (const unsigned char *)p->b;
    size_t start = p->i, i = start + 1, n = p->n;
    bool esc = false;
    for (;;) {
        /* fast path over plain ASCII */
        while (i < n && b[i] >= 0x20 && b[i] < 0x80 && b[i] != '"' && b[i] != '\\') i++;
        if (i >= n) return fail(p, start, "unterminated string starting here");
        unsigned c = b[i];
        if (c == '"') break;
        if (c == '\\') {
            esc = true;
            if (i + 1 >= n) return fail(p, start, "unterminated string starting here");
            char e = (char)b[i + 1];
            if (e == 'u') {
                if (i + 6 > n || hex4((const char *)b + i + 2) < 0)
                    return fail(p, i, "invalid \\uXXXX escape");
                i += 6;
            } else if (strchr("\"\\/bfnrt", e) && e) {
                i += 2;
            } else {
                return fail(p, i, "invalid \\escape");
            }
            continue;
        }
        if (c < 0x20) return fail(p, i, "invalid control character in string");
        int l = utf8_len(b + i, n - i);
        if (!l) return fail(p, i, "invalid UTF-8 byte");
        i += (size_t)l;
    }
    size_t end = i; /* closing quote */
    p->i = end + 1;
    if (!out) return true;
    out->type = FC_PJ_STR;
    if (!esc) {
        out->str = p->b + start + 1;
        out->len = end - start - 1;
        return true;
    }
    char *o = fc_pj_alloc(p->a, end - start);
    size_t k = 0;
    for (size_t j = start + 1; j < end;) {
        if (b[j] != '\\') { o[k++] = (char)b[j++]; continue; }
        char e = (char)b[j + 1];
        j += 2;
        switch (e) {
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            unsigned cp = (unsigned)hex4((const char *)b + j);
            j += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF && j + 6 <= end && b[j] == '\\' && b[j + 1] == 'u') {
                int lo = hex4((const char *)b + j + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned)lo - 0xDC00);
                    j += 6;
                }
            }
            k += put_cp(o + k, cp); /* a lone surrogate becomes its WTF-8 form */
            break;
        }
        default: o[k++] = e; break; /* " \ / */
        }
    }
    out->str = o;
    out->len = k;
    return true;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool match_lit(parser *p, const char *lit)
{
    size_t l = strlen(lit);
    if (p->n - p->i >= l && !memcmp(p->b + p->i, lit, l)) {
        p->i += l;
        return true;
    }
    return false;
}

static bool parse_value(parser *p, fc_pj *out);

/* Grows a value array kept in the arena (doubling; the old copy is dropped). */
static fc_pj *grow(parser *p, fc_pj *items, size_t n, size_t *cap)
{
    size_t nc = *cap ? *cap * 2 : 8;
    fc_pj *ni = fc_pj_alloc(p->a, nc * sizeof(fc_pj));
    if (n) memcpy(ni, items, n * sizeof(fc_pj));
    *cap = nc;
    return ni;
}

static bool parse_array(parser *p, fc_pj *out)
{
    p->i++; /* [ */
    fc_pj *items = NULL;
    size_t n = 0, cap = 0;
    skip_ws(p);
    if (p->i < p->n && p->b[p->i] == ']') {
        p->i++;
    } else {
        for (;;) {
            fc_pj *slot = NULL;
            if (out) {
                if (n == cap) items = grow(p, items, n, &cap);
                slot = &items[n];
            }
            if (!parse_value(p, slot)) return false;
            n++;
            skip_ws(p);
            if (p->i < p->n && p->b[p->i] == ',') { p->i++; skip_ws(p); continue; }
            if (p->i < p->n && p->b[p->i] == ']') { p->i++; break; }
            return fail(p, p->i, "expecting ',' delimiter");
        }
    }
    if (out) {
        out->type = FC_PJ_ARR;
        out->len = n;
        out->items = items;
    }
    return true;
}

static bool parse_object(parser *p, fc_pj *out)
{
    p->i++; /* { */
    fc_pj *items = NULL;
    size_t n = 0, cap = 0; /* n counts slots (2 per pair) */
    skip_ws(p);
    if (p->i < p->n && p->b[p->i] == '}') {
        p->i++;
    } else {
        for (;;) {
            if (p->i >= p->n || p->b[p->i] != '"')
                return fail(p, p->i, "expecting property name enclosed in double quotes");
            fc_pj key, val;
            if (!parse_string(p, out ? &key : NULL)) return false;
            skip_ws(p);
            if (p->i >= p->n || p->b[p->i] != ':') return fail(p, p->i, "expecting ':' delimiter");
            p->i++;
            if (!parse_value(p, out ? &val : NULL)) return false;
            if (out) {
                /* a repeated key keeps its first slot and takes the new value */
                size_t k;
                for (k = 0; k < n; k += 2)
                    if (items[k].len == key.len && !memcmp(items[k].str, key.str, key.len)) break;
                if (k < n) {
                    items[k + 1] = val;
                } else {
                    if (n + 2 > cap) items = grow(p, items, n, &cap);
                    items[n] = key;
                    items[n + 1] = val;
                    n += 2;
                }
            }
            skip_ws(p);
            if (p->i < p->n && p->b[p->i] == ',') { p->i++; skip_ws(p); continue; }
            if (p->i < p->n && p->b[p->i] == '}') { p->i++; break; }
            return fail(p, p->i, "expecting ',' delimiter");
        }
    }
    if (out) {
        out->type = FC_PJ_OBJ;
        out->len = n / 2;
        out->items = items;
    }
    return true;
}

static bool parse_number(parser *p, fc_pj *out)
{
    size_t s = p->i, i = s;
    const char *b = p->b;
    if (i < p->n && b[i] == '-') i++;
    if (i >= p->n || !is_digit(b[i])) return fail(p, s, "expecting value");
    if (b[i] == '0') i++;
    else while (i < p->n && is_digit(b[i])) i++;
    bool is_float = false;
    if (i + 1 < p->n && b[i] == '.' && is_digit(b[i + 1])) {
        is_float = true;
        i += 2;
        while (i < p->n && is_digit(b[i])) i++;
    }
    if (i < p->n && (b[i] == 'e' || b[i] == 'E')) {
        size_t j = i + 1;
        if (j < p->n && (b[j] == '+' || b[j] == '-')) j++;
        if (j < p->n && is_digit(b[j])) {
            is_float = true;
            while (j < p->n && is_digit(b[j])) j++;
            i = j;
        }
    }
    p->i = i;
    if (out) {
        out->type = is_float ? FC_PJ_FLOAT : FC_PJ_INT;
        out->str = b + s;
        out->len = i - s;
    }
    return true;
}

static bool parse_value(parser *p, fc_pj *out)
{
    skip_ws(p);
    if (p->i >= p->n) return fail(p, p->i, "expecting value");
    char c = p->b[p->i];
    if (c == '"') return parse_string(p, out);
    if (c == '{' || c == '[') {
        if (++p->depth > MAX_DEPTH) return fail(p, p->i, "nesting too deep");
        bool ok = c == '{' ? parse_object(p, out) : parse_array(p, out);
        p->depth--;
        return ok;
    }
    size_t s = p->i;
    enum fc_pj_type t;
    if (match_lit(p, "null")) t = FC_PJ_NULL;
    else if (match_lit(p, "true")) t = FC_PJ_TRUE;
    else if (match_lit(p, "false")) t = FC_PJ_FALSE;
    else if (match_lit(p, "NaN") || match_lit(p, "Infinity") || match_lit(p, "-Infinity")) t = FC_PJ_FLOAT;
    else return parse_number(p, out);
    if (out) {
        out->type = t;
        out->str = p->b + s;
        out->len = p->i - s;
    }
    return true;
}

static bool check_start(parser *p)
{
    /* Python reads the file as text: a UTF-8 BOM stays and json.loads refuses it */
    if (p->n >= 3 && !memcmp(p->b, "\xEF\xBB\xBF", 3))
        return fail(p, 0, "unexpected UTF-8 BOM (decode using utf-8-sig)");
    return true;
}

static bool check_end(parser *p)
{
    skip_ws(p);
    if (p->i != p->n) return fail(p, p->i, "extra data");
    return true;
}

bool fc_pyjson_validate(const char *buf, size_t n, fc_pj_error *err)
{
    parser p = {buf, n, 0, NULL, err, 0};
    return check_start(&p) && parse_value(&p, NULL) && check_end(&p);
}

fc_pj *fc_pyjson_parse(fc_pj_arena *a, const char *buf, size_t n, fc_pj_error *err)
{
    parser p = {buf, n, 0, a, err, 0};
    fc_pj *v = fc_pj_alloc(a, sizeof(fc_pj));
    memset(v, 0, sizeof(*v));
    if (!check_start(&p) || !parse_value(&p, v) || !check_end(&p)) return NULL;
    return v;
}

bool fc_pyjson_scan_array(const char *buf, size_t n, fc_pj_span **spans, size_t *n_spans,
                          fc_pj_error *err, bool *not_array)
{
    parser p = {buf, n, 0, NULL, err, 0};
    *spans = NULL;
    *n_spans = 0;
    *not_array = false;
    if (!check_start(&p)) return false;
    skip_ws(&p);
    if (p.i >= n || buf[p.i] != '[') {
        /* report a syntax error first, as Python would, else the shape */
        if (!parse_value(&p, NULL) || !check_end(&p)) return false;
        *not_array = true;
        return true;
    }
    size_t cap = 1024, cnt = 0;
    fc_pj_span *sp = fc_xmalloc(cap * sizeof(*sp));
    p.i++;
    p.depth = 1;
    skip_ws(&p);
    if (p.i < n && buf[p.i] == ']') {
        p.i++;
    } else {
        for (;;) {
            skip_ws(&p);
            size_t s = p.i;
            if (!parse_value(&p, NULL)) goto fail;
            if (cnt == cap) sp = fc_xrealloc(sp, (cap *= 2) * sizeof(*sp));
            sp[cnt].off = s;
            sp[cnt].len = p.i - s;
            cnt++;
            skip_ws(&p);
            if (p.i < n && buf[p.i] == ',') { p.i++; continue; }
            if (p.i < n && buf[p.i] == ']') { p.i++; break; }
            fail(&p, p.i, "expecting ',' delimiter");
            goto fail;
        }
    }
    if (!check_end(&p)) goto fail;
    *spans = sp;
    *n_spans = cnt;
    return true;
fail:
    free(sp);
    return false;
}

/* ---- access ---- */

fc_pj *fc_pj_get(const fc_pj *v, const char *key)
{
    if (!v || v->type != FC_PJ_OBJ) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < v->len; i++) {
        const fc_pj *k = &v->items[2 * i];
        if (k->len == kl && !memcmp(k->str, key, kl)) return &v->items[2 * i + 1];
    }
    return NULL;
}

bool fc_pj_str_eq(const fc_pj *v, const char *s)
{
    size_t l = strlen(s);
    return v && v->type == FC_PJ_STR && v->len == l && !memcmp(v->str, s, l);
}

size_t fc_pj_str_cplen(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

fc_pj *fc_pj_new_str(fc_pj_arena *a, const char *s, size_t n)
{
    fc_pj *v = fc_pj_alloc(a, sizeof(fc_pj));
    char *c = fc_pj_alloc(a, n ? n : 1);
    if (n) memcpy(c, s, n);
    v->type = FC_PJ_STR;
    v->str = c;
    v->len = n;
    v->items = NULL;
    return v;
}

/* ---- output buffer ---- */

void fc_pj_out_reserve(fc_pj_out *o, size_t extra)
{
    if (o->len + extra <= o->cap) return;
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + extra) cap *= 2;
    o->p = fc_xrealloc(o->p, cap);
    o->cap = cap;
}

void fc_pj_out_putn(fc_pj_out *o, const char *s, size_t n)
{
    if (!n) return;
    fc_pj_out_reserve(o, n);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

void fc_pj_out_puts(fc_pj_out *o, const char *s)
{
    fc_pj_out_putn(o, s, strlen(s));
}

void fc_pj_out_free(fc_pj_out *o)
{
    free(o->p);
    o->p = NULL;
    o->len = o->cap = 0;
}

/* ---- writer ---- */

static const char HEX[] = "0123456789abcdef";

static void put_u(char *o, unsigned v)
{
    o[0] = '\\';
    o[1] = 'u';
    o[2] = HEX[(v >> 12) & 15];
    o[3] = HEX[(v >> 8) & 15];
    o[4] = HEX[(v >> 4) & 15];
    o[5] = HEX[v & 15];
}

void fc_pyjson_write_str(fc_pj_out *o, const char *s, size_t n, bool ensure_ascii)
{
    fc_pj_out_reserve(o, n * 6 + 2); /* worst case: every byte a \u00XX */
    char *w = o->p + o->len;
    const unsigned char *b = (const unsigned char *)s;
    *w++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = b[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7F) { *w++ = (char)c; i++; continue; }
        if (c < 0x80) {
            i++;
            switch (c) {
            case '"': *w++ = '\\'; *w++ = '"'; break;
            case '\\': *w++ = '\\'; *w++ = '\\'; break;
            case '\n': *w++ = '\\'; *w++ = 'n'; break;
            case '\r': *w++ = '\\'; *w++ = 'r'; break;
            case '\t': *w++ = '\\'; *w++ = 't'; break;
            case '\b': *w++ = '\\'; *w++ = 'b'; break;
            case '\f': *w++ = '\\'; *w++ = 'f'; break;
            case 0x7F:
                if (ensure_ascii) { put_u(w, c); w += 6; }
                else *w++ = (char)c;
                break;
            default: put_u(w, c); w += 6; break;
            }
            continue;
        }
        /* multi-byte: stored UTF-8 is valid (or WTF-8 for lone surrogates) */
        unsigned cp;
        int l;
        if (c >= 0xF0) { l = 4; cp = c & 0x07; }
        else if (c >= 0xE0) { l = 3; cp = c & 0x0F; }
        else { l = 2; cp = c & 0x1F; }
        if (i + (size_t)l > n) l = (int)(n - i); /* cannot happen for parsed values */
        for (int k = 1; k < l; k++) cp = (cp << 6) | (b[i + k] & 0x3F);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (ensure_ascii || surrogate) {
            if (cp >= 0x10000) {
                unsigned v = cp - 0x10000;
                put_u(w, 0xD800 + (v >> 10)); w += 6;
                put_u(w, 0xDC00 + (v & 0x3FF)); w += 6;
            } else {
                put_u(w, cp); w += 6;
            }
        } else {
            memcpy(w, b + i, (size_t)l);
            w += l;
        }
        i += (size_t)l;
    }
    *w++ = '"';
    o->len = (size_t)(w - o->p);
}

/* Python's repr() of a float. */
static void float_repr(double d, char *out)
{
    if (isnan(d)) { strcpy(out, "NaN"); return; }
    if (isinf(d)) { strcpy(out, d > 0 ? "Infinity" : "-Infinity"); return; }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    const char *t = tmp;
    char *o = out;
    if (*t == '-') { *o++ = '-'; t++; }
    char digits[24];
    int nd = 0;
    while (*t && *t != 'e') {
        if (*t != '.') digits[nd++] = *t;
        t++;
    }
    int exp10 = atoi(t + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = exp10 + 1;
    if (decpt > 16 || decpt < -3) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return;
    }
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int k = 0; k < -decpt; k++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int k = nd; k < decpt; k++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    *o = '\0';
}

static void write_number(fc_pj_out *o, const fc_pj *v)
{
    if (v->type == FC_PJ_INT) {
        if (v->len == 2 && v->str[0] == '-' && v->str[1] == '0') fc_pj_out_putn(o, "0", 1);
        else fc_pj_out_putn(o, v->str, v->len);
        return;
    }
    char tmp[64], rep[64];
    if (v->len == 3 && !memcmp(v->str, "NaN", 3)) { fc_pj_out_puts(o, "NaN"); return; }
    size_t l = v->len < sizeof tmp - 1 ? v->len : sizeof tmp - 1;
    double d;
    if (v->len < sizeof tmp - 1) {
        memcpy(tmp, v->str, l);
        tmp[l] = '\0';
        d = strtod(tmp, NULL);
    } else {
        char *big = fc_xmalloc(v->len + 1);
        memcpy(big, v->str, v->len);
        big[v->len] = '\0';
        d = strtod(big, NULL);
        free(big);
    }
    float_repr(d, rep);
    fc_pj_out_puts(o, rep);
}

static void newline_indent(fc_pj_out *o, int level)
{
    fc_pj_out_reserve(o, 1 + 2 * (size_t)level);
    char *w = o->p + o->len;
    *w++ = '\n';
    memset(w, ' ', 2 * (size_t)level);
    o->len += 1 + 2 * (size_t)level;
}

void fc_pyjson_write(fc_pj_out *o, const fc_pj *v, int level, bool ensure_ascii)
{
    switch (v->type) {
    case FC_PJ_NULL: fc_pj_out_putn(o, "null", 4); return;
    case FC_PJ_TRUE: fc_pj_out_putn(o, "true", 4); return;
    case FC_PJ_FALSE: fc_pj_out_putn(o, "false", 5); return;
    case FC_PJ_INT:
    case FC_PJ_FLOAT: write_number(o, v); return;
    case FC_PJ_STR: fc_pyjson_write_str(o, v->str, v->len, ensure_ascii); return;
    case FC_PJ_ARR:
        if (!v->len) { fc_pj_out_putn(o, "[]", 2); return; }
        fc_pj_out_putn(o, "[", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) fc_pj_out_putn(o, ",", 1);
            newline_indent(o, level + 1);
            fc_pyjson_write(o, &v->items[i], level + 1, ensure_ascii);
        }
        newline_indent(o, level);
        fc_pj_out_putn(o, "]", 1);
        return;
    case FC_PJ_OBJ:
        if (!v->len) { fc_pj_out_putn(o, "{}", 2); return; }
        fc_pj_out_putn(o, "{", 1);
        for (size_t i = 0; i < v->len; i++) {
            if (i) fc_pj_out_putn(o, ",", 1);
            newline_indent(o, level + 1);
            const fc_pj *k = &v->items[2 * i];
            fc_pyjson_write_str(o, k->str, k->len, ensure_ascii);
            fc_pj_out_putn(o, ": ", 2);
            fc_pyjson_write(o, &v->items[2 * i + 1], level + 1, ensure_ascii);
        }
        newline_indent(o, level);
        fc_pj_out_putn(o, "}", 1);
        return;
    }
}

void fc_pyjson_write_pystr(fc_pj_out *o, const fc_pj *v)
{
    if (!v) { fc_pj_out_puts(o, "None"); return; }
    switch (v->type) {
    case FC_PJ_NULL: fc_pj_out_puts(o, "None"); return;
    case FC_PJ_TRUE: fc_pj_out_puts(o, "True"); return;
    case FC_PJ_FALSE: fc_pj_out_puts(o, "False"); return;
    case FC_PJ_FLOAT:
        if (v->len == 3 && !memcmp(v->str, "NaN", 3)) { fc_pj_out_puts(o, "nan"); return; }
        if (v->len >= 8 && !memcmp(v->str + v->len - 8, "Infinity", 8)) {
            fc_pj_out_puts(o, v->str[0] == '-' ? "-inf" : "inf");
            return;
        }
        write_number(o, v);
        return;
    case FC_PJ_INT: write_number(o, v); return;
    case FC_PJ_STR: fc_pj_out_putn(o, v->str, v->len); return;
    default: {
        /* lists and dicts: an approximation of repr() */
        fc_pj_out out2 = {0};
        fc_pyjson_write(&out2, v, 0, false);
        fc_pj_out_putn(o, out2.p, out2.len);
        fc_pj_out_free(&out2);
        return;
    }
    }
}
