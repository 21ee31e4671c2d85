/*
 * attn.c: attention inner loops (see attn.h). AVX2 + F16C paths when the
 * compiler targets them, plain C otherwise; the _ref versions are always
 * compiled and are the oracle in tests/unit/test_attn.c.
 */
#include "attn.h"
#include "../base/fc_base.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define ATTN_AVX2 1
#endif

static inline float kv_get(const void *p, int kv_type, int i)
{
    return kv_type == FC_DTYPE_F32 ? ((const float *)p)[i] : fc_f16_to_f32(((const fc_f16 *)p)[i]);
}

void fc_attn_qk_ref(const float *q, int G, int HS, const void *k, int kv_type, float *s, int s_stride)
{
    for (int g = 0; g < G; g++) {
        double acc = 0;
        for (int i = 0; i < HS; i++) acc += (double)q[g * HS + i] * kv_get(k, kv_type, i);
        s[g * s_stride] = (float)acc;
    }
}

void fc_attn_av_ref(float *out, int G, int HS, const void *v, int kv_type, const float *w, int w_stride)
{
    for (int g = 0; g < G; g++)
        for (int i = 0; i < HS; i++) out[g * HS + i] += w[g * w_stride] * kv_get(v, kv_type, i);
}

#ifdef ATTN_AVX2
static inline __m256 load8(const void *p, int kv_type, int i)
{
    if (kv_type == FC_DTYPE_F32) return _mm256_loadu_ps((const float *)p + i);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const fc_f16 *)p + i)));
}

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

void fc_attn_qk(const float *q, int G, int HS, const void *k, int kv_type, float *s, int s_stride)
{
#ifdef ATTN_AVX2
    if (HS % 8 == 0 && G <= 8) {
        __m256 acc[8];
        for (int g = 0; g < G; g++) acc[g] = _mm256_setzero_ps();
        for (int i = 0; i < HS; i += 8) {
            __m256 kk = load8(k, kv_type, i);
            for (int g = 0; g < G; g++) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * HS + i), kk, acc[g]);
        }
        for (int g = 0; g < G; g++) s[g * s_stride] = hsum(acc[g]);
        return;
    }
#endif
    for (int g = 0; g < G; g++) {
        float acc = 0;
        for (int i = 0; i < HS; i++) acc += q[g * HS + i] * kv_get(k, kv_type, i);
        s[g * s_stride] = acc;
    }
}

void fc_attn_av(float *out, int G, int HS, const void *v, int kv_type, const float *w, int w_stride)
{
#ifdef ATTN_AVX2
    if (HS % 8 == 0) {
        for (int i = 0; i < HS; i += 8) {
            __m256 vv = load8(v, kv_type, i);
            for (int g = 0; g < G; g++) {
                float *o = out + g * HS + i;
                _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_set1_ps(w[g * w_stride]), vv, _mm256_loadu_ps(o)));
            }
        }
        return;
    }
#endif
    fc_attn_av_ref(out, G, HS, v, kv_type, w, w_stride);
}
