#!/usr/bin/env python3
"""make_lora_bin_fixture.py: the PEFT adapter of tests/data/weights/lora saved
as PEFT saves it with safe_serialization=False (adapter_model.bin, a
torch.save zip of the state dict), for test_apply_lora_bin_adapter in
tests/py/test_weight_tools.py. The adapter itself is written by
make_delta_lora_fixtures.py; this only re-serializes it, through PEFT:
the adapter is loaded onto its base with PeftModel.from_pretrained and saved
with save_pretrained(safe_serialization=False).

Writes tests/data/weights/lora_bin/ (adapter_config.json, adapter_model.bin).
Run with the golden venv:
  /work/gvenv/bin/python tools/golden/make_lora_bin_fixture.py
"""
import os
import shutil
import tempfile

import torch
from peft import PeftModel
from transformers import LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W = os.path.join(ROOT, "tests", "data", "weights")
OUT = os.path.join(W, "lora_bin")

base = LlamaForCausalLM.from_pretrained(os.path.join(W, "base"), torch_dtype=torch.float16)
m = PeftModel.from_pretrained(base, os.path.join(W, "lora"))
tmp = tempfile.mkdtemp()
m.save_pretrained(tmp, safe_serialization=False)
os.makedirs(OUT, exist_ok=True)
for f in ("adapter_config.json", "adapter_model.bin"):
    shutil.copy(os.path.join(tmp, f), os.path.join(OUT, f))
shutil.rmtree(tmp)
print("wrote", OUT, sorted(os.listdir(OUT)))
