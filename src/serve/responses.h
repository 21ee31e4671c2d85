/*
 * responses.h: OpenAI's Responses API (POST /v1/responses) for text, over
 * the chat route of the same server.
 *
 * Routes (mounted by fc_openai_api_start):
 *   POST   /v1/responses        create: streamed (typed SSE events) or not
 *   GET    /v1/responses/{id}   a stored response
 *   DELETE /v1/responses/{id}   forget it ({"id","object":"response","deleted":true})
 *   GET    /v1/responses/{id}/input_items  the conversation that went into it (the
 *                               earlier turns of previous_response_id included, the
 *                               instructions not; developer items show as system;
 *                               calls as function_call, tool results as
 *                               function_call_output items),
 *                               ?order=desc|asc, ?limit=1..100 (20), ?after=<item id>
 *
 * A request is translated into a /v1/chat/completions body and sent to this
 * server's own chat route over loopback HTTP (as serve/ollama.c does), so the
 * prompt goes through exactly the chat path: the worker's template, stop
 * strings, length checks, API keys (the Authorization header is passed on),
 * structured outputs. The conversation is: `instructions` as a system
 * message (never carried over from a previous response, as OpenAI says),
 * then the stored conversation of `previous_response_id` (its input and
 * output), then `input` (a string: one user message; or message items with
 * role user / assistant / system / developer (sent as system) and content a
 * string or input_text / output_text parts, joined; function_call items
 * {call_id, name, arguments} as the tool_calls of an assistant message (the
 * preceding one when it is an assistant's, so text and calls of one turn
 * stay one message); function_call_output items {call_id, output (a string
 * or input_text parts)} as tool messages, each answering a call of the
 * input or of the previous response, else a 400 naming the item).
 *
 * Request fields: model, input, instructions, max_output_tokens (>= 1; OpenAI
 * asks >= 16), temperature (0..2, default 1), top_p (0..1, default 1),
 * stream, store (default true), previous_response_id, metadata (at most 16
 * string values, echoed), text.format (text, json_object, json_schema: the
 * chat route's response_format), user, truncation, reasoning and include
 * (accepted, no effect). Function tools: tools [{"type": "function", name,
 * description, parameters, strict (default true, as OpenAI's)}] sent to the
 * chat route as {"type": "function", "function": {...}} and checked by its
 * rules here (tool_calls.h: names, duplicates, a strict schema must compile;
 * errors name the flat fields, "tools[0].parameters"), tool_choice (auto,
 * none, required, {"type": "function", "name"}), parallel_tool_calls. So a
 * strict function's arguments follow its schema, also in auto (the chat
 * route's lazy grammar, Hermes-style templates). Refused with a 400: tool
 * types other than function, required / a named function without tools,
 * image, file and audio parts, background mode.
 *
 * The response object is OpenAI's: id "resp_...", object "response",
 * created_at, status "completed" (or "incomplete" with incomplete_details
 * {"reason":"max_output_tokens"} when the answer was cut by the limit), the
 * request's settings echoed, output [one message item "msg_..." with one
 * output_text part], usage {input_tokens, output_tokens, total_tokens, and
 * their details}. The output items: the answer's text as one message item
 * "msg_..." with one output_text part, and each tool call as a
 * function_call item {"id": "fc_...", call_id (the chat route's "call_..."),
 * name, arguments (a JSON string), status}, in the order the model wrote
 * them (an empty message when the answer is empty). Streaming sends, each
 * with its sequence_number from 0: response.created, response.in_progress,
 * then per item: response.output_item.added, for a message
 * response.content_part.added, response.output_text.delta (one per chat
 * delta), response.output_text.done, response.content_part.done; for a call
 * response.function_call_arguments.delta (one per chat delta),
 * response.function_call_arguments.done; then response.output_item.done;
 * at the end response.completed (or response.incomplete); the stream opens when the chat route's first chunk
 * arrives, so what the chat route refuses (an unknown model, a prompt over
 * the context) is still an HTTP error, and a failure after that is one
 * `error` event. Errors before are HTTP errors with OpenAI's body
 * {"error":{"message","type","param","code"}} (the chat route's errors are
 * passed on as they are). An unknown previous_response_id is a 400
 * "Previous response with id '...' not found." (param previous_response_id).
 *
 * Storage: responses with store true are kept in memory, at most
 * FASTCHAT_RESPONSES_MAX (default 1000) and 256 MiB of JSON; the oldest go
 * first. A restart forgets them all.
 *
 * Threads: handlers run on the HTTP server's threads; the store has a lock.
 */
#ifndef FC_RESPONSES_H
#define FC_RESPONSES_H

#include <stdbool.h>
#include <stddef.h>

struct fc_http_server;
struct fc_openai_api;
typedef struct fc_responses fc_responses;

/* Adds the routes to s, whose OpenAI routes (api) are reached over loopback
 * at host (the listen address; NULL or "0.0.0.0": 127.0.0.1) and
 * fc_openai_api_port(api). Returns the state, freed by fc_responses_free
 * after the HTTP server stopped. */
fc_responses *fc_responses_mount(struct fc_http_server *s, const struct fc_openai_api *api, const char *host);
void fc_responses_free(fc_responses *r);

/* A parsed request (all malloc'd; free with fc_responses_req_free). */
typedef struct fc_responses_req {
    char *model;
    char *instructions;          /* NULL: none */
    char *previous_response_id;  /* NULL: none */
    char *input;                 /* the new input as chat messages: a JSON array */
    char *chat;                  /* chat request fields (temperature, top_p, max_tokens,
                                    response_format, user): a JSON object */
    char *echo;                  /* what the response object echoes (temperature, top_p,
                                    max_output_tokens, metadata, text, tools, ...): a JSON object */
    char *pending_calls;         /* function_call_output items answering no call of the input:
                                    [[call_id, "input[i]"], ...], for previous_response_id's
                                    conversation to answer (fc_responses_check_calls) */
    bool stream, store;
} fc_responses_req;

/* Parses and checks a request body. Returns 200, or the HTTP status (400)
 * with *err a malloc'd OpenAI error body. Pure (no I/O): the fuzz target's
 * entry. */
int fc_responses_parse(const char *body, size_t len, fc_responses_req *out, char **err);
void fc_responses_req_free(fc_responses_req *r);

/* Whether every function_call_output of the input answers a call of the
 * input or of history (previous_response_id's conversation: a JSON array of
 * chat messages; NULL: none): NULL when so, else a malloc'd OpenAI error
 * body for a 400 naming the item. */
char *fc_responses_check_calls(const fc_responses_req *r, const char *history);

/* The /v1/chat/completions body (streamed, with usage) for a parsed
 * request whose earlier conversation is history (a JSON array of chat
 * messages; NULL: none). Malloc'd. */
char *fc_responses_chat_body(const fc_responses_req *r, const char *history);

#endif
