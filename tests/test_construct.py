"""Response objects built from the core's JSON without validation (`responses_rs._construct`, the glue's
`Constructor`) are exactly what pydantic validates from the same JSON: class, every field, `repr` (field
order), `model_fields_set` and extras, at every level; data a plan does not describe falls back to
validation, and classes whose validation a plan cannot reproduce get no plan."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Annotated, Any, Literal

import pytest
from openai.types.chat import ChatCompletionChunk
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

import responses_rs
from responses_rs import _compat
from responses_rs._construct import Builder, Planner, constructor

LS = _compat.LlamaStackResponseObject
FULL = _compat.OpenAIResponseObject


def _levels(obj: Any) -> list[tuple[str, Any, Any]]:
    """(class, fields set, extra) of every model instance under obj, depth first."""
    out: list[tuple[str, Any, Any]] = []
    if isinstance(obj, BaseModel):
        out.append((type(obj).__qualname__, sorted(obj.model_fields_set), obj.__pydantic_extra__))
        for name in type(obj).model_fields:
            out.extend(_levels(getattr(obj, name)))
    elif isinstance(obj, list):
        for item in obj:
            out.extend(_levels(item))
    return out


def assert_same(built: Any, validated: Any) -> None:
    assert type(built) is type(validated)
    assert built == validated
    assert repr(built) == repr(validated)
    assert built.model_dump() == validated.model_dump()
    assert built.model_dump_json() == validated.model_dump_json()
    assert list(built.__dict__) == list(validated.__dict__)
    assert _levels(built) == _levels(validated)


def _record(**overrides: Any) -> dict[str, Any]:
    record = {
        "created_at": 1_700_000_000,
        "error": None,
        "id": "resp-1",
        "model": "m",
        "object": "response",
        "output": [
            {
                "type": "message",
                "content": [{"type": "output_text", "text": "Hi"}],
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
            }
        ],
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "status": "completed",
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "top_p": None,
        "truncation": None,
        "user": None,
    }
    record.update(overrides)
    return record


FUNCTION_CALL = {
    "type": "function_call",
    "call_id": "call_1",
    "name": "get_weather",
    "arguments": '{"city":"Paris"}',
    "id": "fc_1",
    "status": "completed",
}
FILE_SEARCH = {
    "type": "file_search_call",
    "id": "fs_1",
    "queries": ["q"],
    "status": "completed",
    "results": [{"file_id": "f", "score": 0.5, "text": "t", "attributes": {"a": 1}}],
}
WEB_SEARCH = {"type": "web_search_call", "id": "ws_1", "status": "completed"}
MCP_LIST = {
    "type": "mcp_list_tools",
    "id": "mcpl_1",
    "server_label": "s",
    "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object", "properties": {}}}],
}
MCP_CALL = {
    "type": "mcp_call",
    "id": "mcp_1",
    "arguments": "{}",
    "name": "t",
    "server_label": "s",
    "error": None,
    "output": "out",
}
JSON_SCHEMA_TEXT = {
    "format": {"name": "x", "schema": {"type": "object", "b": 1, "a": 2}, "strict": True, "type": "json_schema"}
}


def _output_types(cls: type[BaseModel]) -> set[str]:
    """The item types the class's `output` union takes (llama-stack 0.2.7 has no file_search nor MCP items)."""
    planner = Planner()
    planner.model(cls)
    kinds = {name: kind for name, kind, *_ in planner.plans[0][1]}
    return set(kinds["output"][1][1])


LS_TYPES = _output_types(LS)
FULL_TYPES = _output_types(FULL)
HAS_TEXT = "text" in LS.model_fields

RECORDS = {
    "message": _record(),
    "temperature int -> float": _record(temperature=1, top_p=0.5, parallel_tool_calls=True),
    "json_schema text": _record(text=JSON_SCHEMA_TEXT, user="u"),
    "text format dropped keys": _record(text={"format": {"type": "text", "unknown": 1}}),
    "failed": _record(status="failed", output=[], error={"code": "server_error", "message": "boom"}),
    "items": _record(
        output=[i for i in (FUNCTION_CALL, FILE_SEARCH, WEB_SEARCH, MCP_LIST, MCP_CALL) if i["type"] in LS_TYPES]
    ),
    "input message": _record(
        output=[{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q"}]}]
    ),
    "string content": _record(output=[{"type": "message", "role": "user", "content": "q"}]),
    "empty content": _record(output=[{"type": "message", "role": "assistant", "content": []}]),
}

FULL_EXTRA = {
    "completed_at": 1_700_000_001,
    "incomplete_details": None,
    "instructions": "be brief",
    "tools": [{"type": "function", "name": "f", "parameters": {"z": 1, "a": 2}}],
    "tool_choice": "auto",
    "usage": {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": 5,
    },
    "metadata": {"k": "v"},
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "not_declared": {"kept": "as an extra"},
}
REASONING = {
    "type": "reasoning",
    "id": "rs_1",
    "summary": [],
    "content": [{"type": "reasoning_text", "text": "hmm"}],
    "status": "completed",
}
REFUSAL_MESSAGE = {
    "type": "message",
    "id": "msg_2",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "refusal", "refusal": "no"}, {"type": "output_text", "text": "x", "annotations": [{"a": 1}]}],
}


def _full(record: dict[str, Any]) -> dict[str, Any]:
    """The record in OpenAI's shape: output text carries its annotations (a default pydantic would copy,
    which the plan does not fill in: without them the object is validated)."""
    full = copy.deepcopy({**record, **FULL_EXTRA})
    for item in full["output"]:
        for part in item.get("content", ()) if isinstance(item.get("content"), list) else ():
            if part["type"] == "output_text":
                part["annotations"] = []
    return full


FULL_RESPONSES = {
    **{name: _full(record) for name, record in RECORDS.items()},
    "reasoning and refusal": _record(output=[REASONING, REFUSAL_MESSAGE], **FULL_EXTRA),
}
if "mcp_call" in FULL_TYPES:
    FULL_RESPONSES["mcp call error object"] = _record(
        output=[{**MCP_CALL, "error": {"type": "tool_execution_error", "message": "x"}, "status": "failed"}]
    )

# Data the plans do not describe: the builder falls back to validation (same object or same error).
UNFIT = {
    "unknown item type": _record(output=[{"type": "image_generation_call", "id": "x"}]),
    "type not first": _record(output=[{"id": "msg_1", "type": "message", "role": "user", "content": "q"}]),
    "missing required": {k: v for k, v in _record().items() if k != "status"},
    "wrong scalar": _record(temperature="hot"),
    "bool for int": _record(created_at=True),
    "float for int": _record(created_at=1.0),
    "mixed content lists": _record(
        output=[
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "a"}, {"type": "output_text", "text": "b"}],
            }
        ]
    ),
    "bad literal": _record(output=[{"type": "message", "role": "robot", "content": "q"}]),
    "not an object": [1, 2],
}


@pytest.mark.parametrize(
    ("cls", "name", "data"),
    [(LS, n, d) for n, d in RECORDS.items()] + [(FULL, n, d) for n, d in FULL_RESPONSES.items()],
)
def test_built_equals_validated(cls: Any, name: str, data: dict[str, Any]) -> None:
    text = json.dumps(data, separators=(",", ":"))
    planned = constructor(cls)
    assert planned is not None, f"{cls.__qualname__} should be planned"
    built = planned[0].build_json(planned[1], text)
    assert built is not None, f"{name}: fell back to validation"
    assert_same(built, cls.model_validate_json(text))


if HAS_TEXT:  # llama-stack 0.2.12: `text` defaults to a model instance, which pydantic copies
    UNFIT["missing field with a model default"] = {k: v for k, v in _record().items() if k != "text"}

# OpenAI's shape only: output text without its annotations (a default pydantic copies).
UNFIT_FULL = {"default to copy missing": _full(_record()) | {"output": [_record()["output"][0]]}}


@pytest.mark.parametrize(
    ("cls", "name", "data"),
    [(cls, n, d) for cls in (LS, FULL) for n, d in UNFIT.items()] + [(FULL, n, d) for n, d in UNFIT_FULL.items()],
)
def test_unfit_data_is_validated(cls: Any, name: str, data: Any) -> None:
    text = json.dumps(data)
    built, index = constructor(cls) or (None, 0)
    assert built is not None
    assert built.build_json(index, text) is None
    builder = Builder(cls)
    try:
        expected = cls.model_validate_json(text)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as raised:
            builder(text)
        assert raised.value.errors() == exc.errors()
    else:
        assert_same(builder(text), expected)


def test_invalid_json_falls_back() -> None:
    with pytest.raises(ValidationError):
        Builder(LS)('{"id": ')


def test_built_objects_are_independent() -> None:
    text = json.dumps(RECORDS["json_schema text"])
    a, b = _compat.record_object(text), _compat.record_object(text)
    if HAS_TEXT:
        a.text.format["schema"]["a"] = 99
    a.output[0].content[0].text = "changed"
    assert b == LS.model_validate_json(text)
    a.user = "v"  # pydantic's own assignment path works on a built object
    assert "user" in a.model_fields_set


class _WithValidator(BaseModel):
    x: int

    @field_validator("x")
    @classmethod
    def _double(cls, v: int) -> int:
        return v * 2


class _WithAlias(BaseModel):
    x: int = Field(alias="y")


class _WithConstraint(BaseModel):
    x: Annotated[int, Field(ge=0)]


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: int


class _OtherDiscriminator(BaseModel):
    kind: Literal["a"] = "a"


class _Holder(BaseModel):
    items: list[Annotated[_OtherDiscriminator, Field(discriminator="kind")]]


class _AmbiguousUnion(BaseModel):
    x: int | float


@pytest.mark.parametrize("cls", [_WithValidator, _WithAlias, _WithConstraint, _Forbid, _Holder, _AmbiguousUnion])
def test_unplannable_classes_are_validated(cls: type[BaseModel]) -> None:
    assert constructor(cls) is None
    builder = Builder(cls)
    assert not builder.planned
    if cls is _WithValidator:
        assert builder('{"x": 2}').x == 4


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> ChatCompletionChunk:
    choices = [{"index": 0, "delta": delta, "finish_reason": finish}] if delta is not None else []
    return ChatCompletionChunk.model_validate(
        {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices, "usage": usage}
    )


class _Inference:
    def __init__(self, chunks: list[ChatCompletionChunk]) -> None:
        self.chunks = chunks

    async def openai_chat_completion(self, model: str, messages: Any, stream: Any = None, **kwargs: Any) -> Any:
        async def gen() -> Any:
            for chunk in self.chunks:
                yield chunk

        return gen()


class _Store:
    def __init__(self) -> None:
        self.written: list[Any] = []

    async def store_response_object(self, response_object: Any, input: Any) -> None:
        self.written.append(response_object)


def test_driver_returns_and_stores_what_validation_gives() -> None:
    """A real request through the driver: the returned and stored objects equal the ones validated from
    the core's JSON, and both were built (no fallback)."""
    if _compat.LLAMA_STACK_VERSION.startswith("0.2.7"):
        pytest.skip("llama-stack 0.2.7 writes its record as JSON text")
    usage = {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    chunks = [
        _chunk({"role": "assistant", "reasoning_content": "think"}),
        _chunk({"content": "Hello"}),
        _chunk({}, "stop"),
        _chunk(None, usage=usage),
    ]
    store = _Store()
    impl = responses_rs.OpenAIResponsesImpl(
        inference_api=_Inference(chunks),
        tool_groups_api=None,
        tool_runtime_api=None,
        responses_store=store,
        vector_io_api=None,
    )
    fallbacks: list[str] = []
    builders = (_compat.response_object, _compat.record_object)
    originals = [builder._validate for builder in builders]
    for builder, original in zip(builders, originals, strict=True):

        def counting(text: str, original: Any = original) -> Any:
            fallbacks.append(text)
            return original(text)

        builder._validate = counting
    try:
        response = asyncio.run(
            impl.create_openai_response(input="Hi", model="m", store=True, instructions="x", metadata={"b": "1"})
        )
    finally:
        for builder, original in zip(builders, originals, strict=True):
            builder._validate = original
    assert fallbacks == []
    assert_same(response, FULL.model_validate_json(response.model_dump_json()))
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.usage["total_tokens"] == 7
    (stored,) = store.written
    assert type(stored) is LS
    assert_same(stored, LS.model_validate_json(stored.model_dump_json()))
    assert copy.deepcopy(stored) == stored


INPUT_ITEMS = [
    {
        "type": "message",
        "content": [{"type": "input_text", "text": "Hi"}],
        "role": "user",
        "id": "msg_1",
        "status": None,
    },
    {"type": "message", "content": "plain", "role": "system"},
    {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_image", "detail": "auto", "image_url": "data:image/png;base64,AA=="}],
    },
    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "before"}], "id": "msg_0"},
    FUNCTION_CALL,
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    FILE_SEARCH,
    WEB_SEARCH,
]


def test_input_items_built_equal_validated() -> None:
    if _compat._INPUT_CONSTRUCTOR is None:
        pytest.skip("this llama-stack's input union is not planned")
    built_by, root = _compat._INPUT_CONSTRUCTOR
    for items in ([item] for item in INPUT_ITEMS if item["type"] in _compat._INPUT_MEMBERS):
        text = json.dumps(items)
        built = built_by.build_root_json(root, text)
        assert built is not None, text
        validated = _compat.INPUT_ITEMS.validate_json(text)
        assert [type(i) for i in built] == [type(i) for i in validated]
        assert built == validated
        assert repr(built) == repr(validated)
        assert _levels(built) == _levels(validated)
        assert _compat.storable_input(text) == validated


def test_input_items_the_union_lacks_are_left_out() -> None:
    """An MCP item in a chained input is not in llama-stack's input union: the plan does not fit, and the
    stored input leaves it out as before."""
    text = json.dumps([INPUT_ITEMS[0], MCP_CALL, INPUT_ITEMS[5]])
    if _compat._INPUT_CONSTRUCTOR is not None:
        assert _compat._INPUT_CONSTRUCTOR[0].build_root_json(_compat._INPUT_CONSTRUCTOR[1], text) is None
    stored = _compat.storable_input(text)
    assert [item.type for item in stored] == ["message", "function_call_output"]
