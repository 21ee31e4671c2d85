"""hub_fake.py: a small Hugging Face Hub, served over real HTTP on 127.0.0.1, for
test_hub.py. Only the host differs from the real Hub: the endpoints, headers and
JSON are the ones huggingface_hub (2.x) calls and reads (hf_api.py repo_info /
list_repo_tree, file_download.py get_hf_file_metadata / http_get,
utils/_http.py hf_raise_for_status), so `huggingface_hub.snapshot_download`
itself downloads from it, and our `fastchat download` is held to the same
server.

  GET  /api/models/{repo}/revision/{rev}      {"id", "sha", "siblings"}
  GET  /api/models/{repo}/tree/{rev}?recursive=true
       [{"type": "file", "oid", "size", "path", "lfs": {"oid", "size", "pointerSize"}},
        {"type": "directory", ...}], `page_size` entries a page with a
        Link: <...&cursor=N>; rel="next" header
  HEAD/GET /{repo}/resolve/{rev}/{path}       regular files: the bytes, ETag = git blob
       sha1, X-Repo-Commit; LFS files: 302 to the "CDN" (a second server on
       another port, so another origin) with X-Linked-Etag = sha256 and
       X-Linked-Size
  GET  (CDN) /lfs/{sha256}                     the bytes, Range requests answered 206

Errors as the Hub gives them: 401 + X-Error-Code: RepoNotFound without a token
for a missing or private repo, 401 for a token it does not know, 404 +
RepoNotFound / RevisionNotFound / EntryNotFound. Faults on request: `drop`
(path -> byte count: the first GET of that file sends the full length in its
headers, then that many bytes, then closes the connection) and `corrupt` (a
set of paths whose served bytes have one byte flipped while the listing keeps
the true size and sha256), `rate` (file bodies sent at that many bytes a
second), `ignore_range` (Range requests answered 200 with the whole file) and
`fail_api` (that many requests answered 503 Service Unavailable). Every request is recorded in `log`.
"""
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit, parse_qs

LFS_SUFFIXES = (".safetensors", ".gguf", ".bin")


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data):
    return ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
            % (hashlib.sha256(data).hexdigest(), len(data))).encode()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients that hang up (a download stopped by a full disk) are expected here


class Repo:
    """commits: {commit_sha: {path: bytes}}; refs: {branch or tag: commit_sha}."""

    def __init__(self, repo_id, commits, refs, private=False):
        self.repo_id, self.commits, self.refs, self.private = repo_id, commits, refs, private

    def commit_of(self, rev):
        if rev in self.refs:
            return self.refs[rev]
        return rev if rev in self.commits else None

    @staticmethod
    def is_lfs(path):
        return path.endswith(LFS_SUFFIXES)

    def entry(self, path, data):
        e = {"type": "file", "size": len(data), "path": path}
        if self.is_lfs(path):
            ptr = lfs_pointer(data)
            e["oid"] = git_blob_sha1(ptr)
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(ptr)}
        else:
            e["oid"] = git_blob_sha1(data)
        return e

    def tree(self, commit):
        files = self.commits[commit]
        out, dirs = [], set()
        for path in sorted(files):
            parts = path.split("/")
            for i in range(1, len(parts)):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            out.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d})
        out += [self.entry(p, files[p]) for p in sorted(files)]
        return out


class FakeHub:
    def __init__(self, repos, tokens=("hf_good_token",), page_size=1000):
        self.repos = {r.repo_id: r for r in repos}
        self.tokens = set(tokens)
        self.page_size = page_size
        self.drop = {}        # path -> bytes to send before the connection is cut (once)
        self.corrupt = set()  # paths served with one byte flipped
        self.rate = None      # bytes a second for file bodies (None: as fast as it goes)
        self.ignore_range = False  # answer Range requests with the whole file (200), as some servers do
        self.fail_api = 0     # the next N API calls answer 503
        self.log = []         # (server, method, path, headers)
        self.lock = threading.Lock()
        self.api = self._server(self._api_handler())
        self.cdn = self._server(self._cdn_handler())
        self.url = "http://127.0.0.1:%d" % self.api.server_address[1]
        self.cdn_url = "http://127.0.0.1:%d" % self.cdn.server_address[1]
        self.blobs = {}
        for r in self.repos.values():
            for files in r.commits.values():
                for data in files.values():
                    self.blobs[hashlib.sha256(data).hexdigest()] = data

    def _server(self, handler):
        s = _Server(("127.0.0.1", 0), handler)
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
        return s

    def close(self):
        for s in (self.api, self.cdn):
            s.shutdown()
            s.server_close()

    def requests(self, server=None, method=None, contains=""):
        with self.lock:
            return [e for e in self.log if (server is None or e[0] == server)
                    and (method is None or e[1] == method) and contains in e[2]]

    # ---- content with faults ----

    def _serve_bytes(self, h, data, path, extra_headers, head):
        if path in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:] if data else data
        start, status = 0, 200
        rng = None if self.ignore_range else h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first = rng[6:].split("-")[0]
            start = int(first) if first else 0
            if start >= len(data) and len(data) > 0:
                h.send_response(416)
                h.send_header("Content-Range", "bytes */%d" % len(data))
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status = 206
        body = data[start:]
        h.send_response(status)
        for k, v in extra_headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        h.end_headers()
        if head:
            return
        cut = None
        with self.lock:
            if path in self.drop:
                cut = self.drop.pop(path)
        if cut is not None and cut < len(body):
            h.wfile.write(body[:cut])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if not self.rate:
            h.wfile.write(body)
            return
        for i in range(0, len(body), 16384):  # throttled: rate bytes a second
            h.wfile.write(body[i:i + 16384])
            h.wfile.flush()
            time.sleep(16384 / self.rate)

    # ---- the Hub ----

    def _api_handler(hub):
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _json(self, status, obj, headers=None):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status, code, msg):
                self._json(status, {"error": msg}, {"X-Error-Code": code} if code else {})

            def _repo(self, repo_id):
                """The repo, or None after answering as the Hub does."""
                auth = self.headers.get("Authorization", "")
                token = auth[7:] if auth.startswith("Bearer ") else None
                if token is not None and token not in hub.tokens:
                    self._error(401, None, "Invalid credentials in Authorization header")
                    return None
                r = hub.repos.get(repo_id)
                if r is None or (r.private and token is None):
                    if token is None:
                        self._error(401, "RepoNotFound", "Repository Not Found for url")
                    else:
                        self._error(404, "RepoNotFound", "Repository Not Found for url")
                    return None
                return r

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                with hub.lock:
                    hub.log.append(("api", self.command, self.path, dict(self.headers)))
                with hub.lock:
                    busy = hub.fail_api > 0
                    hub.fail_api -= busy
                if busy:
                    return self._error(503, None, "Service Unavailable")
                u = urlsplit(self.path)
                parts = [unquote(p) for p in u.path.split("/")[1:]]
                q = parse_qs(u.query)
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                    repo_id = parts[2] + "/" + parts[3]
                    r = self._repo(repo_id)
                    if r is None:
                        return
                    rev = parts[5]
                    commit = r.commit_of(rev)
                    if commit is None:
                        return self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
                    if parts[4] == "revision":
                        return self._json(200, {"id": repo_id, "modelId": repo_id, "sha": commit,
                                                "private": r.private,
                                                "siblings": [{"rfilename": p} for p in sorted(r.commits[commit])]})
                    entries = r.tree(commit)
                    if q.get("recursive", ["false"])[0].lower() not in ("true", "1"):
                        entries = [e for e in entries if "/" not in e["path"]]
                    cursor = int(q.get("cursor", ["0"])[0])
                    page = entries[cursor:cursor + hub.page_size]
                    headers = {}
                    if cursor + hub.page_size < len(entries):
                        nxt = "%s/api/models/%s/tree/%s?recursive=true&expand=false&cursor=%d" % (
                            hub.url, repo_id, quote(rev, safe=""), cursor + hub.page_size)
                        headers["Link"] = '<%s>; rel="next"' % nxt
                    return self._json(200, page, headers)
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo_id = parts[0] + "/" + parts[1]
                    r = self._repo(repo_id)
                    if r is None:
                        return
                    commit = r.commit_of(parts[3])
                    if commit is None:
                        return self._error(404, "RevisionNotFound", "Invalid rev id")
                    path = "/".join(parts[4:])
                    files = r.commits[commit]
                    if path not in files:
                        return self._error(404, "EntryNotFound", "Entry not found")
                    data = files[path]
                    e = r.entry(path, data)
                    if r.is_lfs(path):
                        sha = e["lfs"]["oid"]
                        self.send_response(302)
                        self.send_header("Location", "%s/lfs/%s?path=%s" % (hub.cdn_url, sha, quote(path)))
                        self.send_header("X-Repo-Commit", commit)
                        self.send_header("X-Linked-Etag", '"%s"' % sha)
                        self.send_header("X-Linked-Size", str(len(data)))
                        self.send_header("ETag", '"%s"' % e["oid"])
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    return hub._serve_bytes(self, data, path, {"ETag": '"%s"' % e["oid"], "X-Repo-Commit": commit},
                                            self.command == "HEAD")
                self._error(404, None, "no such route")

        return H

    def _cdn_handler(hub):
        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                with hub.lock:
                    hub.log.append(("cdn", self.command, self.path, dict(self.headers)))
                u = urlsplit(self.path)
                sha = u.path.rsplit("/", 1)[-1]
                path = unquote(parse_qs(u.query).get("path", [""])[0])
                data = hub.blobs.get(sha)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                hub._serve_bytes(self, data, path, {"ETag": '"%s"' % sha}, self.command == "HEAD")

        return H
