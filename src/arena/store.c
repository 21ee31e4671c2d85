/*
 * store.c: the Arena's SQLite store (store.h).
 *
 * Schema (created when missing):
 *   chats(id PK, mode, created, ip, vote, vote_tstamp)
 *   sides(chat_id, idx, conv_id, model, system_message)          PK (chat_id, idx)
 *   messages(chat_id, side, seq, role, content, input, error_code, start, finish)
 *                                                                PK (chat_id, side, seq)
 *   events(id INTEGER PK, tstamp, type, chat_id, json)           FastChat log records
 * Durability: journal_mode=WAL. A vote commits with synchronous=FULL, so it
 * is fsynced into the WAL before fc_store_vote returns (and with it every
 * earlier commit); other writes (chats, messages, chat records) commit with
 * synchronous=NORMAL: in the WAL, safe against a killed process at once and
 * against a power cut from the next vote or checkpoint on, without an fsync
 * in front of every generation. The vote's check and
 * writes run in one BEGIN IMMEDIATE transaction, so two votes for one chat
 * (two tabs, two processes) cannot both pass the check.
 */
#include "arena/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/fc_base.h"

struct fc_store {
    sqlite3 *db;
    pthread_mutex_t mu;
    bool bulk; /* inside fc_store_set_durable(false)'s one big transaction */
};

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS chats(id TEXT PRIMARY KEY, mode TEXT NOT NULL, created REAL NOT NULL,"
    "  ip TEXT, vote TEXT, vote_tstamp REAL);"
    "CREATE TABLE IF NOT EXISTS sides(chat_id TEXT NOT NULL, idx INTEGER NOT NULL, conv_id TEXT NOT NULL,"
    "  model TEXT NOT NULL, system_message TEXT NOT NULL DEFAULT '', PRIMARY KEY(chat_id, idx));"
    "CREATE TABLE IF NOT EXISTS messages(chat_id TEXT NOT NULL, side INTEGER NOT NULL, seq INTEGER NOT NULL,"
    "  role TEXT NOT NULL, content TEXT NOT NULL, input TEXT, error_code INTEGER NOT NULL DEFAULT 0,"
    "  start REAL, finish REAL, PRIMARY KEY(chat_id, side, seq));"
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY AUTOINCREMENT, tstamp REAL NOT NULL,"
    "  type TEXT NOT NULL, chat_id TEXT, json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_type ON events(type);";

static int fail(fc_store *st, const char *what)
{
    FC_LOG_ERROR("store: %s: %s", what, sqlite3_errmsg(st->db));
    return FC_ERR_IO;
}

fc_store *fc_store_open(const char *path)
{
    fc_store *st = fc_xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->mu, NULL);
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        FC_LOG_ERROR("store: %s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 10000);
    char *err = NULL;
    if (sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(st->db, SCHEMA, NULL, NULL, &err) != SQLITE_OK) {
        FC_LOG_ERROR("store: %s: %s", path, err ? err : "?");
        sqlite3_free(err);
        goto fail;
    }
    return st;
fail:
    fc_store_close(st);
    return NULL;
}

void fc_store_close(fc_store *st)
{
    if (!st) return;
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* ---- helpers: prepare, bind text/double/int by a tiny format ---- */

/* fmt: one letter per parameter: s (const char *, NULL -> NULL), d (double), i (int). */
static sqlite3_stmt *prep(fc_store *st, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
        fail(st, sql);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    for (int i = 0; fmt[i]; i++) {
        if (fmt[i] == 's') {
            const char *s = va_arg(ap, const char *);
            if (s) sqlite3_bind_text(q, i + 1, s, -1, SQLITE_TRANSIENT);
            else sqlite3_bind_null(q, i + 1);
        } else if (fmt[i] == 'd') {
            sqlite3_bind_double(q, i + 1, va_arg(ap, double));
        } else {
            sqlite3_bind_int(q, i + 1, va_arg(ap, int));
        }
    }
    va_end(ap);
    return q;
}

/* Runs a statement that returns no rows and finalizes it. */
static int run(fc_store *st, sqlite3_stmt *q)
{
    if (!q) return FC_ERR_IO;
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return fail(st, "step");
    return FC_OK;
}

static int exec(fc_store *st, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        FC_LOG_ERROR("store: %s: %s", sql, err ? err : "?");
        sqlite3_free(err);
        return FC_ERR_IO;
    }
    return FC_OK;
}

static const char *col_text(sqlite3_stmt *q, int i)
{
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? (const char *)t : "";
}

/* Transactions: BEGIN IMMEDIATE (the write lock up front, so a check and
 * its write cannot interleave with another process); savepoints inside a
 * bulk import's transaction. */
static int tx_begin(fc_store *st) { return exec(st, st->bulk ? "SAVEPOINT fc" : "BEGIN IMMEDIATE"); }
static int tx_commit(fc_store *st) { return exec(st, st->bulk ? "RELEASE fc" : "COMMIT"); }
static void tx_rollback(fc_store *st)
{
    if (st->bulk) {
        exec(st, "ROLLBACK TO fc");
        exec(st, "RELEASE fc");
    } else {
        exec(st, "ROLLBACK");
    }
}

/* ---- chats ---- */

int fc_store_chat_create(fc_store *st, const char *id, const char *mode, const fc_store_side *sides, int n_sides,
                         const char *ip, double tstamp)
{
    pthread_mutex_lock(&st->mu);
    int rc = tx_begin(st);
    if (rc == FC_OK)
        rc = run(st, prep(st, "INSERT INTO chats(id, mode, created, ip) VALUES(?,?,?,?)", "ssds", id, mode, tstamp, ip));
    for (int i = 0; rc == FC_OK && i < n_sides; i++)
        rc = run(st, prep(st, "INSERT INTO sides(chat_id, idx, conv_id, model, system_message) VALUES(?,?,?,?,?)",
                          "sisss", id, i, sides[i].conv_id, sides[i].model,
                          sides[i].system_message ? sides[i].system_message : ""));
    if (rc == FC_OK) rc = tx_commit(st);
    if (rc != FC_OK) tx_rollback(st);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

cJSON *fc_store_chat_get(fc_store *st, const char *id)
{
    pthread_mutex_lock(&st->mu);
    cJSON *o = NULL;
    sqlite3_stmt *q = prep(st, "SELECT mode, created, ip, vote, vote_tstamp FROM chats WHERE id = ?", "s", id);
    if (!q || sqlite3_step(q) != SQLITE_ROW) goto out;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "mode", col_text(q, 0));
    cJSON_AddNumberToObject(o, "created", sqlite3_column_double(q, 1));
    cJSON_AddStringToObject(o, "ip", col_text(q, 2));
    if (sqlite3_column_type(q, 3) == SQLITE_NULL) cJSON_AddNullToObject(o, "vote");
    else cJSON_AddStringToObject(o, "vote", col_text(q, 3));
    cJSON_AddNumberToObject(o, "vote_tstamp", sqlite3_column_double(q, 4));
    sqlite3_finalize(q);
    cJSON *sides = cJSON_AddArrayToObject(o, "sides");
    q = prep(st, "SELECT conv_id, model, system_message FROM sides WHERE chat_id = ? ORDER BY idx", "s", id);
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "conv_id", col_text(q, 0));
        cJSON_AddStringToObject(s, "model", col_text(q, 1));
        cJSON_AddStringToObject(s, "system_message", col_text(q, 2));
        cJSON_AddArrayToObject(s, "messages");
        cJSON_AddItemToArray(sides, s);
    }
    sqlite3_finalize(q);
    q = prep(st,
             "SELECT side, role, content, input, error_code, start, finish FROM messages WHERE chat_id = ?"
             " ORDER BY side, seq",
             "s", id);
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        cJSON *s = cJSON_GetArrayItem(sides, sqlite3_column_int(q, 0));
        if (!s) continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", col_text(q, 1));
        cJSON_AddStringToObject(m, "content", col_text(q, 2));
        if (sqlite3_column_type(q, 3) != SQLITE_NULL) cJSON_AddStringToObject(m, "input", col_text(q, 3));
        cJSON_AddNumberToObject(m, "error_code", sqlite3_column_int(q, 4));
        cJSON_AddNumberToObject(m, "start", sqlite3_column_double(q, 5));
        cJSON_AddNumberToObject(m, "finish", sqlite3_column_double(q, 6));
        cJSON_AddItemToArray(cJSON_GetObjectItem(s, "messages"), m);
    }
out:
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return o;
}

int fc_store_message_add(fc_store *st, const char *id, int side, const char *role, const char *content,
                         const char *input, int error_code, double start, double finish)
{
    pthread_mutex_lock(&st->mu);
    int rc = run(st, prep(st,
                          "INSERT INTO messages(chat_id, side, seq, role, content, input, error_code, start, finish)"
                          " VALUES(?1, ?2, (SELECT COALESCE(MAX(seq) + 1, 0) FROM messages WHERE chat_id = ?1 AND"
                          " side = ?2), ?3, ?4, ?5, ?6, ?7, ?8)",
                          "sisssidd", id, side, role, content, input, error_code, start, finish));
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int fc_store_message_truncate(fc_store *st, const char *id, int side, int keep)
{
    pthread_mutex_lock(&st->mu);
    int rc = run(st, prep(st, "DELETE FROM messages WHERE chat_id = ? AND side = ? AND seq >= ?", "sii", id, side, keep));
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int fc_store_event_add(fc_store *st, double tstamp, const char *type, const char *id, const char *json)
{
    pthread_mutex_lock(&st->mu);
    int rc = run(st, prep(st, "INSERT INTO events(tstamp, type, chat_id, json) VALUES(?,?,?,?)", "dsss", tstamp, type,
                          id, json));
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int fc_store_vote(fc_store *st, const char *id, const char *type, double tstamp, const char *event_json)
{
    pthread_mutex_lock(&st->mu);
    int rc = st->bulk ? FC_OK : exec(st, "PRAGMA synchronous=FULL");
    if (rc == FC_OK) rc = tx_begin(st);
    if (rc != FC_OK) goto out;
    sqlite3_stmt *q = prep(st, "SELECT mode, vote FROM chats WHERE id = ?", "s", id);
    if (!q) {
        rc = FC_ERR_IO;
    } else if (sqlite3_step(q) != SQLITE_ROW) {
        rc = FC_STORE_NOT_FOUND;
    } else if (!strcmp(col_text(q, 0), "direct")) {
        rc = FC_STORE_NOT_ARENA;
    } else if (sqlite3_column_type(q, 1) != SQLITE_NULL) {
        rc = FC_STORE_ALREADY_VOTED;
    }
    sqlite3_finalize(q);
    if (rc == FC_OK)
        rc = run(st, prep(st, "UPDATE chats SET vote = ?, vote_tstamp = ? WHERE id = ?", "sds", type, tstamp, id));
    if (rc == FC_OK && event_json)
        rc = run(st, prep(st, "INSERT INTO events(tstamp, type, chat_id, json) VALUES(?,?,?,?)", "dsss", tstamp, type,
                          id, event_json));
    if (rc == FC_OK) rc = tx_commit(st);
    if (rc != FC_OK) tx_rollback(st);
out:
    if (!st->bulk) exec(st, "PRAGMA synchronous=NORMAL");
    pthread_mutex_unlock(&st->mu);
    return rc;
}

int fc_store_set_durable(fc_store *st, bool durable)
{
    pthread_mutex_lock(&st->mu);
    int rc = FC_OK;
    if (durable && st->bulk) {
        rc = exec(st, "COMMIT");
        st->bulk = false;
    }
    if (rc == FC_OK)
        rc = exec(st, durable ? "PRAGMA synchronous=NORMAL; PRAGMA wal_checkpoint(FULL);" : "PRAGMA synchronous=OFF;");
    if (rc == FC_OK && !durable && !st->bulk) {
        rc = exec(st, "BEGIN IMMEDIATE");
        st->bulk = rc == FC_OK;
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

long fc_store_count_events(fc_store *st, const char *type)
{
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q = type ? prep(st, "SELECT COUNT(*) FROM events WHERE type = ?", "s", type)
                           : prep(st, "SELECT COUNT(*) FROM events", "");
    long n = q && sqlite3_step(q) == SQLITE_ROW ? (long)sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return n;
}

/* ---- battles for the leaderboard ---- */

int fc_store_battles(fc_store *st, fc_battle **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q = prep(st,
                           "SELECT c.vote, c.vote_tstamp, c.mode, a.model, b.model FROM chats c"
                           " JOIN sides a ON a.chat_id = c.id AND a.idx = 0 JOIN sides b ON b.chat_id = c.id AND"
                           " b.idx = 1 WHERE c.vote IS NOT NULL ORDER BY c.vote_tstamp",
                           "");
    size_t cap = 0;
    int rc = q ? FC_OK : FC_ERR_IO;
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        const char *v = col_text(q, 0);
        enum fc_outcome w = !strcmp(v, "leftvote")    ? FC_OUTCOME_A
                            : !strcmp(v, "rightvote") ? FC_OUTCOME_B
                            : !strcmp(v, "tievote")   ? FC_OUTCOME_TIE
                                                      : FC_OUTCOME_TIE_BOTHBAD;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *out = fc_xrealloc(*out, cap * sizeof **out);
        }
        fc_battle *b = &(*out)[(*n)++];
        b->model_a = fc_xstrdup(col_text(q, 3));
        b->model_b = fc_xstrdup(col_text(q, 4));
        b->winner = w;
        b->tstamp = sqlite3_column_double(q, 1);
        b->anony = !strcmp(col_text(q, 2), "battle");
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void fc_store_battles_free(fc_battle *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)b[i].model_a);
        free((char *)b[i].model_b);
    }
    free(b);
}

char *fc_store_votes_jsonl(fc_store *st, size_t *len, long *n_votes)
{
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *q = prep(st,
                           "SELECT json FROM events WHERE type IN ('leftvote', 'rightvote', 'tievote',"
                           " 'bothbad_vote') ORDER BY id",
                           "");
    char *out = NULL;
    size_t n = 0, cap = 0;
    long count = 0;
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        const char *j = col_text(q, 0);
        size_t l = strlen(j);
        if (n + l + 2 > cap) {
            cap = (n + l + 2) * 2;
            out = fc_xrealloc(out, cap);
        }
        memcpy(out + n, j, l);
        n += l;
        out[n++] = '\n';
        count++;
    }
    if (q) {
        if (!out) out = fc_xcalloc(1, 1);
        out[n] = '\0';
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    if (len) *len = n;
    if (n_votes) *n_votes = count;
    return out;
}

/* ---- export to FastChat's log files ---- */

int fc_store_export(fc_store *st, const char *dir, int *n_files, long *n_lines)
{
    int files = 0;
    long lines = 0;
    int rc = FC_OK;
    FILE *f = NULL;
    char cur[16] = "";
    pthread_mutex_lock(&st->mu);
    /* Rows in date order, and within a date in the order they happened. */
    sqlite3_stmt *q = prep(st, "SELECT tstamp, json FROM events ORDER BY date(tstamp, 'unixepoch'), id", "");
    if (!q) rc = FC_ERR_IO;
    while (q && sqlite3_step(q) == SQLITE_ROW) {
        time_t t = (time_t)sqlite3_column_double(q, 0);
        struct tm tm;
        gmtime_r(&t, &tm);
        char day[16];
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
        if (strcmp(day, cur) != 0) {
            if (f && fclose(f) != 0) rc = FC_ERR_IO;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s-conv.json", dir, day);
            f = fopen(path, "w");
            if (!f) {
                FC_LOG_ERROR("store: %s: %s", path, strerror(errno));
                rc = FC_ERR_IO;
                break;
            }
            snprintf(cur, sizeof cur, "%s", day);
            files++;
        }
        fputs(col_text(q, 1), f);
        fputc('\n', f);
        lines++;
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&st->mu);
    if (f && fclose(f) != 0) rc = FC_ERR_IO;
    if (n_files) *n_files = files;
    if (n_lines) *n_lines = lines;
    return rc;
}
