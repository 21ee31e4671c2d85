/*
 * test_kv_forward.c: the paged KV cache and the batched forward on the
 * default model (FASTCHAT_MODEL). Correctness against transformers is
 * tested in tests/py; these check the batching machinery's invariants:
 * - a prompt evaluated in one batch, in chunks, or token by token gives the
 *   same logits;
 * - several sequences interleaved in one batch give what each gives alone;
 * - a sequence forked from another's prefix (shared blocks, copy-on-write)
 *   continues exactly as one computed from scratch;
 * - the pool refuses reservations beyond its budget and frees on truncate;
 * - batched decode steps of many sequences (whose matrix products and
 *   attention the threads split dynamically) give bit-identical logits with
 *   1, 2 and 3 threads.
 */
#include "test_util.h"
#include "model/model.h"
#include "model/kv_cache.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

static const int32_t P1[] = {1, 9690, 198, 2683, 359, 253, 5356, 5646, 30, 2, 198, 1, 520, 9531, 198, 19556,
                             28, 849, 359, 346, 47, 2, 198, 1, 520, 9531, 198, 34, 30, 37, 41, 28, 1131, 8};
static const int32_t P2[] = {504, 2365, 314, 1029, 260, 2520, 282, 3108, 30, 378, 1495, 314, 3263, 284, 9146, 28, 351};

static double maxdiff(const float *a, const float *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Logits of the last token of ids[0..n) fed in chunks of `chunk`, seq 0. */
static void run_chunked(const fc_model *m, fc_exec *e, const int32_t *ids, int n, int chunk, float *out)
{
    const fc_model_config *c = fc_model_get_config(m);
    fc_kv_params kp = {.n_tokens = 256, .n_seq_max = 4, .dtype = FC_DTYPE_F32};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    fc_batch *b = fc_batch_new(64);
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        CHECK(fc_kv_cache_reserve(kv, 0, k) == FC_OK);
        fc_batch_clear(b);
        for (int j = 0; j < k; j++) fc_batch_add(b, ids[i + j], i + j, 0, i + j == n - 1);
        CHECK(fc_model_forward(m, e, kv, b, out) == FC_OK);
    }
    CHECK(fc_kv_cache_seq_len(kv, 0) == n);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
}

static void test_mode(const fc_model *m, bool exact, int threads)
{
    const fc_model_config *c = fc_model_get_config(m);
    const int V = c->n_vocab, n1 = (int)(sizeof P1 / sizeof *P1), n2 = (int)(sizeof P2 / sizeof *P2);
    /* the same integer dot products are accumulated in a different order by
     * the tiled (T > 1) and single-token kernels: allow float rounding */
    const double tol = 2e-3;
    fc_exec_params ep = {.n_threads = threads, .exact = exact, .n_batch_max = 64};
    fc_exec *e = fc_exec_new(m, &ep);
    float *a = malloc(sizeof(float) * V), *bb = malloc(sizeof(float) * V), *r2 = malloc(sizeof(float) * V);
    float *two = malloc(sizeof(float) * V * 2);

    run_chunked(m, e, P1, n1, 64, a);
    run_chunked(m, e, P1, n1, 1, bb);
    double d = maxdiff(a, bb, V);
    printf("%s t=%d: one batch vs token by token: max |d| = %.2e\n", exact ? "exact" : "fast", threads, d);
    if (exact) {
        CHECK(d < tol);
    } else {
        /* Fast mode rounds activations to int8 before every product. The
         * single-token and tiled kernels sum in different orders (1e-6
         * relative apart), and a value that lands on a rounding boundary in
         * one and not the other changes by a whole int8 step: differences
         * compound over 30 layers to the size of fast mode's own error
         * against transformers (about 1 logit on this model). So here only
         * the prediction and that bound are checked. */
        int ia = 0, ib = 0;
        for (int v = 1; v < V; v++) {
            if (a[v] > a[ia]) ia = v;
            if (bb[v] > bb[ib]) ib = v;
        }
        CHECK(ia == ib);
        CHECK(d < 1.5);
    }
    run_chunked(m, e, P1, n1, 7, bb);
    d = maxdiff(a, bb, V);
    printf("%s t=%d: one batch vs chunks of 7: max |d| = %.2e\n", exact ? "exact" : "fast", threads, d);
    CHECK(d < tol);
    run_chunked(m, e, P2, n2, 64, r2);

    /* two sequences interleaved in every batch */
    fc_kv_params kp = {.n_tokens = 256, .n_seq_max = 4, .dtype = FC_DTYPE_F32};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    fc_batch *b = fc_batch_new(64);
    int i1 = 0, i2 = 0;
    while (i1 < n1 || i2 < n2) {
        fc_batch_clear(b);
        int k1 = n1 - i1 < 5 ? n1 - i1 : 5, k2 = n2 - i2 < 3 ? n2 - i2 : 3;
        CHECK(fc_kv_cache_reserve(kv, 1, k1) == FC_OK);
        CHECK(fc_kv_cache_reserve(kv, 3, k2) == FC_OK);
        int rows = 0, row1 = -1, row2 = -1;
        for (int j = 0; j < k2; j++) {
            bool last = i2 + j == n2 - 1;
            if (last) row2 = rows++;
            fc_batch_add(b, P2[i2 + j], i2 + j, 3, last);
        }
        for (int j = 0; j < k1; j++) {
            bool last = i1 + j == n1 - 1;
            if (last) row1 = rows++;
            fc_batch_add(b, P1[i1 + j], i1 + j, 1, last);
        }
        CHECK(fc_model_forward(m, e, kv, b, two) == FC_OK);
        if (row1 >= 0) {
            d = maxdiff(two + (size_t)row1 * V, a, V);
            printf("%s t=%d: interleaved seq 1 vs alone: max |d| = %.2e\n", exact ? "exact" : "fast", threads, d);
            CHECK(d < tol);
        }
        if (row2 >= 0) {
            d = maxdiff(two + (size_t)row2 * V, r2, V);
            printf("%s t=%d: interleaved seq 3 vs alone: max |d| = %.2e\n", exact ? "exact" : "fast", threads, d);
            CHECK(d < tol);
        }
        i1 += k1;
        i2 += k2;
    }

    /* fork: seq 2 shares the first 21 tokens of seq 1 (a partial block), then
     * continues with P1's remaining tokens; must equal P1 computed whole */
    int64_t free_before = fc_kv_cache_free_blocks(kv);
    fc_kv_cache_seq_fork(kv, 1, 2, 21);
    CHECK(fc_kv_cache_seq_len(kv, 2) == 21);
    CHECK(fc_kv_cache_free_blocks(kv) == free_before); /* no copy yet */
    CHECK(fc_kv_cache_reserve(kv, 2, n1 - 21) == FC_OK);
    fc_batch_clear(b);
    for (int j = 21; j < n1; j++) fc_batch_add(b, P1[j], j, 2, j == n1 - 1);
    CHECK(fc_model_forward(m, e, kv, b, bb) == FC_OK);
    d = maxdiff(a, bb, V);
    printf("%s t=%d: forked prefix + continuation vs whole: max |d| = %.2e\n", exact ? "exact" : "fast", threads, d);
    CHECK(d < tol);
    /* and the source sequence was not disturbed by the copy-on-write */
    CHECK(fc_kv_cache_reserve(kv, 1, 1) == FC_OK);
    fc_batch_clear(b);
    fc_batch_add(b, P2[0], n1, 1, true);
    CHECK(fc_model_forward(m, e, kv, b, two) == FC_OK);
    CHECK(fc_kv_cache_reserve(kv, 2, 1) == FC_OK);
    fc_batch_clear(b);
    fc_batch_add(b, P2[0], n1, 2, true);
    CHECK(fc_model_forward(m, e, kv, b, bb) == FC_OK);
    d = maxdiff(two, bb, V);
    CHECK(d < tol);

    /* errors: wrong position, unknown sequence, bad token */
    fc_batch_clear(b);
    fc_batch_add(b, 5, 3, 1, true);
    CHECK(fc_model_forward(m, e, kv, b, bb) == FC_ERR_ARG);
    fc_batch_clear(b);
    fc_batch_add(b, 5, 0, 9, true);
    CHECK(fc_model_forward(m, e, kv, b, bb) == FC_ERR_ARG);
    fc_batch_clear(b);
    fc_batch_add(b, V, fc_kv_cache_seq_len(kv, 1), 1, true);
    CHECK(fc_model_forward(m, e, kv, b, bb) == FC_ERR_ARG);
    fc_batch_clear(b);
    fc_batch_add(b, 5, 0, 0, true); /* seq 0 has no reserved room */
    CHECK(fc_model_forward(m, e, kv, b, bb) == FC_ERR_FULL);

    fc_batch_free(b);
    fc_kv_cache_free(kv);
    free(a); free(bb); free(r2); free(two);
    fc_exec_free(e);
}

static void test_pool(const fc_model_config *c)
{
    fc_kv_params kp = {.n_tokens = 64, .n_seq_max = 3, .dtype = FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    CHECK(fc_kv_cache_total_blocks(kv) == 4);
    CHECK(fc_kv_cache_reserve(kv, 0, 40) == FC_OK);     /* 3 blocks */
    CHECK(fc_kv_cache_free_blocks(kv) == 1);
    CHECK(fc_kv_cache_reserve(kv, 1, 17) == FC_ERR_FULL); /* needs 2 */
    CHECK(fc_kv_cache_free_blocks(kv) == 1);              /* nothing taken */
    CHECK(fc_kv_cache_reserve(kv, 1, 16) == FC_OK);
    CHECK(fc_kv_cache_free_blocks(kv) == 0);
    fc_kv_cache_seq_truncate(kv, 0, 0);
    CHECK(fc_kv_cache_free_blocks(kv) == 3);
    fc_kv_cache_free(kv);
    fc_kv_cache_free(NULL);
}

/* The packed copies are made by the first fast exec of a model, under a
 * lock: execs created at once from several threads (fast ones, and an
 * --act8 one that reads the file's layout while its pages are dropped)
 * must each compute what a lone exec computes afterwards. */
struct conc {
    const fc_model *m;
    bool act8;
    float *out;
};

static void *conc_thread(void *arg)
{
    struct conc *c = arg;
    const int n1 = (int)(sizeof P1 / sizeof *P1);
    fc_exec_params ep = {.n_threads = 1, .act8 = c->act8, .n_batch_max = 64};
    fc_exec *e = fc_exec_new(c->m, &ep);
    CHECK(e != NULL);
    if (e) run_chunked(c->m, e, P1, n1, 8, c->out);
    fc_exec_free(e);
    return NULL;
}

static void test_concurrent_packing(const char *path)
{
    fc_model *m = fc_model_load(path); /* fresh: nothing packed yet */
    CHECK(m != NULL);
    if (!m) return;
    const int V = fc_model_get_config(m)->n_vocab;
    enum { N = 5 };
    struct conc cs[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (struct conc){.m = m, .act8 = i == N - 1, .out = malloc(sizeof(float) * V)};
        CHECK(pthread_create(&th[i], NULL, conc_thread, &cs[i]) == 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    /* lone execs afterwards, one per mode */
    float *fast = malloc(sizeof(float) * V), *act8 = malloc(sizeof(float) * V);
    struct conc lone_fast = {m, false, fast}, lone_act8 = {m, true, act8};
    conc_thread(&lone_fast);
    conc_thread(&lone_act8);
    for (int i = 0; i < N - 1; i++)
        CHECKF(memcmp(cs[i].out, fast, sizeof(float) * V) == 0, "concurrent fast exec %d differs from a lone one", i);
    CHECKF(memcmp(cs[N - 1].out, act8, sizeof(float) * V) == 0, "the act8 exec next to packing differs from a lone one");
    CHECKF(maxdiff(fast, act8, V) > 1e-3, "act8 and 16-bit logits identical: the modes were not both exercised");
    for (int i = 0; i < N; i++) free(cs[i].out);
    free(fast);
    free(act8);
    fc_model_free(m);
}

/* N_DEC sequences with prompts of different lengths (prefixes of P1 then
 * P2), then DEC_STEPS decode steps of one token each for all of them in one
 * batch; the last step's logits (N_DEC rows) into out. */
enum { N_DEC = 12, DEC_STEPS = 3 };
static void run_decode_batch(const fc_model *m, int threads, float *out)
{
    const fc_model_config *c = fc_model_get_config(m);
    const int n1 = (int)(sizeof P1 / sizeof *P1);
    fc_exec_params ep = {.n_threads = threads, .n_batch_max = 64};
    fc_exec *e = fc_exec_new(m, &ep);
    fc_kv_params kp = {.n_tokens = 1024, .n_seq_max = N_DEC, .dtype = FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    fc_batch *b = fc_batch_new(64);
    for (int s = 0; s < N_DEC; s++) {
        const int n = 3 + 2 * s; /* 3..25 prompt tokens */
        CHECK(fc_kv_cache_reserve(kv, s, n) == FC_OK);
        fc_batch_clear(b);
        for (int j = 0; j < n; j++) fc_batch_add(b, j < n1 ? P1[j] : P2[j - n1], j, s, j == n - 1);
        CHECK(fc_model_forward(m, e, kv, b, out) == FC_OK);
    }
    for (int step = 0; step < DEC_STEPS; step++) {
        fc_batch_clear(b);
        for (int s = 0; s < N_DEC; s++) {
            CHECK(fc_kv_cache_reserve(kv, s, 1) == FC_OK);
            fc_batch_add(b, P2[(s + step) % 17], fc_kv_cache_seq_len(kv, s), s, true);
        }
        CHECK(fc_model_forward(m, e, kv, b, out) == FC_OK);
    }
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    fc_exec_free(e);
}

static void test_decode_threads(const fc_model *m)
{
    const size_t n = (size_t)N_DEC * (size_t)fc_model_get_config(m)->n_vocab;
    float *l1 = malloc(sizeof(float) * n), *l2 = malloc(sizeof(float) * n), *l3 = malloc(sizeof(float) * n);
    run_decode_batch(m, 1, l1);
    run_decode_batch(m, 2, l2);
    run_decode_batch(m, 3, l3);
    printf("fast: batched decode of %d sequences, 2 / 3 threads vs 1: max |d| = %.2e / %.2e\n", N_DEC,
           maxdiff(l1, l2, (int)n), maxdiff(l1, l3, (int)n));
    CHECK(memcmp(l1, l2, sizeof(float) * n) == 0);
    CHECK(memcmp(l1, l3, sizeof(float) * n) == 0);
    free(l1); free(l2); free(l3);
}

int main(void)
{
    const char *path = getenv("FASTCHAT_MODEL");
    if (!path) {
        fprintf(stderr, "FASTCHAT_MODEL is not set (scripts/run_tests.sh sets it)\n");
        return 1;
    }
    fc_model *m = fc_model_load(path);
    CHECK(m != NULL);
    if (!m) return TEST_END();
    test_pool(fc_model_get_config(m));
    test_mode(m, true, 2);
    test_mode(m, false, 2);
    test_mode(m, false, 1);
    test_decode_threads(m);
    fc_model_free(m);
    test_concurrent_packing(path);
    return TEST_END();
}
