/*
 * vexp.h: e^x (and tanh) for 8 float lanes (AVX2 + FMA), ~1 ulp, shared by the
 * attention kernels (tensor/attn.c) and the sampler's draw weights
 * (sampling/sampler.c). Defines FC_VEXP_AVX2 where the compiler targets
 * AVX2 and FMA; nothing otherwise (callers keep a scalar path).
 *
 * x = k ln2 + r, |r| <= ln2/2, e^r by Cephes' expf polynomial, times 2^k
 * built in the exponent bits. 0 below -87.3 (and for -inf), x clamped at
 * 88.37 above.
 */
#ifndef FC_VEXP_H
#define FC_VEXP_H

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FC_VEXP_AVX2 1

static inline __m256 fc_exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.37626f));
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(_mm256_mul_ps(y, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^k: k in [-126, 128] after the clamps; 128 only at the top clamp */
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(k), 23);
    y = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(y), e));
    return _mm256_andnot_ps(under, y);
}

/* tanh(x) for 8 lanes: sign(x) (1 - e) / (1 + e) with e = e^(-2|x|) (fc_exp8);
 * absolute error ~1e-7 (relative error grows only where |x| < ~1e-3, where
 * the value itself is that small). For the soft-caps and the gelu tanh. */
static inline __m256 fc_tanh8(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    const __m256 ax = _mm256_andnot_ps(sign, x);
    const __m256 e = fc_exp8(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
    const __m256 t = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
    return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}
#endif

#endif
