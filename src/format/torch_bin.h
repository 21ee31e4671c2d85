/*
 * torch_bin.h: reading PyTorch checkpoints (`torch.save` of a state dict:
 * pytorch_model.bin, and sharded folders with pytorch_model.bin.index.json)
 * without executing pickle code.
 *
 * The legacy format of torch < 1.6 (five pickles followed by the raw
 * storages, not a zip) is read too; its storages are not aligned, so its
 * tensors are copied into aligned memory instead of viewed in place.
 *
 * Since torch 1.6 a checkpoint is a zip archive with every entry stored
 * (no compression): <prefix>/data.pkl holds the pickled state dict, whose
 * tensors refer by "persistent id" to storages in <prefix>/data/<key>,
 * each aligned to 64 bytes in the file. The archive is mapped read-only
 * and tensors point into the mapping (no copy), as safetensors.h does.
 *
 * The pickle is run by a small stack machine that knows only the opcodes a
 * plain state dict uses and only these globals: collections.OrderedDict,
 * torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter, the
 * torch.<X>Storage storage types and torch.<dtype> objects. Any other
 * global (os.system, builtins.eval, a class's __reduce__) is refused with
 * an error that names it; nothing is ever called or imported.
 *
 * Refused with a clear error: compressed or encrypted zip entries,
 * big-endian checkpoints, non-contiguous tensors, more than FC_MAX_DIMS
 * dimensions.
 */
#ifndef FC_TORCH_BIN_H
#define FC_TORCH_BIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/fc_base.h"
#include "tensor/tensor.h"

typedef struct fc_torch_bin fc_torch_bin;

/* Opens one checkpoint file, or a folder: pytorch_model.bin.index.json (all
 * shards of its "weight_map") if present, else pytorch_model.bin. NULL on
 * error (logged, naming the file). */
fc_torch_bin *fc_torch_bin_open(const char *path);
/* Parses a checkpoint held in a buffer the caller keeps alive until
 * fc_torch_bin_free (fuzzing, tests). name is used in messages. */
fc_torch_bin *fc_torch_bin_parse(const uint8_t *data, size_t size, const char *name);
/* Unmaps the files and frees every name and tensor view. NULL is a no-op. */
void fc_torch_bin_free(fc_torch_bin *tb);

/* True when the folder has pytorch_model.bin.index.json or pytorch_model.bin. */
bool fc_torch_bin_in_folder(const char *dir);

/* Immutable once opened: any thread may read it. Names are unique (a name
 * stored twice across shards is an error), tensor i is the i-th name in
 * strcmp order. Views are valid until fc_torch_bin_free. Tensors of float32,
 * float16 and bfloat16 storages have those types; other storages (int64,
 * uint8, ...) load with type -1 and their byte count. Data is aligned to
 * the element size (misaligned data is copied into memory owned by tb). */
int64_t fc_torch_bin_n_tensors(const fc_torch_bin *tb);
/* Name of tensor i (owned by tb); NULL if i is out of range. */
const char *fc_torch_bin_name(const fc_torch_bin *tb, int64_t i);
/* Tensor i, ne reversed from the torch shape ([R, K] gives ne = {K, R}). */
const fc_tensor *fc_torch_bin_tensor(const fc_torch_bin *tb, int64_t i);
/* Binary search by name; NULL when absent. */
const fc_tensor *fc_torch_bin_find(const fc_torch_bin *tb, const char *name);

#endif
