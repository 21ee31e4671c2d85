#!/usr/bin/env python3
"""check_lora_peft.py BASE ADAPTER [MERGED]: checks by hand (not in CI: it
needs torch and peft) that an adapter folder written by `fastchat train
--lora-r ...` loads in PEFT: PeftModel.from_pretrained(BASE, ADAPTER) must
report no missing or unexpected adapter keys, every lora_A/lora_B tensor in
the model must equal the file's, and the scaling must be lora_alpha / r.
With MERGED (the folder `fastchat apply-lora` wrote), also compares the
logits of PEFT's model and of MERGED on a fixed id sequence (f32).

Usage: /work/gvenv/bin/python tools/golden/check_lora_peft.py BASE ADAPTER [MERGED]
"""
import json
import sys

import torch
import transformers
from peft import PeftModel
from safetensors.torch import load_file


def main():
    base_dir, ad_dir = sys.argv[1], sys.argv[2]
    merged_dir = sys.argv[3] if len(sys.argv) > 3 else None
    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, ad_dir)
    cfg = json.load(open(f"{ad_dir}/adapter_config.json"))
    sd = load_file(f"{ad_dir}/adapter_model.safetensors")
    seen = 0
    for name, p in model.named_parameters():
        if "lora_" in name:
            key = name.replace(".default", "")
            assert torch.equal(p.detach(), sd[key]), key
            seen += 1
    assert seen == len(sd), (seen, len(sd))
    layer = model.base_model.model.model.layers[0]
    mod = getattr(layer.self_attn, cfg["target_modules"][0], None) or getattr(layer.mlp, cfg["target_modules"][0])
    assert abs(mod.scaling["default"] - cfg["lora_alpha"] / cfg["r"]) < 1e-12
    print(f"PEFT loaded {seen} adapter tensors, equal to the file; scaling {mod.scaling['default']}")
    if merged_dir:
        merged = transformers.AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
        ids = torch.arange(3, 3 + 20).unsqueeze(0) % base.config.vocab_size
        with torch.no_grad():
            a = model(input_ids=ids).logits
            b = merged(input_ids=ids).logits
        d = (a - b).abs().max().item()
        print(f"logits PEFT vs apply-lora merged: largest difference {d:.3g} (scale {a.abs().max().item():.3g})")


if __name__ == "__main__":
    main()
