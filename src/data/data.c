/*
 * data.c: reading a conversation file, writing the output array, the
 * parallel driver, the Python string rules the scripts rely on, and the
 * simple tools (merge, sample, split-train-test, filter-wrong-format,
 * extract-gpt4-only, extract-single-round, convert-alpaca). What each tool
 * mirrors is in data.h; the larger ones live in data_*.c.
 *
 * The driver (dt_run) cuts the selected elements into batches; in a batch
 * each thread takes a contiguous run, parses and handles its conversations
 * into its own buffers, and the main thread then writes the results in order.
 */
#include "data/data_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "base/fc_base.h"
#include "data/np_random.h"

/* ---- reading ---- */

struct fc_data_file {
    char *path;
    fc_mmap *map;       /* NULL for an empty file */
    fc_pj_span *spans;
    size_t n;
};

static void line_col(const char *b, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, last = 0;
    for (size_t i = 0; i < off; i++)
        if (b[i] == '\n') { l++; last = i + 1; }
    *line = l;
    *col = off - last + 1;
}

fc_data_file *fc_data_file_open(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        FC_LOG_ERROR("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        FC_LOG_ERROR("%s: is a directory, not a JSON file", path);
        return NULL;
    }
    fc_data_file *f = fc_xcalloc(1, sizeof(*f));
    f->path = fc_xstrdup(path);
    const char *buf = "";
    size_t len = 0;
    if (st.st_size > 0) {
        f->map = fc_mmap_open(path);
        if (!f->map) goto fail;
        buf = (const char *)f->map->data;
        len = f->map->size;
    }
    fc_pj_error err;
    bool not_array;
    if (!fc_pyjson_scan_array(buf, len, &f->spans, &f->n, &err, &not_array)) {
        size_t line, col;
        line_col(buf, err.offset, &line, &col);
        FC_LOG_ERROR("%s: malformed JSON at byte %zu (line %zu, column %zu): %s", path, err.offset,
                     line, col, err.msg);
        goto fail;
    }
    if (not_array) {
        FC_LOG_ERROR("%s: the top level is not a JSON array of conversations", path);
        goto fail;
    }
    return f;
fail:
    fc_data_file_free(f);
    return NULL;
}

void fc_data_file_free(fc_data_file *f)
{
    if (!f) return;
    fc_mmap_free(f->map);
    free(f->spans);
    free(f->path);
    free(f);
}

size_t fc_data_file_count(const fc_data_file *f) { return f->n; }

fc_pj *fc_data_file_get(const fc_data_file *f, size_t i, fc_pj_arena *a)
{
    FC_ASSERT(i < f->n);
    fc_pj_error err;
    fc_pj *v = fc_pyjson_parse(a, (const char *)f->map->data + f->spans[i].off, f->spans[i].len, &err);
    FC_ASSERT(v); /* the scan accepted it */
    return v;
}

void fc_data_pyslice(long long begin, bool has_begin, long long end, bool has_end, size_t n,
                     size_t *lo, size_t *hi)
{
    long long N = (long long)n, b = 0, e = N;
    if (has_begin) {
        b = begin < 0 ? begin + N : begin;
        if (b < 0) b = 0;
        if (b > N) b = N;
    }
    if (has_end) {
        e = end < 0 ? end + N : end;
        if (e < 0) e = 0;
        if (e > N) e = N;
    }
    if (e < b) e = b;
    *lo = (size_t)b;
    *hi = (size_t)e;
}

char *fc_data_str_replace(const char *s, const char *old, const char *rep)
{
    size_t ol = strlen(old), rl = strlen(rep), cnt = 0;
    for (const char *p = s; (p = strstr(p, old)); p += ol) cnt++;
    char *r = fc_xmalloc(strlen(s) + cnt * rl + 1), *w = r;
    const char *p = s, *q;
    while ((q = strstr(p, old))) {
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        memcpy(w, rep, rl);
        w += rl;
        p = q + ol;
    }
    strcpy(w, p);
    return r;
}

/* ---- writer ---- */

bool dt_writer_open(dt_writer *w, const char *path)
{
    memset(w, 0, sizeof(*w));
    w->path = fc_xstrdup(path);
    size_t l = strlen(path);
    w->tmp = fc_xmalloc(l + 16);
    snprintf(w->tmp, l + 16, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        FC_LOG_ERROR("%s: cannot create: %s", path, strerror(errno));
        free(w->tmp);
        free(w->path);
        w->tmp = w->path = NULL;
        return false;
    }
    mode_t um = umask(0);
    umask(um);
    fchmod(fd, 0666 & ~um);
    w->fp = fdopen(fd, "w");
    FC_ASSERT(w->fp);
    setvbuf(w->fp, NULL, _IOFBF, 1 << 20);
    fputc('[', w->fp);
    return true;
}

bool dt_writer_put(dt_writer *w, const char *chunk, size_t len, size_t n)
{
    if (!len) return true;
    if (w->count == 0) { chunk++; len--; } /* the first element has no comma */
    w->count += n;
    return fwrite(chunk, 1, len, w->fp) == len;
}

bool dt_writer_close(dt_writer *w)
{
    if (w->count) fputs("\n]", w->fp);
    else fputc(']', w->fp);
    bool ok = !ferror(w->fp);
    ok = (fclose(w->fp) == 0) && ok;
    w->fp = NULL;
    if (ok && rename(w->tmp, w->path) != 0) ok = false;
    if (!ok) {
        FC_LOG_ERROR("%s: write failed: %s", w->path, strerror(errno));
        unlink(w->tmp);
    }
    free(w->tmp);
    free(w->path);
    w->tmp = w->path = NULL;
    return ok;
}

void dt_writer_abort(dt_writer *w)
{
    if (w->fp) fclose(w->fp);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    memset(w, 0, sizeof(*w));
}

void dt_put_elem(fc_pj_out *out, const fc_pj *v, bool ensure_ascii)
{
    fc_pj_out_putn(out, ",\n  ", 4);
    fc_pyjson_write(out, v, 1, ensure_ascii);
}

FILE *dt_msg(const fc_data_opts *o) { return o && o->msg ? o->msg : stdout; }

/* ---- driver ---- */

typedef struct rec {
    int code;
    size_t out_off, out_len, aux_off, aux_len;
} rec;

typedef struct worker {
    pthread_t th;
    const fc_data_file *f;
    const size_t *idx;
    size_t lo, hi; /* positions in idx (or indices) */
    dt_elem_fn fn;
    void *ctx;
    fc_pj_arena *a;
    fc_pj_out out, aux;
    rec *recs; /* hi - lo of them */
    bool failed;
} worker;

static void *work(void *arg)
{
    worker *wk = arg;
    wk->out.len = wk->aux.len = 0;
    for (size_t k = wk->lo; k < wk->hi; k++) {
        size_t i = wk->idx ? wk->idx[k] : k;
        fc_pj_arena_reset(wk->a);
        fc_pj *v = fc_data_file_get(wk->f, i, wk->a);
        rec *r = &wk->recs[k - wk->lo];
        r->out_off = wk->out.len;
        r->aux_off = wk->aux.len;
        r->code = wk->fn(wk->ctx, wk->a, i, v, &wk->out, &wk->aux);
        r->out_len = wk->out.len - r->out_off;
        r->aux_len = wk->aux.len - r->aux_off;
        if (r->code < 0) {
            wk->failed = true;
            wk->hi = k + 1;
            break;
        }
    }
    return NULL;
}

static int n_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

bool dt_run(const fc_data_file *f, const size_t *idx, size_t n, dt_elem_fn fn, dt_reduce_fn reduce,
            void *ctx, dt_writer *w, const fc_data_opts *o, const char *label)
{
    int nth = o && o->n_threads > 0 ? o->n_threads : n_cpus();
    if (nth > 64) nth = 64;
    bool progress = o && o->progress;
    FILE *msg = dt_msg(o);
    const size_t BATCH = 4096;
    worker wk[64];
    memset(wk, 0, sizeof(wk));
    for (int t = 0; t < nth; t++) {
        wk[t].a = fc_pj_arena_new();
        wk[t].recs = fc_xmalloc(BATCH * sizeof(rec));
    }
    bool ok = true;
    double t0 = fc_time_sec(), last = 0;
    for (size_t b = 0; b < n && ok; b += BATCH) {
        size_t bn = FC_MIN(BATCH, n - b);
        int used = (int)FC_MIN((size_t)nth, (bn + 63) / 64); /* tiny batches: fewer threads */
        if (used < 1) used = 1;
        for (int t = 0; t < used; t++) {
            worker *k = &wk[t];
            k->f = f;
            k->idx = idx;
            k->lo = b + bn * (size_t)t / (size_t)used;
            k->hi = b + bn * (size_t)(t + 1) / (size_t)used;
            k->fn = fn;
            k->ctx = ctx;
            k->failed = false;
            if (t > 0) pthread_create(&k->th, NULL, work, k);
        }
        work(&wk[0]);
        for (int t = 1; t < used; t++) pthread_join(wk[t].th, NULL);
        for (int t = 0; t < used && ok; t++) {
            worker *k = &wk[t];
            for (size_t j = 0; j < k->hi - k->lo; j++) {
                rec *r = &k->recs[j];
                size_t i = idx ? idx[k->lo + j] : k->lo + j;
                if (r->code < 0) {
                    FC_LOG_ERROR("%s: element %zu: %.*s", f->path, i, (int)r->aux_len,
                                 k->aux.p + r->aux_off);
                    ok = false;
                    break;
                }
                if (reduce) {
                    if (!reduce(ctx, i, r->code, k->out.p + r->out_off, r->out_len,
                                k->aux.p + r->aux_off, r->aux_len, w, msg)) {
                        ok = false;
                        break;
                    }
                    continue;
                }
                if (r->aux_len) fwrite(k->aux.p + r->aux_off, 1, r->aux_len, msg);
                if (w && !dt_writer_put(w, k->out.p + r->out_off, r->out_len, (size_t)r->code)) {
                    FC_LOG_ERROR("%s: write failed: %s", w->path, strerror(errno));
                    ok = false;
                    break;
                }
            }
        }
        double now = fc_time_sec();
        if (progress && (now - last > 0.2 || b + bn >= n)) {
            last = now;
            size_t done = b + bn;
            double el = now - t0, eta = done ? el * (double)(n - done) / (double)done : 0;
            fprintf(stderr, "\r%s: %zu/%zu (%d%%) %.1fs, eta %.1fs   ", label, done, n,
                    (int)(100.0 * (double)done / (double)(n ? n : 1)), el, eta);
        }
    }
    if (progress && n) fputc('\n', stderr);
    for (int t = 0; t < nth; t++) {
        fc_pj_arena_free(wk[t].a);
        fc_pj_out_free(&wk[t].out);
        fc_pj_out_free(&wk[t].aux);
        free(wk[t].recs);
    }
    return ok;
}

/* ---- Python string rules ---- */

unsigned dt_next_cp(const char *s, size_t n, size_t *i)
{
    const unsigned char *b = (const unsigned char *)s;
    unsigned c = b[*i];
    int l;
    unsigned cp;
    if (c < 0x80) { (*i)++; return c; }
    if (c >= 0xF0) { l = 4; cp = c & 0x07; }
    else if (c >= 0xE0) { l = 3; cp = c & 0x0F; }
    else { l = 2; cp = c & 0x1F; }
    size_t j = *i + 1;
    for (int k = 1; k < l && j < n; k++, j++) cp = (cp << 6) | (b[j] & 0x3F);
    *i = j;
    return cp;
}

bool dt_py_isspace(unsigned cp)
{
    if (cp < 0x80) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool dt_py_isdigit(unsigned cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND;
}

bool dt_py_isprintable(unsigned cp)
{
    if (cp == ' ') return true;
    if (cp < 0x20 || cp == 0x7F) return false;
    if (cp < 0x7F) return true;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default:
        return true;
    }
}

void dt_py_strip(const char *s, size_t n, size_t *lo, size_t *hi)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        unsigned cp = dt_next_cp(s, n, &j);
        if (!dt_py_isspace(cp)) break;
        i = j;
    }
    size_t e = n;
    while (e > i) {
        size_t k = e - 1;
        while (k > i && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        size_t j = k;
        unsigned cp = dt_next_cp(s, n, &j);
        if (!dt_py_isspace(cp)) break;
        e = k;
    }
    *lo = i;
    *hi = e;
}

/* ---- shared helpers for the simple tools ---- */

static int shape_err(fc_pj_out *aux, const char *what)
{
    fc_pj_out_puts(aux, what);
    return -1;
}

/* The "conversations" list of a sample, or NULL with a message in aux. */
static fc_pj *convs_of(fc_pj *v, fc_pj_out *aux)
{
    fc_pj *c = fc_pj_get(v, "conversations");
    if (!c || c->type != FC_PJ_ARR) {
        shape_err(aux, v->type != FC_PJ_OBJ ? "expected an object with a \"conversations\" list"
                                            : "no \"conversations\" list");
        return NULL;
    }
    return c;
}

/* The "value" string of a turn, or NULL with a message in aux. */
static fc_pj *value_of(fc_pj *turn, fc_pj_out *aux)
{
    fc_pj *s = fc_pj_get(turn, "value");
    if (!s || s->type != FC_PJ_STR) {
        shape_err(aux, "a turn without a string \"value\"");
        return NULL;
    }
    return s;
}

static int copy_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    dt_put_elem(out, v, false);
    return 1;
}

/* Opens the output, runs fn over idx[0..n), closes. */
static bool run_to_file(const fc_data_file *f, const size_t *idx, size_t n, dt_elem_fn fn,
                        void *ctx, const char *out_file, const fc_data_opts *o, const char *label,
                        size_t *n_out)
{
    dt_writer w;
    if (!dt_writer_open(&w, out_file)) return false;
    if (!dt_run(f, idx, n, fn, NULL, ctx, &w, o, label)) {
        dt_writer_abort(&w);
        return false;
    }
    if (n_out) *n_out = w.count;
    return dt_writer_close(&w);
}

/* ---- merge ---- */

bool fc_data_merge(const char *const *in_files, int n_in, const char *out_file, const fc_data_opts *o)
{
    /* Python loads every file before writing: check them all first */
    fc_data_file **fs = fc_xcalloc((size_t)n_in, sizeof(*fs));
    bool ok = true;
    size_t total = 0;
    for (int i = 0; i < n_in && ok; i++) {
        fs[i] = fc_data_file_open(in_files[i]);
        if (!fs[i]) ok = false;
        else total += fs[i]->n;
    }
    if (ok) {
        fprintf(dt_msg(o), "#out: %zu\n", total);
        dt_writer w;
        ok = dt_writer_open(&w, out_file);
        for (int i = 0; i < n_in && ok; i++)
            ok = dt_run(fs[i], NULL, fs[i]->n, copy_elem, NULL, NULL, &w, o, "merge");
        if (ok) ok = dt_writer_close(&w);
        else if (w.fp) dt_writer_abort(&w);
    }
    for (int i = 0; i < n_in; i++) fc_data_file_free(fs[i]);
    free(fs);
    return ok;
}

/* ---- sample ---- */

typedef struct sample_ctx {
    long long max_length;
} sample_ctx;

static int sample_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    sample_ctx *c = ctx;
    fc_pj *convs = convs_of(v, aux);
    if (!convs) return -1;
    size_t len = 0;
    for (size_t k = 0; k < convs->len; k++) {
        fc_pj *s = value_of(&convs->items[k], aux);
        if (!s) return -1;
        len += fc_pj_str_cplen(s->str, s->len);
    }
    if ((long long)len > c->max_length) return 0;
    dt_put_elem(out, v, false);
    return 1;
}

bool fc_data_sample(const char *in_file, const char *out_file, long long begin, long long end,
                    long long max_length, bool keep_order, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t n = f->n;
    size_t *perm = fc_xmalloc((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) perm[i] = i;
    if (!keep_order) {
        fc_np_random r;
        fc_np_random_seed(&r, 42);
        fc_np_random_shuffle(&r, perm, n);
    }
    /* for i in range(begin, min(end, n)): content[i] (negative i counts from the end) */
    long long hi = end < (long long)n ? end : (long long)n;
    size_t cnt = hi > begin ? (size_t)(hi - begin) : 0;
    size_t *sel = fc_xmalloc((cnt ? cnt : 1) * sizeof(size_t));
    bool ok = true;
    for (size_t k = 0; k < cnt; k++) {
        long long i = begin + (long long)k, j = i < 0 ? i + (long long)n : i;
        if (j < 0) {
            FC_LOG_ERROR("%s: --begin %lld: list index out of range", in_file, begin);
            ok = false;
            break;
        }
        sel[k] = perm[j];
    }
    size_t n_out = 0;
    if (ok) {
        sample_ctx c = {max_length};
        dt_writer w;
        ok = dt_writer_open(&w, out_file);
        if (ok && !dt_run(f, sel, cnt, sample_elem, NULL, &c, &w, o, "sample")) {
            dt_writer_abort(&w);
            ok = false;
        }
        if (ok) {
            n_out = w.count;
            fprintf(dt_msg(o), "#in: %zu, #out: %zu\n", n, n_out);
            ok = dt_writer_close(&w);
        }
    }
    free(sel);
    free(perm);
    fc_data_file_free(f);
    return ok;
}

/* ---- split-train-test ---- */

bool fc_data_split_train_test(const char *in_file, double ratio, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t n = f->n;
    size_t *perm = fc_xmalloc((n ? n : 1) * sizeof(size_t));
    for (size_t i = 0; i < n; i++) perm[i] = i;
    fc_np_random r;
    fc_np_random_seed(&r, 0);
    fc_np_random_shuffle(&r, perm, n);
    double s = ratio * (double)n; /* int(args.ratio * len(content)) truncates toward 0 */
    long long split = (long long)s;
    /* Python slices: content[:split], content[split:] */
    size_t lo, hi;
    fc_data_pyslice(0, false, split, true, n, &lo, &hi);
    size_t cut = hi;
    fprintf(dt_msg(o), "#train: %zu, #test: %zu\n", cut, n - cut);
    char *train = fc_data_str_replace(in_file, ".json", "_train.json");
    char *test = fc_data_str_replace(in_file, ".json", "_test.json");
    bool ok = run_to_file(f, perm, cut, copy_elem, NULL, train, o, "train", NULL) &&
              run_to_file(f, perm + cut, n - cut, copy_elem, NULL, test, o, "test", NULL);
    free(train);
    free(test);
    free(perm);
    fc_data_file_free(f);
    return ok;
}

/* ---- filter-wrong-format ---- */

/* re.search("\n1\. [^2]*\n1\. ", s): two "\n1. " with no '2' between them. */
static bool wrong_list_numbering(const char *s, size_t n)
{
    bool open = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '2') open = false;
        else if (c == '\n' && i + 4 <= n && s[i + 1] == '1' && s[i + 2] == '.' && s[i + 3] == ' ') {
            if (open) return true;
            open = true;
            i += 3;
        }
    }
    return false;
}

static int wrong_format_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out,
                             fc_pj_out *aux)
{
    fc_pj *convs = convs_of(v, aux);
    if (!convs) return -1;
    for (size_t k = 0; k < convs->len; k++) {
        fc_pj *s = value_of(&convs->items[k], aux);
        if (!s) return -1;
        if (wrong_list_numbering(s->str, s->len)) {
            fc_pj *id = fc_pj_get(v, "id");
            if (!id) return shape_err(aux, "no \"id\"");
            fc_pyjson_write_pystr(aux, id);
            fc_pj_out_puts(aux, " contains a wrong format.\n");
            return 0;
        }
    }
    dt_put_elem(out, v, false);
    return 1;
}

bool fc_data_filter_wrong_format(const char *in_file, const char *out_file, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t n_out = 0;
    bool ok = run_to_file(f, NULL, f->n, wrong_format_elem, NULL, out_file, o, "filter-wrong-format",
                          &n_out);
    if (ok) fprintf(dt_msg(o), "#in: %zu, #out: %zu\n", f->n, n_out);
    fc_data_file_free(f);
    return ok;
}

/* ---- extract-gpt4-only / extract-single-round ---- */

static int gpt4_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    if (v->type != FC_PJ_OBJ) return shape_err(aux, "expected an object");
    fc_pj *m = fc_pj_get(v, "model");
    if (m && m->type != FC_PJ_NULL && !fc_pj_str_eq(m, "gpt4")) return 0;
    dt_put_elem(out, v, false);
    return 1;
}

static int single_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    fc_pj *convs = convs_of(v, aux);
    if (!convs) return -1;
    if (convs->len > 2) convs->len = 2;
    dt_put_elem(out, v, false);
    return 1;
}

static bool extract(const char *in_file, const char *out_file, const char *suffix, long long begin,
                    bool has_begin, long long end, bool has_end, dt_elem_fn fn, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t lo, hi, n_out = 0;
    fc_data_pyslice(begin, has_begin, end, has_end, f->n, &lo, &hi);
    size_t *idx = fc_xmalloc((hi - lo + 1) * sizeof(size_t));
    for (size_t i = lo; i < hi; i++) idx[i - lo] = i;
    char *name = out_file ? fc_xstrdup(out_file) : fc_data_str_replace(in_file, ".json", suffix);
    bool ok = run_to_file(f, idx, hi - lo, fn, NULL, name, o, "extract", &n_out);
    if (ok) fprintf(dt_msg(o), "#in: %zu, #out: %zu\n", hi - lo, n_out);
    free(name);
    free(idx);
    fc_data_file_free(f);
    return ok;
}

bool fc_data_extract_gpt4_only(const char *in_file, const char *out_file, long long begin,
                               bool has_begin, long long end, bool has_end, const fc_data_opts *o)
{
    return extract(in_file, out_file, "_gpt4.json", begin, has_begin, end, has_end, gpt4_elem, o);
}

bool fc_data_extract_single_round(const char *in_file, const char *out_file, long long begin,
                                  bool has_begin, long long end, bool has_end,
                                  const fc_data_opts *o)
{
    return extract(in_file, out_file, "_single.json", begin, has_begin, end, has_end, single_elem, o);
}

/* ---- convert-alpaca ---- */

static fc_pj turn(const char *role, const char *s, size_t n)
{
    (void)role;
    fc_pj t = {0};
    t.type = FC_PJ_STR;
    t.str = s;
    t.len = n;
    return t;
}

/* {"from": role, "value": value} in the arena */
static void make_turn(fc_pj_arena *a, fc_pj *dst, const char *role, const char *s, size_t n)
{
    fc_pj *kv = fc_pj_alloc(a, 4 * sizeof(fc_pj));
    kv[0] = turn(NULL, "from", 4);
    kv[1] = turn(NULL, role, strlen(role));
    kv[2] = turn(NULL, "value", 5);
    kv[3] = turn(NULL, s, n);
    memset(dst, 0, sizeof(*dst));
    dst->type = FC_PJ_OBJ;
    dst->len = 2;
    dst->items = kv;
}

static int alpaca_elem(void *ctx, fc_pj_arena *a, size_t idx, fc_pj *v, fc_pj_out *out, fc_pj_out *aux)
{
    fc_pj *ins = fc_pj_get(v, "instruction"), *inp = fc_pj_get(v, "input"),
          *outp = fc_pj_get(v, "output");
    if (!ins || !inp || !outp || ins->type != FC_PJ_STR || inp->type != FC_PJ_STR ||
        outp->type != FC_PJ_STR)
        return shape_err(aux, "expected an object with string \"instruction\", \"input\" and \"output\"");
    size_t lo, hi;
    dt_py_strip(inp->str, inp->len, &lo, &hi);
    const char *q = ins->str;
    size_t ql = ins->len;
    if (fc_pj_str_cplen(inp->str + lo, hi - lo) > 1) {
        static const char SEP[] = "\nInput:\n";
        char *s = fc_pj_alloc(a, ins->len + sizeof(SEP) - 1 + inp->len);
        memcpy(s, ins->str, ins->len);
        memcpy(s + ins->len, SEP, sizeof(SEP) - 1);
        memcpy(s + ins->len + sizeof(SEP) - 1, inp->str, inp->len);
        q = s;
        ql = ins->len + sizeof(SEP) - 1 + inp->len;
    }
    char id[48];
    int idl = snprintf(id, sizeof id, "alpaca_%zu", idx);
    fc_pj *turns = fc_pj_alloc(a, 2 * sizeof(fc_pj));
    make_turn(a, &turns[0], "human", q, ql);
    make_turn(a, &turns[1], "gpt", outp->str, outp->len);
    fc_pj *kv = fc_pj_alloc(a, 4 * sizeof(fc_pj));
    kv[0] = turn(NULL, "id", 2);
    kv[1] = turn(NULL, id, (size_t)idl);
    kv[2] = turn(NULL, "conversations", 13);
    memset(&kv[3], 0, sizeof(fc_pj));
    kv[3].type = FC_PJ_ARR;
    kv[3].len = 2;
    kv[3].items = turns;
    fc_pj obj = {0};
    obj.type = FC_PJ_OBJ;
    obj.len = 2;
    obj.items = kv;
    dt_put_elem(out, &obj, false);
    return 1;
}

bool fc_data_convert_alpaca(const char *in_file, const char *out_file, const fc_data_opts *o)
{
    fc_data_file *f = fc_data_file_open(in_file);
    if (!f) return false;
    size_t n_out = 0;
    bool ok = run_to_file(f, NULL, f->n, alpaca_elem, NULL, out_file, o, "convert-alpaca", &n_out);
    if (ok) fprintf(dt_msg(o), "#out: %zu\n", n_out);
    fc_data_file_free(f);
    return ok;
}
