"""conftest.py: helpers shared by the end-to-end tests in tests/py.

- where things are: the fastchat binary ($FASTCHAT_BIN, default
  build/fastchat), the default model ($FASTCHAT_MODEL, default the file
  scripts/fetch_model.sh caches), the golden data (tests/data);
- running the binary: run_fastchat(), fastchat_logits(), fastchat_generate();
- waiting bounds: time_factor() (10 for a sanitized build, or
  $FASTCHAT_TIME_FACTOR) scales client timeouts in the slow tests, and
  every subprocess.run timeout when the binary is sanitized;
- figures: the `figures` fixture collects lines ("tiny/llama_f32 exact max
  |d| 3.1e-06") that are printed in one block at the end of the run, with or
  without -s, so the measured numbers reach the log.

A missing binary or model makes the tests that need it fail with a hint
(not skip): `make test` builds and fetches both before pytest runs.
"""
import functools
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_FIGURES = []

# The servers write FastChat's log files into $LOGDIR (default: the current
# directory); the tests' servers write theirs into one temporary directory.
if "LOGDIR" not in os.environ:
    import tempfile
    os.environ["LOGDIR"] = tempfile.mkdtemp(prefix="fastchat-test-logs-")


def bin_path():
    b = Path(os.environ.get("FASTCHAT_BIN") or ROOT / "build" / "fastchat")
    return b if b.is_absolute() else Path.cwd() / b


def default_model_path():
    env = os.environ.get("FASTCHAT_MODEL")
    if env:
        return Path(env)
    cache = os.environ.get("FASTCHAT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fastchat")
    return Path(cache) / "models" / MODEL_NAME


@functools.lru_cache(maxsize=None)
def sanitized(binary=None):
    """True when the fastchat binary (default: bin_path()) is a sanitized
    build (make DEBUG=1: ASan + UBSan, about 10 times slower)."""
    try:
        with open(binary or bin_path(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def time_factor():
    """What a test multiplies its waiting bounds by (client timeouts, joins,
    not the speed it asserts): $FASTCHAT_TIME_FACTOR when set, else 10 for a
    sanitized build (on a loaded machine it runs at a fraction of a core),
    else 1."""
    env = os.environ.get("FASTCHAT_TIME_FACTOR")
    if env:
        return float(env)
    return 10.0 if sanitized() else 1.0


# Under a sanitized build every subprocess.run timeout is a waiting bound
# too: scaled by time_factor() (a model run under ASan at a fraction of a
# core takes 10-20 times as long; a fixed 25-minute bound cut off
# test_grammar_generate). A hung child still fails, only later.
_subprocess_run = subprocess.run


def _run_scaled(*args, **kwargs):
    if kwargs.get("timeout") is not None:
        kwargs["timeout"] = kwargs["timeout"] * time_factor()
    return _subprocess_run(*args, **kwargs)


if sanitized():
    subprocess.run = _run_scaled


@pytest.fixture(scope="session")
def fastchat_bin():
    b = bin_path()
    if not (b.is_file() and os.access(b, os.X_OK)):
        pytest.fail(f"{b}: no fastchat binary\nhint: run `make` (or set FASTCHAT_BIN)", pytrace=False)
    return b


@pytest.fixture(scope="session")
def model_path():
    m = default_model_path()
    if not m.is_file():
        pytest.fail(f"{m}: default model missing\nhint: scripts/fetch_model.sh (or set FASTCHAT_MODEL)",
                    pytrace=False)
    return m


@pytest.fixture(scope="session")
def figures():
    """Append a line of measured figures; all are printed at the end."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("measured figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


# ---- running the binary ----

def run_fastchat(binary, args, timeout=900, check=True):
    """Runs `binary args...`; on a non-zero exit (check=True) fails the test
    with the command line and the tail of stderr."""
    cmd = [str(binary)] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout}s: {short_cmd(cmd)}", pytrace=False)
    except OSError as e:  # e.g. the binary is being rebuilt right now
        pytest.fail(f"cannot run {cmd[0]}: {e}", pytrace=False)
    if check and p.returncode != 0:
        pytest.fail(f"exit {p.returncode}: {short_cmd(cmd)}\n{p.stderr[-4000:]}", pytrace=False)
    return p


def short_cmd(cmd):
    s = " ".join(cmd)
    return s if len(s) < 300 else s[:300] + " ..."


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


def fastchat_logits(binary, model, ids, out_dir, exact, threads=None, timeout=900, act8=False):
    """`fastchat logits`: returns the (T, V) float32 logits of every prompt position
    (act8: fast mode with 8-bit activations everywhere, `--act8`)."""
    out = Path(out_dir) / f"logits-{os.getpid()}-{len(ids)}-{int(exact)}.f32"
    args = ["logits", "--model-path", model, "--prompt-ids", ids_arg(ids), "--out", out]
    if exact:
        args.append("--exact")
    if act8:
        args.append("--act8")
    if threads is not None:
        args += ["--threads", threads]
    run_fastchat(binary, args, timeout=timeout)
    a = np.fromfile(out, dtype="<f4")
    out.unlink()
    T = len(ids)
    assert a.size % T == 0 and a.size > 0, f"logits file holds {a.size} floats, not a multiple of T={T}"
    return a.reshape(T, a.size // T)


def fastchat_generate(binary, model, ids, n, exact, ignore_eos=True, timeout=900):
    """Greedy `fastchat generate --print-ids`: the new ids (list of int)."""
    args = ["generate", "--model-path", model, "--prompt-ids", ids_arg(ids),
            "--max-new-tokens", n, "--temperature", "0", "--print-ids"]
    if exact:
        args.append("--exact")
    if ignore_eos:
        args.append("--ignore-eos")
    p = run_fastchat(binary, args, timeout=timeout)
    lines = p.stdout.strip().splitlines()
    assert lines, f"generate printed nothing; stderr:\n{p.stderr[-2000:]}"
    ids_out = json.loads(lines[-1])
    assert isinstance(ids_out, list) and all(isinstance(x, int) for x in ids_out), lines[-1]
    return ids_out


def first_difference(a, b):
    """Index of the first position where the sequences differ, or None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
