"""A local OpenAI-compatible moderation endpoint (``POST {"input": text}`` -> ``{"results": [{"flagged",
"categories"}]}``), standing in for the moderation service OGX's ``moderation_endpoint`` points at."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Moderation:
    """A local OpenAI-compatible moderation endpoint: flags any input containing a flagged word."""

    def __init__(self, flagged: tuple[str, ...] = ("forbidden",)) -> None:
        self.flagged = flagged
        self.inputs: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.inputs.append(body["input"])
                outer.headers.append(dict(self.headers))
                hit = any(word in body["input"] for word in outer.flagged)
                answer = json.dumps(
                    {
                        "id": "modr-1",
                        "model": "moderation",
                        "results": [{"flagged": hit, "categories": {"violence": hit, "hate": False}}],
                    }
                ).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/moderations"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
