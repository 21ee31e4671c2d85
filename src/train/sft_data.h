/*
 * sft_data.h: supervised fine-tuning examples from FastChat conversation JSON,
 * with the labels FastChat's `preprocess` (fastchat/train/train.py) computes.
 *
 * One example is a ShareGPT record {"id": ..., "conversations": [{"from":
 * "human"|"gpt", "value": ...}, ...]}. It is rendered with the vicuna_v1.1
 * template (default system message; a record's "system" key is ignored, as
 * train.py ignores it), tokenized with special tokens, truncated and padded
 * to model_max_length, and its labels are the ids with IGNORE_TOKEN_ID (-100)
 * everywhere but the assistant replies. The arithmetic is train.py's own,
 * quirks included, because a model trained here must see what FastChat's
 * trainer would have shown it:
 *   - the first position is always masked (it is BOS for Llama tokenizers);
 *   - the rendered text is split on sep2 ("</s>") into turns, each turn on
 *     " ASSISTANT: "; len(tokens(instruction + sep)) - 2 tokens are masked
 *     ("-2" is hard-coded for the Llama tokenizer), one less for every turn
 *     but the first when the tokenizer is not `legacy`; each turn advances by
 *     its own token count (minus one likewise);
 *   - a turn without exactly one " ASSISTANT: " ends the loop;
 *   - everything after the last turn is masked;
 *   - when the sum does not equal the number of non-pad tokens (and the sample
 *     was not truncated) the whole example is masked and FastChat's
 *     "WARNING: tokenization mismatch: X vs. Y. #turn = N. (ignored)" is given.
 *   With a tokenizer in which "</s>" is not one token (SmolLM2's, Qwen2's),
 *   the sum never matches, so only truncated examples keep unmasked labels:
 *   that is what FastChat does with those tokenizers, and it is reproduced.
 * A first message not from "human" is dropped; roles must then alternate
 * (FastChat asserts; here FC_ERR_FORMAT).
 *
 * Not done here: train_with_template.py's per-template masking, packing.
 * Tests: tests/unit/test_train_data.c against fschat's preprocess
 * (tools/golden/make_train_golden.py labels).
 */
#ifndef FC_SFT_DATA_H
#define FC_SFT_DATA_H

#include <stdbool.h>
#include <stdint.h>
#include "../base/fc_base.h"
#include "../tokenizer/tokenizer.h"

#define FC_IGNORE_INDEX (-100)

struct cJSON;

typedef struct fc_sft_params {
    int model_max_length;   /* T: ids are truncated and padded to it */
    int32_t pad_id;         /* train.py sets pad_token = unk_token */
    bool legacy;            /* the tokenizer's `legacy` attribute */
} fc_sft_params;

typedef struct fc_sft_example {
    int32_t *ids;      /* (T) padded with pad_id; malloc'd, freed by fc_sft_example_free */
    int32_t *labels;   /* (T) ids or FC_IGNORE_INDEX */
    int n;             /* T */
    int n_tokens;      /* ids before padding (after truncation) */
    int n_label;       /* labels != FC_IGNORE_INDEX */
    bool mismatch;     /* FastChat's tokenization-mismatch case: all masked */
    int mismatch_cur, mismatch_total, mismatch_turns; /* the warning's numbers */
} fc_sft_example;

/* Builds one example from a record's "conversations" array (the cJSON array
 * itself). FC_OK, FC_ERR_FORMAT for malformed records or broken alternation
 * (logged), FC_ERR_NOMEM. *out is filled on success (free it with
 * fc_sft_example_free) and zeroed on failure. */
enum fc_status fc_sft_preprocess(const fc_tokenizer *tok, const struct cJSON *conversations,
                                 const fc_sft_params *p, fc_sft_example *out);

void fc_sft_example_free(fc_sft_example *ex); /* NULL and zeroed are no-ops */

/* ---- a data set ---- */
typedef struct fc_sft_dataset fc_sft_dataset;

/* Reads a JSON array of records (or JSON Lines, one record a line) and
 * preprocesses every record up front (FastChat's default, not lazy). Records
 * whose preprocessing fails make the whole load fail (FastChat's assert);
 * mismatch warnings are printed to stderr as FastChat prints them. NULL on
 * error (logged). */
fc_sft_dataset *fc_sft_dataset_load(const char *path, const fc_tokenizer *tok,
                                    const fc_sft_params *p);
void fc_sft_dataset_free(fc_sft_dataset *d);
int fc_sft_dataset_size(const fc_sft_dataset *d);
/* Borrowed until fc_sft_dataset_free. */
const fc_sft_example *fc_sft_dataset_get(const fc_sft_dataset *d, int i);

#endif
