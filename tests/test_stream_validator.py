"""Tests of tests/stream_validator.py: hand-built good streams pass, every broken stream is rejected.

The good streams are strictly nested (one item open at a time, one content part open at a time) and
follow the Open Responses spec in full: their responses carry every field the spec requires and
their output_text parts carry annotations. llama-stack's own classes cannot (no such fields), so the
streams use small subclasses of them below -- what a server that carries every field has to do.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import pytest
from llama_stack.apis.agents.openai_responses import (
    OpenAIResponseError,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseOutputMessageContentOutputText,
    OpenAIResponseOutputMessageFunctionToolCall,
    OpenAIResponseOutputMessageWebSearchToolCall,
)
from open_responses_schema import SPEC_AVAILABLE
from pydantic import BaseModel, ConfigDict, SerializeAsAny
from stream_validator import DEFAULT_SCHEMA_HOST, validate_stream

RESP_ID = "resp-0001"
USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 0},
    "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 7},
    "total_tokens": 42,
}


class Ev(BaseModel):
    """A generic event: type + sequence_number + whatever the event carries."""

    model_config = ConfigDict(extra="allow")
    type: str
    sequence_number: int


class RespEv(BaseModel):
    type: str
    sequence_number: int
    response: SerializeAsAny[OpenAIResponseObject]  # dumped as what it is (FullResponse below)


class NoSeqEv(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str


class LyingEv(Ev):
    """Serialises a different type than it claims."""

    def model_dump_json(self, **kw):
        return super().model_dump_json(**kw).replace('"response.output_text.delta"', '"response.output_text.deltaX"')


class PlainEvent:
    def __init__(self, **kw):
        self.__dict__.update(kw)


# ---- item and response classes that carry every field ------------------------------------------


class OutputText(OpenAIResponseOutputMessageContentOutputText):
    annotations: list[Any] = []


class Refusal(BaseModel):
    type: Literal["refusal"] = "refusal"
    refusal: str


class Message(OpenAIResponseMessage):
    content: list[OutputText | Refusal]


class ReasoningText(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


class Reasoning(BaseModel):
    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[Any] = []
    content: list[ReasoningText]
    status: str = "completed"


class McpCall(BaseModel):
    id: str
    type: Literal["mcp_call"] = "mcp_call"
    name: str
    arguments: str
    server_label: str
    output: str | None = None
    error: str | None = None


class McpListTools(BaseModel):
    id: str
    type: Literal["mcp_list_tools"] = "mcp_list_tools"
    server_label: str
    tools: list[dict[str, Any]]


class FileSearchCall(BaseModel):
    id: str
    type: Literal["file_search_call"] = "file_search_call"
    queries: list[str]
    status: str
    results: list[dict[str, Any]] | None = None


class FullResponse(OpenAIResponseObject):
    """llama-stack's response class with every field the spec requires (as extras) and output items
    serialised as what they are."""

    model_config = ConfigDict(extra="allow")
    output: list[Any]


def _response(status: str, output: list, rid: str = RESP_ID, error=None, **fields) -> FullResponse:
    finished = status in ("completed", "incomplete", "failed")
    spec_fields = {
        "completed_at": 2 if status == "completed" else None,
        "incomplete_details": None,
        "instructions": None,
        "tools": [],
        "tool_choice": "auto",
        "truncation": "disabled",
        "text": {"format": {"type": "text"}},
        "top_p": 1.0,
        "temperature": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
        "reasoning": None,
        "usage": copy.deepcopy(USAGE) if finished else None,
        "max_output_tokens": None,
        "max_tool_calls": None,
        "store": True,
        "background": False,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }
    spec_fields.update(fields)
    return FullResponse(
        created_at=1,
        id=rid,
        model="m",
        status=status,
        output=output,
        error=error,
        parallel_tool_calls=True,
        **spec_fields,
    )


def _msg(mid: str, text: str, status: str = "completed") -> Message:
    return Message(id=mid, role="assistant", status=status, content=[OutputText(text=text)])


def _fc(fid: str, call_id: str, name: str, args: str) -> OpenAIResponseOutputMessageFunctionToolCall:
    return OpenAIResponseOutputMessageFunctionToolCall(
        id=fid, call_id=call_id, name=name, arguments=args, status="completed"
    )


class Builder:
    def __init__(self):
        self.events: list = []

    def _seq(self) -> int:
        return len(self.events)

    def resp(self, type_: str, status: str, output=(), error=None, rid: str = RESP_ID, **fields):
        response = _response(status, list(output), rid, error, **fields)
        self.events.append(RespEv(type=type_, sequence_number=self._seq(), response=response))
        return self

    def ev(self, type_: str, **fields):
        self.events.append(Ev(type=type_, sequence_number=self._seq(), **fields))
        return self

    def start(self):
        return self.resp("response.created", "in_progress").resp("response.in_progress", "in_progress")

    def part(self, oi: int, item_id: str, ci: int, kind: str, deltas: list[str], done_text: str | None = None):
        """One content part: added, deltas, the kind's .done, content_part.done."""
        text = "".join(deltas) if done_text is None else done_text
        field = "refusal" if kind == "refusal" else "text"
        delta_type, done_type = {
            "output_text": ("response.output_text.delta", "response.output_text.done"),
            "refusal": ("response.refusal.delta", "response.refusal.done"),
            "reasoning_text": ("response.reasoning_text.delta", "response.reasoning_text.done"),
        }[kind]
        extra = {"annotations": []} if kind == "output_text" else {}
        where = {"item_id": item_id, "output_index": oi, "content_index": ci}
        self.ev("response.content_part.added", **where, part={"type": kind, field: "", **extra})
        logprobs = {"logprobs": []} if kind == "output_text" else {}
        for d in deltas:
            self.ev(delta_type, **where, delta=d, **logprobs)
        self.ev(done_type, **where, **{field: text}, **logprobs)
        self.ev("response.content_part.done", **where, part={"type": kind, field: text, **extra})
        return self

    def message(self, oi: int, mid: str, deltas: list[str], done_text: str | None = None):
        text = "".join(deltas) if done_text is None else done_text
        self.ev(
            "response.output_item.added",
            output_index=oi,
            item={"id": mid, "type": "message", "role": "assistant", "status": "in_progress", "content": []},
        )
        self.part(oi, mid, 0, "output_text", deltas, done_text)
        self.ev("response.output_item.done", output_index=oi, item=_msg(mid, text).model_dump())
        return self

    def fc_added(self, oi: int, fid: str, call_id: str, name: str):
        item = {
            "id": fid,
            "type": "function_call",
            "call_id": call_id,
            "name": name,
            "arguments": "",
            "status": "in_progress",
        }
        return self.ev("response.output_item.added", output_index=oi, item=item)

    def fc_delta(self, oi: int, fid: str, delta: str):
        return self.ev("response.function_call_arguments.delta", item_id=fid, output_index=oi, delta=delta)

    def fc_done(self, oi: int, fid: str, call_id: str, name: str, args: str):
        self.ev("response.function_call_arguments.done", item_id=fid, output_index=oi, arguments=args)
        return self.ev("response.output_item.done", output_index=oi, item=_fc(fid, call_id, name, args).model_dump())

    def fc(self, oi: int, fid: str, call_id: str, name: str, pieces: list[str]):
        self.fc_added(oi, fid, call_id, name)
        for p in pieces:
            self.fc_delta(oi, fid, p)
        return self.fc_done(oi, fid, call_id, name, "".join(pieces))

    def web_search(self, oi: int, wid: str, status: str = "completed"):
        self.ev(
            "response.output_item.added",
            output_index=oi,
            item={"id": wid, "type": "web_search_call", "status": "in_progress"},
        )
        for t in ("in_progress", "searching", "completed"):
            self.ev(f"response.web_search_call.{t}", item_id=wid, output_index=oi)
        item = OpenAIResponseOutputMessageWebSearchToolCall(id=wid, status=status).model_dump()
        return self.ev("response.output_item.done", output_index=oi, item=item)


def good_text() -> list:
    b = Builder().start().message(0, "msg_1", ["Hel", "lo", " world"])
    return b.resp("response.completed", "completed", [_msg("msg_1", "Hello world")]).events


def good_parallel_calls() -> list:
    """Two function calls of one turn (parallel tool calls): streamed one item after the other."""
    b = Builder().start()
    b.fc(0, "fc_a", "call_a", "get_weather", ['{"city": ', '"Paris"}'])
    b.fc(1, "fc_b", "call_b", "get_time", ['{"tz": ', '"UTC"}'])
    out = [
        _fc("fc_a", "call_a", "get_weather", '{"city": "Paris"}'),
        _fc("fc_b", "call_b", "get_time", '{"tz": "UTC"}'),
    ]
    return b.resp("response.completed", "completed", out).events


def good_web_search_then_message() -> list:
    b = Builder().start().web_search(0, "ws_1").message(1, "msg_2", ["Llamas ", "are camelids."])
    out = [
        OpenAIResponseOutputMessageWebSearchToolCall(id="ws_1", status="completed"),
        _msg("msg_2", "Llamas are camelids."),
    ]
    return b.resp("response.completed", "completed", out).events


def good_failed_midway() -> list:
    b = Builder().start()
    b.ev(
        "response.output_item.added",
        output_index=0,
        item={"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []},
    )
    b.ev(
        "response.content_part.added",
        item_id="msg_1",
        output_index=0,
        content_index=0,
        part={"type": "output_text", "text": "", "annotations": []},
    )
    b.ev("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta="par", logprobs=[])
    err = OpenAIResponseError(code="server_error", message="boom")
    return b.resp("response.failed", "failed", [], error=err).events


def good_failed_items_closed_incomplete() -> list:
    b = Builder().start()
    b.fc_added(0, "fc_a", "call_a", "get_weather").fc_delta(0, "fc_a", '{"ci')
    fc = _fc("fc_a", "call_a", "get_weather", '{"ci')
    fc.status = "incomplete"
    b.ev("response.output_item.done", output_index=0, item=fc.model_dump())
    b.message(1, "msg_1", ["par", "tial"])
    msg = _msg("msg_1", "partial", status="incomplete")
    b.events[-1].item = msg.model_dump()
    err = OpenAIResponseError(code="server_error", message="boom")
    return b.resp("response.failed", "failed", [fc, msg], error=err).events


REASONING_PIECES = ["The user wants ", "weather, time ", "and a joke."]
REFUSAL_PIECES = ["I can't ", "help with that."]


def good_full() -> list:
    """Reasoning, a message with a text part and a refusal part, three function calls: strictly nested."""
    b = Builder().start()
    b.ev(
        "response.output_item.added",
        output_index=0,
        item={"id": "rs_1", "type": "reasoning", "summary": [], "content": [], "status": "in_progress"},
    )
    b.part(0, "rs_1", 0, "reasoning_text", REASONING_PIECES)
    reasoning = Reasoning(id="rs_1", content=[ReasoningText(text="".join(REASONING_PIECES))])
    b.ev("response.output_item.done", output_index=0, item=reasoning.model_dump())
    b.ev(
        "response.output_item.added",
        output_index=1,
        item={"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress", "content": []},
    )
    b.part(1, "msg_1", 0, "output_text", ["Let me ", "check."])
    b.part(1, "msg_1", 1, "refusal", REFUSAL_PIECES)
    message = Message(
        id="msg_1",
        role="assistant",
        status="completed",
        content=[OutputText(text="Let me check."), Refusal(refusal="".join(REFUSAL_PIECES))],
    )
    b.ev("response.output_item.done", output_index=1, item=message.model_dump())
    calls = [
        ("fc_a", "call_a", "get_weather", ['{"city": ', '"Paris"}']),
        ("fc_b", "call_b", "get_time", ['{"tz": ', '"UTC"}']),
        ("fc_c", "call_c", "tell_joke", ["{}"]),
    ]
    for k, (fid, call_id, name, pieces) in enumerate(calls):
        b.fc(2 + k, fid, call_id, name, pieces)
    out = [reasoning, message] + [_fc(fid, cid, name, "".join(p)) for fid, cid, name, p in calls]
    return b.resp("response.completed", "completed", out).events


def good_incomplete() -> list:
    """Stopped by max_output_tokens: the message closes incomplete; the response is incomplete."""
    b = Builder().start().message(0, "msg_1", ["Once upon ", "a time"])
    msg = _msg("msg_1", "Once upon a time", status="incomplete")
    b.events[-1].item = msg.model_dump()
    details = {"reason": "max_output_tokens"}
    return b.resp("response.incomplete", "incomplete", [msg], incomplete_details=details).events


def good_failed_at_start() -> list:
    """A request that fails before anything started (e.g. unknown previous_response_id)."""
    err = OpenAIResponseError(code="not_found", message="previous response resp-x not found")
    return Builder().resp("response.created", "in_progress").resp("response.failed", "failed", error=err).events


def good_mcp() -> list:
    b = Builder().start()
    listing = McpListTools(id="mcpl_1", server_label="kit", tools=[{"name": "lookup", "input_schema": {}}])
    b.ev("response.output_item.added", output_index=0, item={**listing.model_dump(), "tools": []})
    b.ev("response.mcp_list_tools.in_progress", item_id="mcpl_1", output_index=0)
    b.ev("response.mcp_list_tools.completed", item_id="mcpl_1", output_index=0)
    b.ev("response.output_item.done", output_index=0, item=listing.model_dump())
    call = McpCall(id="mcp_1", name="lookup", arguments='{"q": "llamas"}', server_label="kit", output="camelids")
    b.ev(
        "response.output_item.added",
        output_index=1,
        item={"id": "mcp_1", "type": "mcp_call", "name": "lookup", "arguments": "", "server_label": "kit"},
    )
    b.ev("response.mcp_call.in_progress", item_id="mcp_1", output_index=1)
    for d in ('{"q": ', '"llamas"}'):
        b.ev("response.mcp_call_arguments.delta", item_id="mcp_1", output_index=1, delta=d)
    b.ev("response.mcp_call_arguments.done", item_id="mcp_1", output_index=1, arguments='{"q": "llamas"}')
    b.ev("response.mcp_call.completed", item_id="mcp_1", output_index=1)
    b.ev("response.output_item.done", output_index=1, item=call.model_dump())
    b.message(2, "msg_1", ["Llamas are ", "camelids."])
    return b.resp("response.completed", "completed", [listing, call, _msg("msg_1", "Llamas are camelids.")]).events


def good_file_search() -> list:
    b = Builder().start()
    b.ev(
        "response.output_item.added",
        output_index=0,
        item={"id": "fs_1", "type": "file_search_call", "queries": [], "status": "in_progress"},
    )
    for t in ("in_progress", "searching", "completed"):
        b.ev(f"response.file_search_call.{t}", item_id="fs_1", output_index=0)
    search = FileSearchCall(id="fs_1", queries=["llamas"], status="completed", results=[{"text": "camelids"}])
    b.ev("response.output_item.done", output_index=0, item=search.model_dump())
    b.message(1, "msg_1", ["Camelids."])
    return b.resp("response.completed", "completed", [search, _msg("msg_1", "Camelids.")]).events


GOOD = {
    "text": good_text,
    "parallel_calls": good_parallel_calls,
    "web_search_then_message": good_web_search_then_message,
    "failed_midway": good_failed_midway,
    "failed_items_closed_incomplete": good_failed_items_closed_incomplete,
    "full": good_full,
    "incomplete": good_incomplete,
    "failed_at_start": good_failed_at_start,
    "mcp": good_mcp,
    "file_search": good_file_search,
}


@pytest.mark.parametrize("name", list(GOOD))
def test_good_streams_pass(name):
    events = GOOD[name]()
    final = validate_stream(events)
    assert final is events[-1].response


@pytest.mark.skipif(not SPEC_AVAILABLE, reason="no Open Responses spec beside the checkout (../shared/spec)")
@pytest.mark.parametrize("name", list(GOOD))
def test_good_streams_follow_the_full_spec(name):
    """No host exclusion needed: the good streams carry every field the spec requires."""
    validate_stream(GOOD[name](), schema_host="full")


def test_good_text_returns_final_response():
    final = validate_stream(good_text())
    assert isinstance(final, OpenAIResponseObject)
    assert final.output[0].content[0].text == "Hello world"


def test_default_schema_host_is_the_installed_llama_stack():
    import importlib.metadata

    assert DEFAULT_SCHEMA_HOST == f"llama-stack-{importlib.metadata.version('llama_stack')}"


# what each mutation must be rejected for (so that a test cannot pass for an incidental reason)
EXPECTED_REASON = {
    "m_no_sequence_number": "no .sequence_number",
    "m_seq_starts_at_1": "sequence numbers must start at 0",
    "m_seq_gap": "sequence numbers must start at 0",
    "m_seq_repeated": "sequence numbers must start at 0",
    "m_first_not_created": "first event must be response.created",
    "m_no_in_progress": "second event must be response.in_progress",
    "m_no_terminal": "no terminal event",
    "m_two_terminals": "more than one terminal event",
    "m_terminal_not_last": "is not last",
    "m_item_never_done": "added but never done",
    "m_item_done_twice": "was already done",
    "m_done_other_id": "done item id",
    "m_done_other_index": "was never added",
    "m_part_never_done": "content parts .* still open",
    "m_part_added_nonempty": "added output_text part must be empty",
    "m_delta_before_added": "was never added",
    "m_delta_after_item_done": "was already done",
    "m_delta_after_text_done": "content_index 0 not open",
    "m_delta_wrong_item_id": "item_id 'msg_zzz' != id",
    "m_delta_wrong_output_index": "output_index 3 was never added",
    "m_deltas_differ_from_done": "concatenated deltas",
    "m_done_text_differs_from_final": "final output\\[0\\]\\.content\\[0\\] text",
    "m_part_done_text_differs": "part text",
    "m_item_done_text_differs": "item content\\[0\\] text",
    "m_message_id_prefix": "must start with msg_",
    "m_message_done_incomplete_in_completed_stream": "done message status 'incomplete'",
    "m_response_id_changes": "differs from",
    "m_final_missing_item": "final response has 0 output items",
    "m_final_extra_item": "final response has 2 output items",
    "m_final_status_wrong": "carries a response with status",
    "m_created_status_completed": "expected in_progress",
    "m_not_pydantic": "not a pydantic BaseModel",
    "m_dump_type_mismatch": "JSON type",
    "m_unknown_event_type": "not an openai-python ResponseStreamEvent type",
    "m_missing_required_field": "missing fields required by openai",
    "m_response_not_llamastack": "expected OpenAIResponseObject",
    "m_output_index_gap": "output_index 1 but 0 items",
    "f_args_deltas_differ": "concatenated deltas",
    "f_args_done_differs_from_final": "final output\\[0\\]\\.arguments",
    "f_args_done_differs_from_item": "item arguments",
    "f_final_order_swapped": "final output\\[0\\] is",
    "f_delta_after_args_done": "concatenated deltas|arguments delta after",
    "f_no_args_done": "without function_call_arguments.done",
    "f_fc_id_prefix": "must start with fc_",
    "f_delta_item_id_of_other_item": "item_id 'fc_b' != id 'fc_a'",
    "f_call_id_changes": "call_id changed",
    "f_done_status_incomplete": "done function_call status 'incomplete'",
    "w_progress_out_of_order": "searching after",
    "w_seq_restarts_in_second_round": "sequence numbers must start at 0",
    "w_final_status_differs": "final output\\[0\\]\\.status",
    "w_progress_after_done": "was already done",
    "w_second_item_reuses_index": "output_index 0 but 1 items",
    "w_message_before_search_done": "item_id 'ws_1' != id 'msg_2'",
    "x_failed_without_error": "response.failed without error",
    "x_failed_lists_unstreamed_item": "never output_item.done",
}


# ------------------------------------------------------------------------------------------------
# broken streams: each mutation of a good stream must be rejected
# ------------------------------------------------------------------------------------------------


def _renumber(events: list) -> list:
    for i, e in enumerate(events):
        if hasattr(e, "sequence_number"):
            e.sequence_number = i
    return events


def _idx(events, type_, nth=0):
    hits = [i for i, e in enumerate(events) if e.type == type_]
    return hits[nth]


def _set(ev, **fields):
    for k, v in fields.items():
        setattr(ev, k, v)


def m_no_sequence_number(ev):
    i = _idx(ev, "response.output_text.delta")
    d = ev[i].model_dump()
    d.pop("sequence_number")
    ev[i] = NoSeqEv(**d)
    return ev


def m_seq_starts_at_1(ev):
    for e in ev:
        e.sequence_number += 1
    return ev


def m_seq_gap(ev):
    for e in ev[3:]:
        e.sequence_number += 1
    return ev


def m_seq_repeated(ev):
    ev[4].sequence_number = 3
    return ev


def m_first_not_created(ev):
    ev[0], ev[1] = ev[1], ev[0]
    return _renumber(ev)


def m_no_in_progress(ev):
    del ev[1]
    return _renumber(ev)


def m_no_terminal(ev):
    return ev[:-1]


def m_two_terminals(ev):
    ev.append(copy.deepcopy(ev[-1]))
    return _renumber(ev)


def m_terminal_not_last(ev):
    term = ev.pop()
    ev.insert(len(ev) - 1, term)
    return _renumber(ev)


def m_item_never_done(ev):
    del ev[_idx(ev, "response.output_item.done")]
    return _renumber(ev)


def m_item_done_twice(ev):
    i = _idx(ev, "response.output_item.done")
    ev.insert(i + 1, copy.deepcopy(ev[i]))
    return _renumber(ev)


def m_done_other_id(ev):
    e = ev[_idx(ev, "response.output_item.done")]
    e.item = {**e.item, "id": "msg_other"}
    return ev


def m_done_other_index(ev):
    _set(ev[_idx(ev, "response.output_item.done")], output_index=1)
    return ev


def m_part_never_done(ev):
    del ev[_idx(ev, "response.content_part.done")]
    return _renumber(ev)


def m_part_added_nonempty(ev):
    e = ev[_idx(ev, "response.content_part.added")]
    e.part = {"type": "output_text", "text": "Hel", "annotations": []}
    return ev


def m_delta_before_added(ev):
    d = ev.pop(_idx(ev, "response.output_text.delta"))
    ev.insert(2, d)
    return _renumber(ev)


def m_delta_after_item_done(ev):
    extra = Ev(**{**ev[_idx(ev, "response.output_text.delta")].model_dump(), "delta": ""})
    ev.insert(_idx(ev, "response.output_item.done") + 1, extra)
    return _renumber(ev)


def m_delta_after_text_done(ev):
    extra = Ev(**{**ev[_idx(ev, "response.output_text.delta")].model_dump(), "delta": ""})
    ev.insert(_idx(ev, "response.output_text.done") + 1, extra)
    return _renumber(ev)


def m_delta_wrong_item_id(ev):
    _set(ev[_idx(ev, "response.output_text.delta")], item_id="msg_zzz")
    return ev


def m_delta_wrong_output_index(ev):
    _set(ev[_idx(ev, "response.output_text.delta")], output_index=3)
    return ev


def m_deltas_differ_from_done(ev):
    _set(ev[_idx(ev, "response.output_text.delta")], delta="HEL")
    return ev


def m_done_text_differs_from_final(ev):
    ev[-1].response.output[0].content[0].text = "Hello there"
    return ev


def m_part_done_text_differs(ev):
    e = ev[_idx(ev, "response.content_part.done")]
    e.part = {"type": "output_text", "text": "nope", "annotations": []}
    return ev


def m_item_done_text_differs(ev):
    e = ev[_idx(ev, "response.output_item.done")]
    e.item = _msg("msg_1", "different").model_dump()
    return ev


def m_message_id_prefix(ev):
    for e in ev:
        if getattr(e, "item_id", None) == "msg_1":
            e.item_id = "item_1"
        item = getattr(e, "item", None)
        if isinstance(item, dict) and item.get("id") == "msg_1":
            e.item = {**item, "id": "item_1"}
    ev[-1].response.output[0].id = "item_1"
    return ev


def m_message_done_incomplete_in_completed_stream(ev):
    e = ev[_idx(ev, "response.output_item.done")]
    e.item = {**e.item, "status": "incomplete"}
    ev[-1].response.output[0].status = "incomplete"
    return ev


def m_response_id_changes(ev):
    ev[-1].response.id = "resp-other"
    return ev


def m_final_missing_item(ev):
    ev[-1].response.output = []
    return ev


def m_final_extra_item(ev):
    ev[-1].response.output.append(_msg("msg_9", "extra"))
    return ev


def m_final_status_wrong(ev):
    ev[-1].response.status = "in_progress"
    return ev


def m_created_status_completed(ev):
    ev[0].response.status = "completed"
    return ev


def m_not_pydantic(ev):
    e = ev[2]
    ev[2] = PlainEvent(**e.model_dump())
    return ev


def m_dump_type_mismatch(ev):
    i = _idx(ev, "response.output_text.delta")
    ev[i] = LyingEv(**ev[i].model_dump())
    return ev


def m_unknown_event_type(ev):
    _set(ev[_idx(ev, "response.output_text.delta")], type="response.output_text.deltas")
    return ev


def m_missing_required_field(ev):
    e = ev[_idx(ev, "response.output_text.delta")]
    d = e.model_dump()
    d.pop("content_index")
    ev[ev.index(e)] = Ev(**d)
    return ev


def m_response_not_llamastack(ev):
    ev[-1] = Ev(
        type="response.completed", sequence_number=ev[-1].sequence_number, response=ev[-1].response.model_dump()
    )
    return ev


def m_output_index_gap(ev):
    for e in ev:
        if getattr(e, "output_index", None) == 0:
            e.output_index = 1
    return ev


BROKEN_TEXT = [
    m_no_sequence_number,
    m_seq_starts_at_1,
    m_seq_gap,
    m_seq_repeated,
    m_first_not_created,
    m_no_in_progress,
    m_no_terminal,
    m_two_terminals,
    m_terminal_not_last,
    m_item_never_done,
    m_item_done_twice,
    m_done_other_id,
    m_done_other_index,
    m_part_never_done,
    m_part_added_nonempty,
    m_delta_before_added,
    m_delta_after_item_done,
    m_delta_after_text_done,
    m_delta_wrong_item_id,
    m_delta_wrong_output_index,
    m_deltas_differ_from_done,
    m_done_text_differs_from_final,
    m_part_done_text_differs,
    m_item_done_text_differs,
    m_message_id_prefix,
    m_message_done_incomplete_in_completed_stream,
    m_response_id_changes,
    m_final_missing_item,
    m_final_extra_item,
    m_final_status_wrong,
    m_created_status_completed,
    m_not_pydantic,
    m_dump_type_mismatch,
    m_unknown_event_type,
    m_missing_required_field,
    m_response_not_llamastack,
    m_output_index_gap,
]


@pytest.mark.parametrize("mutate", BROKEN_TEXT, ids=lambda f: f.__name__[2:])
def test_broken_text_stream_rejected(mutate):
    events = mutate(good_text())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


def f_args_deltas_differ(ev):
    _set(ev[_idx(ev, "response.function_call_arguments.delta")], delta='{"town": ')
    return ev


def f_args_done_differs_from_final(ev):
    ev[-1].response.output[0].arguments = '{"city": "Rome"}'
    return ev


def f_args_done_differs_from_item(ev):
    i = _idx(ev, "response.output_item.done")
    item = dict(ev[i].item)
    item["arguments"] = "{}"
    ev[i].item = item
    return ev


def f_final_order_swapped(ev):
    out = ev[-1].response.output
    out[0], out[1] = out[1], out[0]
    return ev


def f_delta_after_args_done(ev):
    i = _idx(ev, "response.function_call_arguments.delta", 1)  # fc_a's last delta
    d = ev.pop(i)
    ev.insert(_idx(ev, "response.function_call_arguments.done") + 1, d)
    return _renumber(ev)


def f_no_args_done(ev):
    for _ in range(2):
        del ev[_idx(ev, "response.function_call_arguments.done")]
    return _renumber(ev)


def f_fc_id_prefix(ev):
    ev[_idx(ev, "response.output_item.added")].item["id"] = "call_a"
    return ev


def f_delta_item_id_of_other_item(ev):
    _set(ev[_idx(ev, "response.function_call_arguments.delta")], item_id="fc_b")
    return ev


def f_done_status_incomplete(ev):
    i = _idx(ev, "response.output_item.done")
    ev[i].item = {**ev[i].item, "status": "incomplete"}
    return ev


def f_call_id_changes(ev):
    i = _idx(ev, "response.output_item.done", 1)
    ev[i].item = {**ev[i].item, "call_id": "call_zzz"}
    ev[-1].response.output[0].call_id = "call_zzz"
    return ev


BROKEN_CALLS = [
    f_args_deltas_differ,
    f_args_done_differs_from_final,
    f_args_done_differs_from_item,
    f_final_order_swapped,
    f_delta_after_args_done,
    f_no_args_done,
    f_fc_id_prefix,
    f_delta_item_id_of_other_item,
    f_call_id_changes,
    f_done_status_incomplete,
]


@pytest.mark.parametrize("mutate", BROKEN_CALLS, ids=lambda f: f.__name__[2:])
def test_broken_function_call_stream_rejected(mutate):
    events = mutate(good_parallel_calls())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


def w_progress_out_of_order(ev):
    a = _idx(ev, "response.web_search_call.searching")
    b = _idx(ev, "response.web_search_call.completed")
    ev[a], ev[b] = ev[b], ev[a]
    return _renumber(ev)


def w_seq_restarts_in_second_round(ev):
    start = _idx(ev, "response.output_item.added", 1)
    for k, e in enumerate(ev[start:]):
        e.sequence_number = k
    return ev


def w_final_status_differs(ev):
    ev[-1].response.output[0].status = "failed"
    return ev


def w_progress_after_done(ev):
    e = ev.pop(_idx(ev, "response.web_search_call.completed"))
    ev.insert(_idx(ev, "response.output_item.done") + 1, e)
    return _renumber(ev)


def w_message_before_search_done(ev):
    """The round-2 message's deltas carry the web search item's id -> rejected."""
    for e in ev:
        if e.type == "response.output_text.delta":
            e.item_id = "ws_1"
    return ev


def w_second_item_reuses_index(ev):
    for e in ev[_idx(ev, "response.output_item.added", 1) :]:
        if getattr(e, "output_index", None) == 1:
            e.output_index = 0
    return ev


BROKEN_WEB = [
    w_progress_out_of_order,
    w_seq_restarts_in_second_round,
    w_final_status_differs,
    w_progress_after_done,
    w_second_item_reuses_index,
    w_message_before_search_done,
]


@pytest.mark.parametrize("mutate", BROKEN_WEB, ids=lambda f: f.__name__[2:])
def test_broken_web_search_stream_rejected(mutate):
    events = mutate(good_web_search_then_message())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


def x_failed_without_error(ev):
    ev[-1].response.error = None
    return ev


def x_failed_lists_unstreamed_item(ev):
    ev[-1].response.output = [_msg("msg_1", "par")]  # never output_item.done
    return ev


@pytest.mark.parametrize(
    "mutate", [x_failed_without_error, x_failed_lists_unstreamed_item], ids=lambda f: f.__name__[2:]
)
def test_broken_failed_stream_rejected(mutate):
    events = mutate(good_failed_midway())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


def test_empty_stream_rejected():
    with pytest.raises(AssertionError):
        validate_stream([])


def _fingerprint(e) -> tuple:
    return type(e).__name__, e.model_dump_json() if isinstance(e, BaseModel) else repr(vars(e))


def test_all_mutations_actually_change_the_stream():
    """Guard against a mutation that silently does nothing (which would make its test vacuous)."""
    for good, mutations in (
        (good_text, BROKEN_TEXT),
        (good_parallel_calls, BROKEN_CALLS),
        (good_web_search_then_message, BROKEN_WEB),
    ):
        base = [_fingerprint(e) for e in good()]
        for mutate in mutations:
            assert [_fingerprint(e) for e in mutate(good())] != base, mutate.__name__


# ------------------------------------------------------------------------------------------------
# strict nesting, reasoning, refusal, annotations, call ids, usage: mutations of good_full()
# ------------------------------------------------------------------------------------------------


def _move_after(ev: list, src: int, dst: int) -> list:
    """Move event ``src`` to just after event ``dst`` (indices before the move), then renumber."""
    e = ev.pop(src)
    ev.insert(dst if src < dst else dst + 1, e)
    return _renumber(ev)


def n_items_overlap(ev):
    """fc_b's output_item.done moved after fc_c's output_item.added: two items open at once."""
    return _move_after(ev, _idx(ev, "response.output_item.done", 3), _idx(ev, "response.output_item.added", 4))


def n_items_interleaved_deltas(ev):
    """fc_c added right after fc_b's added: interleaved function calls (the old parallel shape)."""
    return _move_after(ev, _idx(ev, "response.output_item.added", 4), _idx(ev, "response.output_item.added", 3))


def n_parts_overlap(ev):
    """The message's text part is closed only after its refusal part was added."""
    return _move_after(ev, _idx(ev, "response.content_part.done", 1), _idx(ev, "response.content_part.added", 2))


def n_reasoning_deltas_differ(ev):
    _set(ev[_idx(ev, "response.reasoning_text.delta")], delta="THE user wants ")
    return ev


def n_reasoning_done_differs_from_final(ev):
    ev[-1].response.output[0].content[0].text = "Something else."
    return ev


def n_reasoning_done_item_differs(ev):
    e = ev[_idx(ev, "response.output_item.done")]
    e.item = Reasoning(id="rs_1", content=[ReasoningText(text="edited")]).model_dump()
    return ev


def n_reasoning_id_prefix(ev):
    for e in ev:
        if getattr(e, "item_id", None) == "rs_1":
            e.item_id = "reasoning_1"
        item = getattr(e, "item", None)
        if isinstance(item, dict) and item.get("id") == "rs_1":
            e.item = {**item, "id": "reasoning_1"}
    ev[-1].response.output[0].id = "reasoning_1"
    return ev


def n_text_delta_on_reasoning_part(ev):
    _set(ev[_idx(ev, "response.reasoning_text.delta")], type="response.output_text.delta", logprobs=[])
    return ev


def n_refusal_part_on_reasoning_item(ev):
    e = ev[_idx(ev, "response.content_part.added")]
    e.part = {"type": "refusal", "refusal": ""}
    return ev


def n_reasoning_text_part_on_message(ev):
    e = ev[_idx(ev, "response.content_part.added", 2)]
    e.part = {"type": "reasoning_text", "text": ""}
    return ev


def n_refusal_deltas_differ(ev):
    _set(ev[_idx(ev, "response.refusal.delta")], delta="I won't ")
    return ev


def n_refusal_part_done_differs(ev):
    e = ev[_idx(ev, "response.content_part.done", 2)]
    e.part = {"type": "refusal", "refusal": "No."}
    return ev


def n_refusal_item_differs(ev):
    e = ev[_idx(ev, "response.output_item.done", 1)]
    item = copy.deepcopy(e.item)
    item["content"][1]["refusal"] = "No."
    e.item = item
    return ev


def n_refusal_final_differs(ev):
    ev[-1].response.output[1].content[1].refusal = "No."
    return ev


def n_item_content_extra_part(ev):
    e = ev[_idx(ev, "response.output_item.done", 1)]
    item = copy.deepcopy(e.item)
    item["content"].append({"type": "output_text", "text": "unstreamed", "annotations": []})
    e.item = item
    return ev


def n_annotations_missing_in_done_item(ev):
    e = ev[_idx(ev, "response.output_item.done", 1)]
    item = copy.deepcopy(e.item)
    del item["content"][0]["annotations"]
    e.item = item
    return ev


def n_annotations_missing_in_final_output(ev):
    ev[-1].response.output[1] = OpenAIResponseMessage(
        id="msg_1",
        role="assistant",
        status="completed",
        content=[OpenAIResponseOutputMessageContentOutputText(text="Let me check.")],
    )
    return ev


def n_annotations_missing_in_part_done(ev):
    e = ev[_idx(ev, "response.content_part.done", 1)]
    e.part = {"type": "output_text", "text": "Let me check."}
    return ev


def n_annotations_null_in_added_item(ev):
    e = ev[_idx(ev, "response.output_item.added", 1)]
    e.item = {**e.item, "content": [{"type": "output_text", "text": "", "annotations": None}]}
    return ev


def n_call_id_only_final_on_done(ev):
    """output_item.added carried a provisional call_id; done and the final output have the real one."""
    e = ev[_idx(ev, "response.output_item.added", 2)]
    e.item = {**e.item, "call_id": "call_tmp"}
    return ev


def n_name_missing_on_added(ev):
    e = ev[_idx(ev, "response.output_item.added", 3)]
    e.item = {**e.item, "name": ""}
    return ev


def n_name_changes(ev):
    e = ev[_idx(ev, "response.output_item.done", 4)]
    e.item = {**e.item, "name": "other"}
    ev[-1].response.output[4].name = "other"
    return ev


def n_usage_total_wrong(ev):
    ev[-1].response.usage = {**USAGE, "total_tokens": 41}
    return ev


def n_usage_missing_cached_tokens(ev):
    ev[-1].response.usage = {**USAGE, "input_tokens_details": {}}
    return ev


def n_completed_with_incomplete_details(ev):
    ev[-1].response.incomplete_details = {"reason": "max_output_tokens"}
    return ev


def n_completed_item_closed_incomplete(ev):
    e = ev[_idx(ev, "response.output_item.done")]
    e.item = {**e.item, "status": "incomplete"}
    ev[-1].response.output[0].status = "incomplete"
    return ev


EXPECTED_REASON.update(
    {
        "n_items_overlap": "items must not overlap",
        "n_items_interleaved_deltas": "items must not overlap",
        "n_parts_overlap": "content parts must not overlap",
        "n_reasoning_deltas_differ": "concatenated deltas",
        "n_reasoning_done_differs_from_final": "final output\\[0\\]\\.content\\[0\\] text",
        "n_reasoning_done_item_differs": "item content\\[0\\] text 'edited' != response.reasoning_text.done",
        "n_reasoning_id_prefix": "must start with rs_",
        "n_text_delta_on_reasoning_part": "response.output_text.delta on a reasoning_text part",
        "n_refusal_part_on_reasoning_item": "content part of type 'refusal' on a 'reasoning' item",
        "n_reasoning_text_part_on_message": "content part of type 'reasoning_text' on a 'message' item",
        "n_refusal_deltas_differ": "refusal .* != concatenated deltas",
        "n_refusal_part_done_differs": "part refusal 'No.' != response.refusal.done",
        "n_refusal_item_differs": "item content\\[1\\] refusal 'No.' != response.refusal.done",
        "n_refusal_final_differs": "final output\\[1\\]\\.content\\[1\\] refusal",
        "n_item_content_extra_part": "item content has 3 parts, the stream produced 2",
        "n_annotations_missing_in_done_item": "content\\[0\\]: output_text part without annotations",
        "n_annotations_missing_in_final_output": "final output\\[1\\]\\.content\\[0\\]: output_text part without",
        "n_annotations_missing_in_part_done": "output_text part without annotations",
        # the schema check names it first ("item.content[0].annotations: None is not of type 'array'")
        "n_annotations_null_in_added_item": "item.content\\[0\\](: output_text part without |\\.)annotations",
        "n_call_id_only_final_on_done": "call_id changed between added and done .*must carry the final call_id",
        "n_name_missing_on_added": "function_call item without call_id/name",
        "n_name_changes": "name changed between added and done",
        "n_usage_total_wrong": "usage.total_tokens 41 != input_tokens 12 \\+ output_tokens 30",
        # the schema check names it first ("usage.input_tokens_details: missing required ['cached_tokens']")
        "n_usage_missing_cached_tokens": "usage.input_tokens_details.*cached_tokens",
        "n_completed_with_incomplete_details": "completed response has incomplete_details",
        "n_completed_item_closed_incomplete": "done reasoning status 'incomplete'",
    }
)

BROKEN_FULL = [
    n_items_overlap,
    n_items_interleaved_deltas,
    n_parts_overlap,
    n_reasoning_deltas_differ,
    n_reasoning_done_differs_from_final,
    n_reasoning_done_item_differs,
    n_reasoning_id_prefix,
    n_text_delta_on_reasoning_part,
    n_refusal_part_on_reasoning_item,
    n_reasoning_text_part_on_message,
    n_refusal_deltas_differ,
    n_refusal_part_done_differs,
    n_refusal_item_differs,
    n_refusal_final_differs,
    n_item_content_extra_part,
    n_annotations_missing_in_done_item,
    n_annotations_missing_in_final_output,
    n_annotations_missing_in_part_done,
    n_annotations_null_in_added_item,
    n_call_id_only_final_on_done,
    n_name_missing_on_added,
    n_name_changes,
    n_usage_total_wrong,
    n_usage_missing_cached_tokens,
    n_completed_with_incomplete_details,
    n_completed_item_closed_incomplete,
]


@pytest.mark.parametrize("mutate", BROKEN_FULL, ids=lambda f: f.__name__[2:])
def test_broken_full_stream_rejected(mutate):
    events = mutate(good_full())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


@pytest.mark.parametrize("mutate", BROKEN_FULL, ids=lambda f: f.__name__[2:])
def test_broken_full_stream_rejected_without_the_schema(mutate):
    """The structural rules hold on their own (the schema check may name some violations first)."""
    events = mutate(good_full())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]) as info:
        validate_stream(events, schema_host=None)
    assert "Open Responses spec" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# terminal events: incomplete, failed before anything started
# ------------------------------------------------------------------------------------------------


def i_no_incomplete_details(ev):
    ev[-1].response.incomplete_details = None
    return ev


def i_incomplete_details_without_reason(ev):
    ev[-1].response.incomplete_details = {"reason": ""}
    return ev


def i_status_completed(ev):
    ev[-1].response.status = "completed"
    return ev


def i_item_left_open(ev):
    del ev[_idx(ev, "response.output_item.done")]
    return _renumber(ev)


def i_final_missing_item(ev):
    ev[-1].response.output = []
    return ev


def i_final_status_differs(ev):
    ev[-1].response.output[0].status = "completed"
    return ev


def i_failed_at_start_without_error(ev):
    ev[-1].response.error = None
    return ev


def i_completed_right_after_created(ev):
    ev[-1] = RespEv(type="response.completed", sequence_number=1, response=_response("completed", []))
    return ev


def i_incomplete_right_after_created(ev):
    ev[-1] = RespEv(
        type="response.incomplete",
        sequence_number=1,
        response=_response("incomplete", [], incomplete_details={"reason": "max_output_tokens"}),
    )
    return ev


EXPECTED_REASON.update(
    {
        "i_no_incomplete_details": "response.incomplete without incomplete_details.reason",
        "i_incomplete_details_without_reason": "response.incomplete without incomplete_details.reason",
        "i_status_completed": "response.incomplete carries a response with status 'completed'",
        "i_item_left_open": "added but never done",
        "i_final_missing_item": "final response has 0 output items, stream produced 1",
        "i_final_status_differs": "final output\\[0\\]\\.status 'completed' != streamed 'incomplete'",
        "i_failed_at_start_without_error": "response.failed without error code/message",
        "i_completed_right_after_created": "second event must be response.in_progress",
        "i_incomplete_right_after_created": "second event must be response.in_progress",
    }
)
BROKEN_INCOMPLETE = [
    i_no_incomplete_details,
    i_incomplete_details_without_reason,
    i_status_completed,
    i_item_left_open,
    i_final_missing_item,
    i_final_status_differs,
]
BROKEN_FAILED_AT_START = [
    i_failed_at_start_without_error,
    i_completed_right_after_created,
    i_incomplete_right_after_created,
]


@pytest.mark.parametrize("mutate", BROKEN_INCOMPLETE, ids=lambda f: f.__name__[2:])
def test_broken_incomplete_stream_rejected(mutate):
    events = mutate(good_incomplete())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


@pytest.mark.parametrize("mutate", BROKEN_FAILED_AT_START, ids=lambda f: f.__name__[2:])
def test_broken_failed_at_start_stream_rejected(mutate):
    events = mutate(good_failed_at_start())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


def test_incomplete_items_must_all_be_listed_as_for_completed():
    """An incomplete response's output equals the done items, like a completed one's (a failed one may
    list fewer)."""
    events = good_incomplete()
    events[-1].response.output.append(_msg("msg_9", "never streamed"))
    with pytest.raises(AssertionError, match="final response has 2 output items, stream produced 1"):
        validate_stream(events)


# ------------------------------------------------------------------------------------------------
# MCP and file_search: argument events, progress events
# ------------------------------------------------------------------------------------------------


def mc_args_deltas_differ(ev):
    _set(ev[_idx(ev, "response.mcp_call_arguments.delta")], delta='{"query": ')
    return ev


def mc_args_done_differs_from_item(ev):
    e = ev[_idx(ev, "response.output_item.done", 1)]
    e.item = {**e.item, "arguments": "{}"}
    return ev


def mc_final_args_differ(ev):
    ev[-1].response.output[1].arguments = "{}"
    return ev


def mc_final_output_differs(ev):
    ev[-1].response.output[1].output = "something else"
    return ev


def mc_no_args_done(ev):
    del ev[_idx(ev, "response.mcp_call_arguments.done")]
    return _renumber(ev)


def mc_args_delta_after_done(ev):
    return _move_after(
        ev, _idx(ev, "response.mcp_call_arguments.delta", 1), _idx(ev, "response.mcp_call_arguments.done")
    )


def mc_id_prefix(ev):
    for e in ev:
        if getattr(e, "item_id", None) == "mcp_1":
            e.item_id = "call_1"
        item = getattr(e, "item", None)
        if isinstance(item, dict) and item.get("id") == "mcp_1":
            e.item = {**item, "id": "call_1"}
    ev[-1].response.output[1].id = "call_1"
    return ev


def mc_completed_then_failed(ev):
    i = _idx(ev, "response.mcp_call.completed")
    ev.insert(i + 1, Ev(type="response.mcp_call.failed", sequence_number=0, item_id="mcp_1", output_index=1))
    return _renumber(ev)


def mc_completed_before_in_progress(ev):
    return _move_after(ev, _idx(ev, "response.mcp_call.in_progress"), _idx(ev, "response.mcp_call.completed"))


def mc_list_tools_event_on_call_item(ev):
    _set(ev[_idx(ev, "response.mcp_list_tools.in_progress")], type="response.mcp_call.in_progress")
    return ev


def mc_list_tools_progress_after_done(ev):
    return _move_after(ev, _idx(ev, "response.mcp_list_tools.completed"), _idx(ev, "response.output_item.done"))


def mc_server_label_changes(ev):
    e = ev[_idx(ev, "response.output_item.done", 1)]
    e.item = {**e.item, "server_label": "other"}
    ev[-1].response.output[1].server_label = "other"
    return ev


def fs_progress_out_of_order(ev):
    return _move_after(
        ev, _idx(ev, "response.file_search_call.in_progress"), _idx(ev, "response.file_search_call.searching")
    )


def fs_progress_on_message(ev):
    i = _idx(ev, "response.output_text.delta")
    ev.insert(i, Ev(type="response.file_search_call.searching", sequence_number=0, item_id="msg_1", output_index=1))
    return _renumber(ev)


EXPECTED_REASON.update(
    {
        "mc_args_deltas_differ": "arguments .* != concatenated deltas",
        "mc_args_done_differs_from_item": "item arguments '{}' != arguments.done",
        "mc_final_args_differ": "final output\\[1\\]\\.arguments",
        "mc_final_output_differs": "final output\\[1\\]\\.output",
        "mc_no_args_done": "mcp_call done without mcp_call_arguments.done",
        "mc_args_delta_after_done": "concatenated deltas",
        "mc_id_prefix": "mcp_call item id 'call_1' must start with mcp_",
        "mc_completed_then_failed": "response.mcp_call.failed after \\['response.mcp_call.in_progress', "
        "'response.mcp_call.completed'\\]",
        "mc_completed_before_in_progress": "response.mcp_call.in_progress after",
        "mc_list_tools_event_on_call_item": "response.mcp_call.in_progress on a 'mcp_list_tools' item",
        "mc_list_tools_progress_after_done": "was already done",
        "mc_server_label_changes": "server_label changed between added and done",
        "fs_progress_out_of_order": "response.file_search_call.in_progress after",
        "fs_progress_on_message": "response.file_search_call.searching on a 'message' item",
    }
)
BROKEN_MCP = [
    mc_args_deltas_differ,
    mc_args_done_differs_from_item,
    mc_final_args_differ,
    mc_final_output_differs,
    mc_no_args_done,
    mc_args_delta_after_done,
    mc_id_prefix,
    mc_completed_then_failed,
    mc_completed_before_in_progress,
    mc_list_tools_event_on_call_item,
    mc_list_tools_progress_after_done,
    mc_server_label_changes,
]
BROKEN_FILE_SEARCH = [fs_progress_out_of_order, fs_progress_on_message]


@pytest.mark.parametrize("mutate", BROKEN_MCP, ids=lambda f: f.__name__[3:])
def test_broken_mcp_stream_rejected(mutate):
    events = mutate(good_mcp())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


@pytest.mark.parametrize("mutate", BROKEN_FILE_SEARCH, ids=lambda f: f.__name__[3:])
def test_broken_file_search_stream_rejected(mutate):
    events = mutate(good_file_search())
    with pytest.raises(AssertionError, match=EXPECTED_REASON[mutate.__name__]):
        validate_stream(events)


# ------------------------------------------------------------------------------------------------
# the Open Responses schema, through validate_stream
# ------------------------------------------------------------------------------------------------

needs_spec = pytest.mark.skipif(
    not SPEC_AVAILABLE, reason="no Open Responses spec beside the checkout (../shared/spec)"
)


@needs_spec
def test_schema_event_field_of_wrong_type_rejected():
    events = good_text()
    _set(events[_idx(events, "response.output_text.delta")], content_index="0")
    with pytest.raises(AssertionError, match="Open Responses spec .*content_index: '0' is not of type 'integer'"):
        validate_stream(events)


@needs_spec
def test_schema_response_null_temperature_rejected_for_every_host():
    """llama-stack's class can carry a temperature; null is not a temperature."""
    for host in ("llama-stack-0.2.7", "llama-stack-0.2.12", "full"):
        events = good_text()
        events[-1].response.temperature = None
        with pytest.raises(AssertionError, match="temperature: None is not of type 'number'"):
            validate_stream(events, schema_host=host)


@needs_spec
def test_schema_host_exclusions_apply():
    """completed_at is a field llama-stack's response class lacks: only the full host requires it."""
    events = good_text()
    del events[-1].response.__pydantic_extra__["completed_at"]
    for host in ("llama-stack-0.2.7", "llama-stack-0.2.12"):
        validate_stream(copy.deepcopy(events), schema_host=host)
    with pytest.raises(AssertionError, match=r"missing required \['completed_at'\]"):
        validate_stream(events, schema_host="full")


def test_schema_check_can_be_turned_off():
    events = good_text()
    _set(events[_idx(events, "response.output_text.delta")], content_index="0")
    # the structural checks still run: content_index "0" is not an open part
    with pytest.raises(AssertionError, match="content_index 0 not open|content_index '0' not open"):
        validate_stream(events, schema_host=None)
    events = good_text()
    events[-1].response.temperature = None
    validate_stream(events, schema_host=None)


def test_new_mutations_actually_change_the_stream():
    """Guard against a mutation that silently does nothing (which would make its test vacuous)."""
    for good, mutations in (
        (good_full, BROKEN_FULL),
        (good_incomplete, BROKEN_INCOMPLETE),
        (good_failed_at_start, BROKEN_FAILED_AT_START),
        (good_mcp, BROKEN_MCP),
        (good_file_search, BROKEN_FILE_SEARCH),
    ):
        base = [_fingerprint(e) for e in good()]
        for mutate in mutations:
            assert [_fingerprint(e) for e in mutate(good())] != base, mutate.__name__


# ---- background responses: response.created and response.queued (status queued), then response.in_progress


def good_background() -> list:
    """A background response as OpenAI streams it: created and queued with status queued, then in_progress."""
    b = Builder().resp("response.created", "queued", background=True).resp("response.queued", "queued", background=True)
    b.resp("response.in_progress", "in_progress", background=True)
    b.message(0, "msg_1", ["Later, ", "done."])
    return b.resp("response.completed", "completed", [_msg("msg_1", "Later, done.")], background=True).events


def good_background_failed_at_start() -> list:
    err = OpenAIResponseError(code="server_error", message="the server stopped before the response started")
    b = Builder().resp("response.created", "queued", background=True).resp("response.queued", "queued", background=True)
    return b.resp("response.failed", "failed", error=err, background=True).events


def test_a_background_stream_passes() -> None:
    for events in (good_background(), good_background_failed_at_start()):
        validate_stream(events)
        if SPEC_AVAILABLE:
            validate_stream(events, schema_host="full")


def bg_no_queued(ev):
    del ev[_idx(ev, "response.queued")]
    return _renumber(ev)


def bg_queued_after_a_created_in_progress(ev):
    ev[0].response.status = "in_progress"
    return ev


def bg_queued_twice(ev):
    ev.insert(2, ev[1].model_copy(deep=True))
    return _renumber(ev)


def bg_queued_after_in_progress(ev):
    return _move_after(ev, _idx(ev, "response.queued"), _idx(ev, "response.in_progress"))


def bg_queued_status_in_progress(ev):
    ev[1].response.status = "in_progress"
    return ev


def bg_in_progress_status_queued(ev):
    ev[_idx(ev, "response.in_progress")].response.status = "queued"
    return ev


def bg_queued_in_a_foreground_stream(ev):
    queued = RespEv(type="response.queued", sequence_number=0, response=_response("queued", []))
    ev.insert(3, queued)
    return _renumber(ev)


BROKEN_BACKGROUND = {
    bg_no_queued: "a response created queued must be followed by response.queued",
    bg_queued_after_a_created_in_progress: "response.queued must come exactly once",
    bg_queued_twice: "response.queued must come exactly once",
    bg_queued_after_in_progress: "a response created queued must be followed by response.queued",
    bg_queued_status_in_progress: "response status 'in_progress', expected queued",
    bg_in_progress_status_queued: "response status 'queued', expected in_progress",
}


@pytest.mark.parametrize("mutate", list(BROKEN_BACKGROUND), ids=lambda f: f.__name__[3:])
def test_broken_background_stream_rejected(mutate) -> None:
    events = mutate(good_background())
    with pytest.raises(AssertionError, match=BROKEN_BACKGROUND[mutate]):
        validate_stream(events)


def test_response_queued_in_a_stream_not_created_queued_is_rejected() -> None:
    with pytest.raises(AssertionError, match="response.queued must come exactly once"):
        validate_stream(bg_queued_in_a_foreground_stream(good_text()))
