/*
 * cmd_bench.c: `fastchat bench`: the engine's speed on one model, measured
 * the way llama.cpp's llama-bench and llama-batched-bench measure it, so that
 * scripts/bench.sh can put the two side by side.
 *
 *   load      fc_model_load + fc_exec_new, seconds; peak RSS after it
 *   ppP       prefill: one forward of P random tokens into an empty sequence,
 *             logits of the last token only (llama-bench -p P)
 *   tgG@dD    single-stream decode: D random tokens prefilled (untimed), then
 *             G forwards of one token each, logits on (llama-bench -n G -d D)
 *   bgB       batched decode: B sequences, each with --batch-ctx prefilled
 *             tokens (untimed), then G/4 forwards of B tokens (one per
 *             sequence, logits on) (llama-batched-bench S_TG)
 *
 * Figures are the mean and standard deviation over --reps repetitions of
 * tokens per second, as llama-bench reports avg_ts and stddev_ts. Token ids
 * are random: speed does not depend on them.
 *
 * Besides speed it prints the bytes a decode step must read (the weights
 * touched per token and the KV cache of its context), from which a
 * bandwidth-bound rate follows: tokens/s <= GB/s / bytes per token. With
 * --bw-gbs X it prints that bound and the fraction of it reached. --exact
 * measures the reference mode (f32 arithmetic, f32 KV cache).
 *
 * Output: one machine-readable line per figure on stdout,
 *   bench: model=NAME type=q4_1 mode=fast threads=2 test=pp512 tokens_per_s=1234.5 stddev=3.2 reps=3
 * then a human table. Not here: sampling, tokenization and serving overhead
 * (the engine and server benchmarks measure those).
 */
#include "cli.h"
#include "base/fc_base.h"
#include "model/model.h"
#include "model/kv_cache.h"

#include <math.h>
#include <string.h>

#define MAX_LIST 16
#define MAX_ROWS 64

typedef struct bench_opts {
    const char *model_path;
    int threads;
    bool exact, act8;
    int n_prompt;             /* P */
    int n_gen;                /* G */
    int depths[MAX_LIST], n_depths;
    int batches[MAX_LIST], n_batches;
    int batch_ctx;            /* prefilled tokens per sequence in bgB */
    int reps;
    enum fc_dtype kv_dtype;
    double bw_gbs;            /* 0: unknown */
    unsigned long long seed;
} bench_opts;

/* One result row, for the table. */
typedef struct bench_row {
    char test[32];
    double tps, sd;           /* tokens/s mean, stddev */
    double bytes_per_tok;     /* bytes read per generated token (decode tests), else 0 */
} bench_row;

typedef struct bench_ctx {
    const bench_opts *o;
    const fc_model *m;
    const fc_model_config *c;
    fc_exec *e;
    fc_kv_cache *kv;
    fc_batch *b;
    float *logits;            /* (B_max, V) */
    char name[256];           /* model file name */
    const char *type;         /* weight type name */
    int n_threads;
    int n_batch_max;
    double w_bytes;           /* weight bytes read per decode step */
    double kv_elt;            /* bytes of one K or V element */
    unsigned long long rng;
    bench_row rows[MAX_ROWS];
    int n_rows;
} bench_ctx;

/* "16,1024" -> list; "" -> empty list. */
static int parse_list(const char *s, int *out, const char *flag)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > (1 << 24) || n == MAX_LIST)
            fc_cli_die("give a comma-separated list of non-negative numbers, e.g. 16,1024", "bad %s '%s'", flag, s);
        out[n++] = (int)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return n;
}

static const char *on_list(const fc_flag *f, const char *v, void *dst)
{
    bench_opts *o = dst;
    if (!strcmp(f->names, "--depths")) o->n_depths = parse_list(v, o->depths, f->names);
    else o->n_batches = parse_list(v, o->batches, f->names);
    return NULL;
}

static const char *on_kv_type(const fc_flag *f, const char *v, void *dst)
{
    enum fc_dtype t = fc_dtype_from_name(v);
    if (t != FC_DTYPE_F16 && t != FC_DTYPE_F32) return "the KV cache holds f16 or f32";
    *(enum fc_dtype *)dst = t;
    return NULL;
}

static void parse(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_prompt = 512;
    o->n_gen = 128;
    o->n_depths = parse_list("16,1024", o->depths, "--depths");
    o->n_batches = parse_list("8,32", o->batches, "--batches");
    o->batch_ctx = 64;
    o->reps = 3;
    o->kv_dtype = FC_DTYPE_F16;
    o->seed = 42;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &o->model_path, .metavar = "M", .help = "GGUF file or Hugging Face folder"},
        {"--threads", FC_FLAG_INT, &o->threads, .help = "compute threads (default: all CPUs)"},
        {"--exact", FC_FLAG_TRUE, &o->exact, .help = "f32 reference mode"},
        {"--act8", FC_FLAG_TRUE, &o->act8,
         .help = "8-bit activations for every quantized type (default: 16-bit for the 32-value types)"},
        {"--prompt", FC_FLAG_INT, &o->n_prompt, .metavar = "P", .help = "prefill test ppP (0 skips it; default 512)"},
        {"--gen", FC_FLAG_INT, &o->n_gen, .metavar = "G",
         .help = "decode tests tgG@dD for each depth D, and G/4 steps of each batched test (default 128)"},
        {"--depths", FC_FLAG_FUNC, o, .fn = on_list, .metavar = "L",
         .help = "context depths before the single-stream decode ('' skips; default 16,1024)"},
        {"--batches", FC_FLAG_FUNC, o, .fn = on_list, .metavar = "L",
         .help = "sequence counts of the batched decode tests ('' skips; default 8,32)"},
        {"--batch-ctx", FC_FLAG_INT, &o->batch_ctx, .help = "tokens prefilled per sequence before the batched steps (default 64)"},
        {"--reps", FC_FLAG_INT, &o->reps, .help = "repetitions (default 3)"},
        {"--kv-type", FC_FLAG_FUNC, &o->kv_dtype, .fn = on_kv_type, .metavar = "f16|f32", .help = "KV cache type (default f16)"},
        {"--bw-gbs", FC_FLAG_DOUBLE, &o->bw_gbs, .help = "measured DRAM read bandwidth: also print the bandwidth bound"},
        {"--seed", FC_FLAG_UINT64, &o->seed, .metavar = "S", .help = "(default 42)"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat bench --model-path M [--threads N] [--exact | --act8] [--prompt 512] [--gen 128]\n"
                 "                      [--depths 16,1024] [--batches 8,32] [--batch-ctx 64] [--reps 3]\n"
                 "                      [--kv-type f16|f32] [--bw-gbs GBS] [--seed S]",
        .flags = flags,
        .footer = "lines starting with 'bench:' are machine-readable; a table follows\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!o->model_path) o->model_path = fc_cli_default_model();
    if (o->n_prompt < 0 || o->n_gen < 0 || o->batch_ctx < 0) fc_cli_die(NULL, "sizes must be >= 0");
    if (o->reps < 1) fc_cli_die(NULL, "--reps must be >= 1");
    for (int i = 0; i < o->n_batches; i++)
        if (o->batches[i] < 1) fc_cli_die(NULL, "--batches takes counts >= 1");
    if (o->exact) o->kv_dtype = FC_DTYPE_F32;
}

/* ---- helpers ---- */

static int32_t rand_token(bench_ctx *x)
{
    x->rng ^= x->rng >> 12;
    x->rng ^= x->rng << 25;
    x->rng ^= x->rng >> 27;
    return (int32_t)(((x->rng * 2685821657736338717ULL) >> 33) % (unsigned long long)x->c->n_vocab);
}

static void forward_or_die(bench_ctx *x, float *logits)
{
    enum fc_status st = fc_model_forward(x->m, x->e, x->kv, x->b, logits);
    if (st != FC_OK) fc_cli_die(NULL, "forward failed (%s): %s", fc_status_str(st), fc_last_error());
}

static void reserve_or_die(bench_ctx *x, int seq, int n)
{
    if (fc_kv_cache_reserve(x->kv, seq, n) != FC_OK)
        fc_cli_die("this is a bug in the bench's KV budget", "KV cache full (seq %d, %d more tokens)", seq, n);
}

/* Appends n random tokens to seq, in chunks of n_batch_max; untimed. */
static void prefill(bench_ctx *x, int seq, int n)
{
    int pos = fc_kv_cache_seq_len(x->kv, seq);
    for (int i = 0; i < n;) {
        int k = FC_MIN(x->n_batch_max, n - i);
        reserve_or_die(x, seq, k);
        fc_batch_clear(x->b);
        for (int j = 0; j < k; j++) fc_batch_add(x->b, rand_token(x), pos + i + j, seq, i + j == n - 1);
        forward_or_die(x, x->logits);
        i += k;
    }
}

static void clear_all(bench_ctx *x)
{
    for (int s = 0; s < fc_kv_cache_n_seq_max(x->kv); s++) fc_kv_cache_seq_truncate(x->kv, s, 0);
}

static double kv_bytes(const bench_ctx *x, double n_ctx)
{
    const fc_model_config *c = x->c;
    return 2.0 * c->n_layer * c->n_head_kv * c->head_dim * n_ctx * x->kv_elt;
}

static void stats(const double *v, int n, double *mean, double *sd)
{
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(s2 / (n - 1)) : 0.0;
}

/* Prints the machine line and keeps the row. bytes_per_tok 0: not a decode test. */
static void report(bench_ctx *x, const char *test, const double *tps, double bytes_per_tok, const char *extra)
{
    double mean, sd;
    stats(tps, x->o->reps, &mean, &sd);
    printf("bench: model=%s type=%s mode=%s threads=%d test=%s tokens_per_s=%.2f stddev=%.2f reps=%d", x->name,
           x->type, x->o->exact ? "exact" : x->o->act8 ? "act8" : "fast", x->n_threads, test, mean, sd, x->o->reps);
    if (bytes_per_tok > 0) {
        printf(" bytes_per_token=%.0f", bytes_per_tok);
        if (x->o->bw_gbs > 0) {
            double bound = x->o->bw_gbs * 1e9 / bytes_per_tok;
            printf(" bound_tokens_per_s=%.1f frac_of_bound=%.3f", bound, mean / bound);
        }
    }
    if (extra) printf(" %s", extra);
    printf("\n");
    fflush(stdout);
    if (x->n_rows < MAX_ROWS) {
        bench_row *r = &x->rows[x->n_rows++];
        snprintf(r->test, sizeof r->test, "%s", test);
        r->tps = mean;
        r->sd = sd;
        r->bytes_per_tok = bytes_per_tok;
    }
}

/* ---- the tests ---- */

static void bench_pp(bench_ctx *x, int P)
{
    double tps[64];
    for (int r = 0; r < x->o->reps; r++) {
        clear_all(x);
        reserve_or_die(x, 0, P);
        fc_batch_clear(x->b);
        for (int i = 0; i < P; i++) fc_batch_add(x->b, rand_token(x), i, 0, i == P - 1);
        double t0 = fc_time_sec();
        forward_or_die(x, x->logits);
        tps[r] = P / (fc_time_sec() - t0);
    }
    char test[32];
    snprintf(test, sizeof test, "pp%d", P);
    report(x, test, tps, 0, NULL);
}

static void bench_tg(bench_ctx *x, int G, int D)
{
    double tps[64];
    for (int r = 0; r < x->o->reps; r++) {
        clear_all(x);
        prefill(x, 0, D);
        double t0 = fc_time_sec();
        for (int g = 0; g < G; g++) {
            reserve_or_die(x, 0, 1);
            fc_batch_clear(x->b);
            fc_batch_add(x->b, rand_token(x), D + g, 0, true);
            forward_or_die(x, x->logits);
        }
        tps[r] = G / (fc_time_sec() - t0);
    }
    /* token g reads the KV of D + g + 1 positions: mean D + (G + 1) / 2 */
    double kvb = kv_bytes(x, D + (G + 1) / 2.0);
    char test[32], extra[128];
    snprintf(test, sizeof test, "tg%d@d%d", G, D);
    snprintf(extra, sizeof extra, "weight_bytes=%.0f kv_bytes=%.0f", x->w_bytes, kvb);
    report(x, test, tps, x->w_bytes + kvb, extra);
}

static void bench_batched(bench_ctx *x, int B, int S)
{
    const int ctx = FC_MAX(x->o->batch_ctx, 1);
    double tps[64];
    clear_all(x);
    for (int s = 0; s < B; s++) prefill(x, s, ctx);
    for (int r = 0; r < x->o->reps; r++) {
        for (int s = 0; s < B; s++) fc_kv_cache_seq_truncate(x->kv, s, ctx);
        double t0 = fc_time_sec();
        for (int k = 0; k < S; k++) {
            fc_batch_clear(x->b);
            for (int s = 0; s < B; s++) {
                reserve_or_die(x, s, 1);
                fc_batch_add(x->b, rand_token(x), ctx + k, s, true);
            }
            forward_or_die(x, x->logits);
        }
        tps[r] = (double)B * S / (fc_time_sec() - t0);
    }
    /* one step reads the weights once and every sequence's KV */
    double kvb = kv_bytes(x, ctx + (S + 1) / 2.0);
    char test[32], extra[160];
    snprintf(test, sizeof test, "bg%d", B);
    snprintf(extra, sizeof extra, "steps=%d ctx=%d weight_bytes=%.0f kv_bytes_per_seq=%.0f", S, ctx, x->w_bytes, kvb);
    report(x, test, tps, (x->w_bytes + B * kvb) / B, extra);
}

/* Bytes of weights one decode step reads from memory: every tensor once as
 * stored, but only one row of the token embedding unless it doubles as the
 * output projection, and k of the E experts of a Mixtral (one sequence's
 * step; a batch reads up to all of them). (Exact mode dequantizes rows on the fly, so it reads
 * the same bytes.) */
static double weight_bytes_per_step(const fc_model *m)
{
    const fc_model_config *c = fc_model_get_config(m);
    double sum = 0;
    const char *name;
    const fc_tensor *t;
    for (int64_t i = 0; fc_model_tensor_at(m, i, &name, &t); i++) {
        if (!strcmp(name, "token_embd.weight") && !c->tied_embeddings) sum += (double)fc_tensor_row_bytes(t);
        else if (c->n_expert > 0 && t->n_dims == 3 && t->ne[2] == c->n_expert) /* Mixtral: one token reads its k experts */
            sum += (double)t->nbytes * c->n_expert_used / c->n_expert;
        else sum += (double)t->nbytes;
    }
    return sum;
}

static void print_table(const bench_ctx *x, double load_s, double rss_load, double rss_peak)
{
    const fc_model_config *c = x->c;
    printf("\n%s  (%s, C=%d L=%d NH=%d NKV=%d FF=%d V=%d, %s%s, %d threads)\n", x->name, x->type, c->n_embd,
           c->n_layer, c->n_head, c->n_head_kv, c->n_ff, c->n_vocab, x->o->exact ? "exact, " : "",
           x->kv_elt == 2 ? "f16 KV" : "f32 KV", x->n_threads);
    printf("  load %.3f s, peak RSS %.1f MiB after load, %.1f MiB at the end\n", load_s, rss_load, rss_peak);
    printf("  weights read per decode token %.1f MB\n", x->w_bytes / 1e6);
    printf("  %-14s %12s %10s %14s", "test", "tokens/s", "+-", "MB/token");
    if (x->o->bw_gbs > 0) printf(" %12s %8s", "bound t/s", "of bound");
    printf("\n");
    for (int i = 0; i < x->n_rows; i++) {
        const bench_row *r = &x->rows[i];
        printf("  %-14s %12.2f %10.2f", r->test, r->tps, r->sd);
        if (r->bytes_per_tok > 0) {
            printf(" %14.2f", r->bytes_per_tok / 1e6);
            if (x->o->bw_gbs > 0) {
                double bound = x->o->bw_gbs * 1e9 / r->bytes_per_tok;
                printf(" %12.1f %7.1f%%", bound, 100.0 * r->tps / bound);
            }
        }
        printf("\n");
    }
}

int fc_cmd_bench(int argc, char **argv)
{
    bench_opts o;
    parse(argc, argv, &o);
    if (o.reps > 64) o.reps = 64;

    bench_ctx x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    x.rng = o.seed ? o.seed : 42;
    const char *slash = strrchr(o.model_path, '/');
    snprintf(x.name, sizeof x.name, "%s", slash && slash[1] ? slash + 1 : o.model_path);

    /* the sizes every test needs, so that nothing is allocated while timing */
    int B_max = 0, D_max = 0, S = FC_MAX(o.n_gen / 4, 1);
    for (int i = 0; i < o.n_batches; i++) B_max = FC_MAX(B_max, o.batches[i]);
    for (int i = 0; i < o.n_depths; i++) D_max = FC_MAX(D_max, o.depths[i]);
    int64_t need = o.n_prompt;
    if (o.n_gen > 0 && o.n_depths > 0) need = FC_MAX(need, (int64_t)D_max + o.n_gen);
    if (o.n_gen > 0 && B_max > 0) need = FC_MAX(need, (int64_t)B_max * (FC_MAX(o.batch_ctx, 1) + S));
    int n_seq = FC_MAX(B_max, 1);
    need += (int64_t)n_seq * FC_KV_BLOCK + FC_KV_BLOCK; /* a partial block per sequence */
    x.n_batch_max = FC_MAX(FC_MAX(o.n_prompt, B_max), 32);

    double t0 = fc_time_sec();
    fc_model *m = fc_model_load(o.model_path);
    if (!m) fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder", "%s", fc_last_error());
    fc_exec_params ep = {.n_threads = o.threads, .exact = o.exact, .act8 = o.act8, .n_batch_max = x.n_batch_max};
    fc_exec *e = fc_exec_new(m, &ep);
    if (!e) fc_cli_die("try fewer threads or a smaller --prompt", "cannot create the execution context: %s",
                       fc_last_error());
    double load_s = fc_time_sec() - t0;
    double rss_load = fc_peak_rss() / 1048576.0;

    x.m = m;
    x.c = fc_model_get_config(m);
    x.e = e;
    x.type = fc_dtype_name(fc_model_weight_type(m));
    x.n_threads = fc_exec_n_threads(e);
    x.w_bytes = weight_bytes_per_step(m);
    fc_kv_params kp = {.n_tokens = need, .n_seq_max = n_seq, .dtype = o.kv_dtype};
    x.kv = fc_kv_cache_new(x.c, &kp);
    if (!x.kv) fc_cli_die("lower --batches, --depths or --prompt", "cannot allocate a KV cache of %lld tokens: %s",
                          (long long)need, fc_last_error());
    x.kv_elt = o.kv_dtype == FC_DTYPE_F16 ? 2.0 : 4.0;
    x.b = fc_batch_new(x.n_batch_max);
    x.logits = fc_xmalloc(sizeof(float) * (size_t)x.c->n_vocab * (size_t)n_seq);

    printf("bench: model=%s type=%s threads=%d test=load seconds=%.3f peak_rss_mib=%.1f weight_bytes_per_token=%.0f "
           "kv_bytes_per_ctx_token=%.0f file_weight_bytes=%zu\n",
           x.name, x.type, x.n_threads, load_s, rss_load, x.w_bytes, kv_bytes(&x, 1), fc_model_weight_bytes(m));
    fflush(stdout);

    /* warm-up, as llama-bench does: pages the weights in, starts the threads */
    clear_all(&x);
    prefill(&x, 0, FC_MIN(32, x.n_batch_max));
    prefill(&x, 0, 1);

    if (o.n_prompt > 0) bench_pp(&x, o.n_prompt);
    if (o.n_gen > 0)
        for (int i = 0; i < o.n_depths; i++) bench_tg(&x, o.n_gen, o.depths[i]);
    if (o.n_gen > 0)
        for (int i = 0; i < o.n_batches; i++) bench_batched(&x, o.batches[i], S);

    double rss_peak = fc_peak_rss() / 1048576.0;
    printf("bench: model=%s type=%s threads=%d test=rss peak_rss_mib=%.1f\n", x.name, x.type, x.n_threads, rss_peak);
    print_table(&x, load_s, rss_load, rss_peak);

    free(x.logits);
    fc_batch_free(x.b);
    fc_kv_cache_free(x.kv);
    fc_exec_free(e);
    fc_model_free(m);
    return 0;
}
