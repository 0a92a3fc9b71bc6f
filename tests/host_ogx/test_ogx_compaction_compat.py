"""Compaction and truncation side by side with OGX's own `inline::builtin`, on one sqlite file: the same requests
make the same inference calls and the same compacted windows, and each provider continues from the compactions
(and the compacted responses) the other stored."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

import pytest
from ogx.core.storage.datatypes import SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import Api, CompactResponseRequest, CreateResponseRequest, RetrieveResponseRequest
from ogx_helpers import MODEL, Script, _chunks
from test_ogx_compaction import PREFIXED, SUMMARY, completion, context_length_error, item_texts, sent

from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl


@pytest.fixture
def inference(script: Script) -> AsyncMock:
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


async def both(tmp_path: Any, inference: AsyncMock) -> tuple[Any, Any]:
    register_sqlstore_backends({"sql_default": SqliteSqlStoreConfig(db_path=str(tmp_path / "sql_store.db"))})
    config = BuiltinResponsesImplConfig(
        persistence={"responses": {"table_name": "responses", "backend": "sql_default"}}
    )
    deps = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    deps[Api.inference] = inference
    return await builtin_provider_impl(config, deps, []), await our_provider_impl(config, deps, [])


async def create(impl: Any, **fields: Any) -> Any:
    """Not streamed: both providers return the response object."""
    return await impl.create_openai_response(CreateResponseRequest(model=MODEL, **fields))


def text_of(response: Any) -> str:
    return "".join(part.text for item in response.output if item.type == "message" for part in item.content)


async def test_the_same_compaction(tmp_path: Any, inference: AsyncMock, script: Script) -> None:
    builtin, ours = await both(tmp_path, inference)
    history = [
        {"role": "user", "content": "q0"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a0"}]},
        {"type": "compaction", "id": "cmp_old", "encrypted_content": "older summary"},
        {"role": "user", "content": [{"type": "input_text", "text": "q1"}]},
    ]
    results = []
    for impl in (builtin, ours):
        script.turns.append(SUMMARY)
        request = CompactResponseRequest(model=MODEL, input=history, instructions="Mind the dates.")
        results.append(await impl.compact_openai_response(request))
    (theirs, mine), (their_call, my_call) = results, script.requests
    assert sent(my_call) == sent(their_call)
    assert (my_call.stream, my_call.model) == (their_call.stream, their_call.model) == (False, MODEL)
    window = [("user", "q0"), ("user", "q1"), ("compaction", PREFIXED)]
    assert item_texts(mine.output) == item_texts(theirs.output) == window
    assert mine.usage.total_tokens == theirs.usage.total_tokens == 35
    # Each reads the other's compaction record.
    for reader, compacted in ((builtin, mine), (ours, theirs)):
        stored = await reader.get_openai_response(RetrieveResponseRequest(response_id=compacted.id))
        assert stored.status == "completed" and stored.output == []


async def test_each_continues_from_the_others_compaction(tmp_path: Any, inference: AsyncMock, script: Script) -> None:
    builtin, ours = await both(tmp_path, inference)
    for writer, reader in ((ours, builtin), (builtin, ours)):
        script.turns += ["a0", SUMMARY, "after"]
        first = await create(writer, input="q0")
        compacted = await writer.compact_openai_response(
            CompactResponseRequest(model=MODEL, previous_response_id=first.id)
        )
        response = await create(reader, input="q1", previous_response_id=compacted.id)
        assert text_of(response) == "after"
        assert sent(script.requests[-1]) == [("user", "q0"), ("assistant", PREFIXED), ("user", "q1")], type(reader)


async def test_compaction_items_given_as_input_continue_on_the_other(
    tmp_path: Any, inference: AsyncMock, script: Script
) -> None:
    builtin, ours = await both(tmp_path, inference)
    window = [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "q0"}]},
        {"type": "compaction", "id": "cmp_1", "encrypted_content": PREFIXED},
    ]
    for writer, reader in ((ours, builtin), (builtin, ours)):
        script.turns += ["a1", "a2"]
        first = await create(writer, input=[*window, {"role": "user", "content": "q1"}])
        second = await create(reader, input="q2", previous_response_id=first.id)
        assert text_of(second) == "a2"
        expected = [("user", "q0"), ("assistant", PREFIXED), ("user", "q1"), ("assistant", "a1"), ("user", "q2")]
        assert sent(script.requests[-2])[:3] == expected[:3]
        assert sent(script.requests[-1]) == expected, type(reader)


async def test_the_same_automatic_compaction(tmp_path: Any, inference: AsyncMock, script: Script) -> None:
    """`context_management` past the threshold: the same two calls on both, and each continues the other's
    compacted response (stored whole)."""
    builtin, ours = await both(tmp_path, inference)
    answers = []
    for impl, other in ((builtin, ours), (ours, builtin)):
        script.turns += ["a0", SUMMARY, "compacted", "then"]
        first = await create(impl, input="q0")
        before = len(script.requests)
        response = await create(
            impl,
            input="q1",
            previous_response_id=first.id,
            context_management=[{"type": "compaction", "compact_threshold": 5}],
        )
        assert text_of(response) == "compacted" and response.previous_response_id == first.id
        answers.append([sent(p) for p in script.requests[before:]])
        then = await create(other, input="q2", previous_response_id=response.id)
        assert text_of(then) == "then"
        assert sent(script.requests[-1]) == [
            ("user", "q0"),
            ("user", "q1"),
            ("assistant", PREFIXED),
            ("assistant", "compacted"),
            ("user", "q2"),
        ], type(other)
    theirs, mine = answers
    assert mine == theirs
    assert mine[1] == [("user", "q0"), ("user", "q1"), ("assistant", PREFIXED)]


async def test_the_same_truncation(tmp_path: Any, inference: AsyncMock, script: Script) -> None:
    builtin, ours = await both(tmp_path, inference)
    retried = []
    for impl in (builtin, ours):
        script.turns += ["a0", "a1", context_length_error(), "short"]
        first = await create(impl, input="q0")
        second = await create(impl, input="q1", previous_response_id=first.id)
        third = await create(impl, input="q2", previous_response_id=second.id, instructions="sys")
        assert third.status == "completed" and text_of(third) == "short"
        retried.append(sent(script.requests[-1]))
    assert retried[0] == retried[1] == [("system", "sys"), ("user", "q1"), ("assistant", "a1"), ("user", "q2")]
