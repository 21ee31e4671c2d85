"""`fastchat judge` (MT-bench style evaluation) against FastChat's llm_judge
(the fschat package) and a fake judge endpoint on a real socket
(tests/py/judge_fake.py):

- the shipped bench and judge prompts load with fschat's loaders and fill
  FastChat's placeholders; FastChat's file formats round-trip;
- gen-api-answer: fields of gen_api_answer.py, per-category temperatures,
  --parallel, resume (a rerun sends no request and leaves the file alone);
- gen-judgment in all three modes: the games gen_judgment.py's make_match*
  functions build, every score / winner equal to what common.py's regexes
  give on the stored judgment text, both orders for pairwise;
- a judge answering 500, garbage, hanging, closing the connection, or with
  no verdict: retried, recorded as FastChat records it (-1 / "error"), the
  run finishes; a flaky judge (429/500 twice) ends with real verdicts;
- kill -9 in the middle of gen-judgment, rerun: no duplicated or broken line,
  nothing judged twice, everything judged;
- show-result and agreement on the committed synthetic judgments (>= 1000
  rows, tools/gen_synthetic_judgments.py) equal show_result.py's and
  compute_agreement.py's numbers.
"""
import ast
import builtins
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from judge_fake import FakeServer

ROOT = Path(__file__).resolve().parents[2]
SYN = ROOT / "tests" / "data" / "judge" / "synthetic"


_LLM_JUDGE = {}


def _load_llm_judge():
    """fschat's llm_judge common.py and gen_judgment.py, loaded from their
    files. They import fastchat.model.model_adapter (torch, transformers,
    psutil) and anthropic only for the API judges, which these tests do not
    call: stand-ins are placed in sys.modules while the two files load, then
    removed, so the rest of the session sees the real packages."""
    if _LLM_JUDGE:
        return _LLM_JUDGE
    import importlib.util
    import fastchat
    base = Path(fastchat.__file__).parent / "llm_judge"
    adapter = types.ModuleType("fastchat.model.model_adapter")
    adapter.get_conversation_template = None
    adapter.ANTHROPIC_MODEL_LIST = []
    adapter.OPENAI_MODEL_LIST = []
    stubs = {"anthropic": types.ModuleType("anthropic"), "fastchat.model": types.ModuleType("fastchat.model"),
             "fastchat.model.model_adapter": adapter, "tqdm": types.ModuleType("tqdm")}
    stubs["tqdm"].tqdm = lambda x, **k: x
    saved = {k: sys.modules.get(k) for k in list(stubs) + ["fastchat.llm_judge.common"]}
    try:
        for k, v in stubs.items():
            if k not in sys.modules or k.startswith("fastchat.model"):
                sys.modules[k] = v
        for name in ("common", "gen_judgment"):
            spec = importlib.util.spec_from_file_location(f"_fc_llm_judge_{name}", base / f"{name}.py")
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            _LLM_JUDGE[name] = mod
            if name == "common":
                sys.modules["fastchat.llm_judge.common"] = mod
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return _LLM_JUDGE


def fastchat_common():
    return _load_llm_judge()["common"]


@pytest.fixture(scope="module")
def fake():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture()
def work(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    shutil.copytree(ROOT / "data" / "fc_bench", d / "fc_bench")
    shutil.copy(ROOT / "data" / "judge_prompts.jsonl", d / "judge_prompts.jsonl")
    return tmp_path


def judge(fastchat_bin, cwd, *args, timeout=120, check=True, env=None):
    e = dict(os.environ)
    e.pop("OPENAI_API_KEY", None)
    e.update(env or {})
    p = subprocess.run([fastchat_bin, "judge", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, env=e)
    if check:
        assert p.returncode == 0, f"judge {args[0]} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def read_jsonl(path):
    lines = Path(path).read_text().split("\n")
    assert lines[-1] == "", "the file must end with a newline"
    return [json.loads(l) for l in lines[:-1]]


# ---- files ----

def test_shipped_bench_and_prompts_load_in_fastchat():
    common = fastchat_common()
    qs = common.load_questions(str(ROOT / "data/fc_bench/question.jsonl"), None, None)
    assert len(qs) >= 40
    cats = {}
    for q in qs:
        assert len(q["turns"]) == 2 and all(t.strip() for t in q["turns"])
        cats[q["category"]] = cats.get(q["category"], 0) + 1
    assert set(cats) == {"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"}
    assert min(cats.values()) >= 5
    refs = common.load_model_answers(str(ROOT / "data/fc_bench/reference_answer"))["gpt-4"]
    for q in qs:
        if q["category"] in common.NEED_REF_CATS:
            assert len(refs[q["question_id"]]["choices"][0]["turns"]) == 2
    prompts = common.load_judge_prompts(str(ROOT / "data/judge_prompts.jsonl"))
    fmt = {"single-v1": "[[rating]]", "single-math-v1": "[[rating]]", "single-v1-multi-turn": "[[rating]]",
           "single-math-v1-multi-turn": "[[rating]]", "pair-v2": "[[A]]", "pair-math-v1": "[[A]]",
           "pair-v2-multi-turn": "[[A]]", "pair-math-v1-multi-turn": "[[A]]"}
    assert set(prompts) == set(fmt)
    kw = {"question": "Q", "answer": "A", "answer_a": "A", "answer_b": "B", "ref_answer_1": "R1",
          "ref_answer_2": "R2", "question_1": "Q1", "question_2": "Q2", "answer_1": "A1", "answer_2": "A2",
          "answer_a_1": "A1", "answer_a_2": "A2", "answer_b_1": "B1", "answer_b_2": "B2"}
    for name, p in prompts.items():
        assert p["output_format"] == fmt[name]
        assert p["type"] == ("single" if name.startswith("single") else "pairwise")
        assert p["category"] == ("math" if "math" in name else "general")
        filled = p["prompt_template"].format(**kw)   # FastChat's str.format fill
        for k in (["ref_answer_1"] if "math" in name else []) + (["question_2"] if "multi" in name else []):
            assert kw[k] in filled


def test_gen_api_answer_fields_parallel_resume(fastchat_bin, fake, work):
    before = fake.state.requests.get("ok:gpt-x", 0)
    p = judge(fastchat_bin, work, "gen-api-answer", "--model", "ok:gpt-x", "--openai-api-base", fake.base,
              "--question-end", 8, "--parallel", 4, "--num-choices", 2, "--max-tokens", 50)
    assert "tokens:" in p.stderr
    path = work / "data/fc_bench/model_answer/ok:gpt-x.jsonl"
    rows = read_jsonl(path)
    assert [r["question_id"] for r in rows] == list(range(1, 9))  # sorted, as reorg_answer_file
    for r in rows:
        assert set(r) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
        assert len(r["answer_id"]) == 22 and r["model_id"] == "ok:gpt-x"
        assert [c["index"] for c in r["choices"]] == [0, 1]
        assert all(len(c["turns"]) == 2 for c in r["choices"])
    # 8 questions x 2 choices x 2 turns
    assert fake.state.requests["ok:gpt-x"] - before == 32
    # FastChat loads the file
    common = fastchat_common()
    assert len(common.load_model_answers(str(path.parent))["ok:gpt-x"]) == 8
    text = path.read_text()
    judge(fastchat_bin, work, "gen-api-answer", "--model", "ok:gpt-x", "--openai-api-base", fake.base,
          "--question-end", 8, "--parallel", 4, "--num-choices", 2)
    assert fake.state.requests["ok:gpt-x"] - before == 32, "a rerun must not ask again"
    assert path.read_text() == text
    # extending the range answers only the new questions
    judge(fastchat_bin, work, "gen-api-answer", "--model", "ok:gpt-x", "--openai-api-base", fake.base,
          "--question-end", 10, "--num-choices", 2)
    assert fake.state.requests["ok:gpt-x"] - before == 40
    assert [r["question_id"] for r in read_jsonl(path)] == list(range(1, 11))


def test_gen_api_answer_temperatures(fastchat_bin, work):
    """The temperature sent per question is common.py's temperature_config."""
    import http.server
    import threading
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((body["messages"][0]["content"], body.get("temperature"), body.get("max_tokens")))
            out = json.dumps({"choices": [{"message": {"role": "assistant", "content": "ok"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        judge(fastchat_bin, work, "gen-api-answer", "--model", "t", "--openai-api-base",
              f"http://127.0.0.1:{srv.server_address[1]}/v1", "--max-tokens", 33)
    finally:
        srv.shutdown()
    common = fastchat_common()
    qs = {q["turns"][0]: q["category"] for q in common.load_questions(str(work / "data/fc_bench/question.jsonl"), None, None)}
    firsts = [s for s in seen if s[0] in qs]
    assert len(firsts) == 80   # both turns start with the first question
    for text, temp, mt in firsts:
        assert temp == pytest.approx(common.temperature_config[qs[text]])
        assert mt == 33


def make_answers(fastchat_bin, fake, work, models, n):
    for m in models:
        judge(fastchat_bin, work, "gen-api-answer", "--model", m, "--openai-api-base", fake.base,
              "--question-end", n, "--parallel", 4)


def expected_games(work, mode, models, judge_model, baseline, n):
    """The games gen_judgment.py plays, from its own make_match* functions."""
    common = fastchat_common()
    gj = _load_llm_judge()["gen_judgment"]
    d = work / "data/fc_bench"
    qs = common.load_questions(str(d / "question.jsonl"), None, None)[:n]
    answers = common.load_model_answers(str(d / "model_answer"))
    refs = common.load_model_answers(str(d / "reference_answer"))
    refs[judge_model] = refs["gpt-4"]
    prompts = common.load_judge_prompts(str(work / "data/judge_prompts.jsonl"))
    if mode == "single":
        judges, fn, base = gj.make_judge_single(judge_model, prompts), gj.make_match_single, None
    else:
        judges = gj.make_judge_pairwise(judge_model, prompts)
        fn = gj.make_match_all_pairs if mode == "pairwise-all" else gj.make_match
        base = None if mode == "pairwise-all" else baseline
    qm = [q for q in qs if q["category"] in common.NEED_REF_CATS]
    qd = [q for q in qs if q["category"] not in common.NEED_REF_CATS]
    ms = fn(qd, models, answers, judges["default"], base)
    ms += fn(qm, models, answers, judges["math"], base, refs)
    ms += fn(qd, models, answers, judges["default-mt"], base, multi_turn=True)
    ms += fn(qm, models, answers, judges["math-mt"], base, refs, multi_turn=True)
    out = []
    for m in ms:
        turn = 2 if m.multi_turn else 1
        if mode == "single":
            out.append((m.question["question_id"], m.model, m.judge.prompt_template["name"], turn))
        else:
            out.append((m.question["question_id"], m.model_1, m.model_2, m.judge.prompt_template["name"], turn))
    return out, {(m.question["question_id"], 2 if m.multi_turn else 1): m for m in ms}


def fastchat_score(common, text):
    m = re.search(common.one_score_pattern, text) or re.search(common.one_score_pattern_backup, text)
    return ast.literal_eval(m.groups()[0]) if m else -1


def fastchat_winner(text):
    return "A" if "[[A]]" in text else "B" if "[[B]]" in text else "tie" if "[[C]]" in text else "error"


@pytest.mark.parametrize("mode", ["single", "pairwise-baseline", "pairwise-all"])
def test_gen_judgment_modes_match_fastchat(fastchat_bin, fake, work, mode):
    n = 16   # writing, roleplay, reasoning and a math question: both judge kinds
    models = ["ok:a", "ok:b", "ok:c"]
    make_answers(fastchat_bin, fake, work, models, n)
    args = ["gen-judgment", "--mode", mode, "--judge-model", "ok:judge", "--openai-api-base", fake.base,
            "--first-n", n, "--parallel", 4, "--model-list", *models]
    if mode == "pairwise-baseline":
        args += ["--baseline-model", "ok:c"]
    judge(fastchat_bin, work, *args)
    out = work / f"data/fc_bench/model_judgment/ok:judge_{'single' if mode == 'single' else 'pair'}.jsonl"
    rows = read_jsonl(out)
    want, matches = expected_games(work, mode, models, "ok:judge", "ok:c", n)
    common = fastchat_common()
    if mode == "single":
        got = [(r["question_id"], r["model"], r["judge"][1], r["turn"]) for r in rows]
        for r in rows:
            assert set(r) == {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"}
            assert r["judge"][0] == "ok:judge"
            assert r["score"] == fastchat_score(common, r["judgment"])
            assert type(r["score"]) is type(fastchat_score(common, r["judgment"]))
            q = matches[(r["question_id"], r["turn"])].question
            assert q["turns"][r["turn"] - 1] in r["user_prompt"]
            if q["category"] in common.NEED_REF_CATS:
                assert "Reference" in r["user_prompt"]
        assert {r["score"] for r in rows} & {-1} and len({r["score"] for r in rows}) > 3
    else:
        got = [(r["question_id"], r["model_1"], r["model_2"], r["judge"][1], r["turn"]) for r in rows]
        g1map, g2map = {"A": "model_1", "B": "model_2"}, {"A": "model_2", "B": "model_1"}
        for r in rows:
            assert set(r) == {"question_id", "model_1", "model_2", "g1_winner", "g2_winner", "judge",
                              "g1_user_prompt", "g1_judgment", "g2_user_prompt", "g2_judgment", "turn", "tstamp"}
            w1, w2 = fastchat_winner(r["g1_judgment"]), fastchat_winner(r["g2_judgment"])
            assert r["g1_winner"] == g1map.get(w1, w1) and r["g2_winner"] == g2map.get(w2, w2)
            assert r["g1_user_prompt"] != r["g2_user_prompt"]   # both orders were asked
        assert {r["g1_winner"] for r in rows} >= {"model_1", "model_2", "tie", "error"}
    assert sorted(got, key=str) == sorted(want, key=str)
    # resume: nothing new
    p = judge(fastchat_bin, work, *args)
    assert '"already_done":\t%d' % len(want) in p.stdout
    assert len(read_jsonl(out)) == len(rows)
    # FastChat's loaders read the file
    if mode == "single":
        d = common.load_single_model_judgments(str(out))
    else:
        d = common.load_pairwise_model_judgments(str(out))
    assert sum(len(v) for v in d.values()) > 0
    # ...and show_result.py's numbers on our file are show-result's
    base = "ok:c" if mode == "pairwise-baseline" else None
    tables = fastchat_tables(mode, out, baseline=base)
    got = ours(fastchat_bin, "--mode", mode, "--input-file", out, *(["--baseline-model", base] if base else []))
    if mode == "single":
        for model, row in tables[2].iterrows():
            assert got[model]["average"] == pytest.approx(row["score"], rel=1e-12)
    else:
        for model, row in tables[0].iterrows():
            assert (got[model]["win"], got[model]["loss"], got[model]["tie"]) == (row["win"], row["loss"], row["tie"])


@pytest.mark.parametrize("kind,tries", [("e500", 3), ("garbage", 3), ("close", 3), ("hang", 2), ("noverdict", 1)])
def test_failing_judge_recorded_not_crashed(fastchat_bin, fake, work, kind, tries):
    make_answers(fastchat_bin, fake, work, ["ok:a", "ok:b"], 12)
    jm = f"{kind}:judge"
    before = fake.state.requests.get(jm, 0)
    t0 = time.time()
    judge(fastchat_bin, work, "gen-judgment", "--judge-model", jm, "--openai-api-base", fake.base, "--first-n", 12,
          "--question-begin", 10, "--parallel", 4, "--max-retries", tries, "--retry-sleep", 0.05, "--timeout", 1,
          "-q", timeout=60)
    assert time.time() - t0 < 40
    rows = read_jsonl(work / f"data/fc_bench/model_judgment/{jm}_single.jsonl")
    assert len(rows) == 2 * 2 * 2  # 2 questions (11, 12) x 2 models x 2 turns
    for r in rows:
        assert r["score"] == -1
        assert r["judgment"] == ("No verdict here, sorry." if kind == "noverdict" else "$ERROR$")
    assert fake.state.requests[jm] - before == len(rows) * tries
    # pairwise: "error" both ways
    judge(fastchat_bin, work, "gen-judgment", "--mode", "pairwise-all", "--judge-model", jm, "--openai-api-base",
          fake.base, "--question-begin", 10, "--first-n", 1, "--max-retries", 1, "--timeout", 1, "-q", timeout=60)
    rows = read_jsonl(work / f"data/fc_bench/model_judgment/{jm}_pair.jsonl")
    assert len(rows) == 2 and all(r["g1_winner"] == r["g2_winner"] == "error" for r in rows)


def test_flaky_judge_retried_to_real_verdicts(fastchat_bin, fake, work):
    make_answers(fastchat_bin, fake, work, ["ok:a"], 3)
    p = judge(fastchat_bin, work, "gen-judgment", "--judge-model", "flaky:judge", "--openai-api-base", fake.base,
              "--first-n", 3, "--max-retries", 4, "--retry-sleep", 0.02, "--parallel", 2, "-q")
    rows = read_jsonl(work / "data/fc_bench/model_judgment/flaky:judge_single.jsonl")
    assert len(rows) == 6 and all(r["judgment"] != "$ERROR$" for r in rows)
    assert fake.state.requests["flaky:judge"] >= 18   # three tries per game
    assert "12 retries" in p.stderr


def test_kill9_and_resume(fastchat_bin, fake, work):
    make_answers(fastchat_bin, fake, work, ["ok:a", "ok:b", "ok:c"], 20)
    out = work / "data/fc_bench/model_judgment/slow:judge_pair.jsonl"
    args = [fastchat_bin, "judge", "gen-judgment", "--mode", "pairwise-all", "--judge-model", "slow:judge",
            "--openai-api-base", fake.base, "--first-n", 20, "--parallel", 6, "-q"]
    args = [str(a) for a in args]
    p = subprocess.Popen(args, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 60:
        if out.exists() and out.read_text().count("\n") >= 25:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    first = out.read_text()
    n_first = first.count("\n")
    assert 25 <= n_first < 120
    for l in first.split("\n")[:-1]:
        json.loads(l)
    # a torn last line (as a crash mid-write could leave) is repaired, not fatal
    with open(out, "a") as f:
        f.write('{"question_id": 3, "model_1": "ok:a", "mod')
    before = fake.state.requests["slow:judge"]
    r = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out)
    keys = [(x["question_id"], x["model_1"], x["model_2"], x["turn"]) for x in rows]
    assert len(keys) == len(set(keys)) == 20 * 3 * 2   # 20 questions x 3 pairs x 2 turns
    assert out.read_text().startswith(first)          # the first run's lines kept as they were
    assert fake.state.requests["slow:judge"] - before == 2 * (120 - n_first)


# ---- show-result and agreement against show_result.py / compute_agreement.py ----

def fastchat_tables(mode, input_file, baseline=None, model_list=None):
    """show_result.py's DataFrames (its print() captured)."""
    from fastchat.llm_judge import show_result as sr
    got = []
    sr.print = lambda *a, **k: got.append(a[0] if a else None)
    try:
        args = types.SimpleNamespace(bench_name="mt_bench", input_file=str(input_file), judge_model="gpt-4",
                                     baseline_model=baseline, model_list=model_list, mode=mode)
        if mode == "single":
            sr.display_result_single(args)
        else:
            sr.display_result_pairwise(args)
    finally:
        del sr.print
    return [x for x in got if not isinstance(x, str)]


def ours(fastchat_bin, *args):
    p = judge(fastchat_bin, ROOT, "show-result", "--json", *args)
    return {r["model"]: r for r in json.loads(p.stdout)["rows"]}


@pytest.mark.parametrize("model_list", [None, ["claude-v1", "zephyr-7b", "llama-13b"]])
def test_show_result_single_equals_fastchat(fastchat_bin, model_list):
    f = SYN / "gpt-4_single.jsonl"
    assert sum(1 for _ in open(f)) + sum(1 for _ in open(SYN / "gpt-4_pair_all.jsonl")) >= 1000
    t1, t2, avg = fastchat_tables("single", f, model_list=model_list)
    extra = ["--model-list", *model_list] if model_list else []
    got = ours(fastchat_bin, "--mode", "single", "--input-file", f, *extra)
    assert len(got) == len(avg)
    for (model, turn), row in t1.iterrows():
        assert got[model]["turn_1"] == pytest.approx(row["score"], rel=1e-12)
    for (model, turn), row in t2.iterrows():
        assert got[model]["turn_2"] == pytest.approx(row["score"], rel=1e-12)
    for model, row in avg.iterrows():
        assert got[model]["average"] == pytest.approx(row["score"], rel=1e-12)
    # the text tables hold the same models in the same order as FastChat's
    p = judge(fastchat_bin, ROOT, "show-result", "--mode", "single", "--input-file", f, *extra)
    avg_part = p.stdout.split("Average")[1]
    order = [l.split()[0] for l in avg_part.strip().split("\n")[2:]]
    assert order == [m for m in avg.sort_values(by="score", ascending=False).index]


@pytest.mark.parametrize("mode,file,baseline,model_list", [
    ("pairwise-baseline", "gpt-4_pair_baseline.jsonl", "gpt-3.5-turbo", None),
    ("pairwise-all", "gpt-4_pair_all.jsonl", None, None),
    ("pairwise-all", "gpt-4_pair_all.jsonl", None, ["alpaca-13b", "llama-13b", "zephyr-7b"]),
    ("pairwise-baseline", "gpt-4_pair_all.jsonl", "claude-v1", None),
])
def test_show_result_pairwise_equals_fastchat(fastchat_bin, mode, file, baseline, model_list):
    (df,) = fastchat_tables(mode, SYN / file, baseline=baseline, model_list=model_list)
    args = ["--mode", mode, "--input-file", SYN / file]
    if baseline:
        args += ["--baseline-model", baseline]
    if model_list:
        args += ["--model-list", *model_list]
    got = ours(fastchat_bin, *args)
    assert set(got) == set(df.index)
    for model, row in df.iterrows():
        for k in ("win", "loss", "tie"):
            assert got[model][k] == row[k], (model, k)
        for k in ("win_rate", "loss_rate", "win_rate_adjusted"):
            assert got[model][k] == pytest.approx(row[k], rel=1e-12), (model, k)


def fastchat_agreement(judges, files):
    from fastchat.llm_judge import compute_agreement as ca
    votes = [json.load(open(f)) for f in files]
    data = ca.get_mt_bench_votes_data(votes)
    return [ca.get_mt_bench_agreement(data[t], judges[0], judges[1], ban=ban)
            for t in (0, 1) for ban in ([], ["tie"])]


@pytest.mark.parametrize("judges,files", [
    (["gpt4-pair", "human"], ["human_judgments.json", "gpt4_pair_judgments.json"]),
    (["human", "human"], ["human_judgments.json"]),
])
def test_agreement_equals_fastchat(fastchat_bin, judges, files):
    paths = [SYN / f for f in files]
    want = fastchat_agreement(judges, paths)
    p = judge(fastchat_bin, ROOT, "agreement", "--judges", *judges, "--votefiles", *paths, "--json")
    got = json.loads(p.stdout)
    labels = ["turn 1 with tie", "turn 1 without tie", "turn 2 with tie", "turn 2 without tie"]
    for lab, (agree, total) in zip(labels, want):
        assert (got[lab]["agree"], got[lab]["total"]) == (agree, total), lab
        assert total > 50
    # and the text lines are compute_agreement.py's
    p = judge(fastchat_bin, ROOT, "agreement", "--judges", *judges, "--votefiles", *paths)
    for lab, (agree, total) in zip(labels, want):
        assert f"{lab}. #total: {total}, #agree: {agree}, ratio: {agree/total:.2f}" in p.stdout


def test_gen_api_answer_retries_and_records_errors(fastchat_bin, fake, work):
    """429/500 twice per call, then answers: every answer is real; an
    endpoint that always fails gives FastChat's "$ERROR$" answers."""
    judge(fastchat_bin, work, "gen-api-answer", "--model", "flaky:ans", "--openai-api-base", fake.base,
          "--question-end", 3, "--parallel", 3, "--max-retries", 4, "--retry-sleep", 0.02)
    rows = read_jsonl(work / "data/fc_bench/model_answer/flaky:ans.jsonl")
    assert len(rows) == 3 and all(t.startswith("answer ") for r in rows for t in r["choices"][0]["turns"])
    judge(fastchat_bin, work, "gen-api-answer", "--model", "close:ans", "--openai-api-base", fake.base,
          "--question-end", 2, "--max-retries", 2, "--retry-sleep", 0.02)
    rows = read_jsonl(work / "data/fc_bench/model_answer/close:ans.jsonl")
    assert [r["choices"][0]["turns"] for r in rows] == [["$ERROR$", "$ERROR$"]] * 2
    # no key and no endpoint: a hint, not a crash
    p = judge(fastchat_bin, work, "gen-api-answer", "--model", "x", check=False)
    assert p.returncode == 1 and "OPENAI_API_KEY" in p.stderr
