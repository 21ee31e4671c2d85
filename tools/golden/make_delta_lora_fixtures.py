#!/usr/bin/env python3
"""make_delta_lora_fixtures.py: golden outputs of FastChat's weight tools
(fastchat/model/make_delta.py, apply_delta.py, apply_lora.py from the
`fschat` package, and PEFT's merge_and_unload) on tiny random Llama models,
for tests/py/test_weight_tools.py.

Writes tests/data/weights/ (about 400 KB):
  base/           seeded random LlamaForCausalLM, float16, untied lm_head
                  (vocab 128, hidden 32, 2 layers, 2 heads, 1 KV head, ff 64)
  target/         base + small seeded noise (the "fine-tuned" model), float16,
                  with the SentencePiece tokenizer of tests/data/tokenizer/spm
  delta_fs/       fschat's make_delta(base, target)  (what `fastchat make-delta` must equal)
  target_fs/      fschat's apply_delta(base, delta_fs) (what `fastchat apply-delta` must equal);
                  the delta_fs folder also holds the tokenizer files it copies
  lora/           a PEFT LoRA adapter of base (r 4, alpha 8, q_proj v_proj down_proj,
                  random A and B so the merge is not a no-op), adapter_model.safetensors
  lora_merged_fs/ fschat's apply_lora(base, lora) = PEFT merge_and_unload in float16
  lora_rs/        a second adapter with use_rslora (alpha / sqrt(r)), r 8, alpha 4,
                  every linear of the attention and MLP
  lora_rs_merged/ PEFT merge_and_unload of lora_rs into base loaded in float16

Run with the golden venv (torch, transformers, peft; fschat is imported from
the test venv's site-packages without installing it there):
  /work/gvenv/bin/python tools/golden/make_delta_lora_fixtures.py
"""
import glob
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "weights")

# fschat from the test venv (it needs no other package than those of this venv)
_fs = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "fastchat"))
if _fs:
    _shim = tempfile.mkdtemp()
    os.symlink(_fs[0], os.path.join(_shim, "fastchat"))
    sys.path.insert(0, _shim)

import torch  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

import fastchat.model.apply_delta as apply_delta_mod  # noqa: E402
import fastchat.model.apply_lora as apply_lora_mod  # noqa: E402
import fastchat.model.make_delta as make_delta_mod  # noqa: E402

TOK_FILES = ("tokenizer.model", "tokenizer_config.json")


class FileTokenizer:
    """Stands in for AutoTokenizer in the fschat modules: the tokenizer is
    not what these fixtures check (transformers 5 no longer loads this slow
    SentencePiece tokenizer with use_fast=False), so save_pretrained copies
    the tokenizer files as they are. The weight arithmetic is fschat's."""

    def __init__(self, path):
        self.path = path

    @classmethod
    def from_pretrained(cls, path, **kw):
        return cls(path)

    def save_pretrained(self, out, **kw):
        os.makedirs(out, exist_ok=True)
        for f in TOK_FILES:
            if os.path.exists(os.path.join(self.path, f)):
                shutil.copy(os.path.join(self.path, f), out)


for _m in (apply_delta_mod, apply_lora_mod, make_delta_mod):
    _m.AutoTokenizer = FileTokenizer
apply_delta = apply_delta_mod.apply_delta
apply_lora = apply_lora_mod.apply_lora


def keep_only_weights_and_config(d):
    """Drops what we do not compare (tokenizer files: the test checks that ours
    are the source model's, byte for byte)."""
    for f in os.listdir(d):
        if f not in ("config.json", "model.safetensors", "adapter_model.safetensors", "adapter_config.json",
                     "generation_config.json"):
            os.remove(os.path.join(d, f))


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    torch.manual_seed(1234)
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    base = LlamaForCausalLM(cfg).to(torch.float16)
    base.save_pretrained(os.path.join(OUT, "base"))

    target = LlamaForCausalLM(cfg).to(torch.float16)
    target.load_state_dict(base.state_dict())
    with torch.no_grad():
        for p in target.parameters():
            p.add_((torch.randn_like(p, dtype=torch.float32) * 0.01).to(torch.float16))
    tdir = os.path.join(OUT, "target")
    target.save_pretrained(tdir)
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(os.path.join(ROOT, "tests", "data", "tokenizer", "spm", f), tdir)

    # fschat make_delta reads its module-level `args` for --hub-repo-id
    make_delta_mod.args = type("A", (), {"hub_repo_id": None})()
    make_delta_mod.make_delta(os.path.join(OUT, "base"), tdir, os.path.join(OUT, "delta_fs"))
    keep_only_weights_and_config(os.path.join(OUT, "delta_fs"))
    for f in TOK_FILES:  # the delta ships the target's tokenizer
        shutil.copy(os.path.join(tdir, f), os.path.join(OUT, "delta_fs"))
    apply_delta(os.path.join(OUT, "base"), os.path.join(OUT, "target_fs"), os.path.join(OUT, "delta_fs"))
    keep_only_weights_and_config(os.path.join(OUT, "target_fs"))

    # LoRA adapters (random B: PEFT initialises B to zero, which would merge to the base)
    def adapter(path, **kw):
        m = LlamaForCausalLM(cfg)
        m.load_state_dict({k: v.float() for k, v in base.state_dict().items()})
        pm = get_peft_model(m, LoraConfig(init_lora_weights=False, lora_dropout=0.0, **kw))
        torch.manual_seed(99)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn_like(p) * 0.1)
        pm.save_pretrained(path)
        keep_only_weights_and_config(path)

    adapter(os.path.join(OUT, "lora"), r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"])
    apply_lora(os.path.join(OUT, "base"), os.path.join(OUT, "lora_merged_fs"), os.path.join(OUT, "lora"))
    keep_only_weights_and_config(os.path.join(OUT, "lora_merged_fs"))

    adapter(os.path.join(OUT, "lora_rs"), r=8, lora_alpha=4, use_rslora=True,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    b16 = LlamaForCausalLM.from_pretrained(os.path.join(OUT, "base"), dtype=torch.float16)
    merged = PeftModel.from_pretrained(b16, os.path.join(OUT, "lora_rs")).merge_and_unload()
    merged.save_pretrained(os.path.join(OUT, "lora_rs_merged"))
    keep_only_weights_and_config(os.path.join(OUT, "lora_rs_merged"))
    total = sum(os.path.getsize(f) for f in glob.glob(os.path.join(OUT, "*", "*")))
    print(f"wrote {OUT} ({total // 1024} KB)")


if __name__ == "__main__":
    main()
