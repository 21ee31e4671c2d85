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
 * says why.
 *   make fuzz && build/fuzz/fuzz_judge -max_len=4096 corpus
 */
#include "eval/judge.h"

#include <stdint.h>

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
    free(s);
    return 0;
}
