/*
 * fuzz_responses_request.c: libFuzzer target for the Responses API request
 * parser of src/serve/responses.c (fc_responses_parse) and its translation
 * into a chat request (fc_responses_chat_body).
 *
 * Input: the body of POST /v1/responses. Checked: the answer is 200 or 400;
 * a 400 comes with OpenAI's error body ({"error":{"message" (string), "type",
 * "param", "code"}}) and nothing else set; a 200 names a model, its input is
 * a JSON array of {"role": user|assistant|system|tool, "content": string}
 * (an assistant's content may be null when it has "tool_calls", a tool
 * message has a string "tool_call_id"), pending_calls is a JSON array of
 * [call_id, param] string pairs, and without previous_response_id empty
 * (fc_responses_check_calls then passes), its
 * chat fields and echo are JSON objects, and the chat body, built once
 * without and once with a stored history, is JSON with that model,
 * "stream": true and string messages, which the chat route then checks
 * (fc_openai_api_check_request) and must answer 200 or 400 (a translation
 * the chat route cannot parse is a bug). Seeds:
 * tests/data/fuzz/fuzz_responses_request/.
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "serve/openai_api.h"
#include "serve/responses.h"

static void check_chat(const char *model, const char *body)
{
    cJSON *j = cJSON_Parse(body);
    if (!j) abort();
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsString(m) || strcmp(m->valuestring, model)) abort();
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stream"))) abort();
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages"), *it;
    if (!cJSON_IsArray(msgs)) abort();
    cJSON_ArrayForEach(it, msgs) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(c) && !(cJSON_IsNull(c) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(it, "tool_calls"))))
            abort();
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "role"))) abort();
    }
    cJSON_Delete(j);
    char *out = NULL;
    int st = fc_openai_api_check_request("/v1/chat/completions", body, strlen(body), NULL, &out);
    if (st != 200 && st != 400) abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_responses_req q;
    char *err = NULL;
    int st = fc_responses_parse((const char *)data, size, &q, &err);
    if (st != 200) {
        if (st != 400 || !err || q.model || q.input || q.chat || q.echo) abort();
        cJSON *e = cJSON_Parse(err);
        const cJSON *eo = cJSON_GetObjectItemCaseSensitive(e, "error");
        if (!cJSON_IsObject(eo) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(eo, "message"))) abort();
        cJSON_Delete(e);
        free(err);
        return 0;
    }
    if (err || !q.model || !q.input || !q.chat || !q.echo) abort();
    cJSON *in = cJSON_Parse(q.input), *it;
    if (!cJSON_IsArray(in)) abort();
    cJSON_ArrayForEach(it, in) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role"), *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(role)) abort();
        const char *r = role->valuestring;
        if (strcmp(r, "user") && strcmp(r, "assistant") && strcmp(r, "system") && strcmp(r, "tool")) abort();
        bool calls = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(it, "tool_calls"));
        if (calls && strcmp(r, "assistant")) abort();
        if (!cJSON_IsString(c) && !(calls && cJSON_IsNull(c))) abort();
        if (!strcmp(r, "tool") && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "tool_call_id"))) abort();
    }
    cJSON_Delete(in);
    cJSON *pend = cJSON_Parse(q.pending_calls ? q.pending_calls : "");
    if (!cJSON_IsArray(pend)) abort();
    cJSON_ArrayForEach(it, pend) {
        if (cJSON_GetArraySize(it) != 2 || !cJSON_IsString(cJSON_GetArrayItem(it, 0)) ||
            !cJSON_IsString(cJSON_GetArrayItem(it, 1)))
            abort();
    }
    if (!q.previous_response_id && cJSON_GetArraySize(pend)) abort();
    cJSON_Delete(pend);
    char *why = fc_responses_check_calls(&q, NULL);
    if (why && !q.previous_response_id) abort();
    free(why);
    for (int k = 0; k < 2; k++) {
        cJSON *o = cJSON_Parse(k ? q.echo : q.chat);
        if (!cJSON_IsObject(o)) abort();
        cJSON_Delete(o);
    }
    char *body = fc_responses_chat_body(&q, NULL);
    check_chat(q.model, body);
    free(body);
    body = fc_responses_chat_body(&q, "[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]");
    check_chat(q.model, body);
    free(body);
    fc_responses_req_free(&q);
    return 0;
}
