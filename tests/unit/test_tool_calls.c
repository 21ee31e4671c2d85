/*
 * test_tool_calls.c: serve/tool_calls.c.
 *   - the output parser on Hermes, Llama 3.1 and Mistral call syntaxes, text
 *     around calls, malformed and cut-off calls; fed whole, byte by byte and
 *     in uneven pieces, the events give the same answer, and a call's START
 *     (with its name) comes before its argument fragments;
 *   - the prompt with a model's own template against transformers'
 *     apply_chat_template(messages, tools=...) goldens
 *     (tests/data/tools/golden.json, tools/golden/make_tool_golden.py):
 *     fc_tool_messages_for_template + fc_chat_template_render, exactly;
 *   - the generic format's messages (tools block, calls written back,
 *     tool results as one user turn);
 *   - the forcing grammar: compiles for each style, accepts the canonical
 *     calls, refuses unknown functions and arguments outside the schema;
 *   - request validation messages, and the offline request checker
 *     (fc_openai_api_check_request) with tools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "base/file.h"
#include "base/str.h"
#include "chat/chat_template.h"
#include "sampling/grammar.h"
#include "serve/openai_api.h"
#include "serve/tool_calls.h"
#include "test_util.h"

/* ---- the parser ---- */

typedef struct result {
    fc_str content;
    int n;
    char names[8][64];
    fc_str args[8];
    bool order_ok;
} result;

static void on_ev(const fc_tool_ev *ev, void *user)
{
    result *r = user;
    if (ev->kind == FC_TOOL_EV_CONTENT) {
        fc_str_putn(&r->content, ev->text, ev->len);
    } else if (ev->kind == FC_TOOL_EV_START) {
        if (ev->index != r->n || r->n >= 8 || strncmp(ev->id, "call_", 5) || strlen(ev->id) != 29) r->order_ok = false;
        if (r->n < 8) {
            snprintf(r->names[r->n], 64, "%s", ev->name);
            fc_str_init(&r->args[r->n], 0);
            r->n++;
        }
    } else {
        if (ev->index != r->n - 1) r->order_ok = false; /* fragments of the call begun last */
        if (ev->index >= 0 && ev->index < r->n) fc_str_putn(&r->args[ev->index], ev->text, ev->len);
    }
}

/* Feeds text in pieces of `step` bytes (0: whole). */
static void parse(const char *text, size_t step, result *r)
{
    memset(r, 0, sizeof *r);
    r->order_ok = true;
    fc_str_init(&r->content, 0);
    fc_tool_parser *p = fc_tool_parser_new(on_ev, r);
    size_t n = strlen(text);
    if (!step) step = n ? n : 1;
    for (size_t i = 0; i < n; i += step) fc_tool_parser_feed(p, text + i, i + step > n ? n - i : step);
    fc_tool_parser_finish(p);
    fc_tool_parser_free(p);
}

static void result_free(result *r)
{
    fc_str_free(&r->content);
    for (int i = 0; i < r->n; i++) fc_str_free(&r->args[i]);
}

typedef struct pcase {
    const char *text;
    const char *content; /* expected content */
    int n;
    const char *calls[3][2]; /* name, arguments */
} pcase;

static const pcase PCASES[] = {
    {"Hello there.", "Hello there.", 0, {{0}}},
    {"  spaced  ", "  spaced  ", 0, {{0}}},
    {"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "", 1,
     {{"get_weather", "{\"city\": \"Paris\"}"}}},
    {"Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"s\": \"}{\\\"]\"}}\n</tool_call>\n"
     "<tool_call>\n{\"arguments\": {}, \"name\": \"b\"}\n</tool_call>\n",
     "Let me check.", 2, {{"a", "{\"s\": \"}{\\\"]\"}"}, {"b", "{}"}}},
    {"{\"name\": \"f\", \"parameters\": {\"x\": [1, {\"y\": null}]}}", "", 1, {{"f", "{\"x\": [1, {\"y\": null}]}"}}},
    {"<|python_tag|>{\"name\": \"f\", \"parameters\": {}}", "", 1, {{"f", "{}"}}},
    {"[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"k\": 1}}, {\"name\": \"b\", \"arguments\": {}}]", "", 2,
     {{"a", "{\"k\": 1}"}, {"b", "{}"}}},
    {"[{\"name\": \"a\", \"arguments\": {\"k\": true}}]", "", 1, {{"a", "{\"k\": true}"}}},
    {"<tool_call>{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}</tool_call>", "", 1, {{"f", "{\"a\":1}"}}},
    {"<tool_call>{\"name\": \"f\"}</tool_call> done", "done", 1, {{"f", "{}"}}},
    {"<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", 0, {{0}}},
    {"{\"answer\": 42}", "{\"answer\": 42}", 0, {{0}}},
    {"[1, 2, 3]", "[1, 2, 3]", 0, {{0}}},
    {"a <tool", "a <tool", 0, {{0}}},
    {"x [TOOL_CALLS", "x [TOOL_CALLS", 0, {{0}}},
    {"<tool_call>{\"na", "<tool_call>{\"na", 0, {{0}}},
    {"<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": ", "", 1, {{"f", "{\"a\": "}}},
    {"<tool_call>{\"name\": 5}</tool_call>", "<tool_call>{\"name\": 5}</tool_call>", 0, {{0}}},
    {"Sure: {\"name\": \"f\", \"parameters\": {}}", "Sure: {\"name\": \"f\", \"parameters\": {}}", 0, {{0}}},
    {"\xc3\xa9t\xc3\xa9 <tool_call>{\"name\": \"f\", \"arguments\": {\"v\": \"\xe2\x82\xac\"}}</tool_call>",
     "\xc3\xa9t\xc3\xa9", 1, {{"f", "{\"v\": \"\xe2\x82\xac\"}"}}},
};

static void test_parser(void)
{
    for (size_t c = 0; c < FC_ARRAY_LEN(PCASES); c++) {
        const pcase *pc = &PCASES[c];
        static const size_t steps[] = {0, 1, 2, 3, 7};
        for (size_t s = 0; s < FC_ARRAY_LEN(steps); s++) {
            result r;
            parse(pc->text, steps[s], &r);
            const char *content = fc_str_cstr(&r.content);
            CHECKF(!strcmp(content, pc->content), "case %zu step %zu: content '%s'", c, steps[s], content);
            CHECKF(r.n == pc->n, "case %zu step %zu: %d calls", c, steps[s], r.n);
            CHECKF(r.order_ok, "case %zu step %zu: event order", c, steps[s]);
            for (int i = 0; i < r.n && i < pc->n; i++) {
                CHECKF(!strcmp(r.names[i], pc->calls[i][0]), "case %zu: name '%s'", c, r.names[i]);
                CHECKF(!strcmp(fc_str_cstr(&r.args[i]), pc->calls[i][1]), "case %zu step %zu: args '%s'", c, steps[s],
                       fc_str_cstr(&r.args[i]));
            }
            result_free(&r);
        }
    }
    /* the whole-text helper: content null beside calls, OpenAI's shape */
    char *content = NULL;
    const char *t = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>";
    cJSON *calls = fc_tool_parse_text(t, strlen(t), NULL, &content);
    CHECK(cJSON_GetArraySize(calls) == 1 && content == NULL);
    cJSON *c0 = cJSON_GetArrayItem(calls, 0), *fn = cJSON_GetObjectItem(c0, "function");
    CHECK(!strcmp(cJSON_GetObjectItem(c0, "type")->valuestring, "function"));
    CHECK(!strncmp(cJSON_GetObjectItem(c0, "id")->valuestring, "call_", 5));
    CHECK(!strcmp(cJSON_GetObjectItem(fn, "name")->valuestring, "f"));
    CHECK(!strcmp(cJSON_GetObjectItem(fn, "arguments")->valuestring, "{\"a\": 1}"));
    cJSON_Delete(calls);
    calls = fc_tool_parse_text("plain", 5, NULL, &content);
    CHECK(!calls && content && !strcmp(content, "plain"));
    free(content);
    /* with the request's tools known, bare JSON naming another function is an answer, not a call */
    cJSON *tools = cJSON_Parse("[{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]");
    const char *json_answer = "{\"name\": \"John\", \"age\": 3}";
    calls = fc_tool_parse_text(json_answer, strlen(json_answer), tools, &content);
    CHECK(!calls && content && !strcmp(content, json_answer));
    free(content);
    calls = fc_tool_parse_text(json_answer, strlen(json_answer), NULL, &content);
    CHECK(cJSON_GetArraySize(calls) == 1 && !content); /* without tools: taken for a call */
    cJSON_Delete(calls);
    const char *list_answer = "[{\"name\": \"x\"}, {\"name\": \"f\", \"arguments\": {}}]";
    calls = fc_tool_parse_text(list_answer, strlen(list_answer), tools, &content);
    CHECK(!calls && content && !strcmp(content, list_answer));
    free(content);
    const char *call_answer = "{\"name\": \"f\", \"parameters\": {\"q\": 1}}";
    calls = fc_tool_parse_text(call_answer, strlen(call_answer), tools, &content);
    CHECK(cJSON_GetArraySize(calls) == 1 && !content);
    cJSON_Delete(calls);
    const char *marked = "<tool_call>{\"name\": \"other\", \"arguments\": {}}</tool_call>";
    calls = fc_tool_parse_text(marked, strlen(marked), tools, &content); /* a marker: taken as it is */
    CHECK(cJSON_GetArraySize(calls) == 1 && !content);
    cJSON_Delete(calls);
    cJSON_Delete(tools);
    char a[32], b[32];
    fc_tool_call_id(a);
    fc_tool_call_id(b);
    CHECK(strlen(a) == 29 && strcmp(a, b));
}

/* ---- the goldens ---- */

static void test_golden(void)
{
    size_t len;
    char *text = fc_file_read("tests/data/tools/golden.json", &len, 0);
    CHECK(text);
    cJSON *g = text ? cJSON_Parse(text) : NULL;
    free(text);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        char path[256];
        snprintf(path, sizeof path, "tests/data/conv/jinja_templates/%s.jinja",
                 cJSON_GetObjectItem(c, "template")->valuestring);
        char *tmpl = fc_file_read(path, &len, 0);
        CHECK(tmpl);
        if (!tmpl) continue;
        CHECK(fc_tool_template_takes_tools(tmpl));
        const char *bos = cJSON_GetObjectItem(c, "bos_token")->valuestring;
        const char *eos = cJSON_GetObjectItem(c, "eos_token")->valuestring;
        cJSON *msgs = fc_tool_messages_for_template(cJSON_GetObjectItem(c, "request_messages"));
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddItemToObject(extra, "tools", cJSON_Duplicate(cJSON_GetObjectItem(c, "tools"), true));
        char *err = NULL;
        fc_jinja_opts opts = {.now = 1741507626}; /* templates that print a date: not these */
        char *out = fc_chat_template_render(tmpl, msgs, bos[0] ? bos : NULL, eos, true, extra, &opts, &err);
        const char *want = cJSON_GetObjectItem(c, "prompt")->valuestring;
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        CHECKF(out && !strcmp(out, want), "%s: %s\n--- got\n%s\n--- want\n%s", name, err ? err : "", out ? out : "",
               want);
        free(out);
        free(err);
        cJSON_Delete(extra);
        cJSON_Delete(msgs);
        free(tmpl);
        n++;
    }
    CHECK(n >= 10);
    cJSON_Delete(g);
    CHECK(fc_tool_style_of(NULL) == FC_TOOL_STYLE_HERMES);
    char *t = fc_file_read("tests/data/conv/jinja_templates/llama3_1.jinja", &len, 0);
    CHECK(t && fc_tool_style_of(t) == FC_TOOL_STYLE_LLAMA3);
    free(t);
    t = fc_file_read("tests/data/conv/jinja_templates/mistral_v0_3.jinja", &len, 0);
    CHECK(t && fc_tool_style_of(t) == FC_TOOL_STYLE_MISTRAL);
    free(t);
    t = fc_file_read("tests/data/conv/jinja_templates/qwen2_5.jinja", &len, 0);
    CHECK(t && fc_tool_style_of(t) == FC_TOOL_STYLE_HERMES);
    free(t);
    t = fc_file_read("tests/data/conv/jinja_templates/smollm2.jinja", &len, 0);
    CHECK(t && !fc_tool_template_takes_tools(t));
    free(t);
}

/* ---- requests, the generic format, the grammar ---- */

static const char TOOLS[] =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Weather\","
    " \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"},"
    " \"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 7}}, \"required\": [\"city\", \"days\"]}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"ping\"}}]";

static cJSON *body_with(const char *messages, const char *more)
{
    char *s = fc_xasprintf("{\"model\": \"m\", \"messages\": %s, \"tools\": %s%s}", messages, TOOLS, more);
    cJSON *b = cJSON_Parse(s);
    free(s);
    return b;
}

static const char HISTORY[] =
    "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Weather?\"},"
    " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\","
    " \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Oslo\\\", \\\"days\\\": 1}\"}},"
    " {\"id\": \"call_2\", \"type\": \"function\", \"function\": {\"name\": \"ping\", \"arguments\": \"{}\"}}]},"
    " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"rain\"},"
    " {\"role\": \"tool\", \"tool_call_id\": \"call_2\", \"content\": [{\"type\": \"text\", \"text\": \"pong\"}]}]";

static void test_generic(void)
{
    cJSON *b = body_with(HISTORY, "");
    fc_tool_req t;
    char err[320];
    const char *param;
    CHECK(fc_tool_req_parse(b, &t, err, sizeof err, &param) == 0);
    CHECK(t.n_tools == 2 && t.choice == FC_TOOL_CHOICE_AUTO && t.parallel && t.history);
    CHECK(fc_tool_req_active(&t) && fc_tool_req_needed(&t) && !fc_tool_req_forced(&t));
    cJSON *m = fc_tool_messages_generic(cJSON_GetObjectItem(b, "messages"), &t);
    CHECK(cJSON_GetArraySize(m) == 4);
    const char *roles[] = {"system", "user", "assistant", "user"};
    for (int i = 0; i < 4; i++)
        CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, i), "role")->valuestring, roles[i]));
    const char *sys = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "content")->valuestring;
    CHECK(!strncmp(sys, "Be brief.\n\n", 11) && strstr(sys, "<tools>\n{\"type\":\"function\",\"function\":{\"name\":\"get_weather\""));
    CHECK(strstr(sys, "<tool_call>"));
    const char *asst = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 2), "content")->valuestring;
    CHECKF(!strcmp(asst, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 1}}\n"
                         "</tool_call>\n<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"),
           "%s", asst);
    const char *res = cJSON_GetObjectItem(cJSON_GetArrayItem(m, 3), "content")->valuestring;
    CHECK(!strcmp(res, "<tool_response>\nrain\n</tool_response>\n<tool_response>\npong\n</tool_response>"));
    /* the generic prompt's own calls parse back */
    cJSON *calls = fc_tool_parse_text(asst, strlen(asst), NULL, NULL);
    CHECK(cJSON_GetArraySize(calls) == 2);
    cJSON_Delete(calls);
    cJSON_Delete(m);
    cJSON_Delete(b);

    /* tool_choice none: no tools block, history still rendered */
    b = body_with(HISTORY, ", \"tool_choice\": \"none\"");
    CHECK(fc_tool_req_parse(b, &t, err, sizeof err, &param) == 0 && !fc_tool_req_active(&t) && fc_tool_req_needed(&t));
    m = fc_tool_messages_generic(cJSON_GetObjectItem(b, "messages"), &t);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "content")->valuestring, "Be brief."));
    cJSON_Delete(m);
    cJSON_Delete(b);
}

static bool accepts(const fc_grammar *g, const char *s)
{
    fc_grammar_state *st = fc_grammar_state_new(g);
    bool ok = fc_grammar_state_advance(st, s, strlen(s)) && fc_grammar_state_can_end(st);
    fc_grammar_state_free(st);
    return ok;
}

static fc_grammar *grammar_for(const char *more, enum fc_tool_style style)
{
    cJSON *b = body_with("[{\"role\": \"user\", \"content\": \"hi\"}]", more);
    fc_tool_req t;
    char err[320];
    const char *param;
    CHECK(fc_tool_req_parse(b, &t, err, sizeof err, &param) == 0);
    char *text = fc_tool_grammar(&t, style, err, sizeof err);
    cJSON_Delete(b);
    CHECKF(text, "%s", err);
    if (!text) return NULL;
    char why[256];
    fc_grammar *g = fc_grammar_parse(text, strlen(text), why, sizeof why);
    CHECKF(g, "%s\n%s", why, text);
    free(text);
    return g;
}

static void test_grammar(void)
{
    const char *w = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 3}}";
    const char *p = "{\"name\": \"ping\", \"arguments\": {}}";
    char h1[256], h2[512];
    snprintf(h1, sizeof h1, "<tool_call>\n%s\n</tool_call>", w);
    snprintf(h2, sizeof h2, "%s\n<tool_call>\n%s\n</tool_call>", h1, p);
    fc_grammar *g = grammar_for(", \"tool_choice\": \"required\"", FC_TOOL_STYLE_HERMES);
    CHECK(g && accepts(g, h1) && accepts(g, h2));
    CHECK(g && !accepts(g, "<tool_call>\n{\"name\": \"other\", \"arguments\": {}}\n</tool_call>"));
    CHECK(g && !accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 9}}\n"
                           "</tool_call>"));
    CHECK(g && !accepts(g, "hello"));
    fc_grammar_free(g);
    g = grammar_for(", \"tool_choice\": \"required\", \"parallel_tool_calls\": false", FC_TOOL_STYLE_HERMES);
    CHECK(g && accepts(g, h1) && !accepts(g, h2));
    fc_grammar_free(g);
    g = grammar_for(", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"ping\"}}",
                    FC_TOOL_STYLE_HERMES);
    char hp[128];
    snprintf(hp, sizeof hp, "<tool_call>\n%s\n</tool_call>", p);
    CHECK(g && accepts(g, hp) && !accepts(g, h1));
    fc_grammar_free(g);
    g = grammar_for(", \"tool_choice\": \"required\"", FC_TOOL_STYLE_LLAMA3);
    CHECK(g && accepts(g, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\", \"days\": 3}}"));
    fc_grammar_free(g);
    g = grammar_for(", \"tool_choice\": \"required\"", FC_TOOL_STYLE_MISTRAL);
    char m[512];
    snprintf(m, sizeof m, "[%s, %s]", w, p);
    CHECK(g && accepts(g, m));
    fc_grammar_free(g);
    /* every forced output parses back into the calls */
    cJSON *calls = fc_tool_parse_text(h2, strlen(h2), NULL, NULL);
    CHECK(cJSON_GetArraySize(calls) == 2);
    cJSON_Delete(calls);
    calls = fc_tool_parse_text(m, strlen(m), NULL, NULL);
    CHECK(cJSON_GetArraySize(calls) == 2);
    cJSON_Delete(calls);
}

static void test_errors(void)
{
    static const struct {
        const char *body, *param, *msg;
    } cases[] = {
        {"{\"tools\": 3}", "tools", "expected an array"},
        {"{\"tools\": []}", "tools", "empty array"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {}}]}", "tools[0].function.name", "Missing required"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}, {\"type\": \"function\", "
         "\"function\": {\"name\": \"f\"}}]}", "tools[1].function.name", "duplicate"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": 1}}]}",
         "tools[0].function.parameters", "expected an object"},
        {"{\"tool_choice\": \"auto\"}", "tool_choice", "only allowed when 'tools'"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"tool_choice\": {\"type\": "
         "\"function\", \"function\": {\"name\": \"g\"}}}", "tool_choice", "no function named 'g'"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"parallel_tool_calls\": 2}",
         "parallel_tool_calls", "expected a boolean"},
        {"{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", "messages[0].tool_call_id", "must have"},
        {"{\"messages\": [{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"a\", \"type\": \"function\", "
         "\"function\": {\"name\": \"f\", \"arguments\": \"{}\"}}]}, {\"role\": \"tool\", \"tool_call_id\": \"b\", "
         "\"content\": \"x\"}]}", "messages[1]", "no call has id 'b'"},
        {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\", \"tool_calls\": []}]}", "messages[0].tool_calls",
         "only 'assistant'"},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(cases); i++) {
        cJSON *b = cJSON_Parse(cases[i].body);
        fc_tool_req t;
        char err[320] = "";
        const char *param = NULL;
        CHECKF(fc_tool_req_parse(b, &t, err, sizeof err, &param) < 0 && param && !strcmp(param, cases[i].param) &&
                   strstr(err, cases[i].msg),
               "case %zu: %s (%s)", i, err, param ? param : "-");
        cJSON_Delete(b);
    }
    /* the offline checker: the generic prompt and the forcing grammar reach the worker payload */
    char *body = fc_xasprintf("{\"model\": \"m\", \"messages\": %s, \"tools\": %s, \"tool_choice\": \"required\"}",
                              HISTORY, TOOLS);
    char *out = NULL;
    int st = fc_openai_api_check_request("/v1/chat/completions", body, strlen(body), "qwen-7b-chat", &out);
    CHECKF(st == 200, "%d %s", st, out);
    cJSON *o = cJSON_Parse(out);
    const cJSON *pl = cJSON_GetArrayItem(o, 0);
    const cJSON *prompt = cJSON_GetObjectItem(pl, "prompt"), *tg = cJSON_GetObjectItem(pl, "tool_grammar");
    CHECK(cJSON_IsString(prompt) && strstr(prompt->valuestring, "<tools>") &&
          strstr(prompt->valuestring, "<|im_start|>user\n<tool_response>\nrain\n</tool_response>"));
    CHECK(cJSON_IsString(tg) && strstr(tg->valuestring, "tc-call"));
    cJSON_Delete(o);
    free(out);
    free(body);
    body = fc_xasprintf("{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tools\": 1}");
    st = fc_openai_api_check_request("/v1/chat/completions", body, strlen(body), "qwen-7b-chat", &out);
    CHECK(st == 400 && strstr(out, "\"param\":\"tools\""));
    free(out);
    free(body);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    test_parser();
    test_golden();
    test_generic();
    test_grammar();
    test_errors();
    return TEST_END();
}
