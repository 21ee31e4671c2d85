/*
 * judge.h: LLM-as-a-judge pieces of FastChat's llm_judge (common.py):
 * the verdict parsers, the prompt-template filling, the judge-prompt table
 * and the judgment records.
 *
 * Verdicts, exactly as common.py reads a judge's text:
 *   "[[rating]]"           first match of \[\[(\d+\.?\d*)\]\], else of
 *                          \[(\d+\.?\d*)\]; none: -1 (run_judge_single);
 *   "[[A]]"                "[[A]]" anywhere -> A, else "[[B]]" -> B, else
 *                          "[[C]]" -> tie, else error (run_judge_pair);
 *   "[[rating_a,rating_b]]" \[\[(\d+\.?\d*),\s?(\d+\.?\d*)\]\] (backup with
 *                          single brackets); |a - b| <= 0.1 tie, else the
 *                          larger; none: error.
 * \d is taken as ASCII 0-9 (Python's also matches other Unicode digits,
 * which ast.literal_eval then rejects) and a number Python's literal_eval
 * refuses ("07": leading zero) is read as no verdict here (-1 / error)
 * where FastChat's thread raises.
 *
 * Templates: Python str.format with named fields only ({question},
 * {answer_a_1}, ...; "{{" and "}}" are literal braces), as FastChat fills
 * them. A field that is not supplied, or a format spec, is an error (Python
 * raises KeyError / uses the spec).
 */
#ifndef FC_JUDGE_H
#define FC_JUDGE_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* FastChat's API_ERROR_OUTPUT: the judgment text when the API gave up. */
#define FC_JUDGE_API_ERROR "$ERROR$"
#define FC_JUDGE_TIE_DELTA 0.1

enum fc_verdict { FC_VERDICT_ERROR = 0, FC_VERDICT_A, FC_VERDICT_B, FC_VERDICT_TIE };
/* "A", "B", "tie", "error" (run_judge_pair's winner values). */
const char *fc_verdict_name(enum fc_verdict v);

/* [[rating]]: the score, or -1 when none. *is_int (may be NULL) says the
 * number had no '.' (FastChat stores it as a JSON integer then). */
double fc_judge_parse_rating(const char *text, bool *is_int);
/* [[A]] output format. */
enum fc_verdict fc_judge_parse_ab(const char *text);
/* [[rating_a,rating_b]] output format. */
enum fc_verdict fc_judge_parse_two(const char *text);
/* Dispatch on a pairwise judge prompt's output_format ("[[A]]" or
 * "[[rating_a,rating_b]]"); any other format: FC_VERDICT_ERROR with
 * *known = false (FastChat raises ValueError there). */
enum fc_verdict fc_judge_parse(const char *output_format, const char *text, bool *known);

/* Fills a str.format template: keys[i] -> vals[i]. Returns a malloc'd
 * string, or NULL when the template names a field not given, uses a format
 * spec / conversion, or has an unmatched brace (err, when not NULL, gets a
 * short reason; static string). */
char *fc_judge_format(const char *tpl, const char *const *keys, const char *const *vals, int n, const char **err);

/* One line of judge_prompts.jsonl. Strings are owned by the table. */
typedef struct fc_judge_prompt {
    char *name, *type, *system_prompt, *prompt_template, *description, *category, *output_format;
} fc_judge_prompt;

typedef struct fc_judge_prompts {
    fc_judge_prompt *items;
    int n;
} fc_judge_prompts;

/* Reads a judge-prompts JSONL file (a later line with the same name
 * replaces the earlier one, as FastChat's dict does). FC_OK or an error
 * (logged): unreadable file, a line without name / prompt_template. */
int fc_judge_prompts_load(const char *path, fc_judge_prompts *out);
const fc_judge_prompt *fc_judge_prompts_get(const fc_judge_prompts *p, const char *name);
void fc_judge_prompts_free(fc_judge_prompts *p);

/* The eight prompt names gen_judgment.py needs, in its order: single-v1,
 * single-math-v1, single-v1-multi-turn, single-math-v1-multi-turn, pair-v2,
 * pair-math-v1, pair-v2-multi-turn, pair-math-v1-multi-turn. */
extern const char *const fc_judge_prompt_names[8];

/* Whether a category needs reference answers (NEED_REF_CATS: math,
 * reasoning, coding, arena-hard-200). */
bool fc_judge_needs_ref(const char *category);
/* temperature_config of common.py; 0.7 for any other category. */
double fc_judge_category_temperature(const char *category);

#endif
