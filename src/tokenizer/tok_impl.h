/*
 * tok_impl.h: the inside of fc_tokenizer, shared by the files of
 * src/tokenizer/ and by nothing else.
 *
 *   vocab.c     string/pair hash maps, UTF-8 and Unicode helpers, the GPT-2
 *               byte alphabet, building the vocabulary tables
 *   pretok.c    normalizers, added-token matching, pre-tokenizers (PCRE2)
 *   bpe.c       the BPE model and its word cache
 *   decode.c    the decoder chain, token pieces, streaming decode
 *   load_hf.c   tokenizer.json + tokenizer_config.json
 *   load_gguf.c tokenizer.ggml.* metadata
 *   spm_model.c SentencePiece tokenizer.model (protobuf), via load_gguf.c
 *   unigram.c   the Unigram model, the Precompiled and sentencepiece normalizers
 *   export_gguf.c fc_tokenizer -> tokenizer.ggml.* metadata
 *   tokenizer.c the encode pipeline and the accessors of tokenizer.h
 */
#ifndef FC_TOK_IMPL_H
#define FC_TOK_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>

#include "base/str.h"
#include "base/utf8.h"
#include "tokenizer.h"

/* ---- growable buffers ---- */

typedef struct fc_tok_ivec { int32_t *v; size_t n, cap; } fc_tok_ivec;
void fc_tok_ivec_push(fc_tok_ivec *v, int32_t x);
void fc_tok_ivec_free(fc_tok_ivec *v);

/* ---- UTF-8 and Unicode ---- */

bool fc_tok_is_whitespace(uint32_t cp); /* Rust char::is_whitespace (White_Space) */
bool fc_tok_is_numeric(uint32_t cp);    /* Rust char::is_numeric (Nd, Nl, No) */
bool fc_tok_is_alnum(uint32_t cp);      /* Rust char::is_alphanumeric (approx. L*, N*, Mn/Mc of Alphabetic) */

/* GPT-2's byte <-> printable code point alphabet (ByteLevel). */
uint32_t fc_tok_byte_to_cp(uint8_t b);
int fc_tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the alphabet */

/* ---- hash maps ---- */

uint64_t fc_tok_hash(const void *p, size_t n);

/* Strings -> id. Keys are not stored: slot i holds an id whose key is read
 * from the owner's (keys, lens) arrays, so one map can index token texts and
 * another the BPE model keys without copying either. */
typedef struct fc_tok_strmap {
    int32_t *slot;       /* -1 empty */
    uint32_t mask;
    const char *const *keys;
    const uint32_t *lens;
} fc_tok_strmap;
void fc_tok_strmap_init(fc_tok_strmap *m, size_t n_expected, const char *const *keys, const uint32_t *lens);
/* Inserts id (its key is keys[id]); a later insert of an equal key replaces
 * the earlier id. */
void fc_tok_strmap_put(fc_tok_strmap *m, int32_t id);
int32_t fc_tok_strmap_get(const fc_tok_strmap *m, const char *s, size_t n);
void fc_tok_strmap_free(fc_tok_strmap *m);

/* (left id, right id) -> (rank, merged id). */
typedef struct fc_tok_merge { uint64_t key; int32_t rank, id; } fc_tok_merge;
typedef struct fc_tok_mergemap { fc_tok_merge *slot; uint32_t mask, n; } fc_tok_mergemap;
void fc_tok_mergemap_init(fc_tok_mergemap *m, size_t n_expected);
void fc_tok_mergemap_put(fc_tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
static inline const fc_tok_merge *fc_tok_mergemap_get(const fc_tok_mergemap *m, int32_t a, int32_t b)
{
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        const fc_tok_merge *e = &m->slot[i];
        if (e->rank < 0) return NULL;
        if (e->key == key) return e;
    }
}
void fc_tok_mergemap_free(fc_tok_mergemap *m);

/* ---- pipeline description ---- */

enum fc_tok_norm_kind {
    TK_NORM_NFC, TK_NORM_NFD, TK_NORM_NFKC, TK_NORM_NFKD, TK_NORM_LOWER,
    TK_NORM_PREPEND, TK_NORM_REPLACE, TK_NORM_STRIP,
    TK_NORM_PRECOMPILED,        /* a: the precompiled_charsmap bytes (unigram.c) */
    TK_NORM_SPM,                /* sentencepiece's whole normalizer: a = charsmap or NULL,
                                 * left = add_dummy_prefix, right = remove_extra_whitespaces */
};
typedef struct fc_tok_norm {
    enum fc_tok_norm_kind kind;
    char *a; size_t a_len;      /* Prepend text; Replace literal pattern */
    char *b; size_t b_len;      /* Replace content */
    pcre2_code *re;             /* Replace regex pattern (NULL: literal a) */
    bool left, right;           /* Strip */
    bool sp_ws;                 /* one of the Replace steps that stand for sentencepiece's
                                 * remove_extra_whitespaces (load_gguf.c) */
} fc_tok_norm;

enum fc_tok_split_behavior {
    TK_REMOVED, TK_ISOLATED, TK_MERGED_PREV, TK_MERGED_NEXT, TK_CONTIGUOUS,
};
enum fc_tok_pre_kind {
    TK_PRE_SPLIT,       /* regex or literal (re), behavior, invert */
    TK_PRE_DIGITS,      /* individual: Isolated, else Contiguous */
    TK_PRE_WSPLIT,      /* WhitespaceSplit: split on whitespace, removed */
    TK_PRE_BYTELEVEL,   /* add_prefix_space, use_regex (GPT-2 regex in re) */
    TK_PRE_METASPACE,   /* replacement, prepend scheme, split */
};
enum fc_tok_prepend { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
typedef struct fc_tok_pre {
    enum fc_tok_pre_kind kind;
    pcre2_code *re;
    char *pat;                  /* Split by regex: the pattern as the file spells it (export) */
    enum fc_tok_split_behavior behavior;
    bool invert;
    bool individual;            /* Digits */
    bool add_prefix_space;      /* ByteLevel */
    uint32_t repl;              /* Metaspace replacement code point */
    enum fc_tok_prepend prepend;    /* Metaspace */
    bool split;                 /* Metaspace */
} fc_tok_pre;

enum fc_tok_dec_kind {
    TK_DEC_BYTELEVEL, TK_DEC_REPLACE, TK_DEC_BYTEFALLBACK, TK_DEC_FUSE, TK_DEC_STRIP,
    TK_DEC_METASPACE,
};
typedef struct fc_tok_dec {
    enum fc_tok_dec_kind kind;
    char *a; size_t a_len;      /* Replace pattern (literal) */
    char *b; size_t b_len;      /* Replace content */
    uint32_t cp;                /* Strip content / Metaspace replacement */
    int start, stop;            /* Strip */
    enum fc_tok_prepend prepend;    /* Metaspace */
} fc_tok_dec;

typedef struct fc_tok_added {
    int32_t id;
    char *content; size_t len;  /* as matched: normalized when normalized=true */
    bool special, normalized, lstrip, rstrip, single_word;
} fc_tok_added;

/* Byte trie over added-token contents (leftmost-longest matching). */
typedef struct fc_tok_trie_node { int32_t child, sibling, added; uint8_t byte; } fc_tok_trie_node;
typedef struct fc_tok_trie {
    fc_tok_trie_node *node; size_t n, cap;
    uint8_t first[32];          /* bitmap of first bytes */
} fc_tok_trie;

/* Word cache: piece bytes -> ids, direct-mapped, locked per shard. */
#define TK_CACHE_KEY 30
#define TK_CACHE_IDS 14
#define TK_CACHE_SLOTS 16384
#define TK_CACHE_SHARDS 64
typedef struct fc_tok_cache_entry {
    uint32_t hash;
    uint8_t key_len, n_ids;     /* key_len 0: empty */
    char key[TK_CACHE_KEY];
    int32_t ids[TK_CACHE_IDS];
} fc_tok_cache_entry;
typedef struct fc_tok_cache {
    fc_tok_cache_entry *e;          /* TK_CACHE_SLOTS */
    pthread_mutex_t mu[TK_CACHE_SHARDS];
} fc_tok_cache;

enum { TK_F_ADDED = 1, TK_F_SPECIAL = 2, TK_F_MODEL = 4 /* in the BPE model's vocabulary */, TK_F_EOG = 8 };

struct fc_tokenizer {
    char *name;
    int32_t n_vocab;

    /* per id, all strings in `strs` (offsets fixed up into pointers at the end
     * of loading): text as spelled in the vocabulary; key the BPE model
     * matches (raw bytes for byte-level models, else the text); piece the
     * bytes a token adds to running text (token_to_piece). Holes: NULL. */
    char **text; uint32_t *text_len;
    char **key; uint32_t *key_len;
    char **piece; uint32_t *piece_len;
    uint8_t *flags;
    fc_str strs;                /* texts and keys */
    fc_str piece_strs;          /* pieces */
    bool texts_indexed;

    fc_tok_strmap by_text;          /* find */
    fc_tok_strmap by_key;           /* BPE vocabulary (non-added ids, and added ids that the model vocab holds) */
    fc_tok_mergemap merges;

    /* model */
    bool byte_level;            /* symbols are bytes (a ByteLevel pre-tokenizer is present) */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t model_unk;          /* BPE unk_token id, -1 none */
    int32_t byte_tok[256];      /* byte-level: id of each byte's symbol; byte_fallback: <0xNN> */

    /* pipeline */
    fc_tok_norm *norm; int n_norm;
    fc_tok_pre *pre; int n_pre;
    fc_tok_dec *dec; int n_dec;
    bool has_decoder;           /* false: tokens joined with " " */
    fc_tok_added *added; int n_added;
    fc_tok_trie trie_raw, trie_norm;/* added tokens matched before / after normalization */
    int32_t *prefix; int n_prefix;  /* post-processor, single sequence */
    int32_t *suffix; int n_suffix;

    int32_t bos, eos, unk, pad;
    char *chat_template;
    float *scores;              /* per id: SentencePiece scores when the source has them
                                 * (GGUF "llama", tokenizer.model), else NULL (export) */
    bool merges_from_scores;    /* the merges were made from the scores (export then
                                 * writes the scores alone) */

    fc_tok_cache cache;
    struct fc_tok_unigram *uni;     /* the Unigram model (unigram.c); NULL: BPE */
};

/* ---- vocab.c: building ---- */
/* Allocates the per-id arrays for n ids. */
void fc_tok_vocab_alloc(fc_tokenizer *t, int32_t n);
/* Sets the text of id (copied). */
void fc_tok_vocab_set_text(fc_tokenizer *t, int32_t id, const char *s, size_t n);
/* The text of id before fc_tok_vocab_index_texts (valid until the next text is
 * added). */
const char *fc_tok_vocab_text_early(const fc_tokenizer *t, int32_t id);
/* After all texts are set (vocabulary and added tokens): builds the text
 * index, so merges and special tokens can be looked up. */
void fc_tok_vocab_index_texts(fc_tokenizer *t);
/* After texts, added tokens and the pipeline are set: computes keys and
 * pieces, builds the maps and the byte tables. */
enum fc_status fc_tok_vocab_finish(fc_tokenizer *t);
/* Adds a merge "a b" by texts; false when a, b or a+b is not in the vocabulary. */
bool fc_tok_vocab_add_merge(fc_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len,
                        int32_t rank);
/* The id of a model vocabulary text (by_text restricted to the model), -1. */
int32_t fc_tok_vocab_text_id(const fc_tokenizer *t, const char *s, size_t n);
void fc_tok_added_add(fc_tokenizer *t, int32_t id, const char *content, size_t len, bool special,
                  bool normalized, bool lstrip, bool rstrip, bool single_word);

/* ---- pretok.c ---- */
/* Compiles a pattern for PCRE2 (UTF, UCP, JIT). TK_RE_ONIG: a Hugging Face
 * (Oniguruma) pattern, whose \s and \S gain U+0085 and whose \w/\W/\d follow
 * Oniguruma's Unicode classes; TK_RE_PCRE: PCRE2 syntax as is; TK_RE_LITERAL:
 * a plain string. NULL on error (logged). */
enum fc_tok_regex_kind { TK_RE_ONIG, TK_RE_PCRE, TK_RE_LITERAL };
pcre2_code *fc_tok_regex_compile(const char *pat, size_t len, enum fc_tok_regex_kind kind);
extern const char TK_WHITESPACE_PATTERN[];
extern const char TK_GPT2_PATTERN[];
extern const char TK_LLAMA3_PATTERN[];
extern const char TK_QWEN2_PATTERN[];
/* Applies the normalizer chain to s, appending the result to out. */
void fc_tok_normalize(const fc_tokenizer *t, const char *s, size_t n, fc_str *out);
/* Builds the two tries from t->added (after normalization of contents). */
void fc_tok_added_build(fc_tokenizer *t);
void fc_tok_trie_free(fc_tok_trie *tr);

/* A list of pieces: byte ranges in one buffer. */
typedef struct fc_tok_piece { uint32_t off, len; bool at_start; } fc_tok_piece;
typedef struct fc_tok_plist { fc_str b; fc_tok_piece *v; size_t n, cap; } fc_tok_plist;
void fc_tok_plist_clear(fc_tok_plist *l);
void fc_tok_plist_add(fc_tok_plist *l, const char *s, size_t n, bool at_start);
void fc_tok_plist_free(fc_tok_plist *l);

typedef struct fc_tok_span { uint32_t s, e; bool match; } fc_tok_span;

/* Scratch of one thread (reused by every encode call it makes, freed when the
 * thread exits). */
typedef struct fc_tok_scratch {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
    fc_tok_plist pa, pb;
    fc_str norm, norm2, clean;
    fc_tok_span *span; size_t n_span, cap_span;
    void *bpe;                  /* bpe.c's symbol arrays */
    size_t bpe_cap;
    void *heap; size_t heap_cap;
} fc_tok_scratch;
fc_tok_scratch *fc_tok_scratch_get(void);

/* Splits s by the added tokens of trie tr; calls emit for every text span and
 * every matched token, in order. */
typedef void (*fc_tok_emit_fn)(void *ctx, const char *s, size_t n, size_t off, int32_t id);
void fc_tok_added_split(const fc_tokenizer *t, const fc_tok_trie *tr, const char *s, size_t n,
                    bool parse_special, fc_tok_emit_fn emit, void *ctx);
/* Runs the pre-tokenizer on s; the pieces land in sc->pa (or whichever list is
 * returned). */
fc_tok_plist *fc_tok_pretokenize(const fc_tokenizer *t, fc_tok_scratch *sc, const char *s, size_t n,
                         bool at_start);

/* ---- bpe.c ---- */
enum fc_status fc_tok_cache_init(fc_tok_cache *c);
void fc_tok_cache_free(fc_tok_cache *c);
/* Appends the ids of one pre-tokenized piece. */
void fc_tok_bpe_word(const fc_tokenizer *t, fc_tok_scratch *sc, const char *s, size_t n, fc_tok_ivec *out);

/* ---- decode.c ---- */
/* Computes t->piece for every id (needs the decoder chain). */
void fc_tok_pieces_build(fc_tokenizer *t);

/* ---- load_gguf.c ---- */
/* GGUF token types (llama.cpp's llama_token_type, sentencepiece's
 * SentencePiece.Type). */
enum { TK_TYPE_NORMAL = 1, TK_TYPE_UNKNOWN = 2, TK_TYPE_CONTROL = 3, TK_TYPE_USER_DEFINED = 4,
       TK_TYPE_UNUSED = 5, TK_TYPE_BYTE = 6 };
/* Builds the tokenizer that a GGUF image made by w describes (the writer is
 * only read). NULL on error (logged). */
fc_tokenizer *fc_tok_from_writer(fc_gguf_writer *w, const char *name);

/* ---- spm_model.c ---- */
/* A parsed SentencePiece BPE ModelProto. */
typedef struct fc_tok_spm {
    int32_t n;                  /* pieces */
    const char **piece;         /* (n) borrowed from the parsed buffer, not NUL-terminated */
    uint32_t *len;              /* (n) */
    float *score;               /* (n) */
    int32_t *type;              /* (n) TK_TYPE_* */
    int32_t unk, bos, eos, pad; /* -1: none */
    bool add_dummy_prefix, remove_extra_ws;
    int32_t model_type;         /* 1 Unigram, 2 BPE */
    const uint8_t *charsmap;    /* precompiled_charsmap, borrowed like piece; NULL: none */
    size_t charsmap_len;
} fc_tok_spm;
/* Parses data[0..size) (kept alive by the caller while s is used). FC_OK, or
 * FC_ERR_FORMAT / FC_ERR_ARG (logged, naming `name`). */
enum fc_status fc_tok_spm_parse(const uint8_t *data, size_t size, const char *name, fc_tok_spm *s);
void fc_tok_spm_free(fc_tok_spm *s);
/* The same, also accepting Unigram models (model_type 1). */
enum fc_status fc_tok_spm_parse_any(const uint8_t *data, size_t size, const char *name, fc_tok_spm *s);
/* A token beyond (or over) the model's pieces: tokenizer_config.json's
 * added_tokens_decoder, added_tokens.json. */
typedef struct fc_tok_extra_token { int32_t id; const char *text; size_t len; bool special; } fc_tok_extra_token;
/* Writes s as the tokenizer.ggml.* keys of a "llama" vocabulary, as
 * llama.cpp's convert_hf_to_gguf.py does for a tokenizer.model. Extra tokens
 * with ids past the pieces are appended (holes become [PAD<id>] UNUSED).
 * Returns the number of tokens written. */
int32_t fc_tok_spm_write(const fc_tok_spm *s, const fc_tok_extra_token *extra, int n_extra, fc_gguf_writer *w);
/* The id of the piece (or extra token) spelled s[0..n), -1. */
int32_t fc_tok_spm_find(const fc_tok_spm *s, const fc_tok_extra_token *extra, int n_extra, const char *str, size_t n);

/* ---- unigram.c ---- */
typedef struct fc_tok_unigram {
    int32_t n;                  /* ids the arrays cover */
    double *score;              /* (n) piece log-probabilities */
    uint8_t *cand;              /* (n) 1: a lattice candidate */
    uint8_t *user;              /* (n) sentencepiece user-defined piece */
    double min_score, max_score;
    uint32_t max_len;           /* longest candidate key in bytes */
    int32_t unk;                /* the unknown piece, -1 none */
    bool spm;                   /* sentencepiece's rules, else tokenizers' */
} fc_tok_unigram;
fc_tok_unigram *fc_tok_unigram_new(int32_t n_vocab, bool spm);
void fc_tok_unigram_free(fc_tok_unigram *u); /* NULL is a no-op */
/* After fc_tok_vocab_finish (keys exist): min/max scores, longest key. */
void fc_tok_unigram_finish(fc_tokenizer *t);
/* Appends the ids of one pre-tokenized piece. */
void fc_tok_unigram_word(const fc_tokenizer *t, const char *s, size_t n, fc_tok_ivec *out);
/* Whether m[0..len) has the shape of a precompiled_charsmap. */
bool fc_tok_charsmap_valid(const uint8_t *m, size_t len);
void fc_tok_norm_precompiled(const fc_tok_norm *nm, const char *s, size_t n, fc_str *out);
void fc_tok_norm_spm(const fc_tok_norm *nm, const char *s, size_t n, fc_str *out);
/* A tokenizer from a parsed SentencePiece Unigram model (T5's spiece.model)
 * plus extra tokens, encoding as sentencepiece does, with T5Tokenizer's
 * "$A </s>" post-processor. Not finished: the caller may change the special
 * ids, prefix/suffix and chat template, then must call fc_tok_finish. */
fc_tokenizer *fc_tok_unigram_from_spm(const struct fc_tok_spm *s, const struct fc_tok_extra_token *extra, int n_extra,
                                  const char *name);

/* ---- tokenizer.c ---- */
fc_tokenizer *fc_tok_new(const char *name);
/* Last step of loading (after texts, added tokens, merges and pipeline). */
enum fc_status fc_tok_finish(fc_tokenizer *t);
void fc_tok_set_chat_template(fc_tokenizer *t, const char *s, size_t n);

#endif
