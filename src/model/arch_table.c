/*
 * arch_table.c: the tensors of each supported architecture, one table each
 * (llama.cpp's LLM_TENSOR_NAMES + create_tensor calls are the model): the
 * GGUF name, the Hugging Face name, where the view goes, the expected
 * shape and whether it may be absent. model.c reads these tables to bind
 * the tensors of a GGUF file or a safetensors folder, to check them against
 * the hyper-parameters, to name them (fc_model_tensor_at, in this order) and
 * to list the matrices that packing covers.
 *
 * Adding an architecture = a table here, an fc_arch_info line, and its
 * forward differences in the forward pass.
 */
#include <stddef.h>
#include <string.h>

#include "model_impl.h"

/* the split fields of fc_tensor_spec are zero except in FC_T_SPLIT rows */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define LAYER(field) offsetof(fc_layer, field)
#define MODEL(field) offsetof(fc_model, field)

/* Llama (and Mistral, and Qwen2 with its q/k/v biases): GGUF names as
 * llama.cpp's converter writes them, HF names as transformers'
 * LlamaForCausalLM / Qwen2ForCausalLM state dicts. Shapes are GGUF order
 * (ne0 = the row length). */
static const fc_tensor_spec llama_global[] = {
    {"token_embd.weight", "model.embed_tokens.weight", MODEL(tok_embd), FC_DIM_C, FC_DIM_V, 0},
    {"output_norm.weight", "model.norm.weight", MODEL(output_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"output.weight", "lm_head.weight", MODEL(output), FC_DIM_C, FC_DIM_V, FC_T_TIED | FC_T_MATRIX},
    {"rope_freqs.weight", NULL, MODEL(rope_freqs), FC_DIM_HS2, FC_DIM_1, FC_T_OPTIONAL | FC_T_F32},
    {0},
};

static const fc_tensor_spec llama_layer[] = {
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", LAYER(attn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", LAYER(wq), FC_DIM_C, FC_DIM_Q, FC_T_MATRIX},
    {"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", LAYER(wk), FC_DIM_C, FC_DIM_KV, FC_T_MATRIX},
    {"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", LAYER(wv), FC_DIM_C, FC_DIM_KV, FC_T_MATRIX},
    {"blk.%d.attn_q.bias", "model.layers.%d.self_attn.q_proj.bias", LAYER(bq), FC_DIM_Q, FC_DIM_1, FC_T_BIAS | FC_T_F32},
    {"blk.%d.attn_k.bias", "model.layers.%d.self_attn.k_proj.bias", LAYER(bk), FC_DIM_KV, FC_DIM_1, FC_T_BIAS | FC_T_F32},
    {"blk.%d.attn_v.bias", "model.layers.%d.self_attn.v_proj.bias", LAYER(bv), FC_DIM_KV, FC_DIM_1, FC_T_BIAS | FC_T_F32},
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", LAYER(wo), FC_DIM_Q, FC_DIM_C, FC_T_MATRIX},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", LAYER(ffn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", LAYER(w_gate), FC_DIM_C, FC_DIM_FF, FC_T_MATRIX},
    {"blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", LAYER(w_up), FC_DIM_C, FC_DIM_FF, FC_T_MATRIX},
    {"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", LAYER(w_down), FC_DIM_FF, FC_DIM_C, FC_T_MATRIX},
    {0},
};

/* Gemma 2: tied head, (1 + w) norms, and norms after attention and after
 * the feed-forward (llama.cpp: post_attention_norm, ffn_norm is the
 * pre-feed-forward norm, post_ffw_norm). */
static const fc_tensor_spec gemma2_global[] = {
    {"token_embd.weight", "model.embed_tokens.weight", MODEL(tok_embd), FC_DIM_C, FC_DIM_V, 0},
    {"output_norm.weight", "model.norm.weight", MODEL(output_norm), FC_DIM_C, FC_DIM_1, FC_T_F32 | FC_T_NORM1},
    {"output.weight", "lm_head.weight", MODEL(output), FC_DIM_C, FC_DIM_V, FC_T_TIED | FC_T_MATRIX},
    {0},
};

static const fc_tensor_spec gemma2_layer[] = {
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", LAYER(attn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32 | FC_T_NORM1},
    {"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", LAYER(wq), FC_DIM_C, FC_DIM_Q, FC_T_MATRIX},
    {"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", LAYER(wk), FC_DIM_C, FC_DIM_KV, FC_T_MATRIX},
    {"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", LAYER(wv), FC_DIM_C, FC_DIM_KV, FC_T_MATRIX},
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", LAYER(wo), FC_DIM_Q, FC_DIM_C, FC_T_MATRIX},
    {"blk.%d.post_attention_norm.weight", "model.layers.%d.post_attention_layernorm.weight", LAYER(post_attn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32 | FC_T_NORM1},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.pre_feedforward_layernorm.weight", LAYER(ffn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32 | FC_T_NORM1},
    {"blk.%d.ffn_gate.weight", "model.layers.%d.mlp.gate_proj.weight", LAYER(w_gate), FC_DIM_C, FC_DIM_FF, FC_T_MATRIX},
    {"blk.%d.ffn_up.weight", "model.layers.%d.mlp.up_proj.weight", LAYER(w_up), FC_DIM_C, FC_DIM_FF, FC_T_MATRIX},
    {"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", LAYER(w_down), FC_DIM_FF, FC_DIM_C, FC_T_MATRIX},
    {"blk.%d.post_ffw_norm.weight", "model.layers.%d.post_feedforward_layernorm.weight", LAYER(post_ffn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32 | FC_T_NORM1},
    {0},
};

/* Phi-3: fused q/k/v and gate/up matrices, kept fused in the file (and in
 * the GGUF names llama.cpp uses: attn_qkv, ffn_up of 2 * FF rows, gate
 * first); the forward pass multiplies by row views of them. LongRoPE
 * factors travel in GGUF as two tensors. */
static const fc_tensor_spec phi3_global[] = {
    {"token_embd.weight", "model.embed_tokens.weight", MODEL(tok_embd), FC_DIM_C, FC_DIM_V, 0},
    {"output_norm.weight", "model.norm.weight", MODEL(output_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"output.weight", "lm_head.weight", MODEL(output), FC_DIM_C, FC_DIM_V, FC_T_TIED | FC_T_MATRIX},
    {"rope_factors_long.weight", NULL, MODEL(rope_long), FC_DIM_HS2, FC_DIM_1, FC_T_OPTIONAL | FC_T_F32},
    {"rope_factors_short.weight", NULL, MODEL(rope_short), FC_DIM_HS2, FC_DIM_1, FC_T_OPTIONAL | FC_T_F32},
    {0},
};

#define SPLIT(name, field, of, a, b, ne1) \
    {name, NULL, LAYER(field), FC_DIM_C, ne1, FC_T_SPLIT | FC_T_MATRIX, LAYER(of), a, b}
static const fc_tensor_spec phi3_layer[] = {
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", LAYER(attn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"blk.%d.attn_qkv.weight", "model.layers.%d.self_attn.qkv_proj.weight", LAYER(wqkv), FC_DIM_C, FC_DIM_QKV, 0},
    SPLIT("blk.%d.attn_qkv.weight[q]", wq, wqkv, FC_DIM_0, FC_DIM_0, FC_DIM_Q),
    SPLIT("blk.%d.attn_qkv.weight[k]", wk, wqkv, FC_DIM_Q, FC_DIM_0, FC_DIM_KV),
    SPLIT("blk.%d.attn_qkv.weight[v]", wv, wqkv, FC_DIM_Q, FC_DIM_KV, FC_DIM_KV),
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", LAYER(wo), FC_DIM_Q, FC_DIM_C, FC_T_MATRIX},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", LAYER(ffn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"blk.%d.ffn_up.weight", "model.layers.%d.mlp.gate_up_proj.weight", LAYER(w_gate_up), FC_DIM_C, FC_DIM_FF2, 0},
    SPLIT("blk.%d.ffn_up.weight[gate]", w_gate, w_gate_up, FC_DIM_0, FC_DIM_0, FC_DIM_FF),
    SPLIT("blk.%d.ffn_up.weight[up]", w_up, w_gate_up, FC_DIM_FF, FC_DIM_0, FC_DIM_FF),
    {"blk.%d.ffn_down.weight", "model.layers.%d.mlp.down_proj.weight", LAYER(w_down), FC_DIM_FF, FC_DIM_C, FC_T_MATRIX},
    {0},
};
#undef SPLIT

/* Mixtral: llama's attention; the feed-forward is a router and stacked
 * experts (llama.cpp's names; Hugging Face's block_sparse_moe.gate, and
 * block_sparse_moe.experts.N.w1 / w3 / w2 stacked by moe.c at load). */
static const fc_tensor_spec mixtral_layer[] = {
    {"blk.%d.attn_norm.weight", "model.layers.%d.input_layernorm.weight", LAYER(attn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"blk.%d.attn_q.weight", "model.layers.%d.self_attn.q_proj.weight", LAYER(wq), FC_DIM_C, FC_DIM_Q, FC_T_MATRIX},
    {"blk.%d.attn_k.weight", "model.layers.%d.self_attn.k_proj.weight", LAYER(wk), FC_DIM_C, FC_DIM_KV, FC_T_MATRIX},
    {"blk.%d.attn_v.weight", "model.layers.%d.self_attn.v_proj.weight", LAYER(wv), FC_DIM_C, FC_DIM_KV, FC_T_MATRIX},
    {"blk.%d.attn_output.weight", "model.layers.%d.self_attn.o_proj.weight", LAYER(wo), FC_DIM_Q, FC_DIM_C, FC_T_MATRIX},
    {"blk.%d.ffn_norm.weight", "model.layers.%d.post_attention_layernorm.weight", LAYER(ffn_norm), FC_DIM_C, FC_DIM_1, FC_T_F32},
    {"blk.%d.ffn_gate_inp.weight", "model.layers.%d.block_sparse_moe.gate.weight", LAYER(ffn_gate_inp), FC_DIM_C, FC_DIM_E, FC_T_MATRIX},
    {"blk.%d.ffn_gate_exps.weight", NULL, LAYER(gate_exps), FC_DIM_C, FC_DIM_FF, FC_T_MATRIX | FC_T_EXPERTS},
    {"blk.%d.ffn_up_exps.weight", NULL, LAYER(up_exps), FC_DIM_C, FC_DIM_FF, FC_T_MATRIX | FC_T_EXPERTS},
    {"blk.%d.ffn_down_exps.weight", NULL, LAYER(down_exps), FC_DIM_FF, FC_DIM_C, FC_T_MATRIX | FC_T_EXPERTS},
    {0},
};
static const fc_arch_info mixtral_info = {"llama", FC_ARCH_LLAMA, false, false, llama_global, mixtral_layer};

const fc_arch_info *fc_arch_moe(void) { return &mixtral_info; }

/* llama.cpp's converter permutes the Q and K rows of llama models so that
 * RoPE rotates adjacent pairs; qwen2 is left unpermuted (rotate-half). */
static const fc_arch_info archs[] = {
    {"llama", FC_ARCH_LLAMA, false, false, llama_global, llama_layer},
    {"mistral", FC_ARCH_LLAMA, false, false, llama_global, llama_layer},
    {"qwen2", FC_ARCH_QWEN2, true, true, llama_global, llama_layer},
    {"gemma2", FC_ARCH_GEMMA2, true, false, gemma2_global, gemma2_layer},
    {"phi3", FC_ARCH_PHI3, true, false, phi3_global, phi3_layer},
};

const fc_arch_info *fc_arch_find(const char *name)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (!strcmp(archs[i].name, name)) return &archs[i];
    return NULL;
}

const fc_arch_info *fc_arch_of(enum fc_arch arch)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (archs[i].arch == arch) return &archs[i];
    return NULL;
}

int64_t fc_arch_dim(const fc_model_config *c, enum fc_dim d)
{
    switch (d) {
    case FC_DIM_1: return 1;
    case FC_DIM_C: return c->n_embd;
    case FC_DIM_Q: return (int64_t)c->n_head * c->head_dim;
    case FC_DIM_KV: return (int64_t)c->n_head_kv * c->head_dim;
    case FC_DIM_FF: return c->n_ff;
    case FC_DIM_V: return c->n_vocab;
    case FC_DIM_HS2: return c->head_dim / 2;
    case FC_DIM_QKV: return (int64_t)(c->n_head + 2 * c->n_head_kv) * c->head_dim;
    case FC_DIM_FF2: return 2 * (int64_t)c->n_ff;
    case FC_DIM_0: return 0;
    case FC_DIM_E: return c->n_expert;
    }
    return 0;
}
