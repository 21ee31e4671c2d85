/*
 * data_lang.c: `fastchat data optional-clean` (optional_clean.py).
 *
 * The keep/skip rules are the script's: with --keep-lang en a sample is kept
 * only when its language is "en"; with --skip-lang X it is dropped when its
 * language is X; --reduce-rep drops a sample when any value holds one
 * decimal digit (Unicode Nd, as Python's \d) nine times in a row,
 * re.search(r"(\d)\1{8}"). Output file names are the script's.
 *
 * The language itself is NOT FastChat's: the script asks polyglot (cld2, a
 * trained model) for the code of all values joined by "\n". We have no such
 * model; detect_lang() below is a small rule of our own: the script that
 * most letters are written in (Hangul ko, kana ja, Han zh, Cyrillic ru,
 * Arabic ar, Hebrew he, Greek el, Thai th, Devanagari hi), and for Latin
 * text the language whose common words are most frequent among en, es, fr,
 * de, pt, it (ties and texts without letters: "unknown"). It agrees with
 * cld2 on plain single-language text and is not compared with it in tests.
 */
#include "data/data_impl.h"

#include <string.h>

#include "base/fc_base.h"

/* ---- language ---- */

typedef struct lang_words {
    const char *code;
    const char *const *words;
} lang_words;

static const char *const EN[] = {"the", "and", "is", "are", "of", "to", "in", "that", "it", "you",
                                 "for", "with", "this", "be", "on", "what", "can", "have", "not", "how", NULL};
static const char *const ES[] = {"el", "la", "los", "las", "de", "que", "y", "en", "es", "un", "una",
                                 "por", "para", "con", "no", "se", "del", "como", "lo", "su", NULL};
static const char *const FR[] = {"le", "la", "les", "de", "des", "et", "est", "un", "une", "que",
                                 "pour", "dans", "pas", "vous", "je", "il", "sur", "du", "ce", "qui", NULL};
static const char *const DE[] = {"der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu",
                                 "den", "mit", "sie", "ich", "es", "auf", "für", "von", "dem", "sich", "auch", NULL};
static const char *const PT[] = {"o", "a", "os", "as", "de", "que", "e", "em", "um", "uma", "para",
                                 "com", "não", "do", "da", "se", "por", "mais", "como", "você", NULL};
static const char *const IT[] = {"il", "la", "di", "che", "e", "è", "un", "una", "per", "non", "in",
                                 "del", "della", "sono", "con", "mi", "si", "gli", "le", "ho", NULL};
static const lang_words LATIN[] = {{"en", EN}, {"es", ES}, {"fr", FR}, {"de", DE}, {"pt", PT}, {"it", IT}};

enum { S_LATIN, S_HANGUL, S_KANA, S_HAN, S_CYR, S_ARAB, S_HEB, S_GREEK, S_THAI, S_DEVA, N_SCRIPTS };
static const char *const SCRIPT_CODE[N_SCRIPTS] = {"", "ko", "ja", "zh", "ru", "ar", "he", "el", "th", "hi"};

static int script_of(unsigned cp)
{
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return S_LATIN;
    if (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) return S_LATIN;
    if ((cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0x3130 && cp <= 0x318F))
        return S_HANGUL;
    if (cp >= 0x3040 && cp <= 0x30FF) return S_KANA;
    if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF)) return S_HAN;
    if (cp >= 0x400 && cp <= 0x4FF) return S_CYR;
    if (cp >= 0x600 && cp <= 0x6FF) return S_ARAB;
    if (cp >= 0x590 && cp <= 0x5FF) return S_HEB;
    if (cp >= 0x370 && cp <= 0x3FF) return S_GREEK;
    if (cp >= 0xE00 && cp <= 0xE7F) return S_THAI;
    if (cp >= 0x900 && cp <= 0x97F) return S_DEVA;
    return -1;
}

static void count_words(const char *s, size_t n, size_t *score)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        unsigned cp = dt_next_cp(s, n, &j);
        if (script_of(cp) != S_LATIN) { i = j; continue; }
        size_t ws = i;
        while (j < n) {
            size_t k = j;
            cp = dt_next_cp(s, n, &k);
            if (script_of(cp) != S_LATIN) break;
            j = k;
        }
        size_t wl = j - ws;
        char w[32];
        if (wl < sizeof w) {
            for (size_t k = 0; k < wl; k++) {
                char c = s[ws + k];
                w[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
            }
            w[wl] = '\0';
            for (size_t l = 0; l < FC_ARRAY_LEN(LATIN); l++)
                for (const char *const *p = LATIN[l].words; *p; p++)
                    if (!strcmp(*p, w)) score[l]++;
        }
        i = j;
    }
}

static const char *detect_lang(const fc_pj *convs)
{
    size_t by_script[N_SCRIPTS] = {0}, score[FC_ARRAY_LEN(LATIN)] = {0};
    for (size_t k = 0; k < convs->len; k++) {
        const fc_pj *v = fc_pj_get(&convs->items[k], "value");
        if (!v || v->type != FC_PJ_STR) continue;
        for (size_t i = 0; i < v->len;) {
            int sc = script_of(dt_next_cp(v->str, v->len, &i));
            if (sc >= 0) by_script[sc]++;
        }
        count_words(v->str, v->len, score);
    }
    int best = -1;
    for (int s = 0; s < N_SCRIPTS; s++)
        if (by_script[s] && (best < 0 || by_script[s] > by_script[best])) best = s;
    if (best < 0) return "unknown";
    /* Japanese is written with kana and kanji: any notable kana share is ja */
    if ((best == S_HAN || best == S_KANA) && by_script[S_KANA] * 10 >= by_script[S_HAN]) return "ja";
    if (best != S_LATIN) return SCRIPT_CODE[best];
    int bl = -1;
    bool tie = false;
    for (size_t l = 0; l < FC_ARRAY_LEN(LATIN); l++) {
        if (bl < 0 || score[l] > score[bl]) { bl = (int)l; tie = false; }
        else if (score[l] == score[bl]) tie = true;
    }
    if (bl < 0 || !score[bl] || tie) return "unknown";
    return LATIN[bl].code;
}

/* ---- the tool ---- */

typedef struct clean_ctx {
    const char *keep_lang, *skip_lang;
    bool reduce_rep;
} clean_ctx;

static bool repeated_digit(const char *s, size_t n)
{
    unsigned prev = 0;
    int run = 0;
    for (size_t i = 0; i < n;) {
        unsigned cp = dt_next_cp(s, n, &i);
        if (dt_py_isdigit(cp)) {
            run = (cp == prev && run > 0) ? run + 1 : 1;
            prev = cp;
            if (run >= 9) return true;
        } else {
            run = 0;
        }
    }
    return false;
}

static int clean_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    clean_ctx *c = ctx;
    fc_pj *convs = fc_pj_get(v, "conversations");
    if (!convs || convs->type != FC_PJ_ARR) {
        fc_pj_out_puts(aux, "no \"conversations\" list");
        return -1;
    }
    for (size_t k = 0; k < convs->len; k++) {
        fc_pj *s = fc_pj_get(&convs->items[k], "value");
        if (!s || s->type != FC_PJ_STR) {
            fc_pj_out_puts(aux, "a turn without a string \"value\"");
            return -1;
        }
    }
    if (strcmp(c->keep_lang, "all") || c->skip_lang) {
        const char *lang = detect_lang(convs);
        if (strcmp(c->keep_lang, "all") && strcmp(lang, c->keep_lang)) return 0;
        if (c->skip_lang && !strcmp(lang, c->skip_lang)) return 0;
    }
    if (c->reduce_rep)
        for (size_t k = 0; k < convs->len; k++) {
            fc_pj *s = fc_pj_get(&convs->items[k], "value");
            if (repeated_digit(s->str, s->len)) return 0;
        }
    dt_put_elem(out, v, false);
    return 1;
}

bool fc_data_optional_clean(const char *in_file, const char *out_file, const char *keep_lang,
                            const char *skip_lang, bool reduce_rep, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    clean_ctx c = {keep_lang, skip_lang, reduce_rep};
    dt_writer w;
    bool ok = dt_writer_open(&w, out_file);
    if (ok) {
        if (dt_run(f, NULL, fc_data_file_count(f), clean_elem, NULL, &c, &w, o, "optional-clean")) {
            fprintf(dt_msg(o), "#in: %zu, #out: %zu\n", fc_data_file_count(f), w.count);
            ok = dt_writer_close(&w);
        } else {
            dt_writer_abort(&w);
            ok = false;
        }
    }
    fc_data_file_free(f);
    return ok;
}
