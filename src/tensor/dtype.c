/*
 * dtype.c: type traits (names, block and row sizes) and the scalar
 * f16 / bf16 <-> f32 conversions.
 *
 * The table below is indexed by GGML's type ids (enum fc_dtype), so a type id
 * read from a GGUF file indexes it directly. Block layouts themselves are
 * documented next to their (de)quantizers in quant_ref.c.
 *
 * Conversions:
 *   f16 -> f32   exact (every half, subnormals included, is an f32 value);
 *                NaN payloads are kept bit for bit by the scalar path.
 *   f32 -> f16   round to nearest, ties to even; values >= 65520 in magnitude
 *                become inf; results below the normal range become f16
 *                subnormals (rounded the same way); NaN stays NaN (quiet bit
 *                set, top payload bits kept), as x86 F16C's vcvtps2ph does.
 *   bf16 <-> f32 bf16 is the top half of an f32: widening is a shift, and
 *                narrowing rounds to nearest even with NaNs forced quiet
 *                (ggml's ggml_compute_fp32_to_bf16 does the same; subnormals
 *                are not flushed).
 * When the compiler targets F16C (__F16C__, e.g. -march=native on any x86 of
 * the last decade) the public f16 functions use the hardware instructions,
 * which round identically. The scalar versions are always compiled and
 * exported as fc_f16_to_f32_scalar / fc_f32_to_f16_scalar so tests can check
 * them bit for bit on every machine (tests/unit/test_quant.c).
 *
 * Not here: row (de)quantization (quant_ref.c) and SIMD bulk conversion.
 */
#include "dtype.h"

#include <ctype.h>
#include <string.h>

#if defined(__F16C__)
#include <immintrin.h>
#endif

/* The byte counts below are those of GGUF; the structs in dtype.h must agree. */
_Static_assert(sizeof(fc_block_q4_0) == 18, "q4_0 block is 18 bytes");
_Static_assert(sizeof(fc_block_q4_1) == 20, "q4_1 block is 20 bytes");
_Static_assert(sizeof(fc_block_q5_0) == 22, "q5_0 block is 22 bytes");
_Static_assert(sizeof(fc_block_q5_1) == 24, "q5_1 block is 24 bytes");
_Static_assert(sizeof(fc_block_q8_0) == 34, "q8_0 block is 34 bytes");
_Static_assert(sizeof(fc_block_q8_1) == 36, "q8_1 block is 36 bytes");
_Static_assert(sizeof(fc_block_q2_K) == 84, "q2_K block is 84 bytes");
_Static_assert(sizeof(fc_block_q3_K) == 110, "q3_K block is 110 bytes");
_Static_assert(sizeof(fc_block_q4_K) == 144, "q4_K block is 144 bytes");
_Static_assert(sizeof(fc_block_q5_K) == 176, "q5_K block is 176 bytes");
_Static_assert(sizeof(fc_block_q6_K) == 210, "q6_K block is 210 bytes");
_Static_assert(sizeof(fc_block_q8_K) == 292, "q8_K block is 292 bytes");
_Static_assert(sizeof(float) == 4, "f32 is 4 bytes");

/* ---- type traits ---- */

struct type_traits {
    const char *name;  /* NULL: no type has this id */
    int block_size;    /* values per block */
    size_t type_size;  /* bytes per block */
    bool supported;    /* we can dequantize it as a weight */
};

static const struct type_traits traits[FC_DTYPE_COUNT] = {
    [FC_DTYPE_F32]  = { "f32",  1,      4,                      true },
    [FC_DTYPE_F16]  = { "f16",  1,      2,                      true },
    [FC_DTYPE_Q4_0] = { "q4_0", FC_QK,   sizeof(fc_block_q4_0), true },
    [FC_DTYPE_Q4_1] = { "q4_1", FC_QK,   sizeof(fc_block_q4_1), true },
    [FC_DTYPE_Q5_0] = { "q5_0", FC_QK,   sizeof(fc_block_q5_0), true },
    [FC_DTYPE_Q5_1] = { "q5_1", FC_QK,   sizeof(fc_block_q5_1), true },
    [FC_DTYPE_Q8_0] = { "q8_0", FC_QK,   sizeof(fc_block_q8_0), true },
    /* q8_1 and q8_K are activation formats of the dot products, not weights */
    [FC_DTYPE_Q8_1] = { "q8_1", FC_QK,   sizeof(fc_block_q8_1), false },
    [FC_DTYPE_Q2_K] = { "q2_K", FC_QK_K, sizeof(fc_block_q2_K), true },
    [FC_DTYPE_Q3_K] = { "q3_K", FC_QK_K, sizeof(fc_block_q3_K), true },
    [FC_DTYPE_Q4_K] = { "q4_K", FC_QK_K, sizeof(fc_block_q4_K), true },
    [FC_DTYPE_Q5_K] = { "q5_K", FC_QK_K, sizeof(fc_block_q5_K), true },
    [FC_DTYPE_Q6_K] = { "q6_K", FC_QK_K, sizeof(fc_block_q6_K), true },
    [FC_DTYPE_Q8_K] = { "q8_K", FC_QK_K, sizeof(fc_block_q8_K), false },
    [FC_DTYPE_I8]   = { "i8",   1,      1,                      false },
    [FC_DTYPE_I16]  = { "i16",  1,      2,                      false },
    [FC_DTYPE_I32]  = { "i32",  1,      4,                      false },
    [FC_DTYPE_I64]  = { "i64",  1,      8,                      false },
    [FC_DTYPE_F64]  = { "f64",  1,      8,                      false },
    [FC_DTYPE_BF16] = { "bf16", 1,      2,                      true },
    [FC_DTYPE_A16]  = { "a16",  FC_QK,   sizeof(fc_block_a16),  false },
    /* row-interleaved weights: sizes per row as the base type's */
    [FC_DTYPE_Q4_0_X8] = { "q4_0x8", FC_QK, sizeof(fc_block_q4_0), false },
    [FC_DTYPE_Q4_1_X8] = { "q4_1x8", FC_QK, sizeof(fc_block_q4_1), false },
    [FC_DTYPE_Q8_0_X8] = { "q8_0x8", FC_QK, sizeof(fc_block_q8_0), false },
};

static const struct type_traits *lookup(enum fc_dtype t)
{
    if (t < 0 || t >= FC_DTYPE_COUNT || !traits[t].name) return NULL;
    return &traits[t];
}

const char *fc_dtype_name(enum fc_dtype t)
{
    const struct type_traits *tt = lookup(t);
    return tt ? tt->name : "?";
}

enum fc_dtype fc_dtype_from_name(const char *name)
{
    if (!name) return FC_DTYPE_NONE;
    for (int t = 0; t < FC_DTYPE_COUNT; t++) {
        const char *a = traits[t].name, *b = name;
        if (!a) continue;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return t;
    }
    return FC_DTYPE_NONE;
}

bool fc_dtype_in_files(enum fc_dtype t)
{
    return t >= 0 && t < FC_DTYPE_A16 && lookup(t) != NULL;
}

bool fc_dtype_supported(enum fc_dtype t)
{
    const struct type_traits *tt = lookup(t);
    return tt && tt->supported;
}

int fc_dtype_block_size(enum fc_dtype t)
{
    const struct type_traits *tt = lookup(t);
    return tt ? tt->block_size : 0;
}

size_t fc_dtype_type_size(enum fc_dtype t)
{
    const struct type_traits *tt = lookup(t);
    return tt ? tt->type_size : 0;
}

size_t fc_dtype_row_size(enum fc_dtype t, int64_t n)
{
    const struct type_traits *tt = lookup(t);
    if (!tt || n < 0 || n % tt->block_size != 0) return 0;
    return (size_t)(n / tt->block_size) * tt->type_size;
}

/* ---- scalar conversions ---- */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Exported for tests only (not in dtype.h): the portable paths. */
float fc_f16_to_f32_scalar(fc_f16 h);
fc_f16 fc_f32_to_f16_scalar(float f);

/*
 * half: s eeeee mmmmmmmmmm, bias 15. f32: s eeeeeeee m(23), bias 127.
 * A normal half maps to exponent e + (127 - 15) and mantissa m << 13. A
 * subnormal half m * 2^-24 is renormalized: shift m left until its leading
 * one reaches bit 10, lowering the exponent once per shift.
 */
float fc_f16_to_f32_scalar(fc_f16 h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {                       /* inf / NaN, payload kept */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {                   /* normal */
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {                  /* +-0 */
        bits = sign;
    } else {                                 /* subnormal */
        uint32_t e = 113;                    /* exponent of 2^-14, biased for f32 */
        while (!(mant & 0x400)) { mant <<= 1; e--; }
        bits = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
    return f32_from_bits(bits);
}

/*
 * Rounds |f| to the nearest half (ties to the even mantissa):
 *   >= 65520 (halfway between 65504, the largest half, and 2^16) -> inf;
 *   >= 2^-14 (smallest normal half): keep the top 10 mantissa bits and round
 *     on the 13 dropped ones; a carry out of the mantissa bumps the exponent,
 *     which the encoding makes automatic;
 *   below: the result is a subnormal count of 2^-24 units, the 24-bit
 *     significand shifted right by (126 - biased exponent) with the same
 *     rounding; a carry to 0x400 is the smallest normal, again automatic.
 */
fc_f16 fc_f32_to_f16_scalar(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)                     /* NaN: quiet, top payload bits */
        return (fc_f16)(sign | 0x7e00 | ((ax & 0x7fffff) >> 13));
    if (ax >= 0x477ff000u)                    /* >= 65520 or inf */
        return (fc_f16)(sign | 0x7c00);
    if (ax >= 0x38800000u) {                  /* normal half */
        uint32_t h = ((ax >> 23) - 112) << 10 | ((ax >> 13) & 0x3ff);
        uint32_t rem = ax & 0x1fff;
        if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
        return (fc_f16)(sign | h);
    }
    if (ax < 0x33000000u)                     /* < 2^-25: rounds to zero */
        return sign;
    uint32_t e = ax >> 23;                    /* 102..112 */
    uint32_t m = (ax & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;                 /* 14..24 */
    uint32_t h = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (fc_f16)(sign | h);
}

#if defined(__F16C__)
/* Immediate 0 selects round-to-nearest-even regardless of MXCSR. */
float fc_f16_to_f32(fc_f16 h) { return _cvtsh_ss(h); }
fc_f16 fc_f32_to_f16(float f) { return (fc_f16)_cvtss_sh(f, 0); }
#else
float fc_f16_to_f32(fc_f16 h) { return fc_f16_to_f32_scalar(h); }
fc_f16 fc_f32_to_f16(float f) { return fc_f32_to_f16_scalar(f); }
#endif

float fc_bf16_to_f32(fc_bf16 h)
{
    return f32_from_bits((uint32_t)h << 16);
}

/* Adding 0x7fff plus the lowest kept bit and truncating is round to nearest
 * even on the dropped 16 bits; the carry handles exponent bumps and overflow
 * to inf. NaNs skip that (a carry could turn them into inf) and get the
 * quiet bit (0x40 of the bf16) so a signalling payload stays a NaN. */
fc_bf16 fc_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (fc_bf16)((x >> 16) | 0x40);
    return (fc_bf16)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}
