/*
 * test_gguf.c: the GGUF reader and writer (src/model/gguf.c) against files
 * written by the reference implementation, the `gguf` Python package
 * (tests/data/gguf/, made by tools/golden/make_gguf_fixtures.py, with the
 * expected values in expected.json).
 *
 *   1. fixtures: every key, type, value (raw bytes and typed getters) and
 *      tensor (shape, type, offset, bytes, decoded F32/F16 values) matches the
 *      JSON exactly (no tolerance: values are compared bit for bit);
 *   2. round trip: copying every kv and tensor through the writer yields a
 *      file that reads back identical and, for the v3 fixtures, is byte for
 *      byte the file the Python writer produced;
 *   3. the writer's setters rebuild all_types.gguf from the JSON alone, byte
 *      for byte; the result goes to $FC_GGUF_OUT when set (for
 *      tests/py/test_gguf_writer.py, which reads it with gguf.GGUFReader);
 *   4. truncation: every prefix shorter than the end of the last tensor's
 *      data is rejected, every longer one accepted;
 *   5. hand-corrupted files (bad magic, v1, hostile counts, misaligned or out
 *      of range data, unknown types, duplicates, deep nesting, ...) are
 *      rejected with a message that names the file and a byte offset;
 *   6. writer edge cases (replacement keeps position, invalid calls, I/O
 *      errors leave no temporary file behind).
 *
 * Data directory: $FC_GGUF_DATA, default tests/data/gguf (run from the repo
 * root, as scripts/run_tests.sh does). Exits non-zero if any check fails.
 */
#include "format/gguf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

static int n_checks, n_fail;

#define CHECK(cond, ...) do {                                  \
        n_checks++;                                            \
        bool ok_ = (cond);                                     \
        if (!ok_) n_fail++;                                    \
        printf("%s ", ok_ ? "ok  " : "FAIL");                  \
        printf(__VA_ARGS__);                                   \
        printf("\n");                                          \
    } while (0)

/* Checks inside loops over many values: only failures print. */
#define CHECK_QUIET(cond, ...) do {                            \
        n_checks++;                                            \
        if (!(cond)) {                                         \
            n_fail++;                                          \
            printf("FAIL ");                                   \
            printf(__VA_ARGS__);                               \
            printf("\n");                                      \
        }                                                      \
    } while (0)

/* ---- small helpers ---- */

struct buf { uint8_t *p; size_t n, cap; };

static void buf_put(struct buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = FC_MAX(b->cap * 2, b->n + n + 64);
        b->p = fc_xrealloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void buf_u8(struct buf *b, uint8_t v) { buf_put(b, &v, 1); }
static void buf_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 4);
}
static void buf_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}
static void buf_str(struct buf *b, const char *s)
{
    buf_u64(b, strlen(s));
    buf_put(b, s, strlen(s));
}

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct buf b = {0};
    uint8_t tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) buf_put(&b, tmp, k);
    fclose(f);
    *size = b.n;
    if (!b.p) b.p = fc_xmalloc(1);
    return b.p;
}

static bool write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Decodes a hex string into a new buffer; *n receives the byte count. */
static uint8_t *from_hex(const char *hex, size_t *n)
{
    size_t len = strlen(hex) / 2;
    uint8_t *out = fc_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    *n = len;
    return out;
}

static bool str_eq(fc_gguf_str s, const uint8_t *p, size_t n)
{
    return s.len == n && (n == 0 || memcmp(s.ptr, p, n) == 0);
}

static bool str_eq_c(fc_gguf_str s, const char *c) { return str_eq(s, (const uint8_t *)c, strlen(c)); }

static const char *type_names[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                   "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};

static int type_from_name(const char *s)
{
    for (size_t i = 0; i < FC_ARRAY_LEN(type_names); i++)
        if (strcmp(type_names[i], s) == 0) return (int)i;
    return -1;
}

static const char *data_dir(void)
{
    const char *d = getenv("FC_GGUF_DATA");
    return d ? d : "tests/data/gguf";
}

static char *data_path(const char *file)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir(), file);
    return path;
}

/* ---- expected values ---- */

/* The integer of a JSON value (64-bit types are decimal strings). */
static void json_int(const cJSON *v, int type, int64_t *s, uint64_t *u)
{
    if (cJSON_IsString(v)) {
        if (type == FC_GGUF_UINT64) *u = strtoull(v->valuestring, NULL, 10), *s = (int64_t)*u;
        else *s = strtoll(v->valuestring, NULL, 10), *u = (uint64_t)*s;
    } else if (cJSON_IsBool(v)) {
        *s = cJSON_IsTrue(v), *u = (uint64_t)*s;
    } else {
        *s = (int64_t)v->valuedouble, *u = (uint64_t)*s;
    }
}

/* Serializes an expected value as GGUF stores it (after the type field). */
static void ser_value(struct buf *b, int type, const cJSON *v)
{
    int64_t s = 0;
    uint64_t u = 0;
    switch (type) {
    case FC_GGUF_UINT8: case FC_GGUF_INT8: case FC_GGUF_BOOL:
        json_int(v, type, &s, &u); buf_u8(b, (uint8_t)u); break;
    case FC_GGUF_UINT16: case FC_GGUF_INT16: {
        json_int(v, type, &s, &u);
        uint8_t x[2] = {(uint8_t)u, (uint8_t)(u >> 8)};
        buf_put(b, x, 2);
        break;
    }
    case FC_GGUF_UINT32: case FC_GGUF_INT32: json_int(v, type, &s, &u); buf_u32(b, (uint32_t)u); break;
    case FC_GGUF_UINT64: case FC_GGUF_INT64: json_int(v, type, &s, &u); buf_u64(b, u); break;
    case FC_GGUF_FLOAT32: {
        float f = (float)v->valuedouble;
        uint32_t bits;
        memcpy(&bits, &f, 4);
        buf_u32(b, bits);
        break;
    }
    case FC_GGUF_FLOAT64: {
        double d = v->valuedouble;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        buf_u64(b, bits);
        break;
    }
    case FC_GGUF_STRING: {
        size_t n;
        uint8_t *p = from_hex(v->valuestring, &n);
        buf_u64(b, n);
        buf_put(b, p, n);
        free(p);
        break;
    }
    case FC_GGUF_ARRAY: {
        int et = type_from_name(cJSON_GetObjectItem(v, "elem_type")->valuestring);
        const cJSON *arr = cJSON_GetObjectItem(v, "value");
        buf_u32(b, (uint32_t)et);
        buf_u64(b, (uint64_t)cJSON_GetArraySize(arr));
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) ser_value(b, et, e);
        break;
    }
    }
}

/* ---- 1. fixtures against expected.json ---- */

static void check_scalar_getters(const fc_gguf *g, const char *key, int type, const cJSON *v)
{
    int64_t i64 = 12345;
    uint32_t u32 = 12345;
    float f = 12345.0f;
    bool bl;
    fc_gguf_str s;
    switch (type) {
    case FC_GGUF_FLOAT32:
        CHECK(fc_gguf_get_f32(g, key, &f) && f == (float)v->valuedouble, "%s: get_f32 = %.9g", key, f);
        CHECK(!fc_gguf_get_i64(g, key, &i64) && i64 == 12345, "%s: get_i64 refuses a float", key);
        break;
    case FC_GGUF_FLOAT64:
        CHECK(fc_gguf_get_f32(g, key, &f) && f == (float)v->valuedouble, "%s: get_f32 = %.9g", key, f);
        break;
    case FC_GGUF_BOOL:
        CHECK(fc_gguf_get_bool(g, key, &bl) && bl == cJSON_IsTrue(v), "%s: get_bool", key);
        CHECK(fc_gguf_get_i64(g, key, &i64) && i64 == cJSON_IsTrue(v), "%s: get_i64 of a bool", key);
        CHECK(!fc_gguf_get_f32(g, key, &f), "%s: get_f32 refuses a bool", key);
        break;
    case FC_GGUF_STRING: {
        size_t n;
        uint8_t *p = from_hex(v->valuestring, &n);
        CHECK(fc_gguf_get_str(g, key, &s) && str_eq(s, p, n), "%s: get_str (%zu bytes)", key, n);
        CHECK(!fc_gguf_get_i64(g, key, &i64) && !fc_gguf_get_bool(g, key, &bl), "%s: numeric getters refuse a string", key);
        free(p);
        break;
    }
    default: { /* integers */
        int64_t es;
        uint64_t eu;
        json_int(v, type, &es, &eu);
        bool neg = type != FC_GGUF_UINT64 && es < 0;
        bool fits_i64 = neg || eu <= (uint64_t)INT64_MAX;
        bool got = fc_gguf_get_i64(g, key, &i64);
        CHECK(got == fits_i64 && (!got || i64 == es), "%s: get_i64 %s", key, fits_i64 ? "= value" : "refuses (too large)");
        bool fits_u32 = !neg && eu <= UINT32_MAX;
        got = fc_gguf_get_u32(g, key, &u32);
        CHECK(got == fits_u32 && (!got || u32 == eu), "%s: get_u32 %s", key, fits_u32 ? "= value" : "refuses");
        float ef = neg ? (float)es : (float)eu;
        CHECK(fc_gguf_get_f32(g, key, &f) && f == ef, "%s: get_f32 of an integer", key);
        CHECK(!fc_gguf_get_str(g, key, &s) && !fc_gguf_get_bool(g, key, &bl), "%s: get_str/get_bool refuse an integer", key);
    }
    }
}

static void check_array(const fc_gguf *g, int64_t i, const char *key, const cJSON *v)
{
    int et = type_from_name(cJSON_GetObjectItem(v, "elem_type")->valuestring);
    const cJSON *arr = cJSON_GetObjectItem(v, "value");
    uint64_t n = (uint64_t)cJSON_GetArraySize(arr);
    enum fc_gguf_type got_et;
    uint64_t got_n;
    const void *data;
    bool ok = fc_gguf_get_arr(g, key, &got_et, &got_n, &data);
    CHECK(ok && (int)got_et == et && got_n == n, "%s: array of %" PRIu64 " %s", key, n, fc_gguf_type_name((enum fc_gguf_type)et));
    if (!ok) return;
    if (fc_gguf_type_size((enum fc_gguf_type)et)) {
        struct buf b = {0};
        const cJSON *e;
        cJSON_ArrayForEach(e, arr) ser_value(&b, et, e);
        CHECK(b.n == 0 || memcmp(data, b.p, b.n) == 0, "%s: element bytes", key);
        free(b.p);
    }
    if (et == FC_GGUF_STRING) {
        int bad = 0;
        for (uint64_t j = 0; j < n; j++) {
            size_t len;
            uint8_t *p = from_hex(cJSON_GetArrayItem(arr, (int)j)->valuestring, &len);
            fc_gguf_str s, s2;
            if (!fc_gguf_get_arr_str(g, key, j, &s) || !str_eq(s, p, len)) bad++;
            if (!fc_gguf_kv_get_arr_str(g, i, j, &s2) || s2.ptr != s.ptr) bad++;
            free(p);
        }
        fc_gguf_str s;
        CHECK(bad == 0 && !fc_gguf_get_arr_str(g, key, n, &s), "%s: every string element, index %" PRIu64 " refused", key, n);
    } else {
        fc_gguf_str s;
        CHECK(!fc_gguf_get_arr_str(g, key, 0, &s), "%s: get_arr_str refuses a %s array", key, fc_gguf_type_name((enum fc_gguf_type)et));
    }
}

static void check_tensor(const fc_gguf *g, int64_t i, const cJSON *et)
{
    const char *name = cJSON_GetObjectItem(et, "name")->valuestring;
    const fc_gguf_tensor_info *ti = fc_gguf_tensor(g, i);
    CHECK(ti && str_eq_c(ti->name, name), "tensor %" PRId64 " is '%s'", i, name);
    if (!ti) return;
    CHECK(fc_gguf_find_tensor(g, name) == ti, "%s: find_tensor", name);
    int type = cJSON_GetObjectItem(et, "type_id")->valueint;
    CHECK(ti->t.type == type, "%s: type %d (%s)", name, ti->t.type, fc_dtype_name(ti->t.type));
    const cJSON *ne = cJSON_GetObjectItem(et, "ne");
    int nd = cJSON_GetArraySize(ne);
    bool dims_ok = ti->t.n_dims == nd;
    for (int d = 0; d < FC_MAX_DIMS; d++)
        dims_ok = dims_ok && ti->t.ne[d] == (d < nd ? (int64_t)cJSON_GetArrayItem(ne, d)->valuedouble : 1);
    CHECK(dims_ok, "%s: n_dims %d, ne {%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "}", name, ti->t.n_dims,
          ti->t.ne[0], ti->t.ne[1], ti->t.ne[2], ti->t.ne[3]);
    CHECK(ti->offset == (uint64_t)cJSON_GetObjectItem(et, "offset")->valuedouble, "%s: offset %" PRIu64, name, ti->offset);
    size_t n;
    uint8_t *bytes = from_hex(cJSON_GetObjectItem(et, "hex")->valuestring, &n);
    CHECK(ti->t.nbytes == n && memcmp(ti->t.data, bytes, n) == 0, "%s: %zu data bytes", name, n);
    free(bytes);
    const cJSON *vals = cJSON_GetObjectItem(et, "values");
    if (vals && (type == FC_DTYPE_F32 || type == FC_DTYPE_F16)) {
        int bad = 0, k = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, vals) {
            float x;
            if (type == FC_DTYPE_F32) {
                memcpy(&x, (const uint8_t *)ti->t.data + 4 * k, 4);
            } else {
                fc_f16 h;
                memcpy(&h, (const uint8_t *)ti->t.data + 2 * k, 2);
                x = fc_f16_to_f32(h);
            }
            if (x != (float)v->valuedouble) bad++;
            k++;
        }
        CHECK(bad == 0 && k == fc_tensor_nelem(&ti->t), "%s: %d decoded values exact", name, k);
    }
}

static void check_fixture(const cJSON *fx)
{
    const char *file = cJSON_GetObjectItem(fx, "file")->valuestring;
    printf("-- %s\n", file);
    fc_gguf *g = fc_gguf_open(data_path(file));
    CHECK(g != NULL, "%s: opens (%s)", file, g ? "" : fc_last_error());
    if (!g) return;
    CHECK(fc_gguf_version(g) == (uint32_t)cJSON_GetObjectItem(fx, "version")->valueint, "%s: version %u", file, fc_gguf_version(g));
    CHECK(fc_gguf_alignment(g) == (size_t)cJSON_GetObjectItem(fx, "alignment")->valueint, "%s: alignment %zu", file, fc_gguf_alignment(g));
    CHECK(fc_gguf_file_size(g) == (size_t)cJSON_GetObjectItem(fx, "size")->valuedouble, "%s: size %zu", file, fc_gguf_file_size(g));
    CHECK(fc_gguf_data_offset(g) == (size_t)cJSON_GetObjectItem(fx, "data_offset")->valuedouble, "%s: data offset %zu", file, fc_gguf_data_offset(g));

    const cJSON *kvs = cJSON_GetObjectItem(fx, "kv");
    CHECK(fc_gguf_n_kv(g) == cJSON_GetArraySize(kvs), "%s: %" PRId64 " keys", file, fc_gguf_n_kv(g));
    int64_t i = 0;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, kvs) {
        const char *key = cJSON_GetObjectItem(kv, "key")->valuestring;
        int type = type_from_name(cJSON_GetObjectItem(kv, "type")->valuestring);
        const cJSON *v = cJSON_GetObjectItem(kv, "value");
        CHECK(str_eq_c(fc_gguf_key(g, i), key) && fc_gguf_find_key(g, key) == i, "%s: key %" PRId64 " is %s", file, i, key);
        CHECK((int)fc_gguf_kv_type(g, i) == type, "%s: type %s", key, fc_gguf_type_name(fc_gguf_kv_type(g, i)));
        struct buf b = {0};
        ser_value(&b, type, v);
        size_t len = 0;
        const uint8_t *raw = fc_gguf_kv_raw(g, i, &len);
        CHECK(raw && len == b.n && memcmp(raw, b.p, len) == 0, "%s: %zu value bytes as the reference wrote them", key, b.n);
        const void *sc = fc_gguf_kv_scalar(g, i);
        if (fc_gguf_type_size((enum fc_gguf_type)type))
            CHECK(sc && memcmp(sc, b.p, b.n) == 0, "%s: kv_scalar", key);
        else
            CHECK(sc == NULL, "%s: kv_scalar is NULL for %s", key, fc_gguf_type_name((enum fc_gguf_type)type));
        free(b.p);
        if (type == FC_GGUF_ARRAY) {
            check_array(g, i, key, v);
        } else {
            check_scalar_getters(g, key, type, v);
            CHECK(!fc_gguf_get_arr(g, key, NULL, NULL, NULL), "%s: get_arr refuses a non-array", key);
        }
        i++;
    }
    CHECK(fc_gguf_find_key(g, "no.such.key") == -1 && fc_gguf_find_key(g, "") == -1, "%s: absent keys give -1", file);
    int64_t i64 = 7;
    CHECK(!fc_gguf_get_i64(g, "no.such.key", &i64) && i64 == 7, "%s: getter on an absent key leaves *out", file);

    const cJSON *ts = cJSON_GetObjectItem(fx, "tensors");
    CHECK(fc_gguf_n_tensors(g) == cJSON_GetArraySize(ts), "%s: %" PRId64 " tensors", file, fc_gguf_n_tensors(g));
    i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, ts) check_tensor(g, i++, t);
    CHECK(fc_gguf_find_tensor(g, "no.such.tensor") == NULL && fc_gguf_tensor(g, -1) == NULL &&
          fc_gguf_tensor(g, fc_gguf_n_tensors(g)) == NULL, "%s: absent tensors give NULL", file);
    fc_gguf_free(g);
}

/* ---- 2. round trip through the writer ---- */

static char tmp_dir[256];

static void check_round_trip(const cJSON *fx)
{
    const char *file = cJSON_GetObjectItem(fx, "file")->valuestring;
    char out[512];
    snprintf(out, sizeof out, "%s/rt_%s", tmp_dir, file);
    fc_gguf *g = fc_gguf_open(data_path(file));
    if (!g) { CHECK(false, "%s: round trip: open", file); return; }
    fc_gguf_writer *w = fc_gguf_writer_new();
    for (int64_t i = 0; i < fc_gguf_n_kv(g); i++) fc_gguf_writer_copy_kv(w, g, i);
    char name[256];
    for (int64_t i = 0; i < fc_gguf_n_tensors(g); i++) {
        const fc_gguf_tensor_info *ti = fc_gguf_tensor(g, i);
        snprintf(name, sizeof name, "%.*s", (int)ti->name.len, ti->name.ptr);
        fc_gguf_writer_add_tensor(w, name, ti->t.type, ti->t.n_dims, ti->t.ne, ti->t.data);
    }
    enum fc_status st = fc_gguf_writer_write(w, out);
    fc_gguf_writer_free(w);
    CHECK(st == FC_OK, "%s: round trip: written to %s", file, out);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    CHECK(access(tmp, F_OK) != 0, "%s: round trip: no .tmp left behind", file);

    fc_gguf *h = fc_gguf_open(out);
    CHECK(h != NULL, "%s: round trip: reads back", file);
    if (h) {
        bool same = fc_gguf_version(h) == 3 && fc_gguf_alignment(h) == fc_gguf_alignment(g) &&
                    fc_gguf_n_kv(h) == fc_gguf_n_kv(g) && fc_gguf_n_tensors(h) == fc_gguf_n_tensors(g);
        for (int64_t i = 0; same && i < fc_gguf_n_kv(g); i++) {
            size_t la, lb;
            const uint8_t *a = fc_gguf_kv_raw(g, i, &la), *b = fc_gguf_kv_raw(h, i, &lb);
            fc_gguf_str ka = fc_gguf_key(g, i), kb = fc_gguf_key(h, i);
            same = str_eq(ka, (const uint8_t *)kb.ptr, kb.len) && fc_gguf_kv_type(g, i) == fc_gguf_kv_type(h, i) &&
                   la == lb && memcmp(a, b, la) == 0;
        }
        for (int64_t i = 0; same && i < fc_gguf_n_tensors(g); i++) {
            const fc_gguf_tensor_info *a = fc_gguf_tensor(g, i), *b = fc_gguf_tensor(h, i);
            same = str_eq(a->name, (const uint8_t *)b->name.ptr, b->name.len) && a->t.type == b->t.type &&
                   a->t.n_dims == b->t.n_dims && memcmp(a->t.ne, b->t.ne, sizeof a->t.ne) == 0 &&
                   a->offset == b->offset && a->t.nbytes == b->t.nbytes &&
                   memcmp(a->t.data, b->t.data, a->t.nbytes) == 0;
        }
        CHECK(same, "%s: round trip: every key, value and tensor identical", file);
        fc_gguf_free(h);
    }
    if (fc_gguf_version(g) == 3) {
        size_t na, nb;
        uint8_t *a = read_file(data_path(file), &na), *b = read_file(out, &nb);
        CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "%s: round trip: byte-identical to the Python writer's file", file);
        free(a);
        free(b);
    }
    fc_gguf_free(g);
    unlink(out);
}

/* ---- 3. the setters rebuild all_types.gguf from the JSON ---- */

static void set_from_json(fc_gguf_writer *w, const fc_gguf *ref, const char *key, int type, const cJSON *v)
{
    struct buf b = {0};
    ser_value(&b, type, v);
    int64_t s;
    uint64_t u;
    switch (type) {
    case FC_GGUF_UINT32: json_int(v, type, &s, &u); fc_gguf_writer_set_u32(w, key, (uint32_t)u); break;
    case FC_GGUF_INT32: json_int(v, type, &s, &u); fc_gguf_writer_set_i32(w, key, (int32_t)s); break;
    case FC_GGUF_UINT64: json_int(v, type, &s, &u); fc_gguf_writer_set_u64(w, key, u); break;
    case FC_GGUF_FLOAT32: fc_gguf_writer_set_f32(w, key, (float)v->valuedouble); break;
    case FC_GGUF_BOOL: fc_gguf_writer_set_bool(w, key, cJSON_IsTrue(v)); break;
    case FC_GGUF_STRING: {
        size_t n;
        uint8_t *p = from_hex(v->valuestring, &n);
        fc_gguf_writer_set_str(w, key, (const char *)p, n);
        free(p);
        break;
    }
    case FC_GGUF_ARRAY: {
        int et = type_from_name(cJSON_GetObjectItem(v, "elem_type")->valuestring);
        const cJSON *arr = cJSON_GetObjectItem(v, "value");
        uint64_t n = (uint64_t)cJSON_GetArraySize(arr);
        if (et == FC_GGUF_STRING) {
            char **strs = fc_xcalloc(n + 1, sizeof *strs);
            size_t *lens = fc_xcalloc(n + 1, sizeof *lens);
            for (uint64_t j = 0; j < n; j++)
                strs[j] = (char *)from_hex(cJSON_GetArrayItem(arr, (int)j)->valuestring, &lens[j]);
            fc_gguf_writer_set_arr_str(w, key, (const char *const *)strs, lens, n);
            for (uint64_t j = 0; j < n; j++) free(strs[j]);
            free(strs);
            free(lens);
        } else if (et == FC_GGUF_ARRAY) {
            /* no setter builds nested arrays: copy from the reference file */
            fc_gguf_writer_copy_kv(w, ref, fc_gguf_find_key(ref, key));
        } else {
            fc_gguf_writer_set_arr(w, key, (enum fc_gguf_type)et, b.p + 12, n);
        }
        break;
    }
    default: /* u8, i8, u16, i16, i64, f64 */
        fc_gguf_writer_set_scalar(w, key, (enum fc_gguf_type)type, b.p);
    }
    free(b.p);
}

static void check_setters(const cJSON *fx)
{
    const char *file = cJSON_GetObjectItem(fx, "file")->valuestring;
    const char *env = getenv("FC_GGUF_OUT");
    char out[512];
    if (env) snprintf(out, sizeof out, "%s", env);
    else snprintf(out, sizeof out, "%s/setters_%s", tmp_dir, file);
    printf("-- setters rebuild %s into %s\n", file, out);

    fc_gguf *ref = fc_gguf_open(data_path(file));
    if (!ref) { CHECK(false, "%s: open", file); return; }
    fc_gguf_writer *w = fc_gguf_writer_new();
    /* Every key first set to a placeholder, then to its value: replacing a
     * key must keep its first position. */
    const cJSON *kv;
    cJSON_ArrayForEach(kv, cJSON_GetObjectItem(fx, "kv")) {
        const char *key = cJSON_GetObjectItem(kv, "key")->valuestring;
        if (strcmp(key, "general.alignment") != 0) fc_gguf_writer_set_str(w, key, "placeholder", 11);
        else fc_gguf_writer_set_u32(w, key, 64);
    }
    cJSON_ArrayForEach(kv, cJSON_GetObjectItem(fx, "kv")) {
        set_from_json(w, ref, cJSON_GetObjectItem(kv, "key")->valuestring,
                      type_from_name(cJSON_GetObjectItem(kv, "type")->valuestring), cJSON_GetObjectItem(kv, "value"));
    }
    const cJSON *t;
    uint8_t *datas[64];
    int nt = 0;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(fx, "tensors")) {
        size_t n;
        datas[nt] = from_hex(cJSON_GetObjectItem(t, "hex")->valuestring, &n);
        const cJSON *ne = cJSON_GetObjectItem(t, "ne");
        int64_t nev[4] = {1, 1, 1, 1};
        int nd = cJSON_GetArraySize(ne);
        for (int d = 0; d < nd; d++) nev[d] = (int64_t)cJSON_GetArrayItem(ne, d)->valuedouble;
        fc_gguf_writer_add_tensor(w, cJSON_GetObjectItem(t, "name")->valuestring,
                                  cJSON_GetObjectItem(t, "type_id")->valueint, nd, nev, datas[nt]);
        nt++;
    }
    enum fc_status st = fc_gguf_writer_write(w, out);
    for (int k = 0; k < nt; k++) free(datas[k]);
    fc_gguf_writer_free(w);
    CHECK(st == FC_OK, "setters: written");
    size_t na, nb;
    uint8_t *a = read_file(data_path(file), &na), *b = read_file(out, &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0,
          "setters: %s rebuilt from expected.json is byte-identical to the Python writer's", file);
    free(a);
    free(b);
    fc_gguf_free(ref);
    if (!env) unlink(out);
}

/* ---- 4. truncation ---- */

static void check_truncation(const cJSON *fx)
{
    const char *file = cJSON_GetObjectItem(fx, "file")->valuestring;
    size_t size;
    uint8_t *full = read_file(data_path(file), &size);
    if (!full) { CHECK(false, "%s: read", file); return; }
    /* The file is complete once the last tensor's data is there; trailing
     * padding is optional. */
    size_t need = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(fx, "tensors")) {
        size_t end = (size_t)cJSON_GetObjectItem(fx, "data_offset")->valuedouble +
                     (size_t)cJSON_GetObjectItem(t, "offset")->valuedouble +
                     (size_t)cJSON_GetObjectItem(t, "nbytes")->valuedouble;
        need = FC_MAX(need, end);
    }
    int wrong = 0, unnamed = 0;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    for (size_t len = 0; len < size; len++) {
        /* an exact-size copy, so that ASan sees any read past the end */
        uint8_t *p = len ? fc_xmalloc(len) : NULL;
        if (len) memcpy(p, full, len);
        fc_gguf *g = fc_gguf_parse(p, len, file);
        if ((g != NULL) != (len >= need)) wrong++;
        if (!g && strncmp(fc_last_error(), file, strlen(file)) != 0) unnamed++;
        fc_gguf_free(g);
        free(p);
    }
    fc_log_set_level(FC_LOG_LEVEL_WARN);
    CHECK(wrong == 0, "%s: all %zu prefixes: rejected below %zu bytes, accepted from there (%d wrong)",
          file, size, need, wrong);
    CHECK(unnamed == 0, "%s: every rejection names the file", file);
    free(full);
}

/* ---- 5. hand-corrupted files ---- */

/* A small valid file: 2 kvs, one F32 tensor of 8 values; the fields below are
 * patched by the cases. */
struct spec {
    const char *magic;
    uint32_t version;
    uint64_t n_tensors_override, n_kv_override; /* 0: the real counts */
    bool extra_kv;            /* append one more kv: key, type, raw value */
    const char *extra_key;
    uint32_t extra_type;
    const uint8_t *extra_val;
    size_t extra_len;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t ttype;
    uint64_t offset;
    bool second_tensor;       /* a second tensor named second_name */
    const char *second_name;
    size_t data_bytes;        /* bytes of tensor data present */
};

static struct spec base_spec(void)
{
    struct spec s = {0};
    s.magic = "GGUF";
    s.version = 3;
    s.n_dims = 1;
    s.ne[0] = 8;
    s.ttype = FC_DTYPE_F32;
    s.data_bytes = 64;
    s.second_name = "b";
    return s;
}

static struct buf build(const struct spec *s)
{
    struct buf b = {0};
    buf_put(&b, s->magic, 4);
    buf_u32(&b, s->version);
    uint64_t nt = 1 + s->second_tensor, nkv = 2 + s->extra_kv;
    buf_u64(&b, s->n_tensors_override ? s->n_tensors_override : nt);
    buf_u64(&b, s->n_kv_override ? s->n_kv_override : nkv);
    buf_str(&b, "general.architecture");
    buf_u32(&b, FC_GGUF_STRING);
    buf_str(&b, "test");
    buf_str(&b, "test.value");
    buf_u32(&b, FC_GGUF_UINT32);
    buf_u32(&b, 42);
    if (s->extra_kv) {
        buf_str(&b, s->extra_key);
        buf_u32(&b, s->extra_type);
        buf_put(&b, s->extra_val, s->extra_len);
    }
    buf_str(&b, "a");
    buf_u32(&b, s->n_dims);
    for (uint32_t d = 0; d < s->n_dims && d < 5; d++) buf_u64(&b, s->ne[d]);
    buf_u32(&b, s->ttype);
    buf_u64(&b, s->offset);
    if (s->second_tensor) {
        buf_str(&b, s->second_name);
        buf_u32(&b, 1);
        buf_u64(&b, 8);
        buf_u32(&b, FC_DTYPE_F32);
        buf_u64(&b, 32);
    }
    while (b.n % 32) buf_u8(&b, 0);
    for (size_t i = 0; i < s->data_bytes; i++) buf_u8(&b, (uint8_t)i);
    return b;
}

/* Parses the spec'd file; expects rejection with a message naming the file,
 * a byte offset and `what`. */
static void expect_reject(const char *name, const struct spec *s, const char *what)
{
    struct buf b = build(s);
    uint8_t *exact = fc_xmalloc(b.n);
    memcpy(exact, b.p, b.n);
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_gguf *g = fc_gguf_parse(exact, b.n, name);
    fc_log_set_level(FC_LOG_LEVEL_WARN);
    const char *msg = fc_last_error();
    bool named = strncmp(msg, name, strlen(name)) == 0 && msg[strlen(name)] == ':';
    CHECK(g == NULL && named && strstr(msg, "at byte offset") && strstr(msg, what),
          "rejects %-22s: %s", name, msg);
    fc_gguf_free(g);
    free(exact);
    free(b.p);
}

static void expect_accept(const char *name, const struct spec *s)
{
    struct buf b = build(s);
    fc_gguf *g = fc_gguf_parse(b.p, b.n, name);
    CHECK(g != NULL, "accepts %s", name);
    fc_gguf_free(g);
    free(b.p);
}

static void check_corrupt(void)
{
    printf("-- corrupted files\n");
    struct spec s = base_spec();
    expect_accept("base.gguf", &s);

    s = base_spec(); s.magic = "GGUX"; expect_reject("bad_magic.gguf", &s, "magic");
    s = base_spec(); s.version = 1; expect_reject("v1.gguf", &s, "version 1");
    s = base_spec(); s.version = 4; expect_reject("v4.gguf", &s, "version 4");
    s = base_spec(); s.version = 3u << 24; expect_reject("big_endian.gguf", &s, "big-endian");
    s = base_spec(); s.version = 2; expect_accept("v2.gguf", &s);
    s = base_spec(); s.n_kv_override = 1ull << 63; expect_reject("huge_n_kv.gguf", &s, "count");
    s = base_spec(); s.n_kv_override = UINT64_MAX; expect_reject("max_n_kv.gguf", &s, "count");
    s = base_spec(); s.n_tensors_override = 1ull << 63; expect_reject("huge_n_tensors.gguf", &s, "count");
    s = base_spec(); s.n_kv_override = 5; expect_reject("n_kv_too_big.gguf", &s, "");
    s = base_spec(); s.offset = 4; expect_reject("misaligned.gguf", &s, "alignment");
    s = base_spec(); s.offset = 64; expect_reject("out_of_range.gguf", &s, "outside");
    s = base_spec(); s.data_bytes = 31; expect_reject("short_data.gguf", &s, "outside");
    s = base_spec(); s.offset = UINT64_MAX - 31; expect_reject("offset_wraps.gguf", &s, "");
    s = base_spec(); s.ttype = 99; expect_reject("unknown_type.gguf", &s, "unknown type");
    s = base_spec(); s.ttype = 4; expect_reject("removed_type_4.gguf", &s, "unknown type");
    s = base_spec(); s.ttype = 0xffffffffu; expect_reject("type_max.gguf", &s, "unknown type");
    /* our own ids (16-bit activations, row-interleaved weights) are not file types */
    s = base_spec(); s.ttype = FC_DTYPE_A16; expect_reject("type_a16.gguf", &s, "unknown type");
    s = base_spec(); s.ttype = FC_DTYPE_Q4_0_X8; expect_reject("type_q4_0x8.gguf", &s, "unknown type");
    s = base_spec(); s.ttype = FC_DTYPE_Q8_0; s.ne[0] = 33; expect_reject("q8_0_partial_block.gguf", &s, "block size");
    s = base_spec(); s.second_tensor = true; s.second_name = "a"; expect_reject("dup_tensor.gguf", &s, "duplicate tensor");
    s = base_spec(); s.second_tensor = true; expect_accept("two_tensors.gguf", &s);
    s = base_spec(); s.n_dims = 0; expect_reject("n_dims_0.gguf", &s, "dimensions");
    s = base_spec(); s.n_dims = 5; s.ne[1] = s.ne[2] = s.ne[3] = s.ne[4] = 1; expect_reject("n_dims_5.gguf", &s, "dimensions");
    s = base_spec(); s.ne[0] = 0; expect_reject("ne_0.gguf", &s, "dimension");
    s = base_spec(); s.n_dims = 2; s.ne[0] = 1ull << 62; s.ne[1] = 1ull << 62; expect_reject("ne_overflow.gguf", &s, "dimension");
    s = base_spec(); s.n_dims = 1; s.ne[0] = UINT64_MAX; expect_reject("ne_max.gguf", &s, "dimension");
    s = base_spec(); s.n_dims = 2; s.ne[0] = 1ull << 40; s.ne[1] = 1ull << 22; expect_reject("bytes_overflow.gguf", &s, "");

    /* metadata corruption through the extra kv */
    uint8_t v[64] = {0};
    s = base_spec(); s.extra_kv = true; s.extra_key = "test.value"; s.extra_type = FC_GGUF_UINT8;
    s.extra_val = v; s.extra_len = 1; expect_reject("dup_key.gguf", &s, "duplicate key");
    s = base_spec(); s.extra_kv = true; s.extra_key = "x"; s.extra_type = 13;
    s.extra_val = v; s.extra_len = 1; expect_reject("kv_type_13.gguf", &s, "unknown value type");
    uint8_t align3[4] = {3, 0, 0, 0}, align0[4] = {0}, align64[8] = {64};
    s = base_spec(); s.extra_kv = true; s.extra_key = "general.alignment"; s.extra_type = FC_GGUF_UINT32;
    s.extra_val = align3; s.extra_len = 4; expect_reject("alignment_3.gguf", &s, "power of two");
    s.extra_val = align0; expect_reject("alignment_0.gguf", &s, "power of two");
    s.extra_type = FC_GGUF_UINT64; s.extra_val = align64; s.extra_len = 8;
    expect_reject("alignment_u64.gguf", &s, "power of two");
    uint8_t align16[4] = {16, 0, 0, 0};
    s = base_spec(); s.extra_kv = true; s.extra_key = "general.alignment"; s.extra_type = FC_GGUF_UINT32;
    s.extra_val = align16; s.extra_len = 4; s.offset = 8;
    expect_reject("misaligned_16.gguf", &s, "alignment 16");

    /* hostile lengths and counts inside values */
    struct buf x = {0};
    buf_u64(&x, 1ull << 62);
    s = base_spec(); s.extra_kv = true; s.extra_key = "s"; s.extra_type = FC_GGUF_STRING;
    s.extra_val = x.p; s.extra_len = x.n; expect_reject("huge_string.gguf", &s, "truncated");
    x.n = 0; buf_u32(&x, FC_GGUF_UINT8); buf_u64(&x, 1ull << 62);
    s.extra_type = FC_GGUF_ARRAY; s.extra_val = x.p; s.extra_len = x.n; expect_reject("huge_array.gguf", &s, "does not fit");
    x.n = 0; buf_u32(&x, FC_GGUF_STRING); buf_u64(&x, UINT64_MAX);
    s.extra_val = x.p; s.extra_len = x.n; expect_reject("huge_str_array.gguf", &s, "does not fit");
    x.n = 0; buf_u32(&x, FC_GGUF_ARRAY); buf_u64(&x, UINT64_MAX / 2);
    s.extra_val = x.p; s.extra_len = x.n; expect_reject("huge_nested_array.gguf", &s, "does not fit");
    x.n = 0; buf_u32(&x, 77); buf_u64(&x, 1);
    s.extra_val = x.p; s.extra_len = x.n; expect_reject("array_elem_type_77.gguf", &s, "element type");
    /* nesting: 8 levels of arrays accepted, 9 rejected */
    for (int depth = 8; depth <= 9; depth++) {
        x.n = 0;
        for (int d = 0; d < depth - 1; d++) { buf_u32(&x, FC_GGUF_ARRAY); buf_u64(&x, 1); }
        buf_u32(&x, FC_GGUF_UINT8); buf_u64(&x, 1); buf_u8(&x, 7);
        s.extra_val = x.p; s.extra_len = x.n;
        if (depth == 8) expect_accept("nested_8.gguf", &s);
        else expect_reject("nested_9.gguf", &s, "nested");
    }
    free(x.p);

    /* fc_gguf_open names the path */
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    const char *missing = "/nonexistent/dir/model.gguf";
    CHECK(fc_gguf_open(missing) == NULL && strstr(fc_last_error(), missing), "open of a missing file names it: %s", fc_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/corrupt.gguf", tmp_dir);
    s = base_spec(); s.version = 1;
    struct buf b = build(&s);
    write_file(path, b.p, b.n);
    free(b.p);
    CHECK(fc_gguf_open(path) == NULL && strncmp(fc_last_error(), path, strlen(path)) == 0,
          "open of a v1 file: %s", fc_last_error());
    unlink(path);
    snprintf(path, sizeof path, "%s/empty.gguf", tmp_dir);
    write_file(path, (const uint8_t *)"", 0);
    CHECK(fc_gguf_open(path) == NULL && strncmp(fc_last_error(), path, strlen(path)) == 0,
          "open of an empty file: %s", fc_last_error());
    unlink(path);
    fc_log_set_level(FC_LOG_LEVEL_WARN);
}

/* ---- 6. writer edge cases ---- */

static size_t pad_to32(size_t n) { return (32 - n % 32) % 32; }

static void check_writer(void)
{
    printf("-- writer\n");
    char path[512];
    snprintf(path, sizeof path, "%s/w.gguf", tmp_dir);
    fc_gguf_writer_free(NULL);
    fc_gguf_free(NULL);

    fc_gguf_writer *w = fc_gguf_writer_new();
    fc_gguf_writer_set_u32(w, "a", 1);
    fc_gguf_writer_set_str(w, "b", "x", 1);
    fc_gguf_writer_set_f32(w, "a", 2.5f); /* replaces, keeps position 0 */
    const char *strs[] = {"one", "", "three"};
    fc_gguf_writer_set_arr_str(w, "c", strs, NULL, 3);
    float data[3] = {1, 2, 3};
    int64_t ne[1] = {3};
    fc_gguf_writer_add_tensor(w, "t0", FC_DTYPE_F32, 1, ne, data);
    fc_gguf_writer_add_tensor(w, "t1", FC_DTYPE_F32, 1, ne, data);
    CHECK(fc_gguf_writer_write(w, path) == FC_OK, "writer: default alignment file written");
    fc_gguf_writer_free(w);
    fc_gguf *g = fc_gguf_open(path);
    float f = 0;
    fc_gguf_str s;
    CHECK(g && fc_gguf_n_kv(g) == 3 && str_eq_c(fc_gguf_key(g, 0), "a") && fc_gguf_get_f32(g, "a", &f) && f == 2.5f,
          "writer: replaced key keeps its position and takes the new type");
    CHECK(g && fc_gguf_get_arr_str(g, "c", 1, &s) && s.len == 0 && fc_gguf_get_arr_str(g, "c", 2, &s) && str_eq_c(s, "three"),
          "writer: NUL-terminated string array (lens NULL)");
    CHECK(g && fc_gguf_alignment(g) == 32 && fc_gguf_tensor(g, 1)->offset == 32 && fc_gguf_data_offset(g) % 32 == 0 &&
          fc_gguf_file_size(g) % 32 == 0, "writer: default alignment 32, padded tensors");
    fc_gguf_free(g);

    w = fc_gguf_writer_new();
    fc_gguf_writer_set_u32(w, "general.alignment", 256);
    fc_gguf_writer_add_tensor(w, "t0", FC_DTYPE_F32, 1, ne, data);
    fc_gguf_writer_add_tensor(w, "t1", FC_DTYPE_F32, 1, ne, data);
    CHECK(fc_gguf_writer_write(w, path) == FC_OK, "writer: alignment 256 file written");
    fc_gguf_writer_free(w);
    g = fc_gguf_open(path);
    CHECK(g && fc_gguf_alignment(g) == 256 && fc_gguf_tensor(g, 1)->offset == 256 && fc_gguf_data_offset(g) == 256,
          "writer: general.alignment honoured");
    fc_gguf_free(g);

    /* A key that merely starts with "general.alignment\0" is another key
     * (found by the fuzzer: the writer once compared keys as C strings). */
    struct buf b = {0};
    buf_put(&b, "GGUF", 4);
    buf_u32(&b, 3);
    buf_u64(&b, 0);
    buf_u64(&b, 1);
    buf_u64(&b, 19);
    buf_put(&b, "general.alignment\0x", 19);
    buf_u32(&b, FC_GGUF_STRING);
    buf_str(&b, "not a number");
    g = fc_gguf_parse(b.p, b.n, "nul_key.gguf");
    CHECK(g && fc_gguf_alignment(g) == 32 && fc_gguf_key(g, 0).len == 19, "reader: key with a NUL is not general.alignment");
    w = fc_gguf_writer_new();
    if (g) fc_gguf_writer_copy_kv(w, g, 0);
    uint8_t *img = NULL;
    size_t img_size = 0;
    CHECK(g && fc_gguf_writer_write_buf(w, &img, &img_size) == FC_OK && img_size == b.n + pad_to32(b.n) &&
          memcmp(img, b.p, b.n) == 0, "writer: copies a key with a NUL byte for byte (write_buf, %zu bytes)", img_size);
    free(img);
    fc_gguf_writer_free(w);
    fc_gguf_free(g);
    free(b.p);

    fc_log_set_level(FC_LOG_LEVEL_NONE);
    w = fc_gguf_writer_new();
    fc_gguf_writer_set_u32(w, "general.alignment", 48);
    CHECK(fc_gguf_writer_write(w, path) == FC_ERR_ARG, "writer: alignment 48 refused");
    fc_gguf_writer_free(w);

    int64_t ne33[1] = {33};
    w = fc_gguf_writer_new();
    fc_gguf_writer_add_tensor(w, "q", FC_DTYPE_Q8_0, 1, ne33, data);
    CHECK(fc_gguf_writer_write(w, path) == FC_ERR_ARG, "writer: partial Q8_0 block refused");
    fc_gguf_writer_free(w);

    w = fc_gguf_writer_new();
    fc_gguf_writer_add_tensor(w, "t", FC_DTYPE_F32, 1, ne, data);
    fc_gguf_writer_add_tensor(w, "t", FC_DTYPE_F32, 1, ne, data);
    CHECK(fc_gguf_writer_write(w, path) == FC_ERR_ARG, "writer: duplicate tensor refused");
    fc_gguf_writer_free(w);

    w = fc_gguf_writer_new();
    fc_gguf_writer_set_scalar(w, "s", FC_GGUF_STRING, "x");
    CHECK(fc_gguf_writer_write(w, path) == FC_ERR_ARG, "writer: set_scalar of a string refused");
    fc_gguf_writer_free(w);

    w = fc_gguf_writer_new();
    fc_gguf_writer_set_u32(w, "a", 1);
    const char *bad = "/nonexistent/dir/out.gguf";
    CHECK(fc_gguf_writer_write(w, bad) == FC_ERR_IO && strstr(fc_last_error(), "/nonexistent/dir/out.gguf"),
          "writer: unwritable path gives FC_ERR_IO naming it");
    fc_gguf_writer_free(w);
    fc_log_set_level(FC_LOG_LEVEL_WARN);
    unlink(path);
}

int main(void)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/fc_test_gguf_%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp_dir);
    if (system(cmd) != 0) { fprintf(stderr, "cannot create %s\n", tmp_dir); return 1; }

    size_t n;
    char *json = (char *)read_file(data_path("expected.json"), &n);
    if (!json) {
        fprintf(stderr, "FAIL cannot read %s (run from the repo root or set FC_GGUF_DATA)\n", data_path("expected.json"));
        return 1;
    }
    json = fc_xrealloc(json, n + 1);
    json[n] = 0;
    cJSON *doc = cJSON_Parse(json);
    free(json);
    CHECK(doc != NULL, "expected.json parses");
    if (!doc) return 1;

    const cJSON *fx;
    const cJSON *files = cJSON_GetObjectItem(doc, "files");
    cJSON_ArrayForEach(fx, files) check_fixture(fx);
    printf("-- round trips\n");
    cJSON_ArrayForEach(fx, files) check_round_trip(fx);
    cJSON_ArrayForEach(fx, files)
        if (strcmp(cJSON_GetObjectItem(fx, "file")->valuestring, "all_types.gguf") == 0) check_setters(fx);
    printf("-- truncation\n");
    cJSON_ArrayForEach(fx, files)
        if (cJSON_GetArraySize(cJSON_GetObjectItem(fx, "tensors")) > 0) check_truncation(fx);
    check_corrupt();
    check_writer();
    cJSON_Delete(doc);
    rmdir(tmp_dir);

    printf("\n%d checks, %d failed\n", n_checks, n_fail);
    return n_fail ? 1 : 0;
}
