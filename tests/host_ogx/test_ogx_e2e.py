"""End to end: the official openai client -> a real ``ogx run`` whose responses provider is responses-rs
(``python -m responses_rs.ogx run-config``, sqlite stores in a temporary directory) -> the project's scripted
Chat Completions server, all over HTTP on 127.0.0.1. Every stream goes through the strict stream validator
and the Open Responses schema check ("full": OGX's classes carry the whole object)."""

from __future__ import annotations

import json

import openai
import pytest
from ogx_server import e2e_fixtures, streamed
from openai.types.responses import Response
from stream_validator import validate_stream

MODEL = "e2e-model"


chat_server, ogx, client = e2e_fixtures(MODEL)


def test_create_streamed_and_not_chain_retrieve_list_and_delete(client: openai.OpenAI, chat_server) -> None:
    chat_server.script([{"text": "Hello there!"}, {"text": "Again."}])
    first = client.responses.create(model=MODEL, input="Hi")
    assert first.status == "completed" and first.output_text == "Hello there!"
    assert first.usage is not None and first.usage.total_tokens > 0
    assert first.usage.input_tokens_details.cache_write_tokens == 0  # openai-python requires the field
    second = streamed(client, model=MODEL, input="Once more", previous_response_id=first.id)
    assert second.output_text == "Again." and second.previous_response_id == first.id
    assert second.usage.input_tokens_details.cache_write_tokens == 0
    # The model got the whole chain.
    sent = [m["role"] for m in chat_server.requests[-1]["messages"]]
    assert sent == ["user", "assistant", "user"]
    stored = client.responses.retrieve(second.id)
    assert stored.output_text == "Again."
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message", "message", "message"]
    listed = [r["id"] for r in client.get("/responses", cast_to=dict, options={"params": {"limit": 10}})["data"]]
    assert first.id in listed and second.id in listed
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    # The chain built on the deleted response still continues.
    chat_server.script({"text": "Still here."})
    third = client.responses.create(model=MODEL, input="And now?", previous_response_id=second.id)
    assert third.output_text == "Still here."


def test_a_chain_of_five_alternating_streamed_and_not(client: openai.OpenAI, chat_server) -> None:
    """Five chained turns, streamed and not in turn: each turn's model call carries the whole chain in order,
    and the last response's input items list every earlier input and output (newest first)."""
    chat_server.script([{"text": f"answer {turn}"} for turn in range(5)])
    previous = None
    for turn in range(5):
        kwargs = {"model": MODEL, "input": f"question {turn}", "previous_response_id": previous}
        if turn % 2:
            response = streamed(client, **kwargs)
        else:
            response = client.responses.create(**kwargs)
        assert response.output_text == f"answer {turn}" and response.previous_response_id == previous
        sent = [(m["role"], m["content"]) for m in chat_server.requests[-1]["messages"]]
        expected = []
        for earlier in range(turn):
            expected += [("user", f"question {earlier}"), ("assistant", f"answer {earlier}")]
        expected.append(("user", f"question {turn}"))
        assert [(role, content if isinstance(content, str) else content[0]["text"]) for role, content in sent] == (
            expected
        )
        previous = response.id
    items = client.responses.input_items.list(previous, limit=100).data
    texts = [item.content if isinstance(item.content, str) else item.content[0].text for item in items]
    chain = []
    for turn in range(4):
        chain += [f"question {turn}", f"answer {turn}"]
    chain.append("question 4")
    assert texts == chain[::-1]


def test_function_tool_round_trip_streamed(client: openai.OpenAI, chat_server) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    chat_server.script(
        [
            {"text": "Let me check.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"text": "Sunny in Paris."},
        ]
    )
    asked = streamed(client, model=MODEL, input="Weather in Paris?", tools=[tool])
    assert [item.type for item in asked.output] == ["message", "function_call"]
    call = asked.output[1]
    assert call.name == "get_weather" and call.arguments == '{"city": "Paris"}'
    answer = streamed(
        client,
        model=MODEL,
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[tool],
    )
    assert answer.output_text == "Sunny in Paris."
    last = chat_server.requests[-1]["messages"][-1]
    assert last["role"] == "tool" and last["tool_call_id"] == call.call_id


def test_unknown_previous_response_and_bad_fields_are_4xx(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", previous_response_id="resp_does_not_exist")
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=MODEL, input="x", metadata={f"k{i}": "v" for i in range(17)})
    assert "metadata" in bad.value.response.text  # the field is named


def _ws_turn(ws, **request) -> list[dict]:
    """One WebSocket-mode turn: a `response.create` frame, then every event until a terminal one (or an
    error frame)."""
    ws.send(json.dumps({"type": "response.create", **request}))
    events = []
    while True:
        event = json.loads(ws.recv(timeout=30))
        events.append(event)
        if event["type"] in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events


def test_websocket_mode_with_a_connection_local_store_false_chain(ogx: str, chat_server) -> None:
    """OGX's router serves the WebSocket mode on /v1/responses by calling our provider; `store=false` turns
    chain through the connection's own cache, and an unknown id is `previous_response_not_found`."""
    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent
    from websockets.sync.client import connect

    chat_server.reset()
    chat_server.script([{"text": "First."}, {"text": "Second."}])
    with connect(ogx.replace("http://", "ws://") + "/responses") as ws:
        first = _ws_turn(ws, model=MODEL, input="One", store=False)
        typed = [construct_type(value=e, type_=ResponseStreamEvent) for e in first]
        final = validate_stream(typed, response_cls=Response, schema_host="full")
        assert final.output_text == "First."
        second = _ws_turn(ws, model=MODEL, input="Two", store=False, previous_response_id=final.id)
        assert second[-1]["type"] == "response.completed"
        sent = [(m["role"], m["content"]) for m in chat_server.requests[-1]["messages"]]
        assert [role for role, _ in sent] == ["user", "assistant", "user"]
        missing = _ws_turn(ws, model=MODEL, input="Three", store=False, previous_response_id="resp_nowhere")
        assert missing[-1]["type"] == "error"
        assert missing[-1]["error"]["code"] == "previous_response_not_found"
