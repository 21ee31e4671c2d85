/*
 * jinja_value.c: values of the Jinja2 interpreter (see jinja_impl.h) and the
 * Python semantics Jinja2 inherits for them.
 *
 * Values are tagged unions; strings, lists, dicts, namespaces, functions and
 * loop objects are reference-counted heap objects. A render also threads
 * every object it makes on one list, so whatever an error path or a
 * namespace cycle leaves behind is freed when the render ends. Here too: the
 * render's error and budgets (steps, memory, output), str() and repr() with
 * Python's float repr, json.dumps as transformers' tojson calls it,
 * comparisons, arithmetic (floor division, Python's %), the sandboxed
 * attribute and item access of jinja2.sandbox, and binding call arguments.
 * All reimplemented from the Python documentation.
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

/* ---- values ---- */

jstr fc_jinja_empty = { { -1, VT_STR, 0, NULL, NULL }, 0, (char *)"" };

/* ---- render state and object lifetime ---- */

void *fc_jinja_obj_new(R *r, int type, size_t size)
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

/* Frees one object whose count reached zero; its children are queued. */
static void obj_destroy(R *r, obj *o)
{
    switch (o->type) {
    case VT_LIST: {
        jlist *l = (jlist *)o;
        for (size_t i = 0; i < l->n; i++) fc_jinja_decref(r, l->v[i]);
        free(l->v);
        break;
    }
    case VT_DICT: case VT_NS: {
        jdict *d = (jdict *)o;
        for (size_t i = 0; i < d->n; i++) { fc_jinja_decref(r, d->k[i]); fc_jinja_decref(r, d->v[i]); }
        free(d->k);
        free(d->v);
        free(d->idx);
        break;
    }
    case VT_FUNC: fc_jinja_decref(r, ((jfunc *)o)->self); break;
    case VT_LOOP: fc_jinja_decref(r, mk_obj(VT_LIST, ((jloop *)o)->items)); break;
    default: break;
    }
    if (o->prev) o->prev->next = o->next;
    else r->live = o->next;
    if (o->next) o->next->prev = o->prev;
    r->mem -= o->size;
    free(o);
}

void fc_jinja_decref(R *r, val v)
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
void fc_jinja_free_all(R *r)
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
    jstr *j = fc_jinja_obj_new(r, VT_STR, sizeof(jstr) + n + 1);
    j->s = (char *)(j + 1);
    if (n) memcpy(j->s, s, n);
    j->s[n] = '\0';
    j->len = n;
    return j;
}

val fc_jinja_vstr(R *r, const char *s, size_t n) { return mk_obj(VT_STR, str_new(r, s, n)); }
val fc_jinja_vcstr(R *r, const char *s) { return fc_jinja_vstr(r, s, strlen(s)); }

jlist *fc_jinja_list_new(R *r, size_t cap, bool tuple)
{
    jlist *l = fc_jinja_obj_new(r, VT_LIST, sizeof(jlist));
    l->tuple = tuple;
    if (cap) {
        l->v = fc_xmalloc(cap * sizeof(val));
        l->cap = cap;
        charge(r, &l->h, (ptrdiff_t)(cap * sizeof(val)));
    }
    return l;
}

/* Takes v. */
void fc_jinja_list_push(R *r, jlist *l, val v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        l->v = fc_xrealloc(l->v, cap * sizeof(val));
        charge(r, &l->h, (ptrdiff_t)((cap - l->cap) * sizeof(val)));
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

jdict *fc_jinja_dict_new(R *r, int type)
{
    return fc_jinja_obj_new(r, type, sizeof(jdict));
}

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

val *fc_jinja_dict_find(jdict *d, const val *k)
{
    uint64_t h;
    if (d->idx && key_hash(k, &h)) {
        size_t m = d->idx_cap - 1;
        for (size_t p = h & m; d->idx[p]; p = (p + 1) & m)
            if (fc_jinja_v_eq(&d->k[d->idx[p] - 1], k, 0)) return &d->v[d->idx[p] - 1];
        return NULL;
    }
    for (size_t i = 0; i < d->n; i++)
        if (fc_jinja_v_eq(&d->k[i], k, 0)) return &d->v[i];
    return NULL;
}

val *fc_jinja_dict_find_str(const jdict *d, const char *s, size_t n)
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
void fc_jinja_dict_set(R *r, jdict *d, val k, val v)
{
    val *slot = fc_jinja_dict_find(d, &k);
    if (slot) {
        fc_jinja_decref(r, k);
        val old = *slot;
        *slot = v;
        fc_jinja_decref(r, old);
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

val fc_jinja_func_new(R *r, int id, val self, const node *macro)
{
    jfunc *f = fc_jinja_obj_new(r, VT_FUNC, sizeof(jfunc));
    f->id = id;
    f->self = self;
    f->macro = macro;
    return mk_obj(VT_FUNC, f);
}

/* An Undefined that raises `fmt` when used strictly. */
val fc_jinja_mk_undef_hint(R *r, const char *fmt, ...)
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

const char *fc_jinja_type_name(val v)
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

bool fc_jinja_truthy(val v)
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

/* ---- render errors and budgets ---- */

bool fc_jinja_failf(R *r, const node *at, const char *fmt, ...)
{
    if (r->err) return false;
    va_list ap;
    va_start(ap, fmt);
    char *m = fc_jinja_vformat(fmt, ap);
    va_end(ap);
    size_t n = strlen(m) + 32;
    r->err = fc_xmalloc(n);
    if (at) snprintf(r->err, n, "line %d: %s", at->line, m);
    else snprintf(r->err, n, "%s", m);
    free(m);
    return false;
}

/* Using an Undefined strictly: jinja2's UndefinedError. */
bool fc_jinja_fail_undef(R *r, const node *at, val u)
{
    if (u.t == VT_UNDEF && u.u.o) return fc_jinja_failf(r, at, "%s", STR(u)->s);
    return fc_jinja_failf(r, at, "undefined value");
}

bool fc_jinja_step(R *r, const node *at)
{
    if (++r->steps > r->max_steps) return fc_jinja_failf(r, at, "template needs more than %lld steps", r->max_steps);
    if (r->mem > r->max_mem) return fc_jinja_failf(r, at, "template needs more than %zu bytes of memory", r->max_mem);
    return true;
}

/* Charges the copying of n bytes or items to the step budget. */
bool fc_jinja_work(R *r, const node *at, size_t n)
{
    r->steps += (long long)(n >> 6);
    return fc_jinja_step(r, at);
}

bool fc_jinja_size_ok(R *r, const node *at, size_t n)
{
    if (n > r->max_out) return fc_jinja_failf(r, at, "string or list longer than %zu", r->max_out);
    return true;
}

/* The buffer as a string value (the buffer is freed). */
bool fc_jinja_sb_val(R *r, const node *at, fc_str *b, val *out)
{
    if (!fc_jinja_size_ok(r, at, b->len) || !fc_jinja_work(r, at, b->len)) { fc_str_free(b); return false; }
    *out = fc_jinja_vstr(r, b->p ? b->p : "", b->len);
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
        int32_t c = fc_jinja_u8dec(s + i, n - i, &a);
        if (c == q || c == '\\') { fc_str_putc(b, '\\'); fc_str_putc(b, (char)c); }
        else if (c == '\n') fc_str_puts(b, "\\n");
        else if (c == '\r') fc_str_puts(b, "\\r");
        else if (c == '\t') fc_str_puts(b, "\\t");
        else if (c >= 0xdc80 && c <= 0xdcff) fc_str_printf(b, "\\udc%02x", c & 0xff);
        else if (c < 0x7f && c >= 0x20) fc_str_putc(b, (char)c);
        else if (c >= 0x80 && fc_jinja_py_printable(c)) fc_str_putn(b, s + i, a);
        else if (c <= 0xff) fc_str_printf(b, "\\x%02x", c);
        else if (c <= 0xffff) fc_str_printf(b, "\\u%04x", c);
        else fc_str_printf(b, "\\U%08x", c);
    }
    fc_str_putc(b, q);
}

bool fc_jinja_py_str_into(R *r, const node *at, fc_str *b, val v, int depth)
{
    if (v.t == VT_UNDEF) return true;
    if (v.t == VT_STR) { fc_str_putn(b, STR(v)->s, STR(v)->len); return true; }
    return fc_jinja_py_repr(r, at, b, v, depth);
}

bool fc_jinja_py_repr(R *r, const node *at, fc_str *b, val v, int depth)
{
    if (depth > 200) return fc_jinja_failf(r, at, "value nested too deeply to print");
    if (b->len > r->max_out) return fc_jinja_size_ok(r, at, b->len);
    char tmp[64];
    switch (v.t) {
    case VT_UNDEF: fc_str_puts(b, "Undefined"); return true;
    case VT_NONE: fc_str_puts(b, "None"); return true;
    case VT_BOOL: fc_str_puts(b, v.u.b ? "True" : "False"); return true;
    case VT_INT: fc_str_printf(b, "%lld", (long long)v.u.i); return true;
    case VT_FLOAT: fc_jinja_fmt_float(v.u.f, tmp, sizeof tmp); fc_str_puts(b, tmp); return true;
    case VT_STR: repr_str(b, STR(v)->s, STR(v)->len); return true;
    case VT_LIST: {
        jlist *l = LIST(v);
        fc_str_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) fc_str_puts(b, ", ");
            if (!fc_jinja_py_repr(r, at, b, l->v[i], depth + 1)) return false;
        }
        if (l->tuple && l->n == 1) fc_str_putc(b, ',');
        fc_str_putc(b, l->tuple ? ')' : ']');
        return fc_jinja_work(r, at, l->n * 16);
    }
    case VT_DICT: case VT_NS: {
        jdict *d = DICT(v);
        if (v.t == VT_NS) fc_str_puts(b, "<Namespace ");
        fc_str_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) fc_str_puts(b, ", ");
            if (!fc_jinja_py_repr(r, at, b, d->k[i], depth + 1)) return false;
            fc_str_puts(b, ": ");
            if (!fc_jinja_py_repr(r, at, b, d->v[i], depth + 1)) return false;
        }
        fc_str_putc(b, '}');
        if (v.t == VT_NS) fc_str_putc(b, '>');
        return fc_jinja_work(r, at, d->n * 16);
    }
    case VT_FUNC:
        if (FUNC(v)->macro) fc_str_printf(b, "<Macro '%s'>", FUNC(v)->macro->name);
        else fc_str_puts(b, "<built-in function>");
        return true;
    case VT_LOOP:
        fc_str_printf(b, "<LoopContext %zu/%zu>", LOOP(v)->i + 1, LOOP(v)->items->n);
        return true;
    default: return fc_jinja_failf(r, at, "internal error: bad value");
    }
}

/* str(v) as a string value. */
bool fc_jinja_to_str(R *r, const node *at, val v, val *out)
{
    if (v.t == VT_STR) { *out = incref(v); return true; }
    if (v.t == VT_UNDEF) { *out = mk_obj(VT_STR, &fc_jinja_empty); return true; }
    fc_str b = { 0 };
    if (!fc_jinja_py_str_into(r, at, &b, v, 0)) { fc_str_free(&b); return false; }
    return fc_jinja_sb_val(r, at, &b, out);
}

/* ---- json.dumps (transformers' tojson) ---- */

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

bool fc_jinja_json_dump(R *r, const node *at, fc_str *b, val v, const json_opts *o, int level)
{
    if (level > 200) return fc_jinja_failf(r, at, "value nested too deeply for tojson");
    if (b->len > r->max_out) return fc_jinja_size_ok(r, at, b->len);
    char tmp[64];
    switch (v.t) {
    case VT_NONE: fc_str_puts(b, "null"); return true;
    case VT_BOOL: fc_str_puts(b, v.u.b ? "true" : "false"); return true;
    case VT_INT: fc_str_printf(b, "%lld", (long long)v.u.i); return true;
    case VT_FLOAT:
        if (isnan(v.u.f)) fc_str_puts(b, "NaN");
        else if (isinf(v.u.f)) fc_str_puts(b, v.u.f > 0 ? "Infinity" : "-Infinity");
        else { fc_jinja_fmt_float(v.u.f, tmp, sizeof tmp); fc_str_puts(b, tmp); }
        return true;
    case VT_STR: json_str(b, STR(v)->s, STR(v)->len, o->ensure_ascii); return true;
    case VT_LIST: {
        jlist *l = LIST(v);
        if (!l->n) { fc_str_puts(b, "[]"); return true; }
        fc_str_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) fc_str_putn(b, o->item_sep, o->item_sep_len);
            if (o->indent_on) json_newline(b, o, level + 1);
            if (!fc_jinja_json_dump(r, at, b, l->v[i], o, level + 1)) return false;
        }
        if (o->indent_on) json_newline(b, o, level);
        fc_str_putc(b, ']');
        return fc_jinja_work(r, at, l->n * 16);
    }
    case VT_DICT: {
        jdict *d = DICT(v);
        if (!d->n) { fc_str_puts(b, "{}"); return true; }
        size_t *order = fc_xmalloc(d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) {
            for (size_t i = 0; i < d->n; i++)
                if (d->k[i].t != VT_STR) { free(order); return fc_jinja_failf(r, at, "tojson(sort_keys=True) needs string keys"); }
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
            if (!fc_jinja_work(r, at, d->n * d->n)) { free(order); return false; }
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
            case VT_FLOAT: fc_jinja_fmt_float(k.u.f, tmp, sizeof tmp); fc_str_printf(b, "\"%s\"", tmp); break;
            default: free(order); return fc_jinja_failf(r, at, "keys must be str, int, float, bool or None, not %s", fc_jinja_type_name(k));
            }
            fc_str_putn(b, o->key_sep, o->key_sep_len);
            if (!fc_jinja_json_dump(r, at, b, d->v[i], o, level + 1)) { free(order); return false; }
        }
        free(order);
        if (o->indent_on) json_newline(b, o, level);
        fc_str_putc(b, '}');
        return fc_jinja_work(r, at, d->n * 16);
    }
    default:
        return fc_jinja_failf(r, at, "Object of type %s is not JSON serializable", fc_jinja_type_name(v));
    }
}

/* ---- comparisons ---- */

bool fc_jinja_v_eq(const val *a, const val *b, int depth)
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
            if (!fc_jinja_v_eq(&x->v[i], &y->v[i], depth + 1)) return false;
        return true;
    }
    case VT_DICT: {
        jdict *x = DICT(*a), *y = DICT(*b);
        if (x == y) return true;
        if (x->n != y->n) return false;
        for (size_t i = 0; i < x->n; i++) {
            const val *w = fc_jinja_dict_find(y, &x->k[i]);
            if (!w || !fc_jinja_v_eq(&x->v[i], w, depth + 1)) return false;
        }
        return true;
    }
    default: return a->u.o == b->u.o;
    }
}

/* Python's ordering; *res < 0, 0, > 0. */
bool fc_jinja_v_cmp(R *r, const node *at, val a, val b, int op, int *res, int depth)
{
    if (a.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, a);
    if (b.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, b);
    if (depth > 200) return fc_jinja_failf(r, at, "values nested too deeply to compare");
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
            if (!fc_jinja_v_eq(&x->v[i], &y->v[i], 0)) return fc_jinja_v_cmp(r, at, x->v[i], y->v[i], op, res, depth + 1);
        *res = (x->n > y->n) - (x->n < y->n);
        return true;
    }
    return fc_jinja_failf(r, at, "'%s' not supported between instances of '%s' and '%s'", fc_jinja_op_text[op], fc_jinja_type_name(a), fc_jinja_type_name(b));
}

/* a in b */
bool fc_jinja_v_in(R *r, const node *at, val a, val b, bool *res)
{
    switch (b.t) {
    case VT_UNDEF: *res = false; return true;
    case VT_STR:
        if (a.t != VT_STR) return fc_jinja_failf(r, at, "'in <string>' requires string as left operand, not %s", fc_jinja_type_name(a));
        *res = STR(a)->len == 0 || memmem(STR(b)->s, STR(b)->len, STR(a)->s, STR(a)->len) != NULL;
        return fc_jinja_work(r, at, STR(b)->len);
    case VT_LIST:
        *res = false;
        for (size_t i = 0; i < LIST(b)->n && !*res; i++) *res = fc_jinja_v_eq(&a, &LIST(b)->v[i], 0);
        return fc_jinja_work(r, at, LIST(b)->n);
    case VT_DICT:
        *res = fc_jinja_dict_find(DICT(b), &a) != NULL;
        return fc_jinja_work(r, at, DICT(b)->n);
    default:
        return fc_jinja_failf(r, at, "argument of type '%s' is not iterable", fc_jinja_type_name(b));
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

static bool repeat(R *r, const node *at, val seq, int64_t times, val *out)
{
    if (times < 0) times = 0;
    if (seq.t == VT_STR) {
        size_t n = STR(seq)->len;
        if (n && (uint64_t)times > r->max_out / n) return fc_jinja_size_ok(r, at, SIZE_MAX);
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        for (int64_t i = 0; i < times; i++) fc_str_putn(&b, STR(seq)->s, n);
        return fc_jinja_sb_val(r, at, &b, out);
    }
    jlist *l = LIST(seq);
    if (l->n && (uint64_t)times > MAX_ITEMS / l->n) return fc_jinja_failf(r, at, "list longer than %u items", MAX_ITEMS);
    jlist *o = fc_jinja_list_new(r, l->n * (size_t)times, l->tuple);
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < l->n; j++) fc_jinja_list_push(r, o, incref(l->v[j]));
    *out = mk_obj(VT_LIST, o);
    return fc_jinja_work(r, at, o->n * 8);
}

bool fc_jinja_binop(R *r, const node *at, int op, val a, val b, val *out)
{
    if (op == O_MOD && a.t == VT_STR) return fc_jinja_py_format(r, at, a, b, out);
    if (a.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, a);
    if (b.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, b);
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
            if (fy == 0) return fc_jinja_failf(r, at, "division by zero");
            *out = mk_float(ints ? (double)x / (double)y : fx / fy);
            return true;
        case O_FDIV: case O_MOD:
            if (ints) {
                if (y == 0) return fc_jinja_failf(r, at, op == O_MOD ? "integer modulo by zero" : "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) { if (op == O_MOD) { *out = mk_int(0); return true; } break; }
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
                *out = mk_int(op == O_FDIV ? q : m);
                return true;
            } else {
                if (fy == 0) return fc_jinja_failf(r, at, op == O_MOD ? "float modulo" : "float floor division by zero");
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
            if (fx == 0 && fy < 0) return fc_jinja_failf(r, at, "0.0 cannot be raised to a negative power");
            *out = mk_float(pow(fx, fy));
            return true;
        default: break;
        }
    overflow:
        return fc_jinja_failf(r, at, "integer overflow (FastChat-C integers are 64-bit)");
    }
    if (op == O_ADD && a.t == VT_STR && b.t == VT_STR) {
        size_t n = STR(a)->len + STR(b)->len;
        if (!fc_jinja_size_ok(r, at, n) || !fc_jinja_work(r, at, n)) return false;
        fc_str bb = { 0 };
        fc_str_putn(&bb, STR(a)->s, STR(a)->len);
        fc_str_putn(&bb, STR(b)->s, STR(b)->len);
        return fc_jinja_sb_val(r, at, &bb, out);
    }
    if (op == O_ADD && a.t == VT_LIST && b.t == VT_LIST && LIST(a)->tuple == LIST(b)->tuple) {
        jlist *x = LIST(a), *y = LIST(b);
        if (x->n + y->n > MAX_ITEMS) return fc_jinja_failf(r, at, "list longer than %u items", MAX_ITEMS);
        jlist *l = fc_jinja_list_new(r, x->n + y->n, x->tuple);
        for (size_t i = 0; i < x->n; i++) fc_jinja_list_push(r, l, incref(x->v[i]));
        for (size_t i = 0; i < y->n; i++) fc_jinja_list_push(r, l, incref(y->v[i]));
        *out = mk_obj(VT_LIST, l);
        return fc_jinja_work(r, at, l->n * 8);
    }
    if (op == O_MUL && (a.t == VT_STR || a.t == VT_LIST) && is_intlike(b)) return repeat(r, at, a, int_of(b), out);
    if (op == O_MUL && (b.t == VT_STR || b.t == VT_LIST) && is_intlike(a)) return repeat(r, at, b, int_of(a), out);
    return fc_jinja_failf(r, at, "unsupported operand type(s) for %s: '%s' and '%s'", fc_jinja_op_text[op], fc_jinja_type_name(a), fc_jinja_type_name(b));
}

/* ---- attribute and item access (jinja2.sandbox getattr / getitem) ---- */

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
const char *fc_jinja_obj_type_repr(val v, char *buf, size_t cap)
{
    if (v.t == VT_NONE) return "None";
    snprintf(buf, cap, "%s object", fc_jinja_type_name(v));
    return buf;
}

bool fc_jinja_get_attr(R *r, const node *at, val o, const char *name, size_t n, val *out)
{
    char tb[64];
    if (o.t == VT_UNDEF) {
        /* Undefined's own dunder attributes exist, and the sandbox hides them */
        if (n >= 2 && name[0] == '_' && name[1] == '_') { *out = mk_undef(); return true; }
        return fc_jinja_fail_undef(r, at, o);
    }
    if (o.t == VT_STR || o.t == VT_LIST || o.t == VT_DICT) {
        int t = o.t == VT_LIST && LIST(o)->tuple ? -1 : o.t; /* tuples have index/count but no copy */
        for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
            if ((methods[i].on == o.t) && strlen(methods[i].name) == n && !memcmp(methods[i].name, name, n) &&
                !(t == -1 && methods[i].id == M_LCOPY)) {
                *out = fc_jinja_func_new(r, methods[i].id, incref(o), NULL);
                return true;
            }
        if (t != -1 && strlen(name) == n && unsafe_method(o.t, name)) {
            *out = fc_jinja_mk_undef_hint(r, "access to attribute '%s' of '%s' object is unsafe.", name, fc_jinja_type_name(o));
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
            *out = i > 0 ? incref(L->items->v[i - 1]) : fc_jinja_mk_undef_hint(r, "there is no previous item");
            return true;
        }
        if (IS("nextitem")) {
            *out = i + 1 < len ? incref(L->items->v[i + 1]) : fc_jinja_mk_undef_hint(r, "there is no next item");
            return true;
        }
        if (IS("cycle")) { *out = fc_jinja_func_new(r, M_CYCLE, incref(o), NULL); return true; }
#undef IS
    }
    if (o.t == VT_DICT || o.t == VT_NS) {
        val *v = fc_jinja_dict_find_str(DICT(o), name, n);
        if (v) { *out = incref(*v); return true; }
    }
    *out = fc_jinja_mk_undef_hint(r, "'%s' has no attribute '%.*s'", fc_jinja_obj_type_repr(o, tb, sizeof tb), (int)(n > 200 ? 200 : n), name);
    return true;
}

/* Byte offset of code point `idx` of s (idx <= its length). */
size_t fc_jinja_cp_offset(const char *s, size_t n, size_t idx)
{
    size_t i = 0, a;
    for (size_t k = 0; k < idx && i < n; k++, i += a) fc_jinja_u8dec(s + i, n - i, &a);
    return i;
}

bool fc_jinja_get_item(R *r, const node *at, val o, val key, val *out)
{
    char tb[64];
    if (o.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, o);
    if ((o.t == VT_LIST || o.t == VT_STR) && is_intlike(key)) {
        int64_t i = int_of(key);
        size_t len = o.t == VT_LIST ? LIST(o)->n : fc_jinja_u8len(STR(o)->s, STR(o)->len);
        if (o.t == VT_STR && !fc_jinja_work(r, at, STR(o)->len)) return false;
        if (i < 0) i += (int64_t)len;
        if (i >= 0 && (uint64_t)i < len) {
            if (o.t == VT_LIST) { *out = incref(LIST(o)->v[i]); return true; }
            size_t b = fc_jinja_cp_offset(STR(o)->s, STR(o)->len, (size_t)i), a;
            fc_jinja_u8dec(STR(o)->s + b, STR(o)->len - b, &a);
            *out = fc_jinja_vstr(r, STR(o)->s + b, a);
            return true;
        }
    } else if (o.t == VT_DICT) {
        val *v = fc_jinja_dict_find(DICT(o), &key);
        if (v) { *out = incref(*v); return true; }
    }
    if (key.t == VT_STR) return fc_jinja_get_attr(r, at, o, STR(key)->s, STR(key)->len, out);
    fc_str b = { 0 };
    if (!fc_jinja_py_repr(r, at, &b, key, 0)) { fc_str_free(&b); return false; }
    *out = fc_jinja_mk_undef_hint(r, "%s has no element %.200s", fc_jinja_obj_type_repr(o, tb, sizeof tb), b.p);
    fc_str_free(&b);
    return true;
}

static bool slice_index(R *r, const node *at, val v, bool *given, int64_t *out)
{
    *given = false;
    if (v.t == VT_NOARG || v.t == VT_NONE) return true;
    if (!is_intlike(v)) {
        if (v.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, v);
        return fc_jinja_failf(r, at, "slice indices must be integers or None or have an __index__ method");
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

bool fc_jinja_get_slice(R *r, const node *at, val o, val vstart, val vstop, val vstep, val *out)
{
    if (o.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, o);
    bool gs, ge, gp;
    int64_t start = 0, stop = 0, stp = 1;
    if (!slice_index(r, at, vstart, &gs, &start) || !slice_index(r, at, vstop, &ge, &stop) ||
        !slice_index(r, at, vstep, &gp, &stp))
        return false;
    if (!gp) stp = 1;
    if (stp == 0) return fc_jinja_failf(r, at, "slice step cannot be zero");
    if (stp == INT64_MIN) stp = -INT64_MAX;
    if (o.t != VT_STR && o.t != VT_LIST) {
        char tb[64];
        *out = fc_jinja_mk_undef_hint(r, "%s has no element slice", fc_jinja_obj_type_repr(o, tb, sizeof tb));
        return true;
    }
    size_t *offs = NULL;
    int64_t len;
    if (o.t == VT_STR) {
        jstr *s = STR(o);
        if (!fc_jinja_work(r, at, s->len)) return false;
        offs = fc_xmalloc((s->len + 1) * sizeof(size_t));
        size_t k = 0, a;
        for (size_t i = 0; i < s->len; i += a) { offs[k++] = i; fc_jinja_u8dec(s->s + i, s->len - i, &a); }
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
        return fc_jinja_sb_val(r, at, &b, out);
    }
    jlist *l = fc_jinja_list_new(r, (size_t)count, LIST(o)->tuple);
    int64_t i = start;
    for (uint64_t k = 0; k < count; k++, i += stp) fc_jinja_list_push(r, l, incref(LIST(o)->v[i]));
    *out = mk_obj(VT_LIST, l);
    return fc_jinja_work(r, at, (size_t)count);
}

/* ---- call arguments ---- */

/* Binds arguments to parameter slots by position, then by keyword. Slots
 * are borrowed; unfilled ones are VT_NOARG. */
bool fc_jinja_bind(R *r, const node *at, const char *fname, const cargs *a, int n, const char *const *names, val *slots)
{
    for (int i = 0; i < n; i++) slots[i] = mk_noarg();
    if (a->npos > n) return fc_jinja_failf(r, at, "%s() takes at most %d argument(s) (%d given)", fname, n, a->npos);
    for (int i = 0; i < a->npos; i++) slots[i] = a->pos[i];
    for (int k = 0; k < a->nkw; k++) {
        int j = 0;
        while (j < n && strcmp(names[j], a->kwn[k])) j++;
        if (j == n) return fc_jinja_failf(r, at, "%s() got an unexpected keyword argument '%s'", fname, a->kwn[k]);
        if (slots[j].t != VT_NOARG) return fc_jinja_failf(r, at, "%s() got multiple values for argument '%s'", fname, a->kwn[k]);
        slots[j] = a->kwv[k];
    }
    return true;
}

bool fc_jinja_arg_int(R *r, const node *at, const char *what, val v, int64_t dflt, int64_t *out)
{
    if (!given(v)) { *out = dflt; return true; }
    if (!is_intlike(v)) return fc_jinja_failf(r, at, "%s: an integer is required, not '%s'", what, fc_jinja_type_name(v));
    *out = int_of(v);
    return true;
}

bool fc_jinja_arg_str(R *r, const node *at, const char *what, val v, jstr **out)
{
    if (v.t != VT_STR) return fc_jinja_failf(r, at, "%s: expected a string, not '%s'", what, fc_jinja_type_name(v));
    *out = STR(v);
    return true;
}

/* The items an iterable yields, as a list (new reference): lists and tuples
 * as they are, dict keys, the characters of a string; Undefined is empty. */
bool fc_jinja_iter_list(R *r, const node *at, val v, jlist **out)
{
    switch (v.t) {
    case VT_LIST: *out = LIST(incref(v)); return true;
    case VT_UNDEF: *out = fc_jinja_list_new(r, 0, false); return true;
    case VT_DICT: {
        jdict *d = DICT(v);
        jlist *l = fc_jinja_list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) fc_jinja_list_push(r, l, incref(d->k[i]));
        *out = l;
        return fc_jinja_work(r, at, d->n);
    }
    case VT_STR: {
        jstr *s = STR(v);
        if (!fc_jinja_work(r, at, s->len * 4)) return false;
        if (s->len > MAX_ITEMS && fc_jinja_u8len(s->s, s->len) > MAX_ITEMS) return fc_jinja_failf(r, at, "string too long to iterate");
        jlist *l = fc_jinja_list_new(r, 0, false);
        for (size_t i = 0, a; i < s->len; i += a) {
            fc_jinja_u8dec(s->s + i, s->len - i, &a);
            fc_jinja_list_push(r, l, fc_jinja_vstr(r, s->s + i, a));
        }
        *out = l;
        return true;
    }
    default:
        return fc_jinja_failf(r, at, "'%s' object is not iterable", fc_jinja_type_name(v));
    }
}
