"""test_openai_api.py: the OpenAI-compatible API as the official `openai`
Python client (and plain `requests`) sees it, against two deployments of the
default model:

- "serve": `fastchat serve` (controller + worker + API in one process), with
  --api-keys;
- "split": `fastchat controller`, `fastchat worker` and `fastchat api` as
  three processes, without keys.

Covered: model list; chat and text completions, streamed and not (the SSE
framing of FastChat's §4.7 checked byte by byte); n > 1; stop strings (no
partial stop string reaches the client); max_tokens ending in "length";
logprobs (completions, and chat in OpenAI's shape); embeddings (batched by 4);
API keys (openai.AuthenticationError, FastChat's 401 body); an unknown model,
bad parameters and an oversize prompt (openai.BadRequestError with FastChat's
codes); /api/v1/token_check and /api/v1/chat/completions; seed,
stream_options.include_usage, max_completion_tokens; CORS preflight; a client
that leaves mid-stream; concurrent requests. Generations are short (a few
tokens) to keep the suite fast on 2 cores.
"""
import json
import math
import subprocess
import threading
from types import SimpleNamespace

import openai
import pytest
import requests

from test_controller import Proc, free_port, sse_events, start_api, start_controller, start_worker, wait_until

MODEL = "smol"
KEY = "sk-test-key"
CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module", params=["serve", "split"])
def stack(request, fastchat_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    procs = []
    try:
        if request.param == "serve":
            ports = [free_port() for _ in range(3)]
            p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--model-names", MODEL,
                      "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2],
                      "--api-keys", f"{KEY},sk-second-key"], tmp / "serve.log")
            procs.append(p)
            api, ctl, key = f"http://127.0.0.1:{ports[2]}", f"http://127.0.0.1:{ports[0]}", KEY
            hdr = {"Authorization": f"Bearer {key}"}
            wait_until(lambda: requests.get(api + "/v1/models", headers=hdr, timeout=5).json().get("data"), 120,
                       "fastchat serve", procs)
        else:
            ctl_p, ctl = start_controller(fastchat_bin, tmp)
            procs.append(ctl_p)
            w, _ = start_worker(fastchat_bin, tmp, ctl, model_path, MODEL)
            procs.append(w)
            api_p, api = start_api(fastchat_bin, tmp, ctl)
            procs.append(api_p)
            key = None
            wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 30, "the model listed",
                       procs)
        yield SimpleNamespace(kind=request.param, api=api, ctl=ctl, key=key, procs=procs,
                              headers={"Authorization": f"Bearer {key}"} if key else {})
        for p in procs:
            assert p.alive(), f"{' '.join(p.args[:2])} died:\n{p.output()[-3000:]}"
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=stack.api + "/v1", api_key=stack.key or "no-key-needed", max_retries=0,
                         timeout=120)


def raw_post(stack, path, body, stream=False):
    return requests.post(stack.api + path, json=body, headers=stack.headers, stream=stream, timeout=120)


def greedy_chat(client, **kw):
    args = dict(model=MODEL, messages=CHAT, max_tokens=16, temperature=0)
    args.update(kw)
    return client.chat.completions.create(**args)


def warm(create, **kw):
    """Runs a request once so that the ones compared next start alike.

    Greedy output depends on how the prompt was prefilled (one chunk, or a
    cached prefix plus the rest: the float sums differ and this small
    quantized model has near-ties), so the first request for a prompt can
    differ from the next ones, which reuse the worker's prefix cache the same
    way. Comparisons between requests are made after this warm-up.
    """
    create(**kw)


# ---- models ----

def test_models(stack, client):
    assert [m.id for m in client.models.list()] == [MODEL]
    body = requests.get(stack.api + "/v1/models", headers=stack.headers, timeout=30).json()
    assert body["object"] == "list"
    card = body["data"][0]
    assert card["owned_by"] == "fastchat" and card["root"] == MODEL and card["object"] == "model"
    perm = card["permission"][0]
    assert perm["id"].startswith("modelperm-") and perm["allow_sampling"] is True


# ---- chat completions ----

def test_chat_stream_matches_non_stream(client):
    warm(greedy_chat, client=client)
    r = greedy_chat(client)
    text = r.choices[0].message.content
    assert text and r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == MODEL
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert 0 < r.usage.completion_tokens <= 16

    chunks = list(greedy_chat(client, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
    assert chunks[-1].choices[0].finish_reason == r.choices[0].finish_reason
    assert len({c.id for c in chunks}) == 1


def test_chat_sse_framing(stack):
    r = raw_post(stack, "/v1/chat/completions",
                 {"model": MODEL, "messages": CHAT, "max_tokens": 8, "temperature": 0, "stream": True}, stream=True)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    raw = r.content.decode()
    assert raw.startswith("data: {") and raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[0]["choices"][0]["finish_reason"] is None
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    middle = chunks[1:-1]
    assert middle and all(c["choices"][0]["delta"].get("content") for c in middle)  # empty deltas are skipped
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] in ("stop", "length")
    assert "\ufffd" not in "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)


def test_chat_messages_system_and_history(client):
    msgs = [{"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Arr!"},
            {"role": "user", "content": [{"type": "text", "text": "Where is"}, {"type": "text", "text": "Paris?"}]}]
    r = client.chat.completions.create(model=MODEL, messages=msgs, max_tokens=4, temperature=0)
    assert r.choices[0].message.content


# ---- text completions ----

def test_completions_stream_matches_non_stream(client):
    args = dict(model=MODEL, prompt="The capital of France is", max_tokens=8, temperature=0)
    warm(client.completions.create, **args)
    r = client.completions.create(**args)
    text = r.choices[0].text
    assert text and r.object == "text_completion" and r.id.startswith("cmpl-")
    assert r.choices[0].finish_reason in ("stop", "length")
    streamed = list(client.completions.create(stream=True, **args))
    assert "".join(c.choices[0].text for c in streamed) == text
    assert streamed[-1].choices[0].finish_reason == r.choices[0].finish_reason
    echo = client.completions.create(echo=True, **args)
    assert echo.choices[0].text == "The capital of France is" + text


def test_completions_default_max_tokens_is_16(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", temperature=0)
    assert r.usage.completion_tokens <= 16
    if r.choices[0].finish_reason == "length":
        assert r.usage.completion_tokens == 16


# ---- n, stop, length ----

def test_n_choices(client):
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=6, temperature=1.0, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.content for c in r.choices)
    chunks = list(client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=4, n=2, stream=True))
    roles = [c.choices[0].index for c in chunks if c.choices and c.choices[0].delta.role == "assistant"]
    assert roles == [0, 1]
    finished = sorted(c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason)
    assert finished == [0, 1]
    # completions: choice index runs over prompts x n
    r = client.completions.create(model=MODEL, prompt=["One, two,", "Red, green,"], max_tokens=3, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert 4 <= r.usage.completion_tokens <= 12 and all(c.text for c in r.choices)


def pick_stop(text):
    """A substring of text whose first occurrence starts at k >= 4; (k, s)."""
    for k in range(4, len(text) - 3):
        s = text[k:k + 3]
        if s.strip() and text.find(s) == k:
            return k, s
    pytest.fail(f"no usable stop string in {text!r}")


def test_stop_strings(client):
    warm(greedy_chat, client=client)
    free = greedy_chat(client, max_tokens=24).choices[0].message.content
    k, s = pick_stop(free)
    r = greedy_chat(client, max_tokens=24, stop=[s, "zzzz-never"])
    assert r.choices[0].message.content == free[:k]
    assert r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in greedy_chat(client, max_tokens=24, stop=s,
                                                                              stream=True))
    assert streamed == free[:k]  # nothing of the stop string leaked
    # completions too, with a single string
    warm(client.completions.create, model=MODEL, prompt="1, 2, 3, 4,", max_tokens=1, temperature=0)
    full = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0).choices[0].text
    k, s = pick_stop(full)
    r = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=12, temperature=0, stop=s)
    assert r.choices[0].text == full[:k] and r.choices[0].finish_reason == "stop"


def test_max_tokens_gives_length(client):
    r = client.chat.completions.create(model=MODEL, max_tokens=3, temperature=0,
                                       messages=[{"role": "user", "content": "Write a long poem about the sea."}])
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    chunks = list(client.chat.completions.create(model=MODEL, max_tokens=3, temperature=0, stream=True,
                                                 messages=[{"role": "user", "content": "Write a long poem."}]))
    assert chunks[-1].choices[0].finish_reason == "length"


# ---- logprobs ----

def test_completion_logprobs(client):
    args = dict(model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2)
    warm(client.completions.create, **args)
    r = client.completions.create(**args)
    lp = r.choices[0].logprobs
    n = len(lp.tokens)
    assert n == r.usage.completion_tokens or r.choices[0].finish_reason == "stop"
    assert len(lp.token_logprobs) == n and len(lp.top_logprobs) == n and len(lp.text_offset) == n
    assert all(x <= 0 for x in lp.token_logprobs)
    assert lp.text_offset == sorted(lp.text_offset)
    for tok, x, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 2
        assert math.isclose(max(top.values()), x, abs_tol=1e-4)  # greedy: the pick is the best
    if r.choices[0].finish_reason == "length":
        assert "".join(lp.tokens) == r.choices[0].text
    # streamed: each chunk carries the logprobs of its own tokens
    streamed = [c.choices[0].logprobs for c in client.completions.create(stream=True, **args)]
    assert sum(len(x.tokens) for x in streamed if x) == n


def test_chat_logprobs(client):
    warm(greedy_chat, client=client)
    r = greedy_chat(client, max_tokens=5, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert 0 < len(content) <= 5
    for e in content:
        assert e.logprob <= 0 and len(e.top_logprobs) == 3
        assert bytes(e.bytes) == e.token.encode()
        assert math.isclose(e.top_logprobs[0].logprob, e.logprob, abs_tol=1e-4)
    streamed = [e for c in greedy_chat(client, max_tokens=5, logprobs=True, top_logprobs=1, stream=True)
                if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]
    plain = greedy_chat(client, max_tokens=2)
    assert plain.choices[0].logprobs is None


# ---- embeddings ----

def test_embeddings(stack, client):
    inputs = ["hello", "world", "a cat", "a dog", "hello"]  # 5: batches of 4 and 1
    r = client.embeddings.create(model=MODEL, input=inputs)
    assert [d.index for d in r.data] == [0, 1, 2, 3, 4]
    dims = {len(d.embedding) for d in r.data}
    assert len(dims) == 1 and dims.pop() > 8
    for d in r.data:
        assert math.isclose(math.sqrt(sum(x * x for x in d.embedding)), 1.0, rel_tol=1e-3)
    assert r.data[0].embedding == pytest.approx(r.data[4].embedding, abs=1e-5)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    f = client.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    assert f.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-5)
    e = raw_post(stack, f"/v1/engines/{MODEL}/embeddings", {"input": ["hello"]})
    assert e.status_code == 200, e.text
    body = e.json()
    assert body["object"] == "list" and body["model"] == MODEL and "completion_tokens" not in body["usage"]
    assert body["data"][0]["embedding"] == pytest.approx(r.data[0].embedding, abs=1e-5)


# ---- errors ----

def test_api_keys(stack, client):
    bad = openai.OpenAI(base_url=stack.api + "/v1", api_key="sk-wrong", max_retries=0)
    if stack.key is None:  # no --api-keys: any key is accepted, as FastChat
        assert [m.id for m in bad.models.list()] == [MODEL]
        return
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    r = requests.post(stack.api + "/v1/chat/completions", json={"model": MODEL, "messages": CHAT}, timeout=30)
    assert r.status_code == 401
    assert r.json() == {"detail": {"error": {"message": "", "type": "invalid_request_error", "param": None,
                                             "code": "invalid_api_key"}}}
    # stricter than FastChat: /api/v1/ routes are guarded too
    r = requests.post(stack.api + "/api/v1/token_check",
                      json={"prompts": [{"model": MODEL, "prompt": "hi", "max_tokens": 1}]}, timeout=30)
    assert r.status_code == 401
    second = openai.OpenAI(base_url=stack.api + "/v1", api_key="sk-second-key", max_retries=0)
    assert [m.id for m in second.models.list()] == [MODEL]


def test_unknown_model(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="no-such-model", messages=CHAT)
    assert str(e.value.code) == "40301"
    assert e.value.body["message"] == f"Only {MODEL} allowed now, your model no-such-model"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="no-such-model", prompt="hi")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="no-such-model", input="hi")


@pytest.mark.parametrize("params,code", [
    ({"temperature": 3}, 40302), ({"temperature": -1}, 40302), ({"top_p": 1.5}, 40302), ({"n": 0}, 40302),
    ({"max_tokens": 0}, 40302), ({"top_k": 0}, 40302), ({"presence_penalty": 5}, 40302),
    ({"top_logprobs": 3}, 40302), ({"temperature": "hot"}, 40001), ({"n": 1.5}, 40001), ({"stop": 5}, 40001),
])
def test_bad_parameters(client, params, code):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=2, extra_body=params)
    assert str(e.value.code) == str(code), e.value.body


def test_malformed_requests(stack, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "robot", "content": "hi"}])
    assert str(e.value.code) == "40001"
    r = requests.post(stack.api + "/v1/chat/completions", data=b"{not json", headers=stack.headers, timeout=30)
    assert r.status_code == 400 and r.json()["code"] == 40001 and r.json()["object"] == "error"
    r = raw_post(stack, "/v1/chat/completions", {"messages": CHAT})
    assert r.status_code == 400 and r.json()["code"] == 40001
    r = raw_post(stack, "/v1/completions", {"model": MODEL, "prompt": [1, 2.5, 3]})
    assert r.status_code == 400 and r.json()["code"] == 40001  # token ids are integers (test_token_prompts.py)
    r = raw_post(stack, "/v1/completions", {"model": MODEL, "prompt": "hi", "logprobs": 50})
    assert r.status_code == 400 and r.json()["code"] == 40302


def test_oversize_prompt(stack, client):
    ctx = requests.post(worker_of(stack) + "/model_details", json={"model": MODEL}, timeout=30).json()[
        "context_length"]
    long = "hello " * (ctx + 100)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=4)
    assert str(e.value.code) == "40303"
    assert e.value.body["message"].startswith(f"This model's maximum context length is {ctx} tokens. However, "
                                              "your messages resulted in ")
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=long, max_tokens=4)
    assert str(e.value.code) == "40303"


def worker_of(stack):
    return requests.post(stack.ctl + "/get_worker_address", json={"model": MODEL}, timeout=30).json()["address"]


# ---- FastChat's own /api/v1 routes ----

def test_token_check_and_api_chat(stack):
    ctx = requests.post(worker_of(stack) + "/model_details", json={"model": MODEL}, timeout=30).json()[
        "context_length"]
    r = raw_post(stack, "/api/v1/token_check", {"prompts": [
        {"model": MODEL, "prompt": "Hello world", "max_tokens": 10},
        {"model": MODEL, "prompt": "Hello world", "max_tokens": ctx}]})
    assert r.status_code == 200, r.text
    a, b = r.json()["prompts"]
    assert a["fits"] is True and b["fits"] is False
    assert a["tokenCount"] == b["tokenCount"] > 0 and a["contextLength"] == ctx
    r = raw_post(stack, "/api/v1/chat/completions",
                 {"model": MODEL, "messages": CHAT, "max_tokens": 4, "repetition_penalty": 1.2})
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion" and r.json()["choices"][0]["message"]["content"]


# ---- beyond FastChat ----

def test_seed_usage_chunk_and_max_completion_tokens(client):
    a = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=8, temperature=1.0, seed=1234)
    b = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=8, temperature=1.0, seed=1234)
    assert a.choices[0].message.content == b.choices[0].message.content
    chunks = list(client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=3, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    r = client.chat.completions.create(model=MODEL, messages=CHAT, max_completion_tokens=2, temperature=0)
    assert r.usage.completion_tokens == 2 and r.choices[0].finish_reason == "length"


def test_cors_preflight(stack):
    r = requests.options(stack.api + "/v1/chat/completions", timeout=30, headers={
        "Origin": "http://example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 200
    assert r.headers.get("access-control-allow-origin") in ("*", "http://example.com")


# ---- robustness ----

def test_client_leaves_mid_stream(stack, client):
    r = raw_post(stack, "/v1/chat/completions",
                 {"model": MODEL, "messages": [{"role": "user", "content": "Write a long story."}],
                  "max_tokens": 300, "stream": True}, stream=True)
    it = r.iter_lines()
    assert next(it).startswith(b"data: ")
    r.close()  # gone after the first event
    assert greedy_chat(client, max_tokens=2).choices[0].message.content
    assert all(p.alive() for p in stack.procs)


def test_concurrent_requests(client):
    out, errors = [], []

    def one(i):
        try:
            if i % 2:
                r = client.chat.completions.create(model=MODEL, messages=CHAT, max_tokens=4)
                out.append(r.choices[0].message.content)
            else:
                out.append("".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model=MODEL, messages=CHAT, max_tokens=4, stream=True) if c.choices))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(out) == 6 and all(out)


# ---- the client subcommands ----

def test_test_message_and_bench_serve(stack, fastchat_bin):
    p = subprocess.run([str(fastchat_bin), "test-message", "--controller-address", stack.ctl, "--model-name", MODEL,
                        "--max-new-tokens", "8"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == f"Models: ['{MODEL}']" and lines[1].startswith("worker_addr: http://")
    assert "Tell me a story with more than 1000 words." in lines[2] and len(lines[3]) > len("<|im_start|>assistant: ")
    p = subprocess.run([str(fastchat_bin), "test-message", "--controller-address", stack.ctl, "--model-name", "nope"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "No available workers for nope" in p.stdout

    args = [str(fastchat_bin), "bench-serve", "--url", stack.api, "--model", MODEL, "--clients", "2",
            "--requests", "4", "--max-tokens", "4", "--json"]
    if stack.key:
        args += ["--api-key", stack.key]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(p.stdout)
    assert res["ok"] == 4 and res["errors"] == 0 and 0 < res["generated_tokens"] <= 16
    assert res["requests_per_s"] > 0 and res["ttft_p50_ms"] > 0 and res["ttft_p99_ms"] >= res["ttft_p50_ms"]
