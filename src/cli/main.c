/*
 * main.c: the fastchat binary: dispatches to one subcommand per file.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"chat", fc_cmd_chat, "chat with a model in the terminal"},
    {"serve", fc_cmd_serve, "controller + worker(s) + OpenAI API in one process"},
    {"controller", fc_cmd_controller, "the worker registry and dispatcher"},
    {"worker", fc_cmd_worker, "a model worker that registers with a controller"},
    {"api", fc_cmd_api, "the OpenAI-compatible REST API over a controller"},
    {"test-message", fc_cmd_test_message, "send a test message to a model through the controller"},
    {"web", fc_cmd_web, "web chat, Chatbot Arena and leaderboard over a controller"},
    {"bench-serve", fc_cmd_bench_serve, "load-test a running API with concurrent streaming clients"},
    {"generate", fc_cmd_generate, "generate tokens from a prompt (raw, no chat template)"},
    {"logits", fc_cmd_logits, "write the logits of every prompt position to a file"},
    {"inspect", fc_cmd_inspect, "print a model's architecture, tensors and size"},
    {"download", fc_cmd_download, "fetch a model repo from the Hugging Face Hub into its cache"},
    {"quantize", fc_cmd_quantize, "write a model as GGUF in another weight type"},
    {"convert", fc_cmd_convert, "convert between a GGUF file and a Hugging Face folder, both ways"},
    {"apply-delta", fc_cmd_apply_delta, "base + delta weights -> target (Vicuna deltas; safetensors folders)"},
    {"make-delta", fc_cmd_make_delta, "target - base weights -> delta (safetensors folders)"},
    {"apply-lora", fc_cmd_apply_lora, "merge a PEFT LoRA adapter into its base model"},
    {"tokenize", fc_cmd_tokenize, "print the token ids of a text as a JSON array"},
    {"detokenize", fc_cmd_detokenize, "print the text of token ids"},
    {"prompt", fc_cmd_prompt, "render a conversation with a FastChat template"},
    {"bench", fc_cmd_bench, "measure load, prefill and decode speed"},
    {"leaderboard", fc_cmd_leaderboard, "Chatbot Arena ratings (Elo, Bradley-Terry) from vote logs"},
    {"data", fc_cmd_data, "FastChat's ShareGPT data tools (clean, split, sample, merge, stats...)"},
    {"judge", fc_cmd_judge, "MT-bench style evaluation: answers, LLM judge, results, agreement"},
    {"train", fc_cmd_train, "supervised fine-tuning on conversations (FastChat train.py)"},
    {"embed", fc_cmd_embed, "sentence embeddings with a BERT encoder (all-MiniLM-L6-v2)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: fastchat <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < FC_ARRAY_LEN(cmds); i++)
        fprintf(f, "  %-13s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\nrun 'fastchat <command> --help' for its options\n");
}

void fc_cli_die(const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* an error the library has just logged ("error: ...") is not repeated */
    const char *last = fc_last_error();
    if (!(last[0] && strstr(msg, last) && fc_log_get_level() <= FC_LOG_LEVEL_ERROR)) fprintf(stderr, "error: %s\n", msg);
    if (hint) fprintf(stderr, "hint: %s\n", hint);
    exit(1);
}

int32_t *fc_cli_parse_ids(const char *s, int *n)
{
    int cap = 16, k = 0;
    int32_t *ids = fc_xmalloc(sizeof(int32_t) * (size_t)cap);
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX)
            fc_cli_die("pass token ids as a comma-separated list, e.g. 1,2,3", "bad token id list '%s'", s);
        if (k == cap) ids = fc_xrealloc(ids, sizeof(int32_t) * (size_t)(cap *= 2));
        ids[k++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (k == 0) fc_cli_die(NULL, "empty token id list");
    *n = k;
    return ids;
}

fc_tokenizer *fc_cli_load_tokenizer(const fc_model *m)
{
    if (fc_model_format(m) == FC_FORMAT_GGUF) return fc_tokenizer_from_gguf(fc_model_gguf(m), fc_model_path(m));
    return fc_tokenizer_from_hf(fc_model_path(m));
}

static volatile sig_atomic_t stop_flag;
static void on_stop_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

void fc_cli_wait_for_stop(void)
{
    signal(SIGINT, on_stop_signal);
    signal(SIGTERM, on_stop_signal);
    /* polled, not pause(): the signal may be delivered to any of the
     * server's threads, and pause() in this one would sleep through it */
    while (!stop_flag) usleep(20 * 1000);
}

const char *fc_cli_default_model(void)
{
    static char path[4096];
    const char *env = getenv("FASTCHAT_MODEL");
    if (env && *env) return env;
    const char *cache = getenv("FASTCHAT_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (cache) snprintf(path, sizeof path, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else if (xdg) snprintf(path, sizeof path, "%s/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf", xdg);
    else snprintf(path, sizeof path, "%s/.cache/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    return path;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    argc = 1 + fc_cli_hub_args(argc - 1, argv + 1); /* --gguf-file, for any --model-path */
    for (size_t i = 0; i < FC_ARRAY_LEN(cmds); i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 1;
}
