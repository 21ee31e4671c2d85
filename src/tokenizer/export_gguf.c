/*
 * export_gguf.c: fc_tokenizer -> the tokenizer.ggml.* metadata of a GGUF
 * file, as llama.cpp's convert_hf_to_gguf.py writes it (tokenizer.h lists the
 * keys). The inverse of load_gguf.c: loading what is written here gives back
 * a tokenizer that encodes the same way, except for what GGUF cannot say
 * (tokenizer.h; each such loss is warned about once).
 *
 * How a tokenizer.json pipeline maps to llama.cpp's names:
 *   byte-level BPE ("gpt2"): the pre-tokenizer chain and normalizer select
 *     tokenizer.ggml.pre (the split regexes llama.cpp hard-codes per name):
 *       ByteLevel(use_regex)                          gpt-2
 *       Digits(individual), ByteLevel(use_regex)      smollm (SmolLM2)
 *       Split(Llama-3 regex), ByteLevel               llama-bpe
 *       NFC; Split(Qwen2 regex), ByteLevel            qwen2
 *   SentencePiece-style BPE ("llama"): Prepend("▁") + Replace(" ", "▁")
 *     normalizers (Llama-2's tokenizer.json) or a Metaspace pre-tokenizer
 *     (newer files); add_space_prefix says whether "▁" is prepended.
 *     llama.cpp orders SentencePiece merges by the score of the merged
 *     token, so a tokenizer that has no scores (tokenizer.json) gets
 *     score = -rank of the first merge that produces the token, and its
 *     merges are written too (load_gguf.c then uses them as they are); so
 *     are the merges of a GGUF that had them.
 * Added tokens: special ones are CONTROL, others USER_DEFINED (spelled with
 * " " for "▁" in "llama" vocabularies, as the converter does, because
 * llama.cpp matches them in the raw text); the GGUF token text of an added
 * id is the added token's content.
 */
#include "tok_impl.h"

#include <string.h>

static const char SPM_SPACE[] = "\xE2\x96\x81"; /* U+2581 "▁" */

static bool is_str(const char *s, size_t n, const char *lit) { return n == strlen(lit) && !memcmp(s, lit, n); }

/* ---- which llama.cpp names fit ---- */

/* tokenizer.ggml.pre of a byte-level tokenizer; *exact false when the GGUF
 * form will split differently. */
static const char *bpe_pre_name(const fc_tokenizer *t, bool *exact)
{
    const fc_tok_pre *p = t->pre;
    bool nfc = t->n_norm == 1 && t->norm[0].kind == TK_NORM_NFC;
    bool no_norm = t->n_norm == 0;
    const char *name = NULL;
    bool ignore_merges = false;
    for (int i = 0; i < t->n_pre; i++)
        if (p[i].kind == TK_PRE_BYTELEVEL && p[i].add_prefix_space) goto other;
    if (t->n_pre == 1 && p[0].kind == TK_PRE_BYTELEVEL && p[0].re && no_norm) {
        name = "gpt-2";
    } else if (t->n_pre == 2 && p[0].kind == TK_PRE_DIGITS && p[0].individual &&
               p[1].kind == TK_PRE_BYTELEVEL && p[1].re && no_norm) {
        name = "smollm";
    } else if (t->n_pre == 2 && p[0].kind == TK_PRE_SPLIT && p[0].pat && !p[0].invert &&
               p[0].behavior == TK_ISOLATED && p[1].kind == TK_PRE_BYTELEVEL && !p[1].re) {
        if (!strcmp(p[0].pat, TK_LLAMA3_PATTERN) && no_norm) {
            name = "llama-bpe";
            ignore_merges = true;
        } else if (!strcmp(p[0].pat, TK_QWEN2_PATTERN) && nfc) {
            name = "qwen2";
        }
    }
    if (name) {
        *exact = ignore_merges == t->ignore_merges;
        return name;
    }
other:
    *exact = false;
    return "gpt-2";
}

typedef struct spm_shape { bool space_prefix, remove_ws, exact; } spm_shape;

/* Whether t is a SentencePiece-style BPE and how; false when it is not. */
static bool spm_shape_of(const fc_tokenizer *t, spm_shape *sh)
{
    bool meta = false, escape = false;
    *sh = (spm_shape){.exact = true};
    if (t->byte_level) return false;
    for (int i = 0; i < t->n_pre; i++) {
        if (t->pre[i].kind != TK_PRE_METASPACE || t->pre[i].repl != 0x2581) return false;
        meta = true;
        sh->space_prefix = t->pre[i].prepend != TK_PREPEND_NEVER;
    }
    for (int i = 0; i < t->n_norm; i++) {
        const fc_tok_norm *nm = &t->norm[i];
        if (nm->sp_ws) sh->remove_ws = true;
        else if (nm->kind == TK_NORM_PREPEND && is_str(nm->a, nm->a_len, SPM_SPACE)) sh->space_prefix = true;
        else if (nm->kind == TK_NORM_REPLACE && !nm->re && is_str(nm->a, nm->a_len, " ") &&
                 is_str(nm->b, nm->b_len, SPM_SPACE)) escape = true;
        else sh->exact = false;
    }
    return meta || escape;
}

/* ---- writing ---- */

typedef struct merge_row { int32_t rank, a, b, id; } merge_row;

static int merge_row_cmp(const void *pa, const void *pb)
{
    const merge_row *a = pa, *b = pb;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

/* The merges in rank order (from the pair map); *n gets the count. */
static merge_row *merges_by_rank(const fc_tokenizer *t, size_t *n)
{
    const fc_tok_mergemap *m = &t->merges;
    merge_row *v = fc_xmalloc(sizeof(merge_row) * (m->n ? m->n : 1));
    size_t k = 0;
    if (m->slot)
        for (uint32_t i = 0; i <= m->mask; i++)
            if (m->slot[i].rank >= 0)
                v[k++] = (merge_row){m->slot[i].rank, (int32_t)(m->slot[i].key >> 32),
                                     (int32_t)(uint32_t)m->slot[i].key, m->slot[i].id};
    qsort(v, k, sizeof(merge_row), merge_row_cmp);
    *n = k;
    return v;
}

enum fc_status fc_tokenizer_to_gguf(const fc_tokenizer *t, fc_gguf_writer *w)
{
    return fc_tokenizer_to_gguf_padded(t, 0, w);
}

enum fc_status fc_tokenizer_to_gguf_padded(const fc_tokenizer *t, int32_t n_vocab, fc_gguf_writer *w)
{
    if (t->uni) {
        FC_LOG_ERROR("%s: a Unigram tokenizer (T5): GGUF export is not implemented", t->name);
        return FC_ERR_UNSUPPORTED;
    }
    spm_shape sh;
    bool bpe = t->byte_level, spm = spm_shape_of(t, &sh);
    if (!bpe && !spm) {
        FC_LOG_ERROR("%s: neither a byte-level nor a SentencePiece-style BPE tokenizer: GGUF (llama.cpp) "
                     "has no form for it", t->name);
        return FC_ERR_UNSUPPORTED;
    }
    int32_t n = FC_MAX(t->n_vocab, n_vocab);

    /* the added token of each id (the last one given wins, as in loading) */
    const fc_tok_added **added = fc_xcalloc((size_t)t->n_vocab, sizeof(fc_tok_added *));
    bool flags_lost = false;
    for (int i = 0; i < t->n_added; i++) {
        const fc_tok_added *a = &t->added[i];
        added[a->id] = a;
        flags_lost |= a->lstrip || a->rstrip || a->single_word || (a->normalized && t->n_norm > 0);
    }
    uint8_t *is_byte = fc_xcalloc((size_t)t->n_vocab, 1);
    if (spm && t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_tok[b] >= 0) is_byte[t->byte_tok[b]] = 1;

    /* token texts: offsets into sb, made pointers once sb stops moving */
    fc_str sb = {0};
    size_t *off = fc_xmalloc(sizeof(size_t) * (size_t)n);
    size_t *len = fc_xmalloc(sizeof(size_t) * (size_t)n);
    int32_t *type = fc_xmalloc(sizeof(int32_t) * (size_t)n);
    for (int32_t id = 0; id < n; id++) {
        off[id] = sb.len;
        const fc_tok_added *a = id < t->n_vocab ? added[id] : NULL;
        if (id >= t->n_vocab || !t->text[id]) {
            char pad[32];
            int l = snprintf(pad, sizeof pad, "[PAD%d]", (int)id);
            fc_str_putn(&sb, pad, (size_t)l);
            type[id] = TK_TYPE_UNUSED;
        } else if (a) {
            if (spm && !a->special) {
                /* llama.cpp matches user-defined tokens in the raw text */
                for (size_t i = 0; i < a->len;) {
                    if (i + 3 <= a->len && !memcmp(a->content + i, SPM_SPACE, 3)) {
                        fc_str_putc(&sb, ' ');
                        i += 3;
                    } else {
                        fc_str_putc(&sb, a->content[i++]);
                    }
                }
            } else {
                fc_str_putn(&sb, a->content, a->len);
            }
            type[id] = a->special ? TK_TYPE_CONTROL : TK_TYPE_USER_DEFINED;
        } else {
            fc_str_putn(&sb, t->text[id], t->text_len[id]);
            type[id] = is_byte[id] ? TK_TYPE_BYTE : TK_TYPE_NORMAL;
        }
        if (spm && id == t->unk) type[id] = TK_TYPE_UNKNOWN;
        len[id] = sb.len - off[id];
    }
    const char **tok = fc_xmalloc(sizeof(char *) * (size_t)n);
    for (int32_t id = 0; id < n; id++) tok[id] = sb.p ? sb.p + off[id] : "";

    /* merges that the texts written above can express: "a b" with a free of
     * spaces (both llama.cpp and load_gguf.c split at the first space) and
     * text(a) + text(b) == text(merged) */
    size_t n_m, n_ok = 0, n_lost = 0;
    merge_row *mr = merges_by_rank(t, &n_m);
    bool write_merges = bpe || !t->scores || !t->merges_from_scores;
    fc_str mb = {0};
    size_t *moff = fc_xmalloc(sizeof(size_t) * (n_m ? n_m : 1));
    size_t *mlen = fc_xmalloc(sizeof(size_t) * (n_m ? n_m : 1));
    for (size_t i = 0; i < n_m && write_merges; i++) {
        int32_t a = mr[i].a, b = mr[i].b, c = mr[i].id;
        if (len[a] == 0 || len[b] == 0 || memchr(tok[a], ' ', len[a]) || len[a] + len[b] != len[c] ||
            memcmp(tok[a], tok[c], len[a]) || memcmp(tok[b], tok[c] + len[a], len[b])) {
            n_lost++;
            continue;
        }
        moff[n_ok] = mb.len;
        fc_str_putn(&mb, tok[a], len[a]);
        fc_str_putc(&mb, ' ');
        fc_str_putn(&mb, tok[b], len[b]);
        mlen[n_ok] = mb.len - moff[n_ok];
        n_ok++;
    }
    const char **mstr = fc_xmalloc(sizeof(char *) * (n_ok ? n_ok : 1));
    for (size_t i = 0; i < n_ok; i++) mstr[i] = mb.p + moff[i];

    /* scores (SentencePiece): the model's, else from the merge ranks */
    float *score = NULL;
    if (spm) {
        score = fc_xcalloc((size_t)n, sizeof(float));
        if (t->scores) {
            memcpy(score, t->scores, sizeof(float) * (size_t)t->n_vocab);
        } else {
            bool *made = fc_xcalloc((size_t)n, sizeof(bool));
            for (size_t i = 0; i < n_m; i++)
                if (!made[mr[i].id]) {
                    made[mr[i].id] = true;
                    score[mr[i].id] = -(float)mr[i].rank;
                }
            /* tokens no merge makes (single characters...) rank below all */
            float low = -(float)(n_m ? mr[n_m - 1].rank + 1 : 0);
            for (int32_t id = 0; id < n; id++)
                if (!made[id] && type[id] == TK_TYPE_NORMAL) score[id] = low - (float)id;
            free(made);
        }
    }

    /* what is lost */
    bool pre_exact = true;
    const char *pre = bpe ? bpe_pre_name(t, &pre_exact) : "default";
    if (!pre_exact)
        FC_LOG_WARN("%s: the pre-tokenizer has no llama.cpp name; written as tokenizer.ggml.pre \"%s\", "
                    "which may split text differently", t->name, pre);
    if (spm && !sh.exact)
        FC_LOG_WARN("%s: a normalizer that GGUF cannot say is dropped; the GGUF may tokenize "
                    "differently", t->name);
    if (flags_lost)
        FC_LOG_WARN("%s: added-token flags (lstrip, rstrip, single_word, normalized) are lost in GGUF",
                    t->name);
    if (n_lost)
        FC_LOG_WARN("%s: %zu of %zu merges cannot be written as \"a b\" and are dropped", t->name, n_lost, n_m);
    bool add_bos = fc_tokenizer_adds_bos(t), add_eos = fc_tokenizer_adds_eos(t);
    if (t->n_prefix > (int)add_bos || t->n_suffix > (int)add_eos)
        FC_LOG_WARN("%s: the post-processor adds more than BOS/EOS; GGUF keeps only those", t->name);

    /* the keys */
    fc_gguf_writer_set_str(w, "tokenizer.ggml.model", bpe ? "gpt2" : "llama", bpe ? 4 : 5);
    fc_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre, strlen(pre));
    fc_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tok, len, (uint64_t)n);
    if (score) fc_gguf_writer_set_arr(w, "tokenizer.ggml.scores", FC_GGUF_FLOAT32, score, (uint64_t)n);
    fc_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", FC_GGUF_INT32, type, (uint64_t)n);
    if (write_merges) fc_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", mstr, mlen, (uint64_t)n_ok);
    if (t->bos >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (t->eos >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    if (t->unk >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
    if (t->pad >= 0) fc_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)t->pad);
    fc_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    fc_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
    if (spm) {
        fc_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", sh.space_prefix);
        if (sh.remove_ws) fc_gguf_writer_set_bool(w, "tokenizer.ggml.remove_extra_whitespaces", true);
    }
    if (t->chat_template)
        fc_gguf_writer_set_str(w, "tokenizer.chat_template", t->chat_template, strlen(t->chat_template));

    free(added);
    free(is_byte);
    fc_str_free(&sb);
    free(off);
    free(len);
    free(type);
    free(tok);
    free(mr);
    fc_str_free(&mb);
    free(moff);
    free(mlen);
    free(mstr);
    free(score);
    return FC_OK;
}
