/*
 * fuzz_sft_data.c: libFuzzer target for FastChat's label masking
 * (src/train/sft_data.c) on arbitrary conversation JSON, with real
 * tokenizers loaded once (tests/data/tokenizer/spm and spm_legacy; run from
 * the repository root or from build/fuzz/).
 *
 * Byte 0 picks the tokenizer (bit 0), the `legacy` flag (bit 1) and
 * model_max_length (8 + (byte >> 2), so truncation is common); the rest is
 * JSON: a record {"conversations": [...]} or the array itself. On success
 * the invariants are: n == model_max_length, n_tokens <= n, ids past
 * n_tokens are the pad id, the first label is masked, every label is -100
 * or the id at its position, n_label counts the unmasked ones, and a
 * mismatch masks everything. Errors must leave the example zeroed.
 * Seeds: tests/data/fuzz/fuzz_sft_data/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "train/sft_data.h"

static fc_tokenizer *toks[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    char data[4096], path[4200];
    snprintf(data, sizeof data, "tests/data/tokenizer");
    if (access(data, R_OK) != 0 && *argc > 0) { /* build/fuzz/fuzz_sft_data -> ../../tests/... */
        const char *exe = (*argv)[0], *slash = strrchr(exe, '/');
        snprintf(data, sizeof data, "%.*s/../../tests/data/tokenizer", slash ? (int)(slash - exe) : 1,
                 slash ? exe : ".");
    }
    const char *names[2] = {"spm", "spm_legacy"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", data, names[i]);
        if (!(toks[i] = fc_tokenizer_load(path))) {
            fprintf(stderr, "fuzz_sft_data: cannot load %s\n", path);
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    fc_sft_params p = {.model_max_length = 8 + (d[0] >> 2), .pad_id = 0, .legacy = d[0] & 2};
    cJSON *root = cJSON_ParseWithLength((const char *)d + 1, n - 1);
    if (!root) return 0;
    const cJSON *convs = cJSON_IsArray(root) ? root : cJSON_GetObjectItemCaseSensitive(root, "conversations");
    fc_sft_example ex;
    enum fc_status st = fc_sft_preprocess(toks[d[0] & 1], convs, &p, &ex);
    if (st != FC_OK) {
        if (ex.ids || ex.labels || ex.n) abort();
    } else {
        if (ex.n != p.model_max_length || ex.n_tokens > ex.n || ex.n_tokens < 0) abort();
        if (ex.labels[0] != FC_IGNORE_INDEX) abort();
        int n_label = 0;
        for (int i = 0; i < ex.n; i++) {
            if (i >= ex.n_tokens && ex.ids[i] != p.pad_id) abort();
            if (ex.labels[i] != FC_IGNORE_INDEX && ex.labels[i] != ex.ids[i]) abort();
            n_label += ex.labels[i] != FC_IGNORE_INDEX;
        }
        if (n_label != ex.n_label || (ex.mismatch && n_label)) abort();
        fc_sft_example_free(&ex);
    }
    cJSON_Delete(root);
    return 0;
}
