/*
 * fuzz_gguf.c: libFuzzer target for the GGUF reader (src/model/gguf.c).
 *
 * Parses the input with fc_gguf_parse and, when it is accepted, touches every
 * key, value, array element, string and tensor byte range through the public
 * getters, so that ASan sees any pointer the parser hands out that does not
 * lie inside the input. It also checks the reader's promises: every key and
 * tensor name is found again by lookup (names are unique), every tensor's
 * data lies inside the buffer, and getters never succeed on a mistyped key.
 * Accepted inputs then go through the writer (in memory, with
 * fc_gguf_writer_write_buf) and are parsed again: keys, values and tensors
 * must come back identical.
 *
 * Seeds: tests/data/fuzz/fuzz_gguf/ (small valid files written by the Python
 * gguf package, tools/golden/make_gguf_fixtures.py).
 *   make fuzz && build/fuzz/fuzz_gguf -max_len=65536 corpus tests/data/fuzz/fuzz_gguf
 */
#include "format/gguf.h"

#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink;

static void touch(const void *p, uint64_t n)
{
    if (!n) return;
    const uint8_t *b = p;
    sink += b[0] + b[n - 1] + b[n / 2];
}

/* Aborts (a finding) when a promise of the reader does not hold. */
#define EXPECT(x) do { if (!(x)) __builtin_trap(); } while (0)

/* Looks s up as a C string when it has no NUL inside; returns true if the
 * lookup applies. */
static bool as_cstr(fc_gguf_str s, char *buf, size_t cap)
{
    if (s.len >= cap || (s.len && memchr(s.ptr, 0, (size_t)s.len))) return false;
    memcpy(buf, s.ptr, (size_t)s.len);
    buf[s.len] = 0;
    return true;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_gguf *g = fc_gguf_parse(data, size, "fuzz");
    if (!g) {
        EXPECT(fc_last_error()[0] != 0);
        return 0;
    }
    const uint8_t *end = data + size;
    char name[4096];
    EXPECT(fc_gguf_version(g) == 2 || fc_gguf_version(g) == 3);
    size_t align = fc_gguf_alignment(g);
    EXPECT(align && !(align & (align - 1)));
    EXPECT(fc_gguf_file_size(g) == size && fc_gguf_data_offset(g) <= size);

    for (int64_t i = 0; i < fc_gguf_n_kv(g); i++) {
        fc_gguf_str key = fc_gguf_key(g, i);
        touch(key.ptr, key.len);
        enum fc_gguf_type t = fc_gguf_kv_type(g, i);
        size_t raw_len;
        const uint8_t *raw = fc_gguf_kv_raw(g, i, &raw_len);
        EXPECT(raw && raw >= data && raw_len <= (size_t)(end - raw));
        touch(raw, raw_len);
        const void *sc = fc_gguf_kv_scalar(g, i);
        EXPECT((sc != NULL) == (fc_gguf_type_size(t) != 0));
        if (sc) touch(sc, fc_gguf_type_size(t));
        fc_gguf_str s;
        if (fc_gguf_kv_get_str(g, i, &s)) {
            EXPECT(t == FC_GGUF_STRING);
            touch(s.ptr, s.len);
        }
        enum fc_gguf_type et;
        uint64_t n;
        const void *arr;
        if (fc_gguf_kv_get_arr(g, i, &et, &n, &arr)) {
            EXPECT(t == FC_GGUF_ARRAY);
            size_t es = fc_gguf_type_size(et);
            if (es) {
                EXPECT(n <= (uint64_t)(end - (const uint8_t *)arr) / es);
                touch(arr, n * es);
            }
            if (et == FC_GGUF_STRING) {
                for (uint64_t j = 0; j < n; j++) {
                    EXPECT(fc_gguf_kv_get_arr_str(g, i, j, &s));
                    EXPECT((const uint8_t *)s.ptr >= data && s.len <= (uint64_t)(end - (const uint8_t *)s.ptr));
                    touch(s.ptr, s.len);
                }
            }
            EXPECT(!fc_gguf_kv_get_arr_str(g, i, n, &s));
        }
        if (as_cstr(key, name, sizeof name)) {
            EXPECT(fc_gguf_find_key(g, name) == i);
            int64_t v64;
            uint32_t v32;
            float f;
            bool b;
            bool got_i64 = fc_gguf_get_i64(g, name, &v64);
            bool got_u32 = fc_gguf_get_u32(g, name, &v32);
            bool got_bool = fc_gguf_get_bool(g, name, &b);
            if (got_i64 || got_u32 || got_bool)
                EXPECT(t != FC_GGUF_STRING && t != FC_GGUF_ARRAY && t != FC_GGUF_FLOAT32 && t != FC_GGUF_FLOAT64);
            if (fc_gguf_get_f32(g, name, &f)) EXPECT(t != FC_GGUF_STRING && t != FC_GGUF_ARRAY && t != FC_GGUF_BOOL);
            if (fc_gguf_get_str(g, name, &s)) EXPECT(t == FC_GGUF_STRING);
            if (et == FC_GGUF_STRING && t == FC_GGUF_ARRAY && n > 0) {
                EXPECT(fc_gguf_get_arr_str(g, name, n - 1, &s));
                touch(s.ptr, s.len);
            }
        }
    }

    for (int64_t i = 0; i < fc_gguf_n_tensors(g); i++) {
        const fc_gguf_tensor_info *ti = fc_gguf_tensor(g, i);
        touch(ti->name.ptr, ti->name.len);
        EXPECT(ti->t.n_dims >= 1 && ti->t.n_dims <= FC_MAX_DIMS);
        EXPECT(ti->offset % align == 0);
        const uint8_t *p = ti->t.data;
        EXPECT(p >= data + fc_gguf_data_offset(g) && ti->t.nbytes <= (size_t)(end - p));
        EXPECT(ti->t.nbytes == fc_tensor_row_bytes(&ti->t) * (size_t)(ti->t.ne[1] * ti->t.ne[2] * ti->t.ne[3]));
        touch(p, ti->t.nbytes);
        if (as_cstr(ti->name, name, sizeof name)) EXPECT(fc_gguf_find_tensor(g, name) == ti);
    }
    EXPECT(fc_gguf_tensor(g, fc_gguf_n_tensors(g)) == NULL);

    /* Round trip: every kv and tensor through the writer into memory, parsed
     * again, must give the same keys, values and tensors. Tensors whose name
     * holds a NUL cannot be named through the writer's C-string API. */
    fc_gguf_writer *w = fc_gguf_writer_new();
    for (int64_t i = 0; i < fc_gguf_n_kv(g); i++) fc_gguf_writer_copy_kv(w, g, i);
    bool all_named = true;
    for (int64_t i = 0; i < fc_gguf_n_tensors(g); i++) {
        const fc_gguf_tensor_info *ti = fc_gguf_tensor(g, i);
        if (!as_cstr(ti->name, name, sizeof name)) { all_named = false; break; }
        fc_gguf_writer_add_tensor(w, name, ti->t.type, ti->t.n_dims, ti->t.ne, ti->t.data);
    }
    uint8_t *img = NULL;
    size_t img_size = 0;
    /* Huge alignments are legal but pad the image to gigabytes. */
    if (all_named && align <= 4096) {
        EXPECT(fc_gguf_writer_write_buf(w, &img, &img_size) == FC_OK);
        fc_gguf *h = fc_gguf_parse(img, img_size, "fuzz-rt");
        EXPECT(h != NULL);
        EXPECT(fc_gguf_version(h) == 3 && fc_gguf_alignment(h) == align);
        EXPECT(fc_gguf_n_kv(h) == fc_gguf_n_kv(g) && fc_gguf_n_tensors(h) == fc_gguf_n_tensors(g));
        for (int64_t i = 0; i < fc_gguf_n_kv(g); i++) {
            size_t la, lb;
            const uint8_t *a = fc_gguf_kv_raw(g, i, &la), *b = fc_gguf_kv_raw(h, i, &lb);
            fc_gguf_str ka = fc_gguf_key(g, i), kb = fc_gguf_key(h, i);
            EXPECT(ka.len == kb.len && memcmp(ka.ptr, kb.ptr, (size_t)ka.len) == 0);
            EXPECT(fc_gguf_kv_type(g, i) == fc_gguf_kv_type(h, i) && la == lb && memcmp(a, b, la) == 0);
        }
        for (int64_t i = 0; i < fc_gguf_n_tensors(g); i++) {
            const fc_gguf_tensor_info *a = fc_gguf_tensor(g, i), *b = fc_gguf_tensor(h, i);
            EXPECT(a->name.len == b->name.len && memcmp(a->name.ptr, b->name.ptr, (size_t)a->name.len) == 0);
            EXPECT(a->t.type == b->t.type && a->t.n_dims == b->t.n_dims);
            EXPECT(memcmp(a->t.ne, b->t.ne, sizeof a->t.ne) == 0 && a->t.nbytes == b->t.nbytes);
            EXPECT(memcmp(a->t.data, b->t.data, a->t.nbytes) == 0);
        }
        fc_gguf_free(h);
        free(img);
    }
    fc_gguf_writer_free(w);

    fc_gguf_free(g);
    return 0;
}
