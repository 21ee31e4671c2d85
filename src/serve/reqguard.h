/*
 * reqguard.h: checks of request bodies that the serving endpoints (worker,
 * controller, OpenAI API) make before they parse them.
 *
 * A JSON string may hold U+0000 as the escape \u0000; cJSON decodes it into
 * a C string that ends there, so "name\u0000xx" would silently become
 * "name" (a model name, a message, a prompt cut short). The endpoints refuse
 * such bodies with a 400 instead.
 */
#ifndef FC_REQGUARD_H
#define FC_REQGUARD_H

#include <stdbool.h>
#include <stddef.h>

/* True when the JSON text s[0..n) holds a \u0000 escape inside a string (a
 * raw NUL byte counts too). Does not validate the JSON otherwise. */
bool fc_json_has_nul(const char *s, size_t n);

/* The message of the 400 for such a body. */
#define FC_JSON_NUL_MSG "a JSON string holds a NUL character (\\u0000), which is not accepted"

#endif
