/*
 * hf_config.h: reads a Hugging Face config.json into an fc_model_config.
 *
 * Supported model types: "llama" and "mistral" (FC_ARCH_LLAMA, arch_name
 * "llama"), "qwen2" (FC_ARCH_QWEN2, qkv_bias), "gemma2" (FC_ARCH_GEMMA2:
 * Gemma2Config's defaults: head_dim 256, tied, gelu_pytorch_tanh
 * hidden_activation, query_pre_attn_scalar 256, soft-caps 50 / 30 (null:
 * none), sliding_window 4096 on the even layers) and "phi3" (FC_ARCH_PHI3,
 * fused tensors; LongRoPE "longrope" / "su" scaling) and "mixtral" (FC_ARCH_LLAMA
 * with n_expert = num_local_experts (8), n_expert_used = num_experts_per_tok
 * (2), rope_theta 1e6 and no sliding window by default). When "model_type" is
 * absent, "architectures"[0] (LlamaForCausalLM, MistralForCausalLM,
 * Qwen2ForCausalLM, Gemma2ForCausalLM, Phi3ForCausalLM, MixtralForCausalLM) decides. Both the transformers 4.x layout (top-level
 * "rope_theta" and "rope_scaling") and the 5.x layout ("rope_parameters"
 * holding rope_theta and rope_type) are read.
 *
 * Defaults are those of the transformers config classes when a key is absent
 * or null: num_key_value_heads = num_attention_heads, head_dim = hidden_size /
 * num_attention_heads, rms_norm_eps 1e-6, rope_theta 10000,
 * tie_word_embeddings false, bos/eos -1. rope_neox is always true (Hugging
 * Face checkpoints use rotate-half RoPE).
 *
 * n_ctx_train mirrors FastChat's get_context_length (fastchat/utils.py): the
 * first key present among max_position_embeddings, max_sequence_length,
 * seq_length, max_seq_len, model_max_length (else the class default: 2048
 * llama, 131072 mistral, 32768 qwen2, 8192 gemma2, 4096 phi3), times rope_scaling.factor for
 * "linear" scaling. Deliberate departures, so that the advertised context is
 * one the engine computes exactly as transformers does:
 *   - "llama3" scaling: not multiplied (max_position_embeddings is already
 *     the extended length; FastChat's multiplication overstates it 8x);
 *   - "dynamic" (NTK) scaling: loaded as no scaling, not multiplied (inside
 *     max_position_embeddings transformers' dynamic RoPE equals plain RoPE;
 *     beyond it, it changes the base, which we do not implement);
 * Sliding-window attention is read into sliding_window / swa_first_layer /
 * swa_even as transformers 5 applies it: mistral "sliding_window" (absent:
 * 4096, null: none), qwen2 only with "use_sliding_window" and from layer
 * "max_window_layers" (28) on, gemma2 on the even layers, phi3 on all; an
 * explicit "layer_types" list overrides the layer choice (all sliding from
 * some layer on, or the even ones; other patterns are unsupported). The
 * context is not capped by the window.
 * LongRoPE: short_factor / long_factor (head_dim / 2 each, at most
 * FC_ROPE_EXT_MAX), original_max_position_embeddings (the config's own key
 * wins, as transformers 5 does; phi3's default 4096), the attention factor.
 * Other scaling types (yarn, ...) give FC_ERR_UNSUPPORTED, as do
 * activations other than silu / gelu_pytorch_tanh / gelu_new,
 * partial_rotary_factor != 1, and llama's attention_bias / mlp_bias.
 */
#ifndef FC_HF_CONFIG_H
#define FC_HF_CONFIG_H

#include <stddef.h>
#include "base/fc_base.h"
#include "model.h"

/* Parses json[0..len) (need not be NUL-terminated) into *cfg. name is used
 * in error messages ("name: missing field 'hidden_size'"); NULL means
 * "config.json". Returns FC_OK; FC_ERR_FORMAT for invalid JSON, a missing
 * required field (vocab_size, hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size, model type) or inconsistent values
 * (non-positive sizes, NKV not dividing NH, hidden_size not divisible by NH
 * without an explicit head_dim, odd head_dim); FC_ERR_UNSUPPORTED for model
 * types and features we do not implement; FC_ERR_ARG for NULL arguments.
 * The error is logged. *cfg is written only on FC_OK. */
enum fc_status fc_hf_config_parse(const char *json, size_t len, const char *name, fc_model_config *cfg);

/* Reads and parses the file at path (a config.json). Same results as
 * fc_hf_config_parse, plus FC_ERR_IO when the file cannot be read. */
enum fc_status fc_hf_config_load(const char *path, fc_model_config *cfg);

#endif
