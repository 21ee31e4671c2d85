/*
 * test_moe.c: Mixtral's routed feed-forward (src/model/moe.c and its use in
 * arch_llama.c). Checks:
 * - fc_moe_route: each token's top-k experts and weights (softmax over all
 *   experts, top-k, renormalised over the k, as transformers'
 *   MixtralTopKRouter), ties to the lower index, and the slots grouped per
 *   expert (every token's k slots point back at it, each expert's block
 *   holds exactly its tokens, in batch order);
 * - the tiny random Mixtral models of tests/data/tiny
 *   (tools/golden/make_tiny_mixtral.py; their logits against transformers are
 *   tested in tests/py): several sequences interleaved in one batch (tokens
 *   of different sequences routed to the same experts in one product) give
 *   what each gives alone, and the same as token-by-token decoding, in exact
 *   and fast mode.
 * Data: tests/data (run from the repository root) or $FC_TEST_DATA.
 */
#include "test_util.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "model/moe.h"

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

/* The grouping invariants of a routed batch of T tokens. */
static void check_groups(const fc_moe_scratch *s, int T)
{
    const int E = s->E, k = s->k;
    CHECK(s->start[0] == 0 && s->start[E] == T * k);
    for (int x = 0; x < E; x++) {
        CHECK(s->start[x + 1] - s->start[x] == s->count[x]);
        for (int i = s->start[x]; i + 1 < s->start[x + 1]; i++) CHECK(s->slot_tok[i] < s->slot_tok[i + 1]);
    }
    for (int t = 0; t < T; t++) {
        double w = 0;
        for (int j = 0; j < k; j++) {
            const int slot = s->tok_slot[t * k + j];
            CHECK(slot >= 0 && slot < T * k && s->slot_tok[slot] == t);
            w += s->tok_w[t * k + j];
        }
        CHECKF(fabs(w - 1.0) < 1e-6, "token %d weights sum to %g", t, w);
    }
}

/* The expert of slot i. */
static int expert_of(const fc_moe_scratch *s, int slot)
{
    int x = 0;
    while (s->start[x + 1] <= slot) x++;
    return x;
}

static void test_route(void)
{
    fc_model_config c = {.n_embd = 8, .n_ff = 8, .n_expert = 4, .n_expert_used = 2};
    fc_moe_scratch *s = fc_moe_scratch_new(&c, 64);
    CHECK(s != NULL);
    if (!s) return;
    /* token 0: experts 2 and 0; token 1: 3 and 1; token 2: a tie between 1
     * and 3 after 0 (the lower index wins) */
    const float lg[3][4] = {{1.0f, -2.0f, 3.0f, 0.5f}, {0.0f, 2.0f, -1.0f, 4.0f}, {5.0f, 1.0f, 0.0f, 1.0f}};
    memcpy(s->router, lg, sizeof lg);
    fc_moe_route(s, 3);
    check_groups(s, 3);
    const int want[3][2] = {{2, 0}, {3, 1}, {0, 1}};
    for (int t = 0; t < 3; t++) {
        double mx = -1e30, p[4], sum = 0;
        for (int x = 0; x < 4; x++) mx = fmax(mx, lg[t][x]);
        for (int x = 0; x < 4; x++) sum += p[x] = exp(lg[t][x] - mx);
        const double a = p[want[t][0]] / sum, b = p[want[t][1]] / sum;
        for (int j = 0; j < 2; j++) {
            const int x = expert_of(s, s->tok_slot[t * 2 + j]);
            CHECKF(x == want[t][j], "token %d choice %d: expert %d, want %d", t, j, x, want[t][j]);
            const double w = (j == 0 ? a : b) / (a + b);
            CHECKF(fabs(s->tok_w[t * 2 + j] - w) < 1e-6, "token %d weight %d: %g, want %g", t, j, s->tok_w[t * 2 + j], w);
        }
    }
    CHECK(s->count[0] == 2 && s->count[1] == 2 && s->count[2] == 1 && s->count[3] == 1);

    /* random logits: the chosen probabilities are the k largest */
    srand(7);
    const int T = 64;
    for (int i = 0; i < T * 4; i++) s->router[i] = (float)((double)rand() / RAND_MAX * 6.0 - 3.0);
    fc_moe_route(s, T);
    check_groups(s, T);
    for (int t = 0; t < T; t++) {
        const float *r = s->router + t * 4;
        const int x0 = expert_of(s, s->tok_slot[t * 2]), x1 = expert_of(s, s->tok_slot[t * 2 + 1]);
        CHECK(x0 != x1 && r[x0] >= r[x1]);
        for (int x = 0; x < 4; x++)
            if (x != x0 && x != x1) CHECKF(r[x] <= r[x1], "token %d: expert %d outranks the chosen %d", t, x, x1);
    }
    fc_moe_scratch_free(s);
}

static int32_t tok(int s, int i) { return (int32_t)((s * 131 + i * 37 + 7) % 250) + 3; }

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
    CHECK(c->n_expert >= 4 && c->n_expert_used == 2);
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
            ds = fmax(ds, maxdiff(alone[s], steps[s], V * len[s]));
        }
        printf("%s %s (%s KV): %d sequences batched vs alone max |d| %.2e, token by token %.2e\n", name,
               exact ? "exact" : "fast", exact ? "f32" : "f16", ns, dm, ds);
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

int main(void)
{
    const char *env = getenv("FC_TEST_DATA");
    snprintf(data_dir, sizeof data_dir, "%s", env ? env : "tests/data");
    test_route();
    /* lengths straddle the window (20) and several cache blocks of 16 */
    const int len[3] = {70, 23, 41};
    test_batching("mixtral_f32_e8", len, 3);
    test_batching("mixtral_f32_e4_swa20", len, 3);
    return TEST_END();
}
