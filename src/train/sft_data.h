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
 * Per-template masking (fc_sft_preprocess_template, `--masking template`):
 * FastChat's fastchat/train/train_with_template.py, its `preprocess` as its
 * LazySupervisedDataset calls it (one record at a time, the record's
 * "system" key set as the system message when not empty; the non-lazy
 * dataset reuses one conversation object, so there a system message leaks
 * into the records after it: not reproduced). Rendered with any template
 * whose separator style train_with_template.py knows (ADD_COLON_SINGLE,
 * ADD_COLON_TWO, ADD_COLON_SPACE_SINGLE, LLAMA2, CHATML); the text is split
 * into turns on the user-turn separator (sep2, or sep + "\n" for ChatML),
 * every turn but the first gets it back in front, each turn's token count
 * (without special tokens) advances, and the part up to and including the
 * first assistant separator ("ASSISTANT: ", "<|im_start|>assistant\n") is
 * masked. The count starts at 1 when the first id is the tokenizer's BOS
 * (and it has an EOS), else 0; a count that misses the non-pad total masks
 * the example ("WARNING: tokenization mismatch: X vs. Y. (ignored)"). Quirk
 * kept: with a ChatML template and a tokenizer whose BOS is <|im_start|>
 * (SmolLM2's), the first id is that BOS, the count starts at 1 and then
 * counts the same token again, so untruncated examples are all masked, as
 * FastChat masks them. With vicuna_v1.1 the SmolLM2 tokenizer keeps labels.
 * Not done here: packing.
 * Tests: tests/unit/test_train_data.c against fschat's train.py preprocess
 * (tools/golden/make_train_golden.py labels) and train_with_template.py's
 * (tools/golden/make_train_template_golden.py).
 */
#ifndef FC_SFT_DATA_H
#define FC_SFT_DATA_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"
#include "tokenizer/tokenizer.h"

#define FC_IGNORE_INDEX (-100)

struct cJSON;

enum fc_sft_masking {
    FC_SFT_MASK_FSCHAT = 0,  /* train.py's preprocess (vicuna only) */
    FC_SFT_MASK_TEMPLATE,    /* train_with_template.py's, any known template */
};

typedef struct fc_sft_params {
    int model_max_length;   /* T: ids are truncated and padded to it */
    int32_t pad_id;         /* train.py sets pad_token = unk_token */
    bool legacy;            /* the tokenizer's `legacy` attribute (fschat masking) */
    enum fc_sft_masking masking;  /* for fc_sft_dataset_load */
    const char *conv_template;    /* template masking: a template name (NULL: vicuna_v1.1) */
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

/* train_with_template.py's preprocess of one record: conversations as above,
 * system the record's "system" (NULL or "" keeps the template's), template
 * p->conv_template. mismatch_turns is -1 (its warning has no turn count).
 * FC_ERR_UNSUPPORTED for an unknown template or a separator style
 * train_with_template.py does not handle; else as fc_sft_preprocess. */
enum fc_status fc_sft_preprocess_template(const fc_tokenizer *tok, const struct cJSON *conversations,
                                          const char *system, const fc_sft_params *p,
                                          fc_sft_example *out);

void fc_sft_example_free(fc_sft_example *ex); /* NULL and zeroed are no-ops */

/* ---- a data set ---- */
typedef struct fc_sft_dataset fc_sft_dataset;

/* Reads a JSON array of records (or JSON Lines, one record a line) and
 * preprocesses every record (p->masking picks the function) up front (FastChat's default, not lazy). Records
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
