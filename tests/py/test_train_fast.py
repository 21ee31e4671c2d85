"""test_train_fast.py: `fastchat train --gradient-checkpointing True` on the
real binary (the fast path; its gradients against the reference path and
torch are in tests/unit/test_train_fast.c and test_train_ref.c).

- On the tiny Llama (tests/data/tiny_tok/llama_spm): 12 steps with and without
  checkpointing print the same losses and grad norms and save bit-identical
  weights (checkpointing recomputes the same activations).
- On the default model (SmolLM2-135M, LoRA r=8 over all seven projections, one
  step of 2 x 128 tokens): the peak RSS with checkpointing is lower than
  without (the activations of 30 layers against one layer's plus the layer
  inputs); both figures are printed. Memory, not time, is asserted.
"""
import json
import os
import shutil
import subprocess

import numpy as np
from safetensors.numpy import load_file

from conftest import DATA, run_fastchat
from test_train import CONVS  # the identity conversations


def step_lines(stdout):
    # "step S/T  epoch E  loss L  lr R  grad_norm G  tokens/s ..." without the timing fields
    return [line.split("  tokens/s")[0] for line in stdout.splitlines() if line.startswith("step ")]


def test_checkpointing_same_run_tiny(fastchat_bin, tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    for d in (DATA / "tiny_tok" / "llama_spm", DATA / "tokenizer" / "spm_legacy"):
        for f in d.iterdir():
            shutil.copy(f, base)
    data = tmp_path / "d.json"
    data.write_text(json.dumps(CONVS))
    runs = {}
    for ck in ("False", "True"):
        out = tmp_path / f"out_{ck}"
        p = run_fastchat(fastchat_bin, [
            "train", "--model-path", base, "--data-path", data, "--output-dir", out,
            "--model-max-length", 128, "--per-device-train-batch-size", 2, "--learning-rate", "1e-2",
            "--max-steps", 12, "--save-steps", 0, "--seed", 3, "--threads", 2,
            "--gradient-checkpointing", ck], timeout=300)
        runs[ck] = (step_lines(p.stdout), load_file(str(out / "model.safetensors")))
    (a, wa), (b, wb) = runs["False"], runs["True"]
    assert len(a) == 12 and a == b, (a, b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k


def test_checkpointing_lowers_peak_rss(fastchat_bin, model_path, tmp_path, figures):
    data = tmp_path / "long.json"
    words = "the river carries small stones down from the hills every spring".split()
    data.write_text(json.dumps([{"id": str(i), "conversations": [
        {"from": "human", "value": f"Tell me story {i}."},
        {"from": "gpt", "value": " ".join(words[(i + k) % len(words)] for k in range(300))}]}
        for i in range(4)]))
    rss, losses = {}, {}
    for ck in ("False", "True"):
        cmd = [fastchat_bin, "train", "--model-path", model_path, "--data-path", data,
               "--output-dir", tmp_path / f"o_{ck}", "--model-max-length", 128,
               "--per-device-train-batch-size", 2, "--max-steps", 1, "--save-steps", 0,
               "--learning-rate", "1e-4", "--threads", 2, "--lora-r", 8, "--lora-alpha", 16,
               "--lora-dropout", 0.0,
               "--lora-target-modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
               "--gradient-checkpointing", ck]
        p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        out, err = p.stdout.read().decode(), p.stderr.read().decode()
        assert os.waitstatus_to_exitcode(status) == 0, err[-2000:]
        rss[ck] = ru.ru_maxrss / 1024
        losses[ck] = step_lines(out)
    figures(f"train default model LoRA, 1 step of 2 x 128 tokens: peak RSS {rss['False']:.0f} MiB, "
            f"with --gradient-checkpointing {rss['True']:.0f} MiB")
    assert losses["False"] == losses["True"] and len(losses["True"]) == 1
    assert rss["True"] < rss["False"] - 50, rss
