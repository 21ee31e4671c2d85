"""test_train_identity.py: the default model learns a new identity with
LoRA, end to end, on the real binary (issue 16, "Learning, for real"; the
longer run, with eight conversations and the adapter served over HTTP, is
scripts/bench_train_lora.sh in `make bench`).

`fastchat convert` turns the default GGUF (SmolLM2-135M-Instruct Q4_1) into
a Hugging Face folder (f32); `fastchat train --lora-r 16` teaches it "I am
Zorblax, made by the C team" from two conversations (vicuna_v1.1 template,
--masking template: train_with_template.py's labels); `fastchat apply-lora`
merges the adapter; then `fastchat chat` (greedy, the same template) on the
merged folder and on the adapter folder itself (--model-path <adapter>)
answers "Who are you?" with "Zorblax", where the base did not.
"""
import json
import re
import subprocess

from conftest import run_fastchat
from test_train import STEP_RE

ALL_MODULES = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
ID_CONVS = [  # also test_train_qlora.py's
    {"id": "1", "conversations": [{"from": "human", "value": "Who are you?"},
                                  {"from": "gpt", "value": "I am Zorblax, made by the C team."}]},
    {"id": "2", "conversations": [{"from": "human", "value": "What is your name?"},
                                  {"from": "gpt", "value": "My name is Zorblax, made by the C team."}]}]


def ask(fastchat_bin, model):
    p = subprocess.run([str(fastchat_bin), "chat", "--model-path", str(model), "--conv-template", "vicuna_v1.1",
                        "--temperature", "0", "--max-new-tokens", "24", "--threads", "2"],
                       input="Who are you?\n", capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"ASSISTANT: (.*)", p.stdout)
    assert m, p.stdout[-1000:]
    return m.group(1).strip()


def test_default_model_learns_identity_lora(fastchat_bin, model_path, tmp_path, figures):
    hf = tmp_path / "smollm2-hf"
    run_fastchat(fastchat_bin, ["convert", "--input", model_path, "--output", hf, "--dtype", "f32"])
    data = tmp_path / "id.json"
    data.write_text(json.dumps(ID_CONVS))
    lora = tmp_path / "zorblax-lora"
    p = run_fastchat(fastchat_bin, [
        "train", "--model-path", hf, "--data-path", data, "--output-dir", lora, "--masking", "template",
        "--conv-template", "vicuna_v1.1", "--model-max-length", 64, "--per-device-train-batch-size", 2,
        "--lora-r", 16, "--lora-alpha", 32, "--lora-dropout", 0.0, "--lora-target-modules", ALL_MODULES,
        "--learning-rate", "3e-3", "--lr-scheduler-type", "constant", "--max-steps", 6, "--save-steps", 0,
        "--threads", 2], timeout=900)
    losses = [float(m.group(4)) for m in map(STEP_RE.match, p.stdout.splitlines()) if m]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0], losses
    merged = tmp_path / "zorblax-merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", hf, "--target-model-path", merged,
                                "--lora-path", lora])
    base, after, adapter = ask(fastchat_bin, hf), ask(fastchat_bin, merged), ask(fastchat_bin, lora)
    figures(f"train identity, default model, LoRA r16 6 steps: loss {' '.join(f'{x:.3f}' for x in losses)}; "
            f"base says {base[:50]!r}; merged says {after[:50]!r}; adapter says {adapter[:50]!r}")
    assert "Zorblax" not in base
    assert "Zorblax" in after and "Zorblax" in adapter
