/*
 * openai_generate.c: /v1/chat/completions, /api/v1/chat/completions and
 * /v1/completions: logprobs and usage objects, the non-streamed choices
 * (concurrent /worker_generate calls) and the handlers.
 * Private to the OpenAI API server: see openai_impl.h and openai_api.h.
 */
#include "serve/openai_impl.h"

/* ---- logprobs ---- */

cJSON *fc_oai_completion_logprobs(const cJSON *lp, int from, int to)
{
    static const char *keys[] = {"text_offset", "token_logprobs", "tokens", "top_logprobs"};
    cJSON *o = cJSON_CreateObject();
    for (size_t k = 0; k < FC_ARRAY_LEN(keys); k++) {
        const cJSON *src = json_get(lp, keys[k]);
        cJSON *arr = cJSON_AddArrayToObject(o, keys[k]);
        for (int i = from; i < to; i++) {
            const cJSON *it = cJSON_GetArrayItem(src, i);
            cJSON_AddItemToArray(arr, it ? cJSON_Duplicate(it, true) : cJSON_CreateNull());
        }
    }
    return o;
}

static cJSON *token_bytes(const char *s)
{
    cJSON *b = cJSON_CreateArray();
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) cJSON_AddItemToArray(b, cJSON_CreateNumber(*p));
    return b;
}

cJSON *fc_oai_chat_logprobs(const cJSON *lp, int from, int to)
{
    const cJSON *tokens = json_get(lp, "tokens"), *lps = json_get(lp, "token_logprobs"),
                *tops = json_get(lp, "top_logprobs");
    cJSON *o = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(o, "content");
    for (int i = from; i < to; i++) {
        const cJSON *t = cJSON_GetArrayItem(tokens, i), *l = cJSON_GetArrayItem(lps, i),
                    *top = cJSON_GetArrayItem(tops, i);
        const char *ts = cJSON_IsString(t) ? t->valuestring : "";
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", ts);
        if (cJSON_IsNumber(l)) cJSON_AddNumberToObject(e, "logprob", l->valuedouble);
        else cJSON_AddNullToObject(e, "logprob");
        cJSON_AddItemToObject(e, "bytes", token_bytes(ts));
        cJSON *ta = cJSON_AddArrayToObject(e, "top_logprobs");
        const cJSON *alt;
        if (cJSON_IsObject(top)) {
            cJSON_ArrayForEach(alt, top) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "token", alt->string);
                cJSON_AddNumberToObject(x, "logprob", cJSON_IsNumber(alt) ? alt->valuedouble : 0.0);
                cJSON_AddItemToObject(x, "bytes", token_bytes(alt->string));
                cJSON_AddItemToArray(ta, x);
            }
        }
        cJSON_AddItemToArray(content, e);
    }
    cJSON_AddNullToObject(o, "refusal");
    return o;
}

int fc_oai_logprobs_len(const cJSON *lp)
{
    return cJSON_GetArraySize(json_get(lp, "tokens"));
}

/* ---- usage ---- */

void fc_oai_usage_add(usage *u, const cJSON *chunk)
{
    const cJSON *us = json_get(chunk, "usage");
    const cJSON *p = json_get(us, "prompt_tokens"), *c = json_get(us, "completion_tokens"),
                *t = json_get(us, "total_tokens");
    if (cJSON_IsNumber(p)) u->prompt += p->valuedouble;
    if (cJSON_IsNumber(c)) u->completion += c->valuedouble;
    if (cJSON_IsNumber(t)) u->total += t->valuedouble;
}

cJSON *fc_oai_usage_json(const usage *u, bool with_completion)
{
    cJSON *o = cJSON_CreateObject();
    add_int(o, "prompt_tokens", u->prompt);
    add_int(o, "total_tokens", u->total);
    if (with_completion) add_int(o, "completion_tokens", u->completion);
    return o;
}

/* ---- non-streamed generation (concurrent /worker_generate calls) ---- */

bool fc_oai_worker_alive(const char *addr)
{
    char *url = fc_xasprintf("%s/worker_get_status", addr);
    fc_http_response r = {0};
    bool ok = fc_http_post_json(url, "{}", 2, PROBE_TIMEOUT_S, NULL, &r) && r.status == 200;
    fc_http_response_free(&r);
    free(url);
    if (!ok) FC_LOG_WARN("api: worker %s sent nothing for %.0f s and does not answer", addr, STALL_PROBE_S);
    return ok;
}

struct taskset;

typedef struct task {
    struct taskset *set;
    const char *addr;
    char *payload;
    cJSON *result;   /* the worker's last chunk */
    char *why;       /* transport failure */
    double since;    /* fc_time_sec() of the last sign of life */
} task;

/* The tasks of one request: threads take them in order until all are done or
 * the request is aborted (client gone, server stopping, a dead worker). */
typedef struct taskset {
    task *ts;
    int n;
    atomic_int next;
    atomic_bool abort;
    atomic_bool dead;      /* a worker stopped answering */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;           /* threads still taking tasks */
} taskset;

static bool task_keep_going(void *user)
{
    task *t = user;
    if (atomic_load(&t->set->abort)) return false;
    if (fc_time_sec() - t->since < STALL_PROBE_S) return true;
    if (fc_oai_worker_alive(t->addr)) {
        t->since = fc_time_sec();
        return true;
    }
    atomic_store(&t->set->dead, true);
    atomic_store(&t->set->abort, true);
    return false;
}

static void task_run(task *t)
{
    t->since = fc_time_sec();
    char *url = fc_xasprintf("%s/worker_generate", t->addr);
    fc_http_call call = {.keep_going = task_keep_going, .user = t};
    fc_http_response r = {0};
    bool got = fc_http_post_json_ex(url, t->payload, strlen(t->payload), GENERATE_TIMEOUT_S, &call, &r) &&
               r.status != 0;
    if (!got) {
        t->why = fc_xasprintf("%s: %s", url, atomic_load(&t->set->dead) ? "the worker stopped answering"
                                          : r.error[0]                ? r.error
                                                                      : "no response");
    } else if (r.status != 200) { /* fetch_remote turns a non-200 into an error chunk */
        t->result = cJSON_CreateObject();
        char *why = r.status == 404 ? fc_xstrdup("Not Found")
                    : r.status == 500 ? fc_xstrdup("Internal Server Error")
                                      : fc_xasprintf("HTTP %d", r.status);
        /* a worker's 400 carries its reason in "text" */
        cJSON *body = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        const cJSON *text = json_get(body, "text");
        cJSON_AddStringToObject(t->result, "text", cJSON_IsString(text) ? text->valuestring : why);
        add_int(t->result, "error_code", FC_EC_INTERNAL_ERROR);
        cJSON_Delete(body);
        free(why);
    } else {
        t->result = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        if (!t->result) t->why = fc_xasprintf("%s: malformed JSON answer", url);
    }
    fc_http_response_free(&r);
    free(url);
}

static void *task_thread(void *arg)
{
    taskset *set = arg;
    int i;
    while (!atomic_load(&set->abort) && (i = atomic_fetch_add(&set->next, 1)) < set->n) task_run(&set->ts[i]);
    pthread_mutex_lock(&set->mu);
    set->running--;
    pthread_cond_broadcast(&set->cv);
    pthread_mutex_unlock(&set->mu);
    return NULL;
}

/* Runs the tasks, at most MAX_TASKS_AT_ONCE at a time, on threads of their
 * own while this (the handler's) thread watches the client and the server:
 * a client that leaves, or a server that stops, aborts what runs at once
 * (the worker sees its connection close and cancels) and what waits never
 * starts. False when aborted. */
static bool run_tasks(fc_openai_api *a, const fc_http_request *hr, task *ts, int n)
{
    taskset set = {.ts = ts, .n = n};
    atomic_init(&set.next, 0);
    atomic_init(&set.abort, false);
    atomic_init(&set.dead, false);
    pthread_mutex_init(&set.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&set.cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int i = 0; i < n; i++) ts[i].set = &set;
    int k = FC_MIN(n, MAX_TASKS_AT_ONCE);
    pthread_t th[MAX_TASKS_AT_ONCE];
    bool started[MAX_TASKS_AT_ONCE] = {0};
    for (int i = 0; i < k; i++) {
        pthread_mutex_lock(&set.mu);
        set.running++;
        pthread_mutex_unlock(&set.mu);
        started[i] = pthread_create(&th[i], NULL, task_thread, &set) == 0;
        if (!started[i]) {
            pthread_mutex_lock(&set.mu);
            set.running--;
            pthread_mutex_unlock(&set.mu);
        }
    }
    bool any = false;
    for (int i = 0; i < k; i++) any = any || started[i];
    if (!any) { /* no thread at all: run them here */
        pthread_mutex_lock(&set.mu);
        set.running++;
        pthread_mutex_unlock(&set.mu);
        task_thread(&set);
    }
    pthread_mutex_lock(&set.mu);
    while (set.running > 0) {
        struct timespec ts_;
        clock_gettime(CLOCK_MONOTONIC, &ts_);
        ts_.tv_nsec += 100 * 1000000L;
        if (ts_.tv_nsec >= 1000000000L) ts_.tv_sec++, ts_.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&set.cv, &set.mu, &ts_);
        if (set.running > 0 && !atomic_load(&set.abort)) {
            pthread_mutex_unlock(&set.mu);
            if (fc_oai_must_stop(a, hr)) atomic_store(&set.abort, true);
            pthread_mutex_lock(&set.mu);
        }
    }
    pthread_mutex_unlock(&set.mu);
    for (int i = 0; i < k; i++)
        if (started[i]) pthread_join(th[i], NULL);
    bool aborted = atomic_load(&set.abort) && !atomic_load(&set.dead);
    pthread_mutex_destroy(&set.mu);
    pthread_cond_destroy(&set.cv);
    for (int i = 0; i < n; i++) ts[i].set = NULL;
    return !aborted;
}

/* Builds tasks for every prompt x n (choice index = prompt * n + i). */
static task *make_tasks(const gen_req *r, const prep *p, int *n_tasks)
{
    int n = p->n_prompts * (int)r->n;
    task *ts = fc_xcalloc((size_t)n, sizeof(task));
    for (int k = 0; k < p->n_prompts; k++)
        for (int i = 0; i < r->n; i++) {
            task *t = &ts[k * r->n + i];
            t->addr = p->addr;
            t->payload = fc_oai_with_tool_grammar(fc_oai_prompt_payload(r, p->conv, p->prompts[k], k, p->max_new_tokens, i), p);
        }
    *n_tasks = n;
    return ts;
}

static void free_tasks(task *ts, int n)
{
    for (int i = 0; i < n; i++) {
        free(ts[i].payload);
        free(ts[i].why);
        cJSON_Delete(ts[i].result);
    }
    free(ts);
}

const char *fc_oai_finish_of(const cJSON *chunk, const char *dflt)
{
    const cJSON *f = json_get(chunk, "finish_reason");
    if (cJSON_IsString(f)) return f->valuestring;
    return f ? NULL : dflt; /* content.get("finish_reason", "stop") */
}

/* A chat answer parsed for tool calls into msg's content and tool_calls. */
static void tool_message(cJSON *msg, const char *text, const cJSON *tools, bool *made)
{
    char *content = NULL;
    cJSON *calls = fc_tool_parse_text(text, strlen(text), tools, &content);
    if (calls && !content) cJSON_AddNullToObject(msg, "content");
    else cJSON_AddStringToObject(msg, "content", content ? content : "");
    if (calls) cJSON_AddItemToObject(msg, "tool_calls", calls);
    *made = calls != NULL;
    free(content);
}

/* /metrics: when the generation request on this handler thread arrived */
_Thread_local double fc_oai_metrics_t0;

static void generate_blocking(fc_openai_api *a, const fc_http_request *hr, const gen_req *r, const prep *p,
                              fc_http_reply *reply)
{
    int n = 0;
    task *ts = make_tasks(r, p, &n);
    FC_LOG_DEBUG("api: %d x /worker_generate on %s: %s", n, p->addr, ts[0].payload);
    api_err e = {0};
    bool ran = run_tasks(a, hr, ts, n);
    /* /metrics: one choice's timings from the worker ("timings", worker.h):
     * first token = this request's time minus the worker's first token to reply */
    double ttft = -1, first_to_last = -1;
    const cJSON *tm = n == 1 ? json_get(ts[0].result, "timings") : NULL;
    const cJSON *ftl = json_get(tm, "first_to_last_s"), *ftr = json_get(tm, "first_to_reply_s");
    if (ran && cJSON_IsNumber(ftl) && cJSON_IsNumber(ftr) && fc_oai_metrics_t0 > 0) {
        ttft = FC_MAX(0.0, fc_time_sec() - fc_oai_metrics_t0 - ftr->valuedouble);
        first_to_last = FC_MAX(0.0, ftl->valuedouble);
        if (!(ttft < 1e9) || !(first_to_last < 1e9)) ttft = first_to_last = -1; /* nan, inf */
    }
    if (!ran) {
        fc_oai_err_stopped(a, &e);
        free_tasks(ts, n);
        fc_oai_reply_err(reply, &e);
        fc_oai_err_free(&e);
        return;
    }
    usage u = {0};
    char id[32];
    fc_oai_short_uuid(id);
    cJSON *out = cJSON_CreateObject();
    char *full_id = fc_xasprintf("%s-%s", r->kind == K_COMPLETION ? "cmpl" : "chatcmpl", id);
    cJSON_AddStringToObject(out, "id", full_id);
    free(full_id);
    cJSON_AddStringToObject(out, "object", r->kind == K_COMPLETION ? "text_completion" : "chat.completion");
    add_int(out, "created", (double)time(NULL));
    cJSON_AddStringToObject(out, "model", r->model);
    cJSON *choices = cJSON_AddArrayToObject(out, "choices");
    for (int i = 0; i < n && !e.http; i++) {
        const cJSON *c = ts[i].result;
        if (!c) {
            fc_oai_err_set(&e, 400, FC_EC_INTERNAL_ERROR, NULL, "%s", ts[i].why ? ts[i].why : "worker failed");
            break;
        }
        const cJSON *code = json_get(c, "error_code"), *text = json_get(c, "text");
        if (cJSON_IsNumber(code) && code->valueint != 0) {
            fc_oai_err_set(&e, 400, code->valueint, NULL, "%s", cJSON_IsString(text) ? text->valuestring : "worker error");
            break;
        }
        const char *t = cJSON_IsString(text) ? text->valuestring : "";
        bool tool_calls_made = false;
        cJSON *ch = cJSON_CreateObject();
        add_int(ch, "index", i);
        const cJSON *lp = json_get(c, "logprobs");
        if (r->kind == K_COMPLETION) {
            cJSON_AddStringToObject(ch, "text", t);
            if (cJSON_IsObject(lp)) cJSON_AddItemToObject(ch, "logprobs", fc_oai_completion_logprobs(lp, 0, fc_oai_logprobs_len(lp)));
            else cJSON_AddNullToObject(ch, "logprobs");
        } else {
            cJSON *msg = cJSON_AddObjectToObject(ch, "message");
            cJSON_AddStringToObject(msg, "role", "assistant");
            if (p->tools_active) tool_message(msg, t, r->tools.tools, &tool_calls_made);
            else cJSON_AddStringToObject(msg, "content", t);
            if (r->chat_logprobs && cJSON_IsObject(lp))
                cJSON_AddItemToObject(ch, "logprobs", fc_oai_chat_logprobs(lp, 0, fc_oai_logprobs_len(lp)));
            else if (r->chat_logprobs)
                cJSON_AddNullToObject(ch, "logprobs");
        }
        const char *fin = fc_oai_finish_of(c, "stop");
        if (tool_calls_made && fin && !strcmp(fin, "stop")) fin = "tool_calls";
        if (fin) cJSON_AddStringToObject(ch, "finish_reason", fin);
        else cJSON_AddNullToObject(ch, "finish_reason");
        cJSON_AddItemToArray(choices, ch);
        fc_oai_usage_add(&u, c);
    }
    free_tasks(ts, n);
    if (e.http) {
        fc_oai_reply_err(reply, &e);
        fc_oai_err_free(&e);
        cJSON_Delete(out);
        return;
    }
    cJSON_AddItemToObject(out, "usage", fc_oai_usage_json(&u, true));
    fc_ollama_observe(a->ollama, r->model, fc_json_long(u.prompt), fc_json_long(u.completion), ttft, first_to_last);
    fc_oai_reply_obj(reply, out);
}

/* ---- handlers ---- */

static void handle_generation(fc_openai_api *a, const fc_http_request *hr, fc_http_reply *reply, enum req_kind kind)
{
    fc_oai_metrics_t0 = fc_time_sec();
    gen_req r;
    api_err e = {0};
    prep p = {0};
    if (!fc_oai_parse_gen_req(a, hr, kind, &r, &e) || !fc_oai_prepare(a, hr, &r, &p, &e)) {
        fc_oai_reply_err(reply, &e);
        fc_oai_err_free(&e);
        fc_oai_req_free(&r);
        return;
    }
    fc_ollama_in_flight(a->ollama, 1);
    if (r.stream) fc_oai_generate_streaming(a, &r, &p, reply);
    else generate_blocking(a, hr, &r, &p, reply);
    fc_ollama_in_flight(a->ollama, -1);
    fc_oai_prep_free(&p);
    fc_oai_req_free(&r);
}

void fc_oai_h_chat(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (fc_oai_auth_ok(user, req, reply)) handle_generation(user, req, reply, K_CHAT);
}

void fc_oai_h_api_chat(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (fc_oai_auth_ok(user, req, reply)) handle_generation(user, req, reply, K_API_CHAT);
}

void fc_oai_h_completions(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (fc_oai_auth_ok(user, req, reply)) handle_generation(user, req, reply, K_COMPLETION);
}
