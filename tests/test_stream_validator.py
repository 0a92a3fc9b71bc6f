"""Tests of tests/stream_validator.py: hand-built good streams pass, every broken stream is rejected."""

from __future__ import annotations

import copy

import pytest
from llama_stack.apis.agents.openai_responses import (
    OpenAIResponseError,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseOutputMessageContentOutputText,
    OpenAIResponseOutputMessageFunctionToolCall,
    OpenAIResponseOutputMessageWebSearchToolCall,
)
from pydantic import BaseModel, ConfigDict
from stream_validator import validate_stream

RESP_ID = "resp-0001"


class Ev(BaseModel):
    """A generic event: type + sequence_number + whatever the event carries."""

    model_config = ConfigDict(extra="allow")
    type: str
    sequence_number: int


class RespEv(BaseModel):
    type: str
    sequence_number: int
    response: OpenAIResponseObject


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


def _response(status: str, output: list, rid: str = RESP_ID, error=None) -> OpenAIResponseObject:
    return OpenAIResponseObject(created_at=1, id=rid, model="m", status=status, output=output, error=error)


def _msg(mid: str, text: str, status: str = "completed") -> OpenAIResponseMessage:
    return OpenAIResponseMessage(
        id=mid,
        role="assistant",
        status=status,
        content=[OpenAIResponseOutputMessageContentOutputText(text=text)],
    )


def _fc(fid: str, call_id: str, name: str, args: str) -> OpenAIResponseOutputMessageFunctionToolCall:
    return OpenAIResponseOutputMessageFunctionToolCall(
        id=fid, call_id=call_id, name=name, arguments=args, status="completed"
    )


class Builder:
    def __init__(self):
        self.events: list = []

    def _seq(self) -> int:
        return len(self.events)

    def resp(self, type_: str, status: str, output=(), error=None, rid: str = RESP_ID):
        self.events.append(
            RespEv(type=type_, sequence_number=self._seq(), response=_response(status, list(output), rid, error))
        )
        return self

    def ev(self, type_: str, **fields):
        self.events.append(Ev(type=type_, sequence_number=self._seq(), **fields))
        return self

    def start(self):
        return self.resp("response.created", "in_progress").resp("response.in_progress", "in_progress")

    def message(self, oi: int, mid: str, deltas: list[str], done_text: str | None = None):
        text = "".join(deltas) if done_text is None else done_text
        self.ev(
            "response.output_item.added",
            output_index=oi,
            item={"id": mid, "type": "message", "role": "assistant", "status": "in_progress", "content": []},
        )
        part0 = {"type": "output_text", "text": "", "annotations": []}
        self.ev("response.content_part.added", item_id=mid, output_index=oi, content_index=0, part=part0)
        for d in deltas:
            self.ev("response.output_text.delta", item_id=mid, output_index=oi, content_index=0, delta=d, logprobs=[])
        self.ev("response.output_text.done", item_id=mid, output_index=oi, content_index=0, text=text, logprobs=[])
        part = {"type": "output_text", "text": text, "annotations": []}
        self.ev("response.content_part.done", item_id=mid, output_index=oi, content_index=0, part=part)
        item = _msg(mid, text).model_dump()
        self.ev("response.output_item.done", output_index=oi, item=item)
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
    b = Builder().start()
    b.fc_added(0, "fc_a", "call_a", "get_weather").fc_added(1, "fc_b", "call_b", "get_time")
    b.fc_delta(0, "fc_a", '{"city": ').fc_delta(1, "fc_b", '{"tz": ').fc_delta(0, "fc_a", '"Paris"}')
    b.fc_delta(1, "fc_b", '"UTC"}')
    b.fc_done(1, "fc_b", "call_b", "get_time", '{"tz": "UTC"}')
    b.fc_done(0, "fc_a", "call_a", "get_weather", '{"city": "Paris"}')
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


GOOD = {
    "text": good_text,
    "parallel_calls": good_parallel_calls,
    "web_search_then_message": good_web_search_then_message,
    "failed_midway": good_failed_midway,
    "failed_items_closed_incomplete": good_failed_items_closed_incomplete,
}


@pytest.mark.parametrize("name", list(GOOD))
def test_good_streams_pass(name):
    events = GOOD[name]()
    final = validate_stream(events)
    assert final is events[-1].response


def test_good_text_returns_final_response():
    final = validate_stream(good_text())
    assert isinstance(final, OpenAIResponseObject)
    assert final.output[0].content[0].text == "Hello world"


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
    i = _idx(ev, "response.function_call_arguments.delta", 3)  # fc_b's last delta
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
    """The round-2 message is opened at output_index 1 while index 0 is still open: that is fine,
    but its deltas then carry the web search item's id -> rejected."""
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
