/*
 * bert.c: BERT sentence encoders (see bert.h): loading a sentence-transformers
 * folder, the encoder forward pass over a packed batch of sequences, and
 * pooling. Mirrors transformers' BertModel (modeling_bert.py: BertEmbeddings,
 * BertSelfAttention, BertSelfOutput, BertIntermediate, BertOutput) and
 * sentence-transformers' Pooling and Normalize modules.
 *
 * Also a GGUF "bert" file (llama.cpp's names, mapped from the Hugging Face
 * ones by gguf_names below). Not here: the tokenizer (tokenizer/wordpiece.h), a KV cache
 * (an encoder reads every token once), padding (sequences are packed back
 * to back: attention runs per sequence, the matrices over all tokens).
 *
 * The forward pass is one fc_pool_run: every thread walks the same phases
 * and meets the others at a barrier between them (llama.cpp's ggml style);
 * matrix products split the rows of W, row ops split the tokens, attention
 * splits (sequence, head) pairs.
 */
#include "bert.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "base/file.h"
#include "base/json.h"
#include "base/pool.h"
#include "tensor/ops.h"
#include "tensor/vexp.h"
#include "format/gguf.h"
#include "safetensors.h"

enum pooling { POOL_MEAN = 0, POOL_CLS, POOL_MAX, POOL_MEAN_SQRT };
static const char *pool_names[] = {"mean", "cls", "max", "mean_sqrt_len"};

typedef struct mat {
    enum fc_dtype type; /* F32, F16 or BF16 */
    const void *w;      /* (R, K) rows */
    size_t stride;      /* bytes between rows */
    int64_t R, K;
    /* (R/16, K, 16) f32: panels of 16 rows stored column by column, for the
     * AVX2 kernel below; NULL without AVX2 or when R % 16 != 0 */
    const float *panels;
} mat;

typedef struct bert_layer {
    mat q, k, v, o;     /* (C, C) each */
    const float *bq, *bk, *bv, *bo;   /* (C) */
    const float *ln1_w, *ln1_b;       /* (C) attention output LayerNorm */
    mat up, down;       /* (FF, C), (C, FF) */
    const float *b_up, *b_down;       /* (FF), (C) */
    const float *ln2_w, *ln2_b;       /* (C) output LayerNorm */
} bert_layer;

struct fc_bert {
    char *path;
    fc_safetensors *st;
    fc_gguf *gguf;       /* a GGUF "bert" file instead of a folder (then st is NULL) */
    int V, C, L, NH, HS, FF, n_pos, n_types, max_seq;
    float eps;
    const float *word;   /* (V, C) */
    const float *pos;    /* (n_pos, C) */
    const float *type0;  /* (C) token type 0 */
    const float *ln_w, *ln_b; /* (C) embeddings LayerNorm */
    bert_layer *layers;  /* (L) */
    enum pooling pooling;
    bool normalize;
    void **owned;        /* f32 copies of 16-bit vectors and tables */
    int n_owned;
    fc_pool *pool;
    pthread_mutex_t lock;
};

/* ---- loading ---- */

static cJSON *read_json(const char *dir, const char *file, bool required, bool *bad)
{
    char *p = fc_xasprintf("%s/%s", dir, file);
    size_t len = 0;
    /* an optional file that is absent is no error (and logs nothing) */
    char *s = required || access(p, F_OK) == 0 ? fc_file_read(p, &len, 1u << 24) : NULL;
    cJSON *j = NULL;
    if (!s) {
        if (required) {
            FC_LOG_ERROR("%s: cannot read it", p);
            *bad = true;
        }
    } else if (!(j = cJSON_ParseWithLength(s, len))) {
        FC_LOG_ERROR("%s: not valid JSON", p);
        *bad = true;
    }
    free(s);
    free(p);
    return j;
}

bool fc_bert_is_encoder(const char *path)
{
    if (fc_gguf_is_file(path)) {
        fc_gguf *g = fc_gguf_open(path);
        fc_gguf_str a;
        bool yes = g && fc_gguf_get_str(g, "general.architecture", &a) && a.len == 4 && !memcmp(a.ptr, "bert", 4);
        fc_gguf_free(g);
        return yes;
    }
    bool bad = false;
    cJSON *c = read_json(path, "config.json", false, &bad);
    if (!c) return false;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c, "model_type");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    bool yes = cJSON_IsString(mt) ? !strcmp(mt->valuestring, "bert")
                                  : cJSON_IsArray(ar) && cJSON_IsString(ar->child) &&
                                        !strncmp(ar->child->valuestring, "Bert", 4);
    cJSON_Delete(c);
    return yes;
}

/* A positive integer field; -1 (logged) when absent or out of range. */
static int int_field(const cJSON *o, const char *key, int dflt, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (dflt < 0) FC_LOG_ERROR("%s/config.json: missing field '%s'", path, key);
        return dflt;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e7) || v->valuedouble != floor(v->valuedouble)) {
        FC_LOG_ERROR("%s/config.json: '%s' is not a positive integer", path, key);
        return -1;
    }
    return (int)v->valuedouble;
}

static const char *prefix_of(const fc_bert *b)
{
    return fc_safetensors_find(b->st, "bert.embeddings.word_embeddings.weight") ? "bert." : "";
}

/* Hugging Face BertModel names -> llama.cpp's GGUF "bert" names (its
 * converter's tensor map); per layer: encoder.layer.N.<hf> -> blk.N.<gguf>. */
static const char *const gguf_names[][2] = {
    {"embeddings.word_embeddings.weight", "token_embd.weight"},
    {"embeddings.position_embeddings.weight", "position_embd.weight"},
    {"embeddings.token_type_embeddings.weight", "token_types.weight"},
    {"embeddings.LayerNorm.weight", "token_embd_norm.weight"},
    {"embeddings.LayerNorm.bias", "token_embd_norm.bias"},
    {"attention.self.query.weight", "attn_q.weight"},
    {"attention.self.query.bias", "attn_q.bias"},
    {"attention.self.key.weight", "attn_k.weight"},
    {"attention.self.key.bias", "attn_k.bias"},
    {"attention.self.value.weight", "attn_v.weight"},
    {"attention.self.value.bias", "attn_v.bias"},
    {"attention.output.dense.weight", "attn_output.weight"},
    {"attention.output.dense.bias", "attn_output.bias"},
    {"attention.output.LayerNorm.weight", "attn_output_norm.weight"},
    {"attention.output.LayerNorm.bias", "attn_output_norm.bias"},
    {"intermediate.dense.weight", "ffn_up.weight"},
    {"intermediate.dense.bias", "ffn_up.bias"},
    {"output.dense.weight", "ffn_down.weight"},
    {"output.dense.bias", "ffn_down.bias"},
    {"output.LayerNorm.weight", "layer_output_norm.weight"},
    {"output.LayerNorm.bias", "layer_output_norm.bias"},
};

/* The GGUF name of HF name (see gguf_names) into out; false if none. */
static bool gguf_name(const char *name, char *out, size_t len)
{
    int l = -1, n = 0;
    const char *rest = name;
    if (sscanf(name, "encoder.layer.%d.%n", &l, &n) == 1 && n > 0) rest = name + n;
    for (size_t i = 0; i < sizeof gguf_names / sizeof gguf_names[0]; i++) {
        if (strcmp(rest, gguf_names[i][0])) continue;
        if ((l >= 0) != (i >= 5)) return false;
        if (l >= 0) snprintf(out, len, "blk.%d.%s", l, gguf_names[i][1]);
        else snprintf(out, len, "%s", gguf_names[i][1]);
        return true;
    }
    return false;
}

/* Finds name (with the checkpoint's prefix) and checks its shape (ne0, ne1;
 * ne1 = 0 for a vector) and type. NULL (logged) otherwise. */
static const fc_tensor *get(fc_bert *b, const char *name, int64_t ne0, int64_t ne1)
{
    char full[160];
    const fc_tensor *t = NULL;
    if (b->gguf) {
        if (!gguf_name(name, full, sizeof full)) snprintf(full, sizeof full, "%s", name);
        const fc_gguf_tensor_info *ti = fc_gguf_find_tensor(b->gguf, full);
        t = ti ? &ti->t : NULL;
    } else {
        snprintf(full, sizeof full, "%s%s", prefix_of(b), name);
        t = fc_safetensors_find(b->st, full);
    }
    if (!t) {
        FC_LOG_ERROR("%s: tensor '%s' missing", b->path, full);
        return NULL;
    }
    /* a GGUF's matrices and embeddings may be quantized (fastchat quantize,
     * llama-quantize): dequantized at load like f16 ones */
    bool quant_ok = b->gguf && ne1 && t->type >= 0 && fc_dtype_supported(t->type);
    if (t->type != FC_DTYPE_F32 && t->type != FC_DTYPE_F16 && t->type != FC_DTYPE_BF16 && !quant_ok) {
        FC_LOG_ERROR("%s: tensor '%s' has type %s (F32, F16 or BF16%s expected)", b->path, full,
                     t->type >= 0 ? fc_dtype_name(t->type) : "unsupported", b->gguf ? ", or quantized for a matrix" : "");
        return NULL;
    }
    bool ok = ne1 ? t->n_dims == 2 && t->ne[0] == ne0 && t->ne[1] == ne1 : t->n_dims == 1 && t->ne[0] == ne0;
    if (!ok) {
        if (ne1)
            FC_LOG_ERROR("%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", b->path, full,
                         (long long)t->ne[1], (long long)t->ne[0], (long long)ne1, (long long)ne0);
        else
            FC_LOG_ERROR("%s: tensor '%s' has %d dimensions / %lld values, expected [%lld]", b->path, full, t->n_dims,
                         (long long)t->ne[0], (long long)ne0);
        return NULL;
    }
    return t;
}

/* The tensor as f32 values: the mapping itself, or a converted copy. */
static const float *as_f32(fc_bert *b, const fc_tensor *t)
{
    if (!t) return NULL;
    if (t->type == FC_DTYPE_F32) return t->data;
    int64_t n = fc_tensor_nelem(t);
    float *f = fc_xmalloc(sizeof(float) * (size_t)n);
    fc_dequantize_row_ref(t->type, t->data, f, n);
    b->owned = fc_xrealloc(b->owned, sizeof(void *) * (size_t)(b->n_owned + 1));
    b->owned[b->n_owned++] = f;
    return f;
}

static const float *vec(fc_bert *b, const char *fmt, int l, int64_t n)
{
    char name[128];
    snprintf(name, sizeof name, fmt, l);
    return as_f32(b, get(b, name, n, 0));
}

/* The panel copy of a matrix (see mat.panels), owned by b. */
static const float *make_panels(fc_bert *b, const fc_tensor *t, int64_t R, int64_t K)
{
#ifdef __AVX2__
    if (R % 16) return NULL;
    float *p = aligned_alloc(64, (sizeof(float) * (size_t)(R * K) + 63) / 64 * 64);
    float *row = malloc(sizeof(float) * (size_t)K);
    if (!p || !row) {
        free(p), free(row);
        return NULL;
    }
    for (int64_t r = 0; r < R; r++) {
        fc_dequantize_row_ref(t->type, (const uint8_t *)t->data + (size_t)r * fc_tensor_row_bytes(t), row, K);
        float *pp = p + (size_t)(r / 16) * K * 16 + r % 16;
        for (int64_t k = 0; k < K; k++) pp[k * 16] = row[k];
    }
    free(row);
    b->owned = fc_xrealloc(b->owned, sizeof(void *) * (size_t)(b->n_owned + 1));
    b->owned[b->n_owned++] = p;
    return p;
#else
    (void)b, (void)t, (void)R, (void)K;
    return NULL;
#endif
}

static bool matrix(fc_bert *b, mat *m, const char *fmt, int l, int64_t R, int64_t K)
{
    char name[128];
    snprintf(name, sizeof name, fmt, l);
    const fc_tensor *t = get(b, name, K, R);
    if (!t) return false;
    *m = (mat){.type = t->type, .w = t->data, .stride = fc_tensor_row_bytes(t), .R = R, .K = K};
    m->panels = make_panels(b, t, R, K);
    return true;
}

/* 1_Pooling/config.json and modules.json. */
static bool load_st_modules(fc_bert *b)
{
    bool bad = false;
    cJSON *mods = read_json(b->path, "modules.json", false, &bad);
    const char *pool_dir = "1_Pooling";
    if (bad) return false;
    if (mods) {
        const cJSON *m;
        if (!cJSON_IsArray(mods)) {
            FC_LOG_ERROR("%s/modules.json: not a list", b->path);
            cJSON_Delete(mods);
            return false;
        }
        cJSON_ArrayForEach(m, mods) {
            const cJSON *ty = cJSON_GetObjectItemCaseSensitive(m, "type");
            const cJSON *pa = cJSON_GetObjectItemCaseSensitive(m, "path");
            const char *t = cJSON_IsString(ty) ? ty->valuestring : "";
            const char *dot = strrchr(t, '.');
            const char *cls = dot ? dot + 1 : t;
            if (!strcmp(cls, "Normalize")) {
                b->normalize = true;
            } else if (!strcmp(cls, "Pooling")) {
                if (cJSON_IsString(pa) && *pa->valuestring && !strstr(pa->valuestring, "..")) pool_dir = pa->valuestring;
            } else if (strcmp(cls, "Transformer")) {
                FC_LOG_ERROR("%s/modules.json: module type '%s' is not supported (Transformer, Pooling, Normalize)",
                             b->path, t);
                cJSON_Delete(mods);
                return false;
            }
        }
    }
    char *pc = fc_xasprintf("%s/config.json", pool_dir);
    cJSON *pool = read_json(b->path, pc, false, &bad);
    free(pc);
    cJSON_Delete(mods);
    if (bad) return false;
    b->pooling = POOL_MEAN;
    if (pool) {
        static const char *modes[] = {"pooling_mode_mean_tokens", "pooling_mode_cls_token", "pooling_mode_max_tokens",
                                      "pooling_mode_mean_sqrt_len_tokens"};
        int n_on = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, pool) {
            if (!it->string || strncmp(it->string, "pooling_mode", 12)) continue;
            if (cJSON_IsString(it)) { /* newer files: "pooling_mode": "mean" */
                const char *v = it->valuestring;
                int k = !strcmp(v, "mean") ? 0 : !strcmp(v, "cls") ? 1 : !strcmp(v, "max") ? 2
                      : !strcmp(v, "mean_sqrt_len_tokens") ? 3 : -1;
                if (k < 0) {
                    FC_LOG_ERROR("%s/%s/config.json: pooling mode '%s' is not supported (mean, cls, max, "
                                 "mean_sqrt_len_tokens)", b->path, pool_dir, v);
                    cJSON_Delete(pool);
                    return false;
                }
                b->pooling = (enum pooling)k;
                n_on++;
                continue;
            }
            if (!cJSON_IsTrue(it)) continue;
            int k = -1;
            for (int i = 0; i < 4; i++)
                if (!strcmp(it->string, modes[i])) k = i;
            if (k < 0) {
                FC_LOG_ERROR("%s/%s/config.json: pooling mode '%s' is not supported (mean, cls, max, "
                             "mean_sqrt_len_tokens)", b->path, pool_dir, it->string);
                cJSON_Delete(pool);
                return false;
            }
            b->pooling = (enum pooling)k;
            n_on++;
        }
        cJSON_Delete(pool);
        if (n_on > 1) {
            /* sentence-transformers concatenates several poolings; we do not */
            FC_LOG_ERROR("%s/%s/config.json: %d pooling modes at once are not supported (one)", b->path, pool_dir,
                         n_on);
            return false;
        }
    }
    cJSON *sb = read_json(b->path, "sentence_bert_config.json", false, &bad);
    if (bad) return false;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(sb, "max_seq_length");
    if (cJSON_IsNumber(ms) && ms->valuedouble >= 2 && ms->valuedouble < 1e7) b->max_seq = (int)ms->valuedouble;
    cJSON_Delete(sb);
    return true;
}

void fc_bert_free(fc_bert *b)
{
    if (!b) return;
    fc_pool_free(b->pool);
    fc_safetensors_free(b->st);
    fc_gguf_free(b->gguf);
    for (int i = 0; i < b->n_owned; i++) free(b->owned[i]);
    free(b->owned);
    free(b->layers);
    free(b->path);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* A GGUF "bert" file as llama.cpp's converter writes it: the
 * hyper-parameters from bert.* keys, pooling from bert.pooling_type (1 mean,
 * 2 cls; absent: mean), L2-normalized (llama.cpp's default for embeddings;
 * the sentence-transformers Normalize module is not recorded in the file),
 * the longest input bert.context_length. */
static bool load_gguf_hparams(fc_bert *b)
{
    const fc_gguf *g = b->gguf;
    fc_gguf_str a;
    if (!fc_gguf_get_str(g, "general.architecture", &a) || a.len != 4 || memcmp(a.ptr, "bert", 4)) {
        FC_LOG_ERROR("%s: general.architecture '%.*s' is not supported (bert)", b->path,
                     fc_gguf_get_str(g, "general.architecture", &a) ? (int)FC_MIN(a.len, 64) : 1,
                     fc_gguf_get_str(g, "general.architecture", &a) ? a.ptr : "?");
        return false;
    }
    static const char *keys[] = {"bert.embedding_length", "bert.block_count", "bert.attention.head_count",
                                 "bert.feed_forward_length", "bert.context_length"};
    int *dst[] = {&b->C, &b->L, &b->NH, &b->FF, &b->n_pos};
    for (int i = 0; i < 5; i++) {
        uint32_t v;
        if (!fc_gguf_get_u32(g, keys[i], &v) || v < 1 || v > 10000000) {
            FC_LOG_ERROR("%s: metadata %s missing or not a positive integer", b->path, keys[i]);
            return false;
        }
        *dst[i] = (int)v;
    }
    bool causal = false;
    if (fc_gguf_get_bool(g, "bert.attention.causal", &causal) && causal) {
        FC_LOG_ERROR("%s: bert.attention.causal is true; only bidirectional encoders are supported", b->path);
        return false;
    }
    float eps;
    b->eps = fc_gguf_get_f32(g, "bert.attention.layer_norm_epsilon", &eps) && eps > 0 && eps < 1 ? eps : 1e-12f;
    uint32_t pt = 1;
    if (fc_gguf_find_key(g, "bert.pooling_type") >= 0 && !fc_gguf_get_u32(g, "bert.pooling_type", &pt)) pt = 99;
    if (pt != 1 && pt != 2) {
        FC_LOG_ERROR("%s: bert.pooling_type %u is not supported (1 mean, 2 cls)", b->path, pt);
        return false;
    }
    b->pooling = pt == 1 ? POOL_MEAN : POOL_CLS;
    b->normalize = true;
    const fc_gguf_tensor_info *te = fc_gguf_find_tensor(g, "token_embd.weight");
    const fc_gguf_tensor_info *tt = fc_gguf_find_tensor(g, "token_types.weight");
    if (!te || te->t.n_dims != 2) {
        FC_LOG_ERROR("%s: tensor 'token_embd.weight' missing or not 2-D", b->path);
        return false;
    }
    b->V = te->t.ne[1] > 0 && te->t.ne[1] < 10000000 ? (int)te->t.ne[1] : 0;
    b->n_types = tt && tt->t.n_dims == 2 && tt->t.ne[1] >= 1 && tt->t.ne[1] < 1000 ? (int)tt->t.ne[1] : 1;
    b->max_seq = b->n_pos;
    return b->V > 0;
}

fc_bert *fc_bert_load(const char *path, int n_threads)
{
    fc_bert *b = fc_xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    b->path = fc_xstrdup(path);
    bool bad = false;
    cJSON *cfg = NULL;
    if (fc_gguf_is_file(path)) {
        if (!(b->gguf = fc_gguf_open(path)) || !load_gguf_hparams(b)) goto fail;
        if (b->C % b->NH) {
            FC_LOG_ERROR("%s: bert.embedding_length %d is not a multiple of bert.attention.head_count %d", path, b->C,
                         b->NH);
            goto fail;
        }
        b->HS = b->C / b->NH;
        goto tensors;
    }
    cfg = read_json(path, "config.json", true, &bad);
    if (!cfg) goto fail;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(cfg, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "gelu"))) {
        FC_LOG_ERROR("%s/config.json: hidden_act '%s' is not supported (gelu)", path,
                     cJSON_IsString(act) ? act->valuestring : "?");
        goto fail;
    }
    const cJSON *pet = cJSON_GetObjectItemCaseSensitive(cfg, "position_embedding_type");
    if (pet && !(cJSON_IsString(pet) && !strcmp(pet->valuestring, "absolute"))) {
        FC_LOG_ERROR("%s/config.json: position_embedding_type '%s' is not supported (absolute)", path,
                     cJSON_IsString(pet) ? pet->valuestring : "?");
        goto fail;
    }
    b->V = int_field(cfg, "vocab_size", -1, path);
    b->C = int_field(cfg, "hidden_size", -1, path);
    b->L = int_field(cfg, "num_hidden_layers", -1, path);
    b->NH = int_field(cfg, "num_attention_heads", -1, path);
    b->FF = int_field(cfg, "intermediate_size", -1, path);
    b->n_pos = int_field(cfg, "max_position_embeddings", 512, path);
    b->n_types = int_field(cfg, "type_vocab_size", 2, path);
    if (b->V < 0 || b->C < 0 || b->L < 0 || b->NH < 0 || b->FF < 0 || b->n_pos < 0 || b->n_types < 0) goto fail;
    if (b->C % b->NH) {
        FC_LOG_ERROR("%s/config.json: hidden_size %d is not a multiple of num_attention_heads %d", path, b->C, b->NH);
        goto fail;
    }
    b->HS = b->C / b->NH;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_eps");
    b->eps = cJSON_IsNumber(eps) && eps->valuedouble > 0 && eps->valuedouble < 1 ? (float)eps->valuedouble : 1e-12f;
    cJSON_Delete(cfg);
    cfg = NULL;
    b->max_seq = b->n_pos;
    if (!load_st_modules(b)) goto fail;
    if (b->max_seq > b->n_pos) b->max_seq = b->n_pos;

    b->st = fc_safetensors_open(path);
    if (!b->st) goto fail;
tensors:
    b->word = as_f32(b, get(b, "embeddings.word_embeddings.weight", b->C, b->V));
    b->pos = as_f32(b, get(b, "embeddings.position_embeddings.weight", b->C, b->n_pos));
    b->type0 = as_f32(b, get(b, "embeddings.token_type_embeddings.weight", b->C, b->n_types));
    b->ln_w = vec(b, "embeddings.LayerNorm.weight", 0, b->C);
    b->ln_b = vec(b, "embeddings.LayerNorm.bias", 0, b->C);
    if (!b->word || !b->pos || !b->type0 || !b->ln_w || !b->ln_b) goto fail;
    b->layers = fc_xcalloc((size_t)b->L, sizeof(bert_layer));
    for (int l = 0; l < b->L; l++) {
        bert_layer *y = &b->layers[l];
        const char *pre = "encoder.layer.%d.";
        char f[160];
#define M(field, name, R, K) (snprintf(f, sizeof f, "%s%s", pre, name), matrix(b, &y->field, f, l, R, K))
#define B(field, name, n) (snprintf(f, sizeof f, "%s%s", pre, name), (y->field = vec(b, f, l, n)) != NULL)
        bool ok = M(q, "attention.self.query.weight", b->C, b->C) && B(bq, "attention.self.query.bias", b->C) &&
                  M(k, "attention.self.key.weight", b->C, b->C) && B(bk, "attention.self.key.bias", b->C) &&
                  M(v, "attention.self.value.weight", b->C, b->C) && B(bv, "attention.self.value.bias", b->C) &&
                  M(o, "attention.output.dense.weight", b->C, b->C) && B(bo, "attention.output.dense.bias", b->C) &&
                  B(ln1_w, "attention.output.LayerNorm.weight", b->C) &&
                  B(ln1_b, "attention.output.LayerNorm.bias", b->C) &&
                  M(up, "intermediate.dense.weight", b->FF, b->C) && B(b_up, "intermediate.dense.bias", b->FF) &&
                  M(down, "output.dense.weight", b->C, b->FF) && B(b_down, "output.dense.bias", b->C) &&
                  B(ln2_w, "output.LayerNorm.weight", b->C) && B(ln2_b, "output.LayerNorm.bias", b->C);
#undef M
#undef B
        if (!ok) goto fail;
    }
    b->pool = fc_pool_new(n_threads);
    return b;
fail:
    cJSON_Delete(cfg);
    fc_bert_free(b);
    return NULL;
}

int fc_bert_dim(const fc_bert *b) { return b->C; }
int fc_bert_max_seq(const fc_bert *b) { return b->max_seq; }
int fc_bert_n_vocab(const fc_bert *b) { return b->V; }
bool fc_bert_normalizes(const fc_bert *b) { return b->normalize; }
const char *fc_bert_pooling(const fc_bert *b) { return pool_names[b->pooling]; }

/* ---- forward pass ---- */

typedef struct fwd {
    const fc_bert *b;
    int N;                   /* tokens in all */
    int n_seq;
    const int *start, *len;  /* (n_seq) each sequence's first token and length */
    const int32_t *tok;      /* (N) */
    const int32_t *pos;      /* (N) */
    float *x;                /* (N, C) the residual stream */
    float *q, *k, *v;        /* (N, C) */
    float *ctx;              /* (N, C) attention output before the projection */
    float *t;                /* (N, C) a branch's output */
    float *h;                /* (N, FF) */
    float *scores;           /* (nth, max len) per thread */
    int max_len;
} fwd;

static void layernorm(float *x, const float *w, const float *bias, int n, float eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    float inv = (float)(1.0 / sqrt(var + eps)), m = (float)mean;
    for (int i = 0; i < n; i++) x[i] = (x[i] - m) * inv * w[i] + bias[i];
}

#ifdef __AVX2__
/* y(N, R) = x(N, K) W^T + bias for the 16 rows of panel p (16 x K, column
 * by column): 6 tokens x 16 rows of accumulators, one broadcast of x and
 * two loads of W per 12 FMAs (the GEMM micro-kernel shape of BLIS/OpenBLAS
 * for AVX2; the accumulators never need a horizontal sum). */
static void panel_mm(const float *P, int64_t K, int64_t R, const float *x, int N, float *y, const float *bias,
                     int64_t p)
{
    const __m256 b0 = _mm256_loadu_ps(bias + p * 16), b1 = _mm256_loadu_ps(bias + p * 16 + 8);
    int t = 0;
    for (; t + 6 <= N; t += 6) {
        __m256 a[6][2];
        for (int i = 0; i < 6; i++) a[i][0] = b0, a[i][1] = b1;
        const float *x0 = x + (size_t)t * K;
        for (int64_t k = 0; k < K; k++) {
            const __m256 w0 = _mm256_load_ps(P + k * 16), w1 = _mm256_load_ps(P + k * 16 + 8);
            for (int i = 0; i < 6; i++) {
                const __m256 xb = _mm256_broadcast_ss(x0 + (size_t)i * K + k);
                a[i][0] = _mm256_fmadd_ps(xb, w0, a[i][0]);
                a[i][1] = _mm256_fmadd_ps(xb, w1, a[i][1]);
            }
        }
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_ps(y + (size_t)(t + i) * R + p * 16, a[i][0]);
            _mm256_storeu_ps(y + (size_t)(t + i) * R + p * 16 + 8, a[i][1]);
        }
    }
    for (; t < N; t++) {
        __m256 a0 = b0, a1 = b1;
        const float *xt = x + (size_t)t * K;
        for (int64_t k = 0; k < K; k++) {
            const __m256 xb = _mm256_broadcast_ss(xt + k);
            a0 = _mm256_fmadd_ps(xb, _mm256_load_ps(P + k * 16), a0);
            a1 = _mm256_fmadd_ps(xb, _mm256_load_ps(P + k * 16 + 8), a1);
        }
        _mm256_storeu_ps(y + (size_t)t * R + p * 16, a0);
        _mm256_storeu_ps(y + (size_t)t * R + p * 16 + 8, a1);
    }
}
#endif

/* y(N, R) = x(N, K) W^T + bias over this thread's rows of W. */
static void mm(const mat *m, const float *x, int N, float *y, const float *bias, int ith, int nth)
{
#ifdef __AVX2__
    if (m->panels) {
        long p0, p1;
        fc_split_range((long)(m->R / 16), ith, nth, 1, &p0, &p1);
        /* tokens in blocks that keep their rows of x in L2 across the panels */
        for (int t0 = 0; t0 < N; t0 += 96) {
            int tn = N - t0 < 96 ? N - t0 : 96;
            for (long p = p0; p < p1; p++)
                panel_mm(m->panels + (size_t)p * m->K * 16, m->K, m->R, x + (size_t)t0 * m->K, tn,
                         y + (size_t)t0 * m->R, bias, p);
        }
        return;
    }
#endif
    long r0, r1;
    fc_split_range((long)m->R, ith, nth, 8, &r0, &r1);
    if (r0 >= r1) return;
    fc_matmul_fast(m->type, m->w, m->stride, m->K, FC_DTYPE_F32, x, sizeof(float) * (size_t)m->K, N, y, m->R, r0,
                   r1);
    for (int t = 0; t < N; t++) {
        float *yt = y + (size_t)t * m->R;
        for (long r = r0; r < r1; r++) yt[r] += bias[r];
    }
}

#ifdef __AVX2__
/* erf(x), Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), odd-extended. */
static inline __m256 erf8(__m256 x)
{
    const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
    const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f),
                                                                         _mm256_set1_ps(1.0f)));
    __m256 y = _mm256_set1_ps(1.061405429f);
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-1.453152027f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(1.421413741f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(-0.284496736f));
    y = _mm256_fmadd_ps(y, t, _mm256_set1_ps(0.254829592f));
    y = _mm256_mul_ps(y, t);
    const __m256 e = fc_exp8(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)));
    const __m256 r = _mm256_fnmadd_ps(y, e, _mm256_set1_ps(1.0f));
    return _mm256_or_ps(r, sign);
}
#endif

/* GELU with the exact erf (transformers' "gelu"): 0.5 x (1 + erf(x / sqrt 2)). */
static void gelu_rows(float *h, int N, int FF, int ith, int nth)
{
    long lo, hi;
    fc_split_range((long)N * FF, ith, nth, 16, &lo, &hi);
    long i = lo;
#ifdef __AVX2__
    for (; i + 8 <= hi; i += 8) {
        __m256 x = _mm256_loadu_ps(h + i);
        __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps((float)M_SQRT1_2)));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x),
                                              _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
#endif
    for (; i < hi; i++) h[i] = 0.5f * h[i] * (1.0f + erff(h[i] * (float)M_SQRT1_2));
}

#ifdef __AVX2__
/* One head of one sequence: for each query, scores against every key,
 * softmax, and the weighted sum of the values, with the HS (8..64) values
 * of a head in registers. */
static void attend_head_avx2(const float *q, const float *k, const float *v, float *ctx, int C, int HS, int t0,
                             int n, int hd, float scale, float *sc)
{
    const int nv = HS / 8;
    for (int i = 0; i < n; i++) {
        const float *qi = q + (size_t)(t0 + i) * C + hd * HS;
        __m256 qv[8];
        for (int d = 0; d < nv; d++) qv[d] = _mm256_mul_ps(_mm256_loadu_ps(qi + 8 * d), _mm256_set1_ps(scale));
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            const float *kj = k + (size_t)(t0 + j) * C + hd * HS;
            __m256 acc = _mm256_mul_ps(qv[0], _mm256_loadu_ps(kj));
            for (int d = 1; d < nv; d++) acc = _mm256_fmadd_ps(qv[d], _mm256_loadu_ps(kj + 8 * d), acc);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            sc[j] = _mm_cvtss_f32(h);
            if (sc[j] > mx) mx = sc[j];
        }
        float sum = 0;
        int j = 0;
        __m256 sv = _mm256_setzero_ps();
        for (; j + 8 <= n; j += 8) {
            __m256 e = fc_exp8(_mm256_sub_ps(_mm256_loadu_ps(sc + j), _mm256_set1_ps(mx)));
            _mm256_storeu_ps(sc + j, e);
            sv = _mm256_add_ps(sv, e);
        }
        float tmp[8];
        _mm256_storeu_ps(tmp, sv);
        for (int u = 0; u < 8; u++) sum += tmp[u];
        for (; j < n; j++) sum += sc[j] = expf(sc[j] - mx);
        __m256 o[8];
        for (int d = 0; d < nv; d++) o[d] = _mm256_setzero_ps();
        for (j = 0; j < n; j++) {
            const float *vj = v + (size_t)(t0 + j) * C + hd * HS;
            const __m256 p = _mm256_set1_ps(sc[j]);
            for (int d = 0; d < nv; d++) o[d] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vj + 8 * d), o[d]);
        }
        const __m256 inv = _mm256_set1_ps(1.0f / sum);
        float *oi = ctx + (size_t)(t0 + i) * C + hd * HS;
        for (int d = 0; d < nv; d++) _mm256_storeu_ps(oi + 8 * d, _mm256_mul_ps(o[d], inv));
    }
}
#endif

static void attention(const fwd *f, int ith, int nth)
{
    const fc_bert *b = f->b;
    int C = b->C, HS = b->HS;
    float scale = 1.0f / sqrtf((float)HS);
    float *sc = f->scores + (size_t)ith * f->max_len;
    long lo, hi;
    fc_split_range((long)f->n_seq * b->NH, ith, nth, 1, &lo, &hi);
    for (long w = lo; w < hi; w++) {
        int s = (int)(w / b->NH), hd = (int)(w % b->NH);
        int t0 = f->start[s], n = f->len[s];
#ifdef __AVX2__
        if (HS % 8 == 0 && HS <= 64) {
            attend_head_avx2(f->q, f->k, f->v, f->ctx, C, HS, t0, n, hd, scale, sc);
            continue;
        }
#endif
        for (int i = 0; i < n; i++) {
            const float *qi = f->q + (size_t)(t0 + i) * C + hd * HS;
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                sc[j] = fc_dot_f32(qi, f->k + (size_t)(t0 + j) * C + hd * HS, HS) * scale;
                if (sc[j] > mx) mx = sc[j];
            }
            float sum = 0;
            for (int j = 0; j < n; j++) sum += sc[j] = expf(sc[j] - mx);
            float *o = f->ctx + (size_t)(t0 + i) * C + hd * HS;
            memset(o, 0, sizeof(float) * (size_t)HS);
            for (int j = 0; j < n; j++) fc_axpy_f32(o, sc[j] / sum, f->v + (size_t)(t0 + j) * C + hd * HS, HS);
        }
    }
}

static void forward_thread(void *ctx, int ith, int nth)
{
    fwd *f = ctx;
    const fc_bert *b = f->b;
    fc_pool *pool = b->pool;
    int C = b->C, N = f->N;
    long t0, t1;
    fc_split_range(N, ith, nth, 1, &t0, &t1);
    for (long t = t0; t < t1; t++) {
        float *x = f->x + (size_t)t * C;
        const float *we = b->word + (size_t)f->tok[t] * C, *pe = b->pos + (size_t)f->pos[t] * C;
        for (int i = 0; i < C; i++) x[i] = we[i] + pe[i] + b->type0[i];
        layernorm(x, b->ln_w, b->ln_b, C, b->eps);
    }
    fc_pool_barrier(pool);
    for (int l = 0; l < b->L; l++) {
        const bert_layer *y = &b->layers[l];
        mm(&y->q, f->x, N, f->q, y->bq, ith, nth);
        mm(&y->k, f->x, N, f->k, y->bk, ith, nth);
        mm(&y->v, f->x, N, f->v, y->bv, ith, nth);
        fc_pool_barrier(pool);
        attention(f, ith, nth);
        fc_pool_barrier(pool);
        mm(&y->o, f->ctx, N, f->t, y->bo, ith, nth);
        fc_pool_barrier(pool);
        for (long t = t0; t < t1; t++) {
            float *x = f->x + (size_t)t * C;
            const float *a = f->t + (size_t)t * C;
            for (int i = 0; i < C; i++) x[i] += a[i];
            layernorm(x, y->ln1_w, y->ln1_b, C, b->eps);
        }
        fc_pool_barrier(pool);
        mm(&y->up, f->x, N, f->h, y->b_up, ith, nth);
        fc_pool_barrier(pool);
        gelu_rows(f->h, N, b->FF, ith, nth);
        fc_pool_barrier(pool);
        mm(&y->down, f->h, N, f->t, y->b_down, ith, nth);
        fc_pool_barrier(pool);
        for (long t = t0; t < t1; t++) {
            float *x = f->x + (size_t)t * C;
            const float *a = f->t + (size_t)t * C;
            for (int i = 0; i < C; i++) x[i] += a[i];
            layernorm(x, y->ln2_w, y->ln2_b, C, b->eps);
        }
        fc_pool_barrier(pool);
    }
}

static void pool_one(const fc_bert *b, const float *x, int n, float *out)
{
    int C = b->C;
    if (b->pooling == POOL_CLS) {
        memcpy(out, x, sizeof(float) * (size_t)C);
    } else if (b->pooling == POOL_MAX) {
        for (int i = 0; i < C; i++) out[i] = x[i];
        for (int t = 1; t < n; t++)
            for (int i = 0; i < C; i++)
                if (x[(size_t)t * C + i] > out[i]) out[i] = x[(size_t)t * C + i];
    } else {
        for (int i = 0; i < C; i++) {
            double s = 0;
            for (int t = 0; t < n; t++) s += x[(size_t)t * C + i];
            out[i] = (float)(b->pooling == POOL_MEAN ? s / n : s / sqrt((double)n));
        }
    }
    if (b->normalize) {
        /* torch.nn.functional.normalize: x / max(||x||, 1e-12) */
        double ss = 0;
        for (int i = 0; i < C; i++) ss += (double)out[i] * out[i];
        double nr = sqrt(ss);
        if (nr < 1e-12) nr = 1e-12;
        for (int i = 0; i < C; i++) out[i] = (float)(out[i] / nr);
    }
}

/* One forward over sequences [s0, s1), whose tokens number N. */
static enum fc_status run_group(fc_bert *b, const int32_t *const *ids, const int *lens, int s0, int s1, int N,
                                float *out)
{
    int C = b->C, ns = s1 - s0, nth = fc_pool_size(b->pool);
    fwd f = {.b = b, .N = N, .n_seq = ns};
    int *start = malloc(sizeof(int) * (size_t)ns);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)N), *pos = malloc(sizeof(int32_t) * (size_t)N);
    size_t nc = (size_t)N * C;
    float *buf = aligned_alloc(64, (sizeof(float) * (6 * nc + (size_t)N * b->FF) + 63) / 64 * 64);
    int max_len = 1;
    for (int s = s0; s < s1; s++) max_len = lens[s] > max_len ? lens[s] : max_len;
    float *scores = malloc(sizeof(float) * (size_t)nth * max_len);
    if (!start || !tok || !pos || !buf || !scores) {
        free(start), free(tok), free(pos), free(buf), free(scores);
        return FC_ERR_NOMEM;
    }
    int t = 0;
    for (int s = s0; s < s1; s++) {
        start[s - s0] = t;
        for (int i = 0; i < lens[s]; i++, t++) tok[t] = ids[s][i], pos[t] = i;
    }
    f.start = start, f.len = lens + s0, f.tok = tok, f.pos = pos;
    f.x = buf, f.q = buf + nc, f.k = buf + 2 * nc, f.v = buf + 3 * nc, f.ctx = buf + 4 * nc, f.t = buf + 5 * nc;
    f.h = buf + 6 * nc;
    f.scores = scores, f.max_len = max_len;
    fc_pool_run(b->pool, forward_thread, &f);
    for (int s = 0; s < ns; s++) pool_one(b, f.x + (size_t)start[s] * C, lens[s0 + s], out + (size_t)(s0 + s) * C);
    free(start), free(tok), free(pos), free(buf), free(scores);
    return FC_OK;
}

/* Tokens per forward pass: enough rows for the matrix kernels to run at
 * full speed, few enough that the activations stay in cache-sized pieces. */
#define GROUP_TOKENS 1024

enum fc_status fc_bert_embed(fc_bert *b, const int32_t *const *ids, const int *lens, int n, float *out)
{
    if (!b || n < 0 || (n && (!ids || !lens || !out))) return FC_ERR_ARG;
    for (int s = 0; s < n; s++) {
        if (lens[s] < 1 || lens[s] > b->n_pos) {
            FC_LOG_ERROR("%s: sequence %d has %d tokens (1..%d)", __func__, s, lens[s], b->n_pos);
            return FC_ERR_ARG;
        }
        for (int i = 0; i < lens[s]; i++)
            if (ids[s][i] < 0 || ids[s][i] >= b->V) {
                FC_LOG_ERROR("%s: token id %d outside the vocabulary (%d)", __func__, ids[s][i], b->V);
                return FC_ERR_ARG;
            }
    }
    enum fc_status st = FC_OK;
    pthread_mutex_lock(&b->lock);
    for (int s0 = 0; s0 < n && st == FC_OK;) {
        int s1 = s0, N = 0;
        while (s1 < n && (s1 == s0 || N + lens[s1] <= GROUP_TOKENS)) N += lens[s1++];
        st = run_group(b, ids, lens, s0, s1, N, out);
        s0 = s1;
    }
    pthread_mutex_unlock(&b->lock);
    return st;
}
