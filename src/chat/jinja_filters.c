/*
 * jinja_filters.c: Jinja2's tests (jinja2/tests.py) and filters
 * (jinja2/filters.py, plus transformers' tojson) for the interpreter of
 * jinja_impl.h, with their parameter names and defaults.
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

/* ---- tests (jinja2/tests.py) ---- */

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

bool fc_jinja_apply_test(R *r, const node *at, const char *name, val v, const cargs *a, bool *res)
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
        if (!fc_jinja_to_str(r, at, v, &s)) return false;
        *res = fc_jinja_s_is(STR(s), T("lower") ? M_ISLOWER : M_ISUPPER);
        fc_jinja_decref(r, s);
        return true;
    }
    if (T("even") || T("odd")) {
        if (v.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, v);
        if (!is_num(v)) return fc_jinja_failf(r, at, "unsupported operand type(s) for %%: '%s' and 'int'", fc_jinja_type_name(v));
        bool odd = v.t == VT_FLOAT ? fmod(fabs(v.u.f), 2.0) == 1.0 : (int_of(v) & 1) != 0;
        *res = T("odd") ? odd : !odd;
        return true;
    }
    if (T("filter") || T("test")) {
        if (v.t != VT_STR) { *res = false; return true; }
        *res = T("filter") ? filter_exists(STR(v)->s) : test_exists(STR(v)->s);
        return true;
    }
    if (!fc_jinja_bind(r, at, name, a, 1, p_other, &o)) return false;
    if (!given(o)) {
        if (T("divisibleby") || T("sameas") || T("in")) return fc_jinja_failf(r, at, "test '%s' needs an argument", name);
        o = mk_undef();
    }
    if (T("divisibleby")) {
        val m;
        if (!fc_jinja_binop(r, at, O_MOD, v, o, &m)) return false;
        *res = !fc_jinja_truthy(m);
        fc_jinja_decref(r, m);
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
    if (T("in")) return fc_jinja_v_in(r, at, v, o, res);
    if (T("eq") || T("equalto") || T("==")) { *res = fc_jinja_v_eq(&v, &o, 0); return true; }
    if (T("ne") || T("!=")) { *res = !fc_jinja_v_eq(&v, &o, 0); return true; }
    int c, op = T("lt") || T("lessthan") || T("<") ? O_LT : T("le") || T("<=") ? O_LE
              : T("gt") || T("greaterthan") || T(">") ? O_GT : T("ge") || T(">=") ? O_GE : 0;
    if (op) {
        if (!fc_jinja_v_cmp(r, at, v, o, op, &c, 0)) return false;
        *res = c != 2 && (op == O_LT ? c < 0 : op == O_LE ? c <= 0 : op == O_GT ? c > 0 : c >= 0);
        return true;
    }
#undef T
    return fc_jinja_failf(r, at, "No test named '%s'.", name);
}

/* ---- filters (jinja2/filters.py, transformers' tojson) ---- */

/* make_attrgetter: "a.b.0" looked up part by part with getitem. */
static bool attr_path(R *r, const node *at, val item, val path, val *out)
{
    if (path.t != VT_STR) return fc_jinja_get_item(r, at, item, path, out);
    jstr *p = STR(path);
    val cur = incref(item);
    for (size_t i = 0; i <= p->len;) {
        const char *dot = memchr(p->s + i, '.', p->len - i);
        size_t e = dot ? (size_t)(dot - p->s) : p->len;
        bool digits = e > i;
        for (size_t j = i; j < e; j++) digits &= p->s[j] >= '0' && p->s[j] <= '9';
        val key = digits ? mk_int(strtoll(p->s + i, NULL, 10)) : fc_jinja_vstr(r, p->s + i, e - i);
        val nv;
        bool ok = fc_jinja_get_item(r, at, cur, key, &nv);
        fc_jinja_decref(r, key);
        fc_jinja_decref(r, cur);
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
        bool ok = fc_jinja_s_case(r, at, STR(k), CASE_LOWER, &low);
        fc_jinja_decref(r, k);
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
        if (!fc_jinja_v_cmp(r, at, keys[idx[j]], keys[idx[i]], O_LT, &c, 0)) return false;
        bool right_first = c != 2 && (reverse ? c > 0 : c < 0);
        tmp[k++] = right_first ? idx[j++] : idx[i++];
    }
    while (i < h) tmp[k++] = idx[i++];
    while (j < n) tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
    return fc_jinja_work(r, at, n);
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
    for (size_t i = 0; i < made; i++) fc_jinja_decref(r, keys[i]);
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
    o->ensure_ascii = given(ensure_ascii) && fc_jinja_truthy(ensure_ascii);
    o->sort_keys = given(sort_keys) && fc_jinja_truthy(sort_keys);
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
            if ((size_t)k >= cap) return fc_jinja_failf(r, at, "tojson indent too large");
            memset(indent_buf, ' ', (size_t)k);
            o->indent = indent_buf;
            o->indent_len = (size_t)k;
        } else {
            return fc_jinja_failf(r, at, "tojson indent must be an int or a string");
        }
    }
    if (given(separators) && separators.t != VT_NONE) {
        if (separators.t != VT_LIST || LIST(separators)->n != 2 || LIST(separators)->v[0].t != VT_STR ||
            LIST(separators)->v[1].t != VT_STR)
            return fc_jinja_failf(r, at, "tojson separators must be a pair of strings");
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
    while (p < e && fc_jinja_py_space((unsigned char)*p)) p++;
    while (e > p && fc_jinja_py_space((unsigned char)e[-1])) e--;
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
    while (p < e && fc_jinja_py_space((unsigned char)*p)) p++;
    while (e > p && fc_jinja_py_space((unsigned char)e[-1])) e--;
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

/* select/reject/selectattr/rejectattr: keep items whose (attribute's) test
 * result is `want`. args: [attribute,] [test name, test args...]. */
static bool filter_select(R *r, const node *at, val v, const cargs *a, bool by_attr, bool want, val *out)
{
    int k = 0;
    val attribute = mk_noarg();
    if (by_attr) {
        if (a->npos < 1) return fc_jinja_failf(r, at, "Missing parameter for attribute name");
        attribute = a->pos[k++];
    }
    const char *test = NULL;
    if (k < a->npos) {
        if (a->pos[k].t != VT_STR) return fc_jinja_failf(r, at, "the test name must be a string");
        test = STR(a->pos[k++])->s;
        if (!test_exists(test)) return fc_jinja_failf(r, at, "No test named '%s'.", test);
    }
    cargs ta = { a->pos ? a->pos + k : NULL, a->npos - k, a->kwn, a->kwv, a->nkw };
    jlist *items;
    if (!fc_jinja_iter_list(r, at, v, &items)) return false;
    jlist *res = fc_jinja_list_new(r, 0, false);
    for (size_t i = 0; i < items->n; i++) {
        val x;
        if (by_attr) {
            if (!attr_path(r, at, items->v[i], attribute, &x)) goto fail;
        } else {
            x = incref(items->v[i]);
        }
        bool keep;
        if (test) {
            bool ok = fc_jinja_apply_test(r, at, test, x, &ta, &keep);
            fc_jinja_decref(r, x);
            if (!ok) goto fail;
        } else {
            keep = fc_jinja_truthy(x);
            fc_jinja_decref(r, x);
        }
        if (keep == want) fc_jinja_list_push(r, res, incref(items->v[i]));
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, items));
    *out = mk_obj(VT_LIST, res);
    return fc_jinja_work(r, at, res->n);
fail:
    fc_jinja_decref(r, mk_obj(VT_LIST, items));
    fc_jinja_decref(r, mk_obj(VT_LIST, res));
    return false;
}

/* The filters. Each gets the value (already a str for the string filters),
 * its arguments bound to the filter's parameter slots sl[] (or, for the
 * filters marked raw, the arguments as given), and the table entry, whose
 * `variant` tells apart the filters that share a function. */
typedef struct filter_def filter_def;
typedef bool filter_fn(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out);

struct filter_def {
    const char *name;
    filter_fn *fn;
    int variant;
    bool as_str;             /* the value is turned into a str before the arguments are bound */
    bool raw;                /* no binding: the function reads the cargs */
    int n_params;
    const char *params[4];   /* Jinja2's parameter names, in order */
};

enum { V_FIRST, V_LAST, V_LIST, V_REVERSE };        /* f_items_of */
enum { V_SORT, V_UNIQUE, V_MIN, V_MAX };            /* f_sort */

static bool f_default(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    if (v.t == VT_UNDEF || (given(sl[1]) && fc_jinja_truthy(sl[1]) && !fc_jinja_truthy(v)))
        *out = given(sl[0]) ? incref(sl[0]) : mk_obj(VT_STR, &fc_jinja_empty);
    else
        *out = incref(v);
    return true;
}

static bool f_length(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    switch (v.t) {
    case VT_UNDEF: *out = mk_int(0); return true;
    case VT_STR: *out = mk_int((int64_t)fc_jinja_u8len(STR(v)->s, STR(v)->len)); return fc_jinja_work(r, at, STR(v)->len);
    case VT_LIST: *out = mk_int((int64_t)LIST(v)->n); return true;
    case VT_DICT: *out = mk_int((int64_t)DICT(v)->n); return true;
    default: return fc_jinja_failf(r, at, "object of type '%s' has no len()", fc_jinja_type_name(v));
    }
}

static bool f_string(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    return fc_jinja_to_str(r, at, v, out);
}

static bool f_safe(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    *out = incref(v);
    return true;
}

/* upper, lower, capitalize, title: variant is the CASE_ mode. */
static bool f_case(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    return fc_jinja_s_case(r, at, STR(v), f->variant, out);
}

static bool f_trim(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    return fc_jinja_s_strip(r, at, STR(v), sl[0], 3, out);
}

static bool f_replace(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    val o = mk_none(), nw = mk_none();
    int64_t count = 0;
    bool ok = given(sl[0]) && given(sl[1]) && fc_jinja_to_str(r, at, sl[0], &o) && fc_jinja_to_str(r, at, sl[1], &nw) &&
              fc_jinja_arg_int(r, at, "count", sl[2].t == VT_NONE ? mk_noarg() : sl[2], -1, &count) &&
              fc_jinja_s_replace(r, at, STR(v), STR(o), STR(nw), count, out);
    if (!ok && !r->err) fc_jinja_failf(r, at, "replace() needs old and new");
    fc_jinja_decref(r, o);
    fc_jinja_decref(r, nw);
    return ok;
}

static bool f_center(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    return fc_jinja_s_pad(r, at, STR(v), given(sl[0]) ? sl[0] : mk_int(80), mk_noarg(), 0, out);
}

static bool f_wordcount(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    jstr *j = STR(v);
    int64_t words = 0;
    bool in = false;
    for (size_t i = 0, k; i < j->len; i += k) {
        int32_t c = fc_jinja_u8dec(j->s + i, j->len - i, &k);
        bool w = c == '_' || fc_jinja_cp_alpha(c) || fc_jinja_cp_numeric(c);
        if (w && !in) words++;
        in = w;
    }
    *out = mk_int(words);
    return true;
}

static bool f_escape(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    jstr *j = STR(v);
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
    if (fc_jinja_sb_val(r, at, &b, out)) return true;
    fc_str_free(&b);
    return false;
}

static bool f_indent(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    jstr *j = STR(v);
    fc_str ind = { 0 };
    fc_str_putn(&ind, "", 0);
    if (sl[0].t == VT_STR) fc_str_putn(&ind, STR(sl[0])->s, STR(sl[0])->len);
    else {
        int64_t w = 0;
        if (!fc_jinja_arg_int(r, at, "width", sl[0], 4, &w)) { fc_str_free(&ind); return false; }
        if (w > 4096) { fc_jinja_failf(r, at, "indent width too large"); fc_str_free(&ind); return false; }
        for (int64_t i = 0; i < w; i++) fc_str_putc(&ind, ' ');
    }
    bool first = given(sl[1]) && fc_jinja_truthy(sl[1]), blank = given(sl[2]) && fc_jinja_truthy(sl[2]);
    /* s + "\n", split into lines (str.splitlines), re-joined */
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    if (first) fc_str_putn(&b, ind.p, ind.len);
    size_t i = 0, start = 0, k = 1, line = 0;
    while (i <= j->len) {
        int32_t c = i < j->len ? fc_jinja_u8dec(j->s + i, j->len - i, &k) : '\n';
        if (i == j->len) k = 1;
        if (!fc_jinja_py_linebreak(c)) { i += k; continue; }
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
    return fc_jinja_sb_val(r, at, &b, out);
}

/* first, last, list, reverse: variant V_FIRST... */
static bool f_items_of(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    int id = f->variant;
    if (id == V_REVERSE && v.t == VT_STR) { val m1 = mk_int(-1); return fc_jinja_get_slice(r, at, v, mk_noarg(), mk_noarg(), m1, out); }
    if ((id == V_FIRST || id == V_LAST) && v.t == VT_UNDEF) {
        *out = fc_jinja_mk_undef_hint(r, "No %s item, sequence was empty.", id == V_FIRST ? "first" : "last");
        return true;
    }
    jlist *l;
    if (!fc_jinja_iter_list(r, at, v, &l)) return false;
    if (id == V_FIRST || id == V_LAST) {
        if (!l->n) *out = fc_jinja_mk_undef_hint(r, "No %s item, sequence was empty.", id == V_FIRST ? "first" : "last");
        else *out = incref(l->v[id == V_FIRST ? 0 : l->n - 1]);
    } else {
        jlist *c = fc_jinja_list_new(r, l->n, false);
        for (size_t i = 0; i < l->n; i++) fc_jinja_list_push(r, c, incref(l->v[id == V_LIST ? i : l->n - 1 - i]));
        *out = mk_obj(VT_LIST, c);
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, l));
    return true;
}

static bool f_join(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    val sep = mk_obj(VT_STR, &fc_jinja_empty);
    if (given(sl[0]) && !fc_jinja_to_str(r, at, sl[0], &sep)) return false;
    jlist *l;
    if (!fc_jinja_iter_list(r, at, v, &l)) { fc_jinja_decref(r, sep); return false; }
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    bool ok = true;
    for (size_t i = 0; i < l->n && ok; i++) {
        val x;
        if (given(sl[1]) && sl[1].t != VT_NONE) ok = attr_path(r, at, l->v[i], sl[1], &x);
        else x = incref(l->v[i]);
        if (!ok) break;
        if (i) fc_str_putn(&b, STR(sep)->s, STR(sep)->len);
        ok = fc_jinja_py_str_into(r, at, &b, x, 0);
        fc_jinja_decref(r, x);
        if (b.len > r->max_out) break;
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, l));
    fc_jinja_decref(r, sep);
    if (!ok) { fc_str_free(&b); return false; }
    return fc_jinja_sb_val(r, at, &b, out);
}

/* map(filter name, args...) or map(attribute=..., default=...). */
static bool f_map(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    val attribute = mk_noarg(), dflt = mk_noarg();
    for (int k = 0; k < a->nkw; k++) {
        if (!strcmp(a->kwn[k], "attribute")) attribute = a->kwv[k];
        else if (!strcmp(a->kwn[k], "default")) dflt = a->kwv[k];
    }
    const char *fname = NULL;
    cargs fa = { NULL, 0, NULL, NULL, 0 };
    if (!given(attribute)) {
        if (a->npos < 1 || a->pos[0].t != VT_STR) return fc_jinja_failf(r, at, "map needs a filter name or attribute=");
        fname = STR(a->pos[0])->s;
        fa = (cargs){ a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw };
    }
    jlist *l;
    if (!fc_jinja_iter_list(r, at, v, &l)) return false;
    jlist *res = fc_jinja_list_new(r, l->n, false);
    for (size_t i = 0; i < l->n; i++) {
        val x;
        bool ok = fname ? fc_jinja_apply_filter(r, at, fname, l->v[i], &fa, &x) : attr_path(r, at, l->v[i], attribute, &x);
        if (!ok) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); fc_jinja_decref(r, mk_obj(VT_LIST, res)); return false; }
        if (!fname && x.t == VT_UNDEF && given(dflt)) { fc_jinja_decref(r, x); x = incref(dflt); }
        fc_jinja_list_push(r, res, x);
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, l));
    *out = mk_obj(VT_LIST, res);
    return fc_jinja_work(r, at, res->n);
}

/* select, reject, selectattr, rejectattr: variant bit 1 = by attribute,
 * bit 0 = the test result an item needs to be kept. */
static bool f_select(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    return filter_select(r, at, v, a, f->variant & 2, f->variant & 1, out);
}

/* unique of l by the sort keys. */
static bool unique_items(R *r, const node *at, jlist *l, val attribute, bool case_sensitive, val *out)
{
    bool ok = true;
    jlist *res = fc_jinja_list_new(r, 0, false), *seen = fc_jinja_list_new(r, 0, false);
    for (size_t i = 0; i < l->n && ok; i++) {
        val k;
        if (!(ok = sort_key(r, at, l->v[i], attribute, case_sensitive, &k))) break;
        bool dup = false;
        for (size_t j = 0; j < seen->n && !dup; j++) dup = fc_jinja_v_eq(&seen->v[j], &k, 0);
        ok = fc_jinja_work(r, at, seen->n);
        if (dup) fc_jinja_decref(r, k);
        else { fc_jinja_list_push(r, seen, k); fc_jinja_list_push(r, res, incref(l->v[i])); }
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, seen));
    if (ok) *out = mk_obj(VT_LIST, res);
    else fc_jinja_decref(r, mk_obj(VT_LIST, res));
    return ok;
}

/* sort(reverse, case_sensitive, attribute); unique, min, max(case_sensitive, attribute). */
static bool f_sort(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    int id = f->variant;
    bool reverse = false;
    val cs, attribute;
    if (id == V_SORT) {
        reverse = given(sl[0]) && fc_jinja_truthy(sl[0]);
        cs = sl[1];
        attribute = sl[2];
    } else {
        cs = sl[0];
        attribute = sl[1];
    }
    bool case_sensitive = given(cs) && fc_jinja_truthy(cs);
    jlist *l;
    if (!fc_jinja_iter_list(r, at, v, &l)) return false;
    bool ok = true;
    if (id == V_UNIQUE) {
        ok = unique_items(r, at, l, attribute, case_sensitive, out);
    } else {
        size_t *order = NULL;
        ok = sort_items(r, at, l, attribute, case_sensitive, reverse, &order);
        if (ok && id == V_SORT) {
            jlist *res = fc_jinja_list_new(r, l->n, false);
            for (size_t i = 0; i < l->n; i++) fc_jinja_list_push(r, res, incref(l->v[order[i]]));
            *out = mk_obj(VT_LIST, res);
        } else if (ok) {
            if (!l->n) *out = fc_jinja_mk_undef_hint(r, "No aggregated item, sequence was empty.");
            else *out = incref(l->v[order[id == V_MIN ? 0 : l->n - 1]]);
            if (id == V_MAX && l->n) { /* max() keeps the first of equal maxima */
                size_t j = l->n - 1;
                val kj, kp;
                while (j > 0 && ok) {
                    ok = sort_key(r, at, l->v[order[j]], attribute, case_sensitive, &kj);
                    if (!ok) break;
                    ok = sort_key(r, at, l->v[order[j - 1]], attribute, case_sensitive, &kp);
                    if (!ok) { fc_jinja_decref(r, kj); break; }
                    bool same = fc_jinja_v_eq(&kj, &kp, 0);
                    fc_jinja_decref(r, kj);
                    fc_jinja_decref(r, kp);
                    if (!same) break;
                    j--;
                }
                if (ok) { fc_jinja_decref(r, *out); *out = incref(l->v[order[j]]); }
            }
        }
        free(order);
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, l));
    return ok;
}

static bool f_dictsort(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    if (v.t != VT_DICT) return fc_jinja_failf(r, at, "dictsort needs a dict, not '%s'", fc_jinja_type_name(v));
    bool by_value = false;
    if (given(sl[1])) {
        if (sl[1].t != VT_STR || (strcmp(STR(sl[1])->s, "key") && strcmp(STR(sl[1])->s, "value")))
            return fc_jinja_failf(r, at, "You can only sort by either \"key\" or \"value\"");
        by_value = !strcmp(STR(sl[1])->s, "value");
    }
    jdict *d = DICT(v);
    jlist *pairs = fc_jinja_list_new(r, d->n, false), *keys = fc_jinja_list_new(r, d->n, false);
    for (size_t i = 0; i < d->n; i++) {
        jlist *t = fc_jinja_list_new(r, 2, true);
        fc_jinja_list_push(r, t, incref(d->k[i]));
        fc_jinja_list_push(r, t, incref(d->v[i]));
        fc_jinja_list_push(r, pairs, mk_obj(VT_LIST, t));
        fc_jinja_list_push(r, keys, incref(by_value ? d->v[i] : d->k[i]));
    }
    size_t *order = NULL;
    bool ok = sort_items(r, at, keys, mk_noarg(), given(sl[0]) && fc_jinja_truthy(sl[0]), given(sl[2]) && fc_jinja_truthy(sl[2]), &order);
    if (ok) {
        jlist *res = fc_jinja_list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) fc_jinja_list_push(r, res, incref(pairs->v[order[i]]));
        *out = mk_obj(VT_LIST, res);
    }
    free(order);
    fc_jinja_decref(r, mk_obj(VT_LIST, pairs));
    fc_jinja_decref(r, mk_obj(VT_LIST, keys));
    return ok;
}

static bool f_dict_items(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    if (v.t == VT_UNDEF) { *out = mk_obj(VT_LIST, fc_jinja_list_new(r, 0, false)); return true; }
    if (v.t != VT_DICT) return fc_jinja_failf(r, at, "Can only get item pairs from a mapping.");
    jdict *d = DICT(v);
    jlist *res = fc_jinja_list_new(r, d->n, false);
    for (size_t i = 0; i < d->n; i++) {
        jlist *t = fc_jinja_list_new(r, 2, true);
        fc_jinja_list_push(r, t, incref(d->k[i]));
        fc_jinja_list_push(r, t, incref(d->v[i]));
        fc_jinja_list_push(r, res, mk_obj(VT_LIST, t));
    }
    *out = mk_obj(VT_LIST, res);
    return fc_jinja_work(r, at, d->n * 4);
}

static bool f_sum(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    jlist *l;
    if (!fc_jinja_iter_list(r, at, v, &l)) return false;
    val acc = given(sl[1]) ? incref(sl[1]) : mk_int(0);
    bool ok = true;
    for (size_t i = 0; i < l->n && ok; i++) {
        val x, nacc;
        if (given(sl[0]) && sl[0].t != VT_NONE) ok = attr_path(r, at, l->v[i], sl[0], &x);
        else x = incref(l->v[i]);
        if (!ok) break;
        ok = fc_jinja_binop(r, at, O_ADD, acc, x, &nacc);
        fc_jinja_decref(r, x);
        if (ok) { fc_jinja_decref(r, acc); acc = nacc; }
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, l));
    if (!ok) { fc_jinja_decref(r, acc); return false; }
    *out = acc;
    return true;
}

static bool f_abs(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    if (v.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, v);
    if (v.t == VT_FLOAT) { *out = mk_float(fabs(v.u.f)); return true; }
    if (is_intlike(v)) {
        int64_t x = int_of(v);
        if (x == INT64_MIN) return fc_jinja_failf(r, at, "integer overflow");
        *out = mk_int(x < 0 ? -x : x);
        return true;
    }
    return fc_jinja_failf(r, at, "bad operand type for abs(): '%s'", fc_jinja_type_name(v));
}

static bool f_round(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    int64_t prec = 0;
    if (!fc_jinja_arg_int(r, at, "precision", sl[0], 0, &prec)) return false;
    const char *method = "common";
    if (given(sl[1])) {
        if (sl[1].t != VT_STR) return fc_jinja_failf(r, at, "method must be common, ceil or floor");
        method = STR(sl[1])->s;
    }
    if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
        return fc_jinja_failf(r, at, "method must be common, ceil or floor");
    if (v.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, v);
    if (!is_num(v)) return fc_jinja_failf(r, at, "type %s doesn't define __round__ method", fc_jinja_type_name(v));
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

static bool f_int(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    int64_t base = 10, iv;
    if (!fc_jinja_arg_int(r, at, "base", sl[1], 10, &base)) return false;
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

static bool f_float(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    double d;
    if (is_num(v)) { *out = mk_float(num_of(v)); return true; }
    if (v.t == VT_STR && parse_float_str(STR(v), &d)) { *out = mk_float(d); return true; }
    *out = given(sl[0]) ? incref(sl[0]) : mk_float(0.0);
    return true;
}

/* format(*args) or format(**kwargs): str % args. */
static bool f_format(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    if (a->npos && a->nkw) return fc_jinja_failf(r, at, "can't handle positional and keyword arguments at the same time");
    val s, args;
    if (!fc_jinja_to_str(r, at, v, &s)) return false;
    if (a->nkw) {
        jdict *d = fc_jinja_dict_new(r, VT_DICT);
        for (int k = 0; k < a->nkw; k++) fc_jinja_dict_set(r, d, fc_jinja_vcstr(r, a->kwn[k]), incref(a->kwv[k]));
        args = mk_obj(VT_DICT, d);
    } else {
        jlist *l = fc_jinja_list_new(r, (size_t)a->npos, true);
        for (int k = 0; k < a->npos; k++) fc_jinja_list_push(r, l, incref(a->pos[k]));
        args = mk_obj(VT_LIST, l);
    }
    bool ok = fc_jinja_py_format(r, at, s, args, out);
    fc_jinja_decref(r, s);
    fc_jinja_decref(r, args);
    return ok;
}

static bool f_tojson(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    json_opts o;
    char ibuf[256];
    if (!json_opts_from(r, at, sl[0], sl[1], sl[2], sl[3], &o, ibuf, sizeof ibuf)) return false;
    fc_str b = { 0 };
    fc_str_putn(&b, "", 0);
    if (!fc_jinja_json_dump(r, at, &b, v, &o, 0)) { fc_str_free(&b); return false; }
    return fc_jinja_sb_val(r, at, &b, out);
}

/* getattr only: dict keys are not attributes. */
static bool f_attr(R *r, const node *at, const filter_def *f, val v, const cargs *a, const val *sl, val *out)
{
    if (sl[0].t != VT_STR) return fc_jinja_failf(r, at, "attr() needs a name");
    if (v.t == VT_DICT) {
        val m;
        if (!fc_jinja_get_attr(r, at, v, STR(sl[0])->s, STR(sl[0])->len, &m)) return false;
        if (m.t == VT_FUNC) { *out = m; return true; }
        fc_jinja_decref(r, m);
        char tb[64];
        *out = fc_jinja_mk_undef_hint(r, "'%s' has no attribute '%.200s'", fc_jinja_obj_type_repr(v, tb, sizeof tb), STR(sl[0])->s);
        return true;
    }
    return fc_jinja_get_attr(r, at, v, STR(sl[0])->s, STR(sl[0])->len, out);
}

#define P0 0, { NULL }
#define STRF true, false    /* the value as a str */
#define VALF false, false   /* the value as it is */
#define RAWF false, true, P0
static const filter_def filters[] = {
    { "abs", f_abs, 0, VALF, P0 },
    { "attr", f_attr, 0, VALF, 1, { "name" } },
    { "capitalize", f_case, CASE_CAPITALIZE, STRF, P0 },
    { "center", f_center, 0, STRF, 1, { "width" } },
    { "count", f_length, 0, VALF, P0 },
    { "d", f_default, 0, VALF, 2, { "default_value", "boolean" } },
    { "default", f_default, 0, VALF, 2, { "default_value", "boolean" } },
    { "dictsort", f_dictsort, 0, VALF, 3, { "case_sensitive", "by", "reverse" } },
    { "e", f_escape, 0, STRF, P0 },
    { "escape", f_escape, 0, STRF, P0 },
    { "first", f_items_of, V_FIRST, VALF, P0 },
    { "float", f_float, 0, VALF, 1, { "default" } },
    { "forceescape", f_escape, 0, STRF, P0 },
    { "format", f_format, 0, RAWF },
    { "indent", f_indent, 0, STRF, 3, { "width", "first", "blank" } },
    { "int", f_int, 0, VALF, 2, { "default", "base" } },
    { "items", f_dict_items, 0, VALF, P0 },
    { "join", f_join, 0, VALF, 2, { "d", "attribute" } },
    { "last", f_items_of, V_LAST, VALF, P0 },
    { "length", f_length, 0, VALF, P0 },
    { "list", f_items_of, V_LIST, VALF, P0 },
    { "lower", f_case, CASE_LOWER, STRF, P0 },
    { "map", f_map, 0, RAWF },
    { "max", f_sort, V_MAX, VALF, 2, { "case_sensitive", "attribute" } },
    { "min", f_sort, V_MIN, VALF, 2, { "case_sensitive", "attribute" } },
    { "reject", f_select, 0, RAWF },
    { "rejectattr", f_select, 2, RAWF },
    { "replace", f_replace, 0, STRF, 3, { "old", "new", "count" } },
    { "reverse", f_items_of, V_REVERSE, VALF, P0 },
    { "round", f_round, 0, VALF, 2, { "precision", "method" } },
    { "safe", f_safe, 0, VALF, P0 },
    { "select", f_select, 1, RAWF },
    { "selectattr", f_select, 3, RAWF },
    { "sort", f_sort, V_SORT, VALF, 3, { "reverse", "case_sensitive", "attribute" } },
    { "string", f_string, 0, VALF, P0 },
    { "sum", f_sum, 0, VALF, 2, { "attribute", "start" } },
    { "title", f_case, CASE_JINJA_TITLE, STRF, P0 },
    { "tojson", f_tojson, 0, VALF, 4, { "ensure_ascii", "indent", "separators", "sort_keys" } },
    { "trim", f_trim, 0, STRF, 1, { "chars" } },
    { "unique", f_sort, V_UNIQUE, VALF, 2, { "case_sensitive", "attribute" } },
    { "upper", f_case, CASE_UPPER, STRF, P0 },
    { "wordcount", f_wordcount, 0, STRF, P0 },
};
#undef P0
#undef STRF
#undef VALF
#undef RAWF

static const filter_def *filter_find(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++)
        if (!strcmp(filters[i].name, name)) return &filters[i];
    return NULL;
}

static bool filter_exists(const char *name) { return filter_find(name) != NULL; }

bool fc_jinja_apply_filter(R *r, const node *at, const char *name, val v, const cargs *a, val *out)
{
    const filter_def *f = filter_find(name);
    if (!f) return fc_jinja_failf(r, at, "No filter named '%s'.", name);
    if (f->raw) return f->fn(r, at, f, v, a, NULL, out);
    val sl[4], s = mk_none();
    if (f->as_str && !fc_jinja_to_str(r, at, v, &s)) return false;
    bool ok = fc_jinja_bind(r, at, name, a, f->n_params, f->params, sl) && f->fn(r, at, f, f->as_str ? s : v, a, sl, out);
    fc_jinja_decref(r, s);
    return ok;
}
