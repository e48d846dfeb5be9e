"""A scripted HTTP receiver for the HTTP action tests, on a loopback address only."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """Serves in a thread on ``host`` (a loopback address) and records every request.

    Paths: ``/json`` (a JSON document describing the request), ``/text``, ``/binary``,
    ``/status/N``, ``/flaky?key=K`` (503 the first time per key), ``/limited?key=K&after=S``
    (429 with ``Retry-After: S`` the first time per key), ``/big?bytes=N`` (no
    Content-Length, closes when done), ``/redirect?to=URL`` (to itself without ``to``),
    ``/webhook?key=K`` (500 the first time per key), ``/slow?seconds=S``.
    """

    def __init__(self, host: str) -> None:
        assert host.startswith("127.") or host == "::1", "tests only talk to loopback"
        self.requests: list[Received] = []
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                seen = Received(
                    self.command,
                    parts.path,
                    query,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with receiver._lock:
                    receiver.requests.append(seen)
                    receiver.hits[f"{parts.path}:{query.get('key', '')}"] += 1
                    count = receiver.hits[f"{parts.path}:{query.get('key', '')}"]
                receiver.route(self, seen, count)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, h: BaseHTTPRequestHandler, seen: Received, count: int) -> None:
        path, q = seen.path, seen.query
        if path == "/json":
            doc = {
                "method": seen.method,
                "query": q,
                "idempotencyKey": seen.headers.get("idempotency-key"),
                "contentType": seen.headers.get("content-type"),
                "body": seen.body.decode(),
            }
            self.send(h, 200, json.dumps(doc).encode(), "application/json")
        elif path == "/text":
            self.send(h, 200, "plain text ✓".encode(), "text/plain; charset=utf-8")
        elif path == "/binary":
            self.send(h, 200, bytes(range(256)), "application/octet-stream")
        elif path.startswith("/status/"):
            self.send(h, int(path.rsplit("/", 1)[1]), b"no such order: 42", "text/plain")
        elif path == "/flaky":
            if count == 1:
                self.send(h, 503, b"busy", "text/plain")
            else:
                self.send(h, 200, b'{"ok": true}', "application/json")
        elif path == "/limited":
            if count == 1:
                extra = {"Retry-After": q.get("after", "1")}
                self.send(h, 429, b"slow down", "text/plain", extra)
            else:
                self.send(h, 200, b'{"ok": true}', "application/json")
        elif path == "/big":
            h.send_response(200)
            h.send_header("Content-Type", "text/plain")
            h.send_header("Connection", "close")
            h.end_headers()
            try:
                for _ in range(int(q.get("bytes", "100000")) // 1000):
                    h.wfile.write(b"x" * 1000)
            except OSError:
                pass  # the client stopped reading: what the cap should do
            h.close_connection = True
        elif path == "/redirect":
            self.send(
                h,
                int(q.get("status", "302")),
                b"",
                "text/plain",
                {"Location": q.get("to", "/redirect")},
            )
        elif path == "/slow":
            time.sleep(float(q.get("seconds", "2")))
            self.send(h, 200, b"late", "text/plain")
        elif path == "/webhook":
            if count == 1:
                self.send(h, 500, b"try again", "text/plain")
            else:
                self.send(h, 200, b'{"received": true}', "application/json")
        else:
            self.send(h, 404, b"unknown path", "text/plain")

    @staticmethod
    def send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
