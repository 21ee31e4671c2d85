/*
 * lora.h: the PEFT LoRA pieces shared by the adapter loader (lora.c, an
 * adapter folder served as a model) and `fastchat apply-lora`
 * (tools/weights.c): one reader of adapter_config.json, one reading of the
 * adapter's tensor names, and one merge arithmetic, so that a served adapter
 * and the merged folder hold the same bits.
 *
 * Merge: W' = W + scale * (B @ A), transposed when fan_in_fan_out;
 * scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora. For each
 * element the product over r is summed in f32 in k order, multiplied by
 * scale in f32 and added to the f32 value of W (PEFT casts the adapter to
 * f32 and adds in place); the caller rounds the row to W's stored type once.
 *
 * Refused by the reader (what neither tool does): peft_type other than LORA,
 * DoRA (use_dora), bias other than "none", rank_pattern, alpha_pattern,
 * modules_to_save.
 */
#ifndef FC_MODEL_LORA_H
#define FC_MODEL_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/fc_base.h"

typedef struct fc_lora_adapter_cfg {
    int64_t r;
    float scale;          /* lora_alpha / r, or lora_alpha / sqrt(r) (use_rslora) */
    bool fan_in_fan_out;  /* the adapted weights are stored (in, out) */
    /* base_model_name_or_path (malloc'd, owned; NULL when absent or null):
     * a relative path is taken from the adapter folder when it is there */
    char *base;
} fc_lora_adapter_cfg;

/* Reads dir/adapter_config.json into out (zeroed first). FC_OK, or an error
 * logged as "path: what" (FC_ERR_IO, FC_ERR_FORMAT, FC_ERR_UNSUPPORTED). */
enum fc_status fc_lora_adapter_cfg_read(const char *dir, fc_lora_adapter_cfg *out);
void fc_lora_adapter_cfg_free(fc_lora_adapter_cfg *c);

/* "base_model.model.X.lora_A[.adapter].weight" -> "X.weight" into out;
 * *which = 'A' or 'B'. False when key is not a lora_A / lora_B weight. */
bool fc_lora_key(const char *key, char *out, size_t len, char *which);

/* Adds the LoRA delta of output row `row_index` (in the adapter's, i.e.
 * Hugging Face's, row order) to row[0 .. K) (f32, K = W's ne[0]).
 * A: r x in and B: out x r as f32, row-major (safetensors order). */
void fc_lora_add_row(const fc_lora_adapter_cfg *c, const float *A, const float *B, int64_t in, int64_t row_index,
                     float *row, int64_t K);

#endif
