"""End-to-end tests of `fastchat chat` on the default model.

- The interactive binary in a real pseudo-terminal (simple style, line
  editing through libedit): a multi-turn chat and every !! command.
- The programmatic style (FastChat's sentinel protocol) driven over pipes.
- --debug prints the prompt, the reply and tokens/s after each turn, and a
  second turn reuses the first turn's KV cache.
- The rich style in a pty: the streamed reply is rendered as Markdown (bold,
  list numbers, code blocks, inline code styled; words kept; no '**' of a
  bold span left), checked against the raw reply that --debug prints.
Replies are greedy (--temperature 0) so the runs are repeatable.
"""
import json
import os
import pty
import re
import select
import subprocess
import time

BIN = os.path.abspath(os.environ.get("FASTCHAT_BIN", "build/fastchat"))
MODEL = os.environ.get("FASTCHAT_MODEL")
END = " __END_OF_A_MESSAGE_47582648__\n"
ROLE_U, ROLE_A = "<|im_start|>user", "<|im_start|>assistant"


class Pty:
    def __init__(self, args, cwd):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(cwd)
            os.execv(args[0], args)
        self.buf = b""

    def read_until(self, pattern, timeout=120):
        """Reads until the output ends with `pattern` and then stays quiet for
        0.5 s (the prompt text also starts every reprinted user line)."""
        end = time.time() + timeout
        rx = re.compile((pattern.encode() if isinstance(pattern, str) else pattern) + rb"\Z")
        while time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.5)
            if not r and rx.search(self.buf):
                out, self.buf = self.buf, b""
                return out.decode(errors="replace")
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.buf += data
        raise AssertionError(f"timed out waiting for {pattern!r}; got {self.buf[-2000:]!r}")

    def read_past(self, pattern, timeout=120):
        """Reads until `pattern` has appeared anywhere (no quiet period)."""
        end = time.time() + timeout
        while time.time() < end:
            i = self.buf.find(pattern.encode())
            if i >= 0:
                out, self.buf = self.buf[:i + len(pattern)], self.buf[i + len(pattern):]
                return out.decode(errors="replace")
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                self.buf += os.read(self.fd, 65536)
        raise AssertionError(f"timed out waiting for {pattern!r}")

    def send(self, text):
        os.write(self.fd, text.encode())

    def wait(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.2)
                if r:
                    self.buf += os.read(self.fd, 65536)
            except OSError:
                pass
        os.kill(self.pid, 9)
        raise AssertionError("chat did not exit")


def test_interactive_chat_in_a_pty(tmp_path):
    p = Pty([BIN, "chat", "--model-path", MODEL, "--temperature", "0", "--max-new-tokens", "24"], tmp_path)
    prompt = re.escape(ROLE_U) + ": "
    p.read_until(prompt)
    p.send("What is the capital of France?\r")
    first = p.read_until(prompt)
    assert ROLE_A + ": " in first and "Paris" in first
    p.send("And of Italy?\r")
    second = p.read_until(prompt)
    assert ROLE_A + ": " in second
    # !!save then !!reset then !!load brings the two turns back
    p.send("!!save conv\r")
    p.read_until(prompt)
    saved = json.loads((tmp_path / "conv.json").read_text())
    assert saved["template_name"] == "chatml" and len(saved["messages"]) == 4
    assert saved["messages"][0] == [ROLE_U, "What is the capital of France?"]
    p.send("!!reset\r")
    assert "resetting..." in p.read_until(prompt)
    p.send("!!load conv\r")
    out = p.read_until(prompt)
    assert "loading... conv.json" in out and "And of Italy?" in out
    # !!regen drops the last reply, reprints the conversation and answers anew
    p.send("!!regen\r")
    out = p.read_until(prompt)
    assert "regenerating last message..." in out
    regen = out.split("regenerating last message...", 1)[1]
    assert regen.count(ROLE_A + ": ") == 2  # the first exchange reprinted, then the new reply
    assert len(regen.rsplit(ROLE_A + ": ", 1)[1].split(ROLE_U)[0].strip()) > 0
    # !!remove drops the last exchange and reprints the conversation
    p.send("!!remove\r")
    out = p.read_until(prompt)
    assert "removing last message..." in out and "And of Italy?" not in out.split("removing last message...")[1]
    p.send("!!save after\r")
    p.read_until(prompt)
    assert len(json.loads((tmp_path / "after.json").read_text())["messages"]) == 2
    p.send("!!exit\r")
    assert "exit..." in p.read_past("exit...")
    assert p.wait() == 0


def test_ctrl_c_aborts_a_reply(tmp_path):
    p = Pty([BIN, "chat", "--model-path", MODEL, "--temperature", "0", "--max-new-tokens", "4000"], tmp_path)
    prompt = re.escape(ROLE_U) + ": "
    p.read_until(prompt)
    p.send("Hello\r")
    p.read_until(prompt)
    p.send("Write a very long story about a dragon.\r")
    p.read_past(ROLE_A + ": ")
    time.sleep(1.0)
    p.send("\x03")
    out = p.read_until(prompt)
    assert "stopped generation." in out
    # the unfinished exchange is gone, the first one stays
    p.send("!!save aborted\r")
    p.read_until(prompt)
    msgs = json.loads((tmp_path / "aborted.json").read_text())["messages"]
    assert len(msgs) == 2 and msgs[0] == [ROLE_U, "Hello"]
    p.send("!!exit\r")
    p.read_past("exit...")
    assert p.wait() == 0


def test_programmatic_style():
    inp = "What is the capital of France?" + END + "Thanks!" + END + "!!exit" + END
    r = subprocess.run([BIN, "chat", "--model-path", MODEL, "--style", "programmatic", "--temperature", "0",
                        "--max-new-tokens", "24"], input=inp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"[!OP:{ROLE_U}]: What is the capital of France?"
    assert lines[1].startswith(f"[!OP:{ROLE_A}]: ") and "Paris" in lines[1]
    assert f"[!OP:{ROLE_U}]: Thanks!" in lines
    assert lines[-1] == "exit..."


def test_debug_reports_speed_and_reuses_the_cache():
    inp = "Name a color." + END + "Name another one." + END + "!!exit" + END
    r = subprocess.run([BIN, "chat", "--model-path", MODEL, "--style", "programmatic", "--temperature", "0",
                        "--max-new-tokens", "16", "--debug"], input=inp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    dbg = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(dbg) == 2
    for d in dbg:
        assert d["conv_template"] == "chatml" and d["speed (token/s)"] > 0
        assert d["prompt"].endswith("<|im_start|>assistant\n")
    # the second turn's prompt starts with the first turn: its blocks are reused
    assert dbg[1]["cached_prompt_tokens"] >= 16
    assert dbg[1]["prompt"].startswith(dbg[0]["prompt"])


# --------------------------------------------------------------------------
# --style rich: the reply is rendered as Markdown for the terminal while it
# streams (src/cli/md_render.c, whose exact output tests/unit/test_md_render.c
# checks). Here the real binary in a pty: --debug prints the raw reply after
# the rendered one, and the rendered text must style what the raw text marks
# up, keep every word, and leave no '**' of a bold span behind.

SGR = re.compile(r"\x1b\[[0-9;]*m")
PAIRED_BOLD = re.compile(r"\*\*([^*\s](?:[^*]*?[^*\s])?)\*\*")
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def _rich_turn(p, prompt, question):
    """Sends one question; returns (rendered reply, raw reply from --debug)."""
    p.send(question + "\r")
    out = p.read_until(prompt, timeout=300).replace("\r\n", "\n")
    seg = out.split(ROLE_A + ": ", 1)[1]
    rendered, js = seg.rsplit('\n{"conv_template"', 1)
    raw = json.loads('{"conv_template"' + js.split("\n", 1)[0])["outputs"]
    assert rendered.startswith("\n"), rendered[:80]  # rich prints the role on a line of its own
    return rendered[1:], raw


def _reader_words(raw):
    """The words of a raw reply as a reader should see them: without heading
    marks, list bullets and emphasis/code markers (fenced lines verbatim)."""
    words, fence = [], False
    for line in raw.split("\n"):
        if line.strip().startswith("```"):
            fence = not fence
        elif not fence:
            if re.fullmatch(r"\s*([-*_])(\s*\1){2,}\s*", line):
                continue  # a horizontal rule
            line = re.sub(r"^\s*#{1,6}\s+", "", line)
            line = re.sub(r"^(\s*)[-*+]\s", r"\1", line)
        words += line.replace("*", "").replace("`", "").split()
    return words


def _shown_words(rendered):
    words = []
    for line in SGR.sub("", rendered).split("\n"):
        if line and set(line) == {"─"}:
            continue
        words += line.replace("•", "").replace("*", "").replace("`", "").split()
    return words


def _check_rendering(rendered, raw):
    assert "\x1b[" in rendered, "no escape sequences in the rich output"
    assert SGR.sub("", rendered).strip() != "", "nothing rendered"
    assert _shown_words(rendered) == _reader_words(raw), "the rendered text lost or changed words"
    fence, stray = False, 0
    for line in raw.split("\n"):
        s = line.strip()
        if s.startswith("```"):
            assert "\x1b[2m" + line + "\x1b[0m\n" in rendered, f"fence line {line!r} not dimmed"
            fence = not fence
            continue
        if fence:
            assert "\x1b[32m" + line + "\x1b[0m\n" in rendered, f"code line {line!r} not shown verbatim in green"
            continue
        for m in PAIRED_BOLD.finditer(line):
            if "`" not in m.group(1):
                assert "\x1b[1m" + m.group(1) + "\x1b[0m" in rendered, f"**{m.group(1)}** not bold"
        for m in INLINE_CODE.finditer(line):
            assert "\x1b[33m" + m.group(1) + "\x1b[0m" in rendered, f"`{m.group(1)}` not styled as code"
        n = re.match(r"\s*(\d+[.)]) ", line)
        if n:
            assert "\x1b[36m" + n.group(1) + "\x1b[0m " in rendered, f"list number {n.group(1)} not styled"
        stray += PAIRED_BOLD.sub("", line).count("**")  # an unclosed ** stays as written
    shown = [l for l in rendered.split("\n") if not l.startswith(("\x1b[32m", "\x1b[2m"))]
    assert "\n".join(shown).count("**") == stray, "raw '**' left in the rendered reply"


def test_rich_style_renders_markdown(tmp_path):
    p = Pty([BIN, "chat", "--model-path", MODEL, "--style", "rich", "--temperature", "0",
             "--max-new-tokens", "160", "--debug"], tmp_path)
    prompt = re.escape(ROLE_U) + ": "
    p.read_until(prompt)
    # a numbered list with bold titles (cut off by --max-new-tokens inside a ** span)
    rendered, raw = _rich_turn(p, prompt, "How do I make a cup of tea? Give step-by-step instructions.")
    assert PAIRED_BOLD.search(raw) and re.search(r"^\d+\. ", raw, re.M), f"no Markdown in {raw!r}"
    _check_rendering(rendered, raw)
    p.send("!!reset\r")
    p.read_until(prompt)
    # a fenced code block (and inline code, when the reply has some)
    rendered, raw = _rich_turn(p, prompt, "Explain recursion. Use **bold** for key terms.")
    assert re.search(r"^```\w*\n.+?^```", raw, re.M | re.S), f"no code block in {raw!r}"
    _check_rendering(rendered, raw)
    p.send("!!exit\r")
    p.read_past("exit...")
    assert p.wait() == 0


def test_multiline_input_joins_stripped_lines():
    # FastChat's multiline prompt_for_input: each line stripped, joined with newlines, up to EOF
    inp = "  Name a color \n\tof the sky.  \n"
    r = subprocess.run([BIN, "chat", "--model-path", MODEL, "--multiline", "--temperature", "0",
                        "--max-new-tokens", "4", "--debug"], input=inp, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    dbg = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(dbg) == 1
    assert "<|im_start|>user\nName a color\nof the sky.<|im_end|>\n" in dbg[0]["prompt"]
