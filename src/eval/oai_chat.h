/*
 * oai_chat.h: a chat-completions client for any OpenAI-compatible endpoint
 * (OpenAI, vLLM, our own `fastchat serve`), with the retries FastChat's
 * llm_judge wraps around openai.ChatCompletion.create (common.py
 * chat_completion_openai: API_MAX_RETRY tries, then "$ERROR$").
 *
 * Retried: no response (refused, reset, closed, timed out), 408, 409, 429,
 * any 5xx, and a 200 whose body is not a chat completion (garbage). Not
 * retried: other 4xx (a bad request or key will not get better). Waits
 * between tries grow as retry_sleep_s * 2^k (capped at 60 s) with +-25%
 * jitter; a Retry-After is not read (FastChat sleeps a fixed 10 s).
 *
 * Token accounting: the usage of every successful call is added to the
 * client's counters (thread-safe), for the cost line of a run.
 *
 * Threads: one client may be used from many threads at once.
 */
#ifndef FC_OAI_CHAT_H
#define FC_OAI_CHAT_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;

typedef struct fc_oai_params {
    const char *api_base;    /* "http://host:port/v1" (with or without a trailing '/') */
    const char *api_key;     /* NULL or "": no Authorization header */
    const char *model;
    double timeout_s;        /* per try (0: 600) */
    int max_tries;           /* 0: 16 (FastChat's API_MAX_RETRY) */
    double retry_sleep_s;    /* first wait (0: 1; FastChat waits 10 s each time) */
} fc_oai_params;

typedef struct fc_oai_client fc_oai_client;

/* Copies the params. Never NULL. */
fc_oai_client *fc_oai_new(const fc_oai_params *p);
void fc_oai_free(fc_oai_client *c); /* NULL is a no-op */

typedef struct fc_oai_result {
    char *content;           /* malloc'd reply text; NULL when every try failed */
    char error[256];         /* the last failure, when content is NULL */
    int tries;
    int prompt_tokens, completion_tokens;  /* usage of the successful call */
} fc_oai_result;

/* One chat completion: messages is a cJSON array of {"role","content"}
 * (borrowed). temperature < 0 leaves it out; max_tokens <= 0 too. Returns
 * true with out->content set, or false after the last try (out->error).
 * The caller frees out->content with free(). */
bool fc_oai_chat(fc_oai_client *c, const struct cJSON *messages, double temperature, int max_tokens,
                 fc_oai_result *out);

/* Totals over the client's life (thread-safe). */
void fc_oai_usage(fc_oai_client *c, int64_t *calls, int64_t *failures, int64_t *retries,
                  int64_t *prompt_tokens, int64_t *completion_tokens);

#endif
