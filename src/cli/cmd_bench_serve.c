/*
 * cmd_bench_serve.c: `fastchat bench-serve`, a load test of a running
 * deployment through its OpenAI API (FastChat's serve/test_throughput.py
 * drives workers directly and reports words/s; tests/load_test.py measures
 * TTFT and inter-token latency through an OpenAI client: this does the
 * latter in C).
 *
 * --clients threads each send streaming chat (or --completions) requests
 * until --requests have been sent in all. Per request it records the time to
 * the first content chunk (TTFT), the gaps between content chunks
 * (inter-token latency as a client sees it: a chunk may carry more than one
 * token when the worker's --stream-interval is above 1), and the generated
 * tokens (usage from stream_options.include_usage). Reports requests/s,
 * generated tokens/s, TTFT and ITL p50/p99, time per output token (TPOT:
 * (latency - TTFT) / (tokens - 1) per request, independent of how tokens are
 * grouped into chunks), and errors; --json prints the same as one JSON object.
 *
 * It also drives other OpenAI-compatible servers (scripts/bench_serve.sh runs
 * it against llama.cpp's llama-server): errors may come as FastChat's
 * {"text", "error_code"} or OpenAI's {"error": {"message"}}, usage may come in
 * a last chunk with no choices, and chunks with an empty or null content (a
 * role-only first delta) do not count as the first token. --ignore-eos adds
 * "ignore_eos": true (llama-server honours it; servers that do not know it
 * ignore it) so that every request can generate exactly --max-tokens.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "base/json.h"
#include "cli.h"
#include "net/http.h"
#include "net/nulstream.h"

int fc_cmd_bench_serve(int argc, char **argv);

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec;

static void dvec_push(dvec *d, double x)
{
    if (d->n == d->cap) d->v = fc_xrealloc(d->v, sizeof(double) * (d->cap = d->cap ? 2 * d->cap : 256));
    d->v[d->n++] = x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values; 0 when empty. */
static double pct(const dvec *d, double p)
{
    if (!d->n) return 0;
    size_t k = (size_t)(p / 100.0 * (double)d->n + 0.999999);
    if (k < 1) k = 1;
    if (k > d->n) k = d->n;
    return d->v[k - 1];
}

typedef struct bench {
    const char *url;          /* .../v1/chat/completions or .../v1/completions */
    char *body;               /* the request */
    const char *auth;         /* "Authorization: Bearer ..." or NULL */
    int n_requests;
    double deadline; /* no request starts after this time (0: none) */
    atomic_int next;
    pthread_mutex_t mu;
    dvec ttft, itl, latency, tpot;
    long long tokens, prompt_tokens;
    int with_usage;
    int ok, errors;
    char first_error[512];
    bool completions;
} bench;

typedef struct req_state {
    bench *b;
    fc_sse_parser *sse;
    double t0, t_last;
    bool got_first, done, failed;
    long long tokens, prompt_tokens, chunks;
    bool has_usage;
    dvec itl;
    double ttft;
    char error[256];
} req_state;

static bool on_event(const fc_sse_event *ev, void *user)
{
    req_state *r = user;
    if (!strcmp(ev->data, "[DONE]")) {
        r->done = true;
        return true;
    }
    cJSON *o = cJSON_ParseWithLength(ev->data, ev->data_len);
    if (!o) return true;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "error_code");
    if (err || (cJSON_IsNumber(code) && code->valueint != 0)) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        if (!cJSON_IsString(t)) t = cJSON_IsString(err) ? err : cJSON_GetObjectItemCaseSensitive(err, "message");
        snprintf(r->error, sizeof r->error, "stream error: %s", cJSON_IsString(t) ? t->valuestring : "(no text)");
        r->failed = true;
    }
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "choices"), 0);
    const cJSON *text =
        r->b->completions ? cJSON_GetObjectItemCaseSensitive(ch, "text")
                          : cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(ch, "delta"), "content");
    if (cJSON_IsString(text) && *text->valuestring) {
        double now = fc_time_sec();
        if (!r->got_first) {
            r->ttft = now - r->t0;
            r->got_first = true;
        } else {
            dvec_push(&r->itl, now - r->t_last);
        }
        r->t_last = now;
        r->chunks++;
    }
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(o, "usage");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
    if (cJSON_IsNumber(ct)) r->tokens = fc_json_long(ct->valuedouble), r->has_usage = true;
    if (cJSON_IsNumber(pt)) r->prompt_tokens = fc_json_long(pt->valuedouble);
    cJSON_Delete(o);
    return true;
}

static bool on_data(const char *data, size_t len, void *user)
{
    req_state *r = user;
    return fc_sse_parser_feed(r->sse, data, len, on_event, r);
}

static void *client_main(void *arg)
{
    bench *b = arg;
    const char *hdrs[2] = {b->auth, NULL};
    while (!(b->deadline > 0 && fc_time_sec() >= b->deadline) && atomic_fetch_add(&b->next, 1) < b->n_requests) {
        req_state r = {.b = b, .sse = fc_sse_parser_new(0)};
        r.t0 = fc_time_sec();
        fc_http_response resp = {0};
        bool ok = fc_http_post_stream(b->url, b->body, strlen(b->body), 600, b->auth ? hdrs : NULL, on_data, &r, &resp);
        double t_end = fc_time_sec();
        if (!ok) snprintf(r.error, sizeof r.error, "%s", resp.error), r.failed = true;
        else if (resp.status != 200) snprintf(r.error, sizeof r.error, "HTTP %d", resp.status), r.failed = true;
        else if (!r.done && !r.failed)
            snprintf(r.error, sizeof r.error, "stream ended without [DONE]"), r.failed = true;
        pthread_mutex_lock(&b->mu);
        if (r.failed) {
            if (!b->errors) snprintf(b->first_error, sizeof b->first_error, "%s", r.error);
            b->errors++;
        } else {
            long long n = r.has_usage ? r.tokens : r.chunks;
            b->ok++;
            b->tokens += n;
            b->prompt_tokens += r.prompt_tokens;
            b->with_usage += r.has_usage;
            if (r.got_first) dvec_push(&b->ttft, r.ttft);
            for (size_t i = 0; i < r.itl.n; i++) dvec_push(&b->itl, r.itl.v[i]);
            dvec_push(&b->latency, t_end - r.t0);
            /* from the first token to the last chunk (not to the end of the stream) */
            if (r.got_first && n > 1) dvec_push(&b->tpot, (r.t_last - r.t0 - r.ttft) / (double)(n - 1));
        }
        pthread_mutex_unlock(&b->mu);
        free(r.itl.v);
        fc_sse_parser_free(r.sse);
        fc_http_response_free(&resp);
    }
    return NULL;
}

int fc_cmd_bench_serve(int argc, char **argv)
{
    const char *base = "http://localhost:8000", *model = NULL, *key = NULL;
    const char *prompt = "Tell me a story with more than 1000 words.";
    int clients = 4, requests = 16, max_tokens = 64;
    double temperature = 0.7, duration = 0;
    bool json = false, completions = false, ignore_eos = false;
    int64_t seed = -1;
    const fc_flag flags[] = {
        {"--url", FC_FLAG_STRING, &base, .metavar = "URL", .help = "API base (default http://localhost:8000; /v1 optional)"},
        {"--model", FC_FLAG_STRING, &model, .metavar = "NAME", .help = "model to request (default: the first of /v1/models)"},
        {"--clients", FC_FLAG_INT, &clients, .help = "concurrent streaming clients (default 4)"},
        {"--requests", FC_FLAG_INT, &requests, .metavar = "R", .help = "requests in all (default 16)"},
        {"--max-tokens", FC_FLAG_INT, &max_tokens, .metavar = "T", .help = "max_tokens per request (default 64)"},
        {"--duration", FC_FLAG_DOUBLE, &duration, .metavar = "S",
         .help = "start no request after S seconds (the ones under way finish)"},
        {"--prompt", FC_FLAG_STRING, &prompt, .metavar = "TEXT", .help = "the user message (default: a story request)"},
        {"--temperature", FC_FLAG_DOUBLE, &temperature, .help = "(default 0.7)"},
        {"--seed", FC_FLAG_INT64, &seed, .help = "send a fixed seed"},
        {"--ignore-eos", FC_FLAG_TRUE, &ignore_eos, .help = "send \"ignore_eos\": true (llama-server: generate max_tokens)"},
        {"--completions", FC_FLAG_TRUE, &completions, .help = "use /v1/completions instead of chat"},
        {"--api-key", FC_FLAG_STRING, &key, .metavar = "KEY", .help = "bearer token"},
        {"--json", FC_FLAG_TRUE, &json, .help = "print the results as one JSON object"},
        {0},
    };
    const fc_flags_cmd cmd = {.usage = "fastchat bench-serve --model NAME [options]", .flags = flags};
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (clients < 1 || requests < 1 || max_tokens < 1)
        fc_cli_die(NULL, "--clients, --requests and --max-tokens must be at least 1");
    fc_http_global_init();

    /* base URL ending in /v1 */
    char v1[1024];
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    if (bl >= 3 && !strncmp(base + bl - 3, "/v1", 3)) snprintf(v1, sizeof v1, "%.*s", (int)bl, base);
    else snprintf(v1, sizeof v1, "%.*s/v1", (int)bl, base);
    char auth[512];
    if (key) snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    const char *hdrs[2] = {key ? auth : NULL, NULL};

    char *model_buf = NULL;
    if (!model) {
        char url[1100];
        snprintf(url, sizeof url, "%s/models", v1);
        fc_http_response r = {0};
        if (!fc_http_get(url, 30, key ? hdrs : NULL, &r) || r.status != 200)
            fc_cli_die("is the API server running? pass --url", "%s: %s", url, r.status ? "HTTP error" : r.error);
        cJSON *o = cJSON_ParseWithLength(r.body, r.len);
        const cJSON *id =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "data"), 0), "id");
        if (!cJSON_IsString(id)) fc_cli_die("pass --model", "%s lists no model", url);
        model = model_buf = fc_xstrdup(id->valuestring);
        cJSON_Delete(o);
        fc_http_response_free(&r);
    }

    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    if (completions) {
        cJSON_AddStringToObject(req, "prompt", prompt);
    } else {
        cJSON *msgs = cJSON_AddArrayToObject(req, "messages");
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", prompt);
        cJSON_AddItemToArray(msgs, m);
    }
    cJSON_AddNumberToObject(req, "max_tokens", max_tokens);
    cJSON_AddNumberToObject(req, "temperature", temperature);
    if (seed >= 0) cJSON_AddNumberToObject(req, "seed", (double)seed);
    if (ignore_eos) cJSON_AddBoolToObject(req, "ignore_eos", true);
    cJSON_AddBoolToObject(req, "stream", true);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(req, "stream_options"), "include_usage", true);
    char url[1100];
    snprintf(url, sizeof url, "%s/%s", v1, completions ? "completions" : "chat/completions");
    bench b = {.url = url, .body = cJSON_PrintUnformatted(req), .auth = key ? auth : NULL, .n_requests = requests,
               .completions = completions};
    cJSON_Delete(req);
    pthread_mutex_init(&b.mu, NULL);
    atomic_init(&b.next, 0);

    if (!json)
        fprintf(stderr, "bench-serve: %d requests, %d clients, max_tokens %d, model %s, %s\n", requests, clients,
                max_tokens, model, url);
    double t0 = fc_time_sec();
    if (duration > 0) b.deadline = t0 + duration;
    pthread_t *th = fc_xcalloc((size_t)clients, sizeof(pthread_t));
    for (int i = 0; i < clients; i++)
        if (pthread_create(&th[i], NULL, client_main, &b) != 0) fc_cli_die(NULL, "cannot start client thread %d", i);
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double wall = fc_time_sec() - t0;
    qsort(b.ttft.v, b.ttft.n, sizeof(double), cmp_double);
    qsort(b.itl.v, b.itl.n, sizeof(double), cmp_double);
    qsort(b.latency.v, b.latency.n, sizeof(double), cmp_double);
    qsort(b.tpot.v, b.tpot.n, sizeof(double), cmp_double);
    double ptok = b.ok ? (double)b.prompt_tokens / b.ok : 0, gtok = b.ok ? (double)b.tokens / b.ok : 0;

    double rps = b.ok / wall, tps = (double)b.tokens / wall;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddNumberToObject(o, "clients", clients);
        cJSON_AddNumberToObject(o, "requests", requests);
        cJSON_AddNumberToObject(o, "ok", b.ok);
        if (b.ok + b.errors < requests) cJSON_AddNumberToObject(o, "not_started", requests - b.ok - b.errors);
        cJSON_AddNumberToObject(o, "errors", b.errors);
        cJSON_AddNumberToObject(o, "wall_s", wall);
        cJSON_AddNumberToObject(o, "requests_per_s", rps);
        cJSON_AddNumberToObject(o, "generated_tokens", (double)b.tokens);
        cJSON_AddNumberToObject(o, "tokens_per_s", tps);
        cJSON_AddNumberToObject(o, "prompt_tokens_per_request", ptok);
        cJSON_AddNumberToObject(o, "generated_tokens_per_request", gtok);
        cJSON_AddNumberToObject(o, "requests_with_usage", b.with_usage);
        cJSON_AddNumberToObject(o, "ttft_p50_ms", 1e3 * pct(&b.ttft, 50));
        cJSON_AddNumberToObject(o, "ttft_p99_ms", 1e3 * pct(&b.ttft, 99));
        cJSON_AddNumberToObject(o, "itl_p50_ms", 1e3 * pct(&b.itl, 50));
        cJSON_AddNumberToObject(o, "itl_p99_ms", 1e3 * pct(&b.itl, 99));
        cJSON_AddNumberToObject(o, "tpot_p50_ms", 1e3 * pct(&b.tpot, 50));
        cJSON_AddNumberToObject(o, "tpot_p99_ms", 1e3 * pct(&b.tpot, 99));
        cJSON_AddNumberToObject(o, "latency_p50_ms", 1e3 * pct(&b.latency, 50));
        cJSON_AddNumberToObject(o, "latency_p99_ms", 1e3 * pct(&b.latency, 99));
        if (b.errors) cJSON_AddStringToObject(o, "first_error", b.first_error);
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("requests:        %d ok, %d errors in %.2f s", b.ok, b.errors, wall);
        if (b.ok + b.errors < requests) printf(" (%d not started: --duration)", requests - b.ok - b.errors);
        printf("\n");
        printf("throughput:      %.2f requests/s, %.1f generated tokens/s (%lld tokens)\n", rps, tps, b.tokens);
        printf("per request:     %.1f prompt tokens, %.1f generated tokens%s\n", ptok, gtok,
               b.with_usage < b.ok ? " (some without usage: chunks counted)" : "");
        printf("TTFT:            p50 %.1f ms, p99 %.1f ms\n", 1e3 * pct(&b.ttft, 50), 1e3 * pct(&b.ttft, 99));
        printf("inter-token:     p50 %.1f ms, p99 %.1f ms (between streamed chunks)\n", 1e3 * pct(&b.itl, 50),
               1e3 * pct(&b.itl, 99));
        printf("TPOT:            p50 %.1f ms, p99 %.1f ms (per output token after the first)\n",
               1e3 * pct(&b.tpot, 50), 1e3 * pct(&b.tpot, 99));
        printf("request latency: p50 %.1f ms, p99 %.1f ms\n", 1e3 * pct(&b.latency, 50), 1e3 * pct(&b.latency, 99));
        if (b.errors) printf("first error:     %s\n", b.first_error);
    }
    free(th);
    free(b.body);
    free(b.ttft.v);
    free(b.itl.v);
    free(b.latency.v);
    free(b.tpot.v);
    free(model_buf);
    pthread_mutex_destroy(&b.mu);
    return b.errors ? 1 : 0;
}
