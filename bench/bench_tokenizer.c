/*
 * bench_tokenizer.c: encode speed of src/tokenizer in MB/s of UTF-8 text,
 * the figure `make bench` sets next to Hugging Face `tokenizers`
 * (bench/bench_tokenizer_hf.py measures that side the same way; the driver
 * is scripts/bench_tokenizer.sh).
 *
 *   bench_tokenizer TOKENIZER CORPUS [--name NAME] [--seconds S]
 *                   [--mode texts|whole|both] [--threads N] [--decode]
 *
 * TOKENIZER is a GGUF file or a Hugging Face folder (tokenizer.json).
 * CORPUS is either a .jsonl file with one {"text": ...} per line (the format
 * of tests/data/tokenizer/corpus.jsonl; "text_hex", when present, gives the
 * bytes of a text holding U+0000), each text encoded separately as a server
 * encodes prompts (mode=texts, the default), or any other file, encoded as
 * one text. --mode whole joins the texts of a .jsonl with "\n" and encodes
 * that as one text; --mode both measures the two, one after the other.
 *
 * Method (the same in the Python counterpart): one untimed warm-up pass over
 * all texts, which also counts the tokens; then whole passes until S seconds
 * (default 3) of CPU time have been spent. Encoding is without BOS/EOS, with
 * special tokens in the text parsed (Hugging Face encode(text,
 * add_special_tokens=False)). The speed is bytes / CPU time of the timed
 * passes, which a loaded machine distorts less than wall time; the wall
 * figure is printed too. With --threads N, N threads share the tokenizer and
 * each runs the passes; mb_per_s is then per thread (bytes / summed CPU
 * time), wall_mb_per_s the total.
 *
 * Output: one line per measurement, key=value, for scripts to read:
 *   tokbench: tokenizer=NAME engine=fastchat op=encode mode=texts texts=N
 *             bytes=N tokens=N passes=N threads=N cpu_s=X wall_s=X
 *             mb_per_s=X wall_mb_per_s=X
 * (bytes and tokens are per pass). --decode adds op=decode (the ids of each
 * text back to text) and op=stream_decode (the same through fc_detok, token
 * by token, as streaming does), bytes being the decoded bytes.
 *
 * Not measured: loading (printed to stderr only), batch APIs (there are
 * none), truncation/padding.
 */
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct text { char *s; size_t n; } text;

static double cpu_process(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_thread(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* ---- corpus ---- */

static void push(text **v, size_t *n, size_t *cap, char *s, size_t len)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = fc_xrealloc(*v, *cap * sizeof(text));
    }
    (*v)[(*n)++] = (text){s, len};
}

/* The texts of a corpus file (see the top of the file); NULL on error. */
static text *load_corpus(const char *path, size_t *n_out)
{
    fc_mmap *m = fc_mmap_open(path);
    if (!m) return NULL;
    const char *d = (const char *)m->data;
    text *v = NULL;
    size_t n = 0, cap = 0;
    if (!ends_with(path, ".jsonl")) {
        char *s = fc_xmalloc(m->size + 1);
        memcpy(s, d, m->size);
        s[m->size] = '\0';
        push(&v, &n, &cap, s, m->size);
    } else {
        size_t i = 0, lineno = 0;
        while (i < m->size) {
            const char *nl = memchr(d + i, '\n', m->size - i);
            size_t e = nl ? (size_t)(nl - d) : m->size;
            lineno++;
            if (e > i) {
                cJSON *j = cJSON_ParseWithLength(d + i, e - i);
                const cJSON *h = cJSON_GetObjectItem(j, "text_hex");
                const cJSON *t = cJSON_GetObjectItem(j, "text");
                if (cJSON_IsString(h)) {
                    size_t k = strlen(h->valuestring) / 2;
                    char *s = fc_xmalloc(k + 1);
                    for (size_t b = 0; b < k; b++) {
                        unsigned x = 0;
                        sscanf(h->valuestring + 2 * b, "%2x", &x);
                        s[b] = (char)x;
                    }
                    s[k] = '\0';
                    push(&v, &n, &cap, s, k);
                } else if (cJSON_IsString(t)) {
                    push(&v, &n, &cap, fc_xstrdup(t->valuestring), strlen(t->valuestring));
                } else {
                    fprintf(stderr, "error: %s:%zu: no \"text\" string\n", path, lineno);
                    cJSON_Delete(j);
                    for (size_t k = 0; k < n; k++) free(v[k].s);
                    free(v);
                    fc_mmap_free(m);
                    return NULL;
                }
                cJSON_Delete(j);
            }
            i = e + 1;
        }
    }
    fc_mmap_free(m);
    *n_out = n;
    return v;
}

/* All texts joined with "\n", as one text. */
static text join(const text *v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += v[i].n + (i > 0);
    char *s = fc_xmalloc(len + 1), *p = s;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) *p++ = '\n';
        memcpy(p, v[i].s, v[i].n);
        p += v[i].n;
    }
    *p = '\0';
    return (text){s, len};
}

/* ---- encode ---- */

typedef struct job {
    const fc_tokenizer *tok;
    const text *texts;
    size_t n_texts;
    double seconds;
    size_t tokens;   /* per pass, from the warm-up */
    bool consistent; /* every pass gave that many tokens */
    int passes;
    int failed;      /* encode returned an error */
    double cpu;      /* thread CPU seconds of the timed passes */
    double w0, w1;   /* wall clock around them */
} job;

static size_t encode_pass(job *j)
{
    size_t n_ids = 0;
    for (size_t i = 0; i < j->n_texts; i++) {
        int32_t *ids;
        int n = fc_tokenizer_encode(j->tok, j->texts[i].s, j->texts[i].n, false, true, &ids);
        if (n < 0) j->failed++;
        else n_ids += (size_t)n;
        free(ids);
    }
    return n_ids;
}

static void *encode_job(void *p)
{
    job *j = p;
    j->tokens = encode_pass(j);
    j->consistent = true;
    double t0 = cpu_thread();
    j->w0 = fc_time_sec();
    do {
        if (encode_pass(j) != j->tokens) j->consistent = false;
        j->passes++;
        j->cpu = cpu_thread() - t0;
    } while (j->cpu < j->seconds);
    j->w1 = fc_time_sec();
    return NULL;
}

static void print_line(const char *name, const char *op, const char *mode, size_t n_texts, size_t bytes,
                       size_t tokens, int passes, int threads, double cpu, double wall)
{
    double total = (double)bytes * passes;
    printf("tokbench: tokenizer=%s engine=fastchat op=%s mode=%s texts=%zu bytes=%zu tokens=%zu passes=%d "
           "threads=%d cpu_s=%.3f wall_s=%.3f mb_per_s=%.3f wall_mb_per_s=%.3f\n",
           name, op, mode, n_texts, bytes, tokens, passes, threads, cpu, wall,
           cpu > 0 ? total / cpu / 1e6 : 0.0, wall > 0 ? total / wall / 1e6 : 0.0);
    fflush(stdout);
}

/* ---- decode ---- */

/* Decodes the ids of every text until `seconds` of CPU time; streaming
 * through fc_detok when `stream`. */
static void bench_decode(const char *name, const char *mode, const fc_tokenizer *tok, const text *texts,
                         size_t n_texts, double seconds, bool stream)
{
    int32_t **ids = fc_xcalloc(n_texts, sizeof *ids);
    int *n_ids = fc_xcalloc(n_texts, sizeof *n_ids);
    size_t tokens = 0;
    for (size_t i = 0; i < n_texts; i++) {
        n_ids[i] = fc_tokenizer_encode(tok, texts[i].s, texts[i].n, false, true, &ids[i]);
        if (n_ids[i] < 0) n_ids[i] = 0;
        tokens += (size_t)n_ids[i];
    }
    fc_detok *d = stream ? fc_detok_new(tok, false) : NULL;
    size_t bytes = 0;
    int passes = 0;
    double c0 = 0, w0 = 0;
    for (int r = -1;; r++) { /* pass -1: warm-up, counts the bytes */
        if (r == 0) { c0 = cpu_process(); w0 = fc_time_sec(); }
        size_t b = 0;
        for (size_t i = 0; i < n_texts; i++) {
            size_t len = 0;
            if (stream) {
                fc_detok_reset(d);
                for (int k = 0; k < n_ids[i]; k++) {
                    fc_detok_push(d, ids[i][k], &len);
                    b += len;
                }
                fc_detok_flush(d, &len);
                b += len;
            } else {
                free(fc_tokenizer_decode(tok, ids[i], (size_t)n_ids[i], false, &len));
                b += len;
            }
        }
        if (r < 0) { bytes = b; continue; }
        passes++;
        if (cpu_process() - c0 >= seconds) break;
    }
    print_line(name, stream ? "stream_decode" : "decode", mode, n_texts, bytes, tokens, passes, 1,
               cpu_process() - c0, fc_time_sec() - w0);
    fc_detok_free(d);
    for (size_t i = 0; i < n_texts; i++) free(ids[i]);
    free(ids);
    free(n_ids);
}

/* ---- main ---- */

static const char *base_name(const char *path, char *buf, size_t cap)
{
    /* "tests/data/tokenizer/llama3/" -> "llama3"; "x/M.gguf" -> "M" */
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    size_t len = n - s;
    if (len > 5 && !memcmp(path + n - 5, ".gguf", 5)) len -= 5;
    if (len >= cap) len = cap - 1;
    memcpy(buf, path + s, len);
    buf[len] = '\0';
    return buf;
}

/* Encodes (and with `decode`, decodes) texts[0..n_texts); returns 0, or 1
 * when an encode failed or the count of tokens changed between passes. */
static int bench_mode(const char *name, const char *mode, const fc_tokenizer *tok, const text *texts,
                      size_t n_texts, double seconds, int threads, bool decode)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n_texts; i++) bytes += texts[i].n;
    job *jobs = fc_xcalloc((size_t)threads, sizeof *jobs);
    pthread_t *th = fc_xcalloc((size_t)threads, sizeof *th);
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){.tok = tok, .texts = texts, .n_texts = n_texts, .seconds = seconds};
        if (threads == 1) encode_job(&jobs[0]);
        else pthread_create(&th[k], NULL, encode_job, &jobs[k]);
    }
    int passes = 0, rc = 0;
    double cpu = 0, w0 = 0, w1 = 0;
    for (int k = 0; k < threads; k++) {
        if (threads > 1) pthread_join(th[k], NULL);
        passes += jobs[k].passes;
        cpu += jobs[k].cpu;
        if (k == 0 || jobs[k].w0 < w0) w0 = jobs[k].w0;
        if (k == 0 || jobs[k].w1 > w1) w1 = jobs[k].w1;
        if (!jobs[k].consistent || jobs[k].tokens != jobs[0].tokens) {
            fprintf(stderr, "error: the token count changed between passes\n");
            rc = 1;
        }
        if (jobs[k].failed) {
            fprintf(stderr, "error: %d encode calls failed: %s\n", jobs[k].failed, fc_last_error());
            rc = 1;
        }
    }
    print_line(name, "encode", mode, n_texts, bytes, jobs[0].tokens, passes, threads, cpu, w1 - w0);
    if (decode) {
        bench_decode(name, mode, tok, texts, n_texts, seconds, false);
        bench_decode(name, mode, tok, texts, n_texts, seconds, true);
    }
    free(jobs);
    free(th);
    return rc;
}

int main(int argc, char **argv)
{
    const char *usage = "usage: bench_tokenizer TOKENIZER CORPUS [--name NAME] [--seconds S] "
                        "[--mode texts|whole|both] [--threads N] [--decode]\n";
    const char *paths[2] = {NULL, NULL}, *name = NULL, *mode = "texts";
    double seconds = 3.0;
    int threads = 1, n_paths = 0;
    bool decode = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(a, "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(a, "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(a, "--decode")) decode = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        else if (a[0] != '-' && n_paths < 2) paths[n_paths++] = a;
        else { fprintf(stderr, "error: unknown argument '%s'\n%s", a, usage); return 1; }
    }
    if (n_paths != 2) { fputs(usage, stderr); return 1; }
    if (threads < 1 || threads > 256) { fprintf(stderr, "error: --threads takes 1..256\n"); return 1; }
    bool do_texts = !strcmp(mode, "texts") || !strcmp(mode, "both");
    bool do_whole = !strcmp(mode, "whole") || !strcmp(mode, "both");
    if (!do_texts && !do_whole) { fprintf(stderr, "error: --mode takes texts, whole or both\n"); return 1; }
    if (!(seconds > 0)) seconds = 0.001;
    char nbuf[256];
    if (!name) name = base_name(paths[0], nbuf, sizeof nbuf);

    double t0 = fc_time_sec();
    fc_tokenizer *tok = fc_tokenizer_load(paths[0]);
    if (!tok) {
        fprintf(stderr, "error: %s: %s\n", paths[0], fc_last_error());
        return 1;
    }
    fprintf(stderr, "bench_tokenizer: %s loaded in %.1f ms, %d ids\n", paths[0], (fc_time_sec() - t0) * 1e3,
            fc_tokenizer_n_vocab(tok));

    size_t n_texts = 0;
    text *texts = load_corpus(paths[1], &n_texts);
    if (!texts) {
        fprintf(stderr, "error: cannot read the corpus %s\n", paths[1]);
        fc_tokenizer_free(tok);
        return 1;
    }
    int rc = 0;
    /* A corpus of one text has one mode, "whole". */
    if (do_texts && n_texts > 1) rc |= bench_mode(name, "texts", tok, texts, n_texts, seconds, threads, decode);
    if (do_whole || n_texts == 1) {
        text all = join(texts, n_texts);
        rc |= bench_mode(name, "whole", tok, &all, 1, seconds, threads, decode);
        free(all.s);
    }
    for (size_t i = 0; i < n_texts; i++) free(texts[i].s);
    free(texts);
    fc_tokenizer_free(tok);
    return rc;
}
