/*
 * hidden.c: the last hidden states of a forward pass, for embeddings
 * (fastchat/serve/model_worker.py get_embeddings reads
 * `model(input_ids, output_hidden_states=True).hidden_states[-1]`, which for
 * LlamaModel / Qwen2Model is the residual stream after the final RMSNorm).
 *
 *   enum fc_status fc_model_forward_hidden(const fc_model *m, fc_exec *e,
 *       struct fc_kv_cache *kv, const fc_batch *batch, float *hidden);
 *
 * Same contract as fc_model_forward, but for each token whose logits flag is
 * set, `hidden` receives its C floats rmsnorm(x) * output_norm instead of V
 * logits, in batch order.
 *
 * How, without a second forward path: fc_model_forward ends with
 * logits = xl Wout^T, where xl is exactly that normed hidden state. Running
 * it on a shallow copy of the model whose output matrix is the (C, C) f32
 * identity gives xl itself: each output is one product x*1 plus exact zeros,
 * in the fast and the exact kernels alike, so no rounding is added. The
 * identity costs C*C multiply-adds per token (C = 576 for SmolLM2-135M), far
 * less than the V*C logits it replaces. One identity per width is built on
 * first use and kept for the life of the process.
 */
#include "model_impl.h"
#include "kv_cache.h"

#include <pthread.h>
#include <string.h>

typedef struct eye {
    int C;
    float *data;     /* (C, C) identity, row-major */
    struct eye *next;
} eye;

static pthread_mutex_t eye_mu = PTHREAD_MUTEX_INITIALIZER;
static eye *eyes;

static const float *identity(int C)
{
    pthread_mutex_lock(&eye_mu);
    eye *it = eyes;
    while (it && it->C != C) it = it->next;
    if (!it) {
        float *d = fc_aligned_alloc(sizeof(float) * (size_t)C * (size_t)C);
        if (d) {
            for (int i = 0; i < C; i++) d[(size_t)i * (size_t)C + (size_t)i] = 1.0f; /* zeroed by the allocator */
            it = fc_xmalloc(sizeof *it);
            *it = (eye){.C = C, .data = d, .next = eyes};
            eyes = it;
        }
    }
    pthread_mutex_unlock(&eye_mu);
    return it ? it->data : NULL;
}

enum fc_status fc_model_forward_hidden(const fc_model *m, fc_exec *e, struct fc_kv_cache *kv,
                                       const fc_batch *batch, float *hidden)
{
    const int C = m->cfg.n_embd;
    const float *I = identity(C);
    if (!I) {
        FC_LOG_ERROR("fc_model_forward_hidden: cannot allocate a %d x %d identity", C, C);
        return FC_ERR_NOMEM;
    }
    fc_model shadow = *m;
    shadow.cfg.final_softcap = 0; /* Gemma 2 caps logits, not hidden states */
    shadow.output = (fc_tensor){
        .type = FC_DTYPE_F32, .n_dims = 2, .ne = {C, C, 1, 1}, .data = I,
        .nbytes = sizeof(float) * (size_t)C * (size_t)C,
    };
    return fc_model_forward(&shadow, e, kv, batch, hidden);
}
