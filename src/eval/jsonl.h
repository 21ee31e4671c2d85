/*
 * jsonl.h: JSON-lines files as FastChat's llm_judge keeps them (questions,
 * model answers, judgments, judge prompts), read and appended so that a run
 * can be killed at any moment (kill -9 included) and resumed.
 *
 * Crash safety: every record is serialised into one buffer ending in '\n'
 * and written with a single write(2) on an O_APPEND descriptor, under a
 * mutex, so concurrent writers never interleave. A process killed while it
 * writes can still leave the start of a long line (Linux stops a write to a
 * file at a page boundary on a fatal signal; a full disk or a power cut do
 * the same), so fc_jsonl_open_append first truncates the file back to its
 * last '\n' and fc_jsonl_read skips a last line without '\n' and any line
 * that does not parse (with a warning): the next run never trips over it,
 * and the record is redone. Lines are fdatasync'ed only when asked
 * (sync = true).
 *
 * Not done here: deduplication by key (the caller decides what "already
 * done" means; fc_jsonl_rewrite_sorted is FastChat's reorg_answer_file).
 */
#ifndef FC_JSONL_H
#define FC_JSONL_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Parses every complete line of `path` into *out (a malloc'd array of
 * n cJSON objects; free with fc_jsonl_free). Blank, unparsable and non-object
 * lines are skipped with a warning; a last line without '\n' is ignored.
 * A missing file gives FC_OK with n = 0 when missing_ok, else FC_ERR_IO. */
int fc_jsonl_read(const char *path, bool missing_ok, struct cJSON ***out, int *n);
void fc_jsonl_free(struct cJSON **items, int n);

typedef struct fc_jsonl_writer fc_jsonl_writer;

/* Opens (creating it and its parent directories) `path` for appending, after
 * cutting a partial last line, and holds an exclusive flock(2) on it until
 * fc_jsonl_close: a second writer (another run on the same file) gets NULL.
 * NULL on error (logged). */
fc_jsonl_writer *fc_jsonl_open_append(const char *path, bool sync);
/* Appends one record as one line (cJSON_PrintUnformatted + '\n') in one
 * write. Thread-safe. FC_OK or FC_ERR_IO. */
int fc_jsonl_append(fc_jsonl_writer *w, const struct cJSON *item);
/* Same with a ready line (no '\n' inside; one is added). */
int fc_jsonl_append_raw(fc_jsonl_writer *w, const char *line, size_t len);
void fc_jsonl_close(fc_jsonl_writer *w); /* NULL is a no-op */

/* FastChat's reorg_answer_file: keeps the last line of each integer `key`
 * (e.g. "question_id"), sorted by it (numbers first, ascending; other keys
 * after, in order of appearance), written to a temporary file and renamed
 * over `path` (atomic). FC_OK or an error (logged). */
int fc_jsonl_rewrite_sorted(const char *path, const char *key);

/* mkdir -p of the directory part of `path`. FC_OK or FC_ERR_IO. */
int fc_mkdir_parents(const char *path);

#endif
