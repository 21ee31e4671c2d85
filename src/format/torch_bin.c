/*
 * torch_bin.c: reader for PyTorch checkpoints written by torch.save (>= 1.6)
 * and Hugging Face's save_pretrained(safe_serialization=False).
 *
 * Container: a zip archive (PKWARE APPNOTE 6.3) written by torch's
 * PyTorchStreamWriter: every entry stored (method 0), data padded to 64 bytes
 * through the local header's extra field, ZIP64 records once the archive or
 * an entry passes 4 GiB. We read the end-of-central-directory record (and its
 * ZIP64 twin), then the central directory; each entry's data starts after
 * its *local* header, whose name and extra lengths may differ from the
 * central ones. The entries are <prefix>/data.pkl, <prefix>/data/<key>,
 * <prefix>/byteorder ("little", or absent in older files) and a few small
 * version records we ignore. CRC-32s are not checked (that would page in
 * every weight at open; safetensors has no checksum either).
 *
 * Pickle: torch.save pickles with protocol 2. A state dict is
 *   GLOBAL collections.OrderedDict, EMPTY_TUPLE, REDUCE   (or EMPTY_DICT)
 *   MARK, key, value, key, value, ..., SETITEMS
 *   [state dict, BUILD]      (OrderedDict._metadata of module.state_dict())
 * and every value is
 *   GLOBAL torch._utils._rebuild_tensor_v2, MARK,
 *     BINPERSID of ('storage', torch.FloatStorage, '<key>', 'cpu', numel),
 *     storage offset, (sizes), (strides), requires_grad, OrderedDict()
 *   TUPLE, REDUCE
 * with BINPUT/BINGET memo traffic (tied weights share a storage through it).
 * The machine below implements those opcodes, plus the protocol 4 ones a
 * newer pickler may choose (FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE).
 * Globals are looked up in a whitelist at the GLOBAL opcode itself; REDUCE
 * and NEWOBJ only "call" whitelisted rebuild functions, which we interpret
 * as data. Nothing is imported or executed. Objects live in one arena freed
 * after the parse; the memo index is bounded by the pickle size, so hostile
 * input cannot make us allocate more than a small multiple of its length.
 *
 * The legacy format (torch < 1.6) is five pickles and the raw storages after
 * them (parse_legacy below); the same machine runs each pickle.
 *
 * Not done: tensors that are not contiguous (views saved as such: refused),
 * quantized or sparse tensors (_rebuild_qtensor etc.: refused by name),
 * storage views in the legacy format (view_metadata other than None; torch
 * has not written them since 1.0).
 */
#include "torch_bin.h"
#include "base/file.h"
#include "tensor/tensor_index.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* ---- little-endian reads ---- */

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* ---- zip ---- */

struct zentry {
    const char *name;  /* points into the central directory (not NUL-terminated) */
    size_t name_len;
    const uint8_t *data;
    uint64_t size;
};

struct zip {
    struct zentry *ents; /* (n) sorted by name */
    size_t n;
};

static int cmp_zname(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static int cmp_zentry(const void *a, const void *b)
{
    const struct zentry *x = a, *y = b;
    return cmp_zname(x->name, x->name_len, y->name, y->name_len);
}

static const struct zentry *zip_find(const struct zip *z, const char *name, size_t len)
{
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_zname(z->ents[mid].name, z->ents[mid].name_len, name, len);
        if (c == 0) return &z->ents[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

#define EOCD_SIG 0x06054b50u
#define EOCD64_SIG 0x06064b50u
#define EOCD64_LOC_SIG 0x07064b50u
#define CDIR_SIG 0x02014b50u
#define LOCAL_SIG 0x04034b50u

/* Reads the central directory of the archive in d[0..size). */
static bool zip_open(struct zip *z, const uint8_t *d, size_t size, const char *fname)
{
    memset(z, 0, sizeof *z);
    if (size < 22) {
        FC_LOG_ERROR("%s: %zu bytes, too short for a zip archive (truncated file?)", fname, size);
        return false;
    }
    /* the end record is the last 22 bytes plus a comment of at most 64 KiB */
    size_t eocd = SIZE_MAX;
    size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (size_t i = size - 22 + 1; i-- > lowest;) {
        if (rd32(d + i) == EOCD_SIG && i + 22 + rd16(d + i + 20) == size) {
            eocd = i;
            break;
        }
    }
    if (eocd == SIZE_MAX) {
        FC_LOG_ERROR("%s: no zip end-of-central-directory record (truncated or not a torch.save zip file)", fname);
        return false;
    }
    uint64_t n_ents = rd16(d + eocd + 10), cd_size = rd32(d + eocd + 12), cd_off = rd32(d + eocd + 16);
    if (rd16(d + eocd + 4) != 0 || rd16(d + eocd + 6) != 0) {
        FC_LOG_ERROR("%s: multi-disk zip archives are not supported", fname);
        return false;
    }
    if (n_ents == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(d + eocd - 20) != EOCD64_LOC_SIG) {
            FC_LOG_ERROR("%s: zip end record asks for ZIP64 but has no ZIP64 locator", fname);
            return false;
        }
        uint64_t off64 = rd64(d + eocd - 20 + 8);
        if (off64 > size - 56 || size < 56 || rd32(d + off64) != EOCD64_SIG) {
            FC_LOG_ERROR("%s: bad ZIP64 end-of-central-directory record", fname);
            return false;
        }
        n_ents = rd64(d + off64 + 32);
        cd_size = rd64(d + off64 + 40);
        cd_off = rd64(d + off64 + 48);
    }
    if (cd_off > size || cd_size > size - cd_off) {
        FC_LOG_ERROR("%s: zip central directory [%llu, +%llu) lies outside the file of %zu bytes (truncated?)",
                     fname, (unsigned long long)cd_off, (unsigned long long)cd_size, size);
        return false;
    }
    if (n_ents > cd_size / 46) {
        FC_LOG_ERROR("%s: zip directory claims %llu entries in %llu bytes", fname,
                     (unsigned long long)n_ents, (unsigned long long)cd_size);
        return false;
    }
    z->ents = fc_xcalloc(n_ents ? (size_t)n_ents : 1, sizeof *z->ents);
    const uint8_t *p = d + cd_off, *end = p + cd_size;
    for (uint64_t i = 0; i < n_ents; i++) {
        if (end - p < 46 || rd32(p) != CDIR_SIG) {
            FC_LOG_ERROR("%s: zip central directory entry %llu is malformed", fname, (unsigned long long)i);
            return false;
        }
        uint16_t flags = rd16(p + 8), method = rd16(p + 10);
        uint64_t csize = rd32(p + 20), usize = rd32(p + 24), loff = rd32(p + 42);
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen) {
            FC_LOG_ERROR("%s: zip central directory entry %llu runs past the directory", fname,
                         (unsigned long long)i);
            return false;
        }
        const char *name = (const char *)p + 46;
        /* ZIP64 extended information: the 8-byte fields whose 32-bit ones are all ones, in order */
        const uint8_t *x = p + 46 + nlen, *xend = x + xlen;
        while (xend - x >= 4) {
            uint16_t id = rd16(x), len = rd16(x + 2);
            if ((size_t)(xend - x) - 4 < len) break;
            if (id == 1) {
                const uint8_t *f = x + 4, *fend = f + len;
                if (usize == 0xFFFFFFFFu) { if (fend - f < 8) goto bad64; usize = rd64(f); f += 8; }
                if (csize == 0xFFFFFFFFu) { if (fend - f < 8) goto bad64; csize = rd64(f); f += 8; }
                if (loff == 0xFFFFFFFFu) { if (fend - f < 8) goto bad64; loff = rd64(f); f += 8; }
            }
            x += 4 + len;
        }
        if (flags & 1) {
            FC_LOG_ERROR("%s: zip entry '%.*s' is encrypted", fname, (int)nlen, name);
            return false;
        }
        if (method != 0 || csize != usize) {
            FC_LOG_ERROR("%s: zip entry '%.*s' is compressed (method %u); torch.save stores entries "
                         "uncompressed: re-save it with torch.save", fname, (int)nlen, name, method);
            return false;
        }
        if (loff > size || size - loff < 30 || rd32(d + loff) != LOCAL_SIG) {
            FC_LOG_ERROR("%s: zip entry '%.*s': local header at %llu is missing (truncated file?)", fname,
                         (int)nlen, name, (unsigned long long)loff);
            return false;
        }
        uint64_t doff = loff + 30 + (uint64_t)rd16(d + loff + 26) + rd16(d + loff + 28);
        if (doff > size || usize > size - doff) {
            FC_LOG_ERROR("%s: zip entry '%.*s' (%llu bytes at %llu) runs past the end of the file "
                         "(%zu bytes; truncated?)", fname, (int)nlen, name, (unsigned long long)usize,
                         (unsigned long long)doff, size);
            return false;
        }
        z->ents[z->n++] = (struct zentry){name, nlen, d + doff, usize};
        p += 46 + nlen + xlen + clen;
    }
    if (z->n > 1) qsort(z->ents, z->n, sizeof *z->ents, cmp_zentry);
    return true;
bad64:
    FC_LOG_ERROR("%s: zip entry with a short ZIP64 extra field", fname);
    return false;
}

/* ---- pickle objects ---- */

enum okind { O_NONE, O_BOOL, O_INT, O_FLOAT, O_STR, O_TUPLE, O_DICT, O_GLOBAL, O_STORAGE, O_TENSOR, O_LIST,
             O_BIGINT };

/* The whitelisted globals. */
enum gkind { G_ORDERED_DICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE_TYPE, G_DTYPE };

struct obj;

struct storage {
    enum fc_dtype type; /* FC_DTYPE_NONE: not one the engine reads */
    size_t esize;
    const uint8_t *data; /* NULL until the legacy format's raw storages are read */
    uint64_t numel;
    const char *key;    /* into the pickle, key_len bytes */
    size_t key_len;
};

struct obj {
    enum okind k;
    union {
        int64_t i;           /* O_INT, O_BOOL */
        double f;            /* O_FLOAT */
        struct { const char *p; size_t n; } s;              /* O_STR: into the pickle */
        struct { struct obj **v; size_t n; } tup;           /* O_TUPLE */
        struct { struct obj **k, **v; size_t n, cap; } dict; /* O_DICT */
        struct { enum gkind g; enum fc_dtype type; size_t esize; } gl; /* O_GLOBAL (type/esize: storages) */
        struct storage st;   /* O_STORAGE */
        struct { fc_tensor t; struct obj *st; uint64_t off; } ten; /* O_TENSOR: data set at the end */
        struct { struct obj **v; size_t n, cap; } list;     /* O_LIST */
    } u;
};

/* The torch storage classes and dtypes: name, fc_dtype (-1: loaded as raw
 * bytes), element size. */
struct ttype {
    const char *storage, *dtype;
    enum fc_dtype type;
    size_t esize;
};

static const struct ttype ttypes[] = {
    {"FloatStorage", "float32", FC_DTYPE_F32, 4},  {"HalfStorage", "float16", FC_DTYPE_F16, 2},
    {"BFloat16Storage", "bfloat16", FC_DTYPE_BF16, 2}, {"DoubleStorage", "float64", -1, 8},
    {"LongStorage", "int64", -1, 8},  {"IntStorage", "int32", -1, 4},  {"ShortStorage", "int16", -1, 2},
    {"CharStorage", "int8", -1, 1},   {"ByteStorage", "uint8", -1, 1}, {"BoolStorage", "bool", -1, 1},
};

/* ---- the pickle machine ---- */

#define VM_MAX_STACK (1 << 20)

struct vm {
    const char *fname;
    const uint8_t *p, *end, *start;
    const struct zip *zip;
    const char *prefix; /* "<dir>/" of data.pkl */
    size_t prefix_len;
    void **allocs;      /* every allocation, freed together */
    size_t n_allocs, cap_allocs;
    struct obj **stack;
    size_t sp, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    struct obj **memo;
    size_t n_memo;
    size_t n_memo_next; /* MEMOIZE's index: how many MEMOIZEs came before */
    bool legacy;        /* torch < 1.6 format: storages follow the pickles */
    struct obj **storages; /* every storage made, resolved by key in the legacy format */
    size_t n_storages, cap_storages;
};

static void *vm_alloc(struct vm *vm, size_t n)
{
    if (vm->n_allocs == vm->cap_allocs) {
        vm->cap_allocs = vm->cap_allocs ? vm->cap_allocs * 2 : 256;
        vm->allocs = fc_xrealloc(vm->allocs, vm->cap_allocs * sizeof *vm->allocs);
    }
    void *p = fc_xcalloc(1, n ? n : 1);
    vm->allocs[vm->n_allocs++] = p;
    return p;
}

static struct obj *new_obj(struct vm *vm, enum okind k)
{
    struct obj *o = vm_alloc(vm, sizeof *o);
    o->k = k;
    return o;
}

static void vm_free(struct vm *vm)
{
    for (size_t i = 0; i < vm->n_allocs; i++) free(vm->allocs[i]);
    free(vm->allocs);
    free(vm->stack);
    free(vm->marks);
    free(vm->memo);
    free(vm->storages);
}

/* Offset of the opcode being run, for messages. */
#define OFF(vm) ((long)((vm)->p - (vm)->start))

static bool push(struct vm *vm, struct obj *o)
{
    if (vm->sp == VM_MAX_STACK) {
        FC_LOG_ERROR("%s: data.pkl: pickle stack deeper than %d", vm->fname, VM_MAX_STACK);
        return false;
    }
    if (vm->sp == vm->cap_stack) {
        vm->cap_stack = vm->cap_stack ? vm->cap_stack * 2 : 64;
        vm->stack = fc_xrealloc(vm->stack, vm->cap_stack * sizeof *vm->stack);
    }
    vm->stack[vm->sp++] = o;
    return true;
}

static struct obj *pop(struct vm *vm)
{
    size_t floor = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (vm->sp <= floor) {
        FC_LOG_ERROR("%s: data.pkl: pickle stack underflow at byte %ld", vm->fname, OFF(vm));
        return NULL;
    }
    return vm->stack[--vm->sp];
}

static const char *kind_name(enum okind k)
{
    static const char *const names[] = {"None", "bool", "int", "float", "str", "tuple", "dict",
                                        "global", "storage", "tensor", "list", "int"};
    return names[k];
}

/* Pops the items above the last MARK (and the mark) into *items / *n. */
static bool pop_mark(struct vm *vm, struct obj ***items, size_t *n)
{
    if (!vm->n_marks) {
        FC_LOG_ERROR("%s: data.pkl: opcode at byte %ld needs a MARK", vm->fname, OFF(vm));
        return false;
    }
    size_t m = vm->marks[--vm->n_marks];
    *items = vm->stack ? vm->stack + m : NULL; /* MARK before any push: no stack yet */
    *n = vm->sp - m;
    vm->sp = m;
    return true;
}

static bool need(struct vm *vm, size_t n)
{
    if ((size_t)(vm->end - vm->p) < n) {
        FC_LOG_ERROR("%s: data.pkl: pickle ends inside an opcode at byte %ld (truncated?)", vm->fname, OFF(vm));
        return false;
    }
    return true;
}

static struct obj *make_tuple(struct vm *vm, struct obj **items, size_t n)
{
    struct obj *o = new_obj(vm, O_TUPLE);
    o->u.tup.v = vm_alloc(vm, n * sizeof *o->u.tup.v);
    if (n) memcpy(o->u.tup.v, items, n * sizeof *items);
    o->u.tup.n = n;
    return o;
}

static void dict_set(struct vm *vm, struct obj *d, struct obj *k, struct obj *v)
{
    if (d->u.dict.n == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 16;
        struct obj **nk = vm_alloc(vm, cap * sizeof *nk), **nv = vm_alloc(vm, cap * sizeof *nv);
        if (d->u.dict.n) {
            memcpy(nk, d->u.dict.k, d->u.dict.n * sizeof *nk);
            memcpy(nv, d->u.dict.v, d->u.dict.n * sizeof *nv);
        }
        d->u.dict.k = nk;
        d->u.dict.v = nv;
        d->u.dict.cap = cap;
    }
    /* a repeated key in one pickle is caught when names are sorted */
    d->u.dict.k[d->u.dict.n] = k;
    d->u.dict.v[d->u.dict.n++] = v;
}

/* GLOBAL / STACK_GLOBAL: the whitelist. module/name are not NUL-terminated. */
static struct obj *global(struct vm *vm, const char *mod, size_t ml, const char *name, size_t nl)
{
#define IS(s, l, lit) ((l) == sizeof(lit) - 1 && memcmp((s), (lit), (l)) == 0)
    struct obj *o = new_obj(vm, O_GLOBAL);
    if (IS(mod, ml, "collections") && IS(name, nl, "OrderedDict")) {
        o->u.gl.g = G_ORDERED_DICT;
        return o;
    }
    if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_tensor_v2")) {
        o->u.gl.g = G_REBUILD_TENSOR;
        return o;
    }
    if (IS(mod, ml, "torch._utils") && IS(name, nl, "_rebuild_parameter")) {
        o->u.gl.g = G_REBUILD_PARAMETER;
        return o;
    }
    if (IS(mod, ml, "torch")) {
        for (size_t i = 0; i < FC_ARRAY_LEN(ttypes); i++) {
            bool st = strlen(ttypes[i].storage) == nl && memcmp(ttypes[i].storage, name, nl) == 0;
            bool dt = strlen(ttypes[i].dtype) == nl && memcmp(ttypes[i].dtype, name, nl) == 0;
            if (st || dt) {
                o->u.gl.g = st ? G_STORAGE_TYPE : G_DTYPE;
                o->u.gl.type = ttypes[i].type;
                o->u.gl.esize = ttypes[i].esize;
                return o;
            }
        }
    }
#undef IS
    /* printable in the message: cut at the first control byte */
    int pm = 0, pn = 0;
    while ((size_t)pm < ml && pm < 80 && (unsigned char)mod[pm] >= 0x20) pm++;
    while ((size_t)pn < nl && pn < 80 && (unsigned char)name[pn] >= 0x20) pn++;
    FC_LOG_ERROR("%s: data.pkl: refusing pickle global '%.*s.%.*s' at byte %ld: a plain state dict "
                 "only needs torch tensor rebuilds, storages and OrderedDict, and this reader never "
                 "executes pickle code (the file may be malicious)",
                 vm->fname, pm, mod, pn, name, OFF(vm));
    return NULL;
}

/* BINPERSID: ('storage', <storage type>, '<key>', '<location>', numel) ->
 * the zip entry <prefix>data/<key>. */
static struct obj *persistent_load(struct vm *vm, struct obj *pid)
{
    struct obj **v = pid->k == O_TUPLE ? pid->u.tup.v : NULL;
    /* the legacy format adds view_metadata, None since torch 1.0 */
    size_t want = vm->legacy ? 6 : 5;
    if (!v || pid->u.tup.n != want || (vm->legacy && v[5]->k != O_NONE) || v[0]->k != O_STR || v[0]->u.s.n != 7 || memcmp(v[0]->u.s.p, "storage", 7) ||
        v[1]->k != O_GLOBAL || v[1]->u.gl.g != G_STORAGE_TYPE || v[2]->k != O_STR || v[4]->k != O_INT ||
        v[4]->u.i < 0) {
        FC_LOG_ERROR("%s: data.pkl: persistent id at byte %ld is not ('storage', torch.<X>Storage, key, "
                     "location, numel)", vm->fname, OFF(vm));
        return NULL;
    }
    const struct obj *key = v[2];
    if (key->u.s.n > 256) {
        FC_LOG_ERROR("%s: data.pkl: storage key of %zu bytes", vm->fname, key->u.s.n);
        return NULL;
    }
    if (vm->legacy) { /* the data comes after the pickles: found by key later */
        struct obj *o = new_obj(vm, O_STORAGE);
        uint64_t bytes;
        if (__builtin_mul_overflow((uint64_t)v[4]->u.i, (uint64_t)v[1]->u.gl.esize, &bytes)) {
            FC_LOG_ERROR("%s: storage '%.*s' size overflows", vm->fname, (int)key->u.s.n, key->u.s.p);
            return NULL;
        }
        o->u.st = (struct storage){v[1]->u.gl.type, v[1]->u.gl.esize, NULL, (uint64_t)v[4]->u.i, key->u.s.p,
                                   key->u.s.n};
        if (vm->n_storages == vm->cap_storages) {
            vm->cap_storages = vm->cap_storages ? vm->cap_storages * 2 : 64;
            vm->storages = fc_xrealloc(vm->storages, vm->cap_storages * sizeof *vm->storages);
        }
        vm->storages[vm->n_storages++] = o;
        return o;
    }
    char path[512];
    if (vm->prefix_len > 200) {
        FC_LOG_ERROR("%s: archive folder name of %zu bytes", vm->fname, vm->prefix_len);
        return NULL;
    }
    int len = snprintf(path, sizeof path, "%.*sdata/%.*s", (int)vm->prefix_len, vm->prefix, (int)key->u.s.n,
                       key->u.s.p);
    FC_ASSERT(len > 0 && (size_t)len < sizeof path); /* 200 + 5 + 256 < 512 */
    const struct zentry *e = zip_find(vm->zip, path, (size_t)len);
    if (!e) {
        FC_LOG_ERROR("%s: storage '%.*s' is missing from the archive (no entry %.*s)", vm->fname,
                     (int)key->u.s.n, key->u.s.p, len, path);
        return NULL;
    }
    uint64_t numel = (uint64_t)v[4]->u.i, bytes;
    size_t es = v[1]->u.gl.esize;
    if (__builtin_mul_overflow(numel, (uint64_t)es, &bytes) || bytes > e->size) {
        FC_LOG_ERROR("%s: storage '%.*s' claims %llu elements of %zu bytes but its entry holds %llu bytes",
                     vm->fname, (int)key->u.s.n, key->u.s.p, (unsigned long long)numel, es,
                     (unsigned long long)e->size);
        return NULL;
    }
    struct obj *o = new_obj(vm, O_STORAGE);
    o->u.st = (struct storage){v[1]->u.gl.type, es, e->data, numel, key->u.s.p, key->u.s.n};
    return o;
}

/* Reads a tuple of non-negative ints (sizes or strides) into out[]. */
static bool int_tuple(const struct obj *o, int64_t *out, int *n, int max)
{
    if (o->k != O_TUPLE || o->u.tup.n > (size_t)max) return false;
    for (size_t i = 0; i < o->u.tup.n; i++) {
        if (o->u.tup.v[i]->k != O_INT || o->u.tup.v[i]->u.i < 0) return false;
        out[i] = o->u.tup.v[i]->u.i;
    }
    *n = (int)o->u.tup.n;
    return true;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
 * backward_hooks[, metadata]) as a view into the storage. */
static struct obj *rebuild_tensor(struct vm *vm, struct obj *args)
{
    struct obj **a = args->k == O_TUPLE ? args->u.tup.v : NULL;
    if (!a || args->u.tup.n < 4 || args->u.tup.n > 7 || a[0]->k != O_STORAGE || a[1]->k != O_INT || a[1]->u.i < 0) {
        FC_LOG_ERROR("%s: data.pkl: _rebuild_tensor_v2 at byte %ld has unexpected arguments", vm->fname, OFF(vm));
        return NULL;
    }
    const struct storage *st = &a[0]->u.st;
    int64_t size[8], stride[8];
    int nd, ns;
    if (!int_tuple(a[2], size, &nd, 8) || !int_tuple(a[3], stride, &ns, 8) || nd != ns) {
        FC_LOG_ERROR("%s: data.pkl: tensor at byte %ld: size/stride are not matching tuples of non-negative "
                     "ints (at most 8 dims)", vm->fname, OFF(vm));
        return NULL;
    }
    if (nd > FC_MAX_DIMS) {
        FC_LOG_ERROR("%s: data.pkl: tensor at byte %ld has %d dimensions, at most %d supported", vm->fname,
                     OFF(vm), nd, FC_MAX_DIMS);
        return NULL;
    }
    uint64_t nelem = 1, want_stride = 1;
    for (int i = nd - 1; i >= 0; i--) {
        if (size[i] != 1 && stride[i] != (int64_t)want_stride) {
            FC_LOG_ERROR("%s: data.pkl: tensor at byte %ld is not contiguous (dim %d: stride %lld, expected "
                         "%llu); save tensor.contiguous() instead", vm->fname, OFF(vm), i,
                         (long long)stride[i], (unsigned long long)want_stride);
            return NULL;
        }
        if (__builtin_mul_overflow(want_stride, (uint64_t)size[i], &want_stride)) goto overflow;
    }
    nelem = want_stride;
    uint64_t off = (uint64_t)a[1]->u.i, endel, nbytes;
    if (__builtin_add_overflow(off, nelem, &endel) || __builtin_mul_overflow(nelem, (uint64_t)st->esize, &nbytes))
        goto overflow;
    if (endel > st->numel) {
        FC_LOG_ERROR("%s: data.pkl: tensor at byte %ld reads elements [%llu, %llu) of a storage of %llu",
                     vm->fname, OFF(vm), (unsigned long long)off, (unsigned long long)endel,
                     (unsigned long long)st->numel);
        return NULL;
    }
    struct obj *o = new_obj(vm, O_TENSOR);
    fc_tensor *t = &o->u.ten.t;
    t->type = st->type;
    t->n_dims = nd ? nd : 1;
    for (int i = 0; i < FC_MAX_DIMS; i++) t->ne[i] = 1;
    for (int i = 0; i < nd; i++) t->ne[i] = size[nd - 1 - i];
    t->nbytes = (size_t)nbytes;
    o->u.ten.st = a[0];
    o->u.ten.off = off;
    return o;
overflow:
    FC_LOG_ERROR("%s: data.pkl: tensor at byte %ld: element count overflows", vm->fname, OFF(vm));
    return NULL;
}

/* REDUCE / NEWOBJ: only the whitelisted callables, interpreted as data. */
static struct obj *reduce(struct vm *vm, struct obj *fn, struct obj *args)
{
    if (fn->k != O_GLOBAL || args->k != O_TUPLE) {
        FC_LOG_ERROR("%s: data.pkl: REDUCE at byte %ld on a %s, not a whitelisted global", vm->fname, OFF(vm),
                     kind_name(fn->k));
        return NULL;
    }
    switch (fn->u.gl.g) {
    case G_ORDERED_DICT:
        if (args->u.tup.n != 0) break;
        return new_obj(vm, O_DICT);
    case G_REBUILD_TENSOR:
        return rebuild_tensor(vm, args);
    case G_REBUILD_PARAMETER:
        /* _rebuild_parameter(data, requires_grad, backward_hooks): the tensor itself */
        if (args->u.tup.n != 3 || args->u.tup.v[0]->k != O_TENSOR) break;
        return args->u.tup.v[0];
    case G_STORAGE_TYPE:
    case G_DTYPE:
        break;
    }
    FC_LOG_ERROR("%s: data.pkl: unexpected call at byte %ld (a storage type, a dtype, or a rebuild with "
                 "the wrong arguments)", vm->fname, OFF(vm));
    return NULL;
}

static bool memo_put(struct vm *vm, uint64_t idx)
{
    /* indices are small and dense in real pickles; one entry per opcode byte at most */
    if (idx > (uint64_t)(vm->end - vm->start)) {
        FC_LOG_ERROR("%s: data.pkl: memo index %llu at byte %ld is out of range", vm->fname,
                     (unsigned long long)idx, OFF(vm));
        return false;
    }
    if (!vm->sp) {
        FC_LOG_ERROR("%s: data.pkl: memo put on an empty stack at byte %ld", vm->fname, OFF(vm));
        return false;
    }
    if (idx >= vm->n_memo) {
        size_t n = FC_MAX((size_t)idx + 1, vm->n_memo * 2);
        n = FC_MIN(n, (size_t)(vm->end - vm->start) + 1);
        vm->memo = fc_xrealloc(vm->memo, n * sizeof *vm->memo);
        memset(vm->memo + vm->n_memo, 0, (n - vm->n_memo) * sizeof *vm->memo);
        vm->n_memo = n;
    }
    vm->memo[idx] = vm->stack[vm->sp - 1];
    return true;
}

static bool memo_get(struct vm *vm, uint64_t idx)
{
    if (idx >= vm->n_memo || !vm->memo[idx]) {
        FC_LOG_ERROR("%s: data.pkl: memo entry %llu read at byte %ld was never stored", vm->fname,
                     (unsigned long long)idx, OFF(vm));
        return false;
    }
    return push(vm, vm->memo[idx]);
}

static struct obj *new_str(struct vm *vm, const uint8_t *p, size_t n)
{
    struct obj *o = new_obj(vm, O_STR);
    o->u.s.p = (const char *)p;
    o->u.s.n = n;
    return o;
}

static struct obj *new_int(struct vm *vm, int64_t v)
{
    struct obj *o = new_obj(vm, O_INT);
    o->u.i = v;
    return o;
}

/* Runs the pickle to STOP; returns the result or NULL (logged). */
static struct obj *run(struct vm *vm)
{
    struct obj *a, *b, *o, **items;
    size_t n;
    while (vm->p < vm->end) {
        const uint8_t *op = vm->p++;
        switch (*op) {
        case 0x80: /* PROTO */
            if (!need(vm, 1)) return NULL;
            if (*vm->p > 5) {
                FC_LOG_ERROR("%s: data.pkl: pickle protocol %u is not supported", vm->fname, *vm->p);
                return NULL;
            }
            vm->p++;
            break;
        case 0x95: /* FRAME: a length hint only */
            if (!need(vm, 8)) return NULL;
            vm->p += 8;
            break;
        case '.': /* STOP */
            if (vm->sp != 1 || vm->n_marks) {
                FC_LOG_ERROR("%s: data.pkl: STOP with %zu objects on the stack", vm->fname, vm->sp);
                return NULL;
            }
            return vm->stack[0];
        case '(': /* MARK */
            if (vm->n_marks == vm->cap_marks) {
                if (vm->n_marks >= VM_MAX_STACK) {
                    FC_LOG_ERROR("%s: data.pkl: too many nested MARKs", vm->fname);
                    return NULL;
                }
                vm->cap_marks = vm->cap_marks ? vm->cap_marks * 2 : 16;
                vm->marks = fc_xrealloc(vm->marks, vm->cap_marks * sizeof *vm->marks);
            }
            vm->marks[vm->n_marks++] = vm->sp;
            break;
        case ']': /* EMPTY_LIST */
            if (!push(vm, new_obj(vm, O_LIST))) return NULL;
            break;
        case 'a': /* APPEND */
        case 'e': /* APPENDS */
            vm->p = op;
            if (*op == 'a') {
                if (!(a = pop(vm))) return NULL;
                items = &a;
                n = 1;
            } else if (!pop_mark(vm, &items, &n)) {
                return NULL;
            }
            if (!vm->sp || vm->stack[vm->sp - 1]->k != O_LIST) {
                FC_LOG_ERROR("%s: data.pkl: APPEND(S) at byte %ld on something other than a list", vm->fname,
                             OFF(vm));
                return NULL;
            }
            o = vm->stack[vm->sp - 1];
            for (size_t i = 0; i < n; i++) {
                if (o->u.list.n == o->u.list.cap) {
                    size_t cap = o->u.list.cap ? o->u.list.cap * 2 : 16;
                    struct obj **nv = vm_alloc(vm, cap * sizeof *nv);
                    if (o->u.list.n) memcpy(nv, o->u.list.v, o->u.list.n * sizeof *nv);
                    o->u.list.v = nv;
                    o->u.list.cap = cap;
                }
                o->u.list.v[o->u.list.n++] = items[i];
            }
            vm->p = op + 1;
            break;
        case '}': /* EMPTY_DICT */
            if (!push(vm, new_obj(vm, O_DICT))) return NULL;
            break;
        case ')': /* EMPTY_TUPLE */
            if (!push(vm, make_tuple(vm, NULL, 0))) return NULL;
            break;
        case 'N':
            if (!push(vm, new_obj(vm, O_NONE))) return NULL;
            break;
        case 0x88: /* NEWTRUE */
        case 0x89: /* NEWFALSE */
            o = new_obj(vm, O_BOOL);
            o->u.i = *op == 0x88;
            if (!push(vm, o)) return NULL;
            break;
        case 'K': /* BININT1 */
            if (!need(vm, 1) || !push(vm, new_int(vm, vm->p[0]))) return NULL;
            vm->p += 1;
            break;
        case 'M': /* BININT2 */
            if (!need(vm, 2) || !push(vm, new_int(vm, rd16(vm->p)))) return NULL;
            vm->p += 2;
            break;
        case 'J': /* BININT: signed */
            if (!need(vm, 4) || !push(vm, new_int(vm, (int32_t)rd32(vm->p)))) return NULL;
            vm->p += 4;
            break;
        case 0x8a: { /* LONG1: n bytes, little-endian two's complement */
            if (!need(vm, 1)) return NULL;
            size_t len = vm->p[0];
            if (!need(vm, 1 + len)) return NULL;
            if (len > 8) { /* the legacy format's magic number: kept as bytes */
                if (!push(vm, o = new_obj(vm, O_BIGINT))) return NULL;
                o->u.s.p = (const char *)vm->p + 1;
                o->u.s.n = len;
                vm->p += 1 + len;
                break;
            }
            uint64_t u = 0;
            for (size_t i = 0; i < len; i++) u |= (uint64_t)vm->p[1 + i] << (8 * i);
            if (len && len < 8 && (vm->p[len] & 0x80)) u |= ~(uint64_t)0 << (8 * len); /* sign-extend */
            if (!push(vm, new_int(vm, (int64_t)u))) return NULL;
            vm->p += 1 + len;
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if (!need(vm, 8)) return NULL;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = u << 8 | vm->p[i];
            o = new_obj(vm, O_FLOAT);
            memcpy(&o->u.f, &u, sizeof u);
            if (!push(vm, o)) return NULL;
            vm->p += 8;
            break;
        }
        case 0x8c: /* SHORT_BINUNICODE */
            if (!need(vm, 1) || !need(vm, 1 + (size_t)vm->p[0])) return NULL;
            if (!push(vm, new_str(vm, vm->p + 1, vm->p[0]))) return NULL;
            vm->p += 1 + vm->p[0];
            break;
        case 'X': { /* BINUNICODE */
            if (!need(vm, 4)) return NULL;
            size_t len = rd32(vm->p);
            if (!need(vm, 4 + (uint64_t)len)) return NULL;
            if (!push(vm, new_str(vm, vm->p + 4, len))) return NULL;
            vm->p += 4 + len;
            break;
        }
        case 0x8d: { /* BINUNICODE8 */
            if (!need(vm, 8)) return NULL;
            uint64_t len = rd64(vm->p);
            if (len > (uint64_t)(vm->end - vm->p) - 8) {
                need(vm, SIZE_MAX);
                return NULL;
            }
            if (!push(vm, new_str(vm, vm->p + 8, (size_t)len))) return NULL;
            vm->p += 8 + len;
            break;
        }
        case 't': /* TUPLE */
            if (!pop_mark(vm, &items, &n) || !push(vm, make_tuple(vm, items, n))) return NULL;
            break;
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            struct obj *t3[3];
            n = (size_t)(*op - 0x84);
            for (size_t i = n; i-- > 0;)
                if (!(t3[i] = pop(vm))) return NULL;
            if (!push(vm, make_tuple(vm, t3, n))) return NULL;
            break;
        }
        case 'c': { /* GLOBAL: "module\nname\n" */
            const uint8_t *nl1 = memchr(vm->p, '\n', (size_t)(vm->end - vm->p));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(vm->end - nl1 - 1)) : NULL;
            if (!nl2) {
                need(vm, SIZE_MAX);
                return NULL;
            }
            vm->p = op; /* messages point at the opcode */
            o = global(vm, (const char *)op + 1, (size_t)(nl1 - op - 1), (const char *)nl1 + 1,
                       (size_t)(nl2 - nl1 - 1));
            if (!o || !push(vm, o)) return NULL;
            vm->p = nl2 + 1;
            break;
        }
        case 0x93: /* STACK_GLOBAL */
            vm->p = op;
            if (!(b = pop(vm)) || !(a = pop(vm))) return NULL;
            if (a->k != O_STR || b->k != O_STR) {
                FC_LOG_ERROR("%s: data.pkl: STACK_GLOBAL at byte %ld on non-strings", vm->fname, OFF(vm));
                return NULL;
            }
            if (!(o = global(vm, a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n)) || !push(vm, o)) return NULL;
            vm->p = op + 1;
            break;
        case 'Q': /* BINPERSID */
            vm->p = op;
            if (!(a = pop(vm)) || !(o = persistent_load(vm, a)) || !push(vm, o)) return NULL;
            vm->p = op + 1;
            break;
        case 'R': /* REDUCE */
        case 0x81: /* NEWOBJ */
            vm->p = op;
            if (!(b = pop(vm)) || !(a = pop(vm)) || !(o = reduce(vm, a, b)) || !push(vm, o)) return NULL;
            vm->p = op + 1;
            break;
        case 's': /* SETITEM */
            vm->p = op;
            if (!(b = pop(vm)) || !(a = pop(vm))) return NULL;
            if (!vm->sp || vm->stack[vm->sp - 1]->k != O_DICT) goto not_dict;
            dict_set(vm, vm->stack[vm->sp - 1], a, b);
            vm->p = op + 1;
            break;
        case 'u': /* SETITEMS */
            vm->p = op;
            if (!pop_mark(vm, &items, &n)) return NULL;
            if (n % 2) {
                FC_LOG_ERROR("%s: data.pkl: SETITEMS at byte %ld with an odd number of items", vm->fname, OFF(vm));
                return NULL;
            }
            if (!vm->sp || vm->stack[vm->sp - 1]->k != O_DICT) goto not_dict;
            for (size_t i = 0; i < n; i += 2) dict_set(vm, vm->stack[vm->sp - 1], items[i], items[i + 1]);
            vm->p = op + 1;
            break;
        case 'b': /* BUILD: only OrderedDict's attribute dict (_metadata), ignored */
            vm->p = op;
            if (!(a = pop(vm))) return NULL;
            if (!vm->sp || vm->stack[vm->sp - 1]->k != O_DICT || (a->k != O_DICT && a->k != O_NONE)) {
                FC_LOG_ERROR("%s: data.pkl: BUILD at byte %ld on something other than an OrderedDict",
                             vm->fname, OFF(vm));
                return NULL;
            }
            vm->p = op + 1;
            break;
        case 0x94: /* MEMOIZE */
            vm->p = op;
            if (!memo_put(vm, vm->n_memo_next)) return NULL;
            vm->n_memo_next++;
            vm->p = op + 1;
            break;
        case 'q': /* BINPUT */
            if (!need(vm, 1) || !memo_put(vm, vm->p[0])) return NULL;
            vm->p += 1;
            break;
        case 'r': /* LONG_BINPUT */
            if (!need(vm, 4) || !memo_put(vm, rd32(vm->p))) return NULL;
            vm->p += 4;
            break;
        case 'h': /* BINGET */
            if (!need(vm, 1) || !memo_get(vm, vm->p[0])) return NULL;
            vm->p += 1;
            break;
        case 'j': /* LONG_BINGET */
            if (!need(vm, 4) || !memo_get(vm, rd32(vm->p))) return NULL;
            vm->p += 4;
            break;
        default:
            vm->p = op;
            FC_LOG_ERROR("%s: data.pkl: pickle opcode 0x%02x at byte %ld is not one a plain state dict uses; "
                         "refusing it (this reader never executes pickle code)", vm->fname, *op, OFF(vm));
            return NULL;
        }
    }
    FC_LOG_ERROR("%s: data.pkl: pickle ends without STOP (truncated?)", vm->fname);
    return NULL;
not_dict:
    FC_LOG_ERROR("%s: data.pkl: SETITEM(S) at byte %ld on something other than a dict", vm->fname, OFF(vm));
    return NULL;
}

/* ---- the checkpoint object ---- */

struct fc_torch_bin {
    fc_mmap **maps;   /* (n_files) owned; NULL for fc_torch_bin_parse */
    char **files;     /* (n_files) owned names, for messages */
    int n_files;
    fc_tensor_index ix; /* the tensors, by name (file: index into files) */
    void **copies;    /* aligned copies of misaligned tensors */
    int64_t n_copies;
};

static const uint64_t empty_data[1];

static int file_add(fc_torch_bin *tb, const char *name, fc_mmap *m)
{
    tb->maps = fc_xrealloc(tb->maps, (size_t)(tb->n_files + 1) * sizeof *tb->maps);
    tb->files = fc_xrealloc(tb->files, (size_t)(tb->n_files + 1) * sizeof *tb->files);
    tb->maps[tb->n_files] = m;
    tb->files[tb->n_files] = fc_xstrdup(name);
    return tb->n_files++;
}

static bool add_entry(fc_torch_bin *tb, const struct obj *key, const fc_tensor *t, int file)
{
    if (memchr(key->u.s.p, 0, key->u.s.n)) {
        FC_LOG_ERROR("%s: tensor name with a NUL byte", tb->files[file]);
        return false;
    }
    fc_tensor v = *t;
    size_t es = v.type == FC_DTYPE_F32 ? 4 : v.type == FC_DTYPE_F16 || v.type == FC_DTYPE_BF16 ? 2 : 1;
    if (v.nbytes == 0) {
        v.data = empty_data;
    } else if (es > 1 && (uintptr_t)v.data % es) {
        void *copy = fc_aligned_alloc(v.nbytes);
        if (!copy) {
            FC_LOG_ERROR("%s: out of memory copying a misaligned tensor", tb->files[file]);
            return false;
        }
        memcpy(copy, v.data, v.nbytes);
        tb->copies = fc_xrealloc(tb->copies, (size_t)(tb->n_copies + 1) * sizeof *tb->copies);
        tb->copies[tb->n_copies++] = copy;
        v.data = copy;
    }
    char *name = fc_xmalloc(key->u.s.n + 1);
    memcpy(name, key->u.s.p, key->u.s.n);
    name[key->u.s.n] = 0;
    fc_tensor_index_add(&tb->ix, name, &v, file);
    return true;
}

/* The zip format: runs <dir>/data.pkl; NULL (logged) on error. */
static struct obj *parse_zip(struct vm *vm, struct zip *z, const uint8_t *d, size_t size, const char *fname)
{
    if (!zip_open(z, d, size, fname)) return NULL;
    /* data.pkl: the one entry "<dir>/data.pkl" */
    const struct zentry *pkl = NULL;
    for (size_t i = 0; i < z->n; i++) {
        const struct zentry *e = &z->ents[i];
        const char *slash = memchr(e->name, '/', e->name_len);
        if (slash && (size_t)(e->name + e->name_len - slash) == 9 && !memcmp(slash, "/data.pkl", 9)) {
            if (pkl) {
                FC_LOG_ERROR("%s: more than one data.pkl in the archive", fname);
                return NULL;
            }
            pkl = e;
        }
    }
    if (!pkl) {
        FC_LOG_ERROR("%s: zip archive without <name>/data.pkl: not a torch.save checkpoint", fname);
        return NULL;
    }
    size_t plen = pkl->name_len - 8; /* keeps the '/' */
    char bo[128];
    int bl = snprintf(bo, sizeof bo, "%.*sbyteorder", (int)FC_MIN(plen, 100), pkl->name);
    const struct zentry *be = zip_find(z, bo, (size_t)bl);
    if (be && !(be->size == 6 && !memcmp(be->data, "little", 6))) {
        FC_LOG_ERROR("%s: big-endian checkpoint (byteorder '%.*s'): not supported", fname,
                     (int)FC_MIN(be->size, 16), (const char *)be->data);
        return NULL;
    }
    *vm = (struct vm){.fname = fname, .p = pkl->data, .start = pkl->data, .end = pkl->data + pkl->size,
                      .zip = z, .prefix = pkl->name, .prefix_len = plen};
    return run(vm);
}

/* Runs the next pickle of a legacy file with a fresh stack and memo. */
static struct obj *next_pickle(struct vm *vm)
{
    vm->sp = 0;
    vm->n_marks = 0;
    if (vm->n_memo) memset(vm->memo, 0, vm->n_memo * sizeof *vm->memo);
    vm->n_memo_next = 0;
    return run(vm);
}

static int cmp_storage(const void *a, const void *b)
{
    const struct storage *x = &(*(struct obj *const *)a)->u.st, *y = &(*(struct obj *const *)b)->u.st;
    return cmp_zname(x->key, x->key_len, y->key, y->key_len);
}

/* torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c, as LONG1 stores it */
static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/*
 * The legacy format (torch < 1.6, or _use_new_zipfile_serialization=False):
 * five pickles in a row (the magic number, protocol version 1001, sys_info,
 * the object, the sorted list of storage keys), then every storage in that
 * order as a little-endian int64 element count and its bytes. Storages are
 * not aligned: add_entry copies the tensors whose data is misaligned.
 */
static struct obj *parse_legacy(struct vm *vm, const uint8_t *d, size_t size, const char *fname)
{
    *vm = (struct vm){.fname = fname, .p = d, .start = d, .end = d + size, .legacy = true};
    struct obj *o = next_pickle(vm);
    if (!o) return NULL;
    if (o->k != O_BIGINT || o->u.s.n != 10 || memcmp(o->u.s.p, legacy_magic, 10)) {
        FC_LOG_ERROR("%s: a pickle without torch's magic number: not a PyTorch checkpoint", fname);
        return NULL;
    }
    if (!(o = next_pickle(vm))) return NULL;
    if (o->k != O_INT || o->u.i != 1001) {
        FC_LOG_ERROR("%s: legacy torch format with protocol version %lld, expected 1001", fname,
                     o->k == O_INT ? (long long)o->u.i : -1LL);
        return NULL;
    }
    if (!(o = next_pickle(vm))) return NULL;
    if (o->k != O_DICT) {
        FC_LOG_ERROR("%s: legacy torch format without its sys_info dict", fname);
        return NULL;
    }
    for (size_t i = 0; i < o->u.dict.n; i++) {
        const struct obj *k = o->u.dict.k[i], *v = o->u.dict.v[i];
        if (k->k == O_STR && k->u.s.n == 13 && !memcmp(k->u.s.p, "little_endian", 13) &&
            !(v->k == O_BOOL && v->u.i)) {
            FC_LOG_ERROR("%s: big-endian checkpoint: not supported", fname);
            return NULL;
        }
    }
    struct obj *root = next_pickle(vm), *keys;
    if (!root || !(keys = next_pickle(vm))) return NULL;
    if (keys->k != O_LIST) {
        FC_LOG_ERROR("%s: legacy torch format: the storage key list is a %s", fname, kind_name(keys->k));
        return NULL;
    }
    if (vm->n_storages > 1) qsort(vm->storages, vm->n_storages, sizeof *vm->storages, cmp_storage);
    const uint8_t *p = vm->p, *end = d + size;
    for (size_t i = 0; i < keys->u.list.n; i++) {
        const struct obj *k = keys->u.list.v[i];
        if (k->k != O_STR) {
            FC_LOG_ERROR("%s: legacy torch format: storage key %zu is a %s", fname, i, kind_name(k->k));
            return NULL;
        }
        /* the first storage object with this key (binary search), then all equal ones */
        size_t lo = 0, hi = vm->n_storages;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const struct storage *st = &vm->storages[mid]->u.st;
            if (cmp_zname(st->key, st->key_len, k->u.s.p, k->u.s.n) < 0) lo = mid + 1;
            else hi = mid;
        }
        const struct storage *first = lo < vm->n_storages ? &vm->storages[lo]->u.st : NULL;
        if (!first || cmp_zname(first->key, first->key_len, k->u.s.p, k->u.s.n) != 0) {
            FC_LOG_ERROR("%s: legacy torch format: storage '%.*s' is listed but no tensor uses it", fname,
                         (int)FC_MIN(k->u.s.n, 64), k->u.s.p);
            return NULL;
        }
        uint64_t numel, bytes;
        if (end - p < 8 || (numel = rd64(p), __builtin_mul_overflow(numel, (uint64_t)first->esize, &bytes)) ||
            bytes > (uint64_t)(end - p) - 8) {
            FC_LOG_ERROR("%s: legacy torch format: storage '%.*s' runs past the end of the file (truncated?)",
                         fname, (int)FC_MIN(k->u.s.n, 64), k->u.s.p);
            return NULL;
        }
        p += 8;
        for (size_t j = lo; j < vm->n_storages; j++) {
            struct storage *st = &vm->storages[j]->u.st;
            if (cmp_zname(st->key, st->key_len, k->u.s.p, k->u.s.n) != 0) break;
            if (st->numel > numel || st->esize != first->esize) {
                FC_LOG_ERROR("%s: legacy torch format: storage '%.*s' holds %llu elements, %llu expected", fname,
                             (int)FC_MIN(k->u.s.n, 64), k->u.s.p, (unsigned long long)numel,
                             (unsigned long long)st->numel);
                return NULL;
            }
            st->data = p;
        }
        p += bytes;
    }
    return root;
}

/* Parses the checkpoint in d[0..size) and appends its tensors as file `file`. */
static bool parse_file(fc_torch_bin *tb, const uint8_t *d, size_t size, int file)
{
    const char *fname = tb->files[file];
    struct zip z = {0};
    struct vm vm = {0};
    struct obj *root = NULL;
    bool ok = false;
    if (size >= 2 && d[0] == 0x80 && d[1] <= 5) {
        root = parse_legacy(&vm, d, size, fname);
    } else if (size < 22) {
        FC_LOG_ERROR("%s: %zu bytes, too short for a PyTorch checkpoint (truncated?)", fname, size);
    } else if (rd32(d) != LOCAL_SIG) {
        FC_LOG_ERROR("%s: not a PyTorch checkpoint (no zip signature; torch.save writes a zip archive)", fname);
    } else {
        root = parse_zip(&vm, &z, d, size, fname);
    }
    if (!root) goto done;
    if (root->k != O_DICT) {
        FC_LOG_ERROR("%s: data.pkl holds a %s, not a state dict", fname, kind_name(root->k));
        goto done;
    }
    int64_t n_tensors = 0;
    for (size_t i = 0; i < root->u.dict.n; i++) {
        const struct obj *k = root->u.dict.k[i], *v = root->u.dict.v[i];
        if (k->k != O_STR) {
            FC_LOG_ERROR("%s: state dict key %zu is a %s, not a string", fname, i, kind_name(k->k));
            goto done;
        }
        if (v->k != O_TENSOR) {
            FC_LOG_DEBUG("%s: skipping '%.*s' (a %s, not a tensor)", fname, (int)FC_MIN(k->u.s.n, 200),
                         k->u.s.p, kind_name(v->k));
            continue;
        }
        const struct storage *st = &v->u.ten.st->u.st;
        if (!st->data) {
            FC_LOG_ERROR("%s: tensor '%.*s': its storage '%.*s' is not in the file", fname,
                         (int)FC_MIN(k->u.s.n, 200), k->u.s.p, (int)FC_MIN(st->key_len, 64), st->key);
            goto done;
        }
        fc_tensor t = v->u.ten.t;
        t.data = st->data + v->u.ten.off * st->esize;
        if (!add_entry(tb, k, &t, file)) goto done;
        n_tensors++;
    }
    if (n_tensors == 0 && root->u.dict.n) {
        FC_LOG_ERROR("%s: the state dict holds no tensors at its top level (a training checkpoint that nests "
                     "the weights, e.g. under \"state_dict\"? save model.state_dict() itself)", fname);
        goto done;
    }
    ok = true;
done:
    vm_free(&vm);
    free(z.ents);
    return ok;
}

/* ---- files and folders ---- */

static bool open_file_into(fc_torch_bin *tb, const char *path)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return false;
    int f = file_add(tb, path, m);
    return parse_file(tb, m->data, m->size, f);
}

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir);
    return fc_xasprintf("%s%s%s", dir, a && dir[a - 1] != '/' ? "/" : "", name);
}

static bool is_regular(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* pytorch_model.bin.index.json: opens each shard of "weight_map" once and
 * checks every listed tensor is in its shard. */
static bool open_index(fc_torch_bin *tb, const char *dir, const char *index_path)
{
    bool ok = false;
    char **shards = NULL;
    size_t len;
    char *json = fc_file_read(index_path, &len, 256u << 20);
    if (!json) return false;
    cJSON *root = cJSON_ParseWithLength(json, len);
    free(json);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        FC_LOG_ERROR("%s: missing or empty \"weight_map\" object", index_path);
        goto done;
    }
    int n = 0, n_unique = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) n++;
    shards = fc_xcalloc((size_t)n, sizeof *shards);
    n = 0;
    cJSON_ArrayForEach(e, wm) {
        const char *s = cJSON_IsString(e) ? e->valuestring : NULL;
        if (!s || !s[0] || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..")) {
            FC_LOG_ERROR("%s: weight_map[\"%s\"] is not a shard file name in this folder", index_path,
                         e->string ? e->string : "");
            goto done;
        }
        shards[n++] = e->valuestring;
    }
    qsort(shards, (size_t)n, sizeof *shards, cmp_str);
    for (int i = 0; i < n; i++)
        if (n_unique == 0 || strcmp(shards[n_unique - 1], shards[i])) shards[n_unique++] = shards[i];
    for (int i = 0; i < n_unique; i++) {
        char *p = path_join(dir, shards[i]);
        bool good = open_file_into(tb, p);
        free(p);
        if (!good) goto done;
    }
    if (!fc_tensor_index_finish(&tb->ix, dir)) goto done;
    cJSON_ArrayForEach(e, wm) {
        const fc_tensor_entry *en = fc_tensor_index_find(&tb->ix, e->string ? e->string : "");
        char *want = path_join(dir, e->valuestring);
        bool match = en && strcmp(tb->files[en->file], want) == 0;
        free(want);
        if (!match) {
            FC_LOG_ERROR("%s: tensor '%s' listed in the index is missing from shard %s", index_path,
                         e->string ? e->string : "", e->valuestring);
            goto done;
        }
    }
    ok = true;
done:
    free(shards);
    cJSON_Delete(root);
    return ok;
}

bool fc_torch_bin_in_folder(const char *dir)
{
    char *a = path_join(dir, "pytorch_model.bin.index.json"), *b = path_join(dir, "pytorch_model.bin");
    bool yes = is_regular(a) || is_regular(b);
    free(a);
    free(b);
    return yes;
}

fc_torch_bin *fc_torch_bin_open(const char *path)
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
    fc_torch_bin *tb = fc_xcalloc(1, sizeof *tb);
    char *index = NULL, *single = NULL;
    if (!S_ISDIR(sb.st_mode)) {
        if (!open_file_into(tb, path) || !fc_tensor_index_finish(&tb->ix, path)) goto fail;
        return tb;
    }
    index = path_join(path, "pytorch_model.bin.index.json");
    single = path_join(path, "pytorch_model.bin");
    if (is_regular(index)) {
        if (!open_index(tb, path, index)) goto fail;
    } else if (is_regular(single)) {
        if (!open_file_into(tb, single) || !fc_tensor_index_finish(&tb->ix, single)) goto fail;
    } else {
        FC_LOG_ERROR("%s: no pytorch_model.bin.index.json or pytorch_model.bin in this folder", path);
        goto fail;
    }
    free(index);
    free(single);
    return tb;
fail:
    free(index);
    free(single);
    fc_torch_bin_free(tb);
    return NULL;
}

fc_torch_bin *fc_torch_bin_parse(const uint8_t *data, size_t size, const char *name)
{
    if (!name) name = "pytorch_model.bin";
    fc_torch_bin *tb = fc_xcalloc(1, sizeof *tb);
    int f = file_add(tb, name, NULL);
    if (!parse_file(tb, data ? data : (const uint8_t *)"", data ? size : 0, f) ||
        !fc_tensor_index_finish(&tb->ix, name)) {
        fc_torch_bin_free(tb);
        return NULL;
    }
    return tb;
}

void fc_torch_bin_free(fc_torch_bin *tb)
{
    if (!tb) return;
    fc_tensor_index_free(&tb->ix);
    for (int64_t i = 0; i < tb->n_copies; i++) fc_aligned_free(tb->copies[i]);
    free(tb->copies);
    for (int i = 0; i < tb->n_files; i++) {
        fc_mmap_free(tb->maps[i]);
        free(tb->files[i]);
    }
    free(tb->maps);
    free(tb->files);
    free(tb);
}

int64_t fc_torch_bin_n_tensors(const fc_torch_bin *tb) { return tb ? tb->ix.n : 0; }

const char *fc_torch_bin_name(const fc_torch_bin *tb, int64_t i)
{
    return tb && i >= 0 && i < tb->ix.n ? tb->ix.ents[i].name : NULL;
}

const fc_tensor *fc_torch_bin_tensor(const fc_torch_bin *tb, int64_t i)
{
    return tb && i >= 0 && i < tb->ix.n ? &tb->ix.ents[i].t : NULL;
}

const fc_tensor *fc_torch_bin_find(const fc_torch_bin *tb, const char *name)
{
    if (!tb || !name) return NULL;
    const fc_tensor_entry *e = fc_tensor_index_find(&tb->ix, name);
    return e ? &e->t : NULL;
}
