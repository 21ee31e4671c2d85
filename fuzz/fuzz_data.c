/*
 * fuzz_data.c: libFuzzer target for the conversation-JSON reader and writer
 * of `fastchat data` (src/data/pyjson.c) and the HTML-to-Markdown port that
 * clean-sharegpt runs on every value (src/data/html_md.c).
 *
 * The input is taken as a whole file. The checks are the reader's promises:
 * the scan accepts exactly what the validator accepts when the top level is
 * an array; every element span it reports parses on its own; writing a
 * parsed element and parsing that text again gives the same text (the
 * writer's output is valid JSON and a fixed point); and converting any
 * string value from HTML to Markdown terminates without a memory error.
 * Seeds: tests/data/fuzz/fuzz_data/.
 *   make fuzz && build/fuzz/fuzz_data -max_len=65536 corpus tests/data/fuzz/fuzz_data
 */
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "data/html_md.h"
#include "data/pyjson.h"

#define EXPECT(x) do { if (!(x)) __builtin_trap(); } while (0)

static bool has_surrogate(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)s[i] == 0xED && (unsigned char)s[i + 1] >= 0xA0) return true;
    return false;
}

static void markdown_strings(fc_pj_arena *a, const fc_pj *v, fc_pj_out *o)
{
    if (v->type == FC_PJ_STR) {
        if (!has_surrogate(v->str, v->len)) {
            o->len = 0;
            fc_html_to_markdown(a, v->str, v->len, o);
        }
        return;
    }
    if (v->type == FC_PJ_ARR)
        for (size_t i = 0; i < v->len; i++) markdown_strings(a, &v->items[i], o);
    if (v->type == FC_PJ_OBJ)
        for (size_t i = 0; i < 2 * v->len; i++) markdown_strings(a, &v->items[i], o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    const char *buf = (const char *)data;
    fc_pj_span *spans;
    size_t n;
    fc_pj_error err;
    bool not_array;
    bool ok = fc_pyjson_scan_array(buf, size, &spans, &n, &err, &not_array);
    EXPECT(ok == fc_pyjson_validate(buf, size, &err));
    if (!ok) {
        EXPECT(err.offset <= size && err.msg);
        return 0;
    }
    if (not_array) return 0;
    fc_pj_arena *a = fc_pj_arena_new();
    fc_pj_out w1 = {0}, w2 = {0}, md = {0};
    for (size_t i = 0; i < n; i++) {
        EXPECT(spans[i].off + spans[i].len <= size);
        fc_pj_arena_reset(a);
        fc_pj *v = fc_pyjson_parse(a, buf + spans[i].off, spans[i].len, &err);
        EXPECT(v);
        w1.len = w2.len = 0;
        fc_pyjson_write(&w1, v, 1, i % 2 == 1);
        fc_pj *v2 = fc_pyjson_parse(a, w1.p, w1.len, &err);
        EXPECT(v2);
        fc_pyjson_write(&w2, v2, 1, i % 2 == 1);
        EXPECT(w1.len == w2.len && !memcmp(w1.p, w2.p, w1.len));
        markdown_strings(a, v, &md);
    }
    fc_pj_out_free(&w1);
    fc_pj_out_free(&w2);
    fc_pj_out_free(&md);
    fc_pj_arena_free(a);
    free(spans);
    return 0;
}
