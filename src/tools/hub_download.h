/*
 * hub_download.h: `fastchat download`: fetches a repo from the Hugging Face
 * Hub into the cache layout of model/hub.h, the one `huggingface_hub`'s
 * snapshot_download writes, so that transformers and huggingface_hub read
 * what we download (and we read what they downloaded).
 *
 * The requests are the Hub's HTTP API as huggingface_hub uses it:
 *   GET  {endpoint}/api/models/{repo}/revision/{revision}   -> {"sha": commit, ...}
 *   GET  {endpoint}/api/models/{repo}/tree/{commit}?recursive=true
 *        -> [{"type": "file", "path", "size", "oid", "lfs": {"oid", "size"}}],
 *           paginated with a Link: <...>; rel="next" header
 *   GET  {endpoint}/{repo}/resolve/{commit}/{path}          -> the bytes (LFS files
 *        redirect to a CDN; the token is not sent to another host)
 * Each file goes to blobs/<name>.incomplete first, continued with a Range
 * request after a dropped connection (and by a later run), then checked: size
 * and SHA-256 against the tree listing for LFS files, size and git blob SHA-1
 * for the others; a file that fails the check is removed. Then renamed to
 * blobs/<sha256 or sha1> and linked from snapshots/<commit>/<path>; refs/<revision>
 * and trees/<commit>.json are written as huggingface_hub writes them.
 *
 * Not done: Xet transfers (the plain resolve URL is used), datasets and
 * spaces, huggingface_hub's .locks/ (two downloads of one repo at once may
 * both fetch a file; the renames keep the blob whole), parallel file fetches.
 */
#ifndef FC_HUB_DOWNLOAD_H
#define FC_HUB_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/fc_base.h"

typedef struct fc_hub_download_opts {
    const char *repo;              /* "org/name" or "org/name@revision" (required) */
    const char *revision;          /* branch, tag or commit; NULL = "main" */
    const char *const *include;    /* fnmatch patterns (as huggingface_hub's allow_patterns) */
    int n_include;                 /* 0: every file */
    const char *const *files;      /* exact repo paths, each must exist in the repo */
    int n_files;                   /* 0: every file (after include) */
    const char *endpoint;          /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *token;             /* NULL: $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else the
                                      file $HF_TOKEN_PATH or $HF_HOME/token */
    const char *cache_dir;         /* NULL: fc_hub_cache_dir() */
    bool progress;                 /* a progress bar (rate, ETA) on stderr */
    bool quiet;                    /* no line per file on stderr */
    int retries;                   /* tries after a dropped connection; 0: 5 */
} fc_hub_download_opts;

/* Downloads (or completes) the repo in the cache. On FC_OK *snapshot (if not
 * NULL) is the malloc'd snapshot folder. Errors are one FC_LOG_ERROR line:
 * repo or revision not found, 401/403 (with a word about HF_TOKEN), a named
 * file not in the repo, no file matching --include, disk full, a checksum
 * mismatch (the bad file removed), the host unreachable. */
enum fc_status fc_hub_download(const fc_hub_download_opts *o, char **snapshot);

/* ---- the JSON the download reads (exposed for the fuzz target) ---- */

typedef struct fc_hub_file {
    char *path;         /* repo-relative, checked with fc_hub_safe_path */
    int64_t size;       /* bytes of the file */
    char oid[41];       /* git blob SHA-1, hex */
    char sha256[65];    /* LFS files: SHA-256 of the content, hex; else "" */
    bool lfs;
} fc_hub_file;

typedef struct fc_hub_tree {
    fc_hub_file *v;
    int n, cap;
} fc_hub_tree;

/* Appends the files of one page of the tree API (a JSON array) to *t
 * (folders are skipped). FC_ERR_FORMAT (logged) when the page is not an
 * array of well-formed entries: a path that is not safe (fc_hub_safe_path),
 * an oid that is not hex of the right length, a negative size. */
enum fc_status fc_hub_parse_tree(const char *json, size_t len, fc_hub_tree *t);
void fc_hub_tree_free(fc_hub_tree *t);

/* The commit ("sha", 40 hex digits) of a repo-info answer, into sha[41]. */
enum fc_status fc_hub_parse_info(const char *json, size_t len, char sha[41]);

/* The URL of rel="next" in a Link header value, malloc'd, or NULL. */
char *fc_hub_link_next(const char *link);

#endif
