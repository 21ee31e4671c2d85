/*
 * test_spm_model.c: the SentencePiece tokenizer.model reader
 * (src/tokenizer/spm_model.c) on hand-built ModelProto files and on hostile
 * ones. (Its encoding of a real model against sentencepiece, on the 2300-line
 * corpus, is in test_tokenizer.c; tests/py/test_tokenizer.py checks more
 * trainer settings against the sentencepiece package.)
 *
 *   1. a small BPE model built here byte by byte: the ids follow from the
 *      scores (sentencepiece merges the pair whose result scores highest),
 *      unknown characters fuse into one <unk>, BOS is added, unknown fields
 *      are skipped, add_dummy_prefix = false and remove_extra_whitespaces
 *      take effect, trainer ids out of range or -1 mean "none".
 *   2. refused with a message: Unigram models (also by default, without a
 *      trainer_spec), treat_whitespace_as_suffix, escape_whitespaces = false,
 *      NaN scores, unknown piece types, empty and repeated pieces,
 *      overlong varints, lengths past the end, group wire types.
 *   3. every truncation of the model, and 3000 random byte mutations of the
 *      real tests/data/tokenizer/spm/tokenizer.model, load or fail cleanly
 *      (run under ASan/UBSan by `make DEBUG=1 test`).
 *   4. a folder with tokenizer.model and tokenizer_config.json whose
 *      added_tokens_decoder adds <pad> past the model's pieces.
 */
#include "tokenizer/tokenizer.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

/* ---- a protobuf writer ---- */

typedef struct pbw { uint8_t *p; size_t n, cap; } pbw;

static void put(pbw *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) b->p = realloc(b->p, b->cap = (b->n + n) * 2 + 64);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_varint(pbw *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v) c |= 0x80;
        put(b, &c, 1);
    } while (v);
}

static void put_key(pbw *b, uint32_t field, int wt) { put_varint(b, (uint64_t)field << 3 | (uint64_t)wt); }
static void put_int(pbw *b, uint32_t field, int64_t v) { put_key(b, field, 0); put_varint(b, (uint64_t)v); }

static void put_bytes(pbw *b, uint32_t field, const void *s, size_t n)
{
    put_key(b, field, 2);
    put_varint(b, n);
    put(b, s, n);
}

static void put_float(pbw *b, uint32_t field, float f)
{
    uint8_t x[4];
    memcpy(x, &f, 4); /* little-endian hosts only, as the rest of the code base */
    put_key(b, field, 5);
    put(b, x, 4);
}

static void put_piece(pbw *m, const char *s, float score, int type)
{
    pbw p = {0};
    put_bytes(&p, 1, s, strlen(s));
    put_float(&p, 2, score);
    if (type != 1) put_int(&p, 3, type);
    put_bytes(m, 1, p.p, p.n);
    free(p.p);
}

/* The small model: ids 0 <unk>, 1 <s>, 2 </s>, 3 ▁, 4 a, 5 b, 6 ▁a, 7 ab,
 * 8 ▁ab. opts changes one thing (see the callers). */
typedef struct opts {
    int model_type;             /* 2 BPE */
    int bos;                    /* trainer bos_id */
    bool dummy, squeeze, escape, ws_suffix, unknown_fields, no_trainer;
    float nan_at4;              /* score of piece 4 when not 0 */
    int bad_type;               /* type of piece 5 when not 0 */
    const char *piece5;         /* spelling of piece 5 when not NULL */
} opts;

static opts defaults(void) { return (opts){.model_type = 2, .bos = 1, .dummy = true, .escape = true}; }

static pbw build(opts o)
{
    pbw m = {0};
    put_piece(&m, "<unk>", 0, 2);
    put_piece(&m, "<s>", 0, 3);
    put_piece(&m, "</s>", 0, 3);
    put_piece(&m, "\xE2\x96\x81", -10, 1);
    put_piece(&m, "a", o.nan_at4 != 0 ? o.nan_at4 : -11, 1);
    put_piece(&m, o.piece5 ? o.piece5 : "b", -12, o.bad_type ? o.bad_type : 1);
    put_piece(&m, "\xE2\x96\x81" "a", -1, 1);
    put_piece(&m, "ab", -2, 1);
    put_piece(&m, "\xE2\x96\x81" "ab", -3, 1);
    if (o.unknown_fields) {
        put_int(&m, 99, 12345);
        put_key(&m, 100, 1);
        put(&m, "12345678", 8);
        put_bytes(&m, 101, "junk", 4);
    }
    if (!o.no_trainer) {
        pbw t = {0};
        put_bytes(&t, 2, "tiny", 4);
        put_int(&t, 3, o.model_type);
        put_int(&t, 4, 9);
        put_int(&t, 40, 0);
        put_int(&t, 41, o.bos);
        put_int(&t, 42, 2);
        put_int(&t, 43, -1);
        if (o.ws_suffix) put_int(&t, 24, 1);
        put_bytes(&m, 2, t.p, t.n);
        free(t.p);
    }
    pbw n = {0};
    put_bytes(&n, 1, "identity", 8);
    put_int(&n, 3, o.dummy);
    put_int(&n, 4, o.squeeze);
    put_int(&n, 5, o.escape);
    put_bytes(&m, 3, n.p, n.n);
    free(n.p);
    return m;
}

static fc_tokenizer *load(opts o)
{
    pbw m = build(o);
    fc_tokenizer *t = fc_tokenizer_from_spm(m.p, m.n, "test.model");
    free(m.p);
    return t;
}

static bool encodes(const fc_tokenizer *t, const char *text, bool add_special, const int32_t *want, int n_want)
{
    int32_t *ids;
    int n = fc_tokenizer_encode(t, text, strlen(text), add_special, false, &ids);
    bool ok = n == n_want && (n == 0 || !memcmp(ids, want, sizeof(int32_t) * (size_t)n));
    if (!ok) {
        fprintf(stderr, "  \"%s\": got [", text);
        for (int i = 0; i < n; i++) fprintf(stderr, "%s%d", i ? "," : "", ids[i]);
        fprintf(stderr, "]\n");
    }
    free(ids);
    return ok;
}

/* ---- 1. the small model ---- */

static void check_small_model(void)
{
    fc_tokenizer *t = load(defaults());
    CHECKF(t != NULL, "small model: %s", fc_last_error());
    if (!t) return;
    CHECK(fc_tokenizer_n_vocab(t) == 9);
    CHECK(fc_tokenizer_bos(t) == 1 && fc_tokenizer_eos(t) == 2 && fc_tokenizer_unk(t) == 0);
    CHECK(fc_tokenizer_adds_bos(t) && !fc_tokenizer_adds_eos(t));
    CHECK(fc_tokenizer_is_special(t, 1) && fc_tokenizer_is_special(t, 2) && !fc_tokenizer_is_special(t, 6));
    /* "▁ab▁ab": (▁,a) scores -1, then (▁a,b) gives ▁ab at -3 ((a,b) at -2
     * never meets: a is gone) */
    CHECK(encodes(t, "ab ab", false, (int32_t[]){8, 8}, 2));
    CHECK(encodes(t, "ab ab", true, (int32_t[]){1, 8, 8}, 3));
    CHECK(encodes(t, "b a", false, (int32_t[]){3, 5, 6}, 3));
    CHECK(encodes(t, "bab", false, (int32_t[]){3, 5, 7}, 3));
    /* unknown characters: one <unk> for the run (no byte pieces here) */
    CHECK(encodes(t, "ccc a", false, (int32_t[]){3, 0, 6}, 3));
    CHECK(encodes(t, "", false, NULL, 0));
    size_t len;
    char *d = fc_tokenizer_decode(t, (int32_t[]){1, 8, 6, 5}, 4, true, &len);
    CHECKF(!strcmp(d, "ab ab"), "decode: '%s'", d);
    free(d);
    fc_tokenizer_free(t);

    opts o = defaults();
    o.unknown_fields = true;
    t = load(o);
    CHECKF(t && encodes(t, "ab ab", false, (int32_t[]){8, 8}, 2), "unknown fields are skipped");
    fc_tokenizer_free(t);

    o = defaults();
    o.dummy = false;
    t = load(o);
    CHECKF(t && encodes(t, "ab ab", false, (int32_t[]){7, 8}, 2), "add_dummy_prefix = false");
    fc_tokenizer_free(t);

    o = defaults();
    o.squeeze = true;
    t = load(o);
    CHECKF(t && encodes(t, "   ab    ab  ", false, (int32_t[]){8, 8}, 2), "remove_extra_whitespaces");
    CHECKF(t && encodes(t, "    ", false, NULL, 0), "remove_extra_whitespaces: only spaces");
    fc_tokenizer_free(t);

    o = defaults();
    o.bos = -1;
    t = load(o);
    CHECKF(t && fc_tokenizer_bos(t) == -1 && !fc_tokenizer_adds_bos(t), "bos_id -1");
    fc_tokenizer_free(t);
    o.bos = 999;
    t = load(o);
    CHECKF(t && fc_tokenizer_bos(t) == -1, "bos_id out of range");
    fc_tokenizer_free(t);
}

/* ---- 2. refused ---- */

static void refused(const char *what, const uint8_t *data, size_t n, const char *msg)
{
    fc_tokenizer *t = fc_tokenizer_from_spm(data, n, "test.model");
    CHECKF(t == NULL, "%s: loaded", what);
    CHECKF(t || !msg || strstr(fc_last_error(), msg), "%s: message '%s' lacks '%s'", what, fc_last_error(), msg);
    fc_tokenizer_free(t);
}

static void refused_opts(const char *what, opts o, const char *msg)
{
    pbw m = build(o);
    refused(what, m.p, m.n, msg);
    free(m.p);
}

static void check_refused(void)
{
    opts o = defaults();
    o.model_type = 3;
    refused_opts("word model", o, "word");
    o.model_type = 4;
    refused_opts("char model", o, "char");
    o = defaults();
    o.ws_suffix = true;
    refused_opts("treat_whitespace_as_suffix", o, "treat_whitespace_as_suffix");
    o = defaults();
    o.escape = false;
    refused_opts("escape_whitespaces", o, "escape_whitespaces");
    o = defaults();
    o.nan_at4 = NAN;
    refused_opts("NaN score", o, "NaN");
    o = defaults();
    o.bad_type = 9;
    refused_opts("piece type 9", o, "type");
    o = defaults();
    o.piece5 = "";
    refused_opts("empty piece", o, "empty");
    o = defaults();
    o.piece5 = "a";
    refused_opts("repeated piece", o, "repeats");

    refused("empty file", (const uint8_t *)"", 0, "no pieces");
    static const uint8_t overlong[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    refused("overlong varint", overlong, sizeof overlong, "malformed");
    static const uint8_t past_end[] = {0x0A, 0x7F, 0x0A, 0x01, 'a'};
    refused("length past the end", past_end, sizeof past_end, "malformed");
    static const uint8_t group[] = {0x0B, 0x0C};
    refused("group wire type", group, sizeof group, "malformed");
    static const uint8_t field0[] = {0x02, 0x00};
    refused("field number 0", field0, sizeof field0, "malformed");
    static const uint8_t piece_len[] = {0x0A, 0x04, 0x0A, 0x05, 'a', 'b'};
    refused("piece string past its message", piece_len, sizeof piece_len, "malformed");
}

/* ---- 3. hostile variations ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void check_hostile(void)
{
    pbw m = build(defaults());
    int loaded_bpe = 0;
    for (size_t n = 0; n < m.n; n++) {
        fc_tokenizer *t = fc_tokenizer_from_spm(m.p, n, "truncated.model");
        /* a BPE model exports to tokenizer.json; a Unigram one (T5) is refused */
        size_t len;
        char *js = t ? fc_tokenizer_to_hf_json(t, &len) : NULL;
        loaded_bpe += js != NULL;
        free(js);
        fc_tokenizer_free(t);
    }
    /* the trainer_spec comes after the pieces: a truncated file reads as a
     * Unigram model (protobuf's default model_type) or as malformed, never as
     * a smaller BPE model; only the cut right before the normalizer_spec
     * leaves a valid (default) BPE one */
    CHECKF(loaded_bpe == 1, "%d truncations loaded as BPE", loaded_bpe);
    free(m.p);

    FILE *f = fopen("tests/data/tokenizer/spm/tokenizer.model", "rb");
    CHECKF(f != NULL, "tests/data/tokenizer/spm/tokenizer.model missing (run from the repository root)");
    if (!f) return;
    uint8_t *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, 1 << 20, f);
    fclose(f);
    fc_tokenizer *t = fc_tokenizer_from_spm(buf, n, "spm");
    CHECKF(t && fc_tokenizer_n_vocab(t) == 2000, "the real model loads");
    fc_tokenizer_free(t);
    uint8_t *mut = malloc(n);
    int ok = 0;
    for (int k = 0; k < 3000; k++) {
        memcpy(mut, buf, n);
        int flips = 1 + (int)(next_rand() % 4);
        for (int j = 0; j < flips; j++) mut[next_rand() % n] = (uint8_t)next_rand();
        size_t len = k % 10 == 0 ? next_rand() % n : n;
        t = fc_tokenizer_from_spm(mut, len, "mutated");
        if (t) {
            int32_t *ids;
            int c = fc_tokenizer_encode(t, "Hello world 12 \xE4\xBD\xA0", 16, true, true, &ids);
            for (int i = 0; i < c; i++) CHECK(ids[i] >= 0 && ids[i] < fc_tokenizer_n_vocab(t));
            free(ids);
            ok++;
        }
        fc_tokenizer_free(t);
    }
    printf("mutations: 3000 tried, %d loaded, none crashed\n", ok);
    free(mut);
    free(buf);
}

/* ---- 4. a folder ---- */

static void check_folder(void)
{
    char dir[] = "/tmp/fc_spm_folder_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char p1[64], p2[64];
    snprintf(p1, sizeof p1, "%s/tokenizer.model", dir);
    snprintf(p2, sizeof p2, "%s/tokenizer_config.json", dir);
    pbw m = build(defaults());
    FILE *f = fopen(p1, "wb");
    fwrite(m.p, 1, m.n, f);
    fclose(f);
    free(m.p);
    f = fopen(p2, "w");
    fputs("{\"add_bos_token\": false, \"add_eos_token\": true, \"pad_token\": \"<pad>\",\n"
          " \"added_tokens_decoder\": {\"1\": {\"content\": \"<s>\", \"special\": true},\n"
          "   \"10\": {\"content\": \"<pad>\", \"special\": true}, \"11\": {\"content\": \"<tool>\"}},\n"
          " \"chat_template\": \"{{ messages }}\"}\n", f);
    fclose(f);
    fc_tokenizer *t = fc_tokenizer_from_hf(dir);
    CHECKF(t != NULL, "folder: %s", fc_last_error());
    if (t) {
        CHECK(fc_tokenizer_n_vocab(t) == 12);
        CHECK(fc_tokenizer_pad(t) == 10 && fc_tokenizer_is_special(t, 10) && !fc_tokenizer_is_special(t, 11));
        CHECK(!fc_tokenizer_adds_bos(t) && fc_tokenizer_adds_eos(t));
        CHECK(fc_tokenizer_chat_template(t) && !strcmp(fc_tokenizer_chat_template(t), "{{ messages }}"));
        const char *s = fc_tokenizer_token_text(t, 9);
        CHECKF(s && !strcmp(s, "[PAD9]"), "hole: '%s'", s ? s : "(null)");
        int32_t *ids;
        int n = fc_tokenizer_encode(t, "ab<pad>ab<tool>", 15, true, true, &ids);
        CHECKF(n == 5 && ids[0] == 8 && ids[1] == 10 && ids[2] == 8 && ids[3] == 11 && ids[4] == 2,
               "folder encode: %d ids", n);
        free(ids);
    }
    fc_tokenizer_free(t);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    check_small_model();
    check_refused();
    check_hostile();
    check_folder();
    return TEST_END();
}
