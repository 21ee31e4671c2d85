/*
 * test_hub.c: repo ids and offline resolution (format/hub.h) on a cache laid
 * out here by hand as huggingface_hub lays it out (test_hub.py builds one with
 * huggingface_hub itself), and the parsers of the Hub's JSON and Link headers
 * (tools/hub_download.h): accepted shapes, and the hostile ones refused (paths
 * that climb out of the snapshot, oids that are not hex, negative sizes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "format/hub.h"
#include "tools/hub_download.h"
#include "test_util.h"

static void test_ids(void)
{
    static const struct { const char *s, *repo, *rev; } ok[] = {
        {"org/name", "org/name", NULL},
        {"HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", NULL},
        {"gpt2", "gpt2", NULL},
        {"lmsys/vicuna-7b-v1.5@main", "lmsys/vicuna-7b-v1.5", "main"},
        {"a/b@refs/pr/1", "a/b", "refs/pr/1"},
        {"a_b.c/d@0123456789abcdef0123456789abcdef01234567", "a_b.c/d", "0123456789abcdef0123456789abcdef01234567"},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(ok); i++) {
        char *repo = NULL, *rev = NULL;
        CHECKF(fc_hub_parse_id(ok[i].s, &repo, &rev), "%s", ok[i].s);
        CHECKF(repo && !strcmp(repo, ok[i].repo), "%s", ok[i].s);
        CHECKF(ok[i].rev ? rev && !strcmp(rev, ok[i].rev) : rev == NULL, "%s", ok[i].s);
        free(repo);
        free(rev);
    }
    static const char *bad[] = {"", "/abs/path", "./x", "a/b/c", "a--b/c", "a/b..c", "-a/b", "a/b.", "a b/c",
                                "a/b@", "a/b@../x", "a/b@x//y", "~/m", "models/x.gguf/", "a/\xc3\xa9"};
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        char *repo = NULL, *rev = NULL;
        CHECKF(!fc_hub_parse_id(bad[i], &repo, &rev) && !repo && !rev, "'%s'", bad[i]);
    }
    CHECK(fc_hub_safe_path("a/b.json") && fc_hub_safe_path("x"));
    CHECK(!fc_hub_safe_path("../x") && !fc_hub_safe_path("a/../x") && !fc_hub_safe_path("/x") &&
          !fc_hub_safe_path("a//b") && !fc_hub_safe_path("a/./b") && !fc_hub_safe_path("a\\b") &&
          !fc_hub_safe_path("a\nb") && !fc_hub_safe_path("a/") && !fc_hub_safe_path(""));
}

static void check_cache_dir(const char *want)
{
    char *d = fc_hub_cache_dir();
    CHECKF(!strcmp(d, want), "%s != %s", d, want);
    free(d);
}

static void test_cache_dir(void)
{
    unsetenv("HF_HUB_CACHE");
    unsetenv("HUGGINGFACE_HUB_CACHE");
    unsetenv("HF_HOME");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    check_cache_dir("/home/u/.cache/huggingface/hub");
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    check_cache_dir("/xdg/huggingface/hub");
    setenv("HF_HOME", "~/hf", 1);
    check_cache_dir("/home/u/hf/hub");
    setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
    check_cache_dir("/legacy");
    setenv("HF_HUB_CACHE", "/c", 1);
    check_cache_dir("/c");
    char *r = fc_hub_repo_dir("/c", "org/na.me");
    CHECK(!strcmp(r, "/c/models--org--na.me"));
    free(r);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECKF(f != NULL, "%s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *resolve(const char *spec, const char *gguf, enum fc_status *st)
{
    char *out = NULL;
    *st = fc_hub_resolve(spec, gguf, &out);
    return out;
}

static void test_resolve(void)
{
    char root[] = "/tmp/fc_test_hub_XXXXXX", p[1024];
    CHECK(mkdtemp(root) != NULL);
    setenv("HF_HUB_CACHE", root, 1);
    const char *A = "0123456789abcdef0123456789abcdef01234567", *B = "89abcdef0123456789abcdef0123456789abcdef";
    const char *dirs[] = {"models--o--hf", "models--o--hf/refs", "models--o--hf/snapshots", "models--o--hf/blobs",
                          "models--o--gg", "models--o--gg/refs", "models--o--gg/snapshots"};
    for (size_t i = 0; i < FC_ARRAY_LEN(dirs); i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
    }
    snprintf(p, sizeof p, "%s/models--o--hf/snapshots/%s", root, A), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/models--o--hf/snapshots/%s", root, B), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/models--o--hf/blobs/abc", root), put(p, "{}");
    snprintf(p, sizeof p, "%s/models--o--hf/snapshots/%s/config.json", root, A);
    CHECK(symlink("../../blobs/abc", p) == 0);
    snprintf(p, sizeof p, "%s/models--o--hf/snapshots/%s/config.json", root, B), put(p, "{}");
    snprintf(p, sizeof p, "%s/models--o--hf/refs/main", root), put(p, A); /* no newline, as huggingface_hub */
    snprintf(p, sizeof p, "%s/models--o--hf/refs/v2", root), put(p, "89abcdef0123456789abcdef0123456789abcdef\n");
    snprintf(p, sizeof p, "%s/models--o--gg/snapshots/%s", root, A), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/models--o--gg/refs/main", root), put(p, A);
    snprintf(p, sizeof p, "%s/models--o--gg/snapshots/%s/m-Q4_0.gguf", root, A), put(p, "x");

    enum fc_status st;
    char want[1024], *got;
    snprintf(want, sizeof want, "%s/models--o--hf/snapshots/%s", root, A);
    got = resolve("o/hf", NULL, &st);
    CHECKF(st == FC_OK && got && !strcmp(got, want), "%s", got ? got : "(null)");
    free(got);
    got = resolve("o/hf@main", NULL, &st);
    CHECK(st == FC_OK && got && !strcmp(got, want));
    free(got);
    snprintf(want, sizeof want, "%s/models--o--hf/snapshots/%s", root, B);
    got = resolve("o/hf@v2", NULL, &st); /* a ref with a trailing newline */
    CHECK(st == FC_OK && got && !strcmp(got, want));
    free(got);
    got = resolve("o/hf@89abcdef0123456789abcdef0123456789abcdef", NULL, &st); /* a commit, no ref */
    CHECK(st == FC_OK && got && !strcmp(got, want));
    free(got);
    got = resolve("o/hf@v3", NULL, &st);
    CHECK(st == FC_ERR_IO && !got && strstr(fc_last_error(), "revision 'v3' is not in the Hugging Face cache"));
    got = resolve("o/none", NULL, &st);
    CHECK(st == FC_ERR_IO && !got && strstr(fc_last_error(), "fetch it with: fastchat download o/none)"));

    /* a GGUF repo: its only .gguf, then a choice among several */
    snprintf(want, sizeof want, "%s/models--o--gg/snapshots/%s/m-Q4_0.gguf", root, A);
    got = resolve("o/gg", NULL, &st);
    CHECK(st == FC_OK && got && !strcmp(got, want));
    free(got);
    snprintf(p, sizeof p, "%s/models--o--gg/snapshots/%s/m-Q8_0.gguf", root, A), put(p, "y");
    got = resolve("o/gg", NULL, &st);
    CHECK(st == FC_ERR_ARG && !got && strstr(fc_last_error(), "2 GGUF files") &&
          strstr(fc_last_error(), "m-Q8_0.gguf") && strstr(fc_last_error(), "--gguf-file"));
    got = resolve("o/gg", "m-Q4_0.gguf", &st);
    CHECK(st == FC_OK && got && !strcmp(got, want));
    free(got);
    fc_hub_set_gguf_file("m-Q4_0.gguf"); /* the CLI's --gguf-file */
    got = resolve("o/gg", NULL, &st);
    CHECK(st == FC_OK && got && !strcmp(got, want));
    free(got);
    fc_hub_set_gguf_file(NULL);
    got = resolve("o/gg", "../../x.gguf", &st);
    CHECK(st == FC_ERR_IO && !got);
    got = resolve("o/gg", "nope.gguf", &st);
    CHECK(st == FC_ERR_IO && !got && strstr(fc_last_error(), "no file 'nope.gguf'"));

    /* local paths pass through; a path-shaped string that is not there too */
    got = resolve(root, NULL, &st);
    CHECK(st == FC_OK && got && !strcmp(got, root));
    free(got);
    got = resolve("/no/such/model.gguf", NULL, &st);
    CHECK(st == FC_OK && got && !strcmp(got, "/no/such/model.gguf"));
    free(got);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

static void test_tree_json(void)
{
    const char *page =
        "[{\"type\":\"directory\",\"oid\":\"x\",\"size\":0,\"path\":\"sub\"},"
        "{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb0100\",\"size\":50,\"path\":\".gitattributes\"},"
        "{\"type\":\"file\",\"oid\":\"d35d8bf946f09a93c2f369e8722f54412eae70ea\",\"size\":593256,"
        "\"path\":\"sub/model.safetensors\",\"lfs\":{\"oid\":"
        "\"089e686eaf65299a715c926e1375360354cc7f1ad81d0b62307597740f8bbccd\",\"size\":593256,\"pointerSize\":134}}]";
    fc_hub_tree t = {0};
    CHECK(fc_hub_parse_tree(page, strlen(page), &t) == FC_OK && t.n == 2);
    if (t.n == 2) {
        CHECK(!strcmp(t.v[0].path, ".gitattributes") && t.v[0].size == 50 && !t.v[0].lfs && !t.v[0].sha256[0]);
        CHECK(!strcmp(t.v[1].path, "sub/model.safetensors") && t.v[1].lfs && t.v[1].size == 593256 &&
              !strcmp(t.v[1].sha256, "089e686eaf65299a715c926e1375360354cc7f1ad81d0b62307597740f8bbccd"));
    }
    CHECK(fc_hub_parse_tree("[]", 2, &t) == FC_OK && t.n == 2); /* pages append */
    fc_hub_tree_free(&t);
    static const char *bad[] = {
        "{}", "", "[1]", "[{\"type\":\"file\"}]",
        "[{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb0100\",\"size\":1,\"path\":\"../x\"}]",
        "[{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb0100\",\"size\":1,\"path\":\"/etc/x\"}]",
        "[{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb0100\",\"size\":-1,\"path\":\"x\"}]",
        "[{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb010Z\",\"size\":1,\"path\":\"x\"}]",
        "[{\"type\":\"file\",\"oid\":\"../../../../../../../../../../../etc/pass\",\"size\":1,\"path\":\"x\"}]",
        "[{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb0100\",\"size\":1.5,\"path\":\"x\"}]",
        ("[{\"type\":\"file\",\"oid\":\"580d310c2d211aca166288a207e972ced9bb0100\",\"size\":1,\"path\":\"x\","
         "\"lfs\":{\"oid\":\"../x\",\"size\":1}}]"),
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(bad); i++) {
        fc_hub_tree b = {0};
        CHECKF(fc_hub_parse_tree(bad[i], strlen(bad[i]), &b) == FC_ERR_FORMAT && b.n == 0, "%s", bad[i]);
        fc_hub_tree_free(&b);
    }
    char sha[41];
    const char *info = "{\"id\":\"o/n\",\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[]}";
    CHECK(fc_hub_parse_info(info, strlen(info), sha) == FC_OK &&
          !strcmp(sha, "0123456789abcdef0123456789abcdef01234567"));
    CHECK(fc_hub_parse_info("{\"sha\":\"../x\"}", 14, sha) == FC_ERR_FORMAT);
    CHECK(fc_hub_parse_info("[", 1, sha) == FC_ERR_FORMAT);

    char *n = fc_hub_link_next("<https://h/api/models/a/b/tree/main?cursor=xyz>; rel=\"next\"");
    CHECK(n && !strcmp(n, "https://h/api/models/a/b/tree/main?cursor=xyz"));
    free(n);
    n = fc_hub_link_next("<https://h/p1>; rel=\"prev\", <https://h/p3>; rel=\"next\"");
    CHECK(n && !strcmp(n, "https://h/p3"));
    free(n);
    CHECK(fc_hub_link_next("<https://h/p1>; rel=\"last\"") == NULL);
    CHECK(fc_hub_link_next("<https://h/p1; rel=\"next\"") == NULL);
    CHECK(fc_hub_link_next("") == NULL);
}

int main(void)
{
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    test_ids();
    test_cache_dir();
    test_resolve();
    test_tree_json();
    return TEST_END();
}
