/*
 * cmd_prompt.c: `fastchat prompt`: renders OpenAI-style chat messages into
 * the prompt text and prints it exactly (no newline added), two ways:
 *
 * 1. With a FastChat conversation template, as FastChat's OpenAI API server
 *    builds it (get_gen_params): the template's system message is replaced by
 *    a "system" message, "user" and "assistant" messages are appended in
 *    order, then an open assistant slot is always appended (FastChat does so
 *    even after an assistant message). Image parts in user content are
 *    refused.
 * 2. With the model's own Hugging Face chat template (--conv-template auto:
 *    the GGUF's tokenizer.chat_template or the folder's tokenizer_config.json
 *    / chat_template.jinja; or --chat-template FILE), as transformers'
 *    apply_chat_template(messages, tools=..., add_generation_prompt=True,
 *    tokenize=False) renders it (src/chat/chat_template.h), with the
 *    tokenizer's special tokens as bos_token, eos_token, unk_token and
 *    pad_token (its special_tokens_map). Messages go to the template as they
 *    are (content parts included).
 *
 * A messages file holding a JSON string is a raw prompt and prints unchanged.
 *
 *   fastchat prompt --conv-template NAME --messages FILE.json
 *   fastchat prompt --model-path M --messages FILE.json   (template by adapter matching)
 *   fastchat prompt --conv-template auto [--model-path M] --messages FILE.json [--tools T.json]
 *   fastchat prompt --chat-template FILE.jinja [--model-path M] --messages FILE.json
 *   fastchat prompt --list
 *
 * --json prints {"template", "prompt", "stop", "stop_token_ids"} instead,
 * where "stop" is the template's stop strings (what the API server merges
 * with a request's "stop"); with a model's template "template" is "auto",
 * "stop" is empty and "stop_token_ids" holds the EOS id.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "chat/chat_template.h"
#include "chat/conv.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"

int fc_cmd_prompt(int argc, char **argv);

/* The text of a message's "content": a string, null (NULL, an open slot, as
 * FastChat appends None), or a list of {"type": "text", "text"} parts joined
 * with newlines. Dies on anything else. */
static const char *content_text(const cJSON *content, int i, char **owned)
{
    *owned = NULL;
    if (!content || cJSON_IsNull(content)) return NULL;
    if (cJSON_IsString(content)) return content->valuestring;
    if (!cJSON_IsArray(content))
        fc_cli_die("content is a string, null or a list of {\"type\": \"text\", \"text\": ...} parts",
                   "messages[%d]: bad content", i);
    size_t n = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "image_url"))
            fc_cli_die("send text only; conversation templates here render no images", "messages[%d]: image parts are not supported", i);
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
            fc_cli_die("content parts look like {\"type\": \"text\", \"text\": \"...\"}", "messages[%d]: bad content part", i);
        n += strlen(text->valuestring) + 1;
    }
    char *s = fc_xmalloc(n + 1), *p = s;
    bool first = true;
    cJSON_ArrayForEach(part, content) {
        const char *t = cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring;
        if (!first) *p++ = '\n';
        first = false;
        size_t k = strlen(t);
        memcpy(p, t, k);
        p += k;
    }
    *p = '\0';
    *owned = s;
    return s;
}

static cJSON *read_json(const char *path, const char *what)
{
    size_t len;
    char *text = fc_file_read(path, &len, 0);
    if (!text) fc_cli_die(NULL, "%s: cannot read", path);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) fc_cli_die(what, "%s: invalid JSON", path);
    return j;
}

static void print_result(const char *name, const char *prompt, bool as_json, const cJSON *stop, const cJSON *ids)
{
    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "template", name);
        cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON_AddItemToObject(o, "stop", cJSON_Duplicate(stop, 1));
        cJSON_AddItemToObject(o, "stop_token_ids", cJSON_Duplicate(ids, 1));
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        fwrite(prompt, 1, strlen(prompt), stdout);
    }
    fflush(stdout);
}

/* --conv-template auto / --chat-template FILE: the Hugging Face template. */
static int prompt_jinja(const char *model_path, const char *template_file, const char *messages_path,
                        const char *tools_path, bool add_generation_prompt, bool as_json)
{
    if (!model_path) model_path = fc_cli_default_model();
    fc_tokenizer *tok = fc_tokenizer_load(model_path);
    if (!tok && !template_file)
        fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder with tokenizer files",
                   "%s: cannot load its tokenizer: %s", model_path, fc_last_error());
    char *tmpl = NULL;
    if (template_file) {
        size_t len;
        tmpl = fc_file_read(template_file, &len, 0);
        if (!tmpl) fc_cli_die(NULL, "%s: cannot read", template_file);
    } else if (fc_tokenizer_chat_template(tok)) {
        tmpl = fc_xstrdup(fc_tokenizer_chat_template(tok));
    } else {
        fc_cli_die("pass --conv-template NAME (see --list) or --chat-template FILE.jinja",
                   "%s: the model has no chat template", model_path);
    }
    int32_t bos = tok ? fc_tokenizer_bos(tok) : -1, eos = tok ? fc_tokenizer_eos(tok) : -1;
    const char *bos_text = bos >= 0 ? fc_tokenizer_token_text(tok, bos) : NULL;
    const char *eos_text = eos >= 0 ? fc_tokenizer_token_text(tok, eos) : NULL;

    cJSON *msgs = read_json(messages_path, "the file holds a JSON list of {\"role\", \"content\"} objects");
    char *prompt;
    if (cJSON_IsString(msgs)) {
        prompt = fc_xstrdup(msgs->valuestring); /* a raw prompt, as the API server takes it */
    } else {
        if (!cJSON_IsArray(msgs))
            fc_cli_die("the file holds a JSON list of {\"role\", \"content\"} objects", "%s: not a list of messages",
                       messages_path);
        /* transformers hands the template every special token it knows */
        cJSON *extra = cJSON_CreateObject();
        int32_t unk = tok ? fc_tokenizer_unk(tok) : -1, pad = tok ? fc_tokenizer_pad(tok) : -1;
        if (unk >= 0) cJSON_AddStringToObject(extra, "unk_token", fc_tokenizer_token_text(tok, unk));
        if (pad >= 0) cJSON_AddStringToObject(extra, "pad_token", fc_tokenizer_token_text(tok, pad));
        if (tools_path) cJSON_AddItemToObject(extra, "tools", read_json(tools_path, "the file holds a JSON list of tool schemas"));
        char *err = NULL;
        prompt = fc_chat_template_render(tmpl, msgs, bos_text, eos_text, add_generation_prompt, extra, NULL, &err);
        if (!prompt) {
            cJSON_Delete(extra); /* the process ends here: nothing left for LeakSanitizer to report */
            cJSON_Delete(msgs);
            fc_cli_die("the chat template refused these messages; fix them or choose --conv-template NAME",
                       "chat template: %s", err);
        }
        cJSON_Delete(extra);
    }
    cJSON_Delete(msgs);
    cJSON *stop = cJSON_CreateArray(), *ids = cJSON_CreateArray();
    if (eos >= 0) cJSON_AddItemToArray(ids, cJSON_CreateNumber(eos));
    print_result("auto", prompt, as_json, stop, ids);
    cJSON_Delete(stop);
    cJSON_Delete(ids);
    free(prompt);
    free(tmpl);
    fc_tokenizer_free(tok);
    return 0;
}

int fc_cmd_prompt(int argc, char **argv)
{
    const char *tmpl = NULL, *model_path = NULL, *messages_path = NULL, *template_file = NULL, *tools_path = NULL;
    bool list = false, as_json = false, add_generation_prompt = true;
    const fc_flag flags[] = {
        {"--conv-template", FC_FLAG_STRING, &tmpl, .metavar = "NAME",
         .help = "a FastChat conversation template (see --list), or 'auto' for the model's own chat "
                 "template (Hugging Face / GGUF, Jinja)"},
        {"--model-path", FC_FLAG_STRING, &model_path, .metavar = "M",
         .help = "pick the template FastChat's model adapters pick for M (used when --conv-template is "
                 "absent); with 'auto' or --chat-template, the model whose tokenizer gives the template, "
                 "bos_token and eos_token (default: the default model)"},
        {"--chat-template", FC_FLAG_STRING, &template_file, .metavar = "FILE",
         .help = "render this Jinja chat template instead of the model's"},
        {"--messages", FC_FLAG_STRING, &messages_path, .metavar = "FILE",
         .help = "OpenAI-style [{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": ...}] "
                 "('-' reads stdin); a JSON string is a raw prompt"},
        {"--tools", FC_FLAG_STRING, &tools_path, .metavar = "FILE",
         .help = "a JSON list of tool schemas handed to a Jinja template"},
        {"--no-generation-prompt", FC_FLAG_FALSE, &add_generation_prompt,
         .help = "Jinja templates: add_generation_prompt=False (default True)"},
        {"--json", FC_FLAG_TRUE, &as_json, .help = "print {\"template\", \"prompt\", \"stop\", \"stop_token_ids\"}"},
        {"--list", FC_FLAG_TRUE, &list, .help = "print every template name, one per line"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat prompt (--conv-template NAME | --model-path M) --messages FILE.json [--json]\n"
                 "       fastchat prompt --conv-template auto [--model-path M] --messages FILE.json [--tools FILE.json]\n"
                 "       fastchat prompt --chat-template FILE.jinja [--model-path M] --messages FILE.json\n"
                 "       fastchat prompt --list",
        .about = "\n",
        .flags = flags,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (list) {
        for (int i = 0; i < fc_conv_template_count(); i++) printf("%s\n", fc_conv_template_name(i));
        return 0;
    }
    if (!tmpl && !model_path && !template_file)
        fc_cli_die("pass --conv-template NAME (see --list) or --model-path M", "no conversation template chosen");
    if (!messages_path) fc_cli_die("pass --messages FILE.json ('-' for stdin)", "no messages");
    if (template_file && tmpl && strcmp(tmpl, "auto"))
        fc_cli_die("pass one of --conv-template NAME and --chat-template FILE", "two templates chosen");
    if (template_file || (tmpl && !strcmp(tmpl, "auto")))
        return prompt_jinja(model_path, template_file, messages_path, tools_path, add_generation_prompt, as_json);
    if (tools_path) fc_cli_die("tools go to Jinja templates: add --conv-template auto", "--tools with a FastChat template");

    if (!tmpl) {
        tmpl = fc_conv_template_for_model_path(model_path, NULL);
        if (!tmpl) fc_cli_die("pass --conv-template NAME to choose one", "%s: %s", model_path, fc_last_error());
    }
    fc_conv *conv = fc_conv_template_exists(tmpl) ? fc_conv_new(tmpl) : NULL;
    if (!conv) fc_cli_die("run 'fastchat prompt --list' for the template names", "unknown conversation template '%s'", tmpl);

    size_t len;
    char *text = fc_file_read(messages_path, &len, 0);
    if (!text) fc_cli_die(NULL, "%s: cannot read", messages_path);
    cJSON *msgs = cJSON_ParseWithLength(text, len);
    free(text);
    if (!msgs) fc_cli_die("the file holds a JSON list of {\"role\", \"content\"} objects", "%s: invalid JSON", messages_path);

    char *prompt = NULL;
    if (cJSON_IsString(msgs)) {
        prompt = fc_xstrdup(msgs->valuestring); /* a raw prompt, as the API server takes it */
    } else if (cJSON_IsArray(msgs)) {
        int i = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            if (!cJSON_IsObject(m) || !cJSON_IsString(role))
                fc_cli_die("each message is {\"role\": ..., \"content\": ...}", "messages[%d]: no role", i);
            char *owned;
            const char *content = content_text(cJSON_GetObjectItemCaseSensitive(m, "content"), i, &owned);
            if (!strcmp(role->valuestring, "system")) fc_conv_set_system_message(conv, content);
            else if (!strcmp(role->valuestring, "user")) fc_conv_append_message(conv, 0, content);
            else if (!strcmp(role->valuestring, "assistant")) fc_conv_append_message(conv, 1, content);
            else fc_cli_die("roles are system, user and assistant", "messages[%d]: unknown role '%s'", i, role->valuestring);
            free(owned);
            i++;
        }
        fc_conv_append_message(conv, 1, NULL);
        prompt = fc_conv_get_prompt(conv);
        if (!prompt) fc_cli_die("choose another template with --conv-template", "%s", fc_last_error());
    } else {
        fc_cli_die("the file holds a JSON list of {\"role\", \"content\"} objects", "%s: not a list of messages", messages_path);
    }
    cJSON_Delete(msgs);

    cJSON *stop = cJSON_CreateArray(), *jids = cJSON_CreateArray();
    for (int i = 0; i < fc_conv_n_stop_str(conv); i++) cJSON_AddItemToArray(stop, cJSON_CreateString(fc_conv_stop_str(conv, i)));
    int n;
    const int32_t *ids = fc_conv_stop_token_ids(conv, &n);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(jids, cJSON_CreateNumber(ids[i]));
    print_result(fc_conv_name(conv), prompt, as_json, stop, jids);
    cJSON_Delete(stop);
    cJSON_Delete(jids);
    free(prompt);
    fc_conv_free(conv);
    return 0;
}
