/*
 * grammar.h: constrained sampling. A context-free grammar over Unicode text
 * (GBNF-like rules), an incremental parse state advanced by bytes, and the
 * mask of vocabulary tokens that may come next. json_schema.c compiles JSON
 * Schema (and OpenAI's {"type":"json_object"}) into such a grammar, so that
 * every sampled output parses and validates.
 *
 * Grammar text (the subset of llama.cpp's GBNF notation we read; our own
 * implementation):
 *   rule ::= alternative | alternative ...      one rule per "name ::=";
 *                                                 a rule runs to the next "name ::="
 *   "literal"   with escapes \" \\ \n \r \t \/ \xHH \uHHHH \UHHHHHHHH
 *   [a-z0-9_]   a code-point class; [^...] its complement (no surrogates)
 *   .           any code point
 *   name        a rule; ( ... ) a group; # comment to the end of the line
 *   X* X+ X?  X{m} X{m,} X{m,n}   repetition (m, n <= 10000)
 * The start rule is "root". Undefined rules, left recursion (a rule that can
 * reach itself without reading a character) and a root that can never
 * complete are refused with a message.
 *
 * How it runs (a nondeterministic pushdown automaton, the classic
 * "set of stacks" recognizer):
 *   - Rules are flattened into one element array: each alternative is a run
 *     of CHAR (a code-point class) and RULE (a reference) elements closed by
 *     END. A stack is a list of element indices: the top is the CHAR element
 *     to read next, the others are return addresses. A state is a set of
 *     distinct stacks plus a flag "the text so far is a complete sentence".
 *   - Reading a byte keeps the stacks whose top accepts it and expands the
 *     next element (RULE: push each alternative; END: pop) until every top
 *     is a CHAR again. A RULE that is the last element of its alternative
 *     replaces its frame (tail call), so X* loops never grow the stack.
 *     Groups under * ? {m,n} are inlined into the loop rule for the same
 *     reason.
 *   - Multi-byte UTF-8 is matched byte by byte: a partly read character is
 *     kept in the stack (the code-point prefix), and each prefix byte is
 *     checked against the class (some code point of the class starts so),
 *     so invalid UTF-8, overlong forms and surrogates are never accepted.
 *   - Bounds: a stack holds at most FC_GRAMMAR_MAX_DEPTH frames and a state
 *     at most FC_GRAMMAR_MAX_STACKS stacks; paths beyond are dropped (a
 *     nesting that deep is refused, the output stays valid).
 *
 * The token mask (fc_grammar_matcher_mask). Tokens are sorted by their bytes
 * once (fc_grammar_vocab), with the common-prefix length to the previous
 * token, so a walk over the sorted list advances each shared prefix once and
 * skips every token under a dead prefix (in one jump when the first or
 * second byte dies). On top of that a cache per grammar
 * position (the top CHAR element of a stack; the idea of XGrammar's
 * "adaptive token mask cache", our implementation): walking all tokens once
 * from the one-frame stack [P] sorts them into accepted (read entirely
 * inside P's frame: accepted whatever lies below), rejected (die inside the
 * frame) and uncertain (they leave the frame with bytes left over). At run
 * time a stack's mask is the cached accepted set plus a walk over its
 * uncertain tokens with the real stack. Stacks in the middle of a UTF-8
 * character, or deeper than FC_GRAMMAR_MAX_DEPTH/2, are walked in full.
 * End-of-generation tokens (fc_tokenizer_is_eog) are allowed exactly where
 * the state is complete; other special tokens never (they are not text).
 *
 * Stack sets met by the walks are interned into a lazy DFA (per matcher):
 * each stack set stepped from gets a 256-entry successor table, so a cache
 * fill mostly follows table entries. The DFA is flushed between masks when
 * it passes 16384 states or 16 MiB of records.
 *
 * Cost (dev/bench_grammar.c, default model, 49,152 tokens): a mask from warm
 * caches takes tens of microseconds; a cache fill at a position inside a
 * string (nearly every token accepted) one or two milliseconds, once per
 * matcher. Strings with maxLength have one position per remaining count, so
 * they fill once per count. A server should keep a matcher per schema (an
 * LRU keyed by the grammar text) so that later requests start warm.
 *
 * Use in a sampler, per sequence: state = fc_grammar_state_new(g); before
 * each token fc_grammar_matcher_mask, fc_grammar_mask_apply to the logits,
 * sample, fc_grammar_matcher_accept. Near max_tokens, keep to tokens whose
 * state lowers fc_grammar_state_distance so the output still closes
 * (tests/unit/test_grammar_generate.c does all of this).
 *
 * Threads: an fc_grammar and an fc_grammar_vocab are immutable and may be
 * shared. An fc_grammar_matcher (which fills its cache lazily) and an
 * fc_grammar_state belong to one thread at a time.
 *
 * Not implemented: lookahead, negation, intersection; grammars over token
 * ids (special tokens inside the grammar).
 */
#ifndef FC_GRAMMAR_H
#define FC_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FC_GRAMMAR_MAX_DEPTH 1024
#define FC_GRAMMAR_MAX_STACKS 4096

typedef struct fc_grammar fc_grammar;
typedef struct fc_grammar_state fc_grammar_state;
typedef struct fc_grammar_vocab fc_grammar_vocab;
typedef struct fc_grammar_matcher fc_grammar_matcher;
struct fc_tokenizer;

/* ---- grammars ---- */

/* Compiles grammar text (above); the start rule is `root`. NULL on error,
 * with a one-line message in err[0..err_cap) (when err is not NULL). */
fc_grammar *fc_grammar_parse(const char *text, size_t len, char *err, size_t err_cap);
void fc_grammar_free(fc_grammar *g); /* NULL is a no-op */

/* ---- JSON Schema (json_schema.c) ---- */

/* Translates a JSON Schema (text) into grammar text whose sentences are
 * exactly JSON texts that the schema accepts (within the subset and
 * choices documented in json_schema.c). Returns a malloc'd NUL-terminated
 * string (caller frees with free()), or NULL with a one-line message in err:
 * "unsupported: ...", "unsatisfiable: ..." or "invalid schema: ...". */
char *fc_json_schema_to_grammar(const char *schema, size_t len, char *err, size_t err_cap);
/* The same as rules to combine into a larger grammar (a tool call wraps
 * each tool's arguments): "<prefix>root ::= ..." and helper rules, every
 * name starting with prefix ([A-Za-z0-9_-]*), without the shared base rules
 * (ws, string, number, value, ...: fc_json_base_rules, to be added once).
 * Caller frees with free(); NULL with a message in err. */
char *fc_json_schema_to_rules(const char *schema, size_t len, const char *prefix, char *err, size_t err_cap);
/* The base rules every schema's rules refer to (static text). */
const char *fc_json_base_rules(void);
/* The grammar of any JSON object (OpenAI's {"type":"json_object"}). Never
 * NULL; caller frees with free(). */
char *fc_json_object_grammar(void);
/* Both steps: schema text to compiled grammar. NULL with a message in err. */
fc_grammar *fc_grammar_from_json_schema(const char *schema, size_t len, char *err, size_t err_cap);

/* ---- parse states ---- */

/* The state before any text. The grammar is borrowed and must outlive the
 * state. Free with fc_grammar_state_free. Never NULL. */
fc_grammar_state *fc_grammar_state_new(const fc_grammar *g);
fc_grammar_state *fc_grammar_state_clone(const fc_grammar_state *s);
/* dst becomes a copy of src (same grammar); reuses dst's memory. */
void fc_grammar_state_copy(fc_grammar_state *dst, const fc_grammar_state *src);
void fc_grammar_state_free(fc_grammar_state *s); /* NULL is a no-op */
/* Reads bytes[0..n). True when the text so far is still a prefix of some
 * sentence; then s has advanced. False leaves s unchanged. */
bool fc_grammar_state_advance(fc_grammar_state *s, const void *bytes, size_t n);
/* True when the text read so far is a complete sentence (EOS allowed). */
bool fc_grammar_state_can_end(const fc_grammar_state *s);
/* The fewest bytes that would make the text a complete sentence (0 when it
 * is one): a generator near its token limit keeps to tokens that lower it,
 * so the output still closes (every byte is a token in byte-level
 * vocabularies). SIZE_MAX only for a state that can never complete. */
size_t fc_grammar_state_distance(const fc_grammar_state *s);
/* True when nothing more may be read (complete and no continuation). */
bool fc_grammar_state_is_final(const fc_grammar_state *s);

/* ---- vocabulary ---- */

/* The text of every token (fc_tokenizer_token_to_piece), sorted. Special
 * tokens are left out; end-of-generation ones are remembered for the mask.
 * NULL on error (logged). Free with fc_grammar_vocab_free. */
fc_grammar_vocab *fc_grammar_vocab_new(const struct fc_tokenizer *tok);
/* The same from explicit pieces (tests, fuzzing): token i is pieces[i]
 * [0..lens[i]); a piece of length 0 is never allowed; eog_ids[0..n_eog) are
 * the end-of-generation tokens. Nothing is borrowed. */
fc_grammar_vocab *fc_grammar_vocab_from_pieces(const char *const *pieces, const size_t *lens, int32_t n_vocab,
                                               const int32_t *eog_ids, int n_eog);
void fc_grammar_vocab_free(fc_grammar_vocab *v); /* NULL is a no-op */
int32_t fc_grammar_vocab_size(const fc_grammar_vocab *v);
/* The bytes of token id (borrowed), NULL for special and out-of-range ids. */
const char *fc_grammar_vocab_piece(const fc_grammar_vocab *v, int32_t id, size_t *len);
bool fc_grammar_vocab_is_eog(const fc_grammar_vocab *v, int32_t id);

/* ---- token masks ---- */

/* The per-position cache for one grammar and one vocabulary (both borrowed;
 * they must outlive it). Never NULL. One thread at a time. */
fc_grammar_matcher *fc_grammar_matcher_new(const fc_grammar *g, const fc_grammar_vocab *v);
void fc_grammar_matcher_free(fc_grammar_matcher *m); /* NULL is a no-op */
/* Number of mask words: (n_vocab + 63) / 64. */
size_t fc_grammar_mask_words(const fc_grammar_vocab *v);
/* Fills mask[0..fc_grammar_mask_words) with bit t set (word t/64, bit t%64)
 * exactly when token t may come next: its bytes advance s
 * (fc_grammar_state_advance would succeed), or it ends generation and
 * fc_grammar_state_can_end(s). */
void fc_grammar_matcher_mask(fc_grammar_matcher *m, const fc_grammar_state *s, uint64_t *mask);
/* Advances s by token id: its bytes, or for an end-of-generation token
 * nothing (true when s can end). False (s unchanged) when not allowed. */
bool fc_grammar_matcher_accept(fc_grammar_matcher *m, fc_grammar_state *s, int32_t id);
/* Sets logits[t] = -INFINITY for every token t < n_logits not in mask, and
 * for every t at or past the vocabulary's size (a model with more rows than
 * its tokenizer has ids). */
void fc_grammar_mask_apply(const fc_grammar_vocab *v, const uint64_t *mask, float *logits, int32_t n_logits);
/* Cache statistics: positions computed, and their total uncertain tokens. */
void fc_grammar_matcher_stats(const fc_grammar_matcher *m, size_t *n_positions, size_t *n_uncertain);
/* Approximate heap bytes held by the matcher's caches (position masks and
 * the lazy DFA, which is flushed past 100k states or 16 MiB). */
size_t fc_grammar_matcher_bytes(const fc_grammar_matcher *m);

#endif
