/*
 * test_tokenizer.c: src/tokenizer against Hugging Face `tokenizers`, on the
 * golden data of tools/golden/make_tokenizer_golden.py (tests/data/tokenizer).
 *
 *   1. corpus: for every corpus line and every tokenizer, encode gives the
 *      reference ids exactly (without and with BOS/EOS, with and without
 *      special tokens parsed), decode gives the reference text exactly
 *      (with and without skip_special_tokens), and streaming decode, fed one
 *      id at a time, adds up to the same text. Tokenizers: smollm2 (the
 *      default GGUF, $FASTCHAT_MODEL), spm / llama3 / qwen2 as Hugging Face
 *      folders and as GGUF files, spm_legacy (Llama-2's original
 *      tokenizer.json shape). No tolerance: a single differing id fails.
 *   2. decode of random id sequences (invalid UTF-8 from byte tokens, special
 *      tokens): identical text.
 *   3. unit checks: streaming holds back a split multi-byte character and never
 *      emits U+FFFD for it; the empty string; special tokens; invalid UTF-8
 *      input; token_to_piece; the same results from 4 threads at once.
 *   4. GGUF export (fc_tokenizer_to_gguf) read back, and SentencePiece
 *      tokenizer.model files: the same corpus comparison (see
 *      run_export_cases for which golden file each is held to).
 *   5. with --bench: encode speed in MB/s on the corpus (single thread).
 *
 * Run from the repository root (as scripts/run_tests.sh does); data in
 * $FC_TOK_DATA, default tests/data/tokenizer. The GGUF checks of the default
 * model are skipped, with a message, when the model file is absent.
 */
#include "tokenizer/tokenizer.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *data_dir = "tests/data/tokenizer";

/* ---- reading the golden files ---- */

typedef struct lines { char **v; size_t n; } lines;

static lines read_lines(const char *path)
{
    lines L = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return L;
    size_t cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t r;
    while ((r = getline(&line, &lcap, f)) > 0) {
        if (L.n == cap) L.v = realloc(L.v, (cap = cap ? cap * 2 : 1024) * sizeof(char *));
        L.v[L.n++] = strdup(line);
    }
    free(line);
    fclose(f);
    return L;
}

static void free_lines(lines *L)
{
    for (size_t i = 0; i < L->n; i++) free(L->v[i]);
    free(L->v);
}

/* A string field as bytes (malloc'd; NULL when absent): "<key>_hex" when the
 * file gives it (strings holding U+0000), else the JSON string. */
static char *json_str(const cJSON *o, const char *key, size_t *len)
{
    char hk[64];
    snprintf(hk, sizeof hk, "%s_hex", key);
    const cJSON *h = cJSON_GetObjectItem(o, hk), *v = cJSON_GetObjectItem(o, key);
    if (cJSON_IsString(h)) {
        size_t n = strlen(h->valuestring) / 2;
        char *s = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            unsigned x;
            sscanf(h->valuestring + 2 * i, "%2x", &x);
            s[i] = (char)x;
        }
        s[n] = '\0';
        *len = n;
        return s;
    }
    if (!cJSON_IsString(v)) return NULL;
    *len = strlen(v->valuestring);
    return strdup(v->valuestring);
}

typedef struct text { char *s; size_t n; bool nfc; } text;

static text *corpus;
static size_t n_corpus;

static bool load_corpus(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/corpus.jsonl", data_dir);
    lines L = read_lines(path);
    if (!L.n) return false;
    corpus = calloc(L.n, sizeof(text));
    for (size_t i = 0; i < L.n; i++) {
        cJSON *j = cJSON_Parse(L.v[i]);
        corpus[i].s = json_str(j, "text", &corpus[i].n);
        if (!corpus[i].s) {
            fprintf(stderr, "%s line %zu: malformed\n", path, i + 1);
            return false;
        }
        corpus[i].nfc = cJSON_IsTrue(cJSON_GetObjectItem(j, "nfc"));
        cJSON_Delete(j);
    }
    n_corpus = L.n;
    free_lines(&L);
    return true;
}

static int32_t *json_ids(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) v[i] = cJSON_GetArrayItem(a, i)->valueint;
    return v;
}

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb)
{
    return na == nb && (na == 0 || !memcmp(a, b, sizeof(int32_t) * (size_t)na));
}

static void print_ids(const char *label, const int32_t *v, int n)
{
    fprintf(stderr, "    %s [", label);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, "%s%d", i ? "," : "", v[i]);
    fprintf(stderr, "%s]\n", n > 40 ? ",..." : "");
}

static void print_text(const char *label, const char *s, size_t n)
{
    fprintf(stderr, "    %s \"", label);
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fprintf(stderr, "\"\n");
}

/* ---- corpus comparison ---- */

typedef struct counts { int lines, enc_ok, as_ok, ns_ok, dec_ok, skip_ok, stream_ok, stream_n, shown; } counts;

/* The text fc_detok produces for ids, one push at a time. */
static char *stream_decode(const fc_tokenizer *t, const int32_t *ids, int n, bool skip, size_t *len)
{
    fc_detok *d = fc_detok_new(t, skip);
    size_t cap = 64, k = 0, l;
    char *out = malloc(cap);
    for (int i = 0; i <= n; i++) {
        const char *s = i < n ? fc_detok_push(d, ids[i], &l) : fc_detok_flush(d, &l);
        if (k + l + 1 > cap) out = realloc(out, cap = (k + l + 1) * 2);
        memcpy(out + k, s, l);
        k += l;
    }
    out[k] = '\0';
    fc_detok_free(d);
    *len = k;
    return out;
}

static bool has_fffd(const char *s, size_t n) { return memmem(s, n, "\xEF\xBF\xBD", 3) != NULL; }

/* exclude(text): lines the tokenizer cannot be expected to match (documented
 * at the call site). */
/* variant: only the lines of golden_variants.jsonl whose "v" is that name. */
static counts run_golden(const char *label, const fc_tokenizer *t, const char *golden,
                         const char *variant, bool (*exclude)(const text *))
{
    counts c = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", data_dir, golden);
    lines L = read_lines(path);
    CHECKF(L.n > 0, "%s: no golden data", path);
    for (size_t li = 0; li < L.n; li++) {
        cJSON *j = cJSON_Parse(L.v[li]);
        const cJSON *ji = cJSON_GetObjectItem(j, "i");
        CHECKF(cJSON_IsNumber(ji) && ji->valueint >= 0 && (size_t)ji->valueint < n_corpus &&
               cJSON_IsArray(cJSON_GetObjectItem(j, "ids")), "%s line %zu: malformed", path, li + 1);
        if (!cJSON_IsNumber(ji) || ji->valueint < 0 || (size_t)ji->valueint >= n_corpus ||
            !cJSON_IsArray(cJSON_GetObjectItem(j, "ids"))) { cJSON_Delete(j); continue; }
        int idx = ji->valueint;
        const text *tx = &corpus[idx];
        const cJSON *jv = cJSON_GetObjectItem(j, "v");
        if ((variant && (!cJSON_IsString(jv) || strcmp(jv->valuestring, variant))) ||
            (exclude && exclude(tx))) {
            cJSON_Delete(j);
            continue;
        }
        c.lines++;
        int n_ref, n_as = 0, n_ns = 0;
        int32_t *ref = json_ids(cJSON_GetObjectItem(j, "ids"), &n_ref);
        const cJSON *ja = cJSON_GetObjectItem(j, "as"), *jn = cJSON_GetObjectItem(j, "ns");
        int32_t *ref_as = ja ? json_ids(ja, &n_as) : NULL;
        int32_t *ref_ns = jn ? json_ids(jn, &n_ns) : NULL;
        if (!ja) { ref_as = ref; n_as = n_ref; }
        if (!jn) { ref_ns = ref; n_ns = n_ref; }
        size_t dec_len, skip_len;
        char *jdec = json_str(j, "dec", &dec_len), *jskip = json_str(j, "skip", &skip_len);
        const char *dec_ref = jdec ? jdec : tx->s;
        if (!jdec) dec_len = tx->n;
        const char *skip_ref = jskip ? jskip : dec_ref;
        if (!jskip) skip_len = dec_len;

        int32_t *ids, *ids_as, *ids_ns;
        int n = fc_tokenizer_encode(t, tx->s, tx->n, false, true, &ids);
        int na = fc_tokenizer_encode(t, tx->s, tx->n, true, true, &ids_as);
        int nn = fc_tokenizer_encode(t, tx->s, tx->n, false, false, &ids_ns);
        bool e1 = ids_eq(ids, n, ref, n_ref), e2 = ids_eq(ids_as, na, ref_as, n_as),
             e3 = ids_eq(ids_ns, nn, ref_ns, n_ns);
        c.enc_ok += e1;
        c.as_ok += e2;
        c.ns_ok += e3;
        size_t dl, sl;
        char *dec = fc_tokenizer_decode(t, ref, (size_t)n_ref, false, &dl);
        char *skip = fc_tokenizer_decode(t, ref, (size_t)n_ref, true, &sl);
        bool d1 = dl == dec_len && !memcmp(dec, dec_ref, dl);
        bool d2 = sl == skip_len && !memcmp(skip, skip_ref, sl);
        c.dec_ok += d1;
        c.skip_ok += d2;
        /* streaming adds up to decode wherever the text is valid UTF-8 */
        bool s1 = true;
        if (!has_fffd(dec_ref, dec_len)) {
            size_t stl;
            char *st = stream_decode(t, ref, n_ref, false, &stl);
            s1 = stl == dl && !memcmp(st, dec, dl);
            c.stream_n++;
            c.stream_ok += s1;
            free(st);
        }
        if (!(e1 && e2 && e3 && d1 && d2 && s1) && c.shown++ < 6) {
            fprintf(stderr, "%s: line %d differs (enc %d, add_special %d, no_parse %d, dec %d, skip %d, stream %d)\n",
                    label, idx, e1, e2, e3, d1, d2, s1);
            print_text("text:", tx->s, tx->n);
            if (!e1) { print_ids("want:", ref, n_ref); print_ids("got: ", ids, n); }
            if (!e2) { print_ids("want as:", ref_as, n_as); print_ids("got as: ", ids_as, na); }
            if (!e3) { print_ids("want ns:", ref_ns, n_ns); print_ids("got ns: ", ids_ns, nn); }
            if (!d1) { print_text("want dec:", dec_ref, dec_len); print_text("got dec: ", dec, dl); }
            if (!d2) { print_text("want skip:", skip_ref, skip_len); print_text("got skip: ", skip, sl); }
        }
        free(ids); free(ids_as); free(ids_ns); free(dec); free(skip); free(jdec); free(jskip);
        if (ja) free(ref_as);
        if (jn) free(ref_ns);
        free(ref);
        cJSON_Delete(j);
    }
    free_lines(&L);
    CHECKF(c.lines > 0, "%s: no lines compared", label);
    printf("%-22s %4d lines: encode %d, add_special %d, no_parse_special %d, decode %d, skip_special %d, "
           "stream %d/%d\n", label, c.lines, c.enc_ok, c.as_ok, c.ns_ok, c.dec_ok, c.skip_ok,
           c.stream_ok, c.stream_n);
    CHECKF(c.enc_ok == c.lines && c.as_ok == c.lines && c.ns_ok == c.lines && c.dec_ok == c.lines &&
           c.skip_ok == c.lines && c.stream_ok == c.stream_n, "%s differs from Hugging Face", label);
    return c;
}

static void run_decode_cases(const char *label, const fc_tokenizer *t, const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", data_dir, file);
    lines L = read_lines(path);
    int ok = 0, shown = 0;
    for (size_t li = 0; li < L.n; li++) {
        cJSON *j = cJSON_Parse(L.v[li]);
        if (!cJSON_IsArray(cJSON_GetObjectItem(j, "ids"))) {
            CHECKF(false, "%s line %zu: malformed", path, li + 1);
            cJSON_Delete(j);
            continue;
        }
        int n;
        int32_t *ids = json_ids(cJSON_GetObjectItem(j, "ids"), &n);
        size_t wl, dl;
        char *want = json_str(j, "text", &wl);
        char *got = fc_tokenizer_decode(t, ids, (size_t)n, false, &dl);
        bool same = dl == wl && !memcmp(got, want, dl);
        ok += same;
        if (!same && shown++ < 4) {
            fprintf(stderr, "%s decode case %zu differs\n", label, li);
            print_ids("ids:", ids, n);
            print_text("want:", want, wl);
            print_text("got: ", got, dl);
        }
        free(want);
        free(got);
        free(ids);
        cJSON_Delete(j);
    }
    printf("%-22s decode of random ids: %d/%zu identical\n", label, ok, L.n);
    CHECKF(L.n > 0 && (size_t)ok == L.n, "%s: decode of random ids differs", label);
    free_lines(&L);
}

/* The GGUF form of the Llama-3-style tokenizer cannot carry added-token flags
 * (lstrip/rstrip of <mask>, single_word of "hello world"): lines using them
 * are left to the tokenizer.json form. */
static bool uses_added_flags(const text *t)
{
    return memmem(t->s, t->n, "<mask>", 6) || memmem(t->s, t->n, "hello world", 11);
}

/* ---- unit checks ---- */

/* The id of the token that stands for byte b: <0xNN> in a SentencePiece
 * vocabulary, the byte's GPT-2 alphabet character in a byte-level one. */
static int32_t byte_id(const fc_tokenizer *t, unsigned b)
{
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    int32_t id = fc_tokenizer_find(t, name, 6);
    if (id >= 0) return id;
    unsigned cp = b;
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (!printable) {
        unsigned k = 0;
        for (unsigned x = 0; x < b; x++)
            k += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
        cp = 0x100 + k;
    }
    char enc[3];
    int n = cp < 0x80 ? 1 : 2;
    if (n == 1) enc[0] = (char)cp;
    else { enc[0] = (char)(0xC0 | cp >> 6); enc[1] = (char)(0x80 | (cp & 0x3F)); }
    return fc_tokenizer_find(t, enc, (size_t)n);
}

static void check_stream_split_utf8(const fc_tokenizer *t, const char *label)
{
    /* "你好" then an emoji, one byte token at a time */
    const char *s = "\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80";
    fc_detok *d = fc_detok_new(t, false);
    size_t len, total = 0;
    char out[64];
    for (int i = 0; i < 10; i++) {
        int32_t id = byte_id(t, (unsigned char)s[i]);
        CHECKF(id >= 0, "%s: no token for byte %02x", label, (unsigned char)s[i]);
        const char *o = fc_detok_push(d, id, &len);
        CHECKF(!has_fffd(o, len), "%s: U+FFFD emitted for a split character", label);
        bool boundary = i == 2 || i == 5 || i == 9;
        CHECKF(boundary ? len > 0 : len == 0, "%s: byte %d emitted %zu bytes", label, i, len);
        CHECKF(boundary ? fc_detok_pending(d) == 0 : fc_detok_pending(d) > 0, "%s: pending after byte %d", label, i);
        if (total + len < sizeof out) memcpy(out + total, o, len);
        total += len;
    }
    fc_detok_flush(d, &len);
    CHECKF(len == 0, "%s: flush after complete text", label);
    CHECKF(total == 10 && !memcmp(out, s, 10), "%s: stream text", label);
    /* an incomplete character at the end becomes one U+FFFD at flush; a byte
     * that cannot continue it gives U+FFFD at once, then itself */
    fc_detok_reset(d);
    const char *o = fc_detok_push(d, byte_id(t, 'a'), &len);
    CHECKF(len == 1 && o[0] == 'a', "%s: plain byte", label);
    o = fc_detok_push(d, byte_id(t, 0xE4), &len);
    CHECKF(len == 0 && fc_detok_pending(d) == 1, "%s: lone lead byte held back", label);
    o = fc_detok_push(d, byte_id(t, 0xBD), &len);
    CHECKF(len == 0 && fc_detok_pending(d) == 2, "%s: two bytes held back", label);
    o = fc_detok_push(d, byte_id(t, 'b'), &len);
    CHECKF(len == 4 && !memcmp(o, "\xEF\xBF\xBD" "b", 4), "%s: broken sequence then 'b'", label);
    o = fc_detok_push(d, byte_id(t, 0xF0), &len);
    o = fc_detok_flush(d, &len);
    CHECKF(len == 3 && !memcmp(o, "\xEF\xBF\xBD", 3), "%s: flush of a lone lead byte", label);
    fc_detok_free(d);
}

static void check_basics(const fc_tokenizer *t, const char *label, const char *special)
{
    int32_t *ids;
    /* empty text: nothing, or just BOS */
    int n = fc_tokenizer_encode(t, "", 0, false, true, &ids);
    CHECKF(n == 0, "%s: empty text gave %d ids", label, n);
    free(ids);
    n = fc_tokenizer_encode(t, "", 0, true, true, &ids);
    CHECKF(n == (fc_tokenizer_adds_bos(t) ? 1 : 0) + (fc_tokenizer_adds_eos(t) ? 1 : 0),
           "%s: empty text with specials gave %d ids", label, n);
    free(ids);
    size_t dl;
    char *d = fc_tokenizer_decode(t, NULL, 0, false, &dl);
    CHECKF(dl == 0 && d[0] == '\0', "%s: decode of nothing", label);
    free(d);
    /* a special token is one id, is special, decodes to itself unless skipped */
    int32_t sid = fc_tokenizer_find(t, special, strlen(special));
    CHECKF(sid >= 0 && fc_tokenizer_is_special(t, sid), "%s: %s is special", label, special);
    CHECKF(fc_tokenizer_is_eog(t, sid), "%s: %s ends generation", label, special);
    CHECKF(fc_tokenizer_eos(t) < 0 || fc_tokenizer_is_eog(t, fc_tokenizer_eos(t)), "%s: eos ends generation", label);
    CHECKF(!fc_tokenizer_is_eog(t, fc_tokenizer_find(t, "a", 1)), "%s: 'a' does not end generation", label);
    n = fc_tokenizer_encode(t, special, strlen(special), false, true, &ids);
    CHECKF(n == 1 && ids[0] == sid, "%s: %s encodes to its id", label, special);
    free(ids);
    n = fc_tokenizer_encode(t, special, strlen(special), false, false, &ids);
    CHECKF(n > 1, "%s: %s as text is several tokens", label, special);
    free(ids);
    d = fc_tokenizer_decode(t, &sid, 1, true, &dl);
    CHECKF(dl == 0, "%s: skip_special drops %s", label, special);
    free(d);
    size_t pl;
    const char *p = fc_tokenizer_token_to_piece(t, sid, &pl);
    CHECKF(p && pl == strlen(special) && !memcmp(p, special, pl), "%s: piece of %s", label, special);
    CHECKF(fc_tokenizer_token_to_piece(t, -1, &pl) == NULL && pl == 0, "%s: piece of -1", label);
    CHECKF(fc_tokenizer_token_to_piece(t, fc_tokenizer_n_vocab(t), &pl) == NULL, "%s: piece past the end", label);
    /* ids out of range are dropped by decode */
    int32_t bad[] = {-5, fc_tokenizer_n_vocab(t), 1 << 30};
    d = fc_tokenizer_decode(t, bad, 3, false, &dl);
    CHECKF(dl == 0, "%s: out-of-range ids decode to nothing", label);
    free(d);
    /* invalid UTF-8 is read as U+FFFD per maximal subpart */
    int32_t *a, *b;
    int na = fc_tokenizer_encode(t, "x\xC3(\xF0\x9F\x98y\xFF", 8, false, true, &a);
    int nb = fc_tokenizer_encode(t, "x\xEF\xBF\xBD(\xEF\xBF\xBDy\xEF\xBF\xBD", 12, false, true, &b);
    CHECKF(ids_eq(a, na, b, nb), "%s: invalid UTF-8 encodes as U+FFFD", label);
    free(a);
    free(b);
    /* caller-buffer variant */
    int32_t buf[4];
    const char *txt = "Hello world, this is a longer text.";
    int need = fc_tokenizer_encode_buf(t, txt, strlen(txt), false, true, buf, 4);
    n = fc_tokenizer_encode(t, txt, strlen(txt), false, true, &ids);
    CHECKF(need == n && n > 4 && !memcmp(buf, ids, sizeof buf), "%s: encode_buf", label);
    free(ids);
}

/* ---- threads ---- */

typedef struct thr { const fc_tokenizer *t; int start; int bad; } thr;

static void *thread_main(void *p)
{
    thr *a = p;
    for (size_t k = 0; k < n_corpus; k++) {
        size_t i = (k + (size_t)a->start * 577) % n_corpus;
        int32_t *x;
        int n = fc_tokenizer_encode(a->t, corpus[i].s, corpus[i].n, false, true, &x);
        /* decode back as a second check of shared state */
        size_t dl;
        char *d = fc_tokenizer_decode(a->t, x, (size_t)n, false, &dl);
        int32_t *y;
        int m = fc_tokenizer_encode(a->t, corpus[i].s, corpus[i].n, false, true, &y);
        a->bad += !ids_eq(x, n, y, m);
        free(x); free(y); free(d);
    }
    return NULL;
}

static void check_threads(const fc_tokenizer *t, const char *label, const char *golden)
{
    /* reference: single-threaded ids of every line, compared to the golden file
     * by run_golden; here 4 threads at once must give the same ids as before */
    int32_t **ref = calloc(n_corpus, sizeof *ref);
    int *nref = calloc(n_corpus, sizeof *nref);
    for (size_t i = 0; i < n_corpus; i++)
        nref[i] = fc_tokenizer_encode(t, corpus[i].s, corpus[i].n, false, true, &ref[i]);
    thr a[4];
    pthread_t th[4];
    for (int k = 0; k < 4; k++) {
        a[k] = (thr){t, k, 0};
        pthread_create(&th[k], NULL, thread_main, &a[k]);
    }
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        bad += a[k].bad;
    }
    for (size_t i = 0; i < n_corpus; i++) {
        int32_t *x;
        int n = fc_tokenizer_encode(t, corpus[i].s, corpus[i].n, false, true, &x);
        bad += !ids_eq(x, n, ref[i], nref[i]);
        free(x);
        free(ref[i]);
    }
    free(ref);
    free(nref);
    (void)golden;
    printf("%-22s 4 threads x %zu lines: %d differ\n", label, n_corpus, bad);
    CHECKF(bad == 0, "%s: results differ between threads", label);
}

/* ---- speed ---- */

static double cpu_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this thread: the figure stays meaningful on a loaded machine. */
static void bench(const char *label, const fc_tokenizer *t)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n_corpus; i++) bytes += corpus[i].n;
    /* one text holding the whole corpus, cold cache on first pass */
    char *all = malloc(bytes + n_corpus);
    size_t k = 0;
    for (size_t i = 0; i < n_corpus; i++) {
        memcpy(all + k, corpus[i].s, corpus[i].n);
        k += corpus[i].n;
        all[k++] = '\n';
    }
    int reps = 5;
    double t0 = cpu_sec();
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < n_corpus; i++) {
            int32_t *x;
            fc_tokenizer_encode(t, corpus[i].s, corpus[i].n, false, true, &x);
            free(x);
        }
    double t1 = cpu_sec();
    for (int r = 0; r < reps; r++) {
        int32_t *x;
        fc_tokenizer_encode(t, all, k, false, true, &x);
        free(x);
    }
    double t2 = cpu_sec();
    printf("bench %-16s (cpu time) per-line %.2f MB/s, whole corpus as one text %.2f MB/s (%zu bytes x %d)\n",
           label, (double)bytes * reps / (t1 - t0) / 1e6, (double)k * reps / (t2 - t1) / 1e6, bytes, reps);
    free(all);
}

/* ---- pipeline variants ----
 * variants.json patches top-level keys of a base folder's tokenizer.json
 * (normalizers, pre-tokenizers, decoders, post-processors the folders do not
 * use); each patched file is written to a temporary folder and loaded. */

static void run_variants(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/variants.json", data_dir);
    fc_mmap *m = fc_mmap_open(path);
    CHECKF(m != NULL, "%s missing", path);
    if (!m) return;
    cJSON *vars = cJSON_ParseWithLength((const char *)m->data, m->size);
    fc_mmap_free(m);
    const cJSON *v;
    cJSON_ArrayForEach(v, vars) {
        const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
        const char *base = cJSON_GetObjectItem(v, "base")->valuestring;
        snprintf(path, sizeof path, "%s/%s/tokenizer.json", data_dir, base);
        fc_mmap *bm = fc_mmap_open(path);
        CHECKF(bm != NULL, "%s missing", path);
        if (!bm) continue;
        cJSON *j = cJSON_ParseWithLength((const char *)bm->data, bm->size);
        fc_mmap_free(bm);
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(v, "patch")) {
            cJSON_DeleteItemFromObjectCaseSensitive(j, p->string);
            cJSON_AddItemToObject(j, p->string, cJSON_Duplicate(p, true));
        }
        char dir[] = "/tmp/fc_tok_variant_XXXXXX";
        CHECK(mkdtemp(dir) != NULL);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        char *txt = cJSON_PrintUnformatted(j);
        FILE *f = fopen(path, "wb");
        fputs(txt, f);
        fclose(f);
        free(txt);
        cJSON_Delete(j);
        fc_tokenizer *t = fc_tokenizer_from_hf(dir);
        CHECKF(t != NULL, "variant %s: %s", name, fc_last_error());
        unlink(path);
        rmdir(dir);
        if (!t) continue;
        char label[64];
        snprintf(label, sizeof label, "variant %s", name);
        run_golden(label, t, "golden_variants.jsonl", name, NULL);
        fc_tokenizer_free(t);
    }
    cJSON_Delete(vars);
}

/* ---- GGUF export and SentencePiece tokenizer.model ----
 * fc_tokenizer_to_gguf writes a tokenizer as tokenizer.ggml.* metadata; read
 * back with fc_tokenizer_from_gguf it must encode and decode like the
 * original (golden data of the original). Exceptions, as tokenizer.h says:
 * a Metaspace("first") tokenizer.json becomes the GGUF "llama" shape, which
 * is sentencepiece's (golden_spm_legacy: the golden script checks that
 * sentencepiece itself gives those ids on every line), and added-token
 * flags are lost (uses_added_flags lines). tokenizer.model files are read
 * into that same shape, so sentencepiece's ids are the reference there too. */

static fc_tokenizer *via_gguf(const fc_tokenizer *t, int32_t n_vocab, const char *label)
{
    fc_gguf_writer *w = fc_gguf_writer_new();
    enum fc_status st = fc_tokenizer_to_gguf_padded(t, n_vocab, w);
    CHECKF(st == FC_OK, "%s: export: %s", label, fc_last_error());
    uint8_t *buf = NULL;
    size_t size = 0;
    if (st == FC_OK) st = fc_gguf_writer_write_buf(w, &buf, &size);
    fc_gguf_writer_free(w);
    fc_gguf *g = st == FC_OK ? fc_gguf_parse(buf, size, label) : NULL;
    fc_tokenizer *r = g ? fc_tokenizer_from_gguf(g, label) : NULL;
    CHECKF(r != NULL, "%s: load of the exported GGUF: %s", label, fc_last_error());
    fc_gguf_free(g);
    free(buf);
    return r;
}

static char *read_all(const char *path, size_t *n)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return NULL;
    char *s = malloc(m->size ? m->size : 1);
    memcpy(s, m->data, m->size);
    *n = m->size;
    fc_mmap_free(m);
    return s;
}

static bool write_all(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(s, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Runs the golden comparison of a derived tokenizer (and takes it over). */
static void run_derived(const char *label, fc_tokenizer *t, const char *golden, const char *decode_file,
                        const char *special, bool (*exclude)(const text *))
{
    if (!t) return;
    run_golden(label, t, golden, NULL, exclude);
    if (decode_file) run_decode_cases(label, t, decode_file);
    check_basics(t, label, special);
    check_stream_split_utf8(t, label);
    fc_tokenizer_free(t);
}

static void run_export_cases(const char *model)
{
    char path[1200];
    struct { const char *label, *src, *golden, *decode_file, *special; bool (*exclude)(const text *); } ex[] = {
        {"spm (hf->gguf)", "spm", "golden_spm_legacy.jsonl", "decode_spm.jsonl", "</s>", NULL},
        {"spm_legacy (hf->gguf)", "spm_legacy", "golden_spm_legacy.jsonl", "decode_spm.jsonl", "</s>", NULL},
        {"llama3 (hf->gguf)", "llama3", "golden_llama3.jsonl", "decode_llama3.jsonl", "<|eot_id|>", uses_added_flags},
        {"qwen2 (hf->gguf)", "qwen2", "golden_qwen2.jsonl", "decode_qwen2.jsonl", "<|im_end|>", NULL},
        {"smollm2 (gguf->gguf)", NULL, "golden_smollm2.jsonl", "decode_smollm2.jsonl", "<|im_end|>", NULL},
    };
    for (size_t k = 0; k < FC_ARRAY_LEN(ex); k++) {
        if (ex[k].src) {
            snprintf(path, sizeof path, "%s/%s", data_dir, ex[k].src);
        } else {
            FILE *f = fopen(model, "rb");
            if (!f) {
                printf("%-22s SKIPPED: %s not found\n", ex[k].label, model);
                continue;
            }
            fclose(f);
            snprintf(path, sizeof path, "%s", model);
        }
        fc_tokenizer *t = fc_tokenizer_load(path);
        CHECKF(t != NULL, "%s: load %s", ex[k].label, path);
        if (!t) continue;
        fc_tokenizer *r = via_gguf(t, 0, ex[k].label);
        if (r) {
            CHECKF(fc_tokenizer_n_vocab(r) == fc_tokenizer_n_vocab(t), "%s: vocabulary size", ex[k].label);
            CHECKF(fc_tokenizer_bos(r) == fc_tokenizer_bos(t) && fc_tokenizer_eos(r) == fc_tokenizer_eos(t) &&
                   fc_tokenizer_adds_bos(r) == fc_tokenizer_adds_bos(t), "%s: special ids", ex[k].label);
            const char *a = fc_tokenizer_chat_template(t), *b = fc_tokenizer_chat_template(r);
            CHECKF((!a && !b) || (a && b && !strcmp(a, b)), "%s: chat template", ex[k].label);
        }
        fc_tokenizer_free(t);
        if (r && k == 0) { /* and once more: GGUF -> GGUF keeps the merges */
            fc_tokenizer *r2 = via_gguf(r, 0, "spm (hf->gguf->gguf)");
            run_derived("spm (hf->gguf->gguf)", r2, ex[k].golden, ex[k].decode_file, ex[k].special, NULL);
        }
        run_derived(ex[k].label, r, ex[k].golden, ex[k].decode_file, ex[k].special, ex[k].exclude);
    }

    /* padded to a larger model vocabulary */
    snprintf(path, sizeof path, "%s/qwen2", data_dir);
    fc_tokenizer *t = fc_tokenizer_load(path);
    fc_tokenizer *r = t ? via_gguf(t, 3072, "qwen2 (padded)") : NULL;
    if (r) {
        CHECKF(fc_tokenizer_n_vocab(r) == 3072, "padded: %d ids", fc_tokenizer_n_vocab(r));
        const char *pad = fc_tokenizer_token_text(r, 3071);
        CHECKF(pad && !strcmp(pad, "[PAD3071]"), "padded: last token '%s'", pad ? pad : "(null)");
        CHECKF(!strcmp(fc_tokenizer_token_text(r, 3001), fc_tokenizer_token_text(t, 3001)), "padded: added token");
    }
    fc_tokenizer_free(t);
    run_derived("qwen2 (hf->gguf, 3072)", r, "golden_qwen2.jsonl", NULL, "<|im_end|>", NULL);

    /* SentencePiece's tokenizer.model: from memory, as a folder without
     * tokenizer.json (tokenizer_config.json: add BOS), and exported again */
    size_t n;
    snprintf(path, sizeof path, "%s/spm/tokenizer.model", data_dir);
    char *model_bytes = read_all(path, &n);
    CHECKF(model_bytes != NULL, "%s missing", path);
    if (!model_bytes) return;
    t = fc_tokenizer_from_spm(model_bytes, n, path);
    CHECKF(t != NULL, "spm (.model): %s", fc_last_error());
    if (t) {
        CHECKF(fc_tokenizer_adds_bos(t) && !fc_tokenizer_adds_eos(t), "spm (.model): BOS only");
        r = via_gguf(t, 0, "spm (.model->gguf)");
        run_derived("spm (.model->gguf)", r, "golden_spm_legacy.jsonl", "decode_spm.jsonl", "</s>", NULL);
    }
    run_derived("spm (.model)", t, "golden_spm_legacy.jsonl", "decode_spm.jsonl", "</s>", NULL);
    char dir[] = "/tmp/fc_tok_spm_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p2[64], p3[64];
    snprintf(p2, sizeof p2, "%s/tokenizer.model", dir);
    snprintf(p3, sizeof p3, "%s/tokenizer_config.json", dir);
    snprintf(path, sizeof path, "%s/spm/tokenizer_config.json", data_dir);
    size_t cn;
    char *cfg = read_all(path, &cn);
    CHECK(cfg && write_all(p2, model_bytes, n) && write_all(p3, cfg, cn));
    t = fc_tokenizer_from_hf(dir);
    CHECKF(t != NULL, "spm (.model folder): %s", fc_last_error());
    if (t) {
        CHECK(fc_tokenizer_chat_template(t) && strstr(fc_tokenizer_chat_template(t), "[INST]"));
        CHECK(fc_tokenizer_bos(t) == 1 && fc_tokenizer_eos(t) == 2 && fc_tokenizer_adds_bos(t));
    }
    run_derived("spm (.model folder)", t, "golden_spm_legacy.jsonl", NULL, "</s>", NULL);
    unlink(p2);
    unlink(p3);
    rmdir(dir);
    free(cfg);
    free(model_bytes);
}

/* ---- main ---- */

typedef struct case_ {
    const char *label, *path, *golden, *decode_file, *special;
    bool (*exclude)(const text *);
} case_;

int main(int argc, char **argv)
{
    bool do_bench = argc > 1 && !strcmp(argv[1], "--bench");
    const char *env = getenv("FC_TOK_DATA");
    if (env && *env) data_dir = env;
    if (!load_corpus()) {
        fprintf(stderr, "%s/corpus.jsonl: missing (run from the repository root)\n", data_dir);
        return 1;
    }
    const char *model = getenv("FASTCHAT_MODEL");
    char model_buf[1024];
    if (!model || !*model) {
        const char *home = getenv("HOME");
        snprintf(model_buf, sizeof model_buf, "%s/.cache/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
        model = model_buf;
    }
    char p[8][512];
    snprintf(p[0], 512, "%s/spm", data_dir);
    snprintf(p[1], 512, "%s/spm/tokenizer.gguf", data_dir);
    snprintf(p[2], 512, "%s/spm_legacy", data_dir);
    snprintf(p[3], 512, "%s/llama3", data_dir);
    snprintf(p[4], 512, "%s/llama3/tokenizer.gguf", data_dir);
    snprintf(p[5], 512, "%s/qwen2", data_dir);
    snprintf(p[6], 512, "%s/qwen2/tokenizer.gguf", data_dir);
    case_ cases[] = {
        {"smollm2 (gguf)", model, "golden_smollm2.jsonl", "decode_smollm2.jsonl", "<|im_end|>", NULL},
        {"spm (hf)", p[0], "golden_spm.jsonl", "decode_spm.jsonl", "</s>", NULL},
        /* GGUF "llama" files are encoded the way sentencepiece and llama.cpp
         * do, which is Llama-2's tokenizer.json shape (load_gguf.c) */
        {"spm (gguf)", p[1], "golden_spm_legacy.jsonl", "decode_spm.jsonl", "</s>", NULL},
        {"spm_legacy (hf)", p[2], "golden_spm_legacy.jsonl", NULL, "</s>", NULL},
        {"llama3 (hf)", p[3], "golden_llama3.jsonl", "decode_llama3.jsonl", "<|eot_id|>", NULL},
        {"llama3 (gguf)", p[4], "golden_llama3.jsonl", "decode_llama3.jsonl", "<|eot_id|>", uses_added_flags},
        {"qwen2 (hf)", p[5], "golden_qwen2.jsonl", "decode_qwen2.jsonl", "<|im_end|>", NULL},
        {"qwen2 (gguf)", p[6], "golden_qwen2.jsonl", "decode_qwen2.jsonl", "<|im_end|>", NULL},
    };
    for (size_t k = 0; k < FC_ARRAY_LEN(cases); k++) {
        const case_ *c = &cases[k];
        if (k == 0) {
            FILE *f = fopen(model, "rb");
            if (!f) {
                printf("%-22s SKIPPED: %s not found (scripts/fetch_model.sh puts it there)\n", c->label, model);
                continue;
            }
            fclose(f);
        }
        double t0 = fc_time_sec();
        fc_tokenizer *t = fc_tokenizer_load(c->path);
        CHECKF(t != NULL, "%s: load %s: %s", c->label, c->path, fc_last_error());
        if (!t) continue;
        printf("%-22s loaded in %.0f ms, %d ids\n", c->label, (fc_time_sec() - t0) * 1e3, fc_tokenizer_n_vocab(t));
        run_golden(c->label, t, c->golden, NULL, c->exclude);
        if (c->decode_file) run_decode_cases(c->label, t, c->decode_file);
        check_basics(t, c->label, c->special);
        check_stream_split_utf8(t, c->label);
        if (k == 0 || k == 1) check_threads(t, c->label, c->golden);
        if (do_bench) bench(c->label, t);
        fc_tokenizer_free(t);
    }
    run_variants();
    run_export_cases(model);
    return TEST_END();
}
