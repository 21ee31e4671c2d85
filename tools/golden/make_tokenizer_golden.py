#!/usr/bin/env python3
"""make_tokenizer_golden.py: golden data for the tokenizer tests.

Writes tests/data/tokenizer/:
  corpus.jsonl          >= 2000 hard strings, {"text": ..., "nfc": NFC(text) == text}
                        (hand-written ones first, then generated with a fixed seed)
  spm/                  a SentencePiece BPE model (vocab 2000, byte_fallback) trained with
                        `sentencepiece`, its Hugging Face folder (tokenizer.json,
                        tokenizer_config.json as LlamaTokenizer saves them) and a tokenizer-only
                        GGUF (tokenizer.ggml.model = "llama")
  llama3/, qwen2/       byte-level BPE tokenizers trained with `tokenizers` using Llama-3's and
                        Qwen2's pre-tokenizer regexes and their tokenizer.json shapes, plus a
                        tokenizer-only GGUF of each (tokenizer.ggml.pre = "llama-bpe" / "qwen2")
  spm_legacy/           the same SentencePiece vocabulary in Llama-2's original tokenizer.json
                        shape: normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer.
                        This is how sentencepiece itself and llama.cpp encode (checked below:
                        identical ids on every line), so it is the reference for GGUF "llama"
                        files too
  golden_<name>.jsonl   one line per corpus line:
                          "i"    the corpus line
                          "ids"  encode(text), no added BOS/EOS, special tokens parsed
                          "dec"  decode(ids) -- present only when it differs from text
                                 (<field>_hex: the UTF-8 bytes of a string field in hex,
                                 given where it holds U+0000, in every file)
                          "skip" decode(ids, skip_special_tokens=True) -- only when it differs
                                 from the decoded text
                          "as"   encode(text, add_special_tokens=True) -- only when != ids
                          "ns"   encode with special tokens not parsed (split_special_tokens)
                                 -- only when != ids
  decode_<name>.jsonl   {"ids": random ids, "text": decode(ids)}: byte tokens that form invalid
                        UTF-8, special tokens, single pieces -- the lossy decode paths
  variants.json         pipeline variants: {"name", "base" (a folder above), "patch" (top-level
                        tokenizer.json keys to replace)} -- the normalizers, pre-tokenizers,
                        split behaviors, decoders and post-processors the folders above do not use
  golden_variants.jsonl {"v": variant, and the fields of golden_<name>} for the first 400 corpus
                        lines

<name> is smollm2 (the tokenizer of the default GGUF, scripts/fetch_model.sh), spm, spm_legacy,
llama3, qwen2.

The reference for smollm2 is SmolLM2's tokenizer.json as published (HuggingFaceTB/SmolLM2-*):
BPE without unk or byte fallback, pre_tokenizer Sequence[Digits(individual_digits=True),
ByteLevel(add_prefix_space=False, use_regex=True)], ByteLevel decoder, special tokens ids 0..16.
We rebuild exactly that with `tokenizers` from the GGUF's vocab and merges (the GGUF says
tokenizer.ggml.pre = "smollm", which llama.cpp also maps to "digits, then the GPT-2 regex").
transformers' own GGUF loader drops the Digits step; the script prints how often that differs.

The reference for spm is transformers' LlamaTokenizer loaded from the .model (as
LlamaTokenizerFast was): Metaspace(prepend_scheme="first", split=False), BPE with
byte_fallback and fuse_unk, decoder Replace/ByteFallback/Fuse/Strip. transformers 5 saves it
without the "<s> $A" post-processor and unk token that Llama-2's published tokenizer.json has;
we put those back so that the folder looks like a real Llama-2 / Vicuna / Mistral one.

Usage: /root/refvenv/venv/bin/python tools/golden/make_tokenizer_golden.py [--model M.gguf]
       [--retrain] [--bench]
Models are trained only when missing (or with --retrain); golden data is always rewritten.
--bench prints Hugging Face tokenizers' encode speed on the corpus (single thread), the figure
bench/bench_tokenizer.c is compared against.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "tokenizer"
SEED = 20240611

# ---------------------------------------------------------------------------
# corpus
# ---------------------------------------------------------------------------

HAND = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \t\n ",
    "Hello world", "Hello, world!", "hello world", " Hello world", "Hello world ", "  Hello  world  ",
    "a  b   c    d     e", "a\tb\t\tc", "line1\nline2\n\nline4\n\n\n", "x\n \n y", "\n\n\nx",
    "trailing spaces   ", "   leading spaces", "\t\ttabs first", "mixed \t \n \r\n whitespace",
    "1234567890", "3.14159", "1,000,000", "0.5", "-42", "+7", "1e10", "2024-06-11", "12:30:45",
    "version 1.2.3-rc4", "$100.00", "100%", "#1", "0x1F600", "123abc456", "abc123def",
    "I'm here", "don't", "we'll", "they've", "she'd", "you're", "it's", "IT'S", "DON'T",
    "I'M", "We'Ll", "'s", "'S", "'ſ", "x'ſ", "'", "''", "'''", "rock'n'roll", "O'Neil's",
    "...", "!!!", "???", "?!", "---", "===", "***", "___", "~~~", "<<>>", "((()))", "[]{}",
    "\"quoted\"", "'single'", "`backtick`", "a.b.c", "a,b,c", "a;b:c", "e.g.", "i.e.,",
    "Hello!!! How are you??? Fine...", "Wait -- what?!", "(parenthetical remark)",
    "def f(x):\n    return x * 2\n", "int main(void) { return 0; }",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "if x == 1:\n    print('one')\nelif x == 2:\n    print(\"two\")\n",
    "{\"key\": \"value\", \"n\": [1, 2, 3]}", "<html><body><p>Hi</p></body></html>",
    "SELECT * FROM users WHERE id = 42;", "x += 1  # comment", "a->b->c", "a::b::c",
    "#include <stdio.h>", "    indented four", "        indented eight", "\t\tindented tabs",
    "https://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Windows\\System32",
    "/usr/local/bin/python3", "~/.bashrc", "snake_case_name", "camelCaseName", "PascalCase",
    "SCREAMING_SNAKE", "kebab-case-name", "__init__", "__dunder__",
    "😀", "😀😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇬🇧🇯🇵", "❤️", "❤", "1️⃣", "#️⃣",
    "I ❤️ NY", "emoji👍in👍text", "🧑🏽‍💻 coding", "👩‍❤️‍💋‍👨", "🤷‍♂️", "🐈‍⬛",
    "你好，世界！", "你好世界", "中文测试文本，包含标点。", "日本語のテキスト", "カタカナ ひらがな 漢字",
    "한국어 텍스트입니다", "안녕하세요", "Привет, мир!", "Здравствуйте", "Γειά σου Κόσμε",
    "مرحبا بالعالم", "السلام عليكم", "שלום עולם", "नमस्ते दुनिया", "हिन्दी भाषा", "สวัสดีชาวโลก",
    "Xin chào thế giới", "Tiếng Việt có dấu", "Türkçe İstanbul ıi", "Straße groß", "ǅemal",
    "café", "cafe\u0301", "naïve résumé", "nai\u0308ve", "Å Å", "ﬁ ﬂ", "ｆｕｌｌｗｉｄｔｈ", "１２３",
    "e\u0301\u0302\u0303\u0304", "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o", "a\u0300b\u0301c\u0302",
    "\u1100\u1161\u11a8", "\u0915\u094d\u0937", "\u0e01\u0e34\u0e4a",
    "²³¹", "½ ¼ ¾", "Ⅻ ⅻ", "٣٤٥", "१२३", "௧௨௩", "𝟘𝟙𝟚", "①②③", "x²+y²=z²",
    "∀x∈ℝ: x²≥0", "∑∫∂√∞≈≠≤≥", "α β γ δ", "→ ← ↑ ↓", "€ £ ¥ ₹ ₿", "© ® ™",
    "\u00a0", "a\u00a0b", "a\u3000b", "a\u2009b", "a\u200bb", "a\u0085b", "a\u2028b", "a\u2029b",
    "a\x0bb", "a\x0cb", "a\x1cb", "a\x1fb", "\ufeffBOM", "a\u200db", "a\u200cb", "a\u2060b",
    "\x00", "a\x00b", "\x01\x02\x03", "\x04\x06\x13\x14", "\x7f", "a\x1bb",
    "\U0010fffd", "\ue000", "\U000f0000", "𐍈", "𝒜𝒷𝒸", "𓀀", "🀄",
    "a" * 300, "ab" * 200, "1" * 100, " " * 50, "\n" * 30, "!" * 80, "x" + " " * 40 + "y",
    "Supercalifragilisticexpialidocious", "pneumonoultramicroscopicsilicovolcanoconiosis",
    "Donaudampfschifffahrtsgesellschaftskapitän", "antidisestablishmentarianism",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are helpful.<|im_end|>", "<|endoftext|>", "text<|endoftext|>text",
    "<|im_start|><|im_end|>", "<|im_start|> <|im_end|>", "<|im_start", "<|im_end|", "im_start|>",
    "<<|im_end|>>", "<|<|im_start|>|>", "<s>", "</s>", "<unk>", "<s>Hello</s>", " <s> hi </s> ",
    "<s><s></s>", "hello<s>world", "<s >", "< s>", "<|begin_of_text|>Hi", "<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", "<think>reasoning</think>answer",
    "a <think> b", "<think>", "</think>", " <think> ", "<mask>", "a <mask> b", "x<mask>y",
    "<|fim_prefix|>", "<repo_name>fastchat<file_sep>main.c", "<filename>x.py\n<gh_stars>10",
    "<jupyter_code>print(1)<jupyter_output>1", "<issue_start>bug<issue_comment>fix<issue_closed>",
    "Hello world\n\nThis is a test.  Two spaces.   Three spaces.\tTab.",
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "tHe QuIcK bRoWn",
    "A man, a plan, a canal: Panama!", "It was the best of times, it was the worst of times.",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "multiple\n\n\nnewlines\n\n\n\nhere", "ends with newline\n", "ends with spaces  \n  ",
    "  \n  \n  ", "\t\n\t\n", " \r\n \r\n", "a\r\nb\r\nc", "a\rb", "a \n b", "a  \n  b",
    "   1   2   3   ", "a1b2c3", "1a2b3c", "12 34 56", "1 2 3 4 5", "9999999999999999999999",
    "3.0e-10", "0.000001", "1/2", "10^6", "1+1=2", "(1+2)*3", "-1.5e+3", "۱۲۳", "໑໒໓",
    "The year 1999 and 2000.", "Call 555-1234 now!", "ISBN 978-3-16-148410-0",
    "C++ and C# and F#", "node.js", "a/b/c", "a\\b\\c", "a|b|c", "a&&b||c", "x != y",
    "i++ ++i", "a <= b >= c", "<<= >>= ===", "=> -> <-", ":= ::", "...rest", "?.", "??",
]


def _words():
    return (
        "the of and to in is you that it he was for on are as with his they at be this have from "
        "or one had by word but not what all were we when your can said there use an each which "
        "she do how their if will up other about out many then them these so some her would make "
        "like him into time has look two more write go see number no way could people my than "
        "first water been call who oil its now find long down day did get come made may part "
        "model token tokenizer language chat assistant user system server request response stream "
        "python function return value string integer float array object class import module "
        "hello world quick brown fox jumps over lazy dog apple banana cherry computer science "
        "Hello World Python Linux GitHub OpenAI HuggingFace FastChat Llama Qwen SmolLM Mistral "
        "running jumped quickly beautiful unbelievable internationalization tokenization "
        "don't can't won't isn't aren't wasn't I'm you're we've they'll she'd it's"
    ).split()


MULTI = [
    "你好", "世界", "中文", "测试", "模型", "语言", "日本", "東京", "ひらがな", "カタカナ", "한국", "서울",
    "Москва", "привет", "мир", "Ελλάδα", "αβγ", "مرحبا", "عالم", "שלום", "नमस्ते", "भारत", "ไทย",
    "Việt", "Nguyễn", "Ğüşö", "İı", "Ærø", "Ñandú", "Łódź", "Čeština", "ß", "ǅ", "ﬁ", "Ω", "µ",
    "ক্ষ", "ழ்", "ಕನ್ನಡ", "ગુજરાતી", "ਪੰਜਾਬੀ", "ଓଡ଼ିଆ", "മലയാളം", "සිංහල", "ລາວ", "ខ្មែរ", "မြန်မာ",
    "ქართული", "Հայերեն", "አማርኛ", "ᠮᠣᠩᠭᠣᠯ", "ꦗꦮ", "𐌰𐌱", "ᚠᚢᚦ",
]

EMOJI = [
    "😀", "😂", "🥲", "👍", "👍🏻", "👍🏿", "👋🏽", "❤️", "💔", "🔥", "✨", "🎉", "🚀", "🌍", "🇫🇷", "🇩🇪",
    "🏴‍☠️", "👨‍💻", "👩‍🔬", "👨‍👩‍👧", "🧑‍🤝‍🧑", "🏳️‍⚧️", "😶‍🌫️", "❤️‍🔥", "🫠", "🫶🏼", "✅", "❌",
    "⚠️", "☃", "☃️", "©️", "™️", "🅰️", "🔟", "*️⃣", "🈶", "🀄", "🃏", "♠️", "♥", "\u2764\ufe0e",
]

PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + [
    "...", "--", "—", "–", "…", "«", "»", "“", "”", "‘", "’", "„", "‹", "›", "¿", "¡", "·", "•",
    "§", "¶", "†", "‡", "※", "。", "、", "，", "！", "？", "：", "；", "（", "）", "「", "」", "『",
    "』", "【", "】", "《", "》", "〜", "・", "؟", "،", "।", "॥", "٪", "‰", "′", "″", "°", "±", "×",
    "÷", "¬", "¦", "¨", "¯", "´", "¸", "˜", "ˆ", "‿", "⁂", "⸮",
]

SPACES = [" ", " ", " ", "  ", "   ", "    ", "\t", "\n", "\n", "\n\n", "\r\n", " \n", "\n ",
          "\t\t", "\u00a0", "\u3000", "\u2009", "\u200b", "\u0085", "\u2028", "\x0b", "\x0c",
          "\r", "        ", " \t ", "\n\n\n"]

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>",
            "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<think>", "</think>", "<mask>", "<repo_name>", "<file_sep>",
            "<|im_start", "|>", "<|", "<s", "s>", "<0x41>", "<0xE4>", "▁", "▁▁", "Ġ", "Ċ", "ĠĠ"]

CODE = [
    "def ", "return ", "if ", "else:", "for i in range(10):", "while True:", "import os",
    "from x import y", "class Foo(Bar):", "self.x = x", "print(f\"{x}\")", "lambda x: x+1",
    "x = [1, 2, 3]", "{'a': 1}", "#include <stdlib.h>", "int *p = NULL;", "p->next",
    "std::vector<int>", "fn main() {", "let mut x = 0;", "console.log('hi');", "=> {",
    "SELECT id FROM t;", "</div>", "<br/>", "&amp;", "&#x1F600;", "\\n", "\\t", "\\\\",
    "0xFF", "0b1010", "1_000_000", "i += 1", "a[i][j]", "x.y.z()", "@decorator", "#!/bin/sh",
    "$HOME", "${VAR}", "$(cmd)", "`cmd`", "a && b", "a || b", "!= ", "==", "//", "/* */", "#",
]

# Blocks to draw random code points from (all assigned long before Unicode 13, so that
# Oniguruma, PCRE2, utf8proc and Rust agree on their categories).
BLOCKS = [
    (0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x17F), (0x180, 0x24F), (0x250, 0x2AF), (0x2B0, 0x2FF),
    (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF), (0xB80, 0xBFF), (0xE00, 0xE7F),
    (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x2000, 0x206F),
    (0x2070, 0x209F), (0x20A0, 0x20BF), (0x2100, 0x214F), (0x2150, 0x218F), (0x2190, 0x21FF),
    (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F), (0x2600, 0x26FF), (0x2700, 0x27BF),
    (0x3000, 0x303F), (0x3040, 0x309F), (0x30A0, 0x30FF), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3),
    (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x1F300, 0x1F64F), (0x1F680, 0x1F6FF),
    (0x10000, 0x1007F), (0x1, 0x1F),
]


def rand_cp(rng):
    while True:
        lo, hi = rng.choice(BLOCKS)
        c = chr(rng.randint(lo, hi))
        cat = unicodedata.category(c)
        if cat not in ("Cn", "Cs"):
            return c


def rand_atom(rng, words):
    r = rng.random()
    if r < 0.30:
        w = rng.choice(words)
        k = rng.random()
        if k < 0.1:
            w = w.upper()
        elif k < 0.2:
            w = w.capitalize()
        return w
    if r < 0.45:
        return rng.choice(SPACES)
    if r < 0.53:
        n = rng.choice([1, 1, 2, 3, 4, 5, 7, 10, 16])
        return "".join(rng.choice("0123456789") for _ in range(n))
    if r < 0.61:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4)))
    if r < 0.68:
        return rng.choice(MULTI)
    if r < 0.73:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 3)))
    if r < 0.78:
        return "".join(rand_cp(rng) for _ in range(rng.randint(1, 6)))
    if r < 0.83:
        return rng.choice(CODE)
    if r < 0.87:
        return rng.choice(SPECIALS)
    if r < 0.92:
        return rng.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE",
                           "'Ve", "'M", "'LL", "'D", "'x", "'", "’s"])
    if r < 0.95:
        # combining marks on a base letter
        return rng.choice("aeiouAEIOUnxz") + "".join(chr(rng.randint(0x300, 0x36F))
                                                      for _ in range(rng.randint(1, 3)))
    if r < 0.97:
        return rng.choice(words) * rng.randint(2, 6)
    return rng.choice(["\u00e9", "e\u0301", "\u00c5", "A\u030a", "\u212b", "\u1e9b\u0323",
                       "\uac00", "\u1100\u1161", "\u00f1", "n\u0303", "\u0958", "\u2126"])


def make_corpus():
    rng = random.Random(SEED)
    words = _words()
    texts = list(HAND)
    seen = set(texts)
    while len(texts) < 2300:
        n = rng.choice([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24])
        s = "".join(rand_atom(rng, words) for _ in range(n))
        if rng.random() < 0.02:
            s = s * rng.randint(3, 8)  # long repeats
        if s in seen:
            continue
        seen.add(s)
        texts.append(s)
    return texts


def training_text(corpus):
    """Deterministic training sample: the corpus plus generated prose, code and numbers."""
    rng = random.Random(SEED + 1)
    words = _words()
    lines = list(corpus)
    for _ in range(6000):
        n = rng.randint(3, 25)
        ws = [rng.choice(words) for _ in range(n)]
        line = " ".join(ws)
        if rng.random() < 0.3:
            line = line.capitalize() + rng.choice([".", "!", "?", ",", ":", ""])
        if rng.random() < 0.2:
            line += " " + str(rng.randint(0, 100000))
        if rng.random() < 0.15:
            line = "    " + line
        if rng.random() < 0.1:
            line = " ".join(rng.choice(MULTI) for _ in range(rng.randint(2, 8)))
        if rng.random() < 0.05:
            line = " ".join(rng.choice(CODE) for _ in range(rng.randint(2, 6)))
        lines.append(line)
    return lines


# ---------------------------------------------------------------------------
# tokenizers under test
# ---------------------------------------------------------------------------

SMOLLM2_SPECIALS = 17  # ids 0..16 are SmolLM2's added special tokens


def smollm2_reference(gguf_path):
    from gguf import GGUFReader
    from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers, processors

    r = GGUFReader(gguf_path)

    def arr(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = arr("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in arr("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False,
                                              use_regex=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in tokens[:SMOLLM2_SPECIALS]])
    assert all(tok.token_to_id(t) == i for i, t in enumerate(tokens[:SMOLLM2_SPECIALS]))
    return tok


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_bytelevel(lines, split, specials, vocab_size, ignore_merges, nfc):
    from tokenizers import Tokenizer, Regex, decoders, models, normalizers, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE(fuse_unk=False, byte_fallback=False, ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def build_llama3(lines, d):
    from tokenizers import AddedToken, processors
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>"] + \
               [f"<|reserved_special_token_{i}|>" for i in range(4)]
    tok = train_bytelevel(lines, LLAMA3_SPLIT, specials, 3000, ignore_merges=True, nfc=False)
    # A non-special added token with lstrip/rstrip (RoBERTa's <mask> style) and a
    # single_word one, to exercise the added-token flags.
    tok.add_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, normalized=False, special=False),
                    AddedToken("hello world", single_word=True, normalized=True, special=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": False, "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
                          "<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
                          "{% if add_generation_prompt %}<|start_header_id|>assistant"
                          "<|end_header_id|>\n\n{% endif %}"),
    }, indent=2) + "\n")


def build_qwen2(lines, d):
    from tokenizers import AddedToken, processors
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = train_bytelevel(lines, QWEN2_SPLIT, specials, 3000, ignore_merges=False, nfc=True)
    tok.add_tokens([AddedToken("<think>", normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False)])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "add_prefix_space": False, "bos_token": None,
        "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "clean_up_tokenization_spaces": False, "tokenizer_class": "Qwen2Tokenizer",
        "chat_template": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                          "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}"
                          "<|im_start|>assistant\n{% endif %}"),
    }, indent=2) + "\n")


def build_spm(lines, d):
    import sentencepiece as spm
    d.mkdir(parents=True, exist_ok=True)
    txt = d / "train.txt.tmp"
    # The generated prose and the hand-written strings; the random corpus lines hold thousands
    # of rare characters that would not fit a 2000-piece vocabulary (byte fallback covers them).
    lines = HAND + lines[len(make_corpus()):]
    txt.write_text("\n".join(l.replace("\n", " ").replace("\r", " ") for l in lines) + "\n")
    # Llama-2's trainer settings where they matter for encoding: identity normalization,
    # dummy prefix, no whitespace collapsing, digits split, byte fallback.
    spm.SentencePieceTrainer.train(
        input=str(txt), model_prefix=str(d / "tokenizer"), model_type="bpe", vocab_size=2000,
        character_coverage=0.995, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, seed_sentencepiece_size=100000,
        max_sentence_length=1 << 20, minloglevel=2)
    txt.unlink()
    (d / "tokenizer.vocab").unlink()


def save_spm_hf(d):
    """LlamaTokenizer from the .model, saved as a Hugging Face folder next to it."""
    from transformers import LlamaTokenizer
    hf = LlamaTokenizer.from_pretrained(str(d), legacy=False)
    tmp = d / "hf.tmp"
    hf.save_pretrained(str(tmp))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        os.replace(tmp / name, d / name)
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    j = json.loads((d / "tokenizer.json").read_text())
    j["model"]["unk_token"] = "<unk>"
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    (d / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False, indent=1) + "\n")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["add_bos_token"], cfg["add_eos_token"] = True, False
    cfg["chat_template"] = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token }}"
                            "[INST] {{ m['content'] }} [/INST]{% else %} {{ m['content'] }}"
                            "{{ eos_token }}{% endif %}{% endfor %}")
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    # Llama-2's original shape of the same tokenizer: the dummy prefix and the spaces come
    # from the normalizer, so every chunk between special tokens gets its own "▁".
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    j["pre_tokenizer"] = None
    leg = d.parent / "spm_legacy"
    leg.mkdir(exist_ok=True)
    (leg / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False, indent=1) + "\n")
    cfg["legacy"] = True
    (leg / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# ---- tokenizer-only GGUF files (what convert_hf_to_gguf.py writes for these vocabularies) ----

def write_gguf_bytelevel(d, pre):
    import gguf
    from tokenizers import Tokenizer
    j = json.loads((d / "tokenizer.json").read_text())
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    n = tok.get_vocab_size(with_added_tokens=True)
    id2tok = {v: k for k, v in tok.get_vocab(with_added_tokens=True).items()}
    added = {a["id"]: a for a in j["added_tokens"]}
    tokens, types = [], []
    for i in range(n):
        tokens.append(id2tok[i])
        if i in added:
            types.append(3 if added[i]["special"] else 4)  # CONTROL / USER_DEFINED
        else:
            types.append(1)
    merges = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    w = gguf.GGUFWriter(str(d / "tokenizer.gguf"), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    if cfg.get("bos_token"):
        w.add_bos_token_id(tok.token_to_id(cfg["bos_token"]))
    w.add_eos_token_id(tok.token_to_id(cfg["eos_token"]))
    w.add_add_bos_token(pre == "llama-bpe")
    w.add_chat_template(cfg["chat_template"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_gguf_spm(d):
    import gguf
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    w = gguf.GGUFWriter(str(d / "tokenizer.gguf"), "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    w.add_unk_token_id(sp.unk_id())
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------------------
# golden data
# ---------------------------------------------------------------------------

class Ref:
    """encode/decode through a `tokenizers.Tokenizer` (the engine under transformers' fast
    tokenizers), optionally with BOS/EOS added the way the HF folder says."""

    def __init__(self, name, tok, n_vocab):
        self.name, self.tok, self.n_vocab = name, tok, n_vocab

    def encode(self, text, add_special=False, parse_special=True):
        self.tok.encode_special_tokens = not parse_special
        ids = self.tok.encode(text, add_special_tokens=add_special).ids
        self.tok.encode_special_tokens = False
        return ids

    def decode(self, ids, skip=False):
        return self.tok.decode(ids, skip_special_tokens=skip)


def golden_row(ref, i, text):
    ids = ref.encode(text)
    row = {"i": i, "ids": ids}
    dec = ref.decode(ids)
    if dec != text:
        row["dec"] = dec
    skip = ref.decode(ids, skip=True)
    if skip != dec:
        row["skip"] = skip
    a = ref.encode(text, add_special=True)
    if a != ids:
        row["as"] = a
    ns = ref.encode(text, parse_special=False)
    if ns != ids:
        row["ns"] = ns
    for k in ("dec", "skip"):
        if k in row and "\x00" in row[k]:
            row[k + "_hex"] = row[k].encode().hex()
    return row


def write_golden(ref, corpus, extra_decode, subset=None):
    rows = [golden_row(ref, i, text) for i, text in enumerate(corpus)
            if not subset or subset(i, text)]
    with open(OUT / f"golden_{ref.name}.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
    if extra_decode:
        with open(OUT / f"decode_{ref.name}.jsonl", "w", encoding="utf-8") as f:
            for ids in extra_decode:
                row = {"ids": ids, "text": ref.decode(ids)}
                if "\x00" in row["text"]:
                    row["text_hex"] = row["text"].encode().hex()
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    n_dec = sum(1 for r in rows if "dec" in r)
    print(f"{ref.name}: {len(rows)} lines, {sum(len(r['ids']) for r in rows)} ids, "
          f"{n_dec} decode != text")


def _split(pattern, behavior, invert=False, regex=True):
    return {"type": "Split", "pattern": {"Regex" if regex else "String": pattern},
            "behavior": behavior, "invert": invert}


BL_NOREGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
BL_DEC = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}

VARIANTS = [
    ("metaspace_split_always", "spm", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                          "split": True},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                    "split": True}}),
    ("metaspace_never", "spm", {
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never",
                          "split": False},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]}}),
    ("bytelevel_prefix", "llama3", {
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<|end_of_text|>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {
                               "<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [0],
                                                     "tokens": ["<|begin_of_text|>"]},
                               "<|end_of_text|>": {"id": "<|end_of_text|>", "ids": [1],
                                                   "tokens": ["<|end_of_text|>"]}}}}),
    ("split_behaviors", "llama3", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            _split(r"\s+", "MergedWithPrevious"), _split(".", "MergedWithNext", regex=False),
            _split(r"\p{P}", "Contiguous"), _split(r"[aeiou]", "Removed"), BL_NOREGEX]}}),
    ("split_invert", "llama3", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            _split(r"\w+|[^\w\s]+", "Removed", invert=True),
            _split(r"\d", "Isolated", invert=True), BL_NOREGEX]}}),
    ("whitespace", "llama3", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"}, BL_NOREGEX]}}),
    ("whitespace_split_digits", "llama3", {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "WhitespaceSplit"}, {"type": "Digits", "individual_digits": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]}}),
    ("nfkc_lower", "llama3", {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]}}),
    ("nfd_strip_replace", "qwen2", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFD"}, {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": r"\d+"}, "content": "#"},
            {"type": "NFKD"}]}}),
    ("no_decoder", "qwen2", {"decoder": None}),
]


def write_variants(corpus):
    from tokenizers import Tokenizer
    (OUT / "variants.json").write_text(json.dumps(
        [{"name": n, "base": b, "patch": p} for n, b, p in VARIANTS], ensure_ascii=False,
        indent=1) + "\n")
    with open(OUT / "golden_variants.jsonl", "w", encoding="utf-8") as f:
        for name, base, patch in VARIANTS:
            j = json.loads((OUT / base / "tokenizer.json").read_text())
            j.update(patch)
            tok = Tokenizer.from_str(json.dumps(j))
            ref = Ref(name, tok, 0)
            for i, text in enumerate(corpus[:400]):
                row = {"v": name, **golden_row(ref, i, text)}
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"variants: {len(VARIANTS)} x 400 lines")


def decode_cases(ref, rng):
    """Random id sequences: byte tokens in runs (invalid UTF-8 included), specials, anything."""
    vocab = ref.tok.get_vocab(with_added_tokens=True)
    byte_ids = [v for k, v in vocab.items() if k.startswith("<0x") and len(k) == 6]
    if not byte_ids:  # byte-level: single-byte tokens, in the GPT-2 alphabet
        from tokenizers import pre_tokenizers
        alpha = set(pre_tokenizers.ByteLevel.alphabet())
        byte_ids = [v for k, v in vocab.items() if len(k) == 1 and k in alpha]
    special = [a.content for a in ref.tok.get_added_tokens_decoder().values()]
    special_ids = [vocab[s] for s in special if s in vocab]
    out = []
    for k in range(300):
        n = rng.randint(1, 12)
        ids = []
        for _ in range(n):
            r = rng.random()
            if r < 0.5:
                ids.append(rng.choice(byte_ids))
            elif r < 0.65 and special_ids:
                ids.append(rng.choice(special_ids))
            else:
                ids.append(rng.randrange(ref.n_vocab))
        out.append(ids)
    out += [[i] for i in range(min(ref.n_vocab, 400))]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="the default GGUF (scripts/fetch_model.sh)")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-only", action="store_true", help="skip writing data, only time HF")
    args = ap.parse_args()
    model = args.model or os.environ.get("FASTCHAT_MODEL") or subprocess.run(
        [str(ROOT / "scripts" / "fetch_model.sh")], check=True, capture_output=True,
        text=True).stdout.strip()

    OUT.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus()
    if args.bench_only:
        from tokenizers import Tokenizer
        refs = [Ref("smollm2", smollm2_reference(model), 49152)]
        for name in ("spm", "llama3", "qwen2", "spm_legacy"):
            t = Tokenizer.from_file(str(OUT / name / "tokenizer.json"))
            refs.append(Ref(name, t, t.get_vocab_size(with_added_tokens=True)))
        bench(refs, corpus)
        return
    with open(OUT / "corpus.jsonl", "w", encoding="utf-8") as f:
        for t in corpus:
            row = {"text": t, "nfc": unicodedata.normalize("NFC", t) == t}
            if "\x00" in t:  # C JSON readers stop at U+0000: give the bytes too
                row["text_hex"] = t.encode().hex()
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"corpus: {len(corpus)} strings, {sum(len(t.encode()) for t in corpus)} bytes")

    lines = training_text(corpus)
    if args.retrain or not (OUT / "spm" / "tokenizer.model").exists():
        build_spm(lines, OUT / "spm")
    if args.retrain or not (OUT / "spm_legacy" / "tokenizer.json").exists():
        save_spm_hf(OUT / "spm")
    if args.retrain or not (OUT / "llama3" / "tokenizer.json").exists():
        build_llama3(lines, OUT / "llama3")
    if args.retrain or not (OUT / "qwen2" / "tokenizer.json").exists():
        build_qwen2(lines, OUT / "qwen2")
    write_gguf_spm(OUT / "spm")
    write_gguf_bytelevel(OUT / "llama3", "llama-bpe")
    write_gguf_bytelevel(OUT / "qwen2", "qwen2")

    from tokenizers import Tokenizer
    refs = [Ref("smollm2", smollm2_reference(model), 49152)]
    for name in ("spm", "llama3", "qwen2", "spm_legacy"):
        t = Tokenizer.from_file(str(OUT / name / "tokenizer.json"))
        refs.append(Ref(name, t, t.get_vocab_size(with_added_tokens=True)))

    check_transformers(refs, corpus, model)

    rng = random.Random(SEED + 2)
    for ref in refs:
        if ref.name == "spm_legacy":
            write_golden(ref, corpus, None)
        else:
            write_golden(ref, corpus, decode_cases(ref, rng))

    write_variants(corpus)

    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"tests/data/tokenizer: {total / 1e6:.2f} MB")
    if args.bench:
        bench(refs, corpus)


def check_transformers(refs, corpus, model):
    """Cross-checks that the tokenizers.Tokenizer objects above are what transformers users get."""
    from transformers import AutoTokenizer
    import sentencepiece as spm
    by = {r.name: r for r in refs}
    # spm: transformers' LlamaTokenizer from the saved folder, with BOS.
    for name in ("spm", "spm_legacy", "llama3", "qwen2"):
        hf = AutoTokenizer.from_pretrained(str(OUT / name))
        bad = sum(hf.encode(t) != by[name].encode(t, add_special=True) for t in corpus)
        bad2 = sum(hf.decode(by[name].encode(t)) != by[name].decode(by[name].encode(t))
                   for t in corpus)
        print(f"{name}: transformers AutoTokenizer(folder) vs tokenizers: {bad} encodings, "
              f"{bad2} decodings differ")
    sp = spm.SentencePieceProcessor(model_file=str(OUT / "spm" / "tokenizer.model"))
    bad = sum(sp.encode(t) != by["spm"].encode(t, parse_special=False) for t in corpus)
    print(f"spm: sentencepiece itself vs HF LlamaTokenizer (Metaspace 'first'): {bad} differ")
    bad = sum(sp.encode(t) != by["spm_legacy"].encode(t, parse_special=False) for t in corpus)
    print(f"spm: sentencepiece itself vs Llama-2's tokenizer.json shape (spm_legacy): {bad} differ")
    assert bad == 0
    # GGUF files, as transformers' GGUF loader reads them.
    for name in ("spm", "llama3", "qwen2"):
        g = AutoTokenizer.from_pretrained(str(OUT / name), gguf_file="tokenizer.gguf")
        bad = [t for t in corpus if unicodedata.normalize("NFC", t) == t and
               g.encode(t, add_special_tokens=False) != by[name].encode(t)]
        print(f"{name}: transformers GGUF loader vs tokenizer.json: {len(bad)} differ "
              f"(NFC-stable lines)")
        if name == "spm":
            bad = sum(g.encode(t, add_special_tokens=False) != by["spm_legacy"].encode(t)
                      for t in corpus)
            print(f"spm: transformers GGUF loader vs spm_legacy (sentencepiece, llama.cpp, what "
                  f"fastchat does with GGUF): {bad} differ")
    g = AutoTokenizer.from_pretrained(os.path.dirname(model), gguf_file=os.path.basename(model))
    bad = sum(g.encode(t, add_special_tokens=False) != by["smollm2"].encode(t) for t in corpus)
    print(f"smollm2: transformers GGUF loader (no Digits step) vs SmolLM2 tokenizer.json: "
          f"{bad} differ")


def bench(refs, corpus):
    nbytes = sum(len(t.encode()) for t in corpus)
    big = "\n".join(corpus)
    for ref in refs:
        ref.tok.no_padding()
        # CPU time of the process (meaningful on a loaded machine; encode of
        # one text runs on this thread)
        t0 = time.process_time()
        reps = 5
        for _ in range(reps):
            for t in corpus:
                ref.tok.encode(t, add_special_tokens=False)
        dt = time.process_time() - t0
        t1 = time.process_time()
        for _ in range(reps):
            ref.tok.encode(big, add_special_tokens=False)
        dt2 = time.process_time() - t1
        print(f"bench HF tokenizers {ref.name} (cpu time): per-line {nbytes * reps / dt / 1e6:.2f} "
              f"MB/s, whole corpus as one text {len(big.encode()) * reps / dt2 / 1e6:.2f} MB/s")


if __name__ == "__main__":
    main()
