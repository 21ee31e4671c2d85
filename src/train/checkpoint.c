/*
 * checkpoint.c: an fc_train_model written as a Hugging Face model folder:
 * model.safetensors (F32, the names and shapes of named_parameters(), tied
 * lm_head left out as save_pretrained leaves it out), config.json and the
 * tokenizer files of the folder the model came from, so that transformers
 * and our own loader read the checkpoint as they read the original.
 *
 * Safetensors layout: u64 little-endian header size, the JSON header padded
 * with spaces to a multiple of 8 bytes, then the tensors back to back.
 * Not done: sharding (one file of any size), other dtypes.
 */
#include "train.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>

#include "../base/file.h"
#include "../base/json.h"
#include "../base/str.h"

static enum fc_status write_safetensors(fc_train_model *tm, const char *path)
{
    fc_str h;
    fc_str_init(&h, 0);
    fc_str_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = 0; i < fc_train_model_n_params(tm); i++) {
        const fc_train_param *p = fc_train_model_param(tm, i);
        fc_str_putc(&h, ',');
        fc_json_put_str(&h, p->name);
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
    const float *params = fc_train_model_params(tm);
    for (int i = 0; ok && i < fc_train_model_n_params(tm); i++) {
        const fc_train_param *p = fc_train_model_param(tm, i);
        ok = fwrite(params + p->offset, sizeof(float), p->n, f) == p->n; /* little-endian hosts */
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
    enum fc_status st = write_safetensors(tm, p);
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
