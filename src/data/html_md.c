/*
 * html_md.c: HTML to Markdown, a port of what Python 3.11's html.parser,
 * BeautifulSoup 4 and markdownify 0.11.6 do together (html_md.h lists the
 * rules and what is not covered).
 *
 * The tokenizer keeps html.parser's structure (goahead() with its feed() pass
 * and its close() pass, parse_starttag, parse_endtag, ...) and uses its
 * regular expressions through PCRE2, with Python's str-pattern \s spelled out
 * as a class (Python's \s is str.isspace(), wider than PCRE2's). The tree is
 * bs4's; the conversion walks it as markdownify's process_tag does.
 */
#include "data/html_md.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <string.h>
#include <utf8proc.h>

#include "base/fc_base.h"
#include "data/data_impl.h"

#include "data/html_entities.inc"

/* ---- regular expressions (html.parser's, compiled once) ---- */

#define WSC "\\t-\\r\\x{1c}-\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"
#define WS "[" WSC "]"

enum { RE_TAGFIND, RE_ATTRFIND, RE_LOCATE, RE_ENDTAGFIND, RE_COMMENTCLOSE, RE_CDATA_SCRIPT,
       RE_CDATA_STYLE, N_RE };
static const char *const RE_SRC[N_RE] = {
    "([a-zA-Z][^\\t\\n\\r\\f />\\x00]*)(?:" WS "|/(?!>))*",
    "((?<=['\"" WSC "/])[^" WSC "/>][^" WSC "/=>]*)(" WS "*=+" WS "*('[^']*'|\"[^\"]*\"|(?!['\"])[^>" WSC
    "]*))?(?:" WS "|/(?!>))*",
    "<[a-zA-Z][^\\t\\n\\r\\f />\\x00]*(?:[" WSC "/]*(?:(?<=['\"" WSC "/])[^" WSC "/>][^" WSC
    "/=>]*(?:" WS "*=+" WS "*(?:'[^']*'|\"[^\"]*\"|(?!['\"])[^>" WSC "]*)" WS "*)?(?:" WS
    "|/(?!>))*)*)?" WS "*",
    "</" WS "*([a-zA-Z][-.a-zA-Z0-9:_]*)" WS "*>",
    "--" WS "*>",
    "(?i)</" WS "*script" WS "*>",
    "(?i)</" WS "*style" WS "*>",
};
static pcre2_code *RE[N_RE];
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void re_init(void)
{
    for (int i = 0; i < N_RE; i++) {
        int err;
        PCRE2_SIZE off;
        RE[i] = pcre2_compile((PCRE2_SPTR)RE_SRC[i], PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &off, NULL);
        FC_ASSERT(RE[i]);
        pcre2_jit_compile(RE[i], PCRE2_JIT_COMPLETE);
    }
}

typedef struct rx {
    pcre2_match_data *md;
} rx;

/* Python's pattern.match(s, pos) (anchored) or .search (not): true with the
 * group offsets in *ov (ov[2k], ov[2k+1]; PCRE2_UNSET when a group did not
 * take part). */
static bool re_at(rx *x, int which, const char *s, size_t n, size_t pos, bool anchored, PCRE2_SIZE **ov)
{
    int rc = pcre2_match(RE[which], (PCRE2_SPTR)s, n, pos, (anchored ? PCRE2_ANCHORED : 0) | PCRE2_NO_UTF_CHECK,
                         x->md, NULL);
    if (rc < 0) return false;
    *ov = pcre2_get_ovector_pointer(x->md);
    return true;
}

/* ---- arena strings ---- */

typedef struct sb {
    char *p;
    size_t n, cap;
    fc_pj_arena *a;
} sb;

static void sb_put(sb *b, const char *s, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n) cap *= 2;
        char *np = fc_pj_alloc(b->a, cap);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void sb_puts(sb *b, const char *s) { sb_put(b, s, strlen(s)); }

typedef struct str {
    const char *p;
    size_t n;
} str;

static str S(const sb *b) { return (str){b->p ? b->p : "", b->n}; }

/* ---- the tree (bs4) ---- */

enum { K_ROOT, K_TAG, K_TEXT, K_SKIP };

typedef struct attr {
    str name, value;
} attr;

typedef struct hn hn;
struct hn {
    int kind;
    str name; /* tag: lowercased */
    str text; /* text */
    attr *attrs;
    int n_attrs;
    hn *parent, *first, *last, *prev, *next;
};

typedef struct builder {
    fc_pj_arena *a;
    rx x;
    hn *root, *cur;
    sb data;          /* current_data */
    bool has_data;
    int preserve;     /* open pre/textarea tags */
    /* already_closed_empty_element: names of void tags closed at their start */
    str *closed;
    int n_closed, cap_closed;
    const char *cdata; /* "script" / "style" while in raw-text mode */
} builder;

static bool str_eq(str s, const char *c)
{
    size_t l = strlen(c);
    return s.n == l && !memcmp(s.p, c, l);
}

static bool name_in(str s, const char *const *list)
{
    for (; *list; list++)
        if (str_eq(s, *list)) return true;
    return false;
}

static const char *const VOID_TAGS[] = {"area", "base", "basefont", "bgsound", "br", "col", "command",
                                        "embed", "frame", "hr", "image", "img", "input", "isindex",
                                        "keygen", "link", "menuitem", "meta", "nextid", "param",
                                        "source", "spacer", "track", "wbr", NULL};

static hn *new_node(builder *b, int kind)
{
    hn *n = fc_pj_alloc(b->a, sizeof(hn));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    return n;
}

static void append(hn *parent, hn *c)
{
    c->parent = parent;
    c->prev = parent->last;
    c->next = NULL;
    if (parent->last) parent->last->next = c;
    else parent->first = c;
    parent->last = c;
}

static void extract(hn *c)
{
    hn *p = c->parent;
    if (c->prev) c->prev->next = c->next;
    else p->first = c->next;
    if (c->next) c->next->prev = c->prev;
    else p->last = c->prev;
    c->parent = c->prev = c->next = NULL;
}

static void handle_data(builder *b, const char *s, size_t n)
{
    sb_put(&b->data, s, n);
    b->has_data = true;
}

/* bs4 endData(): the collected text becomes one node */
static void end_data(builder *b, int kind)
{
    if (!b->has_data) return;
    str t = S(&b->data);
    if (!b->preserve) {
        bool strip = true, nl = false;
        for (size_t i = 0; i < t.n; i++) {
            char c = t.p[i];
            if (c == '\n') nl = true;
            else if (c != ' ' && c != '\t' && c != '\f' && c != '\r') { strip = false; break; }
        }
        if (strip) t = nl ? (str){"\n", 1} : (str){" ", 1};
    }
    hn *n = new_node(b, kind);
    n->text = t;
    append(b->cur, n);
    b->data = (sb){NULL, 0, 0, b->a};
    b->has_data = false;
}

static void pop_tag(builder *b)
{
    if (b->cur == b->root) return;
    if (str_eq(b->cur->name, "pre") || str_eq(b->cur->name, "textarea")) b->preserve--;
    b->cur = b->cur->parent;
}

/* bs4 handle_endtag -> _popToTag(name) */
static void soup_endtag(builder *b, str name)
{
    end_data(b, K_TEXT);
    hn *t = b->cur;
    while (t != b->root && !(t->name.n == name.n && !memcmp(t->name.p, name.p, name.n))) t = t->parent;
    if (t == b->root) return; /* no open tag of that name */
    while (b->cur != t) pop_tag(b);
    pop_tag(b);
}

static void soup_starttag(builder *b, str name, attr *attrs, int n_attrs, bool handle_empty)
{
    end_data(b, K_TEXT);
    hn *t = new_node(b, K_TAG);
    t->name = name;
    t->attrs = attrs;
    t->n_attrs = n_attrs;
    append(b->cur, t);
    b->cur = t;
    if (str_eq(name, "pre") || str_eq(name, "textarea")) b->preserve++;
    if (handle_empty && name_in(name, VOID_TAGS)) {
        soup_endtag(b, name);
        if (b->n_closed == b->cap_closed) {
            int nc = b->cap_closed ? b->cap_closed * 2 : 8;
            str *ns = fc_pj_alloc(b->a, (size_t)nc * sizeof(str));
            if (b->n_closed) memcpy(ns, b->closed, (size_t)b->n_closed * sizeof(str));
            b->closed = ns;
            b->cap_closed = nc;
        }
        b->closed[b->n_closed++] = name;
    }
}

/* BeautifulSoupHTMLParser.handle_endtag(tag, check_already_closed=True) */
static void parser_endtag(builder *b, str name)
{
    for (int i = 0; i < b->n_closed; i++)
        if (b->closed[i].n == name.n && !memcmp(b->closed[i].p, name.p, name.n)) {
            memmove(&b->closed[i], &b->closed[i + 1], (size_t)(b->n_closed - i - 1) * sizeof(str));
            b->n_closed--;
            return;
        }
    soup_endtag(b, name);
}

/* ---- references ---- */

static void put_cp(builder *b, unsigned cp)
{
    char o[4];
    size_t l = (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)o);
    handle_data(b, o, l);
}

static int ent_cmp(const void *k, const void *e)
{
    const str *key = k;
    const char *name = ((const struct html_entity *)e)->name;
    size_t l = strlen(name);
    int c = memcmp(key->p, name, key->n < l ? key->n : l);
    if (c) return c;
    return key->n < l ? -1 : key->n > l ? 1 : 0;
}

static const char *entity(str name)
{
    const struct html_entity *e = bsearch(&name, HTML_ENTITIES, FC_ARRAY_LEN(HTML_ENTITIES),
                                          sizeof(HTML_ENTITIES[0]), ent_cmp);
    return e ? e->utf8 : NULL;
}

/* bs4 handle_charref for the digits after "&#" ("123" or "x1F") */
static void charref(builder *b, const char *s, size_t n)
{
    int base = 10;
    if (n && (s[0] == 'x' || s[0] == 'X')) { base = 16; s++; n--; }
    unsigned long long v = 0;
    bool big = false;
    for (size_t i = 0; i < n; i++) {
        int d = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10;
        v = v * (unsigned)base + (unsigned)d;
        if (v > 0x10FFFF) big = true, v = 0x110000;
    }
    if (big || v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { put_cp(b, 0xFFFD); return; }
    if (v >= 0x80 && v <= 0x9F && CP1252_FIX[v - 0x80]) {
        handle_data(b, CP1252_FIX[v - 0x80], strlen(CP1252_FIX[v - 0x80]));
        return;
    }
    put_cp(b, (unsigned)v);
}

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_alnum(char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }
static bool is_hex(char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

static const char *html5_entity(const char *s, size_t n)
{
    str k = {s, n};
    const struct html_entity *e = bsearch(&k, HTML5_ENTITIES, FC_ARRAY_LEN(HTML5_ENTITIES),
                                          sizeof(HTML5_ENTITIES[0]), ent_cmp);
    return e ? e->utf8 : NULL;
}

static void put_utf8(sb *o, unsigned cp)
{
    char t[4];
    size_t l = (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)t);
    sb_put(o, t, l);
}

/* Python's html.unescape() (attribute values):
 * &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?) */
static str unescape_attr(builder *b, str v)
{
    if (!memchr(v.p, '&', v.n)) return v;
    sb o = {NULL, 0, 0, b->a};
    for (size_t i = 0; i < v.n;) {
        if (v.p[i] != '&' || i + 1 >= v.n) { sb_put(&o, v.p + i, 1); i++; continue; }
        size_t j = i + 1;
        if (v.p[j] == '#') {
            size_t k = j + 1, d0;
            bool hex = k < v.n && (v.p[k] | 0x20) == 'x';
            if (hex) k++;
            d0 = k;
            while (k < v.n && (hex ? is_hex(v.p[k]) : (v.p[k] >= '0' && v.p[k] <= '9'))) k++;
            if (k == d0) { sb_put(&o, v.p + i, 1); i++; continue; }
            unsigned long long num = 0;
            for (size_t q = d0; q < k; q++) {
                int d = v.p[q] <= '9' ? v.p[q] - '0' : (v.p[q] | 0x20) - 'a' + 10;
                num = num * (hex ? 16 : 10) + (unsigned)d;
                if (num > 0x110000) num = 0x110000;
            }
            if (k < v.n && v.p[k] == ';') k++;
            i = k;
            size_t c;
            for (c = 0; c < FC_ARRAY_LEN(INVALID_CHARREFS); c++)
                if (INVALID_CHARREFS[c].cp == num) break;
            if (c < FC_ARRAY_LEN(INVALID_CHARREFS)) { sb_puts(&o, INVALID_CHARREFS[c].utf8); continue; }
            if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { put_utf8(&o, 0xFFFD); continue; }
            for (c = 0; c < FC_ARRAY_LEN(INVALID_CODEPOINTS); c++)
                if (INVALID_CODEPOINTS[c] == num) break;
            if (c < FC_ARRAY_LEN(INVALID_CODEPOINTS)) continue;
            put_utf8(&o, (unsigned)num);
            continue;
        }
        /* a name: up to 32 characters of [^\t\n\f <&#;], then an optional ';' */
        size_t k = j, cps = 0;
        while (k < v.n && cps < 32 && !strchr("\t\n\f <&#;", v.p[k])) {
            dt_next_cp(v.p, v.n, &k);
            cps++;
        }
        if (k == j) { sb_put(&o, v.p + i, 1); i++; continue; }
        if (k < v.n && v.p[k] == ';') k++;
        const char *e = html5_entity(v.p + j, k - j);
        if (e) { sb_puts(&o, e); i = k; continue; }
        /* the longest prefix that is an entity (names are ASCII) */
        size_t x;
        for (x = k - j - 1; x > 1; x--)
            if ((e = html5_entity(v.p + j, x))) break;
        if (x > 1 && e) {
            sb_puts(&o, e);
            sb_put(&o, v.p + j + x, k - j - x);
        } else {
            sb_put(&o, v.p + i, k - i);
        }
        i = k;
    }
    return S(&o);
}

/* ---- tokenizer (html.parser goahead) ---- */

static str lower(builder *b, const char *s, size_t n)
{
    char *o = fc_pj_alloc(b->a, n * 2 + 4);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            o[k++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            i++;
            continue;
        }
        size_t j = i;
        unsigned cp = dt_next_cp(s, n, &j);
        k += (size_t)utf8proc_encode_char(utf8proc_tolower((utf8proc_int32_t)cp), (utf8proc_uint8_t *)o + k);
        i = j;
    }
    return (str){o, k};
}

static size_t find_ch(const char *s, size_t n, size_t from, char c)
{
    if (from >= n) return (size_t)-1;
    const char *p = memchr(s + from, c, n - from);
    return p ? (size_t)(p - s) : (size_t)-1;
}

#define NOPE ((size_t)-1)
#define INCOMPLETE ((size_t)-2)

/* check_for_whole_start_tag */
static size_t whole_start_tag(builder *b, const char *s, size_t n, size_t i)
{
    PCRE2_SIZE *ov;
    if (!re_at(&b->x, RE_LOCATE, s, n, i, true, &ov)) return i + 1; /* cannot happen */
    size_t j = ov[1];
    if (j >= n) return INCOMPLETE;
    char nx = s[j];
    if (nx == '>') return j + 1;
    if (nx == '/') {
        if (j + 1 < n && s[j + 1] == '>') return j + 2;
        return INCOMPLETE;
    }
    if (is_alpha(nx) || nx == '=' || nx == '/') return INCOMPLETE;
    return j > i ? j : i + 1;
}

static size_t parse_starttag(builder *b, const char *s, size_t n, size_t i)
{
    size_t endpos = whole_start_tag(b, s, n, i);
    if (endpos == INCOMPLETE) return endpos;
    PCRE2_SIZE *ov;
    bool m = re_at(&b->x, RE_TAGFIND, s, n, i + 1, true, &ov);
    FC_ASSERT(m);
    str tag = lower(b, s + ov[2], ov[3] - ov[2]);
    size_t k = ov[1];
    attr *attrs = NULL;
    int na = 0, cap = 0;
    while (k < endpos) {
        if (!re_at(&b->x, RE_ATTRFIND, s, n, k, true, &ov)) break;
        str name = lower(b, s + ov[2], ov[3] - ov[2]);
        str val = {"", 0};
        bool has_rest = ov[4] != PCRE2_UNSET && ov[5] > ov[4];
        if (has_rest) {
            val = (str){s + ov[6], ov[7] - ov[6]};
            if (val.n >= 2 && ((val.p[0] == '\'' && val.p[val.n - 1] == '\'') ||
                               (val.p[0] == '"' && val.p[val.n - 1] == '"'))) {
                val.p++;
                val.n -= 2;
            } else if (val.n == 1 && (val.p[0] == '\'' || val.p[0] == '"')) {
                /* attrvalue[:1] == "'" == attrvalue[-1:] holds for a lone quote */
                val.n = 0;
            }
            if (val.n) val = unescape_attr(b, val);
        }
        /* duplicate attributes: the last value replaces (bs4's REPLACE) */
        int d;
        for (d = 0; d < na; d++)
            if (attrs[d].name.n == name.n && !memcmp(attrs[d].name.p, name.p, name.n)) break;
        if (d < na) {
            attrs[d].value = val;
        } else {
            if (na == cap) {
                int nc = cap ? cap * 2 : 4;
                attr *nat = fc_pj_alloc(b->a, (size_t)nc * sizeof(attr));
                if (na) memcpy(nat, attrs, (size_t)na * sizeof(attr));
                attrs = nat;
                cap = nc;
            }
            attrs[na++] = (attr){name, val};
        }
        k = ov[1];
    }
    /* end = rawdata[k:endpos].strip() */
    size_t lo, hi;
    dt_py_strip(s + k, endpos - k, &lo, &hi);
    str end = {s + k + lo, hi - lo};
    if (!str_eq(end, ">") && !str_eq(end, "/>")) {
        handle_data(b, s + i, endpos - i);
        return endpos;
    }
    if (str_eq(end, "/>")) {
        soup_starttag(b, tag, attrs, na, false); /* handle_startendtag */
        soup_endtag(b, tag);                      /* check_already_closed=False */
    } else {
        soup_starttag(b, tag, attrs, na, true);
        if (str_eq(tag, "script")) b->cdata = "script";
        else if (str_eq(tag, "style")) b->cdata = "style";
    }
    return endpos;
}

static size_t bogus_comment(builder *b, const char *s, size_t n, size_t i)
{
    size_t pos = find_ch(s, n, i + 2, '>');
    if (pos == NOPE) return INCOMPLETE;
    end_data(b, K_TEXT);
    handle_data(b, s + i + 2, pos - i - 2);
    end_data(b, K_SKIP);
    return pos + 1;
}

static size_t parse_endtag(builder *b, const char *s, size_t n, size_t i)
{
    size_t gt = find_ch(s, n, i + 1, '>');
    if (gt == NOPE) return INCOMPLETE;
    size_t gtpos = gt + 1;
    PCRE2_SIZE *ov;
    if (!re_at(&b->x, RE_ENDTAGFIND, s, n, i, true, &ov)) {
        if (b->cdata) {
            handle_data(b, s + i, gtpos - i);
            return gtpos;
        }
        if (!re_at(&b->x, RE_TAGFIND, s, n, i + 2, true, &ov)) {
            if (i + 3 <= n && !memcmp(s + i, "</>", 3)) return i + 3;
            return bogus_comment(b, s, n, i);
        }
        str name = lower(b, s + ov[2], ov[3] - ov[2]);
        size_t g = find_ch(s, n, ov[1], '>');
        parser_endtag(b, name);
        return g + 1;
    }
    str elem = lower(b, s + ov[2], ov[3] - ov[2]);
    if (b->cdata && !str_eq(elem, b->cdata)) {
        handle_data(b, s + i, gtpos - i);
        return gtpos;
    }
    parser_endtag(b, elem);
    b->cdata = NULL;
    return ov[1];
}

static size_t parse_comment(builder *b, const char *s, size_t n, size_t i)
{
    PCRE2_SIZE *ov;
    if (!re_at(&b->x, RE_COMMENTCLOSE, s, n, i + 4, false, &ov)) return INCOMPLETE;
    end_data(b, K_TEXT);
    handle_data(b, s + i + 4, ov[0] - i - 4);
    end_data(b, K_SKIP);
    return ov[1];
}

static size_t parse_decl(builder *b, const char *s, size_t n, size_t i)
{
    if (i + 9 <= n && !strncasecmp(s + i, "<!doctype", 9)) {
        size_t gt = find_ch(s, n, i + 9, '>');
        if (gt == NOPE) return INCOMPLETE;
        end_data(b, K_TEXT);
        /* bs4 keeps decl[len("DOCTYPE "):] */
        size_t d0 = i + 2 + 8 < gt ? i + 2 + 8 : gt;
        handle_data(b, s + d0, gt - d0);
        if (gt == d0) b->has_data = true;
        end_data(b, K_SKIP); /* a Doctype node: skipped by markdownify, still a sibling */
        return gt + 1;
    }
    /* <![ marked sections are read as bogus comments here (see html_md.h) */
    return bogus_comment(b, s, n, i);
}

static size_t parse_pi(builder *b, const char *s, size_t n, size_t i)
{
    size_t gt = find_ch(s, n, i + 2, '>');
    if (gt == NOPE) return INCOMPLETE;
    end_data(b, K_TEXT);
    handle_data(b, s + i + 2, gt - i - 2);
    end_data(b, K_TEXT); /* a ProcessingInstruction is converted as text */
    return gt + 1;
}

/* goahead(end) from i; returns where it stopped (n when done). */
static size_t goahead(builder *b, const char *s, size_t n, size_t i, bool end, bool *stopped)
{
    *stopped = false;
    while (i < n) {
        size_t j;
        if (b->cdata) {
            PCRE2_SIZE *ov;
            if (!re_at(&b->x, strcmp(b->cdata, "script") ? RE_CDATA_STYLE : RE_CDATA_SCRIPT, s, n, i,
                       false, &ov)) {
                *stopped = true;
                return i; /* unterminated raw text: html.parser keeps it back */
            }
            j = ov[0];
        } else {
            j = i;
            while (j < n && s[j] != '<' && s[j] != '&') j++;
        }
        if (i < j) handle_data(b, s + i, j - i);
        i = j;
        if (i == n) break;
        if (s[i] == '<') {
            size_t k;
            if (i + 1 < n && is_alpha(s[i + 1])) k = parse_starttag(b, s, n, i);
            else if (i + 1 < n && s[i + 1] == '/') k = parse_endtag(b, s, n, i);
            else if (i + 3 < n && !memcmp(s + i, "<!--", 4)) k = parse_comment(b, s, n, i);
            else if (i + 1 < n && s[i + 1] == '?') k = parse_pi(b, s, n, i);
            else if (i + 1 < n && s[i + 1] == '!') k = parse_decl(b, s, n, i);
            else if (i + 1 < n) { handle_data(b, "<", 1); k = i + 1; }
            else { *stopped = true; return i; }
            if (k == INCOMPLETE) {
                if (!end) { *stopped = true; return i; }
                k = find_ch(s, n, i + 1, '>');
                if (k == NOPE) {
                    k = find_ch(s, n, i + 1, '<');
                    if (k == NOPE) k = i + 1;
                } else {
                    k += 1;
                }
                handle_data(b, s + i, k - i);
            }
            i = k;
        } else if (i + 1 < n && s[i + 1] == '#') {
            /* charref: &#(?:[0-9]+|[xX][0-9a-fA-F]+)[^0-9a-fA-F] */
            size_t k = i + 2, d0;
            bool hex = k < n && (s[k] == 'x' || s[k] == 'X');
            bool ok = false;
            if (hex) {
                d0 = ++k;
                while (k < n && is_hex(s[k])) k++;
                ok = k > d0 && k < n; /* s[k] is not a hex digit */
            } else {
                d0 = k;
                while (k < n && s[k] >= '0' && s[k] <= '9') k++;
                ok = k > d0 && k < n && !is_hex(s[k]);
            }
            if (ok) {
                charref(b, s + i + 2, k - i - 2);
                i = s[k] == ';' ? k + 1 : k;
                continue;
            }
            if (memchr(s + i, ';', n - i)) {
                handle_data(b, s + i, 2);
                i += 2;
            }
            *stopped = true;
            return i;
        } else {
            /* entityref: &([a-zA-Z][-.a-zA-Z0-9]*)[^a-zA-Z0-9] */
            size_t st = i + 1, e = st;
            bool ok = false;
            if (e < n && is_alpha(s[e])) {
                while (e < n && (is_alnum(s[e]) || s[e] == '-' || s[e] == '.')) e++;
                if (e < n) ok = true;
                else {
                    /* at the end of the text: back off to a '-' or '.' inside the name */
                    while (e > st + 1 && s[e - 1] != '-' && s[e - 1] != '.') e--;
                    if (e > st + 1) { e--; ok = true; }
                }
            }
            if (ok) {
                str name = {s + st, e - st};
                const char *ch = entity(name);
                if (ch) handle_data(b, ch, strlen(ch));
                else { handle_data(b, "&", 1); handle_data(b, name.p, name.n); }
                i = s[e] == ';' ? e + 1 : e;
                continue;
            }
            if (i + 1 < n && (is_alpha(s[i + 1]) || s[i + 1] == '#')) {
                /* "incomplete": stop here */
                if (end && i + 2 == n) i = i + 1;
                *stopped = true;
                return i;
            }
            if (i + 1 < n) {
                handle_data(b, "&", 1);
                i++;
            } else {
                *stopped = true;
                return i;
            }
        }
    }
    return i;
}

static hn *parse_html(builder *b, const char *s, size_t n)
{
    b->root = b->cur = new_node(b, K_ROOT);
    b->root->name = (str){"[document]", 10};
    b->data = (sb){NULL, 0, 0, b->a};
    bool stopped;
    /* feed(): goahead(0) keeps back what may be incomplete; close(): goahead(1) */
    size_t i = goahead(b, s, n, 0, false, &stopped);
    i = goahead(b, s, n, i, true, &stopped);
    if (stopped && i < n && !b->cdata) handle_data(b, s + i, n - i);
    end_data(b, K_TEXT);
    return b->root;
}

/* ---- markdownify ---- */

typedef struct md {
    fc_pj_arena *a;
} md;

static str attr_get(const hn *n, const char *name, bool *present)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (str_eq(n->attrs[i].name, name)) {
            if (present) *present = true;
            return n->attrs[i].value;
        }
    if (present) *present = false;
    return (str){"", 0};
}

/* Python truthiness of a sibling: a Tag is always true, a string only when
 * not empty (empty strings exist inside pre/textarea, e.g. <!---->) */
static bool truthy(const hn *el)
{
    return el && (el->kind == K_TAG || el->kind == K_ROOT || el->text.n > 0);
}

static bool is_nested_name(const hn *el)
{
    static const char *const NESTED[] = {"ol", "ul", "li", "table", "thead", "tbody", "tfoot", "tr",
                                         "td", "th", NULL};
    return el && el->kind == K_TAG && name_in(el->name, NESTED);
}

static str rstrip(str t)
{
    size_t lo, hi;
    dt_py_strip(t.p, t.n, &lo, &hi);
    return lo == hi ? (str){t.p, 0} : (str){t.p, hi};
}

static str strip(str t)
{
    size_t lo, hi;
    dt_py_strip(t.p, t.n, &lo, &hi);
    return (str){t.p + lo, hi - lo};
}

static size_t cplen(str t) { return fc_pj_str_cplen(t.p, t.n); }

/* re.sub('^', prefix, text, flags=re.M): before the text and after every '\n' */
static str prefix_lines(md *m, str t, const char *prefix)
{
    sb o = {NULL, 0, 0, m->a};
    sb_puts(&o, prefix);
    for (size_t i = 0; i < t.n; i++) {
        sb_put(&o, t.p + i, 1);
        if (t.p[i] == '\n') sb_puts(&o, prefix);
    }
    return S(&o);
}

static str process_tag(md *m, hn *node, bool inline_, bool children_only);

static str process_text(md *m, hn *el)
{
    str t = el->text;
    hn *p = el->parent;
    bool in_pre = str_eq(p->name, "pre") || (str_eq(p->name, "code") && p->parent && str_eq(p->parent->name, "pre"));
    sb o = {NULL, 0, 0, m->a};
    if (!in_pre) {
        for (size_t i = 0; i < t.n;) {
            if (t.p[i] == ' ' || t.p[i] == '\t') {
                while (i < t.n && (t.p[i] == ' ' || t.p[i] == '\t')) i++;
                sb_put(&o, " ", 1);
            } else {
                size_t j = i;
                while (j < t.n && t.p[j] != ' ' && t.p[j] != '\t') j++;
                sb_put(&o, t.p + i, j - i);
                i = j;
            }
        }
        t = S(&o);
    }
    if (!str_eq(p->name, "code") && !str_eq(p->name, "pre") && (memchr(t.p, '*', t.n) || memchr(t.p, '_', t.n))) {
        sb e = {NULL, 0, 0, m->a};
        for (size_t i = 0; i < t.n; i++) {
            if (t.p[i] == '*' || t.p[i] == '_') sb_put(&e, "\\", 1);
            sb_put(&e, t.p + i, 1);
        }
        t = S(&e);
    }
    if (str_eq(p->name, "li") &&
        (!truthy(el->next) || (el->next->kind == K_TAG && (str_eq(el->next->name, "ul") || str_eq(el->next->name, "ol")))))
        t = rstrip(t);
    return t;
}

/* abstract_inline_conversion */
static str inline_mark(md *m, str text, const char *mark)
{
    bool pre = text.n && text.p[0] == ' ', suf = text.n && text.p[text.n - 1] == ' ';
    text = strip(text);
    if (!text.n) return (str){"", 0};
    sb o = {NULL, 0, 0, m->a};
    if (pre) sb_put(&o, " ", 1);
    sb_puts(&o, mark);
    sb_put(&o, text.p, text.n);
    sb_puts(&o, mark);
    if (suf) sb_put(&o, " ", 1);
    return S(&o);
}

static int child_index(const hn *parent, const hn *el)
{
    int i = 0;
    for (const hn *c = parent->first; c; c = c->next, i++)
        if (c == el) return i;
    return 0;
}

static bool has_ul_ol_name(const hn *n)
{
    return n && n->kind == K_TAG && (str_eq(n->name, "ul") || str_eq(n->name, "ol"));
}

static void find_cells(const hn *n, int *count, bool *all_th)
{
    for (const hn *c = n->first; c; c = c->next) {
        if (c->kind != K_TAG) continue;
        if (str_eq(c->name, "td") || str_eq(c->name, "th")) {
            (*count)++;
            if (!str_eq(c->name, "th")) *all_th = false;
        }
        find_cells(c, count, all_th);
    }
}

static bool heading_level(str name, int *level)
{
    /* getattr(self, 'convert_%s' % name) through __getattr__'s convert_h(\d+) */
    if (name.n < 2 || name.p[0] != 'h' || name.p[1] < '0' || name.p[1] > '9') return false;
    int v = 0;
    for (size_t i = 1; i < name.n && name.p[i] >= '0' && name.p[i] <= '9' && v < 100000; i++)
        v = v * 10 + (name.p[i] - '0');
    *level = v;
    return true;
}

static str convert(md *m, hn *el, str text, bool inline_)
{
    str name = el->name;
    sb o = {NULL, 0, 0, m->a};
    int lvl;
    if (str_eq(name, "a")) {
        bool pre = text.n && text.p[0] == ' ', suf = text.n && text.p[text.n - 1] == ' ';
        text = strip(text);
        if (!text.n) return text;
        bool has_href, has_title;
        str href = attr_get(el, "href", &has_href), title = attr_get(el, "title", &has_title);
        /* autolink: text with \_ unescaped equals href, no title */
        sb u = {NULL, 0, 0, m->a};
        for (size_t i = 0; i < text.n; i++) {
            if (text.p[i] == '\\' && i + 1 < text.n && text.p[i + 1] == '_') continue;
            sb_put(&u, text.p + i, 1);
        }
        if (has_href && u.n == href.n && !memcmp(u.p, href.p, href.n) && !title.n) {
            sb_puts(&o, "<");
            sb_put(&o, href.p, href.n);
            sb_puts(&o, ">");
            return S(&o);
        }
        if (!href.n) return text;
        if (pre) sb_puts(&o, " ");
        sb_puts(&o, "[");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "](");
        sb_put(&o, href.p, href.n);
        if (title.n) {
            sb_puts(&o, " \"");
            for (size_t i = 0; i < title.n; i++) {
                if (title.p[i] == '"') sb_puts(&o, "\\");
                sb_put(&o, title.p + i, 1);
            }
            sb_puts(&o, "\"");
        }
        sb_puts(&o, ")");
        if (suf) sb_puts(&o, " ");
        return S(&o);
    }
    if (str_eq(name, "b") || str_eq(name, "strong")) return inline_mark(m, text, "**");
    if (str_eq(name, "em") || str_eq(name, "i")) return inline_mark(m, text, "*");
    if (str_eq(name, "del") || str_eq(name, "s")) return inline_mark(m, text, "~~");
    if (str_eq(name, "sub") || str_eq(name, "sup")) return inline_mark(m, text, "");
    if (str_eq(name, "code") || str_eq(name, "kbd") || str_eq(name, "samp")) {
        if (el->parent && str_eq(el->parent->name, "pre")) return text;
        return inline_mark(m, text, "`");
    }
    if (str_eq(name, "blockquote")) {
        if (inline_) return text;
        if (!text.n) return text;
        str q = prefix_lines(m, text, "> ");
        sb_puts(&o, "\n");
        sb_put(&o, q.p, q.n);
        sb_puts(&o, "\n\n");
        return S(&o);
    }
    if (str_eq(name, "br")) return inline_ ? (str){"", 0} : (str){"  \n", 3};
    if (str_eq(name, "hr")) return (str){"\n\n---\n\n", 7};
    if (str_eq(name, "img")) {
        str alt = attr_get(el, "alt", NULL), src = attr_get(el, "src", NULL), title = attr_get(el, "title", NULL);
        if (inline_) return alt;
        sb_puts(&o, "![");
        sb_put(&o, alt.p, alt.n);
        sb_puts(&o, "](");
        sb_put(&o, src.p, src.n);
        if (title.n) {
            sb_puts(&o, " \"");
            for (size_t i = 0; i < title.n; i++) {
                if (title.p[i] == '"') sb_puts(&o, "\\");
                sb_put(&o, title.p + i, 1);
            }
            sb_puts(&o, "\"");
        }
        sb_puts(&o, ")");
        return S(&o);
    }
    if (str_eq(name, "ul") || str_eq(name, "ol") || str_eq(name, "list")) {
        bool before_par = truthy(el->next) && !has_ul_ol_name(el->next);
        bool nested = false;
        for (hn *p = el; p; p = p->parent)
            if (p->kind == K_TAG && str_eq(p->name, "li")) { nested = true; break; }
        if (nested) {
            /* '\n' + indent(text, 1).rstrip() */
            str ind = text.n ? prefix_lines(m, text, "\t") : text;
            ind = rstrip(ind);
            sb_puts(&o, "\n");
            sb_put(&o, ind.p, ind.n);
            return S(&o);
        }
        sb_put(&o, text.p, text.n);
        if (before_par) sb_puts(&o, "\n");
        return S(&o);
    }
    if (str_eq(name, "li")) {
        hn *p = el->parent;
        char bullet[32];
        if (p && str_eq(p->name, "ol")) {
            long long start = 1;
            str st = attr_get(p, "start", NULL);
            if (st.n) {
                char tmp[32];
                size_t l = st.n < 31 ? st.n : 31;
                memcpy(tmp, st.p, l);
                tmp[l] = '\0';
                start = strtoll(tmp, NULL, 10); /* int(): a bad value stops FastChat's script */
            }
            snprintf(bullet, sizeof bullet, "%lld.", start + child_index(p, el));
        } else {
            int depth = -1;
            for (hn *q = el; q; q = q->parent)
                if (q->kind == K_TAG && str_eq(q->name, "ul")) depth++;
            static const char B[] = "*+-";
            bullet[0] = B[((depth % 3) + 3) % 3];
            bullet[1] = '\0';
        }
        text = strip(text);
        sb_puts(&o, bullet);
        sb_puts(&o, " ");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "\n");
        return S(&o);
    }
    if (str_eq(name, "p")) {
        if (inline_) return text;
        if (!text.n) return text;
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "\n\n");
        return S(&o);
    }
    if (str_eq(name, "pre")) {
        if (!text.n) return text;
        sb_puts(&o, "\n```\n");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "\n```\n");
        return S(&o);
    }
    if (str_eq(name, "table")) {
        sb_puts(&o, "\n\n");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "\n");
        return S(&o);
    }
    if (str_eq(name, "td") || str_eq(name, "th")) {
        sb_puts(&o, " ");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, " |");
        return S(&o);
    }
    if (str_eq(name, "tr")) {
        int cells = 0;
        bool all_th = true;
        find_cells(el, &cells, &all_th);
        bool first = !truthy(el->prev);
        if (all_th && first) {
            sb_puts(&o, "|");
            sb_put(&o, text.p, text.n);
            sb_puts(&o, "\n| ");
            for (int c = 0; c < cells; c++) sb_puts(&o, c ? " | ---" : "---");
            sb_puts(&o, " |\n");
            return S(&o);
        }
        if (first && el->parent &&
            (str_eq(el->parent->name, "table") || (str_eq(el->parent->name, "tbody") && !truthy(el->parent->prev)))) {
            sb_puts(&o, "| ");
            for (int c = 0; c < cells; c++) sb_puts(&o, c ? " | " : "");
            sb_puts(&o, " |\n| ");
            for (int c = 0; c < cells; c++) sb_puts(&o, c ? " | ---" : "---");
            sb_puts(&o, " |\n");
        }
        sb_puts(&o, "|");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "\n");
        return S(&o);
    }
    if (heading_level(name, &lvl)) {
        if (inline_) return text;
        text = rstrip(text);
        if (lvl <= 2) {
            /* underline() */
            text = rstrip(text);
            if (!text.n) return text;
            sb_put(&o, text.p, text.n);
            sb_puts(&o, "\n");
            size_t l = cplen(text);
            for (size_t i = 0; i < l; i++) sb_puts(&o, lvl == 1 ? "=" : "-");
            sb_puts(&o, "\n\n");
            return S(&o);
        }
        for (int i = 0; i < lvl; i++) sb_puts(&o, "#");
        sb_puts(&o, " ");
        sb_put(&o, text.p, text.n);
        sb_puts(&o, "\n\n");
        return S(&o);
    }
    return text; /* no convert_<name>: the children's text */
}

static str process_tag(md *m, hn *node, bool inline_, bool children_only)
{
    int lvl;
    bool heading = node->kind == K_TAG && node->name.n >= 2 && node->name.p[0] == 'h' &&
                   node->name.p[1] >= '1' && node->name.p[1] <= '6';
    bool cell = str_eq(node->name, "td") || str_eq(node->name, "th");
    bool children_inline = inline_;
    if (!children_only && (heading || cell)) children_inline = true;
    if (is_nested_name(node)) {
        /* remove whitespace-only text children that are first, last or next to
         * a nested node; Python's list iterator then skips the next child */
        for (hn *el = node->first; el;) {
            hn *next = el->next;
            bool can = !truthy(el->prev) || !truthy(el->next) || is_nested_name(el->prev) ||
                       is_nested_name(el->next);
            if ((el->kind == K_TEXT || el->kind == K_SKIP) && can && strip(el->text).n == 0) {
                extract(el);
                el = next ? next->next : NULL;
            } else {
                el = next;
            }
        }
    }
    sb o = {NULL, 0, 0, m->a};
    for (hn *el = node->first; el; el = el->next) {
        str t;
        if (el->kind == K_SKIP) continue;
        if (el->kind == K_TEXT) t = process_text(m, el);
        else t = process_tag(m, el, children_inline, false);
        sb_put(&o, t.p, t.n);
    }
    str text = S(&o);
    (void)lvl;
    if (!children_only) text = convert(m, node, text, inline_);
    return text;
}

void fc_html_to_markdown(fc_pj_arena *a, const char *html, size_t n, fc_pj_out *out)
{
    pthread_once(&re_once, re_init);
    builder b;
    memset(&b, 0, sizeof b);
    b.a = a;
    b.x.md = pcre2_match_data_create(8, NULL);
    hn *root = parse_html(&b, html, n);
    md m = {a};
    str t = process_tag(&m, root, false, true);
    fc_pj_out_putn(out, t.p, t.n);
    pcre2_match_data_free(b.x.md);
}
