"""A stand-in SearXNG instance for the serve suites: a small HTTP server on 127.0.0.1 answering its JSON API,
``GET /search?q=...&format=json``, with the body ``answer(q)`` makes; it records each request's query string and
Authorization header. ``status`` other than 200 answers that error (a path other than /search: 404); ``delay``
seconds pass before each answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class SearxStandIn:
    def __init__(self, answer: Callable[[str], dict[str, Any]]) -> None:
        self.requests: list[tuple[dict[str, list[str]], str | None]] = []
        self.status = 200
        self.delay = 0.0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                backend.requests.append((query, self.headers.get("Authorization")))
                time.sleep(backend.delay)
                if parts.path != "/search" or backend.status != 200:
                    self.send_response(404 if parts.path != "/search" else backend.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(answer(query.get("q", [""])[0])).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def queries(self) -> list[dict[str, list[str]]]:
        """The query strings received, in order."""
        return [query for query, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
