/*
 * test_train_dist.c: the single-process parts of ZeRO sharding (dist.h),
 * without mpirun (tests/py/test_train_mpi.py runs the real 2-process
 * training):
 * - fc_dist_shard tiles [0, n) with contiguous slices, sizes within one;
 * - AdamW over W shards ([lo, lo + n) moments, fc_adamw_init_shard) updates
 *   every parameter exactly as one AdamW over the whole buffer (bit for bit:
 *   the same per-element arithmetic), weight decay groups included;
 * - fc_train_save_optimizer_chunks fed from the shards writes the same bytes
 *   as fc_train_save_optimizer of the whole state, and
 *   fc_train_load_optimizer reads each shard's slice back;
 * - saving a sharded state with fc_train_save_optimizer is refused;
 * - without a launcher in the environment, fc_dist_init keeps a world of 1.
 * Model: tests/data/train/tiny_llama. Run from the repository root.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "train/dist.h"
#include "train/train.h"
#include "test_util.h"

static void test_shard_tiling(void)
{
    static const size_t ns[] = {0, 1, 7, 64, 1000003};
    for (size_t i = 0; i < FC_ARRAY_LEN(ns); i++)
        for (int W = 1; W <= 5; W++) {
            size_t next = 0, mn = (size_t)-1, mx = 0;
            for (int r = 0; r < W; r++) {
                size_t lo, cnt;
                fc_dist_shard(ns[i], r, W, &lo, &cnt);
                CHECKF(lo == next, "n %zu W %d rank %d: lo %zu, want %zu", ns[i], W, r, lo, next);
                next = lo + cnt;
                mn = FC_MIN(mn, cnt);
                mx = FC_MAX(mx, cnt);
            }
            CHECKF(next == ns[i] && mx - mn <= 1, "n %zu W %d: end %zu, sizes %zu..%zu", ns[i], W, next, mn, mx);
        }
}

typedef struct shards {
    fc_adamw *o;
    int W;
} shards;

static size_t from_shards(int k, size_t off, float *dst, size_t cap, void *user)
{
    const shards *s = user;
    for (int r = 0; r < s->W; r++) {
        const fc_adamw *o = &s->o[r];
        if (off >= o->lo && off < o->lo + o->n) {
            size_t got = FC_MIN(cap, o->lo + o->n - off);
            memcpy(dst, (k ? o->v : o->m) + (off - o->lo), got * sizeof(float));
            return got;
        }
    }
    return 0;
}

static void test_sharded_adamw(void)
{
    fc_model *m = fc_model_load("tests/data/train/tiny_llama");
    CHECK(m != NULL);
    if (!m) return;
    fc_train_model *a = fc_train_model_from_model(m), *b = fc_train_model_from_model(m);
    CHECK(a && b);
    if (!a || !b) goto out;
    const size_t n = fc_train_model_n_floats(a);
    enum { W = 3 };
    fc_adamw whole, part[W];
    CHECK(fc_adamw_init(&whole, a, 0.9, 0.999, 1e-8, 0.1) == FC_OK);
    for (int r = 0; r < W; r++) {
        size_t lo, cnt;
        fc_dist_shard(n, r, W, &lo, &cnt);
        CHECK(fc_adamw_init_shard(&part[r], b, lo, cnt, 0.9, 0.999, 1e-8, 0.1) == FC_OK);
    }
    uint64_t s = 12345;
    for (int step = 0; step < 3; step++) {
        float *ga = fc_train_model_grads(a), *gb = fc_train_model_grads(b);
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            ga[i] = gb[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5) * 1e-2f;
        }
        fc_adamw_step(&whole, a, 1e-3);
        for (int r = 0; r < W; r++) fc_adamw_step(&part[r], b, 1e-3);
    }
    CHECK(memcmp(fc_train_model_params(a), fc_train_model_params(b), n * sizeof(float)) == 0);
    bool moved = false;
    fc_train_model *c = fc_train_model_from_model(m);
    for (size_t i = 0; c && i < n; i++) moved |= fc_train_model_params(a)[i] != fc_train_model_params(c)[i];
    CHECK(moved);
    fc_train_model_free(c);

    /* the gathered file equals the whole state's, byte for byte */
    char d1[] = "/tmp/fc_dist_XXXXXX", d2[] = "/tmp/fc_dist_XXXXXX";
    CHECK(mkdtemp(d1) && mkdtemp(d2));
    CHECK(fc_train_save_optimizer(a, &whole, d1) == FC_OK);
    shards sh = {part, W};
    CHECK(fc_train_save_optimizer_chunks(b, d2, 1000, from_shards, &sh) == FC_OK);
    char p1[64], p2[64];
    snprintf(p1, sizeof p1, "%s/optimizer.safetensors", d1);
    snprintf(p2, sizeof p2, "%s/optimizer.safetensors", d2);
    size_t l1 = 0, l2 = 0;
    char *f1 = fc_file_read(p1, &l1, 0), *f2 = fc_file_read(p2, &l2, 0);
    CHECK(f1 && f2 && l1 == l2 && l1 > 2 * n * sizeof(float) && !memcmp(f1, f2, l1));
    free(f1);
    free(f2);
    CHECK(fc_train_save_optimizer(b, &part[1], d2) == FC_ERR_ARG); /* a shard alone: refused */
    /* each shard reads its slice back */
    for (int r = 0; r < W; r++) {
        fc_adamw back;
        CHECK(fc_adamw_init_shard(&back, b, part[r].lo, part[r].n, 0.9, 0.999, 1e-8, 0.1) == FC_OK);
        CHECK(fc_train_load_optimizer(b, &back, d1) == FC_OK);
        CHECK(!memcmp(back.m, part[r].m, part[r].n * sizeof(float)) &&
              !memcmp(back.v, part[r].v, part[r].n * sizeof(float)));
        fc_adamw_free(&back);
    }
    unlink(p1);
    unlink(p2);
    rmdir(d1);
    rmdir(d2);
    fc_adamw_free(&whole);
    for (int r = 0; r < W; r++) fc_adamw_free(&part[r]);
    fc_adamw bad;
    CHECK(fc_adamw_init_shard(&bad, b, n - 1, 2, 0.9, 0.999, 1e-8, 0) == FC_ERR_ARG);
out:
    fc_train_model_free(a);
    fc_train_model_free(b);
    fc_model_free(m);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    unsetenv("PMI_RANK");
    unsetenv("PMIX_SIZE");
    unsetenv("PMI_SIZE");
    CHECK(fc_dist_init(NULL, NULL) == FC_OK);
    CHECK(fc_dist_world() == 1 && fc_dist_rank() == 0);
    test_shard_tiling();
    test_sharded_adamw();
    fc_dist_finalize();
    return TEST_END();
}
