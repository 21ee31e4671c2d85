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
 * Gemma 2 and Phi-3 (arch_table.c): Hugging Face Gemma norms store w for
 * (1 + w) and get 1 added at load (GGUF files store 1 + w, as llama.cpp's
 * converter writes them); Phi-3's fused qkv / gate_up tensors stay fused in
 * the file and the forward pass multiplies by row views of them
 * (FC_T_SPLIT). GGUF keys beyond llama.cpp's: <arch>.attention.scale
 * (gemma2 query scale), <arch>.attention.sliding_window_first_layer (qwen2).
 *
 * Mixtral (moe.h): GGUF "llama" files with llama.expert_count and the
 * stacked ffn_*_exps tensors, or MixtralForCausalLM folders, whose
 * per-expert tensors are stacked at load.
 *
 * Does not: T5, YaRN scaling, partial rotary embeddings.
 */
#include "model_impl.h"
#include "hf_config.h"
#include "moe.h"
#include "format/hub.h"

#include "tensor/ops.h"
#include "base/file.h"
#include "base/pool.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
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

/* Checks that t is present with the expected dims (ne0, ne1; ne1 = 0 for
 * 1-D; ne2 > 1 for the 3-D stacks of experts). */
static bool check_shape(const fc_model *m, const fc_tensor *t, const char *name, int64_t ne0, int64_t ne1, int64_t ne2)
{
    if (!t->data) {
        FC_LOG_ERROR("%s: missing tensor %s", m->path, name);
        return false;
    }
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != ne2 || t->ne[3] != 1) {
        if (ne2 > 1)
            FC_LOG_ERROR("%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld] (%lld experts)",
                         m->path, name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                         (long long)t->ne[3], (long long)ne0, (long long)want1, (long long)ne2, (long long)ne2);
        else
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

/* The fc_tensor a spec binds: in the model, or in layer l. */
static fc_tensor *spec_tensor(fc_model *m, const fc_tensor_spec *sp, int l)
{
    return (fc_tensor *)(l < 0 ? (char *)m + sp->offset : (char *)&m->layers[l] + sp->offset);
}

static void spec_name(char *out, size_t len, const char *fmt, int l)
{
    if (l < 0) snprintf(out, len, "%s", fmt);
    else snprintf(out, len, fmt, l);
}

/* Binds every tensor of the architecture's tables, by its GGUF name
 * (gguf != NULL) or its Hugging Face name; absent ones stay zeroed. */
static void bind_tensors(fc_model *m, const fc_gguf *g, const fc_safetensors *st)
{
    const fc_arch_info *ai = m->arch_info;
    char name[160];
    for (int l = -1; l < m->cfg.n_layer; l++) {
        for (const fc_tensor_spec *sp = l < 0 ? ai->global : ai->layer; sp->gguf; sp++) {
            fc_tensor *t = spec_tensor(m, sp, l);
            memset(t, 0, sizeof *t);
            if (sp->flags & FC_T_SPLIT) continue; /* made by finish_tensors */
            if (g) {
                spec_name(name, sizeof name, sp->gguf, l);
                const fc_gguf_tensor_info *ti = fc_gguf_find_tensor(g, name);
                if (ti) *t = ti->t;
            } else if (sp->hf) {
                spec_name(name, sizeof name, sp->hf, l);
                const fc_tensor *ft = fc_safetensors_find(st, name);
                if (ft) *t = *ft;
            }
        }
    }
}

/* Checks every tensor against the config and the tables, converts the
 * small ones to f32, names them (GGUF names, table order) and finds the
 * dominant matrix type. */
static bool finish_tensors(fc_model *m)
{
    const fc_model_config *c = &m->cfg;
    const fc_arch_info *ai = m->arch_info;
    char name[96];
    size_t type_bytes[FC_DTYPE_COUNT] = {0};
    for (int l = -1; l < c->n_layer; l++) {
        for (const fc_tensor_spec *sp = l < 0 ? ai->global : ai->layer; sp->gguf; sp++) {
            fc_tensor *t = spec_tensor(m, sp, l);
            spec_name(name, sizeof name, sp->gguf, l);
            if (sp->flags & FC_T_SPLIT) {
                /* a row view of the fused tensor, checked earlier in the table */
                const fc_tensor *of = (const fc_tensor *)(l < 0 ? (char *)m + sp->split_of
                                                                : (char *)&m->layers[l] + sp->split_of);
                const int64_t r0 = fc_arch_dim(c, sp->split_row0a) + fc_arch_dim(c, sp->split_row0b);
                const int64_t rows = fc_arch_dim(c, sp->ne1);
                *t = *of;
                t->data = (const uint8_t *)of->data + (size_t)r0 * fc_tensor_row_bytes(of);
                t->ne[1] = rows;
                t->nbytes = (size_t)rows * fc_tensor_row_bytes(of);
                t->packed = NULL;
                continue;
            }
            if ((sp->flags & FC_T_TIED) && (!t->data || m->cfg.tied_embeddings)) {
                m->cfg.tied_embeddings = true;
                *t = m->tok_embd;
            }
            bool absent_ok = (sp->flags & FC_T_OPTIONAL) || ((sp->flags & FC_T_BIAS) && !c->qkv_bias);
            if (!t->data && absent_ok) continue;
            /* messages name the tensor as the file does */
            char shown[160];
            if (m->format == FC_FORMAT_HF && sp->hf) spec_name(shown, sizeof shown, sp->hf, l);
            else snprintf(shown, sizeof shown, "%s", name);
            const int64_t ne2 = (sp->flags & FC_T_EXPERTS) ? c->n_expert : 1;
            if (!check_shape(m, t, shown, fc_arch_dim(c, sp->ne0), fc_arch_dim(c, sp->ne1), ne2)) return false;
            if ((sp->flags & FC_T_F32) && !to_f32(m, t, shown)) return false;
            if ((sp->flags & FC_T_NORM1) && m->format == FC_FORMAT_HF && t->data) {
                float *w = (float *)t->data; /* an owned f32 copy (to_f32) */
                for (int64_t i = 0; i < fc_tensor_nelem(t); i++) w[i] += 1.0f;
            }
            if ((sp->flags & FC_T_TIED) && m->cfg.tied_embeddings) continue; /* named as token_embd */
            add_named(m, name, t);
            if (l >= 0 && t->n_dims >= 2 && t->ne[1] > 1) type_bytes[t->type] += t->nbytes;
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
    m->arch_info = fc_arch_find(c->arch_name);
    if (!m->arch_info) {
        FC_LOG_ERROR("%s: unsupported architecture '%s' (supported: llama, mistral, qwen2, gemma2, phi3)", m->path, c->arch_name);
        return false;
    }
    c->arch = m->arch_info->arch;
    c->rope_neox = m->arch_info->rope_neox;
    c->qkv_bias = m->arch_info->qkv_bias;
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
    if (!fc_moe_read_gguf(m)) return false; /* Mixtral: llama.expert_count (moe.c) */
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
    /* sliding window (gemma2, phi3 in llama.cpp; written by quantize for any arch) */
    int window;
    const bool has_window = gguf_u32(m, a, "attention.sliding_window", &window, false);
    if (has_window) c->sliding_window = window;
    if (has_window && gguf_u32(m, a, "attention.sliding_window_first_layer", &window, false)) c->swa_first_layer = window;
    c->ffn_act = FC_ACT_SILU;
    if (c->arch == FC_ARCH_GEMMA2) {
        /* llama.cpp: even layers slide (4096 by default), GeGLU, sqrt(C)
         * embeddings, post-norms, soft-caps; the query scale is not in
         * llama.cpp's files: 1/sqrt(HS), but 1/sqrt(C/NH) for the 46-layer
         * 27B, as llama.cpp does; "gemma2.attention.scale" (quantize writes
         * it) overrides */
        if (!has_window) c->sliding_window = 4096;
        c->swa_even = true;
        c->ffn_act = FC_ACT_GELU_TANH;
        c->embd_scale = true;
        c->post_norms = true;
        if (!gguf_f32(m, a, "attn_logit_softcapping", &c->attn_softcap)) c->attn_softcap = 50.0f;
        if (!gguf_f32(m, a, "final_logit_softcapping", &c->final_softcap)) c->final_softcap = 30.0f;
        if (!gguf_f32(m, a, "attention.scale", &c->attn_scale))
            c->attn_scale = 1.0f / sqrtf((float)(c->n_layer == 46 ? c->n_embd / c->n_head : c->head_dim));
        if (!(c->attn_softcap >= 0 && c->final_softcap >= 0 && c->attn_scale > 0 && isfinite(c->attn_scale) &&
              isfinite(c->attn_softcap) && isfinite(c->final_softcap))) {
            FC_LOG_ERROR("%s: bad gemma2 soft-cap or attention scale metadata", m->path);
            return false;
        }
    }
    if (c->arch == FC_ARCH_PHI3) {
        if (!gguf_u32(m, a, "rope.scaling.original_context_length", &c->rope_orig_ctx, false))
            c->rope_orig_ctx = c->n_ctx_train;
        if (c->rope_orig_ctx <= 0) c->rope_orig_ctx = c->n_ctx_train;
        if (!gguf_f32(m, a, "rope.scaling.attn_factor", &c->rope_attn_factor)) c->rope_attn_factor = 0; /* below */
        if (!(c->rope_attn_factor >= 0 && c->rope_attn_factor < 1e3f)) {
            FC_LOG_ERROR("%s: bad phi3 rope.scaling.attn_factor", m->path);
            return false;
        }
    }
    c->bos_id = c->eos_id = -1;
    uint32_t id;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id)) c->bos_id = (int)id;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id)) c->eos_id = (int)id;

    m->layers = fc_xcalloc((size_t)c->n_layer, sizeof(fc_layer));
    bind_tensors(m, g, NULL);
    if (c->n_expert > 0 && !fc_moe_stack_gguf(m)) return false; /* older per-expert Mixtral files (moe.c) */
    if (!m->tok_embd.data) {
        FC_LOG_ERROR("%s: missing tensor token_embd.weight", m->path);
        return false;
    }
    c->n_vocab = (int)m->tok_embd.ne[1];
    if (c->arch == FC_ARCH_PHI3 && (m->rope_long.data || m->rope_short.data)) {
        /* LongRoPE factors as tensors (checked in finish_tensors) */
        if (!m->rope_long.data || !m->rope_short.data || c->head_dim / 2 > FC_ROPE_EXT_MAX) {
            FC_LOG_ERROR("%s: LongRoPE needs both rope_factors_long and rope_factors_short, head_dim <= %d",
                         m->path, 2 * FC_ROPE_EXT_MAX);
            return false;
        }
        c->rope_scaling = FC_ROPE_SCALING_LONGROPE;
        c->rope_factor = (float)c->n_ctx_train / (float)c->rope_orig_ctx; /* shown by inspect; unused */
        if (c->rope_attn_factor == 0) /* no key: transformers' default from the two lengths */
            c->rope_attn_factor = c->rope_factor <= 1.0f || c->rope_orig_ctx <= 1 ? 1.0f
                : (float)sqrt(1.0 + log((double)c->rope_factor) / log((double)c->rope_orig_ctx));
    }
    /* a bias in any layer: this model has them (all layers are then checked for them) */
    for (int l = 0; l < c->n_layer; l++)
        for (const fc_tensor_spec *sp = m->arch_info->layer; sp->gguf; sp++)
            if ((sp->flags & FC_T_BIAS) && spec_tensor(m, sp, l)->data) c->qkv_bias = true;
    return true;
}

/* ---- Hugging Face folder ---- */

static bool load_hf(fc_model *m)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", m->path);
    size_t len;
    char *json = fc_file_read(p, &len, 64u << 20); /* a config.json is never this large */
    if (!json) {
        char why[512];
        snprintf(why, sizeof why, "%s", fc_last_error());
        FC_LOG_ERROR("%s: no readable config.json in this folder (%s)", m->path, why);
        return false;
    }
    enum fc_status st = fc_hf_config_parse(json, len, p, &m->cfg);
    free(json);
    if (st != FC_OK) return false;
    m->st = fc_safetensors_open(m->path);
    if (!m->st) return false;
    m->arch_info = m->cfg.n_expert > 0 ? fc_arch_moe() : fc_arch_of(m->cfg.arch);
    FC_ASSERT(m->arch_info);
    m->layers = fc_xcalloc((size_t)m->cfg.n_layer, sizeof(fc_layer));
    bind_tensors(m, NULL, m->st);
    if (m->cfg.n_expert > 0 && !fc_moe_stack_hf(m)) return false; /* per-expert tensors -> stacks (moe.c) */
    return true;
}

/* ---- packed weights ---- */

/* The matrices the forward pass multiplies by, which packing may cover:
 * every layer's, then the model's (the output). out NULL: only counts. */
static int matrices(fc_model *m, fc_tensor **out)
{
    int n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (const fc_tensor_spec *sp = m->arch_info->layer; sp->gguf; sp++)
            if (sp->flags & FC_T_MATRIX) {
                if (out) out[n] = spec_tensor(m, sp, l);
                n++;
            }
    for (const fc_tensor_spec *sp = m->arch_info->global; sp->gguf; sp++)
        if (sp->flags & FC_T_MATRIX) {
            if (out) out[n] = spec_tensor(m, sp, -1);
            n++;
        }
    return n;
}

/* Rows of a matrix, or of a 3-D stack of them (Mixtral's experts). */
static int64_t n_rows(const fc_tensor *t) { return fc_tensor_nelem(t) / t->ne[0]; }

/* A stack of experts packs as one matrix of all their rows: with ne1 a
 * multiple of 8, each expert's rows are whole 8-row groups of it. */
static bool packable(const fc_tensor *t)
{
    return t->data && !t->packed && (t->n_dims == 2 || (t->n_dims == 3 && t->ne[3] == 1)) &&
           fc_pack_type(t->type) >= 0 && t->ne[1] % 8 == 0 && t->ne[0] % FC_QK == 0;
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
    bool keep_source;   /* sources in memory we own (--load-8bit): not dropped */
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
        const int64_t r0 = (c - j->first_chunk[i]) * rows, r1 = FC_MIN(r0 + rows, n_rows(t));
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r0 * rs;
        const bool ok = fc_pack_rows(t->type, src, rs, r1 - r0, t->ne[0], j->dst[i] + (size_t)r0 * rs);
        FC_ASSERT(ok);
        /* drop the copied pages of the file mapping from this process */
        const uintptr_t pg = (uintptr_t)j->page;
        const uintptr_t p0 = ((uintptr_t)src + pg - 1) & ~(pg - 1);
        const uintptr_t p1 = ((uintptr_t)src + (size_t)(r1 - r0) * rs) & ~(pg - 1);
        if (p1 > p0 && !j->keep_source) madvise((void *)p0, p1 - p0, MADV_DONTNEED);
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
    fc_tensor **all = fc_xmalloc(sizeof *all * (size_t)matrices(m, NULL));
    const int n_all = matrices(m, all);
    pack_job j = {.mats = all, .page = sysconf(_SC_PAGESIZE), .keep_source = m->n_q8_at_load > 0};
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
        j.first_chunk[i + 1] = j.first_chunk[i] + (long)((n_rows(t) + rows - 1) / rows);
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

/* ---- --load-8bit ---- */

/* Drops the file pages under a tensor view from this process (read back
 * from the file if touched again). Only for views into the model file's
 * mapping: safetensors says which are; GGUF tensors always are. */
static void release_source(fc_model *m, const fc_tensor *t)
{
    if (m->st) {
        fc_safetensors_release(m->st, t);
    } else if (m->gguf) {
        const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE), p = (uintptr_t)t->data;
        const uintptr_t p0 = (p + pg - 1) & ~(pg - 1), p1 = (p + t->nbytes) & ~(pg - 1);
        if (p1 > p0) madvise((void *)p0, p1 - p0, MADV_DONTNEED);
    }
}

/* Quantizes one matrix to q8_0 into memory owned by m: the plain layout, or
 * (pack) the row-interleaved one, 8 rows at a time through a small buffer. */
static bool quantize_q8(fc_model *m, fc_tensor *t, bool pack)
{
    const int64_t K = t->ne[0], R = fc_tensor_nelem(t) / K;
    const size_t in_row = fc_dtype_row_size(t->type, K), rs = fc_dtype_row_size(FC_DTYPE_Q8_0, K);
    const size_t nbytes = rs * (size_t)R;
    void *dst = NULL;
    if (posix_memalign(&dst, 64, FC_MAX(nbytes, (size_t)64)) != 0) {
        FC_LOG_ERROR("%s: --load-8bit: cannot allocate %zu bytes", m->path, nbytes);
        return false;
    }
    m->owned = fc_xrealloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    m->owned[m->n_owned++] = dst;
    float *row = fc_xmalloc(sizeof(float) * (size_t)K);
    uint8_t *group = pack ? fc_xmalloc(rs * 8) : NULL;
    for (int64_t r0 = 0; r0 < R; r0 += 8) {
        const int64_t n = FC_MIN((int64_t)8, R - r0);
        uint8_t *out = pack ? group : (uint8_t *)dst + (size_t)r0 * rs;
        for (int64_t r = 0; r < n; r++) {
            bool ok = fc_dequantize_row_ref(t->type, (const uint8_t *)t->data + (size_t)(r0 + r) * in_row, row, K) &&
                      fc_quantize_row_ref(FC_DTYPE_Q8_0, row, out + (size_t)r * rs, K);
            FC_ASSERT(ok);
        }
        if (pack) {
            bool ok = fc_pack_rows(FC_DTYPE_Q8_0, group, rs, 8, K, (uint8_t *)dst + (size_t)r0 * rs);
            FC_ASSERT(ok);
        }
    }
    free(row);
    free(group);
    release_source(m, t);
    t->type = FC_DTYPE_Q8_0;
    t->data = dst;
    t->nbytes = nbytes;
    if (pack) {
        t->packed = dst;
        t->packed_type = fc_pack_type(FC_DTYPE_Q8_0);
        m->packed_only = true;
    }
    return true;
}

/* --load-8bit: every f32/f16/bf16 matrix to q8_0 (fc_model_load_params). */
static bool load_8bit(fc_model *m, bool plain)
{
    const char *off = getenv("FASTCHAT_NO_REPACK");
    const bool may_pack = !plain && !(off && *off && strcmp(off, "0") != 0);
    const void *embd_src = m->tok_embd.data; /* a tied output is this same table */
    size_t type_bytes[FC_DTYPE_COUNT] = {0};
    for (int l = -1; l < m->cfg.n_layer; l++) {
        for (const fc_tensor_spec *sp = l < 0 ? m->arch_info->global : m->arch_info->layer; sp->gguf; sp++) {
            fc_tensor *t = spec_tensor(m, sp, l);
            if (!t->data || t->n_dims < 2 || t->ne[1] <= 1 || t->ne[0] % FC_QK != 0) continue;
            if (t != &m->tok_embd && t->data == embd_src && embd_src) {
                if (m->tok_embd.data == embd_src) continue; /* the table was kept: so is its tied output */
                /* tied: the output shares the converted table; packing it
                 * packs the shared copy, which the fast mode's embedding
                 * lookup then reads from the packed layout */
                *t = m->tok_embd;
                if (may_pack && (sp->flags & FC_T_MATRIX) && t->ne[1] % 8 == 0 && !t->packed) {
                    const int64_t K = t->ne[0], R = t->ne[1];
                    const size_t rs = fc_tensor_row_bytes(t);
                    uint8_t *group = fc_xmalloc(rs * 8);
                    for (int64_t r0 = 0; r0 < R; r0 += 8) {
                        uint8_t *g = (uint8_t *)t->data + (size_t)r0 * rs;
                        memcpy(group, g, rs * 8);
                        bool ok = fc_pack_rows(FC_DTYPE_Q8_0, group, rs, 8, K, g);
                        FC_ASSERT(ok);
                    }
                    free(group);
                    t->packed = t->data;
                    t->packed_type = fc_pack_type(FC_DTYPE_Q8_0);
                    m->tok_embd = *t;
                    m->packed_only = true;
                }
                continue;
            }
            if (t->type != FC_DTYPE_F32 && t->type != FC_DTYPE_F16 && t->type != FC_DTYPE_BF16) continue;
            const bool pack = may_pack && (sp->flags & FC_T_MATRIX) && t->n_dims == 2 && t->ne[1] % 8 == 0;
            if (!quantize_q8(m, t, pack)) return false;
            m->n_q8_at_load++;
        }
    }
    /* the named list points at these structs; sizes and the dominant type change */
    m->weight_bytes = 0;
    for (int i = 0; i < m->n_named; i++) m->weight_bytes += m->named[i].t->nbytes;
    for (int l = 0; l < m->cfg.n_layer; l++)
        for (const fc_tensor_spec *sp = m->arch_info->layer; sp->gguf; sp++) {
            const fc_tensor *t = spec_tensor(m, sp, l);
            if (t->data && t->n_dims >= 2 && t->ne[1] > 1) type_bytes[t->type] += t->nbytes;
        }
    int best = FC_DTYPE_F32;
    for (int t = 0; t < FC_DTYPE_COUNT; t++)
        if (type_bytes[t] > type_bytes[best]) best = t;
    m->weight_type = best;
    return true;
}

/* ---- public ---- */

fc_model *fc_model_load(const char *spec) { return fc_model_load_ex(spec, NULL); }

int fc_model_n_quantized_at_load(const fc_model *m) { return m->n_q8_at_load; }

fc_model *fc_model_load_ex(const char *spec, const fc_model_load_params *p)
{
    char *path = NULL; /* a Hub repo id becomes its folder in the cache (hub.h) */
    if (fc_hub_resolve(spec, NULL, &path) != FC_OK) return NULL;
    {   /* a PEFT LoRA adapter folder: its base with the adapter (lora.c) */
        char ac[4096];
        snprintf(ac, sizeof ac, "%s/adapter_config.json", path);
        if (access(ac, R_OK) == 0) {
            fc_model *a = fc_lora_model_load(path, p);
            free(path);
            return a;
        }
    }
    fc_model *m = fc_xcalloc(1, sizeof *m);
    m->path = path;
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
    if (m->cfg.rope_scaling == FC_ROPE_SCALING_LONGROPE && m->rope_long.data) {
        const int half = m->cfg.head_dim / 2;
        for (int i = 0; i < half; i++) {
            m->cfg.rope_ext[0][i] = ((const float *)m->rope_short.data)[i];
            m->cfg.rope_ext[1][i] = ((const float *)m->rope_long.data)[i];
            if (!(m->cfg.rope_ext[0][i] > 0 && m->cfg.rope_ext[1][i] > 0)) {
                FC_LOG_ERROR("%s: LongRoPE factors must be positive", path);
                goto fail;
            }
        }
    }
    if (p && p->load_8bit && !load_8bit(m, p->plain_layout)) goto fail;
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
    if (m->lora_base) { /* an adapter model: the rest is the base's (lora.c) */
        pthread_mutex_destroy(&m->pack_lock);
        free(m->named);
        free(m->layers);
        free(m->path);
        fc_lora_base_release(m->lora_base);
        free(m);
        return;
    }
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
enum fc_dtype fc_model_weight_type(const fc_model *m) { return m->weight_type; }

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
