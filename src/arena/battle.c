/*
 * battle.c: Arena pair sampling and its config file (battle.h).
 * Glob patterns of battle_strict_targets: '*' matches any run of characters
 * (FastChat turns them into a regex the same way), everything else is literal.
 */
#include "arena/battle.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"

struct fc_arena_config {
    cJSON *root; /* the parsed file; every lookup reads it */
};

fc_arena_config *fc_arena_config_parse(const char *json)
{
    cJSON *root = cJSON_Parse(json ? json : "{}");
    if (!root || !cJSON_IsObject(root)) {
        FC_LOG_ERROR("arena config: not a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    fc_arena_config *c = fc_xcalloc(1, sizeof *c);
    c->root = root;
    return c;
}

fc_arena_config *fc_arena_config_load(const char *path)
{
    if (!path) return fc_arena_config_parse("{}");
    FILE *f = fopen(path, "rb");
    if (!f) {
        FC_LOG_ERROR("arena config: cannot read %s", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64 << 20)) {
        fclose(f);
        FC_LOG_ERROR("arena config: %s: bad size", path);
        return NULL;
    }
    char *s = fc_xmalloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    fclose(f);
    s[got] = 0;
    fc_arena_config *c = fc_arena_config_parse(s);
    if (!c) FC_LOG_ERROR("arena config: %s: invalid JSON", path);
    free(s);
    return c;
}

void fc_arena_config_free(fc_arena_config *c)
{
    if (!c) return;
    cJSON_Delete(c->root);
    free(c);
}

static bool in_list(const cJSON *list, const char *name)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, name)) return true;
    }
    return false;
}

double fc_arena_weight(const fc_arena_config *c, const char *model)
{
    if (in_list(cJSON_GetObjectItem(c->root, "outage_models"), model)) return 0;
    const cJSON *w = cJSON_GetObjectItem(cJSON_GetObjectItem(c->root, "sampling_weights"), model);
    double weight = cJSON_IsNumber(w) ? w->valuedouble : 1.0;
    if (!(weight > 0) || !isfinite(weight)) weight = 0;
    if (in_list(cJSON_GetObjectItem(c->root, "sampling_boost_models"), model)) weight *= 5;
    return weight;
}

bool fc_arena_is_anon(const fc_arena_config *c, const char *model)
{
    return in_list(cJSON_GetObjectItem(c->root, "anon_models"), model);
}

fc_arena_model fc_arena_model_settings(const fc_arena_config *c, const char *model)
{
    fc_arena_model m = {NULL, -1, -1, 0};
    const cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(c->root, "models"), model);
    if (!cJSON_IsObject(o)) return m;
    const cJSON *v = cJSON_GetObjectItem(o, "system_prompt");
    if (cJSON_IsString(v)) m.system_prompt = v->valuestring;
    v = cJSON_GetObjectItem(o, "temperature");
    if (cJSON_IsNumber(v)) m.temperature = v->valuedouble;
    v = cJSON_GetObjectItem(o, "top_p");
    if (cJSON_IsNumber(v)) m.top_p = v->valuedouble;
    v = cJSON_GetObjectItem(o, "max_new_tokens");
    if (cJSON_IsNumber(v)) m.max_new_tokens = v->valueint;
    return m;
}

int fc_arena_n_models(const fc_arena_config *c)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(c->root, "models"));
}

const char *fc_arena_model_name(const fc_arena_config *c, int i)
{
    const cJSON *it = cJSON_GetArrayItem(cJSON_GetObjectItem(c->root, "models"), i);
    return it ? it->string : NULL;
}

/* A strict-target rule forbids the pair when `a` has strict targets and `b`
 * matches none of them. */
static bool strict_violation(const cJSON *strict, const char *a, const char *b)
{
    const cJSON *pats = cJSON_GetObjectItem(strict, a);
    if (!cJSON_IsArray(pats)) return false;
    const cJSON *p;
    cJSON_ArrayForEach(p, pats)
    {
        if (cJSON_IsString(p) && fnmatch(p->valuestring, b, FNM_NOESCAPE) == 0) return false;
    }
    return true;
}

/* splitmix64 -> uniform double in [0, 1). */
static double uniform(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* Index drawn with probability w[i] / sum(w); -1 when the sum is 0. */
static int draw(const double *w, int n, uint64_t *rng)
{
    double total = 0;
    for (int i = 0; i < n; i++) total += w[i];
    if (!(total > 0)) return -1;
    double u = uniform(rng) * total, acc = 0;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        acc += w[i];
        last = i;
        if (u < acc) return i;
    }
    return last;
}

int fc_battle_pair(const fc_arena_config *c, const char *const *models, int n, uint64_t *rng, int *left, int *right)
{
    if (n <= 0) return FC_ERR_ARG;
    if (n == 1) {
        *left = *right = 0;
        return FC_OK;
    }
    double *w = fc_xcalloc((size_t)n, sizeof *w), *rw = fc_xcalloc((size_t)n, sizeof *rw);
    double total = 0;
    for (int i = 0; i < n; i++) total += (w[i] = fc_arena_weight(c, models[i]));
    const cJSON *targets = cJSON_GetObjectItem(c->root, "battle_targets");
    const cJSON *strict = cJSON_GetObjectItem(c->root, "battle_strict_targets");
    int rc = FC_ERR_ARG;
    /* A first model with no possible rival is redrawn without it, so a
     * config that allows some pair never fails. */
    for (int tries = 0; tries < n; tries++) {
        int a = draw(w, n, rng);
        if (a < 0) break;
        const cJSON *tl = cJSON_GetObjectItem(targets, models[a]);
        int n_targets = cJSON_IsArray(tl) ? cJSON_GetArraySize(tl) : 0;
        bool anon_a = fc_arena_is_anon(c, models[a]);
        for (int i = 0; i < n; i++) {
            rw[i] = 0;
            if (i == a || !strcmp(models[i], models[a])) continue;
            if (anon_a && fc_arena_is_anon(c, models[i])) continue;
            if (strict_violation(strict, models[a], models[i]) || strict_violation(strict, models[i], models[a]))
                continue;
            rw[i] = fc_arena_weight(c, models[i]);
            if (rw[i] > 0 && n_targets > 0 && in_list(tl, models[i])) rw[i] = 0.5 * total / n_targets;
        }
        int b = draw(rw, n, rng);
        if (b < 0) {
            w[a] = 0;
            continue;
        }
        if (uniform(rng) < 0.5) *left = a, *right = b;
        else *left = b, *right = a;
        rc = FC_OK;
        break;
    }
    free(w);
    free(rw);
    return rc;
}
