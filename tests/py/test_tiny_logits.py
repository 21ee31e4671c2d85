"""End-to-end logits of the tiny random-weight Hugging Face models in
tests/data/tiny against transformers (reference.npz, written by
tools/golden/make_tiny_models.py; manifest.json says what each model covers:
llama/qwen2, f32/f16/bf16, tied/untied, GQA 1/2/4, rope none/linear/llama3,
unusual rope_theta and rms_norm_eps, transformers-4 and -5 config layouts).

Tolerances:
- exact mode (--exact: weights upcast to f32, f32 activations): max |delta|
  <= 1e-4 at every position and vocab entry. The f16/bf16 weights convert to
  f32 without error, so the same bound holds for them; what remains is
  float32 summation order (logits are O(5), rounding O(1e-6)).
- fast mode: top-1 equal at >= 95% of positions and max |delta| <= 5% of the
  reference logit range (the fast path may round activations or weights).
- greedy 16 tokens after the 40-token prompt (exact mode, EOS ignored): the
  same ids as transformers. The smallest reference top-1/top-2 margin along
  these continuations is 2e-3 (manifest greedy_min_margin), 20x the exact
  tolerance, so a correct engine cannot flip a step.
"""
import json

import numpy as np
import pytest

from conftest import DATA, fastchat_generate, fastchat_logits, first_difference

TINY = DATA / "tiny"
MANIFEST = json.loads((TINY / "manifest.json").read_text())["models"]
NAMES = sorted(MANIFEST)
EXACT_TOL = 1e-4
FAST_TOP1 = 0.95
FAST_RANGE_FRAC = 0.05


def load(name):
    z = np.load(TINY / name / "reference.npz")
    return {k: z[k] for k in z.files}


def explain(ours, ref, tol):
    """Where the logits differ, in words that point at a cause: position 0
    does not depend on RoPE or on attention over other tokens."""
    per_pos = np.abs(ours.astype(np.float64) - ref).max(axis=1)
    bad = np.nonzero(per_pos > tol)[0]
    t, v = np.unravel_index(int(np.abs(ours - ref).argmax()), ref.shape)
    lines = [f"max |d| {per_pos.max():.3e} at position {t} id {v} (ours {ours[t, v]:.5f}, ref {ref[t, v]:.5f})",
             f"position 0 max |d| {per_pos[0]:.3e}; {len(bad)}/{len(per_pos)} positions over {tol:g}"
             + (f", first at {bad[0]}" if len(bad) else ""),
             "max |d| by position: " + " ".join(f"{x:.1e}" for x in per_pos[: min(12, len(per_pos))]) + " ...",
             f"top-1 agreement {(ours.argmax(1) == ref.argmax(1)).mean() * 100:.1f}%"]
    return "\n".join(lines)


@pytest.mark.parametrize("name", NAMES)
def test_exact_logits(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    m = TINY / name
    n_a = len(r["prompt_a"])
    # The short prompt on one thread, the long one on the default thread count.
    ours_a = fastchat_logits(fastchat_bin, m, r["prompt_a"], tmp_path, exact=True, threads=1)
    ours_b = fastchat_logits(fastchat_bin, m, r["prompt_b"], tmp_path, exact=True)
    ref_a, ref_b = r["logits_b"][:n_a], r["logits_b"]
    assert ours_a.shape == ref_a.shape and ours_b.shape == ref_b.shape, (ours_a.shape, ours_b.shape)
    da = float(np.abs(ours_a - ref_a).max())
    db = float(np.abs(ours_b - ref_b).max())
    figures(f"tiny/{name:26s} exact  max|d| T={n_a}: {da:.2e}  T={len(ref_b)}: {db:.2e}  (tol {EXACT_TOL:g})")
    assert da <= EXACT_TOL, f"{name} prompt_a (T={n_a}, --threads 1)\n" + explain(ours_a, ref_a, EXACT_TOL)
    assert db <= EXACT_TOL, f"{name} prompt_b (T={len(ref_b)})\n" + explain(ours_b, ref_b, EXACT_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_fast_logits(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    ref = r["logits_b"]
    ours = fastchat_logits(fastchat_bin, TINY / name, r["prompt_b"], tmp_path, exact=False)
    assert ours.shape == ref.shape
    d = float(np.abs(ours - ref).max())
    top1 = float((ours.argmax(1) == ref.argmax(1)).mean())
    rng = float(ref.max() - ref.min())
    figures(f"tiny/{name:26s} fast   max|d| {d:.2e} ({100 * d / rng:.3f}% of range {rng:.1f})  "
            f"top-1 {100 * top1:.1f}%")
    assert top1 >= FAST_TOP1, f"{name}: top-1 agreement {top1:.3f} < {FAST_TOP1}\n" + explain(ours, ref, 0)
    assert d <= FAST_RANGE_FRAC * rng, f"{name}\n" + explain(ours, ref, FAST_RANGE_FRAC * rng)


@pytest.mark.parametrize("name", NAMES)
def test_greedy(name, fastchat_bin, figures):
    r = load(name)
    want = r["greedy_a"].tolist()
    got = fastchat_generate(fastchat_bin, TINY / name, r["prompt_a"], len(want), exact=True)
    i = first_difference(got, want)
    figures(f"tiny/{name:26s} greedy {'identical' if i is None else f'differs at step {i}'} "
            f"({len(want)} tokens)")
    assert i is None, (f"{name}: greedy continuation differs at step {i} "
                       f"(reference margin there {r['greedy_margin'][min(i, len(want) - 1)]:.4f})\n"
                       f"ours {got}\nref  {want}")
