"""A real local HTTP server (127.0.0.1, threads) standing in for operator-registered endpoints."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest


@dataclass
class LocalHttp:
    base: str
    hits: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)
    """/slow answers only when this is set (or after 30 s): slowness on demand, no sleeps."""


def _handler(state: LocalHttp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except BrokenPipeError:  # the client gave up (a timeout under test): expected
                pass

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            state.hits[url.path] += 1
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            if url.path == "/echo":
                self._reply(200, json.dumps({"method": method, "query": dict(parse_qsl(url.query)), "body": body}))
            elif url.path == "/slow":
                state.release.wait(30)
                self._reply(200, "late")
            elif url.path == "/big":
                self._reply(200, "x" * 10_000)
            elif url.path.startswith("/status/"):
                self._reply(int(url.path.rsplit("/", 1)[1]), "status page")
            elif url.path == "/redirect":
                self._reply(302, "", {"Location": "http://example.invalid/"})
            else:
                self._reply(404, "no such page")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

    return Handler


@pytest.fixture(scope="session")
def local_http() -> Iterator[LocalHttp]:
    state = LocalHttp(base="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
