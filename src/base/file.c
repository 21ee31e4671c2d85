/*
 * file.c: whole-file reads and atomic replacement (file.h).
 */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *fc_file_read(const char *path, size_t *len, size_t max)
{
    bool use_stdin = !strcmp(path, "-");
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0, r;
    char *buf = malloc(cap);
    bool too_big = false;
    while (buf) {
        r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (max && n > max) { too_big = true; break; }
        if (r == 0) break;
        if (n + 1 == cap) {
            char *nb = cap > (size_t)-1 / 2 ? NULL : realloc(buf, cap * 2);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f) ? errno : 0;
    if (!use_stdin) fclose(f);
    if (!buf) {
        FC_LOG_ERROR("%s: out of memory", path);
        return NULL;
    }
    if (too_big || err) {
        if (too_big) FC_LOG_ERROR("%s: larger than %zu bytes", path, max);
        else FC_LOG_ERROR("%s: %s", path, strerror(err));
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

enum fc_status fc_file_write_atomic(const char *path, const void *data, size_t len)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp) return FC_ERR_NOMEM;
    snprintf(tmp, pl + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        FC_LOG_ERROR("%s: %s", tmp, strerror(errno));
        free(tmp);
        return FC_ERR_IO;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto fail;
        p += w, left -= (size_t)w;
    }
    if (fsync(fd) != 0) goto fail;
    if (close(fd) != 0) { fd = -1; goto fail; }
    fd = -1;
    if (rename(tmp, path) != 0) goto fail;
    /* the rename itself is made durable by syncing the folder */
    char *dir = strdup(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
        int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return FC_OK;
fail:
    FC_LOG_ERROR("%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return FC_ERR_IO;
}
