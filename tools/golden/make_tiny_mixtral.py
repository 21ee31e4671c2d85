#!/usr/bin/env python3
"""make_tiny_mixtral.py: tiny random-weight Mixtral models (transformers'
MixtralForCausalLM, mixture of experts) in tests/data/tiny/<name>/ with their
reference outputs computed by transformers, in the layout of the other tiny
models (make_tiny_models.py, make_tiny_families.py):

  config.json, model.safetensors   save_pretrained() of a seeded random model
                                   (f32; per-expert block_sparse_moe.experts.N.w1/w2/w3)
  reference.npz                    prompt_b (100 ids), logits_b (100 x V f32),
                                   prompt_a (first 40 ids of prompt_b),
                                   greedy_a (16 ids, greedy after prompt_a, KV cache),
                                   greedy_margin (top-1 minus top-2 per step),
                                   and for the Mixtral tests:
                                   prompts (5 x 70 ids, prompt i is the first
                                   prompt_len[i] of row i), prompt_len (5),
                                   greedy64 (5 x 64 ids, greedy after each
                                   prompt, with the KV cache, EOS ignored),
                                   greedy64_margin (5 x 64 top-1 minus top-2),
                                   router_gap (the smallest gap, over every
                                   layer and position of prompt_b and of the
                                   greedy sequences, between the k-th and the
                                   (k+1)-th router logit: how close a token
                                   came to another choice of experts)

and it adds (or replaces) its models' entries in tests/data/tiny/manifest.json
(generator "tools/golden/make_tiny_mixtral.py"; test_tiny_logits.py runs every
entry, tests/py/test_mixtral.py these).

The models:
  mixtral_f32_e8     8 experts, top-2, no sliding window, GQA 2, V 256.
  mixtral_f32_e4_swa20  4 experts, top-2, sliding_window 20, GQA 4, V 256.
Each seed is kept only when every greedy step has a top-1/top-2 margin of at
least 1e-3 and every router decision a logit gap of at least 1e-4 (10x and
100x the float32 differences of a correct engine, which sums in another
order), so that it cannot flip a token or an expert choice. The "sensitivity" entries give the max |logit change| when
the top-k weights are not renormalised, when only the top expert is used, and
when the window is ignored: all far above the 1e-4 test tolerance.

Usage: /work/gvenv/bin/python tools/golden/make_tiny_mixtral.py [--out DIR]
Needs torch and transformers (5.x; not part of the CI venv).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM
from transformers.models.mixtral import modeling_mixtral

V = 256
N_GREEDY = 16
N_GREEDY64 = 64
PROMPT_LENS = [8, 21, 33, 50, 70]
SEED = 20261207
INIT_STD = 0.15
PROMPT_SEED = 20261208
MIN_MARGIN = 1e-3
MIN_ROUTER_GAP = 1e-4


def mixtral(E, k, C, FF, nh, nkv, window):
    return MixtralConfig(vocab_size=V, hidden_size=C, intermediate_size=FF, num_hidden_layers=2,
                         num_attention_heads=nh, num_key_value_heads=nkv, num_local_experts=E,
                         num_experts_per_tok=k, sliding_window=window, max_position_embeddings=256,
                         rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
                         router_jitter_noise=0.0)


MODELS = {
    "mixtral_f32_e8": lambda: mixtral(8, 2, 32, 64, 4, 2, None),
    "mixtral_f32_e4_swa20": lambda: mixtral(4, 2, 64, 32, 4, 1, 20),
}


def randomize(model, seed):
    """Matrices N(0, INIT_STD), the routers N(0, 1.5 / sqrt(C)) (router
    logits of spread ~1.5: the second expert's weight matters), norms
    around 1."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif ".gate.weight" in name:
                p.copy_(1.5 / p.shape[1] ** 0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(INIT_STD * torch.randn(p.shape, generator=g))


@torch.no_grad()
def run(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=False, output_router_logits=True)
    return out.logits[0].float().numpy(), out.router_logits


def router_gap(router_logits, k):
    """Smallest gap between the k-th and (k+1)-th router logit (the top-k of
    the probabilities is the top-k of the logits)."""
    gap = np.inf
    for rl in router_logits:
        s = -np.sort(-rl.float().numpy(), axis=-1)
        gap = min(gap, float((s[:, k - 1] - s[:, k]).min()))
    return gap


@torch.no_grad()
def greedy(model, ids, n, k):
    """Argmax continuation with transformers' KV cache (EOS not special);
    the router gap over every position of the whole sequence (one more
    forward over it: the same decisions as step by step)."""
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=True)
    toks, margins = [], []
    for _ in range(n):
        row = out.logits[0, -1].float().numpy()
        top2 = np.sort(row)[-2:]
        t = int(np.argmax(row))
        toks.append(t)
        margins.append(float(top2[1] - top2[0]))
        out = model(torch.tensor([[t]], dtype=torch.long), past_key_values=out.past_key_values, use_cache=True)
    gap = router_gap(run(model, list(ids) + toks[:-1])[1], k)
    return np.array(toks, dtype=np.int32), np.array(margins, dtype=np.float32), gap


def sensitivity(d, ids, base):
    out = {}
    cfg = json.load(open(os.path.join(d, "config.json")))

    def trial(what, **over):
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager", **over)
        out[what] = float(np.abs(run(m, ids)[0] - base).max())

    orig = modeling_mixtral.MixtralTopKRouter.forward

    def no_renorm(self, h):
        h = h.reshape(-1, self.hidden_dim)
        logits = torch.nn.functional.linear(h, self.weight)
        probs = torch.softmax(logits.float(), dim=-1)
        v, i = torch.topk(probs, self.top_k, dim=-1)
        return logits, v, i
    modeling_mixtral.MixtralTopKRouter.forward = no_renorm
    try:
        trial("top-k weights not renormalised")
    finally:
        modeling_mixtral.MixtralTopKRouter.forward = orig
    trial("top-1 expert only", num_experts_per_tok=1)
    if cfg.get("sliding_window"):
        trial("sliding window ignored", sliding_window=100000)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "data", "tiny"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)  # the machine is shared: one thread is the fastest under load

    rng = np.random.default_rng(PROMPT_SEED)
    prompt_b = rng.integers(3, V, 100).astype(np.int32)
    prompt_a = prompt_b[:40].copy()
    prompts = rng.integers(3, V, (len(PROMPT_LENS), max(PROMPT_LENS))).astype(np.int32)
    prompt_len = np.array(PROMPT_LENS, dtype=np.int32)

    mpath = os.path.join(out, "manifest.json")
    manifest = json.load(open(mpath)) if os.path.exists(mpath) else dict(models={})
    for i, (name, make) in enumerate(MODELS.items()):
        cfg = make()
        k = cfg.num_experts_per_tok
        d = os.path.join(out, name)
        for attempt in range(50):
            seed = SEED + 100 * i + attempt
            shutil.rmtree(d, ignore_errors=True)
            torch.manual_seed(seed)
            model = MixtralForCausalLM(cfg).float()
            randomize(model, seed)
            model.save_pretrained(d, safe_serialization=True)
            for extra in os.listdir(d):
                if extra not in ("config.json", "model.safetensors"):
                    os.remove(os.path.join(d, extra))
            ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
            ref.eval()
            lb, rl = run(ref, prompt_b.tolist())
            gap = router_gap(rl, k)
            la, _ = run(ref, prompt_a.tolist())
            assert np.abs(la - lb[:len(prompt_a)]).max() < 1e-5, "prompt_a logits differ from logits_b[:40]"
            ga, gm, g1 = greedy(ref, prompt_a.tolist(), N_GREEDY, k)
            g64, m64 = [], []
            for r, n in zip(prompts, PROMPT_LENS):
                t, m, g2 = greedy(ref, r[:n].tolist(), N_GREEDY64, k)
                g64.append(t)
                m64.append(m)
                gap = min(gap, g2)
            gap = min(gap, g1)
            g64, m64 = np.stack(g64), np.stack(m64)
            margin = float(min(gm.min(), m64.min()))
            print(f"{name} seed {seed}: greedy margin min {margin:.4f}, router gap min {gap:.2e}", flush=True)
            if margin >= MIN_MARGIN and gap >= MIN_ROUTER_GAP:
                break
        else:
            raise SystemExit(f"{name}: no seed with margins >= {MIN_MARGIN} and router gaps >= {MIN_ROUTER_GAP}")
        sens = sensitivity(d, prompt_b.tolist(), lb)
        np.savez(os.path.join(d, "reference.npz"), prompt_a=prompt_a, prompt_b=prompt_b, logits_b=lb,
                 greedy_a=ga, greedy_margin=gm, prompts=prompts, prompt_len=prompt_len, greedy64=g64,
                 greedy64_margin=m64, router_gap=np.float32(gap))
        c = ref.config
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        manifest["models"][name] = dict(
            generator="tools/golden/make_tiny_mixtral.py", arch=c.model_type, dtype="float32", seed=seed,
            tied_embeddings=bool(c.tie_word_embeddings), n_head=c.num_attention_heads,
            n_head_kv=c.num_key_value_heads, gqa_ratio=c.num_attention_heads // c.num_key_value_heads,
            head_dim=c.hidden_size // c.num_attention_heads, n_expert=c.num_local_experts,
            n_expert_used=c.num_experts_per_tok, sliding_window=c.sliding_window,
            logits_range=[float(lb.min()), float(lb.max())],
            greedy_min_margin=margin, router_min_gap=gap,
            sensitivity={kk: round(v, 6) for kk, v in sens.items()})
        print(f"{name:22s} logits[{lb.min():+.2f},{lb.max():+.2f}] greedy margin min {margin:.4f} router gap "
              f"{gap:.2e} {size / 1024:.0f} KiB; if changed, max |d|: "
              + ", ".join(f"{kk} {v:.2e}" for kk, v in sens.items()), flush=True)

    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
