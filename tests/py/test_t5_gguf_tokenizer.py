"""T5 GGUF files as llama.cpp's converter writes them (tokenizer.ggml.model
"t5": pieces, scores, token types, precompiled_charsmap, add_space_prefix,
remove_extra_whitespaces) run without a folder: `fastchat tokenize`,
`generate`, `chat` and `serve` read the tokenizer from the GGUF
(src/tokenizer/load_gguf.c, t5_from_gguf).

The file: tests/data/t5_gguf/t5_chat_meta.gguf.gz is every key/value that
llama.cpp's convert_hf_to_gguf.py wrote for tests/data/t5_chat/model +
tests/data/t5_tok/spiece.model + FastChat-T5's added tokens
(tools/golden/make_t5_gguf.py; the converter needs torch, CI has none); the
test adds the model's weights under llama.cpp's tensor names with the `gguf`
package and checks them against the converter's tensor list
(tests/data/t5_gguf/tensors.json).

References:
  ids     `sentencepiece` on tests/data/t5_tok/spiece.model, applied to the
          spans between the file's USER_DEFINED tokens (FastChat-T5's "\\n",
          " ", "{", ..., which llama.cpp and transformers split out before the
          model), over
          the whole tokenizer corpus (2298 texts), plus </s>.
  output  greedy `generate` ids from the GGUF equal those from the folder
          (tokenizer.json) and transformers' (tests/data/t5_chat/golden.json);
          `chat` on the GGUF gives the folder's FastChat replies; a server
          started on the GGUF answers like the one on the folder.
"""
import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

from test_controller import Proc, free_port, wait_until
from test_tokenizer import corpus_lines

gguf = pytest.importorskip("gguf")
spm = pytest.importorskip("sentencepiece")

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
GOLD = json.loads((DATA / "t5_chat" / "golden.json").read_text(encoding="utf-8"))
USER = {"<": 26, "{": 82, "}": 98, "\\": 108, "`": 328, "^": 329, "\n": 1100, " ": 1101, "\t": 1102}
SPECIAL = {"<pad>": 0, "</s>": 1, "<unk>": 2}  # CONTROL / UNKNOWN, matched as parse_special says
SPLIT = {**USER, **SPECIAL}
USER_RE = "(" + "|".join(re.escape(k) for k in sorted(SPLIT, key=len, reverse=True)) + ")"
EOS = 1
END = " __END_OF_A_MESSAGE_47582648__\n"


def build_gguf(out):
    """llama.cpp's converter metadata + tests/data/t5_chat/model's weights."""
    from safetensors.numpy import load_file
    meta = out.parent / "meta.gguf"
    meta.write_bytes(gzip.decompress((DATA / "t5_gguf" / "t5_chat_meta.gguf.gz").read_bytes()))
    r = gguf.GGUFReader(str(meta))
    w = gguf.GGUFWriter(str(out), "t5")
    for field in r.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    want = {t["name"]: t for t in json.loads((DATA / "t5_gguf" / "tensors.json").read_text())}
    cfg = json.loads((DATA / "t5_chat" / "model" / "config.json").read_text())
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.T5, max(cfg["num_layers"], cfg["num_decoder_layers"]))
    seen = set()
    for hf, a in sorted(load_file(str(DATA / "t5_chat" / "model" / "model.safetensors")).items()):
        g = names.get_name(hf[: -len(".weight")]) if hf != "shared.weight" else "token_embd"
        if g is None or g + ".weight" in seen:
            continue
        g += ".weight"
        assert g in want, (hf, g)
        assert [int(x) for x in reversed(a.shape)] == want[g]["shape"], g
        seen.add(g)
        w.add_tensor(g, a.astype(np.float32))
    assert seen == set(want), set(want) ^ seen
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory, fastchat_bin):
    d = tmp_path_factory.mktemp("t5gguf")
    g = build_gguf(d / "fastchat-t5-tiny.gguf")
    folder = d / "fastchat-t5-tiny"
    shutil.copytree(DATA / "t5_chat" / "model", folder)
    (folder / "tokenizer.json").write_bytes(gzip.decompress((DATA / "t5_tok" / "tokenizer.json.gz").read_bytes()))
    shutil.copy(DATA / "t5_tok" / "tokenizer_config.json", folder)
    sp = d / "spiece.model"
    sp.write_bytes(gzip.decompress((DATA / "t5_tok" / "spiece.model.gz").read_bytes()))
    return {"gguf": g, "folder": folder, "spiece": sp}


def run(*args, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, timeout=600, **kw)
    assert r.returncode == 0, f"{args[:3]}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-2000:]}"
    return r.stdout


def split_encode(sp, text):
    """sentencepiece on the spans between the user-defined and special tokens
    (llama.cpp's partition with parse_special)."""
    ids = []
    for part in re.split(USER_RE, text):
        if part in SPLIT:
            ids.append(SPLIT[part])
        elif part:
            ids += sp.encode(part)
    return ids


def test_converter_metadata(files):
    r = gguf.GGUFReader(str(files["gguf"]))
    f = r.fields
    assert bytes(f["tokenizer.ggml.model"].contents(), "utf-8") == b"t5"
    assert f["tokenizer.ggml.precompiled_charsmap"].types[-1] == gguf.GGUFValueType.UINT8
    toks, types = f["tokenizer.ggml.tokens"].contents(), f["tokenizer.ggml.token_type"].contents()
    assert len(toks) == 1103
    assert {toks[i]: i for i, t in enumerate(types) if t == 4} == USER  # USER_DEFINED


def test_corpus_matches_sentencepiece(fastchat_bin, files, tmp_path, figures):
    sp = spm.SentencePieceProcessor(model_file=str(files["spiece"]))
    lines = corpus_lines()
    want, owner = [], []
    for k, line in enumerate(lines):
        ids = split_encode(sp, line)
        want += ids + [USER["\n"]]
        owner += [k] * (len(ids) + 1)
    want[-1] = EOS  # the last separator is T5's appended </s>
    f = tmp_path / "corpus.txt"
    f.write_bytes("\n".join(lines).encode())
    got = json.loads(run(fastchat_bin, "tokenize", "--model-path", files["gguf"], "--file", f))
    if got != want:
        i = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        k = owner[min(i, len(owner) - 1)]
        raise AssertionError(f"first difference at id {i}, in text {k} {lines[k]!r}: "
                             f"got {got[i:i + 8]} want {want[i:i + 8]}")
    figures(f"t5 gguf tokenizer: {len(lines)} texts, {len(want)} ids equal to sentencepiece (split at user-defined)")


def test_decode(fastchat_bin, files):
    """Text back from the GGUF's ids as `tokenizers` decodes the same ids with
    the folder's tokenizer.json (the pieces and the user-defined ids agree)."""
    tokenizers = pytest.importorskip("tokenizers")
    ref = tokenizers.Tokenizer.from_file(str(files["folder"] / "tokenizer.json"))
    for text in ["Hello world", "ｆｕｌｌｗｉｄｔｈ ①②", "tabs\tand\nlines  two", "x", "  lead and trail  "]:
        ids = json.loads(run(fastchat_bin, "tokenize", "--model-path", files["gguf"], "--text", text))
        assert ids[-1] == EOS
        out = run(fastchat_bin, "detokenize", "--model-path", files["gguf"], "--ids", ",".join(map(str, ids)),
                  "--skip-special").decode()[:-1]
        assert out == ref.decode(ids, skip_special_tokens=True), text


def generate(fastchat_bin, path, prompt, *flags):
    return json.loads(run(fastchat_bin, "generate", "--model-path", path, "--prompt", prompt, "--max-new-tokens",
                          GOLD["max_new_tokens"], "--temperature", 0, "--print-ids", *flags))


@pytest.mark.parametrize("mode", ["--exact", "fast"])
def test_generate_equals_folder(fastchat_bin, files, mode, figures):
    flags = [mode] if mode != "fast" else []
    for g in GOLD["generate"]:
        a = generate(fastchat_bin, files["gguf"], g["prompt"], *flags)
        b = generate(fastchat_bin, files["folder"], g["prompt"], *flags)
        assert a == b, g["prompt"]
        if mode == "--exact":
            assert a == g["output"], g["prompt"]
    figures(f"t5 gguf generate {mode}: {len(GOLD['generate'])} prompts, greedy ids equal to the folder's")


def chat_replies(fastchat_bin, path, messages):
    inp = "".join(m + END for m in messages) + "!!exit" + END
    out = run(fastchat_bin, "chat", "--model-path", path, "--style", "programmatic", "--temperature", 0,
              "--max-new-tokens", GOLD["max_new_tokens"], "--no-history", "--debug", "--exact",
              input=inp.encode()).decode()
    return [json.loads(l)["outputs"] for l in out.splitlines() if l.startswith('{"conv_template"')]


def test_chat_equals_folder(fastchat_bin, files):
    msgs = [c["message"] for c in GOLD["chat"]]
    got = chat_replies(fastchat_bin, files["gguf"], msgs)
    assert got == chat_replies(fastchat_bin, files["folder"], msgs)
    assert got == [c["text"] for c in GOLD["chat"]]


def test_serve_gguf(fastchat_bin, files, tmp_path):
    ports = [free_port() for _ in range(3)]
    p = Proc([fastchat_bin, "serve", "--model-path", files["gguf"], "--model-names", "t5",
              "--controller-port", ports[0], "--worker-port", ports[1], "--port", ports[2], "--exact"],
             tmp_path / "serve.log")
    api = f"http://127.0.0.1:{ports[2]}"
    try:
        wait_until(lambda: requests.get(api + "/v1/models", timeout=5).json().get("data"), 120, "fastchat serve", [p])
        for c in GOLD["chat"][:3]:
            body = {"model": "t5", "messages": [{"role": "user", "content": c["message"]}], "temperature": 0,
                    "max_tokens": GOLD["max_new_tokens"], "repetition_penalty": 1.2}
            r = requests.post(api + "/api/v1/chat/completions", json=body, timeout=600)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"].strip() == c["text"], c["message"]
        assert p.alive(), p.output()[-3000:]
    finally:
        p.stop()
