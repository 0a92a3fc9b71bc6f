"""MCP tools under OGX 1.5 through OGX's own MCP client (``ogx.providers.utils.tools.mcp``) against the
testkit's real MCP server: listings, calls, ``allowed_tools``, ``require_approval`` with
``mcp_approval_request`` / ``mcp_approval_response``, listings reused along a chain, ``authorization``
and ``connector_id``. Inference is scripted; every stream goes through the validator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from ogx_api import CreateResponseRequest, InvalidParameterError, RetrieveResponseRequest
from ogx_helpers import MODEL, Script, ToolCall, collect

from responses_rs.testkit.mcp_server import MCPTestServer


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[MCPTestServer]:
    with MCPTestServer() as server:
        yield server


@pytest.fixture
def mcp(mcp_server: MCPTestServer) -> MCPTestServer:
    mcp_server.reset()
    return mcp_server


async def create(impl: Any, **fields: Any) -> Any:
    fields.setdefault("model", MODEL)
    response, _ = await collect(await impl.create_openai_response(CreateResponseRequest(**fields)))
    return response


def kinds(response: Any) -> list[str]:
    return [item.type for item in response.output]


def tool(mcp: MCPTestServer, **fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "kit", "server_url": mcp.url, **fields}


def offered(params: Any) -> list[str]:
    return sorted(t["function"]["name"] for t in params.tools or [])


async def test_listing_and_a_call_through_ogx_client(
    impl: Any, script: Script, mcp: MCPTestServer, stream: bool
) -> None:
    script.turns += [[ToolCall("add", {"a": 2, "b": 3})], "five"]
    response = await create(impl, input="2+3?", tools=[tool(mcp, allowed_tools=["add", "lookup"])], stream=stream)
    assert kinds(response) == ["mcp_list_tools", "mcp_call", "message"]
    assert sorted(t.name for t in response.output[0].tools) == ["add", "lookup"]
    assert offered(script.requests[0]) == ["add", "lookup"]  # allowed_tools: `fail` is not offered
    call = response.output[1]
    assert (call.name, call.server_label, call.output, call.error) == ("add", "kit", "5", None)
    assert mcp.calls == [("add", {"a": 2, "b": 3})]
    # One tools/list: the listing and the call share the request's MCP session (OGX's MCPSessionManager), so
    # the MCP client does not list again to check the call's result.
    assert mcp.listings == 1
    # The model got the result as the call's tool message.
    assert script.requests[1].messages[-1].content == "5"


async def test_an_mcp_error_result_fails_only_the_call(impl: Any, script: Script, mcp: MCPTestServer) -> None:
    script.turns += [[ToolCall("fail", {"reason": "boom"})], "it failed"]
    response = await create(impl, input="x", tools=[tool(mcp)], stream=True)
    assert kinds(response) == ["mcp_list_tools", "mcp_call", "message"]
    assert response.status == "completed"
    call = response.output[1]
    # OpenAI's error object on the wire (mcp 2.x servers hide the exception's text)
    assert call.output is None and call.status == "failed"
    assert call.error["type"] == "mcp_tool_execution_error" and "fail" in call.error["content"]
    assert mcp.calls == [("fail", {"reason": "boom"})]
    assert script.requests[1].messages[-1].content.startswith("Error")
    # stored as OGX's builtin stores it: the message as a string
    stored = await impl.get_openai_response(RetrieveResponseRequest(response_id=response.id))
    assert stored.output[1].error == call.error["content"]


async def test_approval_request_then_approved_call_along_a_chain(
    impl: Any, script: Script, mcp: MCPTestServer, stream: bool
) -> None:
    tools = [tool(mcp, require_approval="always")]
    script.turns.append([ToolCall("lookup", {"query": "tea"})])
    first = await create(impl, input="find tea", tools=tools, stream=stream)
    assert kinds(first) == ["mcp_list_tools", "mcp_approval_request"]
    request = first.output[1]
    assert (request.name, request.server_label, request.arguments) == ("lookup", "kit", '{"query": "tea"}')
    assert mcp.calls == [] and mcp.listings == 1  # not run
    stored = await impl.get_openai_response(RetrieveResponseRequest(response_id=first.id))
    assert stored.output[1].type == "mcp_approval_request" and stored.output[1].id == request.id

    script.turns.append("found it")
    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    second = await create(impl, input=[answer], tools=tools, previous_response_id=first.id, stream=stream)
    assert kinds(second) == ["mcp_call", "message"]
    assert second.output[0].output == "testkit found: tea"
    assert mcp.calls == [("lookup", {"query": "tea"})]
    # The approved call ran before inference, which saw it as a tool call and its result.
    messages = script.requests[1].messages
    assert messages[-2].tool_calls[0].id == request.id
    assert messages[-1].content == "testkit found: tea"
    # The server was not listed again: the chain's mcp_list_tools item was reused (the one tools/list the
    # server saw here is the MCP client's own, made after a call on a fresh session to check its result).
    assert mcp.listings == 2
    assert offered(script.requests[1]) == ["add", "fail", "lookup"]

    script.turns.append("bye")
    third = await create(impl, input="thanks", tools=tools, previous_response_id=second.id, stream=stream)
    assert kinds(third) == ["message"]
    assert mcp.listings == 2  # still no listing
    assert offered(script.requests[2]) == ["add", "fail", "lookup"]


async def test_a_denied_call_is_not_run(impl: Any, script: Script, mcp: MCPTestServer) -> None:
    tools = [tool(mcp, require_approval={"always": ["lookup"], "never": ["add"]})]
    script.turns.append([ToolCall("lookup", {"query": "x"})])
    first = await create(impl, input="x", tools=tools)
    request = first.output[1]
    script.turns.append("ok, not looking")
    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False, "reason": "no"}
    # The whole context replayed (no previous_response_id).
    replay = [{"type": "message", "role": "user", "content": "x"}, *first.output, answer]
    second = await create(impl, input=replay, tools=tools, stream=True)
    assert kinds(second) == ["message"]
    assert mcp.calls == []
    assert "denied" in script.requests[1].messages[-1].content
    assert mcp.listings == 1


async def test_an_answer_to_no_request_is_refused(impl: Any, mcp: MCPTestServer) -> None:
    answer = {"type": "mcp_approval_response", "approval_request_id": "mcpr_nope", "approve": True}
    with pytest.raises(ValueError, match=r"input\[0\]\.approval_request_id"):
        await create(impl, input=[answer], tools=[tool(mcp, require_approval="always")])


async def test_authorization_reaches_the_server_and_headers_may_not_carry_it(
    impl: Any, script: Script, mcp: MCPTestServer
) -> None:
    script.turns.append("hi")
    await create(impl, input="x", tools=[tool(mcp, authorization="tok-1", headers={"X-Trace": "t1"})])
    seen = mcp.request_headers
    assert seen and all(h.get("authorization") == "Bearer tok-1" and h.get("x-trace") == "t1" for h in seen)
    with pytest.raises(InvalidParameterError, match="Authorization"):
        await create(impl, input="x", tools=[tool(mcp, headers={"authorization": "Bearer x"})])


async def test_connector_id_is_resolved_through_the_connectors_api(
    impl: Any, script: Script, mcp: MCPTestServer
) -> None:
    class Connectors:
        """OGX's connectors API as far as the builtin uses it here (`get_connector(...).url`)."""

        def __init__(self) -> None:
            self.asked: list[str] = []

        async def get_connector(self, request: Any) -> Any:
            self.asked.append(request.connector_id)
            return type("Connector", (), {"url": mcp.url})()

    impl.connectors_api = Connectors()
    script.turns.append("hi")
    response = await create(impl, input="x", tools=[{"type": "mcp", "server_label": "kit", "connector_id": "c1"}])
    assert impl.connectors_api.asked == ["c1"]
    assert kinds(response) == ["mcp_list_tools", "message"] and mcp.listings == 1
