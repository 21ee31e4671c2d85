/*
 * hub.c: repo ids and offline resolution in the Hugging Face cache (hub.h).
 *
 * Mirrors huggingface_hub's validate_repo_id (utils/_validators.py), its
 * cache constants (constants.py) and the offline branch of snapshot_download:
 * refs/<revision> holds a commit hash, snapshots/<commit>/ the files. Does
 * not check that a snapshot is complete (transformers finds out when a file
 * is missing, and so does our loader), and does not look at the network.
 */
#include "format/hub.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = fc_xmalloc(na + nb + 2);
    memcpy(s, a, na);
    s[na] = '/';
    memcpy(s + na + 1, b, nb + 1);
    return s;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- repo ids ---- */

static bool id_part_ok(const char *s, size_t n)
{
    if (n == 0 || n > 96) return false;
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
        if (!ok) return false;
        if (i + 1 < n && ((c == '-' && s[i + 1] == '-') || (c == '.' && s[i + 1] == '.'))) return false;
    }
    return true;
}

bool fc_hub_safe_path(const char *p)
{
    if (!p || !*p || *p == '/') return false;
    const char *part = p;
    for (const char *c = p;; c++) {
        if (*c == '/' || *c == '\0') {
            size_t n = (size_t)(c - part);
            if (n == 0 || (n == 1 && part[0] == '.') || (n == 2 && part[0] == '.' && part[1] == '.')) return false;
            if (*c == '\0') break;
            part = c + 1;
        } else if (*c == '\\' || (unsigned char)*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
    return strlen(p) < 1024;
}

bool fc_hub_parse_id(const char *s, char **repo, char **revision)
{
    if (!s) return false;
    const char *at = strchr(s, '@');
    size_t n = at ? (size_t)(at - s) : strlen(s);
    const char *slash = memchr(s, '/', n);
    if (slash) {
        if (!id_part_ok(s, (size_t)(slash - s))) return false;
        if (!id_part_ok(slash + 1, n - (size_t)(slash - s) - 1)) return false;
    } else if (!id_part_ok(s, n)) {
        return false;
    }
    if (at && !fc_hub_safe_path(at + 1)) return false;
    *repo = fc_xmalloc(n + 1);
    memcpy(*repo, s, n);
    (*repo)[n] = '\0';
    *revision = at ? fc_xstrdup(at + 1) : NULL;
    return true;
}

/* ---- the cache folder ---- */

static char *expand_home(const char *p)
{
    const char *home = getenv("HOME");
    if (p[0] == '~' && (p[1] == '/' || p[1] == '\0') && home) return join(home, p[1] ? p + 2 : "");
    return fc_xstrdup(p);
}

char *fc_hub_cache_dir(void)
{
    const char *v = getenv("HF_HUB_CACHE");
    if (!v || !*v) v = getenv("HUGGINGFACE_HUB_CACHE");
    if (v && *v) return expand_home(v);
    v = getenv("HF_HOME");
    if (v && *v) {
        char *home = expand_home(v), *s = join(home, "hub");
        free(home);
        return s;
    }
    v = getenv("XDG_CACHE_HOME");
    if (v && *v) return join(v, "huggingface/hub");
    const char *home = getenv("HOME");
    return join(home ? home : ".", ".cache/huggingface/hub");
}

char *fc_hub_repo_dir(const char *cache, const char *repo)
{
    /* "models--" + repo with every '/' as "--" (huggingface_hub repo_folder_name) */
    size_t n = strlen(cache) + 10 + 2 * strlen(repo);
    char *s = fc_xmalloc(n), *w = s + snprintf(s, n, "%s/models--", cache);
    for (const char *r = repo; *r; r++) {
        if (*r == '/') *w++ = '-', *w++ = '-';
        else *w++ = *r;
    }
    *w = '\0';
    return s;
}

/* ---- resolution ---- */

static bool is_commit_hash(const char *s)
{
    size_t n = strlen(s);
    if (n != 40) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* The snapshot folder of repo_dir at revision, malloc'd, or NULL (logged). */
static char *snapshot_of(const char *spec, const char *repo_dir, const char *revision)
{
    char *ref = join(repo_dir, "refs"), *ref_file = join(ref, revision);
    free(ref);
    char commit[128] = "";
    FILE *f = fopen(ref_file, "r");
    if (f) {
        size_t n = fread(commit, 1, sizeof commit - 1, f);
        fclose(f);
        commit[n] = '\0';
        while (n > 0 && (commit[n - 1] == '\n' || commit[n - 1] == '\r' || commit[n - 1] == ' ')) commit[--n] = '\0';
    }
    free(ref_file);
    if (!commit[0] && is_commit_hash(revision)) snprintf(commit, sizeof commit, "%s", revision);
    if (!commit[0] || !fc_hub_safe_path(commit) || strchr(commit, '/')) {
        FC_LOG_ERROR("%s: revision '%s' is not in the Hugging Face cache (%s/refs/%s is missing; fetch it with: "
                     "fastchat download %.*s --revision %s)",
                     spec, revision, repo_dir, revision, (int)strcspn(spec, "@"), spec, revision);
        return NULL;
    }
    char *snaps = join(repo_dir, "snapshots"), *snap = join(snaps, commit);
    free(snaps);
    if (!is_dir(snap)) {
        FC_LOG_ERROR("%s: snapshot %s is missing from the Hugging Face cache (%s)", spec, commit, snap);
        free(snap);
        return NULL;
    }
    return snap;
}

/* The *.gguf names directly in dir, ", "-separated into buf; returns how many. */
static int list_gguf(const char *dir, char *buf, size_t cap, char **only)
{
    DIR *d = opendir(dir);
    int n = 0;
    size_t used = 0;
    if (buf && cap) buf[0] = '\0';
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".gguf")) continue;
        if (n++ == 0 && only) *only = fc_xstrdup(e->d_name);
        if (buf && used < cap) used += (size_t)snprintf(buf + used, cap - used, "%s%s", n > 1 ? ", " : "", e->d_name);
    }
    closedir(d);
    return n;
}

/* Inside a resolved folder: the GGUF file to load, or the folder itself. */
static enum fc_status pick_in_folder(const char *spec, const char *dir, const char *gguf_file, char **out)
{
    char names[1024];
    if (gguf_file) {
        char *p = fc_hub_safe_path(gguf_file) ? join(dir, gguf_file) : NULL;
        if (p && is_file(p)) {
            *out = p;
            return FC_OK;
        }
        free(p);
        int n = list_gguf(dir, names, sizeof names, NULL);
        FC_LOG_ERROR("%s: no file '%s' in %s%s%s", spec, gguf_file, dir, n ? "; its GGUF files: " : "", n ? names : "");
        return FC_ERR_IO;
    }
    char *cfg = join(dir, "config.json");
    bool hf = is_file(cfg);
    free(cfg);
    if (hf) {
        *out = fc_xstrdup(dir);
        return FC_OK;
    }
    char *only = NULL;
    int n = list_gguf(dir, names, sizeof names, &only);
    if (n == 1) {
        *out = join(dir, only);
        free(only);
        return FC_OK;
    }
    free(only);
    if (n > 1) {
        FC_LOG_ERROR("%s: %d GGUF files (%s): pick one with --gguf-file", spec, n, names);
        return FC_ERR_ARG;
    }
    *out = fc_xstrdup(dir);
    return FC_OK;
}

static char *default_gguf_file;

void fc_hub_set_gguf_file(const char *name)
{
    free(default_gguf_file);
    default_gguf_file = name ? fc_xstrdup(name) : NULL;
}

const char *fc_hub_get_gguf_file(void) { return default_gguf_file; }

enum fc_status fc_hub_resolve(const char *spec, const char *gguf_file, char **out)
{
    *out = NULL;
    if (!spec) return FC_ERR_ARG;
    if (!gguf_file) gguf_file = default_gguf_file;
    struct stat st;
    if (stat(spec, &st) == 0) {
        if (S_ISDIR(st.st_mode) && gguf_file) return pick_in_folder(spec, spec, gguf_file, out);
        *out = fc_xstrdup(spec);
        return FC_OK;
    }
    char *repo = NULL, *rev = NULL;
    /* "./x", "/x", "x.gguf" are paths: only something shaped like a repo id
     * (and not found on disk) is looked up in the cache */
    if (!fc_hub_parse_id(spec, &repo, &rev)) {
        *out = fc_xstrdup(spec);
        return FC_OK;
    }
    char *cache = fc_hub_cache_dir(), *repo_dir = fc_hub_repo_dir(cache, repo);
    enum fc_status status = FC_ERR_IO;
    if (!is_dir(repo_dir)) {
        FC_LOG_ERROR("%s: not a local path, and the Hugging Face cache (%s) has no %s (fetch it with: fastchat "
                     "download %s%s%s)",
                     spec, cache, strrchr(repo_dir, '/') + 1, repo, rev ? " --revision " : "", rev ? rev : "");
    } else {
        char *snap = snapshot_of(spec, repo_dir, rev ? rev : "main");
        if (snap) status = pick_in_folder(spec, snap, gguf_file, out);
        free(snap);
    }
    free(cache);
    free(repo_dir);
    free(repo);
    free(rev);
    return status;
}
