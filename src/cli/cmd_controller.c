/*
 * cmd_controller.c: `fastchat controller`, FastChat's
 * `python3 -m fastchat.serve.controller` (src/serve/controller.h).
 *
 * Flags as FastChat's: --host (localhost) --port (21001)
 * --dispatch-method {lottery,shortest_queue} (shortest_queue) --ssl (HTTPS with
 * SSL_KEYFILE / SSL_CERTFILE). Log file: $LOGDIR/controller.log.
 * Runs until SIGINT/SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "cli.h"
#include "net/http.h"
#include "serve/controller.h"

int fc_cmd_controller(int argc, char **argv);

int fc_cmd_controller(int argc, char **argv)
{
    const char *host = "localhost";
    int port = 21001;
    const char *method = "shortest_queue";
    bool ssl = false;
    const fc_flag flags[] = {
        {"--host", FC_FLAG_STRING, &host, .metavar = "HOST", .help = "listen address (default localhost)"},
        {"--port", FC_FLAG_INT, &port, .max = 65535, .help = "port (default 21001)"},
        {"--dispatch-method", FC_FLAG_STRING, &method, .metavar = "M",
         .help = "lottery | shortest_queue (default shortest_queue)"},
        {"--ssl", FC_FLAG_TRUE, &ssl, .help = "serve HTTPS (key and certificate from SSL_KEYFILE, SSL_CERTFILE)"},
        {"-v|--verbose", FC_FLAG_FUNC0, .fn = fc_cli_flag_verbose, .help = "log every registration and heartbeat"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat controller [options]",
        .flags = flags,
        .footer = "environment: FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION (90 s), FASTCHAT_WORKER_API_TIMEOUT (100 s)\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    int d = fc_dispatch_from_str(method);
    if (d < 0) fc_cli_die("use --dispatch-method lottery or shortest_queue", "invalid dispatch method '%s'", method);
    fc_cli_ssl_setup(ssl);
    fc_cli_log_file("controller", "controller.log");

    fc_controller_params p = {.host = host, .port = port, .dispatch = (enum fc_dispatch)d};
    fc_controller *c = fc_controller_start(&p);
    if (!c) fc_cli_die("is another process using the port? try --port", "controller: %s", fc_last_error());
    signal(SIGPIPE, SIG_IGN);
    printf("controller: %s://%s:%d (dispatch %s)\n", fc_http_scheme(), host, fc_controller_port(c), method);
    fflush(stdout);
    fc_cli_wait_for_stop();
    fc_controller_free(c);
    return 0;
}
