/*
 * cmd_generate.c: `fastchat generate` (raw generation from token ids or text,
 * greedy or sampled, with timing) and `fastchat logits` (the logits of every
 * prompt position written to a file, for comparisons with transformers).
 *
 * Neither applies a chat template: the prompt is what the model reads.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "model/t5.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

typedef struct gen_opts {
    const char *model_path;
    const char *prompt_ids;
    const char *prompt;
    const char *out;
    const char *decoder_ids; /* T5 logits: the decoder input ids */
    int max_new_tokens;
    float temperature;
    float repetition_penalty; /* T5 path (FastChat's processor: prompt and output ids) */
    bool exact, act8, ignore_eos, print_ids, verbose;
    int threads;
    int n_batch;
    unsigned long long seed;
    fc_cli_device dev; /* FastChat's --load-8bit and device flags */
} gen_opts;

static void parse(int argc, char **argv, gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 64;
    o->temperature = 0.0f;
    o->repetition_penalty = 1.0f;
    o->n_batch = 512;
    o->seed = 1234;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &o->model_path, .metavar = "M", .help = "GGUF file or Hugging Face folder"},
        {"--prompt-ids", FC_FLAG_STRING, &o->prompt_ids, .metavar = "1,2,3", .help = "the prompt as token ids"},
        {"--prompt", FC_FLAG_STRING, &o->prompt, .metavar = "TEXT", .help = "the prompt as text (generate)"},
        {"--out", FC_FLAG_STRING, &o->out, .metavar = "FILE", .help = "where logits writes"},
        {"--decoder-ids", FC_FLAG_STRING, &o->decoder_ids, .metavar = "0,5,6",
         .help = "T5 logits: the decoder input ids (default: the decoder start token)"},
        {"--max-new-tokens", FC_FLAG_INT, &o->max_new_tokens, .help = "(default 64)"},
        {"--temperature", FC_FLAG_FLOAT, &o->temperature, .metavar = "T", .help = "(default 0: greedy)"},
        {"--repetition-penalty", FC_FLAG_FLOAT, &o->repetition_penalty, .metavar = "P",
         .help = "T5 models: FastChat's repetition penalty over prompt and output ids (default 1.0)"},
        {"--seed", FC_FLAG_UINT64, &o->seed, .metavar = "S", .help = "(default 1234)"},
        {"--threads", FC_FLAG_INT, &o->threads, .help = "compute threads (default: all CPUs)"},
        {"--batch", FC_FLAG_INT, &o->n_batch, .help = "prompt tokens per forward pass (default 512)"},
        {"--exact", FC_FLAG_TRUE, &o->exact, .help = "weights dequantized to f32 and f32 activations (the reference mode)"},
        {"--act8", FC_FLAG_TRUE, &o->act8,
         .help = "8-bit activations for every quantized type (llama.cpp's scheme; the default rounds them "
                 "to 16 bits for q4_0/q4_1/q5_0/q5_1/q8_0 weights)"},
        {"--ignore-eos", FC_FLAG_TRUE, &o->ignore_eos, .help = "keep generating past end-of-sequence"},
        {"--print-ids", FC_FLAG_TRUE, &o->print_ids, .help = "print the generated ids as a JSON array"},
        {"--verbose", FC_FLAG_TRUE, &o->verbose, .help = "print load, prefill and decode speed to stderr"},
        FC_CLI_DEVICE_FLAGS(&o->dev),
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat generate --model-path M (--prompt-ids 1,2,3 | --prompt TEXT)\n"
                 "                         [--max-new-tokens N] [--temperature T] [--seed S] [--exact | --act8]\n"
                 "                         [--threads N] [--batch N] [--ignore-eos] [--print-ids] [--verbose]\n"
                 "       fastchat logits   --model-path M --prompt-ids 1,2,3 --out FILE [--exact | --act8] [--threads N]",
        .flags = flags,
        .footer = "logits writes T x V float32 values (row t: the logits after prompt token t)\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    fc_cli_device_apply(&o->dev);
    if (!o->model_path) o->model_path = fc_cli_default_model();
    if (o->max_new_tokens < 0) fc_cli_die(NULL, "--max-new-tokens must be >= 0");
    if (o->n_batch <= 0) fc_cli_die(NULL, "--batch must be > 0");
}

static int t5_generate(const gen_opts *o);
static int t5_logits(const gen_opts *o);

static fc_model *load_or_die(const char *path, bool verbose, const gen_opts *o)
{
    double t0 = fc_time_sec();
    fc_model_load_params lp;
    fc_cli_device_load_params(&o->dev, o->exact, o->act8, &lp);
    fc_model *m = fc_model_load_ex(path, &lp);
    if (!m) fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder (config.json + *.safetensors or pytorch_model.bin)",
                       "%s", fc_last_error());
    if (verbose) fprintf(stderr, "load: %.3f s (%s)\n", fc_time_sec() - t0, path);
    if (verbose && lp.load_8bit) fprintf(stderr, "load-8bit: %d matrices quantized to q8_0\n", fc_model_n_quantized_at_load(m));
    return m;
}

static int32_t *prompt_or_die(const gen_opts *o, const fc_tokenizer *tok, int *n)
{
    if (o->prompt_ids) return fc_cli_parse_ids(o->prompt_ids, n);
    if (!o->prompt) fc_cli_die("give the prompt with --prompt TEXT or --prompt-ids 1,2,3", "no prompt");
    if (!tok) fc_cli_die("pass --prompt-ids instead", "this model has no usable tokenizer: %s", fc_last_error());
    int32_t *ids;
    int k = fc_tokenizer_encode(tok, o->prompt, strlen(o->prompt), true, true, &ids);
    if (k <= 0) fc_cli_die(NULL, "the prompt encodes to no tokens");
    *n = k;
    return ids;
}

/* Evaluates the prompt in chunks of n_batch; logits of the last token (or of
 * every token when all_rows) land in logits. Returns seconds spent. */
static double prefill(const fc_model *m, fc_exec *e, fc_kv_cache *kv, fc_batch *b, const int32_t *ids, int n,
                      int n_batch, bool all_rows, float *logits)
{
    const int V = fc_model_get_config(m)->n_vocab;
    double t0 = fc_time_sec();
    int n_rows = 0;
    for (int i = 0; i < n; i += n_batch) {
        int k = FC_MIN(n_batch, n - i);
        if (fc_kv_cache_reserve(kv, 0, k) != FC_OK) fc_cli_die("use a shorter prompt", "the prompt does not fit the KV cache");
        fc_batch_clear(b);
        for (int j = 0; j < k; j++) fc_batch_add(b, ids[i + j], i + j, 0, all_rows || i + j == n - 1);
        float *dst = all_rows ? logits + (size_t)n_rows * V : logits;
        if (fc_model_forward(m, e, kv, b, dst) != FC_OK) fc_cli_die(NULL, "forward failed: %s", fc_last_error());
        n_rows += all_rows ? k : 0;
    }
    return fc_time_sec() - t0;
}

/* xorshift64* for sampling, seeded by --seed */
static double rnd(unsigned long long *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / (double)(1ULL << 53);
}

static int pick(const float *logits, int V, float temperature, unsigned long long *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 1e-5f) return best;
    double sum = 0, r;
    for (int i = 0; i < V; i++) sum += exp((logits[i] - logits[best]) / temperature);
    r = rnd(rng) * sum;
    for (int i = 0; i < V; i++) {
        r -= exp((logits[i] - logits[best]) / temperature);
        if (r <= 0) return i;
    }
    return best;
}

int fc_cmd_generate(int argc, char **argv)
{
    gen_opts o;
    parse(argc, argv, &o);
    if (fc_t5_is_t5(o.model_path)) return t5_generate(&o);
    fc_model *m = load_or_die(o.model_path, o.verbose, &o);
    const fc_model_config *c = fc_model_get_config(m);
    fc_tokenizer *tok = fc_cli_load_tokenizer(m);
    int n_prompt;
    int32_t *ids = prompt_or_die(&o, tok, &n_prompt);
    fc_detok *detok = tok && !o.print_ids ? fc_detok_new(tok, false) : NULL;
    int n_ctx = n_prompt + o.max_new_tokens;
    if (n_ctx > c->n_ctx_train)
        FC_LOG_WARN("prompt + new tokens (%d) exceed the model's context length %d", n_ctx, c->n_ctx_train);
    fc_exec_params ep = {.n_threads = o.threads, .exact = o.exact, .act8 = o.act8, .n_batch_max = FC_MIN(o.n_batch, n_prompt)};
    fc_exec *e = fc_exec_new(m, &ep);
    fc_kv_params kp = {.n_tokens = n_ctx + 1, .n_seq_max = 1, .dtype = o.exact ? FC_DTYPE_F32 : FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    if (!e || !kv) fc_cli_die(NULL, "%s", fc_last_error());
    fc_batch *b = fc_batch_new(ep.n_batch_max);
    float *logits = fc_xmalloc(sizeof(float) * (size_t)c->n_vocab);
    unsigned long long rng = o.seed ? o.seed : 1;

    double t_prefill = prefill(m, e, kv, b, ids, n_prompt, ep.n_batch_max, false, logits);
    int32_t *out = fc_xmalloc(sizeof(int32_t) * (size_t)(o.max_new_tokens + 1));
    int n_out = 0;
    double t0 = fc_time_sec();
    for (int i = 0; i < o.max_new_tokens; i++) {
        int tok = pick(logits, c->n_vocab, o.temperature, &rng);
        out[n_out++] = tok;
        if (!o.ignore_eos && tok == c->eos_id) break;
        if (detok) {
            size_t len;
            const char *d = fc_detok_push(detok, tok, &len);
            fwrite(d, 1, len, stdout);
            fflush(stdout);
        } else if (!o.print_ids) {
            printf("%d ", tok);
            fflush(stdout);
        }
        if (i + 1 == o.max_new_tokens) break;
        if (fc_kv_cache_reserve(kv, 0, 1) != FC_OK) break;
        fc_batch_clear(b);
        fc_batch_add(b, tok, n_prompt + i, 0, true);
        if (fc_model_forward(m, e, kv, b, logits) != FC_OK) fc_cli_die(NULL, "forward failed: %s", fc_last_error());
    }
    double t_decode = fc_time_sec() - t0;
    if (o.print_ids) {
        printf("[");
        for (int i = 0; i < n_out; i++) printf(i ? ", %d" : "%d", out[i]);
        printf("]\n");
    } else {
        if (detok) {
            size_t len;
            const char *d = fc_detok_flush(detok, &len);
            fwrite(d, 1, len, stdout);
        }
        printf("\n");
    }
    if (o.verbose) {
        fprintf(stderr, "prefill: %d tokens in %.3f s (%.1f tokens/s)\n", n_prompt, t_prefill, n_prompt / t_prefill);
        int nd = n_out > 1 ? n_out - 1 : 0;
        fprintf(stderr, "decode: %d tokens in %.3f s (%.1f tokens/s)\n", nd, t_decode, nd ? nd / t_decode : 0.0);
        fprintf(stderr, "threads: %d, mode: %s, peak RSS %.1f MiB\n", fc_exec_n_threads(e), o.exact ? "exact" : o.act8 ? "fast, 8-bit activations" : "fast",
                fc_peak_rss() / 1048576.0);
    }
    free(out);
    free(logits);
    free(ids);
    fc_detok_free(detok);
    fc_tokenizer_free(tok);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    fc_exec_free(e);
    fc_model_free(m);
    return 0;
}

int fc_cmd_logits(int argc, char **argv)
{
    gen_opts o;
    parse(argc, argv, &o);
    if (!o.out) fc_cli_die("add --out FILE", "logits needs an output file");
    if (fc_t5_is_t5(o.model_path)) return t5_logits(&o);
    fc_model *m = load_or_die(o.model_path, o.verbose, &o);
    const fc_model_config *c = fc_model_get_config(m);
    fc_tokenizer *tok = o.prompt ? fc_cli_load_tokenizer(m) : NULL;
    int n;
    int32_t *ids = prompt_or_die(&o, tok, &n);
    fc_tokenizer_free(tok);
    fc_exec_params ep = {.n_threads = o.threads, .exact = o.exact, .act8 = o.act8, .n_batch_max = FC_MIN(o.n_batch, n)};
    fc_exec *e = fc_exec_new(m, &ep);
    fc_kv_params kp = {.n_tokens = n, .n_seq_max = 1, .dtype = o.exact ? FC_DTYPE_F32 : FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    if (!e || !kv) fc_cli_die(NULL, "%s", fc_last_error());
    fc_batch *b = fc_batch_new(ep.n_batch_max);
    float *logits = fc_xmalloc(sizeof(float) * (size_t)c->n_vocab * (size_t)n);
    prefill(m, e, kv, b, ids, n, ep.n_batch_max, true, logits);
    FILE *f = fopen(o.out, "wb");
    if (!f || fwrite(logits, sizeof(float) * (size_t)c->n_vocab, (size_t)n, f) != (size_t)n || fclose(f) != 0)
        fc_cli_die(NULL, "%s: cannot write", o.out);
    free(logits);
    free(ids);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    fc_exec_free(e);
    fc_model_free(m);
    return 0;
}

/* ---- T5 encoder-decoder models (model/t5.h) ----
 * The prompt goes to the encoder; generate decodes from the decoder start
 * token, logits writes one row per decoder input id (--decoder-ids). Both
 * run on --threads, exact with --exact, else in the kernels' fast mode. */

static fc_t5 *t5_load_or_die(const gen_opts *o)
{
    double t0 = fc_time_sec();
    fc_t5 *m = fc_t5_load(o->model_path);
    if (!m) fc_cli_die("a T5 folder needs config.json and its safetensors (or pytorch_model.bin) in f32/f16/bf16",
                       "%s", fc_last_error());
    if (o->verbose) fprintf(stderr, "load: %.3f s (%s, T5)\n", fc_time_sec() - t0, o->model_path);
    return m;
}

/* --threads N (default: all online CPUs) */
static fc_pool *t5_pool(const gen_opts *o)
{
    const long n = o->threads > 0 ? o->threads : sysconf(_SC_NPROCESSORS_ONLN);
    return n > 1 ? fc_pool_new((int)FC_MIN(n, 256)) : NULL;
}

static float *t5_encode_or_die(const fc_t5 *m, const fc_t5_run *run, const gen_opts *o, int *n_enc)
{
    int32_t *ids = fc_cli_parse_ids(o->prompt_ids, n_enc);
    float *enc = fc_xmalloc(sizeof(float) * (size_t)*n_enc * (size_t)fc_t5_get_config(m)->n_embd);
    if (fc_t5_encode(m, run, ids, *n_enc, enc) != FC_OK) fc_cli_die(NULL, "a prompt id is outside the vocabulary");
    free(ids);
    return enc;
}

static int t5_generate(const gen_opts *o)
{
    fc_t5 *m = t5_load_or_die(o);
    const fc_t5_config *c = fc_t5_get_config(m);
    fc_pool *pool = t5_pool(o);
    const fc_t5_run run = {.pool = pool, .fast = !o->exact};
    int n_enc;
    fc_tokenizer *tk = o->prompt_ids ? NULL : fc_tokenizer_load(o->model_path); /* folder or GGUF */
    int32_t *ids = prompt_or_die(o, tk, &n_enc); /* --prompt: with T5's trailing </s> */
    double t0 = fc_time_sec();
    float *enc = fc_xmalloc(sizeof(float) * (size_t)n_enc * (size_t)c->n_embd);
    if (fc_t5_encode(m, &run, ids, n_enc, enc) != FC_OK) fc_cli_die(NULL, "a prompt id is outside the vocabulary");
    const double t_enc = fc_time_sec() - t0;
    fc_t5_dec *d = fc_t5_dec_new(m, &run, enc, n_enc, o->max_new_tokens + 1);
    if (!d) fc_cli_die(NULL, "%s", fc_last_error());
    float *logits = fc_xmalloc(sizeof(float) * (size_t)c->n_vocab);
    int32_t *out = fc_xmalloc(sizeof(int32_t) * (size_t)(o->max_new_tokens + 1));
    unsigned long long rng = o->seed ? o->seed : 1;
    /* a repetition penalty goes through FastChat's processor chain (the
     * sampler, which counts prompt and output ids); without one the plain
     * pick keeps the sampled streams of earlier releases */
    fc_sampler *smp = NULL;
    if (o->repetition_penalty != 1.0f) {
        fc_sampling_params sp = fc_sampling_default();
        sp.temperature = o->temperature;
        sp.repetition_penalty = o->repetition_penalty;
        sp.has_seed = true;
        sp.seed = o->seed;
        smp = fc_sampler_new(&sp, c->n_vocab);
        fc_sampler_add_prompt(smp, ids, n_enc);
    }
    int n_out = 0, tok = c->decoder_start_id;
    t0 = fc_time_sec();
    for (int i = 0; i < o->max_new_tokens; i++) {
        if (fc_t5_dec_step(d, tok, logits) != FC_OK) fc_cli_die(NULL, "T5 decoder step failed");
        tok = smp ? fc_sampler_sample(smp, logits) : pick(logits, c->n_vocab, o->temperature, &rng);
        out[n_out++] = tok;
        if (!o->ignore_eos && tok == c->eos_id) break;
    }
    const double t_dec = fc_time_sec() - t0;
    if (tk && !o->print_ids) {
        size_t len;
        char *text = fc_tokenizer_decode(tk, out, (size_t)n_out, true, &len);
        fwrite(text, 1, len, stdout);
        printf("\n");
        free(text);
    } else {
        printf("[");
        for (int i = 0; i < n_out; i++) printf(i ? ", %d" : "%d", out[i]);
        printf("]\n");
    }
    fc_sampler_free(smp);
    fc_tokenizer_free(tk);
    free(ids);
    if (o->verbose) {
        fprintf(stderr, "encoder: %d tokens in %.3f s\n", n_enc, t_enc);
        fprintf(stderr, "decode: %d tokens in %.3f s (%.1f tokens/s)\n", n_out, t_dec, n_out ? n_out / t_dec : 0.0);
    }
    free(out);
    free(logits);
    free(enc);
    fc_t5_dec_free(d);
    fc_pool_free(pool);
    fc_t5_free(m);
    return 0;
}

static int t5_logits(const gen_opts *o)
{
    fc_t5 *m = t5_load_or_die(o);
    const fc_t5_config *c = fc_t5_get_config(m);
    fc_pool *pool = t5_pool(o);
    const fc_t5_run run = {.pool = pool, .fast = !o->exact};
    int n_enc, n_dec = 1;
    float *enc = t5_encode_or_die(m, &run, o, &n_enc);
    int32_t start = c->decoder_start_id;
    int32_t *dec = o->decoder_ids ? fc_cli_parse_ids(o->decoder_ids, &n_dec) : &start;
    fc_t5_dec *d = fc_t5_dec_new(m, &run, enc, n_enc, n_dec);
    if (!d) fc_cli_die(NULL, "%s", fc_last_error());
    float *logits = fc_xmalloc(sizeof(float) * (size_t)c->n_vocab * (size_t)n_dec);
    for (int i = 0; i < n_dec; i++)
        if (fc_t5_dec_step(d, dec[i], logits + (size_t)i * c->n_vocab) != FC_OK)
            fc_cli_die(NULL, "decoder id %d at %d is outside the vocabulary", dec[i], i);
    FILE *f = fopen(o->out, "wb");
    if (!f || fwrite(logits, sizeof(float) * (size_t)c->n_vocab, (size_t)n_dec, f) != (size_t)n_dec || fclose(f) != 0)
        fc_cli_die(NULL, "%s: cannot write", o->out);
    free(logits);
    if (dec != &start) free(dec);
    free(enc);
    fc_t5_dec_free(d);
    fc_pool_free(pool);
    fc_t5_free(m);
    return 0;
}
