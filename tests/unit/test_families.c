/*
 * test_families.c: the batch machinery with the Gemma 2, Phi-3 and
 * sliding-window models of tests/data/tiny (tools/golden/make_tiny_families.py;
 * their logits against transformers are tested in tests/py). Checks:
 * - several sequences of different lengths interleaved in one batch give
 *   what each gives alone, and the same as token-by-token decoding: the
 *   window's first key per token (mistral, qwen2's sliding layer), Gemma's
 *   soft-capped attention, and Phi-3's LongRoPE, whose short/long choice is
 *   per sequence (one sequence past original_max_position_embeddings, one
 *   not, in the same batch);
 * - fc_model_forward_hidden of Gemma 2 returns the uncapped normed state:
 *   logits = cap * tanh(h . E / cap) with E the tied embedding.
 * Data: tests/data (run from the repository root) or $FC_TEST_DATA.
 */
#include "test_util.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char data_dir[512];

static double maxdiff(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

static int32_t tok(int s, int i) { return (int32_t)((s * 131 + i * 37 + 7) % 500) + 3; }

/* Logits of every position of sequences 0..ns-1 (lengths len[]), fed
 * together in batches of `chunk` tokens per sequence (interleaved), into
 * out[s] (len[s] x V). */
static void run(const fc_model *m, fc_exec *e, int ns, const int *len, int chunk, int kv_type, float **out)
{
    const fc_model_config *c = fc_model_get_config(m);
    const int V = c->n_vocab;
    fc_kv_params kp = {.n_tokens = 1024, .n_seq_max = 4, .dtype = kv_type};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    fc_batch *b = fc_batch_new(256);
    float *lg = malloc(sizeof(float) * (size_t)V * 256);
    int done[4] = {0};
    for (;;) {
        fc_batch_clear(b);
        int rows[256][2], nr = 0;
        for (int s = 0; s < ns; s++) {
            int k = len[s] - done[s] < chunk ? len[s] - done[s] : chunk;
            if (k <= 0) continue;
            CHECK(fc_kv_cache_reserve(kv, s, k) == FC_OK);
            for (int j = 0; j < k; j++) {
                fc_batch_add(b, tok(s, done[s] + j), done[s] + j, s, true);
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

static void test_batching(const char *name, const int *len, int ns)
{
    char path[700];
    snprintf(path, sizeof path, "%s/tiny/%s", data_dir, name);
    fc_model *m = fc_model_load(path);
    CHECKF(m != NULL, "load %s", path);
    if (!m) return;
    const fc_model_config *c = fc_model_get_config(m);
    const int V = c->n_vocab;
    for (int exact = 1; exact >= 0; exact--) {
        const int kv_type = exact ? FC_DTYPE_F32 : FC_DTYPE_F16;
        fc_exec_params ep = {.n_threads = 2, .exact = exact, .n_batch_max = 256};
        fc_exec *e = fc_exec_new(m, &ep);
        float *alone[4], *mixed[4], *steps[4];
        for (int s = 0; s < ns; s++) {
            alone[s] = malloc(sizeof(float) * (size_t)V * len[s]);
            mixed[s] = malloc(sizeof(float) * (size_t)V * len[s]);
            steps[s] = malloc(sizeof(float) * (size_t)V * len[s]);
        }
        /* alone: each sequence as the only one in the cache (as sequence s) */
        for (int s = 0; s < ns; s++) {
            int l1[4] = {0};
            l1[s] = len[s];
            float *o[4] = {alone[0], alone[1], alone[2], alone[3]};
            run(m, e, s + 1, l1, 256, kv_type, o);
        }
        run(m, e, ns, len, 256, kv_type, mixed);
        run(m, e, ns, len, 1, kv_type, steps);
        double dm = 0, ds = 0;
        for (int s = 0; s < ns; s++) {
            dm = fmax(dm, maxdiff(alone[s], mixed[s], V * len[s]));
            /* LongRoPE picks its factors per call: a prompt fed token by token
             * rotates its first original_max_position_embeddings positions
             * with the short ones (as transformers with its cache), in one
             * call past that length with the long ones */
            if (c->rope_scaling != FC_ROPE_SCALING_LONGROPE || len[s] <= c->rope_orig_ctx)
                ds = fmax(ds, maxdiff(alone[s], steps[s], V * len[s]));
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
    fc_model_free(m);
}

static void test_gemma2_hidden(void)
{
    char path[700];
    snprintf(path, sizeof path, "%s/tiny/gemma2_f32_swa24", data_dir);
    fc_model *m = fc_model_load(path);
    CHECKF(m != NULL, "load %s", path);
    if (!m) return;
    const fc_model_config *c = fc_model_get_config(m);
    const int V = c->n_vocab, C = c->n_embd, n = 30;
    CHECK(c->final_softcap > 0 && c->tied_embeddings);
    fc_exec_params ep = {.n_threads = 1, .exact = true, .n_batch_max = 64};
    fc_exec *e = fc_exec_new(m, &ep);
    float *lg = malloc(sizeof(float) * V), *h = malloc(sizeof(float) * C);
    for (int pass = 0; pass < 2; pass++) {
        fc_kv_params kp = {.n_tokens = 64, .n_seq_max = 1, .dtype = FC_DTYPE_F32};
        fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
        fc_batch *b = fc_batch_new(64);
        CHECK(fc_kv_cache_reserve(kv, 0, n) == FC_OK);
        for (int i = 0; i < n; i++) fc_batch_add(b, tok(0, i), i, 0, i == n - 1);
        CHECK((pass ? fc_model_forward_hidden(m, e, kv, b, h) : fc_model_forward(m, e, kv, b, lg)) == FC_OK);
        fc_batch_free(b);
        fc_kv_cache_free(kv);
    }
    const char *name;
    const fc_tensor *t = NULL, *emb = NULL;
    for (int64_t i = 0; fc_model_tensor_at(m, i, &name, &t); i++)
        if (!strcmp(name, "token_embd.weight")) emb = t;
    CHECK(emb && emb->type == FC_DTYPE_F32);
    double d = 0, hmax = 0;
    for (int v = 0; emb && v < V; v++) {
        const float *row = (const float *)emb->data + (size_t)v * C;
        double dot = 0;
        for (int i = 0; i < C; i++) dot += (double)row[i] * h[i];
        d = fmax(d, fabs(c->final_softcap * tanh(dot / c->final_softcap) - lg[v]));
    }
    for (int i = 0; i < C; i++) hmax = fmax(hmax, fabs(h[i]));
    printf("gemma2 hidden: logits vs cap*tanh(h.E/cap) max |d| %.2e (|h| max %.2f)\n", d, hmax);
    CHECKF(d < 1e-4, "gemma2 hidden state is the uncapped normed state (%.2e)", d);
    free(lg);
    free(h);
    fc_exec_free(e);
    fc_model_free(m);
}

int main(void)
{
    const char *env = getenv("FC_TEST_DATA");
    snprintf(data_dir, sizeof data_dir, "%s", env ? env : "tests/data");
    /* lengths straddle the windows (20, 24, 32), LongRoPE's original 32,
     * and several cache blocks of 16 */
    const int mistral[3] = {70, 23, 41}, phi3[3] = {45, 20, 33}, gemma[2] = {61, 12};
    test_batching("mistral_f32_swa20", mistral, 3);
    test_batching("qwen2_f32_swa24", mistral, 3);
    test_batching("phi3_f32_longrope_long", phi3, 3);
    test_batching("phi3_f32_swa32", mistral, 3);
    test_batching("gemma2_f32_swa24", gemma, 2);
    test_gemma2_hidden();
    return TEST_END();
}
