#!/usr/bin/env python3
"""make_torch_bin_fixtures.py: PyTorch .bin checkpoints for the C reader
(src/format/torch_bin.c), written by torch itself, in tests/data/torch_bin/.

Run:  /work/gvenv/bin/python tools/golden/make_torch_bin_fixtures.py [--out DIR]
Needs torch, transformers and safetensors (not part of the CI venv).

Models (one seeded random LlamaForCausalLM, hidden 32, 2 layers, vocab 96,
GQA 4/2, untied), saved in three dtypes:
  <dtype>_bin/      config.json + pytorch_model.bin, as transformers 4's
                    save_pretrained(safe_serialization=False) wrote it (a
                    plain dict of contiguous tensors, torch.save). transformers
                    5 no longer writes .bin, so the same steps are done here
                    with huggingface_hub's split_torch_state_dict_into_shards,
                    as transformers 4 did.
  <dtype>_st/       config.json + model.safetensors of the same weights
                    (save_pretrained), for the bit-for-bit comparison.
  f16_legacy/       the f16 weights in the legacy format (torch.save with
                    _use_new_zipfile_serialization=False), as pytorch_model.bin.
  bf16_sharded/     the bf16 weights in shards of at most 12 KB each:
                    pytorch_model-0000i-of-0000n.bin + pytorch_model.bin.index.json.
  <dtype>_bin/reference.npz  prompt (24 ids) and logits (24 x 96, f32) that
                    transformers computes from the .bin folder, loaded with
                    from_pretrained(dtype=float32) (exact upcast of f16/bf16).
with dtype in f32, f16, bf16.
  llama_spm_bin/    tests/data/tiny_tok/llama_spm (f16, vocab 2000, made by
                    make_tiny_with_tokenizer.py) re-saved as pytorch_model.bin,
                    so that a test can serve it with the tokenizer files of
                    tests/data/tokenizer/spm (the Vicuna folder layout).

misc/ (small state dicts with values i * 0.25 - 3 recomputed by the C test):
  statedict_tied.bin   torch.save(module.state_dict()) of a module with two
                       parameters sharing one storage: an OrderedDict with
                       _metadata (BUILD), memo references (BINGET).
  protocol4.bin        torch.save(..., pickle_protocol=4): FRAME, MEMOIZE,
                       SHORT_BINUNICODE, STACK_GLOBAL... also a tensor with a
                       storage offset (a slice .clone()d is contiguous, so the
                       slice is taken of a saved storage instead: offset 3).
  noncontig.bin        a transposed view: refused (not contiguous).
  legacy.bin           _use_new_zipfile_serialization=False (the torch < 1.6
                       format: five pickles, then the raw storages): x f32
                       [2, 3] and x2 sharing its storage, h f16 [5], y bf16
                       [10] and y_tail = y[3:] (offset 3), an int 'step'.
  evil_system.bin      a dict whose pickle calls os.system through __reduce__.
  evil_eval.bin        the same with builtins.eval.
  zip64.bin            protocol4.bin's entries rewritten as a ZIP64 archive (the
                       form torch writes past 4 GiB, e.g. Vicuna-7B's 9.9 GB
                       shard): 0xFFFFFFFF sizes and offsets with ZIP64 extra
                       fields, ZIP64 end record and locator. torch.load reads
                       it back to the same tensors (checked here).
  subclass.bin         a torch.Tensor subclass (_rebuild_from_type_v2 and the
                       class __main__.MyTensor): refused, not a plain state dict.
The evil files are written by torch.save itself; the commands they would
run only create a marker file, which the tests check never appears.
"""
import argparse
import builtins
import json
import os
import shutil
import struct
import zipfile

import numpy as np
import torch
from huggingface_hub import split_torch_state_dict_into_shards
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
CFG = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
           bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, rms_norm_eps=1e-5)
MARKER = "/tmp/fastchat_torch_bin_pwned"


def save_bin(model, out, max_shard_size="50GB"):
    """transformers 4.x save_pretrained(safe_serialization=False), minus the hub bits."""
    os.makedirs(out, exist_ok=True)
    model.config.save_pretrained(out)
    sd = model.state_dict()
    split = split_torch_state_dict_into_shards(sd, filename_pattern="pytorch_model{suffix}.bin",
                                               max_shard_size=max_shard_size)
    for fname, names in split.filename_to_tensors.items():
        shard = {n: sd[n].contiguous() for n in names}
        torch.save(shard, os.path.join(out, fname))
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": split.tensor_to_filename}
        with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
            f.write(json.dumps(index, indent=2, sort_keys=True) + "\n")


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


class MyTensor(torch.Tensor):
    pass


def seq(n, dtype):
    return (torch.arange(n, dtype=torch.float32) * 0.25 - 3).to(dtype)


def misc(out):
    os.makedirs(out, exist_ok=True)
    # tied: two parameters share one storage, module.state_dict() keeps _metadata
    m = torch.nn.Module()
    m.a = torch.nn.Parameter(seq(12, torch.float32).reshape(3, 4))
    m.b = m.a
    m.register_buffer("c", seq(5, torch.float16))
    torch.save(m.state_dict(), os.path.join(out, "statedict_tied.bin"))
    # protocol 4, and a tensor viewing its storage at an offset
    base = seq(10, torch.bfloat16)
    torch.save({"x": seq(6, torch.float32).reshape(2, 3), "y": base, "y_tail": base[3:],
                "step": 7}, os.path.join(out, "protocol4.bin"), pickle_protocol=4)
    zip64_copy(os.path.join(out, "protocol4.bin"), os.path.join(out, "zip64.bin"))
    torch.save({"t": seq(6, torch.float32).reshape(2, 3).t()}, os.path.join(out, "noncontig.bin"))
    lx, lb = seq(6, torch.float32).reshape(2, 3), seq(10, torch.bfloat16)
    torch.save({"x": lx, "x2": lx, "h": seq(5, torch.float16), "y": lb, "y_tail": lb[3:], "step": 7},
               os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)
    torch.save({"x": seq(4, torch.float32), "payload": Evil(os.system, f"touch {MARKER}")},
               os.path.join(out, "evil_system.bin"))
    torch.save({"x": seq(4, torch.float32), "payload": Evil(builtins.eval, f"open('{MARKER}','w')")},
               os.path.join(out, "evil_eval.bin"))
    torch.save({"x": seq(4, torch.float32).as_subclass(MyTensor)}, os.path.join(out, "subclass.bin"))


def zip64_copy(src, dst):
    """Rewrites the stored zip src as a ZIP64 archive with 64-byte aligned data."""
    with zipfile.ZipFile(src) as z:
        items = [(i.filename.encode(), z.read(i.filename)) for i in z.infolist()]
    out, central = bytearray(), bytearray()
    for name, data in items:
        off = len(out)
        z64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        pad = (-(off + 30 + len(name) + len(z64) + 4)) % 64
        extra = z64 + struct.pack("<HH", 0xFEFF, pad) + b"\0" * pad
        crc = zipfile.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034b50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(name), len(extra)) + name + extra
        assert len(out) % 64 == 0
        out += data
        cx = struct.pack("<HHQQQ", 1, 24, len(data), len(data), off)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(name), len(cx), 0, 0, 0, 0, 0xFFFFFFFF) + name + cx
    cd_off = len(out)
    out += central
    e64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064b50, 44, 45, 45, 0, 0, len(items), len(items), len(central), cd_off)
    out += struct.pack("<IIQI", 0x07064b50, 0, e64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(dst, "wb") as f:
        f.write(out)
    a, b = torch.load(src, weights_only=False), torch.load(dst, weights_only=False)  # our own files
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if torch.is_tensor(a[k]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/data/torch_bin"))
    out = os.path.abspath(ap.parse_args().out)
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(**CFG)).eval()
    # larger-than-default weights so that the logits spread out (init std 0.02 gives ~flat logits)
    with torch.no_grad():
        for p in base.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
            else:
                p.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, CFG["vocab_size"], (24,), generator=g)
    for name, dt in DTYPES.items():
        model = LlamaForCausalLM(LlamaConfig(**CFG)).eval()
        model.load_state_dict(base.state_dict())
        model = model.to(dt)
        model.config.dtype = dt
        save_bin(model, os.path.join(out, f"{name}_bin"))
        model.save_pretrained(os.path.join(out, f"{name}_st"))
        if name == "f16":
            os.makedirs(os.path.join(out, "f16_legacy"))
            model.config.save_pretrained(os.path.join(out, "f16_legacy"))
            torch.save({k: v.contiguous() for k, v in model.state_dict().items()},
                       os.path.join(out, "f16_legacy", "pytorch_model.bin"), _use_new_zipfile_serialization=False)
        if name == "bf16":
            save_bin(model, os.path.join(out, "bf16_sharded"), max_shard_size="12KB")
        ref = AutoModelForCausalLM.from_pretrained(os.path.join(out, f"{name}_bin"), dtype=torch.float32,
                                                   attn_implementation="eager").eval()
        for k, v in ref.state_dict().items():  # transformers read what we wrote
            assert torch.equal(v, model.state_dict()[k].float()), k
        with torch.no_grad():
            logits = ref(prompt[None]).logits[0].float().numpy()
        np.savez(os.path.join(out, f"{name}_bin", "reference.npz"), prompt=prompt.numpy().astype(np.int32),
                 logits=logits.astype(np.float32))
    spm = os.path.join(os.path.dirname(out), "tiny_tok", "llama_spm")
    m = AutoModelForCausalLM.from_pretrained(spm)  # its own dtype, float16
    assert next(m.parameters()).dtype == torch.float16
    save_bin(m, os.path.join(out, "llama_spm_bin"))
    misc(os.path.join(out, "misc"))
    n = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out}: {n} bytes")


if __name__ == "__main__":
    main()
