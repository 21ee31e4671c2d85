/*
 * gguf.h: reading and writing GGUF files (versions 2 and 3).
 *
 * The reader parses the header, the key/value metadata and the tensor infos
 * of a memory-mapped file and hands out borrowed pointers into the mapping;
 * nothing is copied or dequantized. Every length, count, offset and type is
 * checked against the file size before use, so a truncated, corrupt or
 * hostile file yields NULL and an error message naming the file and the
 * problem, never an out-of-bounds read.
 *
 * The writer collects metadata and tensors and writes a file that llama.cpp
 * loads (version 3, default alignment 32 unless general.alignment is set).
 *
 * Format: magic "GGUF", u32 version, u64 n_tensors, u64 n_kv (v1 used u32
 * counts and is not supported), then n_kv of {string key, u32 type, value},
 * then n_tensors of {string name, u32 n_dims, u64 ne[n_dims], u32 type,
 * u64 offset}, then padding to the alignment, then the tensor data. Strings
 * are u64 length + bytes (no NUL). Arrays are u32 elem type, u64 count,
 * elements. All little-endian.
 */
#ifndef FC_GGUF_H
#define FC_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "base/fc_base.h"
#include "tensor/tensor.h"

enum fc_gguf_type {
    FC_GGUF_UINT8 = 0, FC_GGUF_INT8 = 1, FC_GGUF_UINT16 = 2, FC_GGUF_INT16 = 3,
    FC_GGUF_UINT32 = 4, FC_GGUF_INT32 = 5, FC_GGUF_FLOAT32 = 6, FC_GGUF_BOOL = 7,
    FC_GGUF_STRING = 8, FC_GGUF_ARRAY = 9, FC_GGUF_UINT64 = 10, FC_GGUF_INT64 = 11,
    FC_GGUF_FLOAT64 = 12,
};

typedef struct fc_gguf fc_gguf;

typedef struct fc_gguf_str { const char *ptr; uint64_t len; } fc_gguf_str; /* not NUL-terminated */

typedef struct fc_gguf_tensor_info {
    fc_gguf_str name;
    fc_tensor t;         /* type, n_dims, ne, data (into the mapping), nbytes */
    uint64_t offset;     /* relative to the start of the data section */
} fc_gguf_tensor_info;

/* ---- reader ---- */
/* Maps and parses path. NULL on error (logged as "path: what is wrong (at
 * byte offset N)"). Every pointer the getters hand out is borrowed from the
 * mapping (or the caller's buffer) and stays valid until fc_gguf_free. A
 * parsed fc_gguf is never modified, so any number of threads may read it. */
fc_gguf *fc_gguf_open(const char *path);
/* True when path is a readable file that starts with the magic "GGUF"
 * (reads 4 bytes; logs nothing). */
bool fc_gguf_is_file(const char *path);
/* Parses a buffer the caller keeps alive (for fuzzing and tests); `name` is
 * used in error messages. Tensor data must lie inside the buffer. */
fc_gguf *fc_gguf_parse(const uint8_t *data, size_t size, const char *name);
void fc_gguf_free(fc_gguf *g);

uint32_t fc_gguf_version(const fc_gguf *g);
size_t fc_gguf_alignment(const fc_gguf *g);
size_t fc_gguf_file_size(const fc_gguf *g);
/* File offset of the tensor data section (after the infos and padding). */
size_t fc_gguf_data_offset(const fc_gguf *g);

/* Metadata. Keys are looked up by exact name; -1 when absent. */
int64_t fc_gguf_n_kv(const fc_gguf *g);
int64_t fc_gguf_find_key(const fc_gguf *g, const char *key);
fc_gguf_str fc_gguf_key(const fc_gguf *g, int64_t i);
enum fc_gguf_type fc_gguf_kv_type(const fc_gguf *g, int64_t i);

/* Typed getters by key. Integer getters accept any integer or bool type whose
 * value fits; float getters accept FLOAT32/FLOAT64 and integers. They return
 * false (and leave *out untouched) when the key is absent or mistyped.
 * fc_gguf_get_bool accepts BOOL only. */
bool fc_gguf_get_i64(const fc_gguf *g, const char *key, int64_t *out);
bool fc_gguf_get_u32(const fc_gguf *g, const char *key, uint32_t *out);
bool fc_gguf_get_f32(const fc_gguf *g, const char *key, float *out);
bool fc_gguf_get_bool(const fc_gguf *g, const char *key, bool *out);
/* String value; false when absent or not a string. */
bool fc_gguf_get_str(const fc_gguf *g, const char *key, fc_gguf_str *out);

/* Arrays: element type and count. For numeric arrays *data points at the
 * packed little-endian elements inside the mapping (possibly unaligned: read
 * with memcpy). String arrays are read element by element. */
bool fc_gguf_get_arr(const fc_gguf *g, const char *key, enum fc_gguf_type *elem_type,
                     uint64_t *n, const void **data);
/* i-th string of a string array (O(1): offsets are indexed at parse time). */
bool fc_gguf_get_arr_str(const fc_gguf *g, const char *key, uint64_t i, fc_gguf_str *out);

/* Generic access by kv index, for inspect and for copying metadata. */
bool fc_gguf_kv_get_arr(const fc_gguf *g, int64_t i, enum fc_gguf_type *elem_type,
                        uint64_t *n, const void **data);
bool fc_gguf_kv_get_arr_str(const fc_gguf *g, int64_t i, uint64_t j, fc_gguf_str *out);
/* Scalar value of kv i (non-array, non-string) as raw bytes (1, 2, 4 or 8). */
const void *fc_gguf_kv_scalar(const fc_gguf *g, int64_t i);
bool fc_gguf_kv_get_str(const fc_gguf *g, int64_t i, fc_gguf_str *out);
/* The serialized value of kv i as it lies in the file (after the u32 type
 * field: for arrays the element type, count and elements), *len bytes;
 * borrowed from the mapping. NULL when i is out of range. */
const uint8_t *fc_gguf_kv_raw(const fc_gguf *g, int64_t i, size_t *len);

/* Tensors. */
int64_t fc_gguf_n_tensors(const fc_gguf *g);
const fc_gguf_tensor_info *fc_gguf_tensor(const fc_gguf *g, int64_t i);
/* NULL when absent. */
const fc_gguf_tensor_info *fc_gguf_find_tensor(const fc_gguf *g, const char *name);

/* Size in bytes of one value of a scalar type; 0 for STRING/ARRAY/unknown. */
size_t fc_gguf_type_size(enum fc_gguf_type t);
const char *fc_gguf_type_name(enum fc_gguf_type t);

/* ---- writer ---- */
/* Not thread-safe; one writer per thread. The writer owns copies of keys and
 * values; tensor data is borrowed (see fc_gguf_writer_add_tensor). */
typedef struct fc_gguf_writer fc_gguf_writer;

fc_gguf_writer *fc_gguf_writer_new(void);
void fc_gguf_writer_free(fc_gguf_writer *w);
/* Setting a key twice replaces the earlier value. Values are copied. */
void fc_gguf_writer_set_u32(fc_gguf_writer *w, const char *key, uint32_t v);
void fc_gguf_writer_set_i32(fc_gguf_writer *w, const char *key, int32_t v);
void fc_gguf_writer_set_u64(fc_gguf_writer *w, const char *key, uint64_t v);
void fc_gguf_writer_set_f32(fc_gguf_writer *w, const char *key, float v);
void fc_gguf_writer_set_bool(fc_gguf_writer *w, const char *key, bool v);
/* Any fixed-size scalar type (u8..f64, bool); value points at
 * fc_gguf_type_size(type) bytes, little-endian. */
void fc_gguf_writer_set_scalar(fc_gguf_writer *w, const char *key, enum fc_gguf_type type,
                               const void *value);
void fc_gguf_writer_set_str(fc_gguf_writer *w, const char *key, const char *s, size_t len);
/* Numeric array of n elements of elem_type, packed little-endian. */
void fc_gguf_writer_set_arr(fc_gguf_writer *w, const char *key, enum fc_gguf_type elem_type,
                            const void *data, uint64_t n);
/* lens may be NULL: then the strings are NUL-terminated. */
void fc_gguf_writer_set_arr_str(fc_gguf_writer *w, const char *key, const char *const *strs,
                                const size_t *lens, uint64_t n);
/* Copies key/value i of g (any type, arrays included). */
void fc_gguf_writer_copy_kv(fc_gguf_writer *w, const fc_gguf *g, int64_t i);
/* Adds a tensor; data is borrowed until fc_gguf_writer_write returns and must
 * hold fc_dtype_row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] bytes. */
void fc_gguf_writer_add_tensor(fc_gguf_writer *w, const char *name, enum fc_dtype type, int n_dims,
                               const int64_t *ne, const void *data);
/* Writes the file (to path.tmp, then renames). FC_OK or FC_ERR_IO (logged);
 * FC_ERR_ARG when an earlier set/add call was invalid (each such call logs
 * its error and marks the writer) or general.alignment is not a u32 power of
 * two. Keys are written in insertion order, tensors in the order added, each
 * tensor's data at a multiple of the alignment. */
enum fc_status fc_gguf_writer_write(fc_gguf_writer *w, const char *path);
/* The same bytes into a new buffer (for tests and fuzzing): *out receives a
 * malloc'd image of *size bytes that the caller frees with free(). FC_OK,
 * FC_ERR_ARG as above, or FC_ERR_NOMEM; *out is NULL on error. */
enum fc_status fc_gguf_writer_write_buf(fc_gguf_writer *w, uint8_t **out, size_t *size);

#endif
