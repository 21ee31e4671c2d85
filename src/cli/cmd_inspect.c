/*
 * cmd_inspect.c: `fastchat inspect --model-path M`: architecture,
 * hyper-parameters, tensor types with counts and bytes, total size.
 */
#include "cli.h"
#include "base/fc_base.h"
#include "model/model.h"
#include "format/gguf.h"

#include <string.h>

int fc_cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool show_tensors = false;
    const fc_flag flags[] = {
        {"--model-path", FC_FLAG_STRING, &path, .metavar = "M", .help = "GGUF file or Hugging Face folder (default: the default model)"},
        {"--tensors", FC_FLAG_TRUE, &show_tensors, .help = "list every tensor"},
        {0},
    };
    const fc_flags_cmd cmd = {.usage = "fastchat inspect --model-path M [--tensors]", .flags = flags};
    fc_flags_parse_or_exit(&cmd, argc, argv);
    if (!path) path = fc_cli_default_model();
    fc_model *m = fc_model_load(path);
    if (!m) fc_cli_die("--model-path takes a GGUF file or a Hugging Face folder", "%s", fc_last_error());
    const fc_model_config *c = fc_model_get_config(m);
    static const char *scal[] = {"none", "linear", "llama3", "longrope"};
    printf("model:          %s\n", path);
    printf("format:         %s", fc_model_format(m) == FC_FORMAT_GGUF ? "gguf" : "huggingface");
    const fc_gguf *g = fc_model_gguf(m);
    if (g) printf(" v%u", fc_gguf_version(g));
    printf("\n");
    fc_gguf_str s;
    if (g && fc_gguf_get_str(g, "general.name", &s)) printf("name:           %.*s\n", (int)s.len, s.ptr);
    printf("architecture:   %s\n", c->arch_name);
    printf("vocab (V):      %d\n", c->n_vocab);
    printf("embedding (C):  %d\n", c->n_embd);
    printf("layers (L):     %d\n", c->n_layer);
    printf("heads (NH/NKV): %d / %d (head size %d)\n", c->n_head, c->n_head_kv, c->head_dim);
    printf("feed-forward:   %d\n", c->n_ff);
    if (c->n_expert > 0) printf("experts:        %d, %d used per token (feed-forward width per expert)\n", c->n_expert, c->n_expert_used);
    printf("context:        %d\n", c->n_ctx_train);
    printf("rms eps:        %g\n", (double)c->rms_eps);
    printf("rope:           theta %g, scaling %s", (double)c->rope_theta, scal[c->rope_scaling]);
    if (c->rope_scaling != FC_ROPE_SCALING_NONE) printf(" (factor %g)", (double)c->rope_factor);
    printf(", %s pairs\n", c->rope_neox ? "rotate-half" : "adjacent");
    if (c->rope_scaling == FC_ROPE_SCALING_LONGROPE)
        printf("longrope:       original context %d, attention factor %g\n", c->rope_orig_ctx, (double)c->rope_attn_factor);
    if (c->sliding_window > 0)
        printf("sliding window: %d (layers %s%d on)\n", c->sliding_window, c->swa_even ? "even, " : "", c->swa_first_layer);
    if (c->attn_softcap > 0 || c->final_softcap > 0)
        printf("soft-caps:      attention %g, final %g\n", (double)c->attn_softcap, (double)c->final_softcap);
    printf("embeddings:     %s\n", c->tied_embeddings ? "tied" : "untied");
    printf("qkv bias:       %s\n", c->qkv_bias ? "yes" : "no");
    printf("bos / eos:      %d / %d\n", c->bos_id, c->eos_id);

    int64_t count[FC_DTYPE_COUNT] = {0};
    size_t bytes[FC_DTYPE_COUNT] = {0};
    int64_t n_params = 0;
    const char *name;
    const fc_tensor *t;
    for (int64_t i = 0; fc_model_tensor_at(m, i, &name, &t); i++) {
        count[t->type]++;
        bytes[t->type] += t->nbytes;
        n_params += fc_tensor_nelem(t);
        if (show_tensors)
            printf("  %-32s %-6s [%lld, %lld]\n", name, fc_dtype_name(t->type), (long long)t->ne[0], (long long)t->ne[1]);
    }
    printf("tensor types:  ");
    for (int i = 0; i < FC_DTYPE_COUNT; i++)
        if (count[i]) printf(" %s x%lld (%.1f MiB)", fc_dtype_name(i), (long long)count[i], bytes[i] / 1048576.0);
    printf("\n");
    printf("parameters:     %.1f M\n", n_params / 1e6);
    printf("weights:        %.1f MiB (%s mostly)\n", fc_model_weight_bytes(m) / 1048576.0, fc_dtype_name(fc_model_weight_type(m)));
    fc_model_free(m);
    return 0;
}
