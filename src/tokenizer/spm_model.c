/*
 * spm_model.c: SentencePiece's tokenizer.model for BPE models (Llama-2,
 * Vicuna, Mistral folders that have no tokenizer.json).
 *
 * The file is a serialized ModelProto (sentencepiece_model.proto). A minimal
 * protobuf reader takes what encoding needs:
 *
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
 *                   3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum: 1 normal,
 *                   2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)
 *   TrainerSpec     3 model_type (1 unigram, 2 BPE, 3 word, 4 char; default
 *                   unigram), 24 treat_whitespace_as_suffix, 40..43
 *                   unk/bos/eos/pad ids (defaults 0, 1, 2, -1); byte_fallback
 *                   (35) needs no reading: the <0xNN> pieces exist exactly
 *                   when it is on
 *   NormalizerSpec  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 *                   4 remove_extra_whitespaces, 5 escape_whitespaces (all
 *                   three default true)
 *
 * and writes it as the tokenizer.ggml.* keys of a "llama" GGUF vocabulary,
 * the keys llama.cpp's convert_hf_to_gguf.py writes for the same file
 * (tokens, scores, token types, special ids, add_space_prefix, plus
 * remove_extra_whitespaces when set). The tokenizer is then built by
 * load_gguf.c's "llama" path, which encodes as sentencepiece does: the merge
 * order comes from the piece scores, byte fallback to <0xNN>, unknown runs
 * fused into one <unk>.
 *
 * Rejected with a message: Unigram, word and char models (only BPE is
 * implemented), treat_whitespace_as_suffix, escape_whitespaces = false, empty
 * or repeated pieces, NaN scores, unknown piece types, and anything malformed:
 * every varint, length and count is checked against the buffer, so a hostile
 * file fails cleanly. Not applied (a warning): a precompiled normalization
 * charsmap (nmt_nfkc rules); Llama-family models use "identity", which has
 * none.
 */
#include "tok_impl.h"

#include <string.h>

/* ---- protobuf wire format ---- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct pb { const uint8_t *p, *end; } pb;

static bool pb_varint(pb *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return false;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false; /* more than 10 bytes */
}

/* The next field's number and wire type; false at the end or when malformed
 * (*bad tells which). */
static bool pb_next(pb *r, uint32_t *field, int *wt, bool *bad)
{
    *bad = false;
    if (r->p >= r->end) return false;
    uint64_t key;
    if (!pb_varint(r, &key) || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) {
        *bad = true;
        return false;
    }
    *field = (uint32_t)(key >> 3);
    *wt = (int)(key & 7);
    return true;
}

static bool pb_len(pb *r, pb *sub)
{
    uint64_t n;
    if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return false;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return true;
}

static bool pb_fixed32(pb *r, uint32_t *v)
{
    if (r->end - r->p < 4) return false;
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
    r->p += 4;
    return true;
}

/* Skips a field of wire type wt (groups, 3 and 4, are not accepted). */
static bool pb_skip(pb *r, int wt)
{
    uint64_t v;
    pb sub;
    switch (wt) {
    case WT_VARINT: return pb_varint(r, &v);
    case WT_I64:
        if (r->end - r->p < 8) return false;
        r->p += 8;
        return true;
    case WT_LEN: return pb_len(r, &sub);
    case WT_I32:
        if (r->end - r->p < 4) return false;
        r->p += 4;
        return true;
    }
    return false;
}

/* A varint field's value as int32 (proto int32/enum: negative values are
 * sign-extended to 64 bits on the wire). */
static bool pb_int32(pb *r, int wt, int32_t *out)
{
    uint64_t v;
    if (wt != WT_VARINT || !pb_varint(r, &v)) return false;
    *out = (int32_t)(uint32_t)v;
    return true;
}

/* ---- ModelProto ---- */

typedef struct specs {
    int32_t model_type, unk, bos, eos, pad;
    bool ws_suffix;
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    bool has_charsmap;
    const uint8_t *norm_name; size_t norm_name_len;
    const uint8_t *charsmap; size_t charsmap_len;
} specs;

typedef struct piece { const char *s; uint32_t len; float score; int32_t type; } piece;

static bool parse_piece(pb r, piece *p)
{
    uint32_t f, u;
    int wt;
    bool bad;
    pb sub;
    *p = (piece){.type = TK_TYPE_NORMAL};
    while (pb_next(&r, &f, &wt, &bad)) {
        if (f == 1 && wt == WT_LEN) {
            if (!pb_len(&r, &sub)) return false;
            p->s = (const char *)sub.p;
            p->len = (uint32_t)(sub.end - sub.p);
        } else if (f == 2 && wt == WT_I32) {
            if (!pb_fixed32(&r, &u)) return false;
            memcpy(&p->score, &u, 4);
        } else if (f == 3) {
            if (!pb_int32(&r, wt, &p->type)) return false;
        } else if (!pb_skip(&r, wt)) {
            return false;
        }
    }
    return !bad;
}

static bool parse_trainer(pb r, specs *sp)
{
    uint32_t f;
    int wt;
    bool bad;
    int32_t v;
    while (pb_next(&r, &f, &wt, &bad)) {
        int32_t *dst = f == 3 ? &sp->model_type : f == 40 ? &sp->unk : f == 41 ? &sp->bos
                     : f == 42 ? &sp->eos : f == 43 ? &sp->pad : NULL;
        bool *flag = f == 24 ? &sp->ws_suffix : NULL;
        if (dst || flag) {
            if (!pb_int32(&r, wt, &v)) return false;
            if (dst) *dst = v;
            else *flag = v != 0;
        } else if (!pb_skip(&r, wt)) {
            return false;
        }
    }
    return !bad;
}

static bool parse_normalizer(pb r, specs *sp)
{
    uint32_t f;
    int wt;
    bool bad;
    int32_t v;
    pb sub;
    while (pb_next(&r, &f, &wt, &bad)) {
        if ((f == 1 || f == 2) && wt == WT_LEN) {
            if (!pb_len(&r, &sub)) return false;
            if (f == 1) {
                sp->norm_name = sub.p;
                sp->norm_name_len = (size_t)(sub.end - sub.p);
            } else {
                sp->has_charsmap = sub.end > sub.p;
                sp->charsmap = sub.p;
                sp->charsmap_len = (size_t)(sub.end - sub.p);
            }
        } else if (f >= 3 && f <= 5) {
            if (!pb_int32(&r, wt, &v)) return false;
            if (f == 3) sp->add_dummy_prefix = v != 0;
            else if (f == 4) sp->remove_extra_ws = v != 0;
            else sp->escape_ws = v != 0;
        } else if (!pb_skip(&r, wt)) {
            return false;
        }
    }
    return !bad;
}

void fc_tok_spm_free(fc_tok_spm *s)
{
    if (!s) return;
    free(s->piece);
    free(s->len);
    free(s->score);
    free(s->type);
    memset(s, 0, sizeof *s);
}

/* An id from the trainer spec: -1 (disabled) or out of range give -1. */
static int32_t spec_id(int32_t id, int32_t n) { return id >= 0 && id < n ? id : -1; }

static enum fc_status spm_parse(const uint8_t *data, size_t size, const char *name, fc_tok_spm *s,
                                bool unigram_ok);

enum fc_status fc_tok_spm_parse(const uint8_t *data, size_t size, const char *name, fc_tok_spm *s)
{
    return spm_parse(data, size, name, s, false);
}

enum fc_status fc_tok_spm_parse_any(const uint8_t *data, size_t size, const char *name, fc_tok_spm *s)
{
    return spm_parse(data, size, name, s, true);
}

static enum fc_status spm_parse(const uint8_t *data, size_t size, const char *name, fc_tok_spm *s,
                                bool unigram_ok)
{
    memset(s, 0, sizeof *s);
    specs sp = {.model_type = 1, .unk = 0, .bos = 1, .eos = 2, .pad = -1,
                .add_dummy_prefix = true, .remove_extra_ws = true, .escape_ws = true};
    pb r = {data, data + size}, sub;
    uint32_t f;
    int wt;
    bool bad;
    const char *what = "malformed protobuf";
    enum fc_status st = FC_ERR_FORMAT;

    /* pass 1: check and count the pieces, read the specs (a message field
     * given twice is merged, as protobuf does) */
    int64_t n = 0;
    piece pc;
    while (pb_next(&r, &f, &wt, &bad)) {
        if (wt == WT_LEN && (f == 1 || f == 2 || f == 3)) {
            if (!pb_len(&r, &sub)) goto fail;
            if (f == 1) {
                if (!parse_piece(sub, &pc)) goto fail;
                n++;
            } else if (f == 2 && !parse_trainer(sub, &sp)) goto fail;
            else if (f == 3 && !parse_normalizer(sub, &sp)) goto fail;
        } else if (!pb_skip(&r, wt)) {
            goto fail;
        }
    }
    if (bad) goto fail;
    if (n == 0) { what = "no pieces (not a SentencePiece model)"; goto fail; }
    if (n >= 1 << 24) { what = "too many pieces"; goto fail; }
    st = FC_ERR_UNSUPPORTED;
    if (sp.model_type != 2 && !(unigram_ok && sp.model_type == 1)) {
        static const char *const kinds[] = {"?", "Unigram", "BPE", "word", "char"};
        FC_LOG_ERROR("%s: a SentencePiece %s model; only BPE models are supported", name,
                     sp.model_type >= 0 && sp.model_type <= 4 ? kinds[sp.model_type] : "unknown");
        goto out;
    }
    if (sp.ws_suffix) { what = "treat_whitespace_as_suffix is not supported"; goto fail; }
    if (!sp.escape_ws) { what = "escape_whitespaces = false is not supported"; goto fail; }
    if (sp.has_charsmap && sp.model_type == 1 && !fc_tok_charsmap_valid(sp.charsmap, sp.charsmap_len)) {
        what = "malformed precompiled_charsmap";
        goto fail;
    }
    if (sp.has_charsmap && sp.model_type == 2)
        FC_LOG_WARN("%s: normalization rules '%.*s' are not applied (text is encoded as given)", name,
                    (int)sp.norm_name_len, (const char *)sp.norm_name);

    /* pass 2: the pieces */
    st = FC_ERR_FORMAT;
    s->n = (int32_t)n;
    s->piece = fc_xcalloc((size_t)n, sizeof(char *));
    s->len = fc_xcalloc((size_t)n, sizeof(uint32_t));
    s->score = fc_xcalloc((size_t)n, sizeof(float));
    s->type = fc_xcalloc((size_t)n, sizeof(int32_t));
    r = (pb){data, data + size};
    int32_t i = 0;
    while (pb_next(&r, &f, &wt, &bad)) {
        if (!(f == 1 && wt == WT_LEN)) {
            pb_skip(&r, wt);
            continue;
        }
        pb_len(&r, &sub);
        parse_piece(sub, &pc);
        s->piece[i] = pc.s;
        s->len[i] = pc.len;
        s->score[i] = pc.score;
        s->type[i] = pc.type;
        if (!s->piece[i] || s->len[i] == 0) {
            FC_LOG_ERROR("%s: piece %d is empty", name, i);
            goto out;
        }
        if (s->type[i] < TK_TYPE_NORMAL || s->type[i] > TK_TYPE_BYTE) {
            FC_LOG_ERROR("%s: piece %d has unknown type %d", name, i, s->type[i]);
            goto out;
        }
        if (s->score[i] != s->score[i]) {
            FC_LOG_ERROR("%s: piece %d has a NaN score", name, i);
            goto out;
        }
        i++;
    }

    /* repeated pieces make the model ambiguous: sentencepiece refuses them */
    fc_tok_strmap m;
    fc_tok_strmap_init(&m, (size_t)n, (const char *const *)s->piece, s->len);
    for (int32_t k = 0; k < s->n; k++) {
        int32_t prev = fc_tok_strmap_get(&m, s->piece[k], s->len[k]);
        if (prev >= 0) {
            FC_LOG_ERROR("%s: piece %d '%.*s' repeats piece %d", name, k, (int)FC_MIN(s->len[k], 64u),
                         s->piece[k], prev);
            fc_tok_strmap_free(&m);
            goto out;
        }
        fc_tok_strmap_put(&m, k);
    }
    fc_tok_strmap_free(&m);

    s->unk = spec_id(sp.unk, s->n);
    s->bos = spec_id(sp.bos, s->n);
    s->eos = spec_id(sp.eos, s->n);
    s->pad = spec_id(sp.pad, s->n);
    /* the model's own word on which piece is unknown wins */
    for (int32_t k = 0; k < s->n; k++)
        if (s->type[k] == TK_TYPE_UNKNOWN) { s->unk = k; break; }
    s->add_dummy_prefix = sp.add_dummy_prefix;
    s->remove_extra_ws = sp.remove_extra_ws;
    s->model_type = sp.model_type;
    s->charsmap = sp.has_charsmap ? sp.charsmap : NULL;
    s->charsmap_len = sp.has_charsmap ? sp.charsmap_len : 0;
    return FC_OK;
fail:
    FC_LOG_ERROR("%s: %s", name, what);
out:
    fc_tok_spm_free(s);
    return st;
}

/* ---- as GGUF metadata ---- */

int32_t fc_tok_spm_find(const fc_tok_spm *s, const fc_tok_extra_token *extra, int n_extra, const char *str, size_t n)
{
    for (int k = n_extra - 1; k >= 0; k--)
        if (extra[k].len == n && !memcmp(extra[k].text, str, n)) return extra[k].id;
    for (int32_t i = 0; i < s->n; i++)
        if (s->len[i] == n && !memcmp(s->piece[i], str, n)) return i;
    return -1;
}

int32_t fc_tok_spm_write(const fc_tok_spm *s, const fc_tok_extra_token *extra, int n_extra, fc_gguf_writer *w)
{
    int32_t n = s->n;
    for (int k = 0; k < n_extra; k++) n = FC_MAX(n, extra[k].id + 1);
    const char **tok = fc_xcalloc((size_t)n, sizeof(char *));
    size_t *len = fc_xcalloc((size_t)n, sizeof(size_t));
    float *score = fc_xcalloc((size_t)n, sizeof(float));
    int32_t *type = fc_xcalloc((size_t)n, sizeof(int32_t));
    for (int32_t i = 0; i < s->n; i++) {
        tok[i] = s->piece[i];
        len[i] = s->len[i];
        score[i] = s->score[i];
        type[i] = s->type[i];
    }
    for (int k = 0; k < n_extra; k++) {
        const fc_tok_extra_token *e = &extra[k];
        if (e->id < s->n) continue; /* the model's own pieces win */
        tok[e->id] = e->text;
        len[e->id] = e->len;
        type[e->id] = e->special ? TK_TYPE_CONTROL : TK_TYPE_USER_DEFINED;
    }
    char *pads = NULL;
    size_t n_pads = 0;
    for (int32_t i = s->n; i < n; i++) n_pads += !tok[i];
    if (n_pads) {
        /* "[PAD<id>]": at most 9 + 8 digits */
        pads = fc_xmalloc(n_pads * 20);
        char *p = pads;
        for (int32_t i = s->n; i < n; i++) {
            if (tok[i]) continue;
            int l = snprintf(p, 20, "[PAD%d]", (int)i);
            tok[i] = p;
            len[i] = (size_t)l;
            type[i] = TK_TYPE_UNUSED;
            p += 20;
        }
    }
    fc_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", 5);
    fc_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default", 7);
    fc_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, len, (uint64_t)n);
    fc_gguf_writer_set_arr(w, "tokenizer.ggml.scores", FC_GGUF_FLOAT32, score, (uint64_t)n);
    fc_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FC_GGUF_INT32, type, (uint64_t)n);
    if (s->bos >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)s->bos);
    if (s->eos >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)s->eos);
    if (s->unk >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)s->unk);
    if (s->pad >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)s->pad);
    fc_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", s->add_dummy_prefix);
    if (s->remove_extra_ws) fc_gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true);
    free(tok);
    free(len);
    free(score);
    free(type);
    free(pads);
    return n;
}

fc_tokenizer *fc_tokenizer_from_spm(const void *data, size_t size, const char *name)
{
    fc_tok_spm s;
    if (!name) name = "tokenizer.model";
    if (fc_tok_spm_parse_any(data, size, name, &s) != FC_OK) return NULL;
    if (s.model_type == 1) {
        fc_tokenizer *u = fc_tok_unigram_from_spm(&s, NULL, 0, name);
        fc_tok_spm_free(&s);
        if (u && fc_tok_finish(u) != FC_OK) {
            fc_tokenizer_free(u);
            u = NULL;
        }
        return u;
    }
    fc_gguf_writer *w = fc_gguf_writer_new();
    fc_tok_spm_write(&s, NULL, 0, w);
    fc_tokenizer *t = fc_tok_from_writer(w, name);
    fc_gguf_writer_free(w);
    fc_tok_spm_free(&s);
    return t;
}
