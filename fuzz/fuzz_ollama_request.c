/*
 * fuzz_ollama_request.c: libFuzzer target for the Ollama request parser of
 * src/serve/ollama.c (fc_ollama_translate), which turns the bodies of
 * /api/chat, /api/generate, /api/embed, /api/embeddings and /api/show into
 * the OpenAI server's own requests.
 *
 * Input: byte 0 picks the route (mod 5); the rest is the body. Checked: the
 * answer is 200 or 400; a 400 comes with a message and no request; a 200
 * names a non-empty model, and its OpenAI body (when there is one) is JSON
 * with that model, "stream": true, string message contents or inputs, and
 * is then checked by the OpenAI route it goes to
 * (fc_openai_api_check_request), which must answer 200 or 400, never
 * anything else (a translation that the OpenAI route cannot even parse is a
 * bug). Seeds: tests/data/fuzz/fuzz_ollama_request/.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/ollama.h"
#include "serve/openai_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    enum fc_ollama_kind kind = (enum fc_ollama_kind)(data[0] % 5);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    fc_ollama_req q;
    char *err = NULL;
    int st = fc_ollama_translate(kind, body, len, &q, &err);
    if (st != 200) {
        if (st != 400 || !err || !*err || q.model || q.body || q.path) abort();
        free(err);
        return 0;
    }
    if (err || !q.model || !*q.model) abort();
    if (kind == FC_OLLAMA_SHOW && q.body) abort();
    if ((q.body == NULL) != (q.path == NULL)) abort();
    if (q.body) {
        cJSON *j = cJSON_Parse(q.body);
        if (!j) abort();
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
        if (!cJSON_IsString(m) || strcmp(m->valuestring, q.model)) abort();
        if (strcmp(q.path, "/v1/embeddings") && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"))) abort();
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *it;
        cJSON_ArrayForEach(it, msgs) {
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "content"))) abort();
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "role"))) abort();
        }
        cJSON_Delete(j);
        char *out = NULL;
        int st2 = fc_openai_api_check_request(q.path, q.body, strlen(q.body), NULL, &out);
        if (st2 != 200 && st2 != 400) abort();
        free(out);
    }
    fc_ollama_req_free(&q);
    return 0;
}
