"""test_controller.py: `fastchat controller` as a black box, with scripted
workers and with real `fastchat worker`s.

- registration (the controller asks a worker for its status when
  worker_status is null), the model lists, /worker_get_status, heartbeats
  (exist true/false) and expiry (FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION);
- /get_worker_address with two workers of one model under both dispatch
  methods;
- /refresh_all_workers dropping a dead worker; the /worker_generate_stream
  relay (and its 50005 chunk when no worker serves the model);
- through `fastchat api`: a killed worker dropped and its requests served by
  the survivor; a worker that dies mid-stream giving the client an error
  event and [DONE] (scripted and real workers).

This file also holds the process helpers that test_openai_api.py and
test_fastchat_interop.py import, and a scripted FastChat worker
(`python test_controller.py fake-worker ...`): it speaks the worker
protocol with fixed text and can die after N stream chunks, which makes the
failure tests deterministic.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import time_factor

HERE = Path(__file__).resolve().parent


# ---- process helpers (shared with the other serving tests) ----

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A child process with its output in a log file; stop() ends it."""

    def __init__(self, args, log_path, env=None):
        self.args = [str(a) for a in args]
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=e)

    def alive(self):
        return self.p.poll() is None

    def output(self):
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self):
        if self.alive():
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(10)

    def stop(self):
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


def wait_until(fn, timeout, what, procs=()):
    """Polls fn() until it returns a truthy value; fails with the logs of
    procs when it does not within timeout seconds (times time_factor(): 10
    for a sanitized build) or one of them exits."""
    timeout *= time_factor()
    t0 = time.time()
    last = None
    while time.time() - t0 < timeout:
        try:
            v = fn()
            if v:
                return v
        except requests.RequestException as e:
            last = e
        for p in procs:
            if not p.alive():
                pytest.fail(f"{what}: {' '.join(p.args[:2])} exited ({p.p.returncode}):\n{p.output()[-3000:]}",
                            pytrace=False)
        time.sleep(0.05)
    logs = "\n".join(f"--- {' '.join(p.args[:2])}\n{p.output()[-2000:]}" for p in procs)
    pytest.fail(f"timed out after {timeout}s waiting for {what} ({last})\n{logs}", pytrace=False)


def post(url, body=None, timeout=30):
    return requests.post(url, json=body if body is not None else {}, timeout=timeout)


def list_models(ctl):
    return post(ctl + "/list_models").json()["models"]


def start_controller(binary, tmp, *extra, env=None):
    port = free_port()
    p = Proc([binary, "controller", "--port", port, *extra], Path(tmp) / f"controller-{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/test_connection", timeout=2).json() == "success", 20, "the controller", [p])
    return p, url


def start_worker(binary, tmp, ctl, model_path, name, *extra, env=None):
    port = free_port()
    p = Proc([binary, "worker", "--model-path", model_path, "--model-names", name, "--port", port,
              "--worker-address", f"http://127.0.0.1:{port}", "--controller-address", ctl, *extra],
             Path(tmp) / f"worker-{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.post(url + "/worker_get_status", json={}, timeout=2).status_code == 200, 120,
               "the worker", [p])
    return p, url


def start_api(binary, tmp, ctl, *extra, env=None):
    port = free_port()
    p = Proc([binary, "api", "--port", port, "--controller-address", ctl, *extra], Path(tmp) / f"api-{port}.log", env)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(url + "/v1/models", timeout=5).status_code in (200, 401), 20, "the API server",
               [p])
    return p, url


def start_fake_worker(tmp, ctl, names="fake", *extra, register=True):
    port = free_port()
    args = [sys.executable, HERE / "test_controller.py", "fake-worker", "--port", port, "--controller", ctl,
            "--model-names", names, *extra]
    if not register:
        args.append("--no-register")
    p = Proc(args, Path(tmp) / f"fake-{port}.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.post(url + "/worker_get_status", json={}, timeout=2).status_code == 200, 20,
               "the scripted worker", [p])
    if register:
        wait_until(lambda: url in workers_of(ctl, names.split(",")[0]), 20, "the scripted worker's registration", [p])
    return p, url


def workers_of(ctl, model, draws=1):
    """The addresses /get_worker_address hands out for model over draws."""
    return {post(ctl + "/get_worker_address", {"model": model}).json()["address"] for _ in range(draws)}


def sse_events(resp):
    """The data of each Server-Sent Event of a streamed response, in order."""
    out, data = [], []
    for raw in resp.iter_lines(decode_unicode=False):
        line = raw.decode("utf-8")
        if line == "":
            if data:
                out.append("\n".join(data))
                data = []
        elif line.startswith("data:"):
            v = line[5:]
            data.append(v[1:] if v.startswith(" ") else v)
    if data:
        out.append("\n".join(data))
    return out


@pytest.fixture
def stop_all():
    """Collects processes; stops them all at the end of the test."""
    procs = []
    yield procs.append
    for p in reversed(procs):
        p.stop()


# ---- the scripted worker ----

def fake_worker_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--controller", required=True)
    ap.add_argument("--model-names", default="fake")
    ap.add_argument("--reply", default="Hello from the scripted worker, one word at a time.")
    ap.add_argument("--die-after", type=int, default=-1, help="exit abruptly after this many stream chunks")
    ap.add_argument("--delay", type=float, default=0.01)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--heartbeat", type=float, default=1.0)
    ap.add_argument("--no-register", action="store_true")
    args = ap.parse_args(argv)
    addr = f"http://127.0.0.1:{args.port}"
    names = args.model_names.split(",")
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    def chunks(params):
        words = args.reply.split(" ")
        maxn = int(params.get("max_new_tokens") or 256)
        pt = len(params.get("prompt", "").split())
        out = ""
        for i, w in enumerate(words[:maxn]):
            out += (" " if i else "") + w
            yield {"text": out, "error_code": 0, "finish_reason": None,
                   "usage": {"prompt_tokens": pt, "completion_tokens": i + 1, "total_tokens": pt + i + 1}}
        n = min(len(words), maxn)
        yield {"text": out, "error_code": 0, "finish_reason": "length" if len(words) > maxn else "stop",
               "usage": {"prompt_tokens": pt, "completion_tokens": n, "total_tokens": pt + n}}

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def send_json(self, obj):
            b = json.dumps(obj).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            p = json.loads(raw) if raw else {}
            if self.path == "/worker_get_status":
                return self.send_json({"model_names": names, "speed": 1, "queue_length": 0})
            if self.path == "/count_token":
                return self.send_json({"count": len(p.get("prompt", "").split()), "error_code": 0})
            if self.path == "/model_details":
                return self.send_json({"context_length": args.ctx})
            if self.path == "/worker_get_conv_template":
                return self.send_json({"conv": {
                    "name": "chatml", "system_template": "<|im_start|>system\n{system_message}",
                    "system_message": "", "roles": ["<|im_start|>user", "<|im_start|>assistant"],
                    "messages": [], "offset": 0, "sep_style": 10, "sep": "<|im_end|>", "sep2": None,
                    "stop_str": None, "stop_token_ids": [2]}})
            if self.path == "/worker_generate":
                *_, last = chunks(p)
                return self.send_json(last)
            if self.path == "/worker_generate_stream":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, c in enumerate(chunks(p)):
                    if i == args.die_after:
                        os._exit(3)
                    data = json.dumps(c).encode() + b"\0"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(args.delay)
                self.wfile.write(b"0\r\n\r\n")
                return
            if self.path == "/worker_get_embeddings":
                return self.send_json({"embedding": [[0.6, 0.8] for _ in p["input"]], "token_num": len(p["input"])})
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", args.port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    reg = {"worker_name": addr, "check_heart_beat": True, "worker_status": None}
    if not args.no_register:
        requests.post(args.controller + "/register_worker", json=reg, timeout=10)
    while True:
        time.sleep(args.heartbeat)
        if args.no_register:
            continue
        try:
            r = requests.post(args.controller + "/receive_heart_beat", json={"worker_name": addr, "queue_length": 0},
                              timeout=5)
            if not r.json()["exist"]:
                requests.post(args.controller + "/register_worker", json=reg, timeout=10)
        except requests.RequestException:
            pass


# ---- registry, lists, heartbeats ----

def test_registration_lists_status_and_heartbeats(fastchat_bin, tmp_path, stop_all):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    stop_all(ctl_p)
    w1, a1 = start_fake_worker(tmp_path, ctl, "alpha")
    stop_all(w1)
    w2, a2 = start_fake_worker(tmp_path, ctl, "alpha,beta")
    stop_all(w2)
    # explicit worker_status (no status request), multimodal
    assert post(ctl + "/register_worker", {
        "worker_name": "http://127.0.0.1:9", "check_heart_beat": False, "multimodal": True,
        "worker_status": {"model_names": ["vision"], "speed": 1, "queue_length": 0}}).status_code == 200
    # worker_status null and nobody there: not registered
    assert post(ctl + "/register_worker", {"worker_name": "http://127.0.0.1:1", "check_heart_beat": True,
                                           "worker_status": None}).status_code == 200

    assert sorted(list_models(ctl)) == ["alpha", "beta", "vision"]
    assert sorted(post(ctl + "/list_language_models").json()["models"]) == ["alpha", "beta"]
    assert post(ctl + "/list_multimodal_models").json()["models"] == ["vision"]
    assert requests.get(ctl + "/test_connection").json() == "success"
    # the live workers' status, aggregated (the manual entry does not answer)
    st = post(ctl + "/worker_get_status").json()
    assert st == {"model_names": ["alpha", "beta"], "speed": 2, "queue_length": 0}

    assert post(ctl + "/receive_heart_beat", {"worker_name": a1, "queue_length": 3}).json() == {"exist": True}
    assert post(ctl + "/receive_heart_beat", {"worker_name": "http://nowhere:1", "queue_length": 0}).json() == \
        {"exist": False}
    assert workers_of(ctl, "beta", 3) == {a2}
    assert workers_of(ctl, "nothing") == {""}
    # malformed bodies are client errors, not crashes
    assert requests.post(ctl + "/register_worker", data=b"{not json").status_code == 400
    assert post(ctl + "/get_worker_address", {"modelx": 1}).status_code == 400
    assert post(ctl + "/receive_heart_beat", {"worker_name": a1}).status_code == 400
    assert ctl_p.alive()


@pytest.mark.parametrize("method", ["shortest_queue", "lottery"])
def test_dispatch_two_workers_of_one_model(fastchat_bin, tmp_path, stop_all, method):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path, "--dispatch-method", method)
    stop_all(ctl_p)
    # heartbeats far apart so they do not reset the queue lengths mid-test
    w1, a1 = start_fake_worker(tmp_path, ctl, "m", "--heartbeat", "1000")
    stop_all(w1)
    w2, a2 = start_fake_worker(tmp_path, ctl, "m", "--heartbeat", "1000")
    stop_all(w2)
    picks = [post(ctl + "/get_worker_address", {"model": "m"}).json()["address"] for _ in range(60)]
    assert set(picks) == {a1, a2}
    if method == "shortest_queue":
        # every pick counts into the picked queue: the two alternate
        assert all(picks[i] != picks[i + 1] for i in range(len(picks) - 1)), picks[:8]
        # a heartbeat reports a long queue on one: the other gets the next picks
        assert post(ctl + "/receive_heart_beat", {"worker_name": a1, "queue_length": 100}).json()["exist"]
        assert workers_of(ctl, "m", 10) == {a2}
    else:
        assert 10 <= picks.count(a1) <= 50, picks.count(a1)


def test_heartbeat_expiry(fastchat_bin, tmp_path, stop_all):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path, env={"FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION": "2"})
    stop_all(ctl_p)
    live, live_addr = start_fake_worker(tmp_path, ctl, "live", "--heartbeat", "0.4")
    stop_all(live)
    status = {"model_names": ["silent"], "speed": 1, "queue_length": 0}
    post(ctl + "/register_worker", {"worker_name": "http://127.0.0.1:7", "check_heart_beat": True,
                                    "worker_status": status})
    post(ctl + "/register_worker", {"worker_name": "http://127.0.0.1:8", "check_heart_beat": False,
                                    "worker_status": {**status, "model_names": ["manual"]}})
    assert sorted(list_models(ctl)) == ["live", "manual", "silent"]
    # the silent worker expires; the manual one (check_heart_beat false) and the beating one stay
    wait_until(lambda: "silent" not in list_models(ctl), 10, "the silent worker's expiry", [ctl_p])
    assert sorted(list_models(ctl)) == ["live", "manual"]
    assert workers_of(ctl, "live") == {live_addr}


def test_refresh_drops_a_dead_worker(fastchat_bin, tmp_path, stop_all):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    stop_all(ctl_p)
    w1, a1 = start_fake_worker(tmp_path, ctl, "m", "--heartbeat", "1000")
    stop_all(w1)
    w2, a2 = start_fake_worker(tmp_path, ctl, "m", "--heartbeat", "1000")
    stop_all(w2)
    assert workers_of(ctl, "m", 4) == {a1, a2}
    w1.kill()
    assert post(ctl + "/refresh_all_workers").status_code == 200
    assert workers_of(ctl, "m", 6) == {a2}
    assert list_models(ctl) == ["m"]
    assert post(ctl + "/worker_get_status").json()["speed"] == 1


def test_worker_generate_stream_relay(fastchat_bin, tmp_path, stop_all):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    stop_all(ctl_p)
    w, _ = start_fake_worker(tmp_path, ctl, "m")
    stop_all(w)
    r = requests.post(ctl + "/worker_generate_stream", json={"model": "m", "prompt": "hi", "max_new_tokens": 4},
                      stream=True, timeout=30)
    raw = r.content
    assert raw.endswith(b"\0")
    chunks = [json.loads(c) for c in raw.split(b"\0") if c]
    assert chunks[-1]["finish_reason"] == "length" and chunks[-1]["text"] == "Hello from the scripted"
    assert all(c["error_code"] == 0 for c in chunks)
    # no worker for the model: one chunk with CONTROLLER_NO_WORKER
    r = requests.post(ctl + "/worker_generate_stream", json={"model": "none", "prompt": "hi"}, timeout=30)
    chunks = [json.loads(c) for c in r.content.split(b"\0") if c]
    assert [c["error_code"] for c in chunks] == [50005]
    assert chunks[0]["text"].startswith("**NETWORK ERROR")


# ---- through the API server ----

def test_killed_worker_dropped_requests_go_to_survivor(fastchat_bin, model_path, tmp_path, stop_all):
    import openai
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path, "--dispatch-method", "lottery")
    stop_all(ctl_p)
    w1, a1 = start_worker(fastchat_bin, tmp_path, ctl, model_path, "smol", "--threads", "1")
    stop_all(w1)
    w2, a2 = start_worker(fastchat_bin, tmp_path, ctl, model_path, "smol", "--threads", "1")
    stop_all(w2)
    wait_until(lambda: workers_of(ctl, "smol", 20) == {a1, a2}, 20, "both workers registered", [w1, w2])
    api_p, api = start_api(fastchat_bin, tmp_path, ctl)
    stop_all(api_p)
    client = openai.OpenAI(base_url=api + "/v1", api_key="none", max_retries=0)
    r = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert r.choices[0].message.content

    w1.kill()
    for _ in range(6):  # lottery would pick the dead one half the time
        r = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert r.choices[0].message.content
        s = client.chat.completions.create(model="smol", messages=[{"role": "user", "content": "Hi"}],
                                           max_tokens=4, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    assert workers_of(ctl, "smol", 10) == {a2}
    assert [m.id for m in client.models.list()] == ["smol"]


def test_scripted_worker_dies_mid_stream(fastchat_bin, tmp_path, stop_all):
    import openai
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    stop_all(ctl_p)
    api_p, api = start_api(fastchat_bin, tmp_path, ctl)
    stop_all(api_p)
    for endpoint, body in [("chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                           ("completions", {"prompt": "hi"})]:
        w, _ = start_fake_worker(tmp_path, ctl, "dying", "--die-after", "3", "--delay", "0.05")
        stop_all(w)
        r = requests.post(f"{api}/v1/{endpoint}", json={"model": "dying", "stream": True, **body}, stream=True,
                          timeout=60)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
        assert events[-1] == "[DONE]", events
        err = json.loads(events[-2])
        assert err["error_code"] == 50001 and err["error"]["code"] == 50001 and "NETWORK ERROR" in err["text"]
        content = [json.loads(e) for e in events[:-2]]
        assert all("choices" in c for c in content) and len(content) >= 2
        w.stop()
        post(ctl + "/refresh_all_workers")
        assert "dying" not in list_models(ctl)

    w, _ = start_fake_worker(tmp_path, ctl, "dying", "--die-after", "3", "--delay", "0.05")
    stop_all(w)
    client = openai.OpenAI(base_url=api + "/v1", api_key="none", max_retries=0)
    stream = client.chat.completions.create(model="dying", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert api_p.alive() and ctl_p.alive()


def test_real_worker_killed_mid_stream(fastchat_bin, model_path, tmp_path, stop_all):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    stop_all(ctl_p)
    w, _ = start_worker(fastchat_bin, tmp_path, ctl, model_path, "smol", "--stream-interval", "1")
    stop_all(w)
    api_p, api = start_api(fastchat_bin, tmp_path, ctl)
    stop_all(api_p)
    body = {"model": "smol", "stream": True, "max_tokens": 2000, "temperature": 0,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon, in many chapters."}]}
    r = requests.post(api + "/v1/chat/completions", json=body, stream=True, timeout=120)
    assert r.status_code == 200
    events, data, killed = [], [], False
    t0 = time.time()
    for raw in r.iter_lines():
        line = raw.decode()
        if line.startswith("data: "):
            events.append(line[6:])
            if not killed and '"content"' in line:
                w.kill()  # the first content chunk is out: the worker dies mid-generation
                killed = True
        assert time.time() - t0 < 100, "the stream hangs after the worker died"
    assert killed and events[-1] == "[DONE]", events[-3:]
    err = json.loads(events[-2])
    assert err["error_code"] != 0 and "error" in err, events[-2]
    assert api_p.alive()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "fake-worker":
    fake_worker_main(sys.argv[2:])
