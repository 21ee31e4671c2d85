/*
 * cmd_tokenize.c: `fastchat tokenize` (text -> ids as a JSON array) and
 * `fastchat detokenize` (ids -> text), with the model's own tokenizer: a
 * GGUF file's tokenizer.ggml.* metadata or a Hugging Face folder's
 * tokenizer.json (or SentencePiece tokenizer.model). The ids are those
 * Hugging Face's tokenizer.encode(text) gives (BOS/EOS as the tokenizer adds
 * them, special tokens in the text parsed); the flags turn either off, as
 * llama.cpp's llama-tokenize --no-bos / --no-parse-special do.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

static const char TOK_HINT[] = "give the text with --text T or --file F (- for stdin); see fastchat tokenize --help";
static const char DETOK_HINT[] = "see fastchat detokenize --help";

static fc_tokenizer *load(const char *path)
{
    if (!path) path = fc_cli_default_model();
    fc_tokenizer *t = fc_tokenizer_load(path);
    if (!t)
        fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder with tokenizer.json or a "
                   "SentencePiece tokenizer.model",
                   "%s", fc_last_error());
    return t;
}

int fc_cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL, *file = NULL;
    bool add_special = true, parse_special = true, pieces = false;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &path, .metavar = "M",
         .help = "GGUF file or Hugging Face folder (default: the default model)"},
        {"--text", FC_FLAG_STRING, &text, .metavar = "T", .help = "the text"},
        {"--file", FC_FLAG_STRING, &file, .metavar = "F", .help = "read the text from a file (- for stdin)"},
        {"--no-special", FC_FLAG_FALSE, &add_special, .help = "add no BOS/EOS (add_special_tokens=False)"},
        {"--no-parse-special", FC_FLAG_FALSE, &parse_special, .help = "special tokens written in the text are plain text"},
        {"--pieces", FC_FLAG_TRUE, &pieces,
         .help = "print [id, \"piece\"] pairs instead of ids (a byte that is no UTF-8 alone as \\udcXX)"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat tokenize [--model-path M] (--text T | --file F) [--no-special]\n"
                 "                         [--no-parse-special] [--pieces]",
        .about = "prints the token ids of the text as a JSON array\n",
        .flags = flags,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!text == !file) fc_cli_die(TOK_HINT, "no text");
    size_t len;
    char *owned = NULL;
    if (file && !(text = owned = fc_file_read(file, &len, 0))) fc_cli_die(NULL, "%s", fc_last_error());
    else len = strlen(text);
    fc_tokenizer *t = load(path);
    int32_t *ids;
    int n = fc_tokenizer_encode(t, text, len, add_special, parse_special, &ids);
    if (n < 0) fc_cli_die(NULL, "%s", fc_last_error());
    fc_str o = FC_STR_INIT;
    fc_str_putc(&o, '[');
    for (int i = 0; i < n; i++) {
        if (i) fc_str_puts(&o, pieces ? ", " : ",");
        if (pieces) {
            size_t pl;
            const char *p = fc_tokenizer_token_to_piece(t, ids[i], &pl);
            fc_str_printf(&o, "[%d, ", ids[i]);
            /* a piece can be part of a character: surrogateescape keeps it lossless and valid JSON */
            fc_json_put_strn_flags(&o, p, pl, FC_JSON_SURROGATEESCAPE);
            fc_str_putc(&o, ']');
        } else {
            fc_str_printf(&o, "%d", ids[i]);
        }
    }
    fc_str_puts(&o, "]\n");
    fwrite(fc_str_cstr(&o), 1, fc_str_len(&o), stdout);
    fc_str_free(&o);
    free(ids);
    free(owned);
    fc_tokenizer_free(t);
    return 0;
}

int fc_cmd_detokenize(int argc, char **argv)
{
    const char *path = NULL, *ids_arg = NULL;
    bool skip = false;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &path, .metavar = "M",
         .help = "GGUF file or Hugging Face folder (default: the default model)"},
        {"--ids", FC_FLAG_STRING, &ids_arg, .metavar = "1,2,3", .help = "the token ids"},
        {"--skip-special", FC_FLAG_TRUE, &skip, .help = "drop special tokens (skip_special_tokens=True)"},
        {0},
    };
    const fc_flags_cmd cmd = {
        .usage = "fastchat detokenize [--model-path M] --ids 1,2,3 [--skip-special]",
        .about = "prints the text of the ids (and a newline)\n",
        .flags = flags,
    };
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!ids_arg) fc_cli_die(DETOK_HINT, "give the ids with --ids 1,2,3");
    int n;
    int32_t *ids = fc_cli_parse_ids(ids_arg, &n);
    fc_tokenizer *t = load(path);
    for (int i = 0; i < n; i++)
        if (ids[i] >= fc_tokenizer_n_vocab(t))
            fc_cli_die("ids run from 0 to the vocabulary size - 1", "id %d is out of range (vocabulary: %d)",
                       ids[i], fc_tokenizer_n_vocab(t));
    size_t len;
    char *s = fc_tokenizer_decode(t, ids, (size_t)n, skip, &len);
    fwrite(s, 1, len, stdout);
    putchar('\n');
    free(s);
    free(ids);
    fc_tokenizer_free(t);
    return 0;
}
