/*
 * convert.c: a GGUF file -> a Hugging Face model folder (convert.h).
 *
 * The model is loaded by model.c (so its hyper-parameters are read once, as
 * the engine reads them) and its tensors are walked in the GGUF names of the
 * architecture tables, each mapped to its Hugging Face name by the same
 * table (model_impl.h: read-only use of the tables; nothing in src/model/
 * changes). Output tensors are converted one at a time into one buffer and
 * written shard by shard.
 */
#include "convert.h"

#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "model/model_impl.h"
#include "tensor/dtype.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct hf_tensor {
    char name[160];
    const fc_tensor *src;
    enum fc_dtype type; /* output dtype */
    bool qk_unpermute; /* llama Q/K rows back to rotate-half order */
    bool minus_one;    /* Gemma norm: 1 + w -> w */
    uint64_t nbytes;
} hf_tensor;

static const char *st_dtype(enum fc_dtype t)
{
    return t == FC_DTYPE_F32 ? "F32" : t == FC_DTYPE_F16 ? "F16" : "BF16";
}

static bool plain(enum fc_dtype t) { return t == FC_DTYPE_F32 || t == FC_DTYPE_F16 || t == FC_DTYPE_BF16; }

/* HF row of GGUF row r (llama.cpp's permutation, as cmd_quantize.c applies it) */
static int64_t hf_row_of_gguf_row(int64_t r, int HS)
{
    int64_t h = r / HS, w = r % HS;
    return h * HS + (w % 2) * (HS / 2) + w / 2;
}

/* The spec of GGUF tensor `name` and its layer (-1 global); NULL if none. */
static const fc_tensor_spec *find_spec(const fc_arch_info *a, const char *name, int *layer)
{
    char buf[160];
    for (const fc_tensor_spec *sp = a->global; sp->gguf; sp++)
        if (!strcmp(sp->gguf, name)) {
            *layer = -1;
            return sp;
        }
    int l, n = 0;
    if (sscanf(name, "blk.%d.%n", &l, &n) != 1 || n == 0) return NULL;
    for (const fc_tensor_spec *sp = a->layer; sp->gguf; sp++) {
        snprintf(buf, sizeof buf, sp->gguf, l);
        if (!strcmp(buf, name)) {
            *layer = l;
            return sp;
        }
    }
    return NULL;
}

static bool mkdir_p(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) return false;
            *s = '/';
        }
    return mkdir(p, 0755) == 0 || errno == EEXIST;
}

static enum fc_status write_text(const char *dir, const char *name, fc_str *s)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (fc_str_failed(s)) {
        FC_LOG_ERROR("%s: out of memory", p);
        return FC_ERR_NOMEM;
    }
    return fc_file_write_atomic(p, fc_str_cstr(s), fc_str_len(s));
}

/* One output tensor into buf (nbytes). */
static bool convert_tensor(const hf_tensor *h, const fc_model_config *c, uint8_t *buf, float *row)
{
    const fc_tensor *t = h->src;
    int64_t K = t->ne[0], R = fc_tensor_nelem(t) / K;
    size_t in_row = fc_dtype_row_size(t->type, K), out_row = fc_dtype_row_size(h->type, K);
    for (int64_t r = 0; r < R; r++) {
        int64_t dst = h->qk_unpermute ? hf_row_of_gguf_row(r, c->head_dim) : r;
        const uint8_t *src = (const uint8_t *)t->data + (size_t)r * in_row;
        uint8_t *o = buf + (size_t)dst * out_row;
        if (t->type == h->type && !h->minus_one) {
            memcpy(o, src, out_row);
            continue;
        }
        if (!fc_dequantize_row_ref(t->type, src, row, K)) return false;
        if (h->minus_one)
            for (int64_t i = 0; i < K; i++) row[i] -= 1.0f;
        if (!fc_quantize_row_ref(h->type, row, o, K)) return false;
    }
    return true;
}

static void put_shape(fc_str *s, const fc_tensor *t)
{
    fc_str_putc(s, '[');
    for (int d = t->n_dims - 1; d >= 0; d--) fc_str_printf(s, "%lld%s", (long long)t->ne[d], d ? "," : "");
    fc_str_putc(s, ']');
}

/* Writes tensors [a, b) as one safetensors file. */
static enum fc_status write_shard(const char *path, const hf_tensor *ts, int a, int b, const fc_model_config *c,
                                  uint8_t *buf, float *row)
{
    fc_str h = FC_STR_INIT;
    fc_str_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = a; i < b; i++) {
        fc_str_putc(&h, ',');
        fc_json_put_str(&h, ts[i].name);
        fc_str_printf(&h, ":{\"dtype\":\"%s\",\"shape\":", st_dtype(ts[i].type));
        put_shape(&h, ts[i].src);
        fc_str_printf(&h, ",\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + ts[i].nbytes));
        off += ts[i].nbytes;
    }
    fc_str_putc(&h, '}');
    while (fc_str_len(&h) % 8) fc_str_putc(&h, ' ');
    if (fc_str_failed(&h)) {
        fc_str_free(&h);
        FC_LOG_ERROR("%s: out of memory", path);
        return FC_ERR_NOMEM;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        FC_LOG_ERROR("%s: %s", tmp, strerror(errno));
        fc_str_free(&h);
        return FC_ERR_IO;
    }
    uint64_t hl = fc_str_len(&h);
    uint8_t le[8];
    for (int k = 0; k < 8; k++) le[k] = (uint8_t)(hl >> (8 * k));
    bool ok = fwrite(le, 1, 8, f) == 8 && fwrite(fc_str_cstr(&h), 1, hl, f) == hl;
    fc_str_free(&h);
    for (int i = a; i < b && ok; i++) {
        if (!convert_tensor(&ts[i], c, buf, row)) {
            fclose(f);
            remove(tmp);
            FC_LOG_ERROR("%s: cannot convert %s from %s to %s", path, ts[i].name, fc_dtype_name(ts[i].src->type),
                         fc_dtype_name(ts[i].type));
            return FC_ERR_UNSUPPORTED;
        }
        ok = fwrite(buf, 1, ts[i].nbytes, f) == ts[i].nbytes;
    }
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        FC_LOG_ERROR("%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return FC_ERR_IO;
    }
    return FC_OK;
}

static const char *hf_arch(enum fc_arch a, const char *name, int sliding_window, const char **model_type)
{
    switch (a) {
    case FC_ARCH_QWEN2: *model_type = "qwen2"; return "Qwen2ForCausalLM";
    case FC_ARCH_GEMMA2: *model_type = "gemma2"; return "Gemma2ForCausalLM";
    case FC_ARCH_PHI3: *model_type = "phi3"; return "Phi3ForCausalLM";
    case FC_ARCH_LLAMA: break;
    }
    /* llama.cpp writes Mistral as "llama"; transformers' Llama has no sliding window */
    if (!strcmp(name, "mistral") || sliding_window > 0) {
        *model_type = "mistral";
        return "MistralForCausalLM";
    }
    *model_type = "llama";
    return "LlamaForCausalLM";
}

/* the shortest decimal that reads back as the same float (1e-05, not
 * 9.999999747378752e-06) */
static void put_float(fc_str *s, float v)
{
    char b[32];
    for (int d = 1; d <= 9; d++) {
        snprintf(b, sizeof b, "%.*g", d, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    fc_str_puts(s, b);
}

static void put_config(fc_str *s, const fc_model_config *c, const char *torch_dtype)
{
    const char *mt, *archname = hf_arch(c->arch, c->arch_name, c->sliding_window, &mt);
    fc_str_printf(s, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n", archname, mt);
    fc_str_printf(s, "  \"vocab_size\": %d,\n  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n", c->n_vocab,
                  c->n_embd, c->n_ff);
    fc_str_printf(s, "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n",
                  c->n_layer, c->n_head, c->n_head_kv);
    fc_str_printf(s, "  \"head_dim\": %d,\n  \"max_position_embeddings\": %d,\n", c->head_dim, c->n_ctx_train);
    fc_str_puts(s, "  \"rms_norm_eps\": ");
    put_float(s, c->rms_eps);
    fc_str_puts(s, ",\n  \"rope_theta\": ");
    put_float(s, c->rope_theta);
    fc_str_printf(s, ",\n  \"hidden_act\": \"%s\",\n", c->ffn_act == FC_ACT_GELU_TANH ? "gelu_pytorch_tanh" : "silu");
    if (c->arch == FC_ARCH_GEMMA2) fc_str_puts(s, "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n");
    fc_str_printf(s, "  \"tie_word_embeddings\": %s,\n", c->tied_embeddings ? "true" : "false");
    if (c->arch == FC_ARCH_LLAMA) fc_str_puts(s, "  \"attention_bias\": false,\n  \"mlp_bias\": false,\n");
    if (c->rope_scaling == FC_ROPE_SCALING_LINEAR) {
        fc_str_puts(s, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"type\": \"linear\", \"factor\": ");
        put_float(s, c->rope_factor);
        fc_str_puts(s, "},\n");
    } else {
        fc_str_puts(s, "  \"rope_scaling\": null,\n");
    }
    if (c->sliding_window > 0) {
        fc_str_printf(s, "  \"sliding_window\": %d,\n", c->sliding_window);
        if (c->arch == FC_ARCH_QWEN2)
            fc_str_printf(s, "  \"use_sliding_window\": true,\n  \"max_window_layers\": %d,\n", c->swa_first_layer);
    } else if (c->arch != FC_ARCH_GEMMA2) {
        fc_str_puts(s, "  \"sliding_window\": null,\n");
    }
    if (c->arch == FC_ARCH_GEMMA2) {
        fc_str_puts(s, "  \"attn_logit_softcapping\": ");
        put_float(s, c->attn_softcap);
        fc_str_puts(s, ",\n  \"final_logit_softcapping\": ");
        put_float(s, c->final_softcap);
        fc_str_puts(s, ",\n  \"query_pre_attn_scalar\": ");
        /* attn_scale = query_pre_attn_scalar ** -0.5 */
        fc_json_put_number(s, c->attn_scale > 0 ? (double)(1.0f / (c->attn_scale * c->attn_scale)) : c->head_dim, 6);
        fc_str_puts(s, ",\n");
    }
    if (c->bos_id >= 0) fc_str_printf(s, "  \"bos_token_id\": %d,\n", c->bos_id);
    if (c->eos_id >= 0) fc_str_printf(s, "  \"eos_token_id\": %d,\n", c->eos_id);
    fc_str_printf(s, "  \"torch_dtype\": \"%s\"\n}\n", torch_dtype);
}

/* tokenizer.json and tokenizer_config.json; false only on a write error */
static enum fc_status write_tokenizer(const fc_model *m, const char *path, const char *dir)
{
    const fc_gguf *g = fc_model_gguf(m);
    if (fc_gguf_find_key(g, "tokenizer.ggml.tokens") < 0) {
        fprintf(stderr, "warning: %s has no tokenizer: the folder gets none\n", path);
        return FC_OK;
    }
    fc_tokenizer *tok = fc_tokenizer_from_gguf(g, path);
    if (!tok) return FC_ERR_FORMAT;
    size_t len;
    char *json = fc_tokenizer_to_hf_json(tok, &len);
    enum fc_status st = FC_ERR_UNSUPPORTED;
    if (json) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        st = fc_file_write_atomic(p, json, len);
        free(json);
    }
    if (st == FC_OK) {
        fc_str s = FC_STR_INIT;
        fc_str_printf(&s, "{\n  \"add_bos_token\": %s,\n  \"add_eos_token\": %s,\n",
                      fc_tokenizer_adds_bos(tok) ? "true" : "false", fc_tokenizer_adds_eos(tok) ? "true" : "false");
        const struct { const char *key; int32_t id; } named[] = {
            {"bos_token", fc_tokenizer_bos(tok)}, {"eos_token", fc_tokenizer_eos(tok)},
            {"unk_token", fc_tokenizer_unk(tok)}, {"pad_token", fc_tokenizer_pad(tok)},
        };
        for (size_t i = 0; i < FC_ARRAY_LEN(named); i++) {
            fc_str_printf(&s, "  \"%s\": ", named[i].key);
            const char *txt = named[i].id >= 0 ? fc_tokenizer_token_text(tok, named[i].id) : NULL;
            fc_json_put_str(&s, txt);
            fc_str_puts(&s, ",\n");
        }
        const char *tmpl = fc_tokenizer_chat_template(tok);
        if (tmpl) {
            fc_str_puts(&s, "  \"chat_template\": ");
            fc_json_put_str(&s, tmpl);
            fc_str_puts(&s, ",\n");
        }
        fc_str_printf(&s, "  \"clean_up_tokenization_spaces\": false,\n  \"model_max_length\": %d,\n"
                          "  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n}\n",
                      fc_model_get_config(m)->n_ctx_train);
        st = write_text(dir, "tokenizer_config.json", &s);
        fc_str_free(&s);
    }
    fc_tokenizer_free(tok);
    return st;
}

enum fc_status fc_convert_gguf_to_hf(const char *path, const char *out, const fc_convert_opts *o)
{
    fc_convert_opts opts = {0, -1};
    if (o) opts = *o;
    const uint64_t max_shard = opts.max_shard_bytes ? opts.max_shard_bytes : 5000000000ull;
    fc_model *m = fc_model_load(path);
    if (!m) return FC_ERR_FORMAT;
    enum fc_status st = FC_ERR_UNSUPPORTED;
    hf_tensor *ts = NULL;
    uint8_t *buf = NULL;
    float *row = NULL;
    fc_str s = FC_STR_INIT;
    const fc_model_config *c = fc_model_get_config(m);
    const fc_arch_info *a = fc_arch_find(c->arch_name);
    if (fc_model_format(m) != FC_FORMAT_GGUF) {
        FC_LOG_ERROR("%s: not a GGUF file", path);
        goto done;
    }
    if (!a) {
        FC_LOG_ERROR("%s: architecture %s has no Hugging Face table", path, c->arch_name);
        goto done;
    }
    if (c->rope_scaling == FC_ROPE_SCALING_LLAMA3 || c->rope_scaling == FC_ROPE_SCALING_LONGROPE) {
        FC_LOG_ERROR("%s: %s RoPE scaling is not written back to config.json by this build", path,
                     c->rope_scaling == FC_ROPE_SCALING_LLAMA3 ? "llama3" : "LongRoPE");
        goto done;
    }
    if (c->n_expert > 0) {
        FC_LOG_ERROR("%s: mixture-of-experts (Mixtral) GGUF files are not converted to Hugging Face folders by this build", path);
        goto done;
    }
    int wt = fc_model_weight_type(m);
    enum fc_dtype dtype = opts.dtype >= 0 ? opts.dtype : plain(wt) ? wt : FC_DTYPE_F32;
    if (!plain(dtype)) {
        FC_LOG_ERROR("%s: the output dtype must be f32, f16 or bf16", path);
        st = FC_ERR_ARG;
        goto done;
    }
    int64_t n = 0;
    const char *name;
    const fc_tensor *t;
    while (fc_model_tensor_at(m, n, &name, &t)) n++;
    ts = fc_xcalloc((size_t)FC_MAX(n, 1), sizeof *ts);
    int nt = 0;
    uint64_t biggest = 0, total = 0;
    int64_t widest = 1;
    for (int64_t i = 0; i < n; i++) {
        fc_model_tensor_at(m, i, &name, &t);
        int layer;
        const fc_tensor_spec *sp = find_spec(a, name, &layer);
        if (!sp || !sp->hf || (sp->flags & FC_T_SPLIT)) {
            if (strcmp(name, "rope_freqs.weight") != 0)
                fprintf(stderr, "warning: %s: tensor %s has no Hugging Face name: left out\n", path, name);
            continue;
        }
        hf_tensor *h = &ts[nt++];
        snprintf(h->name, sizeof h->name, sp->hf, layer);
        h->src = t;
        bool matrix = t->n_dims >= 2 && fc_tensor_nelem(t) / t->ne[0] > 1;
        h->type = matrix && plain(t->type) ? t->type : dtype;
        h->qk_unpermute = !a->rope_neox && layer >= 0 &&
                          (!strcmp(sp->hf, "model.layers.%d.self_attn.q_proj.weight") ||
                           !strcmp(sp->hf, "model.layers.%d.self_attn.k_proj.weight"));
        h->minus_one = (sp->flags & FC_T_NORM1) != 0;
        if (t->type != FC_DTYPE_F32 && t->type != h->type && fc_dtype_block_size(t->type) > 1 && !matrix) {
            FC_LOG_ERROR("%s: tensor %s is quantized but not a matrix", path, name);
            goto done;
        }
        h->nbytes = (uint64_t)fc_dtype_row_size(h->type, t->ne[0]) * (uint64_t)(fc_tensor_nelem(t) / t->ne[0]);
        biggest = FC_MAX(biggest, h->nbytes);
        widest = FC_MAX(widest, t->ne[0]);
        total += h->nbytes;
    }
    if (!mkdir_p(out)) {
        FC_LOG_ERROR("%s: cannot create the folder: %s", out, strerror(errno));
        st = FC_ERR_IO;
        goto done;
    }
    buf = fc_xmalloc((size_t)FC_MAX(biggest, 1));
    row = fc_xmalloc(sizeof(float) * (size_t)widest);
    /* shards: greedy in order, a new one when the next tensor would pass max_shard */
    int n_shards = 0;
    int *first = fc_xcalloc((size_t)nt + 1, sizeof(int));
    uint64_t cur = 0;
    for (int i = 0; i < nt; i++) {
        if (i == 0 || (cur > 0 && cur + ts[i].nbytes > max_shard)) {
            first[n_shards++] = i;
            cur = 0;
        }
        cur += ts[i].nbytes;
    }
    first[n_shards] = nt;
    char p[4096], fname[64];
    fc_str idx = FC_STR_INIT;
    fc_str_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
                  (unsigned long long)total);
    st = FC_OK;
    for (int k = 0; k < n_shards && st == FC_OK; k++) {
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        snprintf(p, sizeof p, "%s/%s", out, fname);
        st = write_shard(p, ts, first[k], first[k + 1], c, buf, row);
        for (int i = first[k]; i < first[k + 1]; i++) {
            fc_str_puts(&idx, i ? ",\n    " : "\n    ");
            fc_json_put_str(&idx, ts[i].name);
            fc_str_puts(&idx, ": ");
            fc_json_put_str(&idx, fname);
        }
    }
    fc_str_puts(&idx, "\n  }\n}\n");
    free(first);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", out);
    if (st == FC_OK && n_shards > 1) st = write_text(out, "model.safetensors.index.json", &idx);
    else if (st == FC_OK) remove(p); /* a stale index would name shards that are not there */
    fc_str_free(&idx);
    if (st != FC_OK) goto done;

    put_config(&s, c, dtype == FC_DTYPE_F32 ? "float32" : dtype == FC_DTYPE_F16 ? "float16" : "bfloat16");
    st = write_text(out, "config.json", &s);
    fc_str_reset(&s);
    if (st != FC_OK) goto done;
    fc_str_puts(&s, "{\n  \"_from_model_config\": true");
    if (c->bos_id >= 0) fc_str_printf(&s, ",\n  \"bos_token_id\": %d", c->bos_id);
    if (c->eos_id >= 0) fc_str_printf(&s, ",\n  \"eos_token_id\": %d", c->eos_id);
    fc_str_puts(&s, "\n}\n");
    st = write_text(out, "generation_config.json", &s);
    if (st != FC_OK) goto done;
    st = write_tokenizer(m, path, out);
done:
    fc_str_free(&s);
    free(ts);
    free(buf);
    free(row);
    fc_model_free(m);
    return st;
}
