/*
 * fuzz_hub.c: libFuzzer target for what `fastchat download` reads from the
 * network (tools/hub_download.c): the tree listing, the repo info, the Link
 * header, and the repo ids of model/format hub.c.
 *
 * Checks the parsers' promises besides memory safety: every accepted tree
 * entry has a path that fc_hub_safe_path accepts (it becomes a file name
 * under snapshots/) and hex oids of the right length (they become blob
 * names), and a parsed repo id round-trips.
 *   make fuzz && build/fuzz/fuzz_hub -max_len=4096 corpus tests/data/fuzz/fuzz_hub
 */
#include "format/hub.h"
#include "tools/hub_download.h"

#include <stdlib.h>
#include <string.h>

static void check_hex(const char *s, size_t n)
{
    if (strlen(s) != n) abort();
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789abcdef", s[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) fc_log_set_level(FC_LOG_LEVEL_NONE), quiet = 1;
    fc_hub_tree t = {0};
    if (fc_hub_parse_tree((const char *)data, size, &t) == FC_OK) {
        for (int i = 0; i < t.n; i++) {
            if (!fc_hub_safe_path(t.v[i].path) || t.v[i].size < 0) abort();
            check_hex(t.v[i].oid, 40);
            if (t.v[i].lfs) check_hex(t.v[i].sha256, 64);
        }
    }
    fc_hub_tree_free(&t);
    char sha[41];
    if (fc_hub_parse_info((const char *)data, size, sha) == FC_OK) check_hex(sha, 40);

    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    free(fc_hub_link_next(s));
    char *repo = NULL, *rev = NULL;
    if (fc_hub_parse_id(s, &repo, &rev)) {
        if (strchr(repo, '@') || (rev && !fc_hub_safe_path(rev))) abort();
        size_t n = strlen(repo);
        if (strncmp(s, repo, n) || (rev ? s[n] != '@' || strcmp(s + n + 1, rev) : s[n] != '\0')) abort();
    }
    free(repo);
    free(rev);
    free(s);
    return 0;
}
