"""End to end, MCP with an approval: the official openai client -> a real ``ogx run`` whose responses provider is
responses-rs -> the scripted Chat Completions server, with the testkit's MCP server (a real MCP server over SSE,
reached through OGX's MCP client), all on 127.0.0.1. Every stream goes through the strict validator and the
Open Responses schema ("full")."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from ogx_server import ogx_server, streamed_events

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.mcp_server import MCPTestServer

MODEL = "e2e-model"


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
def ogx(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ogx_server(tmp_path_factory.mktemp("ogx"), base_url=chat_server.base_url, model=MODEL) as base:
        yield base


@pytest.fixture
def client(ogx: str, chat_server: ScriptedChatServer, mcp_server: MCPTestServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    mcp_server.reset()
    oai = openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


def test_mcp_with_an_approval(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "always"}]
    chat_server.script(
        [
            {"tool_calls": [{"name": "lookup", "arguments": {"query": "green tea"}}]},
            {"text": "It has green tea."},
            {"text": "You're welcome."},
        ]
    )
    # 1. The model calls `lookup`, which needs approval: not run, the response asks and ends.
    first, events = streamed_events(client, model=MODEL, input="Does the shop have green tea?", tools=tools)
    assert first.status == "completed"
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert (request.server_label, request.name, request.arguments) == ("kit", "lookup", '{"query": "green tea"}')
    assert sorted(t.name for t in first.output[0].tools) == ["add", "fail", "lookup"]
    assert mcp_server.calls == [] and mcp_server.listings == 1
    # No argument events at all for a call that is not run (OGX's builtin streams them as
    # function_call_arguments before any item exists).
    assert not [e for e in events if "arguments" in e.type]

    # 2. Approved: the call runs first, then the model answers with its result.
    second, events = streamed_events(
        client,
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}],
        tools=tools,
    )
    assert [item.type for item in second.output] == ["mcp_call", "message"]
    call = second.output[0]
    assert call.status == "completed" and call.output == "testkit found: green tea" and call.error is None
    assert call.approval_request_id == request.id
    assert second.output_text == "It has green tea."
    assert mcp_server.calls == [("lookup", {"query": "green tea"})]
    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" not in types
    # mcp_call argument events only once the item exists
    added = next(
        i for i, e in enumerate(events) if e.type == "response.output_item.added" and e.item.type == "mcp_call"
    )
    assert types.index("response.mcp_call_arguments.delta") > added
    assert types.index("response.mcp_call.completed") > types.index("response.mcp_call_arguments.done")
    sent = chat_server.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == request.id and sent[-1]["content"] == "testkit found: green tea"
    # No second listing: the chain's mcp_list_tools item was reused (the server's one extra tools/list is the
    # MCP client's own, which lists after a call on a fresh session to check the result).
    assert mcp_server.listings == 2
    assert sorted(t["function"]["name"] for t in chat_server.requests[-1]["tools"]) == ["add", "fail", "lookup"]

    # 3. The chain goes on (not streamed): still no listing, the tools still offered.
    third = client.responses.create(model=MODEL, input="Thanks!", previous_response_id=second.id, tools=tools)
    assert third.output_text == "You're welcome." and [i.type for i in third.output] == ["message"]
    assert mcp_server.listings == 2
    assert sorted(t["function"]["name"] for t in chat_server.requests[-1]["tools"]) == ["add", "fail", "lookup"]

    # Stored and read back through OGX.
    stored = client.responses.retrieve(first.id)
    assert [item.type for item in stored.output] == ["mcp_list_tools", "mcp_approval_request"]
    items = client.responses.input_items.list(second.id)
    assert "mcp_approval_response" in [item.type for item in items.data]


def test_denied_call_allowed_tools_and_a_filter(
    client: openai.OpenAI, chat_server: ScriptedChatServer, mcp_server: MCPTestServer
) -> None:
    tools = [
        {
            "type": "mcp",
            "server_label": "kit",
            "server_url": mcp_server.url,
            "allowed_tools": ["add", "lookup"],
            "require_approval": {"never": ["add"]},
        }
    ]
    chat_server.script(
        [
            {
                "tool_calls": [
                    {"name": "add", "arguments": {"a": 1, "b": 2}},
                    {"name": "lookup", "arguments": {"query": "x"}},
                ]
            },
            {"text": "Not looking it up."},
        ]
    )
    first = client.responses.create(model=MODEL, input="go", tools=tools)
    # add runs (never needs approval), lookup waits; fail is not offered (allowed_tools)
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request", "mcp_call"]
    assert sorted(t["function"]["name"] for t in chat_server.requests[0]["tools"]) == ["add", "lookup"]
    assert mcp_server.calls == [("add", {"a": 1, "b": 2})]
    request = first.output[1]
    assert request.name == "lookup"
    second, _ = streamed_events(
        client,
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False, "reason": "no"}],
        tools=tools,
    )
    assert [item.type for item in second.output] == ["message"]
    assert mcp_server.calls == [("add", {"a": 1, "b": 2})]  # lookup never ran
    assert "denied" in chat_server.requests[-1]["messages"][-1]["content"]
