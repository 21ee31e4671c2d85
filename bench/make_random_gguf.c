/*
 * make_random_gguf.c: writes a Llama-shaped GGUF with random weights, for
 * speed measurements of models bigger than the default one (which is the
 * only real model the machines can fetch). Both FastChat-C and llama.cpp
 * load the file; its outputs are meaningless but finite.
 *
 * Shapes (llama.cpp hyper-parameter keys, tensor names and layouts):
 *   1b   TinyLlama-1.1B: C=2048, L=22, NH=32, NKV=4,  FF=5632,  V=32000
 *   7b   Llama-2-7B:     C=4096, L=32, NH=32, NKV=32, FF=11008, V=32000
 *   tiny a smoke-test shape: C=256, L=2, NH=4, NKV=2, FF=512, V=512
 *   moe  a small Mixtral: C=1024, L=8, NH=16, NKV=4, FF=2816, V=32000, 8 experts,
 *        top-2 (llama.expert_count / expert_used_count, an f32 router
 *        blk.N.ffn_gate_inp and 3-D blk.N.ffn_{gate,up,down}_exps stacks)
 *   gemma2  Gemma-2-2B with 8 of its 26 layers (1.2B parameters, most in the
 *        256000-row tied embedding): C=2304, NH=8, NKV=4, head 256, FF=9216,
 *        general.architecture gemma2: tied head (no output.weight), pre- and
 *        post-norms (post_attention_norm, post_ffw_norm), sliding window 4096,
 *        attention / final logit soft-caps 50 / 30
 *   phi3 Phi-3-mini with 10 of its 32 layers (1.3B): C=3072, NH=NKV=32,
 *        FF=8192, V=32064, general.architecture phi3: fused blk.N.attn_qkv
 *        and blk.N.ffn_up (gate and up, 2 * FF rows), sliding window 2047,
 *        token 32000 "<|endoftext|>" (control), which llama.cpp requires of
 *        a model named phi3
 * Every matrix (token_embd and output included) takes the requested type
 * (q4_0, q4_1, q8_0, f16, ...); norms are f32 ones.
 *
 * Values: uniform in [-a, a] with a = sqrt(3 / fan_in), so each matrix has
 * variance 1 / fan_in (Glorot/LeCun scaling): with RMS-normalised inputs
 * every projection, attention score (after 1/sqrt(HS)) and logit stays O(1).
 * Each row's generator is seeded from (seed, tensor, row), so the file does
 * not depend on the number of threads.
 *
 * The tokenizer is a minimal SentencePiece-style ("llama") vocabulary that
 * llama.cpp accepts: "<unk>", "<s>", "</s>" (control), the 256 byte tokens
 * "<0x00>".."<0xFF>" (so that any text can be tokenized, e.g. by
 * llama-simple), then "t259", "t260", ... (normal), scores 0.
 *
 * It does not write a chat template, a real vocabulary or trained weights.
 *
 * Usage: make_random_gguf --shape 1b|7b|tiny|moe|gemma2|phi3 --type q4_0 --out FILE.gguf
 *                         [--seed N] [--threads N] [--layers N]
 */
#include "base/fc_base.h"
#include "format/gguf.h"
#include "tensor/dtype.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shape {
    const char *name;
    int C, L, NH, NKV, FF, V, n_ctx;
    int E, E_used; /* experts (0: a dense feed-forward) */
    const char *arch; /* NULL: llama */
    int HS;        /* head size (0: C / NH) */
    int window;    /* <arch>.attention.sliding_window (0: none written) */
};

static const struct shape shapes[] = {
    {"1b", 2048, 22, 32, 4, 5632, 32000, 2048},
    {"7b", 4096, 32, 32, 32, 11008, 32000, 4096},
    {"tiny", 256, 2, 4, 2, 512, 512, 512},
    {"moe", 1024, 8, 16, 4, 2816, 32000, 4096, 8, 2},
    {"gemma2", 2304, 8, 8, 4, 9216, 256000, 8192, 0, 0, "gemma2", 256, 4096},
    {"phi3", 3072, 10, 32, 32, 8192, 32064, 4096, 0, 0, "phi3", 0, 2047},
};

/* ---- random numbers: splitmix64 ---- */
static inline uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- tensors to fill ---- */
struct job {
    char name[64];
    int type;
    int n_dims;
    int64_t ne[2];      /* {K, R}: R rows of K values */
    int64_t ne2;        /* experts stacked (n_dims 3: ne {K, R / ne2, ne2}), else 0 */
    float amp;          /* values uniform in [-amp, amp]; 0: all ones (norms) */
    uint8_t *data;      /* fc_dtype_row_size(type, K) * R bytes */
};

struct work {
    struct job *jobs;
    int n_jobs;
    uint64_t seed;
    atomic_int next;
};

static void fill(struct job *j, int idx, uint64_t seed)
{
    const int64_t K = j->ne[0], R = j->ne[1];
    const size_t row_bytes = fc_dtype_row_size(j->type, K);
    float *row = fc_xmalloc(sizeof(float) * (size_t)K);
    for (int64_t r = 0; r < R; r++) {
        if (j->amp == 0.0f) {
            for (int64_t i = 0; i < K; i++) row[i] = 1.0f;
        } else {
            uint64_t s = seed ^ ((uint64_t)idx << 40) ^ (uint64_t)r * 0x2545f4914f6cdd1dull;
            for (int64_t i = 0; i < K; i += 2) {
                uint64_t x = splitmix64(&s);
                /* two 24-bit uniforms in [-1, 1) */
                row[i] = j->amp * ((float)(x & 0xffffff) * (2.0f / 16777216.0f) - 1.0f);
                if (i + 1 < K) row[i + 1] = j->amp * ((float)((x >> 32) & 0xffffff) * (2.0f / 16777216.0f) - 1.0f);
            }
        }
        bool ok = fc_quantize_row_ref(j->type, row, j->data + row_bytes * (size_t)r, K);
        FC_ASSERT(ok); /* types are checked in main */
    }
    free(row);
}

static void *worker(void *arg)
{
    struct work *w = arg;
    for (;;) {
        int i = atomic_fetch_add(&w->next, 1);
        if (i >= w->n_jobs) break;
        fill(&w->jobs[i], i, w->seed);
    }
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: make_random_gguf --shape 1b|7b|tiny|moe|gemma2|phi3 --type q4_0|q4_1|q8_0|f16 --out FILE.gguf\n"
               "                        [--seed N] [--threads N] [--layers N]\n");
}

int main(int argc, char **argv)
{
    const char *shape_name = NULL, *type_name = NULL, *out = NULL;
    uint64_t seed = 1234;
    int n_threads = 2, layers = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape_name = argv[++i];
        else if (!strcmp(argv[i], "--type") && i + 1 < argc) type_name = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else { usage(stderr); return 2; }
    }
    if (!shape_name || !type_name || !out) { usage(stderr); return 2; }
    const struct shape *sh = NULL;
    for (size_t i = 0; i < FC_ARRAY_LEN(shapes); i++)
        if (!strcmp(shapes[i].name, shape_name)) sh = &shapes[i];
    if (!sh) { fprintf(stderr, "error: unknown shape '%s' (1b, 7b, tiny, moe, gemma2, phi3)\n", shape_name); return 2; }
    int type = fc_dtype_from_name(type_name);
    if (type < 0 || fc_dtype_block_size(type) == 0 || fc_dtype_block_size(type) > 256) {
        fprintf(stderr, "error: unknown type '%s'\n", type_name);
        return 2;
    }
    {
        float zero[256] = {0};
        uint8_t block[1024];
        if (!fc_quantize_row_ref(type, zero, block, fc_dtype_block_size(type))) {
            fprintf(stderr, "error: no quantizer writes type %s (try q4_0, q4_1, q8_0, f16)\n", type_name);
            return 2;
        }
    }
    if (n_threads < 1) n_threads = 1;
    const int C = sh->C, L = layers > 0 ? layers : sh->L, NH = sh->NH, NKV = sh->NKV;
    const int FF = sh->FF, V = sh->V, HS = sh->HS ? sh->HS : C / NH;
    const char *arch = sh->arch ? sh->arch : "llama";
    const bool gemma2 = !strcmp(arch, "gemma2"), phi3 = !strcmp(arch, "phi3");

    /* ---- tensor list, in llama.cpp's order ---- */
    int n_jobs = gemma2 ? 2 + 11 * L : phi3 ? 3 + 6 * L : 3 + (sh->E > 0 ? 10 : 9) * L;
    struct job *jobs = fc_xcalloc((size_t)n_jobs, sizeof(struct job));
    int nj = 0;
#define ADD(nm, t, nd, k, r, a) do { \
        struct job *j_ = &jobs[nj++]; \
        snprintf(j_->name, sizeof j_->name, "%s", nm); \
        j_->type = (t); j_->n_dims = (nd); j_->ne[0] = (k); j_->ne[1] = (r); j_->amp = (a); \
    } while (0)
    char nm[64];
    ADD("token_embd.weight", type, 2, C, V, 1.0f);
    for (int l = 0; l < L; l++) {
        const float aC = sqrtf(3.0f / (float)C), aF = sqrtf(3.0f / (float)FF), aQ = sqrtf(3.0f / (float)(NH * HS));
        if (phi3) { /* fused q/k/v and gate/up (gate rows first) */
            snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);   ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
            snprintf(nm, sizeof nm, "blk.%d.attn_qkv.weight", l);    ADD(nm, type, 2, C, (NH + 2 * NKV) * HS, aC);
            snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l); ADD(nm, type, 2, NH * HS, C, aQ);
            snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);    ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
            snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);      ADD(nm, type, 2, C, 2 * FF, aC);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);    ADD(nm, type, 2, FF, C, aF);
            continue;
        }
        if (gemma2) { /* norms stored as (1 + w), here all ones */
            snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);           ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
            snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);              ADD(nm, type, 2, C, NH * HS, aC);
            snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);              ADD(nm, type, 2, C, NKV * HS, aC);
            snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);              ADD(nm, type, 2, C, NKV * HS, aC);
            snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l);         ADD(nm, type, 2, NH * HS, C, aQ);
            snprintf(nm, sizeof nm, "blk.%d.post_attention_norm.weight", l); ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
            snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);            ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);            ADD(nm, type, 2, C, FF, aC);
            snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);              ADD(nm, type, 2, C, FF, aC);
            snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);            ADD(nm, type, 2, FF, C, aF);
            snprintf(nm, sizeof nm, "blk.%d.post_ffw_norm.weight", l);       ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
            continue;
        }
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);   ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
        snprintf(nm, sizeof nm, "blk.%d.attn_q.weight", l);      ADD(nm, type, 2, C, NH * HS, aC);
        snprintf(nm, sizeof nm, "blk.%d.attn_k.weight", l);      ADD(nm, type, 2, C, NKV * HS, aC);
        snprintf(nm, sizeof nm, "blk.%d.attn_v.weight", l);      ADD(nm, type, 2, C, NKV * HS, aC);
        snprintf(nm, sizeof nm, "blk.%d.attn_output.weight", l); ADD(nm, type, 2, NH * HS, C, aC);
        snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);    ADD(nm, FC_DTYPE_F32, 1, C, 1, 0.0f);
        if (sh->E > 0) { /* Mixtral: f32 router, experts stacked */
            const int E = sh->E;
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate_inp.weight", l);  ADD(nm, FC_DTYPE_F32, 2, C, E, aC);
            snprintf(nm, sizeof nm, "blk.%d.ffn_gate_exps.weight", l); ADD(nm, type, 3, C, (int64_t)FF * E, aC); jobs[nj - 1].ne2 = E;
            snprintf(nm, sizeof nm, "blk.%d.ffn_up_exps.weight", l);   ADD(nm, type, 3, C, (int64_t)FF * E, aC); jobs[nj - 1].ne2 = E;
            snprintf(nm, sizeof nm, "blk.%d.ffn_down_exps.weight", l); ADD(nm, type, 3, FF, (int64_t)C * E, aF); jobs[nj - 1].ne2 = E;
            continue;
        }
        snprintf(nm, sizeof nm, "blk.%d.ffn_gate.weight", l);    ADD(nm, type, 2, C, FF, aC);
        snprintf(nm, sizeof nm, "blk.%d.ffn_up.weight", l);      ADD(nm, type, 2, C, FF, aC);
        snprintf(nm, sizeof nm, "blk.%d.ffn_down.weight", l);    ADD(nm, type, 2, FF, C, aF);
    }
    ADD("output_norm.weight", FC_DTYPE_F32, 1, C, 1, 0.0f);
    if (!gemma2) ADD("output.weight", type, 2, C, V, sqrtf(3.0f / (float)C)); /* gemma2: tied */
#undef ADD
    FC_ASSERT(nj == n_jobs);

    size_t total = 0;
    for (int i = 0; i < n_jobs; i++) {
        size_t rb = fc_dtype_row_size(jobs[i].type, jobs[i].ne[0]);
        if (rb == 0) {
            fprintf(stderr, "error: %s: %lld values per row do not fit type %s\n", jobs[i].name,
                    (long long)jobs[i].ne[0], type_name);
            return 1;
        }
        jobs[i].data = fc_aligned_alloc(rb * (size_t)jobs[i].ne[1]);
        if (!jobs[i].data) { fprintf(stderr, "error: out of memory\n"); return 1; }
        total += rb * (size_t)jobs[i].ne[1];
    }

    double t0 = fc_time_sec();
    struct work w = {.jobs = jobs, .n_jobs = n_jobs, .seed = seed};
    atomic_init(&w.next, 0);
    pthread_t th[64];
    if (n_threads > 64) n_threads = 64;
    for (int k = 1; k < n_threads; k++) pthread_create(&th[k], NULL, worker, &w);
    worker(&w);
    for (int k = 1; k < n_threads; k++) pthread_join(th[k], NULL);

    /* ---- metadata ---- */
    fc_gguf_writer *gw = fc_gguf_writer_new();
    char gname[64];
    snprintf(gname, sizeof gname, "random-%s-%s", sh->name, fc_dtype_name(type));
    fc_gguf_writer_set_str(gw, "general.architecture", arch, strlen(arch));
    fc_gguf_writer_set_str(gw, "general.name", gname, strlen(gname));
    /* llama.cpp's llama_ftype numbering */
    uint32_t ftype = type == FC_DTYPE_F32 ? 0 : type == FC_DTYPE_F16 ? 1 : type == FC_DTYPE_Q4_0 ? 2
                   : type == FC_DTYPE_Q4_1 ? 3 : type == FC_DTYPE_Q8_0 ? 7 : type == FC_DTYPE_Q5_0 ? 8
                   : type == FC_DTYPE_Q5_1 ? 9 : type == FC_DTYPE_BF16 ? 32 : 0;
    fc_gguf_writer_set_u32(gw, "general.file_type", ftype);
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    fc_gguf_writer_set_u32(gw, KEY("context_length"), (uint32_t)sh->n_ctx);
    fc_gguf_writer_set_u32(gw, KEY("embedding_length"), (uint32_t)C);
    fc_gguf_writer_set_u32(gw, KEY("block_count"), (uint32_t)L);
    fc_gguf_writer_set_u32(gw, KEY("feed_forward_length"), (uint32_t)FF);
    fc_gguf_writer_set_u32(gw, KEY("attention.head_count"), (uint32_t)NH);
    fc_gguf_writer_set_u32(gw, KEY("attention.head_count_kv"), (uint32_t)NKV);
    if (HS != C / NH) {
        fc_gguf_writer_set_u32(gw, KEY("attention.key_length"), (uint32_t)HS);
        fc_gguf_writer_set_u32(gw, KEY("attention.value_length"), (uint32_t)HS);
    }
    fc_gguf_writer_set_u32(gw, KEY("rope.dimension_count"), (uint32_t)HS);
    fc_gguf_writer_set_f32(gw, KEY("attention.layer_norm_rms_epsilon"), gemma2 ? 1e-6f : 1e-5f);
    fc_gguf_writer_set_f32(gw, KEY("rope.freq_base"), 10000.0f);
    if (!gemma2 && !phi3) fc_gguf_writer_set_u32(gw, KEY("vocab_size"), (uint32_t)V);
    if (sh->window > 0) fc_gguf_writer_set_u32(gw, KEY("attention.sliding_window"), (uint32_t)sh->window);
    if (gemma2) {
        fc_gguf_writer_set_f32(gw, KEY("attn_logit_softcapping"), 50.0f);
        fc_gguf_writer_set_f32(gw, KEY("final_logit_softcapping"), 30.0f);
    }
    if (phi3) fc_gguf_writer_set_u32(gw, KEY("rope.scaling.original_context_length"), (uint32_t)sh->n_ctx);
    if (sh->E > 0) {
        fc_gguf_writer_set_u32(gw, KEY("expert_count"), (uint32_t)sh->E);
        fc_gguf_writer_set_u32(gw, KEY("expert_used_count"), (uint32_t)sh->E_used);
    }
#undef KEY

    char **tok = fc_xmalloc(sizeof(char *) * (size_t)V);
    float *scores = fc_xcalloc((size_t)V, sizeof(float));
    int32_t *ttype = fc_xmalloc(sizeof(int32_t) * (size_t)V);
    for (int i = 0; i < V; i++) {
        char buf[32];
        if (i == 0) snprintf(buf, sizeof buf, "<unk>");
        else if (i == 1) snprintf(buf, sizeof buf, "<s>");
        else if (i == 2) snprintf(buf, sizeof buf, "</s>");
        else if (i < 3 + 256) snprintf(buf, sizeof buf, "<0x%02X>", i - 3);
        else if (phi3 && i == 32000) snprintf(buf, sizeof buf, "<|endoftext|>"); /* llama.cpp looks it up by name */
        else snprintf(buf, sizeof buf, "t%d", i);
        tok[i] = fc_xstrdup(buf);
        /* llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte */
        ttype[i] = i == 0 ? 2 : i < 3 ? 3 : i < 3 + 256 ? 6 : (phi3 && i == 32000) ? 3 : 1;
    }
    fc_gguf_writer_set_str(gw, "tokenizer.ggml.model", "llama", 5);
    fc_gguf_writer_set_arr_str(gw, "tokenizer.ggml.tokens", (const char *const *)tok, NULL, (uint64_t)V);
    fc_gguf_writer_set_arr(gw, "tokenizer.ggml.scores", FC_GGUF_FLOAT32, scores, (uint64_t)V);
    fc_gguf_writer_set_arr(gw, "tokenizer.ggml.token_type", FC_GGUF_INT32, ttype, (uint64_t)V);
    fc_gguf_writer_set_u32(gw, "tokenizer.ggml.unknown_token_id", 0);
    fc_gguf_writer_set_u32(gw, "tokenizer.ggml.bos_token_id", 1);
    fc_gguf_writer_set_u32(gw, "tokenizer.ggml.eos_token_id", 2);
    fc_gguf_writer_set_bool(gw, "tokenizer.ggml.add_bos_token", true);
    fc_gguf_writer_set_bool(gw, "tokenizer.ggml.add_eos_token", false);

    for (int i = 0; i < n_jobs; i++) {
        int64_t ne[3] = {jobs[i].ne[0], jobs[i].ne[1], 1};
        if (jobs[i].ne2 > 0) {
            ne[1] = jobs[i].ne[1] / jobs[i].ne2;
            ne[2] = jobs[i].ne2;
        }
        fc_gguf_writer_add_tensor(gw, jobs[i].name, jobs[i].type, jobs[i].n_dims, ne, jobs[i].data);
    }
    double t1 = fc_time_sec();
    enum fc_status st = fc_gguf_writer_write(gw, out);
    double t2 = fc_time_sec();
    if (st != FC_OK) {
        fprintf(stderr, "error: %s: %s (%s)\n", out, fc_status_str(st), fc_last_error());
        return 1;
    }
    fprintf(stderr, "make_random_gguf: %s: shape %s, %s, L=%d, %.1f MB of tensors (fill %.1fs, write %.1fs)\n",
            out, sh->name, fc_dtype_name(type), L, total / 1e6, t1 - t0, t2 - t1);

    fc_gguf_writer_free(gw);
    for (int i = 0; i < V; i++) free(tok[i]);
    free(tok);
    free(scores);
    free(ttype);
    for (int i = 0; i < n_jobs; i++) fc_aligned_free(jobs[i].data);
    free(jobs);
    return 0;
}
