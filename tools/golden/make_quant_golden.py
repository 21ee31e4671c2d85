#!/usr/bin/env python3
"""make_quant_golden.py: golden data for tests/unit/test_quant.c, from gguf-py.

Writes tests/data/quant/ (small, committed; regenerate with
    /root/refvenv/venv/bin/python tools/golden/make_quant_golden.py
from the repository root, or any python with `gguf` and `numpy`):

  index.json             what is below, plus the gguf / numpy versions used
  deq_<type>.raw         random blocks of <type> (random bytes, with every f16
                         scale field replaced by a finite half: normal,
                         subnormal, zero, negative, and the largest half)
  deq_<type>.f32         gguf.quants.dequantize() of those blocks, f32 LE
  quant_input.f32        one f32 row (9 super-blocks of 256 values, each with
                         a different distribution; see make_input_row)
  quant_<type>.raw       gguf.quants.quantize() of that row, for the types
                         gguf-py can quantize

Types gguf-py cannot dequantize (q8_1, q8_K) or quantize (q8_1, all K types)
are listed in index.json under "not_in_gguf_py"; the C test checks those by
other means (formula checks and round-trip error bounds).

Optional, for the quantizers gguf-py lacks (q8_1, q2_K..q6_K, q8_K):
    make_quant_golden.py --ggml-src DIR
where DIR is a ggml source tree (the directory holding src/ggml-quants.c and
include/ggml.h, e.g. vendor/llama.cpp/ggml inside the llama-cpp-python sdist
from PyPI). The script then compiles ggml's own reference quantizers
(quantize_row_*_ref) with a small driver of its own and a C compiler (`cc`,
without FMA contraction), runs them on quant_input.f32 and writes their
bytes as quant_<type>.raw with "source": "ggml" in index.json. Without the
option, such entries from a previous run are kept when their input
(checked by sha256) is unchanged, and dropped otherwise.

The deterministic seed makes the output reproducible for a fixed numpy/gguf.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

# gguf-py's table still gives q8_1 the old 40-byte layout (f32 d and s);
# ggml (and GGUF) use two f16s: 36 bytes.
QUANT_SIZES = dict(GGML_QUANT_SIZES)
QUANT_SIZES[T.Q8_1] = (32, 2 + 2 + 32)

SEED = 20240611
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "quant")

# Byte offsets of the f16 scale fields inside one block (see quant_ref.c).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q8_1: [0, 2], T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2],
    T.Q5_K: [0, 2], T.Q6_K: [208],
}
DEQ_TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]
QUANT_TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1,
               T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]


def name(t):
    # llama.cpp spelling: lower case except the K suffix ("q4_K")
    n = t.name.lower()
    return n[:-2] + "_K" if n.endswith("_k") else n


def sane_halfs(rng, n):
    """n finite f16 bit patterns: mostly normal magnitudes 2^-12..2^1 with a
    random sign; a few special ones mixed in at fixed positions."""
    mag = np.exp2(rng.uniform(-12, 1, n)).astype(np.float16)
    sign = np.where(rng.random(n) < 0.3, -1, 1).astype(np.float16)
    h = (mag * sign).view(np.uint16).copy()
    specials = [0x0000, 0x8000, 0x0001, 0x03ff, 0x8123, 0x7bff, 0x0400]
    for i, s in enumerate(specials):
        if 3 * i + 1 < n:
            h[3 * i + 1] = s
    return h


def random_blocks(rng, t, nblocks):
    bs, ts = QUANT_SIZES[t]
    if t == T.F16:
        h = rng.integers(0, 1 << 16, nblocks * bs, dtype=np.uint16)
        exp_all_ones = (h & 0x7C00) == 0x7C00  # inf/NaN: keep inf, drop NaN
        h = np.where(exp_all_ones, h & 0xFC00, h).astype(np.uint16)
        return h.view(np.uint8)
    if t == T.BF16:
        h = rng.integers(0, 1 << 16, nblocks * bs, dtype=np.uint16)
        exp_all_ones = (h & 0x7F80) == 0x7F80
        h = np.where(exp_all_ones, h & 0xFF80, h).astype(np.uint16)
        return h.view(np.uint8)
    raw = rng.integers(0, 256, (nblocks, ts), dtype=np.uint8)
    if t == T.Q8_K:
        # f32 d at offset 0; bsums are not read by dequantization
        d = (rng.standard_normal(nblocks) * 0.01).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(nblocks, 4)
        return raw.reshape(-1)
    fields = F16_FIELDS[t]
    h = sane_halfs(rng, nblocks * len(fields)).reshape(nblocks, len(fields))
    for k, off in enumerate(fields):
        raw[:, off:off + 2] = h[:, k:k + 1].view(np.uint8).reshape(nblocks, 2)
    return raw.reshape(-1)


def make_input_row(rng):
    """9 super-blocks of 256 f32 values, each a different stress case."""
    sb = []
    sb.append(rng.standard_normal(256))                          # gaussian
    x = rng.standard_normal(256) * 0.02                          # weights with outliers
    x[rng.integers(0, 256, 6)] *= 40
    sb.append(x)
    sb.append(rng.uniform(0.5, 3.0, 256))                        # all positive (min > 0)
    sb.append(-rng.uniform(0.5, 3.0, 256))                       # all negative
    x = rng.standard_normal(256) * 1e-6                          # tiny: f16 d subnormal
    x[:32] = 0.0                                                 # an all-zero 32-block
    x[32:64] = 0.25                                              # a constant 32-block
    sb.append(x)
    sb.append(rng.standard_normal(256) * 3000.0)                 # large
    # exact halfway cases: q8_0 with amax 127 -> d = 1, values k + 0.5
    x = np.empty(256)
    for b in range(8):
        v = rng.integers(-126, 126, 32) + 0.5
        v[0] = 127.0 if b % 2 == 0 else -127.0
        x[32 * b:32 * b + 32] = v
    sb.append(x)
    # halfway cases of f16 / bf16 rounding and sparse values
    x = rng.standard_normal(256)
    x[::3] = 0.0
    x[1:64:2] = (np.float32(1.0) + np.float32(2.0 ** -11) * rng.integers(0, 2048, 32)).astype(np.float32)
    sb.append(x)
    sb.append(np.zeros(256))                                     # an all-zero super-block
    return np.concatenate(sb).astype(np.float32)


GGML_TYPES = [T.Q8_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]

# Driver for ggml's reference quantizers: reads n f32 values from argv[2],
# writes quantize_row_<argv[1]>_ref's bytes to argv[3]. The stubs satisfy the
# few symbols ggml-quants.c pulls from the rest of ggml.
GGML_DRIVER = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
void ggml_abort(const char *file, int line, const char *fmt, ...) { fprintf(stderr, "ggml_abort %s:%d\n", file, line); abort(); }
size_t ggml_row_size(int t, int64_t n) { (void)t; (void)n; abort(); }
const char *ggml_type_name(int t) { (void)t; return "?"; }
size_t ggml_type_size(int t) { (void)t; abort(); }
#define DECL(T) void quantize_row_##T##_ref(const float *x, void *y, int64_t k);
DECL(q8_1) DECL(q2_K) DECL(q3_K) DECL(q4_K) DECL(q5_K) DECL(q6_K) DECL(q8_K)
int main(int argc, char **argv)
{
    static const struct { const char *name; void (*fn)(const float *, void *, int64_t); size_t block, bytes; } T[] = {
        { "q8_1", quantize_row_q8_1_ref, 32, 36 }, { "q2_K", quantize_row_q2_K_ref, 256, 84 },
        { "q3_K", quantize_row_q3_K_ref, 256, 110 }, { "q4_K", quantize_row_q4_K_ref, 256, 144 },
        { "q5_K", quantize_row_q5_K_ref, 256, 176 }, { "q6_K", quantize_row_q6_K_ref, 256, 210 },
        { "q8_K", quantize_row_q8_K_ref, 256, 292 },
    };
    if (argc != 4) return 2;
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 3;
    static float x[1 << 20];
    size_t n = fread(x, 4, 1 << 20, f);
    fclose(f);
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        if (strcmp(T[i].name, argv[1])) continue;
        size_t size = n / T[i].block * T[i].bytes;
        void *y = calloc(size, 1);
        T[i].fn(x, y, (int64_t)n);
        FILE *o = fopen(argv[3], "wb");
        if (!o || fwrite(y, 1, size, o) != size) return 4;
        fclose(o);
        return 0;
    }
    return 5;
}
"""


def ggml_quantize(ggml_src, input_path, types):
    """{type name: bytes} from ggml's quantize_row_*_ref, built from ggml_src."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        drv = os.path.join(tmp, "driver.c")
        exe = os.path.join(tmp, "driver")
        with open(drv, "w") as f:
            f.write(GGML_DRIVER)
        cmd = ["cc", "-std=gnu11", "-O2", "-ffp-contract=off", "-w",
               "-I", os.path.join(ggml_src, "include"), "-I", os.path.join(ggml_src, "src"),
               drv, os.path.join(ggml_src, "src", "ggml-quants.c"), "-lm",
               "-Wl,--unresolved-symbols=ignore-in-object-files", "-o", exe]
        subprocess.run(cmd, check=True)
        for t in types:
            dst = os.path.join(tmp, name(t) + ".raw")
            subprocess.run([exe, name(t), input_path, dst], check=True)
            with open(dst, "rb") as f:
                out[name(t)] = f.read()
    return out


def ggml_commit(ggml_src):
    """Best-effort identification of the ggml source used."""
    try:
        r = subprocess.run(["git", "-C", ggml_src, "rev-parse", "HEAD"], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.strip()
    except OSError:
        pass
    return "unknown (no git metadata in " + os.path.basename(os.path.abspath(ggml_src)) + ")"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ggml-src", help="ggml source tree for the K-quant / q8_1 quantizer golden data")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    old_index = {}
    try:
        with open(os.path.join(OUT, "index.json")) as f:
            old_index = json.load(f)
    except (OSError, ValueError):
        pass
    rng = np.random.default_rng(SEED)
    index = {
        "generator": "tools/golden/make_quant_golden.py",
        "gguf_version": getattr(gguf, "__version__", None) or _pkg_version("gguf"),
        "numpy_version": np.__version__,
        "seed": SEED,
        "dequant": [],
        "quant": {"input": "quant_input.f32", "types": []},
        "not_in_gguf_py": {"dequantize": [], "quantize": []},
    }
    for t in DEQ_TYPES:
        bs, ts = QUANT_SIZES[t]
        # 1024 plain values, 32 blocks of 32, or 8 super-blocks of 256
        nblocks = {1: 1024, 32: 32, 256: 8}[bs]
        nvals = nblocks * bs
        raw = random_blocks(rng, t, nblocks)
        try:
            deq = gguf.quants.dequantize(raw, t).astype(np.float32).reshape(-1)
        except NotImplementedError:
            index["not_in_gguf_py"]["dequantize"].append(name(t))
            continue
        assert deq.size == nvals, (t, deq.size)
        raw.tofile(os.path.join(OUT, f"deq_{name(t)}.raw"))
        deq.tofile(os.path.join(OUT, f"deq_{name(t)}.f32"))
        index["dequant"].append({"type": name(t), "id": int(t), "n": int(nvals),
                                 "raw": f"deq_{name(t)}.raw", "f32": f"deq_{name(t)}.f32"})

    row = make_input_row(rng)
    row.tofile(os.path.join(OUT, "quant_input.f32"))
    index["quant"]["n"] = int(row.size)
    for t in QUANT_TYPES:
        try:
            q = gguf.quants.quantize(row.reshape(1, -1), t)
        except NotImplementedError:
            index["not_in_gguf_py"]["quantize"].append(name(t))
            continue
        q = np.ascontiguousarray(q).view(np.uint8).reshape(-1)
        bs, ts = QUANT_SIZES[t]
        assert q.size == row.size // bs * ts, (t, q.size)
        q.tofile(os.path.join(OUT, f"quant_{name(t)}.raw"))
        index["quant"]["types"].append({"type": name(t), "id": int(t), "raw": f"quant_{name(t)}.raw",
                                        "source": "gguf-py"})

    # quantizers gguf-py lacks: from ggml itself (optional, see the docstring)
    in_path = os.path.join(OUT, "quant_input.f32")
    in_sha = hashlib.sha256(row.tobytes()).hexdigest()
    index["quant"]["input_sha256"] = in_sha
    if args.ggml_src:
        got = ggml_quantize(args.ggml_src, in_path, GGML_TYPES)
        src_id = ggml_commit(args.ggml_src)
        for t in GGML_TYPES:
            q = got[name(t)]
            bs, ts = QUANT_SIZES[t]
            assert len(q) == row.size // bs * ts, (t, len(q))
            with open(os.path.join(OUT, f"quant_{name(t)}.raw"), "wb") as f:
                f.write(q)
            index["quant"]["types"].append({"type": name(t), "id": int(t), "raw": f"quant_{name(t)}.raw",
                                            "source": "ggml", "ggml_src": src_id})
    else:
        old_q = old_index.get("quant", {})
        for e in old_q.get("types", []):
            if e.get("source") != "ggml":
                continue
            path = os.path.join(OUT, e["raw"])
            if old_q.get("input_sha256") == in_sha and os.path.exists(path):
                index["quant"]["types"].append(e)
            else:
                print(f"dropping stale ggml golden {e['raw']} (input changed); rerun with --ggml-src",
                      file=sys.stderr)
                if os.path.exists(path):
                    os.remove(path)

    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {OUT}: {len(os.listdir(OUT))} files, {total} bytes", file=sys.stderr)


def _pkg_version(pkg):
    try:
        from importlib.metadata import version
        return version(pkg)
    except Exception:
        return None


if __name__ == "__main__":
    main()
