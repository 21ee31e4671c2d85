"""test_hub.py: Hub repo ids and `fastchat download`, against huggingface_hub.

The Hub is tests/py/hub_fake.py: a real HTTP server on 127.0.0.1 (and a second
one as the CDN the LFS files redirect to) that huggingface_hub's own
snapshot_download downloads from, so the layout we are compared with is the
one huggingface_hub writes, and our download code runs unchanged (only
HF_ENDPOINT differs).

- A repo id resolves from a cache laid out by huggingface_hub.snapshot_download
  (HF_HUB_CACHE, HF_HOME, refs/<tag>, @commit, a GGUF repo with --gguf-file),
  loading the same weights as the local folder (logits byte-identical).
- `fastchat download` fills the same layout huggingface_hub fills (same paths,
  symlinks, blobs, refs, trees/<commit>.json), and huggingface_hub reads it
  offline (snapshot_download(local_files_only=True), try_to_load_from_cache,
  scan_cache_dir); transformers too when it is installed (it is not in the
  test venv: its pydantic 2 pin conflicts with fschat's pydantic 1).
- A connection dropped mid-file is continued with a Range request; a partial
  file from an earlier run is continued; a corrupted file fails the SHA-256
  (or git SHA-1) check, is removed, and the command exits non-zero.
- Errors are one line: repo not found, 401 without a token, a refused token,
  revision not found, file not in repo, no file matching --include, disk full.
- On a terminal the progress bar shows the rate and an ETA.
"""
import hashlib
import json
import os
import pty
import re
import select
import subprocess
from pathlib import Path

import pytest

from conftest import DATA
from hub_fake import FakeHub, Repo

huggingface_hub = pytest.importorskip("huggingface_hub")

REPO = "tiny-org/tiny-llama"
GGUF_REPO = "tiny-org/tiny-gguf"
PRIVATE = "tiny-org/private-llama"
C_OLD = "0123456789abcdef0123456789abcdef01234567"
C_MAIN = "89abcdef0123456789abcdef0123456789abcdef"
C_GGUF = "fedcba9876543210fedcba9876543210fedcba98"
TOKEN = "hf_good_token"


def read(p):
    return Path(p).read_bytes()


def tiny_repo_files(name):
    d = DATA / "tiny" / name
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.gguf filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"---\nlicense: apache-2.0\n---\n# tiny test model (%s)\n" % name.encode(),
        "config.json": read(d / "config.json"),
        "model.safetensors": read(d / "model.safetensors"),
        "extra/notes with space.txt": b"a file in a folder, with spaces in its name\n",
    }


@pytest.fixture(scope="module")
def gguf_files(fastchat_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("gguf")
    out = {}
    for t in ("q8_0", "f16"):
        p = d / ("tiny-%s.gguf" % t)
        subprocess.run([str(fastchat_bin), "quantize", "--model-path", str(DATA / "tiny" / "llama_f32"),
                        "--type", t, "--out", str(p)], check=True, capture_output=True)
        out[p.name] = p.read_bytes()
    return out


@pytest.fixture
def hub(gguf_files):
    h = FakeHub([
        Repo(REPO, {C_OLD: tiny_repo_files("llama_f32_tied_gqa2"), C_MAIN: tiny_repo_files("llama_f32")},
             {"main": C_MAIN, "v1.0": C_OLD}),
        Repo(GGUF_REPO, {C_GGUF: dict(gguf_files, **{"README.md": b"# GGUF files\n"})}, {"main": C_GGUF}),
        Repo(PRIVATE, {C_MAIN: tiny_repo_files("llama_f32")}, {"main": C_MAIN}, private=True),
    ], tokens=(TOKEN,), page_size=3)  # 3 entries a page: the listing takes several pages
    yield h
    h.close()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_")) and k not in ("XDG_CACHE_HOME",)}
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def fc(fastchat_bin, args, env, timeout=120):
    return subprocess.run([str(fastchat_bin)] + [str(a) for a in args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def error_lines(r):
    return [l for l in r.stderr.splitlines() if l.strip()]


def logits(fastchat_bin, model, env, out, extra=()):
    r = fc(fastchat_bin, ["logits", "--model-path", model, *extra, "--prompt-ids", "1,5,9,200,3",
                          "--exact", "--out", out], env)
    assert r.returncode == 0, r.stderr
    return Path(out).read_bytes()


def hf_snapshot(hub, repo, cache, **kw):
    """The cache as huggingface_hub lays it out: its own snapshot_download."""
    return huggingface_hub.snapshot_download(repo, cache_dir=str(cache), endpoint=hub.url, **kw)


def tree_of(root):
    """{relative path: symlink target, or the sha256 of a file's bytes, or 'dir'}"""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            out[rel] = "dir"
        elif p.suffix == ".json" and p.parent.name == "trees":
            out[rel] = json.loads(p.read_text())
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ---- resolution from a cache huggingface_hub made ----

def test_repo_id_resolves_from_the_huggingface_hub_cache(fastchat_bin, hub, tmp_path):
    home = tmp_path / "hf_home"
    cache = home / "hub"
    main_dir = hf_snapshot(hub, REPO, cache)
    old_dir = hf_snapshot(hub, REPO, cache, revision="v1.0")
    hf_snapshot(hub, GGUF_REPO, cache)
    assert main_dir.endswith("snapshots/" + C_MAIN) and old_dir.endswith("snapshots/" + C_OLD)
    assert (cache / "models--tiny-org--tiny-llama" / "refs" / "v1.0").read_text() == C_OLD

    want_main = logits(fastchat_bin, DATA / "tiny" / "llama_f32", clean_env(), tmp_path / "local.bin")
    want_old = logits(fastchat_bin, DATA / "tiny" / "llama_f32_tied_gqa2", clean_env(), tmp_path / "old.bin")
    assert want_main != want_old

    xdg = tmp_path / "xdg"
    xdg.mkdir()
    os.symlink(home, xdg / "huggingface")
    for env in (clean_env(HF_HUB_CACHE=cache), clean_env(HF_HOME=home), clean_env(XDG_CACHE_HOME=xdg),
                clean_env(HUGGINGFACE_HUB_CACHE=cache), clean_env(HF_HUB_CACHE=cache, HF_HOME=tmp_path / "nowhere")):
        assert logits(fastchat_bin, REPO, env, tmp_path / "a.bin") == want_main
        assert logits(fastchat_bin, REPO + "@main", env, tmp_path / "b.bin") == want_main
        assert logits(fastchat_bin, REPO + "@v1.0", env, tmp_path / "c.bin") == want_old
        assert logits(fastchat_bin, REPO + "@" + C_OLD, env, tmp_path / "d.bin") == want_old
    # ~/.cache/huggingface/hub when nothing is set
    xdg_home = tmp_path / "home"
    (xdg_home / ".cache").mkdir(parents=True)
    os.symlink(home, xdg_home / ".cache" / "huggingface")
    assert logits(fastchat_bin, REPO, clean_env(HOME=xdg_home), tmp_path / "e.bin") == want_main

    env = clean_env(HF_HUB_CACHE=cache)
    r = fc(fastchat_bin, ["inspect", "--model-path", REPO], env)
    assert r.returncode == 0, r.stderr
    assert "model:          " + REPO in r.stdout and "format:         huggingface" in r.stdout

    # a GGUF repo: one file is picked with --gguf-file (either spelling, or =)
    r = fc(fastchat_bin, ["inspect", "--model-path", GGUF_REPO], env)
    assert r.returncode == 1
    assert "2 GGUF files" in r.stderr and "tiny-q8_0.gguf" in r.stderr and "--gguf-file" in r.stderr
    for args in (["--gguf-file", "tiny-q8_0.gguf"], ["--gguf_file=tiny-q8_0.gguf"]):
        r = fc(fastchat_bin, ["inspect", "--model-path", GGUF_REPO] + args, env)
        assert r.returncode == 0, r.stderr
        assert "format:         gguf" in r.stdout and "q8_0" in r.stdout
    local_gguf = tmp_path / "tiny-f16.gguf"
    local_gguf.write_bytes(hub.repos[GGUF_REPO].commits[C_GGUF]["tiny-f16.gguf"])
    assert logits(fastchat_bin, GGUF_REPO, env, tmp_path / "g1.bin", ["--gguf-file", "tiny-f16.gguf"]) == \
        logits(fastchat_bin, local_gguf, env, tmp_path / "g2.bin")
    r = fc(fastchat_bin, ["inspect", "--model-path", GGUF_REPO, "--gguf-file", "nope.gguf"], env)
    assert r.returncode == 1 and "no file 'nope.gguf'" in r.stderr and "tiny-f16.gguf" in r.stderr

    # what is not there: one error line and a hint that says how to get it
    for cmd in (["inspect"], ["tokenize", "--text", "hi"], ["serve"]):
        r = fc(fastchat_bin, cmd + ["--model-path", "tiny-org/absent"], env)
        assert r.returncode == 1
        assert ("error: tiny-org/absent: not a local path, and the Hugging Face cache (%s) has no "
                "models--tiny-org--absent (fetch it with: fastchat download tiny-org/absent)" % cache
                in error_lines(r)), r.stderr
    r = fc(fastchat_bin, ["inspect", "--model-path", REPO + "@v9"], env)
    assert r.returncode == 1 and "revision 'v9' is not in the Hugging Face cache" in r.stderr
    assert "fetch it with: fastchat download tiny-org/tiny-llama --revision v9)" in r.stderr
    # a local folder of the same name wins, as in transformers
    local = tmp_path / "cwd" / "tiny-org" / "tiny-llama"
    local.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        (local / f).write_bytes((DATA / "tiny" / "llama_f32_tied_gqa2" / f).read_bytes())
    r = subprocess.run([str(fastchat_bin), "logits", "--model-path", REPO, "--prompt-ids", "1,5,9,200,3", "--exact",
                        "--out", str(tmp_path / "w.bin")], env=env, cwd=tmp_path / "cwd", capture_output=True)
    assert r.returncode == 0 and (tmp_path / "w.bin").read_bytes() == want_old


# ---- download ----

def test_download_fills_the_layout_huggingface_hub_reads(fastchat_bin, hub, tmp_path, figures):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    env = clean_env(HF_HUB_CACHE=ours, HF_ENDPOINT=hub.url)
    r = fc(fastchat_bin, ["download", REPO], env)
    assert r.returncode == 0, r.stderr
    snap = r.stdout.strip()
    assert snap == str(ours / "models--tiny-org--tiny-llama" / "snapshots" / C_MAIN)
    hf_snapshot(hub, REPO, theirs)
    assert tree_of(ours) == tree_of(theirs)  # paths, symlink targets, blob bytes, refs, trees/*.json, CACHEDIR.TAG
    for f in ("extra/notes with space.txt", "model.safetensors"):
        assert os.readlink(Path(snap) / f).startswith("../")  # relative, as huggingface_hub links them
    figures("hub: fastchat download and huggingface_hub.snapshot_download wrote the same %d paths"
                   % len(tree_of(ours)))

    # huggingface_hub reads our cache offline (hf_hub_download(local_files_only=True) is what
    # transformers' cached_file calls under HF_HUB_OFFLINE=1)
    assert huggingface_hub.snapshot_download(REPO, cache_dir=str(ours), local_files_only=True) == snap
    cfg = huggingface_hub.hf_hub_download(REPO, "config.json", cache_dir=str(ours), local_files_only=True)
    assert json.loads(Path(cfg).read_text())["hidden_size"] == 64
    # ... and its own checksum verification passes on it, against the Hub's listing
    v = huggingface_hub.HfApi(endpoint=hub.url).verify_repo_checksums(REPO, cache_dir=str(ours))
    assert not v.mismatches and not v.missing_paths and not v.extra_paths and v.checked_count == 5, v
    p = huggingface_hub.try_to_load_from_cache(REPO, "model.safetensors", cache_dir=str(ours))
    assert Path(p).read_bytes() == (DATA / "tiny" / "llama_f32" / "model.safetensors").read_bytes()
    info = huggingface_hub.scan_cache_dir(str(ours))
    assert not info.warnings
    (repo_info,) = info.repos
    assert repo_info.repo_id == REPO and repo_info.nb_files == 5 and set(repo_info.refs) == {"main"}
    (rev,) = repo_info.revisions
    assert rev.commit_hash == C_MAIN and {f.file_name for f in rev.files} >= {"config.json", "model.safetensors"}
    try:
        import transformers  # not in the test venv (see the module docstring)
    except ImportError:
        transformers = None
    if transformers is not None:
        cfg = transformers.AutoConfig.from_pretrained(REPO, cache_dir=str(ours), local_files_only=True)
        assert cfg.hidden_size == 64 and cfg.num_hidden_layers == 2

    # our loader reads it: the same logits as the local folder
    want = logits(fastchat_bin, DATA / "tiny" / "llama_f32", clean_env(), tmp_path / "w.bin")
    assert logits(fastchat_bin, REPO, clean_env(HF_HUB_CACHE=ours), tmp_path / "g.bin") == want
    try:
        import torch
    except ImportError:
        torch = None
    if transformers is not None and torch is not None:  # the model itself, by id, offline
        import numpy as np
        m = transformers.AutoModelForCausalLM.from_pretrained(REPO, cache_dir=str(ours), local_files_only=True,
                                                               dtype=torch.float32)
        with torch.no_grad():
            ref = m(torch.tensor([[1, 5, 9, 200, 3]])).logits[0].numpy()
        ours_logits = np.frombuffer(want, dtype=np.float32).reshape(ref.shape)
        assert np.abs(ours_logits - ref).max() < 1e-4

    # a second run fetches nothing
    n_get = len(hub.requests(method="GET", contains="/resolve/"))
    r = fc(fastchat_bin, ["download", REPO], env)
    assert r.returncode == 0 and r.stdout.strip() == snap
    assert len(hub.requests(method="GET", contains="/resolve/")) == n_get
    assert r.stderr.count("already there") == 5

    # --revision (a tag: refs/v1.0) and --include
    r = fc(fastchat_bin, ["download", REPO, "--revision", "v1.0", "--include", "*.json"], env)
    assert r.returncode == 0, r.stderr
    old = Path(r.stdout.strip())
    assert old.name == C_OLD and sorted(p.name for p in old.iterdir()) == ["config.json"]
    assert (ours / "models--tiny-org--tiny-llama" / "refs" / "v1.0").read_text() == C_OLD
    # named files; the revision as --model-path spells it
    r = fc(fastchat_bin, ["download", REPO + "@" + C_OLD, "README.md", "extra/notes with space.txt"], env)
    assert r.returncode == 0, r.stderr
    assert (old / "extra" / "notes with space.txt").read_bytes().startswith(b"a file in a folder")
    assert (old / "README.md").read_bytes().endswith(b"(llama_f32_tied_gqa2)\n")
    # the GGUF repo, then used by id
    r = fc(fastchat_bin, ["download", GGUF_REPO, "--include", "*q8_0*"], env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in Path(r.stdout.strip()).iterdir()) == ["tiny-q8_0.gguf"]
    r = fc(fastchat_bin, ["inspect", "--model-path", GGUF_REPO], clean_env(HF_HUB_CACHE=ours))
    assert r.returncode == 0 and "q8_0" in r.stdout, r.stderr
    r = fc(fastchat_bin, ["download", GGUF_REPO, "--gguf-file", "tiny-f16.gguf"], env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in Path(r.stdout.strip()).iterdir()) == ["tiny-f16.gguf", "tiny-q8_0.gguf"]
    r = fc(fastchat_bin, ["inspect", "--model-path", GGUF_REPO, "--gguf-file", "tiny-f16.gguf"],
           clean_env(HF_HUB_CACHE=ours))
    assert r.returncode == 0 and "f16" in r.stdout, r.stderr


def test_download_continues_after_a_dropped_connection(fastchat_bin, hub, tmp_path):
    cache = tmp_path / "cache"
    env = clean_env(HF_HUB_CACHE=cache, HF_ENDPOINT=hub.url)
    st = hub.repos[REPO].commits[C_MAIN]["model.safetensors"]
    sha = hashlib.sha256(st).hexdigest()
    hub.drop["model.safetensors"] = 100_000   # an LFS file, from the CDN
    hub.drop["config.json"] = 300             # a regular file, from the Hub itself
    r = fc(fastchat_bin, ["download", REPO], env)
    assert r.returncode == 0, r.stderr
    assert "model.safetensors: Transferred a partial file, continuing from byte 100000" in r.stderr
    ranges = [h.get("Range") for _, _, _, h in hub.requests("cdn", "GET")]
    assert ranges == [None, "bytes=100000-"], ranges
    cfg_ranges = [h.get("Range") for _, _, _, h in hub.requests("api", "GET", "/resolve/%s/config.json" % C_MAIN)]
    assert cfg_ranges == [None, "bytes=300-"], cfg_ranges
    blobs = cache / "models--tiny-org--tiny-llama" / "blobs"
    assert (blobs / sha).read_bytes() == st
    assert not list(blobs.glob("*.incomplete"))

    # a part left by an earlier run (killed, or out of tries) is continued
    cache2 = tmp_path / "cache2"
    blobs2 = cache2 / "models--tiny-org--tiny-llama" / "blobs"
    blobs2.mkdir(parents=True)
    (blobs2 / (sha + ".incomplete")).write_bytes(st[:250_000])
    hub.log.clear()
    r = fc(fastchat_bin, ["download", REPO, "model.safetensors"], clean_env(HF_HUB_CACHE=cache2, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr
    assert [h.get("Range") for _, _, _, h in hub.requests("cdn", "GET")] == ["bytes=250000-"]
    assert (blobs2 / sha).read_bytes() == st and not list(blobs2.glob("*.incomplete"))

    # a server that ignores Range (200, the whole file): the part is started over
    cache4 = tmp_path / "cache4"
    blobs4 = cache4 / "models--tiny-org--tiny-llama" / "blobs"
    blobs4.mkdir(parents=True)
    (blobs4 / (sha + ".incomplete")).write_bytes(st[:1000])
    hub.ignore_range, hub.fail_api = True, 2  # and the Hub busy (503) for the first two calls
    hub.log.clear()
    r = fc(fastchat_bin, ["download", REPO, "model.safetensors"], clean_env(HF_HUB_CACHE=cache4, HF_ENDPOINT=hub.url))
    hub.ignore_range = False
    assert r.returncode == 0, r.stderr
    assert [h.get("Range") for _, _, _, h in hub.requests("cdn", "GET")] == ["bytes=1000-"]
    assert (blobs4 / sha).read_bytes() == st and not list(blobs4.glob("*.incomplete"))
    assert len(hub.requests("api", "GET", "/revision/main")) == 3  # 503, 503, 200

    # a connection that keeps dropping: the part is kept, the error says so, a rerun finishes
    cache3 = tmp_path / "cache3"
    env3 = clean_env(HF_HUB_CACHE=cache3, HF_ENDPOINT=hub.url)

    class Always(dict):  # drops every request for the file, 50 kB into it
        def __contains__(self, k):
            return k == "model.safetensors"

        def pop(self, k, *d):
            return 50_000

    saved, hub.drop = hub.drop, Always()
    r = fc(fastchat_bin, ["download", REPO, "model.safetensors"], env3, timeout=120)
    hub.drop = saved
    assert r.returncode == 1
    (line,) = [l for l in error_lines(r) if l.startswith("error:")]
    assert "after 5 tries" in line and "run the command again to continue" in line
    part = cache3 / "models--tiny-org--tiny-llama" / "blobs" / (sha + ".incomplete")
    assert part.stat().st_size == 5 * 50_000
    r = fc(fastchat_bin, ["download", REPO, "model.safetensors"], env3)
    assert r.returncode == 0 and not part.exists()


@pytest.mark.parametrize("path,algo", [("model.safetensors", "sha256"), ("config.json", "git sha1")])
def test_download_rejects_a_corrupted_file(fastchat_bin, hub, tmp_path, path, algo):
    cache = tmp_path / "cache"
    env = clean_env(HF_HUB_CACHE=cache, HF_ENDPOINT=hub.url)
    hub.corrupt.add(path)
    r = fc(fastchat_bin, ["download", REPO], env)
    assert r.returncode == 1
    (line,) = [l for l in error_lines(r) if l.startswith("error:")]
    assert line.startswith("error: %s: %s: checksum mismatch: expected %s " % (REPO, path, algo)), line
    assert line.endswith("; the file was removed")
    repo_dir = cache / "models--tiny-org--tiny-llama"
    assert not list((repo_dir / "blobs").glob("*.incomplete"))
    assert not (repo_dir / "snapshots" / C_MAIN / path).exists()
    data = hub.repos[REPO].commits[C_MAIN][path]
    e = hub.repos[REPO].entry(path, data)
    assert not (repo_dir / "blobs" / (e["lfs"]["oid"] if "lfs" in e else e["oid"])).exists()
    # the served bytes fixed: the same command completes
    hub.corrupt.clear()
    r = fc(fastchat_bin, ["download", REPO], env)
    assert r.returncode == 0, r.stderr
    assert (repo_dir / "snapshots" / C_MAIN / path).read_bytes() == data


def test_download_errors_are_one_line(fastchat_bin, hub, tmp_path):
    def one_error(args, **env):
        env = dict(dict(HF_HUB_CACHE=tmp_path / "c", HF_ENDPOINT=hub.url), **env)
        r = fc(fastchat_bin, ["download", *args], clean_env(**env))
        assert r.returncode == 1, r.stdout
        lines = [l for l in error_lines(r) if not l.startswith("[")]  # not the "[i/n] file" lines
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        return lines[0]

    assert one_error(["tiny-org/absent"]) == (
        "error: tiny-org/absent: 401 Unauthorized: the repo is private, gated or missing; "
        "set HF_TOKEN to a token that can read it")
    assert one_error(["tiny-org/absent"], HF_TOKEN=TOKEN) == (
        "error: tiny-org/absent: repo not found (404 from %s)" % hub.url)
    assert "set HF_TOKEN" in one_error([PRIVATE])
    assert one_error([PRIVATE], HF_TOKEN="hf_wrong") == (
        "error: %s: 401 Unauthorized: the Hub refused the token (HF_TOKEN) for this repo" % PRIVATE)
    assert one_error([REPO, "--revision", "nope"]) == "error: %s: revision 'nope' not found" % REPO
    assert one_error([REPO, "missing.bin"]) == (
        "error: %s: missing.bin: file not in the repo (revision main)" % REPO)
    assert one_error([REPO, "--include", "*.nothing"]) == "error: %s: no file matches --include *.nothing" % REPO
    assert "Couldn't connect to server" in one_error([REPO], HF_ENDPOINT="http://127.0.0.1:9")
    assert one_error([REPO], HF_HUB_OFFLINE="1") == (
        "error: %s: HF_HUB_OFFLINE is set, so nothing is downloaded (unset it to download)" % REPO)
    hub.fail_api = 10
    assert one_error([REPO]) == "error: %s: repo info: HTTP 503 from %s" % (REPO, hub.url)
    hub.fail_api = 0

    # the token opens the private repo; it goes to the Hub, never to the CDN
    hub.log.clear()
    r = fc(fastchat_bin, ["download", PRIVATE], clean_env(HF_HUB_CACHE=tmp_path / "p", HF_ENDPOINT=hub.url,
                                                          HF_TOKEN=TOKEN))
    assert r.returncode == 0, r.stderr
    assert all(h.get("Authorization") == "Bearer " + TOKEN for _, _, _, h in hub.requests("api"))
    cdn = hub.requests("cdn")
    assert cdn and all("Authorization" not in h for _, _, _, h in cdn)
    # ... also read from $HF_HOME/token, as huggingface_hub does
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text(TOKEN + "\n")
    r = fc(fastchat_bin, ["download", PRIVATE], clean_env(HF_HOME=home, HF_ENDPOINT=hub.url))
    assert r.returncode == 0, r.stderr

    # disk full: a 300 kB tmpfs for a 593 kB file (needs root for the mount)
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(full)],
                      capture_output=True).returncode != 0:
        pytest.skip("disk-full case: cannot mount a tmpfs here (not root)")
    try:
        line = one_error([REPO], HF_HUB_CACHE=full)
        assert line.startswith("error: %s: model.safetensors: disk full while writing " % REPO), line
        assert "No space left on device" in line and "run the command again" in line
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_progress_bar_on_a_terminal(fastchat_bin, hub, tmp_path):
    hub.rate = 1_000_000  # 0.6 s for the 593 kB file: the bar is drawn while it comes
    master, slave = pty.openpty()
    p = subprocess.Popen([str(fastchat_bin), "download", REPO],
                         env=clean_env(HF_HUB_CACHE=tmp_path / "c", HF_ENDPOINT=hub.url),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert p.wait(timeout=30) == 0
    text = out.decode().replace("\r\n", "\n")  # the terminal's newlines
    frames = [f.replace("\x1b[K", "").strip() for f in re.split("[\r\n]", text) if "model.safetensors" in f]
    assert frames, text
    assert re.fullmatch(r"\[5/5\] model.safetensors 100% \|#{20}\| 593.3 kB/593.3 kB [0-9.]+ [kM]B/s ETA 0:00",
                        frames[-1]), frames[-1]
    # while it comes: a part done, a rate near the server's 1 MB/s, a time left
    mid = [f for f in frames if re.search(r" ([1-9][0-9]?)% .* [0-9.]+ [kM]B/s ETA 0:0[0-9]$", f)]
    assert mid, frames
    assert text.endswith("\n") and "[1/5] .gitattributes 100%" in text


def test_worker_serves_a_repo_id_under_fastchats_name(fastchat_bin, model_path, tmp_path, figures):
    """The default model as a GGUF repo, fetched by `fastchat download`, then
    served by id. FastChat's worker names the model model_path.split("/")[-1]
    and picks the template from the id as typed (VicunaAdapter: "vicuna" in
    the name -> vicuna_v1.1); the cache path would give neither."""
    import socket
    import time

    import requests
    repo = "tiny-org/vicuna-smol-GGUF"
    gguf = model_path.read_bytes()
    h = FakeHub([Repo(repo, {C_GGUF: {"smol.Q4_1.gguf": gguf, "README.md": b"# a GGUF repo\n"}}, {"main": C_GGUF})])
    try:
        env = clean_env(HF_HUB_CACHE=tmp_path / "c", HF_ENDPOINT=h.url)
        t0 = time.time()
        r = fc(fastchat_bin, ["download", repo], env, timeout=300)
        dt = time.time() - t0
        assert r.returncode == 0, r.stderr
    finally:
        h.close()
    figures("hub: fastchat download of a %.1f MB GGUF repo from a local server (SHA-256 checked): %.2f s, %.0f MB/s"
            % (len(gguf) / 1e6, dt, len(gguf) / 1e6 / dt))
    assert (Path(r.stdout.strip()) / "smol.Q4_1.gguf").read_bytes() == gguf
    # the tokenizer-only commands take the id too
    a = fc(fastchat_bin, ["tokenize", "--model-path", repo, "--text", "Hello, world!"], env)
    b = fc(fastchat_bin, ["tokenize", "--model-path", model_path, "--text", "Hello, world!"], env)
    assert a.returncode == 0 and a.stdout == b.stdout and len(json.loads(a.stdout)) > 2, a.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "worker.log", "w")
    p = subprocess.Popen([str(fastchat_bin), "worker", "--model-path", repo, "--host", "127.0.0.1", "--port",
                          str(port), "--no-register"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = "http://127.0.0.1:%d" % port
        for _ in range(300):
            assert p.poll() is None, (tmp_path / "worker.log").read_text()
            try:
                status = requests.post(base + "/worker_get_status", timeout=2).json()
                break
            except requests.RequestException:
                time.sleep(0.2)
        assert status["model_names"] == ["vicuna-smol-GGUF"]
        conv = requests.post(base + "/worker_get_conv_template", json={}, timeout=10).json()["conv"]
        assert conv["name"] == "vicuna_v1.1" and conv["roles"] == ["USER", "ASSISTANT"]
        r = requests.post(base + "/worker_generate_stream", json={
            "prompt": "USER: Hi ASSISTANT:", "max_new_tokens": 4, "temperature": 0}, timeout=60)
        assert r.status_code == 200 and b'"error_code": 0' in r.content.replace(b'"error_code":0', b'"error_code": 0')
    finally:
        p.terminate()
        p.wait(timeout=30)
        log.close()
