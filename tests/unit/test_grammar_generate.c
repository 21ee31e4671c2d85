/*
 * test_grammar_generate.c: the default model (FASTCHAT_MODEL) writes JSON
 * under a JSON Schema grammar, without the engine: prompt, forward, mask,
 * sample, advance, in one loop (as src/cli/cmd_generate.c drives a model).
 *
 *   no arguments        a quick run: 3 schemas of tests/data/schemas at
 *                       temperature 0; each output must be complete and
 *                       parse as JSON (cJSON). Validation against the schema
 *                       is tests/py/test_grammar_generate.py's part.
 *   FC_GRAMMAR_GEN_OUT=file.jsonl  every schema at temperature 0 and 1; one
 *                       line per output {"schema","temperature","output",
 *                       "tokens","finished"}; the pytest validates them with
 *                       the `jsonschema` package.
 *
 * Near the token limit the loop keeps to tokens that bring the grammar
 * state closer to a complete sentence (fc_grammar_state_distance), so every
 * output closes. It prints the cost of the constraint: mask time per token
 * (median, 90th percentile, worst; wall-clock, the closing filter not
 * included) next to forward time per token.
 */
#include "test_util.h"
#include "sampling/grammar.h"
#include "model/model.h"
#include "model/kv_cache.h"
#include "tokenizer/tokenizer.h"
#include "base/fc_base.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <string.h>

#define MAX_NEW 160

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)k + 1);
    *n = fread(b, 1, (size_t)k, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double rnd01(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 2685821657736338717ull) >> 11) / (double)(1ull << 53);
}

typedef struct gen_ctx {
    fc_model *m;
    fc_tokenizer *tok;
    fc_exec *e;
    fc_grammar_vocab *voc;
    float *logits;
    int V;
    double *t_mask, *t_fwd;
    int n_mask, n_fwd, cap;
} gen_ctx;

static void add_time(double **arr, int *n, int *cap, double t)
{
    if (*n == *cap) return;
    (*arr)[(*n)++] = t;
}

/* Generates under the schema; returns the malloc'd output text (NULL when
 * the schema fails to compile), *finished whether the grammar completed. */
static char *generate(gen_ctx *c, const char *schema, size_t slen, float temperature, int *n_tok, bool *finished)
{
    char err[256];
    fc_grammar *g = fc_grammar_from_json_schema(schema, slen, err, sizeof err);
    CHECKF(g != NULL, "%s", err);
    if (!g) return NULL;
    fc_grammar_matcher *gm = fc_grammar_matcher_new(g, c->voc);
    fc_grammar_state *st = fc_grammar_state_new(g), *probe = fc_grammar_state_new(g);
    uint64_t *mask = malloc(sizeof *mask * fc_grammar_mask_words(c->voc));

    size_t plen = strlen(schema) + 512;
    char *prompt = malloc(plen);
    snprintf(prompt, plen,
             "<|im_start|>system\nYou are a helpful assistant. You answer with JSON only.<|im_end|>\n"
             "<|im_start|>user\nWrite a JSON value that matches this JSON Schema:\n%s<|im_end|>\n<|im_start|>assistant\n",
             schema);
    int32_t *ids;
    int n = fc_tokenizer_encode(c->tok, prompt, strlen(prompt), false, true, &ids);
    free(prompt);
    const fc_model_config *cfg = fc_model_get_config(c->m);
    fc_kv_params kp = {.n_tokens = n + MAX_NEW + 8, .n_seq_max = 1, .dtype = FC_DTYPE_F16};
    fc_kv_cache *kv = fc_kv_cache_new(cfg, &kp);
    fc_batch *b = fc_batch_new(n > 0 ? n : 1);
    CHECK(n > 0 && fc_kv_cache_reserve(kv, 0, n) == FC_OK);
    fc_batch_clear(b);
    for (int i = 0; i < n; i++) fc_batch_add(b, ids[i], i, 0, i == n - 1);
    CHECK(fc_model_forward(c->m, c->e, kv, b, c->logits) == FC_OK);

    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    out[0] = 0;
    *finished = false;
    int k;
    for (k = 0; k < MAX_NEW; k++) {
        double t0 = fc_time_sec();
        fc_grammar_matcher_mask(gm, st, mask);
        add_time(&c->t_mask, &c->n_mask, &c->cap, fc_time_sec() - t0);
        size_t dist = fc_grammar_state_distance(st);
        if ((size_t)(MAX_NEW - k) <= dist + 2) {
            /* closing: only tokens that bring the end nearer (or end it) */
            for (int t = 0; t < c->V; t++) {
                if (!((mask[t >> 6] >> (t & 63)) & 1) || fc_grammar_vocab_is_eog(c->voc, t)) continue;
                fc_grammar_state_copy(probe, st);
                if (!fc_grammar_matcher_accept(gm, probe, t) || fc_grammar_state_distance(probe) >= dist)
                    mask[t >> 6] &= ~(1ull << (t & 63));
            }
        }
        fc_grammar_mask_apply(c->voc, mask, c->logits, c->V);
        int best = 0;
        for (int t = 1; t < c->V; t++)
            if (c->logits[t] > c->logits[best]) best = t;
        int pick = best;
        if (temperature > 1e-5f && isfinite(c->logits[best])) {
            double sum = 0;
            for (int t = 0; t < c->V; t++) sum += exp((c->logits[t] - c->logits[best]) / temperature);
            double r = rnd01() * sum;
            for (int t = 0; t < c->V; t++) {
                r -= exp((c->logits[t] - c->logits[best]) / temperature);
                if (r <= 0) { pick = t; break; }
            }
        }
        CHECKF(isfinite(c->logits[pick]), "no token allowed after '%s'", out);
        if (!isfinite(c->logits[pick])) break;
        if (fc_grammar_vocab_is_eog(c->voc, pick)) { *finished = true; break; }
        CHECK(fc_grammar_matcher_accept(gm, st, pick));
        size_t pl;
        const char *piece = fc_grammar_vocab_piece(c->voc, pick, &pl);
        if (len + pl + 1 > cap) { cap = 2 * (len + pl + 1); out = realloc(out, cap); }
        memcpy(out + len, piece, pl);
        len += pl;
        out[len] = 0;
        if (fc_grammar_state_is_final(st)) { *finished = true; k++; break; }
        t0 = fc_time_sec();
        CHECK(fc_kv_cache_reserve(kv, 0, 1) == FC_OK);
        fc_batch_clear(b);
        fc_batch_add(b, pick, n + k, 0, true);
        CHECK(fc_model_forward(c->m, c->e, kv, b, c->logits) == FC_OK);
        add_time(&c->t_fwd, &c->n_fwd, &c->cap, fc_time_sec() - t0);
    }
    if (!*finished && fc_grammar_state_can_end(st)) *finished = true; /* limit hit exactly at the end */
    *n_tok = k;
    free(ids);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    free(mask);
    fc_grammar_state_free(st);
    fc_grammar_state_free(probe);
    fc_grammar_matcher_free(gm);
    fc_grammar_free(g);
    return out;
}

static void report_times(const char *what, double *t, int n)
{
    if (!n) return;
    qsort(t, (size_t)n, sizeof *t, cmp_dbl);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += t[i];
    printf("%s: n=%d median %.3f ms, p90 %.3f ms, max %.3f ms, mean %.3f ms\n", what, n, 1e3 * t[n / 2],
           1e3 * t[(int)(0.9 * n)], 1e3 * t[n - 1], 1e3 * sum / n);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_ERROR);
    const char *path = getenv("FASTCHAT_MODEL");
    if (!path || !*path) { fprintf(stderr, "FASTCHAT_MODEL is not set (scripts/run_tests.sh sets it)\n"); return 1; }
    const char *out_path = getenv("FC_GRAMMAR_GEN_OUT");
    bool full = out_path && *out_path;

    gen_ctx c = {0};
    c.m = fc_model_load(path);
    CHECK(c.m != NULL);
    if (!c.m) return TEST_END();
    c.tok = fc_tokenizer_from_gguf(fc_model_gguf(c.m), path);
    CHECK(c.tok != NULL);
    if (!c.tok) return TEST_END();
    c.voc = fc_grammar_vocab_new(c.tok);
    c.V = fc_model_get_config(c.m)->n_vocab;
    CHECK(c.V == fc_grammar_vocab_size(c.voc));
    fc_exec_params ep = {.n_batch_max = 1024};
    c.e = fc_exec_new(c.m, &ep);
    c.logits = malloc(sizeof(float) * (size_t)c.V);
    c.cap = 200000;
    c.t_mask = malloc(sizeof(double) * (size_t)c.cap);
    c.t_fwd = malloc(sizeof(double) * (size_t)c.cap);

    char *names[256];
    int n_names = 0;
    DIR *d = opendir("tests/data/schemas");
    CHECK(d != NULL);
    struct dirent *de;
    while (d && (de = readdir(d)) && n_names < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".json")) names[n_names++] = fc_xstrdup(de->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)n_names, sizeof *names, cmp_str);
    CHECKF(n_names >= 30, "only %d schemas", n_names);

    FILE *out = full ? fopen(out_path, "w") : NULL;
    if (full) CHECK(out != NULL);
    static const char *quick[] = {"person.json", "todo_list.json", "pattern_code.json"};
    int n_done = 0, n_finished = 0;
    double t_all = fc_time_sec();
    for (int i = 0; i < n_names; i++) {
        bool pick = full;
        for (size_t q = 0; q < FC_ARRAY_LEN(quick) && !pick; q++) pick = !strcmp(names[i], quick[q]);
        if (!pick) continue;
        char p[512];
        snprintf(p, sizeof p, "tests/data/schemas/%s", names[i]);
        size_t slen;
        char *schema = slurp(p, &slen);
        CHECK(schema != NULL);
        if (!schema) continue;
        for (int ti = 0; ti < (full ? 2 : 1); ti++) {
            float temp = ti ? 1.0f : 0.0f;
            int n_tok = 0;
            bool fin = false;
            char *text = generate(&c, schema, slen, temp, &n_tok, &fin);
            if (!text) continue;
            n_done++;
            n_finished += fin;
            CHECKF(fin, "%s T=%.0f: not finished: %s", names[i], temp, text);
            cJSON *j = cJSON_Parse(text);
            CHECKF(j != NULL, "%s T=%.0f: does not parse: %s", names[i], temp, text);
            cJSON_Delete(j);
            printf("%-26s T=%.0f %3d tokens: %.120s%s\n", names[i], temp, n_tok, text, strlen(text) > 120 ? "..." : "");
            if (out) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "schema", names[i]);
                cJSON_AddNumberToObject(o, "temperature", temp);
                cJSON_AddStringToObject(o, "output", text);
                cJSON_AddNumberToObject(o, "tokens", n_tok);
                cJSON_AddBoolToObject(o, "finished", fin);
                char *line = cJSON_PrintUnformatted(o);
                fprintf(out, "%s\n", line);
                free(line);
                cJSON_Delete(o);
            }
            free(text);
        }
        free(schema);
    }
    if (out) fclose(out);
    printf("%d outputs, %d finished, %.1f s\n", n_done, n_finished, fc_time_sec() - t_all);
    report_times("mask per token (incl. first-visit cache fills)", c.t_mask, c.n_mask);
    report_times("forward per token", c.t_fwd, c.n_fwd);
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(c.t_mask);
    free(c.t_fwd);
    free(c.logits);
    fc_exec_free(c.e);
    fc_grammar_vocab_free(c.voc);
    fc_tokenizer_free(c.tok);
    fc_model_free(c.m);
    return TEST_END();
}
