/*
 * cmd_data.c: `fastchat data <tool> [flags]`, FastChat's ShareGPT data
 * scripts (python3 -m fastchat.data.<script>) with the scripts' own flag
 * names, one flag table per tool (base/flags.h), read as argparse reads
 * them: "--flag value" or "--flag=value", unique prefixes ("--in" for
 * "--in-file"), nargs="+" for merge's --in-file. The work is in src/data
 * (data.h). Threads: all online CPUs, or FASTCHAT_DATA_THREADS (the output
 * never depends on it).
 */
#include "cli.h"
#include "base/fc_base.h"
#include "data/data.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tool {
    const char *name;   /* our subcommand */
    const char *script; /* FastChat's module */
    int (*run)(const char *name, int argc, char **argv);
    const char *help;
} tool;

/* Reads a tool's flags (exit 2 on a bad command line, 0 after --help). */
static void parse_flags(const char *name, const char *script, int argc, char **argv, const fc_flag *fl)
{
    char usage[96], about[96];
    snprintf(usage, sizeof usage, "fastchat data %s [options]", name);
    snprintf(about, sizeof about, "  FastChat's python3 -m fastchat.data.%s\n", script);
    const fc_flags_cmd cmd = {.usage = usage, .about = about, .flags = fl, .abbrev = true};
    fc_flags_parse_or_exit(&cmd, argc, argv);
}

static void need(const char *name, const char *flagname, const void *v)
{
    if (!v) {
        fprintf(stderr, "error: data %s: the following arguments are required: --%s\n", name, flagname);
        exit(2);
    }
}

/* optional_clean's --keep-lang: argparse's choices=["all", "en"] */
static const char *on_keep_lang(const fc_flag *f, const char *v, void *dst)
{
    (void)f;
    static char why[96];
    if (strcmp(v, "all") && strcmp(v, "en")) {
        snprintf(why, sizeof why, "invalid choice: '%.40s' (choose from 'all', 'en')", v);
        return why;
    }
    *(const char **)dst = v;
    return NULL;
}

static fc_data_opts opts(void)
{
    fc_data_opts o = {0};
    o.progress = isatty(2);
    const char *t = getenv("FASTCHAT_DATA_THREADS"); /* for tests: results never depend on it */
    if (t) o.n_threads = atoi(t);
    return o;
}

static int done(bool ok)
{
    fflush(stdout);
    if (!ok) fc_cli_die(NULL, "%s", fc_last_error());
    return 0;
}

static fc_tokenizer *load_tok(const char *path)
{
    if (!path) path = fc_cli_default_model();
    fc_tokenizer *t = fc_tokenizer_load(path);
    if (!t)
        fc_cli_die("--model-name-or-path takes a GGUF file or a Hugging Face folder with tokenizer.json",
                   "%s", fc_last_error());
    return t;
}

/* ---- one function per tool ---- */

static int t_merge(const char *name, int argc, char **argv)
{
    fc_flag_list in = {0};
    const char *out = "merged.json";
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_NARGS, &in, .metavar = "FILE", .help = "input files (one or more; required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE", .help = "output (default merged.json)"},
        {0},
    };
    parse_flags(name, "merge", argc, argv, fl);
    need(name, "in-file", in.v);
    fc_data_opts o = opts();
    bool ok = fc_data_merge(in.v, in.n, out, &o);
    fc_flag_list_free(&in);
    return done(ok);
}

static int t_sample(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = "sampled.json";
    int64_t begin = 0, end = 100, max_length = 1024;
    bool keep = false;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "input (required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE", .help = "output (default sampled.json)"},
        {"--begin", FC_FLAG_INT64, &begin, .help = "first index after the shuffle (default 0)"},
        {"--end", FC_FLAG_INT64, &end, .help = "end index (default 100)"},
        {"--max-length", FC_FLAG_INT64, &max_length, .help = "skip samples longer than this many characters (1024)"},
        {"--keep-order", FC_FLAG_TRUE, &keep, .help = "no shuffle (default: numpy seed 42 shuffle)"},
        {0},
    };
    parse_flags(name, "sample", argc, argv, fl);
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(fc_data_sample(in, out, begin, end, max_length, keep, &o));
}

static int t_split_train_test(const char *name, int argc, char **argv)
{
    const char *in = NULL;
    int64_t begin = 0, end = 100;
    double ratio = 0.9;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE",
         .help = "input (required); writes *_train.json and *_test.json"},
        {"--begin", FC_FLAG_INT64, &begin, .help = "accepted and unused, as in FastChat"},
        {"--end", FC_FLAG_INT64, &end, .help = "accepted and unused, as in FastChat"},
        {"--ratio", FC_FLAG_DOUBLE, &ratio, .help = "train fraction (default 0.9)"},
        {0},
    };
    parse_flags(name, "split_train_test", argc, argv, fl);
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(fc_data_split_train_test(in, ratio, &o));
}

static int t_filter_wrong_format(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "input (required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE", .help = "output (required)"},
        {0},
    };
    parse_flags(name, "filter_wrong_format", argc, argv, fl);
    need(name, "in-file", in);
    need(name, "out-file", out);
    fc_data_opts o = opts();
    return done(fc_data_filter_wrong_format(in, out, &o));
}

static int t_extract(const char *name, int argc, char **argv)
{
    bool gpt4 = strstr(name, "gpt4") != NULL;
    const char *in = NULL, *out = NULL;
    int64_t begin = 0, end = 0;
    bool has_b = false, has_e = false;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "input (required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE",
         .help = gpt4 ? "output (default: *_gpt4.json)" : "output (default: *_single.json)"},
        {"--begin", FC_FLAG_INT64, &begin, .seen = &has_b, .help = "slice start"},
        {"--end", FC_FLAG_INT64, &end, .seen = &has_e, .help = "slice end"},
        {0},
    };
    parse_flags(name, gpt4 ? "extract_gpt4_only" : "extract_single_round", argc, argv, fl);
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(gpt4 ? fc_data_extract_gpt4_only(in, out, begin, has_b, end, has_e, &o)
                     : fc_data_extract_single_round(in, out, begin, has_b, end, has_e, &o));
}

static int t_convert_alpaca(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "Alpaca JSON: [{instruction, input, output}]"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE", .help = "output"},
        {0},
    };
    parse_flags(name, "convert_alpaca", argc, argv, fl);
    need(name, "in-file", in);
    need(name, "out-file", out);
    fc_data_opts o = opts();
    return done(fc_data_convert_alpaca(in, out, &o));
}

static int t_hardcoded(const char *name, int argc, char **argv)
{
    const char *out = "hardcoded.json", *who = "Vicuna", *org = "Large Model Systems Organization (LMSYS)";
    const fc_flag fl[] = {
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE",
         .help = "output (default hardcoded.json, as FastChat)"},
        {"--name", FC_FLAG_STRING, &who, .help = "the model's name (ours; FastChat: Vicuna)"},
        {"--org", FC_FLAG_STRING, &org, .help = "who trained it (ours; FastChat: LMSYS)"},
        {0},
    };
    parse_flags(name, "hardcoded_questions", argc, argv, fl);
    fc_data_opts o = opts();
    return done(fc_data_hardcoded_questions(out, who, org, &o));
}

static int t_optional_clean(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *keep = "all", *skip = NULL;
    bool rep = false;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "input (required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE",
         .help = "output (default sharegpt_clean[_en][_skip_X][_reduce_rep].json)"},
        {"--keep-lang", FC_FLAG_FUNC, &keep, .fn = on_keep_lang, .metavar = "all|en",
         .help = "all | en (default all)"},
        {"--skip-lang", FC_FLAG_STRING, &skip, .help = "skip one language code"},
        {"--reduce-rep", FC_FLAG_TRUE, &rep, .help = "drop samples with a digit repeated 9 times"},
        {0},
    };
    parse_flags(name, "optional_clean", argc, argv, fl);
    need(name, "in-file", in);
    if (strcmp(keep, "all") && skip) fc_cli_die(NULL, "--keep-lang and --skip-lang cannot be combined");
    char def[256];
    if (!out) {
        snprintf(def, sizeof def, "sharegpt_clean%s%s%s%s%s.json", strcmp(keep, "all") ? "_" : "",
                 strcmp(keep, "all") ? keep : "", skip ? "_skip_" : "", skip ? skip : "",
                 rep ? "_reduce_rep" : "");
        out = def;
    }
    fc_data_opts o = opts();
    return done(fc_data_optional_clean(in, out, keep, skip, rep, &o));
}

static int t_split_long(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = "sharegpt_split.json", *model = NULL;
    int64_t begin = 0, end = 0, max_length = 2048;
    bool has_b = false, has_e = false;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "input (required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE", .help = "output (default sharegpt_split.json)"},
        {"--begin", FC_FLAG_INT64, &begin, .seen = &has_b, .help = "slice start"},
        {"--end", FC_FLAG_INT64, &end, .seen = &has_e, .help = "slice end"},
        {"--model-name-or-path", FC_FLAG_STRING, &model, .metavar = "PATH",
         .help = "GGUF file or HF folder whose tokenizer counts (default: the default model)"},
        {"--max-length", FC_FLAG_INT64, &max_length, .help = "token budget per sample (default 2048)"},
        {0},
    };
    parse_flags(name, "split_long_conversation", argc, argv, fl);
    need(name, "in-file", in);
    fc_tokenizer *tok = load_tok(model);
    fc_data_opts o = opts();
    bool ok = fc_data_split_long(in, out, begin, has_b, end, has_e, tok, max_length, &o);
    fc_tokenizer_free(tok);
    return done(ok);
}

static int t_stats(const char *name, int argc, char **argv)
{
    const char *in = NULL, *model = NULL;
    bool by_role = false;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "input (required)"},
        {"--model-name-or-path", FC_FLAG_STRING, &model, .metavar = "PATH",
         .help = "tokenizer (default: the default model)"},
        {"--by-role", FC_FLAG_TRUE, &by_role, .help = "also a table of turns and tokens per role (ours)"},
        {0},
    };
    parse_flags(name, "get_stats", argc, argv, fl);
    need(name, "in-file", in);
    fc_tokenizer *tok = load_tok(model);
    fc_data_opts o = opts();
    bool ok = fc_data_stats(in, tok, by_role, &o);
    fc_tokenizer_free(tok);
    return done(ok);
}

static int t_clean_sharegpt(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = "sharegpt_clean.json";
    int64_t begin = 0, end = 0;
    bool has_b = false, has_e = false, debug = false;
    const fc_flag fl[] = {
        {"--in-file", FC_FLAG_STRING, &in, .metavar = "FILE", .help = "ShareGPT HTML export (required)"},
        {"--out-file", FC_FLAG_STRING, &out, .metavar = "FILE", .help = "output (default sharegpt_clean.json)"},
        {"--begin", FC_FLAG_INT64, &begin, .seen = &has_b, .help = "slice start"},
        {"--end", FC_FLAG_INT64, &end, .seen = &has_e, .help = "slice end"},
        {"--debug", FC_FLAG_TRUE, &debug, .help = "accepted, unused (as in FastChat)"},
        {0},
    };
    parse_flags(name, "clean_sharegpt", argc, argv, fl);
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(fc_data_clean_sharegpt(in, out, begin, has_b, end, has_e, &o));
}

static const tool TOOLS[] = {
    {"clean-sharegpt", "clean_sharegpt", t_clean_sharegpt, "HTML to Markdown, drop bad and duplicate samples"},
    {"optional-clean", "optional_clean", t_optional_clean, "language filter, --reduce-rep"},
    {"split-long", "split_long_conversation", t_split_long, "split conversations longer than --max-length tokens"},
    {"filter-wrong-format", "filter_wrong_format", t_filter_wrong_format, "drop samples with broken list numbering"},
    {"hardcoded-questions", "hardcoded_questions", t_hardcoded, "write the identity Q&A set (hardcoded.json)"},
    {"sample", "sample", t_sample, "shuffle (seed 42) and take a range"},
    {"merge", "merge", t_merge, "concatenate conversation files"},
    {"split-train-test", "split_train_test", t_split_train_test, "seed-0 permutation into *_train / *_test"},
    {"stats", "get_stats", t_stats, "sequences, tokens, turns, lengths, histogram"},
    {"convert-alpaca", "convert_alpaca", t_convert_alpaca, "Alpaca instruction data to conversations"},
    {"extract-gpt4-only", "extract_gpt4_only", t_extract, "keep samples whose model is gpt4 or unset"},
    {"extract-single-round", "extract_single_round", t_extract, "keep the first question and answer"},
};

static void data_usage(FILE *f)
{
    fprintf(f, "usage: fastchat data <tool> [flags]   (FastChat's python3 -m fastchat.data.*)\n\ntools:\n");
    for (size_t i = 0; i < FC_ARRAY_LEN(TOOLS); i++)
        fprintf(f, "  %-21s %s\n", TOOLS[i].name, TOOLS[i].help);
    fprintf(f, "\nFastChat's script names (split_long_conversation, get_stats, ...) work too.\n"
               "run 'fastchat data <tool> --help' for its flags\n");
}

int fc_cmd_data(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        data_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* errors reach the user once, as the one "error: ..." line of done() */
    if (fc_log_get_level() < FC_LOG_LEVEL_NONE) fc_log_set_level(FC_LOG_LEVEL_NONE);
    char name[64];
    snprintf(name, sizeof name, "%s", argv[1]);
    for (char *p = name; *p; p++)
        if (*p == '_') *p = '-';
    for (size_t i = 0; i < FC_ARRAY_LEN(TOOLS); i++) {
        char script[64];
        snprintf(script, sizeof script, "%s", TOOLS[i].script);
        for (char *p = script; *p; p++)
            if (*p == '_') *p = '-';
        if (!strcmp(name, TOOLS[i].name) || !strcmp(name, script))
            return TOOLS[i].run(TOOLS[i].name, argc - 1, argv + 1);
    }
    fprintf(stderr, "error: data: unknown tool '%s'\n", argv[1]);
    data_usage(stderr);
    return 2;
}
