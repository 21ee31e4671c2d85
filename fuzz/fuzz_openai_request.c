/*
 * fuzz_openai_request.c: libFuzzer target for the OpenAI API's request
 * parsing and validation (src/serve/openai_request.c, through
 * fc_openai_api_check_request): chat completions, completions, FastChat's
 * /api/v1/chat/completions and embeddings bodies, the chat rendering with a
 * conversation template, and the worker requests built from them.
 *
 * Input: the first byte picks the route (low 2 bits) and the conversation
 * template (the other 6 bits: one of the first 64 registered templates,
 * modulo their number); the remaining bytes are the body as-is. Checked:
 *   - the answer is always JSON: an error body ({"object": "error",
 *     "message", "code", "error": {...}}) with HTTP 400, or an array;
 *   - every worker request built from an accepted generation request is
 *     accepted by the worker's own parser (fc_worker_parse_generate): a
 *     request the API lets through must not bounce off the worker with a 400;
 *   - every embeddings batch holds 1 to 4 string inputs and the model.
 * Seeds: tests/data/fuzz/fuzz_openai_request/.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "chat/conv.h"
#include "serve/openai_api.h"
#include "serve/worker.h"

static const char *const routes[4] = {"/v1/chat/completions", "/v1/completions", "/api/v1/chat/completions",
                                      "/v1/embeddings"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    if (size < 1) return 0;
    int route = data[0] & 3;
    int nt = fc_conv_template_count();
    const char *tmpl = nt > 0 ? fc_conv_template_name((data[0] >> 2) % nt) : NULL;
    char *out = NULL;
    int status = fc_openai_api_check_request(routes[route], (const char *)data + 1, size - 1, tmpl, &out);
    if (!out) abort();
    cJSON *o = cJSON_Parse(out);
    if (!o) abort();
    if (status != 200) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "message"),
                    *code = cJSON_GetObjectItemCaseSensitive(o, "code"),
                    *err = cJSON_GetObjectItemCaseSensitive(o, "error");
        if (status != 400 || !cJSON_IsString(msg) || !cJSON_IsNumber(code) || !cJSON_IsObject(err)) abort();
        if (code->valueint != 40001 && code->valueint != 40302 && code->valueint != 50001) abort();
    } else {
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) < 1) abort();
        const cJSON *it;
        cJSON_ArrayForEach(it, o) {
            if (!cJSON_IsObject(it) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "model"))) abort();
            if (route == 3) {
                const cJSON *in = cJSON_GetObjectItemCaseSensitive(it, "input"), *s;
                int n = cJSON_GetArraySize(in);
                if (!cJSON_IsArray(in) || n < 1 || n > 4) abort();
                cJSON_ArrayForEach(s, in) if (!cJSON_IsString(s)) abort();
                continue;
            }
            char *body = cJSON_PrintUnformatted(it);
            char why[256] = "";
            if (!fc_worker_parse_generate(body, strlen(body), NULL, NULL, why, sizeof why)) {
                fprintf(stderr, "the worker refuses what the API accepted: %s\n%s\n", why, body);
                abort();
            }
            free(body);
        }
    }
    cJSON_Delete(o);
    free(out);
    return 0;
}
