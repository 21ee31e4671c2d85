/*
 * openai_stream.c: the streaming writer: the handler's thread relays the
 * worker's NUL-delimited chunks as Server-Sent Events (chat.completion.chunk
 * or text_completion), one choice after another.
 * Private to the OpenAI API server: see openai_impl.h and openai_api.h.
 */
#include "serve/openai_impl.h"

/* ---- streamed generation: the handler's thread relays ---- */

typedef struct job {
    fc_openai_api *a;
    fc_http_stream *st;
    enum req_kind kind;
    char id[48];
    double created;
    char *model;
    char *addr;
    char **payloads;    /* one per choice, in index order */
    int n_payloads;
    bool include_usage, chat_logprobs;
    bool client_gone, done;
    atomic_bool gone_flag; /* set by the disconnect callback */
    /* the choice being relayed */
    int index;
    fc_nulsplit *split; /* the worker's NUL-delimited chunks */
    fc_str prev;            /* text already sent (U+FFFD removed) */
    fc_str scratch;
    int lp_sent;        /* logprob entries already sent */
    bool saw_finish, saw_chunk;
    cJSON *last;        /* the choice's last chunk (usage) */
    double since;       /* fc_time_sec() of the worker's last sign of life */
    const char *stop_why; /* why job_keep_going ended the worker request */
    usage u;
    fc_str deferred;        /* finish events held back until all choices end */
    bool tools;         /* the answer is parsed for tool calls */
    const cJSON *tool_defs; /* the request's tools (borrowed: job_main runs within the handler) */
    const cJSON *tool_lp;   /* the chunk being parsed: its logprobs, up to tool_lp_to */
    int tool_lp_to;
    fc_tool_parser *tp; /* the choice's parser when tools */
    double t0, t_first, t_last; /* /metrics: request start, first and last text of choice 0 */
} job;

static bool job_write(job *j, const char *s, size_t n)
{
    if (j->client_gone) return false;
    if (!fc_http_stream_write(j->st, s, n)) j->client_gone = true;
    return !j->client_gone;
}

static bool job_event(job *j, cJSON *o)
{
    char *s = json_print(o);
    cJSON_Delete(o);
    fc_str ev = FC_STR_INIT;
    fc_str_puts(&ev, "data: ");
    fc_str_puts(&ev, s);
    fc_str_puts(&ev, "\n\n");
    free(s);
    bool ok = job_write(j, ev.p, ev.len);
    fc_str_free(&ev);
    return ok;
}

static cJSON *chunk_head(const job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "object", j->kind == K_COMPLETION ? "text_completion" : "chat.completion.chunk");
    add_int(o, "created", j->created);
    cJSON_AddStringToObject(o, "model", j->model);
    return o;
}

static void chunk_tail(const job *j, cJSON *o)
{
    if (j->include_usage) cJSON_AddNullToObject(o, "usage");
}

/* One choice's event: the text delta (or the role for the first chat event),
 * the logprobs of its tokens, the finish reason. */
static cJSON *choice_event(const job *j, const char *role, const char *delta, const cJSON *lp, int lp_from, int lp_to,
                           const char *finish)
{
    cJSON *o = chunk_head(j);
    cJSON *choices = cJSON_AddArrayToObject(o, "choices");
    cJSON *ch = cJSON_CreateObject();
    add_int(ch, "index", j->index);
    if (j->kind == K_COMPLETION) {
        cJSON_AddStringToObject(ch, "text", delta ? delta : "");
        if (cJSON_IsObject(lp)) cJSON_AddItemToObject(ch, "logprobs", fc_oai_completion_logprobs(lp, lp_from, lp_to));
        else cJSON_AddNullToObject(ch, "logprobs");
    } else {
        cJSON *d = cJSON_AddObjectToObject(ch, "delta");
        if (role) cJSON_AddStringToObject(d, "role", role);
        if (delta) cJSON_AddStringToObject(d, "content", delta);
        if (j->chat_logprobs) {
            if (cJSON_IsObject(lp) && lp_to > lp_from)
                cJSON_AddItemToObject(ch, "logprobs", fc_oai_chat_logprobs(lp, lp_from, lp_to));
            else cJSON_AddNullToObject(ch, "logprobs");
        }
    }
    if (finish) cJSON_AddStringToObject(ch, "finish_reason", finish);
    else cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    chunk_tail(j, o);
    return o;
}

/* The error event FastChat sends ({"text","error_code"}) with an OpenAI
 * "error" object that makes the official clients raise; then [DONE]. */
static void job_fail(job *j, const char *text, int code)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", text);
    add_int(o, "error_code", code);
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", text);
    cJSON_AddStringToObject(e, "type", fc_error_code_type(code));
    cJSON_AddNullToObject(e, "param");
    add_int(e, "code", code);
    job_event(j, o);
    job_write(j, "data: [DONE]\n\n", 14);
    j->done = true;
}

/* Holds a finish event (takes ev) until every choice has ended. */
static void defer_event(job *j, cJSON *ev)
{
    char *s = json_print(ev);
    cJSON_Delete(ev);
    fc_str_puts(&j->deferred, "data: ");
    fc_str_puts(&j->deferred, s);
    fc_str_puts(&j->deferred, "\n\n");
    free(s);
}

/* The parser's events as OpenAI's chunks: content deltas, then per call a
 * chunk with index, id, type, name and arguments "", then argument
 * fragments. */
static void job_tool_ev(const fc_tool_ev *ev, void *user)
{
    job *j = user;
    /* the logprobs of the tokens read so far go with the next event */
    int lp_from = j->lp_sent;
    if (j->tool_lp_to > j->lp_sent) j->lp_sent = j->tool_lp_to;
    if (ev->kind == FC_TOOL_EV_CONTENT) {
        char *text = fc_xasprintf("%.*s", (int)ev->len, ev->text);
        job_event(j, choice_event(j, NULL, text, j->tool_lp, lp_from, j->lp_sent, NULL));
        free(text);
        return;
    }
    cJSON *o = choice_event(j, NULL, NULL, j->tool_lp, lp_from, j->lp_sent, NULL);
    cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(json_get(o, "choices"), 0), "delta");
    cJSON *call = cJSON_CreateObject();
    add_int(call, "index", ev->index);
    if (ev->kind == FC_TOOL_EV_START) {
        cJSON_AddStringToObject(call, "id", ev->id);
        cJSON_AddStringToObject(call, "type", "function");
    }
    cJSON *fn = cJSON_AddObjectToObject(call, "function");
    if (ev->kind == FC_TOOL_EV_START) cJSON_AddStringToObject(fn, "name", ev->name);
    char *args = fc_xasprintf("%.*s", (int)ev->len, ev->text);
    cJSON_AddStringToObject(fn, "arguments", args);
    free(args);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"), call);
    job_event(j, o);
}

/* job_chunk with tools: the delta goes through the parser; the finish
 * reason is "tool_calls" when a call was made. */
static bool job_tool_chunk(job *j, const char *delta, const char *finish, const cJSON *lp, int lp_to)
{
    j->tool_lp = cJSON_IsObject(lp) ? lp : NULL;
    j->tool_lp_to = j->tool_lp ? lp_to : 0;
    if (delta) fc_tool_parser_feed(j->tp, delta, strlen(delta));
    if (finish && !j->saw_finish) {
        fc_tool_parser_finish(j->tp);
        const char *f = !strcmp(finish, "stop") && fc_tool_parser_n_calls(j->tp) ? "tool_calls" : finish;
        int lp_from = j->lp_sent; /* what no event took yet */
        if (j->tool_lp_to > j->lp_sent) j->lp_sent = j->tool_lp_to;
        defer_event(j, choice_event(j, NULL, NULL, j->tool_lp, lp_from, j->lp_sent, f));
    }
    if (finish) j->saw_finish = true;
    return !j->client_gone;
}

/* Handles one worker chunk; false to stop relaying. */
static bool job_chunk(job *j, const char *s, size_t n)
{
    cJSON *c = cJSON_ParseWithLength(s, n);
    if (!cJSON_IsObject(c)) {
        cJSON_Delete(c);
        char *msg = fc_xasprintf("%s\n\n(malformed chunk from worker %s)", FC_SERVER_ERROR_MSG, j->addr);
        job_fail(j, msg, FC_EC_INTERNAL_ERROR);
        free(msg);
        return false;
    }
    j->saw_chunk = true;
    const cJSON *code = json_get(c, "error_code");
    if (cJSON_IsNumber(code) && code->valueint != 0) {
        const cJSON *t = json_get(c, "text");
        job_fail(j, cJSON_IsString(t) ? t->valuestring : FC_SERVER_ERROR_MSG, code->valueint);
        cJSON_Delete(c);
        return false;
    }
    const cJSON *text = json_get(c, "text");
    const char *t = cJSON_IsString(text) ? text->valuestring : "";
    fc_oai_strip_fffd(t, strlen(t), &j->scratch);
    const char *delta = NULL;
    if (j->scratch.len > j->prev.len) {
        size_t from = j->prev.len;
        /* never start inside a UTF-8 sequence, should the text not extend the last */
        while (from < j->scratch.len && ((unsigned char)j->scratch.p[from] & 0xC0) == 0x80) from++;
        if (from < j->scratch.len) delta = j->scratch.p + from;
        fc_str_truncate(&j->prev, 0);
        fc_str_putn(&j->prev, j->scratch.p, j->scratch.len);
    }
    const char *finish = fc_oai_finish_of(c, NULL);
    const cJSON *lp = json_get(c, "logprobs");
    int lp_to = cJSON_IsObject(lp) ? fc_oai_logprobs_len(lp) : 0;
    if (lp_to < j->lp_sent) lp_to = j->lp_sent;
    if (delta && j->index == 0) { /* /metrics */
        j->t_last = fc_time_sec();
        if (j->t_first == 0) j->t_first = j->t_last;
    }
    cJSON_Delete(j->last);
    j->last = c;
    if (j->tp) return job_tool_chunk(j, delta, finish, lp, lp_to);
    if (!delta) {
        if (finish && !j->saw_finish) {
            cJSON *ev;
            if (j->kind == K_COMPLETION) {
                ev = choice_event(j, NULL, "", lp, j->lp_sent, lp_to, finish);
            } else { /* delta {} */
                ev = choice_event(j, NULL, NULL, lp, j->lp_sent, lp_to, finish);
            }
            j->lp_sent = lp_to;
            defer_event(j, ev);
        }
        if (finish) j->saw_finish = true;
        return true;
    }
    cJSON *ev = choice_event(j, NULL, delta, lp, j->lp_sent, lp_to, finish);
    j->lp_sent = lp_to;
    if (finish) j->saw_finish = true;
    return job_event(j, ev);
}

static bool job_msg(const char *msg, size_t len, void *user)
{
    job *j = user;
    return len == 0 || job_chunk(j, msg, len);
}

static bool job_on_data(const char *data, size_t len, void *user)
{
    job *j = user;
    j->since = fc_time_sec();
    if (j->done || j->client_gone) return false;
    return fc_nulsplit_feed(j->split, data, len, job_msg, j);
}

static void job_on_disconnect(void *user)
{
    job *j = user; /* job_keep_going sees it within 100 ms and aborts the worker request */
    atomic_store(&j->gone_flag, true);
}

/* The relay's watch (every 100 ms): the client, the server, the worker. */
static bool job_keep_going(void *user)
{
    job *j = user;
    if (j->done || j->client_gone || atomic_load(&j->gone_flag)) return false;
    if (atomic_load(&j->a->stopping)) {
        j->stop_why = "the server is shutting down";
        return false;
    }
    if (fc_time_sec() - j->since < STALL_PROBE_S) return true;
    if (fc_oai_worker_alive(j->addr)) {
        j->since = fc_time_sec();
        return true;
    }
    j->stop_why = "the worker stopped answering";
    return false;
}

static void *job_main(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->n_payloads && !j->done && !j->client_gone; i++) {
        j->index = i;
        fc_nulsplit_free(j->split);
        j->split = fc_nulsplit_new(0);
        fc_str_truncate(&j->prev, 0);
        j->lp_sent = 0;
        j->saw_finish = j->saw_chunk = false;
        cJSON_Delete(j->last);
        j->last = NULL;
        fc_tool_parser_free(j->tp);
        j->tp = j->tools ? fc_tool_parser_new(job_tool_ev, j) : NULL;
        if (j->tp) fc_tool_parser_set_tools(j->tp, j->tool_defs);
        if (j->kind != K_COMPLETION) {
            cJSON *first = choice_event(j, "assistant", NULL, NULL, 0, 0, NULL);
            if (!job_event(j, first)) break;
        }
        if (atomic_load(&j->a->stopping)) {
            j->stop_why = "the server is shutting down";
            char *msg = fc_xasprintf("%s\n\n(%s)", FC_SERVER_ERROR_MSG, j->stop_why);
            job_fail(j, msg, FC_EC_INTERNAL_ERROR);
            free(msg);
            break;
        }
        char *url = fc_xasprintf("%s/worker_generate_stream", j->addr);
        fc_http_response resp = {0};
        fc_http_call call = {.keep_going = job_keep_going, .user = j};
        j->since = fc_time_sec();
        bool ok = fc_http_post_stream_ex(url, j->payloads[i], strlen(j->payloads[i]), j->a->worker_timeout_s, &call,
                                         job_on_data, j, &resp);
        free(url);
        size_t tail_len = 0;
        const char *tail = fc_nulsplit_tail(j->split, &tail_len);
        if (!j->done && !j->client_gone && ok && !fc_nulsplit_error(j->split) && tail_len)
            job_chunk(j, tail, tail_len); /* a last chunk without its NUL */
        if (!j->done && !j->client_gone) {
            if (!ok || resp.status != 200 || !j->saw_finish) {
                char *msg;
                if (j->stop_why)
                    msg = fc_xasprintf("%s\n\n(worker %s: %s)", FC_SERVER_ERROR_MSG, j->addr, j->stop_why);
                else if (fc_nulsplit_error(j->split))
                    msg = fc_xasprintf("%s\n\n(worker %s sent an oversized chunk)", FC_SERVER_ERROR_MSG, j->addr);
                else if (!ok)
                    msg = fc_xasprintf("%s\n\n(worker %s failed mid-stream: %s)", FC_SERVER_ERROR_MSG, j->addr, resp.error);
                else if (resp.status != 200)
                    msg = fc_xasprintf("%s\n\n(worker %s: HTTP %d)", FC_SERVER_ERROR_MSG, j->addr, resp.status);
                else
                    msg = fc_xasprintf("%s\n\n(worker %s ended the stream without a finish reason)", FC_SERVER_ERROR_MSG,
                                    j->addr);
                FC_LOG_WARN("api: %s", msg);
                job_fail(j, msg, FC_EC_INTERNAL_ERROR);
                free(msg);
            } else if (j->last) {
                fc_oai_usage_add(&j->u, j->last);
            }
        }
        fc_http_response_free(&resp);
    }
    if (!j->done && !j->client_gone) {
        if (j->deferred.len) job_write(j, j->deferred.p, j->deferred.len);
        if (j->include_usage) {
            cJSON *o = chunk_head(j);
            cJSON_AddArrayToObject(o, "choices");
            cJSON_AddItemToObject(o, "usage", fc_oai_usage_json(&j->u, true));
            job_event(j, o);
        }
        job_write(j, "data: [DONE]\n\n", 14);
        fc_ollama_observe(j->a->ollama, j->model, fc_json_long(j->u.prompt), fc_json_long(j->u.completion),
                          j->t_first > 0 ? j->t_first - j->t0 : -1,
                          j->t_first > 0 && j->n_payloads == 1 ? j->t_last - j->t_first : -1);
    }
    fc_http_stream_close(j->st);

    fc_openai_api *a = j->a;
    for (int i = 0; i < j->n_payloads; i++) free(j->payloads[i]);
    free(j->payloads);
    free(j->model);
    free(j->addr);
    fc_nulsplit_free(j->split);
    fc_str_free(&j->prev);
    fc_str_free(&j->scratch);
    fc_str_free(&j->deferred);
    cJSON_Delete(j->last);
    fc_tool_parser_free(j->tp);
    free(j);
    pthread_mutex_lock(&a->mu);
    a->n_jobs--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

void fc_oai_generate_streaming(fc_openai_api *a, const gen_req *r, const prep *p, fc_http_reply *reply)
{
    job *j = fc_xcalloc(1, sizeof *j);
    j->a = a;
    j->kind = r->kind;
    char id[32];
    fc_oai_short_uuid(id);
    snprintf(j->id, sizeof j->id, "%s-%s", r->kind == K_COMPLETION ? "cmpl" : "chatcmpl", id);
    j->created = (double)time(NULL);
    j->model = fc_xstrdup(r->model);
    j->addr = fc_xstrdup(p->addr);
    j->include_usage = r->include_usage;
    j->chat_logprobs = r->chat_logprobs;
    j->tools = p->tools_active;
    j->tool_defs = r->tools.tools;
    j->t0 = fc_oai_metrics_t0 > 0 ? fc_oai_metrics_t0 : fc_time_sec();
    atomic_init(&j->gone_flag, false);
    j->n_payloads = p->n_prompts * (int)r->n;
    j->payloads = fc_xcalloc((size_t)j->n_payloads, sizeof(char *));
    for (int k = 0; k < p->n_prompts; k++)
        for (int i = 0; i < r->n; i++)
            j->payloads[k * r->n + i] =
                fc_oai_with_tool_grammar(fc_oai_prompt_payload(r, p->conv, p->prompts[k], k, p->max_new_tokens, i), p);
    FC_LOG_DEBUG("api: %d x /worker_generate_stream on %s: %s", j->n_payloads, j->addr, j->payloads[0]);
    j->st = fc_http_reply_stream(reply, 200, "text/event-stream");
    fc_http_stream_on_disconnect(j->st, job_on_disconnect, j);

    pthread_mutex_lock(&a->mu);
    a->n_jobs++;
    pthread_mutex_unlock(&a->mu);
    job_main(j); /* on this handler's own thread: the stream is already open */
}
