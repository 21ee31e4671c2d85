"""Black-box tests of the engine's command line: inspect, generate, logits,
quantize, and the errors a user sees for bad input (corrupt model files,
bad flags). The numbers themselves are checked against transformers in
test_tiny_logits.py and test_smollm2.py; the GGUF written by `quantize` is
read back with the `gguf` package (llama.cpp's own Python reader)."""
import json
import os
import subprocess

import numpy as np
import pytest

BIN = os.environ.get("FASTCHAT_BIN", "build/fastchat")
MODEL = os.environ.get("FASTCHAT_MODEL")


def run(*args, check=True, timeout=300):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} failed ({p.returncode}):\n{p.stderr}")
    return p


def test_inspect_default_model():
    out = run("inspect", "--model-path", MODEL).stdout
    assert "architecture:   llama" in out
    assert "vocab (V):      49152" in out
    assert "layers (L):     30" in out
    assert "heads (NH/NKV): 9 / 3 (head size 64)" in out
    assert "q4_1" in out
    assert "embeddings:     tied" in out


def test_generate_is_deterministic_and_prints_ids():
    args = ("generate", "--model-path", MODEL, "--prompt-ids", "1,9690,198,2683,359,253",
            "--max-new-tokens", "8", "--print-ids", "--ignore-eos")
    a = json.loads(run(*args).stdout.strip().splitlines()[-1])
    b = json.loads(run(*args, "--threads", "1").stdout.strip().splitlines()[-1])
    assert len(a) == 8 and all(isinstance(x, int) and 0 <= x < 49152 for x in a)
    assert a == b


def test_generate_verbose_reports_speed():
    p = run("generate", "--model-path", MODEL, "--prompt-ids", "1,2,3", "--max-new-tokens", "4",
            "--ignore-eos", "--verbose")
    assert "prefill:" in p.stderr and "decode:" in p.stderr and "tokens/s" in p.stderr


def test_logits_file_shape(tmp_path):
    out = tmp_path / "l.f32"
    run("logits", "--model-path", MODEL, "--prompt-ids", "1,2,3,4,5", "--out", out)
    x = np.fromfile(out, dtype=np.float32)
    assert x.size == 5 * 49152 and np.isfinite(x).all()


def test_packed_weights_match_the_file_layout(tmp_path):
    """The row-interleaved copies made at load (the default) and the file's
    own layout (FASTCHAT_NO_REPACK=1) run different kernels on the same
    integer products. Their f32 sums differ in order only, but a 16-bit
    activation code that rounds the other way in one layer spreads through
    the next ones, so the two are compared with the exact (f32) result,
    each as close to it as the fast mode is (test_smollm2.py), and with
    each other's top-1 token, for the shipped Q4_1 model and its Q8_0 /
    Q4_0 requantizations."""
    ids = "1,9690,198,2683,359,253,28,1041,5248,30,216,2"
    for qtype in ("q4_1", "q8_0", "q4_0"):
        model = MODEL
        if qtype != "q4_1":
            model = tmp_path / f"m-{qtype}.gguf"
            run("quantize", "--model-path", MODEL, "--type", qtype, "--out", model)
        got = {}
        for mode, extra, env_repack in (("packed", (), "0"), ("file", (), "1"), ("exact", ("--exact",), "1")):
            out = tmp_path / f"l-{qtype}-{mode}.f32"
            env = dict(os.environ, FASTCHAT_NO_REPACK=env_repack)
            p = subprocess.run([BIN, "logits", "--model-path", str(model), "--prompt-ids", ids, "--out", str(out), *extra],
                               capture_output=True, text=True, timeout=300, env=env)
            assert p.returncode == 0, p.stderr
            got[mode] = np.fromfile(out, dtype=np.float32).reshape(12, -1)
        ex = got["exact"]
        top2 = np.sort(ex, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 0.1  # positions without a near-tie
        for mode in ("packed", "file"):
            d = got[mode] - ex
            assert np.abs(d).max() < 0.1 and np.sqrt((d ** 2).mean()) < 0.02, \
                f"{qtype} {mode}: max|d| {np.abs(d).max()}, rms {np.sqrt((d ** 2).mean())} vs exact"
        assert (got["packed"].argmax(1) == got["file"].argmax(1))[clear].all(), qtype


@pytest.mark.parametrize("cut", [0, 3, 24, 1000, 50_000, 2_000_000])
def test_truncated_gguf_is_a_clear_error(tmp_path, cut):
    bad = tmp_path / "trunc.gguf"
    with open(MODEL, "rb") as f:
        bad.write_bytes(f.read(cut))
    p = run("inspect", "--model-path", bad, check=False)
    assert p.returncode == 1
    assert "error:" in p.stderr and "trunc.gguf" in p.stderr
    assert "Sanitizer" not in p.stderr


def test_missing_model_and_bad_flags(tmp_path):
    p = run("generate", "--model-path", tmp_path / "nope.gguf", "--prompt-ids", "1", check=False)
    assert p.returncode == 1 and "nope.gguf" in p.stderr
    p = run("generate", "--model-path", MODEL, "--prompt-ids", "1,x", check=False)
    assert p.returncode == 1 and "bad token id" in p.stderr
    p = run("generate", "--model-path", MODEL, "--bogus", check=False)
    assert p.returncode == 2 and "unknown option" in p.stderr  # a bad command line: status 2
    p = run("nonsense", check=False)
    assert p.returncode == 1
    # an out-of-vocabulary id is refused, not read out of bounds
    p = run("generate", "--model-path", MODEL, "--prompt-ids", "1,49152", check=False)
    assert p.returncode == 1 and "vocabulary" in p.stderr


def test_folder_without_config_is_a_clear_error(tmp_path):
    p = run("inspect", "--model-path", tmp_path, check=False)
    assert p.returncode == 1 and "config.json" in p.stderr


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0", "f16"])
def test_quantize_roundtrip_readable_by_gguf_package(tmp_path, qtype):
    import gguf
    out = tmp_path / f"m-{qtype}.gguf"
    run("quantize", "--model-path", MODEL, "--type", qtype, "--out", out)
    r = gguf.GGUFReader(str(out))
    names = {t.name: t for t in r.tensors}
    assert names["blk.0.attn_q.weight"].tensor_type.name.lower() == qtype
    assert names["blk.0.attn_norm.weight"].tensor_type.name == "F32"
    # metadata, tokenizer and chat template carried over
    assert "tokenizer.ggml.tokens" in r.fields and "tokenizer.chat_template" in r.fields
    ftype = int(r.fields["general.file_type"].parts[-1][0])
    assert ftype == {"q8_0": 7, "q4_0": 2, "f16": 1}[qtype]
    # and we load what we wrote; greedy tokens stay close to the original
    p = run("inspect", "--model-path", out)
    assert qtype in p.stdout
    ids = lambda m: json.loads(run("generate", "--model-path", m, "--prompt-ids", "1,9690,198,2683,359,253",
                                   "--max-new-tokens", "4", "--print-ids", "--ignore-eos").stdout.splitlines()[-1])
    if qtype == "f16":  # f16 keeps the q4_1 values to 2^-11 relative: same greedy tokens
        assert ids(out) == ids(MODEL)
