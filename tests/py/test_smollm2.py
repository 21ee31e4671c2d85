"""End-to-end correctness of the default model (SmolLM2-135M-Instruct, Q4_1
GGUF) against transformers, with the committed golden data
tests/data/smollm2/golden.npz (tools/golden/make_smollm2_golden.py: 8 prompts
of 16..512 tokens, chat-formatted and plain prose/code; for every position
the reference top-1, the logits at the top-32 ids and at 32 fixed ids, and a
64-token greedy continuation). No torch needed here.

The reference is transformers' float32 dequantization of the same GGUF, i.e.
what --exact computes. Tolerances:
- exact: max |delta| over the stored entries <= 1e-2 (logits are O(10-30)
  after 30 layers of float32 sums in another order; a wrong weight or a
  wrong op gives O(1)); top-1 equal at every position whose reference margin
  (top-1 minus top-2) exceeds 2e-2, i.e. wherever the tolerance cannot flip it.
- exact greedy: the 64-token continuation (EOS ignored) identical on >= 5 of
  the 8 prompts; a divergence is reported with the reference margin there.
- fast (the default: quantized weights, activations rounded to 16-bit
  blocks for the integer dot products, f16 KV cache): top-1 equal at >= 99%
  of all positions (the issue's bar), rms over the stored entries <= 0.05.
- fast with --act8 (activations rounded to 8-bit blocks, llama.cpp's
  scheme): top-1 equal at >= 94% of all positions, and the rms difference
  at most 1.5x that of the same rounding emulated in transformers (golden
  q8_rms). Why not 99% there: with 8-bit activations this model's logits
  move by ~0.2-0.4 rms (max ~2.5), which flips the top-1 wherever the margin
  is smaller; the transformers emulation of exactly that rounding agrees
  with the float reference at ~95% of these positions, and --act8 measures
  the same. The per-position values cannot be pinned down further: one code
  rounded the other way in layer 0 changes ~10% of the codes downstream.
"""
import numpy as np
import pytest

from conftest import DATA, fastchat_generate, fastchat_logits, first_difference

GOLDEN = DATA / "smollm2" / "golden.npz"
EXACT_TOL = 1e-2
TIE_MARGIN = 2 * EXACT_TOL
GREEDY_MIN_SAME = 5
FAST_TOP1 = 0.99
FAST_RMS = 0.05
ACT8_TOP1 = 0.94
ACT8_RMS_VS_Q8 = 1.5


@pytest.fixture(scope="module")
def golden():
    z = np.load(GOLDEN)
    g = {k: z[k] for k in z.files}
    off = g["prompt_offsets"]
    g["prompts"] = [g["prompt_ids"][off[i]:off[i + 1]] for i in range(len(off) - 1)]
    return g


def stored_entries(g, i, logits):
    """Our logits at the golden's stored (position, id) pairs of prompt i,
    and the reference values there."""
    a, b = g["prompt_offsets"][i], g["prompt_offsets"][i + 1]
    ids = np.concatenate([g["top_ids"][a:b], np.broadcast_to(g["fixed_ids"], (b - a, len(g["fixed_ids"])))], 1)
    ref = np.concatenate([g["top_logits"][a:b], g["fixed_logits"][a:b]], 1)
    return np.take_along_axis(logits, ids, axis=1), ref, ids


@pytest.fixture(scope="module")
def exact_logits(golden, fastchat_bin, model_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("smollm2_exact")
    return [fastchat_logits(fastchat_bin, model_path, p, d, exact=True) for p in golden["prompts"]]


def test_exact_logits(golden, exact_logits, figures):
    V = int(golden["n_vocab"])
    worst, n_pos, flips, flips_near_tie, report = 0.0, 0, 0, 0, []
    for i, (name, ours) in enumerate(zip(golden["names"], exact_logits)):
        assert ours.shape == (len(golden["prompts"][i]), V), (name, ours.shape)
        assert np.isfinite(ours).all(), f"{name}: non-finite logits"
        got, ref, ids = stored_entries(golden, i, ours)
        d = np.abs(got.astype(np.float64) - ref)
        a, b = golden["prompt_offsets"][i], golden["prompt_offsets"][i + 1]
        top = ours.argmax(1)
        bad = np.nonzero(top != golden["argmax"][a:b])[0]
        near = golden["margin"][a:b][bad] <= TIE_MARGIN
        flips += int((~near).sum())
        flips_near_tie += int(near.sum())
        worst = max(worst, float(d.max()))
        n_pos += b - a
        t, k = np.unravel_index(int(d.argmax()), d.shape)
        report.append(f"  {name:22s} T={b - a:3d} max|d| {d.max():.2e} (position {t}, id {ids[t, k]}); "
                      f"top-1 differs at {list(bad)}")
    figures(f"smollm2 exact: max|d| {worst:.2e} over {n_pos} positions x 64 stored ids (tol {EXACT_TOL:g}); "
            f"top-1 differs at {flips} positions (+{flips_near_tie} near-ties, margin <= {TIE_MARGIN:g})")
    for line in report:
        figures(line)
    assert worst <= EXACT_TOL, "\n".join(report)
    assert flips == 0, "\n".join(report)


def test_exact_greedy(golden, fastchat_bin, model_path, figures):
    eos = int(golden["eos_id"])
    same, lines = 0, []
    for i, (name, prompt) in enumerate(zip(golden["names"], golden["prompts"])):
        want = golden["greedy"][i].tolist()
        got = fastchat_generate(fastchat_bin, model_path, prompt, len(want), exact=True)
        j = first_difference(got, want)
        if j is None:
            same += 1
            lines.append(f"  {name:22s} identical")
        else:
            k = min(j, len(want) - 1)
            lines.append(f"  {name:22s} differs at step {j} (reference margin {golden['greedy_margin'][i][k]:.4f}"
                         + (", reference token is EOS: does --ignore-eos mask EOS?" if want[k] == eos else "")
                         + f"): ours {got[j:j + 4]} ref {want[j:j + 4]}")
    figures(f"smollm2 exact greedy-64: identical on {same}/{len(golden['prompts'])} prompts")
    for line in lines:
        figures(line)
    assert same >= GREEDY_MIN_SAME, "\n".join(lines)


def fast_agreement(golden, fastchat_bin, model_path, tmp_path, act8):
    """Top-1 agreement, rms and max |d| of fast mode over the 8 prompts, with
    per-prompt report lines."""
    agree, q8_agree, n_pos, worst, sq, n_sq, lines = 0, 0, 0, 0.0, 0.0, 0, []
    for i, (name, prompt) in enumerate(zip(golden["names"], golden["prompts"])):
        ours = fastchat_logits(fastchat_bin, model_path, prompt, tmp_path, exact=False, act8=act8)
        assert np.isfinite(ours).all(), f"{name}: non-finite logits"
        a, b = golden["prompt_offsets"][i], golden["prompt_offsets"][i + 1]
        ok = ours.argmax(1) == golden["argmax"][a:b]
        q8_ok = golden["q8_argmax"][a:b] == golden["argmax"][a:b]
        got, ref, _ = stored_entries(golden, i, ours)
        d = got.astype(np.float64) - ref
        worst = max(worst, float(np.abs(d).max()))
        sq += float((d ** 2).sum())
        n_sq += d.size
        agree += int(ok.sum())
        q8_agree += int(q8_ok.sum())
        n_pos += b - a
        lines.append(f"  {name:22s} top-1 {ok.sum()}/{b - a} (q8 emulation {q8_ok.sum()}), rms {np.sqrt((d ** 2).mean()):.3f} "
                     f"(q8 emulation {golden['q8_rms'][i]:.3f}), max|d| {np.abs(d).max():.2f}")
    q8_rms = float(np.sqrt((golden["q8_rms"].astype(np.float64) ** 2 * np.diff(golden["prompt_offsets"])).sum() / n_pos))
    return agree, q8_agree, n_pos, np.sqrt(sq / n_sq), q8_rms, worst, lines


def test_fast_top1(golden, fastchat_bin, model_path, tmp_path, figures):
    agree, _, n_pos, rms, _, worst, lines = fast_agreement(golden, fastchat_bin, model_path, tmp_path, act8=False)
    figures(f"smollm2 fast (16-bit activations): top-1 {agree}/{n_pos} = {100 * agree / n_pos:.2f}% "
            f"(need {100 * FAST_TOP1:g}%); rms over stored entries {rms:.4f} (limit {FAST_RMS:g}); max|d| {worst:.3f}")
    for line in lines:
        figures(line)
    assert agree >= FAST_TOP1 * n_pos, "\n".join(lines)
    assert rms <= FAST_RMS, "\n".join(lines)


def test_act8_top1(golden, fastchat_bin, model_path, tmp_path, figures):
    agree, q8_agree, n_pos, rms, q8_rms, worst, lines = fast_agreement(golden, fastchat_bin, model_path, tmp_path, act8=True)
    figures(f"smollm2 --act8: top-1 {agree}/{n_pos} = {100 * agree / n_pos:.2f}% (need {100 * ACT8_TOP1:g}%; "
            f"q8 emulation {100 * q8_agree / n_pos:.2f}%); rms over stored entries {rms:.3f} "
            f"(q8 emulation {q8_rms:.3f}, limit {ACT8_RMS_VS_Q8:g}x); max|d| {worst:.2f}")
    for line in lines:
        figures(line)
    assert agree >= ACT8_TOP1 * n_pos, "\n".join(lines)
    assert rms <= ACT8_RMS_VS_Q8 * q8_rms, "\n".join(lines)
