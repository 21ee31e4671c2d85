/*
 * fuzz_battles.c: libFuzzer target for src/arena/battles.c (FastChat
 * conversation logs and clean battle files) and, on what it reads,
 * src/arena/rating.c.
 *
 * Input: byte 0 picks the reader (bit 0: conversation log / clean battle
 * file), the rating options (bit 1: BT / Elo, bit 2: anonymous only,
 * bit 3: exclude ties, bit 4: exact BT) and the cleaning options (bit 5:
 * sanitize IPs, bit 6: exclude the model "m1", bit 7: ban the IP "1.2.3.4");
 * the rest is the file. Checked: nothing crashes or leaks; a log's vote
 * rows are each accounted for once (kept, invalid, leaked, banned or
 * null-model); every battle has names and a known winner; the clean JSON we
 * write reads back as the same battles; the leaderboard has one row per
 * model, finite ratings, ranks in 1..n, battle counts that add up, and JSON
 * that parses. Seeds: tests/data/fuzz/fuzz_battles/.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "arena/battles.h"
#include "arena/rating.h"
#include "base/fc_base.h"

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "fuzz_battles: check failed: %s\n", #x); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    uint8_t mode = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    const char *ex[] = {"m1"}, *ban[] = {"1.2.3.4"};
    fc_clean_opts co = {ex, (mode & 64) ? 1 : 0, ban, (mode & 128) ? 1 : 0, (mode & 32) != 0};

    fc_battles *s = fc_battles_new();
    int rc = (mode & 1) ? fc_battles_read_clean_mem(s, text, len, "fuzz") : fc_battles_read_log_mem(s, text, len, "fuzz", &co);
    if (!(mode & 1)) {
        const fc_clean_stats *st = &s->stats;
        if (rc == 0)
            CHECK((size_t)st->n_votes ==
                  s->n + (size_t)st->n_invalid + (size_t)st->n_leaked + (size_t)st->n_banned + (size_t)st->n_null_models);
        CHECK(st->n_malformed <= st->n_invalid);
    } else if (rc != 0) {
        CHECK(s->n == 0);
    }
    fc_battles_finish(s);
    for (size_t i = 0; i < s->n; i++) {
        CHECK(s->b[i].model_a && s->b[i].model_b && (unsigned)s->b[i].winner <= FC_OUTCOME_TIE_BOTHBAD);
        CHECK(isfinite(s->b[i].tstamp));
        if (i) CHECK(s->b[i - 1].tstamp <= s->b[i].tstamp);
    }

    /* the clean file we write reads back as the same battles */
    char *js = fc_battles_clean_json(s);
    CHECK(js);
    fc_battles *back = fc_battles_new();
    CHECK(fc_battles_read_clean_mem(back, js, strlen(js), "roundtrip") == 0);
    CHECK(back->n == s->n);
    for (size_t i = 0; i < s->n; i++) {
        CHECK(!strcmp(back->b[i].model_a, s->b[i].model_a) && !strcmp(back->b[i].model_b, s->b[i].model_b));
        CHECK(back->b[i].winner == s->b[i].winner && back->b[i].anony == s->b[i].anony);
        CHECK(back->b[i].tstamp == s->b[i].tstamp);
    }
    free(js);
    fc_battles_free(back);

    fc_rating_opts ro = {.n_bootstrap = 3, .seed = 1, .anony_only = (mode & 4) != 0, .exclude_tie = (mode & 8) != 0,
                         .rating_system = (mode & 2) ? FC_RATING_ELO : FC_RATING_BT, .bt_exact = (mode & 16) != 0};
    fc_leaderboard lb;
    CHECK(fc_leaderboard_compute(s->b, s->n, &ro, &lb) == 0);
    int sum = 0;
    for (int i = 0; i < lb.n_rows; i++) {
        CHECK(isfinite(lb.rows[i].rating) && isfinite(lb.rows[i].elo));
        CHECK(lb.rows[i].rank_ub >= 1 && lb.rows[i].rank_ub <= lb.n_rows);
        sum += lb.rows[i].n_battles;
        for (int j = 0; j < i; j++) CHECK(strcmp(lb.rows[i].model, lb.rows[j].model) != 0);
    }
    CHECK(sum == 2 * lb.n_battles);
    char *lj = fc_leaderboard_json(&lb);
    cJSON *o = cJSON_Parse(lj);
    CHECK(o && cJSON_GetArraySize(cJSON_GetObjectItem(o, "models")) == lb.n_rows);
    cJSON_Delete(o);
    free(lj);
    fc_leaderboard_free(&lb);
    fc_battles_free(s);
    return 0;
}
