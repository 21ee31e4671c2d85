/*
 * fc_base.h: status codes, logging, assertions, checked allocation and
 * read-only file mapping. Everything in libfastchat includes this first.
 *
 * Errors come in three tiers (shared/STYLE.md): FC_ASSERT for invariants
 * (aborts, also in release builds), enum fc_status / NULL plus FC_LOG_ERROR
 * for library failures, and die-with-a-hint in the CLI layer alone.
 */
#ifndef FC_BASE_H
#define FC_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

enum fc_status {
    FC_OK = 0,
    FC_ERR_IO = -1,        /* open/read/mmap failed */
    FC_ERR_FORMAT = -2,    /* file or request malformed, truncated or hostile */
    FC_ERR_UNSUPPORTED = -3, /* well-formed but not something we implement */
    FC_ERR_NOMEM = -4,
    FC_ERR_ARG = -5,       /* caller passed something invalid */
    FC_ERR_FULL = -6,      /* a bounded resource (KV cache) has no room */
};

const char *fc_status_str(enum fc_status s);

/* ---- logging ---- */
enum fc_log_level { FC_LOG_LEVEL_DEBUG = 0, FC_LOG_LEVEL_INFO, FC_LOG_LEVEL_WARN, FC_LOG_LEVEL_ERROR, FC_LOG_LEVEL_NONE };
void fc_log_set_level(enum fc_log_level lvl);
enum fc_log_level fc_log_get_level(void);
void fc_log(enum fc_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define FC_LOG_DEBUG(...) fc_log(FC_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define FC_LOG_INFO(...)  fc_log(FC_LOG_LEVEL_INFO, __VA_ARGS__)
#define FC_LOG_WARN(...)  fc_log(FC_LOG_LEVEL_WARN, __VA_ARGS__)
#define FC_LOG_ERROR(...) fc_log(FC_LOG_LEVEL_ERROR, __VA_ARGS__)

/* Log files as FastChat's build_logger writes them (logfile.c): opens
 * $LOGDIR/<filename> (LOGDIR unset: "."; set but empty: no file, FC_OK) for
 * appending, creating LOGDIR; from then on every message of level INFO and
 * up (whatever fc_log_set_level says: the console is unchanged) is also
 * written there as "2024-01-01 12:00:00 | INFO | <logger> | message" (local
 * time, Python's logging.Formatter with FastChat's format). Rotated as
 * TimedRotatingFileHandler(when="D", utc=True): a day after the file was
 * last modified (or opened), it is renamed <filename>.YYYY-MM-DD (UTC date
 * of the day it covers; a file of that name is replaced) and a new one
 * begun. Our size bound: a file reaching FASTCHAT_LOG_MAX_BYTES (default
 * 100 MiB; at least 1024) is renamed <filename>.YYYY-MM-DD.N (today, first
 * free N) and a new one begun. Up to 8 files at once. Thread-safe. FC_OK
 * or FC_ERR_IO (logged). */
int fc_log_open_file(const char *logger, const char *filename);
/* The same for one of several servers in one process (`fastchat serve`
 * writes controller.log, model_worker_<id>.log and openai_api_server.log):
 * a message starting with prefix (e.g. "controller:") goes only to the
 * files opened with that prefix; one that no file's prefix matches goes to
 * every file. */
int fc_log_open_file_for(const char *logger, const char *filename, const char *prefix);
/* The path of the file opened by the last fc_log_open_file (NULL: none);
 * valid until fc_log_close_files. */
const char *fc_log_file_path(void);
/* Closes every log file (at exit; optional). */
void fc_log_close_files(void);
/* For fc_log: whether any file is open, and the write itself. */
bool fc_log_files_open(void);
void fc_log_file_write(enum fc_log_level lvl, const char *msg);

/* The last error message logged at ERROR level on this thread; the CLI prints
 * it. Never NULL (empty string when none). */
const char *fc_last_error(void);

/* ---- assertions (kept in release builds) ---- */
void fc_assert_fail(const char *file, int line, const char *expr) __attribute__((noreturn));
#define FC_ASSERT(x) do { if (!(x)) fc_assert_fail(__FILE__, __LINE__, #x); } while (0)

/* ---- allocation: abort on out-of-memory for small bookkeeping; large
 * buffers use fc_aligned_alloc and check for NULL. ---- */
void *fc_xmalloc(size_t n);
void *fc_xcalloc(size_t n, size_t size);
void *fc_xrealloc(void *p, size_t n);
char *fc_xstrdup(const char *s);
/* printf into a new string (caller frees); aborts on out-of-memory. */
char *fc_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 64-byte aligned, zeroed; NULL on failure; free with fc_aligned_free. */
void *fc_aligned_alloc(size_t n);
void fc_aligned_free(void *p);

/* ---- read-only file mapping ---- */
typedef struct fc_mmap {
    const uint8_t *data;
    size_t size;
} fc_mmap;
/* Maps the whole file read-only. Returns NULL and logs "path: reason" on error.
 * Free with fc_mmap_free (NULL is a no-op). */
fc_mmap *fc_mmap_open(const char *path);
void fc_mmap_free(fc_mmap *m);

/* ---- time ---- */
double fc_time_sec(void); /* monotonic seconds */

/* ---- small helpers ---- */
#define FC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Peak resident set size of this process in bytes (VmHWM of
 * /proc/self/status; getrusage where there is no /proc). */
size_t fc_peak_rss(void);

#endif
