/*
 * export_hf.c: fc_tokenizer -> a Hugging Face tokenizer.json (the `tokenizers`
 * library's serialization), for `fastchat convert` GGUF -> HF folder. The
 * inverse of load_hf.c for the pipelines the loaders build: every
 * normalizer, pre-tokenizer and decoder step of the tokenizer is written as
 * the `tokenizers` step of the same meaning, so a tokenizer loaded from a
 * GGUF file (load_gguf.c turns tokenizer.ggml.pre / add_space_prefix into
 * such steps) comes out as:
 *   byte-level BPE ("gpt2"): the ByteLevel / Digits / Split(regex) chain of
 *     its pre name, a ByteLevel decoder, the merges in rank order;
 *   SentencePiece-style ("llama"): what transformers' fast Llama tokenizer
 *     stores: Prepend("▁") + Replace(" ", "▁") normalizers, a BPE model with
 *     byte_fallback and fuse_unk, the merges (from the scores, as load_gguf.c
 *     orders them, or as the GGUF listed them), and the decoder
 *     Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0).
 * Added tokens keep their flags (special, normalized, lstrip, rstrip,
 * single_word); the post-processor is a TemplateProcessing of the BOS / EOS
 * tokens the tokenizer adds. Merges are written as [left, right] pairs
 * (tokenizers >= 0.20), which holds tokens with spaces.
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

static void put_text(fc_str *s, const fc_tokenizer *t, int32_t id)
{
    fc_json_put_strn(s, t->text[id] ? t->text[id] : "", t->text[id] ? t->text_len[id] : 0);
}

static void put_cp(fc_str *s, uint32_t cp)
{
    char b[4];
    int n = fc_utf8_encode(cp, b);
    fc_json_put_strn(s, b, (size_t)(n > 0 ? n : 0));
}

static const char *prepend_name(enum fc_tok_prepend p)
{
    return p == TK_PREPEND_ALWAYS ? "always" : p == TK_PREPEND_FIRST ? "first" : "never";
}

/* false when a step cannot be written (a regex whose source we lack) */
static bool put_norm(fc_str *s, const fc_tok_norm *n, int *sp_ws_seen)
{
    switch (n->kind) {
    case TK_NORM_PRECOMPILED: case TK_NORM_SPM: return false; /* Unigram: not exported */
    case TK_NORM_NFC: fc_str_puts(s, "{\"type\":\"NFC\"}"); return true;
    case TK_NORM_NFD: fc_str_puts(s, "{\"type\":\"NFD\"}"); return true;
    case TK_NORM_NFKC: fc_str_puts(s, "{\"type\":\"NFKC\"}"); return true;
    case TK_NORM_NFKD: fc_str_puts(s, "{\"type\":\"NFKD\"}"); return true;
    case TK_NORM_LOWER: fc_str_puts(s, "{\"type\":\"Lowercase\"}"); return true;
    case TK_NORM_PREPEND:
        fc_str_puts(s, "{\"type\":\"Prepend\",\"prepend\":");
        fc_json_put_strn(s, n->a, n->a_len);
        fc_str_putc(s, '}');
        return true;
    case TK_NORM_STRIP:
        fc_str_printf(s, "{\"type\":\"Strip\",\"strip_left\":%s,\"strip_right\":%s}", n->left ? "true" : "false",
                      n->right ? "true" : "false");
        return true;
    case TK_NORM_REPLACE:
        fc_str_puts(s, "{\"type\":\"Replace\",\"pattern\":{");
        if (n->re) {
            /* the two regex steps load_gguf.c makes for remove_extra_whitespaces */
            static const char *const pats[2] = {"^ +| +$", " {2,}"};
            if (!n->sp_ws || *sp_ws_seen >= 2) return false;
            fc_str_puts(s, "\"Regex\":");
            fc_json_put_str(s, pats[(*sp_ws_seen)++]);
        } else {
            fc_str_puts(s, "\"String\":");
            fc_json_put_strn(s, n->a, n->a_len);
        }
        fc_str_puts(s, "},\"content\":");
        fc_json_put_strn(s, n->b, n->b_len);
        fc_str_putc(s, '}');
        return true;
    }
    return false;
}

static bool put_pre(fc_str *s, const fc_tok_pre *p)
{
    static const char *const behavior[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                           "Contiguous"};
    switch (p->kind) {
    case TK_PRE_SPLIT:
        if (!p->pat) return false;
        fc_str_puts(s, "{\"type\":\"Split\",\"pattern\":{\"Regex\":");
        fc_json_put_str(s, p->pat);
        fc_str_printf(s, "},\"behavior\":\"%s\",\"invert\":%s}", behavior[p->behavior], p->invert ? "true" : "false");
        return true;
    case TK_PRE_DIGITS:
        fc_str_printf(s, "{\"type\":\"Digits\",\"individual_digits\":%s}", p->individual ? "true" : "false");
        return true;
    case TK_PRE_WSPLIT: fc_str_puts(s, "{\"type\":\"WhitespaceSplit\"}"); return true;
    case TK_PRE_BYTELEVEL:
        fc_str_printf(s, "{\"type\":\"ByteLevel\",\"add_prefix_space\":%s,\"trim_offsets\":true,\"use_regex\":%s}",
                      p->add_prefix_space ? "true" : "false", p->re ? "true" : "false");
        return true;
    case TK_PRE_METASPACE:
        fc_str_puts(s, "{\"type\":\"Metaspace\",\"replacement\":");
        put_cp(s, p->repl);
        fc_str_printf(s, ",\"prepend_scheme\":\"%s\",\"split\":%s}", prepend_name(p->prepend),
                      p->split ? "true" : "false");
        return true;
    }
    return false;
}

static void put_dec(fc_str *s, const fc_tok_dec *d)
{
    switch (d->kind) {
    case TK_DEC_BYTELEVEL:
        fc_str_puts(s, "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true}");
        break;
    case TK_DEC_REPLACE:
        fc_str_puts(s, "{\"type\":\"Replace\",\"pattern\":{\"String\":");
        fc_json_put_strn(s, d->a, d->a_len);
        fc_str_puts(s, "},\"content\":");
        fc_json_put_strn(s, d->b, d->b_len);
        fc_str_putc(s, '}');
        break;
    case TK_DEC_BYTEFALLBACK: fc_str_puts(s, "{\"type\":\"ByteFallback\"}"); break;
    case TK_DEC_FUSE: fc_str_puts(s, "{\"type\":\"Fuse\"}"); break;
    case TK_DEC_STRIP:
        fc_str_puts(s, "{\"type\":\"Strip\",\"content\":");
        put_cp(s, d->cp);
        fc_str_printf(s, ",\"start\":%d,\"stop\":%d}", d->start, d->stop);
        break;
    case TK_DEC_METASPACE:
        fc_str_puts(s, "{\"type\":\"Metaspace\",\"replacement\":");
        put_cp(s, d->cp);
        fc_str_printf(s, ",\"prepend_scheme\":\"%s\",\"split\":true}", prepend_name(d->prepend));
        break;
    }
}

static void put_template(fc_str *s, const fc_tokenizer *t, bool pair)
{
    fc_str_putc(s, '[');
    bool first = true;
    for (int k = 0; k < (pair ? 2 : 1); k++) {
        for (int i = 0; i < t->n_prefix; i++) {
            fc_str_puts(s, first ? "{\"SpecialToken\":{\"id\":" : ",{\"SpecialToken\":{\"id\":");
            put_text(s, t, t->prefix[i]);
            fc_str_printf(s, ",\"type_id\":%d}}", k);
            first = false;
        }
        fc_str_printf(s, "%s{\"Sequence\":{\"id\":\"%s\",\"type_id\":%d}}", first ? "" : ",", k ? "B" : "A", k);
        first = false;
        for (int i = 0; i < t->n_suffix; i++) {
            fc_str_puts(s, ",{\"SpecialToken\":{\"id\":");
            put_text(s, t, t->suffix[i]);
            fc_str_printf(s, ",\"type_id\":%d}}", k);
        }
    }
    fc_str_putc(s, ']');
}

static int cmp_rank(const void *a, const void *b)
{
    const fc_tok_merge *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

char *fc_tokenizer_to_hf_json(const fc_tokenizer *t, size_t *len)
{
    if (t->uni) {
        FC_LOG_ERROR("%s: a Unigram tokenizer (T5): tokenizer.json export is not implemented", t->name);
        return NULL;
    }
    fc_str s = FC_STR_INIT;
    fc_str_puts(&s, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[");
    for (int i = 0; i < t->n_added; i++) {
        const fc_tok_added *a = &t->added[i];
        fc_str_printf(&s, "%s{\"id\":%d,\"content\":", i ? "," : "", a->id);
        fc_json_put_strn(&s, a->content, a->len);
        fc_str_printf(&s, ",\"single_word\":%s,\"lstrip\":%s,\"rstrip\":%s,\"normalized\":%s,\"special\":%s}",
                      a->single_word ? "true" : "false", a->lstrip ? "true" : "false", a->rstrip ? "true" : "false",
                      a->normalized ? "true" : "false", a->special ? "true" : "false");
    }
    fc_str_puts(&s, "],\"normalizer\":");
    int sp_ws = 0;
    if (t->n_norm == 0) fc_str_puts(&s, "null");
    else {
        fc_str_puts(&s, "{\"type\":\"Sequence\",\"normalizers\":[");
        for (int i = 0; i < t->n_norm; i++) {
            if (i) fc_str_putc(&s, ',');
            if (!put_norm(&s, &t->norm[i], &sp_ws)) goto unsupported;
        }
        fc_str_puts(&s, "]}");
    }
    fc_str_puts(&s, ",\"pre_tokenizer\":");
    if (t->n_pre == 0) fc_str_puts(&s, "null");
    else {
        fc_str_puts(&s, "{\"type\":\"Sequence\",\"pretokenizers\":[");
        for (int i = 0; i < t->n_pre; i++) {
            if (i) fc_str_putc(&s, ',');
            if (!put_pre(&s, &t->pre[i])) goto unsupported;
        }
        fc_str_puts(&s, "]}");
    }
    fc_str_puts(&s, ",\"post_processor\":");
    if (t->n_prefix == 0 && t->n_suffix == 0) {
        fc_str_puts(&s, t->byte_level ? "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":false,"
                                        "\"use_regex\":true}"
                                      : "null");
    } else {
        fc_str_puts(&s, "{\"type\":\"TemplateProcessing\",\"single\":");
        put_template(&s, t, false);
        fc_str_puts(&s, ",\"pair\":");
        put_template(&s, t, true);
        fc_str_puts(&s, ",\"special_tokens\":{");
        int32_t ids[2] = {t->n_prefix ? t->prefix[0] : -1, t->n_suffix ? t->suffix[0] : -1};
        bool any = false;
        for (int k = 0; k < 2; k++) {
            if (ids[k] < 0 || (k == 1 && ids[1] == ids[0])) continue;
            if (any) fc_str_putc(&s, ',');
            put_text(&s, t, ids[k]);
            fc_str_puts(&s, ":{\"id\":");
            put_text(&s, t, ids[k]);
            fc_str_printf(&s, ",\"ids\":[%d],\"tokens\":[", ids[k]);
            put_text(&s, t, ids[k]);
            fc_str_puts(&s, "]}");
            any = true;
        }
        fc_str_puts(&s, "}}");
    }
    fc_str_puts(&s, ",\"decoder\":");
    if (!t->has_decoder || t->n_dec == 0) fc_str_puts(&s, "null");
    else {
        fc_str_puts(&s, "{\"type\":\"Sequence\",\"decoders\":[");
        for (int i = 0; i < t->n_dec; i++) {
            if (i) fc_str_putc(&s, ',');
            put_dec(&s, &t->dec[i]);
        }
        fc_str_puts(&s, "]}");
    }
    fc_str_puts(&s, ",\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":");
    if (t->model_unk >= 0) put_text(&s, t, t->model_unk);
    else fc_str_puts(&s, "null");
    fc_str_printf(&s, ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":%s,"
                      "\"byte_fallback\":%s,\"ignore_merges\":%s,\"vocab\":{",
                  t->fuse_unk ? "true" : "false", t->byte_fallback ? "true" : "false",
                  t->ignore_merges ? "true" : "false");
    bool first = true;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->text[id]) continue;
        if (!first) fc_str_putc(&s, ',');
        put_text(&s, t, id);
        fc_str_printf(&s, ":%d", id);
        first = false;
    }
    fc_str_puts(&s, "},\"merges\":[");
    size_t n_m = 0;
    fc_tok_merge *m = fc_xmalloc(sizeof *m * (t->merges.n + 1));
    if (t->merges.slot)
        for (uint32_t i = 0; i <= t->merges.mask; i++)
            if (t->merges.slot[i].rank >= 0 && n_m < t->merges.n + 1) m[n_m++] = t->merges.slot[i];
    qsort(m, n_m, sizeof *m, cmp_rank);
    for (size_t i = 0; i < n_m; i++) {
        fc_str_puts(&s, i ? ",[" : "[");
        put_text(&s, t, (int32_t)(m[i].key >> 32));
        fc_str_putc(&s, ',');
        put_text(&s, t, (int32_t)(uint32_t)m[i].key);
        fc_str_putc(&s, ']');
    }
    free(m);
    fc_str_puts(&s, "]}}\n");
    if (fc_str_failed(&s)) {
        FC_LOG_ERROR("%s: out of memory writing tokenizer.json", t->name);
        fc_str_free(&s);
        return NULL;
    }
    *len = fc_str_len(&s);
    return fc_str_take(&s);
unsupported:
    FC_LOG_ERROR("%s: a step of the tokenizer's pipeline cannot be written as tokenizer.json", t->name);
    fc_str_free(&s);
    return NULL;
}
