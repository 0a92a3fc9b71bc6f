"""MCP under llama-stack 0.2.12: the listing of a server already in the chain's context is reused (no second
listing), and ``require_approval`` other than "never" is refused naming the field (0.2.12's item unions have
no approval items, so its records could not carry one)."""

from __future__ import annotations

import asyncio
import importlib.metadata

import pytest

if importlib.metadata.version("llama_stack") != "0.2.12":
    pytest.skip("llama-stack 0.2.12 MCP suite (installed: other version)", allow_module_level=True)

pytest_plugins = ["conftest_0212"]

from conftest import MODEL, ToolCall, assert_rejected_stream  # noqa: E402
from conftest_0212 import collect_0212, mcp_tooldef  # noqa: E402
from llama_stack.apis.agents.openai_responses import OpenAIResponseInputToolMCP  # noqa: E402
from llama_stack.apis.common.content_types import TextContentItem  # noqa: E402
from llama_stack.apis.tools import ToolInvocationResult  # noqa: E402

URL = "http://kit.test/sse"


@pytest.fixture
def create(impl_0212, stream):
    async def _create(input, **kw):
        kw.setdefault("model", MODEL)
        result = await asyncio.wait_for(impl_0212.create_openai_response(input=input, stream=stream, **kw), 10)
        return await collect_0212(result)

    return _create


def kit(**kw) -> OpenAIResponseInputToolMCP:
    return OpenAIResponseInputToolMCP(server_label="kit", server_url=URL, **kw)


async def test_a_chain_lists_a_server_once(create, inference, mcp, stream):
    mcp.serve(URL, mcp_tooldef("lookup", "Look up", "query"), mcp_tooldef("other", "Other"))
    mcp.invoke.return_value = ToolInvocationResult(content=[TextContentItem(text="found")])
    inference.script.tool_calls(ToolCall("call_1", "lookup", '{"query": "x"}'))
    inference.script.text("Found.")
    inference.script.text("Again.")
    first, _ = await create("look x up", tools=[kit()], store=True)
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_call", "message"]
    second, _ = await create("and again", tools=[kit()], previous_response_id=first.id, store=True)
    assert [item.type for item in second.output] == ["message"]
    mcp.list.assert_awaited_once()
    assert sorted(t["function"]["name"] for t in inference.script.call(2)["tools"]) == ["lookup", "other"]
    # A request whose allowed_tools names a tool the listing lacks lists again.
    inference.script.text("Listed.")
    await create("new", tools=[kit(allowed_tools=["brand_new"])], previous_response_id=second.id, store=True)
    assert mcp.list.await_count == 2


async def test_require_approval_is_refused_naming_the_field(create, mcp, stream):
    mcp.serve(URL, mcp_tooldef("lookup", "Look up", "query"))
    if stream:
        _, events = await create("x", tools=[kit(require_approval="always")])
        assert_rejected_stream(events, "invalid_request", "tools[0].require_approval")
    else:
        with pytest.raises(ValueError, match=r"tools\[0\]\.require_approval"):
            await create("x", tools=[kit(require_approval="always")])
    mcp.list.assert_not_awaited()
