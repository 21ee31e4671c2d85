/*
 * cmd_download.c: `fastchat download org/name [FILE...] [--revision R]
 * [--include PATTERN]...`: fetches a Hub repo into the Hugging Face cache
 * (tools/hub_download.h), as `huggingface-cli download` / `hf download` do,
 * and prints the snapshot folder. --model-path org/name then finds it.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "base/flags.h"
#include "format/hub.h"
#include "tools/hub_download.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fc_cmd_download(int argc, char **argv)
{
    const char *revision = NULL, *cache_dir = NULL, *endpoint = NULL, *token = NULL;
    bool quiet = false, no_progress = false;
    fc_flag_list include = {0}, pos = {0}; /* pos: REPO_ID and the FILEs */
    const fc_flag flags[] = {
        {"--revision", FC_FLAG_STRING, &revision, 0, 0, "REV", "branch, tag or commit (default: main)", NULL, NULL},
        {"--include", FC_FLAG_LIST, &include, 0, 0, "PATTERN", "only files matching this glob (repeatable)", NULL, NULL},
        {"--cache-dir", FC_FLAG_STRING, &cache_dir, 0, 0, "DIR", "the cache (default: $HF_HUB_CACHE, $HF_HOME/hub, "
                                                                 "~/.cache/huggingface/hub)", NULL, NULL},
        {"--endpoint", FC_FLAG_STRING, &endpoint, 0, 0, "URL", "the Hub (default: $HF_ENDPOINT, https://huggingface.co)", NULL, NULL},
        {"--token", FC_FLAG_STRING, &token, 0, 0, "TOKEN", "access token (default: $HF_TOKEN, $HF_HOME/token)", NULL, NULL},
        {"--no-progress", FC_FLAG_TRUE, &no_progress, 0, 0, NULL, "no progress bar, even on a terminal", NULL, NULL},
        {"-q|--quiet", FC_FLAG_TRUE, &quiet, 0, 0, NULL, "print only the snapshot folder", NULL, NULL},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat download REPO_ID [FILE...] [options]",
        .about = "Downloads a model repo from the Hugging Face Hub into the Hugging Face cache (resumable,\n"
                 "checked against the Hub's sizes and SHA-256) and prints its snapshot folder.\n",
        .flags = flags,
        .footer = "  --gguf-file NAME               a GGUF repo's file (the same as naming it as a FILE)\n"
                  "Then: fastchat chat --model-path REPO_ID (a GGUF repo: add --gguf-file NAME).\n",
        .args = &pos,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    int n_pos = pos.n;
    if (n_pos == 0) {
        fc_flags_print_help(&cmd, stderr);
        fc_cli_die("pass a repo id, e.g. fastchat download HuggingFaceTB/SmolLM2-135M-Instruct", "no repo id");
    }
    /* --gguf-file NAME (main.c took it out of argv): that file of the repo */
    const char **files = fc_xmalloc(sizeof *files * (size_t)(n_pos + 1));
    for (int i = 1; i < n_pos; i++) files[i - 1] = pos.v[i];
    int n_files = n_pos - 1;
    if (fc_hub_get_gguf_file()) files[n_files++] = fc_hub_get_gguf_file();
    fc_hub_download_opts o = {
        .repo = pos.v[0],
        .revision = revision,
        .include = include.v,
        .n_include = include.n,
        .files = files,
        .n_files = n_files,
        .endpoint = endpoint,
        .token = token,
        .cache_dir = cache_dir,
        .progress = !quiet && !no_progress && isatty(2),
        .quiet = quiet,
    };
    char *snapshot = NULL;
    fc_log_set_level(FC_LOG_LEVEL_NONE); /* the error is printed once, below */
    if (fc_hub_download(&o, &snapshot) != FC_OK)
        fc_cli_die(NULL, "%s", fc_last_error());
    printf("%s\n", snapshot);
    free(snapshot);
    free(files);
    fc_flag_list_free(&pos);
    fc_flag_list_free(&include);
    return 0;
}
