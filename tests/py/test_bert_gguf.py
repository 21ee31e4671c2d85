"""BERT-family encoders from GGUF ("bert" architecture, as llama.cpp's
converter writes it): model/bert.c's GGUF path, tokenizer/wordpiece_gguf.c,
`fastchat embed` on a .gguf.

The GGUF of all-MiniLM-L6-v2 is made at test time by tests/py/bert_gguf.py
(the gguf package, numpy only), which writes what convert_hf_to_gguf.py of
llama.cpp (llama-cpp-python 0.3.36 sdist) writes: test_matches_llamacpp_converter
runs that converter, when FASTCHAT_TORCH_PYTHON names a Python with torch and
transformers (CI has none: then it is skipped), and compares every key and
tensor byte. References:
- the safetensors folder through the same binary: cosine >= 0.99999 for every
  golden text that fits the file's context (see below), f16 and f32 files;
  WordPiece ids identical on the tokenizer corpus and the golden texts;
- sentence-transformers' vectors (tests/data/bert/minilm_golden.npz):
  cosine >= 0.9999. The GGUF does not record sentence-transformers'
  max_seq_length (256 for this model), so texts longer than 256 tokens are
  embedded up to bert.context_length (512), as llama.cpp does, and left out
  of both comparisons (counted in the figures);
- llama.cpp itself (llama-embedding, when scripts/build_llamacpp.sh has built
  it into the cache; skipped otherwise) on the same file: cosine printed and
  >= 0.999 (ggml's GELU is the tanh approximation, ours the exact erf form);
- bad files: a missing tensor, a misshapen one, an unsupported pooling type,
  a causal flag, a non-WordPiece vocabulary: exit 1, one error line.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA
from test_bert_embed import cosines, embed_cli, golden, minilm  # noqa: F401 (fixtures)

import bert_gguf

CACHE = Path(os.environ.get("FASTCHAT_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastchat"))
LLAMACPP = CACHE / "llama.cpp-0.3.36"


@pytest.fixture(scope="module")
def gguf_files(minilm, tmp_path_factory):
    pytest.importorskip("gguf")
    d = tmp_path_factory.mktemp("bert_gguf")
    return {t: bert_gguf.write(minilm, d / f"minilm-{t}.gguf", t) for t in ("f16", "f32")}


@pytest.fixture(scope="module")
def folder_ref(fastchat_bin, minilm, golden, tmp_path_factory):
    """The golden texts that fit 256 tokens (indices) and the folder's embeddings of them."""
    d = tmp_path_factory.mktemp("bert_folder")
    texts = golden[0]
    lens = [len(x) for x in json.loads(embed_cli(fastchat_bin, minilm, ["--tokens"], d, texts))]
    keep = [i for i, n in enumerate(lens) if n <= 256]
    emb = np.array(json.loads(embed_cli(fastchat_bin, minilm, [], d, [texts[i] for i in keep])), dtype=np.float32)
    return keep, emb, [i for i, n in enumerate(lens) if n > 256]


def test_tokens_equal_folder(fastchat_bin, minilm, gguf_files, golden, tmp_path, figures):
    corpus = [json.loads(line)["text"] for line in open(DATA / "tokenizer" / "corpus.jsonl", encoding="utf-8")]
    texts = [t for t in corpus + golden[0] if "\x00" not in t]
    a = json.loads(embed_cli(fastchat_bin, minilm, ["--tokens"], tmp_path, texts))
    b = json.loads(embed_cli(fastchat_bin, gguf_files["f16"], ["--tokens"], tmp_path, texts))
    bad = [i for i in range(len(texts)) if a[i] != b[i]]
    figures(f"bert-gguf: WordPiece ids from the GGUF vocabulary = tokenizer.json's on {len(texts) - len(bad)}/"
            f"{len(texts)} texts ({sum(map(len, a))} tokens)")
    assert not bad, [(texts[i][:60], a[i][:20], b[i][:20]) for i in bad[:3]]


@pytest.mark.parametrize("ftype", ["f32", "f16"])
def test_embed_equals_folder_and_sentence_transformers(ftype, fastchat_bin, gguf_files, golden, folder_ref, tmp_path,
                                                       figures):
    texts, ref = golden
    keep, ours_dir, longer = folder_ref
    sel = [texts[i] for i in keep]
    ours_gguf = np.array(json.loads(embed_cli(fastchat_bin, gguf_files[ftype], [], tmp_path, sel)), dtype=np.float32)
    c_dir = cosines(ours_gguf, ours_dir)
    c_st = cosines(ours_gguf, ref[keep])
    figures(f"bert-gguf {ftype}: {len(sel)} of {len(texts)} golden texts (<= 256 tokens): min cosine to the folder "
            f"{c_dir.min():.8f}, to sentence-transformers {c_st.min():.8f}")
    assert c_dir.min() >= 0.99999, [(sel[i][:60], c_dir[i]) for i in np.argsort(c_dir)[:3]]
    assert c_st.min() >= 0.9999, [(sel[i][:60], c_st[i]) for i in np.argsort(c_st)[:3]]
    assert np.allclose(np.linalg.norm(ours_gguf, axis=1), 1, atol=1e-5)
    # longer texts run (up to 512 tokens, like llama.cpp), and are unit vectors
    long = [texts[i] for i in longer][:4]
    if long:
        v = np.array(json.loads(embed_cli(fastchat_bin, gguf_files[ftype], [], tmp_path, long)))
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_matches_llamacpp_converter(minilm, gguf_files, tmp_path, figures):
    py = os.environ.get("FASTCHAT_TORCH_PYTHON")
    conv = LLAMACPP / "src" / "convert_hf_to_gguf.py"
    if not py or not conv.is_file():
        pytest.skip("needs FASTCHAT_TORCH_PYTHON (a Python with torch + transformers) and llama.cpp's source "
                    f"in {LLAMACPP}/src (scripts/build_llamacpp.sh)")
    import gguf
    out = tmp_path / "conv.gguf"
    r = subprocess.run([py, str(conv), str(minilm), "--outtype", "f16", "--outfile", str(out)], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(LLAMACPP / "src" / "gguf-py")})
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = gguf.GGUFReader(str(out)), gguf.GGUFReader(str(gguf_files["f16"]))
    fa = {f.name: f for f in a.fields.values() if not f.name.startswith(("GGUF.", "general."))}
    fb = {f.name: f for f in b.fields.values() if not f.name.startswith(("GGUF.", "general."))}
    assert set(fa) == set(fb)
    for k in fa:
        assert fa[k].types == fb[k].types and fa[k].contents() == fb[k].contents(), k
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    assert set(ta) == set(tb)
    for k in ta:
        assert ta[k].tensor_type == tb[k].tensor_type and list(ta[k].shape) == list(tb[k].shape), k
        assert np.array_equal(np.asarray(ta[k].data), np.asarray(tb[k].data)), k
    figures(f"bert-gguf: tests/py/bert_gguf.py = llama.cpp's convert_hf_to_gguf.py: {len(fa)} keys, {len(ta)} "
            "tensors identical (general.* aside)")


def test_llamacpp_embedding_close(fastchat_bin, gguf_files, golden, tmp_path, figures):
    exe = LLAMACPP / "bin" / "llama-embedding"
    if not exe.is_file() or os.path.getsize(exe) < 10000:
        pytest.skip(f"llama.cpp's llama-embedding not built in {exe.parent} "
                    "(LLAMACPP_TARGETS=llama-embedding scripts/build_llamacpp.sh)")
    texts = [t for t in golden[0] if "\n" not in t and t.strip()][:24]
    m = gguf_files["f16"]
    r = subprocess.run([str(exe), "-m", str(m), "-t", "2", "-c", "512", "-b", "512", "-ub", "512",
                        "--embd-normalize", "2", "--embd-output-format", "json", "--embd-separator", "\n",
                        "-p", "\n".join(texts)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    js = json.loads(r.stdout[r.stdout.index("{"):])
    theirs = np.array([d["embedding"] for d in sorted(js["data"], key=lambda d: d["index"])])
    ours = np.array(json.loads(embed_cli(fastchat_bin, m, [], tmp_path, texts)))
    assert theirs.shape == ours.shape
    c = cosines(ours, theirs)
    figures(f"bert-gguf: llama.cpp llama-embedding vs ours on the same f16 GGUF, {len(texts)} texts: "
            f"min cosine {c.min():.6f}, mean {c.mean():.6f}")
    assert c.min() >= 0.999


def one_error(fastchat_bin, model):
    r = subprocess.run([str(fastchat_bin), "embed", "--model-path", str(model), "--text", "hello"],
                       capture_output=True, text=True, timeout=120)
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert r.returncode == 1 and len(errs) == 1, (r.returncode, r.stderr)
    assert "Sanitizer" not in r.stderr
    return errs[0]


def test_quantize_folder_refused(fastchat_bin, minilm, tmp_path):
    """fastchat quantize takes BERT GGUF files; a folder gets one line saying how to make one."""
    r = subprocess.run([str(fastchat_bin), "quantize", "--model-path", str(minilm), "--type", "q8_0", "--out",
                        str(tmp_path / "x.gguf")], capture_output=True, text=True, timeout=120)
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error")]
    assert r.returncode != 0 and len(errs) == 1, (r.returncode, r.stderr)
    assert "BERT Hugging Face folder" in errs[0] and "convert_hf_to_gguf" in r.stderr, r.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_bad_files(fastchat_bin, minilm, tmp_path, figures):
    pytest.importorskip("gguf")
    import gguf
    U32 = gguf.GGUFValueType.UINT32

    def drop(t, kv):
        del t["blk.3.ffn_down.weight"]

    def shape(t, kv):
        t["blk.1.attn_k.weight"] = t["blk.1.attn_k.weight"][:100]

    def pooling(t, kv):
        kv["bert.pooling_type"] = (3, U32)

    def causal(t, kv):
        kv["bert.attention.causal"] = (True, gguf.GGUFValueType.BOOL)

    def vocab(t, kv):
        kv["tokenizer.ggml.model"] = ("llama", gguf.GGUFValueType.STRING)

    cases = [(drop, "blk.3.ffn_down.weight"), (shape, "blk.1.attn_k.weight"), (pooling, "pooling_type 3"),
             (causal, "causal"), (vocab, "tokenizer.ggml.model")]
    for edit, needle in cases:
        f = bert_gguf.write(minilm, tmp_path / f"bad_{edit.__name__}.gguf", "f32", edit=edit)
        e = one_error(fastchat_bin, f)
        assert needle in e, e
        figures("bert-gguf bad file: " + e)


def test_api_serves_gguf_encoder(fastchat_bin, gguf_files, golden, tmp_path, figures):
    """A worker serves the GGUF encoder on /v1/embeddings (fc_bert_is_encoder
    recognises the file)."""
    import time

    import requests
    from test_worker import free_port, log_tail, spawn, stop
    texts, ref = golden
    sel = [i for i, t in enumerate(texts) if len(t) < 200][:40]
    ports = [free_port() for _ in range(3)]
    p = spawn([str(fastchat_bin), "serve", "--model-path", str(gguf_files["f16"]), "--model-names", "minilm-gguf",
               "--controller-port", str(ports[0]), "--worker-port", str(ports[1]), "--port", str(ports[2])],
              str(tmp_path / "serve.log"))
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        t0 = time.time()
        while True:
            if p.poll() is not None:
                pytest.fail(f"fastchat serve exited with {p.returncode}\n{log_tail(p)}", pytrace=False)
            try:
                if any(m["id"] == "minilm-gguf" for m in requests.get(api + "/v1/models", timeout=5).json()["data"]):
                    break
            except (requests.RequestException, KeyError, ValueError):
                pass
            assert time.time() - t0 < 180, log_tail(p)
            time.sleep(0.5)
        r = requests.post(api + "/v1/embeddings", timeout=120,
                          json={"model": "minilm-gguf", "input": [texts[i] for i in sel]})
        assert r.status_code == 200, r.text
        got = np.array([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])])
    finally:
        stop(p)
    c = cosines(got, ref[sel])
    figures(f"bert-gguf/api: {len(sel)} texts through /v1/embeddings, min cosine to sentence-transformers {c.min():.7f}")
    assert c.min() >= 0.9999
