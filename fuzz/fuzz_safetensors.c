/*
 * fuzz_safetensors.c: libFuzzer target for the safetensors header parser
 * (fc_safetensors_parse, src/model/safetensors.c).
 *
 * Any input must either be rejected (NULL) or yield tensors that all lie
 * inside the input (or in an aligned copy) with nbytes consistent with the
 * type and shape; every tensor byte is read so ASan sees any out-of-bounds
 * view, and every name must be found again by fc_safetensors_find.
 * Seeds: tests/data/fuzz/fuzz_safetensors/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "model/safetensors.h"

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
    fc_safetensors *st = fc_safetensors_parse(data, size, "fuzz");
    if (!st) return 0;
    volatile uint8_t sink = 0;
    int64_t n = fc_safetensors_n_tensors(st);
    for (int64_t i = 0; i < n; i++) {
        const char *name = fc_safetensors_name(st, i);
        const fc_tensor *t = fc_safetensors_tensor(st, i);
        if (!name || !t || fc_safetensors_find(st, name) != t) abort();
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
        for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
    }
    (void)sink;
    fc_safetensors_free(st);
    return 0;
}
