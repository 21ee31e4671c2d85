"""Tool calling on /v1/chat/completions (issue 13 item 1), through the
official `openai` client against a real `fastchat serve`:

- the default model (SmolLM2-135M-Instruct, ChatML template without tools:
  the generic Hermes-style format of README "Tool calling"): calls forced
  with tool_choice "required" and a named function (single, parallel),
  arguments that validate against the parameters schema (jsonschema),
  streamed deltas assembled by the client equal to the non-streamed answer
  at temperature 0, a full round trip with a tool message, and the 400s
  for bad tools / tool_choice / tool messages;
- a tiny random Qwen2 model (tests/data/tiny_tok/qwen2_bpe with the Qwen2
  test tokenizer) whose tokenizer_config.json carries Qwen2.5's chat template
  (which takes `tools`): the prompt the server renders (seen through
  `prompt_tokens`, and exactly through the offline renderer in
  tests/unit/test_tool_calls.c) against transformers' apply_chat_template
  goldens (tests/data/tools/golden.json, tools/golden/make_tool_golden.py),
  and forced calls in Qwen's <tool_call> syntax.
"""
import json
import shutil
from types import SimpleNamespace

import jsonschema
import openai
import pytest
import requests

from conftest import DATA
from test_controller import Proc, free_port, wait_until

MODEL = "smol"

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"]}, "strict": True}}
TOOLS = [WEATHER, TIME]
ASK = [{"role": "user", "content": "What is the weather in Paris? Use the tools."}]


def start(fastchat_bin, model_path, tmp, name, extra=()):
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", str(model_path), "--model-names", name,
              "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2], *extra], tmp / "serve.log")
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
    except BaseException:
        p.stop()
        raise
    return p, api


@pytest.fixture(scope="module")
def stack(fastchat_bin, model_path, tmp_path_factory):
    p, api = start(fastchat_bin, model_path, tmp_path_factory.mktemp("tools"), MODEL)
    try:
        yield SimpleNamespace(api=api, proc=p)
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=stack.api + "/v1", api_key="none", max_retries=0, timeout=300)


def schema_of(name):
    return next(t["function"]["parameters"] for t in TOOLS if t["function"]["name"] == name)


def check_calls(calls, names=None):
    assert calls, "no tool calls"
    for c in calls:
        assert c.type == "function" and c.id.startswith("call_") and len(c.id) > 10, c
        if names:
            assert c.function.name in names, c
        assert isinstance(c.function.arguments, str)
        args = json.loads(c.function.arguments)
        jsonschema.validate(args, schema_of(c.function.name))
    assert len({c.id for c in calls}) == len(calls)


def test_named_call(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=80,
                                       tool_choice={"type": "function", "function": {"name": "get_time"}})
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    assert ch.message.content is None
    check_calls(ch.message.tool_calls, {"get_time"})
    assert len(ch.message.tool_calls) == 1  # named: one call at most unless parallel


def test_forced_call_wins_over_response_format(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=80,
                                       tool_choice={"type": "function", "function": {"name": "get_time"}},
                                       response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message.tool_calls, {"get_time"})


def test_required_single(client):
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=80,
                                       tool_choice="required", parallel_tool_calls=False)
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls"
    check_calls(ch.message.tool_calls, {"get_weather", "get_time"})
    assert len(ch.message.tool_calls) == 1


@pytest.mark.parametrize("temperature", [0, 1])
def test_required_parallel(client, temperature, figures):
    # parallel_tool_calls (default true) with "required": one call or more
    r = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=temperature, seed=3,
                                       max_tokens=200, tool_choice="required")
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls", ch
    check_calls(ch.message.tool_calls, {"get_weather", "get_time"})
    assert 1 <= len(ch.message.tool_calls) <= 5
    figures(f"tool calls: required + parallel at temperature {temperature}: {len(ch.message.tool_calls)} call(s), "
            f"{r.usage.completion_tokens} tokens: " +
            "; ".join(f"{c.function.name}({json.dumps(json.loads(c.function.arguments))})"
                      for c in ch.message.tool_calls))


def assemble(stream):
    content, calls, finish, roles = "", {}, None, []
    for chunk in stream:
        for ch in chunk.choices:
            d = ch.delta
            if d.role:
                roles.append(d.role)
            if d.content:
                content += d.content
            for tc in d.tool_calls or []:
                if tc.index not in calls:
                    # the first delta of a call: index, id, type, name and arguments ""
                    assert tc.id and tc.type == "function" and tc.function.name and tc.function.arguments == "", tc
                    calls[tc.index] = {"id": tc.id, "name": tc.function.name, "arguments": ""}
                else:
                    assert tc.id is None and tc.function.name is None, tc
                    calls[tc.index]["arguments"] += tc.function.arguments
            if ch.finish_reason:
                finish = ch.finish_reason
    assert roles == ["assistant"]
    assert sorted(calls) == list(range(len(calls)))
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}],
                         ids=["required", "named"])
def test_streamed_equals_blocking(client, choice):
    kw = dict(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120, tool_choice=choice)
    full = client.chat.completions.create(**kw).choices[0]
    content, calls, finish = assemble(client.chat.completions.create(stream=True, **kw))
    assert finish == full.finish_reason == "tool_calls"
    assert (content or None) == full.message.content
    assert [(c["name"], c["arguments"]) for c in calls] == \
        [(c.function.name, c.function.arguments) for c in full.message.tool_calls]
    check_calls(full.message.tool_calls)


def test_streamed_logprobs(client):
    kw = dict(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=60, logprobs=True,
              tool_choice={"type": "function", "function": {"name": "get_time"}})
    full = client.chat.completions.create(**kw)
    tokens = [t.token for t in full.choices[0].logprobs.content]
    assert len(tokens) == full.usage.completion_tokens
    streamed = []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            if ch.logprobs and ch.logprobs.content:
                streamed += [t.token for t in ch.logprobs.content]
    assert streamed == tokens  # every token's logprob once, in order, though the call syntax is not content


def test_round_trip(client):
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, temperature=0, max_tokens=80,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    call = first.choices[0].message.tool_calls[0]
    history = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                     {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 18})}]
    assert history[1]["tool_calls"][0]["id"] == call.id
    # auto, the result in hand: the small model answers in text (or calls again: both are valid shapes)
    r = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, temperature=0, max_tokens=40)
    ch = r.choices[0]
    assert ch.finish_reason in ("stop", "length", "tool_calls")
    if ch.finish_reason == "tool_calls":
        check_calls(ch.message.tool_calls)
    else:
        assert ch.message.content and ch.message.tool_calls is None
    # tool_choice none with the same history: no call, text only
    r = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, temperature=0, max_tokens=20,
                                       tool_choice="none")
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")
    # the history alone (no tools): still rendered, and streamed
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=MODEL, messages=history, temperature=0, max_tokens=10, stream=True) if c.choices)
    assert text


def test_auto_without_call_is_text(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hello."}],
                                       tools=TOOLS, temperature=0, max_tokens=20)
    ch = r.choices[0]
    if ch.finish_reason != "tool_calls":
        assert ch.message.tool_calls is None and ch.message.content
    assert "<tool_call>" not in (ch.message.content or "")


# auto with a strict tool: the model answers freely, but once it writes the
# call marker (<tool_call>) the call follows the function's schema (a lazy
# grammar in the engine). The prompt makes this small model copy a call whose
# arguments break the schema: without strict they come back as written.
STRICT_SCHEMA = {"type": "object", "properties": {
    "location": {"type": "string", "enum": ["PARIS-FR", "ROME-IT"]},
    "days": {"type": "integer", "minimum": 3, "maximum": 3}},
    "required": ["location", "days"], "additionalProperties": False}
COPY_CALL = [{"role": "user", "content": "Repeat exactly this text, nothing else:\nSure.\n<tool_call>\n"
              "{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>"}]


def strict_tool(strict):
    return {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                             "parameters": STRICT_SCHEMA, "strict": strict}}


def test_auto_strict_enforced(client, figures):
    kw = dict(model=MODEL, messages=COPY_CALL, temperature=0, max_tokens=80)
    free = client.chat.completions.create(tools=[strict_tool(False)], **kw).choices[0]
    assert free.finish_reason == "tool_calls", free
    free_args = json.loads(free.message.tool_calls[0].function.arguments)
    # the model's own call breaks the schema (so the next check can fail)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(free_args, STRICT_SCHEMA)
    strict = client.chat.completions.create(tools=[strict_tool(True)], **kw).choices[0]
    assert strict.finish_reason == "tool_calls", strict
    assert strict.message.content == free.message.content  # free text before the marker, unchanged
    check = strict.message.tool_calls[0]
    assert check.function.name == "get_weather"
    jsonschema.validate(json.loads(check.function.arguments), STRICT_SCHEMA)
    # streamed: the same call
    chunks = list(client.chat.completions.create(tools=[strict_tool(True)], stream=True, **kw))
    args = "".join(tc.function.arguments or "" for c in chunks if c.choices
                   for tc in (c.choices[0].delta.tool_calls or []))
    assert args == check.function.arguments
    # sampled: every call made validates
    calls = 0
    for seed in range(6):
        r = client.chat.completions.create(tools=[strict_tool(True)], seed=seed, **dict(kw, temperature=1))
        for tc in r.choices[0].message.tool_calls or []:
            jsonschema.validate(json.loads(tc.function.arguments), STRICT_SCHEMA)
            calls += 1
    figures(f"tools/auto strict: free call {free_args} -> strict {check.function.arguments}; "
            f"{calls} calls in 6 sampled answers, all valid")


def test_prompt_has_generic_block(stack):
    # the generic format adds the tools block to the prompt: more prompt tokens
    def count(**kw):
        r = requests.post(stack.api + "/v1/chat/completions", timeout=120,
                          json={"model": MODEL, "messages": ASK, "max_tokens": 1, **kw})
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens"]
    plain, with_tools, none = count(), count(tools=TOOLS), count(tools=TOOLS, tool_choice="none")
    assert with_tools > plain + 50
    assert none < with_tools


BAD = [
    ("tools not a list", {"tools": {"type": "function"}}, "tools", "expected an array"),
    ("empty tools", {"tools": []}, "tools", "empty array"),
    ("no name", {"tools": [{"type": "function", "function": {"description": "x"}}]}, "tools[0].function.name",
     "Missing required parameter"),
    ("bad name", {"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools[0].function.name",
     "does not match pattern"),
    ("wrong type", {"tools": [{"type": "retrieval", "function": {"name": "f"}}]}, "tools[0].type", "expected 'function'"),
    ("unknown function", {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice", "no function named 'nope'"),
    ("choice without tools", {"tool_choice": "required"}, "tool_choice", "only allowed when 'tools'"),
    ("bad choice", {"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "Invalid value: 'sometimes'"),
    ("strict unsatisfiable", {"tools": [{"type": "function", "function": {
        "name": "f", "strict": True, "parameters": {"type": "object", "properties": {
            "a": {"type": "integer", "minimum": 5, "maximum": 2}}, "required": ["a"]}}}]},
     "tools[0].function.parameters", "Invalid schema for function 'f'"),
    ("tool message without id", {"messages": ASK + [{"role": "tool", "content": "18C"}]},
     "messages[1].tool_call_id", "must have a 'tool_call_id'"),
    ("tool message answering nothing", {"messages": ASK + [{"role": "tool", "tool_call_id": "call_x", "content": "1"}]},
     "messages[1]", "must be a response to a preceding message with 'tool_calls'"),
    ("malformed tool_calls", {"messages": ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "x"}}}]}]},
     "messages[1].tool_calls[0]", "expected {"),
    ("tool_calls not a list", {"messages": ASK + [{"role": "assistant", "content": None, "tool_calls": "x"}]},
     "messages[1].tool_calls", "expected an array"),
]


@pytest.mark.parametrize("what,fields,param,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_requests(stack, what, fields, param, msg):
    body = {"model": MODEL, "messages": ASK, "max_tokens": 5, **fields}
    r = requests.post(stack.api + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    assert msg in err["message"], err
    # and the official client raises BadRequestError
    c = openai.OpenAI(base_url=stack.api + "/v1", api_key="none", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(**body)


# ---- a tiny model whose template takes tools (Qwen2.5's) ----

GOLDEN = DATA / "tools" / "golden.json"


TINY = {  # template -> (tiny model, its tokenizer): tools/golden/make_tiny_with_tokenizer.py
    "qwen2_5": ("qwen2_bpe", "qwen2"),
    "llama3_1": ("llama_bpe", "llama3"),
    "mistral_v0_3": ("llama_spm", "spm"),
}


def tiny_server(fastchat_bin, tmp, template):
    model_name, tok = TINY[template]
    model = tmp / f"{model_name}_{template}"
    model.mkdir()
    shutil.copy(DATA / "tiny_tok" / model_name / "model.safetensors", model / "model.safetensors")
    config = json.loads((DATA / "tiny_tok" / model_name / "config.json").read_text())
    config["max_position_embeddings"] = 2048  # room for the tools block (RoPE: any length works)
    (model / "config.json").write_text(json.dumps(config))
    for f in (DATA / "tokenizer" / tok).iterdir():
        if f.suffix != ".gguf" and f.name != "tokenizer_config.json":
            shutil.copy(f, model / f.name)
    cfg = json.loads((DATA / "tokenizer" / tok / "tokenizer_config.json").read_text())
    cfg["chat_template"] = (DATA / "conv" / "jinja_templates" / f"{template}.jinja").read_text()
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    name = f"tiny-{template}"
    p, api = start(fastchat_bin, model, tmp, name)
    return p, SimpleNamespace(api=api, proc=p, name=name, template=template,
                              client=openai.OpenAI(base_url=api + "/v1", api_key="none", max_retries=0, timeout=300))


@pytest.fixture(scope="module")
def qwen(fastchat_bin, tmp_path_factory):
    p, ns = tiny_server(fastchat_bin, tmp_path_factory.mktemp("qwen_tools"), "qwen2_5")
    try:
        yield ns
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture(scope="module", params=["llama3_1", "mistral_v0_3"])
def other_tiny(fastchat_bin, tmp_path_factory, request):
    p, ns = tiny_server(fastchat_bin, tmp_path_factory.mktemp("tiny_tools"), request.param)
    try:
        yield ns
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


def golden_cases():
    return [c for c in json.loads(GOLDEN.read_text())["cases"] if c["template"] == "qwen2_5"]


@pytest.mark.parametrize("case", golden_cases(), ids=[c["name"] for c in golden_cases()])
def test_qwen_prompt_matches_transformers(qwen, case):
    """The server renders with the model's own template: its prompt_tokens
    equal the token count of transformers' rendering (with the same
    tokenizer); the exact text is compared in tests/unit/test_tool_calls.c."""
    body = {"model": qwen.name, "messages": case["request_messages"], "max_tokens": 1, "temperature": 0}
    if case.get("tools") is not None:
        body["tools"] = case["tools"]
    if case.get("tool_choice"):
        body["tool_choice"] = case["tool_choice"]
    r = requests.post(qwen.api + "/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == case["n_tokens"], case["prompt"]


def forced_calls(srv, stream):
    kw = dict(model=srv.name, messages=ASK, tools=TOOLS, temperature=0, max_tokens=120,
              tool_choice={"type": "function", "function": {"name": "get_weather"}})
    if stream:
        content, calls, finish = assemble(srv.client.chat.completions.create(stream=True, **kw))
        assert finish == "tool_calls" and len(calls) == 1 and calls[0]["name"] == "get_weather", (content, calls)
        jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER["function"]["parameters"])
    else:
        ch = srv.client.chat.completions.create(**kw).choices[0]
        assert ch.finish_reason == "tool_calls", ch
        check_calls(ch.message.tool_calls, {"get_weather"})
        assert len(ch.message.tool_calls) == 1
    r = srv.client.chat.completions.create(**{**kw, "tool_choice": "required", "parallel_tool_calls": False})
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message.tool_calls)
    assert len(r.choices[0].message.tool_calls) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_qwen_forced_calls(qwen, stream):
    # Qwen2.5's syntax: <tool_call>\n{"name": ..., "arguments": ...}\n</tool_call>
    forced_calls(qwen, stream)


@pytest.mark.parametrize("stream", [False, True])
def test_tiny_forced_calls(other_tiny, stream):
    # Llama 3.1: {"name": ..., "parameters": ...}; Mistral: [{"name": ..., "arguments": ...}]
    forced_calls(other_tiny, stream)
