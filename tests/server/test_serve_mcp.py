"""Remote MCP tools through a real ``responses-rs serve`` process: the official openai client -> serve -> the
scripted Chat Completions server, with the testkit's MCP server (a real MCP server over SSE, reached through the
``mcp`` package's client), all on 127.0.0.1. Every stream goes through the stream validator ("full" schema)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.mcp_server import MCPTestServer

MODEL = "scripted-model"


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[MCPTestServer]:
    with MCPTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def serve(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve")) as s:
        yield s


@pytest.fixture
def client(serve: Serve, chat_server: ScriptedChatServer, mcp_server: MCPTestServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    mcp_server.reset()
    oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=60)
    yield oai
    oai.close()


def streamed(client: openai.OpenAI, **kwargs: Any) -> tuple[Response, list[Any]]:
    events = list(client.responses.create(model=MODEL, stream=True, **kwargs))
    return validate_stream(events, response_cls=Response, schema_host="full"), events


def logged(serve: Serve, start: int, text: str) -> bool:
    """Did the server log a line with `text` (after its first `start` lines)? Its output is read by a thread."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(text in line for line in serve.log[start:]):
            return True
        time.sleep(0.05)
    return False


def offered(request: dict[str, Any]) -> list[str]:
    """The function names a chat request offered the model."""
    return [t["function"]["name"] for t in request.get("tools") or []]


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def test_a_streamed_mcp_call_round_trip(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools: Any = [
        {
            "type": "mcp",
            "server_label": "kit",
            "server_url": mcp_server.url,
            "require_approval": "never",
            "headers": {"X-Trace": "t-1"},
            "authorization": "sekrit",
        }
    ]
    chat_server.script(
        [{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "call_add"}]}, {"text": "It is 5."}]
    )
    final, events = streamed(client, input="What is 2 + 3?", tools=tools)
    assert final.status == "completed"
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "message"]
    listing, call = final.output[0], final.output[1]
    assert listing.server_label == "kit" and sorted(t.name for t in listing.tools) == ["add", "fail", "lookup"]
    assert (call.server_label, call.name, call.output, call.error) == ("kit", "add", "5", None)
    assert final.output_text == "It is 5."
    assert mcp_server.calls == [("add", {"a": 2, "b": 3})]
    # The model was offered the listed tools and saw the call's result.
    assert sorted(offered(chat_server.requests[0])) == ["add", "fail", "lookup"]
    assert tool_messages(chat_server.requests[1]) == ["5"]
    types = [e.type for e in events]
    for kind in (
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call.completed",
    ):
        assert types.count(kind) == 1, (kind, types)
    assert types.index("response.mcp_call.completed") < types.index("response.output_text.delta")
    # `authorization` went as a bearer token with the headers, on every request to the MCP server; it is not echoed.
    sent = mcp_server.request_headers
    assert sent and all(h.get("authorization") == "Bearer sekrit" and h.get("x-trace") == "t-1" for h in sent)
    assert "sekrit" not in final.model_dump_json() and "t-1" not in final.model_dump_json()
    assert mcp_server.listings == 1


def test_allowed_tools_filters_what_the_model_is_offered(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools: Any = [
        {
            "type": "mcp",
            "server_label": "kit",
            "server_url": mcp_server.url,
            "require_approval": "never",
            "allowed_tools": {"tool_names": ["lookup"]},
        }
    ]
    chat_server.script([{"text": "Only lookup here."}])
    final, _ = streamed(client, input="Which tools?", tools=tools)
    assert final.status == "completed"
    assert [t.name for t in final.output[0].tools] == ["lookup"]
    assert offered(chat_server.requests[0]) == ["lookup"]


def test_an_approval_round_trip_reuses_the_listing_along_the_chain(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools: Any = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "always"}]
    chat_server.script(
        [
            {"tool_calls": [{"name": "lookup", "arguments": {"query": "green tea"}}]},
            {"text": "It has green tea."},
            {"text": "You're welcome."},
        ]
    )
    # 1. The model calls `lookup`, which needs approval: not run; the response asks and ends.
    first, _ = streamed(client, input="Does the shop have green tea?", tools=tools)
    assert first.status == "completed"
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert (request.server_label, request.name, request.arguments) == ("kit", "lookup", '{"query": "green tea"}')
    assert mcp_server.calls == [] and mcp_server.listings == 1

    # 2. Approved through previous_response_id: the call runs, then the model answers with its result.
    second, _ = streamed(
        client,
        previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
        tools=tools,
    )
    assert second.status == "completed"
    assert [item.type for item in second.output] == ["mcp_call", "message"]
    call = second.output[0]
    assert (call.name, call.output, call.approval_request_id) == ("lookup", "testkit found: green tea", request.id)
    assert mcp_server.calls == [("lookup", {"query": "green tea"})]
    assert tool_messages(chat_server.requests[-1]) == ["testkit found: green tea"]
    assert second.output_text == "It has green tea."

    # 3. A later turn of the chain: the listing of turn 1 is reused, the MCP server is not listed again.
    third, _ = streamed(client, previous_response_id=second.id, input="Thanks!", tools=tools)
    assert third.status == "completed" and third.output_text == "You're welcome."
    assert [item.type for item in third.output] == ["message"]
    assert sorted(offered(chat_server.requests[-1])) == ["add", "fail", "lookup"]
    assert mcp_server.listings == 1


def test_a_denied_call_is_not_run(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools: Any = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "always"}]
    chat_server.script(
        [{"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]}, {"text": "Understood, not adding."}]
    )
    first, _ = streamed(client, input="Add 1 and 1", tools=tools)
    request = first.output[1]
    second, _ = streamed(
        client,
        previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}],
        tools=tools,
    )
    assert second.status == "completed" and second.output_text == "Understood, not adding."
    assert mcp_server.calls == []


def test_a_tool_that_reports_an_error_fails_only_its_call(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools: Any = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"}]
    chat_server.script([{"tool_calls": [{"name": "fail", "arguments": {"reason": "boom"}}]}, {"text": "It failed."}])
    final, events = streamed(client, input="Try it", tools=tools)
    assert final.status == "completed" and final.output_text == "It failed."
    call = final.output[1]
    assert call.type == "mcp_call" and call.status == "failed" and call.output is None
    assert "fail called: boom" in str(call.error)
    assert "response.mcp_call.failed" in [e.type for e in events]
    assert "boom" in tool_messages(chat_server.requests[1])[0]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", ["/sse", "/mcp"])
def test_an_unreachable_mcp_server_fails_its_listing_and_the_response_goes_on(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer, serve: Serve, path: str
) -> None:
    before = len(serve.log)
    down = f"http://127.0.0.1:{_closed_port()}{path}"
    tools: Any = [
        {"type": "mcp", "server_label": "down", "server_url": down, "require_approval": "never"},
        {"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"},
    ]
    chat_server.script([{"text": "Answered without the down server."}])
    final, events = streamed(client, input="Hello", tools=tools)
    assert final.status == "completed" and final.output_text == "Answered without the down server."
    assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_list_tools", "message"]
    failed, listed = final.output[0], final.output[1]
    assert failed.server_label == "down" and failed.tools == []
    assert listed.server_label == "kit" and listed.error is None and len(listed.tools) == 3
    types = [e.type for e in events]
    assert types.count("response.mcp_list_tools.failed") == 1
    assert types.count("response.mcp_list_tools.completed") == 1
    assert sorted(offered(chat_server.requests[0])) == ["add", "fail", "lookup"]
    # Why it failed: the item's `error` (openai-python's `McpListTools.error`), as the server logged it, in the
    # stream's `output_item.done` and in the stored response.
    assert failed.error, failed
    assert logged(serve, before, f"list_mcp_tools failed: {failed.error}")
    done = [e.item for e in events if e.type == "response.output_item.done" and e.item.type == "mcp_list_tools"]
    assert [item.error for item in done] == [failed.error, None]
    assert client.responses.retrieve(final.id).output[0].error == failed.error


def test_a_bad_authorization_is_refused_naming_the_field(client: openai.OpenAI, mcp_server: MCPTestServer) -> None:
    tools: Any = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "authorization": 7}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", tools=tools)
    assert info.value.body["param"] == "tools[0].authorization"  # type: ignore[index]
    # No connectors here: a connector_id without a server_url is refused naming it.
    tools = [{"type": "mcp", "server_label": "kit", "connector_id": "connector_dropbox"}]
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL, input="hi", tools=tools)
    assert info.value.body["param"] == "tools[0].connector_id"  # type: ignore[index]


def test_a_streamable_http_mcp_server(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    with MCPTestServer("http-kit", transport="streamable-http") as http_server:
        tools: Any = [
            {
                "type": "mcp",
                "server_label": "http",
                "server_url": http_server.url,
                "require_approval": "never",
                "authorization": "tok",
            }
        ]
        chat_server.script(
            [
                {"tool_calls": [{"name": "lookup", "arguments": {"query": "oolong"}}]},
                {"tool_calls": [{"name": "add", "arguments": {"a": 20, "b": 22}}]},
                {"text": "Found it; 42."},
            ]
        )
        final, _ = streamed(client, input="Find oolong, then add 20 and 22", tools=tools)
        assert final.status == "completed" and final.output_text == "Found it; 42."
        assert [item.type for item in final.output] == ["mcp_list_tools", "mcp_call", "mcp_call", "message"]
        assert [item.output for item in final.output[1:3]] == ["http-kit found: oolong", "42"]  # type: ignore[union-attr]
        assert http_server.calls == [("lookup", {"query": "oolong"}), ("add", {"a": 20, "b": 22})]
        assert http_server.listings == 1
        sent = http_server.request_headers
        assert sent and all(h.get("authorization") == "Bearer tok" for h in sent)
        # One client session for the whole request (its listing and both calls): one MCP session id.
        sessions = {h.get("mcp-session-id") for h in sent if h.get("mcp-session-id")}
        assert len(sessions) == 1, sessions


def test_an_mcp_server_that_does_not_answer_times_out_and_the_response_goes_on(
    chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chat_server.reset()
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel's backlog) and never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/sse"
    try:
        with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve"), "--mcp-timeout", "1") as s:
            oai = openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0, timeout=30)
            chat_server.script([{"text": "No tools today."}])
            tools: Any = [{"type": "mcp", "server_label": "silent", "server_url": url, "require_approval": "never"}]
            started = time.monotonic()
            final, _ = streamed(oai, input="Hello", tools=tools)
            took = time.monotonic() - started
            oai.close()
            assert logged(s, 0, "did not answer within 1 s"), s.log
    finally:
        silent.close()
    assert final.status == "completed" and final.output_text == "No tools today."
    assert 1 <= took < 5, took
    listing = final.output[0]
    assert listing.type == "mcp_list_tools" and listing.server_label == "silent" and listing.tools == []
    assert listing.error is not None and "did not answer within 1 s" in listing.error, listing
    assert "tools" not in chat_server.requests[0]


def test_a_non_streamed_mcp_call_and_retrieve(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools: Any = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"}]
    chat_server.script([{"tool_calls": [{"name": "add", "arguments": {"a": 40, "b": 2}}]}, {"text": "42."}])
    response = client.responses.create(model=MODEL, input="40 + 2?", tools=tools)
    assert response.status == "completed" and response.output_text == "42."
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    assert response.output[1].output == "42"  # type: ignore[union-attr]
    assert mcp_server.calls == [("add", {"a": 40, "b": 2})]
    stored = client.responses.retrieve(response.id)
    assert stored.model_dump() == response.model_dump()


def test_an_approval_over_the_websocket_with_store_false(
    serve: Serve, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    """The WebSocket mode, a `store: false` chain in the connection's cache: the approval request, then the
    approval on the same socket runs the call, the listing reused from the cached turn."""
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent
    from websockets.sync.client import connect

    chat_server.reset()
    mcp_server.reset()
    tools: Any = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "always"}]
    chat_server.script([{"tool_calls": [{"name": "add", "arguments": {"a": 6, "b": 7}}]}, {"text": "13."}])

    def turn(ws: Any, **request: Any) -> Response:
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "store": False, "tools": tools, **request}))
        events = []
        while True:
            event = json.loads(ws.recv(timeout=30))
            events.append(event)
            if event["type"] in ("response.completed", "response.incomplete", "response.failed", "error"):
                break
        typed = [construct_type(value=e, type_=ResponseStreamEvent) for e in events]
        return validate_stream(typed, response_cls=Response, schema_host="full")

    with connect(serve.base_url.replace("http://", "ws://") + "/responses") as ws:
        first = turn(ws, input="6 + 7?")
        assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request"]
        approval = {"type": "mcp_approval_response", "approval_request_id": first.output[1].id, "approve": True}
        second = turn(ws, input=[approval], previous_response_id=first.id)
    assert second.status == "completed" and second.output_text == "13."
    assert [item.type for item in second.output] == ["mcp_call", "message"]
    assert second.output[0].output == "13"  # type: ignore[union-attr]
    assert mcp_server.calls == [("add", {"a": 6, "b": 7})] and mcp_server.listings == 1
