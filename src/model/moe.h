/*
 * moe.h: Mixtral's mixture of experts (model-layer internal): reading the
 * expert counts and tensors at load, and routing a batch's tokens to their
 * experts for the forward pass (arch_llama.c multiplies).
 *
 * The feed-forward of a Mixtral layer, for each token's normed row xn
 * (transformers' MixtralSparseMoeBlock / MixtralTopKRouter):
 *   p = softmax(xn Wr^T)                   over the E experts, in f32
 *   top-k of p (k = num_experts_per_tok), weights w_j = p_j / sum of the k
 *   out = sum_j w_j * down_j(silu(gate_j xn) * up_j xn)
 * Routed in the batch: the tokens of a forward call are grouped per expert
 * (each expert's rows gathered into one block, multiplied once, the results
 * added back into their tokens weighted), so one forward reads each used
 * expert's weights once however many tokens chose it.
 *
 * Storage: every expert matrix of a layer is in a 3-D stack (ne = {K, R, E}),
 * as llama.cpp's GGUF files hold them (blk.N.ffn_gate_exps / ffn_up_exps /
 * ffn_down_exps); a Hugging Face folder's per-expert tensors
 * (model.layers.N.block_sparse_moe.experts.X.w1 / w3 / w2) are copied into
 * such stacks at load, owned by the model, and their file pages dropped.
 */
#ifndef FC_MOE_H
#define FC_MOE_H

#include <stdbool.h>
#include <stdint.h>
#include "model_impl.h"

/* Most experts per layer we load. */
#define FC_MOE_MAX_EXPERTS 256

/* GGUF: "<arch>.expert_count" > 0 makes the model a Mixtral (llama files
 * only); then "<arch>.expert_used_count" is required, 1 <= k <= E. Sets
 * cfg.n_expert, cfg.n_expert_used and m->arch_info. False (logged) on bad
 * metadata; true and nothing set for a dense model. */
bool fc_moe_read_gguf(fc_model *m);

/* Hugging Face folder (cfg.n_expert > 0, tensors bound): stacks each
 * layer's per-expert w1 / w3 / w2 into gate_exps / up_exps / down_exps.
 * False (logged: "path: missing tensor NAME", a wrong shape or type, or an
 * expert beyond num_local_experts in the folder). */
bool fc_moe_stack_hf(fc_model *m);

/* GGUF (cfg.n_expert > 0, tensors bound): a layer without merged stacks
 * whose experts are separate tensors, as older llama.cpp converters wrote
 * them (blk.N.ffn_gate.X.weight, ffn_up.X, ffn_down.X), gets them copied into
 * gate_exps / up_exps / down_exps (owned by the model). False (logged: a
 * missing expert, a wrong shape or type, an expert beyond expert_count). */
bool fc_moe_stack_gguf(fc_model *m);

/* Expert x of a stack: a 2-D view (its packed rows too, when packed). */
fc_tensor fc_moe_expert(const fc_tensor *stack, int x);

/* Per-exec scratch of the routed feed-forward, for up to T_max tokens. */
typedef struct fc_moe_scratch {
    int E, k, T_max;
    float *router;     /* (T, E) router logits */
    float *xin;        /* (T*k, C) the tokens' rows, grouped by expert ("slots") */
    float *g, *u;      /* (T*k, FF) */
    float *d;          /* (T*k, C) the experts' outputs per slot */
    int32_t *count;    /* (E) slots of each expert */
    int32_t *start;    /* (E + 1) first slot of each expert */
    int32_t *slot_tok; /* (T*k) the token of each slot */
    int32_t *tok_slot; /* (T*k) the slot of token t's j-th expert, at t*k + j */
    float *tok_w;      /* (T*k) its weight */
} fc_moe_scratch;

/* NULL if memory ran out (logged). */
fc_moe_scratch *fc_moe_scratch_new(const fc_model_config *c, int T_max);
void fc_moe_scratch_free(fc_moe_scratch *s);

/* From s->router (T rows of E logits): each token's k experts and weights,
 * and the slots grouped by expert (count, start, slot_tok, tok_slot,
 * tok_w). Ties go to the lower expert index. */
void fc_moe_route(fc_moe_scratch *s, int T);

#endif
