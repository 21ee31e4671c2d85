/*
 * train_ref.c: the reference forward and backward pass of a llama / qwen2
 * decoder in f32, written as llm.c's train_gpt2.c is: one plain function per
 * layer kind (forward and backward side by side), activations kept in one
 * buffer, gradients accumulated into one buffer laid out as the parameters.
 *
 * The model is Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM:
 *   x = embed[ids]
 *   per layer: x += o_proj(attn(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))
 *              x += down(silu(gate(n2)) * up(n2))      n1, n2 = RMSNorm(x)
 *   logits = lm_head(RMSNorm(x))   (lm_head = embed when tied)
 * with rotate-half RoPE (pairs i, i + HS/2), causal softmax attention scaled
 * by 1/sqrt(HS), grouped-query heads (query head h reads key/value head
 * h / (NH / NKV)), q/k/v biases for qwen2. Attention masks beyond causal are
 * not needed: padding is on the right and its labels are ignored.
 *
 * The matrix products, attention and (fast path) SiLU run on the model's
 * thread pool; the rest is single-threaded and plain. Two paths share this file: the
 * reference (fc_train_model_set_reference: scalar loops, double exp in the
 * cross-entropy, expf in SiLU) and the default fast path: OpenBLAS GEMMs
 * split over the pool and vectorized exp kernels (train_fast.c), and the
 * lm_head / cross-entropy computed for the labelled rows only (packed).
 * Both are checked against torch autograd (tests/unit/test_train_ref.c,
 * test_train_lora.c) and against each other within 1e-5
 * (test_train_fast.c). Gradient checkpointing
 * (fc_train_model_set_checkpointing) keeps each layer's input and
 * recomputes the layer (layer_forward) before its backward.
 */
#include "train.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "tensor/dtype.h"
#include "tensor/ops.h"
#include "sft_data.h"
#include "train_fast.h"
#include "qbase.h"

/* ---- the model ---- */

typedef struct layer_w {
    float *attn_norm;          /* (C) */
    float *wq, *bq;            /* (NH*HS, C), (NH*HS) or NULL */
    float *wk, *bk;            /* (NKV*HS, C), (NKV*HS) */
    float *wv, *bv;            /* (NKV*HS, C), (NKV*HS) */
    float *wo;                 /* (C, NH*HS) */
    float *ffn_norm;           /* (C) */
    float *w_gate, *w_up;      /* (FF, C) */
    float *w_down;             /* (C, FF) */
} layer_w;

typedef struct model_w {
    float *tok_embd;           /* (V, C) */
    float *output_norm;        /* (C) */
    float *output;             /* (V, C), == tok_embd when tied */
    layer_w *layer;            /* (L) */
} model_w;

/* Activations of one forward pass, N = B * T rows. */
typedef struct layer_a {
    float *x;                  /* (N, C) residual entering the layer */
    float *n1, *r1;            /* (N, C) normed, (N) 1/rms */
    float *q, *k, *v;          /* (N, Q), (N, KVD), (N, KVD); q, k after RoPE */
    float *att;                /* (B, NH, T, T) softmax probabilities */
    float *ao;                 /* (N, Q) attention output before o_proj */
    float *x2;                 /* (N, C) residual after attention */
    float *n2, *r2;            /* (N, C), (N) */
    float *g, *u, *h;          /* (N, FF) gate, up, silu(gate) * up */
} layer_a;

struct fc_train_model {
    fc_model_config cfg;
    int n_param;
    fc_train_param *param;
    size_t n_floats;
    float *params, *grads;
    model_w w, gw;             /* pointers into params and grads */
    fc_pool *pool;             /* borrowed, may be NULL */
    bool ref;                  /* matmuls by the scalar reference loops */
    bool ckpt;                 /* gradient checkpointing: keep each layer's input only */
    int act_ckpt;              /* the ckpt setting the activations were carved for */
    /* activations for act_B x act_T tokens */
    int act_B, act_T;
    float *acts;
    size_t acts_cap;           /* floats allocated in acts */
    layer_a *la;
    float *xf, *nf, *rf;       /* (N, C), (N, C), (N) final residual and norm */
    float *logits;             /* (N, V); dlogits in place during backward */
    float *dx, *dn, *dq, *dk, *dv, *dao, *dg, *du, *dh; /* backward scratch */
    float *rope_cos, *rope_sin; /* (T, HS/2) */
    int32_t *rows;             /* (N) positions with a label (the fast path's packed logits) */
    struct prof *prof;         /* per-phase timers, when logging at INFO level (--verbose) */
    /* LoRA (fc_train_model_add_lora): when set, param/n_param/n_floats/
     * params/grads above are the adapters' and the base's are kept here */
    struct lora *lora;
    bool frozen;               /* base weights get no gradient */
    /* QLoRA (fc_train_model_from_model_qlora): the frozen matrices in their
     * stored type; their f32 pointers are keys to one placeholder float each */
    fc_qbase *qb;
    /* --bf16 (fc_train_model_set_bf16): bf16 copies of the frozen matrices */
    fc_bf16set *bf;
};

/* ---- LoRA ---- */

#define LORA_NT 7
static const char *const lora_names[LORA_NT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                "gate_proj", "up_proj", "down_proj"};

typedef struct lora_slot {
    float *A, *B, *dA, *dB;    /* (r, in), (out, r) and their gradients; NULL: not a target */
    long in, out;
    float *h;                  /* (N, r) dropout(x) A^T of the last forward, rows hs apart */
    long hs;
} lora_slot;

/* The slots that read the same input: q, k, v (the attention norm's
 * output) and gate, up (the MLP norm's). On the fast path without dropout
 * the slots of a group present run as one: one GEMM for their h, one for
 * their dA and one for the input's gradient (lora_forward_group). */
#define LORA_GMAX 3

struct lora {
    fc_lora_config c;
    double scaling;            /* alpha / r */
    uint64_t calls;            /* training forwards so far: the dropout key */
    bool train;                /* this forward applies dropout */
    lora_slot *slot;           /* (L * LORA_NT) */
    long act_N;                /* rows the h buffers and scratch hold */
    float *hbuf;               /* all h */
    float *sx, *so, *sdh, *sdx; /* scratch (N, max in), (N, max out), (N, GMAX r), (N, max in) */
    bool fused;                /* groups run as one (fast path, no dropout) */
    float *as, *das;           /* scratch (GMAX r, max in): a group's A stacked, its dA */
    /* the base model's parameter table while the adapters are the active one */
    int base_n_param;
    fc_train_param *base_param;
    size_t base_n_floats;
    float *base_params, *base_grads;
};

/* ---- per-phase timers ----
 * Lap timers on the calling thread: lap(tm, P) charges the time since the
 * previous lap to phase P (wall seconds and this thread's CPU seconds; with
 * --threads 1 all work is on this thread). On when the log level is INFO or
 * lower at the first pass (fastchat train --verbose); the table is logged
 * when the model is freed, over the steps after the first (which also pays
 * for first-touch page faults); per gradient pass (one micro-batch). */
enum { PH_EMBED, PH_NORM, PH_PROJ_F, PH_LORA_F, PH_ROPE, PH_ATTN_F, PH_SILU_F, PH_HEAD_F, PH_CE,
       PH_HEAD_B, PH_PROJ_B, PH_LORA_B, PH_SILU_B, PH_ATTN_B, PH_EMBED_B, PH_ZERO, PH_CLIP, PH_OPT, PH_N };
static const char *const ph_names[PH_N] = {
    "embedding", "rmsnorm fwd+bwd", "projections fwd", "lora fwd", "rope fwd+bwd", "attention fwd",
    "silu*up fwd", "lm_head fwd", "cross-entropy", "lm_head bwd", "projections bwd (dX, dW)", "lora bwd",
    "silu*up bwd", "attention bwd", "embedding bwd", "zero_grad", "clip_grad_norm",
    "AdamW + trainer (between clip and the next zero_grad)"};

struct prof {
    double wall[PH_N], cpu[PH_N];
    double last_wall, last_cpu;
    long passes;               /* gradient passes after the first */
    bool counting;             /* the first step's times have been dropped */
};

static double thread_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void lap(fc_train_model *tm, int ph)
{
    struct prof *p = tm->prof;
    if (!p) return;
    const double w = fc_time_sec(), c = thread_cpu();
    if (ph >= 0) {
        p->wall[ph] += w - p->last_wall;
        p->cpu[ph] += c - p->last_cpu;
    }
    p->last_wall = w;
    p->last_cpu = c;
}

static void prof_log(const fc_train_model *tm)
{
    const struct prof *p = tm->prof;
    if (!p || p->passes < 1) return;
    double tw = 0, tc = 0;
    for (int i = 0; i < PH_N; i++) tw += p->wall[i], tc += p->cpu[i];
    FC_LOG_INFO("train phases, per pass, over %ld passes after the first (calling thread):", p->passes);
    for (int i = 0; i < PH_N; i++)
        FC_LOG_INFO("  %-54s wall %8.2f ms  cpu %8.2f ms  %5.1f%%", ph_names[i], 1e3 * p->wall[i] / p->passes,
                    1e3 * p->cpu[i] / p->passes, tw > 0 ? 100 * p->wall[i] / tw : 0.0);
    FC_LOG_INFO("  %-54s wall %8.2f ms  cpu %8.2f ms", "total", 1e3 * tw / p->passes, 1e3 * tc / p->passes);
}

/* ---- parameter table ---- */

static void add_param(fc_train_model *tm, int *cap, const char *name, int64_t rows, int64_t cols,
                      bool decay)
{
    if (tm->n_param == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        tm->param = fc_xrealloc(tm->param, (size_t)*cap * sizeof *tm->param);
    }
    fc_train_param *p = &tm->param[tm->n_param++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->n_dims = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 1;
    p->n = (size_t)(rows * p->shape[1]);
    p->offset = tm->n_floats;
    p->decay = decay;
    tm->n_floats += p->n;
}

static void bind(fc_train_model *tm, float *base, model_w *w)
{
    const fc_model_config *c = &tm->cfg;
    int k = 0;
    w->tok_embd = base + tm->param[k++].offset;
    for (int l = 0; l < c->n_layer; l++) {
        layer_w *lw = &w->layer[l];
        lw->attn_norm = base + tm->param[k++].offset;
        lw->wq = base + tm->param[k++].offset;
        lw->bq = c->qkv_bias ? base + tm->param[k++].offset : NULL;
        lw->wk = base + tm->param[k++].offset;
        lw->bk = c->qkv_bias ? base + tm->param[k++].offset : NULL;
        lw->wv = base + tm->param[k++].offset;
        lw->bv = c->qkv_bias ? base + tm->param[k++].offset : NULL;
        lw->wo = base + tm->param[k++].offset;
        lw->ffn_norm = base + tm->param[k++].offset;
        lw->w_gate = base + tm->param[k++].offset;
        lw->w_up = base + tm->param[k++].offset;
        lw->w_down = base + tm->param[k++].offset;
    }
    w->output_norm = base + tm->param[k++].offset;
    w->output = c->tied_embeddings ? w->tok_embd : base + tm->param[k++].offset;
    FC_ASSERT(k == tm->n_param);
}

/* QLoRA keeps these out of the f32 buffer (qbase.h). */
static bool is_qmat(const char *name)
{
    const size_t n = strlen(name);
    return (n > 12 && !strcmp(name + n - 12, "_proj.weight")) || !strcmp(name, "lm_head.weight");
}

/* quant: the projection matrices (and an untied lm_head) get one float
 * each, a key for qbase, and the base has no gradient buffer (QLoRA). */
static fc_train_model *model_new(const fc_model_config *cfg, bool quant)
{
    const fc_model_config *c = cfg;
    if (c->n_vocab <= 0 || c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 ||
        c->n_head_kv <= 0 || c->n_head % c->n_head_kv || c->head_dim <= 0 || c->head_dim % 2 ||
        c->n_ff <= 0) {
        FC_LOG_ERROR("%s: config not trainable (dimensions)", __func__);
        return NULL;
    }
    fc_train_model *tm = fc_xcalloc(1, sizeof *tm);
    tm->cfg = *cfg;
    int cap = 0;
    const int64_t C = c->n_embd, Q = (int64_t)c->n_head * c->head_dim,
                  KVD = (int64_t)c->n_head_kv * c->head_dim, FF = c->n_ff, V = c->n_vocab;
    char nm[96];
    add_param(tm, &cap, "model.embed_tokens.weight", V, C, true);
    for (int l = 0; l < c->n_layer; l++) {
#define P(fmt, r, cc, d) (snprintf(nm, sizeof nm, "model.layers.%d." fmt, l), add_param(tm, &cap, nm, r, cc, d))
        P("input_layernorm.weight", C, 0, false);
        P("self_attn.q_proj.weight", Q, C, true);
        if (c->qkv_bias) P("self_attn.q_proj.bias", Q, 0, false);
        P("self_attn.k_proj.weight", KVD, C, true);
        if (c->qkv_bias) P("self_attn.k_proj.bias", KVD, 0, false);
        P("self_attn.v_proj.weight", KVD, C, true);
        if (c->qkv_bias) P("self_attn.v_proj.bias", KVD, 0, false);
        P("self_attn.o_proj.weight", C, Q, true);
        P("post_attention_layernorm.weight", C, 0, false);
        P("mlp.gate_proj.weight", FF, C, true);
        P("mlp.up_proj.weight", FF, C, true);
        P("mlp.down_proj.weight", C, FF, true);
#undef P
    }
    add_param(tm, &cap, "model.norm.weight", C, 0, false);
    if (!c->tied_embeddings) add_param(tm, &cap, "lm_head.weight", V, C, true);
    if (quant) {
        tm->n_floats = 0;
        for (int i = 0; i < tm->n_param; i++) {
            tm->param[i].offset = tm->n_floats;
            tm->n_floats += is_qmat(tm->param[i].name) ? 1 : tm->param[i].n;
        }
    }
    tm->params = fc_aligned_alloc(tm->n_floats * sizeof(float));
    tm->grads = quant ? NULL : fc_aligned_alloc(tm->n_floats * sizeof(float));
    if (!tm->params || (!quant && !tm->grads)) {
        FC_LOG_ERROR("%s: out of memory for %zu parameters", __func__, tm->n_floats);
        fc_train_model_free(tm);
        return NULL;
    }
    tm->w.layer = fc_xcalloc((size_t)c->n_layer, sizeof(layer_w));
    tm->gw.layer = fc_xcalloc((size_t)c->n_layer, sizeof(layer_w));
    bind(tm, tm->params, &tm->w);
    if (!quant) bind(tm, tm->grads, &tm->gw);
    return tm;
}

fc_train_model *fc_train_model_new(const fc_model_config *cfg) { return model_new(cfg, false); }

/* Copies one stored tensor into dst as f32, rows x cols. */
static bool read_tensor(const fc_model *m, const char *name, float *dst, int64_t rows, int64_t cols)
{
    const char *nm;
    const fc_tensor *t;
    for (int64_t i = 0; fc_model_tensor_at(m, i, &nm, &t); i++) {
        if (strcmp(nm, name) != 0) continue;
        if (!t->data || fc_tensor_nelem(t) != rows * cols || t->ne[0] != cols) {
            FC_LOG_ERROR("%s: %s has an unexpected shape", __func__, name);
            return false;
        }
        size_t rb = fc_tensor_row_bytes(t);
        for (int64_t r = 0; r < rows; r++)
            if (!fc_dequantize_row_ref(t->type, (const uint8_t *)t->data + r * rb, dst + r * cols, cols)) {
                FC_LOG_ERROR("%s: %s: type %s cannot be read", __func__, name, fc_dtype_name(t->type));
                return false;
            }
        return true;
    }
    FC_LOG_ERROR("%s: tensor %s missing", __func__, name);
    return false;
}

/* GGUF llama files store Q/K rows of each head interleaved (2i, 2i+1) where
 * Hugging Face has (i, i + HS/2); put them back. */
static void unpermute_rows(float *w, int n_head, int hs, int64_t cols)
{
    float *tmp = fc_xmalloc((size_t)hs * (size_t)cols * sizeof(float));
    for (int h = 0; h < n_head; h++) {
        float *base = w + (int64_t)h * hs * cols;
        memcpy(tmp, base, (size_t)hs * (size_t)cols * sizeof(float));
        for (int i = 0; i < hs / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(base + (int64_t)(j * (hs / 2) + i) * cols, tmp + (int64_t)(2 * i + j) * cols,
                       (size_t)cols * sizeof(float));
    }
    free(tmp);
}

/* QLoRA: registers the stored tensor `name` with qbase under key. */
static bool add_qmat(fc_train_model *tm, const fc_model *m, const char *name, const float *key, int64_t rows,
                     int64_t cols, int perm_heads)
{
    const char *nm;
    const fc_tensor *t;
    for (int64_t i = 0; fc_model_tensor_at(m, i, &nm, &t); i++)
        if (!strcmp(nm, name)) {
            if (fc_qbase_add(tm->qb, key, t, rows, cols, perm_heads, tm->cfg.head_dim)) return true;
            FC_LOG_ERROR("%s: %s cannot stay in its stored type", __func__, name);
            return false;
        }
    FC_LOG_ERROR("%s: tensor %s missing", __func__, name);
    return false;
}

static fc_train_model *from_model(const fc_model *m, bool quant)
{
    fc_model_config cfg = *fc_model_get_config(m);
    bool permuted = !cfg.rope_neox;
    cfg.rope_neox = true;
    fc_train_model *tm = model_new(&cfg, quant);
    if (!tm) return NULL;
    if (quant) {
        tm->qb = fc_qbase_new();
        tm->frozen = true;
    }
    const fc_model_config *c = &tm->cfg;
    const int C = c->n_embd, HS = c->head_dim, Q = c->n_head * HS, KVD = c->n_head_kv * HS;
    char nm[96];
    bool ok = read_tensor(m, "token_embd.weight", tm->w.tok_embd, c->n_vocab, C) &&
              read_tensor(m, "output_norm.weight", tm->w.output_norm, 1, C);
    if (ok && !c->tied_embeddings)
        ok = quant ? add_qmat(tm, m, "output.weight", tm->w.output, c->n_vocab, C, 0)
                   : read_tensor(m, "output.weight", tm->w.output, c->n_vocab, C);
    for (int l = 0; ok && l < c->n_layer; l++) {
        layer_w *w = &tm->w.layer[l];
#define R(fmt, dst, r, cc) (snprintf(nm, sizeof nm, "blk.%d." fmt, l), read_tensor(m, nm, dst, r, cc))
#define QM(fmt, dst, r, cc, ph) (snprintf(nm, sizeof nm, "blk.%d." fmt, l), add_qmat(tm, m, nm, dst, r, cc, ph))
        if (quant)
            ok = R("attn_norm.weight", w->attn_norm, 1, C) && R("ffn_norm.weight", w->ffn_norm, 1, C) &&
                 QM("attn_q.weight", w->wq, Q, C, permuted ? c->n_head : 0) &&
                 QM("attn_k.weight", w->wk, KVD, C, permuted ? c->n_head_kv : 0) &&
                 QM("attn_v.weight", w->wv, KVD, C, 0) && QM("attn_output.weight", w->wo, C, Q, 0) &&
                 QM("ffn_gate.weight", w->w_gate, c->n_ff, C, 0) && QM("ffn_up.weight", w->w_up, c->n_ff, C, 0) &&
                 QM("ffn_down.weight", w->w_down, C, c->n_ff, 0);
        else
        ok = R("attn_norm.weight", w->attn_norm, 1, C) && R("attn_q.weight", w->wq, Q, C) &&
             R("attn_k.weight", w->wk, KVD, C) && R("attn_v.weight", w->wv, KVD, C) &&
             R("attn_output.weight", w->wo, C, Q) && R("ffn_norm.weight", w->ffn_norm, 1, C) &&
             R("ffn_gate.weight", w->w_gate, c->n_ff, C) && R("ffn_up.weight", w->w_up, c->n_ff, C) &&
             R("ffn_down.weight", w->w_down, C, c->n_ff);
        if (ok && c->qkv_bias)
            ok = R("attn_q.bias", w->bq, 1, Q) && R("attn_k.bias", w->bk, 1, KVD) &&
                 R("attn_v.bias", w->bv, 1, KVD);
#undef R
#undef QM
        if (ok && permuted) {
            if (!quant) unpermute_rows(w->wq, c->n_head, HS, C);
            if (!quant) unpermute_rows(w->wk, c->n_head_kv, HS, C);
            if (w->bq) unpermute_rows(w->bq, c->n_head, HS, 1);
            if (w->bk) unpermute_rows(w->bk, c->n_head_kv, HS, 1);
        }
    }
    if (!ok) {
        fc_train_model_free(tm);
        return NULL;
    }
    return tm;
}

fc_train_model *fc_train_model_from_model(const fc_model *m) { return from_model(m, false); }

fc_train_model *fc_train_model_from_model_qlora(const fc_model *m, const fc_lora_config *c)
{
    fc_train_model *tm = from_model(m, true);
    if (tm && fc_train_model_add_lora(tm, c) != FC_OK) {
        fc_train_model_free(tm);
        return NULL;
    }
    return tm;
}

size_t fc_train_model_qbase_bytes(const fc_train_model *tm) { return tm->qb ? fc_qbase_bytes(tm->qb) : 0; }

static void free_acts(fc_train_model *tm)
{
    fc_aligned_free(tm->acts);
    free(tm->la);
    free(tm->rope_cos);
    free(tm->rope_sin);
    free(tm->rows);
    tm->rows = NULL;
    tm->acts = NULL;
    tm->la = NULL;
    tm->rope_cos = tm->rope_sin = NULL;
    tm->act_B = tm->act_T = 0;
    tm->acts_cap = 0;
}

static void lora_free(fc_train_model *tm)
{
    struct lora *lo = tm->lora;
    if (!lo) return;
    /* the active table is the adapters': free it, put the base's back */
    fc_aligned_free(tm->params);
    fc_aligned_free(tm->grads);
    free(tm->param);
    tm->params = lo->base_params;
    tm->grads = lo->base_grads;
    tm->param = lo->base_param;
    tm->n_param = lo->base_n_param;
    tm->n_floats = lo->base_n_floats;
    free(lo->slot);
    fc_aligned_free(lo->hbuf);
    fc_aligned_free(lo->sx);
    fc_aligned_free(lo->so);
    fc_aligned_free(lo->sdh);
    fc_aligned_free(lo->sdx);
    fc_aligned_free(lo->as);
    fc_aligned_free(lo->das);
    free(lo);
    tm->lora = NULL;
    tm->frozen = false;
}

void fc_train_model_free(fc_train_model *tm)
{
    if (!tm) return;
    prof_log(tm);
    free(tm->prof);
    lora_free(tm);
    fc_qbase_free(tm->qb);
    fc_bf16set_free(tm->bf);
    free_acts(tm);
    fc_aligned_free(tm->params);
    fc_aligned_free(tm->grads);
    free(tm->w.layer);
    free(tm->gw.layer);
    free(tm->param);
    free(tm);
}

const fc_model_config *fc_train_model_config(const fc_train_model *tm) { return &tm->cfg; }
void fc_train_model_set_pool(fc_train_model *tm, fc_pool *pool) { tm->pool = pool; }
fc_pool *fc_train_model_pool(const fc_train_model *tm) { return tm->pool; }
void fc_train_model_set_reference(fc_train_model *tm, bool ref) { tm->ref = ref; }
void fc_train_model_set_checkpointing(fc_train_model *tm, bool on) { tm->ckpt = on; }

bool fc_train_model_set_bf16(fc_train_model *tm, bool on)
{
    fc_bf16set_free(tm->bf);
    tm->bf = NULL;
    if (!on || !tm->frozen || tm->qb || tm->ref) return false;
    if (!(tm->bf = fc_bf16set_new())) return false;
    const fc_model_config *cfg = &tm->cfg;
    const long C = cfg->n_embd, FF = cfg->n_ff, Q = (long)cfg->n_head * cfg->head_dim,
               KVD = (long)cfg->n_head_kv * cfg->head_dim;
    bool ok = fc_bf16set_add(tm->bf, tm->w.output, cfg->n_vocab, C);
    for (int l = 0; l < cfg->n_layer && ok; l++) {
        const layer_w *w = &tm->w.layer[l];
        ok = fc_bf16set_add(tm->bf, w->wq, Q, C) && fc_bf16set_add(tm->bf, w->wk, KVD, C) &&
             fc_bf16set_add(tm->bf, w->wv, KVD, C) && fc_bf16set_add(tm->bf, w->wo, C, Q) &&
             fc_bf16set_add(tm->bf, w->w_gate, FF, C) && fc_bf16set_add(tm->bf, w->w_up, FF, C) &&
             fc_bf16set_add(tm->bf, w->w_down, C, FF);
    }
    if (!ok) {
        fc_bf16set_free(tm->bf);
        tm->bf = NULL;
    }
    return tm->bf != NULL;
}

size_t fc_train_model_bf16_bytes(const fc_train_model *tm) { return fc_bf16set_bytes(tm->bf); }
size_t fc_train_model_activation_bytes(const fc_train_model *tm) { return tm->acts_cap * sizeof(float); }
int fc_train_model_n_params(const fc_train_model *tm) { return tm->n_param; }
const fc_train_param *fc_train_model_param(const fc_train_model *tm, int i)
{
    return i >= 0 && i < tm->n_param ? &tm->param[i] : NULL;
}
int fc_train_model_find(const fc_train_model *tm, const char *name)
{
    for (int i = 0; i < tm->n_param; i++)
        if (!strcmp(tm->param[i].name, name)) return i;
    return -1;
}
size_t fc_train_model_n_floats(const fc_train_model *tm) { return tm->n_floats; }
float *fc_train_model_params(fc_train_model *tm) { return tm->params; }
float *fc_train_model_grads(fc_train_model *tm) { return tm->grads; }

void fc_train_zero_grad(fc_train_model *tm)
{
    lap(tm, PH_OPT);
    if (tm->prof && tm->prof->passes == 0 && !tm->prof->counting) { /* from the second step on */
        memset(tm->prof, 0, offsetof(struct prof, last_wall));
        tm->prof->counting = true;
    }
    memset(tm->grads, 0, tm->n_floats * sizeof(float));
    lap(tm, PH_ZERO);
}

/* RoPE angles: inv_freq as transformers' default / linear / llama3 rope init. */
static void rope_tables(fc_train_model *tm, int T)
{
    const fc_model_config *c = &tm->cfg;
    const int half = c->head_dim / 2;
    tm->rope_cos = fc_xmalloc((size_t)T * half * sizeof(float));
    tm->rope_sin = fc_xmalloc((size_t)T * half * sizeof(float));
    for (int i = 0; i < half; i++) {
        double inv = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim);
        if (c->rope_scaling == FC_ROPE_SCALING_LLAMA3) {
            double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
            double hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
            double wl = 2 * M_PI / inv;
            if (wl > lo_wl) inv /= c->rope_factor;
            else if (wl >= hi_wl) {
                double s = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                           (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (1 - s) * inv / c->rope_factor + s * inv;
            }
        }
        for (int t = 0; t < T; t++) {
            double pos = t;
            if (c->rope_scaling == FC_ROPE_SCALING_LINEAR && c->rope_factor > 0) pos /= c->rope_factor;
            tm->rope_cos[t * half + i] = (float)cos(pos * inv);
            tm->rope_sin[t * half + i] = (float)sin(pos * inv);
        }
    }
}

static bool ensure_acts(fc_train_model *tm, int B, int T)
{
    if (tm->acts && tm->act_B == B && tm->act_T == T && tm->act_ckpt == (int)tm->ckpt) return true;
    const fc_model_config *c = &tm->cfg;
    const size_t N = (size_t)B * T, C = c->n_embd, Q = (size_t)c->n_head * c->head_dim,
                 KVD = (size_t)c->n_head_kv * c->head_dim, FF = c->n_ff, V = c->n_vocab;
    const size_t ATT = (size_t)B * c->n_head * T * T;
    size_t per_layer = N * C * 4 + N * 2 + N * Q * 2 + N * KVD * 2 + ATT + N * FF * 3;
    /* checkpointing: every layer keeps its input x; the rest is one set that
     * each layer's forward overwrites and the backward recomputes */
    const bool ck = tm->ckpt;
    size_t total = (ck ? N * C * c->n_layer + (per_layer - N * C) : per_layer * c->n_layer) + N * C * 2 + N + N * V +
                   N * C * 2 + N * Q * 2 + N * KVD * 2 + N * FF * 3 ;
    /* batches of another shape re-carve the same buffer when it is big enough
     * (the trainer trims each batch to its longest example) */
    if (total > tm->acts_cap) {
        free_acts(tm);
        tm->acts = fc_aligned_alloc(total * sizeof(float));
        if (!tm->acts) {
            FC_LOG_ERROR("%s: out of memory for activations (%zu MiB)", __func__, total * 4 >> 20);
            return false;
        }
        tm->acts_cap = total;
    }
    free(tm->rope_cos);
    free(tm->rope_sin);
    if (!tm->la) tm->la = fc_xcalloc((size_t)c->n_layer, sizeof(layer_a));
    float *p = tm->acts;
#define TAKE(n) (p += (n), p - (n))
    for (int l = 0; l < c->n_layer; l++) tm->la[l].x = ck ? TAKE(N * C) : NULL;
    for (int l = 0; l < c->n_layer; l++) {
        layer_a *a = &tm->la[l];
        if (ck && l > 0) {
            float *x = a->x;
            *a = tm->la[0];
            a->x = x;
            continue;
        }
        if (!ck) a->x = TAKE(N * C);
        a->n1 = TAKE(N * C); a->r1 = TAKE(N);
        a->q = TAKE(N * Q); a->k = TAKE(N * KVD); a->v = TAKE(N * KVD);
        a->att = TAKE(ATT); a->ao = TAKE(N * Q); a->x2 = TAKE(N * C);
        a->n2 = TAKE(N * C); a->r2 = TAKE(N);
        a->g = TAKE(N * FF); a->u = TAKE(N * FF); a->h = TAKE(N * FF);
    }
    tm->xf = TAKE(N * C); tm->nf = TAKE(N * C); tm->rf = TAKE(N); tm->logits = TAKE(N * V);
    tm->dx = TAKE(N * C); tm->dn = TAKE(N * C); tm->dq = TAKE(N * Q); tm->dao = TAKE(N * Q);
    tm->dk = TAKE(N * KVD); tm->dv = TAKE(N * KVD);
    tm->dg = TAKE(N * FF); tm->du = TAKE(N * FF); tm->dh = TAKE(N * FF);
#undef TAKE
    FC_ASSERT((size_t)(p - tm->acts) == total);
    rope_tables(tm, T);
    free(tm->rows);
    tm->rows = fc_xmalloc(N * sizeof(int32_t));
    tm->act_B = B;
    tm->act_T = T;
    tm->act_ckpt = ck;
    return true;
}

/* ---- running a function on the pool ---- */

static void par(fc_train_model *tm, fc_pool_fn fn, void *ctx)
{
    if (tm->pool && fc_pool_size(tm->pool) > 1) fc_pool_run(tm->pool, fn, ctx);
    else fn(ctx, 0, 1);
}

/* ---- matmul: out (N, OC) = inp (N, IC) @ w (OC, IC)^T + bias ---- */

typedef struct mm_ctx {
    float *out, *dinp, *dw, *db;
    const float *inp, *w, *bias, *dout;
    long N, IC, OC;
    bool ref;        /* the scalar reference loops instead of the kernels */
} mm_ctx;

static float dot(const float *a, const float *b, long n)
{
    float s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

static void mm_fwd_fn(void *p, int ith, int nth)
{
    mm_ctx *c = p;
    long lo, hi;
    if (c->ref) {
        fc_split_range(c->N, ith, nth, 1, &lo, &hi);
        for (long n = lo; n < hi; n++) {
            const float *x = c->inp + n * c->IC;
            float *y = c->out + n * c->OC;
            for (long o = 0; o < c->OC; o++)
                y[o] = dot(x, c->w + o * c->IC, c->IC) + (c->bias ? c->bias[o] : 0.0f);
        }
        return;
    }
    /* fast: the engine's f32 kernel over this thread's weight rows, all tokens */
    fc_split_range(c->OC, ith, nth, 8, &lo, &hi);
    if (lo >= hi) return;
    fc_matmul_exact(FC_DTYPE_F32, c->w, (size_t)c->IC * sizeof(float), c->IC, c->inp, c->IC, (int)c->N,
                    c->out, c->OC, lo, hi);
    if (c->bias)
        for (long n = 0; n < c->N; n++)
            for (long o = lo; o < hi; o++) c->out[n * c->OC + o] += c->bias[o];
}

static void matmul_forward(fc_train_model *tm, float *out, const float *inp, const float *w,
                           const float *bias, long N, long IC, long OC)
{
    if (tm->qb && fc_qbase_forward(tm->qb, tm->pool, out, inp, w, bias, N, IC, OC)) return; /* QLoRA */
    if (tm->bf && !tm->ref && fc_bf16set_forward(tm->bf, tm->pool, out, inp, w, bias, N, IC, OC)) return; /* --bf16 */
    if (!tm->ref) {
        fc_train_gemm_forward(tm->pool, out, inp, w, bias, N, IC, OC);
        return;
    }
    mm_ctx c = {.out = out, .inp = inp, .w = w, .bias = bias, .N = N, .IC = IC, .OC = OC, .ref = tm->ref};
    par(tm, mm_fwd_fn, &c);
}

/* dinp (N, IC) += dout @ w; dw (OC, IC) += dout^T @ inp; db += sum_n dout.
 * Threads split the rows of dinp, then the rows of dw. */
static void mm_bwd_fn(void *p, int ith, int nth)
{
    mm_ctx *c = p;
    long lo, hi;
    if (c->dinp) {
        /* blocks of NB rows share each weight row read (the fast path; the
         * reference takes one row at a time) */
        const long NB = c->ref ? 1 : 8, nblk = (c->N + NB - 1) / NB;
        fc_split_range(nblk, ith, nth, 1, &lo, &hi);
        for (long blk = lo; blk < hi; blk++) {
            const long n0 = blk * NB, n1 = FC_MIN(c->N, n0 + NB);
            for (long o = 0; o < c->OC; o++) {
                const float *wr = c->w + o * c->IC;
                for (long n = n0; n < n1; n++) {
                    const float d = c->dout[n * c->OC + o];
                    if (d == 0.0f) continue;
                    float *dx = c->dinp + n * c->IC;
                    if (c->ref)
                        for (long i = 0; i < c->IC; i++) dx[i] += d * wr[i];
                    else
                        fc_axpy_f32(dx, d, wr, (int)c->IC);
                }
            }
        }
    }
    if (!c->dw) return; /* frozen weights */
    fc_split_range(c->OC, ith, nth, 1, &lo, &hi);
    for (long o = lo; o < hi; o++) {
        float *dwr = c->dw + o * c->IC;
        float dbo = 0;
        for (long n = 0; n < c->N; n++) {
            const float d = c->dout[n * c->OC + o], *x = c->inp + n * c->IC;
            dbo += d;
            if (d == 0.0f) continue;
            if (c->ref)
                for (long i = 0; i < c->IC; i++) dwr[i] += d * x[i];
            else
                fc_axpy_f32(dwr, d, x, (int)c->IC);
        }
        if (c->db) c->db[o] += dbo;
    }
}

static void matmul_backward(fc_train_model *tm, float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *w, long N, long IC, long OC)
{
    if (tm->qb && fc_qbase_backward(tm->qb, tm->pool, dinp, dw, db, dout, w, N, IC, OC)) return; /* QLoRA */
    if (tm->bf && !tm->ref && !dw && !db && dinp && fc_bf16set_backward(tm->bf, tm->pool, dinp, dout, w, N, IC, OC)) return;
    if (!tm->ref) {
        fc_train_gemm_backward(tm->pool, dinp, dw, db, dout, inp, w, N, IC, OC);
        return;
    }
    mm_ctx c = {.dinp = dinp, .dw = dw, .db = db, .dout = dout, .inp = inp, .w = w,
                .N = N, .IC = IC, .OC = OC, .ref = tm->ref};
    par(tm, mm_bwd_fn, &c);
}

/* ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w ----
 * On the pool: threads take rows (the forward, dx) or columns (dw, summed
 * over the rows in order), so the results do not depend on the threads. */

typedef struct rms_ctx {
    float *y, *rstd, *dx, *dw;
    const float *x, *w, *dy, *rs;
    long N, C;
    float eps;
} rms_ctx;

/* sum_i a_i b_i and sum_i a_i b_i c_i in double, over 8 partial sums (gcc
 * vectorizes the lanes; one running double sum is bound by the add's
 * latency) */
static double dot2_d(const float *a, const float *b, long n)
{
    double s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += (double)a[i + j] * b[i + j];
    double r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += (double)a[i] * b[i];
    return r;
}

static double dot3_d(const float *a, const float *b, const float *c, long n)
{
    double s[8] = {0};
    long i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += (double)a[i + j] * b[i + j] * c[i + j];
    double r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += (double)a[i] * b[i] * c[i];
    return r;
}

static void rms_fwd_fn(void *p, int ith, int nth)
{
    const rms_ctx *c = p;
    const long C = c->C;
    long lo, hi;
    fc_split_range(c->N, ith, nth, 1, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const float *xr = c->x + n * C;
        const double ss = dot2_d(xr, xr, C);
        float r = 1.0f / sqrtf((float)(ss / C) + c->eps);
        c->rstd[n] = r;
        for (long i = 0; i < C; i++) c->y[n * C + i] = xr[i] * r * c->w[i];
    }
}

static void rmsnorm_forward(fc_train_model *tm, float *y, float *rstd, const float *x, const float *w, long N,
                            long C, float eps)
{
    rms_ctx c = {.y = y, .rstd = rstd, .x = x, .w = w, .N = N, .C = C, .eps = eps};
    par(tm, rms_fwd_fn, &c);
}

/* dx += r * g - r^3 * x * sum(g * x) / C with g = dy * w; dw += dy * x * r. */
static void rms_bwd_dx_fn(void *p, int ith, int nth)
{
    const rms_ctx *c = p;
    const long C = c->C;
    long lo, hi;
    fc_split_range(c->N, ith, nth, 1, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        const float *xr = c->x + n * C, *dyr = c->dy + n * C;
        const float r = c->rs[n];
        const double gx = dot3_d(dyr, c->w, xr, C);
        const float k = (float)(gx / C) * r * r * r;
        for (long i = 0; i < C; i++) c->dx[n * C + i] += r * dyr[i] * c->w[i] - k * xr[i];
    }
}

static void rms_bwd_dw_fn(void *p, int ith, int nth)
{
    const rms_ctx *c = p;
    const long C = c->C;
    long lo, hi;
    fc_split_range(C, ith, nth, 16, &lo, &hi);
    for (long n = 0; n < c->N; n++) {
        const float *xr = c->x + n * C, *dyr = c->dy + n * C;
        const float r = c->rs[n];
        for (long i = lo; i < hi; i++) c->dw[i] += dyr[i] * xr[i] * r;
    }
}

static void rmsnorm_backward(fc_train_model *tm, float *dx, float *dw, const float *dy, const float *x,
                             const float *w, const float *rstd, long N, long C)
{
    rms_ctx c = {.dx = dx, .dw = dw, .dy = dy, .x = x, .w = w, .rs = rstd, .N = N, .C = C};
    par(tm, rms_bwd_dx_fn, &c);
    if (dw) par(tm, rms_bwd_dw_fn, &c);
}

/* ---- RoPE, rotate-half, on (N, nh, HS) rows at position n % T ---- */

static void rope_apply(const fc_train_model *tm, float *x, long N, int T, int nh, bool inverse)
{
    const int HS = tm->cfg.head_dim, half = HS / 2;
    for (long n = 0; n < N; n++) {
        const float *cs = tm->rope_cos + (n % T) * half, *sn = tm->rope_sin + (n % T) * half;
        for (int h = 0; h < nh; h++) {
            float *v = x + (n * nh + h) * HS;
            for (int i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half], c = cs[i], s = inverse ? -sn[i] : sn[i];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

/* ---- attention ---- */

typedef struct att_ctx {
    fc_train_model *tm;
    layer_a *a;
    int B, T;
    const float *dao; /* backward */
} att_ctx;

/* Forward: task = (b, h) pairs. */
static void att_fwd_fn(void *p, int ith, int nth)
{
    att_ctx *c = p;
    const fc_model_config *cfg = &c->tm->cfg;
    const int NH = cfg->n_head, HS = cfg->head_dim, G = NH / cfg->n_head_kv, T = c->T;
    const long Q = (long)NH * HS, KVD = (long)cfg->n_head_kv * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    long lo, hi;
    fc_split_range((long)c->B * NH, ith, nth, 1, &lo, &hi);
    for (long task = lo; task < hi; task++) {
        const int b = (int)(task / NH), h = (int)(task % NH), kh = h / G;
        if (!c->tm->ref) { /* fast: GEMMs over the head's T x T square (train_fast.c) */
            fc_train_attn_forward(c->a->att + ((long)b * NH + h) * T * T, c->a->ao + (long)b * T * Q + h * HS,
                                  c->a->q + (long)b * T * Q + h * HS, c->a->k + (long)b * T * KVD + kh * HS,
                                  c->a->v + (long)b * T * KVD + kh * HS, T, HS, Q, KVD, scale);
            continue;
        }
        for (int t = 0; t < T; t++) {
            const float *q = c->a->q + ((long)b * T + t) * Q + h * HS;
            float *att = c->a->att + (((long)b * NH + h) * T + t) * T;
            float mx = -INFINITY;
            for (int s = 0; s <= t; s++) {
                att[s] = dot(q, c->a->k + ((long)b * T + s) * KVD + kh * HS, HS) * scale;
                if (att[s] > mx) mx = att[s];
            }
            float sum = 0;
            for (int s = 0; s <= t; s++) sum += att[s] = expf(att[s] - mx);
            for (int s = 0; s <= t; s++) att[s] /= sum;
            for (int s = t + 1; s < T; s++) att[s] = 0;
            float *o = c->a->ao + ((long)b * T + t) * Q + h * HS;
            memset(o, 0, (size_t)HS * sizeof(float));
            for (int s = 0; s <= t; s++) {
                const float *v = c->a->v + ((long)b * T + s) * KVD + kh * HS;
                for (int i = 0; i < HS; i++) o[i] += att[s] * v[i];
            }
        }
    }
}

/* Backward: task = (b, kv head), so that the key/value gradients a group of
 * query heads shares are written by one thread. dq, dk, dv are zeroed by the
 * caller. */
static void att_bwd_fn(void *p, int ith, int nth)
{
    att_ctx *c = p;
    fc_train_model *tm = c->tm;
    const fc_model_config *cfg = &tm->cfg;
    const int NH = cfg->n_head, NKV = cfg->n_head_kv, HS = cfg->head_dim, G = NH / NKV, T = c->T;
    const long Q = (long)NH * HS, KVD = (long)NKV * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    /* dP of one row (reference) or of the head's T x T square (fast) */
    float *scratch = fc_xmalloc((size_t)T * (tm->ref ? 1 : (size_t)T) * sizeof(float));
    long lo, hi;
    fc_split_range((long)c->B * NKV, ith, nth, 1, &lo, &hi);
    for (long task = lo; task < hi; task++) {
        const int b = (int)(task / NKV), kh = (int)(task % NKV);
        for (int h = kh * G; h < (kh + 1) * G && !tm->ref; h++) {
            const long qo = (long)b * T * Q + h * HS, kvo = (long)b * T * KVD + kh * HS;
            fc_train_attn_backward(tm->dq + qo, tm->dk + kvo, tm->dv + kvo, scratch,
                                   c->a->att + ((long)b * NH + h) * T * T, c->dao + qo, c->a->q + qo,
                                   c->a->k + kvo, c->a->v + kvo, T, HS, Q, KVD, scale);
        }
        for (int h = kh * G; h < (kh + 1) * G && tm->ref; h++)
            for (int t = 0; t < T; t++) {
                const float *att = c->a->att + (((long)b * NH + h) * T + t) * T;
                const float *dout = c->dao + ((long)b * T + t) * Q + h * HS;
                const float *q = c->a->q + ((long)b * T + t) * Q + h * HS;
                float *dq = tm->dq + ((long)b * T + t) * Q + h * HS;
                float dsum = 0;
                for (int s = 0; s <= t; s++) {
                    const long kv = ((long)b * T + s) * KVD + kh * HS;
                    scratch[s] = dot(dout, c->a->v + kv, HS); /* dP */
                    dsum += scratch[s] * att[s];
                    float *dv = tm->dv + kv;
                    for (int i = 0; i < HS; i++) dv[i] += att[s] * dout[i];
                }
                for (int s = 0; s <= t; s++) {
                    const long kv = ((long)b * T + s) * KVD + kh * HS;
                    const float ds = att[s] * (scratch[s] - dsum) * scale;
                    const float *k = c->a->k + kv;
                    float *dk = tm->dk + kv;
                    for (int i = 0; i < HS; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
    }
    free(scratch);
}

/* ---- cross-entropy over the shifted labels ---- */

typedef struct ce_ctx {
    float *logits;       /* (N, V), replaced by dlogits when grad; with rows: (M, V) */
    const int32_t *rows; /* NULL, or the position of each of the M logits rows */
    long M;
    const int32_t *labels;
    int T;
    long N, V;
    double inv_denom;
    bool grad;
    bool ref;            /* the reference loops (double exp) */
    double *loss;        /* (nth) partial sums */
} ce_ctx;

static void ce_fn(void *p, int ith, int nth)
{
    ce_ctx *c = p;
    long lo, hi;
    fc_split_range(c->rows ? c->M : c->N, ith, nth, 1, &lo, &hi);
    double sum = 0;
    for (long m = lo; m < hi; m++) {
        const long n = c->rows ? c->rows[m] : m;
        float *z = c->logits + m * c->V;
        const int t = (int)(n % c->T);
        const int32_t y = t + 1 < c->T ? c->labels[n + 1] : FC_IGNORE_INDEX;
        if (y == FC_IGNORE_INDEX) {
            if (c->grad) memset(z, 0, (size_t)c->V * sizeof(float));
            continue;
        }
        if (!c->ref) {
            /* fast: one vectorized exp pass, then the scale */
            const float zy = z[y];
            double lse;
            const double se = fc_train_softmax_row(z, c->V, &lse);
            sum += lse - zy;
            if (c->grad) {
                fc_train_scale(z, (float)(c->inv_denom / se), c->V);
                z[y] -= (float)c->inv_denom;
            }
            continue;
        }
        float mx = -INFINITY;
        for (long v = 0; v < c->V; v++) mx = z[v] > mx ? z[v] : mx;
        double se = 0;
        for (long v = 0; v < c->V; v++) se += exp((double)z[v] - mx);
        const double lse = mx + log(se);
        sum += lse - z[y];
        if (c->grad) {
            for (long v = 0; v < c->V; v++) z[v] = (float)(exp(z[v] - lse) * c->inv_denom);
            z[y] -= (float)c->inv_denom;
        }
    }
    c->loss[ith] = sum;
}

long fc_train_count_labels(const int32_t *labels, int B, int T)
{
    long n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 1; t < T; t++) n += labels[(long)b * T + t] != FC_IGNORE_INDEX;
    return n;
}

/* ---- the whole pass ---- */

static void silu_mul(float *h, const float *g, const float *u, long n)
{
    for (long i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void add(float *y, const float *a, const float *b, long n)
{
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}

/* ---- LoRA forward / backward ---- */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* dst = x * keep / (1 - p): the dropout of slot `key` at this forward; the
 * mask is a hash of (seed, forward count, slot, element), so the backward
 * regenerates it instead of storing it. */
static void lora_dropout(const struct lora *lo, int key, float *dst, const float *x, long n)
{
    const double p = lo->c.dropout;
    const float inv = (float)(1.0 / (1.0 - p));
    const uint64_t base = mix64(lo->c.seed ^ mix64(lo->calls * 0x9e3779b97f4a7c15ULL + (uint64_t)key));
    for (long i = 0; i < n; i++) {
        double u = (double)(mix64(base + (uint64_t)i * 0x9e3779b97f4a7c15ULL) >> 11) * 0x1.0p-53;
        dst[i] = u < p ? 0.0f : x[i] * inv;
    }
}

/* The group of slot t: its first slot and one past its last. */
static void lora_group(int t, int *t0, int *t1)
{
    *t0 = t <= 2 ? 0 : t == 3 ? 3 : t <= 5 ? 4 : 6;
    *t1 = t <= 2 ? 3 : t == 3 ? 4 : t <= 5 ? 6 : 7;
}

static bool lora_ensure(fc_train_model *tm, long N)
{
    struct lora *lo = tm->lora;
    /* the h layout follows the path: set again when the path changed
     * (fc_train_model_set_reference between passes) */
    const bool fused = !tm->ref && lo->c.dropout == 0;
    if (lo->act_N >= N && lo->fused == fused) return true;
    N = FC_MAX(N, lo->act_N);
    const int L = tm->cfg.n_layer, r = lo->c.r;
    long max_in = 0, max_out = 0, n_slots = 0;
    for (int k = 0; k < L * LORA_NT; k++)
        if (lo->slot[k].A) {
            max_in = FC_MAX(max_in, lo->slot[k].in);
            max_out = FC_MAX(max_out, lo->slot[k].out);
            n_slots++;
        }
    fc_aligned_free(lo->hbuf);
    fc_aligned_free(lo->sx);
    fc_aligned_free(lo->so);
    fc_aligned_free(lo->sdh);
    fc_aligned_free(lo->sdx);
    fc_aligned_free(lo->as);
    fc_aligned_free(lo->das);
    lo->hbuf = fc_aligned_alloc((size_t)(n_slots * N * r) * sizeof(float));
    lo->sx = fc_aligned_alloc((size_t)(N * max_in) * sizeof(float));
    lo->so = fc_aligned_alloc((size_t)(N * max_out) * sizeof(float));
    lo->sdh = fc_aligned_alloc((size_t)(N * LORA_GMAX * r) * sizeof(float));
    lo->sdx = fc_aligned_alloc((size_t)(N * max_in) * sizeof(float));
    lo->as = fc_aligned_alloc((size_t)(LORA_GMAX * r * max_in) * sizeof(float));
    lo->das = fc_aligned_alloc((size_t)(LORA_GMAX * r * max_in) * sizeof(float));
    if (!lo->hbuf || !lo->sx || !lo->so || !lo->sdh || !lo->sdx || !lo->as || !lo->das) {
        FC_LOG_ERROR("%s: out of memory for LoRA activations", __func__);
        lo->act_N = 0;
        return false;
    }
    /* h: one (N, m r) block per group of m slots present when fused (slot
     * j of the group owns columns j r ..), else one (N, r) block a slot */
    lo->fused = fused;
    float *p = lo->hbuf;
    for (int l = 0; l < L; l++)
        for (int t = 0; t < LORA_NT;) {
            int t0, t1, m = 0;
            lora_group(t, &t0, &t1);
            for (int u = t0; u < t1; u++) m += lo->slot[l * LORA_NT + u].A != NULL;
            for (int u = t0, j = 0; u < t1; u++) {
                lora_slot *sl = &lo->slot[l * LORA_NT + u];
                if (!sl->A) continue;
                sl->h = lo->fused ? p + (long)j++ * r : p;
                sl->hs = lo->fused ? (long)m * r : r;
                if (!lo->fused) p += N * r;
            }
            if (lo->fused) p += N * m * r;
            t = t1;
        }
    lo->act_N = N;
    return true;
}

/* out (N, out) += scaling * dropout(x) A^T B^T */
static void lora_forward(fc_train_model *tm, int l, int t, const float *x, float *out, long N)
{
    struct lora *lo = tm->lora;
    if (!lo) return;
    lora_slot *sl = &lo->slot[l * LORA_NT + t];
    if (!sl->A) return;
    const float *xd = x;
    if (lo->train && lo->c.dropout > 0) {
        lora_dropout(lo, l * LORA_NT + t, lo->sx, x, N * sl->in);
        xd = lo->sx;
    }
    matmul_forward(tm, sl->h, xd, sl->A, NULL, N, sl->in, lo->c.r);
    const float sc = (float)lo->scaling;
    if (!tm->ref) { /* fast: out += sc h B^T in one GEMM */
        fc_train_gemm(tm->pool, false, true, N, sl->out, lo->c.r, sc, sl->h, sl->hs, sl->B, lo->c.r, 1.0f, out,
                      sl->out);
        return;
    }
    matmul_forward(tm, lo->so, sl->h, sl->B, NULL, N, lo->c.r, sl->out);
    for (long i = 0; i < N * sl->out; i++) out[i] += sc * lo->so[i];
}

/* Given dout (N, out): dB += scaling dout^T h, dA += dh^T dropout(x),
 * dinp += dropout'(dh A) with dh = scaling dout B. */
static void lora_backward(fc_train_model *tm, int l, int t, const float *x, const float *dout, float *dinp,
                          long N)
{
    struct lora *lo = tm->lora;
    if (!lo) return;
    lora_slot *sl = &lo->slot[l * LORA_NT + t];
    if (!sl->A) return;
    const int r = lo->c.r;
    const float sc = (float)lo->scaling;
    if (!tm->ref) { /* fast: the scaling as the GEMMs' alpha: dh = sc dout B, dB += sc dout^T h */
        fc_train_gemm(tm->pool, false, false, N, r, sl->out, sc, dout, sl->out, sl->B, r, 0.0f, lo->sdh, r);
        fc_train_gemm(tm->pool, true, false, sl->out, r, N, sc, dout, sl->out, sl->h, sl->hs, 1.0f, sl->dB, r);
    } else {
        for (long i = 0; i < N * sl->out; i++) lo->so[i] = sc * dout[i];
        memset(lo->sdh, 0, (size_t)(N * r) * sizeof(float));
        matmul_backward(tm, lo->sdh, sl->dB, NULL, lo->so, sl->h, sl->B, N, r, sl->out);
    }
    const bool drop = lo->train && lo->c.dropout > 0;
    const float *xd = x;
    if (drop) {
        lora_dropout(lo, l * LORA_NT + t, lo->sx, x, N * sl->in);
        xd = lo->sx;
    }
    if (!drop) {
        matmul_backward(tm, dinp, sl->dA, NULL, lo->sdh, xd, sl->A, N, sl->in, r);
        return;
    }
    memset(lo->sdx, 0, (size_t)(N * sl->in) * sizeof(float));
    matmul_backward(tm, lo->sdx, sl->dA, NULL, lo->sdh, xd, sl->A, N, sl->in, r);
    /* the dropout's backward is the same mask and scale: apply it to sdx */
    lora_dropout(lo, l * LORA_NT + t, lo->sdx, lo->sdx, N * sl->in);
    for (long i = 0; i < N * sl->in; i++) dinp[i] += lo->sdx[i];
}

/* The slots of group [t0, t1) present at layer l (their slot pointers in
 * sl); how many. */
static int lora_present(struct lora *lo, int l, int t0, int t1, lora_slot **sl)
{
    int m = 0;
    for (int t = t0; t < t1; t++)
        if (lo->slot[l * LORA_NT + t].A) sl[m++] = &lo->slot[l * LORA_NT + t];
    return m;
}

/* lo->as = the A of the m slots stacked: (m r, in). */
static void lora_stack_a(struct lora *lo, lora_slot *const *sl, int m)
{
    const size_t n = (size_t)lo->c.r * sl[0]->in;
    for (int j = 0; j < m; j++) memcpy(lo->as + j * n, sl[j]->A, n * sizeof(float));
}

/* lora_forward for the slots t0 .. t1-1 of one group, which all read x;
 * outs[t - t0] is slot t's output. Fused: h of every slot in one GEMM. */
static void lora_forward_group(fc_train_model *tm, int l, int t0, int t1, const float *x, float *const *outs,
                               long N)
{
    struct lora *lo = tm->lora;
    if (!lo) return;
    if (!lo->fused) {
        for (int t = t0; t < t1; t++) lora_forward(tm, l, t, x, outs[t - t0], N);
        return;
    }
    lora_slot *sl[LORA_GMAX];
    const int m = lora_present(lo, l, t0, t1, sl), r = lo->c.r;
    if (!m) return;
    const long in = sl[0]->in, hs = sl[0]->hs;
    lora_stack_a(lo, sl, m);
    fc_train_gemm(tm->pool, false, true, N, (long)m * r, in, 1.0f, x, in, lo->as, in, 0.0f, sl[0]->h, hs);
    for (int j = 0; j < m; j++)
        fc_train_gemm(tm->pool, false, true, N, sl[j]->out, r, (float)lo->scaling, sl[j]->h, hs, sl[j]->B, r, 1.0f,
                      outs[sl[j] - &lo->slot[l * LORA_NT + t0]], sl[j]->out);
}

/* lora_backward for the slots t0 .. t1-1 of one group (douts[t - t0] is
 * slot t's output gradient); fused: the h gradients of every slot side by
 * side, then one GEMM for dinp and one for the stacked dA. */
static void lora_backward_group(fc_train_model *tm, int l, int t0, int t1, const float *x,
                                const float *const *douts, float *dinp, long N)
{
    struct lora *lo = tm->lora;
    if (!lo) return;
    if (!lo->fused) {
        for (int t = t0; t < t1; t++) lora_backward(tm, l, t, x, douts[t - t0], dinp, N);
        return;
    }
    lora_slot *sl[LORA_GMAX];
    const int m = lora_present(lo, l, t0, t1, sl), r = lo->c.r;
    if (!m) return;
    const long in = sl[0]->in, hs = sl[0]->hs, R = (long)m * r;
    const float sc = (float)lo->scaling;
    float *dh = lo->sdh; /* (N, R) */
    for (int j = 0; j < m; j++) {
        const float *dout = douts[sl[j] - &lo->slot[l * LORA_NT + t0]];
        const long out = sl[j]->out;
        fc_train_gemm(tm->pool, false, false, N, r, out, sc, dout, out, sl[j]->B, r, 0.0f, dh + (long)j * r, R);
        fc_train_gemm(tm->pool, true, false, out, r, N, sc, dout, out, sl[j]->h, hs, 1.0f, sl[j]->dB, r);
    }
    lora_stack_a(lo, sl, m);
    fc_train_gemm(tm->pool, false, false, N, in, R, 1.0f, dh, R, lo->as, in, 1.0f, dinp, in);
    fc_train_gemm(tm->pool, true, false, R, in, N, 1.0f, dh, R, x, in, 0.0f, lo->das, in);
    const long n = (long)r * in;
    for (int j = 0; j < m; j++)
        for (long i = 0; i < n; i++) sl[j]->dA[i] += lo->das[j * n + i];
}

unsigned fc_lora_parse_targets(const char *list)
{
    unsigned m = 0;
    const char *s = list;
    while (s && *s) {
        while (*s == ',' || *s == ' ') s++;
        if (!*s) break;
        size_t n = strcspn(s, ", ");
        int k = -1;
        for (int t = 0; t < LORA_NT; t++)
            if (strlen(lora_names[t]) == n && !strncmp(s, lora_names[t], n)) k = t;
        if (k < 0) return 0;
        m |= 1u << k;
        s += n;
    }
    return m;
}

enum fc_status fc_train_model_add_lora(fc_train_model *tm, const fc_lora_config *c)
{
    if (tm->lora || c->r <= 0 || !(c->dropout >= 0 && c->dropout < 1) || !c->targets ||
        c->targets >= (1u << LORA_NT)) {
        FC_LOG_ERROR("%s: r > 0, dropout in [0, 1) and known target modules are needed (once)", __func__);
        return FC_ERR_ARG;
    }
    const fc_model_config *cfg = &tm->cfg;
    const int L = cfg->n_layer;
    const long C = cfg->n_embd, Q = (long)cfg->n_head * cfg->head_dim,
               KVD = (long)cfg->n_head_kv * cfg->head_dim, FF = cfg->n_ff;
    const long ins[LORA_NT] = {C, C, C, Q, C, C, FF}, outs[LORA_NT] = {Q, KVD, KVD, C, FF, FF, C};
    struct lora *lo = fc_xcalloc(1, sizeof *lo);
    lo->c = *c;
    lo->scaling = c->alpha / c->r;
    lo->slot = fc_xcalloc((size_t)L * LORA_NT, sizeof *lo->slot);
    lo->base_n_param = tm->n_param;
    lo->base_param = tm->param;
    lo->base_n_floats = tm->n_floats;
    lo->base_params = tm->params;
    lo->base_grads = tm->grads;
    tm->lora = lo;
    tm->frozen = true;
    tm->param = NULL;
    tm->n_param = 0;
    tm->n_floats = 0;
    tm->params = tm->grads = NULL;
    int cap = 0;
    char nm[96];
    for (int l = 0; l < L; l++)
        for (int t = 0; t < LORA_NT; t++) {
            if (!(c->targets & (1u << t))) continue;
            const char *grp = t < 4 ? "self_attn" : "mlp";
            snprintf(nm, sizeof nm, "base_model.model.model.layers.%d.%s.%s.lora_A.weight", l, grp, lora_names[t]);
            add_param(tm, &cap, nm, c->r, ins[t], true);
            snprintf(nm, sizeof nm, "base_model.model.model.layers.%d.%s.%s.lora_B.weight", l, grp, lora_names[t]);
            add_param(tm, &cap, nm, outs[t], c->r, true);
        }
    tm->params = fc_aligned_alloc(FC_MAX(tm->n_floats, 1) * sizeof(float));
    tm->grads = fc_aligned_alloc(FC_MAX(tm->n_floats, 1) * sizeof(float));
    if (!tm->params || !tm->grads) {
        FC_LOG_ERROR("%s: out of memory", __func__);
        lora_free(tm);
        return FC_ERR_NOMEM;
    }
    memset(tm->grads, 0, tm->n_floats * sizeof(float));
    /* PEFT's init: A kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0 */
    uint64_t st = c->seed ^ 0x5eed10a4ULL;
    int k = 0;
    for (int l = 0; l < L; l++)
        for (int t = 0; t < LORA_NT; t++) {
            if (!(c->targets & (1u << t))) continue;
            lora_slot *sl = &lo->slot[l * LORA_NT + t];
            const fc_train_param *pa = &tm->param[k++], *pb = &tm->param[k++];
            sl->A = tm->params + pa->offset;
            sl->dA = tm->grads + pa->offset;
            sl->B = tm->params + pb->offset;
            sl->dB = tm->grads + pb->offset;
            sl->in = ins[t];
            sl->out = outs[t];
            const double bound = 1.0 / sqrt((double)ins[t]);
            for (size_t i = 0; i < pa->n; i++) {
                st += 0x9e3779b97f4a7c15ULL;
                double u = (double)(mix64(st) >> 11) * 0x1.0p-53;
                sl->A[i] = (float)((2 * u - 1) * bound);
            }
            memset(sl->B, 0, pb->n * sizeof(float));
        }
    return FC_OK;
}

bool fc_train_model_has_lora(const fc_train_model *tm) { return tm->lora != NULL; }
const fc_lora_config *fc_train_model_lora(const fc_train_model *tm) { return tm->lora ? &tm->lora->c : NULL; }
uint64_t fc_train_lora_calls(const fc_train_model *tm) { return tm->lora ? tm->lora->calls : 0; }
void fc_train_lora_set_calls(fc_train_model *tm, uint64_t calls)
{
    if (tm->lora) tm->lora->calls = calls;
}

/* One decoder layer's forward from tm->la[l].x, keeping its activations in
 * tm->la[l]; the layer's output goes to xo. */
static void layer_forward(fc_train_model *tm, int l, int B, int T, float *xo)
{
    const fc_model_config *cfg = &tm->cfg;
    const long N = (long)B * T, C = cfg->n_embd, FF = cfg->n_ff;
    const long Q = (long)cfg->n_head * cfg->head_dim, KVD = (long)cfg->n_head_kv * cfg->head_dim;
    layer_a *a = &tm->la[l];
    const layer_w *w = &tm->w.layer[l];
    lap(tm, -1);
    rmsnorm_forward(tm, a->n1, a->r1, a->x, w->attn_norm, N, C, cfg->rms_eps);
    lap(tm, PH_NORM);
    matmul_forward(tm, a->q, a->n1, w->wq, w->bq, N, C, Q);
    matmul_forward(tm, a->k, a->n1, w->wk, w->bk, N, C, KVD);
    matmul_forward(tm, a->v, a->n1, w->wv, w->bv, N, C, KVD);
    lap(tm, PH_PROJ_F);
    lora_forward_group(tm, l, 0, 3, a->n1, (float *const[]){a->q, a->k, a->v}, N);
    lap(tm, PH_LORA_F);
    rope_apply(tm, a->q, N, T, cfg->n_head, false);
    rope_apply(tm, a->k, N, T, cfg->n_head_kv, false);
    lap(tm, PH_ROPE);
    att_ctx ac = {.tm = tm, .a = a, .B = B, .T = T};
    par(tm, att_fwd_fn, &ac);
    lap(tm, PH_ATTN_F);
    matmul_forward(tm, a->x2, a->ao, w->wo, NULL, N, Q, C);
    lap(tm, PH_PROJ_F);
    lora_forward(tm, l, 3, a->ao, a->x2, N);
    lap(tm, PH_LORA_F);
    add(a->x2, a->x2, a->x, N * C);
    rmsnorm_forward(tm, a->n2, a->r2, a->x2, w->ffn_norm, N, C, cfg->rms_eps);
    lap(tm, PH_NORM);
    matmul_forward(tm, a->g, a->n2, w->w_gate, NULL, N, C, FF);
    matmul_forward(tm, a->u, a->n2, w->w_up, NULL, N, C, FF);
    lap(tm, PH_PROJ_F);
    lora_forward_group(tm, l, 4, 6, a->n2, (float *const[]){a->g, a->u}, N);
    lap(tm, PH_LORA_F);
    if (tm->ref) silu_mul(a->h, a->g, a->u, N * FF);
    else fc_train_silu_mul(tm->pool, a->h, a->g, a->u, N * FF);
    lap(tm, PH_SILU_F);
    matmul_forward(tm, xo, a->h, w->w_down, NULL, N, FF, C);
    lap(tm, PH_PROJ_F);
    lora_forward(tm, l, 6, a->h, xo, N);
    add(xo, xo, a->x2, N * C);
    lap(tm, PH_LORA_F);
}

static double run(fc_train_model *tm, const int32_t *ids, const int32_t *labels, int B, int T,
                  double denom, bool grad)
{
    const fc_model_config *cfg = &tm->cfg;
    const long N = (long)B * T, C = cfg->n_embd, V = cfg->n_vocab, FF = cfg->n_ff;
    const long Q = (long)cfg->n_head * cfg->head_dim, KVD = (long)cfg->n_head_kv * cfg->head_dim;
    const int L = cfg->n_layer;
    if (B <= 0 || T <= 0) return NAN;
    for (long n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V) {
            FC_LOG_ERROR("%s: token id %d outside [0, %ld)", __func__, ids[n], V);
            return NAN;
        }
    if (!ensure_acts(tm, B, T)) return NAN;
    if (tm->lora) {
        if (!lora_ensure(tm, N)) return NAN;
        tm->lora->train = grad;
    }
    if (denom <= 0) denom = (double)fc_train_count_labels(labels, B, T);
    if (grad && !tm->prof && fc_log_get_level() <= FC_LOG_LEVEL_INFO) {
        tm->prof = fc_xcalloc(1, sizeof *tm->prof);
        tm->prof->passes = -1; /* the first pass is not counted */
    }
    struct prof *prof = tm->prof;
    if (!grad) tm->prof = NULL; /* evaluation passes are not timed */
    lap(tm, -1);

    /* forward */
    for (long n = 0; n < N; n++)
        memcpy(tm->la[0].x + n * C, tm->w.tok_embd + (long)ids[n] * C, (size_t)C * sizeof(float));
    lap(tm, PH_EMBED);
    for (int l = 0; l < L; l++) layer_forward(tm, l, B, T, l + 1 < L ? tm->la[l + 1].x : tm->xf);
    rmsnorm_forward(tm, tm->nf, tm->rf, tm->xf, tm->w.output_norm, N, C, cfg->rms_eps);
    lap(tm, PH_NORM);
    /* the fast path computes the logits of the rows with a label only (the
     * others add nothing to the loss or the gradient): their normed rows are
     * packed into dn, which is free until the backward needs it */
    long M = N;
    if (!tm->ref) {
        M = 0;
        for (long n = 0; n < N; n++)
            if ((int)(n % T) + 1 < T && labels[n + 1] != FC_IGNORE_INDEX) {
                tm->rows[M] = (int32_t)n;
                memcpy(tm->dn + M * C, tm->nf + n * C, (size_t)C * sizeof(float));
                M++;
            }
    }
    const float *lm_in = tm->ref ? tm->nf : tm->dn;
    matmul_forward(tm, tm->logits, lm_in, tm->w.output, NULL, M, C, V);
    lap(tm, PH_HEAD_F);

    double part[256] = {0};
    ce_ctx cc = {.logits = tm->logits, .rows = tm->ref ? NULL : tm->rows, .M = M, .labels = labels, .T = T, .N = N, .V = V,
                 .inv_denom = denom > 0 ? 1.0 / denom : 0.0, .grad = grad, .ref = tm->ref, .loss = part};
    FC_ASSERT(!tm->pool || fc_pool_size(tm->pool) <= 256);
    par(tm, ce_fn, &cc);
    double loss = 0;
    for (int i = 0; i < 256; i++) loss += part[i];
    loss = denom > 0 ? loss / denom : NAN; /* transformers gives nan with no labels */
    lap(tm, PH_CE);
    tm->prof = prof;
    if (!grad) return loss;
    const bool fr = tm->frozen;

    /* backward: dlogits sit in tm->logits */
    if (tm->ref) {
        memset(tm->dn, 0, (size_t)(N * C) * sizeof(float));
        matmul_backward(tm, tm->dn, fr ? NULL : tm->gw.output, NULL, tm->logits, tm->nf, tm->w.output, N, C, V);
    } else {
        /* packed rows: their gradient into dx, then spread over dn */
        memset(tm->dx, 0, (size_t)(M * C) * sizeof(float));
        matmul_backward(tm, tm->dx, fr ? NULL : tm->gw.output, NULL, tm->logits, tm->dn, tm->w.output, M, C, V);
        memset(tm->dn, 0, (size_t)(N * C) * sizeof(float));
        for (long m = 0; m < M; m++)
            memcpy(tm->dn + (long)tm->rows[m] * C, tm->dx + m * C, (size_t)C * sizeof(float));
    }
    lap(tm, PH_HEAD_B);
    memset(tm->dx, 0, (size_t)(N * C) * sizeof(float));
    rmsnorm_backward(tm, tm->dx, fr ? NULL : tm->gw.output_norm, tm->dn, tm->xf, tm->w.output_norm, tm->rf, N, C);
    lap(tm, PH_NORM);
    for (int l = L - 1; l >= 0; l--) {
        layer_a *a = &tm->la[l];
        const layer_w *w = &tm->w.layer[l];
        layer_w *gw = &tm->gw.layer[l];
        /* checkpointing: this layer's activations again (its output, already
         * consumed, goes to the free dn scratch) */
        if (tm->ckpt) layer_forward(tm, l, B, T, tm->dn);
        /* MLP: dx is the gradient of the layer output = of the residual x2 */
        memset(tm->dh, 0, (size_t)(N * FF) * sizeof(float));
        matmul_backward(tm, tm->dh, fr ? NULL : gw->w_down, NULL, tm->dx, a->h, w->w_down, N, FF, C);
        lap(tm, PH_PROJ_B);
        lora_backward(tm, l, 6, a->h, tm->dx, tm->dh, N);
        lap(tm, PH_LORA_B);
        if (!tm->ref) fc_train_silu_mul_backward(tm->pool, tm->dg, tm->du, tm->dh, a->g, a->u, N * FF);
        for (long i = 0; i < N * FF && tm->ref; i++) {
            const float g = a->g[i], sg = 1.0f / (1.0f + expf(-g));
            tm->du[i] = tm->dh[i] * g * sg;
            tm->dg[i] = tm->dh[i] * a->u[i] * sg * (1.0f + g * (1.0f - sg));
        }
        lap(tm, PH_SILU_B);
        memset(tm->dn, 0, (size_t)(N * C) * sizeof(float));
        matmul_backward(tm, tm->dn, fr ? NULL : gw->w_gate, NULL, tm->dg, a->n2, w->w_gate, N, C, FF);
        matmul_backward(tm, tm->dn, fr ? NULL : gw->w_up, NULL, tm->du, a->n2, w->w_up, N, C, FF);
        lap(tm, PH_PROJ_B);
        lora_backward_group(tm, l, 4, 6, a->n2, (const float *const[]){tm->dg, tm->du}, tm->dn, N);
        lap(tm, PH_LORA_B);
        rmsnorm_backward(tm, tm->dx, fr ? NULL : gw->ffn_norm, tm->dn, a->x2, w->ffn_norm, a->r2, N, C);
        lap(tm, PH_NORM);
        /* attention: dx is now the gradient of x2 = x + o_proj(ao) */
        memset(tm->dao, 0, (size_t)(N * Q) * sizeof(float));
        matmul_backward(tm, tm->dao, fr ? NULL : gw->wo, NULL, tm->dx, a->ao, w->wo, N, Q, C);
        lap(tm, PH_PROJ_B);
        lora_backward(tm, l, 3, a->ao, tm->dx, tm->dao, N);
        lap(tm, PH_LORA_B);
        memset(tm->dq, 0, (size_t)(N * Q) * sizeof(float));
        memset(tm->dk, 0, (size_t)(N * KVD) * sizeof(float));
        memset(tm->dv, 0, (size_t)(N * KVD) * sizeof(float));
        att_ctx ac = {.tm = tm, .a = a, .B = B, .T = T, .dao = tm->dao};
        par(tm, att_bwd_fn, &ac);
        lap(tm, PH_ATTN_B);
        /* RoPE is a rotation: its backward is the inverse rotation */
        rope_apply(tm, tm->dq, N, T, cfg->n_head, true);
        rope_apply(tm, tm->dk, N, T, cfg->n_head_kv, true);
        lap(tm, PH_ROPE);
        memset(tm->dn, 0, (size_t)(N * C) * sizeof(float));
        matmul_backward(tm, tm->dn, fr ? NULL : gw->wq, fr ? NULL : gw->bq, tm->dq, a->n1, w->wq, N, C, Q);
        matmul_backward(tm, tm->dn, fr ? NULL : gw->wk, fr ? NULL : gw->bk, tm->dk, a->n1, w->wk, N, C, KVD);
        matmul_backward(tm, tm->dn, fr ? NULL : gw->wv, fr ? NULL : gw->bv, tm->dv, a->n1, w->wv, N, C, KVD);
        lap(tm, PH_PROJ_B);
        lora_backward_group(tm, l, 0, 3, a->n1, (const float *const[]){tm->dq, tm->dk, tm->dv}, tm->dn, N);
        lap(tm, PH_LORA_B);
        rmsnorm_backward(tm, tm->dx, fr ? NULL : gw->attn_norm, tm->dn, a->x, w->attn_norm, a->r1, N, C);
        lap(tm, PH_NORM);
    }
    if (tm->lora) tm->lora->calls++;
    for (long n = 0; n < N && !fr; n++) {
        float *d = tm->gw.tok_embd + (long)ids[n] * C;
        const float *s = tm->dx + n * C;
        for (long i = 0; i < C; i++) d[i] += s[i];
    }
    lap(tm, PH_EMBED_B);
    if (tm->prof) tm->prof->passes++;
    return loss;
}

double fc_train_step_grad(fc_train_model *tm, const int32_t *ids, const int32_t *labels, int B, int T,
                          double denom)
{
    return run(tm, ids, labels, B, T, denom, true);
}

double fc_train_loss(fc_train_model *tm, const int32_t *ids, const int32_t *labels, int B, int T,
                     double denom)
{
    return run(tm, ids, labels, B, T, denom, false);
}

/* The squares of the gradients in double, in slices per thread (the sum is
 * ordered by the thread count, as the kernels' sums are), then the scale. */
typedef struct clip_ctx {
    float *g;
    size_t n;
    double coef;          /* 0: sum the squares; else scale by it */
    double part[256];
} clip_ctx;

static void clip_fn(void *p, int ith, int nth)
{
    clip_ctx *c = p;
    long lo, hi;
    fc_split_range((long)c->n, ith, nth, 64, &lo, &hi);
    if (c->coef == 0) {
        double s[4] = {0};
        long i = lo;
        for (; i + 4 <= hi; i += 4)
            for (int j = 0; j < 4; j++) s[j] += (double)c->g[i + j] * c->g[i + j];
        for (; i < hi; i++) s[0] += (double)c->g[i] * c->g[i];
        c->part[ith] = (s[0] + s[1]) + (s[2] + s[3]);
    } else {
        for (long i = lo; i < hi; i++) c->g[i] = (float)(c->g[i] * c->coef);
    }
}

double fc_train_clip_grad_norm(fc_train_model *tm, double max_norm)
{
    lap(tm, -1);
    clip_ctx c = {.g = tm->grads, .n = tm->n_floats};
    FC_ASSERT(!tm->pool || fc_pool_size(tm->pool) <= 256);
    par(tm, clip_fn, &c);
    double ss = 0;
    for (int i = 0; i < 256; i++) ss += c.part[i];
    const double norm = sqrt(ss);
    if (max_norm > 0) {
        const double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            c.coef = coef;
            par(tm, clip_fn, &c);
        }
    }
    lap(tm, PH_CLIP);
    return norm;
}
