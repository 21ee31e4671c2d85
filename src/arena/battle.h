/*
 * battle.h: who fights whom in the Arena, as FastChat's get_battle_pair
 * (serve/gradio_block_arena_anony.py, §7.4 of the reference) draws it, with
 * its operator tables read from a JSON config file instead of module globals.
 *
 * Config file (every key optional):
 *   {"sampling_weights": {"model": 4.0, ...},      default weight of a model: 1
 *    "sampling_boost_models": ["model", ...],      weight x5
 *    "outage_models": ["model", ...],              weight 0 (never drawn)
 *    "battle_targets": {"model": ["rival", ...]},  rivals drawn half the time
 *    "battle_strict_targets": {"model": ["glob*", ...]}, only these rivals (both directions)
 *    "anon_models": ["model", ...],                never paired with each other
 *    "models": {"name": {"system_prompt": "...", "temperature": 0.7,
 *                        "top_p": 1.0, "max_new_tokens": 512}}}
 * The "models" section is the contestant's own settings (serve/web.c sends
 * them with each request to that model; in battles they override the page's
 * sliders as FastChat's recommended_config does).
 *
 * Drawing (FastChat, HEAD): with one model it fights itself; else the first
 * model is drawn with probability proportional to its weight; the rivals are
 * the other models, minus anon-anon pairs and strict-target violations; a
 * rival's weight is its own, except that the first model's battle targets
 * get 0.5 * total_weight / len(targets); the rival is drawn proportionally;
 * the sides are swapped with probability 1/2.
 * Deliberate differences: FastChat's default weight is the table's (its
 * tables ship empty and sampling divides by zero); ours is 1, so an
 * unconfigured server battles at once. When every weight is 0 we fail
 * instead of dividing by zero.
 *
 * Threads: a config is immutable after load; fc_battle_pair is reentrant
 * (the caller owns the RNG state).
 */
#ifndef FC_ARENA_BATTLE_H
#define FC_ARENA_BATTLE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct fc_arena_config fc_arena_config;

typedef struct fc_arena_model {
    const char *system_prompt;   /* NULL: none */
    double temperature, top_p;   /* < 0: not set */
    int max_new_tokens;          /* <= 0: not set */
} fc_arena_model;

/* Reads the config file (NULL path: an empty config). NULL on error (logged). */
fc_arena_config *fc_arena_config_load(const char *path);
/* Same from JSON text. */
fc_arena_config *fc_arena_config_parse(const char *json);
void fc_arena_config_free(fc_arena_config *c);

/* The sampling weight of a model (outage 0, boost x5, default 1). */
double fc_arena_weight(const fc_arena_config *c, const char *model);
/* True when the model is listed in anon_models. */
bool fc_arena_is_anon(const fc_arena_config *c, const char *model);
/* The contestant settings of a model; all fields unset when not configured.
 * Strings borrowed from the config. */
fc_arena_model fc_arena_model_settings(const fc_arena_config *c, const char *model);
/* Names listed in the "models" section (borrowed), for tests and the page. */
int fc_arena_n_models(const fc_arena_config *c);
const char *fc_arena_model_name(const fc_arena_config *c, int i);

/* Draws a pair from models[0..n): *left and *right get indices into models.
 * *rng is a 64-bit state (any seed) advanced by the call. Returns 0, or
 * FC_ERR_ARG when n is 0 or no pair has positive weight. */
int fc_battle_pair(const fc_arena_config *c, const char *const *models, int n, uint64_t *rng, int *left, int *right);

#endif
