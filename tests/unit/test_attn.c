/*
 * test_attn.c: the attention inner loops (tensor/attn.c) against their
 * scalar references, for f32 and f16 cached rows, head sizes 64, 128 and an
 * odd 24, and group sizes 1 to 8.
 * Tolerance: 1e-5 relative to the sum of |terms| (float vs double
 * accumulation order), and exact agreement of the f16 decoding.
 */
#include "test_util.h"
#include "tensor/attn.h"

#include <math.h>
#include <string.h>

static float frand(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f) * 2.0f - 1.0f;
}

int main(void)
{
    unsigned seed = 7;
    const int hs_list[] = {24, 64, 128};
    for (size_t hi = 0; hi < 3; hi++) {
        int HS = hs_list[hi];
        for (int G = 1; G <= 8; G++) {
            for (int kt = 0; kt < 2; kt++) {
                int type = kt ? FC_DTYPE_F16 : FC_DTYPE_F32;
                float q[8 * 128], kf[128], w[8 * 3], out[8 * 128], out_ref[8 * 128], s[8 * 3], s_ref[8 * 3];
                fc_f16 kh[128];
                for (int i = 0; i < G * HS; i++) q[i] = frand(&seed);
                for (int i = 0; i < HS; i++) { kf[i] = frand(&seed); kh[i] = fc_f32_to_f16(kf[i]); }
                for (int g = 0; g < G; g++) w[g * 3] = frand(&seed);
                const void *k = kt ? (const void *)kh : (const void *)kf;
                fc_attn_qk(q, G, HS, k, type, s, 3);
                fc_attn_qk_ref(q, G, HS, k, type, s_ref, 3);
                double worst = 0;
                for (int g = 0; g < G; g++) {
                    double mag = 0;
                    for (int i = 0; i < HS; i++) mag += fabs(q[g * HS + i] * kf[i]);
                    worst = fmax(worst, fabs(s[g * 3] - s_ref[g * 3]) / (mag + 1e-30));
                }
                CHECKF(worst < 1e-5, "qk HS=%d G=%d %s rel err %.2e", HS, G, kt ? "f16" : "f32", worst);
                for (int i = 0; i < G * HS; i++) out[i] = out_ref[i] = frand(&seed);
                fc_attn_av(out, G, HS, k, type, w, 3);
                fc_attn_av_ref(out_ref, G, HS, k, type, w, 3);
                worst = 0;
                for (int i = 0; i < G * HS; i++) worst = fmax(worst, fabs(out[i] - out_ref[i]));
                CHECKF(worst < 1e-6, "av HS=%d G=%d %s abs err %.2e", HS, G, kt ? "f16" : "f32", worst);
            }
        }
    }
    return TEST_END();
}
