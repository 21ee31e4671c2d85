/*
 * test_torch_bin.c: tests of the PyTorch checkpoint reader
 * (src/format/torch_bin.c) and of its use by fc_safetensors_open.
 *
 * Inputs in tests/data/torch_bin/ are written by torch.save itself
 * (tools/golden/make_torch_bin_fixtures.py):
 *   - the same tiny Llama as pytorch_model.bin (f32, f16, bf16, and bf16 in
 *     five shards with an index) and as model.safetensors: every tensor must
 *     equal the safetensors one bit for bit (name, dtype, shape, bytes);
 *   - small state dicts with values i * 0.25 - 3 recomputed here: shared
 *     storages with OrderedDict _metadata, pickle protocol 4, a storage offset,
 *     a ZIP64 archive (the form of files past 4 GiB), the legacy (torch < 1.6)
 *     format, also for the f16 Llama;
 *   - files that must be refused, each with a message naming the cause: a
 *     non-contiguous tensor, pickles calling os.system /
 *     builtins.eval, a tensor subclass.
 * Corrupt inputs are made here: every prefix of a checkpoint, a compressed
 * entry flag, and byte flips (each must be refused or give in-bounds views).
 *
 * One line per check; exits non-zero if any check fails. The data folder is
 * tests/data (run from the repository root) or $FC_TEST_DATA. The helpers
 * shared with test_safetensors.c are in tensor_file_test.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fc_base.h"
#include "format/torch_bin.h"
#include "model/safetensors.h"
#include "tensor/dtype.h"
#include "tensor_file_test.h"

static char *path_of(const char *rel)
{
    return fc_xasprintf("%s/torch_bin/%s", data_dir, rel);
}

static uint8_t *read_all(const char *rel, size_t *size)
{
    char *p = path_of(rel);
    uint8_t *buf = tf_read_file(p, size);
    free(p);
    return buf;
}

/* fc_torch_bin_parse as a tf_parse_fn (the prefix loop) */
static bool parses(const uint8_t *data, size_t size, const char *name)
{
    fc_torch_bin *tb = fc_torch_bin_parse(data, size, name);
    fc_torch_bin_free(tb);
    return tb != NULL;
}

/* ---- the tiny Llama: .bin against safetensors ---- */

static void compare_model(const char *bin_rel, const char *st_rel, int want_type)
{
    char *bp = path_of(bin_rel), *sp = path_of(st_rel);
    fc_torch_bin *tb = fc_torch_bin_open(bp);
    fc_safetensors *st = fc_safetensors_open(sp);
    check(tb != NULL, "%s opens (%s)", bin_rel, tb ? "" : fc_last_error());
    check(st != NULL, "%s opens", st_rel);
    if (tb && st) {
        int64_t n = fc_torch_bin_n_tensors(tb);
        check(n == fc_safetensors_n_tensors(st) && n == 21, "%s: %lld tensors, safetensors %lld", bin_rel,
              (long long)n, (long long)fc_safetensors_n_tensors(st));
        int64_t same = 0, typed = 0, aligned = 0;
        for (int64_t i = 0; i < n && i < fc_safetensors_n_tensors(st); i++) {
            const char *name = fc_torch_bin_name(tb, i);
            const fc_tensor *a = fc_torch_bin_tensor(tb, i);
            same += strcmp(name, fc_safetensors_name(st, i)) == 0 && tf_same_tensor(a, fc_safetensors_tensor(st, i));
            typed += a->type == want_type;
            aligned += (uintptr_t)a->data % 4 == 0;
            if (fc_torch_bin_find(tb, name) != a) same = -1000;
        }
        check(same == n, "%s: %lld/%lld tensors equal the safetensors ones bit for bit (name, dtype, shape, data)",
              bin_rel, (long long)same, (long long)n);
        check(typed == n, "%s: all %lld tensors are %s", bin_rel, (long long)n, fc_dtype_name(want_type));
        check(aligned == n, "%s: all tensor data 4-byte aligned (zip: in place, torch pads storages to 64; "
              "legacy: copied)", bin_rel);
        check(fc_torch_bin_find(tb, "no.such.tensor") == NULL, "%s: absent name not found", bin_rel);
    }
    /* the same folder through the loader's interface */
    fc_safetensors *via = fc_safetensors_open(bp);
    check(via != NULL, "fc_safetensors_open(%s) reads the .bin folder", bin_rel);
    if (via && st) {
        int64_t n = fc_safetensors_n_tensors(via), same = 0;
        for (int64_t i = 0; i < n; i++)
            same += tf_same_tensor(fc_safetensors_tensor(via, i), fc_safetensors_find(st, fc_safetensors_name(via, i)));
        check(n == 21 && same == n, "fc_safetensors_open(%s): %lld/%lld tensors equal", bin_rel, (long long)same,
              (long long)n);
    }
    fc_safetensors_free(via);
    fc_torch_bin_free(tb);
    fc_safetensors_free(st);
    free(bp);
    free(sp);
}

/* ---- small state dicts ---- */

static float val(int64_t i) { return (float)i * 0.25f - 3.0f; }

static bool values(const fc_tensor *t, int type, int64_t n, int64_t first)
{
    if (!t || t->type != type || fc_tensor_nelem(t) != n) return false;
    float *f = malloc(sizeof(float) * (size_t)n);
    fc_dequantize_row_ref(type, t->data, f, n);
    bool ok = true;
    for (int64_t i = 0; i < n; i++) ok &= f[i] == val(first + i);
    free(f);
    return ok;
}

static void test_misc(void)
{
    char *p = path_of("misc/statedict_tied.bin");
    fc_torch_bin *tb = fc_torch_bin_open(p);
    free(p);
    check(tb != NULL, "statedict_tied.bin (OrderedDict with _metadata, shared storage) opens: %s",
          tb ? "" : fc_last_error());
    if (tb) {
        const fc_tensor *a = fc_torch_bin_find(tb, "a"), *b = fc_torch_bin_find(tb, "b"), *c = fc_torch_bin_find(tb, "c");
        check(fc_torch_bin_n_tensors(tb) == 3, "statedict_tied: 3 tensors");
        check(a && a->ne[0] == 4 && a->ne[1] == 3 && a->n_dims == 2 && values(a, FC_DTYPE_F32, 12, 0),
              "statedict_tied: a is f32 [3, 4] with the expected values");
        check(a && b && a->data == b->data && a->nbytes == b->nbytes, "statedict_tied: a and b view one storage");
        check(values(c, FC_DTYPE_F16, 5, 0), "statedict_tied: c is f16 [5] with the expected values");
    }
    fc_torch_bin_free(tb);

    p = path_of("misc/protocol4.bin");
    tb = fc_torch_bin_open(p);
    free(p);
    check(tb != NULL, "protocol4.bin opens: %s", tb ? "" : fc_last_error());
    if (tb) {
        const fc_tensor *x = fc_torch_bin_find(tb, "x"), *y = fc_torch_bin_find(tb, "y"),
                        *yt = fc_torch_bin_find(tb, "y_tail");
        check(fc_torch_bin_n_tensors(tb) == 3 && !fc_torch_bin_find(tb, "step"),
              "protocol4: 3 tensors, the int 'step' skipped");
        check(x && x->ne[0] == 3 && x->ne[1] == 2 && values(x, FC_DTYPE_F32, 6, 0), "protocol4: x f32 [2, 3]");
        check(values(y, FC_DTYPE_BF16, 10, 0), "protocol4: y bf16 [10]");
        check(values(yt, FC_DTYPE_BF16, 7, 3) && y && (const uint8_t *)yt->data == (const uint8_t *)y->data + 6,
              "protocol4: y_tail = y[3:] viewed at storage offset 3");
    }
    fc_torch_bin_free(tb);

    /* the legacy (torch < 1.6) format */
    p = path_of("misc/legacy.bin");
    tb = fc_torch_bin_open(p);
    free(p);
    check(tb != NULL, "legacy.bin (the pre-1.6 format) opens: %s", tb ? "" : fc_last_error());
    if (tb) {
        const fc_tensor *x = fc_torch_bin_find(tb, "x"), *x2 = fc_torch_bin_find(tb, "x2"),
                        *h = fc_torch_bin_find(tb, "h"), *y = fc_torch_bin_find(tb, "y"),
                        *yt = fc_torch_bin_find(tb, "y_tail");
        check(fc_torch_bin_n_tensors(tb) == 5 && !fc_torch_bin_find(tb, "step"), "legacy: 5 tensors, 'step' skipped");
        check(x && x->ne[0] == 3 && x->ne[1] == 2 && values(x, FC_DTYPE_F32, 6, 0) && values(x2, FC_DTYPE_F32, 6, 0),
              "legacy: x and x2 (one storage) f32 [2, 3]");
        check(values(h, FC_DTYPE_F16, 5, 0), "legacy: h f16 [5]");
        check(values(y, FC_DTYPE_BF16, 10, 0) && values(yt, FC_DTYPE_BF16, 7, 3), "legacy: y bf16 [10], y_tail = y[3:]");
    }
    fc_torch_bin_free(tb);
    {
        size_t lsize;
        uint8_t *ld = read_all("misc/legacy.bin", &lsize);
        size_t silent = 0, accepted = ld ? tf_prefixes_accepted(ld, lsize, "cut", parses, &silent) : 1;
        check(ld && accepted == 0 && silent == 0, "all %zu truncations of legacy.bin refused with a message "
              "(%zu accepted, %zu silent)", lsize, accepted, silent);
        free(ld);
    }

    /* a .bin file path through the loader's interface (PEFT's adapter_model.bin) */
    p = path_of("misc/protocol4.bin");
    fc_safetensors *sf = fc_safetensors_open(p);
    free(p);
    check(sf && fc_safetensors_n_tensors(sf) == 3 && values(fc_safetensors_find(sf, "x"), FC_DTYPE_F32, 6, 0),
          "fc_safetensors_open(protocol4.bin) reads the .bin file");
    fc_safetensors_free(sf);

    /* the same archive in ZIP64 form (as torch writes files past 4 GiB) */
    p = path_of("misc/protocol4.bin");
    tb = fc_torch_bin_open(p);
    free(p);
    p = path_of("misc/zip64.bin");
    fc_torch_bin *t64 = fc_torch_bin_open(p);
    free(p);
    check(t64 != NULL, "zip64.bin opens: %s", t64 ? "" : fc_last_error());
    if (tb && t64) {
        int64_t same = 0;
        for (int64_t i = 0; i < fc_torch_bin_n_tensors(tb); i++)
            same += tf_same_tensor(fc_torch_bin_tensor(tb, i), fc_torch_bin_find(t64, fc_torch_bin_name(tb, i)));
        check(same == 3 && fc_torch_bin_n_tensors(t64) == 3, "zip64: the same 3 tensors as protocol4.bin");
    }
    fc_torch_bin_free(t64);
    fc_torch_bin_free(tb);

    static const struct { const char *file, *want, *what; } refused[] = {
        {"misc/noncontig.bin", "not contiguous", "a transposed tensor"},
        {"misc/evil_system.bin", "refusing pickle global 'posix.system'", "a pickle calling os.system"},
        {"misc/evil_eval.bin", "eval'", "a pickle calling builtins.eval"},
        {"misc/subclass.bin", "torch._tensor._rebuild_from_type_v2", "a tensor subclass"},
    };
    for (size_t i = 0; i < FC_ARRAY_LEN(refused); i++) {
        p = path_of(refused[i].file);
        tb = fc_torch_bin_open(p);
        free(p);
        check(!tb && has(fc_last_error(), refused[i].want), "%s refused (%s): %s", refused[i].file,
              refused[i].what, fc_last_error());
        fc_torch_bin_free(tb);
    }
    check(access("/tmp/fastchat_torch_bin_pwned", F_OK) != 0, "the malicious pickles' marker file was never made");
}

/* ---- corrupt input ---- */

/* Every view of a parsed buffer lies inside it, or is an aligned copy
 * (misaligned data, e.g. after a flipped local-header length); *copies
 * counts those. Every byte is read, so ASan sees a bad view. */
static bool views_inside(const fc_torch_bin *tb, const uint8_t *d, size_t size, size_t *copies)
{
    for (int64_t i = 0; i < fc_torch_bin_n_tensors(tb); i++)
        if (!tf_view_inside(fc_torch_bin_tensor(tb, i), d, size, copies)) return false;
    return true;
}

static void test_corrupt(void)
{
    size_t size;
    uint8_t *d = read_all("misc/protocol4.bin", &size);
    check(d != NULL, "read protocol4.bin");
    if (!d) return;
    size_t silent = 0, accepted = tf_prefixes_accepted(d, size, "cut", parses, &silent);
    check(accepted == 0 && silent == 0, "all %zu truncations of protocol4.bin refused with a message (%zu accepted, "
          "%zu silent)", size, accepted, silent);

    /* a compressed entry (method 8 in the central directory) */
    uint8_t *z = malloc(size);
    memcpy(z, d, size);
    size_t n_cd = 0;
    for (size_t i = 0; i + 46 < size; i++)
        if (z[i] == 'P' && z[i + 1] == 'K' && z[i + 2] == 1 && z[i + 3] == 2) {
            z[i + 10] = 8;
            n_cd++;
            break;
        }
    fc_torch_bin *tb = fc_torch_bin_parse(z, size, "deflated");
    check(n_cd == 1 && !tb && has(fc_last_error(), "compressed"), "compressed entry refused: %s", fc_last_error());
    fc_torch_bin_free(tb);

    /* not a zip at all */
    tb = fc_torch_bin_parse((const uint8_t *)"GGUF\3\0\0\0 and more bytes to pass 22", 30, "gguf");
    check(!tb && has(fc_last_error(), "not a PyTorch checkpoint"), "non-zip refused: %s", fc_last_error());

    /* byte flips: refused, or views inside the buffer */
    size_t ok = 0, bad = 0, copies = 0;
    srand(1);
    for (int k = 0; k < 3000; k++) {
        memcpy(z, d, size);
        for (int f = 0; f < 3; f++) z[(size_t)rand() % size] ^= (uint8_t)(1 + rand() % 255);
        tb = fc_torch_bin_parse(z, size, "flip");
        if (tb && !views_inside(tb, z, size, &copies)) bad++;
        if (tb) ok++;
        fc_torch_bin_free(tb);
    }
    check(bad == 0, "3000 corrupted copies: %zu still parse, all views in bounds or aligned copies (%zu copies, "
          "%zu bad)", ok, copies, bad);
    free(z);
    free(d);

    /* a sharded folder whose index names a tensor its shard lacks */
    char dir[] = "/tmp/test_torch_bin_XXXXXX";
    if (mkdtemp(dir)) {
        char *shard = path_of("bf16_sharded/pytorch_model-00001-of-00005.bin");
        char *cmd = fc_xasprintf("cp '%s' '%s/a.bin' && printf '{\"weight_map\": {\"ghost.weight\": \"a.bin\"}}' "
                                 "> '%s/pytorch_model.bin.index.json'", shard, dir, dir);
        bool made = system(cmd) == 0;
        tb = made ? fc_torch_bin_open(dir) : NULL;
        check(made && !tb && has(fc_last_error(), "ghost.weight"), "index naming an absent tensor refused: %s",
              fc_last_error());
        fc_torch_bin_free(tb);
        free(cmd);
        cmd = fc_xasprintf("printf '{\"weight_map\": {\"x\": \"../a.bin\"}}' > '%s/pytorch_model.bin.index.json'", dir);
        made = system(cmd) == 0;
        tb = made ? fc_torch_bin_open(dir) : NULL;
        check(made && !tb && has(fc_last_error(), "not a shard file name in this folder"),
              "index naming a file outside the folder refused: %s", fc_last_error());
        fc_torch_bin_free(tb);
        free(cmd);
        cmd = fc_xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
        free(cmd);
        free(shard);
    }
}

int main(void)
{
    tf_data_dir_init();
    fc_log_set_level(FC_LOG_LEVEL_NONE);
    compare_model("f32_bin", "f32_st", FC_DTYPE_F32);
    compare_model("f16_bin", "f16_st", FC_DTYPE_F16);
    compare_model("bf16_bin", "bf16_st", FC_DTYPE_BF16);
    compare_model("bf16_sharded", "bf16_st", FC_DTYPE_BF16);
    compare_model("f16_legacy", "f16_st", FC_DTYPE_F16);
    test_misc();
    test_corrupt();
    return tf_end();
}
