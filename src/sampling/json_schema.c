/*
 * json_schema.c: JSON Schema -> grammar text (grammar.h), so that sampling
 * under the grammar yields JSON that parses and validates against the
 * schema (the `jsonschema` package is the reference in the tests). OpenAI's
 * {"type":"json_object"} is fc_json_object_grammar().
 *
 * The output is a subset of what the schema accepts, chosen so that the
 * grammar stays small and unambiguous:
 *   - whitespace: none, one space, or a newline and up to 20 spaces/tabs,
 *     after '{' '[' ':' ',' and before ':' ',' '}' ']' (never unbounded, so
 *     a model cannot loop on blanks);
 *   - objects list their properties in the schema's order; required ones
 *     always, optional ones may be left out. Extra properties: when
 *     `properties` is given, none are produced whatever additionalProperties
 *     says (leaving them out is always valid); without `properties`, an
 *     object is a map whose values follow additionalProperties (absent or
 *     true: any JSON value; false: only {});
 *   - numbers: at most 16 integer digits, 15 fraction digits and a two-digit
 *     exponent (no endless digit runs); integers the same without fraction
 *     or exponent; minimum/maximum/exclusive* on integers are exact ranges;
 *     on numbers only integer bounds >= 0 (the value then has no exponent);
 *   - strings: any JSON string ("\uXXXX" escapes without surrogates),
 *     minLength/maxLength in code points as Python counts them; `pattern`
 *     translated from a regex subset (literals, classes, \d \w \s, '.',
 *     groups, '|', * + ? {m,n}, ^ and $ at the ends); characters a JSON
 *     string must escape are produced escaped when written literally and
 *     left out of classes and '.'; `format` date, time, date-time and uuid
 *     get their shape (a date is YYYY-MM-DD with month 01-12 and day 01-31,
 *     not checked against the month), other formats are ignored (jsonschema
 *     does not check formats by default);
 *   - enum/const: the values' JSON texts; anyOf/oneOf: the alternatives (for
 *     oneOf the alternatives must not overlap: not checked); allOf with one
 *     member; $ref to "#", "#/$defs/..." or "#/definitions/..." (recursion
 *     allowed); type lists; true / {} (any value).
 * Refused with "unsupported: ...": uniqueItems true, contains, prefixItems,
 * min/maxProperties, patternProperties, propertyNames, dependencies, not,
 * if/then/else, multipleOf, allOf of several, other $refs, pattern together
 * with a length bound, number bounds beyond the above, regex features beyond
 * the subset. Refused with "unsatisfiable: ...": false, an empty enum (after
 * the type filter), min above max, a required property whose schema is false.
 */
#include "grammar.h"
#include "base/fc_base.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#define MAX_SCHEMA_DEPTH 64
#define MAX_OUT (16u << 20)

/* ---- output buffer ---- */

typedef struct sb { char *s; size_t n, cap; bool full; } sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->full) return;
    if (b->n + n + 1 > MAX_OUT) { b->full = true; return; }
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = fc_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_puts(sb *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf) { b->full = true; return; }
    sb_put(b, buf, (size_t)n);
}

/* One string character; a group, so that repetition inlines it into its
 * loop rule (grammar.h: the loop then never leaves its frame). */
#define CHAR_GROUP "( [^\"\\\\\\x00-\\x1f] | \"\\\\\" esc )"

/* ---- the fixed rules every schema grammar shares ---- */

static const char BASE_RULES[] =
    "ws ::= ( \" \" | \"\\n\" [ \\t]{0,20} )?\n"
    "esc ::= [\"\\\\/bfnrt] | \"u\" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2} )\n"
    "char ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" esc\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" esc )* \"\\\"\"\n"
    "int ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} )\n"
    "number ::= int ( \".\" [0-9]{1,15} )? ( [eE] [-+]? [0-9]{1,2} )?\n"
    "boolean ::= \"true\" | \"false\"\n"
    "null ::= \"null\"\n"
    "value ::= object | array | string | number | boolean | null\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "date ::= [0-9]{4} \"-\" ( \"0\" [1-9] | \"1\" [0-2] ) \"-\" ( \"0\" [1-9] | [12] [0-9] | \"3\" [01] )\n"
    "time ::= ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]{1,6} )? "
    "( \"Z\" | [+-] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )\n"
    "uuid ::= [0-9a-f]{8} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{4} \"-\" [0-9a-f]{12}\n";

char *fc_json_object_grammar(void)
{
    sb b = {0};
    sb_puts(&b, "root ::= object\n");
    sb_puts(&b, BASE_RULES);
    return b.s;
}

/* ---- translation context ---- */

typedef struct refent { char *ref; int rule; } refent;

typedef struct ctx {
    cJSON *root;
    const char *prefix; /* of every rule name this schema adds */
    sb out;
    int n_rules;
    refent *refs;
    int n_refs;
    char *err;
    size_t err_cap;
    bool failed;
    bool unsat;   /* the failure is "unsatisfiable" (a caller may drop the branch) */
    int depth;
} ctx;

/* Forgets an "unsatisfiable" failure of a branch that can be left out. */
static bool recover_unsat(ctx *c)
{
    if (!c->unsat) return false;
    c->failed = c->unsat = false;
    if (c->err && c->err_cap) c->err[0] = 0;
    return true;
}

static void fail(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(ctx *c, const char *fmt, ...)
{
    if (c->failed) return;
    c->failed = true;
    c->unsat = !strncmp(fmt, "unsatisfiable", 13);
    if (!c->err || !c->err_cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->err_cap, fmt, ap);
    va_end(ap);
}

/* A rule name is "s<N>"; gen() returns N, or -1 on failure. The builtins get
 * fixed negative-free names via these ids. */
enum { R_VALUE = 1000000, R_STRING, R_NUMBER, R_INT, R_BOOLEAN, R_NULL, R_OBJECT };

static void put_rule(const ctx *c, sb *b, int r)
{
    switch (r) {
    case R_VALUE: sb_puts(b, "value"); break;
    case R_STRING: sb_puts(b, "string"); break;
    case R_NUMBER: sb_puts(b, "number"); break;
    case R_INT: sb_puts(b, "int"); break;
    case R_BOOLEAN: sb_puts(b, "boolean"); break;
    case R_NULL: sb_puts(b, "null"); break;
    case R_OBJECT: sb_puts(b, "object"); break;
    default: sb_printf(b, "%ss%d", c->prefix, r);
    }
}

/* Starts "s<N> ::= " in a separate buffer: rules are written whole, after
 * their dependencies may have been written (order does not matter). */
static int new_rule(ctx *c) { return c->n_rules++; }

static void rule_begin(const ctx *c, sb *b, int r) { sb_printf(b, "%ss%d ::= ", c->prefix, r); }
static void rule_end(ctx *c, sb *b)
{
    sb_puts(b, "\n");
    sb_put(&c->out, b->s ? b->s : "", b->n);
    free(b->s);
    memset(b, 0, sizeof *b);
}

/* A GBNF literal for the bytes s[0..n) (UTF-8 kept as is). */
static void put_lit(sb *b, const char *s, size_t n)
{
    sb_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') { char e[2] = {'\\', (char)ch}; sb_put(b, e, 2); }
        else if (ch < 0x20) sb_printf(b, "\\x%02x", ch);
        else sb_put(b, (const char *)&s[i], 1);
    }
    sb_puts(b, "\"");
}

/* The JSON text of v as a literal. */
static void put_json_lit(sb *b, const cJSON *v)
{
    char *t = cJSON_PrintUnformatted(v);
    if (!t) { b->full = true; return; }
    put_lit(b, t, strlen(t));
    free(t);
}

static int gen(ctx *c, const cJSON *node, const char *path);

/* ---- keywords ---- */

static const char *const ANNOTATIONS[] = {
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "$defs", "definitions", "format", "$anchor", "contentMediaType",
    "contentEncoding", NULL,
};
static const char *const STRUCTURAL[] = {
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "uniqueItems", NULL,
};
static const char *const COMBINERS[] = {"$ref", "anyOf", "oneOf", "allOf", "enum", "const", NULL};

static bool in_list(const char *const *l, const char *k)
{
    for (; *l; l++)
        if (!strcmp(*l, k)) return true;
    return false;
}

/* ---- $ref ---- */

static const cJSON *resolve_ref(ctx *c, const char *ref, const char *path)
{
    if (!strcmp(ref, "#")) return c->root;
    if (strncmp(ref, "#/", 2)) { fail(c, "unsupported: $ref '%.100s' at %s (only local refs)", ref, path); return NULL; }
    const cJSON *n = c->root;
    const char *p = ref + 2;
    char key[256];
    while (*p) {
        size_t k = 0;
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~' && (*p == '0' || *p == '1')) ch = *p++ == '0' ? '~' : '/';
            if (k + 1 < sizeof key) key[k++] = ch;
        }
        key[k] = 0;
        if (*p == '/') p++;
        n = cJSON_IsObject(n) ? cJSON_GetObjectItemCaseSensitive(n, key) : NULL;
        if (!n) { fail(c, "invalid schema: $ref '%.100s' at %s does not resolve", ref, path); return NULL; }
    }
    return n;
}

static int gen_ref(ctx *c, const char *ref, const char *path)
{
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i].ref, ref)) return c->refs[i].rule;
    const cJSON *target = resolve_ref(c, ref, path);
    if (!target) return -1;
    /* the rule is named before it is generated, so recursion refers to it */
    int r = new_rule(c);
    c->refs = fc_xrealloc(c->refs, sizeof *c->refs * (size_t)(c->n_refs + 1));
    c->refs[c->n_refs].ref = fc_xstrdup(ref);
    c->refs[c->n_refs].rule = r;
    c->n_refs++;
    int t = gen(c, target, ref);
    if (t < 0) return -1;
    sb b = {0};
    rule_begin(c, &b, r);
    put_rule(c, &b, t);
    rule_end(c, &b);
    return r;
}

/* ---- enum / const ---- */

static bool type_matches(const cJSON *v, const char *type)
{
    if (!strcmp(type, "string")) return cJSON_IsString(v);
    if (!strcmp(type, "boolean")) return cJSON_IsBool(v);
    if (!strcmp(type, "null")) return cJSON_IsNull(v);
    if (!strcmp(type, "object")) return cJSON_IsObject(v);
    if (!strcmp(type, "array")) return cJSON_IsArray(v);
    if (!strcmp(type, "number")) return cJSON_IsNumber(v);
    if (!strcmp(type, "integer")) return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 9e15;
    return false;
}

static bool value_allowed(const cJSON *v, const cJSON *type)
{
    if (!type) return true;
    if (cJSON_IsString(type)) return type_matches(v, type->valuestring);
    const cJSON *t;
    cJSON_ArrayForEach(t, type)
        if (cJSON_IsString(t) && type_matches(v, t->valuestring)) return true;
    return false;
}

static int gen_enum(ctx *c, const cJSON *node, const char *path)
{
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(node, "enum");
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(node, "const");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(node, "type");
    if (en && !cJSON_IsArray(en)) { fail(c, "invalid schema: enum at %s is not an array", path); return -1; }
    sb b = {0};
    int r = new_rule(c), n = 0;
    rule_begin(c, &b, r);
    const cJSON *v;
    if (cn) {
        bool in_enum = !en;
        if (en) cJSON_ArrayForEach(v, en) if (cJSON_Compare(v, cn, true)) in_enum = true;
        if (in_enum && value_allowed(cn, type)) { put_json_lit(&b, cn); n++; }
    } else {
        cJSON_ArrayForEach(v, en) {
            if (!value_allowed(v, type)) continue;
            if (n++) sb_puts(&b, " | ");
            put_json_lit(&b, v);
        }
    }
    if (!n) {
        free(b.s);
        fail(c, "unsatisfiable: no value of %s at %s matches", cn ? "const" : "enum", path);
        return -1;
    }
    rule_end(c, &b);
    return r;
}

/* ---- integers and number bounds ---- */

/* Digit strings of exactly the same length from a to b (a <= b). */
static void digits_range(sb *b, const char *a, const char *z, size_t n)
{
    if (n == 0) return;
    if (n == 1) { sb_printf(b, "[%c-%c]", a[0], z[0]); return; }
    bool a_low = true, z_high = true;
    for (size_t i = 1; i < n; i++) {
        if (a[i] != '0') a_low = false;
        if (z[i] != '9') z_high = false;
    }
    if (a[0] == z[0]) {
        sb_printf(b, "\"%c\" ", a[0]);
        digits_range(b, a + 1, z + 1, n - 1);
        return;
    }
    if (a_low && z_high) { sb_printf(b, "[%c-%c] [0-9]{%zu}", a[0], z[0], n - 1); return; }
    char nines[24], zeros[24];
    memset(nines, '9', n - 1);
    memset(zeros, '0', n - 1);
    sb_puts(b, "( ");
    sb_printf(b, "\"%c\" ", a[0]);
    digits_range(b, a + 1, nines, n - 1);
    if (a[0] + 1 <= z[0] - 1) sb_printf(b, " | [%c-%c] [0-9]{%zu}", a[0] + 1, z[0] - 1, n - 1);
    sb_printf(b, " | \"%c\" ", z[0]);
    digits_range(b, zeros, z + 1, n - 1);
    sb_puts(b, " )");
}

/* Decimal texts (no leading zeros) of the integers in [lo, hi], 0 <= lo <= hi. */
static void uint_range(sb *b, long long lo, long long hi)
{
    char a[24], z[24];
    int first = 1;
    sb_puts(b, "( ");
    for (int d = 1; d <= 17; d++) {
        long long p = 1;
        for (int i = 1; i < d; i++) p *= 10;
        long long dlo = d == 1 ? 0 : p, dhi = p * 10 - 1;
        if (dhi < lo || dlo > hi) continue;
        if (dlo < lo) dlo = lo;
        if (dhi > hi) dhi = hi;
        snprintf(a, sizeof a, "%lld", dlo);
        snprintf(z, sizeof z, "%lld", dhi);
        if (!first) sb_puts(b, " | ");
        first = 0;
        digits_range(b, a, z, strlen(a));
    }
    sb_puts(b, " )");
}

#define INT_LIMIT 9999999999999999LL /* 16 digits, as the int rule */

/* Reads minimum/maximum/exclusive* as integer bounds [*lo, *hi]. False when
 * a bound is not a number. */
static bool int_bounds(ctx *c, const cJSON *node, const char *path, long long *lo, long long *hi, bool *has)
{
    *lo = -INT_LIMIT;
    *hi = INT_LIMIT;
    *has = false;
    static const char *const keys[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(node, keys[i]);
        if (!v) continue;
        if (cJSON_IsBool(v)) { fail(c, "unsupported: boolean %s (draft 4) at %s", keys[i], path); return false; }
        if (!cJSON_IsNumber(v)) { fail(c, "invalid schema: %s at %s is not a number", keys[i], path); return false; }
        double x = v->valuedouble;
        *has = true;
        /* beyond the 16 digits we write: a far bound is no bound, a bound
         * past the far end leaves nothing (lo > hi: unsatisfiable) */
        if (x > (double)INT_LIMIT) {
            if (i < 2) *lo = INT_LIMIT + 1;
            continue;
        }
        if (x < -(double)INT_LIMIT) {
            if (i >= 2) *hi = -INT_LIMIT - 1;
            continue;
        }
        long long k;
        if (i == 0) { k = (long long)ceil(x); if (k > *lo) *lo = k; }
        if (i == 1) { k = (long long)floor(x) + 1; if (k > *lo) *lo = k; }
        if (i == 2) { k = (long long)floor(x); if (k < *hi) *hi = k; }
        if (i == 3) { k = (long long)ceil(x) - 1; if (k < *hi) *hi = k; }
    }
    return true;
}

static void int_range(sb *b, long long lo, long long hi)
{
    int n = 0;
    sb_puts(b, "( ");
    if (lo < 0) {
        long long nhi = hi < -1 ? hi : -1;
        sb_puts(b, "\"-\" ");
        uint_range(b, -nhi, -lo);
        n++;
    }
    if (hi >= 0) {
        if (n) sb_puts(b, " | ");
        uint_range(b, lo > 0 ? lo : 0, hi);
    }
    sb_puts(b, " )");
}

static int gen_integer(ctx *c, const cJSON *node, const char *path)
{
    long long lo, hi;
    bool has;
    if (!int_bounds(c, node, path, &lo, &hi, &has)) return -1;
    if (!has) return R_INT;
    if (lo > hi) { fail(c, "unsatisfiable: no integer in the bounds at %s", path); return -1; }
    sb b = {0};
    int r = new_rule(c);
    rule_begin(c, &b, r);
    int_range(&b, lo, hi);
    rule_end(c, &b);
    return r;
}

static int gen_number(ctx *c, const cJSON *node, const char *path)
{
    bool any = false;
    static const char *const keys[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int i = 0; i < 4; i++)
        if (cJSON_GetObjectItemCaseSensitive(node, keys[i])) any = true;
    if (!any) return R_NUMBER;
    const cJSON *mn = cJSON_GetObjectItemCaseSensitive(node, "minimum");
    const cJSON *mx = cJSON_GetObjectItemCaseSensitive(node, "maximum");
    if (cJSON_GetObjectItemCaseSensitive(node, "exclusiveMinimum") ||
        cJSON_GetObjectItemCaseSensitive(node, "exclusiveMaximum") || !cJSON_IsNumber(mn) ||
        (mx && !cJSON_IsNumber(mx)) || mn->valuedouble < 0 || mn->valuedouble != floor(mn->valuedouble) ||
        mn->valuedouble > 1e15 || (mx && (mx->valuedouble != floor(mx->valuedouble) || fabs(mx->valuedouble) > 1e15))) {
        fail(c, "unsupported: number bounds at %s (only integer minimum >= 0 and integer maximum)", path);
        return -1;
    }
    long long lo = (long long)mn->valuedouble, hi = mx ? (long long)mx->valuedouble : INT_LIMIT;
    if (lo > hi) { fail(c, "unsatisfiable: minimum above maximum at %s", path); return -1; }
    sb b = {0};
    int r = new_rule(c);
    rule_begin(c, &b, r);
    /* x in [lo, hi]: an integer part in [lo, hi - 1] with any fraction, or hi
     * itself with a zero fraction */
    if (lo < hi) {
        uint_range(&b, lo, hi - 1);
        sb_puts(&b, " ( \".\" [0-9]{1,15} )? | ");
    }
    uint_range(&b, hi, hi);
    sb_puts(&b, " ( \".\" \"0\"{1,15} )?");
    rule_end(c, &b);
    return r;
}

/* ---- regex patterns ---- */

/* Code-point ranges of a class, as pairs. */
typedef struct ranges { uint32_t r[512]; int n; bool over; } ranges;

static void rg_add(ranges *g, uint32_t lo, uint32_t hi)
{
    if (g->n >= 256) { g->over = true; return; }
    g->r[2 * g->n] = lo;
    g->r[2 * g->n + 1] = hi;
    g->n++;
}

static int cmp_u32pair(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Sorted, merged, complemented when neg, minus what a JSON string must
 * escape (controls, '"', '\\'). */
static void rg_finish(ranges *g, bool neg)
{
    if (g->n) qsort(g->r, (size_t)g->n, 2 * sizeof(uint32_t), cmp_u32pair);
    int k = 0;
    for (int i = 0; i < g->n; i++) {
        if (k && g->r[2 * i] <= g->r[2 * k - 1] + 1) {
            if (g->r[2 * i + 1] > g->r[2 * k - 1]) g->r[2 * k - 1] = g->r[2 * i + 1];
        } else {
            g->r[2 * k] = g->r[2 * i];
            g->r[2 * k + 1] = g->r[2 * i + 1];
            k++;
        }
    }
    g->n = k;
    ranges o = {.n = 0};
    uint32_t next = 0;
    for (int i = 0; i < g->n && neg; i++) {
        if (g->r[2 * i] > next) rg_add(&o, next, g->r[2 * i] - 1);
        next = g->r[2 * i + 1] + 1;
    }
    if (neg) {
        if (next <= 0x10FFFF) rg_add(&o, next, 0x10FFFF);
        *g = o;
    }
    /* subtract 0x00-0x1F, '"' (0x22), '\\' (0x5C) */
    static const uint32_t cut[3][2] = {{0, 0x1F}, {0x22, 0x22}, {0x5C, 0x5C}};
    for (int c = 0; c < 3; c++) {
        ranges t = {.n = 0};
        for (int i = 0; i < g->n; i++) {
            uint32_t lo = g->r[2 * i], hi = g->r[2 * i + 1];
            if (hi < cut[c][0] || lo > cut[c][1]) { rg_add(&t, lo, hi); continue; }
            if (lo < cut[c][0]) rg_add(&t, lo, cut[c][0] - 1);
            if (hi > cut[c][1]) rg_add(&t, cut[c][1] + 1, hi);
        }
        t.over |= g->over;
        *g = t;
    }
}

/* Keeps ASCII only. Python's \d \w \s are Unicode-aware, so the complement
 * of our ASCII versions must not reach beyond ASCII (a Unicode digit is not
 * \D there). */
static void rg_clip_ascii(ranges *g)
{
    int k = 0;
    for (int i = 0; i < g->n; i++) {
        if (g->r[2 * i] > 0x7F) continue;
        g->r[2 * k] = g->r[2 * i];
        g->r[2 * k + 1] = g->r[2 * i + 1] > 0x7F ? 0x7F : g->r[2 * i + 1];
        k++;
    }
    g->n = k;
}

typedef struct rx {
    const char *s, *end;
    ctx *c;
    const char *path;
    int depth;
} rx;

static void rx_fail(rx *x, const char *what)
{
    fail(x->c, "unsupported: pattern feature %s at %s", what, x->path);
}

/* Reads one UTF-8 code point from the pattern. */
static int32_t rx_cp(rx *x)
{
    const unsigned char *s = (const unsigned char *)x->s;
    unsigned ch = s[0];
    int len = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
    if (x->end - x->s < len) { rx_fail(x, "(bad UTF-8)"); return -1; }
    uint32_t cp = len == 1 ? ch : ch & (0x7Fu >> len);
    for (int i = 1; i < len; i++) cp = (cp << 6) | (s[i] & 0x3F);
    x->s += len;
    return (int32_t)cp;
}

/* Adds the ranges of \d \w \s (neg: their complement is asked: refused
 * inside classes, handled by the caller outside). */
static bool rx_shorthand(char e, ranges *g)
{
    switch (e) {
    case 'd': rg_add(g, '0', '9'); return true;
    case 'w': rg_add(g, '0', '9'); rg_add(g, 'A', 'Z'); rg_add(g, '_', '_'); rg_add(g, 'a', 'z'); return true;
    case 's': rg_add(g, ' ', ' '); return true; /* \t \n \r \f \v would need escapes: left out */
    default: return false;
    }
}

/* An escaped character outside shorthands: the code point, or -1. */
static int32_t rx_escape_cp(rx *x)
{
    char e = *x->s;
    switch (e) {
    case 'n': x->s++; return '\n';
    case 't': x->s++; return '\t';
    case 'r': x->s++; return '\r';
    case 'f': x->s++; return '\f';
    case 'v': x->s++; return '\v';
    case 'x': case 'u': {
        int n = e == 'x' ? 2 : 4;
        x->s++;
        uint32_t v = 0;
        for (int i = 0; i < n; i++) {
            if (x->s >= x->end) { rx_fail(x, "(bad escape)"); return -1; }
            char h = *x->s++;
            int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
            if (d < 0) { rx_fail(x, "(bad escape)"); return -1; }
            v = v * 16 + (uint32_t)d;
        }
        if (v >= 0xD800 && v <= 0xDFFF) { rx_fail(x, "(surrogate escape)"); return -1; }
        return (int32_t)v;
    }
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
            char w[32];
            snprintf(w, sizeof w, "\\%c", e);
            rx_fail(x, w);
            return -1;
        }
        return rx_cp(x);
    }
}

static void put_class(sb *b, ranges *g)
{
    if (g->n == 0) { sb_puts(b, "[^\\x00-\\U0010FFFF]"); return; } /* matches nothing */
    sb_puts(b, "[");
    for (int i = 0; i < g->n; i++) {
        sb_printf(b, "\\U%08X", g->r[2 * i]);
        if (g->r[2 * i + 1] != g->r[2 * i]) sb_printf(b, "-\\U%08X", g->r[2 * i + 1]);
    }
    sb_puts(b, "]");
}

/* One literal code point of the pattern as JSON string text. */
static void put_json_char(sb *b, uint32_t cp)
{
    if (cp == '"') sb_puts(b, "\"\\\\\\\"\"");       /* \" */
    else if (cp == '\\') sb_puts(b, "\"\\\\\\\\\""); /* \\ */
    else if (cp == '\n') sb_puts(b, "\"\\\\n\"");
    else if (cp == '\t') sb_puts(b, "\"\\\\t\"");
    else if (cp == '\r') sb_puts(b, "\"\\\\r\"");
    else if (cp < 0x20) sb_printf(b, "\"\\\\u%04x\"", cp);
    else sb_printf(b, "[\\U%08X]", cp);
}

static void rx_alts(rx *x, sb *b);

static void rx_atom(rx *x, sb *b)
{
    char ch = *x->s;
    ranges g = {.n = 0};
    if (ch == '(') {
        x->s++;
        if (x->s < x->end && *x->s == '?') {
            if (x->end - x->s >= 2 && x->s[1] == ':') x->s += 2;
            else { rx_fail(x, "(?...)"); return; }
        }
        if (++x->depth > 100) { rx_fail(x, "(nesting)"); return; }
        sb_puts(b, "( ");
        rx_alts(x, b);
        sb_puts(b, " )");
        x->depth--;
        if (x->s >= x->end || *x->s != ')') { rx_fail(x, "(unbalanced parenthesis)"); return; }
        x->s++;
    } else if (ch == '[') {
        x->s++;
        bool neg = x->s < x->end && *x->s == '^';
        if (neg) x->s++;
        bool first = true, shorthand = false;
        for (;;) {
            if (x->s >= x->end) { rx_fail(x, "(unterminated class)"); return; }
            if (*x->s == ']' && !first) { x->s++; break; }
            first = false;
            int32_t lo;
            if (*x->s == '\\') {
                x->s++;
                if (x->s >= x->end) { rx_fail(x, "(bad escape)"); return; }
                if (rx_shorthand(*x->s, &g)) { x->s++; shorthand = true; continue; }
                if (*x->s == 'D' || *x->s == 'W' || *x->s == 'S') { rx_fail(x, "\\D \\W \\S in a class"); return; }
                lo = rx_escape_cp(x);
            } else if (*x->s == '[' && x->end - x->s > 1 && x->s[1] == ':') {
                rx_fail(x, "[:class:]");
                return;
            } else {
                lo = rx_cp(x);
            }
            if (lo < 0) return;
            int32_t hi = lo;
            if (x->end - x->s >= 2 && *x->s == '-' && x->s[1] != ']') {
                x->s++;
                if (*x->s == '\\') { x->s++; hi = x->s < x->end ? rx_escape_cp(x) : -1; }
                else hi = rx_cp(x);
                if (hi < 0) return;
                if (hi < lo) { fail(x->c, "invalid schema: bad class range in pattern at %s", x->path); return; }
            }
            rg_add(&g, (uint32_t)lo, (uint32_t)hi);
        }
        rg_finish(&g, neg);
        if (neg && shorthand) rg_clip_ascii(&g);
        if (g.over) { rx_fail(x, "(class too large)"); return; }
        put_class(b, &g);
    } else if (ch == '.') {
        x->s++;
        rg_add(&g, '\n', '\n');
        rg_finish(&g, true);
        put_class(b, &g);
    } else if (ch == '\\') {
        x->s++;
        if (x->s >= x->end) { rx_fail(x, "(trailing backslash)"); return; }
        char e = *x->s;
        if (rx_shorthand(e, &g)) {
            x->s++;
            rg_finish(&g, false);
            put_class(b, &g);
        } else if (e == 'D' || e == 'W' || e == 'S') {
            x->s++;
            rx_shorthand((char)(e + 32), &g);
            if (e == 'S') { rg_add(&g, '\t', '\r'); }
            rg_finish(&g, true);
            rg_clip_ascii(&g);
            put_class(b, &g);
        } else {
            int32_t cp = rx_escape_cp(x);
            if (cp < 0) return;
            put_json_char(b, (uint32_t)cp);
        }
    } else if (ch == '^' || ch == '$') {
        rx_fail(x, "(anchor inside the pattern)");
    } else if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
        rx_fail(x, "(quantifier without operand)");
    } else {
        int32_t cp = rx_cp(x);
        if (cp >= 0) put_json_char(b, (uint32_t)cp);
    }
}

static bool rx_quant(rx *x, sb *b)
{
    if (x->s >= x->end) return false;
    char ch = *x->s;
    if (ch == '*' || ch == '+' || ch == '?') {
        x->s++;
        sb_put(b, &ch, 1);
    } else if (ch == '{') {
        const char *q = x->s + 1;
        long m = 0, n = -1;
        if (q >= x->end || *q < '0' || *q > '9') return false; /* a literal '{' */
        while (q < x->end && *q >= '0' && *q <= '9') m = m * 10 + (*q++ - '0'), m = m > 100000 ? 100000 : m;
        if (q < x->end && *q == ',') {
            q++;
            if (q < x->end && *q >= '0' && *q <= '9') {
                n = 0;
                while (q < x->end && *q >= '0' && *q <= '9') n = n * 10 + (*q++ - '0'), n = n > 100000 ? 100000 : n;
            }
        } else {
            n = m;
        }
        if (q >= x->end || *q != '}') return false;
        if (m > 1000 || n > 1000) { rx_fail(x, "(repetition above 1000)"); return false; }
        if (n >= 0 && n < m) { fail(x->c, "invalid schema: bad repetition in pattern at %s", x->path); return false; }
        x->s = q + 1;
        if (n < 0) sb_printf(b, "{%ld,}", m);
        else sb_printf(b, "{%ld,%ld}", m, n);
    } else {
        return false;
    }
    if (x->s < x->end && (*x->s == '?' || *x->s == '+')) x->s++; /* lazy/possessive: same language */
    return true;
}

static void rx_seq(rx *x, sb *b)
{
    while (!x->c->failed && x->s < x->end && *x->s != '|' && *x->s != ')') {
        if (*x->s == '$' && x->s + 1 == x->end) return;
        sb_puts(b, "( ");
        rx_atom(x, b);
        sb_puts(b, " )");
        if (!x->c->failed && rx_quant(x, b) && x->s < x->end && strchr("*+?{", *x->s) && rx_quant(x, b))
            rx_fail(x, "(multiple repeat)");
        sb_puts(b, " ");
    }
}

static void rx_alts(rx *x, sb *b)
{
    rx_seq(x, b);
    while (!x->c->failed && x->s < x->end && *x->s == '|') {
        x->s++;
        sb_puts(b, " | ");
        rx_seq(x, b);
    }
}

static bool gen_pattern(ctx *c, sb *b, const char *pat, const char *path)
{
    rx x = {pat, pat + strlen(pat), c, path, 0};
    bool start = x.s < x.end && *x.s == '^';
    if (start) x.s++;
    size_t n = strlen(pat);
    bool end = n && pat[n - 1] == '$' && (n < 2 || pat[n - 2] != '\\');
    /* Python's re.search: an unanchored side may have anything around it */
    if (!start) sb_printf(b, "%s* ", CHAR_GROUP);
    sb_puts(b, "( ");
    rx_alts(&x, b);
    sb_puts(b, " )");
    if (!c->failed && x.s < x.end && !(end && x.s + 1 == x.end)) rx_fail(&x, "(unbalanced parenthesis)");
    if (!end) sb_printf(b, " %s*", CHAR_GROUP);
    return !c->failed;
}

/* ---- strings ---- */

static bool get_count(ctx *c, const cJSON *node, const char *key, const char *path, long *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(node, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble)) {
        fail(c, "invalid schema: %s at %s is not a non-negative integer", key, path);
        return false;
    }
    if (v->valuedouble > 10000) {
        if (!strncmp(key, "max", 3)) return true; /* no practical bound */
        fail(c, "unsupported: %s above 10000 at %s", key, path);
        return false;
    }
    *out = (long)v->valuedouble;
    return true;
}

static int gen_string(ctx *c, const cJSON *node, const char *path)
{
    long mn = 0, mx = -1;
    if (!get_count(c, node, "minLength", path, &mn) || !get_count(c, node, "maxLength", path, &mx)) return -1;
    if (mx >= 0 && mn > mx) { fail(c, "unsatisfiable: minLength above maxLength at %s", path); return -1; }
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(node, "pattern");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(node, "format");
    const char *f = cJSON_IsString(fmt) ? fmt->valuestring : "";
    bool known_fmt = !strcmp(f, "date") || !strcmp(f, "time") || !strcmp(f, "date-time") || !strcmp(f, "uuid");
    if (pat && !cJSON_IsString(pat)) { fail(c, "invalid schema: pattern at %s is not a string", path); return -1; }
    if ((pat || known_fmt) && (mn > 0 || mx >= 0)) {
        fail(c, "unsupported: %s together with minLength/maxLength at %s", pat ? "pattern" : "format", path);
        return -1;
    }
    if (pat && known_fmt) { fail(c, "unsupported: pattern together with format at %s", path); return -1; }
    if (!pat && !known_fmt && mn == 0 && mx < 0) return R_STRING;
    sb b = {0};
    int r = new_rule(c);
    rule_begin(c, &b, r);
    sb_puts(&b, "\"\\\"\" ");
    if (pat) {
        if (!gen_pattern(c, &b, pat->valuestring, path)) { free(b.s); return -1; }
    } else if (known_fmt) {
        if (!strcmp(f, "date-time")) sb_puts(&b, "date \"T\" time");
        else sb_puts(&b, f);
    } else if (mx < 0) {
        sb_printf(&b, "%s{%ld,}", CHAR_GROUP, mn);
    } else {
        sb_printf(&b, "%s{%ld,%ld}", CHAR_GROUP, mn, mx);
    }
    sb_puts(&b, " \"\\\"\"");
    rule_end(c, &b);
    return r;
}

/* ---- arrays ---- */

static int gen_array(ctx *c, const cJSON *node, const char *path)
{
    long mn = 0, mx = -1;
    if (!get_count(c, node, "minItems", path, &mn) || !get_count(c, node, "maxItems", path, &mx)) return -1;
    if (mx >= 0 && mn > mx) { fail(c, "unsatisfiable: minItems above maxItems at %s", path); return -1; }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(node, "uniqueItems");
    if (u && !cJSON_IsFalse(u)) { fail(c, "unsupported: uniqueItems at %s", path); return -1; }
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(node, "items");
    int it = R_VALUE;
    if (cJSON_IsFalse(items)) {
        mx = 0;
        if (mn > 0) { fail(c, "unsatisfiable: items false with minItems > 0 at %s", path); return -1; }
    } else if (items) {
        if (cJSON_IsArray(items)) { fail(c, "unsupported: items as an array (tuple) at %s", path); return -1; }
        char sub[512];
        snprintf(sub, sizeof sub, "%s/items", path);
        it = gen(c, items, sub);
        if (it < 0) {
            /* an impossible item schema leaves only the empty array */
            if (mn > 0 || !recover_unsat(c)) return -1;
            mx = 0;
        }
    }
    sb b = {0};
    int r = new_rule(c);
    rule_begin(c, &b, r);
    sb_puts(&b, "\"[\" ws ");
    if (mx != 0) {
        if (mn == 0) sb_puts(&b, "( ");
        put_rule(c, &b, it);
        sb_puts(&b, " ws ( \",\" ws ");
        put_rule(c, &b, it);
        sb_puts(&b, " ws )");
        long lo = mn > 0 ? mn - 1 : 0;
        if (mx < 0) sb_printf(&b, "{%ld,}", lo);
        else sb_printf(&b, "{%ld,%ld}", lo, mx - 1);
        if (mn == 0) sb_puts(&b, " )?");
    }
    sb_puts(&b, " \"]\"");
    rule_end(c, &b);
    return r;
}

/* ---- objects ---- */

static int gen_object(ctx *c, const cJSON *node, const char *path)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(node, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(node, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(node, "additionalProperties");
    if (props && !cJSON_IsObject(props)) { fail(c, "invalid schema: properties at %s is not an object", path); return -1; }
    if (req && !cJSON_IsArray(req)) { fail(c, "invalid schema: required at %s is not an array", path); return -1; }
    int n_props = props ? cJSON_GetArraySize(props) : 0;
    int n_req_extra = 0;
    const cJSON *v;
    if (req)
        cJSON_ArrayForEach(v, req) {
            if (!cJSON_IsString(v)) { fail(c, "invalid schema: required at %s lists a non-string", path); return -1; }
            if (!props || !cJSON_GetObjectItemCaseSensitive(props, v->valuestring)) n_req_extra++;
        }
    if (n_props == 0 && n_req_extra == 0) {
        /* a map: values per additionalProperties */
        if (cJSON_IsFalse(addl)) {
            sb b = {0};
            int r = new_rule(c);
            rule_begin(c, &b, r);
            sb_puts(&b, "\"{\" ws \"}\"");
            rule_end(c, &b);
            return r;
        }
        if (!addl || cJSON_IsTrue(addl)) return R_OBJECT;
        char sub[512];
        snprintf(sub, sizeof sub, "%s/additionalProperties", path);
        int vr = gen(c, addl, sub);
        if (vr < 0) return -1;
        sb b = {0};
        int r = new_rule(c);
        rule_begin(c, &b, r);
        sb_puts(&b, "\"{\" ws ( string ws \":\" ws ");
        put_rule(c, &b, vr);
        sb_puts(&b, " ws ( \",\" ws string ws \":\" ws ");
        put_rule(c, &b, vr);
        sb_puts(&b, " ws )* )? \"}\"");
        rule_end(c, &b);
        return r;
    }
    /* the members, in order: listed properties, then required names that
     * have no schema (any value) */
    int n = n_props + n_req_extra;
    const char **names = fc_xcalloc((size_t)n, sizeof *names);
    int *val = fc_xcalloc((size_t)n, sizeof *val);
    bool *required = fc_xcalloc((size_t)n, sizeof *required);
    int k = 0;
    if (props)
        cJSON_ArrayForEach(v, props) {
            names[k] = v->string;
            required[k] = false;
            if (req) {
                const cJSON *q;
                cJSON_ArrayForEach(q, req) if (!strcmp(q->valuestring, v->string)) required[k] = true;
            }
            char sub[512];
            snprintf(sub, sizeof sub, "%s/properties/%.200s", path, v->string);
            val[k] = gen(c, v, sub);
            if (val[k] < 0) {
                if (!required[k] && recover_unsat(c)) {
                    val[k] = -2; /* an impossible optional property is left out */
                } else {
                    goto fail;
                }
            }
            k++;
        }
    if (req)
        cJSON_ArrayForEach(v, req)
            if (!props || !cJSON_GetObjectItemCaseSensitive(props, v->valuestring)) {
                bool dup = false;
                for (int i = 0; i < k; i++) dup = dup || !strcmp(names[i], v->valuestring);
                if (dup) continue;
                names[k] = v->valuestring;
                required[k] = true;
                val[k] = R_VALUE;
                k++;
            }
    n = k;
    /* first[i]: members i.. when none was written yet; after[i]: when one was */
    int base = c->n_rules;
    c->n_rules += 2 * (n + 1);
#define FIRST(i) (base + 2 * (i))
#define AFTER(i) (base + 2 * (i) + 1)
    for (int i = n; i >= 0; i--) {
        sb b = {0};
        rule_begin(c, &b, FIRST(i));
        if (i == n) {
            sb_puts(&b, "\"\"");
        } else if (val[i] == -2) {
            sb_printf(&b, "%ss%d", c->prefix, FIRST(i + 1));
        } else {
            cJSON *ks = cJSON_CreateString(names[i]);
            char *kt = ks ? cJSON_PrintUnformatted(ks) : NULL;
            cJSON_Delete(ks);
            if (!kt) { free(b.s); fail(c, "invalid schema: property name at %s", path); goto fail; }
            sb kv = {0};
            put_lit(&kv, kt, strlen(kt));
            sb_puts(&kv, " ws \":\" ws ");
            put_rule(c, &kv, val[i]);
            sb_puts(&kv, " ws");
            free(kt);
            sb_printf(&b, "%s %ss%d", kv.s, c->prefix, AFTER(i + 1));
            if (!required[i]) sb_printf(&b, " | %ss%d", c->prefix, FIRST(i + 1));
            rule_end(c, &b);
            rule_begin(c, &b, AFTER(i));
            sb_printf(&b, "\",\" ws %s %ss%d", kv.s, c->prefix, AFTER(i + 1));
            if (!required[i]) sb_printf(&b, " | %ss%d", c->prefix, AFTER(i + 1));
            free(kv.s);
            rule_end(c, &b);
            continue;
        }
        rule_end(c, &b);
        rule_begin(c, &b, AFTER(i));
        if (i == n) sb_puts(&b, "\"\"");
        else sb_printf(&b, "%ss%d", c->prefix, AFTER(i + 1));
        rule_end(c, &b);
    }
    int r = new_rule(c);
    sb b = {0};
    rule_begin(c, &b, r);
    sb_printf(&b, "\"{\" ws %ss%d \"}\"", c->prefix, FIRST(0));
    rule_end(c, &b);
#undef FIRST
#undef AFTER
    free(names);
    free(val);
    free(required);
    return r;
fail:
    free(names);
    free(val);
    free(required);
    return -1;
}

/* ---- dispatch ---- */

static int gen_typed(ctx *c, const cJSON *node, const char *type, const char *path)
{
    if (!strcmp(type, "string")) return gen_string(c, node, path);
    if (!strcmp(type, "integer")) return gen_integer(c, node, path);
    if (!strcmp(type, "number")) return gen_number(c, node, path);
    if (!strcmp(type, "boolean")) return R_BOOLEAN;
    if (!strcmp(type, "null")) return R_NULL;
    if (!strcmp(type, "object")) return gen_object(c, node, path);
    if (!strcmp(type, "array")) return gen_array(c, node, path);
    fail(c, "invalid schema: unknown type '%.40s' at %s", type, path);
    return -1;
}

/* A rule "s<N> ::= a | b | ..." of the given rule ids. */
static int alt_rule(ctx *c, const int *ids, int n)
{
    if (n == 1) return ids[0];
    sb b = {0};
    int r = new_rule(c);
    rule_begin(c, &b, r);
    for (int i = 0; i < n; i++) {
        if (i) sb_puts(&b, " | ");
        put_rule(c, &b, ids[i]);
    }
    rule_end(c, &b);
    return r;
}

static int gen_list(ctx *c, const cJSON *list, const char *key, const char *path)
{
    if (!cJSON_IsArray(list) || !cJSON_GetArraySize(list)) {
        fail(c, "invalid schema: %s at %s must be a non-empty array", key, path);
        return -1;
    }
    int n = cJSON_GetArraySize(list), k = 0, i = 0;
    int *ids = fc_xmalloc(sizeof *ids * (size_t)n);
    const cJSON *v;
    cJSON_ArrayForEach(v, list) {
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s/%d", path, key, i++);
        int r = gen(c, v, sub);
        if (r >= 0) { ids[k++] = r; continue; }
        if (recover_unsat(c)) continue; /* an impossible alternative is dropped */
        free(ids);
        return -1;
    }
    int r = -1;
    if (k) r = alt_rule(c, ids, k);
    else fail(c, "unsatisfiable: no alternative of %s at %s can be met", key, path);
    free(ids);
    return r;
}

static int gen_inner(ctx *c, const cJSON *node, const char *path)
{
    if (cJSON_IsTrue(node)) return R_VALUE;
    if (cJSON_IsFalse(node)) { fail(c, "unsatisfiable: schema false at %s", path); return -1; }
    if (!cJSON_IsObject(node)) { fail(c, "invalid schema: %s is not an object", path); return -1; }
    const cJSON *k;
    int n_struct = 0, n_comb = 0;
    cJSON_ArrayForEach(k, node) {
        if (in_list(STRUCTURAL, k->string)) n_struct++;
        else if (in_list(COMBINERS, k->string)) n_comb++;
        else if (!in_list(ANNOTATIONS, k->string)) {
            fail(c, "unsupported: keyword '%.60s' at %s", k->string, path);
            return -1;
        }
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(node, "type");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(node, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(node, "const");
    if (en || cn) {
        if (n_struct - (type ? 1 : 0) > 0 || n_comb > (en && cn ? 2 : 1)) {
            fail(c, "unsupported: enum/const together with other constraints at %s", path);
            return -1;
        }
        return gen_enum(c, node, path);
    }
    if (n_comb > 1 || (n_comb && n_struct)) {
        fail(c, "unsupported: $ref/anyOf/oneOf/allOf together with other constraints at %s", path);
        return -1;
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(node, "$ref");
    if (ref) {
        if (!cJSON_IsString(ref)) { fail(c, "invalid schema: $ref at %s is not a string", path); return -1; }
        return gen_ref(c, ref->valuestring, path);
    }
    const cJSON *l;
    if ((l = cJSON_GetObjectItemCaseSensitive(node, "anyOf"))) return gen_list(c, l, "anyOf", path);
    if ((l = cJSON_GetObjectItemCaseSensitive(node, "oneOf"))) return gen_list(c, l, "oneOf", path);
    if ((l = cJSON_GetObjectItemCaseSensitive(node, "allOf"))) {
        if (!cJSON_IsArray(l) || cJSON_GetArraySize(l) != 1) {
            fail(c, "unsupported: allOf with other than one member at %s", path);
            return -1;
        }
        char sub[512];
        snprintf(sub, sizeof sub, "%s/allOf/0", path);
        return gen(c, cJSON_GetArrayItem(l, 0), sub);
    }
    if (cJSON_IsString(type)) return gen_typed(c, node, type->valuestring, path);
    if (cJSON_IsArray(type)) {
        int n = cJSON_GetArraySize(type), k2 = 0;
        if (!n) { fail(c, "unsatisfiable: empty type list at %s", path); return -1; }
        int *ids = fc_xmalloc(sizeof *ids * (size_t)n);
        const cJSON *t;
        cJSON_ArrayForEach(t, type) {
            if (!cJSON_IsString(t)) { free(ids); fail(c, "invalid schema: type at %s", path); return -1; }
            int r = gen_typed(c, node, t->valuestring, path);
            if (r < 0) { free(ids); return -1; }
            ids[k2++] = r;
        }
        int r = alt_rule(c, ids, k2);
        free(ids);
        return r;
    }
    if (type) { fail(c, "invalid schema: type at %s", path); return -1; }
    /* no type: keywords that only constrain one type pick it (a valid subset) */
    static const struct { const char *key, *type; } infer[] = {
        {"properties", "object"}, {"required", "object"}, {"additionalProperties", "object"},
        {"items", "array"}, {"minItems", "array"}, {"maxItems", "array"},
        {"minLength", "string"}, {"maxLength", "string"}, {"pattern", "string"},
        {"minimum", "number"}, {"maximum", "number"}, {"exclusiveMinimum", "number"}, {"exclusiveMaximum", "number"},
    };
    for (size_t i = 0; i < sizeof infer / sizeof *infer; i++)
        if (cJSON_GetObjectItemCaseSensitive(node, infer[i].key)) return gen_typed(c, node, infer[i].type, path);
    return R_VALUE;
}

static int gen(ctx *c, const cJSON *node, const char *path)
{
    if (c->failed) return -1;
    if (++c->depth > MAX_SCHEMA_DEPTH) {
        fail(c, "unsupported: schema nested deeper than %d at %s", MAX_SCHEMA_DEPTH, path);
        c->depth--;
        return -1;
    }
    int r = gen_inner(c, node, path);
    c->depth--;
    if (r >= 0 && c->out.full) { fail(c, "unsupported: the schema's grammar is too large"); return -1; }
    return r;
}

char *fc_json_schema_to_rules(const char *schema, size_t len, const char *prefix, char *err, size_t err_cap)
{
    if (err && err_cap) err[0] = 0;
    for (const char *q = prefix; *q; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_')) {
            if (err && err_cap) snprintf(err, err_cap, "invalid prefix: rule names take [A-Za-z0-9_-]");
            return NULL;
        }
    cJSON *root = cJSON_ParseWithLength(schema, len);
    if (!root) {
        if (err && err_cap) snprintf(err, err_cap, "invalid schema: not valid JSON");
        return NULL;
    }
    ctx c = {.root = root, .prefix = prefix, .err = err, .err_cap = err_cap};
    int r = gen(&c, root, "#");
    char *out = NULL;
    if (r >= 0 && !c.failed) {
        sb b = {0};
        sb_printf(&b, "%sroot ::= ", prefix);
        put_rule(&c, &b, r);
        sb_puts(&b, "\n");
        sb_put(&b, c.out.s ? c.out.s : "", c.out.n);
        if (b.full) {
            free(b.s);
            if (err && err_cap) snprintf(err, err_cap, "unsupported: the schema's grammar is too large");
        } else {
            out = b.s;
        }
    }
    free(c.out.s);
    for (int i = 0; i < c.n_refs; i++) free(c.refs[i].ref);
    free(c.refs);
    cJSON_Delete(root);
    return out;
}

const char *fc_json_base_rules(void) { return BASE_RULES; }

char *fc_json_schema_to_grammar(const char *schema, size_t len, char *err, size_t err_cap)
{
    char *rules = fc_json_schema_to_rules(schema, len, "", err, err_cap);
    if (!rules) return NULL;
    size_t a = strlen(rules), b = sizeof BASE_RULES - 1;
    char *out = fc_xmalloc(a + b + 1);
    memcpy(out, rules, a);
    memcpy(out + a, BASE_RULES, b + 1);
    free(rules);
    return out;
}

fc_grammar *fc_grammar_from_json_schema(const char *schema, size_t len, char *err, size_t err_cap)
{
    char *text = fc_json_schema_to_grammar(schema, len, err, err_cap);
    if (!text) return NULL;
    char gerr[256];
    fc_grammar *g = fc_grammar_parse(text, strlen(text), gerr, sizeof gerr);
    if (!g && err && err_cap) {
        /* the translation's own checks missed it: the grammar checker finds
         * impossible patterns and the like */
        if (strstr(gerr, "never complete")) snprintf(err, err_cap, "unsatisfiable: the schema admits no value");
        else snprintf(err, err_cap, "unsupported: %s", gerr);
    }
    free(text);
    return g;
}
