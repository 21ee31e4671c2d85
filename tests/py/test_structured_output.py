"""test_structured_output.py: OpenAI's `response_format` (structured outputs)
against a real `fastchat serve` on the default model, through the official
`openai` client; outputs checked with the `jsonschema` package (PyPI) as the
reference validator.

- every schema of tests/data/schemas (37) at temperature 0 and 1: the answer
  parses with json.loads and validates against its schema. max_tokens is
  modest (100), so the engine's forced closing (keep to tokens that bring the
  end of the JSON nearer, see engine.h) is exercised: outputs must complete
  within it anyway;
- {"type":"json_object"} gives a JSON object (also with n=2); {"type":"text"} is free text;
- streaming chat with a schema: the deltas joined validate;
- /v1/completions with response_format;
- the worker protocol's extension: /worker_generate with response_format;
- 400s with an OpenAI error body naming the problem: unknown type, missing
  json_schema / schema, an unsupported keyword, an unsatisfiable schema, a
  malformed schema (properties not an object), and the worker's own 400.
"""
import concurrent.futures as cf
import json
from types import SimpleNamespace

import jsonschema
import openai
import pytest
import requests

from conftest import DATA, time_factor
from test_controller import Proc, free_port, wait_until

MODEL = "smol"
MAX_TOKENS = 100


@pytest.fixture(scope="module")
def stack(fastchat_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("structured")
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--model-names", MODEL,
              "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2],
              "--limit-worker-concurrency", "8"], tmp / "serve.log")
    try:
        api = f"http://127.0.0.1:{ports[2]}"
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
        yield SimpleNamespace(api=api, worker=f"http://127.0.0.1:{ports[1]}", proc=p)
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=stack.api + "/v1", api_key="none", max_retries=0, timeout=300 * time_factor())


def schemas():
    return {f.name: json.loads(f.read_text()) for f in sorted((DATA / "schemas").glob("*.json"))}


def messages_for(schema):
    return [{"role": "system", "content": "You answer with JSON only."},
            {"role": "user", "content": "Write a JSON value that matches this JSON Schema:\n" + json.dumps(schema)}]


def fmt(schema, name="answer"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def check(schema, text):
    value = json.loads(text)
    jsonschema.validators.validator_for(schema)(schema).validate(value)
    return value


def test_every_schema_validates(client, figures):
    all_schemas = schemas()
    assert len(all_schemas) >= 30

    def one(name, temperature):
        schema = all_schemas[name]
        r = client.chat.completions.create(model=MODEL, messages=messages_for(schema), temperature=temperature,
                                           max_tokens=MAX_TOKENS, seed=7, response_format=fmt(schema))
        text = r.choices[0].message.content
        try:
            check(schema, text)
            return None, r.usage.completion_tokens
        except (ValueError, jsonschema.ValidationError) as e:
            return f"{name} T={temperature} ({r.choices[0].finish_reason}): {str(e)[:200]} in {text[:300]!r}", 0

    jobs = [(n, t) for n in all_schemas for t in (0, 1)]
    with cf.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda a: one(*a), jobs))
    failures = [f for f, _ in results if f]
    figures(f"structured outputs: {len(jobs) - len(failures)}/{len(jobs)} schema responses validate "
            f"({sum(n for _, n in results)} tokens, max_tokens {MAX_TOKENS})")
    assert not failures, "\n".join(failures)


def test_json_object(client):
    for t in (0, 1):
        r = client.chat.completions.create(
            model=MODEL, temperature=t, max_tokens=60, seed=3, response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Describe a cat as a JSON object."}])
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    r = client.chat.completions.create(
        model=MODEL, temperature=1, max_tokens=40, n=2, seed=5, response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "Describe a dog as a JSON object."}])
    assert len(r.choices) == 2 and all(isinstance(json.loads(c.message.content), dict) for c in r.choices)


def test_text_format_is_unconstrained(client):
    kw = dict(model=MODEL, temperature=0, max_tokens=12, messages=[{"role": "user", "content": "Say hello."}])
    plain = client.chat.completions.create(**kw).choices[0].message.content
    text = client.chat.completions.create(response_format={"type": "text"}, **kw).choices[0].message.content
    assert text == plain


def test_streaming(client):
    schema = schemas()["weather.json"]
    for t in (0, 1):
        parts, finish = [], None
        for ev in client.chat.completions.create(model=MODEL, messages=messages_for(schema), temperature=t,
                                                 max_tokens=MAX_TOKENS, stream=True, response_format=fmt(schema)):
            if ev.choices:
                parts.append(ev.choices[0].delta.content or "")
                finish = ev.choices[0].finish_reason or finish
        check(schema, "".join(parts))
        assert finish in ("stop", "length")


def test_completions(client):
    schema = schemas()["person.json"]
    r = client.completions.create(model=MODEL, prompt="A person as JSON: ", max_tokens=60, temperature=0,
                                  extra_body={"response_format": fmt(schema)})
    check(schema, r.choices[0].text)


def test_worker_protocol(stack):
    schema = schemas()["color_enum.json"]
    body = {"model": MODEL, "prompt": "Colour: ", "max_new_tokens": 20, "temperature": 0, "echo": False,
            "response_format": fmt(schema)}
    r = requests.post(stack.worker + "/worker_generate", json=body, timeout=120)
    assert r.status_code == 200, r.text
    check(schema, r.json()["text"])
    body["response_format"] = fmt({"type": "string", "minLength": 3, "maxLength": 1})
    r = requests.post(stack.worker + "/worker_generate", json=body, timeout=60)
    assert r.status_code == 400 and "unsatisfiable" in r.text, r.text


BAD = [
    ("bad type", {"type": "yaml"}, "response_format.type", "Invalid value: 'yaml'"),
    ("no json_schema", {"type": "json_schema"}, "response_format.json_schema", "Missing required parameter"),
    ("no schema", {"type": "json_schema", "json_schema": {"name": "x"}}, "response_format.json_schema.schema",
     "Missing required parameter"),
    ("unsupported keyword", fmt({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
     "response_format.json_schema.schema", "unsupported: uniqueItems"),
    ("unsatisfiable", fmt({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 2}},
                           "required": ["a"]}), "response_format.json_schema.schema", "unsatisfiable"),
    ("malformed", fmt({"type": "object", "properties": "name"}), "response_format.json_schema.schema",
     "invalid schema: properties"),
    ("schema not an object", fmt("a string"), "response_format.json_schema.schema", "Invalid schema"),
]


@pytest.mark.parametrize("what,rf,param,msg", BAD, ids=[b[0] for b in BAD])
def test_bad_response_format(client, stack, what, rf, param, msg):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                                       response_format=rf)
    assert ei.value.status_code == 400
    err = ei.value.body
    assert err["type"] == "invalid_request_error" and err["param"] == param, err
    assert msg in err["message"], err
    # the same through /v1/completions, as raw HTTP: FastChat's body plus OpenAI's error object
    r = requests.post(stack.api + "/v1/completions", timeout=30,
                      json={"model": MODEL, "prompt": "hi", "max_tokens": 5, "response_format": rf})
    assert r.status_code == 400
    j = r.json()
    assert j["object"] == "error" and msg in j["message"] and j["error"]["param"] == param, j
