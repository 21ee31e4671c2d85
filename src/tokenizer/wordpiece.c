/*
 * wordpiece.c: BERT's WordPiece tokenizer from tokenizer.json (see
 * wordpiece.h for the steps). Mirrors the behaviour of the `tokenizers`
 * package's BertNormalizer, BertPreTokenizer and WordPiece model; the
 * character classes come from utf8proc (categories, NFD, lowercase).
 *
 * Deliberately not here: decoding, offsets, pair inputs. The vocabulary is
 * an open-addressing hash of the token strings (FNV-1a).
 */
#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "base/fc_base.h"
#include "base/file.h"
#include "base/utf8.h"
#include "format/gguf.h"

#define MAX_JSON_BYTES (64u << 20)

typedef struct added_tok {
    char *text;
    size_t len;
    int32_t id;
} added_tok;

struct fc_wordpiece {
    char **tok;            /* (V) token text by id, NULL for holes */
    int n_vocab;
    int32_t *slots;        /* hash slots: id or -1 */
    size_t n_slots;        /* power of two */
    added_tok *added;      /* matched in the raw text, longest first */
    int n_added;
    int32_t unk_id, cls_id, sep_id;
    char prefix[16];       /* continuing_subword_prefix */
    int max_chars;         /* max_input_chars_per_word */
    bool clean_text, chinese, strip_accents, lowercase;
};

/* ---- vocabulary hash ---- */

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int32_t vocab_find(const fc_wordpiece *wp, const char *s, size_t n)
{
    size_t mask = wp->n_slots - 1;
    for (size_t i = fnv(s, n) & mask;; i = (i + 1) & mask) {
        int32_t id = wp->slots[i];
        if (id < 0) return -1;
        const char *t = wp->tok[id];
        if (strlen(t) == n && !memcmp(t, s, n)) return id;
    }
}

static void vocab_insert(fc_wordpiece *wp, int32_t id)
{
    size_t mask = wp->n_slots - 1, n = strlen(wp->tok[id]);
    size_t i = fnv(wp->tok[id], n) & mask;
    while (wp->slots[i] >= 0) i = (i + 1) & mask;
    wp->slots[i] = id;
}

/* ---- loading ---- */

void fc_wordpiece_free(fc_wordpiece *wp)
{
    if (!wp) return;
    for (int i = 0; i < wp->n_vocab; i++) free(wp->tok[i]);
    free(wp->tok);
    free(wp->slots);
    for (int i = 0; i < wp->n_added; i++) free(wp->added[i].text);
    free(wp->added);
    free(wp);
}

static int cmp_added(const void *a, const void *b)
{
    const added_tok *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

static bool json_bool(const cJSON *o, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

/* The id of a special token of the post-processor template (by its name),
 * else the vocabulary's entry of that text, else -1. */
static int32_t special_id(const fc_wordpiece *wp, const cJSON *post, const char *name)
{
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(post, "special_tokens"), name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
    if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == 1 && cJSON_IsNumber(ids->child)) {
        double d = ids->child->valuedouble;
        if (d >= 0 && d < wp->n_vocab) return (int32_t)d;
    }
    return vocab_find(wp, name, strlen(name));
}

fc_wordpiece *fc_wordpiece_parse(const char *json, size_t len, const char *name)
{
    if (!name) name = "tokenizer.json";
    cJSON *root = cJSON_ParseWithLength(json, len);
    fc_wordpiece *wp = NULL;
    if (!root) {
        FC_LOG_ERROR("%s: not valid JSON", name);
        return NULL;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "WordPiece")) {
        FC_LOG_ERROR("%s: model type is %s, not WordPiece", name, cJSON_IsString(type) ? type->valuestring : "missing");
        goto fail;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab) || !vocab->child) {
        FC_LOG_ERROR("%s: model.vocab missing or empty", name);
        goto fail;
    }
    wp = fc_xcalloc(1, sizeof *wp);
    int n = cJSON_GetArraySize(vocab);
    const cJSON *it;
    int max_id = -1;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0 && it->valuedouble < 4.0 * n + 1024) || !it->string) {
            FC_LOG_ERROR("%s: vocab entry '%s' has no valid id", name, it->string ? it->string : "?");
            goto fail;
        }
        if ((int)it->valuedouble > max_id) max_id = (int)it->valuedouble;
    }
    wp->n_vocab = max_id + 1;
    wp->tok = fc_xcalloc((size_t)wp->n_vocab, sizeof(char *));
    wp->n_slots = 16;
    while (wp->n_slots < 2 * (size_t)wp->n_vocab) wp->n_slots *= 2;
    wp->slots = fc_xmalloc(wp->n_slots * sizeof(int32_t));
    memset(wp->slots, 0xff, wp->n_slots * sizeof(int32_t));
    cJSON_ArrayForEach(it, vocab) {
        int id = (int)it->valuedouble;
        if (wp->tok[id] || vocab_find(wp, it->string, strlen(it->string)) >= 0) {
            FC_LOG_ERROR("%s: vocab id %d or token '%s' repeated", name, id, it->string);
            goto fail;
        }
        wp->tok[id] = fc_xstrdup(it->string);
        vocab_insert(wp, id);
    }
    for (int i = 0; i < wp->n_vocab; i++)
        if (!wp->tok[i]) wp->tok[i] = fc_xstrdup(""); /* a hole: never matched (empty pieces are not looked up) */

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    const char *unk_s = cJSON_IsString(unk) ? unk->valuestring : "[UNK]";
    wp->unk_id = vocab_find(wp, unk_s, strlen(unk_s));
    if (wp->unk_id < 0) {
        FC_LOG_ERROR("%s: unk_token '%s' not in the vocabulary", name, unk_s);
        goto fail;
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const char *pre_s = cJSON_IsString(pre) ? pre->valuestring : "##";
    if (strlen(pre_s) >= sizeof wp->prefix) {
        FC_LOG_ERROR("%s: continuing_subword_prefix too long", name);
        goto fail;
    }
    strcpy(wp->prefix, pre_s);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    wp->max_chars = cJSON_IsNumber(mc) && mc->valuedouble >= 1 && mc->valuedouble < 1e6 ? (int)mc->valuedouble : 100;

    /* normalizer: BertNormalizer (or none) */
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *nt = cJSON_GetObjectItemCaseSensitive(norm, "type");
        if (!cJSON_IsString(nt) || strcmp(nt->valuestring, "BertNormalizer")) {
            FC_LOG_ERROR("%s: normalizer %s is not supported (BertNormalizer only)", name,
                         cJSON_IsString(nt) ? nt->valuestring : "?");
            goto fail;
        }
        wp->clean_text = json_bool(norm, "clean_text", true);
        wp->chinese = json_bool(norm, "handle_chinese_chars", true);
        wp->lowercase = json_bool(norm, "lowercase", true);
        wp->strip_accents = json_bool(norm, "strip_accents", wp->lowercase); /* null follows lowercase */
    }
    const cJSON *ptk = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (ptk && !cJSON_IsNull(ptk)) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(ptk, "type");
        if (!cJSON_IsString(pt) || strcmp(pt->valuestring, "BertPreTokenizer")) {
            FC_LOG_ERROR("%s: pre_tokenizer %s is not supported (BertPreTokenizer only)", name,
                         cJSON_IsString(pt) ? pt->valuestring : "?");
            goto fail;
        }
    }
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    wp->cls_id = special_id(wp, post, "[CLS]");
    wp->sep_id = special_id(wp, post, "[SEP]");
    if (wp->cls_id < 0 || wp->sep_id < 0) {
        FC_LOG_ERROR("%s: no [CLS] / [SEP] token", name);
        goto fail;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    cJSON_ArrayForEach(it, added) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsString(c) || !*c->valuestring || !cJSON_IsNumber(id) || !(id->valuedouble >= 0) ||
            id->valuedouble >= wp->n_vocab)
            continue;
        /* normalized added tokens would be matched after normalization; the
         * BERT files mark theirs normalized = false, which is all we match */
        wp->added = fc_xrealloc(wp->added, sizeof(added_tok) * (size_t)(wp->n_added + 1));
        added_tok *a = &wp->added[wp->n_added++];
        a->text = fc_xstrdup(c->valuestring);
        a->len = strlen(a->text);
        a->id = (int32_t)id->valuedouble;
    }
    if (wp->n_added) qsort(wp->added, (size_t)wp->n_added, sizeof(added_tok), cmp_added);
    cJSON_Delete(root);
    return wp;
fail:
    cJSON_Delete(root);
    fc_wordpiece_free(wp);
    return NULL;
}

fc_wordpiece *fc_wordpiece_load(const char *path)
{
    size_t len = 0;
    char *file = NULL;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) file = fc_xasprintf("%s/tokenizer.json", path);
    if (!file && fc_gguf_is_file(path)) { /* a GGUF "bert" file (wordpiece_gguf.c) */
        fc_gguf *g = fc_gguf_open(path);
        fc_wordpiece *wp = g ? fc_wordpiece_from_gguf(g, path) : NULL;
        fc_gguf_free(g);
        return wp;
    }
    char *json = fc_file_read(file ? file : path, &len, MAX_JSON_BYTES);
    if (!json) {
        FC_LOG_ERROR("%s: cannot read tokenizer.json", file ? file : path);
        free(file);
        return NULL;
    }
    fc_wordpiece *wp = fc_wordpiece_parse(json, len, file ? file : path);
    free(json);
    free(file);
    return wp;
}

int fc_wordpiece_n_vocab(const fc_wordpiece *wp) { return wp->n_vocab; }

const char *fc_wordpiece_token(const fc_wordpiece *wp, int32_t id)
{
    return id >= 0 && id < wp->n_vocab ? wp->tok[id] : NULL;
}

/* ---- normalization and pre-tokenization ---- */

typedef struct ids_buf {
    int32_t *p;
    int n, cap;
    bool oom;
} ids_buf;

static void ids_push(ids_buf *b, int32_t id)
{
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        int32_t *p = realloc(b->p, sizeof(int32_t) * (size_t)cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    b->p[b->n++] = id;
}

/* Rust's char::is_whitespace (the White_Space property). */
static bool is_ws(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
           c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* tokenizers' is_control: the C* categories except \t \n \r. */
static bool is_other(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return false;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CS ||
           k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CN;
}

/* tokenizers' is_chinese_char ranges (BertNormalizer). */
static bool is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* BertPreTokenizer's punctuation: ASCII punctuation or a P* category. */
static bool is_punct(uint32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* One word (UTF-8, normalized) -> WordPiece ids. */
static void word_pieces(const fc_wordpiece *wp, const char *w, size_t n, int n_chars, ids_buf *out)
{
    if (n_chars > wp->max_chars) {
        ids_push(out, wp->unk_id);
        return;
    }
    size_t pl = strlen(wp->prefix);
    char stackbuf[512];
    char *buf = n + pl <= sizeof stackbuf ? stackbuf : malloc(n + pl);
    if (!buf) {
        out->oom = true;
        return;
    }
    int first = out->n;
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        int32_t found = -1;
        while (end > start) {
            size_t off = 0;
            if (start > 0) memcpy(buf, wp->prefix, pl), off = pl;
            memcpy(buf + off, w + start, end - start);
            found = vocab_find(wp, buf, off + end - start);
            if (found >= 0) break;
            /* back off one character */
            end--;
            while (end > start && ((uint8_t)w[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) {
            out->n = first;
            ids_push(out, wp->unk_id);
            break;
        }
        ids_push(out, found);
        start = end;
    }
    if (buf != stackbuf) free(buf);
}

/* Normalized text of one code point appended to a word buffer. */
typedef struct wbuf {
    char *p;
    size_t n, cap;
    int chars;
    bool oom;
} wbuf;

static void wb_put(wbuf *b, uint32_t c)
{
    if (b->n + 4 > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p, b->cap = cap;
    }
    b->n += (size_t)fc_utf8_encode(c, b->p + b->n);
    b->chars++;
}

static void flush_word(const fc_wordpiece *wp, wbuf *w, ids_buf *out)
{
    if (w->n) word_pieces(wp, w->p, w->n, w->chars, out);
    w->n = 0;
    w->chars = 0;
}

/* A normalized code point enters the pre-tokenizer. */
static void pre_tok(const fc_wordpiece *wp, uint32_t c, wbuf *w, ids_buf *out)
{
    if (is_ws(c)) {
        flush_word(wp, w, out);
    } else if (is_punct(c)) {
        flush_word(wp, w, out);
        wb_put(w, c);
        flush_word(wp, w, out);
    } else {
        wb_put(w, c);
    }
}

/* Normalizes one code point of the input and feeds the result on. */
static void normalize_cp(const fc_wordpiece *wp, uint32_t c, wbuf *w, ids_buf *out)
{
    if (wp->clean_text) {
        if (c == 0 || c == 0xFFFD || is_other(c)) return;
        if (is_ws(c)) c = ' ';
    }
    if (wp->chinese && is_cjk(c)) {
        pre_tok(wp, ' ', w, out);
        /* an ideograph is punctuation-free and not whitespace: it stands alone */
    }
    utf8proc_int32_t dec[32];
    int nd = 1;
    dec[0] = (utf8proc_int32_t)c;
    if (wp->strip_accents) {
        int last = 0;
        utf8proc_ssize_t r = utf8proc_decompose_char((utf8proc_int32_t)c, dec, 32, UTF8PROC_DECOMPOSE, &last);
        nd = r > 0 && r <= 32 ? (int)r : 1;
        if (r <= 0 || r > 32) dec[0] = (utf8proc_int32_t)c;
    }
    for (int i = 0; i < nd; i++) {
        uint32_t d = (uint32_t)dec[i];
        if (wp->strip_accents && utf8proc_category(dec[i]) == UTF8PROC_CATEGORY_MN) continue;
        if (wp->lowercase) {
            if (d == 0x130 && !wp->strip_accents) { /* full mapping: i + combining dot above */
                pre_tok(wp, 'i', w, out);
                d = 0x307;
            } else {
                d = (uint32_t)utf8proc_tolower((utf8proc_int32_t)d);
            }
        }
        pre_tok(wp, d, w, out);
    }
    if (wp->chinese && is_cjk(c)) pre_tok(wp, ' ', w, out);
}

/* Normalizes, pre-tokenizes and splits text[0..n) (no added tokens in it). */
static void encode_plain(const fc_wordpiece *wp, const char *s, size_t n, ids_buf *out)
{
    wbuf w = {0};
    size_t i = 0;
    while (i < n && !w.oom) {
        uint32_t c;
        int l = fc_utf8_next(s + i, n - i, &c);
        if (l <= 0) {
            /* maximal ill-formed subpart: one U+FFFD */
            l = (int)fc_utf8_bad_len((const uint8_t *)s + i, n - i, NULL);
            c = 0xFFFD;
        }
        i += (size_t)l;
        normalize_cp(wp, c, &w, out);
    }
    flush_word(wp, &w, out);
    if (w.oom) out->oom = true;
    free(w.p);
}

int fc_wordpiece_encode(const fc_wordpiece *wp, const char *text, size_t len, bool add_special, int max_len,
                        int32_t **ids)
{
    ids_buf out = {0};
    if (add_special) ids_push(&out, wp->cls_id);
    size_t seg = 0, i = 0;
    while (i < len) {
        const added_tok *hit = NULL;
        for (int k = 0; k < wp->n_added; k++)
            if (wp->added[k].len <= len - i && !memcmp(text + i, wp->added[k].text, wp->added[k].len)) {
                hit = &wp->added[k];
                break;
            }
        if (!hit) {
            i++;
            continue;
        }
        encode_plain(wp, text + seg, i - seg, &out);
        ids_push(&out, hit->id);
        i += hit->len;
        seg = i;
    }
    encode_plain(wp, text + seg, len - seg, &out);
    if (max_len > 0) {
        int keep = add_special ? max_len - 1 : max_len; /* the [CLS] counts; [SEP] added below */
        if (add_special && keep < 1) keep = 1;
        if (out.n > keep) out.n = keep;
    }
    if (add_special) ids_push(&out, wp->sep_id);
    if (out.oom) {
        free(out.p);
        *ids = NULL;
        return -1;
    }
    if (!out.p) out.p = malloc(sizeof(int32_t));
    *ids = out.p;
    return out.n;
}
