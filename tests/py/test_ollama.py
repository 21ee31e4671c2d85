"""test_ollama.py: Ollama's API, /health and /metrics on the API server's port.

The client is the official `ollama` package from PyPI (tests/requirements-ollama.txt).
It needs pydantic 2 while fschat pins pydantic 1, so scripts/setup.sh installs it
apart into .venv/ollama-py and each check runs it in a subprocess with that
directory first on PYTHONPATH; the client parses every answer with its own
pydantic models (ChatResponse, GenerateResponse, ListResponse, ShowResponse,
EmbedResponse, ProcessResponse), so a field of the wrong type fails here.

- chat and generate, streamed and not, against `fastchat serve` on the default
  model: greedy text equals what /v1/chat/completions gives for the same
  request; the streamed pieces join to the non-streamed text; done, done_reason
  ("length" at num_predict), token counts and nanosecond durations;
- list (tags), ps, show, embed (same vectors as /v1/embeddings), embeddings, version;
- errors as Ollama sends them ({"error"} with 404 for an unknown model, 400 for
  a malformed body, wrong types, a `format` that is neither "json" nor a schema we
  can compile), raised by the client as ResponseError;
- `format`: "json" and JSON schemas on chat and generate, streamed and not, at
  temperature 0 and 1: every answer parses and validates (jsonschema);
- /metrics parsed by prometheus_client's text parser, its counters moving;
- /health 503 while no worker has registered, 200 once one has (split layout).
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import time_factor
from test_controller import Proc, free_port, start_api, start_controller, start_worker, wait_until

ROOT = Path(__file__).resolve().parents[2]
OLLAMA_PY = ROOT / ".venv" / "ollama-py"
MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def api(fastchat_bin, model_path, tmp_path_factory):
    if not (OLLAMA_PY / "ollama").is_dir():
        pytest.fail(f"{OLLAMA_PY}: the ollama client is missing\nhint: scripts/setup.sh", pytrace=False)
    tmp = tmp_path_factory.mktemp("ollama")
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--controller-port", ports[0],
              "--worker-port", ports[1], "--port", ports[2], "--threads", "1"], tmp / "serve.log")
    url = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, 120, "fastchat serve", [p])
        yield url
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


def client(url, code):
    """Runs code with `c = ollama.Client(host=url)` in the client's own
    interpreter; returns what it prints as JSON (the last line)."""
    prelude = ("import json, ollama\n"
               f"c = ollama.Client(host={url!r})\n"
               "def out(x):\n"
               "    print(json.dumps(x))\n"
               "def dump(r):\n"
               "    return r.model_dump(mode='json', exclude_none=True)\n")
    env = dict(os.environ, PYTHONPATH=str(OLLAMA_PY))
    r = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                       env=env, timeout=120 * time_factor())
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


GREEDY = {"temperature": 0, "num_predict": 12, "seed": 1}


def openai_chat(url, messages, max_tokens=12):
    r = requests.post(url + "/v1/chat/completions", json={"model": MODEL, "messages": messages, "temperature": 0,
                                                          "max_tokens": max_tokens, "seed": 1}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_chat_and_stream(api):
    msgs = [{"role": "system", "content": "You are a storyteller."}, {"role": "user", "content": "Tell me a long story about a dragon."}]
    res = client(api, f"""
        r = c.chat(model={MODEL!r}, messages={msgs!r}, options={GREEDY!r})
        parts = [dump(x) for x in c.chat(model={MODEL!r}, messages={msgs!r}, options={GREEDY!r}, stream=True)]
        out({{"one": dump(r), "parts": parts}})
    """)
    one, parts = res["one"], res["parts"]
    ref = openai_chat(api, msgs)
    assert one["message"]["role"] == "assistant"
    assert one["message"]["content"] == ref["choices"][0]["message"]["content"]
    assert one["done"] is True and one["done_reason"] == "length"
    assert one["eval_count"] == 12 and one["prompt_eval_count"] == ref["usage"]["prompt_tokens"]
    for k in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(one[k], int) and one[k] > 0, k
    assert one["total_duration"] >= one["prompt_eval_duration"]
    assert one["created_at"].endswith("Z") and "T" in one["created_at"]
    assert len(parts) >= 3 and all(not p["done"] for p in parts[:-1]) and parts[-1]["done"] is True
    assert "".join(p["message"]["content"] for p in parts) == one["message"]["content"]
    assert parts[-1]["eval_count"] == 12


def test_generate_and_stream(api):
    res = client(api, f"""
        r = c.generate(model={MODEL!r}, prompt="Write a long poem about the sea.", system="Answer briefly.", options={GREEDY!r})
        parts = [dump(x) for x in c.generate(model={MODEL!r}, prompt="Write a long poem about the sea.", system="Answer briefly.",
                                             options={GREEDY!r}, stream=True)]
        raw = c.generate(model={MODEL!r}, prompt="The capital of France is", raw=True, options={GREEDY!r})
        load = c.generate(model={MODEL!r})
        out({{"one": dump(r), "parts": parts, "raw": dump(raw), "load": dump(load)}})
    """)
    ref = openai_chat(api, [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Write a long poem about the sea."}])
    assert res["one"]["response"] == ref["choices"][0]["message"]["content"]
    assert res["one"]["done"] and res["one"]["eval_count"] == 12
    assert "".join(p["response"] for p in res["parts"]) == res["one"]["response"]
    assert res["parts"][-1]["done"] and not res["parts"][0]["done"]
    # raw: the prompt goes as it is (a completion), compared with /v1/completions
    cref = requests.post(api + "/v1/completions", json={"model": MODEL, "prompt": "The capital of France is",
                                                        "temperature": 0, "max_tokens": 12, "seed": 1}, timeout=60)
    assert res["raw"]["response"] == cref.json()["choices"][0]["text"]
    assert res["load"]["done"] and res["load"]["done_reason"] == "load" and res["load"]["response"] == ""


def test_list_ps_show_version(api):
    res = client(api, f"""
        out({{"list": dump(c.list()), "ps": dump(c.ps()), "show": dump(c.show({MODEL!r}))}})
    """)
    names = [m["model"] for m in res["list"]["models"]]
    assert names == [MODEL]
    assert res["list"]["models"][0]["details"]["format"] == "gguf"
    assert res["list"]["models"][0]["details"]["quantization_level"] == "Q4_1"
    assert [m["model"] for m in res["ps"]["models"]] == [MODEL]
    assert res["show"]["details"]["format"] == "gguf" and "completion" in res["show"]["capabilities"]
    v = requests.get(api + "/api/version", timeout=10)
    assert v.status_code == 200 and v.json()["version"]


def test_embed(api):
    res = client(api, f"""
        e = c.embed(model={MODEL!r}, input=["hello world", "a second text"])
        one = c.embed(model={MODEL!r}, input="hello world")
        old = c.embeddings(model={MODEL!r}, prompt="hello world")
        out({{"e": dump(e), "one": dump(one), "old": dump(old)}})
    """)
    ref = requests.post(api + "/v1/embeddings", json={"model": MODEL, "input": ["hello world", "a second text"]},
                        timeout=60).json()
    want = [d["embedding"] for d in ref["data"]]
    assert len(res["e"]["embeddings"]) == 2
    for got, w in zip(res["e"]["embeddings"], want):
        assert len(got) == len(w) and max(abs(a - b) for a, b in zip(got, w)) < 1e-6
    assert res["e"]["prompt_eval_count"] == ref["usage"]["prompt_tokens"]
    assert max(abs(a - b) for a, b in zip(res["one"]["embeddings"][0], want[0])) < 1e-6
    assert max(abs(a - b) for a, b in zip(res["old"]["embedding"], want[0])) < 1e-6


def test_client_errors(api):
    res = client(api, f"""
        errs = {{}}
        for name, call in [("unknown", lambda: c.chat(model="no-such-model", messages=[{{"role": "user", "content": "hi"}}])),
                           ("unknown_gen", lambda: c.generate(model="no-such-model", prompt="hi")),
                           ("unknown_stream", lambda: list(c.chat(model="no-such-model", stream=True,
                                                                  messages=[{{"role": "user", "content": "hi"}}]))),
                           ("unknown_show", lambda: c.show("no-such-model")),
                           ("unknown_embed", lambda: c.embed(model="no-such-model", input="x")),
                           ("format", lambda: c.chat(model={MODEL!r}, format={{"type": "object", "not": {{}}}},
                                                     messages=[{{"role": "user", "content": "hi"}}])),
                           ("bad_option", lambda: c.generate(model={MODEL!r}, prompt="hi",
                                                             options={{"temperature": "hot"}}))]:
            try:
                call()
                errs[name] = None
            except ollama.ResponseError as e:
                errs[name] = [e.status_code, e.error]
        out(errs)
    """)
    assert res["unknown"] == [404, 'model "no-such-model" not found, try pulling it first']
    assert res["unknown_gen"][0] == 404 and res["unknown_stream"][0] == 404
    assert res["unknown_show"][0] == 404 and res["unknown_embed"][0] == 404
    assert res["format"][0] == 400 and res["format"][1].startswith("invalid format: "), res["format"]
    assert res["bad_option"][0] == 400 and "temperature" in res["bad_option"][1]


@pytest.mark.parametrize("path,body,status", [
    ("/api/chat", "{not json", 400),
    ("/api/chat", "", 400),
    ("/api/chat", "[]", 400),
    ("/api/chat", '{"messages": []}', 400),
    ("/api/chat", '{"model": 3}', 400),
    ("/api/chat", json.dumps({"model": MODEL, "messages": "hi"}), 400),
    ("/api/chat", json.dumps({"model": MODEL, "messages": [{"role": "user", "content": 5}]}), 400),
    ("/api/chat", json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}), 400),
    ("/api/chat", json.dumps({"model": MODEL, "stream": "yes", "messages": []}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": ["x"]}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "options": {"num_predict": 1.5}}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "options": {"stop": [1]}}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "format": "yaml"}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "format": 7}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "format": {"type": "string", "enum": []}}), 400),
    ("/api/chat", json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x"}],
                              "format": {"type": "object", "not": {}}}), 400),
    ("/api/generate", json.dumps({"model": MODEL, "prompt": "x", "options": {"top_p": 7}}), 400),
    ("/api/embed", json.dumps({"model": MODEL, "input": [1, 2]}), 400),
    ("/api/show", "{}", 400),
])
def test_malformed_bodies(api, path, body, status):
    r = requests.post(api + path, data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()
    assert list(err) == ["error"] and isinstance(err["error"], str) and err["error"]


FORMAT_SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}},
     "required": ["name", "age"]},
    {"type": "object", "properties": {"colors": {"type": "array", "items": {"enum": ["red", "green", "blue"]},
                                                 "minItems": 1, "maxItems": 3}},
     "required": ["colors"]},
    {"type": "array", "items": {"type": "number"}, "maxItems": 4},
]


def test_format(api):
    """format "json" and schemas through the official client; every answer
    parses, and validates against its schema."""
    res = client(api, f"""
        msgs = [{{"role": "user", "content": "Describe a person as JSON."}}]
        schemas = {FORMAT_SCHEMAS!r}
        got = []
        for temp in (0, 1):
            opts = {{"temperature": temp, "num_predict": 96, "seed": 3}}
            r = c.chat(model={MODEL!r}, messages=msgs, format="json", options=opts)
            got.append(["json", r.message.content, r.done_reason])
            r = c.generate(model={MODEL!r}, prompt="Give me JSON.", format="json", options=opts)
            got.append(["json", r.response, r.done_reason])
            for i, sc in enumerate(schemas):
                r = c.chat(model={MODEL!r}, messages=msgs, format=sc, options=opts)
                got.append([i, r.message.content, r.done_reason])
                parts = list(c.generate(model={MODEL!r}, prompt="JSON please", format=sc, options=opts, stream=True))
                got.append([i, "".join(p.response for p in parts), parts[-1].done_reason])
        out(got)
    """)
    import jsonschema
    assert len(res) == 2 * (2 + 2 * len(FORMAT_SCHEMAS))
    for which, text, why in res:
        if why == "length":
            continue  # cut by num_predict: a prefix of valid JSON, not checked
        v = json.loads(text)
        if which == "json":
            assert isinstance(v, dict), text
        else:
            jsonschema.validate(v, FORMAT_SCHEMAS[which])
    # most answers end before the limit (the grammar closes them)
    assert sum(why != "length" for _, _, why in res) >= len(res) // 2, res


def metrics(url):
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_move(api):
    before = metrics(api)
    m = (("model", MODEL),)
    r = requests.post(api + "/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}],
                                               "options": {"num_predict": 5, "temperature": 0}}, timeout=60)
    assert r.status_code == 200
    last = json.loads(r.text.strip().splitlines()[-1])
    requests.post(api + "/api/chat", json={"model": "no-such-model", "messages": []}, timeout=60)
    after = metrics(api)
    key = ("fastchat_requests_total", (("route", "/api/chat"), ("status", "200")))
    assert after[key] == before.get(key, 0) + 1
    key404 = ("fastchat_requests_total", (("route", "/api/chat"), ("status", "404")))
    assert after[key404] == before.get(key404, 0) + 1
    for name, n in (("fastchat_prompt_tokens_total", last["prompt_eval_count"]),
                    ("fastchat_completion_tokens_total", 5)):
        assert after[(name, m)] == before.get((name, m), 0) + n, name
    ttft = ("fastchat_time_to_first_token_seconds_count", m)
    assert after[ttft] == before.get(ttft, 0) + 1
    inf = ("fastchat_time_to_first_token_seconds_bucket", (("le", "+Inf"), ("model", MODEL)))
    assert after[inf] == after[ttft]
    assert ("fastchat_inter_token_latency_seconds_count", m) in after
    assert after[("fastchat_requests_in_flight", ())] == 0
    assert after[("fastchat_queue_length", ())] == 0
    # every route of the server is counted, the OpenAI ones too
    r = requests.post(api + "/v1/chat/completions", json={"model": MODEL, "max_tokens": 1,
                                                          "messages": [{"role": "user", "content": "Hi"}]}, timeout=60)
    bad = requests.post(api + "/v1/chat/completions", json={"model": MODEL, "messages": 3}, timeout=60)
    assert r.status_code == 200 and bad.status_code == 400
    again = metrics(api)
    for st in ("200", "400"):
        k = ("fastchat_requests_total", (("route", "/v1/chat/completions"), ("status", st)))
        assert again[k] == after.get(k, 0) + 1, st


def test_health_follows_workers(fastchat_bin, model_path, tmp_path):
    procs = []
    try:
        ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
        procs.append(ctl_p)
        api_p, url = start_api(fastchat_bin, tmp_path, ctl)
        procs.append(api_p)
        r = requests.get(url + "/health", timeout=10)
        assert r.status_code == 503, r.text
        assert requests.get(url + "/api/tags", timeout=10).json() == {"models": []}
        w, _ = start_worker(fastchat_bin, tmp_path, ctl, model_path, MODEL, "--threads", "1")
        procs.append(w)
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, 30, "/health 200", procs)
        assert requests.get(url + "/health", timeout=10).json() == {"status": "ok"}
    finally:
        for p in reversed(procs):
            p.stop()


def test_tokenize_detokenize(api, fastchat_bin, model_path):
    text = "Hello world, héllo <|im_start|> 123"
    r = requests.post(api + "/tokenize", json={"model": MODEL, "prompt": text}, timeout=30)
    assert r.status_code == 200, r.text
    got = r.json()
    # the reference: `fastchat tokenize` on the same file (checked against Hugging Face tokenizers elsewhere)
    ref = subprocess.run([str(fastchat_bin), "tokenize", "--model-path", str(model_path), "--text", text],
                         capture_output=True, text=True, timeout=60, check=True)
    assert got["tokens"] == json.loads(ref.stdout) and got["count"] == len(got["tokens"])
    assert got["max_model_len"] > 0
    tc = requests.post(api + "/api/v1/token_check", json={"prompts": [{"model": MODEL, "prompt": text,
                                                                       "max_tokens": 1}]}, timeout=30).json()
    assert tc["prompts"][0]["tokenCount"] == got["count"]
    d = requests.post(api + "/detokenize", json={"model": MODEL, "tokens": got["tokens"]}, timeout=30)
    assert d.status_code == 200 and d.json() == {"prompt": text}
    for path, body in (("/tokenize", {"model": "no-such-model", "prompt": "x"}),
                       ("/tokenize", {"model": MODEL, "prompt": 3}),
                       ("/tokenize", {"prompt": "x"}),
                       ("/detokenize", {"model": MODEL, "tokens": [-1]}),
                       ("/detokenize", {"model": MODEL, "tokens": "abc"})):
        e = requests.post(api + path, json=body, timeout=30)
        assert e.status_code == 400 and e.json()["message"], (path, body, e.text)


def test_api_keys(fastchat_bin, model_path, tmp_path):
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--controller-port", ports[0],
              "--worker-port", ports[1], "--port", ports[2], "--threads", "1", "--api-keys", "sk-o1"],
             tmp_path / "serve.log")
    url = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, 120, "fastchat serve", [p])
        res = client(url, f"""
            errs = []
            for call in (lambda: c.chat(model={MODEL!r}, messages=[{{"role": "user", "content": "hi"}}]),
                         lambda: c.generate(model={MODEL!r}), lambda: c.list(), lambda: c.show({MODEL!r}),
                         lambda: c.embed(model={MODEL!r}, input="x")):
                try:
                    call()
                    errs.append(None)
                except ollama.ResponseError as e:
                    errs.append([e.status_code, e.error])
            k = ollama.Client(host={url!r}, headers={{"Authorization": "Bearer sk-o1"}})
            r = k.chat(model={MODEL!r}, messages=[{{"role": "user", "content": "hi"}}], options={{"num_predict": 3}})
            out({{"errs": errs, "ok": dump(r), "list": dump(k.list())}})
        """)
        assert res["errs"] == [[401, "unauthorized"]] * 5
        assert res["ok"]["done"] and res["ok"]["eval_count"] <= 3
        assert [m["model"] for m in res["list"]["models"]] == [MODEL]
        assert requests.get(url + "/metrics", timeout=10).status_code == 200
        assert requests.post(url + "/tokenize", json={"model": MODEL, "prompt": "x"}, timeout=10).status_code == 401
    finally:
        p.stop()
