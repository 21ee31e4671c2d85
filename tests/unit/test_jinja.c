/*
 * test_jinja.c: the Jinja chat template interpreter (src/chat/jinja.c) and
 * apply_chat_template (src/chat/chat_template.c) against transformers.
 *
 * tests/data/conv/jinja_golden.json (tools/golden/make_jinja_golden.py)
 * holds what transformers' apply_chat_template renders for 19 model
 * templates (tests/data/conv/jinja_templates/) over conversation shapes,
 * tools and tool calls, and ~180 interpreter snippets rendered by the same
 * Jinja2 environment. Outputs must match byte for byte. Where transformers
 * raises, an error must come back too; a raise_exception (TemplateError) or
 * apply_chat_template's own ValueError must carry the same message.
 *
 * Then what the golden cannot show: error locations, undefined behaviour,
 * the step/memory/output/nesting limits on hostile templates, namespace
 * cycles (freed; run under `make DEBUG=1` for the leak check), and several
 * threads rendering one compiled template.
 *
 * Run from the repository root. Data file: $FC_JINJA_GOLDEN, default
 * tests/data/conv/jinja_golden.json. strftime_now renders the golden's
 * pinned clock with TZ=UTC.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "test_util.h"

static int n_shown;
static fc_jinja_opts golden_opts;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = fc_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

/* Prints where two strings first differ (the first few mismatches only). */
static void show_diff(const char *what, const char *want, const char *got, const char *err)
{
    if (n_shown++ >= 12) return;
    if (!want || !got) {
        fprintf(stderr, "  %s: want %s, got %s%s\n", what, want ? "output" : "an error", got ? "output" : "error: ",
                got ? "" : (err ? err : "?"));
        return;
    }
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  %s: differ at byte %zu\n    want ...%.80s\n    got  ...%.80s\n", what, i, want + from, got + from);
}

/* One expected result: "output", or "error" {"type", "message"}. Returns
 * whether the rendering (out, or err when out is NULL) matches. */
static bool matches(const cJSON *c, const char *out, const char *err, const char *what, bool chat_layer)
{
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "output");
    if (cJSON_IsString(want)) {
        if (out && !strcmp(out, want->valuestring)) return true;
        show_diff(what, want->valuestring, out, err);
        return false;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(c, "error");
    const char *type = cJSON_GetObjectItemCaseSensitive(e, "type")->valuestring;
    const char *msg = cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring;
    if (out) {
        show_diff(what, NULL, out, NULL);
        return false;
    }
    /* raise_exception and apply_chat_template's own checks: the same words */
    if ((!strcmp(type, "TemplateError") || (chat_layer && !strcmp(type, "ValueError"))) && strcmp(err, msg)) {
        if (n_shown++ < 12) fprintf(stderr, "  %s: error '%s', want '%s'\n", what, err, msg);
        return false;
    }
    return true;
}

/* ---- model templates through apply_chat_template ---- */
static void test_cases(const cJSON *golden)
{
    const cJSON *templates = cJSON_GetObjectItemCaseSensitive(golden, "templates");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(golden, "cases");
    int n = 0, ok = 0, errors = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "template")->valuestring;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(templates, name);
        char path[512];
        snprintf(path, sizeof path, "tests/data/conv/jinja_templates/%s",
                 cJSON_GetObjectItemCaseSensitive(t, "file")->valuestring);
        char *tmpl = read_file(path);
        CHECKF(tmpl != NULL, "%s: cannot read", path);
        if (!tmpl) continue;
        const cJSON *bos = cJSON_GetObjectItemCaseSensitive(t, "bos_token");
        const cJSON *eos = cJSON_GetObjectItemCaseSensitive(t, "eos_token");
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(c, "tools");
        const cJSON *extra_in = cJSON_GetObjectItemCaseSensitive(c, "extra");
        cJSON *extra = extra_in ? cJSON_Duplicate(extra_in, 1) : cJSON_CreateObject();
        if (tools) cJSON_AddItemToObject(extra, "tools", cJSON_Duplicate(tools, 1));
        char *err = NULL;
        char *out = fc_chat_template_render(tmpl, cJSON_GetObjectItemCaseSensitive(c, "messages"),
                                            cJSON_IsString(bos) ? bos->valuestring : NULL,
                                            cJSON_IsString(eos) ? eos->valuestring : NULL,
                                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")),
                                            extra, &golden_opts, &err);
        CHECK((out == NULL) != (err == NULL));
        char what[256];
        snprintf(what, sizeof what, "%s/%s", name, cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring);
        bool good = matches(c, out, err, what, true);
        CHECKF(good, "%s", what);
        n++;
        ok += good;
        errors += cJSON_GetObjectItemCaseSensitive(c, "error") != NULL;
        free(out);
        free(err);
        free(tmpl);
        cJSON_Delete(extra);
    }
    printf("model templates: %d/%d cases byte-identical to transformers (%d of them errors)\n", ok, n, errors);
    CHECK(n > 300);
}

/* ---- interpreter snippets ---- */
static void test_snippets(const cJSON *golden)
{
    int n = 0, ok = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(golden, "snippets")) {
        const char *src = cJSON_GetObjectItemCaseSensitive(s, "template")->valuestring;
        char *err = NULL, *out = NULL;
        fc_jinja *t = fc_jinja_compile(src, &err);
        if (t) out = fc_jinja_render(t, cJSON_GetObjectItemCaseSensitive(s, "context"), &golden_opts, &err);
        fc_jinja_free(t);
        CHECK((out == NULL) != (err == NULL));
        char what[96];
        snprintf(what, sizeof what, "snippet %d %.50s", n, src);
        for (char *p = what; *p; p++) if (*p == '\n') *p = ' ';
        bool good = matches(s, out, err, what, false);
        CHECKF(good, "%s", what);
        n++;
        ok += good;
        free(out);
        free(err);
    }
    printf("snippets: %d/%d identical to transformers' Jinja2 environment\n", ok, n);
    CHECK(n > 150);
}

/* ---- direct checks ---- */

/* Renders src over the JSON context text; returns output or NULL (*err). */
static char *render(const char *src, const char *ctx_json, const fc_jinja_opts *opts, char **err)
{
    *err = NULL;
    cJSON *ctx = ctx_json ? cJSON_Parse(ctx_json) : NULL;
    FC_ASSERT(!ctx_json || ctx);
    fc_jinja *t = fc_jinja_compile(src, err);
    char *out = t ? fc_jinja_render(t, ctx, opts, err) : NULL;
    fc_jinja_free(t);
    cJSON_Delete(ctx);
    return out;
}

static void expect_out(const char *src, const char *ctx, const char *want)
{
    char *err, *out = render(src, ctx, NULL, &err);
    CHECKF(out && !strcmp(out, want), "%s: got '%s' (error %s), want '%s'", src, out ? out : "", err ? err : "-", want);
    free(out);
    free(err);
}

static void expect_err(const char *src, const char *ctx, const fc_jinja_opts *opts, const char *needle)
{
    char *err, *out = render(src, ctx, opts, &err);
    CHECKF(!out && err && strstr(err, needle), "%.60s: want an error with '%s', got %s '%.80s'", src, needle,
           out ? "output" : "error", out ? out : err ? err : "");
    free(out);
    free(err);
}

static void test_errors(void)
{
    /* syntax errors carry the line */
    expect_err("line one\n{% if true %}\n{% endfor %}", NULL, NULL, "line 3:");
    expect_err("{{ 1 +\n }}", NULL, NULL, "line 2:");
    expect_err("{% if x %}never closed", NULL, NULL, "'endif'");
    expect_err("{{ 'unterminated }}", NULL, NULL, "line 1:");
    expect_err("{% include 'x' %}", NULL, NULL, "not supported");
    expect_err("{% for x in y recursive %}{% endfor %}", NULL, NULL, "not supported");
    /* raise_exception: the message, verbatim */
    char *err, *out = render("{{ raise_exception('Roles must alternate') }}", NULL, NULL, &err);
    CHECK(!out && err && !strcmp(err, "Roles must alternate"));
    free(err);
    /* jinja2's default Undefined: prints empty, fails when used */
    expect_out("[{{ missing }}][{{ missing | default('d') }}][{{ missing is defined }}][{{ none.attr }}]", NULL,
               "[][d][False][]");
    expect_err("{{ missing.attr }}", NULL, NULL, "'missing' is undefined");
    expect_err("{{ missing + 1 }}", NULL, NULL, "'missing' is undefined");
    expect_err("{{ m.content.x.y }}", "{\"m\": {\"role\": \"user\"}}", NULL, "has no attribute 'content'");
    expect_err("{{ [1][3].x }}", NULL, NULL, "no element 3");
    expect_err("{{ x }}", "[1, 2]", NULL, "JSON object");
    /* NULLs */
    fc_jinja_free(NULL);
    out = fc_jinja_render(NULL, NULL, NULL, &err);
    CHECK(!out && err);
    free(err);
    expect_out("", NULL, "");
    expect_out("just text\n", NULL, "just text");
    /* the chat layer's own refusals */
    cJSON *msgs = cJSON_Parse("[\"not an object\"]");
    out = fc_chat_template_render("x", msgs, NULL, NULL, false, NULL, NULL, &err);
    CHECK(!out && err && strstr(err, "dicts"));
    free(err);
    cJSON_Delete(msgs);
    msgs = cJSON_Parse("[{\"role\": \"user\", \"content\": \"hi\"}]");
    cJSON *extra = cJSON_Parse("{\"messages\": []}");
    out = fc_chat_template_render("x", msgs, NULL, NULL, false, extra, NULL, &err);
    CHECK(!out && err);
    free(err);
    cJSON_Delete(extra);
    /* extra variables override the special tokens */
    extra = cJSON_Parse("{\"bos_token\": \"B\", \"k\": [1, 2]}");
    out = fc_chat_template_render("{{ bos_token }}{{ eos_token }}{{ k }}{{ tools }}{{ messages[0].role }}", msgs, "<s>",
                                  "</s>", true, extra, NULL, &err);
    CHECK(out && !strcmp(out, "B</s>[1, 2]Noneuser"));
    free(out);
    free(err);
    cJSON_Delete(extra);
    cJSON_Delete(msgs);
}

static void test_limits(void)
{
    fc_jinja_opts small = { .max_output = 4096, .max_memory = 64 << 20, .max_steps = 200000 };
    /* endless work: the step budget */
    expect_err("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", NULL, &small, "steps");
    /* exponential strings: the size limit */
    expect_err("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
               NULL, &small, "longer than");
    expect_err("{{ 'x' * 100000 }}", NULL, &small, "longer than");
    expect_err("{% for i in range(100000) %}xxxxxxxxxx{% endfor %}", NULL, &small, "longer than");
    /* lists of many references: the memory budget */
    expect_err("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", NULL,
               &small, "");
    fc_jinja_opts tight = { .max_memory = 1 << 20 };
    expect_err("{% set ns = namespace(l=[]) %}{% for i in range(100) %}{% set ns.l = ns.l + [range(1000)] %}{% endfor %}",
               NULL, &tight, "bytes of memory");
    expect_err("{{ 9223372036854775807 + 1 }}", NULL, NULL, "64-bit");
    expect_err("{{ range(10000000) }}", NULL, NULL, "MAX_RANGE");
    /* recursion: macros, nesting */
    expect_err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, NULL, "recursion");
    size_t n = 20000;
    char *deep = fc_xmalloc(6 * n + 16), *q = deep;
    q += sprintf(q, "{{ ");
    memset(q, '(', n);
    q += n;
    *q++ = '1';
    memset(q, ')', n);
    strcpy(q + n, " }}");
    expect_err(deep, NULL, NULL, "nested");
    q = deep + sprintf(deep, "{{ ");
    for (size_t i = 0; i < 5000; i++) q += sprintf(q, "not ");
    strcpy(q, "x }}");
    expect_err(deep, NULL, NULL, "nested");
    q = deep;
    for (size_t i = 0; i < 2000; i++) q += sprintf(q, "{%% if true %%}");
    expect_err(deep, NULL, NULL, "nested");
    free(deep);
    /* 100000 elifs parse and run without deep recursion */
    size_t k = 100000;
    char *chain = fc_xmalloc(k * 24 + 64), *p = chain;
    p += sprintf(p, "{%% if x == 0 %%}0");
    for (size_t i = 1; i < k; i++) p += sprintf(p, "{%% elif x == %zu %%}%zu", i, i % 10);
    strcpy(p, "{% endif %}");
    expect_out(chain, "{\"x\": 99999}", "9");
    free(chain);
    /* a deep value: printed, compared, serialised, freed without recursing forever */
    expect_err("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
               NULL, NULL, "nested too deeply");
    expect_err("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l|tojson }}",
               NULL, NULL, "nested too deeply");
    expect_out("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l == ns.l }}",
               NULL, "True");
    /* big mappings from the context: hashed, not scanned */
    {
        char *big = fc_xmalloc(200000 * 24 + 32), *q = big;
        q += sprintf(q, "{\"big\": {");
        for (int i = 0; i < 200000; i++) q += sprintf(q, "%s\"k%d\": %d", i ? ", " : "", i, i);
        strcpy(q, "}}");
        clock_t t0 = clock();
        expect_out("{{ big.k199999 }} {{ big['k7'] }} {{ big|length }} {{ 'k5' in big }}", big, "199999 7 200000 True");
        CHECKF(clock() - t0 < 10 * CLOCKS_PER_SEC, "200000 keys took %.1f s", (double)(clock() - t0) / CLOCKS_PER_SEC);
        free(big);
    }
    /* a namespace that holds itself: rendered, then freed */
    expect_out("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns, ns] %}{{ ns.me.me.l[1].me is defined }}",
               NULL, "True");
}

/* ---- one compiled template, several threads ---- */
struct job { const fc_jinja *t; const cJSON *ctx; const char *want; int bad; };

static void *run_job(void *arg)
{
    struct job *j = arg;
    for (int i = 0; i < 200; i++) {
        char *err = NULL, *out = fc_jinja_render(j->t, j->ctx, NULL, &err);
        if (!out || strcmp(out, j->want)) j->bad++;
        free(out);
        free(err);
    }
    return NULL;
}

static void test_threads(void)
{
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                      "<{{ m.role | upper }}>{{ m.content | trim }}{% endfor %}{{ ns.n }}{{ ['a', 'b'] | join('-') }}";
    cJSON *ctx = cJSON_Parse("{\"messages\": [{\"role\": \"user\", \"content\": \" hi \"}, "
                             "{\"role\": \"assistant\", \"content\": \"yo\"}]}");
    char *err = NULL;
    fc_jinja *t = fc_jinja_compile(src, &err);
    CHECK(t != NULL);
    struct job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct job){ t, ctx, "<USER>hi<ASSISTANT>yo2a-b", 0 };
        pthread_create(&th[i], NULL, run_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECKF(jobs[i].bad == 0, "thread %d: %d bad renders", i, jobs[i].bad);
    }
    fc_jinja_free(t);
    cJSON_Delete(ctx);
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const char *path = getenv("FC_JINJA_GOLDEN");
    if (!path) path = "tests/data/conv/jinja_golden.json";
    char *text = read_file(path);
    if (!text) {
        fprintf(stderr, "%s: cannot read (run from the repository root)\n", path);
        return 1;
    }
    cJSON *golden = cJSON_Parse(text);
    free(text);
    CHECK(golden != NULL);
    if (golden) {
        golden_opts.now = (long long)cJSON_GetObjectItemCaseSensitive(golden, "now_epoch")->valuedouble;
        test_cases(golden);
        test_snippets(golden);
    }
    cJSON_Delete(golden);
    test_errors();
    test_limits();
    test_threads();
    return TEST_END();
}
