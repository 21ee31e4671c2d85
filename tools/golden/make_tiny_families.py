#!/usr/bin/env python3
"""make_tiny_families.py: the tiny random-weight Gemma 2, Phi-3, Mistral
(sliding window) and Qwen2 (sliding window) models in tests/data/tiny/<name>/
and their reference logits, computed by transformers; the companion of
make_tiny_models.py (llama/qwen2), with the same files per model:

  config.json, model.safetensors   save_pretrained() of a seeded random model
  reference.npz                    prompt_b (100 ids), logits_b (100 x V f32),
                                   prompt_a (first 40 ids of prompt_b),
                                   greedy_a (16 ids, greedy after prompt_a,
                                   full recomputation, EOS ignored),
                                   greedy_margin (top-1 minus top-2 per step),
                                   and where the model has 256 positions:
                                   greedy_long (100 ids, greedy after
                                   prompt_b, to position 200: decode past the
                                   window with the context split across
                                   threads) and greedy_long_margin, made
                                   with transformers' KV cache (a Phi-3
                                   LongRoPE model that crosses
                                   original_max_position_embeddings keeps
                                   the cached keys rotated with the short
                                   factors there, as the engine does; a full
                                   recomputation would re-rotate them)

and it adds (or replaces) its models' entries in tests/data/tiny/manifest.json
(re-run it after make_tiny_models.py, which rewrites that file).

What the models cover:
  gemma2_*   sqrt(C) embedding scale, (1 + w) RMSNorm, GeGLU
             (gelu_pytorch_tanh), pre- and post-norms, query_pre_attn_scalar
             != head_dim, attention and final logit soft-caps small enough
             to bend the logits (5 and 8), alternating sliding (even) and
             global layers with a window (24 / 12) shorter than the prompts,
             tied head, head_dim * NH != hidden_size.
  phi3_*     fused qkv_proj and gate_up_proj; a sliding window of 32; LongRoPE
             with the long factors (original_max_position_embeddings 32 < 40,
             so every call of the reference and of the engine is "long") and
             with the short factors (original 128 > 100), each with the
             attention factor sqrt(1 + ln(max/orig) / ln(orig)).
  mistral_*  sliding_window 20 on every layer.
  qwen2_*    use_sliding_window with max_window_layers 1 (layer 0 global,
             layer 1 sliding, window 24; transformers 5 writes layer_types).
The "sensitivity" entries of the manifest give the max |logit change| when a
feature is switched off in the reference (window unlimited, no soft-cap), so a
reader can see that the 1e-4 test tolerance would catch an engine that
ignored it.

Usage: /work/gvenv/bin/python tools/golden/make_tiny_families.py [--out DIR]
Needs torch and transformers (5.x; not part of the CI venv).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import (AutoModelForCausalLM, Gemma2Config, Gemma2ForCausalLM, MistralConfig,
                          MistralForCausalLM, Phi3Config, Phi3ForCausalLM, Qwen2Config, Qwen2ForCausalLM)

V = 512
N_GREEDY = 16
N_LONG = 100
SEED = 20240711
INIT_STD = 0.15
PROMPT_SEED = 20240601  # the prompts of make_tiny_models.py


def longrope(hd, orig, seed):
    g = np.random.default_rng(seed)
    half = hd // 2
    return dict(rope_type="longrope",
                short_factor=[round(float(x), 4) for x in 1.0 + 2.0 * g.random(half)],
                long_factor=[round(float(x), 4) for x in 1.0 + 12.0 * np.sort(g.random(half))],
                rope_theta=10000.0), orig


def gemma2(window, layers, nh, nkv, dtype):
    cfg = Gemma2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                       num_attention_heads=nh, num_key_value_heads=nkv, head_dim=16,
                       query_pre_attn_scalar=24, sliding_window=window, attn_logit_softcapping=5.0,
                       final_logit_softcapping=8.0, max_position_embeddings=256, rms_norm_eps=1e-6,
                       bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=True)
    return cfg, Gemma2ForCausalLM, dtype


def phi3(window, rope, dtype, nh=4, nkv=2, tied=False):
    kw = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=nh, num_key_value_heads=nkv, max_position_embeddings=256,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0, sliding_window=window,
              tie_word_embeddings=tied)
    if rope is not None:
        rp, orig = rope
        kw.update(rope_parameters=rp, original_max_position_embeddings=orig,
                  max_position_embeddings=orig * 4)
    return Phi3Config(**kw), Phi3ForCausalLM, dtype


def mistral(window, dtype):
    cfg = MistralConfig(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=window,
                        max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
                        tie_word_embeddings=False)
    return cfg, MistralForCausalLM, dtype


def qwen2_swa(window, dtype):
    cfg = Qwen2Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True,
                      sliding_window=window, max_window_layers=1, max_position_embeddings=256,
                      rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    return cfg, Qwen2ForCausalLM, dtype


MODELS = {
    "gemma2_f32_swa24": lambda: gemma2(24, 3, 4, 2, "float32"),
    "gemma2_bf16_gqa4_swa12": lambda: gemma2(12, 4, 8, 2, "bfloat16"),
    "phi3_f32_swa32": lambda: phi3(32, None, "float32"),
    "phi3_f32_longrope_long": lambda: phi3(None, longrope(16, 32, 1), "float32"),
    "phi3_f16_longrope_short": lambda: phi3(None, longrope(16, 128, 2), "float16", nh=4, nkv=4, tied=True),
    "mistral_f32_swa20": lambda: mistral(20, "float32"),
    "qwen2_f32_swa24": lambda: qwen2_swa(24, "float32"),
}


def randomize(model, seed):
    """Matrices N(0, INIT_STD); norms around 1 (Gemma's (1 + w) norms: w
    around 0), biases N(0, 0.5)."""
    g = torch.Generator().manual_seed(seed)
    gemma = "Gemma" in type(model).__name__
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_((0.0 if gemma else 1.0) + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(INIT_STD * torch.randn(p.shape, generator=g))


@torch.no_grad()
def logits_of(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy()


@torch.no_grad()
def greedy(model, ids, n):
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


@torch.no_grad()
def greedy_cached(model, ids, n):
    """Argmax continuation with transformers' KV cache (EOS not special)."""
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=True)
    toks, margins = [], []
    for _ in range(n):
        row = out.logits[0, -1].float().numpy()
        top2 = np.sort(row)[-2:]
        t = int(np.argmax(row))
        toks.append(t)
        margins.append(float(top2[1] - top2[0]))
        out = model(torch.tensor([[t]], dtype=torch.long), past_key_values=out.past_key_values, use_cache=True)
    return np.array(toks, dtype=np.int32), np.array(margins, dtype=np.float32)


def sensitivity(d, ids, base):
    """Max |logit change| with a feature switched off in the reference."""
    out = {}
    cfg = json.load(open(os.path.join(d, "config.json")))

    def trial(what, **over):
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager", **over)
        out[what] = float(np.abs(logits_of(m, ids) - base).max())

    if cfg.get("sliding_window"):
        trial("sliding window ignored", sliding_window=100000)
    if cfg.get("attn_logit_softcapping"):
        trial("attention soft-cap ignored", attn_logit_softcapping=None)
    if cfg.get("final_logit_softcapping"):
        trial("final soft-cap ignored", final_logit_softcapping=None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "data", "tiny"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    rng = np.random.default_rng(PROMPT_SEED)
    prompt_b = rng.integers(0, V, 100).astype(np.int32)
    prompt_a = prompt_b[:40].copy()

    mpath = os.path.join(out, "manifest.json")
    manifest = json.load(open(mpath)) if os.path.exists(mpath) else dict(models={})
    for i, (name, make) in enumerate(MODELS.items()):
        cfg, cls, dtype = make()
        d = os.path.join(out, name)
        shutil.rmtree(d, ignore_errors=True)
        torch.manual_seed(SEED + i)
        model = cls(cfg).float()
        randomize(model, SEED + i)
        model = model.to(getattr(torch, dtype))
        model.save_pretrained(d, safe_serialization=True)
        for extra in os.listdir(d):
            if extra not in ("config.json", "model.safetensors"):
                os.remove(os.path.join(d, extra))

        ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        ref.eval()
        la = logits_of(ref, prompt_a.tolist())
        lb = logits_of(ref, prompt_b.tolist())
        assert np.abs(la - lb[:len(prompt_a)]).max() < 1e-5, "prompt_a logits differ from logits_b[:40]"
        ga, gm = greedy(ref, prompt_a.tolist(), N_GREEDY)
        sens = sensitivity(d, prompt_b.tolist(), lb)
        extra = {}
        if ref.config.max_position_embeddings >= 256:
            extra["greedy_long"], extra["greedy_long_margin"] = greedy_cached(ref, prompt_b.tolist(), N_LONG)
        np.savez(os.path.join(d, "reference.npz"), prompt_a=prompt_a, prompt_b=prompt_b,
                 logits_b=lb, greedy_a=ga, greedy_margin=gm, **extra)
        c = ref.config
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        rp = getattr(c, "rope_parameters", None) or {}
        manifest["models"][name] = dict(
            generator="tools/golden/make_tiny_families.py", arch=c.model_type, dtype=dtype,
            tied_embeddings=bool(c.tie_word_embeddings), n_head=c.num_attention_heads,
            n_head_kv=c.num_key_value_heads, gqa_ratio=c.num_attention_heads // c.num_key_value_heads,
            head_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
            rope_scaling=None if rp.get("rope_type", "default") == "default" else
            {k: v for k, v in rp.items() if k not in ("short_factor", "long_factor")},
            sliding_window=getattr(c, "sliding_window", None),
            layer_types=getattr(c, "layer_types", None),
            logits_range=[float(min(la.min(), lb.min())), float(max(la.max(), lb.max()))],
            greedy_min_margin=float(gm.min()),
            sensitivity={k: round(v, 6) for k, v in sens.items()})
        print(f"{name:26s} {dtype:9s} logits[{lb.min():+.2f},{lb.max():+.2f}] greedy margin min {gm.min():.4f} "
              f"{size / 1024:.0f} KiB; if ignored, max |d|: " + ", ".join(f"{k} {v:.2e}" for k, v in sens.items()))

    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
