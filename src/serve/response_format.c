/*
 * response_format.c: OpenAI response_format to grammar text. See
 * response_format.h.
 */
#include "response_format.h"
#include "sampling/grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int refuse(char *err, size_t cap, const char **param, const char *p, const char *msg)
{
    if (err && cap) snprintf(err, cap, "%s", msg);
    if (param) *param = p;
    return -1;
}

int fc_response_format_grammar(const cJSON *rf, char **grammar, char *err, size_t err_cap, const char **param)
{
    *grammar = NULL;
    if (param) *param = NULL;
    if (!rf || cJSON_IsNull(rf)) return 0;
    if (!cJSON_IsObject(rf))
        return refuse(err, err_cap, param, "response_format", "Invalid type for 'response_format': expected an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!type) return refuse(err, err_cap, param, "response_format.type", "Missing required parameter: 'response_format.type'");
    if (!cJSON_IsString(type))
        return refuse(err, err_cap, param, "response_format.type",
                      "Invalid type for 'response_format.type': expected a string");
    char *text = NULL;
    char msg[320];
    if (!strcmp(type->valuestring, "text")) return 0;
    if (!strcmp(type->valuestring, "json_object")) {
        text = fc_json_object_grammar();
    } else if (!strcmp(type->valuestring, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        if (!js || cJSON_IsNull(js))
            return refuse(err, err_cap, param, "response_format.json_schema",
                          "Missing required parameter: 'response_format.json_schema'");
        if (!cJSON_IsObject(js))
            return refuse(err, err_cap, param, "response_format.json_schema",
                          "Invalid type for 'response_format.json_schema': expected an object");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
        if (name && !cJSON_IsNull(name) && !cJSON_IsString(name))
            return refuse(err, err_cap, param, "response_format.json_schema.name",
                          "Invalid type for 'response_format.json_schema.name': expected a string");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!schema || cJSON_IsNull(schema))
            return refuse(err, err_cap, param, "response_format.json_schema.schema",
                          "Missing required parameter: 'response_format.json_schema.schema'");
        if (!cJSON_IsObject(schema) && !cJSON_IsBool(schema))
            return refuse(err, err_cap, param, "response_format.json_schema.schema",
                          "Invalid schema for response_format: the schema must be a JSON object");
        char *st = cJSON_PrintUnformatted(schema);
        char why[256] = "";
        text = st ? fc_json_schema_to_grammar(st, strlen(st), why, sizeof why) : NULL;
        free(st);
        if (!text) {
            snprintf(msg, sizeof msg, "Invalid schema for response_format '%s': %s",
                     cJSON_IsString(name) ? name->valuestring : "", why[0] ? why : "cannot be compiled");
            return refuse(err, err_cap, param, "response_format.json_schema.schema", msg);
        }
    } else {
        snprintf(msg, sizeof msg,
                 "Invalid value: '%.64s'. Supported values are: 'text', 'json_object', and 'json_schema'.",
                 type->valuestring);
        return refuse(err, err_cap, param, "response_format.type", msg);
    }
    /* the grammar must compile (a root that can never complete is refused) */
    char why[256] = "";
    fc_grammar *g = fc_grammar_parse(text, strlen(text), why, sizeof why);
    if (!g) {
        free(text);
        snprintf(msg, sizeof msg, "Invalid schema for response_format: unsatisfiable: %s", why);
        return refuse(err, err_cap, param, "response_format.json_schema.schema", msg);
    }
    fc_grammar_free(g);
    *grammar = text;
    return 1;
}
