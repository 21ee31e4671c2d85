/*
 * test_t5.c: the T5 relative-position buckets (fc_t5_bucket) against the
 * values transformers' T5Attention._relative_position_bucket gives for
 * relative positions -300..300, bidirectional (encoder) and causal
 * (decoder), for the default 32 buckets / max_distance 128, the tiny
 * models' 8 / 12, and 64 / 256. The table is run-length coded: each
 * {rel, bucket} pair starts a run that lasts until the next pair's rel.
 * Generated with /work/gvenv (transformers 5.25) by a one-off script:
 *   T5Attention._relative_position_bucket(torch.arange(-300, 301), bidir, nb, md)
 * Also: a missing folder fails to load with an error, never a crash; and
 * on the tiny T5 of tests/data/t5 (run from the repository root, or
 * $FC_TEST_DATA/t5), five
 * decoders of different prompt lengths stepped together
 * (fc_t5_dec_step_batch, each at its own position) give the logits of the
 * same decoders stepped one by one (greedy, 24 steps; the batched ones on
 * a pool of 3 threads, the single ones on none).
 * The five prompts' encoders in one fc_t5_encode_batch give each prompt's
 * rows of fc_t5_encode (within 1e-5).
 * Paged: the same decoders sharing one fc_t5_kv_cache_new cache of 14
 * blocks (too small for all five: 20 blocks at 24 steps) give the same
 * tokens and top logits; a decoder that does not fit is refused with
 * FC_ERR_FULL and takes nothing (one in a slot in use with FC_ERR_ARG), a batch step short of blocks is refused
 * with nothing consumed, a freed decoder's blocks serve the next ones, and
 * the cache is all free at the end.
 */
#include "model/t5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSEQ 5
#define STEPS 24

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Steps the decoders ds[0..n) (sequences which[0..n)) together from
 * position `from` to STEPS, comparing each token and top logit with ref;
 * returns the failures. */
static int paged_run(fc_t5_dec **ds, const int *which, int n, int from, const float ref[NSEQ][STEPS][2], int V,
                     int32_t start, const char *dir)
{
    int fails = 0;
    int32_t toks[NSEQ];
    float *lb = malloc(sizeof(float) * (size_t)V * NSEQ);
    for (int s = 0; s < n; s++) toks[s] = from == 0 ? start : (int32_t)ref[which[s]][from - 1][0];
    for (int k = from; k < STEPS; k++) {
        if (fc_t5_dec_step_batch(ds, toks, n, lb) != FC_OK) {
            fprintf(stderr, "%s: paged step %d refused\n", dir, k);
            free(lb);
            return fails + 1;
        }
        for (int s = 0; s < n; s++) {
            const int t = argmax(lb + (size_t)s * V, V);
            if (t != (int)ref[which[s]][k][0] || fabs(lb[(size_t)s * V + t] - ref[which[s]][k][1]) > 1e-5) {
                if (fails++ < 5) fprintf(stderr, "%s: paged seq %d step %d: %d, single %d\n", dir, which[s], k, t,
                                         (int)ref[which[s]][k][0]);
            }
            toks[s] = t;
        }
    }
    free(lb);
    return fails;
}

/* The decoders of encs in one shared cache too small for all of them. */
static int paged(const fc_t5 *m, const fc_t5_run *run, float *const *encs, const int *lens, const float ref[NSEQ][STEPS][2],
                 const char *dir)
{
    const fc_t5_config *c = fc_t5_get_config(m);
    const int V = c->n_vocab;
    int fails = 0;
    fc_kv_cache *kv = fc_t5_kv_cache_new(m, 14 * FC_KV_BLOCK, NSEQ);
    if (!kv) return 1;
    const int64_t total = fc_kv_cache_total_blocks(kv);
    fc_t5_dec *ds[NSEQ] = {0};
    int which[NSEQ], n = 0;
    /* cross blocks 1, 1, 2, 3, 3 plus one self block each: four fit */
    for (int s = 0; s < NSEQ; s++) {
        const int64_t before = fc_kv_cache_free_blocks(kv);
        enum fc_status st = fc_t5_dec_new_paged(m, run, kv, s, encs[s], lens[s], 1, &ds[n]);
        if (st == FC_OK) {
            which[n++] = s;
        } else if (st != FC_ERR_FULL || s != NSEQ - 1 || ds[n] || fc_kv_cache_free_blocks(kv) != before) {
            fprintf(stderr, "%s: paged decoder %d: status %d, free %lld (was %lld)\n", dir, s, st,
                    (long long)fc_kv_cache_free_blocks(kv), (long long)before);
            fails++;
        }
    }
    if (n != NSEQ - 1) {
        fprintf(stderr, "%s: %d paged decoders fit 14 blocks, expected %d\n", dir, n, NSEQ - 1);
        fails++;
    }
    fc_t5_dec *dup = NULL;
    const int64_t free_now = fc_kv_cache_free_blocks(kv);
    if (fc_t5_dec_new_paged(m, run, kv, 0, encs[0], lens[0], 1, &dup) != FC_ERR_ARG || dup ||
        fc_kv_cache_free_blocks(kv) != free_now) {
        fprintf(stderr, "%s: a decoder in a slot in use was not refused\n", dir);
        fails++;
    }
    /* 16 steps fill each self block; the 17th needs 4 more blocks, 3 are free */
    int32_t toks[NSEQ];
    float *lb = malloc(sizeof(float) * (size_t)V * NSEQ);
    for (int k = 0; k < FC_KV_BLOCK; k++) {
        for (int s = 0; s < n; s++) toks[s] = k == 0 ? c->decoder_start_id : (int32_t)ref[which[s]][k - 1][0];
        if (fc_t5_dec_step_batch(ds, toks, n, lb) != FC_OK) fails++;
    }
    const int64_t free_before = fc_kv_cache_free_blocks(kv);
    for (int s = 0; s < n; s++) toks[s] = (int32_t)ref[which[s]][FC_KV_BLOCK - 1][0];
    if (fc_t5_dec_step_blocks(ds, n) != n || fc_t5_dec_step_batch(ds, toks, n, lb) != FC_ERR_FULL ||
        fc_kv_cache_free_blocks(kv) != free_before || fc_t5_dec_len(ds[0]) != FC_KV_BLOCK) {
        fprintf(stderr, "%s: a paged step short of blocks was not refused cleanly\n", dir);
        fails++;
    }
    free(lb);
    /* the newest leaves; the others go on to the end, then the last two
     * run in the blocks the others gave back */
    fc_t5_dec_free(ds[--n]);
    fails += paged_run(ds, which, n, FC_KV_BLOCK, ref, V, c->decoder_start_id, dir);
    for (int s = 0; s < n; s++) fc_t5_dec_free(ds[s]);
    if (fc_kv_cache_free_blocks(kv) != total) fails++;
    n = 0;
    for (int s = NSEQ - 2; s < NSEQ; s++)
        if (fc_t5_dec_new_paged(m, run, kv, s, encs[s], lens[s], 1, &ds[n]) == FC_OK) which[n++] = s;
    if (n != 2) fails++;
    fails += paged_run(ds, which, n, 0, ref, V, c->decoder_start_id, dir);
    for (int s = 0; s < n; s++) fc_t5_dec_free(ds[s]);
    if (fc_kv_cache_free_blocks(kv) != total) {
        fprintf(stderr, "%s: %lld of %lld blocks free after every decoder left\n", dir,
                (long long)fc_kv_cache_free_blocks(kv), (long long)total);
        fails++;
    }
    printf("test_t5: %s: paged, 14 blocks for 5 decoders needing 20: refusals clean, tokens = one by one, %lld/%lld free at the end\n",
           dir, (long long)fc_kv_cache_free_blocks(kv), (long long)total);
    fc_kv_cache_free(kv);
    return fails;
}

/* The NSEQ prompts' encoders in one fc_t5_encode_batch (on run) against
 * encs, each prompt encoded alone on no pool. */
static int encode_batch_equals_single(const fc_t5 *m, const fc_t5_run *run, float *const *encs, const int *lens,
                                      const char *dir)
{
    const fc_t5_config *c = fc_t5_get_config(m);
    const int V = c->n_vocab, C = c->n_embd;
    int total = 0;
    for (int s = 0; s < NSEQ; s++) total += lens[s];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)total);
    float *out = malloc(sizeof(float) * (size_t)total * C);
    for (int s = 0, r = 0; s < NSEQ; s++)
        for (int i = 0; i < lens[s]; i++) ids[r++] = 2 + (int32_t)((i * 37 + s * 11) % (V - 2));
    int fails = fc_t5_encode_batch(m, run, ids, lens, NSEQ, out) != FC_OK;
    double maxd = 0;
    for (int s = 0, r = 0; s < NSEQ && !fails; r += lens[s], s++)
        for (size_t i = 0; i < (size_t)lens[s] * C; i++) {
            const double d = fabs(out[(size_t)r * C + i] - encs[s][i]);
            if (d > maxd) maxd = d;
        }
    if (maxd > 1e-5) fails++;
    const int bad_len[2] = {3, 0};
    if (fc_t5_encode_batch(m, run, ids, bad_len, 2, out) != FC_ERR_ARG) fails++;
    printf("test_t5: %s: %d prompts' encoders in one batch = one by one (max |d| %.3g)\n", dir, NSEQ, maxd);
    free(ids);
    free(out);
    return fails;
}

/* Greedy decoding of NSEQ prompts, one by one and batched: returns the
 * number of failures. */
static int batched_equals_single(const char *dir)
{
    fc_t5 *m = fc_t5_load(dir);
    if (!m) {
        fprintf(stderr, "%s: cannot load\n", dir);
        return 1;
    }
    const fc_t5_config *c = fc_t5_get_config(m);
    const int V = c->n_vocab, C = c->n_embd;
    fc_pool *pool = fc_pool_new(3); /* the batched decoders run on 3 threads */
    const fc_t5_run run = {.pool = pool};
    fc_t5_dec *one[NSEQ], *bat[NSEQ];
    float *encs[NSEQ];
    int lens[NSEQ];
    for (int s = 0; s < NSEQ; s++) {
        int32_t ids[64];
        const int n = lens[s] = 3 + 11 * s;
        for (int i = 0; i < n; i++) ids[i] = 2 + (int32_t)((i * 37 + s * 11) % (V - 2));
        float *enc = encs[s] = malloc(sizeof(float) * (size_t)n * C);
        if (fc_t5_encode(m, NULL, ids, n, enc) != FC_OK) return 1;
        one[s] = fc_t5_dec_new(m, NULL, enc, n, STEPS + s);
        bat[s] = fc_t5_dec_new(m, &run, enc, n, STEPS + s);
    }
    int fails = encode_batch_equals_single(m, &run, encs, lens, dir);
    float *l1 = malloc(sizeof(float) * (size_t)V), *lb = malloc(sizeof(float) * (size_t)V * NSEQ);
    float ref[NSEQ][STEPS][2]; /* argmax and its logit, one by one */
    for (int s = 0; s < NSEQ; s++) {
        int32_t tok = c->decoder_start_id;
        for (int k = 0; k < STEPS + s; k++) {
            if (fc_t5_dec_step(one[s], tok, l1) != FC_OK) return 1;
            tok = argmax(l1, V);
            if (k < STEPS) { ref[s][k][0] = (float)tok; ref[s][k][1] = l1[tok]; }
        }
        if (fc_t5_dec_step(one[s], tok, l1) != FC_ERR_FULL) {
            fprintf(stderr, "step past n_max was not refused\n");
            fails++;
        }
    }
    int32_t toks[NSEQ];
    for (int s = 0; s < NSEQ; s++) toks[s] = c->decoder_start_id;
    double maxd = 0;
    for (int k = 0; k < STEPS; k++) {
        if (fc_t5_dec_step_batch(bat, toks, NSEQ, lb) != FC_OK) return 1;
        for (int s = 0; s < NSEQ; s++) {
            const int t = argmax(lb + (size_t)s * V, V);
            const double d = fabs(lb[(size_t)s * V + t] - ref[s][k][1]);
            if (d > maxd) maxd = d;
            if (t != (int)ref[s][k][0] || d > 1e-5) {
                if (fails++ < 5) fprintf(stderr, "%s: seq %d step %d: batched %d, single %d (|d| %.3g)\n", dir, s, k, t,
                                         (int)ref[s][k][0], d);
            }
            toks[s] = t;
        }
    }
    printf("test_t5: %s: %d sequences x %d steps batched = one by one (max |d| of the top logit %.3g)\n", dir, NSEQ,
           STEPS, maxd);
    int32_t dup[2] = {1, 1};
    fc_t5_dec *twice[2] = {bat[NSEQ - 1], bat[NSEQ - 1]};
    if (fc_t5_dec_step_batch(twice, dup, 2, lb) != FC_ERR_ARG) {
        fprintf(stderr, "a decoder twice in one batch was not refused\n");
        fails++;
    }
    for (int s = 0; s < NSEQ; s++) {
        fc_t5_dec_free(one[s]);
        fc_t5_dec_free(bat[s]);
    }
    fails += paged(m, &run, encs, lens, ref, dir);
    for (int s = 0; s < NSEQ; s++) free(encs[s]);
    free(l1);
    free(lb);
    fc_t5_free(m);
    fc_pool_free(pool);
    return fails;
}

typedef struct { bool bidir; int nb, md, n_runs; int runs[64][2]; } bucket_case;

static const bucket_case cases[] = {
    {true, 32, 128, 31, {{-300, 15}, {-90, 14}, {-63, 13}, {-45, 12}, {-31, 11}, {-22, 10}, {-15, 9}, {-11, 8}, {-7, 7}, {-6, 6}, {-5, 5}, {-4, 4}, {-3, 3}, {-2, 2}, {-1, 1}, {0, 0}, {1, 17}, {2, 18}, {3, 19}, {4, 20}, {5, 21}, {6, 22}, {7, 23}, {8, 24}, {12, 25}, {16, 26}, {23, 27}, {32, 28}, {46, 29}, {64, 30}, {91, 31}}},
    {false, 32, 128, 32, {{-300, 31}, {-112, 30}, {-98, 29}, {-86, 28}, {-76, 27}, {-66, 26}, {-58, 25}, {-51, 24}, {-45, 23}, {-39, 22}, {-34, 21}, {-30, 20}, {-26, 19}, {-23, 18}, {-20, 17}, {-18, 16}, {-15, 15}, {-14, 14}, {-13, 13}, {-12, 12}, {-11, 11}, {-10, 10}, {-9, 9}, {-8, 8}, {-7, 7}, {-6, 6}, {-5, 5}, {-4, 4}, {-3, 3}, {-2, 2}, {-1, 1}, {0, 0}}},
    {true, 8, 12, 7, {{-300, 3}, {-4, 2}, {-1, 1}, {0, 0}, {1, 5}, {2, 6}, {5, 7}}},
    {false, 8, 12, 8, {{-300, 7}, {-9, 6}, {-6, 5}, {-5, 4}, {-3, 3}, {-2, 2}, {-1, 1}, {0, 0}}},
    {true, 64, 256, 63, {{-300, 31}, {-215, 30}, {-181, 29}, {-152, 28}, {-127, 27}, {-107, 26}, {-90, 25}, {-76, 24}, {-63, 23}, {-53, 22}, {-45, 21}, {-38, 20}, {-31, 19}, {-26, 18}, {-22, 17}, {-19, 16}, {-15, 15}, {-14, 14}, {-13, 13}, {-12, 12}, {-11, 11}, {-10, 10}, {-9, 9}, {-8, 8}, {-7, 7}, {-6, 6}, {-5, 5}, {-4, 4}, {-3, 3}, {-2, 2}, {-1, 1}, {0, 0}, {1, 33}, {2, 34}, {3, 35}, {4, 36}, {5, 37}, {6, 38}, {7, 39}, {8, 40}, {9, 41}, {10, 42}, {11, 43}, {12, 44}, {13, 45}, {14, 46}, {15, 47}, {16, 48}, {20, 49}, {23, 50}, {27, 51}, {32, 52}, {39, 53}, {46, 54}, {54, 55}, {64, 56}, {77, 57}, {91, 58}, {108, 59}, {128, 60}, {153, 61}, {182, 62}, {216, 63}}},
};

int main(void)
{
    int fails = 0, checked = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bucket_case *k = &cases[c];
        for (int i = 0; i < k->n_runs; i++) {
            const int r1 = i + 1 < k->n_runs ? k->runs[i + 1][0] : 301;
            for (int r = k->runs[i][0]; r < r1; r++, checked++) {
                const int got = fc_t5_bucket(r, k->bidir, k->nb, k->md);
                if (got != k->runs[i][1]) {
                    if (fails++ < 10)
                        fprintf(stderr, "bucket(rel %d, %s, %d, %d) = %d, transformers %d\n", r,
                                k->bidir ? "bidirectional" : "causal", k->nb, k->md, got, k->runs[i][1]);
                }
            }
        }
    }
    if (fc_t5_load("/nonexistent-t5-folder") != NULL) {
        fprintf(stderr, "loading a missing folder succeeded\n");
        fails++;
    }
    const char *env = getenv("FC_TEST_DATA");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/t5/t5_v11_gated_untied", env ? env : "tests/data");
    fails += batched_equals_single(dir);
    snprintf(dir, sizeof dir, "%s/t5/t5_v10_relu_tied", env ? env : "tests/data");
    fails += batched_equals_single(dir);
    printf("test_t5: %d buckets checked, %d wrong\n", checked, fails);
    return fails ? 1 : 0;
}
