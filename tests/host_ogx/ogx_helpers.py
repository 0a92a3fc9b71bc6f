"""The OGX (1.5) contract suites' helpers and fixtures: `AsyncMock` collaborators where the outside world is
(inference, tools) and OGX's own `ResponsesStore` on a real sqlite file. The fixtures are registered by this
directory's ``conftest.py``; suites import the helpers from here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import AsyncMock

import pytest
from ogx.core.storage.datatypes import ResponsesStoreReference, SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends, shutdown_sqlstore_backends
from ogx.providers.utils.responses.responses_store import ResponsesStore
from ogx_api import (
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionToolCall,
    OpenAIChatCompletionToolCallFunction,
    OpenAIChatCompletionUsage,
    OpenAIChoiceDelta,
    OpenAIChunkChoice,
    OpenAIResponseObject,
)
from stream_validator import validate_stream

MODEL = "scripted-model"
STREAM_TIMEOUT_S = 10


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = "call_1"


@dataclass
class Script:
    """What the model answers, one entry per inference call: a text, or a list of tool calls."""

    turns: list[str | list[ToolCall]] = field(default_factory=list)
    requests: list[Any] = field(default_factory=list)


def _chunk(delta: OpenAIChoiceDelta | None, finish_reason: str | None = None, usage: Any = None) -> Any:
    choices = [] if delta is None else [OpenAIChunkChoice(index=0, delta=delta, finish_reason=finish_reason)]
    return OpenAIChatCompletionChunk(
        id="chatcmpl-1", created=0, model=MODEL, object="chat.completion.chunk", choices=choices, usage=usage
    )


async def _chunks(answer: str | list[ToolCall]) -> AsyncIterator[Any]:
    if isinstance(answer, str):
        words = answer.split(" ")
        for i, word in enumerate(words):
            yield _chunk(OpenAIChoiceDelta(content=word if i == 0 else " " + word))
        yield _chunk(OpenAIChoiceDelta(), "stop")
    else:
        for index, call in enumerate(answer):
            function = OpenAIChatCompletionToolCallFunction(name=call.name, arguments=json.dumps(call.arguments))
            tool_call = OpenAIChatCompletionToolCall(index=index, id=call.id, type="function", function=function)
            yield _chunk(OpenAIChoiceDelta(tool_calls=[tool_call]))
        yield _chunk(OpenAIChoiceDelta(), "tool_calls")
    yield _chunk(None, usage=OpenAIChatCompletionUsage(prompt_tokens=7, completion_tokens=4, total_tokens=11))


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def inference(script: Script) -> AsyncMock:
    """OGX's inference API: `openai_chat_completion(params)` answering from the script."""

    async def openai_chat_completion(params: Any) -> Any:
        script.requests.append(params)
        assert script.turns, f"unexpected inference call: {params}"
        return _chunks(script.turns.pop(0))

    api = AsyncMock()
    api.openai_chat_completion.side_effect = openai_chat_completion
    return api


@pytest.fixture(autouse=True)
async def close_sql_stores() -> AsyncIterator[None]:
    """Close the sqlite engines OGX caches per backend before the test's event loop ends."""
    yield
    await shutdown_sqlstore_backends()


@pytest.fixture
def db_path(tmp_path: Any) -> str:
    return str(tmp_path / "sql_store.db")


async def make_store(db_path: str) -> ResponsesStore:
    """OGX's own responses store on a sqlite file, as `config.persistence.responses` makes it."""
    register_sqlstore_backends({"sql_default": SqliteSqlStoreConfig(db_path=db_path)})
    store = ResponsesStore(ResponsesStoreReference(backend="sql_default", table_name="responses"), [])
    await store.initialize()
    return store


@pytest.fixture
async def store(db_path: str) -> ResponsesStore:
    return await make_store(db_path)


@pytest.fixture
def impl(inference: AsyncMock, store: ResponsesStore) -> Any:
    from responses_rs.ogx import OGXResponsesImpl

    return OGXResponsesImpl(
        inference_api=inference,
        responses_store=store,
        tool_groups_api=AsyncMock(),
        tool_runtime_api=AsyncMock(),
        vector_io_api=AsyncMock(),
    )


@pytest.fixture(params=[False, True], ids=["blocking", "stream"])
def stream(request: Any) -> bool:
    return request.param


async def collect(result: Any) -> tuple[Any, list[Any]]:
    """-> (final response, events). A stream is drained (with a timeout) and validated: every event
    through the stream validator, each against the Open Responses schema with host "full"."""
    if isinstance(result, OpenAIResponseObject):
        return result, []
    events: list[Any] = []

    async def drain() -> None:
        async for event in result:
            events.append(event)

    await asyncio.wait_for(drain(), STREAM_TIMEOUT_S)
    final = validate_stream(events, response_cls=OpenAIResponseObject, schema_host="full")
    return final, events
