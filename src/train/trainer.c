/*
 * trainer.c: the supervised fine-tuning loop of FastChat's train.py with the
 * Hugging Face Trainer's arithmetic, on one process: data through
 * sft_data.c (vicuna template, FastChat's masks), micro-batches of
 * per_device_train_batch_size examples, gradient accumulation normalised by
 * the labelled tokens of the whole optimizer step (the Trainer's
 * num_items_in_batch), gradient clipping, AdamW, the schedule with warmup,
 * checkpoints as Hugging Face folders.
 *
 * Step counts as the Trainer: micro-batches per epoch = ceil(N / B);
 * optimizer steps per epoch = max(1, that / accumulation); total = max_steps
 * or ceil(epochs * steps per epoch); warmup = warmup_steps or
 * ceil(warmup_ratio * total).
 * Accumulation windows run on across epoch boundaries.
 * Resume, evaluation, the log file and the loss curve: train.h.
 * Under mpirun (dist.h), each global micro-batch holds B x W examples and
 * rank r computes examples [r B, (r + 1) B) of it: micro-batches per epoch =
 * ceil(N / (B W)), as with W DistributedSampler replicas; the step's
 * labelled count (the loss denominator) is the whole global step's, known to
 * every rank since all read the same data in the same order. Losses, tokens
 * and eval sums are added over the ranks; the optimizer step is
 * fc_dist_step's (ZeRO-sharded AdamW). Rank 0 alone writes checkpoints,
 * the log file and calls the progress callback; every rank reads a checkpoint
 * to resume (a shared folder across machines).
 * QLoRA (q_lora): the loaded model stays open for the whole run, its
 * matrices read in place by the trainer (fc_train_model_from_model_qlora).
 * Not done: lazy preprocessing, packing.
 */
#include "train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file.h"
#include "base/json.h"
#include "base/str.h"
#include <cjson/cJSON.h>
#include "tokenizer/tokenizer.h"
#include "sft_data.h"
#include "chat/conv.h"
#include "train/dist.h"

void fc_trainer_args_default(fc_trainer_args *a)
{
    memset(a, 0, sizeof *a);
    a->model_max_length = 512;
    a->per_device_train_batch_size = 8;
    a->gradient_accumulation_steps = 1;
    a->learning_rate = 5e-5;
    a->adam_beta1 = 0.9;
    a->adam_beta2 = 0.999;
    a->adam_epsilon = 1e-8;
    a->lr_scheduler_type = "linear";
    a->num_train_epochs = 3;
    a->max_steps = -1;
    a->save_steps = 500;
    a->max_grad_norm = 1.0;
    a->seed = 42;
    a->legacy = true;
    a->per_device_eval_batch_size = 8;
    a->lora_alpha = 16;
    a->lora_dropout = 0.05;
    a->lora_target_modules = "q_proj,v_proj";
}

/* splitmix64: the shuffle's generator */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void shuffle(int *v, int n, uint64_t *s)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(next_u64(s) % (uint64_t)(i + 1));
        int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static enum fc_status write_state(const char *dir, const fc_str *history, long step, long total,
                                  double epoch)
{
    fc_str s = FC_STR_INIT;
    fc_str_printf(&s, "{\n  \"global_step\": %ld,\n  \"max_steps\": %ld,\n  \"epoch\": ", step, total);
    fc_json_put_number(&s, epoch, 6);
    fc_str_puts(&s, ",\n  \"log_history\": [");
    fc_str_putn(&s, fc_str_cstr(history), fc_str_len(history));
    fc_str_puts(&s, "\n  ]\n}\n");
    char *p = fc_xasprintf("%s/trainer_state.json", dir);
    enum fc_status st = fc_str_failed(&s) ? FC_ERR_NOMEM : fc_file_write_atomic(p, fc_str_cstr(&s), fc_str_len(&s));
    free(p);
    fc_str_free(&s);
    return st;
}

int fc_trainer_format_progress(const fc_trainer_progress *p, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "step %ld/%ld  epoch %.2f  loss %.4f  lr %.3e  grad_norm %.4f  tokens/s %.0f  "
                     "elapsed %.0fs  eta %.0fs\n",
                     p->step, p->total_steps, p->epoch, p->loss, p->lr, p->grad_norm,
                     p->step_sec > 0 ? p->tokens / p->step_sec : 0.0, p->elapsed_sec, p->eta_sec);
    if (n >= 0 && (size_t)n < cap && !isnan(p->eval_loss))
        n += snprintf(buf + n, cap - (size_t)n, "eval step %ld  eval_loss %.6f  eval_tokens %ld\n",
                      p->step, p->eval_loss, p->eval_labelled);
    if (n >= 0 && (size_t)n < cap && p->saved) n += snprintf(buf + n, cap - (size_t)n, "saved %s\n", p->saved);
    return n;
}

/* ---- the loss curve ---- */
typedef struct curve {
    long *step;
    double *loss;
    int n, cap;
} curve;

static void curve_add(curve *c, long step, double loss)
{
    if (isnan(loss)) return;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->step = fc_xrealloc(c->step, (size_t)c->cap * sizeof(long));
        c->loss = fc_xrealloc(c->loss, (size_t)c->cap * sizeof(double));
    }
    c->step[c->n] = step;
    c->loss[c->n++] = loss;
}

static void curve_free(curve *c)
{
    free(c->step);
    free(c->loss);
    memset(c, 0, sizeof *c);
}

/* dir/loss_curve.svg: the training loss (and eval loss) against the step. */
static enum fc_status write_svg(const char *dir, const curve *tr, const curve *ev, long total)
{
    const double W = 640, H = 360, L = 60, R = 20, TOP = 30, BOT = 40;
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < 2; k++) {
        const curve *c = k ? ev : tr;
        for (int i = 0; i < c->n; i++) {
            lo = FC_MIN(lo, c->loss[i]);
            hi = FC_MAX(hi, c->loss[i]);
        }
    }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (hi - lo < 1e-9) hi = lo + 1;
    lo = FC_MAX(0.0, lo - 0.05 * (hi - lo));
    long smax = FC_MAX(total, 1);
    fc_str s = FC_STR_INIT;
    fc_str_printf(&s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                      "viewBox=\"0 0 %.0f %.0f\">\n<title>training loss</title>\n"
                      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n"
                      "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n",
                  W, H, W, H, L, H - BOT, W - R, H - BOT, L, TOP, L, H - BOT);
    fc_str_printf(&s, "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"end\">%.4g</text>\n"
                      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"end\">%.4g</text>\n"
                      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\">step 0</text>\n"
                      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"12\" text-anchor=\"end\">step %ld</text>\n"
                      "<text x=\"%.0f\" y=\"20\" font-size=\"14\">loss (black: train, blue: eval)</text>\n",
                  L - 4, TOP + 4, hi, L - 4, H - BOT, lo, L, H - BOT + 16, W - R, H - BOT + 16, smax, L);
    for (int k = 0; k < 2; k++) {
        const curve *c = k ? ev : tr;
        fc_str_printf(&s, "<polyline id=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                      k ? "eval_loss" : "train_loss", k ? "blue" : "black");
        for (int i = 0; i < c->n; i++) {
            double x = L + (W - L - R) * (double)c->step[i] / (double)smax;
            double y = (H - BOT) - (H - BOT - TOP) * (c->loss[i] - lo) / (hi - lo);
            fc_str_printf(&s, "%s%.2f,%.2f", i ? " " : "", x, y);
        }
        fc_str_puts(&s, "\"/>\n");
    }
    fc_str_puts(&s, "</svg>\n");
    char *p = fc_xasprintf("%s/loss_curve.svg", dir);
    enum fc_status st = fc_str_failed(&s) ? FC_ERR_NOMEM : fc_file_write_atomic(p, fc_str_cstr(&s), fc_str_len(&s));
    free(p);
    fc_str_free(&s);
    return st;
}

/* ---- resume ---- */

/* Removes a flat folder (a stale checkpoint this run writes again). */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = fc_xasprintf("%s/%s", dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* --save-total-limit: removes the oldest output_dir/checkpoint-N folders
 * until `limit` are left. */
static void prune_checkpoints(const char *out, long limit)
{
    DIR *d = opendir(out);
    if (!d) return;
    long *steps = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "checkpoint-", 11) != 0) continue;
        long k = strtol(e->d_name + 11, &end, 10);
        if (*end || end == e->d_name + 11) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            steps = fc_xrealloc(steps, cap * sizeof(long));
        }
        steps[n++] = k;
    }
    closedir(d);
    if (n > 0) qsort(steps, n, sizeof(long), cmp_long);
    for (size_t i = 0; i + (size_t)limit < n; i++) {
        char *p = fc_xasprintf("%s/checkpoint-%ld", out, steps[i]);
        remove_flat_dir(p);
        free(p);
    }
    free(steps);
}

/* The newest output_dir/checkpoint-N with a trainer_resume.json, or NULL. */
static char *latest_checkpoint(const char *out)
{
    DIR *d = opendir(out);
    if (!d) return NULL;
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        if (strncmp(e->d_name, "checkpoint-", 11) != 0) continue;
        long n = strtol(e->d_name + 11, &end, 10);
        if (*end || end == e->d_name + 11 || n <= best) continue;
        char *p = fc_xasprintf("%s/%s/trainer_resume.json", out, e->d_name);
        if (access(p, R_OK) == 0) best = n;
        free(p);
    }
    closedir(d);
    return best < 0 ? NULL : fc_xasprintf("%s/checkpoint-%ld", out, best);
}

static enum fc_status write_resume(const char *dir, const fc_adamw *o, long step, long micro,
                                   uint64_t rng, const int *order, int N, uint64_t lora_calls)
{
    fc_str s = FC_STR_INIT;
    fc_str_printf(&s, "{\"global_step\": %ld, \"adamw_step\": %ld, \"micro_batches\": %ld, "
                      "\"shuffle_state\": \"%016llx\", \"lora_dropout_calls\": \"%llu\", \"order\": [",
                  step, o->t, micro, (unsigned long long)rng, (unsigned long long)lora_calls);
    for (int i = 0; i < N; i++) fc_str_printf(&s, "%s%d", i ? "," : "", order[i]);
    fc_str_puts(&s, "]}\n");
    char *p = fc_xasprintf("%s/trainer_resume.json", dir);
    enum fc_status st = fc_str_failed(&s) ? FC_ERR_NOMEM : fc_file_write_atomic(p, fc_str_cstr(&s), fc_str_len(&s));
    free(p);
    fc_str_free(&s);
    return st;
}

/* Reads a checkpoint's resume state into the run; the history and curves are
 * rebuilt from its trainer_state.json. */
static enum fc_status read_resume(const char *dir, fc_train_model *tm, fc_adamw *o, long *step,
                                  long *micro, uint64_t *rng, int *order, int N, fc_str *history,
                                  curve *tr, curve *ev)
{
    enum fc_status st = FC_ERR_FORMAT;
    char *p = fc_xasprintf("%s/trainer_resume.json", dir);
    char *q = fc_xasprintf("%s/trainer_state.json", dir);
    size_t len, qlen;
    char *text = fc_file_read(p, &len, (size_t)1 << 30);
    char *qtext = fc_file_read(q, &qlen, (size_t)1 << 30);
    cJSON *r = text ? cJSON_ParseWithLength(text, len) : NULL;
    cJSON *ts = qtext ? cJSON_ParseWithLength(qtext, qlen) : NULL;
    if (!r || !ts) {
        FC_LOG_ERROR("%s: %s: trainer_resume.json or trainer_state.json missing or not JSON", __func__, dir);
        goto done;
    }
    const cJSON *gs = cJSON_GetObjectItem(r, "global_step"), *at = cJSON_GetObjectItem(r, "adamw_step"),
                *mb = cJSON_GetObjectItem(r, "micro_batches"), *sh = cJSON_GetObjectItem(r, "shuffle_state"),
                *ord = cJSON_GetObjectItem(r, "order"), *lh = cJSON_GetObjectItem(ts, "log_history");
    if (!cJSON_IsNumber(gs) || !cJSON_IsNumber(at) || !cJSON_IsNumber(mb) || !cJSON_IsString(sh) ||
        !cJSON_IsArray(ord) || !cJSON_IsArray(lh) || cJSON_GetArraySize(ord) != N) {
        FC_LOG_ERROR("%s: %s: resume state incomplete, or for a data set of another size", __func__, dir);
        goto done;
    }
    *step = fc_json_long(gs->valuedouble);
    o->t = fc_json_long(at->valuedouble);
    *micro = fc_json_long(mb->valuedouble);
    *rng = strtoull(sh->valuestring, NULL, 16);
    const cJSON *lc = cJSON_GetObjectItem(r, "lora_dropout_calls");
    if (fc_train_model_has_lora(tm)) {
        if (!cJSON_IsString(lc)) {
            FC_LOG_ERROR("%s: %s is not a LoRA checkpoint", __func__, dir);
            goto done;
        }
        fc_train_lora_set_calls(tm, strtoull(lc->valuestring, NULL, 10));
    }
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, ord) {
        long x = cJSON_IsNumber(v) ? fc_json_long(v->valuedouble) : -1;
        if (x < 0 || x >= N) {
            FC_LOG_ERROR("%s: %s: bad example index in the resume order", __func__, dir);
            goto done;
        }
        order[i++] = (int)x;
    }
    cJSON_ArrayForEach(v, lh) {
        char *one = cJSON_PrintUnformatted(v);
        if (!one) { st = FC_ERR_NOMEM; goto done; }
        fc_str_puts(history, fc_str_len(history) ? ",\n    " : "\n    ");
        fc_str_puts(history, one);
        free(one);
        const cJSON *sv = cJSON_GetObjectItem(v, "step"), *l = cJSON_GetObjectItem(v, "loss"),
                    *el = cJSON_GetObjectItem(v, "eval_loss");
        long sn = cJSON_IsNumber(sv) ? fc_json_long(sv->valuedouble) : 0;
        if (cJSON_IsNumber(l)) curve_add(tr, sn, l->valuedouble);
        if (cJSON_IsNumber(el)) curve_add(ev, sn, el->valuedouble);
    }
    if ((st = fc_train_load_params(tm, dir)) != FC_OK) goto done;
    st = fc_train_load_optimizer(tm, o, dir);
done:
    cJSON_Delete(r);
    cJSON_Delete(ts);
    free(text);
    free(qtext);
    free(p);
    free(q);
    return st;
}

/* ---- evaluation ---- */

/* Mean cross-entropy over the labelled tokens of the whole eval set (each
 * batch's summed loss divided by the set's count). */
static double evaluate(fc_train_model *tm, const fc_sft_dataset *d, int B, int T, int32_t *ids,
                       int32_t *labels, long *labelled_out)
{
    const int R = fc_dist_rank(), W = fc_dist_world(); /* rank r takes batches r, r + W, ... */
    const int N = fc_sft_dataset_size(d);
    long labelled = 0;
    for (int i = 0; i < N; i++) {
        const fc_sft_example *ex = fc_sft_dataset_get(d, i);
        labelled += fc_train_count_labels(ex->labels, 1, ex->n);
    }
    *labelled_out = labelled;
    if (labelled == 0) return NAN;
    double sum = 0;
    for (int lo = R * B; lo < N; lo += B * W) {
        int nb = FC_MIN(B, N - lo), Tb = 2;
        for (int b = 0; b < nb; b++) Tb = FC_MAX(Tb, fc_sft_dataset_get(d, lo + b)->n_tokens);
        Tb = FC_MIN(Tb, T);
        for (int b = 0; b < nb; b++) {
            const fc_sft_example *ex = fc_sft_dataset_get(d, lo + b);
            memcpy(ids + (long)b * Tb, ex->ids, (size_t)Tb * sizeof(int32_t));
            memcpy(labels + (long)b * Tb, ex->labels, (size_t)Tb * sizeof(int32_t));
        }
        if (fc_train_count_labels(labels, nb, Tb) == 0) continue;
        double l = fc_train_loss(tm, ids, labels, nb, Tb, (double)labelled);
        if (isnan(l)) {
            sum = NAN;
            break;
        }
        sum += l;
    }
    fc_dist_sum(&sum, 1); /* every rank: a NaN anywhere is a NaN for all */
    return sum;
}

/* The model: a Hugging Face folder, or with LoRA the PEFT adapter folder. */
static enum fc_status save_model(fc_train_model *tm, const char *dir, const char *src_dir, const char *base)
{
    if (fc_train_model_has_lora(tm)) return fc_train_save_lora(tm, dir, base);
    return fc_train_save_hf(tm, dir, src_dir);
}

/* Writes checkpoint-N: folder.tmp first, renamed when whole. */
static enum fc_status save_checkpoint(const char *ck, fc_train_model *tm, const char *src_dir, const char *base,
                                      const fc_adamw *opt, const fc_str *history, long step, long total,
                                      double epoch, long micro, uint64_t rng, const int *order, int N,
                                      const curve *tr, const curve *ev)
{
    /* rank 0 writes; the optimizer's shards come to it from every rank */
    const bool lead = fc_dist_rank() == 0;
    char *tmp = fc_xasprintf("%s.tmp", ck);
    enum fc_status st = FC_OK;
    if (lead) {
        remove_flat_dir(tmp);
        if ((st = save_model(tm, tmp, src_dir, base)) == FC_OK)
            st = write_state(tmp, history, step, total, epoch);
    }
    if ((st = fc_dist_agree(st)) == FC_OK)
        st = fc_dist_agree(fc_dist_save_optimizer(tm, opt, tmp));
    if (lead && st == FC_OK &&
        (st = write_resume(tmp, opt, step, micro, rng, order, N, fc_train_lora_calls(tm))) == FC_OK &&
        (st = write_svg(tmp, tr, ev, total)) == FC_OK) {
        remove_flat_dir(ck); /* a checkpoint of an earlier, interrupted run */
        if (rename(tmp, ck) != 0) {
            FC_LOG_ERROR("%s: rename %s: %s", __func__, tmp, strerror(errno));
            st = FC_ERR_IO;
        }
    }
    free(tmp);
    return fc_dist_agree(st);
}

enum fc_status fc_trainer_run(const fc_trainer_args *a, fc_trainer_cb cb, void *user)
{
    enum fc_status st = FC_ERR_ARG;
    fc_model *m = NULL;
    fc_tokenizer *tok = NULL;
    fc_sft_dataset *data = NULL, *eval = NULL;
    fc_train_model *tm = NULL;
    fc_pool *pool = NULL;
    fc_adamw opt = {0};
    int *order = NULL;
    int32_t *ids = NULL, *labels = NULL;
    long *mb_lo = NULL, *mb_hi = NULL;           /* (A) example ranges in `order` */
    const fc_sft_example **batch = NULL;         /* (A, B) */
    fc_str history = FC_STR_INIT;
    curve tr = {0}, ev = {0};
    char *resume_dir = NULL;
    FILE *logf = NULL;
    const int B = a->per_device_train_batch_size, A = a->gradient_accumulation_steps;
    const int R = fc_dist_rank(), W = fc_dist_world();
    const bool lead = R == 0;
    const int EB = a->per_device_eval_batch_size > 0 ? a->per_device_eval_batch_size : 8;
    if (!a->model_path || !a->data_path || !a->output_dir || B <= 0 || A <= 0 ||
        a->model_max_length < 2 || !fc_lr_type_known(a->lr_scheduler_type)) {
        FC_LOG_ERROR("%s: model, data and output paths, positive batch sizes, model_max_length >= 2 "
                     "and a known scheduler are needed", __func__);
        return FC_ERR_ARG;
    }
    if (a->resume_from_checkpoint) {
        const char *r = a->resume_from_checkpoint;
        if (!strcmp(r, "True") || !strcmp(r, "true") || !strcmp(r, "last")) {
            if (!(resume_dir = latest_checkpoint(a->output_dir))) {
                FC_LOG_ERROR("%s: no checkpoint-N with a resume state in %s", __func__, a->output_dir);
                goto done;
            }
        } else {
            resume_dir = fc_xstrdup(r);
        }
    }
    if (!(m = fc_model_load(a->model_path))) { st = FC_ERR_IO; goto done; }
    const char *src_dir = fc_model_format(m) == FC_FORMAT_HF ? fc_model_path(m) : NULL;
    tok = src_dir ? fc_tokenizer_from_hf(src_dir) : fc_tokenizer_from_gguf(fc_model_gguf(m), fc_model_path(m));
    if (!tok) { st = FC_ERR_FORMAT; goto done; }
    /* train.py: tokenizer.pad_token = tokenizer.unk_token */
    int32_t pad = fc_tokenizer_unk(tok);
    if (pad < 0) pad = fc_tokenizer_pad(tok);
    if (pad < 0) pad = fc_tokenizer_eos(tok);
    if (pad < 0) pad = 0;
    fc_sft_params sp = {.model_max_length = a->model_max_length, .pad_id = pad, .legacy = a->legacy,
                        .masking = a->masking == 1 ? FC_SFT_MASK_TEMPLATE : FC_SFT_MASK_FSCHAT,
                        .conv_template = a->conv_template};
    if (sp.masking == FC_SFT_MASK_TEMPLATE && !sp.conv_template)
        sp.conv_template = fc_conv_template_for_model_path(a->model_path, NULL);
    if (!(data = fc_sft_dataset_load(a->data_path, tok, &sp))) { st = FC_ERR_FORMAT; goto done; }
    const int N = fc_sft_dataset_size(data);
    if (N == 0) {
        FC_LOG_ERROR("%s: %s holds no examples", __func__, a->data_path);
        goto done;
    }
    if (a->eval_data_path && !(eval = fc_sft_dataset_load(a->eval_data_path, tok, &sp))) {
        st = FC_ERR_FORMAT;
        goto done;
    }
    if (a->q_lora && a->lora_r <= 0) {
        FC_LOG_ERROR("%s: --q-lora trains LoRA adapters: give --lora-r too", __func__);
        goto done;
    }
    if (!a->q_lora && !(tm = fc_train_model_from_model(m))) { st = FC_ERR_FORMAT; goto done; }
    if (a->lora_r > 0) {
        fc_lora_config lc = {.r = a->lora_r, .alpha = a->lora_alpha, .dropout = a->lora_dropout,
                             .targets = fc_lora_parse_targets(a->lora_target_modules), .seed = a->seed};
        if (!lc.targets) {
            FC_LOG_ERROR("%s: lora target modules '%s': q_proj k_proj v_proj o_proj gate_proj up_proj "
                         "down_proj", __func__, a->lora_target_modules ? a->lora_target_modules : "");
            goto done;
        }
        if (a->q_lora) {
            if (!(tm = fc_train_model_from_model_qlora(m, &lc))) { st = FC_ERR_FORMAT; goto done; }
        } else if ((st = fc_train_model_add_lora(tm, &lc)) != FC_OK) goto done;
    }
    pool = fc_pool_new(a->n_threads);
    fc_train_model_set_pool(tm, pool);
    fc_train_model_set_checkpointing(tm, a->gradient_checkpointing);
    if (a->bf16) {
        const bool on = fc_train_model_set_bf16(tm, true);
        if (on && R == 0)
            fprintf(stderr, "note: --bf16: the frozen matrices in bf16 on AMX tiles (%.0f MiB)\n",
                    fc_train_model_bf16_bytes(tm) / 1048576.0);
        else if (R == 0)
            fprintf(stderr, "note: --bf16: bf16 compute is for the frozen base of LoRA (not QLoRA) on a CPU with "
                            "AMX-BF16: this run computes in f32\n");
    }
    size_t sh_lo = 0, sh_n = fc_train_model_n_floats(tm);
    if (W > 1) fc_dist_shard(fc_train_model_n_floats(tm), R, W, &sh_lo, &sh_n);
    if ((st = fc_adamw_init_shard(&opt, tm, sh_lo, sh_n, a->adam_beta1, a->adam_beta2, a->adam_epsilon,
                                  a->weight_decay)) != FC_OK)
        goto done;
    st = FC_OK;
    if (lead && mkdir(a->output_dir, 0755) != 0 && access(a->output_dir, W_OK) != 0) {
        FC_LOG_ERROR("%s: cannot create %s", __func__, a->output_dir);
        st = FC_ERR_IO;
    }
    if ((st = fc_dist_agree(st)) != FC_OK) goto done;

    const long micro_per_epoch = (N + (long)B * W - 1) / ((long)B * W);
    const long steps_per_epoch = FC_MAX(1, micro_per_epoch / A);
    const long total = a->max_steps > 0 ? a->max_steps : (long)ceil(a->num_train_epochs * steps_per_epoch);
    const long warmup = a->warmup_steps > 0 ? a->warmup_steps : (long)ceil(a->warmup_ratio * total);
    const int T = a->model_max_length;
    const int BB = FC_MAX(B, eval ? EB : 1);
    order = fc_xmalloc((size_t)N * sizeof(int));
    ids = fc_xmalloc((size_t)BB * T * sizeof(int32_t));
    labels = fc_xmalloc((size_t)BB * T * sizeof(int32_t));
    mb_lo = fc_xmalloc((size_t)A * sizeof(long));
    mb_hi = fc_xmalloc((size_t)A * sizeof(long));
    batch = fc_xmalloc((size_t)A * B * W * sizeof(*batch));
    uint64_t rng = a->seed;
    long micro = 0; /* micro-batches consumed, over all epochs */
    long first_step = 0;
    double t0 = fc_time_sec();
    for (int i = 0; i < N; i++) order[i] = i;
    shuffle(order, N, &rng);
    if (resume_dir) {
        st = read_resume(resume_dir, tm, &opt, &first_step, &micro, &rng, order, N, &history, &tr, &ev);
        if (st != FC_OK) goto done;
        FC_LOG_INFO("resuming from %s at step %ld", resume_dir, first_step);
    }
    if (lead) {
        char *logp = fc_xasprintf("%s/train_log.txt", a->output_dir);
        logf = fopen(logp, resume_dir ? "a" : "w");
        if (!logf) FC_LOG_WARN("cannot write %s; no log file", logp);
        free(logp);
    }

    for (long step = first_step; step < total; step++) {
        double ts = fc_time_sec();
        /* the A global micro-batches of this step (a new epoch reshuffles),
         * then their labelled tokens, the denominator of the step's loss;
         * this rank computes its slice of B examples of each */
        const long GB = (long)B * W;
        long labelled = 0, tokens = 0;
        for (int k = 0; k < A; k++, micro++) {
            long j = micro % micro_per_epoch;
            if (j == 0 && micro > 0) shuffle(order, N, &rng);
            mb_lo[k] = j * GB;
            mb_hi[k] = FC_MIN((long)N, (j + 1) * GB);
            for (long b = mb_lo[k]; b < mb_hi[k]; b++) {
                const fc_sft_example *ex = fc_sft_dataset_get(data, order[b]);
                labelled += fc_train_count_labels(ex->labels, 1, ex->n);
                batch[(long)k * GB + b - mb_lo[k]] = ex;
            }
        }
        fc_train_zero_grad(tm);
        /* LoRA dropout draws its masks from a counter of training forwards,
         * the same on every rank: give rank r the counter values
         * c W + r A + k (k < A) of this step, disjoint over ranks and steps,
         * so ranks do not share masks (the counter comes back to c + A) */
        const uint64_t calls0 = fc_train_lora_calls(tm);
        if (W > 1) fc_train_lora_set_calls(tm, calls0 * (uint64_t)W + (uint64_t)R * (uint64_t)A);
        double loss_sum = 0;
        for (int k = 0; k < A; k++) {
            const long r_lo = FC_MIN(mb_hi[k], mb_lo[k] + (long)R * B), r_hi = FC_MIN(mb_hi[k], r_lo + B);
            int nb = (int)(r_hi - r_lo), Tb = 2;
            const fc_sft_example **exs = batch + (long)k * GB + (r_lo - mb_lo[k]);
            if (nb == 0) continue; /* the epoch's last global batch left this rank none */
            for (int b = 0; b < nb; b++) Tb = FC_MAX(Tb, exs[b]->n_tokens);
            Tb = FC_MIN(Tb, T);
            for (int b = 0; b < nb; b++) {
                memcpy(ids + (long)b * Tb, exs[b]->ids, (size_t)Tb * sizeof(int32_t));
                memcpy(labels + (long)b * Tb, exs[b]->labels, (size_t)Tb * sizeof(int32_t));
            }
            tokens += (long)nb * Tb;
            if (labelled == 0) continue;
            double l = fc_train_step_grad(tm, ids, labels, nb, Tb, (double)labelled);
            if (isnan(l)) { st = FC_ERR_ARG; goto done; }
            loss_sum += l;
        }
        if (W > 1) {
            fc_train_lora_set_calls(tm, calls0 + (uint64_t)A);
            double sums[2] = {loss_sum, (double)tokens};
            fc_dist_sum(sums, 2);
            loss_sum = sums[0];
            tokens = (long)sums[1];
        }
        const double lr = a->learning_rate * fc_lr_lambda(a->lr_scheduler_type, step, warmup, total);
        double gnorm = NAN;
        if (labelled > 0 && W > 1) {
            gnorm = fc_dist_step(tm, &opt, a->max_grad_norm, lr);
            if (isnan(gnorm)) { st = FC_ERR_IO; goto done; }
        } else if (labelled > 0) {
            gnorm = fc_train_clip_grad_norm(tm, a->max_grad_norm);
            fc_adamw_step(&opt, tm, lr);
        } else {
            FC_LOG_WARN("step %ld: no labelled tokens (all examples masked); no update", step + 1);
        }
        fc_trainer_progress pr = {
            .step = step + 1, .total_steps = total, .epoch = (double)micro / micro_per_epoch,
            .loss = labelled > 0 ? loss_sum : NAN, .lr = lr, .grad_norm = gnorm, .tokens = tokens,
            .labelled = labelled, .step_sec = fc_time_sec() - ts,
            .elapsed_sec = fc_time_sec() - t0, .eval_loss = NAN, .world = W,
            .optim_mib = 2.0 * (double)sh_n * sizeof(float) / 1048576.0,
            .optim_total_mib = 2.0 * (double)fc_train_model_n_floats(tm) * sizeof(float) / 1048576.0,
        };
        pr.eta_sec = pr.elapsed_sec / (double)(step + 1 - first_step) * (double)(total - step - 1);
        fc_str_puts(&history, fc_str_len(&history) ? ",\n    " : "\n    ");
        fc_str_printf(&history, "{\"step\": %ld, \"epoch\": ", pr.step);
        fc_json_put_number(&history, pr.epoch, 6);
        fc_str_puts(&history, ", \"loss\": ");
        if (isnan(pr.loss)) fc_json_put_null(&history);
        else fc_json_put_number(&history, pr.loss, 8);
        fc_str_puts(&history, ", \"learning_rate\": ");
        fc_json_put_number(&history, pr.lr, 8);
        fc_str_puts(&history, ", \"grad_norm\": ");
        if (isnan(gnorm)) fc_json_put_null(&history);
        else fc_json_put_number(&history, gnorm, 8);
        fc_str_putc(&history, '}');
        curve_add(&tr, pr.step, pr.loss);
        if (eval && ((a->eval_steps > 0 && (step + 1) % a->eval_steps == 0) || step + 1 == total)) {
            pr.eval_loss = evaluate(tm, eval, EB, T, ids, labels, &pr.eval_labelled);
            fc_str_printf(&history, ",\n    {\"step\": %ld, \"epoch\": ", pr.step);
            fc_json_put_number(&history, pr.epoch, 6);
            fc_str_puts(&history, ", \"eval_loss\": ");
            if (isnan(pr.eval_loss)) fc_json_put_null(&history);
            else fc_json_put_number(&history, pr.eval_loss, 8);
            fc_str_putc(&history, '}');
            curve_add(&ev, pr.step, pr.eval_loss);
        }
        char *ck = NULL;
        if (a->save_steps > 0 && (step + 1) % a->save_steps == 0 && step + 1 < total) {
            ck = fc_xasprintf("%s/checkpoint-%ld", a->output_dir, step + 1);
            if ((st = save_checkpoint(ck, tm, src_dir, a->model_path, &opt, &history, step + 1, total, pr.epoch, micro,
                                      rng, order, N, &tr, &ev)) != FC_OK) {
                free(ck);
                goto done;
            }
            pr.saved = ck;
            if (lead && a->save_total_limit > 0) prune_checkpoints(a->output_dir, a->save_total_limit);
        }
        if (logf) {
            char line[1024];
            fc_trainer_format_progress(&pr, line, sizeof line);
            fputs(line, logf);
            fflush(logf);
        }
        if (cb && lead) cb(&pr, user);
        free(ck);
    }
    if (lead && (st = save_model(tm, a->output_dir, src_dir, a->model_path)) == FC_OK &&
        (st = write_state(a->output_dir, &history, total, total, (double)micro / micro_per_epoch)) == FC_OK)
        st = write_svg(a->output_dir, &tr, &ev, total);
    st = fc_dist_agree(st);
done:
    if (logf) fclose(logf);
    free(resume_dir);
    curve_free(&tr);
    curve_free(&ev);
    fc_str_free(&history);
    free(order);
    free(ids);
    free(labels);
    free(mb_lo);
    free(mb_hi);
    free(batch);
    fc_adamw_free(&opt);
    fc_train_model_free(tm);
    fc_pool_free(pool);
    fc_sft_dataset_free(data);
    fc_sft_dataset_free(eval);
    fc_tokenizer_free(tok);
    fc_model_free(m);
    return st;
}
