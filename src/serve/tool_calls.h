/*
 * tool_calls.h: OpenAI tool calling for /v1/chat/completions.
 *
 * Request side: the `tools`, `tool_choice` and `parallel_tool_calls` fields
 * and the tool parts of the history (assistant messages with `tool_calls`,
 * `tool` messages) are validated (fc_tool_req_parse), then the conversation
 * is prepared for one of two renderers:
 *   - the model's own Hugging Face chat template when it takes `tools`
 *     (fc_tool_template_takes_tools): fc_tool_messages_for_template gives
 *     the messages with each call's arguments as an object, as transformers'
 *     templates expect them; the tools go to the template as `tools`;
 *   - otherwise the generic format (fc_tool_messages_generic): a system
 *     block lists the functions as JSON and asks for Hermes-style calls
 *     <tool_call>{"name": ..., "arguments": {...}}</tool_call>; earlier
 *     calls are written back in that syntax in the assistant turns, tool
 *     results become user turns "<tool_response>...</tool_response>".
 *     The exact text is README.md's "Tool calling" section.
 *
 * tool_choice "required" or a named function: fc_tool_grammar gives a
 * grammar (sampling/grammar.h notation) that forces the output to be one
 * call (more with parallel_tool_calls) in the template's syntax, whose
 * arguments follow the function's `parameters` schema. tool_choice "auto"
 * with a `strict` tool: the same grammar, lazy from the call marker on
 * (fc_tool_lazy_grammar).
 *
 * Output side: fc_tool_parser reads the model's text incrementally and
 * splits it into content and calls. Recognised syntaxes:
 *   Hermes / Qwen2.5:  <tool_call>{"name": "f", "arguments": {...}}</tool_call>
 *   Llama 3.1:         {"name": "f", "parameters": {...}} at the start of the
 *                      answer or after another call (also after <|python_tag|>)
 *   Mistral:           [TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]
 *                      (a bare [{"name": ...}] at the start too)
 * A call's arguments are the raw JSON text the model wrote (an object in
 * the model's own spacing), streamed as it comes; a string-valued
 * "arguments" is decoded. Whitespace around calls is not content. A call
 * that never gets its "name" is given back as content, and so is a bare
 * JSON object or list (no marker) naming a function that is not among
 * the request's tools (an answer that merely is JSON).
 */
#ifndef FC_TOOL_CALLS_H
#define FC_TOOL_CALLS_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

enum fc_tool_choice { FC_TOOL_CHOICE_AUTO, FC_TOOL_CHOICE_NONE, FC_TOOL_CHOICE_REQUIRED, FC_TOOL_CHOICE_NAMED };

enum fc_tool_style { FC_TOOL_STYLE_HERMES, FC_TOOL_STYLE_LLAMA3, FC_TOOL_STYLE_MISTRAL };

/* A request's tool settings; every pointer borrows from the request body. */
typedef struct fc_tool_req {
    const cJSON *tools;         /* the `tools` array, NULL when absent or empty */
    int n_tools;
    enum fc_tool_choice choice; /* default: auto with tools, none without */
    const char *named;          /* FC_TOOL_CHOICE_NAMED: the function */
    bool parallel;              /* parallel_tool_calls (default true) */
    bool history;               /* messages hold tool_calls or tool messages */
} fc_tool_req;

/* Validates the request body's tool fields and the tool parts of its
 * `messages`. 0 and *out filled; -1 with a one-line message in err and the
 * offending field in *param (OpenAI's 400 invalid_request_error). */
int fc_tool_req_parse(const cJSON *body, fc_tool_req *out, char *err, size_t err_cap, const char **param);

/* Whether tools go into the prompt and the output is parsed for calls. */
bool fc_tool_req_active(const fc_tool_req *t);
/* Whether the conversation needs the tool renderers (active or history). */
bool fc_tool_req_needed(const fc_tool_req *t);
/* Whether a call is forced (required or named). */
bool fc_tool_req_forced(const fc_tool_req *t);

/* Whether a Hugging Face chat template renders `tools` (NULL: no). */
bool fc_tool_template_takes_tools(const char *jinja);
/* The call syntax of a chat template (NULL or unknown: Hermes). */
enum fc_tool_style fc_tool_style_of(const char *jinja);

/* A copy of messages for a chat template: tool_calls' arguments strings
 * parsed into objects (left a string when not JSON); when the tools are
 * not active (tool_choice none) nothing else changes. Caller cJSON_Deletes. */
cJSON *fc_tool_messages_for_template(const cJSON *messages);

/* The generic rendering: a new messages array of plain system / user /
 * assistant messages with string content (see the header comment); the
 * tools block is added only when fc_tool_req_active. Caller cJSON_Deletes. */
cJSON *fc_tool_messages_generic(const cJSON *messages, const fc_tool_req *t);
/* The generic system block alone (malloc'd). */
char *fc_tool_generic_block(const fc_tool_req *t);

/* The grammar forcing a call (required / named) in `style`; NULL with a
 * message in err when a strict function's schema cannot be compiled (a
 * non-strict one falls back to any JSON object). Caller frees. */
char *fc_tool_grammar(const fc_tool_req *t, enum fc_tool_style style, char *err, size_t err_cap);

/* tool_choice "auto" with at least one `strict` tool, in the Hermes style
 * (the generic format, Qwen2.5, Hermes): the grammar of any call(s) of the
 * request's functions (as fc_tool_grammar for "required"), applied lazily:
 * the answer is free text until it writes *trigger ("<tool_call>", static),
 * then the calls follow the grammar, strict functions' arguments their
 * `parameters` schema (the engine's fc_gen_request.grammar_trigger). NULL
 * with *trigger NULL when not applicable (no strict tool, a forced choice,
 * another style: Llama 3.1's bare JSON and Mistral's [TOOL_CALLS] calls
 * are not constrained in auto), or with a message in err (err[0] set) when
 * a schema cannot be compiled. Caller frees. */
char *fc_tool_lazy_grammar(const fc_tool_req *t, enum fc_tool_style style, const char **trigger, char *err,
                           size_t err_cap);

/* ---- the output parser ---- */

enum fc_tool_ev_kind {
    FC_TOOL_EV_CONTENT, /* text: content */
    FC_TOOL_EV_START,   /* a call begins: index, id, name */
    FC_TOOL_EV_ARGS     /* text: a fragment of the call `index`'s arguments */
};

typedef struct fc_tool_ev {
    enum fc_tool_ev_kind kind;
    int index;
    const char *id, *name;
    const char *text;
    size_t len;
} fc_tool_ev;

typedef void (*fc_tool_emit_fn)(const fc_tool_ev *ev, void *user);

typedef struct fc_tool_parser fc_tool_parser;

/* emit is called from feed and finish, in order; pointers in an event live
 * until emit returns. */
fc_tool_parser *fc_tool_parser_new(fc_tool_emit_fn emit, void *user);
void fc_tool_parser_free(fc_tool_parser *p); /* NULL is a no-op */
/* More text of the answer. */
void fc_tool_parser_feed(fc_tool_parser *p, const char *text, size_t len);
/* The answer ended: what was held back is settled. */
void fc_tool_parser_finish(fc_tool_parser *p);
/* Calls begun so far. */
int fc_tool_parser_n_calls(const fc_tool_parser *p);
/* The request's `tools` array (copied): bare JSON naming anything else is
 * content. Without it (NULL, the default) any name is taken. Call before
 * the first feed. */
void fc_tool_parser_set_tools(fc_tool_parser *p, const cJSON *tools);

/* The whole answer at once (tools: as fc_tool_parser_set_tools): the calls as OpenAI's message.tool_calls array
 * (NULL when none) and the content (malloc'd, NULL when empty or only
 * whitespace while there are calls). */
cJSON *fc_tool_parse_text(const char *text, size_t len, const cJSON *tools, char **content);

/* A fresh "call_" id of 24 random letters and digits into out (>= 32). */
void fc_tool_call_id(char *out);

#endif
