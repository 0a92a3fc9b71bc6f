"""OGX's Responses memory (alpha in OGX 1.5), the read half: responses-rs against OGX's own `inline::builtin`
responses provider, both built by their `get_provider_impl` from one config (`memory_config` on) on one sqlite
responses store, the memory vector store an `AsyncMock` search backend. What the model is sent and what the
vector store is asked, compared with the builtin for the same requests."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

import pytest
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import (
    Api,
    CreateResponseRequest,
    ToolDef,
    ToolInvocationResult,
    VectorStoreContent,
    VectorStoreNotFoundError,
    VectorStoreSearchResponse,
    VectorStoreSearchResponsePage,
)
from ogx_helpers import MODEL, Script, ToolCall, collect

from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl

MEMORY = "Alice drinks tea, never coffee."


def search_backend(*texts: str) -> AsyncMock:
    """The vector_io API: every search answers these memory files."""
    results = [
        VectorStoreSearchResponse(
            file_id=f"file-{i}",
            filename=f"memory-{i}.md",
            score=1.0 - i / 10,
            attributes={"memory": True, "owner_id": "alice", "created_at": f"2026-01-0{i + 1}"},
            content=[VectorStoreContent(type="text", text=text)],
        )
        for i, text in enumerate(texts)
    ]
    api = AsyncMock()
    api.openai_search_vector_store.return_value = VectorStoreSearchResponsePage(
        search_query=["q"], data=results, has_more=False
    )
    return api


async def providers(
    db_path: str, inference: AsyncMock, vector_io: AsyncMock, memory: dict[str, Any] | None, **deps: Any
) -> tuple[Any, Any]:
    from ogx_helpers import make_store

    await make_store(db_path)  # registers the sql_default backend both stores use
    fields: dict[str, Any] = {"persistence": {"responses": {"table_name": "responses", "backend": "sql_default"}}}
    if memory is not None:
        fields["memory_config"] = memory
    config = BuiltinResponsesImplConfig(**fields)
    all_deps: dict[Api, Any] = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    all_deps[Api.inference] = inference
    all_deps[Api.vector_io] = vector_io
    all_deps.update({Api[name]: dep for name, dep in deps.items()})
    return await builtin_provider_impl(config, all_deps, []), await our_provider_impl(config, all_deps, [])


async def run(impl: Any, ours: Any, **fields: Any) -> Any:
    result = await impl.create_openai_response(CreateResponseRequest(model=MODEL, **fields))
    if impl is not ours and fields.get("stream"):
        return [e async for e in result][-1].response
    response, _ = await collect(result)
    return response


def chat(params: Any) -> list[tuple[str, str]]:
    out = []
    for message in params.messages:
        content = message.content or ""
        out.append((message.role, content if isinstance(content, str) else "".join(p.text for p in content)))
    return out


def searches(vector_io: AsyncMock) -> list[tuple[str, dict[str, Any]]]:
    return [
        (call.kwargs["vector_store_id"], call.kwargs["request"].model_dump())
        for call in vector_io.openai_search_vector_store.call_args_list
    ]


ON = {"enabled": True, "default_vector_store_id": "vs_memory"}


async def test_memory_context_reaches_the_model_as_the_builtin_sends_it(
    db_path: str, inference: AsyncMock, script: Script, stream: bool
) -> None:
    vector_io = search_backend(MEMORY, "Alice lives in Lyon.")
    builtin, ours = await providers(db_path, inference, vector_io, ON)
    sent = {}
    for impl in (builtin, ours):
        script.turns.append("Tea it is.")
        response = await run(
            impl,
            ours,
            input="What should I drink?",
            instructions="Be brief.",
            metadata={"owner_id": "alice"},
            stream=stream,
        )
        assert response.status == "completed"
        sent[impl is ours] = chat(script.requests[-1])
    assert sent[True] == sent[False]
    (instructions, memory, user) = sent[True]
    assert instructions == ("system", "Be brief.") and user == ("user", "What should I drink?")
    assert memory[0] == "system" and "<memories>" in memory[1] and MEMORY in memory[1] and "Lyon" in memory[1]
    # The vector store was asked the same thing by both: the user's text, the owner's memory files only.
    theirs, mine = searches(vector_io)
    assert mine == theirs
    store_id, request = mine
    assert store_id == "vs_memory" and request["query"] == "What should I drink?"
    assert {"type": "eq", "key": "owner_id", "value": "alice"} in request["filters"]["filters"]


async def test_chained_with_instructions_and_a_tool_loop(db_path: str, inference: AsyncMock, script: Script) -> None:
    """After the leading system messages, in both inference calls of a web_search turn, on a chain."""
    tool_groups = AsyncMock()
    tool_groups.get_tool.return_value = ToolDef(
        name="web_search",
        description="Search the web",
        input_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    )
    tool_runtime = AsyncMock()
    tool_runtime.invoke_tool.return_value = ToolInvocationResult(content="tea is good")
    vector_io = search_backend(MEMORY)
    builtin, ours = await providers(
        db_path, inference, vector_io, ON, tool_groups=tool_groups, tool_runtime=tool_runtime
    )
    calls = {}
    for impl in (builtin, ours):
        script.turns.append("Hello.")
        first = await run(impl, ours, input="Hi", metadata={"owner_id": "alice"})
        script.turns += [[ToolCall("web_search", {"query": "tea"})], "Tea."]
        await run(
            impl,
            ours,
            input="Tea?",
            instructions="Be brief.",
            previous_response_id=first.id,
            safety_identifier="alice",
            tools=[{"type": "web_search"}],
        )
        calls[impl is ours] = [chat(params) for params in script.requests[-2:]]
    for call in (*calls[True], *calls[False]):
        assert [role for role, _ in call[:3]] == ["system", "system", "user"]
        assert call[0] == ("system", "Be brief.") and MEMORY in call[1][1]
        assert call[2:4] == [("user", "Hi"), ("assistant", "Hello.")]
    assert [c[:5] for c in calls[True]] == [c[:5] for c in calls[False]]


@pytest.mark.parametrize(
    "fields",
    [
        {"memory": {"enabled": False}, "metadata": {"owner_id": "alice"}},  # off for this request
        {},  # no owner: no metadata owner, no safety_identifier, no authenticated user
    ],
    ids=["disabled-by-request", "no-owner"],
)
async def test_no_recall(db_path: str, inference: AsyncMock, script: Script, fields: dict[str, Any]) -> None:
    vector_io = search_backend(MEMORY)
    builtin, ours = await providers(db_path, inference, vector_io, ON)
    for impl in (builtin, ours):
        script.turns.append("ok")
        await run(impl, ours, input="hi", **fields)
        assert chat(script.requests[-1]) == [("user", "hi")]
    assert vector_io.openai_search_vector_store.call_count == 0


async def test_request_owner_and_store_override(db_path: str, inference: AsyncMock, script: Script) -> None:
    vector_io = search_backend(MEMORY)
    builtin, ours = await providers(db_path, inference, vector_io, ON)
    memory = {"owner_id": "bob", "vector_store_id": "vs_bob", "max_num_results": 2}
    for impl in (builtin, ours):
        script.turns.append("ok")
        await run(impl, ours, input="hi", memory=memory)
    assert chat(script.requests[0]) == chat(script.requests[1])
    theirs, mine = searches(vector_io)
    assert mine == theirs and mine[0] == "vs_bob" and mine[1]["max_num_results"] == 2
    assert {"type": "eq", "key": "owner_id", "value": "bob"} in mine[1]["filters"]["filters"]


async def test_a_missing_memory_store_means_nothing_to_recall(
    db_path: str, inference: AsyncMock, script: Script
) -> None:
    vector_io = search_backend(MEMORY)
    vector_io.openai_search_vector_store.side_effect = VectorStoreNotFoundError("vs_memory")
    builtin, ours = await providers(db_path, inference, vector_io, ON)
    for impl in (builtin, ours):
        script.turns.append("ok")
        response = await run(impl, ours, input="hi", metadata={"owner_id": "alice"})
        assert response.status == "completed" and chat(script.requests[-1]) == [("user", "hi")]


async def test_memory_off_in_the_config_accepts_the_field(db_path: str, inference: AsyncMock, script: Script) -> None:
    """OGX's default (memory_config.enabled false): `memory` is accepted and changes nothing, as in the builtin."""
    vector_io = search_backend(MEMORY)
    builtin, ours = await providers(db_path, inference, vector_io, None)
    for impl in (builtin, ours):
        script.turns.append("ok")
        response = await run(impl, ours, input="hi", memory={"owner_id": "alice"})
        assert response.status == "completed" and chat(script.requests[-1]) == [("user", "hi")]
    assert vector_io.openai_search_vector_store.call_count == 0


async def test_after_the_instructions_and_the_skills(db_path: str, inference: AsyncMock, script: Script) -> None:
    """Instructions, then the skills' message, then the memory context, then the conversation (an `AsyncMock`
    stands for the skills service here; tests/host_ogx/test_ogx_skills.py runs OGX's own)."""
    from fastapi import Response
    from ogx_api.skills import Skill
    from test_ogx_skills import bundle

    skills_api = AsyncMock()
    skills_api.get_skill.return_value = Skill(
        id="skill-1", created_at=0, default_version="1", latest_version="1", name="tea", description="Tea facts."
    )
    skills_api.get_skill_version_content.return_value = Response(content=bundle("tea", "Tea facts.", "Steep 3 min."))
    vector_io = search_backend(MEMORY)
    builtin, ours = await providers(db_path, inference, vector_io, ON, skills=skills_api)
    for impl in (builtin, ours):
        script.turns.append("ok")
        await run(impl, ours, input="hi", instructions="Be brief.", skills=["skill-1"], metadata={"owner_id": "alice"})
    theirs, mine = chat(script.requests[0]), chat(script.requests[1])
    assert mine == theirs
    assert [role for role, _ in mine] == ["system", "system", "system", "user"]
    assert mine[0][1] == "Be brief." and mine[1][1].startswith("## Skill: tea\nTea facts.")
    assert MEMORY in mine[2][1] and mine[3] == ("user", "hi")
