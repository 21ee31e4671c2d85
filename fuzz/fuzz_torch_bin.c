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
 * tests/data/torch_bin/, benign and malicious). The per-tensor check is
 * shared with fuzz_safetensors.c: tensor_views.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "format/torch_bin.h"
#include "tensor_views.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_torch_bin *tb = fc_torch_bin_parse(data, size, "fuzz");
    if (!tb) return 0;
    int64_t n = fc_torch_bin_n_tensors(tb);
    for (int64_t i = 0; i < n; i++) {
        const char *name = fc_torch_bin_name(tb, i);
        const fc_tensor *t = fc_torch_bin_tensor(tb, i);
        if (!name || !t || fc_torch_bin_find(tb, name) != t) abort();
        fz_check_tensor(t, data, size);
    }
    fc_torch_bin_free(tb);
    return 0;
}
