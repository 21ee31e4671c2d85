/*
 * cli_device.c: FastChat's model-loading flags (cli.h FC_CLI_DEVICE_FLAGS):
 * what this build does with each.
 *
 * Decision (documented in README's command table): this build computes on
 * the CPU. A flag that only places the computation (--device, --gpus,
 * --num-gpus, --max-gpu-memory, --cpu-offloading) or picks the torch dtype
 * (--dtype) gets one "note:" line and the run continues on the CPU, so
 * FastChat command lines work unchanged. A flag that asks for another
 * weight format or backend (a GPTQ or AWQ checkpoint with wbits < 16,
 * --enable-exllama, --enable-xft) cannot be honoured: "error:" plus a hint,
 * exit status 2, before anything is loaded. Their companion flags alone
 * (--gptq-groupsize without wbits < 16, ...) change nothing in FastChat
 * either: one note each. Values are checked as argparse checks them
 * (--device choices, integers, --gpus against --num-gpus as FastChat does).
 */
#include "cli.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bad(const char *hint, const char *fmt, const char *flag, const char *v)
{
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, flag, v);
    fprintf(stderr, "\n");
    if (hint) fprintf(stderr, "hint: %s\n", hint);
    exit(2);
}

static void note(const char *flag, const char *v, const char *what)
{
    if (v) fprintf(stderr, "note: %s %s: %s\n", flag, v, what);
    else fprintf(stderr, "note: %s: %s\n", flag, what);
}

/* argparse's type=int: the value as an int, or exit 2. */
static long int_value(const char *flag, const char *v)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < -1000000000L || x > 1000000000L) bad(NULL, "%s: invalid int value: '%s'", flag, v);
    return x;
}

static void choice(const char *flag, const char *v, const char *const *choices, const char *list)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(v, choices[i]) == 0) return;
    fprintf(stderr, "error: %s: invalid choice: '%s' (choose from %s)\n", flag, v, list);
    exit(2);
}

static const char CPU[] = "this build computes on the CPU; running on the CPU";

void fc_cli_device_apply(const fc_cli_device *d)
{
    static const char *devices[] = {"cpu", "cuda", "mps", "xpu", "npu", NULL};
    static const char *dtypes[] = {"float32", "float16", "bfloat16", NULL};
    static const char *gptq_bits[] = {"2", "3", "4", "8", "16", NULL};
    static const char *awq_bits[] = {"4", "16", NULL};
    static const char *xft_dtypes[] = {"fp16", "bf16", "int8", "bf16_fp16", "bf16_int8", NULL};

    /* values first, as argparse rejects them before the program runs */
    if (d->device) choice("--device", d->device, devices, "'cpu', 'cuda', 'mps', 'xpu', 'npu'");
    if (d->dtype) choice("--dtype", d->dtype, dtypes, "'float32', 'float16', 'bfloat16'");
    if (d->gptq_wbits) choice("--gptq-wbits", d->gptq_wbits, gptq_bits, "2, 3, 4, 8, 16");
    if (d->awq_wbits) choice("--awq-wbits", d->awq_wbits, awq_bits, "4, 16");
    if (d->xft_dtype) choice("--xft-dtype", d->xft_dtype, xft_dtypes, "'fp16', 'bf16', 'int8', 'bf16_fp16', 'bf16_int8'");
    long num_gpus = d->num_gpus ? int_value("--num-gpus", d->num_gpus) : 1;
    if (d->gptq_groupsize) int_value("--gptq-groupsize", d->gptq_groupsize);
    if (d->awq_groupsize) int_value("--awq-groupsize", d->awq_groupsize);
    if (d->exllama_max_seq_len) int_value("--exllama-max-seq-len", d->exllama_max_seq_len);
    if (d->xft_max_seq_len) int_value("--xft-max-seq-len", d->xft_max_seq_len);
    if (d->gpus) {
        /* FastChat: ValueError when fewer ids than --num-gpus */
        long n = 1;
        for (const char *p = d->gpus; *p; p++) n += *p == ',';
        if (n < num_gpus) {
            fprintf(stderr, "error: --gpus %s: larger --num-gpus (%ld) than --gpus %s\n", d->gpus, num_gpus, d->gpus);
            exit(2);
        }
    }

    /* what cannot be honoured */
    if (d->gptq_wbits && strcmp(d->gptq_wbits, "16") != 0)
        bad("quantize the model with `fastchat quantize --type q4_0` (or q4_k, q8_0) and load that GGUF",
            "%s %s: GPTQ checkpoints are not supported by this build", "--gptq-wbits", d->gptq_wbits);
    if (d->awq_wbits && strcmp(d->awq_wbits, "16") != 0)
        bad("quantize the model with `fastchat quantize --type q4_0` (or q4_k, q8_0) and load that GGUF",
            "%s %s: AWQ checkpoints are not supported by this build", "--awq-wbits", d->awq_wbits);
    if (d->enable_exllama)
        bad("drop --enable-exllama: the CPU engine serves the model (--load-8bit for less memory)",
            "%s%s: ExLlamaV2 is a CUDA backend this build does not have", "--enable-exllama", "");
    if (d->enable_xft)
        bad("drop --enable-xft: the CPU engine serves the model (--load-8bit for 8-bit weights)",
            "%s%s: xFasterTransformer is not part of this build", "--enable-xft", "");

    /* what is accepted, one line each */
    if (d->device && strcmp(d->device, "cpu") != 0) note("--device", d->device, CPU);
    if (d->num_gpus) note("--num-gpus", d->num_gpus, CPU);
    if (d->gpus) note("--gpus", d->gpus, CPU);
    if (d->max_gpu_memory) note("--max-gpu-memory", d->max_gpu_memory, CPU);
    if (d->cpu_offloading)
        note("--cpu-offloading", NULL, "this build computes on the CPU; the weights are in CPU memory already");
    if (d->dtype)
        note("--dtype", d->dtype, "this build uses the weights as stored (q8_0 with --load-8bit); ignored");
    if (d->revision)
        note("--revision", d->revision, "ignored; name a Hub revision in the path: --model-path org/name@REV");
    if (d->gptq_ckpt) note("--gptq-ckpt", d->gptq_ckpt, "ignored (GPTQ is used only with --gptq-wbits < 16)");
    if (d->gptq_groupsize) note("--gptq-groupsize", d->gptq_groupsize, "ignored (no GPTQ)");
    if (d->gptq_act_order) note("--gptq-act-order", NULL, "ignored (no GPTQ)");
    if (d->gptq_wbits) note("--gptq-wbits", d->gptq_wbits, "16 bits: no GPTQ, as in FastChat");
    if (d->awq_ckpt) note("--awq-ckpt", d->awq_ckpt, "ignored (AWQ is used only with --awq-wbits < 16)");
    if (d->awq_groupsize) note("--awq-groupsize", d->awq_groupsize, "ignored (no AWQ)");
    if (d->awq_wbits) note("--awq-wbits", d->awq_wbits, "16 bits: no AWQ, as in FastChat");
    if (d->exllama_max_seq_len) note("--exllama-max-seq-len", d->exllama_max_seq_len, "ignored (no --enable-exllama)");
    if (d->exllama_gpu_split) note("--exllama-gpu-split", d->exllama_gpu_split, "ignored (no --enable-exllama)");
    if (d->exllama_cache_8bit) note("--exllama-cache-8bit", NULL, "ignored (no --enable-exllama)");
    if (d->xft_max_seq_len) note("--xft-max-seq-len", d->xft_max_seq_len, "ignored (no --enable-xft)");
    if (d->xft_dtype) note("--xft-dtype", d->xft_dtype, "ignored (no --enable-xft)");
}

void fc_cli_device_load_params(const fc_cli_device *d, bool exact, bool act8, struct fc_model_load_params *p)
{
    memset(p, 0, sizeof *p);
    p->load_8bit = d->load_8bit;
    p->plain_layout = exact || act8;
}
