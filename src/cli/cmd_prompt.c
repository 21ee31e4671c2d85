/*
 * cmd_prompt.c: `fastchat prompt`: renders OpenAI-style chat messages with a
 * FastChat conversation template and prints the prompt exactly (no newline
 * added), as FastChat's OpenAI API server builds it (get_gen_params): the
 * template's system message is replaced by a "system" message, "user" and
 * "assistant" messages are appended in order, then an open assistant slot is
 * always appended (FastChat does so even after an assistant message). A
 * messages file holding a JSON string is a raw prompt and prints unchanged.
 *
 *   fastchat prompt --conv-template NAME --messages FILE.json
 *   fastchat prompt --model-path M --messages FILE.json   (template by adapter matching)
 *   fastchat prompt --list
 *
 * --json prints {"template", "prompt", "stop", "stop_token_ids"} instead,
 * where "stop" is the template's stop strings (what the API server merges
 * with a request's "stop"). Image parts in user content are refused.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "chat/conv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int fc_cmd_prompt(int argc, char **argv);

static const char usage_text[] =
    "usage: fastchat prompt (--conv-template NAME | --model-path M) --messages FILE.json [--json]\n"
    "       fastchat prompt --list\n"
    "\n"
    "  --conv-template NAME  a FastChat conversation template (see --list)\n"
    "  --model-path M        pick the template FastChat's model adapters pick for M\n"
    "                        (used when --conv-template is absent)\n"
    "  --messages FILE       OpenAI-style [{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": ...}]\n"
    "                        ('-' reads stdin); a JSON string is a raw prompt\n"
    "  --json                print {\"template\", \"prompt\", \"stop\", \"stop_token_ids\"}\n"
    "  --list                print every template name, one per line\n";

static char *read_all(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = fc_xmalloc(cap);
    for (size_t k; (k = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) buf = fc_xrealloc(buf, cap *= 2);
    }
    bool err = ferror(f);
    if (f != stdin) fclose(f);
    if (err) { free(buf); return NULL; }
    *len = n;
    return buf;
}

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

int fc_cmd_prompt(int argc, char **argv)
{
    const char *tmpl = NULL, *model_path = NULL, *messages_path = NULL;
    bool list = false, as_json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--conv-template") && i + 1 < argc) tmpl = argv[++i];
        else if (!strcmp(argv[i], "--model-path") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--messages") && i + 1 < argc) messages_path = argv[++i];
        else if (!strcmp(argv[i], "--list")) list = true;
        else if (!strcmp(argv[i], "--json")) as_json = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage_text, stdout);
            return 0;
        } else fc_cli_die("run 'fastchat prompt --help' for the options", "unknown option '%s'", argv[i]);
    }
    if (list) {
        for (int i = 0; i < fc_conv_template_count(); i++) printf("%s\n", fc_conv_template_name(i));
        return 0;
    }
    if (!tmpl && !model_path)
        fc_cli_die("pass --conv-template NAME (see --list) or --model-path M", "no conversation template chosen");
    if (!messages_path) fc_cli_die("pass --messages FILE.json ('-' for stdin)", "no messages");

    if (!tmpl) {
        tmpl = fc_conv_template_for_model_path(model_path, NULL);
        if (!tmpl) fc_cli_die("pass --conv-template NAME to choose one", "%s: %s", model_path, fc_last_error());
    }
    fc_conv *conv = fc_conv_template_exists(tmpl) ? fc_conv_new(tmpl) : NULL;
    if (!conv) fc_cli_die("run 'fastchat prompt --list' for the template names", "unknown conversation template '%s'", tmpl);

    size_t len;
    char *text = read_all(messages_path, &len);
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

    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "template", fc_conv_name(conv));
        cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON *stop = cJSON_AddArrayToObject(o, "stop");
        for (int i = 0; i < fc_conv_n_stop_str(conv); i++) cJSON_AddItemToArray(stop, cJSON_CreateString(fc_conv_stop_str(conv, i)));
        int n;
        const int32_t *ids = fc_conv_stop_token_ids(conv, &n);
        cJSON *jids = cJSON_AddArrayToObject(o, "stop_token_ids");
        for (int i = 0; i < n; i++) cJSON_AddItemToArray(jids, cJSON_CreateNumber(ids[i]));
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        fwrite(prompt, 1, strlen(prompt), stdout);
    }
    fflush(stdout);
    free(prompt);
    fc_conv_free(conv);
    return 0;
}
