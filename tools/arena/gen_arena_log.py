#!/usr/bin/env python3
"""gen_arena_log.py: a synthetic Chatbot Arena conversation log in FastChat's
raw format (fastchat_features.md 7.6: JSON lines in {YYYY-MM-DD}-conv.json,
one file per UTC day), for tests/py/test_leaderboard.py. Both fschat's
clean_battle_data.py and our reader (src/arena/battles.c) read it.

Fixed seed, standard library only, so anyone regenerates the same bytes:
    python3 tools/arena/gen_arena_log.py tests/data/arena/logs

What is in it:
- ~6,400 votes among seven models of known strength (Elo-scale gaps of 140, so ranks by
  upper bound do not hinge on the bootstrap's random numbers;
  two models equally strong), over 12 days that straddle 2023-06-27 so
  "gpt-4" becomes gpt-4-0314 and gpt-4-0613, "bard" is renamed palm-2 and
  "llama-13b" is FastChat's 800 anchor;
- anonymous battles (models ["", ""], some ["Model A", "Model B"]) and named
  ones (some with the legacy "<h3>Model A: name</h3>\\n" labels), ties and
  both-bad votes, multi-turn conversations, few-shot offsets;
- rows cleaning must drop: identity leaks (plain, upper-case, the Kelvin sign
  K, a word split across two messages), FastChat's UI error strings, hidden
  names that disagree with the public ones, one-sided empty labels, offsets
  past the messages; rows it must keep: identity words before the offset,
  U+0130 ("VİCUNA" lowercases to "vi\\u0307cuna" in Python), a None message,
  the unfinished-cursor mark; and rows that are not votes (chat, upvote,
  share) and a vote with a null model label.
"""
import datetime
import json
import math
import os
import random
import sys

SEED = 20240601
N_BATTLES = 6400
T0 = 1687400000.0  # 2023-06-22 02:13 UTC; 12 days later is past 1687849200
MODELS = {  # name in the log -> true Elo-scale strength
    "gpt-4": 1400,
    "alpha-34b": 1260,
    "beta-13b": 1120,
    "gamma-13b": 1120,
    "bard": 980,
    "delta-7b": 840,
    "llama-13b": 700,
}
LEAKS = [
    "I am a language model trained by OpenAI.",
    "As LLAMA, I cannot browse.",
    "My name is Claude.",
    "TÜLU here, happy to help.",
    "\u212aOALA says hello.",  # Kelvin sign lowercases to k
    "NETWORK ERROR DUE TO HIGH TRAFFIC. PLEASE REGENERATE OR REFRESH THIS PAGE.",
    "**API REQUEST ERROR** Reason: The response was blocked.",
    "I was built at UC Berkeley.",
    "Ask Google for that.",
]


def state(rng, model, messages, offset=0, template="one_shot"):
    return {
        "template_name": template,
        "system_message": "",
        "roles": ["Human", "Assistant"],
        "messages": messages,
        "offset": offset,
        "conv_id": "%016x" % rng.getrandbits(64),
        "model_name": model,
    }


def conversation(rng, turns):
    msgs = []
    for _ in range(turns):
        x, y = rng.randint(1, 99), rng.randint(1, 99)
        q = rng.choice(["What is %d plus %d?", "Add %d and %d.", "Sum of %d and %d, please \U0001F600"])
        msgs.append(["Human", q % (x, y)])
        msgs.append(["Assistant", "It is %d." % (x + y)])
    return msgs


def main(out_dir):
    rng = random.Random(SEED)
    names = list(MODELS)
    ips = ["10.%d.%d.%d" % (rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)) for _ in range(300)]
    files = {}
    t = T0
    counts = {}

    def emit(row):
        day = datetime.datetime.fromtimestamp(row["tstamp"], datetime.timezone.utc).strftime("%Y-%m-%d")
        files.setdefault(day, []).append(json.dumps(row))

    def count(k):
        counts[k] = counts.get(k, 0) + 1

    for i in range(N_BATTLES):
        t += 1.0 + rng.expovariate(1 / 160.0)
        ts = round(t, 4)
        a, b = rng.sample(names, 2)
        turns = 2 if rng.random() < 0.2 else 1
        ma, mb = conversation(rng, turns), conversation(rng, turns)
        # a few-shot prefix before the offset (identity words there do not count)
        offset = 0
        if rng.random() < 0.1:
            prefix = [["Human", "Who are you?"], ["Assistant", "I am Vicuna, made by LMSYS."]]
            ma, mb, offset = prefix + ma, prefix + mb, 2
        kind = "ok"
        r = rng.random()
        if r < 0.025:
            kind = "leak"
            (ma if rng.random() < 0.5 else mb)[offset + 1][1] = rng.choice(LEAKS)
        elif r < 0.028:
            kind = "leak"  # "gpt-" + "4" across two messages of the concatenation
            ma[-1][1] = "ends with gpt-"
            mb[offset][1] = "4 starts here"
        elif r < 0.030:
            kind = "kept"  # U+0130: Python's lower() gives "vi\u0307cuna", no leak
            ma[-1][1] = "V\u0130CUNA is not a match"
        elif r < 0.034:
            kind = "kept"
            mb[-1][1] = None
        elif r < 0.038:
            kind = "kept"
            ma[-1][1] = ma[-1][1] + " \u258c"
        # outcome
        u = rng.random()
        if u < 0.12:
            vote = "tievote"
        elif u < 0.18:
            vote = "bothbad_vote"
        else:
            p = 1 / (1 + 10 ** ((MODELS[b] - MODELS[a]) / 400))
            vote = "leftvote" if rng.random() < p else "rightvote"
        sa, sb = state(rng, a, ma, offset), state(rng, b, mb, offset)
        m = rng.random()
        if m < 0.80:
            labels = ["", ""]
        elif m < 0.84:
            labels = ["Model A", "Model B"]
        elif m < 0.845:
            labels = ["<h3>Model A: %s</h3>\n" % a, "<h3>Model B: %s</h3>\n" % b]
        else:
            labels = [a, b]
        ip = rng.choice(ips)
        # broken rows
        x = rng.random()
        if x < 0.003:
            labels, kind = [a, b], "invalid"
            sb["model_name"] = "someone-else"
        elif x < 0.005:
            labels, kind = ["", b], "invalid"
        elif x < 0.007:
            sa["offset"], kind = len(ma), "invalid"
        elif x < 0.008:
            labels, kind = [None, b], "null"
        if rng.random() < 0.02:  # the chat rows the web server logs per side
            for s in (sa, sb):
                emit({"tstamp": round(ts - 3.5, 4), "type": "chat", "model": s["model_name"],
                      "gen_params": {"temperature": 0.7, "top_p": 1.0, "max_new_tokens": 1024},
                      "start": round(ts - 9, 4), "finish": round(ts - 3.5, 4), "state": s, "ip": ip})
        emit({"tstamp": ts, "type": vote, "models": labels, "states": [sa, sb], "ip": ip})
        count(kind)
        if rng.random() < 0.01:
            t += 1.0
            emit({"tstamp": round(t, 4), "type": "share", "models": labels, "states": [sa, sb], "ip": ip})
        if rng.random() < 0.01:
            t += 1.0
            emit({"tstamp": round(t, 4), "type": "upvote", "model": a, "state": sa, "ip": ip})

    os.makedirs(out_dir, exist_ok=True)
    for day, rows in sorted(files.items()):
        with open(os.path.join(out_dir, "%s-conv.json" % day), "w") as f:
            f.write("\n".join(rows) + "\n")
    print("wrote %d files to %s: %s" % (len(files), out_dir, counts))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/arena/logs")
