#!/usr/bin/env python3
"""make_tiny_models.py: builds the tiny random-weight Hugging Face models in
tests/data/tiny/<name>/ and their reference logits, computed by transformers.

What it writes, per model:
  config.json, model.safetensors   save_pretrained() of a seeded random
                                   LlamaForCausalLM / Qwen2ForCausalLM, in the
                                   model's dtype (float32, float16, bfloat16);
                                   no tokenizer, no generation_config.json.
  reference.npz                    prompt_b (100 ids), logits_b (100 x V f32),
                                   prompt_a (the first 40 ids of prompt_b; its
                                   logits are logits_b[:40], causality, which
                                   the script checks against a separate run),
                                   greedy_a (16 ids: greedy continuation of
                                   prompt_a, EOS ignored), greedy_margin (16:
                                   top-1 minus top-2 logit at each step).
and tests/data/tiny/manifest.json: what each model covers.

The reference is computed by loading the saved folder back with
dtype=torch.float32, so float16/bfloat16 weights are upcast exactly to f32:
that is what the engine's --exact path computes. Eager attention, f32.

The matrix covers, without the full cross product: both architectures; the
three dtypes; tied and untied embeddings; GQA ratios 1, 2 and 4 (and one MQA);
head_dim * NH != hidden_size; rope scaling none, linear (factor 2) and llama3
(chosen so the three llama3 frequency bands each hold some frequencies);
rope_theta from 1e3 to 1e6; rms_norm_eps from 1e-6 to 1e-2 (1e-2 is large
enough to change the result visibly if the engine hard-codes the eps).
Some config.json files are rewritten to the transformers-4 layout that most
Hub models still carry (top-level rope_theta and rope_scaling, torch_dtype,
head_dim implied by hidden_size / num_attention_heads),
the others keep the transformers-5 layout (rope_parameters, dtype); the
reference is always computed from the file as written.

Usage: /root/refvenv/venv/bin/python tools/golden/make_tiny_models.py [--out DIR]
Needs torch and transformers (not part of the CI venv).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

V = 512
COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              max_position_embeddings=256, bos_token_id=1, eos_token_id=2)
LLAMA3 = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=64)
LINEAR = dict(rope_type="linear", factor=2.0)

# name: arch, dtype, tied, NH, NKV, head_dim, rope (None|dict), theta, eps, legacy config layout
MODELS = {
    "llama_f32":              ("llama", "float32",  False, 4, 4, 16, None,   10000.0,   1e-5, False),
    "llama_f32_tied_gqa2":    ("llama", "float32",  True,  4, 2, 16, None,   500000.0,  1e-6, True),
    "llama_f16_gqa4_wideq":   ("llama", "float16",  False, 8, 2, 16, None,   10000.0,   1e-5, False),
    "llama_bf16_tied_mqa":    ("llama", "bfloat16", True,  4, 1, 16, None,   10000.0,   1e-5, False),
    "llama_f32_rope_linear":  ("llama", "float32",  False, 4, 2, 16, LINEAR, 10000.0,   1e-5, True),
    "llama_f32_tied_llama3":  ("llama", "float32",  True,  8, 4, 16, LLAMA3, 10000.0,   1e-5, False),
    "llama_bf16_llama3_mqa":  ("llama", "bfloat16", False, 4, 1, 16,
                               dict(LLAMA3, original_max_position_embeddings=32), 50000.0, 1e-5, True),
    "llama_f16_tied_linear_eps": ("llama", "float16", True, 4, 4, 16, LINEAR, 1000.0,   1e-2, False),
    "qwen2_f32":              ("qwen2", "float32",  False, 4, 2, 16, None,   1000000.0, 1e-6, False),
    "qwen2_f16_tied_wideq":   ("qwen2", "float16",  True,  8, 8, 16, None,   10000.0,   1e-6, True),
    "qwen2_bf16_gqa4":        ("qwen2", "bfloat16", False, 8, 2, 16, None,   1000000.0, 1e-5, False),
}

INIT_STD = 0.15      # weights: large enough that logits spread over a few units
N_GREEDY = 16
SEED = 20240601


def make_config(arch, tied, nh, nkv, hd, rope, theta, eps):
    rp = {"rope_type": "default", "rope_theta": theta} if rope is None else dict(rope, rope_theta=theta)
    kw = dict(COMMON, num_attention_heads=nh, num_key_value_heads=nkv, head_dim=hd,
              rms_norm_eps=eps, tie_word_embeddings=tied, rope_parameters=rp)
    if arch == "llama":
        return LlamaConfig(**kw)
    return Qwen2Config(use_sliding_window=False, **kw)


def randomize(model, seed):
    """Every parameter random: matrices N(0, INIT_STD), norm weights around 1,
    biases N(0, 0.5) so that a dropped bias shows up in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(INIT_STD * torch.randn(p.shape, generator=g))


def to_legacy_config(path, theta, rope):
    """Rewrites config.json as transformers 4.x wrote it (most Hub models)."""
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("rope_parameters", None)
    cfg["rope_theta"] = theta
    if rope is None:
        cfg["rope_scaling"] = None
    elif rope["rope_type"] == "linear":
        cfg["rope_scaling"] = {"type": "linear", "factor": rope["factor"]}  # the oldest spelling
    else:
        cfg["rope_scaling"] = dict(rope)
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    if cfg.get("head_dim") == cfg["hidden_size"] // cfg["num_attention_heads"]:
        del cfg["head_dim"]  # older configs leave it implied
    cfg["transformers_version"] = "4.45.0"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


@torch.no_grad()
def logits_of(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy()


@torch.no_grad()
def greedy(model, ids, n):
    """Argmax continuation by full recomputation (no cache, EOS not special)."""
    seq = list(ids)
    toks, margins = [], []
    for _ in range(n):
        row = logits_of(model, seq)[-1]
        top2 = np.sort(row)[-2:]
        t = int(np.argmax(row))
        toks.append(t)
        margins.append(float(top2[1] - top2[0]))
        seq.append(t)
    return np.array(toks, dtype=np.int32), np.array(margins, dtype=np.float32)


def default_inv_freq(theta, hd):
    return 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float) / hd))


def llama3_band(rope, inv_freq):
    """Mask of the frequencies llama3 scaling smooths (between the bands)."""
    orig = rope["original_max_position_embeddings"]
    wavelen = 2 * np.pi / inv_freq
    return (wavelen >= orig / rope["high_freq_factor"]) & (wavelen <= orig / rope["low_freq_factor"])


def sensitivity(model, ids, base, theta, rope, eps, hd):
    """max |delta logits| when the reference itself gets one detail wrong,
    as an engine bug would: each must be far above the exact tolerance, or
    the tests could not see that bug. Returns {what: max |delta|}."""
    import copy
    out = {}

    def trial(what, mutate):
        m = copy.deepcopy(model)
        mutate(m)
        out[what] = float(np.abs(logits_of(m, ids) - base).max())

    def set_inv(m, inv):
        m.model.rotary_emb.inv_freq = inv.clone()

    def set_eps(m, e):
        for mod in m.modules():
            if hasattr(mod, "variance_epsilon"):
                mod.variance_epsilon = e

    inv0 = default_inv_freq(theta, hd)
    if rope is None:
        trial("rope_theta x2", lambda m: set_inv(m, default_inv_freq(2 * theta, hd)))
    else:
        trial("rope scaling ignored", lambda m: set_inv(m, inv0))
    if rope is not None and rope["rope_type"] == "llama3":
        band = torch.tensor(llama3_band(rope, inv0.numpy()))
        cur = model.model.rotary_emb.inv_freq
        assert band.any() and (cur == inv0).any() and (cur != inv0).any()
        trial("llama3 band unscaled", lambda m: set_inv(m, torch.where(band, inv0, cur)))
        trial("llama3 band fully scaled", lambda m: set_inv(m, torch.where(band, inv0 / rope["factor"], cur)))
    trial(f"rms eps {eps:g} -> {1e-5 if eps != 1e-5 else 1e-6:g}",
          lambda m: set_eps(m, 1e-5 if eps != 1e-5 else 1e-6))
    if any(n.endswith("q_proj.bias") for n, _ in model.named_parameters()):
        def no_bias(m):
            with torch.no_grad():
                for n, p in m.named_parameters():
                    if n.endswith(".bias"):
                        p.zero_()
        trial("qkv biases dropped", no_bias)
    return out


def check_rope(loaded, theta, rope):
    rp = loaded.config.rope_parameters
    assert abs(rp["rope_theta"] - theta) < 1e-6 * theta, rp
    want = "default" if rope is None else rope["rope_type"]
    assert rp.get("rope_type", rp.get("type")) == want, rp
    if rope is not None:
        for k, v in rope.items():
            if k != "rope_type":
                assert rp[k] == v, (k, rp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "data", "tiny"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    rng = np.random.default_rng(SEED)
    prompt_b = rng.integers(0, V, 100).astype(np.int32)
    prompt_a = prompt_b[:40].copy()

    manifest = {}
    for i, (name, (arch, dtype, tied, nh, nkv, hd, rope, theta, eps, legacy)) in enumerate(MODELS.items()):
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        cfg = make_config(arch, tied, nh, nkv, hd, rope, theta, eps)
        cls = LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM
        torch.manual_seed(SEED + i)
        model = cls(cfg).float()
        randomize(model, SEED + i)
        model = model.to(getattr(torch, dtype))
        model.save_pretrained(d, safe_serialization=True)
        for extra in os.listdir(d):
            if extra not in ("config.json", "model.safetensors"):
                os.remove(os.path.join(d, extra))
        if legacy:
            to_legacy_config(os.path.join(d, "config.json"), theta, rope)

        ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        ref.eval()
        check_rope(ref, theta, rope)
        assert ref.config.tie_word_embeddings == tied
        la = logits_of(ref, prompt_a.tolist())
        lb = logits_of(ref, prompt_b.tolist())
        assert np.abs(la - lb[:len(prompt_a)]).max() < 1e-5
        ga, gm = greedy(ref, prompt_a.tolist(), N_GREEDY)
        sens = sensitivity(ref, prompt_b.tolist(), lb, theta, rope, eps, hd)
        np.savez(os.path.join(d, "reference.npz"), prompt_a=prompt_a, prompt_b=prompt_b,
                 logits_b=lb, greedy_a=ga, greedy_margin=gm)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        manifest[name] = dict(arch=arch, dtype=dtype, tied_embeddings=tied, n_head=nh, n_head_kv=nkv,
                              gqa_ratio=nh // nkv, head_dim=hd,
                              rope_scaling=None if rope is None else rope, rope_theta=theta,
                              rms_norm_eps=eps,
                              config_layout="transformers-4" if legacy else "transformers-5",
                              logits_range=[float(min(la.min(), lb.min())), float(max(la.max(), lb.max()))],
                              greedy_min_margin=float(gm.min()),
                              sensitivity={k: round(v, 6) for k, v in sens.items()})
        print(f"{name:28s} {dtype:9s} tied={int(tied)} NH/NKV={nh}/{nkv} rope={'none' if rope is None else rope['rope_type']:6s} "
              f"theta={theta:g} eps={eps:g} logits[{la.min():+.2f},{la.max():+.2f}] "
              f"greedy margin min {gm.min():.4f}  {size / 1024:.0f} KiB")
        print("    if the engine got this wrong, max |d| would be: "
              + ", ".join(f"{k} {v:.2e}" for k, v in sens.items()))

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(dict(generator="tools/golden/make_tiny_models.py", seed=SEED,
                       reference="transformers (float32, eager attention), weights upcast to f32",
                       models=manifest), f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"total {total / 1024:.0f} KiB in {out}")


if __name__ == "__main__":
    main()
