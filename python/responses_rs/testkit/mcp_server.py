"""A real MCP server over SSE on 127.0.0.1, for end-to-end tests of Responses ``mcp`` tools.

Built on the ``mcp`` package's ``FastMCP`` (mcp 1.x, which llama-stack 0.2.x's MCP client needs) or
its successor ``MCPServer`` (mcp 2.x, which OGX 1.5 installs). It serves the standard SSE transport at
``http://127.0.0.1:PORT/sse`` (or, with ``transport="streamable-http"``, streamable HTTP at ``/mcp``) with three
tools:

``add(a: int, b: int) -> int``
    Adds two integers.
``lookup(query: str) -> str``
    Answers ``"<server name> found: <query>"``.
``fail(reason: str)``
    Raises, so the MCP result has ``isError`` set.

In-process use (the server runs on a background thread; every tool call is recorded)::

    with MCPTestServer() as mcp:
        tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp.url}]
        ...
        assert mcp.calls == [("add", {"a": 2, "b": 3})]
        assert mcp.listings == 1  # tools/list requests served
        mcp.request_headers  # the headers of every HTTP request (lower-case names)

CLI: ``python -m responses_rs.testkit.mcp_server --port 0`` prints ``MCP_TEST_SERVER <url>`` and serves
until killed.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time
from types import TracebackType
from typing import Any

__all__ = ["READY_PREFIX", "MCPTestServer", "build_app", "main"]

READY_PREFIX = "MCP_TEST_SERVER"


def build_app(name: str, host: str, port: int, record: Any = None, on_list: Any = None) -> Any:
    """The MCP server app with the test tools; ``record(tool, arguments)`` is called on every call,
    ``on_list()`` on every tools/list request."""
    try:
        from mcp.server.fastmcp import FastMCP as Base  # mcp 1.x

        kwargs: dict[str, Any] = {"host": host, "port": port}
    except ImportError:
        from mcp.server.mcpserver import MCPServer as Base  # mcp 2.x

        kwargs = {}

    class Server(Base):  # type: ignore[misc, valid-type]
        async def list_tools(self) -> Any:
            if on_list is not None:
                on_list()
            return await super().list_tools()

    app = Server(name, log_level="WARNING", **kwargs)

    def _record(tool: str, arguments: dict[str, Any]) -> None:
        if record is not None:
            record(tool, arguments)

    @app.tool(description="Add two integers and return the sum.")
    def add(a: int, b: int) -> int:
        _record("add", {"a": a, "b": b})
        return a + b

    @app.tool(description=f"Look something up on {name}.")
    def lookup(query: str) -> str:
        _record("lookup", {"query": query})
        return f"{name} found: {query}"

    @app.tool(description="Always fails (for error-path tests).")
    def fail(reason: str) -> str:
        _record("fail", {"reason": reason})
        raise RuntimeError(f"fail called: {reason}")

    return app


class MCPTestServer:
    """The FastMCP test app served by uvicorn on a daemon thread, on 127.0.0.1 and a free port."""

    def __init__(self, name: str = "testkit", host: str = "127.0.0.1", port: int = 0, transport: str = "sse") -> None:
        if transport not in ("sse", "streamable-http"):
            raise ValueError(f"transport: expected sse or streamable-http, got {transport!r}")
        self.name = name
        self.transport = transport
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._calls: list[tuple[str, dict[str, Any]]] = []
        self._listings = 0
        self._headers: list[dict[str, str]] = []
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """The SSE endpoint (``/sse``), or with ``transport="streamable-http"`` the streamable HTTP one (``/mcp``):
        what a Responses ``mcp`` tool's ``server_url`` wants."""
        if self._server is None:
            raise RuntimeError("server is not started")
        return f"http://{self.host}:{self.port}/{'sse' if self.transport == 'sse' else 'mcp'}"

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        """(tool name, arguments) of every tool call so far."""
        with self._lock:
            return list(self._calls)

    @property
    def listings(self) -> int:
        """How many tools/list requests the server answered."""
        with self._lock:
            return self._listings

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """The headers (lower-case names) of every HTTP request so far."""
        with self._lock:
            return [dict(h) for h in self._headers]

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._listings = 0
            self._headers.clear()

    def _count_listing(self) -> None:
        with self._lock:
            self._listings += 1

    def _record(self, tool: str, arguments: dict[str, Any]) -> None:
        with self._lock:
            self._calls.append((tool, dict(arguments)))

    def start(self, timeout: float = 10.0) -> MCPTestServer:
        if self._server is not None:
            return self
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        mcp_app = build_app(self.name, self.host, self.port, self._record, self._count_listing)
        make = mcp_app.sse_app if self.transport == "sse" else mcp_app.streamable_http_app
        try:
            sse = make(host=self.host)  # mcp 2.x
        except TypeError:
            sse = make()  # mcp 1.x

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope.get("type") == "http":
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
                with self._lock:
                    self._headers.append(headers)
            await sse(scope, receive, send)

        # The streamable HTTP app runs its session manager in its lifespan.
        lifespan = "off" if self.transport == "sse" else "on"
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)

        def serve() -> None:
            try:
                self._server.run(sockets=[sock])
            except BaseException as exc:  # reported by start()
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"mcp-test-server:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"MCP test server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("MCP test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.should_exit = True
        if thread is not None:
            thread.join(timeout=5)
            if thread.is_alive():  # open SSE streams: stop waiting for them
                server.force_exit = True
                thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> MCPTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m responses_rs.testkit.mcp_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--name", default="testkit")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = MCPTestServer(args.name, args.host, args.port).start()
    try:
        print(f"{READY_PREFIX} {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
