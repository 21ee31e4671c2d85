"""test_jinja_cli.py: black-box tests of `fastchat prompt --conv-template auto`
(the model's own Hugging Face chat template) against transformers.

tests/data/conv/jinja_golden.json (tools/golden/make_jinja_golden.py) holds
what transformers' apply_chat_template renders; its "smollm2" template is the
default model's GGUF tokenizer.chat_template, rendered with that tokenizer's
BOS and EOS. The binary, reading the template and special tokens from the
GGUF itself, must print the same bytes.
"""
import json
import subprocess

import pytest

from conftest import DATA

GOLDEN = json.loads((DATA / "conv" / "jinja_golden.json").read_text(encoding="utf-8"))
TEMPLATES = DATA / "conv" / "jinja_templates"
SMOL = [c for c in GOLDEN["cases"] if c["template"] == "smollm2"]


class Result:
    def __init__(self, p):
        self.returncode = p.returncode
        self.stdout = p.stdout.decode("utf-8")  # bytes decoded as they are: no newline translation
        self.stderr = p.stderr.decode("utf-8", "replace")


def prompt(binary, model, tmp_path, messages, *args, check=True):
    f = tmp_path / "messages.json"
    f.write_text(json.dumps(messages, ensure_ascii=False), encoding="utf-8")
    cmd = [str(binary), "prompt", "--model-path", str(model), "--messages", str(f), *map(str, args)]
    r = Result(subprocess.run(cmd, capture_output=True, timeout=120))
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return r


def test_golden_has_the_default_models_template(model_path):
    import gguf  # the test venv has it (tests/requirements.txt)
    r = gguf.GGUFReader(str(model_path))
    f = r.fields["tokenizer.chat_template"]
    assert bytes(f.parts[f.data[0]]).decode() == (TEMPLATES / "smollm2.jinja").read_text(encoding="utf-8")
    assert len(SMOL) >= 16


@pytest.mark.parametrize("case", SMOL, ids=lambda c: c["name"])
def test_auto_matches_transformers(case, fastchat_bin, model_path, tmp_path):
    args = ["--conv-template", "auto"]
    if not case["add_generation_prompt"]:
        args.append("--no-generation-prompt")
    p = prompt(fastchat_bin, model_path, tmp_path, case["messages"], *args, check=False)
    if "error" in case:  # transformers refuses (an empty conversation)
        assert p.returncode == 1 and "error:" in p.stderr, p.stderr
        assert case["error"]["message"] in p.stderr
        return
    assert p.returncode == 0, p.stderr
    assert p.stdout == case["output"]  # exact text, no newline added


def test_auto_json_reports_eos(fastchat_bin, model_path, tmp_path):
    case = next(c for c in SMOL if c["name"] == "system_user/agp=1")
    p = prompt(fastchat_bin, model_path, tmp_path, case["messages"], "--conv-template", "auto", "--json")
    out = json.loads(p.stdout)
    assert out == {"template": "auto", "prompt": case["output"], "stop": [], "stop_token_ids": [2]}


def test_chat_template_file_with_tools(fastchat_bin, model_path, tmp_path):
    # Qwen2.5's template reads neither bos_token nor eos_token, so the default
    # model's tokenizer gives the golden's rendering.
    case = next(c for c in GOLDEN["cases"] if c["template"] == "qwen2_5" and c["name"] == "tool_calls")
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(case["tools"], ensure_ascii=False), encoding="utf-8")
    p = prompt(fastchat_bin, model_path, tmp_path, case["messages"], "--chat-template",
               TEMPLATES / "qwen2_5.jinja", "--tools", tools)
    assert p.stdout == case["output"]


def test_raise_exception_reaches_the_user(fastchat_bin, model_path, tmp_path):
    case = next(c for c in GOLDEN["cases"] if c["template"] == "gemma" and c["name"] == "system_user/agp=1")
    p = prompt(fastchat_bin, model_path, tmp_path, case["messages"], "--chat-template", TEMPLATES / "gemma.jinja",
               check=False)
    assert p.returncode == 1
    assert f"error: chat template: {case['error']['message']}" in p.stderr and "hint:" in p.stderr


def test_syntax_error_names_the_line(fastchat_bin, model_path, tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}\n{{ m.content }}\n{% endif %}")
    p = prompt(fastchat_bin, model_path, tmp_path, [{"role": "user", "content": "hi"}], "--chat-template", bad,
               check=False)
    assert p.returncode == 1 and "line 3:" in p.stderr


def test_raw_string_prints_unchanged(fastchat_bin, model_path, tmp_path):
    p = prompt(fastchat_bin, model_path, tmp_path, "raw <|im_start|> prompt\n", "--conv-template", "auto")
    assert p.stdout == "raw <|im_start|> prompt\n"
