/*
 * cli.h: the subcommands of the fastchat binary. Each lives in its own
 * cmd_<name>.c, parses its flags, calls the library and prints. This layer
 * alone may exit the process (with a hint a user can act on).
 */
#ifndef FC_CLI_H
#define FC_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include "tensor/dtype.h"

int fc_cmd_generate(int argc, char **argv);
int fc_cmd_logits(int argc, char **argv);
int fc_cmd_inspect(int argc, char **argv);
int fc_cmd_quantize(int argc, char **argv);
int fc_cmd_convert(int argc, char **argv);
/* cmd_quantize.c: the model at path as a GGUF file out; type an enum fc_dtype
 * for the matrices, or -1 to keep each matrix's type (convert). Exits on error. */
int fc_cli_write_gguf(const char *path, const char *out, enum fc_dtype type);
/* cmd_weights.c: an fc_flag parser of sizes ("5GB", "500MB", "1GiB", "123") into a uint64_t. */
struct fc_flag;
const char *fc_cli_flag_size(const struct fc_flag *f, const char *v, void *dst);
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
int fc_cmd_train(int argc, char **argv);
int fc_cmd_apply_delta(int argc, char **argv);
int fc_cmd_make_delta(int argc, char **argv);
int fc_cmd_apply_lora(int argc, char **argv);
int fc_cmd_embed(int argc, char **argv);

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

/* ---- operations (cli_ops.c) ---- */
/* --ssl: enables TLS for every server and client call of this process from
 * SSL_KEYFILE / SSL_CERTFILE (net/http.h); dies with a hint when they are
 * missing or unreadable. No-op when ssl is false. */
void fc_cli_ssl_setup(bool ssl);
/* "https://..." in place of a default "http://..." address when --ssl is
 * on (FastChat's users pass https addresses themselves; ours are defaults):
 * returns url unchanged otherwise. Static storage: call once per address. */
const char *fc_cli_ssl_url(const char *url, const char *default_url);
/* Opens $LOGDIR/<filename> for the log lines of logger (FastChat's
 * build_logger; base/fc_base.h fc_log_open_file); dies with a hint on error. */
void fc_cli_log_file(const char *logger, const char *filename);
/* The same with fc_log_open_file_for's prefix (several servers in one process). */
void fc_cli_log_file_for(const char *logger, const char *filename, const char *prefix);
/* A worker's log file name, model_worker_<id>.log with FastChat's id (the
 * first 8 characters of a random UUID). Static storage. */
const char *fc_cli_worker_log_name(void);
/* FastChat's model-loading flags (fastchat/model/model_adapter.py
 * add_model_args, shared by serve.cli and serve.model_worker), for chat,
 * generate, worker and serve (cli_device.c). --load-8bit is honoured
 * (q8_0 at load, fc_model_load_params); the device ones are answered with
 * one line saying this build computes on the CPU and the run continues on
 * it; those naming a backend we do not have (GPTQ/AWQ checkpoints with
 * wbits < 16, --enable-exllama, --enable-xft) exit 2 with a hint. Values
 * are checked as argparse does (--device choices, integers). */
typedef struct fc_cli_device {
    const char *device, *gpus, *num_gpus, *max_gpu_memory, *dtype, *revision;
    bool load_8bit, cpu_offloading;
    const char *gptq_ckpt, *gptq_wbits, *gptq_groupsize, *awq_ckpt, *awq_wbits, *awq_groupsize;
    bool gptq_act_order, enable_exllama, exllama_cache_8bit, enable_xft;
    const char *exllama_max_seq_len, *exllama_gpu_split, *xft_max_seq_len, *xft_dtype;
} fc_cli_device;
#define FC_CLI_DEVICE_FLAGS(d) \
    {.kind = FC_FLAG_SECTION, .help = "FastChat's model flags (this build computes on the CPU):"}, \
    {"--load-8bit", FC_FLAG_TRUE, &(d)->load_8bit, \
     .help = "quantize f32/f16/bf16 matrices to q8_0 at load (about half the memory of f16)"}, \
    {"--device", FC_FLAG_STRING, &(d)->device, .metavar = "cpu|cuda|mps|xpu|npu", .help = "accepted; computes on the CPU"}, \
    {"--num-gpus", FC_FLAG_STRING, &(d)->num_gpus, .metavar = "N", .help = "accepted; computes on the CPU"}, \
    {"--gpus", FC_FLAG_STRING, &(d)->gpus, .metavar = "0,1", .help = "accepted; computes on the CPU"}, \
    {"--max-gpu-memory", FC_FLAG_STRING, &(d)->max_gpu_memory, .metavar = "13GiB", .help = "accepted; computes on the CPU"}, \
    {"--cpu-offloading", FC_FLAG_TRUE, &(d)->cpu_offloading, .help = "accepted; the weights are in CPU memory already"}, \
    {"--dtype", FC_FLAG_STRING, &(d)->dtype, .metavar = "float32|float16|bfloat16", \
     .help = "accepted; weights are used as stored (or q8_0 with --load-8bit)"}, \
    {"--revision", FC_FLAG_STRING, &(d)->revision, .metavar = "REV", .help = "accepted; name a Hub revision as org/name@REV"}, \
    {"--gptq-ckpt", FC_FLAG_STRING, &(d)->gptq_ckpt, .metavar = "F", .help = "GPTQ: not supported (wbits < 16 exits 2)"}, \
    {"--gptq-wbits", FC_FLAG_STRING, &(d)->gptq_wbits, .metavar = "2|3|4|8|16"}, \
    {"--gptq-groupsize", FC_FLAG_STRING, &(d)->gptq_groupsize, .metavar = "N"}, \
    {"--gptq-act-order", FC_FLAG_TRUE, &(d)->gptq_act_order, .help = NULL}, \
    {"--awq-ckpt", FC_FLAG_STRING, &(d)->awq_ckpt, .metavar = "F", .help = "AWQ: not supported (wbits < 16 exits 2)"}, \
    {"--awq-wbits", FC_FLAG_STRING, &(d)->awq_wbits, .metavar = "4|16"}, \
    {"--awq-groupsize", FC_FLAG_STRING, &(d)->awq_groupsize, .metavar = "N"}, \
    {"--enable-exllama", FC_FLAG_TRUE, &(d)->enable_exllama, .help = "ExLlamaV2 (CUDA): not supported, exits 2"}, \
    {"--exllama-max-seq-len", FC_FLAG_STRING, &(d)->exllama_max_seq_len, .metavar = "N"}, \
    {"--exllama-gpu-split", FC_FLAG_STRING, &(d)->exllama_gpu_split, .metavar = "20,7,7"}, \
    {"--exllama-cache-8bit", FC_FLAG_TRUE, &(d)->exllama_cache_8bit, .help = NULL}, \
    {"--enable-xft", FC_FLAG_TRUE, &(d)->enable_xft, .help = "xFasterTransformer: not supported, exits 2"}, \
    {"--xft-max-seq-len", FC_FLAG_STRING, &(d)->xft_max_seq_len, .metavar = "N"}, \
    {"--xft-dtype", FC_FLAG_STRING, &(d)->xft_dtype, .metavar = "fp16|bf16|int8|bf16_fp16|bf16_int8"}
/* Checks the values and prints one "note:" line on stderr per device flag
 * given; exits 2 ("error:" + "hint:") for what cannot be honoured. */
void fc_cli_device_apply(const fc_cli_device *d);
struct fc_model_load_params;
/* The load options the flags ask for (plain layout when exact or act8). */
void fc_cli_device_load_params(const fc_cli_device *d, bool exact, bool act8, struct fc_model_load_params *p);

#endif
