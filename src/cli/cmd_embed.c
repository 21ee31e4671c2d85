/*
 * cmd_embed.c: `fastchat embed`: sentence embeddings of texts with a BERT
 * encoder folder (model/bert.h, tokenizer/wordpiece.h), as
 * sentence-transformers' model.encode(texts) gives them: one JSON list of
 * float lists on stdout. --tokens prints the WordPiece ids instead (no
 * truncation, the `tokenizers` package's encode(text).ids); --bench prints
 * the embeddings/s figure instead of the vectors.
 * Chat models' embeddings (FastChat's mean-pooled hidden states) are served
 * by the worker's /worker_get_embeddings, not here.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "model/bert.h"
#include "tokenizer/wordpiece.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char HINT[] = "give --model-path DIR (a sentence-transformers BERT folder, e.g. the one "
                           "scripts/fetch_embed_model.sh prints) and --text T or --input F";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int fc_cmd_embed(int argc, char **argv)
{
    const char *path = NULL, *text = NULL, *input = NULL;
    bool tokens = false, bench = false;
    int threads = 0, batch = 32, repeat = 1;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &path, .metavar = "DIR", .help = "BERT encoder folder (config.json model_type bert)"},
        {"--text", FC_FLAG_STRING, &text, .metavar = "T", .help = "one text"},
        {"--input", FC_FLAG_STRING, &input, .metavar = "F", .help = "a JSON file holding a list of texts (- for stdin)"},
        {"--tokens", FC_FLAG_TRUE, &tokens, .help = "print the WordPiece ids of each text (not truncated)"},
        {"--batch", FC_FLAG_INT, &batch, .metavar = "N", .help = "texts per forward pass (default 32)"},
        {"--threads", FC_FLAG_INT, &threads, .metavar = "N", .help = "compute threads (default: all CPUs)"},
        {"--bench", FC_FLAG_TRUE, &bench, .help = "print embeddings/s instead of the embeddings"},
        {"--repeat", FC_FLAG_INT, &repeat, .metavar = "N", .help = "with --bench: embed the inputs N times (default 1)"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat embed --model-path DIR (--text T | --input F) [--tokens] [--batch N]\n"
                 "                      [--threads N] [--bench [--repeat N]]",
        .about = "prints sentence embeddings (a JSON list of lists) of the texts, pooled and normalized\n"
                 "as the folder's sentence-transformers files say; long texts are cut at max_seq_length\n",
        .flags = flags,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!path || !text == !input) fc_cli_die(HINT, "no model or no text");
    if (batch < 1) batch = 1;
    if (repeat < 1) repeat = 1;
    /* the texts */
    int n = 1;
    const char **texts = NULL;
    size_t *lens = NULL;
    cJSON *list = NULL;
    if (input) {
        size_t len;
        char *s = fc_file_read(input, &len, 0);
        if (!s) fc_cli_die(NULL, "%s", fc_last_error());
        list = cJSON_ParseWithLength(s, len);
        free(s);
        if (!cJSON_IsArray(list)) fc_cli_die(HINT, "%s: not a JSON list of strings", input);
        n = cJSON_GetArraySize(list);
        texts = fc_xcalloc((size_t)n + 1, sizeof(char *));
        lens = fc_xcalloc((size_t)n + 1, sizeof(size_t));
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            if (!cJSON_IsString(it)) fc_cli_die(HINT, "%s: item %d is not a string", input, i);
            texts[i] = it->valuestring;
            lens[i++] = strlen(it->valuestring);
        }
    } else {
        texts = fc_xcalloc(1, sizeof(char *));
        lens = fc_xcalloc(1, sizeof(size_t));
        texts[0] = text;
        lens[0] = strlen(text);
    }
    fc_str o = FC_STR_INIT;
    if (tokens) {
        fc_wordpiece *wp = fc_wordpiece_load(path);
        if (!wp) fc_cli_die(HINT, "%s", fc_last_error());
        fc_str_putc(&o, '[');
        for (int i = 0; i < n; i++) {
            int32_t *ids;
            int k = fc_wordpiece_encode(wp, texts[i], lens[i], true, 0, &ids);
            if (k < 0) fc_cli_die(NULL, "out of memory");
            fc_str_puts(&o, i ? ",\n[" : "[");
            for (int j = 0; j < k; j++) fc_str_printf(&o, j ? ",%d" : "%d", ids[j]);
            fc_str_putc(&o, ']');
            free(ids);
        }
        fc_str_puts(&o, "]\n");
        fwrite(fc_str_cstr(&o), 1, fc_str_len(&o), stdout);
        fc_str_free(&o);
        fc_wordpiece_free(wp);
        cJSON_Delete(list);
        free(texts);
        free(lens);
        return 0;
    }
    double t_load = now_s();
    fc_bert *b = fc_bert_load(path, threads);
    if (!b) fc_cli_die(HINT, "%s", fc_last_error());
    fc_wordpiece *wp = fc_wordpiece_load(path);
    if (!wp) fc_cli_die(HINT, "%s", fc_last_error());
    if (fc_wordpiece_n_vocab(wp) > fc_bert_n_vocab(b))
        fc_cli_die(NULL, "%s: the tokenizer has %d tokens, the model %d", path, fc_wordpiece_n_vocab(wp),
                   fc_bert_n_vocab(b));
    t_load = now_s() - t_load;
    int C = fc_bert_dim(b);
    float *out = fc_xmalloc(sizeof(float) * (size_t)C * (size_t)(n ? n : 1));
    int32_t **ids = fc_xcalloc((size_t)n + 1, sizeof(int32_t *));
    int *nt = fc_xcalloc((size_t)n + 1, sizeof(int));
    double t0 = now_s(), c0 = (double)clock() / CLOCKS_PER_SEC;
    long n_tok = 0;
    for (int r = 0; r < repeat; r++) {
        for (int i = 0; i < n; i++) {
            free(ids[i]);
            nt[i] = fc_wordpiece_encode(wp, texts[i], lens[i], true, fc_bert_max_seq(b), &ids[i]);
            if (nt[i] < 0) fc_cli_die(NULL, "out of memory");
            n_tok += nt[i];
        }
        for (int i = 0; i < n; i += batch) {
            int k = n - i < batch ? n - i : batch;
            enum fc_status st = fc_bert_embed(b, (const int32_t *const *)ids + i, nt + i, k, out + (size_t)i * C);
            if (st != FC_OK) fc_cli_die(NULL, "%s", fc_last_error());
        }
    }
    double dt = now_s() - t0, cpu = (double)clock() / CLOCKS_PER_SEC - c0;
    if (bench) {
        /* per CPU-second too: on a shared machine the wall-clock figure
         * depends on what else runs, the CPU time much less */
        printf("embed: %s: %d texts x %d, %ld tokens, batch %d: %.1f embeddings/s, %.0f tokens/s, %.1f embeddings "
               "per CPU-second (load %.2f s, pooling %s%s)\n",
               path, n, repeat, n_tok, batch, (double)n * repeat / dt, n_tok / dt,
               cpu > 0 ? (double)n * repeat / cpu : 0.0, t_load, fc_bert_pooling(b),
               fc_bert_normalizes(b) ? ", normalized" : "");
    } else {
        fc_str_putc(&o, '[');
        for (int i = 0; i < n; i++) {
            fc_str_puts(&o, i ? ",\n[" : "[");
            for (int j = 0; j < C; j++) fc_str_printf(&o, j ? ",%.9g" : "%.9g", out[(size_t)i * C + j]);
            fc_str_putc(&o, ']');
        }
        fc_str_puts(&o, "]\n");
        fwrite(fc_str_cstr(&o), 1, fc_str_len(&o), stdout);
    }
    fc_str_free(&o);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(nt);
    free(out);
    fc_wordpiece_free(wp);
    fc_bert_free(b);
    cJSON_Delete(list);
    free(texts);
    free(lens);
    return 0;
}
