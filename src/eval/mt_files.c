/*
 * mt_files.c: reading FastChat's llm_judge data folder (see mt_files.h).
 */
#include "eval/mt_files.h"
#include "eval/jsonl.h"
#include "base/fc_base.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *fc_mt_path(const char *a, const char *b, const char *c, const char *d)
{
    return fc_xasprintf("%s/%s%s%s%s%s", a, b, c ? "/" : "", c ? c : "", d ? "/" : "", d ? d : "");
}

const cJSON *fc_mt_qid(const cJSON *o) { return cJSON_GetObjectItemCaseSensitive(o, "question_id"); }

bool fc_mt_qid_eq(const cJSON *a, const cJSON *b)
{
    if (!a || !b) return false;
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a) && cJSON_IsString(b)) return !strcmp(a->valuestring, b->valuestring);
    return false;
}

char *fc_mt_qid_text(const cJSON *o)
{
    const cJSON *id = fc_mt_qid(o);
    if (cJSON_IsString(id)) return fc_xstrdup(id->valuestring);
    char *s = id ? cJSON_PrintUnformatted(id) : NULL;
    char *r = fc_xstrdup(s ? s : "?");
    if (s) cJSON_free(s);
    return r;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const fc_mt_answers *)a)->name, ((const fc_mt_answers *)b)->name);
}

int fc_mt_load_answer_dir(const char *dir, fc_mt_answers **out, int *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return FC_OK;
    int cap = 8, rc = FC_OK;
    fc_mt_answers *ms = fc_xmalloc(sizeof(*ms) * (size_t)cap);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l <= 6 || strcmp(e->d_name + l - 6, ".jsonl")) continue;
        char *p = fc_mt_path(dir, e->d_name, NULL, NULL);
        fc_mt_answers m = {.name = fc_xmalloc(l - 5)};
        memcpy(m.name, e->d_name, l - 6);
        m.name[l - 6] = 0;
        rc = fc_jsonl_read(p, false, &m.a, &m.n);
        free(p);
        if (rc != FC_OK) {
            free(m.name);
            break;
        }
        if (*n == cap) ms = fc_xrealloc(ms, sizeof(*ms) * (size_t)(cap *= 2));
        ms[(*n)++] = m;
    }
    closedir(d);
    if (rc != FC_OK) {
        fc_mt_answers_free(ms, *n);
        *n = 0;
        return rc;
    }
    qsort(ms, (size_t)*n, sizeof *ms, name_cmp);
    *out = ms;
    return FC_OK;
}

void fc_mt_answers_free(fc_mt_answers *ms, int n)
{
    for (int i = 0; i < n; i++) {
        free(ms[i].name);
        fc_jsonl_free(ms[i].a, ms[i].n);
    }
    free(ms);
}

const cJSON *fc_mt_find_answer(const fc_mt_answers *m, const cJSON *q)
{
    if (!m) return NULL;
    for (int i = m->n - 1; i >= 0; i--)
        if (fc_mt_qid_eq(fc_mt_qid(m->a[i]), fc_mt_qid(q))) return m->a[i];
    return NULL;
}

const fc_mt_answers *fc_mt_find_model(const fc_mt_answers *ms, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(ms[i].name, name)) return &ms[i];
    return NULL;
}

const char *fc_mt_answer_turn(const cJSON *a, int j)
{
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(a, "choices"), 0);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c0, "turns"), j);
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* ---- the results page's data ---- */

static void copy_fields(cJSON *dst, const cJSON *src, const char *const *keys, int n)
{
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, keys[i]);
        if (v) cJSON_AddItemToObject(dst, keys[i], cJSON_Duplicate(v, true));
    }
}

static int add_questions(cJSON *d, const fc_mt_source *src, const char *bench_dir)
{
    char *qpath = src->question_file ? fc_xstrdup(src->question_file) : fc_mt_path(bench_dir, "question.jsonl", NULL, NULL);
    cJSON **qs = NULL, **refs = NULL;
    int nq = 0, nr = 0;
    int rc = fc_jsonl_read(qpath, false, &qs, &nq);
    free(qpath);
    if (rc != FC_OK) return rc;
    /* references: the given model's file, else the judge's, else gpt-4's, else the question's own */
    const char *refm = src->ref_model ? src->ref_model : src->judge_model;
    char *rname = fc_xasprintf("%s.jsonl", refm);
    char *rpath = fc_mt_path(bench_dir, "reference_answer", rname, NULL);
    if (access(rpath, R_OK) != 0) {
        free(rpath);
        rpath = fc_mt_path(bench_dir, "reference_answer", "gpt-4.jsonl", NULL);
    }
    rc = fc_jsonl_read(rpath, true, &refs, &nr);
    free(rname);
    free(rpath);
    if (rc != FC_OK) {
        fc_jsonl_free(qs, nq);
        return rc;
    }
    fc_mt_answers ra = {.a = refs, .n = nr};
    cJSON *qa = cJSON_AddArrayToObject(d, "questions");
    for (int i = 0; i < nq; i++) {
        cJSON *q = cJSON_CreateObject();
        static const char *const qk[] = {"question_id", "category", "turns"};
        copy_fields(q, qs[i], qk, 3);
        const cJSON *ref = fc_mt_find_answer(&ra, qs[i]);
        const cJSON *c0 = ref ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ref, "choices"), 0) : NULL;
        const cJSON *rt = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "turns")
                             : cJSON_GetObjectItemCaseSensitive(qs[i], "reference");
        if (cJSON_IsArray(rt)) cJSON_AddItemToObject(q, "reference", cJSON_Duplicate(rt, true));
        cJSON_AddItemToArray(qa, q);
    }
    fc_jsonl_free(refs, nr);
    fc_jsonl_free(qs, nq);
    return FC_OK;
}

static int add_answers(cJSON *d, const char *bench_dir)
{
    char *dir = fc_mt_path(bench_dir, "model_answer", NULL, NULL);
    fc_mt_answers *ms;
    int nm;
    int rc = fc_mt_load_answer_dir(dir, &ms, &nm);
    free(dir);
    if (rc != FC_OK) return rc;
    cJSON *aa = cJSON_AddObjectToObject(d, "answers");
    for (int i = 0; i < nm; i++) {
        cJSON *m = cJSON_AddObjectToObject(aa, ms[i].name);
        for (int k = 0; k < ms[i].n; k++) {
            char *id = fc_mt_qid_text(ms[i].a[k]);
            const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ms[i].a[k], "choices"), 0);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(c0, "turns");
            cJSON_DeleteItemFromObjectCaseSensitive(m, id); /* the last line wins */
            cJSON_AddItemToObject(m, id, cJSON_IsArray(t) ? cJSON_Duplicate(t, true) : cJSON_CreateArray());
            free(id);
        }
    }
    fc_mt_answers_free(ms, nm);
    return FC_OK;
}

static int add_judgments(cJSON *d, const fc_mt_source *src, const char *bench_dir)
{
    static const char *const kinds[2] = {"single", "pair"};
    static const char *const sk[] = {"question_id", "model", "turn", "score", "judgment"};
    static const char *const pk[] = {"question_id", "model_1",     "model_2",     "turn",
                                     "g1_winner",   "g2_winner",   "g1_judgment", "g2_judgment"};
    for (int k = 0; k < 2; k++) {
        char *fn = fc_xasprintf("%s_%s.jsonl", src->judge_model, kinds[k]);
        char *jp = fc_mt_path(bench_dir, "model_judgment", fn, NULL);
        free(fn);
        cJSON **items;
        int n;
        int rc = fc_jsonl_read(jp, true, &items, &n);
        free(jp);
        if (rc != FC_OK) return rc;
        cJSON *arr = cJSON_AddArrayToObject(d, kinds[k]);
        for (int i = 0; i < n; i++) {
            cJSON *r = cJSON_CreateObject();
            if (k == 0) copy_fields(r, items[i], sk, 5);
            else copy_fields(r, items[i], pk, 8);
            const cJSON *j1 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(items[i], "judge"), 1);
            cJSON_AddStringToObject(r, "prompt", cJSON_IsString(j1) ? j1->valuestring : "");
            if (!cJSON_GetObjectItemCaseSensitive(r, "turn")) cJSON_AddNumberToObject(r, "turn", 1);
            cJSON_AddItemToArray(arr, r);
        }
        fc_jsonl_free(items, n);
    }
    return FC_OK;
}

int fc_mt_report_collect(const fc_mt_source *src, cJSON **out)
{
    *out = NULL;
    char *bench_dir = fc_mt_path(src->data_dir, src->bench, NULL, NULL);
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "bench", src->bench);
    cJSON_AddStringToObject(d, "judge", src->judge_model);
    int rc = add_questions(d, src, bench_dir);
    if (rc == FC_OK) rc = add_answers(d, bench_dir);
    if (rc == FC_OK) rc = add_judgments(d, src, bench_dir);
    free(bench_dir);
    if (rc != FC_OK) {
        cJSON_Delete(d);
        return rc;
    }
    *out = d;
    return FC_OK;
}
