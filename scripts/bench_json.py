#!/usr/bin/env python3
"""bench_json.py BIN MODEL: the cost of structured outputs (part of `make bench`).

Starts `fastchat serve` on the default model (--stream-interval 1, free
ports) and streams the same chat request, greedy, the same max_tokens and
"ignore_eos": true, alternately without a constraint and with a JSON Schema
response_format (an object with one long string, so that the output runs to
the token limit and the forced closing is part of what is timed). Decode
speed of a run = (completion tokens - 1) / (time of the last chunk - time of
the first chunk), so prefill is left out. One untimed warm-up of each first
(the engine keeps a compiled schema and its mask caches per distinct schema;
the cold first run is printed too). Prints the medians:

  json_schema decode: X tok/s vs Y unconstrained = Z% (N runs each, T tokens; cold first run W tok/s)

Knobs: BENCH_JSON_RUNS (5), BENCH_JSON_MAX_TOKENS (128), BENCH_THREADS (2).
Standard library only.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"},
                                          "words": {"type": "array", "items": {"type": "string"}, "minItems": 40}},
          "required": ["title", "words"], "additionalProperties": False}
PROMPT = "List 60 English words as a JSON object with a title and the words."


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(api, max_tokens, constrained):
    body = {"model": "smol", "messages": [{"role": "user", "content": PROMPT}], "temperature": 0,
            "max_tokens": max_tokens, "stream": True, "ignore_eos": True, "seed": 1,
            "stream_options": {"include_usage": True}}
    if constrained:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "story", "schema": SCHEMA}}
    req = urllib.request.Request(api + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t_first = t_last = None
    tokens, text = 0, []
    with urllib.request.urlopen(req, timeout=300) as r:
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
            for ch in ev.get("choices", []):
                if ch.get("delta", {}).get("content"):
                    now = time.perf_counter()
                    t_first = t_first or now
                    t_last = now
                    text.append(ch["delta"]["content"])
    if os.environ.get("BENCH_JSON_SHOW"):
        print(tokens, repr("".join(text))[:300], file=sys.stderr)
    if constrained:
        json.loads("".join(text))  # the output must still be complete JSON
    if not t_first or t_last <= t_first or tokens < 2:
        raise RuntimeError("no tokens streamed")
    return (tokens - 1) / (t_last - t_first), tokens


def main():
    binary, model = sys.argv[1], sys.argv[2]
    runs = int(os.environ.get("BENCH_JSON_RUNS", "5"))
    max_tokens = int(os.environ.get("BENCH_JSON_MAX_TOKENS", "128"))
    threads = os.environ.get("BENCH_THREADS", "2")
    ports = [free_port() for _ in range(3)]
    log = tempfile.TemporaryFile()
    p = subprocess.Popen([binary, "serve", "--model-path", model, "--model-names", "smol", "--threads", threads,
                          "--stream-interval", "1", "--controller-port", str(ports[0]), "--worker-port",
                          str(ports[1]), "--port", str(ports[2])], stdout=log, stderr=(None if os.environ.get("BENCH_JSON_SHOW") else subprocess.STDOUT))
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(api + "/v1/models", timeout=5) as r:
                    if json.load(r).get("data"):
                        break
            except OSError:
                pass
            if time.time() > deadline or p.poll() is not None:
                log.seek(0)
                sys.exit("bench_json: fastchat serve did not start\n" + log.read().decode(errors="replace")[-2000:])
            time.sleep(0.5)
        cold, _ = run(api, max_tokens, True)
        run(api, max_tokens, False)
        free, cons, n_tok = [], [], []
        for i in range(runs):
            order = (False, True) if i % 2 == 0 else (True, False)
            for c in order:
                tps, n = run(api, max_tokens, c)
                (cons if c else free).append(tps)
                if c:
                    n_tok.append(n)
        x, y = statistics.median(cons), statistics.median(free)
        print(f"json_schema decode: {x:.1f} tok/s vs {y:.1f} unconstrained = {100 * x / y:.0f}% "
              f"({runs} runs each, {min(n_tok)}-{max(n_tok)} tokens, greedy; cold first run {cold:.1f} tok/s)")
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


if __name__ == "__main__":
    main()
