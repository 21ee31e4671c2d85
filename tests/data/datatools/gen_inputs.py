"""Writes the small committed inputs of tests/py/test_data_tools.py (run once;
the outputs are committed). Deterministic: random.Random(16).

  convs.json    300 ShareGPT-shaped samples: 0..12 turns, wrong role orders,
                system-first turns, unicode (CJK, emoji, combining marks,
                U+0130), escapes, "\n1. ...\n1. " list numbering, long runs of
                one digit, models gpt4/gpt-3.5/missing/null, extra keys, and
                numbers in Python's odd spellings (1E5, -0, 1.50, 1e999).
  alpaca.json   120 Alpaca records with empty, blank and real inputs.
  html_corpus.json  400 ShareGPT-export-shaped samples for clean-sharegpt:
                the export's HTML (markdown prose div, p, nested ol/ul/li,
                pre blocks with the language label and "Copy code" button,
                hljs spans, inline code, b/strong/em/i, a, h1-h4, br, hr,
                blockquote, tables, img, entities), plain-text questions with
                stray < and &, regenerate counters "2 / 2", "Copy1 chars / 1
                words", blocked words, duplicate ids and first turns, plugins,
                wrong roles, too-short and non-printable answers.
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
    html_main()


CODE = ["def f(x):\n    return x * 2\n", "int main(void) {\n\treturn a < b && c > d;\n}",
        "for i in range(10):\n    print(i)  # under_score *star*", "SELECT * FROM t WHERE a_b = 'x';",
        "echo \"$HOME\" &amp;&amp; ls -la"]
LANGS = ["python", "c", "sql", "bash", ""]


def esc(t):
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_block():
    lang = R.choice(LANGS)
    code = R.choice(CODE)
    body = esc(code)
    if R.random() < 0.5:
        body = body.replace("def", '<span class="hljs-keyword">def</span>').replace(
            "return", '<span class="hljs-keyword">return</span>')
    return ('<pre><div class="bg-black mb-4 rounded-md"><div class="flex items-center relative text-gray-200 '
            f'bg-gray-800 px-4 py-2 text-xs font-sans"><span class="">{lang}</span><button class="flex ml-auto gap-2">'
            '<svg stroke="currentColor" fill="none" stroke-width="2" viewBox="0 0 24 24" class="h-4 w-4" '
            'xmlns="http://www.w3.org/2000/svg"><path d="M16 4h2a2 2 0 0 1 2 2v14"></path><rect x="8" y="2" '
            'width="8" height="4" rx="1" ry="1"></rect></svg>Copy code</button></div><div class="p-4 '
            f'overflow-y-auto"><code class="!whitespace-pre hljs language-{lang}">{body}</code></div></div></pre>')


def inline():
    r = R.random()
    w = sentence(R.randint(1, 6))
    if r < 0.15:
        return f"<code>{esc(w)}</code>"
    if r < 0.25:
        return f"<strong>{esc(w)}</strong>"
    if r < 0.32:
        return f"<em> {esc(w)} </em>"
    if r < 0.38:
        return f'<a href="https://example.com/{R.randint(0, 99)}_x" target="_new">{esc(w)}</a>'
    if r < 0.41:
        return '<a href="https://ex.com/a_b">https://ex.com/a_b</a>'
    if r < 0.44:
        return "<b></b>"
    if r < 0.47:
        return "&nbsp;&copy;&#8212;&#x27;&eacute;&#150;"
    return esc(w)


def para():
    return "<p>" + " ".join(inline() for _ in range(R.randint(1, 5))) + "</p>"


def lst(depth=0):
    tag = R.choice(["ol", "ul"])
    start = f' start="{R.randint(2, 5)}"' if tag == "ol" and R.random() < 0.2 else ""
    items = []
    for _ in range(R.randint(1, 4)):
        inner = " ".join(inline() for _ in range(R.randint(1, 3)))
        if R.random() < 0.3:
            inner = "<p>" + inner + "</p>"
        if depth < 2 and R.random() < 0.25:
            inner += ("\n" if R.random() < 0.5 else "") + lst(depth + 1)
        items.append(f"<li>{inner}</li>")
    sep = R.choice(["", "\n"])
    return f"<{tag}{start}>{sep}" + sep.join(items) + f"{sep}</{tag}>"


def table():
    n = R.randint(1, 3)
    head = "<thead><tr>" + "".join(f"<th>{esc(sentence(2))}</th>" for _ in range(n)) + "</tr></thead>"
    rows = "".join("<tr>" + "".join(f"<td>{inline()}</td>" for _ in range(n)) + "</tr>"
                   for _ in range(R.randint(1, 3)))
    if R.random() < 0.5:
        return f"<table>{head}<tbody>{rows}</tbody></table>"
    return f"<table><tbody>{rows}</tbody></table>"


def block():
    r = R.random()
    if r < 0.35:
        return para()
    if r < 0.55:
        return lst()
    if r < 0.7:
        return code_block()
    if r < 0.76:
        return table()
    if r < 0.82:
        n = R.randint(1, 4)
        return f"<h{n}>{esc(sentence(3))}</h{n}>"
    if r < 0.86:
        return f"<blockquote>{para()}{para()}</blockquote>"
    if r < 0.89:
        return "<hr>"
    if r < 0.92:
        return f"<p>{esc(sentence(4))}<br>{esc(sentence(3))}<br/>x</p>"
    if r < 0.94:
        return '<p><img src="https://i.example/x.png" alt="a pic" title="t \"q\""></p>'
    return esc(sentence())


def answer():
    body = "".join(block() for _ in range(R.randint(1, 6)))
    html = f'<div class="markdown prose w-full break-words dark:prose-invert light">{body}</div>'
    r = R.random()
    if r < 0.05:
        html = f"{R.randint(1, 3)} / {R.randint(1, 3)}" + html
    elif r < 0.08:
        html = html + f"Copy{R.randint(1, 999)} chars / {R.randint(1, 99)} words"
    elif r < 0.1:
        html = '<div class="request-:r0:-0 markdown prose"><p></p></div>'
    elif r < 0.12:
        html = "\u200b" + html
    elif r < 0.14:
        html = html.replace("the", "ChatGPT", 1)
    elif r < 0.15:
        html = html.replace("the", "OPENAİ", 1)
    return html


def question():
    q = sentence()
    r = R.random()
    if r < 0.2:
        q += " if a<b && c > d then x &amp y &foo; 3<4 <notatag AT&T"
    elif r < 0.3:
        q = q + "\n\n```\ncode_here * 2\n```\n"
    elif r < 0.35:
        q = "  " + q + "   \t trailing"
    return q


def html_sample(i, pool):
    n = R.choice([1, 2, 2, 2, 4, 4, 6, 8])
    turns = []
    for k in range(n):
        role = ["human", "gpt"][k % 2]
        turns.append({"from": role, "value": question() if role == "human" else answer()})
    r = R.random()
    if r < 0.05 and turns:
        turns = [{"from": "gpt", "value": answer()}] + turns
    elif r < 0.08:
        turns.append({"from": "human", "value": question()})
    elif r < 0.1 and len(turns) > 2:
        turns[2]["from"] = "gpt"
    d = {"id": f"h{i}", "conversations": turns}
    r = R.random()
    if r < 0.04 and pool:
        d["id"] = R.choice(pool)["id"]
    elif r < 0.08 and pool:
        d["conversations"] = [dict(t) for t in R.choice(pool)["conversations"]]
    elif r < 0.1:
        d["plugins"] = ["x"]
    elif r < 0.12:
        d["plugins"] = None
    return d


def html_main():
    pool = []
    for i in range(400):
        pool.append(html_sample(i, pool))
    (HERE / "html_corpus.json").write_text(json.dumps(pool, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
