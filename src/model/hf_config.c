/*
 * hf_config.c: Hugging Face config.json -> fc_model_config.
 *
 * Mirrors the transformers config classes LlamaConfig, MistralConfig and
 * Qwen2Config (their defaults for absent keys, listed in hf_config.h) and
 * FastChat's get_context_length (fastchat/utils.py) for n_ctx_train, with
 * the departures documented in hf_config.h.
 *
 * Does not read generation_config.json, tokenizer files or weights; does not
 * handle nested multimodal configs ("text_config").
 */
#include "hf_config.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <string.h>

/* Class defaults of transformers for the context length when config.json
 * carries none of FastChat's keys (LlamaConfig 2048, MistralConfig
 * 4096 * 32, Qwen2Config 32768), and MistralConfig's sliding_window 4096. */
#define LLAMA_DEFAULT_CTX 2048
#define MISTRAL_DEFAULT_CTX (4096 * 32)
#define QWEN2_DEFAULT_CTX 32768
#define MISTRAL_DEFAULT_WINDOW 4096
/* Gemma2Config: 8192 positions, head_dim 256, query_pre_attn_scalar 256,
 * soft-caps 50 (attention) and 30 (final); Phi3Config: 4096 positions. */
#define GEMMA2_DEFAULT_CTX 8192
#define GEMMA2_DEFAULT_HEAD_DIM 256
#define PHI3_DEFAULT_CTX 4096

enum model_kind { KIND_LLAMA, KIND_MISTRAL, KIND_QWEN2, KIND_GEMMA2, KIND_PHI3, KIND_MIXTRAL };
/* MixtralConfig: 4096 * 32 positions, rope_theta 1e6, no sliding window,
 * 8 experts, top-2 */
#define MIXTRAL_DEFAULT_THETA 1e6

struct parser {
    const cJSON *root;
    const char *name; /* for messages */
};

/* The value of key in obj, NULL when absent or null (null means "use the
 * default", as in transformers). With a repeated key the last one wins, as
 * Python's json module decides. */
static const cJSON *item(const cJSON *obj, const char *key)
{
    const cJSON *v = NULL, *e;
    if (!cJSON_IsObject(obj)) return NULL;
    cJSON_ArrayForEach(e, obj)
        if (e->string && strcmp(e->string, key) == 0) v = e;
    return cJSON_IsNull(v) ? NULL : v;
}

static bool is_int(const cJSON *v, double lo, double hi)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    return d >= lo && d <= hi && floor(d) == d;
}

/* Integer field in [lo, hi]. Absent or null: *out = def, or FC_ERR_FORMAT
 * when required. */
static enum fc_status get_int(const struct parser *p, const cJSON *obj, const char *key,
                              bool required, int def, int lo, int hi, int *out)
{
    const cJSON *v = item(obj, key);
    if (!v) {
        if (required) {
            FC_LOG_ERROR("%s: missing field '%s'", p->name, key);
            return FC_ERR_FORMAT;
        }
        *out = def;
        return FC_OK;
    }
    if (!is_int(v, lo, hi)) {
        FC_LOG_ERROR("%s: field '%s' must be an integer in [%d, %d]", p->name, key, lo, hi);
        return FC_ERR_FORMAT;
    }
    *out = (int)v->valuedouble;
    return FC_OK;
}

/* Finite number in [FLT_MIN, hi] (so it stays positive as a float). Absent
 * or null: *out = def, or FC_ERR_FORMAT when required. */
static enum fc_status get_pos_float(const struct parser *p, const cJSON *obj, const char *key,
                                    bool required, double def, double hi, double *out)
{
    const cJSON *v = item(obj, key);
    if (!v) {
        if (required) {
            FC_LOG_ERROR("%s: missing field '%s'", p->name, key);
            return FC_ERR_FORMAT;
        }
        *out = def;
        return FC_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= FLT_MIN && v->valuedouble <= hi)) {
        FC_LOG_ERROR("%s: field '%s' must be a positive number up to %g", p->name, key, hi);
        return FC_ERR_FORMAT;
    }
    *out = v->valuedouble;
    return FC_OK;
}

static enum fc_status get_bool(const struct parser *p, const char *key, bool def, bool *out)
{
    const cJSON *v = item(p->root, key);
    if (!v) {
        *out = def;
        return FC_OK;
    }
    if (!cJSON_IsBool(v)) {
        FC_LOG_ERROR("%s: field '%s' must be true or false", p->name, key);
        return FC_ERR_FORMAT;
    }
    *out = cJSON_IsTrue(v);
    return FC_OK;
}

/* bos_token_id / eos_token_id: an integer, a list of them (the first is
 * taken, as the engine's primary stop id; the chat layer reads the full list
 * from generation_config.json), or null/absent (-1). A negative id also
 * means unknown. */
static enum fc_status get_token(const struct parser *p, const char *key, int *out)
{
    const cJSON *v = item(p->root, key);
    *out = -1;
    if (!v) return FC_OK;
    if (cJSON_IsArray(v)) {
        v = cJSON_GetArrayItem(v, 0);
        if (!v) return FC_OK;
    }
    if (!is_int(v, -2147483648.0, 2147483647.0)) {
        FC_LOG_ERROR("%s: field '%s' must be an integer token id or a list of them", p->name, key);
        return FC_ERR_FORMAT;
    }
    if (v->valuedouble >= 0) *out = (int)v->valuedouble;
    return FC_OK;
}

/* ---- model type ---- */

static enum fc_status get_kind(const struct parser *p, enum model_kind *kind)
{
    static const struct { const char *model_type, *arch; enum model_kind kind; } known[] = {
        {"llama", "LlamaForCausalLM", KIND_LLAMA},
        {"mistral", "MistralForCausalLM", KIND_MISTRAL},
        {"qwen2", "Qwen2ForCausalLM", KIND_QWEN2},
        {"gemma2", "Gemma2ForCausalLM", KIND_GEMMA2},
        {"phi3", "Phi3ForCausalLM", KIND_PHI3},
        {"mixtral", "MixtralForCausalLM", KIND_MIXTRAL},
    };
    const cJSON *mt = item(p->root, "model_type");
    if (mt) {
        if (!cJSON_IsString(mt) || !mt->valuestring) {
            FC_LOG_ERROR("%s: field 'model_type' must be a string", p->name);
            return FC_ERR_FORMAT;
        }
        for (size_t i = 0; i < FC_ARRAY_LEN(known); i++) {
            if (strcmp(mt->valuestring, known[i].model_type) == 0) {
                *kind = known[i].kind;
                return FC_OK;
            }
        }
        FC_LOG_ERROR("%s: model_type '%.64s' is not supported (llama, mistral, qwen2, gemma2, phi3, mixtral)", p->name,
                     mt->valuestring);
        return FC_ERR_UNSUPPORTED;
    }
    const cJSON *archs = item(p->root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0) || !a0->valuestring) {
        FC_LOG_ERROR("%s: missing field 'model_type' (and no 'architectures' list)", p->name);
        return FC_ERR_FORMAT;
    }
    for (size_t i = 0; i < FC_ARRAY_LEN(known); i++) {
        if (strcmp(a0->valuestring, known[i].arch) == 0) {
            *kind = known[i].kind;
            return FC_OK;
        }
    }
    FC_LOG_ERROR("%s: architecture '%.64s' is not supported (LlamaForCausalLM, MistralForCausalLM, "
                 "Qwen2ForCausalLM, Gemma2ForCausalLM, Phi3ForCausalLM, MixtralForCausalLM)", p->name, a0->valuestring);
    return FC_ERR_UNSUPPORTED;
}

/* ---- RoPE ---- */

/* One list of LongRoPE factors: head_dim / 2 positive numbers. */
static enum fc_status get_factors(const struct parser *p, const cJSON *sc, const char *key, int n, float *out)
{
    const cJSON *a = item(sc, key), *e;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        FC_LOG_ERROR("%s: longrope '%s' must be a list of %d numbers (head_dim / 2)", p->name, key, n);
        return FC_ERR_FORMAT;
    }
    int i = 0;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= FLT_MIN && e->valuedouble <= 1e6)) {
            FC_LOG_ERROR("%s: longrope '%s'[%d] must be a positive number up to 1e6", p->name, key, i);
            return FC_ERR_FORMAT;
        }
        out[i++] = (float)e->valuedouble;
    }
    return FC_OK;
}

/* LongRoPE (transformers _compute_longrope_parameters): short and long
 * factors; original_max_position_embeddings, the scale (the scaling's
 * "factor", else max_position_embeddings / original), and the attention
 * factor given or sqrt(1 + ln(scale) / ln(original)) (1 when scale <= 1). */
static enum fc_status get_longrope(const struct parser *p, const cJSON *sc, bool phi3, fc_model_config *c)
{
    enum fc_status s;
    const int half = c->head_dim / 2;
    if (half > FC_ROPE_EXT_MAX) {
        FC_LOG_ERROR("%s: longrope with head_dim %d is not supported (at most %d)", p->name, c->head_dim,
                     2 * FC_ROPE_EXT_MAX);
        return FC_ERR_UNSUPPORTED;
    }
    if ((s = get_factors(p, sc, "short_factor", half, c->rope_ext[0])) != FC_OK) return s;
    if ((s = get_factors(p, sc, "long_factor", half, c->rope_ext[1])) != FC_OK) return s;
    int mpe, orig;
    if ((s = get_int(p, p->root, "max_position_embeddings", false, 4096, 1, 1 << 30, &mpe)) != FC_OK) return s;
    /* transformers 5 (standardize_rope_params): a config-level
     * original_max_position_embeddings wins (Phi3Config always has one:
     * 4096 by default), else the scaling object's, else max_position_embeddings */
    if (item(p->root, "original_max_position_embeddings") || phi3) {
        if ((s = get_int(p, p->root, "original_max_position_embeddings", false, 4096, 1, 1 << 30, &orig)) != FC_OK)
            return s;
    } else if ((s = get_int(p, sc, "original_max_position_embeddings", false, mpe, 1, 1 << 30, &orig)) != FC_OK) {
        return s;
    }
    /* the scaling's "factor" when given, else max / original */
    double factor;
    if ((s = get_pos_float(p, sc, "factor", false, (double)mpe / orig, 1e6, &factor)) != FC_OK) return s;
    double af;
    if (item(sc, "attention_factor")) {
        if ((s = get_pos_float(p, sc, "attention_factor", true, 0, 1e3, &af)) != FC_OK) return s;
    } else {
        af = factor <= 1.0 || orig <= 1 ? 1.0 : sqrt(1.0 + log(factor) / log((double)orig));
    }
    c->rope_orig_ctx = orig;
    c->rope_attn_factor = (float)af;
    c->rope_factor = (float)factor;
    return FC_OK;
}

/* Reads rope_theta and the scaling from either layout:
 *   4.x: "rope_theta": x, "rope_scaling": null | {"type"|"rope_type": ..., "factor": ...}
 *   5.x: "rope_parameters": {"rope_theta": x, "rope_type": ..., "factor": ...}
 * dynamic_out is set for "dynamic" (loaded as no scaling; see hf_config.h). */
static enum fc_status get_rope(const struct parser *p, fc_model_config *c, bool *dynamic_out)
{
    enum fc_status s;
    const cJSON *rp = item(p->root, "rope_parameters");
    const cJSON *rs = item(p->root, "rope_scaling");
    if (rp && !cJSON_IsObject(rp)) {
        FC_LOG_ERROR("%s: field 'rope_parameters' must be an object", p->name);
        return FC_ERR_FORMAT;
    }
    if (rs && !cJSON_IsObject(rs)) {
        FC_LOG_ERROR("%s: field 'rope_scaling' must be an object or null", p->name);
        return FC_ERR_FORMAT;
    }
    double theta;
    if (rp && item(rp, "rope_theta"))
        s = get_pos_float(p, rp, "rope_theta", true, 0, 1e12, &theta);
    else
        s = get_pos_float(p, p->root, "rope_theta", false, 10000.0, 1e12, &theta);
    if (s != FC_OK) return s;
    c->rope_theta = (float)theta;

    /* the object that carries the scaling type: rope_parameters when it names
     * one, else rope_scaling */
    const cJSON *sc = NULL;
    if (rp && (item(rp, "rope_type") || item(rp, "type"))) sc = rp;
    else if (rs) sc = rs;
    c->rope_scaling = FC_ROPE_SCALING_NONE;
    c->rope_factor = 1.0f;
    *dynamic_out = false;
    if (!sc) return FC_OK;

    const cJSON *t = item(sc, "rope_type");
    if (!t) t = item(sc, "type");
    if (!t) {
        if (item(sc, "factor")) {
            FC_LOG_ERROR("%s: rope scaling with a factor but no 'rope_type'", p->name);
            return FC_ERR_FORMAT;
        }
        return FC_OK;
    }
    if (!cJSON_IsString(t) || !t->valuestring) {
        FC_LOG_ERROR("%s: field 'rope_type' must be a string", p->name);
        return FC_ERR_FORMAT;
    }
    const char *type = t->valuestring;
    double f, lo, hi;
    if (strcmp(type, "default") == 0) return FC_OK;
    if (strcmp(type, "linear") == 0) {
        if ((s = get_pos_float(p, sc, "factor", true, 0, 1e6, &f)) != FC_OK) return s;
        c->rope_scaling = FC_ROPE_SCALING_LINEAR;
        c->rope_factor = (float)f;
        return FC_OK;
    }
    if (strcmp(type, "dynamic") == 0) {
        *dynamic_out = true;
        return FC_OK;
    }
    if (strcmp(type, "llama3") == 0) {
        if ((s = get_pos_float(p, sc, "factor", true, 0, 1e6, &f)) != FC_OK) return s;
        if ((s = get_pos_float(p, sc, "low_freq_factor", true, 0, 1e6, &lo)) != FC_OK) return s;
        if ((s = get_pos_float(p, sc, "high_freq_factor", true, 0, 1e6, &hi)) != FC_OK) return s;
        if ((s = get_int(p, sc, "original_max_position_embeddings", true, 0, 1, 1 << 30,
                         &c->rope_orig_ctx)) != FC_OK)
            return s;
        /* the smoothing divides by (high - low): transformers' llama3 RoPE
         * (_compute_llama3_parameters) needs high > low */
        if (!(hi > lo)) {
            FC_LOG_ERROR("%s: llama3 rope scaling needs high_freq_factor > low_freq_factor", p->name);
            return FC_ERR_FORMAT;
        }
        c->rope_scaling = FC_ROPE_SCALING_LLAMA3;
        c->rope_factor = (float)f;
        c->rope_low_freq_factor = (float)lo;
        c->rope_high_freq_factor = (float)hi;
        return FC_OK;
    }
    if (strcmp(type, "longrope") == 0 || strcmp(type, "su") == 0) {
        if ((s = get_longrope(p, sc, c->arch == FC_ARCH_PHI3, c)) != FC_OK) return s;
        c->rope_scaling = FC_ROPE_SCALING_LONGROPE;
        return FC_OK;
    }
    FC_LOG_ERROR("%s: rope scaling type '%.32s' is not supported (linear, llama3, dynamic, longrope)", p->name, type);
    return FC_ERR_UNSUPPORTED;
}

/* ---- context length ---- */

/* FastChat's get_context_length: the first key present, times the linear
 * factor; the class default when none is present. */
static enum fc_status get_ctx(const struct parser *p, enum model_kind kind, fc_model_config *c)
{
    static const char *keys[] = {"max_position_embeddings", "max_sequence_length", "seq_length",
                                 "max_seq_len", "model_max_length"};
    int n = kind == KIND_MISTRAL || kind == KIND_MIXTRAL ? MISTRAL_DEFAULT_CTX : kind == KIND_QWEN2 ? QWEN2_DEFAULT_CTX
            : kind == KIND_GEMMA2 ? GEMMA2_DEFAULT_CTX : kind == KIND_PHI3 ? PHI3_DEFAULT_CTX
                                                                            : LLAMA_DEFAULT_CTX;
    for (size_t i = 0; i < FC_ARRAY_LEN(keys); i++) {
        if (item(p->root, keys[i])) {
            enum fc_status s = get_int(p, p->root, keys[i], true, 0, 1, 2147483647, &n);
            if (s != FC_OK) return s;
            break;
        }
    }
    if (c->rope_scaling == FC_ROPE_SCALING_LINEAR) {
        double scaled = floor((double)c->rope_factor * n); /* Python int() of a positive float */
        if (!(scaled >= 1.0 && scaled <= 2147483647.0)) {
            FC_LOG_ERROR("%s: context length %d times rope factor %g is out of range", p->name, n,
                         (double)c->rope_factor);
            return FC_ERR_FORMAT;
        }
        n = (int)scaled;
    }
    c->n_ctx_train = n;
    return FC_OK;
}

/* The sliding-window attention: the window (mistral's default 4096 when
 * the key is absent; null: none; qwen2 only with use_sliding_window, gemma2
 * default 4096) and which layers use it: "layer_types" when given (all
 * layers from some index on, or the even ones), else qwen2's
 * max_window_layers (layers >= it slide), gemma2's even layers, every layer
 * for the others. */
static enum fc_status get_sliding_window(const struct parser *p, enum model_kind kind, fc_model_config *c)
{
    enum fc_status s;
    int window = 0;
    const cJSON *v = item(p->root, "sliding_window");
    const bool present = v || cJSON_GetObjectItemCaseSensitive(p->root, "sliding_window");
    if (v) {
        if ((s = get_int(p, p->root, "sliding_window", true, 0, 1, 2147483647, &window)) != FC_OK) return s;
    } else if (!present && (kind == KIND_MISTRAL || kind == KIND_GEMMA2)) {
        window = MISTRAL_DEFAULT_WINDOW;
    }
    c->swa_first_layer = 0;
    c->swa_even = kind == KIND_GEMMA2;
    if (kind == KIND_QWEN2) {
        bool use;
        if ((s = get_bool(p, "use_sliding_window", false, &use)) != FC_OK) return s;
        if (!use) window = 0;
        if ((s = get_int(p, p->root, "max_window_layers", false, 28, 0, 1 << 20, &c->swa_first_layer)) != FC_OK)
            return s;
    }
    const cJSON *lt = item(p->root, "layer_types");
    if (lt) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != c->n_layer) {
            FC_LOG_ERROR("%s: field 'layer_types' must be a list of %d strings", p->name, c->n_layer);
            return FC_ERR_FORMAT;
        }
        int first = -1, n_slide = 0, l = 0;
        bool from = true, even = true;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            const bool slide = cJSON_IsString(e) && e->valuestring && strcmp(e->valuestring, "sliding_attention") == 0;
            if (!slide && !(cJSON_IsString(e) && e->valuestring && strcmp(e->valuestring, "full_attention") == 0)) {
                FC_LOG_ERROR("%s: layer_types[%d] is not 'sliding_attention' or 'full_attention'", p->name, l);
                return FC_ERR_UNSUPPORTED;
            }
            if (slide && first < 0) first = l;
            if (slide) n_slide++;
            if (first >= 0 && !slide) from = false;
            if (slide != (l % 2 == 0)) even = false;
            l++;
        }
        if (n_slide == 0) {
            window = 0;
        } else if (from) {
            c->swa_first_layer = first;
            c->swa_even = false;
        } else if (even) {
            c->swa_first_layer = 0;
            c->swa_even = true;
        } else {
            FC_LOG_ERROR("%s: this pattern of sliding and full attention layers is not supported", p->name);
            return FC_ERR_UNSUPPORTED;
        }
    }
    c->sliding_window = window;
    return FC_OK;
}

/* Mixtral: num_local_experts (8) experts, num_experts_per_tok (2) used, and
 * MixtralConfig's rope_theta 1e6 when neither layout gives one. */
static enum fc_status get_experts(const struct parser *p, fc_model_config *c)
{
    enum fc_status s;
    if ((s = get_int(p, p->root, "num_local_experts", false, 8, 1, 256, &c->n_expert)) != FC_OK) return s;
    if ((s = get_int(p, p->root, "num_experts_per_tok", false, 2, 1, 256, &c->n_expert_used)) != FC_OK) return s;
    if (c->n_expert_used > c->n_expert) {
        FC_LOG_ERROR("%s: num_experts_per_tok %d exceeds num_local_experts %d", p->name, c->n_expert_used,
                     c->n_expert);
        return FC_ERR_FORMAT;
    }
    const cJSON *rp = item(p->root, "rope_parameters");
    if (!item(p->root, "rope_theta") && !(rp && item(rp, "rope_theta"))) c->rope_theta = (float)MIXTRAL_DEFAULT_THETA;
    return FC_OK;
}

/* ---- public API ---- */

#define TRY(x) do { if ((s = (x)) != FC_OK) goto fail; } while (0)

enum fc_status fc_hf_config_parse(const char *json, size_t len, const char *name, fc_model_config *cfg)
{
    if (!name) name = "config.json";
    if ((!json && len) || !cfg) {
        FC_LOG_ERROR("%s: %s: NULL argument", __func__, name);
        return FC_ERR_ARG;
    }
    enum fc_status s = FC_OK;
    struct parser p = {NULL, name};
    cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
    p.root = root;
    if (!cJSON_IsObject(root)) {
        FC_LOG_ERROR("%s: not a JSON object", name);
        s = FC_ERR_FORMAT;
        goto fail;
    }

    fc_model_config c;
    memset(&c, 0, sizeof c);
    enum model_kind kind;
    TRY(get_kind(&p, &kind));
    c.arch = kind == KIND_QWEN2 ? FC_ARCH_QWEN2 : kind == KIND_GEMMA2 ? FC_ARCH_GEMMA2
           : kind == KIND_PHI3 ? FC_ARCH_PHI3 : FC_ARCH_LLAMA;
    snprintf(c.arch_name, sizeof c.arch_name, "%s", kind == KIND_QWEN2 ? "qwen2" : kind == KIND_GEMMA2 ? "gemma2"
             : kind == KIND_PHI3 ? "phi3" : "llama");
    c.qkv_bias = kind == KIND_QWEN2;
    c.rope_neox = true;

    /* gemma2 reads hidden_activation (gelu_pytorch_tanh by default) */
    const cJSON *act = item(root, kind == KIND_GEMMA2 ? "hidden_activation" : "hidden_act");
    if (kind == KIND_GEMMA2 && !act) act = item(root, "hidden_act");
    const char *act_name = cJSON_IsString(act) && act->valuestring ? act->valuestring : act ? "?" : NULL;
    c.ffn_act = kind == KIND_GEMMA2 ? FC_ACT_GELU_TANH : FC_ACT_SILU;
    if (act_name) {
        if (strcmp(act_name, "silu") == 0) {
            c.ffn_act = FC_ACT_SILU;
        } else if (strcmp(act_name, "gelu_pytorch_tanh") == 0 || strcmp(act_name, "gelu_new") == 0) {
            c.ffn_act = FC_ACT_GELU_TANH;
        } else {
            FC_LOG_ERROR("%s: hidden activation '%.32s' is not supported (silu, gelu_pytorch_tanh)", name, act_name);
            s = FC_ERR_UNSUPPORTED;
            goto fail;
        }
    }
    double prf;
    const cJSON *rpar = item(root, "rope_parameters");
    TRY(get_pos_float(&p, cJSON_IsObject(rpar) && item(rpar, "partial_rotary_factor") ? rpar : root,
                      "partial_rotary_factor", false, 1.0, 1.0, &prf));
    if (prf != 1.0) {
        FC_LOG_ERROR("%s: partial_rotary_factor %g is not supported (1.0)", name, prf);
        s = FC_ERR_UNSUPPORTED;
        goto fail;
    }
    if (kind != KIND_QWEN2) {
        bool attn_bias, mlp_bias;
        TRY(get_bool(&p, "attention_bias", false, &attn_bias));
        TRY(get_bool(&p, "mlp_bias", false, &mlp_bias));
        if (attn_bias || mlp_bias) {
            FC_LOG_ERROR("%s: %s is not supported", name, attn_bias ? "attention_bias" : "mlp_bias");
            s = FC_ERR_UNSUPPORTED;
            goto fail;
        }
    }

    TRY(get_int(&p, root, "vocab_size", true, 0, 1, 1 << 24, &c.n_vocab));
    TRY(get_int(&p, root, "hidden_size", true, 0, 1, 1 << 20, &c.n_embd));
    TRY(get_int(&p, root, "num_hidden_layers", true, 0, 1, 4096, &c.n_layer));
    TRY(get_int(&p, root, "num_attention_heads", true, 0, 1, 4096, &c.n_head));
    TRY(get_int(&p, root, "num_key_value_heads", false, c.n_head, 1, 4096, &c.n_head_kv));
    TRY(get_int(&p, root, "intermediate_size", true, 0, 1, 1 << 22, &c.n_ff));
    if (item(root, "head_dim") || kind == KIND_GEMMA2) {
        TRY(get_int(&p, root, "head_dim", false, GEMMA2_DEFAULT_HEAD_DIM, 1, 4096, &c.head_dim));
    } else {
        if (c.n_embd % c.n_head != 0) {
            FC_LOG_ERROR("%s: hidden_size %d is not divisible by num_attention_heads %d", name,
                         c.n_embd, c.n_head);
            s = FC_ERR_FORMAT;
            goto fail;
        }
        c.head_dim = c.n_embd / c.n_head;
    }
    if (c.head_dim % 2 != 0) {
        FC_LOG_ERROR("%s: head_dim %d must be even for RoPE", name, c.head_dim);
        s = FC_ERR_FORMAT;
        goto fail;
    }
    if (c.n_head % c.n_head_kv != 0) {
        FC_LOG_ERROR("%s: num_key_value_heads %d does not divide num_attention_heads %d", name,
                     c.n_head_kv, c.n_head);
        s = FC_ERR_FORMAT;
        goto fail;
    }

    double eps;
    TRY(get_pos_float(&p, root, "rms_norm_eps", false, 1e-6, 1.0, &eps));
    c.rms_eps = (float)eps;
    bool dynamic;
    TRY(get_rope(&p, &c, &dynamic));
    TRY(get_ctx(&p, kind, &c));
    if (dynamic)
        FC_LOG_WARN("%s: dynamic NTK rope scaling: context kept at the trained %d tokens", name, c.n_ctx_train);
    TRY(get_sliding_window(&p, kind, &c));
    if (kind == KIND_MIXTRAL) TRY(get_experts(&p, &c));
    TRY(get_bool(&p, "tie_word_embeddings", kind == KIND_GEMMA2, &c.tied_embeddings));
    if (kind == KIND_GEMMA2) {
        double q, cap;
        TRY(get_pos_float(&p, root, "query_pre_attn_scalar", false, 256.0, 1e9, &q));
        c.attn_scale = (float)(1.0 / sqrt(q)); /* transformers: query_pre_attn_scalar ** -0.5 */
        /* the soft-caps: absent = the class default, null = none */
        bool present = cJSON_GetObjectItemCaseSensitive(root, "attn_logit_softcapping") != NULL;
        TRY(get_pos_float(&p, root, "attn_logit_softcapping", false, present ? 0.0 : 50.0, 1e9, &cap));
        c.attn_softcap = (float)cap;
        present = cJSON_GetObjectItemCaseSensitive(root, "final_logit_softcapping") != NULL;
        TRY(get_pos_float(&p, root, "final_logit_softcapping", false, present ? 0.0 : 30.0, 1e9, &cap));
        c.final_softcap = (float)cap;
        c.embd_scale = true;
        c.post_norms = true;
    }
    TRY(get_token(&p, "bos_token_id", &c.bos_id));
    TRY(get_token(&p, "eos_token_id", &c.eos_id));

    *cfg = c;
    cJSON_Delete(root);
    return FC_OK;
fail:
    cJSON_Delete(root);
    return s;
}

enum fc_status fc_hf_config_load(const char *path, fc_model_config *cfg)
{
    if (!path || !cfg) {
        FC_LOG_ERROR("%s: NULL argument", __func__);
        return FC_ERR_ARG;
    }
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return FC_ERR_IO; /* logged as "path: reason" */
    enum fc_status s = fc_hf_config_parse((const char *)m->data, m->size, path, cfg);
    fc_mmap_free(m);
    return s;
}
