"""`fastchat quantize` on a T5 GGUF (issue 14: quantize for each family).

The source is the tiny FastChat-T5 GGUF of test_t5_gguf_tokenizer.py
(llama.cpp's converter metadata + tests/data/t5_chat/model's f32 weights).
For each type, the written file is checked tensor by tensor against the rules
of llama.cpp's llama-quantize and against the `gguf` package's reference
quantizer (gguf.quants, llama.cpp's reference rounding in numpy):
  - vectors (norms) and the relative attention biases stay f32, as stored;
  - the untied output head takes q8_0 for a quantized type (llama.cpp gives
    the output matrix q6_k, or q8_0 when the row length is not a multiple of
    256, as here: 32);
  - every other matrix takes the type, its bytes equal to gguf.quants.quantize
    of the f32 source (f16: numpy's float16 rounding);
  - every metadata key is copied, general.file_type set to llama.cpp's ftype.
The quantized files run (`fastchat generate`): f16 gives the f32 file's
greedy ids; the quantized ones' agreement is printed. (The tensors of a
Flan-T5-small-shaped file were also compared with llama-quantize's output by
hand: equal bytes for q8_0, q4_0, q4_1, q5_0 and f16.) A T5 folder is refused
with one line that says how to get a GGUF.
"""
import subprocess

import numpy as np
import pytest

from test_t5_gguf_tokenizer import DATA, build_gguf

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType
FTYPE = {"q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "f16": 1}
GEN = ["generate", "--prompt", "Translate to German: the house is small.", "--max-new-tokens", "12",
       "--ignore-eos", "--threads", "1", "--print-ids", "--model-path"]


def tensors(path):
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def fields(path):
    r = gguf.GGUFReader(str(path))
    out = {}
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        v = f.contents()
        out[f.name] = v
    return out


def ids(fastchat_bin, model, *extra):
    r = subprocess.run([fastchat_bin] + GEN + [str(model)] + list(extra), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [int(x) for x in r.stdout.strip().strip("[]").split(",")]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("t5q")
    return build_gguf(d / "fastchat-t5-tiny.gguf")


@pytest.mark.parametrize("qtype", sorted(FTYPE))
def test_t5_quantize_matches_llama_rules(fastchat_bin, src, tmp_path, qtype, figures):
    out = tmp_path / f"t5-{qtype}.gguf"
    r = subprocess.run([fastchat_bin, "quantize", "--model-path", str(src), "--type", qtype, "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    a, b = tensors(src), tensors(out)
    assert set(a) == set(b)
    want_type = getattr(Q, qtype.upper())
    n_quant = 0
    for name, t in a.items():
        q = b[name]
        assert list(q.shape) == list(t.shape), name
        f32 = np.asarray(t.data, dtype=np.float32).reshape(t.data.shape)
        if len(t.shape) < 2 or "attn_rel_b" in name:
            assert q.tensor_type == Q.F32, name
            assert np.array_equal(np.asarray(q.data), f32), name
            continue
        expect = Q.Q8_0 if (name == "output.weight" and qtype != "f16") else want_type
        assert q.tensor_type == expect, (name, q.tensor_type, expect)
        got = np.asarray(q.data).view(np.uint8).ravel()
        if expect == Q.F16:
            ref = f32.astype(np.float16).view(np.uint8).ravel()
        else:
            ref = gguf.quants.quantize(f32, expect).view(np.uint8).ravel()
        assert np.array_equal(got, ref), f"{name}: {qtype} bytes differ from gguf.quants"
        n_quant += 1
    fa, fb = fields(src), fields(out)
    assert fb.pop("general.file_type") == FTYPE[qtype]
    fa.pop("general.file_type", None)
    fb.pop("general.quantization_version", None)
    fa.pop("general.quantization_version", None)
    assert fa.keys() == fb.keys()
    for k in fa:
        va, vb = fa[k], fb[k]
        same = np.array_equal(np.asarray(va), np.asarray(vb)) if isinstance(va, list) else va == vb
        assert same, k
    base = ids(fastchat_bin, src, "--exact")
    got = ids(fastchat_bin, out, "--exact")
    assert all(0 <= i < 1103 for i in got)
    if qtype == "f16":
        assert got == base
    agree = sum(x == y for x, y in zip(got, base))
    figures(f"t5 quantize {qtype}: {n_quant} matrices equal to gguf.quants; greedy ids equal to the f32 file's: "
            f"{agree}/{len(base)}")


def test_t5_folder_refused(fastchat_bin, tmp_path):
    r = subprocess.run([fastchat_bin, "quantize", "--model-path", str(DATA / "t5_chat" / "model"), "--type", "q8_0",
                        "--out", str(tmp_path / "x.gguf")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert err and "T5 Hugging Face folder" in err[0], r.stderr
    assert "convert_hf_to_gguf" in r.stderr
    assert not (tmp_path / "x.gguf").exists()
