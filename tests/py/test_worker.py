"""test_worker.py: `fastchat worker` speaks FastChat's model-worker protocol.

Black-box: the real binary on free loopback ports, the default model, and
`requests` reading the streams the way FastChat's own clients do
(iter_lines with delimiter=b"\\0"). Checked: every endpoint of §3.1, the
NUL-delimited stream (cumulative text, chunk cadence, finish_reason, usage),
echo, stop strings, max_new_tokens -> "length", logprobs, embeddings (unit
norm, base64 float32), 400 for malformed bodies, 404/405, a client that
leaves mid-stream (its generation is cancelled, the worker carries on),
32 concurrent streams, and the proof of protocol compatibility: FastChat's
own Python controller (fschat 0.2.36) registers our worker, lists its model,
dispatches to it, relays its stream, and, restarted, gets the worker back
through the heartbeat's exist=false re-registration.
"""
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests

from conftest import fastchat_logits, run_fastchat, time_factor

PROMPT_CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
PROMPT_COUNT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(proc):
    try:
        with open(proc.log_path, errors="replace") as f:
            return f.read()[-3000:]
    except (AttributeError, OSError):
        return ""


def wait_http(url, proc, timeout=60, method="post"):
    timeout *= time_factor()
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode} before serving {url}\n{log_tail(proc)}",
                        pytrace=False)
        try:
            r = getattr(requests, method)(url, timeout=2)
            if r.status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not come up in {timeout}s\n{log_tail(proc)}", pytrace=False)


def spawn(cmd, log_path, env=None, cwd=None):
    """Starts cmd with its output in a file (a pipe nobody reads would fill
    up and stall the process)."""
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                             env={**os.environ, **(env or {})})
    p.log_path = str(log_path)
    return p


def start_worker(binary, model, port, *extra, log_dir, env=None):
    cmd = [str(binary), "worker", "--model-path", str(model), "--host", "127.0.0.1", "--port", str(port),
           *[str(e) for e in extra]]
    p = spawn(cmd, os.path.join(log_dir, f"fastchat-worker-{port}.log"), env=env)
    wait_http(f"http://127.0.0.1:{port}/worker_get_status", p)
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=20 * time_factor())
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def worker(fastchat_bin, model_path, tmp_path_factory):
    port = free_port()
    p = start_worker(fastchat_bin, model_path, port, "--no-register", "--limit-worker-concurrency", 8,
                     "--seed", 1234, log_dir=str(tmp_path_factory.mktemp("worker")))
    yield f"http://127.0.0.1:{port}"
    stop(p)
    assert p.returncode == 0, f"worker exited with {p.returncode} on SIGTERM\n{log_tail(p)}"


def post(base, path, body, **kw):
    return requests.post(base + path, json=body, timeout=kw.pop("timeout", 120 * time_factor()), **kw)


def stream_chunks(base, params, path="/worker_generate_stream"):
    """The chunks as FastChat's clients read them."""
    # a stream queued behind others (test_concurrent_streams) gets nothing
    # until it is admitted: minutes for a sanitized build on a loaded machine
    r = requests.post(base + path, json=params, stream=True, timeout=120 * time_factor())
    assert r.status_code == 200, r.text
    assert "content-type" not in r.headers or "json" not in r.headers["content-type"]
    out = []
    for chunk in r.iter_lines(decode_unicode=False, delimiter=b"\0"):
        if chunk:
            out.append(json.loads(chunk.decode()))
    return out


def warm(base, params):
    """Runs params once so that later identical requests find the prompt in
    the engine's prefix cache alike: a cold prompt is computed in one
    prefill batch, a cached one token by token, and greedy decoding may
    break a near-tie differently between the two."""
    post(base, "/worker_generate", {**params, "max_new_tokens": 1})


def count_tokens(binary, model, text):
    p = run_fastchat(binary, ["tokenize", "--model-path", model, "--text", text])
    return len(json.loads(p.stdout))


# ---- the endpoints ----

def test_status_details_template(worker, model_path):
    st = post(worker, "/worker_get_status", None).json()
    assert st == {"model_names": [model_path.name], "speed": 1, "queue_length": 0}
    assert post(worker, "/model_details", {"model": model_path.name}).json() == {"context_length": 8192}
    conv = post(worker, "/worker_get_conv_template", {}).json()["conv"]
    # SmolLM2 has no FastChat adapter: its own ChatML template, as FastChat fields
    assert set(conv) == {"name", "system_template", "system_message", "system_message_vision", "roles",
                         "messages", "offset", "sep_style", "sep", "sep2", "stop_str", "stop_token_ids",
                         "max_image_size_mb"}
    assert conv["name"] == "chatml" and conv["sep_style"] == 10 and conv["sep"] == "<|im_end|>"
    assert conv["roles"] == ["<|im_start|>user", "<|im_start|>assistant"]
    assert conv["stop_str"] == "<|im_end|>" and "SmolLM" in conv["system_message"]


def test_count_token(worker, fastchat_bin, model_path):
    for text in ["Hello world", PROMPT_CHAT, "héllo 👋 wörld\n\n  x"]:
        r = post(worker, "/count_token", {"prompt": text}).json()
        assert r == {"count": count_tokens(fastchat_bin, model_path, text), "error_code": 0}


def test_routes_and_malformed_bodies(worker):
    assert requests.post(worker + "/nope", timeout=10).status_code == 404
    assert requests.get(worker + "/worker_generate_stream", timeout=10).status_code == 405
    for path in ["/worker_generate_stream", "/worker_generate", "/count_token", "/worker_get_embeddings"]:
        r = requests.post(worker + path, data=b"{not json", timeout=10)
        assert r.status_code == 400, path
        body = r.json()
        assert body["error_code"] == 40001 and body["detail"] and body["text"]
    for bad in [{"temperature": 0}, {"prompt": 5}, {"prompt": "x", "temperature": "hot"},
                {"prompt": "x", "stop": [1, 2]}, {"prompt": "x", "max_new_tokens": [3]}]:
        assert post(worker, "/worker_generate", bad).status_code == 400, bad
    assert requests.post(worker + "/worker_generate", data=b"[1, 2]", timeout=10).status_code == 400
    # still serving
    assert post(worker, "/worker_get_status", None).status_code == 200


# ---- generation ----

def test_stream_is_cumulative_with_usage(worker, fastchat_bin, model_path):
    n_prompt = count_tokens(fastchat_bin, model_path, PROMPT_CHAT)
    warm(worker, {"prompt": PROMPT_CHAT, "temperature": 0})
    chunks = stream_chunks(worker, {"prompt": PROMPT_CHAT, "temperature": 0, "max_new_tokens": 40,
                                    "echo": False, "stop": "<|im_end|>"})
    assert len(chunks) >= 2
    for a, b in zip(chunks, chunks[1:]):
        assert b["text"].startswith(a["text"]), (a["text"], b["text"])
        assert b["usage"]["completion_tokens"] > a["usage"]["completion_tokens"]
    for c in chunks:
        assert c["error_code"] == 0 and c["logprobs"] is None
        u = c["usage"]
        assert u["prompt_tokens"] == n_prompt and u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    # the default stream interval: a chunk after tokens 1, 3, 5, ...
    assert [c["usage"]["completion_tokens"] % 2 for c in chunks[:-1]] == [1] * (len(chunks) - 1)
    assert all(c["finish_reason"] is None for c in chunks[:-1])
    last = chunks[-1]
    assert last["finish_reason"] in ("stop", "length")
    assert "Paris" in last["text"] and "<|im_end|>" not in last["text"]
    # /worker_generate answers the last chunk
    one = post(worker, "/worker_generate", {"prompt": PROMPT_CHAT, "temperature": 0, "max_new_tokens": 40,
                                            "echo": False, "stop": "<|im_end|>"}).json()
    assert one["text"] == last["text"] and one["finish_reason"] == last["finish_reason"]
    assert one["usage"] == last["usage"] and one["error_code"] == 0


def test_echo(worker):
    prompt = "The capital of France is"
    warm(worker, {"prompt": prompt, "temperature": 0})
    default = post(worker, "/worker_generate", {"prompt": prompt, "temperature": 0, "max_new_tokens": 8}).json()
    assert default["text"].startswith(prompt) and len(default["text"]) > len(prompt)
    no = post(worker, "/worker_generate", {"prompt": prompt, "temperature": 0, "max_new_tokens": 8,
                                           "echo": False}).json()
    assert default["text"] == prompt + no["text"]
    # echo shows the prompt decoded without special tokens, as FastChat's decode does
    chat = post(worker, "/worker_generate", {"prompt": PROMPT_CHAT, "temperature": 0, "max_new_tokens": 4}).json()
    assert chat["text"].startswith("user\nWhat is the capital of France?\nassistant\n")


def test_max_new_tokens_gives_length(worker):
    warm(worker, {"prompt": PROMPT_COUNT, "temperature": 0})
    r = post(worker, "/worker_generate", {"prompt": PROMPT_COUNT, "temperature": 0, "max_new_tokens": 5,
                                          "echo": False}).json()
    assert r["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 5
    chunks = stream_chunks(worker, {"prompt": PROMPT_COUNT, "temperature": 0, "max_new_tokens": 6, "echo": False})
    assert chunks[-1]["finish_reason"] == "length" and chunks[-1]["usage"]["completion_tokens"] == 6
    assert chunks[-1]["text"] == post(worker, "/worker_generate", {"prompt": PROMPT_COUNT, "temperature": 0,
                                                                   "max_new_tokens": 6, "echo": False}).json()["text"]


def test_stop_strings(worker, fastchat_bin, model_path):
    base = {"prompt": PROMPT_COUNT, "temperature": 0, "max_new_tokens": 24, "echo": False}
    warm(worker, base)
    full = post(worker, "/worker_generate", base).json()["text"]
    assert " 15," in full, full
    cut = full[:full.index(" 15,")]
    for stop in [" 15,", [" 99", " 15,"]]:
        r = post(worker, "/worker_generate", {**base, "stop": stop}).json()
        assert r["text"] == cut and r["finish_reason"] == "stop", (stop, r)
        chunks = stream_chunks(worker, {**base, "stop": stop})
        assert chunks[-1]["text"] == cut and chunks[-1]["finish_reason"] == "stop"
        assert all(" 15" not in c["text"] for c in chunks)
    # with echo the stop string is searched in the output only
    r = post(worker, "/worker_generate", {**base, "echo": True, "stop": " 3,"}).json()
    assert r["text"].startswith(PROMPT_COUNT) and r["finish_reason"] == "length"
    # stop_token_ids: the id of the first token generated stops it at once
    first = post(worker, "/worker_generate", {**base, "max_new_tokens": 1, "logprobs": 0}).json()
    piece = first["logprobs"]["tokens"][0]
    ids = json.loads(run_fastchat(fastchat_bin, ["tokenize", "--model-path", model_path, "--no-special",
                                                 "--text", piece]).stdout)
    assert len(ids) == 1, (piece, ids)
    r = post(worker, "/worker_generate", {**base, "stop_token_ids": ids}).json()
    assert r["finish_reason"] == "stop" and r["text"] == "" and r["usage"]["completion_tokens"] == 1


def test_logprobs(worker, fastchat_bin, model_path, tmp_path):
    params = {"prompt": PROMPT_COUNT, "temperature": 0, "max_new_tokens": 8, "echo": False, "logprobs": 2}
    warm(worker, params)
    r = post(worker, "/worker_generate", params).json()
    lp = r["logprobs"]
    n = r["usage"]["completion_tokens"]
    assert set(lp) == {"text_offset", "tokens", "token_logprobs", "top_logprobs"}
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"]) == n
    assert "".join(lp["tokens"]) == r["text"]
    offs = [0]
    for t in lp["tokens"][:-1]:
        offs.append(offs[-1] + len(t))
    assert lp["text_offset"] == offs
    for tok, val, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
        assert val <= 0 and len(top) <= 2 and len(top) >= 1
        # greedy: the chosen token is the most likely one
        assert abs(max(top.values()) - val) < 1e-4
        assert tok in top
    # the stream carries the same, cumulatively
    chunks = stream_chunks(worker, params)
    assert chunks[-1]["logprobs"] == lp
    for c in chunks:
        assert len(c["logprobs"]["tokens"]) == c["usage"]["completion_tokens"]
    # logprobs=0: the chosen token's only
    z = post(worker, "/worker_generate", {**params, "logprobs": 0}).json()["logprobs"]
    assert z["top_logprobs"] == [{}] * n and np.allclose(z["token_logprobs"], lp["token_logprobs"], atol=1e-5)
    # with echo the prompt's tokens come first: the first without a logprob,
    # the others scored against `fastchat logits` (log-softmax at the previous position)
    e = post(worker, "/worker_generate", {**params, "echo": True}).json()
    el = e["logprobs"]
    k = len(el["tokens"]) - n
    assert k > 0 and el["token_logprobs"][0] is None and el["tokens"][k:] == lp["tokens"]
    assert "".join(el["tokens"]) == e["text"] and el["text_offset"][k] == len(PROMPT_COUNT)
    ids = json.loads(run_fastchat(fastchat_bin, ["tokenize", "--model-path", model_path,
                                                 "--text", PROMPT_COUNT]).stdout)
    assert len(ids) == k
    logits = fastchat_logits(fastchat_bin, model_path, ids, tmp_path, exact=False).astype(np.float64)
    m = logits.max(axis=1, keepdims=True)
    logsm = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    want = [logsm[i - 1, ids[i]] for i in range(1, k)]
    assert np.allclose(el["token_logprobs"][1:k], want, atol=2e-3), (el["token_logprobs"][1:k], want)
    for i in range(1, k):  # top 2 at each prompt position, the best one first
        best = int(np.argmax(logsm[i - 1]))
        assert abs(max(el["top_logprobs"][i].values()) - logsm[i - 1, best]) < 2e-3


def test_seed_reproducible(worker):
    params = {"prompt": "Tell me a story about a dragon.", "temperature": 1.0, "max_new_tokens": 16,
              "echo": False, "seed": 42}
    warm(worker, params)
    a = post(worker, "/worker_generate", params).json()["text"]
    b = post(worker, "/worker_generate", params).json()["text"]
    assert a == b


def test_embeddings(worker, fastchat_bin, model_path):
    texts = ["The cat sat on the mat.", "Bonjour le monde", "The cat sat on the mat."]
    r = post(worker, "/worker_get_embeddings", {"model": model_path.name, "input": texts}).json()
    emb = np.array(r["embedding"], dtype=np.float64)
    assert emb.shape == (3, 576)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert np.allclose(emb[0], emb[2], atol=1e-6) and not np.allclose(emb[0], emb[1], atol=1e-2)
    assert r["token_num"] == sum(count_tokens(fastchat_bin, model_path, t) for t in texts)
    b = post(worker, "/worker_get_embeddings", {"input": texts, "encoding_format": "base64"}).json()
    dec = np.array([struct.unpack(f"<{576}f", base64.b64decode(s)) for s in b["embedding"]])
    assert np.allclose(dec, emb, atol=1e-6) and b["token_num"] == r["token_num"]
    bad = post(worker, "/worker_get_embeddings", {"input": [1, 2]})
    assert bad.status_code == 400


def test_disconnect_mid_stream(worker):
    """A client that leaves: its generation is cancelled, its slot freed."""
    r = requests.post(worker + "/worker_generate_stream", stream=True, timeout=60,
                      json={"prompt": PROMPT_COUNT, "temperature": 0, "max_new_tokens": 4000, "echo": False})
    it = r.iter_lines(decode_unicode=False, delimiter=b"\0")
    first = json.loads(next(it))
    assert first["error_code"] == 0
    r.close()  # hang up mid-stream
    t0 = time.time()
    while time.time() - t0 < 10:
        if post(worker, "/worker_get_status", None).json()["queue_length"] == 0:
            break
        time.sleep(0.1)
    # 4000 greedy tokens take far longer than this: the request was cancelled
    assert post(worker, "/worker_get_status", None).json()["queue_length"] == 0
    assert time.time() - t0 < 10
    ok = post(worker, "/worker_generate", {"prompt": "Hi", "temperature": 0, "max_new_tokens": 4}).json()
    assert ok["error_code"] == 0 and ok["finish_reason"] in ("stop", "length")


def test_concurrent_streams(worker):
    n = 32
    results = [None] * n
    peak = [0]
    done = threading.Event()

    def client(i):
        try:
            results[i] = stream_chunks(worker, {"prompt": f"{PROMPT_COUNT} {i}", "temperature": 0.7, "seed": i,
                                                "max_new_tokens": 24, "echo": False})
        except Exception as e:  # reported below
            results[i] = e

    def watch():
        while not done.is_set():
            q = post(worker, "/worker_get_status", None).json()["queue_length"]
            peak[0] = max(peak[0], q)
            time.sleep(0.05)

    w = threading.Thread(target=watch)
    w.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300 * time_factor())
    done.set()
    w.join()
    for i, res in enumerate(results):
        assert isinstance(res, list) and res, f"client {i}: {res!r}"
        assert res[-1]["error_code"] == 0 and res[-1]["finish_reason"] in ("stop", "length"), res[-1]
    # 8 admitted at once (--limit-worker-concurrency 8), the rest queued: FastChat's queue_length
    assert peak[0] > 8, peak[0]
    assert post(worker, "/worker_get_status", None).json()["queue_length"] == 0
    print(f"32 concurrent streams: {time.time() - t0:.1f} s, peak queue_length {peak[0]}")


# ---- FastChat's own controller ----

def start_fastchat_controller(port, logdir):
    p = spawn([sys.executable, "-m", "fastchat.serve.controller", "--host", "127.0.0.1", "--port", str(port)],
              logdir / f"controller-stdout-{port}-{time.time():.0f}.log", env={"LOGDIR": str(logdir)},
              cwd=str(logdir))
    wait_http(f"http://127.0.0.1:{port}/test_connection", p, method="get")
    return p


def test_fastchat_controller(fastchat_bin, model_path, tmp_path):
    import fastchat  # noqa: F401  (fschat is in tests/requirements.txt: missing, the test fails)
    cport, wport = free_port(), free_port()
    caddr, waddr = f"http://127.0.0.1:{cport}", f"http://127.0.0.1:{wport}"
    # the worker first: a controller that is not up yet is retried, not fatal
    wk = start_worker(fastchat_bin, model_path, wport, "--controller-address", caddr,
                      "--worker-address", waddr, "--model-names", "smol,smollm2-135m",
                      env={"FASTCHAT_WORKER_HEART_BEAT_INTERVAL": "1"}, log_dir=str(tmp_path))
    ctl = None
    try:
        ctl = start_fastchat_controller(cport, tmp_path)

        def models():
            return sorted(requests.post(caddr + "/list_models", timeout=10).json()["models"])

        t0 = time.time()
        while models() != ["smol", "smollm2-135m"] and time.time() - t0 < 20:
            time.sleep(0.2)
        assert models() == ["smol", "smollm2-135m"]
        for name in ["smol", "smollm2-135m"]:
            r = requests.post(caddr + "/get_worker_address", json={"model": name}, timeout=10).json()
            assert r == {"address": waddr}
        st = requests.post(caddr + "/worker_get_status", timeout=10).json()
        assert st["model_names"] == ["smol", "smollm2-135m"] and st["speed"] == 1

        # FastChat's relay streams our worker's output
        warm(waddr, {"prompt": PROMPT_CHAT, "temperature": 0})
        chunks = stream_chunks(caddr, {"model": "smol", "prompt": PROMPT_CHAT, "temperature": 0,
                                       "max_new_tokens": 24, "echo": False, "stop": "<|im_end|>"})
        assert len(chunks) >= 2 and chunks[-1]["finish_reason"] in ("stop", "length")
        assert "Paris" in chunks[-1]["text"]
        direct = post(waddr, "/worker_generate", {"prompt": PROMPT_CHAT, "temperature": 0, "max_new_tokens": 24,
                                                  "echo": False, "stop": "<|im_end|>"}).json()
        assert chunks[-1]["text"] == direct["text"]

        # heartbeats arrive (FastChat's controller logs each one)
        log = tmp_path / "controller.log"
        t0 = time.time()
        while time.time() - t0 < 10 and "Receive heart beat" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.2)
        assert "Receive heart beat" in log.read_text()

        # a restarted controller knows nothing: the heartbeat's exist=false re-registers the worker
        stop(ctl)
        ctl = start_fastchat_controller(cport, tmp_path)
        t0 = time.time()
        while models() != ["smol", "smollm2-135m"] and time.time() - t0 < 20:
            time.sleep(0.2)
        assert models() == ["smol", "smollm2-135m"]
    finally:
        stop(wk)
        if ctl:
            stop(ctl)


def test_multi_model_worker(fastchat_bin, model_path, tmp_path):
    """multi_model_worker's form: --model-path and --model-names repeated; "model" routes."""
    port = free_port()
    p = start_worker(fastchat_bin, model_path, port, "--model-path", model_path, "--model-names", "a,a2",
                     "--model-names", "b", "--no-register", "--kv-cache-tokens", 2048, log_dir=str(tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        st = post(base, "/worker_get_status", None).json()
        assert st == {"model_names": ["a", "a2", "b"], "speed": 1, "queue_length": 0}
        for name in ["a", "a2", "b"]:
            r = post(base, "/worker_generate", {"model": name, "prompt": PROMPT_COUNT, "temperature": 0,
                                                "max_new_tokens": 3, "echo": False}).json()
            assert r["error_code"] == 0 and r["usage"]["completion_tokens"] == 3
            assert post(base, "/model_details", {"model": name}).json() == {"context_length": 8192}
        assert post(base, "/worker_generate", {"model": "c", "prompt": "x"}).status_code == 400
        assert post(base, "/worker_generate", {"prompt": "x"}).status_code == 400
    finally:
        stop(p)
    assert p.returncode == 0


def test_act8_worker_uses_8bit_activations(fastchat_bin, model_path, tmp_path):
    """--act8 reaches the worker's engine: the prompt's echoed logprobs are
    `fastchat logits --act8`'s, not the default (16-bit activation) mode's."""
    port = free_port()
    p = start_worker(fastchat_bin, model_path, port, "--act8", "--no-register", log_dir=str(tmp_path))
    base = f"http://127.0.0.1:{port}"
    try:
        e = post(base, "/worker_generate", {"prompt": PROMPT_COUNT, "temperature": 0, "max_new_tokens": 1,
                                            "echo": True, "logprobs": 1}).json()
    finally:
        stop(p)
    assert p.returncode == 0
    ids = json.loads(run_fastchat(fastchat_bin, ["tokenize", "--model-path", model_path,
                                                 "--text", PROMPT_COUNT]).stdout)
    k = len(ids)
    got = np.array(e["logprobs"]["token_logprobs"][1:k])

    def logsm(act8):
        lg = fastchat_logits(fastchat_bin, model_path, ids, tmp_path, exact=False, act8=act8).astype(np.float64)
        m = lg.max(axis=1, keepdims=True)
        ls = lg - m - np.log(np.exp(lg - m).sum(axis=1, keepdims=True))
        return np.array([ls[i - 1, ids[i]] for i in range(1, k)])

    want8, want16 = logsm(True), logsm(False)
    assert np.allclose(got, want8, atol=2e-3), (got, want8)
    assert np.abs(got - want16).max() > 1e-2, "the --act8 worker gave the 16-bit mode's logprobs"
