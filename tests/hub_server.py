"""A local HTTP server that answers the Hugging Face hub requests huggingface_hub makes, for `HF_ENDPOINT`.

No hub is reachable from test machines, so the real `huggingface_hub` download path runs against this:
`GET /api/models/{repo}[/revision/{rev}]` (model_info: sha and siblings) and `HEAD`/`GET
/{repo}/resolve/{rev}/{file}` with the headers huggingface_hub reads (`X-Repo-Commit`, `ETag`, Content-Length)
and `Range` requests, which is how an interrupted download resumes. Unknown repos, revisions and files answer
404 with the hub's `X-Error-Code`. The `Authorization` headers of repo requests are kept, to check that `HF_TOKEN` is sent. `drop_once` cuts the body of one file halfway the first time it is sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class FakeHub:
    """Repos (`owner/name` → revision → {path: bytes}) and a log of the requests served."""

    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    url: str = ""

    def add(self, repo: str, files: dict[str, bytes], revision: str = "main") -> None:
        self.repos.setdefault(repo, {})[revision] = files

    def commit(self, repo: str, revision: str) -> str:
        return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()


_API = re.compile(r"/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?")
_RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append(f"{self.command} {path} {self.headers.get('Range', '')}".rstrip())
            if _API.fullmatch(path) or _RESOLVE.fullmatch(path):
                hub.authorizations.add(self.headers.get("Authorization", ""))
            if api := _API.fullmatch(path):
                self._model_info(api["repo"], api["rev"] or "main")
            elif resolve := _RESOLVE.fullmatch(path):
                self._file(resolve["repo"], resolve["rev"], resolve["file"], body)
            else:
                self._error(404, "RepoNotFound")

        def _files(self, repo: str, revision: str) -> dict[str, bytes] | None:
            if repo not in hub.repos:
                self._error(404, "RepoNotFound")
                return None
            if revision not in hub.repos[repo]:
                self._error(404, "RevisionNotFound")
                return None
            return hub.repos[repo][revision]

        def _model_info(self, repo: str, revision: str) -> None:
            files = self._files(repo, revision)
            if files is None:
                return
            info = {"id": repo, "sha": hub.commit(repo, revision), "siblings": [{"rfilename": n} for n in files]}
            data = json.dumps(info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _file(self, repo: str, revision: str, name: str, body: bool) -> None:
            files = self._files(repo, revision)
            if files is None:
                return
            if name not in files:
                self._error(404, "EntryNotFound")
                return
            data = files[name]
            start = int(match[1]) if (match := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))) else 0
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", hub.commit(repo, revision))
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(data) - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if not body:
                return
            if name in hub.drop_once:
                hub.drop_once.discard(name)
                self.wfile.write(data[start : start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

        def _error(self, status: int, code: str) -> None:
            data = json.dumps({"error": code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def fake_hub() -> Iterator[FakeHub]:
    """A `FakeHub` served on a free local port for the duration of the block."""
    hub = FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
