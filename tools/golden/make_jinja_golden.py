#!/usr/bin/env python3
"""make_jinja_golden.py: golden data for the Jinja chat template interpreter
(src/chat/jinja.c, src/chat/chat_template.c; tests/unit/test_jinja.c,
tests/py/test_jinja_cli.py).

Renders with transformers' own code path, apply_chat_template(tokenize=False)
on a real tokenizer object (SmolLM2's, loaded from the default GGUF) whose
chat_template, bos_token and eos_token are set per template. That path
normalises the messages (keys whose value is None are dropped, reasoning
fields aliased), passes tools/documents (None unless given) and the special
tokens, and renders in transformers' ImmutableSandboxedEnvironment
(trim_blocks, lstrip_blocks, loopcontrols, raise_exception, strftime_now,
tojson without HTML escaping).

Writes tests/data/conv/jinja_golden.json:
  "now", "now_epoch"  the clock strftime_now sees (datetime.now is pinned to
                      this naive time; the C test renders with TZ=UTC and
                      now_epoch)
  "templates"  {name: {"file", "bos_token", "eos_token"}}: the template text is
               tests/data/conv/jinja_templates/<file>; a token that is null is
               not passed (Qwen has no BOS)
  "cases"      {"template", "name", "messages", "add_generation_prompt",
               ["tools"], ["extra"], "output" | "error": {"type", "message"}}
  "snippets"   interpreter checks (jinja_templates/snippets.txt):
               {"template", "context", "output" | "error"}
               rendered directly by the same compiled environment
               (_compile_jinja_template(t).render(**context)).

The model templates in jinja_templates/ were written out from the templates
the models publish (tokenizer_config.json "chat_template"; the hub is not
reachable here), except vicuna.jinja (a Vicuna v1.1-style template written for
these tests) and probe.jinja (prints what a template is handed). smollm2.jinja
is read from the default GGUF's tokenizer.chat_template by this script.

    /root/refvenv/venv/bin/python tools/golden/make_jinja_golden.py
"""
import calendar
import datetime
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE_DIR = os.path.join(ROOT, "tests", "data", "conv", "jinja_templates")
OUT = os.path.join(ROOT, "tests", "data", "conv", "jinja_golden.json")

NOW = datetime.datetime(2025, 3, 9, 8, 7, 6)

import transformers  # noqa: E402
import transformers.utils.chat_template_utils as ctu  # noqa: E402


class PinnedDatetime(datetime.datetime):
    """strftime_now() calls datetime.now(); pin it so the golden is stable."""

    @classmethod
    def now(cls, tz=None):
        return NOW


ctu.datetime = PinnedDatetime

LLAMA3 = ("<|begin_of_text|>", "<|eot_id|>")
DEEPSEEK = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>")
TEMPLATES = {  # name: (file, bos_token, eos_token), the tokens of the model's tokenizer_config.json
    "llama2": ("llama2.jinja", "<s>", "</s>"),
    "llama3": ("llama3.jinja", "<|begin_of_text|>", "<|end_of_text|>"),
    "llama3_1": ("llama3_1.jinja",) + LLAMA3,
    "llama3_2": ("llama3_2.jinja",) + LLAMA3,
    "mistral_v0_1": ("mistral_v0_1.jinja", "<s>", "</s>"),
    "mistral_v0_2": ("mistral_v0_2.jinja", "<s>", "</s>"),
    "mistral_v0_3": ("mistral_v0_3.jinja", "<s>", "</s>"),
    "qwen2": ("qwen2.jinja", None, "<|im_end|>"),
    "qwen2_5": ("qwen2_5.jinja", None, "<|im_end|>"),
    "chatml": ("chatml.jinja", "<s>", "<|im_end|>"),
    "smollm2": ("smollm2.jinja", "<|im_start|>", "<|im_end|>"),
    "gemma": ("gemma.jinja", "<bos>", "<eos>"),
    "phi3": ("phi3.jinja", "<s>", "<|endoftext|>"),
    "phi3_v1": ("phi3_v1.jinja", "<s>", "<|endoftext|>"),
    "zephyr": ("zephyr.jinja", "<s>", "</s>"),
    "vicuna": ("vicuna.jinja", "<s>", "</s>"),
    "deepseek_llm": ("deepseek_llm.jinja",) + DEEPSEEK,
    "deepseek_coder": ("deepseek_coder.jinja", "<｜begin▁of▁sentence｜>", "<|EOT|>"),
    "deepseek_r1_distill": ("deepseek_r1_distill.jinja",) + DEEPSEEK,
    "probe": ("probe.jinja", "<s>", "</s>"),
}

# ---- conversations: non-ASCII, CRLF, blank lines, tabs, braces and Jinja
# syntax inside messages (never interpreted), quotes, Unicode whitespace at the
# ends (trim strips it), emoji with modifiers ----
SYS = "You are a helpful assistant.\nAnswer briefly."
U1 = "Hello! Wie geht's? 你好，世界 🌍"
A1 = "  Hi there.\nI'm fine — thanks!\n\n"
U2 = "Line one\r\nLine two\t\n\n\nafter blank lines  "
A2 = "Ça va ✓ {braces} {{ not a var }} {% not a tag %}"
U3 = "quotes ' \" and a backslash \\ and 👍🏽\u3000"


def m(role, content):
    return {"role": role, "content": content}


SHAPES = {
    "user": [m("user", U1)],
    "system_user": [m("system", SYS), m("user", U1)],
    "multi_turn": [m("user", U1), m("assistant", A1), m("user", U2)],
    "system_multi_turn": [m("system", SYS), m("user", U1), m("assistant", A1), m("user", U2)],
    "ends_with_assistant": [m("user", U1), m("assistant", A2)],
    "long": [m("system", SYS), m("user", U1), m("assistant", A1), m("user", U2), m("assistant", A2), m("user", U3)],
    "empty_content": [m("user", "")],
    "two_users": [m("user", U1), m("user", U3)],
    "empty": [],
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather — in °C.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                           "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
CALL = {"id": "call12345", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}
CALL_STR = {"id": "call67890", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}

EXTRA_CASES = [  # (template, name, messages, add_generation_prompt, tools, extra)
    ("llama3_1", "tools_in_user_message", [m("system", SYS), m("user", U1)], True, [WEATHER], None),
    ("llama3_1", "tools_in_system", [m("user", U1)], True, [WEATHER], {"tools_in_user_message": False}),
    ("llama3_1", "date_string", [m("user", U1)], True, None, {"date_string": "01 Jan 2030"}),
    ("llama3_1", "tool_call_and_result",
     [m("user", U1), {"role": "assistant", "content": None, "tool_calls": [CALL]},
      {"role": "tool", "content": {"temp": 21.5, "unit": "C"}}], True, [WEATHER], None),
    ("llama3_1", "builtin_tools",
     [m("user", "search it"), {"role": "assistant", "tool_calls": [
         {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "weather"}}}]},
      {"role": "ipython", "content": "sunny"}], True, None,
     {"builtin_tools": ["brave_search", "wolfram_alpha", "code_interpreter"]}),
    ("llama3_1", "two_tool_calls_refused",
     [m("user", U1), {"role": "assistant", "tool_calls": [CALL, CALL]}], True, None, None),
    ("llama3_1", "tools_without_user", [], True, [WEATHER], None),
    ("llama3_2", "tools", [m("system", SYS), m("user", U1)], True, [WEATHER], None),
    ("llama3_2", "tool_result_string", [m("user", U1), {"role": "tool", "content": "21 C"}], True, None, None),
    ("mistral_v0_3", "tools",
     [m("user", U1), {"role": "assistant", "tool_calls": [CALL]},
      {"role": "tool", "content": "21 C", "tool_call_id": "call12345"}, m("assistant", A1), m("user", U2)],
     False, [WEATHER], None),
    ("mistral_v0_3", "system_and_tools", [m("system", SYS), m("user", U1)], True, [WEATHER], None),
    ("mistral_v0_3", "bad_call_id",
     [m("user", U1), {"role": "assistant", "tool_calls": [dict(CALL, id="short")]}], False, None, None),
    ("qwen2_5", "tools", [m("system", SYS), m("user", U1)], True, [WEATHER], None),
    ("qwen2_5", "tool_calls",
     [m("user", U1), {"role": "assistant", "content": None, "tool_calls": [CALL, CALL_STR]},
      {"role": "tool", "content": "21 C"}, {"role": "tool", "content": "18 C"}, m("assistant", A2)],
     True, [WEATHER], None),
    ("qwen2_5", "tool_call_with_text",
     [m("user", U1), {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]},
      {"role": "tool", "content": "21 C"}], True, None, None),
    ("deepseek_r1_distill", "think",
     [m("system", SYS), m("user", U1), m("assistant", "<think>\nhmm\n</think>\n\nThe answer."), m("user", U2)],
     True, None, None),
    ("deepseek_r1_distill", "tool_calls_undefined_content",
     [m("user", U1), {"role": "assistant", "content": None, "tool_calls": [CALL_STR]}], True, None, None),
    ("deepseek_r1_distill", "tool_outputs",
     [m("user", U1), {"role": "assistant", "content": "x", "tool_calls": [CALL_STR]},
      {"role": "tool", "content": "21 C"}, {"role": "tool", "content": "18 C"}, m("assistant", "Warm.")],
     True, None, None),
    ("probe", "normalised",
     [{"role": "system", "content": SYS, "name": None},
      {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image", "url": None}]},
      {"role": "assistant", "content": "ok", "reasoning": "because"},
      {"role": "assistant", "content": "ok", "thinking": "t", "reasoning_content": None},
      {"role": "assistant", "content": None, "reasoning_content": "r", "thinking": "own"}],
     True, [WEATHER], {"extra": "E"}),
    ("probe", "plain", [m("user", U1)], False, None, None),
]

# ---- interpreter checks, rendered directly ----
SNIPPET_CONTEXT = {
    "messages": [m("system", "Be nice."), m("user", "Hi é"), m("assistant", " Hello! ")],
    "x": None, "n": 3, "s": "a b", "d": {"b": 1, "a": [1, 2.5, "x"]},
    "bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True,
}


def load_snippets():
    path = os.path.join(TEMPLATE_DIR, "snippets.txt")
    text = open(path, encoding="utf-8").read()
    return [b for b in text.split("\n====\n") if b.strip() and not b.startswith("#")]


def gguf_chat_template(path):
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def err(e):
    return {"type": type(e).__name__, "message": str(e)}


def main():
    model = subprocess.run([os.path.join(ROOT, "scripts", "fetch_model.sh")], capture_output=True,
                           text=True, check=True).stdout.strip()
    smol = gguf_chat_template(model)
    with open(os.path.join(TEMPLATE_DIR, "smollm2.jinja"), "w", encoding="utf-8", newline="") as f:
        f.write(smol)
    tok = transformers.AutoTokenizer.from_pretrained(os.path.dirname(model), gguf_file=os.path.basename(model))
    assert tok.chat_template == smol

    def render(name, messages, agp, tools, extra):
        file, bos, eos = TEMPLATES[name]
        tok.chat_template = open(os.path.join(TEMPLATE_DIR, file), encoding="utf-8", newline="").read()
        tok.bos_token = bos
        tok.eos_token = eos
        try:
            out = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=agp, tokenize=False,
                                          **(extra or {}))
            return {"output": out}
        except Exception as e:  # noqa: BLE001 (the golden records what transformers raises)
            return {"error": err(e)}

    cases = []
    for name in TEMPLATES:
        if name == "probe":
            continue
        for shape, messages in SHAPES.items():
            for agp in (False, True):
                c = {"template": name, "name": f"{shape}/agp={int(agp)}", "messages": messages,
                     "add_generation_prompt": agp}
                c.update(render(name, messages, agp, None, None))
                cases.append(c)
    for name, cname, messages, agp, tools, extra in EXTRA_CASES:
        c = {"template": name, "name": cname, "messages": messages, "add_generation_prompt": agp}
        if tools is not None:
            c["tools"] = tools
        if extra is not None:
            c["extra"] = extra
        c.update(render(name, messages, agp, tools, extra))
        cases.append(c)

    snippets = []
    for t in load_snippets():
        s = {"template": t, "context": SNIPPET_CONTEXT}
        try:
            s["output"] = ctu._compile_jinja_template(t).render(**SNIPPET_CONTEXT)
        except Exception as e:  # noqa: BLE001
            s["error"] = err(e)
        snippets.append(s)

    golden = {
        "generator": "tools/golden/make_jinja_golden.py",
        "transformers": transformers.__version__,
        "jinja2": __import__("jinja2").__version__,
        "now": NOW.isoformat(),
        "now_epoch": calendar.timegm(NOW.timetuple()),
        "templates": {k: {"file": v[0], "bos_token": v[1], "eos_token": v[2]} for k, v in TEMPLATES.items()},
        "cases": cases,
        "snippets": snippets,
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum("error" in c for c in cases)
    print(f"{OUT}: {len(cases)} cases ({n_err} errors), {len(snippets)} snippets "
          f"({sum('error' in s for s in snippets)} errors)", file=sys.stderr)


if __name__ == "__main__":
    main()
