/*
 * cmd_chat.c: `fastchat chat`, the terminal chat of FastChat's
 * `python3 -m fastchat.serve.cli`: the same flags, the same !! commands, the
 * simple / rich / programmatic styles and their output formats
 * (fastchat/serve/cli.py SimpleChatIO, RichChatIO, ProgrammaticChatIO;
 * chat_loop in fastchat/serve/inference.py).
 *
 * The template: --conv-template, else FastChat's adapter for the model path,
 * else the model's own chat template where FastChat can express it
 * (chat/template_pick.h, shared with the worker).
 *
 * Each turn renders the whole conversation with its template and submits it
 * to the engine; the engine's prefix cache finds the earlier turns' keys and
 * values, so only the new tokens are computed. Ctrl-C during a reply aborts
 * it and drops the unfinished exchange, as FastChat does.
 */
#include "cli.h"
#include "md_render.h"
#include "base/fc_base.h"
#include "base/str.h"
#include "chat/conv.h"
#include "engine/engine.h"
#include "chat/template_pick.h"

#include <cjson/cJSON.h>
#include <editline/readline.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum style { STYLE_SIMPLE, STYLE_RICH, STYLE_PROGRAMMATIC };

#define END_SEQUENCE " __END_OF_A_MESSAGE_47582648__\n"

typedef struct chat_opts {
    const char *model_path, *conv_template, *system_msg;
    float temperature, repetition_penalty;
    int max_new_tokens, threads;
    bool no_history, multiline, debug, exact, act8;
    enum style style;
    fc_cli_device dev; /* FastChat's --load-8bit and device flags */
} chat_opts;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static const char *on_style(const fc_flag *f, const char *v, void *dst)
{
    enum style *st = dst;
    if (!strcmp(v, "simple")) *st = STYLE_SIMPLE;
    else if (!strcmp(v, "rich")) *st = STYLE_RICH;
    else if (!strcmp(v, "programmatic")) *st = STYLE_PROGRAMMATIC;
    else return "unknown style (styles: simple, rich, programmatic)";
    return NULL;
}

static void parse(int argc, char **argv, chat_opts *o)
{
    *o = (chat_opts){.temperature = 0.7f, .repetition_penalty = 1.0f, .max_new_tokens = 512};
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &o->model_path, .metavar = "M",
         .help = "GGUF file or Hugging Face folder (default: the default model)"},
        {"--conv-template", FC_FLAG_STRING, &o->conv_template, .metavar = "NAME", .help = "FastChat template (default: picked from the model)"},
        {"--conv-system-msg", FC_FLAG_STRING, &o->system_msg, .metavar = "TEXT", .help = "the system message"},
        {"--temperature", FC_FLAG_FLOAT, &o->temperature, .help = "(default 0.7)"},
        {"--repetition_penalty", FC_FLAG_FLOAT, &o->repetition_penalty, .help = "(default 1.0)"},
        {"--max-new-tokens", FC_FLAG_INT, &o->max_new_tokens, .help = "(default 512)"},
        {"--no-history", FC_FLAG_TRUE, &o->no_history, .help = "each turn starts a new conversation"},
        {"--style", FC_FLAG_FUNC, &o->style, .fn = on_style, .metavar = "simple|rich|programmatic",
         .help = "(default simple)"},
        {"--multiline", FC_FLAG_TRUE, &o->multiline, .help = "several lines per message (ctrl-d on an empty line ends it)"},
        {"--debug", FC_FLAG_TRUE, &o->debug, .help = "after each reply print the template, prompt, output and speed as JSON"},
        {"--threads", FC_FLAG_INT, &o->threads, .help = "compute threads (default: all CPUs)"},
        {"--exact", FC_FLAG_TRUE, &o->exact, .help = "f32 reference mode"},
        {"--act8", FC_FLAG_TRUE, &o->act8, .help = "8-bit activations"},
        {"--mouse|--judge-sent-end", .kind = FC_FLAG_IGNORE0}, /* accepted for compatibility */
        FC_CLI_DEVICE_FLAGS(&o->dev),
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat chat [options]",
        .flags = flags,
        .footer = "in the chat: !!exit (or an empty line), !!reset, !!remove, !!regen, !!save FILE, !!load FILE;\n"
                  "Ctrl-C stops a reply.\n",
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!o->model_path) o->model_path = fc_cli_default_model();
    if (o->max_new_tokens <= 0) fc_cli_die(NULL, "--max-new-tokens must be positive");
}

/* ---- input ---- */

static char *read_programmatic(void)
{
    size_t le = strlen(END_SEQUENCE);
    fc_str b = {0};
    int ch;
    while ((ch = getchar()) != EOF) {
        fc_str_putc(&b, (char)ch);
        if (b.len >= le && !memcmp(b.p + b.len - le, END_SEQUENCE, le)) {
            fc_str_truncate(&b, b.len - le);
            return fc_str_take(&b);
        }
    }
    fc_str_free(&b);
    return NULL;
}

static char *read_line_plain(const char *prompt, bool tty)
{
    if (tty) {
        char *l = readline(prompt);
        if (l && *l) add_history(l);
        return l;
    }
    fputs(prompt, stdout);
    fflush(stdout);
    size_t cap = 0;
    char *l = NULL;
    ssize_t n = getline(&l, &cap, stdin);
    if (n < 0) { free(l); return NULL; }
    if (n > 0 && l[n - 1] == '\n') l[n - 1] = 0;
    return l;
}

/* FastChat's prompt_for_input for each style; NULL at end of input. */
static char *prompt_for_input(const chat_opts *o, const char *role, bool tty)
{
    char prompt[256];
    if (o->style == STYLE_PROGRAMMATIC) {
        char *c = read_programmatic();
        if (c) printf("[!OP:%s]: %s\n", role, c);
        fflush(stdout);
        return c;
    }
    if (!o->multiline) {
        snprintf(prompt, sizeof prompt, "%s: ", role);
        return read_line_plain(prompt, tty);
    }
    snprintf(prompt, sizeof prompt, "%s [ctrl-d/z on empty line to end]: ", role);
    char *first = read_line_plain(prompt, tty);
    if (!first) return NULL;
    fc_str all = {0};
    char *line = first;
    do {
        /* FastChat strips each line and joins them with newlines */
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        size_t l = strlen(s);
        while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r')) l--;
        if (all.len) fc_str_putc(&all, '\n');
        fc_str_putn(&all, s, l);
        free(line);
    } while ((line = read_line_plain("", tty)) != NULL);
    return fc_str_take(&all);
}

/* ---- generation ---- */

typedef struct turn {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;          /* all text received */
    size_t len, cap, shown;
    bool done;
    enum fc_finish finish;
    int prompt_tokens, completion_tokens, cached_tokens;
} turn;

static void on_event(const fc_gen_event *ev, void *user)
{
    turn *t = user;
    pthread_mutex_lock(&t->mu);
    if (t->len + ev->len + 1 > t->cap) {
        t->cap = (t->len + ev->len + 1) * 2;
        t->text = fc_xrealloc(t->text, t->cap);
    }
    memcpy(t->text + t->len, ev->text, ev->len);
    t->len += ev->len;
    t->text[t->len] = 0;
    t->completion_tokens = ev->completion_tokens;
    if (ev->finish != FC_FINISH_NONE) {
        t->done = true;
        t->finish = ev->finish;
        t->prompt_tokens = ev->prompt_tokens;
        t->cached_tokens = ev->cached_tokens;
    }
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* simple/programmatic stream_output: prints the words completed so far
 * (text stripped and split on single spaces, the last word held back). */
static void show_words(turn *t, size_t *pre_words, bool final)
{
    const char *s = t->text;
    size_t n = t->len;
    while (n && strchr(" \t\n\r", s[0])) { s++; n--; }
    while (n && strchr(" \t\n\r", s[n - 1])) n--;
    /* count words split on ' ' */
    size_t words = 1;
    for (size_t i = 0; i < n; i++) words += s[i] == ' ';
    size_t now = final ? words : words - 1;
    if (now <= *pre_words) {
        if (final) { putchar('\n'); fflush(stdout); }
        return;
    }
    size_t w = 0, i = 0, start = 0;
    for (; i <= n; i++) {
        if (i == n || s[i] == ' ') {
            if (w >= *pre_words && w < now) {
                fwrite(s + start, 1, i - start, stdout);
                putchar(final && w == now - 1 ? '\n' : ' ');
            }
            w++;
            start = i + 1;
        }
    }
    *pre_words = now;
    fflush(stdout);
}

static char *run_turn(fc_engine *e, const fc_tokenizer *tok, const fc_conv *conv, const chat_opts *o,
                      bool *aborted, double *secs, int *n_gen, int *n_cached, bool *truncated)
{
    char *prompt = fc_conv_get_prompt(conv);
    if (!prompt) fc_cli_die(NULL, "template %s cannot render a text prompt", fc_conv_name(conv));
    int32_t *ids = NULL;
    int n = fc_tokenizer_encode(tok, prompt, strlen(prompt), true, true, &ids);
    if (n < 0) fc_cli_die(NULL, "cannot tokenize the prompt");
    const char *stops[16];
    int n_stop = 0;
    for (int i = 0; i < fc_conv_n_stop_str(conv) && n_stop < 16; i++) stops[n_stop++] = fc_conv_stop_str(conv, i);
    int n_ids = 0;
    const int32_t *stop_ids = fc_conv_stop_token_ids(conv, &n_ids);
    fc_gen_request q = {.prompt = ids, .n_prompt = n, .max_new_tokens = o->max_new_tokens, .stop = stops,
                        .n_stop = n_stop, .stop_ids = stop_ids, .n_stop_ids = n_ids, .logprobs = -1, .truncate = true};
    q.sampling = fc_sampling_default();
    q.sampling.temperature = o->temperature;
    q.sampling.repetition_penalty = o->repetition_penalty;
    turn t = {0};
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    fc_md *md = o->style == STYLE_RICH ? fc_md_new(stdout) : NULL;
    size_t pre_words = 0;
    interrupted = 0;
    double t0 = fc_time_sec();
    uint64_t id = fc_engine_submit(e, &q, on_event, &t);
    bool cancelled = false;
    pthread_mutex_lock(&t.mu);
    for (;;) {
        if (interrupted && !cancelled) {
            fc_engine_cancel(e, id);
            cancelled = true;
        }
        if (md && t.len > t.shown) {
            fc_md_feed(md, t.text + t.shown, t.len - t.shown);
            t.shown = t.len;
        } else if (!md && t.len > 0) {
            show_words(&t, &pre_words, false);
        }
        if (t.done) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&t.cv, &t.mu, &ts);
    }
    pthread_mutex_unlock(&t.mu);
    *secs = fc_time_sec() - t0;
    *aborted = t.finish == FC_FINISH_ABORT;
    *n_gen = t.completion_tokens;
    *n_cached = t.cached_tokens;
    *truncated = t.prompt_tokens < n;
    if (!*aborted) {
        if (md) fc_md_finish(md);
        else show_words(&t, &pre_words, true);
    } else if (md) {
        fc_md_finish(md);
    }
    fc_md_free(md);
    if (o->debug) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "conv_template", fc_conv_name(conv));
        cJSON_AddStringToObject(d, "prompt", prompt);
        cJSON_AddStringToObject(d, "outputs", t.text ? t.text : "");
        cJSON_AddNumberToObject(d, "speed (token/s)", *secs > 0 ? (int)(100.0 * *n_gen / *secs) / 100.0 : 0);
        cJSON_AddNumberToObject(d, "prompt_tokens", t.prompt_tokens);
        cJSON_AddNumberToObject(d, "cached_prompt_tokens", *n_cached);
        char *js = cJSON_PrintUnformatted(d);
        printf("\n%s\n\n", js);
        free(js);
        cJSON_Delete(d);
    }
    free(prompt);
    free(ids);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
    char *out = t.text ? t.text : fc_xstrdup("");
    /* FastChat stores outputs.strip() */
    size_t a = 0, l = strlen(out);
    while (a < l && strchr(" \t\n\r", out[a])) a++;
    while (l > a && strchr(" \t\n\r", out[l - 1])) l--;
    memmove(out, out + a, l - a);
    out[l - a] = 0;
    return out;
}

/* ---- the loop ---- */

static fc_conv *new_chat(const fc_conv *proto, const chat_opts *o)
{
    fc_conv *c = fc_conv_copy(proto);
    if (o->system_msg) fc_conv_set_system_message(c, o->system_msg);
    return c;
}

static void print_conv(const fc_conv *c, const chat_opts *o)
{
    for (int i = fc_conv_offset(c); i < fc_conv_n_messages(c); i++) {
        int role;
        const char *m = fc_conv_message(c, i, &role);
        if (o->style == STYLE_PROGRAMMATIC) printf("[!OP:%s]: %s\n", fc_conv_role(c, role), m ? m : "");
        else printf("%s: %s\n", fc_conv_role(c, role), m ? m : "");
    }
}

/* conv.messages.pop(): returns the conversation without its last message
 * (the old one is freed). */
static fc_conv *conv_pop(fc_conv *c)
{
    cJSON *j = fc_conv_to_json(c);
    cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    int n = cJSON_GetArraySize(msgs);
    if (n > 0) cJSON_DeleteItemFromArray(msgs, n - 1);
    fc_conv *back = fc_conv_from_json(j);
    cJSON_Delete(j);
    if (!back) return c;
    fc_conv_free(c);
    return back;
}

static int last_role(const fc_conv *c)
{
    int role = -1;
    if (fc_conv_n_messages(c) > 0) fc_conv_message(c, fc_conv_n_messages(c) - 1, &role);
    return role;
}

static fc_conv *load_conv(const char *filename, const fc_conv *proto)
{
    FILE *f = fopen(filename, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = fc_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), f);
    buf[got] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) return NULL;
    /* FastChat: get_conv_template(template_name), set_system_message,
     * messages replaced by the file's */
    const cJSON *name = cJSON_GetObjectItem(j, "template_name");
    fc_conv *c = NULL;
    if (cJSON_IsString(name)) {
        /* a registered template, or the one this chat built from the model's
         * own chat template (not in FastChat's registry) */
        if (fc_conv_template_exists(name->valuestring)) c = fc_conv_new(name->valuestring);
        else if (!strcmp(name->valuestring, fc_conv_name(proto))) c = fc_conv_copy(proto);
    }
    if (c) {
        cJSON *full = fc_conv_to_json(c);
        const cJSON *sys = cJSON_GetObjectItem(j, "system_message");
        const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
        if (cJSON_IsString(sys)) cJSON_ReplaceItemInObject(full, "system_message", cJSON_CreateString(sys->valuestring));
        if (cJSON_IsArray(msgs)) cJSON_ReplaceItemInObject(full, "messages", cJSON_Duplicate(msgs, 1));
        fc_conv_free(c);
        c = fc_conv_from_json(full);
        cJSON_Delete(full);
    }
    cJSON_Delete(j);
    return c;
}

static bool save_conv(const fc_conv *c, const char *filename)
{
    /* FastChat's Conversation.dict(): template_name, system_message, roles,
     * messages, offset */
    cJSON *full = fc_conv_to_json(c);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "template_name", fc_conv_name(c));
    cJSON_AddStringToObject(d, "system_message", fc_conv_system_message(c));
    cJSON_AddItemToObject(d, "roles", cJSON_Duplicate(cJSON_GetObjectItem(full, "roles"), 1));
    cJSON_AddItemToObject(d, "messages", cJSON_Duplicate(cJSON_GetObjectItem(full, "messages"), 1));
    cJSON_AddNumberToObject(d, "offset", fc_conv_offset(c));
    char *js = cJSON_PrintUnformatted(d);
    FILE *f = fopen(filename, "wb");
    bool ok = f && fputs(js, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    free(js);
    cJSON_Delete(d);
    cJSON_Delete(full);
    return ok;
}

int fc_cmd_chat(int argc, char **argv)
{
    chat_opts o;
    parse(argc, argv, &o);
    fc_cli_device_apply(&o.dev);
    fc_model_load_params lp;
    fc_cli_device_load_params(&o.dev, o.exact, o.act8, &lp);
    /* T5 (encoder-decoder) folders: their own model and engine; FastChat's
     * chat_loop hardcodes a repetition penalty of 1.2 for them */
    fc_t5 *t5 = fc_t5_is_t5(o.model_path) ? fc_t5_load(o.model_path) : NULL;
    if (fc_t5_is_t5(o.model_path) && !t5) fc_cli_die("a T5 folder needs config.json and its safetensors", "%s", fc_last_error());
    if (t5 && o.repetition_penalty == 1.0f) o.repetition_penalty = 1.2f;
    fc_model *m = t5 ? NULL : fc_model_load_ex(o.model_path, &lp);
    if (!m && !t5) fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder", "%s", fc_last_error());
    fc_tokenizer *tok = t5 ? fc_tokenizer_load(o.model_path) : fc_cli_load_tokenizer(m); /* T5: folder or GGUF */
    if (!tok) fc_cli_die("the chat needs the model's tokenizer", "%s", fc_last_error());
    fc_conv *proto = fc_template_pick(o.conv_template, o.model_path, tok);
    if (!proto) fc_cli_die("list the templates with: fastchat prompt --list", "%s", fc_last_error());
    const fc_model_config *cfg = m ? fc_model_get_config(m) : NULL;
    fc_engine_params ep = {.n_threads = o.threads, .exact = o.exact, .act8 = o.act8, .n_seq_max = 4,
                           .kv_tokens = FC_MIN(cfg && cfg->n_ctx_train > 0 ? cfg->n_ctx_train : 2048, 32768) * 2};
    fc_engine *e = t5 ? fc_engine_new_t5(t5, tok, &ep) : fc_engine_new(m, tok, &ep);
    if (!e) fc_cli_die(NULL, "%s", fc_last_error());
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    bool tty = isatty(STDIN_FILENO);
    if (o.debug) fprintf(stderr, "template: %s\n", fc_conv_name(proto));

    fc_conv *conv = NULL;
    for (;;) {
        if (o.no_history || !conv) {
            fc_conv_free(conv);
            conv = new_chat(proto, &o);
        }
        interrupted = 0;
        char *inp = prompt_for_input(&o, fc_conv_role(conv, 0), tty);
        if (!inp || !*inp || !strcmp(inp, "!!exit")) {
            free(inp);
            printf("exit...\n");
            break;
        }
        if (!strcmp(inp, "!!reset")) {
            printf("resetting...\n");
            fc_conv_free(conv);
            conv = new_chat(proto, &o);
            free(inp);
            continue;
        }
        if (!strcmp(inp, "!!remove")) {
            printf("removing last message...\n");
            if (fc_conv_n_messages(conv) > fc_conv_offset(conv)) {
                if (last_role(conv) == 1) conv = conv_pop(conv);
                if (last_role(conv) == 0) conv = conv_pop(conv);
                print_conv(conv, &o);
            } else {
                printf("No messages to remove.\n");
            }
            free(inp);
            continue;
        }
        if (!strcmp(inp, "!!regen")) {
            printf("regenerating last message...\n");
            free(inp);
            inp = NULL;
            if (fc_conv_n_messages(conv) > fc_conv_offset(conv)) {
                if (last_role(conv) == 1) conv = conv_pop(conv);
                if (last_role(conv) == 0) {
                    print_conv(conv, &o);
                    int role;
                    inp = fc_xstrdup(fc_conv_message(conv, fc_conv_n_messages(conv) - 1, &role));
                    conv = conv_pop(conv);
                } else {
                    printf("No user message to regenerate from.\n");
                    continue;
                }
            } else {
                printf("No messages to regenerate.\n");
                continue;
            }
        } else if (!strncmp(inp, "!!save", 6)) {
            const char *sp = strchr(inp, ' ');
            if (!sp || !sp[1]) {
                printf("usage: !!save <filename>\n");
            } else {
                char fn[4096];
                snprintf(fn, sizeof fn, "%s%s", sp + 1, strchr(sp + 1, '.') ? "" : ".json");
                printf("saving... %s\n", fn);
                if (!save_conv(conv, fn)) printf("cannot write %s: %s\n", fn, strerror(errno));
            }
            free(inp);
            continue;
        } else if (!strncmp(inp, "!!load", 6)) {
            const char *sp = strchr(inp, ' ');
            if (!sp || !sp[1]) {
                printf("usage: !!load <filename>\n");
                free(inp);
                continue;
            }
            char fn[4096 + 8];
            snprintf(fn, 4096, "%s", sp + 1);
            if (access(fn, R_OK) != 0) {
                size_t l = strlen(fn);
                bool has_json = strstr(fn, ".json") != NULL;
                memcpy(fn + l, ".json", 6);
                if (has_json || access(fn, R_OK) != 0) {
                    fn[l] = 0;
                    printf("file not found: %s\n", fn);
                    free(inp);
                    continue;
                }
            }
            printf("loading... %s\n", fn);
            fc_conv *c = load_conv(fn, proto);
            if (!c) printf("cannot read a conversation from %s\n", fn);
            else {
                fc_conv_free(conv);
                conv = c;
                print_conv(conv, &o);
            }
            free(inp);
            continue;
        }

        fc_conv_append_message(conv, 0, inp);
        fc_conv_append_message(conv, 1, NULL);
        free(inp);
        if (o.style == STYLE_PROGRAMMATIC) printf("[!OP:%s]: ", fc_conv_role(conv, 1));
        else printf("%s: ", fc_conv_role(conv, 1));
        if (o.style == STYLE_RICH) printf("\n");
        fflush(stdout);
        bool aborted, truncated;
        double secs;
        int n_gen, n_cached;
        char *out = run_turn(e, tok, conv, &o, &aborted, &secs, &n_gen, &n_cached, &truncated);
        if (truncated) printf("(the conversation is longer than the context: its start was dropped)\n");
        if (aborted) {
            printf("\nstopped generation.\n");
            if (last_role(conv) == 1) conv = conv_pop(conv);
            if (last_role(conv) == 0) conv = conv_pop(conv);
            print_conv(conv, &o);
        } else {
            fc_conv_update_last_message(conv, out);
        }
        free(out);
    }
    fc_conv_free(conv);
    fc_conv_free(proto);
    fc_engine_free(e);
    fc_tokenizer_free(tok);
    fc_model_free(m);
    fc_t5_free(t5);
    return 0;
}
