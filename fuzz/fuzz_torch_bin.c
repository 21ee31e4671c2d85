/*
 * fuzz_torch_bin.c: libFuzzer target for the PyTorch checkpoint reader
 * (fc_torch_bin_parse, src/format/torch_bin.c): the zip central directory,
 * local headers, and the pickle machine, on arbitrary bytes.
 *
 * Any input must either be rejected (NULL) or yield tensors whose nbytes
 * agrees with their type and shape and whose data lies inside the input or
 * in an aligned copy; every tensor byte is read so ASan sees a bad view, and
 * every name must be found again by fc_torch_bin_find.
 * Seeds: tests/data/fuzz/fuzz_torch_bin/ (torch.save outputs from
 * tests/data/torch_bin/, benign and malicious).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "format/torch_bin.h"

static size_t elem_size(int type)
{
    switch (type) {
    case FC_DTYPE_F32: return 4;
    case FC_DTYPE_F16:
    case FC_DTYPE_BF16: return 2;
    default: return 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_torch_bin *tb = fc_torch_bin_parse(data, size, "fuzz");
    if (!tb) return 0;
    volatile uint8_t sink = 0;
    int64_t n = fc_torch_bin_n_tensors(tb);
    for (int64_t i = 0; i < n; i++) {
        const char *name = fc_torch_bin_name(tb, i);
        const fc_tensor *t = fc_torch_bin_tensor(tb, i);
        if (!name || !t || fc_torch_bin_find(tb, name) != t) abort();
        if (t->n_dims < 1 || t->n_dims > FC_MAX_DIMS) abort();
        size_t es = elem_size(t->type);
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
    }
    (void)sink;
    fc_torch_bin_free(tb);
    return 0;
}
