/*
 * safetensors.c: reader for Hugging Face safetensors files and sharded model
 * folders (format: https://github.com/huggingface/safetensors, "Format").
 *
 * A file is: u64 little-endian N, N bytes of JSON header, data section.
 * Every header entry is checked before a tensor view is made:
 *   - N <= file size - 8 and N <= 100 MB (the limit the reference Rust crate
 *     uses, MAX_HEADER_SIZE); the JSON must be one object followed only by
 *     whitespace padding;
 *   - "dtype" a string, "shape" an array of at most 4 non-negative integers
 *     (the engine's FC_MAX_DIMS) whose product does not overflow,
 *     "data_offsets" [begin, end] with begin <= end <= data size and
 *     end - begin == element count * element size;
 *   - names unique across the whole file or folder.
 * F32, F16 and BF16 become fc_tensor views of those types. Other dtypes the
 * format defines (F64, I64, U8, BOOL, ...) load as type -1 with their byte
 * count, so a file carrying them still opens; a dtype name we do not know is
 * also kept as type -1 after the range check alone (its element size, e.g.
 * of sub-byte float formats, is not something we can verify).
 *
 * Tensors point into the read-only mapping. The one exception: a tensor
 * whose data is not aligned to its element size (possible in files from
 * writers that do not pad the header as the Python package does) is copied
 * into an aligned buffer owned by the object, so that kernels can read it as
 * float / uint16_t without undefined behaviour.
 *
 * Lookups by name use a sorted array and binary search; tensor i is the i-th
 * name in byte order (strcmp), not the order of the header.
 *
 * Not done here: writing safetensors (training checkpoints live elsewhere),
 * interpreting __metadata__ (ignored), mapping HF tensor names to GGUF names
 * (the model loader does that).
 */
#include "safetensors.h"
#include "format/torch_bin.h"
#include "tensor/tensor_index.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define ST_MAX_SHAPE_DIMS 8 /* what we parse; more than FC_MAX_DIMS is then an error */

struct fc_safetensors {
    fc_mmap **maps;   /* (n_files) owned; NULL entries for fc_safetensors_parse */
    char **files;     /* (n_files) owned file names, for messages */
    int n_files;
    fc_tensor_index ix; /* the tensors, by name (file: index into maps/files) */
    void **copies;    /* aligned copies of misaligned tensors, owned */
    int64_t n_copies, cap_copies;
    fc_torch_bin *tb; /* owned: the PyTorch checkpoint the tensors view, if any */
};

/* Where tensors with no elements point. */
static const uint64_t empty_data[1];

/* ---- dtypes ---- */

struct st_dtype {
    const char *name;
    enum fc_dtype type; /* FC_DTYPE_NONE for types the engine does not use */
    size_t size;   /* bytes per element */
};

/* Every byte-sized dtype of the safetensors spec (safetensors 0.4 Dtype). */
static const struct st_dtype st_dtypes[] = {
    {"F32", FC_DTYPE_F32, 4}, {"F16", FC_DTYPE_F16, 2}, {"BF16", FC_DTYPE_BF16, 2},
    {"F64", -1, 8},  {"I64", -1, 8}, {"U64", -1, 8}, {"I32", -1, 4}, {"U32", -1, 4},
    {"I16", -1, 2},  {"U16", -1, 2}, {"I8", -1, 1},  {"U8", -1, 1},  {"BOOL", -1, 1},
    {"F8_E4M3", -1, 1}, {"F8_E5M2", -1, 1}, {"F8_E8M0", -1, 1},
};

static const struct st_dtype *dtype_lookup(const char *name)
{
    for (size_t i = 0; i < FC_ARRAY_LEN(st_dtypes); i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

/* ---- helpers ---- */

/* A JSON number that is a non-negative integer exactly representable in a
 * double (<= 2^53); anything else (fractions, negatives, 1e400) is rejected. */
static bool json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0 && d <= 9007199254740992.0) || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static void keep_copy(fc_safetensors *st, void *p)
{
    if (st->n_copies == st->cap_copies) {
        st->cap_copies = st->cap_copies ? st->cap_copies * 2 : 8;
        st->copies = fc_xrealloc(st->copies, (size_t)st->cap_copies * sizeof *st->copies);
    }
    st->copies[st->n_copies++] = p;
}

static int file_add(fc_safetensors *st, const char *name, fc_mmap *m)
{
    st->maps = fc_xrealloc(st->maps, (size_t)(st->n_files + 1) * sizeof *st->maps);
    st->files = fc_xrealloc(st->files, (size_t)(st->n_files + 1) * sizeof *st->files);
    st->maps[st->n_files] = m;
    st->files[st->n_files] = fc_xstrdup(name);
    return st->n_files++;
}

/* ---- one file ---- */

/* Parses one entry of the header into t and its element size into *esize
 * (1 for dtypes we do not know). Returns false (logged) on error. */
static bool parse_entry(const cJSON *e, const char *fname, const char *tname,
                        const uint8_t *data, uint64_t data_size, fc_tensor *t, size_t *esize)
{
    if (!cJSON_IsObject(e)) {
        FC_LOG_ERROR("%s: tensor '%s': entry is not an object", fname, tname);
        return false;
    }
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !jd->valuestring) {
        FC_LOG_ERROR("%s: tensor '%s': missing or non-string \"dtype\"", fname, tname);
        return false;
    }
    if (!cJSON_IsArray(js)) {
        FC_LOG_ERROR("%s: tensor '%s': missing or non-array \"shape\"", fname, tname);
        return false;
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2) {
        FC_LOG_ERROR("%s: tensor '%s': \"data_offsets\" must be [begin, end]", fname, tname);
        return false;
    }

    /* shape [d0, ..., dn-1] (outermost first) -> ne reversed, product checked */
    uint64_t shape[ST_MAX_SHAPE_DIMS];
    int n_dims = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, js) {
        if (n_dims == ST_MAX_SHAPE_DIMS) {
            FC_LOG_ERROR("%s: tensor '%s': more than %d dimensions", fname, tname, ST_MAX_SHAPE_DIMS);
            return false;
        }
        if (!json_u64(it, &shape[n_dims])) {
            FC_LOG_ERROR("%s: tensor '%s': shape entries must be non-negative integers", fname, tname);
            return false;
        }
        n_dims++;
    }
    if (n_dims > FC_MAX_DIMS) {
        FC_LOG_ERROR("%s: tensor '%s': %d dimensions, at most %d supported", fname, tname,
                     n_dims, FC_MAX_DIMS);
        return false;
    }
    uint64_t nelem = 1;
    for (int i = 0; i < n_dims; i++) {
        if (__builtin_mul_overflow(nelem, shape[i], &nelem) || nelem > (uint64_t)INT64_MAX) {
            FC_LOG_ERROR("%s: tensor '%s': element count overflows", fname, tname);
            return false;
        }
    }

    uint64_t begin, end;
    if (!json_u64(cJSON_GetArrayItem(jo, 0), &begin) || !json_u64(cJSON_GetArrayItem(jo, 1), &end)) {
        FC_LOG_ERROR("%s: tensor '%s': data_offsets must be non-negative integers", fname, tname);
        return false;
    }
    if (begin > end || end > data_size) {
        FC_LOG_ERROR("%s: tensor '%s': data_offsets [%llu, %llu] outside the data section of %llu bytes",
                     fname, tname, (unsigned long long)begin, (unsigned long long)end,
                     (unsigned long long)data_size);
        return false;
    }

    const struct st_dtype *dt = dtype_lookup(jd->valuestring);
    if (dt) {
        uint64_t want;
        if (__builtin_mul_overflow(nelem, (uint64_t)dt->size, &want) || want != end - begin) {
            FC_LOG_ERROR("%s: tensor '%s': %llu bytes of data for %llu elements of %s",
                         fname, tname, (unsigned long long)(end - begin),
                         (unsigned long long)nelem, dt->name);
            return false;
        }
    }

    memset(t, 0, sizeof *t);
    t->type = dt ? dt->type : -1;
    t->n_dims = n_dims ? n_dims : 1;
    for (int i = 0; i < FC_MAX_DIMS; i++) t->ne[i] = 1;
    for (int i = 0; i < n_dims; i++) t->ne[i] = (int64_t)shape[n_dims - 1 - i];
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    *esize = dt ? dt->size : 1;
    return true;
}

/* Parses the file in data[0..size) and appends its tensors to st as file
 * index `file`. Returns false (logged with fname) on any error; entries added
 * before the error stay in st and are freed with it. */
static bool parse_file(fc_safetensors *st, const uint8_t *data, size_t size, const char *fname, int file)
{
    if (size < 8) {
        FC_LOG_ERROR("%s: %zu bytes, too short for a safetensors header", fname, size);
        return false;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n > ST_MAX_HEADER) {
        FC_LOG_ERROR("%s: header length %llu exceeds the %llu byte limit", fname,
                     (unsigned long long)n, (unsigned long long)ST_MAX_HEADER);
        return false;
    }
    if (n > size - 8) {
        FC_LOG_ERROR("%s: header length %llu runs past the end of the file (%zu bytes)", fname,
                     (unsigned long long)n, size);
        return false;
    }
    const char *hdr = (const char *)data + 8;
    if (n < 2 || hdr[0] != '{') {
        FC_LOG_ERROR("%s: header is not a JSON object", fname);
        return false;
    }
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &parse_end, false);
    if (!root || !cJSON_IsObject(root)) {
        FC_LOG_ERROR("%s: header is not valid JSON", fname);
        cJSON_Delete(root);
        return false;
    }
    /* The Python writer pads the header with spaces to a multiple of 8. */
    for (const char *p = parse_end; p && p < hdr + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            FC_LOG_ERROR("%s: trailing bytes after the JSON header", fname);
            cJSON_Delete(root);
            return false;
        }
    }

    const uint8_t *dsec = data + 8 + n;
    uint64_t dsize = (uint64_t)size - 8 - n;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const char *tname = e->string ? e->string : "";
        if (strcmp(tname, "__metadata__") == 0) continue;
        fc_tensor t;
        size_t esize;
        if (!parse_entry(e, fname, tname, dsec, dsize, &t, &esize)) goto fail;
        if (t.nbytes == 0) {
            t.data = empty_data; /* aligned, never read; NULL would mean "absent" */
        } else if (esize > 1 && ((uintptr_t)t.data % esize) != 0) {
            void *copy = fc_aligned_alloc(t.nbytes);
            if (!copy) {
                FC_LOG_ERROR("%s: tensor '%s': out of memory copying %zu misaligned bytes",
                             fname, tname, t.nbytes);
                goto fail;
            }
            memcpy(copy, t.data, t.nbytes);
            keep_copy(st, copy);
            t.data = copy;
            FC_LOG_DEBUG("%s: tensor '%s' is misaligned, copied", fname, tname);
        }
        fc_tensor_index_add(&st->ix, fc_xstrdup(tname), &t, file);
    }
    cJSON_Delete(root);
    return true;
fail:
    cJSON_Delete(root);
    return false;
}

/* ---- sorting and lookup ---- */

/* ---- public API ---- */

fc_safetensors *fc_safetensors_parse(const uint8_t *data, size_t size, const char *name)
{
    if (!name) name = "safetensors";
    if (!data && size) {
        FC_LOG_ERROR("%s: NULL buffer", name);
        return NULL;
    }
    fc_safetensors *st = fc_xcalloc(1, sizeof *st);
    int f = file_add(st, name, NULL);
    if (!parse_file(st, data ? data : (const uint8_t *)"", size, name, f)) goto fail;
    if (!fc_tensor_index_finish(&st->ix, name)) goto fail;
    return st;
fail:
    fc_safetensors_free(st);
    return NULL;
}

/* Maps path and parses it into st. */
static bool open_file_into(fc_safetensors *st, const char *path)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return false; /* logged as "path: reason" */
    int f = file_add(st, path, m);
    return parse_file(st, m->data, m->size, path, f);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = fc_xmalloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static bool is_regular(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* A shard name from an index must be a plain file name in the same folder:
 * no separators, not "." or "..", so a hostile index cannot reach elsewhere. */
static bool shard_name_ok(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Folder with model.safetensors.index.json: opens every shard named in
 * "weight_map" once, then checks each listed tensor is in its shard. */
static bool open_index(fc_safetensors *st, const char *dir, const char *index_path)
{
    bool ok = false;
    cJSON *root = NULL;
    char **shards = NULL;
    int n_shards = 0;
    fc_mmap *m = fc_mmap_open(index_path);
    if (!m) return false;
    root = cJSON_ParseWithLength((const char *)m->data, m->size);
    if (!cJSON_IsObject(root)) {
        FC_LOG_ERROR("%s: not a JSON object", index_path);
        goto done;
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        FC_LOG_ERROR("%s: missing \"weight_map\" object", index_path);
        goto done;
    }
    const cJSON *e;
    int n_items = 0;
    cJSON_ArrayForEach(e, wm) n_items++;
    if (n_items == 0) {
        FC_LOG_ERROR("%s: \"weight_map\" is empty", index_path);
        goto done;
    }
    shards = fc_xcalloc((size_t)n_items, sizeof *shards);
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !e->valuestring || !shard_name_ok(e->valuestring)) {
            FC_LOG_ERROR("%s: weight_map[\"%s\"] is not a shard file name in this folder",
                         index_path, e->string ? e->string : "");
            goto done;
        }
        shards[n_shards++] = e->valuestring; /* borrowed from root */
    }
    qsort(shards, (size_t)n_shards, sizeof *shards, cmp_str);
    int n_unique = 0;
    for (int i = 0; i < n_shards; i++)
        if (n_unique == 0 || strcmp(shards[n_unique - 1], shards[i]) != 0) shards[n_unique++] = shards[i];
    for (int i = 0; i < n_unique; i++) {
        char *p = path_join(dir, shards[i]);
        bool good = open_file_into(st, p);
        free(p);
        if (!good) goto done;
    }
    if (!fc_tensor_index_finish(&st->ix, dir)) goto done;
    cJSON_ArrayForEach(e, wm) {
        const fc_tensor_entry *en = fc_tensor_index_find(&st->ix, e->string ? e->string : "");
        /* file index i+0 is shards[i]: files were added in that order */
        const char *got = en ? st->files[en->file] : NULL;
        char *want = path_join(dir, e->valuestring);
        bool match = got && strcmp(got, want) == 0;
        free(want);
        if (!match) {
            FC_LOG_ERROR("%s: tensor '%s' listed in the index is missing from shard %s",
                         index_path, e->string ? e->string : "", e->valuestring);
            goto done;
        }
    }
    ok = true;
done:
    free(shards);
    cJSON_Delete(root);
    fc_mmap_free(m);
    return ok;
}

/* True when the folder holds any *.safetensors file. */
static bool has_safetensors(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool yes = false;
    struct dirent *de;
    while (!yes && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        yes = len > 12 && strcmp(de->d_name + len - 12, ".safetensors") == 0;
    }
    closedir(d);
    return yes;
}

/* Folder without an index: every regular *.safetensors file, sorted by name. */
static bool open_all(fc_safetensors *st, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        FC_LOG_ERROR("%s: %s", dir, strerror(errno));
        return false;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    bool ok = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        static const char ext[] = ".safetensors";
        if (len <= sizeof ext - 1 || strcmp(de->d_name + len - (sizeof ext - 1), ext) != 0) continue;
        char *p = path_join(dir, de->d_name);
        if (!is_regular(p)) {
            free(p);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            names = fc_xrealloc(names, cap * sizeof *names);
        }
        names[n++] = p;
    }
    closedir(d);
    if (n == 0) {
        FC_LOG_ERROR("%s: no model.safetensors.index.json, model.safetensors, *.safetensors or pytorch_model.bin files", dir);
        goto done;
    }
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++)
        if (!open_file_into(st, names[i])) goto done;
    ok = fc_tensor_index_finish(&st->ix, dir);
done:
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return ok;
}

/* A folder with PyTorch .bin weights and no safetensors (or a .bin file):
 * its tensors, read by format/torch_bin.c, viewed through this object. */
static bool open_torch(fc_safetensors *st, const char *path)
{
    st->tb = fc_torch_bin_open(path);
    if (!st->tb) return false;
    int f = file_add(st, path, NULL);
    for (int64_t i = 0; i < fc_torch_bin_n_tensors(st->tb); i++)
        fc_tensor_index_add(&st->ix, fc_xstrdup(fc_torch_bin_name(st->tb, i)), fc_torch_bin_tensor(st->tb, i), f);
    return fc_tensor_index_finish(&st->ix, path);
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

fc_safetensors *fc_safetensors_open(const char *path)
{
    if (!path) {
        FC_LOG_ERROR("%s: NULL path", __func__);
        return NULL;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        return NULL;
    }
    fc_safetensors *st = fc_xcalloc(1, sizeof *st);
    char *index = NULL, *single = NULL;
    if (!S_ISDIR(sb.st_mode) && has_suffix(path, ".bin")) {
        if (!open_torch(st, path)) goto fail;
        return st;
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (!open_file_into(st, path) || !fc_tensor_index_finish(&st->ix, path)) goto fail;
        return st;
    }
    index = path_join(path, "model.safetensors.index.json");
    single = path_join(path, "model.safetensors");
    if (is_regular(index)) {
        if (!open_index(st, path, index)) goto fail;
    } else if (is_regular(single)) {
        if (!open_file_into(st, single) || !fc_tensor_index_finish(&st->ix, single)) goto fail;
    } else if (!has_safetensors(path) && fc_torch_bin_in_folder(path)) {
        if (!open_torch(st, path)) goto fail;
    } else if (!open_all(st, path)) {
        goto fail;
    }
    free(index);
    free(single);
    return st;
fail:
    free(index);
    free(single);
    fc_safetensors_free(st);
    return NULL;
}

void fc_safetensors_free(fc_safetensors *st)
{
    if (!st) return;
    fc_tensor_index_free(&st->ix);
    for (int64_t i = 0; i < st->n_copies; i++) fc_aligned_free(st->copies[i]);
    free(st->copies);
    for (int i = 0; i < st->n_files; i++) {
        fc_mmap_free(st->maps[i]);
        free(st->files[i]);
    }
    free(st->maps);
    free(st->files);
    fc_torch_bin_free(st->tb);
    free(st);
}

int64_t fc_safetensors_n_tensors(const fc_safetensors *st)
{
    return st ? st->ix.n : 0;
}

const char *fc_safetensors_name(const fc_safetensors *st, int64_t i)
{
    if (!st || i < 0 || i >= st->ix.n) return NULL;
    return st->ix.ents[i].name;
}

const fc_tensor *fc_safetensors_tensor(const fc_safetensors *st, int64_t i)
{
    if (!st || i < 0 || i >= st->ix.n) return NULL;
    return &st->ix.ents[i].t;
}

const fc_tensor *fc_safetensors_find(const fc_safetensors *st, const char *name)
{
    if (!st || !name) return NULL;
    const fc_tensor_entry *e = fc_tensor_index_find(&st->ix, name);
    return e ? &e->t : NULL;
}

void fc_safetensors_release(const fc_safetensors *st, const fc_tensor *t)
{
    if (!st || !t || !t->data || t->nbytes == 0) return;
    for (int i = 0; i < st->n_files; i++) {
        const fc_mmap *m = st->maps[i];
        if (!m) continue;
        const uintptr_t lo = (uintptr_t)m->data, hi = lo + m->size, p = (uintptr_t)t->data;
        if (p < lo || p + t->nbytes > hi) continue; /* not in this mapping (or a private copy) */
        const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        const uintptr_t p0 = p & ~(pg - 1), p1 = (p + t->nbytes + pg - 1) & ~(pg - 1);
        madvise((void *)p0, p1 - p0, MADV_DONTNEED);
        return;
    }
}
