/*
 * model_impl.h: the inside of fc_model and fc_exec, shared by the loader
 * (model.c) and the forward pass (arch_llama.c). Not a public header.
 */
#ifndef FC_MODEL_IMPL_H
#define FC_MODEL_IMPL_H

#include "model.h"
#include "gguf.h"
#include "safetensors.h"
#include "../base/pool.h"

#include <pthread.h>

typedef struct fc_layer {
    fc_tensor attn_norm;            /* (C) */
    fc_tensor wq, wk, wv, wo;       /* (NH*HS, C), (NKV*HS, C), (NKV*HS, C), (C, NH*HS) */
    fc_tensor bq, bk, bv;           /* biases (qwen2), data NULL when absent */
    fc_tensor ffn_norm;             /* (C) */
    fc_tensor w_gate, w_up, w_down; /* (FF, C), (FF, C), (C, FF) */
} fc_layer;

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
    fc_layer *layers;       /* (L) */
    fc_named_tensor *named; /* every tensor of the file we use, in GGUF names */
    int n_named;
    size_t weight_bytes;
    int weight_type;
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
};

#endif
