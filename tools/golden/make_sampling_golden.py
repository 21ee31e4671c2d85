"""Golden data for the sampler: transformers' own logits processors, chained
in FastChat's order (fastchat/serve/inference.py prepare_logits_processor:
temperature, repetition penalty, top-p, top-k), applied to fixed random
logits. Writes tests/data/sampling/golden.json.

Run with a Python that has torch and transformers:
    python tools/golden/make_sampling_golden.py
"""
import json
import os

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
    TopKLogitsWarper, TopPLogitsWarper)

OUT = os.path.join(os.path.dirname(__file__), "../../tests/data/sampling/golden.json")


def chain(temperature, repetition_penalty, top_p, top_k):
    # exactly FastChat's prepare_logits_processor
    procs = LogitsProcessorList()
    if temperature >= 1e-5 and temperature != 1.0:
        procs.append(TemperatureLogitsWarper(temperature))
    if repetition_penalty > 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))
    if 1e-8 <= top_p < 1.0:
        procs.append(TopPLogitsWarper(top_p))
    if top_k > 0:
        procs.append(TopKLogitsWarper(top_k))
    return procs


def main():
    g = torch.Generator().manual_seed(1234)
    cases = []
    params = [
        (1.0, 1.0, 1.0, -1), (0.7, 1.0, 1.0, -1), (1.3, 1.0, 1.0, -1), (1.0, 1.2, 1.0, -1),
        (0.7, 1.1, 0.9, -1), (1.0, 1.0, 0.5, -1), (1.0, 1.0, 0.95, -1), (1.0, 1.0, 0.999, -1),
        (1.0, 1.0, 1.0, 1), (1.0, 1.0, 1.0, 40), (0.8, 1.3, 0.8, 20), (2.0, 1.0, 0.3, 5),
        (0.5, 1.05, 0.7, 100), (1.0, 1.0, 0.05, -1),
    ]
    for i, (t, rp, tp, tk) in enumerate(params):
        V = [1000, 1000, 4096, 257][i % 4]
        scale = [1.0, 3.0, 8.0][i % 3]
        logits = torch.randn(1, V, generator=g) * scale
        if i % 5 == 0:  # ties
            logits[0, 10:20] = logits[0, 5]
        hist = torch.randint(0, V, (1, 60), generator=g)
        out = chain(t, rp, tp, tk)(hist, logits.clone())
        cases.append({
            "temperature": t, "repetition_penalty": rp, "top_p": tp, "top_k": tk,
            "logits": logits[0].tolist(), "history": hist[0].tolist(),
            "expected": [None if v == float("-inf") else v for v in out[0].tolist()],
        })
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"source": "transformers logits processors, FastChat order", "cases": cases}, f)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
