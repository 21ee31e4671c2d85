/*
 * openai_impl.h: private to the OpenAI API server (serve/openai_*.c), not a
 * public header. The server is split by route family:
 *   openai_api.c       helpers, errors, upstream calls (controller, worker),
 *                      /v1/models and the other small routes, the offline
 *                      request check, the server's lifetime and route table;
 *   openai_request.c   parsing and validation of chat and completion
 *                      requests, prompt assembly (get_gen_params);
 *   openai_generate.c  /v1/chat/completions and /v1/completions: logprobs,
 *                      usage, the non-streamed choices, the handlers;
 *   openai_stream.c    the streaming writer (Server-Sent Events relayed by
 *                      the handler's thread);
 *   openai_embed.c     /v1/embeddings.
 * What the server serves, and where it differs from FastChat: openai_api.h.
 */
#ifndef FC_OPENAI_IMPL_H
#define FC_OPENAI_IMPL_H

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "serve/openai_api.h"
#include "base/fc_base.h"
#include "base/json.h"
#include "chat/conv.h"
#include "net/http.h"
#include "net/nulstream.h"
#include "serve/ollama.h"
#include "serve/protocol.h"
#include "serve/reqguard.h"
#include "serve/responses.h"
#include "serve/response_format.h"
#include "serve/tool_calls.h"
#include "chat/chat_template.h"

#define MAX_N 128            /* OpenAI's bound on n */
#define MAX_LOGPROBS 20      /* the engine's bound on alternatives per token */
#define MAX_STOP 32          /* stop sequences per request (OpenAI: 4; the worker: 64) */
#define GENERATE_TIMEOUT_S 10800.0 /* FastChat's fetch_remote: aiohttp total 3 h */
#define NO_MAX_TOKENS (1024 * 1024) /* check_length: max_tokens None */
#define MAX_TASKS_AT_ONCE 32 /* non-streamed choices in flight per request */
#define CHECK_N_CTX 8192     /* fc_openai_api_check_request: the context assumed */
#define MAX_CHOICES 8192     /* completions: prompts x n per request */
#define MAX_EMBED_INPUTS 2048 /* embeddings: inputs per request (OpenAI's bound) */
#define MAX_EMBED_TOKENS 65536 /* embeddings: tokens per request (the worker's bound per call too) */
#define STALL_PROBE_S 10.0   /* a worker silent this long is asked /worker_get_status ... */
#define PROBE_TIMEOUT_S 5.0  /* ... and taken for dead when it does not answer in this time */

struct fc_openai_api {
    fc_http_server *http;
    char *ctl;                 /* controller address, no trailing '/' */
    char **keys;               /* API keys (n_keys) */
    int n_keys;
    double worker_timeout_s;   /* FASTCHAT_WORKER_API_TIMEOUT */
    int embed_batch;           /* FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE */

    pthread_mutex_t mu;
    /* conversation templates by "address\nmodel" (conv_template_map) */
    char **conv_keys;
    fc_conv **convs;
    int n_convs, cap_convs;
    /* streaming relays still running */
    pthread_cond_t cv;
    int n_jobs;
    atomic_bool stopping;      /* fc_openai_api_free has begun */
    fc_ollama *ollama;         /* Ollama API, /health, /metrics (serve/ollama.h) */
    fc_responses *responses;   /* /v1/responses (serve/responses.h) */
};

typedef struct api_err {
    int http;         /* 0: no error */
    int code;         /* FastChat ErrorCode */
    const char *param;
    char *msg;
} api_err;

enum up_status { UP_OK = 0, UP_DOWN = -1 /* no response at all */, UP_HTTP = -2, UP_BAD = -3 };

enum req_kind { K_CHAT, K_COMPLETION, K_API_CHAT, K_EMBEDDINGS };

typedef struct gen_req {
    enum req_kind kind;
    cJSON *body;               /* owns everything borrowed below */
    const char *model;
    const cJSON *messages;     /* chat: string or array */
    const char **prompts;      /* completions / embeddings inputs */
    int n_prompts;
    const cJSON **prompt_ids;  /* completions: per prompt, its token ids (checked ints) or NULL (text); NULL: all text */
    double temperature, top_p, presence_penalty, frequency_penalty, repetition_penalty;
    bool has_repetition_penalty;
    long top_k, n;
    bool has_max_tokens;       /* false: None (no limit but the context) */
    long max_tokens;           /* when has_max_tokens */
    const char *max_tokens_param; /* "max_tokens" or "max_completion_tokens" */
    const cJSON *stop;         /* string or array of strings, or NULL */
    bool stream, echo;
    bool has_seed;
    long long seed;
    long logprobs;             /* -1: None; completions: int; chat: top_logprobs when logprobs */
    bool chat_logprobs;
    bool include_usage;
    const cJSON *best_of, *use_beam_search; /* passed through when set */
    const char *encoding_format;
    const cJSON *response_format; /* structured outputs: a validated constraint, passed to the worker */
    fc_tool_req tools;         /* chat: tools, tool_choice, tool parts of the history (tool_calls.h) */
} gen_req;

/* What a request needs from its worker: the address, the template, the
 * rendered prompts and the clamped max_new_tokens. */
typedef struct prep {
    char *addr;
    fc_conv *conv;
    char **prompts;  /* n_prompts rendered prompts */
    int n_prompts;
    long max_new_tokens;
    bool tools_active;  /* the answer is parsed for tool calls */
    char *tool_grammar; /* a forced call's grammar, or NULL */
    const char *tool_trigger; /* the grammar is lazy from this text on (static), or NULL */
} prep;

typedef struct usage {
    double prompt, completion, total;
} usage;

/* ---- small JSON helpers ---- */

static inline cJSON *json_get(const cJSON *o, const char *key)
{
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static inline char *json_print(const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    FC_ASSERT(s);
    return s;
}

static inline void add_int(cJSON *o, const char *k, double v) { cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v)); }

/* /metrics: when the request being handled on this thread began (0: unknown) */
extern _Thread_local double fc_oai_metrics_t0;

/* ---- openai_api.c ---- */

/* shortuuid.random(): 22 characters of its 57-letter alphabet. */
void fc_oai_short_uuid(char *out /* >= 23 bytes */);

/* Removes every U+FFFD (EF BF BD), as FastChat's .replace("\ufffd", ""). */
void fc_oai_strip_fffd(const char *s, size_t n, fc_str *out);

void fc_oai_err_set(api_err *e, int http, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

void fc_oai_err_free(api_err *e);

void fc_oai_reply_err(fc_http_reply *r, const api_err *e);

void fc_oai_reply_obj(fc_http_reply *r, cJSON *o);

/* check_api_key: "Authorization: Bearer <key>" with a listed key. */
bool fc_oai_auth_ok(const fc_openai_api *a, const fc_http_request *req, fc_http_reply *reply);

/* POSTs json to base+path and parses the JSON answer into *out (caller
 * frees). On failure *why (malloc'd) says what happened. */
enum up_status fc_oai_up_post_call(const char *base, const char *path, const char *json, double timeout_s,
                                   const fc_http_call *call, cJSON **out, char **why);

enum up_status fc_oai_up_post(const char *base, const char *path, const char *json, double timeout_s, cJSON **out,
                              char **why);

void fc_oai_ctl_refresh(fc_openai_api *a);

/* check_model: 40301 unless the controller lists the model. */
bool fc_oai_check_model(fc_openai_api *a, const char *model, api_err *e);

/* get_worker_address; NULL (error set) when none serves the model. */
char *fc_oai_worker_address(fc_openai_api *a, const char *model, api_err *e);

/* A worker call that answers a number field ("context_length", "count").
 * Returns the upstream status; on UP_OK *v is set. Other failures set e. */
enum up_status fc_oai_worker_number(fc_openai_api *a, const char *addr, const char *path, const char *model,
                                    const char *prompt, const char *field, long *v, api_err *e);

/* get_conv: the worker's template for the model, fetched once per (address,
 * model); returns a copy the caller frees. */
enum up_status fc_oai_worker_conv(fc_openai_api *a, const char *addr, const char *model, fc_conv **out, api_err *e);

/* ---- openai_request.c ---- */

void fc_oai_req_free(gen_req *r);

/* Sets pydantic's "1 validation error for <schema>" (40001) for field of a
 * request of kind k; returns -1. */
int fc_oai_type_error(api_err *e, enum req_kind k, const char *field, const char *what);

/* Strings of a prompt/input: a string or a list of strings (completions:
 * or token ids, read_id_prompts). */
bool fc_oai_read_texts(gen_req *r, const char *field, api_err *e);

/* Parses and validates a generation request: FastChat's schema (40001)
 * first, then check_model (40301), then check_requests (40302). */
bool fc_oai_parse_gen_req(fc_openai_api *a, const fc_http_request *hr, enum req_kind kind, gen_req *r, api_err *e);

/* Renders the chat messages with the template. NULL with e set on an
 * unknown role. */
char *fc_oai_render_chat(fc_conv *conv, const cJSON *messages, api_err *e);

/* gen_params_json for prompt k, with its token ids as our worker's
 * prompt_token_ids (serve/worker.h) when it was given as ids. */
char *fc_oai_prompt_payload(const gen_req *r, const fc_conv *conv, const char *prompt, int k, long max_new_tokens,
                            int seed_offset);

void fc_oai_prep_free(prep *p);

/* A chat with tools or tool history (tool_calls.h): the model's own chat
 * template when it takes tools (the worker sends it with its conversation
 * template), the generic format through the conversation template
 * otherwise. Sets p->tools_active and p->tool_grammar. a NULL: generic. */
char *fc_oai_render_tools(fc_openai_api *a, prep *p, const gen_req *r, fc_conv *conv, api_err *e);

/* A worker payload with the forced call's grammar added (our extension of
 * the worker protocol, "tool_grammar"; it replaces response_format, which
 * shapes text answers); takes payload. */
char *fc_oai_with_tool_grammar(char *payload, const prep *p);

/* True when the request's work should stop: its client left, or the server
 * is shutting down (then the answer says so). */
bool fc_oai_must_stop(fc_openai_api *a, const fc_http_request *hr);

void fc_oai_err_stopped(fc_openai_api *a, api_err *e);

/* Resolves the worker and prepares the prompts. A worker that does not answer
 * at all is taken for dead: the controller refreshes its list (dropping it)
 * and another replica is tried. Stops early (e set) when must_stop. */
bool fc_oai_prepare(fc_openai_api *a, const fc_http_request *hr, const gen_req *r, prep *p, api_err *e);

/* ---- openai_generate.c ---- */

/* A slice [from, to) of FastChat's logprobs dict, as a completion's
 * {"text_offset","token_logprobs","tokens","top_logprobs"}. */
cJSON *fc_oai_completion_logprobs(const cJSON *lp, int from, int to);

/* The same slice in OpenAI's chat shape: {"content": [{token, logprob, bytes,
 * top_logprobs: [{token, logprob, bytes}]}]}. */
cJSON *fc_oai_chat_logprobs(const cJSON *lp, int from, int to);

int fc_oai_logprobs_len(const cJSON *lp);

void fc_oai_usage_add(usage *u, const cJSON *chunk);

cJSON *fc_oai_usage_json(const usage *u, bool with_completion);

/* A worker that has been silent STALL_PROBE_S: false when it does not answer
 * a status request either (frozen, e.g. SIGSTOP; FastChat would wait out
 * FASTCHAT_WORKER_API_TIMEOUT). */
bool fc_oai_worker_alive(const char *addr);

const char *fc_oai_finish_of(const cJSON *chunk, const char *dflt);

void fc_oai_h_chat(const fc_http_request *req, fc_http_reply *reply, void *user);

void fc_oai_h_api_chat(const fc_http_request *req, fc_http_reply *reply, void *user);

void fc_oai_h_completions(const fc_http_request *req, fc_http_reply *reply, void *user);

/* ---- openai_stream.c ---- */

void fc_oai_generate_streaming(fc_openai_api *a, const gen_req *r, const prep *p, fc_http_reply *reply);

/* ---- openai_embed.c ---- */

/* Parses and validates an embeddings request (the model from the body, else
 * url_model); without a server (a NULL) the model is not checked. */
bool fc_oai_parse_embed_req(fc_openai_api *a, const fc_http_request *hr, const char *url_model, gen_req *r,
                            api_err *e);

/* The /worker_get_embeddings body for inputs [start, start + bs). */
char *fc_oai_embed_payload(const gen_req *r, int start, int bs);

/* /v1/embeddings and /v1/engines/{model}/embeddings */
void fc_oai_embeddings(fc_openai_api *a, const fc_http_request *hr, fc_http_reply *reply, const char *url_model);

void fc_oai_h_embeddings(const fc_http_request *req, fc_http_reply *reply, void *user);

#endif
