#!/usr/bin/env python3
"""make_train_template_golden.py: golden labels for `fastchat train --masking
template`, written by fschat's own fastchat/train/train_with_template.py
(apply_prompt_template, tokenize_conversations, mask_targets: its
`preprocess`, called one record at a time as its LazySupervisedDataset does,
with the record's "system" key).

train_with_template.py picks the template from the model path
(get_conversation_template(model_name_or_path)); here the template is named
directly: get_conversation_template is replaced by fastchat.conversation.
get_conv_template for the run, so that the set says which template it used.

Sets (tests/data/train/labels_template_golden.json):
  smollm2_chatml   the default model's tokenizer (as make_train_golden.py
                   builds it; SmolLM2's bos <|im_start|>, eos <|im_end|>,
                   unk <|endoftext|>), template "qwen-7b-chat" (ChatML with a system
                   message; fschat has no SmolLM2 template), model_max_length 160
  smollm2_vicuna   the same tokenizer, template "vicuna_v1.1", 160
  spm_vicuna       tests/data/tokenizer/spm (Llama SentencePiece, adds <s>),
                   template "vicuna_v1.1", 200
Each: the same layout as labels_golden.json (ids up to the last non-pad id,
spans where labels == ids, mismatch = FastChat printed its warning), over
the 220 conversations of make_train_golden.make_conversations.

Usage: /work/gvenv/bin/python tools/golden/make_train_template_golden.py [--gguf PATH]
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)


def label_set(name, tok, tok_ref, template, max_len, convs):
    import types
    # train_with_template.py imports jsonlines for .jsonl data files only;
    # preprocess does not use it, and gvenv does not have it
    sys.modules.setdefault("jsonlines", types.ModuleType("jsonlines"))
    import fastchat.train.train_with_template as ftt
    from fastchat.conversation import get_conv_template

    ftt.get_conversation_template = get_conv_template
    ftt.local_rank = 0
    tok.model_max_length = max_len
    tok.padding_side = "right"
    tok.pad_token = tok.unk_token  # as train_with_template.py does
    examples = []
    n_mismatch = n_trunc = 0
    for ci, rec in enumerate(convs):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out = ftt.preprocess([rec["conversations"]], tok, template,
                                 systems=[rec.get("system", "")])
        ids = out["input_ids"][0].tolist()
        labels = out["labels"][0].tolist()
        mismatch = "tokenization mismatch" in buf.getvalue()
        n_mismatch += mismatch
        end = len(ids)
        while end > 0 and ids[end - 1] == tok.pad_token_id:
            end -= 1
        n_trunc += end == max_len
        spans = []
        t = 0
        while t < len(labels):
            if labels[t] != -100:
                s = t
                while t < len(labels) and labels[t] != -100:
                    assert labels[t] == ids[t]
                    t += 1
                spans.append([s, t])
            else:
                t += 1
        examples.append({"conv": ci, "ids": ids[:end], "spans": spans, "mismatch": mismatch})
    print(f"{name}: {len(examples)} examples, {n_mismatch} mismatched, {n_trunc} truncated, "
          f"{sum(1 for e in examples if e['spans'])} with labels", file=sys.stderr)
    return {"name": name, "tokenizer": tok_ref, "template": template, "model_max_length": max_len,
            "pad_id": tok.pad_token_id, "examples": examples}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/train"))
    ap.add_argument("--gguf", default=None)
    a = ap.parse_args()
    gguf = a.gguf or subprocess.check_output([os.path.join(ROOT, "scripts/fetch_model.sh")],
                                             text=True).strip()
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
    from make_tokenizer_golden import smollm2_reference
    from make_train_golden import make_conversations

    convs = make_conversations(220)
    sets = []
    for template in ("qwen-7b-chat", "vicuna_v1.1"):
        tok = PreTrainedTokenizerFast(tokenizer_object=smollm2_reference(gguf),
                                      unk_token="<|endoftext|>", bos_token="<|im_start|>",
                                      eos_token="<|im_end|>", pad_token="<|im_end|>")
        short = "chatml" if template != "vicuna_v1.1" else "vicuna"
        sets.append(label_set(f"smollm2_{short}", tok, "$FASTCHAT_MODEL", template, 160, convs))
    tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "tests/data/tokenizer/spm"), use_fast=False)
    sets.append(label_set("spm_vicuna", tok, "tests/data/tokenizer/spm", "vicuna_v1.1", 200, convs))
    doc = {"generator": "tools/golden/make_train_template_golden.py",
           "reference": "fschat 0.2.36 fastchat.train.train_with_template.preprocess",
           "conversations": convs, "sets": sets}
    with open(os.path.join(a.out, "labels_template_golden.json"), "w") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))


if __name__ == "__main__":
    main()
