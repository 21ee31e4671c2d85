"""Writes the small committed inputs of tests/py/test_data_tools.py (run once;
the outputs are committed). Deterministic: random.Random(16).

  convs.json    300 ShareGPT-shaped samples: 0..12 turns, wrong role orders,
                system-first turns, unicode (CJK, emoji, combining marks,
                U+0130), escapes, "\n1. ...\n1. " list numbering, long runs of
                one digit, models gpt4/gpt-3.5/missing/null, extra keys, and
                numbers in Python's odd spellings (1E5, -0, 1.50, 1e999).
  alpaca.json   120 Alpaca records with empty, blank and real inputs.
"""
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
R = random.Random(16)

WORDS = ("the model answer question code python list step first second data "
         "train token what how why because therefore example result value").split()
UNI = ["日本語のテキスト", "中文文本", "Привет мир", "مرحبا", "🙂🚀", "e\u0301", "İstanbul",
       "tab\there", "quote\"back\\slash", "nul\u0000byte", "\u2028sep", "\x7fdel", "\U0001F600"]


def sentence(n=None):
    n = n or R.randint(1, 40)
    out = []
    for _ in range(n):
        r = R.random()
        if r < 0.05:
            out.append(R.choice(UNI))
        elif r < 0.08:
            out.append(str(R.randint(0, 10**6)))
        else:
            out.append(R.choice(WORDS))
    s = " ".join(out)
    r = R.random()
    if r < 0.05:
        s += "\n1. first\n1. again"
    elif r < 0.08:
        s += "\n1. first\n2. second\n1. third"
    elif r < 0.10:
        s += " call 555555555 now"
    elif r < 0.12:
        s += " ٣٣٣٣٣٣٣٣٣ arabic digits"
    elif r < 0.14:
        s = "  \n" + s + " \t"
    elif r < 0.16:
        s = ""
    return s


def conv(i):
    n = R.choice([0, 1, 2, 2, 2, 3, 4, 4, 6, 8, 12])
    turns = []
    roles = ["human", "gpt"]
    start = 1 if R.random() < 0.08 else 0
    for k in range(n):
        role = roles[(k + start) % 2]
        if R.random() < 0.04:
            role = R.choice(["system", "user", "gpt", "human"])
        t = {"from": role, "value": sentence(R.choice([5, 20, 60, 200]) if R.random() < 0.3 else None)}
        if R.random() < 0.05:
            t["markdown"] = None
        turns.append(t)
    d = {"id": f"c{i}_{R.randint(0, 999)}", "conversations": turns}
    r = R.random()
    if r < 0.3:
        d["model"] = "gpt4"
    elif r < 0.5:
        d["model"] = "gpt-3.5"
    elif r < 0.55:
        d["model"] = None
    if R.random() < 0.1:
        d = {"model": d.get("model", ""), **d}
    return d


def main():
    items = [conv(i) for i in range(300)]
    text = json.dumps(items, ensure_ascii=False, indent=R.choice([None, 1, 4]))
    # odd spellings that Python normalises on output, and a repeated key
    extra = ('{"id": "nums", "n": [1E5, -0, 1.50, 1e999, -1e999, NaN, 0.0001, 0.00001, 1e16, '
             '123456789012345678901234567890, 2.5e-7, 1e22, -0.0], "conversations": '
             '[{"from": "human", "value": "a\\u00e9\\ud83d\\ude00 \\/ \\b\\f"}, '
             '{"from": "gpt", "value": "first", "value": "second"}]}')
    text = text.rstrip()[:-1].rstrip() + ",\n" + extra + "\n]\n"
    (HERE / "convs.json").write_text(text, encoding="utf-8")

    alp = []
    for i in range(120):
        inp = R.choice(["", " ", "x", " y ", "\u3000z\u3000", sentence(), sentence()])
        alp.append({"instruction": sentence(), "input": inp, "output": sentence()})
    (HERE / "alpaca.json").write_text(json.dumps(alp, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
