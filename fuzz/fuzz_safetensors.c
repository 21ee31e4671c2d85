/*
 * fuzz_safetensors.c: libFuzzer target for the safetensors header parser
 * (fc_safetensors_parse, src/model/safetensors.c).
 *
 * Any input must either be rejected (NULL) or yield tensors that all lie
 * inside the input (or in an aligned copy) with nbytes consistent with the
 * type and shape; every tensor byte is read so ASan sees any out-of-bounds
 * view, and every name must be found again by fc_safetensors_find.
 * Seeds: tests/data/fuzz/fuzz_safetensors/. The per-tensor check (shared
 * with fuzz_torch_bin.c, tensor_views.h) also holds every view to the input
 * or a 64-byte aligned copy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "model/safetensors.h"
#include "tensor_views.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_safetensors *st = fc_safetensors_parse(data, size, "fuzz");
    if (!st) return 0;
    int64_t n = fc_safetensors_n_tensors(st);
    for (int64_t i = 0; i < n; i++) {
        const char *name = fc_safetensors_name(st, i);
        const fc_tensor *t = fc_safetensors_tensor(st, i);
        if (!name || !t || fc_safetensors_find(st, name) != t) abort();
        fz_check_tensor(t, data, size);
    }
    fc_safetensors_free(st);
    return 0;
}
