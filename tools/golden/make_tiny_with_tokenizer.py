#!/usr/bin/env python3
"""make_tiny_with_tokenizer.py: tiny random-weight Hugging Face models whose
vocabulary size fits the test tokenizers of tests/data/tokenizer, for
tests/py/test_quantize_hf.py (a Hugging Face folder -> GGUF with its
tokenizer), plus the seeds of the tokenizer fuzz targets.

Writes:
  tests/data/tiny_tok/<name>/config.json, model.safetensors
      save_pretrained() of a seeded random LlamaForCausalLM / Qwen2ForCausalLM
      in float16, tied embeddings, 2 layers, hidden 32, 2 heads of 16, 1 KV
      head. No tokenizer files: the test puts the matching ones from
      tests/data/tokenizer/<tokenizer>/ next to them.
        llama_spm     vocab 2000 = the SentencePiece tokenizer (spm, spm_legacy)
        llama_bpe     vocab 3002 = the Llama-3-style tokenizer (llama3)
        qwen2_bpe     vocab 3072 > the Qwen2-style tokenizer's 3002 ids (the
                      GGUF pads the vocabulary with [PAD<id>], as Qwen2's
                      checkpoints pad theirs)
  tests/data/tiny_tok/manifest.json   which tokenizer goes with which model
  tests/data/fuzz/fuzz_tokenizer_spm/*.model   small SentencePiece models (BPE
      with and without byte fallback and with remove_extra_whitespaces, one
      Unigram that must be refused)
  tests/data/fuzz/fuzz_tokenizer_json/*.json   small hand-written tokenizer.json
      files covering the pipeline parts load_hf.c reads
  tests/data/fuzz/fuzz_tokenizer/*.txt         text seeds

Usage: /root/refvenv/venv/bin/python tools/golden/make_tiny_with_tokenizer.py
Needs torch, transformers and sentencepiece (not part of the CI venv).
"""
import json
import os
import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "tiny_tok"
FUZZ = ROOT / "tests" / "data" / "fuzz"
SEED = 20240612
INIT_STD = 0.15

# name: (arch, vocab_size, tokenizer folders that fit, rope_theta)
MODELS = {
    "llama_spm": ("llama", 2000, ["spm_legacy", "spm"], 10000.0),
    "llama_bpe": ("llama", 3002, ["llama3"], 500000.0),
    "qwen2_bpe": ("qwen2", 3072, ["qwen2"], 1000000.0),
}
COMMON = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=1, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-5,
              tie_word_embeddings=True)


def make_model(arch, vocab, theta, seed):
    ids = {"llama": dict(bos_token_id=1, eos_token_id=2), "qwen2": dict(bos_token_id=None, eos_token_id=2)}
    kw = dict(COMMON, vocab_size=vocab, rope_parameters={"rope_type": "default", "rope_theta": theta},
              **ids[arch])
    cfg = LlamaConfig(**kw) if arch == "llama" else Qwen2Config(**kw)
    torch.manual_seed(seed)
    model = (LlamaForCausalLM if arch == "llama" else Qwen2ForCausalLM)(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(INIT_STD * torch.randn_like(p))
    return model.to(torch.float16)


def write_models():
    manifest = {"generator": "tools/golden/make_tiny_with_tokenizer.py", "seed": SEED, "models": {}}
    for k, (name, (arch, vocab, toks, theta)) in enumerate(sorted(MODELS.items())):
        d = OUT / name
        if d.exists():
            shutil.rmtree(d)
        tmp = OUT / (name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        make_model(arch, vocab, theta, SEED + k).save_pretrained(tmp, safe_serialization=True)
        d.mkdir(parents=True)
        for f in ("config.json", "model.safetensors"):
            os.replace(tmp / f, d / f)
        shutil.rmtree(tmp)
        manifest["models"][name] = {"arch": arch, "vocab_size": vocab, "tokenizers": toks,
                                    "dtype": "float16", "rope_theta": theta}
        print(f"{name}: {sum(f.stat().st_size for f in d.iterdir()) / 1e3:.0f} kB")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


# ---- fuzz seeds ----

SPM_TEXT = ("The quick brown fox jumps over the lazy dog. 1234 5678\n"
            "Pack my box with five dozen liquor jugs!  Two  spaces.\n"
            "naïve café — 東京 日本語 🙂\n") * 20


def write_spm_seeds():
    import sentencepiece as spm
    d = FUZZ / "fuzz_tokenizer_spm"
    d.mkdir(parents=True, exist_ok=True)
    txt = d / "train.txt.tmp"
    txt.write_text(SPM_TEXT)
    variants = {
        "bpe_bytes": dict(model_type="bpe", vocab_size=360, byte_fallback=True,
                          normalization_rule_name="identity", remove_extra_whitespaces=False),
        "bpe_plain": dict(model_type="bpe", vocab_size=80, normalization_rule_name="identity",
                          remove_extra_whitespaces=True),
        "bpe_nodummy": dict(model_type="bpe", vocab_size=80, normalization_rule_name="identity",
                            add_dummy_prefix=False, user_defined_symbols=["<tool>"]),
        "unigram": dict(model_type="unigram", vocab_size=60, normalization_rule_name="identity"),
    }
    for name, kw in variants.items():
        prefix = d / name
        spm.SentencePieceTrainer.train(input=str(txt), model_prefix=str(prefix), num_threads=1,
                                       character_coverage=1.0, minloglevel=2, hard_vocab_limit=False,
                                       **kw)
        (d / (name + ".vocab")).unlink()
        print(f"fuzz_tokenizer_spm/{name}.model: {(d / (name + '.model')).stat().st_size} bytes")
    txt.unlink()


BL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}


def bytelevel_vocab():
    """The 256 byte symbols of GPT-2's alphabet plus a few merges."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): i for i, c in enumerate(cs)}
    merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"], ["Ġ", "a"], ["e", "r"]]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return vocab, merges


def json_seeds():
    v, m = bytelevel_vocab()
    n = len(v)
    added = [{"id": n, "content": "<|im_end|>", "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True},
             {"id": n + 1, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
              "normalized": True, "special": False}]
    bpe = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
           "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
           "vocab": v, "merges": m}
    seeds = {}
    seeds["bytelevel"] = {"version": "1.0", "added_tokens": added, "normalizer": None,
                          "pre_tokenizer": BL, "post_processor": BL, "decoder": BL, "model": bpe}
    seeds["llama3_split"] = dict(seeds["bytelevel"], pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                               "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                                               "\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        dict(BL, use_regex=False)]}, model=dict(bpe, ignore_merges=True),
        post_processor={"type": "TemplateProcessing",
                        "single": [{"SpecialToken": {"id": "<|im_end|>", "type_id": 0}},
                                   {"Sequence": {"id": "A", "type_id": 0}}],
                        "special_tokens": {"<|im_end|>": {"id": "<|im_end|>", "ids": [n],
                                                          "tokens": ["<|im_end|>"]}}})
    seeds["digits_nfc"] = dict(seeds["bytelevel"], normalizer={"type": "NFC"},
                               pre_tokenizer={"type": "Sequence", "pretokenizers": [
                                   {"type": "Digits", "individual_digits": True}, BL]})
    # SentencePiece-style: byte fallback, Metaspace, and Llama-2's legacy normalizers
    sv = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sv[f"<0x{b:02X}>"] = len(sv)
    for p in ["▁", "t", "h", "e", "▁t", "he", "▁the", "a", "▁a", "n", "d", "▁an", "▁and"]:
        sv[p] = len(sv)
    sm = [["▁", "t"], ["h", "e"], ["▁t", "he"], ["▁", "a"], ["▁a", "n"], ["▁an", "d"]]
    sadded = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
               "normalized": False, "special": True} for c, i in [("<unk>", 0), ("<s>", 1), ("</s>", 2)]]
    sbpe = dict(bpe, vocab=sv, merges=[" ".join(x) for x in sm], unk_token="<unk>", fuse_unk=True,
                byte_fallback=True)
    sdec = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    seeds["spm_metaspace"] = {"version": "1.0", "added_tokens": sadded, "normalizer": None,
                              "pre_tokenizer": {"type": "Metaspace", "replacement": "▁",
                                                "prepend_scheme": "first", "split": False},
                              "post_processor": None, "decoder": sdec, "model": sbpe}
    seeds["spm_legacy"] = dict(seeds["spm_metaspace"], pre_tokenizer=None, normalizer={
        "type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]})
    seeds["variety"] = dict(seeds["spm_legacy"], normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": False},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
        pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Whitespace"},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext", "invert": True}]},
        decoder={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True})
    d = FUZZ / "fuzz_tokenizer_json"
    d.mkdir(parents=True, exist_ok=True)
    for name, j in seeds.items():
        (d / (name + ".json")).write_text(json.dumps(j, ensure_ascii=False))
    # one seed with a tokenizer_config.json after a NUL byte (fuzz_tokenizer_json.c splits there)
    cfg = {"add_bos_token": True, "add_eos_token": True, "bos_token": "<s>", "eos_token": {"content": "</s>"},
           "chat_template": [{"name": "default", "template": "{{ messages }}"}]}
    (d / "spm_with_config.json").write_bytes(
        json.dumps(seeds["spm_legacy"], ensure_ascii=False).encode() + b"\0" + json.dumps(cfg).encode())
    print(f"fuzz_tokenizer_json: {len(seeds) + 1} seeds")

    t = FUZZ / "fuzz_tokenizer"
    t.mkdir(parents=True, exist_ok=True)
    texts = {
        "plain": b"\x00Hello world, how are you? I'm fine.",
        "special": b"\x01<|im_start|>user\nhi<|im_end|>\n<s>x</s>",
        "unicode": "\x02naïve café — 東京 🙂 👨‍👩‍👧 e\u0301 \u00a0\u3000".encode(),
        "spaces": b"\x03   leading\t\ttabs\r\n\n  trailing   ",
        "digits": b"\x04 1234567890 3.14159 0x1F",
        "invalid": b"\x05x\xc3(\xf0\x9f\x98y\xff\xed\xa0\x80",
        "ids": b"\x86" + bytes(range(256)),
    }
    for name, b in texts.items():
        (t / (name + ".txt")).write_bytes(b)


def main():
    write_models()
    write_spm_seeds()
    json_seeds()


if __name__ == "__main__":
    main()
