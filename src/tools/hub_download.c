/*
 * hub_download.c: `fastchat download` (hub_download.h): the Hub's API over
 * libcurl, checksums with OpenSSL's EVP, the cache layout of model/hub.h.
 *
 * Mirrors huggingface_hub's snapshot_download + hf_hub_download (blob names,
 * relative symlinks, refs/, trees/<commit>.json, "<blob>.incomplete" files
 * continued with Range, redirects followed with the token kept on the Hub's
 * host) without its code. The checksum is taken over the finished file (one
 * more read of it, from the page cache for any file that fits in memory)
 * rather than during the transfer, so a file continued across runs is
 * checked as a whole.
 */
#include "tools/hub_download.h"
#include "format/hub.h"
#include "base/str.h"
#include "base/file.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define API_MAX (64u << 20) /* the largest API answer we read */

/* ---- JSON (fuzzed: fuzz/fuzz_hub.c) ---- */

static bool hex_ok(const char *s, size_t n)
{
    if (!s || strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool size_ok(const cJSON *j, int64_t *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 9.0e15) return false;
    *out = (int64_t)j->valuedouble;
    return (double)*out == j->valuedouble;
}

enum fc_status fc_hub_parse_tree(const char *json, size_t len, fc_hub_tree *t)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsArray(root)) {
        FC_LOG_ERROR("hub: the tree listing is not a JSON array");
        cJSON_Delete(root);
        return FC_ERR_FORMAT;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (!cJSON_IsString(type)) goto bad;
        if (strcmp(type->valuestring, "file")) continue; /* "directory" */
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *oid = cJSON_GetObjectItemCaseSensitive(e, "oid");
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
        fc_hub_file f = {0};
        if (!cJSON_IsString(path) || !fc_hub_safe_path(path->valuestring)) goto bad;
        if (!cJSON_IsString(oid) || !hex_ok(oid->valuestring, 40)) goto bad;
        if (!size_ok(cJSON_GetObjectItemCaseSensitive(e, "size"), &f.size)) goto bad;
        memcpy(f.oid, oid->valuestring, 41);
        if (lfs && !cJSON_IsNull(lfs)) {
            const cJSON *sha = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
            int64_t lfs_size;
            if (!cJSON_IsString(sha) || !hex_ok(sha->valuestring, 64)) goto bad;
            if (!size_ok(cJSON_GetObjectItemCaseSensitive(lfs, "size"), &lfs_size)) goto bad;
            memcpy(f.sha256, sha->valuestring, 65);
            f.size = lfs_size;
            f.lfs = true;
        }
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 16;
            t->v = fc_xrealloc(t->v, sizeof *t->v * (size_t)t->cap);
        }
        f.path = fc_xstrdup(path->valuestring);
        t->v[t->n++] = f;
    }
    cJSON_Delete(root);
    return FC_OK;
bad:
    FC_LOG_ERROR("hub: malformed entry in the tree listing");
    cJSON_Delete(root);
    return FC_ERR_FORMAT;
}

void fc_hub_tree_free(fc_hub_tree *t)
{
    if (!t) return;
    for (int i = 0; i < t->n; i++) free(t->v[i].path);
    free(t->v);
    memset(t, 0, sizeof *t);
}

enum fc_status fc_hub_parse_info(const char *json, size_t len, char sha[41])
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "sha");
    enum fc_status st = FC_ERR_FORMAT;
    if (cJSON_IsString(s) && hex_ok(s->valuestring, 40)) {
        memcpy(sha, s->valuestring, 41);
        st = FC_OK;
    } else {
        FC_LOG_ERROR("hub: the repo info has no commit sha");
    }
    cJSON_Delete(root);
    return st;
}

char *fc_hub_link_next(const char *link)
{
    /* Link: <url1>; rel="next", <url2>; rel="last" */
    const char *p = link;
    while (p && (p = strchr(p, '<'))) {
        const char *end = strchr(p, '>');
        if (!end) return NULL;
        const char *params = end + 1, *next = strchr(params, '<');
        size_t plen = next ? (size_t)(next - params) : strlen(params);
        const char *rel = params;
        bool is_next = false;
        while ((rel = strstr(rel, "rel=")) && rel < params + plen) {
            rel += 4;
            if (*rel == '"') rel++;
            if (!strncmp(rel, "next", 4) && (rel[4] == '"' || rel[4] == ';' || rel[4] == ',' || rel[4] == ' ' ||
                                             rel[4] == '\0'))
                is_next = true;
        }
        if (is_next) {
            size_t n = (size_t)(end - p - 1);
            char *u = fc_xmalloc(n + 1);
            memcpy(u, p + 1, n);
            u[n] = '\0';
            return u;
        }
        p = end + 1;
    }
    return NULL;
}

/* ---- HTTP ---- */

typedef struct ctx {
    const fc_hub_download_opts *o;
    char endpoint[1024];
    char *token;
    char *repo_dir;
    char commit[41];
    const char *revision;
} ctx;

typedef struct reply {
    long status;
    fc_str body;
    char error_code[64]; /* X-Error-Code */
    char *link;          /* Link */
} reply;

static size_t body_cb(char *p, size_t size, size_t n, void *ud)
{
    fc_str *s = ud;
    fc_str_putn(s, p, size * n);
    return fc_str_failed(s) ? 0 : size * n;
}

static void header_value(const char *line, size_t n, const char *name, char *dst, size_t cap, char **dup)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(line, name, k) || line[k] != ':') return;
    const char *v = line + k + 1;
    size_t vn = n - k - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
    if (dst) {
        if (vn >= cap) vn = cap - 1;
        memcpy(dst, v, vn);
        dst[vn] = '\0';
    }
    if (dup) {
        free(*dup);
        *dup = fc_xmalloc(vn + 1);
        memcpy(*dup, v, vn);
        (*dup)[vn] = '\0';
    }
}

static size_t header_cb(char *p, size_t size, size_t n, void *ud)
{
    reply *r = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after a redirect): forget the last one's */
        r->error_code[0] = '\0';
        free(r->link);
        r->link = NULL;
    }
    header_value(p, len, "X-Error-Code", r->error_code, sizeof r->error_code, NULL);
    header_value(p, len, "Link", NULL, 0, &r->link);
    return len;
}

static CURL *new_handle(const ctx *c, const char *url)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "fastchat-c; hf_hub-compatible");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    /* credentials go to the Hub only: curl drops them when a redirect changes
     * host, port or scheme (CURLOPT_UNRESTRICTED_AUTH stays off) */
    if (c->token) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, c->token);
    }
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer is a dropped one */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "identity");
    return h;
}

static bool transient(CURLcode rc);

/* GET url into r, tried again (up to 3 times, with a pause) after a dropped
 * connection, a 5xx or a 429; false (logged) when the host cannot be
 * reached. */
static bool api_get(const ctx *c, const char *url, reply *r)
{
    for (int attempt = 0;; attempt++) {
        memset(r, 0, sizeof *r);
        fc_str_init(&r->body, API_MAX);
        CURL *h = new_handle(c, url);
        if (!h) return false;
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_cleanup(h);
        bool again = (rc != CURLE_OK && transient(rc) && rc != CURLE_COULDNT_CONNECT) ||
                     (rc == CURLE_OK && (r->status >= 500 || r->status == 429));
        if (again && attempt < 2) {
            fc_str_free(&r->body);
            free(r->link);
            usleep((useconds_t)(500000u << attempt));
            continue;
        }
        if (rc != CURLE_OK) {
            FC_LOG_ERROR("%s: %s", url, curl_easy_strerror(rc));
            return false;
        }
        return true;
    }
}

static void reply_free(reply *r)
{
    fc_str_free(&r->body);
    free(r->link);
}

/* One line for an HTTP error of the repo's API (hf_raise_for_status's cases). */
static void log_http_error(const ctx *c, const reply *r, const char *what)
{
    const char *repo = c->o->repo;
    if (r->status == 401)
        FC_LOG_ERROR(c->token ? "%s: 401 Unauthorized: the Hub refused the token (HF_TOKEN) for this repo"
                              : "%s: 401 Unauthorized: the repo is private, gated or missing; set HF_TOKEN to a token "
                                "that can read it",
                     repo);
    else if (r->status == 403)
        FC_LOG_ERROR("%s: 403 Forbidden: the token may not read this repo (a gated repo: accept its conditions "
                     "on the Hub first)",
                     repo);
    else if (r->status == 404 && !strcmp(r->error_code, "RevisionNotFound"))
        FC_LOG_ERROR("%s: revision '%s' not found", repo, c->revision);
    else if (r->status == 404 && !strcmp(r->error_code, "EntryNotFound"))
        FC_LOG_ERROR("%s: %s: file not in the repo", repo, what);
    else if (r->status == 404)
        FC_LOG_ERROR("%s: repo not found (404 from %s)", repo, c->endpoint);
    else
        FC_LOG_ERROR("%s: %s: HTTP %ld from %s", repo, what, r->status, c->endpoint);
}

static char *escape(const char *s, bool keep_slash)
{
    fc_str out;
    fc_str_init(&out, 0);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
        if (plain) fc_str_putc(&out, (char)*p);
        else fc_str_printf(&out, "%%%02X", *p);
    }
    return fc_str_take(&out);
}

/* ---- files on disk ---- */

static bool mkdirs(const char *path) /* mkdir -p of path's parent folders and path */
{
    char *p = fc_xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                FC_LOG_ERROR("%s: %s", p, strerror(errno));
                free(p);
                return false;
            }
            *s = saved;
            if (!saved) break;
        }
    }
    free(p);
    return true;
}

static bool mkdirs_parent(const char *path)
{
    char *p = fc_xstrdup(path), *slash = strrchr(p, '/');
    bool ok = true;
    if (slash && slash != p) {
        *slash = '\0';
        ok = mkdirs(p);
    }
    free(p);
    return ok;
}

static char *path_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *path_printf(const char *fmt, ...)
{
    fc_str s;
    fc_str_init(&s, 0);
    va_list ap;
    va_start(ap, fmt);
    fc_str_vprintf(&s, fmt, ap);
    va_end(ap);
    return fc_str_take(&s);
}

static bool write_small(const char *path, const char *text)
{
    if (!mkdirs_parent(path)) return false;
    return fc_file_write_atomic(path, text, strlen(text)) == FC_OK;
}

/* hex digest of the file: SHA-256, or git's blob SHA-1 ("blob <n>\0" + bytes) */
static bool digest_file(const char *path, bool git_sha1, int64_t size, char *hex, size_t hex_cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, git_sha1 ? EVP_sha1() : EVP_sha256(), NULL);
    if (git_sha1) {
        char head[64];
        int n = snprintf(head, sizeof head, "blob %lld", (long long)size);
        EVP_DigestUpdate(md, head, (size_t)n + 1); /* with its NUL */
    }
    const size_t cap = 1 << 20;
    unsigned char *buf = fc_xmalloc(cap);
    size_t n;
    while ((n = fread(buf, 1, cap, f)) > 0) EVP_DigestUpdate(md, buf, n);
    free(buf);
    bool ok = !ferror(f);
    fclose(f);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    EVP_DigestFinal_ex(md, d, &dn);
    EVP_MD_CTX_free(md);
    if (hex_cap < 2 * dn + 1) return false;
    for (unsigned i = 0; i < dn; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    return ok;
}

/* ---- progress ---- */

typedef struct progress {
    const ctx *c;
    const char *name;
    int index, count;
    const int64_t *offset; /* bytes already in the file before this response's */
    int64_t size;          /* the file's */
    double t0, last;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void human(double b, char *out, size_t cap)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4) b /= 1000, i++;
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* done: bytes of the file there; got: of them, received by this request */
static void draw(progress *p, int64_t done, int64_t got, bool final)
{
    double t = now_s();
    if (!final && t - p->last < 0.1) return;
    p->last = t;
    double el = t - p->t0, rate = el > 0 ? (double)got / el : 0;
    char a[32], b[32], r[32], eta[32] = "--:--";
    human((double)done, a, sizeof a);
    human((double)p->size, b, sizeof b);
    human(rate, r, sizeof r);
    if (rate > 0 && p->size >= done) {
        long s = (long)((double)(p->size - done) / rate + 0.5);
        snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    int pct = p->size > 0 ? (int)(100.0 * (double)done / (double)p->size) : 100;
    if (pct > 100) pct = 100;
    char bar[21];
    int fill = pct / 5;
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : ' ';
    bar[20] = '\0';
    fprintf(stderr, "\r\033[K[%d/%d] %.40s %3d%% |%s| %s/%s %s/s ETA %s", p->index, p->count, p->name, pct, bar, a,
            b, r, final ? "0:00" : eta);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static int xfer_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    progress *p = ud;
    draw(p, *p->offset + (int64_t)dlnow, (int64_t)dlnow, false);
    return 0;
}

/* ---- one file ---- */

typedef struct sink {
    int fd;
    CURL *h;
    int64_t *offset;     /* bytes in the file; reset when the server ignores Range */
    bool started, bad_status, restarted;
    int write_errno;
} sink;

static size_t file_cb(char *data, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = size * n;
    if (!s->started) {
        s->started = true;
        long status = 0;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200 && *s->offset > 0) { /* Range ignored: the whole file again */
            if (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0) {
                s->write_errno = errno;
                return 0;
            }
            *s->offset = 0;
            s->restarted = true;
        } else if (status != 200 && status != 206) {
            s->bad_status = true;
            return 0;
        }
    }
    for (size_t done = 0; done < len;) {
        ssize_t w = write(s->fd, data + done, len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            s->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    return len;
}

static bool transient(CURLcode rc)
{
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR ||
           rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING || rc == CURLE_COULDNT_CONNECT ||
           rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM || rc == CURLE_SSL_CONNECT_ERROR;
}

/* blobs/<name>.incomplete, continued, checked, renamed to blob. */
static enum fc_status fetch_blob(const ctx *c, const fc_hub_file *f, const char *blob, int index, int count)
{
    char *part = path_printf("%s.incomplete", blob);
    char *epath = escape(f->path, true), *erev = escape(c->commit, false);
    char *url = path_printf("%s/%s/resolve/%s/%s", c->endpoint, c->o->repo, erev, epath);
    free(epath);
    free(erev);
    enum fc_status st = FC_ERR_IO;
    int tries = c->o->retries > 0 ? c->o->retries : 5;
    int fd = open(part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        FC_LOG_ERROR("%s: %s", part, strerror(errno));
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        int64_t offset = lseek(fd, 0, SEEK_END);
        if (offset > f->size) { /* longer than the file: not ours */
            if (ftruncate(fd, 0) != 0) goto write_fail_errno;
            offset = 0;
        }
        if (offset == f->size && f->size > 0) break; /* complete from an earlier run */
        CURL *h = new_handle(c, url);
        if (!h) goto out;
        sink s = {.fd = fd, .h = h, .offset = &offset};
        progress p = {.c = c, .name = f->path, .index = index, .count = count, .offset = &offset,
                      .size = f->size, .t0 = now_s()};
        char range[64];
        if (offset > 0) {
            snprintf(range, sizeof range, "%lld-", (long long)offset);
            curl_easy_setopt(h, CURLOPT_RANGE, range);
        }
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, file_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
        if (c->o->progress) {
            curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xfer_cb);
            curl_easy_setopt(h, CURLOPT_XFERINFODATA, &p);
        }
        CURLcode rc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        if (s.write_errno) {
            errno = s.write_errno;
            goto write_fail_errno;
        }
        if (rc == CURLE_OK && (status == 200 || status == 206)) {
            if (c->o->progress) {
                int64_t end = lseek(fd, 0, SEEK_END);
                draw(&p, end, end - offset, true);
            }
            break;
        }
        if (status == 416) { /* the range is past the file the server has: start over */
            if (ftruncate(fd, 0) != 0) goto write_fail_errno;
        } else if (rc == CURLE_OK || s.bad_status) {
            if (status >= 500 || status == 429) goto retry;
            reply r = {.status = status};
            if (status == 404) snprintf(r.error_code, sizeof r.error_code, "EntryNotFound");
            log_http_error(c, &r, f->path);
            goto out;
        } else if (!transient(rc)) {
            FC_LOG_ERROR("%s: %s: %s", c->o->repo, f->path, curl_easy_strerror(rc));
            goto out;
        }
    retry:
        if (c->o->progress) fputc('\n', stderr);
        if (attempt + 1 >= tries) {
            FC_LOG_ERROR("%s: %s: %s after %d tries (the part is kept in %s; run the command again to continue)",
                         c->o->repo, f->path, rc != CURLE_OK ? curl_easy_strerror(rc) : "server error", tries, part);
            goto out;
        }
        if (!c->o->quiet)
            fprintf(stderr, "%s: %s, continuing from byte %lld\n", f->path,
                    rc != CURLE_OK ? curl_easy_strerror(rc) : "server error", (long long)lseek(fd, 0, SEEK_END));
        usleep((useconds_t)(200000u << (attempt < 4 ? attempt : 4)));
    }
    if (fsync(fd) != 0 && errno != EINVAL) goto write_fail_errno;
    close(fd);
    fd = -1;

    /* the check: size, then SHA-256 (LFS) or the git blob SHA-1 */
    struct stat sb;
    char got[129] = "";
    const char *want = f->lfs ? f->sha256 : f->oid;
    if (stat(part, &sb) != 0 || sb.st_size != f->size) {
        FC_LOG_ERROR("%s: %s: size mismatch: expected %lld bytes, got %lld; the file was removed", c->o->repo,
                     f->path, (long long)f->size, (long long)sb.st_size);
        unlink(part);
        goto out;
    }
    if (!digest_file(part, !f->lfs, f->size, got, sizeof got)) {
        FC_LOG_ERROR("%s: cannot read it back", part);
        goto out;
    }
    if (strcmp(got, want)) {
        FC_LOG_ERROR("%s: %s: checksum mismatch: expected %s %s, got %s; the file was removed", c->o->repo, f->path,
                     f->lfs ? "sha256" : "git sha1", want, got);
        unlink(part);
        goto out;
    }
    if (rename(part, blob) != 0) {
        FC_LOG_ERROR("%s: %s", blob, strerror(errno));
        goto out;
    }
    st = FC_OK;
    goto out;
write_fail_errno:
    if (errno == ENOSPC || errno == EDQUOT)
        FC_LOG_ERROR("%s: %s: disk full while writing %s (%s); free some space and run the command again",
                     c->o->repo, f->path, part, strerror(errno));
    else
        FC_LOG_ERROR("%s: %s", part, strerror(errno));
out:
    if (fd >= 0) close(fd);
    free(url);
    free(part);
    return st;
}

/* snapshots/<commit>/<path> -> ../../blobs/<name> (one more ../ per folder of path) */
static bool link_snapshot(const ctx *c, const fc_hub_file *f, const char *blob_name)
{
    char *dst = path_printf("%s/snapshots/%s/%s", c->repo_dir, c->commit, f->path);
    fc_str target;
    fc_str_init(&target, 0);
    fc_str_puts(&target, "../../");
    for (const char *p = f->path; *p; p++)
        if (*p == '/') fc_str_puts(&target, "../");
    fc_str_printf(&target, "blobs/%s", blob_name);
    char *t = fc_str_take(&target);
    bool ok = mkdirs_parent(dst);
    if (ok) {
        unlink(dst);
        if (symlink(t, dst) != 0) {
            FC_LOG_ERROR("%s: %s", dst, strerror(errno));
            ok = false;
        }
    }
    free(t);
    free(dst);
    return ok;
}

/* trees/<commit>.json as huggingface_hub's _tree_cache.py writes it */
static bool write_tree_cache(const ctx *c, const fc_hub_tree *t)
{
    cJSON *root = cJSON_CreateObject(), *files = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "format_version", 1);
    cJSON_AddItemToObject(root, "files", files);
    for (int i = 0; i < t->n; i++) {
        const fc_hub_file *f = &t->v[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "size", (double)f->size);
        cJSON_AddStringToObject(e, "blob_id", f->oid);
        if (f->lfs) {
            cJSON_AddStringToObject(e, "lfs_sha256", f->sha256);
            cJSON_AddNumberToObject(e, "lfs_size", (double)f->size);
        }
        cJSON_AddItemToObject(files, f->path, e);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char *path = path_printf("%s/trees/%s.json", c->repo_dir, c->commit);
    bool ok = text && write_small(path, text);
    free(text);
    free(path);
    return ok;
}

/* CACHEDIR.TAG (bford.info/cachedir), as huggingface_hub leaves in its cache */
static void tag_cache(const char *cache)
{
    static const char tag[] = "Signature: 8a477f597d28d172789f06886806bc55\n"
                              "# This file is a cache directory tag created by huggingface_hub.\n"
                              "# For information about cache directory tags, see:\n"
                              "#\thttps://bford.info/cachedir/\n";
    char *path = path_printf("%s/CACHEDIR.TAG", cache);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, tag, sizeof tag - 1) < 0) FC_LOG_WARN("%s: %s", path, strerror(errno));
        close(fd);
    }
    free(path);
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(((const fc_hub_file *)a)->path, ((const fc_hub_file *)b)->path);
}

/* ---- token ---- */

static char *read_token(const fc_hub_download_opts *o)
{
    const char *v = o->token;
    if (!v || !*v) v = getenv("HF_TOKEN");
    if (!v || !*v) v = getenv("HUGGING_FACE_HUB_TOKEN");
    if (v && *v) return fc_xstrdup(v);
    char *path = NULL;
    const char *p = getenv("HF_TOKEN_PATH");
    if (p && *p) {
        path = fc_xstrdup(p);
    } else {
        const char *home = getenv("HF_HOME"), *xdg = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
        if (home && *home) path = path_printf("%s/token", home);
        else if (xdg && *xdg) path = path_printf("%s/huggingface/token", xdg);
        else path = path_printf("%s/.cache/huggingface/token", h ? h : ".");
    }
    FILE *f = fopen(path, "r");
    free(path);
    if (!f) return NULL;
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = '\0';
    return n ? fc_xstrdup(buf) : NULL;
}

/* ---- the download ---- */

static bool wanted(const fc_hub_download_opts *o, const char *path)
{
    if (o->n_files > 0) {
        for (int i = 0; i < o->n_files; i++)
            if (!strcmp(o->files[i], path)) return true;
        return false;
    }
    if (o->n_include == 0) return true;
    for (int i = 0; i < o->n_include; i++)
        if (fnmatch(o->include[i], path, 0) == 0) return true; /* '*' crosses '/', as Python's fnmatch */
    return false;
}

enum fc_status fc_hub_download(const fc_hub_download_opts *o, char **snapshot)
{
    if (snapshot) *snapshot = NULL;
    char *repo = NULL, *rev_in_id = NULL;
    if (!o->repo || !fc_hub_parse_id(o->repo, &repo, &rev_in_id)) {
        FC_LOG_ERROR("%s: not a repo id (org/name)", o->repo ? o->repo : "(null)");
        return FC_ERR_ARG;
    }
    if (o->revision && !fc_hub_safe_path(o->revision)) {
        FC_LOG_ERROR("%s: bad revision '%s'", o->repo, o->revision);
        free(repo);
        free(rev_in_id);
        return FC_ERR_ARG;
    }
    const char *offline = getenv("HF_HUB_OFFLINE");
    if (offline && (!strcmp(offline, "1") || !strcasecmp(offline, "on") || !strcasecmp(offline, "yes") ||
                    !strcasecmp(offline, "true"))) {
        FC_LOG_ERROR("%s: HF_HUB_OFFLINE is set, so nothing is downloaded (unset it to download)", o->repo);
        free(repo);
        free(rev_in_id);
        return FC_ERR_ARG;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* "org/name@rev" as --model-path takes it; --revision wins */
    fc_hub_download_opts oo = *o;
    oo.repo = repo;
    o = &oo;
    ctx c = {.o = o, .revision = o->revision ? o->revision : rev_in_id ? rev_in_id : "main"};
    const char *ep = o->endpoint && *o->endpoint ? o->endpoint : getenv("HF_ENDPOINT");
    snprintf(c.endpoint, sizeof c.endpoint, "%s", ep && *ep ? ep : "https://huggingface.co");
    size_t el = strlen(c.endpoint);
    while (el && c.endpoint[el - 1] == '/') c.endpoint[--el] = '\0';
    c.token = read_token(o);
    char *cache = o->cache_dir ? fc_xstrdup(o->cache_dir) : fc_hub_cache_dir();
    c.repo_dir = fc_hub_repo_dir(cache, o->repo);
    enum fc_status st = FC_ERR_IO;
    fc_hub_tree tree = {0};
    reply r = {0};
    char *url = NULL, *blob = NULL, *lock = NULL;
    int lock_fd = -1;

    /* the commit the revision names */
    char *erev = escape(c.revision, false);
    url = path_printf("%s/api/models/%s/revision/%s", c.endpoint, o->repo, erev);
    free(erev);
    if (!api_get(&c, url, &r)) goto out;
    if (r.status != 200) {
        log_http_error(&c, &r, "repo info");
        goto out;
    }
    if (fc_hub_parse_info(fc_str_cstr(&r.body), fc_str_len(&r.body), c.commit) != FC_OK) goto out;
    reply_free(&r);
    memset(&r, 0, sizeof r);

    /* the file listing, page by page */
    free(url);
    url = path_printf("%s/api/models/%s/tree/%s?recursive=true&expand=false", c.endpoint, o->repo, c.commit);
    for (int page = 0; url; page++) {
        if (page > 100000) goto out;
        if (!api_get(&c, url, &r)) goto out;
        if (r.status != 200) {
            log_http_error(&c, &r, "tree listing");
            goto out;
        }
        if (fc_hub_parse_tree(fc_str_cstr(&r.body), fc_str_len(&r.body), &tree) != FC_OK) goto out;
        free(url);
        url = r.link ? fc_hub_link_next(r.link) : NULL;
        reply_free(&r);
        memset(&r, 0, sizeof r);
    }
    qsort(tree.v, (size_t)tree.n, sizeof *tree.v, cmp_path);
    for (int i = 0; i < o->n_files; i++) {
        fc_hub_file key = {.path = (char *)o->files[i]};
        if (!bsearch(&key, tree.v, (size_t)tree.n, sizeof *tree.v, cmp_path)) {
            FC_LOG_ERROR("%s: %s: file not in the repo (revision %s)", o->repo, o->files[i], c.revision);
            st = FC_ERR_ARG;
            goto out;
        }
    }
    int count = 0;
    for (int i = 0; i < tree.n; i++) count += wanted(o, tree.v[i].path);
    if (count == 0 && tree.n > 0) {
        FC_LOG_ERROR("%s: no file matches --include %s", o->repo, o->n_include ? o->include[0] : "");
        st = FC_ERR_ARG;
        goto out;
    }

    /* refs and the tree cache first, as huggingface_hub does: an interrupted
     * download is then known to be incomplete */
    if (!mkdirs(c.repo_dir)) goto out;
    tag_cache(cache);
    if (strcmp(c.revision, c.commit)) {
        char *ref = path_printf("%s/refs/%s", c.repo_dir, c.revision);
        bool ok = write_small(ref, c.commit);
        free(ref);
        if (!ok) goto out;
    }
    if (!write_tree_cache(&c, &tree)) goto out;
    char *blobs = path_printf("%s/blobs", c.repo_dir);
    bool ok = mkdirs(blobs);
    free(blobs);
    if (!ok) goto out;

    char *snap = path_printf("%s/snapshots/%s", c.repo_dir, c.commit);
    ok = mkdirs(snap);
    free(snap);
    if (!ok) goto out;
    int index = 0;
    for (int i = 0; i < tree.n; i++) {
        const fc_hub_file *f = &tree.v[i];
        if (!wanted(o, f->path)) continue;
        index++;
        const char *name = f->lfs ? f->sha256 : f->oid;
        free(blob);
        blob = path_printf("%s/blobs/%s", c.repo_dir, name);
        /* huggingface_hub's lock on this blob (filelock: flock on .locks/<repo>/<blob>.lock) */
        free(lock);
        lock = path_printf("%s/.locks/%s/%s.lock", cache, strrchr(c.repo_dir, '/') + 1, name);
        if (!mkdirs_parent(lock) || (lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
            FC_LOG_ERROR("%s: %s", lock, strerror(errno));
            goto out;
        }
        while (flock(lock_fd, LOCK_EX) != 0 && errno == EINTR) {}
        struct stat sb;
        bool have = stat(blob, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == f->size;
        if (!have) {
            if (fetch_blob(&c, f, blob, index, count) != FC_OK) goto out;
        }
        if (!link_snapshot(&c, f, name)) goto out;
        close(lock_fd);
        lock_fd = -1;
        if (!o->quiet && !o->progress) {
            char h[32];
            human((double)f->size, h, sizeof h);
            fprintf(stderr, "[%d/%d] %s (%s)%s\n", index, count, f->path, h, have ? " already there" : "");
        }
    }
    if (snapshot) *snapshot = path_printf("%s/snapshots/%s", c.repo_dir, c.commit);
    st = FC_OK;
out:
    reply_free(&r);
    fc_hub_tree_free(&tree);
    if (lock_fd >= 0) close(lock_fd);
    free(lock);
    free(cache);
    free(url);
    free(blob);
    free(c.token);
    free(c.repo_dir);
    free(repo);
    free(rev_in_id);
    return st;
}
