"""A stand-in Grafana HTTP API on loopback: just the endpoints grafana-client calls for a push.

A real HTTP server (``http.server`` in a thread) that keeps state and answers like
Grafana 11 does for these endpoints (paths and status codes from grafana-client's
``elements/datasource.py``, ``folder.py``, ``dashboard.py`` and Grafana's HTTP API
docs): 404 for a missing uid, 409 when creating something whose uid/name exists,
412 when a dashboard uid exists and ``overwrite`` is false, 400 for an unknown
folder, 401 without the expected bearer token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class GrafanaState:
    def __init__(self, token: str) -> None:
        self.token = token
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._next_id = 1

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id


def _handler(state: GrafanaState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def _route(self, method: str) -> None:
            body = self._body() if method in ("POST", "PUT") else None
            with state.lock:
                state.requests.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {state.token}":
                    return self._reply(401, {"message": "Unauthorized"})
                status, out = self._dispatch(method, self.path.split("?")[0], body)
            self._reply(status, out)

        def _dispatch(self, method: str, path: str, body: Any) -> tuple[int, Any]:
            parts = path.strip("/").split("/")
            if parts[:1] != ["api"]:
                return 404, {"message": "Not found"}
            parts = parts[1:]
            if parts[:2] == ["datasources", "uid"] and len(parts) == 3:
                uid = parts[2]
                ds = state.datasources.get(uid)
                if ds is None:
                    return 404, {"message": "Data source not found"}
                if method == "GET":
                    return 200, ds
                if method == "PUT":
                    ds.update({**body, "uid": uid, "version": ds["version"] + 1})
                    return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource updated"}
            if parts == ["datasources"] and method == "POST":
                uid = body.get("uid")
                if uid in state.datasources or any(
                    d["name"] == body["name"] for d in state.datasources.values()
                ):
                    return 409, {"message": "data source with the same name already exists"}
                ds = {**body, "id": state.next_id(), "version": 1}
                state.datasources[uid] = ds
                return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added"}
            if parts[:1] == ["folders"] and len(parts) == 2:
                folder = state.folders.get(parts[1])
                if folder is None:
                    return 404, {"message": "folder not found"}
                if method == "GET":
                    return 200, folder
                if method == "PUT":
                    folder["title"] = body.get("title", folder["title"])
                    folder["version"] += 1
                    return 200, folder
            if parts == ["folders"] and method == "POST":
                uid = body.get("uid")
                if uid in state.folders:
                    return 409, {"message": "a folder with the same uid already exists"}
                folder = {"uid": uid, "title": body["title"], "id": state.next_id(), "version": 1}
                state.folders[uid] = folder
                return 200, folder
            if parts == ["dashboards", "db"] and method == "POST":
                dash = body["dashboard"]
                uid = dash.get("uid")
                folder_uid = body.get("folderUid", "")
                if folder_uid and folder_uid not in state.folders:
                    return 400, {"message": "folder not found"}
                existing = state.dashboards.get(uid)
                if existing is not None and not body.get("overwrite"):
                    return 412, {"status": "version-mismatch", "message": "dashboard changed"}
                version = existing["version"] + 1 if existing else 1
                state.dashboards[uid] = {
                    "dashboard": {**dash, "version": version},
                    "folderUid": folder_uid,
                    "version": version,
                }
                return 200, {"status": "success", "uid": uid, "version": version}
            return 404, {"message": "Not found"}

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

    return Handler


@contextmanager
def grafana_standin(token: str) -> Iterator[tuple[str, GrafanaState]]:
    """Serve on 127.0.0.1 (free port); yield the base URL and the live state."""
    state = GrafanaState(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
