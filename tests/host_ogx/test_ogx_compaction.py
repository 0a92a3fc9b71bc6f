"""Compaction and truncation on OGX 1.5's contract: `compact_openai_response`, `compaction` items given back as
input, `context_management` automatic compaction, and the retry without the oldest turn when inference says
the context is too long. OGX's store on a real sqlite file; inference is the only mock. Streams go through
the stream validator and the Open Responses schema (host "full"); compacted objects through the spec's
`CompactResource`."""

from __future__ import annotations

import json
import sqlite3
from typing import Any
from unittest.mock import AsyncMock

import httpx2
import openai
import pytest
from ogx.providers.inline.responses.builtin.config import (
    DEFAULT_SUMMARIZATION_PROMPT,
    DEFAULT_SUMMARY_PREFIX,
    CompactionConfig,
)
from ogx_api import (
    CompactResponseRequest,
    CreateResponseRequest,
    InternalServerError,
    InvalidParameterError,
    ListResponseInputItemsRequest,
    OpenAIChatCompletion,
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAIChatCompletionUsage,
    OpenAIChoice,
    ResponseNotFoundError,
    RetrieveResponseRequest,
)
from ogx_api import openai_responses as ogx_responses
from ogx_helpers import MODEL, Script, _chunks, collect
from open_responses_schema import SPEC_AVAILABLE, _check

from responses_rs._core import InvalidRequest
from responses_rs.ogx import _compaction
from responses_rs.ogx._impl import CompactedResponse

SUMMARY = "the summary of it all"
PREFIXED = f"{DEFAULT_SUMMARY_PREFIX}\n{SUMMARY}"


def completion(text: str) -> OpenAIChatCompletion:
    return OpenAIChatCompletion(
        id="chatcmpl-s",
        created=0,
        model=MODEL,
        object="chat.completion",
        choices=[OpenAIChoice(index=0, finish_reason="stop", message={"role": "assistant", "content": text})],
        usage=OpenAIChatCompletionUsage(prompt_tokens=30, completion_tokens=5, total_tokens=35),
    )


def context_length_error(message: str = "This model's maximum context length is 64 tokens.") -> openai.BadRequestError:
    """What OGX's OpenAI-compatible inference raises for an oversized prompt (the SDK keeps the body's `error`)."""
    response = httpx2.Response(400, request=httpx2.Request("POST", "http://upstream/v1/chat/completions"))
    body = {"message": message, "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}
    return openai.BadRequestError(message, response=response, body=body)


@pytest.fixture
def inference(script: Script) -> AsyncMock:
    """OGX's inference API answering from the script: a streamed call gets chunks, a call with `stream=False` (the
    summarization call) a completion; an exception in the script is raised."""

    async def openai_chat_completion(params: Any) -> Any:
        script.requests.append(params)
        assert script.turns, f"unexpected inference call: {params}"
        answer = script.turns.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return _chunks(answer) if params.stream else completion(answer)

    api = AsyncMock()
    api.openai_chat_completion.side_effect = openai_chat_completion
    return api


def with_config(impl: Any, **compaction: Any) -> Any:
    impl.config = type("Config", (), {"compaction_config": CompactionConfig(**compaction)})()
    return impl


def sent(params: OpenAIChatCompletionRequestWithExtraBody) -> list[tuple[str, str]]:
    out = []
    for m in params.messages:
        content = m.content if isinstance(m.content, str) else "".join(p.text for p in m.content)
        out.append((m.role, content))
    return out


def text_of(response: Any) -> str:
    return "".join(part.text for item in response.output if item.type == "message" for part in item.content)


def item_texts(items: Any) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if item.type == "compaction":
            out.append(("compaction", item.encrypted_content))
        else:
            content = item.content if isinstance(item.content, str) else "".join(p.text for p in item.content)
            out.append((item.role, content))
    return out


def check_compacted(compacted: Any) -> None:
    assert isinstance(compacted, CompactedResponse)
    assert compacted.object == "response.compaction"
    if SPEC_AVAILABLE:
        _check(compacted.model_dump(mode="json"), "CompactResource", "full", f"compacted {compacted.id}")


async def create(impl: Any, **fields: Any) -> tuple[Any, list[Any]]:
    fields.setdefault("model", MODEL)
    return await collect(await impl.create_openai_response(CreateResponseRequest(**fields)))


def stored_row(db_path: str, response_id: str) -> dict[str, Any]:
    with sqlite3.connect(db_path) as db:
        (raw,) = db.execute("SELECT response_object FROM responses WHERE id = ?", (response_id,)).fetchone()
    return json.loads(raw)


# ---------------------------------------------------------------------------------------------------------------
# POST /v1/responses/compact


async def test_compact_input(impl: Any, script: Script, db_path: str) -> None:
    script.turns.append(SUMMARY)
    history = [
        {"role": "user", "content": "Plan a trip to Rome."},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Day 1: Colosseum."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Add a museum."}]},
    ]
    compacted = await impl.compact_openai_response(
        CompactResponseRequest(model=MODEL, input=history, prompt_cache_key="k1")
    )
    check_compacted(compacted)
    # One non-streamed call: the history, then the builtin's summarization prompt as a user message.
    (params,) = script.requests
    assert params.stream is False and params.model == MODEL and params.prompt_cache_key == "k1"
    assert sent(params) == [
        ("user", "Plan a trip to Rome."),
        ("assistant", "Day 1: Colosseum."),
        ("user", "Add a museum."),
        ("user", DEFAULT_SUMMARIZATION_PROMPT),
    ]
    # Every user message verbatim under a new id, then the compaction item: the prefix and the summary.
    assert item_texts(compacted.output) == [
        ("user", "Plan a trip to Rome."),
        ("user", "Add a museum."),
        ("compaction", PREFIXED),
    ]
    assert [item.id[:4] for item in compacted.output] == ["msg_", "msg_", "cmp_"]
    assert all(item.status == "completed" for item in compacted.output[:2])
    assert (compacted.usage.input_tokens, compacted.usage.output_tokens, compacted.usage.total_tokens) == (30, 5, 35)
    # Stored as a completed response with no output; its input items hide the compaction (OGX's store).
    stored = await impl.get_openai_response(RetrieveResponseRequest(response_id=compacted.id))
    assert stored.status == "completed" and stored.output == [] and stored.usage.total_tokens == 35
    row = stored_row(db_path, compacted.id)
    assert [i["type"] for i in row["input"]] == ["message", "message", "compaction"]
    assert row["input"][2]["encrypted_content"] == PREFIXED
    assert [m["role"] for m in row["messages"]] == ["user", "user", "assistant"]
    listed = await impl.list_openai_response_input_items(
        ListResponseInputItemsRequest(response_id=compacted.id, order="asc")
    )
    assert [i.type for i in listed.data] == ["message", "message"]


async def test_compact_a_string_with_instructions_and_configured_prompts(impl: Any, script: Script) -> None:
    with_config(impl, summarization_prompt="SUM UP", summary_prefix="", summarization_model="summarizer")
    script.turns.append(SUMMARY)
    compacted = await impl.compact_openai_response(
        CompactResponseRequest(model=MODEL, input="just this", instructions="Keep the names.")
    )
    check_compacted(compacted)
    (params,) = script.requests
    assert params.model == "summarizer"
    assert sent(params) == [("user", "just this"), ("user", "Keep the names.\n\nSUM UP")]
    assert item_texts(compacted.output) == [("user", "just this"), ("compaction", SUMMARY)]
    # The record names the request's model.
    stored = await impl.get_openai_response(RetrieveResponseRequest(response_id=compacted.id))
    assert stored.model == MODEL


async def test_compact_a_chain(impl: Any, script: Script) -> None:
    script.turns += ["a0", "a1", SUMMARY]
    first, _ = await create(impl, input="q0")
    second, _ = await create(impl, input="q1", previous_response_id=first.id)
    compacted = await impl.compact_openai_response(
        CompactResponseRequest(model=MODEL, previous_response_id=second.id, input="q2")
    )
    check_compacted(compacted)
    assert sent(script.requests[-1]) == [
        ("user", "q0"),
        ("assistant", "a0"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("user", DEFAULT_SUMMARIZATION_PROMPT),
    ]
    assert item_texts(compacted.output) == [("user", "q0"), ("user", "q1"), ("user", "q2"), ("compaction", PREFIXED)]
    # Without new input: the chain alone.
    script.turns.append("again")
    alone = await impl.compact_openai_response(CompactResponseRequest(model=MODEL, previous_response_id=second.id))
    assert [role for role, _ in sent(script.requests[-1])] == ["user", "assistant", "user", "assistant", "user"]
    assert item_texts(alone.output)[-1] == ("compaction", f"{DEFAULT_SUMMARY_PREFIX}\nagain")


async def test_compact_errors(impl: Any, script: Script) -> None:
    with pytest.raises(InvalidParameterError, match="input, previous_response_id"):
        await impl.compact_openai_response(CompactResponseRequest(model=MODEL))
    with pytest.raises(ResponseNotFoundError):
        await impl.compact_openai_response(CompactResponseRequest(model=MODEL, previous_response_id="resp_nope"))
    # What OGX's request model lets through and the core refuses is named by its field (a direct call here).
    bad = CompactResponseRequest.model_construct(model=MODEL, input=[{"role": "robot", "content": "x"}])
    with pytest.raises(InvalidRequest, match=r"^input\[0\]\.role"):
        await impl.compact_openai_response(bad)
    with pytest.raises(ValueError, match="no model specified"):
        await impl.compact_openai_response(CompactResponseRequest(model=None, input="x"))
    assert script.requests == []  # refused before any inference


# ---------------------------------------------------------------------------------------------------------------
# The compacted window as input


async def test_the_window_as_input_sends_the_summary_not_the_old_turns(impl: Any, script: Script, stream: bool) -> None:
    script.turns += ["a0", "a1", SUMMARY, "fresh answer"]
    first, _ = await create(impl, input="q0")
    second, _ = await create(impl, input="q1", previous_response_id=first.id)
    compacted = await impl.compact_openai_response(CompactResponseRequest(model=MODEL, previous_response_id=second.id))
    window = [item.model_dump(mode="json") for item in compacted.output]
    response, _ = await create(impl, input=[*window, {"role": "user", "content": "q2"}], stream=stream)
    assert text_of(response) == "fresh answer"
    assert sent(script.requests[-1]) == [("user", "q0"), ("user", "q1"), ("assistant", PREFIXED), ("user", "q2")]
    # The compaction item is stored with the response and comes back in the next turn of its chain.
    script.turns.append("next")
    await create(impl, input="q3", previous_response_id=response.id, stream=stream)
    assert sent(script.requests[-1])[2:] == [
        ("assistant", PREFIXED),
        ("user", "q2"),
        ("assistant", "fresh answer"),
        ("user", "q3"),
    ]


async def test_the_compaction_id_continues_a_chain(impl: Any, script: Script, stream: bool) -> None:
    script.turns += ["a0", SUMMARY, "after"]
    first, _ = await create(impl, input="q0")
    compacted = await impl.compact_openai_response(CompactResponseRequest(model=MODEL, previous_response_id=first.id))
    response, _ = await create(impl, input="q1", previous_response_id=compacted.id, stream=stream)
    assert text_of(response) == "after"
    assert sent(script.requests[-1]) == [("user", "q0"), ("assistant", PREFIXED), ("user", "q1")]


# ---------------------------------------------------------------------------------------------------------------
# context_management


async def test_context_management_compacts_past_the_threshold(
    impl: Any, script: Script, stream: bool, db_path: str
) -> None:
    script.turns += ["a0 " * 20, SUMMARY, "compacted answer"]
    first, _ = await create(impl, input="q0 " * 40)
    assert first.usage.total_tokens == 11  # the scripted usage
    # The previous response's total tokens (11) decide: past a threshold of 10, the history is compacted first.
    response, events = await create(
        impl,
        input="q1",
        previous_response_id=first.id,
        context_management=[{"type": "compaction", "compact_threshold": 10}],
        stream=stream,
    )
    assert response.status == "completed" and text_of(response) == "compacted answer"
    assert response.previous_response_id == first.id
    summarize, answer = script.requests[1:]
    assert summarize.stream is False and sent(summarize)[-1] == ("user", DEFAULT_SUMMARIZATION_PROMPT)
    # The model got the compacted window, not the old answer.
    assert sent(answer) == [("user", "q0 " * 40), ("user", "q1"), ("assistant", PREFIXED)]
    # Stored whole (not incremental: the chain was rewritten), so the next turn continues from the window.
    row = stored_row(db_path, response.id)
    assert row.get("input_storage_mode") != "incremental"
    assert [i["type"] for i in row["input"]] == ["message", "message", "compaction"]
    script.turns.append("then")
    await create(impl, input="q2", previous_response_id=response.id, stream=stream)
    assert sent(script.requests[-1]) == [
        ("user", "q0 " * 40),
        ("user", "q1"),
        ("assistant", PREFIXED),
        ("assistant", "compacted answer"),
        ("user", "q2"),
    ]
    # The compaction itself was stored too (the builtin's compact_openai_response stores its record).
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (4,)


async def test_context_management_below_the_threshold_changes_nothing(impl: Any, script: Script, db_path: str) -> None:
    script.turns += ["a0", "a1"]
    first, _ = await create(impl, input="q0")
    response, _ = await create(
        impl,
        input="q1",
        previous_response_id=first.id,
        context_management=[{"type": "compaction", "compact_threshold": 11}],  # 11 is not past 11
    )
    assert len(script.requests) == 2
    assert sent(script.requests[-1]) == [("user", "q0"), ("assistant", "a0"), ("user", "q1")]
    assert stored_row(db_path, response.id)["input_storage_mode"] == "incremental"
    # No threshold in the request nor the config: the entry is skipped.
    script.turns.append("a2")
    await create(impl, input="q2", previous_response_id=response.id, context_management=[{"type": "compaction"}])
    assert len(script.requests) == 3


async def test_context_management_counts_tokens_without_a_previous_response(impl: Any, script: Script) -> None:
    """No previous usage: the input's tokens are counted (the model name maps to cl100k_base as the builtin maps
    `llama*`), against the configured default threshold."""
    import tiktoken

    text = "The quick brown fox jumps over the lazy dog. " * 4
    tokens = len(tiktoken.get_encoding("cl100k_base").encode(text))
    with_config(impl, default_compact_threshold=tokens)
    script.turns.append("not compacted")
    await create(impl, model="llama-3-8b", input=text, context_management=[{"type": "compaction"}])
    assert len(script.requests) == 1  # exactly at the threshold: kept
    with_config(impl, default_compact_threshold=tokens - 1)
    script.turns += [SUMMARY, "compacted"]
    response, _ = await create(impl, model="llama-3-8b", input=text, context_management=[{"type": "compaction"}])
    assert text_of(response) == "compacted"
    assert sent(script.requests[-1]) == [("user", text), ("assistant", PREFIXED)]


def test_token_counting_follows_the_builtins_encoding_choice() -> None:
    import tiktoken

    cl100k = tiktoken.get_encoding("cl100k_base")
    items = [
        {"role": "user", "content": "hello there"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "c", "output": "sunny"},
        {"type": "compaction", "encrypted_content": "an older summary"},
    ]
    expected = sum(len(cl100k.encode(s)) for s in ["hello there", '{"city": "Paris"}', "sunny", "an older summary"])
    assert _compaction.count_tokens(None, items, "ollama/llama3.2:3b") == expected  # the `llama` prefix mapping
    configured = type("Config", (), {"compaction_config": CompactionConfig(tokenizer_encoding="cl100k_base")})()
    assert _compaction.count_tokens(configured, items, "anything") == expected
    # No tokenizer for the name: characters / 4.
    chars = len("hello there") + len('{"city": "Paris"}') + len("sunny") + len("an older summary")
    assert _compaction.count_tokens(None, items, "scripted-model") == chars // 4
    assert _compaction.count_tokens(None, "x" * 40, "scripted-model") == 10


# ---------------------------------------------------------------------------------------------------------------
# Truncation: an inference call refused for a too long context


async def test_a_too_long_context_is_retried_without_the_oldest_turn(impl: Any, script: Script, stream: bool) -> None:
    script.turns += ["a0", "a1"]
    first, _ = await create(impl, input="q0")
    second, _ = await create(impl, input="q1", previous_response_id=first.id)
    script.turns += [context_length_error(), "short answer"]
    response, events = await create(
        impl, input="q2", previous_response_id=second.id, instructions="Be brief.", truncation="auto", stream=stream
    )
    assert response.status == "completed" and text_of(response) == "short answer"
    assert response.truncation == "auto"
    refused, retried = script.requests[-2:]
    assert sent(refused) == [
        ("system", "Be brief."),
        ("user", "q0"),
        ("assistant", "a0"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
    ]
    assert sent(retried) == [("system", "Be brief."), ("user", "q1"), ("assistant", "a1"), ("user", "q2")]
    if stream:
        assert [e.type for e in events].count("response.created") == 1


async def test_truncation_disabled_is_retried_too_as_the_builtin_does(impl: Any, script: Script) -> None:
    script.turns += ["a0", context_length_error("Input length exceeds the maximum"), "ok"]
    first, _ = await create(impl, input="q0")
    response, _ = await create(impl, input="q1", previous_response_id=first.id, truncation="disabled")
    assert response.status == "completed" and response.truncation == "disabled"
    assert sent(script.requests[-1]) == [("user", "q1")]


async def test_nothing_left_to_drop_fails_with_context_length_exceeded(
    impl: Any, script: Script, stream: bool, db_path: str
) -> None:
    script.turns += ["a0", context_length_error(), context_length_error()]
    first, _ = await create(impl, input="q0")
    request = CreateResponseRequest(input="q1", model=MODEL, previous_response_id=first.id, stream=stream)
    if stream:
        response, events = await collect(await impl.create_openai_response(request))
        assert events[-1].type == "response.failed"
        assert response.error.code == "context_length_exceeded"
        assert "could not be reduced further by truncation" in response.error.message
    else:
        # The builtin raises a failed response's message (HTTP 500).
        with pytest.raises(InternalServerError, match="could not be reduced further by truncation"):
            await impl.create_openai_response(request)
    assert [sent(p)[-1] for p in script.requests[1:]] == [("user", "q1"), ("user", "q1")]
    assert sent(script.requests[-1]) == [("user", "q1")]
    with sqlite3.connect(db_path) as db:  # nothing half-written is stored
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (1,)


async def test_other_inference_errors_are_not_truncation(impl: Any, script: Script, stream: bool) -> None:
    response = httpx2.Response(400, request=httpx2.Request("POST", "http://upstream/v1/chat/completions"))
    other = openai.BadRequestError("bad thing", response=response, body={"message": "bad thing", "code": "invalid"})
    script.turns.append(other)
    request = CreateResponseRequest(input="q", model=MODEL, stream=stream)
    if stream:
        final, _ = await collect(await impl.create_openai_response(request))
        assert final.status == "failed" and final.error.code == "server_error"
    else:
        with pytest.raises(openai.BadRequestError):
            await impl.create_openai_response(request)
    assert len(script.requests) == 1


def test_ogx_compacted_class_keeps_openai_usage() -> None:
    assert issubclass(CompactedResponse, ogx_responses.OpenAICompactedResponse)
