/*
 * store.h: the Arena's conversations, votes and log records in SQLite.
 *
 * One database file (WAL journal): every write is one transaction. A vote
 * commits with synchronous=FULL, on disk when fc_store_vote returns, so a
 * vote the page was told is saved survives a kill -9 or a power cut right
 * after; other writes use synchronous=NORMAL (they survive a killed process
 * at once, a power cut from the next vote on).
 *
 * Model: a *chat* is what one page tab talks to: mode "direct" (one side),
 * "battle" (two anonymous sides) or "sbs" (two named sides). Each side has
 * FastChat's conv_id (uuid4 hex), a model name, a system message and its
 * messages [[role, text]...] (role "user" / "assistant"). A battle or sbs chat
 * takes exactly one vote (leftvote / rightvote / tievote / bothbad_vote).
 * Beside that, the *events* table keeps FastChat's log records (§7.6 of the
 * reference: "chat", "upvote", "leftvote", ... with their states) as JSON, in
 * the order they happened; fc_store_export writes them out as FastChat's
 * {YYYY-MM-DD}-conv.json files.
 *
 * Not here: the log format's fields (serve/web.c builds the records), the
 * ratings (arena/rating.h).
 *
 * Threads: an fc_store may be used from any thread (one connection,
 * serialized by a mutex; SQLite's own locking guards other processes).
 */
#ifndef FC_ARENA_STORE_H
#define FC_ARENA_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "arena/rating.h"

typedef struct fc_store fc_store;

/* Results besides FC_OK (0) and the generic negative fc_status codes. */
enum fc_store_status {
    FC_STORE_NOT_FOUND = -100,     /* no such chat */
    FC_STORE_ALREADY_VOTED = -101, /* the chat has its vote */
    FC_STORE_NOT_ARENA = -102,     /* a direct chat takes no arena vote */
};

typedef struct fc_store_side {
    const char *conv_id;        /* FastChat's per-side conversation id */
    const char *model;          /* model name served */
    const char *system_message; /* "" when none */
} fc_store_side;

/* Opens (creating when missing) the database at path. NULL on error (logged). */
fc_store *fc_store_open(const char *path);
/* NULL is a no-op. */
void fc_store_close(fc_store *st);

/* Creates chat `id` with n_sides (1 or 2) sides. mode: "direct" | "battle" | "sbs". */
int fc_store_chat_create(fc_store *st, const char *id, const char *mode, const fc_store_side *sides, int n_sides,
                         const char *ip, double tstamp);
/* The chat as JSON (caller frees with cJSON_Delete), NULL when absent:
 * {"id","mode","created","ip","vote" (string or null),"vote_tstamp",
 *  "sides":[{"conv_id","model","system_message",
 *            "messages":[{"role","content","input" (the raw input when it was
 *                         cut, else absent),"error_code","start","finish"}...]}]} */
cJSON *fc_store_chat_get(fc_store *st, const char *id);
/* Appends a message to a side. input: the text as typed when content is a cut of it, else NULL. */
int fc_store_message_add(fc_store *st, const char *id, int side, const char *role, const char *content,
                         const char *input, int error_code, double start, double finish);
/* Deletes the messages of a side from index `keep` on (regenerate). */
int fc_store_message_truncate(fc_store *st, const char *id, int side, int keep);
/* Appends a log record (a FastChat §7.6 JSON line) for chat id (may be NULL). */
int fc_store_event_add(fc_store *st, double tstamp, const char *type, const char *id, const char *json);
/* The arena vote: checks that the chat exists, is a battle or sbs chat and has
 * no vote yet, then records the vote and its log record in one durable
 * transaction. FC_OK, FC_STORE_NOT_FOUND, FC_STORE_NOT_ARENA,
 * FC_STORE_ALREADY_VOTED or an error. event_json NULL: no log record (an
 * import adds the original one itself). */
int fc_store_vote(fc_store *st, const char *id, const char *type, double tstamp, const char *event_json);
/* durable false: bulk import (synchronous=OFF, one transaction); true: back
 * to normal (commits the import, checkpoints the WAL into the database file). */
int fc_store_set_durable(fc_store *st, bool durable);
/* Number of recorded events of a type (NULL: all). -1 on error. */
long fc_store_count_events(fc_store *st, const char *type);

/* The voted arena chats as battles, oldest first (model_a = side 0). The
 * names live in *strings (free with fc_store_battles_free). */
int fc_store_battles(fc_store *st, fc_battle **out, size_t *n);
void fc_store_battles_free(fc_battle *b, size_t n);

/* The arena vote records (leftvote/rightvote/tievote/bothbad_vote) as
 * FastChat log lines, oldest first, one per line (malloc'd, NUL-terminated;
 * *len its length; *n_votes their number). NULL on error. */
char *fc_store_votes_jsonl(fc_store *st, size_t *len, long *n_votes);

/* Writes every event into dir/{YYYY-MM-DD}-conv.json (UTC date of its
 * tstamp), one JSON object per line, replacing those files. *n_files and
 * *n_lines (may be NULL) get the counts. */
int fc_store_export(fc_store *st, const char *dir, int *n_files, long *n_lines);

#endif
