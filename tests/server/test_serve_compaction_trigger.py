"""The ``compaction_trigger`` input item in a real ``responses-rs serve`` process with the official openai client:
a ``POST /v1/responses`` whose input ends with ``{"type": "compaction_trigger"}`` (as Codex CLI sends it) answers
with one ``compaction`` item summarising everything before it, streamed as ``output_item.added``,
``response.compaction.compacting`` events and ``output_item.done``; a continuation starts from the compacted
window."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_fixtures
from stream_validator import validate_stream

from responses_rs._core import COMPACTION_PROMPT, COMPACTION_SUMMARY_PREFIX
from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
SUMMARY = "Ada likes teal and asked which paint to buy; nothing is open."
TRIGGER = {"type": "compaction_trigger"}
TOOLS: list[Any] = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]

chat_server, serve, client = serve_fixtures(MODEL, state="serve-trigger")


def contents(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        c = m.get("content")
        out.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c or []))
    return out


def streamed(client: openai.OpenAI, **request: Any) -> tuple[list[Any], Response]:
    events = list(client.responses.create(stream=True, **request))
    final = validate_stream(events, response_cls=Response, schema_host="full")
    return events, final


def test_a_streamed_trigger_compacts_the_chain_and_the_continuation_starts_from_the_window(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    chat_server.script(
        [
            {"text": "Nice to meet you, Ada; an answer that must not come back."},
            {"text": SUMMARY, "chunk_size": 8, "usage": {"prompt_tokens": 60, "completion_tokens": 15}},
            {"text": "Teal it is."},
        ]
    )
    first = client.responses.create(model=MODEL, input="I am Ada and I like teal.")
    events, compacted = streamed(
        client,
        model=MODEL,
        previous_response_id=first.id,
        input=[{"role": "user", "content": "Which paint should I buy?"}, TRIGGER],
        tools=TOOLS,
        instructions="Be helpful.",
    )
    types = [e.type for e in events]
    compacting = types.count("response.compaction.compacting")
    # One event for each piece of summary the model streamed (8-character chunks), none with content.
    assert compacting == -(-len(SUMMARY) // 8), types
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-2:] == ["response.output_item.done", "response.completed"]
    assert all(set(e.model_dump()) == {"type", "item_id", "output_index", "sequence_number"} for e in events[3:-2])
    # The summarization call: the whole chain, then the summarization prompt; no tools offered; streamed.
    summarize = chat_server.requests[1]
    assert "tools" not in summarize and summarize["stream"] is True
    sent = contents(summarize["messages"])
    assert sent[0] == "Be helpful." and "I am Ada and I like teal." in sent
    assert "Which paint should I buy?" in sent and sent[-1] == COMPACTION_PROMPT
    # The response: one compaction item holding the summary; usage from the call.
    assert [item.type for item in compacted.output] == ["compaction"]
    item = compacted.output[0]
    assert item.id.startswith("cmp_") and item.encrypted_content == f"{COMPACTION_SUMMARY_PREFIX}\n{SUMMARY}"
    assert compacted.usage is not None and compacted.usage.input_tokens == 60
    assert compacted.previous_response_id == first.id
    # Stored: retrieved as streamed; its input items are the window's user messages.
    stored = client.responses.retrieve(compacted.id)
    assert stored.status == "completed" and stored.output[0].model_dump() == item.model_dump()
    listed = client.responses.input_items.list(compacted.id, order="asc").data
    assert [(i.type, i.role, i.content[0].text) for i in listed] == [  # type: ignore[union-attr]
        ("message", "user", "I am Ada and I like teal."),
        ("message", "user", "Which paint should I buy?"),
    ]
    # The continuation sends the window (user messages, then the summary), not the old answer.
    answer = client.responses.create(model=MODEL, previous_response_id=compacted.id, input="Remind me?")
    assert answer.output_text == "Teal it is."
    sent = contents(chat_server.requests[2]["messages"])
    assert sent == [
        "I am Ada and I like teal.",
        "Which paint should I buy?",
        f"{COMPACTION_SUMMARY_PREFIX}\n{SUMMARY}",
        "Remind me?",
    ]


def test_a_store_false_trigger_as_codex_sends_it(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": SUMMARY}, {"text": SUMMARY}])
    history: list[Any] = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List the files."}]},
        {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": '{"cmd":"ls"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "README.md\nsrc"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Two entries."}]},
        TRIGGER,
    ]
    _, compacted = streamed(client, model=MODEL, input=history, store=False, tools=TOOLS)
    assert [item.type for item in compacted.output] == ["compaction"]
    sent = chat_server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["developer", "user", "assistant", "tool", "assistant", "user"]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(compacted.id)
    # Not streamed: the same response object.
    plain = client.responses.create(model=MODEL, input=history, store=False)
    assert plain.status == "completed" and plain.output[0].type == "compaction"
    assert plain.output[0].encrypted_content == f"{COMPACTION_SUMMARY_PREFIX}\n{SUMMARY}"  # type: ignore[union-attr]


def test_a_trigger_that_is_not_the_last_item_is_refused_naming_it(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input=[TRIGGER, {"role": "user", "content": "x"}])  # type: ignore[list-item]
    assert caught.value.body["param"] == "input[0].type"  # type: ignore[index]
    assert "final input item" in caught.value.message


def test_a_summarization_that_fails_midway_ends_failed_and_stores_nothing(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    chat_server.script([{"text": SUMMARY, "chunk_size": 4, "fail_after_chunks": 4}])
    events, final = streamed(client, model=MODEL, input=[{"role": "user", "content": "Hello."}, TRIGGER])
    assert final.status == "failed" and events[-1].type == "response.failed"
    assert "response.compaction.compacting" in [e.type for e in events]
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(final.id)


def test_on_the_websocket_a_store_false_trigger_leaves_the_window_in_the_connection_cache(
    serve: Serve, chat_server: ScriptedChatServer
) -> None:
    import json

    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent
    from websockets.sync.client import connect

    def turn(ws: Any, **request: Any) -> Response:
        ws.send(json.dumps({"type": "response.create", **request}))
        events = []
        while True:
            event = json.loads(ws.recv(timeout=30))
            events.append(construct_type(value=event, type_=ResponseStreamEvent))
            if event["type"] in ("response.completed", "response.incomplete", "response.failed", "error"):
                assert event["type"] == "response.completed", event
                return validate_stream(events, response_cls=Response, schema_host="full")

    chat_server.reset()
    chat_server.script([{"text": "An answer to forget."}, {"text": SUMMARY}, {"text": "Third."}])
    with connect(serve.base_url.replace("http://", "ws://") + "/responses") as ws:
        first = turn(ws, model=MODEL, input="One", store=False)
        compacted = turn(ws, model=MODEL, input=[TRIGGER], store=False, previous_response_id=first.id)
        assert [item.type for item in compacted.output] == ["compaction"]
        turn(ws, model=MODEL, input="Two", store=False, previous_response_id=compacted.id)
    sent = contents(chat_server.requests[2]["messages"])
    assert sent == ["One", f"{COMPACTION_SUMMARY_PREFIX}\n{SUMMARY}", "Two"]


def test_in_a_conversation_the_trigger_adds_the_compaction_and_the_next_turn_starts_from_the_window(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    chat_server.reset()
    chat_server.script([{"text": "An answer to forget."}, {"text": SUMMARY}, {"text": "Teal."}])
    conversation = client.conversations.create()
    client.responses.create(model=MODEL, conversation=conversation.id, input="I am Ada.")
    compacted = client.responses.create(
        model=MODEL, conversation=conversation.id, input=[{"role": "user", "content": "I like teal."}, TRIGGER]
    )
    assert [item.type for item in compacted.output] == ["compaction"]
    items = client.conversations.items.list(conversation.id, order="asc").data
    assert [i.type for i in items] == ["message", "message", "message", "compaction"]
    client.responses.create(model=MODEL, conversation=conversation.id, input="Remind me?")
    sent = contents(chat_server.requests[2]["messages"])
    assert sent == ["I am Ada.", "I like teal.", f"{COMPACTION_SUMMARY_PREFIX}\n{SUMMARY}", "Remind me?"]
