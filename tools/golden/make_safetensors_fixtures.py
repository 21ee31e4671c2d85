#!/usr/bin/env python3
"""
make_safetensors_fixtures.py: writes the golden files that tests/unit/test_safetensors.c
reads, using the real `safetensors` and `transformers` packages as the reference.

    /root/refvenv/venv/bin/python tools/golden/make_safetensors_fixtures.py [OUT_DIR]

OUT_DIR defaults to tests/data/safetensors. It receives:
  basic.safetensors        f32/f16/bf16 tensors whose values follow formulas the C test
                           recomputes, a scalar, an empty tensor, I64/U8/BOOL/F64 tensors
                           (loaded as type -1) and a __metadata__ block.
  f16.safetensors          one (3, 5) F16 matrix, nothing else.
  sharded/                 a tiny LlamaForCausalLM written by save_pretrained with a small
                           max_shard_size: model-0000N-of-0000M.safetensors plus
                           model.safetensors.index.json and config.json. Every parameter
                           is filled with (arange(numel) % 1000) * 0.25 before saving.
  sharded/expected.json    name -> shape (as torch reports it) for every saved tensor.
  configs/<case>.json      config.json exactly as transformers' save_pretrained writes it
                           for LlamaConfig (plain, GQA, linear rope scaling, llama3 rope
                           scaling, tied embeddings), Qwen2Config and MistralConfig.
  configs/expected.json    the fields of each config as transformers reads them back
                           (AutoConfig.from_pretrained), which the C parser must reproduce.

Everything is deterministic; the whole folder stays well under 100 KB.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import save_file
from transformers import (AutoConfig, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          Qwen2Config)


def basic_tensors():
    # Values chosen to be exact in every stored type, so the C test can compare
    # with ==: small multiples of 1/4 (f32, f16) and 1/2 (bf16, 8 mantissa bits).
    t = {}
    t["f32.matrix"] = (torch.arange(6, dtype=torch.float32) * 0.25 - 0.5).reshape(2, 3)
    t["f32.scalar"] = torch.tensor(3.5, dtype=torch.float32)
    t["f32.empty"] = torch.zeros(0, 3, dtype=torch.float32)
    t["f16.vector"] = (torch.arange(8, dtype=torch.float32) * -0.75 + 1.0).to(torch.float16)
    t["bf16.cube"] = (torch.arange(24, dtype=torch.float32) * 0.5 - 4.0).reshape(2, 3, 4).to(torch.bfloat16)
    t["f32.4d"] = (torch.arange(16, dtype=torch.float32)).reshape(1, 2, 2, 4)
    t["i64.ids"] = torch.tensor([7, -1, 123456789012], dtype=torch.int64)
    t["u8.bytes"] = torch.tensor([0, 1, 2, 254, 255], dtype=torch.uint8)
    t["bool.mask"] = torch.tensor([True, False, True])
    t["f64.pair"] = torch.tensor([1.5, -2.25], dtype=torch.float64)
    return t


def write_basic(out):
    save_file(basic_tensors(), os.path.join(out, "basic.safetensors"),
              metadata={"format": "pt", "note": "fastchat-c fixture"})
    f16 = (torch.arange(15, dtype=torch.float32) * 0.125 - 1.0).reshape(3, 5).to(torch.float16)
    save_file({"w": f16}, os.path.join(out, "f16.safetensors"))


def write_sharded(out):
    cfg = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      tie_word_embeddings=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.arange(p.numel(), dtype=torch.float32) % 1000 * 0.25).reshape(p.shape))
    d = os.path.join(out, "sharded")
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, max_shard_size="3KB", safe_serialization=True)
    # Only what the test reads is kept (generation_config.json is not ours to test).
    for f in os.listdir(d):
        if not (f.endswith(".safetensors") or f in ("model.safetensors.index.json", "config.json")):
            os.remove(os.path.join(d, f))
    shards = [f for f in os.listdir(d) if f.endswith(".safetensors")]
    assert len(shards) >= 2, "fixture must be sharded"
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


CONFIGS = {
    "llama": LlamaConfig(),
    "llama_gqa": LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                             num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                             max_position_embeddings=8192, rms_norm_eps=1e-5,
                             rope_theta=500000.0, bos_token_id=128000, eos_token_id=[128001, 128009]),
    "llama_linear": LlamaConfig(hidden_size=1024, intermediate_size=2816, num_hidden_layers=4,
                                num_attention_heads=16, max_position_embeddings=4096,
                                rope_scaling={"type": "linear", "factor": 4.0}),
    "llama3": LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                          num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                          max_position_embeddings=131072, rms_norm_eps=1e-5,
                          rope_theta=500000.0, bos_token_id=128000, eos_token_id=128001,
                          rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192}),
    "llama_tied": LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                              num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                              max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                              tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
    "qwen2": Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
                         tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645),
    "mistral": MistralConfig(),
}


def rope_fields(c):
    rp = getattr(c, "rope_parameters", None) or {}
    typ = rp.get("rope_type", rp.get("type", "default"))
    return {
        "rope_theta": rp.get("rope_theta", getattr(c, "rope_theta", 10000.0)),
        "rope_type": typ,
        "factor": rp.get("factor"),
        "low_freq_factor": rp.get("low_freq_factor"),
        "high_freq_factor": rp.get("high_freq_factor"),
        "original_max_position_embeddings": rp.get("original_max_position_embeddings"),
    }


def write_configs(out):
    d = os.path.join(out, "configs")
    os.makedirs(d, exist_ok=True)
    expected = {}
    for name, cfg in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            cfg.save_pretrained(tmp)
            shutil.copy(os.path.join(tmp, "config.json"), os.path.join(d, name + ".json"))
            c = AutoConfig.from_pretrained(tmp)
        eos = c.eos_token_id
        if isinstance(eos, list):
            eos = eos[0]
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        e = {
            "model_type": c.model_type,
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads,
            "num_key_value_heads": c.num_key_value_heads,
            "head_dim": head_dim,
            "intermediate_size": c.intermediate_size,
            "max_position_embeddings": c.max_position_embeddings,
            "sliding_window": getattr(c, "sliding_window", None),
            "rms_norm_eps": c.rms_norm_eps,
            "tie_word_embeddings": c.tie_word_embeddings,
            "bos_token_id": c.bos_token_id if c.bos_token_id is not None else -1,
            "eos_token_id": eos if eos is not None else -1,
        }
        e.update(rope_fields(c))
        expected[name] = e
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "safetensors")
    os.makedirs(out, exist_ok=True)
    write_basic(out)
    write_sharded(out)
    write_configs(out)


if __name__ == "__main__":
    main()
