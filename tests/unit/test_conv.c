/*
 * test_conv.c: the conversation templates and adapter matching against
 * FastChat itself. tests/data/conv/golden.json (tools/golden/make_conv_golden.py,
 * written by fschat's own code) holds, for every registered template, its
 * worker-protocol JSON, get_prompt() for 11 conversation shapes, the stop
 * strings and ids, to_openai_api_messages() output, prompts the OpenAI API
 * server builds from message lists, and ~250 model paths with the template and
 * adapter FastChat picks. Every comparison is exact (bytes; JSON structure).
 *
 * Run from the repository root (the PEFT cases name folders under
 * tests/data/conv/peft). Data file: $FC_CONV_GOLDEN, default
 * tests/data/conv/golden.json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "chat/conv.h"
#include "test_util.h"

static int n_shown;

/* Prints where two strings first differ (first few mismatches only). */
static void show_diff(const char *what, const char *want, const char *got)
{
    if (n_shown++ >= 12) return;
    if (!want || !got) {
        fprintf(stderr, "  %s: want %s, got %s\n", what, want ? "a prompt" : "NULL (FastChat raises)",
                got ? "a prompt" : "NULL");
        return;
    }
    size_t i = 0;
    while (want[i] && want[i] == got[i]) i++;
    size_t from = i > 30 ? i - 30 : 0;
    fprintf(stderr, "  %s: differ at byte %zu\n    want ...%.60s\n    got  ...%.60s\n", what, i,
            want + from, got + from);
}

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static const char *json_text(const cJSON *v) { return cJSON_IsString(v) ? v->valuestring : NULL; }

/* Replays ["system", t] / ["append", role, t|null] / ["update_last", t]. */
static void replay(fc_conv *c, const cJSON *ops)
{
    const cJSON *op;
    cJSON_ArrayForEach(op, ops) {
        const char *kind = json_text(cJSON_GetArrayItem(op, 0));
        FC_ASSERT(kind);
        if (!strcmp(kind, "system")) fc_conv_set_system_message(c, json_text(cJSON_GetArrayItem(op, 1)));
        else if (!strcmp(kind, "append"))
            CHECK(fc_conv_append_message(c, cJSON_GetArrayItem(op, 1)->valueint,
                                         json_text(cJSON_GetArrayItem(op, 2))) == 0);
        else if (!strcmp(kind, "update_last")) fc_conv_update_last_message(c, json_text(cJSON_GetArrayItem(op, 1)));
        else FC_ASSERT(!"unknown op");
    }
}

static bool stops_match(const fc_conv *c, const cJSON *want_str, const cJSON *want_ids)
{
    if (fc_conv_n_stop_str(c) != cJSON_GetArraySize(want_str)) return false;
    for (int i = 0; i < fc_conv_n_stop_str(c); i++)
        if (!str_eq(fc_conv_stop_str(c, i), json_text(cJSON_GetArrayItem(want_str, i)))) return false;
    int n;
    const int32_t *ids = fc_conv_stop_token_ids(c, &n);
    if (n != cJSON_GetArraySize(want_ids)) return false;
    for (int i = 0; i < n; i++)
        if (ids[i] != cJSON_GetArrayItem(want_ids, i)->valueint) return false;
    return true;
}

/* ---- templates: table vs FastChat's registry, JSON both ways ---- */
static void test_templates(const cJSON *templates)
{
    int n = cJSON_GetArraySize(templates), ok = 0;
    CHECKF(fc_conv_template_count() == n, "%d templates here, %d in FastChat", fc_conv_template_count(), n);
    for (int i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(templates, i);
        const char *name = json_text(cJSON_GetObjectItem(t, "name"));
        const cJSON *want = cJSON_GetObjectItem(t, "json");
        bool good = str_eq(fc_conv_template_name(i), name);
        CHECKF(good, "template %d: '%s' here, '%s' in FastChat", i, fc_conv_template_name(i), name);
        fc_conv *c = fc_conv_new(name);
        CHECKF(c, "fc_conv_new(%s)", name);
        if (!c) continue;
        cJSON *got = fc_conv_to_json(c);
        bool same = cJSON_Compare(got, want, true);
        CHECKF(same, "template %s: to_json differs from FastChat's dataclass", name);
        if (!same && n_shown++ < 12) {
            char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(want);
            fprintf(stderr, "    got  %.300s\n    want %.300s\n", a, b);
            free(a), free(b);
        }
        /* the API server's path: rebuild from the worker's JSON */
        fc_conv *back = fc_conv_from_json(want);
        CHECKF(back, "from_json(%s)", name);
        cJSON *again = back ? fc_conv_to_json(back) : NULL;
        bool round = again && cJSON_Compare(again, want, true);
        CHECKF(round, "template %s: JSON round trip differs", name);
        ok += good && same && round;
        cJSON_Delete(again);
        fc_conv_free(back);
        cJSON_Delete(got);
        fc_conv_free(c);
    }
    printf("templates:   %d/%d match (names, order, every field, JSON round trip)\n", ok, n);
}

/* ---- get_prompt for every template x shape ---- */
static void test_cases(const cJSON *cases)
{
    int n = cJSON_GetArraySize(cases), ok = 0, n_openai = 0, ok_openai = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const char *name = json_text(cJSON_GetObjectItem(cs, "template"));
        const char *shape = json_text(cJSON_GetObjectItem(cs, "shape"));
        const char *want = json_text(cJSON_GetObjectItem(cs, "prompt"));
        char what[256];
        snprintf(what, sizeof what, "%s / %s", name, shape);
        fc_conv *c = fc_conv_new(name);
        if (!c) { CHECKF(0, "%s: no such template", what); continue; }
        replay(c, cJSON_GetObjectItem(cs, "ops"));
        char *got = fc_conv_get_prompt(c);
        bool same = str_eq(want, got);
        CHECKF(same, "%s: prompt differs", what);
        if (!same) show_diff(what, want, got);
        bool stops = stops_match(c, cJSON_GetObjectItem(cs, "stop_str"), cJSON_GetObjectItem(cs, "stop_token_ids"));
        CHECKF(stops, "%s: stop strings / ids differ", what);
        ok += same && stops;
        const cJSON *want_oa = cJSON_GetObjectItem(cs, "openai");
        if (want_oa) {
            n_openai++;
            cJSON *oa = fc_conv_to_openai_messages(c);
            bool e = cJSON_Compare(oa, want_oa, true);
            CHECKF(e, "%s: to_openai_api_messages differs", what);
            ok_openai += e;
            cJSON_Delete(oa);
        }
        free(got);
        fc_conv_free(c);
    }
    printf("prompts:     %d/%d match byte for byte (with stop strings and ids)\n", ok, n);
    printf("openai msgs: %d/%d match\n", ok_openai, n_openai);
}

/* ---- the OpenAI API server's prompt assembly ---- */
static void test_api_cases(const cJSON *api_cases, const cJSON *templates)
{
    int n = cJSON_GetArraySize(api_cases), ok = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, api_cases) {
        const char *name = json_text(cJSON_GetObjectItem(cs, "template"));
        const cJSON *tj = NULL, *t;
        cJSON_ArrayForEach(t, templates)
            if (str_eq(json_text(cJSON_GetObjectItem(t, "name")), name)) tj = cJSON_GetObjectItem(t, "json");
        fc_conv *c = tj ? fc_conv_from_json(tj) : NULL;
        if (!c) { CHECKF(0, "api case %s: template JSON", name); continue; }
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(cs, "messages")) {
            const char *role = json_text(cJSON_GetObjectItem(m, "role"));
            const char *content = json_text(cJSON_GetObjectItem(m, "content"));
            if (!strcmp(role, "system")) fc_conv_set_system_message(c, content);
            else fc_conv_append_message(c, !strcmp(role, "assistant"), content);
        }
        fc_conv_append_message(c, 1, NULL);
        char *got = fc_conv_get_prompt(c);
        const char *want = json_text(cJSON_GetObjectItem(cs, "prompt"));
        char what[256];
        snprintf(what, sizeof what, "api %s / %s", name, json_text(cJSON_GetObjectItem(cs, "name")));
        bool same = str_eq(want, got);
        CHECKF(same, "%s: prompt differs", what);
        if (!same) show_diff(what, want, got);
        /* "stop": the set of the template's stop strings (sorted in the golden) */
        const cJSON *ws = cJSON_GetObjectItem(cs, "stop");
        bool stops = true;
        for (int i = 0; i < fc_conv_n_stop_str(c); i++) {
            bool found = false;
            const cJSON *s;
            cJSON_ArrayForEach(s, ws) found |= str_eq(json_text(s), fc_conv_stop_str(c, i));
            stops &= found;
        }
        stops &= fc_conv_n_stop_str(c) >= cJSON_GetArraySize(ws);
        CHECKF(stops, "%s: stop set differs", what);
        ok += same && stops;
        free(got);
        fc_conv_free(c);
    }
    printf("api prompts: %d/%d match\n", ok, n);
}

/* ---- model path -> template ---- */
static void test_adapters(const cJSON *adapters)
{
    int n = cJSON_GetArraySize(adapters), ok = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, adapters) {
        const char *path = json_text(cJSON_GetObjectItem(a, "path"));
        const char *want = json_text(cJSON_GetObjectItem(a, "template"));
        const char *want_adapter = json_text(cJSON_GetObjectItem(a, "adapter"));
        const char *adapter = NULL;
        const char *got = fc_conv_template_for_model_path(path, &adapter);
        bool same = str_eq(want, got) && str_eq(want_adapter, adapter);
        CHECKF(same, "model path '%s': FastChat picks %s (%s), here %s (%s)", path, want ? want : "an error",
               want_adapter, got ? got : "an error", adapter ? adapter : "-");
        ok += same;
    }
    printf("adapters:    %d/%d model paths pick FastChat's template and adapter\n", ok, n);
}

/* ---- API edge cases not covered by the golden data ---- */
static void test_api_edges(void)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE); /* the errors below are expected */
    CHECK(fc_conv_new("no-such-template") == NULL);
    CHECK(fc_conv_new(NULL) == NULL);
    CHECK(!fc_conv_template_exists("Vicuna_v1.1"));
    CHECK(fc_conv_template_exists("vicuna_v1.1"));
    CHECK(fc_conv_template_name(-1) == NULL && fc_conv_template_name(fc_conv_template_count()) == NULL);
    fc_conv_free(NULL);
    CHECK(fc_conv_template_for_model_path(NULL, NULL) == NULL);

    fc_conv *c = fc_conv_new("vicuna_v1.1");
    CHECK(fc_conv_append_message(c, 2, "x") != 0);
    CHECK(fc_conv_n_messages(c) == 0);
    fc_conv_update_last_message(c, "ignored"); /* no messages: no-op */
    fc_conv_append_message(c, 0, "hi");
    fc_conv_append_message(c, 1, NULL);
    int role;
    CHECK(fc_conv_message(c, 1, &role) == NULL && role == 1);
    CHECK(fc_conv_message(c, 2, &role) == NULL && role == -1);
    fc_conv_update_last_message(c, fc_conv_message(c, 0, NULL)); /* aliasing is safe */
    CHECK(str_eq(fc_conv_message(c, 1, NULL), "hi"));
    fc_conv *d = fc_conv_copy(c);
    fc_conv_update_last_message(c, "changed");
    CHECK(str_eq(fc_conv_message(d, 1, NULL), "hi")); /* deep copy */
    char *p = fc_conv_get_prompt(d);
    CHECK(p && strstr(p, "USER: hi ASSISTANT: hi</s>"));
    free(p);
    CHECK(str_eq(fc_conv_sep_style_name(fc_conv_sep_style(c)), "ADD_COLON_TWO"));
    fc_conv_free(c);
    fc_conv_free(d);

    /* Python str.format rules in system_template */
    cJSON *j = cJSON_Parse("{\"name\":\"x\",\"system_template\":\"{{a}} {system_message} }}\","
                           "\"system_message\":\"S\",\"roles\":[\"U\",\"A\"],\"sep_style\":4,\"sep\":\"|\"}");
    c = fc_conv_from_json(j);
    CHECK(c);
    p = c ? fc_conv_get_prompt(c) : NULL;
    CHECK(str_eq(p, "{a} S }"));
    free(p);
    fc_conv_free(c);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"name\":\"x\",\"system_template\":\"{other}\",\"sep_style\":4}");
    c = fc_conv_from_json(j);
    CHECK(c && fc_conv_get_prompt(c) == NULL); /* Python: KeyError */
    fc_conv_free(c);
    cJSON_Delete(j);
    /* ADD_COLON_TWO with sep2 None: Python raises concatenating it after an
     * assistant turn, and only then */
    j = cJSON_Parse("{\"name\":\"x\",\"roles\":[\"U\",\"A\"],\"sep_style\":2,\"sep\":\" \",\"sep2\":null}");
    c = fc_conv_from_json(j);
    CHECK(c);
    fc_conv_append_message(c, 0, "q");
    fc_conv_append_message(c, 1, NULL);
    p = fc_conv_get_prompt(c);
    CHECK(str_eq(p, " U: q A:"));
    free(p);
    fc_conv_update_last_message(c, "a");
    CHECK(fc_conv_get_prompt(c) == NULL);
    fc_conv_free(c);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"name\":\"x\",\"sep_style\":24}");
    CHECK(fc_conv_from_json(j) == NULL);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"name\":\"x\",\"roles\":[\"U\",\"A\"],\"messages\":[[\"Z\",\"hi\"]]}");
    CHECK(fc_conv_from_json(j) == NULL);
    cJSON_Delete(j);
    fc_log_set_level(FC_LOG_LEVEL_INFO);
}

int main(void)
{
    const char *path = getenv("FC_CONV_GOLDEN");
    if (!path) path = "tests/data/conv/golden.json";
    fc_mmap *m = fc_mmap_open(path);
    if (!m) {
        fprintf(stderr, "%s: cannot read (run from the repository root)\n", path);
        return 1;
    }
    cJSON *g = cJSON_ParseWithLength((const char *)m->data, m->size);
    fc_mmap_free(m);
    if (!g) {
        fprintf(stderr, "%s: invalid JSON\n", path);
        return 1;
    }
    printf("golden: %s\n", json_text(cJSON_GetObjectItem(g, "fastchat")));
    enum fc_log_level lvl = fc_log_get_level();
    fc_log_set_level(FC_LOG_LEVEL_NONE); /* the cases where FastChat raises log errors here */
    test_templates(cJSON_GetObjectItem(g, "templates"));
    test_cases(cJSON_GetObjectItem(g, "cases"));
    test_api_cases(cJSON_GetObjectItem(g, "api_cases"), cJSON_GetObjectItem(g, "templates"));
    test_adapters(cJSON_GetObjectItem(g, "adapters"));
    fc_log_set_level(lvl);
    test_api_edges();
    cJSON_Delete(g);
    return TEST_END();
}
