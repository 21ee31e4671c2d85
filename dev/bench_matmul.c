/*
 * bench_matmul.c: speed of fc_matmul_fast on the matrix shapes of
 * SmolLM2-135M, one and two threads.
 *
 * Build and run (from the repository root):
 *   cc -std=c11 -O3 -march=native -D_GNU_SOURCE -pthread -Isrc dev/bench_matmul.c \
 *      src/base/base.c src/base/pool.c src/tensor/dtype.c src/tensor/quant_ref.c \
 *      src/tensor/ops_ref.c src/tensor/pack.c src/tensor/cpu/[a-z]*.c -lm -o build/bench_matmul
 *   build/bench_matmul                 all types, T = 1, 32, 512, 1 and 2 threads
 *   build/bench_matmul q4_1 q4_0 -T 1 -j 2 -s 49152x576
 * Options: type names (default q4_1 q4_0 q8_0 q4_K q6_K f16; q4_0x8, q4_1x8
 * and q8_0x8 are the packed layouts of pack.c, with a16 acts), -T list of
 * token counts, -j list of thread counts, -s list of RxK shapes, -r seconds
 * per measurement (default 0.25), -cold / -hot only.
 *
 * What it reports, per type, shape, T and thread count:
 *   T = 1   GB/s of weight bytes streamed (the decode figure). "hot" runs
 *           the same matrix again and again, so it sits in L2/L3 when it
 *           fits; "cold" rotates through copies totalling > 128 MiB, so the
 *           weights come from DRAM as in a real forward pass. A plain AVX2
 *           read of the same bytes (memread) is timed right before as the
 *           machine's ceiling at that moment: the host is shared and noisy.
 *   T > 1   GFLOP/s (2 R K T per call), hot. With several threads also
 *           "(X if undisturbed)": the rate if the call had taken as long as
 *           its slowest thread's CPU time (see time_calls).
 * Each figure is the fastest single call within -r seconds (at least 5
 * calls): on a shared host a median measures the neighbours' load. Long
 * single-thread calls are timed by the thread's CPU clock (preemption
 * excluded); two threads only by the wall clock, so they suffer most when
 * the host is busy.
 * The K-quants need K % 256 == 0; for them K = 576 becomes 512.
 * Activations are converted once per call outside the timing, as the
 * forward pass does (fc_matmul_quantize_act once per matmul input).
 */
#include "base/fc_base.h"
#include "base/pool.h"
#include "tensor/ops.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- work for the pool ---- */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define MAX_THREADS 64

struct job {
    int wtype, at;
    const uint8_t *w;
    size_t ws;
    int64_t R, K;
    const uint8_t *xa;
    size_t xas;
    int T;
    float *y;
    double cpu[MAX_THREADS]; /* each thread's CPU seconds for its share, last call */
};

static void job_run(void *ctx, int ith, int nth)
{
    struct job *j = ctx;
    long lo, hi;
    fc_split_range((long)j->R, ith, nth, 4, &lo, &hi);
    const double c0 = cpu_now();
    fc_matmul_fast(j->wtype, j->w, j->ws, j->K, j->at, j->xa, j->xas, j->T, j->y, j->R, lo, hi);
    j->cpu[ith] = cpu_now() - c0;
}

struct readjob { const uint8_t *p; size_t n; volatile uint64_t sink; };
static void read_run(void *ctx, int ith, int nth)
{
    struct readjob *j = ctx;
    long lo, hi;
    fc_split_range((long)(j->n / 128), ith, nth, 1, &lo, &hi);
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (long i = lo; i < hi; i++) {
        const __m256i *p = (const __m256i *)(j->p + (size_t)i * 128);
        a = _mm256_add_epi64(a, _mm256_loadu_si256(p));
        b = _mm256_add_epi64(b, _mm256_loadu_si256(p + 1));
        c = _mm256_add_epi64(c, _mm256_loadu_si256(p + 2));
        d = _mm256_add_epi64(d, _mm256_loadu_si256(p + 3));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    j->sink += (uint64_t)_mm256_extract_epi64(a, 0);
}

/* Seconds per call of fn over `copies` rotating contexts: the fastest
 * single call seen within the time budget. The host is shared (other jobs
 * preempt us at random), so the minimum is the figure that estimates the
 * kernel's own speed; a median mostly measures the neighbours. Calls
 * shorter than 2 ms are timed by the wall clock (many of them run
 * undisturbed); longer ones with one thread by the thread's CPU clock,
 * which stops while another job has the core (it costs a system call,
 * ~0.5 us, subtracted). With several threads the wall clock is all there
 * is; *cpu_est (when not NULL) receives the other estimate: the slowest
 * thread's CPU time for its share (struct job.cpu), i.e. the call's time
 * had every thread kept its core, valid when the work is compute-bound. */
static double cpu_clock_cost(void)
{
    double best = INFINITY;
    for (int i = 0; i < 1000; i++) {
        const double a = cpu_now(), b = cpu_now();
        if (b - a < best) best = b - a;
    }
    return best;
}

static double time_calls(fc_pool *pool, fc_pool_fn fn, void **ctx, int copies, double budget, double *cpu_est)
{
    static double clock_cost = -1;
    if (clock_cost < 0) clock_cost = cpu_clock_cost();
    const int nth = fc_pool_size(pool);
    double best_wall = INFINITY, best_cpu = INFINITY, best_share = INFINITY;
    fc_pool_run(pool, fn, ctx[0]); /* warm up */
    const double start = fc_time_sec();
    long n = 0;
    for (;;) {
        const double c0 = nth == 1 ? cpu_now() : 0, t0 = fc_time_sec();
        fc_pool_run(pool, fn, ctx[n % copies]);
        const double t1 = fc_time_sec(), c1 = nth == 1 ? cpu_now() : 0;
        if (t1 - t0 < best_wall) best_wall = t1 - t0;
        if (c1 - c0 < best_cpu) best_cpu = c1 - c0;
        if (cpu_est) {
            const struct job *j = ctx[n % copies];
            double share = 0;
            for (int i = 0; i < nth; i++) share = FC_MAX(share, j->cpu[i]);
            if (share < best_share) best_share = share;
        }
        n++;
        if (t1 - start > budget && n >= 5) break;
    }
    if (cpu_est) *cpu_est = FC_MAX(best_share - clock_cost, 1e-9);
    if (nth > 1 || best_wall < 2e-3) return best_wall;
    return FC_MAX(best_cpu - clock_cost, 1e-9);
}

/* ---- data ---- */

static uint64_t rng = 88172645463325252ULL;
static float rnd(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return ((rng >> 40) / 16777216.0f - 0.5f) * 2;
}

/* R rows: 64 distinct quantized rows repeated (speed does not depend on values). */
static uint8_t *make_weights(int wtype, int64_t R, int64_t K, size_t *ws)
{
    const int base = fc_pack_base_type(wtype); /* packed types: quantize, then pack */
    *ws = fc_dtype_row_size(base, K);
    uint8_t *w = fc_aligned_alloc((size_t)R * *ws);
    float *row = fc_xmalloc((size_t)K * sizeof(float));
    FC_ASSERT(w);
    const int64_t nu = R < 64 ? R : 64;
    for (int64_t r = 0; r < nu; r++) {
        for (int64_t k = 0; k < K; k++) row[k] = rnd() * 0.05f;
        FC_ASSERT(fc_quantize_row_ref(base, row, w + (size_t)r * *ws, K));
    }
    for (int64_t r = nu; r < R; r++) memcpy(w + (size_t)r * *ws, w + (size_t)(r % nu) * *ws, *ws);
    free(row);
    if (base != wtype) {
        uint8_t *p = fc_aligned_alloc((size_t)R * *ws);
        FC_ASSERT(p && fc_pack_rows(base, w, *ws, R, K, p));
        free(w);
        w = p;
    }
    return w;
}

/* ---- main ---- */

#define MAXL 16

static int parse_list(const char *s, long *out)
{
    int n = 0;
    while (*s && n < MAXL) {
        out[n++] = strtol(s, (char **)&s, 10);
        if (*s == ',') s++;
    }
    return n;
}

int main(int argc, char **argv)
{
    int types[MAXL], ntypes = 0;
    long Ts[MAXL] = { 1, 32, 512 }, js[MAXL] = { 1, 2 };
    int nT = 3, nj = 2;
    long shapes[MAXL][2] = { { 576, 576 }, { 192, 576 }, { 1536, 576 }, { 576, 1536 }, { 49152, 576 } };
    int nshapes = 5;
    double budget = 0.25;
    int hot = 1, cold = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-T") && i + 1 < argc) nT = parse_list(argv[++i], Ts);
        else if (!strcmp(argv[i], "-j") && i + 1 < argc) nj = parse_list(argv[++i], js);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) budget = atof(argv[++i]);
        else if (!strcmp(argv[i], "-cold")) hot = 0;
        else if (!strcmp(argv[i], "-hot")) cold = 0;
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) {
            const char *s = argv[++i];
            nshapes = 0;
            while (*s && nshapes < MAXL) {
                shapes[nshapes][0] = strtol(s, (char **)&s, 10);
                if (*s == 'x') s++;
                shapes[nshapes][1] = strtol(s, (char **)&s, 10);
                nshapes++;
                if (*s == ',') s++;
            }
        } else {
            const int t = fc_dtype_from_name(argv[i]);
            if (t < 0 || ntypes == MAXL) { fprintf(stderr, "unknown type %s\n", argv[i]); return 2; }
            types[ntypes++] = t;
        }
    }
    if (!ntypes) {
        const int def[] = { FC_DTYPE_Q4_1, FC_DTYPE_Q4_0, FC_DTYPE_Q8_0, FC_DTYPE_Q4_K, FC_DTYPE_Q6_K, FC_DTYPE_F16 };
        for (size_t i = 0; i < FC_ARRAY_LEN(def); i++) types[ntypes++] = def[i];
    }

    fc_pool *pools[MAXL];
    for (int j = 0; j < nj; j++) pools[j] = fc_pool_new((int)js[j]);

    printf("%-5s %-11s %4s %3s  %-5s %9s %9s %12s\n", "type", "RxK", "T", "thr", "mode", "us/call", "result", "memread GB/s");
    for (int ti = 0; ti < ntypes; ti++) {
        const int wtype = types[ti];
        for (int si = 0; si < nshapes; si++) {
            const int64_t R = shapes[si][0];
            int64_t K = shapes[si][1];
            if (K % fc_dtype_block_size(wtype)) K = K / 256 * 256;
            size_t ws;
            uint8_t *w = make_weights(wtype, R, K, &ws);
            const size_t wbytes = (size_t)R * ws;
            /* copies for the cold runs: > 128 MiB in all */
            int ncopy = (int)((128u << 20) / wbytes) + 2;
            if (ncopy > 64) ncopy = 64;
            uint8_t *copies[64];
            const int at = fc_matmul_act_type(wtype, getenv("ACT8") == NULL);
            const size_t xas = fc_matmul_act_row_size(at, K);
            long Tmax = 1;
            for (int i = 0; i < nT; i++) Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
            uint8_t *xa = fc_aligned_alloc((size_t)Tmax * xas);
            float *x = fc_xmalloc((size_t)K * sizeof(float));
            float *y = fc_aligned_alloc((size_t)Tmax * R * sizeof(float));
            FC_ASSERT(xa && y);
            for (long t = 0; t < Tmax; t++) {
                for (int64_t k = 0; k < K; k++) x[k] = rnd();
                fc_matmul_quantize_act(at, x, xa + (size_t)t * xas, K);
            }
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)R, (long long)K);

            for (int it = 0; it < nT; it++) {
                const int T = (int)Ts[it];
                for (int mode = 0; mode < 2; mode++) {
                    const bool is_cold = mode == 1;
                    if ((is_cold && (T != 1 || !cold)) || (!is_cold && !hot)) continue;
                    const int nc = is_cold ? ncopy : 1;
                    copies[0] = w;
                    for (int c = 1; c < nc; c++) {
                        copies[c] = fc_aligned_alloc(wbytes);
                        FC_ASSERT(copies[c]);
                        memcpy(copies[c], w, wbytes);
                    }
                    struct job jobs[64];
                    struct readjob rjobs[64];
                    void *jctx[64], *rctx[64];
                    for (int c = 0; c < nc; c++) {
                        jobs[c] = (struct job){ .wtype = wtype, .at = at, .w = copies[c], .ws = ws, .R = R, .K = K, .xa = xa, .xas = xas, .T = T, .y = y };
                        rjobs[c] = (struct readjob){ copies[c], wbytes & ~(size_t)127, 0 };
                        jctx[c] = &jobs[c];
                        rctx[c] = &rjobs[c];
                    }
                    for (int j = 0; j < nj; j++) {
                        double rd = 0, se = 0;
                        if (T == 1) rd = wbytes / time_calls(pools[j], read_run, rctx, nc, budget, NULL) / 1e9;
                        const double s = time_calls(pools[j], job_run, jctx, nc, budget, &se);
                        char est[48] = "";
                        if (js[j] > 1 && T > 1)
                            snprintf(est, sizeof est, "   (%.1f if undisturbed)", 2.0 * R * K * T / se / 1e9);
                        if (T == 1)
                            printf("%-5s %-11s %4d %3ld  %-5s %9.1f %6.1f GB/s %8.1f\n", fc_dtype_name(wtype), shape, T, js[j],
                                   is_cold ? "cold" : "hot", s * 1e6, wbytes / s / 1e9, rd);
                        else
                            printf("%-5s %-11s %4d %3ld  %-5s %9.1f %6.1f GFLOP/s%s\n", fc_dtype_name(wtype), shape, T, js[j],
                                   "hot", s * 1e6, 2.0 * R * K * T / s / 1e9, est);
                        fflush(stdout);
                    }
                    for (int c = 1; c < nc; c++) fc_aligned_free(copies[c]);
                }
            }
            fc_aligned_free(w);
            fc_aligned_free(xa);
            fc_aligned_free(y);
            free(x);
        }
    }
    for (int j = 0; j < nj; j++) fc_pool_free(pools[j]);
    return 0;
}
