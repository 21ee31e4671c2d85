/*
 * test_safetensors.c: tests of the safetensors reader (src/model/safetensors.c)
 * and the Hugging Face config.json parser (src/model/hf_config.c).
 *
 * Golden inputs in tests/data/safetensors/ are written by the real
 * `safetensors` and `transformers` packages (tools/golden/
 * make_safetensors_fixtures.py): tensors with values given by formulas
 * recomputed here (compared exactly: every value is representable in its
 * stored type), a folder sharded by save_pretrained, and config.json files
 * with the fields transformers itself reads back from them (expected.json).
 * Corrupt inputs are built here: every truncated prefix of each fixture and
 * hand-made hostile headers, each of which must be rejected with a message.
 *
 * One line per check; exits non-zero if any check fails. The data folder is
 * tests/data (run from the repository root) or $FC_TEST_DATA. The helpers
 * shared with test_torch_bin.c are in tensor_file_test.h.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "model/hf_config.h"
#include "model/safetensors.h"
#include "tensor_file_test.h"

static void path_of(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", data_dir, rel);
}

static bool write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static bool copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = tf_read_file(from, &n);
    if (!b) return false;
    bool ok = write_file(to, b, n);
    free(b);
    return ok;
}

/* Removes the files of a flat temporary folder, then the folder. */
static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[2048];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* IEEE half -> float, written out here so the test does not depend on the
 * conversions under test elsewhere. */
static float half_to_float(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float value_at(const fc_tensor *t, int64_t i)
{
    uint16_t h;
    float f;
    switch (t->type) {
    case FC_DTYPE_F32: memcpy(&f, (const uint8_t *)t->data + 4 * i, 4); return f;
    case FC_DTYPE_F16: memcpy(&h, (const uint8_t *)t->data + 2 * i, 2); return half_to_float(h);
    case FC_DTYPE_BF16: memcpy(&h, (const uint8_t *)t->data + 2 * i, 2); return bf16_to_float(h);
    default: return NAN;
    }
}

static bool ne_is(const fc_tensor *t, int n_dims, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return t && t->n_dims == n_dims && t->ne[0] == a && t->ne[1] == b && t->ne[2] == c && t->ne[3] == d;
}

/* ---- basic.safetensors: every dtype and shape kind ---- */

static void test_basic(void)
{
    char path[1024];
    path_of(path, sizeof path, "safetensors/basic.safetensors");
    fc_safetensors *st = fc_safetensors_open(path);
    check(st != NULL, "open %s", path);
    if (!st) return;
    check(fc_safetensors_n_tensors(st) == 10, "basic: 10 tensors (got %lld)",
          (long long)fc_safetensors_n_tensors(st));

    bool sorted = true, found = true;
    for (int64_t i = 0; i < fc_safetensors_n_tensors(st); i++) {
        const char *n = fc_safetensors_name(st, i);
        if (i > 0 && strcmp(fc_safetensors_name(st, i - 1), n) >= 0) sorted = false;
        if (fc_safetensors_find(st, n) != fc_safetensors_tensor(st, i)) found = false;
    }
    check(sorted, "basic: names in sorted order");
    check(found, "basic: find(name(i)) == tensor(i) for every i");
    check(fc_safetensors_find(st, "__metadata__") == NULL, "basic: __metadata__ is not a tensor");
    check(fc_safetensors_find(st, "nope") == NULL, "basic: unknown name -> NULL");
    check(fc_safetensors_name(st, -1) == NULL && fc_safetensors_tensor(st, 10) == NULL,
          "basic: out-of-range index -> NULL");

    const fc_tensor *t = fc_safetensors_find(st, "f32.matrix");
    bool ok = t && t->type == FC_DTYPE_F32 && ne_is(t, 2, 3, 2, 1, 1) && t->nbytes == 24 &&
              (uintptr_t)t->data % 4 == 0;
    for (int i = 0; ok && i < 6; i++) ok = value_at(t, i) == i * 0.25f - 0.5f;
    check(ok, "f32.matrix: shape [2,3] -> ne {3,2}, values i/4 - 1/2");

    t = fc_safetensors_find(st, "f32.scalar");
    check(t && t->type == FC_DTYPE_F32 && ne_is(t, 1, 1, 1, 1, 1) && t->nbytes == 4 && value_at(t, 0) == 3.5f,
          "f32.scalar: shape [] -> n_dims 1, ne {1}, value 3.5");

    t = fc_safetensors_find(st, "f32.empty");
    check(t && t->type == FC_DTYPE_F32 && ne_is(t, 2, 3, 0, 1, 1) && t->nbytes == 0 && t->data &&
          (uintptr_t)t->data % 4 == 0, "f32.empty: shape [0,3] -> ne {3,0}, 0 bytes, aligned non-NULL data");

    t = fc_safetensors_find(st, "f16.vector");
    ok = t && t->type == FC_DTYPE_F16 && ne_is(t, 1, 8, 1, 1, 1) && t->nbytes == 16;
    for (int i = 0; ok && i < 8; i++) ok = value_at(t, i) == i * -0.75f + 1.0f;
    check(ok, "f16.vector: 8 halves, values 1 - 3i/4");

    t = fc_safetensors_find(st, "bf16.cube");
    ok = t && t->type == FC_DTYPE_BF16 && ne_is(t, 3, 4, 3, 2, 1) && t->nbytes == 48;
    for (int i = 0; ok && i < 24; i++) ok = value_at(t, i) == i * 0.5f - 4.0f;
    check(ok, "bf16.cube: shape [2,3,4] -> ne {4,3,2}, values i/2 - 4");

    t = fc_safetensors_find(st, "f32.4d");
    ok = t && t->type == FC_DTYPE_F32 && ne_is(t, 4, 4, 2, 2, 1);
    for (int i = 0; ok && i < 16; i++) ok = value_at(t, i) == (float)i;
    check(ok, "f32.4d: shape [1,2,2,4] -> ne {4,2,2,1}");

    t = fc_safetensors_find(st, "i64.ids");
    int64_t ids[3] = {0};
    if (t && t->nbytes == sizeof ids) memcpy(ids, t->data, sizeof ids);
    check(t && t->type == -1 && t->nbytes == 24 && ids[0] == 7 && ids[1] == -1 && ids[2] == 123456789012LL,
          "i64.ids: type -1, 24 bytes, values kept");
    t = fc_safetensors_find(st, "u8.bytes");
    check(t && t->type == -1 && t->nbytes == 5 && ((const uint8_t *)t->data)[4] == 255, "u8.bytes: type -1, 5 bytes");
    t = fc_safetensors_find(st, "bool.mask");
    check(t && t->type == -1 && t->nbytes == 3 && ((const uint8_t *)t->data)[1] == 0, "bool.mask: type -1, 3 bytes");
    t = fc_safetensors_find(st, "f64.pair");
    double d2[2] = {0};
    if (t && t->nbytes == sizeof d2) memcpy(d2, t->data, sizeof d2);
    check(t && t->type == -1 && t->nbytes == 16 && d2[0] == 1.5 && d2[1] == -2.25, "f64.pair: type -1, 16 bytes");
    fc_safetensors_free(st);

    path_of(path, sizeof path, "safetensors/f16.safetensors");
    size_t n;
    uint8_t *buf = tf_read_file(path, &n);
    st = buf ? fc_safetensors_parse(buf, n, "f16.safetensors") : NULL;
    t = fc_safetensors_find(st, "w");
    ok = st && fc_safetensors_n_tensors(st) == 1 && t && t->type == FC_DTYPE_F16 && ne_is(t, 2, 5, 3, 1, 1);
    for (int i = 0; ok && i < 15; i++) ok = value_at(t, i) == i * 0.125f - 1.0f;
    check(ok, "f16.safetensors (parsed from memory): w (3,5) values i/8 - 1");
    fc_safetensors_free(st);
    free(buf);
    fc_safetensors_free(NULL);
    check(true, "fc_safetensors_free(NULL) is a no-op");
}

/* ---- sharded folder written by save_pretrained ---- */

static bool check_sharded(const fc_safetensors *st, const cJSON *expected, const char *what)
{
    if (!st) return false;
    if (fc_safetensors_n_tensors(st) != cJSON_GetArraySize(expected)) {
        printf("     %s: %lld tensors, expected %d\n", what, (long long)fc_safetensors_n_tensors(st),
               cJSON_GetArraySize(expected));
        return false;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, expected) {
        const fc_tensor *t = fc_safetensors_find(st, e->string);
        int nd = cJSON_GetArraySize(e);
        if (!t || t->type != FC_DTYPE_F32 || t->n_dims != nd) {
            printf("     %s: %s missing or wrong type/rank\n", what, e->string);
            return false;
        }
        int64_t nelem = 1;
        for (int k = 0; k < nd; k++) {
            int64_t dim = (int64_t)cJSON_GetArrayItem(e, nd - 1 - k)->valuedouble;
            if (t->ne[k] != dim) {
                printf("     %s: %s ne[%d] = %lld, expected %lld\n", what, e->string, k, (long long)t->ne[k],
                       (long long)dim);
                return false;
            }
            nelem *= dim;
        }
        if (t->nbytes != (size_t)nelem * 4) return false;
        for (int64_t i = 0; i < nelem; i++) {
            if (value_at(t, i) != (float)(i % 1000) * 0.25f) {
                printf("     %s: %s[%lld] = %g\n", what, e->string, (long long)i, value_at(t, i));
                return false;
            }
        }
    }
    return true;
}

static char *shard_names[16];
static int n_shard_names;

static void list_shards(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL && n_shard_names < 16) {
        size_t l = strlen(de->d_name);
        if (l > 12 && strcmp(de->d_name + l - 12, ".safetensors") == 0)
            shard_names[n_shard_names++] = strdup(de->d_name);
    }
    if (d) closedir(d);
}

/* Makes a temporary folder holding copies of the shards (and the index when
 * with_index). */
static bool make_shard_copy(char *tmpl, const char *src, bool with_index)
{
    if (!mkdtemp(tmpl)) return false;
    char a[2048], b[2048];
    for (int i = 0; i < n_shard_names; i++) {
        snprintf(a, sizeof a, "%s/%s", src, shard_names[i]);
        snprintf(b, sizeof b, "%s/%s", tmpl, shard_names[i]);
        if (!copy_file(a, b)) return false;
    }
    if (with_index) {
        snprintf(a, sizeof a, "%s/model.safetensors.index.json", src);
        snprintf(b, sizeof b, "%s/model.safetensors.index.json", tmpl);
        if (!copy_file(a, b)) return false;
    }
    return true;
}

/* Writes an index whose weight_map is the real one plus one extra entry. */
static bool write_index_with(const char *dir, const char *src_index, const char *key, const char *value)
{
    size_t n;
    uint8_t *b = tf_read_file(src_index, &n);
    cJSON *root = b ? cJSON_ParseWithLength((const char *)b, n) : NULL;
    free(b);
    if (!root) return false;
    cJSON_AddItemToObject(cJSON_GetObjectItem(root, "weight_map"), key, cJSON_CreateString(value));
    char *s = cJSON_Print(root);
    char p[2048];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    bool ok = write_file(p, s, strlen(s));
    free(s);
    cJSON_Delete(root);
    return ok;
}

static void test_sharded(void)
{
    char dir[1024], p[2048];
    path_of(dir, sizeof dir, "safetensors/sharded");
    snprintf(p, sizeof p, "%s/expected.json", dir);
    size_t n;
    uint8_t *b = tf_read_file(p, &n);
    cJSON *expected = b ? cJSON_ParseWithLength((const char *)b, n) : NULL;
    free(b);
    check(expected != NULL, "read %s", p);
    if (!expected) return;
    list_shards(dir);
    check(n_shard_names >= 2, "sharded: %d shard files", n_shard_names);

    fc_safetensors *st = fc_safetensors_open(dir);
    check(check_sharded(st, expected, "index"), "sharded folder with index.json: every tensor, shape and value");
    fc_safetensors_free(st);

    snprintf(p, sizeof p, "%s/%s", dir, n_shard_names ? shard_names[0] : "x");
    st = fc_safetensors_open(p);
    check(st && fc_safetensors_n_tensors(st) > 0 && fc_safetensors_n_tensors(st) < cJSON_GetArraySize(expected),
          "one shard opened as a file: a subset of the tensors");
    fc_safetensors_free(st);

    char tmp[] = "/tmp/fc_st_test_XXXXXX";
    if (make_shard_copy(tmp, dir, false)) {
        st = fc_safetensors_open(tmp);
        check(check_sharded(st, expected, "no index"), "folder without index: all *.safetensors files loaded");
        fc_safetensors_free(st);

        /* the same tensors twice in one folder */
        snprintf(p, sizeof p, "%s/%s", dir, shard_names[0]);
        char q[2048];
        snprintf(q, sizeof q, "%s/zz-copy.safetensors", tmp);
        copy_file(p, q);
        st = fc_safetensors_open(tmp);
        check(!st && has(fc_last_error(), "more than once"), "tensor present in two files rejected: %s",
              fc_last_error());
        fc_safetensors_free(st);
    } else {
        check(false, "make temporary folder");
    }
    rm_dir(tmp);

    char tmp2[] = "/tmp/fc_st_test_XXXXXX";
    char src_index[2048];
    snprintf(src_index, sizeof src_index, "%s/model.safetensors.index.json", dir);
    if (make_shard_copy(tmp2, dir, true)) {
        write_index_with(tmp2, src_index, "ghost.weight", shard_names[0]);
        st = fc_safetensors_open(tmp2);
        check(!st && has(fc_last_error(), "ghost.weight") && has(fc_last_error(), "missing"),
              "index naming a tensor absent from its shard rejected: %s", fc_last_error());
        fc_safetensors_free(st);

        write_index_with(tmp2, src_index, "x.weight", "../etc.safetensors");
        st = fc_safetensors_open(tmp2);
        check(!st && has(fc_last_error(), "shard file name"), "index pointing outside the folder rejected: %s",
              fc_last_error());
        fc_safetensors_free(st);

        write_index_with(tmp2, src_index, "x.weight", "absent.safetensors");
        st = fc_safetensors_open(tmp2);
        check(!st && has(fc_last_error(), "absent.safetensors"), "index naming a missing shard rejected: %s",
              fc_last_error());
        fc_safetensors_free(st);

        snprintf(p, sizeof p, "%s/model.safetensors.index.json", tmp2);
        write_file(p, "{\"weight_map\": 3}", 17);
        st = fc_safetensors_open(tmp2);
        check(!st && has(fc_last_error(), "weight_map"), "index without a weight_map object rejected: %s",
              fc_last_error());
        fc_safetensors_free(st);
    } else {
        check(false, "make temporary folder");
    }
    rm_dir(tmp2);

    /* model.safetensors takes precedence over other files */
    char tmp3[] = "/tmp/fc_st_test_XXXXXX";
    if (mkdtemp(tmp3)) {
        char a[1024];
        path_of(a, sizeof a, "safetensors/basic.safetensors");
        snprintf(p, sizeof p, "%s/model.safetensors", tmp3);
        copy_file(a, p);
        path_of(a, sizeof a, "safetensors/f16.safetensors");
        snprintf(p, sizeof p, "%s/other.safetensors", tmp3);
        copy_file(a, p);
        st = fc_safetensors_open(tmp3);
        check(st && fc_safetensors_n_tensors(st) == 10 && !fc_safetensors_find(st, "w"),
              "folder with model.safetensors: only that file is read");
        fc_safetensors_free(st);
        rm_dir(tmp3);
        mkdtemp(strcpy(tmp3, "/tmp/fc_st_test_XXXXXX"));
        st = fc_safetensors_open(tmp3);
        check(!st && has(fc_last_error(), "no model.safetensors"), "empty folder rejected: %s", fc_last_error());
        rm_dir(tmp3);
    }
    st = fc_safetensors_open("/nonexistent/model.safetensors");
    check(!st && has(fc_last_error(), "/nonexistent"), "missing path rejected: %s", fc_last_error());

    for (int i = 0; i < n_shard_names; i++) free(shard_names[i]);
    cJSON_Delete(expected);
}

/* ---- truncation ---- */

/* fc_safetensors_parse as a tf_parse_fn */
static bool parses(const uint8_t *data, size_t size, const char *name)
{
    fc_safetensors *st = fc_safetensors_parse(data, size, name);
    fc_safetensors_free(st);
    return st != NULL;
}

static void test_prefixes(const char *rel)
{
    char path[1024];
    path_of(path, sizeof path, rel);
    size_t n;
    uint8_t *full = tf_read_file(path, &n);
    if (!full) {
        check(false, "read %s", path);
        return;
    }
    size_t silent = 0, accepted = tf_prefixes_accepted(full, n, rel, parses, &silent);
    fc_safetensors *st = fc_safetensors_parse(full, n, rel);
    check(st != NULL, "%s: whole file accepted", rel);
    fc_safetensors_free(st);
    check(accepted == 0 && silent == 0, "%s: all %zu truncated prefixes rejected with a message", rel, n);
    free(full);
}

/* ---- hand-made headers ---- */

/* Builds u64 len + header + data_len bytes (value i & 0xff) and parses it.
 * Returns the object (or NULL); *buf receives the buffer to free. */
static fc_safetensors *parse_hdr(const char *hdr, size_t data_len, uint8_t **buf)
{
    size_t h = strlen(hdr), n = 8 + h + data_len;
    uint8_t *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, hdr, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (uint8_t)i;
    *buf = b;
    return fc_safetensors_parse(b, n, "hand.safetensors");
}

static void expect_reject(const char *what, const char *hdr, size_t data_len, const char *word)
{
    uint8_t *b;
    fc_safetensors *st = parse_hdr(hdr, data_len, &b);
    const char *msg = fc_last_error();
    check(!st && has(msg, "hand.safetensors") && (!word || has(msg, word)), "%s rejected: %s", what,
          st ? "(accepted)" : msg);
    fc_safetensors_free(st);
    free(b);
}

static void test_corrupt(void)
{
    uint8_t *b;
    fc_safetensors *st = parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", 8, &b);
    check(st && fc_safetensors_n_tensors(st) == 1 && fc_safetensors_find(st, "a")->nbytes == 8,
          "minimal valid file (space padded) accepted");
    fc_safetensors_free(st);
    free(b);

    st = parse_hdr("{}", 0, &b);
    check(st && fc_safetensors_n_tensors(st) == 0, "empty header {} accepted with 0 tensors");
    fc_safetensors_free(st);
    free(b);
    st = parse_hdr("{\"__metadata__\":{\"format\":\"pt\"}}", 0, &b);
    check(st && fc_safetensors_n_tensors(st) == 0, "__metadata__ only: 0 tensors");
    fc_safetensors_free(st);
    free(b);
    st = parse_hdr("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, &b);
    check(st && fc_safetensors_find(st, "a") && fc_safetensors_find(st, "a")->type == -1 &&
          fc_safetensors_find(st, "a")->nbytes == 2, "unknown dtype kept as type -1 after the range check");
    fc_safetensors_free(st);
    free(b);

    /* header of 7 bytes puts the data at offset 15: the F32 tensor is copied to aligned memory */
    st = parse_hdr("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}", 9, &b);
    const fc_tensor *t = fc_safetensors_find(st, "a");
    uint8_t want[8];
    for (int i = 0; i < 8; i++) want[i] = (uint8_t)(i + 1);
    check(t && (uintptr_t)t->data % 4 == 0 && memcmp(t->data, want, 8) == 0,
          "misaligned F32 data copied to an aligned buffer, bytes preserved");
    fc_safetensors_free(st);
    free(b);

    expect_reject("end past the data section",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "data_offsets");
    expect_reject("begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
                  "data_offsets");
    expect_reject("size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "bytes");
    expect_reject("F16 size mismatch", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", 8,
                  "bytes");
    expect_reject("negative offset", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 8, NULL);
    expect_reject("huge offset", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1e300,1e301]}}", 8, NULL);
    expect_reject("data_offsets of one element", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}",
                  8, "data_offsets");
    expect_reject("missing data_offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 8, "data_offsets");
    expect_reject("missing dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 8, "dtype");
    expect_reject("numeric dtype", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 8, "dtype");
    expect_reject("missing shape", "{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 8, "shape");
    expect_reject("negative dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 8, "shape");
    expect_reject("fractional dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 8, "shape");
    expect_reject("string dim", "{\"a\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 8, "shape");
    expect_reject("shape product overflow",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                  "\"data_offsets\":[0,0]}}", 8, "overflow");
    expect_reject("nelem * 4 overflow",
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,1024],\"data_offsets\":[0,0]}}", 8, NULL);
    expect_reject("5 dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 8,
                  "dimensions");
    expect_reject("9 dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 8,
                  "dimensions");
    expect_reject("entry not an object", "{\"a\":5}", 8, "object");
    expect_reject("duplicate name",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                  "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 8, "more than once");
    expect_reject("bad JSON", "{\"a\":{\"dtype\":\"U8\",", 8, "JSON");
    expect_reject("top level array", "[1,2]", 8, "JSON");
    expect_reject("trailing garbage after the object", "{}xy", 8, "trailing");
    expect_reject("header of one byte", "{", 8, "JSON");

    /* header lengths that do not fit the file */
    uint8_t h[16] = {0};
    h[7] = 0x40; /* 2^62 */
    st = fc_safetensors_parse(h, sizeof h, "hand.safetensors");
    check(!st && has(fc_last_error(), "limit"), "header length 2^62 rejected: %s", fc_last_error());
    memset(h, 0, sizeof h);
    h[0] = 0x00; h[1] = 0xc2; h[2] = 0xeb; h[3] = 0x0b; /* 200,000,000 */
    st = fc_safetensors_parse(h, sizeof h, "hand.safetensors");
    check(!st && has(fc_last_error(), "limit"), "header length 200 MB rejected: %s", fc_last_error());
    memset(h, 0, sizeof h);
    h[0] = 9; /* one byte past the end */
    st = fc_safetensors_parse(h, sizeof h, "hand.safetensors");
    check(!st && has(fc_last_error(), "past the end"), "header length past the end rejected: %s", fc_last_error());
    st = fc_safetensors_parse(h, 5, "hand.safetensors");
    check(!st && has(fc_last_error(), "too short"), "5-byte file rejected: %s", fc_last_error());
    st = fc_safetensors_parse(NULL, 0, "hand.safetensors");
    check(!st, "NULL, 0 rejected: %s", fc_last_error());
}

/* ---- config.json ---- */

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

static bool close_to(double a, double b) { return fabs(a - b) <= 1e-6 * fabs(b); }

static void test_config_file(const char *name, const cJSON *e)
{
    char path[1024], rel[256];
    snprintf(rel, sizeof rel, "safetensors/configs/%s.json", name);
    path_of(path, sizeof path, rel);
    fc_model_config c;
    memset(&c, 0x5a, sizeof c);
    enum fc_status s = fc_hf_config_load(path, &c);
    check(s == FC_OK, "config %s parsed (%s)", name, s == FC_OK ? "ok" : fc_last_error());
    if (s != FC_OK) return;

    const char *mt = cJSON_GetObjectItem(e, "model_type")->valuestring;
    bool qwen = strcmp(mt, "qwen2") == 0;
    check(c.arch == (qwen ? FC_ARCH_QWEN2 : FC_ARCH_LLAMA) && strcmp(c.arch_name, qwen ? "qwen2" : "llama") == 0 &&
          c.qkv_bias == qwen && c.rope_neox,
          "%s: arch %s, qkv_bias %d, rope_neox", name, c.arch_name, c.qkv_bias);
    check(c.n_vocab == num(e, "vocab_size") && c.n_embd == num(e, "hidden_size") &&
          c.n_layer == num(e, "num_hidden_layers") && c.n_ff == num(e, "intermediate_size"),
          "%s: V %d C %d L %d FF %d", name, c.n_vocab, c.n_embd, c.n_layer, c.n_ff);
    check(c.n_head == num(e, "num_attention_heads") && c.n_head_kv == num(e, "num_key_value_heads") &&
          c.head_dim == num(e, "head_dim"),
          "%s: NH %d NKV %d HS %d as transformers reads them", name, c.n_head, c.n_head_kv, c.head_dim);
    check(close_to(c.rms_eps, num(e, "rms_norm_eps")) && close_to(c.rope_theta, num(e, "rope_theta")),
          "%s: rms_eps %g rope_theta %g", name, (double)c.rms_eps, (double)c.rope_theta);
    check(c.tied_embeddings == cJSON_IsTrue(cJSON_GetObjectItem(e, "tie_word_embeddings")) &&
          c.bos_id == num(e, "bos_token_id") && c.eos_id == num(e, "eos_token_id"),
          "%s: tied %d bos %d eos %d", name, c.tied_embeddings, c.bos_id, c.eos_id);

    const char *rt = cJSON_GetObjectItem(e, "rope_type")->valuestring;
    bool rope_ok;
    double factor = 1.0;
    if (strcmp(rt, "linear") == 0) {
        factor = num(e, "factor");
        rope_ok = c.rope_scaling == FC_ROPE_SCALING_LINEAR && close_to(c.rope_factor, factor);
    } else if (strcmp(rt, "llama3") == 0) {
        rope_ok = c.rope_scaling == FC_ROPE_SCALING_LLAMA3 && close_to(c.rope_factor, num(e, "factor")) &&
                  close_to(c.rope_low_freq_factor, num(e, "low_freq_factor")) &&
                  close_to(c.rope_high_freq_factor, num(e, "high_freq_factor")) &&
                  c.rope_orig_ctx == num(e, "original_max_position_embeddings");
    } else {
        rope_ok = c.rope_scaling == FC_ROPE_SCALING_NONE;
    }
    check(rope_ok, "%s: rope scaling '%s' (factor %g)", name, rt, (double)c.rope_factor);

    /* FastChat's context length (linear factor applied); the sliding window
     * as transformers reads it (attention is windowed, the context is not capped) */
    double ctx = floor(num(e, "max_position_embeddings") * factor);
    double win = num(e, "sliding_window");
    check(c.n_ctx_train == ctx, "%s: n_ctx_train %d (expected %.0f)", name, c.n_ctx_train, ctx);
    check(c.sliding_window == (win > 0 ? win : 0) && (qwen || c.swa_first_layer == 0) && !c.swa_even,
          "%s: sliding window %d (expected %.0f)", name, c.sliding_window, win);

    /* every strict prefix short of the final newline is invalid JSON */
    size_t n;
    uint8_t *full = tf_read_file(path, &n);
    size_t bad = 0;
    for (size_t len = 0; full && len + 1 < n; len++) {
        char *pre = malloc(len ? len : 1);
        memcpy(pre, full, len);
        fc_model_config c2;
        if (fc_hf_config_parse(pre, len, rel, &c2) == FC_OK) bad++;
        free(pre);
    }
    check(full && bad == 0, "%s: all %zu truncated prefixes rejected", name, n ? n - 1 : 0);
    free(full);
}

static enum fc_status parse_str(const char *json, fc_model_config *c)
{
    memset(c, 0, sizeof *c);
    return fc_hf_config_parse(json, strlen(json), "inline.json", c);
}

#define BASE "\"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, " \
             "\"intermediate_size\": 128, \"vocab_size\": 100"

static void expect_cfg_error(const char *what, const char *json, enum fc_status want, const char *word)
{
    fc_model_config c;
    enum fc_status s = parse_str(json, &c);
    check(s == want && has(fc_last_error(), "inline.json") && has(fc_last_error(), word),
          "%s -> %s: %s", what, fc_status_str(s), fc_last_error());
}

static void test_configs(void)
{
    char path[1024];
    path_of(path, sizeof path, "safetensors/configs/expected.json");
    size_t n;
    uint8_t *b = tf_read_file(path, &n);
    cJSON *expected = b ? cJSON_ParseWithLength((const char *)b, n) : NULL;
    free(b);
    check(expected && cJSON_GetArraySize(expected) == 7, "read %s (7 configs)", path);
    const cJSON *e;
    cJSON_ArrayForEach(e, expected) test_config_file(e->string, e);
    cJSON_Delete(expected);

    /* transformers 4.x layout, as Llama-2 / Llama-3.1 / LongChat configs on the Hub carry it */
    fc_model_config c;
    enum fc_status s = parse_str("{\"model_type\": \"llama\", " BASE ", \"rope_theta\": 500000.0, "
                                 "\"rope_scaling\": null, \"max_position_embeddings\": 4096, "
                                 "\"num_key_value_heads\": 2, \"eos_token_id\": [7, 8], \"bos_token_id\": null}", &c);
    check(s == FC_OK && c.rope_theta == 500000.0f && c.rope_scaling == FC_ROPE_SCALING_NONE && c.n_ctx_train == 4096 &&
          c.n_head_kv == 2 && c.head_dim == 16 && c.eos_id == 7 && c.bos_id == -1 && close_to(c.rms_eps, 1e-6),
          "4.x layout: rope_theta top level, eos list -> first, bos null -> -1, defaults");
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"max_position_embeddings\": 131072, \"rope_scaling\": "
                  "{\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                  "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}}", &c);
    check(s == FC_OK && c.rope_scaling == FC_ROPE_SCALING_LLAMA3 && c.rope_factor == 8.0f && c.rope_orig_ctx == 8192 &&
          c.n_ctx_train == 131072, "4.x llama3 rope_scaling: n_ctx_train not multiplied (%d)", c.n_ctx_train);
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"max_position_embeddings\": 2048, "
                  "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 8.0}}", &c);
    check(s == FC_OK && c.rope_scaling == FC_ROPE_SCALING_LINEAR && c.n_ctx_train == 16384,
          "4.x linear rope_scaling {type: linear, factor 8}: n_ctx_train 2048 * 8 = %d", c.n_ctx_train);
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"max_position_embeddings\": 2048, "
                  "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}", &c);
    check(s == FC_OK && c.rope_scaling == FC_ROPE_SCALING_NONE && c.n_ctx_train == 2048,
          "dynamic scaling: loaded as none, context kept at 2048 (%d)", c.n_ctx_train);
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"rope_type\": \"default\"}}", &c);
    check(s == FC_OK && c.rope_scaling == FC_ROPE_SCALING_NONE && c.n_ctx_train == 2048,
          "rope_type default: no scaling; no context key: llama class default 2048");
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"max_sequence_length\": 16384}", &c);
    check(s == FC_OK && c.n_ctx_train == 16384, "max_sequence_length used when max_position_embeddings absent");
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"seq_length\": 8192, \"model_max_length\": 4096}", &c);
    check(s == FC_OK && c.n_ctx_train == 8192, "seq_length before model_max_length (FastChat key order)");
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"max_seq_len\": 3000, "
                  "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 1.5}}", &c);
    check(s == FC_OK && c.n_ctx_train == 4500, "max_seq_len times linear factor 1.5 = %d", c.n_ctx_train);
    s = parse_str("{\"architectures\": [\"MistralForCausalLM\"], " BASE ", \"max_position_embeddings\": 32768}", &c);
    check(s == FC_OK && c.arch == FC_ARCH_LLAMA && c.n_ctx_train == 32768 && c.sliding_window == 4096,
          "architectures only (Mistral), sliding_window absent -> class default window 4096 (ctx %d, window %d)",
          c.n_ctx_train, c.sliding_window);
    s = parse_str("{\"model_type\": \"mistral\", " BASE ", \"max_position_embeddings\": 32768, "
                  "\"sliding_window\": null}", &c);
    check(s == FC_OK && c.n_ctx_train == 32768 && c.sliding_window == 0,
          "mistral sliding_window null: full context %d, no window", c.n_ctx_train);
    s = parse_str("{\"model_type\": \"qwen2\", " BASE ", \"max_position_embeddings\": 32768, "
                  "\"use_sliding_window\": true, \"sliding_window\": 4096}", &c);
    check(s == FC_OK && c.arch == FC_ARCH_QWEN2 && c.qkv_bias && c.n_ctx_train == 32768 &&
          c.sliding_window == 4096 && c.swa_first_layer == 28,
          "qwen2 use_sliding_window: window 4096 from layer 28 (max_window_layers default), context %d",
          c.n_ctx_train);
    s = parse_str("{\"architectures\": [\"Qwen2ForCausalLM\"], " BASE ", \"sliding_window\": 4096, "
                  "\"use_sliding_window\": false}", &c);
    check(s == FC_OK && c.arch == FC_ARCH_QWEN2 && c.n_ctx_train == 32768 && c.sliding_window == 0,
          "qwen2 by architectures, window unused: class default context 32768");
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"hidden_size\": 128}", &c);
    check(s == FC_OK && c.n_embd == 128 && c.head_dim == 32, "repeated key: the last one wins, as in Python's json");
    s = parse_str("{\"model_type\": \"llama\", " BASE ", \"head_dim\": 32}", &c);
    check(s == FC_OK && c.head_dim == 32, "explicit head_dim differing from C / NH kept");

    expect_cfg_error("missing hidden_size",
                     "{\"model_type\": \"llama\", \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                     "\"intermediate_size\": 128, \"vocab_size\": 100}", FC_ERR_FORMAT, "hidden_size");
    expect_cfg_error("missing vocab_size",
                     "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 128}", FC_ERR_FORMAT, "vocab_size");
    expect_cfg_error("no model_type or architectures", "{" BASE "}", FC_ERR_FORMAT, "model_type");
    expect_cfg_error("model_type gemma", "{\"model_type\": \"gemma\", " BASE "}", FC_ERR_UNSUPPORTED, "gemma");
    expect_cfg_error("architecture Phi", "{\"architectures\": [\"PhiForCausalLM\"], " BASE "}",
                     FC_ERR_UNSUPPORTED, "PhiForCausalLM");
    expect_cfg_error("gemma2 exact gelu", "{\"model_type\": \"gemma2\", " BASE ", \"hidden_activation\": \"gelu\"}",
                     FC_ERR_UNSUPPORTED, "gelu");
    expect_cfg_error("phi3 partial rotary", "{\"model_type\": \"phi3\", " BASE ", \"partial_rotary_factor\": 0.75}",
                     FC_ERR_UNSUPPORTED, "partial_rotary_factor");
    expect_cfg_error("phi3 longrope short of factors",
                     "{\"model_type\": \"phi3\", " BASE ", \"rope_scaling\": {\"type\": \"longrope\", "
                     "\"short_factor\": [1, 1], \"long_factor\": [1, 1]}}", FC_ERR_FORMAT, "short_factor");
    expect_cfg_error("layer_types pattern",
                     "{\"model_type\": \"mistral\", " BASE ", \"layer_types\": [\"full_attention\", \"sliding_attention\", "
                     "\"full_attention\"], \"num_hidden_layers\": 3}", FC_ERR_UNSUPPORTED, "pattern");
    s = parse_str("{\"model_type\": \"gemma2\", " BASE "}", &c);
    check(s == FC_OK && c.arch == FC_ARCH_GEMMA2 && c.head_dim == 256 && c.tied_embeddings && c.swa_even &&
          c.sliding_window == 4096 && c.attn_softcap == 50.0f && c.final_softcap == 30.0f &&
          c.attn_scale == 1.0f / 16.0f && c.ffn_act == FC_ACT_GELU_TANH && c.embd_scale && c.post_norms &&
          c.n_ctx_train == 8192, "gemma2 class defaults (head_dim 256, caps 50/30, window 4096 on even layers)");
    s = parse_str("{\"model_type\": \"gemma2\", " BASE ", \"attn_logit_softcapping\": null, "
                  "\"final_logit_softcapping\": null, \"sliding_window\": null}", &c);
    check(s == FC_OK && c.attn_softcap == 0 && c.final_softcap == 0 && c.sliding_window == 0,
          "gemma2 null soft-caps and window: none");
    s = parse_str("{\"model_type\": \"phi3\", " BASE ", \"max_position_embeddings\": 131072, "
                  "\"original_max_position_embeddings\": 4096, \"rope_scaling\": {\"type\": \"su\", "
                  "\"short_factor\": [1, 1, 1, 1, 1, 1, 1, 2], \"long_factor\": [1, 2, 3, 4, 5, 6, 7, 8]}}", &c);
    check(s == FC_OK && c.arch == FC_ARCH_PHI3 && c.rope_scaling == FC_ROPE_SCALING_LONGROPE &&
          c.rope_orig_ctx == 4096 && c.rope_ext[0][7] == 2.0f && c.rope_ext[1][7] == 8.0f &&
          fabs(c.rope_attn_factor - sqrt(1 + log(32.0) / log(4096.0))) < 1e-6 && c.n_ctx_train == 131072,
          "phi3 'su' scaling = longrope: attention factor %g", (double)c.rope_attn_factor);
    expect_cfg_error("yarn scaling",
                     "{\"model_type\": \"qwen2\", " BASE ", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0}}",
                     FC_ERR_UNSUPPORTED, "yarn");
    expect_cfg_error("linear without factor",
                     "{\"model_type\": \"llama\", " BASE ", \"rope_scaling\": {\"type\": \"linear\"}}",
                     FC_ERR_FORMAT, "factor");
    expect_cfg_error("llama3 without original_max_position_embeddings",
                     "{\"model_type\": \"llama\", " BASE ", \"rope_parameters\": {\"rope_type\": \"llama3\", "
                     "\"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4}}",
                     FC_ERR_FORMAT, "original_max_position_embeddings");
    expect_cfg_error("llama3 with high == low",
                     "{\"model_type\": \"llama\", " BASE ", \"rope_parameters\": {\"rope_type\": \"llama3\", "
                     "\"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 4, "
                     "\"original_max_position_embeddings\": 8192}}", FC_ERR_FORMAT, "high_freq_factor");
    expect_cfg_error("NKV not dividing NH", "{\"model_type\": \"llama\", " BASE ", \"num_key_value_heads\": 3}",
                     FC_ERR_FORMAT, "num_key_value_heads");
    expect_cfg_error("C not divisible by NH",
                     "{\"model_type\": \"llama\", \"hidden_size\": 66, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 100}",
                     FC_ERR_FORMAT, "divisible");
    expect_cfg_error("odd head_dim", "{\"model_type\": \"llama\", " BASE ", \"head_dim\": 15}", FC_ERR_FORMAT,
                     "head_dim");
    expect_cfg_error("negative vocab",
                     "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": -5}",
                     FC_ERR_FORMAT, "vocab_size");
    expect_cfg_error("zero layers",
                     "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 0, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 100}",
                     FC_ERR_FORMAT, "num_hidden_layers");
    expect_cfg_error("string hidden_size",
                     "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"num_hidden_layers\": 2, "
                     "\"num_attention_heads\": 4, \"intermediate_size\": 128, \"vocab_size\": 100}",
                     FC_ERR_FORMAT, "hidden_size");
    expect_cfg_error("rms_norm_eps 0", "{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": 0}", FC_ERR_FORMAT,
                     "rms_norm_eps");
    expect_cfg_error("rms_norm_eps 1e-76 (0 as a float)", "{\"model_type\": \"llama\", " BASE ", \"rms_norm_eps\": 1e-76}",
                     FC_ERR_FORMAT, "rms_norm_eps");
    expect_cfg_error("hidden_act gelu", "{\"model_type\": \"llama\", " BASE ", \"hidden_act\": \"gelu\"}",
                     FC_ERR_UNSUPPORTED, "gelu");
    expect_cfg_error("llama attention_bias", "{\"model_type\": \"llama\", " BASE ", \"attention_bias\": true}",
                     FC_ERR_UNSUPPORTED, "attention_bias");
    expect_cfg_error("tie_word_embeddings string",
                     "{\"model_type\": \"llama\", " BASE ", \"tie_word_embeddings\": \"yes\"}", FC_ERR_FORMAT,
                     "tie_word_embeddings");
    expect_cfg_error("context times factor overflow",
                     "{\"model_type\": \"llama\", " BASE ", \"max_position_embeddings\": 2000000000, "
                     "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}}", FC_ERR_FORMAT, "out of range");
    expect_cfg_error("bad JSON", "{\"model_type\": \"llama\",", FC_ERR_FORMAT, "JSON");
    expect_cfg_error("top level array", "[]", FC_ERR_FORMAT, "JSON");
    check(fc_hf_config_parse(NULL, 0, "x", &c) != FC_OK && fc_hf_config_parse("{}", 2, "x", NULL) == FC_ERR_ARG,
          "NULL arguments rejected");
    check(fc_hf_config_load("/nonexistent/config.json", &c) == FC_ERR_IO, "missing config file -> FC_ERR_IO");
}

int main(void)
{
    tf_data_dir_init();
    fc_log_set_level(FC_LOG_LEVEL_NONE); /* messages are checked via fc_last_error */

    test_basic();
    test_sharded();
    test_prefixes("safetensors/basic.safetensors");
    test_prefixes("safetensors/f16.safetensors");
    test_prefixes("safetensors/sharded/model-00001-of-00003.safetensors");
    test_prefixes("safetensors/sharded/model-00003-of-00003.safetensors");
    test_corrupt();
    test_configs();
    return tf_end();
}
