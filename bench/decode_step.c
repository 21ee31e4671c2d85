/*
 * decode_step.c: CPU time of one batched decode step of the engine's forward
 * pass (fc_model_forward), for A/B comparisons of the batched path on a busy
 * machine (CPU seconds, not wall time, are compared).
 *
 *   cc -O3 -march=native -Isrc bench/decode_step.c build/libfastchat.a -lm -lpthread -o /tmp/decode_step
 *   decode_step MODEL [n_seq 33] [ctx 300] [steps 8] [threads 1]
 *
 * n_seq sequences each start with ctx cached positions (their keys and values
 * are filled with small pseudo-random numbers, not a real prompt: only the
 * timing matters here), then steps decode steps of one token per sequence
 * with logits for every row, as judge gen-answer's batched runs do. Prints
 * the process CPU and wall milliseconds per step.
 */
#include "model/kv_cache_impl.h"
#include "model/model.h"
#include "base/fc_base.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: decode_step MODEL [n_seq] [ctx] [steps] [threads]\n");
        return 2;
    }
    const int n_seq = argc > 2 ? atoi(argv[2]) : 33, ctx = argc > 3 ? atoi(argv[3]) : 300;
    const int steps = argc > 4 ? atoi(argv[4]) : 8, threads = argc > 5 ? atoi(argv[5]) : 1;
    fc_model *m = fc_model_load(argv[1]);
    if (!m) return 1;
    const fc_model_config *c = fc_model_get_config(m);
    fc_exec_params ep = {.n_threads = threads, .n_batch_max = n_seq};
    fc_exec *e = fc_exec_new(m, &ep);
    const int total = ctx + steps + 1; /* positions written: the cached ones, the warm-up step and the timed ones */
    fc_kv_params kp = {.n_tokens = (int64_t)n_seq * (total + FC_KV_BLOCK), .n_seq_max = n_seq, .dtype = FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    if (!e || !kv) return 1;
    /* the sequences' blocks interleave in the pool, as when they grow together */
    for (int p = 0; p < total; p += FC_KV_BLOCK)
        for (int s = 0; s < n_seq; s++)
            if (fc_kv_cache_reserve(kv, s, FC_MIN(p + FC_KV_BLOCK, total)) != FC_OK) return 1;
    fc_f16 *pool = (fc_f16 *)kv->pool;
    for (size_t i = 0; i < kv->pool_bytes / sizeof(fc_f16); i++)
        pool[i] = fc_f32_to_f16((float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f);
    for (int s = 0; s < n_seq; s++) kv->seqs[s].len = ctx;
    fc_batch *b = fc_batch_new(n_seq);
    float *logits = malloc(sizeof(float) * (size_t)n_seq * (size_t)c->n_vocab);
    double cpu = 0, wall = 0;
    for (int it = 0; it <= steps; it++) {
        fc_batch_clear(b);
        for (int s = 0; s < n_seq; s++) fc_batch_add(b, (s * 7919 + it * 104729) % c->n_vocab, kv->seqs[s].len, s, true);
        if (it == 1) { /* the first step warms up */
            cpu = now(CLOCK_PROCESS_CPUTIME_ID);
            wall = now(CLOCK_MONOTONIC);
        }
        if (fc_model_forward(m, e, kv, b, logits) != FC_OK) return 1;
    }
    cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu;
    wall = now(CLOCK_MONOTONIC) - wall;
    /* a hash of the last step's logits: equal between builds whose outputs are bit-identical */
    uint64_t h = 1469598103934665603ull;
    const unsigned char *lb = (const unsigned char *)logits;
    for (size_t i = 0; i < sizeof(float) * (size_t)n_seq * (size_t)c->n_vocab; i++) h = (h ^ lb[i]) * 1099511628211ull;
    printf("decode_step: n_seq=%d ctx=%d threads=%d cpu_ms_per_step=%.2f wall_ms_per_step=%.2f logits_hash=%016llx\n",
           n_seq, ctx, threads, cpu * 1e3 / steps, wall * 1e3 / steps, (unsigned long long)h);
    free(logits);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    fc_exec_free(e);
    fc_model_free(m);
    return 0;
}
