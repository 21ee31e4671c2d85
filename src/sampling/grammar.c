/*
 * grammar.c: grammar text -> flattened rules; the set-of-stacks recognizer
 * advanced by bytes; the sorted vocabulary and the per-position token-mask
 * cache. grammar.h explains the design; this file follows its sections.
 *
 * Deliberately not here: JSON Schema (json_schema.c), sampling itself
 * (sampler.c), anything about requests.
 */
#include "grammar.h"
#include "base/fc_base.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* ---- elements ----
 * One uint32 each: kind in the top 2 bits, value (class or rule index) below. */
enum { K_CHAR = 0, K_RULE = 1, K_END = 2 };
#define EK(x) ((x) >> 30)
#define EV(x) ((x) & 0x3FFFFFFFu)
#define MKE(k, v) (((uint32_t)(k) << 30) | (uint32_t)(v))

#define MAX_CP 0x10FFFF
#define MAX_ELEMS (1u << 22)
#define MAX_REPEAT 10000
#define EXPAND_BUDGET 1000000

/* A set of code points: ASCII as a bitmap, the rest as sorted disjoint
 * [lo, hi] pairs (never surrogates). */
typedef struct cpclass {
    uint64_t a[2];
    uint32_t *r; /* 2 * nr: lo0 hi0 lo1 hi1 ... */
    uint32_t nr;
} cpclass;

struct fc_grammar {
    uint32_t *el;        /* (n_el) all alternatives, each closed by END */
    size_t n_el;
    uint32_t *alt_start; /* element index of each alternative */
    uint32_t *rule_alt;  /* (n_rules + 1) alternatives of rule r: rule_alt[r]..rule_alt[r+1) */
    int n_rules, root;
    cpclass *cls;
    int n_cls;
    uint32_t *minsuf;    /* (n_el + 1) fewest bytes from element e to its alternative's END */
};

/* Whether some code point in [lo, hi] (lo >= 128) is in c. */
static bool cls_meets(const cpclass *c, uint32_t lo, uint32_t hi)
{
    uint32_t a = 0, b = c->nr;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (c->r[2 * mid + 1] < lo) a = mid + 1; else b = mid;
    }
    return a < c->nr && c->r[2 * a] <= hi;
}

static bool cls_empty(const cpclass *c) { return !c->a[0] && !c->a[1] && !c->nr; }

/* ---- UTF-8 byte matching ----
 * A partly read character is kept as part = rem << 28 | len << 24 | prefix
 * (rem continuation bytes still to come, len the sequence length). 0: none. */
enum { M_NO = 0, M_PART = 1, M_FULL = 2 };
static const uint32_t seq_min[5] = {0, 0, 0x80, 0x800, 0x10000};
static const uint32_t seq_max[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};

static inline int match_byte(const cpclass *c, uint32_t part, unsigned b, uint32_t *np)
{
    uint32_t cp, rem, len;
    if (!part) {
        if (b < 0x80) return (c->a[b >> 6] >> (b & 63)) & 1 ? M_FULL : M_NO;
        if (b < 0xC2 || b > 0xF4 || !c->nr) return M_NO;
        len = b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        cp = b & (0x7Fu >> len);
        rem = len - 1;
    } else {
        if ((b & 0xC0) != 0x80) return M_NO;
        rem = part >> 28;
        len = (part >> 24) & 7;
        cp = ((part & 0x1FFFFF) << 6) | (b & 0x3F);
        rem--;
    }
    uint32_t lo = cp << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
    if (lo < seq_min[len]) lo = seq_min[len];
    if (hi > seq_max[len]) hi = seq_max[len];
    if (lo > hi || !cls_meets(c, lo, hi)) return M_NO;
    if (rem == 0) return M_FULL;
    *np = (rem << 28) | (len << 24) | cp;
    return M_PART;
}

/* ======================================================================
 * ---- parsing grammar text ----
 * ====================================================================== */

typedef struct palt { uint32_t *e; int n, cap; } palt;
typedef struct prule { char *name; palt *alts; int n, cap; bool defined; } prule;

typedef struct parser {
    const char *s, *end, *start;
    prule *rules; int n_rules, cap_rules;
    cpclass *cls; int n_cls, cap_cls;
    size_t n_elems;
    char *err; size_t err_cap;
    bool failed;
    int depth;
} parser;

static void perr(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(parser *p, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = true;
    if (!p->err || !p->err_cap) return;
    int line = 1, col = 1;
    for (const char *q = p->start; q < p->s && q < p->end; q++) {
        if (*q == '\n') { line++; col = 1; } else col++;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->err_cap, "grammar %d:%d: %s", line, col, msg);
}

static void alt_push(parser *p, palt *a, uint32_t e)
{
    if (++p->n_elems > MAX_ELEMS) { perr(p, "grammar too large"); return; }
    if (a->n == a->cap) { a->cap = a->cap ? 2 * a->cap : 8; a->e = fc_xrealloc(a->e, sizeof *a->e * a->cap); }
    a->e[a->n++] = e;
}

static palt *rule_new_alt(prule *r)
{
    if (r->n == r->cap) { r->cap = r->cap ? 2 * r->cap : 4; r->alts = fc_xrealloc(r->alts, sizeof *r->alts * r->cap); }
    palt *a = &r->alts[r->n++];
    memset(a, 0, sizeof *a);
    return a;
}

static int rule_add(parser *p, const char *name, size_t n)
{
    if (p->n_rules == p->cap_rules) {
        p->cap_rules = p->cap_rules ? 2 * p->cap_rules : 32;
        p->rules = fc_xrealloc(p->rules, sizeof *p->rules * p->cap_rules);
    }
    prule *r = &p->rules[p->n_rules];
    memset(r, 0, sizeof *r);
    if (name) {
        r->name = fc_xmalloc(n + 1);
        memcpy(r->name, name, n);
        r->name[n] = 0;
    }
    return p->n_rules++;
}

static int rule_find(parser *p, const char *name, size_t n)
{
    for (int i = 0; i < p->n_rules; i++)
        if (p->rules[i].name && strlen(p->rules[i].name) == n && !memcmp(p->rules[i].name, name, n)) return i;
    return rule_add(p, name, n);
}

static void alt_copy(parser *p, palt *dst, const palt *src)
{
    for (int i = 0; i < src->n; i++) alt_push(p, dst, src->e[i]);
}

/* ---- code-point classes ---- */

typedef struct rangeset { uint32_t *r; int n, cap; } rangeset; /* pairs, unsorted */

static void rs_add(rangeset *rs, uint32_t lo, uint32_t hi)
{
    if (rs->n == rs->cap) { rs->cap = rs->cap ? 2 * rs->cap : 16; rs->r = fc_xrealloc(rs->r, sizeof *rs->r * 2 * rs->cap); }
    rs->r[2 * rs->n] = lo;
    rs->r[2 * rs->n + 1] = hi;
    rs->n++;
}

static int cmp_pair(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0;
}

/* Sorts and merges; removes surrogates; complements when neg. */
static void rs_normalize(rangeset *rs, bool neg)
{
    if (rs->n) qsort(rs->r, (size_t)rs->n, 2 * sizeof(uint32_t), cmp_pair);
    int k = 0;
    for (int i = 0; i < rs->n; i++) {
        uint32_t lo = rs->r[2 * i], hi = rs->r[2 * i + 1];
        if (k && lo <= rs->r[2 * k - 1] + 1) {
            if (hi > rs->r[2 * k - 1]) rs->r[2 * k - 1] = hi;
        } else {
            rs->r[2 * k] = lo;
            rs->r[2 * k + 1] = hi;
            k++;
        }
    }
    rs->n = k;
    if (neg) {
        rangeset c = {0};
        uint32_t next = 0;
        for (int i = 0; i < rs->n; i++) {
            if (rs->r[2 * i] > next) rs_add(&c, next, rs->r[2 * i] - 1);
            next = rs->r[2 * i + 1] + 1;
        }
        if (next <= MAX_CP) rs_add(&c, next, MAX_CP);
        free(rs->r);
        *rs = c;
    }
    /* cut out surrogates */
    rangeset o = {0};
    for (int i = 0; i < rs->n; i++) {
        uint32_t lo = rs->r[2 * i], hi = rs->r[2 * i + 1];
        if (hi < 0xD800 || lo > 0xDFFF) { rs_add(&o, lo, hi); continue; }
        if (lo < 0xD800) rs_add(&o, lo, 0xD7FF);
        if (hi > 0xDFFF) rs_add(&o, 0xE000, hi);
    }
    free(rs->r);
    *rs = o;
}

static int class_add(parser *p, rangeset *rs)
{
    cpclass c = {0};
    for (int i = 0; i < rs->n; i++) {
        uint32_t lo = rs->r[2 * i], hi = rs->r[2 * i + 1];
        for (uint32_t cp = lo; cp <= hi && cp < 128; cp++) c.a[cp >> 6] |= 1ull << (cp & 63);
        if (hi >= 128) {
            c.r = fc_xrealloc(c.r, sizeof *c.r * 2 * (c.nr + 1));
            c.r[2 * c.nr] = lo < 128 ? 128 : lo;
            c.r[2 * c.nr + 1] = hi;
            c.nr++;
        }
    }
    free(rs->r);
    rs->r = NULL;
    rs->n = rs->cap = 0;
    /* the same class again (literal characters repeat a lot): share it */
    for (int i = 0; i < p->n_cls; i++) {
        cpclass *d = &p->cls[i];
        if (d->a[0] == c.a[0] && d->a[1] == c.a[1] && d->nr == c.nr &&
            (!c.nr || !memcmp(d->r, c.r, sizeof *c.r * 2 * c.nr))) {
            free(c.r);
            return i;
        }
    }
    if (p->n_cls == p->cap_cls) { p->cap_cls = p->cap_cls ? 2 * p->cap_cls : 64; p->cls = fc_xrealloc(p->cls, sizeof *p->cls * p->cap_cls); }
    p->cls[p->n_cls] = c;
    return p->n_cls++;
}

static int class_one(parser *p, uint32_t cp)
{
    rangeset rs = {0};
    rs_add(&rs, cp, cp);
    return class_add(p, &rs);
}

/* ---- lexing ---- */

static void skip_space(parser *p, bool newlines)
{
    while (p->s < p->end) {
        char c = *p->s;
        if (c == '#') {
            while (p->s < p->end && *p->s != '\n') p->s++;
        } else if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) {
            p->s++;
        } else {
            break;
        }
    }
}

static bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; }

static size_t name_len(const char *s, const char *end)
{
    size_t n = 0;
    while (s + n < end && is_name_char(s[n])) n++;
    return n;
}

/* Whether p->s starts "name ::=" (the next rule). */
static bool at_rule_start(parser *p)
{
    size_t n = name_len(p->s, p->end);
    if (!n) return false;
    const char *q = p->s + n;
    while (q < p->end && (*q == ' ' || *q == '\t')) q++;
    return p->end - q >= 3 && !memcmp(q, "::=", 3);
}

/* One UTF-8 code point from the text; -1 on bad UTF-8. */
static int32_t read_utf8(parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t avail = (size_t)(p->end - p->s);
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || (size_t)len > avail) return -1;
    uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return -1;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < seq_min[len] || cp > MAX_CP || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
    p->s += len;
    return (int32_t)cp;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A character of a literal or class, with escapes. -1 on error (reported). */
static int32_t read_char(parser *p)
{
    if (p->s >= p->end) { perr(p, "unexpected end"); return -1; }
    if (*p->s != '\\') {
        int32_t cp = read_utf8(p);
        if (cp < 0) perr(p, "invalid UTF-8");
        return cp;
    }
    p->s++;
    if (p->s >= p->end) { perr(p, "unexpected end after \\"); return -1; }
    char c = *p->s++;
    int nhex = 0;
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'x': nhex = 2; break;
    case 'u': nhex = 4; break;
    case 'U': nhex = 8; break;
    default: {
        p->s--; /* any other escaped character stands for itself */
        int32_t cp = read_utf8(p);
        if (cp < 0) perr(p, "invalid UTF-8");
        return cp;
    }
    }
    uint32_t v = 0;
    for (int i = 0; i < nhex; i++) {
        int h = p->s < p->end ? hexval(*p->s) : -1;
        if (h < 0) { perr(p, "bad \\%c escape", c); return -1; }
        v = v * 16 + (uint32_t)h;
        p->s++;
    }
    if (v > MAX_CP || (v >= 0xD800 && v <= 0xDFFF)) { perr(p, "escape \\%c is not a Unicode scalar value", c); return -1; }
    return (int32_t)v;
}

/* ---- sequences, alternatives, repetition ----
 * An atom is parsed into a list of alternatives (a literal or class: one
 * alternative; a group: its alternatives), so that repetition can inline a
 * group's alternatives into its loop rule. */

typedef struct atom { palt *alts; int n, cap; } atom;

static palt *atom_alt(atom *a)
{
    if (a->n == a->cap) { a->cap = a->cap ? 2 * a->cap : 4; a->alts = fc_xrealloc(a->alts, sizeof *a->alts * a->cap); }
    palt *x = &a->alts[a->n++];
    memset(x, 0, sizeof *x);
    return x;
}

static void atom_free(atom *a)
{
    for (int i = 0; i < a->n; i++) free(a->alts[i].e);
    free(a->alts);
    memset(a, 0, sizeof *a);
}

static void parse_alts(parser *p, atom *out);

/* Appends atom X once to alternative dst (inline when it has one alternative). */
static void emit_once(parser *p, palt *dst, const atom *x)
{
    if (x->n == 1) { alt_copy(p, dst, &x->alts[0]); return; }
    int r = rule_add(p, NULL, 0);
    for (int i = 0; i < x->n; i++) alt_copy(p, rule_new_alt(&p->rules[r]), &x->alts[i]);
    p->rules[r].defined = true;
    alt_push(p, dst, MKE(K_RULE, r));
}

/* A rule R ::= x_i tail | ... | (empty); tail = -1 for none. */
static int opt_rule(parser *p, const atom *x, int tail)
{
    int r = rule_add(p, NULL, 0);
    for (int i = 0; i < x->n; i++) {
        palt *a = rule_new_alt(&p->rules[r]);
        alt_copy(p, a, &x->alts[i]);
        if (tail >= 0) alt_push(p, a, MKE(K_RULE, tail));
    }
    rule_new_alt(&p->rules[r]);
    p->rules[r].defined = true;
    return r;
}

/* X{m,n}. The repetition becomes a chain of rules whose alternatives end in
 * the next link (a tail call), so that reading through it never leaves the
 * frame: R ::= x_i R | () for the unbounded part, O_k ::= x_i O_k-1 | ()
 * for the optional part, Q_k ::= x_i Q_k-1 for the required part. A single
 * alternative X is written inline m times instead (no frame at all). */
static void emit_repeat(parser *p, palt *dst, const atom *x, long m, long n)
{
    if (x->n == 1)
        for (long i = 0; i < m && !p->failed; i++) emit_once(p, dst, x);
    int tail = -1;
    if (n < 0) { /* R ::= x_i R | () */
        tail = rule_add(p, NULL, 0);
        for (int i = 0; i < x->n; i++) {
            palt *a = rule_new_alt(&p->rules[tail]);
            alt_copy(p, a, &x->alts[i]);
            alt_push(p, a, MKE(K_RULE, tail));
        }
        rule_new_alt(&p->rules[tail]);
        p->rules[tail].defined = true;
    } else {
        for (long k = m; k < n && !p->failed; k++) tail = opt_rule(p, x, tail);
    }
    if (x->n > 1)
        for (long k = 0; k < m && !p->failed; k++) {
            int r = rule_add(p, NULL, 0);
            for (int i = 0; i < x->n; i++) {
                palt *a = rule_new_alt(&p->rules[r]);
                alt_copy(p, a, &x->alts[i]);
                if (tail >= 0) alt_push(p, a, MKE(K_RULE, tail));
            }
            p->rules[r].defined = true;
            tail = r;
        }
    if (tail >= 0) alt_push(p, dst, MKE(K_RULE, tail));
}

static long read_int(parser *p)
{
    long v = 0;
    if (p->s >= p->end || *p->s < '0' || *p->s > '9') { perr(p, "expected a number"); return -1; }
    while (p->s < p->end && *p->s >= '0' && *p->s <= '9') {
        v = v * 10 + (*p->s++ - '0');
        if (v > MAX_REPEAT) { perr(p, "repetition count above %d", MAX_REPEAT); return -1; }
    }
    return v;
}

static void parse_class(parser *p, palt *dst)
{
    p->s++; /* [ */
    bool neg = p->s < p->end && *p->s == '^';
    if (neg) p->s++;
    rangeset rs = {0};
    while (!p->failed) {
        if (p->s >= p->end) { perr(p, "unterminated class"); break; }
        if (*p->s == ']') { p->s++; break; }
        int32_t lo = read_char(p), hi = lo;
        if (lo < 0) break;
        if (p->s + 1 < p->end && *p->s == '-' && p->s[1] != ']') {
            p->s++;
            hi = read_char(p);
            if (hi < 0) break;
            if (hi < lo) { perr(p, "class range out of order"); break; }
        }
        rs_add(&rs, (uint32_t)lo, (uint32_t)hi);
    }
    if (p->failed) { free(rs.r); return; }
    rs_normalize(&rs, neg);
    alt_push(p, dst, MKE(K_CHAR, class_add(p, &rs)));
}

static void parse_atom(parser *p, atom *x)
{
    char c = *p->s;
    if (c == '"') {
        palt *a = atom_alt(x);
        p->s++;
        for (;;) {
            if (p->s >= p->end) { perr(p, "unterminated literal"); return; }
            if (*p->s == '"') { p->s++; break; }
            int32_t cp = read_char(p);
            if (cp < 0) return;
            alt_push(p, a, MKE(K_CHAR, class_one(p, (uint32_t)cp)));
        }
    } else if (c == '[') {
        parse_class(p, atom_alt(x));
    } else if (c == '.') {
        p->s++;
        rangeset rs = {0};
        rs_add(&rs, 0, MAX_CP);
        rs_normalize(&rs, false);
        alt_push(p, atom_alt(x), MKE(K_CHAR, class_add(p, &rs)));
    } else if (c == '(') {
        p->s++;
        if (++p->depth > 200) { perr(p, "groups nested too deep"); return; }
        parse_alts(p, x);
        p->depth--;
        skip_space(p, true);
        if (p->s >= p->end || *p->s != ')') { perr(p, "expected ')'"); return; }
        p->s++;
    } else if (is_name_char(c)) {
        size_t n = name_len(p->s, p->end);
        int r = rule_find(p, p->s, n);
        p->s += n;
        alt_push(p, atom_alt(x), MKE(K_RULE, r));
    } else {
        perr(p, "unexpected '%c'", c);
    }
}

static void parse_seq(parser *p, palt *dst)
{
    while (!p->failed) {
        skip_space(p, true);
        if (p->s >= p->end || *p->s == '|' || *p->s == ')' || at_rule_start(p)) return;
        atom x = {0};
        parse_atom(p, &x);
        if (p->failed) { atom_free(&x); return; }
        long m = 1, n = 1;
        if (p->s < p->end) {
            char c = *p->s;
            if (c == '*') { m = 0; n = -1; p->s++; }
            else if (c == '+') { m = 1; n = -1; p->s++; }
            else if (c == '?') { m = 0; n = 1; p->s++; }
            else if (c == '{') {
                p->s++;
                skip_space(p, false);
                m = read_int(p);
                skip_space(p, false);
                n = m;
                if (!p->failed && p->s < p->end && *p->s == ',') {
                    p->s++;
                    skip_space(p, false);
                    n = p->s < p->end && *p->s == '}' ? -1 : read_int(p);
                    skip_space(p, false);
                }
                if (!p->failed && (p->s >= p->end || *p->s != '}')) perr(p, "expected '}'");
                if (!p->failed && n >= 0 && n < m) perr(p, "repetition {%ld,%ld} out of order", m, n);
                p->s++;
            }
        }
        if (!p->failed) {
            if (m == 1 && n == 1) emit_once(p, dst, &x);
            else emit_repeat(p, dst, &x, m, n);
        }
        atom_free(&x);
    }
}

static void parse_alts(parser *p, atom *out)
{
    parse_seq(p, atom_alt(out));
    while (!p->failed) {
        skip_space(p, true);
        if (p->s < p->end && *p->s == '|') {
            p->s++;
            parse_seq(p, atom_alt(out));
        } else {
            return;
        }
    }
}

/* ---- checks: productivity, left recursion ---- */

static bool elem_productive(parser *p, uint32_t e, const bool *prod)
{
    return EK(e) == K_CHAR ? !cls_empty(&p->cls[EV(e)]) : prod[EV(e)];
}

static bool check_left_rec(parser *p, int r, uint8_t *color, const bool *nullable)
{
    color[r] = 1;
    prule *R = &p->rules[r];
    for (int i = 0; i < R->n; i++) {
        for (int j = 0; j < R->alts[i].n; j++) {
            uint32_t e = R->alts[i].e[j];
            if (EK(e) != K_RULE) break;
            int s = (int)EV(e);
            if (color[s] == 1) {
                perr(p, "left recursion through rule '%s'", p->rules[s].name ? p->rules[s].name : "(group)");
                return false;
            }
            if (color[s] == 0 && !check_left_rec(p, s, color, nullable)) return false;
            if (!nullable[s]) break;
        }
    }
    color[r] = 2;
    return true;
}

static bool check(parser *p, int root)
{
    int n = p->n_rules;
    bool *prod = fc_xcalloc((size_t)n, 1), *nullable = fc_xcalloc((size_t)n, 1);
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < n; r++) {
            prule *R = &p->rules[r];
            for (int i = 0; i < R->n; i++) {
                bool ok = true, nul = true;
                for (int j = 0; j < R->alts[i].n; j++) {
                    uint32_t e = R->alts[i].e[j];
                    if (!elem_productive(p, e, prod)) ok = false;
                    if (EK(e) == K_CHAR || !nullable[EV(e)]) nul = false;
                }
                if (ok && !prod[r]) { prod[r] = true; changed = true; }
                if (nul && !nullable[r]) { nullable[r] = true; changed = true; }
            }
        }
    }
    bool good = prod[root];
    if (!good) perr(p, "the grammar can never complete (rule '%s' has no finite sentence)", p->rules[root].name);
    /* drop alternatives that can never complete: they would be dead ends */
    for (int r = 0; r < n && good; r++) {
        prule *R = &p->rules[r];
        int k = 0;
        for (int i = 0; i < R->n; i++) {
            bool ok = true;
            for (int j = 0; j < R->alts[i].n; j++) ok = ok && elem_productive(p, R->alts[i].e[j], prod);
            if (ok) R->alts[k++] = R->alts[i];
            else free(R->alts[i].e);
        }
        R->n = k;
    }
    if (good) {
        uint8_t *color = fc_xcalloc((size_t)n, 1);
        for (int r = 0; r < n && good; r++)
            if (!color[r]) good = check_left_rec(p, r, color, nullable);
        free(color);
    }
    free(prod);
    free(nullable);
    return good;
}

static void parser_free(parser *p)
{
    for (int r = 0; r < p->n_rules; r++) {
        for (int i = 0; i < p->rules[r].n; i++) free(p->rules[r].alts[i].e);
        free(p->rules[r].alts);
        free(p->rules[r].name);
    }
    free(p->rules);
    if (p->cls)
        for (int i = 0; i < p->n_cls; i++) free(p->cls[i].r);
    free(p->cls);
}

/* ---- shortest completions ----
 * minsuf[e]: the fewest bytes that finish the alternative from element e
 * (a class costs its shortest UTF-8 encoding, a rule its shortest sentence:
 * a fixpoint, since rules may recurse). */

#define INF_LEN (UINT32_MAX / 4)
static uint32_t sat_add(uint32_t a, uint32_t b) { return a + b > INF_LEN ? INF_LEN : a + b; }

static uint32_t cls_min_bytes(const cpclass *c)
{
    if (c->a[0] || c->a[1]) return 1;
    if (!c->nr) return INF_LEN;
    return c->r[0] < 0x800 ? 2 : c->r[0] < 0x10000 ? 3 : 4;
}

static void min_lengths(fc_grammar *g)
{
    uint32_t *rmin = fc_xmalloc(sizeof *rmin * (size_t)g->n_rules);
    for (int r = 0; r < g->n_rules; r++) rmin[r] = INF_LEN;
    for (bool changed = true; changed;) {
        changed = false;
        for (int r = 0; r < g->n_rules; r++)
            for (uint32_t a = g->rule_alt[r]; a < g->rule_alt[r + 1]; a++) {
                uint32_t sum = 0;
                for (uint32_t e = g->alt_start[a]; EK(g->el[e]) != K_END; e++)
                    sum = sat_add(sum, EK(g->el[e]) == K_CHAR ? cls_min_bytes(&g->cls[EV(g->el[e])]) : rmin[EV(g->el[e])]);
                if (sum < rmin[r]) { rmin[r] = sum; changed = true; }
            }
    }
    g->minsuf = fc_xmalloc(sizeof *g->minsuf * (g->n_el + 1));
    g->minsuf[g->n_el] = 0;
    for (size_t i = g->n_el; i-- > 0;) {
        uint32_t x = g->el[i];
        g->minsuf[i] = EK(x) == K_END ? 0
                       : sat_add(EK(x) == K_CHAR ? cls_min_bytes(&g->cls[EV(x)]) : rmin[EV(x)], g->minsuf[i + 1]);
    }
    free(rmin);
}

fc_grammar *fc_grammar_parse(const char *text, size_t len, char *err, size_t err_cap)
{
    parser p = {.s = text, .end = text + len, .start = text, .err = err, .err_cap = err_cap};
    if (err && err_cap) err[0] = 0;
    while (!p.failed) {
        skip_space(&p, true);
        if (p.s >= p.end) break;
        size_t n = name_len(p.s, p.end);
        if (!n) { perr(&p, "expected a rule name"); break; }
        int r = rule_find(&p, p.s, n);
        if (p.rules[r].defined) { perr(&p, "rule '%s' defined twice", p.rules[r].name); break; }
        p.s += n;
        skip_space(&p, false);
        if (p.end - p.s < 3 || memcmp(p.s, "::=", 3)) { perr(&p, "expected '::='"); break; }
        p.s += 3;
        atom x = {0};
        parse_alts(&p, &x);
        if (!p.failed && p.s < p.end && *p.s == ')') perr(&p, "unbalanced ')'");
        /* rules may have been added while parsing: re-find by index */
        p.rules[r].alts = x.alts;
        p.rules[r].n = x.n;
        p.rules[r].cap = x.cap;
        p.rules[r].defined = true;
    }
    int root = -1;
    for (int r = 0; r < p.n_rules && !p.failed; r++) {
        if (!p.rules[r].defined) { p.s = p.end; perr(&p, "rule '%s' is used but not defined", p.rules[r].name); }
        if (p.rules[r].name && !strcmp(p.rules[r].name, "root")) root = r;
    }
    if (!p.failed && root < 0) perr(&p, "no rule 'root'");
    if (p.failed || !check(&p, root)) { parser_free(&p); return NULL; }

    fc_grammar *g = fc_xcalloc(1, sizeof *g);
    size_t n_alts = 0, n_el = 0;
    for (int r = 0; r < p.n_rules; r++) {
        n_alts += (size_t)p.rules[r].n;
        for (int i = 0; i < p.rules[r].n; i++) n_el += (size_t)p.rules[r].alts[i].n + 1;
    }
    g->el = fc_xmalloc(sizeof *g->el * (n_el + 1));
    g->alt_start = fc_xmalloc(sizeof *g->alt_start * (n_alts + 1));
    g->rule_alt = fc_xmalloc(sizeof *g->rule_alt * ((size_t)p.n_rules + 1));
    size_t ka = 0, ke = 0;
    for (int r = 0; r < p.n_rules; r++) {
        g->rule_alt[r] = (uint32_t)ka;
        for (int i = 0; i < p.rules[r].n; i++) {
            g->alt_start[ka++] = (uint32_t)ke;
            for (int j = 0; j < p.rules[r].alts[i].n; j++) g->el[ke++] = p.rules[r].alts[i].e[j];
            g->el[ke++] = MKE(K_END, 0);
        }
    }
    g->rule_alt[p.n_rules] = (uint32_t)ka;
    g->el[ke] = MKE(K_END, 0);
    g->n_el = ke;
    g->n_rules = p.n_rules;
    g->root = root;
    g->cls = p.cls;
    g->n_cls = p.n_cls;
    p.cls = NULL;
    parser_free(&p);
    min_lengths(g);
    return g;
}

void fc_grammar_free(fc_grammar *g)
{
    if (!g) return;
    free(g->minsuf);
    for (int i = 0; i < g->n_cls; i++) free(g->cls[i].r);
    free(g->cls);
    free(g->el);
    free(g->alt_start);
    free(g->rule_alt);
    free(g);
}

/* ======================================================================
 * ---- stack sets ----
 * ====================================================================== */

typedef struct sset {
    uint32_t n, cap_n;
    bool end;         /* some path completed (popped its last frame) */
    uint32_t *off;    /* (n + 1) stack i is data[off[i] .. off[i+1]), top last */
    uint32_t *part;   /* (n) partial UTF-8 character of each stack */
    uint32_t *hash;   /* (n) */
    uint32_t *data;
    size_t cap_d;
} sset;

static void sset_reset(sset *s)
{
    s->n = 0;
    s->end = false;
    if (!s->off) {
        s->cap_n = 4;
        s->off = fc_xmalloc(sizeof *s->off * (s->cap_n + 1));
        s->part = fc_xmalloc(sizeof *s->part * s->cap_n);
        s->hash = fc_xmalloc(sizeof *s->hash * s->cap_n);
    }
    s->off[0] = 0;
}

static void sset_free(sset *s)
{
    free(s->off);
    free(s->part);
    free(s->hash);
    free(s->data);
    memset(s, 0, sizeof *s);
}

static void sset_grow(sset *s, size_t need_d)
{
    if (s->n == s->cap_n) {
        s->cap_n *= 2;
        s->off = fc_xrealloc(s->off, sizeof *s->off * (s->cap_n + 1));
        s->part = fc_xrealloc(s->part, sizeof *s->part * s->cap_n);
        s->hash = fc_xrealloc(s->hash, sizeof *s->hash * s->cap_n);
    }
    if (need_d > s->cap_d) {
        s->cap_d = need_d > 2 * s->cap_d ? need_d : 2 * s->cap_d;
        if (s->cap_d < 64) s->cap_d = 64;
        s->data = fc_xrealloc(s->data, sizeof *s->data * s->cap_d);
    }
}

static void sset_emit(sset *s, const uint32_t *st, uint32_t L, uint32_t part)
{
    uint32_t h = 2166136261u ^ part;
    for (uint32_t i = 0; i < L; i++) h = (h ^ st[i]) * 16777619u;
    for (uint32_t i = 0; i < s->n; i++)
        if (s->hash[i] == h && s->part[i] == part && s->off[i + 1] - s->off[i] == L &&
            !memcmp(s->data + s->off[i], st, sizeof *st * L))
            return;
    if (s->n >= FC_GRAMMAR_MAX_STACKS) return;
    uint32_t o = s->off[s->n];
    sset_grow(s, (size_t)o + L);
    memcpy(s->data + o, st, sizeof *st * L);
    s->part[s->n] = part;
    s->hash[s->n] = h;
    s->n++;
    s->off[s->n] = o + L;
}

static void sset_copy(sset *dst, const sset *src)
{
    sset_reset(dst);
    dst->end = src->end;
    for (uint32_t i = 0; i < src->n; i++)
        sset_emit(dst, src->data + src->off[i], src->off[i + 1] - src->off[i], src->part[i]);
}

/* ---- expansion and the byte step ---- */

typedef struct xctx {
    const fc_grammar *g;
    sset *dst;
    uint32_t *tmp; /* (FC_GRAMMAR_MAX_DEPTH + 2) the stack being built */
    uint32_t limit;
    long budget;   /* expansion calls left for this byte: bounds pathological grammars */
} xctx;

/* Emits every stack reachable from tmp[0..L) without reading a byte, tops
 * on CHAR elements. Leaves tmp[0..L) as it found it. */
static void expand(xctx *x, uint32_t L)
{
    const uint32_t *el = x->g->el;
    if (--x->budget < 0) return;
    uint32_t e = x->tmp[L - 1], k = EK(el[e]);
    if (k == K_CHAR) {
        sset_emit(x->dst, x->tmp, L, 0);
    } else if (k == K_END) {
        if (L == 1) x->dst->end = true;
        else expand(x, L - 1);
    } else {
        uint32_t r = EV(el[e]), base;
        if (EK(el[e + 1]) == K_END) {
            base = L - 1; /* tail call: the frame is done */
        } else {
            x->tmp[L - 1] = e + 1;
            base = L;
        }
        if (base < x->limit)
            for (uint32_t a = x->g->rule_alt[r]; a < x->g->rule_alt[r + 1]; a++) {
                x->tmp[base] = x->g->alt_start[a];
                expand(x, base + 1);
            }
        x->tmp[L - 1] = e;
    }
}

/* dst = the stacks of src after reading byte b. */
static void step(const fc_grammar *g, const sset *src, unsigned b, sset *dst, uint32_t *tmp, uint32_t limit)
{
    xctx x = {g, dst, tmp, limit, EXPAND_BUDGET};
    sset_reset(dst);
    for (uint32_t i = 0; i < src->n; i++) {
        const uint32_t *st = src->data + src->off[i];
        uint32_t L = src->off[i + 1] - src->off[i], top = st[L - 1], np = 0;
        int m = match_byte(&g->cls[EV(g->el[top])], src->part[i], b, &np);
        if (m == M_NO) continue;
        memcpy(tmp, st, sizeof *st * L);
        if (m == M_PART) {
            sset_emit(dst, tmp, L, np);
        } else {
            tmp[L - 1] = top + 1;
            expand(&x, L);
        }
    }
}

static bool sset_dead(const sset *s) { return s->n == 0 && !s->end; }

/* ======================================================================
 * ---- parse states ----
 * ====================================================================== */

struct fc_grammar_state {
    const fc_grammar *g;
    sset cur, scratch[2];
    uint32_t *tmp;
};

fc_grammar_state *fc_grammar_state_new(const fc_grammar *g)
{
    fc_grammar_state *s = fc_xcalloc(1, sizeof *s);
    s->g = g;
    s->tmp = fc_xmalloc(sizeof *s->tmp * (FC_GRAMMAR_MAX_DEPTH + 2));
    sset_reset(&s->cur);
    xctx x = {g, &s->cur, s->tmp, FC_GRAMMAR_MAX_DEPTH, EXPAND_BUDGET};
    for (uint32_t a = g->rule_alt[g->root]; a < g->rule_alt[g->root + 1]; a++) {
        s->tmp[0] = g->alt_start[a];
        expand(&x, 1);
    }
    return s;
}

fc_grammar_state *fc_grammar_state_clone(const fc_grammar_state *src)
{
    fc_grammar_state *s = fc_xcalloc(1, sizeof *s);
    s->g = src->g;
    s->tmp = fc_xmalloc(sizeof *s->tmp * (FC_GRAMMAR_MAX_DEPTH + 2));
    sset_copy(&s->cur, &src->cur);
    return s;
}

void fc_grammar_state_copy(fc_grammar_state *dst, const fc_grammar_state *src)
{
    FC_ASSERT(dst->g == src->g);
    if (dst != src) sset_copy(&dst->cur, &src->cur);
}

void fc_grammar_state_free(fc_grammar_state *s)
{
    if (!s) return;
    sset_free(&s->cur);
    sset_free(&s->scratch[0]);
    sset_free(&s->scratch[1]);
    free(s->tmp);
    free(s);
}

bool fc_grammar_state_advance(fc_grammar_state *s, const void *bytes, size_t n)
{
    const unsigned char *b = bytes;
    if (!n) return true;
    const sset *src = &s->cur;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        sset *dst = &s->scratch[k];
        step(s->g, src, b[i], dst, s->tmp, FC_GRAMMAR_MAX_DEPTH);
        if (sset_dead(dst)) return false;
        src = dst;
        k ^= 1;
    }
    sset t = s->cur;
    s->cur = *(sset *)src;
    *(sset *)src = t;
    return true;
}

bool fc_grammar_state_can_end(const fc_grammar_state *s) { return s->cur.end; }

size_t fc_grammar_state_distance(const fc_grammar_state *s)
{
    const sset *c = &s->cur;
    if (c->end) return 0;
    uint32_t best = INF_LEN;
    for (uint32_t i = 0; i < c->n; i++) {
        const uint32_t *st = c->data + c->off[i];
        uint32_t L = c->off[i + 1] - c->off[i], top = st[L - 1], d;
        d = c->part[i] ? sat_add(c->part[i] >> 28, s->g->minsuf[top + 1]) : s->g->minsuf[top];
        for (uint32_t k = 0; k + 1 < L; k++) d = sat_add(d, s->g->minsuf[st[k]]);
        if (d < best) best = d;
    }
    return best >= INF_LEN ? SIZE_MAX : best;
}
bool fc_grammar_state_is_final(const fc_grammar_state *s) { return s->cur.end && s->cur.n == 0; }

/* ======================================================================
 * ---- vocabulary ----
 * ====================================================================== */

struct fc_grammar_vocab {
    int32_t n_vocab;
    char *blob;
    uint32_t *poff, *plen;  /* (n_vocab) plen 0: never allowed as text */
    uint8_t *eog;           /* (n_vocab) */
    int32_t *eog_ids;
    int n_eog;
    int32_t *sorted;        /* (n_sorted) ids with text, by bytes */
    uint16_t *lcp;          /* (n_sorted) common prefix with the previous one */
    int32_t *jmp;           /* (2 n_sorted) make_jumps */
    int32_t n_sorted;
    uint32_t max_len;
};

/* jmp[2i]: the first entry after i whose common prefix with its predecessor
 * is 0 (another first byte), jmp[2i+1]: is at most 1, so a walk skips every
 * token under a dead first or second byte at once. */
static int32_t *make_jumps(const uint16_t *lcp, int32_t n)
{
    int32_t *j = fc_xmalloc(sizeof *j * 2 * ((size_t)n + 1));
    if (n) j[2 * (n - 1)] = j[2 * (n - 1) + 1] = n;
    for (int32_t i = n - 2; i >= 0; i--) {
        j[2 * i] = lcp[i + 1] == 0 ? i + 1 : j[2 * (i + 1)];
        j[2 * i + 1] = lcp[i + 1] <= 1 ? i + 1 : j[2 * (i + 1) + 1];
    }
    return j;
}

static const fc_grammar_vocab *sort_vocab;
static int cmp_piece(const void *a, const void *b)
{
    const fc_grammar_vocab *v = sort_vocab;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    uint32_t lx = v->plen[x], ly = v->plen[y];
    int c = memcmp(v->blob + v->poff[x], v->blob + v->poff[y], lx < ly ? lx : ly);
    if (c) return c;
    return lx < ly ? -1 : lx > ly ? 1 : x - y;
}

fc_grammar_vocab *fc_grammar_vocab_from_pieces(const char *const *pieces, const size_t *lens, int32_t n_vocab,
                                               const int32_t *eog_ids, int n_eog)
{
    static uint8_t sort_lock; /* qsort has no context argument: serialize */
    fc_grammar_vocab *v = fc_xcalloc(1, sizeof *v);
    v->n_vocab = n_vocab;
    size_t total = 0;
    for (int32_t i = 0; i < n_vocab; i++) total += pieces[i] ? (lens[i] > 65535 ? 0 : lens[i]) : 0;
    v->blob = fc_xmalloc(total + 1);
    v->poff = fc_xcalloc((size_t)n_vocab + 1, sizeof *v->poff);
    v->plen = fc_xcalloc((size_t)n_vocab + 1, sizeof *v->plen);
    v->eog = fc_xcalloc((size_t)n_vocab + 1, 1);
    v->sorted = fc_xmalloc(sizeof *v->sorted * ((size_t)n_vocab + 1));
    v->lcp = fc_xcalloc((size_t)n_vocab + 1, sizeof *v->lcp);
    v->eog_ids = fc_xmalloc(sizeof *v->eog_ids * ((size_t)n_eog + 1));
    size_t o = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        size_t l = pieces[i] && lens[i] <= 65535 ? lens[i] : 0;
        if (l) memcpy(v->blob + o, pieces[i], l);
        v->poff[i] = (uint32_t)o;
        v->plen[i] = (uint32_t)l;
        o += l;
        if (l) v->sorted[v->n_sorted++] = i;
        if (l > v->max_len) v->max_len = (uint32_t)l;
    }
    for (int i = 0; i < n_eog; i++)
        if (eog_ids[i] >= 0 && eog_ids[i] < n_vocab && !v->eog[eog_ids[i]]) {
            v->eog[eog_ids[i]] = 1;
            v->plen[eog_ids[i]] = 0;
            v->eog_ids[v->n_eog++] = eog_ids[i];
        }
    /* drop end-of-generation ids from the text list */
    int32_t k = 0;
    for (int32_t i = 0; i < v->n_sorted; i++)
        if (!v->eog[v->sorted[i]]) v->sorted[k++] = v->sorted[i];
    v->n_sorted = k;
    while (__atomic_test_and_set(&sort_lock, __ATOMIC_ACQUIRE)) {}
    sort_vocab = v;
    qsort(v->sorted, (size_t)v->n_sorted, sizeof *v->sorted, cmp_piece);
    __atomic_clear(&sort_lock, __ATOMIC_RELEASE);
    for (int32_t i = 1; i < v->n_sorted; i++) {
        int32_t a = v->sorted[i - 1], b = v->sorted[i];
        uint32_t n = v->plen[a] < v->plen[b] ? v->plen[a] : v->plen[b], j = 0;
        while (j < n && v->blob[v->poff[a] + j] == v->blob[v->poff[b] + j]) j++;
        v->lcp[i] = (uint16_t)j;
    }
    v->jmp = make_jumps(v->lcp, v->n_sorted);
    return v;
}

fc_grammar_vocab *fc_grammar_vocab_new(const fc_tokenizer *tok)
{
    int32_t n = fc_tokenizer_n_vocab(tok);
    if (n <= 0) { FC_LOG_ERROR("%s: empty vocabulary", __func__); return NULL; }
    const char **pieces = fc_xmalloc(sizeof *pieces * (size_t)n);
    size_t *lens = fc_xmalloc(sizeof *lens * (size_t)n);
    int32_t *eog = fc_xmalloc(sizeof *eog * (size_t)n);
    int n_eog = 0;
    for (int32_t i = 0; i < n; i++) {
        pieces[i] = NULL;
        lens[i] = 0;
        if (fc_tokenizer_is_eog(tok, i)) eog[n_eog++] = i;
        if (fc_tokenizer_is_special(tok, i)) continue;
        pieces[i] = fc_tokenizer_token_to_piece(tok, i, &lens[i]);
    }
    fc_grammar_vocab *v = fc_grammar_vocab_from_pieces(pieces, lens, n, eog, n_eog);
    free(pieces);
    free(lens);
    free(eog);
    return v;
}

void fc_grammar_vocab_free(fc_grammar_vocab *v)
{
    if (!v) return;
    free(v->blob);
    free(v->poff);
    free(v->plen);
    free(v->eog);
    free(v->eog_ids);
    free(v->sorted);
    free(v->lcp);
    free(v->jmp);
    free(v);
}

int32_t fc_grammar_vocab_size(const fc_grammar_vocab *v) { return v->n_vocab; }

const char *fc_grammar_vocab_piece(const fc_grammar_vocab *v, int32_t id, size_t *len)
{
    if (id < 0 || id >= v->n_vocab || !v->plen[id]) { *len = 0; return NULL; }
    *len = v->plen[id];
    return v->blob + v->poff[id];
}

bool fc_grammar_vocab_is_eog(const fc_grammar_vocab *v, int32_t id) { return id >= 0 && id < v->n_vocab && v->eog[id]; }

size_t fc_grammar_mask_words(const fc_grammar_vocab *v) { return ((size_t)v->n_vocab + 63) / 64; }

/* ======================================================================
 * ---- token masks ----
 * ====================================================================== */

/* ---- the lazy DFA ----
 * Stack sets met during walks are interned (one flat record each) and their
 * byte transitions memoized, so a walk over the sorted vocabulary mostly
 * follows table entries instead of re-running the recognizer: the states
 * inside a string, a number or a literal repeat for every token. The table
 * lives in the matcher and is flushed when it grows past DFA_MAX_STATES
 * (checked between masks). Each state stepped from gets a 256-entry
 * successor table, one per depth limit (cache fills use half the real one,
 * see walk()). */

#define DFA_MAX_STATES 16384
#define DFA_MAX_POOL ((size_t)4 << 20) /* words: 16 MiB */
#define NO_ID UINT32_MAX

typedef struct dfa {
    uint32_t *pool;      /* records: end, n, then per stack: part, L, frames[L] */
    size_t n_pool, cap_pool;
    size_t *rec;         /* (n_states + 1) record offsets */
    uint32_t *shash;     /* (n_states) */
    uint8_t *flags;      /* (n_states) 1: end, 2: dead */
    uint32_t n_states, cap_states;
    uint32_t *itab;      /* intern table: id + 1, 0 empty */
    size_t icap;
    uint32_t **next[2];  /* (n_states) per state: NULL, or 256 successor ids (NO_ID: not
                          * computed yet); [1]: under the cache fills' depth limit */
    sset a, b;           /* scratch: a state loaded, its successor */
} dfa;

static void dfa_free(dfa *d)
{
    free(d->pool);
    free(d->rec);
    free(d->shash);
    free(d->flags);
    free(d->itab);
    for (int h = 0; h < 2; h++) {
        for (uint32_t i = 0; i < d->n_states; i++) free(d->next[h] ? d->next[h][i] : NULL);
        free(d->next[h]);
    }
    sset_free(&d->a);
    sset_free(&d->b);
    memset(d, 0, sizeof *d);
}

static void dfa_clear(dfa *d)
{
    for (int h = 0; h < 2; h++)
        for (uint32_t i = 0; i < d->n_states; i++) {
            free(d->next[h][i]);
            d->next[h][i] = NULL;
        }
    d->n_pool = 0;
    d->n_states = 0;
    if (d->itab) memset(d->itab, 0, sizeof *d->itab * d->icap);
}

static void pool_put(dfa *d, uint32_t w)
{
    if (d->n_pool == d->cap_pool) {
        d->cap_pool = d->cap_pool ? 2 * d->cap_pool : 4096;
        d->pool = fc_xrealloc(d->pool, sizeof *d->pool * d->cap_pool);
    }
    d->pool[d->n_pool++] = w;
}

static uint32_t hash_words(const uint32_t *w, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ w[i]) * 16777619u;
    return h ^ (h >> 15);
}

static void itab_insert(dfa *d, uint32_t id)
{
    size_t mask = d->icap - 1, i = d->shash[id] & mask;
    while (d->itab[i]) i = (i + 1) & mask;
    d->itab[i] = id + 1;
}

/* The id of stack set s (added when new). */
static uint32_t dfa_intern(dfa *d, const sset *s)
{
    size_t start = d->n_pool;
    pool_put(d, s->end);
    pool_put(d, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t L = s->off[i + 1] - s->off[i];
        pool_put(d, s->part[i]);
        pool_put(d, L);
        for (uint32_t k = 0; k < L; k++) pool_put(d, s->data[s->off[i] + k]);
    }
    size_t len = d->n_pool - start;
    uint32_t h = hash_words(d->pool + start, len);
    if (d->icap) {
        size_t mask = d->icap - 1;
        for (size_t i = h & mask; d->itab[i]; i = (i + 1) & mask) {
            uint32_t id = d->itab[i] - 1;
            if (d->shash[id] == h && d->rec[id + 1] - d->rec[id] == len &&
                !memcmp(d->pool + d->rec[id], d->pool + start, sizeof *d->pool * len)) {
                d->n_pool = start;
                return id;
            }
        }
    }
    if (d->n_states + 1 >= d->cap_states) {
        d->cap_states = d->cap_states ? 2 * d->cap_states : 1024;
        d->rec = fc_xrealloc(d->rec, sizeof *d->rec * (d->cap_states + 1));
        d->shash = fc_xrealloc(d->shash, sizeof *d->shash * d->cap_states);
        d->flags = fc_xrealloc(d->flags, d->cap_states);
        for (int h = 0; h < 2; h++) d->next[h] = fc_xrealloc(d->next[h], sizeof *d->next[h] * d->cap_states);
    }
    d->next[0][d->n_states] = d->next[1][d->n_states] = NULL;
    uint32_t id = d->n_states++;
    d->rec[id] = start;
    d->rec[id + 1] = d->n_pool;
    d->shash[id] = h;
    d->flags[id] = (uint8_t)((s->end ? 1 : 0) | (sset_dead(s) ? 2 : 0));
    if (2 * (size_t)d->n_states >= d->icap) {
        free(d->itab);
        d->icap = d->icap ? 2 * d->icap : 4096;
        d->itab = fc_xcalloc(d->icap, sizeof *d->itab);
        for (uint32_t k = 0; k < d->n_states; k++) itab_insert(d, k);
    } else {
        itab_insert(d, id);
    }
    return id;
}

static void dfa_load(const dfa *d, uint32_t id, sset *s)
{
    const uint32_t *r = d->pool + d->rec[id];
    sset_reset(s);
    s->end = r[0];
    uint32_t n = r[1];
    r += 2;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t part = r[0], L = r[1];
        uint32_t o = s->off[s->n];
        sset_grow(s, (size_t)o + L);
        memcpy(s->data + o, r + 2, sizeof *r * L);
        s->part[s->n] = part;
        s->hash[s->n] = 0;
        s->n++;
        s->off[s->n] = o + L;
        r += 2 + L;
    }
}

static uint32_t dfa_step(dfa *d, const fc_grammar *g, uint32_t id, unsigned b, bool half, uint32_t *tmp)
{
    uint32_t *t = d->next[half][id];
    if (t && t[b] != NO_ID) return t[b];
    dfa_load(d, id, &d->a);
    step(g, &d->a, b, &d->b, tmp, half ? FC_GRAMMAR_MAX_DEPTH / 2 : FC_GRAMMAR_MAX_DEPTH);
    uint32_t nid = dfa_intern(d, &d->b); /* may move d->next */
    t = d->next[half][id];
    if (!t) {
        t = d->next[half][id] = fc_xmalloc(sizeof *t * 256);
        memset(t, 0xFF, sizeof *t * 256);
    }
    t[b] = nid;
    return nid;
}

typedef struct pcache {
    uint64_t *acc;    /* (words) accepted whatever lies below the frame */
    int32_t *unc;     /* (n_unc) ids to walk with the real stack, sorted order */
    uint16_t *ulcp;   /* (n_unc) common prefix with the previous uncertain one */
    int32_t *ujmp;    /* (2 n_unc) make_jumps */
    int32_t n_unc;
} pcache;

struct fc_grammar_matcher {
    const fc_grammar *g;
    const fc_grammar_vocab *v;
    size_t words;
    pcache **pc;     /* (n_el) by top element, NULL until first needed */
    uint32_t *ids;   /* (max_len + 1) the walk's state (DFA id) after each prefix length */
    dfa d;
    bool *hit;       /* (max_len + 1) */
    sset one, run_one;
    uint32_t *tmp;
    int32_t *ubuf;   /* (n_sorted) scratch: uncertain sorted positions */
    size_t n_pos, n_unc_total;
};

fc_grammar_matcher *fc_grammar_matcher_new(const fc_grammar *g, const fc_grammar_vocab *v)
{
    fc_grammar_matcher *m = fc_xcalloc(1, sizeof *m);
    m->g = g;
    m->v = v;
    m->words = fc_grammar_mask_words(v);
    m->pc = fc_xcalloc(g->n_el + 1, sizeof *m->pc);
    m->ids = fc_xcalloc(v->max_len + 2, sizeof *m->ids);
    m->hit = fc_xcalloc(v->max_len + 2, sizeof *m->hit);
    m->tmp = fc_xmalloc(sizeof *m->tmp * (FC_GRAMMAR_MAX_DEPTH + 2));
    m->ubuf = fc_xmalloc(sizeof *m->ubuf * ((size_t)v->n_sorted + 1));
    return m;
}

void fc_grammar_matcher_free(fc_grammar_matcher *m)
{
    if (!m) return;
    for (size_t i = 0; i <= m->g->n_el; i++)
        if (m->pc[i]) {
            free(m->pc[i]->acc);
            free(m->pc[i]->unc);
            free(m->pc[i]->ulcp);
            free(m->pc[i]->ujmp);
            free(m->pc[i]);
        }
    free(m->pc);
    free(m->ids);
    dfa_free(&m->d);
    free(m->hit);
    sset_free(&m->one);
    sset_free(&m->run_one);
    free(m->tmp);
    free(m->ubuf);
    free(m);
}

void fc_grammar_matcher_stats(const fc_grammar_matcher *m, size_t *n_positions, size_t *n_uncertain)
{
    *n_positions = m->n_pos;
    *n_uncertain = m->n_unc_total;
}

size_t fc_grammar_matcher_bytes(const fc_grammar_matcher *m)
{
    const dfa *d = &m->d;
    size_t b = sizeof *d->pool * d->cap_pool + (sizeof *d->rec + sizeof *d->shash + 1 + 2 * sizeof(void *)) * d->cap_states +
               sizeof *d->itab * d->icap;
    for (int h = 0; h < 2; h++)
        for (uint32_t i = 0; i < d->n_states; i++) b += d->next[h][i] ? 256 * sizeof(uint32_t) : 0;
    b += m->n_pos * (sizeof(pcache) + sizeof(uint64_t) * m->words) + m->n_unc_total * (3 * sizeof(int32_t) + sizeof(uint16_t));
    return b + sizeof *m->pc * (m->g->n_el + 1);
}

/* Walks tokens list[0..n) (in sorted order; lcp[i]: common prefix with
 * list[i-1]) from init. Accepted ids get their bit in out. When unc is not
 * NULL (the cache build: init is one frame), the sorted positions of tokens
 * that died after leaving the frame go to unc and their count is returned. */
static int32_t walk(fc_grammar_matcher *m, const sset *init, const int32_t *list, const uint16_t *lcp,
                    const int32_t *jmp, int32_t n, uint64_t *out, int32_t *unc, bool half)
{
    const fc_grammar_vocab *v = m->v;
    dfa *D = &m->d;
    uint32_t *ids = m->ids;
    bool *hit = m->hit;
    int32_t n_unc = 0;
    ids[0] = dfa_intern(D, init);
    hit[0] = false;
    uint32_t valid = 0;
    int32_t i = 0;
    while (i < n) {
        int32_t id = list[i];
        const unsigned char *p = (const unsigned char *)v->blob + v->poff[id];
        uint32_t len = v->plen[id], d = i ? (lcp[i] < valid ? lcp[i] : valid) : 0;
        bool dead = false;
        for (; d < len; d++) {
            uint32_t nx = dfa_step(D, m->g, ids[d], p[d], half, m->tmp);
            ids[d + 1] = nx;
            hit[d + 1] = hit[d] || (D->flags[nx] & 1);
            if (D->flags[nx] & 2) { dead = true; break; }
        }
        if (!dead) {
            out[id >> 6] |= 1ull << (id & 63);
            valid = len;
            i++;
            continue;
        }
        /* every token sharing p[0..d] dies here too */
        bool u = unc && hit[d];
        valid = d;
        if (!u && d <= 1) {
            i = jmp[2 * i + d];
            continue;
        }
        if (u) unc[n_unc++] = i;
        for (i++; i < n && lcp[i] > d; i++)
            if (u) unc[n_unc++] = i;
    }
    return n_unc;
}

static pcache *position_cache(fc_grammar_matcher *m, uint32_t top)
{
    if (m->pc[top]) return m->pc[top];
    const fc_grammar_vocab *v = m->v;
    pcache *c = fc_xcalloc(1, sizeof *c);
    c->acc = fc_xcalloc(m->words, sizeof *c->acc);
    sset_reset(&m->one);
    sset_emit(&m->one, &top, 1, 0);
    int32_t nu = walk(m, &m->one, v->sorted, v->lcp, v->jmp, v->n_sorted, c->acc, m->ubuf, true);
    c->n_unc = nu;
    if (nu) {
        c->unc = fc_xmalloc(sizeof *c->unc * (size_t)nu);
        c->ulcp = fc_xmalloc(sizeof *c->ulcp * (size_t)nu);
        for (int32_t k = 0; k < nu; k++) {
            int32_t pos = m->ubuf[k];
            c->unc[k] = v->sorted[pos];
            uint16_t l = 0;
            if (k) {
                l = 65535;
                for (int32_t q = m->ubuf[k - 1] + 1; q <= pos; q++)
                    if (v->lcp[q] < l) l = v->lcp[q];
            }
            c->ulcp[k] = l;
        }
        c->ujmp = make_jumps(c->ulcp, nu);
    }
    m->pc[top] = c;
    m->n_pos++;
    m->n_unc_total += (size_t)nu;
    return c;
}

void fc_grammar_matcher_mask(fc_grammar_matcher *m, const fc_grammar_state *s, uint64_t *mask)
{
    const fc_grammar_vocab *v = m->v;
    const sset *cur = &s->cur;
    memset(mask, 0, sizeof *mask * m->words);
    if (m->d.n_states > DFA_MAX_STATES || m->d.n_pool > DFA_MAX_POOL) dfa_clear(&m->d);
    sset *one = &m->run_one;
    for (uint32_t i = 0; i < cur->n; i++) {
        const uint32_t *st = cur->data + cur->off[i];
        uint32_t L = cur->off[i + 1] - cur->off[i], top = st[L - 1];
        sset_reset(one);
        sset_emit(one, st, L, cur->part[i]);
        if (cur->part[i] == 0 && L <= FC_GRAMMAR_MAX_DEPTH / 2) {
            pcache *c = position_cache(m, top);
            for (size_t w = 0; w < m->words; w++) mask[w] |= c->acc[w];
            if (c->n_unc) walk(m, one, c->unc, c->ulcp, c->ujmp, c->n_unc, mask, NULL, false);
        } else {
            walk(m, one, v->sorted, v->lcp, v->jmp, v->n_sorted, mask, NULL, false);
        }
    }
    if (cur->end)
        for (int i = 0; i < v->n_eog; i++) mask[v->eog_ids[i] >> 6] |= 1ull << (v->eog_ids[i] & 63);
}

bool fc_grammar_matcher_accept(fc_grammar_matcher *m, fc_grammar_state *s, int32_t id)
{
    const fc_grammar_vocab *v = m->v;
    if (id < 0 || id >= v->n_vocab) return false;
    if (v->eog[id]) return s->cur.end;
    if (!v->plen[id]) return false;
    return fc_grammar_state_advance(s, v->blob + v->poff[id], v->plen[id]);
}

void fc_grammar_mask_apply(const fc_grammar_vocab *v, const uint64_t *mask, float *logits, int32_t n_logits)
{
    int32_t n = n_logits < v->n_vocab ? n_logits : v->n_vocab;
    for (int32_t t = 0; t < n; t++)
        if (!((mask[t >> 6] >> (t & 63)) & 1)) logits[t] = -INFINITY;
    for (int32_t t = n; t < n_logits; t++) logits[t] = -INFINITY;
}
