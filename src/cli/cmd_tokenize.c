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
#include "tokenizer/tokenizer.h"

#include <string.h>

static const char TOK_USAGE[] =
    "usage: fastchat tokenize [--model-path M] (--text T | --file F) [--no-special]\n"
    "                         [--no-parse-special] [--pieces]\n"
    "  prints the token ids of the text as a JSON array\n"
    "  --model-path M       GGUF file or Hugging Face folder (default: the default model)\n"
    "  --no-special         add no BOS/EOS (add_special_tokens=False)\n"
    "  --no-parse-special   special tokens written in the text are plain text\n"
    "  --pieces             print [id, \"piece\"] pairs instead of ids\n";

static const char DETOK_USAGE[] =
    "usage: fastchat detokenize [--model-path M] --ids 1,2,3 [--skip-special]\n"
    "  prints the text of the ids (and a newline)\n"
    "  --skip-special       drop special tokens (skip_special_tokens=True)\n";

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

static char *read_file(const char *path, size_t *len)
{
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "rb");
    if (!f) fc_cli_die(NULL, "%s: cannot open", path);
    size_t cap = 4096, n = 0, r;
    char *s = fc_xmalloc(cap);
    while ((r = fread(s + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) s = fc_xrealloc(s, cap *= 2);
    }
    if (f != stdin) fclose(f);
    *len = n;
    return s;
}

/* A JSON string literal (control characters and invalid UTF-8 escaped). */
static void put_json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c < 0x20 || c == 0x7F) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int fc_cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL, *file = NULL;
    bool add_special = true, parse_special = true, pieces = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model-path") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--text") && i + 1 < argc) text = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--no-special")) add_special = false;
        else if (!strcmp(argv[i], "--no-parse-special")) parse_special = false;
        else if (!strcmp(argv[i], "--pieces")) pieces = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(TOK_USAGE, stdout);
            return 0;
        } else {
            fc_cli_die(TOK_USAGE, "unknown option '%s'", argv[i]);
        }
    }
    if (!text == !file) fc_cli_die(TOK_USAGE, "give the text with --text T or --file F (- for stdin)");
    size_t len;
    char *owned = NULL;
    if (file) text = owned = read_file(file, &len);
    else len = strlen(text);
    fc_tokenizer *t = load(path);
    int32_t *ids;
    int n = fc_tokenizer_encode(t, text, len, add_special, parse_special, &ids);
    if (n < 0) fc_cli_die(NULL, "%s", fc_last_error());
    putchar('[');
    for (int i = 0; i < n; i++) {
        if (i) fputs(pieces ? ", " : ",", stdout);
        if (pieces) {
            size_t pl;
            const char *p = fc_tokenizer_token_to_piece(t, ids[i], &pl);
            printf("[%d, ", ids[i]);
            put_json_str(p, pl);
            putchar(']');
        } else {
            printf("%d", ids[i]);
        }
    }
    puts("]");
    free(ids);
    free(owned);
    fc_tokenizer_free(t);
    return 0;
}

int fc_cmd_detokenize(int argc, char **argv)
{
    const char *path = NULL, *ids_arg = NULL;
    bool skip = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model-path") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc) ids_arg = argv[++i];
        else if (!strcmp(argv[i], "--skip-special")) skip = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(DETOK_USAGE, stdout);
            return 0;
        } else {
            fc_cli_die(DETOK_USAGE, "unknown option '%s'", argv[i]);
        }
    }
    if (!ids_arg) fc_cli_die(DETOK_USAGE, "give the ids with --ids 1,2,3");
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
