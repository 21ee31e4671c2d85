/*
 * cmd_quantize.c: `fastchat quantize`: writes any model we can read (GGUF or
 * Hugging Face folder) as a GGUF of another weight type that both we and
 * llama.cpp load.
 *
 * Matrices take the requested type (re-quantizing from their stored type
 * through f32, as llama.cpp's --allow-requantize does); a matrix whose row
 * length is not a multiple of the type's block falls back to q8_0 (or f16).
 * 1-D tensors (norms, biases) are written as f32. Metadata of a GGUF source
 * is copied (tokenizer and chat template included) with general.file_type
 * updated; a Hugging Face source gets llama.cpp's hyper-parameter keys, its
 * Q/K rows permuted to llama.cpp's adjacent-pair RoPE layout, and its
 * tokenizer (tokenizer.json or SentencePiece tokenizer.model, with
 * tokenizer_config.json) as tokenizer.ggml.* keys (fc_tokenizer_to_gguf),
 * padded with [PAD<id>] tokens up to the model's vocabulary size as
 * llama.cpp's convert_hf_to_gguf.py pads. A folder without tokenizer files
 * is written without a tokenizer, with a warning. A BERT-family encoder GGUF
 * (model/bert.h) and a T5 GGUF (model/t5.h) are requantized tensor by tensor
 * with their metadata as is (a T5 or BERT Hugging Face folder is refused:
 * llama.cpp's convert_hf_to_gguf.py makes its GGUF).
 */
#include "cli.h"
#include "base/fc_base.h"
#include "model/model.h"
#include "model/bert.h"
#include "model/t5.h"
#include "format/gguf.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

/* llama.cpp's llama_ftype numbers for general.file_type */
static int ftype_of(enum fc_dtype t)
{
    switch (t) {
    case FC_DTYPE_F32: return 0;
    case FC_DTYPE_F16: return 1;
    case FC_DTYPE_Q4_0: return 2;
    case FC_DTYPE_Q4_1: return 3;
    case FC_DTYPE_Q8_0: return 7;
    case FC_DTYPE_Q5_0: return 8;
    case FC_DTYPE_Q5_1: return 9;
    case FC_DTYPE_Q4_K: return 15;
    case FC_DTYPE_Q6_K: return 18;
    case FC_DTYPE_BF16: return 32;
    default: return 0;
    }
}

/* Row r of the GGUF layout of a HF llama Q/K matrix comes from HF row
 * perm(r): within each head, GGUF interleaves the two halves that HF rotates
 * together, (h, i, j) <- (h, j, i) for i < HS/2, j in {0, 1}. */
static int64_t hf_row_for_gguf_row(int64_t r, int HS)
{
    int64_t h = r / HS, w = r % HS;
    int64_t i = w / 2, j = w % 2;
    return h * HS + j * (HS / 2) + i;
}

/* The tokenizer of the Hugging Face folder dir as tokenizer.ggml.* keys (after
 * the config's bos/eos ids, which it replaces: tokenizer_config.json names
 * the tokens the tokenizer adds, as in llama.cpp's converter). */
static void write_hf_tokenizer(fc_gguf_writer *w, const char *dir, int32_t n_vocab)
{
    char p1[4096], p2[4096];
    snprintf(p1, sizeof p1, "%s/tokenizer.json", dir);
    snprintf(p2, sizeof p2, "%s/tokenizer.model", dir);
    if (access(p1, R_OK) != 0 && access(p2, R_OK) != 0) {
        fprintf(stderr, "warning: %s has no tokenizer.json or tokenizer.model: the GGUF gets no tokenizer "
                        "(llama.cpp will not load it; fastchat needs --prompt-ids)\n", dir);
        return;
    }
    fc_tokenizer *tok = fc_tokenizer_from_hf(dir);
    if (!tok)
        fc_cli_die("fix or remove the folder's tokenizer files (check with `fastchat tokenize --model-path DIR`)",
                   "%s", fc_last_error());
    if (fc_tokenizer_n_vocab(tok) > n_vocab)
        fprintf(stderr, "warning: %s: the tokenizer has %d ids but the model only %d rows: llama.cpp will "
                        "refuse the file\n", dir, fc_tokenizer_n_vocab(tok), n_vocab);
    if (fc_tokenizer_to_gguf_padded(tok, n_vocab, w) != FC_OK)
        fc_cli_die("quantize a GGUF converted by llama.cpp's convert_hf_to_gguf.py instead", "%s", fc_last_error());
    fc_tokenizer_free(tok);
}

int fc_cmd_quantize(int argc, char **argv)
{
    const char *path = NULL, *out = NULL, *tname = NULL;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &path, .metavar = "M", .help = "GGUF file or Hugging Face folder"},
        {"--type", FC_FLAG_STRING, &tname, .metavar = "TYPE", .help = "q8_0|q4_0|q4_1|q5_0|q5_1|q4_k|q6_k|f16|bf16|f32"},
        {"--out", FC_FLAG_STRING, &out, .metavar = "FILE.gguf", .help = "the GGUF file written"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat quantize --model-path M --type q8_0|q4_0|q4_1|q4_k|q6_k|f16|bf16|f32 --out FILE.gguf",
        .flags = flags,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!path || !out || !tname) fc_cli_die("usage: fastchat quantize --model-path M --type q8_0 --out FILE.gguf", "missing option");
    enum fc_dtype type = fc_dtype_from_name(tname);
    static const int writable[] = {FC_DTYPE_F32, FC_DTYPE_F16, FC_DTYPE_BF16, FC_DTYPE_Q8_0, FC_DTYPE_Q4_0,
                                   FC_DTYPE_Q4_1, FC_DTYPE_Q5_0, FC_DTYPE_Q5_1, FC_DTYPE_Q4_K, FC_DTYPE_Q6_K};
    bool ok = false;
    for (size_t i = 0; i < FC_ARRAY_LEN(writable); i++) ok |= writable[i] == type;
    if (!ok) fc_cli_die("types: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q6_k", "cannot write type '%s'", tname);

    return fc_cli_write_gguf(path, out, type);
}

/* Every key of g but the two that describe the weights' type. */
static void copy_meta(fc_gguf_writer *w, const fc_gguf *g)
{
    for (int64_t i = 0; i < fc_gguf_n_kv(g); i++) {
        fc_gguf_str k = fc_gguf_key(g, i);
        if ((k.len == 17 && !memcmp(k.ptr, "general.file_type", 17)) ||
            (k.len == 28 && !memcmp(k.ptr, "general.quantization_version", 28)))
            continue;
        fc_gguf_writer_copy_kv(w, g, i);
    }
}

/* A GGUF that fc_model does not load ("bert", "t5"): the metadata copied,
 * and the tensors requantized as llama.cpp's llama-quantize does for them:
 * every matrix takes the type but BERT's position_embd and token_types and
 * T5's relative attention biases (kept as stored); the output matrix (T5's
 * untied head; BERT has none, so there its token embedding) at q8_0 / q6_k
 * for a quantized type; a row length off the type's block falling back as
 * llama.cpp's does; vectors stay as stored. The K-quant types are applied
 * to every matrix (llama-quantize --pure: its Q4_K_M mix of q6_k layers is
 * not made). */
static int write_tensorwise_gguf(const char *path, const char *out, enum fc_dtype type, double t0)
{
    fc_gguf *g = fc_gguf_open(path);
    if (!g) fc_cli_die(NULL, "%s", fc_last_error());
    /* the matrix llama.cpp counts as the output: output.weight, else the
     * token embedding (tied, or an encoder without a head) */
    bool has_output = false;
    for (int64_t i = 0; i < fc_gguf_n_tensors(g); i++) {
        fc_gguf_str nm = fc_gguf_tensor(g, i)->name;
        if (nm.len == 13 && !memcmp(nm.ptr, "output.weight", 13)) has_output = true;
    }
    const char *out_name = has_output ? "output.weight" : "token_embd.weight";
    fc_gguf_writer *w = fc_gguf_writer_new();
    copy_meta(w, g);
    if (type >= 0) fc_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype_of(type));
    fc_gguf_writer_set_u32(w, "general.quantization_version", 2);
    int64_t n_t = fc_gguf_n_tensors(g);
    void **bufs = fc_xcalloc((size_t)FC_MAX(n_t, 1), sizeof(void *));
    float *row = NULL;
    for (int64_t i = 0; i < n_t; i++) {
        const fc_gguf_tensor_info *ti = fc_gguf_tensor(g, i);
        const fc_tensor *t = &ti->t;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)FC_MIN(ti->name.len, 255), ti->name.ptr);
        int64_t K = t->ne[0], R = K > 0 ? fc_tensor_nelem(t) / K : 0;
        int tt = type;
        bool quant = type != FC_DTYPE_F32 && type != FC_DTYPE_F16 && type != FC_DTYPE_BF16;
        if (type < 0 || t->n_dims < 2 || R <= 1 || !strcmp(name, "position_embd.weight") ||
            !strcmp(name, "token_types.weight") || strstr(name, "attn_rel_b.weight") || t->type < 0)
            tt = t->type;
        else if (quant && !strcmp(name, out_name)) /* llama.cpp gives the output matrix more bits */
            tt = K % 256 != 0 ? FC_DTYPE_Q8_0 : type == FC_DTYPE_Q8_0 ? FC_DTYPE_Q8_0 : FC_DTYPE_Q6_K;
        if (tt >= 0 && K % fc_dtype_block_size(tt) != 0) /* llama.cpp's fallbacks for a row length off the block */
            tt = tt == FC_DTYPE_Q4_K ? FC_DTYPE_Q5_0 : tt == FC_DTYPE_Q6_K ? FC_DTYPE_Q8_0 : FC_DTYPE_F16;
        if (tt >= 0 && K % fc_dtype_block_size(tt) != 0) tt = FC_DTYPE_F16;
        if (tt == t->type) {
            fc_gguf_writer_add_tensor(w, name, tt, t->n_dims, t->ne, t->data);
            continue;
        }
        size_t in_row = fc_dtype_row_size(t->type, K), out_row = fc_dtype_row_size(tt, K);
        row = fc_xrealloc(row, sizeof(float) * (size_t)K);
        bufs[i] = fc_xmalloc(out_row * (size_t)R);
        for (int64_t r = 0; r < R; r++)
            if (!fc_dequantize_row_ref(t->type, (const uint8_t *)t->data + (size_t)r * in_row, row, K) ||
                !fc_quantize_row_ref(tt, row, (uint8_t *)bufs[i] + (size_t)r * out_row, K))
                fc_cli_die(NULL, "%s: cannot convert %s from %s to %s", path, name, fc_dtype_name(t->type),
                           fc_dtype_name(tt));
        fc_gguf_writer_add_tensor(w, name, tt, t->n_dims, t->ne, bufs[i]);
    }
    if (fc_gguf_writer_write(w, out) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    fprintf(stderr, "wrote %s (%s) in %.1f s\n", out, type >= 0 ? fc_dtype_name(type) : "as stored",
            fc_time_sec() - t0);
    for (int64_t i = 0; i < n_t; i++) free(bufs[i]);
    free(bufs);
    free(row);
    fc_gguf_writer_free(w);
    fc_gguf_free(g);
    return 0;
}

int fc_cli_write_gguf(const char *path, const char *out, enum fc_dtype type)
{
    double t0 = fc_time_sec();
    if (fc_gguf_is_file(path) && (fc_bert_is_encoder(path) || fc_t5_is_t5(path)))
        return write_tensorwise_gguf(path, out, type, t0);
    if (fc_t5_is_t5(path) || fc_bert_is_encoder(path))
        fc_cli_die("convert it with llama.cpp's convert_hf_to_gguf.py, then quantize the GGUF",
                   "%s: a %s Hugging Face folder; fastchat quantize requantizes %s GGUF files", path,
                   fc_t5_is_t5(path) ? "T5" : "BERT", fc_t5_is_t5(path) ? "T5" : "BERT");
    fc_model *m = fc_model_load(path);
    if (!m) fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder", "%s", fc_last_error());
    const fc_model_config *c = fc_model_get_config(m);
    const bool keep = type < 0;
    if (keep) type = fc_model_weight_type(m); /* keep: general.file_type of the dominant type */
    fc_gguf_writer *w = fc_gguf_writer_new();
    const fc_gguf *g = fc_model_gguf(m);
    if (g) {
        copy_meta(w, g);
    } else {
        const char *a = c->arch_name;
        char key[128];
        fc_gguf_writer_set_str(w, "general.architecture", a, strlen(a));
#define KU(suffix, val) do { snprintf(key, sizeof key, "%s." suffix, a); fc_gguf_writer_set_u32(w, key, (uint32_t)(val)); } while (0)
#define KF(suffix, val) do { snprintf(key, sizeof key, "%s." suffix, a); fc_gguf_writer_set_f32(w, key, (float)(val)); } while (0)
        KU("context_length", c->n_ctx_train);
        KU("embedding_length", c->n_embd);
        KU("block_count", c->n_layer);
        KU("feed_forward_length", c->n_ff);
        KU("attention.head_count", c->n_head);
        KU("attention.head_count_kv", c->n_head_kv);
        KU("rope.dimension_count", c->head_dim);
        KU("vocab_size", c->n_vocab);
        KF("attention.layer_norm_rms_epsilon", c->rms_eps);
        KF("rope.freq_base", c->rope_theta);
        if (c->head_dim != c->n_embd / c->n_head) {
            KU("attention.key_length", c->head_dim);
            KU("attention.value_length", c->head_dim);
        }
        if (c->rope_scaling == FC_ROPE_SCALING_LINEAR) {
            snprintf(key, sizeof key, "%s.rope.scaling.type", a);
            fc_gguf_writer_set_str(w, key, "linear", 6);
            KF("rope.scaling.factor", c->rope_factor);
        }
        /* sliding window, Gemma 2 and Phi-3 keys as llama.cpp names them (plus
         * attention.scale for Gemma 2's query_pre_attn_scalar, and the first
         * sliding layer of qwen2's max_window_layers: read back by model.c) */
        if (c->sliding_window > 0 || c->arch == FC_ARCH_GEMMA2) KU("attention.sliding_window", c->sliding_window);
        if (c->sliding_window > 0 && c->swa_first_layer > 0) KU("attention.sliding_window_first_layer", c->swa_first_layer);
        if (c->arch == FC_ARCH_GEMMA2) {
            KF("attn_logit_softcapping", c->attn_softcap);
            KF("final_logit_softcapping", c->final_softcap);
            KF("attention.scale", c->attn_scale);
        }
        if (c->rope_scaling == FC_ROPE_SCALING_LONGROPE) {
            if (c->arch != FC_ARCH_PHI3)
                fc_cli_die(NULL, "%s: LongRoPE scaling is written to GGUF for phi3 models only", path);
            KU("rope.scaling.original_context_length", c->rope_orig_ctx);
            KF("rope.scaling.attn_factor", c->rope_attn_factor);
        }
        if (c->n_expert > 0) { /* Mixtral, as llama.cpp's converter writes it */
            KU("expert_count", c->n_expert);
            KU("expert_used_count", c->n_expert_used);
        }
        if (c->bos_id >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id);
        if (c->eos_id >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id);
#undef KU
#undef KF
        write_hf_tokenizer(w, path, c->n_vocab);
    }
    fc_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ftype_of(type));
    fc_gguf_writer_set_u32(w, "general.quantization_version", 2);

    /* convert every tensor; buffers live until the file is written */
    int64_t n_t = 0;
    const char *name;
    const fc_tensor *t;
    while (fc_model_tensor_at(m, n_t, &name, &t)) n_t++;
    void **bufs = fc_xcalloc((size_t)n_t, sizeof(void *));
    bool permute = fc_model_format(m) == FC_FORMAT_HF && c->arch == FC_ARCH_LLAMA;
    float *row = fc_xmalloc(sizeof(float) * (size_t)FC_MAX(c->n_embd, FC_MAX(c->n_ff, c->n_head * c->head_dim)) * 2);
    for (int64_t i = 0; i < n_t; i++) {
        fc_model_tensor_at(m, i, &name, &t);
        int64_t K = t->ne[0], R = fc_tensor_nelem(t) / K;
        int tt = keep ? t->type : type;
        if (t->n_dims < 2 || R == 1) tt = FC_DTYPE_F32;
        else if (keep) {}
        else if (strstr(name, "ffn_gate_inp.")) tt = FC_DTYPE_F32; /* Mixtral's router stays f32, as llama.cpp's quantize keeps it */
        else if (K % fc_dtype_block_size(tt) != 0) tt = K % FC_QK == 0 ? FC_DTYPE_Q8_0 : FC_DTYPE_F16;
        if (tt == t->type && !permute) {
            fc_gguf_writer_add_tensor(w, name, tt, t->n_dims, t->ne, t->data);
            continue;
        }
        size_t in_row = fc_dtype_row_size(t->type, K), out_row = fc_dtype_row_size(tt, K);
        bufs[i] = fc_xmalloc(out_row * (size_t)R);
        bool qk = permute && (strstr(name, "attn_q.") || strstr(name, "attn_k."));
        for (int64_t r = 0; r < R; r++) {
            int64_t src = qk ? hf_row_for_gguf_row(r, c->head_dim) : r;
            if (!fc_dequantize_row_ref(t->type, (const uint8_t *)t->data + (size_t)src * in_row, row, K) ||
                !fc_quantize_row_ref(tt, row, (uint8_t *)bufs[i] + (size_t)r * out_row, K))
                fc_cli_die(NULL, "%s: cannot convert %s from %s to %s", path, name, fc_dtype_name(t->type), fc_dtype_name(tt));
        }
        fc_gguf_writer_add_tensor(w, name, tt, t->n_dims, t->ne, bufs[i]);
    }
    /* Llama 3.1 scaling travels in GGUF as a tensor of per-frequency
     * divisors (llama.cpp's rope_freqs), not as metadata */
    float *freq_div = NULL;
    if (!g && c->rope_scaling == FC_ROPE_SCALING_LLAMA3) {
        int half = c->head_dim / 2;
        freq_div = fc_xmalloc(sizeof(float) * (size_t)half);
        double lo_wl = c->rope_orig_ctx / c->rope_low_freq_factor, hi_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
        for (int i = 0; i < half; i++) {
            double f = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / c->head_dim), wl = 2.0 * M_PI / f;
            if (wl < hi_wl) freq_div[i] = 1.0f;
            else if (wl > lo_wl) freq_div[i] = c->rope_factor;
            else {
                double smooth = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
                freq_div[i] = (float)(1.0 / ((1.0 - smooth) / c->rope_factor + smooth));
            }
        }
        int64_t ne[1] = {half};
        fc_gguf_writer_add_tensor(w, "rope_freqs.weight", FC_DTYPE_F32, 1, ne, freq_div);
    }
    /* Phi-3 LongRoPE factors travel as two f32 tensors (llama.cpp's
     * rope_factors_long / rope_factors_short) */
    if (!g && c->rope_scaling == FC_ROPE_SCALING_LONGROPE) {
        int64_t ne[1] = {c->head_dim / 2};
        fc_gguf_writer_add_tensor(w, "rope_factors_long.weight", FC_DTYPE_F32, 1, ne, c->rope_ext[1]);
        fc_gguf_writer_add_tensor(w, "rope_factors_short.weight", FC_DTYPE_F32, 1, ne, c->rope_ext[0]);
    }
    if (fc_gguf_writer_write(w, out) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    fprintf(stderr, "wrote %s (%s) in %.1f s\n", out, fc_dtype_name(type), fc_time_sec() - t0);
    for (int64_t i = 0; i < n_t; i++) free(bufs[i]);
    free(bufs);
    free(row);
    free(freq_div);
    fc_gguf_writer_free(w);
    fc_model_free(m);
    return 0;
}
