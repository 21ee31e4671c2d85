/*
 * tensor_views.h: the check the fuzz targets of the tensor-file readers
 * (fuzz_safetensors.c, fuzz_torch_bin.c) run on every tensor a reader gives
 * back from a fuzzed buffer. Header-only (static), included by one target
 * each; a failed check abort()s, which libFuzzer reports as a crash.
 *
 * A tensor must have 1..FC_MAX_DIMS dimensions, no negative extent, nbytes
 * equal to its element count times its element size and data aligned to that
 * size (for the float types the readers map: f32, f16, bf16), and its data
 * must lie inside the input or in a 64-byte aligned copy the reader made of
 * misaligned bytes. Every byte is read, so that ASan sees a bad view.
 */
#ifndef FC_FUZZ_TENSOR_VIEWS_H
#define FC_FUZZ_TENSOR_VIEWS_H

#include <stdint.h>
#include <stdlib.h>

#include "base/fc_base.h"
#include "tensor/tensor.h"

static size_t fz_elem_size(int type)
{
    switch (type) {
    case FC_DTYPE_F32: return 4;
    case FC_DTYPE_F16:
    case FC_DTYPE_BF16: return 2;
    default: return 0;
    }
}

static void fz_check_tensor(const fc_tensor *t, const uint8_t *data, size_t size)
{
    static volatile uint8_t sink;
    if (t->n_dims < 1 || t->n_dims > FC_MAX_DIMS) abort();
    size_t es = fz_elem_size(t->type);
    if (es) {
        int64_t nelem = 1;
        for (int d = 0; d < FC_MAX_DIMS; d++) {
            if (t->ne[d] < 0) abort();
            nelem *= t->ne[d];
        }
        if ((size_t)nelem * es != t->nbytes) abort();
        if ((uintptr_t)t->data % es) abort();
    }
    const uint8_t *p = t->data;
    if (t->nbytes && (p < data || p + t->nbytes > data + size) && (uintptr_t)p % 64) abort();
    for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
    (void)sink;
}

#endif
