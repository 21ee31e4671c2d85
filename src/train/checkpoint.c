/*
 * checkpoint.c: an fc_train_model written as a Hugging Face model folder:
 * model.safetensors (F32, the names and shapes of named_parameters(), tied
 * lm_head left out as save_pretrained leaves it out), config.json and the
 * tokenizer files of the folder the model came from, so that transformers
 * and our own loader read the checkpoint as they read the original.
 *
 * Safetensors layout: u64 little-endian header size, the JSON header padded
 * with spaces to a multiple of 8 bytes, then the tensors back to back.
 * Resume state: optimizer.safetensors holds AdamW's moments as F32 tensors
 * "<param>.exp_avg" / "<param>.exp_avg_sq" (the names of torch's state dict
 * keys, by parameter name rather than index).
 * A ZeRO-sharded optimizer state (dist.h) is written into the same file from
 * chunks the caller hands over (fc_train_save_optimizer_chunks), and each
 * shard reads its slice back, so checkpoints resume at any world size.
 * Not done: sharding (one file of any size), other dtypes.
 */
#include "train.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "model/safetensors.h"

/* Writes nb buffers of the model's layout (each fc_train_model_n_floats
 * floats) as one safetensors file: parameter i of buffer k is named
 * name + suffix[k] (suffix "" for the parameters themselves). */
/* With fn (bufs NULL), the data come from fn in chunks of at most cap floats:
 * the parameters are contiguous in named_parameters order, so buffer k's
 * tensors in the file are its floats [0, n_floats) in order. */
static enum fc_status write_safetensors(fc_train_model *tm, const char *path, const float *const *bufs,
                                        const char *const *suffix, int nb, fc_train_chunk_fn fn,
                                        size_t cap, void *user)
{
    fc_str h;
    fc_str_init(&h, 0);
    fc_str_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int k = 0; k < nb; k++)
        for (int i = 0; i < fc_train_model_n_params(tm); i++) {
            const fc_train_param *p = fc_train_model_param(tm, i);
            char name[160];
            snprintf(name, sizeof name, "%s%s", p->name, suffix[k]);
            fc_str_putc(&h, ',');
            fc_json_put_str(&h, name);
            if (p->n_dims == 2)
                fc_str_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],", (long long)p->shape[0],
                              (long long)p->shape[1]);
            else
                fc_str_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[%lld],", (long long)p->shape[0]);
            fc_str_printf(&h, "\"data_offsets\":[%zu,%zu]}", off, off + p->n * sizeof(float));
            off += p->n * sizeof(float);
        }
    fc_str_putc(&h, '}');
    while (fc_str_len(&h) % 8) fc_str_putc(&h, ' ');
    if (fc_str_failed(&h)) {
        fc_str_free(&h);
        return FC_ERR_NOMEM;
    }
    char *tmp = fc_xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    enum fc_status st = FC_ERR_IO;
    if (!f) {
        FC_LOG_ERROR("%s: %s: %s", __func__, tmp, strerror(errno));
        goto done;
    }
    uint64_t hl = fc_str_len(&h);
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(hl >> (8 * i));
    bool ok = fwrite(le, 1, 8, f) == 8 && fwrite(fc_str_cstr(&h), 1, hl, f) == hl;
    for (int k = 0; !fn && k < nb; k++)
        for (int i = 0; ok && i < fc_train_model_n_params(tm); i++) {
            const fc_train_param *p = fc_train_model_param(tm, i);
            ok = fwrite(bufs[k] + p->offset, sizeof(float), p->n, f) == p->n; /* little-endian hosts */
        }
    if (fn) {
        const size_t n = fc_train_model_n_floats(tm);
        float *chunk = fc_xmalloc(cap * sizeof(float));
        for (int k = 0; ok && k < nb; k++)
            for (size_t off = 0; ok && off < n;) {
                size_t got = fn(k, off, chunk, FC_MIN(cap, n - off), user);
                ok = got > 0 && got <= FC_MIN(cap, n - off) && fwrite(chunk, sizeof(float), got, f) == got;
                off += got;
            }
        free(chunk);
    }
    ok = fflush(f) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0) st = FC_OK;
    else {
        FC_LOG_ERROR("%s: writing %s failed: %s", __func__, path, strerror(errno));
        remove(tmp);
    }
done:
    free(tmp);
    fc_str_free(&h);
    return st;
}

/* Reads nb buffers written by write_safetensors back (every tensor F32 with
 * the parameter's element count); bufs[k] holds the floats [lo, lo + cnt) of
 * the layout (0, n_floats: all). */
static enum fc_status read_safetensors(fc_train_model *tm, const char *path, float *const *bufs,
                                       const char *const *suffix, int nb, size_t lo, size_t cnt)
{
    fc_safetensors *st = fc_safetensors_open(path);
    if (!st) return FC_ERR_IO;
    enum fc_status rc = FC_OK;
    for (int k = 0; rc == FC_OK && k < nb; k++)
        for (int i = 0; rc == FC_OK && i < fc_train_model_n_params(tm); i++) {
            const fc_train_param *p = fc_train_model_param(tm, i);
            char name[160];
            snprintf(name, sizeof name, "%s%s", p->name, suffix[k]);
            const fc_tensor *t = fc_safetensors_find(st, name);
            if (!t || t->type != FC_DTYPE_F32 || (size_t)fc_tensor_nelem(t) != p->n) {
                FC_LOG_ERROR("%s: %s: %s is missing, not F32 or not of %zu elements", __func__, path,
                             name, p->n);
                rc = FC_ERR_FORMAT;
                break;
            }
            const size_t a = FC_MAX(p->offset, lo), b = FC_MIN(p->offset + p->n, lo + cnt);
            if (a < b)
                memcpy(bufs[k] + (a - lo), (const float *)t->data + (a - p->offset), (b - a) * sizeof(float));
        }
    fc_safetensors_free(st);
    return rc;
}

enum fc_status fc_train_load_params(fc_train_model *tm, const char *dir)
{
    char *p = fc_xasprintf(fc_train_model_has_lora(tm) ? "%s/adapter_model.safetensors" : "%s/model.safetensors",
                           dir);
    float *bufs[] = {fc_train_model_params(tm)};
    const char *suffix[] = {""};
    enum fc_status st = read_safetensors(tm, p, bufs, suffix, 1, 0, fc_train_model_n_floats(tm));
    free(p);
    return st;
}

enum fc_status fc_train_save_optimizer(fc_train_model *tm, const fc_adamw *o, const char *dir)
{
    char *p = fc_xasprintf("%s/optimizer.safetensors", dir);
    const float *bufs[] = {o->m, o->v};
    const char *suffix[] = {".exp_avg", ".exp_avg_sq"};
    if (o->lo != 0 || o->n != fc_train_model_n_floats(tm)) {
        FC_LOG_ERROR("%s: a sharded optimizer state is saved with fc_train_save_optimizer_chunks", __func__);
        free(p);
        return FC_ERR_ARG;
    }
    enum fc_status st = write_safetensors(tm, p, bufs, suffix, 2, NULL, 0, NULL);
    free(p);
    return st;
}

enum fc_status fc_train_save_optimizer_chunks(fc_train_model *tm, const char *dir, size_t cap,
                                              fc_train_chunk_fn fn, void *user)
{
    char *p = fc_xasprintf("%s/optimizer.safetensors", dir);
    const char *suffix[] = {".exp_avg", ".exp_avg_sq"};
    enum fc_status st = write_safetensors(tm, p, NULL, suffix, 2, fn, FC_MAX(cap, 1), user);
    free(p);
    return st;
}

enum fc_status fc_train_load_optimizer(fc_train_model *tm, fc_adamw *o, const char *dir)
{
    char *p = fc_xasprintf("%s/optimizer.safetensors", dir);
    float *bufs[] = {o->m, o->v};
    const char *suffix[] = {".exp_avg", ".exp_avg_sq"};
    enum fc_status st = read_safetensors(tm, p, bufs, suffix, 2, o->lo, o->n);
    free(p);
    return st;
}

/* config.json: the source's, marked float32; or one made from the config. */
static enum fc_status write_config(const fc_train_model *tm, const char *dir, const char *src_dir)
{
    cJSON *cfg = NULL;
    if (src_dir) {
        char *p = fc_xasprintf("%s/config.json", src_dir);
        size_t len;
        char *text = fc_file_read(p, &len, 1 << 24);
        free(p);
        if (text) cfg = cJSON_ParseWithLength(text, len);
        free(text);
    }
    const fc_model_config *c = fc_train_model_config(tm);
    if (!cfg) {
        bool qwen = c->arch == FC_ARCH_QWEN2;
        cfg = cJSON_CreateObject();
        cJSON *arch = cJSON_AddArrayToObject(cfg, "architectures");
        cJSON_AddItemToArray(arch, cJSON_CreateString(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
        cJSON_AddStringToObject(cfg, "model_type", qwen ? "qwen2" : "llama");
        cJSON_AddNumberToObject(cfg, "vocab_size", c->n_vocab);
        cJSON_AddNumberToObject(cfg, "hidden_size", c->n_embd);
        cJSON_AddNumberToObject(cfg, "intermediate_size", c->n_ff);
        cJSON_AddNumberToObject(cfg, "num_hidden_layers", c->n_layer);
        cJSON_AddNumberToObject(cfg, "num_attention_heads", c->n_head);
        cJSON_AddNumberToObject(cfg, "num_key_value_heads", c->n_head_kv);
        cJSON_AddNumberToObject(cfg, "head_dim", c->head_dim);
        cJSON_AddNumberToObject(cfg, "max_position_embeddings", c->n_ctx_train);
        cJSON_AddNumberToObject(cfg, "rms_norm_eps", c->rms_eps);
        cJSON_AddNumberToObject(cfg, "rope_theta", c->rope_theta);
        cJSON_AddBoolToObject(cfg, "tie_word_embeddings", c->tied_embeddings);
        cJSON_AddStringToObject(cfg, "hidden_act", "silu");
        if (c->bos_id >= 0) cJSON_AddNumberToObject(cfg, "bos_token_id", c->bos_id);
        if (c->eos_id >= 0) cJSON_AddNumberToObject(cfg, "eos_token_id", c->eos_id);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "torch_dtype");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "dtype");
    cJSON_AddStringToObject(cfg, "torch_dtype", "float32");
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    if (!text) return FC_ERR_NOMEM;
    char *p = fc_xasprintf("%s/config.json", dir);
    enum fc_status st = fc_file_write_atomic(p, text, strlen(text));
    free(p);
    free(text);
    return st;
}

enum fc_status fc_train_save_hf(fc_train_model *tm, const char *dir, const char *src_dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        FC_LOG_ERROR("%s: mkdir %s: %s", __func__, dir, strerror(errno));
        return FC_ERR_IO;
    }
    char *p = fc_xasprintf("%s/model.safetensors", dir);
    const float *bufs[] = {fc_train_model_params(tm)};
    const char *suffix[] = {""};
    enum fc_status st = write_safetensors(tm, p, bufs, suffix, 1, NULL, 0, NULL);
    free(p);
    if (st == FC_OK) st = write_config(tm, dir, src_dir);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                                        "special_tokens_map.json", "generation_config.json",
                                        "chat_template.jinja", "vocab.json", "merges.txt"};
    for (size_t i = 0; st == FC_OK && src_dir && i < FC_ARRAY_LEN(files); i++) {
        char *src = fc_xasprintf("%s/%s", src_dir, files[i]);
        struct stat sb;
        if (stat(src, &sb) == 0) {
            size_t len;
            char *data = fc_file_read(src, &len, 0);
            if (!data) st = FC_ERR_IO;
            else {
                char *dst = fc_xasprintf("%s/%s", dir, files[i]);
                st = fc_file_write_atomic(dst, data, len);
                free(dst);
            }
            free(data);
        }
        free(src);
    }
    return st;
}

enum fc_status fc_train_save_lora(fc_train_model *tm, const char *dir, const char *base)
{
    const fc_lora_config *c = fc_train_model_lora(tm);
    if (!c) {
        FC_LOG_ERROR("%s: the model has no LoRA adapters", __func__);
        return FC_ERR_ARG;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        FC_LOG_ERROR("%s: mkdir %s: %s", __func__, dir, strerror(errno));
        return FC_ERR_IO;
    }
    static const char *const names[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                        "down_proj"};
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "peft_type", "LORA");
    cJSON_AddStringToObject(cfg, "task_type", "CAUSAL_LM");
    cJSON_AddNumberToObject(cfg, "r", c->r);
    cJSON_AddNumberToObject(cfg, "lora_alpha", c->alpha);
    cJSON_AddNumberToObject(cfg, "lora_dropout", c->dropout);
    cJSON *t = cJSON_AddArrayToObject(cfg, "target_modules");
    for (int i = 0; i < 7; i++)
        if (c->targets & (1u << i)) cJSON_AddItemToArray(t, cJSON_CreateString(names[i]));
    cJSON_AddStringToObject(cfg, "bias", "none");
    cJSON_AddBoolToObject(cfg, "fan_in_fan_out", false);
    cJSON_AddBoolToObject(cfg, "use_rslora", false);
    cJSON_AddBoolToObject(cfg, "use_dora", false);
    cJSON_AddBoolToObject(cfg, "inference_mode", true);
    cJSON_AddBoolToObject(cfg, "init_lora_weights", true);
    cJSON_AddNullToObject(cfg, "modules_to_save");
    cJSON_AddNullToObject(cfg, "layers_to_transform");
    cJSON_AddNullToObject(cfg, "revision");
    if (base) cJSON_AddStringToObject(cfg, "base_model_name_or_path", base);
    else cJSON_AddNullToObject(cfg, "base_model_name_or_path");
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    if (!text) return FC_ERR_NOMEM;
    char *p = fc_xasprintf("%s/adapter_config.json", dir);
    enum fc_status st = fc_file_write_atomic(p, text, strlen(text));
    free(p);
    free(text);
    if (st != FC_OK) return st;
    p = fc_xasprintf("%s/adapter_model.safetensors", dir);
    const float *bufs[] = {fc_train_model_params(tm)};
    const char *suffix[] = {""};
    st = write_safetensors(tm, p, bufs, suffix, 1, NULL, 0, NULL);
    free(p);
    return st;
}
