/*
 * nulstream.h: incremental parsers for the two streaming body formats the
 * servers speak, fed with whatever pieces the network delivers.
 *
 *   FastChat's worker stream: JSON objects each followed by one NUL byte
 *     (model_worker's `json.dumps(ret).encode() + b"\0"`; read with
 *     `iter_lines(delimiter=b"\0")`). fc_nulsplit hands back each message
 *     without its NUL.
 *   Server-Sent Events (text/event-stream, the OpenAI streaming format):
 *     "data: ...\n\n" events as the WHATWG HTML spec parses them: lines end
 *     in \n, \r\n or \r; "field: value" with one optional space removed;
 *     several data lines joined by "\n"; lines starting with ':' are
 *     comments; an empty line dispatches the event (only when it has data).
 *     fc_sse_parser hands back each event. fc_sse_format builds one.
 *
 * Neither parser interprets the JSON. Both bound the size of one message, so
 * a hostile peer cannot make them grow without limit.
 *
 * Ownership: each parser is owned by its caller (new/free; free(NULL) is a
 * no-op). Not thread-safe per object.
 */
#ifndef FC_NULSTREAM_H
#define FC_NULSTREAM_H

#include <stdbool.h>
#include <stddef.h>

/* ---- NUL-delimited messages ---- */

typedef struct fc_nulsplit fc_nulsplit;

/* max_msg: the longest message accepted in bytes (0: 64 MiB). */
fc_nulsplit *fc_nulsplit_new(size_t max_msg);
void fc_nulsplit_free(fc_nulsplit *s);

/* Called for each complete message (NUL-terminated copy, len excludes the
 * terminator; borrowed for the call). Return false to stop. */
typedef bool (*fc_nulsplit_cb)(const char *msg, size_t len, void *user);

/* Feeds the next bytes of the stream. Returns false when cb returned false
 * (the remaining input is dropped) or a message exceeded max_msg (the parser
 * is then unusable: error set). */
bool fc_nulsplit_feed(fc_nulsplit *s, const char *data, size_t len, fc_nulsplit_cb cb, void *user);
/* Bytes of an unterminated message held at the end (0 after a clean end). */
size_t fc_nulsplit_pending(const fc_nulsplit *s);
/* The held unterminated tail (NUL-terminated, borrowed), for streams that
 * end without a final NUL. */
const char *fc_nulsplit_tail(const fc_nulsplit *s, size_t *len);
/* True after a message exceeded max_msg. */
bool fc_nulsplit_error(const fc_nulsplit *s);

/* ---- Server-Sent Events ---- */

typedef struct fc_sse_event {
    const char *event;   /* "event:" field, "" when absent ("message") */
    const char *data;    /* data lines joined with '\n', NUL-terminated */
    size_t data_len;
    const char *id;      /* last "id:" seen in the stream, "" when none */
    int retry_ms;        /* last valid "retry:" value, -1 when none */
} fc_sse_event;

typedef struct fc_sse_parser fc_sse_parser;

/* max_event: the largest event (all its data) accepted (0: 64 MiB). */
fc_sse_parser *fc_sse_parser_new(size_t max_event);
void fc_sse_parser_free(fc_sse_parser *p);

/* Called for each dispatched event (fields borrowed for the call). Return
 * false to stop. */
typedef bool (*fc_sse_cb)(const fc_sse_event *ev, void *user);

/* Feeds the next bytes. Returns false when cb returned false or an event
 * exceeded max_event. A UTF-8 byte order mark at the very start is skipped. */
bool fc_sse_parser_feed(fc_sse_parser *p, const char *data, size_t len, fc_sse_cb cb, void *user);
/* Ends the stream: an event still lacking its blank line is discarded, as
 * the spec says. Resets the parser for reuse. */
void fc_sse_parser_reset(fc_sse_parser *p);

/* Writes "event: <event>\n" (when event is not NULL) and one "data: " line
 * per line of data, then the blank line, into a malloc'd NUL-terminated
 * buffer (caller frees with free()); *out_len gets its length. Line breaks in
 * data (\n, \r\n, \r) become separate data lines, so the parser returns data
 * unchanged except that \r\n and \r come back as \n. Never NULL. */
char *fc_sse_format(const char *event, const char *data, size_t len, size_t *out_len);

#endif
