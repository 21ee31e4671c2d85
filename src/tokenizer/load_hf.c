/*
 * load_hf.c: fc_tokenizer from a Hugging Face folder.
 *
 * tokenizer.json (the `tokenizers` serialization, version 1.0): model BPE
 * (vocab, merges as "a b" strings or [a, b] pairs, unk_token, byte_fallback,
 * fuse_unk, ignore_merges), added_tokens, normalizer, pre_tokenizer,
 * post_processor, decoder. tokenizer_config.json, as transformers 5 reads it:
 * bos/eos/unk/pad tokens (strings or {"content": ...}) are made special added
 * tokens when the vocabulary has them but added_tokens does not;
 * add_bos_token / add_eos_token, when either is present, replace the
 * post-processor by "[BOS] $A [EOS]" as the flags say (update_post_processor);
 * chat_template (a string, or a list of {name, template} from which "default"
 * or the first is taken) unless chat_template.jinja exists.
 *
 * A folder without tokenizer.json but with SentencePiece's tokenizer.model
 * is read through spm_model.c (see from_spm_folder below).
 */
#include "tok_impl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

/* ---- small cJSON helpers ---- */

static const cJSON *jget(const cJSON *o, const char *k) { return o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL; }

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *k, bool def)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static int jint(const cJSON *o, const char *k, int def)
{
    const cJSON *v = jget(o, k);
    return cJSON_IsNumber(v) ? v->valueint : def;
}

static char *xdup(const char *s, size_t *len)
{
    size_t n = strlen(s);
    char *d = fc_xmalloc(n + 1);
    memcpy(d, s, n + 1);
    if (len) *len = n;
    return d;
}

static uint32_t first_cp(const char *s)
{
    size_t n = strlen(s);
    int l = fc_utf8_len((const uint8_t *)s, n);
    return l ? fc_utf8_decode((const uint8_t *)s, l) : 0x2581;
}

static bool file_exists(const char *path) { return access(path, R_OK) == 0; }

/* JSON text must be UTF-8 (RFC 8259; serde_json, which reads these files for
 * Hugging Face, refuses anything else), and every string taken from it is
 * then valid UTF-8 too, which the regex engine relies on. */
static cJSON *parse_json(const char *s, size_t n, const char *where)
{
    if (!fc_utf8_valid(s, n)) {
        FC_LOG_ERROR("%s: not valid UTF-8", where);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (!j) FC_LOG_ERROR("%s: invalid JSON near byte %ld", where,
                         (long)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - s : -1));
    return j;
}

static cJSON *read_json(const char *path, bool required)
{
    if (!required && !file_exists(path)) return NULL;
    fc_mmap *m = fc_mmap_open(path); /* logs why it failed */
    if (!m) return NULL;
    cJSON *j = parse_json((const char *)m->data, m->size, path);
    fc_mmap_free(m);
    return j;
}

/* ---- pipeline parts ---- */

/* Standard base64 (the Precompiled normalizer's charsmap); NULL when
 * malformed. Caller frees. */
static uint8_t *b64_decode(const char *s, size_t *out_len)
{
    size_t n = strlen(s);
    uint8_t *o = fc_xmalloc(n / 4 * 3 + 3);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
              : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
        if (c == '=') break;
        if (v < 0) { free(o); return NULL; }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t)(acc >> bits);
        }
    }
    *out_len = k;
    return o;
}

static bool parse_normalizer(fc_tokenizer *t, const cJSON *n, const char *where)
{
    if (!n || cJSON_IsNull(n)) return true;
    const char *type = jstr(n, "type");
    if (!type) goto bad;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, jget(n, "normalizers"))
            if (!parse_normalizer(t, it, where)) return false;
        return true;
    }
    fc_tok_norm nm = {0};
    if (!strcmp(type, "NFC")) nm.kind = TK_NORM_NFC;
    else if (!strcmp(type, "NFD")) nm.kind = TK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) nm.kind = TK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nm.kind = TK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) nm.kind = TK_NORM_LOWER;
    else if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p) goto bad;
        nm.kind = TK_NORM_PREPEND;
        nm.a = xdup(p, &nm.a_len);
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = jget(n, "pattern");
        const char *lit = jstr(pat, "String"), *re = jstr(pat, "Regex"), *content = jstr(n, "content");
        if ((!lit && !re) || !content) goto bad;
        nm.kind = TK_NORM_REPLACE;
        nm.b = xdup(content, &nm.b_len);
        if (lit) {
            nm.a = xdup(lit, &nm.a_len);
        } else {
            nm.re = fc_tok_regex_compile(re, strlen(re), TK_RE_ONIG);
            if (!nm.re) { free(nm.b); return false; }
        }
    } else if (!strcmp(type, "Precompiled")) {
        const char *cm = jstr(n, "precompiled_charsmap");
        size_t len = 0;
        uint8_t *m = cm ? b64_decode(cm, &len) : NULL;
        if (cm && !*cm) return true; /* an empty charsmap: the identity (tokenizers skips it) */
        if (!m || !fc_tok_charsmap_valid(m, len)) {
            free(m);
            FC_LOG_ERROR("%s: malformed precompiled_charsmap", where);
            return false;
        }
        nm.kind = TK_NORM_PRECOMPILED;
        nm.a = (char *)m;
        nm.a_len = len;
    } else if (!strcmp(type, "Strip")) {
        nm.kind = TK_NORM_STRIP;
        nm.left = jbool(n, "strip_left", true);
        nm.right = jbool(n, "strip_right", true);
    } else {
        FC_LOG_ERROR("%s: normalizer '%s' is not supported", where, type);
        return false;
    }
    t->norm = fc_xrealloc(t->norm, (size_t)(t->n_norm + 1) * sizeof(fc_tok_norm));
    t->norm[t->n_norm++] = nm;
    return true;
bad:
    FC_LOG_ERROR("%s: malformed normalizer", where);
    return false;
}

static enum fc_tok_split_behavior parse_behavior(const char *s, bool *ok)
{
    *ok = true;
    if (!s || !strcmp(s, "Isolated")) return TK_ISOLATED;
    if (!strcmp(s, "Removed")) return TK_REMOVED;
    if (!strcmp(s, "MergedWithPrevious")) return TK_MERGED_PREV;
    if (!strcmp(s, "MergedWithNext")) return TK_MERGED_NEXT;
    if (!strcmp(s, "Contiguous")) return TK_CONTIGUOUS;
    *ok = false;
    return TK_ISOLATED;
}

static enum fc_tok_prepend parse_prepend(const cJSON *o)
{
    const char *s = jstr(o, "prepend_scheme");
    if (s) return !strcmp(s, "first") ? TK_PREPEND_FIRST : !strcmp(s, "never") ? TK_PREPEND_NEVER
                                                                               : TK_PREPEND_ALWAYS;
    return jbool(o, "add_prefix_space", true) ? TK_PREPEND_ALWAYS : TK_PREPEND_NEVER; /* older files */
}

static void add_pre(fc_tokenizer *t, fc_tok_pre p)
{
    t->pre = fc_xrealloc(t->pre, (size_t)(t->n_pre + 1) * sizeof(fc_tok_pre));
    t->pre[t->n_pre++] = p;
}

static bool parse_pretok(fc_tokenizer *t, const cJSON *n, const char *where)
{
    if (!n || cJSON_IsNull(n)) return true;
    const char *type = jstr(n, "type");
    if (!type) goto bad;
    if (t->byte_level) {
        FC_LOG_ERROR("%s: a pre-tokenizer after ByteLevel is not supported", where);
        return false;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, jget(n, "pretokenizers"))
            if (!parse_pretok(t, it, where)) return false;
        return true;
    }
    fc_tok_pre p = {0};
    if (!strcmp(type, "Split")) {
        const cJSON *pat = jget(n, "pattern");
        const char *lit = jstr(pat, "String"), *re = jstr(pat, "Regex");
        bool ok;
        if (!lit && !re) goto bad;
        p.kind = TK_PRE_SPLIT;
        p.behavior = parse_behavior(jstr(n, "behavior"), &ok);
        if (!ok) goto bad;
        p.invert = jbool(n, "invert", false);
        p.re = lit ? fc_tok_regex_compile(lit, strlen(lit), TK_RE_LITERAL) : fc_tok_regex_compile(re, strlen(re), TK_RE_ONIG);
        if (!p.re) return false;
        if (re) p.pat = xdup(re, NULL);
    } else if (!strcmp(type, "ByteLevel")) {
        p.kind = TK_PRE_BYTELEVEL;
        p.add_prefix_space = jbool(n, "add_prefix_space", true);
        if (jbool(n, "use_regex", true)) {
            p.re = fc_tok_regex_compile(TK_GPT2_PATTERN, strlen(TK_GPT2_PATTERN), TK_RE_ONIG);
            if (!p.re) return false;
        }
        t->byte_level = true;
    } else if (!strcmp(type, "Digits")) {
        p.kind = TK_PRE_DIGITS;
        p.individual = jbool(n, "individual_digits", false);
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(n, "replacement");
        p.kind = TK_PRE_METASPACE;
        p.repl = r ? first_cp(r) : 0x2581;
        p.prepend = parse_prepend(n);
        p.split = jbool(n, "split", true);
    } else if (!strcmp(type, "WhitespaceSplit")) {
        p.kind = TK_PRE_WSPLIT;
    } else if (!strcmp(type, "Whitespace")) {
        p.kind = TK_PRE_SPLIT;
        p.behavior = TK_REMOVED;
        p.invert = true;
        p.re = fc_tok_regex_compile(TK_WHITESPACE_PATTERN, strlen(TK_WHITESPACE_PATTERN), TK_RE_PCRE);
        if (!p.re) return false;
    } else {
        FC_LOG_ERROR("%s: pre-tokenizer '%s' is not supported", where, type);
        return false;
    }
    add_pre(t, p);
    return true;
bad:
    FC_LOG_ERROR("%s: malformed pre_tokenizer", where);
    return false;
}

static void add_dec(fc_tokenizer *t, fc_tok_dec d)
{
    t->dec = fc_xrealloc(t->dec, (size_t)(t->n_dec + 1) * sizeof(fc_tok_dec));
    t->dec[t->n_dec++] = d;
}

static bool parse_decoder(fc_tokenizer *t, const cJSON *n, const char *where)
{
    if (!n || cJSON_IsNull(n)) return true;
    const char *type = jstr(n, "type");
    if (!type) goto bad;
    t->has_decoder = true;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, jget(n, "decoders"))
            if (!parse_decoder(t, it, where)) return false;
        return true;
    }
    fc_tok_dec d = {0};
    if (!strcmp(type, "ByteLevel")) d.kind = TK_DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d.kind = TK_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d.kind = TK_DEC_FUSE;
    else if (!strcmp(type, "Replace")) {
        const char *lit = jstr(jget(n, "pattern"), "String"), *content = jstr(n, "content");
        if (!lit || !content) {
            FC_LOG_ERROR("%s: Replace decoder: only string patterns are supported", where);
            return false;
        }
        d.kind = TK_DEC_REPLACE;
        d.a = xdup(lit, &d.a_len);
        d.b = xdup(content, &d.b_len);
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(n, "content");
        d.kind = TK_DEC_STRIP;
        d.cp = c ? first_cp(c) : ' ';
        d.start = jint(n, "start", 0);
        d.stop = jint(n, "stop", 0);
    } else if (!strcmp(type, "Metaspace")) {
        const char *r = jstr(n, "replacement");
        d.kind = TK_DEC_METASPACE;
        d.cp = r ? first_cp(r) : 0x2581;
        d.prepend = parse_prepend(n);
    } else {
        FC_LOG_ERROR("%s: decoder '%s' is not supported", where, type);
        return false;
    }
    add_dec(t, d);
    return true;
bad:
    FC_LOG_ERROR("%s: malformed decoder", where);
    return false;
}

static void push_id(int32_t **v, int *n, int32_t id)
{
    *v = fc_xrealloc(*v, (size_t)(*n + 1) * sizeof(int32_t));
    (*v)[(*n)++] = id;
}

/* Post-processors, single-sequence part: the ids before and after $A. */
static bool parse_post(fc_tokenizer *t, const cJSON *n, const char *where)
{
    if (!n || cJSON_IsNull(n)) return true;
    const char *type = jstr(n, "type");
    if (!type) goto bad;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, jget(n, "processors"))
            if (!parse_post(t, it, where)) return false;
        return true;
    }
    if (!strcmp(type, "ByteLevel")) return true; /* offsets only */
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *specials = jget(n, "special_tokens"), *it;
        bool after = false;
        cJSON_ArrayForEach(it, jget(n, "single")) {
            const cJSON *sp = jget(it, "SpecialToken");
            if (jget(it, "Sequence")) { after = true; continue; }
            const char *name = jstr(sp, "id");
            if (!name) goto bad;
            const cJSON *ids = jget(jget(specials, name), "ids"), *id;
            if (!ids) {
                FC_LOG_ERROR("%s: post_processor names '%s' without its ids", where, name);
                return false;
            }
            cJSON_ArrayForEach(id, ids) {
                if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= t->n_vocab) goto bad;
                if (after) push_id(&t->suffix, &t->n_suffix, id->valueint);
                else push_id(&t->prefix, &t->n_prefix, id->valueint);
            }
        }
        return true;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = jget(n, "cls"), *sep = jget(n, "sep");
        const cJSON *c1 = cJSON_GetArrayItem(cls, 1), *s1 = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(c1) || !cJSON_IsNumber(s1) || c1->valueint < 0 || c1->valueint >= t->n_vocab ||
            s1->valueint < 0 || s1->valueint >= t->n_vocab)
            goto bad;
        push_id(&t->prefix, &t->n_prefix, c1->valueint);
        push_id(&t->suffix, &t->n_suffix, s1->valueint);
        return true;
    }
    FC_LOG_ERROR("%s: post_processor '%s' is not supported", where, type);
    return false;
bad:
    FC_LOG_ERROR("%s: malformed post_processor", where);
    return false;
}

/* A special token named in tokenizer_config.json: a string or {"content": s}. */
static const char *config_token(const cJSON *cfg, const char *key)
{
    const cJSON *v = jget(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return jstr(v, "content");
}

/* ---- the loader ---- */

/* The chat template of a folder: chat_template.jinja (dir may be NULL), else
 * tokenizer_config.json's chat_template (a string, or a list of {name,
 * template} from which "default" or the first is taken). */
static void chat_template_of(const char *dir, const cJSON *cfg, fc_str *out)
{
    char path[4096];
    if (dir) {
        snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
        fc_mmap *m = file_exists(path) ? fc_mmap_open(path) : NULL;
        if (m) {
            fc_str_putn(out, m->data, m->size);
            fc_mmap_free(m);
            return;
        }
    }
    const cJSON *ct = jget(cfg, "chat_template"), *it;
    if (cJSON_IsString(ct)) {
        fc_str_putn(out, ct->valuestring, strlen(ct->valuestring));
    } else if (cJSON_IsArray(ct)) {
        const char *pick = NULL;
        cJSON_ArrayForEach(it, ct) {
            const char *name = jstr(it, "name"), *tpl = jstr(it, "template");
            if (!tpl) continue;
            if (!pick || (name && !strcmp(name, "default"))) pick = tpl;
        }
        if (pick) fc_str_putn(out, pick, strlen(pick));
    }
}

/* tokenizer.json (root) and tokenizer_config.json (cfg, may be NULL). path
 * names the file in messages, dir (may be NULL) is where chat_template.jinja
 * would be. root and cfg stay the caller's. */
/* The chat template (tokenizer_config.json or chat_template.jinja), then
 * fc_tok_finish; frees t and returns NULL when that fails. */
static fc_tokenizer *finish_with_template(fc_tokenizer *t, const char *dir, const cJSON *cfg)
{
    fc_str ct = {0};
    chat_template_of(dir, cfg, &ct);
    if (ct.p) fc_tok_set_chat_template(t, ct.p, ct.len);
    fc_str_free(&ct);
    if (fc_tok_finish(t) != FC_OK) {
        fc_tokenizer_free(t);
        return NULL;
    }
    return t;
}

static fc_tokenizer *from_json(const cJSON *root, const cJSON *cfg, const char *path, const char *dir)
{
    fc_tokenizer *t = NULL;

    const cJSON *model = jget(root, "model"), *vocab = jget(model, "vocab"), *it;
    const char *mtype = jstr(model, "type");
    bool unigram = mtype && !strcmp(mtype, "Unigram");
    if (mtype && strcmp(mtype, "BPE") && !unigram) {
        FC_LOG_ERROR("%s: model type '%s' is not supported (only BPE and Unigram)", path, mtype);
        goto fail;
    }
    if (unigram ? !cJSON_IsArray(vocab) : (!cJSON_IsObject(vocab) || !jget(model, "merges"))) {
        FC_LOG_ERROR("%s: model has no BPE vocab and merges", path);
        goto fail;
    }
    const char *cont = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((cont && *cont) || (eow && *eow)) {
        FC_LOG_ERROR("%s: continuing_subword_prefix / end_of_word_suffix are not supported", path);
        goto fail;
    }
    const cJSON *dropout = jget(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        FC_LOG_WARN("%s: BPE dropout ignored (encoding is deterministic)", path);

    int32_t max_id = -1;
    int n_entries = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (unigram) { /* [piece, score]: the id is the position */
            const cJSON *p = cJSON_GetArrayItem(it, 0), *sc = cJSON_GetArrayItem(it, 1);
            if (cJSON_GetArraySize(it) != 2 || !cJSON_IsString(p) || !cJSON_IsNumber(sc) ||
                !isfinite(sc->valuedouble)) {
                FC_LOG_ERROR("%s: bad Unigram vocab entry %d", path, n_entries);
                goto fail;
            }
            max_id = n_entries++;
            continue;
        }
        n_entries++;
        if (!cJSON_IsNumber(it) || it->valueint < 0) {
            FC_LOG_ERROR("%s: bad vocab entry '%s'", path, it->string);
            goto fail;
        }
        max_id = FC_MAX(max_id, it->valueint);
    }
    const cJSON *added = jget(root, "added_tokens");
    cJSON_ArrayForEach(it, added) {
        int id = jint(it, "id", -1);
        n_entries++;
        if (id < 0 || !jstr(it, "content")) {
            FC_LOG_ERROR("%s: bad added token", path);
            goto fail;
        }
        max_id = FC_MAX(max_id, id);
    }
    if (max_id < 0) {
        FC_LOG_ERROR("%s: empty vocabulary", path);
        goto fail;
    }
    /* no vocabulary is that large or that sparse: a corrupt or hostile file */
    if (max_id >= 1 << 24 || max_id - n_entries >= 1 << 20) {
        FC_LOG_ERROR("%s: token id %d is out of range (%d tokens)", path, max_id, n_entries);
        goto fail;
    }

    t = fc_tok_new(dir ? dir : path);
    fc_tok_vocab_alloc(t, max_id + 1);
    int32_t pos = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (unigram) {
            const char *p = cJSON_GetArrayItem(it, 0)->valuestring;
            fc_tok_vocab_set_text(t, pos++, p, strlen(p));
        } else {
            fc_tok_vocab_set_text(t, it->valueint, it->string, strlen(it->string));
        }
    }
    if (unigram) {
        t->uni = fc_tok_unigram_new(max_id + 1, false);
        pos = 0;
        cJSON_ArrayForEach(it, vocab) {
            t->uni->score[pos] = cJSON_GetArrayItem(it, 1)->valuedouble;
            t->uni->cand[pos++] = 1;
        }
        int uid = jint(model, "unk_id", -1);
        t->uni->unk = t->model_unk = uid >= 0 && uid < pos ? uid : -1;
    }
    cJSON_ArrayForEach(it, added) {
        const char *c = jstr(it, "content");
        bool special = jbool(it, "special", false);
        fc_tok_added_add(t, jint(it, "id", -1), c, strlen(c), special, jbool(it, "normalized", !special),
                     jbool(it, "lstrip", false), jbool(it, "rstrip", false), jbool(it, "single_word", false));
    }
    fc_tok_vocab_index_texts(t);
    /* tokenizer_config's named special tokens that added_tokens lacks become
     * special added tokens (transformers adds them at load) */
    static const char *const named[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    for (size_t k = 0; k < FC_ARRAY_LEN(named); k++) {
        const char *s = config_token(cfg, named[k]);
        if (!s) continue;
        int32_t id = fc_tok_strmap_get(&t->by_text, s, strlen(s));
        if (id >= 0 && !(t->flags[id] & TK_F_ADDED))
            fc_tok_added_add(t, id, s, strlen(s), true, false, false, false, false);
    }

    /* merges */
    const cJSON *merges = jget(model, "merges");
    fc_tok_mergemap_init(&t->merges, (size_t)cJSON_GetArraySize(merges));
    int32_t rank = 0;
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                FC_LOG_ERROR("%s: merge %d '%s' is not two tokens", path, rank, it->valuestring);
                goto fail;
            }
            a = it->valuestring; al = (size_t)(sp - a);
            b = sp + 1; bl = strlen(b);
        } else if (cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring; al = strlen(a);
            b = cJSON_GetArrayItem(it, 1)->valuestring; bl = strlen(b);
        } else {
            FC_LOG_ERROR("%s: merge %d is malformed", path, rank);
            goto fail;
        }
        if (!fc_tok_vocab_add_merge(t, a, al, b, bl, rank)) {
            FC_LOG_ERROR("%s: merge %d ('%.*s' '%.*s') uses a token not in the vocabulary", path, rank,
                         (int)al, a, (int)bl, b);
            goto fail;
        }
        rank++;
    }

    /* model options */
    const char *unk = jstr(model, "unk_token");
    if (unk && !unigram) {
        t->model_unk = fc_tok_vocab_text_id(t, unk, strlen(unk));
        if (t->model_unk < 0) t->model_unk = fc_tok_strmap_get(&t->by_text, unk, strlen(unk));
    }
    t->byte_fallback = jbool(model, "byte_fallback", false);
    t->fuse_unk = jbool(model, "fuse_unk", false);
    t->ignore_merges = jbool(model, "ignore_merges", false);

    if (!parse_normalizer(t, jget(root, "normalizer"), path) ||
        !parse_pretok(t, jget(root, "pre_tokenizer"), path) ||
        !parse_decoder(t, jget(root, "decoder"), path) ||
        !parse_post(t, jget(root, "post_processor"), path))
        goto fail;

    /* special ids */
    const char *s;
    if ((s = config_token(cfg, "bos_token"))) t->bos = fc_tok_strmap_get(&t->by_text, s, strlen(s));
    if ((s = config_token(cfg, "eos_token"))) t->eos = fc_tok_strmap_get(&t->by_text, s, strlen(s));
    if ((s = config_token(cfg, "unk_token"))) t->unk = fc_tok_strmap_get(&t->by_text, s, strlen(s));
    if ((s = config_token(cfg, "pad_token"))) t->pad = fc_tok_strmap_get(&t->by_text, s, strlen(s));
    if (t->unk < 0) t->unk = t->model_unk;
    if (t->bos < 0 && t->n_prefix > 0) t->bos = t->prefix[0];

    if (cJSON_IsBool(jget(cfg, "add_bos_token")) || cJSON_IsBool(jget(cfg, "add_eos_token"))) {
        /* transformers' update_post_processor */
        t->n_prefix = t->n_suffix = 0;
        if (jbool(cfg, "add_bos_token", false) && t->bos >= 0) push_id(&t->prefix, &t->n_prefix, t->bos);
        if (jbool(cfg, "add_eos_token", false) && t->eos >= 0) push_id(&t->suffix, &t->n_suffix, t->eos);
    }

    return finish_with_template(t, dir, cfg);
fail:
    fc_tokenizer_free(t);
    return NULL;
}

/* ---- a folder with only SentencePiece's tokenizer.model ----
 * (Llama-2 / Vicuna era folders.) The tokenizer is what spm_model.c builds;
 * tokenizer_config.json adds what LlamaTokenizer reads from it: add_bos_token
 * (default true) and add_eos_token (default false), the bos/eos/unk/pad
 * token names, the chat template, and tokens past the model's pieces from
 * added_tokens_decoder or added_tokens.json. */

static void add_extra(fc_tok_extra_token **v, int *n, int32_t id, const char *text, bool special)
{
    *v = fc_xrealloc(*v, (size_t)(*n + 1) * sizeof(fc_tok_extra_token));
    (*v)[(*n)++] = (fc_tok_extra_token){id, text, strlen(text), special};
}

/* T5's spiece.model (a Unigram model): tokens as fc_tok_unigram_from_spm makes
 * them, then tokenizer_config.json's special token names, add_bos_token /
 * add_eos_token when given (T5Tokenizer's default: EOS only) and the chat
 * template. */
static fc_tokenizer *unigram_folder(const char *dir, const cJSON *cfg, const fc_tok_spm *s,
                                    const fc_tok_extra_token *extra, int n_extra, const char *path)
{
    fc_tokenizer *t = fc_tok_unigram_from_spm(s, extra, n_extra, path);
    if (!t) return NULL;
    const char *name;
    if ((name = config_token(cfg, "eos_token"))) t->eos = fc_tok_strmap_get(&t->by_text, name, strlen(name));
    if ((name = config_token(cfg, "bos_token"))) t->bos = fc_tok_strmap_get(&t->by_text, name, strlen(name));
    if ((name = config_token(cfg, "unk_token"))) t->unk = fc_tok_strmap_get(&t->by_text, name, strlen(name));
    if ((name = config_token(cfg, "pad_token"))) t->pad = fc_tok_strmap_get(&t->by_text, name, strlen(name));
    if (cJSON_IsBool(jget(cfg, "add_bos_token")) || cJSON_IsBool(jget(cfg, "add_eos_token"))) {
        t->n_prefix = t->n_suffix = 0;
        if (jbool(cfg, "add_bos_token", false) && t->bos >= 0) push_id(&t->prefix, &t->n_prefix, t->bos);
        if (jbool(cfg, "add_eos_token", true) && t->eos >= 0) push_id(&t->suffix, &t->n_suffix, t->eos);
    } else if (t->n_suffix == 1) {
        t->suffix[0] = t->eos;
        if (t->eos < 0) t->n_suffix = 0;
    }
    return finish_with_template(t, dir, cfg);
}

static fc_tokenizer *from_spm_folder(const char *dir, const cJSON *cfg, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/added_tokens.json", dir);
    cJSON *added = read_json(path, false);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    fc_mmap *m = fc_mmap_open(path);
    fc_tokenizer *t = NULL;
    fc_tok_extra_token *extra = NULL;
    int n_extra = 0;
    fc_tok_spm s;
    if (!m) goto out;
    if (fc_tok_spm_parse_any(m->data, m->size, path, &s) != FC_OK) goto out;

    const cJSON *it;
    cJSON_ArrayForEach(it, added)
        if (cJSON_IsNumber(it) && it->valueint >= 0) add_extra(&extra, &n_extra, it->valueint, it->string, false);
    cJSON_ArrayForEach(it, jget(cfg, "added_tokens_decoder")) {
        const char *c = jstr(it, "content");
        char *end;
        long id = strtol(it->string, &end, 10);
        if (c && *end == '\0' && id >= 0 && id < INT32_MAX)
            add_extra(&extra, &n_extra, (int32_t)id, c, jbool(it, "special", false));
    }
    for (int k = 0; k < n_extra; k++)
        if (extra[k].id >= 1 << 24 || extra[k].id - s.n >= 1 << 20) {
            FC_LOG_ERROR("%s: added token id %d is out of range", dir, extra[k].id);
            fc_tok_spm_free(&s);
            goto out;
        }

    if (s.model_type == 1) {
        t = unigram_folder(dir, cfg, &s, extra, n_extra, path);
        fc_tok_spm_free(&s);
        goto out;
    }
    fc_gguf_writer *w = fc_gguf_writer_new();
    fc_tok_spm_write(&s, extra, n_extra, w);
    static const char *const named[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    static const char *const keys[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (size_t k = 0; k < FC_ARRAY_LEN(named); k++) {
        const char *name = config_token(cfg, named[k]);
        int32_t id = name ? fc_tok_spm_find(&s, extra, n_extra, name, strlen(name)) : -1;
        if (id >= 0) fc_gguf_writer_set_u32(w, keys[k], (uint32_t)id);
    }
    fc_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", jbool(cfg, "add_bos_token", true));
    fc_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", jbool(cfg, "add_eos_token", false));
    fc_str ct = {0};
    chat_template_of(dir, cfg, &ct);
    if (ct.p) fc_gguf_writer_set_str(w, "tokenizer.chat_template", ct.p, ct.len);
    fc_str_free(&ct);
    t = fc_tok_from_writer(w, path);
    fc_gguf_writer_free(w);
    fc_tok_spm_free(&s);
out:
    free(extra);
    fc_mmap_free(m);
    cJSON_Delete(added);
    return t;
}

/* ---- entry points ---- */

fc_tokenizer *fc_tokenizer_from_hf(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    cJSON *cfg = read_json(path, false); /* a broken one is logged and left out */
    fc_tokenizer *t = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (file_exists(path)) {
        cJSON *root = read_json(path, true);
        if (root) t = from_json(root, cfg, path, dir);
        cJSON_Delete(root);
    } else {
        snprintf(path, sizeof path, "%s/tokenizer.model", dir);
        char spiece[4096];
        snprintf(spiece, sizeof spiece, "%s/spiece.model", dir); /* T5's name for it */
        if (file_exists(path)) {
            t = from_spm_folder(dir, cfg, "tokenizer.model");
        } else if (file_exists(spiece)) {
            t = from_spm_folder(dir, cfg, "spiece.model");
        } else {
            FC_LOG_ERROR("%s: no tokenizer.json or tokenizer.model", dir);
        }
    }
    cJSON_Delete(cfg);
    return t;
}

fc_tokenizer *fc_tokenizer_from_hf_json(const char *json, size_t len, const char *config_json,
                                        size_t config_len, const char *name)
{
    if (!name) name = "tokenizer.json";
    cJSON *root = parse_json(json, len, name), *cfg = NULL;
    fc_tokenizer *t = NULL;
    if (!root) return NULL;
    if (config_json) {
        cfg = parse_json(config_json, config_len, name);
        if (!cfg) goto out;
    }
    t = from_json(root, cfg, name, NULL);
out:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return t;
}
