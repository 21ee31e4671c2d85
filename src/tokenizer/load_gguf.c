/*
 * load_gguf.c: fc_tokenizer from a GGUF file's tokenizer.ggml.* metadata.
 *
 * A GGUF holds no tokenizer.json; the pipeline is rebuilt the way
 * transformers' GGUF loader and llama.cpp read these keys, and set to what
 * the model's own tokenizer.json says where we know it:
 *
 *   model "gpt2"   byte-level BPE with the given merges; no unk token. The
 *                  split regex comes from tokenizer.ggml.pre:
 *                    gpt2, default, (none)      GPT-2's (ByteLevel use_regex)
 *                    smollm, starcoder, refact, command-r, codeshell, exaone,
 *                    minerva                    Digits(individual) then GPT-2's
 *                                               (SmolLM2's tokenizer.json)
 *                    llama3, llama-bpe, llama-v3, falcon3, pixtral, smaug-bpe,
 *                    dbrx, ...                  Llama-3's, with ignore_merges
 *                    qwen2, deepseek-r1-qwen, megrez, ...  Qwen2's, after an NFC
 *                                               normalizer (Qwen2's tokenizer.json)
 *                  others fall back to GPT-2's with a warning.
 *   model "llama"  SentencePiece BPE as sentencepiece itself and llama.cpp run
 *                  it, which is Llama-2's original tokenizer.json shape: the
 *                  normalizer prepends "▁" to every span of text (the one
 *                  after a special token too; unless
 *                  tokenizer.ggml.add_space_prefix is false) and turns spaces
 *                  into "▁"; byte_fallback, fuse_unk; merges from
 *                  tokenizer.ggml.merges or, as transformers' generate_merges
 *                  does, every split of every token into two tokens, ordered by
 *                  the token's score (then longer left part, longer right
 *                  part, token order); decoder Replace("▁"," "), ByteFallback,
 *                  Fuse, Strip(1 left). tokenizer.ggml.remove_extra_whitespaces
 *                  (written for sentencepiece models that set it) first drops
 *                  leading and trailing spaces and squeezes runs of spaces, as
 *                  sentencepiece's normalizer does. (transformers 5's GGUF loader uses
 *                  Metaspace(prepend "first") instead, which differs after
 *                  special tokens and on text that starts with a space;
 *                  sentencepiece agrees with the shape used here.)
 *   model "t5"     SentencePiece Unigram (T5, Flan-T5, FastChat-T5), as
 *                  llama.cpp's converter writes spiece.model: see
 *                  t5_from_gguf below.
 * Tokens of type CONTROL (3) are special added tokens, USER_DEFINED (4) plain
 * added tokens, and the bos/eos/unk/padding tokens are special too.
 * add_bos_token defaults to true for "llama" and false for "gpt2".
 */
#include "tok_impl.h"

#include <math.h>
#include <string.h>


static bool in_list(const char *s, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && !memcmp(*list, s, n)) return true;
    return false;
}

static const char *const PRE_DIGITS[] = {"smollm", "starcoder", "refact", "command-r", "codeshell",
                                         "exaone", "minerva", NULL};
static const char *const PRE_LLAMA3[] = {"llama3", "llama-bpe", "llama-v3", "falcon3", "falcon-h1",
                                         "pixtral", "smaug-bpe", "dbrx", "midm-2.0", "lfm2", NULL};
static const char *const PRE_QWEN2[] = {"qwen2", "deepseek-r1-qwen", "megrez", "kormo", NULL};
static const char *const PRE_GPT2[] = {"gpt2", "default", "gpt-2", NULL};

static char *dup_n(const char *s, size_t n)
{
    char *d = fc_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static bool add_regex_pre(fc_tokenizer *t, enum fc_tok_pre_kind kind, const char *pat)
{
    fc_tok_pre p = {0};
    p.kind = kind;
    p.behavior = TK_ISOLATED;
    if (pat) {
        p.re = fc_tok_regex_compile(pat, strlen(pat), TK_RE_ONIG);
        if (!p.re) return false;
        if (kind == TK_PRE_SPLIT) p.pat = dup_n(pat, strlen(pat));
    }
    t->pre = fc_xrealloc(t->pre, (size_t)(t->n_pre + 1) * sizeof(fc_tok_pre));
    t->pre[t->n_pre++] = p;
    return true;
}

static void add_dec(fc_tokenizer *t, fc_tok_dec d)
{
    t->dec = fc_xrealloc(t->dec, (size_t)(t->n_dec + 1) * sizeof(fc_tok_dec));
    t->dec[t->n_dec++] = d;
}

/* ---- SentencePiece merges from scores (transformers' generate_merges) ---- */

typedef struct cand { float score; int32_t lenl, lenr, seq; int32_t l, r; } cand;

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->lenl != b->lenl) return a->lenl > b->lenl ? -1 : 1;
    if (a->lenr != b->lenr) return a->lenr > b->lenr ? -1 : 1;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static int cand_lr_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->l != b->l) return a->l < b->l ? -1 : 1;
    return (a->r > b->r) - (a->r < b->r);
}

static void merges_from_scores(fc_tokenizer *t, const float *scores)
{
    cand *c = NULL;
    size_t n = 0, cap = 0;
    int32_t seq = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = t->text[id];
        size_t len = t->text_len[id];
        if (!s || !(t->flags[id] & TK_F_MODEL) || !fc_utf8_valid(s, len)) continue;
        /* Python walks a dict of the token texts: a repeated text is visited
         * once (here at its last id, whose score the dict keeps). */
        if (fc_tok_vocab_text_id(t, s, len) != id) continue;
        size_t first = n;
        size_t total = fc_utf8_count(s, len);
        size_t i = 0, k = 0;
        while (i < len) {
            int l = fc_utf8_len((const uint8_t *)s + i, len - i);
            i += (size_t)l;
            k++;
            if (i >= len) break;
            int32_t li = fc_tok_vocab_text_id(t, s, i), ri = fc_tok_vocab_text_id(t, s + i, len - i);
            if (li < 0 || ri < 0) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 4096;
                c = fc_xrealloc(c, cap * sizeof(cand));
            }
            c[n++] = (cand){scores[id], (int32_t)k, (int32_t)(total - k), 0, li, ri};
        }
        /* local order: by (vocab[l], vocab[r]) */
        if (n > first) qsort(c + first, n - first, sizeof(cand), cand_lr_cmp);
        for (size_t j = first; j < n; j++) c[j].seq = seq++;
    }
    if (n) qsort(c, n, sizeof(cand), cand_cmp);
    fc_tok_mergemap_init(&t->merges, n);
    for (size_t j = 0; j < n; j++) {
        const cand *m = &c[j];
        fc_tok_vocab_add_merge(t, t->text[m->l], t->text_len[m->l], t->text[m->r], t->text_len[m->r],
                           (int32_t)j);
    }
    free(c);
}

/* ---- model "t5": a SentencePiece Unigram model (unigram.c) ----
 * llama.cpp's converter (T5Model.set_vocab) writes spiece.model's pieces,
 * scores and types, its normalizer spec (add_space_prefix,
 * remove_extra_whitespaces, precompiled_charsmap as a u8 array), the
 * added_tokens.json tokens as USER_DEFINED and the ids past them as UNUSED
 * "[PAD<id>]". Read back as the spiece.model folder would be (sentencepiece's
 * rules), with the USER_DEFINED tokens also split out before normalization as
 * llama.cpp does (and transformers does with added tokens), and the UNUSED
 * ones special (llama.cpp prints nothing for them). One difference from
 * llama.cpp remains: added tokens are matched leftmost-longest as Hugging
 * Face does, so with parse_special off a control token spelled in the text
 * ("</s>") hides a user-defined token it starts with ("<"), which llama.cpp
 * would still split out. T5Tokenizer's
 * defaults: EOS appended, no BOS, unless add_bos_token / add_eos_token say
 * otherwise. */

static int32_t id_key(const fc_gguf *g, const char *key, uint64_t n)
{
    uint32_t u;
    return fc_gguf_get_u32(g, key, &u) && u < n ? (int32_t)u : -1;
}

static fc_tokenizer *t5_from_gguf(const fc_gguf *g, const char *name)
{
    enum fc_gguf_type et;
    uint64_t n_tok = 0, n;
    const void *data;
    fc_tokenizer *t = NULL;
    fc_tok_extra_token *extra = NULL;
    int n_extra = 0;
    fc_gguf_str s;
    if (!fc_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, &data) || et != FC_GGUF_STRING ||
        n_tok == 0 || n_tok >= 1 << 24) {
        FC_LOG_ERROR("%s: tokenizer.ggml.tokens missing or not a list of strings", name);
        return NULL;
    }
    fc_tok_spm sp = {.n = (int32_t)n_tok, .unk = -1, .bos = -1, .eos = -1, .pad = -1,
                     .add_dummy_prefix = true, .remove_extra_ws = true, .model_type = 1};
    sp.piece = fc_xcalloc(n_tok, sizeof(char *));
    sp.len = fc_xcalloc(n_tok, sizeof(uint32_t));
    sp.score = fc_xcalloc(n_tok, sizeof(float));
    sp.type = fc_xcalloc(n_tok, sizeof(int32_t));
    for (uint64_t i = 0; i < n_tok; i++) {
        if (!fc_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s) || s.len > UINT32_MAX) goto bad;
        sp.piece[i] = s.ptr;
        sp.len[i] = (uint32_t)s.len;
        sp.type[i] = TK_TYPE_NORMAL;
    }
    if (!fc_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &data) || n != n_tok || et != FC_GGUF_FLOAT32) {
        FC_LOG_ERROR("%s: a t5 tokenizer needs tokenizer.ggml.scores (one f32 per token)", name);
        goto fail;
    }
    memcpy(sp.score, data, n * sizeof(float));
    for (uint64_t i = 0; i < n; i++)
        if (!isfinite(sp.score[i])) {
            FC_LOG_ERROR("%s: tokenizer.ggml.scores[%llu] is not finite", name, (unsigned long long)i);
            goto fail;
        }
    if (fc_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &data)) {
        if (n != n_tok || (et != FC_GGUF_INT32 && et != FC_GGUF_UINT32)) {
            FC_LOG_ERROR("%s: tokenizer.ggml.token_type has %llu entries of type %s for %llu tokens (i32 each)", name,
                         (unsigned long long)n, fc_gguf_type_name(et), (unsigned long long)n_tok);
            goto fail;
        }
        memcpy(sp.type, data, n * sizeof(int32_t));
    }
    bool flag;
    if (fc_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &flag)) sp.add_dummy_prefix = flag;
    if (fc_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &flag)) sp.remove_extra_ws = flag;
    if (fc_gguf_get_arr(g, "tokenizer.ggml.precompiled_charsmap", &et, &n, &data) && n > 0) {
        if ((et != FC_GGUF_UINT8 && et != FC_GGUF_INT8) || !fc_tok_charsmap_valid(data, (size_t)n)) {
            FC_LOG_ERROR("%s: tokenizer.ggml.precompiled_charsmap is not a sentencepiece charsmap", name);
            goto fail;
        }
        sp.charsmap = data;
        sp.charsmap_len = (size_t)n;
    }
    /* the named ids; without keys, the pieces sentencepiece marks */
    for (int32_t i = 0; i < sp.n; i++) {
        if (sp.type[i] == TK_TYPE_UNKNOWN && sp.unk < 0) sp.unk = i;
        if (sp.type[i] == TK_TYPE_USER_DEFINED || sp.type[i] == TK_TYPE_UNUSED) {
            /* UNUSED ("[PAD<id>]", T5's lost <extra_id_N>) decode to nothing in
             * llama.cpp: special here, so skip_special drops them too */
            extra = fc_xrealloc(extra, (size_t)(n_extra + 1) * sizeof(fc_tok_extra_token));
            extra[n_extra++] = (fc_tok_extra_token){i, sp.piece[i], sp.len[i], sp.type[i] == TK_TYPE_UNUSED};
        }
        if (sp.type[i] != TK_TYPE_CONTROL) continue;
        if (sp.len[i] == 4 && !memcmp(sp.piece[i], "</s>", 4) && sp.eos < 0) sp.eos = i;
        if (sp.len[i] == 3 && !memcmp(sp.piece[i], "<s>", 3) && sp.bos < 0) sp.bos = i;
        if (sp.len[i] == 5 && !memcmp(sp.piece[i], "<pad>", 5) && sp.pad < 0) sp.pad = i;
    }
    int32_t id;
    if ((id = id_key(g, "tokenizer.ggml.unknown_token_id", n_tok)) >= 0) sp.unk = id;
    if ((id = id_key(g, "tokenizer.ggml.eos_token_id", n_tok)) >= 0) sp.eos = id;
    if ((id = id_key(g, "tokenizer.ggml.bos_token_id", n_tok)) >= 0) sp.bos = id;
    if ((id = id_key(g, "tokenizer.ggml.padding_token_id", n_tok)) >= 0) sp.pad = id;

    t = fc_tok_unigram_from_spm(&sp, extra, n_extra, name);
    if (!t) goto fail;
    bool add_bos = false, add_eos = true;
    if (fc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag)) add_bos = flag;
    if (fc_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag)) add_eos = flag;
    t->n_prefix = t->n_suffix = 0;
    if (add_bos && t->bos >= 0) {
        t->prefix = fc_xrealloc(t->prefix, sizeof(int32_t));
        t->prefix[t->n_prefix++] = t->bos;
    }
    if (add_eos && t->eos >= 0) {
        t->suffix = fc_xrealloc(t->suffix, sizeof(int32_t));
        t->suffix[t->n_suffix++] = t->eos;
    }
    if (fc_gguf_get_str(g, "tokenizer.chat_template", &s)) fc_tok_set_chat_template(t, s.ptr, s.len);
    if (fc_tok_finish(t) != FC_OK) {
        fc_tokenizer_free(t);
        t = NULL;
    }
    goto fail; /* t or NULL: the scratch arrays go either way */
bad:
    FC_LOG_ERROR("%s: malformed tokenizer metadata", name);
fail:
    free(extra);
    free(sp.piece);
    free(sp.len);
    free(sp.score);
    free(sp.type);
    return t;
}

/* ---- the loader ---- */

fc_tokenizer *fc_tokenizer_from_gguf(const fc_gguf *g, const char *name)
{
    fc_gguf_str model, pre = {"", 0}, s;
    enum fc_gguf_type et;
    uint64_t n_tok = 0, n;
    const void *data;
    fc_tokenizer *t = NULL;
    float *scores = NULL;
    int32_t *types = NULL;

    if (!name) name = "gguf";
    if (!fc_gguf_get_str(g, "tokenizer.ggml.model", &model)) {
        FC_LOG_ERROR("%s: no tokenizer.ggml.model (the file has no tokenizer)", name);
        return NULL;
    }
    bool spm = model.len == 5 && !memcmp(model.ptr, "llama", 5);
    bool bpe = model.len == 4 && !memcmp(model.ptr, "gpt2", 4);
    if (model.len == 2 && !memcmp(model.ptr, "t5", 2)) return t5_from_gguf(g, name);
    if (!spm && !bpe) {
        FC_LOG_ERROR("%s: tokenizer.ggml.model '%.*s' is not supported (gpt2, llama, t5)", name,
                     (int)model.len, model.ptr);
        return NULL;
    }
    if (!fc_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_tok, &data) || et != FC_GGUF_STRING ||
        n_tok == 0 || n_tok > INT32_MAX) {
        FC_LOG_ERROR("%s: tokenizer.ggml.tokens missing or not a list of strings", name);
        return NULL;
    }
    fc_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    fc_gguf_str arch;
    if (spm && fc_gguf_get_str(g, "general.architecture", &arch) && arch.len >= 5 &&
        !memcmp(arch.ptr, "gemma", 5))
        FC_LOG_WARN("%s: Gemma's SentencePiece vocabulary is read as a plain one; its whitespace "
                    "tokens and merge order may tokenize differently from transformers", name);

    t = fc_tok_new(name);
    fc_tok_vocab_alloc(t, (int32_t)n_tok);
    for (uint64_t i = 0; i < n_tok; i++) {
        if (!fc_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s)) goto bad;
        fc_tok_vocab_set_text(t, (int32_t)i, s.ptr, s.len);
    }
    types = fc_xcalloc(n_tok, sizeof(int32_t));
    if (fc_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &data)) {
        if (n != n_tok || (et != FC_GGUF_INT32 && et != FC_GGUF_UINT32)) goto bad;
        memcpy(types, data, n * sizeof(int32_t));
    }
    scores = fc_xcalloc(n_tok, sizeof(float));
    if (fc_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &data)) {
        if (n != n_tok || et != FC_GGUF_FLOAT32) goto bad;
        memcpy(scores, data, n * sizeof(float));
        for (uint64_t i = 0; i < n; i++)
            if (scores[i] != scores[i]) { /* NaN would make the merge order undefined */
                FC_LOG_ERROR("%s: tokenizer.ggml.scores[%llu] is NaN", name, (unsigned long long)i);
                goto fail;
            }
        if (spm) {
            t->scores = fc_xmalloc(n * sizeof(float));
            memcpy(t->scores, scores, n * sizeof(float));
        }
    }

    uint32_t u;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u) && u < n_tok) t->bos = (int32_t)u;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u) && u < n_tok) t->eos = (int32_t)u;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &u) && u < n_tok) t->unk = (int32_t)u;
    if (fc_gguf_get_u32(g, "tokenizer.ggml.padding_token_id", &u) && u < n_tok) t->pad = (int32_t)u;

    /* added tokens */
    for (uint64_t i = 0; i < n_tok; i++) {
        int32_t id = (int32_t)i;
        bool named = id == t->bos || id == t->eos || id == t->unk || id == t->pad;
        const char *txt = fc_tok_vocab_text_early(t, id);
        size_t len = t->text_len[id];
        if (types[i] == TK_TYPE_CONTROL || named) {
            if (bpe && !named) {
                /* transformers skips a CONTROL token spelled outside the byte
                 * alphabet: a llama.cpp mislabel */
                bool ok = true;
                for (size_t k = 0; k < len && ok;) {
                    int l = fc_utf8_len((const uint8_t *)txt + k, len - k);
                    ok = l && fc_tok_cp_to_byte(fc_utf8_decode((const uint8_t *)txt + k, l)) >= 0;
                    k += l ? (size_t)l : 1;
                }
                if (!ok) continue;
            }
            char *c = dup_n(txt, len);
            fc_tok_added_add(t, id, c, len, true, false, false, false, false);
            free(c);
        } else if (types[i] == TK_TYPE_USER_DEFINED) {
            char *c = dup_n(txt, len);
            fc_tok_added_add(t, id, c, len, false, false, false, false, false);
            free(c);
        }
    }
    fc_tok_vocab_index_texts(t);

    /* merges */
    if (fc_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, &data) && et == FC_GGUF_STRING) {
        fc_tok_mergemap_init(&t->merges, n);
        for (uint64_t i = 0; i < n; i++) {
            if (!fc_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s)) goto bad;
            const char *sp = memchr(s.ptr, ' ', s.len);
            if (!sp || !fc_tok_vocab_add_merge(t, s.ptr, (size_t)(sp - s.ptr), sp + 1,
                                           s.len - (size_t)(sp - s.ptr) - 1, (int32_t)i)) {
                FC_LOG_ERROR("%s: merge %llu '%.*s' is not two tokens of the vocabulary", name,
                             (unsigned long long)i, (int)s.len, s.ptr);
                goto fail;
            }
        }
    } else if (spm) {
        merges_from_scores(t, scores);
        t->merges_from_scores = true;
    } else {
        FC_LOG_ERROR("%s: tokenizer.ggml.merges missing", name);
        goto fail;
    }

    bool flag;
    bool add_bos = spm, add_eos = false;
    if (fc_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag)) add_bos = flag;
    if (fc_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag)) add_eos = flag;
    if (add_bos && t->bos >= 0) {
        t->prefix = fc_xmalloc(sizeof(int32_t));
        t->prefix[t->n_prefix++] = t->bos;
    }
    if (add_eos && t->eos >= 0) {
        t->suffix = fc_xmalloc(sizeof(int32_t));
        t->suffix[t->n_suffix++] = t->eos;
    }

    if (bpe) {
        t->has_decoder = true;
        add_dec(t, (fc_tok_dec){.kind = TK_DEC_BYTELEVEL});
        if (pre.len == 0 || in_list(pre.ptr, pre.len, PRE_GPT2)) {
            if (!add_regex_pre(t, TK_PRE_BYTELEVEL, TK_GPT2_PATTERN)) goto fail;
        } else if (in_list(pre.ptr, pre.len, PRE_DIGITS)) {
            fc_tok_pre d = {.kind = TK_PRE_DIGITS, .individual = true};
            t->pre = fc_xrealloc(t->pre, sizeof(fc_tok_pre));
            t->pre[t->n_pre++] = d;
            if (!add_regex_pre(t, TK_PRE_BYTELEVEL, TK_GPT2_PATTERN)) goto fail;
        } else if (in_list(pre.ptr, pre.len, PRE_LLAMA3)) {
            if (!add_regex_pre(t, TK_PRE_SPLIT, TK_LLAMA3_PATTERN)) goto fail;
            if (!add_regex_pre(t, TK_PRE_BYTELEVEL, NULL)) goto fail;
            t->ignore_merges = true;
        } else if (in_list(pre.ptr, pre.len, PRE_QWEN2)) {
            t->norm = fc_xcalloc(1, sizeof(fc_tok_norm));
            t->norm[t->n_norm++].kind = TK_NORM_NFC;
            if (!add_regex_pre(t, TK_PRE_SPLIT, TK_QWEN2_PATTERN)) goto fail;
            if (!add_regex_pre(t, TK_PRE_BYTELEVEL, NULL)) goto fail;
        } else {
            FC_LOG_WARN("%s: tokenizer.ggml.pre '%.*s' unknown; splitting with GPT-2's regex", name,
                        (int)pre.len, pre.ptr);
            if (!add_regex_pre(t, TK_PRE_BYTELEVEL, TK_GPT2_PATTERN)) goto fail;
        }
        t->byte_level = true;
    } else {
        bool space_prefix = true, squeeze = false;
        if (fc_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &flag)) space_prefix = flag;
        if (fc_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &flag)) squeeze = flag;
        t->norm = fc_xcalloc(4, sizeof(fc_tok_norm));
        if (squeeze) {
            /* sentencepiece's normalizer: no leading or trailing spaces, one
             * space for a run (U+0020 only: identity rules, no charsmap) */
            static const char *const pats[2][2] = {{"^ +| +\\z", ""}, {" {2,}", " "}};
            for (int k = 0; k < 2; k++) {
                fc_tok_norm nm = {.kind = TK_NORM_REPLACE, .sp_ws = true};
                nm.re = fc_tok_regex_compile(pats[k][0], strlen(pats[k][0]), TK_RE_PCRE);
                if (!nm.re) goto fail;
                nm.b = dup_n(pats[k][1], strlen(pats[k][1]));
                nm.b_len = strlen(pats[k][1]);
                t->norm[t->n_norm++] = nm;
            }
        }
        if (space_prefix)
            t->norm[t->n_norm++] = (fc_tok_norm){.kind = TK_NORM_PREPEND, .a = dup_n("\xE2\x96\x81", 3), .a_len = 3};
        t->norm[t->n_norm++] = (fc_tok_norm){.kind = TK_NORM_REPLACE, .a = dup_n(" ", 1), .a_len = 1,
                                         .b = dup_n("\xE2\x96\x81", 3), .b_len = 3};
        t->byte_fallback = true;
        t->fuse_unk = true;
        t->model_unk = t->unk;
        t->has_decoder = true;
        add_dec(t, (fc_tok_dec){.kind = TK_DEC_REPLACE, .a = dup_n("\xE2\x96\x81", 3), .a_len = 3,
                            .b = dup_n(" ", 1), .b_len = 1});
        add_dec(t, (fc_tok_dec){.kind = TK_DEC_BYTEFALLBACK});
        add_dec(t, (fc_tok_dec){.kind = TK_DEC_FUSE});
        if (space_prefix) add_dec(t, (fc_tok_dec){.kind = TK_DEC_STRIP, .cp = ' ', .start = 1});
    }

    if (fc_gguf_get_str(g, "tokenizer.chat_template", &s)) fc_tok_set_chat_template(t, s.ptr, s.len);
    free(scores);
    free(types);
    if (fc_tok_finish(t) != FC_OK) {
        fc_tokenizer_free(t);
        return NULL;
    }
    return t;
bad:
    FC_LOG_ERROR("%s: malformed tokenizer metadata", name);
fail:
    free(scores);
    free(types);
    fc_tokenizer_free(t);
    return NULL;
}

fc_tokenizer *fc_tok_from_writer(fc_gguf_writer *w, const char *name)
{
    uint8_t *buf;
    size_t size;
    if (fc_gguf_writer_write_buf(w, &buf, &size) != FC_OK) return NULL;
    fc_gguf *g = fc_gguf_parse(buf, size, name);
    fc_tokenizer *t = g ? fc_tokenizer_from_gguf(g, name) : NULL;
    fc_gguf_free(g);
    free(buf);
    return t;
}
