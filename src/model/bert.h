/*
 * bert.h: BERT-family sentence encoders (BertModel as sentence-transformers
 * runs it: all-MiniLM-L6-v2, bge-*, e5-*, ...) from a Hugging Face
 * safetensors folder.
 *
 * The model: word + absolute position + token type (0) embeddings, then
 * LayerNorm (weight and bias, config layer_norm_eps); L post-norm blocks of
 * bidirectional multi-head attention (no causal mask; each sequence sees
 * only its own tokens, which is what the attention mask of a padded batch
 * does) and a GELU (exact erf, "gelu") feed-forward, each added to its input
 * and LayerNorm-ed. Then the sentence-transformers modules of the folder:
 *   1_Pooling/config.json   pooling_mode_mean_tokens (over the sequence's
 *                           tokens, [CLS] and [SEP] included, as the
 *                           attention mask says), _cls_token, _max_tokens,
 *                           _mean_sqrt_len_tokens; any other mode set
 *                           (weightedmean, lasttoken) is refused at load.
 *                           Without the file: mean (sentence-transformers'
 *                           default for a plain transformers folder).
 *   modules.json            a sentence_transformers.models.Normalize module
 *                           -> the result is L2-normalized; any module type
 *                           other than Transformer / Pooling / Normalize
 *                           (Dense, ...) is refused at load.
 *   sentence_bert_config.json  max_seq_length (else the config's
 *                           max_position_embeddings): the longest input, in
 *                           tokens with [CLS] and [SEP]; callers truncate to
 *                           it as sentence-transformers does.
 * The tokenizer is tokenizer/wordpiece.h (the caller's).
 *
 * Weights stay in the safetensors mapping (F32, F16 or BF16 matrices,
 * multiplied by tensor/ops.h fc_matmul_fast); vectors are used as f32
 * (converted at load when stored 16-bit). A "bert." prefix on the names
 * (BertFor* checkpoints) is accepted.
 * A GGUF "bert" file (llama.cpp's converter: bert.* keys, token_embd /
 * position_embd / token_types / token_embd_norm, blk.N.attn_q ...
 * layer_output_norm tensors, a tokenizer.ggml "bert" vocabulary, which
 * tokenizer/wordpiece.h reads too) loads the same way: pooling from
 * bert.pooling_type (1 mean, 2 cls; others refused), always L2-normalized
 * (llama.cpp's default; the file does not record sentence-transformers'
 * Normalize module), inputs up to bert.context_length tokens (the file does
 * not record max_seq_length either).
 * Not implemented: relative position embeddings,
 * token type ids other than 0 (pair inputs), other activations.
 *
 * Threads: fc_bert_embed runs on the encoder's own thread pool and holds a
 * lock, so calls from several threads run one after another.
 */
#ifndef FC_BERT_H
#define FC_BERT_H

#include <stdbool.h>
#include <stdint.h>
#include "base/fc_base.h"

typedef struct fc_bert fc_bert;

/* True when path is a folder whose config.json says model_type "bert" (or
 * architectures[0] starts with "Bert"), or a GGUF file whose
 * general.architecture is "bert". Cheap; logs nothing. */
bool fc_bert_is_encoder(const char *path);

/* Loads the folder (see above) with a pool of n_threads (<= 0: all CPUs).
 * NULL on error, logged as one line "path: what is wrong" (missing or
 * misshapen tensor, unsupported pooling, activation or module). */
fc_bert *fc_bert_load(const char *path, int n_threads);
void fc_bert_free(fc_bert *b);

int fc_bert_dim(const fc_bert *b);        /* C: the embedding width */
int fc_bert_max_seq(const fc_bert *b);    /* max_seq_length (tokens, specials included) */
int fc_bert_n_vocab(const fc_bert *b);
bool fc_bert_normalizes(const fc_bert *b);
const char *fc_bert_pooling(const fc_bert *b); /* "mean", "cls", "max", "mean_sqrt_len" */

/* Embeds n sequences: ids[i][0..lens[i]) (each 1..max_position_embeddings
 * ids of the vocabulary) into out[i*C .. i*C+C), pooled and normalized as
 * the folder says. All sequences go through the matrices together. FC_OK,
 * FC_ERR_ARG (bad ids or lengths), FC_ERR_NOMEM. Any thread. */
enum fc_status fc_bert_embed(fc_bert *b, const int32_t *const *ids, const int *lens, int n, float *out);

#endif
