/*
 * dist.c: data parallelism over MPI with a ZeRO-sharded AdamW. See dist.h.
 *
 * Mirrors what FastChat gets from torch.distributed + FSDP under torchrun:
 * DistributedSampler-style slices of each global batch, gradients summed over
 * the ranks (NCCL/Gloo reduce-scatter there, MPI_Reduce_scatter here), the
 * optimizer state split across ranks, rank 0 alone writing checkpoints and
 * logs. The sums are in f32 as the ranks' gradients are, so a W-process run
 * equals a 1-process run with the same global batch to rounding (the order of
 * the additions differs), not bit for bit.
 *
 * Without MPI (no libopenmpi-dev at build time) the functions keep a world of
 * one, and fc_dist_init refuses a launch by mpirun with several processes
 * (each would think it is alone and train the whole batch).
 */
#include "train/dist.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifdef FC_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_world = 1;
static bool g_mpi = false; /* fc_dist_init called MPI_Init */

/* The size a launcher announces in the environment, or 0 when none did. */
static int launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < FC_ARRAY_LEN(vars); i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v) > 0 ? atoi(v) : 1;
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 1 : 0;
}

bool fc_dist_enabled(void)
{
#ifdef FC_HAVE_MPI
    return true;
#else
    return false;
#endif
}

int fc_dist_rank(void) { return g_rank; }
int fc_dist_world(void) { return g_world; }

void fc_dist_shard(size_t n, int rank, int world, size_t *lo, size_t *cnt)
{
    /* floor(n r / W) without overflowing n r */
    const size_t q = n / (size_t)world, rem = n % (size_t)world;
    const size_t a = q * (size_t)rank + rem * (size_t)rank / (size_t)world;
    const size_t b = q * (size_t)(rank + 1) + rem * (size_t)(rank + 1) / (size_t)world;
    *lo = a;
    *cnt = b - a;
}

#ifdef FC_HAVE_MPI

static bool mpi_ok(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return true;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    FC_LOG_ERROR("%s: %.*s", what, len, msg);
    return false;
}

enum fc_status fc_dist_init(int *argc, char ***argv)
{
    if (g_mpi || launcher_size() == 0) return FC_OK;
    int provided = 0;
    if (!mpi_ok(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"))
        return FC_ERR_IO;
    g_mpi = true;
    /* errors come back as codes (logged), not as MPI's default abort */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    return FC_OK;
}

void fc_dist_finalize(void)
{
    if (!g_mpi) return;
    MPI_Finalize();
    g_mpi = false;
    g_rank = 0;
    g_world = 1;
}

void fc_dist_abort(int code)
{
    if (g_mpi) MPI_Abort(MPI_COMM_WORLD, code);
}

void fc_dist_sum(double *v, int n)
{
    if (g_world > 1) mpi_ok(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), __func__);
}

enum fc_status fc_dist_agree(enum fc_status st)
{
    if (g_world == 1) return st;
    int v = (int)st;
    if (!mpi_ok(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), __func__))
        return FC_ERR_IO;
    return (enum fc_status)v;
}

/* The collectives run over CHUNK floats of the flat buffers at a time:
 * OpenMPI's algorithms for large messages allocate scratch of the message's
 * size (a whole-model reduce-scatter of SmolLM2-135M took ~700 MiB more per
 * process than the sharding saves), and MPI counts are ints. */
enum { CHUNK = 1 << 20 }; /* 4 MiB of floats */

/* Every rank's part of the floats [c0, c1) of the buffer, as MPI counts and
 * displacements from c0 (the shards are contiguous and in rank order, so the
 * parts are too, as MPI_Reduce_scatter and MPI_Allgatherv lay them out). */
static void chunk_table(size_t n, size_t c0, size_t c1, int *counts, int *displs)
{
    for (int r = 0; r < g_world; r++) {
        size_t lo, cnt;
        fc_dist_shard(n, r, g_world, &lo, &cnt);
        const size_t a = FC_MIN(FC_MAX(lo, c0), c1), b = FC_MAX(FC_MIN(lo + cnt, c1), a);
        counts[r] = (int)(b - a);
        displs[r] = (int)(a - c0);
    }
}

double fc_dist_step(fc_train_model *tm, fc_adamw *o, double max_norm, double lr)
{
    const size_t n = fc_train_model_n_floats(tm);
    float *g = fc_train_model_grads(tm), *p = fc_train_model_params(tm);
    int *counts = fc_xmalloc((size_t)g_world * sizeof(int)), *displs = fc_xmalloc((size_t)g_world * sizeof(int));
    float *part = fc_xmalloc((size_t)CHUNK * sizeof(float)); /* this rank's part of a chunk */
    double norm = NAN;
    {
        size_t lo, cnt;
        fc_dist_shard(n, g_rank, g_world, &lo, &cnt);
        FC_ASSERT(o->lo == lo && o->n == cnt);
    }
    /* 1. reduce-scatter, chunk by chunk: this rank's summed part of each
     * chunk comes into `part`, then goes where it belongs */
    for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
        const size_t c1 = FC_MIN(n, c0 + CHUNK);
        chunk_table(n, c0, c1, counts, displs);
        if (!mpi_ok(MPI_Reduce_scatter(g + c0, part, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
                    "MPI_Reduce_scatter"))
            goto done;
        memcpy(g + c0 + displs[g_rank], part, (size_t)counts[g_rank] * sizeof(float));
    }
    /* 2. the global norm, as fc_train_clip_grad_norm computes it over one buffer */
    double ss = 0;
    for (size_t i = o->lo; i < o->lo + o->n; i++) ss += (double)g[i] * g[i];
    if (!mpi_ok(MPI_Allreduce(MPI_IN_PLACE, &ss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce"))
        goto done;
    norm = sqrt(ss);
    if (max_norm > 0) {
        const double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (size_t i = o->lo; i < o->lo + o->n; i++) g[i] = (float)(g[i] * coef);
    }
    /* 3. AdamW on the shard; 4. everyone gets everyone's new parameters */
    fc_adamw_step(o, tm, lr);
    for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
        const size_t c1 = FC_MIN(n, c0 + CHUNK);
        chunk_table(n, c0, c1, counts, displs);
        if (!mpi_ok(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, p + c0, counts, displs, MPI_FLOAT,
                                   MPI_COMM_WORLD), "MPI_Allgatherv")) {
            norm = NAN;
            break;
        }
    }
done:
    free(counts);
    free(displs);
    free(part);
    return norm;
}

/* ---- checkpoints: rank 0 writes, asking each rank for its chunks ---- */

enum { TAG_ASK = 1601, TAG_DATA = 1602 };

typedef struct gather_ctx {
    const fc_adamw *o;
    size_t n;
} gather_ctx;

/* rank 0's chunk source: its own shard, or a request to the owner */
static size_t gather_chunk(int k, size_t off, float *dst, size_t cap, void *user)
{
    const gather_ctx *c = user;
    int r = 0;
    size_t lo = 0, cnt = 0;
    for (r = 0; r < g_world; r++) {
        fc_dist_shard(c->n, r, g_world, &lo, &cnt);
        if (off >= lo && off < lo + cnt) break;
    }
    if (r == g_world) return 0;
    const size_t got = FC_MIN(cap, lo + cnt - off);
    if (r == 0) {
        memcpy(dst, (k ? c->o->v : c->o->m) + (off - lo), got * sizeof(float));
        return got;
    }
    /* ask: buffer, offset in the owner's shard, count (<= cap: an int) */
    long long ask[3] = {k, (long long)(off - lo), (long long)got};
    if (!mpi_ok(MPI_Send(ask, 3, MPI_LONG_LONG, r, TAG_ASK, MPI_COMM_WORLD), "MPI_Send") ||
        !mpi_ok(MPI_Recv(dst, (int)got, MPI_FLOAT, r, TAG_DATA, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv"))
        return 0;
    return got;
}

enum fc_status fc_dist_save_optimizer(fc_train_model *tm, const fc_adamw *o, const char *dir)
{
    if (g_world == 1) return fc_train_save_optimizer(tm, o, dir);
    if (g_rank != 0) {
        /* serve rank 0's requests until it says done (count 0) */
        for (;;) {
            long long ask[3];
            if (!mpi_ok(MPI_Recv(ask, 3, MPI_LONG_LONG, 0, TAG_ASK, MPI_COMM_WORLD, MPI_STATUS_IGNORE), "MPI_Recv"))
                return FC_ERR_IO;
            if (ask[2] <= 0) return FC_OK;
            if (ask[1] < 0 || (size_t)(ask[1] + ask[2]) > o->n) {
                FC_LOG_ERROR("%s: asked for floats outside this rank's shard", __func__);
                return FC_ERR_ARG;
            }
            const float *src = (ask[0] ? o->v : o->m) + ask[1];
            if (!mpi_ok(MPI_Send(src, (int)ask[2], MPI_FLOAT, 0, TAG_DATA, MPI_COMM_WORLD), "MPI_Send"))
                return FC_ERR_IO;
        }
    }
    gather_ctx c = {o, fc_train_model_n_floats(tm)};
    enum fc_status st = fc_train_save_optimizer_chunks(tm, dir, (size_t)1 << 22, gather_chunk, &c);
    for (int r = 1; r < g_world; r++) { /* done, also after a failed write */
        long long done[3] = {0, 0, 0};
        if (!mpi_ok(MPI_Send(done, 3, MPI_LONG_LONG, r, TAG_ASK, MPI_COMM_WORLD), "MPI_Send")) st = FC_ERR_IO;
    }
    return st;
}

void fc_dist_peak_rss(long *out)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long kib = ru.ru_maxrss;
    if (g_world == 1) {
        out[0] = kib;
        return;
    }
    mpi_ok(MPI_Gather(&kib, 1, MPI_LONG, out, 1, MPI_LONG, 0, MPI_COMM_WORLD), __func__);
}

#else /* no MPI in this build: a world of one */

enum fc_status fc_dist_init(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (launcher_size() > 1) {
        FC_LOG_ERROR("%s: started by mpirun with %d processes, but this fastchat was built without MPI "
                     "(install libopenmpi-dev and rebuild)", __func__, launcher_size());
        return FC_ERR_ARG;
    }
    return FC_OK;
}

void fc_dist_finalize(void) {}
void fc_dist_abort(int code) { (void)code; }
void fc_dist_sum(double *v, int n) { (void)v, (void)n; }
enum fc_status fc_dist_agree(enum fc_status st) { return st; }

double fc_dist_step(fc_train_model *tm, fc_adamw *o, double max_norm, double lr)
{
    const double norm = fc_train_clip_grad_norm(tm, max_norm);
    fc_adamw_step(o, tm, lr);
    return norm;
}

enum fc_status fc_dist_save_optimizer(fc_train_model *tm, const fc_adamw *o, const char *dir)
{
    return fc_train_save_optimizer(tm, o, dir);
}

void fc_dist_peak_rss(long *out)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    out[0] = ru.ru_maxrss;
}

#endif
