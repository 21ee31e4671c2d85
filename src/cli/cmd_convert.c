/*
 * cmd_convert.c: `fastchat convert --input X --output Y`: between a GGUF file
 * and a Hugging Face folder, in the direction the input names.
 *   HF folder (or cached Hub id) -> GGUF: `fastchat quantize`'s writer with
 *     every matrix kept in its type (f32, f16, bf16), norms in f32, the
 *     tokenizer and chat template as tokenizer.* metadata and llama.cpp's
 *     Q/K row order, as llama.cpp's convert_hf_to_gguf.py writes; --dtype
 *     converts the matrices instead (its --outtype).
 *   GGUF file -> HF folder: config.json, safetensors shards with an index
 *     (--max-shard-size), tokenizer.json, tokenizer_config.json,
 *     generation_config.json (src/tools/convert.h); --dtype is the type of
 *     norms and dequantized matrices.
 * FastChat has no such tool (it loads Hugging Face folders only); the names
 * follow its weight tools' style.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "base/flags.h"
#include "tensor/dtype.h"
#include "tools/convert.h"

#include <stdio.h>
#include <string.h>

/* a GGUF file: starts with the magic */
static bool is_gguf(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char m[4] = {0};
    bool yes = fread(m, 1, 4, f) == 4 && !memcmp(m, "GGUF", 4);
    fclose(f);
    return yes;
}

int fc_cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *dname = NULL;
    fc_convert_opts o = {0, -1};
    const fc_flag flags[] = {
        {"--input", FC_FLAG_STRING, &in, .metavar = "PATH", .help = "a GGUF file, or a Hugging Face folder / cached Hub id"},
        {"--output", FC_FLAG_STRING, &out, .metavar = "PATH", .help = "the Hugging Face folder, or the GGUF file, written"},
        {"--dtype", FC_FLAG_STRING, &dname, .metavar = "TYPE",
         .help = "to GGUF: the matrices' type (default: kept); to HF: f32|f16|bf16 of norms and dequantized matrices"},
        {"--max-shard-size", FC_FLAG_FUNC, &o.max_shard_bytes, .fn = fc_cli_flag_size, .metavar = "SIZE",
         .help = "to HF: largest safetensors shard (default 5GB, as transformers)"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat convert --input MODEL.gguf|HF_DIR --output HF_DIR|MODEL.gguf [--dtype T] [--max-shard-size S]",
        .flags = flags,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!in || !out) fc_cli_die("usage: fastchat convert --input X --output Y", "missing option");
    enum fc_dtype dtype = FC_DTYPE_NONE;
    if (dname) {
        dtype = fc_dtype_from_name(dname);
        if (dtype < 0) fc_cli_die("types: f32 f16 bf16 (and, to GGUF, q8_0 q4_0 q4_1 q5_0 q5_1 q4_k q6_k)", "unknown type '%s'", dname);
    }
    if (!is_gguf(in)) return fc_cli_write_gguf(in, out, dtype);
    o.dtype = dtype;
    double t0 = fc_time_sec();
    if (fc_convert_gguf_to_hf(in, out, &o) != FC_OK)
        fc_cli_die("--input takes a GGUF file of a llama, mistral, qwen2, gemma2 or phi3 model", "%s", fc_last_error());
    fprintf(stderr, "wrote %s in %.1f s\n", out, fc_time_sec() - t0);
    return 0;
}
