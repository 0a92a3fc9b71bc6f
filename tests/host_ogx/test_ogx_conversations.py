"""`conversation`, `prompt` and `guardrails` on OGX 1.5, against OGX's own conversations and prompts services
(built in-process on the test's sqlite file, as the server builds them) and a local HTTP server standing in
for the moderation service. Streams go through the stream validator (see `ogx_helpers.collect`); the
builtin's interplay is checked both ways on one conversation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock

import pytest
from moderation_server import Moderation
from ogx.core.conversations.conversations import ConversationServiceConfig, ConversationServiceImpl
from ogx.core.prompts.prompts import PromptServiceConfig, PromptServiceImpl
from ogx.core.storage.datatypes import SqlStoreReference
from ogx.providers.inline.responses.builtin import get_provider_impl as builtin_provider_impl
from ogx.providers.inline.responses.builtin.config import BuiltinResponsesImplConfig
from ogx_api import (
    Api,
    ConversationNotFoundError,
    CreateConversationRequest,
    CreatePromptRequest,
    CreateResponseRequest,
    InvalidParameterError,
    ListItemsRequest,
    ListResponseInputItemsRequest,
    PromptNotFoundError,
    ServiceNotEnabledError,
)
from ogx_helpers import MODEL, Script, ToolCall, collect
from test_ogx_skills import skills  # noqa: F401  (the skills provider fixture)

from responses_rs.ogx import OGXResponsesImpl
from responses_rs.ogx.provider import API_DEPENDENCIES
from responses_rs.ogx.provider import get_provider_impl as our_provider_impl


def _service_config(cls: Any, **stores: Any) -> Any:
    # The services read only `config.storage.stores.<name>` and `policy` from the stack config.
    stack = SimpleNamespace(storage=SimpleNamespace(stores=SimpleNamespace(**stores)))
    return cls.model_construct(config=stack, policy=[])


@pytest.fixture
async def conversations(store: Any) -> ConversationServiceImpl:
    """OGX's conversation service on the test's sqlite backend (`store` registered it)."""
    ref = SqlStoreReference(backend="sql_default", table_name="openai_conversations")
    service = ConversationServiceImpl(_service_config(ConversationServiceConfig, conversations=ref), {})
    await service.initialize()
    return service


@pytest.fixture
async def prompts(store: Any) -> PromptServiceImpl:
    ref = SqlStoreReference(backend="sql_default", table_name="prompts")
    service = PromptServiceImpl(_service_config(PromptServiceConfig, prompts=ref), {})
    await service.initialize()
    return service


@pytest.fixture
def moderation() -> Iterator[Moderation]:
    server = Moderation()
    yield server
    server.close()


@pytest.fixture
def full_impl(inference: AsyncMock, store: Any, conversations: Any, prompts: Any, moderation: Moderation) -> Any:
    config = SimpleNamespace(moderation_endpoint=moderation.url, moderation_headers={"X-Moderation-Key": "k1"})
    return OGXResponsesImpl(
        inference_api=inference,
        responses_store=store,
        tool_groups_api=AsyncMock(),
        tool_runtime_api=AsyncMock(),
        vector_io_api=AsyncMock(),
        conversations_api=conversations,
        prompts_api=prompts,
        config=config,
    )


def history(params: Any) -> list[tuple[str, Any]]:
    out = []
    for message in params.messages:
        content = message.content
        if isinstance(content, list):
            content = "".join(getattr(p, "text", "") or "" for p in content)
        out.append((message.role, content))
    return out


def text_of(response: Any) -> str:
    return "".join(
        getattr(part, "text", "") for item in response.output if item.type == "message" for part in item.content
    )


async def create(impl: Any, **fields: Any) -> tuple[Any, list[Any]]:
    fields.setdefault("model", MODEL)
    return await collect(await impl.create_openai_response(CreateResponseRequest(**fields)))


def item_texts(items: Any) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if item.type == "message":
            content = item.content if isinstance(item.content, str) else "".join(p.text for p in item.content)
            out.append((item.role, content))
        else:
            out.append((item.type, getattr(item, "name", "") or getattr(item, "output", "")))
    return out


# ---------------------------------------------------------------------------------------------------------
# conversation


async def test_conversation_turns_see_and_extend_the_conversation(
    full_impl: Any, conversations: Any, store: Any, script: Script, stream: bool
) -> None:
    conv = await conversations.create_conversation(CreateConversationRequest())
    script.turns += ["Hello Ada", "Your name is Ada"]
    first, _ = await create(full_impl, input="My name is Ada", conversation=conv.id, stream=stream)
    second, _ = await create(
        full_impl, input="What is my name?", conversation=conv.id, instructions="Be brief.", stream=stream
    )
    assert (first.status, second.status) == ("completed", "completed")
    assert text_of(second) == "Your name is Ada"
    # the model saw the earlier turn, after the instructions and before the new input
    assert history(script.requests[0]) == [("user", "My name is Ada")]
    assert history(script.requests[1]) == [
        ("system", "Be brief."),
        ("user", "My name is Ada"),
        ("assistant", "Hello Ada"),
        ("user", "What is my name?"),
    ]
    # the conversation holds both turns; output items keep the ids the responses reported
    items = (await conversations.list_items(ListItemsRequest(conversation_id=conv.id, order="asc"))).data
    assert item_texts(items) == [
        ("user", "My name is Ada"),
        ("assistant", "Hello Ada"),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ada"),
    ]
    assert items[1].id == first.output[0].id and items[3].id == second.output[0].id
    # each response stores only its own input, with the same id as the conversation's item
    listed = await full_impl.list_openai_response_input_items(ListResponseInputItemsRequest(response_id=second.id))
    assert item_texts(listed.data) == [("user", "What is my name?")]
    assert listed.data[0].id == items[2].id
    # the chat history the builtin continues from, without system messages
    messages = await store.get_conversation_messages(conv.id)
    assert history(SimpleNamespace(messages=messages)) == [
        ("user", "My name is Ada"),
        ("assistant", "Hello Ada"),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ada"),
    ]


async def test_conversation_with_a_function_call_round_trip(full_impl: Any, conversations: Any, script: Script) -> None:
    conv = await conversations.create_conversation(CreateConversationRequest())
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}
    script.turns += [[ToolCall("get_weather", {"city": "Paris"}, id="call_7")], "Sunny in Paris"]
    first, _ = await create(full_impl, input="Weather?", conversation=conv.id, tools=[tool])
    assert first.output[0].type == "function_call"
    output = {"type": "function_call_output", "call_id": "call_7", "output": "sunny"}
    second, _ = await create(full_impl, input=[output], conversation=conv.id, tools=[tool])
    assert text_of(second) == "Sunny in Paris"
    roles = [m.role for m in script.requests[1].messages]
    assert roles == ["user", "assistant", "tool"]
    assert script.requests[1].messages[1].tool_calls[0].id == "call_7"
    items = (await conversations.list_items(ListItemsRequest(conversation_id=conv.id, order="asc"))).data
    assert [i.type for i in items] == ["message", "function_call", "function_call_output", "message"]


async def test_long_conversation_reads_every_page(full_impl: Any, conversations: Any, script: Script) -> None:
    conv = await conversations.create_conversation(
        CreateConversationRequest(
            items=[{"type": "message", "role": "user", "content": f"note {i}"} for i in range(20)]
        )
    )
    # more than one page of items (the service pages by at most 100)
    from ogx_api import AddItemsRequest

    for batch in range(5):  # at most 20 items a request
        await conversations.add_items(
            conv.id,
            AddItemsRequest(
                items=[
                    {"type": "message", "role": "user", "content": f"more {i}"}
                    for i in range(batch * 20, batch * 20 + 20)
                ]
            ),
        )
    script.turns.append("ok")
    await create(full_impl, input="count", conversation=conv.id)
    seen = history(script.requests[0])
    assert len(seen) == 121 and seen[0] == ("user", "note 0") and seen[-2] == ("user", "more 99")


async def test_conversation_refusals(full_impl: Any, conversations: Any, script: Script) -> None:
    conv = await conversations.create_conversation(CreateConversationRequest())
    # with previous_response_id: refused by the core, naming the field, before any I/O
    with pytest.raises(ValueError, match="conversation"):
        await create(full_impl, input="x", conversation=conv.id, previous_response_id="resp_1")
    with pytest.raises(InvalidParameterError, match="conv_"):
        await create(full_impl, input="x", conversation="conv_nope")
    with pytest.raises(ConversationNotFoundError):
        await create(full_impl, input="x", conversation="conv_" + "0" * 48)
    assert script.requests == []


async def test_unstored_or_failed_responses_leave_the_conversation_alone(
    full_impl: Any, conversations: Any, inference: AsyncMock, script: Script
) -> None:
    conv = await conversations.create_conversation(CreateConversationRequest())
    script.turns.append("not kept")
    response, _ = await create(full_impl, input="hi", conversation=conv.id, store=False)
    assert response.status == "completed"

    async def boom(params: Any) -> Any:
        raise RuntimeError("inference down")

    inference.openai_chat_completion.side_effect = boom
    failed, _ = await create(full_impl, input="hi", conversation=conv.id, stream=True)
    assert failed.status == "failed"
    items = (await conversations.list_items(ListItemsRequest(conversation_id=conv.id))).data
    assert items == []


async def test_a_failing_conversation_sync_stores_nothing(
    full_impl: Any, conversations: Any, store: Any, script: Script, stream: bool
) -> None:
    conv = await conversations.create_conversation(CreateConversationRequest())
    conversations.sync_items = AsyncMock(side_effect=RuntimeError("conversations store down"))
    script.turns.append("lost")
    if stream:
        response, _ = await create(full_impl, input="hi", conversation=conv.id, stream=True)
        assert response.status == "failed" and "conversations store down" in response.error.message
    else:
        with pytest.raises(RuntimeError, match="conversations store down"):
            await create(full_impl, input="hi", conversation=conv.id)
    listed = await store.list_responses(None, 10, None, None)
    assert listed.data == []


# ---------------------------------------------------------------------------------------------------------
# prompt


async def test_prompt_template_with_variables(full_impl: Any, prompts: Any, script: Script, stream: bool) -> None:
    prompt = await prompts.create_prompt(
        CreatePromptRequest(prompt="You answer in a {{ tone }} tone about {{city}}.", variables=["tone", "city"])
    )
    script.turns.append("ok")
    variables = {"tone": {"type": "input_text", "text": "dry"}, "city": {"type": "input_text", "text": "Paris"}}
    response, _ = await create(
        full_impl,
        input="Tell me something",
        instructions="Be brief.",
        prompt={"id": prompt.prompt_id, "version": "1", "variables": variables},
        stream=stream,
    )
    assert response.status == "completed"
    # the rendered template first, then the instructions, as the builtin orders them
    assert history(script.requests[0]) == [
        ("system", "You answer in a dry tone about Paris."),
        ("system", "Be brief."),
        ("user", "Tell me something"),
    ]
    # echoed as given
    assert response.prompt is not None and response.prompt.id == prompt.prompt_id
    assert response.prompt.version == "1" and response.prompt.variables["city"].text == "Paris"
    stored = await full_impl.get_openai_response(SimpleNamespace(response_id=response.id))
    assert stored.prompt == response.prompt


async def test_prompt_without_variables_and_by_latest_version(full_impl: Any, prompts: Any, script: Script) -> None:
    from ogx_api import UpdatePromptRequest

    prompt = await prompts.create_prompt(CreatePromptRequest(prompt="Version one {{ x }}", variables=["x"]))
    await prompts.update_prompt(
        UpdatePromptRequest(prompt_id=prompt.prompt_id, prompt="Version two", version=1, set_as_default=True)
    )
    script.turns += ["a", "b"]
    await create(full_impl, input="hi", prompt={"id": prompt.prompt_id})
    await create(full_impl, input="hi", prompt={"id": prompt.prompt_id, "version": "1"})
    assert history(script.requests[0])[0] == ("system", "Version two")
    assert history(script.requests[1])[0] == ("system", "Version one {{ x }}")


async def test_prompt_image_variable(full_impl: Any, prompts: Any, script: Script) -> None:
    prompt = await prompts.create_prompt(CreatePromptRequest(prompt="Describe {{photo}}.", variables=["photo"]))
    script.turns.append("a cat")
    url = "data:image/png;base64,iVBORw0KGgo="
    await create(
        full_impl,
        input="Go",
        prompt={"id": prompt.prompt_id, "variables": {"photo": {"type": "input_image", "image_url": url}}},
    )
    messages = script.requests[0].messages
    assert (messages[0].role, messages[0].content) == ("system", "Describe [Image: photo].")
    assert messages[1].role == "user" and messages[1].content == "Go"
    assert messages[2].role == "user" and messages[2].content[0].image_url.url == url


async def test_prompt_refusals(full_impl: Any, prompts: Any, script: Script) -> None:
    prompt = await prompts.create_prompt(CreatePromptRequest(prompt="Hi {{ x }}", variables=["x"]))
    with pytest.raises(ValueError, match=r"prompt\.variables.*'y'"):
        await create(
            full_impl,
            input="x",
            prompt={"id": prompt.prompt_id, "variables": {"y": {"type": "input_text", "text": "v"}}},
        )
    with pytest.raises(PromptNotFoundError):
        await create(full_impl, input="x", prompt={"id": "pmpt_" + "0" * 48})
    assert script.requests == []


# ---------------------------------------------------------------------------------------------------------
# guardrails


async def test_guardrails_pass_clean_input_and_output(
    full_impl: Any, moderation: Moderation, script: Script, stream: bool
) -> None:
    long_answer = " ".join(["word"] * 120)  # 599 characters: checked in batches and at the end
    script.turns.append(long_answer)
    response, events = await create(full_impl, input="hello", instructions="Be kind.", guardrails=True, stream=stream)
    assert response.status == "completed" and text_of(response) == long_answer
    assert moderation.inputs[0] == "Be kind. hello"  # every message, before inference
    assert len(moderation.inputs) >= 3 and moderation.inputs[-1] == long_answer
    assert all(h.get("X-Moderation-Key") == "k1" for h in moderation.headers)
    if stream:
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == long_answer


async def test_guardrails_refuse_flagged_input(
    full_impl: Any, moderation: Moderation, script: Script, conversations: Any, stream: bool
) -> None:
    conv = await conversations.create_conversation(CreateConversationRequest())
    response, events = await create(
        full_impl, input="something forbidden", guardrails=True, stream=stream, conversation=conv.id
    )
    assert script.requests == []  # no inference
    assert response.status == "completed"
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant"
    (part,) = message.content
    assert part.type == "refusal" and part.refusal == "Content blocked by safety guardrails (flagged for: violence)"
    if stream:
        assert not any(e.type == "response.output_text.delta" for e in events)
    # stored, and in the conversation as the builtin syncs it (input, then the response's output)
    stored = await full_impl.get_openai_response(SimpleNamespace(response_id=response.id))
    assert stored.output[0].content[0].refusal == part.refusal
    items = (await conversations.list_items(ListItemsRequest(conversation_id=conv.id, order="asc"))).data
    assert [i.role for i in items] == ["user", "assistant"]


async def test_guardrails_refuse_flagged_output(
    full_impl: Any, moderation: Moderation, script: Script, stream: bool
) -> None:
    script.turns.append("here is the forbidden answer")
    response, events = await create(full_impl, input="hello", guardrails=True, stream=stream)
    assert len(script.requests) == 1
    assert response.status == "completed"
    (message,) = response.output
    assert message.content[0].type == "refusal"
    assert "flagged for: violence" in message.content[0].refusal
    if stream:  # nothing of the flagged text reached the client
        assert not any(
            "forbidden" in json.dumps(e.model_dump(mode="json")) for e in events if e.type != "response.completed"
        )
        assert not any(e.type == "response.output_text.delta" for e in events)


async def test_guardrails_pass_a_function_call_and_fail_closed(
    full_impl: Any, moderation: Moderation, script: Script, stream: bool
) -> None:
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    script.turns.append([ToolCall("lookup", {"q": "a"})])
    response, _ = await create(full_impl, input="hello", tools=[tool], guardrails=True, stream=stream)
    assert [i.type for i in response.output] == ["function_call"]
    # moderation unreachable: fail closed
    moderation.status = 500
    script.turns.append("fine text")
    blocked, _ = await create(full_impl, input="hello", guardrails=True, stream=stream)
    assert blocked.output[0].content[0].refusal == "Failed to validate content: moderation service unavailable"
    assert len(script.requests) == 1  # the input check already blocked


async def test_guardrails_refuse_only_the_flagged_round(
    full_impl: Any, moderation: Moderation, script: Script, stream: bool
) -> None:
    # a server-side tool round passes and stays in the output; the next round is flagged and replaced
    full_impl.tool_groups_api.get_tool = AsyncMock(
        return_value={
            "name": "web_search",
            "description": "Search the web",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
    )
    full_impl.tool_runtime_api.invoke_tool = AsyncMock(return_value={"content": "search results"})
    script.turns += [[ToolCall("web_search", {"query": "news"})], "the forbidden news"]
    response, events = await create(
        full_impl, input="news?", tools=[{"type": "web_search"}], guardrails=True, stream=stream
    )
    assert len(script.requests) == 2
    assert [i.type for i in response.output] == ["web_search_call", "message"]
    assert response.output[1].content[0].type == "refusal"
    assert moderation.inputs[-1] == "the forbidden news"


async def test_guardrails_need_a_moderation_endpoint(impl: Any) -> None:
    with pytest.raises(ServiceNotEnabledError, match="moderation_endpoint"):
        await create(impl, input="x", guardrails=True)


# ---------------------------------------------------------------------------------------------------------
# the builtin and responses-rs on one conversation


async def test_conversation_alternating_with_the_builtin(
    db_path: str, store: Any, conversations: Any, prompts: Any, inference: AsyncMock, script: Script, stream: bool
) -> None:
    config = BuiltinResponsesImplConfig(
        persistence={"responses": {"table_name": "responses", "backend": "sql_default"}}
    )
    deps = {api: AsyncMock(name=api.value) for api in API_DEPENDENCIES}
    deps[Api.inference] = inference
    deps[Api.conversations] = conversations
    deps[Api.prompts] = prompts
    builtin = await builtin_provider_impl(config, deps, [])
    ours = await our_provider_impl(config, deps, [])
    conv = await conversations.create_conversation(CreateConversationRequest())
    responses = []
    for i, impl in enumerate([ours, builtin, ours, builtin]):
        script.turns.append(f"a{i}")
        request = CreateResponseRequest(input=f"q{i}", model=MODEL, conversation=conv.id, stream=stream)
        result = await impl.create_openai_response(request)
        if impl is builtin and stream:
            events = [e async for e in result]
            response = events[-1].response
        else:
            response, _ = await collect(result)
        assert response.status == "completed" and text_of(response) == f"a{i}", type(impl).__name__
        responses.append(response)
        expected = [(role, f"{kind}{j}") for j in range(i) for role, kind in (("user", "q"), ("assistant", "a"))]
        assert history(script.requests[-1]) == [*expected, ("user", f"q{i}")], type(impl).__name__
    items = (await conversations.list_items(ListItemsRequest(conversation_id=conv.id, order="asc"))).data
    assert item_texts(items) == [(r, f"{k}{j}") for j in range(4) for r, k in (("user", "q"), ("assistant", "a"))]
    # each provider lists every response's input: only that turn's input
    for reader in (builtin, ours):
        for i, response in enumerate(responses):
            listed = await reader.list_openai_response_input_items(
                ListResponseInputItemsRequest(response_id=response.id, order="asc")
            )
            assert item_texts(listed.data) == [("user", f"q{i}")]


async def test_prompt_instructions_skills_and_conversation_as_the_builtin_sends_them(
    inference: AsyncMock,
    script: Script,
    conversations: Any,
    prompts: Any,
    skills: Any,  # noqa: F811  (the fixture imported above)
    stream: bool,
) -> None:
    from test_ogx_skills import bundle, providers, upload

    skill = await skills.create_skill(upload(bundle("pdf-tools", "Reads PDFs.", "Use pdftotext.")))
    prompt = await prompts.create_prompt(CreatePromptRequest(prompt="You help {{ who }}.", variables=["who"]))
    builtin, ours = await providers(inference, skills, conversations=conversations, prompts=prompts)
    sent = {}
    for impl in (builtin, ours):
        earlier = [
            {"type": "message", "role": "user", "content": "earlier question"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "earlier answer"}]},
        ]
        conv = await conversations.create_conversation(CreateConversationRequest(items=earlier))
        script.turns.append("ok")
        result = await impl.create_openai_response(
            CreateResponseRequest(
                model=MODEL,
                input="now",
                instructions="Be brief.",
                skills=[skill.id],
                conversation=conv.id,
                prompt={"id": prompt.prompt_id, "variables": {"who": {"type": "input_text", "text": "Ada"}}},
                stream=stream,
            )
        )
        if impl is builtin and stream:
            response = [e async for e in result][-1].response
        else:
            response, _ = await collect(result)
        assert response.status == "completed" and response.prompt.id == prompt.prompt_id
        sent[impl is ours] = history(script.requests[-1])
    assert sent[True] == sent[False]  # exactly what the builtin sends
    assert [m[0] for m in sent[True]] == ["system", "system", "system", "user", "assistant", "user"]
    assert sent[True][0] == ("system", "You help Ada.") and sent[True][1] == ("system", "Be brief.")
    assert sent[True][2][1].startswith("## Skill: pdf-tools")
