/*
 * cmd_serve.c: `fastchat serve`, everything in one process: a controller,
 * one worker per --model-path (default: the default model) and the
 * OpenAI-compatible API server, wired together over loopback HTTP exactly as
 * separate processes would be (FastChat's launch_all_serve starts the same
 * three kinds of process). Prints the URLs, serves until SIGINT/SIGTERM.
 *
 * Ports: controller 21001, workers 21002, 21003, ... (one per model), API
 * 8000; each can be changed, and 0 picks a free port (the URLs printed are
 * the bound ones).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "cli.h"
#include "serve/controller.h"
#include "serve/openai_api.h"
#include "serve/worker.h"

int fc_cmd_serve(int argc, char **argv);

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastchat serve [options]\n"
            "models (repeat --model-path for several workers; --model-names and --conv-template\n"
            "apply to the --model-path before them):\n"
            "  --model-path PATH              GGUF file or Hugging Face folder (default: the default model)\n"
            "  --model-names A,B              names the worker serves (default: the file name)\n"
            "  --conv-template NAME           FastChat template name, or auto\n"
            "servers:\n"
            "  --host HOST                    listen address of all three (default localhost)\n"
            "  --controller-port N            (default 21001)\n"
            "  --worker-port N                first worker's port, the next ones follow (default 21002)\n"
            "  --port N                       API server port (default 8000)\n"
            "  --dispatch-method M            lottery | shortest_queue (default shortest_queue)\n"
            "  --api-keys K1,K2               bearer tokens the API requires\n"
            "  --allowed-origins JSON, --allowed-methods JSON, --allowed-headers JSON, --allow-credentials\n"
            "worker:\n"
            "  --limit-worker-concurrency N   requests batched at once per worker (default 5)\n"
            "  --stream-interval N            tokens per streamed chunk (default 2)\n"
            "  --seed N                       re-seed every generation\n"
            "  --threads N                    compute threads per model (default: all CPUs)\n"
            "  --kv-cache-tokens N            KV cache budget per model\n"
            "  --exact | --act8               f32 reference mode / 8-bit activations (as fastchat worker)\n"
            "  --ssl                          accepted; TLS is not implemented\n"
            "  -v, --verbose                  log registrations, heartbeats and requests\n");
}

/* in cmd_api.c */
char *fc_cli_json_list_csv(const char *flag, const char *v);
char **fc_cli_split_csv(const char *s, int *n);

int fc_cmd_serve(int argc, char **argv)
{
    const char *host = "localhost", *method = "shortest_queue";
    int ctl_port = 21001, worker_port = 21002, api_port = 8000;
    fc_worker_model *models = fc_xcalloc((size_t)argc + 1, sizeof(fc_worker_model));
    int n_models = 0;
    char *origins = NULL, *methods = NULL, *headers = NULL;
    char **keys = NULL;
    int n_keys = 0;
    bool creds = false, ssl = false;
    fc_worker_params wp = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--model-path") && v) {
            models[n_models++].model_path = v, i++;
        } else if ((!strcmp(a, "--model-names") || !strcmp(a, "--conv-template")) && v) {
            if (n_models == 0) models[n_models++].model_path = fc_cli_default_model();
            if (!strcmp(a, "--model-names")) models[n_models - 1].model_names = v;
            else models[n_models - 1].conv_template = v;
            i++;
        } else if (!strcmp(a, "--host") && v) {
            host = v, i++;
        } else if (!strcmp(a, "--controller-port") && v) {
            ctl_port = atoi(v), i++;
        } else if (!strcmp(a, "--worker-port") && v) {
            worker_port = atoi(v), i++;
        } else if ((!strcmp(a, "--port") || !strcmp(a, "--api-port")) && v) {
            api_port = atoi(v), i++;
        } else if (!strcmp(a, "--dispatch-method") && v) {
            method = v, i++;
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
        } else if (!strcmp(a, "--limit-worker-concurrency") && v) {
            wp.limit_worker_concurrency = atoi(v), i++;
        } else if (!strcmp(a, "--stream-interval") && v) {
            wp.stream_interval = atoi(v), i++;
        } else if (!strcmp(a, "--seed") && v) {
            wp.has_seed = true, wp.seed = strtoull(v, NULL, 10), i++;
        } else if (!strcmp(a, "--threads") && v) {
            wp.n_threads = atoi(v), i++;
        } else if (!strcmp(a, "--kv-cache-tokens") && v) {
            wp.kv_cache_tokens = atoll(v), i++;
        } else if (!strcmp(a, "--exact")) {
            wp.exact = true;
        } else if (!strcmp(a, "--act8")) {
            wp.act8 = true;
        } else if (!strcmp(a, "--ssl")) {
            ssl = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            fc_log_set_level(FC_LOG_LEVEL_INFO);
        } else {
            usage(stderr);
            fc_cli_die(NULL, "serve: unknown or incomplete option '%s'", a);
        }
    }
    if (n_models == 0) models[n_models++].model_path = fc_cli_default_model();
    int d = fc_dispatch_from_str(method);
    if (d < 0) fc_cli_die("use --dispatch-method lottery or shortest_queue", "invalid dispatch method '%s'", method);
    if (ssl) fprintf(stderr, "warning: --ssl is not implemented; serving plain HTTP (put a TLS proxy in front)\n");
    for (int i = 0; i < n_models; i++)
        if (access(models[i].model_path, R_OK) != 0)
            fc_cli_die("fetch the default model with scripts/fetch_model.sh or pass --model-path",
                       "%s: cannot read the model", models[i].model_path);
    signal(SIGPIPE, SIG_IGN);

    fc_controller_params cp = {.host = host, .port = ctl_port, .dispatch = (enum fc_dispatch)d};
    fc_controller *ctl = fc_controller_start(&cp);
    if (!ctl) fc_cli_die("is another process using the port? try --controller-port", "controller: %s", fc_last_error());
    char ctl_url[256];
    snprintf(ctl_url, sizeof ctl_url, "http://%s:%d", !strcmp(host, "0.0.0.0") ? "localhost" : host,
             fc_controller_port(ctl));
    printf("controller: %s\n", ctl_url);
    fflush(stdout);

    fc_worker **workers = fc_xcalloc((size_t)n_models, sizeof(fc_worker *));
    for (int i = 0; i < n_models; i++) {
        fc_worker_params p = wp;
        p.host = host;
        p.port = worker_port > 0 ? worker_port + i : 0;
        p.controller_address = ctl_url;
        p.models = &models[i];
        p.n_models = 1;
        workers[i] = fc_worker_start(&p);
        if (!workers[i])
            fc_cli_die("check the model file, or the port (--worker-port)", "worker for %s: %s", models[i].model_path,
                       fc_last_error());
        printf("worker: %s (%s)\n", fc_worker_address(workers[i]), models[i].model_path);
        fflush(stdout);
    }

    fc_openai_api_params ap = {
        .host = host,
        .port = api_port,
        .controller_address = ctl_url,
        .api_keys = (const char *const *)keys,
        .n_api_keys = n_keys,
        .allow_origins = origins,
        .allow_methods = methods,
        .allow_headers = headers,
        .allow_credentials = creds,
    };
    fc_openai_api *api = fc_openai_api_start(&ap);
    if (!api) fc_cli_die("is another process using the port? try --port", "api: %s", fc_last_error());
    printf("api: http://%s:%d/v1\n", !strcmp(host, "0.0.0.0") ? "localhost" : host, fc_openai_api_port(api));
    printf("ready\n");
    fflush(stdout);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop_flag) usleep(20 * 1000); /* not pause(): the signal may land on another thread */

    fc_openai_api_free(api);
    for (int i = 0; i < n_models; i++) fc_worker_free(workers[i]);
    fc_controller_free(ctl);
    free(workers);
    free(models);
    for (int i = 0; i < n_keys; i++) free(keys[i]);
    free(keys);
    free(origins);
    free(methods);
    free(headers);
    return 0;
}
