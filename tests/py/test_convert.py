"""`fastchat convert` both ways (src/cli/cmd_convert.c, src/tools/convert.c,
src/tokenizer/export_hf.c).

- HF folder -> GGUF -> HF folder gives byte-identical f32 / f16 / bf16
  tensors (read from the safetensors headers by this file, not by our
  reader), on tiny models of tests/data/tiny and tests/data/tiny_tok
  (llama with permuted Q/K, qwen2 with biases, tied and untied heads).
- The round-tripped tokenizer.json, loaded by the `tokenizers` package,
  gives the same ids as the original tokenizer.json on the tokenizer corpus
  (byte-level BPE: Llama 3 and Qwen2; SentencePiece-style Llama, with and
  without special tokens).
- The default model (SmolLM2 Q4_1 GGUF) -> HF folder: the `tokenizers`
  package with our tokenizer.json gives the ids of the real SmolLM2 tokenizer
  (tests/data/tokenizer/golden_smollm2.jsonl, from transformers), and the
  folder loads in our engine with the logits of the GGUF file.
- A GGUF we write from an HF folder gives the greedy output of our engine
  in llama.cpp (llama-simple, built for the bench by scripts/build_llamacpp.sh)
  when that is built; skipped with the reason otherwise.
"""
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from conftest import DATA, fastchat_generate, fastchat_logits, run_fastchat

tokenizers = pytest.importorskip("tokenizers")


def st_tensors(folder):
    """name -> (dtype, shape, raw bytes) of every tensor of a safetensors folder."""
    out = {}
    files = [f for f in os.listdir(folder) if f.endswith(".safetensors")]
    idx = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        assert sorted(set(wm.values())) == sorted(files)
    for f in files:
        b = open(os.path.join(folder, f), "rb").read()
        (n,) = struct.unpack("<Q", b[:8])
        h = json.loads(b[8:8 + n])
        h.pop("__metadata__", None)
        for k, v in h.items():
            s, e = v["data_offsets"]
            out[k] = (v["dtype"], v["shape"], b[8 + n + s:8 + n + e])
            if os.path.exists(idx):
                assert wm[k] == f
    return out


def corpus():
    return [json.loads(line)["text"] for line in (DATA / "tokenizer" / "corpus.jsonl").read_text(encoding="utf-8").split("\n") if line]


# model folder, tokenizer folder (None: no tokenizer), what the case covers
CASES = [
    ("tiny_tok/llama_spm", "spm_legacy", "llama f16 tied, SentencePiece-style tokenizer.json (Llama 2's)"),
    ("tiny_tok/llama_bpe", "llama3", "llama f16, Llama 3 byte-level BPE"),
    ("tiny_tok/qwen2_bpe", "qwen2", "qwen2 f16 with q/k/v biases, Qwen2 BPE"),
    ("tiny/qwen2_bf16_gqa4", None, "qwen2 bf16"),
    ("tiny/llama_f32", None, "llama f32 untied"),
    ("tiny/llama_bf16_tied_mqa", None, "llama bf16 tied, one KV head"),
    ("tiny/llama_f16_tied_linear_eps", None, "llama f16, linear RoPE scaling"),
    ("tiny/mistral_f32_swa20", None, "mistral f32, sliding window"),
    ("tiny/qwen2_f32_swa24", None, "qwen2 f32, sliding window layers"),
    ("tiny/gemma2_bf16_gqa4_swa12", None, "gemma2 bf16 (norms stored as w, GGUF 1 + w)"),
    ("tiny/phi3_f32_swa32", None, "phi3 f32, fused qkv / gate_up"),
]


def make_src(tmp_path, model, tok):
    src = tmp_path / "src"
    src.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(DATA / model / f, src / f)
    if tok:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(DATA / "tokenizer" / tok / f, src / f)
    return src


@pytest.mark.parametrize("model,tok,what", CASES, ids=[c[0].split("/")[1] for c in CASES])
def test_hf_gguf_hf_round_trip(fastchat_bin, tmp_path, figures, model, tok, what):
    src = make_src(tmp_path, model, tok)
    gguf, back = tmp_path / "m.gguf", tmp_path / "back"
    run_fastchat(fastchat_bin, ["convert", "--input", src, "--output", gguf])
    # a small shard size so that the index is exercised too
    run_fastchat(fastchat_bin, ["convert", "--input", gguf, "--output", back, "--max-shard-size", "40KB"])
    a, b = st_tensors(src), st_tensors(back)
    cfg = json.load(open(src / "config.json"))
    if cfg.get("tie_word_embeddings") and "lm_head.weight" in a:
        a.pop("lm_head.weight")  # transformers drops a tied head on save
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k][:2] == b[k][:2], (k, a[k][:2], b[k][:2])
        assert a[k][2] == b[k][2], f"{k}: bytes differ"
    assert (back / "model.safetensors.index.json").exists()
    bc = json.load(open(back / "config.json"))
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "rope_theta", "rms_norm_eps", "model_type"):
        if key in cfg:
            assert bc[key] == cfg[key], (key, bc[key], cfg[key])
    n_texts = n_skipped = 0
    if tok:
        t0 = tokenizers.Tokenizer.from_file(str(src / "tokenizer.json"))
        t1 = tokenizers.Tokenizer.from_file(str(back / "tokenizer.json"))
        # GGUF has no place for an added token's lstrip / rstrip / single_word
        # (llama.cpp's converter drops them too; tokenizer.h lists the loss):
        # texts holding such a token are left out, and counted
        flagged = [a["content"] for a in json.load(open(src / "tokenizer.json"))["added_tokens"]
                   if a["lstrip"] or a["rstrip"] or a["single_word"]]
        for text in corpus():
            if any(f in text for f in flagged):
                n_skipped += 1
                continue
            for special in (True, False):
                assert t0.encode(text, add_special_tokens=special).ids == \
                    t1.encode(text, add_special_tokens=special).ids, (special, text)
            n_texts += 1
        tc0 = json.load(open(src / "tokenizer_config.json"))
        tc1 = json.load(open(back / "tokenizer_config.json"))
        if "chat_template" in tc0:
            assert tc1["chat_template"] == tc0["chat_template"]
    figures(f"convert {what}: {len(a)} tensors byte-equal after HF->GGUF->HF"
            + (f", same ids from `tokenizers` on {n_texts} corpus texts (with and without special tokens; "
                  f"{n_skipped} left out: added tokens with lstrip/rstrip)" if tok else ""))
    assert not tok or n_texts > 2000


@pytest.mark.parametrize("model,tok", [("tiny_tok/qwen2_bpe", "qwen2"), ("tiny/gemma2_bf16_gqa4_swa12", None),
                                       ("tiny/phi3_f32_swa32", None), ("tiny/mistral_f32_swa20", None),
                                       ("tiny/qwen2_f32_swa24", None), ("tiny/llama_f16_tied_linear_eps", None)],
                         ids=lambda v: v.split("/")[-1] if v else "-")
def test_hf_folder_loads_as_the_original(fastchat_bin, tmp_path, model, tok):
    """The round-tripped folder (config.json written from GGUF metadata) runs
    in our engine with the logits of the original folder, bit for bit."""
    src = make_src(tmp_path, model, tok)
    run_fastchat(fastchat_bin, ["convert", "--input", src, "--output", tmp_path / "m.gguf"])
    run_fastchat(fastchat_bin, ["convert", "--input", tmp_path / "m.gguf", "--output", tmp_path / "back"])
    ids = [1, 5, 77, 30, 100, 9] * 6  # past the sliding windows
    l0 = fastchat_logits(fastchat_bin, src, ids, tmp_path, exact=True)
    l1 = fastchat_logits(fastchat_bin, tmp_path / "back", ids, tmp_path, exact=True)
    assert np.array_equal(l0, l1)


def test_default_model_gguf_to_hf(fastchat_bin, model_path, tmp_path, figures):
    out = tmp_path / "smollm2"
    run_fastchat(fastchat_bin, ["convert", "--input", model_path, "--output", out, "--max-shard-size", "200MB"])
    st = st_tensors(out)
    assert all(v[0] == "F32" for v in st.values())  # Q4_1 dequantized exactly
    idx = json.load(open(out / "model.safetensors.index.json"))
    assert idx["metadata"]["total_size"] == sum(len(v[2]) for v in st.values())
    # tokenizer: ours, read by `tokenizers`, against the real SmolLM2 tokenizer's ids
    tok = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    texts = corpus()
    gold = [json.loads(line) for line in (DATA / "tokenizer" / "golden_smollm2.jsonl").read_text(encoding="utf-8").split("\n") if line]
    n = 0
    for g in gold:
        assert tok.encode(texts[g["i"]], add_special_tokens=False).ids == g["ids"], texts[g["i"]]
        n += 1
    tc = json.load(open(out / "tokenizer_config.json"))
    assert "<|im_start|>" in tc["chat_template"] and tc["eos_token"] == "<|im_end|>"
    # the folder computes what the GGUF computes (exact mode: both dequantize
    # to the same f32 weights; only the RoPE pair layout differs)
    ids = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 28, 7018, 411, 407, 19712, 8182, 2, 198]
    l0 = fastchat_logits(fastchat_bin, model_path, ids, tmp_path, exact=True)
    l1 = fastchat_logits(fastchat_bin, out, ids, tmp_path, exact=True)
    diff = float(np.abs(l0 - l1).max())
    top_same = float((l0.argmax(-1) == l1.argmax(-1)).mean())
    figures(f"convert SmolLM2 Q4_1 GGUF -> HF f32: {n} golden tokenizations equal; "
            f"exact logits max |diff| {diff:.2e} over {len(ids)} positions, top-1 agreement {top_same:.0%}")
    assert diff < 1e-3 and top_same == 1.0
    g0 = fastchat_generate(fastchat_bin, model_path, ids, 16, exact=True)
    g1 = fastchat_generate(fastchat_bin, out, ids, 16, exact=True)
    assert g0 == g1


def llama_simple():
    """llama.cpp's llama-simple as scripts/build_llamacpp.sh builds it for
    `make bench` (LLAMACPP_BIN, or the bin folder of its cache), or None."""
    import glob
    env = os.environ.get("LLAMACPP_BIN")
    cache = os.environ.get("FASTCHAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fastchat")
    for d in ([env] if env else []) + sorted(glob.glob(os.path.join(cache, "llama.cpp-*", "bin")), reverse=True):
        exe = os.path.join(d, "llama-simple")
        if os.access(exe, os.X_OK):
            return exe
    return None


def test_gguf_we_write_runs_in_llama_cpp(fastchat_bin, model_path, tmp_path, figures):
    """A GGUF written by `convert` from an HF folder (SmolLM2 as an f16 folder,
    itself written by `convert` from the default GGUF) gives our greedy text in
    llama.cpp's llama-simple (built by scripts/build_llamacpp.sh for the
    bench). Skipped, with the reason printed, where llama.cpp is not built."""
    exe = llama_simple()
    if not exe:
        print("SKIP reason: llama.cpp's llama-simple is not built (scripts/build_llamacpp.sh, or set LLAMACPP_BIN)")
        pytest.skip("llama.cpp's llama-simple is not built (LLAMACPP_TARGETS=llama-simple scripts/build_llamacpp.sh)")
    hf, gguf = tmp_path / "smol_f16", tmp_path / "smol_f16.gguf"
    run_fastchat(fastchat_bin, ["convert", "--input", model_path, "--output", hf, "--dtype", "f16"])
    run_fastchat(fastchat_bin, ["convert", "--input", hf, "--output", gguf])
    prompt, n = "The capital of France is", 24
    p = subprocess.run([exe, "-m", str(gguf), "-n", str(n), prompt], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    ours = run_fastchat(fastchat_bin, ["generate", "--model-path", gguf, "--prompt", prompt,
                                       "--max-new-tokens", n, "--temperature", "0"]).stdout
    figures(f"convert: SmolLM2 HF f16 folder -> our GGUF -> llama.cpp llama-simple greedy: {p.stdout.strip()!r}; "
            f"ours: {(prompt + ours).strip()!r}")
    assert p.stdout.strip() == (prompt + ours).strip()


def test_sentencepiece_scores_to_tokenizer_json(fastchat_bin, tmp_path, figures):
    """A SentencePiece vocabulary that reaches GGUF as tokens + scores only
    (from tokenizer.model, as llama.cpp's converter writes Llama 2): the
    tokenizer.json we write (BPE with byte fallback, merges made from the
    scores) gives, in `tokenizers`, the ids of transformers' Llama 2 fast
    tokenizer (tests/data/tokenizer/golden_spm_legacy.jsonl), with and
    without BOS."""
    src = tmp_path / "src"
    shutil.copytree(DATA / "tiny_tok" / "llama_spm", src)
    shutil.copy(DATA / "tokenizer" / "spm" / "tokenizer.model", src)
    shutil.copy(DATA / "tokenizer" / "spm_legacy" / "tokenizer_config.json", src)
    run_fastchat(fastchat_bin, ["convert", "--input", src, "--output", tmp_path / "m.gguf"])
    import gguf
    r = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    assert "tokenizer.ggml.scores" in r.fields and "tokenizer.ggml.merges" not in r.fields
    run_fastchat(fastchat_bin, ["convert", "--input", tmp_path / "m.gguf", "--output", tmp_path / "back"])
    tok = tokenizers.Tokenizer.from_file(str(tmp_path / "back" / "tokenizer.json"))
    texts = corpus()
    gold = [json.loads(line) for line in
            (DATA / "tokenizer" / "golden_spm_legacy.jsonl").read_text(encoding="utf-8").split("\n") if line]
    for g in gold:
        assert tok.encode(texts[g["i"]], add_special_tokens=False).ids == g["ids"], texts[g["i"]]
        assert tok.encode(texts[g["i"]]).ids == g["as"], texts[g["i"]]
    figures(f"convert: SentencePiece scores -> tokenizer.json merges: {len(gold)} texts tokenize as "
            f"transformers' Llama 2 fast tokenizer (with and without BOS)")
