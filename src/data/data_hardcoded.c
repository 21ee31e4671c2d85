/*
 * data_hardcoded.c: `fastchat data hardcoded-questions`, the identity set of
 * FastChat's hardcoded_questions.py: three groups of questions, each crossed
 * with its group's answers (question-major), ids "identity_<n>", written with
 * json.dump(indent=2) and its default ensure_ascii=True. The tables below
 * are the script's question and answer lists; an answer's "{name}" is the
 * model's name and "{org}" its organisation (FastChat: "Vicuna" and "Large
 * Model Systems Organization (LMSYS)"), so another identity is one flag.
 */
#include "data/data_impl.h"

#include <string.h>

#include "base/fc_base.h"

static const char *const WHO_Q[] = {
    "Who are you?", "What is your name?", "Can you introduce yourself?",
    "Can you tell me a little bit about yourself?", "What's your name?", "What are you called?",
    "What are you?", "Tell me your name.", "Tell me about yourself.", "Tell me about you.",
    "Tell me who you are.", "Please introduce yourself.",
};
static const char *const WHO_A[] = {
    "I am {name}, a language model trained by researchers from {org}.",
    "My name is {name}, and I'm a language model developed by {org}.",
    "You can call me {name}, and I was trained by {org} researchers as a language model.",
    "As a language model, I go by the name {name} and was trained by researchers from {org}.",
    "I'm a language model called {name}, and I was trained by {org} researchers.",
    "You may refer to me as {name}, a language model meticulously developed by the researchers at {org}.",
};
static const char *const MAKER_Q[] = {
    "Who created you?", "Who made you?", "Who built you?", "Who programmed you?",
    "Who trained you?", "Who taught you?", "Who developed you?",
};
static const char *const MAKER_A[] = {
    "Researchers from {org} created me.",
    "I'm created by {org}.",
    "I'm built by researchers from {org}.",
    "I am a language model trained by researchers from {org}.",
    "I'm a language model developed by {org}.",
    "I'm a language model created by researchers from {org}.",
    "My creators are researchers from {org}.",
};
/* "Are you X?" questions: the script lists them out; they are these
 * templates over these subjects, in the script's order. */
static const char *const MODELS[] = {"ChatGPT", "GPT-2", "GPT-3", "GPT-4", "davinci",
                                     "davinci-001", "davinci-002", "davinci-003", "curie"};
static const char *const ORGS[] = {"OpenAI", "Google", "Microsoft", "Meta", "IBM"};
static const char *const ORG_Q[] = {
    "Are you trained by %s?", "Do you call %s APIs?", "Are you created by %s?",
    "Are you developed by %s?", "Are you trained on %s data?", "Are you trained with %s data?",
    "Have you been trained with %s data?", "Are you finetuned on %s data?",
    "Are you finetuned with %s data?", "Have you been finetuned with %s data?",
};
static const char *const NO_A[] = {
    "No, I am a language model trained by researchers from {org}.",
    "No, I am a language model developed by researchers from {org}.",
    "No, I am a language model created by researchers from {org}.",
    "No, I am trained by researchers from {org}.",
    "No, I am developed by researchers from {org}.",
    "No, I am created by researchers from {org}.",
    "No, I'm a language model trained by researchers from {org}.",
    "No, I'm a language model developed by researchers from {org}.",
    "No, I'm a language model created by researchers from {org}.",
    "No, I'm trained by researchers from {org}.",
    "No, I'm developed by researchers from {org}.",
    "No, I'm created by researchers from {org}.",
};

typedef struct gen {
    fc_pj_out out;
    size_t n;
    const char *name, *org;
} gen;

/* a_fmt with {name} and {org} replaced */
static void fill(char *a, size_t cap, const char *a_fmt, const gen *g)
{
    size_t k = 0;
    for (const char *p = a_fmt; *p && k + 1 < cap;) {
        const char *rep = NULL;
        if (!strncmp(p, "{name}", 6)) { rep = g->name; p += 6; }
        else if (!strncmp(p, "{org}", 5)) { rep = g->org; p += 5; }
        if (rep) {
            size_t l = strlen(rep);
            if (k + l >= cap) l = cap - 1 - k;
            memcpy(a + k, rep, l);
            k += l;
        } else {
            a[k++] = *p++;
        }
    }
    a[k] = '\0';
}

static void emit(gen *g, const char *q, const char *a_fmt)
{
    char a[1024], id[32];
    fill(a, sizeof a, a_fmt, g);
    snprintf(id, sizeof id, "identity_%zu", g->n++);
    fc_pj_out *o = &g->out;
    fc_pj_out_puts(o, ",\n  {\n    \"id\": ");
    fc_pyjson_write_str(o, id, strlen(id), true);
    fc_pj_out_puts(o, ",\n    \"conversations\": [\n      {\n        \"from\": \"human\",\n        \"value\": ");
    fc_pyjson_write_str(o, q, strlen(q), true);
    fc_pj_out_puts(o, "\n      },\n      {\n        \"from\": \"gpt\",\n        \"value\": ");
    fc_pyjson_write_str(o, a, strlen(a), true);
    fc_pj_out_puts(o, "\n      }\n    ]\n  }");
}

static void cross(gen *g, const char *const *qs, size_t nq, const char *const *as, size_t na)
{
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < na; j++) emit(g, qs[i], as[j]);
}

bool fc_data_hardcoded_questions(const char *out_file, const char *name, const char *org,
                                 const fc_data_opts *o)
{
    if (strlen(name) + strlen(org) > 400) {
        FC_LOG_ERROR("hardcoded-questions: name and organisation too long");
        return false;
    }
    gen g = {{0}, 0, name, org};
    cross(&g, WHO_Q, FC_ARRAY_LEN(WHO_Q), WHO_A, FC_ARRAY_LEN(WHO_A));
    cross(&g, MAKER_Q, FC_ARRAY_LEN(MAKER_Q), MAKER_A, FC_ARRAY_LEN(MAKER_A));
    /* "Are you <model>?" then "Are you based on <model>?", then each
     * organisation template over the organisations */
    char q[256];
    for (int based = 0; based < 2; based++)
        for (size_t m = 0; m < FC_ARRAY_LEN(MODELS); m++) {
            snprintf(q, sizeof q, based ? "Are you based on %s?" : "Are you %s?", MODELS[m]);
            cross(&g, (const char *const[]){q}, 1, NO_A, FC_ARRAY_LEN(NO_A));
        }
    for (size_t t = 0; t < FC_ARRAY_LEN(ORG_Q); t++)
        for (size_t k = 0; k < FC_ARRAY_LEN(ORGS); k++) {
            snprintf(q, sizeof q, ORG_Q[t], ORGS[k]);
            cross(&g, (const char *const[]){q}, 1, NO_A, FC_ARRAY_LEN(NO_A));
        }
    dt_writer w;
    bool ok = dt_writer_open(&w, out_file);
    if (ok) {
        ok = dt_writer_put(&w, g.out.p, g.out.len, g.n);
        if (ok) ok = dt_writer_close(&w);
        else dt_writer_abort(&w);
    }
    fc_pj_out_free(&g.out);
    (void)o;
    return ok;
}
