"""End-to-end checks of `fastchat tokenize` / `fastchat detokenize` against
Hugging Face `tokenizers` (the exhaustive corpus comparison is the C unit test
tests/unit/test_tokenizer.c; this checks the binary, its flags and its errors).

The references: the tokenizer.json folders in tests/data/tokenizer loaded with
`tokenizers.Tokenizer`, and for the default model (env FASTCHAT_MODEL) the
SmolLM2 tokenizer rebuilt from the GGUF by tools/golden/make_tokenizer_golden.py.
The binary is $FASTCHAT_BIN (default build/fastchat).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "tokenizer"
BIN = os.environ.get("FASTCHAT_BIN", str(ROOT / "build" / "fastchat"))

tokenizers = pytest.importorskip("tokenizers")

TEXTS = [
    "Hello world",
    "Hello, world! How are you?",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\r\n",
    "I'm don't we'll IT'S 'ſ",
    "1234567890 3.14159",
    "你好，世界！ 日本語 한국어",
    "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽",
    "e\u0301 cafe\u0301 Å",
    "def f(x):\n    return x * 2\n",
    "<|im_start|>user\nhi<|im_end|>",
    "<s>Hello</s> <|begin_of_text|><|eot_id|>",
    "a <mask> b <think>x</think>",
    "\u00a0\u3000\u0085\u2028",
    "x" * 500,
]


def run(*args, check=True):
    r = subprocess.run([BIN, *args], capture_output=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{args}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r


@pytest.fixture(autouse=True, scope="module")
def _binary():
    # A missing binary fails (with a hint) rather than skips: `make test` builds it first.
    assert os.path.exists(BIN), f"{BIN} missing: build it with `make` (or set FASTCHAT_BIN)"
    r = subprocess.run([BIN, "tokenize", "--help"], capture_output=True)
    assert r.returncode == 0, f"{BIN} has no 'tokenize' command"


def cli_ids(model, text, *flags):
    out = run("tokenize", "--model-path", str(model), "--text", text, *flags).stdout
    return json.loads(out)


def cli_text(model, ids, *flags):
    out = run("detokenize", "--model-path", str(model), "--ids", ",".join(map(str, ids)), *flags).stdout
    assert out.endswith(b"\n")
    return out[:-1].decode("utf-8")


def hf_folder(name):
    return tokenizers.Tokenizer.from_file(str(DATA / name / "tokenizer.json"))


def hf_ids(tok, text, add_special=True, parse_special=True):
    tok.encode_special_tokens = not parse_special
    try:
        return tok.encode(text, add_special_tokens=add_special).ids
    finally:
        tok.encode_special_tokens = False


# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["spm", "spm_legacy", "llama3", "qwen2"])
def test_folder_matches_hf(name):
    tok = hf_folder(name)
    # The spm folders add BOS through tokenizer_config.json's add_bos_token, which
    # transformers applies and tokenizers.Tokenizer does not know about; their
    # tokenizer.json post-processor says the same ("<s> $A").
    for text in TEXTS:
        assert cli_ids(DATA / name, text) == hf_ids(tok, text), text
        assert cli_ids(DATA / name, text, "--no-special") == hf_ids(tok, text, add_special=False), text
        assert cli_ids(DATA / name, text, "--no-special", "--no-parse-special") == \
            hf_ids(tok, text, add_special=False, parse_special=False), text


# A GGUF "llama" file is encoded as sentencepiece and llama.cpp do: Llama-2's
# tokenizer.json shape (spm_legacy). The llama3 GGUF cannot carry <mask>'s
# lstrip/rstrip, so texts using it are left out.
@pytest.mark.parametrize("gguf,folder", [("spm", "spm_legacy"), ("llama3", "llama3"), ("qwen2", "qwen2")])
def test_gguf_matches_folder(gguf, folder):
    tok = hf_folder(folder)
    for text in TEXTS:
        if "<mask>" in text:
            continue
        assert cli_ids(DATA / gguf / "tokenizer.gguf", text) == hf_ids(tok, text), text


@pytest.mark.parametrize("name", ["spm", "llama3", "qwen2"])
def test_detokenize_matches_hf(name):
    tok = hf_folder(name)
    for text in TEXTS:
        ids = hf_ids(tok, text)
        assert cli_text(DATA / name, ids) == tok.decode(ids, skip_special_tokens=False), text
        assert cli_text(DATA / name, ids, "--skip-special") == tok.decode(ids, skip_special_tokens=True), text


def test_default_model():
    model = os.environ.get("FASTCHAT_MODEL")
    if not model or not os.path.exists(model):
        pytest.skip("FASTCHAT_MODEL not set or missing (scripts/fetch_model.sh)")
    pytest.importorskip("gguf")
    sys.path.insert(0, str(ROOT / "tools" / "golden"))
    from make_tokenizer_golden import smollm2_reference
    ref = smollm2_reference(model)
    for text in TEXTS:
        ids = hf_ids(ref, text)
        assert cli_ids(model, text) == ids, text
        assert cli_text(model, ids) == ref.decode(ids, skip_special_tokens=False), text
    # the default --model-path is the default model
    env = dict(os.environ, FASTCHAT_MODEL=model)
    r = subprocess.run([BIN, "tokenize", "--text", "Hello world"], capture_output=True, env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == hf_ids(ref, "Hello world")


def test_pieces_and_file(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes("Hello\n世界".encode())
    by_file = json.loads(run("tokenize", "--model-path", str(DATA / "llama3"), "--file", str(f)).stdout)
    assert by_file == hf_ids(hf_folder("llama3"), "Hello\n世界")
    pairs = json.loads(run("tokenize", "--model-path", str(DATA / "llama3"), "--file", str(f),
                           "--pieces", "--no-special").stdout)
    assert "".join(p for _, p in pairs) == "Hello\n世界"


def test_errors():
    r = run("tokenize", "--model-path", "/nonexistent/model.gguf", "--text", "x", check=False)
    assert r.returncode == 1 and b"error:" in r.stderr
    r = run("tokenize", "--model-path", str(DATA / "llama3"), check=False)
    assert r.returncode == 1 and b"--text" in r.stderr
    r = run("detokenize", "--model-path", str(DATA / "llama3"), "--ids", "1,x", check=False)
    assert r.returncode == 1 and b"error:" in r.stderr
    r = run("detokenize", "--model-path", str(DATA / "llama3"), "--ids", "99999999", check=False)
    assert r.returncode == 1 and b"out of range" in r.stderr
    r = run("tokenize", "--model-path", str(DATA), "--text", "x", check=False)  # no tokenizer.json
    assert r.returncode == 1 and b"error:" in r.stderr


# --------------------------------------------------------------------------
# Folders with only SentencePiece's tokenizer.model (Llama-2 / Vicuna layout):
# the ids must be sentencepiece's own. Small BPE models are trained here with
# the trainer settings that change encoding (byte fallback or not, the dummy
# "▁" prefix, whitespace squeezing); each is compared on the whole corpus as
# one text (then line by line to name the first line that differs). Special
# tokens are read as text, as sentencepiece reads them. User-defined symbols
# are left out: like llama.cpp, fastchat gives the text after one its own "▁"
# prefix, which sentencepiece does not.

SPM_VARIANTS = {
    "bytes": dict(byte_fallback=True, remove_extra_whitespaces=False),
    "squeeze": dict(byte_fallback=True, remove_extra_whitespaces=True),
    "no_dummy_prefix": dict(byte_fallback=True, add_dummy_prefix=False, remove_extra_whitespaces=False),
    "no_bytes": dict(byte_fallback=False, remove_extra_whitespaces=False),
}


def corpus_lines():
    out = []
    for line in (DATA / "corpus.jsonl").read_text(encoding="utf-8").split("\n"):
        if not line:
            continue
        t = json.loads(line)["text"]
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not text sentencepiece can take
            continue
        if "\x00" not in t:
            out.append(t)
    return out


@pytest.fixture(scope="module")
def spm_models(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("spm_models")
    lines = corpus_lines()
    train = d / "train.txt"
    # mostly-ASCII lines (the random ones hold more distinct characters than a small vocabulary
    # can take): the rest of the corpus then exercises byte fallback and <unk>
    plain = [l for l in lines if sum(ord(c) > 127 for c in l) <= len(l) // 20]
    train.write_text("\n".join(l.replace("\n", " ").replace("\r", " ") for l in plain) + "\n",
                     encoding="utf-8")
    out = {}
    for name, kw in dict(SPM_VARIANTS, unigram=dict(model_type="unigram")).items():
        folder = d / name
        folder.mkdir()
        args = dict(model_type="bpe", vocab_size=1000, character_coverage=0.995, split_digits=True,
                    normalization_rule_name="identity", allow_whitespace_only_pieces=True,
                    hard_vocab_limit=False)
        args.update(kw)
        spm.SentencePieceTrainer.train(input=str(train), model_prefix=str(folder / "tokenizer"),
                                       num_threads=1, minloglevel=2, **args)
        (folder / "tokenizer.vocab").unlink()
        out[name] = (folder, spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")))
    return out, lines


@pytest.mark.parametrize("variant", sorted(SPM_VARIANTS))
def test_tokenizer_model_matches_sentencepiece(spm_models, variant, tmp_path):
    models, lines = spm_models
    folder, sp = models[variant]
    text = "\n".join(lines)
    f = tmp_path / "corpus.txt"
    f.write_bytes(text.encode())
    got = json.loads(run("tokenize", "--model-path", str(folder), "--file", str(f), "--no-special",
                         "--no-parse-special").stdout)
    want = sp.encode(text)
    if got != want:
        for line in lines:
            g = cli_ids(folder, line, "--no-special", "--no-parse-special")
            assert g == sp.encode(line), f"{variant}: {line!r}"
        assert got == want, f"{variant}: the whole corpus differs, no single line does"
    # BOS by default (LlamaTokenizer's add_bos_token), and decode gives the text back (on
    # text without unknown characters: sentencepiece spells <unk> " \u2047 ", transformers
    # and fastchat "<unk>")
    assert cli_ids(folder, "Hello world") == [sp.bos_id()] + sp.encode("Hello world")
    ids = sp.encode("Hello  world, 12 tests.")
    assert cli_text(folder, ids) == sp.decode(ids)


def test_tokenizer_model_unigram(spm_models):
    # Unigram tokenizer.model files load too (src/tokenizer/unigram.c; T5's spiece.model is
    # covered in depth by test_t5_tokenizer.py): the same ids as sentencepiece
    models, lines = spm_models
    folder, sp = models["unigram"]
    for line in lines[::23]:
        assert cli_ids(folder, line, "--no-special", "--no-parse-special") == sp.encode(line), line
