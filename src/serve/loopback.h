/*
 * loopback.h: a call from one API of this server to another over loopback
 * HTTP: the Responses API (serve/responses.h) and the Ollama API
 * (serve/ollama.h) relay through the OpenAI routes (/v1/chat/completions,
 * /v1/completions) of the same process, as clients of it.
 *
 * The call passes on the client's "Authorization" header (the OpenAI routes
 * check the key), reads the answer as Server-Sent Events, keeps the first
 * 64 KiB of the raw body (an error answer is plain JSON, not SSE), and stops
 * when the relaying request's client leaves. Not here: what the relay makes
 * of the events (each API its own shape).
 */
#ifndef FC_LOOPBACK_H
#define FC_LOOPBACK_H

#include <stdbool.h>

#include "base/str.h"
#include "net/http.h"
#include "net/nulstream.h"
#include "serve/openai_api.h"

typedef struct fc_loopback {
    bool ok;                 /* the transfer completed (whatever its status) */
    bool client_gone;        /* the relaying request's client left; a relay
                              * that fails to write to it sets it too */
    fc_http_response res;    /* status and error of the call */
    fc_str raw;              /* the first 64 KiB of the answer's body */
    /* private */
    fc_sse_parser *sse;
    const fc_http_request *hr;
    fc_sse_cb on_event;
    void *user;
} fc_loopback;

/* The URL of path on api's port at host ("127.0.0.1", "[::1]"); caller
 * frees. */
char *fc_loopback_url(const fc_openai_api *api, const char *host, const char *path);

/* POSTs body (JSON) to path of api (at host), with req's Authorization,
 * and feeds each SSE event of the answer to on_event(ev, user) while it
 * returns true. lb must be zeroed ({0}) before; fc_loopback_free it after,
 * also on failure. Returns lb->ok. Blocks: call it on the handler's thread. */
bool fc_loopback_post(fc_loopback *lb, const fc_openai_api *api, const char *host, const fc_http_request *req,
                      const char *path, const char *body, fc_sse_cb on_event, void *user);

/* Frees what fc_loopback_post holds (a zeroed lb: no-op). */
void fc_loopback_free(fc_loopback *lb);

#endif
