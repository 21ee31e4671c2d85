/*
 * test_quant.c: element types, f16/bf16 conversion and the reference
 * (de)quantizers of src/tensor/dtype.c and quant_ref.c.
 *
 * Checks, one output line each, exit status 1 if any fails:
 *   - type table: names, name parsing, block/type/row sizes vs the structs;
 *   - f16: every one of the 65536 halfs decodes to the exact value (oracle:
 *     ldexp on the fields) and round-trips; every rounding boundary between
 *     adjacent halfs (midpoint -> even, one ulp either side -> that side);
 *     a 1M-sample sweep of f32 bit patterns against a nearest-half search;
 *     the scalar path is checked directly even when F16C is used, and the
 *     two must agree (bit for bit, except that F16C quiets signalling NaNs);
 *   - bf16: the same for bfloat16;
 *   - dequantization of random blocks of every type equals gguf-py's f32
 *     output bit for bit (tolerance 0 ulp: both compute the same f32
 *     products in the same order; golden data in tests/data/quant, made by
 *     tools/golden/make_quant_golden.py); q8_1 and q8_K, which gguf-py
 *     lacks, against their defining formula;
 *   - quantization of a stress row equals gguf-py's bytes for the types it
 *     implements (f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0), and ggml's own
 *     reference quantizers' bytes for q8_1 q2_K q3_K q4_K q5_K q6_K q8_K
 *     (built from ggml source by the golden script), byte for byte;
 *   - quantize -> dequantize error of every writable type on several
 *     distributions stays within the bound its format allows (stated at each
 *     check), and the K types reach a stated relative RMSE on gaussian data.
 * Usage: test_quant [DATA_DIR]   (default tests/data/quant, run from the repo root)
 */
#include "tensor/dtype.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_pass, n_fail;

static bool check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) n_pass++; else n_fail++;
    return ok;
}

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* ---- deterministic random numbers (xorshift64*, Box-Muller) ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_u64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static double rng_unif(void) { return (rng_u64() >> 11) * (1.0 / 9007199254740992.0); }
static double rng_gauss(void)
{
    double u = rng_unif(), v = rng_unif();
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* ---- type table ---- */

static void test_type_table(void)
{
    static const struct { int t; const char *name; int bs; size_t ts; bool sup; } want[] = {
        { FC_DTYPE_F32, "f32", 1, 4, true },     { FC_DTYPE_F16, "f16", 1, 2, true },
        { FC_DTYPE_Q4_0, "q4_0", 32, sizeof(fc_block_q4_0), true },
        { FC_DTYPE_Q4_1, "q4_1", 32, sizeof(fc_block_q4_1), true },
        { FC_DTYPE_Q5_0, "q5_0", 32, sizeof(fc_block_q5_0), true },
        { FC_DTYPE_Q5_1, "q5_1", 32, sizeof(fc_block_q5_1), true },
        { FC_DTYPE_Q8_0, "q8_0", 32, sizeof(fc_block_q8_0), true },
        { FC_DTYPE_Q8_1, "q8_1", 32, sizeof(fc_block_q8_1), false },
        { FC_DTYPE_Q2_K, "q2_K", 256, sizeof(fc_block_q2_K), true },
        { FC_DTYPE_Q3_K, "q3_K", 256, sizeof(fc_block_q3_K), true },
        { FC_DTYPE_Q4_K, "q4_K", 256, sizeof(fc_block_q4_K), true },
        { FC_DTYPE_Q5_K, "q5_K", 256, sizeof(fc_block_q5_K), true },
        { FC_DTYPE_Q6_K, "q6_K", 256, sizeof(fc_block_q6_K), true },
        { FC_DTYPE_Q8_K, "q8_K", 256, sizeof(fc_block_q8_K), false },
        { FC_DTYPE_I8, "i8", 1, 1, false },      { FC_DTYPE_I16, "i16", 1, 2, false },
        { FC_DTYPE_I32, "i32", 1, 4, false },    { FC_DTYPE_I64, "i64", 1, 8, false },
        { FC_DTYPE_F64, "f64", 1, 8, false },    { FC_DTYPE_BF16, "bf16", 1, 2, true },
    };
    /* GGUF block byte counts, independent of the structs */
    static const size_t gguf_bytes[] = { 4, 2, 18, 20, 22, 24, 34, 36, 84, 110, 144, 176, 210, 292,
                                         1, 2, 4, 8, 8, 2 };
    int bad = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int t = want[i].t;
        bool ok = strcmp(fc_dtype_name(t), want[i].name) == 0 && fc_dtype_block_size(t) == want[i].bs &&
                  fc_dtype_type_size(t) == want[i].ts && want[i].ts == gguf_bytes[i] &&
                  fc_dtype_supported(t) == want[i].sup && fc_dtype_from_name(want[i].name) == t &&
                  fc_dtype_row_size(t, 4096) == 4096 / want[i].bs * want[i].ts &&
                  fc_dtype_row_size(t, 0) == 0;
        if (want[i].bs > 1) ok = ok && fc_dtype_row_size(t, want[i].bs + 1) == 0;
        if (!ok) { bad++; printf("     type %d (%s) wrong\n", t, want[i].name); }
    }
    check(bad == 0, "type table: names, block sizes, type sizes (= GGUF bytes = sizeof), row sizes, supported, %zu types",
          sizeof(want) / sizeof(want[0]));
    check(fc_dtype_from_name("Q4_K") == FC_DTYPE_Q4_K && fc_dtype_from_name("q4_k") == FC_DTYPE_Q4_K &&
              fc_dtype_from_name("BF16") == FC_DTYPE_BF16 && fc_dtype_from_name("F32") == FC_DTYPE_F32,
          "fc_dtype_from_name is case-insensitive");
    check(fc_dtype_from_name("q4") == -1 && fc_dtype_from_name("q4_0x") == -1 && fc_dtype_from_name("") == -1 &&
              fc_dtype_from_name(NULL) == -1 && fc_dtype_from_name("?") == -1,
          "fc_dtype_from_name rejects unknown names");
    int unk[] = { -1, 4, 5, 16, 23, 29, 31, 39, 44, 1000 };
    bool ok = true;
    for (size_t i = 0; i < sizeof(unk) / sizeof(unk[0]); i++)
        ok = ok && strcmp(fc_dtype_name(unk[i]), "?") == 0 && fc_dtype_block_size(unk[i]) == 0 &&
             fc_dtype_type_size(unk[i]) == 0 && fc_dtype_row_size(unk[i], 256) == 0 && !fc_dtype_supported(unk[i]);
    check(ok, "unknown type ids: name \"?\", sizes 0, not supported");
    /* our own ids (a16, the packed layouts) are never file types */
    check(fc_dtype_in_files(FC_DTYPE_Q4_0) && fc_dtype_in_files(FC_DTYPE_BF16) && !fc_dtype_in_files(FC_DTYPE_A16) &&
              !fc_dtype_in_files(FC_DTYPE_Q4_0_X8) && !fc_dtype_in_files(FC_DTYPE_Q8_0_X8) && !fc_dtype_in_files(4) &&
              !fc_dtype_in_files(-1) && !fc_dtype_in_files(1000),
          "fc_dtype_in_files: GGML ids only");
    check(fc_dtype_row_size(FC_DTYPE_Q4_K, 512) == 288 && fc_dtype_row_size(FC_DTYPE_Q8_0, 4096) == 4352 &&
              fc_dtype_row_size(FC_DTYPE_F16, 7) == 14 && fc_dtype_row_size(FC_DTYPE_Q6_K, 255) == 0 &&
              fc_dtype_row_size(FC_DTYPE_F32, -4) == 0,
          "row sizes: q4_K 512 -> 288, q8_0 4096 -> 4352, f16 7 -> 14, q6_K 255 -> 0, negative -> 0");
    float dummy[64] = { 0 };
    uint8_t buf[512] = { 0 };
    check(!fc_dequantize_row_ref(FC_DTYPE_I32, buf, dummy, 4) && !fc_dequantize_row_ref(77, buf, dummy, 4) &&
              !fc_dequantize_row_ref(FC_DTYPE_Q4_0, buf, dummy, 16) &&
              !fc_quantize_row_ref(FC_DTYPE_I8, dummy, buf, 4) && !fc_quantize_row_ref(FC_DTYPE_Q4_K, dummy, buf, 64),
          "(de)quantize reject unsupported types and n not a multiple of the block size");
}

/* ---- f16 ---- */

/* Exact value of a finite half from its fields. */
static double f16_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

/* Nearest half to f by binary search over the exact values (ties to even). */
static uint16_t f16_oracle(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (a >= 65520.0) return sign | 0x7c00;
    int lo = 0, hi = 0x7bff;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (f16_value((uint16_t)mid) <= a) lo = mid; else hi = mid - 1;
    }
    double below = f16_value((uint16_t)lo), above = lo == 0x7bff ? 65536.0 : f16_value((uint16_t)(lo + 1));
    int h = lo;
    if (a - below > above - a || (a - below == above - a && (lo & 1))) h = lo + 1;
    return (uint16_t)(sign | h);
}

static void test_f16(void)
{
    int bad_val = 0, bad_rt = 0, bad_hw = 0, bad_hw_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float s = fc_f16_to_f32_scalar((fc_f16)h);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        uint32_t want;
        if ((h & 0x7c00) == 0x7c00) /* inf / NaN, payload shifted into place */
            want = (uint32_t)(h & 0x8000) << 16 | 0x7f800000u | (uint32_t)(h & 0x3ff) << 13;
        else
            want = fbits((float)f16_value((uint16_t)h));
        if (fbits(s) != want) { if (bad_val++ < 3) printf("     f16 %04x -> %08x, want %08x\n", h, fbits(s), want); }
        /* round trip: exact, except that a NaN comes back quiet */
        uint16_t back = fc_f32_to_f16_scalar(s);
        if (back != (nan ? (h | 0x200) : h)) { if (bad_rt++ < 3) printf("     f16 %04x -> %04x\n", h, back); }
        float p = fc_f16_to_f32((fc_f16)h);
        bool same = nan ? isnan(p) && (fbits(p) | 0x400000) == (fbits(s) | 0x400000) : fbits(p) == fbits(s);
        if (!same) bad_hw++;
        if (fc_f32_to_f16(p) != (nan ? (h | 0x200) : h)) bad_hw_rt++;
    }
    check(bad_val == 0, "f16 -> f32 scalar: all 65536 halfs exact (subnormals, inf, NaN payloads)");
    check(bad_rt == 0, "f16 -> f32 -> f16 scalar: all 65536 halfs round-trip (NaN: quiet bit set)");
    check(bad_hw == 0 && bad_hw_rt == 0,
          "f16 public path (%s) agrees with the scalar path on all halfs and round-trips",
#if defined(__F16C__)
          "F16C"
#else
          "scalar"
#endif
    );

    /* Every rounding decision point: between halfs a < b (b = 2^16 past the
     * largest), the midpoint goes to the even code, one f32 ulp either side
     * to that side. Checked for both signs, scalar and public path. */
    int bad_mid = 0;
    for (uint32_t h = 0; h <= 0x7bff; h++) {
        float a = (float)f16_value((uint16_t)h);
        float b = h == 0x7bff ? 65536.0f : (float)f16_value((uint16_t)(h + 1));
        float m = (a + b) / 2; /* exact: 12 significant bits */
        uint16_t tie = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        struct { float x; uint16_t want; } cases[] = {
            { a, (uint16_t)h }, { m, tie }, { nextafterf(m, 0.0f), (uint16_t)h },
            { nextafterf(m, INFINITY), (uint16_t)(h + 1) },
        };
        for (int c = 0; c < 4; c++)
            for (int sgn = 0; sgn < 2; sgn++) {
                float x = sgn ? -cases[c].x : cases[c].x;
                uint16_t want = (uint16_t)(cases[c].want | (sgn ? 0x8000 : 0));
                if (fc_f32_to_f16_scalar(x) != want || fc_f32_to_f16(x) != want) {
                    if (bad_mid++ < 3) printf("     f32 %a -> %04x/%04x, want %04x\n", x, fc_f32_to_f16_scalar(x), fc_f32_to_f16(x), want);
                }
            }
    }
    check(bad_mid == 0, "f32 -> f16: all %d rounding boundaries (ties to even, +-1 ulp, both signs, both paths)", 0x7c00 * 8);

    struct { float x; uint16_t want; const char *what; } sp[] = {
        { INFINITY, 0x7c00, "inf" }, { -INFINITY, 0xfc00, "-inf" }, { 65504.0f, 0x7bff, "65504" },
        { 65519.996f, 0x7bff, "65519.996" }, { 65520.0f, 0x7c00, "65520" }, { FLT_MAX, 0x7c00, "FLT_MAX" },
        { -1e30f, 0xfc00, "-1e30" }, { 0.0f, 0x0000, "0" }, { -0.0f, 0x8000, "-0" },
        { 1e-30f, 0x0000, "1e-30" }, { -1e-30f, 0x8000, "-1e-30" }, { FLT_TRUE_MIN, 0x0000, "min subnormal f32" },
        { 0x1p-25f, 0x0000, "2^-25 (tie to 0)" }, { 0x1.000002p-25f, 0x0001, "2^-25 + ulp" },
        { 0x1.8p-24f, 0x0002, "1.5 * 2^-24 (tie to 2)" }, { 0x1p-24f, 0x0001, "2^-24" },
        { 0x1.ff8p-15f, 0x03ff, "largest subnormal" }, { 0x1.ffcp-15f, 0x0400, "tie above largest subnormal (to even 0x400)" },
        { 1.0f, 0x3c00, "1" }, { 1.00048828125f, 0x3c00, "1 + 2^-11 (tie to 1)" },
        { 1.00146484375f, 0x3c02, "1 + 3*2^-11 (tie to even 0x3c02)" }, { 0.1f, 0x2e66, "0.1" },
    };
    int bad_sp = 0;
    for (size_t i = 0; i < sizeof(sp) / sizeof(sp[0]); i++)
        if (fc_f32_to_f16_scalar(sp[i].x) != sp[i].want || fc_f32_to_f16(sp[i].x) != sp[i].want) {
            bad_sp++;
            printf("     %s: %04x / %04x, want %04x\n", sp[i].what, fc_f32_to_f16_scalar(sp[i].x), fc_f32_to_f16(sp[i].x), sp[i].want);
        }
    check(bad_sp == 0, "f32 -> f16: %zu tricky values (overflow at 65520, subnormal ties, signed zero)", sizeof(sp) / sizeof(sp[0]));

    int bad_nan = 0;
    uint32_t nans[] = { 0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fbfffffu, 0xff812345u, 0x7fffe000u };
    for (size_t i = 0; i < sizeof(nans) / sizeof(nans[0]); i++) {
        uint16_t a = fc_f32_to_f16_scalar(bitsf(nans[i])), b = fc_f32_to_f16(bitsf(nans[i]));
        uint16_t want = (uint16_t)((nans[i] >> 16 & 0x8000) | 0x7e00 | ((nans[i] & 0x7fffff) >> 13));
        if (a != want || b != want) bad_nan++;
    }
    check(bad_nan == 0, "f32 NaN -> f16 quiet NaN with sign and top payload bits (never inf)");

    /* Stride through all 2^32 f32 patterns (about 1M samples). */
    int bad_sweep = 0, n = 0;
    for (uint64_t u = 12345; u < (1ull << 32); u += 4093) {
        float x = bitsf((uint32_t)u);
        if (isnan(x)) continue;
        n++;
        uint16_t want = f16_oracle(x);
        if (fc_f32_to_f16_scalar(x) != want || fc_f32_to_f16(x) != want) {
            if (bad_sweep++ < 3) printf("     f32 %08x -> %04x/%04x, want %04x\n", (uint32_t)u, fc_f32_to_f16_scalar(x), fc_f32_to_f16(x), want);
        }
    }
    check(bad_sweep == 0, "f32 -> f16: %d strided f32 bit patterns match a nearest-half search", n);
}

/* ---- bf16 ---- */

static double bf16_value(uint16_t h)
{
    int e = (h >> 7) & 255, m = h & 127;
    double v = e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
    return (h & 0x8000) ? -v : v;
}

static uint16_t bf16_oracle(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    int lo = 0, hi = 0x7f7f;
    if (isinf(f)) return sign | 0x7f80;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (bf16_value((uint16_t)mid) <= a) lo = mid; else hi = mid - 1;
    }
    double below = bf16_value((uint16_t)lo), above = lo == 0x7f7f ? ldexp(1, 128) : bf16_value((uint16_t)(lo + 1));
    int h = lo;
    if (a - below > above - a || (a - below == above - a && (lo & 1))) h = lo + 1;
    return (uint16_t)(sign | h);
}

static void test_bf16(void)
{
    int bad_val = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fc_bf16_to_f32((fc_bf16)h);
        bool special = (h & 0x7f80) == 0x7f80, nan = special && (h & 0x7f);
        uint32_t want = special ? (uint32_t)h << 16 : fbits((float)bf16_value((uint16_t)h));
        if (fbits(f) != want) bad_val++;
        if (fc_f32_to_bf16(f) != (nan ? (h | 0x40) : h)) bad_rt++;
    }
    check(bad_val == 0, "bf16 -> f32: all 65536 values exact");
    check(bad_rt == 0, "bf16 -> f32 -> bf16: all 65536 round-trip (NaN: quiet bit set)");

    int bad_mid = 0;
    for (uint32_t h = 0; h <= 0x7f7f; h++) {
        float a = (float)bf16_value((uint16_t)h);
        double bd = h == 0x7f7f ? ldexp(1, 128) : bf16_value((uint16_t)(h + 1));
        /* the midpoint of the top pair is not below FLT_MAX: use bits */
        float m = h == 0x7f7f ? bitsf(0x7f7f8000u) : (float)((a + bd) / 2);
        uint16_t tie = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        struct { float x; uint16_t want; } cases[] = {
            { a, (uint16_t)h }, { m, tie }, { nextafterf(m, 0.0f), (uint16_t)h },
            { nextafterf(m, INFINITY), (uint16_t)(h + 1) },
        };
        for (int c = 0; c < 4; c++)
            for (int sgn = 0; sgn < 2; sgn++) {
                float x = sgn ? -cases[c].x : cases[c].x;
                uint16_t want = (uint16_t)(cases[c].want | (sgn ? 0x8000 : 0));
                if (fc_f32_to_bf16(x) != want) {
                    if (bad_mid++ < 3) printf("     f32 %a -> %04x, want %04x\n", x, fc_f32_to_bf16(x), want);
                }
            }
    }
    check(bad_mid == 0, "f32 -> bf16: all %d rounding boundaries (ties to even, +-1 ulp, both signs)", 0x7f80 * 8);

    int bad_sweep = 0, n = 0;
    for (uint64_t u = 777; u < (1ull << 32); u += 4093) {
        float x = bitsf((uint32_t)u);
        if (isnan(x)) {
            uint16_t b = fc_f32_to_bf16(x);
            if ((b & 0x7f80) != 0x7f80 || !(b & 0x40) || (b >> 15) != (uint32_t)u >> 31) bad_sweep++;
            continue;
        }
        n++;
        if (fc_f32_to_bf16(x) != bf16_oracle(x)) {
            if (bad_sweep++ < 3) printf("     f32 %08x -> %04x, want %04x\n", (uint32_t)u, fc_f32_to_bf16(x), bf16_oracle(x));
        }
    }
    check(bad_sweep == 0, "f32 -> bf16: %d strided f32 bit patterns match a nearest-bf16 search; NaNs stay quiet NaNs", n);
}

/* ---- golden data from gguf-py ---- */

static const char *data_dir = "tests/data/quant";

static void *read_file(const char *name, size_t *size)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", data_dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) { printf("     cannot open %s\n", path); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return NULL; }
    fclose(f);
    ((char *)buf)[n] = 0;
    *size = (size_t)n;
    return buf;
}

static void test_golden_dequant(const cJSON *index)
{
    const cJSON *list = cJSON_GetObjectItem(index, "dequant");
    int n_types = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        const char *tname = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
        int t = fc_dtype_from_name(tname);
        int64_t n = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "n"));
        size_t raw_size = 0, f32_size = 0;
        uint8_t *raw = read_file(cJSON_GetStringValue(cJSON_GetObjectItem(e, "raw")), &raw_size);
        float *want = read_file(cJSON_GetStringValue(cJSON_GetObjectItem(e, "f32")), &f32_size);
        bool ok = raw && want && t >= 0 && raw_size == fc_dtype_row_size(t, n) && f32_size == (size_t)n * 4;
        float *got = calloc((size_t)n, sizeof(float));
        int64_t mism = 0, first = -1;
        if (ok && fc_dequantize_row_ref(t, raw, got, n)) {
            for (int64_t i = 0; i < n; i++)
                if (fbits(got[i]) != fbits(want[i])) { if (first < 0) first = i; mism++; }
        } else {
            ok = false;
        }
        if (first >= 0) printf("     %s: value %lld = %.9g (%08x), gguf-py %.9g (%08x)\n", tname, (long long)first,
                               got[first], fbits(got[first]), want[first], fbits(want[first]));
        check(ok && mism == 0, "dequantize %-5s: %lld values from %zu random-block bytes equal gguf-py bit for bit (%lld differ)",
              tname ? tname : "?", (long long)n, raw_size, (long long)mism);
        free(raw); free(want); free(got);
        n_types++;
    }
    check(n_types >= 12, "golden dequant data covers %d types (f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K..q6_K)", n_types);
}

static void test_golden_quant(const cJSON *index)
{
    const cJSON *q = cJSON_GetObjectItem(index, "quant");
    size_t in_size = 0;
    float *x = read_file(cJSON_GetStringValue(cJSON_GetObjectItem(q, "input")), &in_size);
    int64_t n = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(q, "n"));
    if (!check(x && in_size == (size_t)n * 4 && n % FC_QK_K == 0, "golden quantize input: %lld f32 values", (long long)n)) {
        free(x);
        return;
    }
    int n_types = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(q, "types")) {
        const char *tname = cJSON_GetStringValue(cJSON_GetObjectItem(e, "type"));
        const char *source = cJSON_GetStringValue(cJSON_GetObjectItem(e, "source"));
        int t = fc_dtype_from_name(tname);
        size_t size = 0;
        uint8_t *want = read_file(cJSON_GetStringValue(cJSON_GetObjectItem(e, "raw")), &size);
        size_t row = fc_dtype_row_size(t, n);
        uint8_t *got = calloc(row ? row : 1, 1);
        bool ok = want && row == size && fc_quantize_row_ref(t, x, got, n);
        size_t mism = 0, first = (size_t)-1;
        for (size_t i = 0; ok && i < row; i++)
            if (got[i] != want[i]) { if (first == (size_t)-1) first = i; mism++; }
        if (mism) {
            size_t ts = fc_dtype_type_size(t);
            printf("     %s: first difference at byte %zu (block %zu, offset %zu): %02x vs %s %02x\n", tname, first,
                   first / ts, first % ts, got[first], source ? source : "golden", want[first]);
        }
        check(ok && mism == 0, "quantize %-5s: %zu bytes equal %s's reference quantizer byte for byte (%zu differ)",
              tname ? tname : "?", row, source ? source : "golden", mism);
        free(want); free(got);
        n_types++;
    }
    /* 7 from gguf-py; 7 more (q8_1 q2_K..q6_K q8_K) when the data was made
     * with --ggml-src, i.e. by ggml's own quantize_row_*_ref */
    check(n_types >= 7, "golden quantize data covers %d types", n_types);
    free(x);
}

/* q8_1 and q8_K are not in gguf-py: check them against their definitions on
 * random blocks (value = d * q with d from the f16 / f32 field). */
static void test_q8_formats(void)
{
    enum { NB = 16 };
    fc_block_q8_1 b1[NB];
    fc_block_q8_0 b0[NB];
    fc_block_q8_K bk[2];
    for (int i = 0; i < NB; i++) {
        for (int j = 0; j < FC_QK; j++) b1[i].qs[j] = b0[i].qs[j] = (int8_t)(rng_u64() & 0xff);
        b1[i].d = b0[i].d = fc_f32_to_f16((float)(rng_gauss() * 0.01));
        b1[i].s = (fc_f16)(rng_u64() & 0x3fff); /* ignored by dequantization */
    }
    float y1[NB * FC_QK], y0[NB * FC_QK];
    bool ok = fc_dequantize_row_ref(FC_DTYPE_Q8_1, b1, y1, NB * FC_QK) && fc_dequantize_row_ref(FC_DTYPE_Q8_0, b0, y0, NB * FC_QK);
    int bad = 0;
    for (int i = 0; i < NB * FC_QK; i++) {
        float want = b1[i / FC_QK].qs[i % FC_QK] * fc_f16_to_f32(b1[i / FC_QK].d);
        if (fbits(y1[i]) != fbits(want) || fbits(y0[i]) != fbits(want)) bad++;
    }
    check(ok && bad == 0, "dequantize q8_1: d * qs exactly (as q8_0 of the same bytes); s ignored");

    for (int i = 0; i < 2; i++) {
        bk[i].d = (float)(rng_gauss() * 1e-3);
        for (int j = 0; j < FC_QK_K; j++) bk[i].qs[j] = (int8_t)(rng_u64() & 0xff);
        for (int j = 0; j < FC_QK_K / 16; j++) bk[i].bsums[j] = (int16_t)rng_u64();
    }
    float yk[2 * FC_QK_K];
    ok = fc_dequantize_row_ref(FC_DTYPE_Q8_K, bk, yk, 2 * FC_QK_K);
    bad = 0;
    for (int i = 0; i < 2 * FC_QK_K; i++)
        if (fbits(yk[i]) != fbits(bk[i / FC_QK_K].d * bk[i / FC_QK_K].qs[i % FC_QK_K])) bad++;
    check(ok && bad == 0, "dequantize q8_K: f32 d * qs exactly");
}

/* ---- round-trip error bounds ---- */

/* Test rows: gaussian, gaussian with outliers, uniform positive, heavy
 * tailed (g^3), tiny (f16 subnormal scales), large, and zero runs (one
 * whole zero super-block, then zero 64-runs). */
enum { RT_N = 8 * FC_QK_K };
static void make_row(int kind, float *x)
{
    for (int i = 0; i < RT_N; i++) {
        double g = rng_gauss();
        switch (kind) {
        case 0: x[i] = (float)g; break;
        case 1: x[i] = (float)(g * 0.02 * (rng_unif() < 0.01 ? 50 : 1)); break;
        case 2: x[i] = (float)(0.5 + 2.5 * rng_unif()); break;
        case 3: x[i] = (float)(g * g * g); break;
        case 4: x[i] = (float)(g * 1e-6); break;
        case 5: x[i] = (float)(g * 3000); break;
        default: x[i] = i < FC_QK_K || (i / 64) % 3 == 0 ? 0.0f : (float)g; break; /* zero runs */
        }
    }
}
static const char *row_kind_name[] = { "gaussian", "outliers", "uniform>0", "g^3", "tiny", "large", "zero runs" };
#define N_KINDS 7

static float h2f(fc_f16 h) { return fc_f16_to_f32(h); }

/* Largest-magnitude value of x[0..n) with its sign (first of ties). */
static float signed_absmax(const float *x, int n)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) if (fabsf(x[i]) > amax) { amax = fabsf(x[i]); max = x[i]; }
    return max;
}

/*
 * Bounds for the 32-value types, per block, with d the exact f32 step the
 * quantizer derives from the block and dh its stored f16:
 *   q8_0, q8_1:  |err| <= d/2 + 127 |dh - d|        (d = amax/127)
 *   q4_0 / q5_0: |err| <= d/2 + 8|dh-d| / 16|dh-d|  (d = max/-8 or /-16),
 *                except values beyond +7.5 d / +15.5 d (only reachable by
 *                values of the opposite sign to max), which clamp: <= |d|
 *   q4_1 / q5_1: |err| <= d/2 + 15|dh - d| / 31|dh-d| + |mh - min|
 *                (d = (max - min)/15 or /31)
 * each plus 1e-5 relative slack for f32 rounding of x*(1/d) and d*q + m.
 */
static bool bound_32(int t, const float *x, const float *y, const uint8_t *blk, double *worst)
{
    float amax = 0, mn = x[0], mx = x[0];
    for (int i = 0; i < FC_QK; i++) {
        amax = fmaxf(amax, fabsf(x[i]));
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    double slack = 1e-5 * fmax(amax, 1e-30) + 1e-30;
    for (int i = 0; i < FC_QK; i++) {
        double err = fabs((double)y[i] - x[i]), bound;
        if (t == FC_DTYPE_Q8_0 || t == FC_DTYPE_Q8_1) {
            double d = amax / 127.0f, dh = h2f(((const fc_block_q8_0 *)blk)->d);
            bound = d / 2 + 127 * fabs(dh - d);
        } else if (t == FC_DTYPE_Q4_0 || t == FC_DTYPE_Q5_0) {
            double lev = t == FC_DTYPE_Q4_0 ? 8 : 16;
            double d = signed_absmax(x, FC_QK) / -lev, dh = h2f(*(const fc_f16 *)blk);
            bool clamped = d != 0 && x[i] / d > lev - 0.5;
            bound = (clamped ? fabs(d) : fabs(d) / 2) + lev * fabs(dh - d);
        } else {
            double lev = t == FC_DTYPE_Q4_1 ? 15 : 31;
            double d = (mx - mn) / (float)lev;
            double dh = h2f(((const fc_f16 *)blk)[0]), mh = h2f(((const fc_f16 *)blk)[1]);
            bound = d / 2 + lev * fabs(dh - d) + fabs(mh - mn);
        }
        bound += slack;
        if (bound > 0 && err / bound > *worst) *worst = err / bound;
        if (err > bound) return false;
    }
    return true;
}

/* Scale and offset of K sub-block g as decoded by the layout (written from
 * the format description, independently of quant_ref.c): value = s*q - m,
 * with q in [qlo, qhi]. */
static void k_sub(int t, const uint8_t *blk, int g, double *s, double *m, int *qlo, int *qhi)
{
    switch (t) {
    case FC_DTYPE_Q2_K: {
        const fc_block_q2_K *b = (const void *)blk;
        *s = h2f(b->d) * (b->scales[g] & 15); *m = h2f(b->dmin) * (b->scales[g] >> 4); *qlo = 0; *qhi = 3;
        break;
    }
    case FC_DTYPE_Q3_K: {
        const fc_block_q3_K *b = (const void *)blk;
        int sc = ((b->scales[g % 8] >> (4 * (g / 8))) & 15) | ((b->scales[8 + g % 4] >> (2 * (g / 4))) & 3) << 4;
        *s = h2f(b->d) * (sc - 32); *m = 0; *qlo = -4; *qhi = 3;
        break;
    }
    case FC_DTYPE_Q4_K: case FC_DTYPE_Q5_K: {
        const fc_block_q4_K *b = (const void *)blk; /* q5_K starts the same way */
        int sc, mm;
        if (g < 4) { sc = b->scales[g] & 63; mm = b->scales[g + 4] & 63; }
        else { sc = (b->scales[g + 4] & 15) | (b->scales[g - 4] >> 6) << 4; mm = (b->scales[g + 4] >> 4) | (b->scales[g] >> 6) << 4; }
        *s = h2f(b->d) * sc; *m = h2f(b->dmin) * mm; *qlo = 0; *qhi = t == FC_DTYPE_Q4_K ? 15 : 31;
        break;
    }
    case FC_DTYPE_Q6_K: {
        const fc_block_q6_K *b = (const void *)blk;
        *s = h2f(b->d) * b->scales[g]; *m = 0; *qlo = -32; *qhi = 31;
        break;
    }
    default: { /* q8_K */
        const fc_block_q8_K *b = (const void *)blk;
        *s = b->d; *m = 0; *qlo = -128; *qhi = 127;
        break;
    }
    }
}

/*
 * K types: every value was re-rounded against the scale it is decoded with,
 * so within each sub-block (16 values for q2_K q3_K q6_K, 32 for q4_K q5_K,
 * the whole 256 for q8_K):
 *   |err| <= |s|/2 when x lies inside the sub-block's representable range
 *   [s*qlo - m, s*qhi - m] widened by |s|/2, and otherwise y is the nearer
 *   end of that range;
 * plus 1e-5 relative slack. Sub-blocks whose scale decodes to 0 keep the
 * search's codes and all decode to -m; they are only counted.
 */
static bool bound_K(int t, const float *x, const float *y, const uint8_t *blk, double *worst, int *n_zero_sub)
{
    int sub = (t == FC_DTYPE_Q4_K || t == FC_DTYPE_Q5_K) ? 32 : t == FC_DTYPE_Q8_K ? 256 : 16;
    for (int g = 0; g < FC_QK_K / sub; g++) {
        double s, m;
        int qlo, qhi;
        k_sub(t, blk, g, &s, &m, &qlo, &qhi);
        if (s == 0) { (*n_zero_sub)++; continue; }
        double lo = fmin(s * qlo, s * qhi) - m, hi = fmax(s * qlo, s * qhi) - m, half = fabs(s) / 2;
        double amax = 0;
        for (int i = 0; i < sub; i++) amax = fmax(amax, fabs(x[g * sub + i]));
        double slack = 1e-5 * (amax + fabs(m) + fabs(s) * (qhi - qlo)) + 1e-30;
        for (int i = g * sub; i < (g + 1) * sub; i++) {
            double err;
            if (x[i] < lo - half) err = fabs(y[i] - lo);
            else if (x[i] > hi + half) err = fabs(y[i] - hi);
            else err = fabs((double)y[i] - x[i]);
            double bound = (x[i] < lo - half || x[i] > hi + half) ? slack : half + slack;
            if (err / (half + slack) > *worst) *worst = err / (half + slack);
            if (err > bound) {
                printf("     sub-block %d value %d: x %.9g y %.9g range [%g, %g] step %g\n", g, i, x[i], y[i], lo, hi, s);
                return false;
            }
        }
    }
    return true;
}

static void test_round_trip(const float *golden_row, int64_t golden_n)
{
    static const int types[] = { FC_DTYPE_F32, FC_DTYPE_F16, FC_DTYPE_BF16, FC_DTYPE_Q8_0, FC_DTYPE_Q8_1,
                                 FC_DTYPE_Q4_0, FC_DTYPE_Q4_1, FC_DTYPE_Q5_0, FC_DTYPE_Q5_1, FC_DTYPE_Q2_K,
                                 FC_DTYPE_Q3_K, FC_DTYPE_Q4_K, FC_DTYPE_Q5_K, FC_DTYPE_Q6_K, FC_DTYPE_Q8_K };
    static float *rows[N_KINDS + 1];
    for (int k = 0; k < N_KINDS; k++) { rows[k] = malloc(RT_N * sizeof(float)); make_row(k, rows[k]); }
    rows[N_KINDS] = malloc(RT_N * sizeof(float));
    for (int i = 0; i < RT_N; i++) rows[N_KINDS][i] = golden_row && i < golden_n ? golden_row[i] : 0.0f;

    uint8_t *q = malloc(fc_dtype_row_size(FC_DTYPE_F32, RT_N));
    float *y = malloc(RT_N * sizeof(float));
    for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
        int t = types[ti];
        size_t ts = fc_dtype_type_size(t);
        int bs = fc_dtype_block_size(t);
        double worst = 0, rel_rmse_gauss = 0;
        int n_zero_sub = 0;
        bool ok = true;
        for (int k = 0; k <= N_KINDS && ok; k++) {
            const float *x = rows[k];
            memset(q, 0xAA, fc_dtype_row_size(t, RT_N)); /* garbage: every byte must be written */
            ok = fc_quantize_row_ref(t, x, q, RT_N) && fc_dequantize_row_ref(t, q, y, RT_N);
            double se = 0, sx = 0;
            for (int i = 0; ok && i < RT_N; i++) {
                se += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
                sx += (double)x[i] * x[i];
                double err = fabs((double)y[i] - x[i]);
                if (t == FC_DTYPE_F32) ok = fbits(y[i]) == fbits(x[i]);
                else if (t == FC_DTYPE_F16) ok = err <= fmax(fabs(x[i]) * 0x1p-11, 0x1p-25);
                else if (t == FC_DTYPE_BF16) ok = err <= fabs(x[i]) * 0x1p-8;
                if (!ok) printf("     %s %s value %d: x %.9g y %.9g\n", fc_dtype_name(t), k < N_KINDS ? row_kind_name[k] : "golden", i, x[i], y[i]);
            }
            if (k == 0) rel_rmse_gauss = sqrt(se / sx);
            for (int b = 0; ok && bs > 1 && b < RT_N / bs; b++) {
                const uint8_t *blk = q + (size_t)b * ts;
                if (bs == FC_QK) ok = bound_32(t, x + b * bs, y + b * bs, blk, &worst);
                else ok = bound_K(t, x + b * bs, y + b * bs, blk, &worst, &n_zero_sub);
                if (!ok) printf("     %s %s block %d out of bound\n", fc_dtype_name(t), k < N_KINDS ? row_kind_name[k] : "golden", b);
            }
            if (ok && t == FC_DTYPE_Q8_1) { /* s = f16(d * sum(qs)) with the f32 d */
                for (int b = 0; b < RT_N / bs && ok; b++) {
                    const fc_block_q8_1 *blk = (const void *)(q + (size_t)b * ts);
                    float amax = 0;
                    int sum = 0;
                    for (int i = 0; i < FC_QK; i++) { amax = fmaxf(amax, fabsf(x[b * bs + i])); sum += blk->qs[i]; }
                    ok = blk->s == fc_f32_to_f16(sum * (amax / 127));
                    if (!ok) printf("     q8_1 block %d: s %04x, want %04x\n", b, blk->s, fc_f32_to_f16(sum * (amax / 127)));
                }
            }
            if (ok && t == FC_DTYPE_Q8_K) { /* bsums are the group sums */
                for (int b = 0; b < RT_N / bs && ok; b++) {
                    const fc_block_q8_K *blk = (const void *)(q + (size_t)b * ts);
                    for (int g = 0; g < FC_QK_K / 16 && ok; g++) {
                        int sum = 0;
                        for (int i = 0; i < 16; i++) sum += blk->qs[16 * g + i];
                        ok = blk->bsums[g] == sum;
                    }
                    if (!ok) printf("     q8_K block %d: bsums wrong\n", b);
                }
            }
        }
        const char *bound_txt =
            t == FC_DTYPE_F32 ? "exact" :
            t == FC_DTYPE_F16 ? "|err| <= max(2^-11 |x|, 2^-25)" :
            t == FC_DTYPE_BF16 ? "|err| <= 2^-8 |x|" :
            bs == FC_QK ? "per block: d/2 (|d| where clamped) + f16 rounding of d, m" :
                          "per sub-block: step/2 inside its range, else the range end";
        check(ok, "round trip %-5s on %d rows x %d values: %s (worst err/bound %.3f, rel. RMSE gaussian %.4f%s)",
              fc_dtype_name(t), N_KINDS + 1, RT_N, bound_txt, worst, rel_rmse_gauss,
              n_zero_sub ? ", some zero sub-scales" : "");
        /* quality: a K quantizer with a broken scale search would still meet
         * the per-sub-block bound, so also bound the gaussian relative RMSE.
         * Measured (this row, seed above): q2_K 0.310 q3_K 0.155 q4_K 0.074
         * q5_K 0.038 q6_K 0.019 q8_K 0.0069 q4_0 0.089 q4_1 0.080 q5_0 0.045
         * q5_1 0.039 q8_0 0.0056; ceilings leave 15-35% headroom. */
        float ceiling = t == FC_DTYPE_Q2_K ? 0.35f : t == FC_DTYPE_Q3_K ? 0.20f : t == FC_DTYPE_Q4_K ? 0.10f :
                        t == FC_DTYPE_Q5_K ? 0.05f : t == FC_DTYPE_Q6_K ? 0.025f : t == FC_DTYPE_Q8_K ? 0.009f :
                        t == FC_DTYPE_Q4_0 ? 0.12f : t == FC_DTYPE_Q4_1 ? 0.10f : t == FC_DTYPE_Q5_0 ? 0.06f :
                        t == FC_DTYPE_Q5_1 ? 0.05f : t == FC_DTYPE_Q8_0 || t == FC_DTYPE_Q8_1 ? 0.006f : 0.005f;
        if (t != FC_DTYPE_F32)
            check(rel_rmse_gauss <= ceiling, "round trip %-5s gaussian relative RMSE %.4f <= %.3f", fc_dtype_name(t),
                  rel_rmse_gauss, ceiling);
    }
    free(q); free(y);
    for (int k = 0; k <= N_KINDS; k++) free(rows[k]);
}

int main(int argc, char **argv)
{
    if (argc > 1) data_dir = argv[1];
    test_type_table();
    test_f16();
    test_bf16();
    test_q8_formats();

    size_t size = 0;
    char *json = read_file("index.json", &size);
    cJSON *index = json ? cJSON_Parse(json) : NULL;
    float *golden_row = NULL;
    int64_t golden_n = 0;
    if (check(index != NULL, "golden index %s/index.json parsed", data_dir)) {
        test_golden_dequant(index);
        test_golden_quant(index);
        const cJSON *q = cJSON_GetObjectItem(index, "quant");
        size_t n = 0;
        golden_row = read_file(cJSON_GetStringValue(cJSON_GetObjectItem(q, "input")), &n);
        golden_n = (int64_t)(n / 4);
    }
    test_round_trip(golden_row, golden_n);
    cJSON_Delete(index);
    free(json);
    free(golden_row);

    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
