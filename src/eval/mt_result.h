/*
 * mt_result.h: the numbers of FastChat's llm_judge/show_result.py and
 * compute_agreement.py, computed from judgment files.
 *
 * Single (display_result_single): rows with score -1 dropped (all judges in
 * the file together, as FastChat does), optionally only the models listed;
 * mean score per model over turn 1, over turn 2, and over all rows.
 *
 * Pairwise (display_result_pairwise): rows where g1_winner or g2_winner is
 * "error" dropped; with a model list, rows whose model_1 is not in it
 * skipped; with a baseline, rows without it skipped; g1 "tie" or g1 != g2
 * counts a tie for both models, else the g1 winner wins; the baseline's own
 * row removed; win_rate, loss_rate, win_rate_adjusted = (win + tie/2) / n.
 *
 * Agreement (compute_agreement.py): vote files are JSON arrays of
 * {question_id, model_a, model_b, winner, judge, turn} (FastChat's
 * mt_bench_human_judgments format); judges named "gpt4-pair" (a judge
 * ["gpt-4", "pair..."]), "human" ("expert*"), "author" ("author*"). A
 * JSONL file of pairwise judgments (ours or FastChat's *_pair.jsonl) is
 * also accepted and read as votes of the "gpt4-pair" judge: g1 == g2 gives
 * that winner, different verdicts "tie (inconsistent)", error rows skipped.
 * Supported pairs: gpt4-pair vs human, human vs human (as FastChat).
 */
#ifndef FC_MT_RESULT_H
#define FC_MT_RESULT_H

#include <stdbool.h>

typedef struct fc_mt_single_row {
    char *model;
    double mean[3];      /* turn 1, turn 2, all rows; NaN when no row */
    int count[3];
} fc_mt_single_row;

typedef struct fc_mt_pair_row {
    char *model;
    int win, loss, tie;
    double win_rate, loss_rate, win_rate_adjusted;
} fc_mt_pair_row;

typedef struct fc_mt_result {
    fc_mt_single_row *single;
    int n_single;
    fc_mt_pair_row *pair;
    int n_pair;
    int rows_read, rows_used;
} fc_mt_result;

/* models: NULL or a list of n_models names to keep. FC_OK or an error
 * (logged: unreadable file, a row without the needed fields). Rows sorted:
 * single by overall mean (descending), pair by win_rate_adjusted. */
int fc_mt_result_single(const char *path, const char *const *models, int n_models, fc_mt_result *out);
/* baseline NULL: pairwise-all. */
int fc_mt_result_pair(const char *path, const char *const *models, int n_models, const char *baseline,
                      fc_mt_result *out);
void fc_mt_result_free(fc_mt_result *r);

typedef struct fc_mt_agreement {
    int agree[2][2], total[2][2];  /* [turn 0/1][with tie 0 / without tie 1] */
} fc_mt_agreement;

/* judge1, judge2: "gpt4-pair" "human" or "human" "human". FC_OK, or
 * FC_ERR_ARG for another pair, FC_ERR_FORMAT when a gpt4-pair judge votes
 * twice on one game (FastChat asserts), FC_ERR_IO. */
int fc_mt_agreement_compute(const char *judge1, const char *judge2, const char *const *files, int n_files,
                            fc_mt_agreement *out);

#endif
