/*
 * train.h: f32 training of llama / qwen2 models on the CPU: a reference
 * forward and backward pass (train_ref.c, llm.c style), AdamW and the
 * Hugging Face learning-rate schedules (optim.c), and checkpoints written as
 * Hugging Face safetensors folders (checkpoint.c).
 *
 * The model here is an fc_train_model: every parameter in f32, in one
 * allocation, with a gradient buffer of the same layout. It is made from any
 * fc_model our loader reads (weights are dequantized; GGUF's interleaved Q/K
 * rows are put back in Hugging Face's rotate-half order), so the trainer
 * shares config and weight reading with inference but has its own forward,
 * which keeps every activation the backward pass needs.
 *
 * Loss: transformers' ForCausalLMLoss: position t predicts labels[t + 1];
 * labels equal to FC_IGNORE_INDEX (-100) are skipped; the summed cross-entropy
 * is divided by a caller-given count (the labelled tokens of the whole
 * optimizer step, as the Trainer's num_items_in_batch), so accumulating
 * micro-batches gives the gradient of the mean over the whole step.
 *
 * Tensor letters: B batch, T time, C width, V vocab, NH/NKV heads, HS head
 * size, FF MLP width, L layers; N = B * T rows.
 *
 * LoRA adapters (fc_train_model_add_lora) train over a frozen base; QLoRA
 * (fc_train_model_from_model_qlora) over a base whose matrices stay in their
 * stored, quantized type (qbase.h).
 * bf16 compute: for the frozen base of LoRA on AMX (fc_train_model_set_bf16).
 * Not done: sliding window.
 * Threads: one fc_train_model is used by one thread at a time; it runs its
 * kernels on the fc_pool given to fc_train_model_set_pool (optional).
 */
#ifndef FC_TRAIN_H
#define FC_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"
#include "base/pool.h"
#include "model/model.h"

typedef struct fc_train_param {
    char name[96];     /* Hugging Face name: "model.layers.0.self_attn.q_proj.weight" */
    int n_dims;        /* 1 or 2 */
    int64_t shape[2];  /* PyTorch order: [rows, cols] (1-D: [n, 1]) */
    size_t offset;     /* floats from the start of the parameter buffer */
    size_t n;          /* elements */
    bool decay;        /* weight decay applies (not to biases and norms, as the Trainer) */
} fc_train_param;

typedef struct fc_train_model fc_train_model;

/* A model with the given config and all parameters zero. NULL on a config we
 * cannot train (logged). */
fc_train_model *fc_train_model_new(const fc_model_config *cfg);
/* A copy of a loaded model's weights in f32. NULL on error (logged). */
fc_train_model *fc_train_model_from_model(const fc_model *m);
void fc_train_model_free(fc_train_model *tm); /* NULL is a no-op */

const fc_model_config *fc_train_model_config(const fc_train_model *tm);
/* The pool is borrowed; NULL runs everything on the calling thread. */
void fc_train_model_set_pool(fc_train_model *tm, fc_pool *pool);
/* The pool set above (NULL when none), borrowed: the optimizer runs on it. */
fc_pool *fc_train_model_pool(const fc_train_model *tm);
/* true: the matrix products run the plain scalar loops of train_ref.c (the
 * oracle); false (default): the engine's f32 kernels (tensor/ops.h) with
 * blocked backward loops. Both are tested against torch. */
void fc_train_model_set_reference(fc_train_model *tm, bool ref);
/* Gradient checkpointing (transformers' gradient_checkpointing_enable): the
 * forward keeps only each layer's input; the backward recomputes the layer's
 * activations before its gradient. Same gradients, bit for bit; activation
 * memory falls from L layers' to one layer's plus L inputs. Default off. */
void fc_train_model_set_checkpointing(fc_train_model *tm, bool on);
/* bf16 compute for the frozen matrices (the base of a LoRA model: the
 * projections and the output head), FastChat's --bf16: each is rounded once
 * to bf16 and its products (forward, and the input gradient backward) run
 * on AMX-BF16 tiles with the activations rounded to bf16 and f32 sums
 * (train_fast.h). true when it took effect: a LoRA model (not QLoRA) on the
 * fast path, with AMX-BF16 in the build and the CPU; else the products
 * stay f32. Adds 4 bytes per
 * frozen weight (two bf16 layouts). */
bool fc_train_model_set_bf16(fc_train_model *tm, bool on);
size_t fc_train_model_bf16_bytes(const fc_train_model *tm);
/* Bytes of the activation buffer the last pass allocated (0 before one). */
size_t fc_train_model_activation_bytes(const fc_train_model *tm);

/* Parameters in Hugging Face named_parameters() order. */
int fc_train_model_n_params(const fc_train_model *tm);
const fc_train_param *fc_train_model_param(const fc_train_model *tm, int i);
/* The index of the parameter with that Hugging Face name, or -1. */
int fc_train_model_find(const fc_train_model *tm, const char *name);
/* The buffers: fc_train_model_n_floats floats each, borrowed. */
size_t fc_train_model_n_floats(const fc_train_model *tm);
float *fc_train_model_params(fc_train_model *tm);
float *fc_train_model_grads(fc_train_model *tm);

/* Counts the labels that contribute to the loss in a (B, T) batch: positions
 * t >= 1 with labels[t] != FC_IGNORE_INDEX (the shift). */
long fc_train_count_labels(const int32_t *labels, int B, int T);

/* One forward and backward pass over ids/labels (B, T), row-major. Adds the
 * gradient of (summed cross-entropy / denom) to the gradient buffer (it does
 * not zero it). Returns the summed cross-entropy / denom, or NAN on bad input
 * (ids outside [0, V), logged). denom <= 0 means this batch's own label count.
 * Activations for B * T tokens are allocated on first use and kept. */
double fc_train_step_grad(fc_train_model *tm, const int32_t *ids, const int32_t *labels,
                          int B, int T, double denom);
/* The loss only (no gradient), same conventions. */
double fc_train_loss(fc_train_model *tm, const int32_t *ids, const int32_t *labels,
                     int B, int T, double denom);

void fc_train_zero_grad(fc_train_model *tm);
/* torch.nn.utils.clip_grad_norm_: returns the total L2 norm of all gradients
 * and, when max_norm > 0, scales them by min(1, max_norm / (norm + 1e-6)). */
double fc_train_clip_grad_norm(fc_train_model *tm, double max_norm);

/* ---- LoRA (train_ref.c) ---- */

/* PEFT's LoraConfig, the part we implement: scaling alpha / r (no rsLoRA),
 * dropout on the adapter's input, no bias, fan_in_fan_out false. */
typedef struct fc_lora_config {
    int r;
    double alpha;
    double dropout;            /* [0, 1) */
    unsigned targets;          /* bits of fc_lora_parse_targets */
    uint64_t seed;             /* A's initialisation and the dropout masks */
} fc_lora_config;

/* "q_proj,v_proj,..." (q_proj k_proj v_proj o_proj gate_proj up_proj
 * down_proj) as target bits; 0 when a name is not one of those. */
unsigned fc_lora_parse_targets(const char *list);

/* Adds adapters to every target projection of every layer and freezes the
 * base: from then on the parameter table (fc_train_model_n_params, _param,
 * _find, _n_floats, _params, _grads, zero_grad, clip_grad_norm, the
 * optimizer) is the adapters' alone, named as PEFT saves them
 * ("base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight", shape
 * (r, in); lora_B (out, r)), in PEFT's named_parameters order. A is
 * initialised as PEFT's kaiming_uniform(a=sqrt(5)) bound 1/sqrt(in) (our own
 * generator, not torch's), B to zero, so the model starts as the base.
 * Forward: y = x W^T + b + (alpha / r) * dropout(x) A^T B^T; dropout only
 * in fc_train_step_grad, its masks a hash of (seed, training forwards so
 * far, slot, element). FC_OK or FC_ERR_ARG / FC_ERR_NOMEM (logged). */
enum fc_status fc_train_model_add_lora(fc_train_model *tm, const fc_lora_config *c);
bool fc_train_model_has_lora(const fc_train_model *tm);

/* QLoRA: a copy of m for LoRA training (fc_train_model_add_lora with c is
 * applied) in which the frozen projection matrices q/k/v/o/gate/up/down
 * (and an untied lm_head) are not copied to f32: they stay in m's stored
 * type (q4_0, q4_1, q8_0, q5_*, K-quants, f16, bf16, f32), read in place,
 * and the products dequantize a tile of rows at a time (qbase.h). Token
 * embeddings, norms and biases are f32 as in fc_train_model_from_model;
 * the base has no gradient buffer. Same values as training on
 * fc_train_model_from_model(m), so the same losses and gradients up to the
 * order of the sums. m is borrowed and must outlive the model. NULL on
 * error (logged). */
fc_train_model *fc_train_model_from_model_qlora(const fc_model *m, const fc_lora_config *c);
/* Bytes of the frozen matrices kept in their stored type (0 without QLoRA). */
size_t fc_train_model_qbase_bytes(const fc_train_model *tm);
/* The config given to fc_train_model_add_lora, or NULL. */
const fc_lora_config *fc_train_model_lora(const fc_train_model *tm);
/* The dropout masks' counter (saved with a checkpoint for an exact resume). */
uint64_t fc_train_lora_calls(const fc_train_model *tm);
void fc_train_lora_set_calls(fc_train_model *tm, uint64_t calls);

/* ---- optimizer (optim.c) ---- */

/* torch.optim.AdamW, with weight decay on the parameters whose `decay` is set
 * (the Trainer's two parameter groups). */
typedef struct fc_adamw {
    double beta1, beta2, eps, weight_decay;
    long t;           /* steps taken */
    float *m, *v;     /* (n) moments of the parameter floats [lo, lo + n), owned */
    size_t n;
    size_t lo;        /* 0 and n = n_floats, unless sharded (dist.h) */
} fc_adamw;

enum fc_status fc_adamw_init(fc_adamw *o, const fc_train_model *tm, double beta1, double beta2,
                             double eps, double weight_decay);
/* The same over the parameter floats [lo, lo + n) only (a ZeRO shard, dist.h):
 * fc_adamw_step then updates those floats alone. */
enum fc_status fc_adamw_init_shard(fc_adamw *o, const fc_train_model *tm, size_t lo, size_t n,
                                   double beta1, double beta2, double eps, double weight_decay);
void fc_adamw_free(fc_adamw *o);
/* One step at learning rate lr over the model's gradients. */
void fc_adamw_step(fc_adamw *o, fc_train_model *tm, double lr);

/* transformers' schedules, as LambdaLR multipliers of the base rate at optimizer
 * step `step` (0-based; the first step of a warmup gets 0):
 * "cosine" get_cosine_schedule_with_warmup (0.5 cycles), "linear"
 * get_linear_schedule_with_warmup, "constant", "constant_with_warmup".
 * -1 for an unknown name. */
double fc_lr_lambda(const char *type, long step, long warmup, long total);
/* Whether fc_lr_lambda knows the name. */
bool fc_lr_type_known(const char *type);

/* ---- checkpoints (checkpoint.c) ---- */

/* Writes the parameters as `dir`/model.safetensors (F32, Hugging Face names,
 * metadata {"format": "pt"}), and `dir`/config.json: the source folder's
 * config.json with "torch_dtype"/"dtype" set to float32 when src_dir has one,
 * else one written from the config. The tokenizer files of src_dir
 * (tokenizer.json, tokenizer_config.json, tokenizer.model,
 * special_tokens_map.json, generation_config.json, chat_template.jinja) are
 * copied when present. Creates dir. FC_OK or an error (logged). */
enum fc_status fc_train_save_hf(fc_train_model *tm, const char *dir, const char *src_dir);

/* With LoRA: dir/adapter_model.safetensors (the adapters, F32, PEFT's names)
 * and dir/adapter_config.json (peft_type LORA, task_type CAUSAL_LM, r,
 * lora_alpha, lora_dropout, target_modules, bias "none",
 * base_model_name_or_path = base), as PEFT's save_pretrained writes them. */
enum fc_status fc_train_save_lora(fc_train_model *tm, const char *dir, const char *base);

/* Reads dir/model.safetensors (as fc_train_save_hf writes it: F32, every
 * parameter by its name; with LoRA dir/adapter_model.safetensors) into the
 * parameters. FC_OK or an error (logged). */
enum fc_status fc_train_load_params(fc_train_model *tm, const char *dir);
/* AdamW's moments as dir/optimizer.safetensors ("<name>.exp_avg",
 * "<name>.exp_avg_sq", F32) and back; the step count is the caller's to keep
 * (trainer_state.json). Saving needs whole moments (lo 0, n n_floats: a
 * sharded state is saved with fc_train_save_optimizer_chunks); loading fills
 * a shard with its slice of the file. */
enum fc_status fc_train_save_optimizer(fc_train_model *tm, const fc_adamw *o, const char *dir);
enum fc_status fc_train_load_optimizer(fc_train_model *tm, fc_adamw *o, const char *dir);
/* Gives floats [off, off + got) of moment buffer k (0 exp_avg, 1 exp_avg_sq)
 * into dst, 1 <= got <= cap; returns got, or 0 on an error. */
typedef size_t (*fc_train_chunk_fn)(int k, size_t off, float *dst, size_t cap, void *user);
/* fc_train_save_optimizer's file with the moments' floats asked of fn, in
 * order (k 0 then 1, off rising from 0 to n_floats), cap floats at most. */
enum fc_status fc_train_save_optimizer_chunks(fc_train_model *tm, const char *dir, size_t cap,
                                              fc_train_chunk_fn fn, void *user);

/* ---- the training loop (trainer.c): FastChat's train.py on one process ---- */

/* Hugging Face TrainingArguments / FastChat names and defaults. */
typedef struct fc_trainer_args {
    const char *model_path;      /* anything fc_model_load reads (HF folder, GGUF, Hub id) */
    const char *data_path;       /* FastChat conversation JSON (array) or JSON Lines */
    const char *output_dir;
    int model_max_length;        /* 512 */
    int per_device_train_batch_size; /* 8 */
    int gradient_accumulation_steps; /* 1 */
    double learning_rate;        /* 5e-5 */
    double weight_decay;         /* 0 */
    double adam_beta1, adam_beta2, adam_epsilon; /* 0.9, 0.999, 1e-8 */
    double warmup_ratio;         /* 0 */
    long warmup_steps;           /* 0; wins over warmup_ratio when > 0 */
    const char *lr_scheduler_type; /* "linear" (transformers' default; FastChat uses cosine) */
    double num_train_epochs;     /* 3 */
    long max_steps;              /* -1: from the epochs */
    long save_steps;             /* 500; <= 0: only the final save */
    long save_total_limit;       /* > 0: keep only the newest N checkpoint-* folders (0: all) */
    double max_grad_norm;        /* 1.0; <= 0: no clipping */
    uint64_t seed;               /* 42: the shuffle of each epoch */
    bool legacy;                 /* the tokenizer's `legacy` for the masking (sft_data.h) */
    int masking;                 /* enum fc_sft_masking: 0 train.py's (default), 1 train_with_template.py's */
    const char *conv_template;   /* template masking: NULL picks it from the model path, as
                                    train_with_template.py's get_conversation_template */
    int n_threads;               /* <= 0: all CPUs */
    /* resume: a checkpoint folder, or "True" / "last" for the newest
     * output_dir/checkpoint-N that holds a resume state; NULL: a fresh run */
    const char *resume_from_checkpoint;
    const char *eval_data_path;  /* NULL: no evaluation */
    long eval_steps;             /* evaluate every N steps (and at the end); <= 0: at the end only */
    int per_device_eval_batch_size; /* 8 */
    /* LoRA (FastChat's train_lora.py LoraArguments): lora_r > 0 trains
     * adapters over the frozen base and saves them in PEFT's layout */
    int lora_r;                  /* 0: full fine-tuning */
    double lora_alpha;           /* 16 */
    double lora_dropout;         /* 0.05 */
    const char *lora_target_modules; /* "q_proj,v_proj" */
    bool gradient_checkpointing; /* false: fc_train_model_set_checkpointing */
    bool q_lora;                 /* false; true (needs lora_r > 0): the base's matrices stay in
                                    their stored type (fc_train_model_from_model_qlora) */
    bool bf16;                   /* false; true: fc_train_model_set_bf16 (FastChat's --bf16) */
} fc_trainer_args;

void fc_trainer_args_default(fc_trainer_args *a);

/* One optimizer step done: for progress lines and logs. */
typedef struct fc_trainer_progress {
    long step, total_steps;      /* 1-based step */
    double epoch;                /* fractional epoch at the end of the step */
    double loss;                 /* mean cross-entropy over the step's labelled tokens (NAN: none) */
    double lr;                   /* learning rate the step used */
    double grad_norm;            /* before clipping */
    long tokens;                 /* tokens computed in the step (padding trimmed) */
    long labelled;               /* tokens in the loss */
    double step_sec, elapsed_sec; /* elapsed: since this run (or resume) started */
    double eta_sec;              /* the remaining steps at this run's mean step time */
    const char *saved;           /* checkpoint folder written after this step, or NULL */
    double eval_loss;            /* evaluation after this step: mean cross-entropy over the
                                    eval set's labelled tokens; NAN when none ran */
    long eval_labelled;          /* labelled tokens of the eval set */
    int world;                   /* processes training together (dist.h); 1 alone */
    double optim_mib, optim_total_mib; /* AdamW's m and v held by this process / all of them */
} fc_trainer_progress;

/* The progress line(s) of one step, as printed and written to the log file:
 * "step S/T  epoch E  loss L  lr R  grad_norm G  tokens/s X  elapsed Ns  eta Ns\n"
 * then, when p->eval_loss is set, "eval step S  eval_loss L  eval_tokens N\n",
 * then "saved DIR\n" when a checkpoint was written. Returns what snprintf
 * returns. */
int fc_trainer_format_progress(const fc_trainer_progress *p, char *buf, size_t cap);

typedef void (*fc_trainer_cb)(const fc_trainer_progress *p, void *user);

/* Loads the model and the data, trains, writes checkpoints
 * (output_dir/checkpoint-<step>/ every save_steps, and output_dir itself at
 * the end, each with trainer_state.json holding the log history), calling cb
 * after every optimizer step.
 * Files: every checkpoint-N/ (written as checkpoint-N.tmp/ and renamed, so a
 * killed run leaves whole checkpoints only) also holds optimizer.safetensors
 * (fc_train_save_optimizer), trainer_resume.json (AdamW's step count, the
 * micro-batches consumed, the shuffle generator's state and this epoch's
 * order) and loss_curve.svg; output_dir gets train_log.txt (the progress
 * lines, appended; a resumed run appends to it) and loss_curve.svg at the
 * end (one polyline point per logged step with a loss, id "train_loss";
 * eval losses in id "eval_loss").
 * Resuming restores parameters, moments, step, data position and generator
 * and the log history, so the steps after it compute what the uninterrupted
 * run computed, bit for bit (same threads: the kernels' sums are ordered by
 * thread count). Batches are padded only to their longest
 * example (right padding cannot change the loss of a causal model, so the
 * result equals padding to model_max_length). Examples are shuffled each
 * epoch with our own generator seeded by `seed` (not torch's sampler order).
 * A step whose examples have no labelled token is skipped with a warning
 * (transformers would divide by zero). FC_OK or an error (logged). */
enum fc_status fc_trainer_run(const fc_trainer_args *a, fc_trainer_cb cb, void *user);

#endif
