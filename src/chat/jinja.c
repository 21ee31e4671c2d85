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
#include "jinja_impl.h"

/* ---- frames and globals ---- */

static jstr g_key_loop = { { -1, VT_STR, 0, NULL, NULL }, 4, (char *)"loop" };
static jstr g_key_varargs = { { -1, VT_STR, 0, NULL, NULL }, 7, (char *)"varargs" };
static jstr g_key_kwargs = { { -1, VT_STR, 0, NULL, NULL }, 6, (char *)"kwargs" };

/* Takes key and v. */
static void frame_set(R *r, val key, val v)
{
    fc_jinja_dict_set(r, r->top->vars, key, v);
}

static void frame_push(R *r, frame *f, frame *parent)
{
    f->parent = parent;
    f->vars = fc_jinja_dict_new(r, VT_DICT);
    r->top = f;
}

static void frame_pop(R *r, frame *f, frame *restore)
{
    r->top = restore;
    fc_jinja_decref(r, mk_obj(VT_DICT, f->vars));
}

static bool lookup(R *r, const char *name, size_t n, val *out)
{
    for (frame *f = r->top; f; f = f->parent) {
        val *v = fc_jinja_dict_find_str(f->vars, name, n);
        if (v) { *out = incref(*v); return true; }
    }
    static const struct { const char *name; int id; } globals[] = {
        { "range", F_RANGE }, { "dict", F_DICT }, { "namespace", F_NAMESPACE },
        { "raise_exception", F_RAISE }, { "strftime_now", F_STRFTIME },
    };
    for (size_t i = 0; i < sizeof globals / sizeof *globals; i++)
        if (strlen(globals[i].name) == n && !memcmp(globals[i].name, name, n)) {
            *out = fc_jinja_func_new(r, globals[i].id, mk_none(), NULL);
            return true;
        }
    return false;
}

/* dict(...) and namespace(...): a mapping or a list of pairs, then keywords. */
static bool make_mapping(R *r, const node *at, int type, const cargs *a, val *out)
{
    if (a->npos > 1) return fc_jinja_failf(r, at, "%s expected at most 1 argument, got %d", type == VT_NS ? "namespace" : "dict", a->npos);
    jdict *d = fc_jinja_dict_new(r, type);
    val res = mk_obj(type, d);
    if (a->npos) {
        val src = a->pos[0];
        if (src.t == VT_DICT || src.t == VT_NS) {
            for (size_t i = 0; i < DICT(src)->n; i++) fc_jinja_dict_set(r, d, incref(DICT(src)->k[i]), incref(DICT(src)->v[i]));
        } else if (src.t == VT_LIST) {
            for (size_t i = 0; i < LIST(src)->n; i++) {
                val p = LIST(src)->v[i];
                if (p.t != VT_LIST || LIST(p)->n != 2) { fc_jinja_decref(r, res); return fc_jinja_failf(r, at, "dictionary update sequence element #%zu has the wrong length", i); }
                fc_jinja_dict_set(r, d, incref(LIST(p)->v[0]), incref(LIST(p)->v[1]));
            }
        } else if (src.t != VT_UNDEF) {
            fc_jinja_decref(r, res);
            return fc_jinja_failf(r, at, "'%s' object is not iterable", fc_jinja_type_name(src));
        }
    }
    for (int k = 0; k < a->nkw; k++) fc_jinja_dict_set(r, d, fc_jinja_vcstr(r, a->kwn[k]), incref(a->kwv[k]));
    if (type == VT_NS)
        for (size_t i = 0; i < d->n; i++)
            if (d->k[i].t == VT_STR && STR(d->k[i])->s[0] == '_') {
                fc_jinja_decref(r, res);
                return fc_jinja_failf(r, at, "Chat templates cannot store underscore-prefixed attributes on a namespace");
            }
    *out = res;
    return fc_jinja_work(r, at, d->n);
}

static int exec(R *r, const node *s);
static bool ev(R *r, const node *e, val *out);

static bool call_macro(R *r, const node *at, const node *m, const cargs *a, val *out)
{
    frame f, *saved_top = r->top;
    fc_str buf = { 0 }, *saved_out = r->out;
    fc_str_putn(&buf, "", 0);
    frame_push(r, &f, r->root);
    jlist *varargs = fc_jinja_list_new(r, 0, true);
    jdict *kwargs = fc_jinja_dict_new(r, VT_DICT);
    bool *set = fc_xcalloc((size_t)m->n + 1, sizeof(bool));
    bool ok = true;
    for (int i = 0; i < a->npos; i++) {
        if (i < m->n) {
            fc_jinja_dict_set(r, f.vars, fc_jinja_vcstr(r, m->names[i]), incref(a->pos[i]));
            set[i] = true;
        } else {
            fc_jinja_list_push(r, varargs, incref(a->pos[i]));
        }
    }
    for (int k = 0; k < a->nkw && ok; k++) {
        int j = 0;
        while (j < m->n && strcmp(m->names[j], a->kwn[k])) j++;
        if (j == m->n) {
            fc_jinja_dict_set(r, kwargs, fc_jinja_vcstr(r, a->kwn[k]), incref(a->kwv[k]));
        } else if (set[j]) {
            ok = fc_jinja_failf(r, at, "macro '%s' got multiple values for argument '%s'", m->name, a->kwn[k]);
        } else {
            fc_jinja_dict_set(r, f.vars, fc_jinja_vcstr(r, m->names[j]), incref(a->kwv[k]));
            set[j] = true;
        }
    }
    for (int i = 0; i < m->n && ok; i++) {
        if (set[i]) continue;
        val d;
        if (m->kids[i]) ok = ev(r, m->kids[i], &d); /* defaults see the parameters before them */
        else d = fc_jinja_mk_undef_hint(r, "parameter '%s' was not provided", m->names[i]);
        if (ok) fc_jinja_dict_set(r, f.vars, fc_jinja_vcstr(r, m->names[i]), d);
    }
    free(set);
    fc_jinja_dict_set(r, f.vars, mk_obj(VT_STR, &g_key_varargs), mk_obj(VT_LIST, varargs));
    fc_jinja_dict_set(r, f.vars, mk_obj(VT_STR, &g_key_kwargs), mk_obj(VT_DICT, kwargs));
    int rc = X_ERR;
    if (ok) {
        r->out = &buf;
        rc = exec(r, m->b);
        r->out = saved_out;
    }
    frame_pop(r, &f, saved_top);
    if (rc != X_OK) { fc_str_free(&buf); return false; }
    return fc_jinja_sb_val(r, at, &buf, out);
}

static bool call_func(R *r, const node *at, val fn, const cargs *a, val *out)
{
    if (fn.t == VT_UNDEF) return fc_jinja_fail_undef(r, at, fn);
    if (fn.t != VT_FUNC) return fc_jinja_failf(r, at, "'%s' object is not callable", fc_jinja_type_name(fn));
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
        if (a->nkw) return fc_jinja_failf(r, at, "range() takes no keyword arguments");
        if (a->npos < 1 || a->npos > 3) return fc_jinja_failf(r, at, "range expected 1 to 3 arguments, got %d", a->npos);
        if (!fc_jinja_bind(r, at, "range", a, 3, p_range, sl)) return false;
        int64_t start = 0, stop, stp = 1;
        for (int i = 0; i < a->npos; i++)
            if (!is_intlike(a->pos[i])) return fc_jinja_failf(r, at, "'%s' object cannot be interpreted as an integer", fc_jinja_type_name(a->pos[i]));
        if (a->npos == 1) stop = int_of(a->pos[0]);
        else {
            start = int_of(a->pos[0]);
            stop = int_of(a->pos[1]);
            if (a->npos == 3) stp = int_of(a->pos[2]);
        }
        if (stp == 0) return fc_jinja_failf(r, at, "range() arg 3 must not be zero");
        double count = stp > 0 ? ceil(((double)stop - (double)start) / (double)stp) : ceil(((double)start - (double)stop) / -(double)stp);
        if (count < 0) count = 0;
        if (count > MAX_RANGE) return fc_jinja_failf(r, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
        jlist *l = fc_jinja_list_new(r, (size_t)count, false);
        for (int64_t i = 0, x = start; i < (int64_t)count; i++, x += stp) fc_jinja_list_push(r, l, mk_int(x));
        *out = mk_obj(VT_LIST, l);
        return fc_jinja_work(r, at, l->n);
    }
    case F_DICT: return make_mapping(r, at, VT_DICT, a, out);
    case F_NAMESPACE: return make_mapping(r, at, VT_NS, a, out);
    case F_RAISE: {
        if (!fc_jinja_bind(r, at, "raise_exception", a, 1, p_msg, sl)) return false;
        val s;
        if (!fc_jinja_to_str(r, at, given(sl[0]) ? sl[0] : mk_undef(), &s)) return false;
        if (!r->err) r->err = fc_xstrdup(STR(s)->s); /* verbatim, as transformers raises it */
        fc_jinja_decref(r, s);
        return false;
    }
    case F_STRFTIME: {
        jstr *fmt = NULL;
        if (!fc_jinja_bind(r, at, "strftime_now", a, 1, p_fmt, sl) || !fc_jinja_arg_str(r, at, "strftime_now", sl[0], &fmt)) return false;
        if (fmt->len > 256) return fc_jinja_failf(r, at, "strftime_now format too long");
        time_t tt = (time_t)r->now;
        struct tm tm;
        if (!localtime_r(&tt, &tm)) return fc_jinja_failf(r, at, "strftime_now: bad clock");
        char buf[8192];
        size_t k = fmt->len ? strftime(buf, sizeof buf, fmt->s, &tm) : 0;
        *out = fc_jinja_vstr(r, buf, k);
        return true;
    }
    case M_ITEMS: case M_KEYS: case M_VALUES: case M_DCOPY: {
        if (!fc_jinja_bind(r, at, "dict method", a, 0, NULL, sl)) return false;
        jdict *d = DICT(f->self);
        if (f->id == M_DCOPY) {
            jdict *c = fc_jinja_dict_new(r, VT_DICT);
            for (size_t i = 0; i < d->n; i++) fc_jinja_dict_set(r, c, incref(d->k[i]), incref(d->v[i]));
            *out = mk_obj(VT_DICT, c);
            return fc_jinja_work(r, at, d->n);
        }
        jlist *l = fc_jinja_list_new(r, d->n, false);
        for (size_t i = 0; i < d->n; i++) {
            if (f->id == M_KEYS) fc_jinja_list_push(r, l, incref(d->k[i]));
            else if (f->id == M_VALUES) fc_jinja_list_push(r, l, incref(d->v[i]));
            else {
                jlist *t = fc_jinja_list_new(r, 2, true);
                fc_jinja_list_push(r, t, incref(d->k[i]));
                fc_jinja_list_push(r, t, incref(d->v[i]));
                fc_jinja_list_push(r, l, mk_obj(VT_LIST, t));
            }
        }
        *out = mk_obj(VT_LIST, l);
        return fc_jinja_work(r, at, d->n * 4);
    }
    case M_GET: {
        if (!fc_jinja_bind(r, at, "get", a, 2, p_get, sl)) return false;
        if (!given(sl[0])) return fc_jinja_failf(r, at, "get expected at least 1 argument, got 0");
        val *v = fc_jinja_dict_find(DICT(f->self), &sl[0]);
        *out = v ? incref(*v) : given(sl[1]) ? incref(sl[1]) : mk_none();
        return fc_jinja_work(r, at, DICT(f->self)->n);
    }
    case M_LINDEX: case M_LCOUNT: {
        if (!fc_jinja_bind(r, at, "list method", a, 1, p_x, sl)) return false;
        if (!given(sl[0])) return fc_jinja_failf(r, at, "expected 1 argument, got 0");
        jlist *l = LIST(f->self);
        int64_t c = 0, idx = -1;
        for (size_t i = 0; i < l->n; i++)
            if (fc_jinja_v_eq(&l->v[i], &sl[0], 0)) { c++; if (idx < 0) idx = (int64_t)i; }
        if (f->id == M_LINDEX && idx < 0) return fc_jinja_failf(r, at, "value is not in list");
        *out = mk_int(f->id == M_LINDEX ? idx : c);
        return fc_jinja_work(r, at, l->n);
    }
    case M_LCOPY: {
        jlist *l = LIST(f->self), *c = fc_jinja_list_new(r, l->n, false);
        for (size_t i = 0; i < l->n; i++) fc_jinja_list_push(r, c, incref(l->v[i]));
        *out = mk_obj(VT_LIST, c);
        return fc_jinja_work(r, at, l->n);
    }
    case M_CYCLE: {
        if (a->nkw) return fc_jinja_failf(r, at, "cycle() takes no keyword arguments");
        if (!a->npos) return fc_jinja_failf(r, at, "no items for cycling given");
        *out = incref(a->pos[LOOP(f->self)->i % (size_t)a->npos]);
        return true;
    }
    default:
        if (f->id >= M_STRIP && f->id <= M_RPARTITION) return fc_jinja_call_str_method(r, at, f->id, STR(f->self), a, out);
        return fc_jinja_failf(r, at, "internal error: bad function");
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
            for (int k = 0; k < i; k++) fc_jinja_decref(r, vals[k]);
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
    for (int i = 0; i < a->npos + a->nkw; i++) fc_jinja_decref(r, a->pos[i]);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

static bool ev_inner(R *r, const node *e, val *out)
{
    switch (e->kind) {
    case E_CONST: *out = e->k; return true;
    case E_NAME:
        if (lookup(r, e->name, STR(e->k)->len, out)) return true;
        *out = fc_jinja_mk_undef_hint(r, "'%.200s' is undefined", e->name);
        return true;
    case E_LIST: case E_TUPLE: {
        jlist *l = fc_jinja_list_new(r, (size_t)e->n, e->kind == E_TUPLE);
        for (int i = 0; i < e->n; i++) {
            val x;
            if (!ev(r, e->kids[i], &x)) { fc_jinja_decref(r, mk_obj(VT_LIST, l)); return false; }
            fc_jinja_list_push(r, l, x);
        }
        *out = mk_obj(VT_LIST, l);
        return true;
    }
    case E_DICT: {
        jdict *d = fc_jinja_dict_new(r, VT_DICT);
        for (int i = 0; i + 1 < e->n; i += 2) {
            val k, v;
            if (!ev(r, e->kids[i], &k)) { fc_jinja_decref(r, mk_obj(VT_DICT, d)); return false; }
            if (!ev(r, e->kids[i + 1], &v)) { fc_jinja_decref(r, k); fc_jinja_decref(r, mk_obj(VT_DICT, d)); return false; }
            if (k.t == VT_LIST && !LIST(k)->tuple) { fc_jinja_decref(r, k); fc_jinja_decref(r, v); fc_jinja_decref(r, mk_obj(VT_DICT, d)); return fc_jinja_failf(r, e, "unhashable type: 'list'"); }
            if (k.t == VT_DICT) { fc_jinja_decref(r, k); fc_jinja_decref(r, v); fc_jinja_decref(r, mk_obj(VT_DICT, d)); return fc_jinja_failf(r, e, "unhashable type: 'dict'"); }
            fc_jinja_dict_set(r, d, k, v);
        }
        *out = mk_obj(VT_DICT, d);
        return true;
    }
    case E_GETATTR: {
        val o;
        if (!ev(r, e->a, &o)) return false;
        bool ok = fc_jinja_get_attr(r, e, o, e->name, STR(e->k)->len, out);
        fc_jinja_decref(r, o);
        return ok;
    }
    case E_GETITEM: {
        val o, k;
        if (!ev(r, e->a, &o)) return false;
        if (!ev(r, e->b, &k)) { fc_jinja_decref(r, o); return false; }
        bool ok = fc_jinja_get_item(r, e, o, k, out);
        fc_jinja_decref(r, o);
        fc_jinja_decref(r, k);
        return ok;
    }
    case E_SLICE: {
        val o, x[3] = { mk_noarg(), mk_noarg(), mk_noarg() };
        const node *parts[3] = { e->b, e->c, e->d };
        if (!ev(r, e->a, &o)) return false;
        bool ok = true;
        for (int i = 0; i < 3 && ok; i++)
            if (parts[i]) ok = ev(r, parts[i], &x[i]);
        if (ok) ok = fc_jinja_get_slice(r, e, o, x[0], x[1], x[2], out);
        for (int i = 0; i < 3; i++) fc_jinja_decref(r, x[i]);
        fc_jinja_decref(r, o);
        return ok;
    }
    case E_CALL: {
        val fn;
        cargs a;
        if (!ev(r, e->a, &fn)) return false;
        if (!eval_args(r, e, &a)) { fc_jinja_decref(r, fn); return false; }
        r->depth++;
        bool ok = call_func(r, e, fn, &a, out);
        r->depth--;
        free_args(r, &a);
        fc_jinja_decref(r, fn);
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
        if (!eval_args(r, e, &a)) { fc_jinja_decref(r, v); return false; }
        bool ok = fc_jinja_apply_filter(r, e, e->name, v, &a, out);
        free_args(r, &a);
        fc_jinja_decref(r, v);
        return ok;
    }
    case E_TEST: {
        val v;
        cargs a;
        bool res;
        if (!ev(r, e->a, &v)) return false;
        if (!eval_args(r, e, &a)) { fc_jinja_decref(r, v); return false; }
        bool ok = fc_jinja_apply_test(r, e, e->name, v, &a, &res);
        free_args(r, &a);
        fc_jinja_decref(r, v);
        if (ok) *out = mk_bool(res != e->flag);
        return ok;
    }
    case E_BIN: {
        val x, y;
        if (!ev(r, e->a, &x)) return false;
        if (!ev(r, e->b, &y)) { fc_jinja_decref(r, x); return false; }
        bool ok = fc_jinja_binop(r, e, e->op, x, y, out);
        fc_jinja_decref(r, x);
        fc_jinja_decref(r, y);
        return ok;
    }
    case E_NEG: case E_POS: {
        val x;
        if (!ev(r, e->a, &x)) return false;
        bool ok = true;
        if (x.t == VT_FLOAT) *out = mk_float(e->kind == E_NEG ? -x.u.f : x.u.f);
        else if (is_intlike(x)) {
            int64_t i = int_of(x);
            if (e->kind == E_NEG && i == INT64_MIN) ok = fc_jinja_failf(r, e, "integer overflow");
            else *out = mk_int(e->kind == E_NEG ? -i : i);
        } else if (x.t == VT_UNDEF) ok = fc_jinja_fail_undef(r, e, x);
        else ok = fc_jinja_failf(r, e, "bad operand type for unary %s: '%s'", e->kind == E_NEG ? "-" : "+", fc_jinja_type_name(x));
        fc_jinja_decref(r, x);
        return ok;
    }
    case E_NOT: {
        val x;
        if (!ev(r, e->a, &x)) return false;
        *out = mk_bool(!fc_jinja_truthy(x));
        fc_jinja_decref(r, x);
        return true;
    }
    case E_AND: case E_OR: {
        val x;
        if (!ev(r, e->a, &x)) return false;
        if (fc_jinja_truthy(x) == (e->kind == E_OR)) { *out = x; return true; }
        fc_jinja_decref(r, x);
        return ev(r, e->b, out);
    }
    case E_CMP: {
        val left;
        if (!ev(r, e->kids[0], &left)) return false;
        bool res = true;
        for (int i = 1; i < e->n && res; i++) {
            val right;
            if (!ev(r, e->kids[i], &right)) { fc_jinja_decref(r, left); return false; }
            int op = e->ops[i - 1], c;
            bool ok = true;
            switch (op) {
            case O_EQ: res = fc_jinja_v_eq(&left, &right, 0); break;
            case O_NE: res = !fc_jinja_v_eq(&left, &right, 0); break;
            case O_IN: ok = fc_jinja_v_in(r, e, left, right, &res); break;
            case O_NOTIN: ok = fc_jinja_v_in(r, e, left, right, &res); res = !res; break;
            default:
                ok = fc_jinja_v_cmp(r, e, left, right, op, &c, 0);
                res = ok && c != 2 && (op == O_LT ? c < 0 : op == O_LE ? c <= 0 : op == O_GT ? c > 0 : c >= 0);
            }
            fc_jinja_decref(r, left);
            left = right;
            if (!ok) { fc_jinja_decref(r, left); return false; }
        }
        fc_jinja_decref(r, left);
        *out = mk_bool(res);
        return true;
    }
    case E_CONCAT: {
        fc_str b = { 0 };
        fc_str_putn(&b, "", 0);
        for (int i = 0; i < e->n; i++) {
            val x;
            if (!ev(r, e->kids[i], &x)) { fc_str_free(&b); return false; }
            bool ok = fc_jinja_py_str_into(r, e, &b, x, 0);
            fc_jinja_decref(r, x);
            if (!ok || !fc_jinja_size_ok(r, e, b.len)) { fc_str_free(&b); return false; }
        }
        return fc_jinja_sb_val(r, e, &b, out);
    }
    case E_COND: {
        val t;
        if (!ev(r, e->a, &t)) return false;
        bool yes = fc_jinja_truthy(t);
        fc_jinja_decref(r, t);
        if (yes) return ev(r, e->b, out);
        if (e->c) return ev(r, e->c, out);
        *out = fc_jinja_mk_undef_hint(r, "the inline if-expression on line %d evaluated to false and no else section was defined.", e->line);
        return true;
    }
    default:
        return fc_jinja_failf(r, e, "internal error: bad expression node %d", e->kind);
    }
}

static bool ev(R *r, const node *e, val *out)
{
    if (!fc_jinja_step(r, e)) return false;
    if (++r->depth > MAX_EVAL_DEPTH) {
        r->depth--;
        return fc_jinja_failf(r, e, "template recursion deeper than %d", MAX_EVAL_DEPTH);
    }
    bool ok = ev_inner(r, e, out);
    r->depth--;
    return ok;
}

/* ---- executing statements ---- */

static bool emit(R *r, const node *at, const char *s, size_t n)
{
    fc_str_putn(r->out, s, n);
    return fc_jinja_size_ok(r, at, r->out->len);
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
            fc_jinja_decref(r, ns);
            fc_jinja_decref(r, v);
            return fc_jinja_failf(r, t, "cannot assign attribute on non-namespace object");
        }
        if (t->attr[0] == '_') {
            fc_jinja_decref(r, ns);
            fc_jinja_decref(r, v);
            return fc_jinja_failf(r, t, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '%s'", t->attr);
        }
        fc_jinja_dict_set(r, DICT(ns), fc_jinja_vcstr(r, t->attr), v);
        fc_jinja_decref(r, ns);
        return true;
    }
    /* a tuple of targets: unpack */
    jlist *items;
    bool ok = v.t == VT_UNDEF ? fc_jinja_failf(r, t, "cannot unpack an undefined value") : fc_jinja_iter_list(r, t, v, &items);
    fc_jinja_decref(r, v);
    if (!ok) return false;
    if (items->n != (size_t)t->n) {
        if (items->n < (size_t)t->n) fc_jinja_failf(r, t, "not enough values to unpack (expected %d, got %zu)", t->n, items->n);
        else fc_jinja_failf(r, t, "too many values to unpack (expected %d)", t->n);
        fc_jinja_decref(r, mk_obj(VT_LIST, items));
        return false;
    }
    for (int i = 0; i < t->n && ok; i++) ok = assign(r, t->kids[i], incref(items->v[i]));
    fc_jinja_decref(r, mk_obj(VT_LIST, items));
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
    return fc_jinja_sb_val(r, body, &buf, out) ? X_OK : X_ERR;
}

static int exec_for(R *r, const node *s)
{
    val it;
    jlist *items;
    if (!ev(r, s->b, &it)) return X_ERR;
    if (it.t == VT_NS) { fc_jinja_decref(r, it); return fc_jinja_failf(r, s, "'Namespace' object is not iterable"), X_ERR; }
    bool ok = fc_jinja_iter_list(r, s->b, it, &items);
    fc_jinja_decref(r, it);
    if (!ok) return X_ERR;
    frame *outer = r->top;
    if (s->e) { /* {% for x in xs if cond %}: filtered before loop.* is computed */
        jlist *kept = fc_jinja_list_new(r, 0, false);
        for (size_t i = 0; i < items->n && ok; i++) {
            frame f;
            val c;
            frame_push(r, &f, outer);
            ok = assign(r, s->a, incref(items->v[i])) && ev(r, s->e, &c);
            if (ok) {
                if (fc_jinja_truthy(c)) fc_jinja_list_push(r, kept, incref(items->v[i]));
                fc_jinja_decref(r, c);
            }
            frame_pop(r, &f, outer);
        }
        fc_jinja_decref(r, mk_obj(VT_LIST, items));
        items = kept;
        if (!ok) { fc_jinja_decref(r, mk_obj(VT_LIST, items)); return X_ERR; }
    }
    int rc = X_OK;
    if (!items->n) {
        if (s->d) {
            frame f;
            frame_push(r, &f, outer);
            rc = exec(r, s->d);
            frame_pop(r, &f, outer);
        }
        fc_jinja_decref(r, mk_obj(VT_LIST, items));
        return rc;
    }
    for (size_t i = 0; i < items->n; i++) {
        frame f;
        frame_push(r, &f, outer);
        jloop *L = fc_jinja_obj_new(r, VT_LOOP, sizeof(jloop));
        L->i = i;
        L->items = LIST(incref(mk_obj(VT_LIST, items)));
        frame_set(r, mk_obj(VT_STR, &g_key_loop), mk_obj(VT_LOOP, L));
        rc = assign(r, s->a, incref(items->v[i])) ? exec(r, s->c) : X_ERR;
        frame_pop(r, &f, outer);
        if (rc == X_ERR) break;
        if (rc == X_BREAK) { rc = X_OK; break; }
        rc = X_OK;
    }
    fc_jinja_decref(r, mk_obj(VT_LIST, items));
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
        bool ok = fc_jinja_py_str_into(r, s, r->out, v, 0) && fc_jinja_size_ok(r, s, r->out->len);
        if (ok && v.t == VT_STR) ok = fc_jinja_work(r, s, STR(v)->len);
        fc_jinja_decref(r, v);
        return ok ? X_OK : X_ERR;
    }
    case S_IF:
        for (const node *n = s; n;) {
            val c;
            if (!ev(r, n->a, &c)) return X_ERR;
            bool yes = fc_jinja_truthy(c);
            fc_jinja_decref(r, c);
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
            fc_jinja_decref(r, r->seed);
            r->seed = v;
            bool ok = ev(r, f, &seeded);
            fc_jinja_decref(r, r->seed);
            r->seed = mk_undef();
            if (!ok) return X_ERR;
            v = seeded;
        }
        if (s->kind == S_SETBLOCK) return assign(r, s->a, v) ? X_OK : X_ERR;
        bool ok = fc_jinja_py_str_into(r, s, r->out, v, 0) && fc_jinja_size_ok(r, s, r->out->len);
        fc_jinja_decref(r, v);
        return ok ? X_OK : X_ERR;
    }
    case S_MACRO:
        frame_set(r, s->k, fc_jinja_func_new(r, F_MACRO, mk_none(), s));
        return X_OK;
    case S_BREAK: return X_BREAK;
    case S_CONTINUE: return X_CONTINUE;
    case S_WITH: {
        int n = s->n / 2;
        val *vals = fc_xcalloc((size_t)n + 1, sizeof(val));
        for (int i = 0; i < n; i++)
            if (!ev(r, s->kids[2 * i + 1], &vals[i])) {
                for (int k = 0; k < i; k++) fc_jinja_decref(r, vals[k]);
                free(vals);
                return X_ERR;
            }
        frame f, *outer = r->top;
        frame_push(r, &f, outer);
        bool ok = true;
        for (int i = 0; i < n; i++) {
            if (ok) ok = assign(r, s->kids[2 * i], vals[i]);
            else fc_jinja_decref(r, vals[i]);
        }
        free(vals);
        int rc = ok ? exec(r, s->b) : X_ERR;
        frame_pop(r, &f, outer);
        return rc;
    }
    default:
        return fc_jinja_failf(r, s, "internal error: bad statement node %d", s->kind), X_ERR;
    }
}

static int exec(R *r, const node *s)
{
    if (!fc_jinja_step(r, s)) return X_ERR;
    if (++r->depth > MAX_EVAL_DEPTH) {
        r->depth--;
        return fc_jinja_failf(r, s, "template recursion deeper than %d", MAX_EVAL_DEPTH), X_ERR;
    }
    int rc = exec_inner(r, s);
    r->depth--;
    return rc;
}

/* ---- rendering ---- */

static bool from_json(R *r, const cJSON *j, val *out, int depth)
{
    if (depth > 500) return fc_jinja_failf(r, NULL, "context nested too deeply");
    if (cJSON_IsNull(j) || cJSON_IsInvalid(j)) { *out = mk_none(); return true; }
    if (cJSON_IsTrue(j)) { *out = mk_bool(true); return true; }
    if (cJSON_IsFalse(j)) { *out = mk_bool(false); return true; }
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        *out = isfinite(d) && d == floor(d) && fabs(d) < 9.2e18 ? mk_int((int64_t)d) : mk_float(d);
        return true;
    }
    if (cJSON_IsString(j)) { *out = fc_jinja_vcstr(r, j->valuestring ? j->valuestring : ""); return true; }
    if (cJSON_IsArray(j)) {
        jlist *l = fc_jinja_list_new(r, 0, false);
        *out = mk_obj(VT_LIST, l);
        for (const cJSON *c = j->child; c; c = c->next) {
            val x;
            if (!from_json(r, c, &x, depth + 1)) return false;
            fc_jinja_list_push(r, l, x);
        }
        return fc_jinja_step(r, NULL);
    }
    if (cJSON_IsObject(j)) {
        jdict *d = fc_jinja_dict_new(r, VT_DICT);
        *out = mk_obj(VT_DICT, d);
        for (const cJSON *c = j->child; c; c = c->next) {
            val x;
            if (!from_json(r, c, &x, depth + 1)) return false;
            fc_jinja_dict_set(r, d, fc_jinja_vcstr(r, c->string ? c->string : ""), x);
        }
        return fc_jinja_step(r, NULL);
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
            ok = fc_jinja_failf(&r, NULL, "the context must be a JSON object");
        } else {
            for (const cJSON *c = context->child; c && ok; c = c->next) {
                val v;
                ok = from_json(&r, c, &v, 0);
                if (ok) frame_set(&r, fc_jinja_vcstr(&r, c->string ? c->string : ""), v);
            }
        }
    }
    if (ok) ok = exec(&r, t->root) == X_OK;
    fc_jinja_free_all(&r);
    if (!ok) {
        fc_str_free(&out);
        if (err) *err = r.err ? r.err : fc_xstrdup("render failed");
        else free(r.err);
        return NULL;
    }
    free(r.err);
    return fc_str_take(&out);
}
