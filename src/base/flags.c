/*
 * flags.c: the table-driven flag parser (flags.h): matching with '_' = '-',
 * value conversion with range checks, one-line errors with the nearest
 * flag suggested, argparse's abbreviations and nargs='+' where a command asks
 * for them, and --help written from the table.
 */
#include "base/flags.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void fc_flag_list_free(fc_flag_list *l)
{
    if (!l) return;
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* ---- names ---- */

static bool same_char(char a, char b)
{
    if (a == '_') a = '-';
    if (b == '_') b = '-';
    return a == b;
}

/* Does the spelling given[0..n) name one of the '|'-separated names? */
static bool names_match(const char *names, const char *given, size_t n)
{
    for (const char *p = names; *p;) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n) {
            size_t i = 0;
            while (i < n && given[i] == '-' && p[i] == '-') i++; /* the leading dashes as they are */
            while (i < n && same_char(given[i], p[i])) i++;
            if (i == n) return true;
        }
        if (!end) break;
        p = end + 1;
    }
    return false;
}

static bool takes_value(enum fc_flag_kind k)
{
    return !(k == FC_FLAG_TRUE || k == FC_FLAG_FALSE || k == FC_FLAG_FUNC0 || k == FC_FLAG_IGNORE0);
}

/* Levenshtein distance with '_' = '-', on at most 63 bytes of each. */
static int edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    int row[64];
    if (na > 63) na = 63;
    if (nb > 63) nb = 63;
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int best = diag + !same_char(a[i - 1], b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The visible spelling nearest to given[0..n) when it is near enough to be
 * a likely typo (at most a third of its length away, and at most 3). */
static void nearest(const fc_flag *flags, const char *given, size_t n, char *out, size_t out_len)
{
    int best = 1 << 30;
    out[0] = 0;
    for (const fc_flag *f = flags; f->kind != FC_FLAG_END; f++) {
        if (f->kind == FC_FLAG_SECTION || !f->names || !f->help) continue;
        for (const char *p = f->names; *p;) {
            const char *end = strchr(p, '|');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            int d = edit_distance(given, n, p, len);
            int limit = (int)(len < n ? len : n) / 3;
            if (limit > 3) limit = 3;
            if (limit < 1) limit = 1;
            if (d <= limit && d < best) {
                best = d;
                snprintf(out, out_len, "%.*s", (int)len, p);
            }
            if (!end) break;
            p = end + 1;
        }
    }
}

/* Does a long spelling of f start with given[0..n) (argparse's
 * abbreviations)? */
static bool prefix_match(const char *names, const char *given, size_t n)
{
    for (const char *p = names; *p;) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= n && len > 2 && p[0] == '-' && p[1] == '-') {
            size_t i = 2;
            while (i < n && same_char(given[i], p[i])) i++;
            if (i == n) return true;
        }
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* The first spelling: in the list of an ambiguous abbreviation, and for a
 * flag given abbreviated. */
static void first_name(const fc_flag *f, char *out, size_t out_len)
{
    const char *end = strchr(f->names, '|');
    size_t len = end ? (size_t)(end - f->names) : strlen(f->names);
    snprintf(out, out_len, "%.*s", (int)len, f->names);
}

/* ---- values ---- */

static bool list_push(fc_flag_list *l, const char *v)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        const char **nv = realloc(l->v, (size_t)cap * sizeof *nv);
        if (!nv) return false;
        l->v = nv, l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

/* A flag, not a value: "-x", "--x"; "-" and negative numbers are values. */
static bool looks_like_flag(const char *a)
{
    return a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9') && !(a[1] == '.' && a[2] >= '0' && a[2] <= '9');
}

static bool in_range(const fc_flag *f, double v)
{
    if (f->min == 0 && f->max == 0) return true;
    return v >= f->min && v <= f->max;
}

static void fmt_num(double v, char *out, size_t len)
{
    if (v == floor(v) && fabs(v) < 1e18) snprintf(out, len, "%.0f", v);
    else snprintf(out, len, "%g", v);
}

/* Converts and stores one value; NULL or the reason it is refused (written
 * into why). */
static const char *store(const fc_flag *f, const char *v, char *why, size_t why_len)
{
    char *end = NULL;
    errno = 0;
    switch (f->kind) {
    case FC_FLAG_INT:
    case FC_FLAG_INT64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || end == v) return snprintf(why, why_len, "'%s' is not an integer", v), why;
        bool fits = errno != ERANGE && (f->kind == FC_FLAG_INT64 || (x >= -2147483647LL - 1 && x <= 2147483647LL));
        if (!fits || !in_range(f, (double)x)) goto range;
        if (f->kind == FC_FLAG_INT) *(int *)f->dst = (int)x;
        else *(int64_t *)f->dst = (int64_t)x;
        return NULL;
    }
    case FC_FLAG_UINT64: {
        const char *s = v;
        while (*s == ' ') s++;
        if (*s == '-' || !*v) return snprintf(why, why_len, "'%s' is not a non-negative integer", v), why;
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || end == v) return snprintf(why, why_len, "'%s' is not a non-negative integer", v), why;
        if (errno == ERANGE || !in_range(f, (double)x)) goto range;
        *(uint64_t *)f->dst = (uint64_t)x;
        return NULL;
    }
    case FC_FLAG_FLOAT:
    case FC_FLAG_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || end == v) return snprintf(why, why_len, "'%s' is not a number", v), why;
        if ((f->min != 0 || f->max != 0) && isnan(x)) goto range;
        if (!in_range(f, x)) goto range;
        if (f->kind == FC_FLAG_FLOAT) *(float *)f->dst = (float)x;
        else *(double *)f->dst = x;
        return NULL;
    }
    case FC_FLAG_STRING: *(const char **)f->dst = v; return NULL;
    case FC_FLAG_LIST:
    case FC_FLAG_NARGS: return list_push(f->dst, v) ? NULL : "out of memory";
    case FC_FLAG_FUNC:
    case FC_FLAG_FUNC0: return f->fn ? f->fn(f, v, f->dst) : NULL;
    case FC_FLAG_TRUE: *(bool *)f->dst = true; return NULL;
    case FC_FLAG_FALSE: *(bool *)f->dst = false; return NULL;
    default: return NULL; /* IGNORE, IGNORE0 */
    }
range: {
    char lo[32], hi[32];
    fmt_num(f->min, lo, sizeof lo);
    fmt_num(f->max, hi, sizeof hi);
    if (f->min == 0 && f->max == 0) snprintf(why, why_len, "%s is out of range", v);
    else snprintf(why, why_len, "%s is out of range (%s to %s)", v, lo, hi);
    return why;
}
}

/* ---- parsing ---- */

static enum fc_flags_result fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum fc_flags_result fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && err_len) vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return FC_FLAGS_ERROR;
}

enum fc_flags_result fc_flags_parse(const fc_flags_cmd *cmd, int argc, char **argv, char *err, size_t err_len)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return FC_FLAGS_HELP;
        if (a[0] != '-' || !a[1]) {
            if (cmd->args) {
                if (!list_push(cmd->args, a)) return fail(err, err_len, "out of memory");
                continue;
            }
            return fail(err, err_len, "unexpected argument '%s' (run with --help for the options)", a);
        }
        const char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        const fc_flag *f = cmd->flags;
        bool abbreviated = false;
        for (; f->kind != FC_FLAG_END; f++)
            if (f->kind != FC_FLAG_SECTION && f->names && names_match(f->names, a, n)) break;
        if (f->kind == FC_FLAG_END && cmd->abbrev && a[1] == '-' && n > 2) {
            const fc_flag *hit = NULL;
            char also[160];
            size_t k = 0;
            int n_hits = 0;
            for (const fc_flag *g = cmd->flags; g->kind != FC_FLAG_END; g++) {
                if (g->kind == FC_FLAG_SECTION || !g->names || !prefix_match(g->names, a, n)) continue;
                char gn[64];
                first_name(g, gn, sizeof gn);
                if (k < sizeof also) k += (size_t)snprintf(also + k, sizeof also - k, "%s%s", n_hits ? ", " : "", gn);
                hit = g;
                n_hits++;
            }
            if (n_hits > 1) return fail(err, err_len, "ambiguous option %.*s (could be %s)", (int)n, a, also);
            if (hit) f = hit, abbreviated = true;
        }
        if (f->kind == FC_FLAG_END) {
            char near[64];
            nearest(cmd->flags, a, n, near, sizeof near);
            if (near[0]) return fail(err, err_len, "unknown option %.*s (did you mean %s?)", (int)n, a, near);
            return fail(err, err_len, "unknown option %.*s (run with --help for the options)", (int)n, a);
        }
        char name[64]; /* the flag as the user spelled it, or in full when abbreviated */
        if (abbreviated) first_name(f, name, sizeof name);
        else snprintf(name, sizeof name, "%.*s", (int)n, a);
        const char *v = NULL;
        if (takes_value(f->kind)) {
            if (eq) v = eq + 1;
            else if (i + 1 < argc && !(f->kind == FC_FLAG_NARGS && looks_like_flag(argv[i + 1]))) v = argv[++i];
            else return fail(err, err_len, "%s needs a value", name);
        } else if (eq) {
            return fail(err, err_len, "%s takes no value", name);
        }
        char why[256];
        if (f->kind == FC_FLAG_NARGS) ((fc_flag_list *)f->dst)->n = 0; /* argparse: the last one counts */
        const char *bad = store(f, v, why, sizeof why);
        if (bad) return fail(err, err_len, "%s: %s", name, bad);
        if (f->kind == FC_FLAG_NARGS)
            while (i + 1 < argc && !looks_like_flag(argv[i + 1]))
                if (!list_push(f->dst, argv[++i])) return fail(err, err_len, "out of memory");
        if (f->seen) *f->seen = true;
    }
    return FC_FLAGS_OK;
}

void fc_flags_parse_or_exit(const fc_flags_cmd *cmd, int argc, char **argv)
{
    char err[512];
    switch (fc_flags_parse(cmd, argc, argv, err, sizeof err)) {
    case FC_FLAGS_OK: return;
    case FC_FLAGS_HELP:
        fc_flags_print_help(cmd, stdout);
        exit(0);
    case FC_FLAGS_ERROR:
        fprintf(stderr, "error: %s\n", err);
        exit(2);
    }
}

/* ---- help ---- */

static const char *default_metavar(enum fc_flag_kind k)
{
    switch (k) {
    case FC_FLAG_INT:
    case FC_FLAG_INT64:
    case FC_FLAG_UINT64: return "N";
    case FC_FLAG_FLOAT:
    case FC_FLAG_DOUBLE: return "X";
    default: return "VALUE";
    }
}

void fc_flags_print_help(const fc_flags_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: %s\n", cmd->usage);
    if (cmd->about) fputs(cmd->about, out);
    for (const fc_flag *f = cmd->flags; f->kind != FC_FLAG_END; f++) {
        if (f->kind == FC_FLAG_SECTION) {
            fprintf(out, "%s\n", f->help ? f->help : "");
            continue;
        }
        if (!f->help || !f->names) continue;
        char col[128];
        size_t k = 0;
        for (const char *p = f->names; *p && k + 3 < sizeof col; p++)
            if (*p == '|') k += (size_t)snprintf(col + k, sizeof col - k, ", ");
            else col[k++] = *p;
        col[k] = 0;
        if (takes_value(f->kind) && k + 2 < sizeof col)
            snprintf(col + k, sizeof col - k, " %s%s", f->metavar ? f->metavar : default_metavar(f->kind),
                     f->kind == FC_FLAG_NARGS ? " ..." : "");
        if (strlen(col) < 30) fprintf(out, "  %-30s %s\n", col, f->help);
        else fprintf(out, "  %s\n  %-30s %s\n", col, "", f->help);
    }
    if (cmd->footer) fputs(cmd->footer, out);
}
