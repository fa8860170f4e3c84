"""A STAND-IN for Grafana's HTTP API (Grafana itself cannot be installed on this machine).

It implements only the endpoints `dashboards.push` calls, with Grafana's status codes and
response shapes, keeps what was posted, and records every call so tests can check them.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Call:
    method: str
    path: str
    body: object
    authorization: str | None


@dataclass
class GrafanaState:
    calls: list[Call] = field(default_factory=list)
    datasources: dict[str, dict] = field(default_factory=dict)
    folders: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    state: GrafanaState
    token: str

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def _reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        auth = self.headers.get("Authorization")
        self.state.calls.append(Call(method, self.path, body, auth))
        if auth != f"Bearer {self.token}":
            return self._reply(401, {"message": "Unauthorized"})
        s, path = self.state, self.path.split("?")[0]
        if method == "GET" and path == "/api/frontend/settings":
            return self._reply(200, {"buildInfo": {"version": "0.0.0-standin"}})
        if path.startswith("/api/datasources/uid/"):
            uid = path.rsplit("/", 1)[1]
            if uid not in s.datasources:
                return self._reply(404, {"message": "Data source not found"})
            if method == "PUT":
                s.datasources[uid] = body
                return self._reply(200, {"message": "Datasource updated", "datasource": body})
            return self._reply(200, s.datasources[uid])
        if method == "POST" and path == "/api/datasources":
            if body["uid"] in s.datasources:
                return self._reply(409, {"message": "data source with the same uid already exists"})
            s.datasources[body["uid"]] = body
            return self._reply(200, {"id": len(s.datasources), "message": "Datasource added", "datasource": body})
        if method == "GET" and path.startswith("/api/folders/"):
            uid = path.rsplit("/", 1)[1]
            if uid not in s.folders:
                return self._reply(404, {"message": "folder not found"})
            return self._reply(200, s.folders[uid])
        if method == "POST" and path == "/api/folders":
            s.folders[body["uid"]] = body
            return self._reply(200, {"uid": body["uid"], "title": body["title"]})
        if method == "POST" and path == "/api/dashboards/db":
            dashboard = body["dashboard"]
            if dashboard["uid"] in s.dashboards and not body.get("overwrite"):
                return self._reply(412, {"message": "A dashboard with the same uid already exists"})
            s.dashboards[dashboard["uid"]] = body
            return self._reply(200, {"status": "success", "uid": dashboard["uid"], "version": 1,
                                     "url": f"/d/{dashboard['uid']}/x"})
        return self._reply(404, {"message": f"stand-in does not implement {method} {path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


class GrafanaStandIn:
    """Runs the stand-in on 127.0.0.1 (a free port) in a thread; use as a context manager."""

    def __init__(self, token: str) -> None:
        self.state = GrafanaState()
        handler = type("Handler", (_Handler,), {"state": self.state, "token": token})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GrafanaStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
