/*
 * qbase.c: products with frozen matrices kept in their stored type for
 * QLoRA training (qbase.h): row tiles dequantized into per-thread scratch
 * buffers (fc_dequantize_chunk, bit-identical to fc_dequantize_row_ref) and
 * multiplied by OpenBLAS sgemm, single-threaded inside, one tile range per
 * pool thread.
 */
#include "qbase.h"

#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/fc_base.h"
#include "tensor/dtype.h"
#include "tensor/ops.h"

/* OpenBLAS's own (declared in its cblas.h, not in every cblas.h) */
void openblas_set_num_threads(int n);

static pthread_once_t qb_blas_once = PTHREAD_ONCE_INIT;
static void qb_blas_init(void) { openblas_set_num_threads(1); }

/* floats of one thread's tile: at least 2 MiB, and 16 rows of the widest
 * matrix. Each sgemm call packs its whole activation operand again, so a
 * tile of few rows pays that copy often: on SmolLM2's 576 x 1536 down_proj
 * (N = 256, one thread, CPU time) the forward took 1.32x the f32 sgemm's
 * time with 256 KiB tiles, 1.06-1.11x with 2 MiB, 1.04-1.07x with 4 MiB. */
#define TILE_FLOATS 524288L
#define TILE_MIN_ROWS 16L

typedef struct qmat {
    const float *key;
    const fc_tensor *t;
    int64_t rows, cols;
    size_t row_bytes;
    int bs;                    /* values per block */
    int perm_heads, head_dim;  /* > 0: GGUF-interleaved Q/K rows */
} qmat;

struct fc_qbase {
    qmat *m;
    int n, cap;
    int64_t max_cols;
    float **scratch;           /* (n_scratch) per-thread tiles, scratch_floats each */
    int n_scratch;
    size_t scratch_floats;
};

fc_qbase *fc_qbase_new(void) { return fc_xcalloc(1, sizeof(fc_qbase)); }

void fc_qbase_free(fc_qbase *qb)
{
    if (!qb) return;
    for (int i = 0; i < qb->n_scratch; i++) free(qb->scratch[i]);
    free(qb->scratch);
    free(qb->m);
    free(qb);
}

bool fc_qbase_add(fc_qbase *qb, const float *key, const fc_tensor *t, int64_t rows, int64_t cols,
                  int perm_heads, int head_dim)
{
    const int bs = fc_dtype_block_size(t->type);
    if (!t->data || !fc_dtype_supported(t->type) || bs <= 0 || t->ne[0] != cols ||
        fc_tensor_nelem(t) != rows * cols || cols % bs ||
        (perm_heads > 0 && (head_dim % 2 || (int64_t)perm_heads * head_dim != rows))) {
        FC_LOG_ERROR("%s: a %s tensor of %lld x %lld cannot serve as a %lld x %lld frozen matrix", __func__,
                     fc_dtype_name(t->type), (long long)t->ne[1], (long long)t->ne[0], (long long)rows,
                     (long long)cols);
        return false;
    }
    if (qb->n == qb->cap) {
        qb->cap = qb->cap ? qb->cap * 2 : 64;
        qb->m = fc_xrealloc(qb->m, (size_t)qb->cap * sizeof *qb->m);
    }
    qb->m[qb->n++] = (qmat){.key = key, .t = t, .rows = rows, .cols = cols,
                            .row_bytes = fc_tensor_row_bytes(t), .bs = bs,
                            .perm_heads = perm_heads, .head_dim = head_dim};
    qb->max_cols = FC_MAX(qb->max_cols, cols);
    return true;
}

size_t fc_qbase_bytes(const fc_qbase *qb)
{
    size_t s = 0;
    for (int i = 0; i < qb->n; i++) s += qb->m[i].row_bytes * (size_t)qb->m[i].rows;
    return s;
}

int fc_qbase_count(const fc_qbase *qb) { return qb->n; }

/* The matrix registered under key, or NULL; a registered matrix used with
 * another shape is a bug of the caller. */
static const qmat *find(const fc_qbase *qb, const float *key, long IC, long OC)
{
    for (int i = 0; i < qb->n; i++)
        if (qb->m[i].key == key) {
            FC_ASSERT(qb->m[i].rows == OC && qb->m[i].cols == IC);
            return &qb->m[i];
        }
    return NULL;
}

/* The stored row that holds Hugging Face row r. */
static const uint8_t *src_row(const qmat *q, int64_t r)
{
    if (q->perm_heads > 0) {
        const int64_t hs = q->head_dim, half = hs / 2, h = r / hs, i = r % hs;
        r = h * hs + 2 * (i % half) + i / half;
    }
    return (const uint8_t *)q->t->data + (size_t)r * q->row_bytes;
}

/* One scratch tile per pool thread, allocated before the run (fc_xmalloc:
 * running out of memory is fatal, as for every small buffer). */
static void ensure_scratch(fc_qbase *qb, int nth)
{
    const size_t want = (size_t)FC_MAX(TILE_FLOATS, TILE_MIN_ROWS * qb->max_cols);
    if (qb->n_scratch >= nth && qb->scratch_floats >= want) return;
    for (int i = 0; i < qb->n_scratch; i++) free(qb->scratch[i]);
    free(qb->scratch);
    qb->scratch = fc_xcalloc((size_t)nth, sizeof(float *));
    qb->n_scratch = nth;
    qb->scratch_floats = want;
    for (int i = 0; i < nth; i++) qb->scratch[i] = fc_xmalloc(want * sizeof(float));
}

typedef struct qb_ctx {
    fc_qbase *qb;
    const qmat *q;
    float *out, *dinp;
    const float *inp, *dout, *bias;
    long N, IC, OC;
} qb_ctx;

static void fwd_fn(void *p, int ith, int nth)
{
    const qb_ctx *c = p;
    const qmat *q = c->q;
    float *buf = c->qb->scratch[ith];
    const long tile = FC_MAX(1, (long)c->qb->scratch_floats / c->IC);
    long lo, hi;
    fc_split_range(c->OC, ith, nth, 8, &lo, &hi);
    for (long r0 = lo; r0 < hi; r0 += tile) {
        const long nr = FC_MIN(tile, hi - r0);
        for (long i = 0; i < nr; i++) fc_dequantize_chunk(q->t->type, src_row(q, r0 + i), 0, c->IC, buf + i * c->IC);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->N, (int)nr, (int)c->IC, 1.0f, c->inp,
                    (int)c->IC, buf, (int)c->IC, 0.0f, c->out + r0, (int)c->OC);
        if (c->bias)
            for (long n = 0; n < c->N; n++)
                for (long o = r0; o < r0 + nr; o++) c->out[n * c->OC + o] += c->bias[o];
    }
}

static void bwd_fn(void *p, int ith, int nth)
{
    const qb_ctx *c = p;
    const qmat *q = c->q;
    float *buf = c->qb->scratch[ith];
    long lo, hi;
    fc_split_range(c->IC / q->bs, ith, nth, 1, &lo, &hi); /* whole blocks of columns */
    lo *= q->bs;
    hi *= q->bs;
    const long wd = hi - lo;
    if (wd <= 0) return;
    const long tile = FC_MAX(1, (long)c->qb->scratch_floats / wd);
    for (long r0 = 0; r0 < c->OC; r0 += tile) {
        const long nr = FC_MIN(tile, c->OC - r0);
        for (long i = 0; i < nr; i++) fc_dequantize_chunk(q->t->type, src_row(q, r0 + i), lo, wd, buf + i * wd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)c->N, (int)wd, (int)nr, 1.0f, c->dout + r0,
                    (int)c->OC, buf, (int)wd, 1.0f, c->dinp + lo, (int)c->IC);
    }
}

static void run(fc_qbase *qb, fc_pool *pool, fc_pool_fn fn, qb_ctx *c)
{
    pthread_once(&qb_blas_once, qb_blas_init);
    const int nth = pool ? fc_pool_size(pool) : 1;
    ensure_scratch(qb, FC_MAX(nth, 1));
    if (nth > 1 && c->N * c->IC * c->OC >= 32768) fc_pool_run(pool, fn, c);
    else fn(c, 0, 1);
}

bool fc_qbase_forward(fc_qbase *qb, fc_pool *pool, float *out, const float *inp, const float *w,
                      const float *bias, long N, long IC, long OC)
{
    const qmat *q = qb ? find(qb, w, IC, OC) : NULL;
    if (!q) return false;
    if (N <= 0) return true;
    qb_ctx c = {.qb = qb, .q = q, .out = out, .inp = inp, .bias = bias, .N = N, .IC = IC, .OC = OC};
    run(qb, pool, fwd_fn, &c);
    return true;
}

bool fc_qbase_backward(fc_qbase *qb, fc_pool *pool, float *dinp, float *dw, float *db, const float *dout,
                       const float *w, long N, long IC, long OC)
{
    const qmat *q = qb ? find(qb, w, IC, OC) : NULL;
    if (!q) return false;
    FC_ASSERT(!dw); /* a frozen matrix has no gradient */
    if (N <= 0) return true;
    if (dinp) {
        qb_ctx c = {.qb = qb, .q = q, .dinp = dinp, .dout = dout, .N = N, .IC = IC, .OC = OC};
        run(qb, pool, bwd_fn, &c);
    }
    if (db)
        for (long n = 0; n < N; n++)
            for (long o = 0; o < OC; o++) db[o] += dout[n * OC + o];
    return true;
}
