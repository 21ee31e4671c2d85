/*
 * bench_tokenizer.c: encode / decode speed of src/tokenizer, in MB/s of
 * UTF-8 text, on one text or on the golden corpus, with 1..N threads
 * sharing one tokenizer. The Hugging Face figure to compare with comes from
 * `tools/golden/make_tokenizer_golden.py --bench-only` (same corpus, one
 * thread, CPU time).
 *
 * Build and run (from the repository root):
 *   make BUILD=build/tok build/tok/libfastchat.a
 *   cc -O3 -march=native -Isrc dev/bench_tokenizer.c build/tok/libfastchat.a \
 *      -lcjson -lpcre2-8 -lutf8proc -lm -lpthread -o build/tok/bench_tokenizer
 *   build/tok/bench_tokenizer PATH [--file TEXT] [--threads N] [--reps R]
 * PATH is a GGUF file or a Hugging Face folder; without --file the corpus
 * tests/data/tokenizer/corpus.jsonl is used (each line encoded separately,
 * as a server encodes prompts). Times are CPU time of the encoding threads
 * (so that a loaded machine does not distort them) and wall time.
 */
#include "tokenizer/tokenizer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

typedef struct text { char *s; size_t n; } text;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static text *load_corpus(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    text *v = NULL;
    size_t cap = 0, lcap = 0;
    char *line = NULL;
    *n = 0;
    while (getline(&line, &lcap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *t = cJSON_GetObjectItem(j, "text");
        if (cJSON_IsString(t)) {
            if (*n == cap) v = realloc(v, (cap = cap ? cap * 2 : 1024) * sizeof(text));
            v[*n] = (text){strdup(t->valuestring), strlen(t->valuestring)};
            (*n)++;
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return v;
}

typedef struct job {
    const fc_tokenizer *t;
    const text *texts;
    size_t n_texts;
    int reps;
    double cpu;
    size_t n_ids;
} job;

static void *encode_all(void *p)
{
    job *j = p;
    double t0 = cpu_now();
    for (int r = 0; r < j->reps; r++)
        for (size_t i = 0; i < j->n_texts; i++) {
            int32_t *ids;
            int n = fc_tokenizer_encode(j->t, j->texts[i].s, j->texts[i].n, false, true, &ids);
            j->n_ids += (size_t)(n > 0 ? n : 0);
            free(ids);
        }
    j->cpu = cpu_now() - t0;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_tokenizer PATH [--file TEXT] [--threads N] [--reps R]\n");
        return 1;
    }
    const char *path = argv[1], *file = NULL;
    int threads = 1, reps = 5;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    }
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;

    double t0 = fc_time_sec();
    fc_tokenizer *t = fc_tokenizer_load(path);
    if (!t) {
        fprintf(stderr, "error: %s\n", fc_last_error());
        return 1;
    }
    printf("load: %.1f ms, %d ids\n", (fc_time_sec() - t0) * 1e3, fc_tokenizer_n_vocab(t));

    size_t n_texts = 0, bytes = 0;
    text *texts;
    if (file) {
        fc_mmap *m = fc_mmap_open(file);
        if (!m) return 1;
        texts = malloc(sizeof(text));
        texts[0] = (text){malloc(m->size + 1), m->size};
        memcpy(texts[0].s, m->data, m->size);
        n_texts = 1;
        fc_mmap_free(m);
    } else {
        texts = load_corpus("tests/data/tokenizer/corpus.jsonl", &n_texts);
        if (!texts) {
            fprintf(stderr, "error: tests/data/tokenizer/corpus.jsonl: run from the repository root\n");
            return 1;
        }
    }
    for (size_t i = 0; i < n_texts; i++) bytes += texts[i].n;

    /* encode: every thread encodes everything */
    job jobs[64];
    pthread_t th[64];
    double w0 = fc_time_sec();
    for (int k = 0; k < threads; k++) {
        jobs[k] = (job){t, texts, n_texts, reps, 0, 0};
        pthread_create(&th[k], NULL, encode_all, &jobs[k]);
    }
    double cpu = 0;
    size_t n_ids = 0;
    for (int k = 0; k < threads; k++) {
        pthread_join(th[k], NULL);
        cpu += jobs[k].cpu;
        n_ids += jobs[k].n_ids;
    }
    double wall = fc_time_sec() - w0;
    double total = (double)bytes * reps * threads;
    printf("encode: %zu texts, %.1f kB, %d thread(s) x %d reps: %.2f MB/s per thread (cpu), "
           "%.2f MB/s total (wall), %.2f M tokens/s (wall), %.2f bytes/token\n",
           n_texts, bytes / 1e3, threads, reps, total / cpu / 1e6,
           total / wall / 1e6, (double)n_ids / wall / 1e6, total / (double)n_ids);

    /* decode and streaming decode of the ids of every text */
    double dcpu = 0, scpu = 0;
    size_t dbytes = 0;
    fc_detok *d = fc_detok_new(t, false);
    for (size_t i = 0; i < n_texts; i++) {
        int32_t *ids;
        int n = fc_tokenizer_encode(t, texts[i].s, texts[i].n, false, true, &ids);
        double c0 = cpu_now();
        size_t len;
        for (int r = 0; r < reps; r++) free(fc_tokenizer_decode(t, ids, (size_t)n, false, &len));
        double c1 = cpu_now();
        for (int r = 0; r < reps; r++) {
            fc_detok_reset(d);
            size_t l;
            for (int k = 0; k < n; k++) fc_detok_push(d, ids[k], &l);
            fc_detok_flush(d, &l);
        }
        scpu += cpu_now() - c1;
        dcpu += c1 - c0;
        dbytes += len * (size_t)reps;
        free(ids);
    }
    fc_detok_free(d);
    printf("decode: %.2f MB/s (cpu); streaming decode: %.2f MB/s (cpu)\n", dbytes / dcpu / 1e6,
           dbytes / scpu / 1e6);
    for (size_t i = 0; i < n_texts; i++) free(texts[i].s);
    free(texts);
    fc_tokenizer_free(t);
    return 0;
}
