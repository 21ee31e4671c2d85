/*
 * test_engine_grammar.c: structured outputs in the engine (fc_gen_request.
 * grammar) on the default model (FASTCHAT_MODEL):
 * - a JSON-object grammar and a schema's grammar, greedy and sampled, with
 *   a roomy and a tight max_new_tokens: every output parses (cJSON) as what
 *   the grammar describes (the tight limit exercises the forced closing);
 * - the same request twice, greedy, gives the same text (the second with
 *   the engine's cached, warm matcher);
 * - 10 distinct grammars at once (more than the engine's cache keeps idle):
 *   all complete and parse, and a later round still does (eviction);
 * - a grammar that does not compile ends the request with FC_FINISH_ERROR;
 * - a request without a grammar next to constrained ones is unchanged
 *   (the same tokens as alone).
 */
#include "test_util.h"
#include "engine/engine.h"
#include "sampling/grammar.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>

typedef struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    enum fc_finish finish;
    char text[8192];
    size_t text_len;
    int32_t tokens[256];
    int n_tokens;
} result;

static void on_event(const fc_gen_event *ev, void *user)
{
    result *r = user;
    pthread_mutex_lock(&r->mu);
    if (ev->token >= 0 && r->n_tokens < 256) r->tokens[r->n_tokens++] = ev->token;
    if (r->text_len + ev->len < sizeof r->text) {
        memcpy(r->text + r->text_len, ev->text, ev->len);
        r->text_len += ev->len;
        r->text[r->text_len] = 0;
    }
    if (ev->finish != FC_FINISH_NONE) {
        r->done = true;
        r->finish = ev->finish;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static void result_init(result *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void wait_done(result *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static int32_t *ids;
static int n_ids;

static fc_gen_request request(const char *grammar, float temperature, int max_new, uint64_t seed)
{
    fc_gen_request q = {.prompt = ids, .n_prompt = n_ids, .max_new_tokens = max_new, .logprobs = -1,
                        .grammar = grammar};
    q.sampling = fc_sampling_default();
    q.sampling.temperature = temperature;
    q.sampling.has_seed = true;
    q.sampling.seed = seed;
    return q;
}

static cJSON *run_one(fc_engine *e, const char *grammar, float t, int max_new, uint64_t seed, result *res)
{
    result_init(res);
    fc_gen_request q = request(grammar, t, max_new, seed);
    fc_engine_submit(e, &q, on_event, res);
    wait_done(res);
    return cJSON_Parse(res->text);
}

int main(void)
{
    const char *path = getenv("FASTCHAT_MODEL");
    if (!path) { fprintf(stderr, "FASTCHAT_MODEL is not set\n"); return 1; }
    fc_model *m = fc_model_load(path);
    fc_tokenizer *tok = m ? fc_tokenizer_from_gguf(fc_model_gguf(m), path) : NULL;
    CHECK(m && tok);
    if (!m || !tok) return TEST_END();
    const char *prompt = "<|im_start|>system\nYou answer with JSON only.<|im_end|>\n<|im_start|>user\n"
                         "Describe a person (name, age) as JSON.<|im_end|>\n<|im_start|>assistant\n";
    n_ids = fc_tokenizer_encode(tok, prompt, strlen(prompt), false, true, &ids);
    CHECK(n_ids > 0);
    fc_engine_params ep = {.n_threads = 2, .kv_tokens = 8192, .n_seq_max = 12, .n_batch_max = 256};
    fc_engine *e = fc_engine_new(m, tok, &ep);
    CHECK(e != NULL);
    if (!e) return TEST_END();

    char *obj = fc_json_object_grammar();
    const char *schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
                         "\"age\":{\"type\":\"integer\",\"minimum\":0}},\"required\":[\"name\",\"age\"],"
                         "\"additionalProperties\":false}";
    char err[256];
    char *sg = fc_json_schema_to_grammar(schema, strlen(schema), err, sizeof err);
    CHECKF(sg != NULL, "%s", err);
    result res;
    for (int k = 0; k < 2; k++) {
        const char *g = k ? sg : obj;
        for (int t = 0; t < 2; t++)
            for (int mx = 0; mx < 2; mx++) {
                int max_new = mx ? 96 : 14;
                cJSON *j = run_one(e, g, (float)t, max_new, 11 + (uint64_t)t, &res);
                CHECKF(cJSON_IsObject(j), "%s T=%d max %d: '%s' (finish %d)", k ? "schema" : "json_object", t,
                       max_new, res.text, res.finish);
                CHECK(res.finish == FC_FINISH_STOP || res.finish == FC_FINISH_LENGTH);
                CHECK(res.n_tokens <= max_new);
                if (k && cJSON_IsObject(j)) {
                    CHECKF(cJSON_IsString(cJSON_GetObjectItem(j, "name")) &&
                               cJSON_IsNumber(cJSON_GetObjectItem(j, "age")) &&
                               cJSON_GetObjectItem(j, "age")->valuedouble >= 0 && cJSON_GetArraySize(j) == 2,
                           "schema violated: '%s'", res.text);
                }
                printf("%s T=%d max_new %d: %d tokens, %s: %s\n", k ? "schema" : "json_object", t, max_new,
                       res.n_tokens, fc_finish_name(res.finish), res.text);
                cJSON_Delete(j);
            }
    }
    /* greedy twice: the warm matcher gives the same text */
    result a, b;
    cJSON_Delete(run_one(e, sg, 0, 64, 1, &a));
    cJSON_Delete(run_one(e, sg, 0, 64, 1, &b));
    CHECKF(strcmp(a.text, b.text) == 0, "'%s' vs '%s'", a.text, b.text);

    /* 10 distinct grammars at once, next to an unconstrained request */
    fc_gen_request plain = request(NULL, 0, 24, 1);
    plain.ignore_eos = true;
    result alone;
    result_init(&alone);
    fc_engine_submit(e, &plain, on_event, &alone);
    wait_done(&alone);
    for (int round = 0; round < 2; round++) {
        enum { NG = 10 };
        char *gs[NG];
        result rs[NG], pr;
        for (int i = 0; i < NG; i++) {
            char sch[160];
            snprintf(sch, sizeof sch, "{\"type\":\"object\",\"properties\":{\"k%d_%d\":{\"enum\":[%d,\"x\",true]}},"
                     "\"required\":[\"k%d_%d\"]}", round, i, i, round, i);
            gs[i] = fc_json_schema_to_grammar(sch, strlen(sch), err, sizeof err);
            CHECKF(gs[i] != NULL, "%s", err);
            result_init(&rs[i]);
            fc_gen_request q = request(gs[i], 1, 40, 100 + (uint64_t)i);
            fc_engine_submit(e, &q, on_event, &rs[i]);
        }
        result_init(&pr);
        fc_engine_submit(e, &plain, on_event, &pr);
        for (int i = 0; i < NG; i++) {
            wait_done(&rs[i]);
            cJSON *j = cJSON_Parse(rs[i].text);
            char key[32];
            snprintf(key, sizeof key, "k%d_%d", round, i);
            CHECKF(cJSON_IsObject(j) && cJSON_GetObjectItem(j, key), "round %d grammar %d: '%s'", round, i,
                   rs[i].text);
            cJSON_Delete(j);
            free(gs[i]);
        }
        wait_done(&pr);
        CHECKF(pr.n_tokens == alone.n_tokens && !memcmp(pr.tokens, alone.tokens, sizeof(int32_t) * (size_t)pr.n_tokens),
               "round %d: the unconstrained request changed next to constrained ones", round);
    }

    /* a grammar that does not compile */
    cJSON_Delete(run_one(e, "root ::= nowhere", 0, 8, 1, &res));
    CHECK(res.finish == FC_FINISH_ERROR);

    fc_engine_free(e);
    free(obj);
    free(sg);
    free(ids);
    fc_tokenizer_free(tok);
    fc_model_free(m);
    return TEST_END();
}
