#!/usr/bin/env python3
"""make_smollm2_golden.py: reference logits and greedy continuations of the
default model (SmolLM2-135M-Instruct, Q4_1 GGUF) computed by Hugging Face
transformers, and a comparison of the fastchat binary against them.

transformers loads the GGUF with from_pretrained(dir, gguf_file=name), which
dequantizes every tensor to float32 (and undoes llama.cpp's Q/K row
permutation); the tokenizer comes from the same file. That float32 model is
exactly what `fastchat --exact` computes, so the two should agree to float32
rounding; the default (fast) mode computes with the quantized weights and is
held to top-1 agreement.

Generate mode (default) writes tests/data/smollm2/golden.npz, small enough to
commit (the full logits, 49152 per position, are not):
  names (8,) str, texts (8,) str, truncated (8,) bool  what each prompt is;
      a prompt that is not truncated is exactly tokenizer(text)
  prompt_ids (N,) int32, prompt_offsets (9,) int64     the 8 prompts, concatenated
  argmax (N,) int32          reference top-1 id at every prompt position
  margin (N,) f32            reference top-1 minus top-2 logit
  lse (N,) f32               logsumexp of the reference logits row
  top_ids (N, 32) int32      the 32 highest-scoring ids per position, best first
  top_logits (N, 32) f32     the reference logits at top_ids
  fixed_ids (32,) int32      32 seeded random vocab ids, the same for every row
  fixed_logits (N, 32) f32   the reference logits at fixed_ids
  greedy (8, 64) int32       transformers generate(do_sample=False), EOS not
                             stopping generation (it is an ordinary token)
  greedy_margin (8, 64) f32  top-1 minus top-2 logit at each greedy step
  q8_argmax (N,) int32       top-1 of the reference run with 8-bit activations
                             and an f16 KV cache emulated (q8_activations()),
                             the yardstick for the fast mode
  q8_rms (8,) f32            that run's rms difference from the reference over
                             the stored (top + fixed) entries, per prompt
  eos_id () int32, n_vocab () int32, model_sha256 () str
Compare mode (--compare BIN) needs torch too: it recomputes the full
reference logits and runs BIN on the same prompts, exact and fast, and prints
the full max |delta logit| over all positions and all vocab entries, top-1
agreement, and how many greedy continuations match the golden's. With
--emulate-q8 it also runs the reference with llama.cpp-style 8-bit
activations and an f16 KV cache emulated, the yardstick for the fast mode's
error. Not part of CI.

Usage:
  /root/refvenv/venv/bin/python tools/golden/make_smollm2_golden.py [--model GGUF] [--out NPZ]
  /root/refvenv/venv/bin/python tools/golden/make_smollm2_golden.py --compare build/fastchat [--emulate-q8]
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
N_TOP = 32
N_FIXED = 32
N_GREEDY = 64
SEED = 4242

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(turns):
    """ChatML as SmolLM2's chat template renders it, ending with the
    assistant header (add_generation_prompt=True)."""
    s = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in turns)
    return s + "<|im_start|>assistant\n"


PYTHON_CODE = '''def merge_sorted(a, b):
    """Merge two sorted lists into one sorted list in O(len(a) + len(b))."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i]); i += 1
        else:
            out.append(b[j]); j += 1
    out.extend(a[i:])
    out.extend(b[j:])
    return out


def merge_sort(xs):
    """Sort a list with merge sort; stable."""
    if len(xs) <= 1:
        return list(xs)
    mid = len(xs) // 2
    return merge_sorted(merge_sort(xs[:mid]), merge_sort(xs[mid:]))


if __name__ == "__main__":
    print(merge_sort([5, 2, 9, 1, 5, 6]))
    # Expected output:'''

C_CODE = r'''/* hash.c: an open-addressing hash table from strings to ints. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { char *key; int value; } entry;
typedef struct { entry *slots; size_t cap, len; } table;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (unsigned char)*s++; h *= 1099511628211ull; }
    return h;
}

static int grow(table *t) {
    size_t ncap = t->cap ? t->cap * 2 : 16;
    entry *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i].key) continue;
        size_t j = fnv1a(t->slots[i].key) & (ncap - 1);
        while (ns[j].key) j = (j + 1) & (ncap - 1);
        ns[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

int table_put(table *t, const char *key, int value) {
    if ((t->len + 1) * 4 > t->cap * 3 && grow(t) != 0) return -1;
    size_t j = fnv1a(key) & (t->cap - 1);
    while (t->slots[j].key) {
        if (strcmp(t->slots[j].key, key) == 0) { t->slots[j].value = value; return 0; }
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j].key = strdup(key);
    if (!t->slots[j].key) return -1;
    t->slots[j].value = value;
    t->len++;
    return 0;
}

int table_get(const table *t, const char *key, int *value) {
    if (t->cap == 0) return 0;
    size_t j = fnv1a(key) & (t->cap - 1);
    while (t->slots[j].key) {
        if (strcmp(t->slots[j].key, key) == 0) { *value = t->slots[j].value; return 1; }
        j = (j + 1) & (t->cap - 1);
    }
    return 0;
}

void table_free(table *t) {
    for (size_t i = 0; i < t->cap; i++) free(t->slots[i].key);
    free(t->slots);
    t->slots = NULL;
    t->cap = t->len = 0;
}
'''

# Jane Austen, Pride and Prejudice (1813), chapter 1; public domain.
AUSTEN = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
    "must be in want of a wife.\n\nHowever little known the feelings or views of such a man may be "
    "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
    "surrounding families, that he is considered the rightful property of some one or other of "
    "their daughters.\n\n\"My dear Mr. Bennet,\" said his lady to him one day, \"have you heard that "
    "Netherfield Park is let at last?\"\n\nMr. Bennet replied that he had not.\n\n\"But it is,\" "
    "returned she; \"for Mrs. Long has just been here, and she told me all about it.\"\n\nMr. Bennet "
    "made no answer.\n\n\"Do you not want to know who has taken it?\" cried his wife impatiently.\n\n"
    "\"You want to tell me, and I have no objection to hearing it.\"\n\nThis was invitation enough.\n\n"
    "\"Why, my dear, you must know, Mrs. Long says that Netherfield is taken by a young man of large "
    "fortune from the north of England; that he came down on Monday in a chaise and four to see the "
    "place, and was so much delighted with it, that he agreed with Mr. Morris immediately; that he is "
    "to take possession before Michaelmas, and some of his servants are to be in the house by the end "
    "of next week.\""
)

# The Declaration of Independence (1776), opening; public domain.
DECLARATION = (
    "When in the Course of human events, it becomes necessary for one people to dissolve the political "
    "bands which have connected them with another, and to assume among the powers of the earth, the "
    "separate and equal station to which the Laws of Nature and of Nature's God entitle them, a decent "
    "respect to the opinions of mankind requires that they should declare the causes which impel them "
    "to the separation.\n\nWe hold these truths to be self-evident, that all men are created equal, that "
    "they are endowed by their Creator with certain unalienable Rights, that among these are Life, "
    "Liberty and the pursuit of Happiness.--That to secure these rights, Governments are instituted "
    "among Men, deriving their just powers from the consent of the governed, --That whenever any Form "
    "of Government becomes destructive of these ends, it is the Right of the People to alter or to "
    "abolish it, and to institute new Government, laying its foundation on such principles and "
    "organizing its powers in such form, as to them shall seem most likely to effect their Safety and "
    "Happiness. Prudence, indeed, will dictate that Governments long established should not be changed "
    "for light and transient causes; and accordingly all experience hath shewn, that mankind are more "
    "disposed to suffer, while evils are sufferable, than to right themselves by abolishing the forms "
    "to which they are accustomed. But when a long train of abuses and usurpations, pursuing invariably "
    "the same Object evinces a design to reduce them under absolute Despotism, it is their right, it is "
    "their duty, to throw off such Government, and to provide new Guards for their future security."
    "--Such has been the patient sufferance of these Colonies; and such is now the necessity which "
    "constrains them to alter their former Systems of Government. The history of the present King of "
    "Great Britain is a history of repeated injuries and usurpations, all having in direct object the "
    "establishment of an absolute Tyranny over these States. To prove this, let Facts be submitted to "
    "a candid world.\n\nHe has refused his Assent to Laws, the most wholesome and necessary for the "
    "public good.\n\nHe has forbidden his Governors to pass Laws of immediate and pressing importance, "
    "unless suspended in their operation till his Assent should be obtained; and when so suspended, he "
    "has utterly neglected to attend to them.\n\nHe has refused to pass other Laws for the "
    "accommodation of large districts of people, unless those people would relinquish the right of "
    "Representation in the Legislature, a right inestimable to them and formidable to tyrants only.\n\n"
    "He has called together legislative bodies at places unusual, uncomfortable, and distant from the "
    "depository of their public Records, for the sole purpose of fatiguing them into compliance with "
    "his measures.\n\nHe has dissolved Representative Houses repeatedly, for opposing with manly "
    "firmness his invasions on the rights of the people."
)

# (name, text, truncate to n tokens or None)
PROMPTS = [
    ("chat_capital", chatml([("user", "What is the capital of France?")]), None),
    ("chat_system_haiku", chatml([("system", SYSTEM),
                                  ("user", "Write a haiku about autumn leaves falling in a quiet park.")]), None),
    ("code_python", PYTHON_CODE, None),
    ("chat_multilingual", chatml([("user",
        "Translate these sentences into English and say which language each one is in:\n"
        "1. « On ne voit bien qu'avec le cœur. L'essentiel est invisible pour les yeux. »\n"
        "2. „Der Weg ist das Ziel“, sagte die Großmutter und lächelte.\n"
        "3. ¿Dónde está la biblioteca? Necesito un libro sobre el año 1492.\n"
        "4. 今日はとても暑いですね。\n"
        "Answer as a numbered list 🙂")]), None),
    ("prose_austen", AUSTEN, 200),
    ("chat_multiturn_code", chatml([
        ("system", SYSTEM),
        ("user", "How do I reverse a string in C?"),
        ("assistant", "You can swap characters from both ends moving inwards:\n\n```c\n"
                      "void reverse(char *s) {\n    size_t n = strlen(s);\n"
                      "    for (size_t i = 0; i < n / 2; i++) {\n        char t = s[i];\n"
                      "        s[i] = s[n - 1 - i];\n        s[n - 1 - i] = t;\n    }\n}\n```\n\n"
                      "This works in place and runs in O(n) time."),
        ("user", "What happens if s is NULL, and how would you make the function safe? Also, "
                 "does it work for UTF-8 strings with multi-byte characters like \"héllo wörld\"? "
                 "Explain briefly and give a fixed version.")]), None),
    ("code_c", C_CODE, 400),
    ("prose_declaration", DECLARATION, 512),
]


# ---- running the fastchat binary ----

def run_bin(binary, args, timeout=1800):
    p = subprocess.run([binary] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{binary} {' '.join(args[:6])} ... exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p.stdout


def bin_logits(binary, model, ids, exact, n_vocab):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        args = ["logits", "--model-path", model, "--prompt-ids", ",".join(map(str, ids)), "--out", out]
        if exact:
            args.append("--exact")
        run_bin(binary, args)
        a = np.fromfile(out, dtype="<f4")
    assert a.size == len(ids) * n_vocab, f"logits file holds {a.size} floats, want {len(ids)} x {n_vocab}"
    return a.reshape(len(ids), n_vocab)


def bin_generate(binary, model, ids, n, exact):
    args = ["generate", "--model-path", model, "--prompt-ids", ",".join(map(str, ids)),
            "--max-new-tokens", str(n), "--temperature", "0", "--ignore-eos", "--print-ids"]
    if exact:
        args.append("--exact")
    out = run_bin(binary, args)
    return json.loads(out.strip().splitlines()[-1])


# ---- the reference ----

def load_reference(model_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.split(os.path.abspath(model_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    return tok, model


def reference_logits(model, ids):
    import torch
    with torch.no_grad():
        return model(torch.tensor([ids], dtype=torch.long), use_cache=False).logits[0].float().numpy()


def reference_greedy(model, ids, n):
    """generate(do_sample=False) with no EOS: exactly n new tokens."""
    import torch
    from transformers import GenerationConfig
    # generate() fills unset fields from the model's own generation config,
    # which names <|im_end|> as EOS: clear it there first.
    model.generation_config.eos_token_id = None
    gc = GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0, eos_token_id=None,
                          pad_token_id=0, return_dict_in_generate=True, output_logits=True)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids], dtype=torch.long), generation_config=gc,
                             attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    toks = out.sequences[0, len(ids):].numpy().astype(np.int32)
    assert len(toks) == n, f"generate returned {len(toks)} tokens, want {n}"
    margins = []
    for step in out.logits:
        top2 = torch.topk(step[0].float(), 2).values
        margins.append(float(top2[0] - top2[1]))
    return toks, np.array(margins, dtype=np.float32)


def build_prompts(tok):
    names, texts, truncated, ids_list = [], [], [], []
    for name, text, n in PROMPTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if n is not None:
            assert len(ids) >= n, f"{name}: only {len(ids)} tokens, want {n}"
            ids = ids[:n]
        names.append(name)
        texts.append(text)
        truncated.append(n is not None)
        ids_list.append(ids)
    return names, texts, truncated, ids_list


def generate(args):
    tok, model = load_reference(args.model)
    names, texts, truncated, ids_list = build_prompts(tok)
    V = model.config.vocab_size
    rng = np.random.default_rng(SEED)
    fixed_ids = np.sort(rng.choice(V, N_FIXED, replace=False)).astype(np.int32)

    argmax, margin, lse, top_ids, top_logits, fixed_logits = [], [], [], [], [], []
    greedy, greedy_margin = [], []
    q8_argmax, q8_rms = [], []
    for name, ids in zip(names, ids_list):
        t0 = time.time()
        lg = reference_logits(model, ids)
        order = np.argsort(-lg, axis=1, kind="stable")[:, :N_TOP]
        top_ids.append(order.astype(np.int32))
        top_logits.append(np.take_along_axis(lg, order, axis=1))
        fixed_logits.append(lg[:, fixed_ids])
        argmax.append(order[:, 0].astype(np.int32))
        margin.append(np.take_along_axis(lg, order[:, :2], axis=1) @ np.array([1.0, -1.0], np.float32))
        m = lg.max(axis=1, keepdims=True)
        lse.append((m[:, 0] + np.log(np.exp(lg - m).sum(axis=1))).astype(np.float32))
        with q8_activations(model):
            emu = reference_logits(model, ids)
        q8_argmax.append(emu.argmax(axis=1).astype(np.int32))
        stored = np.concatenate([order, np.broadcast_to(fixed_ids, (len(ids), N_FIXED))], axis=1)
        e = np.take_along_axis(emu, stored, axis=1) - np.take_along_axis(lg, stored, axis=1)
        q8_rms.append(float(np.sqrt((e.astype(np.float64) ** 2).mean())))
        g, gm = reference_greedy(model, ids, N_GREEDY)
        greedy.append(g)
        greedy_margin.append(gm)
        print(f"{name:22s} {len(ids):4d} tokens  min margin {margin[-1].min():.4f}  "
              f"q8 emulation: top-1 {(q8_argmax[-1] == argmax[-1]).mean() * 100:.1f}% rms {q8_rms[-1]:.3f}  "
              f"greedy min margin {gm.min():.4f}  {time.time() - t0:.1f}s  -> {tok.decode(g[:24])!r}", flush=True)

    offsets = np.zeros(len(ids_list) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in ids_list])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(
        args.out,
        names=np.array(names), texts=np.array(texts), truncated=np.array(truncated),
        prompt_ids=np.concatenate([np.array(x, dtype=np.int32) for x in ids_list]),
        prompt_offsets=offsets,
        argmax=np.concatenate(argmax), margin=np.concatenate(margin).astype(np.float32),
        lse=np.concatenate(lse),
        top_ids=np.concatenate(top_ids), top_logits=np.concatenate(top_logits).astype(np.float32),
        fixed_ids=fixed_ids, fixed_logits=np.concatenate(fixed_logits).astype(np.float32),
        greedy=np.stack(greedy), greedy_margin=np.stack(greedy_margin),
        q8_argmax=np.concatenate(q8_argmax), q8_rms=np.array(q8_rms, dtype=np.float32),
        eos_id=np.int32(tok.eos_token_id), n_vocab=np.int32(V),
        model_sha256=np.array("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    )
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 1024:.0f} KiB, {offsets[-1]} positions")


@contextlib.contextmanager
def q8_activations(model):
    """Emulates, inside the transformers model, what a llama.cpp-style fast
    path does on top of the dequantized weights: every matrix product's input
    rounded to 8-bit codes per block of 32 (d = amax/127 stored as f16, codes
    rounded half away from zero: q8_0 / q8_1), and keys (after RoPE) and
    values rounded to f16 as an f16 KV cache stores them. (The f16 rounding of
    q8_1's cached block sum is left out: its effect is ~1e-4 of the rest.)
    It predicts the size of the fast-mode error, not its per-position value:
    one code rounded the other way in layer 0 changes ~10% of the codes
    downstream, so two correct fast paths agree only statistically."""
    import torch
    import transformers.models.llama.modeling_llama as ML

    def f16(x):
        return x.half().float()

    def q8(x):
        sh = x.shape
        xb = x.reshape(-1, sh[-1] // 32, 32)
        d = xb.abs().amax(-1, keepdim=True) / 127
        v = xb * torch.where(d > 0, 1.0 / d, torch.zeros_like(d))
        q = torch.sign(v) * torch.floor(v.abs() + 0.5)
        return (q * f16(d)).reshape(sh)

    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            hooks.append(mod.register_forward_pre_hook(lambda m, inp: (q8(inp[0]),)))
            if name.endswith("v_proj"):
                hooks.append(mod.register_forward_hook(lambda m, inp, out: f16(out)))
    rope = ML.apply_rotary_pos_emb

    def rope_f16_k(q, k, cos, sin, unsqueeze_dim=1):
        q, k = rope(q, k, cos, sin, unsqueeze_dim)
        return q, f16(k)

    ML.apply_rotary_pos_emb = rope_f16_k
    try:
        yield
    finally:
        ML.apply_rotary_pos_emb = rope
        for h in hooks:
            h.remove()


def compare(args):
    """Full comparison: every position, every vocab entry (needs torch). The
    greedy reference is the committed golden's (same model, same prompts)."""
    tok, model = load_reference(args.model)
    names, _, _, ids_list = build_prompts(tok)
    g = np.load(args.out)
    assert list(g["prompt_ids"]) == [i for ids in ids_list for i in ids], f"{args.out} is for other prompts"
    V = model.config.vocab_size
    worst = {True: 0.0, False: 0.0}
    agree = {True: 0, False: 0}
    greedy_ok = {True: 0, False: 0}
    sq = {True: 0.0, False: 0.0}
    emu_agree, emu_sq = 0, 0.0
    n_pos = 0
    print(f"{'prompt':22s} {'T':>4s} | {'exact max|d|':>12s} {'top1':>7s} {'greedy':>6s} | "
          f"{'fast max|d|':>11s} {'rms':>5s} {'top1':>7s} {'greedy':>6s}"
          + (f" | {'q8-emulation rms':>16s} {'top1':>7s}" if args.emulate_q8 else ""), flush=True)
    for i, (name, ids) in enumerate(zip(names, ids_list)):
        t0 = time.time()
        ref = reference_logits(model, ids)
        ref_top = ref.argmax(axis=1)
        g_ref = g["greedy"][i].tolist()
        n_pos += len(ids)
        cols = []
        for exact in (True, False):
            ours = bin_logits(args.compare, args.model, ids, exact, V)
            d = np.abs(ours.astype(np.float64) - ref)
            worst[exact] = max(worst[exact], float(d.max()))
            sq[exact] += float((d ** 2).sum())
            a = int((ours.argmax(axis=1) == ref_top).sum())
            agree[exact] += a
            gen = bin_generate(args.compare, args.model, ids, N_GREEDY, exact)
            n_same = next((j for j, (x, y) in enumerate(zip(gen, g_ref)) if x != y), min(len(gen), N_GREEDY))
            ok = n_same == N_GREEDY and len(gen) == N_GREEDY
            greedy_ok[exact] += ok
            pos = np.unravel_index(int(d.argmax()), d.shape)
            rms = "" if exact else f" {np.sqrt((d ** 2).mean()):5.3f}"
            cols.append(f"{d.max():12.3e}{rms} {a:3d}/{len(ids):<3d} {'same' if ok else f'@{n_same}':>6s}")
            if args.verbose:
                print(f"   {'exact' if exact else 'fast'}: worst at position {pos[0]} id {pos[1]} "
                      f"ours {ours[pos]:.5f} ref {ref[pos]:.5f}")
        line = f"{name:22s} {len(ids):4d} | {cols[0]} | {cols[1][1:]}"
        if args.emulate_q8:
            with q8_activations(model):
                emu = reference_logits(model, ids)
            e2 = (emu.astype(np.float64) - ref) ** 2
            emu_sq += float(e2.sum())
            ea = int((emu.argmax(axis=1) == ref_top).sum())
            emu_agree += ea
            line += f" | {np.sqrt(e2.mean()):16.3f} {ea:3d}/{len(ids):<3d}"
        print(line + (f"  ({time.time() - t0:.0f}s)" if args.verbose else ""), flush=True)
    print()
    print(f"exact: max |dlogit| {worst[True]:.3e} over {n_pos} positions x {V} ids "
          f"(rms {np.sqrt(sq[True] / n_pos / V):.2e}); top-1 {agree[True]}/{n_pos}; "
          f"greedy-{N_GREEDY} identical {greedy_ok[True]}/{len(ids_list)}")
    print(f"fast:  max |dlogit| {worst[False]:.3e} (rms {np.sqrt(sq[False] / n_pos / V):.3f}); "
          f"top-1 {agree[False]}/{n_pos} ({100.0 * agree[False] / n_pos:.2f}%); "
          f"greedy-{N_GREEDY} identical {greedy_ok[False]}/{len(ids_list)}")
    if args.emulate_q8:
        print(f"q8 activations + f16 KV emulated in transformers: rms {np.sqrt(emu_sq / n_pos / V):.3f}; "
              f"top-1 {emu_agree}/{n_pos} ({100.0 * emu_agree / n_pos:.2f}%)")


def default_model():
    env = os.environ.get("FASTCHAT_MODEL")
    if env:
        return env
    cache = os.environ.get("FASTCHAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fastchat")
    return os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=default_model(), help="the GGUF (default: $FASTCHAT_MODEL or the cache)")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "smollm2", "golden.npz"))
    ap.add_argument("--compare", metavar="BIN", help="compare BIN against the reference instead of writing")
    ap.add_argument("--emulate-q8", action="store_true",
                    help="with --compare: also report what 8-bit activations + f16 KV cost in transformers")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"error: {args.model}: not found\nhint: scripts/fetch_model.sh downloads it")
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if args.compare:
        compare(args)
    else:
        generate(args)


if __name__ == "__main__":
    main()
