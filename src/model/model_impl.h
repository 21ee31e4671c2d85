/*
 * model_impl.h: the inside of fc_model and fc_exec, shared by the loader
 * (model.c) and the forward pass (arch_llama.c). Not a public header.
 */
#ifndef FC_MODEL_IMPL_H
#define FC_MODEL_IMPL_H

#include "model.h"
#include "format/gguf.h"
#include "safetensors.h"
#include "base/pool.h"

#include <pthread.h>

typedef struct fc_layer {
    fc_tensor attn_norm;            /* (C) */
    fc_tensor wq, wk, wv, wo;       /* (NH*HS, C), (NKV*HS, C), (NKV*HS, C), (C, NH*HS) */
    fc_tensor bq, bk, bv;           /* biases (qwen2), data NULL when absent */
    fc_tensor ffn_norm;             /* (C) */
    fc_tensor w_gate, w_up, w_down; /* (FF, C), (FF, C), (C, FF) */
    fc_tensor post_attn_norm;       /* (C) gemma2: norm of the attention output */
    fc_tensor post_ffn_norm;        /* (C) gemma2: norm of the feed-forward output */
    fc_tensor wqkv;                 /* (NH*HS + 2*NKV*HS, C) phi3 fused q/k/v: wq, wk, wv are row views of it */
    fc_tensor w_gate_up;            /* (2*FF, C) phi3 fused gate/up: w_gate, w_up are row views of it */
    /* mixtral (moe.c): the router and the experts stacked in 3-D tensors
     * (GGUF ffn_gate_exps / ffn_up_exps / ffn_down_exps; a Hugging Face
     * folder's per-expert w1 / w3 / w2 are copied into such stacks at load) */
    fc_tensor ffn_gate_inp;         /* (E, C) router */
    fc_tensor gate_exps, up_exps;   /* (E, FF, C) */
    fc_tensor down_exps;            /* (E, C, FF) */
} fc_layer;

/* ---- the tensors of an architecture (arch_table.c) ---- */

/* The sizes a tensor shape is written in. */
enum fc_dim {
    FC_DIM_1 = 0, /* 1: the second dimension of a 1-D tensor */
    FC_DIM_C,     /* n_embd */
    FC_DIM_Q,     /* n_head * head_dim */
    FC_DIM_KV,    /* n_head_kv * head_dim */
    FC_DIM_FF,    /* n_ff */
    FC_DIM_V,     /* n_vocab */
    FC_DIM_HS2,   /* head_dim / 2 */
    FC_DIM_QKV,   /* n_head * head_dim + 2 * n_head_kv * head_dim */
    FC_DIM_FF2,   /* 2 * n_ff */
    FC_DIM_0,     /* 0: a split view's first row offset */
    FC_DIM_E,     /* n_expert */
};

enum fc_tensor_spec_flags {
    FC_T_OPTIONAL = 1, /* may be absent (data NULL) */
    FC_T_BIAS = 2,     /* a q/k/v bias: required when cfg.qkv_bias, which a GGUF file's having one sets */
    FC_T_F32 = 4,      /* small and 1-D: copied out as f32 at load */
    FC_T_MATRIX = 8,   /* multiplied by in the forward pass (packing covers it) */
    FC_T_TIED = 16,    /* absent (or tied_embeddings): the token embeddings stand in */
    FC_T_SPLIT = 32,   /* not in the file: rows [split_row0, +ne1) of the fused tensor at split_of */
    FC_T_NORM1 = 64,   /* a Gemma norm: Hugging Face stores w for (1 + w), GGUF stores 1 + w */
    FC_T_EXPERTS = 128, /* 3-D: ne2 = n_expert (stacked expert matrices, moe.c) */
};

typedef struct fc_tensor_spec {
    const char *gguf;      /* GGUF name, "%d" for the layer; NULL ends a table */
    const char *hf;        /* Hugging Face name; NULL: not in HF checkpoints */
    size_t offset;         /* of the fc_tensor in fc_model (global) or fc_layer (per layer) */
    enum fc_dim ne0, ne1;  /* expected shape, GGUF order (ne0 = row length) */
    unsigned flags;        /* enum fc_tensor_spec_flags */
    size_t split_of;       /* FC_T_SPLIT: offset of the fused tensor (same scope), listed earlier */
    enum fc_dim split_row0a, split_row0b; /* FC_T_SPLIT: first row = dim a + dim b */
} fc_tensor_spec;

typedef struct fc_arch_info {
    const char *name;              /* GGUF general.architecture */
    enum fc_arch arch;
    bool rope_neox;                /* rotate-half RoPE in GGUF files */
    bool qkv_bias;
    const fc_tensor_spec *global;  /* tensors of the model, then... */
    const fc_tensor_spec *layer;   /* ...of each layer; the order is fc_model_tensor_at's */
} fc_arch_info;

/* The architecture of a GGUF general.architecture name / of an fc_arch;
 * NULL when unsupported. */
const fc_arch_info *fc_arch_find(const char *name);
const fc_arch_info *fc_arch_of(enum fc_arch arch);
/* The size d stands for under config c. */
int64_t fc_arch_dim(const fc_model_config *c, enum fc_dim d);

/* The layer table of Mixtral models (GGUF architecture "llama" with
 * llama.expert_count, or a MixtralForCausalLM folder). */
const fc_arch_info *fc_arch_moe(void);

/* Named tensor, for iteration in canonical GGUF naming. */
typedef struct fc_named_tensor {
    char name[96];
    const fc_tensor *t;
} fc_named_tensor;

struct fc_model {
    char *path;
    enum fc_model_format format;
    fc_model_config cfg;
    fc_tensor tok_embd;     /* (V, C) */
    fc_tensor output_norm;  /* (C) */
    fc_tensor output;       /* (V, C); equals tok_embd when tied */
    fc_tensor rope_freqs;   /* (HS/2) f32 frequency divisors (GGUF llama3), data NULL when absent */
    fc_tensor rope_long, rope_short; /* (HS/2) f32 LongRoPE factors (GGUF phi3), data NULL when absent */
    fc_layer *layers;       /* (L) */
    const fc_arch_info *arch_info; /* its tensor tables */
    fc_named_tensor *named; /* every tensor of the file we use, in GGUF names */
    int n_named;
    size_t weight_bytes;
    enum fc_dtype weight_type;
    /* backing storage: exactly one is set */
    fc_gguf *gguf;
    fc_safetensors *st;
    /* converted copies of small tensors (e.g. norms stored as f16/bf16 are
     * upcast to f32 at load): freed with the model */
    void **owned;
    int n_owned;
    /* the packed copies of the matrices (fc_tensor.packed): one anonymous
     * mapping, packed_bytes long */
    void *packed;
    size_t packed_bytes;
    pthread_mutex_t pack_lock;
    bool pack_done;
    /* load_8bit (fc_model_load_params): matrices quantized at load, and
     * whether some were stored only in the packed layout (exact and act8
     * execs are then refused) */
    int n_q8_at_load;
    bool packed_only;
    /* a LoRA adapter model (lora.c): the shared base whose tensors, mapping
     * and metadata this model borrows; NULL for an ordinary model */
    struct fc_model *lora_base;
};

/* lora.c: a PEFT adapter folder as a model (the base merged with the adapter
 * at load, sharing the base's untouched tensors with every other adapter of
 * it in this process); NULL on error (logged). */
fc_model *fc_lora_model_load(const char *dir, const fc_model_load_params *p);
/* Drops one reference to a base taken by fc_lora_model_load. */
void fc_lora_base_release(fc_model *base);

#endif
