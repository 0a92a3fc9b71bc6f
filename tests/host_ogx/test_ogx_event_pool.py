"""The per-chunk delta events under OGX's Python (3.12+, where a class without ``__slots__`` keeps its weak
reference list before the object header): an event nobody holds any more is refilled in place instead of built
anew, and one that someone can still see (the caller, a weak reference, its ``__dict__``) never changes."""

from __future__ import annotations

import gc
import sys
import weakref
from typing import Any

from openai.types.chat import ChatCompletionChunk

from responses_rs._core import Turn
from responses_rs._engine import event_factory
from responses_rs.ogx._impl import EVENT_CLASSES


def _chunk(content: str) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 1,
            "model": "m",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
        }
    )


def _turn() -> Turn:
    turn = Turn(
        event_factory(EVENT_CLASSES), "m", "hi", None, emit_events=True, store=False, stream_inference=True,
        record_shape="full",
    )  # fmt: skip
    assert turn.next_action()[0] == "infer"
    turn.drain()
    first = turn.feed(_chunk("start"))
    assert isinstance(first, list) and first[-1].type == "response.output_text.delta"
    return turn


def _addresses(turn: Turn, pieces: str) -> tuple[set[int], list[Any]]:
    """Feed one chunk per piece, dropping each event at once: the events' addresses and their (delta, seq).
    After each drop an object of the same class is made and kept, so the memory of an event that was freed
    (not pooled) is taken, and a new event could not come back at the old address."""
    cls = EVENT_CLASSES["response.output_text.delta"]
    seen: set[int] = set()
    values = []
    spacers = []
    for piece in pieces:
        event = turn.feed(_chunk(piece))
        seen.add(id(event))
        values.append((event.delta, event.sequence_number))
        del event
        spacers.append(cls.model_construct())
    return seen, values


def test_delta_events_are_reused_when_nobody_holds_them() -> None:
    assert sys.version_info >= (3, 12)
    cls = EVENT_CLASSES["response.output_text.delta"]
    assert cls.__weakrefoffset__ < 0  # the 3.12+ layout this covers
    turn = _turn()
    gc.disable()  # no collection frees anything between the chunks
    try:
        addresses, values = _addresses(turn, "abcdefghijklmnopqrstuvwxyz")
        kept = [turn.feed(_chunk(piece)) for piece in "ABCDEFGH"]
    finally:
        gc.enable()
    # 26 events handed out and dropped came from a handful of pooled objects, with the right contents
    assert len(addresses) <= 4
    assert [d for d, _ in values] == list("abcdefghijklmnopqrstuvwxyz")
    sequence = [s for _, s in values]
    assert sequence == list(range(sequence[0], sequence[0] + 26))
    # events that are kept are distinct and unchanged
    assert [e.delta for e in kept] == list("ABCDEFGH") and len({id(e) for e in kept}) == 8


def test_an_event_seen_through_a_weak_reference_or_its_dict_never_changes() -> None:
    turn = _turn()
    first = turn.feed(_chunk("x"))
    ref = weakref.ref(first)
    held_dict = first.__dict__
    seq = first.sequence_number
    del first
    _addresses(turn, "yzuvw")
    alive = ref()
    assert alive is not None  # the pool still holds it, and cannot reuse it
    assert alive.delta == "x" and alive.sequence_number == seq
    assert held_dict["delta"] == "x"
