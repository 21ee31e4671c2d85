/*
 * wordpiece.h: the BERT tokenizer of a Hugging Face tokenizer.json whose
 * model is "WordPiece" (bert-base-uncased, all-MiniLM-L6-v2, ...), as the
 * `tokenizers` package runs it:
 *   1. added tokens ([CLS], [SEP], [MASK], ... with normalized = false) are
 *      matched in the raw text first, longest first, and kept as their ids;
 *   2. BertNormalizer on the rest: clean_text (NUL, U+FFFD and other
 *      control/format/unassigned characters dropped, whitespace -> ' '),
 *      handle_chinese_chars (CJK ideographs get a space on each side),
 *      strip_accents (NFD, then nonspacing marks dropped; null follows
 *      lowercase, as tokenizers does), lowercase (simple case mapping);
 *   3. BertPreTokenizer: split on whitespace, and every punctuation
 *      character (ASCII punctuation or a Unicode P* category) is a word;
 *   4. WordPiece: greedy longest match from the start of each word, the
 *      rest of the word continued with the prefix ("##"); a word with no
 *      match, or longer than max_input_chars_per_word characters, is one
 *      [UNK];
 *   5. the template [CLS] A [SEP] (the ids of the post_processor's special
 *      tokens).
 * Not implemented: pair inputs (sentence B, token type 1), offsets,
 * decoding (embeddings need none), other normalizer/pre-tokenizer types
 * (those files are refused with an error naming the type).
 * The immutable object may be shared by threads.
 */
#ifndef FC_WORDPIECE_H
#define FC_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef struct fc_wordpiece fc_wordpiece;

/* Reads path (a tokenizer.json, or a folder holding one). NULL on error,
 * logged as "path: what is wrong". Caller frees with fc_wordpiece_free. */
fc_wordpiece *fc_wordpiece_load(const char *path);
/* The same from json[0..len); name is used in errors. */
fc_wordpiece *fc_wordpiece_parse(const char *json, size_t len, const char *name);
void fc_wordpiece_free(fc_wordpiece *wp);
/* The vocabulary of a GGUF "bert" file (tokenizer.ggml.model "bert", as
 * llama.cpp's converter writes it; wordpiece_gguf.c says how it maps back).
 * fc_wordpiece_load takes such a .gguf path too. NULL on error (logged). */
struct fc_gguf;
fc_wordpiece *fc_wordpiece_from_gguf(const struct fc_gguf *g, const char *name);

int fc_wordpiece_n_vocab(const fc_wordpiece *wp);
/* Token text of id, or NULL outside the vocabulary (borrowed). */
const char *fc_wordpiece_token(const fc_wordpiece *wp, int32_t id);

/* Tokenizes text[0..len) (UTF-8; invalid bytes count as U+FFFD, which
 * clean_text drops). With add_special, the result is [CLS] ... [SEP]. When
 * max_len > 0 the result holds at most max_len ids: the text's ids are cut
 * at max_len (minus 2 with add_special) before the template is applied, as
 * transformers' truncation=True, max_length=max_len does. Returns the count
 * (>= 0) and *ids (caller frees; set even for 0), or -1 on allocation
 * failure. */
int fc_wordpiece_encode(const fc_wordpiece *wp, const char *text, size_t len, bool add_special, int max_len,
                        int32_t **ids);

#endif
