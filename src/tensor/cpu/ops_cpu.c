/*
 * ops_cpu.c: the public fast ops of ops.h on the CPU.
 *
 * Picks one kernel per op at compile time: the AVX2 kernels (x86_avx2.c)
 * when the compiler targets AVX2 + FMA + F16C, else the portable ones
 * (generic.c). Weight types without an AVX2 kernel use the generic one in
 * either build. The only run-time choice is a switch on the weight type,
 * once per call, never inside a loop.
 *
 * Also owns the activation formats of the fast matmul (their layout is
 * documented in cpu_impl.h).
 */
#include "cpu_impl.h"

#include "base/fc_base.h"

#include <limits.h>

bool fc_cpu_prefetch_packed = true;

/* execs of other threads may be running: an atomic store (a plain one on x86) */
void fc_matmul_set_prefetch(bool on) { __atomic_store_n(&fc_cpu_prefetch_packed, on, __ATOMIC_RELAXED); }

bool fc_cpu_amx_on = true;
void fc_matmul_set_amx(bool on) { __atomic_store_n(&fc_cpu_amx_on, on, __ATOMIC_RELAXED); }
#if !FC_CPU_AMX_BF16
/* no bf16 tiles in this build: callers keep their f32 path */
size_t fc_gemm_bf16_packed_size(int64_t K, int64_t N) { return 0; }
void fc_gemm_bf16_pack(const float *b, int64_t ldb, bool trans, int64_t K, int64_t N, void *dst) {}
bool fc_gemm_bf16(const void *bp, int64_t K, int64_t N, const float *a, int64_t lda, int64_t M, float *c,
                  int64_t ldc, bool accumulate, int64_t n0, int64_t n1)
{
    return false;
}
#endif

bool fc_matmul_amx_available(void)
{
#if FC_CPU_AMX
    return fc_cpu_amx_ready();
#else
    return false;
#endif
}

int fc_matmul_amx_min_tokens(void)
{
#if FC_CPU_AMX
    if (fc_cpu_amx_ready()) return FC_AMX_MIN_T(FC_DTYPE_Q4_0_X8);
#endif
    return INT_MAX;
}

enum fc_dtype fc_matmul_act_type(enum fc_dtype wtype, bool a16)
{
    switch (wtype) {
    case FC_DTYPE_Q4_0: case FC_DTYPE_Q5_0: case FC_DTYPE_Q8_0:
        return a16 ? FC_DTYPE_A16 : FC_DTYPE_Q8_0;
    case FC_DTYPE_Q4_1: case FC_DTYPE_Q5_1:
        return a16 ? FC_DTYPE_A16 : FC_DTYPE_Q8_1;
    case FC_DTYPE_Q4_0_X8: case FC_DTYPE_Q4_1_X8: case FC_DTYPE_Q8_0_X8:
        return FC_DTYPE_A16; /* the packed layouts are made for a16 only */
    case FC_DTYPE_Q2_K: case FC_DTYPE_Q3_K: case FC_DTYPE_Q4_K:
    case FC_DTYPE_Q5_K: case FC_DTYPE_Q6_K:
        return FC_DTYPE_Q8_K;
    default:
        return FC_DTYPE_F32;
    }
}

size_t fc_matmul_act_row_size(enum fc_dtype atype, int64_t K)
{
    switch (atype) {
    case FC_DTYPE_A16:
#if FC_CPU_AMX
        return fc_cpu_act_planes_offset(K) + (size_t)(K / FC_QK) * 64;
#endif
        /* fall through */
    case FC_DTYPE_Q8_0: case FC_DTYPE_Q8_1:
        return fc_cpu_act_side_offset(atype, K) + (size_t)fc_cpu_act_nbp(K) * 2 * sizeof(float);
    case FC_DTYPE_Q8_K:
        return fc_cpu_round32((size_t)(K / FC_QK_K) * sizeof(fc_block_q8_K));
    default:
        return fc_cpu_round32((size_t)K * sizeof(float));
    }
}

void fc_matmul_quantize_act(enum fc_dtype atype, const float *x, void *dst, int64_t K)
{
#if FC_CPU_AVX2
    fc_cpu_quantize_act_avx2(atype, x, dst, K);
#else
    fc_cpu_quantize_act_generic(atype, x, dst, K);
#endif
#if FC_CPU_AMX
    if (atype == FC_DTYPE_A16) fc_cpu_act_planes(dst, K);
#endif
}

float fc_vec_dot(enum fc_dtype wtype, const void *wrow, enum fc_dtype atype, const void *xa, int64_t K)
{
    FC_ASSERT(fc_pack_base_type(wtype) == wtype); /* a packed row is not contiguous */
#if FC_CPU_AVX2
    if (fc_cpu_has_avx2(wtype)) return fc_cpu_vec_dot_avx2(wtype, wrow, atype, xa, K);
#endif
    return fc_cpu_vec_dot_generic(wtype, wrow, atype, xa, K);
}

void fc_matmul_fast(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K, enum fc_dtype atype,
                    const void *xa, size_t xa_stride, int T,
                    float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    if (r0 >= r1 || T <= 0) return;
    FC_ASSERT(atype == fc_matmul_act_type(wtype, false) || atype == fc_matmul_act_type(wtype, true));
#if FC_CPU_AVX2
    if (fc_cpu_has_avx2(wtype)) {
        fc_cpu_matmul_fast_avx2(wtype, w, w_stride, K, atype, xa, xa_stride, T, y, y_stride, r0, r1);
        return;
    }
#endif
    fc_cpu_matmul_fast_generic(wtype, w, w_stride, K, atype, xa, xa_stride, T, y, y_stride, r0, r1);
}

void fc_matmul_exact(enum fc_dtype wtype, const void *w, size_t w_stride, int64_t K,
                     const float *x, int64_t x_stride, int T,
                     float *y, int64_t y_stride, int64_t r0, int64_t r1)
{
    if (r0 >= r1 || T <= 0) return;
#if FC_CPU_AVX2
    fc_cpu_matmul_exact_avx2(wtype, w, w_stride, K, x, x_stride, T, y, y_stride, r0, r1);
#else
    fc_cpu_matmul_exact_generic(wtype, w, w_stride, K, x, x_stride, T, y, y_stride, r0, r1);
#endif
}

void fc_dequantize_chunk(enum fc_dtype t, const void *row, int64_t k0, int64_t n, float *dst)
{
    if (n <= 0) return;
#if FC_CPU_AVX2
    fc_cpu_dequant_chunk_avx2(t, row, k0, n, dst);
#else
    const int bs = fc_dtype_block_size(t);
    bool ok = bs > 0 && fc_dequantize_row_ref(t, (const uint8_t *)row + (size_t)(k0 / bs) * fc_dtype_type_size(t),
                                              dst, n);
    FC_ASSERT(ok);
#endif
}

void fc_rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
#if FC_CPU_AVX2
    fc_cpu_rmsnorm_avx2(y, x, w, n, eps);
#else
    fc_cpu_rmsnorm_generic(y, x, w, n, eps);
#endif
}

void fc_swiglu(float *y, const float *g, const float *u, int n)
{
#if FC_CPU_AVX2
    fc_cpu_swiglu_avx2(y, g, u, n);
#else
    fc_cpu_swiglu_generic(y, g, u, n);
#endif
}

float fc_dot_f32(const float *a, const float *b, int n)
{
#if FC_CPU_AVX2
    return fc_cpu_dot_f32_avx2(a, b, n);
#else
    return fc_cpu_dot_f32_generic(a, b, n);
#endif
}

void fc_axpy_f32(float *y, float a, const float *x, int n)
{
#if FC_CPU_AVX2
    fc_cpu_axpy_f32_avx2(y, a, x, n);
#else
    fc_cpu_axpy_f32_generic(y, a, x, n);
#endif
}
