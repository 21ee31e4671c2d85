#!/usr/bin/env python3
"""make_unigram_byte_fallback.py: a small SentencePiece Unigram tokenizer with
byte fallback, in tests/data/unigram_bf/ (for src/tokenizer/unigram.c's
<0xNN> path; T5's own tokenizer has no byte pieces).

  spiece.model        sentencepiece's trainer, model_type=unigram, 800 pieces,
                      byte_fallback=True (256 <0x00>..<0xFF> BYTE pieces),
                      normalization_rule_name=identity (no charsmap, so the
                      file stays small), character_coverage 0.999, pad 0 /
                      eos 1 / unk 2 / bos 3, trained on the mostly-ASCII lines
                      of tests/data/tokenizer/corpus.jsonl: the corpus's other
                      scripts, emoji and rare symbols are outside the vocabulary
                      and come out as bytes.
  tokenizer.json.gz   transformers' SpmConverter for it with
                      handle_byte_fallback (Unigram(byte_fallback=true)), the
                      decoder set to Sequence[ByteFallback, Metaspace] so that
                      byte pieces decode to text.

tests/py/test_unigram_byte_fallback.py compares fastchat's ids and text with
`sentencepiece` and `tokenizers` live, so no golden ids are stored.

Usage: /work/gvenv/bin/python tools/golden/make_unigram_byte_fallback.py
Needs sentencepiece, transformers, tokenizers and protobuf (not part of the CI venv).
"""
import gzip
import json
import os
import shutil
import tempfile

import sentencepiece as spm
from tokenizers import decoders
from transformers.convert_slow_tokenizer import SpmConverter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "unigram_bf")


class ByteFallbackConverter(SpmConverter):
    handle_byte_fallback = True


def main():
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    lines = [json.loads(l)["text"] for l in open(os.path.join(ROOT, "tests", "data", "tokenizer", "corpus.jsonl"),
                                                 encoding="utf-8")]
    plain = [l for l in lines if sum(ord(c) > 127 for c in l) <= len(l) // 20]
    train = os.path.join(tmp, "train.txt")
    with open(train, "w", encoding="utf-8") as f:
        f.write("\n".join(l.replace("\n", " ").replace("\r", " ") for l in plain) + "\n")
    prefix = os.path.join(tmp, "spiece")
    spm.SentencePieceTrainer.train(input=train, model_prefix=prefix, model_type="unigram", vocab_size=800,
                                   normalization_rule_name="identity", byte_fallback=True,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=3, num_threads=1, minloglevel=2,
                                   hard_vocab_limit=False, character_coverage=0.999)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

    class Orig:  # what SpmConverter reads of a slow tokenizer
        vocab_file = prefix + ".model"
        legacy = True
        add_prefix_space = True

        def convert_tokens_to_ids(self, t):
            return sp.piece_to_id(t)

    tok = ByteFallbackConverter(Orig()).converted()
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement="\u2581", prepend_scheme="always")])
    j = json.loads(tok.to_str())
    assert j["model"]["type"] == "Unigram" and j["model"]["byte_fallback"] is True, j["model"].keys()
    with gzip.GzipFile(os.path.join(OUT, "tokenizer.json.gz"), "wb", mtime=0) as f:
        f.write(tok.to_str().encode())
    shutil.copy(prefix + ".model", os.path.join(OUT, "spiece.model"))
    shutil.rmtree(tmp)
    print("wrote", OUT, "vocab", tok.get_vocab_size(), "bytes", sum(sp.is_byte(i) for i in range(sp.vocab_size())))


if __name__ == "__main__":
    main()
