/*
 * model.c: loading a model from a GGUF file or a Hugging Face folder into an
 * fc_model: hyper-parameters, and views of every weight tensor in place in
 * the file mapping (no dequantization). Small 1-D tensors (norms, biases)
 * are copied out as f32 once: the norms are applied in f32, and a forward
 * pass that read them in place would keep the file's pages around them in
 * memory (with huge-page file mappings, 2 MiB of weights each).
 *
 * GGUF metadata keys follow llama.cpp's conventions ("<arch>.block_count",
 * "<arch>.attention.head_count", ...). llama.cpp's converter permutes the Q
 * and K rows of llama models so that RoPE rotates adjacent pairs; qwen2 is
 * left unpermuted and rotated NeoX-style (rotate-half). Hugging Face
 * checkpoints always use rotate-half. cfg.rope_neox records which applies.
 *
 * Does not: T5, MoE, sliding-window attention, YaRN scaling.
 */
#include "model_impl.h"
#include "hf_config.h"

#include "tensor/ops.h"
#include "base/pool.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

static void add_named(fc_model *m, const char *name, const fc_tensor *t)
{
    if (!t->data) return;
    m->named = fc_xrealloc(m->named, sizeof *m->named * (size_t)(m->n_named + 1));
    fc_named_tensor *n = &m->named[m->n_named++];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->t = t;
}

static void *own(fc_model *m, size_t n)
{
    void *p = fc_xmalloc(n);
    m->owned = fc_xrealloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    m->owned[m->n_owned++] = p;
    return p;
}

/* Makes a 1-D tensor f32 (norm weights, biases), converting from f16/bf16. */
static bool to_f32(fc_model *m, fc_tensor *t, const char *what)
{
    if (!t->data) return true;
    if (t->type != FC_DTYPE_F32 && t->type != FC_DTYPE_F16 && t->type != FC_DTYPE_BF16) {
        FC_LOG_ERROR("%s: tensor %s has type %s; expected f32/f16/bf16", m->path, what,
                     fc_dtype_name(t->type));
        return false;
    }
    int64_t n = fc_tensor_nelem(t);
    float *f = own(m, sizeof(float) * (size_t)n);
    fc_dequantize_row_ref(t->type, t->data, f, n); /* a plain copy for f32 */
    t->type = FC_DTYPE_F32;
    t->data = f;
    t->nbytes = sizeof(float) * (size_t)n;
    return true;
}

/* Checks that t is present with the expected dims (ne0, ne1; ne1 = 0 for 1-D). */
static bool check_shape(const fc_model *m, const fc_tensor *t, const char *name, int64_t ne0, int64_t ne1)
{
    if (!t->data) {
        FC_LOG_ERROR("%s: missing tensor %s", m->path, name);
        return false;
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
        FC_LOG_ERROR("%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", m->path,
                     name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                     (long long)t->ne[3], (long long)ne0, (long long)want1);
        return false;
    }
    if (!fc_dtype_supported(t->type)) {
        FC_LOG_ERROR("%s: tensor %s has unsupported type %s (%d)", m->path, name,
                     fc_dtype_name(t->type), t->type);
        return false;
    }
    return true;
}

/* Validates every tensor against the config and converts small ones. */
static bool finish_tensors(fc_model *m)
{
    const fc_model_config *c = &m->cfg;
    const int64_t C = c->n_embd, HS = c->head_dim, NH = c->n_head, NKV = c->n_head_kv, FF = c->n_ff, V = c->n_vocab;
    char name[96];
    if (!check_shape(m, &m->tok_embd, "token_embd.weight", C, V)) return false;
    if (!check_shape(m, &m->output_norm, "output_norm.weight", C, 0)) return false;
    if (!m->output.data) {
        m->cfg.tied_embeddings = true;
        m->output = m->tok_embd;
    }
    if (!check_shape(m, &m->output, "output.weight", C, V)) return false;
    if (!to_f32(m, &m->output_norm, "output_norm.weight")) return false;
    if (m->rope_freqs.data) {
        if (!check_shape(m, &m->rope_freqs, "rope_freqs.weight", HS / 2, 0) || !to_f32(m, &m->rope_freqs, "rope_freqs.weight"))
            return false;
    }
    for (int l = 0; l < c->n_layer; l++) {
        fc_layer *L = &m->layers[l];
#define CHK(field, gname, a, b) \
        do { snprintf(name, sizeof name, "blk.%d." gname, l); \
             if (!check_shape(m, &L->field, name, a, b)) return false; } while (0)
        CHK(attn_norm, "attn_norm.weight", C, 0);
        CHK(wq, "attn_q.weight", C, NH * HS);
        CHK(wk, "attn_k.weight", C, NKV * HS);
        CHK(wv, "attn_v.weight", C, NKV * HS);
        CHK(wo, "attn_output.weight", NH * HS, C);
        CHK(ffn_norm, "ffn_norm.weight", C, 0);
        CHK(w_gate, "ffn_gate.weight", C, FF);
        CHK(w_up, "ffn_up.weight", C, FF);
        CHK(w_down, "ffn_down.weight", FF, C);
        if (c->qkv_bias) {
            CHK(bq, "attn_q.bias", NH * HS, 0);
            CHK(bk, "attn_k.bias", NKV * HS, 0);
            CHK(bv, "attn_v.bias", NKV * HS, 0);
        }
#undef CHK
        if (!to_f32(m, &L->attn_norm, "attn_norm") || !to_f32(m, &L->ffn_norm, "ffn_norm") ||
            !to_f32(m, &L->bq, "attn_q.bias") || !to_f32(m, &L->bk, "attn_k.bias") ||
            !to_f32(m, &L->bv, "attn_v.bias"))
            return false;
    }
    /* canonical names, sizes and the dominant matrix type */
    add_named(m, "token_embd.weight", &m->tok_embd);
    add_named(m, "output_norm.weight", &m->output_norm);
    if (!m->cfg.tied_embeddings) add_named(m, "output.weight", &m->output);
    add_named(m, "rope_freqs.weight", &m->rope_freqs);
    size_t type_bytes[FC_DTYPE_COUNT] = {0};
    for (int l = 0; l < c->n_layer; l++) {
        fc_layer *L = &m->layers[l];
        const struct { const char *n; fc_tensor *t; } ts[] = {
            {"attn_norm.weight", &L->attn_norm}, {"attn_q.weight", &L->wq}, {"attn_k.weight", &L->wk},
            {"attn_v.weight", &L->wv}, {"attn_q.bias", &L->bq}, {"attn_k.bias", &L->bk},
            {"attn_v.bias", &L->bv}, {"attn_output.weight", &L->wo}, {"ffn_norm.weight", &L->ffn_norm},
            {"ffn_gate.weight", &L->w_gate}, {"ffn_up.weight", &L->w_up}, {"ffn_down.weight", &L->w_down},
        };
        for (size_t i = 0; i < FC_ARRAY_LEN(ts); i++) {
            snprintf(name, sizeof name, "blk.%d.%s", l, ts[i].n);
            add_named(m, name, ts[i].t);
            if (ts[i].t->data && ts[i].t->n_dims >= 2 && ts[i].t->ne[1] > 1)
                type_bytes[ts[i].t->type] += ts[i].t->nbytes;
        }
    }
    m->weight_bytes = 0;
    for (int i = 0; i < m->n_named; i++) m->weight_bytes += m->named[i].t->nbytes;
    int best = FC_DTYPE_F32;
    for (int t = 0; t < FC_DTYPE_COUNT; t++)
        if (type_bytes[t] > type_bytes[best]) best = t;
    m->weight_type = best;
    return true;
}

/* ---- GGUF ---- */

static fc_tensor gguf_t(const fc_gguf *g, const char *name)
{
    const fc_gguf_tensor_info *ti = fc_gguf_find_tensor(g, name);
    fc_tensor t = {0};
    if (ti) t = ti->t;
    return t;
}

static bool gguf_u32(const fc_model *m, const char *arch, const char *suffix, int *out, bool required)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    if (!fc_gguf_get_u32(m->gguf, key, &v)) {
        if (required) FC_LOG_ERROR("%s: missing or malformed metadata key %s", m->path, key);
        return false;
    }
    if (v > INT32_MAX) {
        FC_LOG_ERROR("%s: metadata %s = %u out of range", m->path, key, v);
        return false;
    }
    *out = (int)v;
    return true;
}

static bool gguf_f32(const fc_model *m, const char *arch, const char *suffix, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return fc_gguf_get_f32(m->gguf, key, out);
}

static bool load_gguf(fc_model *m)
{
    m->gguf = fc_gguf_open(m->path);
    if (!m->gguf) return false;
    const fc_gguf *g = m->gguf;
    fc_model_config *c = &m->cfg;
    fc_gguf_str s;
    if (!fc_gguf_get_str(g, "general.architecture", &s)) {
        FC_LOG_ERROR("%s: missing general.architecture", m->path);
        return false;
    }
    snprintf(c->arch_name, sizeof c->arch_name, "%.*s", (int)FC_MIN(s.len, 31), s.ptr);
    if (!strcmp(c->arch_name, "llama") || !strcmp(c->arch_name, "mistral")) {
        c->arch = FC_ARCH_LLAMA;
        c->rope_neox = false;
    } else if (!strcmp(c->arch_name, "qwen2")) {
        c->arch = FC_ARCH_QWEN2;
        c->rope_neox = true;
        c->qkv_bias = true;
    } else {
        FC_LOG_ERROR("%s: unsupported architecture '%s' (supported: llama, mistral, qwen2)", m->path, c->arch_name);
        return false;
    }
    const char *a = c->arch_name;
    if (!gguf_u32(m, a, "embedding_length", &c->n_embd, true) ||
        !gguf_u32(m, a, "block_count", &c->n_layer, true) ||
        !gguf_u32(m, a, "feed_forward_length", &c->n_ff, true) ||
        !gguf_u32(m, a, "attention.head_count", &c->n_head, true))
        return false;
    if (!gguf_u32(m, a, "attention.head_count_kv", &c->n_head_kv, false)) c->n_head_kv = c->n_head;
    {
        char key[128];
        uint32_t ctx;
        snprintf(key, sizeof key, "%s.context_length", a);
        if (!fc_gguf_get_u32(m->gguf, key, &ctx)) {
            c->n_ctx_train = 2048; /* absent: the common default */
        } else if (ctx == 0 || ctx > (1u << 24)) { /* 0, 0xFFFFFFFF, ...: not a length any model has */
            FC_LOG_ERROR("%s: metadata %s = %u is not a usable context length (1 .. 16777216); refusing the model",
                         m->path, key, ctx);
            return false;
        } else {
            c->n_ctx_train = (int)ctx;
        }
    }
    if (c->n_head <= 0 || c->n_embd <= 0 || c->n_layer <= 0 || c->n_ff <= 0 || c->n_head_kv <= 0 ||
        c->n_head % c->n_head_kv != 0) {
        FC_LOG_ERROR("%s: inconsistent hyper-parameters (embd %d, layers %d, ff %d, heads %d/%d)", m->path,
                     c->n_embd, c->n_layer, c->n_ff, c->n_head, c->n_head_kv);
        return false;
    }
    if (!gguf_u32(m, a, "attention.key_length", &c->head_dim, false)) c->head_dim = c->n_embd / c->n_head;
    int rope_dim;
    if (gguf_u32(m, a, "rope.dimension_count", &rope_dim, false) && rope_dim != c->head_dim) {
        FC_LOG_ERROR("%s: partial rotary embeddings (rope dim %d of head %d) are not supported", m->path, rope_dim, c->head_dim);
        return false;
    }
    if (c->head_dim <= 0 || c->head_dim % 2 || c->head_dim > 1024) {
        FC_LOG_ERROR("%s: bad head size %d", m->path, c->head_dim);
        return false;
    }
    if (!gguf_f32(m, a, "attention.layer_norm_rms_epsilon", &c->rms_eps)) c->rms_eps = 1e-5f;
    if (!gguf_f32(m, a, "rope.freq_base", &c->rope_theta)) c->rope_theta = 10000.0f;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    c->rope_scaling = FC_ROPE_SCALING_NONE;
    c->rope_factor = 1.0f;
    if (fc_gguf_get_str(g, key, &s)) {
        if (s.len == 6 && !memcmp(s.ptr, "linear", 6)) {
            c->rope_scaling = FC_ROPE_SCALING_LINEAR;
            if (!gguf_f32(m, a, "rope.scaling.factor", &c->rope_factor) || !(c->rope_factor > 0)) {
                FC_LOG_ERROR("%s: linear rope scaling without a valid factor", m->path);
                return false;
            }
        } else if (!(s.len == 4 && !memcmp(s.ptr, "none", 4))) {
            FC_LOG_ERROR("%s: rope scaling '%.*s' is not supported", m->path, (int)s.len, s.ptr);
            return false;
        }
    }
    float f;
    if (c->rope_scaling == FC_ROPE_SCALING_NONE && gguf_f32(m, a, "rope.scale_linear", &f) && f != 1.0f) {
        c->rope_scaling = FC_ROPE_SCALING_LINEAR;
        c->rope_factor = f;
    }
    c->bos_id = c->eos_id = -1;
    uint32_t id;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id)) c->bos_id = (int)id;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id)) c->eos_id = (int)id;

    m->tok_embd = gguf_t(g, "token_embd.weight");
    m->output_norm = gguf_t(g, "output_norm.weight");
    m->output = gguf_t(g, "output.weight");
    m->rope_freqs = gguf_t(g, "rope_freqs.weight");
    if (!m->tok_embd.data) {
        FC_LOG_ERROR("%s: missing tensor token_embd.weight", m->path);
        return false;
    }
    c->n_vocab = (int)m->tok_embd.ne[1];
    m->layers = fc_xcalloc((size_t)c->n_layer, sizeof(fc_layer));
    for (int l = 0; l < c->n_layer; l++) {
        fc_layer *L = &m->layers[l];
        char n[96];
#define GET(field, gname) do { snprintf(n, sizeof n, "blk.%d." gname, l); L->field = gguf_t(g, n); } while (0)
        GET(attn_norm, "attn_norm.weight");
        GET(wq, "attn_q.weight");
        GET(wk, "attn_k.weight");
        GET(wv, "attn_v.weight");
        GET(wo, "attn_output.weight");
        GET(bq, "attn_q.bias");
        GET(bk, "attn_k.bias");
        GET(bv, "attn_v.bias");
        GET(ffn_norm, "ffn_norm.weight");
        GET(w_gate, "ffn_gate.weight");
        GET(w_up, "ffn_up.weight");
        GET(w_down, "ffn_down.weight");
#undef GET
        if (L->bq.data) c->qkv_bias = true;
    }
    return true;
}

/* ---- Hugging Face folder ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = fc_xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            if (cap > (64u << 20)) break; /* a config.json is never this large */
            buf = fc_xrealloc(buf, cap *= 2);
        }
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static fc_tensor st_t(const fc_safetensors *st, const char *name)
{
    const fc_tensor *t = fc_safetensors_find(st, name);
    fc_tensor r = {0};
    if (t) r = *t;
    return r;
}

static bool load_hf(fc_model *m)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", m->path);
    size_t len;
    char *json = read_file(p, &len);
    if (!json) {
        FC_LOG_ERROR("%s: no config.json in this folder (%s)", m->path, strerror(errno));
        return false;
    }
    enum fc_status st = fc_hf_config_parse(json, len, p, &m->cfg);
    free(json);
    if (st != FC_OK) return false;
    m->st = fc_safetensors_open(m->path);
    if (!m->st) return false;
    const fc_safetensors *s = m->st;
    m->tok_embd = st_t(s, "model.embed_tokens.weight");
    m->output_norm = st_t(s, "model.norm.weight");
    m->output = st_t(s, "lm_head.weight");
    if (m->cfg.tied_embeddings) m->output.data = NULL;
    m->layers = fc_xcalloc((size_t)m->cfg.n_layer, sizeof(fc_layer));
    for (int l = 0; l < m->cfg.n_layer; l++) {
        fc_layer *L = &m->layers[l];
        char n[128];
#define GET(field, hname) do { snprintf(n, sizeof n, "model.layers.%d." hname, l); L->field = st_t(s, n); } while (0)
        GET(attn_norm, "input_layernorm.weight");
        GET(wq, "self_attn.q_proj.weight");
        GET(wk, "self_attn.k_proj.weight");
        GET(wv, "self_attn.v_proj.weight");
        GET(wo, "self_attn.o_proj.weight");
        GET(bq, "self_attn.q_proj.bias");
        GET(bk, "self_attn.k_proj.bias");
        GET(bv, "self_attn.v_proj.bias");
        GET(ffn_norm, "post_attention_layernorm.weight");
        GET(w_gate, "mlp.gate_proj.weight");
        GET(w_up, "mlp.up_proj.weight");
        GET(w_down, "mlp.down_proj.weight");
#undef GET
    }
    return true;
}

/* ---- packed weights ---- */

/* The matrices the forward pass multiplies by, which packing may cover. */
static int matrices(fc_model *m, fc_tensor **out)
{
    int n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        fc_layer *L = &m->layers[l];
        fc_tensor *ts[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < FC_ARRAY_LEN(ts); i++) out[n++] = ts[i];
    }
    out[n++] = &m->output;
    return n;
}

static bool packable(const fc_tensor *t)
{
    return t->data && t->n_dims == 2 && fc_pack_type(t->type) >= 0 && t->ne[1] % 8 == 0 && t->ne[0] % FC_QK == 0;
}

/* Packing is cut into chunks of whole 8-row groups that threads take in
 * turn: the copy, and above all the first touch of the new pages (which
 * the kernel zeroes), run on every core. */
#define PACK_CHUNK_BYTES (4u << 20)

/* Rows of matrix t per chunk: a multiple of 8, at least 8. */
static int64_t chunk_rows(const fc_tensor *t)
{
    return FC_MAX((int64_t)(PACK_CHUNK_BYTES / fc_tensor_row_bytes(t)) / 8 * 8, 8);
}

typedef struct pack_job {
    fc_tensor **mats;   /* the packable matrices */
    uint8_t **dst;      /* where each one's packed copy starts */
    int n;
    long page;
    _Atomic long next;  /* next chunk to take, over all matrices */
    long *first_chunk;  /* (n + 1) chunk index where each matrix starts */
} pack_job;

static void pack_thread(void *ctx, int ith, int nth)
{
    (void)ith; (void)nth;
    pack_job *j = ctx;
    for (;;) {
        const long c = j->next++;
        if (c >= j->first_chunk[j->n]) return;
        int i = 0;
        while (j->first_chunk[i + 1] <= c) i++;
        fc_tensor *t = j->mats[i];
        const size_t rs = fc_tensor_row_bytes(t);
        const int64_t rows = chunk_rows(t);
        const int64_t r0 = (c - j->first_chunk[i]) * rows, r1 = FC_MIN(r0 + rows, t->ne[1]);
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r0 * rs;
        const bool ok = fc_pack_rows(t->type, src, rs, r1 - r0, t->ne[0], j->dst[i] + (size_t)r0 * rs);
        FC_ASSERT(ok);
        /* drop the copied pages of the file mapping from this process */
        const uintptr_t pg = (uintptr_t)j->page;
        const uintptr_t p0 = ((uintptr_t)src + pg - 1) & ~(pg - 1);
        const uintptr_t p1 = ((uintptr_t)src + (size_t)(r1 - r0) * rs) & ~(pg - 1);
        if (p1 > p0) madvise((void *)p0, p1 - p0, MADV_DONTNEED);
    }
}

/*
 * Rearranges every q4_0 / q4_1 / q8_0 matrix into the row-interleaved
 * layout of the fast kernels (pack.c), in one anonymous mapping. The file
 * mapping stays (exact mode and --act8 read the stored layout), but its
 * pages are dropped from this process as they are copied, so the resident
 * size stays about one copy of the weights. FASTCHAT_NO_REPACK=1 turns it
 * off (for comparisons).
 */
static bool pack_weights(fc_model *m)
{
    /* forward passes of exact / --act8 execs may run meanwhile: they never
     * read the packed fields, and the dropped file pages fault back in */
    const char *off = getenv("FASTCHAT_NO_REPACK");
    if (off && *off && strcmp(off, "0") != 0) return true;
    fc_tensor **all = fc_xmalloc(sizeof *all * (size_t)(7 * m->cfg.n_layer + 1));
    const int n_all = matrices(m, all);
    pack_job j = {.mats = all, .page = sysconf(_SC_PAGESIZE)};
    size_t total = 0;
    for (int i = 0; i < n_all; i++)
        if (packable(all[i])) {
            all[j.n++] = all[i];
            total += (all[i]->nbytes + 63) & ~(size_t)63;
        }
    if (total == 0) {
        free(all);
        return true;
    }
    void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        FC_LOG_ERROR("%s: cannot allocate %zu bytes for the packed weights: %s", m->path, total, strerror(errno));
        free(all);
        return false;
    }
#ifdef MADV_HUGEPAGE
    madvise(base, total, MADV_HUGEPAGE);
#endif
    m->packed = base;
    m->packed_bytes = total;
    j.dst = fc_xmalloc(sizeof *j.dst * (size_t)j.n);
    j.first_chunk = fc_xmalloc(sizeof *j.first_chunk * (size_t)(j.n + 1));
    uint8_t *at = base;
    j.first_chunk[0] = 0;
    for (int i = 0; i < j.n; i++) {
        fc_tensor *t = all[i];
        const int64_t rows = chunk_rows(t);
        j.dst[i] = at;
        j.first_chunk[i + 1] = j.first_chunk[i] + (long)((t->ne[1] + rows - 1) / rows);
        at += (t->nbytes + 63) & ~(size_t)63;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const int nth = (int)FC_MAX(1, FC_MIN(FC_MIN(ncpu, 8), j.first_chunk[j.n]));
    fc_pool *pool = fc_pool_new(nth);
    fc_pool_run(pool, pack_thread, &j);
    fc_pool_free(pool);
    for (int i = 0; i < j.n; i++) {
        all[i]->packed = j.dst[i];
        all[i]->packed_type = fc_pack_type(all[i]->type);
    }
    free(j.dst);
    free(j.first_chunk);
    free(all);
    return true;
}

bool fc_model_pack_weights(const fc_model *cm)
{
    fc_model *m = (fc_model *)cm; /* the one change after load (model.h) */
    pthread_mutex_lock(&m->pack_lock);
    bool ok = true;
    if (!m->pack_done) {
        ok = pack_weights(m);
        m->pack_done = true;
    }
    pthread_mutex_unlock(&m->pack_lock);
    return ok;
}

/* ---- public ---- */

fc_model *fc_model_load(const char *path)
{
    fc_model *m = fc_xcalloc(1, sizeof *m);
    m->path = fc_xstrdup(path);
    pthread_mutex_init(&m->pack_lock, NULL);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        m->format = FC_FORMAT_HF;
        if (!load_hf(m)) goto fail;
    } else {
        m->format = FC_FORMAT_GGUF;
        if (!load_gguf(m)) goto fail;
    }
    if (!finish_tensors(m)) goto fail;
    return m;
fail:
    fc_model_free(m);
    return NULL;
}

void fc_model_free(fc_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->packed) munmap(m->packed, m->packed_bytes);
    pthread_mutex_destroy(&m->pack_lock);
    free(m->named);
    free(m->layers);
    fc_gguf_free(m->gguf);
    fc_safetensors_free(m->st);
    free(m->path);
    free(m);
}

const fc_model_config *fc_model_get_config(const fc_model *m) { return &m->cfg; }
enum fc_model_format fc_model_format(const fc_model *m) { return m->format; }
const char *fc_model_path(const fc_model *m) { return m->path; }
size_t fc_model_weight_bytes(const fc_model *m) { return m->weight_bytes; }
const struct fc_gguf *fc_model_gguf(const fc_model *m) { return m->gguf; }
int fc_model_weight_type(const fc_model *m) { return m->weight_type; }

bool fc_model_tensor_at(const fc_model *m, int64_t i, const char **name, const fc_tensor **t)
{
    if (i < 0 || i >= m->n_named) return false;
    *name = m->named[i].name;
    *t = m->named[i].t;
    return true;
}

/* ---- batches ---- */

fc_batch *fc_batch_new(int n_max)
{
    FC_ASSERT(n_max > 0);
    fc_batch *b = fc_xcalloc(1, sizeof *b);
    b->n_max = n_max;
    b->token = fc_xmalloc(sizeof(int32_t) * (size_t)n_max);
    b->pos = fc_xmalloc(sizeof(int32_t) * (size_t)n_max);
    b->seq = fc_xmalloc(sizeof(int32_t) * (size_t)n_max);
    b->logits = fc_xmalloc((size_t)n_max);
    return b;
}

void fc_batch_free(fc_batch *b)
{
    if (!b) return;
    free(b->token);
    free(b->pos);
    free(b->seq);
    free(b->logits);
    free(b);
}

bool fc_batch_add(fc_batch *b, int32_t token, int32_t pos, int32_t seq, bool want_logits)
{
    if (b->n_tokens >= b->n_max) return false;
    int i = b->n_tokens++;
    b->token[i] = token;
    b->pos[i] = pos;
    b->seq[i] = seq;
    b->logits[i] = want_logits ? 1 : 0;
    return true;
}
