/*
 * cmd_controller.c: `fastchat controller`, FastChat's
 * `python3 -m fastchat.serve.controller` (src/serve/controller.h).
 *
 * Flags as FastChat's: --host (localhost) --port (21001)
 * --dispatch-method {lottery,shortest_queue} (shortest_queue) --ssl (accepted,
 * warns: TLS is not implemented; put a TLS proxy in front).
 * Runs until SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "cli.h"
#include "serve/controller.h"

int fc_cmd_controller(int argc, char **argv);

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fastchat controller [options]\n"
            "  --host HOST               listen address (default localhost)\n"
            "  --port N                  port (default 21001)\n"
            "  --dispatch-method M       lottery | shortest_queue (default shortest_queue)\n"
            "  --ssl                     accepted for FastChat compatibility; TLS is not implemented\n"
            "  -v, --verbose             log every registration and heartbeat\n"
            "environment: FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION (90 s), FASTCHAT_WORKER_API_TIMEOUT (100 s)\n");
}

int fc_cmd_controller(int argc, char **argv)
{
    const char *host = "localhost";
    int port = 21001;
    const char *method = "shortest_queue";
    bool ssl = false;
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
        } else if (!strcmp(a, "--dispatch-method") && v) {
            method = v, i++;
        } else if (!strcmp(a, "--ssl")) {
            ssl = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            fc_log_set_level(FC_LOG_LEVEL_INFO);
        } else {
            usage(stderr);
            fc_cli_die(NULL, "controller: unknown or incomplete option '%s'", a);
        }
    }
    int d = fc_dispatch_from_str(method);
    if (d < 0) fc_cli_die("use --dispatch-method lottery or shortest_queue", "invalid dispatch method '%s'", method);
    if (port < 0 || port > 65535) fc_cli_die(NULL, "invalid port %d", port);
    if (ssl) fprintf(stderr, "warning: --ssl is not implemented; serving plain HTTP (put a TLS proxy in front)\n");

    fc_controller_params p = {.host = host, .port = port, .dispatch = (enum fc_dispatch)d};
    fc_controller *c = fc_controller_start(&p);
    if (!c) fc_cli_die("is another process using the port? try --port", "controller: %s", fc_last_error());
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("controller: http://%s:%d (dispatch %s)\n", host, fc_controller_port(c), method);
    fflush(stdout);
    while (!stop_flag) usleep(20 * 1000); /* not pause(): the signal may land on another thread */
    fc_controller_free(c);
    return 0;
}
