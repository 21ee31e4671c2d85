/*
 * test_base.c: the base/ toolkit: fc_str (cap, sticky error, growth), the
 * JSON escaper against the bytes Python's json.dumps writes, the UTF-8
 * helpers, fc_file_read / fc_file_write_atomic on disk, and the flag parser
 * (conversions, ranges, '_' = '-', one-line errors with a suggestion, --help).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "base/file.h"
#include "base/flags.h"
#include "base/json.h"
#include "base/str.h"
#include "base/utf8.h"
#include "test_util.h"

static void test_str(void)
{
    fc_str s;
    fc_str_init(&s, 0);
    CHECK(!strcmp(fc_str_cstr(&s), "") && fc_str_len(&s) == 0);
    for (int i = 0; i < 1000; i++) fc_str_printf(&s, "%d,", i);
    CHECK(fc_str_len(&s) == strlen(fc_str_cstr(&s)));
    CHECK(!strncmp(fc_str_cstr(&s), "0,1,2,", 6) && strstr(fc_str_cstr(&s), ",999,"));
    CHECK(!fc_str_failed(&s));
    fc_str_reset(&s);
    fc_str_putn(&s, "a\0b", 3);
    CHECK(fc_str_len(&s) == 3 && fc_str_cstr(&s)[2] == 'b' && fc_str_cstr(&s)[3] == 0);
    fc_str_putc(&s, 'c');
    fc_str_puts(&s, NULL);
    CHECK(fc_str_len(&s) == 4);
    char *t = fc_str_take(&s);
    CHECK(t && t[3] == 'c' && fc_str_len(&s) == 0);
    free(t);
    t = fc_str_take(&s); /* nothing appended: an empty string, not NULL */
    CHECK(t && t[0] == 0);
    free(t);

    /* the cap: the failing append leaves the text as it was, and sticks */
    fc_str_init(&s, 10);
    fc_str_puts(&s, "12345678");
    fc_str_puts(&s, "90");
    CHECK(fc_str_len(&s) == 10 && !fc_str_failed(&s));
    fc_str_putc(&s, 'x');
    CHECK(fc_str_failed(&s) && !strcmp(fc_str_cstr(&s), "1234567890"));
    fc_str_puts(&s, "");
    fc_str_putc(&s, 'y');
    CHECK(fc_str_failed(&s) && fc_str_len(&s) == 10);
    CHECK(fc_str_take(&s) == NULL);
    fc_str_init(&s, 8);
    fc_str_puts(&s, "abc");
    fc_str_printf(&s, "%s", "defghi"); /* would make 9 */
    CHECK(fc_str_failed(&s) && !strcmp(fc_str_cstr(&s), "abc"));
    fc_str_reset(&s);
    CHECK(!fc_str_failed(&s));
    fc_str_printf(&s, "%08d", 42);
    CHECK(!fc_str_failed(&s) && !strcmp(fc_str_cstr(&s), "00000042"));
    char *w = fc_str_reserve(&s, 4);
    CHECK(w == NULL && fc_str_failed(&s));
    fc_str_free(&s);
    fc_str_free(NULL);

    fc_str z = {0}; /* zeroed: ready, no cap */
    for (int i = 0; i < 100; i++) fc_str_putc(&z, 'z');
    CHECK(fc_str_len(&z) == 100 && !fc_str_failed(&z) && strlen(fc_str_cstr(&z)) == 100);
    fc_str_free(&z);

    fc_str r = FC_STR_INIT;
    w = fc_str_reserve(&r, 5);
    CHECK(w != NULL);
    if (w) memcpy(w, "hello", 5);
    fc_str_commit(&r, 5);
    fc_str_truncate(&r, 4);
    CHECK(!strcmp(fc_str_cstr(&r), "hell"));
    fc_str_free(&r);
}

/* Escapes s (n bytes) and compares with want. */
static void json_case(const char *s, size_t n, unsigned flags, const char *want)
{
    fc_str o = FC_STR_INIT;
    fc_json_put_strn_flags(&o, s, n, flags);
    CHECKF(!strcmp(fc_str_cstr(&o), want), "got %s want %s", fc_str_cstr(&o), want);
    fc_str_free(&o);
}

static void test_json(void)
{
    /* the expected bytes are what Python writes: json.dumps(s, ensure_ascii=False) */
    json_case("plain", 5, 0, "\"plain\"");
    json_case("a\"b\\c", 5, 0, "\"a\\\"b\\\\c\"");
    json_case("\n\r\t\b\f", 5, 0, "\"\\n\\r\\t\\b\\f\"");
    json_case("\x01\x1f\x7f", 3, 0, "\"\\u0001\\u001f\x7f\"");
    json_case("a\0b", 3, 0, "\"a\\u0000b\"");
    json_case("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 12, 0, "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* json.dumps(s) (ensure_ascii=True) */
    json_case("h\xc3\xa9 \xf0\x9f\x98\x80\x7f", 9, FC_JSON_ASCII, "\"h\\u00e9 \\ud83d\\ude00\\u007f\"");
    /* invalid UTF-8: U+FFFD per maximal subpart (bytes.decode(errors="replace")) */
    json_case("a\xff" "b", 3, 0, "\"a\xef\xbf\xbd" "b\"");
    json_case("\xe2\x82" "x", 3, 0, "\"\xef\xbf\xbd" "x\"");        /* truncated: one subpart */
    json_case("\xed\xa0\x80", 3, 0, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""); /* a surrogate: three */
    json_case("\xc0\xaf", 2, FC_JSON_ASCII, "\"\\ufffd\\ufffd\"");
    /* surrogateescape: one \udcXX per byte */
    json_case("a\xe2\x82", 3, FC_JSON_SURROGATEESCAPE, "\"a\\udce2\\udc82\"");

    fc_str o = FC_STR_INIT;
    fc_str_putc(&o, '{');
    fc_json_put_key(&o, "n", ": ");
    fc_json_put_number(&o, 0.1, 0);
    fc_str_puts(&o, ", ");
    fc_json_put_key(&o, "f", ":");
    fc_json_put_number(&o, (float)0.1f, 9);
    fc_str_puts(&o, ", ");
    fc_json_put_key(&o, "x", ": ");
    fc_json_put_number(&o, NAN, 0);
    fc_str_putc(&o, ',');
    fc_json_put_number(&o, INFINITY, 9);
    fc_str_putc(&o, ',');
    fc_json_put_number(&o, 1.0 / 3.0, 0);
    fc_str_putc(&o, ',');
    fc_json_put_int(&o, -7);
    fc_str_putc(&o, ',');
    fc_json_put_bool(&o, true);
    fc_str_putc(&o, ',');
    fc_json_put_str(&o, NULL);
    fc_str_putc(&o, '}');
    const char *want = "{\"n\": 0.1, \"f\":0.100000001, \"x\": null,null,0.3333333333333333,-7,true,null}";
    CHECKF(!strcmp(fc_str_cstr(&o), want), "got %s", fc_str_cstr(&o));
    fc_str_free(&o);
}

static void test_utf8(void)
{
    uint32_t cp;
    CHECK(fc_utf8_next("\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20AC);
    CHECK(fc_utf8_next("\xe2\x82", 2, &cp) == 0 && cp == 0xFFFD);
    CHECK(fc_utf8_next("\xf4\x90\x80\x80", 4, &cp) == 0); /* above U+10FFFF */
    CHECK(fc_utf8_next("\xc1\xbf", 2, &cp) == 0);         /* overlong */
    char enc[4];
    CHECK(fc_utf8_encode(0x1F600, enc) == 4 && !memcmp(enc, "\xf0\x9f\x98\x80", 4));
    CHECK(fc_utf8_valid("abc\xc3\xa9", 5) && !fc_utf8_valid("abc\xc3", 4));
    CHECK(fc_utf8_count("h\xc3\xa9\xf0\x9f\x98\x80", 7) == 3);
    /* streaming: hold back only a tail more bytes could complete */
    CHECK(fc_utf8_complete_len("ab\xe2\x82", 4) == 2);
    CHECK(fc_utf8_complete_len("ab\xe2", 3) == 2);
    CHECK(fc_utf8_complete_len("ab\xe2\x82\xac", 5) == 5);
    CHECK(fc_utf8_complete_len("ab\xff", 3) == 3);       /* never valid: not held */
    CHECK(fc_utf8_complete_len("ab\xe2x", 4) == 4);
    CHECK(fc_utf8_complete_len("\xf0\x9f\x98", 3) == 0);
    CHECK(fc_utf8_complete_len("a\x80\x80\x80", 4) == 4);
    bool could;
    CHECK(fc_utf8_bad_len((const uint8_t *)"\xf0\x9f\x98", 3, &could) == 3 && could);
    CHECK(fc_utf8_bad_len((const uint8_t *)"\xf0\x9f" "a", 3, &could) == 2 && !could);
    fc_str o = FC_STR_INIT;
    fc_utf8_put_lossy(&o, "a\xf0\x9f" "b\xff", 5);
    CHECK(!strcmp(fc_str_cstr(&o), "a\xef\xbf\xbd" "b\xef\xbf\xbd"));
    fc_str_free(&o);
}

static void test_file(void)
{
    char dir[] = "/tmp/fc_test_base_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    size_t len = 99;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    CHECK(fc_file_read(path, &len, 0) == NULL && strstr(fc_last_error(), "a.txt"));
    /* 10000 bytes: more than the first buffer, so the growth is exercised */
    char *big = malloc(10000);
    for (int i = 0; i < 10000; i++) big[i] = (char)('a' + i % 26);
    CHECK(fc_file_write_atomic(path, big, 10000) == FC_OK);
    char *got = fc_file_read(path, &len, 0);
    CHECK(got && len == 10000 && !memcmp(got, big, 10000) && got[10000] == 0);
    free(got);
    CHECK(fc_file_read(path, &len, 9999) == NULL && strstr(fc_last_error(), "larger than"));
    got = fc_file_read(path, NULL, 10000);
    CHECK(got != NULL);
    free(got);
    /* replacing keeps no temporary behind */
    CHECK(fc_file_write_atomic(path, "new", 3) == FC_OK);
    got = fc_file_read(path, &len, 0);
    CHECK(got && len == 3 && !strcmp(got, "new"));
    free(got);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/missing/b.txt", dir);
    CHECK(fc_file_write_atomic(nodir, "x", 1) == FC_ERR_IO);
    fc_log_set_level(FC_LOG_LEVEL_WARN);
    free(big);
    unlink(path);
    rmdir(dir);
}

/* ---- flags ---- */

static int port, n_models;
static int64_t kv;
static uint64_t seed;
static float temperature, rep;
static double bw;
static bool exact, history, seed_seen;
static const char *host;
static fc_flag_list paths;
static const char *last_names[4];

static const char *on_model_names(const fc_flag *f, const char *v, void *dst)
{
    (void)f;
    if (n_models == 0) return "comes after a --model-path";
    ((const char **)dst)[n_models - 1] = v;
    return NULL;
}

static const char *on_model_path(const fc_flag *f, const char *v, void *dst)
{
    (void)f, (void)dst;
    if (n_models == 4) return "at most 4 models";
    n_models++;
    return NULL;
}

static const fc_flag FLAGS[] = {
    {.kind = FC_FLAG_SECTION, .help = "servers:"},
    {"--host", FC_FLAG_STRING, &host, .metavar = "HOST", .help = "listen address"},
    {"--port|--api-port", FC_FLAG_INT, &port, .min = 0, .max = 65535, .metavar = "N", .help = "API port (default 8000)"},
    {"--kv-cache-tokens", FC_FLAG_INT64, &kv, .max = 1e12, .help = "KV budget"},
    {"--seed", FC_FLAG_UINT64, &seed, .help = "seed", .seen = &seed_seen},
    {"--temperature", FC_FLAG_FLOAT, &temperature, .help = "sampling temperature"},
    {"--repetition_penalty", FC_FLAG_FLOAT, &rep, .max = 10.0, .help = "penalty"},
    {"--bw-gbs", FC_FLAG_DOUBLE, &bw, .help = "bandwidth"},
    {"--exact", FC_FLAG_TRUE, &exact, .help = "f32"},
    {"--no-history", FC_FLAG_FALSE, &history, .help = "forget"},
    {"--model-path", FC_FLAG_LIST, &paths, .help = "a model"},
    {"--model", FC_FLAG_FUNC, NULL, .fn = on_model_path, .help = "a model, counted"},
    {"--model-names", FC_FLAG_FUNC, last_names, .fn = on_model_names, .help = "names of the model before"},
    {"--device", .kind = FC_FLAG_IGNORE},
    {"--load-8bit", .kind = FC_FLAG_IGNORE0},
    {0},
};
static const fc_flags_cmd CMD = {.usage = "fastchat demo [options]", .about = "a demo\n", .flags = FLAGS, .footer = "the end\n"};

static enum fc_flags_result parse(const char *line, char *err)
{
    char buf[512], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "demo %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    err[0] = 0;
    return fc_flags_parse(&CMD, argc, argv, err, 256);
}

#define FLAG_ERR(line, want) do { \
    char e_[256]; \
    CHECKF(parse(line, e_) == FC_FLAGS_ERROR && !strcmp(e_, want), "%s: got '%s'", line, e_); \
} while (0)

static void test_flags(void)
{
    char err[256];
    history = true;
    CHECK(parse("--host 0.0.0.0 --port 80 --kv-cache-tokens 5000000000 --seed 18446744073709551615 "
                "--temperature -1 --repetition-penalty 1.5 --bw-gbs=2.5 --exact --no-history "
                "--model-path a --model_path=b --device cuda --load_8bit", err) == FC_FLAGS_OK);
    CHECK(!strcmp(host, "0.0.0.0") && port == 80 && kv == 5000000000LL && seed == UINT64_MAX && seed_seen);
    CHECK(temperature == -1.0f && rep == 1.5f && bw == 2.5 && exact && !history);
    CHECK(paths.n == 2 && !strcmp(paths.v[0], "a") && !strcmp(paths.v[1], "b"));
    CHECK(parse("--repetition_penalty 2 --api-port 0", err) == FC_FLAGS_OK && rep == 2.0f && port == 0);
    CHECK(parse("--model x --model-names n1 --model y --model-names n2", err) == FC_FLAGS_OK);
    CHECK(n_models == 2 && !strcmp(last_names[0], "n1") && !strcmp(last_names[1], "n2"));
    CHECK(parse("--port 1 -h --port x", err) == FC_FLAGS_HELP);
    CHECK(parse("--help", err) == FC_FLAGS_HELP);

    FLAG_ERR("--port x", "--port: 'x' is not an integer");
    FLAG_ERR("--port 8000x", "--port: '8000x' is not an integer");
    FLAG_ERR("--port=", "--port: '' is not an integer");
    FLAG_ERR("--api-port 70000", "--api-port: 70000 is out of range (0 to 65535)");
    FLAG_ERR("--port 99999999999", "--port: 99999999999 is out of range (0 to 65535)");
    FLAG_ERR("--port", "--port needs a value");
    FLAG_ERR("--seed -1", "--seed: '-1' is not a non-negative integer");
    FLAG_ERR("--temperature hot", "--temperature: 'hot' is not a number");
    FLAG_ERR("--repetition_penalty 11", "--repetition_penalty: 11 is out of range (0 to 10)");
    FLAG_ERR("--repetition_penalty nan", "--repetition_penalty: nan is out of range (0 to 10)");
    FLAG_ERR("--temprature 0.5", "unknown option --temprature (did you mean --temperature?)");
    FLAG_ERR("--prot 1", "unknown option --prot (did you mean --port?)");
    FLAG_ERR("--model_name x", "unknown option --model_name (did you mean --model-names?)");
    FLAG_ERR("--frobnicate", "unknown option --frobnicate (run with --help for the options)");
    FLAG_ERR("--exact=1", "--exact takes no value");
    FLAG_ERR("stray", "unexpected argument 'stray' (run with --help for the options)");
    n_models = 0;
    FLAG_ERR("--model-names n", "--model-names: comes after a --model-path");
    fc_flag_list_free(&paths);

    /* --help lists every visible flag with its spellings, in table order */
    char *text = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&text, &tl);
    fc_flags_print_help(&CMD, f);
    fclose(f);
    CHECK(!strncmp(text, "usage: fastchat demo [options]\na demo\nservers:\n", 47));
    CHECK(strstr(text, "  --port, --api-port N ") && strstr(text, "API port (default 8000)"));
    CHECK(strstr(text, "--repetition_penalty X") && strstr(text, "--host HOST"));
    CHECK(strstr(text, "--exact ") && !strstr(text, "--device") && !strstr(text, "8bit"));
    CHECK(strstr(text, "the end\n"));
    CHECK(strstr(text, "--model-path") < strstr(text, "--model-names"));
    free(text);
}

int main(void)
{
    test_str();
    test_json();
    test_utf8();
    test_file();
    test_flags();
    return TEST_END();
}
