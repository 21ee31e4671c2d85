/*
 * tokenizer.h: text <-> token ids, identical to Hugging Face `tokenizers`.
 *
 * One opaque fc_tokenizer describes the whole pipeline that a tokenizer.json
 * describes, in the same order:
 *
 *   added tokens matched on the raw text (special ones only when asked)
 *   -> normalizer (NFC/NFKC/NFD/NFKD, Prepend, Replace, Lowercase, Strip)
 *   -> added tokens with normalized=true matched on the normalized text
 *   -> pre-tokenizer (Split regex, ByteLevel, Digits, Metaspace, Whitespace...)
 *   -> BPE model (merge ranks, byte-level or SentencePiece-style pieces with
 *      byte fallback <0xNN>, unk/fuse_unk, ignore_merges)
 *   -> post-processor (BOS/EOS from TemplateProcessing or tokenizer_config)
 *
 * and decoding runs the tokenizer.json decoder chain (ByteLevel, Metaspace,
 * Replace, ByteFallback, Fuse, Strip). From a GGUF file the same pipeline is
 * built from tokenizer.ggml.* metadata (load_gguf.c): tokenizer.ggml.pre
 * selects the split regex of byte-level vocabularies, and SentencePiece
 * ("llama") vocabularies are encoded as sentencepiece and llama.cpp encode
 * them, which is Llama-2's own tokenizer.json shape.
 *
 * Not implemented: WordPiece/Unigram/WordLevel models, BPE dropout,
 * continuing_subword_prefix, the Precompiled/BertNormalizer/StripAccents
 * normalizers, BertPreTokenizer/Punctuation/UnicodeScripts/CharDelimiterSplit
 * pre-tokenizers, regex Replace decoders, pair encoding, truncation, padding,
 * offsets; Hugging Face folders with only a SentencePiece tokenizer.model (no
 * tokenizer.json). A file that needs one of them fails to load with a message
 * naming it. Gemma GGUF files (whose vocabulary needs transformers' Gemma
 * fix-ups) load with a warning.
 *
 * Threads: an fc_tokenizer is immutable after loading (its word cache is
 * internally locked), so any number of threads may encode and decode with
 * it at once. A stream (fc_detok) belongs to one thread at a time.
 *
 * Invalid UTF-8 in text to encode is read as U+FFFD for each maximal invalid
 * subpart (what Python's bytes.decode("utf-8", "replace") gives), so the ids
 * are those Hugging Face produces for that decoded string.
 */
#ifndef FC_TOKENIZER_H
#define FC_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../base/fc_base.h"
#include "../model/gguf.h"

typedef struct fc_tokenizer fc_tokenizer;

/* ---- loading ---- */

/* Builds the tokenizer of a GGUF file from its tokenizer.ggml.* metadata.
 * Nothing of g is borrowed: g may be freed afterwards. `name` is used in
 * messages. NULL on error (logged). Free with fc_tokenizer_free. */
fc_tokenizer *fc_tokenizer_from_gguf(const fc_gguf *g, const char *name);

/* Loads a Hugging Face folder: tokenizer.json, plus tokenizer_config.json
 * (add_bos_token/add_eos_token, bos/eos/pad/unk, chat_template) and
 * chat_template.jinja when present. NULL on error (logged). */
fc_tokenizer *fc_tokenizer_from_hf(const char *dir);

/* Opens `path`: a .gguf file or a Hugging Face folder (convenience for tools
 * and tests; the model loader uses the two calls above). */
fc_tokenizer *fc_tokenizer_load(const char *path);

void fc_tokenizer_free(fc_tokenizer *tok); /* NULL is a no-op */

/* ---- vocabulary ---- */

/* Number of ids, added tokens included (max id + 1). */
int32_t fc_tokenizer_n_vocab(const fc_tokenizer *tok);
/* Special ids; -1 when the tokenizer has none. */
int32_t fc_tokenizer_bos(const fc_tokenizer *tok);
int32_t fc_tokenizer_eos(const fc_tokenizer *tok);
int32_t fc_tokenizer_unk(const fc_tokenizer *tok);
int32_t fc_tokenizer_pad(const fc_tokenizer *tok);
/* Whether encode with add_special prepends BOS / appends EOS. */
bool fc_tokenizer_adds_bos(const fc_tokenizer *tok);
bool fc_tokenizer_adds_eos(const fc_tokenizer *tok);
/* True for added tokens marked special (what skip_special_tokens drops:
 * <|im_end|>, <s>, ...). False for ids out of range. */
bool fc_tokenizer_is_special(const fc_tokenizer *tok, int32_t id);
/* End of generation: the EOS id, and the special tokens that close a turn in
 * the chat formats we know (<|eot_id|>, <|eom_id|>, <|im_end|>, <|end|>,
 * <end_of_turn>, <|endoftext|>, <|end_of_text|>, </s>), as llama.cpp marks
 * them. The engine stops on these. */
bool fc_tokenizer_is_eog(const fc_tokenizer *tok, int32_t id);
/* The token's text as the vocabulary spells it ("Ġhello", "▁the", "<0x0A>",
 * "<|im_end|>"), NUL-terminated; NULL when id is out of range. Borrowed: valid
 * until fc_tokenizer_free. */
const char *fc_tokenizer_token_text(const fc_tokenizer *tok, int32_t id);
/* The id whose vocabulary spelling (as above) or added-token content is
 * exactly text[0..len); -1 when none. */
int32_t fc_tokenizer_find(const fc_tokenizer *tok, const char *text, size_t len);
/* The chat template (tokenizer.chat_template, or tokenizer_config.json's
 * chat_template), NUL-terminated, borrowed; NULL when there is none. */
const char *fc_tokenizer_chat_template(const fc_tokenizer *tok);

/* ---- encoding ---- */

/* Encodes text[0..len). add_special: add BOS/EOS as the post-processor says
 * (Hugging Face add_special_tokens=True). parse_special: special tokens written
 * in the text (e.g. "<|im_end|>") become their ids; when false they are
 * tokenized as plain text (split_special_tokens=True) -- added tokens that are
 * not special are matched either way, as Hugging Face does.
 * Returns the number of ids (>= 0) and stores a malloc'd array in *ids_out
 * (caller frees with free(); NULL when the count is 0), or a negative
 * enum fc_status (logged) with *ids_out = NULL. */
int fc_tokenizer_encode(const fc_tokenizer *tok, const char *text, size_t len,
                        bool add_special, bool parse_special, int32_t **ids_out);

/* Same into a caller buffer: writes up to cap ids and returns the total number
 * the text needs (so a return > cap means the buffer was too small and only
 * cap ids were written), or a negative enum fc_status. */
int fc_tokenizer_encode_buf(const fc_tokenizer *tok, const char *text, size_t len,
                            bool add_special, bool parse_special, int32_t *ids, int cap);

/* ---- decoding ---- */

/* Decodes ids to text exactly as Hugging Face tokenizer.decode(ids,
 * skip_special_tokens=skip_special) does: ids out of range are dropped,
 * invalid UTF-8 becomes U+FFFD. Returns a malloc'd NUL-terminated string
 * (caller frees with free()), its byte length in *len_out when not NULL.
 * Never NULL. */
char *fc_tokenizer_decode(const fc_tokenizer *tok, const int32_t *ids, size_t n_ids,
                          bool skip_special, size_t *len_out);

/* The bytes one token stands for in running text, as streaming emits them
 * after the first token: byte-level tokens their raw bytes, "▁" as a space,
 * <0xNN> as the byte NN, special tokens their content. May be an incomplete
 * or invalid UTF-8 sequence. Borrowed until fc_tokenizer_free; *len gets the
 * length. NULL (and *len = 0) when id is out of range. */
const char *fc_tokenizer_token_to_piece(const fc_tokenizer *tok, int32_t id, size_t *len);

/* ---- streaming decode ----
 * Feeds ids one at a time and gets back the text they add. Bytes of a
 * multi-byte character split across tokens are held back until the character
 * is complete, so no U+FFFD is ever emitted for a split character; bytes that
 * cannot become valid UTF-8 are emitted as U+FFFD (one per maximal invalid
 * subpart). For valid UTF-8, the concatenation of every delta plus the flush
 * equals fc_tokenizer_decode of all ids. (Where Hugging Face's ByteFallback
 * decoder turns a whole run of invalid <0xNN> tokens into one U+FFFD per
 * byte, the stream, which has already emitted the valid start, gives one per
 * invalid subpart; and a Strip decoder's `stop` count, which would need the
 * end of the text, is not applied -- no tokenizer we know sets it.) */
typedef struct fc_detok fc_detok;

/* The tokenizer is borrowed and must outlive the stream. */
fc_detok *fc_detok_new(const fc_tokenizer *tok, bool skip_special);
void fc_detok_free(fc_detok *d); /* NULL is a no-op */
/* Starts a new text (as if freshly created). */
void fc_detok_reset(fc_detok *d);
/* Adds one id; returns the newly complete text (possibly empty, never NULL),
 * NUL-terminated, length in *len. Borrowed until the next call on d. */
const char *fc_detok_push(fc_detok *d, int32_t id, size_t *len);
/* Ends the text: returns what was held back (an incomplete character as
 * U+FFFD). Borrowed until the next call on d. */
const char *fc_detok_flush(fc_detok *d, size_t *len);
/* Number of bytes currently held back (0..3). */
size_t fc_detok_pending(const fc_detok *d);

#endif
