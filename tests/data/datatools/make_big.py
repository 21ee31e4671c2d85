"""Writes a synthetic ShareGPT-shaped file of about --mb megabytes (default
100) for timing `fastchat data` against FastChat's scripts; not committed.
HTML answers in the export's shape (so clean-sharegpt has work), plain
questions, 2-12 turns, a few unicode strings.

  .venv/bin/python tests/data/datatools/make_big.py --mb 100 --out /tmp/big.json
"""
import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_inputs as g  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    g.R.seed(a.seed)
    target = int(a.mb * 1e6)
    size = 2
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("[")
        i = 0
        while size < target:
            d = g.html_sample(i, [])
            s = json.dumps(d, ensure_ascii=False, indent=2)
            s = ("\n  " if i == 0 else ",\n  ") + s.replace("\n", "\n  ")
            f.write(s)
            size += len(s.encode())
            i += 1
        f.write("\n]")
    print(f"{a.out}: {i} conversations, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
