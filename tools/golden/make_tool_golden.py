#!/usr/bin/env python3
"""make_tool_golden.py: golden prompts of tool-calling conversations, rendered
by transformers' apply_chat_template(messages, tools=..., add_generation_prompt=True,
tokenize=False) with the chat templates of tests/data/conv/jinja_templates/
that take `tools` (Qwen2.5, Llama 3.1, Mistral v0.3).

Each case holds the conversation twice: "request_messages" as an OpenAI client
sends it (a call's function.arguments is a JSON *string*, content null next to
tool_calls) and the rendering transformers makes of the same conversation with
arguments as dicts (what these templates expect and what the server passes
them, serve/tool_calls.c fc_tool_messages_for_template). For qwen2_5 it also
holds "n_tokens": the prompt's length with the Qwen2 test tokenizer
(tests/data/tokenizer/qwen2), which the served tiny model reports as
usage.prompt_tokens.

Writes tests/data/tools/golden.json, read by tests/unit/test_tool_calls.c
(exact text, all templates) and tests/py/test_tool_calls.py (qwen2_5 token
counts through the server).

Usage: /work/gvenv/bin/python tools/golden/make_tool_golden.py
Needs transformers (not part of the CI venv).
"""
import copy
import json
import os

from transformers import AutoTokenizer, PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATES = os.path.join(ROOT, "tests", "data", "conv", "jinja_templates")
OUT = os.path.join(ROOT, "tests", "data", "tools", "golden.json")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the local time",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

SYS = {"role": "system", "content": "You are a helpful assistant."}
ASK = {"role": "user", "content": "What is the weather in Paris?"}
# Mistral's template wants 9-character call ids
CALL1 = {"id": "call12345", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}
CALL2 = {"id": "call67890", "type": "function", "function": {"name": "get_time", "arguments": "{\"city\": \"Paris\"}"}}

CASES = [
    ("user_only", [ASK], [WEATHER]),
    ("system_two_tools", [SYS, ASK], [WEATHER, TIME]),
    ("round_trip", [ASK, {"role": "assistant", "content": None, "tool_calls": [CALL1]},
                    {"role": "tool", "tool_call_id": "call12345", "content": "{\"temperature\": 18}"}], [WEATHER]),
    ("parallel_round_trip", [SYS, ASK, {"role": "assistant", "content": None, "tool_calls": [CALL1, CALL2]},
                             {"role": "tool", "tool_call_id": "call12345", "content": "18 C"},
                             {"role": "tool", "tool_call_id": "call67890", "content": "10:00"},
                             {"role": "assistant", "content": "It is 18 C at 10:00."},
                             {"role": "user", "content": "Thanks. And in Rome?"}], [WEATHER, TIME]),
]
TEMPLATE_NAMES = ["qwen2_5", "llama3_1", "mistral_v0_3"]
SPECIAL = {"qwen2_5": ("", "<|im_end|>"), "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"),
           "mistral_v0_3": ("<s>", "</s>")}


def for_template(messages):
    """What the server hands the template: arguments parsed, null content dropped."""
    out = []
    for m in copy.deepcopy(messages):
        m = {k: v for k, v in m.items() if v is not None}
        for c in m.get("tool_calls", []):
            c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        out.append(m)
    return out


def main():
    qwen_tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "tests", "data", "tokenizer", "qwen2"))
    cases = []
    for tname in TEMPLATE_NAMES:
        with open(os.path.join(TEMPLATES, tname + ".jinja")) as f:
            template = f.read()
        bos, eos = SPECIAL[tname]
        tok = PreTrainedTokenizerFast(tokenizer_object=qwen_tok.backend_tokenizer, bos_token=bos or None,
                                      eos_token=eos)
        tok.chat_template = template
        for name, messages, tools in CASES:
            if tname == "llama3_1" and name == "parallel_round_trip":
                continue  # Llama 3.1's template refuses more than one call per message
            prompt = tok.apply_chat_template(for_template(messages), tools=tools, add_generation_prompt=True,
                                             tokenize=False)
            case = {"name": f"{tname}/{name}", "template": tname, "bos_token": bos, "eos_token": eos,
                    "request_messages": messages, "tools": tools, "prompt": prompt}
            if tname == "qwen2_5":
                case["n_tokens"] = len(qwen_tok(prompt, add_special_tokens=False)["input_ids"])
            cases.append(case)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    import transformers
    with open(OUT, "w") as f:
        json.dump({"generator": "tools/golden/make_tool_golden.py", "transformers": transformers.__version__,
                   "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(cases)} cases -> {OUT}")


if __name__ == "__main__":
    main()
