/*
 * fuzz_tokenizer.c: libFuzzer target for encoding and decoding with real
 * tokenizers, loaded once: SmolLM2's (the default GGUF, $FASTCHAT_MODEL or
 * the fetch_model.sh cache path, when present) and the tokenizer.json folders
 * of tests/data/tokenizer (llama3, qwen2, spm, spm_legacy; run from the
 * repository root, as scripts/run_tests.sh does, or from build/fuzz/), and
 * the byte-fallback Unigram spiece.model of tests/data/unigram_bf.
 *
 * Byte 0 of the input picks the tokenizer (bits 0-2, modulo the number
 * loaded) and the flags: bit 3 add_special, bit 4 special tokens as plain
 * text, bit 5 skip_special in decode, bit 7 ids mode.
 *   text mode: the rest is text to encode. Every id must be in range;
 *     decode and streaming decode must agree wherever the text is valid
 *     UTF-8 (tokenizer.h); and where the tokenizer is lossless, valid UTF-8
 *     text must decode back to itself: SmolLM2 (byte-level BPE, no
 *     normalizer), llama3 (unless the text holds "<mask>", an lstrip added
 *     token), qwen2 for NFC text (its normalizer is NFC), spm_legacy with
 *     special tokens read as text (and no literal "▁" in it). A byte-level
 *     vocabulary may lack some bytes (SmolLM2 has no symbol for some control
 *     characters, which Hugging Face then drops, having no unk token): text
 *     holding one is left out.
 *   ids mode: the rest is little-endian u16 ids (out-of-range ones too) to
 *     decode, whole and streamed.
 * Seeds: tests/data/fuzz/fuzz_tokenizer/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "base/fc_base.h"
#include "tokenizer/tok_impl.h"

enum { LOSSLESS_ALWAYS = 1, LOSSLESS_NO_MASK, LOSSLESS_NFC, LOSSLESS_TEXT_SPECIALS };

typedef struct loaded { const char *name; fc_tokenizer *t; int lossless; } loaded;
static loaded toks[8];
static int n_toks;

static void add(const char *name, const char *path, int lossless)
{
    if (access(path, R_OK) != 0) return;
    fc_tokenizer *t = fc_tokenizer_load(path);
    if (!t) {
        fprintf(stderr, "fuzz_tokenizer: %s: %s\n", path, fc_last_error());
        abort();
    }
    toks[n_toks++] = (loaded){name, t, lossless};
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fc_log_set_level(FC_LOG_LEVEL_ERROR);
    char data[4096], path[4200];
    snprintf(data, sizeof data, "tests/data/tokenizer");
    if (access(data, R_OK) != 0 && *argc > 0) { /* build/fuzz/fuzz_tokenizer -> ../../tests/... */
        const char *exe = (*argv)[0], *slash = strrchr(exe, '/');
        snprintf(data, sizeof data, "%.*s/../../tests/data/tokenizer", slash ? (int)(slash - exe) : 1,
                 slash ? exe : ".");
    }
    const char *model = getenv("FASTCHAT_MODEL"), *home = getenv("HOME");
    if (model && *model) {
        add("smollm2", model, LOSSLESS_ALWAYS);
    } else {
        snprintf(path, sizeof path, "%s/.cache/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
        add("smollm2", path, LOSSLESS_ALWAYS);
    }
    static const struct { const char *name; int lossless; } dirs[] = {
        {"llama3", LOSSLESS_NO_MASK}, {"qwen2", LOSSLESS_NFC}, {"spm", 0}, {"spm_legacy", LOSSLESS_TEXT_SPECIALS},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(dirs); i++) {
        snprintf(path, sizeof path, "%s/%s", data, dirs[i].name);
        add(dirs[i].name, path, dirs[i].lossless);
    }
    /* a sentencepiece Unigram model with byte fallback (<0xNN> pieces) */
    snprintf(path, sizeof path, "%s/../unigram_bf", data);
    add("unigram_bf", path, 0);
    if (n_toks == 0) {
        fprintf(stderr, "fuzz_tokenizer: no tokenizer found under %s (run from the repository root)\n", data);
        abort();
    }
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    return 0;
}

static bool has_fffd(const char *s, size_t n) { return memmem(s, n, "\xEF\xBF\xBD", 3) != NULL; }

static bool is_nfc(const uint8_t *s, size_t n)
{
    utf8proc_uint8_t *out = NULL;
    utf8proc_ssize_t m = utf8proc_map(s, (utf8proc_ssize_t)n, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    bool same = m >= 0 && (size_t)m == n && !memcmp(out, s, n);
    free(out);
    return same;
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0) return false;
        i += (size_t)l;
    }
    return true;
}

/* decode == the concatenated stream, unless the text holds U+FFFD (where
 * the two may place replacement characters differently, tokenizer.h) */
static void check_decode(const fc_tokenizer *t, const int32_t *ids, size_t n, bool skip)
{
    size_t dl, l;
    char *d = fc_tokenizer_decode(t, ids, n, skip, &dl);
    if (!d || d[dl] != '\0') abort();
    fc_detok *st = fc_detok_new(t, skip);
    char *acc = malloc(dl + 64);
    size_t k = 0;
    bool over = false;
    for (size_t i = 0; i <= n; i++) {
        const char *p = i < n ? fc_detok_push(st, ids[i], &l) : fc_detok_flush(st, &l);
        if (!p || fc_detok_pending(st) > 3) abort();
        if (k + l > dl + 63) over = true;
        else memcpy(acc + k, p, l);
        k += l;
    }
    if (!has_fffd(d, dl) && (over || k != dl || memcmp(acc, d, dl))) {
        fprintf(stderr, "stream (%zu bytes) != decode (%zu bytes)\n", k, dl);
        abort();
    }
    free(acc);
    fc_detok_free(st);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    const loaded *L = &toks[(mode & 7) % n_toks];
    const fc_tokenizer *t = L->t;
    bool add_special = mode & 8, parse_special = !(mode & 16), skip = mode & 32;
    const uint8_t *s = data + 1;
    size_t n = size - 1;
    int32_t nv = fc_tokenizer_n_vocab(t);

    if (mode & 128) {
        size_t k = n / 2;
        int32_t *ids = malloc(sizeof(int32_t) * (k ? k : 1));
        for (size_t i = 0; i < k; i++) ids[i] = (int32_t)(s[2 * i] | s[2 * i + 1] << 8);
        check_decode(t, ids, k, skip);
        free(ids);
        return 0;
    }

    int32_t *ids;
    int m = fc_tokenizer_encode(t, (const char *)s, n, add_special, parse_special, &ids);
    if (m < 0 || (m > 0) != (ids != NULL)) abort();
    for (int i = 0; i < m; i++)
        if (ids[i] < 0 || ids[i] >= nv) abort();
    check_decode(t, ids, (size_t)m, skip);
    free(ids);

    /* the round trip, where the tokenizer is lossless */
    bool rt = L->lossless && valid_utf8(s, n);
    if (t->byte_level)
        for (size_t i = 0; i < n && rt; i++) rt = t->byte_tok[s[i]] >= 0;
    if (L->lossless == LOSSLESS_NO_MASK) rt = rt && !memmem(s, n, "<mask>", 6);
    if (L->lossless == LOSSLESS_NFC) rt = rt && is_nfc(s, n);
    if (L->lossless == LOSSLESS_TEXT_SPECIALS) rt = rt && !memmem(s, n, "\xE2\x96\x81", 3);
    if (!rt) return 0;
    bool ps = L->lossless == LOSSLESS_TEXT_SPECIALS ? false : parse_special;
    m = fc_tokenizer_encode(t, (const char *)s, n, false, ps, &ids);
    size_t dl;
    char *d = fc_tokenizer_decode(t, ids, (size_t)m, false, &dl);
    if (dl != n || memcmp(d, s, n)) {
        fprintf(stderr, "%s: decode(encode(text)) != text (%zu vs %zu bytes)\n", L->name, dl, n);
        abort();
    }
    free(d);
    free(ids);
    return 0;
}
