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
