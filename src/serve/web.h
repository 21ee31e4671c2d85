/*
 * web.h: the web UI (FastChat's gradio_web_server_multi, §7 of the
 * reference): direct chat, Chatbot Arena (anonymous battle and named
 * side-by-side), votes and the leaderboard, served from files embedded in the
 * binary (web_assets.h) and JSON/SSE endpoints of our own.
 *
 * It is mounted on an HTTP server (the OpenAI API server's, so `fastchat
 * serve` shows the page at / next to /v1) and generates through the
 * OpenAI-compatible API: POST <api>/v1/chat/completions with stream=true, the
 * same relay, validation and error codes as every other client (context too
 * long 40303, unknown model 40301, worker gone 50005/50006). Models from a
 * FastChat --register-api-endpoint-file (api_type "openai") are called the
 * same way at their api_base with their key.
 *
 * Routes (all JSON unless said; errors are {"error": message, "code": N}):
 *   GET  /                          the page (also /web/static/<file>)
 *   GET  /web/api/config            limits and FastChat's UI messages
 *   GET  /web/api/models            {"models": [visible names], "arena": [battle pool]}
 *   POST /web/api/chat              {"mode": "direct"|"battle"|"sbs", "models": [..]} -> the chat
 *   GET  /web/api/chat/<id>         the chat (battle names hidden until the vote)
 *   POST /web/api/send/<id>         {"text"} or {"regenerate": true}, with optional
 *                                   "temperature", "top_p", "max_new_tokens":
 *                                   text/event-stream of {"type": "delta"|"done"|"error"|"end", "side", ...}
 *   POST /web/api/vote/<id>         {"type": leftvote|rightvote|tievote|bothbad_vote
 *                                   (arena) or upvote|downvote|flag (direct)} ->
 *                                   {"saved": true, "models": [names]} once the vote is on disk
 *   GET  /web/api/leaderboard       fc_leaderboard_json of the stored votes
 *
 * Limits as FastChat's: input cut to FASTCHAT_INPUT_CHAR_LEN_LIMIT (12000)
 * characters, FASTCHAT_BLIND_MODE_INPUT_CHAR_LEN_LIMIT (30000) in battles
 * (the stored message keeps the whole input beside the cut), 50 turns
 * (CONVERSATION_LIMIT_MSG), one vote per battle, and a per-IP limit of sends
 * per minute (RATE_LIMIT_MSG; FastChat asks an external monitor). The client
 * IP is FastChat's: cf-connecting-ip, else the first x-forwarded-for entry,
 * else the socket's peer.
 *
 * Threads: handlers run on the HTTP server's threads; a send runs one relay
 * thread per side, so both Arena answers stream at once.
 */
#ifndef FC_WEB_H
#define FC_WEB_H

#include "net/http.h"

struct fc_store;

typedef struct fc_web fc_web;

typedef struct fc_web_params {
    const char *db_path;           /* SQLite file of chats and votes (NULL: "fastchat_arena.db") */
    const char *arena_config;      /* battle.h config file, NULL: none */
    const char *api_endpoint_file; /* FastChat's --register-api-endpoint-file, NULL: none */
    const char *api_key;           /* bearer token for our own API (its --api-keys), NULL: none */
    int rate_limit_per_min;        /* sends per client IP per minute; 0: $FASTCHAT_WEB_RATE_LIMIT, else none */
    /* The MT-bench results page at /results (eval/report.h), read afresh
     * from FastChat's llm_judge data folder on every load; NULL data dir:
     * no page (404 saying how to enable it). */
    const char *judge_data_dir;    /* FastChat's data/ folder */
    const char *judge_bench;       /* NULL: "fc_bench" */
    const char *judge_model;       /* whose judgments; NULL: "gpt-4" */
} fc_web_params;

/* Opens the store and reads the config files. NULL on error (logged). */
fc_web *fc_web_new(const fc_web_params *p);
/* Adds the routes to a server that has not started yet. */
void fc_web_mount(fc_web *w, fc_http_server *s);
/* The base URL of the OpenAI API to generate with ("http://127.0.0.1:8000");
 * set once the API server is bound, before the first request. */
void fc_web_set_api_base(fc_web *w, const char *url);
/* The mount hook for fc_openai_api_params.mount (user = the fc_web). */
void fc_web_mount_hook(fc_http_server *s, void *user);
/* Imports FastChat conversation logs ({YYYY-MM-DD}-conv.json, JSON lines)
 * into a store: every line is kept verbatim as a log record (so an export
 * and the leaderboard see exactly FastChat's rows), and each arena vote row
 * with two well-formed states also becomes a voted chat (battle when its
 * labels are "" or "Model A", else side-by-side) with its messages from the
 * states' offset on. Lines that are not JSON are counted in *n_bad and
 * skipped. Returns 0 or a negative fc_status (logged). */
int fc_web_import_log(struct fc_store *st, const char *path, long *n_records, long *n_votes, long *n_bad);

/* After the server is freed. NULL is a no-op. */
void fc_web_free(fc_web *w);

#endif
