/*
 * openai_api.h: FastChat's OpenAI-compatible REST server
 * (fastchat/serve/openai_api_server.py) over a controller's workers.
 *
 * Routes:
 *   GET  /v1/models                     controller /refresh_all_workers + /list_models, sorted
 *   POST /v1/chat/completions           chat, streaming (SSE) or not, n choices
 *   POST /v1/completions                text completion, streaming or not, logprobs, echo
 *   POST /v1/embeddings                 batches of FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE (4)
 *   POST /v1/engines/{model}/embeddings per worker call
 *   POST /api/v1/token_check            {"prompts":[{model, prompt, max_tokens}]} -> fits/tokenCount/contextLength
 *   POST /api/v1/chat/completions       chat with string messages and repetition_penalty
 *
 * Each request is checked as FastChat checks it, in its order: the body's
 * schema (40001), the model against the controller's list (40301), the
 * parameter ranges (40302), then the prompt length against the worker's
 * /model_details and /count_token (40303; max_tokens is clamped to
 * context - prompt tokens otherwise). Errors are HTTP 400 with FastChat's
 * body {"object":"error","message","code"} plus an OpenAI "error" object
 * {"message","type","param","code"} so both kinds of client read them.
 * A bad API key is HTTP 401 with FastChat's exact body.
 *
 * Prompts are rendered with the conversation template that the chosen worker
 * reports (/worker_get_conv_template, cached per worker address and model) and
 * its stop strings are merged with the request's (FastChat's set union); the
 * template's stop token ids are always sent.
 *
 * Streaming follows FastChat (§4.7 of the reference): per choice, in order, a
 * first chunk with delta {"role":"assistant"}, then content deltas computed
 * from the worker's cumulative text with U+FFFD removed, chunks that carry a
 * finish_reason but no new text held back and sent after all choices with an
 * empty delta, then "data: [DONE]". A worker that fails or vanishes mid-stream
 * gives the client one error event ({"text","error_code","error":{...}}) and
 * [DONE]; a client that disconnects aborts the worker request.
 *
 * Beyond FastChat: `seed` (choice i gets seed + i), `logprobs`/`top_logprobs`
 * on chat completions (OpenAI's shape), `stream_options.include_usage` (a
 * last chunk with usage and no choices), `max_completion_tokens`, range checks
 * of presence/frequency penalties ([-2, 2]), n <= 128, logprobs <= 20, at most 32 stop sequences, every
 * streamed chunk carries object and created, the completion chunks' index
 * runs over prompts x n as in non-streamed responses, and the logprobs of a
 * streamed chunk are those of its own tokens (FastChat repeats all of them).
 * With --api-keys every route is checked, the /api/v1/ ones included (FastChat leaves
 * those open). A dead worker found before any output is sent (connection
 * refused) makes the server refresh the controller and retry on another
 * replica. Completions take prompts as token ids of the served model (a
 * list of ints, or a list whose items are such lists or strings; FastChat
 * decodes ids with an OpenAI tiktoken vocabulary, meaningless for these
 * models): the worker decodes them (/worker_detokenize, which refuses an id
 * outside the vocabulary: 40302 naming it) and they go to it as
 * prompt_token_ids beside the decoded text (serve/worker.h); a non-integer
 * or negative id is a 40001. Not supported: image parts in messages
 * (text-only models), rejected with 40001. /v1/responses: serve/responses.h.
 *
 * Bounds (not in FastChat): a completions request holds at most 8192 prompts
 * x n (40302 "... is greater than the maximum of 8192 - 'prompt'"); an
 * embeddings request at most 2048 inputs and 65536 tokens (40302), and an
 * input longer than the context gets FastChat's 40303 context-length message
 * from the worker (which cuts it instead with --embed-in-truncate). max_tokens
 * and max_completion_tokens (which wins when both are given) at or below 0
 * get 40302 "N is less than the minimum of 1 - 'max_tokens'"; absent or null,
 * they are unset (chat: up to the context). An empty prompt (no tokens) gets
 * 40302 saying so. A JSON string holding \u0000 gets 40001.
 *
 * Cancellation: a non-streamed request runs its worker calls (at most 32 at
 * a time) on threads of their own while the handler checks its client every
 * 100 ms; a client that leaves aborts the worker calls in flight (the worker
 * sees its connection close and cancels the generation) and the rest never
 * start. Streamed relays check every 100 ms as well. A worker silent for 10 s
 * that does not answer /worker_get_status within 5 s is taken for dead
 * (frozen): the client gets an error then, not after the 100 s timeout.
 *
 * Shutdown (fc_openai_api_free, on SIGTERM/SIGINT): running requests stop
 * within 100 ms; non-streamed clients get HTTP 503 with FastChat's error body
 * ("... (the server is shutting down)"), streamed ones an error event and
 * [DONE].
 *
 * Threads: handlers run on the HTTP server's threads and block on the network
 * only; a streaming response is relayed by its handler's thread.
 */
#ifndef FC_OPENAI_API_H
#define FC_OPENAI_API_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fc_openai_api fc_openai_api;
struct fc_http_server;

typedef struct fc_openai_api_params {
    const char *host;                 /* listen address (an IP); NULL: all interfaces */
    int port;                         /* 0: any free port */
    const char *controller_address;   /* NULL: "http://localhost:21001" */
    const char *const *api_keys;      /* accepted bearer tokens; NULL or n_api_keys 0: no check */
    int n_api_keys;
    /* CORS (FastChat's defaults: origins, methods and headers "*"); NULL: "*". */
    const char *allow_origins;
    const char *allow_methods;
    const char *allow_headers;
    bool allow_credentials;
    /* Called with the HTTP server before it starts, to add more routes (the
     * web UI, serve/web.h); NULL: none. */
    void (*mount)(struct fc_http_server *s, void *user);
    void *mount_user;
} fc_openai_api_params;

/* Starts serving. NULL on failure (logged). Free with fc_openai_api_free. */
fc_openai_api *fc_openai_api_start(const fc_openai_api_params *p);
int fc_openai_api_port(const fc_openai_api *a);
/* Stops serving, waits for the streaming relays to end, frees. NULL is a no-op. */
void fc_openai_api_free(fc_openai_api *a);

/* The --api-keys check of every route, for routes mounted beside these
 * (serve/ollama.h): true when the request may go on; false when it was
 * answered with 401 (with FastChat's body; reply NULL: not answered). */
struct fc_http_request;
struct fc_http_reply;
bool fc_openai_api_auth(const fc_openai_api *a, const struct fc_http_request *req, struct fc_http_reply *reply);

/* For tests and fuzzing: checks a request body as the route `path`
 * ("/v1/chat/completions", "/v1/completions", "/api/v1/chat/completions",
 * "/v1/embeddings") does before it asks the controller or a worker anything:
 * the schema (40001) and the parameter ranges (40302); the model is taken as
 * served. A valid chat request is then rendered with the conversation
 * template conv_template (NULL: "chatml"), as prepare() does with the
 * worker's. Returns the HTTP status (200 when valid) and in *out a malloc'd
 * JSON: the error body, or for a valid request a JSON array of what goes to
 * the worker: one /worker_generate body per prompt (its first choice, with
 * max_tokens clamped as for a context of 8192 tokens and a prompt of none),
 * or for embeddings one /worker_get_embeddings body per batch of 4. */
int fc_openai_api_check_request(const char *path, const char *body, size_t len, const char *conv_template,
                                char **out);

#endif
