/*
 * cli_ops.c: what the server commands share for operations: --ssl (TLS from
 * SSL_KEYFILE / SSL_CERTFILE) and the log files in $LOGDIR, as FastChat's
 * servers do them (see cli.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "cli.h"
#include "net/http.h"

void fc_cli_ssl_setup(bool ssl)
{
    if (!ssl) return;
    if (fc_http_tls_enable_from_env() != FC_OK)
        fc_cli_die("export SSL_KEYFILE=key.pem SSL_CERTFILE=cert.pem (PEM files, as FastChat's --ssl), "
                   "e.g. from: openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem "
                   "-days 365 -subj /CN=localhost",
                   "%s", fc_last_error());
}

const char *fc_cli_ssl_url(const char *url, const char *default_url)
{
    static char buf[4][512];
    static int next;
    if (!fc_http_tls_enabled() || !url || strcmp(url, default_url) || strncmp(url, "http://", 7)) return url;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "https://%s", url + 7);
    return b;
}

void fc_cli_log_file(const char *logger, const char *filename) { fc_cli_log_file_for(logger, filename, NULL); }

void fc_cli_log_file_for(const char *logger, const char *filename, const char *prefix)
{
    if (fc_log_open_file_for(logger, filename, prefix) != FC_OK)
        fc_cli_die("set LOGDIR to a writable directory (LOGDIR= writes no log file)", "%s", fc_last_error());
}

const char *fc_cli_worker_log_name(void)
{
    static char name[64];
    unsigned char r[4] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r) {
        unsigned long x = (unsigned long)time(NULL) ^ ((unsigned long)getpid() << 16);
        memcpy(r, &x, sizeof r);
    }
    if (fd >= 0) close(fd);
    snprintf(name, sizeof name, "model_worker_%02x%02x%02x%02x.log", r[0], r[1], r[2], r[3]);
    return name;
}
