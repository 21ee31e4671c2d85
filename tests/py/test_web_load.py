"""test_web_load.py: the web UI's endpoints under load and failure, against a
real `fastchat serve` on the default model (test_web.Stack):

- time to first token through /web/api/send (what the page reads) against
  the OpenAI API's /v1/chat/completions on the same server, same prompt and
  settings: within 50 ms (medians of interleaved runs);
- 32 browser-like clients (EventSource-style streaming fetches) battling at
  once: every battle gets both answers, no errors;
- votes survive kill -9: four clients vote on 200 battles as fast as they
  can, the server is SIGKILLed in the middle, and after a restart every vote
  that was answered "saved" is in the database, each with its log record.
"""
import json
import sqlite3
import statistics
import threading
import time

import pytest
import requests

from conftest import time_factor
from test_controller import sse_events
from test_web import Stack, answers


@pytest.fixture(scope="module")
def stack(fastchat_bin, model_path, tmp_path_factory):
    # short battle answers (16 tokens) and a worker batching 32 sequences: the load test is about the web side
    s = Stack(fastchat_bin, model_path, tmp_path_factory.mktemp("webload"), env={"FASTCHAT_WEB_RATE_LIMIT": "0"},
              max_new_tokens=16, extra=("--limit-worker-concurrency", 32))
    yield s
    s.stop()


def first_delta_api(stack, system, text):
    body = {"model": "smol-a", "stream": True, "temperature": 0, "max_tokens": 16,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}]}
    t0 = time.perf_counter()
    with requests.post(stack.url + "/v1/chat/completions", json=body, stream=True, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: ") and b'"content"' in line and b'"content":""' not in line:
                return time.perf_counter() - t0
    raise AssertionError("no content from the API")


def first_delta_web(stack, text):
    chat = stack.new_chat("direct", ["smol-a"])
    t0 = time.perf_counter()
    with requests.post(f"{stack.url}/web/api/send/{chat['id']}", json={"text": text, "temperature": 0,
                                                                        "max_new_tokens": 16},
                       stream=True, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith(b"data: ") and b'"delta"' in line:
                return time.perf_counter() - t0
    raise AssertionError("no delta from the web endpoint")


def test_time_to_first_token_vs_api(stack, figures):
    system = stack.chat(stack.new_chat("direct", ["smol-a"])["id"])["sides"][0]["system_message"]
    text = "Explain in one sentence why the sky is blue."
    first_delta_api(stack, system, text)  # warm
    first_delta_web(stack, text)
    # medians of interleaved runs; measured again once when a busy machine (other
    # tests, other builds) put the gap over the bound
    for attempt in range(2):
        api, web = [], []
        for _ in range(7):
            api.append(first_delta_api(stack, system, text))
            web.append(first_delta_web(stack, text))
        a, w = statistics.median(api), statistics.median(web)
        if w - a < 0.050:
            break
    figures(f"web: time to first token, 1 client: /web/api/send {w * 1000:.1f} ms, /v1/chat/completions "
            f"{a * 1000:.1f} ms (medians of 7)")
    assert w - a < 0.050, f"the web endpoint adds {1000 * (w - a):.0f} ms to the first token"


def test_32_clients_battle_at_once(stack, figures):
    results, errors = [None] * 32, []

    def one(i):
        try:
            chat = requests.post(stack.url + "/web/api/chat", json={"mode": "battle"}, timeout=60).json()
            r = requests.post(f"{stack.url}/web/api/send/{chat['id']}", json={"text": f"Client {i}: say hello."},
                              stream=True, timeout=600 * time_factor(),
                              headers={"Accept": "text/event-stream"})
            assert r.status_code == 200, r.text
            ev = [json.loads(e) for e in sse_events(r)]
            results[i] = (chat["id"], answers(ev), ev[-1])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {i}: {e!r}")

    t0 = time.time()
    th = [threading.Thread(target=one, args=(i,)) for i in range(32)]
    for t in th:
        t.start()
    for t in th:
        t.join(600)
    dt = time.time() - t0
    assert not errors, errors
    for i, (cid, a, last) in enumerate(results):
        assert last == {"type": "end"}, (i, last)
        for s in (0, 1):
            assert a[s][2]["type"] == "done" and a[s][0], (i, s, a[s])
    figures(f"web: 32 clients x 2 Arena streams at once: all {64} answers complete in {dt:.1f} s, no errors")


def test_votes_survive_kill9(stack):
    """Answers are written into the store directly (200 generated battles
    would take minutes); the votes go through the server."""
    ids = []
    for _ in range(200):
        ids.append(stack.new_chat("battle")["id"])
    con = sqlite3.connect(stack.db, timeout=30)
    with con:
        for cid in ids:
            for side in (0, 1):
                con.execute("INSERT INTO messages(chat_id, side, seq, role, content) VALUES(?, ?, 0, 'user', 'q')",
                            (cid, side))
                con.execute("INSERT INTO messages(chat_id, side, seq, role, content) VALUES(?, ?, 1, 'assistant', "
                            "'a')", (cid, side))
    con.close()
    confirmed, lock = {}, threading.Lock()
    stop = threading.Event()

    def voter(k):
        s = requests.Session()
        for n, cid in enumerate(ids[k::4]):
            if stop.is_set():
                return
            vote = ("leftvote", "rightvote", "tievote", "bothbad_vote")[n % 4]
            try:
                r = s.post(f"{stack.url}/web/api/vote/{cid}", json={"type": vote}, timeout=10)
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 200 and r.json().get("saved"):
                with lock:
                    confirmed[cid] = vote

    th = [threading.Thread(target=voter, args=(k,)) for k in range(4)]
    for t in th:
        t.start()
    deadline = time.time() + 60
    while len(confirmed) < 60 and time.time() < deadline:
        time.sleep(0.005)
    stack.kill9()
    stop.set()
    for t in th:
        t.join(30)
    assert 60 <= len(confirmed) < 200, f"{len(confirmed)} votes confirmed before the kill"
    stack.start()
    con = sqlite3.connect(stack.db, timeout=30)
    stored = dict(con.execute("SELECT id, vote FROM chats WHERE vote IS NOT NULL"))
    missing = {c: v for c, v in confirmed.items() if stored.get(c) != v}
    assert not missing, f"{len(missing)} confirmed votes lost: {list(missing.items())[:5]}"
    # every stored vote has its log record, and nothing else was half-written
    events = dict(con.execute("SELECT chat_id, type FROM events WHERE type IN "
                              "('leftvote', 'rightvote', 'tievote', 'bothbad_vote')"))
    assert events == stored
    # the restarted server refuses a second vote on them
    some = next(iter(confirmed))
    assert requests.post(f"{stack.url}/web/api/vote/{some}", json={"type": "leftvote"}, timeout=10).status_code == 409
