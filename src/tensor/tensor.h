/*
 * tensor.h: a view of a weight tensor as stored in a model file.
 *
 * Dimension order is GGUF's: ne[0] is the innermost (contiguous) dimension,
 * so a matrix of R rows of K values has ne = {K, R}. A safetensors tensor of
 * shape [R, K] maps to ne = {K, R}. Data is borrowed from the file mapping.
 */
#ifndef FC_TENSOR_H
#define FC_TENSOR_H

#include <stddef.h>
#include <stdint.h>
#include "dtype.h"

#define FC_MAX_DIMS 4

typedef struct fc_tensor {
    enum fc_dtype type;
    int n_dims;
    int64_t ne[FC_MAX_DIMS];  /* ne[0] innermost; unused dims are 1 */
    const void *data;         /* borrowed; NULL when the tensor is absent */
    size_t nbytes;
    /* The same matrix rearranged for the fast kernels (fc_pack_rows), or
     * NULL: packed_type's layout, nbytes long, owned by the model. data
     * stays valid for the paths that want the stored layout. */
    const void *packed;
    int packed_type;
} fc_tensor;

static inline int64_t fc_tensor_nelem(const fc_tensor *t)
{
    return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

/* Byte stride between rows (ne[0] values). */
static inline size_t fc_tensor_row_bytes(const fc_tensor *t)
{
    return fc_dtype_row_size(t->type, t->ne[0]);
}

#endif
