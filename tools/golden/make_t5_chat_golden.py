#!/usr/bin/env python3
"""make_t5_chat_golden.py: a tiny random FastChat-T5-shaped model for the T5
text paths (fastchat generate --prompt, fastchat chat) and its reference
outputs, computed with transformers.

  tests/data/t5_chat/model/    config.json + model.safetensors (f16) of a
      seeded random T5 v1.1 (gated-gelu, untied lm_head, as Flan-T5 and
      FastChat-T5) whose vocabulary is tests/data/t5_tok's (1103 ids). The
      test puts it in a folder named "fastchat-t5-tiny" with the tokenizer, so
      FastChat's GoogleT5Adapter (and fastchat's) picks it.
  tests/data/t5_chat/golden.json
      generate: 5 raw prompts: the ids tokenizer.json gives (with </s>) and
          transformers' model.generate(greedy, max_new_tokens=24) output
          (decoder start dropped; EOS kept when reached).
      chat: 5 user messages rendered with FastChat's template for the model
          path (one_shot: GoogleT5Adapter has no template of its own), then
          FastChat's generate_stream for encoder-decoder models
          (fastchat/serve/inference.py): encoder once, decoder from
          decoder_start_token_id, lm_head on the decoder output,
          RepetitionPenaltyLogitsProcessor(1.2) over prompt + output ids
          (chat_loop's T5 default), greedy, stop at EOS, max_new_tokens 24;
          the reply text is tokenizer.decode(skip_special_tokens=True) cut at
          the template's stop_str "###" and stripped, as chat_loop shows it.
The weights are rounded to f16 before the references are computed, so the
references are exact for the stored model.

Usage: /work/gvenv/bin/python tools/golden/make_t5_chat_golden.py
Needs torch, transformers, tokenizers (gvenv) and the test venv's fschat
(.venv, for FastChat's conversation template).
"""
import gzip
import json
import os
import subprocess

import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_tiny_t5  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "t5_chat")
MAX_NEW = 24

RAW = ["Translate to German: The house is wonderful.",
       "summarize: the quick brown fox jumps over the lazy dog\nand runs away",
       "Q: What is 12 + 30?\nA:",
       "def add(a, b):\n\treturn {a + b}",
       "  Hello,   world!  Ünïcödé ①"]
CHAT = ["Hello there", "What is the capital of France?", "Write a haiku about {braces}\nand newlines",
        "List three colors:\n1.", "Explain `code` ^ in \\ one line"]


def build():
    # make_tiny_t5's recipe (seeded init, own lm_head, widened norms and
    # position biases), then the weights rounded to the stored f16
    model = make_tiny_t5.build(dict(vocab_size=1103, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                    num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=32,
                                    relative_attention_max_distance=128, feed_forward_proj="gated-gelu",
                                    tie_word_embeddings=False, seed=21))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


def one_shot_prompts(messages):
    code = ("import json,sys\nfrom fastchat.conversation import get_conv_template\nout=[]\n"
            "for m in json.load(sys.stdin):\n c=get_conv_template('one_shot')\n"
            " c.append_message(c.roles[0], m); c.append_message(c.roles[1], None)\n out.append(c.get_prompt())\n"
            "print(json.dumps(out))")
    r = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-c", code], input=json.dumps(messages),
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


@torch.no_grad()
def fastchat_stream(model, ids, penalty):
    enc = model.encoder(input_ids=torch.tensor([ids]))[0]
    proc = RepetitionPenaltyLogitsProcessor(penalty)
    output_ids = list(ids)
    dec = [model.config.decoder_start_token_id]
    out = []
    for _ in range(MAX_NEW):
        h = model.decoder(input_ids=torch.tensor([dec]), encoder_hidden_states=enc)[0]
        logits = model.lm_head(h)[:, -1, :]
        logits = proc(torch.tensor([output_ids]), logits)[0]
        tok = int(logits.argmax())
        output_ids.append(tok)
        out.append(tok)
        dec.append(tok)
        if tok == model.config.eos_token_id:
            break
    return out


def main():
    os.makedirs(os.path.join(OUT, "model"), exist_ok=True)
    tok = Tokenizer.from_str(gzip.decompress(open(os.path.join(ROOT, "tests", "data", "t5_tok", "tokenizer.json.gz"),
                                                  "rb").read()).decode())
    model = build()
    d = os.path.join(OUT, "model")
    model.save_pretrained(d, safe_serialization=True)
    sd = {k: v.detach().clone().half().contiguous() for k, v in model.state_dict().items()
          if not k.endswith("embed_tokens.weight")}
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    cj.pop("scale_decoder_outputs", None)
    cj["tie_word_embeddings"] = False
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cj, f, indent=2)
    gold = {"max_new_tokens": MAX_NEW, "generate": [], "chat": []}
    for text in RAW:
        ids = tok.encode(text).ids
        g = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=MAX_NEW, do_sample=False, num_beams=1,
                           repetition_penalty=1.0)[0].tolist()[1:]
        gold["generate"].append({"prompt": text, "ids": ids, "output": g})
    for msg, prompt in zip(CHAT, one_shot_prompts(CHAT)):
        ids = tok.encode(prompt).ids
        out = fastchat_stream(model, ids, 1.2)
        text = tok.decode(out, skip_special_tokens=True)
        k = text.find("###")
        if k >= 0:
            text = text[:k]
        gold["chat"].append({"message": msg, "prompt_len": len(ids), "output": out, "text": text.strip()})
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump(gold, f, indent=1, ensure_ascii=False)
    print(json.dumps(gold)[:2000])


if __name__ == "__main__":
    main()
