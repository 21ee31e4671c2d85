/*
 * weights.c: apply-delta, make-delta and apply-lora on safetensors folders
 * (weights.h says what is computed, and how it differs from FastChat).
 *
 * One pipeline serves the three tools: the output tensors are the base's,
 * by name, each with its dtype and shape; they are cut into shards in name
 * order, and each shard is written as header + data, computing one tensor
 * at a time into a buffer the size of the largest tensor.
 */
#include "weights.h"
#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "format/hub.h"
#include "model/lora.h"
#include "model/safetensors.h"
#include "tensor/ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SHARD_BYTES 5000000000ull /* transformers' max_shard_size="5GB" */
#define CHUNK 65536                      /* elements converted at a time */

enum op { OP_ADD, OP_SUB, OP_LORA };

/* One tensor of the output and where its values come from. */
typedef struct out_tensor {
    const char *name;          /* borrowed from the base's fc_safetensors */
    enum fc_dtype type;        /* output dtype (f32, f16, bf16) */
    int n_dims;
    int64_t ne[FC_MAX_DIMS];   /* GGUF order, as fc_tensor */
    size_t nbytes;
    const fc_tensor *base;     /* the base's tensor */
    const fc_tensor *other;    /* delta (apply) / target (make); NULL for a tensor LoRA leaves alone */
    const fc_tensor *la, *lb;  /* LoRA A (r, in) and B (out, r), safetensors order; NULL if none */
} out_tensor;

typedef struct job {
    enum op op;
    const char *tool;          /* "apply-delta", ... for messages */
    fc_safetensors *base, *other;
    out_tensor *t;
    int n;
    fc_lora_adapter_cfg lora;       /* adapter_config.json (model/lora.h) */
    fc_weights_opts o;
} job;

/* ---- helpers ---- */

static const char *st_dtype_name(enum fc_dtype type)
{
    switch (type) {
    case FC_DTYPE_F32: return "F32";
    case FC_DTYPE_F16: return "F16";
    case FC_DTYPE_BF16: return "BF16";
    default: return NULL;
    }
}

static bool plain_float(enum fc_dtype type) { return st_dtype_name(type) != NULL; }

/* Rounds f32 values to what they become stored as type (f16/bf16), in place. */
static void round_to(enum fc_dtype type, float *x, int64_t n)
{
    if (type == FC_DTYPE_F16)
        for (int64_t i = 0; i < n; i++) x[i] = fc_f16_to_f32(fc_f32_to_f16(x[i]));
    else if (type == FC_DTYPE_BF16)
        for (int64_t i = 0; i < n; i++) x[i] = fc_bf16_to_f32(fc_f32_to_bf16(x[i]));
}

/* Values [off, off + n) of t as f32, rounded to type as_type first. */
static void load_f32(const fc_tensor *t, int64_t off, int64_t n, enum fc_dtype as_type, float *dst)
{
    const size_t es = fc_dtype_type_size(t->type);
    bool ok = fc_dequantize_row_ref(t->type, (const uint8_t *)t->data + (size_t)off * es, dst, n);
    FC_ASSERT(ok);
    if (as_type != t->type) round_to(as_type, dst, n);
}

/* A Hub repo id (in the cache) or a folder: the folder path, malloc'd; NULL logged. */
static char *resolve(const char *spec)
{
    char *path = NULL;
    if (fc_hub_resolve(spec, NULL, &path) != FC_OK) return NULL;
    return path;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, R_OK) == 0;
}

/* Opens the checkpoint of a model folder: safetensors, or PyTorch .bin
 * files (pytorch_model.bin[.index.json], read without running pickle code by
 * format/torch_bin.h through fc_safetensors_open). */
static fc_safetensors *open_folder(const char *dir, const char *what)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        FC_LOG_ERROR("%s: %s is not a folder (%s)", dir, what, stat(dir, &sb) != 0 ? strerror(errno) : "a file");
        return NULL;
    }
    return fc_safetensors_open(dir);
}

/* The safetensors shape of t (outermost first) as JSON. */
static void put_shape(fc_str *s, const out_tensor *t)
{
    fc_str_putc(s, '[');
    for (int d = t->n_dims - 1; d >= 0; d--) fc_str_printf(s, "%lld%s", (long long)t->ne[d], d ? "," : "");
    fc_str_putc(s, ']');
}

static int64_t rows_of(const fc_tensor *t) { return fc_tensor_nelem(t) / t->ne[0]; }

/* ---- the values of one output tensor ---- */

/* out[0 .. nelem) as f32 chunks, stored as t->type into dst. */
static void compute(const job *j, const out_tensor *t, uint8_t *dst, float *a, float *b)
{
    const int64_t K = t->ne[0], n = (int64_t)(t->nbytes / fc_dtype_type_size(t->type));
    const size_t es = fc_dtype_type_size(t->type);
    /* with a grown vocabulary, the base covers only its first rows */
    const int64_t n_base = t->base ? rows_of(t->base) * K : 0;
    for (int64_t off = 0; off < n; off += CHUNK) {
        const int64_t m = FC_MIN((int64_t)CHUNK, n - off);
        if (j->op == OP_LORA) {
            load_f32(t->base, off, m, t->type, a);
        } else if (t->other) {
            load_f32(t->other, off, m, t->type, b);
            const int64_t mb = FC_MAX((int64_t)0, FC_MIN(m, n_base - off)); /* values the base has */
            if (mb > 0) load_f32(t->base, off, mb, t->type, a);
            for (int64_t i = 0; i < m; i++) {
                if (i >= mb) a[i] = b[i]; /* extra rows: taken as they are */
                else a[i] = j->op == OP_ADD ? a[i] + b[i] : b[i] - a[i];
            }
        }
        bool ok = fc_quantize_row_ref(t->type, a, dst + (size_t)off * es, m);
        FC_ASSERT(ok);
    }
    if (j->op != OP_LORA || !t->la) return;

    /* W += scale * B @ A, row by row of W, added in f32 to the stored value */
    const int64_t r = t->la->ne[1], in = t->la->ne[0], outd = t->lb->ne[1]; /* r = lora.r (checked) */
    float *A = fc_xmalloc(sizeof(float) * (size_t)(r * in));
    float *B = fc_xmalloc(sizeof(float) * (size_t)(outd * r));
    load_f32(t->la, 0, r * in, t->la->type, A);
    load_f32(t->lb, 0, outd * r, t->lb->type, B);
    const int64_t R = rows_of(t->base);
    float *row = fc_xmalloc(sizeof(float) * (size_t)K);
    for (int64_t i = 0; i < R; i++) {
        load_f32(t->base, i * K, K, t->type, row);
        fc_lora_add_row(&j->lora, A, B, in, i, row, K);
        bool ok = fc_quantize_row_ref(t->type, row, dst + (size_t)(i * K) * es, K);
        FC_ASSERT(ok);
    }
    free(row);
    free(A);
    free(B);
}

/* ---- writing ---- */

static bool write_all(FILE *f, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, f) != n) {
        FC_LOG_ERROR("%s: write failed: %s", path, strerror(errno));
        return false;
    }
    return true;
}

static bool write_shard(const job *j, const char *path, int t0, int t1, uint8_t *buf, float *a, float *b)
{
    fc_str h;
    fc_str_init(&h, 0);
    fc_str_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t at = 0;
    for (int i = t0; i < t1; i++) {
        const out_tensor *t = &j->t[i];
        fc_str_putc(&h, ',');
        fc_json_put_str(&h, t->name);
        fc_str_printf(&h, ":{\"dtype\":\"%s\",\"shape\":", st_dtype_name(t->type));
        put_shape(&h, t);
        fc_str_printf(&h, ",\"data_offsets\":[%zu,%zu]}", at, at + t->nbytes);
        at += t->nbytes;
    }
    fc_str_putc(&h, '}');
    while (fc_str_len(&h) % 8) fc_str_putc(&h, ' '); /* the data section starts 8-aligned */
    FILE *f = fopen(path, "wb");
    if (!f) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        fc_str_free(&h);
        return false;
    }
    uint64_t hl = fc_str_len(&h);
    uint8_t le[8];
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(hl >> (8 * k));
    bool ok = write_all(f, le, 8, path) && write_all(f, fc_str_cstr(&h), hl, path);
    fc_str_free(&h);
    for (int i = t0; ok && i < t1; i++) {
        const out_tensor *t = &j->t[i];
        compute(j, t, buf, a, b);
        ok = write_all(f, buf, t->nbytes, path);
        if (j->o.low_cpu_mem) {
            fc_safetensors_release(j->base, t->base);
            if (t->other) fc_safetensors_release(j->other, t->other);
        }
    }
    if (fclose(f) != 0 && ok) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        ok = false;
    }
    return ok;
}

static bool copy_file(const char *from_dir, const char *to_dir, const char *name)
{
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/%s", from_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", to_dir, name);
    if (access(src, R_OK) != 0) return true;
    size_t len;
    char *data = fc_file_read(src, &len, (size_t)1 << 30);
    if (!data) return false;
    bool ok = fc_file_write_atomic(dst, data, len) == FC_OK;
    free(data);
    return ok;
}

static bool mkdir_p(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) goto fail;
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) goto fail;
    return true;
fail:
    FC_LOG_ERROR("%s: cannot create the folder: %s", p, strerror(errno));
    return false;
}

/* Writes the shards, the index and the side files (from files_dir). */
static enum fc_status write_model(const job *j, const char *out, const char *files_dir)
{
    if (!mkdir_p(out)) return FC_ERR_IO;
    const uint64_t max = j->o.max_shard_bytes ? j->o.max_shard_bytes : DEFAULT_SHARD_BYTES;
    /* shard boundaries, in name order: a shard closes before the tensor that would pass max */
    int *first = fc_xmalloc(sizeof(int) * (size_t)(j->n + 1));
    int n_shards = 0;
    uint64_t cur = 0, total = 0;
    size_t biggest = 0;
    for (int i = 0; i < j->n; i++) {
        if (i == 0 || (cur > 0 && cur + j->t[i].nbytes > max)) {
            first[n_shards++] = i;
            cur = 0;
        }
        cur += j->t[i].nbytes;
        total += j->t[i].nbytes;
        biggest = FC_MAX(biggest, j->t[i].nbytes);
    }
    first[n_shards] = j->n;
    uint8_t *buf = fc_xmalloc(FC_MAX(biggest, (size_t)1));
    float *a = fc_xmalloc(sizeof(float) * CHUNK), *b = fc_xmalloc(sizeof(float) * CHUNK);
    enum fc_status st = FC_OK;
    char path[4096], fname[64];
    fc_str idx;
    fc_str_init(&idx, 0);
    fc_str_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {", (unsigned long long)total);
    for (int s = 0; s < n_shards && st == FC_OK; s++) {
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", out, fname);
        if (!write_shard(j, path, first[s], first[s + 1], buf, a, b)) st = FC_ERR_IO;
        else if (!j->o.quiet)
            fprintf(stderr, "%s: wrote %s (%d tensors)\n", j->tool, path, first[s + 1] - first[s]);
        for (int i = first[s]; i < first[s + 1]; i++) {
            fc_str_puts(&idx, i ? ",\n    " : "\n    ");
            fc_json_put_str(&idx, j->t[i].name);
            fc_str_puts(&idx, ": ");
            fc_json_put_str(&idx, fname);
        }
    }
    fc_str_puts(&idx, "\n  }\n}\n");
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
    if (st == FC_OK) {
        if (n_shards > 1) {
            if (fc_file_write_atomic(path, fc_str_cstr(&idx), fc_str_len(&idx)) != FC_OK) st = FC_ERR_IO;
        } else {
            unlink(path); /* a stale index would hide the new model.safetensors */
        }
    }
    static const char *side[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer.model",
                                 "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                                 "vocab.json", "merges.txt", "chat_template.jinja"};
    for (size_t i = 0; st == FC_OK && i < FC_ARRAY_LEN(side); i++)
        if (!copy_file(files_dir, out, side[i])) st = FC_ERR_IO;
    fc_str_free(&idx);
    free(first);
    free(buf);
    free(a);
    free(b);
    return st;
}

/* ---- the tools ---- */

static bool is_vocab_tensor(const char *name)
{
    return strstr(name, "embed_tokens.weight") || strstr(name, "lm_head.weight");
}

/* The output list of apply-delta / make-delta: every base tensor, paired by name. */
static bool pair_tensors(job *j, const char *base_dir, const char *other_dir)
{
    const int64_t n = fc_safetensors_n_tensors(j->base);
    j->t = fc_xcalloc((size_t)FC_MAX(n, 1), sizeof *j->t);
    for (int64_t i = 0; i < n; i++) {
        const char *name = fc_safetensors_name(j->base, i);
        const fc_tensor *bt = fc_safetensors_tensor(j->base, i), *ot = fc_safetensors_find(j->other, name);
        if (!ot) {
            FC_LOG_ERROR("%s: tensor %s of the base (%s) is missing", other_dir, name, base_dir);
            return false;
        }
        if (!plain_float(bt->type) || !plain_float(ot->type)) {
            FC_LOG_ERROR("%s: tensor %s is not f32/f16/bf16", plain_float(bt->type) ? other_dir : base_dir, name);
            return false;
        }
        bool same = bt->n_dims == ot->n_dims;
        for (int d = 0; d < FC_MAX_DIMS; d++) same = same && bt->ne[d] == ot->ne[d];
        bool grown = !same && is_vocab_tensor(name) && bt->n_dims == 2 && ot->n_dims == 2 &&
                     bt->ne[0] == ot->ne[0] && bt->ne[1] < ot->ne[1];
        if (!same && !grown) {
            FC_LOG_ERROR("%s: tensor %s has shape [%lld, %lld] but [%lld, %lld] in the base (%s)", other_dir, name,
                         (long long)ot->ne[1], (long long)ot->ne[0], (long long)bt->ne[1], (long long)bt->ne[0],
                         base_dir);
            return false;
        }
        out_tensor *t = &j->t[j->n++];
        t->name = name;
        t->type = ot->type;
        t->n_dims = ot->n_dims;
        memcpy(t->ne, ot->ne, sizeof t->ne);
        t->nbytes = (size_t)fc_tensor_nelem(ot) * fc_dtype_type_size(ot->type);
        t->base = bt;
        t->other = ot;
    }
    /* tensors only the other model has: FastChat iterates the base's and would drop them silently */
    for (int64_t i = 0; i < fc_safetensors_n_tensors(j->other); i++)
        if (!fc_safetensors_find(j->base, fc_safetensors_name(j->other, i)))
            FC_LOG_WARN("%s: tensor %s is not in the base; it is left out, as FastChat does",
                        other_dir, fc_safetensors_name(j->other, i));
    return true;
}

static enum fc_status delta_tool(enum op op, const char *base_spec, const char *other_spec, const char *out,
                                 const fc_weights_opts *opts)
{
    job j = {.op = op, .tool = op == OP_ADD ? "apply-delta" : "make-delta"};
    if (opts) j.o = *opts;
    enum fc_status st = FC_ERR_ARG;
    char *base_dir = resolve(base_spec), *other_dir = base_dir ? resolve(other_spec) : NULL;
    if (!other_dir) goto done;
    j.base = open_folder(base_dir, "base model");
    j.other = j.base ? open_folder(other_dir, op == OP_ADD ? "delta" : "target model") : NULL;
    if (!j.other || !pair_tensors(&j, base_dir, other_dir)) goto done;
    st = write_model(&j, out, other_dir);
done:
    free(j.t);
    fc_safetensors_free(j.base);
    fc_safetensors_free(j.other);
    free(base_dir);
    free(other_dir);
    return st;
}

enum fc_status fc_weights_apply_delta(const char *base, const char *delta, const char *out, const fc_weights_opts *o)
{
    return delta_tool(OP_ADD, base, delta, out, o);
}

enum fc_status fc_weights_make_delta(const char *base, const char *target, const char *out, const fc_weights_opts *o)
{
    return delta_tool(OP_SUB, base, target, out, o);
}

/* ---- LoRA ---- */

enum fc_status fc_weights_apply_lora(const char *base_spec, const char *lora_spec, const char *out,
                                     const fc_weights_opts *opts)
{
    job j = {.op = OP_LORA, .tool = "apply-lora"};
    if (opts) j.o = *opts;
    enum fc_status st = FC_ERR_ARG;
    char *base_dir = resolve(base_spec), *lora_dir = base_dir ? resolve(lora_spec) : NULL;
    if (!lora_dir || fc_lora_adapter_cfg_read(lora_dir, &j.lora) != FC_OK) goto done;
    /* PEFT writes adapter_model.safetensors, or adapter_model.bin (a
     * torch.save state dict) with safe_serialization=False */
    char p[4096];
    const char *aname = file_exists(lora_dir, "adapter_model.safetensors") ? "adapter_model.safetensors"
                      : file_exists(lora_dir, "adapter_model.bin")         ? "adapter_model.bin"
                                                                           : NULL;
    if (!aname) {
        FC_LOG_ERROR("%s: no adapter_model.safetensors or adapter_model.bin in the adapter folder", lora_dir);
        goto done;
    }
    snprintf(p, sizeof p, "%s/%s", lora_dir, aname);
    j.base = open_folder(base_dir, "base model");
    j.other = j.base ? fc_safetensors_open(p) : NULL;
    if (!j.other) goto done;
    const int64_t n = fc_safetensors_n_tensors(j.base);
    j.t = fc_xcalloc((size_t)FC_MAX(n, 1), sizeof *j.t);
    for (int64_t i = 0; i < n; i++) {
        const fc_tensor *bt = fc_safetensors_tensor(j.base, i);
        if (!plain_float(bt->type)) {
            FC_LOG_ERROR("%s: tensor %s is not f32/f16/bf16", base_dir, fc_safetensors_name(j.base, i));
            goto done;
        }
        out_tensor *t = &j.t[j.n++];
        t->name = fc_safetensors_name(j.base, i);
        t->type = bt->type;
        t->n_dims = bt->n_dims;
        memcpy(t->ne, bt->ne, sizeof t->ne);
        t->nbytes = bt->nbytes;
        t->base = bt;
    }
    /* every adapter tensor must find its base matrix and its partner */
    for (int64_t i = 0; i < fc_safetensors_n_tensors(j.other); i++) {
        const char *key = fc_safetensors_name(j.other, i);
        const fc_tensor *lt = fc_safetensors_tensor(j.other, i);
        char bname[1024], which;
        if (!fc_lora_key(key, bname, sizeof bname, &which)) {
            FC_LOG_ERROR("%s: tensor %s is not a LoRA A/B weight; this build merges only those", p, key);
            goto done;
        }
        out_tensor *t = NULL;
        for (int k = 0; k < j.n && !t; k++)
            if (strcmp(j.t[k].name, bname) == 0) t = &j.t[k];
        if (!t) {
            FC_LOG_ERROR("%s: %s adapts %s, which the base (%s) does not have", p, key, bname, base_dir);
            goto done;
        }
        if (!plain_float(lt->type) || lt->n_dims != 2) {
            FC_LOG_ERROR("%s: tensor %s must be a 2-D f32/f16/bf16 matrix", p, key);
            goto done;
        }
        if (t->n_dims != 2) {
            FC_LOG_ERROR("%s: %s adapts %s, which is not a matrix", p, key, bname);
            goto done;
        }
        if (which == 'A') t->la = lt;
        else t->lb = lt;
    }
    for (int k = 0; k < j.n; k++) {
        out_tensor *t = &j.t[k];
        if (!t->la != !t->lb) {
            FC_LOG_ERROR("%s: %s has a lora_%s but no lora_%s", p, t->name, t->la ? "A" : "B", t->la ? "B" : "A");
            goto done;
        }
        if (!t->la) continue;
        /* W (out, in) = ne {in, out}; A (r, in) = ne {in, r}; B (out, r) = ne {r, out} */
        const int64_t in = j.lora.fan_in_fan_out ? t->ne[1] : t->ne[0], outd = j.lora.fan_in_fan_out ? t->ne[0] : t->ne[1];
        if (t->la->ne[0] != in || t->lb->ne[1] != outd || t->lb->ne[0] != t->la->ne[1] || t->la->ne[1] != j.lora.r) {
            FC_LOG_ERROR("%s: the LoRA of %s has A [%lld, %lld] and B [%lld, %lld], which do not fit its [%lld, %lld]%s with r = %lld",
                         p, t->name, (long long)t->la->ne[1], (long long)t->la->ne[0], (long long)t->lb->ne[1],
                         (long long)t->lb->ne[0], (long long)t->ne[1], (long long)t->ne[0],
                         j.lora.fan_in_fan_out ? " (fan_in_fan_out)" : "", (long long)j.lora.r);
            goto done;
        }
    }
    st = write_model(&j, out, base_dir);
done:
    free(j.t);
    fc_safetensors_free(j.base);
    fc_safetensors_free(j.other);
    free(base_dir);
    free(lora_dir);
    fc_lora_adapter_cfg_free(&j.lora);
    return st;
}
