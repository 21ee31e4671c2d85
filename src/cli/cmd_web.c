/*
 * cmd_web.c: `fastchat web`, FastChat's gradio_web_server_multi: the web
 * chat, the Chatbot Arena and the leaderboard over a controller's workers
 * (serve/web.h), plus --export-logs, which writes the stored conversations
 * and votes as FastChat's {YYYY-MM-DD}-conv.json files and exits.
 *
 * The page generates through an OpenAI-compatible API server that this
 * command runs on the same port (so /v1 is there too), over the controller.
 * Flags of FastChat's web server that need Gradio, a GPU or Google's
 * services (--share, --gradio-auth-path, --use-remote-storage, --ga-id,
 * --vision-arena, --moderate) are accepted and ignored with a warning.
 */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena/battles.h"
#include "arena/store.h"
#include "base/fc_base.h"
#include "cli.h"
#include "serve/openai_api.h"
#include "serve/web.h"

/* FastChat's flags that need Gradio, a GPU or Google's services */
static const char *on_unsupported(const fc_flag *f, const char *v, void *dst)
{
    (void)v, (void)dst;
    fprintf(stderr, "warning: %s is not supported here; ignored\n", f->names);
    return NULL;
}

/* $LOGDIR/fastchat_arena.db when LOGDIR is set (FastChat keeps its logs
 * there), else ~/.cache/fastchat/arena.db (beside the model cache; the
 * folder is created). Caller frees. */
char *fc_cli_web_db_default(void)
{
    const char *d = getenv("LOGDIR");
    char dir[4096];
    if (d && *d) {
        snprintf(dir, sizeof dir, "%s", d);
    } else {
        const char *c = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
        if (c && *c) snprintf(dir, sizeof dir, "%s/fastchat", c);
        else snprintf(dir, sizeof dir, "%s/.cache/fastchat", h && *h ? h : ".");
        char parent[4096];
        snprintf(parent, sizeof parent, "%.*s", (int)(strrchr(dir, '/') - dir), dir);
        mkdir(parent, 0755);
        mkdir(dir, 0755);
    }
    size_t n = strlen(dir) + 32;
    char *s = fc_xmalloc(n);
    snprintf(s, n, "%s/%s", dir, d && *d ? "fastchat_arena.db" : "arena.db");
    return s;
}

int fc_cmd_web(int argc, char **argv)
{
    const char *ctl = "http://localhost:21001", *host = "0.0.0.0", *endpoints = NULL, *arena = NULL, *db = NULL;
    const char *export_dir = NULL, *key = NULL, *judge_dir = NULL, *judge_bench = NULL, *judge_model = NULL;
    fc_flag_list imports = {0};
    int port = 7860, rate = 0;
    const fc_flag flags[] = {
        {"--controller-address|--controller-url", FC_FLAG_STRING, &ctl, .metavar = "URL",
         .help = "controller of the workers (default http://localhost:21001; FastChat's --controller-url is the "
                 "same flag)"},
        {"--host", FC_FLAG_STRING, &host, .metavar = "HOST", .help = "listen address (default 0.0.0.0, as FastChat)"},
        {"--port", FC_FLAG_INT, &port, .min = 0, .max = 65535, .help = "(default 7860)"},
        {"--register-api-endpoint-file", FC_FLAG_STRING, &endpoints, .metavar = "F",
         .help = "FastChat's JSON of OpenAI-compatible endpoints (api_type openai)"},
        {"--arena-config", FC_FLAG_STRING, &arena, .metavar = "F",
         .help = "battle sampling weights, targets, outages, anonymous-only models and per-model system prompt / "
                 "sampling (JSON)"},
        {"--db", FC_FLAG_STRING, &db, .metavar = "F",
         .help = "SQLite file of chats and votes (default $LOGDIR/fastchat_arena.db, or ~/.cache/fastchat/arena.db "
                 "without LOGDIR)"},
        {"--rate-limit", FC_FLAG_INT, &rate, .min = 0, .max = INT_MAX,
         .help = "sends per client IP per minute (default 0: none)"},
        {"--api-keys", FC_FLAG_STRING, &key, .metavar = "K", .help = "bearer key of the API the page uses (and requires on /v1)"},
        {"--judge-data-dir", FC_FLAG_STRING, &judge_dir, .metavar = "DIR",
         .help = "serve the MT-bench results page at /results from this llm_judge data/ folder"},
        {"--bench-name", FC_FLAG_STRING, &judge_bench, .metavar = "NAME", .help = "its question set (default fc_bench)"},
        {"--judge-model", FC_FLAG_STRING, &judge_model, .metavar = "NAME", .help = "whose judgments (default gpt-4)"},
        {"--export-logs", FC_FLAG_STRING, &export_dir, .metavar = "DIR",
         .help = "write the stored records as DIR/{YYYY-MM-DD}-conv.json and exit"},
        {"--import-logs", FC_FLAG_LIST, &imports, .metavar = "PATH",
         .help = "add FastChat's logs (a -conv.json file or a folder of them) to the store and exit (repeatable)"},
        {"--model-list-mode", FC_FLAG_IGNORE, .metavar = "once|reload", .help = "accepted (models are listed on every load)"},
        {"--concurrency-count", FC_FLAG_IGNORE, .metavar = "N", .help = "accepted"},
        {"--gradio-root-path", .kind = FC_FLAG_IGNORE},
        {"--gradio-auth-path", .kind = FC_FLAG_IGNORE},
        {"--elo-results-file", .kind = FC_FLAG_IGNORE},
        {"--leaderboard-table-file", .kind = FC_FLAG_IGNORE},
        {"--ga-id", .kind = FC_FLAG_IGNORE},
        {"--password", .kind = FC_FLAG_IGNORE},
        {"--share", FC_FLAG_FUNC0, .fn = on_unsupported},
        {"--moderate", FC_FLAG_FUNC0, .fn = on_unsupported},
        {"--show-terms-of-use", FC_FLAG_FUNC0, .fn = on_unsupported},
        {"--use-remote-storage", FC_FLAG_FUNC0, .fn = on_unsupported},
        {"--vision-arena", FC_FLAG_FUNC0, .fn = on_unsupported},
        {"-v|--verbose", FC_FLAG_FUNC0, .fn = fc_cli_flag_verbose, .help = "log requests"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat web [options]",
        .flags = flags,
        .footer = "FastChat's --share, --moderate, --show-terms-of-use, --use-remote-storage, --vision-arena are\n"
                  "accepted with a warning; --gradio-*, --elo-results-file, --leaderboard-table-file, --ga-id,\n"
                  "--password are accepted and ignored.\n"
                  "environment: FASTCHAT_INPUT_CHAR_LEN_LIMIT (12000), FASTCHAT_BLIND_MODE_INPUT_CHAR_LEN_LIMIT\n"
                  "(30000), FASTCHAT_WORKER_API_TIMEOUT (100 s), LOGDIR (.)\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    fc_cli_log_file("gradio_web_server", "gradio_web_server.log");
    int n_imports = imports.n;
    char *db_default = db ? NULL : fc_cli_web_db_default();
    if (!db) db = db_default;

    if (n_imports) {
        fc_store *st = fc_store_open(db);
        if (!st) fc_cli_die("check the --db path", "%s: %s", db, fc_last_error());
        long total = 0, total_votes = 0, total_bad = 0;
        for (int k = 0; k < n_imports; k++) {
            int n_files = 0;
            char **files = NULL;
            struct stat sb;
            if (stat(imports.v[k], &sb) == 0 && S_ISDIR(sb.st_mode)) {
                files = fc_battles_list_logs(imports.v[k], &n_files);
                if (!files) fc_cli_die(NULL, "%s: cannot list the folder", imports.v[k]);
            } else {
                files = fc_xcalloc(1, sizeof(char *));
                files[0] = fc_xstrdup(imports.v[k]);
                n_files = 1;
            }
            for (int j = 0; j < n_files; j++) {
                long r = 0, v = 0, b = 0;
                if (fc_web_import_log(st, files[j], &r, &v, &b) != FC_OK)
                    fc_cli_die("is it a FastChat -conv.json log?", "%s: import failed", files[j]);
                total += r, total_votes += v, total_bad += b;
                free(files[j]);
            }
            free(files);
        }
        fc_store_close(st);
        printf("imported %ld records (%ld votes as chats) into %s; %ld lines were not JSON records\n", total,
               total_votes, db, total_bad);
        if (!export_dir) {
            fc_flag_list_free(&imports);
            free(db_default);
            return 0;
        }
    }
    fc_flag_list_free(&imports);
    if (export_dir) {
        fc_store *st = fc_store_open(db);
        if (!st) fc_cli_die("check the --db path", "%s: %s", db, fc_last_error());
        int nf = 0;
        long nl = 0;
        int rc = fc_store_export(st, export_dir, &nf, &nl);
        fc_store_close(st);
        if (rc != FC_OK) fc_cli_die("does the directory exist and is it writable?", "export to %s failed", export_dir);
        printf("exported %ld records into %d file(s) in %s\n", nl, nf, export_dir);
        free(db_default);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    fc_web_params wp = {.db_path = db, .arena_config = arena, .api_endpoint_file = endpoints, .api_key = key,
                        .rate_limit_per_min = rate, .judge_data_dir = judge_dir, .judge_bench = judge_bench,
                        .judge_model = judge_model};
    fc_web *web = fc_web_new(&wp);
    if (!web) fc_cli_die("check --db, --arena-config, --register-api-endpoint-file and --judge-data-dir", "web: %s", fc_last_error());
    const char *keys[1] = {key};
    fc_openai_api_params ap = {
        .host = host,
        .port = port,
        .controller_address = ctl,
        .api_keys = key ? keys : NULL,
        .n_api_keys = key ? 1 : 0,
        .mount = fc_web_mount_hook,
        .mount_user = web,
    };
    fc_openai_api *api = fc_openai_api_start(&ap);
    if (!api) fc_cli_die("is another process using the port? try --port", "web: %s", fc_last_error());
    char base[300];
    snprintf(base, sizeof base, "http://%s:%d",
             (!strcmp(host, "0.0.0.0") || !strcmp(host, "localhost") || !*host) ? "127.0.0.1" : host,
             fc_openai_api_port(api));
    fc_web_set_api_base(web, base);
    printf("web: http://%s:%d/ (chats and votes in %s)\nready\n", !strcmp(host, "0.0.0.0") ? "localhost" : host,
           fc_openai_api_port(api), db);
    fflush(stdout);

    fc_cli_wait_for_stop();
    fc_openai_api_free(api);
    fc_web_free(web);
    free(db_default);
    return 0;
}
