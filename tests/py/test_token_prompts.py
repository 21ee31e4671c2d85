"""test_token_prompts.py: /v1/completions with prompts given as token ids (a list
of ints, or a list of lists), with the official `openai` client against
`fastchat serve` on the default model.

What is compared: the ids of a text (from the server's /tokenize, and checked
against the model's own tokenizer read from the GGUF by the `gguf` package
when the ids decode back to the text) give, at temperature 0, the same
completion and the same prompt token count as the text itself, streamed or
not, alone or in a batch mixed with text prompts, with echo; ids outside the
vocabulary get a 400 naming the id (40302), ids that are not non-negative
integers a 40001; a worker given prompt_token_ids directly checks them too.
"""
import pytest
import openai
import requests

from test_controller import Proc, free_port, wait_until

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
TEXTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]


@pytest.fixture(scope="module")
def stack(fastchat_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("token_prompts")
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--controller-port", ports[0],
              "--worker-port", ports[1], "--port", ports[2], "--threads", "1"], tmp / "serve.log")
    url = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=5).status_code == 200, 120, "fastchat serve", [p])
        yield {"api": url, "worker": f"http://127.0.0.1:{ports[1]}"}
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=stack["api"] + "/v1", api_key="none", max_retries=0, timeout=120)


def ids_of(stack, text):
    r = requests.post(stack["api"] + "/tokenize", json={"model": MODEL, "prompt": text}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["tokens"]


@pytest.fixture(scope="module")
def vocab(model_path):
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(model_path)
    f = reader.fields["tokenizer.ggml.tokens"]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def test_ids_match_model_vocab(stack, vocab):
    # the ids are the model's own: its vocabulary (read by gguf) spells the text back
    for t in TEXTS:
        ids = ids_of(stack, t)
        assert ids and all(0 <= i < len(vocab) for i in ids)
        assert "".join(vocab[i] for i in ids).replace("\u0120", " ").replace("\u010a", "\n") == t


@pytest.mark.parametrize("text", TEXTS)
def test_ids_same_as_text(stack, client, text):
    ids = ids_of(stack, text)
    a = client.completions.create(model=MODEL, prompt=text, max_tokens=12, temperature=0)
    b = client.completions.create(model=MODEL, prompt=ids, max_tokens=12, temperature=0)
    assert a.choices[0].text and b.choices[0].text == a.choices[0].text
    assert b.usage.prompt_tokens == a.usage.prompt_tokens == len(ids)
    assert b.usage.completion_tokens == a.usage.completion_tokens
    # streamed
    parts = [c.choices[0].text for c in client.completions.create(model=MODEL, prompt=ids, max_tokens=12,
                                                                  temperature=0, stream=True) if c.choices]
    assert "".join(parts) == a.choices[0].text
    # echo: the decoded prompt leads
    e = client.completions.create(model=MODEL, prompt=ids, max_tokens=12, temperature=0, echo=True)
    assert e.choices[0].text == text + a.choices[0].text


def test_list_of_lists_and_mixed(stack, client):
    ids = [ids_of(stack, t) for t in TEXTS]
    single = [client.completions.create(model=MODEL, prompt=t, max_tokens=8, temperature=0).choices[0].text
              for t in TEXTS]
    r = client.completions.create(model=MODEL, prompt=ids, max_tokens=8, temperature=0)
    assert [c.text for c in sorted(r.choices, key=lambda c: c.index)] == single
    assert r.usage.prompt_tokens == sum(len(i) for i in ids)
    mixed = [ids[0], TEXTS[1], ids[2]]
    r = requests.post(stack["api"] + "/v1/completions", json={"model": MODEL, "prompt": mixed, "max_tokens": 8,
                                                              "temperature": 0}, timeout=120)
    assert r.status_code == 200, r.text
    assert [c["text"] for c in sorted(r.json()["choices"], key=lambda c: c["index"])] == single


def test_bad_ids(stack, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=[504, 10 ** 8], max_tokens=4)
    assert str(e.value.code) == "40302" and "item 1 is 100000000" in e.value.message and "0..49151" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt=[[504], [504, 49152]], max_tokens=4)
    assert str(e.value.code) == "40302" and "of prompt 1" in e.value.message and "item 1 is 49152" in e.value.message
    for bad in ([504, -1], [504, 1.5], [[504], [1e300]], [504, "x"], [[504], 7]):
        r = requests.post(stack["api"] + "/v1/completions", json={"model": MODEL, "prompt": bad, "max_tokens": 4},
                          timeout=30)
        assert r.status_code == 400 and r.json()["code"] == 40001, (bad, r.text)
    r = requests.post(stack["api"] + "/v1/completions", json={"model": MODEL, "prompt": [[]], "max_tokens": 4},
                      timeout=30)
    assert r.status_code == 400 and r.json()["code"] == 40302 and "empty" in r.json()["message"]
    ctx = requests.post(stack["worker"] + "/model_details", json={"model": MODEL}, timeout=30).json()["context_length"]
    r = requests.post(stack["api"] + "/v1/completions",
                      json={"model": MODEL, "prompt": [504] * (ctx + 5), "max_tokens": 4}, timeout=60)
    assert r.status_code == 400 and r.json()["code"] == 40303


def test_worker_prompt_token_ids(stack):
    ids = ids_of(stack, TEXTS[0])
    body = {"model": MODEL, "prompt": "ignored text", "prompt_token_ids": ids, "temperature": 0, "max_new_tokens": 6,
            "echo": False}
    r = requests.post(stack["worker"] + "/worker_generate", json=body, timeout=60)
    ref = requests.post(stack["worker"] + "/worker_generate", json=dict(body, prompt=TEXTS[0], prompt_token_ids=None),
                        timeout=60)
    assert r.status_code == ref.status_code == 200
    assert r.json()["text"] == ref.json()["text"] and r.json()["usage"]["prompt_tokens"] == len(ids)
    r = requests.post(stack["worker"] + "/worker_generate", json=dict(body, prompt_token_ids=[1, 10 ** 9]), timeout=60)
    assert r.status_code == 400 and "item 1 is 1000000000" in r.json()["text"]
