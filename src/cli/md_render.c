/*
 * md_render.c: a small streaming Markdown renderer for terminals (see
 * md_render.h). It covers what chat models write: ATX headings, **bold** /
 * __bold__, *italic* / _italic_, `code` (any run of backticks), backslash
 * escapes, ``` and ~~~ fenced blocks, - * + and numbered lists, > quotes and
 * horizontal rules. Anything else passes through unchanged, and so does a
 * marker without its closing partner on the same line.
 *
 * The rules are CommonMark's, simplified: a span opens on a marker followed
 * by a non-space and closes on the same marker preceded by a non-space;
 * underscores and single asterisks do not open inside a word (snake_case,
 * 2*3*4); a closing fence has no info string. Styles nest: each span ends
 * with a reset and then re-applies the styles around it (a heading stays
 * bold and cyan after an inline `code`).
 *
 * Not rendered: setext headings, tables, links, HTML, indented code blocks,
 * nested quotes. Only whole lines are rendered, so a line shows once its
 * newline (or the end of the reply) arrives; the chunking of the input never
 * changes the output.
 */
#include "md_render.h"
#include "base/fc_base.h"
#include "base/str.h"

#include <ctype.h>
#include <string.h>

#define BOLD "\033[1m"
#define ITAL "\033[3m"
#define UNDER "\033[4m"
#define DIM "\033[2m"
#define CYAN "\033[36m"
#define YELLOW "\033[33m"
#define GREEN "\033[32m"
#define RESET "\033[0m"

#define MAX_NEST 8 /* deeper spans print their markers as text */

struct fc_md {
    FILE *out;
    fc_str line; /* the line not rendered yet */
    int in_code;
};

fc_md *fc_md_new(FILE *out)
{
    fc_md *md = fc_xcalloc(1, sizeof *md);
    md->out = out;
    return md;
}

void fc_md_free(fc_md *md)
{
    if (!md) return;
    fc_str_free(&md->line);
    free(md);
}

/* ---- inline spans ---- */

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }
static bool is_alnum(char c) { return isalnum((unsigned char)c); }

/* The styles in effect (`base`, a string of SGR codes) plus `add`. */
typedef struct style { char s[96]; } style;

static style style_add(const char *base, const char *add)
{
    style st;
    snprintf(st.s, sizeof st.s, "%s%s", base, add);
    return st;
}

/* Length of the run of c starting at s[i]. */
static size_t run_len(const char *s, size_t n, size_t i, char c)
{
    size_t k = i;
    while (k < n && s[k] == c) k++;
    return k - i;
}

/* Where the code span opened by the k backticks at s[i] ends: the start of
 * the next run of exactly k backticks, or 0 when there is none. */
static size_t code_close(const char *s, size_t n, size_t i, size_t k)
{
    for (size_t j = i + k; j < n;) {
        size_t r = run_len(s, n, j, '`');
        if (r == k) return j;
        j += r ? r : 1;
    }
    return 0;
}

/* Where the double marker (c twice) opened at s[i] closes (index of the closing
 * pair), or 0. The closer is preceded by a non-space; in a longer run of the
 * marker it is the last two ("***x***" is bold around "*x*"). */
static size_t strong_close(const char *s, size_t n, size_t i, char c)
{
    for (size_t j = i + 3; j + 1 < n; j++) {
        if (s[j] != c || s[j + 1] != c) continue;
        size_t r = run_len(s, n, j, c);
        size_t e = j + r - 2;
        if (!is_space(s[j - 1]) && (c == '*' || e + 2 >= n || !is_alnum(s[e + 2]))) return e;
        j += r - 1;
    }
    return 0;
}

/* Where the single marker c opened at s[i] closes, or 0: the next c that is
 * not a double marker (those are bold inside the span), preceded by a
 * non-space; for '_' not followed by a letter or digit either. */
static size_t emph_close(const char *s, size_t n, size_t i, char c)
{
    for (size_t j = i + 2; j < n; j++) {
        if (s[j] != c) continue;
        size_t r = run_len(s, n, j, c);
        if (r == 2) { j++; continue; } /* a ** pair: bold inside, skip it */
        if (!is_space(s[j - 1]) && (c == '*' || j + r >= n || !is_alnum(s[j + r]))) return j;
        j += r - 1;
    }
    return 0;
}

static void spans(FILE *out, const char *s, size_t n, const char *base, int depth);

static void styled(FILE *out, const char *s, size_t n, const char *base, const char *add, int depth)
{
    style st = style_add(base, add);
    fputs(add, out);
    spans(out, s, n, st.s, depth + 1);
    fputs(RESET, out);
    fputs(base, out);
}

static void spans(FILE *out, const char *s, size_t n, const char *base, int depth)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && ispunct((unsigned char)s[i + 1])) {
            fputc(s[i + 1], out);
            i += 2;
            continue;
        }
        if (c == '`') {
            size_t k = run_len(s, n, i, '`');
            size_t e = code_close(s, n, i, k);
            if (e) {
                fputs(YELLOW, out);
                fwrite(s + i + k, 1, e - i - k, out);
                fputs(RESET, out);
                fputs(base, out);
                i = e + k;
            } else {
                fwrite(s + i, 1, k, out); /* no closer: the whole run is text */
                i += k;
            }
            continue;
        }
        if ((c == '*' || c == '_') && depth < MAX_NEST) {
            bool left_ok = i == 0 || !is_alnum(s[i - 1]) || c == '*';
            size_t k = run_len(s, n, i, c);
            if (k >= 2 && left_ok && i + 2 < n && !is_space(s[i + 2])) {
                size_t e = strong_close(s, n, i, c);
                if (e) {
                    styled(out, s + i + 2, e - i - 2, base, BOLD, depth);
                    i = e + 2;
                    continue;
                }
            }
            left_ok = i == 0 || !is_alnum(s[i - 1]);
            if (k == 1 && left_ok && i + 1 < n && !is_space(s[i + 1])) {
                size_t e = emph_close(s, n, i, c);
                if (e) {
                    styled(out, s + i + 1, e - i - 1, base, ITAL, depth);
                    i = e + 1;
                    continue;
                }
            }
            fwrite(s + i, 1, k, out); /* an unmatched run is text */
            i += k;
            continue;
        }
        fputc(c, out);
        i++;
    }
}

/* ---- lines ---- */

/* A fence line (after its indentation): >= 3 backticks or tildes, and for
 * backticks no backtick in the info string after them. Returns the fence
 * as in_code holds it, the character plus 256 times the run length, or 0;
 * *info tells whether anything but spaces follows the run. */
static int fence(const char *p, size_t m, bool *info)
{
    if (m < 3 || (p[0] != '`' && p[0] != '~')) return 0;
    size_t k = run_len(p, m, 0, p[0]);
    if (k < 3) return 0;
    *info = false;
    for (size_t j = k; j < m; j++) {
        if (p[0] == '`' && p[j] == '`') return 0;
        if (!is_space(p[j])) *info = true;
    }
    return p[0] + 256 * (int)(k < 1000 ? k : 1000);
}

/* "---", "***", "___", "- - -": three or more of one of them, spaces aside. */
static bool is_rule(const char *p, size_t m)
{
    char c = m ? p[0] : 0;
    if (c != '-' && c != '*' && c != '_') return false;
    size_t count = 0;
    for (size_t j = 0; j < m; j++) {
        if (p[j] == c) count++;
        else if (!is_space(p[j])) return false;
    }
    return count >= 3;
}

void fc_md_render_line(FILE *out, const char *s, size_t n, int *in_code)
{
    if (n > 0 && s[n - 1] == '\r') n--; /* CRLF text */
    size_t ind = 0;
    while (ind < n && s[ind] == ' ') ind++;
    const char *p = s + ind;
    size_t m = n - ind;
    bool info = false;
    int f = fence(p, m, &info);
    if (*in_code) {
        /* closed by a bare fence of the same character, at least as long */
        if (f && f % 256 == *in_code % 256 && f >= *in_code && !info) {
            *in_code = 0;
            fprintf(out, DIM "%.*s" RESET "\n", (int)n, s);
        } else {
            fprintf(out, GREEN "%.*s" RESET "\n", (int)n, s);
        }
        return;
    }
    if (f) {
        *in_code = f;
        fprintf(out, DIM "%.*s" RESET "\n", (int)n, s);
        return;
    }
    size_t h = 0;
    while (h < m && h < 6 && p[h] == '#') h++;
    if (h > 0 && (h == m || p[h] == ' ')) {
        /* the text, without the optional closing run of #s */
        size_t a = h, b = m;
        while (a < b && is_space(p[a])) a++;
        while (b > a && is_space(p[b - 1])) b--;
        size_t c = b;
        while (c > a && p[c - 1] == '#') c--;
        if (c == a || is_space(p[c - 1]))
            for (b = c; b > a && is_space(p[b - 1]);) b--;
        const char *st = h == 1 ? BOLD UNDER CYAN : BOLD CYAN;
        fputs(st, out);
        spans(out, p + a, b - a, st, 0);
        fputs(RESET "\n", out);
        return;
    }
    if (is_rule(p, m)) {
        fputs(DIM "────────────────────────────────────────" RESET "\n", out);
        return;
    }
    fwrite(s, 1, ind, out);
    if (m >= 2 && (p[0] == '-' || p[0] == '*' || p[0] == '+') && p[1] == ' ') {
        fputs(CYAN "• " RESET, out);
        spans(out, p + 2, m - 2, "", 0);
    } else if (m >= 1 && p[0] == '>') {
        size_t k = m > 1 && p[1] == ' ' ? 2 : 1;
        fputs(DIM "│ " RESET ITAL, out);
        spans(out, p + k, m - k, ITAL, 0);
        fputs(RESET, out);
    } else {
        size_t d = 0;
        while (d < m && d < 10 && isdigit((unsigned char)p[d])) d++;
        if (d > 0 && d < 10 && d + 1 < m && (p[d] == '.' || p[d] == ')') && p[d + 1] == ' ') {
            fprintf(out, CYAN "%.*s" RESET " ", (int)(d + 1), p);
            spans(out, p + d + 2, m - d - 2, "", 0);
        } else {
            spans(out, p, m, "", 0);
        }
    }
    fputc('\n', out);
}

/* ---- streaming ---- */

void fc_md_feed(fc_md *md, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            fc_md_render_line(md->out, fc_str_cstr(&md->line), md->line.len, &md->in_code);
            fc_str_reset(&md->line);
            continue;
        }
        fc_str_putc(&md->line, text[i]);
    }
    fflush(md->out);
}

void fc_md_finish(fc_md *md)
{
    if (md->line.len > 0) fc_md_render_line(md->out, md->line.p, md->line.len, &md->in_code);
    fc_str_reset(&md->line);
    md->in_code = 0;
    fflush(md->out);
}
