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
 * The Unigram model (T5, Flan-T5, FastChat-T5: unigram.c) is read from a
 * tokenizer.json (with its Precompiled normalizer) or from a SentencePiece
 * spiece.model / tokenizer.model, encoded as `tokenizers` and `sentencepiece`
 * respectively do (no byte fallback; not exported to GGUF or tokenizer.json).
 *
 * Not implemented: WordPiece/WordLevel models, BPE dropout,
 * continuing_subword_prefix, the BertNormalizer/StripAccents
 * normalizers, BertPreTokenizer/Punctuation/UnicodeScripts/CharDelimiterSplit
 * pre-tokenizers, regex Replace decoders, pair encoding, truncation, padding,
 * offsets. A file that
 * needs one of them fails to load with a message naming it. Gemma GGUF files (whose vocabulary needs transformers' Gemma
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
#include "base/fc_base.h"
#include "format/gguf.h"

typedef struct fc_tokenizer fc_tokenizer;

/* ---- loading ---- */

/* Builds the tokenizer of a GGUF file from its tokenizer.ggml.* metadata
 * (model "gpt2", "llama", or "t5": a Unigram model, llama.cpp's T5 files).
 * Nothing of g is borrowed: g may be freed afterwards. `name` is used in
 * messages. NULL on error (logged). Free with fc_tokenizer_free. */
fc_tokenizer *fc_tokenizer_from_gguf(const fc_gguf *g, const char *name);

/* Loads a Hugging Face folder: tokenizer.json, plus tokenizer_config.json
 * (add_bos_token/add_eos_token, bos/eos/pad/unk, chat_template) and
 * chat_template.jinja when present. A folder without tokenizer.json but with
 * a SentencePiece tokenizer.model (Llama-2, Vicuna) or spiece.model (T5) is
 * read from that, as fc_tokenizer_from_spm does, with tokenizer_config.json's
 * settings and added tokens (added_tokens.json: FastChat-T5's "\n", " ", ...). NULL on error (logged). */
fc_tokenizer *fc_tokenizer_from_hf(const char *dir);

/* The same from memory: the text of a tokenizer.json and, when config_json is
 * not NULL, of a tokenizer_config.json (no chat_template.jinja). `name` is
 * used in messages. Nothing is borrowed. NULL on error (logged). */
fc_tokenizer *fc_tokenizer_from_hf_json(const char *json, size_t len, const char *config_json,
                                        size_t config_len, const char *name);

/* Builds the tokenizer of a SentencePiece model file (tokenizer.model,
 * a serialized ModelProto) held in data[0..size): encodes as sentencepiece
 * does. BPE models as a GGUF "llama" vocabulary does (load_gguf.c), BOS
 * added, EOS not (LlamaTokenizer's defaults); Unigram models (T5's
 * spiece.model) through unigram.c with its charsmap normalization, EOS
 * added, no BOS (T5Tokenizer's defaults). Anything malformed is refused. Nothing is borrowed. NULL on error (logged). */
fc_tokenizer *fc_tokenizer_from_spm(const void *data, size_t size, const char *name);

/* Opens `path`: a .gguf file, a Hugging Face folder or a Hub repo id in the
 * Hugging Face cache (format/hub.h) (convenience for tools
 * and tests; the model loader uses the two calls above). */
fc_tokenizer *fc_tokenizer_load(const char *path);

void fc_tokenizer_free(fc_tokenizer *tok); /* NULL is a no-op */

/* ---- writing as GGUF ---- */

/* Writes tok as the tokenizer.ggml.* metadata llama.cpp reads (what its
 * convert_hf_to_gguf.py writes for the same tokenizer):
 *   model        "gpt2" (byte-level BPE) or "llama" (SentencePiece-style BPE)
 *   pre          gpt2: the llama.cpp name of the split: "gpt-2" (ByteLevel's
 *                own regex), "smollm" (Digits then GPT-2's), "llama-bpe"
 *                (Llama-3's regex), "qwen2" (NFC, Qwen2's regex); any other
 *                split is written as "gpt-2" with a warning. llama: "default"
 *   tokens, token_type (1 normal, 2 unknown, 3 control = special added token,
 *                4 user-defined = other added token, 5 unused = padding,
 *                6 byte = <0xNN>), merges ("a b"; llama: unless they came
 *                from the scores), scores (llama: the model's, else
 *                -rank of the merge that makes each token), bos/eos/unknown/
 *                padding ids, add_bos_token/add_eos_token, add_space_prefix and
 *                remove_extra_whitespaces (llama), tokenizer.chat_template.
 * What GGUF cannot say is lost, with a warning where it changes encoding:
 * added-token flags (lstrip, rstrip, single_word, normalized), a ByteLevel
 * add_prefix_space, post-processors other than BOS/EOS. A Metaspace
 * pre-tokenizer (prepend_scheme "first") is written as llama.cpp reads every
 * SentencePiece vocabulary, which prepends "▁" after special tokens too and to
 * text that already starts with a space, as sentencepiece does.
 * Writes keys only (setting a key twice replaces it). FC_OK, or
 * FC_ERR_UNSUPPORTED (logged) when the tokenizer is neither byte-level nor
 * SentencePiece-style (then nothing is written). */
enum fc_status fc_tokenizer_to_gguf(const fc_tokenizer *tok, fc_gguf_writer *w);
/* The same with at least n_vocab tokens (a model whose embedding has more rows
 * than the tokenizer has ids): ids past the tokenizer's are written as
 * "[PAD<id>]" of type unused, as llama.cpp's converter pads. */
enum fc_status fc_tokenizer_to_gguf_padded(const fc_tokenizer *tok, int32_t n_vocab, fc_gguf_writer *w);
/* The tokenizer as a Hugging Face tokenizer.json (export_hf.c): a malloc'd
 * text of *len bytes, or NULL (logged) when a step of its pipeline has no
 * tokenizer.json form. */
char *fc_tokenizer_to_hf_json(const fc_tokenizer *tok, size_t *len);

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
