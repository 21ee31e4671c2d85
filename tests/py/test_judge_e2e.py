"""`fastchat judge` end to end on the default model (SmolLM2-135M), nothing
faked: a real `fastchat serve` is the contestant through the API and the
judge; `fastchat judge gen-answer` is the contestant on the local engine.

- gen-answer (engine) and gen-api-answer (our API) write FastChat-format
  answers that fschat's loaders read; both resume;
- gen-judgment single and pairwise-all with our API as the judge: a 135M
  judge rarely writes a verdict, so most rows are FastChat's "no verdict"
  (-1 / "error"): recorded, the run finishes, show-result copes;
- throughput: gen-answer with every question in flight (continuous batching)
  against the same questions one at a time (--sequential), answers of up to
  160 tokens (MT-bench's own allow 1024; the prefill, which batching cannot
  shorten, weighs more the shorter they are); both figures and their ratio
  are printed at the end of the run, not asserted (timings).
"""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from test_controller import Proc, free_port, wait_until
from test_judge import ROOT, fastchat_common, judge, read_jsonl

MODEL = "smol"


@pytest.fixture(scope="module")
def serve(fastchat_bin, model_path, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("judge_serve")
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", model_path, "--model-names", MODEL, "--controller-port",
              ports[0], "--worker-port", ports[1], "--port", ports[2]], tmp / "serve.log")
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
        yield api + "/v1"
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()


@pytest.fixture()
def work(tmp_path):
    """A data folder with three of our questions: writing, math, coding."""
    d = tmp_path / "data" / "fc_bench"
    (d / "reference_answer").mkdir(parents=True)
    qs = [json.loads(l) for l in open(ROOT / "data/fc_bench/question.jsonl")]
    pick = [q for q in qs if q["question_id"] in (1, 16, 21)]
    with open(d / "question.jsonl", "w") as f:
        for q in pick:
            f.write(json.dumps(q) + "\n")
    shutil.copy(ROOT / "data/fc_bench/reference_answer/gpt-4.jsonl", d / "reference_answer/gpt-4.jsonl")
    shutil.copy(ROOT / "data/judge_prompts.jsonl", tmp_path / "data/judge_prompts.jsonl")
    return tmp_path


def test_end_to_end_on_default_model(fastchat_bin, model_path, serve, work):
    d = work / "data/fc_bench"
    judge(fastchat_bin, work, "gen-answer", "--model-path", model_path, "--model-id", "smol-local",
          "--max-tokens", 16, "--threads", 2, timeout=300)
    judge(fastchat_bin, work, "gen-api-answer", "--model", MODEL, "--openai-api-base", serve, "--max-tokens", 16,
          "--parallel", 3, "--timeout", 120, timeout=300)
    common = fastchat_common()
    answers = common.load_model_answers(str(d / "model_answer"))
    assert set(answers) == {"smol-local", MODEL}
    for m, by_q in answers.items():
        assert sorted(by_q) == [1, 16, 21]
        for a in by_q.values():
            turns = a["choices"][0]["turns"]
            assert len(turns) == 2 and all(t and t != "$ERROR$" and t != "ERROR" for t in turns), (m, turns)
    # math and coding are greedy (temperature 0): engine and API give the same text
    for qid in (16, 21):
        a, b = (answers[m][qid]["choices"][0]["turns"][0].strip() for m in ("smol-local", MODEL))
        assert a == b, (qid, a, b)
    # resume: nothing to do
    p = judge(fastchat_bin, work, "gen-answer", "--model-path", model_path, "--model-id", "smol-local")
    assert "3 already answered" in p.stderr

    judge(fastchat_bin, work, "gen-judgment", "--judge-model", MODEL, "--openai-api-base", serve,
          "--judge-max-tokens", 16, "--parallel", 4, "--timeout", 120, "-q", timeout=600)
    rows = read_jsonl(d / f"model_judgment/{MODEL}_single.jsonl")
    assert len(rows) == 3 * 2 * 2
    for r in rows:
        assert r["judgment"] and r["judgment"] != "$ERROR$"      # the judge answered...
        assert r["score"] == -1 or 0 <= r["score"]               # ...mostly without a verdict
    assert {r["judge"][1] for r in rows} == {"single-v1", "single-math-v1", "single-v1-multi-turn",
                                             "single-math-v1-multi-turn"}
    p = judge(fastchat_bin, work, "show-result", "--judge-model", MODEL)
    assert "First turn" in p.stdout
    judge(fastchat_bin, work, "gen-judgment", "--mode", "pairwise-all", "--judge-model", MODEL, "--openai-api-base",
          serve, "--judge-max-tokens", 16, "--parallel", 4, "--timeout", 120, "-q", timeout=600)
    rows = read_jsonl(d / f"model_judgment/{MODEL}_pair.jsonl")
    assert len(rows) == 3 * 2
    assert all(r["g1_winner"] in ("model_1", "model_2", "tie", "error") for r in rows)
    judge(fastchat_bin, work, "show-result", "--judge-model", MODEL, "--mode", "pairwise-all")
    assert common.load_pairwise_model_judgments(str(d / f"model_judgment/{MODEL}_pair.jsonl"))


def rate(stderr):
    line = [l for l in stderr.splitlines() if l.startswith("gen-answer:")][-1]
    return float(line.split(" answers/s")[0].split()[-1]), line


def test_gen_answer_batched_vs_one_at_a_time(fastchat_bin, model_path, tmp_path, figures):
    d = tmp_path / "data" / "fc_bench"
    d.mkdir(parents=True)
    qs = [json.loads(l) for l in open(ROOT / "data/fc_bench/question.jsonl")]
    with open(d / "question.jsonl", "w") as f:
        for q in qs[:12]:
            f.write(json.dumps({**q, "turns": q["turns"][:1]}) + "\n")
    common = ["--model-path", model_path, "--max-tokens", 160, "--threads", 2]
    p1 = judge(fastchat_bin, tmp_path, "gen-answer", "--model-id", "seq", "--sequential", *common, timeout=600)
    p2 = judge(fastchat_bin, tmp_path, "gen-answer", "--model-id", "batch", *common, timeout=600)
    r1, l1 = rate(p1.stderr)
    r2, l2 = rate(p2.stderr)
    figures(f"judge gen-answer one at a time: {l1}")
    figures(f"judge gen-answer batched:       {l2}")
    figures(f"judge gen-answer batched / one at a time: {r2 / r1:.2f}x")
    seq = read_jsonl(d / "model_answer/seq.jsonl")
    batch = read_jsonl(d / "model_answer/batch.jsonl")
    assert len(batch) == len(seq) == 12
    assert sorted(r["question_id"] for r in batch) == sorted(r["question_id"] for r in seq)
    # Speed is reported, not asserted (a timed assertion fails on a loaded or
    # sanitized run); the goal is 3x the answers/s of one at a time.
