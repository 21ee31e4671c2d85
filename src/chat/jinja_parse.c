/*
 * jinja_parse.c: the front end of the Jinja2 interpreter (see jinja_impl.h):
 * template source to syntax tree.
 *
 * The source is normalised as Jinja2's lexer does (\r\n and \r become \n,
 * one trailing \n is dropped), cut into tokens with the whitespace rules
 * applied there (-/+ markers, trim_blocks, lstrip_blocks with Jinja2's
 * "line_starting" rule), and parsed by recursive descent with Jinja2's
 * grammar and precedence (parser.py: or < and < not < compare < +,- < ~ <
 * *,/,//,% < ** < unary < postfix/filters/tests) into a tree of nodes in the
 * compiled template's arena. Constants are immortal values (rc < 0), which
 * is what lets threads share a compiled template.
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

/* ---- compile-time arena ---- */

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

/* ---- syntax tree ---- */

const char *const fc_jinja_op_text[] = {
    "", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")", "{", "}", "==", "!=", ">", ">=", "<",
    "<=", "=", ".", ":", "|", ",", ";", "in", "not in",
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

char *fc_jinja_vformat(const char *fmt, va_list ap)
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
    char *m = fc_jinja_vformat(fmt, ap);
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
size_t fc_jinja_ws_at(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 128) return fc_jinja_py_space(c) ? 1 : 0;
    size_t a;
    int32_t cp = fc_jinja_u8dec(s + i, n - i, &a);
    return fc_jinja_py_space(cp) ? a : 0;
}

static size_t skip_ws(const char *s, size_t i, size_t n)
{
    for (size_t k; i < n && (k = fc_jinja_ws_at(s, i, n)); i += k) {}
    return i;
}

/* str.rstrip() of s[a, e): the new end. */
size_t fc_jinja_rstrip_ws(const char *s, size_t a, size_t e)
{
    while (e > a) {
        size_t b = e - 1;
        while (b > a && e - b < 4 && ((unsigned char)s[b] & 0xc0) == 0x80) b--;
        if (fc_jinja_ws_at(s, b, e) != e - b) break;
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
    if (mod == '-') return fc_jinja_rstrip_ws(L->src, a, e);
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
            fc_jinja_u8put(&b, cp);
            break;
        }
        case 'N': fc_str_free(&b); return lex_fail(L, "\\N{...} escapes are not supported");
        default:
            if (c >= '0' && c <= '7') {
                int32_t cp = c - '0';
                for (int k = 0; k < 2 && j < e && s[j] >= '0' && s[j] <= '7'; k++) cp = cp * 8 + (s[j++] - '0');
                fc_jinja_u8put(&b, cp);
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
                if (depth == 0 || stack[depth - 1] != want) return lex_fail(L, "unexpected '%s'", fc_jinja_op_text[op]);
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
    default: snprintf(buf, cap, "%s", fc_jinja_op_text[t->op]); break;
    }
}

static void *pfail(P *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *pfail(P *p, const char *fmt, ...)
{
    if (p->err) return NULL;
    va_list ap;
    va_start(ap, fmt);
    char *m = fc_jinja_vformat(fmt, ap);
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
    snprintf(w, sizeof w, "'%s'", fc_jinja_op_text[op]);
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
