"""Background mode end to end: the official openai client -> a real ``ogx run`` whose responses provider is
responses-rs (sqlite stores in a temporary directory) -> the project's scripted Chat Completions server, which
streams slowly (``delay`` before each chunk) so that a response is still running while the client polls it,
retrieves it and cancels it."""

from __future__ import annotations

import time

import openai
import pytest
from ogx_server import e2e_fixtures
from openai.types.responses import Response
from stream_validator import validate_stream

MODEL = "bg-e2e-model"
POLL_S = 0.05
WAIT_S = 30


chat_server, ogx, client = e2e_fixtures(MODEL, state="ogx-bg")


def poll(client: openai.OpenAI, response_id: str, *statuses: str) -> tuple[Response, list[str]]:
    """Retrieve the response until its status is one of `statuses`; -> (it, every status seen)."""
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_S
    while True:
        response = client.responses.retrieve(response_id)
        if not seen or seen[-1] != response.status:
            seen.append(response.status)
        if response.status in statuses:
            return response, seen
        assert time.monotonic() < deadline, f"still {response.status} after {WAIT_S}s (seen {seen})"
        time.sleep(POLL_S)


def test_background_runs_while_the_client_polls_and_completes(client: openai.OpenAI, chat_server) -> None:
    # 14 chunks of 2 characters, 0.1 s before each event: well over a second of running.
    chat_server.script({"text": "Background hello!!!!!!!!!!!", "chunk_size": 2, "delay": 0.1})
    queued = client.responses.create(model=MODEL, input="Hi", background=True, metadata={"job": "1"})
    assert queued.status == "queued" and queued.background is True
    assert queued.output == [] and queued.metadata == {"job": "1"}
    running, _ = poll(client, queued.id, "in_progress", "completed")
    assert running.status == "in_progress" and running.output == []  # retrievable while running
    chat_server.wait_for_requests(1)
    done, seen = poll(client, queued.id, "completed", "failed", "incomplete", "cancelled")
    assert seen[-2:] == ["in_progress", "completed"], seen
    assert done.output_text == "Background hello!!!!!!!!!!!" and done.background is True
    assert done.usage is not None and done.usage.total_tokens > 0 and done.completed_at is not None
    listed = client.get("/responses", cast_to=dict, options={"params": {"limit": 5}})["data"]
    assert [(r["id"], r["status"]) for r in listed][:1] == [(queued.id, "completed")]
    # Ended: cancel is refused as OGX's builtin refuses it.
    with pytest.raises(openai.ConflictError) as conflict:
        client.responses.cancel(queued.id)
    assert "with status 'completed'" in conflict.value.response.text


def test_cancel_mid_run_and_it_stays_cancelled(client: openai.OpenAI, chat_server) -> None:
    # 20 chunks, 0.5 s before each event: ten seconds, unless cancelled.
    chat_server.script({"text": "x" * 40, "chunk_size": 2, "delay": 0.5})
    queued = client.responses.create(model=MODEL, input="Take your time", background=True)
    chat_server.wait_for_requests(1)
    running, _ = poll(client, queued.id, "in_progress")
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.id == queued.id and cancelled.status == "cancelled" and cancelled.background is True
    assert cancelled.output == [] and cancelled.created_at == running.created_at
    time.sleep(1.5)  # past several more chunks: nothing overwrites the cancellation
    stored = client.responses.retrieve(queued.id)
    assert stored.status == "cancelled" and stored.output == []
    assert client.responses.cancel(queued.id).status == "cancelled"  # again: the same answer, as the builtin
    # The server goes on serving: a new background response completes.
    chat_server.script({"text": "next one"})
    after = client.responses.create(model=MODEL, input="And now?", background=True)
    assert poll(client, after.id, "completed", "failed")[0].output_text == "next one"


def test_cancel_of_foreground_and_unknown_responses(client: openai.OpenAI, chat_server) -> None:
    chat_server.script({"text": "foreground"})
    foreground = client.responses.create(model=MODEL, input="x")
    with pytest.raises(openai.ConflictError) as conflict:
        client.responses.cancel(foreground.id)
    assert "only background responses can be cancelled" in conflict.value.response.text
    with pytest.raises(openai.NotFoundError):
        client.responses.cancel("resp_does_not_exist")


def test_background_refusals(client: openai.OpenAI, chat_server) -> None:
    with pytest.raises(openai.BadRequestError) as both:
        client.responses.create(model=MODEL, input="x", background=True, stream=True)
    assert "'stream' and 'background'" in both.value.response.text
    with pytest.raises(openai.BadRequestError) as unstored:
        client.responses.create(model=MODEL, input="x", background=True, store=False)
    assert "background" in unstored.value.response.text
    assert chat_server.requests == []


def test_input_items_of_a_chained_background_response_and_a_stream_continuing_it(
    client: openai.OpenAI, chat_server
) -> None:
    chat_server.script([{"text": "First answer."}, {"text": "Second answer.", "delay": 0.05}, {"text": "Third."}])
    first = client.responses.create(model=MODEL, input="First question")
    second = client.responses.create(
        model=MODEL, input="Second question", previous_response_id=first.id, background=True
    )
    assert second.previous_response_id == first.id
    # Input items are listed from the start, with the chain before it.
    items = client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in items.data] == ["message", "message", "message"]
    done, _ = poll(client, second.id, "completed", "failed")
    assert done.output_text == "Second answer."
    items = client.responses.input_items.list(second.id, order="asc")
    texts = [item.content if isinstance(item.content, str) else item.content[0].text for item in items.data]
    assert texts == ["First question", "First answer.", "Second question"]
    # The model got the whole chain.
    assert [m["role"] for m in chat_server.requests[1]["messages"]] == ["user", "assistant", "user"]
    # A streamed response continues from the background one.
    events = list(
        client.responses.create(model=MODEL, input="Third question", previous_response_id=second.id, stream=True)
    )
    third = validate_stream(events, response_cls=Response, schema_host="full")
    assert third.output_text == "Third." and third.background is False
    assert [m["role"] for m in chat_server.requests[2]["messages"]] == ["user", "assistant"] * 2 + ["user"]
