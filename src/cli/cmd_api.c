/*
 * cmd_api.c: `fastchat api`, FastChat's `python3 -m
 * fastchat.serve.openai_api_server` (src/serve/openai_api.h).
 *
 * Flags as FastChat's: --host (localhost) --port (8000) --controller-address
 * (http://localhost:21001) --allow-credentials --allowed-origins /
 * --allowed-methods / --allowed-headers (JSON lists, default ["*"]) --api-keys
 * k1,k2 --ssl (accepted, warns: TLS is not implemented). Unlike FastChat,
 * --api-keys also guards /api/v1/token_check and /api/v1/chat/completions.
 */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "cli.h"
#include "serve/openai_api.h"

int fc_cmd_api(int argc, char **argv);

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastchat api [options]\n"
            "  --host HOST                listen address (default localhost)\n"
            "  --port N                   port (default 8000)\n"
            "  --controller-address URL   (default http://localhost:21001)\n"
            "  --api-keys K1,K2           accepted bearer tokens (every route, /api/v1/ ones too)\n"
            "  --allowed-origins JSON     CORS origins (default [\"*\"])\n"
            "  --allowed-methods JSON     CORS methods (default [\"*\"])\n"
            "  --allowed-headers JSON     CORS headers (default [\"*\"])\n"
            "  --allow-credentials        CORS credentials\n"
            "  --ssl                      accepted for FastChat compatibility; TLS is not implemented\n"
            "  -v, --verbose              log requests to workers\n"
            "environment: FASTCHAT_WORKER_API_TIMEOUT (100 s), FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE (4)\n");
}

/* Shared with cmd_serve.c (prototypes for cli.h):
 * fc_cli_json_list_csv: a JSON list of strings ('["a", "b"]') as "a,b" (what
 * the HTTP server's CORS options take); dies on anything else. Caller frees.
 * fc_cli_split_csv: "k1,k2" -> malloc'd array of malloc'd items (empty items
 * dropped), *n items. */



char *fc_cli_json_list_csv(const char *flag, const char *v)
{
    cJSON *arr = cJSON_Parse(v);
    if (!cJSON_IsArray(arr)) fc_cli_die("pass a JSON list, e.g. '[\"*\"]'", "%s: not a JSON list: %s", flag, v);
    size_t cap = strlen(v) + 1, len = 0;
    char *out = fc_xcalloc(cap, 1);
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it)) fc_cli_die("pass a JSON list of strings", "%s: not a list of strings: %s", flag, v);
        size_t n = strlen(it->valuestring);
        if (len + n + 2 > cap) out = fc_xrealloc(out, cap = 2 * (len + n + 2));
        if (len) out[len++] = ',';
        memcpy(out + len, it->valuestring, n + 1);
        len += n;
    }
    cJSON_Delete(arr);
    return out;
}

char **fc_cli_split_csv(const char *s, int *n)
{
    char **keys = NULL;
    *n = 0;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len) {
            keys = fc_xrealloc(keys, sizeof(char *) * (size_t)(*n + 1));
            keys[*n] = fc_xmalloc(len + 1);
            memcpy(keys[*n], p, len);
            keys[*n][len] = '\0';
            (*n)++;
        }
        p += len + (e ? 1 : 0);
    }
    return keys;
}

int fc_cmd_api(int argc, char **argv)
{
    const char *host = "localhost", *ctl = "http://localhost:21001";
    int port = 8000;
    char *origins = NULL, *methods = NULL, *headers = NULL;
    char **keys = NULL;
    int n_keys = 0;
    bool creds = false, ssl = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host") && v) {
            host = v, i++;
        } else if (!strcmp(a, "--port") && v) {
            port = atoi(v), i++;
        } else if (!strcmp(a, "--controller-address") && v) {
            ctl = v, i++;
        } else if (!strcmp(a, "--api-keys") && v) {
            keys = fc_cli_split_csv(v, &n_keys), i++;
        } else if (!strcmp(a, "--allowed-origins") && v) {
            free(origins), origins = fc_cli_json_list_csv(a, v), i++;
        } else if (!strcmp(a, "--allowed-methods") && v) {
            free(methods), methods = fc_cli_json_list_csv(a, v), i++;
        } else if (!strcmp(a, "--allowed-headers") && v) {
            free(headers), headers = fc_cli_json_list_csv(a, v), i++;
        } else if (!strcmp(a, "--allow-credentials")) {
            creds = true;
        } else if (!strcmp(a, "--ssl")) {
            ssl = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            fc_log_set_level(FC_LOG_LEVEL_INFO);
        } else {
            usage(stderr);
            fc_cli_die(NULL, "api: unknown or incomplete option '%s'", a);
        }
    }
    if (port < 0 || port > 65535) fc_cli_die(NULL, "invalid port %d", port);
    if (ssl) fprintf(stderr, "warning: --ssl is not implemented; serving plain HTTP (put a TLS proxy in front)\n");

    fc_openai_api_params p = {
        .host = host,
        .port = port,
        .controller_address = ctl,
        .api_keys = (const char *const *)keys,
        .n_api_keys = n_keys,
        .allow_origins = origins,
        .allow_methods = methods,
        .allow_headers = headers,
        .allow_credentials = creds,
    };
    fc_openai_api *a = fc_openai_api_start(&p);
    if (!a) fc_cli_die("is another process using the port? try --port", "api: %s", fc_last_error());
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("api: http://%s:%d/v1 (controller %s%s)\n", host, fc_openai_api_port(a), ctl,
           n_keys ? ", API keys required" : "");
    fflush(stdout);
    while (!stop_flag) usleep(20 * 1000); /* not pause(): the signal may land on another thread */
    fc_openai_api_free(a);
    for (int i = 0; i < n_keys; i++) free(keys[i]);
    free(keys);
    free(origins);
    free(methods);
    free(headers);
    return 0;
}
