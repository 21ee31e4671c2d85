"""test_prompt_cli.py: black-box tests of `fastchat prompt` against FastChat.

tests/data/conv/golden.json (tools/golden/make_conv_golden.py) holds, for every
template, OpenAI-style message lists and the exact prompt FastChat's OpenAI API
server renders for them (get_gen_params), and model paths with the template
FastChat's adapters pick. The binary must print the same bytes.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "data" / "conv" / "golden.json").read_text(encoding="utf-8"))
BIN = os.environ.get("FASTCHAT_BIN", str(ROOT / "build" / "fastchat"))


def run(*args, stdin=None):
    return subprocess.run([BIN, "prompt", *args], input=stdin, capture_output=True, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module", autouse=True)
def have_prompt_command():
    if not Path(BIN).exists():
        pytest.fail(f"{BIN} not built; run `make` (or set FASTCHAT_BIN)")


def test_list_prints_every_template_in_registration_order():
    p = run("--list")
    assert p.returncode == 0
    assert p.stdout.decode().splitlines() == [t["name"] for t in GOLDEN["templates"]]


@pytest.mark.parametrize("case", GOLDEN["api_cases"], ids=lambda c: f"{c['template']}/{c['name']}")
def test_prompt_matches_fastchat_api_server(case, tmp_path):
    f = tmp_path / "messages.json"
    f.write_text(json.dumps(case["messages"], ensure_ascii=False), encoding="utf-8")
    p = run("--conv-template", case["template"], "--messages", str(f))
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == case["prompt"].encode("utf-8")  # exact bytes, no newline added


def test_json_output_carries_stop_strings_and_ids(tmp_path):
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    for case in GOLDEN["api_cases"]:
        if case["name"] != "user":
            continue
        p = run("--conv-template", case["template"], "--messages", str(f), "--json")
        assert p.returncode == 0, p.stderr.decode()
        out = json.loads(p.stdout)
        assert out["template"] == case["template"]
        assert sorted(set(out["stop"])) == case["stop"]
        assert out["stop_token_ids"] == (case["stop_token_ids"] or [])


def test_model_path_picks_fastchats_template(tmp_path):
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    checked = 0
    for a in GOLDEN["adapters"][:250]:
        p = run("--model-path", a["path"], "--messages", str(f), "--json")
        if a["template"] is None or a["template"] == "yandexgpt":  # FastChat raises / cannot render
            assert p.returncode != 0 and b"error:" in p.stderr
            continue
        assert p.returncode == 0, (a, p.stderr.decode())
        assert json.loads(p.stdout)["template"] == a["template"], a
        checked += 1
    assert checked > 200


def test_conv_template_wins_over_model_path(tmp_path):
    f = tmp_path / "m.json"
    f.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    p = run("--model-path", "lmsys/vicuna-7b-v1.5", "--conv-template", "llama-3", "--messages", str(f), "--json")
    assert json.loads(p.stdout)["template"] == "llama-3"


def test_stdin_text_parts_and_raw_string():
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]
    p = run("--conv-template", "zephyr", "--messages", "-", stdin=json.dumps(msgs).encode())
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"<|system|>\n</s>\n<|user|>\na\nb</s>\n<|assistant|>\n"  # as FastChat renders it
    p = run("--conv-template", "zephyr", "--messages", "-", stdin=b'"raw prompt, unchanged\\n"')
    assert p.stdout == b"raw prompt, unchanged\n"


@pytest.mark.parametrize("args, stdin, needle", [
    (["--conv-template", "no-such-template", "--messages", "-"], b"[]", b"unknown conversation template"),
    (["--conv-template", "vicuna_v1.1", "--messages", "-"], b'[{"role": "tool", "content": "x"}]', b"unknown role"),
    (["--conv-template", "vicuna_v1.1", "--messages", "-"], b"[{", b"invalid JSON"),
    (["--conv-template", "vicuna_v1.1", "--messages", "-"],
     b'[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]', b"image"),
    (["--conv-template", "yandexgpt", "--messages", "-"], b"[]", b"no separator style"),
    (["--messages", "-"], b"[]", b"no conversation template"),
    (["--bogus"], b"", b"unknown option"),
])
def test_errors_are_reported_with_a_hint(args, stdin, needle):
    p = run(*args, stdin=stdin)
    assert p.returncode == (2 if args == ["--bogus"] else 1)  # a bad command line: status 2
    assert needle in p.stderr and b"error:" in p.stderr
