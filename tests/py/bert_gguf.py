"""Writes a GGUF "bert" file from a sentence-transformers BERT folder with the
`gguf` package (numpy only; no torch), as llama.cpp's converter
(convert_hf_to_gguf.py, BertModel, in the llama-cpp-python 0.3.36 source
distribution) writes it: the same metadata keys and values, tensor names,
shapes and types (f16 matrices and token embeddings, f32 vectors, position
and token-type embeddings), and the "phantom space" vocabulary (control
tokens as they are, "##x" -> "x", any other t -> "\\u2581t").
test_bert_gguf.py compares its output with the converter's when a Python with
torch is at hand (FASTCHAT_TORCH_PYTHON), and checks that llama.cpp loads it.

    python tests/py/bert_gguf.py MODEL_DIR OUT.gguf [f16|f32]
"""
import json
import sys
from pathlib import Path

import numpy as np

# Hugging Face name suffix -> GGUF name (llama.cpp's tensor map for BERT)
GLOBAL = {
    "embeddings.word_embeddings.weight": "token_embd.weight",
    "embeddings.position_embeddings.weight": "position_embd.weight",
    "embeddings.token_type_embeddings.weight": "token_types.weight",
    "embeddings.LayerNorm.weight": "token_embd_norm.weight",
    "embeddings.LayerNorm.bias": "token_embd_norm.bias",
}
LAYER = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
F32_ALWAYS = {"position_embd.weight", "token_types.weight"}


def gguf_name(hf):
    if hf.startswith("bert."):
        hf = hf[5:]
    if hf in GLOBAL:
        return GLOBAL[hf]
    if hf.startswith("encoder.layer."):
        n, rest = hf[len("encoder.layer."):].split(".", 1)
        base, kind = rest.rsplit(".", 1)
        if base in LAYER:
            return f"blk.{int(n)}.{LAYER[base]}.{kind}"
    return None


def pooling_type(folder):
    """The converter's _try_set_pooling_type: 1 mean, 2 cls, 3 last (None: no key)."""
    mods = folder / "modules.json"
    if not mods.is_file():
        return None
    for m in json.loads(mods.read_text()):
        if m.get("type") == "sentence_transformers.models.Pooling":
            cfg = json.loads((folder / m["path"] / "config.json").read_text())
            if cfg.get("pooling_mode_mean_tokens"):
                return 1
            if cfg.get("pooling_mode_cls_token"):
                return 2
            if cfg.get("pooling_mode_lasttoken"):
                return 3
            raise NotImplementedError("pooling mode not in (mean, cls, last)")
    return None


def write(folder, out, ftype="f16", edit=None):
    """edit(tensors: dict name -> ndarray, kv: dict) may change the file (bad files)."""
    import gguf
    from safetensors.numpy import load_file
    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text())
    tj = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = tj["model"]["vocab"]
    n = max(vocab.values()) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    for t, i in vocab.items():
        tokens[i] = t
    types = [1] * n
    for a in tj.get("added_tokens", []):
        types[a["id"]] = 3 if a.get("special") else 4

    def phantom(t, ty):
        if ty == 3:
            return t
        return t[2:] if t.startswith("##") else "\u2581" + t
    tokens = [phantom(t, ty) for t, ty in zip(tokens, types)]

    kv = {
        "general.type": ("model", gguf.GGUFValueType.STRING),
        "general.name": (folder.name, gguf.GGUFValueType.STRING),
        "bert.block_count": (cfg["num_hidden_layers"], gguf.GGUFValueType.UINT32),
        "bert.context_length": (cfg["max_position_embeddings"], gguf.GGUFValueType.UINT32),
        "bert.embedding_length": (cfg["hidden_size"], gguf.GGUFValueType.UINT32),
        "bert.feed_forward_length": (cfg["intermediate_size"], gguf.GGUFValueType.UINT32),
        "bert.attention.head_count": (cfg["num_attention_heads"], gguf.GGUFValueType.UINT32),
        "bert.attention.layer_norm_epsilon": (cfg.get("layer_norm_eps", 1e-12), gguf.GGUFValueType.FLOAT32),
        "general.file_type": (1 if ftype == "f16" else 0, gguf.GGUFValueType.UINT32),
        "bert.attention.causal": (False, gguf.GGUFValueType.BOOL),
    }
    pt = pooling_type(folder)
    if pt is not None:
        kv["bert.pooling_type"] = (pt, gguf.GGUFValueType.UINT32)
    kv.update({
        "general.quantization_version": (2, gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.token_type_count": (cfg.get("type_vocab_size", 1), gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.model": ("bert", gguf.GGUFValueType.STRING),
        "tokenizer.ggml.pre": ("jina-v2-en", gguf.GGUFValueType.STRING),
        "tokenizer.ggml.tokens": (tokens, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING),
        "tokenizer.ggml.token_type": (types, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.INT32),
        "tokenizer.ggml.bos_token_id": (vocab["[CLS]"], gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.eos_token_id": (vocab["[SEP]"], gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.unknown_token_id": (vocab[tj["model"].get("unk_token", "[UNK]")], gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.seperator_token_id": (vocab["[SEP]"], gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.padding_token_id": (vocab["[PAD]"], gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.mask_token_id": (vocab["[MASK]"], gguf.GGUFValueType.UINT32),
        "tokenizer.ggml.add_bos_token": (True, gguf.GGUFValueType.BOOL),
        "tokenizer.ggml.add_eos_token": (True, gguf.GGUFValueType.BOOL),
        "tokenizer.ggml.add_sep_token": (False, gguf.GGUFValueType.BOOL),
        "tokenizer.ggml.normalizer.lowercase": (bool((tj.get("normalizer") or {}).get("lowercase", True)),
                                                gguf.GGUFValueType.BOOL),
    })
    st = load_file(str(folder / "model.safetensors"))
    tensors = {}
    for hf, a in st.items():
        g = gguf_name(hf)
        if g is None:
            continue  # position_ids, the pooler, heads: the converter drops them too
        a = a.astype(np.float32)
        if ftype == "f16" and a.ndim == 2 and g not in F32_ALWAYS:
            a = a.astype(np.float16)
        tensors[g] = a
    if edit:
        edit(tensors, kv)
    w = gguf.GGUFWriter(str(out), "bert")
    for k, v in kv.items():
        w.add_key_value(k, v[0], v[1], v[2] if len(v) > 2 else None)
    for name in sorted(tensors, key=order):
        w.add_tensor(name, tensors[name])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(out)


def order(name):
    """The converter's order: globals, then each layer's tensors (sorted by name within)."""
    if name.startswith("blk."):
        n, rest = name[4:].split(".", 1)
        return (1, int(n), rest)
    return (0, 0, name)


if __name__ == "__main__":
    write(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "f16")
