/*
 * md_render.c: a small streaming Markdown renderer for terminals (see
 * md_render.h). It covers what chat models write: ATX headings, **bold**,
 * *italic* / _italic_, `code`, ``` fenced blocks, - * + and numbered lists,
 * > quotes and horizontal rules. Anything else passes through unchanged.
 */
#include "md_render.h"
#include "base/fc_base.h"

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

struct fc_md {
    FILE *out;
    char *line;
    size_t len, cap;
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
    free(md->line);
    free(md);
}

/* Inline spans: **bold**, *italic*, _italic_, `code`. A marker without its
 * closing partner on the same line is printed as is. */
static void inline_spans(FILE *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] == '`') {
            const char *end = memchr(s + i + 1, '`', n - i - 1);
            if (end) {
                fprintf(out, YELLOW "%.*s" RESET, (int)(end - s - i - 1), s + i + 1);
                i = (size_t)(end - s) + 1;
                continue;
            }
        }
        if (i + 1 < n && s[i] == '*' && s[i + 1] == '*') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (s[j] == '*' && s[j + 1] == '*') { end = s + j; break; }
            if (end && end > s + i + 2) {
                fputs(BOLD, out);
                inline_spans(out, s + i + 2, (size_t)(end - s) - i - 2);
                fputs(RESET, out);
                i = (size_t)(end - s) + 2;
                continue;
            }
        }
        if ((s[i] == '*' || s[i] == '_') && i + 1 < n && !isspace((unsigned char)s[i + 1]) &&
            (i == 0 || !isalnum((unsigned char)s[i - 1]))) {
            const char *end = memchr(s + i + 1, s[i], n - i - 1);
            if (end && !isspace((unsigned char)end[-1])) {
                fputs(ITAL, out);
                fwrite(s + i + 1, 1, (size_t)(end - s) - i - 1, out);
                fputs(RESET, out);
                i = (size_t)(end - s) + 1;
                continue;
            }
        }
        fputc(s[i++], out);
    }
}

void fc_md_render_line(FILE *out, const char *s, size_t n, int *in_code)
{
    size_t ind = 0;
    while (ind < n && s[ind] == ' ') ind++;
    if (n - ind >= 3 && !memcmp(s + ind, "```", 3)) {
        *in_code = !*in_code;
        fprintf(out, DIM "%.*s" RESET "\n", (int)n, s);
        return;
    }
    if (*in_code) {
        fprintf(out, GREEN "%.*s" RESET "\n", (int)n, s);
        return;
    }
    const char *p = s + ind;
    size_t m = n - ind;
    size_t h = 0;
    while (h < m && h < 6 && p[h] == '#') h++;
    if (h > 0 && h < m && p[h] == ' ') {
        fputs(h == 1 ? BOLD UNDER CYAN : BOLD CYAN, out);
        inline_spans(out, p + h + 1, m - h - 1);
        fputs(RESET "\n", out);
        return;
    }
    if (m >= 3 && (strspn(p, "-") == m || strspn(p, "*") == m || strspn(p, "_") == m)) {
        fputs(DIM "────────────────────────────────────────" RESET "\n", out);
        return;
    }
    fwrite(s, 1, ind, out);
    if (m >= 2 && (p[0] == '-' || p[0] == '*' || p[0] == '+') && p[1] == ' ') {
        fputs(CYAN "• " RESET, out);
        inline_spans(out, p + 2, m - 2);
    } else if (m >= 1 && p[0] == '>') {
        size_t k = m > 1 && p[1] == ' ' ? 2 : 1;
        fputs(DIM "│ " RESET ITAL, out);
        inline_spans(out, p + k, m - k);
        fputs(RESET, out);
    } else {
        size_t d = 0;
        while (d < m && isdigit((unsigned char)p[d])) d++;
        if (d > 0 && d + 1 < m && (p[d] == '.' || p[d] == ')') && p[d + 1] == ' ') {
            fprintf(out, CYAN "%.*s" RESET " ", (int)(d + 1), p);
            inline_spans(out, p + d + 2, m - d - 2);
        } else {
            inline_spans(out, p, m);
        }
    }
    fputc('\n', out);
}

void fc_md_feed(fc_md *md, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            fc_md_render_line(md->out, md->line ? md->line : "", md->len, &md->in_code);
            md->len = 0;
            continue;
        }
        if (md->len + 1 >= md->cap) {
            md->cap = md->cap ? md->cap * 2 : 256;
            md->line = fc_xrealloc(md->line, md->cap);
        }
        md->line[md->len++] = text[i];
    }
    fflush(md->out);
}

void fc_md_finish(fc_md *md)
{
    if (md->len > 0) fc_md_render_line(md->out, md->line, md->len, &md->in_code);
    md->len = 0;
    md->in_code = 0;
    fflush(md->out);
}
