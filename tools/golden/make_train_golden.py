#!/usr/bin/env python3
"""make_train_golden.py: golden data for the trainer (src/train/), written by
the real references: fschat's `preprocess` (fastchat/train/train.py) for the
masked labels, torch autograd and torch.optim.AdamW for the gradients and the
loss curve.

What it writes (tests/data/train/ unless --out):

  labels_golden.json   {"sets": [...]}, one set per tokenizer:
      smollm2      the default model's tokenizer (SmolLM2-135M-Instruct Q4_1 GGUF,
                   scripts/fetch_model.sh) as SmolLM2's published tokenizer.json
                   builds it (make_tokenizer_golden.smollm2_reference: Digits then
                   the GPT-2 regex; transformers' own GGUF loader drops the
                   Digits step and differs on text such as " : \n\n 1"), wrapped
                   in a PreTrainedTokenizerFast with SmolLM2's special tokens;
                   model_max_length 128. That class has no `legacy` attribute,
                   so train.py would raise AttributeError on the second turn;
                   the script sets legacy = True, what transformers 4's
                   LlamaTokenizerFast (built from this GGUF) reported.
                   "</s>" is three tokens here, so FastChat's turn arithmetic
                   never matches and every untruncated example is fully
                   masked with the "tokenization mismatch" warning; truncated
                   ones keep labels. Both are reproduced.
      spm          tests/data/tokenizer/spm (a Llama SentencePiece tokenizer,
                   legacy = False), model_max_length 200
      spm_legacy   tests/data/tokenizer/spm_legacy (legacy = True), 200: its
                   tokenizer.json run by `tokenizers` in a
                   PreTrainedTokenizerFast. transformers 5's LlamaTokenizer
                   (what AutoTokenizer returns for this folder, slow or fast)
                   re-derives the pipeline and drops the "▁" that the
                   file's own encoding puts after a special token written
                   inside a message ("<s>"), in 5 of these 55 conversations;
                   our tokenizer implements the file.
    Each set: tokenizer (path relative to the repo, or "$FASTCHAT_MODEL"),
    model_max_length, legacy, pad_id, and "examples": [{"conv": index into
    "conversations", "ids": ids up to the last non-pad id, "spans": [[a, b),
    ...] where labels == ids (everywhere else -100), "mismatch": bool}].
    "conversations": the generated ShareGPT records (seeded), shared by sets:
    multi-turn, leading gpt messages (dropped by FastChat), odd lengths,
    empty replies, a "system" key (ignored by train.py), unicode, code,
    literal "</s>" and " ASSISTANT: " inside messages, long ones truncated.

  tiny_llama/, tiny_qwen2/   config.json + model.safetensors of seeded random
      models small enough to commit (llama: untied, GQA 2; qwen2: tied, GQA 2,
      q/k/v biases), f32.
  grad_<name>.safetensors    ids, labels (B=2, T=24, stored as F32), "loss"
      (1), "grad.<param name>" for every parameter, "adamw_loss" (20): the
      losses of 20 AdamW steps (lr 3e-3, betas (0.9, 0.95), eps 1e-8,
      weight decay 0.1 on all but biases and norms, as the HF Trainer groups
      them; cosine schedule with 3 warmup steps over 20 steps as
      get_cosine_schedule_with_warmup; gradient clipping at norm 1.0), each
      step on the same batch. All computed in float64 (model.double()), so
      the reference has no rounding of its own; stored as float32 except the
      losses (F64).

Usage: /work/gvenv/bin/python tools/golden/make_train_golden.py [--out DIR]
       [--gguf PATH]   (default: what scripts/fetch_model.sh prints)
Needs torch, transformers, safetensors, numpy and fschat==0.2.36 installed
with --no-deps (not part of the CI venv).
"""
import argparse
import contextlib
import io
import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ---------------------------------------------------------------- labels ----

WORDS = ("the of and to in is you that it he was for on are as with his they I at be this have "
         "from or one had by word but not what all were we when your can said there use an each "
         "which she do how their if will up other about out many then them these so some her "
         "would make like him into time has look two more write go see number no way could "
         "people my than first water been call who oil its now find long down day did get come "
         "made may part model train token loss gradient vicuna llama assistant human").split()
EXTRA = ["héllo", "naïve", "日本語", "中文字符", "😀", "🚀🚀", "Ω≈ç√", "\t", "\n", "\n\n",
         "```python\nprint('hi')\n```", "1234567", "3.14159", "(a+b)^2", "e.g.,", "--", "  ",
         "<|im_end|>", "<s>", "'quoted'", "\"dq\""]


def rand_text(rng, lo, hi):
    n = rng.randint(lo, hi)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            out.append(rng.choice(EXTRA))
        else:
            w = rng.choice(WORDS)
            if rng.random() < 0.1:
                w = w.capitalize()
            out.append(w)
            if rng.random() < 0.08:
                out.append(rng.choice([",", ".", "?", "!", ":"]))
    s = " ".join(out)
    return s.strip() if rng.random() < 0.9 else s


def make_conversations(n, seed=1234):
    rng = random.Random(seed)
    convs = []
    for i in range(n):
        kind = i % 10
        turns = rng.choice([1, 1, 2, 2, 3, 4])
        long = kind == 7 or rng.random() < 0.08
        msgs = []
        if kind == 3:
            msgs.append({"from": "gpt", "value": rand_text(rng, 2, 10)})  # dropped by FastChat
        for t in range(turns):
            q = rand_text(rng, 1, 40 if long else 8)
            a = rand_text(rng, 1, 60 if long else 10)
            if kind == 5 and t == 0:
                q += " ASSISTANT: " + rand_text(rng, 1, 4)  # the separator inside a message
            if kind == 6 and t == turns - 1:
                a += "</s>" + rand_text(rng, 1, 4)  # sep2 inside a message
            if kind == 8 and t == 0:
                a = ""  # empty reply renders as an open slot
            msgs.append({"from": "human", "value": q})
            msgs.append({"from": "gpt", "value": a})
        if kind == 9:
            msgs.append({"from": "human", "value": rand_text(rng, 1, 8)})  # ends with human
        rec = {"id": f"c{i}", "conversations": msgs}
        if kind in (2, 4):
            rec["system"] = rand_text(rng, 3, 12)  # ignored by train.py's preprocess
        convs.append(rec)
    return convs


def label_set(name, tok, tok_ref, max_len, legacy, convs, indices):
    import fastchat.train.train as ft

    tok.model_max_length = max_len
    tok.padding_side = "right"
    if tok.pad_token != tok.unk_token:
        tok.pad_token = tok.unk_token  # as train.py does
    if not hasattr(tok, "legacy"):
        tok.legacy = legacy
    assert tok.legacy == legacy, (name, tok.legacy)
    ft.local_rank = 0  # rank0_print prints the mismatch warning
    examples = []
    n_mismatch = n_trunc = 0
    for ci in indices:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out = ft.preprocess([convs[ci]["conversations"]], tok)
        ids = out["input_ids"][0].tolist()
        labels = out["labels"][0].tolist()
        mismatch = "tokenization mismatch" in buf.getvalue()
        n_mismatch += mismatch
        end = len(ids)
        while end > 0 and ids[end - 1] == tok.pad_token_id:
            end -= 1
        n_trunc += end == max_len
        spans = []
        t = 0
        while t < len(labels):
            if labels[t] != -100:
                s = t
                while t < len(labels) and labels[t] != -100:
                    assert labels[t] == ids[t]
                    t += 1
                spans.append([s, t])
            else:
                t += 1
        examples.append({"conv": ci, "ids": ids[:end], "spans": spans, "mismatch": mismatch})
    print(f"{name}: {len(examples)} examples, {n_mismatch} mismatched, {n_trunc} truncated, "
          f"{sum(1 for e in examples if e['spans'])} with labels", file=sys.stderr)
    return {"name": name, "tokenizer": tok_ref, "model_max_length": max_len, "legacy": legacy,
            "pad_id": tok.pad_token_id, "examples": examples}


def make_labels(out_dir, gguf):
    from transformers import AutoTokenizer

    convs = make_conversations(220)
    sets = []
    from transformers import PreTrainedTokenizerFast
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_tokenizer_golden import smollm2_reference
    tok = PreTrainedTokenizerFast(tokenizer_object=smollm2_reference(gguf), unk_token="<|endoftext|>",
                                  bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>")
    sets.append(label_set("smollm2", tok, "$FASTCHAT_MODEL", 128, True, convs, range(220)))
    for name, legacy in (("spm", False), ("spm_legacy", True)):
        d = os.path.join(ROOT, "tests/data/tokenizer", name)
        if legacy:
            from tokenizers import Tokenizer
            tok = PreTrainedTokenizerFast(
                tokenizer_object=Tokenizer.from_file(os.path.join(d, "tokenizer.json")),
                unk_token="<unk>", bos_token="<s>", eos_token="</s>")
        else:
            tok = AutoTokenizer.from_pretrained(d, use_fast=False)
        sets.append(label_set(name, tok, f"tests/data/tokenizer/{name}", 200, legacy, convs,
                              range(0, 220, 4)))
    doc = {"generator": "tools/golden/make_train_golden.py", "reference": "fschat 0.2.36 "
           "fastchat.train.train.preprocess", "conversations": convs, "sets": sets}
    with open(os.path.join(out_dir, "labels_golden.json"), "w") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------- gradients ----

def tiny_model(arch, seed):
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                  max_position_embeddings=64, bos_token_id=1, eos_token_id=2)
    if arch == "llama":
        cfg = transformers.LlamaConfig(rms_norm_eps=1e-5, tie_word_embeddings=False,
                                       rope_theta=10000.0, **common)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.Qwen2Config(rms_norm_eps=1e-6, tie_word_embeddings=True,
                                       rope_theta=1000000.0, **common)
        model = transformers.Qwen2ForCausalLM(cfg)
    # larger than the 0.02 init so that gradients are not all tiny
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model.config.use_cache = False
    return model.float()


def decay_groups(model):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if n.endswith(".bias") or "norm" in n else decay).append(p)
    return decay, no_decay


def make_grads(out_dir, arch, seed):
    import transformers
    from safetensors.torch import save_file

    model = tiny_model(arch, seed)
    mdir = os.path.join(out_dir, f"tiny_{arch}")
    model.save_pretrained(mdir, safe_serialization=True)
    for extra in ("generation_config.json",):
        p = os.path.join(mdir, extra)
        if os.path.exists(p):
            os.remove(p)
    model = model.double()
    model.config._attn_implementation = "eager"
    B, T, V = 2, 24, model.config.vocab_size
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, V, (B, T), generator=g)
    labels = ids.clone()
    labels[0, :5] = -100          # a masked instruction
    labels[0, 12:15] = -100       # a second one
    labels[1, :9] = -100
    labels[1, 20:] = -100         # padding at the end
    out = model(input_ids=ids, labels=labels)
    out.loss.backward()
    tensors = {"ids": ids.float(), "labels": labels.float(),
               "loss": out.loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        tensors["grad." + n] = p.grad.detach().float().contiguous()
    # 20 AdamW steps on the same batch from the same initialisation
    model.zero_grad()
    decay, no_decay = decay_groups(model)
    lr, steps, warmup = 3e-3, 20, 3
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8)
    sched = transformers.get_cosine_schedule_with_warmup(opt, warmup, steps)
    losses = []
    for _ in range(steps):
        out = model(input_ids=ids, labels=labels)
        losses.append(out.loss.item())
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    tensors["adamw_loss"] = torch.tensor(losses, dtype=torch.float64)
    tensors["loss"] = tensors["loss"].double()
    save_file(tensors, os.path.join(out_dir, f"grad_{arch}.safetensors"))
    print(f"{arch}: loss {tensors['loss'].item():.6f}, adamw {losses[0]:.5f} -> {losses[-1]:.5f}",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/train"))
    ap.add_argument("--gguf", default=None)
    ap.add_argument("--only", choices=["labels", "grads"], default=None)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.only != "grads":
        gguf = a.gguf or subprocess.check_output([os.path.join(ROOT, "scripts/fetch_model.sh")],
                                                 text=True).strip()
        make_labels(a.out, gguf)
    if a.only != "labels":
        torch.use_deterministic_algorithms(True)
        make_grads(a.out, "llama", 20261207)
        make_grads(a.out, "qwen2", 20261208)


if __name__ == "__main__":
    main()
