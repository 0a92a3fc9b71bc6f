"""The Conversations API of a real ``responses-rs serve`` process with the official openai client, and responses
created in a conversation (streamed ones through the strict stream validator)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serve_process(
        chat_server.base_url, tmp_path_factory.mktemp("serve-conv"), "--api-key", "k1", "--api-key", "k2"
    ) as s:
        yield s


@pytest.fixture
def client(serve: Serve, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    with openai.OpenAI(base_url=serve.base_url, api_key="k1", max_retries=0, timeout=30) as oai:
        yield oai


def texts(items) -> list[str]:
    return [part.text for item in items for part in (item.content or [])]


def test_conversation_crud_and_items(client: openai.OpenAI, serve: Serve) -> None:
    conv = client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Remember: blue."}], metadata={"topic": "colours"}
    )
    assert conv.id.startswith("conv_") and conv.metadata == {"topic": "colours"}
    assert client.conversations.retrieve(conv.id).created_at == conv.created_at
    updated = client.conversations.update(conv.id, metadata={"topic": "paint"})
    assert updated.metadata == {"topic": "paint"}
    added = client.conversations.items.create(
        conv.id,
        items=[
            {"type": "message", "role": "assistant", "content": "Noted."},
            {"type": "message", "role": "user", "content": "And red."},
        ],
    )
    assert len(added.data) == 2 and all(item.id.startswith("msg_") for item in added.data)
    listed = client.conversations.items.list(conv.id, order="asc")
    assert texts(listed.data) == ["Remember: blue.", "Noted.", "And red."]
    newest = client.conversations.items.list(conv.id, limit=1)
    assert texts(newest.data) == ["And red."] and newest.has_more is True
    rest = client.conversations.items.list(conv.id, limit=5, after=newest.last_id)
    assert texts(rest.data) == ["Noted.", "Remember: blue."] and rest.has_more is False
    one = client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    assert texts([one]) == ["Noted."]
    client.conversations.items.delete(added.data[0].id, conversation_id=conv.id)
    assert texts(client.conversations.items.list(conv.id, order="asc").data) == ["Remember: blue.", "And red."]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(added.data[0].id, conversation_id=conv.id)
    # Another key does not see it.
    with openai.OpenAI(base_url=serve.base_url, api_key="k2", max_retries=0) as other:
        with pytest.raises(openai.NotFoundError):
            other.conversations.retrieve(conv.id)
        with pytest.raises(openai.NotFoundError):
            other.responses.create(model=MODEL, input="x", conversation=conv.id)
    deleted = client.conversations.delete(conv.id)
    assert deleted.deleted is True
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conv.id)


def test_responses_in_a_conversation(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    conv = client.conversations.create(items=[{"type": "message", "role": "system", "content": "Be terse."}])
    chat_server.script([{"text": "Hello."}, {"text": "Fine."}])
    first = client.responses.create(model=MODEL, input="Hi", conversation=conv.id)
    assert first.output_text == "Hello."
    events = list(client.responses.create(model=MODEL, input="How are you?", conversation={"id": conv.id}, stream=True))
    second = validate_stream(events, response_cls=Response, schema_host="full")
    assert second.output_text == "Fine."
    # The model saw the whole conversation; the conversation has every turn's input and output.
    assert [m["role"] for m in chat_server.requests[-1]["messages"]] == ["system", "user", "assistant", "user"]
    items = client.conversations.items.list(conv.id, order="asc", limit=100).data
    assert texts(items) == ["Be terse.", "Hi", "Hello.", "How are you?", "Fine."]
    assert items[2].id == first.output[0].id
    # A failed response adds nothing.
    chat_server.script([{"error": {"status": 500, "message": "boom"}}])
    failed = validate_stream(
        list(client.responses.create(model=MODEL, input="again", conversation=conv.id, stream=True)),
        response_cls=Response,
        schema_host="full",
    )
    assert failed.status == "failed"
    assert len(client.conversations.items.list(conv.id, limit=100).data) == 5


def test_conversation_errors(client: openai.OpenAI, serve: Serve) -> None:
    headers = {"Authorization": "Bearer k1"}
    bad = httpx.post(f"{serve.base_url}/conversations", json={"metadata": {"k": 5}}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "metadata"
    bad = httpx.post(f"{serve.base_url}/conversations", json={"items": "nope"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "items"
    conv = client.conversations.create()
    both = httpx.post(
        f"{serve.base_url}/responses",
        json={"model": MODEL, "input": "x", "conversation": conv.id, "previous_response_id": "resp-1"},
        headers=headers,
    )
    assert both.status_code == 400 and both.json()["error"]["param"] == "conversation"
    missing = httpx.post(
        f"{serve.base_url}/responses", json={"model": MODEL, "input": "x", "conversation": "conv_nope"}, headers=headers
    )
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "conversation"
    assert httpx.get(f"{serve.base_url}/conversations/{conv.id}").status_code == 401
