"""Mixtral (mixture of experts) beyond test_tiny_logits.py, which already
checks every tiny model's exact logits (1e-4), fast logits and 16 greedy
tokens against transformers.

The models are the tiny random MixtralForCausalLM of tests/data/tiny written by
tools/golden/make_tiny_mixtral.py (reference.npz: transformers' logits and
greedy continuations; manifest.json: the smallest greedy margin and router
logit gap, so that a correct engine cannot flip a token or an expert).

- Hugging Face folder, exact mode: logits within 1e-4 of transformers at all
  100 positions; greedy continuations of 64 tokens identical for 5 prompts
  (8 to 70 tokens: past the sliding window of the swa20 model).
- fast mode on the folder (f32 weights): top-1 agreement >= 99%.
- GGUF: `fastchat quantize --type f32` gives the llama.cpp layout (general.
  architecture llama, llama.expert_count / expert_used_count, 3-D
  blk.N.ffn_{gate,up,down}_exps stacks, an f32 ffn_gate_inp router), read
  back by gguf.GGUFReader and compared with the safetensors experts, and
  the same exact logits (1e-4); q8_0 and q4_0 quantized GGUFs load and
  agree: q8_0 fast vs exact of the same file >= 95% top-1, vs transformers
  >= 85% (q8_0 rounding of random 32-wide weights costs that much; the
  dense tiny models score alike), q4_0 printed.
- bad files: a folder missing one expert's tensor, a folder with more experts
  than num_local_experts, a GGUF whose expert_count disagrees with its
  stacks, a GGUF missing a stack: exit status 1, one error line naming the
  tensor.
- the per-expert layout of older llama.cpp converters (blk.N.ffn_gate.X.weight
  ...), written from the merged file with the gguf package: the same logits bit
  for bit, exact and fast; a missing expert is one error line.
"""
import json
import shutil
import struct

import numpy as np
import pytest

from conftest import DATA, fastchat_generate, fastchat_logits, first_difference, run_fastchat

TINY = DATA / "tiny"
MANIFEST = json.loads((TINY / "manifest.json").read_text())["models"]
MODELS = sorted(n for n, e in MANIFEST.items() if e.get("generator") == "tools/golden/make_tiny_mixtral.py")
EXACT_TOL = 1e-4


def load(name):
    z = np.load(TINY / name / "reference.npz")
    return {k: z[k] for k in z.files}


def quantize(fastchat_bin, name, qtype, out_dir):
    out = out_dir / f"{name}.{qtype}.gguf"
    run_fastchat(fastchat_bin, ["quantize", "--model-path", TINY / name, "--type", qtype, "--out", out])
    return out


def test_mixtral_models_present():
    assert len(MODELS) >= 2, MODELS
    assert all(MANIFEST[n]["arch"] == "mixtral" and MANIFEST[n]["n_expert_used"] == 2 for n in MODELS)
    assert {MANIFEST[n]["n_expert"] for n in MODELS} >= {4, 8}
    assert any(MANIFEST[n]["sliding_window"] for n in MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_exact_logits_hf(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    ours = fastchat_logits(fastchat_bin, TINY / name, r["prompt_b"], tmp_path, exact=True)
    d = float(np.abs(ours - r["logits_b"]).max())
    figures(f"mixtral/{name:22s} HF exact max|d| {d:.2e} over {len(ours)} positions (tol {EXACT_TOL:g}; "
            f"router min logit gap {MANIFEST[name]['router_min_gap']:.1e})")
    assert d <= EXACT_TOL, f"{name}: logits differ from transformers by {d:.3e}"


@pytest.mark.parametrize("name", MODELS)
def test_greedy64_five_prompts(name, fastchat_bin, figures):
    r = load(name)
    same = 0
    for i, n in enumerate(r["prompt_len"]):
        want = r["greedy64"][i].tolist()
        got = fastchat_generate(fastchat_bin, TINY / name, r["prompts"][i][:n], len(want), exact=True)
        j = first_difference(got, want)
        assert j is None, f"{name} prompt {i} ({n} tokens): differs at step {j}\nours {got}\nref  {want}"
        same += 1
    figures(f"mixtral/{name:22s} greedy 64 tokens identical for {same}/{len(r['prompt_len'])} prompts "
            f"(min reference margin {float(r['greedy64_margin'].min()):.4f})")


@pytest.mark.parametrize("name", MODELS)
def test_fast_top1_hf(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    ref = r["logits_b"]
    ours = fastchat_logits(fastchat_bin, TINY / name, r["prompt_b"], tmp_path, exact=False)
    top1 = float((ours.argmax(1) == ref.argmax(1)).mean())
    d = float(np.abs(ours - ref).max())
    figures(f"mixtral/{name:22s} HF fast top-1 {100 * top1:.1f}% max|d| {d:.2e}")
    assert top1 >= 0.99, f"{name}: fast-mode top-1 agreement {top1:.3f}"


@pytest.mark.parametrize("name", MODELS)
def test_gguf(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    g = quantize(fastchat_bin, name, "f32", tmp_path)
    ours = fastchat_logits(fastchat_bin, g, r["prompt_b"], tmp_path, exact=True)
    d = float(np.abs(ours - r["logits_b"]).max())
    top1 = {}
    for qtype in ("q8_0", "q4_0"):
        q = quantize(fastchat_bin, name, qtype, tmp_path)
        fast = fastchat_logits(fastchat_bin, q, r["prompt_b"], tmp_path, exact=False)
        top1[qtype] = float((fast.argmax(1) == r["logits_b"].argmax(1)).mean())
        if qtype == "q8_0":
            exact = fastchat_logits(fastchat_bin, q, r["prompt_b"], tmp_path, exact=True)
            self_top1 = float((fast.argmax(1) == exact.argmax(1)).mean())
            self_d = float(np.abs(fast - exact).max())
    figures(f"mixtral/{name:22s} GGUF f32 exact max|d| {d:.2e}; fast top-1 vs transformers q8_0 "
            f"{100 * top1['q8_0']:.0f}% q4_0 {100 * top1['q4_0']:.0f}%; q8_0 fast vs exact "
            f"{100 * self_top1:.0f}% (max|d| {self_d:.2e})")
    assert d <= EXACT_TOL, f"{name}: GGUF f32 logits differ from transformers by {d:.3e}"
    assert self_top1 >= 0.95, f"{name}: q8_0 fast vs exact top-1 {self_top1:.2f}"
    assert top1["q8_0"] >= 0.85, f"{name}: q8_0 top-1 vs transformers {top1['q8_0']:.2f}"


def test_gguf_layout(fastchat_bin, tmp_path):
    """Names, shapes, types and keys as llama.cpp's converter writes a Mixtral."""
    gguf = pytest.importorskip("gguf")
    from safetensors.numpy import load_file

    name = "mixtral_f32_e8"
    cfg = json.loads((TINY / name / "config.json").read_text())
    C, FF, E = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_local_experts"]
    g = gguf.GGUFReader(str(quantize(fastchat_bin, name, "q8_0", tmp_path)))
    t = {x.name: x for x in g.tensors}
    kv = {f.name: f for f in g.fields.values()}

    def val(k):
        f = kv[k]
        return f.parts[f.data[0]][0]
    assert bytes(kv["general.architecture"].parts[kv["general.architecture"].data[0]]).decode() == "llama"
    assert val("llama.expert_count") == E and val("llama.expert_used_count") == 2
    assert [int(x) for x in t["blk.0.ffn_gate_exps.weight"].shape] == [C, FF, E]
    assert [int(x) for x in t["blk.1.ffn_up_exps.weight"].shape] == [C, FF, E]
    assert [int(x) for x in t["blk.1.ffn_down_exps.weight"].shape] == [FF, C, E]
    assert [int(x) for x in t["blk.0.ffn_gate_inp.weight"].shape] == [C, E]
    assert t["blk.0.ffn_gate_inp.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert t["blk.0.ffn_gate_exps.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert "blk.0.ffn_gate.weight" not in t
    # the f32 file holds the experts as they are in the folder (w1 = gate, w3 = up, w2 = down)
    g = gguf.GGUFReader(str(quantize(fastchat_bin, name, "f32", tmp_path)))
    t = {x.name: x for x in g.tensors}
    st = load_file(str(TINY / name / "model.safetensors"))
    for gname, hname in (("ffn_gate_exps", "w1"), ("ffn_up_exps", "w3"), ("ffn_down_exps", "w2")):
        a = np.asarray(t[f"blk.1.{gname}.weight"].data)
        for x in (0, E - 1):
            np.testing.assert_array_equal(a[x], st[f"model.layers.1.block_sparse_moe.experts.{x}.{hname}.weight"])
    np.testing.assert_array_equal(np.asarray(t["blk.1.ffn_gate_inp.weight"].data),
                                  st["model.layers.1.block_sparse_moe.gate.weight"])


def broken_hf(tmp_path, name, edit, config=None):
    from safetensors.numpy import load_file, save_file
    d = tmp_path / f"bad_{name}"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(TINY / name, d)
    t = load_file(str(d / "model.safetensors"))
    edit(t)
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})
    if config:
        c = json.loads((d / "config.json").read_text())
        c.update(config)
        (d / "config.json").write_text(json.dumps(c))
    return d


def expect_one_error(fastchat_bin, model, tmp_path, *needles):
    p = run_fastchat(fastchat_bin, ["logits", "--model-path", model, "--prompt-ids", "1,2,3",
                                    "--out", tmp_path / "x.f32"], check=False)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error")]
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"
    assert len(errors) == 1 and all(s in errors[0] for s in needles), p.stderr
    return errors[0]


def set_u32_key(raw, key, value):
    """A GGUF with the u32 metadata key's value replaced (key length, key,
    type 4 = uint32, value)."""
    k = key.encode()
    at = raw.index(struct.pack("<Q", len(k)) + k)
    head = at + 8 + len(k)
    assert struct.unpack_from("<I", raw, head)[0] == 4
    return raw[:head + 4] + struct.pack("<I", value) + raw[head + 8:]


def test_bad_files(fastchat_bin, tmp_path, figures):
    name = "mixtral_f32_e4_swa20"

    def drop_expert(t):
        del t["model.layers.1.block_sparse_moe.experts.2.w2.weight"]

    msgs = [
        expect_one_error(fastchat_bin, broken_hf(tmp_path, name, drop_expert), tmp_path,
                         "missing tensor", "model.layers.1.block_sparse_moe.experts.2.w2.weight"),
        # the folder has 4 experts per layer, config.json says 3
        expect_one_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: None, {"num_local_experts": 3}),
                         tmp_path, "experts.3.w1.weight", "num_local_experts"),
        # config.json says 5: expert 4 is missing
        expect_one_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: None, {"num_local_experts": 5}),
                         tmp_path, "missing tensor", "experts.4.w1.weight"),
        expect_one_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: None, {"num_experts_per_tok": 5}),
                         tmp_path, "num_experts_per_tok"),
    ]
    raw = quantize(fastchat_bin, name, "q8_0", tmp_path).read_bytes()
    bad = tmp_path / "bad_count.gguf"
    bad.write_bytes(set_u32_key(raw, "llama.expert_count", 3))
    msgs.append(expect_one_error(fastchat_bin, bad, tmp_path, "blk.0.ffn_gate_inp.weight", "shape"))
    bad.write_bytes(set_u32_key(raw, "llama.expert_used_count", 9))
    msgs.append(expect_one_error(fastchat_bin, bad, tmp_path, "llama.expert_used_count"))
    assert raw.count(b"blk.1.ffn_down_exps.weight") == 1
    bad.write_bytes(raw.replace(b"blk.1.ffn_down_exps.weight", b"blk.1.ffn_down_exps.weighX"))
    msgs.append(expect_one_error(fastchat_bin, bad, tmp_path, "missing tensor blk.1.ffn_down_exps.weight"))
    for m in msgs:
        figures("mixtral bad file: " + m)


def split_experts(src, dst, drop=()):
    """Rewrites a merged Mixtral GGUF in the per-expert layout of older
    llama.cpp converters: each 3-D blk.N.ffn_{gate,up,down}_exps stack becomes
    E 2-D tensors blk.N.ffn_{gate,up,down}.X.weight (same bytes); tensors
    named in drop are left out."""
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        vt = f.types[0]
        sub = f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(f.name, f.contents(), vt, sub)

    def add(name, data, tt):
        if name in drop:
            return
        if tt in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            w.add_tensor(name, np.array(data))
        else:
            w.add_tensor(name, np.array(data), raw_dtype=tt)
    n_split = 0
    for t in r.tensors:
        if t.name.endswith("_exps.weight"):
            base = t.name[:-len("_exps.weight")]
            for x in range(t.data.shape[0]):
                add(f"{base}.{x}.weight", t.data[x], t.tensor_type)
            n_split += 1
        else:
            add(t.name, t.data, t.tensor_type)
    assert n_split > 0
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


@pytest.mark.parametrize("qtype", ["f32", "q8_0"])
def test_gguf_per_expert_layout(qtype, fastchat_bin, tmp_path, figures):
    """Older llama.cpp Mixtral files hold each expert as its own tensor
    (blk.N.ffn_gate.X.weight, ...): the same model written both ways gives
    the same logits, bit for bit, in exact and fast mode."""
    gguf = pytest.importorskip("gguf")
    name = "mixtral_f32_e4_swa20"
    merged = quantize(fastchat_bin, name, qtype, tmp_path)
    split = split_experts(merged, tmp_path / f"{name}.{qtype}.split.gguf")
    names = {t.name for t in gguf.GGUFReader(str(split)).tensors}
    assert "blk.1.ffn_down.3.weight" in names and "blk.1.ffn_down_exps.weight" not in names
    r = load(name)
    for exact in (True, False):
        a = fastchat_logits(fastchat_bin, merged, r["prompt_b"], tmp_path, exact=exact)
        b = fastchat_logits(fastchat_bin, split, r["prompt_b"], tmp_path, exact=exact)
        assert np.array_equal(a, b), f"{qtype} exact={exact}: per-expert file differs by {np.abs(a - b).max():.3e}"
    figures(f"mixtral/{name:22s} per-expert GGUF {qtype}: logits identical to the merged file (exact and fast)")
    if qtype == "f32":
        d = float(np.abs(fastchat_logits(fastchat_bin, split, r["prompt_b"], tmp_path, exact=True) - r["logits_b"]).max())
        assert d <= EXACT_TOL, f"per-expert f32 file differs from transformers by {d:.3e}"
    # one expert missing: one error line naming it
    bad = split_experts(merged, tmp_path / "bad_split.gguf", drop=("blk.1.ffn_up.2.weight",))
    figures("mixtral bad file: " + expect_one_error(fastchat_bin, bad, tmp_path, "missing tensor blk.1.ffn_up.2.weight"))
