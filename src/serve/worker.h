/*
 * worker.h: FastChat's model worker (fastchat/serve/model_worker.py, with
 * multi_model_worker.py's several models per process) on our engine.
 *
 * HTTP endpoints (POST with JSON), bodies as FastChat's (§3 of the protocol
 * reference):
 *   /worker_generate_stream   generation params -> JSON chunks each followed by
 *                             one NUL byte: {"text": cumulative text,
 *                             "error_code": 0, "usage": {prompt_tokens,
 *                             completion_tokens, total_tokens}, "finish_reason":
 *                             null|"stop"|"length", "logprobs": null|{text_offset,
 *                             tokens, token_logprobs, top_logprobs}}
 *   /worker_generate          the same, the last chunk only, as one JSON
 *   /worker_get_embeddings    {input: [str], encoding_format?} -> {"embedding":
 *                             [[float]] or [base64 float32], "token_num": n}
 *   /worker_get_status        {"model_names", "speed": 1, "queue_length"}
 *   /count_token              {prompt} -> {"count", "error_code": 0}
 *   /worker_tokenize          {prompt, add_special_tokens} -> {"tokens", "count", "max_model_len", "error_code": 0}
 *   /worker_detokenize        {tokens} -> {"prompt", "error_code": 0}  (not in FastChat; the API's /tokenize)
 *   /worker_get_engine_stats  {"model_names", "queue_length", "kv_cache": [{model, blocks_used,
 *                             blocks_total, running, waiting}]}  (not in FastChat; the API's /metrics)
 *   /worker_get_conv_template {"conv": {...}} (FastChat's Conversation fields)
 *   /model_details            {"context_length": n}
 * Engine failures come in-band as FastChat sends them, HTTP 200 with
 * {"text": SERVER_ERROR_MSG "\n\n(" why ")", "error_code": 50001, or 50002
 * when the KV cache cannot hold the request (the CUDA_OUT_OF_MEMORY analogue)}.
 *
 * Generation parameters read (FastChat's defaults): prompt (required),
 * temperature 1.0, top_p 1.0, top_k -1, repetition_penalty 1.0,
 * presence_penalty 0, frequency_penalty 0, max_new_tokens 256, stop (string or
 * list), stop_token_ids [] (EOS always added), echo true, logprobs (any
 * non-null value enables per-token logprobs; an integer k > 0 also fills
 * top_logprobs with the k best {token: logprob}), seed (any 64-bit integer,
 * negative ones taken modulo 2^64; else the worker's
 * --seed), model (routes between the models of a multi-model worker).
 * Our extension (FastChat's workers ignore unknown keys, so a FastChat
 * server may send it or not): response_format, OpenAI's object as the API
 * server received it ({"type":"text"|"json_object"|"json_schema",
 * "json_schema":{"name","schema","strict"}}, see serve/response_format.h):
 * the output is constrained to JSON (any object, or what the schema accepts)
 * by a grammar applied during sampling (fc_gen_request.grammar); a schema
 * that is unsupported, unsatisfiable or malformed gets a 400 naming why.
 * Also ours: prompt_token_ids, a list of token ids of the model's vocabulary
 * used as the prompt as they are (no special tokens added) instead of
 * tokenizing `prompt` (which the API server sends too, decoded from the ids,
 * so a FastChat worker, which ignores the ids, still sees the same text); an
 * id outside the vocabulary gets a 400 naming it.
 * Also ours: tool_grammar (a forced tool call's grammar, made by the API
 * server) and tool_grammar_trigger: with it the tool grammar is lazy, the
 * output free until it contains the trigger text and the grammar's from
 * there (fc_gen_request.grammar_trigger; strict tools under tool_choice
 * "auto"); response_format wins over both.
 * Also ours: /worker_generate's answer carries "timings": {"first_to_last_s",
 * "first_to_reply_s"}: seconds from the first sampled token to the last one
 * and to the reply (the API server's /metrics derives the time to first
 * token and the inter-token latency of a non-streamed request from them).
 * A prompt longer than context - max_new_tokens - 1 tokens keeps its last
 * tokens, as FastChat truncates.
 *
 * Concurrency (--limit-worker-concurrency, FastChat's semaphore): at most that
 * many generation and embedding requests are admitted at once; the rest wait
 * in arrival order, and queue_length (reported to the controller) is admitted
 * + waiting, FastChat's formula. The admitted requests run together in the
 * engine's continuous batch (FastChat's HF worker interleaves them one token
 * at a time instead), so the limit is the batch width: the default 5 mirrors
 * model_worker; raise it (vllm_worker uses 1024) to batch more.
 *
 * Bounds and checks: max_new_tokens < 1 and an empty prompt (no tokens) get a
 * 400 saying so; a body with \u0000 in a string gets a 400; embeddings take at
 * most 2048 inputs and 65536 tokens per request, and an input longer than the
 * context gets {"text": FastChat's context-length message, "error_code":
 * 40303} (or is cut there with embed_in_truncate); lengths are checked before
 * anything is computed. A waiting handler checks its client every 100 ms, so
 * a client that leaves cancels its work within about that. fc_worker_free
 * ends what runs with an error chunk ("the worker is shutting down").
 *
 * Embedding models: a --model-path that is a BERT folder (config.json
 * model_type "bert", model/bert.h: all-MiniLM-L6-v2 and other
 * sentence-transformers encoders) is loaded as an encoder, not a chat model:
 * /worker_get_embeddings answers with its pooled (and, as modules.json says,
 * normalized) sentence embeddings, inputs cut at max_seq_length as
 * sentence-transformers does (so never the context-length error), in forward
 * passes of up to 64 inputs packed together; /count_token counts those
 * tokens and /model_details gives max_seq_length. Chat and completion
 * requests, the conversation template, /worker_tokenize and
 * /worker_detokenize get a 400 saying the model is an embedding model. The
 * encoder runs on its own thread pool, outside the chat engine's scheduler
 * (one embedding request at a time per encoder, on the HTTP thread that
 * holds the admission slot): a clearly separated path, since an encoder
 * needs no KV cache, sampling or continuous batching.
 *
 * Registration: unless no_register, the worker registers with the controller
 * at start ({worker_name, check_heart_beat: true, worker_status, multimodal:
 * false}) and a thread sends /receive_heart_beat {worker_name, queue_length}
 * every heart_beat_interval_s (FASTCHAT_WORKER_HEART_BEAT_INTERVAL, 45 s),
 * retrying every 5 s on failure, and re-registers when the controller answers
 * exist=false. A controller that is down at start is not fatal (FastChat's
 * worker dies then): registration is retried every 5 s.
 *
 * Deliberate differences from FastChat: malformed bodies (not JSON, no
 * prompt, wrong types, numbers that are not finite) get HTTP 400 with {"detail", "text", "error_code":
 * 40001} (FastChat answers 500), so FastChat's own stream readers still find
 * "text" and "error_code"; usage.completion_tokens counts the tokens
 * generated (FastChat reports one less, its loop index); top_logprobs is
 * filled when logprobs is an integer k > 0 (FastChat always sends {}); a
 * client that disconnects cancels its generation at once (FastChat's HF worker
 * generates to the end). As FastChat: with echo the text starts with the
 * prompt decoded without special tokens, and with echo and logprobs the
 * prompt's tokens lead the logprobs (the first with null).
 */
#ifndef FC_WORKER_H
#define FC_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct fc_worker fc_worker;

typedef struct fc_worker_model {
    const char *model_path;     /* GGUF file or Hugging Face folder */
    const char *model_names;    /* comma list; NULL: the path's last component */
    const char *conv_template;  /* NULL: chosen as chat/template_pick.h says */
} fc_worker_model;

typedef struct fc_worker_params {
    const char *host;               /* listen address; NULL: "localhost" */
    int port;                       /* 0: any free port */
    const char *worker_address;     /* what the controller calls; NULL: "http://localhost:<port>" */
    const char *controller_address; /* NULL: "http://localhost:21001" */
    bool no_register;
    int limit_worker_concurrency;   /* <= 0: 5 */
    int stream_interval;            /* tokens between chunks; <= 0: 2 */
    bool has_seed;
    uint64_t seed;                  /* re-seeds every generation (FastChat --seed) */
    int n_threads;                  /* compute threads per model; <= 0: all CPUs */
    int64_t kv_cache_tokens;        /* KV budget per model; 0: the engine's default */
    bool embed_in_truncate;         /* embeddings keep the first context-length tokens */
    bool exact;                     /* f32 reference mode */
    bool act8;                      /* 8-bit activations everywhere (fc_exec_params.act8) */
    bool load_8bit;                 /* --load-8bit: q8_0 matrices at load (fc_model_load_params) */
    double heart_beat_interval_s;   /* <= 0: FASTCHAT_WORKER_HEART_BEAT_INTERVAL, else 45 */
    const fc_worker_model *models;  /* at least one */
    int n_models;
} fc_worker_params;

/* Loads the models, starts their engines, serves, and registers. NULL on
 * failure (logged: a model that does not load, the port in use, ...). */
fc_worker *fc_worker_start(const fc_worker_params *p);
/* The bound port and the address the worker registers as. */
int fc_worker_port(const fc_worker *w);
const char *fc_worker_address(const fc_worker *w);
/* Admitted + waiting requests (what the heartbeat reports). Thread-safe. */
int fc_worker_queue_length(fc_worker *w);
/* For tests and fuzzing: reads a /worker_generate(_stream) body as the
 * handlers do, without a model (nothing is tokenized or truncated). When the
 * body is accepted, calls use (if not NULL) with its prompt, the engine
 * request (prompt ids unset; borrowed for the call) and echo, and returns
 * true; else returns false with the 400's message in err (err_size bytes). */
struct fc_gen_request;
bool fc_worker_parse_generate(const char *body, size_t len,
                              void (*use)(const char *prompt, const struct fc_gen_request *r, bool echo, void *user),
                              void *user, char *err, size_t err_size);
/* Stops serving (open streams are cancelled), stops the heartbeat, frees the
 * engines and models. NULL is a no-op. */
void fc_worker_free(fc_worker *w);

#endif
