#!/usr/bin/env python3
"""make_embed_golden.py: reference sentence embeddings of the default model
(SmolLM2-135M-Instruct, Q4_1 GGUF) as FastChat's model_worker computes them,
by Hugging Face transformers.

FastChat (fastchat/serve/model_worker.py, get_embeddings /
__process_embed_chunk) for a Llama-family model: input_ids = tokenizer(text),
hidden = model(input_ids, output_hidden_states=True).hidden_states[-1] (the
residual stream after the final RMSNorm), summed over the tokens and divided
by their number, then L2-normalized (F.normalize). transformers loads the GGUF
with from_pretrained(dir, gguf_file=name), dequantized to float32, the
tokenizer from the same file.

Writes tests/data/smollm2/embed_golden.npz:
  texts (N,) str            the inputs
  token_num (N,) int32      tokens of each, as the tokenizer counts them
  embedding (N, 576) f32    the normalized mean hidden state

Run (a venv with torch, transformers and gguf; not the test venv):
  /work/gvenv/bin/python tools/golden/make_embed_golden.py [MODEL.gguf]
"""
import os
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
TEXTS = [
    "The cat sat on the mat.",
    "Bonjour le monde, comment allez-vous aujourd'hui ?",
    "def add(a, b):\n    return a + b\n",
    "日本語のテキストも埋め込みます。",
    "x",
    "   leading and trailing spaces   ",
    "Emoji 🙂 and accents: naïve café, Straße.",
    " ".join(["A longer text that spans a few hundred tokens, so the mean runs over many positions."] * 24),
]


def main():
    gguf = Path(sys.argv[1] if len(sys.argv) > 1 else
                os.path.expanduser("~/.cache/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
    model.eval()
    embs, counts = [], []
    with torch.no_grad():
        for t in TEXTS:
            ids = tok(t, return_tensors="pt").input_ids
            h = model(ids, output_hidden_states=True).hidden_states[-1][0]
            e = h.sum(0) / ids.shape[1]
            e = torch.nn.functional.normalize(e, p=2, dim=0)
            embs.append(e.numpy().astype(np.float32))
            counts.append(ids.shape[1])
    out = ROOT / "tests" / "data" / "smollm2" / "embed_golden.npz"
    np.savez_compressed(out, texts=np.array(TEXTS), token_num=np.array(counts, dtype=np.int32),
                        embedding=np.stack(embs))
    print(f"wrote {out}: {len(TEXTS)} texts, tokens {counts}")


if __name__ == "__main__":
    main()
