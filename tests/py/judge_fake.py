"""A fake OpenAI-compatible chat server for the `fastchat judge` tests
(tests/py/test_judge*.py): a real HTTP socket (http.server), replies chosen
by the request's model name so one server plays every role:

  ok          a chat completion; for a judge prompt, a verdict derived from a
              hash of the prompt ("[[7]]", "[[A]]", ...), else an answer text
  noverdict   a completion whose text holds no verdict
  e500        always HTTP 500
  flaky       HTTP 500 or 429 for the first two tries of each prompt, then ok
  garbage     HTTP 200 with a body that is not JSON
  hang        never answers (the client's timeout must fire)
  close       closes the connection without a response
  slow        ok after 0.15 s (for the kill -9 test)

Counters of requests per model are kept for the assertions."""
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeState:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = {}
        self.tries = {}

    def count(self, model):
        with self.lock:
            self.requests[model] = self.requests.get(model, 0) + 1

    def try_no(self, key):
        with self.lock:
            self.tries[key] = self.tries.get(key, 0) + 1
            return self.tries[key]


def verdict_text(system, user, model=""):
    h = int(hashlib.sha256((system + "\x00" + user).encode()).hexdigest(), 16)
    wants_ab = "[[A]]" in system or "[[A]]" in user
    if wants_ab:
        v = ["[[A]]", "[[B]]", "[[C]]", "no clear winner"][h % 4]
        return f"Both answers were read. Verdict: {v}"
    if "[[" in system or "[[" in user or "Rating" in user:
        kind = h % 5
        if kind == 0:
            return "I cannot decide."
        if kind == 1:
            return f"Decent. Rating: [{h % 10 + 1}]"
        if kind == 2:
            return f"Rating: [[{h % 10 + 1}.5]]"
        return f"Rating: [[{h % 10 + 1}]]"
    h = int(hashlib.sha256((model + user).encode()).hexdigest(), 16)
    return f"answer {h % 1000}: " + user[:40]


def make_handler(state):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            req = json.loads(self.rfile.read(n) or b"{}")
            model = req.get("model", "")
            state.count(model)
            msgs = req.get("messages", [])
            system = "".join(m["content"] for m in msgs if m.get("role") == "system")
            user = "\n".join(m["content"] for m in msgs if m.get("role") != "system")
            kind = model.split(":")[0]
            if kind == "e500":
                return self.reply(500, '{"error": {"message": "boom"}}')
            if kind == "garbage":
                return self.reply(200, "<html>not json at all", "text/html")
            if kind == "hang":
                time.sleep(30)
                return self.reply(500, "{}")
            if kind == "close":
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)
                return
            if kind == "flaky" and state.try_no(model + system + user) <= 2:
                code = 429 if state.try_no("code" + model + system + user) % 2 else 500
                return self.reply(code, '{"error": {"message": "try later"}}')
            if kind == "slow":
                time.sleep(0.15)
            text = "No verdict here, sorry." if kind == "noverdict" else verdict_text(system, user, model)
            body = {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split()),
                              "total_tokens": len(user.split()) + len(text.split())}}
            return self.reply(200, json.dumps(body))

    return H


class FakeServer:
    def __init__(self):
        self.state = FakeState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    import sys
    s = FakeServer()
    print(s.base, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    sys.exit(0)
