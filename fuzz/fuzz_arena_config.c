/*
 * fuzz_arena_config.c: libFuzzer target for the Arena config reader and pair
 * sampling (src/arena/battle.c): any bytes as the config's JSON, then pairs
 * drawn from a fixed model list. Checked: parse never crashes; a draw either
 * fails cleanly or returns two valid indices that respect the hard rules
 * (never an outage model, never two anonymous-only models, never a model
 * against itself when there are several models).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena/battle.h"
#include "base/fc_base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    fc_arena_config *c = fc_arena_config_parse(s);
    free(s);
    if (!c) return 0;
    static const char *const models[] = {"a", "b", "c", "gpt-4", "claude-2", "anon", "a"};
    uint64_t rng = size;
    for (int n = 0; n <= 7; n++) {
        for (int k = 0; k < 8; k++) {
            int l = -1, r = -1;
            if (fc_battle_pair(c, models, n, &rng, &l, &r) != 0) continue;
            FC_ASSERT(l >= 0 && l < n && r >= 0 && r < n);
            if (n > 1) {
                FC_ASSERT(strcmp(models[l], models[r]) != 0);
                FC_ASSERT(fc_arena_weight(c, models[l]) > 0 && fc_arena_weight(c, models[r]) > 0);
                FC_ASSERT(!(fc_arena_is_anon(c, models[l]) && fc_arena_is_anon(c, models[r])));
            }
        }
    }
    fc_arena_model m = fc_arena_model_settings(c, "a");
    (void)m;
    for (int i = 0; i < fc_arena_n_models(c); i++) (void)fc_arena_model_name(c, i);
    fc_arena_config_free(c);
    return 0;
}
