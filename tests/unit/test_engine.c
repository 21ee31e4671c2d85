/*
 * test_engine.c: continuous batching on the default model (FASTCHAT_MODEL)
 * in exact mode (f32 everywhere, so batching cannot flip a near-tie):
 * - a request alone gives the tokens of a plain forward/argmax loop;
 * - 6 requests submitted together (batched, prompts of different lengths,
 *   chunked prefill) each give what they give alone;
 * - with a KV budget too small for all of them, preemption and recompute
 *   still give the same tokens;
 * - a prompt extending an earlier one reuses its cached blocks;
 * - stop strings cut the text exactly, stop ids end the request;
 * - cancel ends a request with "abort"; bad requests end with "error".
 */
#include "test_util.h"
#include "engine/engine.h"
#include "model/kv_cache.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

typedef struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    enum fc_finish finish;
    int32_t tokens[256];
    int n_tokens;
    char text[4096];
    size_t text_len;
    int cached, completion, events_after_finish;
} result;

static void on_event(const fc_gen_event *ev, void *user)
{
    result *r = user;
    pthread_mutex_lock(&r->mu);
    if (r->done) r->events_after_finish++;
    if (ev->token >= 0 && r->n_tokens < 256) r->tokens[r->n_tokens++] = ev->token;
    if (r->text_len + ev->len < sizeof r->text) {
        memcpy(r->text + r->text_len, ev->text, ev->len);
        r->text_len += ev->len;
        r->text[r->text_len] = 0;
    }
    if (ev->finish != FC_FINISH_NONE) {
        r->done = true;
        r->finish = ev->finish;
        r->cached = ev->cached_tokens;
        r->completion = ev->completion_tokens;
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

static fc_gen_request greedy(const int32_t *ids, int n, int max_new)
{
    fc_gen_request q = {.prompt = ids, .n_prompt = n, .max_new_tokens = max_new, .ignore_eos = true, .logprobs = -1};
    q.sampling = fc_sampling_default();
    q.sampling.temperature = 0;
    return q;
}

/* Reference: plain forward + argmax, one sequence. */
static void reference(const fc_model *m, const int32_t *ids, int n, int max_new, int32_t *out)
{
    const fc_model_config *c = fc_model_get_config(m);
    fc_exec_params ep = {.n_threads = 2, .exact = true, .n_batch_max = n};
    fc_exec *e = fc_exec_new(m, &ep);
    fc_kv_params kp = {.n_tokens = n + max_new + 1, .n_seq_max = 1, .dtype = FC_DTYPE_F32};
    fc_kv_cache *kv = fc_kv_cache_new(c, &kp);
    fc_batch *b = fc_batch_new(n);
    float *l = malloc(sizeof(float) * c->n_vocab);
    fc_kv_cache_reserve(kv, 0, n);
    for (int i = 0; i < n; i++) fc_batch_add(b, ids[i], i, 0, i == n - 1);
    fc_model_forward(m, e, kv, b, l);
    for (int k = 0; k < max_new; k++) {
        int best = 0;
        for (int v = 1; v < c->n_vocab; v++) if (l[v] > l[best]) best = v;
        out[k] = best;
        fc_kv_cache_reserve(kv, 0, 1);
        fc_batch_clear(b);
        fc_batch_add(b, best, n + k, 0, true);
        fc_model_forward(m, e, kv, b, l);
    }
    free(l);
    fc_batch_free(b);
    fc_kv_cache_free(kv);
    fc_exec_free(e);
}

enum { NP = 6, NEW = 12 };
static int32_t prompts[NP][80];
static int plen[NP] = {5, 23, 40, 9, 71, 17};

static void run_all(fc_engine *e, result *res)
{
    fc_gen_request q[NP];
    for (int i = 0; i < NP; i++) {
        result_init(&res[i]);
        q[i] = greedy(prompts[i], plen[i], NEW);
        fc_engine_submit(e, &q[i], on_event, &res[i]);
    }
    for (int i = 0; i < NP; i++) wait_done(&res[i]);
}

int main(void)
{
    const char *path = getenv("FASTCHAT_MODEL");
    if (!path) { fprintf(stderr, "FASTCHAT_MODEL is not set\n"); return 1; }
    fc_model *m = fc_model_load(path);
    fc_tokenizer *tok = m ? fc_tokenizer_from_gguf(fc_model_gguf(m), path) : NULL;
    CHECK(m && tok);
    if (!m || !tok) return TEST_END();
    unsigned s = 99;
    for (int i = 0; i < NP; i++)
        for (int j = 0; j < plen[i]; j++) { s = s * 1103515245u + 12345u; prompts[i][j] = (int32_t)(100 + (s >> 8) % 20000); }

    int32_t ref[NP][NEW];
    for (int i = 0; i < NP; i++) reference(m, prompts[i], plen[i], NEW, ref[i]);

    /* batched, with room for everything */
    fc_engine_params ep = {.n_threads = 2, .exact = true, .kv_tokens = 4096, .n_seq_max = 8, .n_batch_max = 32};
    fc_engine *e = fc_engine_new(m, tok, &ep);
    CHECK(e != NULL);
    result res[NP];
    run_all(e, res);
    for (int i = 0; i < NP; i++) {
        CHECKF(res[i].finish == FC_FINISH_LENGTH && res[i].n_tokens == NEW && res[i].completion == NEW,
               "request %d: finish %d, %d tokens", i, res[i].finish, res[i].n_tokens);
        CHECKF(memcmp(res[i].tokens, ref[i], sizeof ref[i]) == 0, "request %d differs from the reference", i);
        CHECK(res[i].events_after_finish == 0);
        /* the streamed text is the decoded tokens */
        char *want = fc_tokenizer_decode(tok, ref[i], NEW, true, NULL);
        CHECKF(strcmp(want, res[i].text) == 0, "request %d text '%s' vs '%s'", i, res[i].text, want);
        free(want);
    }
    printf("batched: %d requests equal to the single-sequence reference\n", NP);

    /* prefix reuse: prompt 4 extended by its own output */
    int32_t ext[100];
    memcpy(ext, prompts[4], sizeof(int32_t) * plen[4]);
    memcpy(ext + plen[4], ref[4], sizeof(int32_t) * 8);
    result r1;
    result_init(&r1);
    fc_gen_request q1 = greedy(ext, plen[4] + 8, 4);
    fc_engine_submit(e, &q1, on_event, &r1);
    wait_done(&r1);
    CHECKF(r1.cached >= 64, "cached prefix tokens: %d", r1.cached);
    CHECK(memcmp(r1.tokens, ref[4] + 8, sizeof(int32_t) * 4) == 0);
    printf("prefix cache: %d of %d prompt tokens reused\n", r1.cached, plen[4] + 8);

    /* stop string: cut the reference text in the middle of its tokens */
    char *full = fc_tokenizer_decode(tok, ref[2], NEW, true, NULL);
    size_t fl = strlen(full);
    if (fl >= 6) {
        char stop[4];
        memcpy(stop, full + fl / 2, 3);
        stop[3] = 0;
        const char *stops[1] = {stop};
        result r2;
        result_init(&r2);
        fc_gen_request q2 = greedy(prompts[2], plen[2], NEW);
        q2.stop = stops;
        q2.n_stop = 1;
        fc_engine_submit(e, &q2, on_event, &r2);
        wait_done(&r2);
        const char *at = strstr(full, stop);
        CHECK(r2.finish == FC_FINISH_STOP);
        CHECKF(at && r2.text_len == (size_t)(at - full) && !memcmp(r2.text, full, r2.text_len),
               "stop '%s': got '%s' from '%s'", stop, r2.text, full);
    }
    free(full);
    /* stop id: the third reference token */
    {
        result r3;
        result_init(&r3);
        fc_gen_request q3 = greedy(prompts[1], plen[1], NEW);
        q3.stop_ids = &ref[1][2];
        q3.n_stop_ids = 1;
        fc_engine_submit(e, &q3, on_event, &r3);
        wait_done(&r3);
        int first = 0;
        while (ref[1][first] != ref[1][2]) first++;
        CHECK(r3.finish == FC_FINISH_STOP && r3.n_tokens == first + 1);
    }
    /* cancel */
    {
        result r4;
        result_init(&r4);
        fc_gen_request q4 = greedy(prompts[0], plen[0], 200);
        uint64_t id = fc_engine_submit(e, &q4, on_event, &r4);
        usleep(20000);
        fc_engine_cancel(e, id);
        wait_done(&r4);
        CHECK(r4.finish == FC_FINISH_ABORT && r4.n_tokens < 200);
    }
    /* errors */
    {
        result r5, r6;
        result_init(&r5);
        result_init(&r6);
        int32_t bad[2] = {5, 1 << 30};
        fc_gen_request q5 = greedy(bad, 2, 4), q6 = greedy(bad, 0, 4);
        fc_engine_submit(e, &q5, on_event, &r5);
        fc_engine_submit(e, &q6, on_event, &r6);
        wait_done(&r5);
        wait_done(&r6);
        CHECK(r5.finish == FC_FINISH_ERROR && r6.finish == FC_FINISH_ERROR);
    }
    fc_engine_stats st;
    fc_engine_get_stats(e, &st);
    printf("stats: %llu steps, %llu tokens, %llu prompt tokens computed, %llu cached\n",
           (unsigned long long)st.steps, (unsigned long long)st.tokens_generated,
           (unsigned long long)st.prompt_tokens_computed, (unsigned long long)st.prompt_tokens_cached);
    fc_engine_free(e);

    /* a KV budget for about two of the requests at a time: preemption */
    fc_engine_params small = {.n_threads = 2, .exact = true, .kv_tokens = 40, .n_seq_max = 6, .n_batch_max = 16};
    e = fc_engine_new(m, tok, &small);
    run_all(e, res);
    fc_engine_get_stats(e, &st);
    for (int i = 0; i < NP; i++)
        CHECKF(res[i].finish == FC_FINISH_LENGTH && memcmp(res[i].tokens, ref[i], sizeof ref[i]) == 0,
               "small KV: request %d differs (finish %d)", i, res[i].finish);
    CHECK(st.preemptions > 0);
    printf("small KV budget: %llu preemptions, all requests equal to the reference\n", (unsigned long long)st.preemptions);
    fc_engine_free(e);

    fc_tokenizer_free(tok);
    fc_model_free(m);
    return TEST_END();
}
