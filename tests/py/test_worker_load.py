"""test_worker_load.py: one `fastchat worker` under 200 concurrent streams.

The serving issue's "200 concurrent streaming clients against one worker
finish with no error and no leak", black-box, on the default model:

- a round is 200 clients at once on /worker_generate_stream, each its own
  connection: 176 read their stream to the end (short generations, distinct
  prompts, sampled with a seed), 12 hang up after the first chunk of a long
  generation, 12 hang up before any answer (while queued for admission);
- every full stream is well formed: NUL-delimited chunks, error_code 0,
  cumulative text, the last one with finish_reason "stop" or "length" and at
  most max_new_tokens completion tokens; requests really queued (the peak
  queue_length exceeds --limit-worker-concurrency);
- after each round nothing is left behind: queue_length returns to 0 and the
  worker still answers;
- two rounds: the worker's resident memory (VmRSS from /proc) after the
  second exceeds that after the first (allocator and KV pool warmed up) by
  less than RSS_GROWTH_MIB (16; measured: under 1 MiB). A lost per-request
  buffer of the size of the sampler's token counts (2 x vocabulary x 4 bytes,
  384 KiB) would add 75 MiB a round;
- KV blocks: the worker does not report its block usage (/worker_get_status
  is FastChat's {model_names, speed, queue_length}), so the check is
  indirect: the KV budget is small (--kv-cache-tokens 1024, the rounds pass
  ~14x that through it) and after the rounds a prompt of 85% of the budget
  still gets through, which needs the blocks of every finished or cancelled
  sequence back (a request whose prompt does not fit waits in the queue).

Under the sanitizers (make DEBUG=1 test) the leak check is LeakSanitizer's,
at the worker's exit (the fixture requires exit status 0 on SIGTERM), and
there is one round: ASan's quarantine holds freed memory, so VmRSS says
nothing there, and each round takes minutes.
FASTCHAT_LOAD_CLIENTS overrides the 200 (a quick local run);
FASTCHAT_LOAD_TIMEOUT (600 s) bounds each request.

Time: about 1 minute (2 cores, -O3), 5-6 minutes sanitized.
"""
import json
import os
import socket
import threading
import time

import pytest
import requests

from test_worker import free_port, log_tail, post, start_worker, stop

N_CLIENTS = int(os.environ.get("FASTCHAT_LOAD_CLIENTS", "200"))
N_MID = max(1, N_CLIENTS * 6 // 100)     # hang up after the first chunk
N_QUEUED = max(1, N_CLIENTS * 6 // 100)  # hang up before any answer
CONCURRENCY = 16
KV_TOKENS = 1024
MAX_NEW = 8
RSS_GROWTH_MIB = 16
TIMEOUT = float(os.environ.get("FASTCHAT_LOAD_TIMEOUT", "600"))


def is_sanitized(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


@pytest.fixture(scope="module")
def loaded_worker(fastchat_bin, model_path, tmp_path_factory):
    port = free_port()
    p = start_worker(fastchat_bin, model_path, port, "--no-register", "--limit-worker-concurrency", CONCURRENCY,
                     "--kv-cache-tokens", KV_TOKENS, "--seed", 7,
                     log_dir=str(tmp_path_factory.mktemp("worker-load")))
    yield f"http://127.0.0.1:{port}", port, p
    stop(p)
    assert p.returncode == 0, f"worker exited with {p.returncode} on SIGTERM\n{log_tail(p)}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def queue_length(base):
    return post(base, "/worker_get_status", None, timeout=30).json()["queue_length"]


def prompt_of(i):
    return f"<|im_start|>user\nRequest {i}: name a color.<|im_end|>\n<|im_start|>assistant\n"


def full_client(base, i, out):
    try:
        r = requests.post(base + "/worker_generate_stream", timeout=TIMEOUT, stream=True,
                          json={"prompt": prompt_of(i), "temperature": 0.7, "seed": i, "max_new_tokens": MAX_NEW,
                                "echo": False})
        if r.status_code != 200:
            out[i] = f"HTTP {r.status_code}: {r.text[:300]}"
            return
        chunks = [json.loads(c) for c in r.iter_lines(decode_unicode=False, delimiter=b"\0") if c]
        out[i] = chunks
    except Exception as e:  # reported by the test
        out[i] = e


def mid_stream_client(base, i, out):
    try:
        r = requests.post(base + "/worker_generate_stream", timeout=TIMEOUT, stream=True,
                          json={"prompt": prompt_of(i), "temperature": 0.7, "seed": i, "max_new_tokens": 512,
                                "echo": False})
        first = json.loads(next(r.iter_lines(decode_unicode=False, delimiter=b"\0")))
        r.close()  # hang up mid-stream
        out[i] = [first]
    except Exception as e:
        out[i] = e


def queued_client(port, i, out):
    """Sends its request and leaves before the worker answers: with 200
    clients and 16 slots it is still waiting for admission then."""
    try:
        body = json.dumps({"prompt": prompt_of(i), "max_new_tokens": 64}).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /worker_generate_stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            time.sleep(0.2 + (i % 5) * 0.1)
        out[i] = "left"
    except Exception as e:
        out[i] = e


def run_round(base, port):
    out = [None] * N_CLIENTS
    kinds = ["full"] * N_CLIENTS
    for k in range(N_MID):
        kinds[(k * 17 + 3) % N_CLIENTS] = "mid"
    for k in range(N_QUEUED):
        j = (k * 17 + 11) % N_CLIENTS
        while kinds[j] != "full":
            j = (j + 1) % N_CLIENTS
        kinds[j] = "queued"
    peak = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], queue_length(base))
            except requests.RequestException:
                pass
            time.sleep(0.1)

    def target(i):
        if kinds[i] == "mid":
            return mid_stream_client, (base, i, out)
        if kinds[i] == "queued":
            return queued_client, (port, i, out)
        return full_client, (base, i, out)

    threads = [threading.Thread(target=target(i)[0], args=target(i)[1], daemon=True) for i in range(N_CLIENTS)]
    w = threading.Thread(target=watch, daemon=True)
    t0 = time.time()
    w.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, TIMEOUT - (time.time() - t0)))
    elapsed = time.time() - t0
    done.set()
    w.join()
    stuck = [i for i, t in enumerate(threads) if t.is_alive()]
    assert not stuck, f"{len(stuck)} clients still waiting after {TIMEOUT:.0f}s: {stuck[:10]}"

    n_full = 0
    for i, (kind, res) in enumerate(zip(kinds, out)):
        assert not isinstance(res, (Exception, str)) or res == "left", f"client {i} ({kind}): {res!r}"
        if kind == "queued":
            continue
        assert isinstance(res, list) and res, f"client {i} ({kind}): no chunk"
        assert all(c["error_code"] == 0 for c in res), f"client {i} ({kind}): {res}"
        if kind == "mid":
            continue
        n_full += 1
        for a, b in zip(res, res[1:]):
            assert b["text"].startswith(a["text"]), f"client {i}: not cumulative {a['text']!r} {b['text']!r}"
        assert all(c["finish_reason"] is None for c in res[:-1]), f"client {i}: {res}"
        last = res[-1]
        assert last["finish_reason"] in ("stop", "length"), f"client {i}: {last}"
        assert 1 <= last["usage"]["completion_tokens"] <= MAX_NEW, f"client {i}: {last}"
    assert n_full == N_CLIENTS - N_MID - N_QUEUED
    # everything admitted, cancelled or abandoned is gone again (the
    # mid-stream leavers' 512-token generations were cancelled: left to run,
    # 12 of them would not fit the KV budget together and take minutes)
    t1 = time.time()
    while queue_length(base) != 0 and time.time() - t1 < 30:
        time.sleep(0.2)
    assert queue_length(base) == 0, "queue_length does not return to 0 after the round"
    return elapsed, peak[0]


def answer_ok(base, prompt, max_new_tokens=4, timeout=120):
    r = post(base, "/worker_generate", {"prompt": prompt, "temperature": 0, "max_new_tokens": max_new_tokens},
             timeout=timeout).json()
    assert r["error_code"] == 0 and r["finish_reason"] in ("stop", "length"), r
    return r


def test_200_concurrent_streams_no_error_no_leak(loaded_worker, fastchat_bin, figures):
    base, port, proc = loaded_worker
    sanitized = is_sanitized(fastchat_bin)
    answer_ok(base, "Hi")
    rss0 = rss_kib(proc.pid)
    t1, peak1 = run_round(base, port)
    answer_ok(base, "Hi")
    rss1 = rss_kib(proc.pid)
    t2, peak2 = run_round(base, port) if not sanitized else (0.0, 0)
    answer_ok(base, "Hi")
    rss2 = rss_kib(proc.pid)
    assert max(peak1, peak2) > CONCURRENCY, (peak1, peak2)

    # the KV blocks came back: a prompt of 85% of the budget gets through
    words = " ".join(f"w{k}" for k in range(KV_TOKENS))
    n = post(base, "/count_token", {"prompt": words}).json()["count"]
    want = int(KV_TOKENS * 0.85)
    big = " ".join(f"w{k}" for k in range(int(KV_TOKENS * want / n)))
    n_big = post(base, "/count_token", {"prompt": big}).json()["count"]
    assert 0.75 * KV_TOKENS < n_big < 0.9 * KV_TOKENS, n_big
    t3 = time.time()
    r = answer_ok(base, big, max_new_tokens=4, timeout=TIMEOUT)
    assert r["usage"]["prompt_tokens"] == n_big
    t_big = time.time() - t3
    assert queue_length(base) == 0

    growth_mib = (rss2 - rss1) / 1024
    rounds = f"{t1:.1f} s" if sanitized else f"{t1:.1f} s and {t2:.1f} s"
    figures(f"worker load{' (sanitized: 1 round, leaks by LSan)' if sanitized else ''}: {N_CLIENTS} streams/round "
            f"({N_MID} leave mid-stream, {N_QUEUED} while queued): {rounds}, peak queue_length "
            f"{max(peak1, peak2)}; VmRSS {rss0 // 1024} -> {rss1 // 1024} -> {rss2 // 1024} MiB (last: "
            f"{growth_mib:+.1f} MiB); {n_big}-token prompt after: {t_big:.1f} s")
    if not sanitized:
        assert growth_mib < RSS_GROWTH_MIB, f"VmRSS grew by {growth_mib:.1f} MiB over the second round"
