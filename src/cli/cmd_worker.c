/*
 * cmd_worker.c: `fastchat worker`, FastChat's
 * `python3 -m fastchat.serve.model_worker` (and multi_model_worker: repeat
 * --model-path, with --model-names and --conv-template aligned by position;
 * one --conv-template applies to all). See src/serve/worker.h.
 *
 * Flags as FastChat's: --host (localhost) --port (21002) --worker-address
 * (http://localhost:<port>; FastChat's default is always :21002)
 * --controller-address (http://localhost:21001) --model-path (the default
 * model) --model-names a,b --conv-template NAME|auto
 * --limit-worker-concurrency (5) --stream-interval (2) --no-register --seed N
 * --embed-in-truncate; ours: --threads N --kv-cache-tokens N --exact --act8
 * -v/--verbose. --load-8bit quantizes f32/f16/bf16 matrices to q8_0 at
 * load; FastChat's device flags (--device, --gpus, --num-gpus, ...) are
 * answered as cli_device.c says; --debug is accepted and ignored; --ssl
 * serves HTTPS (SSL_KEYFILE, SSL_CERTFILE). Log file:
 * $LOGDIR/model_worker_<id>.log.
 * Runs until SIGINT/SIGTERM, then stops cleanly.
 */
#include "cli.h"
#include "net/http.h"
#include "base/fc_base.h"
#include "serve/worker.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define MAX_MODELS 16

int fc_cmd_worker(int argc, char **argv)
{
    fc_worker_params p = {.host = "localhost", .port = 21002, .controller_address = "http://localhost:21001"};
    fc_worker_model models[MAX_MODELS] = {{0}};
    fc_flag_list paths = {0}, names = {0}, templates = {0};
    bool ssl = false;
    fc_cli_device dev = {0};
    const fc_flag flags[] = {
        {"--host", FC_FLAG_STRING, &p.host, .metavar = "HOST", .help = "listen address (default localhost)"},
        {"--port", FC_FLAG_INT, &p.port, .max = 65535, .help = "port (default 21002)"},
        {"--worker-address", FC_FLAG_STRING, &p.worker_address, .metavar = "URL",
         .help = "address the controller calls (default http://localhost:PORT)"},
        {"--controller-address", FC_FLAG_STRING, &p.controller_address, .metavar = "URL",
         .help = "(default http://localhost:21001)"},
        {"--model-path", FC_FLAG_LIST, &paths, .metavar = "PATH",
         .help = "GGUF file or Hugging Face folder; repeat for several models (default: the default model)"},
        {"--model-names", FC_FLAG_LIST, &names, .metavar = "a,b",
         .help = "names served (default: the path's last component); once per model"},
        {"--conv-template", FC_FLAG_LIST, &templates, .metavar = "NAME|auto",
         .help = "conversation template (default: picked from the model)"},
        {"--limit-worker-concurrency", FC_FLAG_INT, &p.limit_worker_concurrency, 1, 1 << 20,
         .help = "requests admitted at once, the batch width (default 5)"},
        {"--stream-interval", FC_FLAG_INT, &p.stream_interval, 1, 1 << 20,
         .help = "tokens between stream chunks (default 2)"},
        {"--no-register", FC_FLAG_TRUE, &p.no_register, .help = "do not register with the controller"},
        {"--seed", FC_FLAG_UINT64, &p.seed, .max = 9.2e18, .seen = &p.has_seed,
         .help = "seed every generation (default: random)"},
        {"--embed-in-truncate", FC_FLAG_TRUE, &p.embed_in_truncate,
         .help = "embeddings keep the first context-length tokens"},
        {"--threads", FC_FLAG_INT, &p.n_threads, .max = 4096, .help = "compute threads per model (default: all CPUs)"},
        {"--kv-cache-tokens", FC_FLAG_INT64, &p.kv_cache_tokens, .max = 9.2e18,
         .help = "KV cache budget per model in tokens"},
        {"--exact", FC_FLAG_TRUE, &p.exact, .help = "f32 reference mode (slow)"},
        {"--act8", FC_FLAG_TRUE, &p.act8,
         .help = "8-bit activations for every quantized type (llama.cpp's scheme; the default rounds them "
                 "to 16 bits where it can)"},
        {"-v|--verbose", FC_FLAG_FUNC0, .fn = fc_cli_flag_verbose, .help = "log registrations, heartbeats and loading"},
        {"--ssl", FC_FLAG_TRUE, &ssl, .help = "serve HTTPS (key and certificate from SSL_KEYFILE, SSL_CERTFILE)"},
        {"--debug", .kind = FC_FLAG_IGNORE0},
        FC_CLI_DEVICE_FLAGS(&dev),
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat worker [options]",
        .flags = flags,
        .footer = "environment: FASTCHAT_WORKER_HEART_BEAT_INTERVAL (45 s)\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    fc_cli_device_apply(&dev);
    p.load_8bit = dev.load_8bit;
    if (paths.n > MAX_MODELS) fc_cli_die(NULL, "at most %d models per worker", MAX_MODELS);
    if (names.n > MAX_MODELS) fc_cli_die(NULL, "at most %d --model-names", MAX_MODELS);
    if (templates.n > MAX_MODELS) fc_cli_die(NULL, "at most %d --conv-template", MAX_MODELS);
    int n_paths = paths.n, n_names = names.n, n_templates = templates.n;
    for (int i = 0; i < n_paths; i++) models[i].model_path = paths.v[i];
    if (n_paths == 0) models[n_paths++].model_path = fc_cli_default_model();
    if (n_names > n_paths) fc_cli_die("give one --model-names per --model-path", "more --model-names than models");
    if (n_templates > 1 && n_templates != n_paths)
        fc_cli_die("give one --conv-template for all models, or one per --model-path",
                   "%d --conv-template for %d models", n_templates, n_paths);
    for (int i = 0; i < n_paths; i++) {
        models[i].model_names = i < n_names ? names.v[i] : NULL;
        models[i].conv_template = n_templates == 1 ? templates.v[0] : n_templates ? templates.v[i] : NULL;
    }
    fc_cli_ssl_setup(ssl);
    p.controller_address = fc_cli_ssl_url(p.controller_address, "http://localhost:21001");
    fc_cli_log_file("model_worker", fc_cli_worker_log_name());
    p.models = models;
    p.n_models = n_paths;

    /* SIGINT/SIGTERM are taken by sigwait below; every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    fc_worker *w = fc_worker_start(&p);
    if (!w) fc_cli_die("check --model-path and --conv-template (fastchat prompt --list), and whether another "
                       "process uses the port (--port)", "%s", fc_last_error());
    printf("worker: %s (port %d) serving %d model%s%s%s\n", fc_worker_address(w), fc_worker_port(w), n_paths,
           n_paths > 1 ? "s" : "", p.no_register ? ", not registered" : ", controller ",
           p.no_register ? "" : p.controller_address);
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "worker: %s, stopping\n", sig == SIGINT ? "interrupted" : "terminated");
    fc_worker_free(w);
    fc_flag_list_free(&paths);
    fc_flag_list_free(&names);
    fc_flag_list_free(&templates);
    return 0;
}
