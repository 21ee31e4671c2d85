/*
 * unigram.c: the SentencePiece Unigram model (T5, Flan-T5, FastChat-T5) and
 * the two normalizers that come with it.
 *
 *   model       every piece has a log-probability score; a word is split into
 *               the pieces whose scores sum highest (Viterbi over the lattice
 *               of vocabulary matches at each character start). A character
 *               that starts no piece of exactly its own length also gets an
 *               <unk> edge scored min_score - 10 (both libraries' kUnkPenalty);
 *               runs of unknown characters are fused into one <unk>.
 *   Precompiled the tokenizer.json normalizer that carries sentencepiece's
 *               precompiled_charsmap (a darts-clone double-array trie of
 *               source strings plus a blob of NUL-terminated replacements),
 *               applied per extended grapheme cluster as Hugging Face
 *               `tokenizers` does (a cluster shorter than 6 bytes is looked up
 *               whole, and replaced by its first -- shortest -- prefix match;
 *               otherwise each character alone).
 *   spm         sentencepiece's own Normalizer::Normalize, for a spiece.model
 *               read without tokenizer.json: longest-prefix charsmap matches,
 *               leading/trailing/repeated whitespace removed, " " escaped as
 *               "▁", the dummy "▁" prefix.
 *
 * Two flavours of the model, because the two reference libraries differ in
 * small ways: tokenizers (path scores in f64, every vocabulary entry is a
 * lattice candidate, the fused unknown run is looked up as a piece first) and
 * sentencepiece (path scores in f32; control, unknown and unused pieces are
 * not candidates; a user-defined piece scores length * max_score - 0.1).
 *
 * A vocabulary without an unknown piece drops characters it cannot cover
 * (tokenizers refuses to encode such text).
 *
 * Byte fallback (sentencepiece --byte_fallback, tokenizer.json "byte_fallback":
 * true): a run of unknown characters becomes the <0xNN> pieces of its UTF-8
 * bytes when the vocabulary has all of them (else <unk>), after tokenizers'
 * lookup of the fused run; the <0xNN> pieces are never lattice candidates in
 * the sentencepiece flavour (type BYTE) and are in the tokenizers one (every
 * vocabulary entry is).
 *
 * Not implemented: sampling /
 * n-best encodings, sentencepiece's user-defined-symbol prefix matcher in the
 * normalizer (such pieces are still matched by the lattice), and
 * treat_whitespace_as_suffix.
 */
#include "tok_impl.h"

#include <float.h>
#include <string.h>
#include <utf8proc.h>

#define UNK_PENALTY 10.0 /* kUnkPenalty in both sentencepiece and tokenizers */

/* ---- model ---- */

fc_tok_unigram *fc_tok_unigram_new(int32_t n_vocab, bool spm)
{
    fc_tok_unigram *u = fc_xcalloc(1, sizeof *u);
    u->score = fc_xcalloc((size_t)(n_vocab > 0 ? n_vocab : 1), sizeof(double));
    u->cand = fc_xcalloc((size_t)(n_vocab > 0 ? n_vocab : 1), 1);
    u->user = fc_xcalloc((size_t)(n_vocab > 0 ? n_vocab : 1), 1);
    u->n = n_vocab;
    u->spm = spm;
    u->unk = -1;
    return u;
}

void fc_tok_unigram_free(fc_tok_unigram *u)
{
    if (!u) return;
    free(u->score);
    free(u->cand);
    free(u->user);
    free(u);
}

void fc_tok_unigram_finish(fc_tokenizer *t)
{
    fc_tok_unigram *u = t->uni;
    u->min_score = DBL_MAX;
    u->max_score = -DBL_MAX;
    u->max_len = 0;
    for (int32_t i = 0; i < u->n && i < t->n_vocab; i++) {
        if (!u->cand[i] || !t->key[i]) { u->cand[i] = 0; continue; }
        u->max_len = FC_MAX(u->max_len, t->key_len[i]);
        /* sentencepiece takes min/max over normal pieces, tokenizers over all */
        if (u->spm && u->user[i]) continue;
        u->min_score = FC_MIN(u->min_score, u->score[i]);
        u->max_score = FC_MAX(u->max_score, u->score[i]);
    }
    if (u->min_score == DBL_MAX) u->min_score = u->max_score = 0;
}

typedef struct lnode { double score; int32_t id, start; } lnode; /* start -1: unreached */

/* One candidate edge [start, end) with piece id: keeps the better path. */
static void relax(const fc_tok_unigram *u, lnode *to, double here, double score, int32_t start, int32_t id)
{
    double cand = u->spm ? (double)((float)here + (float)score) : here + score;
    if (to->start < 0 || cand > to->score) {
        to->score = cand;
        to->start = start;
        to->id = id;
    }
}

void fc_tok_unigram_word(const fc_tokenizer *t, const char *s, size_t n, fc_tok_ivec *out)
{
    const fc_tok_unigram *u = t->uni;
    if (n == 0) return;
    lnode stack_nodes[256];
    lnode *node = n + 1 <= 256 ? stack_nodes : fc_xmalloc((n + 1) * sizeof(lnode));
    for (size_t i = 0; i <= n; i++) node[i] = (lnode){0, -1, -1};
    node[0].start = 0;
    double unk_score = u->min_score - UNK_PENALTY;
    const uint8_t *b = (const uint8_t *)s;
    for (size_t at = 0; at < n;) {
        int ml = fc_utf8_len(b + at, n - at);
        size_t mblen = ml > 0 ? (size_t)ml : 1;
        double here = node[at].score;
        bool single = false;
        size_t lim = FC_MIN((size_t)u->max_len, n - at);
        for (size_t len = 1; len <= lim; len++) {
            int32_t id = fc_tok_strmap_get(&t->by_key, s + at, len);
            if (id < 0 || id >= u->n || !u->cand[id]) continue;
            double sc = u->spm && u->user[id] ? (double)len * u->max_score - 0.1 : u->score[id];
            relax(u, &node[at + len], here, sc, (int32_t)at, id);
            if (len == mblen) single = true;
        }
        if (!single) relax(u, &node[at + mblen], here, unk_score, (int32_t)at, u->unk);
        at += mblen;
    }
    /* backtrack, then emit in order, fusing unknown runs */
    size_t n_tok = 0;
    for (size_t e = n; e > 0; e = (size_t)node[e].start) n_tok++;
    int32_t *ids = fc_xmalloc(n_tok * sizeof(int32_t)), *starts = fc_xmalloc((n_tok + 1) * sizeof(int32_t));
    size_t k = n_tok;
    starts[n_tok] = (int32_t)n;
    for (size_t e = n; e > 0; e = (size_t)node[e].start) {
        k--;
        ids[k] = node[e].id;
        starts[k] = node[e].start;
    }
    for (size_t i = 0; i < n_tok;) {
        if (ids[i] < 0) { /* an unknown character and no unk piece (tokenizers fails there): dropped */
            i++;
            continue;
        }
        if (ids[i] != u->unk) {
            fc_tok_ivec_push(out, ids[i++]);
            continue;
        }
        size_t j = i;
        while (j < n_tok && ids[j] == u->unk) j++;
        int32_t id = u->unk;
        size_t a = (size_t)starts[i], z = (size_t)starts[j];
        bool found = false;
        if (!u->spm) { /* tokenizers looks the (fused) text up: the <unk> piece itself is found */
            int32_t f = fc_tok_strmap_get(&t->by_key, s + a, z - a);
            if (f >= 0) id = f, found = true;
        }
        i = j;
        if (!found && t->byte_fallback) { /* the run's bytes as <0xNN> pieces, if all exist */
            bool all = true;
            for (size_t k = a; k < z && all; k++) all = t->byte_tok[b[k]] >= 0;
            if (all) {
                for (size_t k = a; k < z; k++) fc_tok_ivec_push(out, t->byte_tok[b[k]]);
                continue;
            }
        }
        fc_tok_ivec_push(out, id);
    }
    free(ids);
    free(starts);
    if (node != stack_nodes) free(node);
}

/* ---- precompiled charsmap ----
 * Layout: u32 trie_bytes (LE), the trie (trie_bytes / 4 darts-clone units,
 * LE), then the replacement blob. Unit bits (darts-clone DoubleArrayUnit):
 * has_leaf bit 8, value the low 31 bits, label the low 8 bits plus bit 31,
 * offset (unit >> 10) << ((unit & 1 << 9) >> 6). */

static uint32_t unit_at(const uint8_t *m, size_t i)
{
    const uint8_t *p = m + 4 + 4 * i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

bool fc_tok_charsmap_valid(const uint8_t *m, size_t len)
{
    if (len < 4) return false;
    uint32_t tb = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
    return tb % 4 == 0 && tb > 0 && (size_t)tb <= len - 4;
}

/* The prefix matches of key[0..n) (stopping at a NUL byte): calls back with
 * (match length, replacement offset); stops when cb returns false. */
typedef bool (*match_fn)(void *ctx, size_t len, uint32_t value);
static void prefix_search(const uint8_t *m, size_t mlen, const uint8_t *key, size_t n, match_fn cb, void *ctx)
{
    uint32_t tb = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
    size_t n_units = tb / 4;
    (void)mlen;
    size_t pos = 0;
    uint32_t u = unit_at(m, 0);
    pos ^= unit_offset(u);
    for (size_t i = 0; i < n; i++) {
        if (key[i] == 0) return;
        pos ^= key[i];
        if (pos >= n_units) return;
        u = unit_at(m, pos);
        if ((u & (0x80000000u | 0xFF)) != key[i]) return;
        pos ^= unit_offset(u);
        if (pos >= n_units) return;
        if ((u >> 8) & 1) {
            if (!cb(ctx, i + 1, unit_at(m, pos) & 0x7FFFFFFFu)) return;
        }
    }
}

/* The replacement text at value (NUL-terminated in the blob); false when out
 * of range. */
static bool repl_at(const uint8_t *m, size_t mlen, uint32_t value, const char **s, size_t *n)
{
    uint32_t tb = (uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24;
    const uint8_t *blob = m + 4 + tb;
    size_t blen = mlen - 4 - tb;
    if (value >= blen) return false;
    const uint8_t *end = memchr(blob + value, 0, blen - value);
    *s = (const char *)blob + value;
    *n = end ? (size_t)(end - (blob + value)) : blen - value;
    return true;
}

typedef struct first_match { bool found; uint32_t value; size_t len; } first_match;
static bool on_first(void *p, size_t len, uint32_t value)
{
    first_match *f = p;
    f->found = true;
    f->value = value;
    f->len = len;
    return false;
}
static bool on_longest(void *p, size_t len, uint32_t value)
{
    first_match *f = p;
    if (!f->found || len > f->len) {
        f->found = true;
        f->len = len;
        f->value = value;
    }
    return true;
}

/* tokenizers' Precompiled::transform: the first prefix match of the chunk. */
static bool transform(const fc_tok_norm *nm, const char *s, size_t n, fc_str *out)
{
    const uint8_t *m = (const uint8_t *)nm->a;
    first_match f = {0};
    prefix_search(m, nm->a_len, (const uint8_t *)s, n, on_first, &f);
    const char *r;
    size_t rn;
    if (!f.found || !repl_at(m, nm->a_len, f.value, &r, &rn)) return false;
    fc_str_putn(out, r, rn);
    return true;
}

void fc_tok_norm_precompiled(const fc_tok_norm *nm, const char *s, size_t n, fc_str *out)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t g = 0; /* start of the current grapheme cluster */
    utf8proc_int32_t state = 0, prev = -1;
    for (size_t i = 0; i <= n;) {
        int l = 0;
        utf8proc_int32_t cp = -1;
        if (i < n) {
            l = fc_utf8_len(u + i, n - i);
            if (l <= 0) l = 1;
            cp = (utf8proc_int32_t)fc_utf8_decode(u + i, l);
        }
        bool brk = i == n || (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state));
        if (brk && i > g) {
            size_t glen = i - g;
            if (!(glen < 6 && transform(nm, s + g, glen, out))) {
                for (size_t j = g; j < i;) {
                    int cl = fc_utf8_len(u + j, i - j);
                    if (cl <= 0) cl = 1;
                    if (!transform(nm, s + j, (size_t)cl, out)) fc_str_putn(out, s + j, (size_t)cl);
                    j += (size_t)cl;
                }
            }
            g = i;
        }
        if (i == n) break;
        prev = cp;
        i += (size_t)l;
    }
}

/* sentencepiece's NormalizePrefix: the longest charsmap match at s, or one
 * character as is. */
static size_t norm_prefix(const fc_tok_norm *nm, const char *s, size_t n, const char **r, size_t *rn)
{
    if (nm->a) {
        first_match f = {0};
        prefix_search((const uint8_t *)nm->a, nm->a_len, (const uint8_t *)s, n, on_longest, &f);
        if (f.found && repl_at((const uint8_t *)nm->a, nm->a_len, f.value, r, rn)) return f.len;
    }
    int l = fc_utf8_len((const uint8_t *)s, n);
    if (l <= 0) {
        *r = "\xEF\xBF\xBD";
        *rn = 3;
        return 1;
    }
    *r = s;
    *rn = (size_t)l;
    return (size_t)l;
}

void fc_tok_norm_spm(const fc_tok_norm *nm, const char *s, size_t n, fc_str *out)
{
    bool squeeze = nm->right, dummy = nm->left;
    const char *r;
    size_t rn, i = 0;
    if (squeeze)
        while (i < n) {
            size_t c = norm_prefix(nm, s + i, n - i, &r, &rn);
            if (!(rn == 1 && r[0] == ' ')) break;
            i += c;
        }
    if (i >= n) return;
    size_t start = out->len;
    if (dummy) fc_str_puts(out, "\xE2\x96\x81");
    bool prev_space = squeeze;
    while (i < n) {
        size_t c = norm_prefix(nm, s + i, n - i, &r, &rn);
        if (prev_space)
            while (rn > 0 && r[0] == ' ') { r++; rn--; }
        if (rn > 0) {
            for (size_t k = 0; k < rn; k++) {
                if (r[k] == ' ') fc_str_puts(out, "\xE2\x96\x81");
                else fc_str_putc(out, r[k]);
            }
            prev_space = r[rn - 1] == ' ';
        }
        i += c;
        if (!squeeze) prev_space = false;
    }
    if (squeeze)
        while (out->len >= start + 3 && !memcmp(out->p + out->len - 3, "\xE2\x96\x81", 3))
            fc_str_truncate(out, out->len - 3);
}

/* ---- from a spiece.model ---- */

fc_tokenizer *fc_tok_unigram_from_spm(const fc_tok_spm *s, const fc_tok_extra_token *extra, int n_extra, const char *name)
{
    bool byte_fallback = false;
    for (int32_t i = 0; i < s->n; i++) byte_fallback = byte_fallback || s->type[i] == TK_TYPE_BYTE;
    int32_t n = s->n;
    for (int k = 0; k < n_extra; k++) n = FC_MAX(n, extra[k].id + 1);
    fc_tokenizer *t = fc_tok_new(name);
    fc_tok_vocab_alloc(t, n);
    for (int32_t i = 0; i < s->n; i++) fc_tok_vocab_set_text(t, i, s->piece[i], s->len[i]);
    /* control and unknown pieces are the special tokens transformers'
     * T5Tokenizer knows (</s>, <pad>, <unk>); extra tokens (added_tokens.json,
     * added_tokens_decoder: FastChat-T5's "\n", " ", "{", ...) are matched
     * before normalization, as the slow tokenizer splits on them */
    for (int32_t i = 0; i < s->n; i++)
        if (s->type[i] == TK_TYPE_CONTROL || s->type[i] == TK_TYPE_UNKNOWN)
            fc_tok_added_add(t, i, s->piece[i], s->len[i], true, false, false, false, false);
    for (int k = 0; k < n_extra; k++)
        fc_tok_added_add(t, extra[k].id, extra[k].text, extra[k].len, extra[k].special, false, false, false, false);
    fc_tok_vocab_index_texts(t);

    fc_tok_unigram *u = fc_tok_unigram_new(n, true);
    for (int32_t i = 0; i < s->n; i++) {
        u->score[i] = s->score[i];
        u->cand[i] = s->type[i] == TK_TYPE_NORMAL || s->type[i] == TK_TYPE_USER_DEFINED;
        u->user[i] = s->type[i] == TK_TYPE_USER_DEFINED;
    }
    u->unk = s->unk;
    t->uni = u;
    t->model_unk = t->unk = s->unk;
    t->eos = s->eos;
    t->bos = s->bos;
    t->pad = s->pad;

    fc_tok_norm nm = {.kind = TK_NORM_SPM, .left = s->add_dummy_prefix, .right = s->remove_extra_ws};
    if (s->charsmap) {
        nm.a = fc_xmalloc(s->charsmap_len);
        memcpy(nm.a, s->charsmap, s->charsmap_len);
        nm.a_len = s->charsmap_len;
    }
    t->norm = fc_xcalloc(1, sizeof(fc_tok_norm));
    t->norm[t->n_norm++] = nm;
    t->byte_fallback = byte_fallback; /* <0xNN> pieces: unknown text becomes its bytes */
    t->dec = fc_xcalloc(2, sizeof(fc_tok_dec));
    if (byte_fallback) t->dec[t->n_dec++] = (fc_tok_dec){.kind = TK_DEC_BYTEFALLBACK};
    t->dec[t->n_dec++] = (fc_tok_dec){.kind = TK_DEC_METASPACE, .cp = 0x2581,
                                  .prepend = s->add_dummy_prefix ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER};
    t->has_decoder = true;
    /* T5Tokenizer: "$A </s>", no BOS */
    if (t->eos >= 0) {
        t->suffix = fc_xmalloc(sizeof(int32_t));
        t->suffix[t->n_suffix++] = t->eos;
    }
    return t;
}
