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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "format/hub.h"
#include "cli.h"
#include "net/http.h"
#include "serve/controller.h"
#include "serve/openai_api.h"
#include "serve/worker.h"
#include "serve/web.h"

int fc_cmd_serve(int argc, char **argv);

/* One part of the process to stop, on a thread of its own: the API server
 * and then the web UI mounted on it, a worker, or the controller. */
typedef struct serve_stop {
    fc_openai_api *api;
    fc_web *web;
    fc_worker *worker;
    fc_controller *ctl;
    int front_port; /* a worker or the controller: the API server's port (fc_http_shutdown_wait_for) */
    pthread_t t;
    bool started;
} serve_stop;

static void *serve_stop_main(void *arg)
{
    serve_stop *st = arg;
    if (st->api || st->web) {
        fc_openai_api_free(st->api); /* its handlers may use the web UI's state */
        fc_web_free(st->web);
    }
    if (st->front_port > 0) fc_http_shutdown_wait_for(st->front_port); /* its relays see it stop first */
    fc_worker_free(st->worker);
    fc_controller_free(st->ctl);
    return NULL;
}

/* The models of the command line: each --model-path starts one, the
 * --model-names and --conv-template after it apply to it. */
typedef struct serve_models {
    fc_worker_model *v;
    int n;
} serve_models;

static const char *on_model_path(const fc_flag *f, const char *v, void *dst)
{
    serve_models *m = dst;
    m->v[m->n++].model_path = v;
    return NULL;
}

/* --model-names / --conv-template: for the last --model-path (the default
 * model when none came before). */
static const char *on_model_option(const fc_flag *f, const char *v, void *dst)
{
    serve_models *m = dst;
    if (m->n == 0) m->v[m->n++].model_path = fc_cli_default_model();
    if (!strcmp(f->names, "--model-names")) m->v[m->n - 1].model_names = v;
    else m->v[m->n - 1].conv_template = v;
    return NULL;
}

int fc_cmd_serve(int argc, char **argv)
{
    const char *host = "localhost", *method = "shortest_queue";
    int ctl_port = 21001, worker_port = 21002, api_port = 8000;
    /* at most one model per argument */
    serve_models sm = {fc_xcalloc((size_t)argc + 1, sizeof(fc_worker_model)), 0};
    fc_cli_api_access acc = {0};
    bool ssl = false;
    fc_worker_params wp = {0};
    fc_cli_device dev = {0};
    fc_web_params webp = {0};
    bool no_web = false;
    const fc_flag flags[] = {
        {.kind = FC_FLAG_SECTION, .help = "models (repeat --model-path for several workers; --model-names and "
                                          "--conv-template\napply to the --model-path before them):"},
        {"--model-path", FC_FLAG_FUNC, &sm, .fn = on_model_path, .metavar = "PATH",
         .help = "GGUF file or Hugging Face folder (default: the default model)"},
        {"--model-names", FC_FLAG_FUNC, &sm, .fn = on_model_option, .metavar = "A,B",
         .help = "names the worker serves (default: the file name)"},
        {"--conv-template", FC_FLAG_FUNC, &sm, .fn = on_model_option, .metavar = "NAME",
         .help = "FastChat template name, or auto"},
        {.kind = FC_FLAG_SECTION, .help = "servers:"},
        {"--host", FC_FLAG_STRING, &host, .metavar = "HOST", .help = "listen address of all three (default localhost)"},
        {"--controller-port", FC_FLAG_INT, &ctl_port, .max = 65535, .help = "(default 21001)"},
        {"--worker-port", FC_FLAG_INT, &worker_port, .max = 65535,
         .help = "first worker's port, the next ones follow (default 21002)"},
        {"--port|--api-port", FC_FLAG_INT, &api_port, .max = 65535, .help = "API server port (default 8000)"},
        {"--dispatch-method", FC_FLAG_STRING, &method, .metavar = "M",
         .help = "lottery | shortest_queue (default shortest_queue)"},
        FC_CLI_API_ACCESS_FLAGS(&acc),
        {.kind = FC_FLAG_SECTION, .help = "worker:"},
        {"--limit-worker-concurrency", FC_FLAG_INT, &wp.limit_worker_concurrency, .max = 1 << 20,
         .help = "requests batched at once per worker (default 5)"},
        {"--stream-interval", FC_FLAG_INT, &wp.stream_interval, .max = 1 << 20,
         .help = "tokens per streamed chunk (default 2)"},
        {"--seed", FC_FLAG_UINT64, &wp.seed, .seen = &wp.has_seed, .help = "re-seed every generation"},
        {"--threads", FC_FLAG_INT, &wp.n_threads, .max = 4096, .help = "compute threads per model (default: all CPUs)"},
        {"--kv-cache-tokens", FC_FLAG_INT64, &wp.kv_cache_tokens, .max = 9.2e18, .help = "KV cache budget per model"},
        {"--exact", FC_FLAG_TRUE, &wp.exact, .help = "f32 reference mode (as fastchat worker)"},
        {"--act8", FC_FLAG_TRUE, &wp.act8, .help = "8-bit activations (as fastchat worker)"},
        FC_CLI_DEVICE_FLAGS(&dev),
        {.kind = FC_FLAG_SECTION, .help = "web UI at / (fastchat web --help; FASTCHAT_WEB_RATE_LIMIT=N: sends per IP per minute):"},
        {"--arena-config", FC_FLAG_STRING, &webp.arena_config, .metavar = "F", .help = "Arena sampling weights, targets and contestants"},
        {"--judge-data-dir", FC_FLAG_STRING, &webp.judge_data_dir, .metavar = "DIR",
         .help = "serve the MT-bench results page at /results from this llm_judge data/ folder"},
        {"--judge-bench-name", FC_FLAG_STRING, &webp.judge_bench, .metavar = "NAME",
         .help = "its question set (default fc_bench)"},
        {"--judge-model", FC_FLAG_STRING, &webp.judge_model, .metavar = "NAME", .help = "whose judgments (default gpt-4)"},
        {"--web-db", FC_FLAG_STRING, &webp.db_path, .metavar = "F", .help = "conversations and votes (default ~/.cache/fastchat/arena.db)"},
        {"--register-api-endpoint-file", FC_FLAG_STRING, &webp.api_endpoint_file, .metavar = "F",
         .help = "OpenAI-compatible endpoints as extra contestants (FastChat's format)"},
        {"--no-web", FC_FLAG_TRUE, &no_web, .help = "serve the API only"},
        {.kind = FC_FLAG_SECTION, .help = "other:"},
        {"--ssl", FC_FLAG_TRUE, &ssl, .help = "serve HTTPS (key and certificate from SSL_KEYFILE, SSL_CERTFILE)"},
        {"-v|--verbose", FC_FLAG_FUNC0, .fn = fc_cli_flag_verbose, .help = "log registrations, heartbeats and requests"},
        {0},
    };
    const fc_flags_cmd cmd = {.usage = "fastchat serve [options]", .flags = flags};
    fc_flags_parse_or_exit(&cmd, argc, argv);
    fc_cli_device_apply(&dev);
    wp.load_8bit = dev.load_8bit;
    fc_worker_model *models = sm.v;
    int n_models = sm.n;
    if (n_models == 0) models[n_models++].model_path = fc_cli_default_model();
    int d = fc_dispatch_from_str(method);
    if (d < 0) fc_cli_die("use --dispatch-method lottery or shortest_queue", "invalid dispatch method '%s'", method);
    fc_cli_ssl_setup(ssl);
    /* one process, three of FastChat's log files: each server's lines
     * (by their "controller: ", "worker: ", "api: " prefix) to its own */
    fc_cli_log_file_for("controller", "controller.log", "controller: ");
    fc_cli_log_file_for("model_worker", fc_cli_worker_log_name(), "worker: ");
    fc_cli_log_file_for("openai_api_server", "openai_api_server.log", "api: ");
    for (int i = 0; i < n_models; i++) {
        char *local = NULL; /* a Hub repo id: its file or folder in the cache (format/hub.h) */
        if (fc_hub_resolve(models[i].model_path, NULL, &local) != FC_OK || access(local, R_OK) != 0)
            fc_cli_die("fetch the default model with scripts/fetch_model.sh or pass --model-path",
                       "%s%s", local ? models[i].model_path : fc_last_error(), local ? ": cannot read the model" : "");
        free(local);
    }
    signal(SIGPIPE, SIG_IGN);

    fc_controller_params cp = {.host = host, .port = ctl_port, .dispatch = (enum fc_dispatch)d};
    fc_controller *ctl = fc_controller_start(&cp);
    if (!ctl) fc_cli_die("is another process using the port? try --controller-port", "controller: %s", fc_last_error());
    char ctl_url[256];
    snprintf(ctl_url, sizeof ctl_url, "%s://%s:%d", fc_http_scheme(), !strcmp(host, "0.0.0.0") ? "localhost" : host,
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

    fc_openai_api_params ap = {.host = host, .port = api_port, .controller_address = ctl_url};
    fc_cli_api_access_apply(&acc, &ap);
    char *web_db = webp.db_path ? NULL : fc_cli_web_db_default();
    if (!webp.db_path) webp.db_path = web_db;
    webp.api_key = acc.keys.n ? acc.keys.v[0] : NULL;
    fc_web *web = no_web ? NULL : fc_web_new(&webp);
    if (!no_web && !web) fc_cli_die("check --web-db, --arena-config and --judge-data-dir", "web: %s", fc_last_error());
    ap.mount = web ? fc_web_mount_hook : NULL, ap.mount_user = web;
    fc_openai_api *api = fc_openai_api_start(&ap);
    if (!api) fc_cli_die("is another process using the port? try --port", "api: %s", fc_last_error());
    printf("api: %s://%s:%d/v1\n", fc_http_scheme(), !strcmp(host, "0.0.0.0") ? "localhost" : host, fc_openai_api_port(api));
    if (web) {
        char base[300];
        snprintf(base, sizeof base, "%s://%s:%d", fc_http_scheme(), !strcmp(host, "0.0.0.0") ? "127.0.0.1" : host, fc_openai_api_port(api));
        fc_web_set_api_base(web, base);
        printf("web: %s://%s:%d/\n", fc_http_scheme(), !strcmp(host, "0.0.0.0") ? "localhost" : host, fc_openai_api_port(api));
    }
    printf("ready\n");
    fflush(stdout);

    fc_cli_wait_for_stop();

    /* every server stops accepting at once, then all stop in parallel by one
     * deadline (the servers' 1 s grace): in-flight clients get their last
     * answer (an error) within it, not within one grace after another. The
     * workers and the controller refuse connections only once the API server
     * has begun to stop, so that its relays failing are told as "shutting
     * down" to its clients. */
    fc_http_shutdown_begin(0);
    serve_stop *stops = fc_xcalloc((size_t)n_models + 2, sizeof *stops);
    int n_stops = 0;
    stops[n_stops++] = (serve_stop){.api = api, .web = web};
    int front = fc_openai_api_port(api);
    for (int i = 0; i < n_models; i++) stops[n_stops++] = (serve_stop){.worker = workers[i], .front_port = front};
    stops[n_stops++] = (serve_stop){.ctl = ctl, .front_port = front};
    for (int i = 0; i < n_stops; i++)
        stops[i].started = pthread_create(&stops[i].t, NULL, serve_stop_main, &stops[i]) == 0;
    for (int i = 0; i < n_stops; i++) {
        if (stops[i].started) pthread_join(stops[i].t, NULL);
        else serve_stop_main(&stops[i]);
    }
    free(stops);
    free(web_db);
    free(workers);
    free(models);
    fc_cli_api_access_free(&acc);
    return 0;
}
