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
 * -v/--verbose. FastChat's device flags (--device, --gpus, --num-gpus,
 * --max-gpu-memory, --dtype, --revision, --load-8bit, --cpu-offloading,
 * --debug) are accepted and ignored; --ssl warns (no TLS here).
 * Runs until SIGINT/SIGTERM, then stops cleanly.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "serve/worker.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define MAX_MODELS 16

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastchat worker [options]\n"
            "  --host HOST                    listen address (default localhost)\n"
            "  --port N                       port (default 21002)\n"
            "  --worker-address URL           address the controller calls (default http://localhost:PORT)\n"
            "  --controller-address URL       (default http://localhost:21001)\n"
            "  --model-path PATH              GGUF file or Hugging Face folder; repeat for several models\n"
            "                                 (default: the default model)\n"
            "  --model-names a,b              names served (default: the path's last component); once per model\n"
            "  --conv-template NAME|auto      conversation template (default: picked from the model)\n"
            "  --limit-worker-concurrency N   requests admitted at once, the batch width (default 5)\n"
            "  --stream-interval N            tokens between stream chunks (default 2)\n"
            "  --no-register                  do not register with the controller\n"
            "  --seed N                       seed every generation (default: random)\n"
            "  --embed-in-truncate            embeddings keep the first context-length tokens\n"
            "  --threads N                    compute threads per model (default: all CPUs)\n"
            "  --kv-cache-tokens N            KV cache budget per model in tokens\n"
            "  --exact                        f32 reference mode (slow)\n"
            "  --act8                         8-bit activations for every quantized type (llama.cpp's\n"
            "                                 scheme; the default rounds them to 16 bits where it can)\n"
            "  -v, --verbose                  log registrations, heartbeats and loading\n"
            "environment: FASTCHAT_WORKER_HEART_BEAT_INTERVAL (45 s)\n");
}

static long parse_long(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) fc_cli_die(NULL, "%s: invalid value '%s'", flag, v);
    return x;
}

int fc_cmd_worker(int argc, char **argv)
{
    fc_worker_params p = {.host = "localhost", .port = 21002, .controller_address = "http://localhost:21001"};
    fc_worker_model models[MAX_MODELS] = {{0}};
    const char *names[MAX_MODELS] = {0}, *templates[MAX_MODELS] = {0};
    int n_paths = 0, n_names = 0, n_templates = 0;
    bool ssl = false;
    for (int i = 1; i < argc; i++) {
        char flag[64];
        const char *a = argv[i], *v = NULL;
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof flag) { /* --flag=value */
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - a), a);
            a = flag;
            v = eq + 1;
        }
#define VALUE() (v ? v : (i + 1 < argc ? argv[++i] : (fc_cli_die(NULL, "%s needs a value", a), "")))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--host")) {
            p.host = VALUE();
        } else if (!strcmp(a, "--port")) {
            p.port = (int)parse_long(a, VALUE(), 0, 65535);
        } else if (!strcmp(a, "--worker-address")) {
            p.worker_address = VALUE();
        } else if (!strcmp(a, "--controller-address")) {
            p.controller_address = VALUE();
        } else if (!strcmp(a, "--model-path")) {
            if (n_paths == MAX_MODELS) fc_cli_die(NULL, "at most %d models per worker", MAX_MODELS);
            models[n_paths++].model_path = VALUE();
        } else if (!strcmp(a, "--model-names")) {
            if (n_names == MAX_MODELS) fc_cli_die(NULL, "at most %d --model-names", MAX_MODELS);
            names[n_names++] = VALUE();
        } else if (!strcmp(a, "--conv-template")) {
            if (n_templates == MAX_MODELS) fc_cli_die(NULL, "at most %d --conv-template", MAX_MODELS);
            templates[n_templates++] = VALUE();
        } else if (!strcmp(a, "--limit-worker-concurrency")) {
            p.limit_worker_concurrency = (int)parse_long(a, VALUE(), 1, 1 << 20);
        } else if (!strcmp(a, "--stream-interval")) {
            p.stream_interval = (int)parse_long(a, VALUE(), 1, 1 << 20);
        } else if (!strcmp(a, "--no-register")) {
            p.no_register = true;
        } else if (!strcmp(a, "--seed")) {
            p.has_seed = true;
            p.seed = (uint64_t)parse_long(a, VALUE(), 0, LONG_MAX);
        } else if (!strcmp(a, "--embed-in-truncate")) {
            p.embed_in_truncate = true;
        } else if (!strcmp(a, "--threads")) {
            p.n_threads = (int)parse_long(a, VALUE(), 0, 4096);
        } else if (!strcmp(a, "--kv-cache-tokens")) {
            p.kv_cache_tokens = parse_long(a, VALUE(), 0, LONG_MAX);
        } else if (!strcmp(a, "--exact")) {
            p.exact = true;
        } else if (!strcmp(a, "--act8")) {
            p.act8 = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            fc_log_set_level(FC_LOG_LEVEL_INFO);
        } else if (!strcmp(a, "--ssl")) {
            ssl = true;
        } else if (!strcmp(a, "--device") || !strcmp(a, "--gpus") || !strcmp(a, "--num-gpus") ||
                   !strcmp(a, "--max-gpu-memory") || !strcmp(a, "--dtype") || !strcmp(a, "--revision")) {
            (void)VALUE(); /* FastChat's device placement: not ours to honour */
        } else if (!strcmp(a, "--load-8bit") || !strcmp(a, "--cpu-offloading") || !strcmp(a, "--debug")) {
        } else {
            usage(stderr);
            fc_cli_die("see fastchat worker --help", "worker: unknown option '%s'", argv[i]);
        }
#undef VALUE
    }
    if (n_paths == 0) models[n_paths++].model_path = fc_cli_default_model();
    if (n_names > n_paths) fc_cli_die("give one --model-names per --model-path", "more --model-names than models");
    if (n_templates > 1 && n_templates != n_paths)
        fc_cli_die("give one --conv-template for all models, or one per --model-path",
                   "%d --conv-template for %d models", n_templates, n_paths);
    for (int i = 0; i < n_paths; i++) {
        models[i].model_names = i < n_names ? names[i] : NULL;
        models[i].conv_template = n_templates == 1 ? templates[0] : n_templates ? templates[i] : NULL;
    }
    if (ssl) fprintf(stderr, "warning: --ssl is not implemented; serving plain HTTP (put a TLS proxy in front)\n");
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
    return 0;
}
