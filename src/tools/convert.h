/*
 * convert.h: a GGUF file -> a Hugging Face model folder (`fastchat convert`,
 * the direction llama.cpp has no tool for; the other direction is the
 * GGUF writer of `fastchat quantize` with the weight types kept).
 *
 * Written into the folder:
 *   config.json            from the GGUF hyper-parameters: model_type and
 *                          architectures of llama (mistral), qwen2, gemma2 and
 *                          phi3, sizes, rms_norm_eps, rope_theta, linear RoPE
 *                          scaling, sliding window, Gemma 2 soft-caps and
 *                          query_pre_attn_scalar, tie_word_embeddings,
 *                          bos/eos ids, torch_dtype
 *   model.safetensors, or model-0000i-of-0000n.safetensors + the index
 *                          model.safetensors.index.json when the tensors pass
 *                          max_shard_bytes (transformers' save_pretrained
 *                          layout, "__metadata__": {"format": "pt"})
 *   tokenizer.json         the GGUF vocabulary as the `tokenizers` library
 *                          stores it (tokenizer/export_hf.c): byte-level BPE
 *                          with its merges, or a SentencePiece vocabulary as
 *                          transformers' fast Llama tokenizer stores it
 *   tokenizer_config.json  chat_template, bos/eos/unk/pad tokens,
 *                          add_bos_token / add_eos_token
 *   generation_config.json bos/eos ids
 *
 * Tensors: names by the architecture tables (model/arch_table.c); the Q/K
 * rows of llama models are put back from llama.cpp's adjacent-pair RoPE
 * layout to transformers' rotate-half layout; Gemma 2 norms are stored as
 * w, not 1 + w. f32/f16/bf16 matrices keep their type; 1-D tensors (GGUF
 * keeps norms in f32) and quantized matrices are written in the output
 * dtype: by default the type of the model's matrices when that is f32, f16
 * or bf16, else f32 (a quantized value d * q + m is exact in f32, so the
 * folder holds exactly the weights the GGUF file computes with).
 *
 * Not done: llama3 and LongRoPE scaling (their GGUF form, a tensor of
 * frequency factors, is not turned back into rope_scaling: refused), MoE
 * and architectures without a table.
 */
#ifndef FC_CONVERT_H
#define FC_CONVERT_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"
#include "tensor/dtype.h"

typedef struct fc_convert_opts {
    uint64_t max_shard_bytes; /* 0: 5 GB, as transformers */
    enum fc_dtype dtype;      /* 1-D and dequantized tensors; FC_DTYPE_NONE: as above */
} fc_convert_opts;

/* FC_OK, or an error logged as "path: what". The folder is created if
 * missing; files of the same names are replaced. */
enum fc_status fc_convert_gguf_to_hf(const char *gguf_path, const char *out_dir, const fc_convert_opts *o);

#endif
