/*
 * test_md_render.c: the Markdown renderer of `fastchat chat --style rich`
 * (src/cli/md_render.c), byte for byte:
 * - single lines: headings, emphasis (nested, unmatched, intraword), inline
 *   code, escapes, lists, quotes, rules, fences -- the exact ANSI output;
 * - streaming: a reply fed in every two-piece split, byte by byte and in
 *   seeded random chunks (splits inside ``` fences, ** markers and UTF-8
 *   sequences) renders exactly as the whole reply does, and as its lines
 *   rendered one by one;
 * - the text survives: with the escape sequences removed, the output is the
 *   reply less the Markdown markers;
 * - fc_md_finish renders an unterminated last line and closes an open fence.
 * The renderer lives in the CLI layer (not in libfastchat.a), so its source
 * is compiled into this test.
 */
#include "test_util.h"
#include "cli/md_render.c"

#include <stdint.h>
#include <string.h>

#define B "\033[1m"
#define I "\033[3m"
#define U "\033[4m"
#define D "\033[2m"
#define C "\033[36m"
#define Y "\033[33m"
#define G "\033[32m"
#define R "\033[0m"
#define RULE D "────────────────────────────────────────" R "\n"

/* ---- helpers ---- */

typedef struct sink { FILE *f; char *buf; size_t len; } sink;

static void sink_open(sink *k)
{
    k->buf = NULL;
    k->len = 0;
    k->f = open_memstream(&k->buf, &k->len);
}

/* Closes the stream; the caller frees the returned string. */
static char *sink_close(sink *k)
{
    fclose(k->f);
    return k->buf;
}

static char *render_lines(const char *text, int *in_code)
{
    sink k;
    sink_open(&k);
    const char *p = text;
    for (;;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (!nl && n == 0) break;
        fc_md_render_line(k.f, p, n, in_code);
        if (!nl) break;
        p = nl + 1;
    }
    return sink_close(&k);
}

/* Feeds text in the pieces that cuts[0..n_cuts) (increasing offsets) make,
 * then finishes. */
static char *render_stream(const char *text, const size_t *cuts, size_t n_cuts)
{
    sink k;
    sink_open(&k);
    fc_md *md = fc_md_new(k.f);
    size_t len = strlen(text), at = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        fc_md_feed(md, text + at, end - at);
        at = end;
    }
    fc_md_finish(md);
    fc_md_free(md);
    return sink_close(&k);
}

/* The output with every "ESC [ ... m" removed (malloc'd). */
static char *strip_sgr(const char *s)
{
    char *o = malloc(strlen(s) + 1), *q = o;
    while (*s) {
        if (s[0] == '\033' && s[1] == '[') {
            s += 2;
            while (*s && *s != 'm') s++;
            if (*s) s++;
            continue;
        }
        *q++ = *s++;
    }
    *q = '\0';
    return o;
}

/* Prints a string with escapes visible, for failure messages. */
static void show(const char *label, const char *s)
{
    fprintf(stderr, "  %s: \"", label);
    for (; *s; s++) {
        if (*s == '\033') fputs("\\e", stderr);
        else if (*s == '\n') fputs("\\n", stderr);
        else fputc(*s, stderr);
    }
    fputs("\"\n", stderr);
}

static void expect(const char *what, const char *got, const char *want)
{
    bool ok = !strcmp(got, want);
    CHECKF(ok, "%s", what);
    if (!ok) {
        show("got ", got);
        show("want", want);
    }
}

/* ---- single lines ---- */

static void check_line(const char *line, const char *want)
{
    int in_code = 0;
    sink k;
    sink_open(&k);
    fc_md_render_line(k.f, line, strlen(line), &in_code);
    char *got = sink_close(&k);
    expect(line, got, want);
    CHECKF(in_code == 0, "%s: leaves a fence open", line);
    free(got);
}

static void test_lines(void)
{
    /* headings */
    check_line("# Title", B U C "Title" R "\n");
    check_line("## The **main** point", B C "The " B "main" R B C " point" R "\n");
    check_line("### Uses `x` here ###", B C "Uses " Y "x" R B C " here" R "\n");
    check_line("#### C#", B C "C#" R "\n");
    check_line("#hashtag", "#hashtag\n");
    check_line("####### seven", "####### seven\n");
    /* emphasis and code */
    check_line("Some **bold**, *italic*, _also_ and `code`.",
               "Some " B "bold" R ", " I "italic" R ", " I "also" R " and " Y "code" R ".\n");
    check_line("__strong__ text", B "strong" R " text\n");
    check_line("***both***", B I "both" R B R "\n");
    check_line("**bold with *italic* inside**", B "bold with " I "italic" R B " inside" R "\n");
    check_line("*italic with **bold** inside*", I "italic with " B "bold" R I " inside" R "\n");
    check_line("**`code` in bold**", B Y "code" R B " in bold" R "\n");
    check_line("a**b**c", "a" B "b" R "c\n");
    check_line("``a ` b`` and ```x```", Y "a ` b" R " and " Y "x" R "\n");
    /* what is not emphasis stays as written */
    check_line("**unclosed bold", "**unclosed bold\n");
    check_line("an *unclosed italic", "an *unclosed italic\n");
    check_line("2 * 3 * 4 and 2*3*4", "2 * 3 * 4 and 2*3*4\n");
    check_line("a ** b ** c", "a ** b ** c\n");
    check_line("snake_case_name and __init__.py", "snake_case_name and " B "init" R ".py\n");
    check_line("my_var_ is _ok", "my_var_ is _ok\n");
    check_line("`unclosed code", "`unclosed code\n");
    check_line("\\*not italic\\* and \\`not code\\`", "*not italic* and `not code`\n");
    check_line("C:\\Users\\me", "C:\\Users\\me\n");
    check_line("**bold**\r", B "bold" R "\n");
    check_line("héllo **wörld** 你好", "héllo " B "wörld" R " 你好\n");
    /* lists, quotes, rules */
    check_line("- item **x**", C "• " R "item " B "x" R "\n");
    check_line("  * nested", "  " C "• " R "nested\n");
    check_line("+ plus", C "• " R "plus\n");
    check_line("1. first", C "1." R " first\n");
    check_line("12) twelfth *step*", C "12)" R " twelfth " I "step" R "\n");
    check_line("3.14 is pi", "3.14 is pi\n");
    check_line("> quoted `c` end", D "│ " R I "quoted " Y "c" R I " end" R "\n");
    check_line(">plain", D "│ " R I "plain" R "\n");
    check_line("---", RULE);
    check_line("***", RULE);
    check_line("- - -", RULE);
    check_line("___", RULE);
    check_line("--", "--\n");
    check_line("-x-", "-x-\n");
    check_line("", "\n");
}

/* ---- fences ---- */

static void test_fences(void)
{
    int in_code = 0;
    char *got = render_lines("```python\n"
                             "x = 2**3 * 4  # **not bold**\n"
                             "\n"
                             "  - not a list\n"
                             "```\n"
                             "after **bold**\n",
                             &in_code);
    expect("fenced block", got,
           D "```python" R "\n"
           G "x = 2**3 * 4  # **not bold**" R "\n"
           G "" R "\n"
           G "  - not a list" R "\n"
           D "```" R "\n"
           "after " B "bold" R "\n");
    CHECK(in_code == 0);
    free(got);

    /* a longer fence holds a shorter one; ~~~ and ``` do not close each other;
     * a ``` line with an info string does not close */
    got = render_lines("````markdown\n```\n````\n~~~\n```\n```js\n~~~\n  ```\n  code\n  ```\n", &in_code);
    expect("nested fences", got,
           D "````markdown" R "\n" G "```" R "\n" D "````" R "\n"
           D "~~~" R "\n" G "```" R "\n" G "```js" R "\n" D "~~~" R "\n"
           D "  ```" R "\n" G "  code" R "\n" D "  ```" R "\n");
    CHECK(in_code == 0);
    free(got);

    /* ``` followed by text holding a backtick is inline code, not a fence */
    got = render_lines("```a` b\n", &in_code);
    expect("not a fence", got, "```a` b\n");
    CHECK(in_code == 0);
    free(got);

    /* in_code carries the state across calls */
    got = render_lines("```\n", &in_code);
    CHECK(in_code != 0);
    free(got);
    got = render_lines("**x**\n", &in_code);
    expect("inside an open fence", got, G "**x**" R "\n");
    free(got);
}

/* ---- streaming ---- */

static const char *REPLY =
    "# Sorting in **Python**\n"
    "\n"
    "Use `sorted()` for a *new* list, or `list.sort()` in place:\n"
    "\n"
    "```python\n"
    "nums = [3, 1, 2]\n"
    "print(sorted(nums))  # **not bold** here\n"
    "```\n"
    "\n"
    "1. **Stable**: equal items keep their order.\n"
    "2. Takes a `key=` function, e.g. `str.lower`.\n"
    "- Works on any iterable — even `\"héllo wörld 🌍\"`\n"
    "> Note: *both* return `None`? No, only **`list.sort()`** does.\n"
    "---\n"
    "That's all!";  /* no final newline: fc_md_finish renders it */

static void test_streaming(void)
{
    int in_code = 0;
    char *want = render_lines(REPLY, &in_code);
    size_t len = strlen(REPLY);

    char *whole = render_stream(REPLY, NULL, 0);
    expect("whole reply vs its lines", whole, want);

    /* every two-piece split: inside ``` fences, ** markers, UTF-8 sequences */
    int bad = 0;
    for (size_t c = 1; c < len; c++) {
        char *got = render_stream(REPLY, &c, 1);
        if (strcmp(got, want) && bad++ == 0) {
            CHECKF(0, "split at byte %zu: %.20s|%.20s", c, REPLY + (c > 20 ? c - 20 : 0), REPLY + c);
            show("got ", got);
        }
        free(got);
    }
    CHECKF(bad == 0, "%d of %zu two-piece splits render differently", bad, len - 1);

    /* byte by byte, as a byte-level tokenizer can stream a multi-byte character */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i + 1 < len; i++) cuts[i] = i + 1;
    char *got = render_stream(REPLY, cuts, len - 1);
    expect("byte by byte", got, want);
    free(got);

    /* random chunkings (1..12 bytes, as tokens arrive), seeded */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int r = 0; r < 200; r++) {
        size_t n = 0;
        for (size_t at = 0;;) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            at += 1 + (size_t)(x % 12);
            if (at >= len) break;
            cuts[n++] = at;
        }
        got = render_stream(REPLY, cuts, n);
        CHECKF(!strcmp(got, want), "random chunking %d", r);
        free(got);
    }
    free(cuts);

    /* the text survives: escapes removed, the reply less its markers */
    char *plain = strip_sgr(whole);
    expect("text content", plain,
           "Sorting in Python\n"
           "\n"
           "Use sorted() for a new list, or list.sort() in place:\n"
           "\n"
           "```python\n"
           "nums = [3, 1, 2]\n"
           "print(sorted(nums))  # **not bold** here\n"
           "```\n"
           "\n"
           "1. Stable: equal items keep their order.\n"
           "2. Takes a key= function, e.g. str.lower.\n"
           "• Works on any iterable — even \"héllo wörld 🌍\"\n"
           "│ Note: both return None? No, only list.sort() does.\n"
           "────────────────────────────────────────\n"
           "That's all!\n");
    free(plain);
    free(whole);
    free(want);
}

/* fc_md_finish: renders the unterminated line, closes an open fence (the
 * next reply starts outside it), and the renderer is reusable. */
static void test_finish(void)
{
    sink k;
    sink_open(&k);
    fc_md *md = fc_md_new(k.f);
    fc_md_feed(md, "```\ncode", 8);
    fc_md_finish(md);
    fc_md_feed(md, "**b**\n", 6);
    fc_md_finish(md);
    fc_md_finish(md); /* nothing pending: prints nothing */
    fc_md_free(md);
    fc_md_free(NULL);
    char *got = sink_close(&k);
    expect("finish", got, D "```" R "\n" G "code" R "\n" B "b" R "\n");
    free(got);

    /* a rule after a longer line of the same character: the line buffer still
     * holds the old bytes past the new line's end */
    const char *t = "------\n---\n***x\n***\n";
    got = render_stream(t, NULL, 0);
    expect("rules after longer lines", got, RULE RULE "***x\n" RULE);
    free(got);

    /* a long line (buffer growth), and nesting deeper than the renderer goes */
    char *longl = malloc(20001);
    for (int i = 0; i < 20000; i++) longl[i] = "**a*_`"[i % 6];
    longl[20000] = '\0';
    got = render_stream(longl, NULL, 0);
    char *plain = strip_sgr(got);
    CHECK(strlen(plain) > 0 && strlen(plain) <= 20001);
    free(plain);
    free(got);
    free(longl);
}

int main(void)
{
    test_lines();
    test_fences();
    test_streaming();
    test_finish();
    return TEST_END();
}
