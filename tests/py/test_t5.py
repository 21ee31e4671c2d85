"""T5 encoder-decoder models (src/model/arch_t5.c) against transformers.

The models are the tiny random T5s of tests/data/t5 written by
tools/golden/make_tiny_t5.py (reference.npz: transformers' logits and greedy
continuations of T5ForConditionalGeneration):

- t5_v11_gated_untied: gated-gelu feed-forward, separate lm_head (no output
  scaling), 2 encoder / 3 decoder layers, 8 buckets with max_distance 12;
- t5_v10_relu_tied: ReLU feed-forward, head tied to the shared embedding
  with the d_model**-0.5 scaling, 32 buckets / 128.

- logits: `fastchat logits --prompt-ids ENC --decoder-ids DEC` (encoder once,
  then one decoder step per id with the decoder's own KV cache and the
  cross-attention keys/values computed once) within 1e-4 of transformers'
  teacher-forced logits at all 32 decoder positions;
- greedy: `fastchat generate --exact` from the decoder start token, 64 tokens, EOS
  ignored, identical to transformers' greedy for 5 prompts (1 to 60 ids);
- threads: --threads 1 and --threads 3 give the same logits, bit for bit;
- GGUF: each folder written as a GGUF file with llama.cpp's t5 tensor names
  and keys (the `gguf` package's TensorNameMap and GGUFWriter; f32, and
  q8_0 for the matrices whose rows are a multiple of 32) gives the f32
  logits within 1e-4 (exact mode) and the q8_0 ones with top-1 agreement >=
  90%; the fast mode (no --exact) agrees on top-1 with transformers >= 99%
  on f32 and with the exact mode >= 95% on q8_0 (figures printed);
- bad files: a missing tensor, a wrong shape and an unknown activation, and
  a GGUF missing a cross-attention tensor, each
  stop `fastchat logits` with exit status 1 and one error line.
"""
import json
import shutil

import numpy as np
import pytest

from conftest import DATA, ids_arg, run_fastchat

T5 = DATA / "t5"
MANIFEST = json.loads((T5 / "manifest.json").read_text())["models"]
NAMES = sorted(MANIFEST)
EXACT_TOL = 1e-4


def load(name):
    z = np.load(T5 / name / "reference.npz")
    return {k: z[k] for k in z.files}


def t5_logits(fastchat_bin, model, enc, dec, tmp_path, threads=None, exact=True):
    out = tmp_path / "t5.f32"
    extra = (["--threads", threads] if threads else []) + (["--exact"] if exact else [])
    run_fastchat(fastchat_bin, ["logits", "--model-path", model, "--prompt-ids", ids_arg(enc),
                                "--decoder-ids", ids_arg(dec), "--out", out] + extra)
    a = np.fromfile(out, dtype="<f4")
    return a.reshape(len(dec), -1)


def test_models_cover_both_versions():
    kinds = {(MANIFEST[n]["feed_forward_proj"], MANIFEST[n]["tied"]) for n in NAMES}
    assert {("gated-gelu", False), ("relu", True)} <= kinds, kinds


@pytest.mark.parametrize("name", NAMES)
def test_logits_all_decoder_positions(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    ours = t5_logits(fastchat_bin, T5 / name, r["enc_ids"], r["dec_ids"], tmp_path)
    assert ours.shape == r["logits"].shape
    d = float(np.abs(ours - r["logits"]).max())
    figures(f"t5/{name:22s} logits max|d| {d:.2e} over {ours.shape[0]} decoder positions (tol {EXACT_TOL:g}); "
            f"sensitivity {MANIFEST[name]['sensitivity']}")
    assert d <= EXACT_TOL, f"{name}: logits differ from transformers by {d:.3e}"


@pytest.mark.parametrize("name", NAMES)
def test_threads_same_logits(name, fastchat_bin, tmp_path):
    """The matrix products split by rows over threads give the same bits."""
    r = load(name)
    one = t5_logits(fastchat_bin, T5 / name, r["enc_ids"], r["dec_ids"], tmp_path, threads=1)
    three = t5_logits(fastchat_bin, T5 / name, r["enc_ids"], r["dec_ids"], tmp_path, threads=3)
    assert np.array_equal(one, three), f"{name}: --threads 3 differs from --threads 1 by {np.abs(one - three).max():.3e}"


@pytest.mark.parametrize("name", NAMES)
def test_greedy_64(name, fastchat_bin, figures):
    r = load(name)
    for i in range(5):
        p = run_fastchat(fastchat_bin, ["generate", "--model-path", T5 / name, "--prompt-ids", ids_arg(r[f"prompt{i}"]),
                                        "--max-new-tokens", 64, "--temperature", 0, "--print-ids", "--ignore-eos",
                                        "--exact"])
        got = json.loads(p.stdout.strip().splitlines()[-1])
        want = [int(x) for x in r[f"greedy{i}"]]
        assert got == want, f"{name} prompt {i} ({len(r[f'prompt{i}'])} ids): greedy differs\nours {got}\nref  {want}"
    figures(f"t5/{name:22s} greedy 64 tokens identical for 5 prompts (reference min top-1 margin "
            f"{MANIFEST[name]['greedy_min_margin']:.4f})")


def broken(tmp_path, name, edit_tensors=None, edit_config=None):
    from safetensors.numpy import load_file, save_file
    d = tmp_path / f"bad_{name}"
    shutil.copytree(T5 / name, d)
    if edit_tensors:
        t = load_file(str(d / "model.safetensors"))
        edit_tensors(t)
        save_file(t, str(d / "model.safetensors"), metadata={"format": "pt"})
    if edit_config:
        c = json.loads((d / "config.json").read_text())
        edit_config(c)
        (d / "config.json").write_text(json.dumps(c))
    return d


def expect_one_error(fastchat_bin, model, tmp_path, *needles):
    p = run_fastchat(fastchat_bin, ["logits", "--model-path", model, "--prompt-ids", "1,2,3",
                                    "--out", tmp_path / "x.f32"], check=False)
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error")]
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stderr}"
    assert len(errors) == 1 and all(s in errors[0] for s in needles), p.stderr
    return errors[0]


def test_bad_files(fastchat_bin, tmp_path, figures):
    name = "t5_v11_gated_untied"

    def drop(t):
        del t["decoder.block.2.layer.1.EncDecAttention.k.weight"]

    def short(t):
        t["encoder.block.1.layer.1.DenseReluDense.wi_1.weight"] = t["encoder.block.1.layer.1.DenseReluDense.wi_1.weight"][:-1]

    def act(c):
        c["feed_forward_proj"] = "gated-mish"

    lines = [
        expect_one_error(fastchat_bin, broken(tmp_path / "a", name, edit_tensors=drop), tmp_path,
                         "missing tensor decoder.block.2.layer.1.EncDecAttention.k.weight"),
        expect_one_error(fastchat_bin, broken(tmp_path / "b", name, edit_tensors=short), tmp_path,
                         "encoder.block.1.layer.1.DenseReluDense.wi_1.weight", "shape"),
        expect_one_error(fastchat_bin, broken(tmp_path / "c", name, edit_config=act), tmp_path, "gated-mish"),
        expect_one_error(fastchat_bin, write_gguf(name, tmp_path / "d.gguf", drop="dec.blk.1.cross_attn_v.weight"),
                         tmp_path, "missing tensor dec.blk.1.cross_attn_v.weight"),
    ]
    for ln in lines:
        figures(f"t5/bad file: {ln}")


def write_gguf(name, out, qtype=None, drop=None):
    """The HF folder as a T5 GGUF: llama.cpp's names (gguf.TensorNameMap),
    its keys, plus t5.attention.relative_max_distance (ours; llama.cpp fixes
    128)."""
    import gguf
    from safetensors.numpy import load_file
    cfg = json.loads((T5 / name / "config.json").read_text())
    tensors = load_file(str(T5 / name / "model.safetensors"))
    n_dec = cfg.get("num_decoder_layers") or cfg["num_layers"]
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.T5, max(cfg["num_layers"], n_dec))
    w = gguf.GGUFWriter(str(out), "t5")
    w.add_context_length(512)
    w.add_embedding_length(cfg["d_model"])
    w.add_feed_forward_length(cfg["d_ff"])
    w.add_block_count(cfg["num_layers"])
    w.add_decoder_block_count(n_dec)
    w.add_head_count(cfg["num_heads"])
    w.add_key_length(cfg["d_kv"])
    w.add_value_length(cfg["d_kv"])
    w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
    w.add_relative_attn_buckets_count(cfg["relative_attention_num_buckets"])
    w.add_uint32("t5.attention.relative_max_distance", cfg["relative_attention_max_distance"])
    w.add_decoder_start_token_id(cfg["decoder_start_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    for hf, a in sorted(tensors.items()):
        g = names.get_name(hf[: -len(".weight")])
        assert g, hf
        if g + ".weight" == drop:
            continue
        a = a.astype(np.float32)
        if qtype and a.ndim == 2 and a.shape[1] % 32 == 0 and "rel_b" not in g:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(g + ".weight", q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(g + ".weight", a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


@pytest.mark.parametrize("name", NAMES)
def test_gguf(name, fastchat_bin, tmp_path, figures):
    r = load(name)
    f32 = t5_logits(fastchat_bin, write_gguf(name, tmp_path / "f32.gguf"), r["enc_ids"], r["dec_ids"], tmp_path)
    d = float(np.abs(f32 - r["logits"]).max())
    q8 = t5_logits(fastchat_bin, write_gguf(name, tmp_path / "q8.gguf", "q8_0"), r["enc_ids"], r["dec_ids"], tmp_path)
    top1 = float((q8.argmax(1) == r["logits"].argmax(1)).mean())
    q8_fast = t5_logits(fastchat_bin, tmp_path / "q8.gguf", r["enc_ids"], r["dec_ids"], tmp_path, exact=False)
    f32_fast = t5_logits(fastchat_bin, tmp_path / "f32.gguf", r["enc_ids"], r["dec_ids"], tmp_path, exact=False)
    fast_self = float((q8_fast.argmax(1) == q8.argmax(1)).mean())
    fast_ref = float((q8_fast.argmax(1) == r["logits"].argmax(1)).mean())
    f32_fast_top1 = float((f32_fast.argmax(1) == r["logits"].argmax(1)).mean())
    figures(f"t5/{name:22s} GGUF f32 exact max|d| {d:.2e} (tol {EXACT_TOL:g}), fast top-1 {100 * f32_fast_top1:.0f}% "
            f"(max|d| {float(np.abs(f32_fast - r['logits']).max()):.1e}); q8_0 exact top-1 vs transformers "
            f"{100 * top1:.0f}% (max|d| {float(np.abs(q8 - r['logits']).max()):.3f}), q8_0 fast top-1 vs q8_0 exact "
            f"{100 * fast_self:.0f}%, vs transformers {100 * fast_ref:.0f}%")
    assert d <= EXACT_TOL, f"{name}: GGUF f32 logits differ from transformers by {d:.3e}"
    assert top1 >= 0.9, f"{name}: GGUF q8_0 top-1 agreement {top1:.2f}"
    assert f32_fast_top1 >= 0.99, f"{name}: f32 fast-mode top-1 agreement with transformers {f32_fast_top1:.2f}"
    assert fast_self >= 0.95, f"{name}: q8_0 fast-mode top-1 vs exact mode {fast_self:.2f}"
