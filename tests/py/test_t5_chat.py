"""T5 text generation end to end: `fastchat generate --prompt`, `fastchat chat`
and `fastchat serve` (/v1/chat/completions through fc_engine) on a T5 folder.

The model: tests/data/t5_chat/model, a tiny random FastChat-T5-shaped model
(T5 v1.1, untied head, f16) whose vocabulary is tests/data/t5_tok's
tokenizer (Unigram + FastChat-T5's added tokens); the test puts both in a
folder named "fastchat-t5-tiny" so that FastChat's GoogleT5Adapter rule picks
the template (one_shot). References (tests/data/t5_chat/golden.json,
tools/golden/make_t5_chat_golden.py, computed by transformers):
  generate  5 raw prompts: tokenizer.json's ids (with </s>) and
            model.generate's greedy output, 24 tokens.
  chat      5 messages in FastChat's one_shot prompt, decoded the way
            FastChat's generate_stream does for encoder-decoder models
            (encoder once, lm_head on the decoder output, repetition penalty
            1.2 over prompt + output: chat_loop's T5 default), greedy, 24 tokens;
            the reply text cut at "###" and stripped.
Engine: several requests at once give the same answers as one by one, and
the API's answer equals the CLI chat's.
"""
import concurrent.futures
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from test_controller import Proc, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
GOLD = json.loads((ROOT / "tests" / "data" / "t5_chat" / "golden.json").read_text(encoding="utf-8"))
END = " __END_OF_A_MESSAGE_47582648__\n"


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    import gzip
    d = tmp_path_factory.mktemp("t5chat") / "fastchat-t5-tiny"
    shutil.copytree(ROOT / "tests" / "data" / "t5_chat" / "model", d)
    tok = ROOT / "tests" / "data" / "t5_tok"
    (d / "tokenizer.json").write_bytes(gzip.decompress((tok / "tokenizer.json.gz").read_bytes()))
    shutil.copy(tok / "tokenizer_config.json", d)
    return d


@pytest.mark.parametrize("mode", ["--exact", "fast"])
def test_generate_matches_transformers(fastchat_bin, t5_folder, mode):
    for g in GOLD["generate"]:
        args = [str(fastchat_bin), "generate", "--model-path", str(t5_folder), "--prompt", g["prompt"],
                "--max-new-tokens", str(GOLD["max_new_tokens"]), "--temperature", "0", "--print-ids"]
        if mode != "fast":
            args.append(mode)
        r = subprocess.run(args, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == g["output"], g["prompt"]


def chat_replies(fastchat_bin, folder, messages, *flags):
    inp = "".join(m + END for m in messages) + "!!exit" + END
    r = subprocess.run([str(fastchat_bin), "chat", "--model-path", str(folder), "--style", "programmatic",
                        "--temperature", "0", "--max-new-tokens", str(GOLD["max_new_tokens"]), "--no-history",
                        "--debug", *flags], input=inp, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in (r.stdout + r.stderr).splitlines() if l.startswith('{"conv_template"')]
    assert all(o["conv_template"] == "one_shot" for o in out)
    return [o["outputs"] for o in out]


def test_chat_matches_fastchat(fastchat_bin, t5_folder):
    got = chat_replies(fastchat_bin, t5_folder, [c["message"] for c in GOLD["chat"]], "--exact")
    assert got == [c["text"] for c in GOLD["chat"]]


@pytest.fixture(scope="module")
def t5_serve(fastchat_bin, t5_folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("t5serve")
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", t5_folder, "--model-names", "t5",
              "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2], "--exact",
              "--limit-worker-concurrency", 8], tmp / "serve.log")
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
        yield api
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


def api_chat(api, message, path="/v1/chat/completions", **kw):
    body = {"model": "t5", "messages": [{"role": "user", "content": message}], "temperature": 0,
            "max_tokens": GOLD["max_new_tokens"], **kw}
    r = requests.post(api + path, json=body, timeout=600)
    assert r.status_code == 200, r.text
    j = r.json()
    return j["choices"][0]["message"]["content"], j["usage"]["completion_tokens"]


def test_api_answer_equals_cli(t5_serve):
    # FastChat's API has no T5 default: the penalty is asked for (FastChat's own
    # /api/v1 route takes repetition_penalty; OpenAI's /v1 has no such field)
    for c in GOLD["chat"]:
        text, _ = api_chat(t5_serve, c["message"], path="/api/v1/chat/completions", repetition_penalty=1.2)
        assert text.strip() == c["text"], c["message"]


def test_concurrent_requests_equal_one_by_one(t5_serve, figures):
    msgs = [c["message"] for c in GOLD["chat"]] + ["One more, longer:\n" + "word " * 40]
    alone = [api_chat(t5_serve, m, max_tokens=12) for m in msgs]
    with concurrent.futures.ThreadPoolExecutor(len(msgs)) as ex:
        together = list(ex.map(lambda m: api_chat(t5_serve, m, max_tokens=12), msgs))
    assert together == alone
    assert len({t for t, _ in alone}) > 1  # the prompts do reach the decoder
    figures(f"t5 engine: {len(msgs)} concurrent requests = one by one ({sum(n for _, n in alone)} tokens)")
