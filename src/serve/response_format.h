/*
 * response_format.h: OpenAI's `response_format` (structured outputs) to
 * grammar text, shared by the API server (which validates it and answers
 * 400) and the worker (which hands the grammar to the engine).
 *
 *   absent, null, {"type":"text"}   no constraint
 *   {"type":"json_object"}          any JSON object
 *   {"type":"json_schema","json_schema":{"name":..,"schema":{..},"strict":..}}
 *                                   JSON accepted by the schema (the subset of
 *                                   sampling/json_schema.c; "strict" is read
 *                                   and ignored: the output always follows it)
 */
#ifndef FC_RESPONSE_FORMAT_H
#define FC_RESPONSE_FORMAT_H

#include <stddef.h>
#include <cjson/cJSON.h>

/* 0: no constraint (*grammar NULL); 1: *grammar is malloc'd grammar text
 * (sampling/grammar.h notation, checked to compile; caller frees); -1: the
 * value is refused, with a one-line message in err[0..err_cap) and *param
 * (when not NULL) the offending field, e.g. "response_format.json_schema". */
int fc_response_format_grammar(const cJSON *rf, char **grammar, char *err, size_t err_cap, const char **param);

#endif
