/*
 * moe.c: Mixtral's mixture of experts: expert counts from GGUF metadata,
 * Hugging Face per-expert tensors stacked at load, and the routing of a
 * batch's tokens to their experts (moe.h says what and why; arch_llama.c
 * runs the matrix products).
 */
#include "moe.h"
#include "format/gguf.h"
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- load ---- */

bool fc_moe_read_gguf(fc_model *m)
{
    fc_model_config *c = &m->cfg;
    char key[128];
    uint32_t n, k;
    snprintf(key, sizeof key, "%s.expert_count", c->arch_name);
    if (!fc_gguf_get_u32(m->gguf, key, &n) || n == 0) return true; /* dense */
    if (strcmp(c->arch_name, "llama") != 0 && strcmp(c->arch_name, "mistral") != 0) {
        FC_LOG_ERROR("%s: experts (%s) are supported in llama-architecture (Mixtral) files only", m->path, key);
        return false;
    }
    if (n > FC_MOE_MAX_EXPERTS) {
        FC_LOG_ERROR("%s: metadata %s = %u; at most %d experts are supported", m->path, key, n, FC_MOE_MAX_EXPERTS);
        return false;
    }
    snprintf(key, sizeof key, "%s.expert_used_count", c->arch_name);
    if (!fc_gguf_get_u32(m->gguf, key, &k) || k < 1 || k > n) {
        FC_LOG_ERROR("%s: metadata %s must be in [1, %u] (the expert count)", m->path, key, n);
        return false;
    }
    c->n_expert = (int)n;
    c->n_expert_used = (int)k;
    m->arch_info = fc_arch_moe();
    return true;
}

/* Memory owned by the model (freed with it). */
static void *own(fc_model *m, size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    m->owned = fc_xrealloc(m->owned, sizeof(void *) * (size_t)(m->n_owned + 1));
    m->owned[m->n_owned++] = p;
    return p;
}

/* The E experts src[0..E) (each (ne0, ne1), one type) copied into one 3-D
 * stack dst owned by the model; the HF files' pages are dropped after. */
static bool copy_stack(fc_model *m, int l, const fc_tensor *const *src, int64_t ne0, int64_t ne1, fc_tensor *dst)
{
    const int E = m->cfg.n_expert;
    const size_t each = src[0]->nbytes;
    uint8_t *data = own(m, each * (size_t)E);
    if (!data) {
        FC_LOG_ERROR("%s: cannot allocate %zu bytes for the experts of layer %d", m->path, each * (size_t)E, l);
        return false;
    }
    for (int x = 0; x < E; x++) {
        memcpy(data + (size_t)x * each, src[x]->data, each);
        if (m->st) fc_safetensors_release(m->st, src[x]);
    }
    *dst = (fc_tensor){.type = src[0]->type, .n_dims = 3, .ne = {ne0, ne1, E, 1}, .data = data,
                       .nbytes = each * (size_t)E};
    return true;
}

/* One stack of layer l: experts "model.layers.l.block_sparse_moe.experts.X.<w>.weight",
 * each (ne0, ne1), into dst. */
static bool stack(fc_model *m, int l, const char *w, int64_t ne0, int64_t ne1, fc_tensor *dst)
{
    const int E = m->cfg.n_expert;
    const fc_tensor *src[FC_MOE_MAX_EXPERTS];
    char name[160];
    for (int x = 0; x < E; x++) {
        snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, x, w);
        const fc_tensor *t = fc_safetensors_find(m->st, name);
        if (!t) {
            FC_LOG_ERROR("%s: missing tensor %s (num_local_experts = %d)", m->path, name, E);
            return false;
        }
        if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1) {
            FC_LOG_ERROR("%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]", m->path, name,
                         (long long)t->ne[1], (long long)t->ne[0], (long long)ne1, (long long)ne0);
            return false;
        }
        if (t->type != FC_DTYPE_F32 && t->type != FC_DTYPE_F16 && t->type != FC_DTYPE_BF16) {
            FC_LOG_ERROR("%s: tensor %s has unsupported type %s", m->path, name, fc_dtype_name(t->type));
            return false;
        }
        if (x > 0 && t->type != src[0]->type) {
            FC_LOG_ERROR("%s: tensor %s is %s, expert 0's is %s (one type per layer's experts)", m->path, name,
                         fc_dtype_name(t->type), fc_dtype_name(src[0]->type));
            return false;
        }
        src[x] = t;
    }
    snprintf(name, sizeof name, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, E, w);
    if (fc_safetensors_find(m->st, name)) {
        FC_LOG_ERROR("%s: tensor %s is beyond num_local_experts = %d in config.json", m->path, name, E);
        return false;
    }
    return copy_stack(m, l, src, ne0, ne1, dst);
}

bool fc_moe_stack_hf(fc_model *m)
{
    const fc_model_config *c = &m->cfg;
    if (c->n_expert > FC_MOE_MAX_EXPERTS) {
        FC_LOG_ERROR("%s: num_local_experts %d; at most %d are supported", m->path, c->n_expert, FC_MOE_MAX_EXPERTS);
        return false;
    }
    for (int l = 0; l < c->n_layer; l++) {
        fc_layer *L = &m->layers[l];
        /* w1 = gate, w3 = up (FF rows of C), w2 = down (C rows of FF) */
        if (!stack(m, l, "w1", c->n_embd, c->n_ff, &L->gate_exps) ||
            !stack(m, l, "w3", c->n_embd, c->n_ff, &L->up_exps) ||
            !stack(m, l, "w2", c->n_ff, c->n_embd, &L->down_exps))
            return false;
    }
    return true;
}

/* Older llama.cpp converters wrote a Mixtral GGUF's experts one tensor each:
 * blk.N.ffn_gate.X.weight, ffn_up.X, ffn_down.X (2-D). They are copied into
 * the 3-D stacks the merged files hold, owned by the model. */
static bool stack_gguf(fc_model *m, int l, const char *w, int64_t ne0, int64_t ne1, fc_tensor *dst)
{
    const int E = m->cfg.n_expert;
    const fc_tensor *src[FC_MOE_MAX_EXPERTS];
    char name[160];
    for (int x = 0; x < E; x++) {
        snprintf(name, sizeof name, "blk.%d.%s.%d.weight", l, w, x);
        const fc_gguf_tensor_info *ti = fc_gguf_find_tensor(m->gguf, name);
        if (!ti) {
            FC_LOG_ERROR("%s: missing tensor %s (per-expert layout, %s.expert_count = %d)", m->path, name,
                         m->cfg.arch_name, E);
            return false;
        }
        const fc_tensor *t = &ti->t;
        if (t->n_dims != 2 || t->ne[0] != ne0 || t->ne[1] != ne1) {
            FC_LOG_ERROR("%s: tensor %s has shape [%lld, %lld], expected [%lld, %lld]", m->path, name,
                         (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)ne1);
            return false;
        }
        if (!fc_dtype_supported(t->type) || (x > 0 && t->type != src[0]->type)) {
            FC_LOG_ERROR("%s: tensor %s has type %s (one supported type per layer's experts)", m->path, name,
                         fc_dtype_name(t->type));
            return false;
        }
        src[x] = t;
    }
    snprintf(name, sizeof name, "blk.%d.%s.%d.weight", l, w, E);
    if (fc_gguf_find_tensor(m->gguf, name)) {
        FC_LOG_ERROR("%s: tensor %s is beyond %s.expert_count = %d", m->path, name, m->cfg.arch_name, E);
        return false;
    }
    return copy_stack(m, l, src, ne0, ne1, dst);
}

bool fc_moe_stack_gguf(fc_model *m)
{
    const fc_model_config *c = &m->cfg;
    for (int l = 0; l < c->n_layer; l++) {
        fc_layer *L = &m->layers[l];
        char name[96];
        snprintf(name, sizeof name, "blk.%d.ffn_gate.0.weight", l);
        /* merged stacks (or neither form: finish_tensors names the missing stack) */
        if (L->gate_exps.data || L->up_exps.data || L->down_exps.data || !fc_gguf_find_tensor(m->gguf, name))
            continue;
        if (!stack_gguf(m, l, "ffn_gate", c->n_embd, c->n_ff, &L->gate_exps) ||
            !stack_gguf(m, l, "ffn_up", c->n_embd, c->n_ff, &L->up_exps) ||
            !stack_gguf(m, l, "ffn_down", c->n_ff, c->n_embd, &L->down_exps))
            return false;
    }
    return true;
}

fc_tensor fc_moe_expert(const fc_tensor *s, int x)
{
    fc_tensor t = *s;
    const size_t bytes = fc_tensor_row_bytes(s) * (size_t)s->ne[1];
    t.n_dims = 2;
    t.ne[2] = 1;
    t.data = (const uint8_t *)s->data + (size_t)x * bytes;
    t.nbytes = bytes;
    if (s->packed) t.packed = (const uint8_t *)s->packed + (size_t)x * bytes; /* whole 8-row groups */
    return t;
}

/* ---- routing ---- */

fc_moe_scratch *fc_moe_scratch_new(const fc_model_config *c, int T_max)
{
    fc_moe_scratch *s = fc_xcalloc(1, sizeof *s);
    s->E = c->n_expert;
    s->k = c->n_expert_used;
    s->T_max = T_max;
    const size_t S = (size_t)T_max * (size_t)s->k, C = (size_t)c->n_embd, FF = (size_t)c->n_ff;
    s->router = fc_aligned_alloc(sizeof(float) * (size_t)T_max * (size_t)s->E);
    s->xin = fc_aligned_alloc(sizeof(float) * S * C);
    s->g = fc_aligned_alloc(sizeof(float) * S * FF);
    s->u = fc_aligned_alloc(sizeof(float) * S * FF);
    s->d = fc_aligned_alloc(sizeof(float) * S * C);
    s->count = fc_xcalloc((size_t)s->E, sizeof(int32_t));
    s->start = fc_xcalloc((size_t)s->E + 1, sizeof(int32_t));
    s->slot_tok = fc_xmalloc(sizeof(int32_t) * S);
    s->tok_slot = fc_xmalloc(sizeof(int32_t) * S);
    s->tok_w = fc_xmalloc(sizeof(float) * S);
    if (!s->router || !s->xin || !s->g || !s->u || !s->d) {
        FC_LOG_ERROR("moe: cannot allocate expert scratch for %d tokens", T_max);
        fc_moe_scratch_free(s);
        return NULL;
    }
    return s;
}

void fc_moe_scratch_free(fc_moe_scratch *s)
{
    if (!s) return;
    fc_aligned_free(s->router);
    fc_aligned_free(s->xin);
    fc_aligned_free(s->g);
    fc_aligned_free(s->u);
    fc_aligned_free(s->d);
    free(s->count);
    free(s->start);
    free(s->slot_tok);
    free(s->tok_slot);
    free(s->tok_w);
    free(s);
}

void fc_moe_route(fc_moe_scratch *s, int T)
{
    const int E = s->E, k = s->k;
    int32_t *pick = s->tok_slot; /* expert ids first, slots once grouped */
    memset(s->count, 0, sizeof(int32_t) * (size_t)E);
    for (int t = 0; t < T; t++) {
        const float *lg = s->router + (size_t)t * E;
        /* softmax in f32, as transformers (router_logits.float()) */
        float mx = lg[0], p[FC_MOE_MAX_EXPERTS], sum = 0;
        for (int x = 1; x < E; x++) mx = fmaxf(mx, lg[x]);
        for (int x = 0; x < E; x++) sum += p[x] = expf(lg[x] - mx);
        for (int x = 0; x < E; x++) p[x] /= sum;
        /* top-k (first of equals wins), then weights renormalised over them */
        bool used[FC_MOE_MAX_EXPERTS] = {false};
        float wsum = 0;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int x = 0; x < E; x++)
                if (!used[x] && (best < 0 || p[x] > p[best])) best = x;
            used[best] = true;
            pick[t * k + j] = best;
            s->tok_w[t * k + j] = p[best];
            wsum += p[best];
            s->count[best]++;
        }
        for (int j = 0; j < k; j++) s->tok_w[t * k + j] /= wsum;
    }
    s->start[0] = 0;
    for (int x = 0; x < E; x++) s->start[x + 1] = s->start[x] + s->count[x];
    /* slots grouped by expert, tokens in batch order within an expert */
    int32_t fill[FC_MOE_MAX_EXPERTS];
    memcpy(fill, s->start, sizeof(int32_t) * (size_t)E);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < k; j++) {
            const int slot = fill[pick[t * k + j]]++;
            s->slot_tok[slot] = t;
            pick[t * k + j] = slot;
        }
}
