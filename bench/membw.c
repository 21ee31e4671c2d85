/*
 * membw.c: DRAM read bandwidth, the bound on single-stream decode.
 *
 * Reads a buffer (1 GiB by default, far larger than any cache) with 256-bit
 * loads summed into eight independent accumulators, with 1 and then 2 (or
 * -t N) threads, each thread streaming its own contiguous slice. Prints the
 * best and the median of several passes in GB/s (1e9 bytes per second):
 *
 *   membw: threads=1 size_mib=1024 best_gbs=31.2 median_gbs=29.8
 *
 * A cache-resident figure (16 MiB buffer) is printed as well with -c, for
 * comparison with the compute-bound kernels. It does not measure write
 * bandwidth or latency; `make bench` only needs the read figure.
 *
 * Build: cc -O3 -march=native -pthread bench/membw.c -o build/bench/membw
 * Usage: membw [-s MiB] [-r passes] [-t max_threads] [-c]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int64_t v4i __attribute__((vector_size(32), aligned(32)));

struct slice {
    const v4i *p;
    size_t n;      /* vectors */
    int64_t sum;   /* kept so the loads cannot be optimised away */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *read_slice(void *arg)
{
    struct slice *s = arg;
    const v4i *p = s->p;
    v4i a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    size_t i = 0;
    for (; i + 8 <= s->n; i += 8) {
        a0 += p[i + 0]; a1 += p[i + 1]; a2 += p[i + 2]; a3 += p[i + 3];
        a4 += p[i + 4]; a5 += p[i + 5]; a6 += p[i + 6]; a7 += p[i + 7];
    }
    for (; i < s->n; i++) a0 += p[i];
    v4i t = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    s->sum = t[0] + t[1] + t[2] + t[3];
    return NULL;
}

/* One pass over buf with nt threads; returns seconds. */
static double pass(const v4i *buf, size_t n, int nt, int64_t *sink)
{
    pthread_t th[64];
    struct slice sl[64];
    size_t per = n / (size_t)nt;
    double t0 = now();
    for (int k = 0; k < nt; k++) {
        sl[k].p = buf + per * (size_t)k;
        sl[k].n = k == nt - 1 ? n - per * (size_t)k : per;
        if (k > 0) pthread_create(&th[k], NULL, read_slice, &sl[k]);
    }
    read_slice(&sl[0]);
    for (int k = 1; k < nt; k++) pthread_join(th[k], NULL);
    double dt = now() - t0;
    for (int k = 0; k < nt; k++) *sink += sl[k].sum;
    return dt;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(size_t bytes, int nt, int reps, const char *label)
{
    size_t n = bytes / sizeof(v4i);
    v4i *buf = aligned_alloc(64, n * sizeof(v4i));
    if (!buf) { fprintf(stderr, "membw: cannot allocate %zu bytes\n", bytes); exit(1); }
    /* Touch every page with non-zero data so that the pages are real. */
    for (size_t i = 0; i < n; i++) buf[i] = (v4i){(int64_t)i, 1, 2, 3};
    int64_t sink = 0;
    double *gbs = malloc(sizeof(double) * (size_t)reps);
    pass(buf, n, nt, &sink); /* warm-up: TLB, thread start */
    for (int r = 0; r < reps; r++) gbs[r] = (double)(n * sizeof(v4i)) / pass(buf, n, nt, &sink) / 1e9;
    qsort(gbs, (size_t)reps, sizeof(double), cmp_double);
    printf("membw: %s threads=%d size_mib=%zu best_gbs=%.1f median_gbs=%.1f (sink %lld)\n", label, nt,
           bytes >> 20, gbs[reps - 1], gbs[reps / 2], (long long)(sink & 1));
    fflush(stdout);
    free(gbs);
    free(buf);
}

int main(int argc, char **argv)
{
    size_t mib = 1024;
    int reps = 10, max_threads = 2, cache = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) mib = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) max_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-c")) cache = 1;
        else {
            fprintf(stderr, "usage: membw [-s MiB] [-r passes] [-t max_threads] [-c]\n");
            return 2;
        }
    }
    if (mib < 1 || reps < 1 || max_threads < 1 || max_threads > 64) {
        fprintf(stderr, "membw: bad arguments\n");
        return 2;
    }
    for (int nt = 1; nt <= max_threads; nt++) measure(mib << 20, nt, reps, "dram");
    if (cache)
        for (int nt = 1; nt <= max_threads; nt++) measure(16u << 20, nt, reps * 20, "cache");
    return 0;
}
