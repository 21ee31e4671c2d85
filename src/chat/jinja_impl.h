/*
 * jinja_impl.h: what the parts of the Jinja2 interpreter share (private to
 * src/chat/jinja*.c; the public API is jinja.h).
 *
 * The interpreter is split by stage, along the rulers the single file had:
 *   jinja_parse.c    source to syntax tree: the arena, lexer and parser;
 *                    fc_jinja_compile / fc_jinja_free
 *   jinja_value.c    values and their lifetime, render errors and budgets,
 *                    str()/repr(), json.dumps, comparisons, arithmetic,
 *                    attribute/item access, call arguments
 *   jinja_pystr.c    Python's str: character classes, number formatting,
 *                    str methods, str % args, str.format
 *   jinja_filters.c  Jinja2's tests and filters
 *   jinja.c          frames and globals, evaluation, statements,
 *                    fc_jinja_render
 * Functions one part calls in another carry the fc_jinja_ prefix; the rest
 * stay static in their file.
 */
#ifndef FC_JINJA_IMPL_H
#define FC_JINJA_IMPL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "jinja.h"

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

/* The empty string constant. */
extern jstr fc_jinja_empty;

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

static inline bool is_num(val v) { return v.t == VT_BOOL || v.t == VT_INT || v.t == VT_FLOAT; }
static inline bool is_intlike(val v) { return v.t == VT_BOOL || v.t == VT_INT; }
static inline int64_t int_of(val v) { return v.t == VT_BOOL ? (int64_t)v.u.b : v.u.i; }
static inline double num_of(val v) { return v.t == VT_FLOAT ? v.u.f : (double)int_of(v); }
static inline bool given(val v) { return v.t != VT_NOARG; }

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

/* The source text of each enum op. */
extern const char *const fc_jinja_op_text[];

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

/* What a function value calls: a global (F_), or a method of a str, dict,
 * list or loop (M_). */
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

/* ---- render state ---- */

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

enum { X_OK, X_ERR, X_BREAK, X_CONTINUE };

/* Arguments of a call: positional, then keyword (names kwn[i], values kwv[i]). */
typedef struct cargs {
    val *pos;
    int npos;
    const char *const *kwn;
    val *kwv;
    int nkw;
} cargs;

/* json.dumps options (the tojson filter). */
typedef struct json_opts {
    bool ensure_ascii, sort_keys, indent_on;
    const char *indent; size_t indent_len;
    const char *item_sep; size_t item_sep_len;
    const char *key_sep; size_t key_sep_len;
} json_opts;

enum { CASE_UPPER, CASE_LOWER, CASE_SWAP, CASE_TITLE, CASE_CAPITALIZE, CASE_JINJA_TITLE };

/* ---- jinja_value.c functions ---- */

void *fc_jinja_obj_new(R *r, int type, size_t size);
void fc_jinja_decref(R *r, val v);
void fc_jinja_free_all(R *r);
val fc_jinja_vstr(R *r, const char *s, size_t n);
val fc_jinja_vcstr(R *r, const char *s);
jlist *fc_jinja_list_new(R *r, size_t cap, bool tuple);
void fc_jinja_list_push(R *r, jlist *l, val v);
jdict *fc_jinja_dict_new(R *r, int type);
val *fc_jinja_dict_find(jdict *d, const val *k);
val *fc_jinja_dict_find_str(const jdict *d, const char *s, size_t n);
void fc_jinja_dict_set(R *r, jdict *d, val k, val v);
val fc_jinja_func_new(R *r, int id, val self, const node *macro);
val fc_jinja_mk_undef_hint(R *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *fc_jinja_type_name(val v);
bool fc_jinja_truthy(val v);
bool fc_jinja_failf(R *r, const node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool fc_jinja_fail_undef(R *r, const node *at, val u);
bool fc_jinja_step(R *r, const node *at);
bool fc_jinja_work(R *r, const node *at, size_t n);
bool fc_jinja_size_ok(R *r, const node *at, size_t n);
bool fc_jinja_sb_val(R *r, const node *at, fc_str *b, val *out);
bool fc_jinja_py_str_into(R *r, const node *at, fc_str *b, val v, int depth);
bool fc_jinja_py_repr(R *r, const node *at, fc_str *b, val v, int depth);
bool fc_jinja_to_str(R *r, const node *at, val v, val *out);
bool fc_jinja_json_dump(R *r, const node *at, fc_str *b, val v, const json_opts *o, int level);
bool fc_jinja_v_eq(const val *a, const val *b, int depth);
bool fc_jinja_v_cmp(R *r, const node *at, val a, val b, int op, int *res, int depth);
bool fc_jinja_v_in(R *r, const node *at, val a, val b, bool *res);
bool fc_jinja_binop(R *r, const node *at, int op, val a, val b, val *out);
const char *fc_jinja_obj_type_repr(val v, char *buf, size_t cap);
bool fc_jinja_get_attr(R *r, const node *at, val o, const char *name, size_t n, val *out);
size_t fc_jinja_cp_offset(const char *s, size_t n, size_t idx);
bool fc_jinja_get_item(R *r, const node *at, val o, val key, val *out);
bool fc_jinja_get_slice(R *r, const node *at, val o, val vstart, val vstop, val vstep, val *out);
bool fc_jinja_bind(R *r, const node *at, const char *fname, const cargs *a, int n, const char *const *names, val *slots);
bool fc_jinja_arg_int(R *r, const node *at, const char *what, val v, int64_t dflt, int64_t *out);
bool fc_jinja_arg_str(R *r, const node *at, const char *what, val v, jstr **out);
bool fc_jinja_iter_list(R *r, const node *at, val v, jlist **out);

/* ---- jinja_pystr.c functions ---- */

int32_t fc_jinja_u8dec(const char *s, size_t n, size_t *adv);
void fc_jinja_u8put(fc_str *b, int32_t cp);
size_t fc_jinja_u8len(const char *s, size_t n);
bool fc_jinja_py_space(int32_t c);
bool fc_jinja_py_linebreak(int32_t c);
bool fc_jinja_py_printable(int32_t c);
bool fc_jinja_cp_alpha(int32_t c);
bool fc_jinja_cp_numeric(int32_t c);
void fc_jinja_fmt_float(double d, char *out, size_t cap);
bool fc_jinja_s_strip(R *r, const node *at, jstr *s, val chars, int which, val *out);
bool fc_jinja_s_case(R *r, const node *at, jstr *s, int mode, val *out);
bool fc_jinja_s_replace(R *r, const node *at, jstr *s, jstr *old, jstr *rep, int64_t count, val *out);
bool fc_jinja_s_pad(R *r, const node *at, jstr *s, val width, val fill, int how, val *out);
bool fc_jinja_s_is(jstr *s, int id);
bool fc_jinja_call_str_method(R *r, const node *at, int id, jstr *s, const cargs *a, val *out);
bool fc_jinja_py_format(R *r, const node *at, val fmt, val args, val *out);

/* ---- jinja_parse.c functions ---- */

char *fc_jinja_vformat(const char *fmt, va_list ap);
size_t fc_jinja_ws_at(const char *s, size_t i, size_t n);
size_t fc_jinja_rstrip_ws(const char *s, size_t a, size_t e);

/* ---- jinja_filters.c functions ---- */

bool fc_jinja_apply_test(R *r, const node *at, const char *name, val v, const cargs *a, bool *res);
bool fc_jinja_apply_filter(R *r, const node *at, const char *name, val v, const cargs *a, val *out);

#endif
