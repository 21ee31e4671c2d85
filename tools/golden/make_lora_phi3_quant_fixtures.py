#!/usr/bin/env python3
"""make_lora_phi3_quant_fixtures.py: golden data for LoRA on a Phi-3 base
(PEFT targets the fused qkv_proj and gate_up_proj) and LoRA on a quantized
GGUF base, for tests/py/test_lora_serve.py and test_weight_tools.py.

Writes (about 200 KB):
  tests/data/weights/lora_phi3/          PEFT adapter of tests/data/tiny/phi3_f32_swa32 (r 4, alpha 8,
                                         qkv_proj gate_up_proj o_proj down_proj; random A and B, seed 7)
  tests/data/weights/lora_phi3_merged.safetensors
                                         PEFT merge_and_unload of it, float32: the matrices the adapter
                                         changes (what apply-lora must equal; the rest is the base's)
  tests/data/weights/lora_quant_ref.npz  transformers + PEFT logits of tests/data/weights/lora_rs on the
                                         dequantized base: keys q8_0, q4_0 (IDS below), each base made by
                                         `fastchat quantize --type T` of tests/data/weights/base and
                                         `fastchat convert --dtype f32` of that GGUF back to a folder
                                         (the same commands the test runs, so the bases are identical)

Run after `make -j2 all`, with the golden venv (torch, transformers, peft):
  /work/gvenv/bin/python tools/golden/make_lora_phi3_quant_fixtures.py
"""
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W = os.path.join(ROOT, "tests", "data", "weights")
BIN = os.path.join(ROOT, "build", "fastchat")
IDS = [1, 5, 77, 30, 100, 9, 64, 3, 120, 7]  # test_lora_serve.IDS


def keep(d, names=("config.json", "model.safetensors", "adapter_model.safetensors", "adapter_config.json")):
    for f in os.listdir(d):
        if f not in names:
            os.remove(os.path.join(d, f))


def phi3():
    src = os.path.join(ROOT, "tests", "data", "tiny", "phi3_f32_swa32")
    out, merged = os.path.join(W, "lora_phi3"), os.path.join(W, "lora_phi3_merged.safetensors")
    shutil.rmtree(out, ignore_errors=True)
    m = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    pm = get_peft_model(m, LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, lora_dropout=0.0,
                                      target_modules=["qkv_proj", "gate_up_proj", "o_proj", "down_proj"]))
    torch.manual_seed(7)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn_like(p) * 0.1)
    pm.save_pretrained(out)
    keep(out)
    cfg_path = os.path.join(out, "adapter_config.json")  # no machine path in the fixture: the tests set it
    cfg = json.load(open(cfg_path))
    cfg["base_model_name_or_path"] = None
    cfg["target_modules"] = sorted(cfg["target_modules"])  # a set in PEFT: any order
    with open(cfg_path, "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    base = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    mm = PeftModel.from_pretrained(base, out).merge_and_unload()
    orig = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).state_dict()
    sd = {k: v.contiguous() for k, v in mm.state_dict().items() if not torch.equal(v, orig[k])}
    assert len(sd) == 8, sorted(sd)  # 4 matrices x 2 layers
    save_file(sd, merged, metadata={"format": "pt"})


def quant():
    ref = {}
    with tempfile.TemporaryDirectory() as tmp:
        for t in ("q8_0", "q4_0"):
            g, d = os.path.join(tmp, f"{t}.gguf"), os.path.join(tmp, t)
            subprocess.run([BIN, "quantize", "--model-path", os.path.join(W, "base"), "--type", t, "--out", g],
                           check=True)
            subprocess.run([BIN, "convert", "--input", g, "--output", d, "--dtype", "f32"], check=True)
            base = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
            pm = PeftModel.from_pretrained(base, os.path.join(W, "lora_rs"))
            with torch.no_grad():
                ref[t] = pm(torch.tensor([IDS])).logits[0].float().numpy()
    np.savez_compressed(os.path.join(W, "lora_quant_ref.npz"), ids=np.array(IDS), **ref)


if __name__ == "__main__":
    phi3()
    quant()
