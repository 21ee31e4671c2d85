#!/usr/bin/env python3
"""make_t5_tokenizer.py: the small T5-style SentencePiece Unigram tokenizer in
tests/data/t5_tok/ (there is no Hub access to fetch google/flan-t5's, so a real
one is trained here with the same settings).

  spiece.model.gz     sentencepiece's trainer, model_type=unigram, 1000 pieces,
                      normalization_rule_name=nmt_nfkc (T5's), pad 0 / eos 1 /
                      unk 2 / no bos (T5's ids), trained on the mostly-ASCII
                      lines of tests/data/tokenizer/corpus.jsonl
  tokenizer.json.gz   transformers' T5Converter (what T5TokenizerFast does with a
                      spiece.model): Unigram vocab + <extra_id_0..99> (score 0),
                      Precompiled(charsmap) + Strip(right) + Replace(" {2,}", "▁")
                      normalizer, Metaspace pre-tokenizer and decoder,
                      "$A </s>" post-processor; then the 100 <extra_id_N> as
                      special added tokens and FastChat-T5's extra tokens
                      (fastchat/train/train_flant5.py: "<", "{", "\\n", "}", "`",
                      " ", "\\\\", "^", "\\t", AddedToken(normalized=False)), as
                      `tokenizer.add_tokens` adds them.
  tokenizer_config.json  eos/unk/pad names, as T5's.

Both files are gzipped (the nmt_nfkc charsmap is ~240 KB); tests/py/test_t5_tokenizer.py
unpacks them into a temporary folder and compares fastchat against `tokenizers`
and `sentencepiece` live, so no golden ids are stored.

Usage: /work/gvenv/bin/python tools/golden/make_t5_tokenizer.py
Needs sentencepiece, transformers, tokenizers and protobuf (not part of the CI venv).
"""
import gzip
import json
import os
import shutil
import tempfile

import sentencepiece as spm
from tokenizers import AddedToken
from transformers.convert_slow_tokenizer import T5Converter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "t5_tok")
FASTCHAT_T5_TOKENS = ["<", "{", "\n", "}", "`", " ", "\\", "^", "\t"]


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
    spm.SentencePieceTrainer.train(input=train, model_prefix=prefix, model_type="unigram", vocab_size=1000,
                                   normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   num_threads=1, minloglevel=2, hard_vocab_limit=False,
                                   character_coverage=0.9995)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")

    class Orig:  # what T5Converter reads of a slow T5Tokenizer
        vocab_file = prefix + ".model"
        _extra_ids = 100
        legacy = True
        add_prefix_space = True

        def convert_tokens_to_ids(self, t):
            return sp.piece_to_id(t)

    tok = T5Converter(Orig()).converted()
    tok.add_special_tokens([AddedToken(f"<extra_id_{i}>", normalized=False, special=True) for i in range(100)])
    tok.add_tokens([AddedToken(x, normalized=False) for x in FASTCHAT_T5_TOKENS])
    with gzip.GzipFile(os.path.join(OUT, "tokenizer.json.gz"), "wb", mtime=0) as f:
        f.write(tok.to_str().encode())
    with open(prefix + ".model", "rb") as src, gzip.GzipFile(os.path.join(OUT, "spiece.model.gz"), "wb",
                                                             mtime=0) as f:
        f.write(src.read())
    with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "extra_ids": 100,
                   "model_max_length": 512, "tokenizer_class": "T5Tokenizer"}, f, indent=2)
    shutil.rmtree(tmp)
    print("wrote", OUT, "vocab", tok.get_vocab_size())


if __name__ == "__main__":
    main()
