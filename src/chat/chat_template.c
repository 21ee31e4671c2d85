/*
 * chat_template.c: apply_chat_template(tokenize=False) over the Jinja
 * interpreter (chat_template.h). Mirrors transformers 5
 * (tokenization_utils_base.py apply_chat_template, chat_template_utils.py
 * _normalize_chat_messages, _alias_reasoning_fields, render_jinja_template),
 * checked by tests/unit/test_jinja.c against tests/data/conv/jinja_golden.json.
 */
#include "chat_template.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"

static void *fail(char **err, const char *msg)
{
    if (err) *err = fc_xstrdup(msg);
    return NULL;
}

/* Names a message's reasoning goes by; the first is what templates read. */
static const char *const reasoning_fields[] = { "reasoning_content", "thinking", "reasoning" };

/* A copy of one message without its null members, reasoning aliased:
 * {"thinking": r, **message, "reasoning_content": r} in Python's key order. */
static cJSON *normalize_message(const cJSON *msg)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *reasoning = NULL;
    for (size_t i = 0; i < 3 && !reasoning; i++) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, reasoning_fields[i]);
        if (r && !cJSON_IsNull(r)) reasoning = r;
    }
    if (reasoning) {
        const cJSON *own = cJSON_GetObjectItemCaseSensitive(msg, "thinking");
        cJSON_AddItemToObject(out, "thinking", cJSON_Duplicate(own && !cJSON_IsNull(own) ? own : reasoning, 1));
    }
    const cJSON *m;
    cJSON_ArrayForEach(m, msg) {
        if (cJSON_IsNull(m) || !m->string) continue;
        if (reasoning && !strcmp(m->string, "thinking")) continue; /* already first */
        if (reasoning && !strcmp(m->string, "reasoning_content")) {
            cJSON_AddItemToObject(out, "reasoning_content", cJSON_Duplicate(reasoning, 1));
            continue;
        }
        cJSON_AddItemToObject(out, m->string, cJSON_Duplicate(m, 1));
    }
    if (reasoning && !cJSON_GetObjectItemCaseSensitive(out, "reasoning_content"))
        cJSON_AddItemToObject(out, "reasoning_content", cJSON_Duplicate(reasoning, 1));
    return out;
}

cJSON *fc_chat_template_context(const cJSON *messages, const char *bos_token, const char *eos_token,
                                bool add_generation_prompt, const cJSON *extra, char **err)
{
    if (err) *err = NULL;
    if (!cJSON_IsArray(messages)) return fail(err, "messages must be a list of message objects");
    if (!cJSON_GetArraySize(messages))
        return fail(err, "Cannot apply chat template to an empty conversation. Provide at least one message.");
    if (extra && !cJSON_IsObject(extra)) return fail(err, "extra template variables must be a JSON object");
    const cJSON *tools = extra ? cJSON_GetObjectItemCaseSensitive(extra, "tools") : NULL;
    const cJSON *documents = extra ? cJSON_GetObjectItemCaseSensitive(extra, "documents") : NULL;
    const cJSON *x;
    if (tools && !cJSON_IsNull(tools)) {
        if (!cJSON_IsArray(tools)) return fail(err, "tools must be a list of JSON schemas");
        cJSON_ArrayForEach(x, tools)
            if (!cJSON_IsObject(x))
                return fail(err, "Tools should either be a JSON schema, or a callable function with type hints and a docstring suitable for auto-conversion to a schema.");
    }
    if (documents && !cJSON_IsNull(documents)) {
        if (!cJSON_IsArray(documents)) return fail(err, "documents must be a list of objects");
        cJSON_ArrayForEach(x, documents)
            if (!cJSON_IsObject(x)) return fail(err, "Documents should be a list of dicts with 'title' and 'text' keys!");
    }
    if (extra && (cJSON_GetObjectItemCaseSensitive(extra, "messages") ||
                  cJSON_GetObjectItemCaseSensitive(extra, "add_generation_prompt")))
        return fail(err, "messages and add_generation_prompt are not extra variables");
    cJSON_ArrayForEach(x, messages)
        if (!cJSON_IsObject(x)) return fail(err, "Chat messages should be dicts, dataclasses or pydantic models.");

    /* template_kwargs = {**special_tokens_map, **kwargs} */
    cJSON *ctx = cJSON_CreateObject();
    if (bos_token) cJSON_AddStringToObject(ctx, "bos_token", bos_token);
    if (eos_token) cJSON_AddStringToObject(ctx, "eos_token", eos_token);
    if (extra) {
        cJSON_ArrayForEach(x, extra) {
            if (!x->string || !strcmp(x->string, "tools") || !strcmp(x->string, "documents")) continue;
            cJSON_DeleteItemFromObjectCaseSensitive(ctx, x->string);
            cJSON_AddItemToObject(ctx, x->string, cJSON_Duplicate(x, 1));
        }
    }
    cJSON *msgs = cJSON_AddArrayToObject(ctx, "messages");
    cJSON_ArrayForEach(x, messages) cJSON_AddItemToArray(msgs, normalize_message(x));
    cJSON_AddItemToObject(ctx, "tools", tools ? cJSON_Duplicate(tools, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(ctx, "documents", documents ? cJSON_Duplicate(documents, 1) : cJSON_CreateNull());
    cJSON_AddBoolToObject(ctx, "add_generation_prompt", add_generation_prompt);
    return ctx;
}

char *fc_chat_template_render(const char *tmpl, const cJSON *messages, const char *bos_token, const char *eos_token,
                              bool add_generation_prompt, const cJSON *extra, const fc_jinja_opts *opts, char **err)
{
    if (err) *err = NULL;
    if (!tmpl) return fail(err, "no chat template");
    cJSON *ctx = fc_chat_template_context(messages, bos_token, eos_token, add_generation_prompt, extra, err);
    if (!ctx) return NULL;
    char *out = NULL;
    fc_jinja *t = fc_jinja_compile(tmpl, err);
    if (t) out = fc_jinja_render(t, ctx, opts, err);
    fc_jinja_free(t);
    cJSON_Delete(ctx);
    return out;
}
