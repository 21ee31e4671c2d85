#!/usr/bin/env python3
"""train_torch.py: the torch side of scripts/bench_train.sh.

A Trainer-free training loop on the same weights as `fastchat train`:
AutoModelForCausalLM loaded from the GGUF file (transformers dequantizes it
to float32), AdamW (torch.optim), batches of B x T token ids with every
position labelled, torch.set_num_threads(THREADS). Full fine-tuning, or LoRA
through peft (r, alpha, the seven projections, dropout 0) with --lora-r.
--bf16: the forward (and so its backward) under torch.autocast("cpu",
torch.bfloat16), transformers' --bf16 on a CPU: weights stay f32 masters.

Prints one line:
  torch mode=full steps=S B=4 T=256 tokens/s=X step_s=Y peak_rss_mib=Z
tokens/s is B*T over the median step time of the steps after the first
(the first one allocates the optimizer state and warms the allocator).

Needs a Python with torch, transformers, gguf (and peft for LoRA): not the
test venv. Here: /work/gvenv/bin/python tools/bench/train_torch.py MODEL.gguf
"""
import argparse
import os
import resource
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lora-r", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM
    d, f = os.path.split(os.path.abspath(a.gguf))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.config.use_cache = False
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if a.lora_r > 0:
        from peft import LoraConfig, get_peft_model
        cfg = LoraConfig(r=a.lora_r, lora_alpha=2 * a.lora_r, lora_dropout=0.0, bias="none",
                         task_type="CAUSAL_LM",
                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                         "gate_proj", "up_proj", "down_proj"])
        model = get_peft_model(model, cfg)
        if a.gradient_checkpointing:
            model.enable_input_require_grads()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    times = []
    for s in range(a.steps):
        ids = torch.randint(0, V, (a.batch, a.seq), generator=g)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    steady = times[1:] if len(times) > 1 else times
    step = statistics.median(steady)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    mode = ("lora" if a.lora_r > 0 else "full") + ("-bf16" if a.bf16 else "")
    print(f"torch mode={mode} steps={a.steps} B={a.batch} T={a.seq} "
          f"tokens/s={a.batch * a.seq / step:.1f} step_s={step:.3f} peak_rss_mib={rss:.0f}", flush=True)


if __name__ == "__main__":
    main()
