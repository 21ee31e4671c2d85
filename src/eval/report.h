/*
 * report.h: the MT-bench results page, one standalone HTML file (no network,
 * no external script): scores per category as a bar chart, turn 1 / turn 2
 * / average per model, pairwise win-rate tables, and a browser of questions,
 * answers and judge explanations side by side (what FastChat's Gradio
 * qa_browser.py shows: category and question selectors, two models, each
 * turn's answers next to each other, the judgments of both games below).
 *
 * The page's data is the JSON given here, embedded in a
 * <script type="application/json"> block (every '<' written as \u003c, so no
 * answer text can end the block); every text is inserted with textContent, never as
 * HTML, so answers and judgments cannot run script in the page.
 */
#ifndef FC_REPORT_H
#define FC_REPORT_H

#include <stddef.h>

struct cJSON;

/* data: {"bench": str, "judge": str,
 *        "questions": [{question_id, category, turns, reference?}],
 *        "answers": {model: {"<qid>": [turn texts]}},
 *        "single": [{question_id, model, turn, score, judgment, prompt}],
 *        "pair": [{question_id, model_1, model_2, turn, g1_winner, g2_winner,
 *                  g1_judgment, g2_judgment}]}
 * Writes the page to path (atomically: a temporary file renamed). FC_OK or
 * FC_ERR_IO (logged). */
int fc_mt_report_write(const char *path, const struct cJSON *data);
/* The same page in memory: malloc'd, NUL-terminated, its length in *len
 * (len may be NULL). NULL when out of memory. */
char *fc_mt_report_html(const struct cJSON *data, size_t *len);

#endif
