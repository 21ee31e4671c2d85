/*
 * arch_llama.c: the forward pass of Llama-family decoders (llama, mistral,
 * qwen2) over a batch of tokens from many sequences, and the execution
 * context it runs in.
 *
 * Per layer, for the T tokens of the batch (dimension letters as model.h):
 *   xn = rmsnorm(x) * attn_norm                       (T, C)
 *   q, k, v = xn Wq^T (+bq), xn Wk^T (+bk), xn Wv^T (+bv)
 *   q, k = rope(q, k, pos)                            rotate pairs by pos * freq_i
 *   K, V of each token -> the sequence's blocks in the paged cache
 *   att = softmax(q K^T / sqrt(HS)) V over positions 0..pos of the token's sequence
 *         (query head h reads key/value head h / (NH / NKV): grouped-query attention)
 *   x += att Wo^T
 *   xn = rmsnorm(x) * ffn_norm
 *   x += (silu(xn Wgate^T) * (xn Wup^T)) Wdown^T
 * then logits = (rmsnorm(x) * output_norm) Wout^T for the tokens that want them.
 * This is transformers' LlamaForCausalLM / Qwen2ForCausalLM / MistralForCausalLM
 * / Phi3ForCausalLM (its fused matrices are row views). Gemma2ForCausalLM
 * adds: x = embedding * sqrt(C); the attention and feed-forward outputs are
 * normed (post-norms) before the residual add; GeGLU (tanh gelu) instead of
 * SwiGLU; scores scaled by query_pre_attn_scalar^-1/2 and soft-capped
 * (cap * tanh(s / cap), in the tiled attention: fc_attn_set_softcap); logits
 * soft-capped likewise. Sliding layers attend to positions p - W + 1 .. p
 * only (the tiles of a prompt past the window hold one token each, so that a
 * tile shares its first key). LongRoPE (Phi-3) rotates with the short or long
 * factors' frequencies, chosen per sequence by whether the batch takes it
 * past original_max_position_embeddings, and scales cos/sin by the
 * attention factor.
 *
 * Threads: the whole pass runs inside one fc_pool_run; phases are separated
 * by spinning barriers. Per-token work (norms, rope, cache writes) is split
 * by tokens, matrix products by weight rows, attention by (query tile, key/
 * value head) and, for few long sequences, by chunks of their context.
 * Batches of DYN_MIN_T tokens or more deal the chunks of their products and
 * attention from a shared counter (dyn_next) instead of a fixed split, so a
 * thread slowed by the host is helped rather than waited for; which thread
 * computes a row does not change its value (bit-identical to one thread).
 * Q, K and V share one quantized copy of their input, as do gate and up.
 */
#include "model_impl.h"
#include "kv_cache_impl.h"
#include "moe.h"
#include "tensor/ops.h"
#include "tensor/attn.h"
#include "tensor/vexp.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- execution context ---- */

enum { ACT_Q8_0, ACT_Q8_1, ACT_Q8_K, ACT_A16, ACT_Q4A8, ACT_N };

/* FASTCHAT_Q4_ACT8=1: packed q4_0 takes 8-bit activations in fast mode
 * (ACT_Q4A8, fc_matmul_q4x8a8): ~1.7x the a16 kernel's rate at decode
 * (which keeps q4_0 decode below the DRAM bandwidth) and ~1.0-1.2x at
 * prefill, every batch size alike. Off by default: 8-bit activations are
 * llama.cpp's precision, not the fast mode's (SmolLM2-135M q4_0, 12
 * positions: rms logit error vs exact 0.39 against a16's 0.005; --act8
 * gives 0.33), so it stays an opt-in for speed comparisons. */

struct fc_exec {
    const fc_model *m;
    fc_pool *pool;
    bool exact;
    bool a16;      /* 16-bit activations where the weight type has them */
    bool q4a8;     /* FASTCHAT_Q4_ACT8: packed q4_0 with 8-bit activations (see ACT_Q4A8) */
    int n_batch_max;
    float *x;      /* (T, C) residual stream */
    float *xn;     /* (T, C) normed input / projection output */
    float *q;      /* (T, NH*HS) */
    float *k;      /* (T, NKV*HS) */
    float *v;      /* (T, NKV*HS) */
    float *att;    /* (T, NH*HS) */
    float *g, *u;  /* (T, FF) */
    float *xl;     /* (T, C) normed rows that want logits */
    void *act[ACT_N];     /* converted activations per act type: (T, act row) */
    size_t act_stride[ACT_N];
    float *inv_freq;      /* (HS/2) rope frequencies after scaling */
    float *inv_freq_long; /* (HS/2) longrope: the long factors' frequencies, else NULL */
    uint8_t *tok_long;    /* (T) longrope: token t rotates with inv_freq_long */
    float *attn_scratch;  /* (n_threads) attention tile states (fc_attn_scratch_floats) */
    float *attn_parts;    /* (parts_cap) states of context chunks, for flash-decoding */
    fc_attn_state *part_states;
    int parts_cap;
    int32_t *tiles;       /* (T, 2) query tiles: first batch index, token count */
    int32_t *seq_count;   /* (seq_cap) tokens per sequence in this batch */
    int32_t *out_rows;    /* (T) batch indices that want logits */
    int seq_cap;
    fc_moe_scratch *moe;  /* Mixtral: the routed feed-forward's scratch, else NULL */
};

static int act_index(int act_type)
{
    switch (act_type) {
    case FC_DTYPE_Q8_0: return ACT_Q8_0;
    case FC_DTYPE_Q8_1: return ACT_Q8_1;
    case FC_DTYPE_Q8_K: return ACT_Q8_K;
    case FC_DTYPE_A16: return ACT_A16;
    default: return -1; /* f32 activations are used as they are */
    }
}

/* Frequencies of the rotary embedding, with the model's scaling applied
 * (longrope: with the short (long = 0) or long factors). */
static void rope_freqs(const fc_model *m, float *inv_freq, int long_set)
{
    const fc_model_config *c = &m->cfg;
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* as transformers: 1 / base^(2i / HS), in float32 */
        float f = (float)(1.0 / pow((double)c->rope_theta, (double)(2 * i) / (double)c->head_dim));
        if (c->rope_scaling == FC_ROPE_SCALING_LINEAR) {
            f /= c->rope_factor;
        } else if (c->rope_scaling == FC_ROPE_SCALING_LLAMA3) {
            /* Llama 3.1 (transformers _compute_llama3_parameters): long
             * wavelengths are divided by factor, short ones kept, and the band
             * between them interpolated. */
            double wavelen = 2.0 * M_PI / f;
            double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
            double hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
            if (wavelen > lo_wl) {
                f = f / c->rope_factor;
            } else if (wavelen >= hi_wl) {
                float smooth = (float)((c->rope_orig_ctx / wavelen - c->rope_low_freq_factor) /
                                       (c->rope_high_freq_factor - c->rope_low_freq_factor));
                f = (1.0f - smooth) * f / c->rope_factor + smooth * f;
            }
        }
        if (c->rope_scaling == FC_ROPE_SCALING_LONGROPE) /* transformers: 1 / (ext * base^(2i/HS)) in f32 */
            f = 1.0f / (c->rope_ext[long_set][i] * (float)pow((double)c->rope_theta, (double)(2 * i) / (double)c->head_dim));
        if (m->rope_freqs.data) f /= ((const float *)m->rope_freqs.data)[i];
        inv_freq[i] = f;
    }
}

fc_exec *fc_exec_new(const fc_model *m, const fc_exec_params *p)
{
    const fc_model_config *c = &m->cfg;
    if (m->packed_only && (p->exact || p->act8)) {
        FC_LOG_ERROR("%s: loaded with --load-8bit in the fast layout, which exact and --act8 runs do not read; "
                     "load it with plain_layout (the CLI does when --exact/--act8 is given)", m->path);
        return NULL;
    }
    fc_exec *e = fc_xcalloc(1, sizeof *e);
    e->m = m;
    e->exact = p->exact;
    e->a16 = !p->act8;
    e->n_batch_max = p->n_batch_max > 0 ? p->n_batch_max : 512;
    /* the fast mode's kernels want the packed matrices (made once per model) */
    if (!p->exact && !p->act8 && !fc_model_pack_weights(m))
        FC_LOG_WARN("%s: the fast mode runs on the file's layout (slower)", m->path);
    e->pool = fc_pool_new(p->n_threads);
    /* decode prefetches packed weights in software only while the model
     * fits in half the last-level cache (see fc_matmul_set_prefetch) */
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (llc <= 0) llc = 32L << 20;
    fc_matmul_set_prefetch(m->weight_bytes <= (size_t)llc / 2);
    size_t T = (size_t)e->n_batch_max;
    size_t C = (size_t)c->n_embd, QD = (size_t)c->n_head * (size_t)c->head_dim,
           KVD = (size_t)c->n_head_kv * (size_t)c->head_dim, FF = (size_t)c->n_ff;
    e->x = fc_aligned_alloc(sizeof(float) * T * C);
    e->xn = fc_aligned_alloc(sizeof(float) * T * C);
    e->xl = fc_aligned_alloc(sizeof(float) * T * C);
    e->q = fc_aligned_alloc(sizeof(float) * T * QD);
    e->k = fc_aligned_alloc(sizeof(float) * T * KVD);
    e->v = fc_aligned_alloc(sizeof(float) * T * KVD);
    e->att = fc_aligned_alloc(sizeof(float) * T * QD);
    e->g = fc_aligned_alloc(sizeof(float) * T * FF);
    e->u = fc_aligned_alloc(sizeof(float) * T * FF);
    int64_t kmax = FC_MAX((int64_t)FC_MAX(C, QD), (int64_t)FF);
    /* K-quant activations need K to be a multiple of 256; round up so any K fits */
    int64_t kpad = (kmax + FC_QK_K - 1) / FC_QK_K * FC_QK_K;
    static const int types[ACT_A16 + 1] = {FC_DTYPE_Q8_0, FC_DTYPE_Q8_1, FC_DTYPE_Q8_K, FC_DTYPE_A16};
    /* converted rows: T, or Mixtral's T * k expert slots (one group converts them all) */
    const size_t TA = T * (size_t)(c->n_expert > 0 ? c->n_expert_used : 1);
    for (int a = 0; a < ACT_A16 + 1; a++) {
        e->act_stride[a] = (fc_matmul_act_row_size(types[a], kpad) + 63) / 64 * 64;
        e->act[a] = fc_aligned_alloc(e->act_stride[a] * TA);
    }
    const char *q4a8 = getenv("FASTCHAT_Q4_ACT8");
    e->q4a8 = q4a8 && *q4a8 && strcmp(q4a8, "0") != 0 && fc_q4x8a8_available() && e->a16 && !e->exact;
    e->act_stride[ACT_Q4A8] = e->q4a8 ? (fc_q4x8a8_row_size(kpad) + 63) / 64 * 64 : 64;
    e->act[ACT_Q4A8] = fc_aligned_alloc(e->act_stride[ACT_Q4A8] * (e->q4a8 ? TA : 1));
    e->inv_freq = fc_xmalloc(sizeof(float) * (size_t)(c->head_dim / 2));
    rope_freqs(m, e->inv_freq, 0);
    if (c->rope_scaling == FC_ROPE_SCALING_LONGROPE) {
        e->inv_freq_long = fc_xmalloc(sizeof(float) * (size_t)(c->head_dim / 2));
        rope_freqs(m, e->inv_freq_long, 1);
    }
    e->tok_long = fc_xcalloc(T, 1);
    e->out_rows = fc_xmalloc(sizeof(int32_t) * T);
    e->tiles = fc_xmalloc(sizeof(int32_t) * 2 * T);
    e->attn_scratch = fc_aligned_alloc(sizeof(float) * fc_attn_scratch_floats(FC_ATTN_ROWS, c->head_dim) *
                                       (size_t)fc_pool_size(e->pool));
    if (c->n_expert > 0) e->moe = fc_moe_scratch_new(c, e->n_batch_max);
    bool ok = e->x && e->xn && e->xl && e->q && e->k && e->v && e->att && e->g && e->u && e->attn_scratch &&
              (c->n_expert == 0 || e->moe);
    for (int a = 0; a < ACT_N; a++) ok = ok && e->act[a];
    if (!ok) {
        FC_LOG_ERROR("fc_exec_new: cannot allocate scratch for %d tokens", e->n_batch_max);
        fc_exec_free(e);
        return NULL;
    }
    return e;
}

void fc_exec_free(fc_exec *e)
{
    if (!e) return;
    fc_pool_free(e->pool);
    fc_aligned_free(e->x);
    fc_aligned_free(e->xn);
    fc_aligned_free(e->xl);
    fc_aligned_free(e->q);
    fc_aligned_free(e->k);
    fc_aligned_free(e->v);
    fc_aligned_free(e->att);
    fc_aligned_free(e->g);
    fc_aligned_free(e->u);
    for (int a = 0; a < ACT_N; a++) fc_aligned_free(e->act[a]);
    free(e->inv_freq);
    free(e->inv_freq_long);
    free(e->tok_long);
    fc_aligned_free(e->attn_scratch);
    fc_aligned_free(e->attn_parts);
    free(e->part_states);
    free(e->tiles);
    free(e->seq_count);
    free(e->out_rows);
    fc_moe_scratch_free(e->moe);
    free(e);
}

int fc_exec_n_threads(const fc_exec *e) { return fc_pool_size(e->pool); }

/* ---- the pass ---- */

/* A thread's count of dynamic phases, alone in its cache line. */
typedef struct phase_count {
    int n;
    char pad[60];
} phase_count;

typedef struct fwd {
    const fc_model *m;
    fc_exec *e;
    fc_kv_cache *kv;
    const fc_batch *b;
    float *logits;
    int T;
    int n_out;
    int n_tiles;   /* query tiles (fc_exec.tiles) */
    int n_split;   /* context chunks per (tile, kv head): > 1 = flash-decoding */
    /* dynamic phases (batches of DYN_MIN_T tokens or more in the fast modes):
     * the threads take the phase's chunks of work from a shared counter, so
     * that a thread slowed down (a busy host, a sibling hyper-thread) is
     * helped by the others instead of making them wait at the barrier.
     * Phase number p of the pass uses ctr[p & 1]; each thread counts its
     * phases in phase[ith] (the same sequence in every thread). */
    bool dynamic;
    _Atomic long ctr[2];
    phase_count *phase; /* (n_threads) */
} fwd;

/* Batches of at least this many tokens split their matrix products and
 * attention dynamically (dyn_next); smaller ones (single-stream decode,
 * where a chunk is too short to pay for the shared counter) statically. */
#define DYN_MIN_T 4

/* Starts a dynamic phase. It must lie between two barriers (the previous
 * phase's counter is reset here, by thread 0, for the phase after this one:
 * nobody reads it any more, and nobody starts that phase before passing the
 * barrier that ends this one). Returns the phase's counter. */
static _Atomic long *dyn_begin(fwd *f, int ith)
{
    const int p = f->phase[ith].n++;
    if (ith == 0) atomic_store_explicit(&f->ctr[(p + 1) & 1], 0, memory_order_relaxed);
    return &f->ctr[p & 1];
}

/* The next chunk index of the phase (>= the chunk count: none left). */
static inline long dyn_next(_Atomic long *ctr) { return atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed); }

/* One output of a grouped matrix product. */
typedef struct mm_out {
    const fc_tensor *w;
    float *y;          /* (T, R); with sub rows (matmul_group_rows) (nrows, R) */
} mm_out;

/* The input rows one output of matmul_group_rows reads (Mixtral: an expert's slots). */
typedef struct mm_rows {
    int row0, nrows;
} mm_rows;

/* Work units [lo, hi) of the n matrices taken as one (their rows one after
 * the other; with sub, a row of output i counts sub[i].nrows units, the
 * input rows it reads) of y_i = in W_i^T; the activations are ready
 * (matmul_group_rows). */
static void matmul_rows(fwd *f, const float *in, int64_t K, int T, const mm_out *outs, const mm_rows *sub, int n,
                        long lo, long hi)
{
    fc_exec *e = f->e;
    const bool a8 = e->q4a8;
    int64_t base = 0;
    for (int i = 0; i < n; i++) {
        const fc_tensor *w = outs[i].w;
        const int64_t R = w->ne[1];
        /* a sub-range of the input rows: its work units are rows x nrows */
        const int64_t mult = sub ? FC_MAX(sub[i].nrows, 1) : 1;
        const int tin = sub ? sub[i].row0 : 0, tn = sub ? sub[i].nrows : T;
        /* packed matrices (fast mode, a16) split at multiples of 8 rows: the
         * bounds of every thread round up alike, so the split stays exact */
        const bool packed = !e->exact && e->a16 && w->packed; /* exact / act8 execs never read packed */
        int64_t r0 = lo - base <= 0 ? 0 : FC_MIN((lo - base + mult - 1) / mult, R);
        int64_t r1 = hi - base <= 0 ? 0 : FC_MIN((hi - base + mult - 1) / mult, R);
        if (packed) {
            r0 = FC_MIN((r0 + 7) & ~(int64_t)7, R);
            r1 = FC_MIN((r1 + 7) & ~(int64_t)7, R);
        }
        if (r0 < r1 && tn > 0) {
            size_t ws = fc_tensor_row_bytes(w);
            const float *x = in + (size_t)tin * (size_t)K;
            if (e->exact) {
                fc_matmul_exact(w->type, w->data, ws, K, x, K, tn, outs[i].y, R, r0, r1);
            } else if (packed && a8 && w->packed_type == FC_DTYPE_Q4_0_X8) {
                fc_matmul_q4x8a8(w->packed, ws, K, (uint8_t *)e->act[ACT_Q4A8] + (size_t)tin * e->act_stride[ACT_Q4A8],
                                 e->act_stride[ACT_Q4A8], tn, outs[i].y, R, r0, r1);
            } else if (packed) {
                const int a = act_index(FC_DTYPE_A16);
                fc_matmul_fast(w->packed_type, w->packed, ws, K, FC_DTYPE_A16,
                               (uint8_t *)e->act[a] + (size_t)tin * e->act_stride[a], e->act_stride[a], tn, outs[i].y,
                               R, r0, r1);
            } else {
                const int at = fc_matmul_act_type(w->type, e->a16), a = act_index(at);
                if (a < 0)
                    fc_matmul_fast(w->type, w->data, ws, K, at, x, sizeof(float) * (size_t)K, tn, outs[i].y, R, r0, r1);
                else
                    fc_matmul_fast(w->type, w->data, ws, K, at, (uint8_t *)e->act[a] + (size_t)tin * e->act_stride[a],
                                   e->act_stride[a], tn, outs[i].y, R, r0, r1);
            }
        }
        base += R * mult;
    }
}

/* y_i = in W_i^T for n matrices sharing the input (T rows of K floats,
 * stride K); with sub != NULL output i reads only rows sub[i].row0 ..
 * sub[i].row0 + sub[i].nrows. The work (rows of W_i times the input rows
 * it reads) is split among the threads: evenly, or in chunks taken from a
 * shared counter (f->dynamic). Ends with a barrier. */
static void matmul_group_rows(fwd *f, int ith, int nth, const float *in, int64_t K, int T,
                              const mm_out *outs, const mm_rows *sub, int n)
{
    fc_exec *e = f->e;
    bool need[ACT_N] = {false};
    const bool a8 = e->q4a8;
    if (!e->exact) {
        int t0 = (int)((long)T * ith / nth), t1 = (int)((long)T * (ith + 1) / nth);
        for (int i = 0; i < n; i++) {
            if (a8 && outs[i].w->packed && outs[i].w->packed_type == FC_DTYPE_Q4_0_X8) {
                if (!need[ACT_Q4A8])
                    for (int t = t0; t < t1; t++)
                        fc_q4x8a8_quantize(in + (size_t)t * (size_t)K,
                                           (uint8_t *)e->act[ACT_Q4A8] + (size_t)t * e->act_stride[ACT_Q4A8], K);
                need[ACT_Q4A8] = true;
                continue;
            }
            const int at = fc_matmul_act_type(outs[i].w->type, e->a16), a = act_index(at);
            if (a < 0 || need[a]) continue;
            need[a] = true;
            for (int t = t0; t < t1; t++)
                fc_matmul_quantize_act(at, in + (size_t)t * (size_t)K,
                                       (uint8_t *)e->act[a] + (size_t)t * e->act_stride[a], K);
        }
        fc_pool_barrier(e->pool);
    }
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += outs[i].w->ne[1] * (sub ? sub[i].nrows : 1);
    if (f->dynamic && !e->exact) {
        /* about 16 chunks per thread, of a multiple of 16 units; 2 where the
         * AMX tiles take the product (each call readies every token's side
         * of the tiles and each row pair's weights once, which a chunk of
         * 32 rows would not pay back: 1.0x against 1.5x at 256 rows) */
        const long per = T >= fc_matmul_amx_min_tokens() ? 2 : 16;
        const long chunk = FC_MAX(16, (total / (per * nth) + 15) / 16 * 16), n_chunks = (total + chunk - 1) / chunk;
        _Atomic long *ctr = dyn_begin(f, ith);
        for (long c = dyn_next(ctr); c < n_chunks; c = dyn_next(ctr))
            matmul_rows(f, in, K, T, outs, sub, n, c * chunk, FC_MIN((c + 1) * chunk, total));
    } else {
        long lo, hi;
        fc_split_range(total, ith, nth, 16, &lo, &hi);
        matmul_rows(f, in, K, T, outs, sub, n, lo, hi);
    }
    fc_pool_barrier(e->pool);
}

static void matmul_group(fwd *f, int ith, int nth, const float *in, int64_t K, int T, const mm_out *outs, int n)
{
    matmul_group_rows(f, ith, nth, in, K, T, outs, NULL, n);
}

/* The barrier between a per-token phase and the matmul_group reading its
 * rows. In the fast modes matmul_group first quantizes the rows of the
 * tokens t0..t1 of this thread, the same split as the per-token phases, and
 * meets the others after that: no barrier is needed before it. Exact mode
 * reads every row as it is, so all must be written first. */
static inline void barrier_before_group(fc_exec *e)
{
    if (e->exact) fc_pool_barrier(e->pool);
}

static void rope(float *v, int n_heads, int HS, const float *inv_freq, int pos, bool neox, float mscale)
{
    int half = HS / 2;
    for (int i = 0; i < half; i++) {
        float ang = (float)pos * inv_freq[i];
        float c = (float)cos((double)ang) * mscale, s = (float)sin((double)ang) * mscale;
        for (int h = 0; h < n_heads; h++) {
            float *x = v + (size_t)h * (size_t)HS;
            int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float a = x[i0], b = x[i1];
            x[i0] = a * c - b * s;
            x[i1] = a * s + b * c;
        }
    }
}

/* g = gelu_tanh(g) * u (GeGLU; transformers' gelu_pytorch_tanh); fast: 8
 * lanes at a time with fc_tanh8 (absolute error ~1e-7), exact: tanhf */
static void geglu(float *g, const float *u, int n, bool fast)
{
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    int i = 0;
#ifdef FC_VEXP_AVX2
    if (fast) {
        const __m256 kv = _mm256_set1_ps(k), c = _mm256_set1_ps(0.044715f), half = _mm256_set1_ps(0.5f),
                     one = _mm256_set1_ps(1.0f);
        for (; i + 8 <= n; i += 8) {
            const __m256 x = _mm256_loadu_ps(g + i);
            const __m256 in = _mm256_mul_ps(kv, _mm256_fmadd_ps(_mm256_mul_ps(c, x), _mm256_mul_ps(x, x), x));
            const __m256 y = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, fc_tanh8(in)));
            _mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
        }
    }
#else
    (void)fast;
#endif
    for (; i < n; i++) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x))) * u[i];
    }
}

static inline void store_kv(void *dst, const float *src, int n, enum fc_dtype dtype)
{
    if (dtype == FC_DTYPE_F32) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
    } else {
        fc_f16 *d = dst;
        for (int i = 0; i < n; i++) d[i] = fc_f32_to_f16(src[i]);
    }
}

/* Whether layer l attends only to the last sliding_window positions. */
static inline bool layer_slides(const fc_model_config *c, int l)
{
    return c->sliding_window > 0 && l >= c->swa_first_layer && (!c->swa_even || l % 2 == 0);
}

/* The first position a token at pos sees in layer l. */
static inline int first_key(const fc_model_config *c, int l, int pos)
{
    return layer_slides(c, l) ? FC_MAX(0, pos - c->sliding_window + 1) : 0;
}

static inline float score_scale(const fc_model_config *c)
{
    return c->attn_scale > 0 ? c->attn_scale : 1.0f / sqrtf((float)c->head_dim);
}

/* Attention work item i of layer l: query tile i / (NKV * S), kv head
 * (i / S) % NKV, context chunk i % S of S = f->n_split. The tile's rows are
 * its tokens' G = NH / NKV heads that read that kv head; its keys are the
 * cache blocks of the chunk, up to the tile's last position. With S = 1 the
 * result goes straight to att; else the state is kept for attn_merge. */
static void attend(fwd *f, int l, long i, float *scratch)
{
    const fc_model_config *c = &f->m->cfg;
    const fc_kv_cache *kv = f->kv;
    fc_exec *e = f->e;
    const int HS = c->head_dim, NH = c->n_head, NKV = c->n_head_kv, G = NH / NKV, S = f->n_split;
    const int tile = (int)(i / ((long)NKV * S)), kvh = (int)(i / S % NKV), chunk = (int)(i % S);
    const int t0 = e->tiles[2 * tile], nq = e->tiles[2 * tile + 1], R = nq * G;
    const int32_t *pos = f->b->pos + t0;
    const fc_kv_seq *s = &kv->seqs[f->b->seq[t0]];
    const int64_t QD = (int64_t)NH * HS;
    /* in a sliding layer every token of a tile starts at the same key (the
     * tiles are cut so: plan_attention) */
    const int lo = first_key(c, l, pos[0]), blo = lo / FC_KV_BLOCK;
    const int n_keys = pos[nq - 1] + 1, nb = (n_keys + FC_KV_BLOCK - 1) / FC_KV_BLOCK;
    const int b0 = blo + (int)((long)(nb - blo) * chunk / S), b1 = blo + (int)((long)(nb - blo) * (chunk + 1) / S);
    const size_t row = (size_t)HS * kv->elt, head_off = (size_t)kvh * FC_KV_BLOCK * row;
    fc_attn_state own, *st = S > 1 ? &e->part_states[i] : &own;
    fc_attn_begin(st, S > 1 ? e->attn_parts + (size_t)i * fc_attn_scratch_floats(FC_ATTN_ROWS, HS) : scratch,
                  e->q + (size_t)t0 * QD + (size_t)kvh * G * HS, G, QD, R, HS, score_scale(c));
    if (c->attn_softcap > 0) fc_attn_set_softcap(st, c->attn_softcap); /* Gemma 2 */
    for (int blk = b0; blk < b1; blk++) {
        /* the next block's keys and values of this head into the cache while
         * this one is computed: blocks are scattered over the pool, so the
         * hardware prefetchers start cold at each (decode of many sequences
         * reads about as many cache bytes as weight bytes per step) */
        if (blk + 1 < b1) {
            const uint8_t *nk = (const uint8_t *)fc_kv_block_ptr(kv, s->blocks[blk + 1], l, 0) + head_off;
            const uint8_t *nv = (const uint8_t *)fc_kv_block_ptr(kv, s->blocks[blk + 1], l, 1) + head_off;
            for (size_t o = 0; o < FC_KV_BLOCK * row; o += 64) {
                __builtin_prefetch(nk + o);
                __builtin_prefetch(nv + o);
            }
        }
        const int j0 = blk * FC_KV_BLOCK, skip = blk == blo ? lo - j0 : 0; /* keys before the window */
        const int n = FC_MIN(FC_KV_BLOCK, n_keys - j0) - skip;
        int lim[FC_ATTN_ROWS];
        for (int r = 0; r < R; r++) lim[r] = pos[r / G] + 1 - j0 - skip;
        const uint8_t *kb = (const uint8_t *)fc_kv_block_ptr(kv, s->blocks[blk], l, 0) + head_off + (size_t)skip * row;
        const uint8_t *vb = (const uint8_t *)fc_kv_block_ptr(kv, s->blocks[blk], l, 1) + head_off + (size_t)skip * row;
        fc_attn_block(st, kb, vb, kv->dtype, n, lim);
    }
    if (S == 1) fc_attn_end(st, e->att + (size_t)t0 * QD + (size_t)kvh * G * HS, G, QD);
}

/* Joins the S chunk states of (tile, kv head) pair i into att. */
static void attn_merge(fwd *f, long i)
{
    const fc_model_config *c = &f->m->cfg;
    fc_exec *e = f->e;
    const int HS = c->head_dim, NH = c->n_head, G = NH / c->n_head_kv, S = f->n_split;
    const int tile = (int)(i / c->n_head_kv), kvh = (int)(i % c->n_head_kv), t0 = e->tiles[2 * tile];
    const fc_attn_state *parts[64];
    for (int k = 0; k < S; k++) parts[k] = &e->part_states[i * S + k];
    const int64_t QD = (int64_t)NH * HS;
    fc_attn_merge(parts, S, e->att + (size_t)t0 * QD + (size_t)kvh * G * HS, G, QD);
}

/* Mixtral's feed-forward of the normed rows xn (T, C), into xn (moe.h):
 * the router's logits, the tokens' experts (one thread routes), the rows
 * gathered per expert, each used expert's gate/up and down products over
 * its block of rows (all gate/up products one matmul group, all downs
 * another: one conversion of the rows and two barriers each, not per
 * expert), then each token's k outputs summed with its weights. */
static void moe_ffn(fwd *f, int ith, int nth, const fc_layer *L)
{
    fc_exec *e = f->e;
    fc_moe_scratch *s = e->moe;
    const fc_model_config *c = &f->m->cfg;
    const int T = f->T, C = c->n_embd, FF = c->n_ff, E = c->n_expert, k = c->n_expert_used;
    mm_out r[1] = {{&L->ffn_gate_inp, s->router}};
    matmul_group(f, ith, nth, e->xn, C, T, r, 1);
    if (ith == 0) fc_moe_route(s, T);
    fc_pool_barrier(e->pool);
    long lo, hi;
    fc_split_range((long)T * k, ith, nth, 1, &lo, &hi);
    for (long i = lo; i < hi; i++)
        memcpy(s->xin + (size_t)i * C, e->xn + (size_t)s->slot_tok[i] * C, sizeof(float) * (size_t)C);
    fc_pool_barrier(e->pool);
    /* every used expert's gate and up in one group over the slots, each
     * reading its own slots (an expert no token chose is not read) */
    fc_tensor gt[FC_MOE_MAX_EXPERTS], ut[FC_MOE_MAX_EXPERTS], dt[FC_MOE_MAX_EXPERTS];
    mm_out gu[2 * FC_MOE_MAX_EXPERTS], dn[FC_MOE_MAX_EXPERTS];
    mm_rows gur[2 * FC_MOE_MAX_EXPERTS], dnr[FC_MOE_MAX_EXPERTS];
    int n_gu = 0, n_dn = 0;
    for (int x = 0; x < E; x++) {
        const int n = s->count[x], at = s->start[x];
        if (n == 0) continue;
        gt[x] = fc_moe_expert(&L->gate_exps, x);
        ut[x] = fc_moe_expert(&L->up_exps, x);
        dt[x] = fc_moe_expert(&L->down_exps, x);
        gur[n_gu] = gur[n_gu + 1] = dnr[n_dn] = (mm_rows){at, n};
        gu[n_gu++] = (mm_out){&gt[x], s->g + (size_t)at * FF};
        gu[n_gu++] = (mm_out){&ut[x], s->u + (size_t)at * FF};
        dn[n_dn++] = (mm_out){&dt[x], s->d + (size_t)at * C};
    }
    matmul_group_rows(f, ith, nth, s->xin, C, T * k, gu, gur, n_gu);
    for (long i = lo; i < hi; i++)
        fc_swiglu(s->g + (size_t)i * FF, s->g + (size_t)i * FF, s->u + (size_t)i * FF, FF);
    fc_pool_barrier(e->pool);
    matmul_group_rows(f, ith, nth, s->g, FF, T * k, dn, dnr, n_dn);
    const int t0 = (int)((long)T * ith / nth), t1 = (int)((long)T * (ith + 1) / nth);
    for (int t = t0; t < t1; t++) {
        float *y = e->xn + (size_t)t * C;
        for (int i = 0; i < C; i++) y[i] = 0;
        for (int j = 0; j < k; j++) {
            const float w = s->tok_w[t * k + j], *d = s->d + (size_t)s->tok_slot[t * k + j] * C;
            for (int i = 0; i < C; i++) y[i] += w * d[i];
        }
    }
    fc_pool_barrier(e->pool);
}

static void forward_thread(void *ctx, int ith, int nth)
{
    fwd *f = ctx;
    const fc_model *m = f->m;
    const fc_model_config *c = &m->cfg;
    fc_exec *e = f->e;
    fc_kv_cache *kv = f->kv;
    const fc_batch *b = f->b;
    const int T = f->T, C = c->n_embd, HS = c->head_dim, NH = c->n_head, NKV = c->n_head_kv, FF = c->n_ff;
    const int QD = NH * HS, KVD = NKV * HS;
    const int t0 = (int)((long)T * ith / nth), t1 = (int)((long)T * (ith + 1) / nth);
    float *attn_scratch = e->attn_scratch + (size_t)ith * fc_attn_scratch_floats(FC_ATTN_ROWS, HS);
    const float embd_mul = (float)sqrt((double)C);
    const float mscale = c->rope_scaling == FC_ROPE_SCALING_LONGROPE ? c->rope_attn_factor : 1.0f;

    /* token embeddings; with tied embeddings a packed output matrix is the
     * same table, read from there so that the file's copy (its pages were
     * dropped when it was packed) stays out of memory */
    const size_t erow = fc_tensor_row_bytes(&m->tok_embd);
    const bool from_packed = c->tied_embeddings && !e->exact && e->a16 && m->output.packed;
    for (int t = t0; t < t1; t++) {
        const int64_t id = b->token[t];
        float *x = e->x + (size_t)t * C;
        if (from_packed) {
            const size_t bs = fc_dtype_type_size(m->tok_embd.type);
            const uint8_t *g = (const uint8_t *)m->output.packed + (size_t)(id / 8 * 8) * erow;
            uint8_t blk[64];
            for (int64_t k = 0; k < C; k += FC_QK) {
                fc_pack_block_row(m->output.packed_type, g + (size_t)(k / FC_QK) * 8 * bs, (int)(id % 8), blk);
                fc_dequantize_row_ref(m->tok_embd.type, blk, x + k, FC_QK);
            }
        } else {
            fc_dequantize_row_ref(m->tok_embd.type, (const uint8_t *)m->tok_embd.data + (size_t)id * erow, x, C);
        }
        if (c->embd_scale) /* Gemma: times sqrt(C), rounded to f32 first as transformers */
            for (int i = 0; i < C; i++) x[i] *= embd_mul;
    }
    barrier_before_group(e);

    for (int l = 0; l < c->n_layer; l++) {
        const fc_layer *L = &m->layers[l];
        /* x += previous layer's down projection (normed first with post-norms);
         * xn = attn norm */
        for (int t = t0; t < t1; t++) {
            float *x = e->x + (size_t)t * C, *xn = e->xn + (size_t)t * C;
            if (l > 0 && c->post_norms) fc_rmsnorm(xn, xn, m->layers[l - 1].post_ffn_norm.data, C, c->rms_eps);
            if (l > 0)
                for (int i = 0; i < C; i++) x[i] += xn[i];
            fc_rmsnorm(xn, x, L->attn_norm.data, C, c->rms_eps);
        }
        barrier_before_group(e);
        mm_out qkv[3] = {{&L->wq, e->q}, {&L->wk, e->k}, {&L->wv, e->v}};
        matmul_group(f, ith, nth, e->xn, C, T, qkv, 3);

        /* biases, rope, and the new keys/values into the cache */
        for (int t = t0; t < t1; t++) {
            float *q = e->q + (size_t)t * QD, *k = e->k + (size_t)t * KVD, *v = e->v + (size_t)t * KVD;
            if (L->bq.data) {
                const float *bq = L->bq.data, *bk = L->bk.data, *bv = L->bv.data;
                for (int i = 0; i < QD; i++) q[i] += bq[i];
                for (int i = 0; i < KVD; i++) { k[i] += bk[i]; v[i] += bv[i]; }
            }
            const float *fr = e->tok_long[t] ? e->inv_freq_long : e->inv_freq;
            rope(q, NH, HS, fr, b->pos[t], c->rope_neox, mscale);
            rope(k, NKV, HS, fr, b->pos[t], c->rope_neox, mscale);
            const fc_kv_seq *s = &kv->seqs[b->seq[t]];
            int32_t blk = s->blocks[b->pos[t] / FC_KV_BLOCK];
            int slot = b->pos[t] % FC_KV_BLOCK;
            uint8_t *kb = fc_kv_block_ptr(kv, blk, l, 0), *vb = fc_kv_block_ptr(kv, blk, l, 1);
            for (int h = 0; h < NKV; h++) {
                size_t off = ((size_t)h * FC_KV_BLOCK + (size_t)slot) * (size_t)HS * kv->elt;
                store_kv(kb + off, k + (size_t)h * HS, HS, kv->dtype);
                store_kv(vb + off, v + (size_t)h * HS, HS, kv->dtype);
            }
        }
        fc_pool_barrier(e->pool);

        /* attention, split over (query tile, key/value head, context chunk);
         * dealt round-robin: a prompt's later tiles read more keys */
        if (f->dynamic) {
            _Atomic long *ctr = dyn_begin(f, ith);
            for (long i = dyn_next(ctr); i < (long)f->n_tiles * NKV * f->n_split; i = dyn_next(ctr))
                attend(f, l, i, attn_scratch);
        } else
            for (long i = ith; i < (long)f->n_tiles * NKV * f->n_split; i += nth) attend(f, l, i, attn_scratch);
        fc_pool_barrier(e->pool);
        long a0, a1;
        if (f->n_split > 1) {
            fc_split_range((long)f->n_tiles * NKV, ith, nth, 1, &a0, &a1);
            for (long i = a0; i < a1; i++) attn_merge(f, i);
            fc_pool_barrier(e->pool);
        }

        mm_out o[1] = {{&L->wo, e->xn}};
        matmul_group(f, ith, nth, e->att, QD, T, o, 1);
        for (int t = t0; t < t1; t++) {
            float *x = e->x + (size_t)t * C, *xn = e->xn + (size_t)t * C;
            if (c->post_norms) fc_rmsnorm(xn, xn, L->post_attn_norm.data, C, c->rms_eps);
            for (int i = 0; i < C; i++) x[i] += xn[i];
            fc_rmsnorm(xn, x, L->ffn_norm.data, C, c->rms_eps);
        }
        barrier_before_group(e);
        if (c->n_expert > 0) {
            moe_ffn(f, ith, nth, L);
            continue;
        }
        mm_out gu[2] = {{&L->w_gate, e->g}, {&L->w_up, e->u}};
        matmul_group(f, ith, nth, e->xn, C, T, gu, 2);
        for (int t = t0; t < t1; t++) {
            if (c->ffn_act == FC_ACT_GELU_TANH)
                geglu(e->g + (size_t)t * FF, e->u + (size_t)t * FF, FF, !e->exact);
            else
                fc_swiglu(e->g + (size_t)t * FF, e->g + (size_t)t * FF, e->u + (size_t)t * FF, FF);
        }
        barrier_before_group(e);
        mm_out d[1] = {{&L->w_down, e->xn}};
        matmul_group(f, ith, nth, e->g, FF, T, d, 1);
    }

    /* last residual, final norm of the rows that want logits, output head */
    int o0 = (int)((long)f->n_out * ith / nth), o1 = (int)((long)f->n_out * (ith + 1) / nth);
    for (int r = o0; r < o1; r++) {
        int t = e->out_rows[r];
        float *x = e->x + (size_t)t * C, *xn = e->xn + (size_t)t * C;
        if (c->post_norms) fc_rmsnorm(xn, xn, m->layers[c->n_layer - 1].post_ffn_norm.data, C, c->rms_eps);
        for (int i = 0; i < C; i++) x[i] += xn[i];
        fc_rmsnorm(e->xl + (size_t)r * C, x, m->output_norm.data, C, c->rms_eps);
    }
    if (f->b->output == FC_BATCH_HIDDEN) { /* embeddings: the normed rows, before the head */
        if (o1 > o0) memcpy(f->logits + (size_t)o0 * C, e->xl + (size_t)o0 * C, sizeof(float) * (size_t)(o1 - o0) * C);
        return;
    }
    barrier_before_group(e);
    if (f->n_out > 0) {
        mm_out lo[1] = {{&m->output, f->logits}};
        matmul_group(f, ith, nth, e->xl, C, f->n_out, lo, 1);
        if (c->final_softcap > 0) { /* Gemma 2: logits -> cap * tanh(logit / cap) */
            /* split over all the threads by logits (decode has one row of
             * 256k), 8 lanes at a time in fast mode */
            const float cap = c->final_softcap;
            long v0, v1;
            fc_split_range((long)f->n_out * (long)m->output.ne[1], ith, nth, 64, &v0, &v1);
            float *lg = f->logits;
            long v = v0;
#ifdef FC_VEXP_AVX2
            if (!e->exact) {
                const __m256 cv = _mm256_set1_ps(cap), icv = _mm256_set1_ps(1.0f / cap);
                for (; v + 8 <= v1; v += 8)
                    _mm256_storeu_ps(lg + v, _mm256_mul_ps(cv, fc_tanh8(_mm256_mul_ps(_mm256_loadu_ps(lg + v), icv))));
            }
#endif
            for (; v < v1; v++) lg[v] = cap * tanhf(lg[v] / cap);
        }
    }
}

/* Cuts the batch into query tiles (runs of consecutive positions of one
 * sequence, at most FC_ATTN_ROWS rows of G heads each) and, when they give
 * the threads too few work items for a long context (decode of one or a
 * few sequences), the context into S chunks of at least 4 cache blocks. */
static void plan_attention(fwd *f, int max_pos)
{
    fc_exec *e = f->e;
    const fc_model_config *c = &f->m->cfg;
    const fc_batch *b = f->b;
    const int G = c->n_head / c->n_head_kv, qt = FC_MAX(1, FC_ATTN_ROWS / G);
    /* with a sliding window, the tokens of a tile share their first key:
     * those before the window's end (first key 0) group, later ones go one
     * by one (first_key of the widest layer; global layers start at 0) */
    const int W = c->sliding_window;
    int n = 0;
    for (int t = 0; t < f->T;) {
        int k = 1;
        while (t + k < f->T && k < qt && b->seq[t + k] == b->seq[t] && b->pos[t + k] == b->pos[t] + k &&
               (W <= 0 || b->pos[t + k] < W))
            k++;
        e->tiles[2 * n] = t;
        e->tiles[2 * n + 1] = k;
        n++;
        t += k;
    }
    f->n_tiles = n;
    const long items = (long)n * c->n_head_kv, want = 4L * fc_pool_size(e->pool);
    const int blocks = (max_pos + FC_KV_BLOCK) / FC_KV_BLOCK;
    int S = 1;
    if (items < want) S = (int)FC_MIN((want + items - 1) / items, FC_MIN(blocks / 4, 64));
    if (S < 1) S = 1;
    f->n_split = S;
    if (S > 1 && items * S > e->parts_cap) {
        fc_aligned_free(e->attn_parts);
        free(e->part_states);
        e->parts_cap = (int)(items * S);
        e->attn_parts = fc_aligned_alloc(sizeof(float) * fc_attn_scratch_floats(FC_ATTN_ROWS, c->head_dim) *
                                         (size_t)e->parts_cap);
        e->part_states = fc_xmalloc(sizeof(fc_attn_state) * (size_t)e->parts_cap);
        FC_ASSERT(e->attn_parts);
    }
}

enum fc_status fc_model_forward(const fc_model *m, fc_exec *e, fc_kv_cache *kv, const fc_batch *b, float *logits)
{
    const fc_model_config *c = &m->cfg;
    const int T = b->n_tokens;
    if (T <= 0) return FC_OK;
    if (T > e->n_batch_max) {
        FC_LOG_ERROR("fc_model_forward: batch of %d tokens exceeds the context's maximum %d", T, e->n_batch_max);
        return FC_ERR_ARG;
    }
    if (c->n_head / c->n_head_kv > FC_ATTN_ROWS) {
        FC_LOG_ERROR("fc_model_forward: %d query heads per key/value head; at most %d are supported",
                     c->n_head / c->n_head_kv, FC_ATTN_ROWS);
        return FC_ERR_ARG;
    }
    if (kv->L != c->n_layer || kv->NKV != c->n_head_kv || kv->HS != c->head_dim) {
        FC_LOG_ERROR("fc_model_forward: KV cache was made for another model shape");
        return FC_ERR_ARG;
    }
    /* validate: ids, sequences, positions continuing each sequence, room */
    if (e->seq_cap < kv->n_seq_max) {
        e->seq_count = fc_xrealloc(e->seq_count, sizeof(int32_t) * (size_t)kv->n_seq_max);
        e->seq_cap = kv->n_seq_max;
    }
    memset(e->seq_count, 0, sizeof(int32_t) * (size_t)kv->n_seq_max);
    int n_out = 0, max_pos = 0;
    for (int t = 0; t < T; t++) {
        int s = b->seq[t];
        if (b->token[t] < 0 || b->token[t] >= c->n_vocab) {
            FC_LOG_ERROR("fc_model_forward: token id %d outside the vocabulary [0, %d)", b->token[t], c->n_vocab);
            return FC_ERR_ARG;
        }
        if (s < 0 || s >= kv->n_seq_max) {
            FC_LOG_ERROR("fc_model_forward: sequence id %d outside [0, %d)", s, kv->n_seq_max);
            return FC_ERR_ARG;
        }
        const fc_kv_seq *sq = &kv->seqs[s];
        int want = sq->len + e->seq_count[s];
        if (b->pos[t] != want) {
            FC_LOG_ERROR("fc_model_forward: token %d of sequence %d has position %d, expected %d", t, s, b->pos[t], want);
            return FC_ERR_ARG;
        }
        if (want >= sq->n_blocks * FC_KV_BLOCK) {
            FC_LOG_ERROR("fc_model_forward: sequence %d has no KV room for position %d (reserve first)", s, want);
            return FC_ERR_FULL;
        }
        e->seq_count[s]++;
        if (b->pos[t] > max_pos) max_pos = b->pos[t];
        if (b->logits[t]) e->out_rows[n_out++] = t;
    }
    if (c->rope_scaling == FC_ROPE_SCALING_LONGROPE) {
        /* transformers picks the long factors for a whole forward call when
         * its last position is past original_max_position_embeddings: here,
         * per sequence of the batch */
        for (int t = 0; t < T; t++) {
            const int s = b->seq[t];
            e->tok_long[t] = kv->seqs[s].len + e->seq_count[s] > c->rope_orig_ctx;
        }
    }
    const int nth = fc_pool_size(e->pool);
    phase_count phase[nth];
    memset(phase, 0, sizeof phase);
    fwd f = {.m = m, .e = e, .kv = kv, .b = b, .logits = logits, .T = T, .n_out = n_out,
             .dynamic = !e->exact && nth > 1 && T >= DYN_MIN_T, .phase = phase};
    atomic_init(&f.ctr[0], 0);
    atomic_init(&f.ctr[1], 0);
    plan_attention(&f, max_pos);
    fc_pool_run(e->pool, forward_thread, &f);
    for (int t = 0; t < T; t++) {
        int s = b->seq[t];
        if (e->seq_count[s]) {
            kv->seqs[s].len += e->seq_count[s];
            e->seq_count[s] = 0;
        }
    }
    return FC_OK;
}
