/*
 * responses.c: OpenAI's Responses API over this server's chat route (see
 * responses.h). Parsing and translation are pure (fc_responses_parse,
 * fc_responses_chat_body); the handlers relay a streamed chat completion and
 * turn its chunks (text deltas and tool_calls deltas) into output items
 * (messages, function calls) of a response object or the Responses' typed
 * events. Not done here: tools other than functions, background mode.
 */
#include "serve/responses.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "base/fc_base.h"
#include "base/json.h"
#include "base/str.h"
#include "net/http.h"
#include "net/nulstream.h"
#include "serve/loopback.h"
#include "serve/openai_api.h"
#include "serve/tool_calls.h"

#define STORE_MAX_DEFAULT 1000
#define STORE_BYTES_MAX ((size_t)256 << 20)
#define MAX_METADATA 16
#define ROUTE_PREFIX "/v1/responses/"

typedef struct stored {
    char *id;
    char *response;   /* the response object (JSON) */
    char *history;    /* the conversation so far, its answer included: JSON array of chat messages */
    size_t bytes;
} stored;

struct fc_responses {
    const struct fc_openai_api *api;
    char *host;       /* loopback host for URLs */
    pthread_mutex_t mu;
    stored *items;    /* oldest first */
    int n, cap, max;
    size_t bytes;
};

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* ---- errors ---- */

/* OpenAI's error body: {"error":{"message","type","param","code"}}. */
static char *error_body(const char *type, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static char *error_body(const char *type, const char *param, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fc_str m;
    fc_str_init(&m, 0);
    fc_str_vprintf(&m, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", fc_str_cstr(&m));
    cJSON_AddStringToObject(e, "type", type);
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    fc_str_free(&m);
    return s;
}

#define BAD(err, param, code, ...) (*(err) = error_body("invalid_request_error", param, code, __VA_ARGS__), 400)

/* ---- parsing ---- */

static const char *ROLES[] = {"user", "assistant", "system", "developer"};

/* Whether a chat message array holds an assistant tool call with this id. */
static bool has_call(const cJSON *msgs, const char *call_id)
{
    const cJSON *m, *c;
    cJSON_ArrayForEach(m, msgs) cJSON_ArrayForEach(c, get(m, "tool_calls")) {
        const cJSON *id = get(c, "id");
        if (cJSON_IsString(id) && !strcmp(id->valuestring, call_id)) return true;
    }
    return false;
}

/* A function_call item: one more call of the assistant message that ends
 * msgs (made when the last message is no assistant's), as the chat route's
 * tool_calls entry; 0 or 400. */
static int read_call(const cJSON *it, const char *param, cJSON *msgs, char **err)
{
    const char *keys[] = {"call_id", "name", "arguments"};
    for (size_t k = 0; k < 3; k++) {
        const cJSON *x = get(it, keys[k]);
        if (!x || cJSON_IsNull(x))
            return BAD(err, param, "missing_required_parameter", "Missing required parameter: '%s.%s'.", param, keys[k]);
        if (!cJSON_IsString(x))
            return BAD(err, param, "invalid_type", "Invalid type for '%s.%s': expected a string.", param, keys[k]);
    }
    cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const cJSON *role = get(last, "role");
    if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant")) {
        last = cJSON_CreateObject();
        cJSON_AddStringToObject(last, "role", "assistant");
        cJSON_AddNullToObject(last, "content");
        cJSON_AddItemToArray(msgs, last);
    }
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(last, "tool_calls");
    if (!calls) calls = cJSON_AddArrayToObject(last, "tool_calls");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", get(it, "call_id")->valuestring);
    cJSON_AddStringToObject(c, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject(c, "function");
    cJSON_AddStringToObject(fn, "name", get(it, "name")->valuestring);
    cJSON_AddStringToObject(fn, "arguments", get(it, "arguments")->valuestring);
    cJSON_AddItemToArray(calls, c);
    return 0;
}

/* A function_call_output item: a tool message answering call_id. A call_id
 * that no earlier input item made is kept in pending ([call_id, param]) for
 * the stored conversation of previous_response_id to answer; 0 or 400. */
static int read_call_output(const cJSON *it, const char *param, cJSON *msgs, cJSON *pending, char **err)
{
    const cJSON *id = get(it, "call_id"), *out = get(it, "output");
    if (!id || cJSON_IsNull(id))
        return BAD(err, param, "missing_required_parameter", "Missing required parameter: '%s.call_id'.", param);
    if (!cJSON_IsString(id)) return BAD(err, param, "invalid_type", "Invalid type for '%s.call_id': expected a string.", param);
    fc_str text;
    fc_str_init(&text, 0);
    if (cJSON_IsString(out)) {
        fc_str_puts(&text, out->valuestring);
    } else if (cJSON_IsArray(out)) {
        const cJSON *p;
        cJSON_ArrayForEach(p, out) {
            const cJSON *pt = get(p, "type"), *tx = get(p, "text");
            if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "input_text") || !cJSON_IsString(tx)) {
                fc_str_free(&text);
                return BAD(err, param, "unsupported_value",
                           "Invalid value for '%s.output': only text ('input_text' parts) is supported.", param);
            }
            fc_str_puts(&text, tx->valuestring);
        }
    } else {
        return BAD(err, param, out ? "invalid_type" : "missing_required_parameter",
                   "%s '%s.output': expected a string or an array of input_text parts.",
                   out ? "Invalid type for" : "Missing required parameter:", param);
    }
    if (!has_call(msgs, id->valuestring)) {
        cJSON *pe = cJSON_CreateArray();
        cJSON_AddItemToArray(pe, cJSON_CreateString(id->valuestring));
        cJSON_AddItemToArray(pe, cJSON_CreateString(param));
        cJSON_AddItemToArray(pending, pe);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "tool");
    cJSON_AddStringToObject(m, "tool_call_id", id->valuestring);
    cJSON_AddStringToObject(m, "content", fc_str_cstr(&text));
    cJSON_AddItemToArray(msgs, m);
    fc_str_free(&text);
    return 0;
}

/* The 400 for a function_call_output whose call_id no call made. */
static int unknown_call(char **err, const char *param, const char *call_id)
{
    return BAD(err, param, "invalid_value",
               "No tool call found for function call output with call_id %.64s (it must answer a function_call item "
               "of the input or of the previous response).",
               call_id);
}

/* One item of `input` appended to msgs as chat messages; 0 or 400. */
static int read_item(const cJSON *it, int i, cJSON *msgs, cJSON *pending, char **err)
{
    char param[48];
    snprintf(param, sizeof param, "input[%d]", i);
    if (!cJSON_IsObject(it)) return BAD(err, param, "invalid_type", "Invalid type for '%s': expected an object.", param);
    const cJSON *type = get(it, "type");
    if (type && !cJSON_IsNull(type)) {
        if (!cJSON_IsString(type)) return BAD(err, param, "invalid_type", "Invalid type for '%s.type'.", param);
        const char *t = type->valuestring;
        if (!strcmp(t, "function_call")) return read_call(it, param, msgs, err);
        if (!strcmp(t, "function_call_output")) return read_call_output(it, param, msgs, pending, err);
        if (strcmp(t, "message"))
            return BAD(err, param, "unsupported_value",
                       "Invalid value for '%s.type': '%s' is not supported; only 'message', 'function_call' and "
                       "'function_call_output' items are.",
                       param, t);
    }
    const cJSON *role = get(it, "role");
    if (!cJSON_IsString(role)) return BAD(err, param, "missing_required_parameter", "Missing required parameter: '%s.role'.", param);
    bool known = false;
    for (size_t k = 0; k < sizeof ROLES / sizeof *ROLES; k++) known |= !strcmp(role->valuestring, ROLES[k]);
    if (!known)
        return BAD(err, param, "invalid_value",
                   "Invalid value for '%s.role': expected one of 'user', 'assistant', 'system' or 'developer'.", param);
    const cJSON *content = get(it, "content");
    fc_str text;
    fc_str_init(&text, 0);
    if (cJSON_IsString(content)) {
        fc_str_puts(&text, content->valuestring);
    } else if (cJSON_IsArray(content)) {
        const cJSON *p;
        int j = 0;
        cJSON_ArrayForEach(p, content) {
            const cJSON *pt = get(p, "type"), *tx = get(p, "text");
            if (!cJSON_IsString(pt)) {
                fc_str_free(&text);
                return BAD(err, param, "invalid_type", "Invalid type for '%s.content[%d].type': expected a string.", param, j);
            }
            const char *t = pt->valuestring;
            if (!strcmp(t, "input_text") || !strcmp(t, "output_text") || !strcmp(t, "text")) {
                if (!cJSON_IsString(tx)) {
                    fc_str_free(&text);
                    return BAD(err, param, "missing_required_parameter",
                               "Missing required parameter: '%s.content[%d].text'.", param, j);
                }
                fc_str_puts(&text, tx->valuestring);
            } else if (!strcmp(t, "refusal")) {
                const cJSON *rf = get(p, "refusal");
                if (cJSON_IsString(rf)) fc_str_puts(&text, rf->valuestring);
            } else {
                fc_str_free(&text);
                return BAD(err, param, "unsupported_value",
                           "Invalid value for '%s.content[%d].type': '%s' is not supported: the served models read "
                           "text only.",
                           param, j, t);
            }
            j++;
        }
    } else {
        fc_str_free(&text);
        return BAD(err, param, "invalid_type",
                   "Invalid type for '%s.content': expected a string or an array of content parts.", param);
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", strcmp(role->valuestring, "developer") ? role->valuestring : "system");
    cJSON_AddStringToObject(m, "content", fc_str_cstr(&text));
    cJSON_AddItemToArray(msgs, m);
    fc_str_free(&text);
    return 0;
}

/* A number field in [lo, hi] copied to both chat (as chat_key) and echo;
 * absent or null: dflt is echoed (and sent when send_default). */
static int num_field(const cJSON *req, const char *k, double lo, double hi, bool integer, double dflt, bool has_dflt,
                     const char *chat_key, cJSON *chat, cJSON *echo, char **err)
{
    const cJSON *x = get(req, k);
    if (!x || cJSON_IsNull(x)) {
        if (has_dflt) {
            cJSON_AddNumberToObject(echo, k, dflt);
            cJSON_AddNumberToObject(chat, chat_key, dflt);
        } else {
            cJSON_AddNullToObject(echo, k);
        }
        return 0;
    }
    if (!cJSON_IsNumber(x) || (integer && x->valuedouble != floor(x->valuedouble)))
        return BAD(err, k, "invalid_type", "Invalid type for '%s': expected %s.", k, integer ? "an integer" : "a number");
    double v = x->valuedouble;
    if (!(v >= lo)) return BAD(err, k, integer ? "integer_below_min_value" : "decimal_below_min_value",
                               "Invalid '%s': %s below minimum value. Expected a value >= %g, but got %g instead.", k,
                               integer ? "integer" : "decimal", lo, v);
    if (!(v <= hi)) return BAD(err, k, integer ? "integer_above_max_value" : "decimal_above_max_value",
                               "Invalid '%s': %s above maximum value. Expected a value <= %g, but got %g instead.", k,
                               integer ? "integer" : "decimal", hi, v);
    if (integer) v = (double)fc_json_long(v);
    cJSON_AddNumberToObject(echo, k, v);
    cJSON_AddNumberToObject(chat, chat_key, v);
    return 0;
}

/* text.format -> the chat route's response_format; 0 or 400. */
static int read_text(const cJSON *req, cJSON *chat, cJSON *echo, char **err)
{
    const cJSON *text = get(req, "text");
    if (!text || cJSON_IsNull(text)) {
        cJSON *t = cJSON_AddObjectToObject(echo, "text");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(t, "format"), "type", "text");
        return 0;
    }
    if (!cJSON_IsObject(text)) return BAD(err, "text", "invalid_type", "Invalid type for 'text': expected an object.");
    const cJSON *f = get(text, "format");
    const cJSON *ft = get(f, "type");
    if (f && !cJSON_IsNull(f) && !cJSON_IsString(ft))
        return BAD(err, "text.format.type", "missing_required_parameter", "Missing required parameter: 'text.format.type'.");
    if (cJSON_IsString(ft) && !strcmp(ft->valuestring, "json_object")) {
        cJSON_AddStringToObject(cJSON_AddObjectToObject(chat, "response_format"), "type", "json_object");
    } else if (cJSON_IsString(ft) && !strcmp(ft->valuestring, "json_schema")) {
        const cJSON *name = get(f, "name"), *schema = get(f, "schema");
        if (!cJSON_IsString(name))
            return BAD(err, "text.format.name", "missing_required_parameter", "Missing required parameter: 'text.format.name'.");
        if (!cJSON_IsObject(schema))
            return BAD(err, "text.format.schema", "missing_required_parameter", "Missing required parameter: 'text.format.schema'.");
        cJSON *rf = cJSON_AddObjectToObject(chat, "response_format");
        cJSON_AddStringToObject(rf, "type", "json_schema");
        cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
        cJSON_AddStringToObject(js, "name", name->valuestring);
        cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(schema, true));
        const cJSON *strict = get(f, "strict"), *desc = get(f, "description");
        if (cJSON_IsBool(strict)) cJSON_AddBoolToObject(js, "strict", cJSON_IsTrue(strict));
        if (cJSON_IsString(desc)) cJSON_AddStringToObject(js, "description", desc->valuestring);
    } else if (cJSON_IsString(ft) && strcmp(ft->valuestring, "text")) {
        return BAD(err, "text.format.type", "invalid_value",
                   "Invalid value for 'text.format.type': expected one of 'text', 'json_object' or 'json_schema'.");
    }
    cJSON *t = cJSON_AddObjectToObject(echo, "text");
    if (f && !cJSON_IsNull(f)) cJSON_AddItemToObject(t, "format", cJSON_Duplicate(f, true));
    else cJSON_AddStringToObject(cJSON_AddObjectToObject(t, "format"), "type", "text");
    return 0;
}

/* The chat route's names of tool fields in the Responses' flat shape:
 * "tools[0].function.name" -> "tools[0].name". */
static void flat_names(char *s)
{
    char *p;
    while ((p = strstr(s, ".function."))) memmove(p, p + 9, strlen(p + 9) + 1);
}

/* tools, tool_choice, parallel_tool_calls: function tools in the Responses'
 * flat shape, sent to the chat route in its nested one, checked by the
 * chat route's own rules (tool_calls.h) here so the errors name the
 * Responses' fields; 0 or 400. */
static int read_tools(const cJSON *req, cJSON *chat, cJSON *echo, char **err)
{
    const cJSON *tools = get(req, "tools"), *tc = get(req, "tool_choice"), *ptc = get(req, "parallel_tool_calls");
    if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools))
        return BAD(err, "tools", "invalid_type", "Invalid type for 'tools': expected an array.");
    if (ptc && !cJSON_IsNull(ptc) && !cJSON_IsBool(ptc))
        return BAD(err, "parallel_tool_calls", "invalid_type", "Invalid type for 'parallel_tool_calls': expected a boolean.");
    cJSON *etools = cJSON_AddArrayToObject(echo, "tools"), *body = cJSON_CreateObject();
    cJSON *ctools = cJSON_AddArrayToObject(body, "tools");
    const cJSON *t;
    int i = 0, rc = 0;
    cJSON_ArrayForEach(t, tools) {
        char param[48];
        snprintf(param, sizeof param, "tools[%d]", i);
        const cJSON *type = get(t, "type");
        if (!cJSON_IsObject(t)) {
            rc = BAD(err, param, "invalid_type", "Invalid type for '%s': expected an object.", param);
        } else if (!cJSON_IsString(type)) {
            rc = BAD(err, param, "missing_required_parameter", "Missing required parameter: '%s.type'.", param);
        } else if (strcmp(type->valuestring, "function")) {
            rc = BAD(err, param, "unsupported_value",
                     "Invalid value for '%s.type': '%.64s' tools are not supported by this server; only 'function' "
                     "tools are.",
                     param, type->valuestring);
        }
        if (rc) break;
        cJSON *fn = cJSON_CreateObject(), *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "type", "function");
        const char *keys[] = {"name", "description", "parameters", "strict"};
        for (size_t k = 0; k < 4; k++) {
            const cJSON *x = get(t, keys[k]);
            bool absent = !x || cJSON_IsNull(x);
            /* strict defaults to true in the Responses API */
            if (absent && k == 3) cJSON_AddBoolToObject(fn, keys[k], true);
            else if (!absent) cJSON_AddItemToObject(fn, keys[k], cJSON_Duplicate(x, true));
            const cJSON *y = get(fn, keys[k]);
            cJSON_AddItemToObject(e, keys[k], y ? cJSON_Duplicate(y, true) : cJSON_CreateNull());
        }
        cJSON *ct = cJSON_CreateObject();
        cJSON_AddStringToObject(ct, "type", "function");
        cJSON_AddItemToObject(ct, "function", fn);
        cJSON_AddItemToArray(ctools, ct);
        cJSON_AddItemToArray(etools, e);
        i++;
    }
    if (!rc && tc && !cJSON_IsNull(tc)) {
        const cJSON *tt = get(tc, "type"), *name = get(tc, "name");
        if (cJSON_IsString(tc)) {
            if (i || !strcmp(tc->valuestring, "auto") || !strcmp(tc->valuestring, "none"))
                cJSON_AddStringToObject(body, "tool_choice", tc->valuestring);
            else
                rc = BAD(err, "tool_choice", "invalid_value", "Invalid value for 'tool_choice': '%.64s' needs 'tools'.",
                         tc->valuestring);
        } else if (cJSON_IsObject(tc) && cJSON_IsString(tt) && !strcmp(tt->valuestring, "function")) {
            if (!cJSON_IsString(name))
                rc = BAD(err, "tool_choice.name", "missing_required_parameter", "Missing required parameter: 'tool_choice.name'.");
            else if (!i)
                rc = BAD(err, "tool_choice", "invalid_value", "Invalid value for 'tool_choice': a function needs 'tools'.");
            else {
                cJSON *c = cJSON_AddObjectToObject(body, "tool_choice");
                cJSON_AddStringToObject(c, "type", "function");
                cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "function"), "name", name->valuestring);
            }
        } else if (cJSON_IsObject(tc)) {
            rc = BAD(err, "tool_choice", "unsupported_value",
                     "Invalid value for 'tool_choice': only 'none', 'auto', 'required' and {\"type\": \"function\", "
                     "\"name\": ...} are supported.");
        } else {
            rc = BAD(err, "tool_choice", "invalid_type", "Invalid type for 'tool_choice': expected a string or an object.");
        }
    }
    if (!rc && i) {
        fc_tool_req tr;
        char why[512] = "";
        const char *pp = NULL;
        if (fc_tool_req_parse(body, &tr, why, sizeof why, &pp) < 0) {
            char param[96];
            snprintf(param, sizeof param, "%s", pp ? pp : "tools");
            flat_names(param);
            flat_names(why);
            rc = BAD(err, param, "invalid_value", "%s", why);
        } else {
            cJSON_AddItemToObject(chat, "tools", cJSON_Duplicate(ctools, true));
            const cJSON *ctc = get(body, "tool_choice");
            if (ctc) cJSON_AddItemToObject(chat, "tool_choice", cJSON_Duplicate(ctc, true));
            if (cJSON_IsBool(ptc)) cJSON_AddBoolToObject(chat, "parallel_tool_calls", cJSON_IsTrue(ptc));
        }
    }
    cJSON_Delete(body);
    if (rc) return rc;
    cJSON_AddItemToObject(echo, "tool_choice", tc && !cJSON_IsNull(tc) ? cJSON_Duplicate(tc, true) : cJSON_CreateString("auto"));
    return 0;
}

static int parse_obj(const cJSON *req, fc_responses_req *out, cJSON *msgs, cJSON *chat, cJSON *echo, cJSON *pending,
                     char **err)
{
    const cJSON *model = get(req, "model");
    if (!model || cJSON_IsNull(model)) return BAD(err, "model", "missing_required_parameter", "Missing required parameter: 'model'.");
    if (!cJSON_IsString(model)) return BAD(err, "model", "invalid_type", "Invalid type for 'model': expected a string.");
    out->model = fc_xstrdup(model->valuestring);

    const cJSON *in = get(req, "input");
    if (cJSON_IsString(in)) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", in->valuestring);
        cJSON_AddItemToArray(msgs, m);
    } else if (cJSON_IsArray(in)) {
        const cJSON *it;
        int i = 0, rc;
        cJSON_ArrayForEach(it, in) if ((rc = read_item(it, i++, msgs, pending, err))) return rc;
    } else if (in && !cJSON_IsNull(in)) {
        return BAD(err, "input", "invalid_type", "Invalid type for 'input': expected a string or an array of input items.");
    }

    const cJSON *ins = get(req, "instructions");
    if (cJSON_IsString(ins)) out->instructions = fc_xstrdup(ins->valuestring);
    else if (ins && !cJSON_IsNull(ins)) return BAD(err, "instructions", "invalid_type", "Invalid type for 'instructions': expected a string.");

    const cJSON *prev = get(req, "previous_response_id");
    if (cJSON_IsString(prev)) out->previous_response_id = fc_xstrdup(prev->valuestring);
    else if (prev && !cJSON_IsNull(prev))
        return BAD(err, "previous_response_id", "invalid_type", "Invalid type for 'previous_response_id': expected a string.");
    if (!in || cJSON_IsNull(in)) {
        if (!out->previous_response_id) return BAD(err, "input", "missing_required_parameter", "Missing required parameter: 'input'.");
    }
    const cJSON *pe = cJSON_GetArrayItem(pending, 0);
    if (pe && !out->previous_response_id)
        return unknown_call(err, cJSON_GetArrayItem(pe, 1)->valuestring, cJSON_GetArrayItem(pe, 0)->valuestring);

    struct { const char *k; bool *v; bool dflt; } bools[] = {{"stream", &out->stream, false}, {"store", &out->store, true}};
    for (size_t i = 0; i < sizeof bools / sizeof *bools; i++) {
        const cJSON *x = get(req, bools[i].k);
        if (!x || cJSON_IsNull(x)) *bools[i].v = bools[i].dflt;
        else if (cJSON_IsBool(x)) *bools[i].v = cJSON_IsTrue(x);
        else return BAD(err, bools[i].k, "invalid_type", "Invalid type for '%s': expected a boolean.", bools[i].k);
    }
    const cJSON *bg = get(req, "background");
    if (cJSON_IsTrue(bg)) return BAD(err, "background", "unsupported_value", "Background mode is not supported by this server.");

    int rc;
    if ((rc = num_field(req, "temperature", 0, 2, false, 1.0, true, "temperature", chat, echo, err))) return rc;
    if ((rc = num_field(req, "top_p", 0, 1, false, 1.0, true, "top_p", chat, echo, err))) return rc;
    if ((rc = num_field(req, "max_output_tokens", 1, 1e9, true, 0, false, "max_tokens", chat, echo, err))) return rc;

    if ((rc = read_tools(req, chat, echo, err))) return rc;

    const cJSON *md = get(req, "metadata");
    if (md && !cJSON_IsNull(md)) {
        if (!cJSON_IsObject(md)) return BAD(err, "metadata", "invalid_type", "Invalid type for 'metadata': expected an object.");
        if (cJSON_GetArraySize(md) > MAX_METADATA)
            return BAD(err, "metadata", "object_above_max_properties",
                       "Invalid 'metadata': too many properties. Expected an object with at most %d properties.", MAX_METADATA);
        const cJSON *it;
        cJSON_ArrayForEach(it, md) if (!cJSON_IsString(it))
            return BAD(err, "metadata", "invalid_type", "Invalid type for 'metadata.%s': expected a string.", it->string);
        cJSON_AddItemToObject(echo, "metadata", cJSON_Duplicate(md, true));
    } else {
        cJSON_AddObjectToObject(echo, "metadata");
    }
    const cJSON *user = get(req, "user");
    if (cJSON_IsString(user)) {
        cJSON_AddStringToObject(echo, "user", user->valuestring);
        cJSON_AddStringToObject(chat, "user", user->valuestring);
    } else if (user && !cJSON_IsNull(user)) {
        return BAD(err, "user", "invalid_type", "Invalid type for 'user': expected a string.");
    } else {
        cJSON_AddNullToObject(echo, "user");
    }
    const cJSON *tr = get(req, "truncation");
    if (tr && !cJSON_IsNull(tr) &&
        !(cJSON_IsString(tr) && (!strcmp(tr->valuestring, "disabled") || !strcmp(tr->valuestring, "auto"))))
        return BAD(err, "truncation", "invalid_value", "Invalid value for 'truncation': expected 'auto' or 'disabled'.");
    cJSON_AddStringToObject(echo, "truncation", cJSON_IsString(tr) ? tr->valuestring : "disabled");
    const cJSON *ptc = get(req, "parallel_tool_calls");
    cJSON_AddBoolToObject(echo, "parallel_tool_calls", !cJSON_IsFalse(ptc));
    return read_text(req, chat, echo, err);
}

int fc_responses_parse(const char *body, size_t len, fc_responses_req *out, char **err)
{
    memset(out, 0, sizeof *out);
    *err = NULL;
    cJSON *req = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return BAD(err, NULL, NULL,
                   "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
                   "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)");
    }
    cJSON *msgs = cJSON_CreateArray(), *chat = cJSON_CreateObject(), *echo = cJSON_CreateObject(),
          *pending = cJSON_CreateArray();
    int rc = parse_obj(req, out, msgs, chat, echo, pending, err);
    if (rc == 0) {
        out->input = cJSON_PrintUnformatted(msgs);
        out->chat = cJSON_PrintUnformatted(chat);
        out->echo = cJSON_PrintUnformatted(echo);
        out->pending_calls = cJSON_PrintUnformatted(pending);
        if (!out->input || !out->chat || !out->echo || !out->pending_calls)
            rc = BAD(err, NULL, NULL, "The request is too large.");
    }
    cJSON_Delete(pending);
    cJSON_Delete(msgs);
    cJSON_Delete(chat);
    cJSON_Delete(echo);
    cJSON_Delete(req);
    if (rc) fc_responses_req_free(out);
    return rc ? rc : 200;
}

void fc_responses_req_free(fc_responses_req *r)
{
    if (!r) return;
    free(r->model);
    free(r->instructions);
    free(r->previous_response_id);
    free(r->input);
    free(r->chat);
    free(r->echo);
    free(r->pending_calls);
    memset(r, 0, sizeof *r);
}

/* The conversation sent to the chat route, without the instructions:
 * history then input (a new cJSON array). */
static cJSON *conversation(const fc_responses_req *r, const char *history)
{
    cJSON *all = history ? cJSON_Parse(history) : NULL;
    if (!cJSON_IsArray(all)) {
        cJSON_Delete(all);
        all = cJSON_CreateArray();
    }
    cJSON *in = cJSON_Parse(r->input ? r->input : "[]"), *it;
    while (cJSON_IsArray(in) && (it = cJSON_DetachItemFromArray(in, 0))) cJSON_AddItemToArray(all, it);
    cJSON_Delete(in);
    return all;
}

char *fc_responses_chat_body(const fc_responses_req *r, const char *history)
{
    cJSON *o = cJSON_Parse(r->chat ? r->chat : "{}");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    cJSON_AddStringToObject(o, "model", r->model ? r->model : "");
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
    if (r->instructions) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "system");
        cJSON_AddStringToObject(m, "content", r->instructions);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON *conv = conversation(r, history), *it;
    while ((it = cJSON_DetachItemFromArray(conv, 0))) cJSON_AddItemToArray(msgs, it);
    cJSON_Delete(conv);
    cJSON_AddBoolToObject(o, "stream", true);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(o, "stream_options"), "include_usage", true);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s ? s : fc_xstrdup("{}");
}

/* ---- the store ---- */

static void stored_free(stored *s)
{
    free(s->id);
    free(s->response);
    free(s->history);
}

static void store_put(fc_responses *rs, const char *id, char *response, char *history)
{
    size_t bytes = strlen(response) + strlen(history) + strlen(id);
    pthread_mutex_lock(&rs->mu);
    while (rs->n > 0 && (rs->n >= rs->max || rs->bytes + bytes > STORE_BYTES_MAX)) {
        rs->bytes -= rs->items[0].bytes;
        stored_free(&rs->items[0]);
        memmove(rs->items, rs->items + 1, sizeof *rs->items * (size_t)(rs->n - 1));
        rs->n--;
    }
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 64;
        rs->items = fc_xrealloc(rs->items, sizeof *rs->items * (size_t)rs->cap);
    }
    rs->items[rs->n++] = (stored){fc_xstrdup(id), response, history, bytes};
    rs->bytes += bytes;
    pthread_mutex_unlock(&rs->mu);
}

/* A copy of the stored field (0: response, 1: history) of id; NULL when unknown. */
static char *store_get(fc_responses *rs, const char *id, int which)
{
    char *s = NULL;
    pthread_mutex_lock(&rs->mu);
    for (int i = rs->n - 1; i >= 0 && !s; i--)
        if (!strcmp(rs->items[i].id, id)) s = fc_xstrdup(which ? rs->items[i].history : rs->items[i].response);
    pthread_mutex_unlock(&rs->mu);
    return s;
}

static bool store_delete(fc_responses *rs, const char *id)
{
    bool found = false;
    pthread_mutex_lock(&rs->mu);
    for (int i = 0; i < rs->n && !found; i++)
        if (!strcmp(rs->items[i].id, id)) {
            rs->bytes -= rs->items[i].bytes;
            stored_free(&rs->items[i]);
            memmove(rs->items + i, rs->items + i + 1, sizeof *rs->items * (size_t)(rs->n - i - 1));
            rs->n--;
            found = true;
        }
    pthread_mutex_unlock(&rs->mu);
    return found;
}

/* ---- the response object ---- */

static void new_id(char *out /* >= 56 bytes */, const char *prefix)
{
    unsigned char b[24];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)rand();
    int n = snprintf(out, 8, "%s", prefix);
    for (size_t i = 0; i < sizeof b; i++) n += snprintf(out + n, 3, "%02x", b[i]);
}

/* One output item: the assistant's text (a message) or a function call. */
typedef struct out_item {
    bool call;
    char id[64];     /* msg_... / fc_... */
    char *call_id;   /* call: the chat route's tool call id */
    char *name;      /* call: the function */
    int chat_index;  /* call: its index in the chat route's tool_calls deltas */
    fc_str text;     /* message: its text; call: its arguments */
} out_item;

typedef struct relay {
    fc_responses *rs;
    const fc_http_request *hr;
    fc_http_reply *reply;
    const fc_responses_req *q;
    char id[64];
    long created_at;
    fc_http_stream *st;        /* the client's SSE stream, once opened */
    fc_loopback lb;            /* the call to the chat route (client_gone, raw body) */
    fc_str text;               /* the answer's text so far (all message items) */
    out_item *items;           /* the output items so far, in order */
    int n_items, cap_items;
    int open;                  /* the item being written (its events not closed), -1: none */
    char *error;               /* an error event from the chat route */
    char finish[16];
    long in_tok, out_tok;
    bool has_usage;
    long seq;                  /* the next sequence_number */
} relay;

static void relay_items_free(relay *r)
{
    for (int i = 0; i < r->n_items; i++) {
        free(r->items[i].call_id);
        free(r->items[i].name);
        fc_str_free(&r->items[i].text);
    }
    free(r->items);
}

static cJSON *output_text_part(const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "output_text");
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddArrayToObject(p, "annotations");
    cJSON_AddArrayToObject(p, "logprobs");
    return p;
}

/* Item k as OpenAI shows it; done: with its text or arguments and final
 * status (the last item of an answer cut by the limit is incomplete). */
static cJSON *item_json(const relay *r, int k, bool done)
{
    const out_item *it = &r->items[k];
    const char *status = !done ? "in_progress"
                         : k == r->n_items - 1 && !strcmp(r->finish, "length") ? "incomplete"
                                                                                 : "completed";
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", it->id);
    if (it->call) {
        cJSON_AddStringToObject(m, "type", "function_call");
        cJSON_AddStringToObject(m, "status", status);
        cJSON_AddStringToObject(m, "arguments", done ? fc_str_cstr(&it->text) : "");
        cJSON_AddStringToObject(m, "call_id", it->call_id);
        cJSON_AddStringToObject(m, "name", it->name);
        return m;
    }
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "status", status);
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON *c = cJSON_AddArrayToObject(m, "content");
    if (done) cJSON_AddItemToArray(c, output_text_part(fc_str_cstr(&it->text)));
    return m;
}

/* The response object; done: completed or incomplete, with output and usage. */
static cJSON *response_obj(const relay *r, bool done)
{
    const fc_responses_req *q = r->q;
    cJSON *echo = cJSON_Parse(q->echo ? q->echo : "{}");
    bool incomplete = done && !strcmp(r->finish, "length");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddNumberToObject(o, "created_at", (double)r->created_at);
    cJSON_AddStringToObject(o, "status", !done ? "in_progress" : incomplete ? "incomplete" : "completed");
    cJSON_AddBoolToObject(o, "background", false);
    cJSON_AddNullToObject(o, "error");
    if (incomplete) cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "incomplete_details"), "reason", "max_output_tokens");
    else cJSON_AddNullToObject(o, "incomplete_details");
    if (q->instructions) cJSON_AddStringToObject(o, "instructions", q->instructions);
    else cJSON_AddNullToObject(o, "instructions");
    const char *from_echo[] = {"max_output_tokens", "metadata", "parallel_tool_calls", "temperature", "text",
                               "tool_choice", "top_p", "truncation", "user"};
    for (size_t i = 0; i < sizeof from_echo / sizeof *from_echo; i++) {
        const cJSON *x = get(echo, from_echo[i]);
        cJSON_AddItemToObject(o, from_echo[i], x ? cJSON_Duplicate(x, true) : cJSON_CreateNull());
    }
    cJSON_AddStringToObject(o, "model", q->model);
    cJSON *out = cJSON_AddArrayToObject(o, "output");
    for (int k = 0; done && k < r->n_items; k++) cJSON_AddItemToArray(out, item_json(r, k, true));
    if (q->previous_response_id) cJSON_AddStringToObject(o, "previous_response_id", q->previous_response_id);
    else cJSON_AddNullToObject(o, "previous_response_id");
    cJSON *reasoning = cJSON_AddObjectToObject(o, "reasoning");
    cJSON_AddNullToObject(reasoning, "effort");
    cJSON_AddNullToObject(reasoning, "summary");
    cJSON_AddBoolToObject(o, "store", q->store);
    const cJSON *tools = get(echo, "tools");
    cJSON_AddItemToObject(o, "tools", tools ? cJSON_Duplicate(tools, true) : cJSON_CreateArray());
    if (done) {
        cJSON *u = cJSON_AddObjectToObject(o, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", (double)r->in_tok);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "input_tokens_details"), "cached_tokens", 0);
        cJSON_AddNumberToObject(u, "output_tokens", (double)r->out_tok);
        cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "output_tokens_details"), "reasoning_tokens", 0);
        cJSON_AddNumberToObject(u, "total_tokens", (double)(r->in_tok + r->out_tok));
    } else {
        cJSON_AddNullToObject(o, "usage");
    }
    cJSON_Delete(echo);
    return o;
}

/* ---- streaming ---- */

/* Sends one typed event: {"type": type, ...fields, "sequence_number"}; takes
 * o. Not streaming: nothing (o is freed). */
static void send_event(relay *r, const char *type, cJSON *o)
{
    if (!r->st) {
        cJSON_Delete(o);
        return;
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "type", type);
    cJSON *it;
    while (o && (it = o->child)) {
        cJSON_DetachItemViaPointer(o, it);
        cJSON_AddItemToObject(e, it->string, it);
    }
    cJSON_Delete(o);
    cJSON_AddNumberToObject(e, "sequence_number", (double)r->seq++);
    char *s = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    size_t n = 0;
    char *f = fc_sse_format(type, s, strlen(s), &n);
    if (!r->lb.client_gone && !fc_http_stream_write(r->st, f, n)) r->lb.client_gone = true;
    free(f);
    free(s);
}

static cJSON *with_response(cJSON *resp)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "response", resp);
    return o;
}

/* {"item_id", "output_index"} of item k (and "content_index" for a message). */
static cJSON *item_event(const relay *r, int k)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "item_id", r->items[k].id);
    cJSON_AddNumberToObject(o, "output_index", k);
    if (!r->items[k].call) cJSON_AddNumberToObject(o, "content_index", 0);
    return o;
}

static void stream_open(relay *r)
{
    if (r->st || !r->q->stream) return;
    r->st = fc_http_reply_stream(r->reply, 200, "text/event-stream");
    send_event(r, "response.created", with_response(response_obj(r, false)));
    send_event(r, "response.in_progress", with_response(response_obj(r, false)));
}

/* The open item's closing events (.done). */
static void item_close(relay *r)
{
    int k = r->open;
    if (k < 0) return;
    r->open = -1;
    const out_item *it = &r->items[k];
    cJSON *o = item_event(r, k);
    if (it->call) {
        cJSON_AddStringToObject(o, "arguments", fc_str_cstr(&it->text));
        send_event(r, "response.function_call_arguments.done", o);
    } else {
        cJSON_AddStringToObject(o, "text", fc_str_cstr(&it->text));
        cJSON_AddArrayToObject(o, "logprobs");
        send_event(r, "response.output_text.done", o);
        o = item_event(r, k);
        cJSON *p = output_text_part(fc_str_cstr(&it->text));
        cJSON_DeleteItemFromObject(p, "logprobs");
        cJSON_AddItemToObject(o, "part", p);
        send_event(r, "response.content_part.done", o);
    }
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", k);
    cJSON_AddItemToObject(o, "item", item_json(r, k, true));
    send_event(r, "response.output_item.done", o);
}

/* A new output item (the open one is closed first); its opening events. */
static out_item *item_open(relay *r, bool call, const char *call_id, const char *name, int chat_index)
{
    item_close(r);
    if (r->n_items == r->cap_items) {
        r->cap_items = r->cap_items ? 2 * r->cap_items : 4;
        r->items = fc_xrealloc(r->items, sizeof *r->items * (size_t)r->cap_items);
    }
    int k = r->n_items++;
    out_item *it = &r->items[k];
    memset(it, 0, sizeof *it);
    it->call = call;
    new_id(it->id, call ? "fc_" : "msg_");
    if (call) {
        it->call_id = fc_xstrdup(call_id);
        it->name = fc_xstrdup(name);
        it->chat_index = chat_index;
    }
    fc_str_init(&it->text, 0);
    r->open = k;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "output_index", k);
    cJSON_AddItemToObject(o, "item", item_json(r, k, false));
    send_event(r, "response.output_item.added", o);
    if (!call) {
        o = item_event(r, k);
        cJSON *p = output_text_part("");
        cJSON_DeleteItemFromObject(p, "logprobs");
        cJSON_AddItemToObject(o, "part", p);
        send_event(r, "response.content_part.added", o);
    }
    return it;
}

/* The answer ended: at least one item (an empty message), the last closed. */
static void items_finish(relay *r)
{
    if (!r->n_items) item_open(r, false, NULL, NULL, 0);
    item_close(r);
}

static void stream_error(relay *r, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", "server_error");
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddNullToObject(o, "param");
    send_event(r, "error", o);
}

/* ---- the relay of the chat stream ---- */

/* The chat route's delta.tool_calls: a new call opens a function_call item,
 * its argument pieces are that item's deltas. */
static void relay_tool_calls(relay *r, const cJSON *calls)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, calls) {
        const cJSON *ix = get(c, "index"), *id = get(c, "id"), *fn = get(c, "function");
        const cJSON *name = get(fn, "name"), *args = get(fn, "arguments");
        int index = cJSON_IsNumber(ix) ? (int)fc_json_long(ix->valuedouble) : 0;
        if (cJSON_IsString(id)) item_open(r, true, id->valuestring, cJSON_IsString(name) ? name->valuestring : "", index);
        if (!cJSON_IsString(args) || !*args->valuestring) continue;
        int k = r->n_items - 1;
        while (k >= 0 && !(r->items[k].call && r->items[k].chat_index == index)) k--;
        if (k < 0) continue;
        fc_str_puts(&r->items[k].text, args->valuestring);
        cJSON *o = item_event(r, k);
        cJSON_AddStringToObject(o, "delta", args->valuestring);
        send_event(r, "response.function_call_arguments.delta", o);
    }
}

static bool relay_event(const fc_sse_event *ev, void *user)
{
    relay *r = user;
    if (!strcmp(ev->data, "[DONE]")) return true;
    cJSON *c = cJSON_Parse(ev->data);
    if (!c) return true;
    const cJSON *err = get(c, "error");
    if (err && !cJSON_IsNull(err)) {
        const cJSON *m = cJSON_IsString(err) ? err : get(err, "message");
        if (!cJSON_IsString(m)) m = get(c, "text");
        free(r->error);
        r->error = fc_xstrdup(cJSON_IsString(m) ? m->valuestring : "generation failed");
        cJSON_Delete(c);
        return true;
    }
    const cJSON *u = get(c, "usage");
    if (cJSON_IsObject(u)) {
        const cJSON *pt = get(u, "prompt_tokens"), *ct = get(u, "completion_tokens");
        if (cJSON_IsNumber(pt)) r->in_tok = fc_json_long(pt->valuedouble);
        if (cJSON_IsNumber(ct)) r->out_tok = fc_json_long(ct->valuedouble);
        r->has_usage = true;
    }
    const cJSON *ch = cJSON_GetArrayItem(get(c, "choices"), 0);
    if (ch) {
        stream_open(r);
        const cJSON *delta = get(ch, "delta");
        const cJSON *t = get(delta, "content");
        const cJSON *fr = get(ch, "finish_reason");
        if (cJSON_IsString(fr)) snprintf(r->finish, sizeof r->finish, "%s", fr->valuestring);
        if (cJSON_IsString(t) && *t->valuestring) {
            if (r->open < 0 || r->items[r->open].call) item_open(r, false, NULL, NULL, 0);
            int k = r->open;
            fc_str_puts(&r->items[k].text, t->valuestring);
            fc_str_puts(&r->text, t->valuestring);
            cJSON *o = item_event(r, k);
            cJSON_AddStringToObject(o, "delta", t->valuestring);
            cJSON_AddArrayToObject(o, "logprobs");
            send_event(r, "response.output_text.delta", o);
        }
        relay_tool_calls(r, get(delta, "tool_calls"));
    }
    cJSON_Delete(c);
    return !r->lb.client_gone;
}

static bool incomplete_of(const relay *r) { return !strcmp(r->finish, "length"); }

char *fc_responses_check_calls(const fc_responses_req *q, const char *history)
{
    cJSON *pending = cJSON_Parse(q->pending_calls ? q->pending_calls : "[]");
    cJSON *hist = cJSON_Parse(history ? history : "[]");
    char *err = NULL;
    const cJSON *pe;
    cJSON_ArrayForEach(pe, pending) {
        const cJSON *id = cJSON_GetArrayItem(pe, 0), *param = cJSON_GetArrayItem(pe, 1);
        if (!cJSON_IsString(id) || !cJSON_IsString(param)) continue;
        if (!has_call(hist, id->valuestring)) {
            unknown_call(&err, param->valuestring, id->valuestring);
            break;
        }
    }
    cJSON_Delete(pending);
    cJSON_Delete(hist);
    return err;
}

static void reply_error(fc_http_reply *reply, int status, const char *type, const char *code, const char *msg)
{
    char *e = error_body(type, NULL, code, "%s", msg);
    fc_http_reply_json(reply, status, e);
    free(e);
}

/* An error answer of the chat route, passed on: its body when it carries an
 * OpenAI "error" object, else one made from its message. */
static void reply_upstream(fc_http_reply *reply, int status, const char *body)
{
    cJSON *o = body ? cJSON_Parse(body) : NULL;
    int st = status >= 400 && status < 600 ? status : 500;
    if (cJSON_IsObject(get(o, "error"))) {
        fc_http_reply_json(reply, st, body);
    } else {
        const cJSON *m = get(o, "message");
        if (!cJSON_IsString(m)) m = get(o, "detail");
        reply_error(reply, st, st < 500 ? "invalid_request_error" : "server_error", NULL,
                    cJSON_IsString(m) ? m->valuestring : "the chat route failed");
    }
    cJSON_Delete(o);
}

static void h_create(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_responses *rs = user;
    if (!fc_openai_api_auth(rs->api, req, reply)) return;
    fc_responses_req q;
    char *err = NULL;
    int st = fc_responses_parse(req->body, req->body_len, &q, &err);
    if (st != 200) {
        fc_http_reply_json(reply, st, err);
        free(err);
        return;
    }
    char *history = NULL;
    if (q.previous_response_id) {
        history = store_get(rs, q.previous_response_id, 1);
        if (!history) {
            char *e = error_body("invalid_request_error", "previous_response_id", "previous_response_not_found",
                                 "Previous response with id '%s' not found.", q.previous_response_id);
            fc_http_reply_json(reply, 400, e);
            free(e);
            fc_responses_req_free(&q);
            return;
        }
    }
    char *why = fc_responses_check_calls(&q, history);
    if (why) {
        fc_http_reply_json(reply, 400, why);
        free(why);
        free(history);
        fc_responses_req_free(&q);
        return;
    }
    char *body = fc_responses_chat_body(&q, history);
    relay r = {.rs = rs, .hr = req, .reply = reply, .q = &q, .created_at = (long)time(NULL), .open = -1};
    new_id(r.id, "resp_");
    fc_str_init(&r.text, 0);
    bool ok = fc_loopback_post(&r.lb, rs->api, rs->host, req, "/v1/chat/completions", body, relay_event, &r);
    const fc_http_response *res = &r.lb.res;
    if (r.lb.client_gone) {
        if (!r.st) reply_error(reply, 499, "invalid_request_error", NULL, "the client left");
    } else if (!ok && !r.st) {
        reply_error(reply, 500, "server_error", NULL, res->error[0] ? res->error : "the chat route failed");
    } else if (res->status != 200 && !r.st) {
        fc_str_putc(&r.lb.raw, '\0');
        reply_upstream(reply, res->status, fc_str_cstr(&r.lb.raw));
    } else if (r.error || !r.has_usage) {
        const char *m = r.error ? r.error : "the answer ended early";
        if (r.st) stream_error(&r, m);
        else reply_error(reply, 500, "server_error", "server_error", m);
    } else {
        stream_open(&r);
        items_finish(&r);
        cJSON *resp = response_obj(&r, true);
        if (q.store) {
            cJSON *conv = cJSON_Parse(history ? history : "[]");
            if (!cJSON_IsArray(conv)) {
                cJSON_Delete(conv);
                conv = cJSON_CreateArray();
            }
            cJSON *in = cJSON_Parse(q.input), *it;
            while (cJSON_IsArray(in) && (it = cJSON_DetachItemFromArray(in, 0))) cJSON_AddItemToArray(conv, it);
            cJSON_Delete(in);
            cJSON *m = cJSON_CreateObject(), *calls = NULL;
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", fc_str_cstr(&r.text));
            for (int k = 0; k < r.n_items; k++) {
                const out_item *it = &r.items[k];
                if (!it->call) continue;
                if (!calls) calls = cJSON_AddArrayToObject(m, "tool_calls");
                cJSON *c = cJSON_CreateObject();
                cJSON_AddStringToObject(c, "id", it->call_id);
                cJSON_AddStringToObject(c, "type", "function");
                cJSON *fn = cJSON_AddObjectToObject(c, "function");
                cJSON_AddStringToObject(fn, "name", it->name);
                cJSON_AddStringToObject(fn, "arguments", fc_str_cstr(&it->text));
                cJSON_AddItemToArray(calls, c);
            }
            cJSON_AddItemToArray(conv, m);
            char *h = cJSON_PrintUnformatted(conv), *rj = cJSON_PrintUnformatted(resp);
            cJSON_Delete(conv);
            if (h && rj) store_put(rs, r.id, rj, h);
            else free(h), free(rj);
        }
        if (q.stream) {
            send_event(&r, incomplete_of(&r) ? "response.incomplete" : "response.completed",
                       with_response(cJSON_Duplicate(resp, true)));
        } else {
            char *s = cJSON_PrintUnformatted(resp);
            fc_http_reply_json(reply, 200, s);
            free(s);
        }
        cJSON_Delete(resp);
    }
    if (r.st) fc_http_stream_close(r.st);
    fc_loopback_free(&r.lb);
    fc_str_free(&r.text);
    relay_items_free(&r);
    free(r.error);
    free(body);
    free(history);
    fc_responses_req_free(&q);
}

/* ---- retrieve, delete ---- */

/* The id of /v1/responses/{id}; NULL (404 sent) when the path has none. */
static const char *path_id(const fc_http_request *req, fc_http_reply *reply)
{
    const char *id = req->path + strlen(ROUTE_PREFIX);
    if (!*id || strchr(id, '/')) {
        fc_http_reply_json(reply, 404, "{\"detail\":\"Not Found\"}");
        return NULL;
    }
    return id;
}

static void not_found(fc_http_reply *reply, const char *id)
{
    char *e = error_body("invalid_request_error", NULL, NULL, "Response with id '%s' not found.", id);
    fc_http_reply_json(reply, 404, e);
    free(e);
}

/* GET /v1/responses/{id}/input_items: the conversation that went into the
 * response (earlier turns of previous_response_id included, instructions
 * not), as message items with ids stable across calls; ?order=asc|desc
 * (default desc), ?limit=1..100 (default 20), ?after=<item id>. */
static void input_items(fc_responses *rs, const fc_http_request *req, fc_http_reply *reply, const char *id)
{
    const char *order = fc_http_query(req, "order"), *lim = fc_http_query(req, "limit"),
               *after = fc_http_query(req, "after");
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : 20;
    if ((lim && (!*lim || *end || limit < 1 || limit > 100)) ||
        (order && strcmp(order, "asc") && strcmp(order, "desc"))) {
        char *e = error_body("invalid_request_error", lim && (limit < 1 || limit > 100 || *end) ? "limit" : "order",
                             "invalid_value", "Invalid value for '%s'.",
                             lim && (limit < 1 || limit > 100 || *end) ? "limit" : "order");
        fc_http_reply_json(reply, 400, e);
        free(e);
        return;
    }
    char *h = store_get(rs, id, 1);
    if (!h) {
        not_found(reply, id);
        return;
    }
    cJSON *hist = cJSON_Parse(h);
    free(h);
    /* the conversation as items: messages, function calls (of assistant
     * messages) and their outputs (tool messages); the last message is the
     * response's own output */
    cJSON *items = cJSON_CreateArray();
    int nm = cJSON_GetArraySize(hist) - 1;
    for (int i = 0; i < nm; i++) {
        const cJSON *m = cJSON_GetArrayItem(hist, i);
        const cJSON *role = get(m, "role"), *content = get(m, "content"), *calls = get(m, "tool_calls");
        const char *rl = cJSON_IsString(role) ? role->valuestring : "user";
        const char *text = cJSON_IsString(content) ? content->valuestring : "";
        char item_id[96];
        if (!strcmp(rl, "tool")) {
            const cJSON *cid = get(m, "tool_call_id");
            snprintf(item_id, sizeof item_id, "fco_%.48s%04d", id + 5, i);
            cJSON *it = cJSON_CreateObject();
            cJSON_AddStringToObject(it, "id", item_id);
            cJSON_AddStringToObject(it, "type", "function_call_output");
            cJSON_AddStringToObject(it, "call_id", cJSON_IsString(cid) ? cid->valuestring : "");
            cJSON_AddStringToObject(it, "output", text);
            cJSON_AddStringToObject(it, "status", "completed");
            cJSON_AddItemToArray(items, it);
            continue;
        }
        bool assistant = !strcmp(rl, "assistant");
        if (!assistant || *text || cJSON_GetArraySize(calls) == 0) {
            snprintf(item_id, sizeof item_id, "msg_%.48s%04d", id + 5, i);
            cJSON *it = cJSON_CreateObject();
            cJSON_AddStringToObject(it, "id", item_id);
            cJSON_AddStringToObject(it, "type", "message");
            cJSON_AddStringToObject(it, "role", rl);
            cJSON_AddStringToObject(it, "status", "completed");
            cJSON *c = cJSON_AddArrayToObject(it, "content");
            if (assistant) {
                cJSON *p = output_text_part(text);
                cJSON_DeleteItemFromObject(p, "logprobs");
                cJSON_AddItemToArray(c, p);
            } else {
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "type", "input_text");
                cJSON_AddStringToObject(p, "text", text);
                cJSON_AddItemToArray(c, p);
            }
            cJSON_AddItemToArray(items, it);
        }
        const cJSON *call;
        int j = 0;
        cJSON_ArrayForEach(call, calls) {
            const cJSON *cid = get(call, "id"), *fn = get(call, "function");
            const cJSON *name = get(fn, "name"), *args = get(fn, "arguments");
            snprintf(item_id, sizeof item_id, "fc_%.48s%04d%02d", id + 5, i, j++ % 100);
            cJSON *it = cJSON_CreateObject();
            cJSON_AddStringToObject(it, "id", item_id);
            cJSON_AddStringToObject(it, "type", "function_call");
            cJSON_AddStringToObject(it, "status", "completed");
            cJSON_AddStringToObject(it, "arguments", cJSON_IsString(args) ? args->valuestring : "");
            cJSON_AddStringToObject(it, "call_id", cJSON_IsString(cid) ? cid->valuestring : "");
            cJSON_AddStringToObject(it, "name", cJSON_IsString(name) ? name->valuestring : "");
            cJSON_AddItemToArray(items, it);
        }
    }
    int n = cJSON_GetArraySize(items);
    bool asc = order && !strcmp(order, "asc");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    bool started = !after, more = false;
    int count = 0;
    char first[96] = "", last[96] = "";
    for (int k = 0; k < n; k++) {
        int i = asc ? k : n - 1 - k;
        const cJSON *it = cJSON_GetArrayItem(items, i);
        const char *item_id = get(it, "id")->valuestring;
        if (!started) {
            started = !strcmp(item_id, after);
            continue;
        }
        if (count == limit) {
            more = true;
            break;
        }
        cJSON_AddItemToArray(data, cJSON_Duplicate(it, true));
        if (!count) snprintf(first, sizeof first, "%s", item_id);
        snprintf(last, sizeof last, "%s", item_id);
        count++;
    }
    cJSON_Delete(items);
    if (count) {
        cJSON_AddStringToObject(o, "first_id", first);
        cJSON_AddStringToObject(o, "last_id", last);
    } else {
        cJSON_AddNullToObject(o, "first_id");
        cJSON_AddNullToObject(o, "last_id");
    }
    cJSON_AddBoolToObject(o, "has_more", more);
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(reply, 200, s);
    free(s);
    cJSON_Delete(o);
    cJSON_Delete(hist);
}

static void h_get(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_responses *rs = user;
    if (!fc_openai_api_auth(rs->api, req, reply)) return;
    const char *rest = req->path + strlen(ROUTE_PREFIX), *slash = strchr(rest, '/');
    if (slash && !strcmp(slash, "/input_items") && slash > rest) {
        char *id = fc_xasprintf("%.*s", (int)(slash - rest), rest);
        input_items(rs, req, reply, id);
        free(id);
        return;
    }
    const char *id = path_id(req, reply);
    if (!id) return;
    char *s = store_get(rs, id, 0);
    if (s) fc_http_reply_json(reply, 200, s);
    else not_found(reply, id);
    free(s);
}

static void h_delete(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_responses *rs = user;
    if (!fc_openai_api_auth(rs->api, req, reply)) return;
    const char *id = path_id(req, reply);
    if (!id) return;
    if (!store_delete(rs, id)) {
        not_found(reply, id);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "response");
    cJSON_AddBoolToObject(o, "deleted", true);
    char *s = cJSON_PrintUnformatted(o);
    fc_http_reply_json(reply, 200, s);
    free(s);
    cJSON_Delete(o);
}

/* ---- setup ---- */

fc_responses *fc_responses_mount(fc_http_server *s, const struct fc_openai_api *api, const char *host)
{
    fc_responses *rs = fc_xcalloc(1, sizeof *rs);
    rs->api = api;
    if (!host || !*host || !strcmp(host, "0.0.0.0")) rs->host = fc_xstrdup("127.0.0.1");
    else if (!strcmp(host, "::")) rs->host = fc_xstrdup("[::1]");
    else if (strchr(host, ':')) rs->host = fc_xasprintf("[%s]", host);
    else rs->host = fc_xstrdup(host);
    const char *mx = getenv("FASTCHAT_RESPONSES_MAX");
    long m = mx ? strtol(mx, NULL, 10) : STORE_MAX_DEFAULT;
    rs->max = m >= 1 && m <= 1000000 ? (int)m : STORE_MAX_DEFAULT;
    pthread_mutex_init(&rs->mu, NULL);
    fc_http_server_route(s, "POST", "/v1/responses", h_create, rs);
    fc_http_server_route(s, "GET", ROUTE_PREFIX "*", h_get, rs);
    fc_http_server_route(s, "DELETE", ROUTE_PREFIX "*", h_delete, rs);
    return rs;
}

void fc_responses_free(fc_responses *rs)
{
    if (!rs) return;
    for (int i = 0; i < rs->n; i++) stored_free(&rs->items[i]);
    free(rs->items);
    pthread_mutex_destroy(&rs->mu);
    free(rs->host);
    free(rs);
}
