/*
 * test_kernels.c: every fast numeric kernel of ops.h against its scalar
 * reference (ops_ref.c / quant_ref.c), for every weight type, on odd sizes.
 *
 * Weights are random rows written by fc_quantize_row_ref (with an all-zero
 * block and outliers mixed in); activations are random with outliers and a
 * zero block. For each weight type, K (where the block size allows), row
 * range and token count T it checks:
 *   act      fc_matmul_quantize_act == fc_quantize_row_ref byte for byte,
 *            and the side table (d widened, s = d * sum(qs)).
 * (each with both activation types of the weight type: 8-bit q8_*, and the
 * 16-bit a16 of the 32-value types)
 *   dot      fc_vec_dot vs fc_vec_dot_ref on the same converted row.
 *   fast     fc_matmul_fast vs fc_vec_dot_ref, per output; rows outside
 *            [r0, r1) and the padding of y untouched.
 *   quant    fc_matmul_fast vs fc_matmul_ref on the f32 activations: the
 *            activation rounding bound (below).
 *   exact    fc_matmul_exact vs fc_matmul_ref.
 *   packed   (q4_0, q4_1, q8_0 with a16) the rows packed by fc_pack_rows
 *            (and unpacked back byte for byte), fc_matmul_fast on the
 *            packed type vs fc_vec_dot_ref over whole 8-row groups, with
 *            the tolerance of fast.
 *   amx      (where the build and the CPU have AMX-INT8) the packed
 *            matmul on AMX tiles bit-identical to the AVX-512 kernels it
 *            replaces for batches (fc_matmul_set_amx off / on), over token
 *            counts around its threshold and tile edges, odd row groups
 *            and several K.
 *   gemm_bf16 (where AMX-BF16 is) the bf16 GEMM against double sums of the
 *            bf16-rounded inputs, within 1e-5 of sum |a b|, both B layouts,
 *            sizes that need padding, accumulate or not, split columns.
 * Errors are measured against the scale of the sum, S = sum_k |w_k * x_k|
 * (dequantized values, double): the fast and exact kernels round each
 * product sum in f32 in an order unlike the reference's, and f32 keeps
 * about 6e-8 relative of S per step. Stated tolerances:
 *   dot / fast vs vec_dot_ref         |err| <= 1e-5 * S + 1e-30
 *   exact vs matmul_ref               |err| <= 1e-5 * S + 1e-30
 *   fast vs matmul_ref (f32 acts)     |err| <= sum_k |w_k| * d_k / 2 * 1.001 + 1e-5 * S,
 *                                     d_k the q8 / a16 step of x_k's block (round to nearest)
 * In an AVX2 build the portable kernels (generic.c) are run through the
 * same checks. Row ops: rmsnorm and swiglu vs ref, relative 1e-6 (plus
 * 1e-37 absolute for results in the subnormal range); dot_f32 / axpy_f32
 * relative 1e-6 of sum |a*b|.
 *
 * Prints one line per kernel with the largest error seen (in units of the
 * tolerance's relative part); exits non-zero on any failure.
 */
#include "tensor/ops.h"
#include "tensor/cpu/cpu_impl.h"
#include "base/fc_base.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

#if FC_CPU_AVX2
#define AVX2_BUILD 1
#else
#define AVX2_BUILD 0
#endif

/* ---- random data ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float rnd_uniform(void) { return (rnd_u32() & 0xFFFFFF) / 16777216.0f; } /* [0, 1) */
static float rnd_normal(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++) s += rnd_uniform();
    return (s - 2.0f) * 1.7320508f;
}

/* n values: normal * scale, with ~1% outliers (x8) and, when n >= 64, the
 * second 32-value block set to zero. */
static void fill_row(float *x, int64_t n, float scale, bool zero_block)
{
    for (int64_t i = 0; i < n; i++) {
        x[i] = rnd_normal() * scale;
        if (rnd_u32() % 100 == 0) x[i] *= 8;
    }
    if (zero_block && n >= 64) memset(x + 32, 0, 32 * sizeof(float));
}

/* ---- error tracking ---- */

struct stat {
    const char *name;
    double max_err; /* max |err| / (relative tolerance * scale) over checks, as a fraction of the allowance */
    long n;
    long fails;
};

static void track(struct stat *st, double err, double allowed, const char *what, int wtype, int64_t K, int T, int64_t r)
{
    st->n++;
    const double ratio = allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0);
    if (ratio > st->max_err) st->max_err = ratio;
    if (!(err <= allowed)) {
        if (st->fails++ < 5)
            fprintf(stderr, "FAIL %s %s: %s K=%lld T=%d row=%lld err=%.3g allowed=%.3g\n", st->name,
                    fc_dtype_name(wtype), what, (long long)K, T, (long long)r, err, allowed);
        test_failures++;
    }
    test_checks++;
}

static void report(const struct stat *st)
{
    printf("%-28s %7ld checks  max err %.3f of tolerance  %s\n", st->name, st->n, st->max_err,
           st->fails ? "FAIL" : "ok");
}

/* ---- the weight-type sweep ---- */

static const int WTYPES[] = {
    FC_DTYPE_F32, FC_DTYPE_F16, FC_DTYPE_BF16, FC_DTYPE_Q4_0, FC_DTYPE_Q4_1, FC_DTYPE_Q5_0,
    FC_DTYPE_Q5_1, FC_DTYPE_Q8_0, FC_DTYPE_Q2_K, FC_DTYPE_Q3_K, FC_DTYPE_Q4_K, FC_DTYPE_Q5_K,
    FC_DTYPE_Q6_K,
};
static const int64_t KS[] = { 32, 64, 96, 256, 512, 576, 1536, 2816 };
static const int TS[] = { 1, 2, 3, 5, 8, 17 };
/* row ranges [r0, r1) of a 33-row matrix: 1, 3, 7 and 33 rows */
static const int64_t RANGES[][2] = { { 0, 1 }, { 4, 7 }, { 9, 16 }, { 0, 33 } };
#define R_ALL 33
#define T_MAX 17

enum { K_PUBLIC, K_GENERIC, K_VARIANTS };
static struct stat st_act = { "act quantize (bytes)", 0, 0, 0 };
static struct stat st_dot[K_VARIANTS] = { { "vec_dot vs ref", 0, 0, 0 }, { "vec_dot generic vs ref", 0, 0, 0 } };
static struct stat st_fast[K_VARIANTS] = { { "matmul_fast vs vec_dot_ref", 0, 0, 0 }, { "matmul_fast generic", 0, 0, 0 } };
static struct stat st_quant = { "matmul_fast vs f32 ref", 0, 0, 0 };
static struct stat st_pack = { "pack / unpack round trip", 0, 0, 0 };
static struct stat st_packed[K_VARIANTS] = { { "matmul_fast packed vs ref", 0, 0, 0 }, { "matmul_fast packed generic", 0, 0, 0 } };
static struct stat st_exact[K_VARIANTS] = { { "matmul_exact vs ref", 0, 0, 0 }, { "matmul_exact generic", 0, 0, 0 } };

typedef void (*fast_fn)(int, const void *, size_t, int64_t, int, const void *, size_t, int, float *, int64_t, int64_t, int64_t);
typedef void (*exact_fn)(int, const void *, size_t, int64_t, const float *, int64_t, int, float *, int64_t, int64_t, int64_t);
typedef float (*dot_fn)(int, const void *, int, const void *, int64_t);

/* Checks the act row of x against quant_ref.c and the side table. */
static void check_act(int wtype, int at, const float *x, const uint8_t *xa, int64_t K, uint8_t *tmp)
{
    if (at == FC_DTYPE_F32) {
        track(&st_act, memcmp(x, xa, (size_t)K * 4) ? 1 : 0, 0, "f32 copy", wtype, K, 1, 0);
        return;
    }
    fc_quantize_row_ref(at, x, tmp, K);
    const size_t nbytes = fc_dtype_row_size(at, K);
    size_t ndiff = 0;
    for (size_t i = 0; i < nbytes; i++) ndiff += tmp[i] != xa[i];
    track(&st_act, (double)ndiff, 0, "bytes differ from fc_quantize_row_ref", wtype, K, 1, 0);
    if (at == FC_DTYPE_Q8_K) return;
    const int64_t nb = K / FC_QK;
    const float *sd = fc_cpu_act_d(xa, at, K), *ss = fc_cpu_act_s(xa, at, K);
    const size_t bsz = fc_dtype_type_size(at), qo = at == FC_DTYPE_Q8_1 ? 4 : 2;
    for (int64_t b = 0; b < nb; b++) {
        int sum = 0;
        float d;
        if (at == FC_DTYPE_A16) {
            const fc_block_a16 *blk = (const fc_block_a16 *)xa + b;
            for (int j = 0; j < 32; j++) sum += blk->qs[j];
            d = blk->d;
        } else {
            fc_f16 dh;
            memcpy(&dh, xa + b * bsz, 2);
            for (int j = 0; j < 32; j++) sum += ((const int8_t *)(xa + b * bsz + qo))[j];
            d = fc_f16_to_f32(dh);
        }
        track(&st_act, fabs((double)sd[b] - d) + fabs((double)ss[b] - (double)d * sum), 1e-6 * fabs((double)d * sum) + 1e-30,
              "side table", wtype, K, 1, b);
    }
}

static void sweep_type(int wtype, int at)
{
    const int bs = fc_dtype_block_size(wtype);
    for (size_t ki = 0; ki < FC_ARRAY_LEN(KS); ki++) {
        const int64_t K = KS[ki];
        if (K % bs) continue;
        const size_t ws = fc_dtype_row_size(wtype, K);
        const size_t xas = fc_matmul_act_row_size(at, K);
        float *wf = fc_xmalloc((size_t)R_ALL * K * sizeof(float));  /* (R, K) source floats */
        float *wd = fc_xmalloc((size_t)R_ALL * K * sizeof(float));  /* (R, K) dequantized */
        uint8_t *w = fc_aligned_alloc((size_t)R_ALL * ws);           /* (R) rows of ws bytes */
        float *x = fc_xmalloc((size_t)T_MAX * K * sizeof(float));   /* (T, K) */
        float *xd = fc_xmalloc((size_t)T_MAX * K * sizeof(float));  /* (T, K) dequantized acts */
        uint8_t *xa = fc_aligned_alloc((size_t)T_MAX * xas);         /* (T) act rows */
        uint8_t *tmp = fc_aligned_alloc(xas + 64);
        float *xstep = fc_xmalloc((size_t)T_MAX * K * sizeof(float)); /* q8 step of each act value */
        const int64_t ys = R_ALL + 5;
        float *y = fc_xmalloc((size_t)T_MAX * ys * sizeof(float));
        float *yref = fc_xmalloc((size_t)T_MAX * ys * sizeof(float));
        double *dref = fc_xmalloc((size_t)T_MAX * R_ALL * sizeof(double));
        double *S = fc_xmalloc((size_t)T_MAX * R_ALL * sizeof(double));
        double *bound = fc_xmalloc((size_t)T_MAX * R_ALL * sizeof(double));
        FC_ASSERT(w && xa && tmp);

        for (int r = 0; r < R_ALL; r++) {
            fill_row(wf + (size_t)r * K, K, 0.02f * (1 + r % 5), r % 3 == 1);
            FC_ASSERT(fc_quantize_row_ref(wtype, wf + (size_t)r * K, w + (size_t)r * ws, K));
            FC_ASSERT(fc_dequantize_row_ref(wtype, w + (size_t)r * ws, wd + (size_t)r * K, K));
        }
        for (int t = 0; t < T_MAX; t++) {
            fill_row(x + (size_t)t * K, K, 1.0f + t % 4, t % 2 == 0);
            fc_matmul_quantize_act(at, x + (size_t)t * K, xa + (size_t)t * xas, K);
            check_act(wtype, at, x + (size_t)t * K, xa + (size_t)t * xas, K, tmp);
            if (at == FC_DTYPE_F32) {
                memcpy(xd + (size_t)t * K, x + (size_t)t * K, (size_t)K * 4);
                memset(xstep + (size_t)t * K, 0, (size_t)K * 4);
            } else {
                FC_ASSERT(fc_dequantize_row_ref(at, xa + (size_t)t * xas, xd + (size_t)t * K, K));
                const int abs_ = fc_dtype_block_size(at);
                for (int64_t k0 = 0; k0 < K; k0 += abs_) {
                    float amax = 0;
                    for (int j = 0; j < abs_; j++) amax = fmaxf(amax, fabsf(x[(size_t)t * K + k0 + j]));
                    const float qmax = at == FC_DTYPE_A16 ? 32767 : 127;
                    for (int j = 0; j < abs_; j++) xstep[(size_t)t * K + k0 + j] = amax / qmax;
                }
            }
        }
        /* references per (token, row) */
        for (int t = 0; t < T_MAX; t++) {
            for (int r = 0; r < R_ALL; r++) {
                const float *wr = wd + (size_t)r * K, *xt = xd + (size_t)t * K;
                double s = 0, s_exact = 0, b = 0;
                for (int64_t k = 0; k < K; k++) {
                    s += fabs((double)wr[k] * xt[k]);
                    s_exact += fabs((double)wr[k] * x[(size_t)t * K + k]);
                    b += fabs((double)wr[k]) * xstep[(size_t)t * K + k] / 2;
                }
                S[t * R_ALL + r] = s > s_exact ? s : s_exact;
                bound[t * R_ALL + r] = b * 1.001;
                dref[t * R_ALL + r] = fc_vec_dot_ref(wtype, w + (size_t)r * ws, at, xa + (size_t)t * xas, K);
            }
        }

        /* vec_dot */
        for (int v = 0; v < K_VARIANTS; v++) {
#if !FC_CPU_AVX2
            if (v == K_GENERIC) continue;
#endif
            const dot_fn dot = v == K_PUBLIC ? fc_vec_dot : fc_cpu_vec_dot_generic;
            for (int t = 0; t < T_MAX; t += 4)
                for (int r = 0; r < R_ALL; r++) {
                    const double got = dot(wtype, w + (size_t)r * ws, at, xa + (size_t)t * xas, K);
                    const double err = fabs(got - dref[t * R_ALL + r]);
                    track(&st_dot[v], err, 1e-5 * S[t * R_ALL + r] + 1e-30, "vec_dot", wtype, K, 1, r);
                }
        }

        /* matmul fast / exact over row ranges and token counts */
        for (size_t ri = 0; ri < FC_ARRAY_LEN(RANGES); ri++) {
            const int64_t r0 = RANGES[ri][0], r1 = RANGES[ri][1];
            for (size_t ti = 0; ti < FC_ARRAY_LEN(TS); ti++) {
                const int T = TS[ti];
                for (int v = 0; v < K_VARIANTS; v++) {
#if !FC_CPU_AVX2
                    if (v == K_GENERIC) continue;
#endif
                    const fast_fn fast = v == K_PUBLIC ? fc_matmul_fast : fc_cpu_matmul_fast_generic;
                    const exact_fn exact = v == K_PUBLIC ? fc_matmul_exact : fc_cpu_matmul_exact_generic;

                    for (size_t i = 0; i < (size_t)T_MAX * ys; i++) y[i] = -12345.0f;
                    fast(wtype, w, ws, K, at, xa, xas, T, y, ys, r0, r1);
                    for (int t = 0; t < T_MAX; t++)
                        for (int64_t r = 0; r < ys; r++) {
                            const float got = y[t * ys + r];
                            if (t < T && r >= r0 && r < r1) {
                                const double err = fabs(got - dref[t * R_ALL + r]);
                                track(&st_fast[v], err, 1e-5 * S[t * R_ALL + r] + 1e-30, "fast", wtype, K, T, r);
                                if (v == K_PUBLIC && ri == FC_ARRAY_LEN(RANGES) - 1) {
                                    /* activation rounding: against the f32 product */
                                    double e = 0;
                                    for (int64_t k = 0; k < K; k++)
                                        e += (double)wd[(size_t)r * K + k] * x[(size_t)t * K + k];
                                    track(&st_quant, fabs(got - e), bound[t * R_ALL + r] + 1e-5 * S[t * R_ALL + r] + 1e-30,
                                          "fast vs f32", wtype, K, T, r);
                                }
                            } else if (got != -12345.0f) {
                                track(&st_fast[v], INFINITY, 0, "wrote outside its rows", wtype, K, T, r);
                            }
                        }

                    for (size_t i = 0; i < (size_t)T_MAX * ys; i++) y[i] = yref[i] = -12345.0f;
                    exact(wtype, w, ws, K, x, K, T, y, ys, r0, r1);
                    fc_matmul_ref(wtype, w, ws, K, x, K, T, yref, ys, r0, r1);
                    for (int t = 0; t < T_MAX; t++)
                        for (int64_t r = 0; r < ys; r++) {
                            if (t < T && r >= r0 && r < r1) {
                                const double err = fabs((double)y[t * ys + r] - yref[t * ys + r]);
                                track(&st_exact[v], err, 1e-5 * S[t * R_ALL + r] + 1e-30, "exact", wtype, K, T, r);
                            } else if (y[t * ys + r] != -12345.0f) {
                                track(&st_exact[v], INFINITY, 0, "wrote outside its rows", wtype, K, T, r);
                            }
                        }
                }
            }
        }
        /* row-interleaved weights (a16 only): the first 32 rows packed, the
         * same checks over ranges of whole 8-row groups */
        if (at == FC_DTYPE_A16 && fc_pack_type(wtype) >= 0) {
            const int pt = fc_pack_type(wtype);
            const int64_t RP = R_ALL / 8 * 8;
            uint8_t *wp = fc_aligned_alloc((size_t)RP * ws), *wu = fc_aligned_alloc((size_t)RP * ws);
            FC_ASSERT(wp && wu);
            FC_ASSERT(fc_pack_rows(wtype, w, ws, RP, K, wp));
            FC_ASSERT(fc_unpack_rows(pt, wp, RP, K, wu));
            track(&st_pack, memcmp(wu, w, (size_t)RP * ws) ? 1 : 0, 0, "unpack(pack(w)) != w", wtype, K, 1, 0);
            static const int64_t PR[][2] = { { 0, 8 }, { 8, 24 }, { 16, 32 }, { 0, 32 } };
            for (size_t ri = 0; ri < FC_ARRAY_LEN(PR); ri++)
                for (size_t ti = 0; ti < FC_ARRAY_LEN(TS); ti++)
                    for (int v = 0; v < K_VARIANTS; v++) {
#if !FC_CPU_AVX2
                        if (v == K_GENERIC) continue;
#endif
                        const fast_fn fast = v == K_PUBLIC ? fc_matmul_fast : fc_cpu_matmul_fast_generic;
                        const int64_t r0 = PR[ri][0], r1 = PR[ri][1];
                        const int T = TS[ti];
                        for (size_t i = 0; i < (size_t)T_MAX * ys; i++) y[i] = -12345.0f;
                        fast(pt, wp, ws, K, at, xa, xas, T, y, ys, r0, r1);
                        for (int t = 0; t < T_MAX; t++)
                            for (int64_t r = 0; r < ys; r++) {
                                const float got = y[t * ys + r];
                                if (t < T && r >= r0 && r < r1)
                                    track(&st_packed[v], fabs(got - dref[t * R_ALL + r]), 1e-5 * S[t * R_ALL + r] + 1e-30,
                                          "packed", wtype, K, T, r);
                                else if (got != -12345.0f)
                                    track(&st_packed[v], INFINITY, 0, "wrote outside its rows", wtype, K, T, r);
                            }
                    }
            fc_aligned_free(wp);
            fc_aligned_free(wu);
        }
        free(wf); free(wd); fc_aligned_free(w); free(x); free(xd); fc_aligned_free(xa);
        fc_aligned_free(tmp); free(xstep); free(y); free(yref); free(dref); free(S); free(bound);
    }
}

/* ---- AMX against AVX-512: the same bits ---- */

static void test_amx_identical(void)
{
    if (!fc_matmul_amx_available()) {
        printf("amx: not built or not granted here: AMX tiles not checked\n");
        return;
    }
    static const enum fc_dtype types[] = { FC_DTYPE_Q4_0, FC_DTYPE_Q4_1, FC_DTYPE_Q8_0 };
    static const int64_t Ks[] = { 32, 96, 576 };
    static const int Ts[] = { 1, 5, 8, 9, 10, 11, 12, 15, 16, 17, 31, 33, 40, 130 };
    static const int64_t PR[][2] = { { 0, 64 }, { 8, 40 }, { 8, 48 }, { 48, 64 } };
    const int64_t R = 64, TM = 130;
    int checks = 0, diffs = 0;
    for (size_t ti = 0; ti < FC_ARRAY_LEN(types); ti++)
        for (size_t ki = 0; ki < FC_ARRAY_LEN(Ks); ki++) {
            const enum fc_dtype wt = types[ti];
            const int64_t K = Ks[ki];
            const size_t ws = fc_dtype_row_size(wt, K), as = fc_matmul_act_row_size(FC_DTYPE_A16, K);
            float *f = fc_xmalloc((size_t)K * sizeof(float));
            uint8_t *w = fc_aligned_alloc((size_t)R * ws), *wp = fc_aligned_alloc((size_t)R * ws);
            uint8_t *xa = fc_aligned_alloc((size_t)TM * as);
            float *y0 = fc_xmalloc((size_t)TM * R * sizeof(float)), *y1 = fc_xmalloc((size_t)TM * R * sizeof(float));
            FC_ASSERT(w && wp && xa);
            for (int64_t r = 0; r < R; r++) {
                fill_row(f, K, 1.0f, r == 3);
                FC_ASSERT(fc_quantize_row_ref(wt, f, w + r * ws, K));
            }
            FC_ASSERT(fc_pack_rows(wt, w, ws, R, K, wp));
            for (int64_t t = 0; t < TM; t++) {
                fill_row(f, K, t % 7 == 0 ? 100.0f : 1.0f, t == 2);
                fc_matmul_quantize_act(FC_DTYPE_A16, f, xa + t * as, K);
            }
            for (size_t i = 0; i < FC_ARRAY_LEN(Ts); i++)
                for (size_t p = 0; p < FC_ARRAY_LEN(PR); p++) {
                    const int T = Ts[i];
                    for (int on = 0; on < 2; on++) {
                        float *y = on ? y1 : y0;
                        for (int64_t j = 0; j < TM * R; j++) y[j] = -12345.0f;
                        fc_matmul_set_amx(on);
                        fc_matmul_fast(fc_pack_type(wt), wp, ws, K, FC_DTYPE_A16, xa, as, T, y, R, PR[p][0], PR[p][1]);
                    }
                    checks++;
                    if (memcmp(y0, y1, (size_t)TM * R * sizeof(float))) {
                        diffs++;
                        fprintf(stderr, "FAIL amx: %s K=%lld T=%d rows [%lld, %lld) differ from AVX-512\n",
                                fc_dtype_name(wt), (long long)K, T, (long long)PR[p][0], (long long)PR[p][1]);
                    }
                }
            fc_matmul_set_amx(true);
            free(f); fc_aligned_free(w); fc_aligned_free(wp); fc_aligned_free(xa); free(y0); free(y1);
        }
    CHECKF(diffs == 0, "AMX results differ from AVX-512 in %d of %d cases", diffs, checks);
    printf("amx tiles = AVX-512 bits       %6d checks  %s\n", checks, diffs ? "FAILED" : "ok");
}

/* ---- bf16 GEMM on AMX tiles: f32 sums of the bf16-rounded inputs ---- */

static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u; /* nearest even (no NaNs here) */
    memcpy(&f, &u, 4);
    return f;
}

static void test_gemm_bf16(void)
{
    if (!fc_gemm_bf16_packed_size(32, 32)) {
        printf("gemm_bf16: no AMX-BF16 in this build or CPU: not checked\n");
        return;
    }
    /* M, N, K: tile multiples, padded edges, tiny */
    static const int64_t S[][3] = { { 64, 96, 128 }, { 37, 48, 40 }, { 5, 17, 9 }, { 256, 64, 576 }, { 1, 33, 65 } };
    double worst = 0;
    int checks = 0, bad = 0;
    for (size_t si = 0; si < FC_ARRAY_LEN(S); si++)
        for (int trans = 0; trans < 2; trans++)
            for (int acc = 0; acc < 2; acc++) {
                const int64_t M = S[si][0], N = S[si][1], K = S[si][2], ldc = N + 3;
                float *a = fc_xmalloc((size_t)(M * K) * sizeof(float)), *b = fc_xmalloc((size_t)(K * N) * sizeof(float));
                float *c = fc_xmalloc((size_t)(M * ldc) * sizeof(float));
                fill_row(a, M * K, 1.0f, false);
                fill_row(b, K * N, 0.5f, false);
                for (int64_t i = 0; i < M * ldc; i++) c[i] = (float)(i % 5) - 2.0f;
                void *bp = fc_aligned_alloc(fc_gemm_bf16_packed_size(K, N));
                fc_gemm_bf16_pack(b, trans ? K : N, trans, K, N, bp);
                /* two threads' shares: columns [0, 32) and [32, N) */
                const int64_t split = N > 32 ? 32 : (N + 31) / 32 * 32;
                CHECK(fc_gemm_bf16(bp, K, N, a, K, M, c, ldc, acc, 0, split));
                if (split < N) CHECK(fc_gemm_bf16(bp, K, N, a, K, M, c, ldc, acc, split, (N + 31) / 32 * 32));
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < ldc; n++) {
                        const float before = (float)((m * ldc + n) % 5) - 2.0f;
                        if (n >= N) { /* the padding of C untouched */
                            if (c[m * ldc + n] != before) bad++;
                            continue;
                        }
                        double sum = acc ? before : 0, S1 = fabs(sum);
                        for (int64_t k = 0; k < K; k++) {
                            const double p = (double)round_bf16(a[m * K + k]) *
                                             round_bf16(trans ? b[n * K + k] : b[k * N + n]);
                            sum += p;
                            S1 += fabs(p);
                        }
                        const double e = fabs(c[m * ldc + n] - sum) / (S1 + 1e-30);
                        worst = fmax(worst, e);
                        checks++;
                        if (e > 1e-5) bad++;
                    }
                free(a); free(b); free(c); fc_aligned_free(bp);
            }
    CHECKF(bad == 0, "gemm_bf16: %d results off by more than 1e-5 of sum |a b| (worst %.3g)", bad, worst);
    printf("gemm_bf16 vs double on bf16  %7d checks  max err %.2e of sum|ab|  %s\n", checks, worst, bad ? "FAILED" : "ok");
}

/* ---- row ops ---- */

static void test_row_ops(void)
{
    static const int NS[] = { 1, 7, 8, 31, 64, 576, 1536, 2049 };
    struct stat st_rms = { "rmsnorm vs ref", 0, 0, 0 }, st_swi = { "swiglu vs ref", 0, 0, 0 };
    struct stat st_dotf = { "dot_f32 vs double", 0, 0, 0 }, st_axpy = { "axpy_f32 vs double", 0, 0, 0 };
    struct stat st_sm = { "softmax_ref sums to 1", 0, 0, 0 };
    for (size_t ni = 0; ni < FC_ARRAY_LEN(NS); ni++) {
        const int n = NS[ni];
        float *x = fc_xmalloc((size_t)n * 4), *w = fc_xmalloc((size_t)n * 4), *u = fc_xmalloc((size_t)n * 4);
        float *y = fc_xmalloc((size_t)n * 4), *yr = fc_xmalloc((size_t)n * 4);
        for (int rep = 0; rep < 4; rep++) {
            for (int i = 0; i < n; i++) {
                x[i] = rnd_normal() * (rep + 1) * 3;
                w[i] = 1 + 0.1f * rnd_normal();
                u[i] = rnd_normal();
            }
            if (rep == 3 && n > 4) { x[0] = -120; x[1] = 95; x[2] = -30; x[3] = 1e-3f; } /* tails of exp */

            fc_rmsnorm_ref(yr, x, w, n, 1e-5f);
            fc_rmsnorm(y, x, w, n, 1e-5f);
            for (int i = 0; i < n; i++) track(&st_rms, fabs((double)y[i] - yr[i]), 1e-6 * fabs(yr[i]) + 1e-37, "rmsnorm", 0, n, 1, i);
            memcpy(y, x, (size_t)n * 4);
            fc_rmsnorm(y, y, w, n, 1e-5f); /* in place */
            for (int i = 0; i < n; i++) track(&st_rms, fabs((double)y[i] - yr[i]), 1e-6 * fabs(yr[i]) + 1e-37, "rmsnorm in place", 0, n, 1, i);

            fc_swiglu_ref(yr, x, u, n);
            fc_swiglu(y, x, u, n);
            for (int i = 0; i < n; i++) track(&st_swi, fabs((double)y[i] - yr[i]), 1e-6 * fabs(yr[i]) + 1e-37, "swiglu", 0, n, 1, i);
#if FC_CPU_AVX2
            fc_cpu_swiglu_generic(y, x, u, n);
            for (int i = 0; i < n; i++) track(&st_swi, fabs((double)y[i] - yr[i]), 1e-6 * fabs(yr[i]) + 1e-37, "swiglu generic", 0, n, 1, i);
#endif
            double e = 0, s = 0;
            for (int i = 0; i < n; i++) { e += (double)x[i] * u[i]; s += fabs((double)x[i] * u[i]); }
            track(&st_dotf, fabs(fc_dot_f32(x, u, n) - e), 1e-6 * s + 1e-30, "dot_f32", 0, n, 1, 0);

            memcpy(y, w, (size_t)n * 4);
            fc_axpy_f32(y, 0.37f, x, n);
            for (int i = 0; i < n; i++) {
                const double ref = (double)w[i] + 0.37 * x[i];
                track(&st_axpy, fabs(y[i] - ref), 1e-6 * (fabs(w[i]) + fabs(0.37 * x[i])) + 1e-30, "axpy", 0, n, 1, i);
            }

            memcpy(y, x, (size_t)n * 4);
            fc_softmax_ref(y, n);
            double sum = 0;
            bool ordered = true;
            for (int i = 0; i < n; i++) {
                sum += y[i];
                if (i && x[i] > x[i - 1] && y[i] < y[i - 1]) ordered = false; /* monotone (ties may underflow) */
            }
            track(&st_sm, fabs(sum - 1) + (ordered ? 0 : 1), 1e-5, "softmax", 0, n, 1, 0);
        }
        free(x); free(w); free(u); free(y); free(yr);
    }
    report(&st_rms);
    report(&st_swi);
    report(&st_dotf);
    report(&st_axpy);
    report(&st_sm);
}

int main(void)
{
#if FC_CPU_AVX512 && defined(__AVX512VNNI__)
    printf("kernels: AVX2 + AVX-512 VNNI build\n");
#elif FC_CPU_AVX512
    printf("kernels: AVX2 + AVX-512 (no VNNI) build\n");
#elif defined(__AVXVNNI__)
    printf("kernels: AVX2 + AVX-VNNI build\n");
#else
    printf("kernels: %s build\n", AVX2_BUILD ? "AVX2" : "generic");
#endif
    for (size_t i = 0; i < FC_ARRAY_LEN(WTYPES); i++) {
        /* each activation type the weight type has: 8-bit, and 16-bit where it differs */
        for (int a16 = 0; a16 < 2; a16++) {
            const int at = fc_matmul_act_type(WTYPES[i], a16);
            if (a16 && at == fc_matmul_act_type(WTYPES[i], false)) continue;
            const long before = test_failures;
            sweep_type(WTYPES[i], at);
            printf("  %-5s x %-4s %s\n", fc_dtype_name(WTYPES[i]), fc_dtype_name(at), test_failures == before ? "ok" : "FAILED");
        }
    }
    report(&st_act);
    for (int v = 0; v < K_VARIANTS; v++) {
#if !FC_CPU_AVX2
        if (v == K_GENERIC) continue;
#endif
        report(&st_dot[v]);
        report(&st_fast[v]);
        report(&st_exact[v]);
        report(&st_packed[v]);
    }
    report(&st_pack);
    report(&st_quant);
    test_row_ops();
    test_amx_identical();
    test_gemm_bf16();
    return TEST_END();
}
