"""Shared fixtures for the responses-rs llama-stack compatibility suites (loaded by ``conftest.py`` when
llama-stack is installed; test modules import these names from ``conftest``).

Environment switch: ``RESPONSES_IMPL=llamastack`` points the ``impl`` fixture at llama-stack's own
Python ``OpenAIResponsesImpl`` instead of ``responses_rs.OpenAIResponsesImpl``; useful to see which
expectations the reference implementation meets.

Parametrisation: every test that (directly or through ``inference``) uses the ``mode`` fixture runs
in four modes -- non-streamed / streamed, with inference results built from llama-stack classes or
from openai SDK classes.  ``@pytest.mark.modes("stream-llama", ...)`` narrows the list for one test.

Imports are deliberately plain (no ``importorskip``): a missing llama-stack must fail the run.
``responses_rs`` is imported inside the ``impl`` fixture so that the validator's own tests and the
``RESPONSES_IMPL=llamastack`` runs work without the extension; a missing extension errors every test
that needs it.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import inspect
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import AsyncMock

import pytest
from llama_stack.apis.agents.openai_responses import OpenAIResponseObject
from llama_stack.apis.inference.inference import (
    Inference,
    OpenAIAssistantMessageParam,
    OpenAIChatCompletion,
    OpenAIChatCompletionChunk,
    OpenAIChatCompletionToolCall,
    OpenAIChatCompletionToolCallFunction,
    OpenAIChoice,
    OpenAIChoiceDelta,
    OpenAIChunkChoice,
)
from llama_stack.apis.tools import (
    ToolDef,
    ToolGroups,
    ToolInvocationResult,
    ToolParameter,
    ToolRuntime,
)
from llama_stack.providers.utils.kvstore.config import SqliteKVStoreConfig
from llama_stack.providers.utils.kvstore.sqlite.sqlite import SqliteKVStoreImpl
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.chat import chat_completion as oai_cc
from openai.types.chat import chat_completion_chunk as oai_chunk
from openai.types.chat.chat_completion_message import ChatCompletionMessage
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall,
    Function,
)
from stream_validator import validate_stream

LLAMA_STACK_VERSION = importlib.metadata.version("llama_stack")
IS_LLAMA_STACK_027 = LLAMA_STACK_VERSION == "0.2.7"
RESPONSES_IMPL = os.environ.get("RESPONSES_IMPL", "responses_rs").strip().lower()
USING_LLAMASTACK = RESPONSES_IMPL in ("llamastack", "llama_stack", "llama-stack")

MODEL = "meta-llama/Llama-3.2-3B-Instruct"
STORE_PREFIX = "openai_responses:"
STREAM_TIMEOUT_S = 10.0

ALL_MODES = ("nonstream-llama", "nonstream-openai", "stream-llama", "stream-openai")


# --------------------------------------------------------------------------------------------
# parametrisation over stream / chunk style
# --------------------------------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line("markers", "modes(*names): restrict the stream/chunk-style modes of a test")


def pytest_generate_tests(metafunc):
    if "mode" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "mode" in names:
            return
    marker = metafunc.definition.get_closest_marker("modes")
    modes = marker.args if marker else ALL_MODES
    unknown = set(modes) - set(ALL_MODES)
    assert not unknown, f"unknown modes {unknown}"
    metafunc.parametrize("mode", list(modes))


@pytest.fixture
def stream(mode: str) -> bool:
    return mode.startswith("stream")


@pytest.fixture
def chunk_style(mode: str) -> str:
    """'llama' -> llama-stack classes, 'openai' -> openai SDK classes for inference results."""
    return mode.split("-", 1)[1]


# --------------------------------------------------------------------------------------------
# kvstore: the real SqliteKVStoreImpl, counting calls
# --------------------------------------------------------------------------------------------


class SpyKVStore(SqliteKVStoreImpl):
    """Real sqlite kvstore that records how it was called."""

    def __init__(self, config: SqliteKVStoreConfig):
        super().__init__(config)
        self.set_calls: list[tuple[tuple, dict]] = []
        self.get_calls: list[tuple[tuple, dict]] = []

    async def set(self, *args, **kwargs):
        self.set_calls.append((args, dict(kwargs)))
        return await super().set(*args, **kwargs)

    async def get(self, *args, **kwargs):
        self.get_calls.append((args, dict(kwargs)))
        return await super().get(*args, **kwargs)

    def set_keys(self) -> list[str]:
        return [_bind(SqliteKVStoreImpl.set, a, k)["key"] for a, k in self.set_calls]

    def set_values(self) -> list[str]:
        return [_bind(SqliteKVStoreImpl.set, a, k)["value"] for a, k in self.set_calls]


async def make_kvstore(path) -> SpyKVStore:
    store = SpyKVStore(SqliteKVStoreConfig(db_path=str(path)))
    await store.initialize()
    return store


@pytest.fixture
async def kvstore(tmp_path) -> SpyKVStore:
    return await make_kvstore(tmp_path / "kv" / "responses.db")


def _bind(func: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Map a recorded call onto ``func``'s parameter names (``self`` excluded)."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())
    if params and params[0].name == "self":
        sig = sig.replace(parameters=params[1:])
    bound = sig.bind(*args, **kwargs)
    return dict(bound.arguments)


def bind_call(func: Callable, call) -> dict[str, Any]:
    """Named arguments of a ``unittest.mock`` call object, whether passed positionally or not."""
    return _bind(func, tuple(call.args), dict(call.kwargs))


# --------------------------------------------------------------------------------------------
# scripted inference
# --------------------------------------------------------------------------------------------


def tc_delta(index, *, id=None, name=None, arguments=None, type="function") -> dict:
    """A streamed tool-call delta. ``type=None`` models providers that omit it."""
    return {"index": index, "id": id, "name": name, "arguments": arguments, "type": type}


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str
    # how the arguments are split into streamed deltas; None -> 2 roughly equal halves
    pieces: list[str | None] | None = None


@dataclass
class Turn:
    kind: str  # "chunks" | "raise"
    chunks: list[dict] = field(default_factory=list)
    exc: BaseException | None = None
    # for kind == "raise" in a streamed call: raise after this many chunks (None: raise at call time)
    after_chunks: int | None = None


def _split(text: str, n: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


class InferenceScript:
    """A queue of model turns consumed by ``openai_chat_completion``.

    Every call is snapshotted (deep copy of its keyword arguments) in ``calls``.
    """

    def __init__(self, chunk_style: str = "llama"):
        self.chunk_style = chunk_style
        self.turns: list[Turn] = []
        self.repeat_last = False
        self.calls: list[dict[str, Any]] = []
        self.positional_calls: list[tuple] = []
        self.unexpected_calls = 0
        # if set, a streamed turn yields ``gate_after`` chunks, then waits for the gate before the rest
        self.gate: asyncio.Event | None = None
        self.gate_after = 1
        self.chunks_yielded = 0

    # ---- building turns -------------------------------------------------------------------
    def text(self, text: str, chunks: list[str] | None = None) -> InferenceScript:
        pieces = chunks if chunks is not None else _split(text, 3)
        assert "".join(pieces) == text
        body = [{"role": "assistant", "content": None}]
        body += [{"content": p} for p in pieces]
        body.append({"content": None, "finish_reason": "stop"})
        self.turns.append(Turn("chunks", body))
        return self

    def tool_calls(self, *calls: ToolCall, interleave: bool = False) -> InferenceScript:
        per_call: list[list[dict]] = []
        for i, call in enumerate(calls):
            pieces = call.pieces if call.pieces is not None else _split(call.arguments, 2)
            assert "".join(p or "" for p in pieces) == call.arguments
            deltas = [tc_delta(i, id=call.id, name=call.name, arguments="")]
            deltas += [tc_delta(i, arguments=p, type=None) for p in pieces]
            per_call.append(deltas)
        ordered: list[dict] = []
        if interleave:
            for k in range(max(len(d) for d in per_call)):
                ordered += [d[k] for d in per_call if k < len(d)]
        else:
            for d in per_call:
                ordered += d
        body = [{"role": "assistant", "content": None}]
        body += [{"tool_calls": [d]} for d in ordered]
        body.append({"finish_reason": "tool_calls"})
        self.turns.append(Turn("chunks", body))
        return self

    def raw(self, chunks: list[dict]) -> InferenceScript:
        """Explicit chunk dicts: keys content / role / tool_calls (list of tc_delta) / finish_reason."""
        self.turns.append(Turn("chunks", list(chunks)))
        return self

    def raise_(self, exc: BaseException, after_chunks: int | None = None) -> InferenceScript:
        """Fail: at call time (non-streamed, or after_chunks=None) or after ``after_chunks`` text chunks."""
        body = [{"content": f"partial{i} "} for i in range(after_chunks or 0)]
        self.turns.append(Turn("raise", body, exc=exc, after_chunks=after_chunks))
        return self

    # ---- answering calls -----------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        self.positional_calls.append(args)
        self.calls.append(copy.deepcopy(kwargs))
        index = len(self.calls) - 1
        if index < len(self.turns):
            turn = self.turns[index]
        elif self.repeat_last and self.turns:
            turn = self.turns[-1]
        else:
            self.unexpected_calls += 1
            raise AssertionError(f"unscripted inference call #{index + 1} (only {len(self.turns)} turns scripted)")
        stream = kwargs.get("stream")
        if turn.kind == "raise" and (not stream or turn.after_chunks is None):
            raise turn.exc
        if stream:
            return self._stream(turn)
        return self._completion(turn.chunks)

    async def _stream(self, turn: Turn) -> AsyncIterator[Any]:
        for i, chunk in enumerate(turn.chunks):
            if i >= self.gate_after and self.gate is not None:
                await self.gate.wait()
            self.chunks_yielded += 1
            yield self._chunk(chunk)
            await asyncio.sleep(0)
        if turn.kind == "raise":
            raise turn.exc

    # ---- object construction -------------------------------------------------------------
    def _chunk(self, c: dict):
        created = 1_700_000_000
        if self.chunk_style == "openai":
            tool_calls = None
            if c.get("tool_calls") is not None:
                tool_calls = [
                    oai_chunk.ChoiceDeltaToolCall(
                        index=t["index"],
                        id=t["id"],
                        type=t["type"],
                        function=oai_chunk.ChoiceDeltaToolCallFunction(name=t["name"], arguments=t["arguments"]),
                    )
                    for t in c["tool_calls"]
                ]
            delta = oai_chunk.ChoiceDelta(content=c.get("content"), role=c.get("role"), tool_calls=tool_calls)
            return ChatCompletionChunk(
                id="chatcmpl-123",
                choices=[oai_chunk.Choice(delta=delta, finish_reason=c.get("finish_reason"), index=0)],
                created=created,
                model=MODEL,
                object="chat.completion.chunk",
            )
        tool_calls = None
        if c.get("tool_calls") is not None:
            tool_calls = []
            for t in c["tool_calls"]:
                fn = OpenAIChatCompletionToolCallFunction(name=t["name"], arguments=t["arguments"])
                if t["type"] is None:
                    # providers (through the openai client) hand llama-stack type=None here
                    tool_calls.append(
                        OpenAIChatCompletionToolCall.model_construct(
                            index=t["index"], id=t["id"], type=None, function=fn
                        )
                    )
                else:
                    tool_calls.append(
                        OpenAIChatCompletionToolCall(index=t["index"], id=t["id"], type=t["type"], function=fn)
                    )
        delta = OpenAIChoiceDelta(content=c.get("content"), role=c.get("role"), tool_calls=tool_calls)
        return OpenAIChatCompletionChunk(
            id="chatcmpl-123",
            choices=[OpenAIChunkChoice(delta=delta, finish_reason=c.get("finish_reason") or "", index=0)],
            created=created,
            model=MODEL,
        )

    @staticmethod
    def aggregate(chunks: list[dict]) -> tuple[str | None, list[dict], str]:
        content: list[str] = []
        calls: dict[int, dict] = {}
        finish = "stop"
        for c in chunks:
            if c.get("content"):
                content.append(c["content"])
            if c.get("finish_reason"):
                finish = c["finish_reason"]
            for t in c.get("tool_calls") or []:
                cur = calls.setdefault(t["index"], {"id": None, "name": None, "arguments": ""})
                if t["id"]:
                    cur["id"] = t["id"]
                if t["name"]:
                    cur["name"] = t["name"]
                cur["arguments"] += t["arguments"] or ""
        ordered = [calls[i] for i in sorted(calls)]
        return ("".join(content) if content else None), ordered, finish

    def _completion(self, chunks: list[dict]):
        text, calls, finish = self.aggregate(chunks)
        if calls and text is None:
            text_value = None
        else:
            text_value = text or ""
        if self.chunk_style == "openai":
            tool_calls = [
                ChatCompletionMessageFunctionToolCall(
                    id=c["id"], type="function", function=Function(name=c["name"], arguments=c["arguments"])
                )
                for c in calls
            ] or None
            return ChatCompletion(
                id="chatcmpl-123",
                choices=[
                    oai_cc.Choice(
                        finish_reason=finish,
                        index=0,
                        message=ChatCompletionMessage(role="assistant", content=text_value, tool_calls=tool_calls),
                    )
                ],
                created=1_700_000_000,
                model=MODEL,
                object="chat.completion",
            )
        tool_calls = [
            OpenAIChatCompletionToolCall(
                index=i,
                id=c["id"],
                type="function",
                function=OpenAIChatCompletionToolCallFunction(name=c["name"], arguments=c["arguments"]),
            )
            for i, c in enumerate(calls)
        ] or None
        return OpenAIChatCompletion(
            id="chatcmpl-123",
            choices=[
                OpenAIChoice(
                    message=OpenAIAssistantMessageParam(content=text_value, tool_calls=tool_calls),
                    finish_reason=finish,
                    index=0,
                )
            ],
            created=1_700_000_000,
            model=MODEL,
        )

    # ---- inspection helpers --------------------------------------------------------------
    def call(self, i: int) -> dict[str, Any]:
        assert i < len(self.calls), f"expected at least {i + 1} inference calls, got {len(self.calls)}"
        assert not self.positional_calls[i], (
            f"openai_chat_completion must be called with keyword arguments, got positional {self.positional_calls[i]!r}"
        )
        return self.calls[i]

    def messages(self, i: int) -> list:
        return self.call(i)["messages"]


def make_inference(chunk_style: str = "llama") -> AsyncMock:
    api = AsyncMock(spec=Inference)
    script = InferenceScript(chunk_style)
    api.openai_chat_completion.side_effect = script
    api.script = script
    return api


@pytest.fixture
def inference(chunk_style) -> AsyncMock:
    return make_inference(chunk_style)


WEB_SEARCH_TOOLDEF = ToolDef(
    name="web_search",
    description="Search the web for information",
    parameters=[
        ToolParameter(name="query", parameter_type="string", description="The query to search for", required=True),
    ],
)

SEARCH_RESULT_TEXT = '{"query": "llamas", "top_k": [{"title": "Llama", "content": "Llamas are camelids."}]}'


def make_tool_groups() -> AsyncMock:
    api = AsyncMock(spec=ToolGroups)
    api.get_tool.return_value = WEB_SEARCH_TOOLDEF
    return api


def make_tool_runtime() -> AsyncMock:
    api = AsyncMock(spec=ToolRuntime)
    api.invoke_tool.return_value = ToolInvocationResult(content=SEARCH_RESULT_TEXT)
    return api


@pytest.fixture
def tool_groups() -> AsyncMock:
    return make_tool_groups()


@pytest.fixture
def tool_runtime() -> AsyncMock:
    return make_tool_runtime()


# --------------------------------------------------------------------------------------------
# the implementations
# --------------------------------------------------------------------------------------------


def llamastack_impl_class():
    from llama_stack.providers.inline.agents.meta_reference.openai_responses import OpenAIResponsesImpl

    return OpenAIResponsesImpl


def responses_rs_impl_class():
    from responses_rs import OpenAIResponsesImpl

    return OpenAIResponsesImpl


def impl_class():
    return llamastack_impl_class() if USING_LLAMASTACK else responses_rs_impl_class()


@pytest.fixture
def impl(kvstore, inference, tool_groups, tool_runtime):
    return impl_class()(kvstore, inference, tool_groups, tool_runtime)


# --------------------------------------------------------------------------------------------
# consuming results
# --------------------------------------------------------------------------------------------


async def collect(stream_or_response, *, validate: bool = True):
    """-> (final_response, events). Streams are drained (with a timeout) and validated."""
    if isinstance(stream_or_response, OpenAIResponseObject):
        return stream_or_response, []
    assert hasattr(stream_or_response, "__aiter__"), (
        f"expected an OpenAIResponseObject or an async iterator of events, got {type(stream_or_response)!r}"
    )
    events = []

    async def drain():
        async for event in stream_or_response:
            events.append(event)

    try:
        await asyncio.wait_for(drain(), STREAM_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(
            f"stream did not finish within {STREAM_TIMEOUT_S}s; got {[e.type for e in events]}"
        ) from None
    final = validate_stream(events) if validate else (events[-1].response if events else None)
    return final, events


@pytest.fixture(name="collect")
def collect_fixture():
    return collect


# --------------------------------------------------------------------------------------------
# comparing on llama-stack's fields
# --------------------------------------------------------------------------------------------

# Request parameters the full OpenAI response object reports with their effective values (top_p 1.0,
# parallel_tool_calls True, truncation "disabled", temperature 1.0 when unset) while the record stored
# for llama-stack keeps llama-stack's own values (None / False / what the request set).
OPENAI_EFFECTIVE_PARAMS = frozenset({"parallel_tool_calls", "temperature", "top_p", "truncation"})
LS_RESPONSE_FIELDS = frozenset(OpenAIResponseObject.model_fields)


def ls_dump(response) -> dict[str, Any]:
    """A response as llama-stack's own ``OpenAIResponseObject`` sees it: only llama-stack's fields (so not
    ``instructions``, ``usage``, ... that responses-rs carries on what it returns), items in llama-stack's
    shapes (no ``annotations`` on output text, an ``mcp_call`` error as its message string), and without
    the request parameters in ``OPENAI_EFFECTIVE_PARAMS`` (see ``assert_llama_stack_record_params``).

    The value is re-validated through llama-stack's class, so anything llama-stack cannot read fails."""
    d = json.loads(response.model_dump_json())
    d = {k: v for k, v in d.items() if k in LS_RESPONSE_FIELDS and k not in OPENAI_EFFECTIVE_PARAMS}
    fmt = (d.get("text") or {}).get("format")
    if isinstance(fmt, dict):
        # OpenAI's echo spells out `description: null` and `strict: false`; llama-stack keeps what was given.
        d["text"]["format"] = {k: v for k, v in fmt.items() if not (k in ("description", "strict") and not v)}
    for item in d.get("output") or []:
        if item.get("type") == "mcp_call" and isinstance(item.get("error"), dict):
            assert item["error"].get("type") == "mcp_tool_execution_error", item["error"]
            item["error"] = item["error"]["content"]
    return OpenAIResponseObject.model_validate(d).model_dump(exclude=set(OPENAI_EFFECTIVE_PARAMS))


def assert_llama_stack_record_params(record, temperature: float | None = None) -> None:
    """A record stored for llama-stack keeps llama-stack's values of the request parameters, not the
    effective values the full OpenAI object reports."""
    d = record if isinstance(record, dict) else json.loads(record.model_dump_json())
    got = {k: d.get(k) for k in OPENAI_EFFECTIVE_PARAMS}
    assert got == {"parallel_tool_calls": False, "temperature": temperature, "top_p": None, "truncation": None}


def assert_full_openai_params(response, temperature: float = 1.0) -> None:
    """What responses-rs returns carries OpenAI's effective request parameters."""
    got = (response.top_p, response.parallel_tool_calls, response.truncation, response.temperature)
    assert got == (1.0, True, "disabled", temperature)


def types_of(events) -> list[str]:
    return [e.type for e in events]


def assert_rejected_stream(events, code: str, field: str):
    """A streamed request refused before anything started: ``response.created``, then ``response.failed``."""
    assert types_of(events) == ["response.created", "response.failed"]
    assert [e.sequence_number for e in events] == [0, 1]
    created, failed = events[0].response, events[1].response
    assert created.status == "in_progress" and created.output == []
    assert failed.id == created.id and failed.status == "failed" and failed.output == []
    assert failed.error is not None and failed.error.code == code, failed.error
    assert field in failed.error.message, failed.error.message
