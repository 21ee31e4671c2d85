#!/usr/bin/env python3
"""make_fuzz_tokenizer_gguf.py: seeds for fuzz/fuzz_tokenizer_gguf.c in
tests/data/fuzz/fuzz_tokenizer_gguf/: GGUF files with only tokenizer
metadata, small enough for the fuzzer (a few KB each).

  t5_charsmap.gguf   tokenizer.ggml.model "t5" as llama.cpp's converter
                     writes it (T5Model.set_vocab), from
                     tests/data/fuzz/fuzz_tokenizer_spm/unigram_charsmap.model
                     (a small Unigram model with a precompiled_charsmap), plus
                     a USER_DEFINED "\\n" and two UNUSED [PAD<id>] ids
  t5_bytes.gguf      the same from tests/data/unigram_bf/spiece.model cut to
                     its first 300 pieces (byte pieces <0x00>..<0xFF>
                     included), no charsmap
  llama.gguf         a "llama" (SentencePiece BPE) vocabulary of a few pieces

Usage: /work/gvenv/bin/python tools/golden/make_fuzz_tokenizer_gguf.py
Needs sentencepiece with protobuf, and gguf (gvenv).
"""
import os

import gguf
from sentencepiece import sentencepiece_model_pb2 as pb

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "fuzz", "fuzz_tokenizer_gguf")
TYPE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}  # sentencepiece piece type -> GGUF token type (same numbers)


def t5_file(model_path, out, limit=None, extra=()):
    m = pb.ModelProto()
    m.ParseFromString(open(model_path, "rb").read())
    pieces = list(m.pieces)[:limit] if limit else list(m.pieces)
    tokens = [p.piece.encode() for p in pieces] + [e[0].encode() for e in extra]
    scores = [p.score for p in pieces] + [e[1] for e in extra]
    types = [TYPE.get(p.type, 1) for p in pieces] + [e[2] for e in extra]
    w = gguf.GGUFWriter(out, "t5")
    w.add_tokenizer_model("t5")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_add_space_prefix(m.normalizer_spec.add_dummy_prefix)
    w.add_remove_extra_whitespaces(m.normalizer_spec.remove_extra_whitespaces)
    if m.normalizer_spec.precompiled_charsmap:
        w.add_precompiled_charsmap(m.normalizer_spec.precompiled_charsmap)
    w.add_eos_token_id(1)
    w.add_pad_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    t5_file(os.path.join(ROOT, "tests", "data", "fuzz", "fuzz_tokenizer_spm", "unigram_charsmap.model"),
            os.path.join(OUT, "t5_charsmap.gguf"),
            extra=[("\n", -1000.0, 4), ("[PAD1]", -1000.0, 5), ("[PAD2]", -1000.0, 5)])
    t5_file(os.path.join(ROOT, "tests", "data", "unigram_bf", "spiece.model"), os.path.join(OUT, "t5_bytes.gguf"),
            limit=300)
    w = gguf.GGUFWriter(os.path.join(OUT, "llama.gguf"), "llama")
    toks = [b"<unk>", b"<s>", b"</s>", b"\xe2\x96\x81", b"a", b"b", b"\xe2\x96\x81a", b"ab", b"<0x0A>"]
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -2.0, -0.5, -0.7, 0.0])
    w.add_token_types([2, 3, 3, 1, 1, 1, 1, 1, 6])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
