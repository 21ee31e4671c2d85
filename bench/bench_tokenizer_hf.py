#!/usr/bin/env python3
"""bench_tokenizer_hf.py: Hugging Face `tokenizers` encode speed, measured as
bench/bench_tokenizer.c measures ours (scripts/bench_tokenizer.sh runs both).

  bench_tokenizer_hf.py TOKENIZER CORPUS [--name NAME] [--seconds S]
                        [--mode texts|whole|both] [--expect OURS.log] [--decode]

TOKENIZER is a Hugging Face folder or tokenizer.json file, loaded with
`tokenizers.Tokenizer.from_file`, or a GGUF file: its vocabulary and merges
rebuilt as the tokenizer.json they come from by
tools/golden/make_tokenizer_golden.py (smollm2_reference: SmolLM2's published
pipeline, the reference the tokenizer tests use for the default model; only
GGUF files with tokenizer.ggml.pre = "smollm" are taken).

CORPUS, --mode and the method are those of bench_tokenizer.c: .jsonl texts
("text", or "text_hex" for bytes) each encoded on its own, any other file as
one text (invalid UTF-8 read as U+FFFD, as ours reads it); one untimed warm-up
pass that counts the tokens, then whole passes until S seconds of process CPU
time; encode(text, add_special_tokens=False), special tokens parsed. One
thread: RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false are set before
`tokenizers` loads (a single encode does not use the pool anyway).

Output (the same keys as ours, engine=hf):
  tokbench: tokenizer=NAME engine=hf op=encode mode=texts texts=N bytes=N
            tokens=N passes=N threads=1 cpu_s=X wall_s=X mb_per_s=X
            wall_mb_per_s=X
--expect OURS.log reads bench_tokenizer's output for the same tokenizer and
corpus, and when a mode's count of tokens differs from ours prints
"tokbench: MISMATCH ..." to stdout and stderr and exits 2. --decode adds op=decode
(decode(ids) of each text; bytes are the decoded bytes).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]


def load_tokenizer(path):
    from tokenizers import Tokenizer
    p = Path(path)
    if p.is_dir():
        return Tokenizer.from_file(str(p / "tokenizer.json"))
    if p.suffix != ".gguf":
        return Tokenizer.from_file(str(p))
    from gguf import GGUFReader
    f = GGUFReader(str(p)).fields.get("tokenizer.ggml.pre")
    pre = bytes(f.parts[f.data[0]]).decode() if f else None
    if pre != "smollm":
        sys.exit(f"error: {path}: tokenizer.ggml.pre is {pre!r}; only 'smollm' GGUF files (the "
                 "default model) have a tokenizer.json equivalent here -- pass a folder instead")
    sys.path.insert(0, str(ROOT / "tools" / "golden"))
    from make_tokenizer_golden import smollm2_reference
    return smollm2_reference(str(p))


def load_corpus(path):
    """The texts, as str (what encode takes) and their UTF-8 byte counts as read."""
    data = Path(path).read_bytes()
    if not str(path).endswith(".jsonl"):
        return [data.decode("utf-8", "replace")], [len(data)]
    texts, sizes = [], []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line:
            continue
        row = json.loads(line)
        if "text_hex" in row:
            b = bytes.fromhex(row["text_hex"])
        elif isinstance(row.get("text"), str):
            b = row["text"].encode("utf-8", "surrogatepass")
        else:
            sys.exit(f"error: {path}:{n}: no \"text\" string")
        texts.append(b.decode("utf-8", "replace"))
        sizes.append(len(b))
    return texts, sizes


def line(name, op, mode, n_texts, nbytes, tokens, passes, cpu, wall):
    total = nbytes * passes
    print(f"tokbench: tokenizer={name} engine=hf op={op} mode={mode} texts={n_texts} bytes={nbytes} "
          f"tokens={tokens} passes={passes} threads=1 cpu_s={cpu:.3f} wall_s={wall:.3f} "
          f"mb_per_s={total / cpu / 1e6 if cpu > 0 else 0:.3f} "
          f"wall_mb_per_s={total / wall / 1e6 if wall > 0 else 0:.3f}", flush=True)


def timed(fn, seconds):
    """Runs fn() once untimed, then until `seconds` of CPU time; returns
    (first result, passes, cpu seconds, wall seconds, results consistent)."""
    first = fn()
    same = True
    passes = 0
    c0, w0 = time.process_time(), time.perf_counter()
    while True:
        same &= fn() == first
        passes += 1
        cpu = time.process_time() - c0
        if cpu >= seconds:
            return first, passes, cpu, time.perf_counter() - w0, same


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tokenizer")
    ap.add_argument("corpus")
    ap.add_argument("--name")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--mode", choices=["texts", "whole", "both"], default="texts")
    ap.add_argument("--expect", metavar="OURS.log")
    ap.add_argument("--decode", action="store_true")
    a = ap.parse_args()
    name = a.name or Path(a.tokenizer.rstrip("/")).name.removesuffix(".gguf")

    t0 = time.perf_counter()
    tok = load_tokenizer(a.tokenizer)
    tok.no_padding()
    tok.no_truncation()
    tok.encode_special_tokens = False  # special tokens in the text are parsed
    print(f"bench_tokenizer_hf: {a.tokenizer} loaded in {(time.perf_counter() - t0) * 1e3:.1f} ms, "
          f"{tok.get_vocab_size(with_added_tokens=True)} ids", file=sys.stderr)

    texts, sizes = load_corpus(a.corpus)
    modes = ["texts", "whole"] if a.mode == "both" else [a.mode]
    if len(texts) == 1:
        modes = ["whole"]  # a corpus of one text has one mode
    ours = {}
    if a.expect:
        for ln in Path(a.expect).read_text().splitlines():
            kv = dict(f.split("=", 1) for f in ln.split()[1:] if "=" in f)
            if ln.startswith("tokbench:") and kv.get("op") == "encode":
                ours[kv["mode"]] = int(kv["tokens"])
    rc = 0
    for mode in modes:
        if mode == "whole" and len(texts) > 1:
            # bench_tokenizer.c joins the bytes with "\n": the same text
            rc |= run_mode(tok, name, mode, ["\n".join(texts)], [sum(sizes) + len(sizes) - 1], a, ours)
        else:
            rc |= run_mode(tok, name, mode, texts, sizes, a, ours)
    return rc


def run_mode(tok, name, mode, texts, sizes, a, ours):
    nbytes = sum(sizes)
    encode = tok.encode

    def encode_pass():
        n = 0
        for t in texts:
            n += len(encode(t, add_special_tokens=False).ids)
        return n

    tokens, passes, cpu, wall, same = timed(encode_pass, max(a.seconds, 0.001))
    line(name, "encode", mode, len(texts), nbytes, tokens, passes, cpu, wall)
    rc = 0
    if not same:
        print("error: the token count changed between passes", file=sys.stderr)
        rc = 1
    if a.expect and ours.get(mode) != tokens:
        msg = (f"tokbench: MISMATCH tokenizer={name} mode={mode}: hf={tokens} tokens, "
               f"fastchat={ours.get(mode, 'none')} tokens")
        print(msg, flush=True)
        print("!" * len(msg) + "\n" + msg + "\n" + "!" * len(msg), file=sys.stderr)
        rc = 2

    if a.decode:
        ids = [encode(t, add_special_tokens=False).ids for t in texts]
        dec = tok.decode

        def decode_pass():
            return sum(len(dec(x, skip_special_tokens=False).encode("utf-8", "surrogatepass")) for x in ids)

        dbytes, passes, cpu, wall, _ = timed(decode_pass, max(a.seconds, 0.001))
        line(name, "decode", mode, len(texts), dbytes, tokens, passes, cpu, wall)
    return rc


if __name__ == "__main__":
    sys.exit(main())
