"""Embeddings and prompt scores as request kinds of the engine (one
scheduler, one thread pool, one KV cache), checked against transformers.

- /worker_get_embeddings on the default model equals FastChat's embedding
  (model_worker.get_embeddings: the mean of transformers'
  hidden_states[-1] over the tokens, L2-normalized) computed by transformers
  on the same GGUF (tests/data/smollm2/embed_golden.npz, written by
  tools/golden/make_embed_golden.py): in --exact mode (f32, as transformers
  computes) to float32 rounding, in the default mode to the accuracy of its
  8-bit activations; token counts equal the tokenizer's.
- 8 chat streams and 8 embedding requests at once on one worker all finish,
  with the same embeddings as alone; chat tokens/s alone and with the
  embeddings running are printed (the engine gives embeddings at most a fifth
  of the compute time while chat runs; a figure, not a timed assertion).
"""
import json
import threading
import time

import numpy as np
import pytest
import requests

from conftest import DATA
from test_worker import free_port, start_worker, stop

GOLDEN = np.load(DATA / "smollm2" / "embed_golden.npz")
TEXTS = [str(t) for t in GOLDEN["texts"]]


def embed(base, texts):
    r = requests.post(base + "/worker_get_embeddings", json={"input": texts}, timeout=600)
    assert r.status_code == 200, r.text[:300]
    j = r.json()
    return np.array(j["embedding"], dtype=np.float64), j["token_num"]


@pytest.fixture(scope="module", params=["exact", "default"])
def worker(request, fastchat_bin, model_path, tmp_path_factory):
    port = free_port()
    extra = ["--exact"] if request.param == "exact" else []
    p = start_worker(fastchat_bin, model_path, port, "--no-register", "--limit-worker-concurrency", 32, *extra,
                     log_dir=str(tmp_path_factory.mktemp("embed")))
    yield request.param, f"http://127.0.0.1:{port}"
    stop(p)


def test_embeddings_equal_transformers(worker, figures):
    mode, base = worker
    emb, token_num = embed(base, TEXTS)
    ref = GOLDEN["embedding"].astype(np.float64)
    assert token_num == int(GOLDEN["token_num"].sum())
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    diff = np.abs(emb - ref).max()
    figures(f"embeddings vs transformers ({mode}): min cosine {cos.min():.7f}, max |delta| {diff:.2e}")
    if mode == "exact":
        assert diff <= 2e-5 and cos.min() >= 0.99999, (diff, cos)
    else:
        assert cos.min() >= 0.999, cos


def stream_tokens(base, prompt, n):
    body = {"model": "x", "prompt": prompt, "temperature": 0.0, "max_new_tokens": n, "echo": False,
            "stop_token_ids": []}
    r = requests.post(base + "/worker_generate_stream", json=body, stream=True, timeout=600)
    last = None
    for chunk in r.iter_lines(delimiter=b"\0"):
        if chunk:
            last = json.loads(chunk)
    assert last and last["error_code"] == 0, last
    return last["usage"]["completion_tokens"]


def chat_round(base, n_streams, n_tokens):
    """n_streams chat streams at once; their tokens per second together."""
    out = [0] * n_streams
    def one(i):
        out[i] = stream_tokens(base, f"<|im_start|>user\nTell me a story about the number {i}.<|im_end|>\n"
                                     "<|im_start|>assistant\n", n_tokens)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n_streams)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(out) / (time.monotonic() - t0), sum(out)


def test_chat_and_embeddings_together(worker, figures):
    mode, base = worker
    if mode == "exact":
        pytest.skip("measured in the default mode only (the exact mode is the slow reference)")
    alone, _ = chat_round(base, 8, 64)
    results, errors = [None] * 8, []
    def emb(i):
        try:
            results[i] = embed(base, [TEXTS[7], TEXTS[i % 7]])[0]
        except AssertionError as e:  # noqa: PERF203
            errors.append(e)
    ets = [threading.Thread(target=emb, args=(i,)) for i in range(8)]
    for t in ets:
        t.start()
    together, n = chat_round(base, 8, 64)
    for t in ets:
        t.join()
    assert not errors, errors
    assert n == 8 * 64
    ref, _ = embed(base, [TEXTS[7], TEXTS[0]])
    for i in range(8):
        assert np.allclose(results[i][0], ref[0], atol=1e-6)   # batched with chat, the same vectors
    figures(f"8 chat streams alone: {alone:.1f} tokens/s; with 8 embedding requests running: {together:.1f} "
            f"tokens/s ({100 * together / alone:.0f}%)")
