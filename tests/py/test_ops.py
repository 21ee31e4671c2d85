"""test_ops.py: operations of the servers: log files, --ssl, /metrics.

- Log files (FastChat's build_logger): `fastchat controller`, `worker` and
  `api` write $LOGDIR/controller.log, model_worker_<8 hex>.log and
  openai_api_server.log in FastChat's line format
  ("YYYY-mm-dd HH:MM:SS | INFO | <logger> | message"); a log file last
  written two days ago is rotated on the first line, under the name Python's
  own logging.handlers.TimedRotatingFileHandler(when="D", utc=True) gives it
  in the same situation (the reference runs here, on a copy); the size bound
  (FASTCHAT_LOG_MAX_BYTES) rotates to <name>.<date>.N files; LOGDIR= writes
  nothing.
- --ssl (SSL_KEYFILE / SSL_CERTFILE, a certificate made by the test with the
  openssl CLI): `fastchat serve --ssl` answers the official `openai` client
  (httpx verifying against the test certificate) with chat completions,
  streamed and not, and /health over https, while its controller, worker and
  API server talk https among themselves; plain http to the TLS port gets no
  HTTP answer; a missing or unreadable key/certificate stops the server
  with a clear message; Ollama's routes work over it too. `fastchat serve`
  writes the three servers' lines each to its own log file. The same with
  FastChat's split layout: controller, worker and API server, each --ssl.
- /metrics on the same server, parsed by prometheus_client's parser: known
  requests on the OpenAI routes (streamed, not streamed, embeddings) move the
  per-model token counters, request counters and the TTFT / inter-token
  latency histograms by exactly what their usage says (a non-streamed answer
  too, from the worker's first-token timings); the KV cache and
  queue gauges are there per model.
"""
import json
import os
import re
import shutil
import ssl
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import openai
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from test_controller import Proc, free_port, start_api, start_controller, wait_until

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| (INFO|WARNING|ERROR) \| ([a-z_]+) \| .+$")


# ---- log files ----

def python_rotated_name(tmp, name, mtime):
    """What Python's TimedRotatingFileHandler(when="D", utc=True), as
    FastChat's build_logger makes it, renames a log file last modified at
    mtime to, on its first record now."""
    import logging
    import logging.handlers
    d = tmp / "python-ref"
    d.mkdir()
    f = d / name
    f.write_text("old line\n")
    os.utime(f, (mtime, mtime))
    h = logging.handlers.TimedRotatingFileHandler(f, when="D", utc=True, encoding="utf-8")
    log = logging.getLogger("ref-" + str(tmp))
    log.addHandler(h)
    log.setLevel(logging.INFO)
    log.info("new line")
    h.close()
    names = sorted(p.name for p in d.iterdir())
    assert len(names) == 2, names
    return [n for n in names if n != name][0]


def lines_of(path):
    return [ln for ln in path.read_text().splitlines() if ln]


def test_log_files_rotation(fastchat_bin, model_path, tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    old = time.time() - 2 * 86400 - 3600
    (logdir / "controller.log").write_text("2000-01-01 00:00:00 | INFO | controller | old line\n")
    os.utime(logdir / "controller.log", (old, old))
    want_rotated = python_rotated_name(tmp_path, "controller.log", old)
    env = {"LOGDIR": str(logdir)}
    procs = []
    try:
        c, ctl = start_controller(fastchat_bin, tmp_path, env=env)
        procs.append(c)
        wport = free_port()
        w = Proc([fastchat_bin, "worker", "--model-path", model_path, "--model-names", "m", "--port", wport,
                  "--worker-address", f"http://127.0.0.1:{wport}", "--controller-address", ctl, "--threads", "1"],
                 tmp_path / "worker.out", env)
        procs.append(w)
        a, api = start_api(fastchat_bin, tmp_path, ctl, env=env)
        procs.append(a)
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json()["data"], 120, "the worker", procs)
        files = sorted(p.name for p in logdir.iterdir())
        # the old file went where Python's handler puts it, its line intact
        assert want_rotated in files, files
        assert lines_of(logdir / want_rotated) == ["2000-01-01 00:00:00 | INFO | controller | old line"]
        workers = [f for f in files if re.fullmatch(r"model_worker_[0-9a-f]{8}\.log", f)]
        assert len(workers) == 1, files
        for name, logger, needle in (("controller.log", "controller", "register a new worker: http://127.0.0.1"),
                                     (workers[0], "model_worker", "registered http://127.0.0.1"),
                                     ("openai_api_server.log", "openai_api_server", "listening on port")):
            ls = lines_of(logdir / name)
            assert ls, name
            for ln in ls:
                m = LINE.match(ln)
                assert m and m.group(2) == logger, (name, ln)
            assert any(needle in ln for ln in ls), (name, ls)
            assert "old line" not in (logdir / name).read_text()
    finally:
        for p in procs:
            p.stop()


def test_log_size_bound_and_no_logdir(fastchat_bin, tmp_path):
    logdir = tmp_path / "logs"
    c, ctl = start_controller(fastchat_bin, tmp_path, env={"LOGDIR": str(logdir), "FASTCHAT_LOG_MAX_BYTES": "1024"})
    try:
        for i in range(40):  # each an INFO line of ~150 bytes
            requests.post(ctl + "/receive_heart_beat", json={"worker_name": f"http://nowhere-{i:03d}.invalid:1" + "x" * 60,
                                                              "queue_length": 0}, timeout=10)
    finally:
        c.stop()
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    files = sorted(p.name for p in logdir.iterdir())
    parts = [f for f in files if re.fullmatch(rf"controller\.log\.{today}\.\d+", f)]
    assert len(parts) >= 4, files
    total = []
    for f in parts + ["controller.log"]:
        assert (logdir / f).stat().st_size <= 1024, f
        total += lines_of(logdir / f)
    assert sum("receive unknown heart beat" in ln for ln in total) == 40
    # LOGDIR set but empty: FastChat writes no file
    empty = tmp_path / "cwd"
    empty.mkdir()
    port = free_port()
    p = subprocess.Popen([fastchat_bin, "controller", "--port", str(port)], cwd=empty, env=dict(os.environ, LOGDIR=""),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/test_connection", timeout=2).ok, 20, "controller")
    finally:
        p.terminate()
        p.wait(10)
    assert list(empty.iterdir()) == []


# ---- TLS and metrics (one `fastchat serve --ssl`) ----

def make_cert(d):
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture(scope="module")
def tls(fastchat_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    key, cert = make_cert(tmp)
    ports = [free_port() for _ in range(3)]
    env = {"SSL_KEYFILE": str(key), "SSL_CERTFILE": str(cert), "LOGDIR": str(tmp / "logs")}
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--controller-port", ports[0], "--worker-port",
              ports[1], "--port", ports[2], "--threads", "1", "--ssl", "--no-web"], tmp / "serve.log", env)
    url = f"https://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=5, verify=str(cert)).status_code == 200, 120,
                   "fastchat serve --ssl", [p])
        yield {"url": url, "cert": cert, "key": key, "ports": ports, "proc": p, "tmp": tmp}
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


def test_tls_openai_client(tls):
    ctx = ssl.create_default_context(cafile=str(tls["cert"]))
    c = openai.OpenAI(base_url=tls["url"] + "/v1", api_key="x", http_client=httpx.Client(verify=ctx, timeout=60))
    r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=8,
                                  temperature=0)
    assert r.choices[0].message.content and r.usage.completion_tokens > 0
    parts = list(c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi"}],
                                           max_tokens=8, temperature=0, stream=True))
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert text == r.choices[0].message.content
    assert [m.id for m in c.models.list().data] == [MODEL]
    # the workers registered with an https address (the controller calls them over TLS)
    ctl = f"https://127.0.0.1:{tls['ports'][0]}"
    addr = requests.post(ctl + "/get_worker_address", json={"model": MODEL}, verify=str(tls["cert"]), timeout=10)
    assert addr.json()["address"].startswith("https://")
    # Ollama's routes (relayed to the OpenAI ones over loopback https)
    o = requests.post(tls["url"] + "/api/chat", verify=str(tls["cert"]), timeout=60,
                      json={"model": MODEL, "messages": [{"role": "user", "content": "Say hi"}], "stream": False,
                            "options": {"temperature": 0, "num_predict": 8}})
    assert o.status_code == 200 and o.json()["message"]["content"] == text, o.text
    # the Responses API (relayed to the chat route over loopback https too)
    rr = c.responses.create(model=MODEL, input="Say hi", max_output_tokens=8, temperature=0)
    assert rr.output_text == text
    # a client that does not trust the certificate is refused; plain http gets no HTTP answer
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=tls["url"] + "/v1", api_key="x", max_retries=0).models.list()
    plain = tls["url"].replace("https://", "http://")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(plain + "/health", timeout=10)


def test_tls_bad_files(fastchat_bin, tmp_path):
    key, cert = make_cert(tmp_path)
    cases = [({}, "SSL_KEYFILE"),
             ({"SSL_KEYFILE": str(key), "SSL_CERTFILE": str(tmp_path / "missing.pem")}, "missing.pem"),
             ({"SSL_KEYFILE": str(tmp_path), "SSL_CERTFILE": str(cert)}, "SSL_KEYFILE")]
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases.append(({"SSL_KEYFILE": str(key), "SSL_CERTFILE": str(tmp_path / "junk.pem")}, "not a PEM file"))
    for extra, needle in cases:
        env = {k: v for k, v in os.environ.items() if k not in ("SSL_KEYFILE", "SSL_CERTFILE")}
        env.update(extra)
        r = subprocess.run([fastchat_bin, "controller", "--port", str(free_port()), "--ssl"], env=env,
                           capture_output=True, text=True, timeout=20)
        assert r.returncode != 0 and needle in r.stderr, (extra, r.stderr)
    # a key that is not the certificate's
    other = tmp_path / "other"
    other.mkdir()
    key2, _ = make_cert(other)
    env = dict(os.environ, SSL_KEYFILE=str(key2), SSL_CERTFILE=str(cert))
    r = subprocess.run([fastchat_bin, "controller", "--port", str(free_port()), "--ssl"], env=env,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "SSL_KEYFILE" in r.stderr, r.stderr


def scrape(t):
    r = requests.get(t["url"] + "/metrics", timeout=30, verify=str(t["cert"]))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    out, types = {}, {}
    for fam in text_string_to_metric_families(r.text):
        types[fam.name] = fam.type
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out, types


def test_metrics_openai_routes(tls, figures):
    m = (("model", MODEL),)
    before, types = scrape(tls)
    class s:  # requests with the test certificate trusted (Session.verify loses to REQUESTS_CA_BUNDLE)
        post = staticmethod(lambda url, **kw: requests.post(url, verify=str(tls["cert"]), **kw))
    u = tls["url"]
    # streamed: TTFT observed once, ITL once per token after the first
    r = s.post(u + "/v1/chat/completions", timeout=60,
               json={"model": MODEL, "messages": [{"role": "user", "content": "Count to ten"}], "max_tokens": 12,
                     "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    events = [json.loads(ln[6:]) for ln in r.text.splitlines() if ln.startswith("data: {")]
    us1 = events[-1]["usage"]
    mid, _ = scrape(tls)
    # not streamed, and a completion: its TTFT and ITL too (from the worker's "timings")
    r2 = s.post(u + "/v1/completions", json={"model": MODEL, "prompt": "Once upon", "max_tokens": 5}, timeout=60).json()
    us2 = r2["usage"]
    r3 = s.post(u + "/v1/embeddings", json={"model": MODEL, "input": ["a b c", "d"]}, timeout=60).json()
    us3 = r3["usage"]
    after, types = scrape(tls)

    def d(a, b, name, labels=m):
        return a.get((name, labels), 0) - b.get((name, labels), 0)

    assert d(mid, before, "fastchat_prompt_tokens_total") == us1["prompt_tokens"]
    assert d(mid, before, "fastchat_completion_tokens_total") == us1["completion_tokens"]
    assert d(mid, before, "fastchat_model_requests_total") == 1
    assert d(mid, before, "fastchat_time_to_first_token_seconds_count") == 1
    assert d(mid, before, "fastchat_inter_token_latency_seconds_count") == us1["completion_tokens"] - 1
    inf = (("le", "+Inf"), ("model", MODEL))
    assert d(mid, before, "fastchat_time_to_first_token_seconds_bucket", inf) == 1
    assert d(after, mid, "fastchat_prompt_tokens_total") == us2["prompt_tokens"] + us3["prompt_tokens"]
    assert d(after, mid, "fastchat_completion_tokens_total") == us2["completion_tokens"]
    assert d(after, mid, "fastchat_model_requests_total") == 2
    assert d(after, mid, "fastchat_time_to_first_token_seconds_count") == 1
    assert d(after, mid, "fastchat_time_to_first_token_seconds_bucket", inf) == 1
    assert d(after, mid, "fastchat_inter_token_latency_seconds_count") == us2["completion_tokens"] - 1
    assert d(after, mid, "fastchat_time_to_first_token_seconds_sum") > 0
    for route in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
        assert d(after, before, "fastchat_requests_total", (("route", route), ("status", "200"))) == 1, route
    assert types["fastchat_time_to_first_token_seconds"] == "histogram"
    assert types["fastchat_inter_token_latency_seconds"] == "histogram"
    assert after[("fastchat_requests_in_flight", ())] == 0
    assert after[("fastchat_queue_length", ())] == 0
    assert after[("fastchat_model_queue_length", m)] == 0
    total = after[("fastchat_kv_cache_blocks_total", m)]
    used = after[("fastchat_kv_cache_blocks_used", m)]
    assert total > 0 and 0 < used <= total  # the finished sequences stay cached
    assert after[("fastchat_kv_cache_usage_ratio", m)] == pytest.approx(used / total, rel=1e-5)
    assert after[("fastchat_model_requests_running", m)] == 0
    ttft = after[("fastchat_time_to_first_token_seconds_sum", m)] / after[("fastchat_time_to_first_token_seconds_count", m)]
    itl_n = after[("fastchat_inter_token_latency_seconds_count", m)]
    itl = after[("fastchat_inter_token_latency_seconds_sum", m)] / itl_n if itl_n else float("nan")
    figures(f"ops/metrics over TLS: mean TTFT {ttft * 1000:.1f} ms, mean ITL {itl * 1000:.1f} ms, "
            f"KV cache {used:.0f}/{total:.0f} blocks")


def test_tls_log_files(tls):
    # `fastchat serve` writes the three files of FastChat's servers
    files = sorted(p.name for p in (tls["tmp"] / "logs").iterdir())
    assert "controller.log" in files and "openai_api_server.log" in files, files
    assert any(re.fullmatch(r"model_worker_[0-9a-f]{8}\.log", f) for f in files), files
    logs = tls["tmp"] / "logs"
    ctl = lines_of(logs / "controller.log")
    wlog = lines_of(logs / [f for f in files if f.startswith("model_worker_")][0])
    api = lines_of(logs / "openai_api_server.log")
    # each server's lines go to its own file
    assert any("| controller | controller: register a new worker: https://" in ln for ln in ctl), ctl
    assert any("| model_worker | worker: registered https://" in ln for ln in wlog), wlog
    assert any("| openai_api_server | api: listening on port" in ln for ln in api), api
    msg = lambda ln: ln.split(" | ", 3)[3]  # noqa: E731
    # (a line of none of the three servers would go to all three files)
    for own, lines in (("controller: ", ctl), ("worker: ", wlog), ("api: ", api)):
        for other in {"controller: ", "worker: ", "api: "} - {own}:
            assert not any(msg(ln).startswith(other) for ln in lines), (own, lines)


def test_tls_split_servers(fastchat_bin, model_path, tmp_path):
    """FastChat's layout: controller, worker and API server as three
    processes, each with --ssl and https addresses."""
    key, cert = make_cert(tmp_path)
    env = {"SSL_KEYFILE": str(key), "SSL_CERTFILE": str(cert)}
    v = str(cert)
    cport, wport, aport = free_port(), free_port(), free_port()
    ctl, api = f"https://127.0.0.1:{cport}", f"https://127.0.0.1:{aport}"
    procs = [Proc([fastchat_bin, "controller", "--port", cport, "--ssl"], tmp_path / "c.log", env)]
    try:
        wait_until(lambda: requests.get(ctl + "/test_connection", verify=v, timeout=2).ok, 20, "controller", procs)
        procs.append(Proc([fastchat_bin, "worker", "--model-path", model_path, "--port", wport, "--ssl", "--threads", "1",
                           "--worker-address", f"https://127.0.0.1:{wport}", "--controller-address", ctl],
                          tmp_path / "w.log", env))
        procs.append(Proc([fastchat_bin, "api", "--port", aport, "--ssl", "--controller-address", ctl],
                          tmp_path / "a.log", env))
        wait_until(lambda: requests.get(api + "/v1/models", verify=v, timeout=5).json()["data"], 120, "the worker",
                   procs)
        ctx = ssl.create_default_context(cafile=v)
        c = openai.OpenAI(base_url=api + "/v1", api_key="x", http_client=httpx.Client(verify=ctx, timeout=60))
        r = c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        assert r.choices[0].message.content and r.usage.completion_tokens > 0
        # the worker, too, speaks https only
        st = requests.post(f"https://127.0.0.1:{wport}/worker_get_status", json={}, verify=v, timeout=10).json()
        assert st["model_names"] == [MODEL]
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(f"http://127.0.0.1:{wport}/worker_get_status", json={}, timeout=10)
    finally:
        for p in procs:
            p.stop()
