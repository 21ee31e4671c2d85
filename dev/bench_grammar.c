/*
 * bench_grammar.c: the cost of grammar-constrained sampling on the default
 * model: token-mask time per token (a fresh matcher: cache filled on first
 * visits; the same matcher again: what a server that keeps the matcher per
 * schema pays) against the forward (decode) time per token, measured in the
 * same greedy generation loop. Mask times are the thread's CPU time (the
 * mask is single-threaded, so this is its idle-machine cost); forward times
 * are wall-clock (all threads), so on a busy host they are inflated.
 *
 * Build and run (from the repository root, after `make`):
 *   cc -std=c11 -O3 -march=native -D_GNU_SOURCE -pthread -Isrc dev/bench_grammar.c \
 *      build/libfastchat.a -lmicrohttpd -lcurl -lcjson -lpcre2-8 -lutf8proc -lm -o build/bench_grammar
 *   build/bench_grammar [model.gguf] [schema.json ...]
 * (defaults: $FASTCHAT_MODEL and five schemas of tests/data/schemas)
 */
#include "sampling/grammar.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"
#include "base/fc_base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_NEW 128

/* The mask runs on the calling thread alone: its CPU time is what it costs
 * on an idle machine, whatever else the host is running. */
static double cpu_sec(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#define MAX_T 100000

static double tm_cold[MAX_T], tm_warm[MAX_T], tf[MAX_T];
static int n_cold, n_warm, n_f;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)k + 1);
    size_t n = fread(b, 1, (size_t)k, f);
    b[n] = 0;
    fclose(f);
    return b;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n)
{
    if (!n) return;
    qsort(t, (size_t)n, sizeof *t, cmp_dbl);
    double s = 0;
    for (int i = 0; i < n; i++) s += t[i];
    printf("  %-34s n=%5d  median %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  max %8.3f ms  mean %7.3f ms\n", what, n,
           1e3 * t[n / 2], 1e3 * t[(int)(0.9 * n)], 1e3 * t[(int)(0.99 * n)], 1e3 * t[n - 1], 1e3 * s / n);
}

/* One greedy generation; mask times into tm[], forward times into tf[] when fwd. */
static int run(fc_model *m, fc_exec *e, fc_tokenizer *tok, fc_grammar_matcher *gm, const fc_grammar *g,
               const fc_grammar_vocab *voc, const char *schema, double *tm, int *ntm, bool fwd, char *out, size_t cap)
{
    const fc_model_config *cfg = fc_model_get_config(m);
    int V = cfg->n_vocab;
    char prompt[8192];
    snprintf(prompt, sizeof prompt,
             "<|im_start|>user\nWrite a JSON value that matches this JSON Schema:\n%.6000s<|im_end|>\n<|im_start|>assistant\n",
             schema);
    int32_t *ids;
    int n = fc_tokenizer_encode(tok, prompt, strlen(prompt), false, true, &ids);
    fc_kv_params kp = {.n_tokens = n + MAX_NEW + 8, .n_seq_max = 1, .dtype = FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(cfg, &kp);
    fc_batch *b = fc_batch_new(n);
    float *logits = malloc(sizeof(float) * (size_t)V);
    uint64_t *mask = malloc(sizeof *mask * fc_grammar_mask_words(voc));
    fc_kv_cache_reserve(kv, 0, n);
    for (int i = 0; i < n; i++) fc_batch_add(b, ids[i], i, 0, i == n - 1);
    fc_model_forward(m, e, kv, b, logits);
    fc_grammar_state *st = fc_grammar_state_new(g);
    size_t len = 0;
    int k;
    for (k = 0; k < MAX_NEW; k++) {
        double t0 = cpu_sec();
        fc_grammar_matcher_mask(gm, st, mask);
        if (*ntm < MAX_T) tm[(*ntm)++] = cpu_sec() - t0;
        fc_grammar_mask_apply(voc, mask, logits, V);
        int best = 0;
        for (int t = 1; t < V; t++)
            if (logits[t] > logits[best]) best = t;
        if (fc_grammar_vocab_is_eog(voc, best) || !fc_grammar_matcher_accept(gm, st, best)) break;
        size_t pl;
        const char *p = fc_grammar_vocab_piece(voc, best, &pl);
        if (len + pl < cap) { memcpy(out + len, p, pl); len += pl; }
        if (fc_grammar_state_is_final(st)) break;
        t0 = fc_time_sec();
        fc_kv_cache_reserve(kv, 0, 1);
        fc_batch_clear(b);
        fc_batch_add(b, best, n + k, 0, true);
        fc_model_forward(m, e, kv, b, logits);
        if (fwd && n_f < MAX_T) tf[n_f++] = fc_time_sec() - t0;
    }
    out[len] = 0;
    fc_grammar_state_free(st);
    free(mask);
    free(logits);
    free(ids);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    return k;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : getenv("FASTCHAT_MODEL");
    if (!path) { fprintf(stderr, "usage: bench_grammar model.gguf [schema.json ...]\n"); return 2; }
    static const char *defaults[] = {"tests/data/schemas/person.json", "tests/data/schemas/todo_list.json",
                                     "tests/data/schemas/function_call.json", "tests/data/schemas/book_list.json",
                                     "tests/data/schemas/free_object.json"};
    const char **files = argc > 2 ? (const char **)argv + 2 : defaults;
    int n_files = argc > 2 ? argc - 2 : 5;
    fc_model *m = fc_model_load(path);
    if (!m) { fprintf(stderr, "%s\n", fc_last_error()); return 1; }
    fc_tokenizer *tok = fc_tokenizer_from_gguf(fc_model_gguf(m), path);
    double t0 = fc_time_sec();
    fc_grammar_vocab *voc = fc_grammar_vocab_new(tok);
    printf("vocabulary: %d tokens, sorted in %.1f ms\n", fc_grammar_vocab_size(voc), 1e3 * (fc_time_sec() - t0));
    fc_exec_params ep = {.n_batch_max = 2048};
    fc_exec *e = fc_exec_new(m, &ep);
    static char out[65536];
    for (int i = 0; i < n_files; i++) {
        char *schema = slurp(files[i]), err[256];
        if (!schema) { fprintf(stderr, "%s: unreadable\n", files[i]); continue; }
        t0 = fc_time_sec();
        fc_grammar *g = fc_grammar_from_json_schema(schema, strlen(schema), err, sizeof err);
        if (!g) { fprintf(stderr, "%s: %s\n", files[i], err); free(schema); continue; }
        double t_compile = fc_time_sec() - t0;
        fc_grammar_matcher *gm = fc_grammar_matcher_new(g, voc);
        int nc0 = n_cold;
        t0 = fc_time_sec();
        int k = run(m, e, tok, gm, g, voc, schema, tm_cold, &n_cold, true, out, sizeof out);
        double t_run = fc_time_sec() - t0;
        run(m, e, tok, gm, g, voc, schema, tm_warm, &n_warm, false, out, sizeof out);
        size_t np, nu;
        fc_grammar_matcher_stats(gm, &np, &nu);
        double cold = 0;
        for (int j = nc0; j < n_cold; j++) cold += tm_cold[j];
        printf("%s: compile %.2f ms, %d tokens in %.2f s, cold masks %.1f ms CPU in all, %zu positions cached "
               "(%zu uncertain tokens), matcher %.1f MiB\n  -> %.160s\n",
               files[i], 1e3 * t_compile, k, t_run, 1e3 * cold, np, nu, fc_grammar_matcher_bytes(gm) / 1048576.0, out);
        fc_grammar_matcher_free(gm);
        fc_grammar_free(g);
        free(schema);
    }
    printf("per token:\n");
    report("mask CPU, fresh matcher (cold)", tm_cold, n_cold);
    report("mask CPU, same matcher again (warm)", tm_warm, n_warm);
    report("forward wall (decode)", tf, n_f);
    fc_exec_free(e);
    fc_grammar_vocab_free(voc);
    fc_tokenizer_free(tok);
    fc_model_free(m);
    return 0;
}
