"""`fastchat apply-delta`, `make-delta` and `apply-lora` (src/tools/weights.c)
against FastChat's own tools and PEFT, tensor for tensor.

The references are in tests/data/weights, written by
tools/golden/make_delta_lora_fixtures.py: fschat's make_delta / apply_delta /
apply_lora (= PEFT merge_and_unload in float16) run on tiny random Llama
models. Our outputs are read back with the `safetensors` package's numpy API
(not with our reader), so the files we write are checked as transformers
would read them. The vocabulary-growth and dtype cases, which FastChat's
current tools do not cover, are checked against numpy.
"""
import json
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import DATA, run_fastchat

W = DATA / "weights"


def load_folder(d):
    """All tensors of a model folder, through its index when sharded."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        out = {}
        files = set(json.load(open(idx))["weight_map"].values())
        for f in sorted(files):
            out.update(load_file(os.path.join(d, f)))
        return out
    return load_file(os.path.join(d, "model.safetensors"))


def ulps(a, b):
    """Per-element difference in units of the last place (bit patterns of f16/bf16)."""
    assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    ai = a.view(np.uint16 if a.itemsize == 2 else np.uint32).astype(np.int64)
    bi = b.view(np.uint16 if b.itemsize == 2 else np.uint32).astype(np.int64)
    return np.abs(ai - bi)


def assert_same_model(ours, ref, max_ulp=0, max_frac=0.0, figures=None, what=""):
    a, b = load_folder(ours), load_folder(ref)
    assert sorted(a) == sorted(b)
    n_diff = n = 0
    worst = 0
    for k in a:
        d = ulps(a[k], b[k])
        n_diff += int((d != 0).sum())
        n += d.size
        worst = max(worst, int(d.max()))
    if figures:
        figures(f"weights {what}: {n_diff} of {n} values differ from the reference, max {worst} ulp")
    assert worst <= max_ulp, (what, worst)
    assert n_diff <= max_frac * n, (what, n_diff, n)


def test_make_delta_equals_fschat(fastchat_bin, tmp_path, figures):
    out = tmp_path / "delta"
    run_fastchat(fastchat_bin, ["make-delta", "--base-model-path", W / "base", "--target-model-path",
                                W / "target", "--delta-path", out])
    assert_same_model(out, W / "delta_fs", figures=figures, what="make-delta vs fschat")
    # the delta carries the target's tokenizer and config, byte for byte
    for f in ("tokenizer.model", "tokenizer_config.json", "config.json"):
        assert (out / f).read_bytes() == (W / "target" / f).read_bytes(), f


@pytest.mark.parametrize("extra", [[], ["--low-cpu-mem"], ["--low-cpu-mem", "--max-shard-size", "20KB"]],
                         ids=["plain", "low-cpu-mem", "sharded"])
def test_apply_delta_equals_fschat(fastchat_bin, tmp_path, figures, extra):
    out = tmp_path / "target"
    # FastChat's own usage line spells the flags --base / --target / --delta (argparse abbreviations)
    run_fastchat(fastchat_bin, ["apply-delta", "--base", W / "base", "--target", out, "--delta", W / "delta_fs"] + extra)
    assert_same_model(out, W / "target_fs", figures=figures, what="apply-delta " + " ".join(extra))
    if "--max-shard-size" in extra:
        idx = json.load(open(out / "model.safetensors.index.json"))
        shards = set(idx["weight_map"].values())
        assert len(shards) >= 2 and all((out / s).exists() for s in shards)
        assert idx["metadata"]["total_size"] == sum(v.nbytes for v in load_folder(out).values())
    for f in ("tokenizer.model", "tokenizer_config.json"):
        assert (out / f).read_bytes() == (W / "delta_fs" / f).read_bytes(), f


def test_apply_delta_output_runs(fastchat_bin, tmp_path):
    """The folder written is a model we load: same logits as fschat's target."""
    out = tmp_path / "target"
    run_fastchat(fastchat_bin, ["apply-delta", "--base-model-path", W / "base", "--target-model-path", out,
                                "--delta-path", W / "delta_fs", "--max-shard-size", "30KB"])
    logits = []
    for m in (out, W / "target_fs"):
        f = tmp_path / f"l{len(logits)}.f32"
        run_fastchat(fastchat_bin, ["logits", "--model-path", m, "--prompt-ids", "1,5,9,77,3", "--out", f, "--exact"])
        logits.append(np.fromfile(f, dtype=np.float32))
    assert logits[0].size == 5 * 128
    assert np.array_equal(logits[0], logits[1])


def test_make_then_apply_round_trip_f32_and_grown_vocab(fastchat_bin, tmp_path):
    """Not covered by FastChat's current tools: an f32 target with two rows added
    to embed_tokens / lm_head (a pad token, as Vicuna added). The delta keeps f32
    and the extra rows as they are; applying it gives the target back."""
    base = load_folder(W / "base")
    rng = np.random.default_rng(5)
    tgt = {}
    for k, v in base.items():
        v = v.astype(np.float32)
        if k in ("model.embed_tokens.weight", "lm_head.weight"):
            v = np.concatenate([v, rng.standard_normal((2, v.shape[1])).astype(np.float32)])
        tgt[k] = v + rng.standard_normal(v.shape).astype(np.float32) * 0.01
    td = tmp_path / "t32"
    td.mkdir()
    save_file(tgt, str(td / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(W / "base" / "config.json", td / "config.json")
    run_fastchat(fastchat_bin, ["make-delta", "--base-model-path", W / "base", "--target-model-path", td,
                                "--delta-path", tmp_path / "d"])
    d = load_folder(tmp_path / "d")
    for k in tgt:
        assert d[k].dtype == np.float32
        b = base[k].astype(np.float32)
        want = tgt[k].copy()
        want[: b.shape[0]] -= b
        assert np.array_equal(d[k], want), k
    run_fastchat(fastchat_bin, ["apply-delta", "--base-model-path", W / "base", "--target-model-path",
                                tmp_path / "back", "--delta-path", tmp_path / "d"])
    back = load_folder(tmp_path / "back")
    for k in tgt:
        b = base[k].astype(np.float32)
        want = d[k].copy()
        want[: b.shape[0]] += b
        assert np.array_equal(back[k], want), k
        assert np.abs(back[k] - tgt[k]).max() < 1e-6


@pytest.mark.parametrize("adapter, ref", [("lora", "lora_merged_fs"), ("lora_rs", "lora_rs_merged")])
def test_apply_lora_equals_peft_merge(fastchat_bin, tmp_path, figures, adapter, ref):
    out = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path", out,
                                "--lora-path", W / adapter])
    # the B @ A product is summed in f32 in another order than torch's: one
    # f16 rounding step may land on the other side in a handful of values
    assert_same_model(out, W / ref, max_ulp=1, max_frac=0.001, figures=figures, what=f"apply-lora {adapter} vs PEFT")
    a, base = load_folder(out), load_folder(W / "base")
    changed = [k for k in a if not np.array_equal(a[k], base[k])]
    cfg = json.load(open(W / adapter / "adapter_config.json"))
    assert len(changed) == 2 * len(cfg["target_modules"])  # every adapted matrix of both layers
    assert (out / "config.json").read_bytes() == (W / "base" / "config.json").read_bytes()


def test_apply_lora_phi3_fused_equals_peft_merge(fastchat_bin, tmp_path, figures):
    """Phi-3: PEFT targets the fused qkv_proj and gate_up_proj (and o_proj,
    down_proj); apply-lora equals PEFT's merge_and_unload in f32 on the
    matrices the adapter changes (tests/data/weights/lora_phi3_merged.safetensors,
    tools/golden/make_lora_phi3_quant_fixtures.py) and leaves the rest as the base's."""
    base_dir = DATA / "tiny" / "phi3_f32_swa32"
    out = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", base_dir, "--target-model-path", out,
                                "--lora-path", W / "lora_phi3"])
    a, base, ref = load_folder(out), load_folder(base_dir), load_file(W / "lora_phi3_merged.safetensors")
    assert sorted(a) == sorted(base)
    changed = sorted(k for k in a if not np.array_equal(a[k], base[k]))
    assert changed == sorted(ref), changed
    assert any("qkv_proj" in k for k in ref) and any("gate_up_proj" in k for k in ref)
    # f32 sums of the r terms in another order than torch's matmul: the
    # difference is rounding, at most a couple of ulps of the tensor's largest
    # value (values that cancel to near 0 are many of their own ulps apart)
    worst = n_diff = n = 0
    for k in ref:
        d = np.abs(a[k].astype(np.float64) - ref[k])
        unit = float(np.spacing(np.abs(ref[k]).max()))
        worst, n_diff, n = max(worst, float(d.max()) / unit), n_diff + int((d != 0).sum()), n + d.size
    figures(f"weights apply-lora phi3 (fused qkv_proj/gate_up_proj) vs PEFT f32: {n_diff} of {n} values differ, "
            f"max {worst:.2f} ulp of the tensor's largest value")
    assert worst <= 2, worst


def test_apply_lora_bin_adapter(fastchat_bin, tmp_path, figures):
    """adapter_model.bin (PEFT's save_pretrained(safe_serialization=False), a
    torch.save zip: tools/golden/make_lora_bin_fixture.py) merges to what
    fschat's apply_lora gives for the same adapter, and to the same bytes as
    the safetensors copy of it; a base folder of pytorch_model.bin too."""
    out = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path", out,
                                "--lora-path", W / "lora_bin"])
    assert_same_model(out, W / "lora_merged_fs", max_ulp=1, max_frac=0.001, figures=figures,
                      what="apply-lora adapter_model.bin vs PEFT")
    out_st = tmp_path / "merged_st"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path", out_st,
                                "--lora-path", W / "lora"])
    a, b = load_folder(out), load_folder(out_st)
    assert all(np.array_equal(a[k].view(np.uint16), b[k].view(np.uint16)) for k in a)


def test_apply_lora_refusals(fastchat_bin, tmp_path):
    lora = tmp_path / "lora"
    shutil.copytree(W / "lora", lora)
    cfg = json.load(open(lora / "adapter_config.json"))
    cfg["use_dora"] = True
    (lora / "adapter_config.json").write_text(json.dumps(cfg))
    p = run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path",
                                    tmp_path / "o", "--lora-path", lora], check=False)
    assert p.returncode == 1 and "DoRA" in p.stderr
    # a pickle that calls a function, as adapter_model.bin: refused, never run
    cfg["use_dora"] = False
    (lora / "adapter_config.json").write_text(json.dumps(cfg))
    os.rename(lora / "adapter_model.safetensors", tmp_path / "adapter_model.safetensors")
    shutil.copy(DATA / "torch_bin" / "misc" / "evil_system.bin", lora / "adapter_model.bin")
    p = run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path",
                                    tmp_path / "o", "--lora-path", lora], check=False)
    assert p.returncode == 1 and "adapter_model.bin" in p.stderr and "posix.system" in p.stderr, p.stderr
    assert not (tmp_path / "o" / "model.safetensors").exists()
    # an r that does not match the tensors
    os.remove(lora / "adapter_model.bin")
    os.rename(tmp_path / "adapter_model.safetensors", lora / "adapter_model.safetensors")
    cfg["r"] = 3
    (lora / "adapter_config.json").write_text(json.dumps(cfg))
    p = run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path",
                                    tmp_path / "o", "--lora-path", lora], check=False)
    assert p.returncode == 1 and "r = 3" in p.stderr


def test_apply_delta_shape_mismatch_is_refused(fastchat_bin, tmp_path):
    base = load_folder(W / "base")
    bad = dict(base)
    bad["model.layers.0.mlp.up_proj.weight"] = np.zeros((65, 32), np.float16)
    (tmp_path / "d").mkdir()
    save_file(bad, str(tmp_path / "d" / "model.safetensors"))
    p = run_fastchat(fastchat_bin, ["apply-delta", "--base-model-path", W / "base", "--target-model-path",
                                    tmp_path / "o", "--delta-path", tmp_path / "d"], check=False)
    assert p.returncode == 1 and "up_proj" in p.stderr and "shape" in p.stderr
    p = run_fastchat(fastchat_bin, ["make-delta", "--base-model-path", W / "base", "--target-model-path",
                                    W / "target", "--delta-path", tmp_path / "o", "--hub-repo-id", "x/y"], check=False)
    assert p.returncode == 2 and "--hub-repo-id" in p.stderr
