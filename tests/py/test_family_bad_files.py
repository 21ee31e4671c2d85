"""Bad files of each new family get one clear error line and exit 1, never a
crash: the cases test_families.py, test_mixtral.py, test_t5.py,
test_bert_embed.py and test_bert_gguf.py do not already cover.

  Gemma 2   folder: missing tensor, unknown hidden_activation; GGUF: wrong shape
  Phi-3     folder: unknown hidden_act; GGUF: wrong shape, missing tensor
  Mixtral   folder: unknown hidden_act; GGUF: wrong expert-stack shape
  T5        GGUF: wrong shape; GGUF tokenizer (tokenizer.ggml.model "t5"):
            no scores, a NaN score, a corrupt precompiled_charsmap, a
            token_type array of the wrong length
  BERT      quantized GGUF (fastchat quantize q8_0): a wrong-shaped matrix

Files are the committed tiny models (tests/data/tiny, tests/data/t5,
tests/data/t5_chat, all-MiniLM-L6-v2) edited with safetensors / the `gguf`
package. Every run must exit 1 with exactly one "error" line naming the
problem, and no sanitizer report.
"""
import subprocess

import numpy as np
import pytest

from conftest import DATA, run_fastchat
from test_mixtral import broken_hf

TINY = DATA / "tiny"
gguf = pytest.importorskip("gguf")


def one_error(fastchat_bin, args, *needles):
    p = subprocess.run([str(fastchat_bin), *map(str, args)], capture_output=True, text=True, timeout=300)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error")]
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    assert len(errors) == 1 and all(s in errors[0] for s in needles), p.stderr
    return errors[0]


def logits_error(fastchat_bin, model, tmp_path, *needles):
    return one_error(fastchat_bin, ["logits", "--model-path", model, "--prompt-ids", "1,2,3", "--out",
                                    tmp_path / "x.f32"], *needles)


def f32_gguf(fastchat_bin, model, out):
    run_fastchat(fastchat_bin, ["quantize", "--model-path", model, "--type", "f32", "--out", out])
    return out


def rewrite(src, dst, tensors=None, fields=None):
    """src with tensors edited (tensors(dict name -> array), arrays as read;
    quantized ones keep their raw bytes) and fields replaced or dropped
    (fields: name -> (value, type[, sub_type]) or None)."""
    r = gguf.GGUFReader(str(src))
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    fields = fields or {}
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        if f.name in fields:
            if fields[f.name] is not None:
                w.add_key_value(f.name, *fields[f.name])
            continue
        vt = f.types[0]
        w.add_key_value(f.name, f.contents(), vt, f.types[-1] if vt == gguf.GGUFValueType.ARRAY else None)
    t = {x.name: (np.array(x.data), x.tensor_type) for x in r.tensors}
    if tensors:
        tensors(t)
    F = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    for name, (a, tt) in t.items():
        if tt in F:
            w.add_tensor(name, a)
        else:
            w.add_tensor(name, a, raw_dtype=tt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return dst


def trim(name):
    def edit(t):
        a, tt = t[name]
        t[name] = (a[:-1].copy(), tt)
    return edit


def drop(name):
    def edit(t):
        del t[name]
    return edit


def test_gemma2(fastchat_bin, tmp_path, figures):
    name = "gemma2_f32_swa24"
    msgs = [
        logits_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: t.pop(
            "model.layers.1.pre_feedforward_layernorm.weight")), tmp_path,
            "missing tensor", "model.layers.1.pre_feedforward_layernorm.weight"),
        logits_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: None, {"hidden_activation": "relu2"}), tmp_path,
                     "hidden activation 'relu2'"),
    ]
    g = f32_gguf(fastchat_bin, TINY / name, tmp_path / "g.gguf")
    msgs.append(logits_error(fastchat_bin, rewrite(g, tmp_path / "g_shape.gguf", trim("blk.1.attn_k.weight")),
                             tmp_path, "blk.1.attn_k.weight", "shape"))
    for m in msgs:
        figures("gemma2 bad file: " + m)


def test_phi3(fastchat_bin, tmp_path, figures):
    name = "phi3_f32_swa32"
    msgs = [logits_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: None, {"hidden_act": "swishy"}), tmp_path,
                         "hidden activation 'swishy'")]
    g = f32_gguf(fastchat_bin, TINY / name, tmp_path / "p.gguf")
    names = {t.name for t in gguf.GGUFReader(str(g)).tensors}
    qkv = "blk.0.attn_qkv.weight" if "blk.0.attn_qkv.weight" in names else "blk.0.attn_q.weight"
    msgs.append(logits_error(fastchat_bin, rewrite(g, tmp_path / "p_shape.gguf", trim(qkv)), tmp_path, qkv, "shape"))
    msgs.append(logits_error(fastchat_bin, rewrite(g, tmp_path / "p_drop.gguf", drop("blk.1.ffn_down.weight")),
                             tmp_path, "missing tensor blk.1.ffn_down.weight"))
    for m in msgs:
        figures("phi3 bad file: " + m)


def test_mixtral(fastchat_bin, tmp_path, figures):
    name = "mixtral_f32_e4_swa20"
    msgs = [logits_error(fastchat_bin, broken_hf(tmp_path, name, lambda t: None, {"hidden_act": "gelu"}), tmp_path,
                         "hidden activation 'gelu'")]
    g = f32_gguf(fastchat_bin, TINY / name, tmp_path / "m.gguf")
    msgs.append(logits_error(fastchat_bin, rewrite(g, tmp_path / "m_shape.gguf", trim("blk.0.ffn_up_exps.weight")),
                             tmp_path, "blk.0.ffn_up_exps.weight", "shape"))
    for m in msgs:
        figures("mixtral bad file: " + m)


def t5_gguf(tmp_path):
    from test_t5_gguf_tokenizer import build_gguf
    d = tmp_path / "t5"
    d.mkdir(exist_ok=True)
    return build_gguf(d / "fastchat-t5-tiny.gguf")


def test_t5_gguf(fastchat_bin, tmp_path, figures):
    g = t5_gguf(tmp_path)
    gen = ["generate", "--prompt", "Hello there", "--max-new-tokens", "4", "--model-path"]
    one_error_gen = lambda f, *n: one_error(fastchat_bin, gen + [f], *n)  # noqa: E731
    msgs = [one_error_gen(rewrite(g, tmp_path / "t_shape.gguf", trim("dec.blk.1.ffn_up.weight")),
                          "dec.blk.1.ffn_up.weight")]
    A, U8, F32, I32 = (gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT8, gguf.GGUFValueType.FLOAT32,
                       gguf.GGUFValueType.INT32)
    r = gguf.GGUFReader(str(g))
    scores = list(r.fields["tokenizer.ggml.scores"].contents())
    cmap = bytes(r.fields["tokenizer.ggml.precompiled_charsmap"].contents())
    types = list(r.fields["tokenizer.ggml.token_type"].contents())
    nan_scores = scores[:]
    nan_scores[7] = float("nan")
    bad_cmap = (len(cmap) * 4).to_bytes(4, "little") + cmap[4:]
    cases = [
        ({"tokenizer.ggml.scores": None}, "tokenizer.ggml.scores"),
        ({"tokenizer.ggml.scores": (nan_scores, A, F32)}, "tokenizer.ggml.scores[7]"),
        ({"tokenizer.ggml.precompiled_charsmap": (list(bad_cmap), A, U8)}, "precompiled_charsmap"),
        ({"tokenizer.ggml.token_type": (types[:-3], A, I32)}, "tokenizer.ggml.token_type has 1100 entries"),
    ]
    for k, (fields, needle) in enumerate(cases):
        f = rewrite(g, tmp_path / f"t_tok{k}.gguf", fields=fields)
        msgs.append(one_error_gen(f, needle))
        msgs.append(one_error(fastchat_bin, ["tokenize", "--model-path", f, "--text", "hi"], needle))
    for m in msgs:
        figures("t5 bad file: " + m)


def test_bert_quantized_gguf(fastchat_bin, tmp_path, figures):
    import bert_gguf
    from conftest import ROOT
    r = subprocess.run([str(ROOT / "scripts" / "fetch_embed_model.sh")], capture_output=True, text=True)
    folder = r.stdout.strip()
    if r.returncode != 0 or not folder:
        pytest.fail("all-MiniLM-L6-v2 missing (scripts/fetch_embed_model.sh)", pytrace=False)
    f32 = bert_gguf.write(folder, tmp_path / "b.gguf", "f32")
    q8 = tmp_path / "b_q8.gguf"
    run_fastchat(fastchat_bin, ["quantize", "--model-path", f32, "--type", "q8_0", "--out", q8])

    def short(t):
        a, tt = t["blk.2.ffn_up.weight"]
        t["blk.2.ffn_up.weight"] = (a[:-2].copy(), tt)
    bad = rewrite(q8, tmp_path / "b_q8_bad.gguf", short)
    m = one_error(fastchat_bin, ["embed", "--model-path", bad, "--text", "hello"], "blk.2.ffn_up.weight", "shape")
    figures("bert bad file: " + m)
