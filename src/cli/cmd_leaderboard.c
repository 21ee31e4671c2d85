/*
 * cmd_leaderboard.c: `fastchat leaderboard`, the Chatbot Arena leaderboard
 * in the terminal: FastChat 0.2.36's clean_battle_data.py (from raw
 * conversation logs) and elo_analysis.py (ratings) in one command, through
 * arena/battles.h and arena/rating.h. Prints the table the leaderboard tab
 * shows (rank by upper bound, model, Arena score, 95% CI as +x/-y, votes)
 * plus the online Elo, or the whole result as JSON.
 */
#include "cli.h"
#include "arena/battles.h"
#include "arena/rating.h"
#include "base/fc_base.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

static void die_usage(const char *msg)
{
    fprintf(stderr, "error: %s\n", msg);
    fprintf(stderr, "hint: fastchat leaderboard --help\n");
    exit(2);
}

static const char *on_rating_system(const fc_flag *f, const char *v, void *dst)
{
    (void)f;
    int *rs = dst; /* fc_rating_opts.rating_system */
    if (!strcmp(v, "bt")) *rs = FC_RATING_BT;
    else if (!strcmp(v, "elo")) *rs = FC_RATING_ELO;
    else return "takes bt or elo";
    return NULL;
}

/* A JSON list of strings from a file (the --ban-ip-file format). */
static char **read_string_list(const char *path, int *n)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) fc_cli_die(NULL, "%s", fc_last_error());
    cJSON *arr = cJSON_ParseWithLength((const char *)m->data, m->size);
    fc_mmap_free(m);
    if (!cJSON_IsArray(arr)) fc_cli_die("the file holds a JSON list of IP strings", "%s: not a JSON list", path);
    char **out = fc_xmalloc(sizeof(char *) * (size_t)(cJSON_GetArraySize(arr) + 1));
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it)) fc_cli_die("the file holds a JSON list of IP strings", "%s: not a list of strings", path);
        out[k++] = fc_xstrdup(it->valuestring);
    }
    cJSON_Delete(arr);
    *n = k;
    return out;
}

static void read_log_path(fc_battles *set, const char *path, const fc_clean_opts *co)
{
    struct stat st;
    if (stat(path, &st) != 0) fc_cli_die(NULL, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        int n = 0;
        char **files = fc_battles_list_logs(path, &n);
        if (!files) fc_cli_die(NULL, "%s", fc_last_error());
        if (n == 0) fc_cli_die("FastChat writes its logs as {YYYY-MM-DD}-conv.json", "%s: no *-conv.json files", path);
        for (int i = 0; i < n; i++) {
            if (fc_battles_read_log(set, files[i], co) != 0) fc_cli_die(NULL, "%s", fc_last_error());
            free(files[i]);
        }
        free(files);
        return;
    }
    if (fc_battles_read_log(set, path, co) != 0) fc_cli_die(NULL, "%s", fc_last_error());
}

/* Python's round(): half to even. */
static long round_even(double x) { return (long)nearbyint(x); }

static void print_table(const fc_leaderboard *lb, const fc_battles *set, bool from_logs)
{
    int wm = 5;
    for (int i = 0; i < lb->n_rows; i++) wm = FC_MAX(wm, (int)strlen(lb->rows[i].model));
    wm = FC_MIN(wm, 60);
    printf("%-9s  %-*s  %8s  %11s  %10s  %7s\n", "Rank (UB)", wm, "Model", lb->rating_system == FC_RATING_ELO ? "Elo" : "Score",
           "95% CI", "Online Elo", "Votes");
    for (int i = 0; i < lb->n_rows; i++) {
        const fc_rating_row *r = &lb->rows[i];
        char ci[48];
        if (isnan(r->q025) || isnan(r->q975)) snprintf(ci, sizeof(ci), "-");
        else snprintf(ci, sizeof(ci), "+%ld/-%ld", round_even(r->q975 - r->rating), round_even(r->rating - r->q025));
        printf("%9d  %-*.*s  %8ld  %11s  %10ld  %7d\n", r->rank_ub, wm, wm, r->model, round_even(r->rating), ci,
               round_even(r->elo), r->n_battles);
    }
    printf("%d models, %d battles", lb->n_models, lb->n_battles);
    if (lb->n_bootstrap) printf(", %d bootstrap rounds", lb->n_bootstrap);
    printf("\n");
    if (from_logs) {
        const fc_clean_stats *s = &set->stats;
        printf("logs: %d votes, %d invalid, %d leaked identity, %d banned, %d anonymous, %zu battles kept\n",
               s->n_votes, s->n_invalid, s->n_leaked, s->n_banned, s->n_anony, set->n);
    }
}

int fc_cmd_leaderboard(int argc, char **argv)
{
    const char *clean_file = NULL, *write_clean = NULL, *ban_file = NULL, *exclude = NULL;
    fc_flag_list logs = {0}; /* the arguments and every --log-dir, in order */
    fc_rating_opts ro = {.n_bootstrap = 100, .seed = 42, .anony_only = true};
    bool json = false, sanitize = false;
    const fc_flag flags[] = {
        {"--clean-battle-file", FC_FLAG_STRING, &clean_file, .metavar = "F",
         .help = "battles as clean_battle_data.py writes them (JSON array)"},
        {"--log-dir", FC_FLAG_LIST, &logs, .metavar = "D",
         .help = "every *-conv.json in D (repeatable; also as arguments)"},
        {"--num-bootstrap", FC_FLAG_INT, &ro.n_bootstrap, .min = 0, .max = 100000,
         .help = "bootstrap rounds for the 95% intervals (default 100; 0 = none)"},
        {"--rating-system", FC_FLAG_FUNC, &ro.rating_system, .fn = on_rating_system, .metavar = "bt|elo",
         .help = "Bradley-Terry MLE (default) or bootstrap-median Elo"},
        {"--exclude-tie", FC_FLAG_TRUE, &ro.exclude_tie, .help = "drop tie and both-bad votes"},
        {"--exclude-models", FC_FLAG_STRING, &exclude, .metavar = "A,B", .help = "drop battles with these models"},
        {"--include-named", FC_FLAG_FALSE, &ro.anony_only,
         .help = "rate named (side-by-side) battles too (default: anonymous only)"},
        {"--exact-bt", FC_FLAG_TRUE, &ro.bt_exact,
         .help = "solve the Bradley-Terry fit to convergence (default: stop where FastChat's scikit-learn "
                 "lbfgs stops, as its numbers do)"},
        {"--seed", FC_FLAG_UINT64, &ro.seed, .metavar = "S", .help = "bootstrap seed (default 42)"},
        {"--ban-ip-file", FC_FLAG_STRING, &ban_file, .metavar = "F",
         .help = "JSON list of IPs whose votes are dropped (logs only)"},
        {"--sanitize-ip", FC_FLAG_TRUE, &sanitize, .help = "judge ids arena_user_<n> instead of IPs (logs only)"},
        {"--write-clean-battles", FC_FLAG_STRING, &write_clean, .metavar = "F",
         .help = "also write the cleaned battles as clean_battle_data.py does"},
        {"--json", FC_FLAG_TRUE, &json, .help = "print the leaderboard as JSON instead of a table"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat leaderboard [options] [LOG_FILE_OR_DIR ...]",
        .about = "  Arena ratings from FastChat conversation logs ({date}-conv.json, cleaned as\n"
                 "  clean_battle_data.py does) or from a clean battle file.\n",
        .flags = flags,
        .args = &logs,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    int n_logs = logs.n;
    if (!clean_file && n_logs == 0) die_usage("give --clean-battle-file F or conversation logs (files or --log-dir)");
    if (clean_file && n_logs) die_usage("--clean-battle-file and conversation logs are exclusive");

    fc_log_set_level(FC_LOG_LEVEL_NONE); /* errors reach the user once, via fc_cli_die */
    int n_ex = 0, n_ban = 0;
    char **ex = exclude ? fc_cli_split_csv(exclude, &n_ex) : NULL;
    char **ban = ban_file ? read_string_list(ban_file, &n_ban) : NULL;
    fc_clean_opts co = {(const char *const *)ex, n_ex, (const char *const *)ban, n_ban, sanitize};

    fc_battles *set = fc_battles_new();
    if (clean_file) {
        if (fc_battles_read_clean(set, clean_file) != 0) fc_cli_die(NULL, "%s", fc_last_error());
        /* --exclude-models on a clean file: drop the battles directly */
        size_t k = 0;
        for (size_t i = 0; i < set->n; i++) {
            bool drop = false;
            for (int j = 0; j < n_ex; j++)
                if (!strcmp(set->b[i].model_a, ex[j]) || !strcmp(set->b[i].model_b, ex[j])) drop = true;
            if (drop) continue;
            set->b[k] = set->b[i];
            set->info[k] = set->info[i];
            k++;
        }
        set->n = k;
    } else {
        for (int i = 0; i < n_logs; i++) read_log_path(set, logs.v[i], &co);
    }
    fc_battles_finish(set);
    if (!clean_file && set->n == 0)
        fc_cli_die("the logs hold no votes that survive cleaning", "no battles in %s%s", logs.v[0], n_logs > 1 ? " ..." : "");

    if (write_clean) {
        char *js = fc_battles_clean_json(set);
        FILE *f = fopen(write_clean, "w");
        if (!f || fputs(js, f) < 0 || fputc('\n', f) < 0 || fclose(f) != 0)
            fc_cli_die(NULL, "%s: cannot write: %s", write_clean, strerror(errno));
        free(js);
    }

    fc_leaderboard lb;
    double t0 = fc_time_sec();
    if (fc_leaderboard_compute(set->b, set->n, &ro, &lb) != 0) fc_cli_die(NULL, "%s", fc_last_error());
    double t1 = fc_time_sec();
    if (json) {
        /* the library's JSON with the cleaning counters and the time spliced
         * in before its closing brace (re-printing through cJSON would round
         * the numbers) */
        char *js = fc_leaderboard_json(&lb);
        size_t n = strlen(js);
        FC_ASSERT(n > 0 && js[n - 1] == '}');
        js[n - 1] = '\0';
        fputs(js, stdout);
        if (!clean_file) {
            const fc_clean_stats *s = &set->stats;
            printf(",\"cleaning\":{\"votes\":%d,\"invalid\":%d,\"malformed\":%d,\"leaked_identity\":%d,"
                   "\"banned\":%d,\"anony\":%d,\"null_models\":%d,\"battles\":%zu}",
                   s->n_votes, s->n_invalid, s->n_malformed, s->n_leaked, s->n_banned, s->n_anony, s->n_null_models,
                   set->n);
        }
        printf(",\"compute_seconds\":%.6f}\n", t1 - t0);
        free(js);
    } else {
        print_table(&lb, set, !clean_file);
    }
    fc_leaderboard_free(&lb);
    fc_battles_free(set);
    for (int i = 0; i < n_ex; i++) free(ex[i]);
    free(ex);
    for (int i = 0; i < n_ban; i++) free(ban[i]);
    free(ban);
    fc_flag_list_free(&logs);
    return 0;
}
