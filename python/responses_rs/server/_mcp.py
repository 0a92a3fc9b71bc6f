"""Remote MCP servers for ``responses-rs serve``: the core asks (``list_mcp_tools``, ``invoke_mcp``), this module
performs the call with the ``mcp`` package's client and answers in the shapes the core takes.

One client session per MCP server per request (`McpSessions`, closed when the request ends). Each session lives in
its own asyncio task: the ``mcp`` client's transports hold anyio task groups and cancel scopes open for the
session's life, and a transport failing would otherwise cancel whatever the request's task was awaiting (the
upstream model call). A call that fails (the server unreachable, an HTTP error, a timeout) raises here; the caller
feeds the failure to the core, which fails only that listing or call.

Transport by URL: a path ending in ``/sse`` is the SSE transport, anything else streamable HTTP. Works with mcp 1.x
(what the llama-stack 0.2.x venvs pin) and 2.x (OGX's venv), whose renamed fields and entry points are read where
they differ (tests/test_serve_mcp_client.py runs in both).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

# Seconds for connecting to an MCP server (and for each of its HTTP requests); for one listing or call, the
# default of `--mcp-timeout`.
CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 60.0

Job = Callable[[Any], Awaitable[Any]]


def mcp_headers(tool: dict[str, Any]) -> None:
    """An ``mcp`` tool's ``authorization`` becomes its ``Authorization: Bearer ...`` header (in place; the core
    then sends it with every request to that server and never echoes it)."""
    token = tool.pop("authorization", None)
    if token is None:
        return
    if not isinstance(token, str):
        raise ValueError("authorization: must be a string")
    headers = tool.get("headers")
    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"} if isinstance(headers, dict) else {}
    headers["Authorization"] = f"Bearer {token.removeprefix('Bearer ')}"
    tool["headers"] = headers


def _transport(url: str, headers: dict[str, str], timeout: float) -> contextlib.AbstractAsyncContextManager[Any]:
    if urlparse(url).path.rstrip("/").endswith("/sse"):
        from mcp.client.sse import sse_client

        return sse_client(url, headers=headers, timeout=CONNECT_TIMEOUT, sse_read_timeout=timeout)
    from mcp.client import streamable_http

    legacy = getattr(streamable_http, "streamablehttp_client", None)
    if legacy is not None:  # mcp 1.x: headers and timeouts as arguments
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return legacy(url, headers=headers, timeout=CONNECT_TIMEOUT, sse_read_timeout=timeout)
    from mcp.shared._httpx_utils import create_mcp_http_client

    client = create_mcp_http_client(headers=headers)
    return streamable_http.streamable_http_client(url, http_client=client)


class _Session:
    """One MCP client session, owned by its own task, which runs the jobs it is given one at a time."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.error: BaseException | None = None  # why the session ended, when it failed
        self._jobs: asyncio.Queue[tuple[Job, asyncio.Future[Any]] | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._serve(headers))

    async def _serve(self, headers: dict[str, str]) -> None:
        from mcp import ClientSession

        try:
            async with (
                _transport(self.url, headers, self.timeout) as streams,
                ClientSession(streams[0], streams[1]) as session,
            ):
                await session.initialize()
                while True:
                    entry = await self._jobs.get()
                    if entry is None:
                        return
                    job, future = entry
                    try:
                        result = await job(session)
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(result)
        except BaseException as exc:
            # Opening failed (or the transport broke): every job waiting, and every later one, gets the error.
            error = _unwrap(exc)
            while not self._jobs.empty():
                entry = self._jobs.get_nowait()
                if entry is not None and not entry[1].done():
                    entry[1].set_exception(error)
            self.error = error
            if isinstance(exc, asyncio.CancelledError):
                raise

    async def run(self, job: Job) -> Any:
        if self.error is not None or self._task.done():
            raise self.error or RuntimeError("the MCP session has ended")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put_nowait((job, future))
        try:
            done, _ = await asyncio.wait(
                {future, self._task}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:  # the request was cancelled
            future.cancel()
            raise
        if future in done:
            return future.result()
        future.cancel()  # nobody waits for it any more: the session must not set an error on it
        if self._task in done:  # the session ended before answering
            raise self.error or RuntimeError("the MCP session ended before answering")
        raise TimeoutError(f"the MCP server did not answer within {self.timeout:g} s")

    async def close(self) -> None:
        if not self._task.done():
            self._jobs.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
            except BaseException:
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task


def _unwrap(exc: BaseException) -> BaseException:
    """The first real error inside anyio's exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, asyncio.CancelledError):
        return RuntimeError("the MCP session was cancelled")
    return exc


def _field(obj: Any, name: str, new_name: str) -> Any:
    """A field of an ``mcp`` type under its 1.x name, or the snake_case one ``mcp`` 2.x uses."""
    return getattr(obj, name) if hasattr(obj, name) else getattr(obj, new_name, None)


async def _call_tool(session: Any, name: str, arguments: dict[str, Any]) -> Any:
    """A tools/call request. Sent as is: `ClientSession.call_tool` lists the server first in a session that has
    not listed it (to validate structured output, which the model never sees), and a listing reused from the
    chain must not cost one. mcp 1.x sends a `ClientRequest` wrapping the request; 2.x the request itself."""
    from mcp import types

    call = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
    try:
        request: Any = types.ClientRequest(call)
    except TypeError:  # mcp 2.x: ClientRequest is a union, not a model
        request = call
    return await session.send_request(request, types.CallToolResult)


class McpSessions:
    """The MCP sessions of one request, by (server URL, headers); `close` ends them all."""

    def __init__(self, timeout: float = CALL_TIMEOUT) -> None:
        self.timeout = timeout
        self._sessions: dict[tuple[str, tuple[tuple[str, str], ...]], _Session] = {}

    async def _run(self, url: str, headers: Any, job: Job) -> Any:
        clean = {str(k): str(v) for k, v in (headers or {}).items()}
        key = (url, tuple(sorted(clean.items())))
        session = self._sessions.get(key)
        if session is None or session.error is not None:
            if session is not None:
                await session.close()
            session = self._sessions[key] = _Session(url, clean, self.timeout)
        try:
            return await session.run(job)
        except TimeoutError:
            # The session may still be busy with the call: the next one gets a new session.
            del self._sessions[key]
            await session.close()
            raise

    async def list_tools(self, url: str, headers: Any) -> list[dict[str, Any]]:
        """The server's tools as the core takes a listing: name, description, input_schema."""

        async def job(session: Any) -> list[dict[str, Any]]:
            from mcp import types

            tools: list[dict[str, Any]] = []
            cursor = None
            while True:
                if cursor:
                    page = await session.list_tools(params=types.PaginatedRequestParams(cursor=cursor))
                else:
                    page = await session.list_tools()
                for tool in page.tools:
                    schema = _field(tool, "inputSchema", "input_schema")
                    tools.append({"name": tool.name, "description": tool.description, "input_schema": schema})
                cursor = _field(page, "nextCursor", "next_cursor")
                if not cursor:
                    return tools

        return await self._run(url, headers, job)

    async def call_tool(self, url: str, headers: Any, name: str, arguments: Any) -> dict[str, Any]:
        """One tool call as the core takes its result: content parts, and error_code 1 when the tool reported
        an error (`isError`: the core marks the call failed with that content as its error)."""

        async def job(session: Any) -> dict[str, Any]:
            result = await _call_tool(session, name, arguments or {})
            content: list[Any] = []
            for part in result.content:
                text = getattr(part, "text", None)
                if isinstance(text, str):
                    content.append({"type": "text", "text": text})
                else:
                    content.append(part.model_dump(mode="json", exclude_none=True))
            return {"content": content, "error_code": 1 if _field(result, "isError", "is_error") else 0}

        return await self._run(url, headers, job)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
