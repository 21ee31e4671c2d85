/*
 * fuzz_tool_calls.c: libFuzzer target for serve/tool_calls.c.
 *
 * Input: one control byte, then text.
 *   - control & 1 == 0: the text is a model's answer. It is parsed whole and
 *     again in pieces whose sizes come from the control byte; both must give
 *     the same content, calls, names and arguments (the streamed answer
 *     equals the blocking one), every call's START before its fragments.
 *   - control & 1 == 1: the text is a request body (JSON). fc_tool_req_parse
 *     accepts or refuses it (with a message and a param); when accepted, the
 *     generic messages and the template messages are built, and a forcing
 *     grammar (for the style in control bits 1-2) must compile with
 *     fc_grammar_parse.
 * ASan/UBSan/LeakSanitizer catch the rest. Seeds: tests/data/fuzz/fuzz_tool_calls/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "base/str.h"
#include "sampling/grammar.h"
#include "serve/tool_calls.h"

typedef struct acc {
    fc_str text; /* a flat record of the events */
    int started;
    int bad;
} acc;

static void on_ev(const fc_tool_ev *ev, void *user)
{
    acc *a = user;
    if (ev->kind == FC_TOOL_EV_START) {
        if (ev->index != a->started) a->bad = 1;
        a->started++;
        fc_str_printf(&a->text, "\x01%d:%s\x01", ev->index, ev->name);
    } else if (ev->kind == FC_TOOL_EV_ARGS) {
        if (ev->index != a->started - 1) a->bad = 1;
        fc_str_printf(&a->text, "\x02%d:", ev->index);
        fc_str_putn(&a->text, ev->text, ev->len);
    } else {
        fc_str_putc(&a->text, '\x03');
        fc_str_putn(&a->text, ev->text, ev->len);
    }
}

/* Events merged: consecutive content and argument pieces joined, so that the
 * record does not depend on how the text was cut. */
static char *normalize(const fc_str *s)
{
    fc_str out;
    fc_str_init(&out, 0);
    char last = 0;
    int last_idx = -1;
    for (size_t i = 0; i < s->len;) {
        char k = s->p[i];
        if (k == '\x01') {
            const char *e = memchr(s->p + i + 1, '\x01', s->len - i - 1);
            size_t n = (size_t)(e - (s->p + i)) + 1;
            fc_str_putn(&out, s->p + i, n);
            i += n;
            last = 0;
            continue;
        }
        size_t j = i + 1;
        int idx = -1;
        if (k == '\x02') {
            idx = atoi(s->p + j);
            while (s->p[j] != ':') j++;
            j++;
        }
        size_t end = j;
        while (end < s->len && (unsigned char)s->p[end] > 3) end++;
        if (!(k == last && idx == last_idx)) {
            fc_str_putc(&out, k);
            if (k == '\x02') fc_str_printf(&out, "%d:", idx);
        }
        fc_str_putn(&out, s->p + j, end - j);
        last = k;
        last_idx = idx;
        i = end;
    }
    return fc_str_take(&out);
}

static char *run(const char *text, size_t n, size_t step, const cJSON *tools, int *calls, int *bad)
{
    acc a = {0};
    fc_str_init(&a.text, 0);
    fc_tool_parser *p = fc_tool_parser_new(on_ev, &a);
    fc_tool_parser_set_tools(p, tools);
    for (size_t i = 0; i < n; i += step) fc_tool_parser_feed(p, text + i, i + step > n ? n - i : step);
    fc_tool_parser_finish(p);
    *calls = fc_tool_parser_n_calls(p);
    fc_tool_parser_free(p);
    *bad = a.bad;
    char *r = normalize(&a.text);
    fc_str_free(&a.text);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    if (size < 1 || size > 1 << 16) return 0;
    unsigned ctl = data[0];
    const char *text = (const char *)data + 1;
    size_t n = size - 1;
    if (!(ctl & 1)) {
        if (memchr(text, '\x01', n) || memchr(text, '\x02', n) || memchr(text, '\x03', n)) return 0;
        int c1, c2, b1, b2;
        /* control bit 7: only the functions a, f and get_weather are known */
        cJSON *tools = ctl & 0x80 ? cJSON_Parse("[{\"type\": \"function\", \"function\": {\"name\": \"a\"}},"
                                               " {\"function\": {\"name\": \"f\"}},"
                                               " {\"function\": {\"name\": \"get_weather\"}}]")
                                  : NULL;
        char *whole = run(text, n, n ? n : 1, tools, &c1, &b1);
        char *parts = run(text, n, 1 + (ctl >> 1) % 9, tools, &c2, &b2);
        if (b1 || b2 || c1 != c2 || strcmp(whole, parts)) {
            fprintf(stderr, "whole: %s\nparts: %s\n", whole, parts);
            abort();
        }
        free(whole);
        free(parts);
        char *content = NULL;
        cJSON *calls = fc_tool_parse_text(text, n, tools, &content);
        if (cJSON_GetArraySize(calls) != c1 && !(calls == NULL && c1 == 0)) abort();
        cJSON_Delete(tools);
        cJSON_Delete(calls);
        free(content);
        return 0;
    }
    cJSON *body = cJSON_ParseWithLength(text, n);
    if (!body) return 0;
    fc_tool_req t;
    char err[320] = "";
    const char *param = NULL;
    if (fc_tool_req_parse(body, &t, err, sizeof err, &param) < 0) {
        if (!err[0] || !param) abort();
    } else {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
        bool msgs_ok = cJSON_IsArray(msgs);
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) { /* what check_messages in openai_request.c guarantees */
            msgs_ok = msgs_ok && cJSON_IsObject(m) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role"));
        }
        if (msgs_ok) {
            cJSON_Delete(fc_tool_messages_generic(msgs, &t));
            cJSON_Delete(fc_tool_messages_for_template(msgs));
        }
        if (fc_tool_req_active(&t)) free(fc_tool_generic_block(&t));
        enum fc_tool_style style = (enum fc_tool_style)((ctl >> 1) % 3);
        char *g = fc_tool_grammar(&t, style, err, sizeof err);
        if (g) {
            char why[256];
            fc_grammar *gr = fc_grammar_parse(g, strlen(g), why, sizeof why);
            /* a strict schema compiles; a non-strict one falls back to any object */
            if (!gr) {
                fprintf(stderr, "%s\n%s\n", why, g);
                abort();
            }
            fc_grammar_free(gr);
            free(g);
        } else if (fc_tool_req_forced(&t) && !err[0]) {
            abort();
        }
    }
    cJSON_Delete(body);
    return 0;
}
