/*
 * test_judge.c: the MT-bench judge pieces of src/eval/ (judge.h, jsonl.h).
 *
 * Verdicts: every case's expected value was produced by FastChat's own
 * common.py regexes and ast.literal_eval in Python (one_score_pattern /
 * _backup, the "[[A]]" substring tests, two_score_pattern / _backup with
 * TIE_DELTA); where Python raises, FastChat's thread dies and we record "no
 * verdict" (-1 / error), marked below. str.format filling against Python's
 * results; JSONL: a torn last line is cut on open and ignored on read, and
 * 8 threads appending at once never interleave lines.
 */
#include "eval/jsonl.h"
#include "eval/judge.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static const struct vcase {
    const char *text;
    double score;
    bool is_int;
    const char *ab, *two;
} cases[] = {
    {"Rating: [[7]]", 7.0, true, "error", "error"},
    {"Rating: [[7.5]]", 7.5, false, "error", "error"},
    {"[[10]]", 10.0, true, "error", "error"},
    {"[7]", 7.0, true, "error", "error"},
    {"[[7.]]", 7.0, false, "error", "error"},
    {"no", -1.0, true, "error", "error"},
    {"", -1.0, true, "error", "error"},
    {"[[ 7]]", -1.0, true, "error", "error"},
    {"[7][[3]]", 3.0, true, "error", "error"},
    {"[[3]] then [[9]]", 3.0, true, "error", "error"},
    {"[[0]]", 0.0, true, "error", "error"},
    {"[[00]]", 0.0, true, "error", "error"},
    {"[[08]]", -1.0, true, "error", "error"},  /* Python raises */
    {"[[08.5]]", 8.5, false, "error", "error"},
    {"[[1.2.3]]", -1.0, true, "error", "error"},
    {"[[12a]]", -1.0, true, "error", "error"},
    {"[[[5]]]", 5.0, true, "error", "error"},
    {"[x][6]", 6.0, true, "error", "error"},
    {"[[5]", 5.0, true, "error", "error"},
    {"[5]]", 5.0, true, "error", "error"},
    {"[[-3]]", -1.0, true, "error", "error"},
    {"[[1e3]]", -1.0, true, "error", "error"},
    {"score [[ 8 ]] or [9.25]", 9.25, false, "error", "error"},
    {"[[1,2]]", -1.0, true, "error", "B"},
    {"[[3, 3]]", -1.0, true, "error", "tie"},
    {"[[4,\t4.05]]", -1.0, true, "error", "tie"},
    {"[[9.0,1]]", -1.0, true, "error", "A"},
    {"[2,  5]", -1.0, true, "error", "error"},
    {"[[2,5]", -1.0, true, "error", "B"},
    {"[7.5,7.6]", -1.0, true, "error", "tie"},
    {"[[A]]", -1.0, true, "A", "error"},
    {"[[B]] [[A]]", -1.0, true, "A", "error"},
    {"[[C]]", -1.0, true, "tie", "error"},
    {"[[c]]", -1.0, true, "error", "error"},
    {"[A]", -1.0, true, "error", "error"},
    {"[[B]][[C]]", -1.0, true, "B", "error"},
    {"[[\xd9\xa3]]", -1.0, true, "error", "error"},  /* Python raises */
    {"[[99999999999999999999]]", 1e+20, true, "error", "error"},
    {"Verdict: [[A]] maybe [[B]]", -1.0, true, "A", "error"},
    {"[[7]]x[[8, 9]]", 7.0, true, "error", "B"},
};

static void test_verdicts(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct vcase *c = &cases[i];
        bool is_int;
        double s = fc_judge_parse_rating(c->text, &is_int);
        CHECKF(s == c->score && is_int == c->is_int, "%s: score %g int %d, want %g %d", c->text, s, is_int,
               c->score, c->is_int);
        CHECKF(!strcmp(fc_verdict_name(fc_judge_parse_ab(c->text)), c->ab), "%s: [[A]] format", c->text);
        CHECKF(!strcmp(fc_verdict_name(fc_judge_parse_two(c->text)), c->two), "%s: two scores", c->text);
        bool known;
        CHECK(fc_judge_parse("[[A]]", c->text, &known) == fc_judge_parse_ab(c->text) && known);
        fc_judge_parse("[[rating]]", c->text, &known);
        CHECK(!known);
    }
    CHECK(fc_judge_parse_rating(NULL, NULL) == -1);
}

static void test_format(void)
{
    const char *keys[] = {"question", "answer", "ref_answer_1"};
    const char *vals[] = {"Q{x}", "A}", "R"};
    const char *err = NULL;
    /* Python: "[{question}] {{literal}} {answer}{ref_answer_1}".format(...) */
    char *s = fc_judge_format("[{question}] {{literal}} {answer}{ref_answer_1}", keys, vals, 3, &err);
    CHECK(s && !strcmp(s, "[Q{x}] {literal} A}R"));
    free(s);
    CHECK(!fc_judge_format("{missing}", keys, vals, 3, &err) && err);     /* KeyError */
    CHECK(!fc_judge_format("{question:>10}", keys, vals, 3, &err) && err); /* a spec */
    CHECK(!fc_judge_format("a } b", keys, vals, 3, &err) && err);          /* Single '}' */
    CHECK(!fc_judge_format("a { b", keys, vals, 3, &err) && err);
    s = fc_judge_format("no fields", keys, vals, 3, &err);
    CHECK(s && !strcmp(s, "no fields"));
    free(s);
    CHECK(fc_judge_needs_ref("math") && fc_judge_needs_ref("coding") && fc_judge_needs_ref("reasoning") &&
          fc_judge_needs_ref("arena-hard-200") && !fc_judge_needs_ref("writing") && !fc_judge_needs_ref(NULL));
    CHECK(fc_judge_category_temperature("writing") == 0.7 && fc_judge_category_temperature("stem") == 0.1 &&
          fc_judge_category_temperature("math") == 0.0 && fc_judge_category_temperature("other") == 0.7);
}

typedef struct wargs { fc_jsonl_writer *w; int t; } wargs;

static void *writer_thread(void *p)
{
    wargs *a = p;
    char line[4096];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(line, sizeof line, "{\"t\":%d,\"i\":%d,\"pad\":\"", a->t, i);
        for (int k = 0; k < 1000 + a->t * 300; k++) line[n++] = 'a' + (char)(k % 26);
        n += snprintf(line + n, sizeof line - (size_t)n, "\"}");
        CHECK(fc_jsonl_append_raw(a->w, line, (size_t)n) == 0);
    }
    return NULL;
}

static void test_jsonl(void)
{
    char dir[] = "/tmp/fc_test_judge_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/sub/dir/x.jsonl", dir);
    fc_jsonl_writer *w = fc_jsonl_open_append(path, true);
    CHECK(w != NULL);
    cJSON *o = cJSON_Parse("{\"question_id\": 2, \"v\": \"b\"}");
    CHECK(fc_jsonl_append(w, o) == 0);
    cJSON_Delete(o);
    fc_jsonl_close(w);
    /* a torn line, as a crash mid-write would leave */
    FILE *f = fopen(path, "a");
    fputs("{\"question_id\": 1, \"v\": \"half", f);
    fclose(f);
    cJSON **items;
    int n;
    CHECK(fc_jsonl_read(path, false, &items, &n) == 0 && n == 1);
    fc_jsonl_free(items, n);
    w = fc_jsonl_open_append(path, false);   /* cuts the torn line */
    CHECK(fc_jsonl_open_append(path, false) == NULL);   /* one writer at a time */
    CHECK(fc_jsonl_append_raw(w, "{\"question_id\": 1, \"v\": \"a\"}", 28) == 0);
    CHECK(fc_jsonl_append_raw(w, "not json", 8) == 0);
    CHECK(fc_jsonl_append_raw(w, "{\"question_id\": 2, \"v\": \"c\"}", 28) == 0);
    fc_jsonl_close(w);
    CHECK(fc_jsonl_read(path, false, &items, &n) == 0 && n == 3);   /* the bad line skipped */
    fc_jsonl_free(items, n);
    CHECK(fc_jsonl_rewrite_sorted(path, "question_id") == 0);
    f = fopen(path, "r");
    char buf[256] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECKF(got && !strcmp(buf, "{\"question_id\": 1, \"v\": \"a\"}\n{\"question_id\": 2, \"v\": \"c\"}\n"), "%s", buf);
    CHECK(fc_jsonl_read("/nonexistent/x.jsonl", true, &items, &n) == 0 && n == 0);
    CHECK(fc_jsonl_read("/nonexistent/x.jsonl", false, &items, &n) != 0);
    /* concurrent appends: every line whole */
    snprintf(path, sizeof path, "%s/conc.jsonl", dir);
    w = fc_jsonl_open_append(path, false);
    pthread_t th[8];
    wargs wa[8];
    for (int t = 0; t < 8; t++) { wa[t] = (wargs){w, t}; pthread_create(&th[t], NULL, writer_thread, &wa[t]); }
    for (int t = 0; t < 8; t++) pthread_join(th[t], NULL);
    fc_jsonl_close(w);
    CHECK(fc_jsonl_read(path, false, &items, &n) == 0 && n == 1600);
    fc_jsonl_free(items, n);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    test_verdicts();
    test_format();
    test_jsonl();
    return TEST_END();
}
