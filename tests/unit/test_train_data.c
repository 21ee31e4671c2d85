/*
 * test_train_data.c: FastChat's masked labels (src/train/sft_data.c) against
 * fschat's own `preprocess` (fastchat/train/train.py), token for token:
 * tests/data/train/labels_golden.json, written by
 * tools/golden/make_train_golden.py, holds 220 generated conversations and,
 * per tokenizer (the default model's SmolLM2 tokenizer from its GGUF, and the
 * Llama SentencePiece test tokenizers with legacy False and True), the ids,
 * the spans where labels are not -100 and whether FastChat printed its
 * tokenization-mismatch warning. Likewise
 * tests/data/train/labels_template_golden.json against fschat's
 * train_with_template.py preprocess (tools/golden/make_train_template_golden.py):
 * 220 conversations each with the SmolLM2 tokenizer and the qwen-7b-chat
 * (ChatML) and vicuna_v1.1 templates, and the spm tokenizer with vicuna_v1.1.
 * Also: broken role alternation is refused,
 * and a data set loads from JSON and from JSON Lines.
 *
 * Run from the repository root. The SmolLM2 set needs the default model
 * ($FASTCHAT_MODEL or ~/.cache/fastchat/models/...; scripts/fetch_model.sh)
 * and is skipped with a message when it is missing.
 */
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/json.h"
#include "train/sft_data.h"
#include "test_util.h"

static int check_set(const cJSON *set, const cJSON *convs, const char *model)
{
    const char *name = cJSON_GetObjectItem(set, "name")->valuestring;
    const char *tp = cJSON_GetObjectItem(set, "tokenizer")->valuestring;
    if (!strcmp(tp, "$FASTCHAT_MODEL")) tp = model;
    if (access(tp, R_OK) != 0) {
        printf("%-11s SKIPPED: %s not found (scripts/fetch_model.sh puts it there)\n", name, tp);
        return 0;
    }
    fc_tokenizer *tok = fc_tokenizer_load(tp);
    CHECKF(tok != NULL, "%s: tokenizer %s", name, tp);
    if (!tok) return 0;
    fc_sft_params p = {
        .model_max_length = (int)fc_json_long(cJSON_GetObjectItem(set, "model_max_length")->valuedouble),
        .pad_id = (int32_t)fc_json_long(cJSON_GetObjectItem(set, "pad_id")->valuedouble),
        .legacy = cJSON_IsTrue(cJSON_GetObjectItem(set, "legacy")),
    };
    /* sets of labels_template_golden.json name their template */
    const cJSON *tmpl = cJSON_GetObjectItem(set, "template");
    if (cJSON_IsString(tmpl)) {
        p.masking = FC_SFT_MASK_TEMPLATE;
        p.conv_template = tmpl->valuestring;
    }
    const cJSON *exs = cJSON_GetObjectItem(set, "examples");
    int n_ok = 0, n = 0, n_labels = 0, n_mismatch = 0;
    int32_t *want = malloc((size_t)p.model_max_length * sizeof(int32_t));
    const cJSON *ex;
    cJSON_ArrayForEach(ex, exs) {
        n++;
        int ci = (int)fc_json_long(cJSON_GetObjectItem(ex, "conv")->valuedouble);
        const cJSON *rec = cJSON_GetArrayItem(convs, ci);
        fc_sft_example out;
        const cJSON *sys = cJSON_GetObjectItem(rec, "system");
        enum fc_status st = p.masking == FC_SFT_MASK_TEMPLATE
            ? fc_sft_preprocess_template(tok, cJSON_GetObjectItem(rec, "conversations"),
                                         cJSON_IsString(sys) ? sys->valuestring : NULL, &p, &out)
            : fc_sft_preprocess(tok, cJSON_GetObjectItem(rec, "conversations"), &p, &out);
        CHECKF(st == FC_OK, "%s conv %d: status %d", name, ci, st);
        if (st != FC_OK) continue;
        const cJSON *ids = cJSON_GetObjectItem(ex, "ids");
        int n_ids = cJSON_GetArraySize(ids), i = 0;
        for (int t = 0; t < p.model_max_length; t++) want[t] = p.pad_id;
        const cJSON *v;
        cJSON_ArrayForEach(v, ids) want[i++] = (int32_t)fc_json_long(v->valuedouble);
        bool ids_ok = n_ids <= p.model_max_length && !memcmp(want, out.ids, (size_t)p.model_max_length * 4);
        if (!ids_ok) {
            int t = 0;
            while (t < p.model_max_length && want[t] == out.ids[t]) t++;
            fprintf(stderr, "%s conv %d: ids differ first at %d: want %d got %d\n", name, ci, t,
                    t < p.model_max_length ? want[t] : -1, t < p.model_max_length ? out.ids[t] : -1);
        }
        /* labels: want[t] inside spans, -100 elsewhere */
        for (int t = 0; t < p.model_max_length; t++) want[t] = FC_IGNORE_INDEX;
        const cJSON *sp;
        cJSON_ArrayForEach(sp, cJSON_GetObjectItem(ex, "spans")) {
            int a = (int)fc_json_long(cJSON_GetArrayItem(sp, 0)->valuedouble);
            int b = (int)fc_json_long(cJSON_GetArrayItem(sp, 1)->valuedouble);
            for (int t = a; t < b && t < p.model_max_length; t++) want[t] = out.ids[t];
        }
        bool lab_ok = !memcmp(want, out.labels, (size_t)p.model_max_length * 4);
        if (!lab_ok) {
            int t = 0;
            while (t < p.model_max_length && want[t] == out.labels[t]) t++;
            fprintf(stderr, "%s conv %d: labels differ first at %d: want %d got %d\n", name, ci, t,
                    want[t], out.labels[t]);
        }
        bool mm_ok = out.mismatch == cJSON_IsTrue(cJSON_GetObjectItem(ex, "mismatch"));
        CHECKF(ids_ok && lab_ok && mm_ok, "%s conv %d (ids %d labels %d mismatch %d)", name, ci, ids_ok,
               lab_ok, mm_ok);
        n_ok += ids_ok && lab_ok && mm_ok;
        n_labels += out.n_label > 0;
        n_mismatch += out.mismatch;
        fc_sft_example_free(&out);
    }
    printf("%-14s %d/%d examples equal to fschat's %s (%d with labels, %d mismatch-masked)\n",
           name, n_ok, n, p.masking == FC_SFT_MASK_TEMPLATE ? "train_with_template preprocess" : "preprocess",
           n_labels, n_mismatch);
    free(want);
    fc_tokenizer_free(tok);
    return n;
}

static void check_errors_and_files(void)
{
    fc_tokenizer *tok = fc_tokenizer_load("tests/data/tokenizer/spm_legacy");
    CHECK(tok != NULL);
    if (!tok) return;
    fc_sft_params p = {.model_max_length = 256, .pad_id = 0, .legacy = true};
    fc_sft_example ex;
    static const char *bad[] = {
        "[{\"from\":\"human\",\"value\":\"a\"},{\"from\":\"human\",\"value\":\"b\"}]",
        "[{\"from\":\"human\",\"value\":\"a\"},{\"from\":\"bot\",\"value\":\"b\"}]",
        "[{\"from\":\"human\",\"value\":3}]",
        "{\"from\":\"human\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON *j = cJSON_Parse(bad[i]);
        CHECKF(fc_sft_preprocess(tok, j, &p, &ex) != FC_OK, "bad record %zu accepted", i);
        CHECK(ex.ids == NULL);
        cJSON_Delete(j);
    }
    /* a first gpt message is dropped: same result as without it */
    cJSON *a = cJSON_Parse("[{\"from\":\"gpt\",\"value\":\"x\"},{\"from\":\"human\",\"value\":\"hi\"},"
                           "{\"from\":\"gpt\",\"value\":\"yo\"}]");
    cJSON *b = cJSON_Parse("[{\"from\":\"human\",\"value\":\"hi\"},{\"from\":\"gpt\",\"value\":\"yo\"}]");
    fc_sft_example ea, eb;
    CHECK(fc_sft_preprocess(tok, a, &p, &ea) == FC_OK && fc_sft_preprocess(tok, b, &p, &eb) == FC_OK);
    CHECK(ea.n_label > 0 && !memcmp(ea.labels, eb.labels, 256 * 4) && !memcmp(ea.ids, eb.ids, 256 * 4));
    fc_sft_example_free(&ea);
    fc_sft_example_free(&eb);
    fc_sft_example_free(NULL);
    cJSON_Delete(a);
    cJSON_Delete(b);

    const char *rec = "{\"id\":\"a\",\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"},"
                      "{\"from\":\"gpt\",\"value\":\"yo\"}]}";
    char path[] = "/tmp/fc_train_data_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char *arr = fc_xasprintf("[%s,%s]", rec, rec);
    char *lines = fc_xasprintf("%s\n\n%s\n", rec, rec);
    const char *texts[] = {arr, lines};
    for (int k = 0; k < 2; k++) {
        CHECK(fc_file_write_atomic(path, texts[k], strlen(texts[k])) == FC_OK);
        fc_sft_dataset *d = fc_sft_dataset_load(path, tok, &p);
        CHECKF(d && fc_sft_dataset_size(d) == 2, "dataset form %d", k);
        if (d) CHECK(fc_sft_dataset_get(d, 1)->n_label > 0 && !fc_sft_dataset_get(d, 2));
        fc_sft_dataset_free(d);
    }
    CHECK(fc_file_write_atomic(path, "[{\"conversations\": 5}]", 22) == FC_OK);
    CHECK(fc_sft_dataset_load(path, tok, &p) == NULL);
    unlink(path);
    free(arr);
    free(lines);
    fc_tokenizer_free(tok);
}

static int check_file(const char *dir, const char *file, const char *model, int min_total)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    char *text = fc_file_read(path, &len, 0);
    if (!text) {
        fprintf(stderr, "%s: missing (run from the repository root)\n", path);
        CHECK(text != NULL);
        return 0;
    }
    cJSON *doc = cJSON_ParseWithLength(text, len);
    free(text);
    CHECK(doc != NULL);
    if (!doc) return 0;
    const cJSON *convs = cJSON_GetObjectItem(doc, "conversations");
    const cJSON *set;
    int total = 0;
    cJSON_ArrayForEach(set, cJSON_GetObjectItem(doc, "sets")) total += check_set(set, convs, model);
    CHECKF(total >= min_total, "%s: %d examples checked", file, total);
    cJSON_Delete(doc);
    return total;
}

/* template masking: unknown templates and styles train_with_template.py
 * cannot split are refused; a record's system message is used */
static void check_template_errors(void)
{
    fc_tokenizer *tok = fc_tokenizer_load("tests/data/tokenizer/spm");
    CHECK(tok != NULL);
    if (!tok) return;
    fc_sft_params p = {.model_max_length = 128, .pad_id = 0, .masking = FC_SFT_MASK_TEMPLATE,
                       .conv_template = "no-such-template"};
    cJSON *c = cJSON_Parse("[{\"from\":\"human\",\"value\":\"hi\"},{\"from\":\"gpt\",\"value\":\"yo\"}]");
    fc_sft_example ex, ey;
    CHECK(fc_sft_preprocess_template(tok, c, NULL, &p, &ex) == FC_ERR_UNSUPPORTED && ex.ids == NULL);
    p.conv_template = "vicuna_v1.1";
    CHECK(fc_sft_preprocess_template(tok, c, NULL, &p, &ex) == FC_OK && ex.n_label > 0);
    CHECK(fc_sft_preprocess_template(tok, c, "Be terse.", &p, &ey) == FC_OK && ey.n_label == ex.n_label);
    CHECK(ey.n_tokens < ex.n_tokens); /* the short system message replaced the default */
    fc_sft_example_free(&ex);
    fc_sft_example_free(&ey);
    cJSON_Delete(c);
    fc_tokenizer_free(tok);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    const char *dir = getenv("FC_TRAIN_DATA");
    if (!dir || !*dir) dir = "tests/data/train";
    const char *model = getenv("FASTCHAT_MODEL");
    char model_buf[1024];
    if (!model || !*model) {
        const char *home = getenv("HOME");
        snprintf(model_buf, sizeof model_buf, "%s/.cache/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                 home ? home : ".");
        model = model_buf;
    }
    check_file(dir, "labels_golden.json", model, 110);
    check_file(dir, "labels_template_golden.json", model, 220);
    check_errors_and_files();
    check_template_errors();
    return TEST_END();
}
