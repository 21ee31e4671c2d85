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
 * Not done: resume, evaluation, lazy preprocessing, packing, LoRA, MPI.
 */
#include "train.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/file.h"
#include "../base/json.h"
#include "../base/str.h"
#include "../tokenizer/tokenizer.h"
#include "sft_data.h"

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

enum fc_status fc_trainer_run(const fc_trainer_args *a, fc_trainer_cb cb, void *user)
{
    enum fc_status st = FC_ERR_ARG;
    fc_model *m = NULL;
    fc_tokenizer *tok = NULL;
    fc_sft_dataset *data = NULL;
    fc_train_model *tm = NULL;
    fc_pool *pool = NULL;
    fc_adamw opt = {0};
    int *order = NULL;
    int32_t *ids = NULL, *labels = NULL;
    long *mb_lo = NULL, *mb_hi = NULL;           /* (A) example ranges in `order` */
    const fc_sft_example **batch = NULL;         /* (A, B) */
    fc_str history = FC_STR_INIT;
    const int B = a->per_device_train_batch_size, A = a->gradient_accumulation_steps;
    if (!a->model_path || !a->data_path || !a->output_dir || B <= 0 || A <= 0 ||
        a->model_max_length < 2 || !fc_lr_type_known(a->lr_scheduler_type)) {
        FC_LOG_ERROR("%s: model, data and output paths, positive batch sizes, model_max_length >= 2 "
                     "and a known scheduler are needed", __func__);
        return FC_ERR_ARG;
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
    fc_sft_params sp = {.model_max_length = a->model_max_length, .pad_id = pad, .legacy = a->legacy};
    if (!(data = fc_sft_dataset_load(a->data_path, tok, &sp))) { st = FC_ERR_FORMAT; goto done; }
    const int N = fc_sft_dataset_size(data);
    if (N == 0) {
        FC_LOG_ERROR("%s: %s holds no examples", __func__, a->data_path);
        goto done;
    }
    if (!(tm = fc_train_model_from_model(m))) { st = FC_ERR_FORMAT; goto done; }
    pool = fc_pool_new(a->n_threads);
    fc_train_model_set_pool(tm, pool);
    if ((st = fc_adamw_init(&opt, tm, a->adam_beta1, a->adam_beta2, a->adam_epsilon, a->weight_decay)) != FC_OK)
        goto done;
    if (mkdir(a->output_dir, 0755) != 0 && access(a->output_dir, W_OK) != 0) {
        FC_LOG_ERROR("%s: cannot create %s", __func__, a->output_dir);
        st = FC_ERR_IO;
        goto done;
    }

    const long micro_per_epoch = (N + B - 1) / B;
    const long steps_per_epoch = FC_MAX(1, micro_per_epoch / A);
    const long total = a->max_steps > 0 ? a->max_steps : (long)ceil(a->num_train_epochs * steps_per_epoch);
    const long warmup = a->warmup_steps > 0 ? a->warmup_steps : (long)ceil(a->warmup_ratio * total);
    const int T = a->model_max_length;
    order = fc_xmalloc((size_t)N * sizeof(int));
    ids = fc_xmalloc((size_t)B * T * sizeof(int32_t));
    labels = fc_xmalloc((size_t)B * T * sizeof(int32_t));
    mb_lo = fc_xmalloc((size_t)A * sizeof(long));
    mb_hi = fc_xmalloc((size_t)A * sizeof(long));
    batch = fc_xmalloc((size_t)A * B * sizeof(*batch));
    uint64_t rng = a->seed;
    long micro = 0; /* micro-batches consumed, over all epochs */
    double t0 = fc_time_sec();
    for (int i = 0; i < N; i++) order[i] = i;
    shuffle(order, N, &rng);

    for (long step = 0; step < total; step++) {
        double ts = fc_time_sec();
        /* the A micro-batches of this step (a new epoch reshuffles), then
         * their labelled tokens, the denominator of the step's loss */
        long labelled = 0, tokens = 0;
        for (int k = 0; k < A; k++, micro++) {
            long j = micro % micro_per_epoch;
            if (j == 0 && micro > 0) shuffle(order, N, &rng);
            mb_lo[k] = j * B;
            mb_hi[k] = FC_MIN((long)N, (j + 1) * B);
            for (long b = mb_lo[k]; b < mb_hi[k]; b++) {
                const fc_sft_example *ex = fc_sft_dataset_get(data, order[b]);
                labelled += fc_train_count_labels(ex->labels, 1, ex->n);
                batch[(long)k * B + b - mb_lo[k]] = ex;
            }
        }
        fc_train_zero_grad(tm);
        double loss_sum = 0;
        for (int k = 0; k < A; k++) {
            int nb = (int)(mb_hi[k] - mb_lo[k]), Tb = 2;
            const fc_sft_example **exs = batch + (long)k * B;
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
        const double lr = a->learning_rate * fc_lr_lambda(a->lr_scheduler_type, step, warmup, total);
        double gnorm = NAN;
        if (labelled > 0) {
            gnorm = fc_train_clip_grad_norm(tm, a->max_grad_norm);
            fc_adamw_step(&opt, tm, lr);
        } else {
            FC_LOG_WARN("step %ld: no labelled tokens (all examples masked); no update", step + 1);
        }
        fc_trainer_progress pr = {
            .step = step + 1, .total_steps = total, .epoch = (double)micro / micro_per_epoch,
            .loss = labelled > 0 ? loss_sum : NAN, .lr = lr, .grad_norm = gnorm, .tokens = tokens,
            .labelled = labelled, .step_sec = fc_time_sec() - ts, .elapsed_sec = fc_time_sec() - t0,
        };
        fc_str_puts(&history, step ? ",\n    " : "\n    ");
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
        char *ck = NULL;
        if (a->save_steps > 0 && (step + 1) % a->save_steps == 0 && step + 1 < total) {
            ck = fc_xasprintf("%s/checkpoint-%ld", a->output_dir, step + 1);
            if ((st = fc_train_save_hf(tm, ck, src_dir)) != FC_OK ||
                (st = write_state(ck, &history, step + 1, total, pr.epoch)) != FC_OK) {
                free(ck);
                goto done;
            }
            pr.saved = ck;
        }
        if (cb) cb(&pr, user);
        free(ck);
    }
    if ((st = fc_train_save_hf(tm, a->output_dir, src_dir)) == FC_OK)
        st = write_state(a->output_dir, &history, total, total, (double)micro / micro_per_epoch);
done:
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
    fc_tokenizer_free(tok);
    fc_model_free(m);
    return st;
}
