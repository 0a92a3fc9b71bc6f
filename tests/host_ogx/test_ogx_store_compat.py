"""Two-way store compatibility with OGX's own `inline::builtin` provider, on one sqlite file: a chain whose
turns alternate between the builtin's implementation and responses-rs, each reading (and continuing) what
the other wrote, and each listing and retrieving the other's responses."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

from ogx.core.storage.datatypes import SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import (
    Api,
    CreateResponseRequest,
    DeleteResponseRequest,
    ListResponseInputItemsRequest,
    ListResponsesRequest,
    RetrieveResponseRequest,
)
from ogx_helpers import MODEL, Script, collect

from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl


def history(params: Any) -> list[tuple[str, str]]:
    out = []
    for message in params.messages:
        content = message.content
        out.append((message.role, content if isinstance(content, str) else "".join(p.text for p in content)))
    return out


def text_of(response: Any) -> str:
    return "".join(part.text for item in response.output if item.type == "message" for part in item.content)


async def both(tmp_path: Any, inference: AsyncMock) -> tuple[Any, Any]:
    register_sqlstore_backends({"sql_default": SqliteSqlStoreConfig(db_path=str(tmp_path / "sql_store.db"))})
    config = BuiltinResponsesImplConfig(
        persistence={"responses": {"table_name": "responses", "backend": "sql_default"}}
    )
    deps = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    deps[Api.inference] = inference
    builtin = await builtin_provider_impl(config, deps, [])
    ours = await our_provider_impl(config, deps, [])
    return builtin, ours


async def test_alternating_chain(tmp_path: Any, inference: AsyncMock, script: Script, stream: bool) -> None:
    builtin, ours = await both(tmp_path, inference)
    impls = [builtin, ours, builtin, ours]
    previous = None
    responses = []
    for i, impl in enumerate(impls):
        script.turns.append(f"a{i}")
        request = CreateResponseRequest(input=f"q{i}", model=MODEL, previous_response_id=previous, stream=stream)
        result = await impl.create_openai_response(request)
        if impl is builtin and stream:  # the builtin's events are OGX's; only ours go through the validator
            events = [e async for e in result]
            response = events[-1].response
        else:
            response, _ = await collect(result)
        assert response.status == "completed" and text_of(response) == f"a{i}"
        responses.append(response)
        previous = response.id
        expected = [(role, f"{kind}{j}") for j in range(i) for role, kind in (("user", "q"), ("assistant", "a"))]
        assert history(script.requests[-1]) == [*expected, ("user", f"q{i}")], type(impl).__name__

    ids = [r.id for r in responses]
    for reader in (builtin, ours):
        # each retrieves every response, whoever wrote it
        for response in responses:
            got = await reader.get_openai_response(RetrieveResponseRequest(response_id=response.id))
            assert got.id == response.id and text_of(got) == text_of(response)
            assert got.previous_response_id == response.previous_response_id
        # ... lists them all
        listed = await reader.list_openai_responses(ListResponsesRequest(limit=10))
        assert {r.id for r in listed.data} == set(ids)
        # ... and lists the whole chain's input of the last one, oldest first
        items = await reader.list_openai_response_input_items(
            ListResponseInputItemsRequest(response_id=ids[-1], order="asc")
        )
        texts = [item.content if isinstance(item.content, str) else item.content[0].text for item in items.data]
        assert texts == ["q0", "a0", "q1", "a1", "q2", "a2", "q3"]


async def test_delete_keeps_the_other_providers_children(tmp_path: Any, inference: AsyncMock, script: Script) -> None:
    """Deleting a response the other provider chained on materializes the child (OGX's store does it)."""
    builtin, ours = await both(tmp_path, inference)
    script.turns += ["a0", "a1", "a2"]
    first = await ours.create_openai_response(CreateResponseRequest(input="q0", model=MODEL))
    second = await builtin.create_openai_response(
        CreateResponseRequest(input="q1", model=MODEL, previous_response_id=first.id)
    )
    await ours.delete_openai_response(DeleteResponseRequest(response_id=first.id))
    third = await ours.create_openai_response(
        CreateResponseRequest(input="q2", model=MODEL, previous_response_id=second.id)
    )
    assert text_of(third) == "a2"
    assert history(script.requests[-1]) == [
        ("user", "q0"),
        ("assistant", "a0"),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
    ]
