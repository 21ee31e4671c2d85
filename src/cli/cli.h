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
/* The default model path (scripts/fetch_model.sh puts it there). */
const char *fc_cli_default_model(void);

#endif
