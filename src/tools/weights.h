/*
 * weights.h: FastChat's weight tools on Hugging Face safetensors folders:
 * apply-delta and make-delta (fastchat/model/apply_delta.py, make_delta.py:
 * Vicuna's delta weights) and apply-lora (fastchat/model/apply_lora.py:
 * PEFT's merge_and_unload of a LoRA adapter into its base).
 *
 * Arithmetic, tensor by tensor (every tensor of the base, by name):
 *   apply-delta  target = base + delta, in the delta's dtype
 *   make-delta   delta  = target - base, in the target's dtype
 *   apply-lora   W' = W + scale * (B @ A)   (transposed when fan_in_fan_out),
 *                scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora;
 *                in the base's dtype
 * Each operand is first converted to the output dtype (FastChat loads both
 * models with torch_dtype=float16 before adding, so an f32 base is rounded
 * first), then the sum is formed in f32 and rounded once (round to nearest
 * even): what torch's f16/bf16 add computes on the CPU. The LoRA product is
 * summed in f32 (PEFT casts the adapter to f32) and added to the base value
 * in f32 before the one rounding, as PEFT's in-place `weight += delta`.
 * Difference from FastChat: FastChat always writes float16; we keep the
 * dtype named above (f32, f16 or bf16), so an f16 delta gives what FastChat
 * gives and a bf16 or f32 one is not squeezed into f16.
 *
 * Vocabulary growth (FastChat's first apply_delta, for Vicuna's added pad
 * token): when model.embed_tokens.weight / lm_head.weight of the delta
 * (apply) or target (make) has more rows than the base, the base rows are
 * combined with the first rows and the extra rows are taken as they are.
 * Any other shape difference, or a tensor of the base missing from the
 * other model, is an error (FastChat asserts).
 *
 * Output: sharded safetensors as transformers' save_pretrained writes them
 * (model.safetensors, or model-0000i-of-0000n.safetensors plus
 * model.safetensors.index.json with metadata.total_size and weight_map;
 * "__metadata__": {"format": "pt"}), and config.json, generation_config.json
 * and the tokenizer files copied from the delta (apply-delta), the target
 * (make-delta) or the base (apply-lora), as FastChat saves the tokenizer of
 * that model.
 *
 * Memory: inputs are memory-mapped and the output is written tensor by
 * tensor from one buffer the size of the largest output tensor. With
 * low_cpu_mem the pages of each input tensor are dropped from the process
 * once used (fc_safetensors_release), so the peak resident size stays about
 * three tensors instead of the whole of both inputs (FastChat's
 * --low-cpu-mem re-shards to 4 GB pieces for the same end).
 *
 * Inputs: safetensors, or PyTorch .bin checkpoints and adapters
 * (pytorch_model.bin[.index.json], adapter_model.bin; format/torch_bin.h,
 * no pickle code run).
 *
 * Not done: PEFT's rank_pattern / alpha_pattern, DoRA, bias training other than
 * "none", modules_to_save (all refused), pushing to the Hub (--hub-repo-id).
 */
#ifndef FC_WEIGHTS_H
#define FC_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"

typedef struct fc_weights_opts {
    bool low_cpu_mem;          /* drop each input tensor's pages after use */
    uint64_t max_shard_bytes;  /* 0: 5 GB (transformers' "5GB" default) */
    bool quiet;                /* no progress lines on stderr */
} fc_weights_opts;

/* Each writes the folder out (created if missing; files of the same names
 * replaced). opts may be NULL. FC_OK, or an error logged as "path: what". */
enum fc_status fc_weights_apply_delta(const char *base, const char *delta, const char *out,
                                      const fc_weights_opts *opts);
enum fc_status fc_weights_make_delta(const char *base, const char *target, const char *out,
                                     const fc_weights_opts *opts);
enum fc_status fc_weights_apply_lora(const char *base, const char *lora, const char *out,
                                     const fc_weights_opts *opts);

#endif
