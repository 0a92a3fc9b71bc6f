"""The Python-object path (`Turn.feed` with openai SDK chunks, as the llama-stack and OGX hosts feed it):
a UTF-16 surrogate pair split across two pieces of one tool call's `function.arguments` is joined, per
call index; a half that never meets its other half becomes U+FFFD, the streamed deltas and the item's
arguments alike."""

from __future__ import annotations

import json
from typing import Any

from openai.types.chat import ChatCompletionChunk

from responses_rs import _core
from responses_rs._driver import _event_factory

TOOLS = [
    {"type": "function", "name": "f", "parameters": {"type": "object"}},
    {"type": "function", "name": "g", "parameters": {"type": "object"}},
]


def _chunk(tool_calls: list[dict[str, Any]]) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 1,
            "model": "m",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"tool_calls": tool_calls}, "finish_reason": None}],
        }
    )


def _events(result: Any) -> list[Any]:
    if result is None:
        return []
    return list(result) if isinstance(result, list) else [result]


def _run(deltas: list[tuple[int, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """Feed one chunk per `(index, arguments piece)` (a call's first one also names it), end the round:
    each call's concatenated argument deltas and its final `function_call` item's arguments, by call_id."""
    turn = _core.Turn(_event_factory(), "m", "hi", TOOLS, emit_events=True, store=False, stream_inference=True)
    assert turn.next_action()[0] == "infer"
    events = _events(turn.drain())
    seen: set[int] = set()
    for index, piece in deltas:
        call: dict[str, Any] = {"index": index, "function": {"arguments": piece}}
        if index not in seen:
            seen.add(index)
            call.update(id=f"call_{index}", type="function")
            call["function"]["name"] = "f" if index == 0 else "g"
        events += _events(turn.feed(_chunk([call])))
    turn.end_inference()
    events += _events(turn.drain())
    while turn.next_action()[0] != "done":
        events += _events(turn.drain())
    events += _events(turn.drain())
    call_ids = {e.item.id: e.item.call_id for e in events if e.type == "response.output_item.added"}
    streamed: dict[str, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            streamed[call_ids[e.item_id]] = streamed.get(call_ids[e.item_id], "") + e.delta
    response = json.loads(turn.response_json())
    final = {o["call_id"]: o["arguments"] for o in response["output"] if o["type"] == "function_call"}
    return streamed, final


def test_a_pair_split_across_two_argument_pieces_is_one_character() -> None:
    streamed, final = _run([(0, '{"mood": "\ud83d'), (0, '\ude00"}')])
    assert final == {"call_0": '{"mood": "\U0001f600"}'}
    assert streamed == final


def test_interleaved_calls_each_hold_their_own_half() -> None:
    streamed, final = _run([(0, '{"a": "x\ud83d'), (1, '{"b": "\ud83c'), (0, '\ude00"}'), (1, '\udf89 y"}')])
    assert final == {"call_0": '{"a": "x\U0001f600"}', "call_1": '{"b": "\U0001f389 y"}'}
    assert streamed == final


def test_a_half_without_its_other_half_is_replaced() -> None:
    # Call 0's next piece does not begin with the low half; call 1 ends the round on a high half.
    streamed, final = _run([(0, '{"a": "\ud83d'), (1, '{"b": "\udc00 \ud83d\ude01'), (0, 'z"}'), (1, "\ud83d")])
    assert final == {"call_0": '{"a": "\ufffdz"}', "call_1": '{"b": "\ufffd \U0001f601\ufffd'}
    assert streamed == final
