/*
 * data_impl.h: what the files of src/data share: the output writer, the
 * parallel per-conversation driver and small Python-compatible string rules.
 */
#ifndef FC_DATA_IMPL_H
#define FC_DATA_IMPL_H

#include "data/data.h"

/* ---- output: a JSON array written element by element ---- */

typedef struct dt_writer {
    FILE *fp;
    char *path, *tmp;
    size_t count;
    bool ensure_ascii;
} dt_writer;

/* Opens a temporary file beside path and writes "[". */
bool dt_writer_open(dt_writer *w, const char *path);
/* Appends chunk (elements, each written as ",\n  <value>") holding n elements. */
bool dt_writer_put(dt_writer *w, const char *chunk, size_t len, size_t n);
/* Writes the closing bracket and renames into place; false (logged) on error. */
bool dt_writer_close(dt_writer *w);
/* Removes the temporary file (after an error). */
void dt_writer_abort(dt_writer *w);
/* ",\n  " + v at level 1, as one element of the top-level array. */
void dt_put_elem(fc_pj_out *out, const fc_pj *v, bool ensure_ascii);

/* ---- the driver ---- */

/* Called for one conversation (idx: its index in the file) on a worker
 * thread with that thread's arena (reset between calls) and buffers. Appends
 * output elements to out, message lines to aux, and returns a code >= 0
 * (the number of elements put in out, when reduce is NULL), or -1 after
 * writing an error message (no newline) to aux. */
typedef int (*dt_elem_fn)(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out,
                          fc_pj_out *aux);
/* Called in input order on the main thread with what elem_fn produced;
 * false stops the run (logged). */
typedef bool (*dt_reduce_fn)(void *ctx, size_t idx, int code, const char *out, size_t out_len,
                             const char *aux, size_t aux_len, dt_writer *w, FILE *msg);

/* Runs fn over the elements idx[0..n) of f (idx NULL: 0..n-1) with
 * o->n_threads threads. reduce NULL: out chunks go to w (may be NULL when fn
 * writes none) and aux text to o->msg. */
bool dt_run(const fc_data_file *f, const size_t *idx, size_t n, dt_elem_fn fn, dt_reduce_fn reduce,
            void *ctx, dt_writer *w, const fc_data_opts *o, const char *label);

FILE *dt_msg(const fc_data_opts *o);

/* ---- Python string rules ---- */

/* Decodes the code point at s[*i] (valid UTF-8/WTF-8) and advances *i. */
unsigned dt_next_cp(const char *s, size_t n, size_t *i);
/* str.isspace() of one code point (Unicode 14, as Python 3.11). */
bool dt_py_isspace(unsigned cp);
/* \d of Python's re on str: general category Nd. */
bool dt_py_isdigit(unsigned cp);
/* str.isprintable() of one code point. */
bool dt_py_isprintable(unsigned cp);
/* str.strip(): the byte range of s without leading/trailing isspace chars. */
void dt_py_strip(const char *s, size_t n, size_t *lo, size_t *hi);

#endif
