/*
 * mt_files.h: FastChat's llm_judge data folder, read: question ids, the
 * model answers of <data>/<bench>/model_answer/<model>.jsonl, and the
 * results page's data gathered from the whole folder. Used by
 * `fastchat judge` and by the web server's /results page.
 *
 * Layout (FastChat's):
 *   <data>/<bench>/question.jsonl
 *   <data>/<bench>/model_answer/<model>.jsonl
 *   <data>/<bench>/reference_answer/<model>.jsonl
 *   <data>/<bench>/model_judgment/<judge>_single.jsonl, <judge>_pair.jsonl
 */
#ifndef FC_MT_FILES_H
#define FC_MT_FILES_H

#include <stdbool.h>

struct cJSON;

/* "a/b[/c[/d]]", malloc'd; c and d may be NULL. */
char *fc_mt_path(const char *a, const char *b, const char *c, const char *d);

/* question_id of a record, and equality as FastChat's dict keys compare
 * them (numbers with numbers, strings with strings). */
const struct cJSON *fc_mt_qid(const struct cJSON *o);
bool fc_mt_qid_eq(const struct cJSON *a, const struct cJSON *b);
/* The id as text ("81", "abc"; "?" when absent), malloc'd. */
char *fc_mt_qid_text(const struct cJSON *o);

/* One model's answer file. */
typedef struct fc_mt_answers {
    char *name;          /* the file's name without .jsonl */
    struct cJSON **a;    /* its records in file order */
    int n;
} fc_mt_answers;

/* Every .jsonl file of dir, sorted by name (FastChat's load_model_answers).
 * A missing folder is no models. FC_OK, or the fc_jsonl_read error of the
 * first file that cannot be read (logged; *out is then NULL). */
int fc_mt_load_answer_dir(const char *dir, fc_mt_answers **out, int *n);
void fc_mt_answers_free(fc_mt_answers *ms, int n);
/* The last answer of m to question q (a dict keeps the last); NULL if none. */
const struct cJSON *fc_mt_find_answer(const fc_mt_answers *m, const struct cJSON *q);
const fc_mt_answers *fc_mt_find_model(const fc_mt_answers *ms, int n, const char *name);
/* choices[0].turns[j] of an answer, NULL when absent. */
const char *fc_mt_answer_turn(const struct cJSON *a, int j);

/* Where the results page reads from. */
typedef struct fc_mt_source {
    const char *data_dir;      /* FastChat's data/ folder */
    const char *bench;         /* question set under it */
    const char *judge_model;   /* model_judgment/<judge>_{single,pair}.jsonl */
    const char *ref_model;     /* reference_answer/<name>.jsonl; NULL: the judge's, else gpt-4's */
    const char *question_file; /* NULL: <data>/<bench>/question.jsonl */
} fc_mt_source;

/* The data of the results page (report.h's layout) from the files of src.
 * Missing answer, reference and judgment files are empty sections; a
 * missing or unreadable question file, or a file that cannot be read, is an
 * error. FC_OK with *out (cJSON_Delete it), or an fc_status (logged). */
int fc_mt_report_collect(const fc_mt_source *src, struct cJSON **out);

#endif
