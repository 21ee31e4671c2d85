#!/usr/bin/env python3
"""make_lora_golden.py: golden gradients of LoRA adapters (src/train/
train_ref.c, fc_train_model_add_lora) from torch autograd through PEFT.

For each tiny model of make_train_golden.py (tests/data/train/tiny_llama:
untied, GQA; tiny_qwen2: tied, q/k/v biases) in float64 with eager
attention: peft.get_peft_model with LoraConfig(r=4, lora_alpha=8,
lora_dropout=0.0, all seven projections as target_modules), lora_A and
lora_B both set to seeded random values (PEFT's B = 0 would make every A
gradient zero, so nothing about A would be checked), then one forward and
backward on the batch of grad_<arch>.safetensors (its ids and labels).

Writes tests/data/train/lora_grad_<arch>.safetensors: "ids", "labels" (F32),
"loss" (F64, 1), "init.<name>" the adapter weights and "grad.<name>" their
gradients, <name> as PEFT's get_peft_model_state_dict names them
("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), F32.
The base weights get no gradient (requires_grad False under PEFT); the test
checks that ours stay untouched too.

Usage: /work/gvenv/bin/python tools/golden/make_lora_golden.py
Needs torch, transformers, peft, safetensors (not part of the CI venv).
"""
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make(arch, seed):
    import transformers
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    d = os.path.join(ROOT, "tests/data/train")
    model = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(d, f"tiny_{arch}"),
                                                              torch_dtype=torch.float64,
                                                              attn_implementation="eager")
    model.config.use_cache = False
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                     task_type="CAUSAL_LM")
    pm = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    batch = load_file(os.path.join(d, f"grad_{arch}.safetensors"))
    ids = batch["ids"].long()
    labels = batch["labels"].long()
    out = pm(input_ids=ids, labels=labels)
    out.loss.backward()
    sd = get_peft_model_state_dict(pm)
    tensors = {"ids": batch["ids"], "labels": batch["labels"], "loss": out.loss.detach().double().reshape(1)}
    grads = {}
    for n, p in pm.named_parameters():
        if p.requires_grad:
            key = n.replace(".default", "")
            assert key in sd, key
            grads[key] = p.grad
        else:
            assert p.grad is None
    assert sorted(grads) == sorted(sd), (len(grads), len(sd))
    for k in sd:
        tensors["init." + k] = sd[k].float().contiguous()
        tensors["grad." + k] = grads[k].float().contiguous()
    save_file(tensors, os.path.join(d, f"lora_grad_{arch}.safetensors"))
    print(f"{arch}: loss {out.loss.item():.8f}, {len(sd)} adapter tensors", file=sys.stderr)


def main():
    torch.use_deterministic_algorithms(True)
    make("llama", 31)
    make("qwen2", 32)


if __name__ == "__main__":
    main()
