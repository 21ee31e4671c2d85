/*
 * lora.c: a PEFT LoRA adapter folder loaded as a model (fc_model_load_ex
 * calls fc_lora_model_load for a folder with adapter_config.json): the
 * base named by base_model_name_or_path (a local path or a Hub id in the
 * cache, hub.h) with the adapter merged at load, the way FastChat's PEFT
 * worker serves adapters.
 *
 * Sharing: bases are kept in a process-wide table by resolved path with a
 * reference count, so every adapter of one base in one process (the models
 * of one worker, `--model-path A --model-path B`) uses the same loaded base:
 * its file mapping (every tensor the adapter does not target: embeddings,
 * norms, the untouched matrices, the output head), its packed copies, its
 * f32 copies of small tensors and its GGUF metadata. Each adapter model owns
 * only its fc_model / fc_layer structs (views) and one private copy of each
 * matrix it targets, W' = W + scale * B @ A in W's type, computed with
 * apply-lora's arithmetic (tools/weights.h: product summed in f32, added to
 * the stored value in f32, one rounding), so serving an adapter gives the
 * logits of `fastchat apply-lora`'s merged model. The forward pass is
 * unchanged: it sees an ordinary model.
 *
 * A quantized base (a GGUF Q4/Q8 file): each targeted matrix is dequantized,
 * merged in f32 and kept as f16 (not requantized), so the served model is
 * the dequantized base merged, up to the f16 rounding of those matrices;
 * the untouched matrices stay quantized and shared. Phi-3's fused
 * qkv_proj / gate_up_proj are merged as the fused matrices they are, and
 * their q/k/v and gate/up row views follow the merged copy.
 *
 * The adapter_config.json reader, the key names and the merge arithmetic
 * are lora.h's, shared with apply-lora.
 *
 * Refused: --load-8bit with an adapter, and the adapter options lora.h
 * refuses (DoRA, bias, rank_pattern, alpha_pattern, modules_to_save), and
 * non-LoRA keys.
 */
#include "model_impl.h"
#include "lora.h"
#include "format/hub.h"
#include "base/file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct base_ref {
    char *path;
    fc_model *m;
    int refs;
} base_ref;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static base_ref *g_bases;
static int g_n_bases;

static fc_model *base_get(const char *spec)
{
    char *path = NULL;
    if (fc_hub_resolve(spec, NULL, &path) != FC_OK) return NULL;
    char ac[4200];
    snprintf(ac, sizeof ac, "%s/adapter_config.json", path);
    if (access(ac, F_OK) == 0) { /* checked before loading: loading it would come back here */
        FC_LOG_ERROR("%s: the base of an adapter is itself an adapter", path);
        free(path);
        return NULL;
    }
    pthread_mutex_lock(&g_lock);
    fc_model *m = NULL;
    for (int i = 0; i < g_n_bases && !m; i++)
        if (!strcmp(g_bases[i].path, path)) {
            g_bases[i].refs++;
            m = g_bases[i].m;
        }
    if (!m && (m = fc_model_load_ex(path, NULL))) {
        g_bases = fc_xrealloc(g_bases, sizeof *g_bases * (size_t)(g_n_bases + 1));
        g_bases[g_n_bases++] = (base_ref){.path = path, .m = m, .refs = 1};
        path = NULL;
    }
    pthread_mutex_unlock(&g_lock);
    free(path);
    return m;
}

void fc_lora_base_release(fc_model *base)
{
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_n_bases; i++)
        if (g_bases[i].m == base && --g_bases[i].refs == 0) {
            free(g_bases[i].path);
            fc_model_free(base);
            g_bases[i] = g_bases[--g_n_bases];
            break;
        }
    pthread_mutex_unlock(&g_lock);
}

int fc_lora_n_shared_bases(void)
{
    pthread_mutex_lock(&g_lock);
    int n = g_n_bases;
    pthread_mutex_unlock(&g_lock);
    return n;
}

/* ---- lora.h: the config reader, key names and merge arithmetic shared
 * with apply-lora (tools/weights.c) ---- */

enum fc_status fc_lora_adapter_cfg_read(const char *dir, fc_lora_adapter_cfg *out)
{
    memset(out, 0, sizeof *out);
    char p[4096];
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    size_t len;
    char *text = fc_file_read(p, &len, 16u << 20);
    if (!text) {
        FC_LOG_ERROR("%s: no readable adapter_config.json (is this a PEFT adapter folder?)", dir);
        return FC_ERR_IO;
    }
    cJSON *c = cJSON_ParseWithLength(text, len);
    free(text);
    enum fc_status st = FC_ERR_FORMAT;
    if (!cJSON_IsObject(c)) {
        FC_LOG_ERROR("%s: not a JSON object", p);
        goto done;
    }
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(c, "peft_type"),
                *bm = cJSON_GetObjectItemCaseSensitive(c, "base_model_name_or_path"),
                *r = cJSON_GetObjectItemCaseSensitive(c, "r"), *al = cJSON_GetObjectItemCaseSensitive(c, "lora_alpha"),
                *bias = cJSON_GetObjectItemCaseSensitive(c, "bias");
    if (pt && !(cJSON_IsString(pt) && !strcmp(pt->valuestring, "LORA"))) {
        FC_LOG_ERROR("%s: peft_type %s: only LORA adapters are read", p, cJSON_IsString(pt) ? pt->valuestring : "?");
        st = FC_ERR_UNSUPPORTED;
        goto done;
    }
    if (!cJSON_IsNumber(r) || !(r->valuedouble >= 1 && r->valuedouble <= 1e6) || r->valuedouble != floor(r->valuedouble)) {
        FC_LOG_ERROR("%s: \"r\" must be a positive integer", p);
        goto done;
    }
    double alpha = r->valuedouble; /* PEFT's default lora_alpha is 8 = its default r; absent: scale 1 */
    if (al) {
        if (!cJSON_IsNumber(al) || !isfinite(al->valuedouble)) {
            FC_LOG_ERROR("%s: \"lora_alpha\" must be a number", p);
            goto done;
        }
        alpha = al->valuedouble;
    }
    const bool rs = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_rslora"));
    out->r = (int64_t)r->valuedouble;
    out->scale = (float)(rs ? alpha / sqrt(r->valuedouble) : alpha / r->valuedouble);
    out->fan_in_fan_out = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "fan_in_fan_out"));
    st = FC_ERR_UNSUPPORTED;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "use_dora"))) {
        FC_LOG_ERROR("%s: DoRA adapters (use_dora) are not supported by this build", p);
        goto done;
    }
    if (bias && !cJSON_IsNull(bias) && !(cJSON_IsString(bias) && !strcmp(bias->valuestring, "none"))) {
        FC_LOG_ERROR("%s: bias \"%s\": only adapters trained with bias \"none\" are supported", p,
                     cJSON_IsString(bias) ? bias->valuestring : "?");
        goto done;
    }
    static const char *unsupported[] = {"rank_pattern", "alpha_pattern", "modules_to_save"};
    for (size_t i = 0; i < FC_ARRAY_LEN(unsupported); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, unsupported[i]);
        if (v && !cJSON_IsNull(v) && cJSON_GetArraySize(v) > 0) {
            FC_LOG_ERROR("%s: \"%s\" is set; this build supports adapters without it", p, unsupported[i]);
            goto done;
        }
    }
    if (cJSON_IsString(bm) && bm->valuestring[0]) {
        /* a relative base path is taken from the adapter folder when it is there */
        char rel[4096];
        snprintf(rel, sizeof rel, "%s/%s", dir, bm->valuestring);
        out->base = fc_xstrdup(bm->valuestring[0] != '/' && access(bm->valuestring, F_OK) != 0 &&
                                       access(rel, F_OK) == 0 ? rel : bm->valuestring);
    }
    st = FC_OK;
done:
    cJSON_Delete(c);
    return st;
}

void fc_lora_adapter_cfg_free(fc_lora_adapter_cfg *c)
{
    free(c->base);
    c->base = NULL;
}

bool fc_lora_key(const char *key, char *out, size_t len, char *which)
{
    const char *m = strstr(key, ".lora_A."), *mb = strstr(key, ".lora_B.");
    if (!m && !mb) return false;
    if (!m || (mb && mb < m)) {
        m = mb;
        *which = 'B';
    } else {
        *which = 'A';
    }
    const size_t tl = strlen(key);
    if (tl < 7 || strcmp(key + tl - 7, ".weight") != 0) return false;
    const char *s = key;
    static const char prefix[] = "base_model.model.";
    if (!strncmp(s, prefix, sizeof prefix - 1)) s += sizeof prefix - 1;
    snprintf(out, len, "%.*s.weight", (int)(m - s), s);
    return true;
}

void fc_lora_add_row(const fc_lora_adapter_cfg *c, const float *A, const float *B, int64_t in, int64_t row_index,
                     float *row, int64_t K)
{
    const int64_t r = c->r;
    for (int64_t col = 0; col < K; col++) {
        /* W (out, in): row = output o, column = input x; fan_in_fan_out: W (in, out) */
        const int64_t o = c->fan_in_fan_out ? col : row_index, x = c->fan_in_fan_out ? row_index : col;
        float acc = 0.0f;
        for (int64_t k = 0; k < r; k++) acc += B[o * r + k] * A[k * in + x];
        row[col] += acc * c->scale;
    }
}

/* The tensor of model a that Hugging Face name hf names (through the
 * architecture table), or NULL (phi3 split views are not looked up: refused before). */
static fc_tensor *tensor_by_hf(fc_model *a, const char *hf)
{
    char buf[160];
    const fc_arch_info *ai = a->arch_info;
    for (const fc_tensor_spec *sp = ai->global; sp->gguf; sp++)
        if (sp->hf && !(sp->flags & FC_T_SPLIT) && !strcmp(sp->hf, hf)) return (fc_tensor *)((char *)a + sp->offset);
    int l, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &n) != 1 || n == 0 || l < 0 || l >= a->cfg.n_layer) return NULL;
    for (const fc_tensor_spec *sp = ai->layer; sp->gguf; sp++) {
        if (!sp->hf || (sp->flags & FC_T_SPLIT)) continue;
        snprintf(buf, sizeof buf, sp->hf, l);
        if (!strcmp(buf, hf)) return (fc_tensor *)((char *)&a->layers[l] + sp->offset);
    }
    return NULL;
}

static void load_f32(const fc_tensor *t, float *dst)
{
    int64_t n = fc_tensor_nelem(t);
    bool ok = fc_dequantize_row_ref(t->type, t->data, dst, n);
    FC_ASSERT(ok);
}

/* The merged type of a matrix of type t: f32/f16/bf16 stay as they are (the
 * bits apply-lora writes); a quantized matrix is dequantized, merged and
 * kept as f16 (not requantized: the adapter's delta would be lost in the
 * quantization step). */
static enum fc_dtype merged_type(enum fc_dtype t)
{
    return t == FC_DTYPE_F32 || t == FC_DTYPE_F16 || t == FC_DTYPE_BF16 ? t : FC_DTYPE_F16;
}

/* W += scale * B @ A into a private copy of type merged_type(w->type)
 * (apply-lora's order of operations, lora.h) */
static void *merge(const fc_tensor *w, const fc_tensor *la, const fc_tensor *lb, const fc_lora_adapter_cfg *c,
                   bool permuted_qk, int head_dim, enum fc_dtype *out_type)
{
    const int64_t K = w->ne[0], R = fc_tensor_nelem(w) / K, in = la->ne[0];
    float *A = fc_xmalloc(sizeof(float) * (size_t)(c->r * in)), *B = fc_xmalloc(sizeof(float) * (size_t)(lb->ne[1] * c->r));
    load_f32(la, A);
    load_f32(lb, B);
    const enum fc_dtype ot = merged_type(w->type);
    const size_t rs = fc_dtype_row_size(w->type, K), ors = fc_dtype_row_size(ot, K);
    uint8_t *out = fc_xmalloc(ors * (size_t)R);
    float *row = fc_xmalloc(sizeof(float) * (size_t)K);
    for (int64_t i = 0; i < R; i++) {
        bool ok = fc_dequantize_row_ref(w->type, (const uint8_t *)w->data + (size_t)i * rs, row, K);
        /* a GGUF llama base stores Q/K rows in llama.cpp's order: row i is HF row hi */
        int64_t hi = i;
        if (permuted_qk) {
            int64_t h = i / head_dim, x = i % head_dim;
            hi = h * head_dim + (x % 2) * (head_dim / 2) + x / 2;
        }
        fc_lora_add_row(c, A, B, in, hi, row, K);
        ok = ok && fc_quantize_row_ref(ot, row, out + (size_t)i * ors, K);
        FC_ASSERT(ok);
    }
    free(row);
    free(A);
    free(B);
    *out_type = ot;
    return out;
}

/* After the fused phi3 matrix w of layer l got new data: its row views
 * (FC_T_SPLIT: wq/wk/wv of wqkv, w_gate/w_up of w_gate_up) follow it. */
static void repoint_splits(fc_model *a, int l, const fc_tensor *w)
{
    const size_t off = (size_t)((const char *)w - (const char *)&a->layers[l]);
    for (const fc_tensor_spec *sp = a->arch_info->layer; sp->gguf; sp++) {
        if (!(sp->flags & FC_T_SPLIT) || sp->split_of != off) continue;
        fc_tensor *t = (fc_tensor *)((char *)&a->layers[l] + sp->offset);
        const int64_t r0 = fc_arch_dim(&a->cfg, sp->split_row0a) + fc_arch_dim(&a->cfg, sp->split_row0b);
        t->type = w->type;
        t->data = (const uint8_t *)w->data + (size_t)r0 * fc_tensor_row_bytes(w);
        t->nbytes = (size_t)t->ne[1] * fc_tensor_row_bytes(w);
        t->packed = NULL;
    }
}

/* fc_tensor pointer of base b moved to the same field of a */
static const fc_tensor *rebase(const fc_model *b, fc_model *a, const fc_tensor *t)
{
    const char *p = (const char *)t;
    if (p >= (const char *)b && p < (const char *)(b + 1)) return (const fc_tensor *)((char *)a + (p - (const char *)b));
    const char *l0 = (const char *)b->layers, *l1 = (const char *)(b->layers + b->cfg.n_layer);
    if (p >= l0 && p < l1) return (const fc_tensor *)((char *)a->layers + (p - l0));
    return t;
}

fc_model *fc_lora_model_load(const char *dir, const fc_model_load_params *p)
{
    if (p && p->load_8bit) {
        FC_LOG_ERROR("%s: --load-8bit with a LoRA adapter is not supported (merge it with apply-lora first)", dir);
        return NULL;
    }
    fc_lora_adapter_cfg c;
    if (fc_lora_adapter_cfg_read(dir, &c) != FC_OK) return NULL;
    if (!c.base) {
        FC_LOG_ERROR("%s/adapter_config.json: no base_model_name_or_path: which base does the adapter belong to?", dir);
        return NULL;
    }
    fc_model *b = base_get(c.base), *a = NULL;
    fc_safetensors *st = NULL;
    if (!b) {
        FC_LOG_ERROR("%s: base model %s: %s", dir, c.base, fc_last_error());
        goto fail;
    }
    char ap[4096];
    snprintf(ap, sizeof ap, "%s/adapter_model.safetensors", dir);
    if (access(ap, R_OK) != 0) snprintf(ap, sizeof ap, "%s/adapter_model.bin", dir);
    if (!(st = fc_safetensors_open(ap))) goto fail;
    /* the untouched tensors of the base are shared: pack them once, in the base */
    fc_model_pack_weights(b);
    a = fc_xmalloc(sizeof *a);
    *a = *b;
    a->path = fc_xstrdup(b->path); /* the tokenizer is the base's */
    a->layers = fc_xmalloc(sizeof *a->layers * (size_t)FC_MAX(b->cfg.n_layer, 1));
    memcpy(a->layers, b->layers, sizeof *a->layers * (size_t)b->cfg.n_layer);
    a->named = fc_xmalloc(sizeof *a->named * (size_t)FC_MAX(b->n_named, 1));
    for (int i = 0; i < b->n_named; i++) {
        a->named[i] = b->named[i];
        a->named[i].t = rebase(b, a, b->named[i].t);
    }
    a->owned = NULL;
    a->n_owned = 0;
    a->packed = NULL;
    a->packed_bytes = 0;
    a->st = NULL;
    a->lora_base = b;
    pthread_mutex_init(&a->pack_lock, NULL);
    a->pack_done = true; /* the base's packed copies, shared */
    int n_adapted = 0, n_requant = 0;
    for (int64_t i = 0; i < fc_safetensors_n_tensors(st); i++) {
        const char *key = fc_safetensors_name(st, i);
        char hf[1024], which, other[1100];
        if (!fc_lora_key(key, hf, sizeof hf, &which)) {
            FC_LOG_ERROR("%s: tensor %s is not a LoRA A/B weight; only those are served", ap, key);
            goto fail;
        }
        if (which != 'A') continue;
        size_t pre = (size_t)(strstr(key, ".lora_A.") - key);
        snprintf(other, sizeof other, "%.*s.lora_B.%s", (int)pre, key, key + pre + 8);
        const fc_tensor *la = fc_safetensors_tensor(st, i), *lb = fc_safetensors_find(st, other);
        fc_tensor *w = tensor_by_hf(a, hf);
        if (!w || !w->data || w->n_dims != 2) {
            FC_LOG_ERROR("%s: %s adapts %s, which the base (%s) has not as a matrix", ap, key, hf, b->path);
            goto fail;
        }
        if (!lb) {
            FC_LOG_ERROR("%s: %s has no %s", ap, key, other);
            goto fail;
        }
        const int64_t in = c.fan_in_fan_out ? w->ne[1] : w->ne[0], outd = c.fan_in_fan_out ? w->ne[0] : w->ne[1];
        if (la->n_dims != 2 || lb->n_dims != 2 || la->ne[0] != in || lb->ne[1] != outd || lb->ne[0] != la->ne[1] ||
            la->ne[1] != c.r || (la->type != FC_DTYPE_F32 && la->type != FC_DTYPE_F16 && la->type != FC_DTYPE_BF16) ||
            (lb->type != FC_DTYPE_F32 && lb->type != FC_DTYPE_F16 && lb->type != FC_DTYPE_BF16)) {
            FC_LOG_ERROR("%s: the LoRA of %s does not fit its [%lld, %lld] with r = %lld", ap, hf, (long long)w->ne[1],
                         (long long)w->ne[0], (long long)c.r);
            goto fail;
        }
        bool qk = !b->cfg.rope_neox && (strstr(hf, ".q_proj.") || strstr(hf, ".k_proj."));
        enum fc_dtype type;
        void *data = merge(w, la, lb, &c, qk, b->cfg.head_dim, &type);
        a->owned = fc_xrealloc(a->owned, sizeof(void *) * (size_t)(a->n_owned + 1));
        a->owned[a->n_owned++] = data;
        if (type != w->type) n_requant++;
        w->type = type;
        w->data = data;
        w->nbytes = fc_dtype_row_size(type, w->ne[0]) * (size_t)(fc_tensor_nelem(w) / w->ne[0]);
        w->packed = NULL;
        int l;
        if (sscanf(hf, "model.layers.%d.", &l) == 1 && l >= 0 && l < a->cfg.n_layer) repoint_splits(a, l, w);
        n_adapted++;
    }
    if (n_adapted == 0) {
        FC_LOG_ERROR("%s: the adapter holds no lora_A / lora_B weights", ap);
        goto fail;
    }
    if (n_requant)
        FC_LOG_INFO("%s: %d quantized matrices of the base dequantized, merged and kept as f16", dir, n_requant);
    fc_safetensors_free(st);
    fc_lora_adapter_cfg_free(&c);
    return a;
fail:
    fc_safetensors_free(st);
    if (a) fc_model_free(a);
    else if (b) fc_lora_base_release(b);
    fc_lora_adapter_cfg_free(&c);
    return NULL;
}
