/*
 * oai_chat.c: chat completions with retries and usage counters (see
 * oai_chat.h), on the project's libcurl client (net/http.h).
 */
#include "eval/oai_chat.h"
#include "base/fc_base.h"
#include "net/http.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fc_oai_client {
    char *url, *auth, *model;
    double timeout_s, retry_sleep_s;
    int max_tries;
    pthread_mutex_t mu;
    int64_t calls, failures, retries, prompt_tokens, completion_tokens;
    uint64_t rng;
};

fc_oai_client *fc_oai_new(const fc_oai_params *p)
{
    fc_oai_client *c = fc_xcalloc(1, sizeof *c);
    const char *base = p->api_base ? p->api_base : "https://api.openai.com/v1";
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/') bl--;
    c->url = fc_xmalloc(bl + 32);
    snprintf(c->url, bl + 32, "%.*s/chat/completions", (int)bl, base);
    if (p->api_key && *p->api_key) {
        size_t kl = strlen(p->api_key) + 32;
        c->auth = fc_xmalloc(kl);
        snprintf(c->auth, kl, "Authorization: Bearer %s", p->api_key);
    }
    c->model = fc_xstrdup(p->model ? p->model : "gpt-4");
    c->timeout_s = p->timeout_s > 0 ? p->timeout_s : 600;
    c->max_tries = p->max_tries > 0 ? p->max_tries : 16;
    c->retry_sleep_s = p->retry_sleep_s > 0 ? p->retry_sleep_s : 1;
    c->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

void fc_oai_free(fc_oai_client *c)
{
    if (!c) return;
    pthread_mutex_destroy(&c->mu);
    free(c->url);
    free(c->auth);
    free(c->model);
    free(c);
}

static bool retryable(int status)
{
    return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
}

/* The reply text of a chat completion body, or NULL (garbage). */
static char *extract(const char *body, int *pt, int *ct)
{
    cJSON *j = cJSON_Parse(body);
    char *out = NULL;
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content)) out = fc_xstrdup(content->valuestring);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
    *pt = cJSON_IsNumber(p) ? p->valueint : 0;
    *ct = cJSON_IsNumber(c) ? c->valueint : 0;
    cJSON_Delete(j);
    return out;
}

static double jitter(fc_oai_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->rng = c->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t r = c->rng >> 33;
    pthread_mutex_unlock(&c->mu);
    return 0.75 + 0.5 * (double)(r & 0xffff) / 65535.0;
}

bool fc_oai_chat(fc_oai_client *c, const cJSON *messages, double temperature, int max_tokens, fc_oai_result *out)
{
    memset(out, 0, sizeof *out);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", c->model);
    cJSON_AddItemToObject(req, "messages", cJSON_Duplicate(messages, true));
    cJSON_AddNumberToObject(req, "n", 1);
    if (temperature >= 0) cJSON_AddNumberToObject(req, "temperature", temperature);
    if (max_tokens > 0) cJSON_AddNumberToObject(req, "max_tokens", max_tokens);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    const char *headers[2] = {c->auth, NULL};
    bool ok = false;
    double wait = c->retry_sleep_s;
    for (int t = 0; t < c->max_tries && !ok; t++) {
        if (t > 0) {
            pthread_mutex_lock(&c->mu);
            c->retries++;
            pthread_mutex_unlock(&c->mu);
            double s = FC_MIN(wait, 60.0) * jitter(c);
            usleep((useconds_t)(s * 1e6));
            wait *= 2;
        }
        out->tries = t + 1;
        fc_http_response r = {0};
        fc_http_post_json(c->url, body, strlen(body), c->timeout_s, c->auth ? headers : NULL, &r);
        if (r.status == 200) {
            int pt = 0, ct = 0;
            char *txt = extract(r.body ? r.body : "", &pt, &ct);
            if (txt) {
                out->content = txt;
                out->prompt_tokens = pt;
                out->completion_tokens = ct;
                ok = true;
            } else {
                snprintf(out->error, sizeof out->error, "200 without a chat completion in the body");
            }
        } else if (r.status == 0) {
            snprintf(out->error, sizeof out->error, "no response: %.200s", r.error);
        } else {
            snprintf(out->error, sizeof out->error, "HTTP %d: %.200s", r.status, r.body ? r.body : "");
        }
        bool stop = !ok && r.status != 200 && !retryable(r.status);
        fc_http_response_free(&r);
        if (!ok) FC_LOG_WARN("%s: try %d/%d: %s", c->model, t + 1, c->max_tries, out->error);
        if (stop) break;
    }
    free(body);
    pthread_mutex_lock(&c->mu);
    c->calls++;
    if (ok) {
        c->prompt_tokens += out->prompt_tokens;
        c->completion_tokens += out->completion_tokens;
    } else {
        c->failures++;
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

void fc_oai_usage(fc_oai_client *c, int64_t *calls, int64_t *failures, int64_t *retries,
                  int64_t *prompt_tokens, int64_t *completion_tokens)
{
    pthread_mutex_lock(&c->mu);
    if (calls) *calls = c->calls;
    if (failures) *failures = c->failures;
    if (retries) *retries = c->retries;
    if (prompt_tokens) *prompt_tokens = c->prompt_tokens;
    if (completion_tokens) *completion_tokens = c->completion_tokens;
    pthread_mutex_unlock(&c->mu);
}
