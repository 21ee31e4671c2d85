"""`fastchat judge report`: the standalone results page in a real headless
Chromium (Debian's chromium + chromium-driver through selenium), on answers
and judgments made by `fastchat judge` against the fake judge endpoint
(tests/py/judge_fake.py).

Checked in the browser: the page loads from file:// with no script error;
the chart has a bar per (category, model) that has graded answers, with the
per-category means of the judgments file; the single table's averages are
show-result's; the pairwise tables list every model; the browser shows the
chosen question's turns, both models' answers and the judge's explanations
(single tab: the score; pairwise tab: both games); an answer holding HTML
and script (</script>, <!--, <img onerror>) is shown as text and runs
nothing. A screenshot is kept in build/logs/judge/.
"""
import json
import os
import shutil
from pathlib import Path

import pytest

from judge_fake import FakeServer
from test_judge import ROOT, judge, read_jsonl

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = ROOT / "build" / "logs" / "judge"
HOSTILE = "</script><script>window.pwned=1</script><!-- <img src=x onerror=\"window.pwned=2\"> & done"


@pytest.fixture(scope="module")
def browser():
    binary = next((b for b in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(b)), None)
    if not binary:
        pytest.fail("chromium is not installed\nhint: scripts/setup.sh (Debian packages chromium chromium-driver)",
                    pytrace=False)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    o = webdriver.ChromeOptions()
    o.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,1600", "--no-first-run", "--allow-file-access-from-files"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=o)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def results(fastchat_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("judge_report")
    d = work / "data"
    d.mkdir()
    shutil.copytree(ROOT / "data" / "fc_bench", d / "fc_bench")
    shutil.copy(ROOT / "data" / "judge_prompts.jsonl", d / "judge_prompts.jsonl")
    fake = FakeServer()
    try:
        for m in ("ok:alpha", "ok:beta"):
            judge(fastchat_bin, work, "gen-api-answer", "--model", m, "--openai-api-base", fake.base,
                  "--question-end", 20, "--parallel", 4)
        # a model whose answers are hostile HTML
        rows = read_jsonl(d / "fc_bench/model_answer/ok:alpha.jsonl")
        with open(d / "fc_bench/model_answer/evil.jsonl", "w") as f:
            for r in rows:
                r = dict(r, model_id="evil", choices=[{"index": 0, "turns": [HOSTILE, HOSTILE + " 2"]}])
                f.write(json.dumps(r) + "\n")
        for mode in ("single", "pairwise-all"):
            judge(fastchat_bin, work, "gen-judgment", "--mode", mode, "--judge-model", "ok:judge",
                  "--openai-api-base", fake.base, "--first-n", 20, "--parallel", 4, "-q")
    finally:
        fake.close()
    out = work / "results.html"
    judge(fastchat_bin, work, "report", "--judge-model", "ok:judge", "-o", out)
    return work, out


def test_results_page_in_chromium(browser, results, fastchat_bin):
    work, page = results
    d = browser
    d.get(page.as_uri())
    WebDriverWait(d, 20).until(lambda _: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert d.execute_script("return window.pwned === undefined")
    # the single table: show-result's averages
    want = {r["model"]: r for r in json.loads(judge(fastchat_bin, work, "show-result", "--judge-model", "ok:judge",
                                                    "--json").stdout)["rows"]}
    rows = d.find_elements(By.CSS_SELECTOR, "#single table tr")[1:]
    got = {r.find_elements(By.TAG_NAME, "td")[0].text: r.find_elements(By.TAG_NAME, "td")[3].text for r in rows}
    assert set(got) == set(want) == {"ok:alpha", "ok:beta", "evil"}
    for m, r in want.items():
        assert got[m] == f"{r['average']:.2f}"
    # the chart: one bar per (category, model) with graded answers
    singles = read_jsonl(work / "data/fc_bench/model_judgment/ok:judge_single.jsonl")
    qcat = {q["question_id"]: q["category"] for q in read_jsonl(work / "data/fc_bench/question.jsonl")}
    groups = {(qcat[r["question_id"]], r["model"]) for r in singles if r["score"] != -1}
    bars = d.find_elements(By.CSS_SELECTOR, "#chart-svg rect.bar")
    assert len(bars) == len(groups)
    titles = {b.find_element(By.TAG_NAME, "title").get_attribute("textContent") for b in bars}
    for (cat, m) in groups:
        sc = [r["score"] for r in singles if r["score"] != -1 and r["model"] == m and qcat[r["question_id"]] == cat]
        assert f"{m} / {cat}: {sum(sc) / len(sc):.2f}" in titles
    # pairwise tables list every model
    assert {r.find_elements(By.TAG_NAME, "td")[0].text for r in
            d.find_elements(By.CSS_SELECTOR, "#pair table:first-of-type tr")[1:]} == {"ok:alpha", "ok:beta", "evil"}
    # the browser: math question, model evil, single tab
    Select(d.find_element(By.ID, "cat")).select_by_value("math")
    Select(d.find_element(By.ID, "q")).select_by_value("16")
    Select(d.find_element(By.ID, "ma")).select_by_value("evil")
    text = d.find_element(By.ID, "browser").text
    assert "Solve for x: 3x + 7 = 25." in text and "Reference answer" in text
    answers = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#browser .answer")]
    assert answers == [HOSTILE, HOSTILE + " 2"]            # shown as text, not markup
    assert not d.find_elements(By.CSS_SELECTOR, "#browser img")
    judgments = [r for r in singles if r["question_id"] == 16 and r["model"] == "evil"]
    shown = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#browser .judgment")]
    assert shown == [r["judgment"] for r in sorted(judgments, key=lambda r: r["turn"])]
    # pairwise tab: alpha vs beta, both games of each turn
    d.find_element(By.ID, "tab-pair").click()
    Select(d.find_element(By.ID, "ma")).select_by_value("ok:alpha")
    Select(d.find_element(By.ID, "mb")).select_by_value("ok:beta")
    assert len(d.find_elements(By.CSS_SELECTOR, "#browser .answer")) == 4
    assert len(d.find_elements(By.CSS_SELECTOR, "#browser .judgment")) == 4
    assert "Game 2: A = " in d.find_element(By.ID, "browser").text
    assert d.execute_script("return window.pwned === undefined")
    d.save_screenshot(str(SHOTS / "results.png"))
    d.set_window_size(1280, 800)
    d.execute_script("window.scrollTo(0, 0)")
    d.save_screenshot(str(SHOTS / "results-top.png"))


def test_results_page_served_by_web(browser, results, fastchat_bin, tmp_path):
    """`fastchat web --judge-data-dir`: the same page at /results, read afresh
    from the judge files on every load, linked from the web UI's tabs."""
    import requests
    from test_controller import Proc, free_port, wait_until
    work, page = results
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    p = Proc([fastchat_bin, "web", "--host", "127.0.0.1", "--port", port, "--db", tmp_path / "w.db",
              "--controller-address", "http://127.0.0.1:9", "--judge-data-dir", work / "data",
              "--judge-model", "ok:judge"], tmp_path / "web.log")
    try:
        r = wait_until(lambda: requests.get(url + "/results", timeout=10), 30, "fastchat web", [p])
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert r.content == page.read_bytes()      # the page `judge report` writes, byte for byte
        d = browser
        d.get(url + "/results")
        WebDriverWait(d, 20).until(lambda _: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert not [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
        n_rows = len(d.find_elements(By.CSS_SELECTOR, "#single table tr"))
        assert n_rows == 4                           # header + three models
        # a judgment of a new model appears on the next load, without a restart
        single = work / "data/fc_bench/model_judgment/ok:judge_single.jsonl"
        saved = single.read_bytes()
        row = json.loads(saved.splitlines()[0])
        try:
            with open(single, "a") as f:
                f.write(json.dumps(dict(row, model="late-model", score=7)) + "\n")
            d.get(url + "/results")
            WebDriverWait(d, 20).until(lambda _: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
            names = [r.find_elements(By.TAG_NAME, "td")[0].text for r in d.find_elements(By.CSS_SELECTOR, "#single table tr")[1:]]
            assert "late-model" in names and len(names) == 4
        finally:
            single.write_bytes(saved)
        # the web UI links to it
        d.get(url + "/")
        WebDriverWait(d, 20).until(lambda _: d.find_element(By.ID, "link-results").is_displayed())
        assert d.find_element(By.ID, "link-results").get_attribute("href") == url + "/results"
        d.save_screenshot(str(SHOTS / "web-with-results-link.png"))
    finally:
        p.stop()
    # without the flag: a 404 that says how to turn it on, and no link
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    p = Proc([fastchat_bin, "web", "--host", "127.0.0.1", "--port", port, "--db", tmp_path / "w2.db",
              "--controller-address", "http://127.0.0.1:9"], tmp_path / "web2.log")
    try:
        # (a 404 Response is falsy: wrapped in a list for wait_until)
        r = wait_until(lambda: [requests.get(url + "/results", timeout=10)], 30, "fastchat web", [p])[0]
        assert r.status_code == 404 and "--judge-data-dir" in r.text
        assert requests.get(url + "/web/api/config", timeout=10).json()["mt_bench_results"] is False
    finally:
        p.stop()
    # a folder that is not there: one clear line, exit status 1
    import subprocess
    r = subprocess.run([str(fastchat_bin), "web", "--port", "0", "--db", str(tmp_path / "w3.db"),
                        "--judge-data-dir", str(tmp_path / "nope")], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "--judge-data-dir" in r.stderr and "not a folder" in r.stderr, r.stderr
