/*
 * pretok.c: everything between the raw text and the BPE model: matching
 * added tokens, the normalizers, and the pre-tokenizers that cut text into
 * the pieces BPE sees. Mirrors Hugging Face tokenizers' AddedVocabulary
 * (leftmost-longest match, lstrip/rstrip/single_word, special tokens skipped
 * when they must not be parsed), the normalizers and pre_tokenizers modules,
 * including NormalizedString::split's five delimiter behaviors.
 *
 * Regexes: Hugging Face compiles its patterns with Oniguruma; we use PCRE2
 * (UTF + UCP, JIT). The two agree on \p{L}, \p{N}, case-insensitive groups
 * (?i:'s also matches "'ſ") and Perl's leftmost-first alternation, and differ
 * in the escape classes, which fc_tok_regex_compile rewrites: Oniguruma's \s is
 * White_Space and includes U+0085 (PCRE2's does not), its \w is
 * Alphabetic|Mark|Decimal_Number|Connector_Punctuation. (The Whitespace
 * pre-tokenizer is the exception: tokenizers runs it with Rust's regex crate,
 * whose \w is Unicode's word class, Alphabetic|Mark|Nd|Pc|Join_Control.)
 *
 * Not done: the SentencePiece Precompiled normalizer, BertPreTokenizer,
 * Punctuation, UnicodeScripts, CharDelimiterSplit (loaders reject them).
 */
#include "tok_impl.h"

#include <string.h>
#include <utf8proc.h>

/* The split regexes of the pre-tokenizers we build without a tokenizer.json
 * (GGUF files): GPT-2's (ByteLevel use_regex=true; openai/gpt-2 encoder.py),
 * Llama-3's (meta-llama/Meta-Llama-3-8B tokenizer.json) and Qwen2's
 * (Qwen/Qwen2-7B tokenizer.json). */
const char TK_GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const char TK_LLAMA3_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Whitespace's \w+|[^\w\s]+ in Rust regex's classes, as PCRE2 syntax. */
#define RUST_W "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
const char TK_WHITESPACE_PATTERN[] = "[" RUST_W "]+|[^" RUST_W "\\s\\x{85}]+";
const char TK_QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- regex ---- */

#define ONIG_W "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}"

pcre2_code *fc_tok_regex_compile(const char *pat, size_t len, enum fc_tok_regex_kind kind)
{
    fc_str b = {0};
    bool literal = kind == TK_RE_LITERAL;
    if (kind != TK_RE_ONIG) {
        fc_str_putn(&b, pat, len);
    } else {
        bool in_class = false;
        for (size_t i = 0; i < len; i++) {
            char c = pat[i];
            if (c == '\\' && i + 1 < len) {
                char e = pat[++i];
                const char *rep = NULL;
                if (!in_class) {
                    switch (e) {
                    case 's': rep = "[\\s\\x{85}]"; break;
                    case 'S': rep = "[^\\s\\x{85}]"; break;
                    case 'w': rep = "[" ONIG_W "]"; break;
                    case 'W': rep = "[^" ONIG_W "]"; break;
                    case 'd': rep = "\\p{Nd}"; break;
                    case 'D': rep = "\\P{Nd}"; break;
                    }
                } else {
                    switch (e) {
                    case 's': rep = "\\s\\x{85}"; break;
                    case 'w': rep = ONIG_W; break;
                    case 'd': rep = "\\p{Nd}"; break;
                    }
                }
                if (rep) {
                    fc_str_putn(&b, rep, strlen(rep));
                } else {
                    fc_str_putc(&b, '\\');
                    fc_str_putc(&b, e);
                }
                continue;
            }
            if (!in_class && c == '[') {
                in_class = true;
                fc_str_putc(&b, c);
                /* a ']' right after '[' or '[^' is literal */
                if (i + 1 < len && pat[i + 1] == '^') fc_str_putc(&b, pat[++i]);
                if (i + 1 < len && pat[i + 1] == ']') fc_str_putc(&b, pat[++i]);
                continue;
            }
            if (in_class && c == ']') in_class = false;
            fc_str_putc(&b, c);
        }
    }
    int err;
    PCRE2_SIZE erroff;
    uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(b.p ? b.p : ""), b.len, opts, &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        FC_LOG_ERROR("tokenizer: regex '%.*s': %s at offset %zu", (int)len, pat, (char *)msg,
                     (size_t)erroff);
    } else {
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if unavailable */
    }
    fc_str_free(&b);
    return re;
}

/* ---- per-thread scratch ---- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    fc_tok_scratch *s = p;
    if (!s) return;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mc);
    pcre2_jit_stack_free(s->js);
    fc_tok_plist_free(&s->pa);
    fc_tok_plist_free(&s->pb);
    fc_str_free(&s->norm);
    fc_str_free(&s->norm2);
    fc_str_free(&s->clean);
    free(s->span);
    free(s->bpe);
    free(s->heap);
    free(s);
}

static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_free); }

fc_tok_scratch *fc_tok_scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_init);
    fc_tok_scratch *s = pthread_getspecific(scratch_key);
    if (s) return s;
    s = fc_xcalloc(1, sizeof *s);
    s->md = pcre2_match_data_create(8, NULL);
    s->mc = pcre2_match_context_create(NULL);
    s->js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    FC_ASSERT(s->md && s->mc);
    if (s->js) pcre2_jit_stack_assign(s->mc, NULL, s->js);
    pthread_setspecific(scratch_key, s);
    return s;
}

/* ---- piece lists ---- */

void fc_tok_plist_clear(fc_tok_plist *l)
{
    l->b.len = 0;
    l->n = 0;
}

void fc_tok_plist_add(fc_tok_plist *l, const char *s, size_t n, bool at_start)
{
    if (n == 0) return; /* HF drops empty splits */
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = fc_xrealloc(l->v, l->cap * sizeof(fc_tok_piece));
    }
    l->v[l->n++] = (fc_tok_piece){(uint32_t)l->b.len, (uint32_t)n, at_start};
    fc_str_putn(&l->b, s, n);
}

void fc_tok_plist_free(fc_tok_plist *l)
{
    fc_str_free(&l->b);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static void span_add(fc_tok_scratch *sc, size_t s, size_t e, bool match)
{
    if (sc->n_span == sc->cap_span) {
        sc->cap_span = sc->cap_span ? sc->cap_span * 2 : 256;
        sc->span = fc_xrealloc(sc->span, sc->cap_span * sizeof(fc_tok_span));
    }
    sc->span[sc->n_span++] = (fc_tok_span){(uint32_t)s, (uint32_t)e, match};
}

/* ---- matching ---- */

/* One match of re in s[0..n) at or after pos; false when none. */
static bool regex_find(fc_tok_scratch *sc, const pcre2_code *re, const char *s, size_t n, size_t pos,
                       size_t *ms, size_t *me)
{
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, sc->md, sc->mc);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, sc->md, sc->mc);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(rc, msg, sizeof msg);
        FC_LOG_WARN("tokenizer: regex match failed (%s); text left unsplit", (char *)msg);
        return false;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
    *ms = ov[0];
    *me = ov[1];
    return true;
}

/* Fills sc->span with the matches of re over s (each with the gap before it),
 * as tokenizers' Pattern::find_matches. */
static void find_regex(fc_tok_scratch *sc, const pcre2_code *re, const char *s, size_t n)
{
    sc->n_span = 0;
    size_t prev = 0, pos = 0, ms, me;
    while (pos <= n && regex_find(sc, re, s, n, pos, &ms, &me)) {
        if (me == ms) { /* empty match: step over one character */
            if (ms >= n) break;
            int l = fc_utf8_len((const uint8_t *)s + ms, n - ms);
            pos = ms + (size_t)(l ? l : 1);
            continue;
        }
        if (prev != ms) span_add(sc, prev, ms, false);
        span_add(sc, ms, me, true);
        prev = pos = me;
    }
    if (prev != n) span_add(sc, prev, n, false);
}

/* Each character for which pred holds is one match. */
static void find_chars(fc_tok_scratch *sc, bool (*pred)(uint32_t), const char *s, size_t n)
{
    sc->n_span = 0;
    const uint8_t *u = (const uint8_t *)s;
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        int l = fc_utf8_len(u + i, n - i);
        if (!l) l = 1;
        if (pred(fc_utf8_decode(u + i, l))) {
            if (last < i) span_add(sc, last, i, false);
            span_add(sc, i, i + (size_t)l, true);
            last = i + (size_t)l;
        }
        i += (size_t)l;
    }
    if (last < n) span_add(sc, last, n, false);
}

/* Applies a delimiter behavior to sc->span (in place). After this, spans with
 * match=true are to be dropped (Removed) and the others kept. */
static void apply_behavior(fc_tok_scratch *sc, enum fc_tok_split_behavior bh, bool invert)
{
    fc_tok_span *v = sc->span;
    size_t n = sc->n_span, k = 0;
    if (invert)
        for (size_t i = 0; i < n; i++) v[i].match = !v[i].match;
    switch (bh) {
    case TK_REMOVED:
        return;
    case TK_ISOLATED:
        for (size_t i = 0; i < n; i++) v[i].match = false;
        return;
    case TK_CONTIGUOUS: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool m = v[i].match;
            if (m == prev && k > 0) v[k - 1].e = v[i].e;
            else v[k++] = (fc_tok_span){v[i].s, v[i].e, false};
            prev = m;
        }
        break;
    }
    case TK_MERGED_PREV: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool m = v[i].match;
            if (m && !prev && k > 0) v[k - 1].e = v[i].e;
            else v[k++] = (fc_tok_span){v[i].s, v[i].e, false};
            prev = m;
        }
        break;
    }
    case TK_MERGED_NEXT: {
        /* walk backwards, writing from the end, then move to the front */
        bool prev = false;
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            bool m = v[i].match;
            if (m && !prev && w < n) v[w].s = v[i].s;
            else v[--w] = (fc_tok_span){v[i].s, v[i].e, false};
            prev = m;
        }
        k = n - w;
        memmove(v, v + w, k * sizeof(fc_tok_span));
        break;
    }
    }
    sc->n_span = k;
}

/* Appends the kept spans of s (a piece) to out. */
static void emit_spans(fc_tok_scratch *sc, const char *s, bool at_start, fc_tok_plist *out)
{
    for (size_t i = 0; i < sc->n_span; i++) {
        fc_tok_span sp = sc->span[i];
        if (sp.match) continue;
        fc_tok_plist_add(out, s + sp.s, sp.e - sp.s, at_start && sp.s == 0);
    }
}

/* ---- normalizers ---- */

static void utf8proc_norm(const char *s, size_t n, int opts, fc_str *out)
{
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | opts));
    if (r < 0) {
        FC_LOG_WARN("tokenizer: normalization failed (%s); text left as is", utf8proc_errmsg(r));
        fc_str_putn(out, s, n);
    } else {
        fc_str_putn(out, dst, (size_t)r);
    }
    free(dst);
}

static void replace_all(fc_tok_scratch *sc, const fc_tok_norm *nm, const char *s, size_t n, fc_str *out)
{
    if (nm->re) {
        size_t pos = 0, prev = 0, ms, me;
        while (pos <= n && regex_find(sc, nm->re, s, n, pos, &ms, &me)) {
            if (me == ms) {
                if (ms >= n) break;
                int l = fc_utf8_len((const uint8_t *)s + ms, n - ms);
                pos = ms + (size_t)(l ? l : 1);
                continue;
            }
            fc_str_putn(out, s + prev, ms - prev);
            fc_str_putn(out, nm->b, nm->b_len);
            prev = pos = me;
        }
        fc_str_putn(out, s + prev, n - prev);
        return;
    }
    if (nm->a_len == 0) { fc_str_putn(out, s, n); return; }
    size_t i = 0, prev = 0;
    while (i + nm->a_len <= n) {
        if (!memcmp(s + i, nm->a, nm->a_len)) {
            fc_str_putn(out, s + prev, i - prev);
            fc_str_putn(out, nm->b, nm->b_len);
            i += nm->a_len;
            prev = i;
        } else {
            i++;
        }
    }
    fc_str_putn(out, s + prev, n - prev);
}

static void norm_one(fc_tok_scratch *sc, const fc_tok_norm *nm, const char *s, size_t n, fc_str *out)
{
    const uint8_t *u = (const uint8_t *)s;
    switch (nm->kind) {
    case TK_NORM_NFC: utf8proc_norm(s, n, UTF8PROC_COMPOSE, out); break;
    case TK_NORM_NFD: utf8proc_norm(s, n, UTF8PROC_DECOMPOSE, out); break;
    case TK_NORM_NFKC: utf8proc_norm(s, n, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out); break;
    case TK_NORM_NFKD: utf8proc_norm(s, n, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out); break;
    case TK_NORM_LOWER:
        for (size_t i = 0; i < n;) {
            int l = fc_utf8_len(u + i, n - i);
            if (!l) l = 1;
            char enc[4];
            uint32_t cp = fc_utf8_decode(u + i, l);
            if (cp == 0x130) { /* the one unconditional multi-char lowercase (SpecialCasing.txt) */
                fc_str_putn(out, "i\xCC\x87", 3);
                i += (size_t)l;
                continue;
            }
            cp = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
            fc_str_putn(out, enc, (size_t)fc_utf8_encode(cp, enc));
            i += (size_t)l;
        }
        break;
    case TK_NORM_PREPEND:
        if (n) fc_str_putn(out, nm->a, nm->a_len);
        fc_str_putn(out, s, n);
        break;
    case TK_NORM_REPLACE: replace_all(sc, nm, s, n, out); break;
    case TK_NORM_STRIP: {
        size_t a = 0, b = n;
        while (nm->left && a < b) {
            int l = fc_utf8_len(u + a, b - a);
            if (!l || !fc_tok_is_whitespace(fc_utf8_decode(u + a, l))) break;
            a += (size_t)l;
        }
        while (nm->right && b > a) {
            size_t j = b - 1;
            while (j > a && (u[j] & 0xC0) == 0x80) j--;
            int l = fc_utf8_len(u + j, b - j);
            if (!l || !fc_tok_is_whitespace(fc_utf8_decode(u + j, l))) break;
            b = j;
        }
        fc_str_putn(out, s + a, b - a);
        break;
    }
    case TK_NORM_PRECOMPILED: fc_tok_norm_precompiled(nm, s, n, out); break;
    case TK_NORM_SPM: fc_tok_norm_spm(nm, s, n, out); break;
    }
}

void fc_tok_normalize(const fc_tokenizer *t, const char *s, size_t n, fc_str *out)
{
    if (t->n_norm == 0) { fc_str_putn(out, s, n); return; }
    fc_tok_scratch *sc = fc_tok_scratch_get();
    /* ping-pong between two buffers; the last step appends to out */
    fc_str tmp[2] = {{0}, {0}};
    const char *cur = s;
    size_t cur_n = n;
    for (int i = 0; i < t->n_norm; i++) {
        bool last = i == t->n_norm - 1;
        fc_str *dst = last ? out : &tmp[i & 1];
        if (!last) dst->len = 0;
        norm_one(sc, &t->norm[i], cur, cur_n, dst);
        cur = dst->p ? dst->p : "";
        cur_n = dst->len;
    }
    fc_str_free(&tmp[0]);
    fc_str_free(&tmp[1]);
}

/* ---- added tokens ---- */

static int32_t trie_node(fc_tok_trie *tr, uint8_t byte)
{
    if (tr->n == tr->cap) {
        tr->cap = tr->cap ? tr->cap * 2 : 64;
        tr->node = fc_xrealloc(tr->node, tr->cap * sizeof(fc_tok_trie_node));
    }
    tr->node[tr->n] = (fc_tok_trie_node){-1, -1, -1, byte};
    return (int32_t)tr->n++;
}

static void trie_insert(fc_tok_trie *tr, const char *s, size_t n, int32_t added)
{
    if (n == 0) return;
    if (tr->n == 0) trie_node(tr, 0); /* root */
    tr->first[(uint8_t)s[0] >> 3] |= (uint8_t)(1u << ((uint8_t)s[0] & 7));
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t ch = tr->node[cur].child;
        while (ch >= 0 && tr->node[ch].byte != c) ch = tr->node[ch].sibling;
        if (ch < 0) {
            ch = trie_node(tr, c);
            tr->node[ch].sibling = tr->node[cur].child;
            tr->node[cur].child = ch;
        }
        cur = ch;
    }
    /* Two added tokens with the same content: the first one added wins (the
     * automaton's pattern order). */
    if (tr->node[cur].added < 0) tr->node[cur].added = added;
}

void fc_tok_trie_free(fc_tok_trie *tr)
{
    free(tr->node);
    memset(tr, 0, sizeof *tr);
}

void fc_tok_added_build(fc_tokenizer *t)
{
    for (int i = 0; i < t->n_added; i++) {
        fc_tok_added *a = &t->added[i];
        if (a->normalized && t->n_norm) {
            /* the automaton of normalized tokens holds their normalized content */
            fc_str nb = {0};
            fc_tok_normalize(t, a->content, a->len, &nb);
            free(a->content);
            fc_str_putc(&nb, '\0');
            a->content = nb.p;
            a->len = nb.len - 1;
        }
        trie_insert(a->normalized ? &t->trie_norm : &t->trie_raw, a->content, a->len, i);
    }
}

/* Longest added token starting at s[0..n); -1 when none. */
static int32_t trie_longest(const fc_tok_trie *tr, const char *s, size_t n, size_t *len)
{
    int32_t cur = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t ch = tr->node[cur].child;
        while (ch >= 0 && tr->node[ch].byte != c) ch = tr->node[ch].sibling;
        if (ch < 0) break;
        cur = ch;
        if (tr->node[cur].added >= 0) {
            best = tr->node[cur].added;
            *len = i + 1;
        }
    }
    return best;
}

static uint32_t cp_before(const char *s, size_t end)
{
    size_t j = end - 1;
    while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
    int l = fc_utf8_len((const uint8_t *)s + j, end - j);
    return l ? fc_utf8_decode((const uint8_t *)s + j, l) : 0xFFFD;
}

static uint32_t cp_at(const char *s, size_t n, size_t i, int *len)
{
    int l = fc_utf8_len((const uint8_t *)s + i, n - i);
    *len = l ? l : 1;
    return l ? fc_utf8_decode((const uint8_t *)s + i, l) : 0xFFFD;
}

static bool is_word_char(uint32_t cp) { return fc_tok_is_alnum(cp) || cp == '_'; }

void fc_tok_added_split(const fc_tokenizer *t, const fc_tok_trie *tr, const char *s, size_t n,
                    bool parse_special, fc_tok_emit_fn emit, void *ctx)
{
    size_t start_off = 0;
    if (tr->n) {
        for (size_t i = 0; i < n;) {
            uint8_t c = (uint8_t)s[i];
            size_t mlen = 0;
            int32_t k = -1;
            if (tr->first[c >> 3] & (1u << (c & 7))) k = trie_longest(tr, s + i, n - i, &mlen);
            if (k < 0) { i++; continue; }
            const fc_tok_added *a = &t->added[k];
            size_t ms = i, me = i + mlen;
            i = me; /* matches never overlap, even the ones skipped below */
            if (a->special && !parse_special) continue;
            if (a->single_word) {
                bool start_ok = ms == 0 || !is_word_char(cp_before(s, ms));
                int l;
                bool stop_ok = me == n || !is_word_char(cp_at(s, n, me, &l));
                if (!start_ok || !stop_ok) continue;
            }
            if (a->lstrip) {
                size_t ns = ms;
                while (ns > 0) {
                    size_t j = ns - 1;
                    while (j > 0 && ((uint8_t)s[j] & 0xC0) == 0x80) j--;
                    int l;
                    if (!fc_tok_is_whitespace(cp_at(s, n, j, &l))) break;
                    ns = j;
                }
                ms = ns > start_off ? ns : start_off;
            }
            if (a->rstrip) {
                int l;
                while (me < n && fc_tok_is_whitespace(cp_at(s, n, me, &l))) me += (size_t)l;
                i = me;
            }
            if (start_off < ms) emit(ctx, s + start_off, ms - start_off, start_off, -1);
            emit(ctx, s + ms, me - ms, ms, a->id);
            start_off = me;
        }
    }
    if (start_off < n || n == 0) emit(ctx, s + start_off, n - start_off, start_off, -1);
}

/* ---- pre-tokenizers ---- */

static bool is_ws(uint32_t cp) { return fc_tok_is_whitespace(cp); }

fc_tok_plist *fc_tok_pretokenize(const fc_tokenizer *t, fc_tok_scratch *sc, const char *s, size_t n,
                         bool at_start)
{
    fc_tok_plist *in = &sc->pa, *out = &sc->pb;
    fc_tok_plist_clear(in);
    fc_tok_plist_add(in, s, n, at_start);
    for (int k = 0; k < t->n_pre; k++) {
        const fc_tok_pre *p = &t->pre[k];
        fc_tok_plist_clear(out);
        for (size_t j = 0; j < in->n; j++) {
            const char *ps = in->b.p + in->v[j].off;
            size_t pn = in->v[j].len;
            bool ast = in->v[j].at_start;
            switch (p->kind) {
            case TK_PRE_SPLIT:
                find_regex(sc, p->re, ps, pn);
                apply_behavior(sc, p->behavior, p->invert);
                emit_spans(sc, ps, ast, out);
                break;
            case TK_PRE_DIGITS:
                find_chars(sc, fc_tok_is_numeric, ps, pn);
                apply_behavior(sc, p->individual ? TK_ISOLATED : TK_CONTIGUOUS, false);
                emit_spans(sc, ps, ast, out);
                break;
            case TK_PRE_WSPLIT:
                find_chars(sc, is_ws, ps, pn);
                apply_behavior(sc, TK_REMOVED, false);
                emit_spans(sc, ps, ast, out);
                break;
            case TK_PRE_BYTELEVEL: {
                const char *q = ps;
                size_t qn = pn;
                fc_str *nb = &sc->norm2;
                if (p->add_prefix_space && ps[0] != ' ') {
                    nb->len = 0;
                    fc_str_putc(nb, ' ');
                    fc_str_putn(nb, ps, pn);
                    q = nb->p;
                    qn = nb->len;
                }
                if (p->re) {
                    find_regex(sc, p->re, q, qn);
                    apply_behavior(sc, TK_ISOLATED, false);
                    emit_spans(sc, q, ast, out);
                } else {
                    fc_tok_plist_add(out, q, qn, ast);
                }
                break;
            }
            case TK_PRE_METASPACE: {
                char rep[4];
                int rl = fc_utf8_encode(p->repl, rep);
                fc_str *nb = &sc->norm2;
                nb->len = 0;
                bool starts = pn >= (size_t)rl && !memcmp(ps, rep, (size_t)rl);
                bool space0 = pn > 0 && ps[0] == ' ';
                if (!starts && !space0 &&
                    (p->prepend == TK_PREPEND_ALWAYS || (p->prepend == TK_PREPEND_FIRST && ast)))
                    fc_str_putn(nb, rep, (size_t)rl);
                for (size_t i = 0; i < pn; i++) {
                    if (ps[i] == ' ') fc_str_putn(nb, rep, (size_t)rl);
                    else fc_str_putc(nb, ps[i]);
                }
                if (p->split) {
                    /* MergedWithNext on the replacement character */
                    sc->n_span = 0;
                    size_t last = 0;
                    for (size_t i = 0; i + (size_t)rl <= nb->len;) {
                        if (!memcmp(nb->p + i, rep, (size_t)rl)) {
                            if (last < i) span_add(sc, last, i, false);
                            span_add(sc, i, i + (size_t)rl, true);
                            i += (size_t)rl;
                            last = i;
                        } else {
                            i++;
                        }
                    }
                    if (last < nb->len) span_add(sc, last, nb->len, false);
                    apply_behavior(sc, TK_MERGED_NEXT, false);
                    emit_spans(sc, nb->p, ast, out);
                } else {
                    fc_tok_plist_add(out, nb->p, nb->len, ast);
                }
                break;
            }
            }
        }
        fc_tok_plist *tmp = in;
        in = out;
        out = tmp;
    }
    return in;
}
