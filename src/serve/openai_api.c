/*
 * openai_api.c: FastChat's OpenAI-compatible API server (openai_api_server.py)
 * in C. What it serves, and where it differs from FastChat, is in
 * openai_api.h. This file never computes: it validates, asks the controller
 * for a worker, renders the prompt with the worker's template, and relays the
 * worker's answer (NUL-delimited JSON holding the cumulative text) to the
 * client as OpenAI JSON or Server-Sent Events.
 *
 * Layout: helpers, errors, upstream calls (controller, worker), the small
 * routes, the offline check and the server's lifetime here; the other route
 * families in openai_request.c, openai_generate.c, openai_stream.c and
 * openai_embed.c (see openai_impl.h).
 */
#include "serve/openai_impl.h"

/* ---- helpers ---- */

static double env_num(const char *name, double dflt)
{
    const char *s = getenv(name);
    if (!s || !*s) return dflt;
    char *end;
    double v = strtod(s, &end);
    return (end != s && v > 0) ? v : dflt;
}

void fc_oai_short_uuid(char *out /* >= 23 bytes */)
{
    static const char alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    unsigned char r[22];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out ^ (uint64_t)(fc_time_sec() * 1e9);
        for (int i = 0; i < 22; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            r[i] = (unsigned char)(x >> 56);
        }
    }
    for (int i = 0; i < 22; i++) out[i] = alphabet[r[i] % 57];
    out[22] = '\0';
}

void fc_oai_strip_fffd(const char *s, size_t n, fc_str *out)
{
    fc_str_truncate(out, 0);
    fc_str_putn(out, "", 0);
    size_t i = 0, start = 0;
    while (i + 2 < n) {
        if ((unsigned char)s[i] == 0xEF && (unsigned char)s[i + 1] == 0xBF && (unsigned char)s[i + 2] == 0xBD) {
            fc_str_putn(out, s + start, i - start);
            i += 3;
            start = i;
        } else {
            i++;
        }
    }
    fc_str_putn(out, s + start, n - start);
}

/* ---- errors ---- */

void fc_oai_err_set(api_err *e, int http, int code, const char *param, const char *fmt, ...)
{
    if (e->http) return; /* the first error wins */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    e->msg = fc_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(e->msg, (size_t)n + 1, fmt, ap);
    va_end(ap);
    e->http = http;
    e->code = code;
    e->param = param;
}

void fc_oai_err_free(api_err *e)
{
    free(e->msg);
    memset(e, 0, sizeof *e);
}

/* FastChat's ErrorResponse {"object":"error","message","code"} plus an
 * OpenAI error object, which the official clients read. */
static cJSON *error_body(const char *msg, int code, const char *param)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "error");
    cJSON_AddStringToObject(o, "message", msg);
    add_int(o, "code", code);
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", fc_error_code_type(code));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    add_int(e, "code", code);
    return o;
}

void fc_oai_reply_err(fc_http_reply *r, const api_err *e)
{
    cJSON *o = error_body(e->msg ? e->msg : "", e->code, e->param);
    char *s = json_print(o);
    fc_http_reply_json(r, e->http, s);
    free(s);
    cJSON_Delete(o);
}

void fc_oai_reply_obj(fc_http_reply *r, cJSON *o)
{
    char *s = json_print(o);
    fc_http_reply_json(r, 200, s);
    free(s);
    cJSON_Delete(o);
}

bool fc_oai_auth_ok(const fc_openai_api *a, const fc_http_request *req, fc_http_reply *reply)
{
    if (a->n_keys == 0) return true;
    const char *h = fc_http_header(req, "Authorization");
    if (h) {
        while (*h == ' ') h++;
        if (!strncasecmp(h, "bearer", 6) && (h[6] == ' ' || h[6] == '\t')) {
            const char *k = h + 6;
            while (*k == ' ' || *k == '\t') k++;
            size_t n = strlen(k);
            while (n && (k[n - 1] == ' ' || k[n - 1] == '\t')) n--;
            for (int i = 0; i < a->n_keys; i++)
                if (strlen(a->keys[i]) == n && !memcmp(a->keys[i], k, n)) return true;
        }
    }
    if (reply)
        fc_http_reply_json(reply, 401,
                       "{\"detail\":{\"error\":{\"message\":\"\",\"type\":\"invalid_request_error\",\"param\":null,"
                       "\"code\":\"invalid_api_key\"}}}");
    return false;
}

bool fc_openai_api_auth(const fc_openai_api *a, const fc_http_request *req, fc_http_reply *reply)
{
    return fc_oai_auth_ok(a, req, reply);
}

/* ---- upstream calls ---- */

enum up_status fc_oai_up_post_call(const char *base, const char *path, const char *json, double timeout_s,
                                   const fc_http_call *call, cJSON **out, char **why)
{
    char *url = fc_xasprintf("%s%s", base, path);
    fc_http_response r = {0};
    enum up_status st = UP_OK;
    *out = NULL;
    if (!fc_http_post_json_ex(url, json, strlen(json), timeout_s, call, &r) || r.status == 0) {
        st = UP_DOWN;
        *why = fc_xasprintf("%s: %s", url, r.error[0] ? r.error : "no response");
    } else if (r.status != 200) {
        st = UP_HTTP; /* FastChat's fetch_remote reports the reason phrase */
        *why = r.status == 404 ? fc_xstrdup("Not Found")
               : r.status == 500 ? fc_xstrdup("Internal Server Error")
                                 : fc_xasprintf("HTTP %d", r.status);
        /* our worker's 400s say why in "detail" (an embedding-only model asked to chat) */
        cJSON *eb = r.status == 400 ? cJSON_ParseWithLength(r.body ? r.body : "", r.len) : NULL;
        const cJSON *det = cJSON_GetObjectItemCaseSensitive(eb, "detail");
        if (cJSON_IsString(det)) {
            free(*why);
            *why = fc_xstrdup(det->valuestring);
        }
        cJSON_Delete(eb);
    } else {
        *out = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
        if (!*out) {
            st = UP_BAD;
            *why = fc_xasprintf("%s: malformed JSON answer", url);
        }
    }
    fc_http_response_free(&r);
    free(url);
    return st;
}

enum up_status fc_oai_up_post(const char *base, const char *path, const char *json, double timeout_s, cJSON **out,
                              char **why)
{
    return fc_oai_up_post_call(base, path, json, timeout_s, NULL, out, why);
}

/* The controller's model list (a cJSON array the caller frees). */
static cJSON *ctl_list_models(fc_openai_api *a, api_err *e)
{
    cJSON *o = NULL;
    char *why = NULL;
    if (fc_oai_up_post(a->ctl, "/list_models", "{}", a->worker_timeout_s, &o, &why) != UP_OK) {
        fc_oai_err_set(e, 500, FC_EC_INTERNAL_ERROR, NULL, "controller unavailable: %s", why);
        free(why);
        return NULL;
    }
    cJSON *models = cJSON_DetachItemFromObjectCaseSensitive(o, "models");
    cJSON_Delete(o);
    if (!cJSON_IsArray(models)) {
        cJSON_Delete(models);
        fc_oai_err_set(e, 500, FC_EC_INTERNAL_ERROR, NULL, "controller: malformed /list_models answer");
        return NULL;
    }
    return models;
}

void fc_oai_ctl_refresh(fc_openai_api *a)
{
    cJSON *o = NULL;
    char *why = NULL;
    if (fc_oai_up_post(a->ctl, "/refresh_all_workers", "{}", a->worker_timeout_s, &o, &why) != UP_OK) {
        FC_LOG_WARN("api: refresh_all_workers: %s", why);
        free(why);
    }
    cJSON_Delete(o);
}

bool fc_oai_check_model(fc_openai_api *a, const char *model, api_err *e)
{
    cJSON *models = ctl_list_models(a, e);
    if (!models) return false;
    bool found = false;
    fc_str list = FC_STR_INIT;
    const cJSON *it;
    cJSON_ArrayForEach(it, models) {
        if (!cJSON_IsString(it)) continue;
        if (!strcmp(it->valuestring, model)) found = true;
        if (list.len) fc_str_puts(&list, "&&");
        fc_str_puts(&list, it->valuestring);
    }
    if (!found)
        fc_oai_err_set(e, 400, FC_EC_INVALID_MODEL, "model", "Only %s allowed now, your model %s", list.p ? list.p : "", model);
    fc_str_free(&list);
    cJSON_Delete(models);
    return found;
}

char *fc_oai_worker_address(fc_openai_api *a, const char *model, api_err *e)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    char *body = json_print(req);
    cJSON_Delete(req);
    cJSON *o = NULL;
    char *why = NULL;
    enum up_status st = fc_oai_up_post(a->ctl, "/get_worker_address", body, a->worker_timeout_s, &o, &why);
    free(body);
    if (st != UP_OK) {
        fc_oai_err_set(e, 500, FC_EC_INTERNAL_ERROR, NULL, "controller unavailable: %s", why);
        free(why);
        return NULL;
    }
    const cJSON *addr = json_get(o, "address");
    char *out = NULL;
    if (cJSON_IsString(addr) && *addr->valuestring) out = fc_xstrdup(addr->valuestring);
    else fc_oai_err_set(e, 500, FC_EC_CONTROLLER_NO_WORKER, "model", "No available worker for %s", model);
    cJSON_Delete(o);
    return out;
}

enum up_status fc_oai_worker_number(fc_openai_api *a, const char *addr, const char *path, const char *model,
                                    const char *prompt, const char *field, long *v, api_err *e)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    if (prompt) cJSON_AddStringToObject(req, "prompt", prompt);
    char *body = json_print(req);
    cJSON_Delete(req);
    cJSON *o = NULL;
    char *why = NULL;
    enum up_status st = fc_oai_up_post(addr, path, body, a->worker_timeout_s, &o, &why);
    free(body);
    if (st == UP_OK) {
        const cJSON *n = json_get(o, field);
        if (cJSON_IsNumber(n)) {
            *v = fc_json_long(n->valuedouble);
        } else {
            st = UP_BAD;
            const cJSON *t = json_get(o, "text");
            why = fc_xasprintf("%s%s: %s", addr, path, cJSON_IsString(t) ? t->valuestring : "malformed answer");
        }
    }
    if (st != UP_OK && st != UP_DOWN) fc_oai_err_set(e, 400, FC_EC_INTERNAL_ERROR, NULL, "%s", why);
    free(why);
    cJSON_Delete(o);
    return st;
}

enum up_status fc_oai_worker_conv(fc_openai_api *a, const char *addr, const char *model, fc_conv **out, api_err *e)
{
    char *key = fc_xasprintf("%s\n%s", addr, model);
    *out = NULL;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < a->n_convs; i++)
        if (!strcmp(a->conv_keys[i], key)) {
            *out = fc_conv_copy(a->convs[i]);
            break;
        }
    pthread_mutex_unlock(&a->mu);
    if (*out) {
        free(key);
        return UP_OK;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    char *body = json_print(req);
    cJSON_Delete(req);
    cJSON *o = NULL;
    char *why = NULL;
    enum up_status st = fc_oai_up_post(addr, "/worker_get_conv_template", body, a->worker_timeout_s, &o, &why);
    free(body);
    fc_conv *conv = NULL;
    if (st == UP_OK) {
        conv = fc_conv_from_json(json_get(o, "conv"));
        if (!conv) {
            st = UP_BAD;
            why = fc_xasprintf("%s/worker_get_conv_template: unusable template: %s", addr, fc_last_error());
        }
    }
    cJSON_Delete(o);
    if (st != UP_OK) {
        if (st != UP_DOWN) fc_oai_err_set(e, 400, FC_EC_INTERNAL_ERROR, NULL, "%s", why);
        free(why);
        free(key);
        return st;
    }
    pthread_mutex_lock(&a->mu);
    if (a->n_convs == a->cap_convs) {
        a->cap_convs = a->cap_convs ? 2 * a->cap_convs : 8;
        a->conv_keys = fc_xrealloc(a->conv_keys, sizeof(char *) * (size_t)a->cap_convs);
        a->convs = fc_xrealloc(a->convs, sizeof(fc_conv *) * (size_t)a->cap_convs);
    }
    a->conv_keys[a->n_convs] = key;
    a->convs[a->n_convs++] = conv;
    *out = fc_conv_copy(conv);
    pthread_mutex_unlock(&a->mu);
    return UP_OK;
}

static void h_models(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_openai_api *a = user;
    if (!fc_oai_auth_ok(a, req, reply)) return;
    fc_oai_ctl_refresh(a);
    api_err e = {0};
    cJSON *models = ctl_list_models(a, &e);
    if (!models) {
        fc_oai_reply_err(reply, &e);
        fc_oai_err_free(&e);
        return;
    }
    int n = cJSON_GetArraySize(models);
    const char **names = fc_xcalloc((size_t)(n ? n : 1), sizeof(char *));
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, models) if (cJSON_IsString(it)) names[k++] = it->valuestring;
    for (int i = 1; i < k; i++) /* models.sort() */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(out, "data");
    double now = (double)time(NULL);
    for (int i = 0; i < k; i++) {
        cJSON *card = cJSON_CreateObject();
        cJSON_AddStringToObject(card, "id", names[i]);
        cJSON_AddStringToObject(card, "object", "model");
        add_int(card, "created", now);
        cJSON_AddStringToObject(card, "owned_by", "fastchat");
        cJSON_AddStringToObject(card, "root", names[i]);
        cJSON_AddNullToObject(card, "parent");
        cJSON *perms = cJSON_AddArrayToObject(card, "permission");
        cJSON *perm = cJSON_CreateObject();
        char pid[32];
        fc_oai_short_uuid(pid);
        char *perm_id = fc_xasprintf("modelperm-%s", pid);
        cJSON_AddStringToObject(perm, "id", perm_id);
        free(perm_id);
        cJSON_AddStringToObject(perm, "object", "model_permission");
        add_int(perm, "created", now);
        cJSON_AddBoolToObject(perm, "allow_create_engine", false);
        cJSON_AddBoolToObject(perm, "allow_sampling", true);
        cJSON_AddBoolToObject(perm, "allow_logprobs", true);
        cJSON_AddBoolToObject(perm, "allow_search_indices", true);
        cJSON_AddBoolToObject(perm, "allow_view", true);
        cJSON_AddBoolToObject(perm, "allow_fine_tuning", false);
        cJSON_AddStringToObject(perm, "organization", "*");
        cJSON_AddNullToObject(perm, "group");
        cJSON_AddBoolToObject(perm, "is_blocking", false);
        cJSON_AddItemToArray(perms, perm);
        cJSON_AddItemToArray(data, card);
    }
    free(names);
    cJSON_Delete(models);
    fc_oai_reply_obj(reply, out);
}

static void h_engines(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    static const char prefix[] = "/v1/engines/", suffix[] = "/embeddings";
    const char *p = req->path + strlen(prefix);
    size_t n = strlen(p), ns = strlen(suffix);
    if (strncmp(req->path, prefix, strlen(prefix)) || n <= ns || strcmp(p + n - ns, suffix)) {
        fc_http_reply_json(reply, 404, "{\"detail\":\"Not Found\"}");
        return;
    }
    if (!fc_oai_auth_ok(user, req, reply)) return;
    char *model = fc_xmalloc(n - ns + 1);
    memcpy(model, p, n - ns);
    model[n - ns] = '\0';
    fc_oai_embeddings(user, req, reply, model);
    free(model);
}

static void h_token_check(const fc_http_request *req, fc_http_reply *reply, void *user)
{
    fc_openai_api *a = user;
    if (!fc_oai_auth_ok(a, req, reply)) return;
    api_err e = {0};
    cJSON *body = fc_json_has_nul(req->body, req->body_len) ? NULL : cJSON_ParseWithLength(req->body, req->body_len);
    const cJSON *prompts = json_get(body, "prompts");
    cJSON *out = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(out, "prompts");
    if (!cJSON_IsArray(prompts)) {
        fc_oai_err_set(&e, 400, FC_EC_VALIDATION_TYPE_ERROR, "prompts",
                "1 validation error for APITokenCheckRequest\nprompts\n  Input should be a list of "
                "{\"model\", \"prompt\", \"max_tokens\"} objects");
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, prompts) {
        if (e.http) break;
        const cJSON *m = json_get(it, "model"), *p = json_get(it, "prompt"), *mt = json_get(it, "max_tokens");
        if (!cJSON_IsString(m) || !cJSON_IsString(p) || !cJSON_IsNumber(mt)) {
            fc_oai_err_set(&e, 400, FC_EC_VALIDATION_TYPE_ERROR, "prompts",
                    "1 validation error for APITokenCheckRequest\nprompts\n  each item needs a string \"model\", "
                    "a string \"prompt\" and an integer \"max_tokens\"");
            break;
        }
        long ctx = 0, count = 0;
        enum up_status st = UP_DOWN;
        for (int attempt = 0; attempt < 3 && st == UP_DOWN && !e.http; attempt++) {
            char *addr = fc_oai_worker_address(a, m->valuestring, &e);
            if (!addr) break;
            st = fc_oai_worker_number(a, addr, "/model_details", m->valuestring, p->valuestring, "context_length", &ctx, &e);
            if (st == UP_OK)
                st = fc_oai_worker_number(a, addr, "/count_token", m->valuestring, p->valuestring, "count", &count, &e);
            free(addr);
            if (st == UP_DOWN) fc_oai_ctl_refresh(a);
        }
        if (st != UP_OK) {
            fc_oai_err_set(&e, 500, FC_EC_CONTROLLER_NO_WORKER, "model", "No available worker for %s", m->valuestring);
            break;
        }
        cJSON *item = cJSON_CreateObject();
        cJSON_AddBoolToObject(item, "fits", count + fc_json_long(mt->valuedouble) <= ctx);
        add_int(item, "tokenCount", (double)count);
        add_int(item, "contextLength", (double)ctx);
        cJSON_AddItemToArray(list, item);
    }
    cJSON_Delete(body);
    if (e.http) {
        fc_oai_reply_err(reply, &e);
        fc_oai_err_free(&e);
        cJSON_Delete(out);
        return;
    }
    fc_oai_reply_obj(reply, out);
}

/* ---- checking a request offline (tests, fuzzing) ---- */

int fc_openai_api_check_request(const char *path, const char *body, size_t len, const char *conv_template, char **out)
{
    enum req_kind kind;
    if (!strcmp(path, "/v1/chat/completions")) kind = K_CHAT;
    else if (!strcmp(path, "/v1/completions")) kind = K_COMPLETION;
    else if (!strcmp(path, "/api/v1/chat/completions")) kind = K_API_CHAT;
    else if (!strcmp(path, "/v1/embeddings")) kind = K_EMBEDDINGS;
    else {
        *out = fc_xstrdup("{\"detail\":\"Not Found\"}");
        return 404;
    }
    char *copy = fc_xmalloc(len + 1); /* the server hands handlers a NUL-terminated body */
    if (len) memcpy(copy, body, len);
    copy[len] = 0;
    fc_http_request hr = {.method = "POST", .path = path, .body = copy, .body_len = len, .peer = "check"};
    gen_req r;
    api_err e = {0};
    cJSON *res = NULL;
    fc_conv *conv = NULL;
    prep tp = {0}; /* the tool settings render_tools finds */
    if (kind == K_EMBEDDINGS) {
        if (fc_oai_parse_embed_req(NULL, &hr, NULL, &r, &e)) {
            res = cJSON_CreateArray();
            for (int start = 0; start < r.n_prompts; start += 4) {
                char *pl = fc_oai_embed_payload(&r, start, 4);
                cJSON_AddItemToArray(res, cJSON_Parse(pl));
                free(pl);
            }
        }
    } else if (fc_oai_parse_gen_req(NULL, &hr, kind, &r, &e)) {
        conv = fc_conv_new(conv_template ? conv_template : "chatml");
        if (!conv) fc_oai_err_set(&e, 400, FC_EC_INTERNAL_ERROR, NULL, "no conversation template %s", conv_template);
        char *prompt = NULL;
        if (conv && kind != K_COMPLETION) {
            fc_conv *c = fc_conv_copy(conv);
            prompt = fc_tool_req_needed(&r.tools) && cJSON_IsArray(r.messages)
                         ? fc_oai_render_tools(NULL, &tp, &r, c, &e)
                         : fc_oai_render_chat(c, r.messages, &e);
            fc_conv_free(c);
        }
        if (!e.http) {
            long mt = r.has_max_tokens && r.max_tokens < CHECK_N_CTX ? r.max_tokens : CHECK_N_CTX;
            res = cJSON_CreateArray();
            for (int i = 0; i < (prompt ? 1 : r.n_prompts); i++) {
                char *pl = fc_oai_with_tool_grammar(fc_oai_prompt_payload(&r, conv, prompt ? prompt : r.prompts[i], i, mt, 0), &tp);
                cJSON_AddItemToArray(res, cJSON_Parse(pl));
                free(pl);
            }
        }
        free(prompt);
    }
    int status = 200;
    if (e.http) {
        cJSON *b = error_body(e.msg, e.code, e.param);
        *out = json_print(b);
        cJSON_Delete(b);
        status = e.http;
        cJSON_Delete(res);
    } else {
        *out = json_print(res);
        cJSON_Delete(res);
    }
    fc_conv_free(conv);
    free(tp.tool_grammar);
    fc_oai_err_free(&e);
    fc_oai_req_free(&r);
    free(copy);
    return status;
}

/* ---- lifetime ---- */

fc_openai_api *fc_openai_api_start(const fc_openai_api_params *p)
{
    fc_openai_api *a = fc_xcalloc(1, sizeof *a);
    const char *ctl =
        p->controller_address && *p->controller_address ? p->controller_address : "http://localhost:21001";
    a->ctl = fc_xstrdup(ctl);
    size_t n = strlen(a->ctl);
    while (n && a->ctl[n - 1] == '/') a->ctl[--n] = '\0';
    for (int i = 0; i < p->n_api_keys && p->api_keys; i++)
        if (p->api_keys[i] && *p->api_keys[i]) {
            a->keys = fc_xrealloc(a->keys, sizeof(char *) * (size_t)(a->n_keys + 1));
            a->keys[a->n_keys++] = fc_xstrdup(p->api_keys[i]);
        }
    a->worker_timeout_s = env_num("FASTCHAT_WORKER_API_TIMEOUT", 100);
    a->embed_batch = (int)env_num("FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE", 4);
    if (a->embed_batch < 1) a->embed_batch = 4;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    atomic_init(&a->stopping, false);
    fc_http_global_init();

    fc_http_server_params hp = {0};
    hp.host = p->host;
    hp.port = p->port;
    hp.allow_origins = p->allow_origins ? p->allow_origins : "*";
    hp.allow_methods = p->allow_methods ? p->allow_methods : "*";
    hp.allow_headers = p->allow_headers ? p->allow_headers : "*";
    hp.allow_credentials = p->allow_credentials;
    a->http = fc_http_server_new(&hp);
    if (!a->http) goto fail;
    fc_http_server_route(a->http, "GET", "/v1/models", h_models, a);
    fc_http_server_route(a->http, "POST", "/v1/chat/completions", fc_oai_h_chat, a);
    fc_http_server_route(a->http, "POST", "/v1/completions", fc_oai_h_completions, a);
    fc_http_server_route(a->http, "POST", "/v1/embeddings", fc_oai_h_embeddings, a);
    fc_http_server_route(a->http, "POST", "/v1/engines/*", h_engines, a);
    fc_http_server_route(a->http, "POST", "/api/v1/token_check", h_token_check, a);
    fc_http_server_route(a->http, "POST", "/api/v1/chat/completions", fc_oai_h_api_chat, a);
    a->ollama = fc_ollama_mount(a->http, a, p->host, a->ctl);
    a->responses = fc_responses_mount(a->http, a, p->host);
    if (p->mount) p->mount(a->http, p->mount_user);
    if (fc_http_server_start(a->http) != FC_OK) goto fail;
    FC_LOG_INFO("api: listening on port %d, controller %s", fc_http_server_port(a->http), a->ctl);
    return a;
fail:
    fc_http_server_free(a->http);
    a->http = NULL;
    fc_openai_api_free(a);
    return NULL;
}

int fc_openai_api_port(const fc_openai_api *a)
{
    return fc_http_server_port(a->http);
}

void fc_openai_api_free(fc_openai_api *a)
{
    if (!a) return;
    /* handlers and relays see stopping within 100 ms and answer with an
     * error; the server gives them a grace period, then cuts what is left */
    atomic_store(&a->stopping, true);
    fc_http_server_free(a->http);
    fc_ollama_free(a->ollama);
    fc_responses_free(a->responses);
    pthread_mutex_lock(&a->mu);
    while (a->n_jobs > 0) pthread_cond_wait(&a->cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
    for (int i = 0; i < a->n_convs; i++) {
        free(a->conv_keys[i]);
        fc_conv_free(a->convs[i]);
    }
    free(a->conv_keys);
    free(a->convs);
    for (int i = 0; i < a->n_keys; i++) free(a->keys[i]);
    free(a->keys);
    free(a->ctl);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
