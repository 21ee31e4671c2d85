/*
 * cmd_train.c: `fastchat train`, FastChat's fastchat/train/train.py (Vicuna
 * supervised fine-tuning) with Hugging Face TrainingArguments' flag names and
 * defaults, on the CPU in f32 (src/train/). Prints one progress line per
 * optimizer step (step, loss, learning rate, gradient norm, tokens/s, ETA)
 * and writes Hugging Face checkpoint folders that transformers and our
 * engine load.
 *
 * Also: --masking template (train_with_template.py's labels, any template it
 * can split), --resume-from-checkpoint, --eval-data-path / --eval-steps, the
 * log file and loss curve in the output folder, and LoRA (--lora-r ...:
 * PEFT adapter folders), all described in src/train/train.h; QLoRA
 * (--q-lora True, train_lora.py's --q_lora: the frozen base matrices stay in
 * their quantized GGUF type, src/train/qbase.h).
 *
 * FastChat/HF flags that have no meaning here are accepted and ignored with
 * a note (--fp16, --tf32, --fsdp, --lazy-preprocess, ...), so FastChat's
 * command lines run unchanged.
 *
 * Data parallel: `mpirun -np N fastchat train ...` (src/train/dist.h): each
 * process trains its slice of the global batch with a 1/N shard of AdamW's
 * state; rank 0 prints, logs and saves, and prints every rank's peak RSS at
 * the end. Across machines: `mpirun --hostfile hosts -np N` with the binary,
 * model, data and output folder at the same paths on every machine (the
 * output folder shared, for resuming).
 */
#include "cli.h"
#include "base/fc_base.h"
#include "train/train.h"
#include "train/dist.h"
#include "chat/conv.h"

#include <math.h>
#include <string.h>

static const char *parse_bool(const fc_flag *f, const char *v, void *dst)
{
    (void)f;
    if (!strcmp(v, "True") || !strcmp(v, "true") || !strcmp(v, "1")) *(bool *)dst = true;
    else if (!strcmp(v, "False") || !strcmp(v, "false") || !strcmp(v, "0")) *(bool *)dst = false;
    else return "expects True or False";
    return NULL;
}

static void progress(const fc_trainer_progress *p, void *user)
{
    const fc_trainer_args *a = user;
    static bool said;
    if (!said && p->world > 1)
        printf("data parallel over %d processes: global batch %ld = %d per device x %d accumulation x %d; "
               "AdamW state %.1f MiB per process (of %.1f MiB)\n", p->world,
               (long)a->per_device_train_batch_size * a->gradient_accumulation_steps * p->world,
               a->per_device_train_batch_size, a->gradient_accumulation_steps, p->world, p->optim_mib,
               p->optim_total_mib);
    said = true;
    char line[1024];
    fc_trainer_format_progress(p, line, sizeof line);
    fputs(line, stdout);
    fflush(stdout);
}

int fc_cmd_train(int argc, char **argv)
{
    fc_trainer_args a;
    fc_trainer_args_default(&a);
    bool ignored_seen = false;
    const char *masking = "fschat";
    bool resume = false;
    const fc_flag flags[] = {
        {NULL, FC_FLAG_SECTION, .help = "model and data (FastChat ModelArguments / DataArguments)"},
        {"--model-path|--model-name-or-path", FC_FLAG_STRING, &a.model_path, .metavar = "M",
         .help = "Hugging Face folder (f32/f16/bf16 safetensors), GGUF file or Hub id"},
        {"--data-path", FC_FLAG_STRING, &a.data_path, .metavar = "F",
         .help = "FastChat conversation JSON (or JSON Lines)"},
        {"--output-dir", FC_FLAG_STRING, &a.output_dir, .metavar = "DIR",
         .help = "checkpoints go to DIR/checkpoint-N, the final model to DIR"},
        {"--model-max-length", FC_FLAG_INT, &a.model_max_length,
         .min = 2, .max = 1 << 20, .metavar = "N", .help = "truncate and pad examples to N tokens (512)"},
        {"--tokenizer-legacy", FC_FLAG_FUNC, &a.legacy, .metavar = "BOOL", .fn = parse_bool,
         .help = "the tokenizer's `legacy` as train.py's masking reads it (True)"},
        {"--masking", FC_FLAG_STRING, &masking, .metavar = "M",
         .help = "fschat: train.py's labels (vicuna template); template: train_with_template.py's,\n"
                 "for any template it can split (fschat)"},
        {"--conv-template", FC_FLAG_STRING, &a.conv_template, .metavar = "T",
         .help = "template for --masking template (picked from the model path)"},
        {NULL, FC_FLAG_SECTION, .help = "optimisation (Hugging Face TrainingArguments)"},
        {"--per-device-train-batch-size", FC_FLAG_INT, &a.per_device_train_batch_size,
         .min = 1, .max = 65536, .metavar = "N", .help = "examples per micro-batch (8)"},
        {"--gradient-accumulation-steps", FC_FLAG_INT, &a.gradient_accumulation_steps,
         .min = 1, .max = 65536, .metavar = "N", .help = "micro-batches per optimizer step (1)"},
        {"--learning-rate", FC_FLAG_DOUBLE, &a.learning_rate,
         .min = 0, .max = 10, .metavar = "LR", .help = "AdamW learning rate (5e-5)"},
        {"--weight-decay", FC_FLAG_DOUBLE, &a.weight_decay,
         .min = 0, .max = 10, .metavar = "W", .help = "AdamW weight decay, not on biases and norms (0)"},
        {"--adam-beta1", FC_FLAG_DOUBLE, &a.adam_beta1,
         .min = 0, .max = 1, .metavar = "B", .help = "(0.9)"},
        {"--adam-beta2", FC_FLAG_DOUBLE, &a.adam_beta2,
         .min = 0, .max = 1, .metavar = "B", .help = "(0.999)"},
        {"--adam-epsilon", FC_FLAG_DOUBLE, &a.adam_epsilon,
         .min = 0, .max = 1, .metavar = "E", .help = "(1e-8)"},
        {"--warmup-ratio", FC_FLAG_DOUBLE, &a.warmup_ratio,
         .min = 0, .max = 1, .metavar = "R", .help = "warmup steps = ceil(R * total) (0)"},
        {"--warmup-steps", FC_FLAG_INT64, &a.warmup_steps,
         .min = 0, .max = 1e12, .metavar = "N", .help = "warmup steps, wins over the ratio (0)"},
        {"--lr-scheduler-type", FC_FLAG_STRING, &a.lr_scheduler_type, .metavar = "S",
         .help = "linear | cosine | constant | constant_with_warmup (linear)"},
        {"--num-train-epochs", FC_FLAG_DOUBLE, &a.num_train_epochs,
         .min = 0, .max = 1e6, .metavar = "E", .help = "(3)"},
        {"--max-steps", FC_FLAG_INT64, &a.max_steps,
         .min = -1, .max = 1e12, .metavar = "N", .help = "optimizer steps; wins over the epochs (-1)"},
        {"--max-grad-norm", FC_FLAG_DOUBLE, &a.max_grad_norm,
         .min = 0, .max = 1e9, .metavar = "G", .help = "clip the gradient norm to G; 0: off (1.0)"},
        {"--save-steps", FC_FLAG_INT64, &a.save_steps,
         .min = 0, .max = 1e12, .metavar = "N", .help = "write DIR/checkpoint-N every N steps (500)"},
        {"--save-total-limit", FC_FLAG_INT64, &a.save_total_limit,
         .min = 0, .max = 1e12, .metavar = "N", .help = "keep only the newest N checkpoints (0: all)"},
        {"--resume-from-checkpoint", FC_FLAG_STRING, &a.resume_from_checkpoint, .metavar = "DIR",
         .help = "continue from a checkpoint folder, or True: the newest DIR/checkpoint-N\n"
                 "(weights, AdamW state, data position, shuffle state, log history)"},
        {"--resume", FC_FLAG_TRUE, &resume, .help = "same as --resume-from-checkpoint True"},
        {NULL, FC_FLAG_SECTION, .help = "LoRA (FastChat train_lora.py / PEFT LoraConfig)"},
        {"--lora-r", FC_FLAG_INT, &a.lora_r, .min = 0, .max = 65536, .metavar = "R",
         .help = "train rank-R adapters over the frozen base, saved in PEFT's layout (0: full fine-tuning)"},
        {"--lora-alpha", FC_FLAG_DOUBLE, &a.lora_alpha, .min = 0, .max = 1e6, .metavar = "A",
         .help = "scaling alpha / r (16)"},
        {"--lora-dropout", FC_FLAG_DOUBLE, &a.lora_dropout, .min = 0, .max = 0.999, .metavar = "P",
         .help = "dropout on the adapters' input (0.05)"},
        {"--lora-target-modules", FC_FLAG_STRING, &a.lora_target_modules, .metavar = "LIST",
         .help = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj (q_proj,v_proj)"},
        {"--q-lora", FC_FLAG_FUNC, &a.q_lora, .metavar = "BOOL", .fn = parse_bool,
         .help = "QLoRA: the frozen base matrices stay in their stored\n"
                 "(quantized GGUF) type, dequantized a tile at a time (False)"},
        {NULL, FC_FLAG_SECTION, .help = "evaluation and logging"},
        {"--eval-data-path", FC_FLAG_STRING, &a.eval_data_path, .metavar = "F",
         .help = "conversations to evaluate the loss on (masked as the training data)"},
        {"--eval-steps", FC_FLAG_INT64, &a.eval_steps,
         .min = 0, .max = 1e12, .metavar = "N", .help = "evaluate every N steps and at the end (0: at the end)"},
        {"--per-device-eval-batch-size", FC_FLAG_INT, &a.per_device_eval_batch_size,
         .min = 1, .max = 65536, .metavar = "N", .help = "examples per eval batch (8)"},
        {"--seed", FC_FLAG_UINT64, &a.seed, .metavar = "S", .help = "shuffle seed (42)"},
        {"--gradient-checkpointing", FC_FLAG_FUNC, &a.gradient_checkpointing, .metavar = "BOOL",
         .fn = parse_bool, .help = "recompute each layer's activations in the backward pass:\n"
                                   "less memory, same gradients (False)"},
        {"--threads", FC_FLAG_INT, &a.n_threads,
         .min = 0, .max = 4096, .metavar = "N", .help = "CPU threads (all)"},
        {"-v|--verbose", FC_FLAG_FUNC0, .fn = fc_cli_flag_verbose,
         .help = "log more, with the time of each phase of a training step at the end"},
        {"--bf16", FC_FLAG_FUNC, &a.bf16, .metavar = "BOOL", .fn = parse_bool,
         .help = "bf16 compute for the frozen base of LoRA on a CPU with AMX-BF16\n"
                 "(bf16 weights and activations, f32 sums; elsewhere f32) (False)"},
        /* FastChat / TrainingArguments flags with no effect here */
        {"--fp16|--tf32|--lazy-preprocess|--fsdp|"
         "--fsdp-transformer-layer-cls-to-wrap|--save-strategy|"
         "--evaluation-strategy|--eval-strategy|--do-eval|--logging-steps|--report-to|--cache-dir|--optim|"
         "--padding-side|--trust-remote-code|--deepspeed|--ddp-timeout|--dataloader-num-workers",
         FC_FLAG_IGNORE, NULL, .seen = &ignored_seen},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat train --model-path M --data-path F --output-dir DIR [options]",
        .about = "supervised fine-tuning on conversations, as FastChat's train.py: the vicuna\n"
                 "template, loss on the assistant replies only, AdamW, f32 on the CPU\n",
        .flags = flags,
        .footer = "FastChat's --fp16, --tf32, --fsdp, --lazy-preprocess, ...\n"
                  "are accepted and ignored.\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    const char *hint = "fastchat train --model-path M --data-path F --output-dir DIR; see --help";
    if (!a.model_path) fc_cli_die(hint, "--model-path is required");
    if (!a.data_path) fc_cli_die(hint, "--data-path is required");
    if (!a.output_dir) fc_cli_die(hint, "--output-dir is required");
    if (!fc_lr_type_known(a.lr_scheduler_type))
        fc_cli_die("linear, cosine, constant or constant_with_warmup", "--lr-scheduler-type %s is not known",
                   a.lr_scheduler_type);
    if (resume && !a.resume_from_checkpoint) a.resume_from_checkpoint = "True";
    if (!strcmp(masking, "template")) a.masking = 1;
    else if (strcmp(masking, "fschat") != 0)
        fc_cli_die("fschat or template", "--masking %s is not known", masking);
    if (a.lora_r > 0 && !fc_lora_parse_targets(a.lora_target_modules))
        fc_cli_die("q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                   "--lora-target-modules %s is not known", a.lora_target_modules);
    if (a.q_lora && a.lora_r <= 0) fc_cli_die("--lora-r 8 (train_lora.py's --q_lora trains adapters)",
                                              "--q-lora True needs LoRA (--lora-r)");
    if (a.conv_template && !fc_conv_template_exists(a.conv_template))
        fc_cli_die("fastchat templates lists them", "--conv-template %s is not known", a.conv_template);
    if (fc_dist_init(NULL, NULL) != FC_OK)
        fc_cli_die("run it without mpirun, or rebuild with libopenmpi-dev installed", "%s", fc_last_error());
    const int rank = fc_dist_rank(), world = fc_dist_world();
    if (ignored_seen && rank == 0) fprintf(stderr, "note: flags for GPUs and distributed runs are ignored\n");
    enum fc_status st = fc_trainer_run(&a, progress, &a);
    if (st != FC_OK) {
        if (world > 1) {
            fprintf(stderr, "error: rank %d: training failed: %s\n", rank, fc_last_error());
            fc_dist_abort(1); /* the other ranks may be waiting in a collective */
        }
        fc_cli_die(NULL, "training failed: %s", fc_last_error());
    }
    long *rss = fc_xcalloc((size_t)world, sizeof(long));
    fc_dist_peak_rss(rss);
    if (rank == 0) {
        printf("saved %s\nlog %s/train_log.txt, loss curve %s/loss_curve.svg\n", a.output_dir, a.output_dir,
               a.output_dir);
        printf("peak RSS per process (MiB, %d process%s):", world, world > 1 ? "es" : "");
        for (int r = 0; r < world; r++) printf(" %.1f", (double)rss[r] / 1024.0);
        printf("\n");
    }
    free(rss);
    fc_dist_finalize();
    return 0;
}
