/*
 * cmd_data.c: `fastchat data <tool> [flags]`, FastChat's ShareGPT data
 * scripts (python3 -m fastchat.data.<script>) with the scripts' own flag
 * names. Flags are parsed as argparse parses them: "--flag value" or
 * "--flag=value", unique prefixes ("--in" for "--in-file"), nargs="+" for
 * merge's --in-file. The work is in src/data (data.h). Threads: all online
 * CPUs, or FASTCHAT_DATA_THREADS (the output never depends on it).
 */
#include "cli.h"
#include "base/fc_base.h"
#include "data/data.h"
#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum fkind { F_STR, F_INT, F_FLOAT, F_BOOL, F_STRS };

typedef struct flag {
    const char *name;  /* without the leading "--" */
    enum fkind kind;
    void *dst;         /* const char **, long long *, double *, bool *, strs * */
    bool *given;       /* set when the flag appears (may be NULL) */
    const char *help;
} flag;

typedef struct strs {
    const char **v;
    int n;
} strs;

typedef struct tool {
    const char *name;   /* our subcommand */
    const char *script; /* FastChat's module */
    int (*run)(const char *name, int argc, char **argv);
    const char *help;
} tool;

static void usage_flags(const char *name, const char *script, const flag *fl, int nf)
{
    fprintf(stderr, "usage: fastchat data %s [flags]   (python3 -m fastchat.data.%s)\n", name, script);
    for (int i = 0; i < nf; i++)
        fprintf(stderr, "  --%-20s %s\n", fl[i].name, fl[i].help);
}

static int parse_flags(const char *name, const char *script, int argc, char **argv, flag *fl, int nf)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage_flags(name, script, fl, nf);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "error: data %s: unrecognized argument '%s'\n", name, a);
            exit(2);
        }
        const char *key = a + 2, *eq = strchr(key, '=');
        size_t kl = eq ? (size_t)(eq - key) : strlen(key);
        int hit = -1, n_hits = 0;
        for (int k = 0; k < nf; k++) {
            if (strlen(fl[k].name) == kl && !strncmp(fl[k].name, key, kl)) { hit = k; n_hits = 1; break; }
            if (!strncmp(fl[k].name, key, kl)) { hit = k; n_hits++; }
        }
        if (n_hits != 1) {
            fprintf(stderr, "error: data %s: %s argument '--%.*s'\n", name,
                    n_hits ? "ambiguous" : "unrecognized", (int)kl, key);
            fprintf(stderr, "hint: fastchat data %s --help lists the flags\n", name);
            exit(2);
        }
        flag *f = &fl[hit];
        if (f->given) *f->given = true;
        if (f->kind == F_BOOL) {
            if (eq) {
                fprintf(stderr, "error: data %s: --%s takes no value\n", name, f->name);
                exit(2);
            }
            *(bool *)f->dst = true;
            continue;
        }
        if (f->kind == F_STRS) {
            strs *s = f->dst;
            s->n = 0;
            s->v = fc_xmalloc((size_t)(argc + 1) * sizeof(char *));
            if (eq) s->v[s->n++] = eq + 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) s->v[s->n++] = argv[++i];
            if (!s->n) {
                fprintf(stderr, "error: data %s: --%s expects at least one argument\n", name, f->name);
                exit(2);
            }
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "error: data %s: --%s expects one argument\n", name, f->name);
            exit(2);
        }
        char *end;
        if (f->kind == F_STR) {
            *(const char **)f->dst = val;
        } else if (f->kind == F_INT) {
            long long v = strtoll(val, &end, 10);
            if (end == val || *end) {
                fprintf(stderr, "error: data %s: --%s: invalid int value: '%s'\n", name, f->name, val);
                exit(2);
            }
            *(long long *)f->dst = v;
        } else {
            double v = strtod(val, &end);
            if (end == val || *end) {
                fprintf(stderr, "error: data %s: --%s: invalid float value: '%s'\n", name, f->name, val);
                exit(2);
            }
            *(double *)f->dst = v;
        }
    }
    return 0;
}

static void need(const char *name, const char *flagname, const void *v)
{
    if (!v) {
        fprintf(stderr, "error: data %s: the following arguments are required: --%s\n", name, flagname);
        exit(2);
    }
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

#define NF(a) ((int)FC_ARRAY_LEN(a))

/* ---- one function per tool ---- */

static int t_merge(const char *name, int argc, char **argv)
{
    strs in = {0};
    const char *out = "merged.json";
    flag fl[] = {{"in-file", F_STRS, &in, NULL, "input files (one or more; required)"},
                 {"out-file", F_STR, &out, NULL, "output (default merged.json)"}};
    parse_flags(name, "merge", argc, argv, fl, NF(fl));
    need(name, "in-file", in.v);
    fc_data_opts o = opts();
    bool ok = fc_data_merge(in.v, in.n, out, &o);
    free(in.v);
    return done(ok);
}

static int t_sample(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = "sampled.json";
    long long begin = 0, end = 100, max_length = 1024;
    bool keep = false;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required)"},
                 {"out-file", F_STR, &out, NULL, "output (default sampled.json)"},
                 {"begin", F_INT, &begin, NULL, "first index after the shuffle (default 0)"},
                 {"end", F_INT, &end, NULL, "end index (default 100)"},
                 {"max-length", F_INT, &max_length, NULL, "skip samples longer than this many characters (1024)"},
                 {"keep-order", F_BOOL, &keep, NULL, "no shuffle (default: numpy seed 42 shuffle)"}};
    parse_flags(name, "sample", argc, argv, fl, NF(fl));
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(fc_data_sample(in, out, begin, end, max_length, keep, &o));
}

static int t_split_train_test(const char *name, int argc, char **argv)
{
    const char *in = NULL;
    long long begin = 0, end = 100;
    double ratio = 0.9;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required); writes *_train.json and *_test.json"},
                 {"begin", F_INT, &begin, NULL, "accepted and unused, as in FastChat"},
                 {"end", F_INT, &end, NULL, "accepted and unused, as in FastChat"},
                 {"ratio", F_FLOAT, &ratio, NULL, "train fraction (default 0.9)"}};
    parse_flags(name, "split_train_test", argc, argv, fl, NF(fl));
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(fc_data_split_train_test(in, ratio, &o));
}

static int t_filter_wrong_format(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required)"},
                 {"out-file", F_STR, &out, NULL, "output (required)"}};
    parse_flags(name, "filter_wrong_format", argc, argv, fl, NF(fl));
    need(name, "in-file", in);
    need(name, "out-file", out);
    fc_data_opts o = opts();
    return done(fc_data_filter_wrong_format(in, out, &o));
}

static int t_extract(const char *name, int argc, char **argv)
{
    bool gpt4 = strstr(name, "gpt4") != NULL;
    const char *in = NULL, *out = NULL;
    long long begin = 0, end = 0;
    bool has_b = false, has_e = false;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required)"},
                 {"out-file", F_STR, &out, NULL, gpt4 ? "output (default: *_gpt4.json)" : "output (default: *_single.json)"},
                 {"begin", F_INT, &begin, &has_b, "slice start"},
                 {"end", F_INT, &end, &has_e, "slice end"}};
    parse_flags(name, gpt4 ? "extract_gpt4_only" : "extract_single_round", argc, argv, fl, NF(fl));
    need(name, "in-file", in);
    fc_data_opts o = opts();
    return done(gpt4 ? fc_data_extract_gpt4_only(in, out, begin, has_b, end, has_e, &o)
                     : fc_data_extract_single_round(in, out, begin, has_b, end, has_e, &o));
}

static int t_convert_alpaca(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "Alpaca JSON: [{instruction, input, output}]"},
                 {"out-file", F_STR, &out, NULL, "output"}};
    parse_flags(name, "convert_alpaca", argc, argv, fl, NF(fl));
    need(name, "in-file", in);
    need(name, "out-file", out);
    fc_data_opts o = opts();
    return done(fc_data_convert_alpaca(in, out, &o));
}

static int t_hardcoded(const char *name, int argc, char **argv)
{
    const char *out = "hardcoded.json", *who = "Vicuna", *org = "Large Model Systems Organization (LMSYS)";
    flag fl[] = {{"out-file", F_STR, &out, NULL, "output (default hardcoded.json, as FastChat)"},
                 {"name", F_STR, &who, NULL, "the model's name (ours; FastChat: Vicuna)"},
                 {"org", F_STR, &org, NULL, "who trained it (ours; FastChat: LMSYS)"}};
    parse_flags(name, "hardcoded_questions", argc, argv, fl, NF(fl));
    fc_data_opts o = opts();
    return done(fc_data_hardcoded_questions(out, who, org, &o));
}

static int t_optional_clean(const char *name, int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *keep = "all", *skip = NULL;
    bool rep = false;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required)"},
                 {"out-file", F_STR, &out, NULL, "output (default sharegpt_clean[_en][_skip_X][_reduce_rep].json)"},
                 {"keep-lang", F_STR, &keep, NULL, "all | en (default all)"},
                 {"skip-lang", F_STR, &skip, NULL, "skip one language code"},
                 {"reduce-rep", F_BOOL, &rep, NULL, "drop samples with a digit repeated 9 times"}};
    parse_flags(name, "optional_clean", argc, argv, fl, NF(fl));
    need(name, "in-file", in);
    if (strcmp(keep, "all") && strcmp(keep, "en")) {
        fprintf(stderr, "error: data %s: --keep-lang: invalid choice: '%s' (choose from 'all', 'en')\n",
                name, keep);
        exit(2);
    }
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
    long long begin = 0, end = 0, max_length = 2048;
    bool has_b = false, has_e = false;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required)"},
                 {"out-file", F_STR, &out, NULL, "output (default sharegpt_split.json)"},
                 {"begin", F_INT, &begin, &has_b, "slice start"},
                 {"end", F_INT, &end, &has_e, "slice end"},
                 {"model-name-or-path", F_STR, &model, NULL, "GGUF file or HF folder whose tokenizer counts (default: the default model)"},
                 {"max-length", F_INT, &max_length, NULL, "token budget per sample (default 2048)"}};
    parse_flags(name, "split_long_conversation", argc, argv, fl, NF(fl));
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
    flag fl[] = {{"in-file", F_STR, &in, NULL, "input (required)"},
                 {"model-name-or-path", F_STR, &model, NULL, "tokenizer (default: the default model)"},
                 {"by-role", F_BOOL, &by_role, NULL, "also a table of turns and tokens per role (ours)"}};
    parse_flags(name, "get_stats", argc, argv, fl, NF(fl));
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
    long long begin = 0, end = 0;
    bool has_b = false, has_e = false, debug = false;
    flag fl[] = {{"in-file", F_STR, &in, NULL, "ShareGPT HTML export (required)"},
                 {"out-file", F_STR, &out, NULL, "output (default sharegpt_clean.json)"},
                 {"begin", F_INT, &begin, &has_b, "slice start"},
                 {"end", F_INT, &end, &has_e, "slice end"},
                 {"debug", F_BOOL, &debug, NULL, "accepted, unused (as in FastChat)"}};
    parse_flags(name, "clean_sharegpt", argc, argv, fl, NF(fl));
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
