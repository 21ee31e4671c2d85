/*
 * test_lora.c: LoRA adapters served from their base (src/model/lora.c).
 * Two PEFT adapters of one base (tests/data/weights/lora and lora_rs,
 * written by tools/golden/make_delta_lora_fixtures.py) loaded in one process
 * share one loaded base: every tensor neither adapter targets is the same
 * memory in both models and in nothing else, each targeted matrix is a
 * private copy, and freeing the adapters frees the base. (That the merged
 * values equal apply-lora's is tests/py/test_lora_serve.py.)
 * Data: tests/data (run from the repository root) or $FC_TEST_DATA.
 */
#include "test_util.h"
#include "model/model_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fc_lora_n_shared_bases(void);

/* an adapter folder whose adapter_config.json names base by absolute path */
static void make_adapter(const char *src, const char *base, const char *dst)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' && mkdir -p '%s' && cp '%s'/adapter_model.* '%s'/ && "
             "sed -E 's#\"base_model_name_or_path\": *(null|\"[^\"]*\")#\"base_model_name_or_path\": \"%s\"#' "
             "'%s/adapter_config.json' > '%s/adapter_config.json'",
             dst, dst, src, dst, base, src, dst);
    if (system(cmd) != 0) fprintf(stderr, "make_adapter failed\n");
}

int main(void)
{
    const char *env = getenv("FC_TEST_DATA");
    char data[4096], base[4200], a1[4200], a2[4200], cwd[2048], tmp[64];
    snprintf(data, sizeof data, "%s", env ? env : "tests/data");
    if (data[0] != '/' && getcwd(cwd, sizeof cwd)) {
        char t[4096];
        snprintf(t, sizeof t, "%.2000s/%.2000s", cwd, data);
        snprintf(data, sizeof data, "%s", t);
    }
    snprintf(tmp, sizeof tmp, "/tmp/fc_test_lora_%d", (int)getpid());
    snprintf(base, sizeof base, "%s/weights/base", data);
    char d1[4200], d2[4200], s1[4200], s2[4200];
    snprintf(s1, sizeof s1, "%s/weights/lora", data);
    snprintf(s2, sizeof s2, "%s/weights/lora_rs", data);
    snprintf(d1, sizeof d1, "%s/a1", tmp);
    snprintf(d2, sizeof d2, "%s/a2", tmp);
    make_adapter(s1, base, d1);
    make_adapter(s2, base, d2);
    snprintf(a1, sizeof a1, "%s", d1);
    snprintf(a2, sizeof a2, "%s", d2);

    fc_model *m1 = fc_model_load(a1), *m2 = fc_model_load(a2);
    CHECKF(m1 && m2, "%s", fc_last_error());
    if (!m1 || !m2) return TEST_END();
    CHECK(fc_lora_n_shared_bases() == 1);
    CHECK(m1->lora_base && m1->lora_base == m2->lora_base);
    const fc_model *b = m1->lora_base;
    /* lora targets q_proj, v_proj, down_proj; lora_rs every linear of attention and MLP */
    int shared = 0, own1 = 0, own2 = 0;
    size_t shared_bytes = 0, private_bytes = 0;
    for (int64_t i = 0;; i++) {
        const char *n1, *n2, *nb;
        const fc_tensor *t1, *t2, *tb;
        if (!fc_model_tensor_at(m1, i, &n1, &t1)) break;
        CHECK(fc_model_tensor_at(m2, i, &n2, &t2) && fc_model_tensor_at(b, i, &nb, &tb));
        CHECK(!strcmp(n1, n2) && !strcmp(n1, nb));
        bool in1 = strstr(n1, "attn_q.") || strstr(n1, "attn_v.") || strstr(n1, "ffn_down.");
        bool in2 = strstr(n1, "attn_") || strstr(n1, "ffn_");
        in2 = in2 && !strstr(n1, "_norm");
        CHECKF((t1->data != tb->data) == in1, "%s", n1);
        CHECKF((t2->data != tb->data) == in2, "%s", n1);
        if (!in1 && !in2) {
            shared++;
            shared_bytes += tb->nbytes;
        }
        own1 += in1;
        own2 += in2;
        private_bytes += (in1 ? t1->nbytes : 0) + (in2 ? t2->nbytes : 0);
    }
    printf("lora: %d tensors (%zu bytes) shared by both adapters and the base; %d + %d private merged matrices (%zu bytes)\n",
           shared, shared_bytes, own1, own2, private_bytes);
    CHECK(shared >= 5 && own1 == 6 && own2 == 14);
    fc_model_free(m1);
    CHECK(fc_lora_n_shared_bases() == 1);
    fc_model_free(m2);
    CHECK(fc_lora_n_shared_bases() == 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return TEST_END();
}
