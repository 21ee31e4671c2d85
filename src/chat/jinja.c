/*
 * jinja.c: the Jinja2 subset interpreter of jinja.h, written for Hugging Face
 * chat templates and checked byte for byte against transformers' own
 * renderer (tests/data/conv/jinja_golden.json, made by
 * tools/golden/make_jinja_golden.py).
 *
 * Pipeline: the source is normalised as Jinja2's lexer does (\r\n and \r
 * become \n, one trailing \n is dropped), cut into tokens with the
 * whitespace rules applied there (-/+ markers, trim_blocks, lstrip_blocks
 * with Jinja2's "line_starting" rule), parsed by recursive descent with
 * Jinja2's grammar and precedence (parser.py: or < and < not < compare <
 * +,- < ~ < *,/,//,% < ** < unary < postfix/filters/tests) into a tree, and
 * the tree is walked.
 *
 * Values are tagged unions; strings, lists, dicts, namespaces, functions and
 * loop objects are reference-counted heap objects. A render also threads
 * every object it makes on one list, so whatever an error path or a
 * namespace cycle leaves behind is freed when the render ends. Constants of
 * a compiled template live in its arena and are immortal (rc < 0), which is
 * what lets threads share a compiled template.
 *
 * Scopes follow Jinja2: for-loop iterations, macro calls, with blocks and
 * for-else bodies get a fresh frame (so {% set %} inside a loop does not
 * leak, hence namespace()); if blocks do not. A macro's frame sits on the
 * top-level frame, as a top-level Jinja2 macro sees the template's globals.
 *
 * Deliberately absent: see jinja.h. Python behaviour that Jinja2 inherits
 * (str(), repr(), float repr, json.dumps, slicing, floor division, str %
 * args) is reimplemented here from the Python documentation.
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

#define MAX_PARSE_DEPTH 100      /* nested expressions and blocks */
#define MAX_EVAL_DEPTH 400       /* C recursion while rendering, macro calls included */
#define MAX_RANGE 100000         /* jinja2.sandbox.MAX_RANGE */
#define MAX_ITEMS (1u << 20)     /* longest list or dict */
#define DEFAULT_MAX_OUTPUT ((size_t)16 << 20)
#define DEFAULT_MAX_MEMORY ((size_t)256 << 20)
#define DEFAULT_MAX_STEPS 50000000LL

/* ---- compile-time arena ---- */

typedef struct arena_blk {
    struct arena_blk *next;
    size_t used, cap;
    max_align_t data[];
} arena_blk;

static void *arena_alloc(arena_blk **a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!*a || (*a)->used + n > (*a)->cap) {
        size_t cap = n > 65536 ? n : 65536;
        arena_blk *b = fc_xmalloc(sizeof(arena_blk) + cap);
        b->next = *a;
        b->used = 0;
        b->cap = cap;
        *a = b;
    }
    void *p = (char *)(*a)->data + (*a)->used;
    (*a)->used += n;
    memset(p, 0, n);
    return p;
}

static void arena_free(arena_blk *a)
{
    while (a) {
        arena_blk *n = a->next;
        free(a);
        a = n;
    }
}

static char *arena_strndup(arena_blk **a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ---- values ---- */

enum vtype { VT_UNDEF, VT_NONE, VT_BOOL, VT_INT, VT_FLOAT, VT_STR, VT_LIST, VT_DICT, VT_NS, VT_FUNC, VT_LOOP,
             VT_NOARG = 255 /* an argument slot nobody filled */ };

/* Heap object header. rc < 0: immortal (a constant of a compiled template). */
typedef struct obj {
    int32_t rc;
    uint8_t type;           /* enum vtype */
    size_t size;            /* bytes charged to the render's memory budget */
    struct obj *prev, *next; /* the render's list of live objects */
} obj;

typedef struct val {
    uint8_t t;              /* enum vtype */
    union { bool b; int64_t i; double f; obj *o; } u;
} val;

typedef struct jstr { obj h; size_t len; char *s; } jstr;            /* UTF-8, NUL-terminated */
typedef struct jlist { obj h; size_t n, cap; val *v; bool tuple; } jlist;
/* Insertion-ordered; also namespaces. Past DICT_INDEX_MIN entries a hash
 * index (positions + 1, open addressing) keeps lookups O(1) while every key
 * is hashable (str, int, float, bool, None: Python's equal keys hash alike). */
typedef struct jdict { obj h; size_t n, cap; val *k, *v; uint32_t *idx; size_t idx_cap; bool unhashable; } jdict;
typedef struct node node;
typedef struct jfunc { obj h; int id; val self; const node *macro; } jfunc;
typedef struct jloop { obj h; size_t i; jlist *items; } jloop;

static jstr g_empty = { { -1, VT_STR, 0, NULL, NULL }, 0, (char *)"" };

static inline val mk_undef(void) { val v = { VT_UNDEF, { .o = NULL } }; return v; }
static inline val mk_none(void) { val v = { VT_NONE, { .i = 0 } }; return v; }
static inline val mk_bool(bool b) { val v = { VT_BOOL, { .b = b } }; return v; }
static inline val mk_int(int64_t i) { val v = { VT_INT, { .i = i } }; return v; }
static inline val mk_float(double f) { val v = { VT_FLOAT, { .f = f } }; return v; }
static inline val mk_obj(int t, void *o) { val v = { (uint8_t)t, { .o = (obj *)o } }; return v; }
static inline val mk_noarg(void) { val v = { VT_NOARG, { .i = 0 } }; return v; }

static inline obj *vobj(val v)
{
    return (v.t >= VT_STR && v.t <= VT_LOOP) || v.t == VT_UNDEF ? v.u.o : NULL;
}
#define STR(v) ((jstr *)(v).u.o)
#define LIST(v) ((jlist *)(v).u.o)
#define DICT(v) ((jdict *)(v).u.o)
#define FUNC(v) ((jfunc *)(v).u.o)
#define LOOP(v) ((jloop *)(v).u.o)

static inline val incref(val v)
{
    obj *o = vobj(v);
    if (o && o->rc >= 0) o->rc++;
    return v;
}

/* ---- render state and object lifetime ---- */

typedef struct frame {
    struct frame *parent;
    jdict *vars;
} frame;

typedef struct R {
    const struct fc_jinja *t;
    fc_str *out;              /* where output goes now (macros and block sets redirect it) */
    frame *top, *root;
    char *err;                 /* first error; NULL while all is well */
    long long steps, max_steps;
    size_t mem, max_mem, max_out;
    int depth;
    long long now;
    val seed;                  /* the text a filter block hands its filter chain */
    obj *live;                 /* every object this render made and has not freed */
    obj **dead;                /* objects waiting to be freed (freeing is iterative) */
    size_t n_dead, cap_dead;
    bool draining;
} R;

static bool failf(R *r, const node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void *obj_new(R *r, int type, size_t size)
{
    obj *o = fc_xcalloc(1, size);
    o->rc = 1;
    o->type = (uint8_t)type;
    o->size = size;
    o->next = r->live;
    if (r->live) r->live->prev = o;
    r->live = o;
    r->mem += size;
    return o;
}

static void charge(R *r, obj *o, ptrdiff_t delta)
{
    r->mem += (size_t)delta;
    o->size += (size_t)delta;
}

static void decref(R *r, val v);

/* Frees one object whose count reached zero; its children are queued. */
static void obj_destroy(R *r, obj *o)
{
    switch (o->type) {
    case VT_LIST: {
        jlist *l = (jlist *)o;
        for (size_t i = 0; i < l->n; i++) decref(r, l->v[i]);
        free(l->v);
        break;
    }
    case VT_DICT: case VT_NS: {
        jdict *d = (jdict *)o;
        for (size_t i = 0; i < d->n; i++) { decref(r, d->k[i]); decref(r, d->v[i]); }
        free(d->k);
        free(d->v);
        free(d->idx);
        break;
    }
    case VT_FUNC: decref(r, ((jfunc *)o)->self); break;
    case VT_LOOP: decref(r, mk_obj(VT_LIST, ((jloop *)o)->items)); break;
    default: break;
    }
    if (o->prev) o->prev->next = o->next;
    else r->live = o->next;
    if (o->next) o->next->prev = o->prev;
    r->mem -= o->size;
    free(o);
}

static void decref(R *r, val v)
{
    obj *o = vobj(v);
    if (!o || o->rc <= 0 || --o->rc > 0) return;
    if (r->n_dead == r->cap_dead) {
        r->cap_dead = r->cap_dead ? r->cap_dead * 2 : 64;
        r->dead = fc_xrealloc(r->dead, r->cap_dead * sizeof *r->dead);
    }
    r->dead[r->n_dead++] = o;
    if (r->draining) return;
    r->draining = true;
    while (r->n_dead) obj_destroy(r, r->dead[--r->n_dead]);
    r->draining = false;
}

/* Frees everything still alive at the end of a render, whatever the counts
 * say (cycles through namespaces, values an error path dropped). */
static void free_all(R *r)
{
    for (obj *o = r->live, *n; o; o = n) {
        n = o->next;
        if (o->type == VT_LIST) free(((jlist *)o)->v);
        else if (o->type == VT_DICT || o->type == VT_NS) { free(((jdict *)o)->k); free(((jdict *)o)->v); free(((jdict *)o)->idx); }
        free(o);
    }
    r->live = NULL;
    free(r->dead);
    r->dead = NULL;
}

static jstr *str_new(R *r, const char *s, size_t n)
{
    jstr *j = obj_new(r, VT_STR, sizeof(jstr) + n + 1);
    j->s = (char *)(j + 1);
    if (n) memcpy(j->s, s, n);
    j->s[n] = '\0';
    j->len = n;
    return j;
}

static val vstr(R *r, const char *s, size_t n) { return mk_obj(VT_STR, str_new(r, s, n)); }
static val vcstr(R *r, const char *s) { return vstr(r, s, strlen(s)); }

static jlist *list_new(R *r, size_t cap, bool tuple)
{
    jlist *l = obj_new(r, VT_LIST, sizeof(jlist));
    l->tuple = tuple;
    if (cap) {
        l->v = fc_xmalloc(cap * sizeof(val));
        l->cap = cap;
        charge(r, &l->h, (ptrdiff_t)(cap * sizeof(val)));
    }
    return l;
}

/* Takes v. */
static void list_push(R *r, jlist *l, val v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        l->v = fc_xrealloc(l->v, cap * sizeof(val));
        charge(r, &l->h, (ptrdiff_t)((cap - l->cap) * sizeof(val)));
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

static jdict *dict_new(R *r, int type)
{
    return obj_new(r, type, sizeof(jdict));
}

static bool v_eq(const val *a, const val *b, int depth);

#define DICT_INDEX_MIN 16

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return mix64(h);
}

static bool key_hash(const val *k, uint64_t *h)
{
    switch (k->t) {
    case VT_STR: *h = hash_bytes(STR(*k)->s, STR(*k)->len); return true;
    case VT_BOOL: case VT_INT: *h = mix64((uint64_t)(k->t == VT_BOOL ? (int64_t)k->u.b : k->u.i)); return true;
    case VT_FLOAT: {
        double f = k->u.f;
        uint64_t bits;
        if (f == floor(f) && fabs(f) < 9.2e18) { *h = mix64((uint64_t)(int64_t)f); return true; }
        memcpy(&bits, &f, sizeof bits);
        *h = mix64(bits);
        return true;
    }
    case VT_NONE: *h = 0x9e3779b97f4a7c15ULL; return true;
    default: return false;
    }
}

static void idx_insert(jdict *d, size_t i, uint64_t h)
{
    size_t m = d->idx_cap - 1;
    for (size_t p = h & m;; p = (p + 1) & m)
        if (!d->idx[p]) { d->idx[p] = (uint32_t)(i + 1); return; }
}

static void dict_reindex(R *r, jdict *d)
{
    size_t cap = 64;
    while (cap < d->n * 4) cap *= 2;
    charge(r, &d->h, (ptrdiff_t)((cap - d->idx_cap) * sizeof(uint32_t)));
    free(d->idx);
    d->idx = fc_xcalloc(cap, sizeof(uint32_t));
    d->idx_cap = cap;
    for (size_t i = 0; i < d->n; i++) {
        uint64_t h;
        key_hash(&d->k[i], &h);
        idx_insert(d, i, h);
    }
}

static val *dict_find(jdict *d, const val *k)
{
    uint64_t h;
    if (d->idx && key_hash(k, &h)) {
        size_t m = d->idx_cap - 1;
        for (size_t p = h & m; d->idx[p]; p = (p + 1) & m)
            if (v_eq(&d->k[d->idx[p] - 1], k, 0)) return &d->v[d->idx[p] - 1];
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++)
        if (v_eq(&d->k[i], k, 0)) return &d->v[i];
    return NULL;
}

static val *dict_find_str(const jdict *d, const char *s, size_t n)
{
    if (d->idx) {
        size_t m = d->idx_cap - 1;
        for (size_t p = hash_bytes(s, n) & m; d->idx[p]; p = (p + 1) & m) {
            const val *k = &d->k[d->idx[p] - 1];
            if (k->t == VT_STR && STR(*k)->len == n && !memcmp(STR(*k)->s, s, n)) return &d->v[d->idx[p] - 1];
        }
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++) {
        const val *k = &d->k[i];
        if (k->t == VT_STR && STR(*k)->len == n && !memcmp(STR(*k)->s, s, n)) return &d->v[i];
    }
    return NULL;
}

/* Takes k and v. */
static void dict_set(R *r, jdict *d, val k, val v)
{
    val *slot = dict_find(d, &k);
    if (slot) {
        decref(r, k);
        val old = *slot;
        *slot = v;
        decref(r, old);
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        d->k = fc_xrealloc(d->k, cap * sizeof(val));
        d->v = fc_xrealloc(d->v, cap * sizeof(val));
        charge(r, &d->h, (ptrdiff_t)(2 * (cap - d->cap) * sizeof(val)));
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    uint64_t h;
    if (d->unhashable) return;
    if (!key_hash(&k, &h)) { /* a tuple key: back to linear scans for good */
        d->unhashable = true;
        charge(r, &d->h, -(ptrdiff_t)(d->idx_cap * sizeof(uint32_t)));
        free(d->idx);
        d->idx = NULL;
        d->idx_cap = 0;
    } else if (d->idx && d->n * 2 <= d->idx_cap) {
        idx_insert(d, d->n - 1, h);
    } else if (d->n >= DICT_INDEX_MIN) {
        dict_reindex(r, d);
    }
}

static val func_new(R *r, int id, val self, const node *macro)
{
    jfunc *f = obj_new(r, VT_FUNC, sizeof(jfunc));
    f->id = id;
    f->self = self;
    f->macro = macro;
    return mk_obj(VT_FUNC, f);
}

/* An Undefined that raises `fmt` when used strictly. */
static val mk_undef_hint(R *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static val mk_undef_hint(R *r, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    val v = mk_undef();
    v.u.o = &str_new(r, buf, strlen(buf))->h;
    return v;
}

static const char *type_name(val v)
{
    switch (v.t) {
    case VT_UNDEF: return "Undefined";
    case VT_NONE: return "NoneType";
    case VT_BOOL: return "bool";
    case VT_INT: return "int";
    case VT_FLOAT: return "float";
    case VT_STR: return "str";
    case VT_LIST: return LIST(v)->tuple ? "tuple" : "list";
    case VT_DICT: return "dict";
    case VT_NS: return "Namespace";
    case VT_FUNC: return FUNC(v)->macro ? "Macro" : "builtin_function_or_method";
    case VT_LOOP: return "LoopContext";
    default: return "?";
    }
}

static inline bool is_num(val v) { return v.t == VT_BOOL || v.t == VT_INT || v.t == VT_FLOAT; }
static inline bool is_intlike(val v) { return v.t == VT_BOOL || v.t == VT_INT; }
static inline int64_t int_of(val v) { return v.t == VT_BOOL ? (int64_t)v.u.b : v.u.i; }
static inline double num_of(val v) { return v.t == VT_FLOAT ? v.u.f : (double)int_of(v); }

static bool truthy(val v)
{
    switch (v.t) {
    case VT_UNDEF: case VT_NONE: return false;
    case VT_BOOL: return v.u.b;
    case VT_INT: return v.u.i != 0;
    case VT_FLOAT: return v.u.f != 0.0;
    case VT_STR: return STR(v)->len != 0;
    case VT_LIST: return LIST(v)->n != 0;
    case VT_DICT: return DICT(v)->n != 0;
    default: return true;
    }
}

/* ---- UTF-8 and Python's character classes ---- */

/* Decodes one code point. An invalid byte decodes as U+DC80..U+DCFF (as
 * Python's surrogateescape does), which u8put writes back as the byte. */
static int32_t u8dec(const char *s, size_t n, size_t *adv)
{
    uint32_t cp;
    int k = fc_utf8_next(s, n, &cp);
    if (k <= 0) { *adv = 1; return 0xdc00 + (unsigned char)s[0]; } /* surrogateescape */
    *adv = (size_t)k;
    return (int32_t)cp;
}

static void u8put(fc_str *b, int32_t cp)
{
    if (cp >= 0xdc80 && cp <= 0xdcff) { fc_str_putc(b, (char)(cp - 0xdc00)); return; }
    utf8proc_uint8_t tmp[4];
    utf8proc_ssize_t k = utf8proc_encode_char(cp, tmp);
    if (k <= 0) { tmp[0] = (utf8proc_uint8_t)cp; k = 1; }
    fc_str_putn(b, (const char *)tmp, (size_t)k);
}

static size_t u8len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0, a; i < n; i += a, c++) u8dec(s + i, n - i, &a);
    return c;
}

/* str.isspace(): the characters Python strips by default. */
static bool py_space(int32_t c)
{
    if (c < 128) return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f);
    return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 ||
           c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* Line boundaries of str.splitlines(). */
static bool py_linebreak(int32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
}

static bool py_printable(int32_t c)
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
static bool cp_alpha(int32_t c)
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
static bool cp_numeric(int32_t c)
{
    int k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

/* ---- Python number formatting ---- */

/* repr(float): the shortest digits that round-trip, fixed notation for
 * exponents in [-4, 16), else d.ddde+XX. */
static void fmt_float(double d, char *out, size_t cap)
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

/* ---- syntax tree ---- */

enum nkind {
    /* statements */
    S_BODY, S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_SETBLOCK, S_MACRO, S_BREAK, S_CONTINUE, S_WITH, S_FILTERBLOCK,
    /* expressions */
    E_CONST, E_NAME, E_NSREF, E_LIST, E_TUPLE, E_DICT, E_GETATTR, E_GETITEM, E_SLICE, E_CALL, E_FILTER, E_TEST,
    E_BIN, E_NEG, E_POS, E_AND, E_OR, E_NOT, E_CMP, E_CONCAT, E_COND,
};

enum op {
    O_NONE, O_ADD, O_SUB, O_MUL, O_DIV, O_FDIV, O_MOD, O_POW, O_TILDE, O_LBRACKET, O_RBRACKET, O_LPAREN,
    O_RPAREN, O_LBRACE, O_RBRACE, O_EQ, O_NE, O_GT, O_GE, O_LT, O_LE, O_ASSIGN, O_DOT, O_COLON, O_PIPE,
    O_COMMA, O_SEMI, O_IN, O_NOTIN,
};

static const char *const op_text[] = {
    "", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")", "{", "}", "==", "!=", ">", ">=", "<",
    "<=", "=", ".", ":", "|", ",", ";", "in", "not in",
};

/* One node. Which fields mean what:
 *   S_BODY kids | S_TEXT k | S_OUT a | S_IF a=test b=body c=else (S_BODY or
 *   an elif's S_IF) | S_FOR a=target b=iter c=body d=else e=filter |
 *   S_SET a=target b=value | S_SETBLOCK a=target b=body c=filter |
 *   S_MACRO name, names/kids = parameters/defaults (NULL = none), b=body |
 *   S_WITH kids = target, value, target, value..., b=body |
 *   S_FILTERBLOCK a=filter b=body |
 *   E_CONST k | E_NAME name, k = name | E_NSREF name.attr |
 *   E_LIST/E_TUPLE kids | E_DICT kids = key, value, ... |
 *   E_GETATTR a.name (k = name) | E_GETITEM a[b] | E_SLICE a[b:c:d] |
 *   E_CALL a(kids), E_FILTER a|name(kids), E_TEST a is name(kids): the first
 *   n_pos kids positional, the rest keyword with names[] |
 *   E_BIN a op b | E_NEG/E_POS/E_NOT a | E_AND/E_OR a b |
 *   E_CMP kids[0] ops[0] kids[1] ... | E_CONCAT kids | E_COND b if a else c */
struct node {
    uint8_t kind, op;
    bool flag;              /* E_TEST: negated */
    int line;
    node *a, *b, *c, *d, *e;
    node **kids;
    int n, n_pos;
    const char **names;
    uint8_t *ops;
    const char *name, *attr;
    val k;
};

struct fc_jinja {
    arena_blk *arena;
    node *root;
};

/* ---- lexer ---- */

enum ttype { T_EOF, T_DATA, T_VBEGIN, T_VEND, T_BBEGIN, T_BEND, T_NAME, T_STR, T_INT, T_FLOAT, T_OP };

typedef struct tok {
    uint8_t type, op;
    int line;
    const char *s;          /* T_DATA, T_STR: decoded text; T_NAME: the name (arena, NUL-terminated) */
    size_t n;
    int64_t i;
    double f;
} tok;

typedef struct lexer {
    const char *src;
    size_t len, pos;
    int line;
    bool line_starting;     /* Jinja2: the previous match ended with a newline */
    tok *toks;
    size_t n, cap;
    arena_blk **arena;
    char *err;
} lexer;

static char *vformat(const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0) return fc_xstrdup("error");
    char *s = fc_xmalloc((size_t)n + 1);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static bool lex_fail(lexer *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool lex_fail(lexer *L, const char *fmt, ...)
{
    if (L->err) return false;
    va_list ap;
    va_start(ap, fmt);
    char *m = vformat(fmt, ap);
    va_end(ap);
    size_t n = strlen(m) + 32;
    L->err = fc_xmalloc(n);
    snprintf(L->err, n, "line %d: %s", L->line, m);
    free(m);
    return false;
}

static void lex_adv(lexer *L, size_t k)
{
    for (size_t i = 0; i < k && L->pos < L->len; i++, L->pos++)
        if (L->src[L->pos] == '\n') L->line++;
}

static tok *lex_push(lexer *L, int type)
{
    if (L->n == L->cap) {
        L->cap = L->cap ? L->cap * 2 : 256;
        L->toks = fc_xrealloc(L->toks, L->cap * sizeof(tok));
    }
    tok *t = &L->toks[L->n++];
    memset(t, 0, sizeof *t);
    t->type = (uint8_t)type;
    t->line = L->line;
    return t;
}

/* Python's \s: one whitespace character at s[i] (of n bytes), 0 if none. */
static size_t ws_at(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 128) return py_space(c) ? 1 : 0;
    size_t a;
    int32_t cp = u8dec(s + i, n - i, &a);
    return py_space(cp) ? a : 0;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    for (size_t k; i < n && (k = ws_at(s, i, n)); i += k) {}
    return i;
}

/* str.rstrip() of s[a, e): the new end. */
static size_t rstrip_ws(const char *s, size_t a, size_t e)
{
    while (e > a) {
        size_t b = e - 1;
        while (b > a && e - b < 4 && ((unsigned char)s[b] & 0xc0) == 0x80) b--;
        if (ws_at(s, b, e) != e - b) break;
        e = b;
    }
    return e;
}

static bool all_ws(const char *s, size_t a, size_t e)
{
    return a < e && skip_ws(s, a, e) == e;
}

static void lex_data(lexer *L, size_t a, size_t e)
{
    if (e <= a) return;
    tok *t = lex_push(L, T_DATA);
    t->s = arena_strndup(L->arena, L->src + a, e - a);
    t->n = e - a;
}

/* The whitespace control applied to the text s[a, e) before a tag whose
 * marker is mod ('-', '+' or 0); block_like: {% or {#. Returns the new end. */
static size_t lex_strip_before(lexer *L, size_t a, size_t e, char mod, bool block_like)
{
    if (mod == '-') return rstrip_ws(L->src, a, e);
    if (mod != '+' && block_like) { /* lstrip_blocks */
        size_t lp = e;
        while (lp > a && L->src[lp - 1] != '\n') lp--;
        if ((lp > a || L->line_starting) && all_ws(L->src, lp, e)) return lp;
    }
    return e;
}

static bool name_start(unsigned char c) { return c == '_' || (unsigned)((c | 32) - 'a') < 26u || c >= 0x80; }
static bool name_char(unsigned char c) { return name_start(c) || (unsigned)(c - '0') < 10u; }
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 32);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A string literal at L->pos: Python's unicode-escape decoding of its body. */
static bool lex_string(lexer *L)
{
    const char *s = L->src;
    char q = s[L->pos];
    size_t i = L->pos + 1;
    while (i < L->len && s[i] != q) i += s[i] == '\\' && i + 1 < L->len ? 2 : 1;
    if (i >= L->len) return lex_fail(L, "unexpected char '%c' (unterminated string)", q);
    size_t a = L->pos + 1, e = i;
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    for (size_t j = a; j < e;) {
        if (s[j] != '\\' || j + 1 >= e) { fc_str_putc(&b, s[j++]); continue; }
        char c = s[j + 1];
        j += 2;
        switch (c) {
        case '\n': break;
        case '\\': case '\'': case '"': fc_str_putc(&b, c); break;
        case 'a': fc_str_putc(&b, 7); break;
        case 'b': fc_str_putc(&b, 8); break;
        case 'f': fc_str_putc(&b, 12); break;
        case 'n': fc_str_putc(&b, '\n'); break;
        case 'r': fc_str_putc(&b, '\r'); break;
        case 't': fc_str_putc(&b, '\t'); break;
        case 'v': fc_str_putc(&b, 11); break;
        case 'x': case 'u': case 'U': {
            int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            int32_t cp = 0;
            for (int k = 0; k < nd; k++) {
                int h = j + (size_t)k < e ? hexval(s[j + k]) : -1;
                if (h < 0) { fc_str_free(&b); return lex_fail(L, "truncated \\%c escape in a string", c); }
                cp = cp * 16 + h;
            }
            j += (size_t)nd;
            if (cp > 0x10ffff) { fc_str_free(&b); return lex_fail(L, "illegal Unicode character in a string"); }
            u8put(&b, cp);
            break;
        }
        case 'N': fc_str_free(&b); return lex_fail(L, "\\N{...} escapes are not supported");
        default:
            if (c >= '0' && c <= '7') {
                int32_t cp = c - '0';
                for (int k = 0; k < 2 && j < e && s[j] >= '0' && s[j] <= '7'; k++) cp = cp * 8 + (s[j++] - '0');
                u8put(&b, cp);
            } else {
                fc_str_putc(&b, '\\');
                fc_str_putc(&b, c);
            }
        }
    }
    tok *t = lex_push(L, T_STR);
    t->n = b.len;
    t->s = arena_strndup(L->arena, b.p, b.len);
    fc_str_free(&b);
    lex_adv(L, i + 1 - L->pos);
    return true;
}

static bool lex_number(lexer *L)
{
    const char *s = L->src;
    size_t i = L->pos, n = L->len;
    fc_str b = { 0 }; /* the digits without underscores */
    fc_str_putn(&b, "", 0);
    int base = 10;
    bool is_float = false;
#define DIGITS(ok) while (i < n && ((ok) || s[i] == '_')) { if (s[i] != '_') fc_str_putc(&b, s[i]); i++; }
    if (s[i] == '0' && i + 2 < n && strchr("xXoObB", s[i + 1]) && hexval(s[i + 2]) >= 0) {
        base = (s[i + 1] | 32) == 'x' ? 16 : (s[i + 1] | 32) == 'o' ? 8 : 2;
        i += 2;
        DIGITS(hexval(s[i]) >= 0)
    } else {
        bool after_dot = L->pos > 0 && s[L->pos - 1] == '.';
        while (i < n && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '_' && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9'))) {
            if (s[i] != '_') fc_str_putc(&b, s[i]);
            i++;
        }
        if (!after_dot) {
            if (i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
                is_float = true;
                fc_str_putc(&b, s[i++]);
                DIGITS(s[i] >= '0' && s[i] <= '9')
            }
            if (i < n && (s[i] | 32) == 'e') {
                size_t j = i + 1;
                if (j < n && (s[j] == '+' || s[j] == '-')) j++;
                if (j < n && s[j] >= '0' && s[j] <= '9') {
                    is_float = true;
                    fc_str_putn(&b, s + i, j - i);
                    i = j;
                    DIGITS(s[i] >= '0' && s[i] <= '9')
                }
            }
        }
    }
#undef DIGITS
    errno = 0;
    char *end;
    if (is_float) {
        double f = strtod(b.p, &end);
        fc_str_free(&b);
        lex_push(L, T_FLOAT)->f = f;
        lex_adv(L, i - L->pos);
        return true;
    }
    unsigned long long v = strtoull(b.p, &end, base);
    if (errno || *end || v > (unsigned long long)INT64_MAX) {
        lex_fail(L, "integer literal %.40s%s is too large", b.p, b.len > 40 ? "..." : "");
        fc_str_free(&b);
        return false;
    }
    fc_str_free(&b);
    lex_push(L, T_INT)->i = (int64_t)v;
    lex_adv(L, i - L->pos);
    return true;
}

static bool lex_op(lexer *L)
{
    static const char *const two[] = { "**", "//", "==", "!=", ">=", "<=" };
    static const uint8_t two_op[] = { O_POW, O_FDIV, O_EQ, O_NE, O_GE, O_LE };
    const char *s = L->src + L->pos;
    size_t left = L->len - L->pos;
    for (int i = 0; i < 6; i++)
        if (left >= 2 && s[0] == two[i][0] && s[1] == two[i][1]) {
            lex_push(L, T_OP)->op = two_op[i];
            lex_adv(L, 2);
            return true;
        }
    static const char one[] = "+-*/%~[](){}><=.:|,;";
    static const uint8_t one_op[] = { O_ADD, O_SUB, O_MUL, O_DIV, O_MOD, O_TILDE, O_LBRACKET, O_RBRACKET,
                                      O_LPAREN, O_RPAREN, O_LBRACE, O_RBRACE, O_GT, O_LT, O_ASSIGN, O_DOT,
                                      O_COLON, O_PIPE, O_COMMA, O_SEMI };
    const char *p = s[0] ? strchr(one, s[0]) : NULL;
    if (!p) {
        unsigned char c = (unsigned char)s[0];
        if (c >= 32 && c < 127) return lex_fail(L, "unexpected char '%c'", c);
        return lex_fail(L, "unexpected char '\\x%02x'", c);
    }
    lex_push(L, T_OP)->op = one_op[p - one];
    lex_adv(L, 1);
    return true;
}

/* The inside of {{ }} or {% %}, L->pos just past the opening marker. */
static bool lex_tag(lexer *L, bool block)
{
    char stack[MAX_PARSE_DEPTH];
    int depth = 0;
    const char *s = L->src;
    for (;;) {
        lex_adv(L, skip_ws(s, L->pos, L->len) - L->pos);
        if (L->pos >= L->len)
            return lex_fail(L, "unexpected end of template, expected '%s'", block ? "end of statement block" : "end of print statement");
        const char *p = s + L->pos;
        size_t left = L->len - L->pos;
        if (depth == 0) {
            char c1 = block ? '%' : '}';
            size_t k = 0;
            bool strip = false;
            if (left >= 3 && p[0] == '-' && p[1] == c1 && p[2] == '}') { k = 3; strip = true; }
            else if (block && left >= 3 && p[0] == '+' && p[1] == '%' && p[2] == '}') k = 3;
            else if (left >= 2 && p[0] == c1 && p[1] == '}') {
                k = 2;
                if (block && left >= 3 && p[2] == '\n') k = 3; /* trim_blocks */
            }
            if (k) {
                lex_push(L, block ? T_BEND : T_VEND);
                lex_adv(L, k);
                if (strip) lex_adv(L, skip_ws(s, L->pos, L->len) - L->pos);
                L->line_starting = s[L->pos - 1] == '\n';
                return true;
            }
        }
        unsigned char c = (unsigned char)p[0];
        if (name_start(c)) {
            size_t k = 1;
            while (k < left && name_char((unsigned char)p[k])) k++;
            tok *t = lex_push(L, T_NAME);
            t->s = arena_strndup(L->arena, p, k);
            t->n = k;
            lex_adv(L, k);
        } else if (c >= '0' && c <= '9') {
            if (!lex_number(L)) return false;
        } else if (c == '\'' || c == '"') {
            if (!lex_string(L)) return false;
        } else {
            if (!lex_op(L)) return false;
            int op = L->toks[L->n - 1].op;
            if (op == O_LPAREN || op == O_LBRACKET || op == O_LBRACE) {
                if (depth == MAX_PARSE_DEPTH) return lex_fail(L, "brackets nested too deeply");
                stack[depth++] = (char)op;
            } else if (op == O_RPAREN || op == O_RBRACKET || op == O_RBRACE) {
                int want = op == O_RPAREN ? O_LPAREN : op == O_RBRACKET ? O_LBRACKET : O_LBRACE;
                if (depth == 0 || stack[depth - 1] != want) return lex_fail(L, "unexpected '%s'", op_text[op]);
                depth--;
            }
        }
    }
}

/* {% raw %}...{% endraw %}: pos at the '{' of the opening tag; returns false
 * without an error when this is not a raw tag. */
static bool lex_raw(lexer *L, size_t q, bool *is_raw)
{
    const char *s = L->src;
    size_t n = L->len, i = q + 2;
    *is_raw = false;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    i = skip_ws(s, i, n);
    if (n - i < 3 || memcmp(s + i, "raw", 3) || (i + 3 < n && name_char((unsigned char)s[i + 3]))) return true;
    i = skip_ws(s, i + 3, n);
    size_t body;
    if (n - i >= 3 && !memcmp(s + i, "-%}", 3)) body = skip_ws(s, i + 3, n);
    else if (n - i >= 2 && !memcmp(s + i, "%}", 2)) body = i + 2;
    else return true;
    *is_raw = true;
    lex_adv(L, body - L->pos);
    L->line_starting = s[body - 1] == '\n';
    for (size_t j = body; j + 1 < n; j++) {
        if (s[j] != '{' || s[j + 1] != '%') continue;
        size_t k = j + 2;
        char mod = k < n && (s[k] == '-' || s[k] == '+') ? s[k] : 0;
        if (mod) k++;
        k = skip_ws(s, k, n);
        if (n - k < 6 || memcmp(s + k, "endraw", 6)) continue;
        k = skip_ws(s, k + 6, n);
        size_t end;
        if (n - k >= 3 && !memcmp(s + k, "+%}", 3)) end = k + 3;
        else if (n - k >= 3 && !memcmp(s + k, "-%}", 3)) end = skip_ws(s, k + 3, n);
        else if (n - k >= 2 && !memcmp(s + k, "%}", 2)) end = k + 2 + (k + 2 < n && s[k + 2] == '\n');
        else continue;
        lex_data(L, body, lex_strip_before(L, body, j, mod, true));
        lex_adv(L, end - L->pos);
        L->line_starting = s[end - 1] == '\n';
        return true;
    }
    return lex_fail(L, "missing end of raw directive");
}

static bool lex(lexer *L)
{
    const char *s = L->src;
    size_t n = L->len;
    L->line = 1;
    L->line_starting = true;
    while (L->pos < n) {
        size_t q = L->pos;
        while (q + 1 < n && !(s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#'))) q++;
        if (q + 1 >= n) {
            lex_data(L, L->pos, n);
            lex_adv(L, n - L->pos);
            break;
        }
        char kind = s[q + 1];
        char mod = q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+') ? s[q + 2] : 0;
        lex_data(L, L->pos, lex_strip_before(L, L->pos, q, mod, kind != '{'));
        lex_adv(L, q - L->pos);
        if (kind == '%') {
            bool is_raw;
            if (!lex_raw(L, q, &is_raw)) return false;
            if (is_raw) continue;
        }
        size_t start = q + 2 + (mod ? 1 : 0);
        if (kind == '#') {
            const char *e = NULL;
            for (size_t j = start; j + 1 < n; j++)
                if (s[j] == '#' && s[j + 1] == '}') { e = s + j; break; }
            if (!e) return lex_fail(L, "missing end of comment tag");
            size_t ce = (size_t)(e - s), after = ce + 2;
            if (ce > start && s[ce - 1] == '-') after = skip_ws(s, after, n);
            else if (!(ce > start && s[ce - 1] == '+') && after < n && s[after] == '\n') after++;
            lex_adv(L, after - L->pos);
            L->line_starting = s[after - 1] == '\n';
            continue;
        }
        lex_push(L, kind == '%' ? T_BBEGIN : T_VBEGIN);
        lex_adv(L, start - L->pos);
        if (!lex_tag(L, kind == '%')) return false;
    }
    lex_push(L, T_EOF);
    return true;
}

/* ---- parser (Jinja2's parser.py, recursive descent) ---- */

typedef struct P {
    tok *t;
    size_t pos;
    arena_blk **arena;
    char *err;
    int depth;
    int in_loop;
} P;

#define CUR(p) (&(p)->t[(p)->pos])

static void describe(const tok *t, char *buf, size_t cap)
{
    switch (t->type) {
    case T_EOF: snprintf(buf, cap, "end of template"); break;
    case T_DATA: snprintf(buf, cap, "template data"); break;
    case T_VBEGIN: snprintf(buf, cap, "begin of print statement"); break;
    case T_VEND: snprintf(buf, cap, "end of print statement"); break;
    case T_BBEGIN: snprintf(buf, cap, "begin of statement block"); break;
    case T_BEND: snprintf(buf, cap, "end of statement block"); break;
    case T_NAME: snprintf(buf, cap, "%.60s", t->s); break;
    case T_STR: snprintf(buf, cap, "string"); break;
    case T_INT: snprintf(buf, cap, "integer"); break;
    case T_FLOAT: snprintf(buf, cap, "float"); break;
    default: snprintf(buf, cap, "%s", op_text[t->op]); break;
    }
}

static void *pfail(P *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *pfail(P *p, const char *fmt, ...)
{
    if (p->err) return NULL;
    va_list ap;
    va_start(ap, fmt);
    char *m = vformat(fmt, ap);
    va_end(ap);
    size_t n = strlen(m) + 32;
    p->err = fc_xmalloc(n);
    snprintf(p->err, n, "line %d: %s", CUR(p)->line, m);
    free(m);
    return NULL;
}

static void *unexpected(P *p, const char *wanted)
{
    char got[80];
    describe(CUR(p), got, sizeof got);
    if (wanted) return pfail(p, "expected %s, got '%s'", wanted, got);
    return pfail(p, "unexpected '%s'", got);
}

static bool is_op(P *p, int op) { return CUR(p)->type == T_OP && CUR(p)->op == op; }
static bool is_name(P *p, const char *s) { return CUR(p)->type == T_NAME && !strcmp(CUR(p)->s, s); }
static bool peek_name(P *p, size_t ahead, const char *s)
{
    const tok *t = CUR(p);
    for (size_t i = 0; i < ahead; i++, t++)
        if (t->type == T_EOF) return false;
    return t->type == T_NAME && !strcmp(t->s, s);
}
static void next(P *p) { if (CUR(p)->type != T_EOF) p->pos++; }
static bool accept_op(P *p, int op) { if (!is_op(p, op)) return false; next(p); return true; }
static bool expect_op(P *p, int op)
{
    if (accept_op(p, op)) return true;
    char w[16];
    snprintf(w, sizeof w, "'%s'", op_text[op]);
    unexpected(p, w);
    return false;
}
static bool expect_type(P *p, int type)
{
    if (CUR(p)->type == type) { next(p); return true; }
    unexpected(p, type == T_BEND ? "'end of statement block'" : type == T_VEND ? "'end of print statement'" : "a name");
    return false;
}

static node *mk(P *p, int kind, int line)
{
    node *n = arena_alloc(p->arena, sizeof(node));
    n->kind = (uint8_t)kind;
    n->line = line;
    return n;
}

/* An immortal string constant in the arena. */
static val const_str(arena_blk **a, const char *s, size_t n)
{
    jstr *j = arena_alloc(a, sizeof(jstr));
    j->h.rc = -1;
    j->h.type = VT_STR;
    j->s = arena_strndup(a, s, n);
    j->len = n;
    return mk_obj(VT_STR, j);
}

typedef struct nvec { node **v; const char **names; int n, cap; } nvec;

static void nv_push(nvec *v, node *x, const char *name)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = fc_xrealloc(v->v, (size_t)v->cap * sizeof(node *));
        v->names = fc_xrealloc(v->names, (size_t)v->cap * sizeof(char *));
    }
    v->v[v->n] = x;
    v->names[v->n++] = name;
}

/* Moves the vector into the arena: n->kids (and n->names when with_names). */
static void nv_finish(P *p, nvec *v, node *n, bool with_names)
{
    n->n = v->n;
    if (v->n) {
        n->kids = arena_alloc(p->arena, (size_t)v->n * sizeof(node *));
        memcpy(n->kids, v->v, (size_t)v->n * sizeof(node *));
        if (with_names) {
            n->names = arena_alloc(p->arena, (size_t)v->n * sizeof(char *));
            memcpy(n->names, v->names, (size_t)v->n * sizeof(char *));
        }
    }
    free(v->v);
    free(v->names);
    memset(v, 0, sizeof *v);
}

static void nv_free(nvec *v) { free(v->v); free(v->names); memset(v, 0, sizeof *v); }

static bool deeper(P *p)
{
    if (++p->depth > MAX_PARSE_DEPTH) { pfail(p, "template nested too deeply (more than %d levels)", MAX_PARSE_DEPTH); return false; }
    return true;
}

enum { TUPLE_EXPR, TUPLE_NOCOND, TUPLE_SIMPLE };

static node *p_expression(P *p, bool with_cond);
static node *p_tuple(P *p, int mode, const char *extra_end, bool explicit_parens);
static node *p_unary(P *p, bool with_filter);
static node *p_primary(P *p);
static node *p_postfix(P *p, node *n);
static node *p_filter(P *p, node *n, bool start_inline);

/* (args): fills n->kids (positional first, then keyword), n->names, n->n_pos. */
static bool p_call_args(P *p, node *n)
{
    if (!expect_op(p, O_LPAREN)) return false;
    nvec pos = { 0 }, kw = { 0 };
    while (!is_op(p, O_RPAREN)) {
        if ((pos.n || kw.n) && !expect_op(p, O_COMMA)) goto fail;
        if (is_op(p, O_RPAREN)) break;
        if (is_op(p, O_MUL) || is_op(p, O_POW)) { pfail(p, "*args and **kwargs in calls are not supported"); goto fail; }
        if (CUR(p)->type == T_NAME && p->t[p->pos + 1].type == T_OP && p->t[p->pos + 1].op == O_ASSIGN) {
            const char *name = CUR(p)->s;
            next(p);
            next(p);
            node *v = p_expression(p, true);
            if (!v) goto fail;
            nv_push(&kw, v, name);
        } else {
            if (kw.n) { pfail(p, "invalid syntax for function call expression"); goto fail; }
            node *v = p_expression(p, true);
            if (!v) goto fail;
            nv_push(&pos, v, NULL);
        }
    }
    next(p);
    n->n_pos = pos.n;
    for (int i = 0; i < kw.n; i++) nv_push(&pos, kw.v[i], kw.names[i]);
    nv_free(&kw);
    nv_finish(p, &pos, n, true);
    return true;
fail:
    nv_free(&pos);
    nv_free(&kw);
    return false;
}

static const char *p_dotted_name(P *p)
{
    if (CUR(p)->type != T_NAME) { unexpected(p, "a name"); return NULL; }
    const char *name = CUR(p)->s;
    next(p);
    while (is_op(p, O_DOT) && p->t[p->pos + 1].type == T_NAME) {
        size_t a = strlen(name), b = strlen(p->t[p->pos + 1].s);
        char *s = arena_alloc(p->arena, a + b + 2);
        memcpy(s, name, a);
        s[a] = '.';
        memcpy(s + a + 1, p->t[p->pos + 1].s, b + 1);
        name = s;
        next(p);
        next(p);
    }
    return name;
}

static node *p_filter(P *p, node *n, bool start_inline)
{
    while (is_op(p, O_PIPE) || start_inline) {
        if (!start_inline) next(p);
        start_inline = false;
        node *f = mk(p, E_FILTER, CUR(p)->line);
        if (!(f->name = p_dotted_name(p))) return NULL;
        f->a = n;
        if (is_op(p, O_LPAREN) && !p_call_args(p, f)) return NULL;
        n = f;
    }
    return n;
}

static node *p_test(P *p, node *n)
{
    node *t = mk(p, E_TEST, CUR(p)->line);
    next(p); /* is */
    if (is_name(p, "not")) { t->flag = true; next(p); }
    if (!(t->name = p_dotted_name(p))) return NULL;
    t->a = n;
    const tok *c = CUR(p);
    if (is_op(p, O_LPAREN)) {
        if (!p_call_args(p, t)) return NULL;
    } else if ((c->type == T_NAME || c->type == T_STR || c->type == T_INT || c->type == T_FLOAT ||
                is_op(p, O_LBRACKET) || is_op(p, O_LBRACE)) &&
               !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
        if (is_name(p, "is")) return pfail(p, "You cannot chain multiple tests with is");
        node *arg = p_primary(p);
        if (!arg || !(arg = p_postfix(p, arg))) return NULL;
        t->kids = arena_alloc(p->arena, sizeof(node *));
        t->kids[0] = arg;
        t->n = t->n_pos = 1;
    }
    return t;
}

static node *p_filter_expr(P *p, node *n)
{
    for (;;) {
        if (is_op(p, O_PIPE)) n = p_filter(p, n, false);
        else if (is_name(p, "is")) n = p_test(p, n);
        else if (is_op(p, O_LPAREN)) {
            node *c = mk(p, E_CALL, CUR(p)->line);
            c->a = n;
            n = p_call_args(p, c) ? c : NULL;
        } else return n;
        if (!n) return NULL;
    }
}

/* One subscript: an expression or a slice [a:b:c]. */
static node *p_subscribed(P *p)
{
    int line = CUR(p)->line;
    node *args[3] = { NULL, NULL, NULL };
    if (is_op(p, O_COLON)) {
        next(p);
    } else {
        node *e = p_expression(p, true);
        if (!e) return NULL;
        if (!is_op(p, O_COLON)) return e;
        next(p);
        args[0] = e;
    }
    if (is_op(p, O_COLON)) {
    } else if (!is_op(p, O_RBRACKET) && !is_op(p, O_COMMA)) {
        if (!(args[1] = p_expression(p, true))) return NULL;
    }
    if (is_op(p, O_COLON)) {
        next(p);
        if (!is_op(p, O_RBRACKET) && !is_op(p, O_COMMA) && !(args[2] = p_expression(p, true))) return NULL;
    }
    node *s = mk(p, E_SLICE, line);
    s->b = args[0];
    s->c = args[1];
    s->d = args[2];
    return s;
}

static node *p_postfix(P *p, node *n)
{
    for (;;) {
        int line = CUR(p)->line;
        if (is_op(p, O_DOT)) {
            next(p);
            if (CUR(p)->type == T_NAME) {
                node *g = mk(p, E_GETATTR, line);
                g->a = n;
                g->name = CUR(p)->s;
                g->k = const_str(p->arena, CUR(p)->s, CUR(p)->n);
                next(p);
                n = g;
            } else if (CUR(p)->type == T_INT) {
                node *g = mk(p, E_GETITEM, line);
                g->a = n;
                g->b = mk(p, E_CONST, line);
                g->b->k = mk_int(CUR(p)->i);
                next(p);
                n = g;
            } else {
                return unexpected(p, "name or number");
            }
        } else if (is_op(p, O_LBRACKET)) {
            next(p);
            node *s = p_subscribed(p);
            if (!s) return NULL;
            if (is_op(p, O_COMMA)) return pfail(p, "tuple subscripts are not supported");
            if (!expect_op(p, O_RBRACKET)) return NULL;
            if (s->kind == E_SLICE) {
                s->a = n;
                n = s;
            } else {
                node *g = mk(p, E_GETITEM, line);
                g->a = n;
                g->b = s;
                n = g;
            }
        } else if (is_op(p, O_LPAREN)) {
            node *c = mk(p, E_CALL, line);
            c->a = n;
            if (!p_call_args(p, c)) return NULL;
            n = c;
        } else {
            return n;
        }
    }
}

static node *p_primary(P *p)
{
    tok *t = CUR(p);
    int line = t->line;
    node *n;
    switch (t->type) {
    case T_NAME:
        n = mk(p, E_CONST, line);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True")) n->k = mk_bool(true);
        else if (!strcmp(t->s, "false") || !strcmp(t->s, "False")) n->k = mk_bool(false);
        else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) n->k = mk_none();
        else {
            n->kind = E_NAME;
            n->name = t->s;
            n->k = const_str(p->arena, t->s, t->n);
        }
        next(p);
        return n;
    case T_STR: {
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        while (CUR(p)->type == T_STR) {
            fc_str_putn(&b, CUR(p)->s, CUR(p)->n);
            next(p);
        }
        n = mk(p, E_CONST, line);
        n->k = const_str(p->arena, b.p, b.len);
        fc_str_free(&b);
        return n;
    }
    case T_INT: n = mk(p, E_CONST, line); n->k = mk_int(t->i); next(p); return n;
    case T_FLOAT: n = mk(p, E_CONST, line); n->k = mk_float(t->f); next(p); return n;
    case T_OP:
        if (t->op == O_LPAREN) {
            next(p);
            n = p_tuple(p, TUPLE_EXPR, NULL, true);
            if (!n || !expect_op(p, O_RPAREN)) return NULL;
            return n;
        }
        if (t->op == O_LBRACKET || t->op == O_LBRACE) {
            bool dict = t->op == O_LBRACE;
            int close = dict ? O_RBRACE : O_RBRACKET;
            next(p);
            nvec items = { 0 };
            while (!is_op(p, close)) {
                if (items.n && !expect_op(p, O_COMMA)) { nv_free(&items); return NULL; }
                if (is_op(p, close)) break;
                node *k = p_expression(p, true);
                if (!k) { nv_free(&items); return NULL; }
                nv_push(&items, k, NULL);
                if (dict) {
                    node *v = NULL;
                    if (!expect_op(p, O_COLON) || !(v = p_expression(p, true))) { nv_free(&items); return NULL; }
                    nv_push(&items, v, NULL);
                }
            }
            next(p);
            n = mk(p, dict ? E_DICT : E_LIST, line);
            nv_finish(p, &items, n, false);
            return n;
        }
        return unexpected(p, NULL);
    default:
        return unexpected(p, NULL);
    }
}

static node *p_unary(P *p, bool with_filter)
{
    if (!deeper(p)) return NULL;
    int line = CUR(p)->line;
    node *n;
    if (is_op(p, O_SUB) || is_op(p, O_ADD)) {
        int kind = is_op(p, O_SUB) ? E_NEG : E_POS;
        next(p);
        node *x = p_unary(p, false);
        if (!x) return NULL;
        n = mk(p, kind, line);
        n->a = x;
    } else {
        n = p_primary(p);
    }
    if (n) n = p_postfix(p, n);
    if (n && with_filter) n = p_filter_expr(p, n);
    p->depth--;
    return n;
}

static node *bin(P *p, int op, node *a, node *b, int line)
{
    node *n = mk(p, E_BIN, line);
    n->op = (uint8_t)op;
    n->a = a;
    n->b = b;
    return n;
}

static node *p_pow(P *p)
{
    node *l = p_unary(p, true);
    while (l && is_op(p, O_POW)) {
        int line = CUR(p)->line;
        next(p);
        node *r = p_unary(p, true);
        l = r ? bin(p, O_POW, l, r, line) : NULL;
    }
    return l;
}

static node *p_math2(P *p)
{
    node *l = p_pow(p);
    while (l && (is_op(p, O_MUL) || is_op(p, O_DIV) || is_op(p, O_FDIV) || is_op(p, O_MOD))) {
        int op = CUR(p)->op, line = CUR(p)->line;
        next(p);
        node *r = p_pow(p);
        l = r ? bin(p, op, l, r, line) : NULL;
    }
    return l;
}

static node *p_concat(P *p)
{
    int line = CUR(p)->line;
    node *first = p_math2(p);
    if (!first || !is_op(p, O_TILDE)) return first;
    nvec v = { 0 };
    nv_push(&v, first, NULL);
    while (is_op(p, O_TILDE)) {
        next(p);
        node *x = p_math2(p);
        if (!x) { nv_free(&v); return NULL; }
        nv_push(&v, x, NULL);
    }
    node *n = mk(p, E_CONCAT, line);
    nv_finish(p, &v, n, false);
    return n;
}

static node *p_math1(P *p)
{
    node *l = p_concat(p);
    while (l && (is_op(p, O_ADD) || is_op(p, O_SUB))) {
        int op = CUR(p)->op, line = CUR(p)->line;
        next(p);
        node *r = p_concat(p);
        l = r ? bin(p, op, l, r, line) : NULL;
    }
    return l;
}

static node *p_compare(P *p)
{
    int line = CUR(p)->line;
    node *first = p_math1(p);
    if (!first) return NULL;
    nvec v = { 0 };
    uint8_t ops[64];
    for (;;) {
        int op;
        if (CUR(p)->type == T_OP && (CUR(p)->op == O_EQ || CUR(p)->op == O_NE || CUR(p)->op == O_GT ||
                                     CUR(p)->op == O_GE || CUR(p)->op == O_LT || CUR(p)->op == O_LE)) {
            op = CUR(p)->op;
            next(p);
        } else if (is_name(p, "in")) {
            op = O_IN;
            next(p);
        } else if (is_name(p, "not") && peek_name(p, 1, "in")) {
            op = O_NOTIN;
            next(p);
            next(p);
        } else {
            break;
        }
        if (v.n == 63) { nv_free(&v); return pfail(p, "comparison chain too long"); }
        if (!v.n) nv_push(&v, first, NULL);
        ops[v.n - 1] = (uint8_t)op;
        node *x = p_math1(p);
        if (!x) { nv_free(&v); return NULL; }
        nv_push(&v, x, NULL);
    }
    if (!v.n) return first;
    node *n = mk(p, E_CMP, line);
    n->ops = arena_alloc(p->arena, (size_t)v.n);
    memcpy(n->ops, ops, (size_t)v.n - 1);
    nv_finish(p, &v, n, false);
    return n;
}

static node *p_not(P *p)
{
    if (!is_name(p, "not")) return p_compare(p);
    int line = CUR(p)->line;
    next(p);
    if (!deeper(p)) return NULL;
    node *x = p_not(p);
    p->depth--;
    if (!x) return NULL;
    node *n = mk(p, E_NOT, line);
    n->a = x;
    return n;
}

static node *p_and(P *p)
{
    node *l = p_not(p);
    while (l && is_name(p, "and")) {
        int line = CUR(p)->line;
        next(p);
        node *r = p_not(p);
        if (!r) return NULL;
        node *n = mk(p, E_AND, line);
        n->a = l;
        n->b = r;
        l = n;
    }
    return l;
}

static node *p_or(P *p)
{
    node *l = p_and(p);
    while (l && is_name(p, "or")) {
        int line = CUR(p)->line;
        next(p);
        node *r = p_and(p);
        if (!r) return NULL;
        node *n = mk(p, E_OR, line);
        n->a = l;
        n->b = r;
        l = n;
    }
    return l;
}

static node *p_condexpr(P *p)
{
    node *e1 = p_or(p);
    while (e1 && is_name(p, "if")) {
        int line = CUR(p)->line;
        next(p);
        node *e2 = p_or(p), *e3 = NULL;
        if (!e2) return NULL;
        if (is_name(p, "else")) {
            next(p);
            if (!deeper(p)) return NULL;
            e3 = p_condexpr(p);
            p->depth--;
            if (!e3) return NULL;
        }
        node *n = mk(p, E_COND, line);
        n->a = e2;
        n->b = e1;
        n->c = e3;
        e1 = n;
    }
    return e1;
}

static node *p_expression(P *p, bool with_cond)
{
    return with_cond ? p_condexpr(p) : p_or(p);
}

static bool tuple_end(P *p, const char *extra_end)
{
    const tok *t = CUR(p);
    return t->type == T_VEND || t->type == T_BEND || t->type == T_EOF || (t->type == T_OP && t->op == O_RPAREN) ||
           (extra_end && is_name(p, extra_end));
}

static node *p_tuple(P *p, int mode, const char *extra_end, bool explicit_parens)
{
    int line = CUR(p)->line;
    nvec v = { 0 };
    bool is_tuple = false;
    for (;;) {
        if (v.n && !expect_op(p, O_COMMA)) { nv_free(&v); return NULL; }
        if (tuple_end(p, extra_end)) break;
        node *x = mode == TUPLE_SIMPLE ? p_primary(p) : p_expression(p, mode == TUPLE_EXPR);
        if (!x) { nv_free(&v); return NULL; }
        nv_push(&v, x, NULL);
        if (is_op(p, O_COMMA)) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (v.n) {
            node *x = v.v[0];
            nv_free(&v);
            return x;
        }
        if (!explicit_parens) { nv_free(&v); return unexpected(p, "an expression"); }
    }
    node *n = mk(p, E_TUPLE, line);
    nv_finish(p, &v, n, false);
    return n;
}

/* ---- parser: statements ---- */

static node *p_body(P *p, const char *const *ends, int n_ends);

static bool assignable(const node *n)
{
    if (n->kind == E_NAME) return true;
    if (n->kind != E_TUPLE) return false;
    for (int i = 0; i < n->n; i++)
        if (!assignable(n->kids[i])) return false;
    return true;
}

static node *p_assign_target(P *p, const char *extra_end, bool with_ns)
{
    if (with_ns && CUR(p)->type == T_NAME && p->t[p->pos + 1].type == T_OP && p->t[p->pos + 1].op == O_DOT) {
        node *n = mk(p, E_NSREF, CUR(p)->line);
        n->name = CUR(p)->s;
        n->k = const_str(p->arena, CUR(p)->s, CUR(p)->n);
        next(p);
        next(p);
        if (CUR(p)->type != T_NAME) return unexpected(p, "a name");
        n->attr = CUR(p)->s;
        next(p);
        return n;
    }
    node *t = p_tuple(p, TUPLE_SIMPLE, extra_end, false);
    if (!t) return NULL;
    if (!assignable(t)) return pfail(p, "can't assign to this expression");
    return t;
}

static bool end_tag(P *p, const char *name)
{
    if (!is_name(p, name)) { unexpected(p, name); return false; }
    next(p);
    return expect_type(p, T_BEND);
}

static node *p_if(P *p)
{
    static const char *const ends[] = { "elif", "else", "endif" };
    static const char *const ends2[] = { "endif" };
    node *root = mk(p, S_IF, CUR(p)->line), *cur = root;
    next(p);
    for (;;) {
        if (!(cur->a = p_tuple(p, TUPLE_NOCOND, NULL, false)) || !expect_type(p, T_BEND)) return NULL;
        if (!(cur->b = p_body(p, ends, 3))) return NULL;
        if (is_name(p, "elif")) {
            node *n = mk(p, S_IF, CUR(p)->line);
            next(p);
            cur->c = n;
            cur = n;
            continue;
        }
        if (is_name(p, "else")) {
            next(p);
            if (!expect_type(p, T_BEND) || !(cur->c = p_body(p, ends2, 1))) return NULL;
        }
        return end_tag(p, "endif") ? root : NULL;
    }
}

static node *p_for(P *p)
{
    static const char *const ends[] = { "endfor", "else" };
    static const char *const ends2[] = { "endfor" };
    node *n = mk(p, S_FOR, CUR(p)->line);
    next(p);
    if (!(n->a = p_assign_target(p, "in", false))) return NULL;
    if (!is_name(p, "in")) return unexpected(p, "'in'");
    next(p);
    if (!(n->b = p_tuple(p, TUPLE_NOCOND, "recursive", false))) return NULL;
    if (is_name(p, "if")) {
        next(p);
        if (!(n->e = p_expression(p, true))) return NULL;
    }
    if (is_name(p, "recursive")) return pfail(p, "recursive loops are not supported");
    if (!expect_type(p, T_BEND)) return NULL;
    p->in_loop++;
    n->c = p_body(p, ends, 2);
    p->in_loop--;
    if (!n->c) return NULL;
    if (is_name(p, "else")) {
        next(p);
        if (!expect_type(p, T_BEND) || !(n->d = p_body(p, ends2, 1))) return NULL;
    }
    return end_tag(p, "endfor") ? n : NULL;
}

static node *p_set(P *p)
{
    static const char *const ends[] = { "endset" };
    int line = CUR(p)->line;
    next(p);
    node *target = p_assign_target(p, NULL, true);
    if (!target) return NULL;
    if (accept_op(p, O_ASSIGN)) {
        node *n = mk(p, S_SET, line);
        n->a = target;
        if (!(n->b = p_tuple(p, TUPLE_EXPR, NULL, false)) || !expect_type(p, T_BEND)) return NULL;
        return n;
    }
    node *n = mk(p, S_SETBLOCK, line);
    n->a = target;
    if (is_op(p, O_PIPE) && !(n->c = p_filter(p, NULL, false))) return NULL;
    if (!expect_type(p, T_BEND) || !(n->b = p_body(p, ends, 1))) return NULL;
    return end_tag(p, "endset") ? n : NULL;
}

static node *p_macro(P *p)
{
    static const char *const ends[] = { "endmacro" };
    node *n = mk(p, S_MACRO, CUR(p)->line);
    next(p);
    if (CUR(p)->type != T_NAME) return unexpected(p, "a name");
    n->name = CUR(p)->s;
    n->k = const_str(p->arena, CUR(p)->s, CUR(p)->n);
    next(p);
    if (!expect_op(p, O_LPAREN)) return NULL;
    nvec params = { 0 };
    bool have_default = false;
    while (!is_op(p, O_RPAREN)) {
        if (params.n && !expect_op(p, O_COMMA)) goto fail;
        if (CUR(p)->type != T_NAME) { unexpected(p, "a name"); goto fail; }
        const char *name = CUR(p)->s;
        next(p);
        node *def = NULL;
        if (accept_op(p, O_ASSIGN)) {
            if (!(def = p_expression(p, true))) goto fail;
            have_default = true;
        } else if (have_default) {
            pfail(p, "non-default argument follows default argument");
            goto fail;
        }
        nv_push(&params, def, name);
    }
    next(p);
    nv_finish(p, &params, n, true);
    if (!expect_type(p, T_BEND)) return NULL;
    int saved = p->in_loop;
    p->in_loop = 0;
    n->b = p_body(p, ends, 1);
    p->in_loop = saved;
    if (!n->b) return NULL;
    return end_tag(p, "endmacro") ? n : NULL;
fail:
    nv_free(&params);
    return NULL;
}

static node *p_with(P *p)
{
    static const char *const ends[] = { "endwith" };
    node *n = mk(p, S_WITH, CUR(p)->line);
    next(p);
    nvec v = { 0 };
    while (CUR(p)->type != T_BEND) {
        if (v.n && !expect_op(p, O_COMMA)) { nv_free(&v); return NULL; }
        node *t = p_assign_target(p, NULL, false), *x = NULL;
        if (!t || !expect_op(p, O_ASSIGN) || !(x = p_expression(p, true))) { nv_free(&v); return NULL; }
        nv_push(&v, t, NULL);
        nv_push(&v, x, NULL);
    }
    next(p);
    nv_finish(p, &v, n, false);
    if (!(n->b = p_body(p, ends, 1))) return NULL;
    return end_tag(p, "endwith") ? n : NULL;
}

static node *p_statement(P *p)
{
    static const char *const end_filter[] = { "endfilter" };
    static const char *const end_generation[] = { "endgeneration" };
    const char *tag = CUR(p)->s;
    int line = CUR(p)->line;
    if (!strcmp(tag, "if")) return p_if(p);
    if (!strcmp(tag, "for")) return p_for(p);
    if (!strcmp(tag, "set")) return p_set(p);
    if (!strcmp(tag, "macro")) return p_macro(p);
    if (!strcmp(tag, "with")) return p_with(p);
    if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        if (!p->in_loop) return pfail(p, "'%s' outside a loop", tag);
        node *n = mk(p, tag[0] == 'b' ? S_BREAK : S_CONTINUE, line);
        next(p);
        return expect_type(p, T_BEND) ? n : NULL;
    }
    if (!strcmp(tag, "filter")) {
        node *n = mk(p, S_FILTERBLOCK, line);
        next(p);
        if (!(n->a = p_filter(p, NULL, true)) || !expect_type(p, T_BEND)) return NULL;
        if (!(n->b = p_body(p, end_filter, 1))) return NULL;
        return end_tag(p, "endfilter") ? n : NULL;
    }
    if (!strcmp(tag, "generation")) { /* transformers' AssistantTracker: the body, rendered in place */
        next(p);
        node *b;
        if (!expect_type(p, T_BEND) || !(b = p_body(p, end_generation, 1))) return NULL;
        return end_tag(p, "endgeneration") ? b : NULL;
    }
    static const char *const unsupported[] = { "extends", "block", "include", "import", "from", "call" };
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++)
        if (!strcmp(tag, unsupported[i])) return pfail(p, "the '%s' tag is not supported", tag);
    return pfail(p, "Encountered unknown tag '%.60s'.", tag);
}

static node *p_body(P *p, const char *const *ends, int n_ends)
{
    if (!deeper(p)) return NULL;
    node *body = mk(p, S_BODY, CUR(p)->line);
    nvec v = { 0 };
    for (;;) {
        tok *t = CUR(p);
        if (t->type == T_EOF) {
            if (n_ends) {
                char want[128] = "";
                for (int i = 0; i < n_ends; i++)
                    snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'", i ? " or " : "", ends[i]);
                pfail(p, "Unexpected end of template. Jinja was looking for the following tags: %s.", want);
                goto fail;
            }
            break;
        }
        node *x = NULL;
        if (t->type == T_DATA) {
            x = mk(p, S_TEXT, t->line);
            x->k = const_str(p->arena, t->s, t->n);
            next(p);
        } else if (t->type == T_VBEGIN) {
            next(p);
            x = mk(p, S_OUT, t->line);
            if (!(x->a = p_tuple(p, TUPLE_EXPR, NULL, false)) || !expect_type(p, T_VEND)) goto fail;
        } else if (t->type == T_BBEGIN) {
            next(p);
            if (CUR(p)->type != T_NAME) { unexpected(p, "a tag name"); goto fail; }
            bool is_end = false;
            for (int i = 0; i < n_ends; i++) is_end |= is_name(p, ends[i]);
            if (is_end) break;
            if (!(x = p_statement(p))) goto fail;
        } else {
            unexpected(p, NULL);
            goto fail;
        }
        nv_push(&v, x, NULL);
    }
    nv_finish(p, &v, body, false);
    p->depth--;
    return body;
fail:
    nv_free(&v);
    return NULL;
}

fc_jinja *fc_jinja_compile(const char *src, char **err)
{
    if (err) *err = NULL;
    if (!src) src = "";
    /* Jinja2's lexer: newlines normalised, keep_trailing_newline=False. */
    size_t n = strlen(src);
    char *s = fc_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (i + 1 < n && src[i + 1] == '\n') i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k && s[k - 1] == '\n') k--;
    s[k] = '\0';

    fc_jinja *t = fc_xcalloc(1, sizeof *t);
    lexer L = { .src = s, .len = k, .arena = &t->arena };
    P p = { 0 };
    char *e = NULL;
    if (!lex(&L)) {
        e = L.err;
        goto fail;
    }
    p.t = L.toks;
    p.arena = &t->arena;
    t->root = p_body(&p, NULL, 0);
    if (!t->root) {
        e = p.err;
        goto fail;
    }
    free(L.toks);
    free(s);
    return t;
fail:
    free(L.toks);
    free(s);
    fc_jinja_free(t);
    if (err) *err = e ? e : fc_xstrdup("template syntax error");
    else free(e);
    return NULL;
}

void fc_jinja_free(fc_jinja *t)
{
    if (!t) return;
    arena_free(t->arena);
    free(t);
}

/* ---- render errors and budgets ---- */

enum { X_OK, X_ERR, X_BREAK, X_CONTINUE };

static bool failf(R *r, const node *at, const char *fmt, ...)
{
    if (r->err) return false;
    va_list ap;
    va_start(ap, fmt);
    char *m = vformat(fmt, ap);
    va_end(ap);
    size_t n = strlen(m) + 32;
    r->err = fc_xmalloc(n);
    if (at) snprintf(r->err, n, "line %d: %s", at->line, m);
    else snprintf(r->err, n, "%s", m);
    free(m);
    return false;
}

/* Using an Undefined strictly: jinja2's UndefinedError. */
static bool fail_undef(R *r, const node *at, val u)
{
    if (u.t == VT_UNDEF && u.u.o) return failf(r, at, "%s", STR(u)->s);
    return failf(r, at, "undefined value");
}

static bool step(R *r, const node *at)
{
    if (++r->steps > r->max_steps) return failf(r, at, "template needs more than %lld steps", r->max_steps);
    if (r->mem > r->max_mem) return failf(r, at, "template needs more than %zu bytes of memory", r->max_mem);
    return true;
}

/* Charges the copying of n bytes or items to the step budget. */
static bool work(R *r, const node *at, size_t n)
{
    r->steps += (long long)(n >> 6);
    return step(r, at);
}

static bool size_ok(R *r, const node *at, size_t n)
{
    if (n > r->max_out) return failf(r, at, "string or list longer than %zu", r->max_out);
    return true;
}

/* The buffer as a string value (the buffer is freed). */
static bool sb_val(R *r, const node *at, fc_str *b, val *out)
{
    if (!size_ok(r, at, b->len) || !work(r, at, b->len)) { fc_str_free(b); return false; }
    *out = vstr(r, b->p ? b->p : "", b->len);
    fc_str_free(b);
    return true;
}

/* ---- str() and repr() ---- */

static void repr_str(fc_str *b, const char *s, size_t n)
{
    char q = '\'';
    if (memchr(s, '\'', n) && !memchr(s, '"', n)) q = '"';
    fc_str_putc(b, q);
    for (size_t i = 0, a; i < n; i += a) {
        int32_t c = u8dec(s + i, n - i, &a);
        if (c == q || c == '\\') { fc_str_putc(b, '\\'); fc_str_putc(b, (char)c); }
        else if (c == '\n') fc_str_puts(b, "\\n");
        else if (c == '\r') fc_str_puts(b, "\\r");
        else if (c == '\t') fc_str_puts(b, "\\t");
        else if (c >= 0xdc80 && c <= 0xdcff) fc_str_printf(b, "\\udc%02x", c & 0xff);
        else if (c < 0x7f && c >= 0x20) fc_str_putc(b, (char)c);
        else if (c >= 0x80 && py_printable(c)) fc_str_putn(b, s + i, a);
        else if (c <= 0xff) fc_str_printf(b, "\\x%02x", c);
        else if (c <= 0xffff) fc_str_printf(b, "\\u%04x", c);
        else fc_str_printf(b, "\\U%08x", c);
    }
    fc_str_putc(b, q);
}

static bool py_repr(R *r, const node *at, fc_str *b, val v, int depth);

static bool py_str_into(R *r, const node *at, fc_str *b, val v, int depth)
{
    if (v.t == VT_UNDEF) return true;
    if (v.t == VT_STR) { fc_str_putn(b, STR(v)->s, STR(v)->len); return true; }
    return py_repr(r, at, b, v, depth);
}

static bool py_repr(R *r, const node *at, fc_str *b, val v, int depth)
{
    if (depth > 200) return failf(r, at, "value nested too deeply to print");
    if (b->len > r->max_out) return size_ok(r, at, b->len);
    char tmp[64];
    switch (v.t) {
    case VT_UNDEF: fc_str_puts(b, "Undefined"); return true;
    case VT_NONE: fc_str_puts(b, "None"); return true;
    case VT_BOOL: fc_str_puts(b, v.u.b ? "True" : "False"); return true;
    case VT_INT: fc_str_printf(b, "%lld", (long long)v.u.i); return true;
    case VT_FLOAT: fmt_float(v.u.f, tmp, sizeof tmp); fc_str_puts(b, tmp); return true;
    case VT_STR: repr_str(b, STR(v)->s, STR(v)->len); return true;
    case VT_LIST: {
        jlist *l = LIST(v);
        fc_str_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) fc_str_puts(b, ", ");
            if (!py_repr(r, at, b, l->v[i], depth + 1)) return false;
        }
        if (l->tuple && l->n == 1) fc_str_putc(b, ',');
        fc_str_putc(b, l->tuple ? ')' : ']');
        return work(r, at, l->n * 16);
    }
    case VT_DICT: case VT_NS: {
        jdict *d = DICT(v);
        if (v.t == VT_NS) fc_str_puts(b, "<Namespace ");
        fc_str_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) fc_str_puts(b, ", ");
            if (!py_repr(r, at, b, d->k[i], depth + 1)) return false;
            fc_str_puts(b, ": ");
            if (!py_repr(r, at, b, d->v[i], depth + 1)) return false;
        }
        fc_str_putc(b, '}');
        if (v.t == VT_NS) fc_str_putc(b, '>');
        return work(r, at, d->n * 16);
    }
    case VT_FUNC:
        if (FUNC(v)->macro) fc_str_printf(b, "<Macro '%s'>", FUNC(v)->macro->name);
        else fc_str_puts(b, "<built-in function>");
        return true;
    case VT_LOOP:
        fc_str_printf(b, "<LoopContext %zu/%zu>", LOOP(v)->i + 1, LOOP(v)->items->n);
        return true;
    default: return failf(r, at, "internal error: bad value");
    }
}

/* str(v) as a string value. */
static bool to_str(R *r, const node *at, val v, val *out)
{
    if (v.t == VT_STR) { *out = incref(v); return true; }
    if (v.t == VT_UNDEF) { *out = mk_obj(VT_STR, &g_empty); return true; }
    fc_str b = { 0 };
    if (!py_str_into(r, at, &b, v, 0)) { fc_str_free(&b); return false; }
    return sb_val(r, at, &b, out);
}

/* ---- json.dumps (transformers' tojson) ---- */

typedef struct json_opts {
    bool ensure_ascii, sort_keys, indent_on;
    const char *indent; size_t indent_len;
    const char *item_sep; size_t item_sep_len;
    const char *key_sep; size_t key_sep_len;
} json_opts;

/* Python's json.dumps of a str: an undecodable byte (held as U+DC80..U+DCFF,
 * surrogateescape) comes out as \udcXX in both modes. */
static void json_str(fc_str *b, const char *s, size_t n, bool ascii)
{
    fc_json_put_strn_flags(b, s, n, FC_JSON_SURROGATEESCAPE | (ascii ? FC_JSON_ASCII : 0));
}

static void json_newline(fc_str *b, const json_opts *o, int level)
{
    fc_str_putc(b, '\n');
    for (int i = 0; i < level; i++) fc_str_putn(b, o->indent, o->indent_len);
}

static bool json_dump(R *r, const node *at, fc_str *b, val v, const json_opts *o, int level)
{
    if (level > 200) return failf(r, at, "value nested too deeply for tojson");
    if (b->len > r->max_out) return size_ok(r, at, b->len);
    char tmp[64];
    switch (v.t) {
    case VT_NONE: fc_str_puts(b, "null"); return true;
    case VT_BOOL: fc_str_puts(b, v.u.b ? "true" : "false"); return true;
    case VT_INT: fc_str_printf(b, "%lld", (long long)v.u.i); return true;
    case VT_FLOAT:
        if (isnan(v.u.f)) fc_str_puts(b, "NaN");
        else if (isinf(v.u.f)) fc_str_puts(b, v.u.f > 0 ? "Infinity" : "-Infinity");
        else { fmt_float(v.u.f, tmp, sizeof tmp); fc_str_puts(b, tmp); }
        return true;
    case VT_STR: json_str(b, STR(v)->s, STR(v)->len, o->ensure_ascii); return true;
    case VT_LIST: {
        jlist *l = LIST(v);
        if (!l->n) { fc_str_puts(b, "[]"); return true; }
        fc_str_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) fc_str_putn(b, o->item_sep, o->item_sep_len);
            if (o->indent_on) json_newline(b, o, level + 1);
            if (!json_dump(r, at, b, l->v[i], o, level + 1)) return false;
        }
        if (o->indent_on) json_newline(b, o, level);
        fc_str_putc(b, ']');
        return work(r, at, l->n * 16);
    }
    case VT_DICT: {
        jdict *d = DICT(v);
        if (!d->n) { fc_str_puts(b, "{}"); return true; }
        size_t *order = fc_xmalloc(d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->k[i].t != VT_STR) { free(order); return failf(r, at, "tojson(sort_keys=True) needs string keys"); }
            /* insertion sort by key bytes: stable, no context pointer needed */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    jstr *a = STR(d->k[order[j - 1]]), *c = STR(d->k[x]);
                    size_t m = a->len < c->len ? a->len : c->len;
                    int k = memcmp(a->s, c->s, m);
                    if (k < 0 || (k == 0 && a->len <= c->len)) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
            if (!work(r, at, d->n * d->n)) { free(order); return false; }
        }
        fc_str_putc(b, '{');
        for (size_t n = 0; n < d->n; n++) {
            size_t i = order[n];
            if (n) fc_str_putn(b, o->item_sep, o->item_sep_len);
            if (o->indent_on) json_newline(b, o, level + 1);
            val k = d->k[i];
            switch (k.t) {
            case VT_STR: json_str(b, STR(k)->s, STR(k)->len, o->ensure_ascii); break;
            case VT_NONE: fc_str_puts(b, "\"null\""); break;
            case VT_BOOL: fc_str_puts(b, k.u.b ? "\"true\"" : "\"false\""); break;
            case VT_INT: fc_str_printf(b, "\"%lld\"", (long long)k.u.i); break;
            case VT_FLOAT: fmt_float(k.u.f, tmp, sizeof tmp); fc_str_printf(b, "\"%s\"", tmp); break;
            default: free(order); return failf(r, at, "keys must be str, int, float, bool or None, not %s", type_name(k));
            }
            fc_str_putn(b, o->key_sep, o->key_sep_len);
            if (!json_dump(r, at, b, d->v[i], o, level + 1)) { free(order); return false; }
        }
        free(order);
        if (o->indent_on) json_newline(b, o, level);
        fc_str_putc(b, '}');
        return work(r, at, d->n * 16);
    }
    default:
        return failf(r, at, "Object of type %s is not JSON serializable", type_name(v));
    }
}

/* ---- comparisons ---- */

static bool v_eq(const val *a, const val *b, int depth)
{
    if (depth > 200) return false;
    if (is_num(*a) && is_num(*b)) {
        if (a->t != VT_FLOAT && b->t != VT_FLOAT) return int_of(*a) == int_of(*b);
        return num_of(*a) == num_of(*b);
    }
    if (a->t != b->t) return false;
    switch (a->t) {
    case VT_UNDEF: case VT_NONE: return true;
    case VT_STR: return STR(*a)->len == STR(*b)->len && !memcmp(STR(*a)->s, STR(*b)->s, STR(*a)->len);
    case VT_LIST: {
        jlist *x = LIST(*a), *y = LIST(*b);
        if (x == y) return true;
        if (x->tuple != y->tuple || x->n != y->n) return false;
        for (size_t i = 0; i < x->n; i++)
            if (!v_eq(&x->v[i], &y->v[i], depth + 1)) return false;
        return true;
    }
    case VT_DICT: {
        jdict *x = DICT(*a), *y = DICT(*b);
        if (x == y) return true;
        if (x->n != y->n) return false;
        for (size_t i = 0; i < x->n; i++) {
            const val *w = dict_find(y, &x->k[i]);
            if (!w || !v_eq(&x->v[i], w, depth + 1)) return false;
        }
        return true;
    }
    default: return a->u.o == b->u.o;
    }
}

/* Python's ordering; *res < 0, 0, > 0. */
static bool v_cmp(R *r, const node *at, val a, val b, int op, int *res, int depth)
{
    if (a.t == VT_UNDEF) return fail_undef(r, at, a);
    if (b.t == VT_UNDEF) return fail_undef(r, at, b);
    if (depth > 200) return failf(r, at, "values nested too deeply to compare");
    if (is_num(a) && is_num(b)) {
        if (a.t != VT_FLOAT && b.t != VT_FLOAT) {
            int64_t x = int_of(a), y = int_of(b);
            *res = (x > y) - (x < y);
        } else {
            double x = num_of(a), y = num_of(b);
            *res = (x > y) - (x < y);
            if (isnan(x) || isnan(y)) *res = 2; /* every comparison false */
        }
        return true;
    }
    if (a.t == VT_STR && b.t == VT_STR) {
        jstr *x = STR(a), *y = STR(b);
        size_t m = x->len < y->len ? x->len : y->len;
        int k = memcmp(x->s, y->s, m);
        *res = k ? (k > 0 ? 1 : -1) : (x->len > y->len) - (x->len < y->len);
        return true;
    }
    if (a.t == VT_LIST && b.t == VT_LIST && LIST(a)->tuple == LIST(b)->tuple) {
        jlist *x = LIST(a), *y = LIST(b);
        for (size_t i = 0; i < x->n && i < y->n; i++)
            if (!v_eq(&x->v[i], &y->v[i], 0)) return v_cmp(r, at, x->v[i], y->v[i], op, res, depth + 1);
        *res = (x->n > y->n) - (x->n < y->n);
        return true;
    }
    return failf(r, at, "'%s' not supported between instances of '%s' and '%s'", op_text[op], type_name(a), type_name(b));
}

/* a in b */
static bool v_in(R *r, const node *at, val a, val b, bool *res)
{
    switch (b.t) {
    case VT_UNDEF: *res = false; return true;
    case VT_STR:
        if (a.t != VT_STR) return failf(r, at, "'in <string>' requires string as left operand, not %s", type_name(a));
        *res = STR(a)->len == 0 || memmem(STR(b)->s, STR(b)->len, STR(a)->s, STR(a)->len) != NULL;
        return work(r, at, STR(b)->len);
    case VT_LIST:
        *res = false;
        for (size_t i = 0; i < LIST(b)->n && !*res; i++) *res = v_eq(&a, &LIST(b)->v[i], 0);
        return work(r, at, LIST(b)->n);
    case VT_DICT:
        *res = dict_find(DICT(b), &a) != NULL;
        return work(r, at, DICT(b)->n);
    default:
        return failf(r, at, "argument of type '%s' is not iterable", type_name(b));
    }
}

/* ---- arithmetic ---- */

static bool py_floordiv_mod(double x, double y, double *div, double *mod)
{
    double m = fmod(x, y), d = (x - m) / y;
    if (m != 0) {
        if ((y < 0) != (m < 0)) { m += y; d -= 1.0; }
    } else {
        m = copysign(0.0, y);
    }
    if (d != 0) {
        double f = floor(d);
        if (d - f > 0.5) f += 1.0;
        d = f;
    } else {
        d = copysign(0.0, x / y);
    }
    *div = d;
    *mod = m;
    return true;
}

static bool py_format(R *r, const node *at, val fmt, val args, val *out);

static bool repeat(R *r, const node *at, val seq, int64_t times, val *out)
{
    if (times < 0) times = 0;
    if (seq.t == VT_STR) {
        size_t n = STR(seq)->len;
        if (n && (uint64_t)times > r->max_out / n) return size_ok(r, at, SIZE_MAX);
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        for (int64_t i = 0; i < times; i++) fc_str_putn(&b, STR(seq)->s, n);
        return sb_val(r, at, &b, out);
    }
    jlist *l = LIST(seq);
    if (l->n && (uint64_t)times > MAX_ITEMS / l->n) return failf(r, at, "list longer than %u items", MAX_ITEMS);
    jlist *o = list_new(r, l->n * (size_t)times, l->tuple);
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < l->n; j++) list_push(r, o, incref(l->v[j]));
    *out = mk_obj(VT_LIST, o);
    return work(r, at, o->n * 8);
}

static bool binop(R *r, const node *at, int op, val a, val b, val *out)
{
    if (op == O_MOD && a.t == VT_STR) return py_format(r, at, a, b, out);
    if (a.t == VT_UNDEF) return fail_undef(r, at, a);
    if (b.t == VT_UNDEF) return fail_undef(r, at, b);
    if (is_num(a) && is_num(b)) {
        bool ints = a.t != VT_FLOAT && b.t != VT_FLOAT;
        int64_t x = ints ? int_of(a) : 0, y = ints ? int_of(b) : 0, z;
        double fx = num_of(a), fy = num_of(b);
        switch (op) {
        case O_ADD:
            if (!ints) { *out = mk_float(fx + fy); return true; }
            if (__builtin_add_overflow(x, y, &z)) break;
            *out = mk_int(z);
            return true;
        case O_SUB:
            if (!ints) { *out = mk_float(fx - fy); return true; }
            if (__builtin_sub_overflow(x, y, &z)) break;
            *out = mk_int(z);
            return true;
        case O_MUL:
            if (!ints) { *out = mk_float(fx * fy); return true; }
            if (__builtin_mul_overflow(x, y, &z)) break;
            *out = mk_int(z);
            return true;
        case O_DIV:
            if (fy == 0) return failf(r, at, "division by zero");
            *out = mk_float(ints ? (double)x / (double)y : fx / fy);
            return true;
        case O_FDIV: case O_MOD:
            if (ints) {
                if (y == 0) return failf(r, at, op == O_MOD ? "integer modulo by zero" : "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) { if (op == O_MOD) { *out = mk_int(0); return true; } break; }
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
                *out = mk_int(op == O_FDIV ? q : m);
                return true;
            } else {
                if (fy == 0) return failf(r, at, op == O_MOD ? "float modulo" : "float floor division by zero");
                double d, m;
                py_floordiv_mod(fx, fy, &d, &m);
                *out = mk_float(op == O_FDIV ? d : m);
                return true;
            }
        case O_POW:
            if (ints && y >= 0) {
                int64_t acc = 1, base = x;
                for (int64_t e = y; e; e >>= 1) {
                    if ((e & 1) && __builtin_mul_overflow(acc, base, &acc)) goto overflow;
                    if (e > 1 && __builtin_mul_overflow(base, base, &base)) goto overflow;
                }
                *out = mk_int(acc);
                return true;
            }
            if (fx == 0 && fy < 0) return failf(r, at, "0.0 cannot be raised to a negative power");
            *out = mk_float(pow(fx, fy));
            return true;
        default: break;
        }
    overflow:
        return failf(r, at, "integer overflow (FastChat-C integers are 64-bit)");
    }
    if (op == O_ADD && a.t == VT_STR && b.t == VT_STR) {
        size_t n = STR(a)->len + STR(b)->len;
        if (!size_ok(r, at, n) || !work(r, at, n)) return false;
        fc_str bb = { 0 };
        fc_str_putn(&bb, STR(a)->s, STR(a)->len);
        fc_str_putn(&bb, STR(b)->s, STR(b)->len);
        return sb_val(r, at, &bb, out);
    }
    if (op == O_ADD && a.t == VT_LIST && b.t == VT_LIST && LIST(a)->tuple == LIST(b)->tuple) {
        jlist *x = LIST(a), *y = LIST(b);
        if (x->n + y->n > MAX_ITEMS) return failf(r, at, "list longer than %u items", MAX_ITEMS);
        jlist *l = list_new(r, x->n + y->n, x->tuple);
        for (size_t i = 0; i < x->n; i++) list_push(r, l, incref(x->v[i]));
        for (size_t i = 0; i < y->n; i++) list_push(r, l, incref(y->v[i]));
        *out = mk_obj(VT_LIST, l);
        return work(r, at, l->n * 8);
    }
    if (op == O_MUL && (a.t == VT_STR || a.t == VT_LIST) && is_intlike(b)) return repeat(r, at, a, int_of(b), out);
    if (op == O_MUL && (b.t == VT_STR || b.t == VT_LIST) && is_intlike(a)) return repeat(r, at, b, int_of(a), out);
    return failf(r, at, "unsupported operand type(s) for %s: '%s' and '%s'", op_text[op], type_name(a), type_name(b));
}

/* ---- attribute and item access (jinja2.sandbox getattr / getitem) ---- */

enum fid {
    F_NONE, F_MACRO, F_RANGE, F_DICT, F_NAMESPACE, F_RAISE, F_STRFTIME,
    /* str */
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES, M_STARTSWITH, M_ENDSWITH, M_UPPER, M_LOWER,
    M_TITLE, M_CAPITALIZE, M_SWAPCASE, M_CASEFOLD, M_REPLACE, M_FIND, M_RFIND, M_INDEX, M_RINDEX, M_COUNT, M_JOIN,
    M_FORMAT, M_ISDIGIT, M_ISDECIMAL, M_ISNUMERIC, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISUPPER, M_ISLOWER,
    M_ISTITLE, M_CENTER, M_LJUST, M_RJUST, M_ZFILL, M_REMOVEPREFIX, M_REMOVESUFFIX, M_PARTITION, M_RPARTITION,
    /* dict */
    M_ITEMS, M_KEYS, M_VALUES, M_GET, M_DCOPY,
    /* list */
    M_LINDEX, M_LCOUNT, M_LCOPY,
    /* loop */
    M_CYCLE,
};

static const struct mdef { const char *name; uint8_t on, id; } methods[] = {
    { "strip", VT_STR, M_STRIP }, { "lstrip", VT_STR, M_LSTRIP }, { "rstrip", VT_STR, M_RSTRIP },
    { "split", VT_STR, M_SPLIT }, { "rsplit", VT_STR, M_RSPLIT }, { "splitlines", VT_STR, M_SPLITLINES },
    { "startswith", VT_STR, M_STARTSWITH }, { "endswith", VT_STR, M_ENDSWITH }, { "upper", VT_STR, M_UPPER },
    { "lower", VT_STR, M_LOWER }, { "title", VT_STR, M_TITLE }, { "capitalize", VT_STR, M_CAPITALIZE },
    { "swapcase", VT_STR, M_SWAPCASE }, { "casefold", VT_STR, M_CASEFOLD }, { "replace", VT_STR, M_REPLACE },
    { "find", VT_STR, M_FIND }, { "rfind", VT_STR, M_RFIND }, { "index", VT_STR, M_INDEX },
    { "rindex", VT_STR, M_RINDEX }, { "count", VT_STR, M_COUNT }, { "join", VT_STR, M_JOIN },
    { "format", VT_STR, M_FORMAT }, { "isdigit", VT_STR, M_ISDIGIT }, { "isdecimal", VT_STR, M_ISDECIMAL },
    { "isnumeric", VT_STR, M_ISNUMERIC }, { "isalpha", VT_STR, M_ISALPHA }, { "isalnum", VT_STR, M_ISALNUM },
    { "isspace", VT_STR, M_ISSPACE }, { "isupper", VT_STR, M_ISUPPER }, { "islower", VT_STR, M_ISLOWER },
    { "istitle", VT_STR, M_ISTITLE }, { "center", VT_STR, M_CENTER }, { "ljust", VT_STR, M_LJUST },
    { "rjust", VT_STR, M_RJUST }, { "zfill", VT_STR, M_ZFILL }, { "removeprefix", VT_STR, M_REMOVEPREFIX },
    { "removesuffix", VT_STR, M_REMOVESUFFIX }, { "partition", VT_STR, M_PARTITION },
    { "rpartition", VT_STR, M_RPARTITION },
    { "items", VT_DICT, M_ITEMS }, { "keys", VT_DICT, M_KEYS }, { "values", VT_DICT, M_VALUES },
    { "get", VT_DICT, M_GET }, { "copy", VT_DICT, M_DCOPY },
    { "index", VT_LIST, M_LINDEX }, { "count", VT_LIST, M_LCOUNT }, { "copy", VT_LIST, M_LCOPY },
};

/* Methods that mutate: ImmutableSandboxedEnvironment refuses them. */
static bool unsafe_method(int t, const char *name)
{
    static const char *const l[] = { "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear" };
    static const char *const d[] = { "pop", "popitem", "setdefault", "update", "clear" };
    if (t == VT_LIST) { for (size_t i = 0; i < 8; i++) if (!strcmp(name, l[i])) return true; }
    if (t == VT_DICT) { for (size_t i = 0; i < 5; i++) if (!strcmp(name, d[i])) return true; }
    return false;
}

/* jinja2.utils.object_type_repr */
static const char *obj_type_repr(val v, char *buf, size_t cap)
{
    if (v.t == VT_NONE) return "None";
    snprintf(buf, cap, "%s object", type_name(v));
    return buf;
}

static bool get_attr(R *r, const node *at, val o, const char *name, size_t n, val *out)
{
    char tb[64];
    if (o.t == VT_UNDEF) {
        /* Undefined's own dunder attributes exist, and the sandbox hides them */
        if (n >= 2 && name[0] == '_' && name[1] == '_') { *out = mk_undef(); return true; }
        return fail_undef(r, at, o);
    }
    if (o.t == VT_STR || o.t == VT_LIST || o.t == VT_DICT) {
        int t = o.t == VT_LIST && LIST(o)->tuple ? -1 : o.t; /* tuples have index/count but no copy */
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
            if ((methods[i].on == o.t) && strlen(methods[i].name) == n && !memcmp(methods[i].name, name, n) &&
                !(t == -1 && methods[i].id == M_LCOPY)) {
                *out = func_new(r, methods[i].id, incref(o), NULL);
                return true;
            }
        if (t != -1 && strlen(name) == n && unsafe_method(o.t, name)) {
            *out = mk_undef_hint(r, "access to attribute '%s' of '%s' object is unsafe.", name, type_name(o));
            return true;
        }
    }
    if (o.t == VT_LOOP) {
        jloop *L = LOOP(o);
        size_t i = L->i, len = L->items->n;
#define IS(s) (n == strlen(s) && !memcmp(name, s, n))
        if (IS("index")) { *out = mk_int((int64_t)i + 1); return true; }
        if (IS("index0")) { *out = mk_int((int64_t)i); return true; }
        if (IS("revindex")) { *out = mk_int((int64_t)(len - i)); return true; }
        if (IS("revindex0")) { *out = mk_int((int64_t)(len - i - 1)); return true; }
        if (IS("first")) { *out = mk_bool(i == 0); return true; }
        if (IS("last")) { *out = mk_bool(i + 1 == len); return true; }
        if (IS("length")) { *out = mk_int((int64_t)len); return true; }
        if (IS("depth")) { *out = mk_int(1); return true; }
        if (IS("depth0")) { *out = mk_int(0); return true; }
        if (IS("previtem")) {
            *out = i > 0 ? incref(L->items->v[i - 1]) : mk_undef_hint(r, "there is no previous item");
            return true;
        }
        if (IS("nextitem")) {
            *out = i + 1 < len ? incref(L->items->v[i + 1]) : mk_undef_hint(r, "there is no next item");
            return true;
        }
        if (IS("cycle")) { *out = func_new(r, M_CYCLE, incref(o), NULL); return true; }
#undef IS
    }
    if (o.t == VT_DICT || o.t == VT_NS) {
        val *v = dict_find_str(DICT(o), name, n);
        if (v) { *out = incref(*v); return true; }
    }
    *out = mk_undef_hint(r, "'%s' has no attribute '%.*s'", obj_type_repr(o, tb, sizeof tb), (int)(n > 200 ? 200 : n), name);
    return true;
}

/* Byte offset of code point `idx` of s (idx <= its length). */
static size_t cp_offset(const char *s, size_t n, size_t idx)
{
    size_t i = 0, a;
    for (size_t k = 0; k < idx && i < n; k++, i += a) u8dec(s + i, n - i, &a);
    return i;
}

static bool get_item(R *r, const node *at, val o, val key, val *out)
{
    char tb[64];
    if (o.t == VT_UNDEF) return fail_undef(r, at, o);
    if ((o.t == VT_LIST || o.t == VT_STR) && is_intlike(key)) {
        int64_t i = int_of(key);
        size_t len = o.t == VT_LIST ? LIST(o)->n : u8len(STR(o)->s, STR(o)->len);
        if (o.t == VT_STR && !work(r, at, STR(o)->len)) return false;
        if (i < 0) i += (int64_t)len;
        if (i >= 0 && (uint64_t)i < len) {
            if (o.t == VT_LIST) { *out = incref(LIST(o)->v[i]); return true; }
            size_t b = cp_offset(STR(o)->s, STR(o)->len, (size_t)i), a;
            u8dec(STR(o)->s + b, STR(o)->len - b, &a);
            *out = vstr(r, STR(o)->s + b, a);
            return true;
        }
    } else if (o.t == VT_DICT) {
        val *v = dict_find(DICT(o), &key);
        if (v) { *out = incref(*v); return true; }
    }
    if (key.t == VT_STR) return get_attr(r, at, o, STR(key)->s, STR(key)->len, out);
    fc_str b = { 0 };
    if (!py_repr(r, at, &b, key, 0)) { fc_str_free(&b); return false; }
    *out = mk_undef_hint(r, "%s has no element %.200s", obj_type_repr(o, tb, sizeof tb), b.p);
    fc_str_free(&b);
    return true;
}

static bool slice_index(R *r, const node *at, val v, bool *given, int64_t *out)
{
    *given = false;
    if (v.t == VT_NOARG || v.t == VT_NONE) return true;
    if (!is_intlike(v)) {
        if (v.t == VT_UNDEF) return fail_undef(r, at, v);
        return failf(r, at, "slice indices must be integers or None or have an __index__ method");
    }
    *given = true;
    *out = int_of(v);
    return true;
}

static int64_t adjust(bool given, int64_t i, int64_t len, int64_t step, bool is_start)
{
    if (!given) return is_start ? (step < 0 ? len - 1 : 0) : (step < 0 ? -1 : len);
    if (i < 0) {
        i += len;
        if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= len) {
        i = step < 0 ? len - 1 : len;
    }
    return i;
}

static bool get_slice(R *r, const node *at, val o, val vstart, val vstop, val vstep, val *out)
{
    if (o.t == VT_UNDEF) return fail_undef(r, at, o);
    bool gs, ge, gp;
    int64_t start = 0, stop = 0, stp = 1;
    if (!slice_index(r, at, vstart, &gs, &start) || !slice_index(r, at, vstop, &ge, &stop) ||
        !slice_index(r, at, vstep, &gp, &stp))
        return false;
    if (!gp) stp = 1;
    if (stp == 0) return failf(r, at, "slice step cannot be zero");
    if (stp == INT64_MIN) stp = -INT64_MAX;
    if (o.t != VT_STR && o.t != VT_LIST) {
        char tb[64];
        *out = mk_undef_hint(r, "%s has no element slice", obj_type_repr(o, tb, sizeof tb));
        return true;
    }
    size_t *offs = NULL;
    int64_t len;
    if (o.t == VT_STR) {
        jstr *s = STR(o);
        if (!work(r, at, s->len)) return false;
        offs = fc_xmalloc((s->len + 1) * sizeof(size_t));
        size_t k = 0, a;
        for (size_t i = 0; i < s->len; i += a) { offs[k++] = i; u8dec(s->s + i, s->len - i, &a); }
        offs[k] = s->len;
        len = (int64_t)k;
    } else {
        len = (int64_t)LIST(o)->n;
    }
    start = adjust(gs, start, len, stp, true);
    stop = adjust(ge, stop, len, stp, false);
    uint64_t count = 0;
    if (stp > 0 && stop > start) count = (uint64_t)(stop - start - 1) / (uint64_t)stp + 1;
    if (stp < 0 && start > stop) count = (uint64_t)(start - stop - 1) / (uint64_t)(-stp) + 1;
    if (o.t == VT_STR) {
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        int64_t i = start;
        for (uint64_t k = 0; k < count; k++, i += stp) fc_str_putn(&b, STR(o)->s + offs[i], offs[i + 1] - offs[i]);
        free(offs);
        return sb_val(r, at, &b, out);
    }
    jlist *l = list_new(r, (size_t)count, LIST(o)->tuple);
    int64_t i = start;
    for (uint64_t k = 0; k < count; k++, i += stp) list_push(r, l, incref(LIST(o)->v[i]));
    *out = mk_obj(VT_LIST, l);
    return work(r, at, (size_t)count);
}

/* ---- call arguments ---- */

typedef struct cargs {
    val *pos;
    int npos;
    const char *const *kwn;
    val *kwv;
    int nkw;
} cargs;

/* Binds arguments to parameter slots by position, then by keyword. Slots
 * are borrowed; unfilled ones are VT_NOARG. */
static bool bind(R *r, const node *at, const char *fname, const cargs *a, int n, const char *const *names, val *slots)
{
    for (int i = 0; i < n; i++) slots[i] = mk_noarg();
    if (a->npos > n) return failf(r, at, "%s() takes at most %d argument(s) (%d given)", fname, n, a->npos);
    for (int i = 0; i < a->npos; i++) slots[i] = a->pos[i];
    for (int k = 0; k < a->nkw; k++) {
        int j = 0;
        while (j < n && strcmp(names[j], a->kwn[k])) j++;
        if (j == n) return failf(r, at, "%s() got an unexpected keyword argument '%s'", fname, a->kwn[k]);
        if (slots[j].t != VT_NOARG) return failf(r, at, "%s() got multiple values for argument '%s'", fname, a->kwn[k]);
        slots[j] = a->kwv[k];
    }
    return true;
}

static bool given(val v) { return v.t != VT_NOARG; }

static bool arg_int(R *r, const node *at, const char *what, val v, int64_t dflt, int64_t *out)
{
    if (!given(v)) { *out = dflt; return true; }
    if (!is_intlike(v)) return failf(r, at, "%s: an integer is required, not '%s'", what, type_name(v));
    *out = int_of(v);
    return true;
}

static bool arg_str(R *r, const node *at, const char *what, val v, jstr **out)
{
    if (v.t != VT_STR) return failf(r, at, "%s: expected a string, not '%s'", what, type_name(v));
    *out = STR(v);
    return true;
}

/* The items an iterable yields, as a list (new reference): lists and tuples
 * as they are, dict keys, the characters of a string; Undefined is empty. */
static bool iter_list(R *r, const node *at, val v, jlist **out)
{
    switch (v.t) {
    case VT_LIST: *out = LIST(incref(v)); return true;
    case VT_UNDEF: *out = list_new(r, 0, false); return true;
    case VT_DICT: {
        jdict *d = DICT(v);
        jlist *l = list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) list_push(r, l, incref(d->k[i]));
        *out = l;
        return work(r, at, d->n);
    }
    case VT_STR: {
        jstr *s = STR(v);
        if (!work(r, at, s->len * 4)) return false;
        if (s->len > MAX_ITEMS && u8len(s->s, s->len) > MAX_ITEMS) return failf(r, at, "string too long to iterate");
        jlist *l = list_new(r, 0, false);
        for (size_t i = 0, a; i < s->len; i += a) {
            u8dec(s->s + i, s->len - i, &a);
            list_push(r, l, vstr(r, s->s + i, a));
        }
        *out = l;
        return true;
    }
    default:
        return failf(r, at, "'%s' object is not iterable", type_name(v));
    }
}

/* ---- str methods ---- */

typedef struct cpset { int32_t *cp; size_t n; } cpset;

static bool in_set(const cpset *s, int32_t c)
{
    if (!s) return py_space(c);
    for (size_t i = 0; i < s->n; i++)
        if (s->cp[i] == c) return true;
    return false;
}

/* str.strip/lstrip/rstrip(chars): which 1 = left, 2 = right, 3 = both. */
static bool s_strip(R *r, const node *at, jstr *s, val chars, int which, val *out)
{
    cpset set = { 0 }, *sp = NULL;
    if (chars.t == VT_STR) {
        jstr *c = STR(chars);
        set.cp = fc_xmalloc((c->len + 1) * sizeof(int32_t));
        for (size_t i = 0, a; i < c->len; i += a) set.cp[set.n++] = u8dec(c->s + i, c->len - i, &a);
        sp = &set;
    } else if (given(chars) && chars.t != VT_NONE) {
        return failf(r, at, "strip arg must be None or str");
    }
    size_t a = 0, e = s->len, k;
    if (which & 1)
        while (a < e) {
            int32_t c = u8dec(s->s + a, e - a, &k);
            if (!in_set(sp, c)) break;
            a += k;
        }
    if (which & 2)
        while (e > a) {
            size_t b = e - 1;
            while (b > a && e - b < 4 && ((unsigned char)s->s[b] & 0xc0) == 0x80) b--;
            int32_t c = u8dec(s->s + b, e - b, &k);
            if (k != e - b) { b = e - 1; c = u8dec(s->s + b, 1, &k); }
            if (!in_set(sp, c)) break;
            e = b;
        }
    free(set.cp);
    if (!work(r, at, s->len)) return false;
    *out = vstr(r, s->s + a, e - a);
    return true;
}

static bool s_split(R *r, const node *at, jstr *s, val sepv, int64_t maxsplit, bool from_right, val *out)
{
    if (!work(r, at, s->len * 2)) return false;
    jlist *l = list_new(r, 0, false);
    const char *p = s->s;
    size_t n = s->len;
    if (sepv.t == VT_NOARG || sepv.t == VT_NONE) {
        if (!from_right) {
            size_t i = 0, k;
            for (;;) {
                while (i < n && (k = ws_at(p, i, n))) i += k;
                if (i >= n) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) { list_push(r, l, vstr(r, p + i, n - i)); break; }
                if (l->n >= MAX_ITEMS) { decref(r, mk_obj(VT_LIST, l)); return failf(r, at, "list too long"); }
                size_t a = i;
                while (i < n && !ws_at(p, i, n)) i++;
                list_push(r, l, vstr(r, p + a, i - a));
            }
        } else {
            size_t e = n;
            for (;;) {
                e = rstrip_ws(p, 0, e);
                if (e == 0) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) { list_push(r, l, vstr(r, p, e)); break; }
                if (l->n >= MAX_ITEMS) { decref(r, mk_obj(VT_LIST, l)); return failf(r, at, "list too long"); }
                size_t w = e;
                while (w > 0) {
                    size_t b = w - 1;
                    while (b > 0 && w - b < 4 && ((unsigned char)p[b] & 0xc0) == 0x80) b--;
                    if (ws_at(p, b, w) == w - b) break;
                    w = b;
                }
                list_push(r, l, vstr(r, p + w, e - w));
                e = w;
            }
            for (size_t i = 0; i < l->n / 2; i++) { val t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
        }
        *out = mk_obj(VT_LIST, l);
        return true;
    }
    jstr *sep = NULL;
    if (!arg_str(r, at, "split", sepv, &sep)) { decref(r, mk_obj(VT_LIST, l)); return false; }
    if (!sep->len) { decref(r, mk_obj(VT_LIST, l)); return failf(r, at, "empty separator"); }
    if (!from_right) {
        size_t i = 0;
        for (;;) {
            const char *f = maxsplit >= 0 && (int64_t)l->n == maxsplit ? NULL : memmem(p + i, n - i, sep->s, sep->len);
            if (!f) { list_push(r, l, vstr(r, p + i, n - i)); break; }
            list_push(r, l, vstr(r, p + i, (size_t)(f - (p + i))));
            i = (size_t)(f - p) + sep->len;
            if (l->n >= MAX_ITEMS) { decref(r, mk_obj(VT_LIST, l)); return failf(r, at, "list too long"); }
        }
    } else {
        size_t e = n;
        for (;;) {
            const char *f = NULL;
            if (!(maxsplit >= 0 && (int64_t)l->n == maxsplit) && e >= sep->len)
                for (size_t j = e - sep->len + 1; j-- > 0;)
                    if (!memcmp(p + j, sep->s, sep->len)) { f = p + j; break; }
            if (!f) { list_push(r, l, vstr(r, p, e)); break; }
            size_t j = (size_t)(f - p);
            list_push(r, l, vstr(r, p + j + sep->len, e - j - sep->len));
            e = j;
            if (l->n >= MAX_ITEMS) { decref(r, mk_obj(VT_LIST, l)); return failf(r, at, "list too long"); }
        }
        for (size_t i = 0; i < l->n / 2; i++) { val t = l->v[i]; l->v[i] = l->v[l->n - 1 - i]; l->v[l->n - 1 - i] = t; }
    }
    *out = mk_obj(VT_LIST, l);
    return true;
}

enum { CASE_UPPER, CASE_LOWER, CASE_SWAP, CASE_TITLE, CASE_CAPITALIZE, CASE_JINJA_TITLE };

static bool s_case(R *r, const node *at, jstr *s, int mode, val *out)
{
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    bool prev_cased = false, first = true, word_start = true;
    for (size_t i = 0, a; i < s->len; i += a) {
        int32_t c = u8dec(s->s + i, s->len - i, &a), o = c;
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
            bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_space(c);
            o = sep ? c : word_start ? utf8proc_toupper(c) : utf8proc_tolower(c);
            word_start = sep;
            break;
        }
        }
        first = false;
        u8put(&b, o);
    }
    return sb_val(r, at, &b, out);
}

static bool s_replace(R *r, const node *at, jstr *s, jstr *old, jstr *rep, int64_t count, val *out)
{
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    int64_t done = 0;
    if (!old->len) {
        for (size_t i = 0, a = 0;; i += a) {
            if (count < 0 || done < count) { fc_str_putn(&b, rep->s, rep->len); done++; }
            if (i >= s->len) break;
            u8dec(s->s + i, s->len - i, &a);
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
    return sb_val(r, at, &b, out);
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
    return f ? (int64_t)u8len(s->s, (size_t)(f - s->s)) : -1;
}

static bool s_pad(R *r, const node *at, jstr *s, val width, val fill, int how, val *out)
{
    int64_t w = 0;
    if (!arg_int(r, at, "width", width, 0, &w)) return false;
    int32_t fc = ' ';
    if (given(fill)) {
        jstr *f = NULL;
        if (!arg_str(r, at, "fillchar", fill, &f)) return false;
        size_t a;
        if (u8len(f->s, f->len) != 1) return failf(r, at, "The fill character must be exactly one character long");
        fc = u8dec(f->s, f->len, &a);
    }
    int64_t len = (int64_t)u8len(s->s, s->len);
    if (w > (int64_t)r->max_out) return size_ok(r, at, r->max_out + 1);
    if (w <= len) { *out = incref(mk_obj(VT_STR, s)); return true; }
    int64_t marg = w - len, left;
    if (how == 0) left = marg / 2 + (marg & w & 1);  /* center, as CPython pads */
    else if (how == 1) left = 0;                     /* ljust */
    else left = marg;                                /* rjust */
    fc_str b = { 0 };
    for (int64_t i = 0; i < left; i++) u8put(&b, fc);
    fc_str_putn(&b, s->s, s->len);
    for (int64_t i = 0; i < marg - left; i++) u8put(&b, fc);
    return sb_val(r, at, &b, out);
}

static bool s_is(jstr *s, int id)
{
    if (!s->len) return false;
    bool any_cased = false, prev_cased = false;
    for (size_t i = 0, a; i < s->len; i += a) {
        int32_t c = u8dec(s->s + i, s->len - i, &a);
        switch (id) {
        case M_ISDIGIT: if (!cp_digit(c)) return false; break;
        case M_ISDECIMAL: if (!cp_decimal(c)) return false; break;
        case M_ISNUMERIC: if (!cp_numeric(c)) return false; break;
        case M_ISALPHA: if (!cp_alpha(c)) return false; break;
        case M_ISALNUM: if (!cp_alpha(c) && !cp_numeric(c)) return false; break;
        case M_ISSPACE: if (!py_space(c)) return false; break;
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

static bool call_str_method(R *r, const node *at, int id, jstr *s, const cargs *a, val *out)
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
        if (!bind(r, at, "strip", a, 1, p_chars, sl)) return false;
        return s_strip(r, at, s, sl[0], id == M_STRIP ? 3 : id == M_LSTRIP ? 1 : 2, out);
    case M_SPLIT: case M_RSPLIT: {
        int64_t maxsplit = 0;
        if (!bind(r, at, "split", a, 2, p_split, sl) || !arg_int(r, at, "maxsplit", sl[1], -1, &maxsplit)) return false;
        return s_split(r, at, s, sl[0], maxsplit, id == M_RSPLIT, out);
    }
    case M_SPLITLINES: {
        if (!bind(r, at, "splitlines", a, 1, p_keep, sl)) return false;
        bool keep = given(sl[0]) && truthy(sl[0]);
        jlist *l = list_new(r, 0, false);
        size_t i = 0, start = 0, k;
        while (i < s->len) {
            int32_t c = u8dec(s->s + i, s->len - i, &k);
            if (!py_linebreak(c)) { i += k; continue; }
            size_t e = i;
            i += k;
            if (c == '\r' && i < s->len && s->s[i] == '\n') i++;
            list_push(r, l, vstr(r, s->s + start, (keep ? i : e) - start));
            start = i;
            if (l->n >= MAX_ITEMS) { decref(r, mk_obj(VT_LIST, l)); return failf(r, at, "list too long"); }
        }
        if (start < s->len) list_push(r, l, vstr(r, s->s + start, s->len - start));
        *out = mk_obj(VT_LIST, l);
        return work(r, at, s->len);
    }
    case M_STARTSWITH: case M_ENDSWITH: {
        if (!bind(r, at, id == M_STARTSWITH ? "startswith" : "endswith", a, 3, p_fix, sl)) return false;
        if (given(sl[1]) || given(sl[2])) return failf(r, at, "startswith/endswith with start or end is not supported");
        const val *cands = &sl[0];
        size_t nc = 1;
        if (sl[0].t == VT_LIST && LIST(sl[0])->tuple) { cands = LIST(sl[0])->v; nc = LIST(sl[0])->n; }
        *out = mk_bool(false);
        for (size_t i = 0; i < nc; i++) {
            jstr *x = NULL;
            if (!arg_str(r, at, id == M_STARTSWITH ? "startswith" : "endswith", cands[i], &x)) return false;
            if (x->len <= s->len && !memcmp(id == M_STARTSWITH ? s->s : s->s + s->len - x->len, x->s, x->len)) *out = mk_bool(true);
        }
        return true;
    }
    case M_UPPER: case M_LOWER: case M_CASEFOLD: case M_TITLE: case M_CAPITALIZE: case M_SWAPCASE:
        if (!bind(r, at, "str method", a, 0, NULL, sl)) return false;
        return s_case(r, at, s, id == M_UPPER ? CASE_UPPER : id == M_TITLE ? CASE_TITLE : id == M_CAPITALIZE ? CASE_CAPITALIZE
                                : id == M_SWAPCASE ? CASE_SWAP : CASE_LOWER, out);
    case M_REPLACE: {
        jstr *o = NULL, *n = NULL;
        int64_t count = 0;
        if (!bind(r, at, "replace", a, 3, p_rep, sl) || !arg_str(r, at, "replace", sl[0], &o) ||
            !arg_str(r, at, "replace", sl[1], &n) || !arg_int(r, at, "count", sl[2], -1, &count))
            return false;
        return s_replace(r, at, s, o, n, count, out);
    }
    case M_FIND: case M_RFIND: case M_INDEX: case M_RINDEX: case M_COUNT: {
        jstr *sub = NULL;
        if (!bind(r, at, "find", a, 3, p_sub, sl) || !arg_str(r, at, "find", sl[0], &sub)) return false;
        if (given(sl[1]) || given(sl[2])) return failf(r, at, "find/index/count with start or end is not supported");
        if (!work(r, at, s->len)) return false;
        if (id == M_COUNT) {
            int64_t c = 0;
            if (!sub->len) c = (int64_t)u8len(s->s, s->len) + 1;
            else
                for (const char *p = s->s, *f; (f = memmem(p, s->len - (size_t)(p - s->s), sub->s, sub->len)); p = f + sub->len) c++;
            *out = mk_int(c);
            return true;
        }
        int64_t i = s_find(s, sub, id == M_RFIND || id == M_RINDEX);
        if (i < 0 && (id == M_INDEX || id == M_RINDEX)) return failf(r, at, "substring not found");
        *out = mk_int(i);
        return true;
    }
    case M_JOIN: {
        if (!bind(r, at, "join", a, 1, p_one, sl)) return false;
        if (!given(sl[0])) return failf(r, at, "join() takes exactly one argument (0 given)");
        jlist *l;
        if (!iter_list(r, at, sl[0], &l)) return false;
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != VT_STR) {
                failf(r, at, "sequence item %zu: expected str instance, %s found", i, type_name(l->v[i]));
                fc_str_free(&b);
                decref(r, mk_obj(VT_LIST, l));
                return false;
            }
            if (i) fc_str_putn(&b, s->s, s->len);
            fc_str_putn(&b, STR(l->v[i])->s, STR(l->v[i])->len);
            if (b.len > r->max_out) break;
        }
        decref(r, mk_obj(VT_LIST, l));
        return sb_val(r, at, &b, out);
    }
    case M_FORMAT: return str_format_method(r, at, s, a, out);
    case M_ISDIGIT: case M_ISDECIMAL: case M_ISNUMERIC: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE:
    case M_ISUPPER: case M_ISLOWER: case M_ISTITLE:
        if (!bind(r, at, "str method", a, 0, NULL, sl)) return false;
        *out = mk_bool(s_is(s, id));
        return work(r, at, s->len);
    case M_CENTER: case M_LJUST: case M_RJUST:
        if (!bind(r, at, "pad", a, 2, p_pad, sl)) return false;
        if (!given(sl[0])) return failf(r, at, "missing width");
        return s_pad(r, at, s, sl[0], sl[1], id == M_CENTER ? 0 : id == M_LJUST ? 1 : 2, out);
    case M_ZFILL: {
        int64_t w = 0;
        if (!bind(r, at, "zfill", a, 1, p_pad, sl) || !arg_int(r, at, "width", sl[0], 0, &w)) return false;
        int64_t len = (int64_t)u8len(s->s, s->len);
        if (w > (int64_t)r->max_out) return size_ok(r, at, r->max_out + 1);
        if (w <= len) { *out = incref(mk_obj(VT_STR, s)); return true; }
        fc_str b = { 0 };
        size_t i = 0;
        if (s->len && (s->s[0] == '+' || s->s[0] == '-')) fc_str_putc(&b, s->s[i++]);
        for (int64_t k = 0; k < w - len; k++) fc_str_putc(&b, '0');
        fc_str_putn(&b, s->s + i, s->len - i);
        return sb_val(r, at, &b, out);
    }
    case M_REMOVEPREFIX: case M_REMOVESUFFIX: {
        jstr *x = NULL;
        if (!bind(r, at, "removeprefix", a, 1, p_fix, sl) || !arg_str(r, at, "removeprefix", sl[0], &x)) return false;
        bool pre = id == M_REMOVEPREFIX;
        if (x->len <= s->len && !memcmp(pre ? s->s : s->s + s->len - x->len, x->s, x->len))
            *out = vstr(r, pre ? s->s + x->len : s->s, s->len - x->len);
        else
            *out = incref(mk_obj(VT_STR, s));
        return true;
    }
    case M_PARTITION: case M_RPARTITION: {
        jstr *sep = NULL;
        if (!bind(r, at, "partition", a, 1, p_fix, sl) || !arg_str(r, at, "partition", sl[0], &sep)) return false;
        if (!sep->len) return failf(r, at, "empty separator");
        const char *f = NULL;
        if (id == M_PARTITION) f = memmem(s->s, s->len, sep->s, sep->len);
        else if (sep->len <= s->len)
            for (size_t j = s->len - sep->len + 1; j-- > 0;)
                if (!memcmp(s->s + j, sep->s, sep->len)) { f = s->s + j; break; }
        jlist *l = list_new(r, 3, true);
        if (!f) {
            list_push(r, l, id == M_PARTITION ? incref(mk_obj(VT_STR, s)) : vstr(r, "", 0));
            list_push(r, l, vstr(r, "", 0));
            list_push(r, l, id == M_PARTITION ? vstr(r, "", 0) : incref(mk_obj(VT_STR, s)));
        } else {
            size_t j = (size_t)(f - s->s);
            list_push(r, l, vstr(r, s->s, j));
            list_push(r, l, incref(mk_obj(VT_STR, sep)));
            list_push(r, l, vstr(r, s->s + j + sep->len, s->len - j - sep->len));
        }
        *out = mk_obj(VT_LIST, l);
        return true;
    }
    default: return failf(r, at, "internal error: unknown str method");
    }
}

/* ---- str % args (printf-style formatting) ---- */

static void pad_to(fc_str *b, const char *s, size_t n, int64_t width, bool left, char fill)
{
    int64_t len = (int64_t)u8len(s, n);
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
    if (width > 4096 || prec > 4096) return failf(r, at, "format width or precision too large");
    char spec[32], *p = spec;
    *p++ = '%';
    for (const char *f = flags; *f && p < spec + 8; f++) *p++ = *f;
    snprintf(p, sizeof spec - (size_t)(p - spec), "*.*%c", conv);
    fc_str_printf(b, spec, (int)width, (int)(prec < 0 ? 6 : prec), x);
    return true;
}

static bool py_format(R *r, const node *at, val fmt, val args, val *out)
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
            if (e >= len) { failf(r, at, "incomplete format key"); goto fail; }
            if (!map) { failf(r, at, "format requires a mapping"); goto fail; }
            v = dict_find_str(map, s + i + 1, e - i - 1);
            if (!v) { failf(r, at, "KeyError: '%.*s'", (int)(e - i - 1), s + i + 1); goto fail; }
            i = e + 1;
        }
        char flags[8] = "";
        int nf = 0;
        while (i < len && strchr("-+ #0", s[i]) && s[i]) { if (nf < 7) flags[nf++] = s[i]; i++; }
        flags[nf] = '\0';
        int64_t width = 0, prec = -1;
        if (i < len && s[i] == '*') {
            if (ai >= n || !is_intlike(items[ai])) { failf(r, at, "* wants int"); goto fail; }
            width = int_of(items[ai++]);
            i++;
        } else {
            while (i < len && s[i] >= '0' && s[i] <= '9') { width = width * 10 + (s[i++] - '0'); if (width > 1 << 20) width = 1 << 20; }
        }
        if (i < len && s[i] == '.') {
            i++;
            prec = 0;
            if (i < len && s[i] == '*') {
                if (ai >= n || !is_intlike(items[ai])) { failf(r, at, "* wants int"); goto fail; }
                prec = int_of(items[ai++]);
                i++;
            } else {
                while (i < len && s[i] >= '0' && s[i] <= '9') { prec = prec * 10 + (s[i++] - '0'); if (prec > 1 << 20) prec = 1 << 20; }
            }
        }
        while (i < len && (s[i] == 'h' || s[i] == 'l' || s[i] == 'L')) i++;
        if (i >= len) { failf(r, at, "incomplete format"); goto fail; }
        char conv = s[i++];
        if (conv == '%') { fc_str_putc(&b, '%'); continue; }
        if (!v) {
            if (map) v = &args;
            else if (ai < n) v = &items[ai++];
            else { failf(r, at, "not enough arguments for format string"); goto fail; }
        }
        if (width < 0) { /* a negative '*' width left-justifies */
            if (nf < 7) { flags[nf++] = '-'; flags[nf] = '\0'; }
            width = width == INT64_MIN ? INT64_MAX : -width;
        }
        if (width > (int64_t)r->max_out || prec > (int64_t)r->max_out) { size_ok(r, at, r->max_out + 1); goto fail; }
        switch (conv) {
        case 's': case 'r': case 'a': {
            fc_str t = { 0 };
            fc_str_putn(&t, "", 0);
            bool ok = conv == 's' ? py_str_into(r, at, &t, *v, 0) : py_repr(r, at, &t, *v, 0);
            if (!ok) { fc_str_free(&t); goto fail; }
            size_t k = t.len;
            if (prec >= 0) k = cp_offset(t.p, t.len, (size_t)prec);
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
                failf(r, at, "%%%c format: %s is required, not %s", conv, conv == 'd' || conv == 'i' || conv == 'u' ? "a real number" : "an integer", type_name(*v));
                goto fail;
            }
            fmt_int(&b, x, conv == 'i' || conv == 'u' ? 'd' : conv, flags, width, prec);
            break;
        }
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G':
            if (!is_num(*v)) { failf(r, at, "must be real number, not %s", type_name(*v)); goto fail; }
            if (!fmt_float_c(r, at, &b, num_of(*v), conv, flags, width, prec)) goto fail;
            break;
        case 'c':
            if (is_intlike(*v) && int_of(*v) >= 0 && int_of(*v) <= 0x10ffff) u8put(&b, (int32_t)int_of(*v));
            else if (v->t == VT_STR && u8len(STR(*v)->s, STR(*v)->len) == 1) fc_str_putn(&b, STR(*v)->s, STR(*v)->len);
            else { failf(r, at, "%%c requires int or char"); goto fail; }
            break;
        default:
            failf(r, at, "unsupported format character '%c' (0x%x) at index %zu", conv, (unsigned char)conv, i - 1);
            goto fail;
        }
        if (b.len > r->max_out) break;
    }
    if (!map && ai < n) {
        failf(r, at, "not all arguments converted during string formatting");
        goto fail;
    }
    return sb_val(r, at, &b, out);
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
    if (i != n) return failf(r, at, "Invalid format specifier '%.*s'", (int)n, spec);
    if (width > (int64_t)r->max_out) return size_ok(r, at, r->max_out + 1);
    fc_str t = { 0 };
    fc_str_putn(&t, "", 0);
    bool numeric = is_num(v) && type != 's';
    if (!numeric) {
        if (type && type != 's') { fc_str_free(&t); return failf(r, at, "Unknown format code '%c' for object of type '%s'", type, type_name(v)); }
        if (!py_str_into(r, at, &t, v, 0)) { fc_str_free(&t); return false; }
        if (prec >= 0) t.len = cp_offset(t.p, t.len, (size_t)prec);
        if (!align) align = '<';
    } else {
        char flags[4] = "";
        int nf = 0;
        if (sign == '+' || sign == ' ') flags[nf++] = sign;
        if (alt) flags[nf++] = '#';
        flags[nf] = '\0';
        if (!type) type = v.t == VT_FLOAT ? 0 : 'd';
        if (strchr("dxXob", type)) {
            if (v.t == VT_FLOAT) { fc_str_free(&t); return failf(r, at, "Unknown format code '%c' for object of type 'float'", type); }
            fmt_int(&t, int_of(v), type, flags, 0, -1);
        } else if (strchr("eEfFgG%", type)) {
            double x = num_of(v) * (type == '%' ? 100.0 : 1.0);
            if (!fmt_float_c(r, at, &t, x, type == '%' ? 'f' : type, flags, 0, prec)) { fc_str_free(&t); return false; }
            if (type == '%') fc_str_putc(&t, '%');
        } else if (type == 0) { /* float, no type: like repr unless a precision is given (then 'g'-ish) */
            if (prec >= 0) { if (!fmt_float_c(r, at, &t, v.u.f, 'g', flags, 0, prec)) { fc_str_free(&t); return false; } }
            else { char tmp[64]; fmt_float(v.u.f, tmp, sizeof tmp); if (sign == '+' && v.u.f >= 0) fc_str_putc(&t, '+'); fc_str_puts(&t, tmp); }
        } else {
            fc_str_free(&t);
            return failf(r, at, "Unknown format code '%c' for object of type '%s'", type, type_name(v));
        }
        if (!align) align = zero ? '=' : '>';
        if (zero && fill == ' ') fill = '0';
    }
    int64_t len = (int64_t)u8len(t.p, t.len), pad = width > len ? width - len : 0;
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
            failf(r, at, "Single '}' encountered in format string");
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
                failf(r, at, "cannot switch from manual field specification to automatic field numbering"); /* string.Formatter says this both ways */
                goto fail;
            }
            numbering = mode;
            long idx = nl ? strtol(name, NULL, 10) : auto_idx++;
            if (idx < 0 || idx >= a->npos) { failf(r, at, "Replacement index %ld out of range for positional args tuple", idx); goto fail; }
            v = incref(a->pos[idx]);
        } else {
            int k = 0;
            while (k < a->nkw && (strlen(a->kwn[k]) != nl || memcmp(a->kwn[k], name, nl))) k++;
            if (k == a->nkw) { failf(r, at, "KeyError: '%.*s'", (int)(nl > 100 ? 100 : nl), name); goto fail; }
            v = incref(a->kwv[k]);
        }
        while (e < n && (s[e] == '.' || s[e] == '[')) {
            val nv;
            bool ok;
            if (s[e] == '.') {
                size_t k = e + 1;
                while (k < n && s[k] != '}' && s[k] != '!' && s[k] != ':' && s[k] != '.' && s[k] != '[') k++;
                ok = get_attr(r, at, v, s + e + 1, k - e - 1, &nv);
                e = k;
            } else {
                const char *q = memchr(s + e, ']', n - e);
                if (!q) { decref(r, v); failf(r, at, "Missing ']' in format string"); goto fail; }
                size_t k = (size_t)(q - s);
                bool digits = k > e + 1;
                for (size_t j = e + 1; j < k; j++) digits &= s[j] >= '0' && s[j] <= '9';
                val key = digits ? mk_int(strtoll(s + e + 1, NULL, 10)) : vstr(r, s + e + 1, k - e - 1);
                ok = get_item(r, at, v, key, &nv);
                decref(r, key);
                e = k + 1;
            }
            decref(r, v);
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
        if (e >= n || s[e] != '}') { decref(r, v); failf(r, at, "expected '}' before end of string"); goto fail; }
        if (v.t == VT_UNDEF) { bool ok = fail_undef(r, at, v); decref(r, v); (void)ok; goto fail; }
        bool ok;
        if (conv == 'r' || conv == 'a') {
            fc_str t = { 0 };
            fc_str_putn(&t, "", 0);
            ok = py_repr(r, at, &t, v, 0);
            val tv = mk_none();
            if (ok) ok = sb_val(r, at, &t, &tv);
            else fc_str_free(&t);
            if (ok) ok = apply_spec(r, at, &b, tv, spec, sl);
            decref(r, tv);
        } else {
            ok = apply_spec(r, at, &b, v, spec, sl);
        }
        decref(r, v);
        if (!ok) goto fail;
        i = e + 1;
        if (b.len > r->max_out) break;
    }
    return sb_val(r, at, &b, out);
fail:
    fc_str_free(&b);
    return false;
}

/* ---- tests (jinja2/tests.py) ---- */

static bool apply_test(R *r, const node *at, const char *name, val v, const cargs *a, bool *res);
static bool apply_filter(R *r, const node *at, const char *name, val v, const cargs *a, val *out);
static bool filter_exists(const char *name);

static bool test_exists(const char *name)
{
    static const char *const names[] = {
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false",
        "filter", "float", "ge", ">=", "gt", "greaterthan", ">", "in", "integer", "iterable", "le", "<=", "lower",
        "lt", "lessthan", "<", "mapping", "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string",
        "test", "true", "undefined", "upper",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return true;
    return false;
}

static bool apply_test(R *r, const node *at, const char *name, val v, const cargs *a, bool *res)
{
    static const char *const p_other[] = { "other" };
    val o;
#define T(s) (!strcmp(name, s))
    if (T("defined")) { *res = v.t != VT_UNDEF; return true; }
    if (T("undefined")) { *res = v.t == VT_UNDEF; return true; }
    if (T("none")) { *res = v.t == VT_NONE; return true; }
    if (T("boolean")) { *res = v.t == VT_BOOL; return true; }
    if (T("true")) { *res = v.t == VT_BOOL && v.u.b; return true; }
    if (T("false")) { *res = v.t == VT_BOOL && !v.u.b; return true; }
    if (T("integer")) { *res = v.t == VT_INT; return true; }
    if (T("float")) { *res = v.t == VT_FLOAT; return true; }
    if (T("number")) { *res = is_num(v); return true; }
    if (T("string")) { *res = v.t == VT_STR; return true; }
    if (T("mapping")) { *res = v.t == VT_DICT; return true; }
    if (T("iterable") || T("sequence")) { *res = v.t == VT_STR || v.t == VT_LIST || v.t == VT_DICT || v.t == VT_UNDEF; return true; }
    if (T("callable")) { *res = v.t == VT_FUNC || v.t == VT_UNDEF; return true; }
    if (T("escaped")) { *res = false; return true; }
    if (T("lower") || T("upper")) {
        val s;
        if (!to_str(r, at, v, &s)) return false;
        *res = s_is(STR(s), T("lower") ? M_ISLOWER : M_ISUPPER);
        decref(r, s);
        return true;
    }
    if (T("even") || T("odd")) {
        if (v.t == VT_UNDEF) return fail_undef(r, at, v);
        if (!is_num(v)) return failf(r, at, "unsupported operand type(s) for %%: '%s' and 'int'", type_name(v));
        bool odd = v.t == VT_FLOAT ? fmod(fabs(v.u.f), 2.0) == 1.0 : (int_of(v) & 1) != 0;
        *res = T("odd") ? odd : !odd;
        return true;
    }
    if (T("filter") || T("test")) {
        if (v.t != VT_STR) { *res = false; return true; }
        *res = T("filter") ? filter_exists(STR(v)->s) : test_exists(STR(v)->s);
        return true;
    }
    if (!bind(r, at, name, a, 1, p_other, &o)) return false;
    if (!given(o)) {
        if (T("divisibleby") || T("sameas") || T("in")) return failf(r, at, "test '%s' needs an argument", name);
        o = mk_undef();
    }
    if (T("divisibleby")) {
        val m;
        if (!binop(r, at, O_MOD, v, o, &m)) return false;
        *res = !truthy(m);
        decref(r, m);
        return true;
    }
    if (T("sameas")) {
        if (v.t != o.t) *res = false;
        else if (v.t == VT_NONE || v.t == VT_UNDEF) *res = v.t == VT_NONE || v.u.o == o.u.o;
        else if (v.t == VT_BOOL) *res = v.u.b == o.u.b;
        else if (v.t == VT_INT) *res = v.u.i == o.u.i && v.u.i >= -5 && v.u.i <= 256; /* CPython's small ints */
        else if (v.t == VT_FLOAT) *res = false;
        else *res = v.u.o == o.u.o;
        return true;
    }
    if (T("in")) return v_in(r, at, v, o, res);
    if (T("eq") || T("equalto") || T("==")) { *res = v_eq(&v, &o, 0); return true; }
    if (T("ne") || T("!=")) { *res = !v_eq(&v, &o, 0); return true; }
    int c, op = T("lt") || T("lessthan") || T("<") ? O_LT : T("le") || T("<=") ? O_LE
              : T("gt") || T("greaterthan") || T(">") ? O_GT : T("ge") || T(">=") ? O_GE : 0;
    if (op) {
        if (!v_cmp(r, at, v, o, op, &c, 0)) return false;
        *res = c != 2 && (op == O_LT ? c < 0 : op == O_LE ? c <= 0 : op == O_GT ? c > 0 : c >= 0);
        return true;
    }
#undef T
    return failf(r, at, "No test named '%s'.", name);
}

/* ---- filters (jinja2/filters.py, transformers' tojson) ---- */

/* make_attrgetter: "a.b.0" looked up part by part with getitem. */
static bool attr_path(R *r, const node *at, val item, val path, val *out)
{
    if (path.t != VT_STR) return get_item(r, at, item, path, out);
    jstr *p = STR(path);
    val cur = incref(item);
    for (size_t i = 0; i <= p->len;) {
        const char *dot = memchr(p->s + i, '.', p->len - i);
        size_t e = dot ? (size_t)(dot - p->s) : p->len;
        bool digits = e > i;
        for (size_t j = i; j < e; j++) digits &= p->s[j] >= '0' && p->s[j] <= '9';
        val key = digits ? mk_int(strtoll(p->s + i, NULL, 10)) : vstr(r, p->s + i, e - i);
        val nv;
        bool ok = get_item(r, at, cur, key, &nv);
        decref(r, key);
        decref(r, cur);
        if (!ok) return false;
        cur = nv;
        i = e + 1;
        if (!dot) break;
    }
    *out = cur;
    return true;
}

/* The sort key of an item: its attribute, lowered when it is a string and
 * the filter is case-insensitive (jinja2's ignore_case). */
static bool sort_key(R *r, const node *at, val item, val attribute, bool case_sensitive, val *out)
{
    val k;
    if (given(attribute) && attribute.t != VT_NONE) {
        if (!attr_path(r, at, item, attribute, &k)) return false;
    } else {
        k = incref(item);
    }
    if (!case_sensitive && k.t == VT_STR) {
        val low;
        bool ok = s_case(r, at, STR(k), CASE_LOWER, &low);
        decref(r, k);
        if (!ok) return false;
        k = low;
    }
    *out = k;
    return true;
}

/* Stable merge sort of idx[0, n) by keys. */
static bool merge_sort(R *r, const node *at, const val *keys, size_t *idx, size_t *tmp, size_t n, bool reverse)
{
    if (n < 2) return true;
    size_t h = n / 2;
    if (!merge_sort(r, at, keys, idx, tmp, h, reverse) || !merge_sort(r, at, keys, idx + h, tmp, n - h, reverse)) return false;
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int c;
        /* take the right one only when it sorts strictly first */
        if (!v_cmp(r, at, keys[idx[j]], keys[idx[i]], O_LT, &c, 0)) return false;
        bool right_first = c != 2 && (reverse ? c > 0 : c < 0);
        tmp[k++] = right_first ? idx[j++] : idx[i++];
    }
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
    return work(r, at, n);
}

/* Sorts items by key; returns the order in *order (malloc'd). */
static bool sort_items(R *r, const node *at, jlist *items, val attribute, bool case_sensitive, bool reverse, size_t **order)
{
    size_t n = items->n;
    val *keys = fc_xcalloc(n + 1, sizeof(val));
    size_t *idx = fc_xmalloc((n + 1) * sizeof(size_t)), *tmp = fc_xmalloc((n + 1) * sizeof(size_t));
    bool ok = true;
    size_t made = 0;
    for (; made < n && ok; made++) {
        idx[made] = made;
        ok = sort_key(r, at, items->v[made], attribute, case_sensitive, &keys[made]);
    }
    if (!ok) made--;
    if (ok) ok = merge_sort(r, at, keys, idx, tmp, n, reverse);
    for (size_t i = 0; i < made; i++) decref(r, keys[i]);
    free(keys);
    free(tmp);
    if (!ok) { free(idx); return false; }
    *order = idx;
    return true;
}

static bool json_opts_from(R *r, const node *at, val ensure_ascii, val indent, val separators, val sort_keys,
                           json_opts *o, char *indent_buf, size_t cap)
{
    memset(o, 0, sizeof *o);
    o->ensure_ascii = given(ensure_ascii) && truthy(ensure_ascii);
    o->sort_keys = given(sort_keys) && truthy(sort_keys);
    o->item_sep = ", ";
    o->key_sep = ": ";
    if (given(indent) && indent.t != VT_NONE) {
        o->indent_on = true;
        o->item_sep = ",";
        if (indent.t == VT_STR) {
            o->indent = STR(indent)->s;
            o->indent_len = STR(indent)->len;
        } else if (is_intlike(indent)) {
            int64_t k = int_of(indent);
            if (k < 0) k = 0;
            if ((size_t)k >= cap) return failf(r, at, "tojson indent too large");
            memset(indent_buf, ' ', (size_t)k);
            o->indent = indent_buf;
            o->indent_len = (size_t)k;
        } else {
            return failf(r, at, "tojson indent must be an int or a string");
        }
    }
    if (given(separators) && separators.t != VT_NONE) {
        if (separators.t != VT_LIST || LIST(separators)->n != 2 || LIST(separators)->v[0].t != VT_STR ||
            LIST(separators)->v[1].t != VT_STR)
            return failf(r, at, "tojson separators must be a pair of strings");
        o->item_sep = STR(LIST(separators)->v[0])->s;
        o->item_sep_len = STR(LIST(separators)->v[0])->len;
        o->key_sep = STR(LIST(separators)->v[1])->s;
        o->key_sep_len = STR(LIST(separators)->v[1])->len;
        return true;
    }
    o->item_sep_len = strlen(o->item_sep);
    o->key_sep_len = strlen(o->key_sep);
    return true;
}

/* Python's int(str) / float(str) for the int and float filters. */
static bool parse_int_str(const jstr *s, int64_t base, int64_t *out)
{
    char buf[96];
    size_t k = 0;
    const char *p = s->s, *e = s->s + s->len;
    while (p < e && py_space((unsigned char)*p)) p++;
    while (e > p && py_space((unsigned char)e[-1])) e--;
    if (e - p <= 0 || e - p >= (ptrdiff_t)sizeof buf) return false;
    for (const char *q = p; q < e; q++) {
        if (*q == '_') { if (q == p || q + 1 == e || q[-1] == '_' ) return false; continue; }
        buf[k++] = *q;
    }
    buf[k] = '\0';
    if (base < 2 || base > 36) base = 10;
    errno = 0;
    char *end;
    long long v = strtoll(buf, &end, (int)base);
    if (errno || *end || end == buf || (base == 10 && (buf[0] == '0' && k > 1 && buf[1] != '\0' && strspn(buf, "0") != k)))
        return false;
    *out = v;
    return true;
}

static bool parse_float_str(const jstr *s, double *out)
{
    char buf[128];
    size_t k = 0;
    const char *p = s->s, *e = s->s + s->len;
    while (p < e && py_space((unsigned char)*p)) p++;
    while (e > p && py_space((unsigned char)e[-1])) e--;
    if (e - p <= 0 || e - p >= (ptrdiff_t)sizeof buf) return false;
    for (const char *q = p; q < e; q++)
        if (*q != '_') buf[k++] = *q;
    buf[k] = '\0';
    if (strchr(buf, 'x') || strchr(buf, 'X')) return false; /* C accepts hex floats, Python does not */
    char *end;
    double d = strtod(buf, &end);
    if (*end || end == buf) return false;
    *out = d;
    return true;
}

enum {
    FL_ABS, FL_ATTR, FL_CAPITALIZE, FL_CENTER, FL_DEFAULT, FL_DICTSORT, FL_ESCAPE, FL_FIRST, FL_FLOAT, FL_FORMAT,
    FL_INDENT, FL_INT, FL_ITEMS, FL_JOIN, FL_LAST, FL_LENGTH, FL_LIST, FL_LOWER, FL_MAP, FL_MAX, FL_MIN,
    FL_REJECT, FL_REJECTATTR, FL_REPLACE, FL_REVERSE, FL_ROUND, FL_SAFE, FL_SELECT, FL_SELECTATTR, FL_SORT,
    FL_STRING, FL_SUM, FL_TITLE, FL_TOJSON, FL_TRIM, FL_UNIQUE, FL_UPPER, FL_WORDCOUNT,
};

static const struct { const char *name; int id; } filter_table[] = {
    { "abs", FL_ABS }, { "attr", FL_ATTR }, { "capitalize", FL_CAPITALIZE }, { "center", FL_CENTER },
    { "count", FL_LENGTH }, { "d", FL_DEFAULT }, { "default", FL_DEFAULT }, { "dictsort", FL_DICTSORT },
    { "e", FL_ESCAPE }, { "escape", FL_ESCAPE }, { "forceescape", FL_ESCAPE }, { "first", FL_FIRST },
    { "float", FL_FLOAT }, { "format", FL_FORMAT }, { "indent", FL_INDENT }, { "int", FL_INT },
    { "items", FL_ITEMS }, { "join", FL_JOIN }, { "last", FL_LAST }, { "length", FL_LENGTH }, { "list", FL_LIST },
    { "lower", FL_LOWER }, { "map", FL_MAP }, { "max", FL_MAX }, { "min", FL_MIN }, { "reject", FL_REJECT },
    { "rejectattr", FL_REJECTATTR }, { "replace", FL_REPLACE }, { "reverse", FL_REVERSE }, { "round", FL_ROUND },
    { "safe", FL_SAFE }, { "select", FL_SELECT }, { "selectattr", FL_SELECTATTR }, { "sort", FL_SORT },
    { "string", FL_STRING }, { "sum", FL_SUM }, { "title", FL_TITLE }, { "tojson", FL_TOJSON }, { "trim", FL_TRIM },
    { "unique", FL_UNIQUE }, { "upper", FL_UPPER }, { "wordcount", FL_WORDCOUNT },
};

static int filter_id(const char *name)
{
    for (size_t i = 0; i < sizeof filter_table / sizeof *filter_table; i++)
        if (!strcmp(filter_table[i].name, name)) return filter_table[i].id;
    return -1;
}

static bool filter_exists(const char *name) { return filter_id(name) >= 0; }

/* select/reject/selectattr/rejectattr: keep items whose (attribute's) test
 * result is `want`. args: [attribute,] [test name, test args...]. */
static bool filter_select(R *r, const node *at, val v, const cargs *a, bool by_attr, bool want, val *out)
{
    int k = 0;
    val attribute = mk_noarg();
    if (by_attr) {
        if (a->npos < 1) return failf(r, at, "Missing parameter for attribute name");
        attribute = a->pos[k++];
    }
    const char *test = NULL;
    if (k < a->npos) {
        if (a->pos[k].t != VT_STR) return failf(r, at, "the test name must be a string");
        test = STR(a->pos[k++])->s;
        if (!test_exists(test)) return failf(r, at, "No test named '%s'.", test);
    }
    cargs ta = { a->pos ? a->pos + k : NULL, a->npos - k, a->kwn, a->kwv, a->nkw };
    jlist *items;
    if (!iter_list(r, at, v, &items)) return false;
    jlist *res = list_new(r, 0, false);
    for (size_t i = 0; i < items->n; i++) {
        val x;
        if (by_attr) {
            if (!attr_path(r, at, items->v[i], attribute, &x)) goto fail;
        } else {
            x = incref(items->v[i]);
        }
        bool keep;
        if (test) {
            bool ok = apply_test(r, at, test, x, &ta, &keep);
            decref(r, x);
            if (!ok) goto fail;
        } else {
            keep = truthy(x);
            decref(r, x);
        }
        if (keep == want) list_push(r, res, incref(items->v[i]));
    }
    decref(r, mk_obj(VT_LIST, items));
    *out = mk_obj(VT_LIST, res);
    return work(r, at, res->n);
fail:
    decref(r, mk_obj(VT_LIST, items));
    decref(r, mk_obj(VT_LIST, res));
    return false;
}

static bool apply_filter(R *r, const node *at, const char *name, val v, const cargs *a, val *out)
{
    int id = filter_id(name);
    if (id < 0) return failf(r, at, "No filter named '%s'.", name);
    val sl[4];
    static const char *const p_default[] = { "default_value", "boolean" };
    static const char *const p_sortish[] = { "case_sensitive", "attribute" };
    static const char *const p_sort[] = { "reverse", "case_sensitive", "attribute" };
    static const char *const p_dictsort[] = { "case_sensitive", "by", "reverse" };
    static const char *const p_join[] = { "d", "attribute" };
    static const char *const p_sum[] = { "attribute", "start" };
    static const char *const p_round[] = { "precision", "method" };
    static const char *const p_int[] = { "default", "base" };
    static const char *const p_float[] = { "default" };
    static const char *const p_json[] = { "ensure_ascii", "indent", "separators", "sort_keys" };
    static const char *const p_trim[] = { "chars" };
    static const char *const p_rep[] = { "old", "new", "count" };
    static const char *const p_center[] = { "width" };
    static const char *const p_indent[] = { "width", "first", "blank" };
    static const char *const p_attr[] = { "name" };
    switch (id) {
    case FL_DEFAULT:
        if (!bind(r, at, name, a, 2, p_default, sl)) return false;
        if (v.t == VT_UNDEF || (given(sl[1]) && truthy(sl[1]) && !truthy(v)))
            *out = given(sl[0]) ? incref(sl[0]) : mk_obj(VT_STR, &g_empty);
        else
            *out = incref(v);
        return true;
    case FL_LENGTH:
        if (!bind(r, at, name, a, 0, NULL, sl)) return false;
        switch (v.t) {
        case VT_UNDEF: *out = mk_int(0); return true;
        case VT_STR: *out = mk_int((int64_t)u8len(STR(v)->s, STR(v)->len)); return work(r, at, STR(v)->len);
        case VT_LIST: *out = mk_int((int64_t)LIST(v)->n); return true;
        case VT_DICT: *out = mk_int((int64_t)DICT(v)->n); return true;
        default: return failf(r, at, "object of type '%s' has no len()", type_name(v));
        }
    case FL_STRING: case FL_SAFE:
        if (!bind(r, at, name, a, 0, NULL, sl)) return false;
        if (id == FL_SAFE) { *out = incref(v); return true; }
        return to_str(r, at, v, out);
    case FL_UPPER: case FL_LOWER: case FL_CAPITALIZE: case FL_TITLE: case FL_TRIM: case FL_REPLACE:
    case FL_CENTER: case FL_WORDCOUNT: case FL_ESCAPE: case FL_INDENT: {
        val s;
        if (!to_str(r, at, v, &s)) return false;
        jstr *j = STR(s);
        bool ok = false;
        switch (id) {
        case FL_UPPER: case FL_LOWER: case FL_CAPITALIZE: case FL_TITLE:
            ok = bind(r, at, name, a, 0, NULL, sl) &&
                 s_case(r, at, j, id == FL_UPPER ? CASE_UPPER : id == FL_LOWER ? CASE_LOWER : id == FL_TITLE ? CASE_JINJA_TITLE : CASE_CAPITALIZE, out);
            break;
        case FL_TRIM:
            ok = bind(r, at, name, a, 1, p_trim, sl) && s_strip(r, at, j, sl[0], 3, out);
            break;
        case FL_REPLACE: {
            val o = mk_none(), nw = mk_none();
            int64_t count = 0;
            ok = bind(r, at, name, a, 3, p_rep, sl) && given(sl[0]) && given(sl[1]) &&
                 to_str(r, at, sl[0], &o) && to_str(r, at, sl[1], &nw) &&
                 arg_int(r, at, "count", sl[2].t == VT_NONE ? mk_noarg() : sl[2], -1, &count) &&
                 s_replace(r, at, j, STR(o), STR(nw), count, out);
            if (!ok && !r->err) failf(r, at, "replace() needs old and new");
            decref(r, o);
            decref(r, nw);
            break;
        }
        case FL_CENTER:
            ok = bind(r, at, name, a, 1, p_center, sl) && s_pad(r, at, j, given(sl[0]) ? sl[0] : mk_int(80), mk_noarg(), 0, out);
            break;
        case FL_WORDCOUNT: {
            int64_t words = 0;
            bool in = false;
            for (size_t i = 0, k; i < j->len; i += k) {
                int32_t c = u8dec(j->s + i, j->len - i, &k);
                bool w = c == '_' || cp_alpha(c) || cp_numeric(c);
                if (w && !in) words++;
                in = w;
            }
            ok = bind(r, at, name, a, 0, NULL, sl);
            *out = mk_int(words);
            break;
        }
        case FL_ESCAPE: {
            fc_str b = { 0 };
            fc_str_putn(&b, "", 0);
            for (size_t i = 0; i < j->len; i++) {
                switch (j->s[i]) {
                case '&': fc_str_puts(&b, "&amp;"); break;
                case '<': fc_str_puts(&b, "&lt;"); break;
                case '>': fc_str_puts(&b, "&gt;"); break;
                case '"': fc_str_puts(&b, "&#34;"); break;
                case '\'': fc_str_puts(&b, "&#39;"); break;
                default: fc_str_putc(&b, j->s[i]);
                }
            }
            ok = bind(r, at, name, a, 0, NULL, sl) && sb_val(r, at, &b, out);
            if (!ok) fc_str_free(&b);
            break;
        }
        case FL_INDENT: {
            if (!bind(r, at, name, a, 3, p_indent, sl)) break;
            fc_str ind = { 0 };
            fc_str_putn(&ind, "", 0);
            if (sl[0].t == VT_STR) fc_str_putn(&ind, STR(sl[0])->s, STR(sl[0])->len);
            else {
                int64_t w = 0;
                if (!arg_int(r, at, "width", sl[0], 4, &w)) { fc_str_free(&ind); break; }
                if (w > 4096) { failf(r, at, "indent width too large"); fc_str_free(&ind); break; }
                for (int64_t i = 0; i < w; i++) fc_str_putc(&ind, ' ');
            }
            bool first = given(sl[1]) && truthy(sl[1]), blank = given(sl[2]) && truthy(sl[2]);
            /* s + "\n", split into lines (str.splitlines), re-joined */
            fc_str b = { 0 };
            fc_str_putn(&b, "", 0);
            if (first) fc_str_putn(&b, ind.p, ind.len);
            size_t i = 0, start = 0, k = 1, line = 0;
            while (i <= j->len) {
                int32_t c = i < j->len ? u8dec(j->s + i, j->len - i, &k) : '\n';
                if (i == j->len) k = 1;
                if (!py_linebreak(c)) { i += k; continue; }
                size_t e = i;
                i += k;
                if (c == '\r' && i < j->len && j->s[i] == '\n') i++;
                if (line) {
                    fc_str_putc(&b, '\n');
                    if (blank || e > start) fc_str_putn(&b, ind.p, ind.len);
                }
                fc_str_putn(&b, j->s + start, e - start);
                start = i;
                line++;
                if (b.len > r->max_out) break;
            }
            fc_str_free(&ind);
            ok = sb_val(r, at, &b, out);
            break;
        }
        }
        decref(r, s);
        return ok;
    }
    case FL_FIRST: case FL_LAST: case FL_LIST: case FL_REVERSE: {
        if (!bind(r, at, name, a, 0, NULL, sl)) return false;
        if (id == FL_REVERSE && v.t == VT_STR) { val m1 = mk_int(-1); return get_slice(r, at, v, mk_noarg(), mk_noarg(), m1, out); }
        if ((id == FL_FIRST || id == FL_LAST) && v.t == VT_UNDEF) {
            *out = mk_undef_hint(r, "No %s item, sequence was empty.", id == FL_FIRST ? "first" : "last");
            return true;
        }
        jlist *l;
        if (!iter_list(r, at, v, &l)) return false;
        if (id == FL_FIRST || id == FL_LAST) {
            if (!l->n) *out = mk_undef_hint(r, "No %s item, sequence was empty.", id == FL_FIRST ? "first" : "last");
            else *out = incref(l->v[id == FL_FIRST ? 0 : l->n - 1]);
        } else {
            jlist *c = list_new(r, l->n, false);
            for (size_t i = 0; i < l->n; i++) list_push(r, c, incref(l->v[id == FL_LIST ? i : l->n - 1 - i]));
            *out = mk_obj(VT_LIST, c);
        }
        decref(r, mk_obj(VT_LIST, l));
        return true;
    }
    case FL_JOIN: {
        if (!bind(r, at, name, a, 2, p_join, sl)) return false;
        val sep = mk_obj(VT_STR, &g_empty);
        if (given(sl[0]) && !to_str(r, at, sl[0], &sep)) return false;
        jlist *l;
        if (!iter_list(r, at, v, &l)) { decref(r, sep); return false; }
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        bool ok = true;
        for (size_t i = 0; i < l->n && ok; i++) {
            val x;
            if (given(sl[1]) && sl[1].t != VT_NONE) ok = attr_path(r, at, l->v[i], sl[1], &x);
            else x = incref(l->v[i]);
            if (!ok) break;
            if (i) fc_str_putn(&b, STR(sep)->s, STR(sep)->len);
            ok = py_str_into(r, at, &b, x, 0);
            decref(r, x);
            if (b.len > r->max_out) break;
        }
        decref(r, mk_obj(VT_LIST, l));
        decref(r, sep);
        if (!ok) { fc_str_free(&b); return false; }
        return sb_val(r, at, &b, out);
    }
    case FL_MAP: {
        val attribute = mk_noarg(), dflt = mk_noarg();
        for (int k = 0; k < a->nkw; k++) {
            if (!strcmp(a->kwn[k], "attribute")) attribute = a->kwv[k];
            else if (!strcmp(a->kwn[k], "default")) dflt = a->kwv[k];
        }
        const char *fname = NULL;
        cargs fa = { NULL, 0, NULL, NULL, 0 };
        if (!given(attribute)) {
            if (a->npos < 1 || a->pos[0].t != VT_STR) return failf(r, at, "map needs a filter name or attribute=");
            fname = STR(a->pos[0])->s;
            fa = (cargs){ a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw };
        }
        jlist *l;
        if (!iter_list(r, at, v, &l)) return false;
        jlist *res = list_new(r, l->n, false);
        for (size_t i = 0; i < l->n; i++) {
            val x;
            bool ok = fname ? apply_filter(r, at, fname, l->v[i], &fa, &x) : attr_path(r, at, l->v[i], attribute, &x);
            if (!ok) { decref(r, mk_obj(VT_LIST, l)); decref(r, mk_obj(VT_LIST, res)); return false; }
            if (!fname && x.t == VT_UNDEF && given(dflt)) { decref(r, x); x = incref(dflt); }
            list_push(r, res, x);
        }
        decref(r, mk_obj(VT_LIST, l));
        *out = mk_obj(VT_LIST, res);
        return work(r, at, res->n);
    }
    case FL_SELECT: return filter_select(r, at, v, a, false, true, out);
    case FL_REJECT: return filter_select(r, at, v, a, false, false, out);
    case FL_SELECTATTR: return filter_select(r, at, v, a, true, true, out);
    case FL_REJECTATTR: return filter_select(r, at, v, a, true, false, out);
    case FL_SORT: case FL_UNIQUE: case FL_MIN: case FL_MAX: {
        bool reverse = false;
        val cs, attribute;
        if (id == FL_SORT) {
            if (!bind(r, at, name, a, 3, p_sort, sl)) return false;
            reverse = given(sl[0]) && truthy(sl[0]);
            cs = sl[1];
            attribute = sl[2];
        } else {
            if (!bind(r, at, name, a, 2, p_sortish, sl)) return false;
            cs = sl[0];
            attribute = sl[1];
        }
        bool case_sensitive = given(cs) && truthy(cs);
        jlist *l;
        if (!iter_list(r, at, v, &l)) return false;
        bool ok = true;
        if (id == FL_UNIQUE) {
            jlist *res = list_new(r, 0, false), *seen = list_new(r, 0, false);
            for (size_t i = 0; i < l->n && ok; i++) {
                val k;
                if (!(ok = sort_key(r, at, l->v[i], attribute, case_sensitive, &k))) break;
                bool dup = false;
                for (size_t j = 0; j < seen->n && !dup; j++) dup = v_eq(&seen->v[j], &k, 0);
                ok = work(r, at, seen->n);
                if (dup) decref(r, k);
                else { list_push(r, seen, k); list_push(r, res, incref(l->v[i])); }
            }
            decref(r, mk_obj(VT_LIST, seen));
            if (ok) *out = mk_obj(VT_LIST, res);
            else decref(r, mk_obj(VT_LIST, res));
        } else {
            size_t *order = NULL;
            ok = sort_items(r, at, l, attribute, case_sensitive, reverse, &order);
            if (ok && id == FL_SORT) {
                jlist *res = list_new(r, l->n, false);
                for (size_t i = 0; i < l->n; i++) list_push(r, res, incref(l->v[order[i]]));
                *out = mk_obj(VT_LIST, res);
            } else if (ok) {
                if (!l->n) *out = mk_undef_hint(r, "No aggregated item, sequence was empty.");
                else *out = incref(l->v[order[id == FL_MIN ? 0 : l->n - 1]]);
                if (id == FL_MAX && l->n) { /* max() keeps the first of equal maxima */
                    size_t j = l->n - 1;
                    val kj, kp;
                    while (j > 0 && ok) {
                        ok = sort_key(r, at, l->v[order[j]], attribute, case_sensitive, &kj);
                        if (!ok) break;
                        ok = sort_key(r, at, l->v[order[j - 1]], attribute, case_sensitive, &kp);
                        if (!ok) { decref(r, kj); break; }
                        bool same = v_eq(&kj, &kp, 0);
                        decref(r, kj);
                        decref(r, kp);
                        if (!same) break;
                        j--;
                    }
                    if (ok) { decref(r, *out); *out = incref(l->v[order[j]]); }
                }
            }
            free(order);
        }
        decref(r, mk_obj(VT_LIST, l));
        return ok;
    }
    case FL_DICTSORT: {
        if (!bind(r, at, name, a, 3, p_dictsort, sl)) return false;
        if (v.t != VT_DICT) return failf(r, at, "dictsort needs a dict, not '%s'", type_name(v));
        bool by_value = false;
        if (given(sl[1])) {
            if (sl[1].t != VT_STR || (strcmp(STR(sl[1])->s, "key") && strcmp(STR(sl[1])->s, "value")))
                return failf(r, at, "You can only sort by either \"key\" or \"value\"");
            by_value = !strcmp(STR(sl[1])->s, "value");
        }
        jdict *d = DICT(v);
        jlist *pairs = list_new(r, d->n, false), *keys = list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) {
            jlist *t = list_new(r, 2, true);
            list_push(r, t, incref(d->k[i]));
            list_push(r, t, incref(d->v[i]));
            list_push(r, pairs, mk_obj(VT_LIST, t));
            list_push(r, keys, incref(by_value ? d->v[i] : d->k[i]));
        }
        size_t *order = NULL;
        bool ok = sort_items(r, at, keys, mk_noarg(), given(sl[0]) && truthy(sl[0]), given(sl[2]) && truthy(sl[2]), &order);
        if (ok) {
            jlist *res = list_new(r, d->n, false);
            for (size_t i = 0; i < d->n; i++) list_push(r, res, incref(pairs->v[order[i]]));
            *out = mk_obj(VT_LIST, res);
        }
        free(order);
        decref(r, mk_obj(VT_LIST, pairs));
        decref(r, mk_obj(VT_LIST, keys));
        return ok;
    }
    case FL_ITEMS: {
        if (!bind(r, at, name, a, 0, NULL, sl)) return false;
        if (v.t == VT_UNDEF) { *out = mk_obj(VT_LIST, list_new(r, 0, false)); return true; }
        if (v.t != VT_DICT) return failf(r, at, "Can only get item pairs from a mapping.");
        jdict *d = DICT(v);
        jlist *res = list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) {
            jlist *t = list_new(r, 2, true);
            list_push(r, t, incref(d->k[i]));
            list_push(r, t, incref(d->v[i]));
            list_push(r, res, mk_obj(VT_LIST, t));
        }
        *out = mk_obj(VT_LIST, res);
        return work(r, at, d->n * 4);
    }
    case FL_SUM: {
        if (!bind(r, at, name, a, 2, p_sum, sl)) return false;
        jlist *l;
        if (!iter_list(r, at, v, &l)) return false;
        val acc = given(sl[1]) ? incref(sl[1]) : mk_int(0);
        bool ok = true;
        for (size_t i = 0; i < l->n && ok; i++) {
            val x, nacc;
            if (given(sl[0]) && sl[0].t != VT_NONE) ok = attr_path(r, at, l->v[i], sl[0], &x);
            else x = incref(l->v[i]);
            if (!ok) break;
            ok = binop(r, at, O_ADD, acc, x, &nacc);
            decref(r, x);
            if (ok) { decref(r, acc); acc = nacc; }
        }
        decref(r, mk_obj(VT_LIST, l));
        if (!ok) { decref(r, acc); return false; }
        *out = acc;
        return true;
    }
    case FL_ABS:
        if (!bind(r, at, name, a, 0, NULL, sl)) return false;
        if (v.t == VT_UNDEF) return fail_undef(r, at, v);
        if (v.t == VT_FLOAT) { *out = mk_float(fabs(v.u.f)); return true; }
        if (is_intlike(v)) {
            int64_t x = int_of(v);
            if (x == INT64_MIN) return failf(r, at, "integer overflow");
            *out = mk_int(x < 0 ? -x : x);
            return true;
        }
        return failf(r, at, "bad operand type for abs(): '%s'", type_name(v));
    case FL_ROUND: {
        int64_t prec = 0;
        if (!bind(r, at, name, a, 2, p_round, sl) || !arg_int(r, at, "precision", sl[0], 0, &prec)) return false;
        const char *method = "common";
        if (given(sl[1])) {
            if (sl[1].t != VT_STR) return failf(r, at, "method must be common, ceil or floor");
            method = STR(sl[1])->s;
        }
        if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
            return failf(r, at, "method must be common, ceil or floor");
        if (v.t == VT_UNDEF) return fail_undef(r, at, v);
        if (!is_num(v)) return failf(r, at, "type %s doesn't define __round__ method", type_name(v));
        if (is_intlike(v) && !strcmp(method, "common") && prec >= 0) { *out = mk_int(int_of(v)); return true; }
        double x = num_of(v);
        if (prec > 300) prec = 300;
        if (prec < -300) prec = -300;
        if (!strcmp(method, "common")) {
            if (prec >= 0) {
                char buf[1024];
                snprintf(buf, sizeof buf, "%.*f", (int)prec, x); /* correctly rounded, ties to even: Python's round() */
                x = strtod(buf, NULL);
            } else {
                double p10 = pow(10.0, (double)-prec);
                x = nearbyint(x / p10) * p10;
            }
        } else {
            double p10 = pow(10.0, (double)prec);
            x = (!strcmp(method, "ceil") ? ceil(x * p10) : floor(x * p10)) / p10;
        }
        *out = mk_float(x);
        return true;
    }
    case FL_INT: {
        if (!bind(r, at, name, a, 2, p_int, sl)) return false;
        int64_t base = 10, iv;
        if (!arg_int(r, at, "base", sl[1], 10, &base)) return false;
        val dflt = given(sl[0]) ? sl[0] : mk_int(0);
        double d;
        if (is_intlike(v)) { *out = mk_int(int_of(v)); return true; }
        if (v.t == VT_FLOAT && isfinite(v.u.f) && fabs(v.u.f) < 9.2e18) { *out = mk_int((int64_t)v.u.f); return true; }
        if (v.t == VT_STR) {
            if (parse_int_str(STR(v), base, &iv)) { *out = mk_int(iv); return true; }
            if (parse_float_str(STR(v), &d) && isfinite(d) && fabs(d) < 9.2e18) { *out = mk_int((int64_t)d); return true; }
        }
        *out = incref(dflt);
        return true;
    }
    case FL_FLOAT: {
        if (!bind(r, at, name, a, 1, p_float, sl)) return false;
        double d;
        if (is_num(v)) { *out = mk_float(num_of(v)); return true; }
        if (v.t == VT_STR && parse_float_str(STR(v), &d)) { *out = mk_float(d); return true; }
        *out = given(sl[0]) ? incref(sl[0]) : mk_float(0.0);
        return true;
    }
    case FL_FORMAT: {
        if (a->npos && a->nkw) return failf(r, at, "can't handle positional and keyword arguments at the same time");
        val s, args;
        if (!to_str(r, at, v, &s)) return false;
        if (a->nkw) {
            jdict *d = dict_new(r, VT_DICT);
            for (int k = 0; k < a->nkw; k++) dict_set(r, d, vcstr(r, a->kwn[k]), incref(a->kwv[k]));
            args = mk_obj(VT_DICT, d);
        } else {
            jlist *l = list_new(r, (size_t)a->npos, true);
            for (int k = 0; k < a->npos; k++) list_push(r, l, incref(a->pos[k]));
            args = mk_obj(VT_LIST, l);
        }
        bool ok = py_format(r, at, s, args, out);
        decref(r, s);
        decref(r, args);
        return ok;
    }
    case FL_TOJSON: {
        json_opts o;
        char ibuf[256];
        if (!bind(r, at, name, a, 4, p_json, sl) || !json_opts_from(r, at, sl[0], sl[1], sl[2], sl[3], &o, ibuf, sizeof ibuf))
            return false;
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        if (!json_dump(r, at, &b, v, &o, 0)) { fc_str_free(&b); return false; }
        return sb_val(r, at, &b, out);
    }
    case FL_ATTR: /* getattr only: dict keys are not attributes */
        if (!bind(r, at, name, a, 1, p_attr, sl)) return false;
        if (sl[0].t != VT_STR) return failf(r, at, "attr() needs a name");
        if (v.t == VT_DICT) {
            val m;
            if (!get_attr(r, at, v, STR(sl[0])->s, STR(sl[0])->len, &m)) return false;
            if (m.t == VT_FUNC) { *out = m; return true; }
            decref(r, m);
            char tb[64];
            *out = mk_undef_hint(r, "'%s' has no attribute '%.200s'", obj_type_repr(v, tb, sizeof tb), STR(sl[0])->s);
            return true;
        }
        return get_attr(r, at, v, STR(sl[0])->s, STR(sl[0])->len, out);
    default:
        return failf(r, at, "No filter named '%s'.", name);
    }
}

/* ---- frames and globals ---- */

static jstr g_key_loop = { { -1, VT_STR, 0, NULL, NULL }, 4, (char *)"loop" };
static jstr g_key_varargs = { { -1, VT_STR, 0, NULL, NULL }, 7, (char *)"varargs" };
static jstr g_key_kwargs = { { -1, VT_STR, 0, NULL, NULL }, 6, (char *)"kwargs" };

/* Takes key and v. */
static void frame_set(R *r, val key, val v)
{
    dict_set(r, r->top->vars, key, v);
}

static void frame_push(R *r, frame *f, frame *parent)
{
    f->parent = parent;
    f->vars = dict_new(r, VT_DICT);
    r->top = f;
}

static void frame_pop(R *r, frame *f, frame *restore)
{
    r->top = restore;
    decref(r, mk_obj(VT_DICT, f->vars));
}

static bool lookup(R *r, const char *name, size_t n, val *out)
{
    for (frame *f = r->top; f; f = f->parent) {
        val *v = dict_find_str(f->vars, name, n);
        if (v) { *out = incref(*v); return true; }
    }
    static const struct { const char *name; int id; } globals[] = {
        { "range", F_RANGE }, { "dict", F_DICT }, { "namespace", F_NAMESPACE },
        { "raise_exception", F_RAISE }, { "strftime_now", F_STRFTIME },
    };
    for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
        if (strlen(globals[i].name) == n && !memcmp(globals[i].name, name, n)) {
            *out = func_new(r, globals[i].id, mk_none(), NULL);
            return true;
        }
    return false;
}

/* dict(...) and namespace(...): a mapping or a list of pairs, then keywords. */
static bool make_mapping(R *r, const node *at, int type, const cargs *a, val *out)
{
    if (a->npos > 1) return failf(r, at, "%s expected at most 1 argument, got %d", type == VT_NS ? "namespace" : "dict", a->npos);
    jdict *d = dict_new(r, type);
    val res = mk_obj(type, d);
    if (a->npos) {
        val src = a->pos[0];
        if (src.t == VT_DICT || src.t == VT_NS) {
            for (size_t i = 0; i < DICT(src)->n; i++) dict_set(r, d, incref(DICT(src)->k[i]), incref(DICT(src)->v[i]));
        } else if (src.t == VT_LIST) {
            for (size_t i = 0; i < LIST(src)->n; i++) {
                val p = LIST(src)->v[i];
                if (p.t != VT_LIST || LIST(p)->n != 2) { decref(r, res); return failf(r, at, "dictionary update sequence element #%zu has the wrong length", i); }
                dict_set(r, d, incref(LIST(p)->v[0]), incref(LIST(p)->v[1]));
            }
        } else if (src.t != VT_UNDEF) {
            decref(r, res);
            return failf(r, at, "'%s' object is not iterable", type_name(src));
        }
    }
    for (int k = 0; k < a->nkw; k++) dict_set(r, d, vcstr(r, a->kwn[k]), incref(a->kwv[k]));
    if (type == VT_NS)
        for (size_t i = 0; i < d->n; i++)
            if (d->k[i].t == VT_STR && STR(d->k[i])->s[0] == '_') {
                decref(r, res);
                return failf(r, at, "Chat templates cannot store underscore-prefixed attributes on a namespace");
            }
    *out = res;
    return work(r, at, d->n);
}

static int exec(R *r, const node *s);
static bool ev(R *r, const node *e, val *out);

static bool call_macro(R *r, const node *at, const node *m, const cargs *a, val *out)
{
    frame f, *saved_top = r->top;
    fc_str buf = { 0 }, *saved_out = r->out;
    fc_str_putn(&buf, "", 0);
    frame_push(r, &f, r->root);
    jlist *varargs = list_new(r, 0, true);
    jdict *kwargs = dict_new(r, VT_DICT);
    bool *set = fc_xcalloc((size_t)m->n + 1, sizeof(bool));
    bool ok = true;
    for (int i = 0; i < a->npos; i++) {
        if (i < m->n) {
            dict_set(r, f.vars, vcstr(r, m->names[i]), incref(a->pos[i]));
            set[i] = true;
        } else {
            list_push(r, varargs, incref(a->pos[i]));
        }
    }
    for (int k = 0; k < a->nkw && ok; k++) {
        int j = 0;
        while (j < m->n && strcmp(m->names[j], a->kwn[k])) j++;
        if (j == m->n) {
            dict_set(r, kwargs, vcstr(r, a->kwn[k]), incref(a->kwv[k]));
        } else if (set[j]) {
            ok = failf(r, at, "macro '%s' got multiple values for argument '%s'", m->name, a->kwn[k]);
        } else {
            dict_set(r, f.vars, vcstr(r, m->names[j]), incref(a->kwv[k]));
            set[j] = true;
        }
    }
    for (int i = 0; i < m->n && ok; i++) {
        if (set[i]) continue;
        val d;
        if (m->kids[i]) ok = ev(r, m->kids[i], &d); /* defaults see the parameters before them */
        else d = mk_undef_hint(r, "parameter '%s' was not provided", m->names[i]);
        if (ok) dict_set(r, f.vars, vcstr(r, m->names[i]), d);
    }
    free(set);
    dict_set(r, f.vars, mk_obj(VT_STR, &g_key_varargs), mk_obj(VT_LIST, varargs));
    dict_set(r, f.vars, mk_obj(VT_STR, &g_key_kwargs), mk_obj(VT_DICT, kwargs));
    int rc = X_ERR;
    if (ok) {
        r->out = &buf;
        rc = exec(r, m->b);
        r->out = saved_out;
    }
    frame_pop(r, &f, saved_top);
    if (rc != X_OK) { fc_str_free(&buf); return false; }
    return sb_val(r, at, &buf, out);
}

static bool call_func(R *r, const node *at, val fn, const cargs *a, val *out)
{
    if (fn.t == VT_UNDEF) return fail_undef(r, at, fn);
    if (fn.t != VT_FUNC) return failf(r, at, "'%s' object is not callable", type_name(fn));
    jfunc *f = FUNC(fn);
    val sl[3];
    static const char *const p_range[] = { "start", "stop", "step" };
    static const char *const p_msg[] = { "message" };
    static const char *const p_fmt[] = { "format" };
    static const char *const p_get[] = { "key", "default" };
    static const char *const p_x[] = { "x" };
    switch (f->id) {
    case F_MACRO: return call_macro(r, at, f->macro, a, out);
    case F_RANGE: {
        if (a->nkw) return failf(r, at, "range() takes no keyword arguments");
        if (a->npos < 1 || a->npos > 3) return failf(r, at, "range expected 1 to 3 arguments, got %d", a->npos);
        if (!bind(r, at, "range", a, 3, p_range, sl)) return false;
        int64_t start = 0, stop, stp = 1;
        for (int i = 0; i < a->npos; i++)
            if (!is_intlike(a->pos[i])) return failf(r, at, "'%s' object cannot be interpreted as an integer", type_name(a->pos[i]));
        if (a->npos == 1) stop = int_of(a->pos[0]);
        else {
            start = int_of(a->pos[0]);
            stop = int_of(a->pos[1]);
            if (a->npos == 3) stp = int_of(a->pos[2]);
        }
        if (stp == 0) return failf(r, at, "range() arg 3 must not be zero");
        double count = stp > 0 ? ceil(((double)stop - (double)start) / (double)stp) : ceil(((double)start - (double)stop) / -(double)stp);
        if (count < 0) count = 0;
        if (count > MAX_RANGE) return failf(r, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
        jlist *l = list_new(r, (size_t)count, false);
        for (int64_t i = 0, x = start; i < (int64_t)count; i++, x += stp) list_push(r, l, mk_int(x));
        *out = mk_obj(VT_LIST, l);
        return work(r, at, l->n);
    }
    case F_DICT: return make_mapping(r, at, VT_DICT, a, out);
    case F_NAMESPACE: return make_mapping(r, at, VT_NS, a, out);
    case F_RAISE: {
        if (!bind(r, at, "raise_exception", a, 1, p_msg, sl)) return false;
        val s;
        if (!to_str(r, at, given(sl[0]) ? sl[0] : mk_undef(), &s)) return false;
        if (!r->err) r->err = fc_xstrdup(STR(s)->s); /* verbatim, as transformers raises it */
        decref(r, s);
        return false;
    }
    case F_STRFTIME: {
        jstr *fmt = NULL;
        if (!bind(r, at, "strftime_now", a, 1, p_fmt, sl) || !arg_str(r, at, "strftime_now", sl[0], &fmt)) return false;
        if (fmt->len > 256) return failf(r, at, "strftime_now format too long");
        time_t tt = (time_t)r->now;
        struct tm tm;
        if (!localtime_r(&tt, &tm)) return failf(r, at, "strftime_now: bad clock");
        char buf[8192];
        size_t k = fmt->len ? strftime(buf, sizeof buf, fmt->s, &tm) : 0;
        *out = vstr(r, buf, k);
        return true;
    }
    case M_ITEMS: case M_KEYS: case M_VALUES: case M_DCOPY: {
        if (!bind(r, at, "dict method", a, 0, NULL, sl)) return false;
        jdict *d = DICT(f->self);
        if (f->id == M_DCOPY) {
            jdict *c = dict_new(r, VT_DICT);
            for (size_t i = 0; i < d->n; i++) dict_set(r, c, incref(d->k[i]), incref(d->v[i]));
            *out = mk_obj(VT_DICT, c);
            return work(r, at, d->n);
        }
        jlist *l = list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) {
            if (f->id == M_KEYS) list_push(r, l, incref(d->k[i]));
            else if (f->id == M_VALUES) list_push(r, l, incref(d->v[i]));
            else {
                jlist *t = list_new(r, 2, true);
                list_push(r, t, incref(d->k[i]));
                list_push(r, t, incref(d->v[i]));
                list_push(r, l, mk_obj(VT_LIST, t));
            }
        }
        *out = mk_obj(VT_LIST, l);
        return work(r, at, d->n * 4);
    }
    case M_GET: {
        if (!bind(r, at, "get", a, 2, p_get, sl)) return false;
        if (!given(sl[0])) return failf(r, at, "get expected at least 1 argument, got 0");
        val *v = dict_find(DICT(f->self), &sl[0]);
        *out = v ? incref(*v) : given(sl[1]) ? incref(sl[1]) : mk_none();
        return work(r, at, DICT(f->self)->n);
    }
    case M_LINDEX: case M_LCOUNT: {
        if (!bind(r, at, "list method", a, 1, p_x, sl)) return false;
        if (!given(sl[0])) return failf(r, at, "expected 1 argument, got 0");
        jlist *l = LIST(f->self);
        int64_t c = 0, idx = -1;
        for (size_t i = 0; i < l->n; i++)
            if (v_eq(&l->v[i], &sl[0], 0)) { c++; if (idx < 0) idx = (int64_t)i; }
        if (f->id == M_LINDEX && idx < 0) return failf(r, at, "value is not in list");
        *out = mk_int(f->id == M_LINDEX ? idx : c);
        return work(r, at, l->n);
    }
    case M_LCOPY: {
        jlist *l = LIST(f->self), *c = list_new(r, l->n, false);
        for (size_t i = 0; i < l->n; i++) list_push(r, c, incref(l->v[i]));
        *out = mk_obj(VT_LIST, c);
        return work(r, at, l->n);
    }
    case M_CYCLE: {
        if (a->nkw) return failf(r, at, "cycle() takes no keyword arguments");
        if (!a->npos) return failf(r, at, "no items for cycling given");
        *out = incref(a->pos[LOOP(f->self)->i % (size_t)a->npos]);
        return true;
    }
    default:
        if (f->id >= M_STRIP && f->id <= M_RPARTITION) return call_str_method(r, at, f->id, STR(f->self), a, out);
        return failf(r, at, "internal error: bad function");
    }
}

/* ---- evaluating expressions ---- */

static bool eval_args(R *r, const node *n, cargs *a)
{
    memset(a, 0, sizeof *a);
    int total = n->n;
    if (!total) return true;
    val *vals = fc_xcalloc((size_t)total, sizeof(val));
    for (int i = 0; i < total; i++) {
        if (!ev(r, n->kids[i], &vals[i])) {
            for (int k = 0; k < i; k++) decref(r, vals[k]);
            free(vals);
            return false;
        }
    }
    a->pos = vals;
    a->npos = n->n_pos;
    a->kwv = vals + n->n_pos;
    a->nkw = total - n->n_pos;
    a->kwn = n->names ? n->names + n->n_pos : NULL;
    return true;
}

static void free_args(R *r, cargs *a)
{
    for (int i = 0; i < a->npos + a->nkw; i++) decref(r, a->pos[i]);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

static bool ev_inner(R *r, const node *e, val *out)
{
    switch (e->kind) {
    case E_CONST: *out = e->k; return true;
    case E_NAME:
        if (lookup(r, e->name, STR(e->k)->len, out)) return true;
        *out = mk_undef_hint(r, "'%.200s' is undefined", e->name);
        return true;
    case E_LIST: case E_TUPLE: {
        jlist *l = list_new(r, (size_t)e->n, e->kind == E_TUPLE);
        for (int i = 0; i < e->n; i++) {
            val x;
            if (!ev(r, e->kids[i], &x)) { decref(r, mk_obj(VT_LIST, l)); return false; }
            list_push(r, l, x);
        }
        *out = mk_obj(VT_LIST, l);
        return true;
    }
    case E_DICT: {
        jdict *d = dict_new(r, VT_DICT);
        for (int i = 0; i + 1 < e->n; i += 2) {
            val k, v;
            if (!ev(r, e->kids[i], &k)) { decref(r, mk_obj(VT_DICT, d)); return false; }
            if (!ev(r, e->kids[i + 1], &v)) { decref(r, k); decref(r, mk_obj(VT_DICT, d)); return false; }
            if (k.t == VT_LIST && !LIST(k)->tuple) { decref(r, k); decref(r, v); decref(r, mk_obj(VT_DICT, d)); return failf(r, e, "unhashable type: 'list'"); }
            if (k.t == VT_DICT) { decref(r, k); decref(r, v); decref(r, mk_obj(VT_DICT, d)); return failf(r, e, "unhashable type: 'dict'"); }
            dict_set(r, d, k, v);
        }
        *out = mk_obj(VT_DICT, d);
        return true;
    }
    case E_GETATTR: {
        val o;
        if (!ev(r, e->a, &o)) return false;
        bool ok = get_attr(r, e, o, e->name, STR(e->k)->len, out);
        decref(r, o);
        return ok;
    }
    case E_GETITEM: {
        val o, k;
        if (!ev(r, e->a, &o)) return false;
        if (!ev(r, e->b, &k)) { decref(r, o); return false; }
        bool ok = get_item(r, e, o, k, out);
        decref(r, o);
        decref(r, k);
        return ok;
    }
    case E_SLICE: {
        val o, x[3] = { mk_noarg(), mk_noarg(), mk_noarg() };
        const node *parts[3] = { e->b, e->c, e->d };
        if (!ev(r, e->a, &o)) return false;
        bool ok = true;
        for (int i = 0; i < 3 && ok; i++)
            if (parts[i]) ok = ev(r, parts[i], &x[i]);
        if (ok) ok = get_slice(r, e, o, x[0], x[1], x[2], out);
        for (int i = 0; i < 3; i++) decref(r, x[i]);
        decref(r, o);
        return ok;
    }
    case E_CALL: {
        val fn;
        cargs a;
        if (!ev(r, e->a, &fn)) return false;
        if (!eval_args(r, e, &a)) { decref(r, fn); return false; }
        r->depth++;
        bool ok = call_func(r, e, fn, &a, out);
        r->depth--;
        free_args(r, &a);
        decref(r, fn);
        return ok;
    }
    case E_FILTER: {
        val v;
        cargs a;
        if (e->a) {
            if (!ev(r, e->a, &v)) return false;
        } else {
            v = r->seed; /* the body of a filter block or block set */
            r->seed = mk_undef();
        }
        if (!eval_args(r, e, &a)) { decref(r, v); return false; }
        bool ok = apply_filter(r, e, e->name, v, &a, out);
        free_args(r, &a);
        decref(r, v);
        return ok;
    }
    case E_TEST: {
        val v;
        cargs a;
        bool res;
        if (!ev(r, e->a, &v)) return false;
        if (!eval_args(r, e, &a)) { decref(r, v); return false; }
        bool ok = apply_test(r, e, e->name, v, &a, &res);
        free_args(r, &a);
        decref(r, v);
        if (ok) *out = mk_bool(res != e->flag);
        return ok;
    }
    case E_BIN: {
        val x, y;
        if (!ev(r, e->a, &x)) return false;
        if (!ev(r, e->b, &y)) { decref(r, x); return false; }
        bool ok = binop(r, e, e->op, x, y, out);
        decref(r, x);
        decref(r, y);
        return ok;
    }
    case E_NEG: case E_POS: {
        val x;
        if (!ev(r, e->a, &x)) return false;
        bool ok = true;
        if (x.t == VT_FLOAT) *out = mk_float(e->kind == E_NEG ? -x.u.f : x.u.f);
        else if (is_intlike(x)) {
            int64_t i = int_of(x);
            if (e->kind == E_NEG && i == INT64_MIN) ok = failf(r, e, "integer overflow");
            else *out = mk_int(e->kind == E_NEG ? -i : i);
        } else if (x.t == VT_UNDEF) ok = fail_undef(r, e, x);
        else ok = failf(r, e, "bad operand type for unary %s: '%s'", e->kind == E_NEG ? "-" : "+", type_name(x));
        decref(r, x);
        return ok;
    }
    case E_NOT: {
        val x;
        if (!ev(r, e->a, &x)) return false;
        *out = mk_bool(!truthy(x));
        decref(r, x);
        return true;
    }
    case E_AND: case E_OR: {
        val x;
        if (!ev(r, e->a, &x)) return false;
        if (truthy(x) == (e->kind == E_OR)) { *out = x; return true; }
        decref(r, x);
        return ev(r, e->b, out);
    }
    case E_CMP: {
        val left;
        if (!ev(r, e->kids[0], &left)) return false;
        bool res = true;
        for (int i = 1; i < e->n && res; i++) {
            val right;
            if (!ev(r, e->kids[i], &right)) { decref(r, left); return false; }
            int op = e->ops[i - 1], c;
            bool ok = true;
            switch (op) {
            case O_EQ: res = v_eq(&left, &right, 0); break;
            case O_NE: res = !v_eq(&left, &right, 0); break;
            case O_IN: ok = v_in(r, e, left, right, &res); break;
            case O_NOTIN: ok = v_in(r, e, left, right, &res); res = !res; break;
            default:
                ok = v_cmp(r, e, left, right, op, &c, 0);
                res = ok && c != 2 && (op == O_LT ? c < 0 : op == O_LE ? c <= 0 : op == O_GT ? c > 0 : c >= 0);
            }
            decref(r, left);
            left = right;
            if (!ok) { decref(r, left); return false; }
        }
        decref(r, left);
        *out = mk_bool(res);
        return true;
    }
    case E_CONCAT: {
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        for (int i = 0; i < e->n; i++) {
            val x;
            if (!ev(r, e->kids[i], &x)) { fc_str_free(&b); return false; }
            bool ok = py_str_into(r, e, &b, x, 0);
            decref(r, x);
            if (!ok || !size_ok(r, e, b.len)) { fc_str_free(&b); return false; }
        }
        return sb_val(r, e, &b, out);
    }
    case E_COND: {
        val t;
        if (!ev(r, e->a, &t)) return false;
        bool yes = truthy(t);
        decref(r, t);
        if (yes) return ev(r, e->b, out);
        if (e->c) return ev(r, e->c, out);
        *out = mk_undef_hint(r, "the inline if-expression on line %d evaluated to false and no else section was defined.", e->line);
        return true;
    }
    default:
        return failf(r, e, "internal error: bad expression node %d", e->kind);
    }
}

static bool ev(R *r, const node *e, val *out)
{
    if (!step(r, e)) return false;
    if (++r->depth > MAX_EVAL_DEPTH) {
        r->depth--;
        return failf(r, e, "template recursion deeper than %d", MAX_EVAL_DEPTH);
    }
    bool ok = ev_inner(r, e, out);
    r->depth--;
    return ok;
}

/* ---- executing statements ---- */

static bool emit(R *r, const node *at, const char *s, size_t n)
{
    fc_str_putn(r->out, s, n);
    return size_ok(r, at, r->out->len);
}

/* Binds a target (name, tuple of names, namespace attribute); takes v. */
static bool assign(R *r, const node *t, val v)
{
    if (t->kind == E_NAME) {
        frame_set(r, t->k, v);
        return true;
    }
    if (t->kind == E_NSREF) {
        val ns = mk_undef();
        if (!lookup(r, t->name, STR(t->k)->len, &ns) || ns.t != VT_NS) {
            decref(r, ns);
            decref(r, v);
            return failf(r, t, "cannot assign attribute on non-namespace object");
        }
        if (t->attr[0] == '_') {
            decref(r, ns);
            decref(r, v);
            return failf(r, t, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'", t->attr);
        }
        dict_set(r, DICT(ns), vcstr(r, t->attr), v);
        decref(r, ns);
        return true;
    }
    /* a tuple of targets: unpack */
    jlist *items;
    bool ok = v.t == VT_UNDEF ? failf(r, t, "cannot unpack an undefined value") : iter_list(r, t, v, &items);
    decref(r, v);
    if (!ok) return false;
    if (items->n != (size_t)t->n) {
        if (items->n < (size_t)t->n) failf(r, t, "not enough values to unpack (expected %d, got %zu)", t->n, items->n);
        else failf(r, t, "too many values to unpack (expected %d)", t->n);
        decref(r, mk_obj(VT_LIST, items));
        return false;
    }
    for (int i = 0; i < t->n && ok; i++) ok = assign(r, t->kids[i], incref(items->v[i]));
    decref(r, mk_obj(VT_LIST, items));
    return ok;
}

/* Renders a body into a string value (block set, filter block). */
static int capture(R *r, const node *body, val *out)
{
    fc_str buf = { 0 }, *saved = r->out;
    fc_str_putn(&buf, "", 0);
    r->out = &buf;
    int rc = exec(r, body);
    r->out = saved;
    if (rc != X_OK) { fc_str_free(&buf); return rc; }
    return sb_val(r, body, &buf, out) ? X_OK : X_ERR;
}

static int exec_for(R *r, const node *s)
{
    val it;
    jlist *items;
    if (!ev(r, s->b, &it)) return X_ERR;
    if (it.t == VT_NS) { decref(r, it); return failf(r, s, "'Namespace' object is not iterable"), X_ERR; }
    bool ok = iter_list(r, s->b, it, &items);
    decref(r, it);
    if (!ok) return X_ERR;
    frame *outer = r->top;
    if (s->e) { /* {% for x in xs if cond %}: filtered before loop.* is computed */
        jlist *kept = list_new(r, 0, false);
        for (size_t i = 0; i < items->n && ok; i++) {
            frame f;
            val c;
            frame_push(r, &f, outer);
            ok = assign(r, s->a, incref(items->v[i])) && ev(r, s->e, &c);
            if (ok) {
                if (truthy(c)) list_push(r, kept, incref(items->v[i]));
                decref(r, c);
            }
            frame_pop(r, &f, outer);
        }
        decref(r, mk_obj(VT_LIST, items));
        items = kept;
        if (!ok) { decref(r, mk_obj(VT_LIST, items)); return X_ERR; }
    }
    int rc = X_OK;
    if (!items->n) {
        if (s->d) {
            frame f;
            frame_push(r, &f, outer);
            rc = exec(r, s->d);
            frame_pop(r, &f, outer);
        }
        decref(r, mk_obj(VT_LIST, items));
        return rc;
    }
    for (size_t i = 0; i < items->n; i++) {
        frame f;
        frame_push(r, &f, outer);
        jloop *L = obj_new(r, VT_LOOP, sizeof(jloop));
        L->i = i;
        L->items = LIST(incref(mk_obj(VT_LIST, items)));
        frame_set(r, mk_obj(VT_STR, &g_key_loop), mk_obj(VT_LOOP, L));
        rc = assign(r, s->a, incref(items->v[i])) ? exec(r, s->c) : X_ERR;
        frame_pop(r, &f, outer);
        if (rc == X_ERR) break;
        if (rc == X_BREAK) { rc = X_OK; break; }
        rc = X_OK;
    }
    decref(r, mk_obj(VT_LIST, items));
    return rc;
}

static int exec_inner(R *r, const node *s)
{
    switch (s->kind) {
    case S_BODY:
        for (int i = 0; i < s->n; i++) {
            int rc = exec(r, s->kids[i]);
            if (rc != X_OK) return rc;
        }
        return X_OK;
    case S_TEXT:
        return emit(r, s, STR(s->k)->s, STR(s->k)->len) ? X_OK : X_ERR;
    case S_OUT: {
        val v;
        if (!ev(r, s->a, &v)) return X_ERR;
        bool ok = py_str_into(r, s, r->out, v, 0) && size_ok(r, s, r->out->len);
        if (ok && v.t == VT_STR) ok = work(r, s, STR(v)->len);
        decref(r, v);
        return ok ? X_OK : X_ERR;
    }
    case S_IF:
        for (const node *n = s; n;) {
            val c;
            if (!ev(r, n->a, &c)) return X_ERR;
            bool yes = truthy(c);
            decref(r, c);
            if (yes) return exec(r, n->b);
            n = n->c;
            if (n && n->kind != S_IF) return exec(r, n);
        }
        return X_OK;
    case S_FOR:
        return exec_for(r, s);
    case S_SET: {
        val v;
        if (!ev(r, s->b, &v)) return X_ERR;
        return assign(r, s->a, v) ? X_OK : X_ERR;
    }
    case S_SETBLOCK: case S_FILTERBLOCK: {
        val v;
        int rc = capture(r, s->b, &v);
        if (rc != X_OK) return rc;
        const node *f = s->kind == S_SETBLOCK ? s->c : s->a;
        if (f) {
            val seeded;
            decref(r, r->seed);
            r->seed = v;
            bool ok = ev(r, f, &seeded);
            decref(r, r->seed);
            r->seed = mk_undef();
            if (!ok) return X_ERR;
            v = seeded;
        }
        if (s->kind == S_SETBLOCK) return assign(r, s->a, v) ? X_OK : X_ERR;
        bool ok = py_str_into(r, s, r->out, v, 0) && size_ok(r, s, r->out->len);
        decref(r, v);
        return ok ? X_OK : X_ERR;
    }
    case S_MACRO:
        frame_set(r, s->k, func_new(r, F_MACRO, mk_none(), s));
        return X_OK;
    case S_BREAK: return X_BREAK;
    case S_CONTINUE: return X_CONTINUE;
    case S_WITH: {
        int n = s->n / 2;
        val *vals = fc_xcalloc((size_t)n + 1, sizeof(val));
        for (int i = 0; i < n; i++)
            if (!ev(r, s->kids[2 * i + 1], &vals[i])) {
                for (int k = 0; k < i; k++) decref(r, vals[k]);
                free(vals);
                return X_ERR;
            }
        frame f, *outer = r->top;
        frame_push(r, &f, outer);
        bool ok = true;
        for (int i = 0; i < n; i++) {
            if (ok) ok = assign(r, s->kids[2 * i], vals[i]);
            else decref(r, vals[i]);
        }
        free(vals);
        int rc = ok ? exec(r, s->b) : X_ERR;
        frame_pop(r, &f, outer);
        return rc;
    }
    default:
        return failf(r, s, "internal error: bad statement node %d", s->kind), X_ERR;
    }
}

static int exec(R *r, const node *s)
{
    if (!step(r, s)) return X_ERR;
    if (++r->depth > MAX_EVAL_DEPTH) {
        r->depth--;
        return failf(r, s, "template recursion deeper than %d", MAX_EVAL_DEPTH), X_ERR;
    }
    int rc = exec_inner(r, s);
    r->depth--;
    return rc;
}

/* ---- rendering ---- */

static bool from_json(R *r, const cJSON *j, val *out, int depth)
{
    if (depth > 500) return failf(r, NULL, "context nested too deeply");
    if (cJSON_IsNull(j) || cJSON_IsInvalid(j)) { *out = mk_none(); return true; }
    if (cJSON_IsTrue(j)) { *out = mk_bool(true); return true; }
    if (cJSON_IsFalse(j)) { *out = mk_bool(false); return true; }
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        *out = isfinite(d) && d == floor(d) && fabs(d) < 9.2e18 ? mk_int((int64_t)d) : mk_float(d);
        return true;
    }
    if (cJSON_IsString(j)) { *out = vcstr(r, j->valuestring ? j->valuestring : ""); return true; }
    if (cJSON_IsArray(j)) {
        jlist *l = list_new(r, 0, false);
        *out = mk_obj(VT_LIST, l);
        for (const cJSON *c = j->child; c; c = c->next) {
            val x;
            if (!from_json(r, c, &x, depth + 1)) return false;
            list_push(r, l, x);
        }
        return step(r, NULL);
    }
    if (cJSON_IsObject(j)) {
        jdict *d = dict_new(r, VT_DICT);
        *out = mk_obj(VT_DICT, d);
        for (const cJSON *c = j->child; c; c = c->next) {
            val x;
            if (!from_json(r, c, &x, depth + 1)) return false;
            dict_set(r, d, vcstr(r, c->string ? c->string : ""), x);
        }
        return step(r, NULL);
    }
    *out = mk_none();
    return true;
}

char *fc_jinja_render(const fc_jinja *t, const cJSON *context, const fc_jinja_opts *opts, char **err)
{
    if (err) *err = NULL;
    if (!t) {
        if (err) *err = fc_xstrdup("no template");
        return NULL;
    }
    R r;
    memset(&r, 0, sizeof r);
    r.t = t;
    r.seed = mk_undef();
    r.max_out = opts && opts->max_output ? opts->max_output : DEFAULT_MAX_OUTPUT;
    r.max_mem = opts && opts->max_memory ? opts->max_memory : DEFAULT_MAX_MEMORY;
    r.max_steps = opts && opts->max_steps > 0 ? opts->max_steps : DEFAULT_MAX_STEPS;
    r.now = opts && opts->now ? opts->now : (long long)time(NULL);
    frame root;
    frame_push(&r, &root, NULL);
    r.root = &root;
    fc_str out = { 0 };
    fc_str_putn(&out, "", 0);
    r.out = &out;
    bool ok = true;
    if (context) {
        if (!cJSON_IsObject(context)) {
            ok = failf(&r, NULL, "the context must be a JSON object");
        } else {
            for (const cJSON *c = context->child; c && ok; c = c->next) {
                val v;
                ok = from_json(&r, c, &v, 0);
                if (ok) frame_set(&r, vcstr(&r, c->string ? c->string : ""), v);
            }
        }
    }
    if (ok) ok = exec(&r, t->root) == X_OK;
    free_all(&r);
    if (!ok) {
        fc_str_free(&out);
        if (err) *err = r.err ? r.err : fc_xstrdup("render failed");
        else free(r.err);
        return NULL;
    }
    free(r.err);
    return fc_str_take(&out);
}
