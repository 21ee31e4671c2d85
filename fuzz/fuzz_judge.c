/*
 * fuzz_judge.c: libFuzzer target for the judge-output parsers and the
 * prompt-template filling of src/eval/judge.c (what an LLM judge or a
 * user's judge-prompts file can put in front of them).
 *
 * The input, NUL-terminated, is read as a judgment by the three verdict
 * parsers and used as a str.format template with the fields FastChat's
 * judge prompts name. Promises checked: a rating is -1 or a non-negative
 * number; a verdict is one of the four values ("A" only when "[[A]]" is in
 * the text); a template without braces comes back unchanged; a refused one
 * says why. The same bytes are then read as a judgments / votes file
 * (through a memfd): show-result's tables have no empty row and rates in
 * [0, 1], agreement never counts more agreements than pairs.
 *   make fuzz && build/fuzz/fuzz_judge -max_len=4096 corpus
 */
#include "eval/judge.h"
#include "eval/jsonl.h"
#include "eval/mt_result.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

#define EXPECT(x) do { if (!(x)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    bool is_int;
    double r = fc_judge_parse_rating(s, &is_int);
    EXPECT(r == -1 || r >= 0);
    enum fc_verdict a = fc_judge_parse_ab(s), b = fc_judge_parse_two(s);
    EXPECT(a >= FC_VERDICT_ERROR && a <= FC_VERDICT_TIE);
    EXPECT(b >= FC_VERDICT_ERROR && b <= FC_VERDICT_TIE);
    if (a == FC_VERDICT_A) EXPECT(strstr(s, "[[A]]") != NULL);
    static const char *keys[] = {"question", "answer", "answer_a", "answer_b", "ref_answer_1", "question_1"};
    static const char *vals[] = {"<Q>", "<A>", "<AA>", "<AB>", "<R1>", "<Q1>"};
    const char *err = NULL;
    char *f = fc_judge_format(s, keys, vals, 6, &err);
    if (f) {
        /* without braces the template comes back unchanged */
        if (!strpbrk(s, "{}")) EXPECT(!strcmp(f, s));
        free(f);
    } else {
        EXPECT(err != NULL);
    }
    /* the same bytes as a judgment / vote file: show-result and agreement */
    int fd = memfd_create("fuzz_judge", 0);
    if (fd >= 0) {
        if (write(fd, data, size) == (ssize_t)size) {
            char path[64];
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            fc_mt_result res;
            if (fc_mt_result_single(path, NULL, 0, &res) == 0) {
                for (int i = 0; i < res.n_single; i++) EXPECT(res.single[i].count[2] > 0);
                fc_mt_result_free(&res);
            }
            const char *ml[1] = {"m"};
            if (fc_mt_result_pair(path, ml, size & 1, (size & 2) ? "b" : NULL, &res) == 0) {
                for (int i = 0; i < res.n_pair; i++) {
                    const fc_mt_pair_row *r = &res.pair[i];
                    EXPECT(r->win + r->loss + r->tie > 0);
                    EXPECT(r->win_rate_adjusted >= 0 && r->win_rate_adjusted <= 1);
                }
                fc_mt_result_free(&res);
            }
            fc_mt_agreement ag;
            const char *files[1] = {path};
            if (fc_mt_agreement_compute((size & 4) ? "human" : "gpt4-pair", "human", files, 1, &ag) == 0)
                for (int t = 0; t < 2; t++)
                    for (int b = 0; b < 2; b++) EXPECT(ag.agree[t][b] <= ag.total[t][b]);
            cJSON **items;
            int n;
            if (fc_jsonl_read(path, false, &items, &n) == 0) fc_jsonl_free(items, n);
        }
        close(fd);
    }
    free(s);
    return 0;
}
