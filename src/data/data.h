/*
 * data.h: FastChat's ShareGPT data tools (the fastchat.data modules of fschat
 * 0.2.36) as a library: `fastchat data <sub>` calls one fc_data_* function per
 * script. Each writes the same file (json.dump indent=2 format, pyjson.h) and
 * prints the same stdout lines as the script does on the same input.
 *
 * How a file is read: memory-mapped, checked in one pass that records where
 * each top-level element lies (pyjson.h), then parsed one conversation at a
 * time. Conversations are processed by all cores (fc_data_opts.n_threads) in
 * batches whose results are written in input order, so the output does not
 * depend on the thread count. Output goes to a temporary file in the target's
 * folder, renamed into place at the end (an input may be its own output).
 *
 * Errors: NULL / false with FC_LOG_ERROR one line naming the file and, for
 * malformed JSON, the byte offset, line and column; for a wrong shape, the
 * element index and what was expected.
 */
#ifndef FC_DATA_DATA_H
#define FC_DATA_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "data/pyjson.h"

struct fc_tokenizer;

typedef struct fc_data_opts {
    int n_threads;    /* worker threads; <= 0: the number of online CPUs */
    bool progress;    /* progress line on stderr (the CLI sets it when stderr is a tty) */
    FILE *msg;        /* where the scripts' print() lines go (stdout when NULL) */
} fc_data_opts;

/* ---- reading ---- */

typedef struct fc_data_file fc_data_file;
/* Maps and checks path (a JSON array). NULL (logged) when it cannot be read,
 * is malformed, or is not an array. Free with fc_data_file_free. */
fc_data_file *fc_data_file_open(const char *path);
void fc_data_file_free(fc_data_file *f); /* NULL is a no-op */
size_t fc_data_file_count(const fc_data_file *f);
/* Element i parsed into the arena (borrowing the mapped file). */
fc_pj *fc_data_file_get(const fc_data_file *f, size_t i, fc_pj_arena *a);

/* Python's slice [begin:end] of n items (has_* false: the bound is None):
 * the half-open range it selects, in *lo and *hi (lo <= hi). */
void fc_data_pyslice(long long begin, bool has_begin, long long end, bool has_end, size_t n,
                     size_t *lo, size_t *hi);
/* Python's str.replace(old, new) on a path: malloc'd result. */
char *fc_data_str_replace(const char *s, const char *old, const char *rep);

/* ---- the tools (each returns true on success; false: logged) ---- */

/* merge.py: --in-file A B ... --out-file */
bool fc_data_merge(const char *const *in_files, int n_in, const char *out_file, const fc_data_opts *o);

/* sample.py: seed-42 shuffle unless keep_order, items [begin, min(end, n)),
 * skipping those whose concatenated values are longer than max_length code
 * points. */
bool fc_data_sample(const char *in_file, const char *out_file, long long begin, long long end,
                    long long max_length, bool keep_order, const fc_data_opts *o);

/* split_train_test.py: seed-0 permutation, first int(ratio * n) to
 * in_file.replace(".json", "_train.json"), the rest to "_test.json". */
bool fc_data_split_train_test(const char *in_file, double ratio, const fc_data_opts *o);

/* filter_wrong_format.py: drop conversations with a value matching
 * "\n1\. [^2]*\n1\. " */
bool fc_data_filter_wrong_format(const char *in_file, const char *out_file, const fc_data_opts *o);

/* extract_gpt4_only.py / extract_single_round.py: out_file NULL means the
 * script's default name; begin/end as a Python slice. */
bool fc_data_extract_gpt4_only(const char *in_file, const char *out_file, long long begin,
                               bool has_begin, long long end, bool has_end, const fc_data_opts *o);
bool fc_data_extract_single_round(const char *in_file, const char *out_file, long long begin,
                                  bool has_begin, long long end, bool has_end,
                                  const fc_data_opts *o);

/* convert_alpaca.py */
bool fc_data_convert_alpaca(const char *in_file, const char *out_file, const fc_data_opts *o);

/* hardcoded_questions.py: the identity set for `name` trained by `org`
 * (FastChat: "Vicuna", "Large Model Systems Organization (LMSYS)"), written
 * with ensure_ascii as json.dump's default. */
bool fc_data_hardcoded_questions(const char *out_file, const char *name, const char *org,
                                 const fc_data_opts *o);

/* optional_clean.py. keep_lang "all" or "en"; skip_lang NULL or a code.
 * Language detection is ours (data_lang.c), not polyglot's: see there. */
bool fc_data_optional_clean(const char *in_file, const char *out_file, const char *keep_lang,
                            const char *skip_lang, bool reduce_rep, const fc_data_opts *o);

/* split_long_conversation.py with tok counting tokens (add_special_tokens as
 * Hugging Face's tokenizer(text) does). */
bool fc_data_split_long(const char *in_file, const char *out_file, long long begin, bool has_begin,
                        long long end, bool has_end, const struct fc_tokenizer *tok,
                        long long max_length, const fc_data_opts *o);

/* get_stats.py's report (tokens from tok.tokenize(), i.e. no special tokens
 * added); by_role adds a table of conversations, turns and tokens per role. */
bool fc_data_stats(const char *in_file, const struct fc_tokenizer *tok, bool by_role,
                   const fc_data_opts *o);

/* clean_sharegpt.py: HTML to Markdown (html_md.h), drops and dedup. */
bool fc_data_clean_sharegpt(const char *in_file, const char *out_file, long long begin,
                            bool has_begin, long long end, bool has_end, const fc_data_opts *o);

#endif
