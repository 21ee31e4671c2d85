/*
 * pool.c: persistent worker threads, spin-then-sleep start signal and a
 * sense-reversing spin barrier.
 */

#include "pool.h"
#include "fc_base.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Spin this many iterations waiting for work before sleeping on the condvar. */
#define SPIN_BEFORE_SLEEP 20000
/* Past this many spins in a wait, yield the core on every iteration: when the
 * machine is oversubscribed, the thread we wait for may need our core. */
#define SPIN_BEFORE_YIELD 512

static inline void backoff(int *spins)
{
    if (++*spins < SPIN_BEFORE_YIELD) cpu_relax();
    else sched_yield();
}

struct fc_pool {
    int n;
    pthread_t *threads;
    fc_pool_fn fn;
    void *ctx;
    _Atomic unsigned gen;       /* bumped for each run */
    _Atomic int n_done;         /* workers finished with the current run */
    _Atomic int stop;
    /* barrier */
    _Atomic int bar_count;
    _Atomic unsigned bar_phase;
    /* sleeping */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int n_sleeping;
};

struct worker_arg { fc_pool *p; int ith; };

static void *worker_main(void *arg_)
{
    struct worker_arg *arg = arg_;
    fc_pool *p = arg->p;
    int ith = arg->ith;
    free(arg);
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&p->stop, memory_order_relaxed)) return NULL;
            if (spins < SPIN_BEFORE_SLEEP) { backoff(&spins); continue; }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
                pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
            spins = 0;
        }
        seen = g;
        if (atomic_load(&p->stop)) return NULL;
        p->fn(p->ctx, ith, p->n);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_acq_rel);
    }
}

fc_pool *fc_pool_new(int n_threads)
{
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    fc_pool *p = fc_xcalloc(1, sizeof *p);
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = fc_xcalloc((size_t)n_threads, sizeof(pthread_t));
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *a = fc_xmalloc(sizeof *a);
        a->p = p;
        a->ith = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, a) != 0) {
            FC_LOG_WARN("fc_pool_new: could not start thread %d; using %d threads", i, i);
            free(a);
            p->n = i;
            break;
        }
    }
    return p;
}

void fc_pool_free(fc_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->threads);
    free(p);
}

int fc_pool_size(const fc_pool *p) { return p->n; }

void fc_pool_run(fc_pool *p, fc_pool_fn fn, void *ctx)
{
    if (p->n == 1) { fn(ctx, 0, 1); return; }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->n_done, memory_order_acquire) != p->n - 1) backoff(&spins);
}

void fc_pool_barrier(fc_pool *p)
{
    if (p->n == 1) return;
    unsigned phase = atomic_load_explicit(&p->bar_phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->bar_count, 1, memory_order_acq_rel) == p->n - 1) {
        atomic_store_explicit(&p->bar_count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->bar_phase, 1, memory_order_release);
    } else {
        int spins = 0;
        while (atomic_load_explicit(&p->bar_phase, memory_order_acquire) == phase) backoff(&spins);
    }
}

void fc_split_range(long n, int ith, int nth, long align, long *lo, long *hi)
{
    if (align < 1) align = 1;
    long units = (n + align - 1) / align;
    long per = units / nth, rem = units % nth;
    long a = ith * per + (ith < rem ? ith : rem);
    long b = a + per + (ith < rem ? 1 : 0);
    a *= align;
    b *= align;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}
