/*
 * cmd_api.c: `fastchat api`, FastChat's `python3 -m
 * fastchat.serve.openai_api_server` (src/serve/openai_api.h).
 *
 * Flags as FastChat's: --host (localhost) --port (8000) --controller-address
 * (http://localhost:21001) --allow-credentials --allowed-origins /
 * --allowed-methods / --allowed-headers (JSON lists, default ["*"]) --api-keys
 * k1,k2 --ssl (HTTPS from SSL_KEYFILE, SSL_CERTFILE). Unlike FastChat,
 * --api-keys also guards /api/v1/token_check and /api/v1/chat/completions.
 */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "base/str.h"
#include "cli.h"
#include "net/http.h"
#include "serve/openai_api.h"

int fc_cmd_api(int argc, char **argv);

/* Shared with cmd_serve.c (prototypes for cli.h):
 * fc_cli_json_list_csv: a JSON list of strings ('["a", "b"]') as "a,b" (what
 * the HTTP server's CORS options take); dies on anything else. Caller frees.
 * fc_cli_split_csv: "k1,k2" -> malloc'd array of malloc'd items (empty items
 * dropped), *n items. */



char *fc_cli_json_list_csv(const char *flag, const char *v)
{
    cJSON *arr = cJSON_Parse(v);
    if (!cJSON_IsArray(arr)) fc_cli_die("pass a JSON list, e.g. '[\"*\"]'", "%s: not a JSON list: %s", flag, v);
    fc_str out = {0};
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it)) fc_cli_die("pass a JSON list of strings", "%s: not a list of strings: %s", flag, v);
        if (out.len) fc_str_putc(&out, ',');
        fc_str_puts(&out, it->valuestring);
    }
    cJSON_Delete(arr);
    return fc_str_take(&out);
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
    fc_cli_api_access acc = {0};
    bool ssl = false;
    const fc_flag flags[] = {
        {"--host", FC_FLAG_STRING, &host, .metavar = "HOST", .help = "listen address (default localhost)"},
        {"--port", FC_FLAG_INT, &port, .max = 65535, .help = "port (default 8000)"},
        {"--controller-address", FC_FLAG_STRING, &ctl, .metavar = "URL", .help = "(default http://localhost:21001)"},
        FC_CLI_API_ACCESS_FLAGS(&acc),
        {"--ssl", FC_FLAG_TRUE, &ssl, .help = "serve HTTPS (key and certificate from SSL_KEYFILE, SSL_CERTFILE)"},
        {"-v|--verbose", FC_FLAG_FUNC0, .fn = fc_cli_flag_verbose, .help = "log requests to workers"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat api [options]",
        .flags = flags,
        .footer = "environment: FASTCHAT_WORKER_API_TIMEOUT (100 s), FASTCHAT_WORKER_API_EMBEDDING_BATCH_SIZE (4)\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    fc_cli_ssl_setup(ssl);
    ctl = fc_cli_ssl_url(ctl, "http://localhost:21001");
    fc_cli_log_file("openai_api_server", "openai_api_server.log");

    fc_openai_api_params p = {.host = host, .port = port, .controller_address = ctl};
    fc_cli_api_access_apply(&acc, &p);
    fc_openai_api *a = fc_openai_api_start(&p);
    if (!a) fc_cli_die("is another process using the port? try --port", "api: %s", fc_last_error());
    signal(SIGPIPE, SIG_IGN);
    printf("api: %s://%s:%d/v1 (controller %s%s)\n", fc_http_scheme(), host, fc_openai_api_port(a), ctl,
           acc.keys.n ? ", API keys required" : "");
    fflush(stdout);
    fc_cli_wait_for_stop();
    fc_openai_api_free(a);
    fc_cli_api_access_free(&acc);
    return 0;
}
