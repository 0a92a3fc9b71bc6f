"""The WebSocket mode of a real ``responses-rs serve`` process (``websockets`` client), against the scripted
Chat Completions server: every turn's events through the strict stream validator and the full schema."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openai._models import construct_type
from openai.types.responses import Response, ResponseStreamEvent
from serve_process import Serve, serve_process
from stream_validator import validate_stream
from websockets.sync.client import connect

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve-ws")) as s:
        yield s


def ws_url(serve: Serve) -> str:
    return serve.base_url.replace("http://", "ws://") + "/responses"


def turn(ws, **request) -> list[dict]:
    """One turn: a `response.create` frame, then every frame until a terminal event or an error."""
    ws.send(json.dumps({"type": "response.create", **request}))
    events = []
    while True:
        event = json.loads(ws.recv(timeout=30))
        events.append(event)
        if event["type"] in ("response.completed", "response.incomplete", "response.failed", "error"):
            return events


def validated(events: list[dict]) -> Response:
    typed = [construct_type(value=e, type_=ResponseStreamEvent) for e in events]
    return validate_stream(typed, response_cls=Response, schema_host="full")


def test_store_false_chain_lives_in_the_connection(serve: Serve, chat_server: ScriptedChatServer) -> None:
    chat_server.reset()
    chat_server.script([{"text": "First."}, {"text": "Second."}, {"text": "Third."}])
    with connect(ws_url(serve)) as ws:
        first = validated(turn(ws, model=MODEL, input="One", store=False))
        assert first.output_text == "First." and first.store is False
        second = validated(turn(ws, model=MODEL, input="Two", store=False, previous_response_id=first.id))
        assert second.output_text == "Second."
        sent = chat_server.requests[-1]["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        # Only the newest response of a chain stays: continuing from the first again is a miss.
        missing = turn(ws, model=MODEL, input="x", store=False, previous_response_id=first.id)
        assert missing == [
            {
                "type": "error",
                "status": 404,
                "error": {
                    "type": "invalid_request_error",
                    "code": "previous_response_not_found",
                    "param": "previous_response_id",
                    "message": f"Previous response with id '{first.id}' not found.",
                },
            }
        ]
        third = validated(turn(ws, model=MODEL, input="Three", store=False, previous_response_id=second.id))
        assert third.output_text == "Third."
        assert len(chat_server.requests[-1]["messages"]) == 5
    # Nothing was stored, and another connection does not see the chain.
    assert httpx.get(f"{serve.base_url}/responses/{third.id}").status_code == 404
    with connect(ws_url(serve)) as ws:
        miss = turn(ws, model=MODEL, input="x", store=False, previous_response_id=third.id)
        assert miss[-1]["error"]["code"] == "previous_response_not_found"


def test_stored_responses_continue_on_a_new_connection(serve: Serve, chat_server: ScriptedChatServer) -> None:
    chat_server.reset()
    chat_server.script([{"text": "Stored."}, {"text": "Continued."}])
    with connect(ws_url(serve)) as ws:
        first = validated(turn(ws, model=MODEL, input="One"))
    assert httpx.get(f"{serve.base_url}/responses/{first.id}").json()["output"][0]["content"][0]["text"] == "Stored."
    with connect(ws_url(serve)) as ws:
        second = validated(turn(ws, model=MODEL, input="Two", previous_response_id=first.id))
    assert second.output_text == "Continued." and second.previous_response_id == first.id


def test_errors_are_envelopes_and_the_connection_goes_on(serve: Serve, chat_server: ScriptedChatServer) -> None:
    chat_server.reset()
    with connect(ws_url(serve)) as ws:
        ws.send("{nope")
        assert json.loads(ws.recv(timeout=30))["error"]["code"] == "invalid_json"
        bad = turn(ws, model=MODEL, input="x", temperature="hot")
        assert bad[-1]["type"] == "error" and bad[-1]["status"] == 400
        assert bad[-1]["error"]["param"] == "temperature"
        wrong = json.dumps({"type": "response.cancel"})
        ws.send(wrong)
        assert json.loads(ws.recv(timeout=30))["error"]["param"] == "type"
        warm = turn(ws, model=MODEL, input="x", generate="no")
        assert warm[-1]["error"]["param"] == "generate"
        assert chat_server.requests == []
        # An upstream failure ends that turn with response.failed; the socket stays usable.
        chat_server.script([{"error": {"status": 500, "message": "boom"}}, {"text": "fine"}])
        failed = validated(turn(ws, model=MODEL, input="x"))
        assert failed.status == "failed" and "boom" in failed.error.message
        assert validated(turn(ws, model=MODEL, input="y")).output_text == "fine"


def test_api_keys_on_the_socket(chat_server: ScriptedChatServer, tmp_path) -> None:
    with serve_process(chat_server.base_url, tmp_path, "--api-key", "k1") as s:
        with connect(ws_url(s)) as ws:
            refused = json.loads(ws.recv(timeout=30))
            assert refused["status"] == 401 and refused["error"]["code"] == "invalid_api_key"
        chat_server.reset()
        with connect(ws_url(s), additional_headers={"Authorization": "Bearer k1"}) as ws:
            assert validated(turn(ws, model=MODEL, input="hi")).output_text == "ok: hi"


def test_generate_false_warms_up_without_the_model(serve: Serve, chat_server: ScriptedChatServer) -> None:
    chat_server.reset()
    chat_server.script([{"text": "Answer."}, {"text": "Stored answer."}])
    tools = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]
    with connect(ws_url(serve)) as ws:
        warm = validated(
            turn(ws, model=MODEL, input="Context.", instructions="Be kind.", tools=tools, store=False, generate=False)
        )
        assert warm.status == "completed" and warm.output == [] and warm.instructions == "Be kind."
        assert chat_server.requests == []  # the model was not called
        answer = validated(
            turn(ws, model=MODEL, input="Question?", tools=tools, store=False, previous_response_id=warm.id)
        )
        assert answer.output_text == "Answer."
        sent = chat_server.requests[-1]["messages"]
        assert [(m["role"], m["content"]) for m in sent] == [("user", "Context."), ("user", "Question?")]
        # Stored, a warm-up is a response like any other.
        stored = validated(turn(ws, model=MODEL, input="Kept.", generate=False))
        assert httpx.get(f"{serve.base_url}/responses/{stored.id}").json()["status"] == "completed"
        after = validated(turn(ws, model=MODEL, input="Next?", previous_response_id=stored.id))
        assert after.output_text == "Stored answer."
