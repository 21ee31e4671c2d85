/*
 * json.h: the one JSON writer of the project: string escaping and the few
 * scalar writers, appending to an fc_str (str.h). Objects and arrays are
 * written by the caller with fc_str_putc('{') etc.; for reading JSON the
 * project uses cJSON.
 *
 * Escaping follows Python's json.dumps, which FastChat's replies go through:
 *   "  \  \n \r \t \b \f   as two-character escapes,
 *   other bytes below 0x20  as \u00XX (lowercase hex),
 *   everything else         as it is (0x7F and valid UTF-8 included),
 *   with FC_JSON_ASCII      every code point above 0x7E as \uXXXX, astral ones
 *                           as a surrogate pair (json.dumps' ensure_ascii=True).
 * Invalid UTF-8 (decided here, once for the whole project): by default each
 * maximal ill-formed subpart becomes U+FFFD, as Python's
 * bytes.decode(errors="replace") would make it, so the output is always valid
 * JSON in valid UTF-8. With FC_JSON_SURROGATEESCAPE each invalid byte XX
 * becomes \udcXX instead (Python's errors="surrogateescape" followed by
 * json.dumps; the Jinja tojson filter wants that).
 */
#ifndef FC_JSON_H
#define FC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

enum fc_json_flags {
    FC_JSON_ASCII = 1,           /* escape everything above 0x7E (ensure_ascii) */
    FC_JSON_SURROGATEESCAPE = 2, /* invalid byte XX -> \udcXX instead of U+FFFD */
};

/* Appends s[0..n) as a quoted JSON string (escaping as above). */
void fc_json_put_strn(fc_str *out, const char *s, size_t n);
/* The same for a C string; NULL is written as null. */
void fc_json_put_str(fc_str *out, const char *s);
/* fc_json_put_strn with enum fc_json_flags or'ed together. */
void fc_json_put_strn_flags(fc_str *out, const char *s, size_t n, unsigned flags);

/* `"key"` followed by sep (": " as json.dumps writes it, ":" compact). */
void fc_json_put_key(fc_str *out, const char *key, const char *sep);

/* A number: with digits > 0, printf's %.<digits>g (9 reads a float back
 * exactly, 17 a double); with digits == 0 the shortest text that reads back
 * the same double (Python's repr, which json.dumps uses, though "1" stays
 * "1" where Python writes "1.0"). NaN and infinities, which JSON cannot
 * hold, are written as null. */
void fc_json_put_number(fc_str *out, double v, int digits);
void fc_json_put_int(fc_str *out, long long v);
void fc_json_put_bool(fc_str *out, bool v);
void fc_json_put_null(fc_str *out);

/* A number read from JSON (a cJSON valuedouble) as a long: truncated toward
 * zero and clamped to +-2^53, NaN as 0. A plain (long) cast of 1e999, which
 * cJSON reads as inf, is undefined behaviour. */
static inline long fc_json_long(double v)
{
    if (!(v == v)) return 0;
    if (v > 9007199254740992.0) return 9007199254740992L;
    if (v < -9007199254740992.0) return -9007199254740992L;
    return (long)v;
}

#endif
