/*
 * tool_calls.c: OpenAI tool calling: request validation, the prompt forms,
 * the forcing grammar and the incremental output parser. See tool_calls.h.
 */
#include "tool_calls.h"
#include "base/fc_base.h"
#include "base/json.h"
#include "base/str.h"
#include "sampling/grammar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_PARALLEL_EXTRA "4" /* forced parallel calls: at most 1 + this many */

static int refuse(char *err, size_t cap, const char **param, const char *p, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int refuse(char *err, size_t cap, const char **param, const char *p, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    if (param) *param = p;
    return -1;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static bool absent(const cJSON *x) { return !x || cJSON_IsNull(x); }

/* OpenAI's function names: ^[a-zA-Z0-9_-]{1,64}$ */
static bool good_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static const cJSON *find_tool(const fc_tool_req *t, const char *name)
{
    const cJSON *tool;
    cJSON_ArrayForEach(tool, t->tools) {
        const cJSON *n = get(get(tool, "function"), "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return tool;
    }
    return NULL;
}

static int parse_tools(const cJSON *tools, fc_tool_req *out, char *err, size_t cap, const char **param)
{
    static char p[96];
    if (absent(tools)) return 0;
    if (!cJSON_IsArray(tools))
        return refuse(err, cap, param, "tools", "Invalid type for 'tools': expected an array of objects");
    int i = 0;
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        if (!cJSON_IsObject(tool))
            return snprintf(p, sizeof p, "tools[%d]", i),
                   refuse(err, cap, param, p, "Invalid type for 'tools[%d]': expected an object", i);
        const cJSON *type = get(tool, "type"), *fn = get(tool, "function");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function"))
            return snprintf(p, sizeof p, "tools[%d].type", i),
                   refuse(err, cap, param, p, "Invalid value for 'tools[%d].type': expected 'function'", i);
        if (!cJSON_IsObject(fn))
            return snprintf(p, sizeof p, "tools[%d].function", i),
                   refuse(err, cap, param, p, "Missing required parameter: 'tools[%d].function'", i);
        const cJSON *name = get(fn, "name"), *desc = get(fn, "description"), *params = get(fn, "parameters"),
                    *strict = get(fn, "strict");
        snprintf(p, sizeof p, "tools[%d].function.name", i);
        if (absent(name)) return refuse(err, cap, param, p, "Missing required parameter: '%s'", p);
        if (!cJSON_IsString(name)) return refuse(err, cap, param, p, "Invalid type for '%s': expected a string", p);
        if (!good_name(name->valuestring))
            return refuse(err, cap, param, p, "Invalid '%s': string does not match pattern '^[a-zA-Z0-9_-]{1,64}$'", p);
        for (const cJSON *o = tools->child; o != tool; o = o->next)
            if (!strcmp(get(get(o, "function"), "name")->valuestring, name->valuestring))
                return refuse(err, cap, param, p, "Invalid 'tools': duplicate function name '%s'", name->valuestring);
        snprintf(p, sizeof p, "tools[%d].function.description", i);
        if (!absent(desc) && !cJSON_IsString(desc))
            return refuse(err, cap, param, p, "Invalid type for '%s': expected a string", p);
        snprintf(p, sizeof p, "tools[%d].function.parameters", i);
        if (!absent(params) && !cJSON_IsObject(params))
            return refuse(err, cap, param, p, "Invalid type for '%s': expected an object", p);
        snprintf(p, sizeof p, "tools[%d].function.strict", i);
        if (!absent(strict) && !cJSON_IsBool(strict))
            return refuse(err, cap, param, p, "Invalid type for '%s': expected a boolean", p);
        if (cJSON_IsTrue(strict)) { /* a strict schema must compile now */
            char why[256] = "";
            char *s = cJSON_IsObject(params) ? cJSON_PrintUnformatted(params) : NULL;
            fc_grammar *g = s ? fc_grammar_from_json_schema(s, strlen(s), why, sizeof why) : NULL;
            bool ok = !s || g;
            free(s);
            fc_grammar_free(g);
            snprintf(p, sizeof p, "tools[%d].function.parameters", i);
            if (!ok)
                return refuse(err, cap, param, p, "Invalid schema for function '%s': %s", name->valuestring, why);
        }
        i++;
    }
    if (i == 0) return refuse(err, cap, param, "tools", "Invalid 'tools': empty array. Expected an array with minimum length 1");
    out->tools = tools;
    out->n_tools = i;
    return 0;
}

static int parse_choice(const cJSON *tc, fc_tool_req *out, char *err, size_t cap, const char **param)
{
    out->choice = out->tools ? FC_TOOL_CHOICE_AUTO : FC_TOOL_CHOICE_NONE;
    if (absent(tc)) return 0;
    if (cJSON_IsString(tc)) {
        const char *s = tc->valuestring;
        if (!strcmp(s, "none")) out->choice = FC_TOOL_CHOICE_NONE;
        else if (!strcmp(s, "auto")) out->choice = FC_TOOL_CHOICE_AUTO;
        else if (!strcmp(s, "required")) out->choice = FC_TOOL_CHOICE_REQUIRED;
        else
            return refuse(err, cap, param, "tool_choice",
                          "Invalid value: '%.64s'. Supported values are: 'none', 'auto', and 'required'.", s);
    } else if (cJSON_IsObject(tc)) {
        const cJSON *type = get(tc, "type"), *name = get(get(tc, "function"), "name");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function"))
            return refuse(err, cap, param, "tool_choice.type", "Invalid value for 'tool_choice.type': expected 'function'");
        if (!cJSON_IsString(name))
            return refuse(err, cap, param, "tool_choice.function.name",
                          "Missing required parameter: 'tool_choice.function.name'");
        out->choice = FC_TOOL_CHOICE_NAMED;
        out->named = name->valuestring;
    } else {
        return refuse(err, cap, param, "tool_choice",
                      "Invalid type for 'tool_choice': expected one of 'none', 'auto', 'required' or an object");
    }
    if (out->choice != FC_TOOL_CHOICE_NONE && !out->tools)
        return refuse(err, cap, param, "tool_choice",
                      "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.");
    if (out->choice == FC_TOOL_CHOICE_NAMED && !find_tool(out, out->named))
        return refuse(err, cap, param, "tool_choice",
                      "Invalid value for 'tool_choice': no function named '%.64s' was specified in the 'tools' "
                      "parameter.",
                      out->named);
    return 0;
}

/* The tool parts of the history: well-formed calls, and tool messages that
 * answer an earlier call. */
static int check_history(const cJSON *messages, fc_tool_req *out, char *err, size_t cap, const char **param)
{
    static char p[64];
    if (!cJSON_IsArray(messages)) return 0;
    cJSON *ids = cJSON_CreateArray(); /* the call ids seen so far */
    int i = 0, rc = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *role = get(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) { i++; continue; } /* check_messages answers */
        const cJSON *calls = get(m, "tool_calls");
        if (!absent(calls)) {
            snprintf(p, sizeof p, "messages[%d].tool_calls", i);
            if (strcmp(role->valuestring, "assistant")) {
                rc = refuse(err, cap, param, p, "Invalid parameter: only 'assistant' messages may have 'tool_calls'.");
                break;
            }
            if (!cJSON_IsArray(calls)) {
                rc = refuse(err, cap, param, p, "Invalid type for '%s': expected an array of objects", p);
                break;
            }
            int k = 0;
            const cJSON *c;
            cJSON_ArrayForEach(c, calls) {
                const cJSON *id = get(c, "id"), *type = get(c, "type"), *fn = get(c, "function");
                const cJSON *name = get(fn, "name"), *args = get(fn, "arguments");
                snprintf(p, sizeof p, "messages[%d].tool_calls[%d]", i, k);
                if (!cJSON_IsObject(c) || !cJSON_IsString(id) || !cJSON_IsObject(fn) || !cJSON_IsString(name) ||
                    !cJSON_IsString(args) || (!absent(type) && !(cJSON_IsString(type) && !strcmp(type->valuestring, "function")))) {
                    rc = refuse(err, cap, param, p,
                                "Invalid '%s': expected {\"id\": string, \"type\": \"function\", \"function\": "
                                "{\"name\": string, \"arguments\": string}}",
                                p);
                    break;
                }
                cJSON_AddItemToArray(ids, cJSON_CreateString(id->valuestring));
                k++;
            }
            if (rc) break;
            out->history = true;
        }
        if (!strcmp(role->valuestring, "tool")) {
            const cJSON *id = get(m, "tool_call_id"), *content = get(m, "content");
            snprintf(p, sizeof p, "messages[%d].tool_call_id", i);
            if (!cJSON_IsString(id)) {
                rc = refuse(err, cap, param, p,
                            "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.");
                break;
            }
            bool known = false;
            const cJSON *x;
            cJSON_ArrayForEach(x, ids) known = known || !strcmp(x->valuestring, id->valuestring);
            if (!known) {
                snprintf(p, sizeof p, "messages[%d]", i);
                rc = refuse(err, cap, param, p,
                            "Invalid parameter: messages with role 'tool' must be a response to a preceding message "
                            "with 'tool_calls' (no call has id '%.64s').",
                            id->valuestring);
                break;
            }
            if (!cJSON_IsString(content) && !cJSON_IsArray(content)) {
                snprintf(p, sizeof p, "messages[%d].content", i);
                rc = refuse(err, cap, param, p, "Invalid type for '%s': expected a string or an array of text parts", p);
                break;
            }
            out->history = true;
        }
        i++;
    }
    cJSON_Delete(ids);
    return rc;
}

int fc_tool_req_parse(const cJSON *body, fc_tool_req *out, char *err, size_t err_cap, const char **param)
{
    memset(out, 0, sizeof *out);
    out->parallel = true;
    if (param) *param = NULL;
    if (parse_tools(get(body, "tools"), out, err, err_cap, param) < 0) return -1;
    if (parse_choice(get(body, "tool_choice"), out, err, err_cap, param) < 0) return -1;
    const cJSON *par = get(body, "parallel_tool_calls");
    if (!absent(par)) {
        if (!cJSON_IsBool(par))
            return refuse(err, err_cap, param, "parallel_tool_calls",
                          "Invalid type for 'parallel_tool_calls': expected a boolean");
        out->parallel = cJSON_IsTrue(par);
    }
    return check_history(get(body, "messages"), out, err, err_cap, param);
}

bool fc_tool_req_active(const fc_tool_req *t) { return t && t->tools && t->choice != FC_TOOL_CHOICE_NONE; }
bool fc_tool_req_needed(const fc_tool_req *t) { return t && (fc_tool_req_active(t) || t->history); }
bool fc_tool_req_forced(const fc_tool_req *t)
{
    return fc_tool_req_active(t) && (t->choice == FC_TOOL_CHOICE_REQUIRED || t->choice == FC_TOOL_CHOICE_NAMED);
}

bool fc_tool_template_takes_tools(const char *jinja) { return jinja && strstr(jinja, "tools"); }

enum fc_tool_style fc_tool_style_of(const char *jinja)
{
    if (!jinja || strstr(jinja, "<tool_call>")) return FC_TOOL_STYLE_HERMES;
    if (strstr(jinja, "[TOOL_CALLS]")) return FC_TOOL_STYLE_MISTRAL;
    if (strstr(jinja, "<|python_tag|>") || strstr(jinja, "<|start_header_id|>")) return FC_TOOL_STYLE_LLAMA3;
    return FC_TOOL_STYLE_HERMES;
}

/* ---- prompt forms ---- */

/* A message's content as text: a string, or its text parts joined by "\n". */
static void content_text(const cJSON *content, fc_str *out)
{
    if (cJSON_IsString(content)) {
        fc_str_puts(out, content->valuestring);
        return;
    }
    bool first = true;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = get(part, "type"), *text = get(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text)) continue;
        if (!first) fc_str_putc(out, '\n');
        fc_str_puts(out, text->valuestring);
        first = false;
    }
}

cJSON *fc_tool_messages_for_template(const cJSON *messages)
{
    cJSON *out = cJSON_Duplicate(messages, true);
    cJSON *m;
    cJSON_ArrayForEach(m, out) {
        cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
            cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
            cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
            if (!cJSON_IsString(args)) continue;
            cJSON *parsed = cJSON_Parse(args->valuestring);
            if (parsed) cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", parsed);
        }
    }
    return out;
}

char *fc_tool_generic_block(const fc_tool_req *t)
{
    fc_str b;
    fc_str_init(&b, 0);
    fc_str_puts(&b, "You can call functions to answer. These are the functions, as JSON schemas:\n<tools>\n");
    const cJSON *tool;
    cJSON_ArrayForEach(tool, t->tools) {
        char *s = cJSON_PrintUnformatted(tool);
        fc_str_puts(&b, s);
        fc_str_putc(&b, '\n');
        free(s);
    }
    fc_str_puts(&b, "</tools>\n"
                    "To call a function, answer with one block per call, each holding a JSON object with the "
                    "function's name and its arguments:\n"
                    "<tool_call>\n{\"name\": \"<function name>\", \"arguments\": {<arguments as JSON>}}\n</tool_call>\n"
                    "Each result comes back in a <tool_response></tool_response> block.");
    if (t->choice == FC_TOOL_CHOICE_REQUIRED) fc_str_puts(&b, "\nCall at least one function now.");
    if (t->choice == FC_TOOL_CHOICE_NAMED) fc_str_printf(&b, "\nCall the function %s now.", t->named);
    return fc_str_take(&b);
}

static void add_msg(cJSON *arr, const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content ? content : "");
    cJSON_AddItemToArray(arr, m);
}

cJSON *fc_tool_messages_generic(const cJSON *messages, const fc_tool_req *t)
{
    cJSON *out = cJSON_CreateArray();
    char *block = fc_tool_req_active(t) ? fc_tool_generic_block(t) : NULL;
    bool have_system = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *r = get(m, "role")->valuestring;
        have_system = have_system || !strcmp(r, "system") || !strcmp(r, "developer");
    }
    if (block && !have_system) add_msg(out, "system", block);
    fc_str tool_turn; /* consecutive tool results make one user turn */
    fc_str_init(&tool_turn, 0);
    bool in_tools = false;
    cJSON_ArrayForEach(m, messages) {
        const char *role = get(m, "role")->valuestring;
        const cJSON *content = get(m, "content");
        fc_str text;
        fc_str_init(&text, 0);
        content_text(content, &text);
        if (strcmp(role, "tool") && in_tools) {
            add_msg(out, "user", fc_str_cstr(&tool_turn));
            fc_str_reset(&tool_turn);
            in_tools = false;
        }
        if (!strcmp(role, "tool")) {
            if (in_tools) fc_str_putc(&tool_turn, '\n');
            fc_str_puts(&tool_turn, "<tool_response>\n");
            fc_str_puts(&tool_turn, fc_str_cstr(&text));
            fc_str_puts(&tool_turn, "\n</tool_response>");
            in_tools = true;
        } else if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            if (block) {
                if (text.len) fc_str_puts(&text, "\n\n");
                fc_str_puts(&text, block);
            }
            add_msg(out, "system", fc_str_cstr(&text));
        } else if (!strcmp(role, "assistant") && cJSON_IsArray(get(m, "tool_calls"))) {
            const cJSON *c;
            cJSON_ArrayForEach(c, get(m, "tool_calls")) {
                const cJSON *fn = get(c, "function");
                if (text.len) fc_str_putc(&text, '\n');
                fc_str_puts(&text, "<tool_call>\n{\"name\": ");
                fc_json_put_str(&text, get(fn, "name")->valuestring);
                fc_str_puts(&text, ", \"arguments\": ");
                fc_str_puts(&text, get(fn, "arguments")->valuestring);
                fc_str_puts(&text, "}\n</tool_call>");
            }
            add_msg(out, "assistant", fc_str_cstr(&text));
        } else {
            add_msg(out, role, fc_str_cstr(&text));
        }
        fc_str_free(&text);
    }
    if (in_tools) add_msg(out, "user", fc_str_cstr(&tool_turn));
    fc_str_free(&tool_turn);
    free(block);
    return out;
}

/* ---- the forcing grammar ---- */

char *fc_tool_grammar(const fc_tool_req *t, enum fc_tool_style style, char *err, size_t err_cap)
{
    if (!fc_tool_req_forced(t)) return NULL;
    fc_str g, fns;
    fc_str_init(&g, 0);
    fc_str_init(&fns, 0);
    const char *args_key = style == FC_TOOL_STYLE_LLAMA3 ? "parameters" : "arguments";
    int k = 0;
    bool ok = true;
    const cJSON *tool;
    cJSON_ArrayForEach(tool, t->tools) {
        const cJSON *fn = get(tool, "function");
        const char *name = get(fn, "name")->valuestring;
        int idx = k++;
        if (t->choice == FC_TOOL_CHOICE_NAMED && strcmp(name, t->named)) continue;
        const cJSON *params = get(fn, "parameters");
        char prefix[32];
        snprintf(prefix, sizeof prefix, "tc%d-", idx);
        char *rules = NULL;
        if (cJSON_IsObject(params)) {
            char why[256] = "";
            char *s = cJSON_PrintUnformatted(params);
            /* compiled alone first: the translation passes some schemas
             * that admit no value, which the grammar checker finds */
            fc_grammar *alone = fc_grammar_from_json_schema(s, strlen(s), why, sizeof why);
            if (alone) rules = fc_json_schema_to_rules(s, strlen(s), prefix, why, sizeof why);
            fc_grammar_free(alone);
            free(s);
            if (!rules && cJSON_IsTrue(get(fn, "strict"))) {
                if (err && err_cap) snprintf(err, err_cap, "function '%s': %s", name, why);
                ok = false;
                break;
            }
        }
        if (!rules) rules = fc_xasprintf("%sroot ::= object\n", prefix);
        /* names are [A-Za-z0-9_-]: safe inside a grammar literal */
        fc_str_printf(&g, "tc-f%d ::= \"\\\"%s\\\", \\\"%s\\\": \" %sroot\n", idx, name, args_key, prefix);
        fc_str_puts(&g, rules);
        if (!rules[0] || rules[strlen(rules) - 1] != '\n') fc_str_putc(&g, '\n');
        free(rules);
        fc_str_printf(&fns, "%stc-f%d", fns.len ? " | " : "", idx);
    }
    if (!ok || !fns.len) {
        fc_str_free(&g);
        fc_str_free(&fns);
        return NULL;
    }
    fc_str out;
    fc_str_init(&out, 0);
    bool many = t->parallel && style != FC_TOOL_STYLE_LLAMA3;
    switch (style) {
    case FC_TOOL_STYLE_HERMES:
        fc_str_puts(&out, many ? "root ::= tc-call ( \"\\n\" tc-call ){0," MAX_PARALLEL_EXTRA "}\n"
                               : "root ::= tc-call\n");
        fc_str_puts(&out, "tc-call ::= \"<tool_call>\\n{\\\"name\\\": \" tc-fn \"}\\n</tool_call>\"\n");
        break;
    case FC_TOOL_STYLE_LLAMA3:
        fc_str_puts(&out, "root ::= tc-call\ntc-call ::= \"{\\\"name\\\": \" tc-fn \"}\"\n");
        break;
    case FC_TOOL_STYLE_MISTRAL:
        fc_str_puts(&out, many ? "root ::= \"[\" tc-call ( \", \" tc-call ){0," MAX_PARALLEL_EXTRA "} \"]\"\n"
                               : "root ::= \"[\" tc-call \"]\"\n");
        fc_str_puts(&out, "tc-call ::= \"{\\\"name\\\": \" tc-fn \"}\"\n");
        break;
    }
    fc_str_printf(&out, "tc-fn ::= %s\n", fc_str_cstr(&fns));
    fc_str_puts(&out, fc_str_cstr(&g));
    fc_str_puts(&out, fc_json_base_rules());
    fc_str_free(&g);
    fc_str_free(&fns);
    return fc_str_take(&out);
}

char *fc_tool_lazy_grammar(const fc_tool_req *t, enum fc_tool_style style, const char **trigger, char *err,
                           size_t err_cap)
{
    *trigger = NULL;
    if (err && err_cap) err[0] = '\0';
    if (!fc_tool_req_active(t) || fc_tool_req_forced(t) || style != FC_TOOL_STYLE_HERMES) return NULL;
    bool strict = false;
    const cJSON *tool;
    cJSON_ArrayForEach(tool, t->tools) strict = strict || cJSON_IsTrue(get(get(tool, "function"), "strict"));
    if (!strict) return NULL;
    fc_tool_req any = *t;
    any.choice = FC_TOOL_CHOICE_REQUIRED;
    char *g = fc_tool_grammar(&any, style, err, err_cap);
    if (g) *trigger = "<tool_call>";
    return g;
}

/* ---- the output parser ---- */

enum { M_TEXT, M_CALL, M_CLOSE };
enum { W_HERMES, W_BARE, W_LIST };

struct fc_tool_parser {
    fc_tool_emit_fn emit;
    void *user;
    fc_str buf;        /* everything fed */
    size_t pos;        /* consumed up to */
    int mode, wrap;
    size_t marker_at;  /* where the call's syntax began (given back as content on failure) */
    size_t call_at;    /* the call object's '{' */
    bool started;      /* its START was emitted */
    size_t args_sent;  /* raw argument bytes emitted */
    int n_calls;
    char id[32];
    bool at_start;     /* nothing but whitespace since the start or the last call */
    bool after_call;   /* whitespace here is dropped */
    fc_str held;       /* whitespace held back */
    bool finishing;
    cJSON *names;      /* the known function names (strings), or NULL: any */
    bool bare;         /* the call has no marker before it */
};

static const char *const MARKERS[] = {"<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"};

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

static void emit(fc_tool_parser *p, enum fc_tool_ev_kind k, const char *text, size_t len)
{
    fc_tool_ev ev = {.kind = k, .index = p->n_calls, .id = p->id, .text = text, .len = len};
    p->emit(&ev, p->user);
}

static void emit_start(fc_tool_parser *p, const char *name)
{
    fc_str_reset(&p->held); /* no content ends with the whitespace before a call */
    fc_tool_call_id(p->id);
    fc_tool_ev ev = {.kind = FC_TOOL_EV_START, .index = p->n_calls, .id = p->id, .name = name, .text = "", .len = 0};
    p->emit(&ev, p->user);
    p->started = true;
    p->args_sent = 0;
}

/* Content, with whitespace at its end held back until more content comes. */
static void put_content(fc_tool_parser *p, const char *s, size_t n)
{
    size_t body = n;
    while (body > 0 && is_ws(s[body - 1])) body--;
    if (body > 0) {
        if (p->held.len) emit(p, FC_TOOL_EV_CONTENT, p->held.p, p->held.len);
        fc_str_reset(&p->held);
        emit(p, FC_TOOL_EV_CONTENT, s, body);
        p->at_start = p->after_call = false;
    }
    if (n > body) fc_str_putn(&p->held, s + body, n - body);
}

/* JSON scanning over s[i..n): each returns the end index, MORE when the
 * text stops first, BAD when it is not JSON. */
#define MORE ((size_t)-1)
#define BAD ((size_t)-2)

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i])) i++;
    return i;
}

/* *bad_at: where a BAD was found */
static size_t scan_string(const char *s, size_t n, size_t i, size_t *bad_at)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        } else if ((unsigned char)s[i] < 0x20) {
            *bad_at = i;
            return BAD;
        }
    }
    return MORE;
}

static size_t scan_value(const char *s, size_t n, size_t i, size_t *bad_at)
{
    *bad_at = i;
    if (i >= n) return MORE;
    char c = s[i];
    if (c == '"') return scan_string(s, n, i, bad_at);
    if (c == '{' || c == '[') {
        int depth = 0;
        while (i < n) {
            c = s[i];
            if (c == '"') {
                size_t e = scan_string(s, n, i, bad_at);
                if (e == MORE || e == BAD) return e;
                i = e;
                continue;
            }
            if (c == '{' || c == '[') {
                if (++depth > 512) {
                    *bad_at = i;
                    return BAD;
                }
            } else if (c == '}' || c == ']') {
                if (--depth == 0) return i + 1;
            }
            i++;
        }
        return MORE;
    }
    size_t a = i;
    while (i < n && (strchr("+-.eE", s[i]) || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z'))) i++;
    if (i == n) return MORE;
    *bad_at = i;
    return i > a ? i : BAD;
}

typedef struct pcall {
    size_t end;               /* DONE: after the '}' */
    size_t name_a, name_b;    /* the name's JSON string */
    size_t args_a, args_b;    /* the arguments value (args_b: so far) */
    bool has_name, has_args, args_done;
} pcall;

/* One call object at s[0..n): 1 done, 0 more needed, -1 not a call (*bad_at). */
static int parse_call(const char *s, size_t n, pcall *c, size_t *bad_at)
{
    memset(c, 0, sizeof *c);
    size_t i = skip_ws(s, n, 0);
#define NEED(x)                                                                                                        \
    do {                                                                                                               \
        if ((x) >= n) return 0;                                                                                        \
    } while (0)
#define FAIL(x)                                                                                                        \
    do {                                                                                                               \
        *bad_at = (x);                                                                                                 \
        return -1;                                                                                                     \
    } while (0)
    NEED(i);
    if (s[i] != '{') FAIL(i);
    i++;
    for (;;) {
        i = skip_ws(s, n, i);
        NEED(i);
        if (s[i] == '}') {
            c->end = i + 1;
            return 1;
        }
        if (s[i] != '"') FAIL(i);
        size_t where = i;
        size_t ka = i, kb = scan_string(s, n, i, &where);
        if (kb == MORE) return 0;
        if (kb == BAD) FAIL(i);
        i = skip_ws(s, n, kb);
        NEED(i);
        if (s[i] != ':') FAIL(i);
        i = skip_ws(s, n, i + 1);
        NEED(i);
        size_t va = i, vb = scan_value(s, n, i, &where);
        size_t klen = kb - ka;
        /* a repeated key: the first counts (a stream has acted on it) */
        bool is_name = !c->has_name && klen == 6 && !memcmp(s + ka, "\"name\"", 6);
        bool is_args = !c->has_args && ((klen == 11 && !memcmp(s + ka, "\"arguments\"", 11)) ||
                       (klen == 12 && !memcmp(s + ka, "\"parameters\"", 12)));
        /* decided from the value's first byte, so a whole text and the same
         * text in pieces agree (a scan of the rest may still need more) */
        if (is_name && s[va] != '"') FAIL(va);
        if (vb == BAD) {
            /* what a stream sent of these arguments: the bytes before the fault */
            if (is_args) c->has_args = true, c->args_a = va, c->args_b = where;
            FAIL(where);
        }
        if (is_name && vb != MORE) c->has_name = true, c->name_a = va, c->name_b = vb;
        if (is_args) {
            c->has_args = true;
            c->args_a = va;
            c->args_b = vb == MORE ? n : vb;
            c->args_done = vb != MORE;
        }
        if (vb == MORE) return 0;
        i = skip_ws(s, n, vb);
        NEED(i);
        if (s[i] == ',') i++;
        else if (s[i] != '}') FAIL(i);
    }
#undef NEED
#undef FAIL
}

/* Whether s (at a '{' or '[') opens a bare call: 1 yes, 0 maybe, -1 no. */
static int bare_call(const char *s, size_t n, bool *list)
{
    size_t i = 0;
    *list = s[0] == '[';
    if (*list) {
        i = skip_ws(s, n, 1);
        if (i >= n) return 0;
        if (s[i] != '{') return -1;
    }
    i = skip_ws(s, n, i + 1);
    static const char key[] = "\"name\"";
    for (size_t k = 0; k < sizeof key - 1; k++, i++) {
        if (i >= n) return 0;
        if (s[i] != key[k]) return -1;
    }
    return 1;
}

/* The longest end of s[0..n) that begins a marker. */
static size_t marker_prefix(const char *s, size_t n)
{
    size_t best = 0;
    for (size_t m = 0; m < FC_ARRAY_LEN(MARKERS); m++) {
        size_t ml = strlen(MARKERS[m]);
        for (size_t k = ml - 1; k > best; k--)
            if (k <= n && !memcmp(s + n - k, MARKERS[m], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* The whitespace held before the marker stays held: dropped when the call
 * starts (emit_start), given back with the text if it was no call. */
static void enter_call(fc_tool_parser *p, size_t marker_at, size_t call_at, int wrap)
{
    p->bare = false;
    p->mode = M_CALL;
    p->wrap = wrap;
    p->marker_at = marker_at;
    p->call_at = call_at;
    p->started = false;
}

/* Gives the call's text back as content (it was not a call after all). */
static void give_back(fc_tool_parser *p, size_t to)
{
    put_content(p, p->buf.p + p->marker_at, to - p->marker_at);
    p->pos = to;
    p->mode = M_TEXT;
    p->at_start = false;
}

static void end_call(fc_tool_parser *p)
{
    p->n_calls++;
    p->started = false;
    p->mode = M_CLOSE;
}

/* Emits the arguments of call c (raw so far; all of them when done). */
static void send_args(fc_tool_parser *p, const pcall *c, bool done)
{
    const char *s = p->buf.p + p->call_at;
    if (!c->has_args) {
        if (done) emit(p, FC_TOOL_EV_ARGS, "{}", 2);
        return;
    }
    if (s[c->args_a] == '{' || s[c->args_a] == '[') {
        size_t to = c->args_b - c->args_a;
        if (to > p->args_sent) emit(p, FC_TOOL_EV_ARGS, s + c->args_a + p->args_sent, to - p->args_sent);
        p->args_sent = to;
        return;
    }
    if (!c->args_done || !done) return;
    if (s[c->args_a] == '"') { /* arguments given as a JSON string */
        cJSON *v = cJSON_ParseWithLength(s + c->args_a, c->args_b - c->args_a);
        if (cJSON_IsString(v)) emit(p, FC_TOOL_EV_ARGS, v->valuestring, strlen(v->valuestring));
        cJSON_Delete(v);
    } else {
        emit(p, FC_TOOL_EV_ARGS, s + c->args_a, c->args_b - c->args_a);
    }
}

/* The call's name is known: START, or (bare JSON naming no known
 * function) the text is given back as content up to the name. */
static bool begin_call(fc_tool_parser *p, const pcall *c)
{
    cJSON *name = cJSON_ParseWithLength(p->buf.p + p->call_at + c->name_a, c->name_b - c->name_a);
    const char *nm = cJSON_IsString(name) ? name->valuestring : "";
    bool known = !p->bare || !p->names;
    const cJSON *k;
    cJSON_ArrayForEach(k, p->names) known = known || !strcmp(k->valuestring, nm);
    if (known) emit_start(p, nm);
    else give_back(p, p->call_at + c->name_b);
    cJSON_Delete(name);
    return known;
}

/* One step; false when it needs more text. */
static bool step(fc_tool_parser *p)
{
    const char *buf = p->buf.p ? p->buf.p : "";
    size_t end = p->buf.len;
    if (p->mode == M_TEXT) {
        if (p->pos >= end) return false;
        if (p->at_start) {
            size_t i = p->pos;
            while (i < end && is_ws(buf[i])) i++;
            if (i > p->pos && !p->after_call) fc_str_putn(&p->held, buf + p->pos, i - p->pos);
            p->pos = i;
            if (i >= end) return false;
            if (buf[i] == '{' || buf[i] == '[') {
                bool list;
                int b = bare_call(buf + i, end - i, &list);
                if (b == 0 && !p->finishing) return false;
                if (b == 1) {
                    size_t at = list ? skip_ws(buf, end, i + 1) : i;
                    enter_call(p, i, at, list ? W_LIST : W_BARE);
                    p->bare = true;
                    return true;
                }
            }
            p->at_start = false;
        }
        const char *s = buf + p->pos;
        size_t n = end - p->pos, best = n, which = 0;
        for (size_t m = 0; m < FC_ARRAY_LEN(MARKERS); m++) {
            const char *f = memmem(s, n, MARKERS[m], strlen(MARKERS[m]));
            if (f && (size_t)(f - s) < best) best = (size_t)(f - s), which = m;
        }
        if (best < n) {
            put_content(p, s, best);
            size_t at = p->pos + best, after = at + strlen(MARKERS[which]);
            if (which == 1) { /* [TOOL_CALLS] [ ... ] */
                size_t i = skip_ws(buf, end, after);
                if (i >= end && !p->finishing) {
                    p->pos = at; /* wait for what follows */
                    return false;
                }
                if (i < end && buf[i] == '[') enter_call(p, at, skip_ws(buf, end, i + 1), W_LIST);
                else enter_call(p, at, i, W_BARE);
            } else {
                enter_call(p, at, after, which == 0 ? W_HERMES : W_BARE);
            }
            p->pos = p->call_at;
            return true;
        }
        size_t hold = p->finishing ? 0 : marker_prefix(s, n);
        put_content(p, s, n - hold);
        p->pos += n - hold;
        return false;
    }
    if (p->mode == M_CALL) {
        pcall c;
        size_t bad = 0;
        int rc = parse_call(buf + p->call_at, end - p->call_at, &c, &bad);
        if (rc < 0 || (rc == 1 && !c.has_name)) {
            if (!p->started && c.has_name && !begin_call(p, &c)) return true; /* as a stream would have */
            if (p->started) { /* it was a call; what follows is content */
                send_args(p, &c, true);
                end_call(p);
                p->mode = M_TEXT;
                p->at_start = false;
                p->pos = p->call_at + (rc < 0 ? bad : c.end);
            } else {
                give_back(p, p->call_at + (rc < 0 ? bad : c.end));
            }
            return true;
        }
        if (c.has_name && !p->started && !begin_call(p, &c)) return true;
        if (p->started) send_args(p, &c, rc == 1);
        if (rc == 1) {
            end_call(p);
            p->pos = p->call_at + c.end;
            return true;
        }
        if (p->finishing) { /* cut off: a begun call stays, the rest was text */
            if (p->started) {
                end_call(p);
                p->mode = M_TEXT;
                p->pos = end;
            } else {
                give_back(p, end);
            }
            return true;
        }
        return false;
    }
    /* M_CLOSE: the wrapper's end */
    size_t i = skip_ws(buf, end, p->pos);
    p->mode = M_TEXT;
    p->at_start = p->after_call = true;
    if (p->wrap == W_HERMES) {
        static const char close[] = "</tool_call>";
        size_t k = 0;
        while (k < sizeof close - 1 && i + k < end && buf[i + k] == close[k]) k++;
        if (k == sizeof close - 1) {
            p->pos = i + k;
            return true;
        }
        if (i + k == end && !p->finishing) {
            p->mode = M_CLOSE;
            return false;
        }
    } else if (p->wrap == W_LIST) {
        if (i >= end && !p->finishing) {
            p->mode = M_CLOSE;
            return false;
        }
        if (i < end && buf[i] == ',') {
            enter_call(p, i, skip_ws(buf, end, i + 1), W_LIST);
            p->pos = p->call_at;
            return true;
        }
        if (i < end && buf[i] == ']') {
            p->pos = i + 1;
            return true;
        }
    } else {
        if (i >= end && !p->finishing) { /* a ';' may still follow the whitespace */
            p->mode = M_CLOSE;
            return false;
        }
        if (i < end && buf[i] == ';') i++;
    }
    p->pos = i;
    return true;
}

static void run(fc_tool_parser *p)
{
    while (step(p)) {}
}

fc_tool_parser *fc_tool_parser_new(fc_tool_emit_fn emit_fn, void *user)
{
    fc_tool_parser *p = fc_xcalloc(1, sizeof *p);
    p->emit = emit_fn;
    p->user = user;
    fc_str_init(&p->buf, 0);
    fc_str_init(&p->held, 0);
    p->at_start = true;
    return p;
}

void fc_tool_parser_set_tools(fc_tool_parser *p, const cJSON *tools)
{
    cJSON_Delete(p->names);
    p->names = NULL;
    if (!cJSON_IsArray(tools)) return;
    p->names = cJSON_CreateArray();
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *n = get(get(t, "function"), "name");
        if (cJSON_IsString(n)) cJSON_AddItemToArray(p->names, cJSON_CreateString(n->valuestring));
    }
}

void fc_tool_parser_free(fc_tool_parser *p)
{
    if (!p) return;
    cJSON_Delete(p->names);
    fc_str_free(&p->buf);
    fc_str_free(&p->held);
    free(p);
}

void fc_tool_parser_feed(fc_tool_parser *p, const char *text, size_t len)
{
    if (p->finishing || !len) return;
    fc_str_putn(&p->buf, text, len);
    run(p);
}

void fc_tool_parser_finish(fc_tool_parser *p)
{
    if (p->finishing) return;
    p->finishing = true;
    run(p);
    if (p->mode == M_TEXT && p->pos < p->buf.len) {
        put_content(p, p->buf.p + p->pos, p->buf.len - p->pos);
        p->pos = p->buf.len;
    }
    if (p->held.len && p->n_calls == 0) emit(p, FC_TOOL_EV_CONTENT, p->held.p, p->held.len);
    fc_str_reset(&p->held);
}

int fc_tool_parser_n_calls(const fc_tool_parser *p) { return p->n_calls + (p->started ? 1 : 0); }

typedef struct collect {
    fc_str content;
    cJSON *calls;
    fc_str *args; /* one per call */
    int n;
} collect;

static void collect_ev(const fc_tool_ev *ev, void *user)
{
    collect *c = user;
    if (ev->kind == FC_TOOL_EV_CONTENT) {
        fc_str_putn(&c->content, ev->text, ev->len);
    } else if (ev->kind == FC_TOOL_EV_START) {
        cJSON *call = cJSON_CreateObject();
        cJSON_AddStringToObject(call, "id", ev->id);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON *fn = cJSON_AddObjectToObject(call, "function");
        cJSON_AddStringToObject(fn, "name", ev->name);
        cJSON_AddItemToArray(c->calls, call);
        c->args = fc_xrealloc(c->args, sizeof(fc_str) * (size_t)(c->n + 1));
        fc_str_init(&c->args[c->n++], 0);
    } else if (ev->index < c->n) {
        fc_str_putn(&c->args[ev->index], ev->text, ev->len);
    }
}

cJSON *fc_tool_parse_text(const char *text, size_t len, const cJSON *tools, char **content)
{
    collect c = {0};
    fc_str_init(&c.content, 0);
    c.calls = cJSON_CreateArray();
    fc_tool_parser *p = fc_tool_parser_new(collect_ev, &c);
    fc_tool_parser_set_tools(p, tools);
    fc_tool_parser_feed(p, text, len);
    fc_tool_parser_finish(p);
    fc_tool_parser_free(p);
    int i = 0;
    cJSON *call;
    cJSON_ArrayForEach(call, c.calls) {
        cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(call, "function"), "arguments",
                                c.args[i].p ? c.args[i].p : "");
        fc_str_free(&c.args[i++]);
    }
    free(c.args);
    bool blank = true;
    for (size_t k = 0; k < c.content.len && blank; k++) blank = is_ws(c.content.p[k]);
    if (content) *content = c.content.len && !(blank && c.n) ? fc_str_take(&c.content) : NULL;
    fc_str_free(&c.content);
    if (c.n == 0) {
        cJSON_Delete(c.calls);
        return NULL;
    }
    return c.calls;
}

void fc_tool_call_id(char *out)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[24];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        static unsigned long ctr;
        for (size_t i = 0; i < sizeof r; i++) r[i] = (unsigned char)((unsigned long)rand() ^ (ctr++ * 131u));
    }
    memcpy(out, "call_", 5);
    for (size_t i = 0; i < sizeof r; i++) out[5 + i] = alpha[r[i] % (sizeof alpha - 1)];
    out[5 + sizeof r] = 0;
}
