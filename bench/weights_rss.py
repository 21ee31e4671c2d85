#!/usr/bin/env python3
"""weights_rss.py: peak resident memory of `fastchat apply-delta` with and
without --low-cpu-mem on a synthetic model of more than 2 GB in several
shards (issue 15: at most the largest shard + 25% with --low-cpu-mem).

Writes, under a temporary folder (about 7 GB of disk, removed at the end):
  base/   and delta/: N_SHARDS safetensors shards of float16 matrices
          (model.safetensors.index.json), random values written chunk by
          chunk so that this script itself stays small
Then runs apply-delta both ways, reads the peak RSS the binary prints
(VmHWM), checks a sample of the output tensors against numpy (base + delta
rounded to f16), and prints the figures. Exit status 1 if --low-cpu-mem
passes the bound or a checked tensor differs.

Usage: .venv/bin/python bench/weights_rss.py [build/fastchat] [--gb 2.2]
Kept out of `make test` (it writes gigabytes); run by hand or by scripts/bench.sh.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROWS, COLS = 8192, 4096  # one f16 matrix: 64 MiB


def write_model(d, n_tensors, per_shard, seed):
    os.makedirs(d)
    rng = np.random.default_rng(seed)
    weight_map = {}
    n_shards = (n_tensors + per_shard - 1) // per_shard
    nbytes = ROWS * COLS * 2
    for s in range(n_shards):
        names = [f"model.layers.{i}.mlp.up_proj.weight" for i in range(s * per_shard, min(n_tensors, (s + 1) * per_shard))]
        fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        header = {"__metadata__": {"format": "pt"}}
        for k, n in enumerate(names):
            header[n] = {"dtype": "F16", "shape": [ROWS, COLS], "data_offsets": [k * nbytes, (k + 1) * nbytes]}
            weight_map[n] = fname
        h = json.dumps(header).encode()
        h += b" " * (-len(h) % 8)
        with open(os.path.join(d, fname), "wb") as f:
            f.write(len(h).to_bytes(8, "little"))
            f.write(h)
            for _ in names:
                for r0 in range(0, ROWS, 1024):
                    f.write((rng.standard_normal((1024, COLS), dtype=np.float32) * 0.02).astype(np.float16).tobytes())
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": n_tensors * nbytes}, "weight_map": weight_map}, f)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "synthetic": True}, f)
    return max(os.path.getsize(os.path.join(d, f)) for f in set(weight_map.values()))


def tensor(d, name):
    """One tensor of a folder, memory-mapped with numpy (its own small reader)."""
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    path = os.path.join(d, idx["weight_map"][name])
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        h = json.loads(f.read(n))
    b, e = h[name]["data_offsets"]
    return np.memmap(path, dtype=np.float16, mode="r", offset=8 + n + b, shape=tuple(h[name]["shape"]))


def run(binary, args):
    p = subprocess.run([binary] + args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"apply-delta failed:\n{p.stderr}")
    m = re.search(r"wrote .* in ([\d.]+) s, peak RSS ([\d.]+) MiB", p.stderr)
    return float(m.group(1)), float(m.group(2))


def main():
    args = sys.argv[1:]
    gb = 2.2
    if "--gb" in args:
        i = args.index("--gb")
        gb = float(args[i + 1])
        del args[i:i + 2]
    binary = os.path.abspath(args[0] if args else "build/fastchat")
    n_tensors = max(4, int(gb * 1e9 / (ROWS * COLS * 2) + 0.999))
    per_shard = 8  # 512 MiB shards
    tmp = tempfile.mkdtemp(prefix="fc_weights_rss_")
    try:
        largest = write_model(os.path.join(tmp, "base"), n_tensors, per_shard, 1)
        write_model(os.path.join(tmp, "delta"), n_tensors, per_shard, 2)
        total = n_tensors * ROWS * COLS * 2
        figures = []
        ok = True
        for flags in (["--low-cpu-mem"], []):
            out = os.path.join(tmp, "out")
            shutil.rmtree(out, ignore_errors=True)
            secs, rss = run(binary, ["apply-delta", "--base-model-path", os.path.join(tmp, "base"), "--delta-path",
                                     os.path.join(tmp, "delta"), "--target-model-path", out,
                                     "--max-shard-size", str(largest)] + flags)
            for name in (f"model.layers.0.mlp.up_proj.weight", f"model.layers.{n_tensors - 1}.mlp.up_proj.weight"):
                want = (tensor(os.path.join(tmp, "base"), name).astype(np.float32) +
                        tensor(os.path.join(tmp, "delta"), name).astype(np.float32)).astype(np.float16)
                if not np.array_equal(tensor(out, name), want):
                    figures.append(f"MISMATCH in {name}")
                    ok = False
            bound = largest / 1048576 * 1.25
            label = " ".join(flags) or "(default)"
            figures.append(f"apply-delta {label}: {total / 1e9:.2f} GB base + {total / 1e9:.2f} GB delta in "
                           f"{(n_tensors + per_shard - 1) // per_shard} shards (largest {largest / 1048576:.0f} MiB): "
                           f"peak RSS {rss:.0f} MiB ({rss / (largest / 1048576):.2f} x largest shard), {secs:.1f} s")
            if flags and rss > bound:
                figures.append(f"FAIL: --low-cpu-mem peak RSS {rss:.0f} MiB > largest shard + 25% = {bound:.0f} MiB")
                ok = False
        print("\n".join(figures))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
