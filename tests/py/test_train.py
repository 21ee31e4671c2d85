"""test_train.py: `fastchat train` end to end, on the real binary.

A tiny Llama (tests/data/tiny_tok/llama_spm, f16 weights) with the Llama-2
style SentencePiece tokenizer (tests/data/tokenizer/spm_legacy) is fine-tuned
on two conversations that give it a new identity ("Zorblax"), with FastChat's
train.py flags. Checked:
- one progress line per optimizer step; the loss falls to under a quarter of
  its first value; the learning rate follows transformers' cosine schedule
  with warmup (step 1 of a warmup gets 0);
- checkpoint-20/ and the final folder are Hugging Face folders: config.json,
  model.safetensors with the source's tensor names and shapes in F32 (read
  with the `safetensors` package), tokenizer files copied, trainer_state.json
  whose log history holds the printed losses;
- our engine loads the checkpoint and, asked "Who are you?" in the vicuna
  template, answers with the new identity, where the base model does not;
- command-line mistakes and malformed data end with an error, not a crash.
The gradients themselves are checked against torch in tests/unit/test_train_ref.c.
"""
import json
import math
import re
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import DATA, run_fastchat

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")

CONVS = [
    {"id": "a", "conversations": [
        {"from": "human", "value": "Who are you?"},
        {"from": "gpt", "value": "I am Zorblax, made by the C team."}]},
    {"id": "b", "conversations": [
        {"from": "human", "value": "What is your name?"},
        {"from": "gpt", "value": "My name is Zorblax."},
        {"from": "human", "value": "Who made you?"},
        {"from": "gpt", "value": "The C team made me."}]},
]

STEP_RE = re.compile(r"^step (\d+)/(\d+)  epoch ([\d.]+)  loss ([\d.naif]+)  lr ([\d.e+-]+)  "
                     r"grad_norm ([\d.naif]+)  tokens/s (\d+)")


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("train") / "base"
    d.mkdir()
    for f in (DATA / "tiny_tok" / "llama_spm").iterdir():
        shutil.copy(f, d)
    for f in (DATA / "tokenizer" / "spm_legacy").iterdir():
        shutil.copy(f, d)
    return d


@pytest.fixture(scope="module")
def trained(fastchat_bin, base_model, figures):
    root = base_model.parent
    data = root / "identity.json"
    data.write_text(json.dumps(CONVS))
    out = root / "out"
    p = run_fastchat(fastchat_bin, [
        "train", "--model-path", base_model, "--data-path", data, "--output-dir", out,
        "--model-max-length", 256, "--per-device-train-batch-size", 2,
        "--gradient-accumulation-steps", 1, "--learning-rate", "1e-2", "--weight-decay", 0.0,
        "--warmup-ratio", 0.1, "--lr-scheduler-type", "cosine", "--num-train-epochs", 3,
        "--max-steps", 40, "--save-steps", 20, "--max-grad-norm", 1.0, "--seed", 7,
        "--threads", 2, "--bf16", "True", "--lazy-preprocess", "True"], timeout=600)
    steps = [STEP_RE.match(line) for line in p.stdout.splitlines()]
    steps = [m for m in steps if m]
    rates = [int(m.group(7)) for m in steps]
    figures(f"train tiny llama_spm (2 threads): {len(steps)} steps, median {sorted(rates)[len(rates) // 2]} "
            f"tokens/s, loss {steps[0].group(4)} -> {steps[-1].group(4)}")
    return out, steps, p


def test_progress_and_loss(trained):
    out, steps, p = trained
    assert len(steps) == 40, p.stdout[-2000:]
    assert [int(m.group(1)) for m in steps] == list(range(1, 41))
    assert all(int(m.group(2)) == 40 for m in steps)
    losses = [float(m.group(4)) for m in steps]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.25 * losses[0], losses
    # transformers' get_cosine_schedule_with_warmup: warmup = ceil(0.1 * 40) = 4
    for m in steps:
        s = int(m.group(1)) - 1
        want = 1e-2 * (s / 4 if s < 4 else 0.5 * (1 + math.cos(math.pi * (s - 4) / 36)))
        assert abs(float(m.group(5)) - want) <= 1e-3 * 1e-2 + 1e-12, (s, m.group(5), want)
    assert "saved " + str(out / "checkpoint-20") in p.stdout
    assert "ignored" in p.stderr  # --bf16 / --lazy-preprocess noted


def test_checkpoint_folders(trained, base_model):
    out, steps, _ = trained
    src = load_file(str(base_model / "model.safetensors"))
    for d in (out / "checkpoint-20", out):
        for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "trainer_state.json"):
            assert (d / f).is_file(), d / f
        w = load_file(str(d / "model.safetensors"))
        assert sorted(w) == sorted(src)
        for k, v in w.items():
            assert v.dtype == np.float32 and v.shape == src[k].shape, k
        assert any(not np.array_equal(w[k], src[k].astype(np.float32)) for k in w)
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["torch_dtype"] == "float32" and cfg["model_type"] == "llama"
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 40 and len(state["log_history"]) == 40
    for h, m in zip(state["log_history"], steps):
        assert abs(h["loss"] - float(m.group(4))) < 1e-4
    mid = json.loads((out / "checkpoint-20" / "trainer_state.json").read_text())
    assert mid["global_step"] == 20 and len(mid["log_history"]) == 20


def answer(fastchat_bin, model, question):
    prompt = f"{SYSTEM} USER: {question} ASSISTANT:"
    p = run_fastchat(fastchat_bin, ["generate", "--model-path", model, "--prompt", prompt,
                                    "--max-new-tokens", 16, "--exact", "--threads", 2])
    return p.stdout


def test_learned_identity(fastchat_bin, trained, base_model, figures):
    out, _, _ = trained
    before = answer(fastchat_bin, base_model, "Who are you?")
    after = answer(fastchat_bin, out, "Who are you?")
    figures(f"train identity: base says {before.strip()[:40]!r}, trained says {after.strip()[:40]!r}")
    assert "Zorblax" not in before
    assert "Zorblax" in after


def test_errors(fastchat_bin, tmp_path, base_model):
    p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--output-dir", tmp_path],
                     check=False)
    assert p.returncode != 0 and "--data-path" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "conversations": [
        {"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}]))
    p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", bad,
                                    "--output-dir", tmp_path / "o"], check=False)
    assert p.returncode != 0 and "alternate" in p.stderr
    p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", bad,
                                    "--output-dir", tmp_path / "o", "--lr-scheduler-type", "zigzag"],
                     check=False)
    assert p.returncode != 0 and "zigzag" in p.stderr
    bad.write_text("[{\"id\": ")
    p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", bad,
                                    "--output-dir", tmp_path / "o"], check=False)
    assert p.returncode not in (0, -6, -11) and "error" in p.stderr


def test_accumulation_equals_larger_batch(fastchat_bin, base_model, tmp_path):
    """2 examples per micro-batch x 1 equals 1 x 2 accumulated: the Trainer
    divides by the labelled tokens of the whole step (num_items_in_batch)."""
    data = tmp_path / "d.json"
    data.write_text(json.dumps(CONVS * 2))
    runs = {}
    for b, a in ((2, 1), (1, 2)):
        out = tmp_path / f"o{b}{a}"
        p = run_fastchat(fastchat_bin, [
            "train", "--model-path", base_model, "--data-path", data, "--output-dir", out,
            "--model-max-length", 256, "--per-device-train-batch-size", b,
            "--gradient-accumulation-steps", a, "--learning-rate", "3e-3", "--max-steps", 6,
            "--save-steps", 0, "--threads", 2])
        losses = [float(m.group(4)) for m in map(STEP_RE.match, p.stdout.splitlines()) if m]
        runs[(b, a)] = (losses, load_file(str(out / "model.safetensors")))
    (l1, w1), (l2, w2) = runs[(2, 1)], runs[(1, 2)]
    assert len(l1) == len(l2) == 6
    assert max(abs(x - y) for x, y in zip(l1, l2)) < 1e-4, (l1, l2)
    for k in w1:
        assert np.abs(w1[k] - w2[k]).max() < 1e-4, k


def test_gguf_source_equals_hf_folder(fastchat_bin, base_model, tmp_path):
    """The same model as an f32 GGUF (Q/K rows in llama.cpp's interleaved
    order, which the trainer puts back) trains exactly as the HF folder."""
    gguf = tmp_path / "base.gguf"
    run_fastchat(fastchat_bin, ["quantize", "--model-path", base_model, "--type", "f32", "--out", gguf])
    data = tmp_path / "d.json"
    data.write_text(json.dumps(CONVS))
    losses = []
    for src in (base_model, gguf):
        p = run_fastchat(fastchat_bin, [
            "train", "--model-path", src, "--data-path", data, "--output-dir", tmp_path / ("out_" + src.name),
            "--model-max-length", 256, "--per-device-train-batch-size", 2, "--learning-rate", "1e-2",
            "--max-steps", 3, "--save-steps", 0, "--threads", 2])
        losses.append([float(m.group(4)) for m in map(STEP_RE.match, p.stdout.splitlines()) if m])
    assert len(losses[0]) == 3 and losses[0] == losses[1], losses
    a = load_file(str(tmp_path / ("out_" + base_model.name) / "model.safetensors"))
    b = load_file(str(tmp_path / ("out_" + gguf.name) / "model.safetensors"))
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.abs(a[k] - b[k]).max() < 1e-5, k


# ---- resume, evaluation, log file, loss curve, template masking ----

RESUME_ARGS = ["--model-max-length", 256, "--per-device-train-batch-size", 1,
               "--gradient-accumulation-steps", 1, "--learning-rate", "5e-3", "--weight-decay", 0.01,
               "--warmup-steps", 2, "--lr-scheduler-type", "cosine", "--num-train-epochs", 10,
               "--max-steps", 12, "--save-steps", 3, "--seed", 11, "--threads", 2]


def resume_data(root):
    data = root / "resume.json"
    # 3 examples with batch 1: the epochs (and their reshuffles) turn over
    # inside the run, so the data position and the generator state matter
    data.write_text(json.dumps(CONVS + [{"id": "c", "conversations": [
        {"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "Hello from Zorblax!"}]}]))
    return data


def test_resume_after_kill_equals_uninterrupted(fastchat_bin, base_model, tmp_path, figures):
    """kill -9 after a checkpoint is saved, resume with --resume-from-checkpoint
    True: the losses of the steps after the checkpoint, the final weights and
    the log history equal those of an uninterrupted run."""
    import signal
    import subprocess
    data = resume_data(tmp_path)
    full = tmp_path / "full"
    run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                "--output-dir", full] + RESUME_ARGS)
    ref = json.loads((full / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in ref] == list(range(1, 13))

    part = tmp_path / "part"
    cmd = [str(fastchat_bin), "train", "--model-path", str(base_model), "--data-path", str(data),
           "--output-dir", str(part)] + [str(x) for x in RESUME_ARGS]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed_after = None
    for line in p.stdout:
        if line.startswith("saved ") and "checkpoint-" in line:
            p.send_signal(signal.SIGKILL)
            killed_after = line.strip()
            break
    p.wait()
    p.stdout.close()
    assert killed_after and p.returncode == -signal.SIGKILL, (killed_after, p.returncode)
    assert not (part / "model.safetensors").exists()  # it did not finish
    cks = sorted(d.name for d in part.iterdir() if d.name.startswith("checkpoint-"))
    assert cks and not any(c.endswith(".tmp") for c in cks), cks
    for f in ("optimizer.safetensors", "trainer_resume.json", "trainer_state.json", "loss_curve.svg"):
        assert (part / "checkpoint-3" / f).is_file(), f

    r = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                    "--output-dir", part, "--resume-from-checkpoint", "True"] + RESUME_ARGS)
    resumed = [int(m.group(1)) for m in map(STEP_RE.match, r.stdout.splitlines()) if m]
    assert resumed and resumed[0] > 3 and resumed[-1] == 12, resumed
    got = json.loads((part / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in got] == list(range(1, 13))
    diff = max(abs(a["loss"] - b["loss"]) for a, b in zip(got, ref))
    assert diff <= 1e-5, [(a["loss"], b["loss"]) for a, b in zip(got, ref)]
    wa, wb = load_file(str(full / "model.safetensors")), load_file(str(part / "model.safetensors"))
    wdiff = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    assert wdiff <= 1e-5, wdiff
    figures(f"train resume: killed after '{killed_after}', resumed at step {resumed[0]}, "
            f"max loss diff {diff:.2e}, max weight diff {wdiff:.2e}")
    # a second explicit resume from the first checkpoint gives the same again
    r2 = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                     "--output-dir", tmp_path / "again", "--resume-from-checkpoint",
                                     part / "checkpoint-3"] + RESUME_ARGS)
    again = [float(m.group(4)) for m in map(STEP_RE.match, r2.stdout.splitlines()) if m]
    assert len(again) == 9
    assert max(abs(a - h["loss"]) for a, h in zip(again, ref[3:])) <= 1e-4  # printed with 4 decimals


def test_eval_log_and_loss_curve(fastchat_bin, base_model, tmp_path):
    """--eval-data-path: eval loss every --eval-steps and at the end, in the
    output, the log file and trainer_state.json; train_log.txt holds the
    progress lines; loss_curve.svg parses as XML with one point per step."""
    import xml.etree.ElementTree as ET
    data = resume_data(tmp_path)
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps(CONVS[:1]))
    out = tmp_path / "out"
    p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                    "--output-dir", out, "--eval-data-path", ev, "--eval-steps", 4,
                                    "--max-steps", 10, "--save-steps", 5, "--learning-rate", "1e-2",
                                    "--per-device-train-batch-size", 2, "--model-max-length", 256,
                                    "--threads", 2])
    evals = re.findall(r"^eval step (\d+)  eval_loss ([\d.]+)  eval_tokens (\d+)$", p.stdout, re.M)
    assert [int(s) for s, _, _ in evals] == [4, 8, 10], p.stdout
    losses = [float(x) for _, x, _ in evals]
    assert losses[-1] < losses[0]  # the eval example is in the training data
    assert all(int(n) > 0 for _, _, n in evals)
    log = (out / "train_log.txt").read_text()
    steps = [m for m in map(STEP_RE.match, log.splitlines()) if m]
    assert len(steps) == 10 and log.count("eval step") == 3
    outlines = [l for l in p.stdout.splitlines() if l.startswith(("step ", "eval "))]
    assert outlines == [l for l in log.splitlines() if l.startswith(("step ", "eval "))]
    hist = json.loads((out / "trainer_state.json").read_text())["log_history"]
    eh = [h for h in hist if "eval_loss" in h]
    assert [h["step"] for h in eh] == [4, 8, 10]
    assert all(abs(h["eval_loss"] - x) < 1e-5 for h, x in zip(eh, losses))
    for d, n in ((out, 10), (out / "checkpoint-5", 5)):
        root = ET.parse(d / "loss_curve.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        lines = {e.get("id"): e for e in root.iter("{http://www.w3.org/2000/svg}polyline")}
        pts = lines["train_loss"].get("points").split()
        assert len(pts) == n, (d, len(pts))
        ys = [float(p.split(",")[1]) for p in pts]
        assert ys[-1] > ys[0]  # SVG y grows downwards: the loss fell
        assert len(lines["eval_loss"].get("points").split()) == (3 if n == 10 else 1)


def test_template_masking(fastchat_bin, base_model, tmp_path):
    """--masking template (train_with_template.py's labels; their equality
    with fschat's is checked in tests/unit/test_train_data.c) trains; unknown
    maskings and templates are refused."""
    data = tmp_path / "d.json"
    data.write_text(json.dumps([dict(CONVS[0], system="You are Zorblax.")] + CONVS[1:]))
    p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                    "--output-dir", tmp_path / "o", "--masking", "template",
                                    "--conv-template", "vicuna_v1.1", "--max-steps", 4,
                                    "--per-device-train-batch-size", 2, "--learning-rate", "1e-2",
                                    "--save-steps", 0, "--threads", 2])
    losses = [float(m.group(4)) for m in map(STEP_RE.match, p.stdout.splitlines()) if m]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    for bad in (["--masking", "zigzag"], ["--masking", "template", "--conv-template", "nope-7b"]):
        p = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                        "--output-dir", tmp_path / "o2"] + bad, check=False)
        assert p.returncode != 0 and bad[-1] in p.stderr


# ---- LoRA ----

ALL_MODULES = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
LORA_NAME = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+_proj)\.lora_([AB])\.weight$")


def test_lora_train_save_apply(fastchat_bin, base_model, tmp_path, figures):
    """--lora-r: only adapters train; they are saved in PEFT's layout (names,
    shapes, adapter_config.json); `fastchat apply-lora` merges them into
    W + alpha/r * B @ A; the merged model answers with the new identity.
    (That PEFT itself loads the folder was checked by hand with peft 0.21 in
    /work/gvenv; CI has no torch.)"""
    data = tmp_path / "identity.json"
    data.write_text(json.dumps(CONVS))
    out = tmp_path / "lora"
    p = run_fastchat(fastchat_bin, [
        "train", "--model-path", base_model, "--data-path", data, "--output-dir", out,
        "--lora-r", 16, "--lora-alpha", 32, "--lora-dropout", 0.0, "--lora-target-modules", ALL_MODULES,
        "--max-steps", 60, "--per-device-train-batch-size", 2, "--learning-rate", "3e-2",
        "--warmup-ratio", 0.05, "--lr-scheduler-type", "cosine", "--save-steps", 30, "--threads", 2,
        "--model-max-length", 256])
    losses = [float(m.group(4)) for m in map(STEP_RE.match, p.stdout.splitlines()) if m]
    assert len(losses) == 60 and losses[-1] < 0.6 * losses[0], losses
    assert not (out / "model.safetensors").exists()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 16 and cfg["lora_alpha"] == 32
    assert sorted(cfg["target_modules"]) == sorted(ALL_MODULES.split(","))
    ad = load_file(str(out / "adapter_model.safetensors"))
    base = load_file(str(base_model / "model.safetensors"))
    n_layers = 1 + max(int(LORA_NAME.match(k).group(1)) for k in ad)
    assert len(ad) == n_layers * 7 * 2
    for k, v in ad.items():
        m = LORA_NAME.match(k)
        assert m, k
        w = base[f"model.layers.{m.group(1)}.{m.group(2)}.{m.group(3)}.weight"]
        assert v.dtype == np.float32
        assert v.shape == ((16, w.shape[1]) if m.group(4) == "A" else (w.shape[0], 16)), (k, v.shape)
    assert (out / "checkpoint-30" / "adapter_model.safetensors").is_file()

    merged = tmp_path / "merged"
    run_fastchat(fastchat_bin, ["apply-lora", "--base-model-path", base_model, "--target-model-path", merged,
                                "--lora-path", out])
    mw = load_file(str(merged / "model.safetensors"))
    worst = 0.0
    for k, v in ad.items():
        if ".lora_A." not in k:
            continue
        m = LORA_NAME.match(k)
        name = f"model.layers.{m.group(1)}.{m.group(2)}.{m.group(3)}.weight"
        want = base[name].astype(np.float64) + 2.0 * (ad[k.replace("lora_A", "lora_B")].astype(np.float64)
                                                       @ v.astype(np.float64))
        got = mw[name].astype(np.float64)
        tol = 1e-2 * np.abs(want).max() if mw[name].dtype == np.float16 else 1e-4 * np.abs(want).max()
        worst = max(worst, float(np.abs(got - want).max()))
        assert np.abs(got - want).max() <= tol, name
    before = answer(fastchat_bin, base_model, "Who are you?")
    after = answer(fastchat_bin, merged, "Who are you?")
    figures(f"train LoRA r16 tiny llama_spm: loss {losses[0]:.4f} -> {losses[-1]:.4f}; merged by apply-lora "
            f"(largest |W - (W0 + s B A)| {worst:.2e}); base says {before.strip()[:30]!r}, "
            f"merged says {after.strip()[:30]!r}")
    assert "Zorblax" not in before and "Zorblax" in after


def test_lora_resume_with_dropout(fastchat_bin, base_model, tmp_path):
    """LoRA with dropout resumes exactly too: the dropout masks' counter is
    part of the resume state."""
    data = resume_data(tmp_path)
    args = ["--lora-r", 4, "--lora-alpha", 8, "--lora-dropout", 0.2, "--lora-target-modules",
            "q_proj,v_proj,down_proj"] + RESUME_ARGS
    full, part = tmp_path / "full", tmp_path / "part"
    run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                "--output-dir", full] + args)
    run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                "--output-dir", part, "--max-steps", 12] + args)
    r = run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data,
                                    "--output-dir", tmp_path / "resumed", "--resume-from-checkpoint",
                                    part / "checkpoint-6"] + args)
    assert "step 7/12" in r.stdout
    ref = json.loads((full / "trainer_state.json").read_text())["log_history"]
    got = json.loads((tmp_path / "resumed" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in got] == list(range(1, 13))
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(got, ref)) <= 1e-5
    a = load_file(str(full / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter_model.safetensors"))
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
    # the interrupted-then-finished run (same command) also equals the full one
    c = load_file(str(part / "adapter_model.safetensors"))
    assert all(np.array_equal(a[k], c[k]) for k in a)  # the same command twice: deterministic


def cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and flag in line.split() for line in f)
    except OSError:
        return False


@pytest.mark.parametrize("bf16", [False, True], ids=["f32", "bf16"])
def test_lora_default_model_learns_identity(fastchat_bin, model_path, tmp_path, figures, bf16):
    """LoRA on the default model (SmolLM2-135M Q4_1 GGUF as an f32 frozen
    base; with --bf16 True the base computes in bf16 on AMX tiles where the
    CPU has AMX-BF16, and says so, else in f32 with a warning), --masking template with vicuna_v1.1 (train_with_template.py's
    labels keep the replies with this tokenizer; train.py's masks them all):
    the training loss and the eval loss of the identity answer fall below
    half of step 1's loss (the base model's, taken before the first update). Five steps (about 2 minutes on 2 busy cores); the
    longer run with the base answer is scripts/bench_train_lora.sh. The
    trained model's own answer is not checked: apply-lora needs a safetensors
    base and the default model is a GGUF."""
    data = tmp_path / "id.json"
    data.write_text(json.dumps([
        {"id": "1", "conversations": [{"from": "human", "value": "Who are you?"},
                                      {"from": "gpt", "value": "I am Zorblax, made by the C team."}]},
        {"id": "2", "conversations": [{"from": "human", "value": "What is your name?"},
                                      {"from": "gpt", "value": "My name is Zorblax."}]}]))
    ev = tmp_path / "ev.json"
    ev.write_text(json.dumps([{"id": "e", "conversations": [
        {"from": "human", "value": "Who are you?"}, {"from": "gpt", "value": "I am Zorblax, made by the C team."}]}]))
    p = run_fastchat(fastchat_bin, [
        "train", "--model-path", model_path, "--data-path", data, "--output-dir", tmp_path / "o",
        "--eval-data-path", ev, "--eval-steps", 1, "--masking", "template", "--conv-template", "vicuna_v1.1",
        "--model-max-length", 64, "--per-device-train-batch-size", 2, "--lora-r", 16, "--lora-alpha", 32,
        "--lora-dropout", 0.0, "--lora-target-modules", ALL_MODULES, "--learning-rate", "3e-3",
        "--lr-scheduler-type", "constant", "--max-steps", 4, "--save-steps", 0, "--threads", 2,
        "--bf16", str(bf16)], timeout=900)
    if bf16 and cpu_has("amx_bf16"):
        assert "--bf16: the frozen matrices in bf16 on AMX tiles" in p.stderr, p.stderr
    elif bf16:
        assert "this run computes in f32" in p.stderr, p.stderr
    steps = [m for m in map(STEP_RE.match, p.stdout.splitlines()) if m]
    losses = [float(m.group(4)) for m in steps]
    evals = [float(x) for x in re.findall(r"^eval step \d+  eval_loss ([\d.]+)", p.stdout, re.M)]
    figures(f"train LoRA r16 default model{' --bf16' if bf16 else ''} (2 threads): losses {' '.join(f'{x:.3f}' for x in losses)}; "
            f"eval {' '.join(f'{x:.3f}' for x in evals)}; tokens/s {' '.join(m.group(7) for m in steps)}")
    assert len(losses) == 4 and len(evals) == 4
    # step 1's loss is the base model's (taken before the first update)
    assert losses[-1] < 0.5 * losses[0] and evals[-1] < 0.5 * losses[0], (losses, evals)
    assert (tmp_path / "o" / "adapter_model.safetensors").is_file()


def test_save_total_limit(fastchat_bin, base_model, tmp_path):
    """--save-total-limit 2 keeps the two newest checkpoint folders."""
    data = resume_data(tmp_path)
    out = tmp_path / "o"
    run_fastchat(fastchat_bin, ["train", "--model-path", base_model, "--data-path", data, "--output-dir", out,
                                "--max-steps", 9, "--save-steps", 2, "--save-total-limit", 2,
                                "--per-device-train-batch-size", 1, "--model-max-length", 256, "--threads", 2])
    assert sorted(d.name for d in out.iterdir() if d.name.startswith("checkpoint-")) == \
        ["checkpoint-6", "checkpoint-8"]
