/*
 * safetensors.h: reading Hugging Face safetensors files and sharded folders.
 *
 * A .safetensors file is a u64 little-endian header length N, N bytes of JSON
 * ({"name": {"dtype": "F32"|"F16"|"BF16"|..., "shape": [...],
 * "data_offsets": [begin, end]}, "__metadata__": {...}}), then the data
 * section; offsets are relative to the data section. A sharded model has
 * model.safetensors.index.json whose "weight_map" maps tensor names to shard
 * files. Files are mapped read-only and tensors point into the mapping.
 *
 * Every offset, shape and dtype is validated against the file (end - begin
 * must equal the element count times the dtype size, ranges inside the file),
 * so corrupt or hostile input yields NULL plus an error naming the file.
 */
#ifndef FC_SAFETENSORS_H
#define FC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "base/fc_base.h"
#include "tensor/tensor.h"

typedef struct fc_safetensors fc_safetensors;

/* Opens one file, or a folder: model.safetensors.index.json (all shards) if
 * present, else model.safetensors, else every *.safetensors in it, else a
 * PyTorch checkpoint (pytorch_model.bin.index.json or pytorch_model.bin,
 * read without running pickle code by format/torch_bin.h; a path ending in
 * .bin is read that way too). NULL on error (logged). */
fc_safetensors *fc_safetensors_open(const char *path);
/* Parses a buffer the caller keeps alive (fuzzing, tests). */
fc_safetensors *fc_safetensors_parse(const uint8_t *data, size_t size, const char *name);
/* Unmaps the files and frees every name and tensor view. NULL is a no-op. */
void fc_safetensors_free(fc_safetensors *st);

/* The object is immutable once opened: any thread may read it. Tensor views
 * and names are valid until fc_safetensors_free. Names are unique (a name
 * repeated in a header or across shards is an error) and tensor i is the
 * i-th name in strcmp order, not header order. Tensor data is aligned to its
 * element size (misaligned data is copied into memory owned by st). */
int64_t fc_safetensors_n_tensors(const fc_safetensors *st);
/* Name of tensor i (NUL-terminated, owned by st); NULL if i is out of range. */
const char *fc_safetensors_name(const fc_safetensors *st, int64_t i);
/* Tensor i as an fc_tensor (ne reversed from the safetensors shape, so
 * shape [R, K] gives ne = {K, R}); supported dtypes F32, F16, BF16 (others
 * load as type -1 and must be rejected by the caller if used). */
const fc_tensor *fc_safetensors_tensor(const fc_safetensors *st, int64_t i);
/* Binary search by name; NULL when absent. */
const fc_tensor *fc_safetensors_find(const fc_safetensors *st, const char *name);

/* Drops the pages of the file mapping under tensor t (a view from st) from
 * this process's memory: they are read back from the file if t is read
 * again. For tools that stream through large checkpoints (apply-delta,
 * --load-8bit) so that the resident size stays about one tensor. A tensor
 * that is not in a mapping (a private aligned copy) is left alone. */
void fc_safetensors_release(const fc_safetensors *st, const fc_tensor *t);

#endif
