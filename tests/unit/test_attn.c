/*
 * test_attn.c: tiled attention (tensor/attn.c) against its scalar reference
 * fc_attn_ref (double sums, two-pass softmax), for f32 and f16 cached rows,
 * head sizes 24, 64, 80 and 128 (24 and 80 take the portable path for the
 * non-multiple-of-32 tails), tiles of 1 to 32 rows, 1 to 100 keys fed in
 * cache blocks of 16, causal and ragged visibility limits (rows that see no
 * key at all included), and the same keys cut into chunks whose states are
 * joined by fc_attn_merge. Soft-capped scores (Gemma 2, fc_attn_set_softcap:
 * cap * tanh(s / cap) before the softmax) against a double reference with
 * the cap, on the small (decode), tiled and portable paths, whole and merged.
 * Tolerance: the output is a convex combination of value rows, so its error
 * is measured against max |v|: 2e-6 relative (f32 sums and a ~1 ulp exp).
 */
#include "test_util.h"
#include "tensor/attn.h"
#include "base/fc_base.h"

#include <math.h>
#include <string.h>

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

/* Runs keys [k0, k1) of the n through st, block by block as the cache holds them. */
static void feed(fc_attn_state *st, const uint8_t *k, const uint8_t *v, size_t row, int kv_type, int k0, int k1,
                 const int *lim, int R)
{
    for (int j0 = k0; j0 < k1; j0 += FC_ATTN_BLOCK) {
        const int n = k1 - j0 < FC_ATTN_BLOCK ? k1 - j0 : FC_ATTN_BLOCK;
        int bl[FC_ATTN_ROWS];
        for (int r = 0; r < R; r++) bl[r] = lim[r] - j0;
        fc_attn_block(st, k + (size_t)j0 * row, v + (size_t)j0 * row, kv_type, n, bl);
    }
}

/* Reference with soft-capped scores: rows q (R x HS) against n f32 keys/values. */
static void capped_ref(const float *q, int R, int HS, float scale, float cap, const float *k, const float *v, int n,
                       const int *lim, float *out)
{
    static double s[128];
    for (int r = 0; r < R; r++) {
        const int m = lim[r] < n ? lim[r] : n;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < m; j++) {
            double acc = 0;
            for (int d = 0; d < HS; d++) acc += (double)q[(size_t)r * HS + d] * scale * k[(size_t)j * HS + d];
            s[j] = cap * tanh(acc / cap);
            if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j < m; j++) sum += s[j] = exp(s[j] - mx);
        for (int d = 0; d < HS; d++) {
            double acc = 0;
            for (int j = 0; j < m; j++) acc += s[j] * v[(size_t)j * HS + d];
            out[(size_t)r * HS + d] = m ? (float)(acc / sum) : 0.0f;
        }
    }
}

static double softcap_tests(unsigned *seed)
{
    enum { N = 100, H = 256 };
    static float q[FC_ATTN_ROWS * H], k[N * H], v[N * H], out[FC_ATTN_ROWS * H], ref[FC_ATTN_ROWS * H];
    const int hs_list[] = {24, 64, 256}, r_list[] = {1, 2, 4, 8, 17}, n_list[] = {1, 37, 100};
    double worst_all = 0;
    for (size_t hi = 0; hi < FC_ARRAY_LEN(hs_list); hi++)
        for (size_t ri = 0; ri < FC_ARRAY_LEN(r_list); ri++)
            for (size_t ni = 0; ni < FC_ARRAY_LEN(n_list); ni++) {
                const int HS = hs_list[hi], R = r_list[ri], n = n_list[ni];
                /* large queries: scores up to ~|20|, so the cap (10) bends them */
                for (int i = 0; i < R * HS; i++) q[i] = frand(seed) * 8;
                float vmax = 0;
                for (int i = 0; i < n * HS; i++) {
                    k[i] = frand(seed);
                    v[i] = frand(seed) * 2;
                    vmax = fmaxf(vmax, fabsf(v[i]));
                }
                int lim[FC_ATTN_ROWS];
                for (int r = 0; r < R; r++) lim[r] = n - (R - 1 - r) / 2;
                const float scale = 1.0f / sqrtf((float)HS), cap = 10.0f;
                capped_ref(q, R, HS, scale, cap, k, v, n, lim, ref);
                float *scratch = fc_aligned_alloc(sizeof(float) * fc_attn_scratch_floats(R, HS) * 2);
                const size_t row = (size_t)HS * 4;
                fc_attn_state st;
                fc_attn_begin(&st, scratch, q, R, 0, R, HS, scale);
                fc_attn_set_softcap(&st, cap);
                feed(&st, (const uint8_t *)k, (const uint8_t *)v, row, FC_DTYPE_F32, 0, n, lim, R);
                fc_attn_end(&st, out, R, 0);
                double worst = 0;
                for (int i = 0; i < R * HS; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / vmax);
                CHECKF(worst < 4e-6, "soft-capped HS=%d R=%d n=%d: rel err %.2e", HS, R, n, worst);
                worst_all = fmax(worst_all, worst);
                /* two chunks merged (flash-decoding) */
                const int cut = n / 2 / FC_ATTN_BLOCK * FC_ATTN_BLOCK;
                fc_attn_state parts[2];
                const fc_attn_state *pp[2] = {&parts[0], &parts[1]};
                for (int c = 0; c < 2; c++) {
                    fc_attn_begin(&parts[c], scratch + (size_t)c * fc_attn_scratch_floats(R, HS), q, R, 0, R, HS, scale);
                    fc_attn_set_softcap(&parts[c], cap);
                    feed(&parts[c], (const uint8_t *)k, (const uint8_t *)v, row, FC_DTYPE_F32, c ? cut : 0, c ? n : cut,
                         lim, R);
                }
                fc_attn_merge(pp, 2, out, R, 0);
                worst = 0;
                for (int i = 0; i < R * HS; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / vmax);
                CHECKF(worst < 4e-6, "soft-capped merged HS=%d R=%d n=%d: rel err %.2e", HS, R, n, worst);
                /* the cap matters here: without it the result differs */
                fc_attn_begin(&st, scratch, q, R, 0, R, HS, scale);
                feed(&st, (const uint8_t *)k, (const uint8_t *)v, row, FC_DTYPE_F32, 0, n, lim, R);
                fc_attn_end(&st, out, R, 0);
                double diff = 0;
                for (int i = 0; i < R * HS; i++) diff = fmax(diff, fabs(out[i] - ref[i]) / vmax);
                if (n > 1) CHECKF(diff > 1e-3, "uncapped HS=%d R=%d n=%d equals the capped reference (%.2e)", HS, R, n, diff);
                fc_aligned_free(scratch);
            }
    return worst_all;
}

int main(void)
{
    unsigned seed = 7;
    const int hs_list[] = {24, 64, 80, 128};
    const int r_list[] = {1, 3, 8, 9, 17, 24, 32};
    const int n_list[] = {1, 5, 16, 37, 100};
    enum { NMAX = 100, HMAX = 128 };
    static float q[FC_ATTN_ROWS * HMAX], kf[NMAX * HMAX], vf[NMAX * HMAX], out[FC_ATTN_ROWS * HMAX],
        ref[FC_ATTN_ROWS * HMAX], part_out[FC_ATTN_ROWS * HMAX];
    static fc_f16 kh[NMAX * HMAX], vh[NMAX * HMAX];
    double worst_all = 0;
    for (size_t hi = 0; hi < FC_ARRAY_LEN(hs_list); hi++) {
        const int HS = hs_list[hi];
        for (size_t ri = 0; ri < FC_ARRAY_LEN(r_list); ri++) {
            const int R = r_list[ri];
            float *scratch = fc_aligned_alloc(sizeof(float) * fc_attn_scratch_floats(R, HS) * 3);
            for (size_t ni = 0; ni < FC_ARRAY_LEN(n_list); ni++) {
                const int n = n_list[ni];
                for (int kt = 0; kt < 2; kt++) {
                    const int type = kt ? FC_DTYPE_F16 : FC_DTYPE_F32;
                    for (int i = 0; i < R * HS; i++) q[i] = frand(&seed) * 3;
                    float vmax = 0;
                    for (int i = 0; i < n * HS; i++) {
                        kf[i] = frand(&seed);
                        vf[i] = frand(&seed) * 2;
                        kh[i] = fc_f32_to_f16(kf[i]);
                        vh[i] = fc_f32_to_f16(vf[i]);
                        if (kt) { kf[i] = fc_f16_to_f32(kh[i]); vf[i] = fc_f16_to_f32(vh[i]); }
                        vmax = fmaxf(vmax, fabsf(vf[i]));
                    }
                    /* limits: causal over the last R positions, then ragged with zeros */
                    int lim[FC_ATTN_ROWS];
                    for (int pattern = 0; pattern < 2; pattern++) {
                        for (int r = 0; r < R; r++)
                            lim[r] = pattern == 0 ? n - (R - 1 - r) / 3 : (int)((unsigned)(r * 7 + n) % (unsigned)(n + 1));
                        const void *k = kt ? (const void *)kh : (const void *)kf;
                        const void *v = kt ? (const void *)vh : (const void *)vf;
                        const size_t row = (size_t)HS * (kt ? 2 : 4);
                        const float scale = 1.0f / sqrtf((float)HS);
                        fc_attn_ref(q, R, HS, scale, k, v, type, n, lim, ref);

                        fc_attn_state st;
                        fc_attn_begin(&st, scratch, q, R, 0, R, HS, scale);
                        feed(&st, k, v, row, type, 0, n, lim, R);
                        fc_attn_end(&st, out, R, 0);
                        double worst = 0;
                        for (int i = 0; i < R * HS; i++) worst = fmax(worst, fabs(out[i] - ref[i]) / vmax);
                        CHECKF(worst < 2e-6, "HS=%d R=%d n=%d %s limits %d: rel err %.2e", HS, R, n,
                               kt ? "f16" : "f32", pattern, worst);
                        worst_all = fmax(worst_all, worst);

                        /* three chunks (cut at blocks, as the forward cuts them) merged */
                        const int c1 = n / 3 / FC_ATTN_BLOCK * FC_ATTN_BLOCK, c2 = 2 * n / 3 / FC_ATTN_BLOCK * FC_ATTN_BLOCK;
                        const int cuts[4] = {0, c1, c2 > c1 ? c2 : c1, n};
                        fc_attn_state parts[3];
                        const fc_attn_state *pp[3];
                        for (int c = 0; c < 3; c++) {
                            float *sc = scratch + (size_t)c * fc_attn_scratch_floats(R, HS);
                            fc_attn_begin(&parts[c], sc, q, 3, 3 * HS, R, HS, scale);
                            feed(&parts[c], k, v, row, type, cuts[c], cuts[c + 1], lim, R);
                            pp[c] = &parts[c];
                        }
                        fc_attn_merge(pp, 3, part_out, 3, 3 * HS);
                        worst = 0;
                        for (int i = 0; i < R * HS; i++) worst = fmax(worst, fabs(part_out[i] - ref[i]) / vmax);
                        CHECKF(worst < 2e-6, "merged HS=%d R=%d n=%d %s limits %d: rel err %.2e", HS, R, n,
                               kt ? "f16" : "f32", pattern, worst);
                    }
                }
            }
            fc_aligned_free(scratch);
        }
    }
    printf("attention tiles: worst error %.2e of max|v|\n", worst_all);
    printf("soft-capped attention: worst error %.2e of max|v|\n", softcap_tests(&seed));
    return TEST_END();
}
