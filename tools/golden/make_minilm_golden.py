"""Reference sentence embeddings of all-MiniLM-L6-v2 for tests/py/test_bert_embed.py.

Run with the golden-data venv (sentence-transformers + torch), after
scripts/fetch_embed_model.sh has put the model folder into the cache:

    /work/gvenv/bin/python tools/golden/make_minilm_golden.py \
        --model "$(scripts/fetch_embed_model.sh)" --out tests/data/bert/minilm_golden.npz

Writes texts (unicode array) and emb (float16, (n, 384): what
SentenceTransformer(folder).encode(texts) returns, pooled and normalized by
the folder's own modules) for >= 200 held-out sentences: hand-written ones in
several languages, near-empty ones, texts of 512+ tokens (cut at the model's
max_seq_length, 256), and sentences composed from fixed word lists with a
fixed seed. Also prints sentence-transformers' embeddings/s on this CPU
(batch 32) for the speed comparison in the report; --bench-only skips
writing.
"""
import argparse
import random
import time

import numpy as np

HAND = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome!",
    "The cat sits outside",
    "The new movie is so great",
    "How do I bake sourdough bread at home?",
    "Vicuna is a chat assistant fine-tuned from LLaMA on user-shared conversations.",
    "FastChat is an open platform for training, serving, and evaluating chatbots.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Ich möchte gern ein Glas Wasser, bitte.",
    "Le café est trop chaud pour être bu tout de suite.",
    "Où se trouve la gare la plus proche ?",
    "El niño juega con su perro en el parque.",
    "¿Cuánto cuesta este libro de segunda mano?",
    "O rato roeu a roupa do rei de Roma.",
    "La vita è bella quando il sole splende.",
    "Het weer is vandaag erg mooi in Amsterdam.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Москва — столица России.",
    "Γειά σου Κόσμε! Η γλώσσα μου είναι ελληνική.",
    "我们今天去公园散步吧。",
    "机器学习是人工智能的一个分支。",
    "東京は日本の首都です。",
    "すもももももももものうち",
    "안녕하세요, 만나서 반갑습니다.",
    "서울은 한국의 수도입니다.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "שלום עולם, מה שלומך?",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "สวัสดีชาวโลก",
    "Xin chào thế giới, bạn khỏe không?",
    "Merhaba dünya, nasılsın?",
    "Cześć, jak się masz? Źdźbło żółwia.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép.",
    "Hyvää huomenta, mitä kuuluu?",
    "Jag älskar att läsa böcker på sommaren.",
    "naïve café résumé façade coöperate Ångström",
    "İstanbul ŞİŞLİ ıIiİ",
    "ǅungla ǈubav ǋoj — ß ẞ ﬁ ﬂ",
    "Emoji test 😀👍🏽🚀 and symbols ©®™ ½ ∑ ∞ ≠",
    "def f(x):\n    return x * 2  # doubles x",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name;",
    "https://example.com/path?query=1&x=y#frag",
    "user@example.org wrote: 'don't panic!'",
    "3.14159 2.71828 1,000,000 $42.00 €15 ¥300 50%",
    "[CLS] special [SEP] tokens [MASK] in [UNK] text [PAD]",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u3000ideographic space",
    "zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft hyphen",
    "control\x01chars\x07here\x1f and DEL\x7f",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious" * 4,
    "ALL CAPS SENTENCE WITH SHOUTING!!!",
    "MiXeD CaSe WoRdS aNd PuNcTuAtIoN?!",
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "To be, or not to be, that is the question.",
    "I think, therefore I am.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy.",
    "The stock market fell sharply after the announcement.",
    "Please reset my password; I can't log in.",
    "Where is the nearest hospital?",
    "What time does the train to Berlin leave?",
    "Can you recommend a good Italian restaurant nearby?",
    "The meeting has been moved to Thursday afternoon.",
]

NEAR_EMPTY = ["", " ", "  \n\t ", ".", "a", "?", "!!", "I", "é", "中", "😀", "\u200b", "[SEP]", "0", "-", "the"]

WORDS = {
    "en": "the a cat dog house tree river city music book computer phone runs sleeps eats quickly slowly red blue "
          "happy sad old new big small under over near far because although while".split(),
    "de": "der die das Haus Baum Fluss Stadt Musik Buch läuft schläft isst schnell langsam rot blau glücklich "
          "traurig alt neu groß klein unter über weil obwohl".split(),
    "fr": "le la les maison arbre rivière ville musique livre court dort mange vite lentement rouge bleu heureux "
          "triste vieux nouveau grand petit sous sur parce que".split(),
    "es": "el la los casa árbol río ciudad música libro corre duerme come rápido lento rojo azul feliz triste "
          "viejo nuevo grande pequeño bajo sobre porque".split(),
    "ru": "дом дерево река город музыка книга бежит спит ест быстро медленно красный синий счастливый "
          "грустный старый новый большой маленький под над потому".split(),
    "zh": list("我你他她们的是在有这个人天地大小中国家学生工作时间今日明月水火山"),
    "ja": "私 あなた 猫 犬 家 木 川 町 音楽 本 走る 寝る 食べる 速く ゆっくり 赤い 青い 新しい 古い".split(),
}


def composed(rng, n):
    out = []
    langs = sorted(WORDS)
    for i in range(n):
        lang = langs[i % len(langs)]
        k = rng.randint(3, 25)
        sep = "" if lang in ("zh", "ja") and rng.random() < 0.5 else " "
        words = [rng.choice(WORDS[lang]) for _ in range(k)]
        s = sep.join(words)
        if rng.random() < 0.5:
            s = s[0].upper() + s[1:]
        out.append(s + rng.choice([".", "!", "?", "", ","]))
    return out


def long_texts(rng):
    # 512+ tokens each: cut at max_seq_length by both sides
    en = " ".join(rng.choice(WORDS["en"]) for _ in range(700))
    de = " ".join(rng.choice(WORDS["de"]) for _ in range(600))
    zh = "".join(rng.choice(WORDS["zh"]) for _ in range(800))
    mixed = " ".join(rng.choice(WORDS[rng.choice(sorted(WORDS))]) for _ in range(650))
    return [en, de, zh, mixed, HAND[13] * 40, ("word, " * 400).strip()]


def texts():
    rng = random.Random(14)
    t = HAND + NEAR_EMPTY + long_texts(rng) + composed(rng, 140)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", default="tests/data/bert/minilm_golden.npz")
    ap.add_argument("--bench-only", action="store_true")
    a = ap.parse_args()
    from sentence_transformers import SentenceTransformer
    import torch

    m = SentenceTransformer(a.model, device="cpu")
    t = texts()
    emb = m.encode(t, batch_size=32, convert_to_numpy=True)
    if not a.bench_only:
        np.savez_compressed(a.out, texts=np.array(t), emb=emb.astype(np.float16))
        print(f"wrote {a.out}: {len(t)} texts, dim {emb.shape[1]}")
    # speed: the same texts, batch 32, best of 3
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        m.encode(t, batch_size=32)
        best = max(best, len(t) / (time.perf_counter() - t0))
    print(f"sentence-transformers {len(t)} texts, batch 32, torch threads {torch.get_num_threads()}: "
          f"{best:.1f} embeddings/s")


if __name__ == "__main__":
    main()
