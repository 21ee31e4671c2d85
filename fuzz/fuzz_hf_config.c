/*
 * fuzz_hf_config.c: libFuzzer target for the Hugging Face config.json
 * parser (fc_hf_config_parse, src/model/hf_config.c).
 *
 * The input is passed as-is (not NUL-terminated). A config that parses must
 * satisfy the invariants the model code relies on: positive sizes, NKV
 * dividing NH, an even head size, a positive context, finite positive eps
 * and theta, and a positive factor when scaling is on.
 * Seeds: tests/data/fuzz/fuzz_hf_config/.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "model/hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_model_config c;
    if (fc_hf_config_parse((const char *)data, size, "fuzz", &c) != FC_OK) return 0;
    if (c.n_vocab <= 0 || c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 ||
        c.n_ff <= 0 || c.head_dim <= 0 || c.head_dim % 2 || c.n_head % c.n_head_kv || c.n_ctx_train <= 0)
        abort();
    if (!(c.rms_eps > 0 && isfinite(c.rms_eps)) || !(c.rope_theta > 0 && isfinite(c.rope_theta))) abort();
    if (c.rope_scaling != FC_ROPE_SCALING_NONE && !(c.rope_factor > 0 && isfinite(c.rope_factor))) abort();
    if (c.rope_scaling == FC_ROPE_SCALING_LLAMA3 &&
        (!(c.rope_high_freq_factor > c.rope_low_freq_factor) || c.rope_orig_ctx <= 0))
        abort();
    if (!memchr(c.arch_name, 0, sizeof c.arch_name) || !c.rope_neox) abort();
    return 0;
}
