/*
 * tensor_index.h: a name -> tensor index, the one the checkpoint readers
 * build (model/safetensors.h, format/torch_bin.h): entries are added while
 * the files are parsed, then sorted by name once (duplicates refused) and
 * looked up by binary search.
 *
 * Not here: the files, their mappings and the copies of misaligned data
 * (each reader keeps them; an entry names its file by the reader's index).
 */
#ifndef FC_TENSOR_INDEX_H
#define FC_TENSOR_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor/tensor.h"

typedef struct fc_tensor_entry {
    char *name;   /* owned, NUL-terminated */
    fc_tensor t;  /* a view: data borrowed from the reader's files */
    int file;     /* the reader's index of the file it came from */
} fc_tensor_entry;

/* A zeroed index ({0}) is empty and ready. */
typedef struct fc_tensor_index {
    fc_tensor_entry *ents; /* (n) in order of addition; sorted by name after fc_tensor_index_finish */
    int64_t n, cap;
} fc_tensor_index;

/* Appends an entry; takes ownership of name (malloc'd). */
void fc_tensor_index_add(fc_tensor_index *ix, char *name, const fc_tensor *t, int file);

/* Sorts by name; false (logged as "<what>: tensor '<name>' appears more than
 * once") when a name repeats. */
bool fc_tensor_index_finish(fc_tensor_index *ix, const char *what);

/* The entry named name, or NULL; the index must be finished. */
const fc_tensor_entry *fc_tensor_index_find(const fc_tensor_index *ix, const char *name);

/* Frees the names and the entries; the index is empty again. */
void fc_tensor_index_free(fc_tensor_index *ix);

#endif
