/*
 * hub_args.c: `--gguf-file NAME` on every subcommand. It picks the file of a
 * GGUF repo given as `--model-path org/name` (or of a local folder), so it is
 * taken out of argv before the subcommand parses its flags and handed to
 * format/hub.h, which every model and tokenizer load goes through. The
 * --model-path value itself is left as the user wrote it: FastChat names the
 * worker's model and picks the conversation template from that string.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "format/hub.h"

#include <string.h>

int fc_cli_hub_args(int argc, char **argv)
{
    int w = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        /* "--gguf-file V", "--gguf_file V", "--gguf-file=V" */
        if (!strncmp(a, "--gguf", 6) && (a[6] == '-' || a[6] == '_') && !strncmp(a + 7, "file", 4) &&
            (a[11] == '\0' || a[11] == '=')) {
            if (a[11] == '\0' && i + 1 >= argc) fc_cli_die("e.g. --gguf-file model-Q4_K_M.gguf", "--gguf-file needs a value");
            fc_hub_set_gguf_file(a[11] == '=' ? a + 12 : argv[++i]);
            continue;
        }
        argv[w++] = argv[i];
    }
    argv[w] = NULL;
    return w;
}
