/*
 * cmd_test_message.c: `fastchat test-message`, FastChat's
 * `python3 -m fastchat.serve.test_message`: finds a worker for --model-name
 * through the controller (refresh_all_workers, list_models,
 * get_worker_address) or takes --worker-address, renders one user message
 * with the model's conversation template, streams /worker_generate_stream
 * and prints the reply as it grows.
 *
 * One difference: FastChat picks the template from the model name
 * (get_conversation_template); we ask the worker for the template it uses
 * (/worker_get_conv_template) and fall back to the name only when the worker
 * does not answer that. Exits 1 when no worker serves the model or the
 * worker reports an error.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fc_base.h"
#include "chat/conv.h"
#include "cli.h"
#include "net/http.h"
#include "net/nulstream.h"

int fc_cmd_test_message(int argc, char **argv);

static cJSON *post(const char *base, const char *path, const char *body, bool required)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", base, path);
    fc_http_response r = {0};
    bool ok = fc_http_post_json(url, body, strlen(body), 30, NULL, &r);
    if (!ok || r.status != 200) {
        if (required)
            fc_cli_die("is the controller running? start it with `fastchat controller` or pass --controller-address",
                       "%s: %s", url, r.status ? "HTTP error" : r.error);
        fc_http_response_free(&r);
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(r.body, r.len);
    fc_http_response_free(&r);
    if (!o && required) fc_cli_die(NULL, "%s: malformed JSON answer", url);
    return o;
}

typedef struct printer {
    size_t prev;      /* bytes of the stripped text already printed */
    int error_code;
    char *error_text;
} printer;

/* Prints what is new in the cumulative text (stripped of surrounding
 * whitespace, as FastChat's `data["text"].strip()`). */
static bool on_msg(const char *msg, size_t len, void *user)
{
    printer *p = user;
    cJSON *o = cJSON_ParseWithLength(msg, len);
    if (!o) return true;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "error_code");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (cJSON_IsNumber(code) && code->valueint != 0) {
        p->error_code = code->valueint;
        free(p->error_text);
        p->error_text = fc_xstrdup(cJSON_IsString(text) ? text->valuestring : "");
    } else if (cJSON_IsString(text)) {
        const char *s = text->valuestring;
        while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') s++;
        size_t n = strlen(s);
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
        if (n > p->prev) {
            fwrite(s + p->prev, 1, n - p->prev, stdout);
            fflush(stdout);
            p->prev = n;
        }
    }
    cJSON_Delete(o);
    return true;
}

static bool on_data(const char *data, size_t len, void *user)
{
    return fc_nulsplit_feed(((void **)user)[0], data, len, on_msg, ((void **)user)[1]);
}

int fc_cmd_test_message(int argc, char **argv)
{
    const char *ctl = "http://localhost:21001", *worker = NULL, *model = NULL;
    const char *message = "Tell me a story with more than 1000 words.";
    double temperature = 0.0;
    int max_new_tokens = 32;
    const fc_flag flags[] = {
        {"--model-name", FC_FLAG_STRING, &model, .metavar = "NAME", .help = "the model a worker serves (required)"},
        {"--controller-address", FC_FLAG_STRING, &ctl, .metavar = "URL", .help = "(default http://localhost:21001)"},
        {"--worker-address", FC_FLAG_STRING, &worker, .metavar = "URL", .help = "skip the controller"},
        {"--temperature", FC_FLAG_DOUBLE, &temperature, .metavar = "T", .help = "(default 0.0)"},
        {"--max-new-tokens", FC_FLAG_INT, &max_new_tokens, .help = "(default 32)"},
        {"--message", FC_FLAG_STRING, &message, .metavar = "TEXT",
         .help = "(default \"Tell me a story with more than 1000 words.\")"},
        {0},
    };
    const fc_flags_cmd cmd = {.usage = "fastchat test-message --model-name NAME [options]", .flags = flags};
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!model) {
        fc_flags_print_help(&cmd, stderr);
        fc_cli_die("pass the name a worker serves, e.g. --model-name SmolLM2-135M-Instruct.Q4_1",
                   "--model-name is required");
    }
    fc_http_global_init();

    char *worker_addr;
    if (worker) {
        worker_addr = fc_xstrdup(worker);
    } else {
        cJSON_Delete(post(ctl, "/refresh_all_workers", "{}", true));
        cJSON *lm = post(ctl, "/list_models", "{}", true);
        const cJSON *models = cJSON_GetObjectItemCaseSensitive(lm, "models");
        int n = cJSON_GetArraySize(models);
        const char **names = fc_xcalloc((size_t)(n ? n : 1), sizeof(char *));
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, models) if (cJSON_IsString(it)) names[k++] = it->valuestring;
        for (int i = 1; i < k; i++)
            for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
                const char *t = names[j];
                names[j] = names[j - 1];
                names[j - 1] = t;
            }
        printf("Models: [");
        for (int i = 0; i < k; i++) printf("%s'%s'", i ? ", " : "", names[i]);
        printf("]\n");
        free(names);
        cJSON_Delete(lm);

        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "model", model);
        char *body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        cJSON *ga = post(ctl, "/get_worker_address", body, true);
        free(body);
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(ga, "address");
        worker_addr = fc_xstrdup(cJSON_IsString(addr) ? addr->valuestring : "");
        cJSON_Delete(ga);
        printf("worker_addr: %s\n", worker_addr);
    }
    if (!*worker_addr) {
        printf("No available workers for %s\n", model);
        free(worker_addr);
        return 1;
    }

    /* the template: the worker's, else the one FastChat picks by name */
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", model);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON *ct = post(worker_addr, "/worker_get_conv_template", body, false);
    free(body);
    fc_conv *conv = ct ? fc_conv_from_json(cJSON_GetObjectItemCaseSensitive(ct, "conv")) : NULL;
    cJSON_Delete(ct);
    if (!conv) {
        const char *name = fc_conv_template_for_model_path(model, NULL);
        conv = fc_conv_new(name ? name : "one_shot");
        if (!conv) fc_cli_die(NULL, "no conversation template for %s", model);
    }
    fc_conv_append_message(conv, 0, message);
    fc_conv_append_message(conv, 1, NULL);
    char *prompt = fc_conv_get_prompt(conv);
    if (!prompt) fc_cli_die(NULL, "cannot render the template: %s", fc_last_error());

    cJSON *gp = cJSON_CreateObject();
    cJSON_AddStringToObject(gp, "model", model);
    cJSON_AddStringToObject(gp, "prompt", prompt);
    cJSON_AddNumberToObject(gp, "temperature", temperature);
    cJSON_AddNumberToObject(gp, "max_new_tokens", max_new_tokens);
    cJSON *stop = cJSON_AddArrayToObject(gp, "stop");
    for (int i = 0; i < fc_conv_n_stop_str(conv); i++)
        cJSON_AddItemToArray(stop, cJSON_CreateString(fc_conv_stop_str(conv, i)));
    int n_ids = 0;
    const int32_t *ids = fc_conv_stop_token_ids(conv, &n_ids);
    cJSON *sti = cJSON_AddArrayToObject(gp, "stop_token_ids");
    for (int i = 0; i < n_ids; i++) cJSON_AddItemToArray(sti, cJSON_CreateNumber(ids[i]));
    cJSON_AddBoolToObject(gp, "echo", false);
    char *params = cJSON_PrintUnformatted(gp);
    cJSON_Delete(gp);

    printf("%s: %s\n%s: ", fc_conv_role(conv, 0), message, fc_conv_role(conv, 1));
    fflush(stdout);
    char url[2048];
    snprintf(url, sizeof url, "%s/worker_generate_stream", worker_addr);
    const char *hdrs[] = {"User-Agent: FastChat Client", NULL};
    printer pr = {0};
    fc_nulsplit *split = fc_nulsplit_new(0);
    void *ctx[2] = {split, &pr};
    fc_http_response resp = {0};
    bool ok = fc_http_post_stream(url, params, strlen(params), 100, hdrs, on_data, ctx, &resp);
    size_t tail_len = 0;
    const char *tail = fc_nulsplit_tail(split, &tail_len);
    if (ok && tail_len) on_msg(tail, tail_len, &pr);
    printf("\n");
    int rc = 0;
    if (!ok) {
        fprintf(stderr, "error: %s: %s\n", url, resp.error);
        rc = 1;
    } else if (resp.status != 200) {
        fprintf(stderr, "error: %s: HTTP %d\n", url, resp.status);
        rc = 1;
    } else if (pr.error_code) {
        fprintf(stderr, "error: worker error %d: %s\n", pr.error_code, pr.error_text);
        rc = 1;
    }
    fc_http_response_free(&resp);
    fc_nulsplit_free(split);
    free(pr.error_text);
    free(params);
    free(prompt);
    fc_conv_free(conv);
    free(worker_addr);
    return rc;
}
