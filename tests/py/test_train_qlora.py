"""test_train_qlora.py: `fastchat train --q-lora True` (QLoRA: LoRA adapters
over frozen base matrices kept in their quantized GGUF type, src/train/qbase.h)
end to end on the real binary.

The base: the tiny Llama of tests/data/tiny_tok/llama_spm with the Llama-2
SentencePiece tokenizer (as test_train.py), written as q8_0 / q4_0 GGUF by
`fastchat quantize` (tokenizer in the file, Q/K rows interleaved as llama.cpp
stores them). Checked:
- the QLoRA run's 20 losses (trainer_state.json, full precision) equal those
  of the same LoRA run on the base dequantized to f32 master weights (the
  default without --q-lora) within 1e-5 relative, and the saved adapters
  agree within 1e-3 of each tensor's largest value (the only difference is
  the order of the sums; AdamW's m / sqrt(v) turns a last-bit difference in
  a gradient near zero into a step of up to the learning rate, and LoRA's B
  starts at zero: 2.2e-5 to 2.2e-4 seen, depending on the fast path's
  summation order);
- the adapter folder serves on the quantized GGUF base (`--model-path
  ADAPTER_DIR`): exact-mode logits equal `fastchat apply-lora`'s merge of it
  into the dequantized base (f32 folder from `fastchat convert`) within the
  f16 rounding of the served merged matrices, as test_lora_serve.py checks;
- PEFT reads the adapter: LoraConfig.from_pretrained when `peft` imports
  here, and (when a Python with torch + transformers + peft is given as
  QLORA_TORCH_PYTHON, e.g. /work/gvenv/bin/python) PeftModel on the
  dequantized base gives our served logits;
- a resumed QLoRA run continues as the uninterrupted one;
- the default model (SmolLM2-135M Q4_1 GGUF, kept Q4_1) learns a new identity
  with --q-lora in 6 steps, and `fastchat chat` on the adapter folder (served
  on the Q4_1 base) says it, where the base did not (as test_train_identity.py
  does with LoRA on the f32-converted folder);
- --q-lora without --lora-r is refused.
Gradient equality at the C level, all weight types: tests/unit/test_train_qlora.c.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import fastchat_logits, run_fastchat
from test_train_identity import ID_CONVS, ask
from test_train import ALL_MODULES, CONVS, RESUME_ARGS, base_model, resume_data  # noqa: F401 (base_model: a fixture)

IDS = [1, 450, 1724, 338, 263, 1243, 1892, 322, 372, 1058]
TRAIN_ARGS = ["--lora-r", 8, "--lora-alpha", 16, "--lora-dropout", 0.05, "--lora-target-modules", ALL_MODULES,
              "--max-steps", 20, "--per-device-train-batch-size", 2, "--learning-rate", "2e-2",
              "--warmup-ratio", 0.1, "--lr-scheduler-type", "cosine", "--save-steps", 0, "--threads", 2,
              "--model-max-length", 128, "--seed", 3]


@pytest.fixture(scope="module")
def bases(fastchat_bin, base_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("qlora")
    data = root / "identity.json"
    data.write_text(json.dumps(CONVS))
    out = {}
    for q in ("q8_0", "q4_0"):
        g = root / f"base_{q}.gguf"
        run_fastchat(fastchat_bin, ["quantize", "--model-path", base_model, "--type", q, "--out", g])
        out[q] = g
    return root, data, out


def train(fastchat_bin, model, data, out, qlora):
    p = run_fastchat(fastchat_bin, ["train", "--model-path", model, "--data-path", data, "--output-dir", out]
                     + TRAIN_ARGS + (["--q-lora", "True"] if qlora else []))
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    rss = [line for line in p.stdout.splitlines() if line.startswith("peak RSS")]
    return losses, load_file(str(out / "adapter_model.safetensors")), rss[-1] if rss else "?"


@pytest.fixture(scope="module")
def trained(fastchat_bin, bases):
    root, data, g = bases
    res = {}
    for q, path in g.items():
        res[q] = {mode: train(fastchat_bin, path, data, root / f"{mode}_{q}", mode == "qlora")
                  for mode in ("lora", "qlora")}
    return res


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_qlora_equals_f32_base_lora(trained, figures, qtype):
    (lf, af, rss_f), (lq, aq, rss_q) = trained[qtype]["lora"], trained[qtype]["qlora"]
    assert len(lf) == len(lq) == 20
    dl = max(abs(a - b) / abs(b) for a, b in zip(lq, lf))
    assert dl <= 1e-5, (lq, lf)
    assert lq[-1] < 0.6 * lq[0], lq  # it learns
    assert sorted(aq) == sorted(af) and len(af) == 2 * 7 * 2
    da = max(float(np.abs(aq[k].astype(np.float64) - af[k]).max() / np.abs(af[k]).max()) for k in af)
    assert da <= 1e-3, da
    figures(f"qlora tiny llama {qtype} GGUF, 20 steps: losses {lq[0]:.4f} -> {lq[-1]:.4f}, largest relative "
            f"difference to the f32-base LoRA run {dl:.2e} (adapters {da:.2e})")


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_qlora_adapter_serves_on_quantized_base(fastchat_bin, bases, trained, tmp_path, figures, qtype):
    root, _, g = bases
    adapter = root / f"qlora_{qtype}"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 8 and cfg["lora_alpha"] == 16
    assert cfg["base_model_name_or_path"] == str(g[qtype])
    deq = tmp_path / "deq"
    run_fastchat(fastchat_bin, ["convert", "--input", g[qtype], "--output", deq, "--dtype", "f32"])
    merged = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", deq, "--target-model-path", merged,
                                "--lora-path", adapter])
    l_served = fastchat_logits(fastchat_bin, adapter, IDS, tmp_path, exact=True)
    l_merged = fastchat_logits(fastchat_bin, merged, IDS, tmp_path, exact=True)
    l_base = fastchat_logits(fastchat_bin, g[qtype], IDS, tmp_path, exact=True)
    d_merged = float(np.abs(l_served - l_merged).max())
    d_base = float(np.abs(l_served - l_base).max())
    scale = float(np.abs(l_merged).max())
    figures(f"qlora adapter served on the {qtype} GGUF base: max |logit diff| vs apply-lora merged into the "
            f"dequantized base {d_merged:.2e} (logits up to {scale:.2f}; the adapter moves them by {d_base:.3g})")
    # the served merge keeps the adapted matrices in f16 (2^-11 relative rounding); the merged folder
    # itself written in f16 (`fastchat quantize --type f16`) moves these logits by as much (3.2e-3 on q4_0)
    assert d_merged < 2e-3 * scale and d_base > 50 * d_merged, (d_merged, d_base, scale)
    assert (l_served.argmax(-1) == l_merged.argmax(-1)).all()

    torch_py = os.environ.get("QLORA_TORCH_PYTHON")
    if torch_py:
        # transformers + PEFT load the adapter over the dequantized base
        ref = tmp_path / "peft.npy"
        code = ("import sys, numpy as np, torch, transformers, peft\n"
                "m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)\n"
                "m = peft.PeftModel.from_pretrained(m, sys.argv[2])\n"
                "ids = torch.tensor([[int(x) for x in sys.argv[3].split(',')]])\n"
                "with torch.no_grad(): np.save(sys.argv[4], m(ids).logits[0].numpy())\n")
        subprocess.run([torch_py, "-c", code, str(deq), str(adapter), ",".join(map(str, IDS)), str(ref)],
                       check=True, capture_output=True, timeout=600)
        d_peft = float(np.abs(l_merged - np.load(ref)).max())
        d_peft_served = float(np.abs(l_served - np.load(ref)).max())
        figures(f"qlora adapter ({qtype}) in transformers + PEFT on the dequantized base: max |logit diff| vs "
                f"our apply-lora merge {d_peft:.2e}, vs ours served {d_peft_served:.2e}")
        assert d_peft < 1e-4 * scale and d_peft_served < 2e-3 * scale, (d_peft, d_peft_served)


def test_peft_reads_the_config(bases, trained):
    peft = pytest.importorskip("peft")
    root, _, _ = bases
    c = peft.LoraConfig.from_pretrained(str(root / "qlora_q4_0"))
    assert c.r == 8 and c.lora_alpha == 16 and sorted(c.target_modules) == sorted(ALL_MODULES.split(","))


def test_qlora_resume(fastchat_bin, bases, tmp_path):
    """Resumed from its checkpoint-6 (adapters, moments, data position, dropout
    masks), a QLoRA run computes the uninterrupted run's steps 7-12."""
    _, _, g = bases
    data = resume_data(tmp_path)
    args = ["train", "--model-path", g["q4_0"], "--data-path", data, "--q-lora", "True", "--lora-r", 4,
            "--lora-alpha", 8, "--lora-dropout", 0.2, "--lora-target-modules", "q_proj,v_proj,down_proj"] + RESUME_ARGS
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    run_fastchat(fastchat_bin, args + ["--output-dir", full])
    r = run_fastchat(fastchat_bin, args + ["--output-dir", resumed, "--resume-from-checkpoint", full / "checkpoint-6"])
    assert "step 7/12" in r.stdout
    hist = [json.loads((d / "trainer_state.json").read_text())["log_history"] for d in (full, resumed)]
    assert [h["step"] for h in hist[1]] == list(range(1, 13))
    assert all(abs(a["loss"] - b["loss"]) <= 1e-5 for a, b in zip(hist[0], hist[1]))
    a, b = (load_file(str(d / "adapter_model.safetensors")) for d in (full, resumed))
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_qlora_needs_lora(fastchat_bin, bases, tmp_path):
    root, data, g = bases
    p = run_fastchat(fastchat_bin, ["train", "--model-path", g["q4_0"], "--data-path", data, "--output-dir",
                                    tmp_path / "o", "--q_lora", "True", "--max-steps", 1], check=False)
    assert p.returncode != 0 and "--lora-r" in p.stderr


def test_default_model_learns_identity_qlora(fastchat_bin, model_path, tmp_path, figures):
    data = tmp_path / "id.json"
    data.write_text(json.dumps(ID_CONVS))
    lora = tmp_path / "zorblax-qlora"
    p = run_fastchat(fastchat_bin, [
        "train", "--model-path", model_path, "--data-path", data, "--output-dir", lora, "--q-lora", "True",
        "--masking", "template", "--conv-template", "vicuna_v1.1", "--model-max-length", 64,
        "--per-device-train-batch-size", 2, "--lora-r", 16, "--lora-alpha", 32, "--lora-dropout", 0.0,
        "--lora-target-modules", ALL_MODULES, "--learning-rate", "3e-3", "--lr-scheduler-type", "constant",
        "--max-steps", 6, "--save-steps", 0, "--threads", 2], timeout=900)
    rss = [line for line in p.stdout.splitlines() if line.startswith("peak RSS")]
    assert json.loads((lora / "adapter_config.json").read_text())["base_model_name_or_path"] == str(model_path)
    before, after = ask(fastchat_bin, model_path), ask(fastchat_bin, lora)
    figures(f"qlora default model (Q4_1 kept), 6 steps: base says {before[:40]!r}, adapter on the Q4_1 base says "
            f"{after[:40]!r}; {rss[-1] if rss else ''}")
    assert "Zorblax" not in before and "Zorblax" in after
