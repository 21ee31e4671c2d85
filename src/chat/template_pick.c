/*
 * template_pick.c: the conversation template for a model. See
 * template_pick.h.
 */
#include "template_pick.h"
#include "base/fc_base.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

/* The ChatML template as FastChat would write it for a model whose Jinja chat
 * template is `jinja` (its system message, when the template hard-codes one,
 * becomes the default). Never NULL. */
static fc_conv *chatml_conv(const char *jinja)
{
    char sys[1024] = "";
    const char *p = jinja ? strstr(jinja, "<|im_start|>system\\n") : NULL;
    size_t skip = 20;
    if (!p && jinja) {
        p = strstr(jinja, "<|im_start|>system\n");
        skip = 19;
    }
    if (p) {
        /* a hard-coded default system message, not a Jinja expression */
        const char *q = p + skip, *end = strstr(q, "<|im_end|>");
        if (end && end - q < (long)sizeof sys && !memchr(q, '{', (size_t)(end - q)))
            snprintf(sys, sizeof sys, "%.*s", (int)(end - q), q);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", "chatml");
    cJSON_AddStringToObject(j, "system_template", "<|im_start|>system\n{system_message}");
    cJSON_AddStringToObject(j, "system_message", sys);
    cJSON *roles = cJSON_AddArrayToObject(j, "roles");
    cJSON_AddItemToArray(roles, cJSON_CreateString("<|im_start|>user"));
    cJSON_AddItemToArray(roles, cJSON_CreateString("<|im_start|>assistant"));
    cJSON_AddArrayToObject(j, "messages");
    cJSON_AddNumberToObject(j, "sep_style", FC_SEP_CHATML);
    cJSON_AddStringToObject(j, "sep", "<|im_end|>");
    cJSON_AddStringToObject(j, "stop_str", "<|im_end|>");
    fc_conv *c = fc_conv_from_json(j);
    cJSON_Delete(j);
    FC_ASSERT(c);
    return c;
}

fc_conv *fc_template_pick(const char *name, const char *model_path, const struct fc_tokenizer *tok)
{
    bool force_auto = name && !strcmp(name, "auto");
    if (name && !force_auto) return fc_conv_new(name); /* NULL and logged when unknown */
    const char *adapter = NULL;
    const char *t = model_path ? fc_conv_template_for_model_path(model_path, &adapter) : NULL;
    bool generic = !t || (adapter && !strcmp(adapter, "BaseModelAdapter"));
    if (!generic && !force_auto) return fc_conv_new(t);
    const char *jt = tok ? fc_tokenizer_chat_template(tok) : NULL;
    if (jt && strstr(jt, "<|im_start|>")) return chatml_conv(jt);
    if (jt && strstr(jt, "<|start_header_id|>")) return fc_conv_new("llama-3");
    if (jt && strstr(jt, "[INST]")) return fc_conv_new("llama-2");
    return fc_conv_new(t ? t : "one_shot");
}
