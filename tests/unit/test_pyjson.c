/*
 * test_pyjson.c: the conversation-JSON reader/writer of `fastchat data`
 * (src/data/pyjson.c) and numpy's legacy MT19937 (src/data/np_random.c).
 *
 * Expected strings are what Python 3.11 prints: repr(float(s)) for numbers,
 * json.dumps(..., indent=2, ensure_ascii=False/True) for values, the char
 * offsets of json.JSONDecodeError for errors. MT19937: the reference
 * generator's first output for init_genrand(5489) is 3499211612.
 * (tests/py/test_data_tools.py compares whole files with FastChat's scripts.)
 */
#include "test_util.h"
#include "data/np_random.h"
#include "data/pyjson.h"

#include <string.h>

static void write_eq(fc_pj_arena *a, const char *in, bool ascii, const char *want)
{
    fc_pj_error e;
    fc_pj *v = fc_pyjson_parse(a, in, strlen(in), &e);
    CHECKF(v != NULL, "parse %s: %s", in, v ? "" : e.msg);
    if (!v) return;
    fc_pj_out o = {0};
    fc_pyjson_write(&o, v, 0, ascii);
    fc_pj_out_putn(&o, "", 1);
    CHECKF(!strcmp(o.p, want), "%s -> [%s], want [%s]", in, o.p, want);
    fc_pj_out_free(&o);
}

static void err_at(const char *in, size_t off)
{
    fc_pj_error e;
    CHECKF(!fc_pyjson_validate(in, strlen(in), &e) && e.offset == off, "%s: offset %zu want %zu", in, e.offset, off);
}

int main(void)
{
    fc_pj_arena *a = fc_pj_arena_new();
    static const char *const NUM[][2] = {
        {"1E5", "100000.0"}, {"1.50", "1.5"}, {"1e16", "1e+16"}, {"1e15", "1000000000000000.0"},
        {"0.0001", "0.0001"}, {"0.00001", "1e-05"}, {"2.5e-7", "2.5e-07"}, {"1e22", "1e+22"},
        {"-0.0", "-0.0"}, {"1e999", "Infinity"}, {"-1e999", "-Infinity"}, {"0.1", "0.1"},
        {"123456789.123456789", "123456789.12345679"}, {"5e-324", "5e-324"},
        {"1.7976931348623157e308", "1.7976931348623157e+308"}, {"9007199254740993.0", "9007199254740992.0"},
        {"-1e-7", "-1e-07"}, {"-0", "0"}, {"123456789012345678901234567890", "123456789012345678901234567890"},
        {"NaN", "NaN"}, {"Infinity", "Infinity"},
    };
    for (size_t i = 0; i < sizeof NUM / sizeof NUM[0]; i++) write_eq(a, NUM[i][0], false, NUM[i][1]);

    write_eq(a, "[]", false, "[]");
    write_eq(a, "{}", false, "{}");
    write_eq(a, "[1, [2, {}], {\"a\": []}]", false, "[\n  1,\n  [\n    2,\n    {}\n  ],\n  {\n    \"a\": []\n  }\n]");
    /* a repeated key keeps its first place and its last value */
    write_eq(a, "{\"a\": 1, \"b\": 2, \"a\": 3}", false, "{\n  \"a\": 3,\n  \"b\": 2\n}");
    /* escapes: \/ is read as /, control characters written back, DEL raw unless ensure_ascii */
    write_eq(a, "\"\\/\\b\\f\\n\\r\\t\\u0001\\u007f\\\"\\\\\"", false, "\"/\\b\\f\\n\\r\\t\\u0001\x7f\\\"\\\\\"");
    write_eq(a, "\"\\u007f\"", true, "\"\\u007f\"");
    write_eq(a, "\"\xc3\xa9\xf0\x9f\x98\x80\"", false, "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    write_eq(a, "\"\xc3\xa9\xf0\x9f\x98\x80\"", true, "\"\\u00e9\\ud83d\\ude00\"");
    write_eq(a, "\"\\ud83d\\ude00\"", false, "\"\xf0\x9f\x98\x80\"");
    write_eq(a, "\"\\ud800x\"", false, "\"\\ud800x\""); /* lone surrogate: kept, written escaped */

    err_at("[1, 2", 5);
    err_at("[1 2]", 3);
    err_at("{\"a\" 1}", 5);
    err_at("{1: 2}", 1);
    err_at("\"a\tb\"", 2);
    err_at("[01]", 2);
    err_at("[1.]", 2);
    err_at("\"\\x\"", 1);
    err_at("[] x", 3);
    err_at("\xef\xbb\xbf[]", 0);
    err_at("[\"\xff\"]", 2);
    err_at("[\"\xed\xa0\x80\"]", 2); /* an encoded surrogate is not UTF-8 */
    err_at("", 0);

    /* the scan reports element spans that parse on their own */
    const char *doc = " [ {\"id\": 1} , \"x\" ,[] ] ";
    fc_pj_span *sp;
    size_t n;
    fc_pj_error e;
    bool not_array;
    CHECK(fc_pyjson_scan_array(doc, strlen(doc), &sp, &n, &e, &not_array) && !not_array && n == 3);
    if (n == 3) {
        CHECK(sp[0].off == 3 && sp[0].len == 9);
        CHECK(!memcmp(doc + sp[1].off, "\"x\"", 3) && sp[1].len == 3);
        CHECK(!memcmp(doc + sp[2].off, "[]", 2) && sp[2].len == 2);
    }
    free(sp);
    CHECK(fc_pyjson_scan_array("{\"a\": 1}", 8, &sp, &n, &e, &not_array) && not_array);
    CHECK(fc_pj_str_cplen("a\xc3\xa9\xf0\x9f\x98\x80", 7) == 3);

    fc_np_random r;
    fc_np_random_seed(&r, 5489);
    CHECK(fc_np_random_u32(&r) == 3499211612u);

    fc_pj_arena_free(a);
    return TEST_END();
}
