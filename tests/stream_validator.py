"""Structural validator for OpenAI-Responses-style streams of event objects.

``validate_stream(events)`` raises ``AssertionError`` (with a message naming the offending event and
the rule it breaks) when the stream breaks the wire contract that clients of the Responses API rely
on, and returns the terminal event's ``response`` otherwise.

Checked:
* every event is a pydantic ``BaseModel`` with ``.type`` and ``.sequence_number``; ``model_dump_json()``
  round-trips through ``json.loads`` with the same ``type`` / ``sequence_number`` (openai-python's own
  objects are dumped with ``exclude_unset``: exactly the fields the server sent);
* every event parses, leniently (openai's own ``construct_type``), as openai-python's
  ``ResponseStreamEvent`` and yields the class matching its ``type``; the top-level fields that class
  requires are present (``logprobs`` tolerated);
* every event, and so every response it carries, follows the Open Responses OpenAPI document
  (``open_responses_schema.validate_event``, with that module's exclusion tables for ``schema_host``);
* sequence numbers start at 0 and grow by exactly 1 across the whole stream (all inference rounds);
* framing: ``response.created`` first, ``response.in_progress`` second -- except the short stream
  ``response.created`` -> ``response.failed`` of a request that failed before anything started; a
  background response's ``response.created`` has status ``queued`` and is followed by exactly one
  ``response.queued`` (status ``queued``), then ``response.in_progress`` (status ``in_progress``), as
  OpenAI streams it; ``response.queued`` appears nowhere else --
  exactly one terminal event (``response.completed`` | ``response.failed`` | ``response.incomplete``)
  and it is last; response events carry a ``response_cls`` and the same response id throughout;
* terminal: ``response.completed`` has status completed, no error, no incomplete_details;
  ``response.incomplete`` has status incomplete and ``incomplete_details.reason``;
  ``response.failed`` has status failed and ``error.code`` + ``error.message``; ``usage``, when
  present, has openai-python's ``ResponseUsage`` shape with ``total_tokens == input + output``;
* items are strictly nested: ``output_index`` values are allocated 0, 1, 2, ... by
  ``output_item.added``, **one item is open at a time** (item N's ``output_item.done`` comes before item
  N+1's ``output_item.added``), each added item is closed by exactly one ``output_item.done`` with the
  same index, id and type; no event that targets an item (delta, done, progress...) falls outside that
  item's added/done window, and its ``item_id`` is the id of the item at its ``output_index``;
* ids: message ``msg_``, function_call ``fc_``, reasoning ``rs_``, mcp_call ``mcp_``;
* content parts are strictly nested too: indices 0, 1, ... and **one part open at a time** within an
  item; part types by item type: message -> ``output_text`` | ``refusal``, reasoning ->
  ``reasoning_text``; a part is added empty (``output_text`` with ``annotations: []``);
  for every part type, concatenated deltas (``output_text.delta`` / ``refusal.delta`` /
  ``reasoning_text.delta``) == the ``.done`` event's text (``text`` / ``refusal`` / ``text``) ==
  ``content_part.done``'s part == the done item's ``content[k]`` == the terminal response's item;
* ``output_text`` parts carry ``annotations`` (a list) wherever they appear: content_part events,
  added and done items, the terminal response's output;
* function calls: ``output_item.added`` carries the final ``call_id`` and ``name`` (equal to the done
  item's and the terminal output's); concatenated ``function_call_arguments.delta`` == ``.done.arguments``
  == done item arguments == terminal arguments; the same for ``mcp_call`` items with openai-python's
  ``response.mcp_call_arguments.delta`` / ``.done``;
* ``response.compaction.compacting`` (a compaction_trigger's summary being sampled) only on a
  ``compaction`` item, inside its window;
* progress events come in order, each at most once, on an item of their own type:
  web_search_call and file_search_call ``in_progress < searching < completed``; mcp_call and
  mcp_list_tools ``in_progress < completed | failed``;
* the terminal response's output equals, in order, the ``output_item.done`` items (ids, types,
  statuses, content, arguments) for completed and incomplete responses; items of a response that is
  not completed may be closed with status ``incomplete``; a failed response may leave its last item
  open, and every item it lists must have been streamed and done.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import openai
import pydantic
from open_responses_schema import SPEC_AVAILABLE, SPEC_FILE, installed_host, validate_event
from openai._models import construct_type
from openai.types.responses import ResponseStreamEvent

# The response class events carry by default: the installed host's (llama-stack's, else OGX's).
try:
    from llama_stack.apis.agents.openai_responses import OpenAIResponseObject
except ImportError:
    try:
        from ogx_api import OpenAIResponseObject
    except ImportError:
        OpenAIResponseObject = pydantic.BaseModel

TERMINAL_TYPES = ("response.completed", "response.failed", "response.incomplete")
RESPONSE_EVENT_TYPES = ("response.created", "response.in_progress", "response.queued", *TERMINAL_TYPES)
# required by openai-python's event classes but commonly omitted by servers; tolerated
TOLERATED_MISSING_FIELDS = frozenset({"logprobs"})

# The Open Responses host whose exclusions apply by default: the installed llama-stack's.
DEFAULT_SCHEMA_HOST = installed_host()

# Required id prefixes by item type.
ID_PREFIXES = {"message": "msg_", "function_call": "fc_", "reasoning": "rs_", "mcp_call": "mcp_", "compaction": "cmp_"}


@dataclass(frozen=True)
class PartKind:
    item_types: tuple[str, ...]  # the item types that may hold this part type
    delta: str  # its delta event type
    done: str  # its done event type
    field: str  # the text field of the part and of the done event


PART_KINDS = {
    "output_text": PartKind(("message",), "response.output_text.delta", "response.output_text.done", "text"),
    "refusal": PartKind(("message",), "response.refusal.delta", "response.refusal.done", "refusal"),
    "reasoning_text": PartKind(("reasoning",), "response.reasoning_text.delta", "response.reasoning_text.done", "text"),
}
PART_DELTA_TYPES = {kind.delta: name for name, kind in PART_KINDS.items()}
PART_DONE_TYPES = {kind.done: name for name, kind in PART_KINDS.items()}
ITEMS_WITH_PARTS = frozenset(t for kind in PART_KINDS.values() for t in kind.item_types)

# argument events -> (item type, "delta" | "done")
ARGUMENT_EVENTS = {
    "response.function_call_arguments.delta": ("function_call", "delta"),
    "response.function_call_arguments.done": ("function_call", "done"),
    "response.mcp_call_arguments.delta": ("mcp_call", "delta"),
    "response.mcp_call_arguments.done": ("mcp_call", "done"),
}
ITEMS_WITH_ARGUMENTS = ("function_call", "mcp_call")

# progress events -> (item type, rank): each at most once, ranks strictly increasing
PROGRESS_EVENTS = {
    "response.web_search_call.in_progress": ("web_search_call", 0),
    "response.web_search_call.searching": ("web_search_call", 1),
    "response.web_search_call.completed": ("web_search_call", 2),
    "response.file_search_call.in_progress": ("file_search_call", 0),
    "response.file_search_call.searching": ("file_search_call", 1),
    "response.file_search_call.completed": ("file_search_call", 2),
    "response.mcp_call.in_progress": ("mcp_call", 0),
    "response.mcp_call.completed": ("mcp_call", 2),
    "response.mcp_call.failed": ("mcp_call", 2),
    "response.mcp_list_tools.in_progress": ("mcp_list_tools", 0),
    "response.mcp_list_tools.completed": ("mcp_list_tools", 2),
    "response.mcp_list_tools.failed": ("mcp_list_tools", 2),
}
# item types whose search/tool may fail without the response failing
MAY_CLOSE_FAILED = ("web_search_call", "file_search_call", "mcp_call", "mcp_list_tools")


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


class _Part:
    def __init__(self, kind: str):
        self.kind = kind
        self.deltas: list[str] = []
        self.value_done: str | None = None  # from the part's .done event
        self.closed = False  # content_part.done seen
        self.annotations: list[dict] = []  # from output_text.annotation.added events


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
        self.parts: dict[int, _Part] = {}
        self.arg_deltas: list[str] = []
        self.args_done: str | None = None
        self.progress: list[str] = []

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


def _content(item: dict) -> list | None:
    content = item.get("content")
    return content if isinstance(content, list) else None


def _part_value(part: Any, kind: str) -> Any:
    """The text a content part carries (``text`` or ``refusal``)."""
    return part.get(PART_KINDS[kind].field) if isinstance(part, dict) else None


def _item_text(item: dict, content_index: int) -> str | None:
    """Text of an item's content part (a string content counts as part 0)."""
    content = item.get("content")
    if isinstance(content, str):
        return content if content_index == 0 else None
    if not isinstance(content, list) or content_index >= len(content):
        return None
    part = content[content_index]
    if not isinstance(part, dict):
        return None
    return part.get("refusal") if part.get("type") == "refusal" else part.get("text")


def _check_annotations(item: dict, what: str):
    """output_text parts carry ``annotations`` (a list)."""
    for ci, part in enumerate(_content(item) or ()):
        if isinstance(part, dict) and part.get("type") == "output_text":
            _check(
                isinstance(part.get("annotations"), list),
                f"{what}.content[{ci}]: output_text part without annotations (a list), got "
                f"{part.get('annotations', '<missing>')!r}: output_text parts must carry annotations",
            )


def _check_item_content(item: dict, st: _Item, what: str, final: bool):
    """An item's content equals the parts the stream produced (type and text of each)."""
    content = _content(item)
    _check(
        content is not None and len(content) == len(st.parts),
        f"{what}: item content has {len(content) if content is not None else 'no'} parts, "
        f"the stream produced {len(st.parts)}",
    )
    for ci, p in st.parts.items():
        part = content[ci]
        _check(
            isinstance(part, dict) and part.get("type") == p.kind,
            f"{what}: item content[{ci}] is {part.get('type') if isinstance(part, dict) else part!r}, "
            f"the stream produced a {p.kind} part",
        )
        kind = PART_KINDS[p.kind]
        _check(
            part.get(kind.field) == p.value_done,
            f"{what}: item content[{ci}] {kind.field} {part.get(kind.field)!r}"
            f" != {'streamed' if final else kind.done} {p.value_done!r}",
        )


def _dump(event: Any) -> dict:
    # openai-python's objects are parsed from the wire; their unset fields were not sent (a plain dump
    # would invent them as null). Any other event is dumped the way llama-stack's server sends it.
    if isinstance(event, openai.BaseModel):
        return json.loads(event.model_dump_json(exclude_unset=True))
    return json.loads(event.model_dump_json())


def _check_event_object(i: int, event: Any) -> dict:
    _check(isinstance(event, pydantic.BaseModel), f"event #{i} is not a pydantic BaseModel: {type(event)!r}")
    _check(hasattr(event, "type"), f"event #{i} has no .type attribute: {event!r}")
    _check(hasattr(event, "sequence_number"), f"event #{i} ({event.type!r}) has no .sequence_number attribute")
    try:
        d = _dump(event)
    except Exception as e:  # pragma: no cover - message only
        _fail(f"event #{i} ({event.type!r}): model_dump_json() failed: {e!r}")
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


def _check_usage(usage: Any, where: str):
    """openai-python's ResponseUsage: input_tokens, input_tokens_details.cached_tokens, output_tokens,
    output_tokens_details.reasoning_tokens, total_tokens == input + output."""

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    _check(isinstance(usage, dict), f"{where}: usage is not an object: {usage!r}")
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        _check(count(usage.get(key)), f"{where}: usage.{key} must be a token count, got {usage.get(key)!r}")
    for key, sub in (("input_tokens_details", "cached_tokens"), ("output_tokens_details", "reasoning_tokens")):
        details = usage.get(key)
        _check(
            isinstance(details, dict) and count(details.get(sub)),
            f"{where}: usage.{key}.{sub} must be a token count, got {details!r}",
        )
    _check(
        usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"],
        f"{where}: usage.total_tokens {usage['total_tokens']} != input_tokens {usage['input_tokens']}"
        f" + output_tokens {usage['output_tokens']}",
    )


_warned_no_spec = False


def _schema_check(dumps: list[dict], schema_host: str | None):
    global _warned_no_spec
    if schema_host is None:
        return
    if not SPEC_AVAILABLE:
        if not _warned_no_spec:
            warnings.warn(f"Open Responses schema checks skipped: no spec at {SPEC_FILE}", stacklevel=3)
            _warned_no_spec = True
        return
    for i, d in enumerate(dumps):
        validate_event(d, host=schema_host, what=_describe(i, d))


def validate_stream(
    events,
    *,
    response_cls: type = OpenAIResponseObject,
    schema_host: str | None = DEFAULT_SCHEMA_HOST,
):
    """Validate a stream of event objects; return the terminal event's ``response``.

    ``schema_host``: whose exclusions (``open_responses_schema.HOST_EXCLUDED_FIELDS``) apply when each
    event is checked against the Open Responses spec (default: the installed llama-stack's; ``"full"``
    for none; ``None`` skips the schema check).
    """
    events = list(events)
    _check(events, "empty event stream")
    dumps = [_check_event_object(i, ev) for i, ev in enumerate(events)]
    types = [d["type"] for d in dumps]

    # ---- framing ------------------------------------------------------------------------------
    _check(types[0] == "response.created", f"first event must be response.created, got {types[0]!r}")
    # a background response starts queued: response.created (queued) -> response.queued -> response.in_progress
    queued = dumps[0].get("response", {}).get("status") == "queued"
    start = 2 if queued else 1
    if queued:
        _check(
            types[1:2] == ["response.queued"],
            f"a response created queued must be followed by response.queued, got {types[1:2]!r}",
        )
    _check(
        types.count("response.queued") == (1 if queued else 0),
        f"response.queued must come exactly once, right after a response.created with status queued; "
        f"types: {types[:4]}",
    )
    # a request that fails before anything started: response.created -> response.failed
    failed_at_start = types[start:] == ["response.failed"]
    _check(
        failed_at_start or (len(types) > start and types[start] == "response.in_progress"),
        f"{'second' if start == 1 else 'third'} event must be response.in_progress (or response.failed, ending a "
        f"request that failed before "
        f"it started), got {types[start : start + 1]!r}",
    )
    _check(types.count("response.created") == 1, "more than one response.created")
    _check(types.count("response.in_progress") <= 1, "more than one response.in_progress")
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
    # all items closed and listed in the final output
    finished = terminal_type in ("response.completed", "response.incomplete")
    # a response that did not complete may close the items it had open as "incomplete"
    closing_statuses = ("completed",) if completed else ("completed", "incomplete")

    # ---- schema (Open Responses) ----------------------------------------------------------------
    _schema_check(dumps, schema_host)

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
        if d["type"] in ("response.created", "response.queued", "response.in_progress"):
            expected = {"response.created": ("in_progress", "queued"), "response.queued": ("queued",)}.get(
                d["type"], ("in_progress",)
            )
            _check(
                d["response"].get("status") in expected,
                f"{_describe(i, d)}: response status {d['response'].get('status')!r}, expected {' or '.join(expected)}",
            )

    # ---- items -------------------------------------------------------------------------------
    items: dict[int, _Item] = {}
    for i, d in enumerate(dumps):
        t = d["type"]
        if t in RESPONSE_EVENT_TYPES:
            continue
        where = _describe(i, d)
        if t == "response.output_item.added":
            _item_added(where, i, d, items)
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
            _item_done(where, i, d, st, completed, closing_statuses)
        elif t == "response.content_part.added":
            _part_added(where, d, st)
        elif t == "response.content_part.done":
            _part_done(where, d, st)
        elif t in PART_DELTA_TYPES:
            ci = d.get("content_index")
            p = st.parts.get(ci)
            _check(p is not None and not p.closed and p.value_done is None, f"{where}: content_index {ci} not open")
            _check(p.kind == PART_DELTA_TYPES[t], f"{where}: {t} on a {p.kind} part (content_index {ci})")
            _check(isinstance(d.get("delta"), str), f"{where}: delta is not a string")
            p.deltas.append(d["delta"])
        elif t in PART_DONE_TYPES:
            ci = d.get("content_index")
            p = st.parts.get(ci)
            _check(p is not None and not p.closed and p.value_done is None, f"{where}: content_index {ci} not open")
            _check(p.kind == PART_DONE_TYPES[t], f"{where}: {t} on a {p.kind} part (content_index {ci})")
            field = PART_KINDS[p.kind].field
            joined = "".join(p.deltas)
            _check(d.get(field) == joined, f"{where}: {field} {d.get(field)!r} != concatenated deltas {joined!r}")
            p.value_done = d[field]
        elif t == ANNOTATION_ADDED:
            _annotation_added(where, d, st)
        elif t in ARGUMENT_EVENTS:
            item_type, step = ARGUMENT_EVENTS[t]
            _check(st.type == item_type, f"{where}: arguments {step} on a {st.type!r} item")
            if step == "delta":
                _check(st.args_done is None, f"{where}: arguments delta after arguments.done")
                _check(isinstance(d.get("delta"), str), f"{where}: delta is not a string")
                st.arg_deltas.append(d["delta"])
            else:
                _check(st.args_done is None, f"{where}: arguments.done twice")
                joined = "".join(st.arg_deltas)
                _check(
                    d.get("arguments") == joined,
                    f"{where}: arguments {d.get('arguments')!r} != concatenated deltas {joined!r}",
                )
                st.args_done = d["arguments"]
        elif t == "response.compaction.compacting":
            # A piece of a compaction's summary was sampled: no content, any number of times.
            _check(st.type == "compaction", f"{where}: {t} on a {st.type!r} item")
        elif t in PROGRESS_EVENTS:
            item_type, rank = PROGRESS_EVENTS[t]
            _check(st.type == item_type, f"{where}: {t} on a {st.type!r} item")
            _check(t not in st.progress, f"{where}: duplicate {t}")
            _check(
                all(PROGRESS_EVENTS[prev][1] < rank for prev in st.progress),
                f"{where}: {t} after {st.progress} (progress events must come in order, at most one outcome)",
            )
            st.progress.append(t)

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
    details = final_d.get("incomplete_details")
    if completed:
        _check(final_d.get("error") is None, f"completed response has an error: {final_d.get('error')!r}")
        _check(details is None, f"completed response has incomplete_details: {details!r}")
    if terminal_type == "response.incomplete":
        _check(
            isinstance(details, dict) and isinstance(details.get("reason"), str) and details["reason"],
            f"response.incomplete without incomplete_details.reason: {details!r}",
        )
    if terminal_type == "response.failed":
        err = final_d.get("error")
        _check(
            isinstance(err, dict) and err.get("message") and err.get("code"),
            f"response.failed without error code/message: {err!r}",
        )
    if final_d.get("usage") is not None:
        _check_usage(final_d["usage"], f"{terminal_type} response")
    if finished:
        still_open = [oi for oi, st in items.items() if st.open]
        _check(not still_open, f"output items {still_open} were added but never done")
        _check(
            len(output) == len(items),
            f"final response has {len(output)} output items, stream produced {len(items)}: "
            f"{[o.get('id') for o in output]} vs {[items[k].id for k in sorted(items)]}",
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
        if st.type in ITEMS_WITH_PARTS:
            _check_annotations(out, f"final output[{oi}]")
            for ci, p in st.parts.items():
                _check(
                    _item_text(out, ci) == p.value_done,
                    f"final output[{oi}].content[{ci}] {PART_KINDS[p.kind].field} {_item_text(out, ci)!r}"
                    f" != streamed {p.value_done!r}",
                )
            _check_item_content(out, st, f"final output[{oi}]", final=True)
        keys = {"function_call": ("arguments", "call_id", "name"), "mcp_call": ("arguments", "name", "server_label")}
        for key in keys.get(st.type, ()):
            _check(
                out.get(key) == done.get(key),
                f"final output[{oi}].{key} {out.get(key)!r} != streamed {done.get(key)!r}",
            )
        if st.type == "mcp_call":
            for key in ("output", "error"):
                _check(
                    out.get(key) == done.get(key),
                    f"final output[{oi}].{key} {out.get(key)!r} != streamed {done.get(key)!r}",
                )
        _check(
            out.get("status") == done.get("status"),
            f"final output[{oi}].status {out.get('status')!r} != streamed {done.get('status')!r}",
        )
    return final


def _item_added(where: str, i: int, d: dict, items: dict[int, _Item]):
    oi = d["output_index"]
    _check(oi == len(items), f"{where}: output_index {oi} but {len(items)} items were added before")
    still_open = [st for st in items.values() if st.open]
    _check(
        not still_open,
        f"{where}: output_item.added for output_index {oi} while item {[st.index for st in still_open]} "
        f"({', '.join(repr(st.id) for st in still_open)}) is still open: items must not overlap "
        "(one item open at a time; output_item.done comes before the next output_item.added)",
    )
    item = d["item"]
    _check(isinstance(item, dict) and item.get("id"), f"{where}: item without id: {item!r}")
    _check(item.get("type"), f"{where}: item without type")
    prefix = ID_PREFIXES.get(item["type"])
    if prefix is not None:
        _check(
            str(item["id"]).startswith(prefix),
            f"{where}: {item['type']} item id {item['id']!r} must start with {prefix}",
        )
    if item["type"] == "message":
        _check(item.get("status") == "in_progress", f"{where}: added message status {item.get('status')!r}")
    elif item["type"] == "function_call":
        _check(
            item.get("call_id") and item.get("name"),
            f"{where}: function_call item without call_id/name (output_item.added must carry the final call_id "
            "and name)",
        )
    _check_annotations(item, f"{where}: added item")
    items[oi] = _Item(oi, i, item)


def _item_done(where: str, i: int, d: dict, st: _Item, completed: bool, closing_statuses: tuple[str, ...]):
    item = d["item"]
    _check(
        isinstance(item, dict) and item.get("id") == st.id,
        f"{where}: done item id {item.get('id')!r} != added id {st.id!r}",
    )
    _check(item.get("type") == st.type, f"{where}: done item type {item.get('type')!r} != {st.type!r}")
    open_parts = [ci for ci, p in st.parts.items() if not p.closed]
    _check(not open_parts, f"{where}: content parts {open_parts} still open")
    status = item.get("status")
    if st.type in ITEMS_WITH_PARTS:
        if st.type == "message":
            _check(st.parts, f"{where}: message item done without any content part")
            _check(status in closing_statuses, f"{where}: done message status {status!r}")
        elif status is not None:
            _check(status in closing_statuses, f"{where}: done {st.type} status {status!r}")
        _check_annotations(item, f"{where}: done item")
        _check_item_content(item, st, where, final=False)
    if st.type in ITEMS_WITH_ARGUMENTS:
        if st.type == "function_call":
            _check(status in closing_statuses, f"{where}: done function_call status {status!r}")
        if completed or status == "completed":
            _check(
                st.args_done is not None,
                f"{where}: {st.type} done without "
                f"{'function_call_arguments' if st.type == 'function_call' else 'mcp_call_arguments'}.done",
            )
        if st.args_done is not None:
            _check(
                item.get("arguments") == st.args_done,
                f"{where}: item arguments {item.get('arguments')!r} != arguments.done {st.args_done!r}",
            )
        keys = ("call_id", "name") if st.type == "function_call" else ("name", "server_label")
        for key in keys:
            if st.type == "mcp_call" and key not in st.added_item:
                continue
            _check(
                item.get(key) == st.added_item.get(key),
                f"{where}: {key} changed between added and done ({st.added_item.get(key)!r} -> {item.get(key)!r}): "
                f"output_item.added must carry the final {key}",
            )
    if st.type in MAY_CLOSE_FAILED and status is not None:
        _check(status in ("failed", *closing_statuses), f"{where}: {st.type} status {status!r}")
    st.done_item = item
    st.done_at = i


def _part_added(where: str, d: dict, st: _Item):
    ci = d["content_index"]
    part = d["part"]
    kind = part.get("type") if isinstance(part, dict) else None
    _check(
        kind in PART_KINDS and st.type in PART_KINDS[kind].item_types,
        f"{where}: content part of type {kind!r} on a {st.type!r} item",
    )
    _check(ci not in st.parts, f"{where}: content_index {ci} added twice")
    _check(ci == len(st.parts), f"{where}: content_index {ci}, expected {len(st.parts)}")
    still_open = [k for k, p in st.parts.items() if not p.closed]
    _check(
        not still_open,
        f"{where}: content part {ci} added while part {still_open} is still open: content parts must not overlap "
        "(one part open at a time; content_part.done comes before the next content_part.added)",
    )
    field = PART_KINDS[kind].field
    _check(part.get(field) == "", f"{where}: added {kind} part must be empty, got {part.get(field)!r}")
    if kind == "output_text":
        _check(part.get("annotations") == [], f"{where}: added output_text part needs annotations: []")
    st.parts[ci] = _Part(kind)


def _part_done(where: str, d: dict, st: _Item):
    ci = d["content_index"]
    p = st.parts.get(ci)
    _check(p is not None and not p.closed, f"{where}: content_index {ci} not open")
    part = d["part"]
    _check(
        isinstance(part, dict) and part.get("type") == p.kind,
        f"{where}: part type {part.get('type') if isinstance(part, dict) else part!r} != added {p.kind!r}",
    )
    kind = PART_KINDS[p.kind]
    _check(p.value_done is not None, f"{where}: content_part.done before {kind.done}")
    _check(
        part.get(kind.field) == p.value_done,
        f"{where}: part {kind.field} {part.get(kind.field)!r} != {kind.done} {p.value_done!r}",
    )
    if p.kind == "output_text":
        _check(
            isinstance(part.get("annotations"), list),
            f"{where}: content_part.done output_text part without annotations (a list): output_text parts must "
            "carry annotations",
        )
        _check(
            part.get("annotations") == p.annotations,
            f"{where}: part annotations {part.get('annotations')!r} != the annotations added {p.annotations!r}",
        )
    p.closed = True


ANNOTATION_ADDED = "response.output_text.annotation.added"


def _annotation_added(where: str, d: dict, st: _Item):
    """An annotation of an open output_text part, before its ``output_text.done``: numbered in order, and a
    citation's ``index`` within the text streamed so far (deltas come before the annotation of their text)."""
    ci = d.get("content_index")
    p = st.parts.get(ci)
    _check(p is not None and not p.closed and p.value_done is None, f"{where}: content_index {ci} not open")
    _check(p.kind == "output_text", f"{where}: annotation on a {p.kind} part")
    _check(
        d.get("annotation_index") == len(p.annotations),
        f"{where}: annotation_index {d.get('annotation_index')!r}, expected {len(p.annotations)}",
    )
    annotation = d.get("annotation")
    _check(isinstance(annotation, dict), f"{where}: annotation is not an object")
    if "index" in annotation:
        streamed = len("".join(p.deltas))
        _check(
            isinstance(annotation["index"], int) and 0 <= annotation["index"] <= streamed,
            f"{where}: annotation index {annotation['index']!r} outside the {streamed} characters streamed so far",
        )
    p.annotations.append(annotation)
