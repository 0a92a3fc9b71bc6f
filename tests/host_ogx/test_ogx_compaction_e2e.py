"""End to end: compaction and truncation through a real ``ogx run`` with responses-rs as its responses provider,
the official openai client (``client.responses.compact``) and the project's scripted Chat Completions server.
Every stream goes through the strict stream validator and the Open Responses schema ("full"); the compacted
object through the spec's ``CompactResource``."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from ogx.providers.inline.responses.builtin.config import DEFAULT_SUMMARIZATION_PROMPT, DEFAULT_SUMMARY_PREFIX
from ogx_server import e2e_fixtures, streamed
from open_responses_schema import SPEC_AVAILABLE, _check
from openai.types.responses import CompactedResponse

from responses_rs.testkit import ScriptedChatServer

MODEL = "e2e-model"
SUMMARY = "They planned Rome: Colosseum on day 1."
PREFIXED = f"{DEFAULT_SUMMARY_PREFIX}\n{SUMMARY}"
TOO_LONG = {
    "error": {
        "status": 400,
        "message": "This model's maximum context length is 32 tokens.",
        "code": "context_length_exceeded",
    }
}


chat_server, ogx, client = e2e_fixtures(MODEL)


def chat(request: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for m in request["messages"]:
        content = m.get("content")
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content or [])
        out.append((m["role"], text))
    return out


def window_texts(compacted: CompactedResponse) -> list[tuple[str, str]]:
    out = []
    for item in compacted.output:
        if item.type == "compaction":
            out.append(("compaction", item.encrypted_content))
        else:
            out.append((item.role, "".join(part.text for part in item.content)))
    return out


def dump(model: Any) -> Any:
    # openai-python types the window as output items, whose message class expects `output_text` parts: the user
    # messages' `input_text` parts (the spec's shape, and OpenAI's) make pydantic warn when dumping. Not ours.
    return model.model_dump(mode="json", exclude_none=True, warnings=False)


def check_compacted(compacted: CompactedResponse) -> None:
    assert isinstance(compacted, CompactedResponse) and compacted.object == "response.compaction"
    if SPEC_AVAILABLE:
        _check(dump(compacted), "CompactResource", "full", "compacted")


def test_compact_then_continue_from_the_window(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": SUMMARY}, {"text": "Day 2: the Vatican."}])
    compacted = client.responses.compact(
        model=MODEL,
        input=[
            {"role": "user", "content": "Plan a trip to Rome."},
            {"role": "assistant", "content": "Day 1: the Colosseum."},
            {"role": "user", "content": "Keep going."},
        ],
    )
    check_compacted(compacted)
    assert window_texts(compacted) == [
        ("user", "Plan a trip to Rome."),
        ("user", "Keep going."),
        ("compaction", PREFIXED),
    ]
    assert compacted.usage.total_tokens > 0
    summarize = chat_server.requests[0]
    assert not summarize.get("stream")
    assert chat(summarize)[-1] == ("user", DEFAULT_SUMMARIZATION_PROMPT)
    # The window, as the client got it, is the next request's input: the model gets the summary, not the old turns.
    window = [dump(item) for item in compacted.output]
    answer = streamed(client, model=MODEL, input=[*window, {"role": "user", "content": "And day 2?"}])
    assert answer.output_text == "Day 2: the Vatican."
    assert chat(chat_server.requests[-1]) == [
        ("user", "Plan a trip to Rome."),
        ("user", "Keep going."),
        ("assistant", PREFIXED),
        ("user", "And day 2?"),
    ]
    # The compaction is stored with that response; its input items hide it, as OGX's store does.
    items = client.responses.input_items.list(answer.id, order="asc")
    assert [item.type for item in items.data] == ["message", "message", "message"]


def test_compact_a_chain_and_continue_from_its_id(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": "Day 1: the Colosseum."}, {"text": SUMMARY}, {"text": "Day 2: the Vatican."}])
    first = client.responses.create(model=MODEL, input="Plan a trip to Rome.")
    compacted = client.responses.compact(model=MODEL, previous_response_id=first.id)
    check_compacted(compacted)
    assert window_texts(compacted) == [("user", "Plan a trip to Rome."), ("compaction", PREFIXED)]
    summarized = chat(chat_server.requests[1])
    assert summarized[:2] == [("user", "Plan a trip to Rome."), ("assistant", "Day 1: the Colosseum.")]
    # The compaction's id is a stored, completed response: a chain continues from it.
    assert client.responses.retrieve(compacted.id).status == "completed"
    answer = streamed(client, model=MODEL, input="And day 2?", previous_response_id=compacted.id)
    assert answer.output_text == "Day 2: the Vatican." and answer.previous_response_id == compacted.id
    assert chat(chat_server.requests[-1]) == [
        ("user", "Plan a trip to Rome."),
        ("assistant", PREFIXED),
        ("user", "And day 2?"),
    ]


def test_compact_without_input_or_previous_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.compact(model=MODEL)
    assert "previous_response_id" in bad.value.response.text


def test_context_management_compacts_before_answering(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": "Day 1: the Colosseum."}, {"text": SUMMARY}, {"text": "Day 2: the Vatican."}])
    first = client.responses.create(model=MODEL, input="Plan a trip to Rome.")
    answer = streamed(
        client,
        model=MODEL,
        input="And day 2?",
        previous_response_id=first.id,
        context_management=[{"type": "compaction", "compact_threshold": 1}],
    )
    assert answer.output_text == "Day 2: the Vatican." and answer.previous_response_id == first.id
    summarize, answering = chat_server.requests[1:]
    assert not summarize.get("stream") and chat(summarize)[-1] == ("user", DEFAULT_SUMMARIZATION_PROMPT)
    assert chat(answering) == [("user", "Plan a trip to Rome."), ("user", "And day 2?"), ("assistant", PREFIXED)]


def test_a_too_long_context_drops_the_oldest_turn(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": "a0"}, {"text": "a1"}, TOO_LONG, {"text": "short answer"}])
    first = client.responses.create(model=MODEL, input="q0")
    second = client.responses.create(model=MODEL, input="q1", previous_response_id=first.id)
    answer = streamed(client, model=MODEL, input="q2", previous_response_id=second.id, truncation="auto")
    assert answer.status == "completed" and answer.output_text == "short answer" and answer.truncation == "auto"
    refused, retried = chat_server.requests[-2:]
    assert [role for role, _ in chat(refused)] == ["user", "assistant", "user", "assistant", "user"]
    assert chat(retried) == [("user", "q1"), ("assistant", "a1"), ("user", "q2")]


def test_nothing_left_to_drop_fails(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([TOO_LONG])
    failed = streamed(client, model=MODEL, input="q")
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "context_length_exceeded"
    chat_server.script([TOO_LONG])
    with pytest.raises(openai.InternalServerError) as error:
        client.responses.create(model=MODEL, input="q")
    assert "could not be reduced further by truncation" in error.value.response.text
