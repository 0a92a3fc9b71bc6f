"""MCP approvals across providers on one store: an approval asked by one of OGX's builtin and responses-rs is
answered through the other, which reads the request from the first one's record and runs the call on the
testkit's real MCP server. (Not streamed on the builtin's side: its stream sends MCP arguments as
function_call_arguments events before any item exists, which the strict validator refuses.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest.mock import AsyncMock

import pytest
from ogx_api import CreateResponseRequest, RetrieveResponseRequest
from ogx_helpers import MODEL, Script, ToolCall, collect
from test_ogx_store_compat import both

from responses_rs.testkit.mcp_server import MCPTestServer


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[MCPTestServer]:
    with MCPTestServer() as server:
        yield server


@pytest.fixture
def mcp(mcp_server: MCPTestServer) -> MCPTestServer:
    mcp_server.reset()
    return mcp_server


async def create(impl: Any, stream: bool = False, **fields: Any) -> Any:
    response, _ = await collect(
        await impl.create_openai_response(CreateResponseRequest(model=MODEL, stream=stream, **fields))
    )
    return response


@pytest.mark.parametrize("asker", ["ours", "builtin"])
async def test_an_approval_asked_by_one_is_answered_through_the_other(
    tmp_path: Any, inference: AsyncMock, script: Script, mcp: MCPTestServer, asker: str
) -> None:
    builtin, ours = await both(tmp_path, inference)
    first_impl, second_impl = (ours, builtin) if asker == "ours" else (builtin, ours)
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp.url, "require_approval": "always"}]
    call = [ToolCall("lookup", {"query": "tea"})]
    script.turns.append(call)
    first = await create(first_impl, input="find tea", tools=tools, stream=first_impl is ours)
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_approval_request"]
    assert mcp.calls == []
    request = first.output[1]
    # The other provider reads it from the store as it reads its own.
    stored = await second_impl.get_openai_response(RetrieveResponseRequest(response_id=first.id))
    assert stored.output[1].type == "mcp_approval_request" and stored.output[1].id == request.id

    if second_impl is builtin:
        script.turns.append(call)  # the builtin asks the model again and matches the call to the approval
    script.turns.append("tea found")
    answer = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
    second = await create(
        second_impl, input=[answer], tools=tools, previous_response_id=first.id, stream=second_impl is ours
    )
    assert mcp.calls == [("lookup", {"query": "tea"})]
    assert [item.type for item in second.output][-2:] == ["mcp_call", "message"]
    assert second.output[-2].output == "testkit found: tea"
    # And the first provider reads the answer's record back.
    again = await first_impl.get_openai_response(RetrieveResponseRequest(response_id=second.id))
    assert [item.type for item in again.output] == [item.type for item in second.output]
