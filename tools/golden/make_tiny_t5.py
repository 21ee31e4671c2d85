#!/usr/bin/env python3
"""make_tiny_t5.py: the tiny random-weight T5 models in tests/data/t5/<name>/
and their reference outputs, computed by transformers (T5ForConditionalGeneration).

Per model:
  config.json, model.safetensors   save_pretrained() of a seeded random model (f32)
  reference.npz                    enc_ids (48 encoder ids), dec_ids (32 decoder
                                   ids, the first the decoder start token),
                                   logits (32 x V f32: every decoder position,
                                   one teacher-forced call),
                                   prompt0..prompt4 (5 encoder prompts of
                                   1..60 ids), greedy0..greedy4 (64 ids each,
                                   greedy from the decoder start token, EOS
                                   ignored, full recomputation per step),
                                   margin0..margin4 (top-1 minus top-2 logit
                                   per greedy step)
and tests/data/t5/manifest.json (name -> what the model covers, and the
"sensitivity" figures: max |logit change| when a feature is switched off, so
a reader sees that the 1e-4 tolerance catches an implementation without it).

What the models cover:
  t5_v11_gated_untied  T5 v1.1 / Flan-T5: gated-gelu feed-forward (gelu_new),
                       untied lm_head (no d_model**-0.5 scaling), 2 encoder
                       and 3 decoder layers (num_decoder_layers != num_layers),
                       8 buckets with max_distance 12 (the log-spaced buckets
                       and the clamp at the last bucket are reached within 48
                       positions), d_kv * heads != d_model.
  t5_v10_relu_tied     T5 v1.0: ReLU feed-forward (wi, wo), tied head scaled
                       by d_model**-0.5, 32 buckets / max_distance 128 (the
                       transformers defaults), layer_norm_epsilon 1e-5.

Usage: /work/gvenv/bin/python tools/golden/make_tiny_t5.py [--out DIR]
Needs torch and transformers (not part of the CI venv).
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
from transformers import T5Config, T5ForConditionalGeneration

MODELS = {
    "t5_v11_gated_untied": dict(vocab_size=160, d_model=32, d_kv=12, d_ff=48, num_layers=2,
                                num_decoder_layers=3, num_heads=4, relative_attention_num_buckets=8,
                                relative_attention_max_distance=12, feed_forward_proj="gated-gelu",
                                tie_word_embeddings=False, layer_norm_epsilon=1e-6, seed=11),
    "t5_v10_relu_tied": dict(vocab_size=160, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                             num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=32,
                             relative_attention_max_distance=128, feed_forward_proj="relu",
                             tie_word_embeddings=True, layer_norm_epsilon=1e-5, seed=10),
}


def build(spec):
    spec = dict(spec)
    seed = spec.pop("seed")
    torch.manual_seed(seed)
    cfg = T5Config(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, dropout_rate=0.0,
                   initializer_factor=1.0, **spec)
    model = T5ForConditionalGeneration(cfg).float().eval()
    if not spec["tie_word_embeddings"]:
        # transformers 5 ties lm_head to shared whatever the config says (and
        # keeps tie_word_embeddings false only as "do not scale the decoder
        # output"); real v1.1 / Flan-T5 checkpoints carry their own lm_head:
        # give the reference one
        model.lm_head.weight = torch.nn.Parameter(torch.randn(cfg.vocab_size, cfg.d_model) * 0.5)
    # transformers' init gives a near-uniform output on these sizes: widen the
    # weights a little so that greedy decoding has clear margins
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "layer_norm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in n:
                p.copy_(torch.randn_like(p))
    return model


@torch.no_grad()
def dec_logits(model, enc_ids, dec_ids):
    out = model(input_ids=torch.tensor([enc_ids]), decoder_input_ids=torch.tensor([dec_ids]))
    return out.logits[0].float().numpy()


@torch.no_grad()
def greedy(model, enc_ids, n):
    start = model.config.decoder_start_token_id
    dec = [start]
    margins = []
    for _ in range(n):
        lg = dec_logits(model, enc_ids, dec)[-1]
        top = np.sort(lg)[-2:]
        margins.append(float(top[1] - top[0]))
        dec.append(int(lg.argmax()))
    return dec[1:], margins


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "t5"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    manifest = {}
    for name, spec in MODELS.items():
        model = build(spec)
        V = model.config.vocab_size
        d = os.path.join(args.out, name)
        shutil.rmtree(d, ignore_errors=True)
        model.save_pretrained(d, safe_serialization=True)
        # the files as transformers 4 (and the Hub's T5 checkpoints) have them:
        # tie_word_embeddings false with a separate lm_head.weight for v1.1,
        # true (scaled output, no lm_head.weight) for v1.0
        from safetensors.torch import save_file
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()
              if not k.endswith("embed_tokens.weight") and (k != "lm_head.weight" or not spec["tie_word_embeddings"])}
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(d, "config.json")) as f:
            cj = json.load(f)
        cj.pop("scale_decoder_outputs", None)
        cj["tie_word_embeddings"] = spec["tie_word_embeddings"]
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cj, f, indent=2)
        rng = np.random.default_rng(spec["seed"])
        enc_ids = [int(x) for x in rng.integers(2, V, 47)] + [1]
        dec_ids = [0] + [int(x) for x in rng.integers(2, V, 31)]
        logits = dec_logits(model, enc_ids, dec_ids)
        ref = {"enc_ids": np.array(enc_ids, np.int32), "dec_ids": np.array(dec_ids, np.int32), "logits": logits}
        min_margin = 1e9
        for i, L in enumerate((1, 5, 17, 33, 60)):
            p = [int(x) for x in rng.integers(2, V, L - 1)] + [1] if L > 1 else [1]
            g, m = greedy(model, p, 64)
            ref[f"prompt{i}"] = np.array(p, np.int32)
            ref[f"greedy{i}"] = np.array(g, np.int32)
            ref[f"margin{i}"] = np.array(m, np.float32)
            min_margin = min(min_margin, min(m))
        np.savez_compressed(os.path.join(d, "reference.npz"), **ref)
        # sensitivity: what the tolerance would catch
        sens = {}
        cfg = model.config
        with torch.no_grad():
            b = model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
            saved = b.clone()
            b.zero_()
            sens["encoder position bias off"] = float(np.abs(dec_logits(model, enc_ids, dec_ids) - logits).max())
            b.copy_(saved)
            b = model.decoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight
            saved = b.clone()
            b.zero_()
            sens["decoder position bias off"] = float(np.abs(dec_logits(model, enc_ids, dec_ids) - logits).max())
            b.copy_(saved)
        manifest[name] = {"feed_forward_proj": cfg.feed_forward_proj, "tied": spec["tie_word_embeddings"],
                          "num_layers": cfg.num_layers, "num_decoder_layers": cfg.num_decoder_layers,
                          "buckets": cfg.relative_attention_num_buckets,
                          "max_distance": cfg.relative_attention_max_distance,
                          "logits_range": [float(logits.min()), float(logits.max())],
                          "greedy_min_margin": min_margin, "sensitivity": sens,
                          "generator": "tools/golden/make_tiny_t5.py"}
        print(name, manifest[name])
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"models": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
