/*
 * openai_embed.c: /v1/embeddings and /v1/engines/{model}/embeddings
 * (FastChat's create_embeddings: inputs batched to the worker).
 * Private to the OpenAI API server: see openai_impl.h and openai_api.h.
 */
#include "serve/openai_impl.h"

bool fc_oai_parse_embed_req(fc_openai_api *a, const fc_http_request *hr, const char *url_model, gen_req *r,
                            api_err *e)
{
    memset(r, 0, sizeof *r);
    r->kind = K_EMBEDDINGS;
    if (fc_json_has_nul(hr->body, hr->body_len)) {
        fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, NULL, "1 validation error for EmbeddingsRequest\nbody\n  %s",
                FC_JSON_NUL_MSG);
        return false;
    }
    r->body = cJSON_ParseWithLength(hr->body, hr->body_len);
    if (!cJSON_IsObject(r->body)) {
        fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, NULL, "1 validation error for EmbeddingsRequest\nbody\n  %s",
                r->body ? "Input should be a valid dictionary" : "JSON decode error");
        return false;
    }
    const cJSON *model = json_get(r->body, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) {
        fc_oai_type_error(e, r->kind, "model", "Input should be a valid string");
        return false;
    }
    r->model = cJSON_IsString(model) ? model->valuestring : url_model;
    if (!r->model) {
        fc_oai_type_error(e, r->kind, "model", "Field required");
        return false;
    }
    if (!fc_oai_read_texts(r, "input", e)) return false;
    if (r->n_prompts > MAX_EMBED_INPUTS) {
        fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "input", "%d is greater than the maximum of %d - 'input'",
                r->n_prompts, MAX_EMBED_INPUTS);
        return false;
    }
    const cJSON *fmt = json_get(r->body, "encoding_format");
    if (fmt && !cJSON_IsNull(fmt) && !cJSON_IsString(fmt)) {
        fc_oai_type_error(e, r->kind, "encoding_format", "Input should be a valid string");
        return false;
    }
    r->encoding_format = cJSON_IsString(fmt) ? fmt->valuestring : NULL;
    return !a || fc_oai_check_model(a, r->model, e);
}

char *fc_oai_embed_payload(const gen_req *r, int start, int bs)
{
    cJSON *pl = cJSON_CreateObject();
    cJSON_AddStringToObject(pl, "model", r->model);
    cJSON *in = cJSON_AddArrayToObject(pl, "input");
    for (int i = start; i < r->n_prompts && i < start + bs; i++)
        cJSON_AddItemToArray(in, cJSON_CreateString(r->prompts[i]));
    if (r->encoding_format) cJSON_AddStringToObject(pl, "encoding_format", r->encoding_format);
    else cJSON_AddNullToObject(pl, "encoding_format");
    char *payload = json_print(pl);
    cJSON_Delete(pl);
    return payload;
}

/* What an embeddings call to a worker watches (every 100 ms). */
typedef struct embed_watch {
    fc_openai_api *a;
    const fc_http_request *hr;
    const char *addr;
    double since;
    bool stopped, dead;
} embed_watch;

static bool embed_keep_going(void *user)
{
    embed_watch *w = user;
    if (fc_oai_must_stop(w->a, w->hr)) return !(w->stopped = true);
    if (fc_time_sec() - w->since < STALL_PROBE_S) return true;
    if (fc_oai_worker_alive(w->addr)) {
        w->since = fc_time_sec();
        return true;
    }
    w->stopped = w->dead = true;
    return false;
}

void fc_oai_embeddings(fc_openai_api *a, const fc_http_request *hr, fc_http_reply *reply, const char *url_model)
{
    gen_req r;
    api_err e = {0};
    cJSON *out = NULL;
    if (!fc_oai_parse_embed_req(a, hr, url_model, &r, &e)) goto done;

    /* the token bound before any compute: a token is at least one byte (plus
     * the few special ones a tokenizer adds), so only long inputs are counted */
    size_t bytes = 0;
    for (int i = 0; i < r.n_prompts; i++) bytes += strlen(r.prompts[i]) + 4;
    if (bytes > MAX_EMBED_TOKENS) {
        char *addr = fc_oai_worker_address(a, r.model, &e);
        long total = 0;
        for (int i = 0; addr && i < r.n_prompts && !e.http && total <= MAX_EMBED_TOKENS; i++) {
            if (fc_oai_must_stop(a, hr)) {
                fc_oai_err_stopped(a, &e);
                break;
            }
            long count = 0;
            if (fc_oai_worker_number(a, addr, "/count_token", r.model, r.prompts[i], "count", &count, &e) != UP_OK) break;
            total += count;
        }
        free(addr);
        if (!e.http && total > MAX_EMBED_TOKENS)
            fc_oai_err_set(&e, 400, FC_EC_PARAM_OUT_OF_RANGE, "input",
                    "the inputs hold more than %d tokens: at most %d per request - 'input'", MAX_EMBED_TOKENS,
                    MAX_EMBED_TOKENS);
        if (e.http) goto done;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    double tokens = 0;
    int bs = a->embed_batch;
    for (int start = 0; start < r.n_prompts && !e.http; start += bs) {
        if (fc_oai_must_stop(a, hr)) {
            fc_oai_err_stopped(a, &e);
            break;
        }
        char *payload = fc_oai_embed_payload(&r, start, bs);
        cJSON *res = NULL;
        for (int attempt = 0; attempt < 3 && !e.http; attempt++) {
            if (attempt > 0 && fc_oai_must_stop(a, hr)) { /* the worker refused: stopping */
                fc_oai_err_stopped(a, &e);
                break;
            }
            char *addr = fc_oai_worker_address(a, r.model, &e);
            if (!addr) break;
            char *why = NULL;
            embed_watch wt = {.a = a, .hr = hr, .addr = addr, .since = fc_time_sec()};
            fc_http_call call = {.keep_going = embed_keep_going, .user = &wt};
            enum up_status st =
                fc_oai_up_post_call(addr, "/worker_get_embeddings", payload, GENERATE_TIMEOUT_S, &call, &res, &why);
            if (wt.stopped) {
                free(why);
                free(addr);
                cJSON_Delete(res);
                res = NULL;
                if (wt.dead) fc_oai_err_set(&e, 400, FC_EC_INTERNAL_ERROR, NULL, "%s\n\n(worker stopped answering)",
                                     FC_SERVER_ERROR_MSG);
                else fc_oai_err_stopped(a, &e);
                break;
            }
            if (st == UP_DOWN) {
                FC_LOG_WARN("api: %s; refreshing the controller", why);
                free(why);
                free(addr);
                fc_oai_ctl_refresh(a);
                continue;
            }
            if (st != UP_OK) fc_oai_err_set(&e, 400, FC_EC_INTERNAL_ERROR, NULL, "%s", why);
            free(why);
            free(addr);
            break;
        }
        free(payload);
        if (!res) {
            fc_oai_err_set(&e, 500, FC_EC_CONTROLLER_NO_WORKER, "model", "No available worker for %s", r.model);
            break;
        }
        if (e.http) {
            cJSON_Delete(res);
            break;
        }
        const cJSON *code = json_get(res, "error_code"), *emb = json_get(res, "embedding");
        if (cJSON_IsNumber(code) && code->valueint != 0) {
            const cJSON *t = json_get(res, "text");
            fc_oai_err_set(&e, 400, code->valueint, NULL, "%s", cJSON_IsString(t) ? t->valuestring : "worker error");
        } else if (!cJSON_IsArray(emb)) {
            fc_oai_err_set(&e, 400, FC_EC_INTERNAL_ERROR, NULL, "worker: malformed /worker_get_embeddings answer");
        } else {
            int i = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, emb) {
                cJSON *d = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "object", "embedding");
                cJSON_AddItemToObject(d, "embedding", cJSON_Duplicate(v, true));
                add_int(d, "index", start + i++);
                cJSON_AddItemToArray(data, d);
            }
            const cJSON *tn = json_get(res, "token_num");
            if (cJSON_IsNumber(tn)) tokens += tn->valuedouble;
            if (tokens > MAX_EMBED_TOKENS)
                fc_oai_err_set(&e, 400, FC_EC_PARAM_OUT_OF_RANGE, "input",
                        "the inputs hold more than %d tokens: at most %d per request - 'input'", MAX_EMBED_TOKENS,
                        MAX_EMBED_TOKENS);
        }
        cJSON_Delete(res);
    }
    if (!e.http) {
        cJSON_AddStringToObject(out, "model", r.model);
        fc_ollama_observe(a->ollama, r.model, fc_json_long(tokens), 0, -1, -1);
        usage u = {.prompt = tokens, .total = tokens};
        cJSON_AddItemToObject(out, "usage", fc_oai_usage_json(&u, false));
    }
done:
    if (e.http) {
        fc_oai_reply_err(reply, &e);
        cJSON_Delete(out);
    } else {
        fc_oai_reply_obj(reply, out);
    }
    fc_oai_err_free(&e);
    fc_oai_req_free(&r);
}

void fc_oai_h_embeddings(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    if (fc_oai_auth_ok(user, req, reply)) fc_oai_embeddings(user, req, reply, NULL);
}
