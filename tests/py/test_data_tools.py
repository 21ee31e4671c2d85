"""test_data_tools.py: `fastchat data <tool>` against FastChat's own scripts.

Each test runs the script from the installed fschat package
(`python -m fastchat.data.<script>`, unchanged) and our subcommand on the same
input file in two scratch folders, then compares:
  - the output files byte for byte (both are json.dump(indent=2) format, so
    key order, float spelling and escapes must match exactly), and
  - what the script prints on stdout (its "#in: .., #out: .." lines and the
    per-sample messages), line for line.
Inputs: tests/data/datatools/*.json (committed; gen_inputs.py wrote them) and
the HTML corpus tests/data/datatools/html_corpus.json for clean-sharegpt.

The scripts that import `transformers` (split_long_conversation, get_stats,
convert_alpaca) run with tests/py/datatools_shim on PYTHONPATH: a stand-in
whose AutoTokenizer is SmolLM2's fast tokenizer built with `tokenizers` from
the default model's GGUF (transformers itself is not installed here).
optional_clean needs polyglot/pycld2, which are not installed: its
--reduce-rep rule is compared by running the script's skip() function with
the polyglot imports stubbed; the language part is ours and only checked for
its keep/skip rules.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, ROOT

D = DATA / "datatools"
SHIM = Path(__file__).resolve().parent / "datatools_shim"
PY = sys.executable


def run_script(module, args, cwd, extra_path=False):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", PYTHONHASHSEED="0")
    if extra_path:
        env["PYTHONPATH"] = str(SHIM) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([PY, "-m", f"fastchat.data.{module}", *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{module} failed:\n{r.stderr[-3000:]}"
    return r.stdout


def run_ours(fastchat_bin, tool, args, cwd, threads=None, check=True):
    env = dict(os.environ)
    if threads:
        env["FASTCHAT_DATA_THREADS"] = str(threads)
    r = subprocess.run([str(fastchat_bin), "data", tool, *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    if check:
        assert r.returncode == 0, f"fastchat data {tool} failed:\n{r.stderr[-3000:]}"
    return r


@pytest.fixture
def dirs(tmp_path):
    a, b = tmp_path / "py", tmp_path / "c"
    a.mkdir()
    b.mkdir()
    return a, b


def same_file(a, b):
    ba, bb = Path(a).read_bytes(), Path(b).read_bytes()
    if ba != bb:
        # point at the first difference
        i = next((k for k in range(min(len(ba), len(bb))) if ba[k] != bb[k]), min(len(ba), len(bb)))
        raise AssertionError(f"{a} and {b} differ at byte {i}:\n"
                             f"python: {ba[max(0, i - 80):i + 80]!r}\nours:   {bb[max(0, i - 80):i + 80]!r}")


def put(d, name, src):
    shutil.copy(src, d / name)
    return name


# ---- merge, sample, split-train-test ----

def test_merge(fastchat_bin, dirs):
    a, b = dirs
    for d in dirs:
        put(d, "x.json", D / "convs.json")
        put(d, "y.json", D / "alpaca.json")
    so = run_script("merge", ["--in-file", "x.json", "y.json", "x.json", "--out-file", "m.json"], a)
    r = run_ours(fastchat_bin, "merge", ["--in", "x.json", "y.json", "x.json", "--out-file", "m.json"], b)
    assert r.stdout == so
    same_file(a / "m.json", b / "m.json")


@pytest.mark.parametrize("args", [
    [],
    ["--keep-order"],
    ["--begin", "7", "--end", "290", "--max-length", "400"],
    ["--begin", "-20", "--end", "5"],
    ["--end", "100000", "--max-length", "100000"],
])
def test_sample(fastchat_bin, dirs, args):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "convs.json")
    so = run_script("sample", ["--in-file", "in.json", "--out-file", "s.json", *args], a)
    r = run_ours(fastchat_bin, "sample", ["--in-file", "in.json", "--out-file", "s.json", *args], b)
    assert r.stdout == so
    same_file(a / "s.json", b / "s.json")


@pytest.mark.parametrize("ratio", ["0.9", "0.99", "0.5", "1.0", "0"])
def test_split_train_test(fastchat_bin, dirs, ratio):
    a, b = dirs
    for d in dirs:
        put(d, "data.json", D / "convs.json")
    so = run_script("split_train_test", ["--in-file", "data.json", "--ratio", ratio], a)
    r = run_ours(fastchat_bin, "split-train-test", ["--in-file", "data.json", "--ratio", ratio], b)
    assert r.stdout == so
    same_file(a / "data_train.json", b / "data_train.json")
    same_file(a / "data_test.json", b / "data_test.json")


def test_numpy_shuffle_many_sizes(fastchat_bin, tmp_path):
    """The seed-42 shuffle and the seed-0 permutation equal numpy's for sizes
    around the mask boundaries of numpy's bounded draw."""
    for n in [0, 1, 2, 3, 255, 256, 257, 1000, 1025]:
        items = [{"id": str(i), "conversations": []} for i in range(n)]
        (tmp_path / "n.json").write_text(json.dumps(items))
        run_ours(fastchat_bin, "sample", ["--in-file", "n.json", "--out-file", "s.json", "--end", n], tmp_path)
        got = [x["id"] for x in json.loads((tmp_path / "s.json").read_text())]
        import numpy as np
        np.random.seed(42)
        want = list(range(n))
        np.random.shuffle(want)
        assert got == [str(i) for i in want], n


# ---- filters ----

def test_filter_wrong_format(fastchat_bin, dirs):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "convs.json")
    so = run_script("filter_wrong_format", ["--in-file", "in.json", "--out-file", "o.json"], a)
    r = run_ours(fastchat_bin, "filter-wrong-format", ["--in-file", "in.json", "--out-file", "o.json"], b)
    assert r.stdout == so
    assert "contains a wrong format" in so
    same_file(a / "o.json", b / "o.json")


@pytest.mark.parametrize("script,tool,suffix", [
    ("extract_gpt4_only", "extract-gpt4-only", "_gpt4.json"),
    ("extract_single_round", "extract-single-round", "_single.json"),
])
@pytest.mark.parametrize("args", [[], ["--begin", "10", "--end", "-10"]])
def test_extract(fastchat_bin, dirs, script, tool, suffix, args):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "convs.json")
    so = run_script(script, ["--in-file", "in.json", *args], a)
    r = run_ours(fastchat_bin, tool, ["--in-file", "in.json", *args], b)
    assert r.stdout == so
    same_file(a / ("in" + suffix), b / ("in" + suffix))


def test_convert_alpaca(fastchat_bin, dirs):
    a, b = dirs
    for d in dirs:
        put(d, "alpaca.json", D / "alpaca.json")
    so = run_script("convert_alpaca", ["--in-file", "alpaca.json", "--out-file", "o.json"], a, extra_path=True)
    r = run_ours(fastchat_bin, "convert-alpaca", ["--in-file", "alpaca.json", "--out-file", "o.json"], b)
    assert r.stdout == so
    same_file(a / "o.json", b / "o.json")


def test_hardcoded_questions(fastchat_bin, dirs):
    a, b = dirs
    run_script("hardcoded_questions", [], a)
    run_ours(fastchat_bin, "hardcoded-questions", [], b)
    same_file(a / "hardcoded.json", b / "hardcoded.json")
    # another identity is one flag away
    run_ours(fastchat_bin, "hardcoded-questions", ["--out-file", "me.json", "--name", "Zed", "--org", "Acme"], b)
    me = json.loads((b / "me.json").read_text())
    assert me[0]["conversations"][1]["value"] == "I am Zed, a language model trained by researchers from Acme."
    assert len(me) == len(json.loads((a / "hardcoded.json").read_text()))


OPTIONAL_CLEAN_RUNNER = r"""
import json, re, sys, types
# polyglot and pycld2 are not installed: stub the imports; with --keep-lang all
# and no --skip-lang the script never calls the detector
pg = types.ModuleType("polyglot"); det = types.ModuleType("polyglot.detect")
base = types.ModuleType("polyglot.detect.base")
class UnknownLanguage(Exception): pass
base.UnknownLanguage = UnknownLanguage; det.base = base; det.Detector = None; pg.detect = det
sys.modules.update({"polyglot": pg, "polyglot.detect": det, "polyglot.detect.base": base})
cld = types.ModuleType("pycld2"); cld.error = Exception; sys.modules["pycld2"] = cld
import runpy
sys.argv = ["optional_clean"] + sys.argv[1:]
runpy.run_module("fastchat.data.optional_clean", run_name="__main__")
"""


def test_optional_clean_reduce_rep(fastchat_bin, dirs):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "convs.json")
    (a / "run.py").write_text(OPTIONAL_CLEAN_RUNNER)
    r = subprocess.run([PY, "run.py", "--in-file", "in.json", "--reduce-rep"], cwd=a,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ours = run_ours(fastchat_bin, "optional-clean", ["--in-file", "in.json", "--reduce-rep"], b)
    assert ours.stdout == r.stdout
    same_file(a / "sharegpt_clean_reduce_rep.json", b / "sharegpt_clean_reduce_rep.json")


def test_optional_clean_language_rules(fastchat_bin, tmp_path):
    """Not compared with polyglot (not installed): our detector's keep/skip rules."""
    items = [
        {"id": "en", "conversations": [{"from": "human", "value": "What is the capital of France and how is it governed?"}]},
        {"id": "ko", "conversations": [{"from": "human", "value": "안녕하세요, 오늘 날씨가 어때요?"}]},
        {"id": "zh", "conversations": [{"from": "human", "value": "今天天气怎么样？我们去公园吧。"}]},
        {"id": "ja", "conversations": [{"from": "human", "value": "今日はいい天気ですね。公園に行きましょう。"}]},
        {"id": "es", "conversations": [{"from": "human", "value": "¿Cuál es la capital de Francia y por qué es importante para los franceses?"}]},
        {"id": "ru", "conversations": [{"from": "human", "value": "Какая сегодня погода в Москве?"}]},
    ]
    (tmp_path / "in.json").write_text(json.dumps(items, ensure_ascii=False))
    run_ours(fastchat_bin, "optional-clean", ["--in-file", "in.json", "--keep-lang", "en"], tmp_path)
    assert [x["id"] for x in json.loads((tmp_path / "sharegpt_clean_en.json").read_text())] == ["en"]
    run_ours(fastchat_bin, "optional-clean", ["--in-file", "in.json", "--skip-lang", "ko"], tmp_path)
    kept = [x["id"] for x in json.loads((tmp_path / "sharegpt_clean_skip_ko.json").read_text())]
    assert kept == ["en", "zh", "ja", "es", "ru"]
    r = run_ours(fastchat_bin, "optional-clean", ["--in-file", "in.json", "--keep-lang", "en", "--skip-lang", "ko"],
                 tmp_path, check=False)
    assert r.returncode != 0


# ---- token counting ----

@pytest.mark.parametrize("max_length", [2048, 120, 40])
def test_split_long(fastchat_bin, model_path, dirs, max_length):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "convs.json")
    args = ["--in-file", "in.json", "--out-file", "o.json", "--max-length", max_length,
            "--model-name-or-path", model_path]
    so = run_script("split_long_conversation", args, a, extra_path=True)
    r = run_ours(fastchat_bin, "split-long", args, b)
    assert r.stdout == so
    same_file(a / "o.json", b / "o.json")


def test_stats(fastchat_bin, model_path, dirs):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "convs.json")
    so = run_script("get_stats", ["--in-file", "in.json", "--model-name-or-path", model_path], a, extra_path=True)
    r = run_ours(fastchat_bin, "stats", ["--in-file", "in.json", "--model-name-or-path", model_path], b)
    assert r.stdout == so
    r = run_ours(fastchat_bin, "stats", ["--in-file", "in.json", "--model-name-or-path", model_path, "--by-role"], b)
    assert r.stdout.startswith(so) and "human" in r.stdout[len(so):]


# ---- threads, errors ----

def test_output_independent_of_threads(fastchat_bin, tmp_path):
    """Big enough for several batches: 1 thread and 3 threads write the same bytes."""
    items = json.loads((D / "convs.json").read_text()) * 30
    (tmp_path / "big.json").write_text(json.dumps(items, ensure_ascii=False))
    outs = []
    for t in (1, 3):
        run_ours(fastchat_bin, "filter-wrong-format", ["--in-file", "big.json", "--out-file", f"o{t}.json"],
                 tmp_path, threads=t)
        outs.append((tmp_path / f"o{t}.json").read_bytes())
    assert outs[0] == outs[1]


@pytest.mark.parametrize("content,expect", [
    (None, "No such file"),
    ('[{"id": "a", "conversations": []}, {"id": "b" "x"}]', "malformed JSON at byte 46 (line 1, column 47): expecting ',' delimiter"),
    ('[{"id": "a"}, ]', "malformed JSON at byte 14 (line 1, column 15): expecting value"),
    ('[{"id": "\xff"}]', "malformed JSON at byte 9 (line 1, column 10): invalid UTF-8"),
    ('[{"id": "a\tb"}]', "malformed JSON at byte 10 (line 1, column 11): invalid control character"),
    ('{"id": "a"}', "top level is not a JSON array"),
    ('[{"id": "a"}]', "element 0: no \"conversations\" list"),
    ('[{"id": "a", "conversations": [{"from": "human"}]}]', "element 0: a turn without a string \"value\""),
])
def test_errors(fastchat_bin, tmp_path, content, expect):
    p = tmp_path / "bad.json"
    if content is not None:
        p.write_bytes(content.encode("latin-1") if "\xff" in content else content.encode())
    r = run_ours(fastchat_bin, "filter-wrong-format", ["--in-file", "bad.json", "--out-file", "o.json"],
                 tmp_path, check=False)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], r.stderr
    assert not (tmp_path / "o.json").exists()
    assert not list(tmp_path.glob("o.json.tmp-*"))


def test_bad_flags(fastchat_bin, tmp_path):
    r = run_ours(fastchat_bin, "sample", ["--in-file", "x.json", "--nope"], tmp_path, check=False)
    assert r.returncode == 2 and "--nope" in r.stderr
    r = run_ours(fastchat_bin, "sample", [], tmp_path, check=False)
    assert r.returncode == 2 and "--in-file" in r.stderr
    r = run_ours(fastchat_bin, "sample", ["--in-file", "x.json", "--end", "ten"], tmp_path, check=False)
    assert r.returncode == 2 and "--end: 'ten' is not an integer" in r.stderr


# ---- clean-sharegpt ----

def test_clean_sharegpt_corpus(fastchat_bin, dirs):
    """The committed corpus of ShareGPT-export HTML (html_corpus.json)."""
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "html_corpus.json")
    so = run_script("clean_sharegpt", ["--in-file", "in.json", "--out-file", "o.json"], a)
    r = run_ours(fastchat_bin, "clean-sharegpt", ["--in-file", "in.json", "--out-file", "o.json"], b)
    assert r.stdout == so
    for k in ("cnt_blocked_words: 0", "cnt_too_short: 0", "cnt_id_duplication: 0", "cnt_value_duplication: 0",
              "cnt_plugin: 0", "cnt_wrong_format: 0"):
        assert k not in so, f"corpus does not exercise {k}"
    same_file(a / "o.json", b / "o.json")
    out = (b / "o.json").read_text()
    assert "```python\\n" in out and "**" in out and "1. " in out  # fences, bold, lists


FRAGMENTS = [
    "<p>", "</p>", "<ol>", "</ol>", "<ul>", "</ul>", "<li>", "</li>", "<pre>", "</pre>", "<code>", "</code>",
    "<b>", "</b>", "<strong>", "</strong>", "<em>", "</em>", "<i>", "</i>", "<a href=\"http://x.y/a_b\">", "</a>",
    "<a href='q' title=\"t\">", "<a>", "<h1>", "</h1>", "<h2>", "</h2>", "<h3>", "</h3>", "<h6>", "</h6>",
    "<br>", "<br/>", "</br>", "<br />", "<hr>", "<hr/>", "<blockquote>", "</blockquote>", "<table>", "</table>",
    "<tr>", "</tr>", "<td>", "</td>", "<th>", "</th>", "<tbody>", "</tbody>", "<thead>", "</thead>",
    "<img src=x alt=y>", "<img alt=\"a&amp;b&copy\" src='s'>", "<!-- c -->", "<!---->", "<!DOCTYPE html>",
    "<?pi x?>", "<script>a<b</script>", "<style>p{}</style>", "<span>", "</span>", "<div>", "</div>",
    "<x-y z=1>", "&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&copy", "&#65;", "&#x41;", "&#150;", "&#0;",
    "&#xD800;", "&foo;", "&", "&#", "&#;", "<", ">", "< p>", "<p", "</p", "<!", "<a href=", "a<b", "3<4",
    "x & y", " ", "  ", "\n", "\n\n", "\t", "text", "under_score", "*star*", "1. item", "Copy code", "```",
    "2 / 3", "word", "Ünïcödé", "日本", "<ol start=\"3\">", "<ul>\n<li>", "</li>\n", "<kbd>", "</kbd>", "<del>",
    "</del>", "<sup>", "</sup>", "<h7>", "</h7>", "<textarea>", "</textarea>", "<P>", "</P>", "<BR>",
    "<p class=\"a\" id=b>", "<li><p>", "</p></li>", "<td>\n", "\n</td>", "<pre><code>", "</code></pre>",
    "<code class=\"language-py\">",
]


def test_clean_sharegpt_random_markup(fastchat_bin, dirs):
    """2000 answers of random tag soup (broken nesting, stray < and &, void
    tags closed twice, comments inside pre, ...): html.parser + bs4 +
    markdownify and our port give the same Markdown."""
    import random
    rng = random.Random(7)
    items = []
    for i in range(2000):
        html = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 40)))
        items.append({"id": f"r{i}", "conversations": [
            {"from": "human", "value": f"question number {i} with enough characters"},
            {"from": "gpt", "value": "answer " + html}]})
    a, b = dirs
    for d in dirs:
        (d / "in.json").write_text(json.dumps(items, ensure_ascii=False))
    so = run_script("clean_sharegpt", ["--in-file", "in.json", "--out-file", "o.json"], a)
    r = run_ours(fastchat_bin, "clean-sharegpt", ["--in-file", "in.json", "--out-file", "o.json"], b)
    assert r.stdout == so
    same_file(a / "o.json", b / "o.json")


def test_clean_sharegpt_slice(fastchat_bin, dirs):
    a, b = dirs
    for d in dirs:
        put(d, "in.json", D / "html_corpus.json")
    args = ["--in-file", "in.json", "--out-file", "o.json", "--begin", "50", "--end", "-100"]
    so = run_script("clean_sharegpt", args, a)
    r = run_ours(fastchat_bin, "clean-sharegpt", args, b)
    assert r.stdout == so
    same_file(a / "o.json", b / "o.json")
