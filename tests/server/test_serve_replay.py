"""Streamed background responses, their replay (`GET /v1/responses/{id}?stream=true&starting_after=N`) and
`POST /v1/responses/input_tokens`: the official openai client -> a real ``responses-rs serve`` process (sqlite) ->
the scripted Chat Completions server. Every stream goes through the stream validator; replays are compared
event by event with the stream the client first received."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_fixtures, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


chat_server, serve, client = serve_fixtures(MODEL)


def dumped(events: list[Any]) -> list[dict[str, Any]]:
    return [event.model_dump(mode="json") for event in events]


def wait_for(client: openai.OpenAI, response_id: str, statuses: tuple[str, ...], timeout: float = 15) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def replay(client: openai.OpenAI, response_id: str, starting_after: int | None = None) -> list[Any]:
    if starting_after is None:
        return list(client.responses.retrieve(response_id, stream=True))
    return list(client.responses.retrieve(response_id, stream=True, starting_after=starting_after))


def test_streamed_background_streams_then_replays_from_any_point(client: openai.OpenAI, chat_server) -> None:
    text = "A background answer, streamed live and kept for replay."
    chat_server.script([{"text": text, "chunk_size": 6, "delay": 0.01}])
    events = list(client.responses.create(model=MODEL, input="Go", background=True, stream=True))
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output_text == text and final.background is True
    # As OpenAI streams a background response: created and queued (status queued), then in_progress.
    start = [(e.type, e.sequence_number, e.response.status) for e in events[:3]]
    assert start == [
        ("response.created", 0, "queued"),
        ("response.queued", 1, "queued"),
        ("response.in_progress", 2, "in_progress"),
    ]
    stored = wait_for(client, final.id, ("completed",))
    assert stored.output_text == text and stored.background is True
    # The whole replay is the same stream, event for event, sequence numbers included.
    again = replay(client, final.id)
    validate_stream(again, response_cls=Response, schema_host="full")
    assert dumped(again) == dumped(events)
    # From N: exactly the events after N, with their own sequence numbers.
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    for n in (numbers[0], numbers[1], numbers[len(numbers) // 2], numbers[-2]):
        assert dumped(replay(client, final.id, n)) == [e for e in dumped(events) if e["sequence_number"] > n]
    assert [e.type for e in replay(client, final.id, 0)[:2]] == ["response.queued", "response.in_progress"]
    assert replay(client, final.id, numbers[-1]) == []


def test_a_client_that_goes_away_leaves_it_running_and_a_replay_follows_it_live(
    client: openai.OpenAI, chat_server, serve: Serve
) -> None:
    words = "word " * 40
    chat_server.script([{"text": words, "chunk_size": 5, "delay": 0.05}])
    seen = []
    with client.responses.create(model=MODEL, input="Long", background=True, stream=True) as stream:
        for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta":
                break
    # The client went away; the response runs on.
    response_id = seen[0].response.id
    assert client.responses.retrieve(response_id).status in ("queued", "in_progress")
    # A replay from the last event seen gets the rest, live, to the terminal event.
    rest = replay(client, response_id, seen[-1].sequence_number)
    assert rest[0].sequence_number == seen[-1].sequence_number + 1 and rest[-1].type == "response.completed"
    whole = validate_stream(seen + rest, response_cls=Response, schema_host="full")
    assert whole.output_text == words
    assert wait_for(client, response_id, ("completed",)).output_text == words
    # Once stored, the same events come from the store.
    assert dumped(replay(client, response_id)) == dumped(seen + rest)
    with sqlite3.connect(serve.db) as conn:
        (kept,) = conn.execute("SELECT events FROM responses WHERE id = ?", (response_id,)).fetchone()
    assert kept.count("event: ") == len(seen) + len(rest)


def test_two_replays_of_a_running_response_and_a_tool_call(client: openai.OpenAI, chat_server) -> None:
    chat_server.script(
        [{"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Paris"}'}], "chunk_size": 3, "delay": 0.03}]
    )
    started = client.responses.create(model=MODEL, input="Weather?", tools=[WEATHER], background=True)
    assert started.status == "queued"
    chat_server.wait_for_requests(1)
    first = replay(client, started.id)
    second = replay(client, started.id, 0)
    done = validate_stream(first, response_cls=Response, schema_host="full")
    assert done.output[0].type == "function_call" and done.output[0].arguments == '{"city": "Paris"}'
    assert dumped(second) == dumped(first)[1:]


def test_cancelling_a_streamed_background_response(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    chat_server.script([{"text": "word " * 80, "chunk_size": 5, "delay": 0.05}])
    seen = []
    with client.responses.create(model=MODEL, input="Go on", background=True, stream=True) as stream:
        for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta" and len(seen) == 6:
                cancelled = client.responses.cancel(seen[0].response.id)
                assert cancelled.status == "cancelled"
    # The live stream ended (its terminal event) long before the model would have.
    assert seen[-1].type == "response.failed" and seen[-1].response.error.message == "cancelled"
    validate_stream(seen, response_cls=Response, schema_host="full")
    response_id = seen[0].response.id
    time.sleep(0.3)
    assert client.responses.retrieve(response_id).status == "cancelled"
    assert client.responses.cancel(response_id).status == "cancelled"
    assert dumped(replay(client, response_id)) == dumped(seen)


def test_a_background_response_cancelled_at_once_replays_a_whole_stream(client: openai.OpenAI, chat_server) -> None:
    """Cancelled right after it was queued: its replay is a whole stream, from response.created to one terminal
    event (the run has usually begun by then; test_serve_background_start.py covers a run that had not)."""
    for _ in range(5):
        chat_server.script([{"text": "word " * 40, "chunk_size": 5, "delay": 0.05}])
        queued = client.responses.create(model=MODEL, input="Go", background=True)
        assert client.responses.cancel(queued.id).status == "cancelled"
        events = replay(client, queued.id)
        final = validate_stream(events, response_cls=Response, schema_host="full")
        assert final.status == "failed" and final.error.message == "cancelled"  # type: ignore[union-attr]
        assert events[0].response.status == "queued" and events[0].response.id == queued.id
        chat_server.reset()


def test_replay_refusals(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    plain = client.responses.create(model=MODEL, input="Hi")
    with pytest.raises(openai.BadRequestError) as refused:
        replay(client, plain.id)
    assert refused.value.body["param"] == "stream"
    with pytest.raises(openai.NotFoundError):
        replay(client, "resp_missing")
    answer = httpx.get(f"{serve.base_url}/responses/{plain.id}", params={"stream": "true", "starting_after": "x"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "starting_after"
    # A background response stored without events (as one from before the events were kept): refused, after
    # waiting a moment for them.
    chat_server.script([{"text": "done"}])
    started = client.responses.create(model=MODEL, input="Hi", background=True)
    wait_for(client, started.id, ("completed",))
    time.sleep(0.2)
    with sqlite3.connect(serve.db) as conn:
        conn.execute("UPDATE responses SET events = NULL WHERE id = ?", (started.id,))
    began = time.monotonic()
    with pytest.raises(openai.BadRequestError) as refused:
        replay(client, started.id)
    assert refused.value.body["param"] == "stream" and time.monotonic() - began >= 1.9


def test_input_tokens_count_as_the_upstream_counts(client: openai.OpenAI, chat_server) -> None:
    chat_server.script([{"text": "Counted."}, {"text": "Answered."}])
    counted = client.responses.input_tokens.count(
        model=MODEL, input="How many tokens is this question?", instructions="Be brief.", tools=[WEATHER]
    )
    assert counted.object == "response.input_tokens"
    probe = chat_server.requests[-1]
    assert probe["max_tokens"] == 1 and probe.get("stream") is False and probe["tools"][0]["function"]["name"]
    created = client.responses.create(
        model=MODEL, input="How many tokens is this question?", instructions="Be brief.", tools=[WEATHER]
    )
    assert counted.input_tokens == created.usage.input_tokens > 0
    assert chat_server.requests[-1]["messages"] == probe["messages"]
    # A continuation counts its chain too.
    chat_server.script([{"text": "again"}])
    longer = client.responses.input_tokens.count(model=MODEL, input="And then?", previous_response_id=created.id)
    assert [m["role"] for m in chat_server.requests[-1]["messages"]] == ["user", "assistant", "user"]
    assert longer.input_tokens > 0
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.input_tokens.count(input="no model")
    assert refused.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.responses.input_tokens.count(model=MODEL, input="x", previous_response_id="resp_missing")


def test_shutdown_stores_the_running_responses_events(chat_server: ScriptedChatServer, tmp_path) -> None:  # noqa: ANN001
    chat_server.reset()
    chat_server.script([{"text": "never finished " * 20, "chunk_size": 2, "delay": 0.2}])
    with serve_process(chat_server.base_url, tmp_path) as first:
        with openai.OpenAI(base_url=first.base_url, api_key="none", max_retries=0) as c:
            started = c.responses.create(model=MODEL, input="Hi", background=True)
            chat_server.wait_for_requests(1)
            time.sleep(0.5)
    with serve_process(chat_server.base_url, tmp_path) as second:
        with openai.OpenAI(base_url=second.base_url, api_key="none", max_retries=0) as c:
            assert c.responses.retrieve(started.id).status == "failed"
            events = replay(c, started.id)
    assert events[-1].type == "response.failed"
    validate_stream(events, response_cls=Response, schema_host="full")
