/*
 * flags.h: the table-driven command-line flag parser of the fastchat
 * subcommands (llama.cpp's common_arg and Python's argparse are the
 * models). Each subcommand describes its flags in one table of
 * {names, kind, destination, range, metavar, help}; the parser reads argv
 * against it and writes --help from it. Adding a flag is one table line.
 *
 * For the cli/ layer only: fc_flags_parse_or_exit() exits the process (2 on a
 * bad command line, 0 after --help), which only cli/ may do (STYLE.md).
 * fc_flags_parse() itself never exits, so it can be unit-tested.
 *
 * Spellings: a flag name matches with '_' and '-' taken as the same
 * character after the leading dashes, as FastChat's argparse flags are
 * spelt either way ("--repetition_penalty" = "--repetition-penalty").
 * A value is the next argument (whatever it starts with, so "--temperature
 * -1" works) or follows '=' ("--port=8000"). "-h" and "--help" print the
 * help. Arguments that are not flags are an error, unless the command
 * collects them (fc_flags_cmd.args: `leaderboard LOG ...`). A command may
 * also accept argparse's abbreviations (fc_flags_cmd.abbrev: "--in" for
 * "--in-file" when no other flag starts so), as FastChat's scripts do.
 *
 * Errors are one line naming the flag (as it was given; an abbreviation
 * by its first spelling in the table):
 *   error: --port: 'x' is not an integer
 *   error: --port: 70000 is out of range (0 to 65535)
 *   error: --model-path needs a value
 *   error: unknown option --temprature (did you mean --temperature?)
 *   error: ambiguous option --e (could be --end, --exclude)
 * The suggestion is the flag nearest by edit distance, when it is near.
 */
#ifndef FC_FLAGS_H
#define FC_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum fc_flag_kind {
    FC_FLAG_END = 0, /* table terminator (all fields zero) */
    FC_FLAG_SECTION, /* no flag: `help` is a heading line in --help */
    FC_FLAG_TRUE,    /* no value: *(bool *)dst = true */
    FC_FLAG_FALSE,   /* no value: *(bool *)dst = false ("--no-history") */
    FC_FLAG_INT,     /* int */
    FC_FLAG_INT64,   /* int64_t */
    FC_FLAG_UINT64,  /* uint64_t (seeds); a leading '-' is an error */
    FC_FLAG_FLOAT,   /* float */
    FC_FLAG_DOUBLE,  /* double */
    FC_FLAG_STRING,  /* const char *, borrowed from argv */
    FC_FLAG_LIST,    /* repeatable: each value appended to an fc_flag_list */
    FC_FLAG_FUNC,    /* fn(flag, value, dst) */
    FC_FLAG_FUNC0,   /* no value: fn(flag, NULL, dst) */
    FC_FLAG_IGNORE,  /* accepted and dropped, with a value (FastChat flags we do not honour) */
    FC_FLAG_IGNORE0, /* accepted and dropped, no value */
    FC_FLAG_NARGS,   /* argparse's nargs='+': the value and the arguments after it
                        up to the next flag, into an fc_flag_list (a second
                        occurrence replaces the first, as in argparse) */
};

typedef struct fc_flag fc_flag;

/* FC_FLAG_FUNC(0): returns NULL when the value is taken, else the reason it
 * is not, printed as "error: <flag>: <reason>" (a static string, or one in a
 * buffer the function owns). This is how order-dependent flags are written:
 * serve's repeated --model-path, with the --model-names that follow it. */
typedef const char *(*fc_flag_fn)(const fc_flag *flag, const char *value, void *dst);

struct fc_flag {
    const char *names;     /* "--port" or "-v|--verbose|..." ('|' between spellings) */
    enum fc_flag_kind kind;
    void *dst;             /* where the value goes (type from kind); fn's context for FUNC */
    double min, max;       /* numbers: the inclusive range accepted; both 0 = any */
    const char *metavar;   /* "N", "PATH" in --help; NULL: from the kind */
    const char *help;      /* one line of --help; NULL hides the flag */
    fc_flag_fn fn;         /* FC_FLAG_FUNC(0) */
    bool *seen;            /* when not NULL, set true when the flag is given */
};

/* FC_FLAG_LIST's destination; values borrowed from argv. Free v with free()
 * (or fc_flag_list_free). */
typedef struct fc_flag_list {
    const char **v;
    int n, cap;
} fc_flag_list;
void fc_flag_list_free(fc_flag_list *l);

typedef struct fc_flags_cmd {
    const char *usage;      /* after "usage: ", e.g. "fastchat serve [options]" */
    const char *about;      /* lines printed after the usage line, or NULL */
    const fc_flag *flags;   /* ended by an entry of kind FC_FLAG_END */
    const char *footer;     /* lines printed after the flags, or NULL */
    fc_flag_list *args;     /* when not NULL, the arguments that are not flags are
                               appended here (in order); NULL: they are an error */
    bool abbrev;            /* a long flag may be given as a prefix that only it has */
} fc_flags_cmd;

enum fc_flags_result {
    FC_FLAGS_OK = 0,
    FC_FLAGS_HELP = 1,      /* -h / --help was given (nothing after it is read) */
    FC_FLAGS_ERROR = -1,    /* err holds the one-line message, without "error: " */
};

/* Reads argv[1..argc) (argv[0] is the subcommand) into the destinations of
 * cmd->flags, in order. Never exits, prints nothing. */
enum fc_flags_result fc_flags_parse(const fc_flags_cmd *cmd, int argc, char **argv, char *err, size_t err_len);

/* fc_flags_parse for cli/: --help prints the help to stdout and exits 0; an
 * error prints "error: <message>" (one line) to stderr and exits 2. */
void fc_flags_parse_or_exit(const fc_flags_cmd *cmd, int argc, char **argv);

/* Writes the help: the usage line, `about`, one line per visible flag
 * (spellings, metavar, help), section headings, `footer`. */
void fc_flags_print_help(const fc_flags_cmd *cmd, FILE *f);

#endif
