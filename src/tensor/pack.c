/*
 * pack.c: the row-interleaved weight layouts (FC_DTYPE_*_X8, see ops.h).
 *
 * A packed matrix is a sequence of row groups (rows 8g .. 8g+7); a group is
 * a sequence of group blocks, one per 32-value block column b. A group
 * block holds the eight rows' block b:
 *
 *   q4_0x8: d[8] (f16, row r at d[r]), then 128 code bytes      = 8 x 18 B
 *   q4_1x8: d[8], m[8] (f16), then 128 code bytes               = 8 x 20 B
 *   q8_0x8: d[8], then 256 code bytes                           = 8 x 34 B
 *
 * The code area is the eight rows' code bytes transposed in 16-bit words:
 * 16-byte chunk p holds word p of row 0, row 1, ..., row 7. For q8_0 word p
 * is the value pair (2p, 2p+1); widened to int16 a chunk is 8 rows x 2
 * values, and vpmaddwd with the activation pair (x[2p], x[2p+1])
 * broadcast leaves row r's partial sum in int32 lane r. A q4 block keeps
 * value j in the low nibble of byte j and value j + 16 in the high nibble,
 * so chunk p (p = 0..7) widened gives pair p with an AND and pair p + 8
 * with a shift.
 */
#include "ops.h"

#include <string.h>

enum fc_dtype fc_pack_type(enum fc_dtype wtype)
{
    switch (wtype) {
    case FC_DTYPE_Q4_0: return FC_DTYPE_Q4_0_X8;
    case FC_DTYPE_Q4_1: return FC_DTYPE_Q4_1_X8;
    case FC_DTYPE_Q8_0: return FC_DTYPE_Q8_0_X8;
    default:            return FC_DTYPE_NONE;
    }
}

enum fc_dtype fc_pack_base_type(enum fc_dtype t)
{
    switch (t) {
    case FC_DTYPE_Q4_0_X8: return FC_DTYPE_Q4_0;
    case FC_DTYPE_Q4_1_X8: return FC_DTYPE_Q4_1;
    case FC_DTYPE_Q8_0_X8: return FC_DTYPE_Q8_0;
    default:               return t;
    }
}

/* Bytes of scales (d, and m for q4_1) at the head of a group block, and
 * where a plain block's codes start. */
static size_t head_bytes(int base) { return base == FC_DTYPE_Q4_1 ? 32 : 16; }
static size_t codes_at(int base) { return base == FC_DTYPE_Q4_1 ? 4 : 2; }

bool fc_pack_rows(enum fc_dtype wtype, const void *src, size_t src_stride, int64_t R, int64_t K, void *dst)
{
    if (fc_pack_type(wtype) < 0 || R % 8 != 0 || K <= 0 || K % FC_QK != 0) return false;
    const size_t wbs = fc_dtype_type_size(wtype), hb = head_bytes(wtype), co = codes_at(wtype);
    const int nw = (int)(wbs - co) / 2; /* 16-bit code words per block: 8 or 16 */
    const int64_t nb = K / FC_QK;
    uint8_t *out = dst;
    for (int64_t g = 0; g < R / 8; g++) {
        const uint8_t *row[8];
        for (int r = 0; r < 8; r++) row[r] = (const uint8_t *)src + (size_t)(8 * g + r) * src_stride;
        for (int64_t b = 0; b < nb; b++, out += 8 * wbs) {
            for (int r = 0; r < 8; r++) {
                const uint8_t *blk = row[r] + (size_t)b * wbs;
                memcpy(out + 2 * r, blk, 2);                                      /* d */
                if (wtype == FC_DTYPE_Q4_1) memcpy(out + 16 + 2 * r, blk + 2, 2); /* m */
                for (int p = 0; p < nw; p++) memcpy(out + hb + 16 * p + 2 * r, blk + co + 2 * p, 2);
            }
        }
    }
    return true;
}

void fc_pack_block_row(int ptype, const uint8_t *gblk, int r, uint8_t *blk)
{
    const int base = fc_pack_base_type(ptype);
    const size_t wbs = fc_dtype_type_size(base), hb = head_bytes(base), co = codes_at(base);
    const int nw = (int)(wbs - co) / 2;
    memcpy(blk, gblk + 2 * r, 2);
    if (base == FC_DTYPE_Q4_1) memcpy(blk + 2, gblk + 16 + 2 * r, 2);
    for (int p = 0; p < nw; p++) memcpy(blk + co + 2 * p, gblk + hb + 16 * p + 2 * r, 2);
}

bool fc_unpack_rows(int ptype, const void *src, int64_t R, int64_t K, void *dst)
{
    const int base = fc_pack_base_type(ptype);
    if (base == ptype || R % 8 != 0 || K <= 0 || K % FC_QK != 0) return false;
    const size_t wbs = fc_dtype_type_size(base), rs = fc_dtype_row_size(base, K);
    const int64_t nb = K / FC_QK;
    const uint8_t *in = src;
    for (int64_t g = 0; g < R / 8; g++)
        for (int64_t b = 0; b < nb; b++, in += 8 * wbs)
            for (int r = 0; r < 8; r++)
                fc_pack_block_row(ptype, in, r, (uint8_t *)dst + (size_t)(8 * g + r) * rs + (size_t)b * wbs);
    return true;
}
