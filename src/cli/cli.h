/*
 * cli.h: the subcommands of the fastchat binary. Each lives in its own
 * cmd_<name>.c, parses its flags, calls the library and prints. This layer
 * alone may exit the process (with a hint a user can act on).
 */
#ifndef FC_CLI_H
#define FC_CLI_H

#include <stdbool.h>
#include <stdint.h>

int fc_cmd_generate(int argc, char **argv);
int fc_cmd_logits(int argc, char **argv);
int fc_cmd_inspect(int argc, char **argv);
int fc_cmd_quantize(int argc, char **argv);
int fc_cmd_download(int argc, char **argv);
int fc_cmd_tokenize(int argc, char **argv);
int fc_cmd_detokenize(int argc, char **argv);
int fc_cmd_prompt(int argc, char **argv);
int fc_cmd_bench(int argc, char **argv);
int fc_cmd_chat(int argc, char **argv);
int fc_cmd_worker(int argc, char **argv);
int fc_cmd_controller(int argc, char **argv);
int fc_cmd_api(int argc, char **argv);
int fc_cmd_serve(int argc, char **argv);
int fc_cmd_test_message(int argc, char **argv);
int fc_cmd_bench_serve(int argc, char **argv);
int fc_cmd_web(int argc, char **argv);
int fc_cmd_leaderboard(int argc, char **argv);
int fc_cmd_data(int argc, char **argv);
int fc_cmd_judge(int argc, char **argv);
int fc_cmd_apply_delta(int argc, char **argv);
int fc_cmd_make_delta(int argc, char **argv);
int fc_cmd_apply_lora(int argc, char **argv);

/* Prints "error: <msg>" (and "hint: <hint>" when hint is not NULL) to stderr
 * and exits with status 1. */
void fc_cli_die(const char *hint, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* Parses "1,2,3" into a malloc'd array; dies on malformed input. */
int32_t *fc_cli_parse_ids(const char *s, int *n);
struct fc_model;
struct fc_tokenizer;
/* The tokenizer of a loaded model (its GGUF metadata, or the tokenizer files
 * of its Hugging Face folder); NULL (logged) when it has none we can read. */
struct fc_tokenizer *fc_cli_load_tokenizer(const struct fc_model *m);
/* A flag value given as a JSON list of strings ('["a", "b"]') or as "a,b":
 * returns the comma-separated form (malloc'd). Dies on malformed JSON. */
char *fc_cli_json_list_csv(const char *flag, const char *v);
/* "k1,k2" -> malloc'd array of malloc'd items (empty items dropped). */
char **fc_cli_split_csv(const char *s, int *n);
/* Takes --gguf-file NAME out of argv (a subcommand's argv, argv[0] its name)
 * and sets it as the GGUF file Hub repo ids resolve to (format/hub.h);
 * returns the new argc. */
int fc_cli_hub_args(int argc, char **argv);
/* The web UI's default database, ~/.cache/fastchat/arena.db (cmd_web.c; malloc'd). */
char *fc_cli_web_db_default(void);
/* For the servers: returns when SIGINT or SIGTERM arrives (main.c). */
void fc_cli_wait_for_stop(void);
/* The default model path (scripts/fetch_model.sh puts it there). */
const char *fc_cli_default_model(void);

/* Flag callbacks several subcommands share (cli_flags.c; base/flags.h). */
#include "base/flags.h"
typedef struct fc_cli_csv { char **v; int n; } fc_cli_csv; /* malloc'd items */
void fc_cli_csv_free(fc_cli_csv *l);
/* FC_FLAG_FUNC0: -v/--verbose sets the log level to info. */
const char *fc_cli_flag_verbose(const fc_flag *f, const char *v, void *dst);
/* FC_FLAG_FUNC, dst a char **: a JSON list of strings as "a,b" (malloc'd,
 * replaces the previous one); dies on malformed JSON. */
const char *fc_cli_flag_json_list(const fc_flag *f, const char *v, void *dst);
/* FC_FLAG_FUNC, dst an fc_cli_csv: "k1,k2" split (replaces the previous). */
const char *fc_cli_flag_csv(const fc_flag *f, const char *v, void *dst);

/* The OpenAI API server's access flags, shared by `api` and `serve`:
 * FC_CLI_API_ACCESS_FLAGS(&a) is their rows of a flag table. */
typedef struct fc_cli_api_access {
    fc_cli_csv keys;                   /* --api-keys */
    char *origins, *methods, *headers; /* --allowed-*, as "a,b"; NULL: "*" */
    bool credentials;                  /* --allow-credentials */
} fc_cli_api_access;
#define FC_CLI_API_ACCESS_FLAGS(a) \
    {"--api-keys", FC_FLAG_FUNC, &(a)->keys, .fn = fc_cli_flag_csv, .metavar = "K1,K2", \
     .help = "accepted bearer tokens (every route, /api/v1/ ones too)"}, \
    {"--allowed-origins", FC_FLAG_FUNC, &(a)->origins, .fn = fc_cli_flag_json_list, .metavar = "JSON", \
     .help = "CORS origins (default [\"*\"])"}, \
    {"--allowed-methods", FC_FLAG_FUNC, &(a)->methods, .fn = fc_cli_flag_json_list, .metavar = "JSON", \
     .help = "CORS methods (default [\"*\"])"}, \
    {"--allowed-headers", FC_FLAG_FUNC, &(a)->headers, .fn = fc_cli_flag_json_list, .metavar = "JSON", \
     .help = "CORS headers (default [\"*\"])"}, \
    {"--allow-credentials", FC_FLAG_TRUE, &(a)->credentials, .help = "CORS credentials"}
struct fc_openai_api_params;
/* Sets the keys and CORS fields of p (borrowing from a). */
void fc_cli_api_access_apply(const fc_cli_api_access *a, struct fc_openai_api_params *p);
void fc_cli_api_access_free(fc_cli_api_access *a);

#endif
