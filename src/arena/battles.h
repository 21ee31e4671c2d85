/*
 * battles.h: Chatbot Arena battles read from FastChat's files, for
 * arena/rating.h:
 *   - the raw conversation logs `{YYYY-MM-DD}-conv.json` (JSON lines written
 *     by the web server, fastchat_features.md 7.6), cleaned exactly as
 *     fschat 0.2.36's serve/monitor/clean_battle_data.py cleans them;
 *   - the clean battle JSON that clean_battle_data.py writes (a JSON array of
 *     {model_a, model_b, winner, judge, turn, anony, language, tstamp}), and
 *     the same format written back (fc_battles_clean_json).
 *
 * Not done: language detection (FastChat uses polyglot; we write "unknown"),
 * the conversations of the conv_release mode. Rows FastChat's script would
 * crash on (a missing key, a message that is not a [role, text] pair, a
 * non-string message) are counted as invalid and skipped.
 *
 * Not thread-safe per set; separate sets are independent.
 */
#ifndef FC_ARENA_BATTLES_H
#define FC_ARENA_BATTLES_H

#include <stdbool.h>
#include <stddef.h>

#include "arena/rating.h"

/* Per-battle fields beyond fc_battle (what the clean file carries). */
typedef struct fc_battle_info {
    const char *judge;       /* "arena_user_<ip>" (or arena_user_arena_user_<n> with sanitize_ip) */
    const char *question_id; /* states[0].conv_id, NULL when absent */
    const char *language;    /* "unknown" for logs (no detector); the clean file's value */
    int turn;                /* len(conversation_a) // 2 */
} fc_battle_info;

/* clean_battle_data.py's counters. */
typedef struct fc_clean_stats {
    int n_votes;         /* vote rows read (types tievote/leftvote/rightvote/bothbad_vote) */
    int n_anony;         /* anonymous votes seen (before the leak/exclude/ban filters) */
    int n_invalid;       /* #invalid votes: name mismatch, bad offset, excluded model, malformed row */
    int n_malformed;     /* of n_invalid: rows FastChat's script would crash on */
    int n_leaked;        /* identity words or UI error strings in the messages */
    int n_banned;        /* ban_ip */
    int n_null_models;   /* models[i] == null: skipped without a count, as FastChat does */
} fc_clean_stats;

typedef struct fc_clean_opts {
    const char *const *exclude_models; /* model names after renaming; may be NULL */
    int n_exclude_models;
    const char *const *ban_ips;        /* may be NULL */
    int n_ban_ips;
    bool sanitize_ip;                  /* judge = arena_user_arena_user_<n>, n by first appearance */
} fc_clean_opts;

/* A set of battles. The fc_battle names and the info strings point into the
 * set's own storage: valid until fc_battles_free. */
typedef struct fc_battles {
    fc_battle *b;         /* (n) sorted by tstamp once fc_battles_finish ran */
    fc_battle_info *info; /* (n) */
    size_t n, cap;
    fc_clean_stats stats;
    struct fc_battles_impl *impl;
} fc_battles;

/* An empty set (never NULL; abort on out of memory). */
fc_battles *fc_battles_new(void);
void fc_battles_free(fc_battles *s);

/* Appends the votes of one raw conversation log (a file, or len bytes at
 * data with `name` used in messages), cleaned with `o` (NULL = no
 * exclusions). Returns 0, or a negative fc_status (logged as
 * "<name>:<line>: reason") when the file cannot be read or a line is not
 * JSON (FastChat's json.loads fails on those too); blank lines are skipped.
 * Several logs may be appended; call fc_battles_finish after the last. */
int fc_battles_read_log(fc_battles *s, const char *path, const fc_clean_opts *o);
int fc_battles_read_log_mem(fc_battles *s, const char *data, size_t len, const char *name, const fc_clean_opts *o);

/* Appends the battles of a clean battle JSON file (an array of objects with
 * model_a, model_b, winner, anony, tstamp; judge, turn, language optional).
 * Returns 0 or a negative fc_status, logged as "<name>: battle <i>: reason". */
int fc_battles_read_clean(fc_battles *s, const char *path);
int fc_battles_read_clean_mem(fc_battles *s, const char *data, size_t len, const char *name);

/* Sorts the battles by tstamp, stable (clean_battle_data's battles.sort). */
void fc_battles_finish(fc_battles *s);

/* clean_battle_data.py --mode simple's output: a JSON array (malloc'd). */
char *fc_battles_clean_json(const fc_battles *s);

/* The "-conv.json" files of a directory (not recursive), oldest mtime first
 * (FastChat's get_log_files order; equal mtimes by name). Returns a
 * malloc'd array of malloc'd paths and *n, or NULL (logged) if the
 * directory cannot be read. */
char **fc_battles_list_logs(const char *dir, int *n);

#endif
