/*
 * ollama.h: Ollama's REST API (github.com/ollama/ollama docs/api.md) and the
 * operations routes (/health, /metrics) on the OpenAI API server's port.
 *
 * Routes (mounted by fc_openai_api_start):
 *   POST /api/chat        {model, messages, stream, options, format, keep_alive}
 *   POST /api/generate    {model, prompt, system, raw, stream, options, format}
 *   POST /api/embed       {model, input: str | [str], truncate}
 *   POST /api/embeddings  {model, prompt} (the older route)
 *   GET  /api/tags, GET /api/ps, POST /api/show {model}, GET /api/version
 *   GET  /health          200 {"status":"ok"} when the controller lists at
 *                         least one model, else 503
 *   GET  /metrics         Prometheus text format 0.0.4
 *   POST /tokenize        {model, prompt, add_special_tokens} -> {tokens, count, max_model_len}
 *   POST /detokenize      {model, tokens} -> {prompt}  (vLLM's shapes; relayed to
 *                         a worker's /worker_tokenize, /worker_detokenize)
 * With --api-keys, every route but /health, /metrics and /api/version needs the key.
 *
 * How: a request is translated into the OpenAI server's own request
 * (/api/v1/chat/completions for chat and generate, which renders the
 * worker's conversation template; /v1/completions for generate with raw;
 * /v1/embeddings for the embedding routes; /v1/models for tags) and sent to
 * this same server over loopback, so the model check, the template, the
 * stop strings, the worker relay and its cancellation are those of the
 * OpenAI routes, not a copy. The streamed SSE answer is turned into
 * Ollama's NDJSON lines (stream true, the default) or one object.
 * Authorization headers are passed on (with --api-keys the key is needed).
 *
 * Options: temperature, top_p, top_k, num_predict (max_tokens; < 0 means
 * no limit), stop, seed, repeat_penalty, presence_penalty,
 * frequency_penalty; others are accepted and ignored, as Ollama ignores
 * unknown ones. `format` ("json" or a schema) is refused with 400 "format
 * not supported yet" (no structured-output wiring yet); images too.
 *
 * Errors: {"error": "..."} with 400 (malformed body, wrong types), 404
 * (unknown model: model "x" not found, try pulling it first), 401 (bad key),
 * 500/503 (worker failure); an error after streaming began is one more
 * line {"error": "..."}.
 *
 * Durations are nanoseconds measured in this process (load_duration 0:
 * models are loaded when the worker starts; prompt_eval_duration is the time
 * to the first token).
 *
 * Metrics (/metrics, counters of this process since it started):
 *   fastchat_requests_total{route,status}  every routed request of the API
 *       server (OpenAI, Ollama, web UI, operations; route as registered);
 *       an Ollama generation counts under its /api route and under the
 *       OpenAI route it is relayed to
 *   fastchat_requests_in_flight             generations and embeddings running
 *   fastchat_queue_length                   the controller's /worker_get_status
 *   fastchat_prompt_tokens_total{model}, fastchat_completion_tokens_total{model},
 *   fastchat_model_requests_total{model}    successful generations and
 *       embeddings, recorded by the OpenAI routes (fc_ollama_observe), so
 *       Ollama's routes (relayed to them) count once
 *   fastchat_time_to_first_token_seconds{model},
 *   fastchat_inter_token_latency_seconds{model}  histograms of streamed
 *       generations (Ollama's always are, internally); a non-streamed
 *       OpenAI answer has no timings and is not observed; ITL only for n = 1
 *   read from the workers at scrape time (the worker the controller
 *   dispatches each model to; its /worker_get_engine_stats, ours):
 *   fastchat_model_queue_length{model}, fastchat_kv_cache_blocks_used{model},
 *   fastchat_kv_cache_blocks_total{model}, fastchat_kv_cache_usage_ratio{model},
 *   fastchat_model_requests_running{model}, fastchat_model_requests_waiting{model}
 *
 * Threads: handlers run on the HTTP server's threads; the counters behind
 * /metrics are guarded by a mutex.
 */
#ifndef FC_OLLAMA_H
#define FC_OLLAMA_H

#include <stddef.h>

struct fc_http_server;
struct fc_openai_api;
typedef struct fc_ollama fc_ollama;

/* Adds the routes to s. api: the server they run in (its port is read at
 * request time); host: its listen address (NULL: all); ctl: the controller
 * address. Returns the state, freed by fc_ollama_free after the HTTP server
 * is freed. */
fc_ollama *fc_ollama_mount(struct fc_http_server *s, const struct fc_openai_api *api, const char *host,
                           const char *ctl);
void fc_ollama_free(fc_ollama *o);

/* Metrics hooks for the OpenAI routes (thread-safe; o NULL: no-op).
 * fc_ollama_observe records one finished generation or embedding request
 * of model: its token counts, its time to first token (ttft_s < 0: not
 * measured, a non-streamed answer) and the time from its first to its last
 * piece of text (< 0: not measured), from which each token after the first
 * is observed at the mean gap. fc_ollama_in_flight counts requests running. */
void fc_ollama_observe(fc_ollama *o, const char *model, long prompt_tokens, long completion_tokens, double ttft_s,
                       double first_to_last_s);
void fc_ollama_in_flight(fc_ollama *o, int delta);

/* Route kinds of fc_ollama_translate. */
enum fc_ollama_kind { FC_OLLAMA_CHAT, FC_OLLAMA_GENERATE, FC_OLLAMA_EMBED, FC_OLLAMA_EMBEDDINGS, FC_OLLAMA_SHOW };

/* A translated request (all malloc'd; free with fc_ollama_req_free). */
typedef struct fc_ollama_req {
    char *model;
    char *path;      /* OpenAI route to call: "/api/v1/chat/completions", ... */
    char *body;      /* its JSON body; NULL for FC_OLLAMA_SHOW or an empty generate */
    int stream;      /* 1: NDJSON stream wanted */
    int n_inputs;    /* embed: number of inputs */
} fc_ollama_req;

/* Parses an Ollama request body and builds the OpenAI body. Returns 200,
 * or an HTTP status (400) with *err a malloc'd message. Pure (no I/O): the
 * fuzz target's entry. */
int fc_ollama_translate(enum fc_ollama_kind kind, const char *body, size_t len, fc_ollama_req *out, char **err);
void fc_ollama_req_free(fc_ollama_req *r);

#endif
