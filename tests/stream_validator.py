"""Structural validator for OpenAI-Responses-style streams of event objects.

``validate_stream(events)`` raises ``AssertionError`` (with a message naming the offending event) when
the stream breaks the wire contract, and returns the terminal event's ``response`` otherwise.

Checked:
* every event is a pydantic ``BaseModel`` with ``.type`` and ``.sequence_number``; ``model_dump_json()``
  round-trips through ``json.loads`` with the same ``type`` / ``sequence_number``;
* every event parses, leniently (openai's own ``construct_type``), as openai-python's
  ``ResponseStreamEvent`` and yields the class matching its ``type``; the top-level fields that class
  requires are present (``logprobs`` tolerated);
* sequence numbers start at 0 and grow by exactly 1 across the whole stream (all inference rounds);
* ``response.created`` first, ``response.in_progress`` second, exactly one terminal event
  (completed / failed / incomplete) and it is last; response events carry a llama-stack
  ``OpenAIResponseObject`` and the same response id throughout;
* output items: ``output_index`` values are allocated 0, 1, 2, ... by ``output_item.added``; each added
  item is closed by exactly one ``output_item.done`` with the same index, id and type; message items are
  ``msg_...``, function calls ``fc_...``; content parts are opened/closed the same way; no event that
  targets an item (delta, done, web search progress...) falls outside that item's added/done window,
  and its ``item_id`` is the id of the item at its ``output_index``;
* text: content_part.added carries ``{type: output_text, text: "", annotations: []}``; concatenated
  ``output_text.delta`` == ``output_text.done.text`` == content_part.done text == final item text;
* function calls: concatenated ``function_call_arguments.delta`` == ``.done.arguments`` == done item
  arguments == final response item arguments;
* web search progress events come in order in_progress < searching < completed;
* the terminal response's output equals, in order, the ``output_item.done`` items (ids, types, text,
  arguments, status).  For ``response.failed`` / ``response.incomplete`` open items may stay unclosed,
  items may be closed with status ``incomplete``, the response's ``error`` must be set (failed), and
  every item it lists must have been emitted.
"""

from __future__ import annotations

import json
from typing import Any, get_args, get_origin

import pydantic
from llama_stack.apis.agents.openai_responses import OpenAIResponseObject
from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent

TERMINAL_TYPES = ("response.completed", "response.failed", "response.incomplete")
RESPONSE_EVENT_TYPES = ("response.created", "response.in_progress", "response.queued", *TERMINAL_TYPES)
# required by openai-python's event classes but commonly omitted by servers; tolerated
TOLERATED_MISSING_FIELDS = frozenset({"logprobs"})
WEB_SEARCH_PROGRESS = (
    "response.web_search_call.in_progress",
    "response.web_search_call.searching",
    "response.web_search_call.completed",
)


def _openai_event_classes() -> dict[str, type]:
    union = ResponseStreamEvent
    if get_origin(union) is not None and hasattr(union, "__metadata__"):
        union = get_args(union)[0]
    classes = {}
    for cls in get_args(union):
        literal = cls.model_fields["type"].annotation
        for value in get_args(literal):
            classes[value] = cls
    return classes


OPENAI_EVENT_CLASSES = _openai_event_classes()


class _Item:
    def __init__(self, index: int, added_at: int, item: dict):
        self.index = index
        self.added_at = added_at
        self.id = item.get("id")
        self.type = item.get("type")
        self.added_item = item
        self.done_item: dict | None = None
        self.done_at: int | None = None
        # content_index -> state
        self.parts: dict[int, dict[str, Any]] = {}
        self.arg_deltas: list[str] = []
        self.args_done: str | None = None
        self.web_search_progress: list[str] = []

    @property
    def open(self) -> bool:
        return self.done_item is None


def _fail(msg: str):
    raise AssertionError(msg)


def _check(cond: Any, msg: str):
    if not cond:
        _fail(msg)


def _describe(i: int, d: dict) -> str:
    return f"event #{i} ({d.get('type')!r}, sequence_number={d.get('sequence_number')!r})"


def _item_text(item: dict, content_index: int) -> str | None:
    content = item.get("content")
    if isinstance(content, str):
        return content if content_index == 0 else None
    if not isinstance(content, list) or content_index >= len(content):
        return None
    part = content[content_index]
    return part.get("text") if isinstance(part, dict) else None


def _check_event_object(i: int, event: Any) -> dict:
    _check(isinstance(event, pydantic.BaseModel), f"event #{i} is not a pydantic BaseModel: {type(event)!r}")
    _check(hasattr(event, "type"), f"event #{i} has no .type attribute: {event!r}")
    _check(hasattr(event, "sequence_number"), f"event #{i} ({event.type!r}) has no .sequence_number attribute")
    try:
        raw = event.model_dump_json()
    except Exception as e:  # pragma: no cover - message only
        _fail(f"event #{i} ({event.type!r}): model_dump_json() failed: {e!r}")
    d = json.loads(raw)
    _check(isinstance(d, dict), f"event #{i}: model_dump_json() is not a JSON object")
    _check(
        d.get("type") == event.type,
        f"event #{i}: JSON type {d.get('type')!r} != attribute type {event.type!r}",
    )
    _check(
        "sequence_number" in d and d["sequence_number"] == event.sequence_number,
        f"event #{i} ({event.type!r}): JSON sequence_number {d.get('sequence_number')!r}"
        f" != attribute {event.sequence_number!r}",
    )
    seq = event.sequence_number
    _check(
        isinstance(seq, int) and not isinstance(seq, bool) and seq == i,
        f"{_describe(i, d)}: sequence numbers must start at 0 and increase by 1 (expected {i})",
    )

    cls = OPENAI_EVENT_CLASSES.get(d["type"])
    _check(cls is not None, f"{_describe(i, d)}: type is not an openai-python ResponseStreamEvent type")
    parsed = construct_type(value=d, type_=ResponseStreamEvent)
    _check(
        type(parsed) is cls,
        f"{_describe(i, d)}: openai ResponseStreamEvent parsed it as {type(parsed)!r}, expected {cls.__name__}",
    )
    missing = [
        name
        for name, info in cls.model_fields.items()
        if info.is_required() and (info.alias or name) not in d and name not in TOLERATED_MISSING_FIELDS
    ]
    _check(not missing, f"{_describe(i, d)}: missing fields required by openai {cls.__name__}: {missing}")
    return d


def validate_stream(events, *, response_cls: type = OpenAIResponseObject):
    events = list(events)
    _check(events, "empty event stream")
    dumps = [_check_event_object(i, ev) for i, ev in enumerate(events)]
    types = [d["type"] for d in dumps]

    # ---- framing ------------------------------------------------------------------------------
    _check(types[0] == "response.created", f"first event must be response.created, got {types[0]!r}")
    _check(
        len(types) > 1 and types[1] == "response.in_progress",
        f"second event must be response.in_progress, got {types[1:2]!r}",
    )
    _check(types.count("response.created") == 1, "more than one response.created")
    _check(types.count("response.in_progress") == 1, "more than one response.in_progress")
    terminals = [i for i, t in enumerate(types) if t in TERMINAL_TYPES]
    _check(terminals, f"no terminal event ({'/'.join(TERMINAL_TYPES)}); types: {types}")
    _check(
        len(terminals) == 1, f"more than one terminal event at positions {terminals}: {[types[i] for i in terminals]}"
    )
    _check(
        terminals[0] == len(events) - 1, f"terminal event {types[terminals[0]]!r} is not last: {types[terminals[0] :]}"
    )
    terminal_type = types[-1]
    completed = terminal_type == "response.completed"
    # a stream that fails may close the items it had open as "incomplete"
    closing_statuses = ("completed",) if completed else ("completed", "incomplete")

    response_id = None
    for i, (ev, d) in enumerate(zip(events, dumps, strict=True)):
        if d["type"] not in RESPONSE_EVENT_TYPES:
            continue
        _check(hasattr(ev, "response"), f"{_describe(i, d)} has no .response")
        _check(
            isinstance(ev.response, response_cls),
            f"{_describe(i, d)}: .response is {type(ev.response)!r}, expected {response_cls.__name__}",
        )
        _check(isinstance(ev.response.output, list), f"{_describe(i, d)}: .response.output is not a list")
        rid = d["response"].get("id")
        _check(rid, f"{_describe(i, d)}: response has no id")
        if response_id is None:
            response_id = rid
        _check(rid == response_id, f"{_describe(i, d)}: response id {rid!r} differs from {response_id!r}")
        if d["type"] in ("response.created", "response.in_progress"):
            _check(
                d["response"].get("status") in ("in_progress", "queued"),
                f"{_describe(i, d)}: response status {d['response'].get('status')!r}, expected in_progress",
            )

    # ---- items -------------------------------------------------------------------------------
    items: dict[int, _Item] = {}
    for i, d in enumerate(dumps):
        t = d["type"]
        if t in RESPONSE_EVENT_TYPES:
            continue
        where = _describe(i, d)
        if t == "response.output_item.added":
            oi = d["output_index"]
            _check(oi == len(items), f"{where}: output_index {oi} but {len(items)} items were added before")
            item = d["item"]
            _check(isinstance(item, dict) and item.get("id"), f"{where}: item without id: {item!r}")
            _check(item.get("type"), f"{where}: item without type")
            if item["type"] == "message":
                _check(
                    str(item["id"]).startswith("msg_"), f"{where}: message item id {item['id']!r} must start with msg_"
                )
                _check(item.get("status") == "in_progress", f"{where}: added message status {item.get('status')!r}")
            elif item["type"] == "function_call":
                _check(
                    str(item["id"]).startswith("fc_"),
                    f"{where}: function_call item id {item['id']!r} must start with fc_",
                )
                _check(item.get("call_id") and item.get("name"), f"{where}: function_call item without call_id/name")
            items[oi] = _Item(oi, i, item)
            continue

        if "output_index" not in d:
            continue
        oi = d["output_index"]
        st = items.get(oi)
        _check(st is not None, f"{where}: output_index {oi} was never added")
        _check(st.open, f"{where}: item at output_index {oi} was already done (event #{st.done_at})")
        if "item_id" in d:
            _check(
                d["item_id"] == st.id, f"{where}: item_id {d['item_id']!r} != id {st.id!r} of item at output_index {oi}"
            )

        if t == "response.output_item.done":
            item = d["item"]
            _check(
                isinstance(item, dict) and item.get("id") == st.id,
                f"{where}: done item id {item.get('id')!r} != added id {st.id!r}",
            )
            _check(item.get("type") == st.type, f"{where}: done item type {item.get('type')!r} != {st.type!r}")
            open_parts = [ci for ci, p in st.parts.items() if not p["done"]]
            _check(not open_parts, f"{where}: content parts {open_parts} still open")
            if st.type == "message":
                _check(st.parts, f"{where}: message item done without any content part")
                for ci, p in st.parts.items():
                    _check(
                        _item_text(item, ci) == p["text_done"],
                        f"{where}: item content[{ci}] text {_item_text(item, ci)!r}"
                        f" != output_text.done {p['text_done']!r}",
                    )
                _check(item.get("status") in closing_statuses, f"{where}: done message status {item.get('status')!r}")
            elif st.type == "function_call":
                _check(
                    item.get("status") in closing_statuses, f"{where}: done function_call status {item.get('status')!r}"
                )
                if completed or item.get("status") == "completed":
                    _check(
                        st.args_done is not None, f"{where}: function_call done without function_call_arguments.done"
                    )
                if st.args_done is not None:
                    _check(
                        item.get("arguments") == st.args_done,
                        f"{where}: item arguments {item.get('arguments')!r} != arguments.done {st.args_done!r}",
                    )
                for key in ("call_id", "name"):
                    _check(item.get(key) == st.added_item.get(key), f"{where}: {key} changed between added and done")
            elif st.type == "web_search_call":
                _check(
                    item.get("status") in ("failed", *closing_statuses),
                    f"{where}: web_search_call status {item.get('status')!r}",
                )
            st.done_item = item
            st.done_at = i
        elif t == "response.content_part.added":
            ci = d["content_index"]
            _check(st.type == "message", f"{where}: content part on a {st.type!r} item")
            _check(ci not in st.parts, f"{where}: content_index {ci} added twice")
            _check(ci == len(st.parts), f"{where}: content_index {ci}, expected {len(st.parts)}")
            part = d["part"]
            if part.get("type") == "output_text":
                _check(
                    part.get("text") == "", f"{where}: added output_text part must be empty, got {part.get('text')!r}"
                )
                _check(part.get("annotations") == [], f"{where}: added output_text part needs annotations: []")
            st.parts[ci] = {"deltas": [], "text_done": None, "done": False}
        elif t == "response.content_part.done":
            ci = d["content_index"]
            p = st.parts.get(ci)
            _check(p is not None and not p["done"], f"{where}: content_index {ci} not open")
            _check(p["text_done"] is not None, f"{where}: content_part.done before output_text.done")
            _check(
                d["part"].get("text") == p["text_done"],
                f"{where}: part text {d['part'].get('text')!r} != output_text.done {p['text_done']!r}",
            )
            p["done"] = True
        elif t == "response.output_text.delta":
            ci = d["content_index"]
            p = st.parts.get(ci)
            _check(p is not None and not p["done"] and p["text_done"] is None, f"{where}: content_index {ci} not open")
            _check(isinstance(d.get("delta"), str), f"{where}: delta is not a string")
            p["deltas"].append(d["delta"])
        elif t == "response.output_text.done":
            ci = d["content_index"]
            p = st.parts.get(ci)
            _check(p is not None and not p["done"] and p["text_done"] is None, f"{where}: content_index {ci} not open")
            joined = "".join(p["deltas"])
            _check(d["text"] == joined, f"{where}: text {d['text']!r} != concatenated deltas {joined!r}")
            p["text_done"] = d["text"]
        elif t == "response.function_call_arguments.delta":
            _check(st.type == "function_call", f"{where}: arguments delta on a {st.type!r} item")
            _check(st.args_done is None, f"{where}: arguments delta after arguments.done")
            _check(isinstance(d.get("delta"), str), f"{where}: delta is not a string")
            st.arg_deltas.append(d["delta"])
        elif t == "response.function_call_arguments.done":
            _check(st.type == "function_call", f"{where}: arguments done on a {st.type!r} item")
            _check(st.args_done is None, f"{where}: arguments.done twice")
            joined = "".join(st.arg_deltas)
            _check(d["arguments"] == joined, f"{where}: arguments {d['arguments']!r} != concatenated deltas {joined!r}")
            st.args_done = d["arguments"]
        elif t in WEB_SEARCH_PROGRESS:
            _check(st.type == "web_search_call", f"{where}: web search event on a {st.type!r} item")
            _check(t not in st.web_search_progress, f"{where}: duplicate {t}")
            rank = WEB_SEARCH_PROGRESS.index(t)
            _check(
                all(WEB_SEARCH_PROGRESS.index(prev) < rank for prev in st.web_search_progress),
                f"{where}: {t} after {st.web_search_progress}",
            )
            st.web_search_progress.append(t)

    # ---- terminal response ---------------------------------------------------------------------
    final = events[-1].response
    final_d = dumps[-1]["response"]
    output = final_d.get("output")
    _check(isinstance(output, list), "terminal response has no output list")
    expected_status = terminal_type.split(".", 1)[1]
    _check(
        final_d.get("status") == expected_status,
        f"{terminal_type} carries a response with status {final_d.get('status')!r}",
    )
    if completed:
        still_open = [oi for oi, st in items.items() if st.open]
        _check(not still_open, f"output items {still_open} were added but never done")
        _check(final_d.get("error") is None, f"completed response has an error: {final_d.get('error')!r}")
        _check(
            len(output) == len(items),
            f"final response has {len(output)} output items, stream produced {len(items)}: "
            f"{[o.get('id') for o in output]} vs {[items[k].id for k in sorted(items)]}",
        )
    if terminal_type == "response.failed":
        err = final_d.get("error")
        _check(
            isinstance(err, dict) and err.get("message") and err.get("code"),
            f"response.failed without error code/message: {err!r}",
        )
    for oi, out in enumerate(output):
        st = items.get(oi)
        _check(st is not None, f"final output[{oi}] ({out.get('id')!r}) was never streamed")
        _check(st.done_item is not None, f"final output[{oi}] ({out.get('id')!r}) was never output_item.done")
        _check(
            out.get("id") == st.id and out.get("type") == st.type,
            f"final output[{oi}] is {out.get('type')!r}/{out.get('id')!r}, stream item is {st.type!r}/{st.id!r}",
        )
        done = st.done_item
        if st.type == "message":
            for ci, p in st.parts.items():
                _check(
                    _item_text(out, ci) == p["text_done"],
                    f"final output[{oi}].content[{ci}] text {_item_text(out, ci)!r} != streamed {p['text_done']!r}",
                )
        elif st.type == "function_call":
            for key in ("arguments", "call_id", "name"):
                _check(
                    out.get(key) == done.get(key),
                    f"final output[{oi}].{key} {out.get(key)!r} != streamed {done.get(key)!r}",
                )
        _check(
            out.get("status") == done.get("status"),
            f"final output[{oi}].status {out.get('status')!r} != streamed {done.get('status')!r}",
        )
    return final
