/*
 * vocab.c: the vocabulary tables of fc_tokenizer and the small pieces of
 * text machinery everything else uses: growable buffers, UTF-8 (with the
 * "maximal subpart" replacement rule Rust's from_utf8_lossy follows), the
 * Unicode predicates Hugging Face's Rust code calls (char::is_whitespace,
 * is_numeric, is_alphanumeric) answered from utf8proc's tables, GPT-2's
 * byte alphabet, and two open-addressing hash maps (texts -> id, id pairs ->
 * merge).
 *
 * The byte alphabet (GPT-2 bytes_to_unicode): the 188 bytes that are
 * printable in Latin-1 ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to themselves;
 * the other 68, in increasing order, map to U+0100, U+0101, ... So a
 * byte-level vocabulary spells a space as 'Ġ' (U+0120) and a newline as 'Ċ'.
 */
#include "tok_impl.h"

#include <string.h>
#include <utf8proc.h>

/* ---- buffers ---- */

void fc_tok_ivec_push(fc_tok_ivec *v, int32_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->v = fc_xrealloc(v->v, v->cap * sizeof(int32_t));
    }
    v->v[v->n++] = x;
}

void fc_tok_ivec_free(fc_tok_ivec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

/* ---- Unicode predicates ---- */

bool fc_tok_is_whitespace(uint32_t cp)
{
    /* The White_Space property (PropList.txt), which Rust's is_whitespace uses. */
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool fc_tok_is_numeric(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool fc_tok_is_alnum(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

/* ---- GPT-2 byte alphabet ---- */

static bool byte_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t fc_tok_byte_to_cp(uint8_t b)
{
    if (byte_printable(b)) return b;
    /* rank of b among the non-printable bytes */
    unsigned k;
    if (b <= 0x20) k = b;                    /* 0x00..0x20: 33 bytes */
    else if (b <= 0xA0) k = 33 + (b - 0x7F); /* 0x7F..0xA0: 34 bytes */
    else k = 67;                             /* 0xAD */
    return 0x100 + k;
}

int fc_tok_cp_to_byte(uint32_t cp)
{
    if (cp < 0x100) return byte_printable(cp) ? (int)cp : -1;
    if (cp < 0x100 + 33) return (int)(cp - 0x100);
    if (cp < 0x100 + 67) return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67) return 0xAD;
    return -1;
}

/* ---- hashing ---- */

uint64_t fc_tok_hash(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ (w * 0xFF51AFD7ED558CCDull)) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
        s += 8; n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ (w * 0xFF51AFD7ED558CCDull)) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    return h;
}

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n) c *= 2;
    return c;
}

void fc_tok_strmap_init(fc_tok_strmap *m, size_t n_expected, const char *const *keys, const uint32_t *lens)
{
    uint32_t cap = pow2_at_least(n_expected * 2 + 1);
    m->slot = fc_xmalloc(cap * sizeof(int32_t));
    memset(m->slot, 0xFF, cap * sizeof(int32_t));
    m->mask = cap - 1;
    m->keys = keys;
    m->lens = lens;
}

void fc_tok_strmap_put(fc_tok_strmap *m, int32_t id)
{
    const char *k = m->keys[id];
    size_t n = m->lens[id];
    for (uint32_t i = (uint32_t)fc_tok_hash(k, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t s = m->slot[i];
        if (s < 0 || (m->lens[s] == n && !memcmp(m->keys[s], k, n))) {
            m->slot[i] = id;
            return;
        }
    }
}

int32_t fc_tok_strmap_get(const fc_tok_strmap *m, const char *s, size_t n)
{
    if (!m->slot) return -1;
    for (uint32_t i = (uint32_t)fc_tok_hash(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if (m->lens[id] == n && !memcmp(m->keys[id], s, n)) return id;
    }
}

void fc_tok_strmap_free(fc_tok_strmap *m)
{
    free(m->slot);
    m->slot = NULL;
}

void fc_tok_mergemap_init(fc_tok_mergemap *m, size_t n_expected)
{
    uint32_t cap = pow2_at_least(n_expected * 2 + 1);
    m->slot = fc_xmalloc(cap * sizeof(fc_tok_merge));
    for (uint32_t i = 0; i < cap; i++) m->slot[i].rank = -1;
    m->mask = cap - 1;
    m->n = 0;
}

static void mergemap_grow(fc_tok_mergemap *m)
{
    fc_tok_mergemap bigger;
    fc_tok_mergemap_init(&bigger, (size_t)(m->mask + 1));
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slot[i].rank >= 0)
            fc_tok_mergemap_put(&bigger, (int32_t)(m->slot[i].key >> 32), (int32_t)(uint32_t)m->slot[i].key,
                            m->slot[i].rank, m->slot[i].id);
    free(m->slot);
    *m = bigger;
}

void fc_tok_mergemap_put(fc_tok_mergemap *m, int32_t a, int32_t b, int32_t rank, int32_t id)
{
    if ((m->n + 1) * 2 > m->mask + 1) mergemap_grow(m);
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = (uint32_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        fc_tok_merge *e = &m->slot[i];
        if (e->rank < 0) m->n++;
        if (e->rank < 0 || e->key == key) {  /* a later merge of the same pair wins, as in HF */
            e->key = key;
            e->rank = rank;
            e->id = id;
            return;
        }
    }
}

void fc_tok_mergemap_free(fc_tok_mergemap *m)
{
    free(m->slot);
    m->slot = NULL;
}

/* ---- building the vocabulary ---- */

void fc_tok_vocab_alloc(fc_tokenizer *t, int32_t n)
{
    t->n_vocab = n;
    t->text = fc_xcalloc((size_t)n, sizeof(char *));
    t->text_len = fc_xcalloc((size_t)n, sizeof(uint32_t));
    t->key = fc_xcalloc((size_t)n, sizeof(char *));
    t->key_len = fc_xcalloc((size_t)n, sizeof(uint32_t));
    t->piece = fc_xcalloc((size_t)n, sizeof(char *));
    t->piece_len = fc_xcalloc((size_t)n, sizeof(uint32_t));
    t->flags = fc_xcalloc((size_t)n, 1);
}

/* While loading, string pointers hold offset+1 into t->strs (0 = none); the
 * buffer may still move. fc_tok_vocab_finish turns them into pointers. */
static char *str_ref(fc_tokenizer *t, const char *s, size_t n)
{
    size_t off = t->strs.len;
    fc_str_putn(&t->strs, s, n);
    fc_str_putc(&t->strs, '\0');
    return (char *)(uintptr_t)(off + 1);
}

static char *str_ptr(const fc_tokenizer *t, char *ref)
{
    return ref ? t->strs.p + ((uintptr_t)ref - 1) : NULL;
}

const char *fc_tok_vocab_text_early(const fc_tokenizer *t, int32_t id)
{
    return t->texts_indexed ? t->text[id] : str_ptr(t, t->text[id]);
}

void fc_tok_vocab_set_text(fc_tokenizer *t, int32_t id, const char *s, size_t n)
{
    FC_ASSERT(id >= 0 && id < t->n_vocab);
    t->text[id] = str_ref(t, s, n);
    t->text_len[id] = (uint32_t)n;
    t->flags[id] |= TK_F_MODEL;
}

void fc_tok_added_add(fc_tokenizer *t, int32_t id, const char *content, size_t len, bool special,
                  bool normalized, bool lstrip, bool rstrip, bool single_word)
{
    FC_ASSERT(id >= 0 && id < t->n_vocab);
    t->added = fc_xrealloc(t->added, (size_t)(t->n_added + 1) * sizeof(fc_tok_added));
    fc_tok_added *a = &t->added[t->n_added++];
    a->id = id;
    a->content = fc_xmalloc(len + 1);
    memcpy(a->content, content, len);
    a->content[len] = '\0';
    a->len = len;
    a->special = special;
    a->normalized = normalized;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->single_word = single_word;
    if (!t->text[id]) {  /* an added token outside the model vocabulary */
        t->text[id] = str_ref(t, content, len);
        t->text_len[id] = (uint32_t)len;
    }
    t->flags[id] |= TK_F_ADDED | (special ? TK_F_SPECIAL : 0);
}

int32_t fc_tok_vocab_text_id(const fc_tokenizer *t, const char *s, size_t n)
{
    int32_t id = fc_tok_strmap_get(&t->by_text, s, n);
    return id >= 0 && (t->flags[id] & TK_F_MODEL) ? id : -1;
}

bool fc_tok_vocab_add_merge(fc_tokenizer *t, const char *a, size_t a_len, const char *b, size_t b_len,
                        int32_t rank)
{
    int32_t ia = fc_tok_vocab_text_id(t, a, a_len), ib = fc_tok_vocab_text_id(t, b, b_len);
    if (ia < 0 || ib < 0) return false;
    char stack[256];
    char *ab = a_len + b_len <= sizeof stack ? stack : fc_xmalloc(a_len + b_len);
    memcpy(ab, a, a_len);
    memcpy(ab + a_len, b, b_len);
    int32_t id = fc_tok_vocab_text_id(t, ab, a_len + b_len);
    if (ab != stack) free(ab);
    if (id < 0) return false;
    fc_tok_mergemap_put(&t->merges, ia, ib, rank, id);
    return true;
}

/* Byte-level model key of a text: its bytes through the inverse alphabet, or
 * false when some character is not in the alphabet. */
static bool bytelevel_key(const char *s, size_t n, fc_str *out)
{
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        int len = fc_utf8_len(u + i, n - i);
        if (!len) return false;
        int b = fc_tok_cp_to_byte(fc_utf8_decode(u + i, len));
        if (b < 0) return false;
        fc_str_putc(out, (char)b);
        i += (size_t)len;
    }
    return true;
}

/* Called once the texts are final: builds by_text so that loaders can look
 * texts up (merges, special tokens) before fc_tok_vocab_finish. */
void fc_tok_vocab_index_texts(fc_tokenizer *t)
{
    for (int32_t i = 0; i < t->n_vocab; i++) t->text[i] = str_ptr(t, t->text[i]);
    fc_tok_strmap_init(&t->by_text, (size_t)t->n_vocab, (const char *const *)t->text, t->text_len);
    /* Model tokens first, then added contents, so that an added token whose
     * content is also a vocabulary text resolves to the added id. */
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->text[i] && !(t->flags[i] & TK_F_ADDED)) fc_tok_strmap_put(&t->by_text, i);
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->text[i] && (t->flags[i] & TK_F_ADDED)) fc_tok_strmap_put(&t->by_text, i);
    t->texts_indexed = true;
}

enum fc_status fc_tok_vocab_finish(fc_tokenizer *t)
{
    if (!t->texts_indexed) fc_tok_vocab_index_texts(t);
    /* Keys: texts are already in t->strs; byte-level keys are appended. The
     * text pointers must be recomputed if the buffer moves, so record
     * offsets first. */
    size_t *text_off = fc_xmalloc((size_t)t->n_vocab * sizeof(size_t));
    for (int32_t i = 0; i < t->n_vocab; i++)
        text_off[i] = t->text[i] ? (size_t)(t->text[i] - t->strs.p) : SIZE_MAX;
    size_t *key_off = fc_xmalloc((size_t)t->n_vocab * sizeof(size_t));
    fc_str kb = {0};
    for (int32_t i = 0; i < t->n_vocab; i++) {
        key_off[i] = SIZE_MAX;
        if (!t->text[i] || !(t->flags[i] & TK_F_MODEL)) continue;
        if (!t->byte_level) {
            key_off[i] = text_off[i];
            t->key_len[i] = t->text_len[i];
            continue;
        }
        size_t start = kb.len;
        if (bytelevel_key(t->strs.p + text_off[i], t->text_len[i], &kb)) {
            key_off[i] = (size_t)1 << 62 | start;  /* tagged: offset into kb */
            t->key_len[i] = (uint32_t)(kb.len - start);
        } else {
            kb.len = start;
        }
    }
    size_t kb_base = t->strs.len;
    fc_str_putn(&t->strs, kb.p, kb.len);
    fc_str_free(&kb);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        t->text[i] = text_off[i] == SIZE_MAX ? NULL : t->strs.p + text_off[i];
        if (key_off[i] == SIZE_MAX) t->key[i] = NULL;
        else if (key_off[i] >> 62) t->key[i] = t->strs.p + kb_base + (key_off[i] & (((size_t)1 << 62) - 1));
        else t->key[i] = t->strs.p + key_off[i];
    }
    free(text_off);
    free(key_off);
    /* by_text's key array is t->text, whose pointers just changed in place:
     * the map stores ids only, so it stays valid. */

    fc_tok_strmap_init(&t->by_key, (size_t)t->n_vocab, (const char *const *)t->key, t->key_len);
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->key[i]) fc_tok_strmap_put(&t->by_key, i);

    for (int b = 0; b < 256; b++) {
        t->byte_tok[b] = -1;
        if (t->byte_level) {
            char c = (char)b;
            t->byte_tok[b] = fc_tok_strmap_get(&t->by_key, &c, 1);
        } else if (t->byte_fallback) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_tok[b] = fc_tok_strmap_get(&t->by_key, name, 6);
        }
    }
    return FC_OK;
}
