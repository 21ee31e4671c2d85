/*
 * cmd_weights.c: `fastchat apply-delta`, `make-delta` and `apply-lora`,
 * FastChat's `python3 -m fastchat.model.apply_delta` / make_delta /
 * apply_lora, with their flags (--base-model-path, --target-model-path,
 * --delta-path, --lora-path, --low-cpu-mem; argparse's abbreviations
 * --base, --target, --delta, --lora as in FastChat's usage lines). Ours:
 * --max-shard-size (bytes, or 500MB / 2GB / 1GiB). make-delta's
 * --hub-repo-id (push to the Hub) is refused. src/tools/weights.h has the
 * arithmetic.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "tools/weights.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* "5GB", "500MB", "1GiB", "123" -> bytes (transformers' max_shard_size spellings). */
const char *fc_cli_flag_size(const fc_flag *f, const char *v, void *dst)
{
    (void)f;
    char *end;
    double x = strtod(v, &end);
    static const struct { const char *suffix; double mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1048576.0},
        {"GIB", 1073741824.0},
    };
    char u[8] = {0};
    size_t n = strlen(end);
    if (end == v || n >= sizeof u) return "expected a size such as 2GB, 500MB or 1000000";
    for (size_t i = 0; i < n; i++) u[i] = (char)toupper((unsigned char)end[i]);
    for (size_t i = 0; i < FC_ARRAY_LEN(units); i++)
        if (strcmp(u, units[i].suffix) == 0) {
            double b = x * units[i].mul;
            if (!(b >= 1 && b <= 1e15)) return "out of range (1 byte to 1 PB)";
            *(uint64_t *)dst = (uint64_t)b;
            return NULL;
        }
    return "expected a size such as 2GB, 500MB or 1000000";
}

enum tool { APPLY_DELTA, MAKE_DELTA, APPLY_LORA };

static int run(enum tool tool, int argc, char **argv)
{
    const char *base = NULL, *target = NULL, *delta = NULL, *lora = NULL, *hub = NULL;
    fc_weights_opts o = {0};
    const fc_flag delta_flags[] = {
        {"--base-model-path", FC_FLAG_STRING, &base, .metavar = "DIR", .help = "the base model (safetensors folder or cached Hub id)"},
        {"--target-model-path", FC_FLAG_STRING, &target, .metavar = "DIR",
         .help = tool == APPLY_DELTA ? "folder written: base + delta" : "the fine-tuned model"},
        {"--delta-path", FC_FLAG_STRING, &delta, .metavar = "DIR",
         .help = tool == APPLY_DELTA ? "the delta weights" : "folder written: target - base"},
        {tool == APPLY_DELTA ? "--low-cpu-mem" : "--hub-repo-id", tool == APPLY_DELTA ? FC_FLAG_TRUE : FC_FLAG_STRING,
         tool == APPLY_DELTA ? (void *)&o.low_cpu_mem : (void *)&hub,
         .help = tool == APPLY_DELTA ? "stream tensor by tensor, dropping each input tensor's pages once used"
                                     : "push to the Hub: not supported (upload the folder with huggingface-cli)"},
        {"--max-shard-size", FC_FLAG_FUNC, &o.max_shard_bytes, .fn = fc_cli_flag_size, .metavar = "SIZE",
         .help = "largest output shard (default 5GB, as transformers)"},
        {0},
    };
    const fc_flag lora_flags[] = {
        {"--base-model-path", FC_FLAG_STRING, &base, .metavar = "DIR", .help = "the base model (safetensors folder or cached Hub id)"},
        {"--target-model-path", FC_FLAG_STRING, &target, .metavar = "DIR", .help = "folder written: the merged model"},
        {"--lora-path", FC_FLAG_STRING, &lora, .metavar = "DIR", .help = "PEFT adapter folder (adapter_config.json, adapter_model.safetensors)"},
        {"--low-cpu-mem", FC_FLAG_TRUE, &o.low_cpu_mem, .help = "drop each input tensor's pages once used"},
        {"--max-shard-size", FC_FLAG_FUNC, &o.max_shard_bytes, .fn = fc_cli_flag_size, .metavar = "SIZE",
         .help = "largest output shard (default 5GB, as transformers)"},
        {0},
    };
    static const char *usage[] = {
        "fastchat apply-delta --base-model-path B --target-model-path T --delta-path D [--low-cpu-mem]",
        "fastchat make-delta --base-model-path B --target-model-path T --delta-path D",
        "fastchat apply-lora --base-model-path B --target-model-path T --lora-path L",
    };
    const fc_flags_cmd cmd = {
        .usage = usage[tool],
        .flags = tool == APPLY_LORA ? lora_flags : delta_flags,
        .abbrev = true, /* FastChat's docs write --base, --target, --delta, --lora */
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (hub) {
        fprintf(stderr, "error: --hub-repo-id: pushing to the Hub is not supported by this build\n"
                        "hint: write the delta with --delta-path, then upload the folder with `huggingface-cli upload`\n");
        return 2;
    }
    if (!base || !target || (tool == APPLY_LORA ? !lora : !delta)) {
        fprintf(stderr, "error: missing option\nusage: %s\n", usage[tool]);
        return 2;
    }
    double t0 = fc_time_sec();
    enum fc_status st;
    const char *out;
    switch (tool) {
    case APPLY_DELTA: st = fc_weights_apply_delta(base, delta, target, &o); out = target; break;
    case MAKE_DELTA: st = fc_weights_make_delta(base, target, delta, &o); out = delta; break;
    default: st = fc_weights_apply_lora(base, lora, target, &o); out = target; break;
    }
    if (st != FC_OK)
        fc_cli_die("the folders must hold safetensors checkpoints of the same architecture", "%s", fc_last_error());
    fprintf(stderr, "wrote %s in %.1f s, peak RSS %.1f MiB\n", out, fc_time_sec() - t0, fc_peak_rss() / 1048576.0);
    return 0;
}

int fc_cmd_apply_delta(int argc, char **argv) { return run(APPLY_DELTA, argc, argv); }
int fc_cmd_make_delta(int argc, char **argv) { return run(MAKE_DELTA, argc, argv); }
int fc_cmd_apply_lora(int argc, char **argv) { return run(APPLY_LORA, argc, argv); }
