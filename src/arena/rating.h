/*
 * rating.h: Chatbot Arena ratings from battles (FastChat's
 * serve/monitor/rating_systems.py and elo_analysis.py): online Elo (K=4,
 * start 1000), the Bradley-Terry maximum-likelihood fit scaled as FastChat
 * scales it (400 * r + 1000), bootstrap 95% intervals of the BT fit, rank by
 * upper bound (1 + the number of models whose lower bound beats this one's
 * upper bound) and battles per model.
 *
 * The web page (serve/web.c), `fastchat leaderboard` and the tests call only
 * this header. Thread-safe: no global state; every call owns its result.
 */
#ifndef FC_ARENA_RATING_H
#define FC_ARENA_RATING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who won, as clean_battle_data.py writes it: "model_a", "model_b", "tie",
 * "tie (bothbad)". */
enum fc_outcome { FC_OUTCOME_A = 0, FC_OUTCOME_B, FC_OUTCOME_TIE, FC_OUTCOME_TIE_BOTHBAD };

typedef struct fc_battle {
    const char *model_a, *model_b; /* borrowed for the call */
    enum fc_outcome winner;
    double tstamp;                 /* seconds since the epoch; battles are rated in this order */
    bool anony;                    /* anonymous battle (the leaderboard uses only these by default) */
} fc_battle;

typedef struct fc_rating_row {
    char *model;
    double rating;                 /* Bradley-Terry, FastChat's scale */
    double q025, q975;             /* bootstrap 2.5% / 97.5% quantiles of the BT rating */
    double elo;                    /* online Elo after all battles */
    int rank_ub;                   /* rank by upper bound, 1 = best */
    int n_battles;
} fc_rating_row;

typedef struct fc_leaderboard {
    fc_rating_row *rows;           /* sorted by rating, best first */
    int n_rows;
    int n_battles;                 /* battles used after the filters */
    int n_models;
    double *win_fraction;          /* (n_models, n_models), row beats column, ties excluded; NaN where no battles */
    int *battle_count;             /* (n_models, n_models), both seatings summed */
} fc_leaderboard;

typedef struct fc_rating_opts {
    int n_bootstrap;               /* rounds of the bootstrap (FastChat: 100; 0 = no intervals) */
    uint64_t seed;                 /* bootstrap resampling seed */
    bool anony_only;               /* keep only anonymous battles (FastChat's default) */
    bool exclude_tie;              /* drop ties (elo_analysis --exclude-tie) */
} fc_rating_opts;

/* Rates the battles. Returns 0 and fills *out (free with
 * fc_leaderboard_free), or a negative fc_status (logged) on bad input. */
int fc_leaderboard_compute(const fc_battle *b, size_t n, const fc_rating_opts *opts, fc_leaderboard *out);
void fc_leaderboard_free(fc_leaderboard *lb);
/* The leaderboard as JSON (malloc'd): {"n_battles", "models": [{"model",
 * "rating", "q025", "q975", "elo", "rank_ub", "n_battles"}...],
 * "win_fraction": [[...]], "battle_count": [[...]]} with null for NaN. */
char *fc_leaderboard_json(const fc_leaderboard *lb);

#endif
