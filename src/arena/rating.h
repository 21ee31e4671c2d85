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
    fc_rating_row *rows;           /* sorted by rating, best first (ties of rating: by name) */
    int n_rows;
    int n_battles;                 /* battles used after the filters */
    int n_models;                  /* == n_rows */
    /* The two heatmaps, indexed in rows order (i, j = rows[i], rows[j]).
     * As FastChat's compute_pairwise_win_fraction / visualize_battle_count,
     * both count the battles without ties only. */
    double *win_fraction;          /* (n_models, n_models), row beats column, ties excluded; NaN where no battles */
    int *battle_count;             /* (n_models, n_models), both seatings summed, ties excluded */
    int rating_system;             /* enum fc_rating_system used */
    int n_bootstrap;               /* bootstrap rounds run (0: q025/q975 are NaN, rank_ub by rating) */
} fc_leaderboard;

/* How rows[].rating is computed (elo_analysis --rating-system). */
enum fc_rating_system {
    FC_RATING_BT = 0,              /* Bradley-Terry MLE (FastChat's default) */
    FC_RATING_ELO = 1,             /* median of the bootstrapped online Elo, rounded */
};

typedef struct fc_rating_opts {
    int n_bootstrap;               /* rounds of the bootstrap (FastChat: 100; 0 = no intervals) */
    uint64_t seed;                 /* bootstrap resampling seed */
    bool anony_only;               /* keep only anonymous battles (FastChat's default) */
    bool exclude_tie;              /* drop ties (elo_analysis --exclude-tie) */
    int rating_system;             /* enum fc_rating_system; 0 (zeroed opts) = Bradley-Terry */
    bool bt_exact;                 /* BT solved to convergence instead of stopping where
                                    * scikit-learn's lbfgs (tol 1e-4) stops; see below */
} fc_rating_opts;

/* Rates the battles. Returns 0 and fills *out (free with
 * fc_leaderboard_free), or a negative fc_status (logged) on bad input (a NULL
 * model name, an unknown winner, a non-finite tstamp). No battle left after
 * the filters is not an error: *out then has no rows. opts NULL = FastChat's
 * defaults (100 rounds, seed 0, anonymous only, ties kept, BT).
 *
 * The BT fit is FastChat 0.2.36's compute_elo_mle_with_tie: every battle
 * counted twice, a tie as one win for each side, logistic loss on
 * ln(10) * (r_a - r_b) plus scikit-learn's default L2 penalty (C = 1,
 * 0.5 * |r|^2), no intercept; rating = 400 r + 1000, shifted so that
 * llama-13b is 800 when it is present. By default we take the same L-BFGS
 * steps as scikit-learn's lbfgs solver from w = 0 and stop where it stops
 * (max |gradient| of the mean loss <= 1e-4), so the ratings are FastChat's to
 * ~1e-12; that point is up to a few tenths of a rating point short of the
 * exact optimum, which bt_exact computes (Newton). The bootstrap draws the battle
 * counts from a multinomial over the unique (model_a, model_b, outcome)
 * cells, which is the distribution of FastChat's battles.sample(frac=1,
 * replace=True); a model absent from a round is left out of that round's
 * quantiles (pandas skips NaN). */
int fc_leaderboard_compute(const fc_battle *b, size_t n, const fc_rating_opts *opts, fc_leaderboard *out);
void fc_leaderboard_free(fc_leaderboard *lb);
/* The leaderboard as JSON (malloc'd): {"n_battles", "models": [{"model",
 * "rating", "q025", "q975", "elo", "rank_ub", "n_battles"}...],
 * "win_fraction": [[...]], "battle_count": [[...]]} with null for NaN. */
char *fc_leaderboard_json(const fc_leaderboard *lb);

#endif
