"""MCP through llama-stack's own client helpers (0.2.12), so headers, transports and errors behave
as they do for llama-stack's Python implementation."""

from __future__ import annotations

from typing import Any


async def list_mcp_tools(endpoint: str, headers: dict[str, Any]) -> Any:
    from llama_stack.providers.utils.tools.mcp import list_mcp_tools as _list

    return await _list(endpoint=endpoint, headers=headers)


async def invoke_mcp_tool(endpoint: str, headers: dict[str, Any], tool_name: str, kwargs: dict[str, Any]) -> Any:
    from llama_stack.providers.utils.tools.mcp import invoke_mcp_tool as _invoke

    return await _invoke(endpoint=endpoint, headers=headers, tool_name=tool_name, kwargs=kwargs)
