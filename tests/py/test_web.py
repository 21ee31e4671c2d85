"""test_web.py: the web UI's HTTP side (serve/web.c, arena/store.c,
arena/battle.c) against a real `fastchat serve` on the default model, served
under two names (smol-a, smol-b: the same weights with their own system
prompts and sampling settings from an --arena-config file) plus two models
from a FastChat --register-api-endpoint-file (one pointing back at our own
API, one at a dead port).

What is checked, over real sockets:
- the page and the Debian JS libraries are embedded and served, with a CSP;
- battles: names hidden until the vote, both sides stream, one vote per
  battle (a second vote and a vote for an unknown battle are refused), names
  revealed after the vote;
- limits and errors as FastChat words them: the 50-turn limit
  (CONVERSATION_LIMIT_MSG), the 12000-character cut (the whole input kept
  beside it), context overflow, an unreachable endpoint ("worker gone"),
  the per-IP rate limit (RATE_LIMIT_MSG);
- export to FastChat's {YYYY-MM-DD}-conv.json, read by fschat's own
  clean_battle_data.py (the installed package).
"""
import datetime
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest
import requests

from conftest import ROOT, time_factor
from test_controller import Proc, free_port, sse_events, wait_until

CONVERSATION_LIMIT_MSG = ("YOU HAVE REACHED THE CONVERSATION LENGTH LIMIT. PLEASE CLEAR HISTORY AND START A NEW "
                          "CONVERSATION.")
RATE_LIMIT_MSG = "**RATE LIMIT OF THIS MODEL IS REACHED. PLEASE COME BACK LATER OR TRY OTHER MODELS.**"
RATE_LIMIT = 40


def arena_config(tmp, extra_outage=(), max_new_tokens=40):
    cfg = {
        "outage_models": ["remote-dead", *extra_outage],
        "models": {
            "smol-a": {"system_prompt": "You are a helpful assistant. Answer briefly.", "temperature": 0.7,
                       "max_new_tokens": max_new_tokens},
            "smol-b": {"system_prompt": "You are a pirate. Answer briefly, like a pirate.", "temperature": 1.0,
                       "top_p": 0.9, "max_new_tokens": max_new_tokens},
        },
    }
    p = Path(tmp) / "arena.json"
    p.write_text(json.dumps(cfg))
    return p


def endpoint_file(tmp, api_port):
    eps = {
        "remote-smol": {"model_name": "smol-a", "api_type": "openai", "api_base": f"http://127.0.0.1:{api_port}/v1",
                        "api_key": "unused", "anony_only": True,
                        "recommended_config": {"temperature": 0.5, "top_p": 1.0, "max_new_tokens": 40}},
        "remote-dead": {"model_name": "x", "api_type": "openai", "api_base": f"http://127.0.0.1:{free_port()}/v1",
                        "api_key": "k", "anony_only": False},
    }
    p = Path(tmp) / "endpoints.json"
    p.write_text(json.dumps(eps))
    return p


class Stack:
    def __init__(self, binary, model, tmp, db=None, port=None, env=None, max_new_tokens=40, extra=()):
        self.tmp = Path(tmp)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = Path(db) if db else self.tmp / "arena.db"
        self.args = [binary, "serve", "--model-path", model, "--model-names", "smol-a,smol-b",
                     "--controller-port", 0, "--worker-port", 0, "--port", self.port, "--host", "127.0.0.1",
                     "--threads", 2, "--arena-config", arena_config(tmp, max_new_tokens=max_new_tokens),
                     "--register-api-endpoint-file", endpoint_file(tmp, self.port), "--web-db", self.db, *extra]
        # the relays' silence timeout (FastChat's 100 s) scaled like the clients' (a sanitized
        # prefill of a 98-turn chat on the loaded 2-core machine went silent for longer)
        self.env = {"FASTCHAT_WEB_RATE_LIMIT": str(RATE_LIMIT),
                    "FASTCHAT_WORKER_API_TIMEOUT": str(int(100 * time_factor())), **(env or {})}
        self.proc = None
        self.start()

    def start(self):
        n = len(list(self.tmp.glob("serve-*.log")))
        self.proc = Proc(self.args, self.tmp / f"serve-{self.port}-{n}.log", self.env)
        wait_until(lambda: "smol-b" in requests.get(self.url + "/web/api/models", timeout=5).json()["models"], 120,
                   "fastchat serve with the web UI", [self.proc])

    def stop(self):
        self.proc.stop()

    def kill9(self):
        self.proc.kill()

    def post(self, path, body, **kw):
        return requests.post(self.url + path, json=body, timeout=kw.pop("timeout", 120), **kw)

    def new_chat(self, mode, models=None, **kw):
        body = {"mode": mode}
        if models:
            body["models"] = models
        r = self.post("/web/api/chat", body, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    def send(self, chat_id, text=None, headers=None, **params):
        body = dict(params)
        if text is not None:
            body["text"] = text
        r = requests.post(f"{self.url}/web/api/send/{chat_id}", json=body, stream=True, timeout=300 * time_factor(),
                          headers=headers)
        if r.status_code != 200:
            return r.status_code, r.json()
        assert r.headers["content-type"].startswith("text/event-stream")
        return 200, [json.loads(e) for e in sse_events(r)]

    def chat(self, chat_id):
        return requests.get(f"{self.url}/web/api/chat/{chat_id}", timeout=30).json()


def answers(events):
    """Per side: (text, deltas, final event)."""
    out = {}
    for e in events:
        if e.get("type") == "end":
            continue
        t, n, last = out.get(e["side"], ("", 0, None))
        if e["type"] == "delta":
            out[e["side"]] = (t + e["text"], n + 1, last)
        else:
            out[e["side"]] = (t, n, e)
    return out


@pytest.fixture(scope="module")
def stack(fastchat_bin, model_path, tmp_path_factory):
    s = Stack(fastchat_bin, model_path, tmp_path_factory.mktemp("web"))
    yield s
    s.stop()


def test_page_and_assets_embedded(stack):
    r = requests.get(stack.url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "http://" not in r.text and "https://" not in r.text.replace("https://github", "")  # no CDN
    debian = {
        "marked.min.js": "/usr/share/javascript/marked/marked.min.js",
        "highlight.min.js": "/usr/share/javascript/highlight.js/highlight.min.js",
        "katex.min.js": "/usr/share/javascript/katex/katex.min.js",
        "katex.min.css": "/usr/share/javascript/katex/katex.min.css",
        "purify.min.js": "/usr/share/nodejs/dompurify/dist/purify.min.js",
        "fonts/KaTeX_Main-Regular.woff2": "/usr/share/fonts/truetype/katex/KaTeX_Main-Regular.woff2",
    }
    for name, src in debian.items():
        a = requests.get(f"{stack.url}/web/static/{name}", timeout=10)
        assert a.status_code == 200, name
        assert a.content == Path(src).read_bytes(), f"{name} differs from the Debian file"
    assert requests.get(stack.url + "/web/static/app.js", timeout=10).headers["content-type"].startswith(
        "text/javascript")
    assert requests.get(stack.url + "/web/static/nope.js", timeout=10).status_code == 404
    # the API is still there, on the same port
    assert {m["id"] for m in requests.get(stack.url + "/v1/models", timeout=10).json()["data"]} == {"smol-a", "smol-b"}


def test_models_lists(stack):
    j = requests.get(stack.url + "/web/api/models", timeout=30).json()
    # anony_only endpoint models battle but are not in the pickers; outage models do not battle
    assert j["models"] == ["remote-dead", "smol-a", "smol-b"]
    assert j["arena"] == ["remote-smol", "smol-a", "smol-b"]


def test_battle_stream_vote_reveal(stack):
    chat = stack.new_chat("battle")
    assert [s["model"] for s in chat["sides"]] == [None, None], "names must be hidden before the vote"
    st, ev = stack.send(chat["id"], "Name one colour.")
    assert st == 200, ev
    a = answers(ev)
    assert set(a) == {0, 1} and ev[-1] == {"type": "end"}
    for side in (0, 1):
        text, n_deltas, last = a[side]
        assert last["type"] == "done", last
        assert text and n_deltas >= 2, f"side {side} did not stream: {n_deltas} deltas"
    # a second turn before voting
    st, ev = stack.send(chat["id"], "And another one?")
    assert st == 200 and all(answers(ev)[s][2]["type"] == "done" for s in (0, 1))
    got = stack.chat(chat["id"])
    assert [s["model"] for s in got["sides"]] == [None, None]
    assert [len(s["messages"]) for s in got["sides"]] == [4, 4]
    assert got["sides"][0]["messages"][0]["content"] == "Name one colour."
    r = stack.post(f"/web/api/vote/{chat['id']}", {"type": "rightvote"})
    assert r.status_code == 200 and r.json()["saved"] is True
    names = r.json()["models"]
    assert set(names) <= {"smol-a", "smol-b", "remote-smol"} and names[0] != names[1]
    assert [s["model"] for s in stack.chat(chat["id"])["sides"]] == names
    # one vote per battle; no vote for a battle that does not exist; no more turns after the vote
    r2 = stack.post(f"/web/api/vote/{chat['id']}", {"type": "leftvote"})
    assert r2.status_code == 409 and "already" in r2.json()["error"]
    assert stack.post("/web/api/vote/0123456789abcdef0123456789abcdef", {"type": "leftvote"}).status_code == 404
    assert stack.post("/web/api/vote/..%2f", {"type": "leftvote"}).status_code == 404
    assert stack.send(chat["id"], "more?")[0] == 409
    assert stack.post(f"/web/api/vote/{chat['id']}", {"type": "upvote"}).status_code == 400
    con = sqlite3.connect(stack.db)
    assert con.execute("SELECT vote FROM chats WHERE id = ?", (chat["id"],)).fetchone() == ("rightvote",)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_vote_needs_answers_and_valid_type(stack):
    chat = stack.new_chat("battle")
    r = stack.post(f"/web/api/vote/{chat['id']}", {"type": "leftvote"})
    assert r.status_code == 400 and "nothing to vote on" in r.json()["error"]
    assert stack.post(f"/web/api/vote/{chat['id']}", {"type": "bogus"}).status_code == 400
    assert stack.post(f"/web/api/chat", {"mode": "nope"}).status_code == 400
    assert stack.post(f"/web/api/chat", {"mode": "direct", "models": ["not-a-model"]}).status_code == 400


def test_sbs_named_and_contestant_settings(stack):
    chat = stack.new_chat("sbs", ["smol-a", "smol-b"])
    assert [s["model"] for s in chat["sides"]] == ["smol-a", "smol-b"]
    assert "pirate" in chat["sides"][1]["system_message"]
    st, ev = stack.send(chat["id"], "Say hello.", max_new_tokens=16, temperature=0)
    assert st == 200
    r = stack.post(f"/web/api/vote/{chat['id']}", {"type": "tievote"})
    assert r.status_code == 200 and r.json()["models"] == ["smol-a", "smol-b"]
    # the "chat" log records carry each side's sampling settings
    con = sqlite3.connect(stack.db)
    rows = [json.loads(j) for (j,) in con.execute("SELECT json FROM events WHERE chat_id = ? AND type = 'chat'",
                                                  (chat["id"],))]
    assert sorted(r["model"] for r in rows) == ["smol-a", "smol-b"]
    for rec in rows:
        assert set(rec) == {"tstamp", "type", "model", "gen_params", "start", "finish", "state", "ip"}
        # the page's values win in named modes; what it leaves out comes from the model's settings
        top_p = 0.9 if rec["model"] == "smol-b" else 1
        assert rec["gen_params"] == {"temperature": 0, "top_p": top_p, "max_new_tokens": 16}
        assert set(rec["state"]) >= {"template_name", "system_message", "roles", "messages", "offset", "conv_id",
                                     "model_name"}


def test_turn_limit(stack):
    """FastChat's CONVERSATION_TURN_LIMIT (50): 49 turns are written into the
    store directly (50 generations would take a minute), the 50th is
    generated, the 51st refused with FastChat's message."""
    chat = stack.new_chat("direct", ["smol-a"])
    con = sqlite3.connect(stack.db, timeout=30)
    with con:
        for i in range(98):
            con.execute("INSERT INTO messages(chat_id, side, seq, role, content) VALUES(?, 0, ?, ?, ?)",
                        (chat["id"], i, ("user", "assistant")[i % 2], f"turn {i // 2}: ok"))
    hdr = {"X-Forwarded-For": "10.1.0.1"}
    st, ev = stack.send(chat["id"], "Turn 49: say ok.", headers=hdr, max_new_tokens=16, temperature=0)
    assert st == 200 and answers(ev)[0][2]["type"] == "done", ev
    st, body = stack.send(chat["id"], "one more", headers=hdr)
    assert st == 400 and body["error"] == CONVERSATION_LIMIT_MSG
    assert len(stack.chat(chat["id"])["sides"][0]["messages"]) == 100


def test_input_cut_and_kept(stack):
    chat = stack.new_chat("direct", ["smol-a"])
    text = "é<b>x</b> " * 2000  # 20000 characters, 2-byte ones among them
    st, ev = stack.send(chat["id"], text, max_new_tokens=16)
    assert st == 200, ev
    m = stack.chat(chat["id"])["sides"][0]["messages"][0]
    assert m["content"] == text[:12000] and m["input"] == text


def test_context_overflow_is_explained(stack):
    chat = stack.new_chat("direct", ["smol-a"])
    st, ev = stack.send(chat["id"], "\u4e00\u9fa5\u3042\U0001F600" * 3000, max_new_tokens=16)
    assert st == 200
    err = answers(ev)[0][2]
    assert err["type"] == "error" and err["code"] == 40303, err
    assert "too long" in err["message"]
    stored = stack.chat(chat["id"])["sides"][0]["messages"][-1]
    assert stored["error_code"] == 40303 and "(error_code: 40303)" in stored["content"]


def test_unreachable_endpoint_is_explained(stack):
    chat = stack.new_chat("direct", ["remote-dead"])
    st, ev = stack.send(chat["id"], "hello")
    err = answers(ev)[0][2]
    assert err["type"] == "error" and err["code"] == 50006 and "worker" in err["message"], err


def test_remote_endpoint_model(stack):
    """An OpenAI-compatible endpoint (here our own API under another name) is a contestant."""
    # anony_only: not in the pickers, so no direct chat with it
    r = stack.post("/web/api/chat", {"mode": "direct", "models": ["remote-smol"]})
    assert r.status_code == 400
    seen = set()
    for _ in range(30):
        c = stack.new_chat("battle")
        con = sqlite3.connect(stack.db)
        seen |= {m for (m,) in con.execute("SELECT model FROM sides WHERE chat_id = ?", (c["id"],))}
        if "remote-smol" in seen:
            st, ev = stack.send(c["id"], "Hi")
            assert st == 200 and all(answers(ev)[s][2]["type"] == "done" for s in (0, 1)), ev
            break
    assert "remote-smol" in seen and "remote-dead" not in seen


def test_rate_limit(stack):
    hdr = {"X-Forwarded-For": "10.2.0.1"}
    chat = stack.new_chat("direct", ["smol-a"])
    codes = [stack.send(chat["id"], "", headers=hdr)[0] for _ in range(RATE_LIMIT)]
    assert codes == [400] * RATE_LIMIT
    st, body = stack.send(chat["id"], "hi", headers=hdr)
    assert st == 429 and body["error"] == RATE_LIMIT_MSG
    # another client is not affected
    assert stack.send(chat["id"], "", headers={"X-Forwarded-For": "10.2.0.2"})[0] == 400


def test_hostile_text_stored_intact(stack):
    chat = stack.new_chat("direct", ["smol-a"])
    text = "<script>alert(1)</script><img src=x onerror=alert(2)> ' \" \\ \u2028 \U0001F600 ]]> %s {{x}}"
    st, ev = stack.send(chat["id"], text, max_new_tokens=16)
    assert st == 200
    # a NUL cannot be kept in the C strings of the store: refused, not cut short
    st, body = stack.send(chat["id"], "a\u0000b")
    assert st == 400 and "NUL" in body["error"]
    assert stack.chat(chat["id"])["sides"][0]["messages"][0]["content"] == text


def test_export_read_by_fastchat_clean_battle_data(stack, fastchat_bin, tmp_path, monkeypatch):
    # two more battles with known outcomes
    for vote in ("leftvote", "bothbad_vote"):
        c = stack.new_chat("battle")
        assert stack.send(c["id"], "What is the capital of France?")[0] == 200
        assert stack.post(f"/web/api/vote/{c['id']}", {"type": vote}).status_code == 200
    out = tmp_path / "logs"
    out.mkdir()
    p = Proc([fastchat_bin, "web", "--db", stack.db, "--export-logs", out], tmp_path / "export.log")
    p.p.wait(60)
    assert p.p.returncode == 0, p.output()
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    f = out / f"{day}-conv.json"
    rows = [json.loads(line) for line in f.read_text().split("\n") if line]  # not splitlines(): U+2028
    votes = [r for r in rows if r["type"] in ("leftvote", "rightvote", "tievote", "bothbad_vote")]
    con = sqlite3.connect(stack.db)
    n_voted = con.execute("SELECT COUNT(*) FROM chats WHERE vote IS NOT NULL").fetchone()[0]
    assert len(votes) == n_voted >= 3
    for v in votes:
        assert set(v) == {"tstamp", "type", "models", "states", "ip"}
        assert len(v["states"]) == 2
    assert any(r["type"] == "chat" for r in rows)

    # fschat's own cleaner (polyglot, its language detector, is not installable here: stubbed)
    import fastchat.serve.monitor.clean_battle_data as cbd
    monkeypatch.setattr(cbd, "detect_language", lambda text: "English")
    monkeypatch.setattr(cbd, "read_file_parallel", lambda files, num_threads=16: [r for fn in files for r in
                                                                                    cbd.read_file(fn)])
    battles = cbd.clean_battle_data([str(f)], [])
    assert battles, "clean_battle_data kept no battle"
    ids = {b["question_id"] for b in battles}
    for b in battles:
        side_models = {m for (m,) in con.execute(
            "SELECT s.model FROM sides s WHERE s.chat_id = (SELECT chat_id FROM sides WHERE conv_id = ?)",
            (b["question_id"],))}
        assert {b["model_a"], b["model_b"]} <= side_models | {b["model_a"]}
        assert b["winner"] in ("model_a", "model_b", "tie", "tie (bothbad)")
    anony = [b for b in battles if b["anony"]]
    named = [b for b in battles if not b["anony"]]
    assert anony and named  # battles and side-by-side chats
    assert len(ids) == len(battles)


def test_leaderboard_live_and_equal_to_cli(stack, fastchat_bin, tmp_path):
    """The page's leaderboard is `fastchat leaderboard` of the exported logs
    (same cleaning, same Bradley-Terry fit and bootstrap), and it moves
    when a vote arrives."""
    c = stack.new_chat("battle")
    assert stack.send(c["id"], "Name a colour.")[0] == 200
    assert stack.post(f"/web/api/vote/{c['id']}", {"type": "rightvote"}).status_code == 200
    lb = requests.get(stack.url + "/web/api/leaderboard", timeout=60).json()
    out = tmp_path / "logs"
    out.mkdir()
    p = Proc([fastchat_bin, "web", "--db", stack.db, "--export-logs", out], tmp_path / "export.log")
    assert p.p.wait(60) == 0, p.output()
    cli = Proc([fastchat_bin, "leaderboard", "--json", "--log-dir", out], tmp_path / "lb.log")
    assert cli.p.wait(120) == 0, cli.output()
    ref = json.loads(cli.output()[cli.output().index("{"):])
    assert lb["n_battles"] == ref["n_battles"] >= 1
    assert [(m["model"], m["rating"], m["q025"], m["q975"], m["rank_ub"], m["n_battles"]) for m in lb["models"]] == \
        [(m["model"], m["rating"], m["q025"], m["q975"], m["rank_ub"], m["n_battles"]) for m in ref["models"]]
    assert len(lb["win_fraction"]) == len(lb["models"]) == len(lb["battle_count"])
    # one more anonymous vote: the leaderboard counts it
    c = stack.new_chat("battle")
    assert stack.send(c["id"], "Name a fruit.")[0] == 200
    assert stack.post(f"/web/api/vote/{c['id']}", {"type": "leftvote"}).status_code == 200
    lb2 = requests.get(stack.url + "/web/api/leaderboard", timeout=60).json()
    assert lb2["n_votes"] == lb["n_votes"] + 1
    assert lb2["n_battles"] + lb2["n_leaked"] + lb2["n_invalid"] >= lb["n_battles"] + 1


def test_fastchat_web_over_a_controller(stack, fastchat_bin, tmp_path):
    """`fastchat web --controller-address URL`: the web server of its own over
    the module's controller (FastChat's gradio_web_server_multi layout)."""
    log = next(stack.tmp.glob("serve-*.log")).read_text()
    ctl = log.split("controller: ", 1)[1].split()[0]
    port = free_port()
    p = Proc([fastchat_bin, "web", "--controller-address", ctl, "--host", "127.0.0.1", "--port", port,
              "--db", tmp_path / "w.db", "--model-list-mode", "reload"], tmp_path / "web.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/web/api/models", timeout=5).json()["models"] == ["smol-a", "smol-b"],
                   30, "fastchat web", [p])
        assert "Chatbot Arena" in requests.get(url + "/", timeout=5).text
        chat = requests.post(url + "/web/api/chat", json={"mode": "direct", "models": ["smol-b"]}, timeout=30).json()
        r = requests.post(f"{url}/web/api/send/{chat['id']}", json={"text": "Hello!", "max_new_tokens": 16},
                          stream=True, timeout=120)
        ev = [json.loads(e) for e in sse_events(r)]
        assert answers(ev)[0][2]["type"] == "done" and answers(ev)[0][1] >= 1
        assert "ready" in p.output()
    finally:
        p.stop()


def test_make_run_gives_a_battle(fastchat_bin, tmp_path):
    """scripts/run.sh (what `make run` starts): the default model and a second
    contestant made from it battle at once; the web UI is on the API's port."""
    port = free_port()
    p = Proc([ROOT / "scripts" / "run.sh", fastchat_bin, "--port", port, "--controller-port", 0, "--worker-port", 0],
             tmp_path / "run.log", env={"LOGDIR": str(tmp_path)})
    url = f"http://127.0.0.1:{port}"
    try:
        want = ["SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Pirate"]
        wait_until(lambda: requests.get(url + "/web/api/models", timeout=5).json()["arena"] == want, 120,
                   "make run's server", [p])
        assert f"web: http://localhost:{port}/" in p.output()
        r = requests.post(url + "/web/api/chat", json={"mode": "battle"}, timeout=30)
        chat = r.json()
        r = requests.post(f"{url}/web/api/send/{chat['id']}", json={"text": "Say hi in three words."}, stream=True, timeout=300)
        a = answers([json.loads(e) for e in sse_events(r)])
        assert all(a[s][2]["type"] == "done" and a[s][0] for s in (0, 1)), a
        con = sqlite3.connect(tmp_path / "fastchat_arena.db")
        sides = con.execute("SELECT model, system_message FROM sides WHERE chat_id = ?", (chat["id"],)).fetchall()
        assert sorted(m for m, _ in sides) == want
        assert any("pirate" in s for _, s in sides) and any("helpful" in s for _, s in sides)
    finally:
        p.stop()


def test_import_fastchat_logs(fastchat_bin, tmp_path):
    """FastChat's logs (the committed synthetic 6,400-vote log) imported into
    a store: the page's leaderboard equals `fastchat leaderboard` of the
    original files, the export gives back the same lines, and the voted
    battles are chats with their messages."""
    logs = ROOT / "tests" / "data" / "arena" / "logs"
    db = tmp_path / "imp.db"
    p = Proc([fastchat_bin, "web", "--db", db, "--import-logs", logs], tmp_path / "import.log")
    assert p.p.wait(300) == 0, p.output()
    assert "6400 votes as chats" in p.output()
    port = free_port()
    w = Proc([fastchat_bin, "web", "--db", db, "--port", port, "--host", "127.0.0.1", "--controller-address",
              f"http://127.0.0.1:{free_port()}"], tmp_path / "web.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(url + "/web/api/config", timeout=5).status_code == 200, 30, "fastchat web", [w])
        lb = requests.get(url + "/web/api/leaderboard", timeout=120).json()
        cli = Proc([fastchat_bin, "leaderboard", "--json", "--log-dir", logs], tmp_path / "lb.log")
        assert cli.p.wait(120) == 0, cli.output()
        ref = json.loads(cli.output()[cli.output().index("{"):])
        assert lb["n_votes"] == 6400 and lb["n_battles"] == ref["n_battles"]
        assert lb["models"] == ref["models"]
        assert lb["win_fraction"] == ref["win_fraction"] and lb["battle_count"] == ref["battle_count"]
        # models unknown to the controller: no chat model list, but the page works
        assert requests.get(url + "/web/api/models", timeout=30).json()["models"] == []
    finally:
        w.stop()
    out = tmp_path / "out"
    out.mkdir()
    e = Proc([fastchat_bin, "web", "--db", db, "--export-logs", out], tmp_path / "export.log")
    assert e.p.wait(120) == 0, e.output()
    lines = lambda d: sorted(l for f in Path(d).glob("*-conv.json") for l in f.read_text().split("\n") if l)  # noqa
    assert lines(out) == lines(logs)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM chats WHERE vote IS NOT NULL").fetchone()[0] == 6400
    assert con.execute("SELECT COUNT(*) FROM chats WHERE mode = 'sbs'").fetchone()[0] > 0


def test_errors_recorded_and_dropped_by_cleaning(stack):
    """A battle where one side failed is stored with FastChat's error text, so
    FastChat's cleaning (and our leaderboard, which applies it) drops it."""
    before = requests.get(stack.url + "/web/api/leaderboard", timeout=60).json()
    chat = stack.new_chat("sbs", ["remote-dead", "smol-a"])
    st, ev = stack.send(chat["id"], "Hello", max_new_tokens=16)
    a = answers(ev)
    assert a[0][2]["type"] == "error" and a[1][2]["type"] == "done"
    stored = stack.chat(chat["id"])["sides"][0]["messages"][-1]["content"]
    assert "NETWORK ERROR DUE TO HIGH TRAFFIC" in stored and "(error_code: 50006)" in stored
    assert stack.post(f"/web/api/vote/{chat['id']}", {"type": "rightvote"}).status_code == 200
    after = requests.get(stack.url + "/web/api/leaderboard", timeout=60).json()
    assert after["n_votes"] == before["n_votes"] + 1
    assert after["n_leaked"] == before["n_leaked"] + 1  # clean_battle_data's counter for error strings too


def test_direct_votes_logged_as_fastchat(stack):
    chat = stack.new_chat("direct", ["smol-b"])
    assert stack.post(f"/web/api/vote/{chat['id']}", {"type": "upvote"}).status_code == 400  # nothing answered yet
    assert stack.send(chat["id"], "Hi", max_new_tokens=16)[0] == 200
    for t in ("upvote", "downvote", "flag"):
        r = stack.post(f"/web/api/vote/{chat['id']}", {"type": t})
        assert r.status_code == 200 and r.json()["models"] == ["smol-b"]
    assert stack.post(f"/web/api/vote/{chat['id']}", {"type": "leftvote"}).status_code == 400
    con = sqlite3.connect(stack.db)
    rows = [json.loads(j) for (j,) in con.execute(
        "SELECT json FROM events WHERE chat_id = ? AND type != 'chat' ORDER BY id", (chat["id"],))]
    assert [r["type"] for r in rows] == ["upvote", "downvote", "flag"]
    for r in rows:
        assert set(r) == {"tstamp", "type", "model", "state", "ip"} and r["model"] == "smol-b"
        assert r["state"]["model_name"] == "smol-b" and len(r["state"]["messages"]) == 2
        assert r["state"]["messages"][0] == ["user", "Hi"]
