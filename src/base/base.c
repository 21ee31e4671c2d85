/*
 * base.c: status strings, logging, assertions, allocation, mmap, time.
 */

#include "fc_base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *fc_status_str(enum fc_status s)
{
    switch (s) {
    case FC_OK: return "ok";
    case FC_ERR_IO: return "I/O error";
    case FC_ERR_FORMAT: return "malformed input";
    case FC_ERR_UNSUPPORTED: return "unsupported";
    case FC_ERR_NOMEM: return "out of memory";
    case FC_ERR_ARG: return "invalid argument";
    case FC_ERR_FULL: return "no room";
    }
    return "unknown status";
}

/* ---- logging ---- */

static enum fc_log_level log_level = FC_LOG_LEVEL_WARN;
static _Thread_local char last_error[1024];

void fc_log_set_level(enum fc_log_level lvl) { log_level = lvl; }
enum fc_log_level fc_log_get_level(void) { return log_level; }
const char *fc_last_error(void) { return last_error; }

void fc_log(enum fc_log_level lvl, const char *fmt, ...)
{
    va_list ap;
    if (lvl == FC_LOG_LEVEL_ERROR) {
        va_start(ap, fmt);
        vsnprintf(last_error, sizeof last_error, fmt, ap);
        va_end(ap);
    }
    bool to_file = lvl >= FC_LOG_LEVEL_INFO && lvl < FC_LOG_LEVEL_NONE && fc_log_files_open();
    if (lvl < log_level && !to_file) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char buf[2048];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (to_file) fc_log_file_write(lvl, buf); /* logfile.c: INFO and up, whatever the console shows */
    if (lvl < log_level) return;
    if (lvl == FC_LOG_LEVEL_ERROR) fprintf(stderr, "error: %s\n", buf); /* as the CLI's fc_cli_die */
    else fprintf(stderr, "[%s] %s\n", names[lvl], buf);
}

void fc_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

/* ---- allocation ---- */

static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *fc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *fc_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *fc_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *fc_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fc_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

char *fc_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    FC_ASSERT(n >= 0);
    char *s = fc_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void *fc_aligned_alloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    memset(p, 0, n);
    return p;
}

void fc_aligned_free(void *p) { free(p); }

/* ---- mmap ---- */

fc_mmap *fc_mmap_open(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        FC_LOG_ERROR("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    fc_mmap *m = fc_xcalloc(1, sizeof *m);
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        m->data = (const uint8_t *)"";
        close(fd);
        return m;
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        FC_LOG_ERROR("%s: mmap: %s", path, strerror(errno));
        free(m);
        return NULL;
    }
    m->data = p;
    return m;
}

void fc_mmap_free(fc_mmap *m)
{
    if (!m) return;
    if (m->size) munmap((void *)m->data, m->size);
    free(m);
}

/* ---- time ---- */

double fc_time_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t fc_peak_rss(void)
{
    /* VmHWM is this process's own high-water mark; ru_maxrss also carries
     * the resident size of the process it was forked from (a 2 GB Python
     * test runner makes every child "peak" at 2 GB) */
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        bool found = false;
        while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "VmHWM: %llu kB", &kb) == 1;
        fclose(f);
        if (found) return (size_t)kb * 1024;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}
