/*
 * engine.h: generation with continuous batching.
 *
 * An fc_engine owns one model's execution context, its paged KV cache and
 * one scheduler thread. Requests (token ids plus sampling parameters) are
 * submitted from any thread; every step the scheduler builds one batch that
 * holds one token for each running sequence and prompt chunks of new ones
 * (chunked prefill, up to n_batch_max tokens), runs one forward call, samples
 * each sequence's next token, and reports it through the request's callback.
 *
 * Memory is bounded by the KV budget: a request waits in the queue until its
 * prompt fits; when running sequences outgrow the pool, the newest one is
 * preempted (its blocks freed, its prompt and output recomputed later) so the
 * others finish. Finished sequences stay cached until their blocks are needed,
 * and a new prompt that starts with a cached or running sequence's tokens
 * shares those blocks instead of recomputing them (prefix caching: system
 * prompts, earlier turns of a chat).
 *
 * Text: each event carries the UTF-8 text the new token completes, with
 * stop strings applied as FastChat's generate_stream does (text cut at the
 * first stop string; a tail that could still become a stop string is held
 * back until it cannot).
 *
 * Embeddings and prompt scoring are request kinds of the same scheduler
 * (fc_engine_embed / fc_engine_score below): one thread pool, one KV cache.
 *
 * Threads: submit/cancel/stats from any thread. Callbacks run on the
 * scheduler thread and must not block or call back into the engine except
 * fc_engine_cancel.
 */
#ifndef FC_ENGINE_H
#define FC_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include "model/model.h"
#include "model/t5.h"
#include "tokenizer/tokenizer.h"
#include "sampling/sampler.h"

typedef struct fc_engine fc_engine;

typedef struct fc_engine_params {
    int n_threads;       /* compute threads (<= 0: all CPUs) */
    bool exact;          /* f32 reference mode (slow) */
    bool act8;           /* 8-bit activations everywhere (fc_exec_params.act8) */
    int64_t kv_tokens;   /* KV cache budget in tokens (0: 2 x the model context, at most 32768;
                          * memory is committed only as blocks are used) */
    int n_seq_max;       /* sequences held at once, running and cached (0: 64) */
    int n_batch_max;     /* tokens per forward step (0: 512) */
    int embed_chunk_len; /* fc_engine_embed's chunk (0, or more than the context: the context length) */
} fc_engine_params;

/* The model and tokenizer are borrowed and must outlive the engine. The
 * tokenizer may be NULL (events then carry no text). NULL on failure. */
fc_engine *fc_engine_new(const fc_model *m, const fc_tokenizer *tok, const fc_engine_params *p);
/* The same for a T5 encoder-decoder model (model/t5.h; borrowed, must
 * outlive the engine): requests, events and sampling as above; each request's
 * encoder runs once (those admitted together in one batch) and its decoder's
 * self- and cross-attention keys and values live in the engine's paged
 * cache of kv_tokens positions (the stats' kv_blocks_*): requests are
 * admitted by free blocks, preempted (and replayed) when it is full, and
 * give their blocks back when they end; no prefix sharing. Running
 * requests advance one token per step together. n_threads, exact and
 * kv_tokens apply; embed/score return FC_ERR_UNSUPPORTED. The context is
 * 2048 tokens (FastChat's default for T5). NULL on error. */
fc_engine *fc_engine_new_t5(const fc_t5 *m, const fc_tokenizer *tok, const fc_engine_params *p);
/* Stops the scheduler; requests still running get a final FC_FINISH_ABORT. */
void fc_engine_free(fc_engine *e);

enum fc_finish {
    FC_FINISH_NONE = 0,
    FC_FINISH_STOP,     /* a stop token or stop string */
    FC_FINISH_LENGTH,   /* max_new_tokens or the context length */
    FC_FINISH_ABORT,    /* cancelled, or the engine shut down */
    FC_FINISH_ERROR,    /* the request cannot run (see event.error) */
};
const char *fc_finish_name(enum fc_finish f); /* "stop", "length", "abort", "error" or NULL */

typedef struct fc_gen_request {
    const int32_t *prompt;     /* copied at submit */
    int n_prompt;
    fc_sampling_params sampling;
    int max_new_tokens;
    const char *const *stop;   /* stop strings (copied) */
    int n_stop;
    const int32_t *stop_ids;   /* stop token ids (copied); EOS is added unless ignore_eos */
    int n_stop_ids;
    bool ignore_eos;
    int logprobs;              /* < 0: none; 0: the chosen token's; k > 0: also the top k (k <= 20) */
    bool keep_special;         /* false: special tokens add no text (skip_special_tokens) */
    /* FastChat's context truncation: keep only the last
     * n_ctx - max_new_tokens - 1 prompt tokens when the prompt is too long. */
    bool truncate;
    /* Constrained output (structured outputs): grammar text in the notation
     * of sampling/grammar.h (copied), or NULL for none. The engine compiles
     * it once per distinct text (a small per-engine cache, so a repeated
     * schema starts with warm mask caches), masks the logits before the
     * sampler's chain (temperature, penalties, top-p/top-k act on the allowed
     * tokens only), lets an end-of-generation token through only where the
     * grammar may end, stops as soon as nothing more may follow, and near
     * max_new_tokens keeps to tokens that close the output (so it completes
     * within the limit). A grammar that does not compile finishes the request
     * with FC_FINISH_ERROR. Requests without one pay nothing. */
    const char *grammar;
    /* Lazy grammar (a tool call under tool_choice "auto"): with grammar set,
     * sampling is free until the generated bytes contain this text (copied;
     * NULL: not lazy); from its first byte on, the output follows the
     * grammar, whose sentences start with it. A token that completes the
     * trigger but whose following bytes the grammar refuses is drawn again
     * without it (up to 8 times; then the output stays free). */
    const char *grammar_trigger;
} fc_gen_request;

typedef struct fc_gen_event {
    uint64_t id;
    const char *text;          /* new text (complete UTF-8), borrowed for the callback */
    size_t len;
    int32_t token;             /* token sampled this step, -1 if none */
    float logprob;             /* of token, from the raw logits (when asked) */
    const fc_logprob *top;     /* n_top alternatives (when asked) */
    int n_top;
    enum fc_finish finish;     /* set on the last event of a request */
    const char *error;         /* FC_FINISH_ERROR: why */
    int prompt_tokens;         /* after truncation */
    int completion_tokens;     /* tokens generated so far */
    int cached_tokens;         /* prompt tokens taken from the prefix cache */
} fc_gen_event;

typedef void (*fc_engine_cb)(const fc_gen_event *ev, void *user);

/* FastChat's context truncation rule, the one place it lives: how many
 * leading tokens of an n_prompt-token prompt to drop so that the last
 * n_ctx - max_new_tokens - 1 (at least 1) are kept; 0 when it fits. Used by
 * fc_engine_submit (fc_gen_request.truncate) and by the worker, which cuts
 * before submitting so that echo shows what is kept. max_new_tokens -1
 * keeps the last n_ctx (encoder-decoder models). */
int fc_engine_prompt_skip(int n_prompt, int max_new_tokens, int n_ctx);

/* Queues a request; returns its id (> 0). Every request gets exactly one
 * event with finish != FC_FINISH_NONE, after which cb is never called again
 * for it. */
uint64_t fc_engine_submit(fc_engine *e, const fc_gen_request *r, fc_engine_cb cb, void *user);
/* Asks the request to stop; its last event (FC_FINISH_ABORT) follows soon. */
void fc_engine_cancel(fc_engine *e, uint64_t id);

typedef struct fc_engine_stats {
    int waiting, running;
    int64_t kv_blocks_free, kv_blocks_total;
    uint64_t steps, tokens_generated, prompt_tokens_computed, prompt_tokens_cached, preemptions;
} fc_engine_stats;
void fc_engine_get_stats(fc_engine *e, fc_engine_stats *s);

int fc_engine_n_ctx(const fc_engine *e);

/* ---- embeddings and prompt scoring ----
 * Request kinds of the same scheduler: they run on its thread, its thread
 * pool and its KV cache (one slot each, the newest generation requests
 * preempted if the cache is full), one at a time in arrival order, in
 * forward steps of 128 tokens (32 when scoring). While generation requests
 * are running they get at most a fifth of the compute time, so chat streams
 * keep most of their speed during a burst of embeddings; alone they run
 * back to back. The calls block until done (from any thread except the
 * scheduler's, i.e. not from a callback). keep_going (may be NULL) is
 * called on the scheduler thread before each step; false stops the work
 * with FC_ERR_ARG (a client that left). */

/* Width of an embedding (the model's hidden size). */
int fc_engine_embed_dim(const fc_engine *e);

/* Sentence embedding as FastChat's model_worker computes it
 * (fastchat/serve/model_worker.py get_embeddings): the last hidden states
 * (after the final norm, transformers' hidden_states[-1]) of every token,
 * averaged, then L2-normalized, into out[0..dim). A text longer than the
 * chunk length is cut into chunks run independently (each from an empty
 * cache) and averaged over all tokens, as FastChat does without
 * --embed-in-truncate (truncation is the caller's). FC_OK, FC_ERR_ARG (n <= 0,
 * an id outside the vocabulary, stopped), FC_ERR_NOMEM, or the forward
 * pass's error. */
enum fc_status fc_engine_embed(fc_engine *e, const int32_t *ids, int n, float *out,
                               bool (*keep_going)(void *user), void *user);

/* Scores the prompt ids[0..n), n <= the chunk length: lp[i] = log P(ids[i] |
 * ids[0..i)) from the raw logits, lp[0] = NAN (no context); FastChat reports
 * these for the prompt when echo and logprobs are both asked. When k > 0
 * (k <= 20), top[i*k .. i*k+k) receives position i's k most likely tokens,
 * best first (top[0..k) is left alone). Errors as fc_engine_embed. */
enum fc_status fc_engine_score(fc_engine *e, const int32_t *ids, int n, int k, float *lp, fc_logprob *top,
                               bool (*keep_going)(void *user), void *user);

#endif
