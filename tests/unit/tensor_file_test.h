/*
 * tensor_file_test.h: what the unit tests of the tensor-file readers
 * (test_safetensors.c, test_torch_bin.c) share: the one-line-per-check
 * reporter, the data folder, reading a fixture whole, the "every truncation
 * refused with a message" loop, and the checks on the tensors a reader gives
 * back (same as another, every view inside the input or an aligned copy).
 *
 * Header-only, included by one test file each: everything is static (inline,
 * so that a test which does not use a helper gets no warning). A test sets
 * the data folder with tf_data_dir_init() (tests/data, run from the
 * repository root, or $FC_TEST_DATA), calls check() once per check and ends
 * main with `return tf_end();`.
 */
#ifndef FC_TENSOR_FILE_TEST_H
#define FC_TENSOR_FILE_TEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "tensor/tensor.h"

static int n_pass, n_fail;
static char data_dir[512];

/* Prints "ok   what" or "FAIL what" and counts the check. */
static inline void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) n_pass++;
    else n_fail++;
}

/* The summary line; the exit status of main (non-zero if a check failed). */
static inline int tf_end(void)
{
    printf("\n%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

/* data_dir: $FC_TEST_DATA when set and not empty, else tests/data. */
static inline void tf_data_dir_init(void)
{
    const char *env = getenv("FC_TEST_DATA");
    snprintf(data_dir, sizeof data_dir, "%s", env && *env ? env : "tests/data");
}

/* The whole file in a malloc'd buffer of exactly its size (at least 1 byte
 * allocated), so that ASan sees a read past its end; NULL if it cannot be
 * read. The caller frees it. */
static inline uint8_t *tf_read_file(const char *path, size_t *size)
{
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *size = (size_t)n;
    return buf;
}

/* s contains sub (false for a NULL s, e.g. no error message). */
static inline bool has(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* A reader's parse-from-memory call: true if it accepted the bytes (and freed
 * what it made); on refusal fc_last_error() holds its message. */
typedef bool (*tf_parse_fn)(const uint8_t *data, size_t size, const char *name);

/* Feeds every strict prefix of full[0..size) to parse, each in a buffer of
 * exactly its length (ASan sees an overread), under the name `name`. Returns
 * how many were accepted; *silent counts the refusals whose message does not
 * name the input. */
static inline size_t tf_prefixes_accepted(const uint8_t *full, size_t size, const char *name, tf_parse_fn parse,
                                          size_t *silent)
{
    size_t accepted = 0;
    *silent = 0;
    for (size_t len = 0; len < size; len++) {
        uint8_t *cut = malloc(len ? len : 1);
        memcpy(cut, full, len);
        if (parse(cut, len, name)) accepted++;
        else if (!has(fc_last_error(), name)) ++*silent;
        free(cut);
    }
    return accepted;
}

/* Same type, shape, size and bytes. */
static inline bool tf_same_tensor(const fc_tensor *a, const fc_tensor *b)
{
    if (!a || !b || a->type != b->type || a->n_dims != b->n_dims || a->nbytes != b->nbytes) return false;
    for (int i = 0; i < FC_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i]) return false;
    return memcmp(a->data, b->data, a->nbytes) == 0;
}

/* A view a reader made of the input d[0..size): every byte is read (so ASan
 * sees a bad view) and it lies inside the input, or is an aligned (64-byte)
 * copy the reader made of misaligned data, counted in *copies. */
static volatile uint8_t tf_sink;
static inline bool tf_view_inside(const fc_tensor *t, const uint8_t *d, size_t size, size_t *copies)
{
    const uint8_t *p = t->data;
    for (size_t k = 0; k < t->nbytes; k++) tf_sink ^= p[k];
    if (t->nbytes && (p < d || p + t->nbytes > d + size)) {
        if ((uintptr_t)p % 64) return false;
        ++*copies;
    }
    return true;
}

#endif
