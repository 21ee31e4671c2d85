"""test_hardening.py: the serving stack against a hostile client (issue 9).

Each test reproduces one fault found on the serving stack and checks the
fix, against real processes over real sockets (no mocks):

- relay loops: a controller refuses its own address as a worker, refuses a
  relayed request that already went through it, and one request causes a
  bounded number of threads (read from /proc/<pid>/status), also when the
  loop is reached through the API server (GET /v1/models);
- a non-streamed /v1/completions of 5,000 prompts whose client gives up:
  the server's CPU (utime+stime from /proc/<pid>/stat) is idle within 1 s;
  more than 8,192 prompts x n per request get a 400 (FastChat's 40302);
- SIGTERM and SIGINT under that load: the process exits within 2 s, and the
  clients in flight get a last error (503 body, or an SSE error event); a
  client still sending its request body to each of the three servers
  (controller, worker, API) gets its connection closed, and holds the exit
  back by one shared grace period, not one per server (the servers stop in
  parallel: it took 3.2 s when they stopped one after another);
- max_tokens / max_completion_tokens <= 0, -1 included: FastChat's 400;
- /v1/embeddings: an input over the context gets FastChat's 40303 message
  fast (nothing computed), or is cut with the worker's --embed-in-truncate;
  more than 2,048 inputs or 65,536 tokens per request get a 400;
- a \\u0000 inside a JSON string: 400 (worker, API, controller);
- an empty prompt: a 400 that says so, not 50001 "network error";
- a frozen (SIGSTOP) worker: the client gets an error after the relay's
  stall probe (10 s of silence + a 5 s status request), not after 100 s;
- two different Content-Length headers, or chunked plus Content-Length: 400;
- a GGUF whose context_length is 0 or 0xFFFFFFFF is refused, and a model
  load error is printed once.

Measured figures (thread counts, CPU idle times, exit times) go to the
`figures` block at the end of the run. Under the sanitizers (make DEBUG=1
test: -O1 with ASan, about 10 times slower) one forward step of the engine or
the embedder, the unit of cancellation, takes seconds, so the time bounds of
the disconnect and signal tests are multiplied by SLOW (8) there. And there
(make DEBUG=1 on the shared 2-core machine, load average 20 and more: the
server gets a tenth of a core) wall time says more about the other jobs than
about the server, so the disconnect and signal tests bound the CPU time the
server spends after its client left or after the signal (utime + stime, as
load-independent as a time gets) and give it SLOW_WALL (60) times the
seconds of wall time to stop (the signal test: 2 s x conftest.time_factor(),
FASTCHAT_TIME_FACTOR on a slower machine); both figures are printed.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import time_factor
from test_controller import Proc, free_port, start_api, start_controller, start_worker, wait_until

MODEL = "smol"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def slow_factor(binary):
    """8 for a sanitized build (see the module doc), else 1."""
    with open(binary, "rb") as f:
        return 8 if b"__asan_init" in f.read() else 1


SLOW_WALL = 60  # wall-time allowance of a sanitized build (see the module doc)


def wait_with_cpu(proc, timeout):
    """Waits up to timeout s for a Popen to exit and reaps it with wait4:
    (exit code or None, its CPU seconds over its whole life, utime + stime;
    None while it runs)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime
        time.sleep(0.02)
    return None, None


# ---- /proc helpers ----

def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)


def n_threads(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


class ThreadSampler:
    """Samples a process's thread count every 10 ms on a thread of its own."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop_ = pid, 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop_:
            try:
                self.peak = max(self.peak, n_threads(self.pid))
            except OSError:
                return
            time.sleep(0.01)

    def stop(self):
        self.stop_ = True
        self.t.join()
        return self.peak


def time_to_idle(pid, since, window=0.25, max_ticks=2, limit=10.0, ticks_since=None):
    """Seconds from `since` until the first window of `window` s in which the
    process used at most max_ticks ticks of CPU (a 2-tick slack covers
    heartbeats and pollers); `limit` when it never does. With ticks_since
    (its cpu_ticks at `since`), returns (seconds, CPU seconds it spent from
    `since` to the start of that window)."""
    c0 = cpu_ticks(pid)
    while time.monotonic() - since < limit:
        t0 = time.monotonic()
        c0 = cpu_ticks(pid)
        time.sleep(window)
        if cpu_ticks(pid) - c0 <= max_ticks:
            break
    else:
        t0 = since + limit
    if ticks_since is None:
        return t0 - since
    return t0 - since, (c0 - ticks_since) / CLK_TCK


# ---- deployments ----

def start_serve(binary, model_path, tmp, *extra):
    ports = [free_port() for _ in range(3)]
    p = Proc([binary, "serve", "--model-path", model_path, "--model-names", MODEL, "--controller-port", ports[0],
              "--worker-port", ports[1], "--port", ports[2], *extra], Path(tmp) / f"serve-{ports[2]}.log")
    api = f"http://127.0.0.1:{ports[2]}"
    wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
    return p, api, f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"


@pytest.fixture(scope="module")
def serve(fastchat_bin, model_path, tmp_path_factory):
    p, api, ctl, worker = start_serve(fastchat_bin, model_path, tmp_path_factory.mktemp("serve"))
    try:
        yield p, api, ctl, worker
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


def err_of(r):
    assert r.status_code == 400, (r.status_code, r.text[:500])
    body = r.json()
    return body["code"], body["message"]


# ---- 1. relay loops ----

def register(ctl, name, models=("loopm",)):
    return requests.post(ctl + "/register_worker", timeout=10, json={
        "worker_name": name, "check_heart_beat": False,
        "worker_status": {"model_names": list(models), "speed": 1, "queue_length": 0}})


def test_controller_refuses_itself_and_bounds_a_relay_loop(fastchat_bin, tmp_path, figures):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    try:
        port = ctl.rsplit(":", 1)[1]
        for host in ("127.0.0.1", "localhost", "0.0.0.0", "LOCALHOST", "[::1]"):
            r = register(ctl, f"http://{host}:{port}")
            assert r.status_code == 400 and "own address" in r.json()["detail"], (host, r.status_code, r.text)
        assert requests.post(ctl + "/list_models", json={}, timeout=5).json()["models"] == []
        # an alias the address check cannot know (the machine's name): the relay
        # loop is then caught by the relay header
        alias = f"http://{socket.gethostname()}:{port}"
        assert register(ctl, alias).status_code == 200
        pid = ctl_p.p.pid
        base = n_threads(pid)
        sampler = ThreadSampler(pid)
        t0 = time.monotonic()
        r = requests.post(ctl + "/worker_generate_stream", json={"model": "loopm", "prompt": "hi"}, timeout=10)
        elapsed = time.monotonic() - t0
        time.sleep(0.3)
        peak = sampler.stop()
        chunks = [json.loads(c) for c in r.content.split(b"\0") if c.strip()]
        assert chunks and chunks[-1]["error_code"] == 50006, r.content[:300]
        assert "loop" in chunks[-1]["text"]
        figures(f"relay loop through the controller: {peak} threads at most (idle {base}), answered in {elapsed:.3f} s")
        assert peak <= base + 12, f"{peak} threads (idle {base})"
        assert elapsed < 3
        # the status aggregation refuses the loop too: the alias is dropped
        sampler = ThreadSampler(pid)
        requests.post(ctl + "/refresh_all_workers", json={}, timeout=20)
        peak = sampler.stop()
        assert peak <= base + 12, f"{peak} threads (idle {base})"
        assert requests.post(ctl + "/list_models", json={}, timeout=5).json()["models"] == []
        assert ctl_p.alive()
    finally:
        ctl_p.stop()


def test_loop_through_the_api_is_bounded(fastchat_bin, tmp_path, figures):
    """A worker address that points back at the controller or at the API
    server: the API answers with an error, threads stay bounded."""
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    api_p, api = start_api(fastchat_bin, tmp_path, ctl)
    try:
        port = ctl.rsplit(":", 1)[1]
        assert register(ctl, f"http://{socket.gethostname()}:{port}", ("viactl",)).status_code == 200
        assert register(ctl, api, ("viaapi",)).status_code == 200
        base_c, base_a = n_threads(ctl_p.p.pid), n_threads(api_p.p.pid)
        sc, sa = ThreadSampler(ctl_p.p.pid), ThreadSampler(api_p.p.pid)
        for model in ("viactl", "viaapi"):
            r = requests.post(api + "/v1/chat/completions", timeout=20,
                              json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code >= 400, (model, r.status_code, r.text[:300])
        # /v1/models refreshes the controller, which asks every "worker" its status
        r = requests.get(api + "/v1/models", timeout=20)
        assert r.status_code == 200 and r.json()["data"] == [], r.text[:300]
        pc, pa = sc.stop(), sa.stop()
        figures(f"loop through the API: controller {pc} threads at most (idle {base_c}), API {pa} (idle {base_a})")
        assert pc <= base_c + 12 and pa <= base_a + 12, (pc, base_c, pa, base_a)
        assert ctl_p.alive() and api_p.alive()
    finally:
        api_p.stop()
        ctl_p.stop()


# ---- 2. work for clients that left; prompts per request ----

def post_and_leave(url, body, seconds, pid, min_cpu=0.3, max_seconds=120.0):
    """POSTs body on a socket of its own and hangs up `seconds` after sending
    it, whether the reply is one body (nothing arrives before it is done) or a
    stream (chunks keep arriving, so a per-read timeout would never fire).
    It stays longer, up to max_seconds, until the server (process `pid`) has
    spent min_cpu s of CPU on it: on a loaded machine (or sanitized) the
    server may get a fraction of a core, and a load that has not run yet
    shows nothing. True when the whole reply came before it hung up."""
    u = urllib.parse.urlsplit(url)
    data = json.dumps(body).encode()
    head = (f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(head.encode() + data)
        t0, c0 = time.monotonic(), cpu_ticks(pid)
        while True:
            waited = time.monotonic() - t0
            if waited >= max_seconds or (waited >= seconds and cpu_ticks(pid) - c0 >= min_cpu * CLK_TCK):
                return False
            if select.select([s], [], [], 0.05)[0] and not s.recv(65536):
                return True  # the server answered in full and closed


def test_completions_client_leaves_cpu_goes_idle(serve, figures):
    p, api, _, _ = serve
    slow = slow_factor(p.args[0])
    for stream in (False, True):
        body = {"model": MODEL, "prompt": ["x"] * 5000, "max_tokens": 16, "stream": stream}
        busy0 = cpu_ticks(p.p.pid)
        t0 = time.monotonic()
        finished = post_and_leave(api + "/v1/completions", body, 3.0, p.p.pid)
        left = time.monotonic()
        stay = left - t0
        assert not finished, f"the 5,000 prompts finished within {stay:.0f} s: the test needs a longer load"
        ticks_left = cpu_ticks(p.p.pid)
        busy = ticks_left - busy0
        assert busy >= 0.3 * CLK_TCK, f"only {busy} ticks of CPU in {stay:.0f} s: the load did not run"
        limit = 10.0 if slow == 1 else 1.0 * SLOW_WALL
        idle, cpu = time_to_idle(p.p.pid, left, limit=limit, ticks_since=ticks_left)
        figures(f"5000-prompt /v1/completions (stream={stream}), client gone after {stay:.0f} s: CPU idle after "
                f"{idle:.2f} s ({cpu:.2f} s of CPU)")
        if slow == 1:
            assert idle <= 1.0, f"the server stayed busy {idle:.1f} s after its client left"
        else:  # sanitized: the CPU it spent, and it did go idle
            assert idle < limit and cpu <= 1.0 * slow, \
                f"the server stayed busy {idle:.1f} s ({cpu:.1f} s of CPU) after its client left"
    # and it still serves
    r = requests.post(api + "/v1/completions", json={"model": MODEL, "prompt": "Hello", "max_tokens": 2}, timeout=60)
    assert r.status_code == 200, r.text[:300]


def test_embeddings_client_leaves_cpu_goes_idle(serve, figures):
    p, api, _, _ = serve
    body = {"model": MODEL, "input": [long_text(8000)] * 4}
    busy0 = cpu_ticks(p.p.pid)
    t0 = time.monotonic()
    finished = post_and_leave(api + "/v1/embeddings", body, 3.0, p.p.pid)
    left = time.monotonic()
    assert not finished, f"4 x 8000 tokens embedded within {left - t0:.0f} s: the test needs a longer load"
    busy = cpu_ticks(p.p.pid) - busy0
    assert busy >= 0.3 * CLK_TCK, f"only {busy} ticks of CPU in {left - t0:.0f} s: the load did not run"
    # the embedder stops between forward steps of 128 tokens; deep in an
    # 8000-token input one step takes 0.5-1 s on 2 busy cores (10-20 s
    # sanitized: there the test checks that the work stops, not how fast)
    bound = 2.0 if slow_factor(p.args[0]) == 1 else 60.0
    idle = time_to_idle(p.p.pid, left, limit=max(10.0, bound + 1))
    figures(f"/v1/embeddings of 4 x 8000 tokens, client gone after {left - t0:.0f} s: CPU idle after {idle:.2f} s")
    assert idle <= bound, f"the server stayed busy {idle:.1f} s after its client left"


def test_prompts_per_request_bounded(serve):
    _, api, _, _ = serve
    code, msg = err_of(requests.post(api + "/v1/completions", timeout=30,
                                     json={"model": MODEL, "prompt": ["x"] * 8193, "max_tokens": 1}))
    assert code == 40302 and msg == "8193 is greater than the maximum of 8192 - 'prompt' (prompts x n per request)"
    code, msg = err_of(requests.post(api + "/v1/completions", timeout=30,
                                     json={"model": MODEL, "prompt": ["x"] * 100, "n": 100, "max_tokens": 1}))
    assert code == 40302 and "10000 is greater than the maximum of 8192" in msg


# ---- 3. SIGTERM / SIGINT under load ----

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_under_load_exits_fast(fastchat_bin, model_path, tmp_path, figures, sig):
    p, api, ctl, worker = start_serve(fastchat_bin, model_path, tmp_path)
    results = {}
    slow_clients = []

    def blocking(i):
        try:
            r = requests.post(api + "/v1/completions", timeout=30,
                              json={"model": MODEL, "prompt": ["x"] * 5000, "max_tokens": 1})
            results[i] = (r.status_code, r.text)
        except requests.RequestException as e:
            results[i] = (0, repr(e))

    def streaming():
        try:
            # 64 choices relayed one after the other: still streaming when the signal comes
            r = requests.post(api + "/v1/chat/completions", timeout=30, stream=True,
                              json={"model": MODEL, "stream": True, "max_tokens": 50, "n": 64,
                                    "messages": [{"role": "user", "content": "Count from 1 to 100."}]})
            results["stream"] = (r.status_code, r.content.decode(errors="replace"))
        except requests.RequestException as e:
            results["stream"] = (0, repr(e))

    threads = [threading.Thread(target=blocking, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=streaming))
    try:
        for t in threads:
            t.start()
        time.sleep(3)  # the load is in flight
        # a client in the middle of its request body at each server: each
        # server waits for it until the shared deadline
        for url in (api, ctl, worker):
            c = socket.create_connection(("127.0.0.1", urllib.parse.urlparse(url).port), timeout=5)
            c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"model\":")
            slow_clients.append(c)
        time.sleep(0.2)
        assert p.alive() and not results, results
        slow = slow_factor(fastchat_bin)
        cpu0 = cpu_ticks(p.p.pid) / CLK_TCK
        t0 = time.monotonic()
        p.p.send_signal(sig)
        rc, cpu = wait_with_cpu(p.p, 10 if slow == 1 else 2.0 * SLOW_WALL)
        took = time.monotonic() - t0
        cpu = cpu - cpu0 if cpu is not None else float("nan")
        for t in threads:
            t.join(10)
        figures(f"{signal.Signals(sig).name} under 2 x 5000-prompt load + a stream: exit {rc} after {took:.2f} s "
                f"({cpu:.2f} s of CPU)")
        if slow == 1:
            assert rc == 0 and took <= 2.0, f"exit {rc} after {took:.1f} s\n{p.output()[-2000:]}"
        else:  # sanitized: the CPU it spent after the signal, and the 2 s x time_factor()
            assert rc == 0 and cpu <= 2.0 * slow and took <= 2.0 * time_factor(), \
                f"exit {rc} after {took:.1f} s ({cpu:.1f} s of CPU)\n{p.output()[-2000:]}"
        for i in range(2):
            status, text = results[i]
            assert status == 503 and "shutting down" in json.loads(text)["message"], (status, text[:300])
        status, text = results["stream"]
        assert status == 200 and "shutting down" in text and text.rstrip().endswith("data: [DONE]"), text[-500:]
        for c in slow_clients:  # a closed connection (or an answer), never silence
            c.settimeout(5)
            try:
                got = c.recv(65536)
            except ConnectionResetError:
                got = b""
            assert got == b"" or got.startswith(b"HTTP/1.1 "), got[:200]
        # without log_path (outside run_tests.sh) the sanitizers report on stderr
        assert "Sanitizer" not in p.output() and "runtime error" not in p.output(), p.output()[-3000:]
    finally:
        for c in slow_clients:
            c.close()
        p.stop()


# ---- 4. max_tokens ----

@pytest.mark.parametrize("path,field,value", [
    ("/v1/completions", "max_tokens", -1), ("/v1/completions", "max_tokens", 0),
    ("/v1/chat/completions", "max_tokens", -1), ("/v1/chat/completions", "max_tokens", -100),
    ("/v1/chat/completions", "max_completion_tokens", -1), ("/v1/chat/completions", "max_completion_tokens", 0)])
def test_max_tokens_at_or_below_zero_refused(serve, path, field, value):
    _, api, _, _ = serve
    body = {"model": MODEL, "max_tokens": 4}
    body[field] = value
    if path == "/v1/completions":
        body["prompt"] = "Hello"
    else:
        body["messages"] = [{"role": "user", "content": "Hi"}]
    t0 = time.monotonic()
    code, msg = err_of(requests.post(api + path, json=body, timeout=30))
    assert code == 40302 and msg == f"{value} is less than the minimum of 1 - '{field}'", msg
    assert time.monotonic() - t0 < 5


def test_max_completion_tokens_limits(serve):
    _, api, _, _ = serve
    r = requests.post(api + "/v1/chat/completions", timeout=60, json={
        "model": MODEL, "max_tokens": 50, "max_completion_tokens": 3, "temperature": 0,
        "messages": [{"role": "user", "content": "Write a long story."}]}).json()
    assert r["usage"]["completion_tokens"] <= 3, r


# ---- 5. embeddings ----

def long_text(n_words):
    return " ".join(["hello"] * n_words)


def test_embeddings_over_context_refused_fast(serve):
    _, api, _, worker = serve
    t0 = time.monotonic()
    code, msg = err_of(requests.post(api + "/v1/embeddings", timeout=60,
                                     json={"model": MODEL, "input": long_text(9000)}))
    took = time.monotonic() - t0
    assert code == 40303, msg
    assert msg.startswith("This model's maximum context length is 8192 tokens. However, your messages resulted in ")
    assert msg.endswith(" tokens. Please reduce the length of the messages."), msg
    assert took < 5, f"{took:.1f} s: the input was computed before it was refused"
    # straight to the worker: the same answer in band, at once
    t0 = time.monotonic()
    r = requests.post(worker + "/worker_get_embeddings", json={"input": [long_text(20000)]}, timeout=60).json()
    assert r["error_code"] == 40303 and time.monotonic() - t0 < 5, r


def test_embeddings_counts_bounded(serve):
    _, api, _, worker = serve
    code, msg = err_of(requests.post(api + "/v1/embeddings", timeout=60,
                                     json={"model": MODEL, "input": ["a"] * 2049}))
    assert code == 40302 and msg == "2049 is greater than the maximum of 2048 - 'input'"
    t0 = time.monotonic()
    code, msg = err_of(requests.post(api + "/v1/embeddings", timeout=60,
                                     json={"model": MODEL, "input": [long_text(8000)] * 9}))
    assert code == 40302 and "more than 65536 tokens" in msg and time.monotonic() - t0 < 10, msg
    r = requests.post(worker + "/worker_get_embeddings", json={"input": [long_text(8000)] * 9}, timeout=60).json()
    assert r["error_code"] == 40001 and "65536" in r["text"], r
    r = requests.post(worker + "/worker_get_embeddings", json={"input": ["a"] * 2049}, timeout=60)
    assert r.status_code == 400 and "2048" in r.json()["detail"]


def test_embed_in_truncate(fastchat_bin, model_path, tmp_path):
    """With FastChat's --embed-in-truncate the worker keeps the first context
    tokens instead of refusing (a copy of the model with a 64-token context
    keeps it quick)."""
    small = tmp_path / "ctx64.gguf"
    gguf_with_context(model_path, small, 64)
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    plain_p, plain = start_worker(fastchat_bin, tmp_path, ctl, small, "plain")
    cut_p, cut = start_worker(fastchat_bin, tmp_path, ctl, small, "cut", "--embed-in-truncate")
    try:
        r = requests.post(plain + "/worker_get_embeddings", json={"input": [long_text(100)]}, timeout=120).json()
        assert r["error_code"] == 40303 and "maximum context length is 64 tokens" in r["text"], r
        r = requests.post(cut + "/worker_get_embeddings", json={"input": [long_text(100)]}, timeout=120).json()
        assert r.get("error_code", 0) == 0 and r["token_num"] == 64 and len(r["embedding"][0]) > 0, str(r)[:300]
        r64 = requests.post(cut + "/worker_get_embeddings", json={"input": [long_text(64)]}, timeout=120).json()
        assert r64["token_num"] == 64 and r64["embedding"] == r["embedding"], "not the first 64 tokens"
    finally:
        cut_p.stop()
        plain_p.stop()
        ctl_p.stop()


# ---- smaller ones ----

def test_nul_in_json_strings_refused(serve):
    _, api, ctl, worker = serve
    hdr = {"Content-Type": "application/json"}
    body = '{"model": "%s\\u0000xx", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}' % MODEL
    code, msg = err_of(requests.post(api + "/v1/chat/completions", data=body, headers=hdr, timeout=30))
    assert code == 40001 and "NUL" in msg
    body = '{"model": "%s", "messages": [{"role": "user", "content": "Hi\\u0000 there"}], "max_tokens": 2}' % MODEL
    code, msg = err_of(requests.post(api + "/v1/chat/completions", data=body, headers=hdr, timeout=30))
    assert code == 40001 and "NUL" in msg
    # an escaped backslash before "u0000" is no NUL
    body = '{"model": "%s", "prompt": "a\\\\u0000", "max_tokens": 1}' % MODEL
    assert requests.post(api + "/v1/completions", data=body, headers=hdr, timeout=60).status_code == 200
    r = requests.post(worker + "/worker_generate", data='{"prompt": "Hi\\u0000x", "max_new_tokens": 1}',
                      headers=hdr, timeout=30)
    assert r.status_code == 400 and "NUL" in r.json()["text"]
    r = requests.post(ctl + "/get_worker_address", data='{"model": "%s\\u0000x"}' % MODEL, headers=hdr, timeout=30)
    assert r.status_code == 400


def test_empty_prompt_says_so(serve):
    _, api, _, worker = serve
    code, msg = err_of(requests.post(api + "/v1/completions", json={"model": MODEL, "prompt": "", "max_tokens": 2},
                                     timeout=30))
    assert code == 40302 and "empty" in msg and "NETWORK ERROR" not in msg, msg
    r = requests.post(worker + "/worker_generate", json={"prompt": "", "max_new_tokens": 2}, timeout=30)
    assert r.status_code == 400 and "empty" in r.json()["text"] and r.json()["error_code"] != 50001
    r = requests.post(worker + "/worker_generate", json={"prompt": "Hi", "max_new_tokens": -1}, timeout=30)
    assert r.status_code == 400 and "max_new_tokens" in r.json()["text"]


def raw_http(port, request_bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request_bytes)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
        return data


@pytest.mark.parametrize("headers,body", [
    (b"Content-Length: 2\r\nContent-Length: 5\r\n", b'{}'),
    (b"Content-Length: 2, 5\r\n", b'{}'),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 7\r\n", b"2\r\n{}\r\n0\r\n\r\n"),
])
def test_ambiguous_framing_refused(serve, headers, body):
    _, _, ctl, _ = serve
    port = int(ctl.rsplit(":", 1)[1])
    resp = raw_http(port, b"POST /list_models HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n" + body)
    assert resp.startswith(b"HTTP/1.1 400"), resp[:200]
    # the same with agreeing headers is fine
    ok = raw_http(port, b"POST /list_models HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n"
                        b"Connection: close\r\n\r\n{}")
    assert ok.startswith(b"HTTP/1.1 200"), ok[:200]


def test_frozen_worker_detected(fastchat_bin, model_path, tmp_path, figures):
    ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
    w_p, worker = start_worker(fastchat_bin, tmp_path, ctl, model_path, MODEL)
    api_p, api = start_api(fastchat_bin, tmp_path, ctl)
    try:
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 30, "the model", [w_p])
        out = {}

        def stream():
            t0 = time.monotonic()
            r = requests.post(api + "/v1/chat/completions", stream=True, timeout=120, json={
                "model": MODEL, "stream": True, "max_tokens": 50, "n": 64,
                "messages": [{"role": "user", "content": "Count from 1 to 100."}]})
            out["text"] = r.content.decode(errors="replace")
            out["took"] = time.monotonic() - t0

        t = threading.Thread(target=stream)
        t.start()
        time.sleep(2)
        assert t.is_alive(), "the stream ended before the worker was frozen"
        frozen = time.monotonic()
        os.kill(w_p.p.pid, signal.SIGSTOP)
        try:
            t.join(60)
            took = time.monotonic() - frozen
            figures(f"frozen (SIGSTOP) worker: the streaming client got its error {took:.1f} s after the freeze")
            assert not t.is_alive(), "the client still waits after 60 s"
            assert "stopped answering" in out["text"] and out["text"].rstrip().endswith("data: [DONE]"), \
                out["text"][-400:]
            assert took < 25
        finally:
            os.kill(w_p.p.pid, signal.SIGCONT)
    finally:
        api_p.stop()
        w_p.stop()
        ctl_p.stop()


def gguf_with_context(src, dst, value):
    """A copy of the GGUF src whose llama.context_length is `value` (u32)."""
    data = bytearray(Path(src).read_bytes())
    key = b"llama.context_length"
    i = data.find(struct.pack("<Q", len(key)) + key)
    assert i >= 0, "no llama.context_length key"
    j = i + 8 + len(key)
    assert struct.unpack_from("<I", data, j)[0] == 4  # GGUF_TYPE_UINT32
    struct.pack_into("<I", data, j + 4, value)
    Path(dst).write_bytes(bytes(data))


@pytest.mark.parametrize("value", [0, 0xFFFFFFFF])
def test_unusable_context_length_refused(fastchat_bin, model_path, tmp_path, value):
    bad = tmp_path / "bad.gguf"
    gguf_with_context(model_path, bad, value)
    p = subprocess.run([str(fastchat_bin), "worker", "--model-path", str(bad), "--no-register", "--port", "0"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0, p.stderr[-1000:]
    assert "context length" in p.stderr, p.stderr[-1000:]
    # printed once, before the hint
    assert p.stderr.count("not a usable context length") == 1, p.stderr
