/*
 * decode.c: ids -> text. fc_tokenizer_decode runs the tokenizer.json decoder
 * chain over the list of token strings exactly as Hugging Face tokenizers'
 * Tokenizer::decode does (the decoders module): ids out of range are dropped,
 * special added tokens too when asked, then each step maps the list:
 *
 *   ByteLevel     every token through the inverse byte alphabet (a token with
 *                 a character outside it is taken as its UTF-8), all joined,
 *                 invalid UTF-8 -> U+FFFD per maximal subpart
 *   Replace       literal pattern -> content in every token
 *   ByteFallback  runs of <0xNN> tokens -> their bytes if the run is valid
 *                 UTF-8, else one U+FFFD per byte
 *   Fuse          all tokens joined into one
 *   Strip         up to `start` leading / `stop` trailing `content` chars off
 *                 every token
 *   Metaspace     the replacement char -> ' ' (in the first token it is
 *                 dropped instead, unless prepend_scheme is "never")
 *
 * and the strings are concatenated; without a decoder they are joined with
 * " ". Streaming (fc_detok) uses per-token pieces computed with the same steps
 * (ByteLevel and ByteFallback then yield raw bytes, validated as they are
 * emitted) and holds back an incomplete UTF-8 tail.
 */
#include "tok_impl.h"

#include <string.h>

/* ---- string lists ---- */

typedef struct slist { fc_str b; uint32_t *off, *len; size_t n, cap; } slist;

static void sl_add(slist *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->off = fc_xrealloc(l->off, l->cap * sizeof(uint32_t));
        l->len = fc_xrealloc(l->len, l->cap * sizeof(uint32_t));
    }
    if (!l->b.p) fc_str_reserve(&l->b, 1); /* SL_STR never offsets a NULL pointer */
    l->off[l->n] = (uint32_t)l->b.len;
    l->len[l->n] = (uint32_t)n;
    l->n++;
    fc_str_putn(&l->b, s, n);
}

/* Starts a token that the caller then appends bytes to with sl_put. */
static void sl_begin(slist *l) { sl_add(l, NULL, 0); }
static void sl_put(slist *l, const char *s, size_t n)
{
    fc_str_putn(&l->b, s, n);
    l->len[l->n - 1] += (uint32_t)n;
}

static void sl_clear(slist *l) { l->b.len = 0; l->n = 0; }

static void sl_free(slist *l)
{
    fc_str_free(&l->b);
    free(l->off);
    free(l->len);
    memset(l, 0, sizeof *l);
}

#define SL_STR(l, i) ((l)->b.p + (l)->off[i])

/* ---- steps ---- */

/* The bytes of a token under the ByteLevel decoder (appended to out). */
static void bytelevel_bytes(const char *s, size_t n, fc_str *out)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        int l = fc_utf8_len(u + i, n - i);
        int b = l ? fc_tok_cp_to_byte(fc_utf8_decode(u + i, l)) : -1;
        if (b < 0) { /* not all in the alphabet: the token as it is */
            out->len = start;
            fc_str_putn(out, s, n);
            return;
        }
        fc_str_putc(out, (char)b);
        i += (size_t)l;
    }
}

/* <0xNN> -> NN, else -1. */
static int byte_token(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static void replace_into(slist *out, const char *s, size_t n, const char *a, size_t an,
                         const char *b, size_t bn)
{
    sl_begin(out);
    size_t i = 0, prev = 0;
    while (an && i + an <= n) {
        if (!memcmp(s + i, a, an)) {
            sl_put(out, s + prev, i - prev);
            sl_put(out, b, bn);
            i += an;
            prev = i;
        } else {
            i++;
        }
    }
    sl_put(out, s + prev, n - prev);
}

static void strip_into(slist *out, const char *s, size_t n, uint32_t cp, int start, int stop)
{
    char enc[4];
    size_t el = (size_t)fc_utf8_encode(cp, enc);
    size_t a = 0, b = n;
    for (int k = 0; k < start && a + el <= b && !memcmp(s + a, enc, el); k++) a += el;
    for (int k = 0; k < stop && b >= a + el && !memcmp(s + b - el, enc, el); k++) b -= el;
    sl_begin(out);
    sl_put(out, s + a, b - a);
}

static void metaspace_into(slist *out, const char *s, size_t n, uint32_t cp, bool drop)
{
    char enc[4];
    size_t el = (size_t)fc_utf8_encode(cp, enc);
    sl_begin(out);
    size_t prev = 0;
    for (size_t i = 0; i + el <= n;) {
        if (!memcmp(s + i, enc, el)) {
            sl_put(out, s + prev, i - prev);
            if (!drop) sl_put(out, " ", 1);
            i += el;
            prev = i;
        } else {
            i++;
        }
    }
    sl_put(out, s + prev, n - prev);
}

/* Runs the chain over *in (a second list is used as scratch); returns the
 * list holding the result. stream: decode one token of running text, as a
 * piece (raw bytes, no validation, nothing applied after a Fuse);
 * first: that token is the first of the text. */
static slist *run_chain(const fc_tokenizer *t, slist *in, slist *tmp, bool stream, bool first)
{
    bool fused = false;
    for (int k = 0; k < t->n_dec; k++) {
        const fc_tok_dec *d = &t->dec[k];
        sl_clear(tmp);
        switch (d->kind) {
        case TK_DEC_BYTELEVEL: {
            sl_begin(tmp);
            size_t start = tmp->b.len;
            for (size_t i = 0; i < in->n; i++) bytelevel_bytes(SL_STR(in, i), in->len[i], &tmp->b);
            if (!stream && !fc_utf8_valid(tmp->b.p + start, tmp->b.len - start)) {
                fc_str raw = {0};
                fc_str_putn(&raw, tmp->b.p + start, tmp->b.len - start);
                tmp->b.len = start;
                fc_utf8_put_lossy(&tmp->b, raw.p, raw.len);
                fc_str_free(&raw);
            }
            tmp->len[tmp->n - 1] = (uint32_t)(tmp->b.len - start);
            break;
        }
        case TK_DEC_REPLACE:
            for (size_t i = 0; i < in->n; i++)
                replace_into(tmp, SL_STR(in, i), in->len[i], d->a, d->a_len, d->b, d->b_len);
            break;
        case TK_DEC_BYTEFALLBACK: {
            fc_str bytes = {0};
            for (size_t i = 0; i <= in->n; i++) {
                int b = i < in->n ? byte_token(SL_STR(in, i), in->len[i]) : -1;
                if (b >= 0) { fc_str_putc(&bytes, (char)b); continue; }
                if (bytes.len) {
                    sl_begin(tmp);
                    if (stream || fc_utf8_valid(bytes.p, bytes.len)) {
                        sl_put(tmp, bytes.p, bytes.len);
                    } else {
                        for (size_t j = 0; j < bytes.len; j++) sl_put(tmp, "\xEF\xBF\xBD", 3);
                    }
                    bytes.len = 0;
                }
                if (i < in->n) sl_add(tmp, SL_STR(in, i), in->len[i]);
            }
            fc_str_free(&bytes);
            break;
        }
        case TK_DEC_FUSE:
            sl_begin(tmp);
            for (size_t i = 0; i < in->n; i++) sl_put(tmp, SL_STR(in, i), in->len[i]);
            fused = true;
            break;
        case TK_DEC_STRIP:
            for (size_t i = 0; i < in->n; i++) {
                if (stream && fused) sl_add(tmp, SL_STR(in, i), in->len[i]); /* fc_detok strips */
                else strip_into(tmp, SL_STR(in, i), in->len[i], d->cp, d->start, d->stop);
            }
            break;
        case TK_DEC_METASPACE:
            for (size_t i = 0; i < in->n; i++) {
                bool is_first = stream ? first : i == 0;
                metaspace_into(tmp, SL_STR(in, i), in->len[i], d->cp,
                               is_first && d->prepend != TK_PREPEND_NEVER);
            }
            break;
        }
        slist *x = in;
        in = tmp;
        tmp = x;
    }
    return in;
}

/* ---- full decode ---- */

static bool keep_id(const fc_tokenizer *t, int32_t id, bool skip_special)
{
    if (id < 0 || id >= t->n_vocab || !t->text[id]) return false;
    return !(skip_special && (t->flags[id] & TK_F_SPECIAL));
}

char *fc_tokenizer_decode(const fc_tokenizer *tok, const int32_t *ids, size_t n_ids,
                          bool skip_special, size_t *len_out)
{
    slist a = {0}, b = {0};
    for (size_t i = 0; i < n_ids; i++)
        if (keep_id(tok, ids[i], skip_special)) sl_add(&a, tok->text[ids[i]], tok->text_len[ids[i]]);
    fc_str joined = {0};
    if (!tok->has_decoder) {
        for (size_t i = 0; i < a.n; i++) {
            if (i) fc_str_putc(&joined, ' ');
            fc_str_putn(&joined, SL_STR(&a, i), a.len[i]);
        }
    } else {
        slist *r = run_chain(tok, &a, &b, false, false);
        for (size_t i = 0; i < r->n; i++) fc_str_putn(&joined, SL_STR(r, i), r->len[i]);
    }
    fc_str out = {0};
    fc_utf8_put_lossy(&out, joined.p, joined.len); /* a no-op unless the vocabulary holds invalid UTF-8 */
    fc_str_putc(&out, '\0');
    fc_str_free(&joined);
    sl_free(&a);
    sl_free(&b);
    if (len_out) *len_out = out.len - 1;
    return out.p;
}

/* ---- pieces ---- */

/* The stream bytes of one token (appended to out); a and b are scratch lists. */
static void token_piece(const fc_tokenizer *t, int32_t id, bool first, fc_str *out, slist *a, slist *b)
{
    if (!t->has_decoder) {
        fc_str_putn(out, t->text[id], t->text_len[id]);
        return;
    }
    sl_clear(a);
    sl_add(a, t->text[id], t->text_len[id]);
    slist *r = run_chain(t, a, b, true, first);
    for (size_t i = 0; i < r->n; i++) fc_str_putn(out, SL_STR(r, i), r->len[i]);
}

void fc_tok_pieces_build(fc_tokenizer *t)
{
    slist a = {0}, b = {0};
    size_t *off = fc_xmalloc((size_t)t->n_vocab * sizeof(size_t));
    for (int32_t i = 0; i < t->n_vocab; i++) {
        off[i] = t->piece_strs.len;
        if (t->text[i]) token_piece(t, i, false, &t->piece_strs, &a, &b);
        t->piece_len[i] = (uint32_t)(t->piece_strs.len - off[i]);
    }
    fc_str_putc(&t->piece_strs, '\0');
    for (int32_t i = 0; i < t->n_vocab; i++) t->piece[i] = t->text[i] ? t->piece_strs.p + off[i] : NULL;
    free(off);
    sl_free(&a);
    sl_free(&b);
}

const char *fc_tokenizer_token_to_piece(const fc_tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || id >= tok->n_vocab || !tok->piece[id]) {
        *len = 0;
        return NULL;
    }
    *len = tok->piece_len[id];
    return tok->piece[id];
}

/* ---- streaming ---- */

struct fc_detok {
    const fc_tokenizer *t;
    bool skip_special;
    size_t n_tokens;        /* tokens taken into the text so far */
    int strip_left;         /* leading chars a global Strip may still remove */
    uint32_t strip_cp;
    char pend[4];           /* incomplete UTF-8 tail */
    size_t n_pend;
    fc_str out, tmp;
};

void fc_detok_reset(fc_detok *d)
{
    d->n_tokens = 0;
    d->n_pend = 0;
    d->strip_left = 0;
    /* a Strip after a Fuse acts on the whole text: only its start concerns a stream */
    bool fused = false;
    for (int k = 0; k < d->t->n_dec; k++) {
        const fc_tok_dec *s = &d->t->dec[k];
        if (s->kind == TK_DEC_FUSE) fused = true;
        if (s->kind == TK_DEC_STRIP && fused) {
            d->strip_left = s->start;
            d->strip_cp = s->cp;
        }
    }
}

fc_detok *fc_detok_new(const fc_tokenizer *tok, bool skip_special)
{
    fc_detok *d = fc_xcalloc(1, sizeof *d);
    d->t = tok;
    d->skip_special = skip_special;
    fc_detok_reset(d);
    return d;
}

void fc_detok_free(fc_detok *d)
{
    if (!d) return;
    fc_str_free(&d->out);
    fc_str_free(&d->tmp);
    free(d);
}

size_t fc_detok_pending(const fc_detok *d) { return d->n_pend; }

/* Emits pend + s: complete characters out, an incomplete tail back to pend. */
static void emit_bytes(fc_detok *d, const char *s, size_t n)
{
    fc_str *b = &d->tmp;
    b->len = 0;
    fc_str_putn(b, d->pend, d->n_pend);
    fc_str_putn(b, s, n);
    d->n_pend = 0;
    if (b->len == 0) return;
    const uint8_t *u = (const uint8_t *)b->p;
    size_t i = 0;
    if (d->strip_left > 0) {
        char enc[4];
        size_t el = (size_t)fc_utf8_encode(d->strip_cp, enc);
        while (d->strip_left > 0 && b->len - i >= el && !memcmp(b->p + i, enc, el)) {
            i += el;
            d->strip_left--;
        }
        if (i < b->len && d->strip_left > 0) {
            /* the text starts with something else, unless that is a prefix of the char */
            if (b->len - i >= el || memcmp(b->p + i, enc, b->len - i)) d->strip_left = 0;
        }
    }
    size_t run = i;
    while (i < b->len) {
        if (u[i] < 0x80) { i++; continue; }
        int len = fc_utf8_len(u + i, b->len - i);
        if (len) { i += (size_t)len; continue; }
        bool could;
        size_t bad = fc_utf8_bad_len(u + i, b->len - i, &could);
        fc_str_putn(&d->out, b->p + run, i - run);
        if (could) { /* held back: more bytes may complete it */
            memcpy(d->pend, b->p + i, bad);
            d->n_pend = bad;
            return;
        }
        fc_str_putn(&d->out, "\xEF\xBF\xBD", 3);
        i += bad;
        run = i;
    }
    fc_str_putn(&d->out, b->p + run, b->len - run);
}

const char *fc_detok_push(fc_detok *d, int32_t id, size_t *len)
{
    const fc_tokenizer *t = d->t;
    d->out.len = 0;
    if (keep_id(t, id, d->skip_special)) {
        if (!t->has_decoder && d->n_tokens > 0) emit_bytes(d, " ", 1);
        if (d->n_tokens == 0) {
            fc_str first = {0};
            slist a = {0}, b = {0};
            token_piece(t, id, true, &first, &a, &b);
            emit_bytes(d, first.p, first.len);
            fc_str_free(&first);
            sl_free(&a);
            sl_free(&b);
        } else {
            emit_bytes(d, t->piece[id], t->piece_len[id]);
        }
        d->n_tokens++;
    }
    fc_str_putc(&d->out, '\0');
    *len = d->out.len - 1;
    return d->out.p;
}

const char *fc_detok_flush(fc_detok *d, size_t *len)
{
    d->out.len = 0;
    if (d->n_pend) fc_utf8_put_lossy(&d->out, d->pend, d->n_pend);
    d->n_pend = 0;
    fc_str_putc(&d->out, '\0');
    *len = d->out.len - 1;
    return d->out.p;
}
