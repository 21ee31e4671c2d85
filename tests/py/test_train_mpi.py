"""test_train_mpi.py: `mpirun -np 2 fastchat train` (data parallelism with a
ZeRO-sharded AdamW, src/train/dist.h) against 1-process runs, on the real
binary and OpenMPI's real mpirun (2 processes on this machine).

Checked:
- a 2-process run (1 example per device x 2 accumulation x 2 processes,
  launched with a hostfile: localhost slots=2)
  equals a 1-process run with the same global batch (2 per device x 2
  accumulation): losses, gradient norms and final weights within 1e-5, on the
  tiny golden Llama of test_train.py (tests/data/tiny_tok/llama_spm);
- the 2-process checkpoint's optimizer.safetensors (rank 0 gathers the
  shards) equals the 1-process one, and resuming it with 1 process and with 2
  processes finishes as the uninterrupted run;
- LoRA over 2 processes equals LoRA on 1;
- peak RSS per process at np=1 and np=2 on a 14M-parameter random Llama
  (made here with numpy), where AdamW's state is big enough to see: printed
  as a figure; the optimizer state per process halves (asserted from the
  trainer's own line), and each process of 2 peaks lower than the single one;
  the two runs' weights agree too (the collectives run in 14 chunks there).

About the tolerance: the ranks' gradients are summed in f32 in another order
than one process sums them, so the runs differ by rounding; AdamW divides by
sqrt(v) + eps, so an element whose gradient is cancellation noise (|g| near
eps) moves by up to about lr * noise / eps a step. The learning rate here
(2e-3) keeps 8 steps of that under 1e-5.
"""
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import DATA, sanitized
from test_train import CONVS as ID_CONVS, STEP_RE

RSS_RE = re.compile(r"^peak RSS per process \(MiB, (\d+) process(?:es)?\): ([\d. ]+)$", re.M)
OPT_RE = re.compile(r"AdamW state ([\d.]+) MiB per process \(of ([\d.]+) MiB\)")

CONVS = ID_CONVS + [  # test_train.py's identity pair, and three more
    {"id": "c", "conversations": [
        {"from": "human", "value": "Say hello."}, {"from": "gpt", "value": "Hello from Zorblax!"}]},
    {"id": "d", "system": "You are a terse assistant.", "conversations": [
        {"from": "human", "value": "Count to five, please, and then tell me your name."},
        {"from": "gpt", "value": "One, two, three, four, five. I am Zorblax."}]},
    {"id": "e", "conversations": [
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello! I am Zorblax."}]},
]

COMMON = ["--model-max-length", 128, "--learning-rate", "2e-3", "--weight-decay", 0.01,
          "--warmup-steps", 2, "--lr-scheduler-type", "cosine", "--max-grad-norm", 1.0,
          "--num-train-epochs", 100, "--max-steps", 8, "--save-steps", 4, "--seed", 5, "--threads", 1]


def mpirun_cmd(n, hostfile=None):
    mpirun = shutil.which("mpirun")
    assert mpirun, "mpirun not found: scripts/setup.sh installs openmpi-bin"
    cmd = [mpirun, "-np", str(n), "--bind-to", "none"]
    cmd += ["--hostfile", str(hostfile)] if hostfile else ["--oversubscribe"]
    if os.geteuid() == 0:  # OpenMPI refuses root without this
        cmd.append("--allow-run-as-root")
    if sanitized():  # the ranks get the sanitizer options (report paths) of this step
        cmd += ["-x", "ASAN_OPTIONS", "-x", "UBSAN_OPTIONS"]
    return cmd


def mpi_env():
    """Under a sanitized build, LeakSanitizer would report OpenMPI's own
    allocations that MPI_Finalize leaves behind (in libmpi and its plugins,
    whose stacks it cannot name once they are unloaded): the MPI runs check
    memory errors and UB, not leaks (the 1-process runs of the same code do)."""
    env = dict(os.environ)
    if sanitized():
        env["ASAN_OPTIONS"] = ":".join(x for x in (env.get("ASAN_OPTIONS"), "detect_leaks=0") if x)
    return env


def train(fastchat_bin, args, np_=1, timeout=300, hostfile=None):
    cmd = ([] if np_ == 1 else mpirun_cmd(np_, hostfile)) + [str(fastchat_bin), "train"] + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * (10 if sanitized() else 1),
                       env=mpi_env() if np_ > 1 else None)
    assert p.returncode == 0, f"exit {p.returncode}: {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    if np_ > 1:
        assert f"data parallel over {np_} processes" in p.stdout, p.stdout[-2000:]
    return p


def steps_of(p):
    return [m for m in map(STEP_RE.match, p.stdout.splitlines()) if m]


def history(out):
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def max_diff(a, b):
    assert sorted(a) == sorted(b)
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_mpi")
    base = root / "base"
    base.mkdir()
    for d in (DATA / "tiny_tok" / "llama_spm", DATA / "tokenizer" / "spm_legacy"):
        for f in d.iterdir():
            shutil.copy(f, base)
    data = root / "d.json"
    data.write_text(json.dumps(CONVS * 2))  # 10 examples: epochs turn over inside the run
    return root, base, data


@pytest.fixture(scope="module")
def runs(fastchat_bin, work):
    root, base, data = work
    args = ["--model-path", base, "--data-path", data, "--gradient-accumulation-steps", 2] + COMMON
    one = root / "np1"
    two = root / "np2"
    p1 = train(fastchat_bin, args + ["--output-dir", one, "--per-device-train-batch-size", 2])
    # through a hostfile, as across machines (here one host with 2 slots)
    hosts = root / "hosts"
    hosts.write_text("localhost slots=2\n")
    p2 = train(fastchat_bin, args + ["--output-dir", two, "--per-device-train-batch-size", 1], np_=2,
               hostfile=hosts)
    return args, one, two, p1, p2


def test_two_processes_equal_one(runs, figures):
    _, one, two, p1, p2 = runs
    s1, s2 = steps_of(p1), steps_of(p2)
    assert len(s1) == len(s2) == 8, p2.stdout[-2000:]
    # the same epochs: 10 examples / global micro-batch of 2 -> 5 micro-batches an epoch
    assert [m.group(3) for m in s1] == [m.group(3) for m in s2]
    h1, h2 = history(one), history(two)
    assert [h["step"] for h in h2] == list(range(1, 9))
    dl = max(abs(a["loss"] - b["loss"]) for a, b in zip(h1, h2))
    dg = max(abs(a["grad_norm"] - b["grad_norm"]) for a, b in zip(h1, h2))
    dw = max_diff(load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors")))
    o1 = load_file(str(one / "checkpoint-4" / "optimizer.safetensors"))
    o2 = load_file(str(two / "checkpoint-4" / "optimizer.safetensors"))
    do = max_diff(o1, o2)
    scale = max(float(np.abs(v).max()) for v in o1.values())
    figures(f"train MPI np=2 vs np=1 (tiny llama, global batch 4 = 1 x 2 accum x 2 procs): max loss diff "
            f"{dl:.1e}, grad_norm diff {dg:.1e}, final weight diff {dw:.1e}, AdamW state diff at step 4 "
            f"{do:.1e} (largest moment {scale:.1e})")
    assert h1[-1]["loss"] < h1[0]["loss"]
    assert dl <= 1e-5 and dg <= 1e-5 and dw <= 1e-5, (dl, dg, dw)
    assert do <= 1e-5 * max(1.0, scale), do
    # rank 0 alone prints and writes: one progress line per step, one log
    assert p2.stdout.count("step 8/8") == 1 and "peak RSS per process (MiB, 2 processes)" in p2.stdout
    log = (two / "train_log.txt").read_text()
    assert len([l for l in log.splitlines() if STEP_RE.match(l)]) == 8
    assert not any(d.name.endswith(".tmp") for d in two.iterdir())


@pytest.mark.parametrize("np_", [1, 2])
def test_resume_sharded_checkpoint(fastchat_bin, runs, work, np_):
    """The 2-process checkpoint (shards gathered into one optimizer file)
    resumes with 1 or 2 processes and ends as the uninterrupted run."""
    args, one, two, _, _ = runs
    root = work[0]
    out = root / f"resumed{np_}"
    b = 2 if np_ == 1 else 1
    p = train(fastchat_bin, args + ["--output-dir", out, "--per-device-train-batch-size", b,
                                    "--resume-from-checkpoint", two / "checkpoint-4"], np_=np_)
    s = steps_of(p)
    assert [int(m.group(1)) for m in s] == [5, 6, 7, 8], p.stdout[-1500:]
    h, ref = history(out), history(one)
    assert [x["step"] for x in h] == list(range(1, 9))
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(h, ref)) <= 1e-5
    assert max_diff(load_file(str(out / "model.safetensors")), load_file(str(one / "model.safetensors"))) <= 1e-5


def test_lora_two_processes(fastchat_bin, work):
    root, base, data = work
    args = ["--model-path", base, "--data-path", data, "--lora-r", 4, "--lora-alpha", 8, "--lora-dropout", 0.0,
            "--lora-target-modules", "q_proj,v_proj,down_proj", "--gradient-accumulation-steps", 1] + COMMON
    p1 = train(fastchat_bin, args + ["--output-dir", root / "l1", "--per-device-train-batch-size", 4])
    p2 = train(fastchat_bin, args + ["--output-dir", root / "l2", "--per-device-train-batch-size", 2], np_=2)
    h1, h2 = history(root / "l1"), history(root / "l2")
    assert len(h1) == len(h2) == 8
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(h1, h2)) <= 1e-5
    a = load_file(str(root / "l1" / "adapter_model.safetensors"))
    b = load_file(str(root / "l2" / "adapter_model.safetensors"))
    assert max_diff(a, b) <= 1e-5
    assert (root / "l2" / "checkpoint-4" / "optimizer.safetensors").is_file()


def medium_model(d, vocab_src):
    """A random 15M-parameter Llama (hidden 512, 4 layers) with the tiny
    model's tokenizer: big enough that AdamW's state shows in the RSS."""
    d.mkdir()
    for f in vocab_src.iterdir():
        shutil.copy(f, d)
    cfg = json.loads((DATA / "tiny_tok" / "llama_spm" / "config.json").read_text())
    C, FF, L, V, NH, NKV, HS = 512, 1408, 4, cfg["vocab_size"], 8, 4, 64
    cfg.update(hidden_size=C, intermediate_size=FF, num_hidden_layers=L, num_attention_heads=NH,
               num_key_value_heads=NKV, head_dim=HS, dtype="float32", tie_word_embeddings=False)
    (d / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    w = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,), "lm_head.weight": (V, C)}
    for i in range(L):
        p = f"model.layers.{i}."
        w.update({p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                  p + "self_attn.q_proj.weight": (NH * HS, C), p + "self_attn.k_proj.weight": (NKV * HS, C),
                  p + "self_attn.v_proj.weight": (NKV * HS, C), p + "self_attn.o_proj.weight": (C, NH * HS),
                  p + "mlp.gate_proj.weight": (FF, C), p + "mlp.up_proj.weight": (FF, C),
                  p + "mlp.down_proj.weight": (C, FF)})
    t = {k: (np.ones(s, np.float32) if len(s) == 1 else (rng.standard_normal(s) * 0.02).astype(np.float32))
         for k, s in w.items()}
    save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})
    return sum(v.size for v in t.values())


def test_peak_rss_per_process(fastchat_bin, work, figures):
    root, _, data = work
    model = root / "medium"
    n_params = medium_model(model, DATA / "tokenizer" / "spm_legacy")
    args = ["--model-path", model, "--data-path", data, "--model-max-length", 128, "--learning-rate", "1e-3",
            "--max-steps", 2, "--save-steps", 0, "--threads", 1, "--gradient-accumulation-steps", 1]
    rss, opt = {}, {}
    for n, b in ((1, 2), (2, 1)):
        p = train(fastchat_bin, args + ["--output-dir", root / f"rss{n}", "--per-device-train-batch-size", b],
                  np_=n)
        m = RSS_RE.search(p.stdout)
        assert m and int(m.group(1)) == n, p.stdout[-1000:]
        rss[n] = [float(x) for x in m.group(2).split()]
        assert len(rss[n]) == n
        if n > 1:
            o = OPT_RE.search(p.stdout)
            opt[n] = (float(o.group(1)), float(o.group(2)))
    full = 2 * n_params * 4 / 2**20
    figures(f"train MPI peak RSS per process, {n_params / 1e6:.1f}M-param random llama (f32 params + grads + "
            f"AdamW m, v = {4 * n_params * 4 / 2**20:.0f} MiB at np=1): np=1 {rss[1][0]:.0f} MiB; np=2 "
            f"{' / '.join(f'{x:.0f}' for x in rss[2])} MiB (AdamW state {opt[2][0]:.0f} of {full:.0f} MiB "
            f"per process)")
    assert abs(opt[2][1] - full) < 0.5 and abs(opt[2][0] - full / 2) < 0.5, opt
    # each of the 2 processes holds half the moments: it peaks lower than the lone one
    # (by about full / 2, less MPI's own buffers); not under ASan, whose quarantine
    # of freed blocks (MPI's many included) and shadow memory make the RSS its own
    if not sanitized():
        assert max(rss[2]) < rss[1][0], rss
    # 13.8M floats: the collectives ran in 14 chunks (dist.c CHUNK); the runs still agree
    h1, h2 = history(root / "rss1"), history(root / "rss2")
    assert all(h["loss"] is not None for h in h1 + h2), h2  # every step trained
    assert max(abs(a["loss"] - b["loss"]) for a, b in zip(h1, h2)) <= 1e-5
    # the weights: here a random model trained at lr 1e-3, where the fast
    # path's GEMMs sum each weight gradient over 256 tokens in one process and
    # over 2 x 128 then the all-reduce in two; AdamW's g / sqrt(v) magnifies
    # that rounding for gradients near its epsilon (4.9e-5 seen). The 1e-5
    # equality of weights is test_two_processes_equal_one's, on the golden model.
    d = max_diff(load_file(str(root / "rss1" / "model.safetensors")),
                 load_file(str(root / "rss2" / "model.safetensors")))
    figures(f"train MPI 13.8M random llama, np=2 vs np=1 after 2 AdamW steps at lr 1e-3: max weight diff {d:.1e}")
    assert d <= 2e-4


def test_lora_dropout_resume_two_processes(fastchat_bin, work):
    """LoRA with dropout over 2 processes (each rank draws its own masks from
    the shared counter) resumes from its checkpoint exactly as it ran."""
    root, base, data = work
    args = ["--model-path", base, "--data-path", data, "--lora-r", 4, "--lora-alpha", 8, "--lora-dropout", 0.2,
            "--lora-target-modules", "q_proj,v_proj", "--gradient-accumulation-steps", 2,
            "--per-device-train-batch-size", 1] + COMMON
    full = root / "ld_full"
    train(fastchat_bin, args + ["--output-dir", full], np_=2)
    res = root / "ld_res"
    p = train(fastchat_bin, args + ["--output-dir", res, "--resume-from-checkpoint", full / "checkpoint-4"], np_=2)
    assert [int(m.group(1)) for m in steps_of(p)] == [5, 6, 7, 8]
    h, ref = history(res), history(full)
    assert max(abs(x["loss"] - y["loss"]) for x, y in zip(h, ref)) <= 1e-6
    assert max_diff(load_file(str(res / "adapter_model.safetensors")),
                    load_file(str(full / "adapter_model.safetensors"))) <= 1e-6
