/*
 * hub_args.c: Hub repo ids on every subcommand's command line. Before a
 * subcommand parses its flags, each `--model-path org/name[@rev]` (also
 * `--model_path`, and the `=value` forms) that is not a local path is
 * replaced by its folder or GGUF file in the Hugging Face cache
 * (model/hub.h), and `--gguf-file NAME` (which picks the file of a GGUF repo,
 * or of a local folder) is taken out. So every subcommand, and what it
 * hands the library (template choice by path included), sees a local path.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "model/hub.h"

#include <stdlib.h>
#include <string.h>

static bool is_flag(const char *a, const char *name, const char **inline_value)
{
    /* "--model-path" == "--model_path"; "--model-path=V" gives V */
    size_t i = 0;
    for (; name[i]; i++) {
        char c = a[i] == '_' ? '-' : a[i];
        if (c != name[i]) return false;
    }
    if (a[i] == '=') {
        *inline_value = a + i + 1;
        return true;
    }
    *inline_value = NULL;
    return a[i] == '\0';
}

static char *resolve_or_die(const char *spec, const char *gguf_file)
{
    char *out = NULL;
    enum fc_log_level lvl = fc_log_get_level();
    fc_log_set_level(FC_LOG_LEVEL_NONE); /* printed once, by fc_cli_die */
    enum fc_status st = fc_hub_resolve(spec, gguf_file, &out);
    fc_log_set_level(lvl);
    if (st == FC_ERR_ARG) fc_cli_die("pass --gguf-file with one of the names above", "%s", fc_last_error());
    if (st != FC_OK) {
        char hint[600];
        snprintf(hint, sizeof hint, "fetch it with: fastchat download %.*s%s%s", (int)strcspn(spec, "@"), spec,
                 strchr(spec, '@') ? " --revision " : "", strchr(spec, '@') ? strchr(spec, '@') + 1 : "");
        fc_cli_die(hint, "%s", fc_last_error());
    }
    return out;
}

int fc_cli_hub_args(int argc, char **argv)
{
    const char *gguf_file = NULL;
    int w = 0;
    for (int i = 0; i < argc; i++) { /* take --gguf-file out */
        const char *v;
        if (is_flag(argv[i], "--gguf-file", &v)) {
            if (!v && i + 1 >= argc) fc_cli_die(NULL, "--gguf-file needs a value");
            gguf_file = v ? v : argv[++i];
            continue;
        }
        argv[w++] = argv[i];
    }
    argc = w;
    argv[argc] = NULL;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (!is_flag(argv[i], "--model-path", &v)) continue;
        if (!v) {
            if (i + 1 >= argc) break;
            v = argv[++i];
            argv[i] = resolve_or_die(v, gguf_file); /* lives as long as the process */
        } else {
            char *local = resolve_or_die(v, gguf_file);
            size_t n = strlen(local) + 16;
            argv[i] = fc_xmalloc(n);
            snprintf(argv[i], n, "--model-path=%s", local);
            free(local);
        }
    }
    return argc;
}
