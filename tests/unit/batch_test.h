/*
 * batch_test.h: the batching check that test_families.c and test_moe.c
 * share: sequences of different lengths fed interleaved in one batch, each
 * alone, and token by token must give the same logits, in exact mode (f32
 * KV cache) and fast mode (f16 KV cache, rounded activations).
 *
 * Header-only, included by one test file each after test_util.h (CHECK,
 * CHECKF); everything is static inline. Token ids are a fixed function of
 * (sequence, position) below tok_mod + 3, so the same model gives the same
 * figures from run to run.
 */
#ifndef FC_BATCH_TEST_H
#define FC_BATCH_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kv_cache.h"
#include "model/model.h"
#include "tensor/dtype.h"

#define BT_MAX_SEQ 4

static inline double bt_maxdiff(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static inline int32_t bt_tok(int s, int i, int tok_mod) { return (int32_t)((s * 131 + i * 37 + 7) % tok_mod) + 3; }

/* Logits of every position of sequences 0..ns-1 (lengths len[]), fed
 * together in batches of `chunk` tokens per sequence (interleaved), into
 * out[s] (len[s] x V). */
static inline void bt_run(const fc_model *m, fc_exec *e, int ns, const int *len, int chunk, enum fc_dtype kv_type, int tok_mod,
                          float **out)
{
    const fc_model_config *c = fc_model_get_config(m);
    const int V = c->n_vocab;
    fc_kv_params kp = {.n_tokens = 1024, .n_seq_max = BT_MAX_SEQ, .dtype = kv_type};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    fc_batch *b = fc_batch_new(256);
    float *lg = malloc(sizeof(float) * (size_t)V * 256);
    int done[BT_MAX_SEQ] = {0};
    for (;;) {
        fc_batch_clear(b);
        int rows[256][2], nr = 0;
        for (int s = 0; s < ns; s++) {
            int k = len[s] - done[s] < chunk ? len[s] - done[s] : chunk;
            if (k <= 0) continue;
            CHECK(fc_kv_cache_reserve(kv, s, k) == FC_OK);
            for (int j = 0; j < k; j++) {
                fc_batch_add(b, bt_tok(s, done[s] + j, tok_mod), done[s] + j, s, true);
                rows[nr][0] = s;
                rows[nr][1] = done[s] + j;
                nr++;
            }
            done[s] += k;
        }
        if (nr == 0) break;
        CHECK(fc_model_forward(m, e, kv, b, lg) == FC_OK);
        for (int r = 0; r < nr; r++)
            memcpy(out[rows[r][0]] + (size_t)rows[r][1] * V, lg + (size_t)r * V, sizeof(float) * V);
    }
    free(lg);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
}

/* The check on model m (named name in the messages), ns <= BT_MAX_SEQ
 * sequences of lengths len[], in exact then fast mode. */
static inline void bt_check_batching(const fc_model *m, const char *name, const int *len, int ns, int tok_mod)
{
    const fc_model_config *c = fc_model_get_config(m);
    const int V = c->n_vocab;
    for (int exact = 1; exact >= 0; exact--) {
        const enum fc_dtype kv_type = exact ? FC_DTYPE_F32 : FC_DTYPE_F16;
        fc_exec_params ep = {.n_threads = 2, .exact = exact, .n_batch_max = 256};
        fc_exec *e = fc_exec_new(m, &ep);
        float *alone[BT_MAX_SEQ], *mixed[BT_MAX_SEQ], *steps[BT_MAX_SEQ];
        for (int s = 0; s < ns; s++) {
            alone[s] = malloc(sizeof(float) * (size_t)V * len[s]);
            mixed[s] = malloc(sizeof(float) * (size_t)V * len[s]);
            steps[s] = malloc(sizeof(float) * (size_t)V * len[s]);
        }
        /* alone: each sequence as the only one in the cache (as sequence s) */
        for (int s = 0; s < ns; s++) {
            int l1[BT_MAX_SEQ] = {0};
            l1[s] = len[s];
            float *o[BT_MAX_SEQ] = {alone[0], alone[1], alone[2], alone[3]};
            bt_run(m, e, s + 1, l1, 256, kv_type, tok_mod, o);
        }
        bt_run(m, e, ns, len, 256, kv_type, tok_mod, mixed);
        bt_run(m, e, ns, len, 1, kv_type, tok_mod, steps);
        double dm = 0, ds = 0;
        for (int s = 0; s < ns; s++) {
            dm = fmax(dm, bt_maxdiff(alone[s], mixed[s], V * len[s]));
            /* LongRoPE picks its factors per call: a prompt fed token by token
             * rotates its first original_max_position_embeddings positions
             * with the short ones (as transformers with its cache), in one
             * call past that length with the long ones */
            if (c->rope_scaling != FC_ROPE_SCALING_LONGROPE || len[s] <= c->rope_orig_ctx)
                ds = fmax(ds, bt_maxdiff(alone[s], steps[s], V * len[s]));
        }
        printf("%s %s (%s KV): %d sequences batched vs alone max |d| %.2e, token by token %.2e\n", name,
               exact ? "exact" : "fast", exact ? "f32" : "f16", ns, dm, ds);
        /* the same sums in another order (tiles of other sizes); fast mode
         * also rounds activations: its bound is looser */
        CHECKF(dm < (exact ? 1e-4 : 2e-2), "%s batched vs alone %.2e", name, dm);
        CHECKF(ds < (exact ? 1e-4 : 2e-2), "%s token by token vs alone %.2e", name, ds);
        for (int s = 0; s < ns; s++) {
            free(alone[s]);
            free(mixed[s]);
            free(steps[s]);
        }
        fc_exec_free(e);
    }
}

#endif
