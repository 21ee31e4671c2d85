/*
 * dtype.h: element types of weights and activations, their block layouts,
 * and conversions between f32 and the stored types.
 *
 * The numeric ids are GGML's (they are what a GGUF file stores), so a tensor
 * type read from a file maps to this enum without a table. Quantized types
 * store blocks of FC_QK (32) or FC_QK_K (256) values; a row's byte size is
 * n / block_size * type_size. Block layouts are those of llama.cpp's ggml
 * (documented per type in quant_ref.c), because GGUF files carry them.
 *
 * Reference (scalar) quantize/dequantize live in quant_ref.c and are the
 * oracle for every SIMD path.
 */
#ifndef FC_DTYPE_H
#define FC_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum fc_dtype {
    FC_DTYPE_NONE = -1, /* no type: unknown, or not given */
    FC_DTYPE_F32 = 0,
    FC_DTYPE_F16 = 1,
    FC_DTYPE_Q4_0 = 2,
    FC_DTYPE_Q4_1 = 3,
    FC_DTYPE_Q5_0 = 6,
    FC_DTYPE_Q5_1 = 7,
    FC_DTYPE_Q8_0 = 8,
    FC_DTYPE_Q8_1 = 9,
    FC_DTYPE_Q2_K = 10,
    FC_DTYPE_Q3_K = 11,
    FC_DTYPE_Q4_K = 12,
    FC_DTYPE_Q5_K = 13,
    FC_DTYPE_Q6_K = 14,
    FC_DTYPE_Q8_K = 15,
    FC_DTYPE_I8 = 24,
    FC_DTYPE_I16 = 25,
    FC_DTYPE_I32 = 26,
    FC_DTYPE_I64 = 27,
    FC_DTYPE_F64 = 28,
    FC_DTYPE_BF16 = 30,
    /* Ours, never in a file: 16-bit activation blocks of the fast matmul
     * (fc_block_a16). Beyond every GGML id. */
    FC_DTYPE_A16 = 40,
    /* Ours, never in a file: weights of q4_0 / q4_1 / q8_0 rearranged at
     * load so that eight rows are interleaved (layout in pack.c). A row
     * group of 8 rows takes exactly the bytes of 8 rows of the base type,
     * so row strides and offsets are the base type's. */
    FC_DTYPE_Q4_0_X8 = 41,
    FC_DTYPE_Q4_1_X8 = 42,
    FC_DTYPE_Q8_0_X8 = 43,
    FC_DTYPE_COUNT = 44, /* upper bound of ids, for tables */
};

#define FC_QK 32      /* values per block of the 32-wide types */
#define FC_QK_K 256   /* values per super-block of the K types */
#define FC_K_SCALE_SIZE 12

typedef uint16_t fc_f16;  /* IEEE half, bit pattern */
typedef uint16_t fc_bf16; /* bfloat16, bit pattern */

/* ---- block layouts (as stored in GGUF) ---- */
typedef struct { fc_f16 d; uint8_t qs[FC_QK / 2]; } fc_block_q4_0;              /* 18 B */
typedef struct { fc_f16 d, m; uint8_t qs[FC_QK / 2]; } fc_block_q4_1;           /* 20 B */
typedef struct { fc_f16 d; uint8_t qh[4]; uint8_t qs[FC_QK / 2]; } fc_block_q5_0; /* 22 B */
typedef struct { fc_f16 d, m; uint8_t qh[4]; uint8_t qs[FC_QK / 2]; } fc_block_q5_1; /* 24 B */
typedef struct { fc_f16 d; int8_t qs[FC_QK]; } fc_block_q8_0;                   /* 34 B */
typedef struct { fc_f16 d, s; int8_t qs[FC_QK]; } fc_block_q8_1;                /* 36 B: s = d * sum(qs) */
typedef struct { uint8_t scales[FC_QK_K / 16]; uint8_t qs[FC_QK_K / 4]; fc_f16 d, dmin; } fc_block_q2_K; /* 84 B */
typedef struct { uint8_t hmask[FC_QK_K / 8]; uint8_t qs[FC_QK_K / 4]; uint8_t scales[12]; fc_f16 d; } fc_block_q3_K; /* 110 B */
typedef struct { fc_f16 d, dmin; uint8_t scales[FC_K_SCALE_SIZE]; uint8_t qs[FC_QK_K / 2]; } fc_block_q4_K; /* 144 B */
typedef struct { fc_f16 d, dmin; uint8_t scales[FC_K_SCALE_SIZE]; uint8_t qh[FC_QK_K / 8]; uint8_t qs[FC_QK_K / 2]; } fc_block_q5_K; /* 176 B */
typedef struct { uint8_t ql[FC_QK_K / 2]; uint8_t qh[FC_QK_K / 4]; int8_t scales[FC_QK_K / 16]; fc_f16 d; } fc_block_q6_K; /* 210 B */
typedef struct { float d; int8_t qs[FC_QK_K]; int16_t bsums[FC_QK_K / 16]; } fc_block_q8_K; /* 292 B */
/* Activations only: d = amax / 32767, codes rounded to nearest even. */
typedef struct { float d; int16_t qs[FC_QK]; } fc_block_a16;                     /* 68 B */

/* ---- type traits ---- */
/* Name as llama.cpp prints it ("q4_1", "f16"); "?" for unknown ids. */
const char *fc_dtype_name(enum fc_dtype t);
/* Parses a name (case-insensitive: "q4_1", "Q4_K", "bf16"); -1 if unknown. */
enum fc_dtype fc_dtype_from_name(const char *name);
/* True for types we can read as weights (dequantize). */
bool fc_dtype_supported(enum fc_dtype t);
/* True for the GGML ids a file may hold (ours, a16 and the row-interleaved
 * types, are not among them). */
bool fc_dtype_in_files(enum fc_dtype t);
/* Values per block (1 for plain types), 0 for unknown ids. */
int fc_dtype_block_size(enum fc_dtype t);
/* Bytes per block, 0 for unknown ids. */
size_t fc_dtype_type_size(enum fc_dtype t);
/* Bytes of a row of n values; 0 if n is not a multiple of the block size. */
size_t fc_dtype_row_size(enum fc_dtype t, int64_t n);

/* ---- scalar conversions ---- */
float fc_f16_to_f32(fc_f16 h);
fc_f16 fc_f32_to_f16(float f);    /* round to nearest even */
float fc_bf16_to_f32(fc_bf16 h);
fc_bf16 fc_f32_to_bf16(float f);  /* round to nearest even, NaN kept */
/* The portable versions of the f16 conversions (the ones above use F16C
 * when compiled for it); exposed so tests check both on any machine. */
float fc_f16_to_f32_scalar(fc_f16 h);
fc_f16 fc_f32_to_f16_scalar(float f);

/* ---- reference row conversions (quant_ref.c) ---- */
/* dst[0..n) = values of a row of type t. n must be a multiple of the block
 * size. Returns false for types without a dequantizer. */
bool fc_dequantize_row_ref(enum fc_dtype t, const void *src, float *dst, int64_t n);
/* Quantizes n floats into a row of type t (round-to-nearest schemes as
 * llama.cpp's reference quantizers). Returns false for types we cannot write. */
bool fc_quantize_row_ref(enum fc_dtype t, const float *src, void *dst, int64_t n);

#endif
