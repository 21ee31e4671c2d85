/*
 * sampler.h: choosing the next token from logits, with FastChat's
 * generate_stream semantics plus OpenAI's penalties and a seed.
 *
 * The processor chain is FastChat's (fastchat/serve/inference.py,
 * prepare_logits_processor), built on transformers' processors:
 *   presence/frequency penalties (OpenAI; over generated tokens only, as
 *     vLLM does; FastChat's HF worker ignores them)
 *   temperature         skipped when < 1e-5 or exactly 1.0
 *   repetition penalty  if > 1.0; over prompt and generated tokens (HF:
 *                       negative logits multiplied, positive divided)
 *   top-p               if 1e-8 <= top_p < 1.0 (HF TopPLogitsWarper)
 *   top-k               if top_k > 0 (HF TopKLogitsWarper)
 * Greedy (argmax of the processed logits) when temperature < 1e-5 or
 * top_p < 1e-8; otherwise a draw from softmax of the processed logits.
 * Log-probabilities reported to clients come from the raw logits, as in
 * FastChat.
 */
#ifndef FC_SAMPLER_H
#define FC_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct fc_sampling_params {
    float temperature;        /* FastChat default 1.0 */
    float top_p;              /* 1.0 disables */
    int top_k;                /* <= 0 disables (FastChat uses -1) */
    float repetition_penalty; /* 1.0 disables */
    float presence_penalty;   /* 0 disables */
    float frequency_penalty;  /* 0 disables */
    bool has_seed;
    uint64_t seed;
} fc_sampling_params;

/* FastChat's defaults: temperature 1, top_p 1, top_k -1, penalties off. */
fc_sampling_params fc_sampling_default(void);
/* True when the parameters select greedy decoding. */
bool fc_sampling_is_greedy(const fc_sampling_params *p);

/* Applies the processor chain to logits[0..V) in place (removed tokens
 * become -INFINITY). counts[v] is how often v occurs in the whole history
 * (prompt and output; drives the repetition penalty), out_counts[v] how
 * often in the output alone (drives presence/frequency); either may be
 * NULL when its penalties are off. Exposed for tests against transformers. */
void fc_sampling_process(const fc_sampling_params *p, float *logits, int V,
                         const int32_t *counts, const int32_t *out_counts);

typedef struct fc_sampler fc_sampler;

/* A per-request sampler: parameters, RNG, token counts. Never NULL. */
fc_sampler *fc_sampler_new(const fc_sampling_params *p, int n_vocab);
void fc_sampler_free(fc_sampler *s);
/* Records prompt tokens (history for the repetition penalty). */
void fc_sampler_add_prompt(fc_sampler *s, const int32_t *ids, int n);
/* Picks the next token from logits (modified in place by the chain) and
 * records it as output. */
int32_t fc_sampler_sample(fc_sampler *s, float *logits);

/* ---- log-probabilities (of raw logits) ---- */
typedef struct fc_logprob { int32_t token; float logprob; } fc_logprob;
/* log-softmax of logits at `token`; and, when k > 0, the k most likely
 * tokens with theirs, best first, into top[0..k). Does not modify logits. */
float fc_logprob_of(const float *logits, int V, int32_t token, int k, fc_logprob *top);

#endif
