"""LoRA adapters served at run time (src/model/lora.c): a PEFT adapter folder
as --model-path is its base (base_model_name_or_path) with the adapter merged
at load, and gives the logits of `fastchat apply-lora`'s merged model (which
tests/py/test_weight_tools.py checks against PEFT's merge_and_unload).
Several adapters of one base in one process share the base: tests/unit/test_lora.c.
"""
import json
import shutil

import numpy as np
import pytest

from conftest import DATA, fastchat_logits, run_fastchat

W = DATA / "weights"
IDS = [1, 5, 77, 30, 100, 9, 64, 3, 120, 7]


def adapter(tmp_path, name, base):
    d = tmp_path / f"{name}_served"
    d.mkdir()
    for f in (W / name).iterdir():
        shutil.copy(f, d / f.name)
    cfg = json.load(open(d / "adapter_config.json"))
    cfg["base_model_name_or_path"] = str(base)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    return d


@pytest.mark.parametrize("name", ["lora", "lora_rs", "lora_bin"])
@pytest.mark.parametrize("exact", [True, False])
def test_served_adapter_equals_merged(fastchat_bin, tmp_path, figures, name, exact):
    merged = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path", merged,
                                "--lora-path", W / name])
    served = adapter(tmp_path, name, W / "base")
    l_served = fastchat_logits(fastchat_bin, served, IDS, tmp_path, exact=exact)
    l_merged = fastchat_logits(fastchat_bin, merged, IDS, tmp_path, exact=exact)
    l_base = fastchat_logits(fastchat_bin, W / "base", IDS, tmp_path, exact=exact)
    assert np.array_equal(l_served, l_merged)
    assert not np.array_equal(l_served, l_base)  # the adapter does something
    figures(f"lora served {name} ({'exact' if exact else 'fast'}): logits bit-equal to apply-lora's merged model; "
            f"max |served - base| {float(np.abs(l_served - l_base).max()):.3g}")


def test_served_adapter_on_gguf_base(fastchat_bin, tmp_path, figures):
    """A GGUF base (llama.cpp's Q/K row order): the adapter's Q/K deltas are
    permuted like the base rows; logits as the merged folder's, up to the
    RoPE pair layout's rounding."""
    gguf = tmp_path / "base.gguf"
    run_fastchat(fastchat_bin, ["convert", "--input", W / "base", "--output", gguf])
    merged = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", W / "base", "--target-model-path", merged,
                                "--lora-path", W / "lora_rs"])
    served = adapter(tmp_path, "lora_rs", gguf)
    l_served = fastchat_logits(fastchat_bin, served, IDS, tmp_path, exact=True)
    l_merged = fastchat_logits(fastchat_bin, merged, IDS, tmp_path, exact=True)
    d = float(np.abs(l_served - l_merged).max())
    figures(f"lora served lora_rs on a GGUF f16 base: max |logit diff| vs merged folder {d:.2e}")
    assert d < 1e-4 and (l_served.argmax(-1) == l_merged.argmax(-1)).all()


def test_served_phi3_adapter_equals_merged(fastchat_bin, tmp_path, figures):
    """A Phi-3 adapter (fused qkv_proj / gate_up_proj) served on its base: the
    fused matrices are merged and their q/k/v and gate/up views follow, so the
    logits are bit-equal to apply-lora's merged folder (exact and fast)."""
    base_dir = DATA / "tiny" / "phi3_f32_swa32"
    merged = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", base_dir, "--target-model-path", merged,
                                "--lora-path", W / "lora_phi3"])
    served = adapter(tmp_path, "lora_phi3", base_dir)
    ids = [1, 5, 77, 30, 400, 9, 64, 3, 120, 7, 511, 250]
    for exact in (True, False):
        l_served = fastchat_logits(fastchat_bin, served, ids, tmp_path, exact=exact)
        l_merged = fastchat_logits(fastchat_bin, merged, ids, tmp_path, exact=exact)
        l_base = fastchat_logits(fastchat_bin, base_dir, ids, tmp_path, exact=exact)
        assert np.array_equal(l_served, l_merged), exact
        assert np.abs(l_served - l_base).max() > 1e-2
    figures(f"lora served phi3 (fused qkv/gate_up): logits bit-equal to apply-lora's merged model; "
            f"max |served - base| {float(np.abs(l_served - l_base).max()):.3g}")


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_served_adapter_on_quantized_gguf_base(fastchat_bin, tmp_path, figures, qtype):
    """A quantized GGUF base (`fastchat quantize` of tests/data/weights/base):
    the adapted matrices are dequantized, merged in f32 and kept as f16.
    Compared with (1) the f32 merged model: apply-lora of the adapter on the
    GGUF converted back to an f32 folder (the dequantized base), and (2)
    transformers + PEFT on that same dequantized base
    (tests/data/weights/lora_quant_ref.npz, tools/golden/make_lora_phi3_quant_fixtures.py).
    Exact mode; the difference is the f16 rounding of the merged matrices."""
    gguf = tmp_path / f"base_{qtype}.gguf"
    run_fastchat(fastchat_bin, ["quantize", "--model-path", W / "base", "--type", qtype, "--out", gguf])
    deq = tmp_path / "deq"
    run_fastchat(fastchat_bin, ["convert", "--input", gguf, "--output", deq, "--dtype", "f32"])
    merged = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", deq, "--target-model-path", merged,
                                "--lora-path", W / "lora_rs"])
    served = adapter(tmp_path, "lora_rs", gguf)
    l_served = fastchat_logits(fastchat_bin, served, IDS, tmp_path, exact=True)
    l_merged = fastchat_logits(fastchat_bin, merged, IDS, tmp_path, exact=True)
    l_base = fastchat_logits(fastchat_bin, gguf, IDS, tmp_path, exact=True)
    ref = np.load(W / "lora_quant_ref.npz")
    assert ref["ids"].tolist() == IDS
    d_merged = float(np.abs(l_served - l_merged).max())
    d_peft = float(np.abs(l_served - ref[qtype]).max())
    d_base = float(np.abs(l_served - l_base).max())
    scale = float(np.abs(ref[qtype]).max())
    figures(f"lora served lora_rs on a {qtype} GGUF base (merged matrices f16): max |logit diff| vs f32 merged "
            f"folder {d_merged:.2e}, vs transformers+PEFT on the dequantized base {d_peft:.2e} "
            f"(logits up to {scale:.2f}; the adapter moves them by {d_base:.3g})")
    assert d_merged < 2e-3 and d_peft < 2e-3, (d_merged, d_peft)
    assert d_base > 50 * max(d_merged, d_peft)
    assert (l_served.argmax(-1) == ref[qtype].argmax(-1)).all()
    # the fast mode serves it too (the untouched matrices stay quantized)
    l_fast = fastchat_logits(fastchat_bin, served, IDS, tmp_path, exact=False)
    assert np.abs(l_fast - l_served).max() < 0.05 * max(scale, 1.0)


def test_adapter_refusals(fastchat_bin, tmp_path):
    d = adapter(tmp_path, "lora", W / "base")
    cfg = json.load(open(d / "adapter_config.json"))
    cfg["base_model_name_or_path"] = None
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    p = run_fastchat(fastchat_bin, ["logits", "--model-path", d, "--prompt-ids", "1,2", "--out", tmp_path / "x"],
                     check=False)
    assert p.returncode != 0 and "base_model_name_or_path" in p.stderr
    cfg["base_model_name_or_path"] = str(W / "base")
    cfg["use_dora"] = True
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    p = run_fastchat(fastchat_bin, ["logits", "--model-path", d, "--prompt-ids", "1,2", "--out", tmp_path / "x"],
                     check=False)
    assert p.returncode != 0 and "DoRA" in p.stderr


def test_worker_serves_two_adapters_of_one_base(fastchat_bin, tmp_path, figures):
    """One worker, two adapters of one base (tiny_tok/llama_spm with its
    SentencePiece tokenizer; the fixtures' adapters fit its matrices): each
    model name answers with the greedy text of its apply-lora merged folder."""
    import requests
    from test_controller import Proc, free_port, wait_until
    base = tmp_path / "spm_base"
    shutil.copytree(DATA / "tiny_tok" / "llama_spm", base)
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(DATA / "tokenizer" / "spm" / f, base)
    a1, a2 = adapter(tmp_path, "lora", base), adapter(tmp_path, "lora_rs", base)
    port = free_port()
    p = Proc([fastchat_bin, "worker", "--model-path", a1, "--model-path", a2, "--port", port, "--no-register"],
             tmp_path / "worker.log")
    texts = {}
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.post(url + "/worker_get_status", json={}, timeout=2).status_code == 200, 120,
                   "the worker", [p])
        for a in (a1, a2):
            r = requests.post(url + "/worker_generate", json={"model": a.name, "prompt": "The cat sat on the",
                                                               "temperature": 0, "max_new_tokens": 12, "echo": False},
                              timeout=120)
            assert r.status_code == 200 and r.json()["error_code"] == 0, r.text
            texts[a.name] = r.json()["text"]
        ids = requests.post(url + "/worker_tokenize", json={"model": a1.name, "prompt": "The cat sat on the"},
                            timeout=30).json()
    finally:
        p.stop()
    ids = ids["tokens"] if isinstance(ids, dict) else ids
    for name, a in (("lora", a1), ("lora_rs", a2)):
        merged = tmp_path / f"merged_{name}"
        run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", base, "--target-model-path", merged,
                                    "--lora-path", W / name])
        g = run_fastchat(fastchat_bin, ["generate", "--model-path", merged, "--prompt-ids", ",".join(map(str, ids)),
                                        "--max-new-tokens", "12"])
        assert g.stdout.strip() == texts[a.name].strip(), (name, g.stdout, texts[a.name])
    assert texts[a1.name] != texts[a2.name]
    figures(f"lora: one worker serving two adapters of one base: {texts}")
