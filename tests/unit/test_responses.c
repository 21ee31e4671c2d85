/*
 * test_responses.c: the Responses API request parser and its chat
 * translation (serve/responses.h): input strings and items (parts joined,
 * developer as system), instructions first and not stored with the input,
 * the history placed between them, OpenAI's defaults (temperature 1, top_p 1,
 * store true), max_output_tokens as max_tokens, text.format as
 * response_format, and the 400s with OpenAI's error body naming the param.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "serve/responses.h"
#include "test_util.h"

static cJSON *parse_ok(const char *body, fc_responses_req *q)
{
    char *err = NULL;
    int st = fc_responses_parse(body, strlen(body), q, &err);
    CHECKF(st == 200, "%s -> %d %s", body, st, err ? err : "");
    free(err);
    if (st != 200) return NULL;
    char *chat = fc_responses_chat_body(q, "[{\"role\":\"user\",\"content\":\"H1\"},{\"role\":\"assistant\",\"content\":\"H2\"}]");
    cJSON *o = cJSON_Parse(chat);
    free(chat);
    return o;
}

static void expect_400(const char *body, const char *param, const char *needle)
{
    fc_responses_req q;
    char *err = NULL;
    int st = fc_responses_parse(body, strlen(body), &q, &err);
    CHECKF(st == 400, "%s -> %d", body, st);
    cJSON *e = err ? cJSON_Parse(err) : NULL;
    const cJSON *eo = cJSON_GetObjectItemCaseSensitive(e, "error");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(eo, "param"), *m = cJSON_GetObjectItemCaseSensitive(eo, "message");
    CHECKF(cJSON_IsString(m) && strstr(m->valuestring, needle), "%s -> %s", body, err ? err : "(none)");
    if (param) CHECKF(cJSON_IsString(p) && !strcmp(p->valuestring, param), "%s -> param %s", body, err ? err : "");
    else CHECK(cJSON_IsNull(p));
    CHECK(q.model == NULL && q.input == NULL);
    cJSON_Delete(e);
    free(err);
}

static const char *msg(const cJSON *chat, int i, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(chat, "messages"), i), k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int main(void)
{
    fc_responses_req q;
    cJSON *c = parse_ok("{\"model\":\"m\",\"input\":\"hello\"}", &q);
    CHECK(c && !strcmp(q.model, "m") && q.store && !q.stream && !q.instructions);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "messages")) == 3);
    CHECK(!strcmp(msg(c, 0, "content"), "H1") && !strcmp(msg(c, 2, "role"), "user") && !strcmp(msg(c, 2, "content"), "hello"));
    CHECK(cJSON_GetObjectItemCaseSensitive(c, "temperature")->valuedouble == 1.0);
    CHECK(cJSON_GetObjectItemCaseSensitive(c, "top_p")->valuedouble == 1.0);
    CHECK(!cJSON_GetObjectItemCaseSensitive(c, "max_tokens"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "stream")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "stream_options"), "include_usage")));
    cJSON_Delete(c);
    fc_responses_req_free(&q);

    c = parse_ok("{\"model\":\"m\",\"instructions\":\"SYS\",\"max_output_tokens\":7,\"temperature\":0,\"stream\":true,"
                 "\"store\":false,\"input\":[{\"role\":\"developer\",\"content\":\"D\"},{\"type\":\"message\",\"role\":\"user\","
                 "\"content\":[{\"type\":\"input_text\",\"text\":\"a\"},{\"type\":\"input_text\",\"text\":\"b\"}]},"
                 "{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"c\"}]}],"
                 "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\",\"schema\":{\"type\":\"object\"}}}}", &q);
    CHECK(c && q.stream && !q.store && !strcmp(q.instructions, "SYS"));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "messages")) == 6);
    CHECK(!strcmp(msg(c, 0, "role"), "system") && !strcmp(msg(c, 0, "content"), "SYS"));
    CHECK(!strcmp(msg(c, 1, "content"), "H1"));
    CHECK(!strcmp(msg(c, 3, "role"), "system") && !strcmp(msg(c, 3, "content"), "D"));
    CHECK(!strcmp(msg(c, 4, "content"), "ab") && !strcmp(msg(c, 5, "role"), "assistant"));
    CHECK(cJSON_GetObjectItemCaseSensitive(c, "max_tokens")->valuedouble == 7);
    CHECK(cJSON_GetObjectItemCaseSensitive(c, "temperature")->valuedouble == 0);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(c, "response_format");
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(rf, "type")->valuestring, "json_schema"));
    CHECK(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rf, "json_schema"), "schema")));
    CHECK(strstr(q.input, "SYS") == NULL); /* instructions are not part of the stored input */
    cJSON_Delete(c);
    fc_responses_req_free(&q);

    c = parse_ok("{\"model\":\"m\",\"previous_response_id\":\"resp_1\"}", &q);
    CHECK(c && !strcmp(q.previous_response_id, "resp_1") && !strcmp(q.input, "[]"));
    cJSON_Delete(c);
    fc_responses_req_free(&q);

    expect_400("{\"model\":\"m\"", NULL, "could not parse the JSON body");
    expect_400("{\"input\":\"x\"}", "model", "Missing required parameter: 'model'");
    expect_400("{\"model\":\"m\"}", "input", "Missing required parameter: 'input'");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"temperature\":2.5}", "temperature", "<= 2");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"top_p\":-1}", "top_p", ">= 0");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":1e999}", "max_output_tokens", "<= 1e+09");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":2.5}", "max_output_tokens", "integer");
    { /* function tools parse here; their checks (type, name, schema) are the route's, tested in test_responses.py */
        const char *b = "{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"}]}";
        fc_responses_req q;
        char *err = NULL;
        int st = fc_responses_parse(b, strlen(b), &q, &err);
        CHECKF(st == 200, "%s -> %d %s", b, st, err ? err : "");
        free(err);
        if (st == 200) fc_responses_req_free(&q);
    }
    expect_400("{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\"}]}]}", "input[0]", "text only");
    expect_400("{\"model\":\"m\",\"input\":[\"x\"]}", "input[0]", "expected an object");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"stream\":1}", "stream", "boolean");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"background\":true}", "background", "Background");
    expect_400("{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\"}}}",
               "text.format.schema", "schema");
    return TEST_END();
}
