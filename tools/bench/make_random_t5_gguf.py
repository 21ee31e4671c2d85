#!/usr/bin/env python3
"""make_random_t5_gguf.py OUT [--shape large|base|small] [--type f16|f32]:
a random-weight T5 GGUF of a real Flan-T5 shape for speed runs against
llama.cpp (scripts/bench_families.sh, family t5).

The metadata is what llama.cpp's converter writes for a T5 model
(tests/data/t5_gguf/t5_chat_meta.gguf.gz: the tokenizer, a 1000-piece Unigram
model with FastChat-T5's added tokens, and the t5.* keys), with the t5.* sizes
set to the shape and the vocabulary padded with UNUSED tokens "<unused_N>" up
to Flan-T5's 32128 rows, so that both engines read the same file and run the
same amount of work per token as the real model (prompts tokenize with the
1000 real pieces). Tensor names and layouts follow the converter's
(tests/data/t5_gguf/tensors.json): matrices in --type, norms in f32, the
relative attention biases of block 0 (buckets x heads) in f32, an untied
output head. The weights are normal with small scales from a fixed seed:
meaningless text, realistic cost.

Needs numpy and the `gguf` package (the test venv has both).
"""
import argparse
import gzip
import os
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
META = ROOT / "tests" / "data" / "t5_gguf" / "t5_chat_meta.gguf.gz"

# d_model, d_kv, heads, d_ff, layers (encoder = decoder), vocab: google/flan-t5-*
SHAPES = {
    "small": (512, 64, 6, 1024, 8, 32128),
    "base": (768, 64, 12, 2048, 12, 32128),
    "large": (1024, 64, 16, 2816, 24, 32128),
}
SIZE_KEYS = ("t5.embedding_length", "t5.feed_forward_length", "t5.block_count", "t5.decoder_block_count",
             "t5.attention.head_count", "t5.attention.key_length", "t5.attention.value_length")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="large")
    ap.add_argument("--type", choices=("f16", "f32"), default="f16")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    C, HS, NH, FF, L, V = SHAPES[a.shape]
    inner = NH * HS
    wtype = np.float16 if a.type == "f16" else np.float32

    with tempfile.TemporaryDirectory() as td:
        mp = os.path.join(td, "meta.gguf")
        Path(mp).write_bytes(gzip.decompress(META.read_bytes()))
        r = gguf.GGUFReader(mp)
        fields = {f.name: f for f in r.fields.values()}
        tokens = list(fields["tokenizer.ggml.tokens"].contents())
        scores = list(fields["tokenizer.ggml.scores"].contents())
        types = list(fields["tokenizer.ggml.token_type"].contents())
        if len(tokens) > V:
            sys.exit(f"the metadata's vocabulary ({len(tokens)}) is larger than the shape's ({V})")
        for i in range(len(tokens), V):
            tokens.append(f"<unused_{i}>")
            scores.append(0.0)
            types.append(int(gguf.TokenType.UNUSED))

        w = gguf.GGUFWriter(a.out, "t5")
        sizes = {"t5.embedding_length": C, "t5.feed_forward_length": FF, "t5.block_count": L,
                 "t5.decoder_block_count": L, "t5.attention.head_count": NH, "t5.attention.key_length": HS,
                 "t5.attention.value_length": HS}
        for name, f in fields.items():
            if name.startswith("GGUF.") or name == "general.architecture":
                continue
            vtype = f.types[0]
            sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            if name in sizes:
                w.add_key_value(name, sizes[name], vtype)
            elif name == "tokenizer.ggml.tokens":
                w.add_token_list(tokens)
            elif name == "tokenizer.ggml.scores":
                w.add_token_scores(scores)
            elif name == "tokenizer.ggml.token_type":
                w.add_token_types(types)
            elif name == "general.name":
                w.add_key_value(name, f"random flan-t5-{a.shape}", vtype)
            elif name == "general.size_label":
                continue
            elif name == "general.file_type":
                w.add_key_value(name, 1 if a.type == "f16" else 0, vtype)
            else:
                w.add_key_value(name, f.contents(), vtype, sub_type=sub)
        assert all(k in fields for k in SIZE_KEYS)

        rng = np.random.default_rng(a.seed)

        def mat(rows, cols, std=0.02):
            return (rng.standard_normal((rows, cols), dtype=np.float32) * std).astype(wtype)

        def norm():
            return np.ones(C, dtype=np.float32)

        def rel_b():
            return (rng.standard_normal((32, NH), dtype=np.float32) * 0.1).astype(np.float32)

        w.add_tensor("token_embd.weight", mat(V, C, 0.5))
        for part in ("enc", "dec"):
            for l in range(L):
                p = f"{part}.blk.{l}."
                for k in ("q", "k", "v"):
                    w.add_tensor(p + f"attn_{k}.weight", mat(inner, C))
                w.add_tensor(p + "attn_o.weight", mat(C, inner))
                w.add_tensor(p + "attn_norm.weight", norm())
                if l == 0:
                    w.add_tensor(p + "attn_rel_b.weight", rel_b())
                if part == "dec":
                    for k in ("q", "k", "v"):
                        w.add_tensor(p + f"cross_attn_{k}.weight", mat(inner, C))
                    w.add_tensor(p + "cross_attn_o.weight", mat(C, inner))
                    w.add_tensor(p + "cross_attn_norm.weight", norm())
                w.add_tensor(p + "ffn_gate.weight", mat(FF, C))
                w.add_tensor(p + "ffn_up.weight", mat(FF, C))
                w.add_tensor(p + "ffn_down.weight", mat(C, FF))
                w.add_tensor(p + "ffn_norm.weight", norm())
            w.add_tensor(f"{part}.output_norm.weight", norm())
        w.add_tensor("output.weight", mat(V, C))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    n = 2 * V * C + L * (4 * inner * C + 3 * FF * C) + L * (8 * inner * C + 3 * FF * C)
    print(f"wrote {a.out}: random flan-t5-{a.shape} shape, {n / 1e6:.0f}M parameters, {a.type}")


if __name__ == "__main__":
    main()
