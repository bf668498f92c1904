"""A fake Label Studio on 127.0.0.1 whose answers a test writes: garbage, redirects, trickles,
endless pages."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: (handler, method, path) -> None: writes the whole answer through ``handler``
Respond = Callable[[BaseHTTPRequestHandler, str, str], None]


class FakeLabelStudio:
    """A threaded HTTP server; ``requests`` records ``(method, path, headers)``."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                fake.requests.append((self.command, self.path, dict(self.headers)))
                # the client giving up (what a test may want to see) is no error here
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake.respond(self, self.command, self.path)

            do_GET = do_POST = do_PATCH = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeLabelStudio:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def send(handler: BaseHTTPRequestHandler, body: bytes | Any, status: int = 200,
         headers: dict[str, str] | None = None) -> None:
    """Answer with ``body`` (bytes as they are, anything else as JSON)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    for key, value in {"Content-Type": "application/json", "Content-Length": str(len(raw)),
                       **(headers or {})}.items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(raw)


def project_then(tasks: Callable[[int], bytes | Any]) -> Respond:
    """A server whose project 1 exists and whose task listing's page ``p`` is ``tasks(p)``;
    imports succeed."""

    def respond(handler: BaseHTTPRequestHandler, method: str, path: str) -> None:
        if path.startswith("/api/projects/1/import"):
            send(handler, {"task_count": 0})
        elif path.startswith("/api/projects"):
            send(handler, {"id": 1, "title": "fake"})
        elif path.startswith("/api/tasks"):
            page = int(path.split("page=")[1].split("&")[0])
            send(handler, tasks(page))
        else:
            send(handler, {"detail": "not found"}, 404)

    return respond
