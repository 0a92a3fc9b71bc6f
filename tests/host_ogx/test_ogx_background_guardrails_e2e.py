"""`background: true` with `guardrails` end to end: the official openai client -> a real ``ogx run`` whose
responses provider is responses-rs (sqlite stores in a temporary directory) -> the project's scripted Chat
Completions server, with a local moderation endpoint (``MODERATION_ENDPOINT``, the packaged run config's
``moderation_endpoint``). The client polls the background response as it would any other."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest
from moderation_server import Moderation
from ogx_server import ogx_server
from openai.types.responses import Response
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "bg-guard-e2e-model"
POLL_S = 0.05
WAIT_S = 30
GUARDED = {"guardrails": True}
FLAGGED = "Content blocked by safety guardrails (flagged for: violence)"


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def moderation() -> Iterator[Moderation]:
    server = Moderation()
    yield server
    server.close()


@pytest.fixture(scope="module")
def ogx(
    chat_server: ScriptedChatServer, moderation: Moderation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with ogx_server(
        tmp_path_factory.mktemp("ogx-bg-guard"),
        base_url=chat_server.base_url,
        model=MODEL,
        env={"MODERATION_ENDPOINT": moderation.url},
    ) as base:
        yield base


@pytest.fixture
def client(ogx: str, chat_server: ScriptedChatServer, moderation: Moderation) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    moderation.inputs.clear()
    moderation.status = 200
    oai = openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


def poll(client: openai.OpenAI, response_id: str, *statuses: str) -> Response:
    deadline = time.monotonic() + WAIT_S
    while True:
        response = client.responses.retrieve(response_id)
        if response.status in statuses:
            return response
        assert time.monotonic() < deadline, f"still {response.status} after {WAIT_S}s"
        time.sleep(POLL_S)


def ended(client: openai.OpenAI, response_id: str) -> Response:
    return poll(client, response_id, "completed", "failed", "incomplete", "cancelled")


def refusal(response: Response) -> str:
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    (part,) = message.content
    assert part.type == "refusal"
    return part.refusal


def test_clean_background_response_passes(client: openai.OpenAI, chat_server, moderation: Moderation) -> None:
    chat_server.script({"text": "A calm answer.", "chunk_size": 3, "delay": 0.05})
    queued = client.responses.create(model=MODEL, input="Hello", background=True, extra_body=GUARDED)
    assert queued.status == "queued" and queued.background is True
    done = ended(client, queued.id)
    assert done.status == "completed" and done.output_text == "A calm answer."
    assert moderation.inputs[0] == "Hello" and moderation.inputs[-1] == "A calm answer."


def test_flagged_input_and_output_end_completed_with_the_refusal(
    client: openai.OpenAI, chat_server, moderation: Moderation
) -> None:
    blocked = client.responses.create(model=MODEL, input="a forbidden plan", background=True, extra_body=GUARDED)
    done = ended(client, blocked.id)
    assert done.status == "completed" and refusal(done) == FLAGGED
    assert chat_server.requests == []  # no inference
    chat_server.script({"text": "the forbidden answer", "chunk_size": 4})
    flagged = client.responses.create(model=MODEL, input="Hello", background=True, extra_body=GUARDED)
    done = ended(client, flagged.id)
    assert done.status == "completed" and refusal(done) == FLAGGED
    assert "forbidden answer" not in done.model_dump_json()
    # The stored refusal continues as any response does: a streamed follow-up, validated.
    chat_server.script({"text": "Something else, then."})
    events = list(
        client.responses.create(
            model=MODEL, input="Then what?", previous_response_id=flagged.id, stream=True, extra_body=GUARDED
        )
    )
    follow = validate_stream(events, response_cls=Response, schema_host="full")
    assert follow.status == "completed" and follow.output_text == "Something else, then."


def test_moderation_failing_fails_closed(client: openai.OpenAI, chat_server, moderation: Moderation) -> None:
    moderation.status = 500
    chat_server.script({"text": "fine text"})
    queued = client.responses.create(model=MODEL, input="Hello", background=True, extra_body=GUARDED)
    done = ended(client, queued.id)
    assert done.status == "completed"
    assert refusal(done) == "Failed to validate content: moderation service unavailable"
    assert chat_server.requests == []


def test_cancel_mid_run(client: openai.OpenAI, chat_server) -> None:
    # 20 chunks, 0.5 s before each event: ten seconds, unless cancelled.
    chat_server.script({"text": "x" * 40, "chunk_size": 2, "delay": 0.5})
    queued = client.responses.create(model=MODEL, input="Take your time", background=True, extra_body=GUARDED)
    chat_server.wait_for_requests(1)
    poll(client, queued.id, "in_progress")
    cancelled = client.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.output == []
    time.sleep(1.5)  # past several more chunks: nothing overwrites the cancellation
    stored = client.responses.retrieve(queued.id)
    assert stored.status == "cancelled" and stored.output == []
