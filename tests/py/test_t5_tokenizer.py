"""T5's SentencePiece Unigram tokenizer (src/tokenizer/unigram.c) through
`fastchat tokenize` / `fastchat detokenize`, against the real references run
live: Hugging Face `tokenizers` for tokenizer.json folders and `sentencepiece`
for spiece.model folders.

The tokenizer is tests/data/t5_tok (tools/golden/make_t5_tokenizer.py): a real
Unigram model trained with T5's settings (nmt_nfkc charsmap, pad/eos/unk ids
0/1/2), converted by transformers' T5Converter, plus <extra_id_N> and
FastChat-T5's added tokens ("\\n", " ", "\\t", "{", ...). Three folder shapes:
  hf         tokenizer.json as transformers 4.4x+ writes it (Precompiled +
             Strip + Replace normalizer, Metaspace(split) pre-tokenizer)
  hub_shape  the shape google/flan-t5 and lmsys/fastchat-t5 ship (Precompiled
             alone, WhitespaceSplit + Metaspace(add_prefix_space))
  spm        spiece.model only (the folder T5Tokenizer reads), with an
             added_tokens.json

Corpus: tests/data/tokenizer/corpus.jsonl (2300 texts: unicode of many
scripts, whitespace runs, newlines, tabs, digits, emoji, special-token
spellings). Every text is encoded by the reference on its own; fastchat gets
all of them in one call, joined by an added token (which splits the text, so
each text is encoded independently), and the ids must be those references
joined by that token's id. A single differing id fails, and the first
differing text is named.
"""
import gzip
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from test_tokenizer import corpus_lines

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "t5_tok"
BIN = os.environ.get("FASTCHAT_BIN", str(ROOT / "build" / "fastchat"))

tokenizers = pytest.importorskip("tokenizers")
spm = pytest.importorskip("sentencepiece")

SEP = "<|sep|>"     # the spm folder's separator (added_tokens.json), id 1000
NEWLINE_ID = 1100   # FastChat-T5's "\n" added token in tokenizer.json
EOS = 1


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True)
    assert r.returncode == 0, f"{args[:3]}: exit {r.returncode}: {r.stderr.decode(errors='replace')}"
    return r.stdout


def cli_ids(folder, text, *flags):
    return json.loads(run("tokenize", "--model-path", str(folder), "--text", text, *flags))


def cli_file_ids(folder, path, *flags):
    return json.loads(run("tokenize", "--model-path", str(folder), "--file", str(path), *flags))


def cli_text(folder, ids, *flags):
    out = run("detokenize", "--model-path", str(folder), "--ids", ",".join(map(str, ids)), *flags)
    assert out.endswith(b"\n")
    return out[:-1].decode("utf-8")


def corpus():
    return [t for t in corpus_lines() if SEP not in t]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    assert os.path.exists(BIN), f"{BIN} missing: build it with `make` (or set FASTCHAT_BIN)"
    d = tmp_path_factory.mktemp("t5_tok")
    tj = json.loads(gzip.decompress((DATA / "tokenizer.json.gz").read_bytes()))
    (d / "hf").mkdir()
    (d / "hf" / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    hub = dict(tj)
    hub["normalizer"] = tj["normalizer"]["normalizers"][0]  # Precompiled alone
    hub["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}]}
    hub["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    (d / "hub_shape").mkdir()
    (d / "hub_shape" / "tokenizer.json").write_text(json.dumps(hub), encoding="utf-8")
    (d / "hf_cfg").mkdir()
    shutil.copy(d / "hf" / "tokenizer.json", d / "hf_cfg")
    shutil.copy(DATA / "tokenizer_config.json", d / "hf_cfg")
    model = gzip.decompress((DATA / "spiece.model.gz").read_bytes())
    for name in ("spm", "spm_sep"):
        (d / name).mkdir()
        (d / name / "spiece.model").write_bytes(model)
    (d / "spm_sep" / "added_tokens.json").write_text(json.dumps({SEP: 1000}))
    return d


def first_diff(got, want):
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return min(len(got), len(want))


@pytest.mark.parametrize("shape", ["hf", "hub_shape"])
@pytest.mark.parametrize("parse_special", [True, False])
def test_corpus_matches_tokenizers(folders, shape, parse_special, tmp_path, figures):
    folder = folders / shape
    ref = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    ref.encode_special_tokens = not parse_special
    lines = corpus()
    want, owner = [], []
    for k, line in enumerate(lines):
        ids = ref.encode(line, add_special_tokens=False).ids
        want += ids + [NEWLINE_ID]
        owner += [k] * (len(ids) + 1)
    want[-1] = EOS  # the last separator is the post-processor's </s>
    f = tmp_path / "corpus.txt"
    f.write_bytes("\n".join(lines).encode())
    got = cli_file_ids(folder, f, *([] if parse_special else ["--no-parse-special"]))
    if got != want:
        i = first_diff(got, want)
        k = owner[min(i, len(owner) - 1)]
        raise AssertionError(f"{shape}: first difference at id {i}, in text {k} {lines[k]!r}: "
                             f"got {got[i:i + 8]} want {want[i:i + 8]}")
    assert len(lines) >= 1000
    figures(f"t5_tok_{shape} parse_special={parse_special}: {len(lines)} texts, {len(want)} ids equal")


def test_corpus_matches_sentencepiece(folders, tmp_path, figures):
    folder = folders / "spm_sep"
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    lines = corpus()
    want, owner = [], []
    for k, line in enumerate(lines):
        ids = sp.encode(line)
        want += ids + [1000]
        owner += [k] * (len(ids) + 1)
    want.pop()
    f = tmp_path / "corpus.txt"
    f.write_bytes(SEP.join(lines).encode())
    got = cli_file_ids(folder, f, "--no-special", "--no-parse-special")
    if got != want:
        i = first_diff(got, want)
        k = owner[min(i, len(owner) - 1)]
        raise AssertionError(f"first difference at id {i}, in text {k} {lines[k]!r}: "
                             f"got {got[i:i + 8]} want {want[i:i + 8]}")
    figures(f"t5_tok_spm: {len(lines)} texts, {len(want)} ids equal")


def test_spm_folder_adds_eos_and_decodes(folders):
    folder = folders / "spm"
    sp = spm.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    # T5Tokenizer appends </s>; sentencepiece itself adds nothing
    for text in ["Hello world", "  two  spaces\tand a tab\n", "ｆｕｌｌｗｉｄｔｈ ①②", "x"]:
        assert cli_ids(folder, text) == sp.encode(text) + [EOS], text
    assert cli_ids(folder, "") == [EOS]
    rng = random.Random(5)
    lines = [l for l in corpus() if sp.unk_id() not in sp.encode(l)]
    for line in rng.sample(lines, 25):
        ids = sp.encode(line)
        assert cli_text(folder, ids) == sp.decode(ids), line


@pytest.mark.parametrize("skip_special", [True, False])
def test_decode_matches_tokenizers(folders, skip_special):
    folder = folders / "hf"
    ref = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    rng = random.Random(7)
    n = ref.get_vocab_size()
    cases = [ref.encode(t).ids for t in rng.sample(corpus(), 15)]
    cases += [[rng.randrange(n) for _ in range(rng.randrange(1, 30))] for _ in range(10)]
    cases.append([NEWLINE_ID, 1101, 1102, 82, 5, 98, NEWLINE_ID])  # FastChat-T5's added tokens
    flags = ["--skip-special"] if skip_special else []
    for ids in cases:
        assert cli_text(folder, ids, *flags) == ref.decode(ids, skip_special_tokens=skip_special), ids


def test_fastchat_t5_added_tokens(folders):
    """The whitespace FastChat-T5 added survives the round trip that T5's own
    vocabulary would lose (nmt_nfkc maps "\\n" and "\\t" to spaces)."""
    folder = folders / "hf_cfg"
    text = "def f(x):\n\treturn {x ^ 2}  # `code`\n"
    ids = cli_ids(folder, text)
    assert NEWLINE_ID in ids and 1102 in ids and ids[-1] == EOS
    ref = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert ids == ref.encode(text).ids
    assert cli_text(folder, ids, "--skip-special") == ref.decode(ids, skip_special_tokens=True)
