"""The command-line flags of every subcommand, read by the one table-driven
parser (src/base/flags.c): a bad value or an unknown flag is one line on
stderr that names the flag (with the nearest spelling suggested) and exit
status 2, before anything is loaded or bound; FastChat's two spellings of a
flag ('_' or '-') are the same flag; --help lists the table.

The reference for the spellings is FastChat's argparse (fastchat/serve/cli.py
has --repetition_penalty, the servers have --model-path etc.).
"""
import json
import os
import subprocess

import pytest

BIN = os.path.abspath(os.environ.get("FASTCHAT_BIN", "build/fastchat"))
MODEL = os.environ.get("FASTCHAT_MODEL")
END = " __END_OF_A_MESSAGE_47582648__\n"


def run(*args, **kw):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


def one_error_line(r, want):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert r.stderr == f"error: {want}\n"


def test_serve_port_not_a_number():
    # before: atoi("x") = 0, so it listened on a random port
    one_error_line(run("serve", "--port", "x"), "--port: 'x' is not an integer")


def test_chat_misspelt_flag_suggests_the_nearest():
    one_error_line(run("chat", "--temprature", "0.5"), "unknown option --temprature (did you mean --temperature?)")


@pytest.mark.parametrize("args, want", [
    (["worker", "--port", "70000"], "--port: 70000 is out of range (0 to 65535)"),
    (["worker", "--limit-worker-concurrency", "0"], "--limit-worker-concurrency: 0 is out of range (1 to 1048576)"),
    (["api", "--port", "8000x"], "--port: '8000x' is not an integer"),
    (["controller", "--prot", "1"], "unknown option --prot (did you mean --port?)"),
    (["generate", "--max-new-tokens"], "--max-new-tokens needs a value"),
    (["generate", "--temperature", "warm"], "--temperature: 'warm' is not a number"),
    (["serve", "--seed", "-3"], "--seed: '-3' is not a non-negative integer"),
    (["bench-serve", "--clients=four"], "--clients: 'four' is not an integer"),
    (["chat", "--style", "fancy"], "--style: unknown style (styles: simple, rich, programmatic)"),
    (["chat", "--exact=yes"], "--exact takes no value"),
    (["tokenize", "--frobnicate"], "unknown option --frobnicate (run with --help for the options)"),
    (["prompt", "stray"], "unexpected argument 'stray' (run with --help for the options)"),
    (["bench", "--kv-type", "q4_0"], "--kv-type: the KV cache holds f16 or f32"),
])
def test_bad_command_lines(args, want):
    one_error_line(run(*args), want)


def chat_reply(*flags):
    inp = "Write a list of five fruits." + END + "!!exit" + END
    r = run("chat", "--model-path", MODEL, "--style", "programmatic", "--temperature", "0",
            "--max-new-tokens", "40", *flags, input=inp)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_repetition_penalty_both_spellings():
    assert MODEL, "set FASTCHAT_MODEL (scripts/fetch_model.sh)"
    underscore = chat_reply("--repetition_penalty", "1.8")
    dash = chat_reply("--repetition-penalty", "1.8")
    assert underscore == dash
    # and the value reaches the sampler: greedy text changes under a strong penalty
    assert underscore != chat_reply("--repetition_penalty", "1.0")
    # FastChat's other spellings: --model_path as --model-path, --max_new_tokens as --max-new-tokens
    assert chat_reply("--max_new_tokens", "40", "--repetition_penalty=1.8") == underscore


@pytest.mark.parametrize("cmd, flags", [
    ("serve", ["--model-path", "--model-names", "--conv-template", "--port, --api-port", "--controller-port",
               "--worker-port", "--api-keys", "--allowed-origins", "--limit-worker-concurrency", "--seed",
               "-v, --verbose"]),
    ("worker", ["--model-path", "--port", "--controller-address", "--no-register", "--embed-in-truncate",
                "--kv-cache-tokens", "--act8"]),
    ("api", ["--host", "--port", "--controller-address", "--api-keys", "--allow-credentials", "--ssl"]),
    ("controller", ["--host", "--port", "--dispatch-method"]),
    ("chat", ["--model-path", "--conv-template", "--conv-system-msg", "--temperature", "--repetition_penalty",
              "--max-new-tokens", "--no-history", "--style", "--multiline", "--debug"]),
    ("generate", ["--prompt-ids", "--prompt", "--out", "--seed", "--batch", "--print-ids"]),
    ("logits", ["--prompt-ids", "--out"]),
    ("bench", ["--depths", "--batches", "--batch-ctx", "--kv-type", "--bw-gbs"]),
    ("bench-serve", ["--url", "--clients", "--requests", "--duration", "--completions", "--json"]),
    ("test-message", ["--model-name", "--worker-address", "--message"]),
    ("prompt", ["--conv-template", "--messages", "--chat-template", "--tools", "--no-generation-prompt", "--list"]),
    ("tokenize", ["--text", "--file", "--no-special", "--no-parse-special", "--pieces"]),
    ("detokenize", ["--ids", "--skip-special"]),
    ("inspect", ["--model-path", "--tensors"]),
    ("quantize", ["--model-path", "--type", "--out"]),
])
def test_help_lists_the_flags(cmd, flags):
    for h in ("--help", "-h"):
        r = run(cmd, h)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert r.stdout.startswith("usage: fastchat "), r.stdout
        lines = r.stdout.splitlines()
        for f in flags:
            assert any(l.startswith(f"  {f} ") or l == f"  {f}" for l in lines), (cmd, f, r.stdout)


# ---- leaderboard and the data tools (their tables came later: src/cli/cmd_leaderboard.c, cmd_data.c) ----

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARENA_LOGS = os.path.join(ROOT, "tests", "data", "arena", "logs")


@pytest.mark.parametrize("args, want", [
    (["leaderboard", "--num-bootstap", "3"], "unknown option --num-bootstap (did you mean --num-bootstrap?)"),
    (["leaderboard", "--num-bootstrap", "x"], "--num-bootstrap: 'x' is not an integer"),
    (["leaderboard", "--num-bootstrap", "100001"], "--num-bootstrap: 100001 is out of range (0 to 100000)"),
    (["leaderboard", "--seed", "-1"], "--seed: '-1' is not a non-negative integer"),
    (["leaderboard", "--rating-system", "glicko"], "--rating-system: takes bt or elo"),
    (["leaderboard", "--json=1"], "--json takes no value"),
    (["data", "sample", "--in-fle", "x.json"], "unknown option --in-fle (did you mean --in-file?)"),
    (["data", "sample", "--in-file", "x.json", "--max-length", "1e3"], "--max-length: '1e3' is not an integer"),
    (["data", "split_train_test", "--in-file", "x.json", "--ratio", "half"], "--ratio: 'half' is not a number"),
    (["data", "split-long", "--in-file", "x.json", "--m", "7"],
     "ambiguous option --m (could be --model-name-or-path, --max-length)"),
    (["data", "optional-clean", "--in-file", "x.json", "--keep-lang", "de"],
     "--keep-lang: invalid choice: 'de' (choose from 'all', 'en')"),
    (["data", "merge", "--in-file", "--out-file", "m.json"], "--in-file needs a value"),
    (["data", "stats", "--by-role=yes"], "--by-role takes no value"),
    (["data", "clean-sharegpt", "stray"], "unexpected argument 'stray' (run with --help for the options)"),
])
def test_bad_command_lines_later_commands(args, want, tmp_path):
    one_error_line(run(*args, cwd=tmp_path), want)
    assert list(tmp_path.iterdir()) == []  # refused before anything is written


def leaderboard_json(*args):
    r = run("leaderboard", "--json", *args)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    del out["compute_seconds"]
    return out


def test_leaderboard_spellings():
    dash = leaderboard_json("--num-bootstrap", "0", "--exclude-tie", "--log-dir", ARENA_LOGS)
    assert dash == leaderboard_json("--num_bootstrap=0", "--exclude_tie", "--log_dir", ARENA_LOGS)
    # the log folder as an argument is the same as --log-dir; --exclude-tie reached the rating
    assert dash == leaderboard_json("--num-bootstrap", "0", "--exclude-tie", ARENA_LOGS)
    assert dash != leaderboard_json("--num-bootstrap", "0", ARENA_LOGS)


def test_data_spellings_and_abbreviations(tmp_path):
    items = [{"id": str(i), "conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": "a"}]}
             for i in range(10)]
    (tmp_path / "in.json").write_text(json.dumps(items))
    # argparse's unique prefixes (--in, --out, --keep) and '_' for '-'
    r = run("data", "sample", "--in", "in.json", "--out_file", "a.json", "--begin=2", "--end", "5", "--keep",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert [x["id"] for x in json.loads((tmp_path / "a.json").read_text())] == ["2", "3", "4"]
    # merge's --in-file takes several files (nargs='+')
    r = run("data", "merge", "--in-file", "in.json", "a.json", "--out", "m.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "m.json").read_text())) == 13


@pytest.mark.parametrize("args, flags", [
    (["leaderboard"], ["--clean-battle-file F", "--log-dir D", "--num-bootstrap N", "--rating-system bt|elo",
                       "--exclude-tie", "--exclude-models A,B", "--include-named", "--exact-bt", "--seed S",
                       "--ban-ip-file F", "--sanitize-ip", "--write-clean-battles F", "--json"]),
    (["data", "merge"], ["--in-file FILE ...", "--out-file FILE"]),
    (["data", "sample"], ["--in-file FILE", "--out-file FILE", "--begin N", "--end N", "--max-length N",
                          "--keep-order"]),
    (["data", "split-long"], ["--model-name-or-path PATH", "--max-length N"]),
    (["data", "optional_clean"], ["--keep-lang all|en", "--skip-lang VALUE", "--reduce-rep"]),
])
def test_help_lists_the_flags_later_commands(args, flags):
    r = run(*args, "--help")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith(f"usage: fastchat {' '.join(args)} ".replace("optional_clean", "optional-clean"))
    lines = r.stdout.splitlines()
    for f in flags:
        assert any(l.startswith(f"  {f} ") or l == f"  {f}" for l in lines), (args, f, r.stdout)


@pytest.mark.parametrize("args, want", [
    (["download", "org/name", "--revison", "v1"], "unknown option --revison (did you mean --revision?)"),
    (["download", "org/name", "--include"], "--include needs a value"),
    (["download", "--quiet=1", "org/name"], "--quiet takes no value"),
])
def test_bad_command_lines_download(args, want, tmp_path):
    one_error_line(run(*args, cwd=tmp_path), want)


def test_download_repo_id_before_or_after_the_flags(tmp_path):
    # REPO_ID and FILEs may come anywhere among the flags (before: only first)
    flags = ["--endpoint", "http://127.0.0.1:9", "--cache-dir", str(tmp_path), "--no-progress"]
    after = run("download", "org/name", "config.json", *flags)
    before = run("download", *flags, "org/name", "config.json")
    assert after.returncode == before.returncode == 1
    assert after.stderr == before.stderr and "127.0.0.1:9" in after.stderr and "org/name" in after.stderr


@pytest.mark.parametrize("args, want", [
    (["judge", "gen-judgment", "--mdoe", "single"], "unknown option --mdoe (did you mean --mode?)"),
    (["judge", "gen-answer", "--num-choices", "0"], "--num-choices: 0 is out of range (1 to 1048576)"),
    (["judge", "gen-api-answer", "--parallel", "two"], "--parallel: 'two' is not an integer"),
    (["judge", "gen-answer", "--max-new-token", "-5"], "--max-new-token: -5 is out of range (1 to 2147483647)"),
    (["judge", "gen-api-answer", "--timeout", "soon"], "--timeout: 'soon' is not a number"),
    (["judge", "agreement", "--judges", "human"], "--judges needs two values (e.g. --judges gpt4-pair human)"),
    (["judge", "show-result", "--model-list", "--json"], "--model-list needs a value"),
])
def test_bad_command_lines_judge(args, want, tmp_path):
    one_error_line(run(*args, cwd=tmp_path), want)


def test_judge_help_lists_the_flags():
    for args in (["judge", "--help"], ["judge", "show-result", "-h"]):
        r = run(*args)
        assert r.returncode == 0 and r.stderr == "" and r.stdout.startswith("usage: fastchat judge "), r.stderr
        lines = r.stdout.splitlines()
        for f in ["--bench-name NAME", "--output-file, -o FILE", "--model-list MODEL ...", "--judges JUDGE ...",
                  "--max-tokens, --max-new-token N", "--quiet, -q", "--json"]:
            assert any(l.startswith(f"  {f} ") or l == f"  {f}" for l in lines), (f, r.stdout)
    r = run("judge")
    assert r.returncode == 2 and r.stdout == "" and r.stderr.startswith("usage: fastchat judge ")


@pytest.mark.parametrize("args, want", [
    # before: atoi, so --port x listened on port 0 (a random one) and --rate-limit x meant none
    (["web", "--port", "x"], "--port: 'x' is not an integer"),
    (["web", "--port", "70000"], "--port: 70000 is out of range (0 to 65535)"),
    (["web", "--rate-limit", "ten"], "--rate-limit: 'ten' is not an integer"),
    (["web", "--prot", "7860"], "unknown option --prot (did you mean --port?)"),
    (["web", "--controller_adress", "http://x"],
     "unknown option --controller_adress (did you mean --controller-address?)"),
    (["web", "--import-logs"], "--import-logs needs a value"),
])
def test_bad_command_lines_web(args, want, tmp_path):
    one_error_line(run(*args, cwd=tmp_path), want)


def test_web_fastchat_flags_accepted(tmp_path):
    # FastChat's gradio_web_server_multi flags: ignored, or ignored with a warning; both spellings of a flag
    db = tmp_path / "a.db"
    r = run("web", "--db", db, "--controller_url", "http://127.0.0.1:9", "--model-list-mode", "reload",
            "--concurrency_count", "10", "--gradio-auth-path", "p", "--share", "--vision-arena",
            "--export-logs", tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ("warning: --share is not supported here; ignored\n"
                        "warning: --vision-arena is not supported here; ignored\n")
    assert r.stdout == f"exported 0 records into 0 file(s) in {tmp_path}\n"
    h = run("web", "--help")
    assert h.returncode == 0 and h.stdout.startswith("usage: fastchat web [options]\n")
    for f in ["--controller-address, --controller-url URL", "--port N", "--db F", "--rate-limit N",
              "--import-logs PATH", "--export-logs DIR", "-v, --verbose"]:
        assert any(l.startswith(f"  {f} ") or l == f"  {f}" for l in h.stdout.splitlines()), (f, h.stdout)
