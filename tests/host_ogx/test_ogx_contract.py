"""responses-rs as OGX 1.5's `Responses` implementation: the protocol's methods with OGX's request models,
OGX's classes back, OGX's store underneath. Every stream goes through the stream validator and the Open
Responses schema (host "full")."""

from __future__ import annotations

from typing import Any

import pytest
from ogx_api import (
    CancelResponseRequest,
    ConflictError,
    CreateResponseRequest,
    DeleteResponseRequest,
    ListResponseInputItemsRequest,
    ListResponsesRequest,
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAIResponseObject,
    ResponseNotFoundError,
    RetrieveResponseRequest,
)
from ogx_api import openai_responses as ogx_responses
from ogx_helpers import MODEL, Script, ToolCall, collect
from pydantic import BaseModel

from responses_rs._core import InvalidRequest

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def create(impl: Any, **fields: Any) -> tuple[Any, list[Any]]:
    fields.setdefault("model", MODEL)
    return await collect(await impl.create_openai_response(CreateResponseRequest(**fields)))


def text_of(response: Any) -> str:
    return "".join(part.text for item in response.output if item.type == "message" for part in item.content)


def chat_roles(params: OpenAIChatCompletionRequestWithExtraBody) -> list[tuple[str, Any]]:
    return [(m.role, m.content) for m in params.messages]


async def test_create(impl: Any, script: Script, stream: bool) -> None:
    script.turns.append("ok: hello there")
    response, events = await create(impl, input="hello there", instructions="Be brief.", stream=stream)
    assert isinstance(response, OpenAIResponseObject)
    assert response.status == "completed"
    assert text_of(response) == "ok: hello there"
    assert response.instructions == "Be brief."
    assert response.usage is not None and response.usage.total_tokens == 11
    assert response.store is True
    if stream:
        assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
        assert events[-1].type == "response.completed"
        # OGX's own event classes (where OGX spells the event as OpenAI does)
        assert isinstance(events[0], ogx_responses.OpenAIResponseObjectStreamResponseCreated)
        deltas = [e for e in events if e.type == "response.output_text.delta"]
        assert isinstance(deltas[0], ogx_responses.OpenAIResponseObjectStreamResponseOutputTextDelta)
        assert "".join(d.delta for d in deltas) == "ok: hello there"
    # the chat request: one OGX params object, streamed with usage, instructions as a leading system message
    (params,) = script.requests
    assert isinstance(params, OpenAIChatCompletionRequestWithExtraBody)
    assert params.stream is True and params.stream_options == {"include_usage": True}
    assert chat_roles(params) == [("system", "Be brief."), ("user", "hello there")]
    # written once, readable through the protocol
    stored = await impl.get_openai_response(RetrieveResponseRequest(response_id=response.id))
    assert isinstance(stored, OpenAIResponseObject)
    assert stored.output == response.output and stored.status == "completed"


async def test_request_controls_reach_inference(impl: Any, script: Script, stream: bool) -> None:
    script.turns.append('{"a": 1}')
    fmt = {"type": "json_schema", "name": "obj", "schema": {"type": "object"}, "strict": True}
    response, _ = await create(
        impl,
        input="json please",
        stream=stream,
        temperature=0.25,
        top_p=0.5,
        max_output_tokens=64,
        text={"format": fmt},
        metadata={"k": "v"},
    )
    (params,) = script.requests
    assert params.temperature == 0.25 and params.top_p == 0.5
    assert params.response_format is not None and params.response_format.type == "json_schema"
    assert 64 in (params.max_tokens, params.max_completion_tokens)
    assert response.text.format["type"] == "json_schema"  # OGX: a TypedDict
    assert response.metadata == {"k": "v"} and response.top_p == 0.5 and response.max_output_tokens == 64


async def test_function_call_round_trip(impl: Any, script: Script, stream: bool) -> None:
    script.turns.append([ToolCall("get_weather", {"city": "Paris"}, id="call_w1")])
    first, events = await create(impl, input="Weather in Paris?", tools=[WEATHER_TOOL], stream=stream)
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_w1"
    assert call.arguments == '{"city": "Paris"}'
    if stream:
        assert "response.function_call_arguments.done" in [e.type for e in events]
    assert [t["function"]["name"] for t in script.requests[0].tools] == ["get_weather"]

    script.turns.append("It is sunny in Paris.")
    second, _ = await create(
        impl,
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": '{"sky": "sunny"}'}],
        previous_response_id=first.id,
        tools=[WEATHER_TOOL],
        stream=stream,
    )
    assert text_of(second) == "It is sunny in Paris."
    assert second.previous_response_id == first.id
    messages = script.requests[1].messages
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert messages[1].tool_calls[0].id == "call_w1"
    assert messages[2].tool_call_id == "call_w1" and messages[2].content == '{"sky": "sunny"}'


async def test_chain_of_five(impl: Any, script: Script, stream: bool) -> None:
    previous = None
    ids = []
    for i in range(5):
        script.turns.append(f"answer {i}")
        response, _ = await create(impl, input=f"question {i}", previous_response_id=previous, stream=stream)
        assert text_of(response) == f"answer {i}"
        ids.append(response.id)
        previous = response.id
    # the fifth call saw the whole history
    contents = [(m.role, m.content) for m in script.requests[-1].messages]
    expected: list[tuple[str, Any]] = []
    for i in range(4):
        expected += [("user", f"question {i}"), ("assistant", f"answer {i}")]
    expected.append(("user", "question 4"))
    assert [(r, c if isinstance(c, str) else c[0].text) for r, c in contents] == expected
    # rows are stored incrementally (this turn's input only), as OGX's builtin stores them
    rows = (await impl.responses_store.sql_store.fetch_all("responses")).data
    by_id = {row["id"]: row for row in rows}
    assert by_id[ids[0]]["input_storage_mode"] is None
    for i in range(1, 5):
        assert by_id[ids[i]]["input_storage_mode"] == "incremental"
        assert by_id[ids[i]]["previous_response_id"] == ids[i - 1]
        assert len(by_id[ids[i]]["response_object"]["input"]) == 1
        assert by_id[ids[i]]["response_object"]["messages"] == []
    # ... and the store reconstructs the full input of the last one
    listed = await impl.list_openai_response_input_items(
        ListResponseInputItemsRequest(response_id=ids[-1], order="asc", limit=100)
    )
    texts = [item.content if isinstance(item.content, str) else item.content[0].text for item in listed.data]
    assert texts == [text for pair in expected for text in [pair[1]]]


async def test_get_list_input_items_delete(impl: Any, script: Script) -> None:
    script.turns += ["one", "two"]
    first, _ = await create(impl, input="first")
    second, _ = await create(impl, input="second", model=MODEL)
    listed = await impl.list_openai_responses(ListResponsesRequest())
    assert {r.id for r in listed.data} == {second.id, first.id}  # created in the same second: order is a tie
    assert listed.object == "list" and listed.has_more is False
    limited = await impl.list_openai_responses(ListResponsesRequest(limit=1))
    assert len(limited.data) == 1 and limited.has_more is True
    items = await impl.list_openai_response_input_items(ListResponseInputItemsRequest(response_id=first.id))
    assert [item.role for item in items.data] == ["user"]
    deleted = await impl.delete_openai_response(DeleteResponseRequest(response_id=first.id))
    assert deleted.id == first.id and deleted.deleted is True
    with pytest.raises(ResponseNotFoundError):
        await impl.get_openai_response(RetrieveResponseRequest(response_id=first.id))
    with pytest.raises(ResponseNotFoundError):
        await impl.delete_openai_response(DeleteResponseRequest(response_id=first.id))
    assert [r.id for r in (await impl.list_openai_responses(ListResponsesRequest())).data] == [second.id]


async def test_store_false_is_not_stored(impl: Any, script: Script, stream: bool) -> None:
    script.turns.append("transient")
    response, _ = await create(impl, input="x", store=False, stream=stream)
    assert response.store is False
    with pytest.raises(ResponseNotFoundError):
        await impl.get_openai_response(RetrieveResponseRequest(response_id=response.id))


async def test_bad_field_names_it(impl: Any, script: Script, stream: bool) -> None:
    """Fields OGX's request model lets through and the core refuses, naming them."""
    metadata = {f"k{i}": "v" for i in range(17)}  # OpenAI: at most 16 pairs
    request = CreateResponseRequest(input="x", model=MODEL, stream=stream, metadata=metadata)
    with pytest.raises(InvalidRequest, match="metadata"):
        await impl.create_openai_response(request)
    request = CreateResponseRequest(input="x", model=MODEL, stream=stream, user=5)  # an extra field
    with pytest.raises(InvalidRequest, match="user"):
        await impl.create_openai_response(request)
    assert script.requests == []


async def test_unknown_previous_response_is_not_found(impl: Any, script: Script, stream: bool) -> None:
    request = CreateResponseRequest(input="x", model=MODEL, stream=stream, previous_response_id="resp_nope")
    with pytest.raises(ResponseNotFoundError, match="resp_nope"):
        await impl.create_openai_response(request)


async def test_background_with_guardrails_needs_a_moderation_endpoint(impl: Any, script: Script) -> None:
    # Served (tests/host_ogx/test_ogx_background_guardrails.py); without the endpoint, the builtin's 503 up front.
    from ogx_api import ServiceNotEnabledError

    request = CreateResponseRequest(input="x", model=MODEL, background=True, guardrails=True)
    with pytest.raises(ServiceNotEnabledError, match="moderation_endpoint"):
        await impl.create_openai_response(request)
    assert (await impl.list_openai_responses(ListResponsesRequest())).data == []
    assert script.requests == []


async def test_cancel(impl: Any, script: Script) -> None:
    script.turns.append("done")
    response, _ = await create(impl, input="x")
    with pytest.raises(ConflictError):
        await impl.cancel_openai_response(CancelResponseRequest(response_id=response.id))
    with pytest.raises(ResponseNotFoundError):
        await impl.cancel_openai_response(CancelResponseRequest(response_id="resp_nope"))


async def test_mcp_tool_left_out_with_a_warning(impl: Any, script: Script, stream: bool, caplog: Any) -> None:
    """An MCP server that cannot be reached: the listing fails, the tool is left out, the response completes."""
    script.turns.append("no tools today")
    mcp = {"type": "mcp", "server_label": "srv", "server_url": "http://127.0.0.1:9/mcp", "require_approval": "never"}
    response, _ = await create(impl, input="x", tools=[mcp], stream=stream)
    assert response.status == "completed" and text_of(response) == "no tools today"
    assert not script.requests[0].tools
    assert any("MCP" in r.getMessage() for r in caplog.records)


async def test_every_core_event_type_has_an_ogx_class() -> None:
    import re
    from pathlib import Path

    from responses_rs.ogx._impl import EVENT_CLASSES

    events_rs = Path(__file__).resolve().parents[2] / "src" / "core" / "events.rs"

    core_types = set(re.findall(r'"(response\.[a-z_.]+)"', events_rs.read_text()))
    # Events of custom tools only: OGX's request model refuses `custom` tools before any provider runs
    # (responses-rs serve emits them), so no OGX response can carry them; nor the compaction_trigger item's
    # event (the OGX adapter refuses the item naming it: OGX 1.5 does not know it).
    unreachable = {
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.compaction.compacting",
    }
    assert unreachable <= core_types and not unreachable & set(EVENT_CLASSES)
    core_types -= unreachable
    assert core_types and core_types <= set(EVENT_CLASSES)
    ogx_types = {t for t, c in EVENT_CLASSES.items() if c.__module__ == ogx_responses.__name__}
    # OGX's classes as they are, but for: the MCP argument events (OGX spells them
    # response.mcp_call.arguments.*), the content part events (OGX requires its own response_id there and
    # writes logprobs: null), the MCP listing / call outcome events (OGX's lack item_id, output_index), the
    # output item events (OpenAI's mcp_call item: an error object, status, approval_request_id), and the
    # events carrying the response (OGX's usage class drops cache_write_tokens; OGX has no response.queued)
    adapted = {t for t in core_types - ogx_types if issubclass(EVENT_CLASSES[t], BaseModel)}
    assert adapted == {
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.failed",
        "response.mcp_list_tools.completed",
        "response.mcp_call.failed",
        "response.mcp_call.completed",
        "response.output_item.added",
        "response.output_item.done",
    }
    for t in adapted:  # subclasses of OGX's class of that event
        assert any(base.__module__ == ogx_responses.__name__ for base in EVENT_CLASSES[t].__mro__[1:])
