/*
 * cmd_judge.c: `fastchat judge <sub>`, MT-bench style evaluation as
 * FastChat's fastchat/llm_judge scripts run it:
 *   gen-answer      gen_model_answer.py, on our engine (every question in
 *                   flight at once: continuous batching)
 *   gen-api-answer  gen_api_answer.py, any OpenAI-compatible endpoint
 *   gen-judgment    gen_judgment.py (single, pairwise-baseline, pairwise-all)
 *   show-result     show_result.py
 *   agreement       compute_agreement.py
 *   report          a standalone results page (eval/report.h; qa_browser.py's
 *                   views without a server)
 *
 * Files and layout are FastChat's (data/<bench>/question.jsonl,
 * model_answer/<model>.jsonl, reference_answer/<judge>.jsonl,
 * model_judgment/<judge>_single.jsonl / _pair.jsonl, data/judge_prompts.jsonl),
 * so FastChat's files load here and its scripts read ours. The project's own
 * bench is data/fc_bench (the default --bench-name) with data/judge_prompts.jsonl.
 *
 * Differences, on purpose: every generator is resumable (what the output
 * file already holds is skipped; lines are appended whole, see
 * eval/jsonl.h); gen-judgment does not wait for Enter after its stats, and
 * a model missing an answer is skipped with a warning where FastChat
 * asserts; the API answer generator sends no system message (FastChat's
 * template for an unknown model name would send its one_shot system
 * prompt); API errors wait retry_sleep * 2^k instead of a fixed 10 s;
 * show-result prints the second-turn and average tables for every bench
 * (show_result.py only for one named mt_bench); two runs cannot write one
 * output file at once (eval/jsonl.h).
 */
#include "cli.h"
#include "base/fc_base.h"
#include "chat/conv.h"
#include "engine/engine.h"
#include "eval/jsonl.h"
#include "eval/judge.h"
#include "eval/mt_result.h"
#include "eval/oai_chat.h"
#include "eval/mt_files.h"
#include "eval/report.h"
#include "net/http.h"
#include "chat/template_pick.h"
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- options (one table for every subcommand) ---- */

typedef struct opts {
    const char *bench, *data_dir, *question_file, *answer_file, *judge_file, *output_file, *input_file;
    const char *model, *model_path, *model_id, *conv_template, *api_base, *judge_model, *baseline, *mode;
    const char *ref_model;
    fc_flag_list model_list, votefiles; /* n == 0: not given */
    const char *judges[2];
    int q_begin, q_end, first_n, num_choices, max_tokens, parallel, max_tries, threads, judge_max_tokens;
    double force_temp, timeout, retry_sleep, price_in, price_out;
    bool has_force_temp, json, sequential, quiet, no_progress;
} opts;

static const char USAGE[] =
    "fastchat judge <gen-answer|gen-api-answer|gen-judgment|show-result|agreement|report> [options]";
static const char ABOUT[] = "MT-bench style evaluation with FastChat's llm_judge files.\noptions:\n";

/* The flag table, one for every subcommand (base/flags.h); with help_to,
 * only its --help is printed there. */
static void parse(int argc, char **argv, opts *o, FILE *help_to)
{
    memset(o, 0, sizeof *o);
    o->bench = "fc_bench";
    o->data_dir = "data";
    o->judge_model = "gpt-4";
    o->baseline = "gpt-3.5-turbo";
    o->mode = "single";
    o->num_choices = 1;
    o->max_tokens = 1024;
    o->judge_max_tokens = 2048;
    o->parallel = 1;
    o->q_begin = 0;
    o->q_end = -1;
    o->force_temp = NAN;
    fc_flag_list judges = {0};
    const fc_flag flags[] = {
        {"--bench-name", FC_FLAG_STRING, &o->bench, .metavar = "NAME",
         .help = "question set under the data dir (fc_bench)"},
        {"--data-dir", FC_FLAG_STRING, &o->data_dir, .metavar = "DIR", .help = "FastChat's data/ folder (data)"},
        {"--question-file", FC_FLAG_STRING, &o->question_file, .metavar = "FILE",
         .help = "questions (<data>/<bench>/question.jsonl)"},
        {"--answer-file", FC_FLAG_STRING, &o->answer_file, .metavar = "FILE",
         .help = "answers out (<data>/<bench>/model_answer/<model>.jsonl)"},
        {"--judge-file", FC_FLAG_STRING, &o->judge_file, .metavar = "FILE",
         .help = "judge prompts (<data>/judge_prompts.jsonl)"},
        {"--output-file|-o", FC_FLAG_STRING, &o->output_file, .metavar = "FILE",
         .help = "judgments out (model_judgment/<judge>_{single,pair}.jsonl); report: the page"},
        {"--input-file", FC_FLAG_STRING, &o->input_file, .metavar = "FILE", .help = "judgments in (show-result)"},
        {"--model", FC_FLAG_STRING, &o->model, .metavar = "NAME", .help = "API model name (gen-api-answer)"},
        {"--model-path", FC_FLAG_STRING, &o->model_path, .metavar = "PATH", .help = "local model (gen-answer)"},
        {"--model-id", FC_FLAG_STRING, &o->model_id, .metavar = "ID", .help = "name of the answers (gen-answer)"},
        {"--conv-template", FC_FLAG_STRING, &o->conv_template, .metavar = "NAME",
         .help = "template name (gen-answer; default: picked for the model)"},
        {"--openai-api-base", FC_FLAG_STRING, &o->api_base, .metavar = "URL",
         .help = "OpenAI-compatible base URL (key from OPENAI_API_KEY)"},
        {"--judge-model", FC_FLAG_STRING, &o->judge_model, .metavar = "NAME", .help = "judge model name (gpt-4)"},
        {"--baseline-model", FC_FLAG_STRING, &o->baseline, .metavar = "NAME",
         .help = "baseline of pairwise-baseline (gpt-3.5-turbo)"},
        {"--ref-model", FC_FLAG_STRING, &o->ref_model, .metavar = "NAME",
         .help = "reference_answer/<name>.jsonl (the judge's, else gpt-4)"},
        {"--mode", FC_FLAG_STRING, &o->mode, .metavar = "MODE", .help = "single | pairwise-baseline | pairwise-all"},
        {"--model-list", FC_FLAG_NARGS, &o->model_list, .metavar = "MODEL", .help = "models (space separated)"},
        {"--votefiles", FC_FLAG_NARGS, &o->votefiles, .metavar = "FILE", .help = "vote files (agreement)"},
        {"--judges", FC_FLAG_NARGS, &judges, .metavar = "JUDGE",
         .help = "two judges: gpt4-pair human | human human (agreement)"},
        {"--question-begin", FC_FLAG_INT, &o->q_begin, .help = "first question index"},
        {"--question-end", FC_FLAG_INT, &o->q_end, .help = "end question index (exclusive)"},
        {"--first-n", FC_FLAG_INT, &o->first_n, .help = "only the first n questions (gen-judgment)"},
        {"--num-choices", FC_FLAG_INT, &o->num_choices, .min = 1, .max = 1 << 20, .help = "answers per question (1)"},
        {"--max-tokens|--max-new-token", FC_FLAG_INT, &o->max_tokens, .min = 1, .max = INT_MAX,
         .help = "tokens per answer (1024)"},
        {"--judge-max-tokens", FC_FLAG_INT, &o->judge_max_tokens, .help = "tokens per judgment (2048)"},
        {"--parallel", FC_FLAG_INT, &o->parallel, .min = 1, .max = 1 << 20, .help = "concurrent API calls (1)"},
        {"--max-retries", FC_FLAG_INT, &o->max_tries, .help = "tries per API call (16)"},
        {"--retry-sleep", FC_FLAG_DOUBLE, &o->retry_sleep, .metavar = "S",
         .help = "first wait between tries, doubling (1 s)"},
        {"--timeout", FC_FLAG_DOUBLE, &o->timeout, .metavar = "S", .help = "seconds per API try (600)"},
        {"--force-temperature", FC_FLAG_DOUBLE, &o->force_temp, .help = "one temperature for every question"},
        {"--threads", FC_FLAG_INT, &o->threads, .help = "compute threads (gen-answer)"},
        {"--sequential", FC_FLAG_TRUE, &o->sequential, .help = "one question at a time (gen-answer; for comparison)"},
        {"--price-input", FC_FLAG_DOUBLE, &o->price_in, .metavar = "USD",
         .help = "USD per 1M prompt tokens, for the cost line"},
        {"--price-output", FC_FLAG_DOUBLE, &o->price_out, .metavar = "USD", .help = "USD per 1M completion tokens"},
        {"--json", FC_FLAG_TRUE, &o->json, .help = "machine-readable output (show-result, agreement)"},
        {"--no-progress", FC_FLAG_TRUE, &o->no_progress, .help = "no progress bar"},
        {"--quiet|-q", FC_FLAG_TRUE, &o->quiet, .help = "no per-item lines"},
        {0},
    };
    const fc_flags_cmd cmd = {.usage = USAGE, .about = ABOUT, .flags = flags};
    if (help_to) {
        fc_flags_print_help(&cmd, help_to);
        return;
    }
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (judges.n) {
        if (judges.n != 2) {
            fprintf(stderr, "error: --judges needs two values (e.g. --judges gpt4-pair human)\n");
            exit(2);
        }
        o->judges[0] = judges.v[0];
        o->judges[1] = judges.v[1];
    }
    fc_flag_list_free(&judges);
    o->has_force_temp = !isnan(o->force_temp);
}

static void free_opts(opts *o)
{
    fc_flag_list_free(&o->model_list);
    fc_flag_list_free(&o->votefiles);
}

static char *bench_file(const opts *o, const char *name)
{
    return fc_mt_path(o->data_dir, o->bench, name, NULL);
}

/* ---- progress bar (stderr, only on a terminal) ---- */

typedef struct progress {
    const char *what;
    int total;
    atomic_int done;
    double t0, last;
    bool on;
    pthread_mutex_t mu;
} progress;

static void progress_init(progress *p, const char *what, int total, const opts *o)
{
    memset(p, 0, sizeof *p);
    p->what = what;
    p->total = total;
    p->t0 = fc_time_sec();
    p->on = !o->no_progress && isatty(STDERR_FILENO);
    pthread_mutex_init(&p->mu, NULL);
}

static void progress_draw(progress *p, bool final)
{
    if (!p->on) return;
    pthread_mutex_lock(&p->mu);
    double now = fc_time_sec();
    if (final || now - p->last > 0.1) {
        p->last = now;
        int d = atomic_load(&p->done);
        double el = now - p->t0, rate = el > 0 ? d / el : 0;
        double eta = rate > 0 ? (p->total - d) / rate : 0;
        int w = 30, fill = p->total ? (int)((double)d / p->total * w) : w;
        char bar[64];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        fprintf(stderr, "\r%s [%s] %d/%d %.2f/s ETA %02d:%02d%s", p->what, bar, d, p->total, rate,
                (int)eta / 60, (int)eta % 60, final ? "\n" : "");
        fflush(stderr);
    }
    pthread_mutex_unlock(&p->mu);
}

static void progress_tick(progress *p)
{
    atomic_fetch_add(&p->done, 1);
    progress_draw(p, false);
}

/* ---- a small thread pool over task indices ---- */

typedef struct pool {
    atomic_int next;
    int n;
    void (*fn)(int i, void *ctx);
    void *ctx;
} pool;

static void *pool_main(void *arg)
{
    pool *p = arg;
    int i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->n) p->fn(i, p->ctx);
    return NULL;
}

static void run_pool(int n, int parallel, void (*fn)(int, void *), void *ctx)
{
    pool p = {.n = n, .fn = fn, .ctx = ctx};
    atomic_init(&p.next, 0);
    int nt = FC_MIN(parallel, n);
    if (nt <= 1) { pool_main(&p); return; }
    pthread_t *th = fc_xmalloc(sizeof(*th) * (size_t)nt);
    for (int t = 0; t < nt; t++) pthread_create(&th[t], NULL, pool_main, &p);
    for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
    free(th);
}

/* ---- questions and answers ---- */

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

typedef struct questions { cJSON **q; int n, n_all; } questions;

static void load_questions(const opts *o, questions *qs)
{
    char *path = o->question_file ? fc_xstrdup(o->question_file) : bench_file(o, "question.jsonl");
    cJSON **all;
    int n;
    if (fc_jsonl_read(path, false, &all, &n) != FC_OK)
        fc_cli_die("give --question-file, or --bench-name / --data-dir of a FastChat data folder", "%s",
                   fc_last_error());
    int b = FC_MIN(FC_MAX(o->q_begin, 0), n), e = o->q_end < 0 ? n : FC_MIN(o->q_end, n);
    if (o->first_n > 0) e = FC_MIN(e, b + o->first_n);
    if (e < b) e = b;
    /* questions[begin:end]: keep those, free the rest */
    for (int i = 0; i < n; i++) {
        if (i < b || i >= e) { cJSON_Delete(all[i]); all[i] = NULL; continue; }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(all[i], "turns");
        if (!fc_mt_qid(all[i]) || !cJSON_IsArray(t) || cJSON_GetArraySize(t) < 1)
            fc_cli_die(NULL, "%s: question %d has no question_id or turns", path, i + 1);
    }
    memmove(all, all + b, sizeof(*all) * (size_t)(e - b));
    qs->q = all;
    qs->n = e - b;
    qs->n_all = n;
    free(path);
}

static void free_questions(questions *qs) { fc_jsonl_free(qs->q, qs->n); }

static int n_turns(const cJSON *q) { return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(q, "turns")); }
static const char *turn_text(const cJSON *q, int j)
{
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(q, "turns"), j);
    return cJSON_IsString(t) ? t->valuestring : "";
}

static double question_temperature(const opts *o, const cJSON *q)
{
    if (o->has_force_temp) return o->force_temp;
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(q, "required_temperature");
    if (cJSON_IsNumber(rt)) return rt->valuedouble;
    return fc_judge_category_temperature(str_of(q, "category"));
}

/* The question ids an answer file already holds (for resuming). */
static cJSON **load_done_answers(const char *path, int *n)
{
    cJSON **items;
    if (fc_jsonl_read(path, true, &items, n) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    return items;
}

static bool answered(cJSON **done, int n, const cJSON *q)
{
    for (int i = 0; i < n; i++)
        if (fc_mt_qid_eq(fc_mt_qid(done[i]), fc_mt_qid(q))) return true;
    return false;
}

/* shortuuid.uuid(): 22 characters of its 57-letter alphabet. */
static void short_uuid(char out[23])
{
    static const char alpha[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    static atomic_ulong ctr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)ts.tv_sec ^
                 ((uint64_t)getpid() << 32) ^ (atomic_fetch_add(&ctr, 1) * 0xBF58476D1CE4E5B9ULL);
    for (int i = 0; i < 22; i++) {
        x ^= x >> 31; x *= 0x94D049BB133111EBULL; x ^= x >> 29;
        out[i] = alpha[x % 57];
    }
    out[22] = 0;
}

static double wall_time(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

/* The answer record of gen_*_answer.py; takes ownership of choices. */
static cJSON *answer_record(const cJSON *q, const char *model_id, cJSON *choices)
{
    char id[23];
    short_uuid(id);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddItemToObject(a, "question_id", cJSON_Duplicate(fc_mt_qid(q), true));
    cJSON_AddStringToObject(a, "answer_id", id);
    cJSON_AddStringToObject(a, "model_id", model_id);
    cJSON_AddItemToObject(a, "choices", choices);
    cJSON_AddNumberToObject(a, "tstamp", wall_time());
    return a;
}

static fc_oai_client *api_client(const opts *o, const char *model)
{
    const char *key = getenv("OPENAI_API_KEY");
    fc_oai_params p = {.api_base = o->api_base, .api_key = key, .model = model, .timeout_s = o->timeout,
                       .max_tries = o->max_tries, .retry_sleep_s = o->retry_sleep};
    if (!o->api_base && (!key || !*key))
        fc_cli_die("set OPENAI_API_KEY, or point --openai-api-base at an OpenAI-compatible server "
                   "(e.g. http://127.0.0.1:8000/v1 of `fastchat serve`)", "no API key and no --openai-api-base");
    return fc_oai_new(&p);
}

static void print_usage_line(const opts *o, fc_oai_client *c)
{
    int64_t calls, fails, retries, pt, ct;
    fc_oai_usage(c, &calls, &fails, &retries, &pt, &ct);
    double cost = (pt * o->price_in + ct * o->price_out) / 1e6;
    fprintf(stderr, "api: %lld calls, %lld failed after retries, %lld retries, tokens: %lld prompt + %lld completion",
            (long long)calls, (long long)fails, (long long)retries, (long long)pt, (long long)ct);
    if (o->price_in > 0 || o->price_out > 0) fprintf(stderr, ", cost: $%.4f", cost);
    fprintf(stderr, "\n");
}

/* ---- gen-api-answer ---- */

typedef struct api_ans_ctx {
    const opts *o;
    cJSON **todo;
    fc_oai_client *cli;
    fc_jsonl_writer *w;
    progress *pg;
} api_ans_ctx;

static void api_answer_one(int i, void *arg)
{
    api_ans_ctx *c = arg;
    const cJSON *q = c->todo[i];
    double temp = question_temperature(c->o, q);
    cJSON *choices = cJSON_CreateArray();
    for (int k = 0; k < c->o->num_choices; k++) {
        cJSON *msgs = cJSON_CreateArray();
        cJSON *turns = cJSON_CreateArray();
        for (int j = 0; j < n_turns(q); j++) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "user");
            cJSON_AddStringToObject(m, "content", turn_text(q, j));
            cJSON_AddItemToArray(msgs, m);
            fc_oai_result r;
            fc_oai_chat(c->cli, msgs, temp, c->o->max_tokens, &r);
            const char *out = r.content ? r.content : FC_JUDGE_API_ERROR;
            if (!r.content) {
                char *t = fc_mt_qid_text(q);
                FC_LOG_WARN("question %s: %s", t, r.error);
                free(t);
            }
            cJSON *a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "role", "assistant");
            cJSON_AddStringToObject(a, "content", out);
            cJSON_AddItemToArray(msgs, a);
            cJSON_AddItemToArray(turns, cJSON_CreateString(out));
            free(r.content);
        }
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", k);
        cJSON_AddItemToObject(ch, "turns", turns);
        cJSON_AddItemToArray(choices, ch);
        cJSON_Delete(msgs);
    }
    cJSON *rec = answer_record(q, c->o->model, choices);
    if (fc_jsonl_append(c->w, rec) != FC_OK) FC_LOG_ERROR("cannot write the answer: %s", fc_last_error());
    cJSON_Delete(rec);
    progress_tick(c->pg);
}

static int gen_api_answer(const opts *o)
{
    if (!o->model) fc_cli_die("e.g. --model gpt-3.5-turbo", "gen-api-answer needs --model");
    questions qs;
    load_questions(o, &qs);
    char *fname = fc_xmalloc(strlen(o->model) + 8);
    sprintf(fname, "%s.jsonl", o->model);
    char *path = o->answer_file ? fc_xstrdup(o->answer_file) : fc_mt_path(o->data_dir, o->bench, "model_answer", fname);
    free(fname);
    int nd;
    cJSON **done = load_done_answers(path, &nd);
    cJSON **todo = fc_xmalloc(sizeof(*todo) * (size_t)(qs.n + 1));
    int nt = 0;
    for (int i = 0; i < qs.n; i++)
        if (!answered(done, nd, qs.q[i])) todo[nt++] = qs.q[i];
    fc_jsonl_free(done, nd);
    fprintf(stderr, "Output to %s (%d questions, %d already answered)\n", path, qs.n, qs.n - nt);
    fc_jsonl_writer *w = fc_jsonl_open_append(path, false);
    if (!w) fc_cli_die(NULL, "%s", fc_last_error());
    fc_http_global_init();
    progress pg;
    progress_init(&pg, "answers", nt, o);
    api_ans_ctx c = {.o = o, .todo = todo, .cli = api_client(o, o->model), .w = w, .pg = &pg};
    run_pool(nt, o->parallel, api_answer_one, &c);
    progress_draw(&pg, true);
    fc_jsonl_close(w);
    if (fc_jsonl_rewrite_sorted(path, "question_id") != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    print_usage_line(o, c.cli);
    fc_oai_free(c.cli);
    free(todo);
    free_questions(&qs);
    free(path);
    return 0;
}

/* ---- gen-judgment ---- */

typedef struct match {
    const cJSON *q;
    const char *m1, *m2;           /* m2 NULL: single */
    const cJSON *a1, *a2, *ref;
    const fc_judge_prompt *jp;
    bool multi_turn;
} match;

typedef struct judge_ctx {
    const opts *o;
    match *ms;
    fc_oai_client *cli;
    fc_jsonl_writer *w;
    progress *pg;
    pthread_mutex_t out_mu;
} judge_ctx;

/* The user prompt of one game; a = first shown answer. */
static char *user_prompt(const match *m, const cJSON *a, const cJSON *b, const char **err)
{
    const char *keys[12], *vals[12];
    int n = 0;
#define KV(k, v) do { keys[n] = (k); vals[n] = (v); n++; } while (0)
    if (m->ref) {
        KV("ref_answer_1", fc_mt_answer_turn(m->ref, 0));
        if (m->multi_turn) KV("ref_answer_2", fc_mt_answer_turn(m->ref, 1));
    }
    if (m->multi_turn) {
        KV("question_1", turn_text(m->q, 0));
        KV("question_2", turn_text(m->q, 1));
        if (!b) {
            KV("answer_1", fc_mt_answer_turn(a, 0));
            KV("answer_2", fc_mt_answer_turn(a, 1));
        } else {
            KV("answer_a_1", fc_mt_answer_turn(a, 0));
            KV("answer_b_1", fc_mt_answer_turn(b, 0));
            KV("answer_a_2", fc_mt_answer_turn(a, 1));
            KV("answer_b_2", fc_mt_answer_turn(b, 1));
        }
    } else {
        KV("question", turn_text(m->q, 0));
        if (!b) KV("answer", fc_mt_answer_turn(a, 0));
        else {
            KV("answer_a", fc_mt_answer_turn(a, 0));
            KV("answer_b", fc_mt_answer_turn(b, 0));
        }
    }
#undef KV
    return fc_judge_format(m->jp->prompt_template, keys, vals, n, err);
}

/* One judge call: the judgment text (malloc'd; "$ERROR$" when the API
 * gave up). */
static char *ask_judge(judge_ctx *c, const char *system, const char *user)
{
    cJSON *msgs = cJSON_CreateArray();
    if (system && *system) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "role", "system");
        cJSON_AddStringToObject(s, "content", system);
        cJSON_AddItemToArray(msgs, s);
    }
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", user);
    cJSON_AddItemToArray(msgs, u);
    fc_oai_result r;
    fc_oai_chat(c->cli, msgs, 0.0, c->o->judge_max_tokens, &r);
    cJSON_Delete(msgs);
    if (!r.content) {
        FC_LOG_WARN("judge gave up after %d tries: %s", r.tries, r.error);
        return fc_xstrdup(FC_JUDGE_API_ERROR);
    }
    return r.content;
}

static cJSON *judge_tuple(const judge_ctx *c, const match *m)
{
    cJSON *j = cJSON_CreateArray();
    cJSON_AddItemToArray(j, cJSON_CreateString(c->o->judge_model));
    cJSON_AddItemToArray(j, cJSON_CreateString(m->jp->name));
    return j;
}

static const char *g_map(enum fc_verdict v, bool swapped)
{
    if (v == FC_VERDICT_A) return swapped ? "model_2" : "model_1";
    if (v == FC_VERDICT_B) return swapped ? "model_1" : "model_2";
    return fc_verdict_name(v);
}

static void judge_one(int i, void *arg)
{
    judge_ctx *c = arg;
    const match *m = &c->ms[i];
    int turn = m->multi_turn ? 2 : 1;
    char *qid = fc_mt_qid_text(m->q);
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddItemToObject(rec, "question_id", cJSON_Duplicate(fc_mt_qid(m->q), true));
    char line[512];
    if (!m->m2) {
        char *up = user_prompt(m, m->a1, NULL, NULL);
        char *jt = ask_judge(c, m->jp->system_prompt, up);
        bool is_int;
        double score = fc_judge_parse_rating(jt, &is_int);
        cJSON_AddStringToObject(rec, "model", m->m1);
        cJSON_AddItemToObject(rec, "judge", judge_tuple(c, m));
        cJSON_AddStringToObject(rec, "user_prompt", up);
        cJSON_AddStringToObject(rec, "judgment", jt);
        cJSON_AddNumberToObject(rec, "score", score);
        cJSON_AddNumberToObject(rec, "turn", turn);
        snprintf(line, sizeof line, "question: %s, turn: %d, model: %s, score: %g, judge: ('%s', '%s')", qid, turn,
                 m->m1, score, c->o->judge_model, m->jp->name);
        free(up);
        free(jt);
    } else {
        char *u1 = user_prompt(m, m->a1, m->a2, NULL), *u2 = user_prompt(m, m->a2, m->a1, NULL);
        char *j1 = ask_judge(c, m->jp->system_prompt, u1);
        char *j2 = ask_judge(c, m->jp->system_prompt, u2);
        const char *w1 = g_map(fc_judge_parse(m->jp->output_format, j1, NULL), false);
        const char *w2 = g_map(fc_judge_parse(m->jp->output_format, j2, NULL), true);
        cJSON_AddStringToObject(rec, "model_1", m->m1);
        cJSON_AddStringToObject(rec, "model_2", m->m2);
        cJSON_AddStringToObject(rec, "g1_winner", w1);
        cJSON_AddStringToObject(rec, "g2_winner", w2);
        cJSON_AddItemToObject(rec, "judge", judge_tuple(c, m));
        cJSON_AddStringToObject(rec, "g1_user_prompt", u1);
        cJSON_AddStringToObject(rec, "g1_judgment", j1);
        cJSON_AddStringToObject(rec, "g2_user_prompt", u2);
        cJSON_AddStringToObject(rec, "g2_judgment", j2);
        cJSON_AddNumberToObject(rec, "turn", turn);
        snprintf(line, sizeof line,
                 "question: %s, turn: %d, model_1: %s, model_2: %s, g1_winner: %s, g2_winner: %s, judge: ('%s', '%s')",
                 qid, turn, m->m1, m->m2, w1, w2, c->o->judge_model, m->jp->name);
        free(u1); free(u2); free(j1); free(j2);
    }
    cJSON_AddNumberToObject(rec, "tstamp", wall_time());
    if (fc_jsonl_append(c->w, rec) != FC_OK) FC_LOG_ERROR("cannot write the judgment: %s", fc_last_error());
    cJSON_Delete(rec);
    if (!c->o->quiet) {
        pthread_mutex_lock(&c->out_mu);
        if (c->pg->on) fprintf(stderr, "\r\033[K");
        printf("%s\n", line);
        fflush(stdout);
        pthread_mutex_unlock(&c->out_mu);
    }
    free(qid);
    progress_tick(c->pg);
}

/* Key of a game for resuming: question, model(s), judge, prompt, turn. */
static char *game_key(const cJSON *qid, const char *m1, const char *m2, const char *judge, const char *prompt, int turn)
{
    char *q = cJSON_IsString(qid) ? fc_xstrdup(qid->valuestring) : NULL;
    if (!q) {
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%.17g", cJSON_IsNumber(qid) ? qid->valuedouble : NAN);
        q = fc_xstrdup(tmp);
    }
    size_t n = strlen(q) + strlen(m1) + (m2 ? strlen(m2) : 0) + strlen(judge) + strlen(prompt) + 32;
    char *k = fc_xmalloc(n);
    snprintf(k, n, "%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%d", q, m1, m2 ? m2 : "", judge, prompt, turn);
    free(q);
    return k;
}

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct keyset { char **k; int n; } keyset;

static keyset load_done_judgments(const char *path, bool pair)
{
    cJSON **items;
    int n;
    if (fc_jsonl_read(path, true, &items, &n) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    keyset ks = {fc_xmalloc(sizeof(char *) * (size_t)(n + 1)), 0};
    for (int i = 0; i < n; i++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(items[i], "judge");
        const cJSON *j0 = cJSON_GetArrayItem(j, 0), *j1 = cJSON_GetArrayItem(j, 1);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(items[i], "turn");
        const char *m1 = str_of(items[i], pair ? "model_1" : "model"), *m2 = pair ? str_of(items[i], "model_2") : NULL;
        if (!cJSON_IsString(j0) || !cJSON_IsString(j1) || !m1 || (pair && !m2)) continue;
        ks.k[ks.n++] = game_key(fc_mt_qid(items[i]), m1, m2, j0->valuestring, j1->valuestring,
                                cJSON_IsNumber(t) ? t->valueint : 1);
    }
    fc_jsonl_free(items, n);
    qsort(ks.k, (size_t)ks.n, sizeof *ks.k, str_cmp);
    return ks;
}

static bool keyset_has(const keyset *ks, const char *k)
{
    return ks->n && bsearch(&k, ks->k, (size_t)ks->n, sizeof *ks->k, str_cmp) != NULL;
}

/* A question's reference: reference_answer/<ref>.jsonl, else the
 * question's own "reference" list (as FastChat's newer question files). */
static cJSON *ref_from_question(const cJSON *q)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(q, "reference");
    if (!cJSON_IsArray(r)) return NULL;
    cJSON *a = cJSON_CreateObject();
    cJSON *ch = cJSON_AddArrayToObject(a, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddItemToObject(c0, "turns", cJSON_Duplicate(r, true));
    cJSON_AddItemToArray(ch, c0);
    return a;
}

static void check_prompt(const fc_judge_prompt *jp, const char *path, bool pair, bool ref, bool mt)
{
    if (!jp) return;
    if (pair ? !jp->type || strcmp(jp->type, "pairwise") : !jp->type || strcmp(jp->type, "single"))
        fc_cli_die(NULL, "%s: judge prompt %s has type '%s', expected %s", path, jp->name, jp->type ? jp->type : "",
                   pair ? "pairwise" : "single");
    bool fmt_ok = pair ? (jp->output_format && (!strcmp(jp->output_format, "[[A]]") ||
                                                !strcmp(jp->output_format, "[[rating_a,rating_b]]")))
                       : (jp->output_format && !strcmp(jp->output_format, "[[rating]]"));
    if (!fmt_ok) fc_cli_die(NULL, "%s: judge prompt %s: unsupported output_format '%s'", path, jp->name,
                            jp->output_format ? jp->output_format : "");
    const char *keys[] = {"ref_answer_1", "ref_answer_2", "question_1", "question_2", "answer_1", "answer_2",
                          "answer_a_1", "answer_b_1", "answer_a_2", "answer_b_2", "question", "answer",
                          "answer_a", "answer_b"};
    const char *vals[FC_ARRAY_LEN(keys)] = {0};
    for (size_t i = 0; i < FC_ARRAY_LEN(keys); i++) vals[i] = "x";
    const char *err = NULL;
    (void)ref; (void)mt;
    char *s = fc_judge_format(jp->prompt_template, keys, vals, (int)FC_ARRAY_LEN(keys), &err);
    if (!s) fc_cli_die(NULL, "%s: judge prompt %s: %s", path, jp->name, err);
    free(s);
}

static int gen_judgment(const opts *o)
{
    bool single = !strcmp(o->mode, "single"), all = !strcmp(o->mode, "pairwise-all");
    if (!single && !all && strcmp(o->mode, "pairwise-baseline"))
        fc_cli_die("modes: single, pairwise-baseline, pairwise-all", "unknown --mode '%s'", o->mode);
    questions qs;
    load_questions(o, &qs);
    char *ans_dir = bench_file(o, "model_answer");
    int nm;
    fc_mt_answers *mas;
    if (fc_mt_load_answer_dir(ans_dir, &mas, &nm) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    char *jfile = o->judge_file ? fc_xstrdup(o->judge_file) : fc_mt_path(o->data_dir, "judge_prompts.jsonl", NULL, NULL);
    fc_judge_prompts jps;
    if (fc_judge_prompts_load(jfile, &jps) != FC_OK)
        fc_cli_die("give --judge-file (FastChat's data/judge_prompts.jsonl or ours)", "%s", fc_last_error());
    /* references */
    const char *refm = o->ref_model ? o->ref_model : o->judge_model;
    char *rname = fc_xmalloc(strlen(refm) + 8);
    sprintf(rname, "%s.jsonl", refm);
    char *rpath = fc_mt_path(o->data_dir, o->bench, "reference_answer", rname);
    if (!o->ref_model && access(rpath, R_OK) != 0) {
        free(rpath);
        rpath = fc_mt_path(o->data_dir, o->bench, "reference_answer", "gpt-4.jsonl");
    }
    fc_mt_answers refs = {.name = fc_xstrdup(refm)};
    if (fc_jsonl_read(rpath, true, &refs.a, &refs.n) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    /* models */
    const char **models = NULL;
    int n_models = 0;
    if (o->model_list.n) { models = o->model_list.v; n_models = o->model_list.n; }
    else {
        models = fc_xmalloc(sizeof(*models) * (size_t)(nm + 1));
        for (int i = 0; i < nm; i++) models[n_models++] = mas[i].name;
    }
    /* judges: default, math, default-mt, math-mt */
    const char *const *names = fc_judge_prompt_names + (single ? 0 : 4);
    const fc_judge_prompt *jd[4];
    for (int k = 0; k < 4; k++) {
        jd[k] = fc_judge_prompts_get(&jps, names[k]);
        if (!jd[k]) fc_cli_die("the judge file needs the eight prompts of FastChat's judge_prompts.jsonl",
                               "%s: no judge prompt named %s", jfile, names[k]);
        check_prompt(jd[k], jfile, !single, k == 1 || k == 3, k >= 2);
    }
    const char *baseline = single || all ? NULL : o->baseline;
    if (baseline && !fc_mt_find_model(mas, nm, baseline))
        fc_cli_die("generate the baseline's answers first, or pick another with --baseline-model",
                   "no answers of the baseline model %s in %s", baseline, ans_dir);
    /* the games per question: make_match_single / make_match / make_match_all_pairs */
    const char **pairs = fc_xmalloc(sizeof(*pairs) * (size_t)(2 * n_models * n_models + 2));
    int n_pairs = 0;
    for (int i = 0; i < n_models; i++) {
        if (single) { pairs[2 * n_pairs] = models[i]; pairs[2 * n_pairs++ + 1] = NULL; }
        else if (!all) {
            if (strcmp(models[i], baseline)) { pairs[2 * n_pairs] = models[i]; pairs[2 * n_pairs++ + 1] = baseline; }
        } else {
            for (int j = i + 1; j < n_models; j++) { pairs[2 * n_pairs] = models[i]; pairs[2 * n_pairs++ + 1] = models[j]; }
        }
    }
    /* matches, in gen_judgment.py's order */
    int cap = 64, n = 0, skipped = 0;
    match *ms = fc_xmalloc(sizeof(*ms) * (size_t)cap);
    cJSON **own_refs = fc_xcalloc((size_t)qs.n + 1, sizeof(cJSON *));
    for (int k = 0; k < 4; k++) {
        bool ref_based = k == 1 || k == 3, mt = k >= 2;
        for (int qi = 0; qi < qs.n; qi++) {
            const cJSON *q = qs.q[qi];
            if (fc_judge_needs_ref(str_of(q, "category")) != ref_based) continue;
            if (mt && n_turns(q) != 2) continue;
            const cJSON *ref = NULL;
            if (ref_based) {
                ref = fc_mt_find_answer(&refs, q);
                if (!ref) {
                    if (!own_refs[qi]) own_refs[qi] = ref_from_question(q);
                    ref = own_refs[qi];
                }
                if (!ref || !fc_mt_answer_turn(ref, 0) || (mt && !fc_mt_answer_turn(ref, 1))) {
                    char *t = fc_mt_qid_text(q);
                    FC_LOG_WARN("question %s: no reference answer in %s; skipped", t, rpath);
                    free(t);
                    skipped++;
                    continue;
                }
            }
            for (int pi = 0; pi < n_pairs; pi++) {
                const char *m1 = pairs[2 * pi], *m2 = pairs[2 * pi + 1];
                const cJSON *a1 = fc_mt_find_answer(fc_mt_find_model(mas, nm, m1), q);
                const cJSON *a2 = m2 ? fc_mt_find_answer(fc_mt_find_model(mas, nm, m2), q) : NULL;
                int need = mt ? 2 : 1;
                if (!a1 || !fc_mt_answer_turn(a1, need - 1) || (m2 && (!a2 || !fc_mt_answer_turn(a2, need - 1)))) {
                    char *t = fc_mt_qid_text(q);
                    FC_LOG_WARN("question %s: missing an answer of %s%s%s; skipped", t, m1, m2 ? " or " : "",
                                m2 ? m2 : "");
                    free(t);
                    skipped++;
                    continue;
                }
                if (n == cap) ms = fc_xrealloc(ms, sizeof(*ms) * (size_t)(cap *= 2));
                ms[n++] = (match){.q = q, .m1 = m1, .m2 = m2, .a1 = a1, .a2 = a2, .ref = ref,
                                  .jp = jd[k], .multi_turn = mt};
            }
        }
    }
    /* output and resume */
    char *out;
    if (o->output_file) out = fc_xstrdup(o->output_file);
    else {
        char *fn = fc_xmalloc(strlen(o->judge_model) + 16);
        sprintf(fn, "%s_%s.jsonl", o->judge_model, single ? "single" : "pair");
        out = fc_mt_path(o->data_dir, o->bench, "model_judgment", fn);
        free(fn);
    }
    keyset done = load_done_judgments(out, !single);
    int todo = 0;
    for (int i = 0; i < n; i++) {
        char *k = game_key(fc_mt_qid(ms[i].q), ms[i].m1, ms[i].m2, o->judge_model, ms[i].jp->name,
                           ms[i].multi_turn ? 2 : 1);
        if (!keyset_has(&done, k)) ms[todo++] = ms[i];
        free(k);
    }
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(st, "bench_name", o->bench);
    cJSON_AddStringToObject(st, "mode", o->mode);
    cJSON_AddStringToObject(st, "judge", o->judge_model);
    if (baseline) cJSON_AddStringToObject(st, "baseline", baseline);
    else cJSON_AddNullToObject(st, "baseline");
    cJSON_AddItemToObject(st, "model_list", cJSON_CreateStringArray(models, n_models));
    cJSON_AddNumberToObject(st, "total_num_questions", qs.n);
    cJSON_AddNumberToObject(st, "total_num_matches", n);
    cJSON_AddNumberToObject(st, "already_done", n - todo);
    cJSON_AddNumberToObject(st, "skipped", skipped);
    cJSON_AddStringToObject(st, "output_path", out);
    char *sj = cJSON_Print(st);
    printf("Stats:\n%s\n", sj);
    fflush(stdout);
    cJSON_free(sj);
    cJSON_Delete(st);
    fc_jsonl_writer *w = fc_jsonl_open_append(out, false);
    if (!w) fc_cli_die(NULL, "%s", fc_last_error());
    fc_http_global_init();
    progress pg;
    progress_init(&pg, "judgments", todo, o);
    judge_ctx c = {.o = o, .ms = ms, .cli = api_client(o, o->judge_model), .w = w, .pg = &pg};
    pthread_mutex_init(&c.out_mu, NULL);
    run_pool(todo, o->parallel, judge_one, &c);
    progress_draw(&pg, true);
    fc_jsonl_close(w);
    print_usage_line(o, c.cli);
    fc_oai_free(c.cli);
    for (int i = 0; i < done.n; i++) free(done.k[i]);
    free(done.k);
    for (int i = 0; i < qs.n; i++) cJSON_Delete(own_refs[i]);
    free(own_refs);
    free(ms);
    free(pairs);
    free(out);
    if (!o->model_list.n) free(models);
    fc_mt_answers_free(mas, nm);
    free(refs.name);
    fc_jsonl_free(refs.a, refs.n);
    free(rname);
    free(rpath);
    fc_judge_prompts_free(&jps);
    free(jfile);
    free(ans_dir);
    free_questions(&qs);
    return 0;
}

/* ---- show-result ---- */

static void print_num(double v) { if (isnan(v)) printf("%10s", "NaN"); else printf("%10.6f", v); }

static int show_result(const opts *o)
{
    bool single = !strcmp(o->mode, "single"), all = !strcmp(o->mode, "pairwise-all");
    if (!single && !all && strcmp(o->mode, "pairwise-baseline"))
        fc_cli_die("modes: single, pairwise-baseline, pairwise-all", "unknown --mode '%s'", o->mode);
    char *in;
    if (o->input_file) in = fc_xstrdup(o->input_file);
    else {
        char *fn = fc_xmalloc(strlen(o->judge_model) + 16);
        sprintf(fn, "%s_%s.jsonl", o->judge_model, single ? "single" : "pair");
        in = fc_mt_path(o->data_dir, o->bench, "model_judgment", fn);
        free(fn);
    }
    fc_mt_result r;
    const char *baseline = single || all ? NULL : o->baseline;
    int rc = single ? fc_mt_result_single(in, o->model_list.v, o->model_list.n, &r)
                    : fc_mt_result_pair(in, o->model_list.v, o->model_list.n, baseline, &r);
    if (rc != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "mode", o->mode);
        cJSON_AddStringToObject(j, "input_file", in);
        cJSON *rows = cJSON_AddArrayToObject(j, "rows");
        for (int i = 0; i < r.n_single; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "model", r.single[i].model);
            const char *nm[3] = {"turn_1", "turn_2", "average"};
            for (int t = 0; t < 3; t++) {
                if (isnan(r.single[i].mean[t])) cJSON_AddNullToObject(x, nm[t]);
                else cJSON_AddNumberToObject(x, nm[t], r.single[i].mean[t]);
            }
            cJSON_AddItemToArray(rows, x);
        }
        for (int i = 0; i < r.n_pair; i++) {
            const fc_mt_pair_row *p = &r.pair[i];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "model", p->model);
            cJSON_AddNumberToObject(x, "win", p->win);
            cJSON_AddNumberToObject(x, "loss", p->loss);
            cJSON_AddNumberToObject(x, "tie", p->tie);
            cJSON_AddNumberToObject(x, "win_rate", p->win_rate);
            cJSON_AddNumberToObject(x, "loss_rate", p->loss_rate);
            cJSON_AddNumberToObject(x, "win_rate_adjusted", p->win_rate_adjusted);
            cJSON_AddItemToArray(rows, x);
        }
        char *s = cJSON_Print(j);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(j);
    } else {
        printf("Mode: %s\nInput file: %s\n", o->mode, in);
        if (single) {
            const char *title[3] = {"First turn", "Second turn", "Average"};
            for (int t = 0; t < 3; t++) {
                printf("\n########## %s ##########\n", title[t]);
                printf("%-32s %4s %10s\n", "model", t < 2 ? "turn" : "", "score");
                /* each table sorted by its own column, as FastChat's */
                int *idx = fc_xmalloc(sizeof(int) * (size_t)(r.n_single + 1));
                int k = 0;
                for (int i = 0; i < r.n_single; i++) if (r.single[i].count[t]) idx[k++] = i;
                for (int a = 1; a < k; a++)
                    for (int b = a; b > 0 && r.single[idx[b]].mean[t] > r.single[idx[b - 1]].mean[t]; b--) {
                        int x = idx[b]; idx[b] = idx[b - 1]; idx[b - 1] = x;
                    }
                for (int i = 0; i < k; i++) {
                    printf("%-32s ", r.single[idx[i]].model);
                    if (t < 2) printf("%4d ", t + 1); else printf("%4s ", "");
                    print_num(r.single[idx[i]].mean[t]);
                    printf("\n");
                }
                free(idx);
            }
        } else {
            printf("%-32s %6s %6s %6s %10s %10s %18s\n", "model", "win", "loss", "tie", "win_rate", "loss_rate",
                   "win_rate_adjusted");
            for (int i = 0; i < r.n_pair; i++) {
                const fc_mt_pair_row *p = &r.pair[i];
                printf("%-32s %6d %6d %6d ", p->model, p->win, p->loss, p->tie);
                print_num(p->win_rate);
                printf(" ");
                print_num(p->loss_rate);
                printf("         ");
                print_num(p->win_rate_adjusted);
                printf("\n");
            }
        }
    }
    fc_mt_result_free(&r);
    free(in);
    return 0;
}

/* ---- agreement ---- */

static int agreement(const opts *o)
{
    const char *j1 = o->judges[0] ? o->judges[0] : "gpt4-pair", *j2 = o->judges[1] ? o->judges[1] : "human";
    if (!o->votefiles.n) fc_cli_die("e.g. --votefiles human_judgments.json gpt4_pair_judgments.json",
                                  "agreement needs --votefiles");
    fc_mt_agreement a;
    if (fc_mt_agreement_compute(j1, j2, o->votefiles.v, o->votefiles.n, &a) != FC_OK)
        fc_cli_die(NULL, "%s", fc_last_error());
    const char *lab[2][2] = {{"turn 1 with tie", "turn 1 without tie"}, {"turn 2 with tie", "turn 2 without tie"}};
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        for (int t = 0; t < 2; t++)
            for (int b = 0; b < 2; b++) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddNumberToObject(x, "total", a.total[t][b]);
                cJSON_AddNumberToObject(x, "agree", a.agree[t][b]);
                if (a.total[t][b]) cJSON_AddNumberToObject(x, "ratio", (double)a.agree[t][b] / a.total[t][b]);
                else cJSON_AddNullToObject(x, "ratio");
                cJSON_AddItemToObject(j, lab[t][b], x);
            }
        char *s = cJSON_Print(j);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(j);
        return 0;
    }
    for (int t = 0; t < 2; t++)
        for (int b = 0; b < 2; b++) {
            printf("%s. #total: %d, #agree: %d, ratio: ", lab[t][b], a.total[t][b], a.agree[t][b]);
            if (a.total[t][b]) printf("%.2f\n", (double)a.agree[t][b] / a.total[t][b]);
            else printf("n/a\n");
        }
    return 0;
}

/* ---- gen-answer (local engine) ---- */

typedef struct ga_job {
    int qi, choice, turn;
    fc_conv *conv;
    char *text;
    size_t len, cap;
    enum fc_finish finish;
    int completion_tokens;
    cJSON *turns;
    bool started, got_first;
} ga_job;

typedef struct ga_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int *fin;            /* finished job indices (a queue) */
    int n_fin;
    ga_job *jobs;
} ga_ctx;

typedef struct ga_ref { ga_ctx *c; int j; } ga_ref;

static void ga_on_event(const fc_gen_event *ev, void *user)
{
    ga_ref *r = user;
    ga_ctx *c = r->c;
    ga_job *j = &c->jobs[r->j];
    pthread_mutex_lock(&c->mu);
    if (j->len + ev->len + 1 > j->cap) j->text = fc_xrealloc(j->text, j->cap = (j->len + ev->len + 1) * 2);
    memcpy(j->text + j->len, ev->text, ev->len);
    j->len += ev->len;
    j->text[j->len] = 0;
    if (!j->got_first) {
        j->got_first = true;
        pthread_cond_signal(&c->cv);
    }
    if (ev->finish != FC_FINISH_NONE) {
        j->finish = ev->finish;
        j->completion_tokens = ev->completion_tokens;
        c->fin[c->n_fin++] = r->j;
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static void ga_submit(fc_engine *e, const fc_tokenizer *tok, ga_ctx *c, ga_ref *refs, int ji, const cJSON *q,
                      const opts *o)
{
    ga_job *j = &c->jobs[ji];
    fc_conv_append_message(j->conv, 0, turn_text(q, j->turn));
    fc_conv_append_message(j->conv, 1, NULL);
    char *prompt = fc_conv_get_prompt(j->conv);
    if (!prompt) fc_cli_die("pick another with --conv-template", "template %s cannot render a prompt",
                            fc_conv_name(j->conv));
    int32_t *ids = NULL;
    int n = fc_tokenizer_encode(tok, prompt, strlen(prompt), true, true, &ids);
    if (n < 0) fc_cli_die(NULL, "cannot tokenize a prompt");
    const char *stops[16];
    int n_stop = 0;
    for (int i = 0; i < fc_conv_n_stop_str(j->conv) && n_stop < 16; i++) stops[n_stop++] = fc_conv_stop_str(j->conv, i);
    int n_ids = 0;
    const int32_t *stop_ids = fc_conv_stop_token_ids(j->conv, &n_ids);
    fc_gen_request r = {.prompt = ids, .n_prompt = n, .max_new_tokens = o->max_tokens, .stop = stops,
                        .n_stop = n_stop, .stop_ids = stop_ids, .n_stop_ids = n_ids, .logprobs = -1,
                        .truncate = true};
    r.sampling = fc_sampling_default();
    double t = question_temperature(o, q);
    r.sampling.temperature = t < 1e-4 ? 0.0f : (float)t;   /* do_sample = temperature >= 1e-4 */
    r.sampling.has_seed = true;                              /* torch.manual_seed(i) per choice */
    r.sampling.seed = (uint64_t)j->choice;
    pthread_mutex_lock(&c->mu);
    j->len = 0;
    if (j->text) j->text[0] = 0;
    j->finish = FC_FINISH_NONE;
    pthread_mutex_unlock(&c->mu);
    refs[ji] = (ga_ref){c, ji};
    fc_engine_submit(e, &r, ga_on_event, &refs[ji]);
    free(ids);
    free(prompt);
}

static char *strip_dup(const char *s)
{
    if (!s) return fc_xstrdup("");
    while (*s && strchr(" \t\n\r", *s)) s++;
    size_t l = strlen(s);
    while (l && strchr(" \t\n\r", s[l - 1])) l--;
    char *r = fc_xmalloc(l + 1);
    memcpy(r, s, l);
    r[l] = 0;
    return r;
}

static int gen_answer(const opts *o)
{
    if (!o->model_id) fc_cli_die("the answers are stored under that name, e.g. --model-id smollm2-135m",
                                 "gen-answer needs --model-id");
    const char *mpath = o->model_path ? o->model_path : fc_cli_default_model();
    questions qs;
    load_questions(o, &qs);
    char *fname = fc_xmalloc(strlen(o->model_id) + 8);
    sprintf(fname, "%s.jsonl", o->model_id);
    char *path = o->answer_file ? fc_xstrdup(o->answer_file) : fc_mt_path(o->data_dir, o->bench, "model_answer", fname);
    free(fname);
    int nd;
    cJSON **done = load_done_answers(path, &nd);
    int *todo = fc_xmalloc(sizeof(int) * (size_t)(qs.n + 1));
    int nt = 0;
    for (int i = 0; i < qs.n; i++)
        if (!answered(done, nd, qs.q[i])) todo[nt++] = i;
    fc_jsonl_free(done, nd);
    fprintf(stderr, "Output to %s (%d questions, %d already answered)\n", path, qs.n, qs.n - nt);
    if (!nt) goto out_early;

    fc_model *m = fc_model_load(mpath);
    if (!m) fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder", "%s", fc_last_error());
    fc_tokenizer *tok = fc_cli_load_tokenizer(m);
    if (!tok) fc_cli_die(NULL, "%s", fc_last_error());
    fc_conv *proto = fc_template_pick(o->conv_template, mpath, tok);
    if (!proto) fc_cli_die("list the templates with: fastchat prompt --list", "%s", fc_last_error());
    int n_jobs = nt * o->num_choices;
    fc_engine_params ep = {.n_threads = o->threads, .n_seq_max = FC_MIN(FC_MAX(n_jobs + 4, 8), 256)};
    fc_engine *e = fc_engine_new(m, tok, &ep);
    if (!e) fc_cli_die(NULL, "%s", fc_last_error());
    fc_jsonl_writer *w = fc_jsonl_open_append(path, false);
    if (!w) fc_cli_die(NULL, "%s", fc_last_error());

    ga_ctx c = {.fin = fc_xmalloc(sizeof(int) * (size_t)n_jobs), .jobs = fc_xcalloc((size_t)n_jobs, sizeof(ga_job))};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    ga_ref *refs = fc_xcalloc((size_t)n_jobs, sizeof *refs);
    int *left = fc_xmalloc(sizeof(int) * (size_t)nt);   /* unfinished choices per question */
    for (int i = 0; i < nt; i++) left[i] = o->num_choices;
    for (int k = 0; k < n_jobs; k++) {
        ga_job *j = &c.jobs[k];
        j->qi = k / o->num_choices;
        j->choice = k % o->num_choices;
        j->conv = fc_conv_copy(proto);
        j->turns = cJSON_CreateArray();
    }
    progress pg;
    progress_init(&pg, "answers", nt, o);
    int window = o->sequential ? 1 : n_jobs, next = 0, finished_jobs = 0;
    int64_t tokens = 0;
    double t0 = fc_time_sec();
    for (; next < window && next < n_jobs; next++) {
        c.jobs[next].started = true;
        ga_submit(e, tok, &c, refs, next, qs.q[todo[c.jobs[next].qi]], o);
        if (next == 0 && window > 1) {
            /* the first prompt's prefill done, the others share its prefix
             * (system prompt) blocks instead of computing them each */
            pthread_mutex_lock(&c.mu);
            while (!c.jobs[0].got_first) pthread_cond_wait(&c.cv, &c.mu);
            pthread_mutex_unlock(&c.mu);
        }
    }
    while (finished_jobs < n_jobs) {
        pthread_mutex_lock(&c.mu);
        while (!c.n_fin) pthread_cond_wait(&c.cv, &c.mu);
        int ji = c.fin[--c.n_fin];
        pthread_mutex_unlock(&c.mu);
        ga_job *j = &c.jobs[ji];
        const cJSON *q = qs.q[todo[j->qi]];
        tokens += j->completion_tokens;
        char *outp = j->finish == FC_FINISH_ERROR || j->finish == FC_FINISH_ABORT ? fc_xstrdup("ERROR")
                                                                                  : strip_dup(j->text);
        fc_conv_update_last_message(j->conv, outp);
        cJSON_AddItemToArray(j->turns, cJSON_CreateString(outp));
        free(outp);
        j->turn++;
        if (j->turn < n_turns(q)) {
            ga_submit(e, tok, &c, refs, ji, q, o);
            continue;
        }
        finished_jobs++;
        if (--left[j->qi] == 0) {
            cJSON *choices = cJSON_CreateArray();
            for (int k = 0; k < o->num_choices; k++) {
                ga_job *x = &c.jobs[j->qi * o->num_choices + k];
                cJSON *ch = cJSON_CreateObject();
                cJSON_AddNumberToObject(ch, "index", k);
                cJSON_AddItemToObject(ch, "turns", x->turns);
                x->turns = NULL;
                cJSON_AddItemToArray(choices, ch);
            }
            cJSON *rec = answer_record(q, o->model_id, choices);
            if (fc_jsonl_append(w, rec) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
            cJSON_Delete(rec);
            progress_tick(&pg);
        }
        if (next < n_jobs) {
            c.jobs[next].started = true;
            ga_submit(e, tok, &c, refs, next, qs.q[todo[c.jobs[next].qi]], o);
            next++;
        }
    }
    double secs = fc_time_sec() - t0;
    progress_draw(&pg, true);
    fprintf(stderr, "gen-answer: %d answers (%d questions x %d choices) in %.2f s: %.3f answers/s, %.1f tokens/s (%s)\n",
            n_jobs, nt, o->num_choices, secs, n_jobs / secs, tokens / secs, o->sequential ? "one at a time" : "batched");
    fc_engine_stats es;
    fc_engine_get_stats(e, &es);
    if (es.steps > 0)
        fprintf(stderr, "engine: %llu forward steps, %.1f tokens per step (%llu generated, %llu prompt tokens computed, "
                "%llu cached)\n", (unsigned long long)es.steps,
                (double)(es.tokens_generated + es.prompt_tokens_computed) / (double)es.steps,
                (unsigned long long)es.tokens_generated, (unsigned long long)es.prompt_tokens_computed,
                (unsigned long long)es.prompt_tokens_cached);
    fc_jsonl_close(w);
    fc_engine_free(e);
    for (int k = 0; k < n_jobs; k++) { fc_conv_free(c.jobs[k].conv); free(c.jobs[k].text); cJSON_Delete(c.jobs[k].turns); }
    free(c.jobs);
    free(c.fin);
    free(refs);
    free(left);
    fc_conv_free(proto);
    fc_tokenizer_free(tok);
    fc_model_free(m);
out_early:
    if (access(path, R_OK) == 0 && fc_jsonl_rewrite_sorted(path, "question_id") != FC_OK)
        fc_cli_die(NULL, "%s", fc_last_error());
    free(todo);
    free(path);
    free_questions(&qs);
    return 0;
}

/* ---- report (the results page) ---- */

static int report(const opts *o)
{
    const fc_mt_source src = {.data_dir = o->data_dir, .bench = o->bench, .judge_model = o->judge_model,
                              .ref_model = o->ref_model, .question_file = o->question_file};
    cJSON *d;
    if (fc_mt_report_collect(&src, &d) != FC_OK)
        fc_cli_die("give --question-file, or --bench-name / --data-dir of a FastChat data folder", "%s",
                   fc_last_error());
    fprintf(stderr, "%d questions, %d models' answers, %d single and %d pairwise judgments of %s\n",
            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "questions")),
            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "answers")),
            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "single")),
            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "pair")), o->judge_model);
    const char *out = o->output_file ? o->output_file : "results.html";
    if (fc_mt_report_write(out, d) != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
    fprintf(stderr, "wrote %s\n", out);
    cJSON_Delete(d);
    return 0;
}

/* ---- dispatch ---- */

int fc_cmd_judge(int argc, char **argv)
{
    static const struct { const char *name; int (*fn)(const opts *); } subs[] = {
        {"gen-answer", gen_answer}, {"gen-api-answer", gen_api_answer}, {"gen-judgment", gen_judgment},
        {"show-result", show_result}, {"agreement", agreement}, {"report", report},
    };
    opts o;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        parse(0, NULL, &o, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < FC_ARRAY_LEN(subs); i++)
        if (!strcmp(argv[1], subs[i].name)) {
            parse(argc - 1, argv + 1, &o, NULL); /* argv[0]: the judge subcommand */
            int rc = subs[i].fn(&o);
            free_opts(&o);
            return rc;
        }
    fc_cli_die("subcommands: gen-answer, gen-api-answer, gen-judgment, show-result, agreement, report",
               "unknown judge subcommand '%s'", argv[1]);
}
