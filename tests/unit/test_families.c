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
 * - a FC_BATCH_HIDDEN forward of Gemma 2 returns the uncapped normed state:
 *   logits = cap * tanh(h . E / cap) with E the tied embedding.
 * Data: tests/data (run from the repository root) or $FC_TEST_DATA.
 */
#include "test_util.h"
#include "batch_test.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "tensor/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char data_dir[512];

static void test_batching(const char *name, const int *len, int ns)
{
    char path[700];
    snprintf(path, sizeof path, "%s/tiny/%s", data_dir, name);
    fc_model *m = fc_model_load(path);
    CHECKF(m != NULL, "load %s", path);
    if (!m) return;
    bt_check_batching(m, name, len, ns, 500);
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
        for (int i = 0; i < n; i++) fc_batch_add(b, bt_tok(0, i, 500), i, 0, i == n - 1);
        b->output = pass ? FC_BATCH_HIDDEN : FC_BATCH_LOGITS;
        CHECK(fc_model_forward(m, e, kv, b, pass ? h : lg) == FC_OK);
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
