"""test_fastchat_interop.py: our serving processes mixed with FastChat's own
Python ones (the `fschat` 0.2.36 package from PyPI), talking the worker and
controller protocols across the language boundary:

- FastChat's openai_api_server pointed at OUR controller serves chat and
  text completions from OUR worker, streamed and not, to the official
  `openai` client;
- OUR `fastchat api` pointed at FastChat's controller (with OUR worker
  registered there) does the same.

Known difference, checked by a strict xfail below: the worker protocol sends
a template's sep_style as FastChat's IntEnum number, and the PyPI 0.2.36
package numbers them without LLAMA3 (added later upstream, which our
templates follow), so for styles from LLAMA3 on (ChatML included) FastChat's
0.2.36 API server renders our worker's template with the wrong style. Chat
still answers (with a mis-rendered prompt); text completions are unaffected.
"""
import json
import sys

import openai
import pytest
import requests

from test_controller import Proc, free_port, start_api, start_controller, start_worker, wait_until

MODEL = "smol"


def start_fastchat(module, tmp, *args):
    port = free_port()
    p = Proc([sys.executable, "-m", f"fastchat.serve.{module}", "--host", "127.0.0.1", "--port", port, *args],
             tmp / f"fastchat-{module}-{port}.log", env={"LOGDIR": str(tmp)})
    return p, f"http://127.0.0.1:{port}"


def exercise(api):
    """Chat and completions, streamed and not, through the openai client."""
    c = openai.OpenAI(base_url=api + "/v1", api_key="none", max_retries=0, timeout=120)
    assert MODEL in [m.id for m in c.models.list()]
    msgs = [{"role": "user", "content": "Name a color."}]
    r = c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=6, temperature=0)
    assert r.choices[0].message.content and r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0
    chunks = list(c.chat.completions.create(model=MODEL, messages=msgs, max_tokens=6, temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)

    r = c.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=5, temperature=0)
    text = r.choices[0].text
    assert text and r.choices[0].finish_reason in ("stop", "length")
    streamed = list(c.completions.create(model=MODEL, prompt="One, two, three,", max_tokens=5, temperature=0,
                                         stream=True))
    assert "".join(ch.choices[0].text for ch in streamed)
    return text


def test_fastchat_api_server_on_our_controller_and_worker(fastchat_bin, model_path, tmp_path):
    procs = []
    try:
        ctl_p, ctl = start_controller(fastchat_bin, tmp_path)
        procs.append(ctl_p)
        w, _ = start_worker(fastchat_bin, tmp_path, ctl, model_path, MODEL)
        procs.append(w)
        api_p, api = start_fastchat("openai_api_server", tmp_path, "--controller-address", ctl)
        procs.append(api_p)
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).status_code == 200, 60,
                   "FastChat's openai_api_server", procs)
        exercise(api)
        # FastChat's error path through our controller: an unknown model
        r = requests.post(api + "/v1/chat/completions", json={"model": "nope", "messages": "hi"}, timeout=30)
        assert r.status_code == 400 and r.json()["code"] == 40301
        assert all(p.alive() for p in procs)
    finally:
        for p in reversed(procs):
            p.stop()


def test_our_api_server_on_fastchat_controller(fastchat_bin, model_path, tmp_path):
    procs = []
    try:
        ctl_p, ctl = start_fastchat("controller", tmp_path)
        procs.append(ctl_p)
        wait_until(lambda: requests.get(ctl + "/test_connection", timeout=5).status_code == 200, 60,
                   "FastChat's controller", procs)
        w, _ = start_worker(fastchat_bin, tmp_path, ctl, model_path, MODEL)
        procs.append(w)
        wait_until(lambda: MODEL in requests.post(ctl + "/list_models", timeout=5).json()["models"], 30,
                   "our worker registered with FastChat's controller", procs)
        api_p, api = start_api(fastchat_bin, tmp_path, ctl)
        procs.append(api_p)
        exercise(api)
        # the relay of FastChat's controller streams our worker's NUL-delimited chunks
        r = requests.post(ctl + "/worker_generate_stream",
                          json={"model": MODEL, "prompt": "Hello", "max_new_tokens": 3, "temperature": 0}, timeout=60)
        chunks = [json.loads(c) for c in r.content.split(b"\0") if c]
        assert chunks and chunks[-1]["error_code"] == 0 and chunks[-1]["finish_reason"] in ("stop", "length")
        assert all(p.alive() for p in procs)
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.mark.xfail(strict=True, reason="fschat 0.2.36 (PyPI) numbers SeparatorStyle without LLAMA3; our templates "
                                       "follow upstream's later numbering (CHATML = 10, 0.2.36 reads 10 as CHATINTERN)")
def test_fastchat_reads_our_sep_style(fastchat_bin, model_path, tmp_path):
    from fastchat.conversation import SeparatorStyle
    procs = []
    try:
        port = free_port()
        w = Proc([fastchat_bin, "worker", "--model-path", model_path, "--model-names", MODEL, "--port", port,
                  "--no-register"], tmp_path / "worker.log")
        procs.append(w)
        url = f"http://127.0.0.1:{port}"
        conv = wait_until(lambda: requests.post(url + "/worker_get_conv_template", json={}, timeout=5).json(), 120,
                          "the worker", procs)["conv"]
        assert conv["name"] == "chatml"
        assert SeparatorStyle(conv["sep_style"]).name == "CHATML"
    finally:
        for p in procs:
            p.stop()
