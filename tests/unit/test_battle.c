/*
 * test_battle.c: Arena pair sampling (arena/battle.c) against the
 * probabilities FastChat's get_battle_pair gives, worked out by hand from its
 * algorithm, over 200,000 draws (tolerance 5 standard deviations); the hard
 * rules (outage, anonymous pairs, strict targets) over every draw; and the
 * SQLite store (arena/store.c): one vote per battle, also when 8 threads vote
 * at once, votes only for existing arena chats, and the battles read back.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "arena/battle.h"
#include "arena/store.h"
#include "base/fc_base.h"
#include "test_util.h"

#define N_DRAWS 200000

static int idx(const char *const *m, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(m[i], name)) return i;
    return -1;
}

/* counts[l][r] over N_DRAWS draws */
static void draw_many(fc_arena_config *c, const char *const *m, int n, long counts[8][8])
{
    memset(counts, 0, sizeof(long) * 64);
    uint64_t rng = 12345;
    for (int k = 0; k < N_DRAWS; k++) {
        int l, r;
        int rc = fc_battle_pair(c, m, n, &rng, &l, &r);
        CHECK(rc == 0);
        if (rc == 0) counts[l][r]++;
    }
}

static void check_prob(long count, double p, const char *what)
{
    double mean = p * N_DRAWS, sd = sqrt(N_DRAWS * p * (1 - p)) + 1e-9;
    CHECKF(fabs(count - mean) <= 5 * sd + 1, "%s: %ld draws, expected %.0f +- %.0f", what, count, mean, 5 * sd);
}

static void test_weights_and_targets(void)
{
    const char *m[] = {"a", "b", "c", "d"};
    fc_arena_config *c = fc_arena_config_parse("{\"sampling_weights\": {\"a\": 4, \"b\": 2, \"c\": 1, \"d\": 1},"
                                               " \"battle_targets\": {\"a\": [\"d\"]}}");
    CHECK(c != NULL);
    long cnt[8][8];
    draw_many(c, m, 4, cnt);
    /* P(first = i) = w_i / 8. Rivals of i: the others with their weights,
     * except that a's target d weighs 0.5 * total / 1 = 4. Unordered pair
     * probability = sum over which one was first; each order half of it. */
    double w[4] = {4, 2, 1, 1}, total = 8;
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++) {
            double p = 0;
            for (int f = 0; f < 2; f++) {
                int x = f ? j : i, y = f ? i : j;
                double rw_sum = 0, rw_y = 0;
                for (int k = 0; k < 4; k++) {
                    if (k == x) continue;
                    double rw = (x == 0 && k == 3) ? 0.5 * total / 1 : w[k];
                    rw_sum += rw;
                    if (k == y) rw_y = rw;
                }
                p += w[x] / total * rw_y / rw_sum;
            }
            char what[32];
            snprintf(what, sizeof what, "%s-%s left", m[i], m[j]);
            check_prob(cnt[i][j], p / 2, what);
            snprintf(what, sizeof what, "%s-%s right", m[i], m[j]);
            check_prob(cnt[j][i], p / 2, what);
        }
    for (int i = 0; i < 4; i++) CHECK(cnt[i][i] == 0);
    fc_arena_config_free(c);
}

static void test_rules(void)
{
    const char *m[] = {"anon1", "anon2", "open", "down", "gpt-x", "claude-y"};
    fc_arena_config *c = fc_arena_config_parse(
        "{\"anon_models\": [\"anon1\", \"anon2\"], \"outage_models\": [\"down\"], \"sampling_boost_models\": [\"open\"],"
        " \"battle_strict_targets\": {\"gpt-x\": [\"claude-*\"]}}");
    CHECK(fc_arena_weight(c, "open") == 5 && fc_arena_weight(c, "down") == 0 && fc_arena_weight(c, "zzz") == 1);
    long cnt[8][8];
    draw_many(c, m, 6, cnt);
    int a1 = idx(m, 6, "anon1"), a2 = idx(m, 6, "anon2"), dn = idx(m, 6, "down"), g = idx(m, 6, "gpt-x");
    CHECK(cnt[a1][a2] == 0 && cnt[a2][a1] == 0);
    for (int i = 0; i < 6; i++) {
        CHECK(cnt[i][dn] == 0 && cnt[dn][i] == 0);
        if (i != idx(m, 6, "claude-y")) CHECK(cnt[i][g] == 0 && cnt[g][i] == 0);
    }
    CHECK(cnt[g][idx(m, 6, "claude-y")] + cnt[idx(m, 6, "claude-y")][g] > 0);
    fc_arena_config_free(c);

    /* one model fights itself; nothing to draw fails instead of dividing by zero */
    const char *one[] = {"solo"};
    fc_arena_config *e = fc_arena_config_parse("{}");
    uint64_t rng = 1;
    int l = -1, r = -1;
    CHECK(fc_battle_pair(e, one, 1, &rng, &l, &r) == 0 && l == 0 && r == 0);
    fc_arena_config *z = fc_arena_config_parse("{\"outage_models\": [\"x\", \"y\"]}");
    const char *xy[] = {"x", "y"};
    CHECK(fc_battle_pair(z, xy, 2, &rng, &l, &r) != 0);
    CHECK(fc_battle_pair(e, xy, 0, &rng, &l, &r) != 0);
    CHECK(fc_arena_config_parse("[1]") == NULL && fc_arena_config_parse("{") == NULL);
    fc_arena_model s = fc_arena_model_settings(e, "x");
    CHECK(s.system_prompt == NULL && s.temperature < 0 && s.max_new_tokens <= 0);
    fc_arena_config_free(e);
    fc_arena_config_free(z);
}

/* ---- store ---- */

typedef struct {
    fc_store *st;
    const char *id;
    int ok;
} voter;

static void *vote_main(void *arg)
{
    voter *v = arg;
    v->ok = fc_store_vote(v->st, v->id, "leftvote", 1.0, "{\"type\":\"leftvote\"}") == 0;
    return NULL;
}

static void test_store(void)
{
    char path[] = "/tmp/fc_test_store_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    unlink(path);
    fc_store *st = fc_store_open(path);
    CHECK(st != NULL);
    if (!st) return;
    fc_store_side sides[2] = {{"c0", "m-a", "sys a"}, {"c1", "m-b", ""}};
    CHECK(fc_store_chat_create(st, "b1", "battle", sides, 2, "1.2.3.4", 100.0) == 0);
    CHECK(fc_store_chat_create(st, "b1", "battle", sides, 2, "1.2.3.4", 100.0) != 0); /* duplicate id */
    CHECK(fc_store_chat_create(st, "d1", "direct", sides, 1, "1.2.3.4", 100.0) == 0);
    CHECK(fc_store_message_add(st, "b1", 0, "user", "hi <b>", NULL, 0, 1, 1) == 0);
    CHECK(fc_store_message_add(st, "b1", 0, "assistant", "hello", NULL, 0, 1, 2) == 0);
    CHECK(fc_store_message_add(st, "b1", 0, "assistant", "again", NULL, 0, 1, 2) == 0);
    CHECK(fc_store_message_truncate(st, "b1", 0, 2) == 0);
    cJSON *c = fc_store_chat_get(st, "b1");
    CHECK(c && cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "sides"), 0),
                                                      "messages")) == 2);
    cJSON_Delete(c);
    CHECK(fc_store_chat_get(st, "nope") == NULL);
    /* 8 threads vote on one battle: exactly one wins */
    voter v[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        v[i] = (voter){st, "b1", 0};
        pthread_create(&th[i], NULL, vote_main, &v[i]);
    }
    int wins = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        wins += v[i].ok;
    }
    CHECK(wins == 1);
    CHECK(fc_store_vote(st, "b1", "rightvote", 2, "{}") == FC_STORE_ALREADY_VOTED);
    CHECK(fc_store_vote(st, "zz", "rightvote", 2, "{}") == FC_STORE_NOT_FOUND);
    CHECK(fc_store_vote(st, "d1", "rightvote", 2, "{}") == FC_STORE_NOT_ARENA);
    CHECK(fc_store_count_events(st, "leftvote") == 1 && fc_store_count_events(st, NULL) == 1);
    fc_battle *b;
    size_t n;
    CHECK(fc_store_battles(st, &b, &n) == 0 && n == 1);
    if (n == 1) CHECK(!strcmp(b[0].model_a, "m-a") && !strcmp(b[0].model_b, "m-b") && b[0].winner == FC_OUTCOME_A &&
                      b[0].anony);
    fc_store_battles_free(b, n);
    size_t len;
    long nv;
    char *j = fc_store_votes_jsonl(st, &len, &nv);
    CHECK(j && nv == 1 && !strcmp(j, "{\"type\":\"leftvote\"}\n"));
    free(j);
    fc_store_close(st);
    /* reopened: still there */
    st = fc_store_open(path);
    CHECK(st && fc_store_vote(st, "b1", "tievote", 3, "{}") == FC_STORE_ALREADY_VOTED);
    fc_store_close(st);
    char p2[64];
    unlink(path);
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
}

int main(void)
{
    test_weights_and_targets();
    test_rules();
    test_store();
    return TEST_END();
}
