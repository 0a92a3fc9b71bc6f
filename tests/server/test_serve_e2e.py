"""End to end: the official openai client -> a real ``responses-rs serve`` process (sqlite in a temporary data
directory) -> the project's scripted Chat Completions server, all over HTTP on 127.0.0.1. Every stream goes
through the strict stream validator and the Open Responses schema check ("full")."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    # The console script (`responses-rs serve`), with a short upstream timeout for the timeout test.
    data = tmp_path_factory.mktemp("serve")
    with serve_process(
        chat_server.base_url,
        data,
        "--upstream-timeout",
        "1.5",
        "--model-alias",
        "alias=scripted-model",
        "--log-requests",
    ) as s:
        yield s


@pytest.fixture
def client(serve: Serve, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


def streamed(client: openai.OpenAI, **kwargs) -> tuple[Response, list]:
    events = list(client.responses.create(stream=True, **kwargs))
    return validate_stream(events, response_cls=Response, schema_host="full"), events


def rows(db: Path) -> dict[str, tuple[int, int]]:
    """Stored responses: id -> (bytes of response JSON, bytes of input JSON)."""
    with sqlite3.connect(db) as conn:
        return {
            r[0]: (r[1], r[2])
            for r in conn.execute("SELECT id, LENGTH(response), LENGTH(input) FROM responses WHERE deleted = 0")
        }


def text_of(content: str | list) -> str:
    """A chat message's text, whether its content is a string or a list of parts."""
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def post(serve: Serve, body: object, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(serve.base_url + "/responses", content=content, timeout=30, **kwargs)


def test_health_and_models(serve: Serve, client: openai.OpenAI) -> None:
    assert httpx.get(serve.base_url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids and "alias" in ids


def test_non_streamed_text_retrieve_and_the_upstream_request(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    chat_server.script([{"text": "Hello there!", "usage": {"prompt_tokens": 11, "completion_tokens": 3}}])
    response = client.responses.create(model=MODEL, input="Hi", instructions="Be brief.", temperature=0.5)
    assert response.status == "completed" and response.output_text == "Hello there!"
    assert response.instructions == "Be brief." and response.temperature == 0.5
    assert response.usage is not None and response.usage.input_tokens == 11 and response.usage.output_tokens == 3
    sent = chat_server.requests[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["temperature"] == 0.5 and sent["model"] == MODEL
    again = client.responses.retrieve(response.id)
    assert again.model_dump() == response.model_dump()
    # --log-requests: one JSON line for the response.
    deadline = time.monotonic() + 5
    while not (lines := [line for line in serve.log if response.id in line]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(lines) == 1, serve.log[-5:]
    record = json.loads(lines[0].split("responses_rs.server.requests: ", 1)[1])
    assert record["status"] == "completed" and record["stream"] is False and record["ms"] > 0
    assert (record["input_tokens"], record["output_tokens"]) == (11, 3)


def test_model_alias_reaches_the_upstream_as_its_model(client: openai.OpenAI, chat_server) -> None:
    response = client.responses.create(model="alias", input="Hi")
    assert response.model == "alias"
    assert chat_server.requests[-1]["model"] == MODEL


def test_streamed_reasoning_text_and_usage(client: openai.OpenAI, chat_server) -> None:
    chat_server.script([{"reasoning": "Think it over.", "text": "The answer is 42.", "chunk_size": 3}])
    final, events = streamed(client, model=MODEL, input="What is it?")
    assert final.status == "completed" and final.output_text == "The answer is 42."
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens > 0
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "The answer is 42." and len(deltas) > 1
    assert client.responses.retrieve(final.id).output_text == "The answer is 42."


def test_incomplete_when_the_model_stops_at_its_length(client: openai.OpenAI, chat_server) -> None:
    chat_server.script([{"text": "cut sho", "finish_reason": "length"}])
    final, _ = streamed(client, model=MODEL, input="Talk", max_output_tokens=16)
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert chat_server.requests[-1]["max_tokens"] == 16 or chat_server.requests[-1].get("max_completion_tokens") == 16


def test_function_tool_round_trip_with_previous_response_id(client: openai.OpenAI, chat_server) -> None:
    chat_server.script(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_w1"}]},
            {"text": "It is sunny in Paris."},
        ]
    )
    first, events = streamed(client, model=MODEL, input="Weather in Paris?", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_w1"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert any(e.type == "response.function_call_arguments.delta" for e in events)
    assert chat_server.requests[0]["tools"][0]["function"]["name"] == "get_weather"
    second, _ = streamed(
        client,
        model=MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": '{"sky": "sunny"}'}],
        tools=[WEATHER],
    )
    assert second.output_text == "It is sunny in Paris." and second.previous_response_id == first.id
    messages = chat_server.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_w1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_w1", "content": '{"sky": "sunny"}'}
    # The second response's input items: the chain before it (question, call), then its own input.
    items = client.responses.input_items.list(second.id, order="asc").data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output"]


def test_chain_of_five_is_stored_incrementally(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    before = rows(serve.db)
    previous = None
    ids = []
    for n in range(5):
        chat_server.script([{"text": f"answer number {n} " + "x" * 200}])
        kwargs = {"previous_response_id": previous} if previous else {}
        if n % 2:
            response = client.responses.create(model=MODEL, input=f"question {n}", **kwargs)
        else:
            response, _ = streamed(client, model=MODEL, input=f"question {n}", **kwargs)
        assert response.output_text.startswith(f"answer number {n}")
        previous = response.id
        ids.append(response.id)
    # The model saw the whole chain each time.
    assert [m["role"] for m in chat_server.requests[-1]["messages"]] == ["user", "assistant"] * 4 + ["user"]
    stored = rows(serve.db)
    new = [stored[i] for i in ids]
    assert set(before) <= set(stored)
    # Each row holds only its own new input (one message) and its output: bytes linear in the chain.
    with sqlite3.connect(serve.db) as conn:
        for response_id in ids:
            (stored_input,) = conn.execute("SELECT input FROM responses WHERE id = ?", (response_id,)).fetchone()
            assert len(json.loads(stored_input)) == 1
    totals = [sum(size) for size in new]
    assert max(totals) < 1.3 * min(totals), totals
    # The chain rebuilt from the rows: every input and output before the last answer.
    items = client.responses.input_items.list(ids[-1], order="asc", limit=100).data
    assert len(items) == 9
    assert [i.role for i in items] == ["user", "assistant"] * 4 + ["user"]
    assert items[-1].content[0].text == "question 4"


def test_input_items_pagination_and_delete(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    texts = ["one", "two", "three"]
    response = client.responses.create(
        model=MODEL, input=[{"type": "message", "role": "user", "content": t} for t in texts]
    )
    page = client.responses.input_items.list(response.id, limit=2)  # newest first by default
    assert [i.content[0].text for i in page.data] == ["three", "two"]
    assert page.has_more is True and page.first_id == page.data[0].id and page.last_id == page.data[1].id
    rest = client.responses.input_items.list(response.id, limit=2, after=page.last_id)
    assert [i.content[0].text for i in rest.data] == ["one"] and rest.has_more is False
    ascending = client.responses.input_items.list(response.id, order="asc")
    assert [i.content[0].text for i in ascending.data] == texts
    assert all(i.id.startswith("msg_") for i in ascending.data)
    bad = httpx.get(f"{serve.base_url}/responses/{response.id}/input_items?limit=500")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"

    deleted = client.responses.delete(response.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    assert response.id not in rows(serve.db)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(response.id)


def test_deleting_the_middle_of_a_chain_keeps_the_chain(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    chat_server.script([{"text": "A1"}, {"text": "A2"}, {"text": "A3"}])
    first = client.responses.create(model=MODEL, input="Q1")
    second = client.responses.create(model=MODEL, input="Q2", previous_response_id=first.id)
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    third = client.responses.create(model=MODEL, input="Q3", previous_response_id=second.id)
    assert third.output_text == "A3"
    sent = chat_server.requests[-1]["messages"]
    assert [text_of(m["content"]) for m in sent] == ["Q1", "A1", "Q2", "A2", "Q3"]
    assert post(serve, {"model": MODEL, "input": "x", "previous_response_id": first.id}).status_code == 404


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": MODEL, "input": "hi", "temperature": "hot"}, "temperature"),
        ({"model": MODEL, "input": [{"type": "message", "role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"model": MODEL, "input": "hi", "stream": "yes"}, "stream"),
        (
            {
                "model": MODEL,
                "input": "hi",
                "tools": [{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs"]}],
            },
            "tools[1].type",
        ),
        ({"model": MODEL, "input": "hi", "prompt": {"version": "1"}}, "prompt.id"),
        ({"model": MODEL, "input": "hi", "background": True, "store": False}, "background"),
        ({"model": MODEL, "input": "hi", "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
    ],
)
def test_bad_requests_name_the_field(serve: Serve, chat_server, body: dict, param: str) -> None:
    chat_server.reset()
    answer = post(serve, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error" and error["message"]
    assert chat_server.requests == []  # refused before the model was called


def test_bad_bodies_and_unknown_ids(serve: Serve, client: openai.OpenAI) -> None:
    assert post(serve, b"{not json").json()["error"]["code"] == "invalid_json"
    assert post(serve, [1, 2]).status_code == 400
    missing = post(serve, {"model": MODEL, "input": "x", "previous_response_id": "resp-nope", "stream": True})
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "type": "invalid_request_error",
        "code": "previous_response_not_found",
        "param": "previous_response_id",
        "message": "Previous response with id 'resp-nope' not found.",
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp-nope")
    assert httpx.get(serve.base_url + "/nothing-here").status_code == 404
    replay = httpx.get(serve.base_url + "/responses/resp-nope?stream=true")
    assert replay.status_code == 404  # replay serves background responses (tests/server/test_serve_replay.py)


def _assert_nothing_stored(serve: Serve, before: dict, response_id: str) -> None:
    assert rows(serve.db) == before
    assert httpx.get(f"{serve.base_url}/responses/{response_id}").status_code == 404


def test_upstream_500_fails_the_stream_and_stores_nothing(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    before = rows(serve.db)
    chat_server.script([{"error": {"status": 500, "message": "boom"}}])
    final, events = streamed(client, model=MODEL, input="Hi")
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    assert final.status == "failed" and final.error.code == "server_error"
    assert "HTTP 500" in final.error.message and "boom" in final.error.message
    _assert_nothing_stored(serve, before, final.id)
    # Not streamed: a 502 with the upstream's error.
    chat_server.script([{"error": {"status": 500, "message": "boom again"}}])
    answer = post(serve, {"model": MODEL, "input": "Hi"})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_error" and "boom again" in answer.json()["error"]["message"]
    assert rows(serve.db) == before
    # The upstream refusing the request itself (here a 404: no such model) keeps its status.
    chat_server.script(
        [{"error": {"status": 404, "message": "The model 'x' does not exist", "code": "model_not_found"}}]
    )
    refused = post(serve, {"model": "x", "input": "Hi"})
    assert refused.status_code == 404 and "does not exist" in refused.json()["error"]["message"]
    assert rows(serve.db) == before


def test_dropped_connection_mid_stream(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    before = rows(serve.db)
    chat_server.script([{"text": "This answer never ends because the server dies.", "fail_after_chunks": 4}])
    final, events = streamed(client, model=MODEL, input="Hi")
    types = [e.type for e in events]
    assert "response.output_text.delta" in types and types[-1] == "response.failed"
    assert final.status == "failed" and "closed the connection" in final.error.message
    # The open message was closed as incomplete before the terminal event.
    assert final.output and final.output[0].status == "incomplete"
    _assert_nothing_stored(serve, before, final.id)
    # The server keeps serving.
    chat_server.script([{"text": "fine"}])
    assert client.responses.create(model=MODEL, input="again").output_text == "fine"


def test_upstream_timeout(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    before = rows(serve.db)
    chat_server.script([{"text": "slow", "delay": 3}])
    final, _ = streamed(client, model=MODEL, input="Hi")
    assert final.status == "failed" and "1.5 s" in final.error.message
    _assert_nothing_stored(serve, before, final.id)


def test_store_false_is_not_stored(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    before = rows(serve.db)
    response = client.responses.create(model=MODEL, input="Hi", store=False)
    assert response.store is False and response.output_text == "ok: Hi"
    _assert_nothing_stored(serve, before, response.id)


def test_api_keys_scope_what_each_key_sees(chat_server: ScriptedChatServer, tmp_path: Path) -> None:
    chat_server.reset()
    with serve_process(
        chat_server.base_url, tmp_path, "--api-key", "key-a", "--api-key", "key-b", console_script=False
    ) as s:
        a = openai.OpenAI(base_url=s.base_url, api_key="key-a", max_retries=0)
        b = openai.OpenAI(base_url=s.base_url, api_key="key-b", max_retries=0)
        nobody = openai.OpenAI(base_url=s.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            nobody.responses.create(model=MODEL, input="Hi")
        mine = a.responses.create(model=MODEL, input="Hi")
        assert a.responses.retrieve(mine.id).id == mine.id
        with pytest.raises(openai.NotFoundError):
            b.responses.retrieve(mine.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.input_items.list(mine.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.delete(mine.id)
        with pytest.raises(openai.NotFoundError):
            b.responses.create(model=MODEL, input="Hi", previous_response_id=mine.id)
        assert a.responses.create(model=MODEL, input="Hi", previous_response_id=mine.id).status == "completed"
        assert httpx.get(s.base_url.removesuffix("/v1") + "/health").status_code == 200
        for c in (a, b, nobody):
            c.close()


def wait_for(client: openai.OpenAI, response_id: str, statuses: tuple[str, ...], timeout: float = 15) -> Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_background_response_runs_and_is_retrieved(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    text = "A slow but complete answer, streamed in small pieces."
    chat_server.script([{"text": text, "chunk_size": 4, "delay": 0.02}])
    started = client.responses.create(model=MODEL, input="Take your time", background=True, instructions="Slowly.")
    assert started.status == "queued" and started.background is True and started.instructions == "Slowly."
    assert started.output == []
    # While it runs, retrieve answers with the response as it stands.
    assert client.responses.retrieve(started.id).status in ("in_progress", "completed")
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="next", previous_response_id=started.id)
    done = wait_for(client, started.id, ("completed",))
    assert done.status == "completed" and done.output_text == text and done.background is True
    assert [i.content[0].text for i in client.responses.input_items.list(started.id).data] == ["Take your time"]
    # A finished response cannot be cancelled; one that was not a background one neither.
    with pytest.raises(openai.ConflictError):
        client.responses.cancel(started.id)
    plain = client.responses.create(model=MODEL, input="plain")
    with pytest.raises(openai.ConflictError):
        client.responses.cancel(plain.id)
    # It continues like any stored response.
    chat_server.script([{"text": "Next."}])
    assert client.responses.create(model=MODEL, input="more", previous_response_id=started.id).output_text == "Next."
    assert [m["role"] for m in chat_server.requests[-1]["messages"]] == ["user", "assistant", "user"]


def test_background_response_cancelled(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    chat_server.script([{"text": "word " * 60, "chunk_size": 5, "delay": 0.05}])
    started = client.responses.create(model=MODEL, input="Go on and on", background=True)
    chat_server.wait_for_requests(1)
    time.sleep(0.2)
    cancelled = client.responses.cancel(started.id)
    assert cancelled.status == "cancelled" and cancelled.id == started.id
    assert client.responses.cancel(started.id).status == "cancelled"  # idempotent
    time.sleep(0.5)  # the task is gone: nothing overwrites the cancelled state
    assert client.responses.retrieve(started.id).status == "cancelled"
    with sqlite3.connect(serve.db) as conn:
        (status,) = conn.execute("SELECT status FROM responses WHERE id = ?", (started.id,)).fetchone()
    assert status == "cancelled"


def test_background_failure_is_stored_failed(client: openai.OpenAI, chat_server) -> None:
    chat_server.script([{"error": {"status": 500, "message": "boom in the background"}}])
    started = client.responses.create(model=MODEL, input="Hi", background=True)
    failed = wait_for(client, started.id, ("failed",))
    assert failed.status == "failed" and "boom in the background" in failed.error.message


def test_background_left_running_by_a_stopped_server_is_failed_at_start(
    chat_server: ScriptedChatServer, tmp_path: Path
) -> None:
    chat_server.reset()
    chat_server.script([{"text": "never finished " * 20, "chunk_size": 2, "delay": 0.2}])
    with serve_process(chat_server.base_url, tmp_path) as first:
        with openai.OpenAI(base_url=first.base_url, api_key="none", max_retries=0) as c:
            started = c.responses.create(model=MODEL, input="Hi", background=True)
            chat_server.wait_for_requests(1)
    with serve_process(chat_server.base_url, tmp_path) as second:
        with openai.OpenAI(base_url=second.base_url, api_key="none", max_retries=0) as c:
            after = c.responses.retrieve(started.id)
    assert after.status == "failed" and after.error.code == "server_error"
    assert "stopped" in after.error.message


def test_shutdown_ends_a_stream_in_flight_with_response_failed(chat_server: ScriptedChatServer, tmp_path: Path) -> None:
    chat_server.reset()
    chat_server.script([{"text": "a long answer " * 40, "chunk_size": 2, "delay": 0.05}])
    with serve_process(chat_server.base_url, tmp_path, "--shutdown-timeout", "0.5") as s:
        with openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0) as c:
            events = []
            for event in c.responses.create(model=MODEL, input="Hi", stream=True):
                events.append(event)
                if event.type == "response.output_text.delta" and len(events) == 5:
                    os.kill(s.pid, signal.SIGTERM)
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "failed" and "shutting down" in final.error.message
    assert final.output[0].status == "incomplete"
    with sqlite3.connect(s.db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone() == (0,)


def test_max_upstream_caps_concurrent_model_calls(chat_server: ScriptedChatServer, tmp_path: Path) -> None:
    import threading

    chat_server.reset()
    chat_server.script([{"text": "one two three", "chunk_size": 4, "delay": 0.05}] * 2)
    times: dict[int, dict[str, float]] = {0: {}, 1: {}}
    with serve_process(chat_server.base_url, tmp_path, "--max-upstream", "1") as s:

        def run(n: int) -> None:
            with openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0) as c:
                for event in c.responses.create(model=MODEL, input=f"q{n}", stream=True):
                    times[n].setdefault(event.type, time.perf_counter())
                    times[n][event.type + ":last"] = time.perf_counter()

        threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert all("response.completed" in times[n] for n in (0, 1))
    first, second = sorted((0, 1), key=lambda n: times[n]["response.output_text.delta"])
    # Both were accepted at once, but the second reached the model only after the first's answer ended.
    assert times[second]["response.created"] < times[first]["response.completed"]
    assert times[second]["response.output_text.delta"] > times[first]["response.output_text.delta:last"]


def test_a_client_that_goes_away_stops_the_response(client: openai.OpenAI, chat_server, serve: Serve) -> None:
    before = rows(serve.db)
    chat_server.script([{"text": "many words " * 40, "chunk_size": 4, "delay": 0.05}, {"text": "next"}])
    response_id = None
    deltas = 0
    with httpx.stream("POST", serve.base_url + "/responses", json={"model": MODEL, "input": "Hi", "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and response_id is None:
                response_id = json.loads(line[6:])["response"]["id"]
            deltas += line == "event: response.output_text.delta"
            if deltas == 3:
                break
    left = time.monotonic()
    # The response stopped at once (its answer had 2 s to go): logged failed, nothing stored.
    while not (lines := [line for line in serve.log if f'"id": "{response_id}"' in line]):
        assert time.monotonic() - left < 1.5, "the response went on after its client left"
        time.sleep(0.02)
    record = json.loads(lines[0].split("responses_rs.server.requests: ", 1)[1])
    assert record["status"] == "failed" and record["error"] == "server_error"
    assert rows(serve.db) == before
    assert client.responses.create(model=MODEL, input="again").output_text == "next"


def test_surrogate_pair_split_across_upstream_chunks(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    # Some model servers split an emoji's UTF-16 surrogate pair across two chunks (`"\ud83d"`, then `"\ude00"`),
    # or send a lone one: the pair comes out as the one character, a lone one as U+FFFD, and the response completes.
    chat_server.script({"text_pieces": ["Hi \ud83d", "\ude00 and \udc00!"]})
    final, events = streamed(client, model=MODEL, input="emoji please")
    assert final.status == "completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["Hi ", "\U0001f600 and \ufffd!"]
    assert final.output_text == "Hi \U0001f600 and \ufffd!"
    assert client.responses.retrieve(final.id).output_text == "Hi \U0001f600 and \ufffd!"
    # Not streamed to the client: the same text.
    chat_server.script({"text_pieces": ["\ud83d", "\ude00"]})
    assert client.responses.create(model=MODEL, input="again").output_text == "\U0001f600"
