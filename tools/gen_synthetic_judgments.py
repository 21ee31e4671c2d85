#!/usr/bin/env python3
"""Writes the committed synthetic MT-bench judgments that tests/py/test_judge.py
feeds to both `fastchat judge show-result` / `agreement` and FastChat's own
show_result.py / compute_agreement.py (fschat). Fixed seed: rerunning gives
the same files.

tests/data/judge/synthetic/
  gpt-4_single.jsonl         single-answer grading (scores 1-10, some x.5,
                             some -1 = unparsable), 6 models x 40 q x 2 turns
  gpt-4_pair_baseline.jsonl  pairwise against a baseline, 5 models x 40 x 2
  gpt-4_pair_all.jsonl       all pairs, 15 pairs x 40 x 2 (inconsistent g1/g2,
                             ties and errors included)
  human_judgments.json       votes of several experts (and some authors) per
                             game, FastChat's mt_bench_human_judgments format
  gpt4_pair_judgments.json   one gpt-4 pair vote per game, same format
"""
import json
import os
import random

SEED = 20240601
MODELS = ["alpaca-13b", "claude-v1", "gpt-3.5-turbo", "llama-13b", "vicuna-13b-v1.3", "zephyr-7b"]
BASELINE = "gpt-3.5-turbo"
QIDS = list(range(81, 121))
CATS = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]


def prompt_name(pair, qid, turn):
    math = CATS[(qid - 81) // 5 % 8] in ("math", "reasoning", "coding")
    base = ("pair-math-v1" if math else "pair-v2") if pair else ("single-math-v1" if math else "single-v1")
    return base + ("-multi-turn" if turn == 2 else "")


def main():
    rng = random.Random(SEED)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "tests", "data", "judge", "synthetic")
    os.makedirs(out, exist_ok=True)
    skill = {m: rng.uniform(3, 9) for m in MODELS}
    t = 1700000000.0

    with open(os.path.join(out, "gpt-4_single.jsonl"), "w") as f:
        for qid in QIDS:
            for m in MODELS:
                for turn in (1, 2):
                    r = rng.random()
                    if r < 0.05:
                        score = -1
                    elif r < 0.15:
                        score = round(min(10, max(1, skill[m] + rng.gauss(0, 2))) * 2) / 2
                    else:
                        score = int(min(10, max(1, round(skill[m] + rng.gauss(0, 2) - 0.5 * (turn - 1)))))
                    t += 1.37
                    f.write(json.dumps({"question_id": qid, "model": m, "judge": ["gpt-4", prompt_name(False, qid, turn)],
                                        "user_prompt": f"q{qid} t{turn}", "judgment": f"Rating: [[{score}]]",
                                        "score": score, "turn": turn, "tstamp": t}) + "\n")

    def verdict(m1, m2):
        d = skill[m1] - skill[m2] + rng.gauss(0, 2)
        r = rng.random()
        if r < 0.04:
            return "error"
        if abs(d) < 0.6:
            return "tie"
        return "model_1" if d > 0 else "model_2"

    def pair_line(f, qid, m1, m2, turn):
        nonlocal t
        g1 = verdict(m1, m2)
        g2 = g1 if rng.random() < 0.7 else verdict(m1, m2)
        t += 0.91
        f.write(json.dumps({"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2,
                            "judge": ["gpt-4", prompt_name(True, qid, turn)], "g1_user_prompt": "p1",
                            "g1_judgment": "j1", "g2_user_prompt": "p2", "g2_judgment": "j2", "turn": turn,
                            "tstamp": t}) + "\n")

    with open(os.path.join(out, "gpt-4_pair_baseline.jsonl"), "w") as f:
        for qid in QIDS:
            for m in MODELS:
                if m == BASELINE:
                    continue
                for turn in (1, 2):
                    pair_line(f, qid, m, BASELINE, turn)
    with open(os.path.join(out, "gpt-4_pair_all.jsonl"), "w") as f:
        for qid in QIDS:
            for i in range(len(MODELS)):
                for j in range(i + 1, len(MODELS)):
                    for turn in (1, 2):
                        pair_line(f, qid, MODELS[i], MODELS[j], turn)

    human, gpt4 = [], []
    for qid in QIDS:
        for _ in range(6):
            a, b = rng.sample(MODELS, 2)
            for turn in (1, 2):
                for e in range(rng.randint(1, 4)):
                    w = rng.choice(["model_a", "model_b", "tie", "tie (bothbad)", "model_a", "model_b"])
                    judge = f"expert_{rng.randint(0, 30)}" if rng.random() < 0.85 else f"author_{rng.randint(0, 5)}"
                    # some votes written with the models the other way round
                    if rng.random() < 0.3:
                        human.append({"question_id": qid, "model_a": b, "model_b": a,
                                      "winner": {"model_a": "model_b", "model_b": "model_a"}.get(w, w),
                                      "judge": judge, "turn": turn})
                    else:
                        human.append({"question_id": qid, "model_a": a, "model_b": b, "winner": w,
                                      "judge": judge, "turn": turn})
                if rng.random() < 0.9:
                    w = rng.choice(["model_a", "model_b", "tie", "tie (inconsistent)", "model_a"])
                    gpt4.append({"question_id": qid, "model_a": a, "model_b": b, "winner": w,
                                 "judge": ["gpt-4", prompt_name(True, qid, turn)], "turn": turn})
    # one game voted twice by the same pair of models in the other order is
    # avoided: gpt-4 votes once per game (compute_agreement.py asserts it)
    seen, g1 = set(), []
    for v in gpt4:
        k = (v["question_id"], min(v["model_a"], v["model_b"]), max(v["model_a"], v["model_b"]), v["turn"])
        if k not in seen:
            seen.add(k)
            g1.append(v)
    with open(os.path.join(out, "human_judgments.json"), "w") as f:
        json.dump(human, f, indent=1)
    with open(os.path.join(out, "gpt4_pair_judgments.json"), "w") as f:
        json.dump(g1, f, indent=1)


if __name__ == "__main__":
    main()
