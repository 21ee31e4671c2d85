/*
 * test_q4x8a8.c: packed q4_0 times 8-bit pre-broadcast activations
 * (fc_q4x8a8_quantize + fc_matmul_q4x8a8, tensor/cpu/q4x8_a8.c).
 *
 * Against a double reference on the same numbers: the weights dequantized
 * (fc_dequantize_row_ref) times the activations as the 8-bit rule gives
 * them (d = max|x| / 127, q = round(x / d), recomputed here), so the only
 * difference is f32 accumulation: 2e-5 of the sum of |products|. And
 * against the f32 product (fc_matmul_ref) within the 8-bit activations'
 * error. Shapes: K = 32, 96, 2304, 9216; T = 1..7 (token tiles of 4 and
 * their tails); row ranges [r0, r1) inside the matrix; zero and huge rows.
 * On builds without AVX2 fc_q4x8a8_available() is false and nothing runs.
 */
#include "test_util.h"
#include "tensor/ops.h"
#include "tensor/dtype.h"
#include "base/fc_base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

int main(void)
{
    if (!fc_q4x8a8_available()) {
        printf("q4x8a8: no AVX2 in this build; skipped\n");
        return TEST_END();
    }
    unsigned seed = 11;
    const int64_t k_list[] = {32, 96, 2304, 9216};
    const int R = 48;
    double worst = 0, worst_f32 = 0;
    for (size_t ki = 0; ki < FC_ARRAY_LEN(k_list); ki++) {
        const int64_t K = k_list[ki], nb = K / 32;
        const size_t rs = fc_dtype_row_size(FC_DTYPE_Q4_0, K), as = fc_q4x8a8_row_size(K);
        CHECK(as % 32 == 0);
        uint8_t *wq = malloc(rs * R), *wp = fc_aligned_alloc(rs * R);
        float *wf = malloc(sizeof(float) * (size_t)K * R), *x = malloc(sizeof(float) * (size_t)K * 7);
        for (int r = 0; r < R; r++) {
            for (int64_t k = 0; k < K; k++) wf[(size_t)r * K + k] = frand(&seed) * (1 + r % 3);
            fc_quantize_row_ref(FC_DTYPE_Q4_0, wf + (size_t)r * K, wq + (size_t)r * rs, K);
            fc_dequantize_row_ref(FC_DTYPE_Q4_0, wq + (size_t)r * rs, wf + (size_t)r * K, K);
        }
        CHECK(fc_pack_rows(FC_DTYPE_Q4_0, wq, rs, R, K, wp));
        for (int T = 1; T <= 7; T++) {
            for (int64_t i = 0; i < K * T; i++) x[i] = frand(&seed) * 3;
            if (T == 3) memset(x + K, 0, sizeof(float) * (size_t)K);        /* a zero row */
            if (T == 5) for (int64_t i = 0; i < K; i++) x[i] *= 1e30f;       /* a huge one */
            uint8_t *xa = fc_aligned_alloc(as * (size_t)T);
            for (int t = 0; t < T; t++) fc_q4x8a8_quantize(x + (size_t)t * K, xa + (size_t)t * as, K);
            float *y = malloc(sizeof(float) * R * T), *yr = malloc(sizeof(float) * R * T);
            for (int i = 0; i < R * T; i++) y[i] = NAN;
            const int64_t r0 = 8, r1 = 40; /* a range inside the matrix */
            fc_matmul_q4x8a8(wp, rs, K, xa, as, T, y, R, r0, r1);
            fc_matmul_ref(FC_DTYPE_Q4_0, wq, rs, K, x, K, T, yr, R, r0, r1);
            for (int t = 0; t < T; t++) {
                /* the 8-bit activations as the rule gives them */
                double xq[9216];
                const float *xt = x + (size_t)t * K;
                for (int64_t b = 0; b < nb; b++) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xt[b * 32 + j]));
                    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
                    for (int j = 0; j < 32; j++) xq[b * 32 + j] = (double)d * (double)lrintf(xt[b * 32 + j] * id);
                }
                for (int r = 0; r < R; r++) {
                    const float got = y[(size_t)t * R + r];
                    if (r < r0 || r >= r1) {
                        CHECKF(isnan(got), "K=%ld T=%d row %d outside [%ld, %ld) was written", (long)K, T, r, (long)r0,
                               (long)r1);
                        continue;
                    }
                    double ref = 0, mag = 0;
                    for (int64_t k = 0; k < K; k++) {
                        ref += (double)wf[(size_t)r * K + k] * xq[k];
                        mag += fabs((double)wf[(size_t)r * K + k] * xq[k]);
                    }
                    const double err = fabs(got - ref) / (mag > 0 ? mag : 1);
                    CHECKF(err < 2e-5 && (mag > 0 || got == 0), "K=%ld T=%d t=%d r=%d: %g vs %g (rel %.2e)", (long)K, T, t,
                           r, got, ref, err);
                    if (err > worst) worst = err;
                    if (T != 5 || t != 0) { /* the 8-bit error against f32 activations */
                        const double e2 = fabs(got - yr[(size_t)t * R + r]) / (mag > 0 ? mag : 1);
                        CHECKF(e2 < 1e-2, "K=%ld T=%d t=%d r=%d: %g vs f32 %g", (long)K, T, t, r, got, yr[(size_t)t * R + r]);
                        if (e2 > worst_f32) worst_f32 = e2;
                    }
                }
            }
            fc_aligned_free(xa);
            free(y);
            free(yr);
        }
        free(wq);
        fc_aligned_free(wp);
        free(wf);
        free(x);
    }
    printf("q4x8a8: worst error %.2e of sum|w x| against the 8-bit reference, %.2e against f32 activations\n", worst,
           worst_f32);
    return TEST_END();
}
