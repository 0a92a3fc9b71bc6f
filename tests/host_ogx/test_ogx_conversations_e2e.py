"""End to end: `conversation`, `prompt` and `guardrails` through a real ``ogx run`` whose responses provider is
responses-rs, with the official openai client (conversations and prompts created over OGX's own HTTP routes),
the project's scripted Chat Completions server and a local moderation endpoint (``MODERATION_ENDPOINT``, the
packaged run config's ``moderation_endpoint``). Streams go through the strict stream validator."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from moderation_server import Moderation
from ogx_server import ogx_server, streamed
from openai.types.responses import Response
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "e2e-model"


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
        tmp_path_factory.mktemp("ogx-conv"),
        base_url=chat_server.base_url,
        model=MODEL,
        env={"MODERATION_ENDPOINT": moderation.url},
    ) as base:
        yield base


@pytest.fixture
def client(ogx: str, chat_server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    oai = openai.OpenAI(base_url=ogx, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


def text(content) -> str:
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def test_a_conversation(client: openai.OpenAI, chat_server) -> None:
    conv = client.conversations.create()
    chat_server.script([{"text": "Nice to meet you, Ada."}, {"text": "You are Ada."}])
    first = client.responses.create(model=MODEL, input="My name is Ada.", conversation=conv.id)
    assert first.status == "completed" and first.output_text == "Nice to meet you, Ada."
    second = streamed(client, model=MODEL, input="Who am I?", conversation=conv.id)
    assert second.output_text == "You are Ada."
    # the model saw the earlier turn
    sent = [(m["role"], text(m["content"])) for m in chat_server.requests[-1]["messages"]]
    assert sent == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "Who am I?"),
    ]
    # the conversation lists both turns, the assistant items with the responses' own ids
    items = client.conversations.items.list(conv.id, order="asc")
    roles_texts = [(i.role, "".join(getattr(p, "text", "") for p in i.content)) for i in items.data]
    assert roles_texts == [
        ("user", "My name is Ada."),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "Who am I?"),
        ("assistant", "You are Ada."),
    ]
    assert items.data[1].id == first.output[0].id and items.data[3].id == second.output[0].id
    # each response's input items are its own turn
    listed = client.responses.input_items.list(second.id)
    assert [i.id for i in listed.data] == [items.data[2].id]
    # conversation with previous_response_id: 400 naming the field; an unknown conversation: 404
    with pytest.raises(openai.BadRequestError) as both:
        client.responses.create(model=MODEL, input="x", conversation=conv.id, previous_response_id=first.id)
    assert "conversation" in both.value.response.text
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model=MODEL, input="x", conversation="conv_" + "0" * 48)


def test_a_prompt_template(client: openai.OpenAI, chat_server) -> None:
    created = client.post(
        "/prompts",
        cast_to=dict,
        body={"prompt": "You are a guide to {{ city }}. Be {{style}}.", "variables": ["city", "style"]},
    )
    prompt_id = created["prompt_id"]
    chat_server.script({"text": "Visit the Louvre."})
    variables = {"city": {"type": "input_text", "text": "Paris"}, "style": {"type": "input_text", "text": "brief"}}
    response = streamed(
        client,
        model=MODEL,
        input="What should I see?",
        prompt={"id": prompt_id, "version": "1", "variables": variables},
    )
    assert response.output_text == "Visit the Louvre."
    assert response.prompt is not None and response.prompt.id == prompt_id and response.prompt.version == "1"
    sent = [(m["role"], text(m["content"])) for m in chat_server.requests[-1]["messages"]]
    assert sent == [("system", "You are a guide to Paris. Be brief."), ("user", "What should I see?")]
    assert client.responses.retrieve(response.id).prompt.id == prompt_id
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(
            model=MODEL, input="x", prompt={"id": prompt_id, "variables": {"nope": {"type": "input_text", "text": "v"}}}
        )
    assert "prompt.variables" in bad.value.response.text and "'nope'" in bad.value.response.text


def test_guardrails(client: openai.OpenAI, chat_server, moderation: Moderation) -> None:
    # flagged input: a completed response whose one message is a refusal; the model is not called
    blocked = client.responses.create(model=MODEL, input="a forbidden plan", extra_body={"guardrails": True})
    assert blocked.status == "completed" and chat_server.requests == []
    (message,) = blocked.output
    assert message.content[0].type == "refusal"
    assert message.content[0].refusal == "Content blocked by safety guardrails (flagged for: violence)"
    # flagged output, streamed: none of the flagged text reaches the client
    chat_server.script({"text": "Here is the forbidden answer."})
    events = list(client.responses.create(model=MODEL, input="hello", stream=True, extra_body={"guardrails": True}))
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert [p.type for p in final.output[0].content] == ["refusal"]
    assert not any("forbidden" in e.model_dump_json() for e in events[:-1])
    # clean: answered as usual, input and output were checked
    chat_server.script({"text": "Hi there."})
    before = len(moderation.inputs)
    clean = streamed(client, model=MODEL, input="hello", extra_body={"guardrails": True})
    assert clean.output_text == "Hi there."
    assert moderation.inputs[before:] == ["hello", "Hi there."]
