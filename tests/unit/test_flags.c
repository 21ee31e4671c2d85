/*
 * test_flags.c: the parts of the flag parser (base/flags.h) that commands
 * with argparse-style command lines ask for: positional arguments collected
 * in order with a repeatable flag (leaderboard's logs and --log-dir),
 * argparse's unique-prefix abbreviations and nargs='+' (the data tools).
 * The rest of the parser is tested in test_base.c.
 */
#include "base/flags.h"
#include "test_util.h"

#include <string.h>

static fc_flag_list files, ins;
static const char *out;
static int64_t begin, end;
static bool keep, end_seen;

static const fc_flag FLAGS[] = {
    {"--in-file", FC_FLAG_NARGS, &ins, .metavar = "FILE", .help = "inputs"},
    {"--out-file", FC_FLAG_STRING, &out, .help = "output"},
    {"--log-dir", FC_FLAG_LIST, &files, .help = "logs"},
    {"--begin", FC_FLAG_INT64, &begin, .help = "start"},
    {"--end", FC_FLAG_INT64, &end, .seen = &end_seen, .help = "end"},
    {"--exclude", FC_FLAG_IGNORE, .help = "dropped"},
    {"--keep-order", FC_FLAG_TRUE, &keep, .help = "no shuffle"},
    {0},
};
static fc_flags_cmd CMD = {"fastchat demo [options] [FILE ...]", NULL, FLAGS, NULL, &files, true};

static void reset(void)
{
    fc_flag_list_free(&files);
    fc_flag_list_free(&ins);
    out = NULL;
    begin = end = 0;
    keep = end_seen = false;
}

static enum fc_flags_result parse(const char *line, char *err)
{
    static char buf[512];
    char *argv[32];
    int argc = 0;
    reset();
    snprintf(buf, sizeof buf, "demo %s", line);
    for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    err[0] = 0;
    return fc_flags_parse(&CMD, argc, argv, err, 256);
}

#define FLAG_ERR(line, want) do { \
    char e_[256]; \
    CHECKF(parse(line, e_) == FC_FLAGS_ERROR && !strcmp(e_, want), "%s: got '%s'", line, e_); \
} while (0)

int main(void)
{
    char err[256];
    /* positional arguments and --log-dir land in one list, in order */
    CHECK(parse("a --log-dir d b - --keep-order", err) == FC_FLAGS_OK);
    CHECK(files.n == 4 && !strcmp(files.v[0], "a") && !strcmp(files.v[1], "d") && !strcmp(files.v[2], "b") &&
          !strcmp(files.v[3], "-") && keep);

    /* nargs='+': values up to the next flag; negative numbers are values */
    CHECK(parse("--in-file x y -3 --out-file o z", err) == FC_FLAGS_OK);
    CHECK(ins.n == 3 && !strcmp(ins.v[0], "x") && !strcmp(ins.v[1], "y") && !strcmp(ins.v[2], "-3"));
    CHECK(!strcmp(out, "o") && files.n == 1 && !strcmp(files.v[0], "z"));
    CHECK(parse("--in-file=x y --in-file w", err) == FC_FLAGS_OK);
    CHECK(ins.n == 1 && !strcmp(ins.v[0], "w")); /* argparse: the last occurrence */
    FLAG_ERR("--in-file", "--in-file needs a value");
    FLAG_ERR("--in-file --out-file o", "--in-file needs a value");

    /* abbreviations: a prefix only one flag has; exact names first */
    CHECK(parse("--in a b --out o --keep --b 2 --en -1", err) == FC_FLAGS_OK);
    CHECK(ins.n == 2 && !strcmp(out, "o") && keep && begin == 2 && end == -1 && end_seen);
    CHECK(parse("--out_f=o --log_d d", err) == FC_FLAGS_OK && !strcmp(out, "o") && files.n == 1);
    FLAG_ERR("--e 1", "ambiguous option --e (could be --end, --exclude)");
    FLAG_ERR("--ends 1", "unknown option --ends (did you mean --end?)");
    FLAG_ERR("--en x", "--end: 'x' is not an integer");
    FLAG_ERR("--keep=1", "--keep-order takes no value");
    FLAG_ERR("-k", "unknown option -k (run with --help for the options)");

    /* without abbrev and args, both are errors as before */
    CMD.abbrev = false;
    CMD.args = NULL;
    FLAG_ERR("--out o", "unknown option --out (run with --help for the options)");
    FLAG_ERR("stray", "unexpected argument 'stray' (run with --help for the options)");
    reset();

    char *text = NULL;
    size_t tl = 0;
    FILE *f = open_memstream(&text, &tl);
    fc_flags_print_help(&CMD, f);
    fclose(f);
    CHECK(strstr(text, "  --in-file FILE ... ") != NULL);
    free(text);
    return TEST_END();
}
