"""OGX's Responses memory (alpha in OGX 1.5), the read half: responses-rs against OGX's own `inline::builtin`
responses provider, both built by their `get_provider_impl` from one config (`memory_config` on) on one sqlite
responses store, the memory vector store an `AsyncMock` search backend. What the model is sent and what the
vector store is asked, compared with the builtin for the same requests."""

from __future__ import annotations

import asyncio
import re
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock

import pytest
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import (
    Api,
    CreateConversationRequest,
    CreateResponseRequest,
    OpenAIChatCompletion,
    OpenAIChatCompletionResponseMessage,
    OpenAIChoice,
    RetrieveResponseRequest,
    ToolDef,
    ToolInvocationResult,
    VectorStoreContent,
    VectorStoreNotFoundError,
    VectorStoreSearchResponse,
    VectorStoreSearchResponsePage,
)
from ogx_helpers import MODEL, Script, ToolCall, collect
from test_ogx_conversations import conversations  # noqa: F401  (OGX's conversations service, a fixture)

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


# ------------------------------------------------------------------------------------------------
# The write half: after a stored, completed `conversation` turn, a debounced task runs OGX's own
# `write_conversation_memory` (the summary by the model, the Markdown file uploaded to the files API and
# attached to the memory vector store, the store's memory record). OGX's real conversations service and
# sqlite responses store; the files API and the vector store are `AsyncMock`s (the outside world: an
# embedding model and a file backend).

SUMMARY_PROMPT = "Create a concise long-term memory summary"
WRITE = {**ON, "write_enabled": True, "write_debounce_seconds": 0}


class Backends:
    """The memory's outside world: what was summarised, uploaded and attached."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.summaries: list[list[tuple[str, str]]] = []  # the summarisation calls' messages
        self.uploads: list[str] = []  # the Markdown files' text
        self.files = AsyncMock()
        self.files.openai_upload_file.side_effect = self._upload
        self.vector_io = search_backend(MEMORY)
        self.vector_io.openai_attach_file_to_vector_store.return_value = SimpleNamespace(status="completed")

    async def _upload(self, request: Any, file: Any) -> Any:
        self.uploads.append(file.file.getvalue().decode())
        return SimpleNamespace(id=f"file-memory-{len(self.uploads)}")

    def inference(self, inner: AsyncMock) -> AsyncMock:
        """The script's model, and a non-streamed answer numbered per call for the summarisation calls."""

        async def openai_chat_completion(params: Any) -> Any:
            last = params.messages[-1]
            if not params.stream and isinstance(last.content, str) and last.content.startswith(SUMMARY_PROMPT):
                self.summaries.append(chat(params)[:-1])
                text = f"Summary {len(self.summaries)}: Alice likes tea."
                return OpenAIChatCompletion(
                    id="chatcmpl-s",
                    created=0,
                    model=params.model,
                    choices=[
                        OpenAIChoice(
                            index=0,
                            finish_reason="stop",
                            message=OpenAIChatCompletionResponseMessage(role="assistant", content=text),
                        )
                    ],
                )
            return await inner.openai_chat_completion(params)

        api = AsyncMock()
        api.openai_chat_completion.side_effect = openai_chat_completion
        return api

    def attached(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (call.kwargs["vector_store_id"], call.kwargs["request"].attributes)
            for call in self.vector_io.openai_attach_file_to_vector_store.call_args_list
        ]


async def writers(
    store: Any,
    conversations: Any,  # noqa: F811
    backends: Backends,
    inference: AsyncMock,
    memory: dict[str, Any],
) -> tuple[Any, Any]:
    config = BuiltinResponsesImplConfig(
        persistence={"responses": {"table_name": "responses", "backend": "sql_default"}}, memory_config=memory
    )
    deps: dict[Api, Any] = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    deps.update(
        {
            Api.inference: backends.inference(inference),
            Api.vector_io: backends.vector_io,
            Api.files: backends.files,
            Api.conversations: conversations,
        }
    )
    return await builtin_provider_impl(config, deps, []), await our_provider_impl(config, deps, [])


def write_tasks(impl: Any) -> dict[Any, asyncio.Task[Any]]:
    builtin = getattr(impl, "openai_responses_impl", None)
    return builtin._memory_write_tasks if builtin is not None else impl._memory_writes.tasks


async def settle(impl: Any) -> None:
    """Until the provider's scheduled memory writes are done."""
    for _ in range(500):
        tasks = write_tasks(impl)
        if not tasks:
            return
        await asyncio.gather(*tasks.values(), return_exceptions=True)
    raise AssertionError("memory writes never settled")


def markdown(text: str, conversation_id: str, response_id: str) -> str:
    text = text.replace(conversation_id, "CONV").replace(response_id, "RESP")
    return re.sub(r"\b1\d{9}\b", "TIME", text)  # the file's created_at


async def test_a_conversation_turn_writes_memory_as_the_builtin_does(
    store: Any,
    conversations: Any,  # noqa: F811
    inference: AsyncMock,
    script: Script,
    stream: bool,
) -> None:
    backends = Backends(script)
    builtin, ours = await writers(store, conversations, backends, inference, WRITE)
    written = {}
    for impl in (builtin, ours):
        conv = await conversations.create_conversation(CreateConversationRequest())
        script.turns.append("Tea it is.")
        response = await run(
            impl,
            ours,
            input="What should I drink?",
            conversation=conv.id,
            metadata={"owner_id": "alice"},
            stream=stream,
        )
        assert response.status == "completed"
        await settle(impl)
        record = await store.get_memory_record(owner_id="alice", conversation_id=conv.id, vector_store_id="vs_memory")
        assert record is not None and record.response_id == response.id
        (vector_store_id, attributes), *_ = backends.attached()[-1:]
        assert record.file_id == f"file-memory-{len(backends.uploads)}"
        assert attributes["conversation_id"] == conv.id and attributes["response_id"] == response.id
        written[impl is ours] = (
            backends.summaries[-1],
            vector_store_id,
            {k: v for k, v in attributes.items() if k not in ("conversation_id", "response_id", "created_at")},
            markdown(backends.uploads[-1], conv.id, response.id).replace("Summary 2", "Summary 1"),
        )
    assert len(backends.uploads) == 2  # one write each
    assert written[True] == written[False]
    summary, vector_store_id, attributes, text = written[True]
    assert summary == [("user", "What should I drink?"), ("assistant", "Tea it is.")]
    assert vector_store_id == "vs_memory" and attributes == {"memory": True, "owner_id": "alice"}
    assert "Summary 1: Alice likes tea." in text and "What should I drink?" in text


async def test_two_quick_turns_make_one_write(
    store: Any,
    conversations: Any,  # noqa: F811
    inference: AsyncMock,
    script: Script,
) -> None:
    """Debounced per (owner, conversation, vector store): the second turn's write replaces the first's, still
    waiting; it summarises both turns. The builtin does the same."""
    backends = Backends(script)
    builtin, ours = await writers(store, conversations, backends, inference, {**WRITE, "write_debounce_seconds": 0.3})
    for impl in (builtin, ours):
        conv = await conversations.create_conversation(CreateConversationRequest())
        script.turns += ["Hello.", "Tea."]
        await run(impl, ours, input="Hi", conversation=conv.id, safety_identifier="alice")
        second = await run(impl, ours, input="Tea?", conversation=conv.id, safety_identifier="alice")
        assert len(write_tasks(impl)) == 1
        await settle(impl)
        record = await store.get_memory_record(owner_id="alice", conversation_id=conv.id, vector_store_id="vs_memory")
        assert record is not None and record.response_id == second.id
    assert len(backends.summaries) == 2 and backends.summaries[0] == backends.summaries[1]
    assert backends.summaries[1] == [("user", "Hi"), ("assistant", "Hello."), ("user", "Tea?"), ("assistant", "Tea.")]


@pytest.mark.parametrize(
    ("config", "fields"),
    [
        (WRITE, {"memory": {"enabled": False}, "metadata": {"owner_id": "alice"}}),  # off for this request
        (WRITE, {}),  # no owner
        (
            {**WRITE, "default_vector_store_id": None, "auto_create_default_vector_store": False},
            {"metadata": {"owner_id": "alice"}},
        ),
        ({**WRITE, "write_enabled": False}, {"metadata": {"owner_id": "alice"}}),
        (WRITE, {"metadata": {"owner_id": "alice"}, "store": False}),  # not stored
    ],
    ids=["disabled-by-request", "no-owner", "no-vector-store", "writes-off", "not-stored"],
)
async def test_no_write(
    store: Any,
    conversations: Any,  # noqa: F811
    inference: AsyncMock,
    script: Script,
    config: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    backends = Backends(script)
    builtin, ours = await writers(store, conversations, backends, inference, config)
    for impl in (builtin, ours):
        conv = await conversations.create_conversation(CreateConversationRequest())
        script.turns.append("ok")
        response = await run(impl, ours, input="hi", conversation=conv.id, **fields)
        assert response.status == "completed"
        assert not write_tasks(impl)
        await asyncio.sleep(0)
    assert backends.summaries == [] and backends.uploads == []


async def test_shutdown_cancels_a_waiting_write(
    store: Any,
    conversations: Any,  # noqa: F811
    inference: AsyncMock,
    script: Script,
) -> None:
    backends = Backends(script)
    builtin, ours = await writers(store, conversations, backends, inference, {**WRITE, "write_debounce_seconds": 30})
    for impl in (builtin, ours):
        conv = await conversations.create_conversation(CreateConversationRequest())
        script.turns.append("ok")
        await run(impl, ours, input="hi", conversation=conv.id, metadata={"owner_id": "alice"})
        (task,) = write_tasks(impl).values()
        await asyncio.sleep(0.05)  # the task is in its debounce wait
        assert not task.done()
        await impl.shutdown()
        assert task.cancelled() and not write_tasks(impl)
    assert backends.summaries == [] and backends.uploads == []


async def test_a_failing_write_leaves_the_turn_alone(
    store: Any,
    conversations: Any,  # noqa: F811
    inference: AsyncMock,
    script: Script,
) -> None:
    backends = Backends(script)
    backends.files.openai_upload_file.side_effect = RuntimeError("files backend down")
    builtin, ours = await writers(store, conversations, backends, inference, WRITE)
    for impl in (builtin, ours):
        conv = await conversations.create_conversation(CreateConversationRequest())
        script.turns.append("ok")
        response = await run(impl, ours, input="hi", conversation=conv.id, metadata={"owner_id": "alice"})
        await settle(impl)
        assert response.status == "completed"
        assert (
            await store.get_memory_record(owner_id="alice", conversation_id=conv.id, vector_store_id="vs_memory")
            is None
        )
    assert len(backends.summaries) == 2


async def test_a_background_conversation_turn_writes_memory(
    store: Any,
    conversations: Any,  # noqa: F811
    inference: AsyncMock,
    script: Script,
) -> None:
    backends = Backends(script)
    builtin, ours = await writers(store, conversations, backends, inference, WRITE)
    for impl in (builtin, ours):
        conv = await conversations.create_conversation(CreateConversationRequest())
        script.turns.append("Tea it is.")
        queued = await impl.create_openai_response(
            CreateResponseRequest(
                model=MODEL,
                input="What should I drink?",
                conversation=conv.id,
                background=True,
                safety_identifier="alice",
            )
        )
        for _ in range(200):
            done = await impl.get_openai_response(RetrieveResponseRequest(response_id=queued.id))
            if done.status == "completed" and not write_tasks(impl):
                record = await store.get_memory_record(
                    owner_id="alice", conversation_id=conv.id, vector_store_id="vs_memory"
                )
                if record is not None:
                    break
            await asyncio.sleep(0.02)
        assert done.status == "completed"
        assert record is not None and record.response_id == queued.id
        await impl.shutdown()
    assert [s for s in backends.summaries] == [[("user", "What should I drink?"), ("assistant", "Tea it is.")]] * 2
