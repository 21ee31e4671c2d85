/*
 * t5.h: T5 / Flan-T5 / FastChat-T5 encoder-decoder models (arch_t5.c), kept
 * apart from the decoder-only fc_model and its forward pass.
 *
 * A model is loaded from a Hugging Face folder (config.json with model_type
 * "t5" or architectures T5ForConditionalGeneration, and safetensors or
 * pytorch_model.bin) or a GGUF file (general.architecture "t5", llama.cpp's
 * tensor names and keys). The encoder runs once over the input ids; a decoder
 * state (fc_t5_dec) is small: its keys and values live in a paged
 * fc_kv_cache (model/kv_cache.h) made by fc_t5_kv_cache_new, where request
 * slot s owns two sequences: the cross-attention keys and values of the
 * encoder output (computed once, at fc_t5_dec_new_paged, n_enc positions)
 * and the decoder's self-attention keys and values (one position more per
 * fc_t5_dec_step). Many decoders share one cache, as the engine's requests
 * do; fc_t5_dec_new gives a decoder its own private cache instead.
 *
 * The forward pass is the plain reference (weights read in their stored type
 * through fc_matmul_exact, f32 activations) or the fast mode of the matrix
 * kernels (fc_t5_run), its matrix products split by rows over an optional
 * fc_pool. fc_engine_new_t5 (engine/engine.h) serves T5 requests with it;
 * the tokenizer is tokenizer.h's (Unigram, tokenizer.json or spiece.model).
 *
 * Does not: packed weights, f16 pages, prefix sharing between decoders.
 */
#ifndef FC_T5_H
#define FC_T5_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"
#include "base/pool.h"
#include "kv_cache.h"

/* Feed-forward activation (config dense_act_fn / feed_forward_proj). */
enum fc_t5_act { FC_T5_RELU = 0, FC_T5_GELU_NEW = 1, FC_T5_GELU = 2, FC_T5_SILU = 3 };

/* Hyper-parameters (T5Config names in comments). */
typedef struct fc_t5_config {
    int n_vocab;        /* vocab_size (V) */
    int n_embd;         /* d_model (C) */
    int head_dim;       /* d_kv (HS) */
    int n_head;         /* num_heads (NH); NH * HS need not be C */
    int n_ff;           /* d_ff (FF) */
    int n_enc_layer;    /* num_layers */
    int n_dec_layer;    /* num_decoder_layers (default num_layers) */
    int n_buckets;      /* relative_attention_num_buckets (32) */
    int max_distance;   /* relative_attention_max_distance (128) */
    float eps;          /* layer_norm_epsilon (1e-6) */
    bool gated;         /* "gated-*" feed_forward_proj: wi_0, wi_1, wo; else wi, wo */
    enum fc_t5_act act;
    /* tie_word_embeddings (default true): the decoder output is scaled by
     * C**-0.5 before the head (T5 v1.0); v1.1 / Flan-T5 set it false. The
     * head is lm_head.weight when the file has one, else shared.weight. */
    bool scale_output;
    int decoder_start_id; /* decoder_start_token_id (default pad, 0) */
    int eos_id, pad_id;   /* eos_token_id (1), pad_token_id (0) */
} fc_t5_config;

typedef struct fc_t5 fc_t5;

/* How the forward pass runs: the threads of pool (borrowed; NULL: the
 * caller's thread), and exact (weights dequantized row by row, f32
 * activations: the reference) or fast (activations rounded to the weights'
 * partner type as llama.cpp does, 16-bit codes for q4_0..q8_0; f32 for
 * float weights). A NULL fc_t5_run means one thread, exact. Results do not
 * depend on the thread count. */
typedef struct fc_t5_run {
    fc_pool *pool;
    bool fast;
} fc_t5_run;

/* True when path is a folder whose config.json names a T5 model, or a GGUF
 * file whose first key is general.architecture = "t5". Logs nothing. */
bool fc_t5_is_t5(const char *path);
/* Loads a Hugging Face T5 folder or a T5 GGUF file; NULL on error, logged as "path: what is
 * wrong" (a missing tensor, a wrong shape, an unknown activation). */
fc_t5 *fc_t5_load(const char *path);
void fc_t5_free(fc_t5 *m);
const fc_t5_config *fc_t5_get_config(const fc_t5 *m);

/* Runs the encoder over ids[0..n) (bidirectional, relative position
 * buckets) and writes the final-norm output, n rows of C floats, to out,
 * as run says. FC_ERR_ARG for n <= 0 or an id outside [0, V). m is
 * read-only: any number of threads may encode at once, each with its own
 * pool (or none). */
enum fc_status fc_t5_encode(const fc_t5 *m, const fc_t5_run *run, const int32_t *ids, int n, float *out);
/* The encoders of n_seq prompts in one forward: ids holds the prompts one
 * after another (lens[s] ids each), out receives their rows in the same
 * order (sum of lens rows of C floats). Every weight matrix is read once
 * for all rows; attention stays within each prompt. Each prompt's rows are
 * those fc_t5_encode gives it. FC_ERR_ARG for n_seq <= 0, a length <= 0
 * or an id outside [0, V). */
enum fc_status fc_t5_encode_batch(const fc_t5 *m, const fc_t5_run *run, const int32_t *ids, const int *lens, int n_seq,
                                  float *out);

/* ---- decoder state ---- */
typedef struct fc_t5_dec fc_t5_dec;
/* A paged cache for the decoders of m: pages of FC_KV_BLOCK positions of
 * every decoder layer (K and V, f32), ceil(n_tokens / FC_KV_BLOCK) of them
 * shared by n_slots request slots (each: one self-attention and one
 * cross-attention sequence, so the cache's sequence ids are [0, 2 n_slots)).
 * Its free and total blocks are kv_cache.h's. NULL (logged) on bad sizes or
 * no memory. Free with fc_kv_cache_free after every decoder on it. */
fc_kv_cache *fc_t5_kv_cache_new(const fc_t5 *m, int64_t n_tokens, int n_slots);
/* Blocks that n positions of one sequence take. */
int64_t fc_t5_kv_blocks(int n_tokens);
/* A decoder in slot `slot` of kv (borrowed until fc_t5_dec_free; the slot
 * must be empty) over the encoder output enc (n_enc rows of C floats, read
 * here only), running as run says (copied; its pool is borrowed until
 * fc_t5_dec_free). The cross-attention keys and values of every layer are
 * computed here, once, into blocks(n_enc) pages; blocks(max(n_reserve, 1))
 * pages are taken for the self-attention positions too (later steps take
 * one more page every FC_KV_BLOCK tokens beyond them). FC_ERR_FULL when
 * the cache has not that many free blocks (nothing taken), FC_ERR_ARG
 * (logged) on bad sizes, a slot in use or a cache of another shape. */
enum fc_status fc_t5_dec_new_paged(const fc_t5 *m, const fc_t5_run *run, fc_kv_cache *kv, int slot, const float *enc,
                                   int n_enc, int n_reserve, fc_t5_dec **out);
/* A decoder with a private cache of n_enc + n_max positions: at most n_max
 * decoder tokens; otherwise as fc_t5_dec_new_paged. NULL on bad sizes
 * (logged). */
fc_t5_dec *fc_t5_dec_new(const fc_t5 *m, const fc_t5_run *run, const float *enc, int n_enc, int n_max);
/* Frees d and gives its pages back to the cache (its slot is empty again). */
void fc_t5_dec_free(fc_t5_dec *d);
/* Decoder tokens consumed so far. */
int fc_t5_dec_len(const fc_t5_dec *d);
/* The cache slot d occupies. */
int fc_t5_dec_slot(const fc_t5_dec *d);
/* Free blocks the next fc_t5_dec_step_batch of ds[0..n) takes from ds[0]'s
 * cache (one per decoder whose pages are full). */
int64_t fc_t5_dec_step_blocks(fc_t5_dec *const *ds, int n);
/* Feeds the next decoder token (the first is usually decoder_start_id) and
 * writes the V logits of the next one. FC_ERR_FULL past n_max or when the
 * cache has no free block for it, FC_ERR_ARG for an id outside [0, V). */
enum fc_status fc_t5_dec_step(fc_t5_dec *d, int32_t token, float *logits);
/* One step of n distinct decoders of the same model at once: tokens[s] is
 * fed to ds[s], and logits receives n rows of V floats in that order. The
 * rows go through every weight matrix together (each is read once per
 * step, on the first decoder's run); attention runs per sequence over its
 * own pages (its block table). The results are those of n calls of
 * fc_t5_dec_step. Nothing is consumed on error (FC_ERR_FULL: a decoder at
 * n_max or too few free blocks for all; FC_ERR_ARG: a bad id, a decoder or
 * slot twice, another model). */
enum fc_status fc_t5_dec_step_batch(fc_t5_dec *const *ds, const int32_t *tokens, int n, float *logits);

/* Bucket of a relative position (key position minus query position), as
 * transformers' T5Attention._relative_position_bucket: bidirectional for
 * the encoder, causal for the decoder. Exposed for the unit test. */
int fc_t5_bucket(int rel, bool bidirectional, int n_buckets, int max_distance);

#endif
