"""A minimal HTTP/1.1 client for the upstream Chat Completions server, on asyncio streams.

Why not httpx: its per-chunk machinery (h11 events, an async iterator per HTTP chunk) costs more CPU than
the whole rest of a streamed request here. This client does one socket read per ``read()``, and the body's
framing (``Transfer-Encoding: chunked``) and SSE parsing happen in the Rust core (``ChunkedBody``,
``Turn.feed_sse``). Keep-alive connections are pooled per upstream; a pooled connection the server closed
meanwhile is retried once on a fresh one. Every connect and every read has the upstream timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit

from .._core import ChunkedBody


class UpstreamFailure(Exception):
    """The upstream could not be reached, answered an error status, timed out or dropped the connection."""

    def __init__(self, message: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


_READ = 1 << 16
# Tasks reading the end of bodies nobody waits for (kept referenced until done).
_draining: set[asyncio.Task[None]] = set()


class _Connection:
    __slots__ = ("reader", "writer", "reused")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: S110 - closing a broken socket
            pass


class Response:
    """One upstream response: status and headers read; the body read with ``read()`` until it returns b''."""

    def __init__(self, upstream: Upstream, conn: _Connection, status: int, headers: dict[str, str]) -> None:
        self._upstream = upstream
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        self._chunked = ChunkedBody() if "chunked" in headers.get("transfer-encoding", "").lower() else None
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None and self._chunked is None else None
        self._keep = headers.get("connection", "").lower() != "close"
        self._complete = False
        self._detached = False

    @property
    def complete(self) -> bool:
        """The whole body has been read (the connection went back to the pool)."""
        return self._complete

    async def read(self) -> bytes:
        """The next body bytes (de-chunked); b'' at the end of the body. A connection dropped before the
        end raises UpstreamFailure."""
        conn = self._conn
        if conn is None:
            return b""
        if self._remaining == 0:
            self._finish()
            return b""
        n = _READ if self._remaining is None else min(_READ, self._remaining)
        try:
            async with asyncio.timeout(self._upstream.timeout):
                data = await conn.reader.read(n)
        except TimeoutError:
            self._drop()
            raise UpstreamFailure(f"the model server sent nothing for {self._upstream.timeout:g} s") from None
        except OSError as exc:
            self._drop()
            raise UpstreamFailure(f"the connection to the model server broke: {exc}") from None
        if not data:
            if self._chunked is not None or self._remaining:
                self._drop()
                raise UpstreamFailure("the model server closed the connection before the end of its answer")
            self._keep = False
            self._finish()
            return b""
        if self._remaining is not None:
            self._remaining -= len(data)
        if self._chunked is not None:
            data = self._chunked.feed(data)
            if self._chunked.done:
                self._finish()
        elif self._remaining == 0:
            self._finish()
        return data

    async def body(self, limit: int = 16 << 20) -> bytes:
        """The whole body."""
        parts = []
        size = 0
        while chunk := await self.read():
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                self.close()
                raise UpstreamFailure("the model server's answer is too large")
        return b"".join(parts)

    def finish_later(self) -> None:
        """The caller has what it needs (the SSE stream's `[DONE]`): the rest of the body (the chunked
        terminator, normally already on its way) is read in a task, which returns the connection to the pool, so
        that the response's end never waits for it."""
        if self._conn is None or self._complete:
            return
        self._detached = True
        task = asyncio.get_running_loop().create_task(self._drain())
        _draining.add(task)
        task.add_done_callback(_draining.discard)

    async def _drain(self) -> None:
        try:
            while await self.read():
                pass
        except Exception:  # noqa: S110 - the connection is dropped, nothing else depends on it
            self._drop()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        self._complete = True
        if conn is not None:
            self._upstream._release(conn, self._keep)

    def close(self) -> None:
        """Drop the connection (a body not read to its end cannot be reused), unless `finish_later` reads it."""
        if not self._detached:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class Upstream:
    """One OpenAI-compatible base URL (``http(s)://host:port/v1``)."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout: float, max_idle: int = 64, max_calls: int | None = None
    ) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream: not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.prefix = parts.path
        host_header = self.host if parts.port is None else f"{self.host}:{parts.port}"
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self._head = f"Host: {host_header}\r\n{auth}User-Agent: responses-rs\r\nConnection: keep-alive\r\n"
        self.timeout = timeout
        # Its own cap on concurrent calls (`--upstream-max`; None: only the cap on all upstreams together).
        self.slots = asyncio.Semaphore(max_calls) if max_calls is not None else None
        self._idle: list[_Connection] = []
        self._max_idle = max_idle

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl, limit=_READ)
        except TimeoutError:
            raise UpstreamFailure(f"connecting to the model server timed out after {self.timeout:g} s") from None
        except OSError as exc:
            raise UpstreamFailure(f"cannot connect to the model server at {self.base_url}: {exc}") from None
        return _Connection(reader, writer)

    def _release(self, conn: _Connection, keep: bool) -> None:
        if keep and len(self._idle) < self._max_idle and not conn.writer.is_closing():
            conn.reused = True
            self._idle.append(conn)
        else:
            conn.close()

    async def request(self, method: str, path: str, body: bytes | None = None, *, accept: str = "") -> Response:
        """Send a request and read the status line and headers."""
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._head}"
        if accept:
            head += f"Accept: {accept}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        payload = (head + "\r\n").encode("latin-1") + (body or b"")
        for attempt in (0, 1):
            conn = self._idle.pop() if self._idle and attempt == 0 else await self._connect()
            try:
                conn.writer.write(payload)
                async with asyncio.timeout(self.timeout):
                    await conn.writer.drain()
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                conn.close()
                raise UpstreamFailure(f"the model server did not answer within {self.timeout:g} s") from None
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                conn.close()
                if conn.reused and attempt == 0:
                    continue  # a kept-alive connection the server had closed: once more on a new one
                raise UpstreamFailure(f"the model server dropped the connection: {exc!r}") from None
            lines = raw.decode("latin-1").split("\r\n")
            try:
                status = int(lines[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                conn.close()
                raise UpstreamFailure(f"the model server sent a bad status line: {lines[0]!r}") from None
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            return Response(self, conn, status, headers)
        raise UpstreamFailure("the model server dropped the connection")  # not reached

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def per_upstream(name: str, value: Any, count: int) -> list[Any]:
    """A setting given once for every upstream, or as a list with one entry per upstream (in --upstream order)."""
    if not isinstance(value, list):
        return [value] * count
    if len(value) == 1:
        return value * count
    if len(value) != count:
        raise ValueError(f"{name}: {len(value)} values for {count} upstreams (one for all, or one per upstream)")
    return list(value)
