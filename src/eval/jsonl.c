/*
 * jsonl.c: JSON-lines reading and crash-safe appending (see jsonl.h).
 */
#include "eval/jsonl.h"
#include "base/fc_base.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct fc_jsonl_writer {
    int fd;
    bool sync;
    pthread_mutex_t mu;
};

int fc_mkdir_parents(const char *path)
{
    char *p = fc_xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            FC_LOG_ERROR("%s: mkdir %s: %s", __func__, p, strerror(errno));
            free(p);
            return FC_ERR_IO;
        }
        *s = '/';
    }
    free(p);
    return FC_OK;
}

/* Whole file into a malloc'd NUL-terminated buffer; NULL with errno set. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = fc_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = fc_xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0) break;
        n += r;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) { free(buf); errno = EIO; return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

int fc_jsonl_read(const char *path, bool missing_ok, cJSON ***out, int *n)
{
    *out = NULL;
    *n = 0;
    size_t len = 0;
    char *buf = slurp(path, &len);
    if (!buf) {
        if (errno == ENOENT && missing_ok) return FC_OK;
        FC_LOG_ERROR("%s: %s: %s", __func__, path, strerror(errno));
        return FC_ERR_IO;
    }
    int cap = 64, k = 0, lineno = 0;
    cJSON **items = fc_xmalloc(sizeof(*items) * cap);
    size_t pos = 0;
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        lineno++;
        if (!nl) {
            FC_LOG_WARN("%s: line %d has no end (an interrupted write?); ignored", path, lineno);
            break;
        }
        *nl = 0;
        const char *line = buf + pos;
        size_t ll = (size_t)(nl - line);
        pos = (size_t)(nl - buf) + 1;
        bool blank = true;
        for (size_t i = 0; i < ll && blank; i++) blank = strchr(" \t\r", line[i]) != NULL;
        if (blank) continue;
        cJSON *j = cJSON_ParseWithLength(line, ll);
        if (!j || !cJSON_IsObject(j)) {
            FC_LOG_WARN("%s: line %d is not a JSON object; skipped", path, lineno);
            cJSON_Delete(j);
            continue;
        }
        if (k == cap) items = fc_xrealloc(items, sizeof(*items) * (cap *= 2));
        items[k++] = j;
    }
    free(buf);
    *out = items;
    *n = k;
    return FC_OK;
}

void fc_jsonl_free(cJSON **items, int n)
{
    if (!items) return;
    for (int i = 0; i < n; i++) cJSON_Delete(items[i]);
    free(items);
}

/* Cuts the file after its last '\n' (nothing when it ends with one). */
static int cut_partial(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return FC_ERR_IO;
    off_t end = st.st_size;
    if (end == 0) return FC_OK;
    char c;
    if (pread(fd, &c, 1, end - 1) != 1) return FC_ERR_IO;
    if (c == '\n') return FC_OK;
    char buf[4096];
    off_t keep = 0;
    for (off_t at = end; at > 0 && keep == 0;) {
        off_t from = at > (off_t)sizeof buf ? at - (off_t)sizeof buf : 0;
        ssize_t r = pread(fd, buf, (size_t)(at - from), from);
        if (r <= 0) return FC_ERR_IO;
        for (ssize_t i = r - 1; i >= 0; i--)
            if (buf[i] == '\n') { keep = from + i + 1; break; }
        at = from;
    }
    FC_LOG_WARN("%s: dropping a partial last line (%lld bytes)", path, (long long)(end - keep));
    return ftruncate(fd, keep) == 0 ? FC_OK : FC_ERR_IO;
}

fc_jsonl_writer *fc_jsonl_open_append(const char *path, bool sync)
{
    if (fc_mkdir_parents(path) != FC_OK) return NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (fd < 0) {
        FC_LOG_ERROR("%s: %s: %s", __func__, path, strerror(errno));
        return NULL;
    }
    /* one writer per file: a second run at the same time would redo and
     * duplicate the first one's records */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        FC_LOG_ERROR("%s: %s: another process is writing to it", __func__, path);
        close(fd);
        return NULL;
    }
    if (cut_partial(fd, path) != FC_OK) {
        FC_LOG_ERROR("%s: %s: cannot repair: %s", __func__, path, strerror(errno));
        close(fd);
        return NULL;
    }
    fc_jsonl_writer *w = fc_xcalloc(1, sizeof *w);
    w->fd = fd;
    w->sync = sync;
    pthread_mutex_init(&w->mu, NULL);
    return w;
}

int fc_jsonl_append_raw(fc_jsonl_writer *w, const char *line, size_t len)
{
    char *buf = fc_xmalloc(len + 1);
    memcpy(buf, line, len);
    buf[len] = '\n';
    int rc = FC_OK;
    pthread_mutex_lock(&w->mu);
    size_t done = 0;
    while (done < len + 1) {
        ssize_t r = write(w->fd, buf + done, len + 1 - done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { rc = FC_ERR_IO; break; }
        done += (size_t)r;
    }
    if (rc == FC_OK && w->sync) fdatasync(w->fd);
    pthread_mutex_unlock(&w->mu);
    free(buf);
    if (rc != FC_OK) FC_LOG_ERROR("%s: write: %s", __func__, strerror(errno));
    return rc;
}

int fc_jsonl_append(fc_jsonl_writer *w, const cJSON *item)
{
    char *s = cJSON_PrintUnformatted(item);
    if (!s) return FC_ERR_NOMEM;
    int rc = fc_jsonl_append_raw(w, s, strlen(s));
    cJSON_free(s);
    return rc;
}

void fc_jsonl_close(fc_jsonl_writer *w)
{
    if (!w) return;
    close(w->fd);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* ---- reorg ---- */

typedef struct kline {
    bool num;
    double v;
    char *s;          /* key as text when not a number */
    int order;
    char *line;
} kline;

static int kline_cmp(const void *a, const void *b)
{
    const kline *x = a, *y = b;
    if (x->num != y->num) return x->num ? -1 : 1;
    if (x->num) return x->v < y->v ? -1 : x->v > y->v;
    return x->order - y->order;
}

int fc_jsonl_rewrite_sorted(const char *path, const char *key)
{
    size_t len = 0;
    char *buf = slurp(path, &len);
    if (!buf) {
        FC_LOG_ERROR("%s: %s: %s", __func__, path, strerror(errno));
        return FC_ERR_IO;
    }
    int cap = 64, k = 0;
    kline *ks = fc_xmalloc(sizeof(*ks) * cap);
    size_t pos = 0;
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        if (!nl) break;
        char *line = buf + pos;
        *nl = 0;
        pos = (size_t)(nl - buf) + 1;
        cJSON *j = cJSON_Parse(line);
        const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, key) : NULL;
        if (!v) { cJSON_Delete(j); continue; }
        kline kl = {.num = cJSON_IsNumber(v), .v = cJSON_IsNumber(v) ? v->valuedouble : 0, .line = line};
        kl.s = kl.num ? NULL : cJSON_PrintUnformatted(v);
        cJSON_Delete(j);
        int found = -1;
        for (int i = 0; i < k && found < 0; i++)
            if (ks[i].num == kl.num && (kl.num ? ks[i].v == kl.v : !strcmp(ks[i].s, kl.s))) found = i;
        if (found >= 0) {           /* the later line wins, as a dict keeps it */
            ks[found].line = line;
            if (kl.s) cJSON_free(kl.s);
            continue;
        }
        kl.order = k;
        if (k == cap) ks = fc_xrealloc(ks, sizeof(*ks) * (cap *= 2));
        ks[k++] = kl;
    }
    qsort(ks, (size_t)k, sizeof *ks, kline_cmp);
    size_t pl = strlen(path);
    char *tmp = fc_xmalloc(pl + 16);
    snprintf(tmp, pl + 16, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = f ? FC_OK : FC_ERR_IO;
    for (int i = 0; i < k && f; i++) fprintf(f, "%s\n", ks[i].line);
    if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = FC_ERR_IO;
    if (f && fclose(f) != 0) rc = FC_ERR_IO;
    if (rc == FC_OK && rename(tmp, path) != 0) rc = FC_ERR_IO;
    if (rc != FC_OK) {
        FC_LOG_ERROR("%s: %s: %s", __func__, path, strerror(errno));
        unlink(tmp);
    }
    for (int i = 0; i < k; i++) if (ks[i].s) cJSON_free(ks[i].s);
    free(ks);
    free(tmp);
    free(buf);
    return rc;
}
