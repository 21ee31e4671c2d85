/*
 * fuzz_jinja.c: libFuzzer target for the Jinja chat template interpreter
 * (src/chat/jinja.c) and apply_chat_template (src/chat/chat_template.c).
 *
 * Input: a template; optionally followed by a NUL byte and a JSON object of
 * variables (when that does not parse, a fixed chat context is used). The
 * template is compiled and rendered twice with small budgets (steps, memory,
 * output), so a hostile template ends quickly with an error. Invariants:
 * exactly one of output and error comes back; the output respects the
 * output limit; rendering is deterministic (same result twice); the chat
 * layer accepts or refuses without crashing. ASan/UBSan/LeakSanitizer catch
 * the rest. Seeds: tests/data/fuzz/fuzz_jinja/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "chat/chat_template.h"
#include "chat/jinja.h"

static const char default_ctx[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi \\u00e9\"},"
    " {\"role\": \"assistant\", \"content\": \" ok \", \"tool_calls\": [{\"id\": \"call12345\", \"type\": \"function\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1}}}]}, {\"role\": \"tool\", \"content\": \"r\"}],"
    " \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_generation_prompt\": true, \"tools\": null, \"n\": 3}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    char *src = malloc(size + 1);
    memcpy(src, data, size);
    src[size] = '\0';
    size_t tlen = strlen(src);
    cJSON *ctx = tlen < size ? cJSON_ParseWithLength(src + tlen + 1, size - tlen - 1) : NULL;
    if (!cJSON_IsObject(ctx)) {
        cJSON_Delete(ctx);
        ctx = cJSON_Parse(default_ctx);
    }
    fc_jinja_opts opts = { .now = 1741507626, .max_output = 1 << 16, .max_memory = 32 << 20, .max_steps = 100000 };

    char *err = NULL;
    fc_jinja *t = fc_jinja_compile(src, &err);
    if ((t == NULL) == (err == NULL)) abort();
    if (t) {
        char *err1 = NULL, *err2 = NULL;
        char *out1 = fc_jinja_render(t, ctx, &opts, &err1);
        char *out2 = fc_jinja_render(t, ctx, &opts, &err2);
        if ((out1 == NULL) == (err1 == NULL) || (out2 == NULL) == (err2 == NULL)) abort();
        if (out1 && strlen(out1) > opts.max_output) abort();
        if ((out1 == NULL) != (out2 == NULL)) abort();
        if (out1 && strcmp(out1, out2)) abort();
        if (err1 && strcmp(err1, err2)) abort();
        free(out1);
        free(out2);
        free(err1);
        free(err2);
    }
    free(err);
    fc_jinja_free(t);

    /* the chat layer over the same template and the context's messages */
    err = NULL;
    char *out = fc_chat_template_render(src, cJSON_GetObjectItemCaseSensitive(ctx, "messages"), "<s>", NULL, true, NULL,
                                        &opts, &err);
    if ((out == NULL) == (err == NULL)) abort();
    free(out);
    free(err);

    cJSON_Delete(ctx);
    free(src);
    return 0;
}
