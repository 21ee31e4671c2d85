/*
 * pool.h: a persistent thread pool with a spinning barrier.
 *
 * A forward pass has hundreds of operation boundaries per token; at 12 us a
 * pthread barrier would cost more than the whole token (shared/PERFORMANCE.md),
 * so the pool keeps its threads spinning between phases and only sleeps after
 * it has been idle for a while. The model is ggml's: fc_pool_run() calls
 * fn(ctx, ith, nth) on every thread (the caller is thread 0), and inside fn
 * the threads meet at fc_pool_barrier().
 *
 * Not reentrant: one fc_pool_run at a time per pool (the engine thread owns it).
 */
#ifndef FC_POOL_H
#define FC_POOL_H

typedef struct fc_pool fc_pool;
typedef void (*fc_pool_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0 picks the number of online CPUs. Never NULL. */
fc_pool *fc_pool_new(int n_threads);
void fc_pool_free(fc_pool *p);
int fc_pool_size(const fc_pool *p);

/* Runs fn on all threads and returns when every one has returned. */
void fc_pool_run(fc_pool *p, fc_pool_fn fn, void *ctx);

/* Called from inside fn by every thread: returns once all have arrived. */
void fc_pool_barrier(fc_pool *p);

/* Splits [0, n) into nth nearly equal parts; thread ith gets [*lo, *hi).
 * Parts are multiples of `align` except the last. */
void fc_split_range(long n, int ith, int nth, long align, long *lo, long *hi);

#endif
