#!/usr/bin/env python3
"""make_t5_gguf.py: llama.cpp's own T5 GGUF tokenizer metadata for
tests/py/test_t5_gguf_tokenizer.py, in tests/data/t5_gguf/.

llama.cpp's convert_hf_to_gguf.py (conversion/t5.py, T5Model.set_vocab) is run
on a folder made of tests/data/t5_chat/model (the tiny FastChat-T5-shaped
model: config.json, model.safetensors) plus tests/data/t5_tok/spiece.model.gz
and an added_tokens.json with FastChat-T5's nine added tokens at tokenizer.json's
ids ("\\n" 1100, " " 1101, "\\t" 1102 past the 1000 pieces and the 100
<extra_id_N>; "<" 26, "{" 82, "}" 98, "\\\\" 108, "`" 328, "^" 329, which are
also pieces: listing them makes the converter mark them USER_DEFINED, so that
they are split out before the model as tokenizer.json's added tokens are; a
transformers-saved added_tokens.json lists only the ids past the vocabulary, and
a GGUF converted from that tokenizes "{" etc. inside words). The converter writes tokenizer.ggml.model "t5", tokens,
scores, token_type (NORMAL/UNKNOWN/CONTROL/BYTE/UNUSED, USER_DEFINED for
added_tokens.json, UNUSED [PAD<id>] for the holes), add_space_prefix,
remove_extra_whitespaces and precompiled_charsmap (the nmt_nfkc blob).

The converted file (about 500 KB, mostly the charsmap and the weights) is too
big to commit, so what is stored is that file with its tensors left out:
  t5_chat_meta.gguf.gz   every key/value llama.cpp's converter wrote, in its
                         order, and no tensors
  tensors.json           the converter's tensor names, shapes and types (the
                         test checks the GGUF it builds against them)
The test puts tests/data/t5_chat/model's weights back in under llama.cpp's
names with the `gguf` package, so the model file it runs is the converter's
output with the same tensors.

Usage: /work/gvenv/bin/python tools/golden/make_t5_gguf.py [LLAMA_CPP_SRC]
LLAMA_CPP_SRC: the llama.cpp tree (default ~/.cache/fastchat/llama.cpp-*/src,
what scripts/build_llamacpp.sh unpacks from the llama-cpp-python sdist).
Needs torch, transformers, sentencepiece, protobuf and gguf (gvenv).
"""
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

import gguf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "t5_gguf")
FASTCHAT_TOKENS = {"<": 26, "{": 82, "}": 98, "\\": 108, "`": 328, "^": 329, "\n": 1100, " ": 1101, "\t": 1102}


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else sorted(glob.glob(os.path.expanduser(
        "~/.cache/fastchat/llama.cpp-*/src")))[-1]
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp()
    model = os.path.join(tmp, "fastchat-t5-tiny")
    shutil.copytree(os.path.join(ROOT, "tests", "data", "t5_chat", "model"), model)
    with open(os.path.join(ROOT, "tests", "data", "t5_tok", "spiece.model.gz"), "rb") as f:
        open(os.path.join(model, "spiece.model"), "wb").write(gzip.decompress(f.read()))
    with open(os.path.join(model, "added_tokens.json"), "w") as f:
        json.dump(FASTCHAT_TOKENS, f)
    shutil.copy(os.path.join(ROOT, "tests", "data", "t5_tok", "tokenizer_config.json"), model)
    out = os.path.join(tmp, "t5.gguf")
    subprocess.run([sys.executable, os.path.join(src, "convert_hf_to_gguf.py"), model, "--outfile", out,
                    "--outtype", "f32"], check=True)

    r = gguf.GGUFReader(out)
    w = gguf.GGUFWriter(os.path.join(tmp, "meta.gguf"), "t5")
    tensors = []
    for t in r.tensors:
        tensors.append({"name": t.name, "shape": [int(x) for x in t.shape], "type": t.tensor_type.name})
    for field in r.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(os.path.join(tmp, "meta.gguf"), "rb") as f, \
            gzip.GzipFile(os.path.join(OUT, "t5_chat_meta.gguf.gz"), "wb", mtime=0) as g:
        g.write(f.read())
    with open(os.path.join(OUT, "tensors.json"), "w") as f:
        json.dump(tensors, f, indent=0)
    kinds = {f.name: f.types for f in r.fields.values() if f.name.startswith("tokenizer.")}
    print("wrote", OUT, len(tensors), "tensors;", {k: [t.name for t in v] for k, v in kinds.items()})
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
