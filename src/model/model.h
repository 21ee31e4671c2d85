/*
 * model.h: a loaded language model (fc_model), the batch of tokens it
 * evaluates (fc_batch), the execution context that runs it (fc_exec), and
 * the one forward entry point used by everything above this layer.
 *
 * fc_model is immutable after fc_model_load: weights stay memory-mapped in
 * their stored type, and the model may be shared read-only by any number of
 * threads. (The one change after load: the first fast-mode fc_exec_new adds
 * the row-interleaved copies of the matrices, fc_model_pack_weights, under
 * a lock.) Per-run state (scratch buffers, thread pool, exact/fast mode)
 * lives in an fc_exec; per-sequence state in an fc_kv_cache (kv_cache.h).
 */
#ifndef FC_MODEL_H
#define FC_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"
#include "tensor/tensor.h"

enum fc_arch { FC_ARCH_LLAMA = 0, FC_ARCH_QWEN2 = 1, FC_ARCH_GEMMA2 = 2, FC_ARCH_PHI3 = 3 };

enum fc_rope_scaling {
    FC_ROPE_SCALING_NONE = 0,
    FC_ROPE_SCALING_LINEAR = 1, /* positions divided by factor */
    FC_ROPE_SCALING_LLAMA3 = 2, /* per-frequency smoothing (Llama 3.1) */
    FC_ROPE_SCALING_LONGROPE = 3, /* Phi-3 LongRoPE / SuRoPE: per-frequency factors, short or long */
};

/* Feed-forward activation of the gate: silu (SwiGLU) or tanh-approximated
 * gelu (GeGLU, Gemma's gelu_pytorch_tanh). */
enum fc_ffn_act { FC_ACT_SILU = 0, FC_ACT_GELU_TANH = 1 };

/* Most LongRoPE factors per set (head_dim / 2). */
#define FC_ROPE_EXT_MAX 256

enum fc_model_format { FC_FORMAT_GGUF = 0, FC_FORMAT_HF = 1 };

/* Hyper-parameters, named with the dimension letters used everywhere:
 * V vocab, C embedding width, L layers, NH query heads, NKV key/value heads,
 * HS head size, FF feed-forward width. */
typedef struct fc_model_config {
    enum fc_arch arch;
    char arch_name[32];       /* "llama", "qwen2" as in the file */
    int n_vocab;              /* V */
    int n_embd;               /* C */
    int n_layer;              /* L */
    int n_head;               /* NH */
    int n_head_kv;            /* NKV, divides NH */
    int head_dim;             /* HS (usually C / NH) */
    int n_ff;                 /* FF */
    int n_ctx_train;          /* context length the model was trained with */
    float rms_eps;
    float rope_theta;
    enum fc_rope_scaling rope_scaling;
    float rope_factor;                /* linear and llama3 */
    float rope_low_freq_factor;       /* llama3 */
    float rope_high_freq_factor;      /* llama3 */
    int rope_orig_ctx;                /* llama3, longrope: original_max_position_embeddings */
    /* longrope: frequency i is divided by rope_ext[long][i] (long = the
     * sequence reaches past rope_orig_ctx, decided per forward pass and
     * sequence, as transformers does per call), and cos/sin are multiplied
     * by rope_attn_factor */
    float rope_ext[2][FC_ROPE_EXT_MAX];
    float rope_attn_factor;
    /* true: rotate-half pairs (i, i + HS/2) as Hugging Face computes RoPE;
     * false: adjacent pairs (2i, 2i+1), the layout llama.cpp's converter
     * produces by permuting the Q and K rows of llama models. */
    bool rope_neox;
    bool tied_embeddings;     /* output projection is the token embedding */
    bool qkv_bias;            /* qwen2 */
    /* sliding-window attention: a token at position p attends to positions
     * p - sliding_window + 1 .. p in the sliding layers (0: none). Layer l
     * slides when l >= swa_first_layer and, with swa_even, l is even
     * (Gemma 2 alternates sliding and global layers, starting sliding). */
    int sliding_window;
    int swa_first_layer;
    bool swa_even;
    /* Gemma 2 */
    float attn_softcap;       /* scores -> cap * tanh(score / cap); 0: none */
    float final_softcap;      /* logits likewise; 0: none */
    float attn_scale;         /* score scale; 0: 1 / sqrt(HS) */
    bool embd_scale;          /* embeddings times sqrt(C) (rounded to the weights' float type as transformers) */
    bool post_norms;          /* post-attention and post-feed-forward norms on the branch outputs */
    enum fc_ffn_act ffn_act;
    int bos_id, eos_id;       /* -1 when unknown */
    /* Mixtral (mixture of experts, moe.c): n_expert > 0 replaces the
     * feed-forward by n_expert SwiGLU experts of width n_ff, of which each
     * token uses the n_expert_used its router ranks highest */
    int n_expert;             /* E (0: a dense feed-forward) */
    int n_expert_used;        /* top-k */
} fc_model_config;

typedef struct fc_model fc_model;

/* Loads a GGUF file or a Hugging Face folder (config.json + safetensors), or
 * a Hub repo id "org/name[@revision]" from the Hugging Face cache (hub.h;
 * fc_model_path is then the local path). NULL on error, logged as "path:
 * what is wrong". */
fc_model *fc_model_load(const char *path);
void fc_model_free(fc_model *m);

/* Options of fc_model_load_ex; zeroed = fc_model_load. */
typedef struct fc_model_load_params {
    /* FastChat's --load-8bit: every f32/f16/bf16 matrix (rows a multiple of
     * 32 values, token embeddings included; norms and biases stay f32) is
     * quantized to q8_0 at load, tensor by tensor, and the file's pages of
     * each one are dropped once read, so the resident weights are about
     * 8.5 bits per value instead of 16 or 32. Already quantized tensors are
     * kept as they are. */
    bool load_8bit;
    /* With load_8bit: store the q8_0 matrices in the file layout that exact
     * and --act8 execs read. Otherwise (the default) they are quantized
     * straight into the row-interleaved layout of the fast mode (pack.c),
     * one copy and no later repacking, and fc_exec_new then refuses exact
     * and act8 execs on this model. */
    bool plain_layout;
} fc_model_load_params;

/* fc_model_load with options (p may be NULL). */
fc_model *fc_model_load_ex(const char *path, const fc_model_load_params *p);
/* Tensors quantized by load_8bit (0 without it). */
int fc_model_n_quantized_at_load(const fc_model *m);

const fc_model_config *fc_model_get_config(const fc_model *m);
enum fc_model_format fc_model_format(const fc_model *m);
const char *fc_model_path(const fc_model *m);
/* Makes the row-interleaved copies of the Q4_0 / Q4_1 / Q8_0 matrices that
 * the default fast mode multiplies by (tensor/pack.c), once: later calls
 * return at once. Thread-safe; fc_exec_new calls it for fast, 16-bit
 * activation execs, so tools that never run the model (inspect, quantize)
 * or run it exact / --act8 do not pay for it. FASTCHAT_NO_REPACK=1 turns
 * it off. False if memory ran out (the model still runs, unpacked). */
bool fc_model_pack_weights(const fc_model *m);
/* Bytes of weights (all tensors as stored). */
size_t fc_model_weight_bytes(const fc_model *m);
/* The GGUF metadata when loaded from GGUF, else NULL (borrowed). */
const struct fc_gguf *fc_model_gguf(const fc_model *m);
/* Dominant weight type of the matrices (for display), enum fc_dtype. */
enum fc_dtype fc_model_weight_type(const fc_model *m);

/* Iterates the model's tensors by their canonical GGUF names
 * ("token_embd.weight", "blk.0.attn_q.weight", ...). Returns false past the
 * end. The tensor view is borrowed from the model. Layout of Q/K rows is as
 * stored in the file (see rope_neox). */
bool fc_model_tensor_at(const fc_model *m, int64_t i, const char **name, const fc_tensor **t);

/* ---- batches ---- */
/* One forward call evaluates n tokens, each with its position in its
 * sequence, the sequence id, and whether its logits are wanted. Tokens of
 * one sequence must appear in increasing position order and continue that
 * sequence exactly where its KV cache ends. */
/* What a forward pass writes for the tokens whose logits flag is set. */
enum fc_batch_output {
    FC_BATCH_LOGITS = 0, /* V logits each (the default of fc_batch_new) */
    FC_BATCH_HIDDEN,     /* C hidden values after the final norm (the output
                          * head's input, uncapped): embeddings */
};

typedef struct fc_batch {
    int n_tokens;
    int n_max;
    int32_t *token;   /* (n_max) */
    int32_t *pos;     /* (n_max) */
    int32_t *seq;     /* (n_max) */
    int8_t *logits;   /* (n_max) 1 = produce logits for this token */
    enum fc_batch_output output; /* logits or hidden states for those tokens */
} fc_batch;

fc_batch *fc_batch_new(int n_max);
void fc_batch_free(fc_batch *b);
static inline void fc_batch_clear(fc_batch *b) { b->n_tokens = 0; }
/* Appends one token; false when full. */
bool fc_batch_add(fc_batch *b, int32_t token, int32_t pos, int32_t seq, bool want_logits);

/* ---- execution context ---- */
typedef struct fc_exec fc_exec;
typedef struct fc_exec_params {
    int n_threads;     /* <= 0: all online CPUs */
    bool exact;        /* weights dequantized to f32, f32 activations */
    bool act8;         /* fast mode with 8-bit activations for every quantized
                        * type, as llama.cpp (default: 16-bit for the 32-value
                        * types, 8-bit for the K types) */
    int n_batch_max;   /* most tokens in one forward call (scratch is sized for it) */
} fc_exec_params;

fc_exec *fc_exec_new(const fc_model *m, const fc_exec_params *p);
void fc_exec_free(fc_exec *e);
int fc_exec_n_threads(const fc_exec *e);

struct fc_kv_cache;
/* Evaluates the batch. logits receives one row of V floats per token whose
 * logits flag is set, in batch order. The KV cache must hold room for the
 * new tokens (fc_kv_cache_reserve); returns FC_ERR_FULL if it does not,
 * FC_ERR_ARG for out-of-order positions or ids outside [0, V). */
enum fc_status fc_model_forward(const fc_model *m, fc_exec *e, struct fc_kv_cache *kv,
                                const fc_batch *batch, float *logits);

#endif
