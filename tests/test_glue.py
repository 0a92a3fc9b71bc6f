"""The PyO3 glue and the driver's Python-facing guarantees, under whichever llama-stack is installed:
panics become ordinary exceptions, the hot-path event objects are real, independent pydantic events,
cancellation and contextvars behave as in plain Python."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import re
import weakref
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from pydantic import BaseModel

import responses_rs
from responses_rs import _core
from responses_rs._driver import _event_factory
from responses_rs.events import EVENT_CLASSES, ResponseTextDeltaEvent


def _chunk(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> ChatCompletionChunk:
    delta: dict[str, Any] = {"content": content}
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 1,
            "model": "m",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )


def _turn(**kwargs: Any) -> _core.Turn:
    turn = _core.Turn(_event_factory(), "m", "hi", None, emit_events=True, store=False, stream_inference=True, **kwargs)
    action = turn.next_action()
    assert action[0] == "infer"
    assert [e.type for e in turn.drain()] == ["response.created", "response.in_progress"]
    return turn


def test_a_rust_panic_is_an_ordinary_exception() -> None:
    with pytest.raises(responses_rs.InternalError, match="boom") as info:
        _core._panic_for_tests("boom")
    # Not pyo3's PanicException (a BaseException that `except Exception` would let through).
    assert isinstance(info.value, Exception)
    assert isinstance(info.value, RuntimeError)


def test_calls_out_of_order_raise_driver_protocol_error() -> None:
    turn = _core.Turn(_event_factory(), "m", "hi", None)
    with pytest.raises(responses_rs.DriverProtocolError):
        turn.stored()
    with pytest.raises(responses_rs.DriverProtocolError):
        turn.response_json()


def test_malformed_input_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^input\[1\]\.content\[0\]\.type: unknown content part type 'input_audio'"):
        _core.Turn(
            _event_factory(),
            "m",
            [{"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "input_audio"}]}],
        )
    with pytest.raises(ValueError, match=r"^tools\[0\]\.type: unknown tool type 'computer'"):
        _core.Turn(_event_factory(), "m", "x", [{"type": "computer"}])


def test_fast_path_events_match_validated_events() -> None:
    assert "response.output_text.delta" in _event_factory().fast_types
    turn = _turn()
    events = turn.feed(_chunk("Hel"))
    assert isinstance(events, list)  # the first text also opens the item and its content part
    delta = events[-1]
    assert isinstance(delta, ResponseTextDeltaEvent) and isinstance(delta, BaseModel)
    dumped = json.loads(delta.model_dump_json())
    # What validation would have built from the same JSON is the same event.
    again = EVENT_CLASSES[dumped["type"]].model_validate_json(delta.model_dump_json())
    assert again == delta
    assert dumped["delta"] == "Hel" and dumped["logprobs"] == [] and dumped["output_index"] == 0
    assert dumped["item_id"] == events[0].item.id


def test_collected_events_stay_distinct_and_unchanged() -> None:
    """Delta objects are reused only when nobody holds them: kept ones never change."""
    turn = _turn()
    kept = []
    for piece in ["a", "b", "c", "d", "e", "f", "g", "h"]:
        event = turn.feed(_chunk(piece))
        kept.append(event[-1] if isinstance(event, list) else event)
    assert [e.delta for e in kept] == list("abcdefgh")
    assert len({id(e) for e in kept}) == len(kept)
    assert [e.sequence_number for e in kept] == sorted(e.sequence_number for e in kept)


def test_events_held_by_weak_reference_or_dict_are_not_reused() -> None:
    turn = _turn()
    first = turn.feed(_chunk("x"))[-1]
    ref = weakref.ref(first)
    held_dict = first.__dict__
    seq = first.sequence_number
    del first
    gc.collect()
    # The event is still alive (the pool holds it) but someone can still see it: it must not change.
    for piece in "yzuvw":
        turn.feed(_chunk(piece))
    alive = ref()
    if alive is not None:
        assert alive.delta == "x" and alive.sequence_number == seq
    assert held_dict["delta"] == "x"


def test_tool_call_arguments_stream_with_reused_strings() -> None:
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    turn = _core.Turn(_event_factory(), "m", "hi", tools, emit_events=True, store=False, stream_inference=True)
    turn.next_action()
    turn.drain()
    first = turn.feed(_chunk(tool_calls=[{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]))
    assert first.type == "response.output_item.added"
    deltas = []
    for ch in '{"a": 1}':
        event = turn.feed(_chunk(tool_calls=[{"index": 0, "function": {"arguments": ch}}]))
        deltas.append((event.type, event.delta, event.output_index))
    assert "".join(d for _, d, _ in deltas) == '{"a": 1}'
    assert {t for t, _, _ in deltas} == {"response.function_call_arguments.delta"}


class _Chunks:
    """An inference stream that can be told to stop producing (to test cancellation)."""

    def __init__(self, pieces: list[str], gate: asyncio.Event | None = None) -> None:
        self.pieces = pieces
        self.gate = gate

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        if not self.pieces:
            raise StopAsyncIteration
        if self.gate is not None and len(self.pieces) == 1:
            await self.gate.wait()
        return _chunk(self.pieces.pop(0))


class _Inference:
    def __init__(self, stream: Any, seen: contextvars.ContextVar[str] | None = None) -> None:
        self.stream = stream
        self.var = seen
        self.seen_values: list[str] = []

    async def openai_chat_completion(self, **kwargs: Any) -> Any:
        if self.var is not None:
            self.seen_values.append(self.var.get())
        return self.stream


class _KV:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value


class _Nothing:
    pass


async def test_closing_a_stream_midway_stores_nothing() -> None:
    kv = _KV()
    impl = responses_rs.OpenAIResponsesImpl(kv, _Inference(_Chunks(["a", "b", "c"])), _Nothing(), _Nothing())
    stream = await impl.create_openai_response("hi", "m", stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            break
    await stream.aclose()
    assert kv.data == {}


async def test_cancelling_the_consumer_cancels_the_inference_wait() -> None:
    kv = _KV()
    gate = asyncio.Event()
    impl = responses_rs.OpenAIResponsesImpl(kv, _Inference(_Chunks(["a", "b"], gate)), _Nothing(), _Nothing())

    async def consume() -> list[str]:
        stream = await impl.create_openai_response("hi", "m", stream=True)
        return [event.type async for event in stream]

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert kv.data == {}


async def test_collaborators_see_the_callers_contextvars() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    var.set("req-42")
    inference = _Inference(_Chunks(["ok"]), seen=var)
    impl = responses_rs.OpenAIResponsesImpl(_KV(), inference, _Nothing(), _Nothing())
    stream = await impl.create_openai_response("hi", "m", stream=True)
    types = [event.type async for event in stream]
    assert types[-1] == "response.completed"
    assert inference.seen_values == ["req-42"]


# ------------------------------------------------------------------------------------------------
# Bad input and odd model output, through the glue


def _finish(turn: _core.Turn) -> dict[str, Any]:
    turn.end_inference()
    while turn.next_action()[0] != "done":
        pass
    return json.loads(turn.response_json())


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"model": 7}, "model"),
        ({"temperature": "hot"}, "temperature"),
        ({"text": "json"}, "text"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": "a\ud800b"}]}]},
            "input[0].content[0].text",
        ),
        ({"options": {"max_output_tokens": "lots"}}, "max_output_tokens"),
        ({"options": {"tool_choice": {"type": "function"}}}, "tool_choice.name"),
    ],
)
def test_bad_request_fields_are_value_errors_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    args = {"model": "m", "input": "hi"}
    args.update({k: kwargs.pop(k) for k in list(kwargs) if k in args})
    with pytest.raises(ValueError, match="^" + re.escape(field) + ":"):
        _core.Turn(_event_factory(), args["model"], args["input"], None, **kwargs)


def test_surrogates_from_the_model_are_joined_or_replaced() -> None:
    turn = _turn()
    # One emoji (U+1F600) as a JSON-escaped surrogate pair split across two chunks, then a lone half.
    for piece in ["smile \ud83d", "\ude00 and ", "\ud800", " done"]:
        turn.feed(_chunk(piece))
    response = _finish(turn)
    assert response["output"][0]["content"][0]["text"] == "smile \U0001f600 and \ufffd done"


def test_any_integer_tool_call_index_is_a_key() -> None:
    turn = _turn()
    for index in (-1, 2**40, 2**70):
        call = {"index": index, "id": f"c{index}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        turn.feed(_chunk(tool_calls=[call]))
    response = _finish(turn)
    assert [o["call_id"] for o in response["output"]] == ["c-1", f"c{2**40}", f"c{2**70}"]


def test_reasoning_refusal_usage_and_finish_reason_from_openai_sdk_chunks() -> None:
    turn = _turn()
    reasoning = _chunk()
    reasoning.choices[0].delta.__pydantic_extra__ = {"reasoning_content": "Think."}
    turn.feed(reasoning)
    turn.feed(_chunk("Partial"))
    last = _chunk()
    last.choices[0].finish_reason = "length"
    turn.feed(last)
    usage = ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 1,
            "model": "m",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )
    turn.feed(usage)
    response = _finish(turn)
    assert [o["type"] for o in response["output"]] == ["reasoning", "message"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["usage"]["input_tokens"] == 5 and response["usage"]["total_tokens"] == 8


def test_think_tags_are_split_only_when_asked() -> None:
    turn = _turn(split_think=True)
    for piece in ["<think>Hm", "m.</think>", "Yes."]:
        turn.feed(_chunk(piece))
    response = _finish(turn)
    assert [o["type"] for o in response["output"]] == ["reasoning", "message"]
    assert response["output"][1]["content"][0]["text"] == "Yes."
