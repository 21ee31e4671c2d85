/*
 * test_sampling.c: the logits processor chain against transformers' own
 * processors (tests/data/sampling/golden.json, made by
 * tools/golden/make_sampling_golden.py), and the draw itself:
 * - processed logits: the same tokens removed (-inf), kept values within
 *   1e-5 relative (float32 division/multiplication in both);
 * - greedy picks the argmax of the processed logits;
 * - a seeded sampler repeats itself; different seeds differ;
 * - draw frequencies follow softmax(processed) within 5 standard errors;
 * - log-probabilities and top alternatives equal a double-precision
 *   log-softmax within 1e-5.
 */
#include "test_util.h"
#include "sampling/sampler.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); fclose(f); return NULL; }
    b[n] = 0;
    fclose(f);
    return b;
}

static void test_golden(void)
{
    char *txt = slurp("tests/data/sampling/golden.json");
    CHECK(txt != NULL);
    if (!txt) return;
    cJSON *root = cJSON_Parse(txt);
    cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cases) {
        fc_sampling_params p = fc_sampling_default();
        p.temperature = (float)cJSON_GetObjectItem(c, "temperature")->valuedouble;
        p.repetition_penalty = (float)cJSON_GetObjectItem(c, "repetition_penalty")->valuedouble;
        p.top_p = (float)cJSON_GetObjectItem(c, "top_p")->valuedouble;
        p.top_k = cJSON_GetObjectItem(c, "top_k")->valueint;
        cJSON *lj = cJSON_GetObjectItem(c, "logits"), *hj = cJSON_GetObjectItem(c, "history"),
              *ej = cJSON_GetObjectItem(c, "expected");
        int V = cJSON_GetArraySize(lj);
        float *l = malloc(sizeof(float) * V);
        int32_t *counts = calloc((size_t)V, sizeof(int32_t));
        for (int i = 0; i < V; i++) l[i] = (float)cJSON_GetArrayItem(lj, i)->valuedouble;
        cJSON *h;
        cJSON_ArrayForEach(h, hj) counts[h->valueint]++;
        fc_sampling_process(&p, l, V, counts, NULL);
        int bad_mask = 0;
        double worst = 0;
        for (int i = 0; i < V; i++) {
            cJSON *e = cJSON_GetArrayItem(ej, i);
            bool removed = cJSON_IsNull(e);
            if (removed != (isinf(l[i]) != 0)) { bad_mask++; continue; }
            if (!removed) worst = fmax(worst, fabs(l[i] - e->valuedouble) / fmax(1.0, fabs(e->valuedouble)));
        }
        CHECKF(bad_mask == 0 && worst < 1e-5, "case %d (T=%g rp=%g top_p=%g top_k=%d): %d tokens kept/removed differently, "
               "max rel err %.2e", n_cases, p.temperature, p.repetition_penalty, p.top_p, p.top_k, bad_mask, worst);
        n_cases++;
        free(l);
        free(counts);
    }
    printf("processor chain vs transformers: %d cases\n", n_cases);
    CHECK(n_cases >= 10);
    cJSON_Delete(root);
    free(txt);
}

static void test_draws(void)
{
    enum { V = 50 };
    float base[V];
    for (int i = 0; i < V; i++) base[i] = (float)sin(i * 1.7) * 2.0f;
    /* greedy: argmax */
    fc_sampling_params g = fc_sampling_default();
    g.temperature = 0;
    fc_sampler *s = fc_sampler_new(&g, V);
    float l[V];
    memcpy(l, base, sizeof l);
    int best = 0;
    for (int i = 1; i < V; i++) if (base[i] > base[best]) best = i;
    CHECK(fc_sampler_sample(s, l) == best);
    fc_sampler_free(s);

    /* seeded repeatability */
    fc_sampling_params p = fc_sampling_default();
    p.temperature = 0.9f;
    p.has_seed = true;
    p.seed = 42;
    int32_t a[64], b[64], c[64];
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2) p.seed = 43;
        fc_sampler *x = fc_sampler_new(&p, V);
        for (int i = 0; i < 64; i++) {
            memcpy(l, base, sizeof l);
            (pass == 0 ? a : pass == 1 ? b : c)[i] = fc_sampler_sample(x, l);
        }
        fc_sampler_free(x);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);

    /* frequencies follow softmax(base / T) */
    enum { N = 200000 };
    static int hist[V];
    fc_sampler *x = fc_sampler_new(&p, V);
    for (int i = 0; i < N; i++) {
        memcpy(l, base, sizeof l);
        /* the sampler counts outputs, but no penalty is on: draws are i.i.d. */
        hist[fc_sampler_sample(x, l)]++;
    }
    fc_sampler_free(x);
    double z = 0;
    for (int i = 0; i < V; i++) z += exp(base[i] / 0.9);
    int outliers = 0;
    for (int i = 0; i < V; i++) {
        double pi = exp(base[i] / 0.9) / z, se = sqrt(N * pi * (1 - pi)) + 1;
        if (fabs(hist[i] - N * pi) > 5 * se) outliers++;
    }
    CHECKF(outliers == 0, "%d tokens drawn far from their softmax probability", outliers);

    /* log-probabilities */
    fc_logprob top[5];
    float lp = fc_logprob_of(base, V, 7, 5, top);
    double zz = 0, mx = -1e30;
    for (int i = 0; i < V; i++) mx = fmax(mx, base[i]);
    for (int i = 0; i < V; i++) zz += exp(base[i] - mx);
    CHECK(fabs(lp - (base[7] - mx - log(zz))) < 1e-5);
    CHECK(top[0].token == best);
    for (int j = 0; j < 5; j++) CHECK(fabs(top[j].logprob - (base[top[j].token] - mx - log(zz))) < 1e-5);
    for (int j = 1; j < 5; j++) CHECK(top[j].logprob <= top[j - 1].logprob);

    /* presence/frequency penalties act on output counts only */
    fc_sampling_params pp = fc_sampling_default();
    pp.presence_penalty = 0.5f;
    pp.frequency_penalty = 0.25f;
    int32_t oc[V] = {0};
    oc[3] = 2;
    memcpy(l, base, sizeof l);
    fc_sampling_process(&pp, l, V, NULL, oc);
    CHECK(fabsf(l[3] - (base[3] - 0.5f - 0.5f)) < 1e-6f);
    CHECK(l[4] == base[4]);
}

int main(void)
{
    test_golden();
    test_draws();
    return TEST_END();
}
