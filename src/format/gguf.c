/*
 * gguf.c: the GGUF (v2/v3) reader and writer declared in gguf.h.
 *
 * Reader. The whole file is parsed once, front to back, through a bounds-
 * checked cursor: every length, count and offset read from the file is
 * compared with the bytes that remain before it is used or allocated for, so
 * a hostile count (n_kv = 2^63) fails with a message instead of a huge
 * allocation, and nothing past the end of the buffer is ever read. Values stay
 * in the mapping; the parser records where each one lives. Two indexes are
 * built: keys and tensor names sorted by name (binary search; sorting also
 * finds duplicates, which are an error), and, for every array of strings, the
 * offset of each element, so the i-th token of a 150k-entry vocabulary is one
 * lookup away.
 *
 * Writer. Keys are kept in insertion order with their values already
 * serialized, so fc_gguf_writer_copy_kv copies any value (nested arrays
 * included) as raw bytes. The file layout is the one the gguf Python package
 * and llama.cpp write: header, key/values, tensor infos, zero padding to the
 * alignment, then each tensor's data followed by padding to the alignment.
 *
 * Deliberately not done: big-endian files (v3 allows them; they are detected
 * and rejected with a hint), GGUF v1 (u32 counts, obsolete since 2023), any
 * interpretation of tensor data (dtype.c and quant_ref.c do that), and the
 * tensor-offset contiguity check llama.cpp makes (overlapping tensors are
 * harmless to a read-only reader).
 *
 * Mirrors the format as documented in ggml's docs/gguf.md; the Python `gguf`
 * package is the reference the tests compare against
 * (tools/golden/make_gguf_fixtures.py, tests/py/test_gguf_writer.py).
 */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_KEY_ALIGNMENT "general.alignment"
/* Arrays of arrays are legal but unused by any model; the limit bounds the
 * recursion of the skipping parser. */
#define GGUF_MAX_ARRAY_DEPTH 8

/* Smallest encodings, used to bound counts by the bytes that remain. */
#define MIN_STR_BYTES 8           /* u64 length, empty string */
#define MIN_ARR_BYTES 12          /* u32 elem type + u64 count */
#define MIN_KV_BYTES (8 + 4 + 1)  /* empty key, type, one-byte value */
#define MIN_TI_BYTES (8 + 4 + 8 + 4 + 8) /* empty name, n_dims, ne[0], type, offset */

/* ---- little-endian access (the file's byte order, whatever the host's) ---- */

static uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd_u64(const uint8_t *p) { return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32; }

static void wr_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void wr_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static bool is_pow2(uint64_t x) { return x && !(x & (x - 1)); }

/* ---- types ---- */

size_t fc_gguf_type_size(enum fc_gguf_type t)
{
    switch (t) {
    case FC_GGUF_UINT8: case FC_GGUF_INT8: case FC_GGUF_BOOL: return 1;
    case FC_GGUF_UINT16: case FC_GGUF_INT16: return 2;
    case FC_GGUF_UINT32: case FC_GGUF_INT32: case FC_GGUF_FLOAT32: return 4;
    case FC_GGUF_UINT64: case FC_GGUF_INT64: case FC_GGUF_FLOAT64: return 8;
    case FC_GGUF_STRING: case FC_GGUF_ARRAY: return 0;
    }
    return 0;
}

const char *fc_gguf_type_name(enum fc_gguf_type t)
{
    switch (t) {
    case FC_GGUF_UINT8: return "u8";
    case FC_GGUF_INT8: return "i8";
    case FC_GGUF_UINT16: return "u16";
    case FC_GGUF_INT16: return "i16";
    case FC_GGUF_UINT32: return "u32";
    case FC_GGUF_INT32: return "i32";
    case FC_GGUF_FLOAT32: return "f32";
    case FC_GGUF_BOOL: return "bool";
    case FC_GGUF_STRING: return "str";
    case FC_GGUF_ARRAY: return "arr";
    case FC_GGUF_UINT64: return "u64";
    case FC_GGUF_INT64: return "i64";
    case FC_GGUF_FLOAT64: return "f64";
    }
    return "?";
}

static bool type_valid(uint32_t t) { return t <= FC_GGUF_FLOAT64; }

/* ---- reader state ---- */

struct gguf_kv {
    fc_gguf_str key;
    enum fc_gguf_type type;
    const uint8_t *val;       /* value bytes, after the type field */
    uint64_t val_len;         /* bytes of the value (for raw copies) */
    /* arrays only */
    enum fc_gguf_type elem_type;
    uint64_t n;               /* element count */
    const uint8_t *elems;     /* first element */
    uint64_t *str_off;        /* string arrays: file offset of each element's
                               * u64 length; owned, NULL otherwise */
};

/* One entry of a sorted name index (keys or tensor names). */
struct name_ref {
    const char *ptr;
    uint64_t len;
    int64_t idx;
};

struct fc_gguf {
    fc_mmap *map;             /* owned; NULL when parsed from a caller's buffer */
    const uint8_t *data;      /* whole file */
    size_t size;
    uint32_t version;
    size_t alignment;
    size_t data_offset;       /* start of the tensor data section */
    struct gguf_kv *kv;       /* (n_kv) in file order */
    int64_t n_kv;
    fc_gguf_tensor_info *tensors; /* (n_tensors) in file order */
    int64_t n_tensors;
    struct name_ref *kv_index;     /* (n_kv) sorted by key */
    struct name_ref *tensor_index; /* (n_tensors) sorted by name */
};

/* A bounds-checked cursor over the file. The first failure logs the error;
 * callers only propagate false. */
struct cursor {
    const uint8_t *base;
    size_t size;
    size_t pos;
    const char *name;  /* file name for messages */
};

static size_t remaining(const struct cursor *c) { return c->size - c->pos; }

static bool need(struct cursor *c, uint64_t n, const char *what)
{
    if (n > remaining(c)) {
        FC_LOG_ERROR("%s: truncated file: %s needs %llu bytes, %zu remain (at byte offset %zu)",
                     c->name, what, (unsigned long long)n, remaining(c), c->pos);
        return false;
    }
    return true;
}

static bool get_u32(struct cursor *c, uint32_t *v, const char *what)
{
    if (!need(c, 4, what)) return false;
    *v = rd_u32(c->base + c->pos);
    c->pos += 4;
    return true;
}

static bool get_u64(struct cursor *c, uint64_t *v, const char *what)
{
    if (!need(c, 8, what)) return false;
    *v = rd_u64(c->base + c->pos);
    c->pos += 8;
    return true;
}

static bool get_str(struct cursor *c, fc_gguf_str *s, const char *what)
{
    uint64_t len;
    if (!get_u64(c, &len, what)) return false;
    if (!need(c, len, what)) return false;
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += (size_t)len;
    return true;
}

/* Printable prefix of a name from the file, for messages. */
#define NAME_FMT "'%.*s'"
#define NAME_ARG(s) (int)FC_MIN((s).len, (uint64_t)64), (s).ptr

/* ---- values ---- */

static uint64_t min_elem_bytes(uint32_t t)
{
    if (t == FC_GGUF_STRING) return MIN_STR_BYTES;
    if (t == FC_GGUF_ARRAY) return MIN_ARR_BYTES;
    return fc_gguf_type_size((enum fc_gguf_type)t);
}

static bool skip_value(struct cursor *c, uint32_t type, int depth);

/* Reads an array header (elem type, count) and checks the count against the
 * remaining bytes. */
static bool get_arr_header(struct cursor *c, int depth, uint32_t *et, uint64_t *n)
{
    size_t at = c->pos;
    if (depth >= GGUF_MAX_ARRAY_DEPTH) {
        FC_LOG_ERROR("%s: arrays nested deeper than %d levels (at byte offset %zu)",
                     c->name, GGUF_MAX_ARRAY_DEPTH, at);
        return false;
    }
    if (!get_u32(c, et, "array element type") || !get_u64(c, n, "array length")) return false;
    if (!type_valid(*et)) {
        FC_LOG_ERROR("%s: unknown array element type %u (at byte offset %zu)", c->name, *et, at);
        return false;
    }
    if (*n > remaining(c) / min_elem_bytes(*et)) {
        FC_LOG_ERROR("%s: array of %llu %s elements does not fit in the %zu remaining bytes (at byte offset %zu)",
                     c->name, (unsigned long long)*n, fc_gguf_type_name(*et), remaining(c), at);
        return false;
    }
    return true;
}

/* Checks a value of `type` at the cursor and moves past it. */
static bool skip_value(struct cursor *c, uint32_t type, int depth)
{
    if (!type_valid(type)) {
        FC_LOG_ERROR("%s: unknown value type %u (at byte offset %zu)", c->name, type, c->pos);
        return false;
    }
    size_t sz = fc_gguf_type_size((enum fc_gguf_type)type);
    if (sz) {
        if (!need(c, sz, "value")) return false;
        c->pos += sz;
        return true;
    }
    if (type == FC_GGUF_STRING) {
        fc_gguf_str s;
        return get_str(c, &s, "string");
    }
    uint32_t et;
    uint64_t n;
    if (!get_arr_header(c, depth, &et, &n)) return false;
    sz = fc_gguf_type_size((enum fc_gguf_type)et);
    if (sz) {
        c->pos += (size_t)(n * sz); /* n * sz <= remaining, checked above */
        return true;
    }
    for (uint64_t i = 0; i < n; i++)
        if (!skip_value(c, et, depth + 1)) return false;
    return true;
}

/* Parses the value of kv at the cursor (the type is already read). */
static bool parse_value(struct cursor *c, struct gguf_kv *kv)
{
    size_t start = c->pos;
    kv->val = c->base + start;
    if (kv->type == FC_GGUF_ARRAY) {
        uint32_t et;
        if (!get_arr_header(c, 0, &et, &kv->n)) return false;
        kv->elem_type = (enum fc_gguf_type)et;
        kv->elems = c->base + c->pos;
        size_t first = c->pos;
        size_t sz = fc_gguf_type_size(kv->elem_type);
        if (sz) {
            c->pos += (size_t)(kv->n * sz);
        } else {
            for (uint64_t i = 0; i < kv->n; i++)
                if (!skip_value(c, et, 1)) return false;
        }
        if (et == FC_GGUF_STRING && kv->n > 0) {
            /* Validated above, so this walk needs no checks; the index costs
             * 8 bytes per string, never more than the strings themselves. */
            kv->str_off = fc_xmalloc((size_t)kv->n * sizeof *kv->str_off);
            size_t p = first;
            for (uint64_t i = 0; i < kv->n; i++) {
                kv->str_off[i] = p;
                p += 8 + (size_t)rd_u64(c->base + p);
            }
        }
    } else if (!skip_value(c, kv->type, 0)) {
        return false;
    }
    kv->val_len = c->pos - start;
    return true;
}

/* ---- name index ---- */

static int name_cmp(const void *pa, const void *pb)
{
    const struct name_ref *a = pa, *b = pb;
    uint64_t n = FC_MIN(a->len, b->len);
    int r = n ? memcmp(a->ptr, b->ptr, (size_t)n) : 0;
    if (r) return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int64_t index_find(const struct name_ref *idx, int64_t n, const char *name)
{
    if (!name) return -1;
    struct name_ref key = {name, strlen(name), -1};
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int r = name_cmp(&key, &idx[mid]);
        if (r == 0) return idx[mid].idx;
        if (r < 0) hi = mid; else lo = mid + 1;
    }
    return -1;
}

/* Sorts refs by name; returns the index of one of two equal names, or -1. */
static int64_t index_build(struct name_ref *refs, int64_t n)
{
    if (n > 1) qsort(refs, (size_t)n, sizeof *refs, name_cmp);
    for (int64_t i = 1; i < n; i++)
        if (name_cmp(&refs[i - 1], &refs[i]) == 0) return FC_MAX(refs[i - 1].idx, refs[i].idx);
    return -1;
}

/* ---- parsing ---- */

static bool parse_header(struct cursor *c, fc_gguf *g, uint64_t *n_tensors, uint64_t *n_kv)
{
    if (c->size < 4) {
        FC_LOG_ERROR("%s: truncated file: %zu bytes, too short for a GGUF header (at byte offset 0)",
                     c->name, c->size);
        return false;
    }
    if (memcmp(c->base, GGUF_MAGIC, 4) != 0) {
        FC_LOG_ERROR("%s: not a GGUF file (bad magic) (at byte offset 0)", c->name);
        return false;
    }
    c->pos = 4;
    if (!get_u32(c, &g->version, "version")) return false;
    if (g->version == 1) {
        FC_LOG_ERROR("%s: GGUF version 1 is not supported (obsolete; re-convert the model) (at byte offset 4)",
                     c->name);
        return false;
    }
    if (g->version != 2 && g->version != 3) {
        /* A big-endian file shows its version byte-swapped. */
        if ((g->version & 0xffff) == 0 && (g->version >> 24) >= 2 && (g->version >> 24) <= 3)
            FC_LOG_ERROR("%s: big-endian GGUF files are not supported (at byte offset 4)", c->name);
        else
            FC_LOG_ERROR("%s: unsupported GGUF version %u (expected 2 or 3) (at byte offset 4)",
                         c->name, g->version);
        return false;
    }
    if (!get_u64(c, n_tensors, "tensor count") || !get_u64(c, n_kv, "key/value count")) return false;
    if (*n_kv > remaining(c) / MIN_KV_BYTES) {
        FC_LOG_ERROR("%s: key/value count %llu does not fit in the %zu remaining bytes (at byte offset 16)",
                     c->name, (unsigned long long)*n_kv, remaining(c));
        return false;
    }
    if (*n_tensors > remaining(c) / MIN_TI_BYTES) {
        FC_LOG_ERROR("%s: tensor count %llu does not fit in the %zu remaining bytes (at byte offset 8)",
                     c->name, (unsigned long long)*n_tensors, remaining(c));
        return false;
    }
    return true;
}

/* Makes room for entry i of an array that grows as entries are parsed: the
 * counts in the header are bounded by the file size but not trusted with an
 * allocation of their own (80-byte entries per 13 file bytes could ask for
 * several times the size of a multi-gigabyte model file). */
static void *grow(void *p, size_t *cap, uint64_t i, size_t elem)
{
    if (i < *cap) return p;
    size_t n = *cap ? 2 * *cap : 64;
    p = fc_xrealloc(p, n * elem);
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
    return p;
}

static bool parse_kvs(struct cursor *c, fc_gguf *g, uint64_t n_kv)
{
    size_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        g->kv = grow(g->kv, &cap, i, sizeof *g->kv);
        struct gguf_kv *kv = &g->kv[i];
        size_t at = c->pos;
        uint32_t type;
        if (!get_str(c, &kv->key, "key")) return false;
        if (!get_u32(c, &type, "value type")) return false;
        if (!type_valid(type)) {
            FC_LOG_ERROR("%s: key " NAME_FMT " has unknown value type %u (at byte offset %zu)",
                         c->name, NAME_ARG(kv->key), type, c->pos - 4);
            return false;
        }
        kv->type = (enum fc_gguf_type)type;
        g->n_kv = (int64_t)i + 1; /* so that fc_gguf_free releases str_off */
        if (!parse_value(c, kv)) return false;

        static const char align_key[] = GGUF_KEY_ALIGNMENT;
        if (kv->key.len == sizeof align_key - 1 && memcmp(kv->key.ptr, align_key, kv->key.len) == 0) {
            uint32_t a = kv->type == FC_GGUF_UINT32 ? rd_u32(kv->val) : 0;
            if (kv->type != FC_GGUF_UINT32 || !is_pow2(a)) {
                FC_LOG_ERROR("%s: %s must be a nonzero power of two of type u32 (at byte offset %zu)",
                             c->name, GGUF_KEY_ALIGNMENT, at);
                return false;
            }
            g->alignment = a;
        }
    }

    g->kv_index = fc_xmalloc((size_t)FC_MAX(g->n_kv, 1) * sizeof *g->kv_index);
    for (int64_t i = 0; i < g->n_kv; i++)
        g->kv_index[i] = (struct name_ref){g->kv[i].key.ptr, g->kv[i].key.len, i};
    int64_t dup = index_build(g->kv_index, g->n_kv);
    if (dup >= 0) {
        FC_LOG_ERROR("%s: duplicate key " NAME_FMT " (at byte offset %zu)", c->name,
                     NAME_ARG(g->kv[dup].key), (size_t)((const uint8_t *)g->kv[dup].key.ptr - c->base) - 8);
        return false;
    }
    return true;
}

/* Parses one tensor info; *offset_at receives the file offset of its offset
 * field, for messages about the data range. */
static bool parse_tensor_info(struct cursor *c, fc_gguf *g, fc_gguf_tensor_info *ti, size_t *offset_at)
{
    uint32_t n_dims, type;
    if (!get_str(c, &ti->name, "tensor name")) return false;
    size_t at = c->pos;
    if (!get_u32(c, &n_dims, "tensor n_dims")) return false;
    if (n_dims < 1 || n_dims > FC_MAX_DIMS) {
        FC_LOG_ERROR("%s: tensor " NAME_FMT " has %u dimensions, expected 1..%d (at byte offset %zu)",
                     c->name, NAME_ARG(ti->name), n_dims, FC_MAX_DIMS, at);
        return false;
    }
    ti->t.n_dims = (int)n_dims;
    int64_t nelem = 1;
    for (int d = 0; d < FC_MAX_DIMS; d++) {
        uint64_t ne = 1;
        at = c->pos;
        if (d < (int)n_dims && !get_u64(c, &ne, "tensor dimension")) return false;
        if (ne < 1 || ne > (uint64_t)INT64_MAX / (uint64_t)nelem) {
            FC_LOG_ERROR("%s: tensor " NAME_FMT " has invalid dimension ne[%d] = %llu (at byte offset %zu)",
                         c->name, NAME_ARG(ti->name), d, (unsigned long long)ne, at);
            return false;
        }
        ti->t.ne[d] = (int64_t)ne;
        nelem *= (int64_t)ne;
    }
    at = c->pos;
    if (!get_u32(c, &type, "tensor type")) return false;
    /* a16 and the row-interleaved types are ours, not file types */
    size_t type_size = fc_dtype_in_files((int)FC_MIN(type, (uint32_t)INT32_MAX)) ? fc_dtype_type_size((int)type) : 0;
    if (type_size == 0) {
        FC_LOG_ERROR("%s: tensor " NAME_FMT " has unknown type %u (at byte offset %zu)",
                     c->name, NAME_ARG(ti->name), type, at);
        return false;
    }
    ti->t.type = (int)type;
    int bs = fc_dtype_block_size((int)type);
    if (bs <= 0 || ti->t.ne[0] % bs != 0) {
        FC_LOG_ERROR("%s: tensor " NAME_FMT ": ne[0] = %lld is not a multiple of the %s block size %d (at byte offset %zu)",
                     c->name, NAME_ARG(ti->name), (long long)ti->t.ne[0], fc_dtype_name((int)type), bs, at);
        return false;
    }
    /* nbytes = (ne[0] / bs) * type_size * ne[1] * ne[2] * ne[3], checked. */
    uint64_t nbytes = (uint64_t)(ti->t.ne[0] / bs);
    uint64_t factors[4] = {type_size, (uint64_t)ti->t.ne[1], (uint64_t)ti->t.ne[2], (uint64_t)ti->t.ne[3]};
    for (int k = 0; k < 4; k++) {
        if (nbytes > SIZE_MAX / factors[k]) {
            FC_LOG_ERROR("%s: tensor " NAME_FMT " is too large (at byte offset %zu)",
                         c->name, NAME_ARG(ti->name), at);
            return false;
        }
        nbytes *= factors[k];
    }
    ti->t.nbytes = (size_t)nbytes;
    *offset_at = c->pos;
    if (!get_u64(c, &ti->offset, "tensor offset")) return false;
    if (ti->offset % g->alignment != 0) {
        FC_LOG_ERROR("%s: tensor " NAME_FMT " offset %llu is not a multiple of the alignment %zu (at byte offset %zu)",
                     c->name, NAME_ARG(ti->name), (unsigned long long)ti->offset, g->alignment, *offset_at);
        return false;
    }
    return true;
}

static bool parse_tensors(struct cursor *c, fc_gguf *g, uint64_t n_tensors)
{
    size_t cap = 0, cap_at = 0;
    size_t *offset_at = NULL;
    bool ok = false;
    for (uint64_t i = 0; i < n_tensors; i++) {
        g->tensors = grow(g->tensors, &cap, i, sizeof *g->tensors);
        offset_at = grow(offset_at, &cap_at, i, sizeof *offset_at);
        if (!parse_tensor_info(c, g, &g->tensors[i], &offset_at[i])) goto done;
        g->n_tensors = (int64_t)i + 1;
    }

    /* The data section starts at the next multiple of the alignment. */
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    if (n_tensors > 0 && pad > remaining(c)) {
        FC_LOG_ERROR("%s: truncated file: tensor data section starts past the end (at byte offset %zu)",
                     c->name, c->pos);
        goto done;
    }
    g->data_offset = pad > remaining(c) ? c->size : c->pos + (size_t)pad;
    size_t data_size = c->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        fc_gguf_tensor_info *ti = &g->tensors[i];
        if (ti->offset > data_size || ti->t.nbytes > data_size - ti->offset) {
            FC_LOG_ERROR("%s: tensor " NAME_FMT " data [%llu, +%zu) lies outside the %zu-byte data section (at byte offset %zu)",
                         c->name, NAME_ARG(ti->name), (unsigned long long)ti->offset, ti->t.nbytes,
                         data_size, offset_at[i]);
            goto done;
        }
        ti->t.data = c->base + g->data_offset + ti->offset;
    }

    g->tensor_index = fc_xmalloc((size_t)FC_MAX(g->n_tensors, 1) * sizeof *g->tensor_index);
    for (int64_t i = 0; i < g->n_tensors; i++)
        g->tensor_index[i] = (struct name_ref){g->tensors[i].name.ptr, g->tensors[i].name.len, i};
    int64_t dup = index_build(g->tensor_index, g->n_tensors);
    if (dup >= 0) {
        const fc_gguf_str *nm = &g->tensors[dup].name;
        FC_LOG_ERROR("%s: duplicate tensor name " NAME_FMT " (at byte offset %zu)", c->name, NAME_ARG(*nm),
                     (size_t)((const uint8_t *)nm->ptr - c->base) - 8);
        goto done;
    }
    ok = true;
done:
    free(offset_at);
    return ok;
}

fc_gguf *fc_gguf_parse(const uint8_t *data, size_t size, const char *name)
{
    if (!name) name = "<buffer>";
    if (!data && size) {
        FC_LOG_ERROR("%s: no data", name);
        return NULL;
    }
    fc_gguf *g = fc_xcalloc(1, sizeof *g);
    g->data = data;
    g->size = size;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    struct cursor c = {data ? data : (const uint8_t *)"", size, 0, name};
    uint64_t n_tensors, n_kv;
    if (!parse_header(&c, g, &n_tensors, &n_kv)) goto fail;
    if (!parse_kvs(&c, g, n_kv)) goto fail;
    if (!parse_tensors(&c, g, n_tensors)) goto fail;
    return g;
fail:
    fc_gguf_free(g);
    return NULL;
}

fc_gguf *fc_gguf_open(const char *path)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return NULL;
    fc_gguf *g = fc_gguf_parse(m->data, m->size, path);
    if (!g) {
        fc_mmap_free(m);
        return NULL;
    }
    g->map = m;
    return g;
}

void fc_gguf_free(fc_gguf *g)
{
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->kv_index);
    free(g->tensors);
    free(g->tensor_index);
    fc_mmap_free(g->map);
    free(g);
}

/* ---- reader accessors ---- */

uint32_t fc_gguf_version(const fc_gguf *g) { return g->version; }
size_t fc_gguf_alignment(const fc_gguf *g) { return g->alignment; }
size_t fc_gguf_file_size(const fc_gguf *g) { return g->size; }
size_t fc_gguf_data_offset(const fc_gguf *g) { return g->data_offset; }

int64_t fc_gguf_n_kv(const fc_gguf *g) { return g->n_kv; }

int64_t fc_gguf_find_key(const fc_gguf *g, const char *key)
{
    return index_find(g->kv_index, g->n_kv, key);
}

static const struct gguf_kv *kv_at(const fc_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

static const struct gguf_kv *kv_by_key(const fc_gguf *g, const char *key)
{
    return kv_at(g, fc_gguf_find_key(g, key));
}

fc_gguf_str fc_gguf_key(const fc_gguf *g, int64_t i)
{
    const struct gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : (fc_gguf_str){"", 0};
}

enum fc_gguf_type fc_gguf_kv_type(const fc_gguf *g, int64_t i)
{
    const struct gguf_kv *kv = kv_at(g, i);
    return kv ? kv->type : (enum fc_gguf_type)-1;
}

const void *fc_gguf_kv_scalar(const fc_gguf *g, int64_t i)
{
    const struct gguf_kv *kv = kv_at(g, i);
    return kv && fc_gguf_type_size(kv->type) ? kv->val : NULL;
}

bool fc_gguf_kv_get_str(const fc_gguf *g, int64_t i, fc_gguf_str *out)
{
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != FC_GGUF_STRING) return false;
    out->len = rd_u64(kv->val);
    out->ptr = (const char *)kv->val + 8;
    return true;
}

bool fc_gguf_kv_get_arr(const fc_gguf *g, int64_t i, enum fc_gguf_type *elem_type,
                        uint64_t *n, const void **data)
{
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != FC_GGUF_ARRAY) return false;
    if (elem_type) *elem_type = kv->elem_type;
    if (n) *n = kv->n;
    if (data) *data = kv->elems;
    return true;
}

bool fc_gguf_kv_get_arr_str(const fc_gguf *g, int64_t i, uint64_t j, fc_gguf_str *out)
{
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != FC_GGUF_ARRAY || kv->elem_type != FC_GGUF_STRING || j >= kv->n) return false;
    const uint8_t *p = g->data + kv->str_off[j];
    out->len = rd_u64(p);
    out->ptr = (const char *)p + 8;
    return true;
}

const uint8_t *fc_gguf_kv_raw(const fc_gguf *g, int64_t i, size_t *len)
{
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv) return NULL;
    *len = (size_t)kv->val_len;
    return kv->val;
}

/* Integer value of an integer or bool kv, as sign and magnitude. */
static bool kv_integer(const struct gguf_kv *kv, bool *neg, int64_t *s, uint64_t *u)
{
    if (!kv) return false;
    const uint8_t *p = kv->val;
    int64_t sv = 0;
    *neg = false;
    switch (kv->type) {
    case FC_GGUF_UINT8: case FC_GGUF_BOOL: *u = p[0]; return true;
    case FC_GGUF_UINT16: *u = rd_u16(p); return true;
    case FC_GGUF_UINT32: *u = rd_u32(p); return true;
    case FC_GGUF_UINT64: *u = rd_u64(p); return true;
    case FC_GGUF_INT8: sv = (int8_t)p[0]; break;
    case FC_GGUF_INT16: sv = (int16_t)rd_u16(p); break;
    case FC_GGUF_INT32: sv = (int32_t)rd_u32(p); break;
    case FC_GGUF_INT64: sv = (int64_t)rd_u64(p); break;
    default: return false;
    }
    *neg = sv < 0;
    *s = sv;
    *u = sv < 0 ? 0 : (uint64_t)sv;
    return true;
}

bool fc_gguf_get_i64(const fc_gguf *g, const char *key, int64_t *out)
{
    bool neg;
    int64_t s;
    uint64_t u;
    if (!kv_integer(kv_by_key(g, key), &neg, &s, &u)) return false;
    if (neg) { *out = s; return true; }
    if (u > (uint64_t)INT64_MAX) return false;
    *out = (int64_t)u;
    return true;
}

bool fc_gguf_get_u32(const fc_gguf *g, const char *key, uint32_t *out)
{
    bool neg;
    int64_t s;
    uint64_t u;
    if (!kv_integer(kv_by_key(g, key), &neg, &s, &u)) return false;
    if (neg || u > UINT32_MAX) return false;
    *out = (uint32_t)u;
    return true;
}

bool fc_gguf_get_f32(const fc_gguf *g, const char *key, float *out)
{
    const struct gguf_kv *kv = kv_by_key(g, key);
    if (!kv || kv->type == FC_GGUF_BOOL) return false;
    if (kv->type == FC_GGUF_FLOAT32) {
        uint32_t b = rd_u32(kv->val);
        memcpy(out, &b, 4);
        return true;
    }
    if (kv->type == FC_GGUF_FLOAT64) {
        uint64_t b = rd_u64(kv->val);
        double d;
        memcpy(&d, &b, 8);
        *out = (float)d;
        return true;
    }
    bool neg;
    int64_t s;
    uint64_t u;
    if (!kv_integer(kv, &neg, &s, &u)) return false;
    *out = neg ? (float)s : (float)u;
    return true;
}

bool fc_gguf_get_bool(const fc_gguf *g, const char *key, bool *out)
{
    const struct gguf_kv *kv = kv_by_key(g, key);
    if (!kv || kv->type != FC_GGUF_BOOL) return false;
    *out = kv->val[0] != 0;
    return true;
}

bool fc_gguf_get_str(const fc_gguf *g, const char *key, fc_gguf_str *out)
{
    return fc_gguf_kv_get_str(g, fc_gguf_find_key(g, key), out);
}

bool fc_gguf_get_arr(const fc_gguf *g, const char *key, enum fc_gguf_type *elem_type,
                     uint64_t *n, const void **data)
{
    return fc_gguf_kv_get_arr(g, fc_gguf_find_key(g, key), elem_type, n, data);
}

bool fc_gguf_get_arr_str(const fc_gguf *g, const char *key, uint64_t i, fc_gguf_str *out)
{
    return fc_gguf_kv_get_arr_str(g, fc_gguf_find_key(g, key), i, out);
}

int64_t fc_gguf_n_tensors(const fc_gguf *g) { return g->n_tensors; }

const fc_gguf_tensor_info *fc_gguf_tensor(const fc_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const fc_gguf_tensor_info *fc_gguf_find_tensor(const fc_gguf *g, const char *name)
{
    return fc_gguf_tensor(g, index_find(g->tensor_index, g->n_tensors, name));
}

/* ---- writer ---- */

struct wkv {
    char *key;            /* owned, NUL-terminated */
    size_t key_len;
    enum fc_gguf_type type;
    uint8_t *val;         /* owned, serialized value (after the type field) */
    size_t val_len;
};

struct wtensor {
    char *name;           /* owned */
    size_t name_len;
    enum fc_dtype type;
    int n_dims;
    int64_t ne[FC_MAX_DIMS];
    const void *data;     /* borrowed */
    size_t nbytes;
};

struct fc_gguf_writer {
    struct wkv *kv;       /* (n_kv) in insertion order */
    size_t n_kv, cap_kv;
    struct wtensor *t;    /* (n_t) in insertion order */
    size_t n_t, cap_t;
    bool failed;          /* an earlier call was invalid; write refuses */
};

fc_gguf_writer *fc_gguf_writer_new(void)
{
    return fc_xcalloc(1, sizeof(fc_gguf_writer));
}

void fc_gguf_writer_free(fc_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* Stores key = (type, val), taking ownership of val. An existing key keeps
 * its position. */
static void set_raw(fc_gguf_writer *w, const char *key, size_t key_len, enum fc_gguf_type type,
                    uint8_t *val, size_t val_len)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        struct wkv *kv = &w->kv[i];
        if (kv->key_len == key_len && memcmp(kv->key, key, key_len) == 0) {
            free(kv->val);
            kv->type = type;
            kv->val = val;
            kv->val_len = val_len;
            return;
        }
    }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 16;
        w->kv = fc_xrealloc(w->kv, w->cap_kv * sizeof *w->kv);
    }
    struct wkv *kv = &w->kv[w->n_kv++];
    kv->key = fc_xmalloc(key_len + 1);
    memcpy(kv->key, key, key_len);
    kv->key[key_len] = 0;
    kv->key_len = key_len;
    kv->type = type;
    kv->val = val;
    kv->val_len = val_len;
}

static void set_bytes(fc_gguf_writer *w, const char *key, enum fc_gguf_type type, const uint8_t *le, size_t n)
{
    uint8_t *val = fc_xmalloc(n);
    memcpy(val, le, n);
    set_raw(w, key, strlen(key), type, val, n);
}

void fc_gguf_writer_set_u32(fc_gguf_writer *w, const char *key, uint32_t v)
{
    uint8_t b[4];
    wr_u32(b, v);
    set_bytes(w, key, FC_GGUF_UINT32, b, 4);
}

void fc_gguf_writer_set_i32(fc_gguf_writer *w, const char *key, int32_t v)
{
    uint8_t b[4];
    wr_u32(b, (uint32_t)v);
    set_bytes(w, key, FC_GGUF_INT32, b, 4);
}

void fc_gguf_writer_set_u64(fc_gguf_writer *w, const char *key, uint64_t v)
{
    uint8_t b[8];
    wr_u64(b, v);
    set_bytes(w, key, FC_GGUF_UINT64, b, 8);
}

void fc_gguf_writer_set_f32(fc_gguf_writer *w, const char *key, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    uint8_t b[4];
    wr_u32(b, bits);
    set_bytes(w, key, FC_GGUF_FLOAT32, b, 4);
}

void fc_gguf_writer_set_bool(fc_gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    set_bytes(w, key, FC_GGUF_BOOL, &b, 1);
}

void fc_gguf_writer_set_scalar(fc_gguf_writer *w, const char *key, enum fc_gguf_type type, const void *value)
{
    size_t sz = fc_gguf_type_size(type);
    if (!sz) {
        FC_LOG_ERROR("%s: key '%s': type %d is not a scalar type", __func__, key, (int)type);
        w->failed = true;
        return;
    }
    set_bytes(w, key, type, value, sz);
}

void fc_gguf_writer_set_str(fc_gguf_writer *w, const char *key, const char *s, size_t len)
{
    uint8_t *val = fc_xmalloc(8 + len);
    wr_u64(val, len);
    if (len) memcpy(val + 8, s, len);
    set_raw(w, key, strlen(key), FC_GGUF_STRING, val, 8 + len);
}

void fc_gguf_writer_set_arr(fc_gguf_writer *w, const char *key, enum fc_gguf_type elem_type,
                            const void *data, uint64_t n)
{
    size_t sz = fc_gguf_type_size(elem_type);
    if (!sz || n > (SIZE_MAX - 12) / sz || (n && !data)) {
        FC_LOG_ERROR("%s: key '%s': invalid array (element type %s, %llu elements)", __func__, key,
                     fc_gguf_type_name(elem_type), (unsigned long long)n);
        w->failed = true;
        return;
    }
    size_t len = 12 + (size_t)n * sz;
    uint8_t *val = fc_xmalloc(len);
    wr_u32(val, (uint32_t)elem_type);
    wr_u64(val + 4, n);
    if (n) memcpy(val + 12, data, (size_t)n * sz);
    set_raw(w, key, strlen(key), FC_GGUF_ARRAY, val, len);
}

void fc_gguf_writer_set_arr_str(fc_gguf_writer *w, const char *key, const char *const *strs,
                                const size_t *lens, uint64_t n)
{
    size_t len = 12;
    for (uint64_t i = 0; i < n; i++) {
        size_t li = lens ? lens[i] : strlen(strs[i]);
        if (li > SIZE_MAX - 8 - len) {
            FC_LOG_ERROR("%s: key '%s': string array too large", __func__, key);
            w->failed = true;
            return;
        }
        len += 8 + li;
    }
    uint8_t *val = fc_xmalloc(len);
    wr_u32(val, FC_GGUF_STRING);
    wr_u64(val + 4, n);
    size_t p = 12;
    for (uint64_t i = 0; i < n; i++) {
        size_t li = lens ? lens[i] : strlen(strs[i]);
        wr_u64(val + p, li);
        if (li) memcpy(val + p + 8, strs[i], li);
        p += 8 + li;
    }
    set_raw(w, key, strlen(key), FC_GGUF_ARRAY, val, len);
}

void fc_gguf_writer_copy_kv(fc_gguf_writer *w, const fc_gguf *g, int64_t i)
{
    const struct gguf_kv *kv = kv_at(g, i);
    if (!kv) {
        FC_LOG_ERROR("%s: no key/value %lld", __func__, (long long)i);
        w->failed = true;
        return;
    }
    uint8_t *val = fc_xmalloc((size_t)kv->val_len);
    memcpy(val, kv->val, (size_t)kv->val_len);
    set_raw(w, kv->key.ptr, (size_t)kv->key.len, kv->type, val, (size_t)kv->val_len);
}

void fc_gguf_writer_add_tensor(fc_gguf_writer *w, const char *name, enum fc_dtype type, int n_dims,
                               const int64_t *ne, const void *data)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < w->n_t; i++) {
        if (w->t[i].name_len == name_len && memcmp(w->t[i].name, name, name_len) == 0) {
            FC_LOG_ERROR("%s: duplicate tensor name '%s'", __func__, name);
            w->failed = true;
            return;
        }
    }
    bool ok = n_dims >= 1 && n_dims <= FC_MAX_DIMS && fc_dtype_in_files(type) &&
              fc_dtype_type_size(type) > 0;
    uint64_t nbytes = 0;
    if (ok) {
        for (int d = 0; d < n_dims; d++) ok = ok && ne[d] >= 1;
    }
    if (ok) {
        nbytes = fc_dtype_row_size(type, ne[0]);
        ok = nbytes > 0;
        for (int d = 1; ok && d < n_dims; d++) {
            ok = nbytes <= SIZE_MAX / (uint64_t)ne[d];
            nbytes *= (uint64_t)ne[d];
        }
    }
    if (!ok || (nbytes && !data)) {
        FC_LOG_ERROR("%s: tensor '%s': invalid type %d, shape or data", __func__, name, type);
        w->failed = true;
        return;
    }
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = fc_xrealloc(w->t, w->cap_t * sizeof *w->t);
    }
    struct wtensor *t = &w->t[w->n_t++];
    t->name = fc_xstrdup(name);
    t->name_len = name_len;
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < FC_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->data = data;
    t->nbytes = (size_t)nbytes;
}

/* Writes n zero bytes. */
static bool write_zeros(FILE *f, size_t n)
{
    static const uint8_t zeros[4096];
    while (n) {
        size_t k = FC_MIN(n, sizeof zeros);
        if (fwrite(zeros, 1, k, f) != k) return false;
        n -= k;
    }
    return true;
}

static size_t pad_to(uint64_t x, size_t a) { return (size_t)((a - x % a) % a); }

/* Writes everything but the tensor data's trailing bytes; false on I/O error. */
static bool write_body(FILE *f, const fc_gguf_writer *w, size_t align)
{
    uint8_t b[8];
    uint64_t pos = 0;
#define PUT(p, n) do { if (fwrite((p), 1, (n), f) != (size_t)(n)) return false; pos += (n); } while (0)
#define PUT32(v) do { wr_u32(b, (v)); PUT(b, 4); } while (0)
#define PUT64(v) do { wr_u64(b, (v)); PUT(b, 8); } while (0)
    PUT(GGUF_MAGIC, 4);
    PUT32(3);
    PUT64(w->n_t);
    PUT64(w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        const struct wkv *kv = &w->kv[i];
        PUT64(kv->key_len);
        PUT(kv->key, kv->key_len);
        PUT32((uint32_t)kv->type);
        PUT(kv->val, kv->val_len);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        PUT64(t->name_len);
        PUT(t->name, t->name_len);
        PUT32((uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) PUT64((uint64_t)t->ne[d]);
        PUT32((uint32_t)t->type);
        PUT64(offset);
        offset += t->nbytes + pad_to(t->nbytes, align);
    }
    size_t pad = pad_to(pos, align);
    if (!write_zeros(f, pad)) return false;
    for (size_t i = 0; i < w->n_t; i++) {
        const struct wtensor *t = &w->t[i];
        if (t->nbytes && fwrite(t->data, 1, t->nbytes, f) != t->nbytes) return false;
        if (!write_zeros(f, pad_to(t->nbytes, align))) return false;
    }
#undef PUT
#undef PUT32
#undef PUT64
    return true;
}

/* The alignment the file will use; false (logged, naming `what`) when the
 * writer is unusable. */
static bool writer_check(const fc_gguf_writer *w, const char *what, size_t *align)
{
    if (w->failed) {
        FC_LOG_ERROR("%s: not written: an earlier writer call was invalid", what);
        return false;
    }
    *align = GGUF_DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        /* by length too: a copied key may hold a NUL */
        if (w->kv[i].key_len != sizeof GGUF_KEY_ALIGNMENT - 1 ||
            memcmp(w->kv[i].key, GGUF_KEY_ALIGNMENT, w->kv[i].key_len) != 0)
            continue;
        uint32_t a = w->kv[i].type == FC_GGUF_UINT32 ? rd_u32(w->kv[i].val) : 0;
        if (!is_pow2(a)) {
            FC_LOG_ERROR("%s: %s must be a nonzero power of two of type u32", what, GGUF_KEY_ALIGNMENT);
            return false;
        }
        *align = a;
    }
    return true;
}

enum fc_status fc_gguf_writer_write(fc_gguf_writer *w, const char *path)
{
    size_t align;
    if (!writer_check(w, path, &align)) return FC_ERR_ARG;

    size_t plen = strlen(path);
    char *tmp = fc_xmalloc(plen + 5);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    enum fc_status st = FC_ERR_IO;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        FC_LOG_ERROR("%s: %s", tmp, strerror(errno));
        goto done;
    }
    bool ok = write_body(f, w, align);
    int err = errno;
    if (ok && fflush(f) != 0) { ok = false; err = errno; }
    if (ok && fsync(fileno(f)) != 0) { ok = false; err = errno; }
    if (fclose(f) != 0 && ok) { ok = false; err = errno; }
    if (!ok) {
        FC_LOG_ERROR("%s: write failed: %s", tmp, strerror(err));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        FC_LOG_ERROR("%s: rename from %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    st = FC_OK;
done:
    free(tmp);
    return st;
}

enum fc_status fc_gguf_writer_write_buf(fc_gguf_writer *w, uint8_t **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    size_t align;
    if (!writer_check(w, "<memory>", &align)) return FC_ERR_ARG;
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    if (!f) {
        FC_LOG_ERROR("<memory>: open_memstream: %s", strerror(errno));
        return FC_ERR_NOMEM;
    }
    bool ok = write_body(f, w, align);
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        FC_LOG_ERROR("<memory>: writing the GGUF image failed");
        free(p);
        return FC_ERR_NOMEM;
    }
    *out = (uint8_t *)p;
    *size = n;
    return FC_OK;
}

bool fc_gguf_is_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char m[4] = {0};
    bool yes = f && fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    if (f) fclose(f);
    return yes;
}
