/*
 * logfile.c: log files in $LOGDIR as FastChat's build_logger writes them
 * (fastchat/utils.py: logging.Formatter "%(asctime)s | %(levelname)s |
 * %(name)s | %(message)s" with datefmt "%Y-%m-%d %H:%M:%S", and
 * TimedRotatingFileHandler(when="D", utc=True)), plus a size bound of ours.
 * See fc_log_open_file in fc_base.h.
 */
#include "fc_base.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_SINKS 8
#define DAY_S 86400
#define DEFAULT_MAX_BYTES (100LL << 20)

typedef struct sink {
    char *logger;
    char *path;
    int fd;
    long long size;
    time_t rollover_at;
    char *prefix; /* NULL: every line; else the lines starting with it (and those no file claims) */
} sink;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static sink sinks[MAX_SINKS];
static int n_sinks;
static atomic_bool any_open;
static long long max_bytes = DEFAULT_MAX_BYTES;

bool fc_log_files_open(void) { return atomic_load_explicit(&any_open, memory_order_relaxed); }

/* mkdir -p; 0 or -1 with errno */
static int make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return errno = ENAMETOOLONG, -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    return 0;
}

int fc_log_open_file(const char *logger, const char *filename) { return fc_log_open_file_for(logger, filename, NULL); }

int fc_log_open_file_for(const char *logger, const char *filename, const char *prefix)
{
    const char *dir = getenv("LOGDIR");
    if (!dir) dir = ".";
    if (!*dir) return FC_OK; /* FastChat: LOGDIR "" means no file */
    if (make_dirs(dir)) {
        FC_LOG_ERROR("LOGDIR %s: %s", dir, strerror(errno));
        return FC_ERR_IO;
    }
    const char *mb = getenv("FASTCHAT_LOG_MAX_BYTES");
    if (mb && *mb) {
        char *end;
        long long v = strtoll(mb, &end, 10);
        if (!*end && v > 0) max_bytes = v < 1024 ? 1024 : v;
    }
    char *path = fc_xasprintf("%s/%s", dir, filename);
    struct stat before;
    bool existed = stat(path, &before) == 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        free(path);
        return FC_ERR_IO;
    }
    struct stat st;
    time_t now = time(NULL);
    /* Python's TimedRotatingFileHandler: the first rollover is one interval
     * after the existing file's mtime (now for a new file) */
    if (fstat(fd, &st) != 0) st.st_size = 0;
    time_t base = existed ? before.st_mtime : now;
    pthread_mutex_lock(&mu);
    if (n_sinks == MAX_SINKS) {
        pthread_mutex_unlock(&mu);
        close(fd);
        FC_LOG_ERROR("%s: too many log files", path);
        free(path);
        return FC_ERR_FULL;
    }
    sinks[n_sinks++] = (sink){fc_xstrdup(logger), path, fd, st.st_size, base + DAY_S, prefix ? fc_xstrdup(prefix) : NULL};
    atomic_store(&any_open, true);
    pthread_mutex_unlock(&mu);
    return FC_OK;
}

const char *fc_log_file_path(void)
{
    pthread_mutex_lock(&mu);
    const char *p = n_sinks ? sinks[n_sinks - 1].path : NULL;
    pthread_mutex_unlock(&mu);
    return p;
}

void fc_log_close_files(void)
{
    pthread_mutex_lock(&mu);
    atomic_store(&any_open, false);
    for (int i = 0; i < n_sinks; i++) {
        close(sinks[i].fd);
        free(sinks[i].logger);
        free(sinks[i].path);
        free(sinks[i].prefix);
    }
    n_sinks = 0;
    pthread_mutex_unlock(&mu);
}

/* closes s's file, renames it to dst, opens a new one; with mu held */
static void rotate_to(sink *s, const char *dst, bool replace)
{
    close(s->fd);
    if (replace) unlink(dst);
    rename(s->path, dst); /* on failure the old file just goes on growing */
    s->fd = open(s->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    s->size = 0;
}

static void maybe_rotate(sink *s, time_t now, size_t add)
{
    char day[16];
    struct tm tm;
    if (now >= s->rollover_at) {
        time_t covered = s->rollover_at - DAY_S;
        gmtime_r(&covered, &tm);
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
        char *dst = fc_xasprintf("%s.%s", s->path, day);
        rotate_to(s, dst, true);
        free(dst);
        time_t next = now + DAY_S; /* computeRollover(now) */
        while (next <= now) next += DAY_S;
        s->rollover_at = next;
    }
    if (s->size > 0 && s->size + (long long)add > max_bytes) {
        gmtime_r(&now, &tm);
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
        for (int n = 1; n < 100000; n++) {
            char *dst = fc_xasprintf("%s.%s.%d", s->path, day, n);
            if (access(dst, F_OK) != 0) {
                rotate_to(s, dst, false);
                free(dst);
                break;
            }
            free(dst);
        }
    }
}

void fc_log_file_write(enum fc_log_level lvl, const char *msg)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
    if (lvl < FC_LOG_LEVEL_DEBUG || lvl > FC_LOG_LEVEL_ERROR) return;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    pthread_mutex_lock(&mu);
    bool claimed = false;
    for (int i = 0; i < n_sinks; i++)
        if (sinks[i].prefix && !strncmp(msg, sinks[i].prefix, strlen(sinks[i].prefix))) claimed = true;
    for (int i = 0; i < n_sinks; i++) {
        sink *s = &sinks[i];
        if (claimed && !(s->prefix && !strncmp(msg, s->prefix, strlen(s->prefix)))) continue;
        char *line = fc_xasprintf("%s | %s | %s | %s\n", stamp, names[lvl], s->logger, msg);
        size_t len = strlen(line);
        maybe_rotate(s, now, len);
        if (s->fd >= 0) {
            ssize_t w = write(s->fd, line, len);
            if (w > 0) s->size += w;
        }
        free(line);
    }
    pthread_mutex_unlock(&mu);
}
