/*
 * tokenizer.c: the encode pipeline of fc_tokenizer and its accessors.
 *
 * encode = Hugging Face Tokenizer::encode(text, add_special_tokens) for one
 * sequence: added tokens on the raw text, normalizer on each span between
 * them, added tokens (normalized ones) on the normalized text, pre-tokenizer,
 * BPE on every piece, then the post-processor's BOS/EOS. Loading lives in
 * load_hf.c and load_gguf.c, the parts of the pipeline in pretok.c, bpe.c and
 * decode.c.
 */
#include "tok_impl.h"
#include "format/hub.h"

#include <string.h>
#include <sys/stat.h>

fc_tokenizer *fc_tok_new(const char *name)
{
    fc_tokenizer *t = fc_xcalloc(1, sizeof *t);
    t->name = fc_xstrdup(name ? name : "tokenizer");
    t->bos = t->eos = t->unk = t->pad = -1;
    t->model_unk = -1;
    fc_tok_cache_init(&t->cache);
    return t;
}

void fc_tok_set_chat_template(fc_tokenizer *t, const char *s, size_t n)
{
    free(t->chat_template);
    t->chat_template = fc_xmalloc(n + 1);
    memcpy(t->chat_template, s, n);
    t->chat_template[n] = '\0';
}

void fc_tokenizer_free(fc_tokenizer *t)
{
    if (!t) return;
    free(t->name);
    free(t->text);
    free(t->text_len);
    free(t->key);
    free(t->key_len);
    free(t->piece);
    free(t->piece_len);
    free(t->flags);
    fc_str_free(&t->strs);
    fc_str_free(&t->piece_strs);
    fc_tok_strmap_free(&t->by_text);
    fc_tok_strmap_free(&t->by_key);
    fc_tok_mergemap_free(&t->merges);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
        pcre2_code_free(t->norm[i].re);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].pat);
    }
    free(t->pre);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec[i].a);
        free(t->dec[i].b);
    }
    free(t->dec);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    fc_tok_trie_free(&t->trie_raw);
    fc_tok_trie_free(&t->trie_norm);
    free(t->prefix);
    free(t->suffix);
    free(t->chat_template);
    free(t->scores);
    fc_tok_cache_free(&t->cache);
    fc_tok_unigram_free(t->uni);
    free(t);
}

fc_tokenizer *fc_tokenizer_load(const char *spec)
{
    char *path = NULL; /* a Hub repo id becomes its folder in the cache */
    if (fc_hub_resolve(spec, NULL, &path) != FC_OK) return NULL;
    struct stat st;
    fc_tokenizer *t = NULL;
    if (stat(path, &st) != 0) {
        FC_LOG_ERROR("%s: no such file or folder", path);
    } else if (S_ISDIR(st.st_mode)) {
        t = fc_tokenizer_from_hf(path);
    } else {
        fc_gguf *g = fc_gguf_open(path);
        if (g) t = fc_tokenizer_from_gguf(g, path);
        fc_gguf_free(g);
    }
    free(path);
    return t;
}

/* Special tokens that end a turn in the chat formats we know (llama.cpp marks
 * the same ones end-of-generation): Llama-3, ChatML (Qwen, SmolLM), Phi-3,
 * Gemma, GPT-2 style, Llama-2. */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "</s>", NULL,
};

/* The end of every loader: keys, maps, added-token tries, pieces. */
enum fc_status fc_tok_finish(fc_tokenizer *t)
{
    enum fc_status st = fc_tok_vocab_finish(t);
    if (st != FC_OK) return st;
    if (t->eos >= 0) t->flags[t->eos] |= TK_F_EOG;
    for (const char *const *e = EOG_TEXTS; *e; e++) {
        int32_t id = fc_tok_strmap_get(&t->by_text, *e, strlen(*e));
        if (id >= 0 && (t->flags[id] & TK_F_SPECIAL)) t->flags[id] |= TK_F_EOG;
    }
    if (t->uni) fc_tok_unigram_finish(t);
    fc_tok_added_build(t);
    fc_tok_pieces_build(t);
    return FC_OK;
}

/* ---- accessors ---- */

int32_t fc_tokenizer_n_vocab(const fc_tokenizer *t) { return t->n_vocab; }
int32_t fc_tokenizer_bos(const fc_tokenizer *t) { return t->bos; }
int32_t fc_tokenizer_eos(const fc_tokenizer *t) { return t->eos; }
int32_t fc_tokenizer_unk(const fc_tokenizer *t) { return t->unk; }
int32_t fc_tokenizer_pad(const fc_tokenizer *t) { return t->pad; }
const char *fc_tokenizer_chat_template(const fc_tokenizer *t) { return t->chat_template; }

bool fc_tokenizer_adds_bos(const fc_tokenizer *t)
{
    return t->bos >= 0 && t->n_prefix > 0 && t->prefix[0] == t->bos;
}

bool fc_tokenizer_adds_eos(const fc_tokenizer *t)
{
    return t->eos >= 0 && t->n_suffix > 0 && t->suffix[t->n_suffix - 1] == t->eos;
}

bool fc_tokenizer_is_special(const fc_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TK_F_SPECIAL);
}

bool fc_tokenizer_is_eog(const fc_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TK_F_EOG);
}

const char *fc_tokenizer_token_text(const fc_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->text[id] : NULL;
}

int32_t fc_tokenizer_find(const fc_tokenizer *t, const char *text, size_t len)
{
    return fc_tok_strmap_get(&t->by_text, text, len);
}

/* ---- encode ---- */

typedef struct enc_ctx {
    const fc_tokenizer *t;
    fc_tok_scratch *sc;
    fc_tok_ivec *out;
    bool parse_special;
    bool raw_at_start;      /* the raw span being normalized starts the text */
} enc_ctx;

/* A span of normalized text (or an added token matched in it). */
static void on_norm_span(void *p, const char *s, size_t n, size_t off, int32_t id)
{
    enc_ctx *c = p;
    if (id >= 0) { fc_tok_ivec_push(c->out, id); return; }
    fc_tok_plist *l = fc_tok_pretokenize(c->t, c->sc, s, n, c->raw_at_start && off == 0);
    for (size_t i = 0; i < l->n; i++)
        if (c->t->uni) fc_tok_unigram_word(c->t, l->b.p + l->v[i].off, l->v[i].len, c->out);
        else fc_tok_bpe_word(c->t, c->sc, l->b.p + l->v[i].off, l->v[i].len, c->out);
}

/* A span of raw text (or an added token matched in it). */
static void on_raw_span(void *p, const char *s, size_t n, size_t off, int32_t id)
{
    enc_ctx *c = p;
    if (id >= 0) { fc_tok_ivec_push(c->out, id); return; }
    const fc_tokenizer *t = c->t;
    c->raw_at_start = off == 0;
    if (t->n_norm == 0) {
        fc_tok_added_split(t, &t->trie_norm, s, n, c->parse_special, on_norm_span, c);
        return;
    }
    /* The normalized text gets its own buffer: the pre-tokenizer reuses the
     * scratch buffers while it is being read. */
    fc_str nb = {0};
    fc_tok_normalize(t, s, n, &nb);
    fc_tok_added_split(t, &t->trie_norm, nb.p ? nb.p : "", nb.len, c->parse_special, on_norm_span, c);
    fc_str_free(&nb);
}

static void encode_into(const fc_tokenizer *t, const char *text, size_t len, bool add_special,
                        bool parse_special, fc_tok_ivec *out)
{
    if (!fc_utf8_valid(text, len)) {
        fc_str clean = {0};
        fc_utf8_put_lossy(&clean, text, len);
        encode_into(t, clean.p, clean.len, add_special, parse_special, out);
        fc_str_free(&clean);
        return;
    }
    fc_tok_scratch *sc = fc_tok_scratch_get();
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++) fc_tok_ivec_push(out, t->prefix[i]);
    enc_ctx c = {t, sc, out, parse_special, true};
    fc_tok_added_split(t, &t->trie_raw, text ? text : "", len, parse_special, on_raw_span, &c);
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++) fc_tok_ivec_push(out, t->suffix[i]);
}

int fc_tokenizer_encode(const fc_tokenizer *tok, const char *text, size_t len, bool add_special,
                        bool parse_special, int32_t **ids_out)
{
    fc_tok_ivec v = {0};
    encode_into(tok, text, len, add_special, parse_special, &v);
    if (v.n > INT32_MAX) {
        fc_tok_ivec_free(&v);
        *ids_out = NULL;
        FC_LOG_ERROR("%s: text too long to encode", tok->name);
        return FC_ERR_ARG;
    }
    *ids_out = v.v;
    return (int)v.n;
}

int fc_tokenizer_encode_buf(const fc_tokenizer *tok, const char *text, size_t len, bool add_special,
                            bool parse_special, int32_t *ids, int cap)
{
    int32_t *v;
    int n = fc_tokenizer_encode(tok, text, len, add_special, parse_special, &v);
    if (n < 0) return n;
    if (n > 0 && cap > 0) memcpy(ids, v, (size_t)FC_MIN(n, cap) * sizeof(int32_t));
    free(v);
    return n;
}
