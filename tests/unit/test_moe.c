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
#include "batch_test.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "model/moe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char data_dir[512];

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

static void test_batching(const char *name, const int *len, int ns)
{
    char path[700];
    snprintf(path, sizeof path, "%s/tiny/%s", data_dir, name);
    fc_model *m = fc_model_load(path);
    CHECKF(m != NULL, "load %s", path);
    if (!m) return;
    const fc_model_config *c = fc_model_get_config(m);
    CHECK(c->n_expert >= 4 && c->n_expert_used == 2);
    bt_check_batching(m, name, len, ns, 250);
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
