"""``responses-rs serve``'s MCP client (``responses_rs.server._mcp``) against the testkit's real MCP server, on both
transports, with whichever ``mcp`` the venv has (1.x in the llama-stack 0.2.x venvs, 2.x in the OGX one): the
shapes the core takes, one session per server, no listing a call did not ask for, failures raised."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import time
from collections.abc import Iterator

import pytest

if importlib.util.find_spec("mcp") is None or importlib.util.find_spec("uvicorn") is None:
    pytest.skip("the mcp package (and uvicorn) are not installed", allow_module_level=True)

from responses_rs.server._mcp import McpSessions
from responses_rs.testkit.mcp_server import MCPTestServer


@pytest.fixture(scope="module", params=["sse", "streamable-http"])
def mcp_server(request: pytest.FixtureRequest) -> Iterator[MCPTestServer]:
    with MCPTestServer(transport=request.param) as server:
        yield server


def test_listing_and_calls_in_one_session(mcp_server: MCPTestServer) -> None:
    mcp_server.reset()
    headers = {"Authorization": "Bearer tok", "X-Trace": "t-9"}

    async def run() -> tuple[list[dict[str, object]], dict[str, object], dict[str, object]]:
        sessions = McpSessions(10)
        try:
            listing = await sessions.list_tools(mcp_server.url, headers)
            added = await sessions.call_tool(mcp_server.url, headers, "add", {"a": 4, "b": 5})
            failed = await sessions.call_tool(mcp_server.url, headers, "fail", {"reason": "nope"})
            return listing, added, failed
        finally:
            await sessions.close()

    listing, added, failed = asyncio.run(run())
    assert [t["name"] for t in listing] == ["add", "lookup", "fail"]
    add = listing[0]
    assert add["description"] == "Add two integers and return the sum."
    assert add["input_schema"]["required"] == ["a", "b"]  # type: ignore[index]
    assert added == {"content": [{"type": "text", "text": "9"}], "error_code": 0}
    assert failed["error_code"] == 1 and "fail" in str(failed["content"])
    assert mcp_server.calls == [("add", {"a": 4, "b": 5}), ("fail", {"reason": "nope"})]
    assert mcp_server.listings == 1
    sent = mcp_server.request_headers
    assert sent and all(h.get("authorization") == "Bearer tok" and h.get("x-trace") == "t-9" for h in sent)
    if mcp_server.transport == "streamable-http":
        assert len({h["mcp-session-id"] for h in sent if "mcp-session-id" in h}) == 1


def test_a_call_without_a_listing_does_not_list(mcp_server: MCPTestServer) -> None:
    """A chain that reuses a listing calls a tool in a session that never listed: the client must not list."""
    mcp_server.reset()

    async def run() -> dict[str, object]:
        sessions = McpSessions(10)
        try:
            return await sessions.call_tool(mcp_server.url, {}, "lookup", {"query": "x"})
        finally:
            await sessions.close()

    assert asyncio.run(run())["error_code"] == 0
    assert mcp_server.calls == [("lookup", {"query": "x"})] and mcp_server.listings == 0


def test_an_unreachable_server_raises() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def run(path: str) -> None:
        sessions = McpSessions(10)
        try:
            await sessions.list_tools(f"http://127.0.0.1:{port}{path}", {})
        finally:
            await sessions.close()

    for path in ("/sse", "/mcp"):
        with pytest.raises(Exception) as info:
            asyncio.run(run(path))
        assert not isinstance(info.value, TimeoutError), path


def test_a_server_that_does_not_answer_times_out() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)

    async def run() -> None:
        sessions = McpSessions(0.5)
        try:
            await sessions.list_tools(f"http://127.0.0.1:{silent.getsockname()[1]}/mcp", {})
        finally:
            await sessions.close()

    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match="within 0.5 s"):
            asyncio.run(run())
    finally:
        silent.close()
    assert time.monotonic() - started < 5
