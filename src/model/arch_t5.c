/*
 * arch_t5.c: T5 encoder-decoder models (t5.h): loading a Hugging Face T5
 * folder or a GGUF file through one tensor table, and the reference forward pass (encoder,
 * decoder steps whose self- and cross-attention keys and values live in the
 * pages of a paged fc_kv_cache, batched over many decoders). Mirrors transformers' modeling_t5.py (T5ForConditionalGeneration
 * as transformers 4 runs it):
 *
 *   - T5LayerNorm: y = w * x / sqrt(mean(x^2) + eps), no mean, no bias;
 *   - attention without the 1/sqrt(HS) scale; a learned bias per head and
 *     relative-position bucket, held by the first layer of each stack and
 *     shared by its other layers (bidirectional buckets in the encoder,
 *     causal ones in the decoder); none in the cross-attention;
 *   - feed-forward wo(act(wi x)) (v1.0, ReLU) or wo(act(wi_0 x) * wi_1 x)
 *     (v1.1 / Flan-T5, gelu_new);
 *   - the head: lm_head.weight when present, else the shared embedding; the
 *     decoder output is scaled by C**-0.5 first when tie_word_embeddings
 *     (T5 v1.0) -- the rule transformers 4 applies (transformers 5 keeps
 *     it as scale_decoder_outputs, which we read too).
 *
 * Kept out of the llama forward (arch_llama.c) and of fc_model: the encoder
 * and decoder stacks have their own layer layout here. GGUF files with
 * llama.cpp's t5 tensor names and keys load too (any supported matrix type,
 * multiplied exactly, or fast with rounded activations: fc_t5_run).
 * Matrix products are split by rows over an fc_pool the caller passes.
 *
 * Does not: packed weights, f16 pages, the T5 tokenizer.
 */
#include "t5.h"
#include "format/gguf.h"
#include "safetensors.h"
#include "kv_cache_impl.h"

#include "base/file.h"
#include "base/pool.h"
#include "base/json.h"
#include "tensor/ops.h"
#include "tensor/tensor.h"
#include "tensor/vexp.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the model ---- */

typedef struct t5_layer {
    fc_tensor attn_norm;          /* (C) */
    fc_tensor wq, wk, wv;         /* (NH*HS, C) */
    fc_tensor wo;                 /* (C, NH*HS) */
    fc_tensor rel_bias;           /* (buckets, NH) f32: first layer of each stack only */
    fc_tensor cross_norm;         /* (C) decoder */
    fc_tensor cq, ck, cv;         /* (NH*HS, C) decoder cross-attention */
    fc_tensor co;                 /* (C, NH*HS) */
    fc_tensor ffn_norm;           /* (C) */
    fc_tensor wi, wi_0, wi_1;     /* (FF, C): wi ungated, wi_0 / wi_1 gated */
    fc_tensor wff_o;              /* (C, FF) */
} t5_layer;

struct fc_t5 {
    char *path;
    fc_t5_config cfg;
    fc_safetensors *st;           /* a Hugging Face folder, or... */
    fc_gguf *gguf;                /* ...a GGUF file (llama.cpp's t5 names) */
    fc_tensor shared;             /* (V, C) token embeddings of both stacks */
    fc_tensor enc_norm, dec_norm; /* (C) final norms */
    fc_tensor lm_head;            /* (V, C); the shared table when absent */
    t5_layer *enc, *dec;          /* (n_enc_layer), (n_dec_layer) */
    void **owned;                 /* f32 copies of the small tensors */
    int n_owned;
};

/* ---- the tensor table ---- */

enum t5_dim { D_1 = 0, D_C, D_Q, D_FF, D_V, D_NH, D_NB };

enum t5_spec_flags {
    S_ENC = 1, S_DEC = 2,  /* the stack(s) a layer tensor is in */
    S_FIRST = 4,           /* layer 0 only */
    S_F32 = 8,             /* small: copied out as f32 */
    S_GATED = 16,          /* gated feed-forward only */
    S_PLAIN = 32,          /* ungated feed-forward only */
    S_OPTIONAL = 64,       /* may be absent */
};

typedef struct t5_spec {
    const char *gguf;      /* llama.cpp's name: "%s" the stack (enc/dec), "%d" the layer */
    const char *hf;        /* "%s" the stack (encoder/decoder), "%d" the layer; or a global name */
    size_t offset;         /* in t5_layer (layer rows) or struct fc_t5 (global rows) */
    enum t5_dim ne0, ne1;  /* ne0 = row length */
    unsigned flags;
} t5_spec;

#define L(f) offsetof(t5_layer, f)
#define M(f) offsetof(struct fc_t5, f)
static const t5_spec t5_global[] = {
    {"token_embd.weight", "shared.weight", M(shared), D_C, D_V, 0},
    {"enc.output_norm.weight", "encoder.final_layer_norm.weight", M(enc_norm), D_C, D_1, S_F32},
    {"dec.output_norm.weight", "decoder.final_layer_norm.weight", M(dec_norm), D_C, D_1, S_F32},
    {"output.weight", "lm_head.weight", M(lm_head), D_C, D_V, S_OPTIONAL},
    {0},
};

/* T5Block: layer.0 self-attention, (decoder) layer.1 cross-attention, then
 * the feed-forward: layer.1 in the encoder, layer.2 in the decoder. */
static const t5_spec t5_layers[] = {
    {"%s.blk.%d.attn_norm.weight", "%s.block.%d.layer.0.layer_norm.weight", L(attn_norm), D_C, D_1, S_ENC | S_DEC | S_F32},
    {"%s.blk.%d.attn_q.weight", "%s.block.%d.layer.0.SelfAttention.q.weight", L(wq), D_C, D_Q, S_ENC | S_DEC},
    {"%s.blk.%d.attn_k.weight", "%s.block.%d.layer.0.SelfAttention.k.weight", L(wk), D_C, D_Q, S_ENC | S_DEC},
    {"%s.blk.%d.attn_v.weight", "%s.block.%d.layer.0.SelfAttention.v.weight", L(wv), D_C, D_Q, S_ENC | S_DEC},
    {"%s.blk.%d.attn_o.weight", "%s.block.%d.layer.0.SelfAttention.o.weight", L(wo), D_Q, D_C, S_ENC | S_DEC},
    {"%s.blk.%d.attn_rel_b.weight", "%s.block.%d.layer.0.SelfAttention.relative_attention_bias.weight", L(rel_bias), D_NH, D_NB,
     S_ENC | S_DEC | S_FIRST | S_F32},
    {"dec.blk.%d.cross_attn_norm.weight", "decoder.block.%d.layer.1.layer_norm.weight", L(cross_norm), D_C, D_1, S_DEC | S_F32},
    {"dec.blk.%d.cross_attn_q.weight", "decoder.block.%d.layer.1.EncDecAttention.q.weight", L(cq), D_C, D_Q, S_DEC},
    {"dec.blk.%d.cross_attn_k.weight", "decoder.block.%d.layer.1.EncDecAttention.k.weight", L(ck), D_C, D_Q, S_DEC},
    {"dec.blk.%d.cross_attn_v.weight", "decoder.block.%d.layer.1.EncDecAttention.v.weight", L(cv), D_C, D_Q, S_DEC},
    {"dec.blk.%d.cross_attn_o.weight", "decoder.block.%d.layer.1.EncDecAttention.o.weight", L(co), D_Q, D_C, S_DEC},
    {"enc.blk.%d.ffn_norm.weight", "encoder.block.%d.layer.1.layer_norm.weight", L(ffn_norm), D_C, D_1, S_ENC | S_F32},
    {"enc.blk.%d.ffn_up.weight", "encoder.block.%d.layer.1.DenseReluDense.wi.weight", L(wi), D_C, D_FF, S_ENC | S_PLAIN},
    {"enc.blk.%d.ffn_gate.weight", "encoder.block.%d.layer.1.DenseReluDense.wi_0.weight", L(wi_0), D_C, D_FF, S_ENC | S_GATED},
    {"enc.blk.%d.ffn_up.weight", "encoder.block.%d.layer.1.DenseReluDense.wi_1.weight", L(wi_1), D_C, D_FF, S_ENC | S_GATED},
    {"enc.blk.%d.ffn_down.weight", "encoder.block.%d.layer.1.DenseReluDense.wo.weight", L(wff_o), D_FF, D_C, S_ENC},
    {"dec.blk.%d.ffn_norm.weight", "decoder.block.%d.layer.2.layer_norm.weight", L(ffn_norm), D_C, D_1, S_DEC | S_F32},
    {"dec.blk.%d.ffn_up.weight", "decoder.block.%d.layer.2.DenseReluDense.wi.weight", L(wi), D_C, D_FF, S_DEC | S_PLAIN},
    {"dec.blk.%d.ffn_gate.weight", "decoder.block.%d.layer.2.DenseReluDense.wi_0.weight", L(wi_0), D_C, D_FF, S_DEC | S_GATED},
    {"dec.blk.%d.ffn_up.weight", "decoder.block.%d.layer.2.DenseReluDense.wi_1.weight", L(wi_1), D_C, D_FF, S_DEC | S_GATED},
    {"dec.blk.%d.ffn_down.weight", "decoder.block.%d.layer.2.DenseReluDense.wo.weight", L(wff_o), D_FF, D_C, S_DEC},
    {0},
};
#undef L
#undef M

static int64_t dim(const fc_t5_config *c, enum t5_dim d)
{
    switch (d) {
    case D_1: return 1;
    case D_C: return c->n_embd;
    case D_Q: return (int64_t)c->n_head * c->head_dim;
    case D_FF: return c->n_ff;
    case D_V: return c->n_vocab;
    case D_NH: return c->n_head;
    case D_NB: return c->n_buckets;
    }
    return 0;
}

/* ---- config.json ---- */

static bool get_int(const cJSON *j, const char *key, int *out, int def, bool required, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) {
            FC_LOG_ERROR("%s: config.json: missing field '%s'", path, key);
            return false;
        }
        *out = def;
        return true;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -1 && v->valuedouble <= (1 << 24))) {
        FC_LOG_ERROR("%s: config.json: field '%s' is not an integer in [-1, 16777216]", path, key);
        return false;
    }
    *out = (int)fc_json_long(v->valuedouble);
    return true;
}

/* The activation named s (transformers' ACT2FN names T5 uses). */
static bool parse_act(const char *s, enum fc_t5_act *a)
{
    if (!strcmp(s, "relu")) *a = FC_T5_RELU;
    else if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh")) *a = FC_T5_GELU_NEW;
    else if (!strcmp(s, "gelu")) *a = FC_T5_GELU;
    else if (!strcmp(s, "silu") || !strcmp(s, "swish")) *a = FC_T5_SILU;
    else return false;
    return true;
}

static bool is_t5_config(const cJSON *j)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    if (cJSON_IsString(mt)) return !strcmp(mt->valuestring, "t5");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const cJSON *a0 = cJSON_IsArray(ar) ? cJSON_GetArrayItem(ar, 0) : NULL;
    return cJSON_IsString(a0) && !strcmp(a0->valuestring, "T5ForConditionalGeneration");
}

static cJSON *read_config(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", dir);
    size_t len;
    char *json = fc_file_read(p, &len, 16u << 20);
    if (!json) return NULL;
    cJSON *j = cJSON_ParseWithLength(json, len);
    free(json);
    return j;
}

/* A GGUF file whose first metadata key is general.architecture = "t5" (as
 * llama.cpp's writers put it), read from the header without the parser, so
 * that a broken file of another family gets only its own loader's error. */
static bool gguf_is_t5(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    /* magic, version u32, n_tensors u64, n_kv u64, key (u64 length, bytes),
     * value type u32 (8: string), value (u64 length, bytes) */
    uint8_t h[4 + 4 + 8 + 8 + 8 + 20 + 4 + 8 + 2];
    const bool got = fread(h, 1, sizeof h, f) == sizeof h;
    fclose(f);
    static const uint8_t key[8] = {20, 0, 0, 0, 0, 0, 0, 0}, str[4] = {8, 0, 0, 0}, len2[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    return got && !memcmp(h, "GGUF", 4) && !memcmp(h + 24, key, 8) && !memcmp(h + 32, "general.architecture", 20) &&
           !memcmp(h + 52, str, 4) && !memcmp(h + 56, len2, 8) && !memcmp(h + 64, "t5", 2);
}

bool fc_t5_is_t5(const char *path)
{
    struct stat sb;
    if (!path || stat(path, &sb) != 0) return false;
    if (S_ISREG(sb.st_mode)) return gguf_is_t5(path);
    if (!S_ISDIR(sb.st_mode)) return false;
    cJSON *j = read_config(path);
    bool yes = j && is_t5_config(j);
    cJSON_Delete(j);
    return yes;
}

static bool parse_config(const char *path, const cJSON *j, fc_t5_config *c)
{
    memset(c, 0, sizeof *c);
    if (!is_t5_config(j)) {
        FC_LOG_ERROR("%s: config.json: not a T5 model (model_type \"t5\")", path);
        return false;
    }
    float eps = 1e-6f;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_epsilon");
    if (cJSON_IsNumber(e)) eps = (float)e->valuedouble;
    if (!(eps > 0 && eps < 1)) {
        FC_LOG_ERROR("%s: config.json: bad layer_norm_epsilon", path);
        return false;
    }
    c->eps = eps;
    if (!get_int(j, "vocab_size", &c->n_vocab, 32128, false, path) ||
        !get_int(j, "d_model", &c->n_embd, 512, false, path) ||
        !get_int(j, "d_kv", &c->head_dim, 64, false, path) ||
        !get_int(j, "num_heads", &c->n_head, 8, false, path) ||
        !get_int(j, "d_ff", &c->n_ff, 2048, false, path) ||
        !get_int(j, "num_layers", &c->n_enc_layer, 6, false, path) ||
        !get_int(j, "num_decoder_layers", &c->n_dec_layer, c->n_enc_layer, false, path) ||
        !get_int(j, "relative_attention_num_buckets", &c->n_buckets, 32, false, path) ||
        !get_int(j, "relative_attention_max_distance", &c->max_distance, 128, false, path) ||
        !get_int(j, "pad_token_id", &c->pad_id, 0, false, path) ||
        !get_int(j, "eos_token_id", &c->eos_id, 1, false, path) ||
        !get_int(j, "decoder_start_token_id", &c->decoder_start_id, c->pad_id, false, path))
        return false;
    if (c->n_vocab <= 0 || c->n_embd <= 0 || c->head_dim <= 0 || c->n_head <= 0 || c->n_ff <= 0 ||
        c->n_enc_layer <= 0 || c->n_dec_layer <= 0 || c->n_enc_layer > 1024 || c->n_dec_layer > 1024 || c->n_buckets < 2 || c->max_distance < c->n_buckets / 2 ||
        (int64_t)c->n_head * c->head_dim > (1 << 16) || c->decoder_start_id < 0 ||
        c->decoder_start_id >= c->n_vocab) {
        FC_LOG_ERROR("%s: config.json: inconsistent T5 sizes (d_model %d, d_kv %d, heads %d, d_ff %d, layers %d/%d, "
                     "buckets %d, max_distance %d, decoder start %d)", path, c->n_embd, c->head_dim, c->n_head,
                     c->n_ff, c->n_enc_layer, c->n_dec_layer, c->n_buckets, c->max_distance, c->decoder_start_id);
        return false;
    }
    /* feed_forward_proj "relu" | "gated-gelu" | "gated-<act>" | "<act>";
     * "gated-gelu" means gelu_new (T5Config's backward compatibility) */
    const cJSON *ff = cJSON_GetObjectItemCaseSensitive(j, "feed_forward_proj");
    const char *ffs = cJSON_IsString(ff) ? ff->valuestring : "relu";
    const char *act = ffs;
    if (!strncmp(ffs, "gated-", 6)) {
        c->gated = true;
        act = ffs + 6;
    }
    if (strchr(act, '-') || !parse_act(act, &c->act)) {
        FC_LOG_ERROR("%s: config.json: unsupported feed_forward_proj '%s' (relu, gated-gelu, gated-silu, ...)",
                     path, ffs);
        return false;
    }
    if (!strcmp(ffs, "gated-gelu")) c->act = FC_T5_GELU_NEW;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(j, "tie_word_embeddings");
    c->scale_output = !cJSON_IsFalse(tie);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "scale_decoder_outputs");
    if (cJSON_IsBool(sc)) c->scale_output = cJSON_IsTrue(sc);
    return true;
}

/* ---- loading ---- */

static bool to_f32(fc_t5 *m, fc_tensor *t, const char *name)
{
    if (t->type != FC_DTYPE_F32 && t->type != FC_DTYPE_F16 && t->type != FC_DTYPE_BF16) {
        FC_LOG_ERROR("%s: tensor %s has type %s; expected f32/f16/bf16", m->path, name, fc_dtype_name(t->type));
        return false;
    }
    const int64_t n = fc_tensor_nelem(t);
    float *f = fc_xmalloc(sizeof(float) * (size_t)n);
    m->owned = fc_xrealloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    m->owned[m->n_owned++] = f;
    fc_dequantize_row_ref(t->type, t->data, f, n);
    t->type = FC_DTYPE_F32;
    t->data = f;
    t->nbytes = sizeof(float) * (size_t)n;
    return true;
}

/* Binds the tensor named name to *t and checks it against the table row. */
static bool bind(fc_t5 *m, const t5_spec *sp, const char *name, fc_tensor *t)
{
    memset(t, 0, sizeof *t);
    const fc_tensor *ft = NULL;
    if (m->gguf) {
        const fc_gguf_tensor_info *ti = fc_gguf_find_tensor(m->gguf, name);
        ft = ti ? &ti->t : NULL;
    } else {
        ft = fc_safetensors_find(m->st, name);
    }
    if (!ft) {
        if (sp->flags & S_OPTIONAL) return true;
        FC_LOG_ERROR("%s: missing tensor %s", m->path, name);
        return false;
    }
    const int64_t ne0 = dim(&m->cfg, sp->ne0), ne1 = dim(&m->cfg, sp->ne1);
    if (ft->ne[0] != ne0 || ft->ne[1] != ne1 || ft->ne[2] != 1 || ft->ne[3] != 1) {
        FC_LOG_ERROR("%s: tensor %s has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", m->path, name,
                     (long long)ft->ne[0], (long long)ft->ne[1], (long long)ft->ne[2], (long long)ft->ne[3],
                     (long long)ne0, (long long)ne1);
        return false;
    }
    const bool plain = ft->type == FC_DTYPE_F32 || ft->type == FC_DTYPE_F16 || ft->type == FC_DTYPE_BF16;
    if (!(plain || (m->gguf && !(sp->flags & S_F32) && fc_dtype_supported(ft->type)))) {
        FC_LOG_ERROR("%s: tensor %s has unsupported type %d (%s)", m->path, name, ft->type,
                     m->gguf ? "norms and position biases must be f32/f16/bf16" : "T5 weights must be f32, f16 or bf16");
        return false;
    }
    *t = *ft;
    return !(sp->flags & S_F32) || to_f32(m, t, name);
}

static bool bind_stack(fc_t5 *m, bool dec)
{
    const fc_t5_config *c = &m->cfg;
    const int n = dec ? c->n_dec_layer : c->n_enc_layer;
    t5_layer *layers = dec ? m->dec : m->enc;
    char name[256];
    for (int l = 0; l < n; l++)
        for (const t5_spec *sp = t5_layers; sp->hf; sp++) {
            if (!(sp->flags & (dec ? S_DEC : S_ENC))) continue;
            if ((sp->flags & S_FIRST) && l > 0) continue;
            if ((sp->flags & S_GATED) && !c->gated) continue;
            if ((sp->flags & S_PLAIN) && c->gated) continue;
            const char *fmt = m->gguf ? sp->gguf : sp->hf;
            if (strstr(fmt, "%s")) snprintf(name, sizeof name, fmt, m->gguf ? (dec ? "dec" : "enc") : (dec ? "decoder" : "encoder"), l);
            else snprintf(name, sizeof name, fmt, l);
            if (!bind(m, sp, name, (fc_tensor *)((char *)&layers[l] + sp->offset))) return false;
        }
    return true;
}

/* ---- GGUF (llama.cpp's "t5" keys) ---- */

static bool gguf_int(const fc_t5 *m, const char *suffix, int *out, int def, bool required)
{
    char key[128];
    snprintf(key, sizeof key, "t5.%s", suffix);
    uint32_t v;
    if (!fc_gguf_get_u32(m->gguf, key, &v)) {
        if (required) {
            FC_LOG_ERROR("%s: missing or malformed metadata key %s", m->path, key);
            return false;
        }
        *out = def;
        return true;
    }
    if (v > (1u << 24)) {
        FC_LOG_ERROR("%s: metadata %s = %u out of range", m->path, key, v);
        return false;
    }
    *out = (int)v;
    return true;
}

/* The config of a GGUF T5: llama.cpp's keys (t5.embedding_length, ...,
 * t5.attention.relative_buckets_count, t5.decoder_start_token_id,
 * t5.decoder_block_count) plus t5.attention.relative_max_distance, ours
 * (llama.cpp fixes it at 128, the default here too). The activation and the
 * output scaling follow from the tensors (fc_t5_load). */
static bool gguf_config(fc_t5 *m)
{
    fc_t5_config *c = &m->cfg;
    memset(c, 0, sizeof *c);
    fc_gguf_str s;
    if (!fc_gguf_get_str(m->gguf, "general.architecture", &s) || s.len != 2 || memcmp(s.ptr, "t5", 2)) {
        FC_LOG_ERROR("%s: not a T5 GGUF (general.architecture \"t5\")", m->path);
        return false;
    }
    const fc_gguf_tensor_info *emb = fc_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!emb || emb->t.ne[1] <= 0 || emb->t.ne[1] > (1 << 24)) {
        FC_LOG_ERROR("%s: missing tensor token_embd.weight", m->path);
        return false;
    }
    c->n_vocab = (int)emb->t.ne[1];
    uint32_t id;
    c->eos_id = fc_gguf_get_u32(m->gguf, "tokenizer.ggml.eos_token_id", &id) && id < (1u << 24) ? (int)id : 1;
    c->pad_id = fc_gguf_get_u32(m->gguf, "tokenizer.ggml.padding_token_id", &id) && id < (1u << 24) ? (int)id : 0;
    if (!gguf_int(m, "embedding_length", &c->n_embd, 0, true) ||
        !gguf_int(m, "feed_forward_length", &c->n_ff, 0, true) ||
        !gguf_int(m, "block_count", &c->n_enc_layer, 0, true) ||
        !gguf_int(m, "attention.head_count", &c->n_head, 0, true) ||
        !gguf_int(m, "decoder_block_count", &c->n_dec_layer, c->n_enc_layer, false) ||
        !gguf_int(m, "attention.key_length", &c->head_dim, c->n_head > 0 ? c->n_embd / c->n_head : 0, false) ||
        !gguf_int(m, "attention.relative_buckets_count", &c->n_buckets, 32, false) ||
        !gguf_int(m, "attention.relative_max_distance", &c->max_distance, 128, false) ||
        !gguf_int(m, "decoder_start_token_id", &c->decoder_start_id, c->pad_id, false))
        return false;
    if (!fc_gguf_get_f32(m->gguf, "t5.attention.layer_norm_epsilon", &c->eps)) c->eps = 1e-6f;
    if (!(c->eps > 0 && c->eps < 1) || c->n_vocab <= 0 || c->n_embd <= 0 || c->head_dim <= 0 || c->n_head <= 0 ||
        c->n_ff <= 0 || c->n_enc_layer <= 0 || c->n_dec_layer <= 0 || c->n_enc_layer > 1024 || c->n_dec_layer > 1024 ||
        c->n_buckets < 2 || c->max_distance < c->n_buckets / 2 || (int64_t)c->n_head * c->head_dim > (1 << 16) ||
        c->decoder_start_id >= c->n_vocab) {
        FC_LOG_ERROR("%s: inconsistent T5 metadata (embd %d, head size %d, heads %d, ff %d, layers %d/%d, buckets %d, "
                     "eps %g)", m->path, c->n_embd, c->head_dim, c->n_head, c->n_ff, c->n_enc_layer, c->n_dec_layer,
                     c->n_buckets, (double)c->eps);
        return false;
    }
    c->gated = fc_gguf_find_tensor(m->gguf, "enc.blk.0.ffn_gate.weight") != NULL;
    c->act = c->gated ? FC_T5_GELU_NEW : FC_T5_RELU;
    return true;
}

fc_t5 *fc_t5_load(const char *path)
{
    fc_t5 *m = fc_xcalloc(1, sizeof *m);
    m->path = strdup(path);
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        m->gguf = fc_gguf_open(path);
        if (!m->gguf || !gguf_config(m)) goto fail;
    } else {
        cJSON *j = read_config(path);
        if (!j) {
            FC_LOG_ERROR("%s: no readable or valid config.json", path);
            goto fail;
        }
        bool ok = parse_config(path, j, &m->cfg);
        cJSON_Delete(j);
        if (!ok) goto fail;
        m->st = fc_safetensors_open(path);
        if (!m->st) goto fail;
    }
    for (const t5_spec *sp = t5_global; sp->hf; sp++)
        if (!bind(m, sp, m->gguf ? sp->gguf : sp->hf, (fc_tensor *)((char *)m + sp->offset))) goto fail;
    if (!m->lm_head.data) m->lm_head = m->shared;
    if (m->gguf) {
        /* GGUF has no feed_forward_proj / tie_word_embeddings: a gate
         * tensor means gated GELU (tanh), else ReLU, as llama.cpp runs T5;
         * a file without output.weight is a tied T5 v1.0, scaled */
        m->cfg.scale_output = m->lm_head.data == m->shared.data;
    }
    m->enc = fc_xcalloc((size_t)m->cfg.n_enc_layer, sizeof *m->enc);
    m->dec = fc_xcalloc((size_t)m->cfg.n_dec_layer, sizeof *m->dec);
    if (!bind_stack(m, false) || !bind_stack(m, true)) goto fail;
    return m;
fail:
    fc_t5_free(m);
    return NULL;
}

void fc_t5_free(fc_t5 *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->enc);
    free(m->dec);
    fc_safetensors_free(m->st);
    fc_gguf_free(m->gguf);
    free(m->path);
    free(m);
}

const fc_t5_config *fc_t5_get_config(const fc_t5 *m) { return &m->cfg; }

/* ---- the reference forward pass ---- */

int fc_t5_bucket(int rel, bool bidirectional, int n_buckets, int max_distance)
{
    int ret = 0, n;
    if (bidirectional) {
        n_buckets /= 2;
        if (rel > 0) ret = n_buckets;
        n = rel < 0 ? -rel : rel;
    } else {
        n = rel < 0 ? -rel : 0;
    }
    const int max_exact = n_buckets / 2;
    if (n < max_exact) return ret + n;
    /* float32 as torch computes it, truncated toward zero */
    const float r = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact) *
                    (float)(n_buckets - max_exact);
    int large = max_exact + (int)r;
    if (large > n_buckets - 1) large = n_buckets - 1;
    return ret + large;
}

typedef struct mm_job {
    const fc_tensor *w;
    const float *x;    /* (T, K) f32 rows */
    int T;
    float *y;
    enum fc_dtype atype; /* fast mode: the activation type, xa its rows; FC_DTYPE_NONE: exact */
    const void *xa;
    size_t xa_stride;
    bool tiles;        /* fast mode, T >= MM_TILE_MIN_T: f32 row tiles of W times x by sgemm */
} mm_job;

/* Fast-mode products of at least this many rows (the encoder's, a long
 * decoder prompt's) take W a tile of MM_TILE_BYTES of f32 rows at a time,
 * dequantized (fc_dequantize_chunk, the reference's values) into the
 * thread's buffer, times the f32 rows x by an OpenBLAS sgemm: about twice
 * the engine's kernels' rate at these sizes, with f32 activations. */
#define MM_TILE_MIN_T 32
#define MM_TILE_BYTES (4 << 20)

/* OpenBLAS's own (declared in its cblas.h, not in every cblas.h); its
 * products run inside our pool's threads, one thread each */
void openblas_set_num_threads(int n);
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) { openblas_set_num_threads(1); }

static void mm_tiles(const mm_job *j, int64_t r0, int64_t r1)
{
    const int64_t K = j->w->ne[0], R = j->w->ne[1];
    const size_t rb = fc_tensor_row_bytes(j->w);
    const int64_t tr = FC_MAX(1, FC_MIN(r1 - r0, MM_TILE_BYTES / (int64_t)(sizeof(float) * K)));
    float *tile = fc_xmalloc(sizeof(float) * (size_t)(tr * K));
    for (int64_t a = r0; a < r1; a += tr) {
        const int64_t n = FC_MIN(tr, r1 - a);
        for (int64_t r = 0; r < n; r++)
            fc_dequantize_chunk(j->w->type, (const uint8_t *)j->w->data + (size_t)(a + r) * rb, 0, K, tile + r * K);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, (int)n, (int)K, 1.0f, j->x, (int)K, tile, (int)K,
                    0.0f, j->y + a, (int)R);
    }
    free(tile);
}

/* rows of W split evenly over the threads: each output is one row's dot
 * product whatever the thread count */
static void mm_thread(void *ctx, int ith, int nth)
{
    const mm_job *j = ctx;
    const int64_t K = j->w->ne[0], R = j->w->ne[1];
    const int64_t per = (R + nth - 1) / nth, r0 = FC_MIN((int64_t)ith * per, R), r1 = FC_MIN(r0 + per, R);
    if (r0 >= r1) return;
    if (j->tiles) mm_tiles(j, r0, r1);
    else if (j->atype < 0)
        fc_matmul_exact(j->w->type, j->w->data, fc_tensor_row_bytes(j->w), K, j->x, K, j->T, j->y, R, r0, r1);
    else
        fc_matmul_fast(j->w->type, j->w->data, fc_tensor_row_bytes(j->w), K, j->atype, j->xa, j->xa_stride, j->T,
                       j->y, R, r0, r1);
}

/* y (T, R) = x (T, K) W^T for W (R, K) in its stored type, on run's pool
 * (run NULL: this thread, exact) */
static void matmul(const fc_t5_run *run, const fc_tensor *w, const float *x, int T, float *y)
{
    mm_job j = {w, x, T, y, -1, NULL, 0, false};
    void *buf = NULL;
    if (run && run->fast && T >= MM_TILE_MIN_T) {
        pthread_once(&blas_once, blas_init);
        j.tiles = true;
    } else if (run && run->fast) {
        /* llama.cpp's scheme: activations rounded to the weights' partner
         * type (16-bit codes for the 32-value types), f32 for float weights */
        const int64_t K = w->ne[0];
        j.atype = fc_matmul_act_type(w->type, true);
        if (j.atype == FC_DTYPE_F32) {
            j.xa = x;
            j.xa_stride = sizeof(float) * (size_t)K;
        } else {
            j.xa_stride = fc_matmul_act_row_size(j.atype, K);
            if (posix_memalign(&buf, 64, FC_MAX(j.xa_stride * (size_t)T, (size_t)64)) != 0) FC_ASSERT(!"out of memory");
            for (int t = 0; t < T; t++)
                fc_matmul_quantize_act(j.atype, x + (size_t)t * K, (uint8_t *)buf + (size_t)t * j.xa_stride, K);
            j.xa = buf;
        }
    }
    fc_pool *pool = run ? run->pool : NULL;
    if (pool && fc_pool_size(pool) > 1 && w->ne[1] >= 64) fc_pool_run(pool, mm_thread, &j);
    else mm_thread(&j, 0, 1);
    free(buf);
}

static float act(enum fc_t5_act a, float x)
{
    switch (a) {
    case FC_T5_RELU: return x > 0 ? x : 0;
    case FC_T5_GELU_NEW: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case FC_T5_GELU: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case FC_T5_SILU: return x / (1.0f + expf(-x));
    }
    return x;
}

/* a[i] = act(a[i]) (* b[i] when b): in fast mode the tanh GELU of
 * gelu_new (Flan-T5's gated-gelu) in AVX2 lanes with fc_tanh8 (absolute
 * error ~1e-7); the rest, and the exact mode, with libm as torch's. */
static void act_rows(enum fc_t5_act f, bool fast, float *a, const float *b, size_t n)
{
    size_t i = 0;
#ifdef FC_VEXP_AVX2
    if (fast && f == FC_T5_GELU_NEW) {
        const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
        const __m256 k0 = _mm256_set1_ps(0.7978845608028654f), k1 = _mm256_set1_ps(0.044715f);
        for (; i + 8 <= n; i += 8) {
            const __m256 x = _mm256_loadu_ps(a + i);
            const __m256 inner = _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_mul_ps(k1, x), _mm256_mul_ps(x, x), x));
            __m256 g = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, fc_tanh8(inner)));
            if (b) g = _mm256_mul_ps(g, _mm256_loadu_ps(b + i));
            _mm256_storeu_ps(a + i, g);
        }
    }
#endif
    for (; i < n; i++) a[i] = b ? act(f, a[i]) * b[i] : act(f, a[i]);
}

/* h (T, C) += feed-forward(norm(h)); scratch: xn (T, C), a, b (T, FF) */
static void feed_forward(const fc_t5 *m, const fc_t5_run *run, const t5_layer *ly, float *h, int T, float *xn, float *a, float *b,
                         float *out)
{
    const fc_t5_config *c = &m->cfg;
    const int C = c->n_embd, FF = c->n_ff;
    for (int t = 0; t < T; t++) fc_rmsnorm_ref(xn + (size_t)t * C, h + (size_t)t * C, ly->ffn_norm.data, C, c->eps);
    if (c->gated) {
        matmul(run, &ly->wi_0, xn, T, a);
        matmul(run, &ly->wi_1, xn, T, b);
        act_rows(c->act, run && run->fast, a, b, (size_t)T * FF);
    } else {
        matmul(run, &ly->wi, xn, T, a);
        act_rows(c->act, run && run->fast, a, NULL, (size_t)T * FF);
    }
    matmul(run, &ly->wff_o, a, T, out);
    for (size_t i = 0; i < (size_t)T * C; i++) h[i] += out[i];
}

/* One head's attention of query q (HS) over n keys / values (rows of
 * stride floats, head offset applied by the caller), bias[j] added to score
 * j (NULL: none); writes HS values to out. scores: n floats. */
static void attend(const float *q, const float *k, const float *v, int n, int stride, int HS, const float *bias,
                   int bias_stride, float *scores, float *out)
{
    for (int j = 0; j < n; j++) {
        float s = 0;
        for (int d = 0; d < HS; d++) s += q[d] * k[(size_t)j * stride + d];
        scores[j] = s + (bias ? bias[(size_t)j * bias_stride] : 0.0f);
    }
    fc_softmax_ref(scores, n);
    for (int d = 0; d < HS; d++) out[d] = 0;
    for (int j = 0; j < n; j++) fc_axpy_f32(out, scores[j], v + (size_t)j * stride, HS);
}

/* The encoder's attention in fast mode: per (sequence, head), over the pool,
 * S (L, L) = Q_h K_h^T as one OpenBLAS sgemm (one thread inside), the
 * relative bias added and each row soft-maxed (vectorized exp), then
 * att_h = S V_h as a second sgemm. The exact mode keeps attend() (row by
 * row, the reference's order of sums). */
typedef struct enc_attn_job {
    const float *q, *k, *v, *bias;
    float *att;
    const int *lens, *row0;
    const size_t *bias_off;
    int n_seq, NH, HS, Q, max_len;
} enc_attn_job;

static void softmax_bias_row(float *z, const float *b, int n)
{
    float mx = -INFINITY;
    for (int j = 0; j < n; j++) {
        z[j] += b[j];
        mx = z[j] > mx ? z[j] : mx;
    }
    float sum = 0;
    int j = 0;
#ifdef FC_VEXP_AVX2
    const __m256 mv = _mm256_set1_ps(mx);
    __m256 acc = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        const __m256 e = fc_exp8(_mm256_sub_ps(_mm256_loadu_ps(z + j), mv));
        _mm256_storeu_ps(z + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    for (int i = 0; i < 8; i++) sum += lanes[i];
#endif
    for (; j < n; j++) {
        z[j] = expf(z[j] - mx);
        sum += z[j];
    }
    const float inv = 1.0f / sum;
    for (j = 0; j < n; j++) z[j] *= inv;
}

static void enc_attn_thread(void *ctx, int ith, int nth)
{
    const enc_attn_job *j = ctx;
    const int NH = j->NH, HS = j->HS, Q = j->Q;
    float *S = NULL;
    for (int item = ith; item < j->n_seq * NH; item += nth) {
        const int s = item / NH, hh = item % NH, L = j->lens[s], n_rel = 2 * L - 1;
        if (!S) S = fc_xmalloc(sizeof(float) * (size_t)j->max_len * (size_t)j->max_len);
        const size_t base = (size_t)j->row0[s] * Q + (size_t)hh * HS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, HS, 1.0f, j->q + base, Q, j->k + base, Q, 0.0f, S, L);
        const float *b = j->bias + j->bias_off[s] + (size_t)hh * n_rel;
        for (int i = 0; i < L; i++) softmax_bias_row(S + (size_t)i * L, b + (L - 1 - i), L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, HS, L, 1.0f, S, L, j->v + base, Q, 0.0f,
                    j->att + base, Q);
    }
    free(S);
}

enum fc_status fc_t5_encode(const fc_t5 *m, const fc_t5_run *run, const int32_t *ids, int n, float *out)
{
    return fc_t5_encode_batch(m, run, ids, &n, 1, out);
}

enum fc_status fc_t5_encode_batch(const fc_t5 *m, const fc_t5_run *run, const int32_t *ids, const int *lens, int n_seq,
                                  float *out)
{
    const fc_t5_config *c = &m->cfg;
    if (n_seq <= 0) return FC_ERR_ARG;
    int64_t n64 = 0, n_rel_all = 0;
    for (int s = 0; s < n_seq; s++) {
        if (lens[s] <= 0) return FC_ERR_ARG;
        n64 += lens[s];
        n_rel_all += 2 * (int64_t)lens[s] - 1;
    }
    if (n64 > (1 << 24)) return FC_ERR_ARG;
    const int n = (int)n64; /* rows of all sequences */
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->n_vocab) return FC_ERR_ARG;
    const int C = c->n_embd, NH = c->n_head, HS = c->head_dim, Q = NH * HS, FF = c->n_ff;
    float *h = out; /* (n, C) the residual stream, normed in place at the end */
    float *xn = fc_xmalloc(sizeof(float) * (size_t)n * C);
    float *q = fc_xmalloc(sizeof(float) * (size_t)n * Q), *k = fc_xmalloc(sizeof(float) * (size_t)n * Q);
    float *v = fc_xmalloc(sizeof(float) * (size_t)n * Q), *att = fc_xmalloc(sizeof(float) * (size_t)n * Q);
    float *a = fc_xmalloc(sizeof(float) * (size_t)n * FF), *b = fc_xmalloc(sizeof(float) * (size_t)n * FF);
    float *tmp = fc_xmalloc(sizeof(float) * (size_t)n * C);
    float *scores = fc_xmalloc(sizeof(float) * (size_t)n);
    /* per sequence of length L, bias (NH, 2L - 1): the bias of relative
     * position j - i at [h][j - i + L - 1] */
    float *bias = fc_xmalloc(sizeof(float) * (size_t)NH * (size_t)n_rel_all);
    const float *rb = m->enc[0].rel_bias.data; /* (buckets, NH) */
    size_t off = 0;
    int *row0 = fc_xmalloc(sizeof(int) * (size_t)n_seq), max_len = 0;
    size_t *bias_off = fc_xmalloc(sizeof(size_t) * (size_t)n_seq);
    for (int s = 0, r = 0; s < n_seq; s++) {
        row0[s] = r;
        bias_off[s] = off;
        r += lens[s];
        max_len = FC_MAX(max_len, lens[s]);
        const int L = lens[s], n_rel = 2 * L - 1;
        for (int r = 0; r < n_rel; r++) {
            const int bk = fc_t5_bucket(r - (L - 1), true, c->n_buckets, c->max_distance);
            for (int hh = 0; hh < NH; hh++) bias[off + (size_t)hh * n_rel + r] = rb[(size_t)bk * NH + hh];
        }
        off += (size_t)NH * n_rel;
    }
    for (int t = 0; t < n; t++)
        fc_dequantize_row_ref(m->shared.type, (const uint8_t *)m->shared.data + (size_t)ids[t] * fc_tensor_row_bytes(&m->shared),
                              h + (size_t)t * C, C);
    for (int l = 0; l < c->n_enc_layer; l++) {
        const t5_layer *ly = &m->enc[l];
        /* the rows of every sequence through each matrix together */
        for (int t = 0; t < n; t++) fc_rmsnorm_ref(xn + (size_t)t * C, h + (size_t)t * C, ly->attn_norm.data, C, c->eps);
        matmul(run, &ly->wq, xn, n, q);
        matmul(run, &ly->wk, xn, n, k);
        matmul(run, &ly->wv, xn, n, v);
        /* attention within each sequence */
        if (run && run->fast) {
            enc_attn_job job = {.q = q, .k = k, .v = v, .bias = bias, .att = att, .lens = lens, .row0 = row0,
                                .bias_off = bias_off, .n_seq = n_seq, .NH = NH, .HS = HS, .Q = Q, .max_len = max_len};
            pthread_once(&blas_once, blas_init);
            if (run->pool && fc_pool_size(run->pool) > 1) fc_pool_run(run->pool, enc_attn_thread, &job);
            else enc_attn_thread(&job, 0, 1);
        } else {
            for (int s = 0; s < n_seq; s++) {
                const int L = lens[s], n_rel = 2 * L - 1;
                const float *ks = k + (size_t)row0[s] * Q, *vs = v + (size_t)row0[s] * Q, *bs = bias + bias_off[s];
                for (int i = 0; i < L; i++)
                    for (int hh = 0; hh < NH; hh++)
                        attend(q + (size_t)(row0[s] + i) * Q + hh * HS, ks + hh * HS, vs + hh * HS, L, Q, HS,
                               bs + (size_t)hh * n_rel + (L - 1 - i), 1, scores,
                               att + (size_t)(row0[s] + i) * Q + hh * HS);
            }
        }
        matmul(run, &ly->wo, att, n, tmp);
        for (size_t i = 0; i < (size_t)n * C; i++) h[i] += tmp[i];
        feed_forward(m, run, ly, h, n, xn, a, b, tmp);
    }
    for (int t = 0; t < n; t++) {
        fc_rmsnorm_ref(xn, h + (size_t)t * C, m->enc_norm.data, C, c->eps);
        memcpy(h + (size_t)t * C, xn, sizeof(float) * (size_t)C);
    }
    free(xn); free(q); free(k); free(v); free(att); free(a); free(b); free(tmp); free(scores); free(bias);
    free(row0); free(bias_off);
    return FC_OK;
}

/* ---- decoder: keys and values in the paged cache ----
 * Request slot s of a T5 cache owns two sequences of the fc_kv_cache:
 * 2s holds the decoder's self-attention keys and values (one position per
 * step), 2s+1 the cross-attention keys and values of the encoder output
 * (n_enc positions, written once). A cache layer is a decoder layer; a
 * block holds FC_KV_BLOCK positions of every layer, K then V, each (NH,
 * FC_KV_BLOCK, HS) in f32. */

#define SELF_SEQ(slot) (2 * (slot))
#define CROSS_SEQ(slot) (2 * (slot) + 1)

struct fc_t5_dec {
    const fc_t5 *m;
    fc_t5_run run;            /* its pool borrowed; zeroed: the caller's thread, exact */
    fc_kv_cache *kv;          /* the pages of its keys and values */
    bool own_kv;              /* fc_t5_dec_new's private cache, freed with it */
    int slot;                 /* its sequences SELF_SEQ(slot), CROSS_SEQ(slot) */
    int n_enc, n_max, n;
};

fc_kv_cache *fc_t5_kv_cache_new(const fc_t5 *m, int64_t n_tokens, int n_slots)
{
    if (n_slots <= 0 || n_slots > (1 << 20) || n_tokens <= 0) {
        FC_LOG_ERROR("%s: bad sizes (%lld tokens, %d slots)", __func__, (long long)n_tokens, n_slots);
        return NULL;
    }
    fc_model_config mc = {0};
    mc.n_layer = m->cfg.n_dec_layer;
    mc.n_head_kv = m->cfg.n_head;
    mc.head_dim = m->cfg.head_dim;
    fc_kv_params kp = {.n_tokens = n_tokens, .n_seq_max = 2 * n_slots, .dtype = FC_DTYPE_F32};
    return fc_kv_cache_new(&mc, &kp);
}

int64_t fc_t5_kv_blocks(int n_tokens) { return ((int64_t)n_tokens + FC_KV_BLOCK - 1) / FC_KV_BLOCK; }

/* The HS floats of head hh at position pos of seq's layer l, K (which 0)
 * or V (1). */
static inline float *page_row(const fc_kv_cache *kv, int seq, int pos, int l, int which, int hh)
{
    const int32_t b = kv->seqs[seq].blocks[pos / FC_KV_BLOCK];
    return (float *)fc_kv_block_ptr(kv, b, l, which) + ((size_t)hh * FC_KV_BLOCK + (size_t)(pos % FC_KV_BLOCK)) * (size_t)kv->HS;
}

/* Writes k and v (Q = NH * HS floats each) as position pos of seq's layer l. */
static void page_put(fc_kv_cache *kv, int seq, int pos, int l, const float *k, const float *v)
{
    const int HS = kv->HS;
    for (int hh = 0; hh < kv->NKV; hh++) {
        memcpy(page_row(kv, seq, pos, l, 0, hh), k + (size_t)hh * HS, sizeof(float) * (size_t)HS);
        memcpy(page_row(kv, seq, pos, l, 1, hh), v + (size_t)hh * HS, sizeof(float) * (size_t)HS);
    }
}

/* attend() over positions 0..n of seq's layer l, head hh, read block by
 * block from the pages (the same sums in the same order). */
static void attend_paged(const fc_kv_cache *kv, int seq, int l, int hh, const float *q, int n, const float *bias,
                         float *scores, float *out)
{
    const int HS = kv->HS;
    const int32_t *blocks = kv->seqs[seq].blocks;
    for (int j0 = 0; j0 < n; j0 += FC_KV_BLOCK) {
        const float *k = (const float *)fc_kv_block_ptr(kv, blocks[j0 / FC_KV_BLOCK], l, 0) + (size_t)hh * FC_KV_BLOCK * HS;
        const int nj = FC_MIN(FC_KV_BLOCK, n - j0);
        for (int j = 0; j < nj; j++) {
            float s = 0;
            for (int d = 0; d < HS; d++) s += q[d] * k[(size_t)j * HS + d];
            scores[j0 + j] = s + (bias ? bias[j0 + j] : 0.0f);
        }
    }
    fc_softmax_ref(scores, n);
    for (int d = 0; d < HS; d++) out[d] = 0;
    for (int j0 = 0; j0 < n; j0 += FC_KV_BLOCK) {
        const float *v = (const float *)fc_kv_block_ptr(kv, blocks[j0 / FC_KV_BLOCK], l, 1) + (size_t)hh * FC_KV_BLOCK * HS;
        const int nj = FC_MIN(FC_KV_BLOCK, n - j0);
        for (int j = 0; j < nj; j++) fc_axpy_f32(out, scores[j0 + j], v + (size_t)j * HS, HS);
    }
}

static bool slot_empty(const fc_kv_cache *kv, int slot)
{
    return kv->seqs[SELF_SEQ(slot)].n_blocks == 0 && kv->seqs[CROSS_SEQ(slot)].n_blocks == 0 &&
           kv->seqs[SELF_SEQ(slot)].len == 0 && kv->seqs[CROSS_SEQ(slot)].len == 0;
}

enum fc_status fc_t5_dec_new_paged(const fc_t5 *m, const fc_t5_run *run, fc_kv_cache *kv, int slot, const float *enc,
                                   int n_enc, int n_reserve, fc_t5_dec **out)
{
    const fc_t5_config *c = &m->cfg;
    *out = NULL;
    if (n_enc <= 0 || n_enc > (1 << 20) || n_reserve < 0 || slot < 0 || 2 * slot + 1 >= kv->n_seq_max ||
        kv->L != c->n_dec_layer || kv->NKV != c->n_head || kv->HS != c->head_dim || kv->dtype != FC_DTYPE_F32 ||
        !slot_empty(kv, slot)) {
        FC_LOG_ERROR("%s: bad T5 decoder (encoder %d tokens, slot %d, or a cache of another shape or in use)", __func__,
                     n_enc, slot);
        return FC_ERR_ARG;
    }
    const int64_t need = fc_t5_kv_blocks(n_enc) + fc_t5_kv_blocks(FC_MAX(n_reserve, 1));
    if (need > fc_kv_cache_free_blocks(kv)) return FC_ERR_FULL;
    /* cannot fail now: the blocks are there and no T5 block is shared */
    if (fc_kv_cache_reserve(kv, CROSS_SEQ(slot), n_enc) != FC_OK ||
        fc_kv_cache_reserve(kv, SELF_SEQ(slot), FC_MAX(n_reserve, 1)) != FC_OK) {
        fc_kv_cache_seq_truncate(kv, CROSS_SEQ(slot), 0);
        fc_kv_cache_seq_truncate(kv, SELF_SEQ(slot), 0);
        return FC_ERR_FULL;
    }
    const int Q = c->n_head * c->head_dim, L = c->n_dec_layer;
    fc_t5_dec *d = fc_xcalloc(1, sizeof *d);
    d->m = m;
    if (run) d->run = *run;
    d->kv = kv;
    d->slot = slot;
    d->n_enc = n_enc;
    d->n_max = 1 << 30;
    /* the cross-attention keys and values of every layer, once */
    float *k = fc_xmalloc(sizeof(float) * (size_t)n_enc * Q), *v = fc_xmalloc(sizeof(float) * (size_t)n_enc * Q);
    for (int l = 0; l < L; l++) {
        matmul(run, &m->dec[l].ck, enc, n_enc, k);
        matmul(run, &m->dec[l].cv, enc, n_enc, v);
        for (int t = 0; t < n_enc; t++) page_put(kv, CROSS_SEQ(slot), t, l, k + (size_t)t * Q, v + (size_t)t * Q);
    }
    free(k);
    free(v);
    kv->seqs[CROSS_SEQ(slot)].len = n_enc;
    *out = d;
    return FC_OK;
}

fc_t5_dec *fc_t5_dec_new(const fc_t5 *m, const fc_t5_run *run, const float *enc, int n_enc, int n_max)
{
    if (n_enc <= 0 || n_max <= 0 || n_max > (1 << 20) || n_enc > (1 << 20)) {
        FC_LOG_ERROR("%s: bad T5 decoder sizes (encoder %d, decoder %d tokens)", __func__, n_enc, n_max);
        return NULL;
    }
    fc_kv_cache *kv = fc_t5_kv_cache_new(m, (fc_t5_kv_blocks(n_enc) + fc_t5_kv_blocks(n_max)) * FC_KV_BLOCK, 1);
    if (!kv) return NULL;
    fc_t5_dec *d;
    if (fc_t5_dec_new_paged(m, run, kv, 0, enc, n_enc, n_max, &d) != FC_OK) {
        fc_kv_cache_free(kv);
        return NULL;
    }
    d->own_kv = true;
    d->n_max = n_max;
    return d;
}

void fc_t5_dec_free(fc_t5_dec *d)
{
    if (!d) return;
    if (d->own_kv) {
        fc_kv_cache_free(d->kv);
    } else {
        fc_kv_cache_seq_truncate(d->kv, SELF_SEQ(d->slot), 0);
        fc_kv_cache_seq_truncate(d->kv, CROSS_SEQ(d->slot), 0);
    }
    free(d);
}

int fc_t5_dec_len(const fc_t5_dec *d) { return d->n; }
int fc_t5_dec_slot(const fc_t5_dec *d) { return d->slot; }

/* Blocks the next step of ds[0..n) takes from the cache kv. */
static int64_t step_blocks(fc_t5_dec *const *ds, int n, const fc_kv_cache *kv)
{
    int64_t need = 0;
    for (int s = 0; s < n; s++)
        if (ds[s]->kv == kv) need += (int64_t)kv->seqs[SELF_SEQ(ds[s]->slot)].n_blocks * FC_KV_BLOCK <= ds[s]->n;
    return need;
}

int64_t fc_t5_dec_step_blocks(fc_t5_dec *const *ds, int n)
{
    return n > 0 ? step_blocks(ds, n, ds[0]->kv) : 0;
}

enum fc_status fc_t5_dec_step(fc_t5_dec *d, int32_t token, float *logits)
{
    return fc_t5_dec_step_batch(&d, &token, 1, logits);
}

enum fc_status fc_t5_dec_step_batch(fc_t5_dec *const *ds, const int32_t *tokens, int n, float *logits)
{
    if (n <= 0) return FC_ERR_ARG;
    const fc_t5 *m = ds[0]->m;
    const fc_t5_run *run = &ds[0]->run;
    const fc_t5_config *c = &m->cfg;
    for (int s = 0; s < n; s++) {
        if (ds[s]->m != m || tokens[s] < 0 || tokens[s] >= c->n_vocab) return FC_ERR_ARG;
        if (ds[s]->n >= ds[s]->n_max) return FC_ERR_FULL;
        for (int r = 0; r < s; r++)
            if (ds[r] == ds[s] || (ds[r]->kv == ds[s]->kv && ds[r]->slot == ds[s]->slot)) return FC_ERR_ARG;
    }
    /* room for one more self-attention position each, in every cache, or
     * nothing happens */
    for (int s = 0; s < n; s++)
        if (step_blocks(ds, n, ds[s]->kv) > fc_kv_cache_free_blocks(ds[s]->kv)) return FC_ERR_FULL;
    for (int s = 0; s < n; s++)
        if (fc_kv_cache_reserve(ds[s]->kv, SELF_SEQ(ds[s]->slot), 1) != FC_OK)
            FC_ASSERT(!"T5 page reservation failed after the check");
    const int C = c->n_embd, NH = c->n_head, HS = c->head_dim, Q = NH * HS, FF = c->n_ff;
    /* the step's scratch: the batch's rows (one per sequence; every matrix
     * is read once per step), then the scores, then each sequence's causal
     * bias (NH, T) */
    size_t n_scores = 0, n_bias = 0;
    for (int s = 0; s < n; s++) {
        n_scores = FC_MAX(n_scores, (size_t)FC_MAX(ds[s]->n + 1, ds[s]->n_enc));
        n_bias += (size_t)NH * (size_t)(ds[s]->n + 1);
    }
    float *h = fc_xmalloc(sizeof(float) * ((size_t)n * (3 * (size_t)C + 4 * (size_t)Q + 2 * (size_t)FF) + n_scores + n_bias));
    float *xn = h + (size_t)n * C, *tmp = xn + (size_t)n * C;
    float *q = tmp + (size_t)n * C, *att = q + (size_t)n * Q, *kv = att + (size_t)n * Q;
    float *a = kv + (size_t)n * Q * 2, *b = a + (size_t)n * FF;
    float *scores = b + (size_t)n * FF, *biases = scores + n_scores;
    const float *rb = m->dec[0].rel_bias.data;
    for (size_t s = 0, off = 0; s < (size_t)n; s++) {
        const int p = ds[s]->n, T = p + 1; /* this token's position; keys 0..p */
        fc_dequantize_row_ref(m->shared.type,
                              (const uint8_t *)m->shared.data + (size_t)tokens[s] * fc_tensor_row_bytes(&m->shared),
                              h + s * C, C);
        /* causal bias of key j: bucket(j - p), laid out (NH, T) */
        float *bias = biases + off;
        for (int j = 0; j < T; j++) {
            const int bk = fc_t5_bucket(j - p, false, c->n_buckets, c->max_distance);
            for (int hh = 0; hh < NH; hh++) bias[(size_t)hh * T + j] = rb[(size_t)bk * NH + hh];
        }
        off += (size_t)NH * T;
    }
    for (int l = 0; l < c->n_dec_layer; l++) {
        const t5_layer *ly = &m->dec[l];
        /* self-attention, each sequence over its own pages */
        for (int s = 0; s < n; s++) fc_rmsnorm_ref(xn + (size_t)s * C, h + (size_t)s * C, ly->attn_norm.data, C, c->eps);
        matmul(run, &ly->wq, xn, n, q);
        matmul(run, &ly->wk, xn, n, kv);
        matmul(run, &ly->wv, xn, n, kv + (size_t)n * Q);
        for (size_t s = 0, off = 0; s < (size_t)n; s++) {
            fc_t5_dec *d = ds[s];
            const int p = d->n, T = p + 1;
            page_put(d->kv, SELF_SEQ(d->slot), p, l, kv + s * Q, kv + (n + s) * Q);
            for (int hh = 0; hh < NH; hh++)
                attend_paged(d->kv, SELF_SEQ(d->slot), l, hh, q + s * Q + hh * HS, T, biases + off + (size_t)hh * T, scores,
                             att + s * Q + hh * HS);
            off += (size_t)NH * T;
        }
        matmul(run, &ly->wo, att, n, tmp);
        for (size_t i = 0; i < (size_t)n * C; i++) h[i] += tmp[i];
        /* cross-attention over each sequence's encoder pages, no position bias */
        for (int s = 0; s < n; s++) fc_rmsnorm_ref(xn + (size_t)s * C, h + (size_t)s * C, ly->cross_norm.data, C, c->eps);
        matmul(run, &ly->cq, xn, n, q);
        for (size_t s = 0; s < (size_t)n; s++) {
            const fc_t5_dec *d = ds[s];
            for (int hh = 0; hh < NH; hh++)
                attend_paged(d->kv, CROSS_SEQ(d->slot), l, hh, q + s * Q + hh * HS, d->n_enc, NULL, scores,
                             att + s * Q + hh * HS);
        }
        matmul(run, &ly->co, att, n, tmp);
        for (size_t i = 0; i < (size_t)n * C; i++) h[i] += tmp[i];
        feed_forward(m, run, ly, h, n, xn, a, b, tmp);
    }
    for (int s = 0; s < n; s++) {
        fc_rmsnorm_ref(xn + (size_t)s * C, h + (size_t)s * C, m->dec_norm.data, C, c->eps);
        ds[s]->n++;
        ds[s]->kv->seqs[SELF_SEQ(ds[s]->slot)].len = ds[s]->n;
    }
    if (c->scale_output) {
        const float sc = 1.0f / sqrtf((float)C);
        for (size_t i = 0; i < (size_t)n * C; i++) xn[i] *= sc;
    }
    if (logits) matmul(run, &m->lm_head, xn, n, logits);
    free(h);
    return FC_OK;
}
