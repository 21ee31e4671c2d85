/*
 * pyjson.h: the conversation-JSON reader and writer of `fastchat data`.
 *
 * FastChat's data scripts read a file with Python's json.load and write with
 * json.dump(obj, f, indent=2, ensure_ascii=False). To give the same bytes, this
 * module accepts what Python's json module accepts and writes what it writes:
 *
 * Reading (Python json.loads with the C scanner, strict=True):
 *   - whitespace is " \t\n\r" only; NaN, Infinity and -Infinity are values;
 *   - raw control characters (< 0x20) inside strings are errors; escapes are
 *     \" \\ \/ \b \f \n \r \t \uXXXX; a \uD8xx\uDCxx pair joins into one code
 *     point, a lone surrogate is kept (stored as its 3-byte WTF-8 form);
 *   - the file must be UTF-8 (Python opens it as text): invalid bytes are an
 *     error with their offset; a leading BOM is an error, as in Python;
 *   - numbers keep their source text; integers are printed as Python's int()
 *     would ("-0" becomes "0"), others as Python's float repr ("1E5" becomes
 *     "100000.0", "1e999" becomes "Infinity");
 *   - objects keep their keys in order; a repeated key keeps its first
 *     position and its last value (a Python dict built from the pairs).
 * Writing (json.dump indent=2, separators ", " -> "," at line ends, ": "):
 *   ensure_ascii false writes UTF-8 as is and escapes only " \ and control
 *   characters (\n \r \t \b \f, else \u00XX); true escapes every non-ASCII
 *   code point as \uXXXX (surrogate pairs above U+FFFF). A lone surrogate is
 *   written as \udXXX in both modes (Python would stop with an encoding error).
 *
 * Streaming: FastChat's files are one JSON array. fc_pyjson_scan_array checks
 * the whole (memory-mapped) file in one pass without building anything and
 * records where each top-level element starts and ends; fc_pyjson_parse then
 * builds one element at a time into an arena that is reset between elements,
 * so memory stays at the element offsets plus one conversation.
 *
 * Not done: duplicate-key handling costs O(keys^2) per object (objects here
 * have a handful of keys); nesting deeper than 1000 levels is an error (Python
 * stops near there too, with a RecursionError).
 */
#ifndef FC_DATA_PYJSON_H
#define FC_DATA_PYJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fc_pj_type { FC_PJ_NULL, FC_PJ_FALSE, FC_PJ_TRUE, FC_PJ_INT, FC_PJ_FLOAT, FC_PJ_STR,
                  FC_PJ_ARR, FC_PJ_OBJ };

typedef struct fc_pj fc_pj;
struct fc_pj {
    enum fc_pj_type type;
    size_t len;         /* STR: bytes; INT/FLOAT: source text bytes; ARR/OBJ: count */
    const char *str;    /* STR: UTF-8 (WTF-8 for lone surrogates), not NUL-terminated,
                           may contain NUL; INT/FLOAT: source text ("NaN", "-Infinity") */
    fc_pj *items;       /* ARR: len values; OBJ: 2*len values, key then value */
};

/* A bump allocator for parsed values; fc_pj_arena_reset keeps the first block. */
typedef struct fc_pj_arena fc_pj_arena;
fc_pj_arena *fc_pj_arena_new(void);
void fc_pj_arena_reset(fc_pj_arena *a);
void fc_pj_arena_free(fc_pj_arena *a); /* NULL is a no-op */
void *fc_pj_alloc(fc_pj_arena *a, size_t n);

/* A syntax error: byte offset into the buffer and a message ("expecting ','
 * delimiter", "invalid UTF-8 byte", ...). */
typedef struct fc_pj_error {
    size_t offset;
    const char *msg; /* static string */
} fc_pj_error;

/* Where one top-level array element lies in the buffer: buf[off, off+len). */
typedef struct fc_pj_span {
    size_t off, len;
} fc_pj_span;

/* Checks that buf[0, n) is one JSON array (whitespace around it allowed) and
 * fills *spans (malloc'd, caller frees with free()) with its elements. On a
 * syntax error returns false with *err set (and *spans NULL); *not_array is
 * set when the document is valid JSON whose top level is not an array. */
bool fc_pyjson_scan_array(const char *buf, size_t n, fc_pj_span **spans, size_t *n_spans,
                          fc_pj_error *err, bool *not_array);

/* Checks that buf[0, n) is exactly one JSON value (whitespace around it
 * allowed), building nothing. */
bool fc_pyjson_validate(const char *buf, size_t n, fc_pj_error *err);

/* Parses exactly one JSON value from buf[0, n) (whitespace around it allowed)
 * into the arena. Returns NULL with *err set on a syntax error (offsets are
 * relative to buf). Strings without escapes point into buf (so buf must
 * outlive the value); others live in the arena. */
fc_pj *fc_pyjson_parse(fc_pj_arena *a, const char *buf, size_t n, fc_pj_error *err);

/* ---- access ---- */

/* The value of key in an object (the last one when repeated); NULL when v is
 * not an object or has no such key. */
fc_pj *fc_pj_get(const fc_pj *v, const char *key);
/* v is a string equal to s (NUL-terminated). */
bool fc_pj_str_eq(const fc_pj *v, const char *s);
/* Number of Unicode code points of a string value (Python's len()). */
size_t fc_pj_str_cplen(const char *s, size_t n);
/* A new string value in the arena (copies s). */
fc_pj *fc_pj_new_str(fc_pj_arena *a, const char *s, size_t n);

/* ---- writing ---- */

/* The output buffer of the writer (a plain growable byte buffer). */
typedef struct fc_pj_out {
    char *p;
    size_t len, cap;
} fc_pj_out;
void fc_pj_out_reserve(fc_pj_out *o, size_t extra);
void fc_pj_out_putn(fc_pj_out *o, const char *s, size_t n);
void fc_pj_out_puts(fc_pj_out *o, const char *s);
void fc_pj_out_free(fc_pj_out *o);

/* Appends v as json.dump(indent=2) writes it when v sits at nesting depth
 * `level` (the caller has written the indentation of the first line). */
void fc_pyjson_write(fc_pj_out *o, const fc_pj *v, int level, bool ensure_ascii);
/* Appends a JSON string literal as json.dumps writes it. */
void fc_pyjson_write_str(fc_pj_out *o, const char *s, size_t n, bool ensure_ascii);
/* Appends Python's str() of a value as print(f"{v}") shows it, for the
 * messages the scripts print (strings raw, None, True, ints, floats). Lists
 * and dicts are written in the approximate repr form json gives them. */
void fc_pyjson_write_pystr(fc_pj_out *o, const fc_pj *v);

#endif
