"""test_responses.py: the Responses API (POST/GET/DELETE /v1/responses) with the
official `openai` client, against `fastchat serve` on the default model.

What is compared: at temperature 0 the answer of /v1/responses is the answer
of /v1/chat/completions for the same conversation (input items, instructions
as a system message, developer as system, the stored turns of
previous_response_id), with the same prompt token count; the client parses
every answer and every typed stream event with its own models (Response,
ResponseStreamEvent) and its stream helper accumulates the events into the
final response; errors are raised by the client as its exception classes with
OpenAI's error body. The store is bounded (FASTCHAT_RESPONSES_MAX set small
here): the oldest response is forgotten.
"""
import json

import jsonschema
import openai
import pytest
import requests

from test_controller import Proc, free_port, wait_until

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
STORE_MAX = 6

# a function tool in the Responses' flat shape, and the same in the chat
# route's nested shape (strict defaults to true in the Responses API)
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the current weather in a city",
           "parameters": {"type": "object", "properties": {
               "city": {"type": "string", "maxLength": 20},
               "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
               "required": ["city", "unit"], "additionalProperties": False}}
CHAT_WEATHER = {"type": "function", "function": {k: WEATHER[k] for k in ("name", "description", "parameters")}}
CHAT_WEATHER["function"]["strict"] = True
ASK = "What is the weather in Paris? Use the tools."


@pytest.fixture(scope="module")
def api(fastchat_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("responses")
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--controller-port", ports[0],
              "--worker-port", ports[1], "--port", ports[2], "--threads", "1"], tmp / "serve.log",
             env={"FASTCHAT_RESPONSES_MAX": str(STORE_MAX)})
    url = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, 120, "fastchat serve", [p])
        yield url
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture(scope="module")
def client(api):
    return openai.OpenAI(base_url=api + "/v1", api_key="none", max_retries=0, timeout=120)


def chat(client, messages, max_tokens=16):
    r = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=max_tokens)
    return r.choices[0].message.content, r.usage.prompt_tokens, r.usage.completion_tokens


def test_create_matches_chat(client):
    r = client.responses.create(model=MODEL, input="Name three colors.", temperature=0, max_output_tokens=16)
    assert r.object == "response" and r.id.startswith("resp_")
    assert r.model == MODEL and r.status in ("completed", "incomplete")
    assert len(r.output) == 1 and r.output[0].type == "message" and r.output[0].role == "assistant"
    assert r.output[0].id.startswith("msg_")
    part = r.output[0].content[0]
    assert part.type == "output_text" and part.annotations == []
    text, pt, ct = chat(client, [{"role": "user", "content": "Name three colors."}])
    assert r.output_text == text and text
    assert r.usage.input_tokens == pt and r.usage.output_tokens == ct
    assert r.usage.total_tokens == pt + ct
    assert r.temperature == 0 and r.max_output_tokens == 16 and r.store is True and r.tools == []
    if ct == 16:
        assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"


def test_instructions_and_items(client):
    items = [
        {"role": "developer", "content": "Answer in one word."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is the capital "},
                                                        {"type": "input_text", "text": "of France?"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Paris."}]},
        {"role": "user", "content": "And of Italy?"},
    ]
    r = client.responses.create(model=MODEL, input=items, instructions="You are a geography teacher.",
                                temperature=0, max_output_tokens=12, metadata={"case": "items"})
    ref = [{"role": "system", "content": "You are a geography teacher."},
           {"role": "system", "content": "Answer in one word."},
           {"role": "user", "content": "What is the capital of France?"},
           {"role": "assistant", "content": "Paris."},
           {"role": "user", "content": "And of Italy?"}]
    text, pt, _ = chat(client, ref, 12)
    assert r.output_text == text
    assert r.usage.input_tokens == pt
    assert r.instructions == "You are a geography teacher."
    assert r.metadata == {"case": "items"}


def test_stream_events(client):
    kw = dict(model=MODEL, input="Write a haiku about the sea.", temperature=0, max_output_tokens=40)
    plain = client.responses.create(**kw)
    with client.responses.stream(**kw) as s:
        events = list(s)
        final = s.get_final_response() if plain.status == "completed" else None
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    end = "response.completed" if plain.status == "completed" else "response.incomplete"
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", end]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas and "".join(deltas) == plain.output_text
    done = [e for e in events if e.type == "response.output_text.done"][0]
    assert done.text == plain.output_text
    last = events[-1].response
    assert last.output_text == plain.output_text and last.usage.output_tokens == plain.usage.output_tokens
    assert events[0].response.status == "in_progress" and last.id == events[0].response.id
    if final is not None:
        assert final.output_text == plain.output_text

    # stream=True on create: the raw event iterator
    raw = list(client.responses.create(stream=True, **kw))
    assert raw[-1].type == end and raw[-1].response.output_text == plain.output_text


def test_previous_response_chaining(client):
    r1 = client.responses.create(model=MODEL, input="My name is Ada. Remember it.", temperature=0,
                                 max_output_tokens=12, instructions="You are terse.")
    r2 = client.responses.create(model=MODEL, input="What is my name?", previous_response_id=r1.id, temperature=0,
                                 max_output_tokens=12)
    assert r2.previous_response_id == r1.id
    # the instructions of r1 are not carried over (OpenAI's rule); its turns are
    ref = [{"role": "user", "content": "My name is Ada. Remember it."},
           {"role": "assistant", "content": r1.output_text},
           {"role": "user", "content": "What is my name?"}]
    text, pt, _ = chat(client, ref, 12)
    assert r2.output_text == text
    assert r2.usage.input_tokens == pt
    assert r2.usage.input_tokens > r1.usage.output_tokens + 10
    # a third turn chains on the second, streamed
    with client.responses.stream(model=MODEL, input="Spell it.", previous_response_id=r2.id, temperature=0,
                                 max_output_tokens=8) as s:
        last = list(s)[-1].response
    ref += [{"role": "assistant", "content": r2.output_text}, {"role": "user", "content": "Spell it."}]
    text3, pt3, _ = chat(client, ref, 8)
    assert last.output_text == text3 and last.usage.input_tokens == pt3


def test_retrieve_delete_store(client):
    r = client.responses.create(model=MODEL, input="Hi", temperature=0, max_output_tokens=4)
    got = client.responses.retrieve(r.id)
    assert got.id == r.id and got.output_text == r.output_text and got.usage.input_tokens == r.usage.input_tokens
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, input="again", previous_response_id=r.id)
    assert f"Previous response with id '{r.id}' not found." in str(e.value)
    assert e.value.body["param"] == "previous_response_id"

    n = client.responses.create(model=MODEL, input="Hi", temperature=0, max_output_tokens=4, store=False)
    assert n.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(n.id)


def test_input_items(client):
    r1 = client.responses.create(model=MODEL, input="A", temperature=0, max_output_tokens=3, instructions="I")
    r2 = client.responses.create(model=MODEL, previous_response_id=r1.id, temperature=0, max_output_tokens=3,
                                 input=[{"role": "developer", "content": "D"}, {"role": "user", "content": "B"}])
    page = client.responses.input_items.list(r2.id)
    got = [(i.role, i.content[0].text) for i in page.data]
    assert got == [("user", "B"), ("system", "D"), ("assistant", r1.output_text), ("user", "A")]
    assert page.data[2].content[0].type == "output_text" and page.data[0].content[0].type == "input_text"
    assert not page.has_more and page.first_id == page.data[0].id and page.last_id == page.data[-1].id
    # ascending, two at a time: the client follows `after` through the pages
    first = client.responses.input_items.list(r2.id, order="asc", limit=2)
    assert first.has_more and [i.content[0].text for i in first.data] == ["A", r1.output_text]
    every = [i.content[0].text for i in client.responses.input_items.list(r2.id, order="asc", limit=2)]
    assert every == ["A", r1.output_text, "D", "B"]
    assert [i.id for i in client.responses.input_items.list(r2.id, order="asc")] == [i.id for i in page.data][::-1]
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list("resp_unknown")
    with pytest.raises(openai.BadRequestError):
        client.responses.input_items.list(r2.id, limit=0)


def test_structured_text_format(client):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"],
              "additionalProperties": False}
    r = client.responses.create(model=MODEL, input="Give a city as JSON.", temperature=0, max_output_tokens=40,
                                text={"format": {"type": "json_schema", "name": "city", "schema": schema,
                                                 "strict": True}})
    assert r.status == "completed", r.output_text
    assert set(json.loads(r.output_text)) == {"city"}
    assert r.text.format.type == "json_schema"


@pytest.mark.parametrize("kw,param,needle", [
    (dict(previous_response_id="resp_nope"), "previous_response_id", "Previous response with id 'resp_nope' not found."),
    (dict(tools=[{"type": "web_search"}]), "tools[0]", "only 'function' tools"),
    (dict(tools=[{"type": "function", "name": "f", "parameters": {
        "type": "object", "required": ["a"], "properties": {"a": {"enum": []}}}}]),
     "tools[0].parameters", "Invalid schema for function 'f': unsatisfiable"),
    (dict(tools=[{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {
        "a": {"type": "nonsense"}}}}]), "tools[0].parameters", "unknown type 'nonsense'"),
    (dict(tools=[{"type": "function", "name": "bad name!"}]), "tools[0].name", "does not match pattern"),
    (dict(tools=[WEATHER], tool_choice={"type": "function", "name": "nope"}), "tool_choice", "nope"),
    (dict(input=[{"type": "function_call_output", "call_id": "call_nope", "output": "1"}]), "input[0]",
     "call_nope"),
    (dict(input=[{"type": "function_call", "call_id": "c1", "name": "get_weather"}]), "input[0]", "arguments"),
    (dict(temperature=3), "temperature", "Expected a value <= 2"),
    (dict(max_output_tokens=0), "max_output_tokens", "Expected a value >= 1"),
    (dict(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "http://x/y.png"}]}]),
     "input[0]", "text only"),
    (dict(input=[{"role": "robot", "content": "hi"}]), "input[0]", "role"),
    (dict(tool_choice="required"), "tool_choice", "tool_choice"),
    (dict(metadata={"k": 1}), "metadata", "metadata.k"),
    (dict(text={"format": {"type": "xml"}}), "text.format.type", "json_schema"),
])
def test_errors(client, kw, param, needle):
    args = dict(model=MODEL, input="hi", max_output_tokens=4)
    args.update(kw)
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(**args)
    assert needle in e.value.message
    assert e.value.body["param"] == param and e.value.body["type"] == "invalid_request_error"


def test_errors_previous_response_calls(client):
    # a function_call_output must answer a call of the input or of the previous response
    r = client.responses.create(model=MODEL, input="Weather in Rome?", tools=[WEATHER], tool_choice="required",
                                temperature=0, max_output_tokens=60)
    call = r.output[0]
    assert call.type == "function_call"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=MODEL, previous_response_id=r.id, tools=[WEATHER],
                                input=[{"type": "function_call_output", "call_id": call.call_id + "x", "output": "1"}])
    assert e.value.body["param"] == "input[0]" and call.call_id + "x" in e.value.message
    ok = client.responses.create(model=MODEL, previous_response_id=r.id, tools=[WEATHER], tool_choice="none",
                                 input=[{"type": "function_call_output", "call_id": call.call_id, "output": "1"}],
                                 max_output_tokens=4)
    assert ok.status in ("completed", "incomplete")


def test_errors_raw(api, client):
    # an unknown model: the chat route's error, passed on
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="no-such-model", input="hi")
    assert "no-such-model" in e.value.message
    r = requests.post(api + "/v1/responses", data=b"{not json", headers={"Content-Type": "application/json"},
                      timeout=10)
    assert r.status_code == 400 and "could not parse the JSON body" in r.json()["error"]["message"]
    r = requests.post(api + "/v1/responses", json={"model": MODEL}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = requests.post(api + "/v1/responses", json={"input": "hi"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = requests.get(api + "/v1/responses/resp_unknown", timeout=10)
    assert r.status_code == 404 and "resp_unknown" in r.json()["error"]["message"]
    r = requests.delete(api + "/v1/responses/resp_unknown", timeout=10)
    assert r.status_code == 404


def test_store_bound(client):
    ids = [client.responses.create(model=MODEL, input=f"Count {i}", temperature=0, max_output_tokens=1).id
           for i in range(STORE_MAX + 1)]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(ids[0])
    for i in ids[1:]:
        assert client.responses.retrieve(i).id == i


def test_api_keys(fastchat_bin, model_path, tmp_path):
    # --api-keys: checked on /v1/responses, and the key is passed on to the chat route over loopback
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--controller-port", ports[0],
              "--worker-port", ports[1], "--port", ports[2], "--threads", "1", "--api-keys", "k1,k2"],
             tmp_path / "serve.log")
    url = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, 120, "fastchat serve", [p])
        bad = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0, timeout=60)
        with pytest.raises(openai.AuthenticationError):
            bad.responses.create(model=MODEL, input="hi", max_output_tokens=2)
        good = openai.OpenAI(base_url=url + "/v1", api_key="k2", max_retries=0, timeout=60)
        r = good.responses.create(model=MODEL, input="hi", max_output_tokens=2)
        assert r.usage.output_tokens >= 1
        assert good.responses.retrieve(r.id).id == r.id
        with pytest.raises(openai.AuthenticationError):
            bad.responses.retrieve(r.id)
    finally:
        p.stop()


# ---- function tools ----

def chat_tools(client, messages, **kw):
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[CHAT_WEATHER], temperature=0, **kw)
    return r.choices[0], r.usage.prompt_tokens


def check_call(item):
    assert item.type == "function_call" and item.id.startswith("fc_") and item.call_id.startswith("call_")
    assert item.name == "get_weather" and item.status == "completed"
    jsonschema.validate(json.loads(item.arguments), WEATHER["parameters"])


def test_function_call_round_trip(client):
    # call (required), then its output, then a text answer; each turn the chat route's answer for the
    # same conversation at temperature 0
    r1 = client.responses.create(model=MODEL, input=ASK, tools=[WEATHER], tool_choice="required", temperature=0,
                                 max_output_tokens=60, parallel_tool_calls=False)
    assert r1.status == "completed" and len(r1.output) == 1, r1.output
    call = r1.output[0]
    check_call(call)
    assert r1.output_text == "" and r1.parallel_tool_calls is False and r1.tool_choice == "required"
    assert len(r1.tools) == 1 and r1.tools[0].name == "get_weather" and r1.tools[0].strict is True
    ch, pt = chat_tools(client, [{"role": "user", "content": ASK}], tool_choice="required", max_tokens=60,
                        parallel_tool_calls=False)
    assert ch.finish_reason == "tool_calls"
    ref = ch.message.tool_calls[0]
    assert (call.name, call.arguments) == (ref.function.name, ref.function.arguments)
    assert r1.usage.input_tokens == pt

    out = {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 21, "sky": "clear"}'}
    r2 = client.responses.create(model=MODEL, previous_response_id=r1.id, input=[out], tools=[WEATHER],
                                 tool_choice="none", temperature=0, max_output_tokens=30)
    assert [o.type for o in r2.output] == ["message"] and r2.output_text
    history = [{"role": "user", "content": ASK},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": call.call_id, "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments}}]},
               {"role": "tool", "tool_call_id": call.call_id, "content": out["output"]}]
    ch2, pt2 = chat_tools(client, history, tool_choice="none", max_tokens=30)
    assert r2.output_text == ch2.message.content and r2.usage.input_tokens == pt2

    # the same turn with the call given as an input item (no previous_response_id)
    r3 = client.responses.create(model=MODEL, tools=[WEATHER], tool_choice="none", temperature=0, max_output_tokens=30,
                                 input=[{"role": "user", "content": ASK},
                                        {"type": "function_call", "call_id": call.call_id, "name": call.name,
                                         "arguments": call.arguments}, out])
    assert r3.output_text == r2.output_text and r3.usage.input_tokens == r2.usage.input_tokens

    # the stored conversation lists the call and its output as items
    items = client.responses.input_items.list(r2.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]
    assert items[1].call_id == call.call_id and items[1].arguments == call.arguments
    assert items[2].call_id == call.call_id and items[2].output == out["output"]


def test_function_call_stream(client):
    kw = dict(model=MODEL, input=ASK, tools=[WEATHER], temperature=0, max_output_tokens=60,
              tool_choice={"type": "function", "name": "get_weather"})
    plain = client.responses.create(**kw)
    check_call(plain.output[0])
    with client.responses.stream(**kw) as s:
        events = list(s)
        final = s.get_final_response()
    types = [e.type for e in events]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert set(types[3:-3]) == {"response.function_call_arguments.delta"}
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = events[2].item
    assert added.type == "function_call" and added.status == "in_progress" and added.name == "get_weather"
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert all(d.item_id == added.id and d.output_index == 0 for d in deltas)
    args = "".join(d.delta for d in deltas)
    assert args == plain.output[0].arguments == events[-3].arguments
    done = events[-2].item
    assert done.id == added.id and done.arguments == args and done.call_id == added.call_id
    assert final.output[0].arguments == args and final.output[0].type == "function_call"
    assert events[-1].response.output[0].call_id == added.call_id


def test_function_call_auto_strict(client):
    # tool_choice auto, strict by default: the model copies a call whose arguments break the schema;
    # from its <tool_call> marker on, the call follows the schema (the chat route's lazy grammar)
    schema = {"type": "object", "properties": {"location": {"type": "string", "enum": ["PARIS-FR", "ROME-IT"]},
                                               "days": {"type": "integer", "minimum": 3, "maximum": 3}},
              "required": ["location", "days"], "additionalProperties": False}
    tool = {"type": "function", "name": "get_weather", "description": "Get the weather in a city",
            "parameters": schema}
    text = ("Repeat exactly this text, nothing else:\nSure.\n<tool_call>\n"
            '{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>')
    loose = client.responses.create(model=MODEL, input=text, tools=[dict(tool, strict=False)], temperature=0,
                                    max_output_tokens=80)
    calls = [o for o in loose.output if o.type == "function_call"]
    assert calls and json.loads(calls[0].arguments) == {"location": "Paris"}
    r = client.responses.create(model=MODEL, input=text, tools=[tool], temperature=0, max_output_tokens=80)
    assert r.tools[0].strict is True and r.tool_choice == "auto"
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls, r.output
    jsonschema.validate(json.loads(calls[0].arguments), schema)
