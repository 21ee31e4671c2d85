/*
 * embed.h: sentence embeddings from a decoder model, as FastChat's
 * model_worker computes them for /worker_get_embeddings
 * (fastchat/serve/model_worker.py get_embeddings / __process_embed_chunk):
 * the last hidden states (after the final norm, transformers'
 * hidden_states[-1]) of every token, averaged over the tokens, then
 * L2-normalized. A text longer than the chunk length is cut into chunks that
 * are run independently (each from an empty cache) and averaged over all
 * tokens, as FastChat does without --embed-in-truncate; truncation, when
 * wanted, is the caller's (pass only the first tokens).
 *
 * The same context also scores prompts (fc_embedder_score): the logprob of
 * every prompt token given the ones before it, which FastChat's
 * generate_stream reports for the prompt when echo and logprobs are both
 * asked (lm-evaluation-harness's loglikelihood requests).
 *
 * Not done: CLS pooling (FastChat's BGE/E5 adapters), encoder models.
 *
 * An fc_embedder has its own execution context, KV cache and thread, apart
 * from the engine's scheduler, so callers submit and wait and never compute;
 * requests are served one at a time in arrival order. Its scratch and cache
 * are allocated on first use and sized to the longest chunk seen.
 *
 * Threads: fc_embedder_embed from any thread (it blocks until done).
 */
#ifndef FC_EMBED_H
#define FC_EMBED_H

#include <stdbool.h>
#include <stdint.h>
#include "../model/model.h"
#include "../sampling/sampler.h"

typedef struct fc_embedder fc_embedder;

typedef struct fc_embed_params {
    int n_threads;     /* compute threads (<= 0: all CPUs) */
    bool exact;        /* f32 reference mode */
    bool act8;         /* 8-bit activations everywhere (fc_exec_params.act8) */
    int n_batch_max;   /* tokens per forward call (0: 512) */
    int chunk_len;     /* tokens per independent chunk (0: the model's context length) */
} fc_embed_params;

/* The model is borrowed and must outlive the embedder. NULL on failure. */
fc_embedder *fc_embedder_new(const fc_model *m, const fc_embed_params *p);
/* Waits for the request in progress; NULL is a no-op. */
void fc_embedder_free(fc_embedder *e);

/* Width of an embedding (the model's C). */
int fc_embedder_dim(const fc_embedder *e);

/* Embeds the token ids[0..n): out[0..C) receives the L2-normalized mean of
 * their last hidden states. FC_OK, FC_ERR_ARG (n <= 0, an id outside the
 * vocabulary), FC_ERR_NOMEM (scratch or cache), or the forward pass's error.
 * Blocks until done. */
enum fc_status fc_embedder_embed(fc_embedder *e, const int32_t *ids, int n, float *out);
/* The same; keep_going (if not NULL) is called on the embedder's thread
 * before each forward step (at most n_batch_max tokens), and false stops the
 * work at once with FC_ERR_ARG (a client that left, a server that stops). */
enum fc_status fc_embedder_embed_ex(fc_embedder *e, const int32_t *ids, int n, float *out,
                                    bool (*keep_going)(void *user), void *user);

/* Scores the prompt ids[0..n), n <= the chunk length: lp[i] = log P(ids[i] |
 * ids[0..i)) from the raw logits, lp[0] = NAN (no context). When k > 0
 * (k <= 20), top[i*k .. i*k+k) receives position i's k most likely tokens,
 * best first (top[0..k) is left alone). FC_OK or an error as
 * fc_embedder_embed. Blocks until done. */
enum fc_status fc_embedder_score(fc_embedder *e, const int32_t *ids, int n, int k, float *lp, fc_logprob *top);

#endif
