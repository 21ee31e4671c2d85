/*
 * fuzz_worker_request.c: libFuzzer target for the worker's generation
 * parameters (the /worker_generate and /worker_generate_stream bodies read by
 * src/serve/worker.c, through fc_worker_parse_generate), and for the sampler
 * those parameters then drive.
 *
 * The input is the request body as-is (not NUL-terminated). A body that is
 * refused must come with a message. A body that is accepted must give the
 * engine a request within the bounds it relies on: a prompt, at most 64 stop
 * strings and 256 stop ids, max_new_tokens within +-1e9, logprobs in
 * [-1, 20], top_k >= -1. The sampler then runs with the parameters (whatever
 * floats they hold) on a small vocabulary, with the stop ids as the history:
 * every token drawn must be a valid id and every log-probability a number
 * that is not NaN.
 * Seeds: tests/data/fuzz/fuzz_worker_request/.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "engine/engine.h"
#include "sampling/sampler.h"
#include "serve/worker.h"

enum { V = 97, STEPS = 4 };

static void use(const char *prompt, const struct fc_gen_request *r, bool echo, void *user)
{
    (void)echo;
    uint32_t h = *(const uint32_t *)user;
    if (!prompt) abort();
    (void)strlen(prompt);
    if (r->n_stop < 0 || r->n_stop > 64 || (r->n_stop && !r->stop)) abort();
    for (int i = 0; i < r->n_stop; i++) (void)strlen(r->stop[i]);
    if (r->n_stop_ids < 0 || r->n_stop_ids > 256 || (r->n_stop_ids && !r->stop_ids)) abort();
    if (r->max_new_tokens < -1000000000 || r->max_new_tokens > 1000000000) abort();
    if (r->logprobs < -1 || r->logprobs > 20) abort();
    if (r->sampling.top_k < -1) abort();
    if (r->prompt || r->n_prompt) abort(); /* nothing tokenized here */

    /* the sampler on made-up logits (a hash of the input picks them) */
    float logits[V], raw[V];
    fc_logprob top[20];
    fc_sampler *s = fc_sampler_new(&r->sampling, V);
    fc_sampler_add_prompt(s, r->stop_ids, r->n_stop_ids);
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < V; i++) {
            h = h * 1664525u + 1013904223u;
            raw[i] = logits[i] = (float)((int32_t)h >> 8) / 65536.0f;
        }
        if (h & 1) raw[h % V] = logits[h % V] = -INFINITY; /* a token masked out */
        int32_t tok = fc_sampler_sample(s, logits);
        if (tok < 0 || tok >= V) abort();
        int k = r->logprobs > 0 ? r->logprobs : 0;
        float lp = fc_logprob_of(raw, V, tok, k, top);
        if (isnan(lp) || lp > 1e-4f) abort();
        for (int i = 0; i < k; i++)
            if (top[i].token < 0 || top[i].token >= V || isnan(top[i].logprob)) abort();
    }
    fc_sampler_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 16777619u;
    char err[256];
    err[0] = 0;
    if (!fc_worker_parse_generate((const char *)data, size, use, &h, err, sizeof err)) {
        if (!err[0] || !memchr(err, 0, sizeof err)) abort();
    }
    return 0;
}
