"""Unigram byte fallback (src/tokenizer/unigram.c): a run of characters the
vocabulary cannot cover becomes the <0xNN> pieces of its UTF-8 bytes, as
sentencepiece (--byte_fallback) and Hugging Face `tokenizers`
(Unigram "byte_fallback": true) do, and decodes back to the text.

The tokenizer is tests/data/unigram_bf (tools/golden/make_unigram_byte_fallback.py):
a real sentencepiece Unigram model with 256 byte pieces, trained on the
mostly-ASCII lines of the tokenizer corpus, so the corpus's other scripts and
emoji fall back to bytes; and transformers' converter output for it. Both
references run live on the whole corpus (tests/data/tokenizer/corpus.jsonl);
fastchat gets all texts in one call joined by an added separator token, and
the ids must be the references' joined by that token's id.
"""
import gzip
import json
import os
import random
import shutil
from pathlib import Path

import pytest

from test_t5_tokenizer import BIN, cli_file_ids, cli_text, corpus, first_diff

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "unigram_bf"

tokenizers = pytest.importorskip("tokenizers")
spm = pytest.importorskip("sentencepiece")

SEP = "<|sep|>"
SEP_ID = 800


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    assert os.path.exists(BIN), f"{BIN} missing: build it with `make` (or set FASTCHAT_BIN)"
    d = tmp_path_factory.mktemp("unigram_bf")
    tj = json.loads(gzip.decompress((DATA / "tokenizer.json.gz").read_bytes()))
    assert tj["model"]["byte_fallback"] is True
    tj["added_tokens"].append({"id": SEP_ID, "content": SEP, "single_word": False, "lstrip": False,
                               "rstrip": False, "normalized": False, "special": True})
    (d / "hf").mkdir()
    (d / "hf" / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    (d / "spm").mkdir()
    shutil.copy(DATA / "spiece.model", d / "spm")
    (d / "spm" / "added_tokens.json").write_text(json.dumps({SEP: SEP_ID}))
    return d


def compare(folder, lines, want, owner, tmp_path, *flags):
    f = tmp_path / "corpus.txt"
    f.write_bytes(SEP.join(lines).encode())
    got = cli_file_ids(folder, f, "--no-special", *flags)
    if got != want:
        i = first_diff(got, want)
        k = owner[min(i, len(owner) - 1)]
        raise AssertionError(f"first difference at id {i}, in text {k} {lines[k]!r}: "
                             f"got {got[i:i + 8]} want {want[i:i + 8]}")


def byte_ids(sp):
    return {i for i in range(sp.get_piece_size()) if sp.is_byte(i)}


def test_corpus_matches_sentencepiece(folders, tmp_path, figures):
    sp = spm.SentencePieceProcessor(model_file=str(DATA / "spiece.model"))
    bytes_ = byte_ids(sp)
    assert len(bytes_) == 256
    lines = corpus()
    want, owner = [], []
    for k, line in enumerate(lines):
        ids = sp.encode(line)
        want += ids + [SEP_ID]
        owner += [k] * (len(ids) + 1)
    want.pop()
    n_bytes = sum(i in bytes_ for i in want)
    n_texts = sum(any(i in bytes_ for i in sp.encode(line)) for line in lines)
    assert n_bytes > 1000 and n_texts > 100, "the corpus should exercise byte fallback"
    assert sp.unk_id() not in want
    compare(folders / "spm", lines, want, owner, tmp_path, "--no-parse-special")
    figures(f"unigram_bf spm: {len(lines)} texts ({n_texts} with byte pieces), {len(want)} ids "
            f"({n_bytes} byte pieces) equal to sentencepiece")


def test_corpus_matches_tokenizers(folders, tmp_path, figures):
    ref = tokenizers.Tokenizer.from_file(str(folders / "hf" / "tokenizer.json"))
    lines = corpus()
    want, owner = [], []
    for k, line in enumerate(lines):
        ids = ref.encode(line, add_special_tokens=False).ids
        want += ids + [SEP_ID]
        owner += [k] * (len(ids) + 1)
    want.pop()
    n_bytes = sum(1 for i in want if ref.id_to_token(i).startswith("<0x"))
    assert n_bytes > 1000
    compare(folders / "hf", lines, want, owner, tmp_path)
    figures(f"unigram_bf tokenizers: {len(lines)} texts, {len(want)} ids ({n_bytes} byte pieces) equal")


def test_decode_matches_references(folders):
    sp = spm.SentencePieceProcessor(model_file=str(DATA / "spiece.model"))
    ref = tokenizers.Tokenizer.from_file(str(folders / "hf" / "tokenizer.json"))
    bytes_ = byte_ids(sp)
    rng = random.Random(11)
    with_bytes = [l for l in corpus() if bytes_ & set(sp.encode(l))]
    lines = rng.sample(with_bytes, 20) + ["héllo wörld ✓ 日本語 🙂", "only ascii here"]
    for line in lines:
        ids = sp.encode(line)
        assert cli_text(folders / "spm", ids) == sp.decode(ids), line
        hids = ref.encode(line, add_special_tokens=False).ids
        assert cli_text(folders / "hf", hids) == ref.decode(hids, skip_special_tokens=False), line
    # a lone invalid byte run decodes to U+FFFD as both references do
    ids = [sp.piece_to_id("<0xC3>"), sp.piece_to_id("\u2581a")]
    assert cli_text(folders / "hf", ids) == ref.decode(ids, skip_special_tokens=False)
