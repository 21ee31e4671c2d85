/*
 * test_engine_lazy_grammar.c: lazy grammars in the engine
 * (fc_gen_request.grammar_trigger, used for strict tool calls under
 * tool_choice "auto") on the default model (FASTCHAT_MODEL):
 * - the trigger is a piece of the model's own greedy answer that starts
 *   inside one token and ends where a later token ends; the grammar is
 *   trigger [0-9]{3} "!": the lazy run's text is the free answer up to the
 *   trigger's end, byte for byte (free sampling until then), then three
 *   digits and "!", and the request stops there (the grammar is final);
 * - a trigger that ends inside a token (the token's last byte, a non-digit,
 *   is refused by the grammar): the token is drawn again without it, and
 *   wherever the trigger appears in the output, what follows it is exactly
 *   three digits and "!" (the first appearance on);
 * - a trigger that never appears: the output is the free answer.
 */
#include "test_util.h"
#include "engine/engine.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>

typedef struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    enum fc_finish finish;
    char text[8192];
    size_t text_len;
    size_t ends[256]; /* text length after each token */
    int n_tokens;
} result;

static void on_event(const fc_gen_event *ev, void *user)
{
    result *r = user;
    pthread_mutex_lock(&r->mu);
    if (r->text_len + ev->len < sizeof r->text) {
        memcpy(r->text + r->text_len, ev->text, ev->len);
        r->text_len += ev->len;
        r->text[r->text_len] = 0;
    }
    if (ev->token >= 0 && r->n_tokens < 256) r->ends[r->n_tokens++] = r->text_len;
    if (ev->finish != FC_FINISH_NONE) {
        r->done = true;
        r->finish = ev->finish;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static int32_t *ids;
static int n_ids;

static void run(fc_engine *e, const char *grammar, const char *trigger, result *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    fc_gen_request q = {.prompt = ids, .n_prompt = n_ids, .max_new_tokens = 48, .logprobs = -1, .grammar = grammar,
                        .grammar_trigger = trigger};
    q.sampling = fc_sampling_default();
    q.sampling.temperature = 0;
    fc_engine_submit(e, &q, on_event, r);
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != ' ') return false;
    return n > 0;
}

/* Whether text, from the first appearance of trig on, is trig [0-9]{3} "!"
 * and nothing more (true when trig does not appear: *seen false). */
static bool follows(const char *text, const char *trig, bool *seen)
{
    const char *p = strstr(text, trig);
    *seen = p != NULL;
    if (!p) return true;
    p += strlen(trig);
    return strlen(p) == 4 && isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
           isdigit((unsigned char)p[2]) && p[3] == '!';
}

int main(void)
{
    const char *path = getenv("FASTCHAT_MODEL");
    if (!path) { fprintf(stderr, "FASTCHAT_MODEL is not set\n"); return 1; }
    fc_model *m = fc_model_load(path);
    fc_tokenizer *tok = m ? fc_tokenizer_from_gguf(fc_model_gguf(m), path) : NULL;
    CHECK(m && tok);
    if (!m || !tok) return TEST_END();
    const char *prompt = "<|im_start|>user\nTell me about the history of Paris in three sentences.<|im_end|>\n"
                         "<|im_start|>assistant\n";
    n_ids = fc_tokenizer_encode(tok, prompt, strlen(prompt), false, true, &ids);
    fc_engine_params ep = {.n_threads = 2, .kv_tokens = 4096, .n_seq_max = 4, .n_batch_max = 256};
    fc_engine *e = fc_engine_new(m, tok, &ep);
    CHECK(e != NULL);
    if (!e) return TEST_END();

    result free_run, r;
    run(e, NULL, NULL, &free_run);
    printf("free: %s\n", free_run.text);
    CHECK(free_run.n_tokens > 12);

    /* 1: a trigger from the last 2 bytes of token k-1 through token k */
    char trig[64] = "", grammar[256];
    size_t end = 0;
    for (int k = free_run.n_tokens / 3; k < free_run.n_tokens - 4 && !trig[0]; k++) {
        size_t a = free_run.ends[k - 1], b = free_run.ends[k], s = free_run.ends[k - 2];
        if (a - s < 2 || b <= a || b - a + 2 >= sizeof trig) continue;
        if (!printable(free_run.text + a - 2, b - a + 2)) continue;
        snprintf(trig, sizeof trig, "%.*s", (int)(b - a + 2), free_run.text + a - 2);
        if (strstr(free_run.text, trig) != free_run.text + a - 2) trig[0] = 0; /* not its first appearance */
        end = b;
    }
    CHECKF(trig[0], "no trigger found in '%s'", free_run.text);
    if (trig[0]) {
        snprintf(grammar, sizeof grammar, "root ::= \"%s\" [0-9]{3} \"!\"\n", trig);
        run(e, grammar, trig, &r);
        printf("trigger '%s': %s (%s)\n", trig, r.text, fc_finish_name(r.finish));
        CHECKF(r.text_len == end + 4 && !memcmp(r.text, free_run.text, end), "not the free text up to the trigger");
        bool seen;
        CHECK(follows(r.text, trig, &seen) && seen);
        CHECK(r.finish == FC_FINISH_STOP);
    }

    /* 2: a trigger ending one byte before its token's end (a letter) */
    trig[0] = 0;
    for (int k = free_run.n_tokens / 3; k < free_run.n_tokens - 4 && !trig[0]; k++) {
        size_t a = free_run.ends[k - 1], b = free_run.ends[k];
        if (b - a < 4 || b - a >= sizeof trig || !printable(free_run.text + a, b - a)) continue;
        if (!isalpha((unsigned char)free_run.text[b - 1])) continue;
        snprintf(trig, sizeof trig, "%.*s", (int)(b - a - 1), free_run.text + a);
        if (strstr(free_run.text, trig) != free_run.text + a) trig[0] = 0;
    }
    if (trig[0]) {
        snprintf(grammar, sizeof grammar, "root ::= \"%s\" [0-9]{3} \"!\"\n", trig);
        run(e, grammar, trig, &r);
        bool seen;
        bool ok = follows(r.text, trig, &seen);
        printf("trigger '%s' inside a token: %s (%s, trigger %s)\n", trig, r.text, fc_finish_name(r.finish),
               seen ? "met" : "avoided");
        CHECKF(ok, "after the trigger: '%s'", r.text);
        CHECK(r.finish == FC_FINISH_STOP || r.finish == FC_FINISH_LENGTH);
    } else {
        printf("no token of 4+ letters for case 2 in '%s'\n", free_run.text);
    }

    /* 3: a trigger that never appears: the free answer */
    run(e, "root ::= \"@@never@@\" [0-9]\n", "@@never@@", &r);
    CHECKF(r.text_len == free_run.text_len && !memcmp(r.text, free_run.text, r.text_len), "'%s'", r.text);

    fc_engine_free(e);
    free(ids);
    fc_tokenizer_free(tok);
    fc_model_free(m);
    return TEST_END();
}
