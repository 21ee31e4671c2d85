"""PyTorch .bin checkpoints end to end: a Hugging Face folder holding
pytorch_model.bin (or shards + pytorch_model.bin.index.json) and no
safetensors loads in `fastchat logits / generate / serve`.

Fixtures in tests/data/torch_bin/ are written by torch.save
(tools/golden/make_torch_bin_fixtures.py):
- <dtype>_bin vs <dtype>_st: the same weights as .bin and as safetensors. Our
  logits from the .bin folder must be byte-identical to those from the
  safetensors folder (the loader sees the same tensors), and within 1e-4 of
  the logits transformers computes from the .bin folder (reference.npz,
  exact mode, as tests/py/test_tiny_logits.py does).
- bf16_sharded: five shards with an index; same logits as bf16_st.
- f16_legacy: the torch < 1.6 format (torch.save with
  _use_new_zipfile_serialization=False); same logits as f16_st.
- llama_spm_bin: the tiny_tok llama_spm model as .bin, served with the
  SentencePiece tokenizer files of tests/data/tokenizer/spm: /v1/completions
  (greedy) gives the same text as the safetensors folder.
- misc/evil_*.bin: pickles that call os.system / builtins.eval, and a tensor
  subclass: loading fails with an error naming the refused global, and the
  file the payload would create never appears.
- A truncated or corrupted .bin fails with a clear one-line error.
- `fastchat quantize` of a .bin folder writes the same GGUF bytes as of the
  safetensors folder.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import DATA, fastchat_generate, fastchat_logits, run_fastchat

TB = DATA / "torch_bin"
EXACT_TOL = 1e-4
MARKER = Path("/tmp/fastchat_torch_bin_pwned")


def reference(name):
    z = np.load(TB / f"{name}_bin" / "reference.npz")
    return z["prompt"], z["logits"]


@pytest.mark.parametrize("name,st", [("f32", "f32_st"), ("f16", "f16_st"), ("bf16", "bf16_st"),
                                     ("bf16_sharded", "bf16_st"), ("f16_legacy", "f16_st")])
def test_bin_logits_equal_safetensors_and_transformers(name, st, fastchat_bin, tmp_path, figures):
    ref_name = name.split("_")[0]
    prompt, ref = reference(ref_name)
    folder = TB / (name if "_" in name else f"{name}_bin")
    assert not list(folder.glob("*.safetensors")), "the .bin folder must not hold safetensors"
    ours = fastchat_logits(fastchat_bin, folder, prompt, tmp_path, exact=True)
    theirs = fastchat_logits(fastchat_bin, TB / st, prompt, tmp_path, exact=True)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    assert ours.tobytes() == theirs.tobytes(), "logits from .bin differ from the same weights in safetensors"
    d = float(np.abs(ours - ref).max())
    figures(f"torch_bin/{name:13s} exact max|d| vs transformers {d:.2e} (tol {EXACT_TOL:g}); == safetensors")
    assert d <= EXACT_TOL, f"max |d| {d:.3e} against transformers' logits from the same .bin"
    # the fast path reads the same views
    fast_bin = fastchat_logits(fastchat_bin, folder, prompt, tmp_path, exact=False, threads=1)
    fast_st = fastchat_logits(fastchat_bin, TB / st, prompt, tmp_path, exact=False, threads=1)
    assert fast_bin.tobytes() == fast_st.tobytes()


def test_bin_generate_equals_safetensors(fastchat_bin):
    prompt, _ = reference("f16")
    a = fastchat_generate(fastchat_bin, TB / "f16_bin", prompt[:8], 12, exact=False)
    b = fastchat_generate(fastchat_bin, TB / "f16_st", prompt[:8], 12, exact=False)
    assert a == b and len(a) == 12, (a, b)


def spm_folder(dst, weights):
    """A Vicuna-shaped folder: weights + tokenizer.model + tokenizer_config.json."""
    dst.mkdir()
    for f in weights.iterdir():
        if f.suffix in (".bin", ".json", ".safetensors"):
            shutil.copy(f, dst / f.name)
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(DATA / "tokenizer" / "spm" / f, dst / f)
    return dst


def test_serve_bin_folder(fastchat_bin, tmp_path, figures):
    from test_controller import Proc, free_port, wait_until

    out = {}
    for kind, weights in (("bin", TB / "llama_spm_bin"), ("st", DATA / "tiny_tok" / "llama_spm")):
        folder = spm_folder(tmp_path / kind, weights)
        ports = [free_port() for _ in range(3)]
        p = Proc([fastchat_bin, "serve", "--model-path", folder, "--model-names", "tiny",
                  "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2]],
                 tmp_path / f"serve-{kind}.log")
        try:
            api = f"http://127.0.0.1:{ports[2]}"
            wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120,
                       f"fastchat serve of the {kind} folder", [p])
            r = requests.post(api + "/v1/completions", timeout=60,
                              json={"model": "tiny", "prompt": "Once upon a time", "max_tokens": 12,
                                    "temperature": 0})
            assert r.status_code == 200, r.text
            out[kind] = r.json()["choices"][0]["text"]
            assert p.alive(), p.output()[-2000:]
        finally:
            p.stop()
    figures(f"torch_bin: served .bin folder completion {out['bin']!r}")
    assert out["bin"] == out["st"] and out["bin"], out


def folder_with(tmp_path, data):
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    shutil.copy(TB / "f32_bin" / "config.json", d / "config.json")
    (d / "pytorch_model.bin").write_bytes(data)
    return d


def load_error(fastchat_bin, folder, tmp_path):
    p = run_fastchat(fastchat_bin, ["logits", "--model-path", folder, "--prompt-ids", "1,2,3",
                                    "--out", tmp_path / "x.f32"], timeout=60, check=False)
    assert p.returncode != 0, "loading should have failed"
    return p.stderr


@pytest.mark.parametrize("file,glob", [("evil_system.bin", "'posix.system'"),
                                       ("evil_eval.bin", "'__builtin__.eval'"),
                                       ("subclass.bin", "'torch._tensor._rebuild_from_type_v2'")])
def test_malicious_pickle_refused(file, glob, fastchat_bin, tmp_path):
    MARKER.unlink(missing_ok=True)
    err = load_error(fastchat_bin, folder_with(tmp_path, (TB / "misc" / file).read_bytes()), tmp_path)
    assert f"refusing pickle global {glob}" in err and "never executes pickle code" in err, err
    assert not MARKER.exists(), "the pickle's payload ran"
    assert "Traceback" not in err and "AddressSanitizer" not in err


def test_noncontiguous_refused(fastchat_bin, tmp_path):
    err = load_error(fastchat_bin, folder_with(tmp_path, (TB / "misc" / "noncontig.bin").read_bytes()), tmp_path)
    assert "not contiguous" in err, err


def test_truncated_and_corrupt_refused(fastchat_bin, tmp_path):
    data = (TB / "f32_bin" / "pytorch_model.bin").read_bytes()
    for cut, want in ((len(data) // 2, "end-of-central-directory"), (len(data) - 10, "end-of-central-directory"),
                      (0, "too short")):
        err = load_error(fastchat_bin, folder_with(tmp_path, data[:cut]), tmp_path)
        assert want in err and "pytorch_model.bin" in err, (cut, err)
    # the central directory moved past the end of the file
    eocd = data.rfind(b"PK\x05\x06")
    bad = bytearray(data)
    bad[eocd + 16:eocd + 20] = (len(data) + 100).to_bytes(4, "little")
    err = load_error(fastchat_bin, folder_with(tmp_path, bytes(bad)), tmp_path)
    assert "central directory" in err and "outside the file" in err, err
    # the pickle cut short inside the archive: the data.pkl entry's opcodes garbled
    pkl = data.find(b"data.pkl")
    start = data.find(b"\x80\x02", pkl)
    bad = bytearray(data)
    bad[start + 2:start + 40] = b"\xff" * 38
    err = load_error(fastchat_bin, folder_with(tmp_path, bytes(bad)), tmp_path)
    assert "data.pkl" in err and "opcode" in err, err


@pytest.mark.parametrize("name", ["f16_bin", "bf16_sharded"])
def test_quantize_bin_folder_equals_safetensors(name, fastchat_bin, tmp_path):
    """`fastchat quantize` reads the .bin folder through the same loader: the
    GGUF it writes is byte-identical to the one from the safetensors folder."""
    st = "f16_st" if name.startswith("f16") else "bf16_st"
    for src, out in ((TB / name, tmp_path / "a.gguf"), (TB / st, tmp_path / "b.gguf")):
        run_fastchat(fastchat_bin, ["quantize", "--model-path", src, "--type", "q8_0", "--out", out], timeout=120)
    assert (tmp_path / "a.gguf").read_bytes() == (tmp_path / "b.gguf").read_bytes()
