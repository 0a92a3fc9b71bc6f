"""Fixtures and helpers for the llama-stack 0.2.12 suites (``test_responses_0212.py``,
``test_store_compat_0212.py``), which load this module with ``pytest_plugins = ["conftest_0212"]``.

It builds on ``conftest.py`` (scripted inference, ``mode`` parametrisation, ``collect``) and adds what
only the 0.2.12 contract has: a real ``ResponsesStore`` (sqlite in ``tmp_path``) that records how it
was called, a vector_io mock answering with llama-stack ``VectorStoreSearchResponsePage`` objects, a
tool groups mock that also knows ``knowledge_search``, and patched MCP client functions.

Imports are plain: on a llama-stack other than 0.2.12 the importing test modules skip before this
module is loaded; on 0.2.12 anything missing must fail the run.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from conftest import (
    MODEL,
    OPENAI_EFFECTIVE_PARAMS,
    WEB_SEARCH_TOOLDEF,
    assert_llama_stack_record_params,
    collect,
    impl_class,
    ls_dump,
    make_inference,
    make_tool_runtime,
)
from llama_stack.apis.agents.openai_responses import (
    OpenAIResponseInputMessageContentText,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseOutputMessageContentOutputText,
)
from llama_stack.apis.inference.inference import (
    OpenAIAssistantMessageParam,
    OpenAIChatCompletionContentPartTextParam,
    OpenAIToolMessageParam,
)
from llama_stack.apis.tools import ListToolDefsResponse, ToolDef, ToolGroups, ToolParameter
from llama_stack.apis.vector_io import (
    VectorIO,
    VectorStoreContent,
    VectorStoreSearchResponse,
    VectorStoreSearchResponsePage,
)
from llama_stack.providers.utils.responses.responses_store import ResponsesStore
from llama_stack.providers.utils.sqlstore import sqlalchemy_sqlstore
from llama_stack.providers.utils.sqlstore.sqlstore import SqliteSqlStoreConfig
from pydantic import BaseModel, ConfigDict
from stream_validator import validate_stream

# The tool definition llama-stack's rag runtime registers for file_search (builtin::rag).
KNOWLEDGE_SEARCH_TOOLDEF = ToolDef(
    name="knowledge_search",
    description="Search for information in a database.",
    parameters=[
        ToolParameter(
            name="query",
            parameter_type="string",
            description="The query to search for. Can be a natural language sentence or keywords.",
            required=True,
        )
    ],
)

TOOLDEFS = {"web_search": WEB_SEARCH_TOOLDEF, "knowledge_search": KNOWLEDGE_SEARCH_TOOLDEF}


# --------------------------------------------------------------------------------------------
# the real responses store, recording its calls
# --------------------------------------------------------------------------------------------


class SpyResponsesStore(ResponsesStore):
    """llama-stack's own ``ResponsesStore`` over sqlite, recording every call as ``(args, kwargs)``."""

    def __init__(self, db_path: str):
        super().__init__(SqliteSqlStoreConfig(db_path=db_path), policy=[])
        self.db_path = db_path
        self.calls: dict[str, list[tuple[tuple, dict]]] = defaultdict(list)

    async def store_response_object(self, *args, **kwargs):
        self.calls["store_response_object"].append((args, dict(kwargs)))
        return await super().store_response_object(*args, **kwargs)

    async def get_response_object(self, *args, **kwargs):
        self.calls["get_response_object"].append((args, dict(kwargs)))
        return await super().get_response_object(*args, **kwargs)

    async def list_responses(self, *args, **kwargs):
        self.calls["list_responses"].append((args, dict(kwargs)))
        return await super().list_responses(*args, **kwargs)

    async def list_response_input_items(self, *args, **kwargs):
        self.calls["list_response_input_items"].append((args, dict(kwargs)))
        return await super().list_response_input_items(*args, **kwargs)

    def stored(self) -> list[dict[str, Any]]:
        """The keyword arguments of every ``store_response_object`` call (asserting keywords were used)."""
        out = []
        for args, kwargs in self.calls["store_response_object"]:
            assert args == (), f"store_response_object must be called with keywords, got positional {args!r}"
            assert set(kwargs) == {"response_object", "input"}, kwargs
            out.append(kwargs)
        return out


async def make_responses_store(db_path) -> SpyResponsesStore:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    store = SpyResponsesStore(str(db_path))
    await store.initialize()
    return store


def stored_rows(db_path) -> dict[str, dict[str, Any]]:
    """The ``response_object`` JSON of every row of the sqlite file, by response id."""
    with sqlite3.connect(str(db_path)) as conn:
        rows = conn.execute("SELECT id, response_object FROM openai_responses").fetchall()
    return {rid: json.loads(raw) if isinstance(raw, str) else raw for rid, raw in rows}


@pytest.fixture
async def sql_engines() -> AsyncIterator[list]:
    """Every SQLAlchemy engine llama-stack's sqlstore creates during the test (it makes a throwaway one
    per ``create_table``), disposed while the test's event loop still runs; otherwise aiosqlite's
    worker threads report to a closed loop when the engines are garbage collected later."""
    engines: list = []
    real = sqlalchemy_sqlstore.create_async_engine

    def tracking(*args, **kwargs):
        engine = real(*args, **kwargs)
        engines.append(engine)
        return engine

    with patch.object(sqlalchemy_sqlstore, "create_async_engine", tracking):
        yield engines
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def responses_store(tmp_path, sql_engines) -> SpyResponsesStore:
    return await make_responses_store(tmp_path / "responses" / "responses.db")


# --------------------------------------------------------------------------------------------
# collaborators
# --------------------------------------------------------------------------------------------


def make_tool_groups_0212() -> AsyncMock:
    api = AsyncMock(spec=ToolGroups)
    api.get_tool.side_effect = lambda name, *a, **k: TOOLDEFS[name]
    return api


def page(query: str, *hits: tuple[str, str, float, str], attributes: dict | None = None):
    """A llama-stack search page; each hit is ``(file_id, filename, score, text)``."""
    return VectorStoreSearchResponsePage(
        search_query=query,
        data=[
            VectorStoreSearchResponse(
                file_id=file_id,
                filename=filename,
                score=score,
                attributes=attributes,
                content=[VectorStoreContent(type="text", text=text)],
            )
            for file_id, filename, score, text in hits
        ],
    )


def make_vector_io(pages: dict[str, Any] | None = None) -> AsyncMock:
    """``openai_search_vector_store`` answers per ``vector_store_id``: a page, or an exception to raise."""
    api = AsyncMock(spec=VectorIO)
    pages = pages if pages is not None else {}

    def search(*args, vector_store_id=None, query=None, **kwargs):
        answer = pages.get(vector_store_id, VectorStoreSearchResponsePage(search_query=query or "", data=[]))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    api.openai_search_vector_store.side_effect = search
    api.pages = pages
    return api


@pytest.fixture
def tool_groups_0212() -> AsyncMock:
    return make_tool_groups_0212()


@pytest.fixture
def vector_io() -> AsyncMock:
    return make_vector_io()


def mcp_tooldef(name: str, description: str, *params: str) -> ToolDef:
    """What llama-stack's ``list_mcp_tools`` makes of an MCP tool (every parameter required)."""
    return ToolDef(
        name=name,
        description=description,
        parameters=[
            ToolParameter(name=p, parameter_type="string", description=f"the {p}", required=True) for p in params
        ],
        metadata={"endpoint": "set by the fixture"},
    )


@dataclass
class McpPatch:
    """``responses_rs._mcp.list_mcp_tools`` / ``invoke_mcp_tool`` replaced by AsyncMocks."""

    list: AsyncMock
    invoke: AsyncMock
    servers: dict[str, list[ToolDef]] = field(default_factory=dict)

    def serve(self, endpoint: str, *tools: ToolDef) -> McpPatch:
        self.servers[endpoint] = list(tools)
        return self


@pytest.fixture
def mcp():
    state = McpPatch(list=AsyncMock(), invoke=AsyncMock())

    def listing(*args, endpoint=None, headers=None, **kwargs):
        return ListToolDefsResponse(data=state.servers[endpoint])

    state.list.side_effect = listing
    with (
        patch("responses_rs._mcp.list_mcp_tools", state.list),
        patch("responses_rs._mcp.invoke_mcp_tool", state.invoke),
    ):
        yield state


# --------------------------------------------------------------------------------------------
# the implementation under test
# --------------------------------------------------------------------------------------------


def rs_class():
    from responses_rs import OpenAIResponsesImpl

    return OpenAIResponsesImpl


def ls_class():
    from llama_stack.providers.inline.agents.meta_reference.openai_responses import OpenAIResponsesImpl

    return OpenAIResponsesImpl


@pytest.fixture
def impl_0212(inference, tool_groups_0212, tool_runtime, responses_store, vector_io):
    """The implementation under test: ours, or llama-stack's with ``RESPONSES_IMPL=llamastack`` (see
    conftest.py; useful to see which expectations the reference implementation meets)."""
    return impl_class()(
        inference_api=inference,
        tool_groups_api=tool_groups_0212,
        tool_runtime_api=tool_runtime,
        responses_store=responses_store,
        vector_io_api=vector_io,
    )


def build_impl(responses_store, *, chunk_style: str = "llama", vector_io=None):
    """The implementation under test outside the ``mode`` parametrisation (tests that do not stream)."""
    return impl_class()(
        make_inference(chunk_style),
        make_tool_groups_0212(),
        make_tool_runtime(),
        responses_store,
        vector_io if vector_io is not None else make_vector_io(),
    )


# --------------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------------

# llama-stack 0.2.12 (and still 0.2.20) names the MCP argument events "response.mcp_call.arguments.*";
# OpenAI (and openai-python, which ``validate_stream`` checks against) spells them
# "response.mcp_call_arguments.*". Everything else about those events is the same.
LLAMA_STACK_TO_OPENAI_TYPES = {
    "response.mcp_call.arguments.delta": "response.mcp_call_arguments.delta",
    "response.mcp_call.arguments.done": "response.mcp_call_arguments.done",
}


class _Respelled(BaseModel):
    model_config = ConfigDict(extra="allow")


def validate_stream_0212(events: list) -> OpenAIResponseObject:
    """``validate_stream`` on the stream, with llama-stack's spelling of the MCP argument events mapped to
    OpenAI's (the events themselves are checked unchanged: every field, ordering, item windows)."""
    view = []
    for event in events:
        openai_type = LLAMA_STACK_TO_OPENAI_TYPES.get(getattr(event, "type", None))
        if openai_type is None:
            view.append(event)
        else:
            view.append(_Respelled(**{**json.loads(event.model_dump_json()), "type": openai_type}))
    return validate_stream(view)


async def collect_0212(result) -> tuple[OpenAIResponseObject, list]:
    """-> (final response, events); a stream is drained (with conftest's timeout) and validated."""
    final, events = await collect(result, validate=False)
    if events:
        final = validate_stream_0212(events)
    return final, events


# --------------------------------------------------------------------------------------------
# reading what inference received / what was stored
# --------------------------------------------------------------------------------------------


def text_of(content) -> str:
    """Text of a chat message / Responses item content given as str or a list of text parts."""
    if isinstance(content, str):
        return content
    assert isinstance(content, list), f"unexpected content {content!r}"
    texts = []
    for part in content:
        assert isinstance(
            part,
            OpenAIChatCompletionContentPartTextParam
            | OpenAIResponseInputMessageContentText
            | OpenAIResponseOutputMessageContentOutputText,
        ), f"non-text part {part!r}"
        texts.append(part.text)
    return "".join(texts)


def summarize(messages: list) -> list[tuple[str, str]]:
    """Chat messages as ``[(role, text)]``; tool calls / results spelled out."""
    out = []
    for m in messages:
        if isinstance(m, OpenAIAssistantMessageParam) and m.tool_calls:
            calls = ",".join(f"{t.id}:{t.function.name}:{t.function.arguments}" for t in m.tool_calls)
            out.append(("assistant", "tool_calls:" + calls))
        elif isinstance(m, OpenAIToolMessageParam):
            out.append(("tool", f"{m.tool_call_id}:{text_of(m.content)}"))
        else:
            out.append((m.role, text_of(m.content)))
    return out


def conversation(messages: list) -> list[tuple[str, str]]:
    """Only the plain text turns (system / user / assistant text), without tool calls and results."""
    return [(role, text) for role, text in summarize(messages) if role != "tool" and not text.startswith("tool_calls:")]


def dump(response) -> dict[str, Any]:
    """A response on llama-stack's own field set and item shapes (``conftest.ls_dump``)."""
    return ls_dump(response)


def item_summary(items: list) -> list[tuple[str, str]]:
    """Responses items as ``[(role or type, text)]``."""
    out = []
    for item in items:
        if isinstance(item, OpenAIResponseMessage):
            out.append((item.role, text_of(item.content)))
        else:
            out.append((item.type, ""))
    return out


def chat_tool_names(tools) -> list[str]:
    assert tools is not None, "inference was offered no tools"
    names = []
    for t in tools:
        d = t.model_dump() if isinstance(t, BaseModel) else t
        assert d["type"] == "function", d
        names.append(d["function"]["name"])
    return names


def chat_tool(tools, name: str) -> dict:
    for t in tools:
        d = t.model_dump() if isinstance(t, BaseModel) else t
        if d["function"]["name"] == name:
            return d["function"]
    raise AssertionError(f"no chat tool {name!r} in {tools!r}")


__all__ = [
    "KNOWLEDGE_SEARCH_TOOLDEF",
    "OPENAI_EFFECTIVE_PARAMS",
    "assert_llama_stack_record_params",
    "MODEL",
    "McpPatch",
    "SpyResponsesStore",
    "build_impl",
    "chat_tool",
    "chat_tool_names",
    "collect_0212",
    "conversation",
    "dump",
    "item_summary",
    "ls_class",
    "make_responses_store",
    "make_tool_groups_0212",
    "make_vector_io",
    "mcp_tooldef",
    "page",
    "rs_class",
    "stored_rows",
    "summarize",
    "text_of",
    "validate_stream_0212",
]
