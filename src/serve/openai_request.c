/*
 * openai_request.c: parsing and validation of the chat and completion
 * requests (FastChat's pydantic schemas, check_model, check_requests) and the
 * prompt assembly and worker parameters (get_gen_params).
 * Private to the OpenAI API server: see openai_impl.h and openai_api.h.
 */
#include "serve/openai_impl.h"

/* ---- request parsing and validation ---- */

static const char *kind_schema(enum req_kind k)
{
    switch (k) {
    case K_CHAT: return "ChatCompletionRequest";
    case K_COMPLETION: return "CompletionRequest";
    case K_API_CHAT: return "APIChatCompletionRequest";
    case K_EMBEDDINGS: return "EmbeddingsRequest";
    }
    return "Request";
}

void fc_oai_req_free(gen_req *r)
{
    cJSON_Delete(r->body);
    free(r->prompts);
    free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}

int fc_oai_type_error(api_err *e, enum req_kind k, const char *field, const char *what)
{
    fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, field, "1 validation error for %s\n%s\n  %s",
            kind_schema(k), field, what);
    return -1;
}

static bool str_to_double(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    return end != s && !*end && errno == 0 && isfinite(*v);
}

/* Field readers: 1 when absent or null (keep the default), 0 when read, -1
 * (error set, 40001) on a wrong type. Numbers may come as numeric strings,
 * as pydantic's lax mode accepts. */
static int f_num(const cJSON *o, const char *k, double *v, enum req_kind kind, api_err *e)
{
    const cJSON *it = json_get(o, k);
    if (!it || cJSON_IsNull(it)) return 1;
    if (cJSON_IsNumber(it)) {
        *v = it->valuedouble;
        return 0;
    }
    if (cJSON_IsString(it) && str_to_double(it->valuestring, v)) return 0;
    return fc_oai_type_error(e, kind, k, "Input should be a valid number");
}

static int f_int(const cJSON *o, const char *k, long long *v, enum req_kind kind, api_err *e)
{
    const cJSON *it = json_get(o, k);
    if (!it || cJSON_IsNull(it)) return 1;
    double d;
    if (cJSON_IsNumber(it)) d = it->valuedouble;
    else if (!(cJSON_IsString(it) && str_to_double(it->valuestring, &d)))
        return fc_oai_type_error(e, kind, k, "Input should be a valid integer");
    if (d != floor(d) || fabs(d) > 9e15) return fc_oai_type_error(e, kind, k, "Input should be a valid integer");
    *v = (long long)d;
    return 0;
}

static int f_bool(const cJSON *o, const char *k, bool *v, enum req_kind kind, api_err *e)
{
    const cJSON *it = json_get(o, k);
    if (!it || cJSON_IsNull(it)) return 1;
    if (cJSON_IsBool(it)) {
        *v = cJSON_IsTrue(it);
        return 0;
    }
    if (cJSON_IsNumber(it) && (it->valuedouble == 0 || it->valuedouble == 1)) {
        *v = it->valuedouble == 1;
        return 0;
    }
    if (cJSON_IsString(it)) {
        static const char *t[] = {"true", "1", "yes", "on", "t", "y"}, *f[] = {"false", "0", "no", "off", "f", "n"};
        for (size_t i = 0; i < FC_ARRAY_LEN(t); i++)
            if (!strcasecmp(it->valuestring, t[i])) return *v = true, 0;
        for (size_t i = 0; i < FC_ARRAY_LEN(f); i++)
            if (!strcasecmp(it->valuestring, f[i])) return *v = false, 0;
    }
    return fc_oai_type_error(e, kind, k, "Input should be a valid boolean");
}

static bool f_long(const cJSON *o, const char *k, long *v, enum req_kind kind, api_err *e)
{
    long long x;
    int rc = f_int(o, k, &x, kind, e);
    if (rc == 0) *v = (long)x;
    return rc >= 0;
}

/* A list of token ids: each an integer in [0, 2^31); the vocabulary is
 * checked by the worker (/worker_detokenize in prepare). */
static bool ids_ok(const cJSON *ids)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, ids) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0) || it->valuedouble >= 2147483648.0 ||
            it->valuedouble != floor(it->valuedouble))
            return false;
    }
    return true;
}

/* Completions' prompt as a list: strings, lists of token ids, or token ids
 * (one prompt). r->prompts is allocated for the list's size. */
static bool read_id_prompts(gen_req *r, const cJSON *p, api_err *e)
{
    const char *what = "Input should be a valid string, a list of strings, a list of token ids (integers "
                       "from 0) or a list of such lists";
    if (cJSON_IsNumber(p->child)) {
        if (!ids_ok(p)) return fc_oai_type_error(e, r->kind, "prompt", what), false;
        r->prompt_ids = fc_xcalloc(1, sizeof *r->prompt_ids);
        r->prompt_ids[0] = p;
        r->prompts[0] = "";
        r->n_prompts = 1;
        return true;
    }
    r->prompt_ids = fc_xcalloc((size_t)cJSON_GetArraySize(p), sizeof *r->prompt_ids);
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        if (cJSON_IsArray(it) && ids_ok(it)) {
            r->prompt_ids[r->n_prompts] = it;
            r->prompts[r->n_prompts++] = "";
        } else if (cJSON_IsString(it)) {
            r->prompts[r->n_prompts++] = it->valuestring;
        } else {
            return fc_oai_type_error(e, r->kind, "prompt", what), false;
        }
    }
    return true;
}

bool fc_oai_read_texts(gen_req *r, const char *field, api_err *e)
{
    const cJSON *p = json_get(r->body, field);
    if (cJSON_IsString(p)) {
        r->prompts = fc_xmalloc(sizeof(char *));
        r->prompts[0] = p->valuestring;
        r->n_prompts = 1;
        return true;
    }
    if (!cJSON_IsArray(p)) {
        fc_oai_type_error(e, r->kind, field, p ? "Input should be a valid string or a list of strings" : "Field required");
        return false;
    }
    int n = cJSON_GetArraySize(p);
    if (n == 0) {
        fc_oai_type_error(e, r->kind, field, "Input should be a non-empty list");
        return false;
    }
    r->prompts = fc_xcalloc((size_t)n, sizeof(char *));
    if (r->kind == K_COMPLETION) return read_id_prompts(r, p, e);
    const cJSON *it;
    cJSON_ArrayForEach(it, p) {
        if (cJSON_IsNumber(it) || cJSON_IsArray(it)) {
            fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, field,
                    "token id %ss are not supported: FastChat decodes them with OpenAI's tiktoken vocabularies, "
                    "which do not match the served models; send text",
                    field);
            return false;
        }
        if (!cJSON_IsString(it)) {
            fc_oai_type_error(e, r->kind, field, "Input should be a valid string or a list of strings");
            return false;
        }
        r->prompts[r->n_prompts++] = it->valuestring;
    }
    return true;
}

static bool check_messages(gen_req *r, api_err *e)
{
    const cJSON *m = r->messages;
    if (cJSON_IsString(m)) return true;
    if (!cJSON_IsArray(m)) {
        fc_oai_type_error(e, r->kind, "messages",
                   m ? "Input should be a valid string or a list of messages" : "Field required");
        return false;
    }
    const cJSON *msg;
    cJSON_ArrayForEach(msg, m) {
        const cJSON *role = json_get(msg, "role"), *content = json_get(msg, "content");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
            fc_oai_type_error(e, r->kind, "messages",
                       "Input should be a list of {\"role\": string, \"content\": ...} objects");
            return false;
        }
        if (cJSON_IsString(content)) continue;
        const cJSON *calls = json_get(msg, "tool_calls");
        if (r->kind == K_CHAT && (!content || cJSON_IsNull(content)) && calls && !cJSON_IsNull(calls))
            continue; /* an assistant's tool calls without text (tool_calls.c checks them) */
        if (cJSON_IsArray(content) && r->kind == K_CHAT) {
            const cJSON *part;
            cJSON_ArrayForEach(part, content) {
                const cJSON *type = json_get(part, "type");
                if (!cJSON_IsString(type)) {
                    fc_oai_type_error(e, r->kind, "messages", "Input should be content parts with a \"type\"");
                    return false;
                }
                if (!strcmp(type->valuestring, "text") && !cJSON_IsString(json_get(part, "text"))) {
                    fc_oai_type_error(e, r->kind, "messages", "Input should be text parts with a string \"text\"");
                    return false;
                }
                if (!strcmp(type->valuestring, "image_url")) {
                    fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, "messages",
                            "image inputs are not supported: the served models are text-only");
                    return false;
                }
            }
            continue;
        }
        fc_oai_type_error(e, r->kind, "messages", "Input should be messages whose content is a string");
        return false;
    }
    return true;
}

bool fc_oai_parse_gen_req(fc_openai_api *a, const fc_http_request *hr, enum req_kind kind, gen_req *r, api_err *e)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    if (fc_json_has_nul(hr->body, hr->body_len)) {
        fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, NULL, "1 validation error for %s\nbody\n  %s", kind_schema(kind),
                FC_JSON_NUL_MSG);
        return false;
    }
    r->body = cJSON_ParseWithLength(hr->body, hr->body_len);
    if (!cJSON_IsObject(r->body)) {
        fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, NULL, "1 validation error for %s\nbody\n  %s", kind_schema(kind),
                r->body ? "Input should be a valid dictionary" : "JSON decode error");
        return false;
    }
    const cJSON *model = json_get(r->body, "model");
    if (!cJSON_IsString(model)) {
        fc_oai_type_error(e, kind, "model",
                   model && !cJSON_IsNull(model) ? "Input should be a valid string" : "Field required");
        return false;
    }
    r->model = model->valuestring;
    int rc;
    char why_tools[320];
    const char *param_tools = NULL;

    /* defaults (openai_api_protocol.py / api_protocol.py) */
    r->temperature = 0.7;
    r->top_p = 1.0;
    r->top_k = -1;
    r->n = 1;
    r->has_max_tokens = kind == K_COMPLETION; /* CompletionRequest: 16; chat: None */
    r->max_tokens = 16;
    r->max_tokens_param = "max_tokens";
    r->repetition_penalty = 1.0;
    r->logprobs = -1;

    if (kind == K_COMPLETION) {
        if (!fc_oai_read_texts(r, "prompt", e)) return false;
    } else {
        r->messages = json_get(r->body, "messages");
        if (!check_messages(r, e)) return false;
    }
    long long seed = 0;
    if (f_num(r->body, "temperature", &r->temperature, kind, e) < 0) return false;
    if (f_num(r->body, "top_p", &r->top_p, kind, e) < 0) return false;
    if (!f_long(r->body, "top_k", &r->top_k, kind, e)) return false;
    if (!f_long(r->body, "n", &r->n, kind, e)) return false;
    long long mt = 0;
    if ((rc = f_int(r->body, "max_tokens", &mt, kind, e)) < 0) return false;
    if (rc == 0) r->has_max_tokens = true, r->max_tokens = mt < LONG_MIN ? LONG_MIN : (long)mt;
    if (kind != K_COMPLETION) { /* OpenAI's newer name wins when both are given */
        if ((rc = f_int(r->body, "max_completion_tokens", &mt, kind, e)) < 0) return false;
        if (rc == 0)
            r->has_max_tokens = true, r->max_tokens = (long)mt, r->max_tokens_param = "max_completion_tokens";
    }
    if (f_bool(r->body, "stream", &r->stream, kind, e) < 0) return false;
    if (f_num(r->body, "presence_penalty", &r->presence_penalty, kind, e) < 0) return false;
    if (f_num(r->body, "frequency_penalty", &r->frequency_penalty, kind, e) < 0) return false;
    if ((rc = f_int(r->body, "seed", &seed, kind, e)) < 0) return false;
    r->has_seed = rc == 0;
    r->seed = seed;
    if (kind == K_API_CHAT) {
        if ((rc = f_num(r->body, "repetition_penalty", &r->repetition_penalty, kind, e)) < 0) return false;
        r->has_repetition_penalty = true; /* FastChat sends its default 1.0 too */
    }
    r->stop = json_get(r->body, "stop");
    if (cJSON_IsNull(r->stop)) r->stop = NULL;
    if (r->stop && !cJSON_IsString(r->stop)) {
        bool ok = cJSON_IsArray(r->stop);
        const cJSON *it;
        if (ok) cJSON_ArrayForEach(it, r->stop) ok = ok && cJSON_IsString(it);
        if (!ok) return fc_oai_type_error(e, kind, "stop", "Input should be a valid string or a list of strings"), false;
    }
    if (kind == K_COMPLETION) {
        if (f_bool(r->body, "echo", &r->echo, kind, e) < 0) return false;
        if (!f_long(r->body, "logprobs", &r->logprobs, kind, e)) return false;
        const cJSON *bo = json_get(r->body, "best_of"), *bs = json_get(r->body, "use_beam_search");
        if (bo && !cJSON_IsNull(bo) && !cJSON_IsNumber(bo))
            return fc_oai_type_error(e, kind, "best_of", "Input should be a valid integer"), false;
        if (bs && !cJSON_IsNull(bs) && !cJSON_IsBool(bs))
            return fc_oai_type_error(e, kind, "use_beam_search", "Input should be a valid boolean"), false;
        r->best_of = bo && cJSON_IsNumber(bo) ? bo : NULL;
        r->use_beam_search = bs && cJSON_IsBool(bs) ? bs : NULL;
    } else {
        long top = -1;
        if (f_bool(r->body, "logprobs", &r->chat_logprobs, kind, e) < 0) return false;
        if (!f_long(r->body, "top_logprobs", &top, kind, e)) return false;
        if (top >= 0 && !r->chat_logprobs) {
            fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "top_logprobs",
                    "logprobs must be set to true if top_logprobs is set - 'top_logprobs'");
            return false;
        }
        if (top > MAX_LOGPROBS || top < -1) {
            fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "top_logprobs",
                    "%ld is out of range: top_logprobs must be between 0 and %d - 'top_logprobs'", top, MAX_LOGPROBS);
            return false;
        }
        if (r->chat_logprobs) r->logprobs = top > 0 ? top : 0;
    }
    const cJSON *so = json_get(r->body, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so))
            return fc_oai_type_error(e, kind, "stream_options", "Input should be a valid dictionary"), false;
        bool inc = false;
        if (f_bool(so, "include_usage", &inc, kind, e) < 0) return false;
        r->include_usage = inc;
    }
    if (kind == K_CHAT || kind == K_COMPLETION || kind == K_API_CHAT) {
        /* structured outputs: refused here (400) when the schema cannot be
         * compiled; the worker compiles it again for its engine */
        const cJSON *rf = json_get(r->body, "response_format");
        char *grammar = NULL, why[320];
        const char *param = NULL;
        int rc_rf = fc_response_format_grammar(rf, &grammar, why, sizeof why, &param);
        free(grammar);
        if (rc_rf < 0) return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, param, "%s", why), false;
        if (rc_rf > 0) r->response_format = rf;
    }
    if (kind == K_CHAT && fc_tool_req_parse(r->body, &r->tools, why_tools, sizeof why_tools, &param_tools) < 0)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, param_tools, "%s", why_tools), false;

    /* check_model (not without a server: fc_openai_api_check_request), then
     * check_requests, in FastChat's order */
    if (a && !fc_oai_check_model(a, r->model, e)) return false;
    if (r->has_max_tokens && r->max_tokens <= 0)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, r->max_tokens_param, "%ld is less than the minimum of 1 - '%s'",
                       r->max_tokens, r->max_tokens_param),
               false;
    if (r->n <= 0)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "n", "%ld is less than the minimum of 1 - 'n'", r->n), false;
    if (r->n > MAX_N)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "n", "%ld is greater than the maximum of %d - 'n'", r->n, MAX_N),
               false;
    if (kind == K_COMPLETION && (long)r->n_prompts * r->n > MAX_CHOICES)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "prompt",
                       "%ld is greater than the maximum of %d - 'prompt' (prompts x n per request)",
                       (long)r->n_prompts * r->n, MAX_CHOICES),
               false;
    if (r->temperature < 0)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "temperature",
                       "%g is less than the minimum of 0 - 'temperature'", r->temperature),
               false;
    if (r->temperature > 2)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "temperature",
                       "%g is greater than the maximum of 2 - 'temperature'", r->temperature),
               false;
    if (r->top_p < 0)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "top_p", "%g is less than the minimum of 0 - 'top_p'", r->top_p),
               false;
    if (r->top_p > 1)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "top_p", "%g is greater than the maximum of 1 - 'top_p'",
                       r->top_p),
               false;
    if (r->top_k > -1 && r->top_k < 1)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "top_k",
                       "%ld is out of Range. Either set top_k to -1 or >=1.", r->top_k),
               false;
    if (r->presence_penalty < -2 || r->presence_penalty > 2)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "presence_penalty",
                       "%g is out of range: presence_penalty must be between -2 and 2 - 'presence_penalty'",
                       r->presence_penalty),
               false;
    if (r->frequency_penalty < -2 || r->frequency_penalty > 2)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "frequency_penalty",
                       "%g is out of range: frequency_penalty must be between -2 and 2 - 'frequency_penalty'",
                       r->frequency_penalty),
               false;
    if (kind == K_COMPLETION && (r->logprobs < -1 || r->logprobs > MAX_LOGPROBS))
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "logprobs",
                       "%ld is out of range: logprobs must be between 0 and %d - 'logprobs'", r->logprobs,
                       MAX_LOGPROBS),
               false;
    int n_stop = cJSON_IsArray(r->stop) ? cJSON_GetArraySize(r->stop) : 0;
    if (n_stop > MAX_STOP) /* the worker takes 64 with the template's (at most 3) */
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "stop",
                       "%d stop sequences are too many: at most %d - 'stop'", n_stop, MAX_STOP),
               false;
    if (kind == K_API_CHAT && r->repetition_penalty <= 0)
        return fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "repetition_penalty",
                       "%g is less than or equal to 0 - 'repetition_penalty'", r->repetition_penalty),
               false;
    return true;
}

/* ---- prompt assembly and worker parameters (get_gen_params) ---- */

char *fc_oai_render_chat(fc_conv *conv, const cJSON *messages, api_err *e)
{
    if (cJSON_IsString(messages)) return fc_xstrdup(messages->valuestring);
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const char *role = json_get(m, "role")->valuestring;
        const cJSON *content = json_get(m, "content");
        fc_str text = FC_STR_INIT;
        if (cJSON_IsString(content)) {
            fc_str_puts(&text, content->valuestring);
        } else { /* text parts joined by newlines */
            const cJSON *part;
            bool first = true;
            cJSON_ArrayForEach(part, content) {
                if (strcmp(json_get(part, "type")->valuestring, "text")) continue;
                if (!first) fc_str_puts(&text, "\n");
                fc_str_puts(&text, json_get(part, "text")->valuestring);
                first = false;
            }
            if (!text.p) fc_str_putn(&text, "", 0);
        }
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            fc_conv_set_system_message(conv, text.p);
        } else if (!strcmp(role, "user")) {
            fc_conv_append_message(conv, 0, text.p);
        } else if (!strcmp(role, "assistant")) {
            fc_conv_append_message(conv, 1, text.p);
        } else {
            fc_oai_err_set(e, 400, FC_EC_VALIDATION_TYPE_ERROR, "messages", "Unknown role: %s", role);
            fc_str_free(&text);
            return NULL;
        }
        fc_str_free(&text);
    }
    fc_conv_append_message(conv, 1, NULL);
    char *prompt = fc_conv_get_prompt(conv);
    if (!prompt) fc_oai_err_set(e, 400, FC_EC_INTERNAL_ERROR, NULL, "cannot render the conversation: %s", fc_last_error());
    return prompt;
}

/* The worker request for one choice. seed_offset is added to the seed. */
static char *gen_params_json(const gen_req *r, const fc_conv *conv, const char *prompt, long max_new_tokens,
                             int seed_offset)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON_AddStringToObject(o, "prompt", prompt);
    cJSON_AddNumberToObject(o, "temperature", r->temperature);
    if (r->logprobs >= 0) add_int(o, "logprobs", (double)r->logprobs);
    else cJSON_AddNullToObject(o, "logprobs");
    cJSON_AddNumberToObject(o, "top_p", r->top_p);
    add_int(o, "top_k", (double)r->top_k);
    cJSON_AddNumberToObject(o, "presence_penalty", r->presence_penalty);
    cJSON_AddNumberToObject(o, "frequency_penalty", r->frequency_penalty);
    add_int(o, "max_new_tokens", (double)max_new_tokens);
    cJSON_AddBoolToObject(o, "echo", r->kind == K_COMPLETION && r->echo);
    int n_ids = 0;
    const int32_t *ids = fc_conv_stop_token_ids(conv, &n_ids);
    cJSON *sti = cJSON_AddArrayToObject(o, "stop_token_ids");
    for (int i = 0; i < n_ids; i++) cJSON_AddItemToArray(sti, cJSON_CreateNumber(ids[i]));
    if (r->best_of) cJSON_AddItemToObject(o, "best_of", cJSON_Duplicate(r->best_of, true));
    if (r->use_beam_search) cJSON_AddItemToObject(o, "use_beam_search", cJSON_Duplicate(r->use_beam_search, true));
    /* stop: the union of the request's and the template's (FastChat's set) */
    cJSON *stop = cJSON_AddArrayToObject(o, "stop");
    const char *cand[256];
    int n_cand = 0;
    if (cJSON_IsString(r->stop)) {
        cand[n_cand++] = r->stop->valuestring;
    } else if (cJSON_IsArray(r->stop)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, r->stop) if (n_cand < 200) cand[n_cand++] = it->valuestring;
    }
    for (int i = 0; i < fc_conv_n_stop_str(conv) && n_cand < 256; i++) cand[n_cand++] = fc_conv_stop_str(conv, i);
    for (int i = 0; i < n_cand; i++) {
        if (!cand[i] || !*cand[i]) continue;
        bool dup = false;
        for (int j = 0; j < i && !dup; j++) dup = cand[j] && !strcmp(cand[j], cand[i]);
        if (!dup) cJSON_AddItemToArray(stop, cJSON_CreateString(cand[i]));
    }
    if (r->has_repetition_penalty) cJSON_AddNumberToObject(o, "repetition_penalty", r->repetition_penalty);
    if (r->has_seed) add_int(o, "seed", (double)(r->seed + seed_offset));
    if (r->response_format) cJSON_AddItemToObject(o, "response_format", cJSON_Duplicate(r->response_format, true));
    char *s = json_print(o);
    cJSON_Delete(o);
    return s;
}

char *fc_oai_prompt_payload(const gen_req *r, const fc_conv *conv, const char *prompt, int k, long max_new_tokens,
                            int seed_offset)
{
    char *s = gen_params_json(r, conv, prompt, max_new_tokens, seed_offset);
    if (!r->prompt_ids || !r->prompt_ids[k]) return s;
    char *ids = json_print(r->prompt_ids[k]);
    size_t n = strlen(s); /* "{...}" */
    char *o = fc_xasprintf("%.*s,\"prompt_token_ids\":%s}", (int)(n - 1), s, ids);
    free(ids);
    free(s);
    return o;
}

void fc_oai_prep_free(prep *p)
{
    free(p->addr);
    fc_conv_free(p->conv);
    for (int i = 0; i < p->n_prompts; i++) free(p->prompts[i]);
    free(p->prompts);
    free(p->tool_grammar);
    memset(p, 0, sizeof *p);
}

char *fc_oai_render_tools(fc_openai_api *a, prep *p, const gen_req *r, fc_conv *conv, api_err *e)
{
    cJSON *info = NULL;
    if (a) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "model", r->model);
        char *body = json_print(req);
        cJSON_Delete(req);
        char *why = NULL;
        if (fc_oai_up_post(p->addr, "/worker_get_conv_template", body, a->worker_timeout_s, &info, &why) != UP_OK) {
            cJSON_Delete(info);
            info = NULL;
        }
        free(why);
        free(body);
    }
    const cJSON *tmpl = json_get(info, "chat_template"), *bos = json_get(info, "bos_token"),
                *eos = json_get(info, "eos_token");
    const char *jt = cJSON_IsString(tmpl) ? tmpl->valuestring : NULL;
    bool active = fc_tool_req_active(&r->tools);
    char *prompt = NULL;
    enum fc_tool_style style = FC_TOOL_STYLE_HERMES;
    if (fc_tool_template_takes_tools(jt)) {
        style = fc_tool_style_of(jt);
        cJSON *msgs = fc_tool_messages_for_template(r->messages);
        cJSON *extra = cJSON_CreateObject();
        if (active) cJSON_AddItemToObject(extra, "tools", cJSON_Duplicate(r->tools.tools, true));
        char *err = NULL;
        prompt = fc_chat_template_render(jt, msgs, cJSON_IsString(bos) ? bos->valuestring : NULL,
                                         cJSON_IsString(eos) ? eos->valuestring : NULL, true, extra, NULL, &err);
        if (!prompt) fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "messages", "the chat template refused these messages: %s",
                             err ? err : "error");
        /* the worker's tokenizer adds BOS to every prompt: not twice */
        size_t bl = cJSON_IsString(bos) ? strlen(bos->valuestring) : 0;
        if (prompt && bl && cJSON_IsTrue(json_get(info, "add_bos_token")) && !strncmp(prompt, bos->valuestring, bl))
            memmove(prompt, prompt + bl, strlen(prompt + bl) + 1);
        free(err);
        cJSON_Delete(extra);
        cJSON_Delete(msgs);
    } else {
        cJSON *msgs = fc_tool_messages_generic(r->messages, &r->tools);
        prompt = fc_oai_render_chat(conv, msgs, e);
        cJSON_Delete(msgs);
    }
    cJSON_Delete(info);
    p->tools_active = active;
    if (prompt && fc_tool_req_forced(&r->tools)) {
        char why[320] = "";
        p->tool_grammar = fc_tool_grammar(&r->tools, style, why, sizeof why);
        if (!p->tool_grammar) {
            fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "tools", "Invalid schema for a tool: %s", why);
            free(prompt);
            prompt = NULL;
        }
    } else if (prompt && active) { /* auto with strict tools: lazy, from the call marker on */
        char why[320] = "";
        p->tool_grammar = fc_tool_lazy_grammar(&r->tools, style, &p->tool_trigger, why, sizeof why);
        if (!p->tool_grammar && why[0]) {
            fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "tools", "Invalid schema for a tool: %s", why);
            free(prompt);
            prompt = NULL;
        }
    }
    return prompt;
}

char *fc_oai_with_tool_grammar(char *payload, const prep *p)
{
    if (!p->tool_grammar) return payload;
    cJSON *o = cJSON_Parse(payload);
    if (!o) return payload;
    cJSON_AddStringToObject(o, "tool_grammar", p->tool_grammar);
    if (p->tool_trigger) cJSON_AddStringToObject(o, "tool_grammar_trigger", p->tool_trigger);
    else cJSON_DeleteItemFromObjectCaseSensitive(o, "response_format"); /* a forced call is no text answer */
    free(payload);
    payload = json_print(o);
    cJSON_Delete(o);
    return payload;
}

bool fc_oai_must_stop(fc_openai_api *a, const fc_http_request *hr)
{
    return atomic_load(&a->stopping) || (hr && fc_http_request_client_gone(hr));
}

void fc_oai_err_stopped(fc_openai_api *a, api_err *e)
{
    if (atomic_load(&a->stopping))
        fc_oai_err_set(e, 503, FC_EC_INTERNAL_ERROR, NULL, "%s\n\n(the server is shutting down)", FC_SERVER_ERROR_MSG);
    else
        fc_oai_err_set(e, 400, FC_EC_INTERNAL_ERROR, NULL, "the client left before the answer was ready");
}

/* check_length for one prompt: min(max_tokens or 2^20, context - tokens);
 * ctx is the worker's context length. */
static enum up_status check_length(fc_openai_api *a, const char *addr, const gen_req *r, const char *prompt, long ctx,
                                   long n_tokens /* < 0: ask /count_token */, long *allowed, api_err *e)
{
    long count = n_tokens;
    enum up_status st = n_tokens >= 0 ? UP_OK : fc_oai_worker_number(a, addr, "/count_token", r->model, prompt, "count", &count, e);
    if (st != UP_OK) return st;
    if (count <= 0) {
        fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, r->kind == K_COMPLETION ? "prompt" : "messages",
                "The prompt is empty: it has no tokens to continue - '%s'",
                r->kind == K_COMPLETION ? "prompt" : "messages");
        return UP_BAD;
    }
    long mt = r->has_max_tokens ? r->max_tokens : NO_MAX_TOKENS;
    long len = FC_MIN(mt, ctx - count);
    if (len <= 0) {
        fc_oai_err_set(e, 400, FC_EC_CONTEXT_OVERFLOW, "messages",
                "This model's maximum context length is %ld tokens. However, your messages resulted in %ld tokens. "
                "Please reduce the length of the messages.",
                ctx, count);
        return UP_BAD;
    }
    *allowed = len;
    return UP_OK;
}

/* A prompt given as token ids, decoded by the worker (/worker_detokenize),
 * which also checks them against the model's vocabulary: an id outside it
 * is the client's mistake (40302). *text is malloc'd. */
static enum up_status detok_prompt(fc_openai_api *a, const char *addr, const gen_req *r, int k, char **text,
                                   api_err *e)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", r->model);
    cJSON_AddItemToObject(req, "tokens", cJSON_Duplicate(r->prompt_ids[k], true));
    char *body = json_print(req);
    cJSON_Delete(req);
    char *url = fc_xasprintf("%s/worker_detokenize", addr);
    fc_http_response res = {0};
    bool ok = fc_http_post_json_ex(url, body, strlen(body), a->worker_timeout_s, NULL, &res) && res.status;
    cJSON *o = ok ? cJSON_ParseWithLength(res.body ? res.body : "", res.len) : NULL;
    const cJSON *pr = json_get(o, "prompt"), *t = json_get(o, "text");
    enum up_status st = UP_OK;
    if (!ok) {
        st = UP_DOWN;
    } else if (res.status == 200 && cJSON_IsString(pr)) {
        *text = fc_xstrdup(pr->valuestring);
    } else if (res.status == 400 && cJSON_IsString(t)) {
        /* the worker names its own field: "'tokens' must be a list of ..." */
        static const char head[] = "'tokens' must be a list of token ids of the model's vocabulary";
        const char *m = t->valuestring, *tail = strncmp(m, head, sizeof head - 1) ? NULL : m + sizeof head - 1;
        char where[32] = "";
        if (r->n_prompts > 1) snprintf(where, sizeof where, " of prompt %d", k);
        if (tail)
            fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "prompt",
                    "The token ids%s must be ids of the model's vocabulary%s - 'prompt'", where, tail);
        else
            fc_oai_err_set(e, 400, FC_EC_PARAM_OUT_OF_RANGE, "prompt", "%s%s - 'prompt'", m, where);
        st = UP_BAD;
    } else {
        fc_oai_err_set(e, 400, FC_EC_INTERNAL_ERROR, NULL, "%s: HTTP %d", url, res.status);
        st = UP_BAD;
    }
    cJSON_Delete(o);
    fc_http_response_free(&res);
    free(url);
    free(body);
    return st;
}

bool fc_oai_prepare(fc_openai_api *a, const fc_http_request *hr, const gen_req *r, prep *p, api_err *e)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        memset(p, 0, sizeof *p);
        if (attempt > 0 && fc_oai_must_stop(a, hr)) return fc_oai_err_stopped(a, e), false; /* the worker refused: stopping */
        p->addr = fc_oai_worker_address(a, r->model, e);
        if (!p->addr) return false;
        enum up_status st = fc_oai_worker_conv(a, p->addr, r->model, &p->conv, e);
        if (st == UP_OK) {
            if (r->kind == K_COMPLETION) {
                p->prompts = fc_xcalloc((size_t)r->n_prompts, sizeof(char *));
                for (int i = 0; i < r->n_prompts && st == UP_OK; i++) {
                    if (r->prompt_ids && r->prompt_ids[i]) st = detok_prompt(a, p->addr, r, i, &p->prompts[i], e);
                    else p->prompts[i] = fc_xstrdup(r->prompts[i]);
                    if (st == UP_OK) p->n_prompts++;
                }
            } else {
                fc_conv *c = fc_conv_copy(p->conv);
                char *prompt = fc_tool_req_needed(&r->tools) && cJSON_IsArray(r->messages)
                                   ? fc_oai_render_tools(a, p, r, c, e)
                                   : fc_oai_render_chat(c, r->messages, e);
                fc_conv_free(c);
                if (!prompt) {
                    fc_oai_prep_free(p);
                    return false;
                }
                p->prompts = fc_xmalloc(sizeof(char *));
                p->prompts[0] = prompt;
                p->n_prompts = 1;
            }
            long ctx = 0;
            if (st == UP_OK) st = fc_oai_worker_number(a, p->addr, "/model_details", r->model, NULL, "context_length", &ctx, e);
            /* completions: the smallest clamp over the prompts wins */
            p->max_new_tokens = 0;
            for (int i = 0; i < p->n_prompts && st == UP_OK; i++) {
                if (fc_oai_must_stop(a, hr)) {
                    fc_oai_err_stopped(a, e);
                    fc_oai_prep_free(p);
                    return false;
                }
                long allowed = 0;
                long n_ids = r->prompt_ids && r->prompt_ids[i] ? cJSON_GetArraySize(r->prompt_ids[i]) : -1;
                st = check_length(a, p->addr, r, p->prompts[i], ctx, n_ids, &allowed, e);
                if (st == UP_OK && (p->max_new_tokens <= 0 || allowed < p->max_new_tokens)) p->max_new_tokens = allowed;
            }
        }
        if (st == UP_OK) return true;
        if (st != UP_DOWN) {
            fc_oai_prep_free(p);
            return false;
        }
        FC_LOG_WARN("api: worker %s does not answer; refreshing the controller", p->addr);
        fc_oai_prep_free(p);
        fc_oai_ctl_refresh(a);
    }
    fc_oai_err_set(e, 500, FC_EC_CONTROLLER_NO_WORKER, "model", "No available worker for %s", r->model);
    return false;
}
