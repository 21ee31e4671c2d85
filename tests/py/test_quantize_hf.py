"""`fastchat quantize` of a Hugging Face folder writes the folder's tokenizer
into the GGUF (fc_tokenizer_to_gguf), and the GGUF is the same model.

The folders: the tiny random-weight models of tests/data/tiny_tok (written by
tools/golden/make_tiny_with_tokenizer.py with the vocabulary size of a test
tokenizer) with the tokenizer files of tests/data/tokenizer/<name> copied next
to them:
  llama_spm + spm_legacy   SentencePiece BPE, Llama-2's tokenizer.json shape
  llama_spm + spm          the same vocabulary as transformers 5 saves it
                           (Metaspace pre-tokenizer, prepend_scheme "first")
  llama_spm + spm .model   only tokenizer.model + tokenizer_config.json (the
                           Llama-2 / Vicuna folder layout)
  llama_bpe + llama3       byte-level BPE, Llama-3's split (GGUF pre "llama-bpe")
  qwen2_bpe + qwen2        byte-level BPE, Qwen2's split; the model has 3072
                           rows for the tokenizer's 3002 ids, so the GGUF
                           vocabulary is padded with [PAD<id>] tokens

Checks, for each, on the f16 GGUF:
  - gguf.GGUFReader (llama.cpp's own Python package) sees the tokenizer keys
    with the values llama.cpp's converter would write: model, pre, tokens
    (the tokenizer's own spelling of every id), token types, merges / scores,
    special ids, add_bos/add_eos, the chat template.
  - `fastchat tokenize` gives the same ids from the GGUF as from the folder on
    hard strings (special tokens, spaces, digits, CJK, emoji, invalid
    UTF-8...), with and without special-token parsing. The Metaspace folder
    is held to `sentencepiece` instead: GGUF "llama" vocabularies encode as
    sentencepiece and llama.cpp do (tokenizer.h), and so must all three
    SentencePiece variants.
  - `fastchat logits --exact` of the GGUF equals that of the folder within
    1e-2 (f16 weights convert exactly; what is left is summation order, and
    for llama the Q/K rows that the GGUF stores permuted for llama.cpp's
    RoPE layout, which this catches: a wrong permutation moves logits by
    O(1)).
And: a folder without tokenizer files gets a GGUF without tokenizer and a
warning; a broken tokenizer.json stops quantize with an error and a hint.
"""
import json
import shutil

import numpy as np
import pytest

from conftest import DATA, fastchat_logits, run_fastchat

gguf = pytest.importorskip("gguf")

TINY = DATA / "tiny_tok"
TOK = DATA / "tokenizer"
LOGIT_TOL = 1e-2

# case: (model folder, tokenizer folder, files to copy, GGUF model, GGUF pre)
CASES = {
    "spm_legacy": ("llama_spm", "spm_legacy", ["tokenizer.json", "tokenizer_config.json"], "llama", "default"),
    "spm_metaspace": ("llama_spm", "spm", ["tokenizer.json", "tokenizer_config.json"], "llama", "default"),
    "spm_model": ("llama_spm", "spm", ["tokenizer.model", "tokenizer_config.json"], "llama", "default"),
    "llama3": ("llama_bpe", "llama3", ["tokenizer.json", "tokenizer_config.json"], "gpt2", "llama-bpe"),
    "qwen2": ("qwen2_bpe", "qwen2", ["tokenizer.json", "tokenizer_config.json"], "gpt2", "qwen2"),
}

HARD = [
    "Hello world",
    " leading space and trailing  ",
    "  two leading spaces",
    "I'm don't we'll IT'S 'ſ",
    "1234567890 3.14159 x=12,345",
    "你好，世界！ 日本語 한국어",
    "👨‍👩‍👧‍👦 🏳️‍🌈 👍🏽",
    "e\u0301 cafe\u0301 Å naïve",
    "def f(x):\n    return x * 2\n\n\ttab",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<s>[INST] hi [/INST] ok</s><s>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
    "<think>x</think> a b",
    "\u00a0\u3000\u0085\u2028 \r\n\r\n",
    "x" * 300,
    "\u2581already \u2581escaped",
]
INVALID_UTF8 = b"x\xc3(\xf0\x9f\x98y\xff"

GGUF_CONTROL, GGUF_UNKNOWN, GGUF_USER, GGUF_UNUSED, GGUF_BYTE = 3, 2, 4, 5, 6


def field(reader, key):
    f = reader.fields.get(key)
    assert f is not None, f"{key} missing from the GGUF"
    return f.contents()


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, fastchat_bin, tmp_path_factory):
    """(name, folder, gguf path): the folder assembled and quantized once."""
    name = request.param
    model, tok, files, _, _ = CASES[name]
    d = tmp_path_factory.mktemp(name)
    folder = d / "hf"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(TINY / model / f, folder / f)
    for f in files:
        shutil.copy(TOK / tok / f, folder / f)
    out = d / "model.f16.gguf"
    p = run_fastchat(fastchat_bin, ["quantize", "--model-path", folder, "--type", "f16", "--out", out])
    assert out.is_file(), p.stderr
    return name, folder, out, p.stderr


def cli_ids(binary, model, text, *flags):
    if isinstance(text, bytes):  # invalid UTF-8 cannot travel in argv as str
        f = model.parent / "text.bin" if model.is_file() else model / "text.bin"
        f.write_bytes(text)
        args = ["tokenize", "--model-path", model, "--file", f, *flags]
    else:
        args = ["tokenize", "--model-path", model, "--text", text, *flags]
    return json.loads(run_fastchat(binary, args).stdout)


def test_gguf_tokenizer_keys(case):
    name, folder, out, _ = case
    model, tok, _, want_model, want_pre = CASES[name]
    r = gguf.GGUFReader(str(out))
    n_rows = json.loads((folder / "config.json").read_text())["vocab_size"]
    assert field(r, "tokenizer.ggml.model") == want_model
    assert field(r, "tokenizer.ggml.pre") == want_pre
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == n_rows, "one token per embedding row"
    ref = json.loads((TOK / tok / "tokenizer.json").read_text())
    cfg = json.loads((TOK / tok / "tokenizer_config.json").read_text())
    vocab = ref["model"]["vocab"]
    added = {a["id"]: a for a in ref["added_tokens"]}
    n_tok = max(max(vocab.values()), max(added)) + 1
    for text, i in vocab.items():
        if i not in added:
            assert tokens[i] == text, f"token {i}"
    for i, a in added.items():
        want = a["content"] if (a["special"] or want_model == "gpt2") else a["content"].replace("\u2581", " ")
        assert tokens[i] == want, f"added token {i}"
        assert types[i] == (GGUF_CONTROL if a["special"] else GGUF_USER) or \
            (want_model == "llama" and a["content"] == "<unk>" and types[i] == GGUF_UNKNOWN), f"type of {i}"
    for i in range(n_tok, n_rows):
        assert tokens[i] == f"[PAD{i}]" and types[i] == GGUF_UNUSED
    if want_model == "llama":
        assert types[vocab["<0x41>"]] == GGUF_BYTE and types[vocab["<unk>"]] == GGUF_UNKNOWN
        scores = field(r, "tokenizer.ggml.scores")
        assert len(scores) == n_rows
        assert field(r, "tokenizer.ggml.add_space_prefix") is True
        assert field(r, "tokenizer.ggml.unknown_token_id") == vocab["<unk>"]
    else:
        merges = field(r, "tokenizer.ggml.merges")
        want = [m if isinstance(m, str) else " ".join(m) for m in ref["model"]["merges"]]
        assert merges == want
    name_id = {a["content"]: a["id"] for a in ref["added_tokens"]}
    if cfg.get("bos_token"):
        assert field(r, "tokenizer.ggml.bos_token_id") == name_id[cfg["bos_token"]]
    assert field(r, "tokenizer.ggml.eos_token_id") == name_id[cfg["eos_token"]]
    assert field(r, "tokenizer.ggml.add_bos_token") is (name in ("spm_legacy", "spm_metaspace", "spm_model",
                                                                  "llama3"))
    assert field(r, "tokenizer.ggml.add_eos_token") is False
    assert field(r, "tokenizer.chat_template") == cfg["chat_template"]


def test_tokenize_same_ids(case, fastchat_bin):
    name, folder, out, _ = case
    for flags in ([], ["--no-parse-special"], ["--no-special"]):
        for text in HARD + [INVALID_UTF8]:
            if name == "spm_metaspace":
                continue  # held to sentencepiece below
            a = cli_ids(fastchat_bin, out, text, *flags)
            b = cli_ids(fastchat_bin, folder, text, *flags)
            assert a == b, f"{name} {flags} {text!r}: gguf {a} vs folder {b}"


def test_lost_added_token_flags_warned(case):
    """llama3's <mask> (lstrip) and "hello world" (single_word) keep their
    flags only in tokenizer.json: GGUF has no key for them, so " <mask>" keeps
    its space in the GGUF's ids. quantize says so."""
    name, _, _, stderr = case
    assert ("added-token flags" in stderr) == (name == "llama3"), stderr


def test_spm_variants_match_sentencepiece(case, fastchat_bin):
    name, folder, out, _ = case
    if CASES[name][3] != "llama":
        pytest.skip("byte-level BPE: compared with the folder above")
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(TOK / "spm" / "tokenizer.model"))
    for text in HARD:
        want = sp.encode(text)
        got = cli_ids(fastchat_bin, out, text, "--no-special", "--no-parse-special")
        assert got == want, f"{name} {text!r}: gguf {got} vs sentencepiece {want}"
        if name != "spm_metaspace":
            got = cli_ids(fastchat_bin, folder, text, "--no-special", "--no-parse-special")
            assert got == want, f"{name} folder {text!r}: {got} vs sentencepiece {want}"


def test_logits_same(case, fastchat_bin, tmp_path, figures):
    name, folder, out, _ = case
    n_tok = 2000 if CASES[name][0] == "llama_spm" else 3002
    rng = np.random.default_rng(7)
    ids = cli_ids(fastchat_bin, folder, "Hello world, 你好 1234 <|im_end|>") + \
        [int(x) for x in rng.integers(0, n_tok, 24)]
    a = fastchat_logits(fastchat_bin, out, ids, tmp_path, exact=True)
    b = fastchat_logits(fastchat_bin, folder, ids, tmp_path, exact=True)
    assert a.shape == b.shape
    d = float(np.abs(a - b).max())
    figures(f"quantize_hf/{name}: GGUF f16 vs folder logits (exact) max |d| {d:.2e} over {a.shape}")
    assert d <= LOGIT_TOL, f"{name}: max |d| {d:.3e} > {LOGIT_TOL}"
    assert (a.argmax(1) == b.argmax(1)).all()


def test_folder_without_tokenizer(fastchat_bin, tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(TINY / "llama_bpe" / f, folder / f)
    out = tmp_path / "x.gguf"
    p = run_fastchat(fastchat_bin, ["quantize", "--model-path", folder, "--type", "f16", "--out", out])
    assert "warning" in p.stderr and "no tokenizer" in p.stderr
    r = gguf.GGUFReader(str(out))
    assert "tokenizer.ggml.tokens" not in r.fields
    assert "llama.block_count" in r.fields


def test_broken_tokenizer_fails(fastchat_bin, tmp_path):
    folder = tmp_path / "hf"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(TINY / "llama_bpe" / f, folder / f)
    (folder / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}')
    out = tmp_path / "x.gguf"
    p = run_fastchat(fastchat_bin, ["quantize", "--model-path", folder, "--type", "f16", "--out", out],
                     check=False)
    assert p.returncode != 0
    assert "error:" in p.stderr and "hint:" in p.stderr
    assert not out.exists()
