/*
 * loopback.c: see loopback.h.
 */
#include "serve/loopback.h"

#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"

#define RAW_KEEP 65536 /* bytes of the raw answer kept for an error reply */

char *fc_loopback_url(const fc_openai_api *api, const char *host, const char *path)
{
    return fc_xasprintf("%s://%s:%d%s", fc_http_scheme(), host, fc_openai_api_port(api), path);
}

static bool on_data(const char *data, size_t len, void *user)
{
    fc_loopback *lb = user;
    if (fc_str_len(&lb->raw) < RAW_KEEP) fc_str_putn(&lb->raw, data, len);
    return fc_sse_parser_feed(lb->sse, data, len, lb->on_event, lb->user);
}

static bool keep_going(void *user)
{
    fc_loopback *lb = user;
    if (!lb->client_gone && fc_http_request_client_gone(lb->hr)) lb->client_gone = true;
    return !lb->client_gone;
}

bool fc_loopback_post(fc_loopback *lb, const fc_openai_api *api, const char *host, const fc_http_request *req,
                      const char *path, const char *body, fc_sse_cb on_event, void *user)
{
    lb->sse = fc_sse_parser_new(0);
    fc_str_init(&lb->raw, 0);
    lb->hr = req;
    lb->on_event = on_event;
    lb->user = user;
    const char *auth = fc_http_header(req, "Authorization");
    char *auth_h = auth ? fc_xasprintf("Authorization: %s", auth) : NULL;
    const char *headers[2] = {auth_h, NULL};
    fc_http_call call = {.headers = headers, .keep_going = keep_going, .user = lb, .loopback = true};
    char *u = fc_loopback_url(api, host, path);
    lb->ok = fc_http_post_stream_ex(u, body, strlen(body), 0, &call, on_data, lb, &lb->res);
    free(u);
    free(auth_h);
    return lb->ok;
}

void fc_loopback_free(fc_loopback *lb)
{
    fc_http_response_free(&lb->res);
    fc_sse_parser_free(lb->sse);
    lb->sse = NULL;
    fc_str_free(&lb->raw);
}
