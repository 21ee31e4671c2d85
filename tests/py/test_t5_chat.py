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
the API's answer equals the CLI chat's. The decoders' keys and values live
in the engine's paged cache (fc_t5_kv_cache_new): with a cache of 15 blocks
(--kv-cache-tokens 240) too small for 8 requests of 120 tokens at once, all
8 complete (queued, preempted and replayed) with the answers of a large
cache one by one (exact mode; fast mode: of the same server one by one), and /worker_get_engine_stats shows every block free
afterwards; so it does after clients leave mid-stream; a prompt larger than
the whole cache, or a request that outgrows it alone, gets an error and the
worker goes on.
"""
import concurrent.futures
import json
import shutil
import subprocess
import threading
import time
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


SMALL_KV_TOKENS = 240  # 15 blocks: the longest request alone (6 + 8 blocks) fits, 8 at once do not
LONG = 120
PROMPTS = [c["message"] for c in GOLD["chat"]] + ["One more, longer:\n" + "word " * 40, "Short.",
                                                  "A third extra prompt of middling length: " + "abc " * 10]


def small_server(fastchat_bin, folder, tmp, *mode):
    """A server whose paged cache is too small for all requests at once:
    yields (API address, worker address)."""
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", folder, "--model-names", "t5",
              "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2], *mode,
              "--limit-worker-concurrency", 8, "--kv-cache-tokens", SMALL_KV_TOKENS], tmp / "serve.log")
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
        yield api, f"http://127.0.0.1:{ports[1]}"
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture(scope="module")
def t5_small(fastchat_bin, t5_folder, tmp_path_factory):
    yield from small_server(fastchat_bin, t5_folder, tmp_path_factory.mktemp("t5small"), "--exact")


@pytest.fixture(scope="module")
def t5_small_fast(fastchat_bin, t5_folder, tmp_path_factory):
    yield from small_server(fastchat_bin, t5_folder, tmp_path_factory.mktemp("t5smallfast"))


def api_complete(api, prompt, max_tokens):
    r = requests.post(api + "/v1/completions", json={"model": "t5", "prompt": prompt, "temperature": 0,
                                                     "max_tokens": max_tokens}, timeout=600)
    assert r.status_code == 200, r.text
    j = r.json()
    return j["choices"][0]["text"], j["usage"]["completion_tokens"]


def kv_stats(worker):
    return requests.post(worker + "/worker_get_engine_stats", json={}, timeout=10).json()["kv_cache"][0]


def all_free(worker):
    st = kv_stats(worker)
    return st["blocks_used"] == 0 and st["running"] == 0 and st["waiting"] == 0


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_small_cache_completes_all_queued(mode, request, figures):
    # exact: against a large cache one by one; fast: the same server one by one
    api, worker = request.getfixturevalue("t5_small" if mode == "exact" else "t5_small_fast")
    ref = request.getfixturevalue("t5_serve") if mode == "exact" else api
    alone = [api_complete(ref, m, LONG) for m in PROMPTS]
    assert all_free(worker)
    seen = {"used": 0, "waiting": 0}
    done = threading.Event()

    def watch():
        while not done.is_set():
            st = kv_stats(worker)
            seen["used"] = max(seen["used"], st["blocks_used"])
            seen["waiting"] = max(seen["waiting"], st["waiting"])
            time.sleep(0.005)

    w = threading.Thread(target=watch)
    w.start()
    try:
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as ex:
            together = list(ex.map(lambda m: api_complete(api, m, LONG), PROMPTS))
        dt = time.time() - t0
    finally:
        done.set()
        w.join()
    assert together == alone
    assert len({t for t, _ in alone}) > 1
    st = kv_stats(worker)
    assert st["blocks_total"] == SMALL_KV_TOKENS // 16
    assert st["blocks_used"] == 0 and st["running"] == 0 and st["waiting"] == 0, st
    assert seen["used"] <= st["blocks_total"]
    # the cache did hold requests back: some waited in the queue or were preempted and replayed
    assert st["preemptions"] > 0 or seen["waiting"] > 0, (st, seen)
    figures(f"t5 paged cache ({mode}): {len(PROMPTS)} concurrent requests x {LONG} tokens in {st['blocks_total']} blocks = "
            f"one by one; {st['preemptions']} preemptions, at most {seen['waiting']} waiting and "
            f"{seen['used']} blocks used seen, all free after; {dt:.2f} s")


def test_clients_leave_mid_stream_blocks_freed(t5_serve, t5_small):
    api, worker = t5_small

    def leave(prompt):
        r = requests.post(api + "/v1/completions", json={"model": "t5", "prompt": prompt, "temperature": 0,
                                                         "max_tokens": 100, "stream": True}, stream=True, timeout=600)
        got = 0
        for line in r.iter_lines():
            if line.startswith(b"data: "):
                got += 1
                if got == 2:
                    break
        r.close()
        return got

    with concurrent.futures.ThreadPoolExecutor(6) as ex:
        assert list(ex.map(leave, PROMPTS[:6])) == [2] * 6
    wait_until(lambda: all_free(worker), 60, "every block free after the clients left")
    assert api_complete(api, PROMPTS[1], 12) == api_complete(t5_serve, PROMPTS[1], 12)
    assert all_free(worker)


def test_prompt_larger_than_cache(t5_small):
    api, worker = t5_small
    r = requests.post(api + "/v1/completions", json={"model": "t5", "prompt": "word " * 300, "max_tokens": 4},
                      timeout=600)
    assert "does not fit the KV cache" in r.text, r.text
    # alone, it outgrows the cache: 6 cross-attention blocks + 200 positions > 15 blocks
    r = requests.post(api + "/v1/completions", json={"model": "t5", "prompt": PROMPTS[5], "max_tokens": 200,
                                                     "temperature": 0}, timeout=600)
    assert "too small for this request" in r.text, r.text
    assert api_complete(api, PROMPTS[0], 4)[1] > 0
    assert all_free(worker)
