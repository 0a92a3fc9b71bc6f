"""Behavioural contract of ``responses_rs.OpenAIResponsesImpl`` as a drop-in for llama-stack 0.2.12's
``OpenAIResponsesImpl`` (constructor ``(inference_api, tool_groups_api, tool_runtime_api,
responses_store, vector_io_api)``).

Collaborators: scripted inference / tool mocks from conftest.py where the outside world is, llama-stack's
REAL ``ResponsesStore`` over sqlite in ``tmp_path`` (recording its calls), and the MCP client functions
patched at ``responses_rs._mcp`` (llama-stack's own need ``mcp<2``).

Every scenario that takes the ``mode`` fixture runs non-streamed and streamed (and with inference
chunks built from llama-stack and from openai SDK classes); every stream is checked with
``validate_stream`` (through ``validate_stream_0212``, see conftest_0212.py).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json

import pytest

if importlib.metadata.version("llama_stack") != "0.2.12":
    pytest.skip("llama-stack 0.2.12 contract suite (installed: other version)", allow_module_level=True)

pytest_plugins = ["conftest_0212"]
pytest.register_assert_rewrite("conftest_0212")

from conftest import (  # noqa: E402
    MODEL,
    SEARCH_RESULT_TEXT,
    WEB_SEARCH_TOOLDEF,
    ToolCall,
    assert_rejected_stream,
    collect,
    impl_class,
    make_inference,
    make_tool_runtime,
    types_of,
)
from conftest_0212 import (  # noqa: E402
    KNOWLEDGE_SEARCH_TOOLDEF,
    assert_llama_stack_record_params,
    build_impl,
    chat_tool,
    chat_tool_names,
    collect_0212,
    conversation,
    dump,
    item_summary,
    make_tool_groups_0212,
    make_vector_io,
    mcp_tooldef,
    page,
    summarize,
    text_of,
)
from llama_stack.apis.agents import Order  # noqa: E402
from llama_stack.apis.agents.openai_responses import (  # noqa: E402
    AllowedToolsFilter,
    ListOpenAIResponseInputItem,
    ListOpenAIResponseObject,
    OpenAIResponseInputMessageContentText,
    OpenAIResponseInputToolFileSearch,
    OpenAIResponseInputToolMCP,
    OpenAIResponseInputToolWebSearch,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseObjectStreamResponseCompleted,
    OpenAIResponseObjectStreamResponseCreated,
    OpenAIResponseObjectStreamResponseMcpCallArgumentsDelta,
    OpenAIResponseObjectStreamResponseMcpCallArgumentsDone,
    OpenAIResponseObjectStreamResponseMcpCallCompleted,
    OpenAIResponseObjectStreamResponseMcpCallFailed,
    OpenAIResponseObjectStreamResponseMcpCallInProgress,
    OpenAIResponseObjectStreamResponseMcpListToolsCompleted,
    OpenAIResponseObjectStreamResponseMcpListToolsInProgress,
    OpenAIResponseObjectStreamResponseOutputTextDelta,
    OpenAIResponseObjectStreamResponseWebSearchCallCompleted,
    OpenAIResponseObjectWithInput,
    OpenAIResponseOutputMessageFileSearchToolCall,
    OpenAIResponseOutputMessageMCPCall,
    OpenAIResponseOutputMessageMCPListTools,
    OpenAIResponseOutputMessageWebSearchToolCall,
    OpenAIResponseText,
    OpenAIResponseTextFormat,
)
from llama_stack.apis.common.content_types import TextContentItem  # noqa: E402
from llama_stack.apis.inference.inference import (  # noqa: E402
    OpenAIJSONSchema,
    OpenAIResponseFormatJSONObject,
    OpenAIResponseFormatJSONSchema,
    OpenAIResponseFormatText,
    OpenAISystemMessageParam,
    OpenAIUserMessageParam,
)
from llama_stack.apis.tools import ListToolDefsResponse, ToolInvocationResult  # noqa: E402
from llama_stack.apis.vector_io import SearchRankingOptions  # noqa: E402

from responses_rs import _compat  # noqa: E402

QUESTION = "What is the capital of Ireland?"
INSTRUCTIONS = "You are a terse geography assistant."
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TWO_MODES = pytest.mark.modes("nonstream-llama", "stream-openai")
STREAM_MODES = pytest.mark.modes("stream-llama", "stream-openai")


class Boom(RuntimeError):
    """An exception type nobody else raises, so propagation checks are unambiguous."""


# =================================================================================================
# helpers
# =================================================================================================


@pytest.fixture
def create(impl_0212, stream):
    async def _create(input, **kw):
        kw.setdefault("model", MODEL)
        result = await asyncio.wait_for(impl_0212.create_openai_response(input=input, stream=stream, **kw), 10)
        if stream:
            assert not isinstance(result, OpenAIResponseObject), "stream=True must return an async iterator of events"
        else:
            assert isinstance(result, OpenAIResponseObject), f"expected OpenAIResponseObject, got {type(result)!r}"
        return await collect_0212(result)

    return _create


def of_type(events, t: str) -> list:
    return [e for e in events if e.type == t]


def assert_text_message(item, text: str):
    assert isinstance(item, OpenAIResponseMessage), item
    assert item.role == "assistant"
    assert item.id and item.id.startswith("msg_"), item.id
    assert item.status == "completed"
    assert text_of(item.content) == text
    # openai-python's shape: output_text parts with (empty) annotations
    assert isinstance(item, _compat.OutputMessage), type(item)
    assert [(type(p), p.annotations) for p in item.content] == [(_compat.OutputTextPart, [])] * len(item.content)


def assert_output_types(output, *classes):
    """``output[i]`` is an instance of ``classes[i]`` (llama-stack's class; ours may be a subclass)."""
    assert len(output) == len(classes), [type(o) for o in output]
    for item, cls in zip(output, classes, strict=True):
        assert isinstance(item, cls), (type(item).__mro__, cls)


def assert_ordered(types: list[str], *expected: str):
    """``expected`` occur in ``types`` in this order (other events may come between)."""
    positions = []
    for t in expected:
        assert t in types, f"{t} missing from {types}"
        start = positions[-1] + 1 if positions else 0
        assert t in types[start:], f"{t} not after {expected[: len(positions)]} in {types}"
        positions.append(types.index(t, start))


def assert_deltas_target_final_items(events, final: OpenAIResponseObject):
    """Every text delta names the id of the final message at its output index."""
    for e in of_type(events, "response.output_text.delta"):
        item = final.output[e.output_index]
        assert e.item_id == item.id, f"delta item_id {e.item_id} != final id {item.id}"


# =================================================================================================
# construction / inference call shape
# =================================================================================================


async def test_constructor_positional_and_keyword(responses_store):
    cls = impl_class()
    inf, groups, runtime, vio = make_inference(), make_tool_groups_0212(), make_tool_runtime(), make_vector_io()
    by_position = cls(inf, groups, runtime, responses_store, vio)
    by_keyword = cls(
        inference_api=inf,
        tool_groups_api=groups,
        tool_runtime_api=runtime,
        responses_store=responses_store,
        vector_io_api=vio,
    )
    for impl in (by_position, by_keyword):
        assert impl.inference_api is inf
        assert impl.tool_groups_api is groups
        assert impl.tool_runtime_api is runtime
        assert impl.responses_store is responses_store
        assert impl.vector_io_api is vio
        inf.script.text("ok")
        resp = await impl.create_openai_response(input="hi", model=MODEL)
        assert isinstance(resp, OpenAIResponseObject)
        assert dump(await impl.get_openai_response(resp.id)) == dump(resp)


async def test_simple_call_exact_inference_kwargs(create, inference, stream):
    inference.script.text("Dublin", chunks=["Dub", "lin"])
    resp, events = await create(QUESTION, temperature=0.1)

    inference.openai_chat_completion.assert_called_once_with(
        model=MODEL,
        messages=[OpenAIUserMessageParam(role="user", content=QUESTION, name=None)],
        tools=None,
        stream=True,
        temperature=0.1,
        response_format=OpenAIResponseFormatText(),
        # inference is always streamed on 0.2.12, and llama-stack's Inference takes stream_options
        stream_options={"include_usage": True},
    )
    call = inference.script.call(0)
    assert type(call["messages"][0]) is OpenAIUserMessageParam
    assert type(call["response_format"]) is OpenAIResponseFormatText
    assert resp.status == "completed"
    assert resp.model == MODEL
    assert len(resp.output) == 1
    assert_text_message(resp.output[0], "Dublin")
    if stream:
        assert "".join(e.delta for e in of_type(events, "response.output_text.delta")) == "Dublin"
        assert_deltas_target_final_items(events, resp)


async def test_create_accepts_agents_py_positional_order(impl_0212, inference, stream):
    """agents.py delegates with 10 positionals: input, model, instructions, previous_response_id, store,
    stream, temperature, text, tools, max_infer_iters."""
    inference.script.text("B").text("D")
    r1, _ = await collect_0212(
        await impl_0212.create_openai_response("A", MODEL, None, None, True, stream, None, None, None, 10)
    )
    result = await impl_0212.create_openai_response(
        "C", MODEL, INSTRUCTIONS, r1.id, False, stream, 0.5, OpenAIResponseText(format={"type": "json_object"}), [], 3
    )
    r2, _ = await collect_0212(result)
    call = inference.script.call(1)
    assert summarize(call["messages"]) == [
        ("system", INSTRUCTIONS),
        ("user", "A"),
        ("assistant", "B"),
        ("user", "C"),
    ]
    assert call["temperature"] == 0.5
    assert call["response_format"] == OpenAIResponseFormatJSONObject()
    assert call["stream"] is True
    assert not call["tools"]
    # store=False (5th positional) for the second response
    assert [kw["response_object"].id for kw in impl_0212.responses_store.stored()] == [r1.id]
    assert_text_message(r2.output[0], "D")


# =================================================================================================
# text.format -> response_format
# =================================================================================================

TEXT_FORMATS = [
    pytest.param(None, OpenAIResponseFormatText(), id="none"),
    pytest.param(OpenAIResponseText(format=None), OpenAIResponseFormatText(), id="format-none"),
    pytest.param(
        OpenAIResponseText(format=OpenAIResponseTextFormat(type="text")), OpenAIResponseFormatText(), id="text"
    ),
    pytest.param(
        OpenAIResponseText(format=OpenAIResponseTextFormat(type="json_object")),
        OpenAIResponseFormatJSONObject(),
        id="json_object",
    ),
    pytest.param(
        OpenAIResponseText(format=OpenAIResponseTextFormat(type="json_schema", name="City", schema=SCHEMA)),
        OpenAIResponseFormatJSONSchema(json_schema=OpenAIJSONSchema(name="City", schema=SCHEMA)),
        id="json_schema",
    ),
    pytest.param(
        OpenAIResponseText(
            format=OpenAIResponseTextFormat(
                type="json_schema", name="City", schema=SCHEMA, strict=True, description="A city"
            )
        ),
        OpenAIResponseFormatJSONSchema(
            json_schema=OpenAIJSONSchema(name="City", schema=SCHEMA, strict=True, description="A city")
        ),
        id="json_schema-strict-description",
    ),
    pytest.param(
        {"format": {"type": "json_schema", "name": "City", "schema": SCHEMA, "strict": False}},
        OpenAIResponseFormatJSONSchema(json_schema=OpenAIJSONSchema(name="City", schema=SCHEMA, strict=False)),
        id="json_schema-dict",
    ),
]


@TWO_MODES
@pytest.mark.parametrize("text, expected", TEXT_FORMATS)
async def test_text_format_becomes_response_format(create, inference, responses_store, text, expected):
    inference.script.tool_calls(ToolCall("call_ws", "web_search", '{"query": "Dublin"}')).text('{"city": "Dublin"}')
    resp, _ = await create(QUESTION, text=text, tools=[OpenAIResponseInputToolWebSearch()])

    assert inference.openai_chat_completion.await_count == 2
    for i in range(2):  # every inference round gets it
        got = inference.script.call(i)["response_format"]
        assert type(got) is type(expected)
        assert got == expected
    # the request's text is echoed on the response (and stored)
    # the full object reports the effective format (text when none was given); llama-stack's record keeps
    # what the request gave (its own default when the request gave no text at all)
    if text is None:
        want = OpenAIResponseText(format=OpenAIResponseTextFormat(type="text"))
    else:
        want = OpenAIResponseText.model_validate(text) if isinstance(text, dict) else text
    if want.format is None:
        assert resp.text.model_dump() == OpenAIResponseText(format=OpenAIResponseTextFormat(type="text")).model_dump()
    elif want.format.get("type") == "json_schema":
        # OpenAI reports `description` and `strict` on every json_schema format, given or not.
        echoed = {"description": None, "strict": False, **{k: v for k, v in want.format.items() if v is not None}}
        assert resp.text.model_dump() == {"format": echoed}
    else:
        assert resp.text.model_dump() == want.model_dump()
    stored = await responses_store.get_response_object(resp.id)
    assert stored.text.model_dump() == want.model_dump()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param({"format": {"type": "invalid"}}, id="dict"),
        pytest.param(OpenAIResponseText.model_construct(format={"type": "xml"}), id="unvalidated-model"),
    ],
)
async def test_invalid_text_format_type_is_value_error(impl_0212, inference, responses_store, stream, text):
    """Non-streamed: ValueError naming the field. Streamed (the host has answered 200 already): a stream of
    ``response.created`` + ``response.failed`` with code ``invalid_request``, naming the field."""
    if stream:
        result = await impl_0212.create_openai_response(input=QUESTION, model=MODEL, text=text, stream=stream)
        _, events = await collect(result, validate=False)  # no response.in_progress: checked below
        assert_rejected_stream(events, "invalid_request", "text.format.type")
    else:
        with pytest.raises(ValueError, match=r"text\.format\.type"):
            await impl_0212.create_openai_response(input=QUESTION, model=MODEL, text=text, stream=stream)
    inference.openai_chat_completion.assert_not_awaited()
    assert responses_store.calls["store_response_object"] == []


# =================================================================================================
# instructions
# =================================================================================================


async def test_instructions_become_first_system_message(create, inference):
    inference.script.text("Dublin.").text("Cork.")
    await create(QUESTION, instructions=INSTRUCTIONS)
    await create(
        [
            OpenAIResponseMessage(role="user", content="Name a city."),
            OpenAIResponseMessage(role="assistant", content="Galway."),
            OpenAIResponseMessage(role="user", content="Another one?"),
        ],
        instructions=INSTRUCTIONS,
    )
    first = inference.script.messages(0)
    assert first[0] == OpenAISystemMessageParam(role="system", content=INSTRUCTIONS, name=None)
    assert type(first[0]) is OpenAISystemMessageParam
    assert first[1:] == [OpenAIUserMessageParam(content=QUESTION)]
    assert summarize(inference.script.messages(1)) == [
        ("system", INSTRUCTIONS),
        ("user", "Name a city."),
        ("assistant", "Galway."),
        ("user", "Another one?"),
    ]


async def test_instructions_echoed_on_response(create, inference, stream):
    inference.script.text("Dublin.")
    resp, events = await create(QUESTION, instructions=INSTRUCTIONS)
    assert isinstance(resp, OpenAIResponseObject)
    assert getattr(resp, "instructions", None) == INSTRUCTIONS, "response.instructions must echo the request"
    for e in events:
        if hasattr(e, "response"):
            assert isinstance(e.response, OpenAIResponseObject)
            assert getattr(e.response, "instructions", None) == INSTRUCTIONS, e.type
            assert json.loads(e.model_dump_json())["response"].get("instructions") == INSTRUCTIONS, e.type


async def test_instructions_not_carried_through_previous_response(create, inference, responses_store):
    inference.script.text("B").text("D").text("F")
    r1, _ = await create("A", instructions="first instructions")
    r2, _ = await create("C", previous_response_id=r1.id)
    r3, _ = await create("E", previous_response_id=r2.id, instructions="third instructions")

    stored_input = responses_store.stored()[0]["input"]
    assert all(getattr(i, "role", None) != "system" for i in stored_input), stored_input
    assert summarize(inference.script.messages(1)) == [("user", "A"), ("assistant", "B"), ("user", "C")]
    assert summarize(inference.script.messages(2)) == [
        ("system", "third instructions"),
        ("user", "A"),
        ("assistant", "B"),
        ("user", "C"),
        ("assistant", "D"),
        ("user", "E"),
    ]
    assert_text_message(r3.output[0], "F")


# =================================================================================================
# store
# =================================================================================================


async def test_store_called_once_per_response_with_rehydrated_input(create, inference, responses_store, stream):
    inference.script.text("2+2 equals 4.").text("3+3 equals 6.").text("4+4 equals 8.")
    r1, _ = await create("What is 2+2?")
    r2, _ = await create("Now what is 3+3?", previous_response_id=r1.id)
    r3, _ = await create(
        [
            OpenAIResponseMessage(role="user", content="And 4+4?"),
            OpenAIResponseMessage(role="user", content=[OpenAIResponseInputMessageContentText(text="Be quick.")]),
        ],
        previous_response_id=r2.id,
    )
    stored = responses_store.stored()
    assert len(stored) == 3
    for kw, resp in zip(stored, (r1, r2, r3), strict=True):
        # llama-stack's own class, not responses-rs's subclass carrying the full OpenAI object
        assert type(kw["response_object"]) is OpenAIResponseObject
        assert dump(kw["response_object"]) == dump(resp)
        assert_llama_stack_record_params(kw["response_object"])
        assert (resp.top_p, resp.parallel_tool_calls, resp.truncation, resp.temperature) == (1.0, True, "disabled", 1.0)

    assert item_summary(stored[0]["input"]) == [("user", "What is 2+2?")]
    assert item_summary(stored[1]["input"]) == [
        ("user", "What is 2+2?"),
        ("assistant", "2+2 equals 4."),
        ("user", "Now what is 3+3?"),
    ]
    assert stored[1]["input"][1].id == r1.output[0].id
    assert item_summary(stored[2]["input"]) == [
        ("user", "What is 2+2?"),
        ("assistant", "2+2 equals 4."),
        ("user", "Now what is 3+3?"),
        ("assistant", "3+3 equals 6."),
        ("user", "And 4+4?"),
        ("user", "Be quick."),
    ]
    # read back through the store: the same input
    with_input = await responses_store.get_response_object(r3.id)
    assert isinstance(with_input, OpenAIResponseObjectWithInput)
    assert item_summary(with_input.input) == item_summary(stored[2]["input"])


async def test_store_false_never_stores(create, impl_0212, inference, responses_store):
    inference.script.text("not stored")
    resp, _ = await create("Hi", store=False)
    assert_text_message(resp.output[0], "not stored")
    assert responses_store.calls["store_response_object"] == []
    with pytest.raises(ValueError, match=resp.id):
        await impl_0212.get_openai_response(resp.id)


async def test_get_openai_response(responses_store):
    impl = build_impl(responses_store)
    impl.inference_api.script.text("Dublin")
    resp = await impl.create_openai_response(input=QUESTION, model=MODEL)
    responses_store.calls.clear()

    got = await impl.get_openai_response(resp.id)
    assert isinstance(got, OpenAIResponseObject)
    assert not isinstance(got, OpenAIResponseObjectWithInput)
    assert "input" not in got.model_dump()
    assert dump(got) == dump(resp)
    assert responses_store.calls["get_response_object"] == [((resp.id,), {})]

    with pytest.raises(ValueError, match="Response with id resp-nope not found"):
        await impl.get_openai_response("resp-nope")


async def test_list_openai_responses_delegates_positionally(responses_store):
    impl = build_impl(responses_store)
    ids = []
    for q in ("one", "two", "three"):
        impl.inference_api.script.text(f"answer {q}")
        ids.append((await impl.create_openai_response(input=q, model=MODEL)).id)
    responses_store.calls.clear()

    listed = await impl.list_openai_responses()
    assert responses_store.calls["list_responses"] == [((None, 50, None, Order.desc), {})]
    assert isinstance(listed, ListOpenAIResponseObject)
    assert sorted(r.id for r in listed.data) == sorted(ids)
    assert listed.has_more is False
    assert all(isinstance(r, OpenAIResponseObjectWithInput) and r.input for r in listed.data)

    responses_store.calls.clear()
    page_ = await impl.list_openai_responses(None, 2, MODEL, Order.asc)
    assert responses_store.calls["list_responses"] == [((None, 2, MODEL, Order.asc), {})]
    assert len(page_.data) == 2 and page_.has_more is True

    assert (await impl.list_openai_responses(model="some-other-model")).data == []
    with pytest.raises(ValueError, match="resp-nope"):
        await impl.list_openai_responses(after="resp-nope")


async def test_list_openai_response_input_items_delegates_positionally(responses_store):
    impl = build_impl(responses_store)
    impl.inference_api.script.text("ok")
    resp = await impl.create_openai_response(
        input=[OpenAIResponseMessage(role="user", content=f"m{i}", id=f"msg_{i}") for i in (1, 2, 3)], model=MODEL
    )
    responses_store.calls.clear()

    items = await impl.list_openai_response_input_items(resp.id)
    assert responses_store.calls["list_response_input_items"] == [((resp.id, None, None, None, 20, Order.desc), {})]
    assert isinstance(items, ListOpenAIResponseInputItem)
    assert [i.id for i in items.data] == ["msg_3", "msg_2", "msg_1"]

    responses_store.calls.clear()
    items = await impl.list_openai_response_input_items(resp.id, "msg_1", None, None, 5, Order.asc)
    assert responses_store.calls["list_response_input_items"] == [((resp.id, "msg_1", None, None, 5, Order.asc), {})]
    assert [i.id for i in items.data] == ["msg_2", "msg_3"]

    items = await impl.list_openai_response_input_items(resp.id, limit=2, order=Order.asc)
    assert [i.id for i in items.data] == ["msg_1", "msg_2"]
    with pytest.raises(NotImplementedError):
        await impl.list_openai_response_input_items(resp.id, include=["message.input_image.image_url"])


async def test_delete_not_supported_by_the_0212_store(responses_store):
    impl = build_impl(responses_store)
    impl.inference_api.script.text("ok")
    resp = await impl.create_openai_response(input="hi", model=MODEL)
    with pytest.raises(NotImplementedError):
        await impl.delete_openai_response(resp.id)
    assert (await impl.get_openai_response(resp.id)).id == resp.id


async def test_unknown_previous_response_id(impl_0212, inference, responses_store, stream):
    kw = {"input": "hi", "model": MODEL, "previous_response_id": "resp-missing-123", "stream": stream}
    if stream:
        _, events = await collect(await impl_0212.create_openai_response(**kw), validate=False)
        assert_rejected_stream(events, "previous_response_not_found", "resp-missing-123")
    else:
        with pytest.raises(ValueError, match="resp-missing-123"):
            await impl_0212.create_openai_response(**kw)
    inference.openai_chat_completion.assert_not_awaited()
    assert responses_store.calls["store_response_object"] == []


# =================================================================================================
# web_search
# =================================================================================================


async def test_web_search(create, inference, tool_groups_0212, tool_runtime, responses_store, stream):
    inference.script.tool_calls(ToolCall("call_ws", "web_search", '{"query": "llamas"}'))
    inference.script.text("Llamas are camelids.")
    resp, events = await create("Tell me about llamas", tools=[OpenAIResponseInputToolWebSearch()])

    tool_groups_0212.get_tool.assert_awaited_once_with("web_search")
    tool_runtime.invoke_tool.assert_awaited_once_with(tool_name="web_search", kwargs={"query": "llamas"})
    tools = inference.script.call(0)["tools"]
    assert chat_tool_names(tools) == ["web_search"]
    fn = chat_tool(tools, "web_search")
    assert fn["description"] == WEB_SEARCH_TOOLDEF.description
    assert fn["parameters"]["properties"]["query"]["type"] == "string"
    assert fn["parameters"]["required"] == ["query"]
    assert summarize(inference.script.messages(1)) == [
        ("user", "Tell me about llamas"),
        ("assistant", 'tool_calls:call_ws:web_search:{"query": "llamas"}'),
        ("tool", f"call_ws:{SEARCH_RESULT_TEXT}"),
    ]
    assert_output_types(resp.output, OpenAIResponseOutputMessageWebSearchToolCall, OpenAIResponseMessage)
    assert resp.output[0].status == "completed"
    # openai-python's web_search_call says what it searched for; llama-stack's record has no such field
    assert resp.output[0].action == {"type": "search", "query": "llamas"}
    assert "action" not in responses_store.stored()[0]["response_object"].output[0].model_dump()
    assert_text_message(resp.output[1], "Llamas are camelids.")
    assert len(responses_store.stored()) == 1

    if stream:
        types = types_of(events)
        assert_ordered(
            types,
            "response.created",
            "response.web_search_call.in_progress",
            "response.web_search_call.searching",
            "response.web_search_call.completed",
            "response.output_text.delta",
            "response.completed",
        )
        for e in events:
            if e.type.startswith("response.web_search_call."):
                assert e.item_id == resp.output[0].id and e.output_index == 0
        # one numbering across both inference rounds
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert_deltas_target_final_items(events, resp)
        assert isinstance(
            of_type(events, "response.web_search_call.completed")[0],
            OpenAIResponseObjectStreamResponseWebSearchCallCompleted,
        )


@TWO_MODES
@pytest.mark.parametrize(
    "result",
    [
        pytest.param(ToolInvocationResult(error_message="rate limited", error_code=1), id="error_message"),
        pytest.param(ToolInvocationResult(content="rate limited", error_code=429), id="error_code"),
    ],
)
async def test_web_search_error_result_marks_call_failed(create, inference, tool_runtime, stream, result):
    tool_runtime.invoke_tool.return_value = result
    inference.script.tool_calls(ToolCall("call_ws", "web_search", '{"query": "llamas"}'))
    inference.script.text("The search failed.")
    resp, events = await create("Tell me about llamas", tools=[OpenAIResponseInputToolWebSearch()])

    assert resp.status == "completed"
    assert isinstance(resp.output[0], OpenAIResponseOutputMessageWebSearchToolCall)
    assert resp.output[0].status == "failed"
    role, text = summarize(inference.script.messages(1))[-1]
    assert role == "tool" and "rate limited" in text
    assert_text_message(resp.output[1], "The search failed.")
    if stream:
        assert "response.web_search_call.completed" not in types_of(events)


# =================================================================================================
# file_search
# =================================================================================================

FILTERS = {"type": "eq", "key": "region", "value": "eu"}


@pytest.fixture
def two_stores(vector_io):
    vector_io.pages.update(
        {
            "vs_a": page("llama facts", ("file-a1", "llamas.txt", 0.9, "Llamas hum."), ("file-a2", "b.txt", 0.5, "x")),
            "vs_b": page("llama facts", ("file-b1", "alpacas.md", 0.7, "Alpacas are smaller.")),
        }
    )
    return vector_io


async def test_file_search_searches_every_vector_store(
    create, inference, tool_groups_0212, tool_runtime, two_stores, stream
):
    inference.script.tool_calls(ToolCall("call_fs", "knowledge_search", '{"query": "llama facts"}'))
    inference.script.text("Llamas hum.")
    tool = OpenAIResponseInputToolFileSearch(vector_store_ids=["vs_a", "vs_b"], filters=FILTERS, max_num_results=3)
    resp, events = await create("Tell me llama facts", tools=[tool])

    tool_groups_0212.get_tool.assert_awaited_once_with("knowledge_search")
    tools = inference.script.call(0)["tools"]
    assert chat_tool_names(tools) == ["knowledge_search"]
    fn = chat_tool(tools, "knowledge_search")
    assert fn["description"] == KNOWLEDGE_SEARCH_TOOLDEF.description
    assert fn["parameters"]["required"] == ["query"]

    search = two_stores.openai_search_vector_store
    assert search.await_count == 2
    for vs in ("vs_a", "vs_b"):
        search.assert_any_await(
            vector_store_id=vs,
            query="llama facts",
            filters=FILTERS,
            max_num_results=3,
            ranking_options=None,
            rewrite_query=False,
        )
    tool_runtime.invoke_tool.assert_not_awaited()

    assert_output_types(resp.output, OpenAIResponseOutputMessageFileSearchToolCall, OpenAIResponseMessage)
    fs = resp.output[0]
    assert fs.queries == ["llama facts"]
    assert fs.status == "completed"
    got = [(r["file_id"], r["filename"], r["text"], r["score"]) for r in fs.results]
    assert got == [
        ("file-a1", "llamas.txt", "Llamas hum.", 0.9),
        ("file-a2", "b.txt", "x", 0.5),
        ("file-b1", "alpacas.md", "Alpacas are smaller.", 0.7),
    ]
    tool_msg = summarize(inference.script.messages(1))[-1]
    assert tool_msg[0] == "tool" and tool_msg[1].startswith("call_fs:")
    for text in ("Llamas hum.", "Alpacas are smaller.", "file-a1", "file-b1"):
        assert text in tool_msg[1]

    if stream:
        assert_ordered(
            types_of(events),
            "response.file_search_call.in_progress",
            "response.file_search_call.searching",
            "response.file_search_call.completed",
            "response.output_text.delta",
            "response.completed",
        )
        for e in events:
            if e.type.startswith("response.file_search_call."):
                assert e.item_id == fs.id and e.output_index == 0


@TWO_MODES
async def test_file_search_skips_a_failing_vector_store(create, inference, two_stores):
    two_stores.pages["vs_a"] = Boom("vector store vs_a is down")
    inference.script.tool_calls(ToolCall("call_fs", "knowledge_search", '{"query": "llama facts"}'))
    inference.script.text("Alpacas are smaller.")
    tool = OpenAIResponseInputToolFileSearch(vector_store_ids=["vs_a", "vs_b"])
    resp, _ = await create("Tell me llama facts", tools=[tool])

    assert two_stores.openai_search_vector_store.await_count == 2
    assert resp.status == "completed"
    fs = resp.output[0]
    assert isinstance(fs, OpenAIResponseOutputMessageFileSearchToolCall)
    assert [(r["file_id"], r["text"]) for r in fs.results] == [("file-b1", "Alpacas are smaller.")]
    assert "Alpacas are smaller." in summarize(inference.script.messages(1))[-1][1]


@pytest.mark.modes("nonstream-llama")
async def test_file_search_ranking_options_reach_vector_io_as_llama_stack_model(create, inference, two_stores):
    """vector_io's ``openai_search_vector_store`` is typed ``ranking_options: SearchRankingOptions`` and
    llama-stack's vector store mixin reads ``ranking_options.score_threshold``; llama-stack 0.2.12 passes
    the tool's ``SearchRankingOptions`` object through unchanged."""
    inference.script.tool_calls(ToolCall("call_fs", "knowledge_search", '{"query": "llama facts"}')).text("ok")
    ranking = SearchRankingOptions(ranker="default-2024-11-15", score_threshold=0.25)
    tool = OpenAIResponseInputToolFileSearch(vector_store_ids=["vs_a"], ranking_options=ranking)
    await create("Tell me llama facts", tools=[tool])

    got = two_stores.openai_search_vector_store.await_args.kwargs["ranking_options"]
    assert isinstance(got, SearchRankingOptions), f"ranking_options passed as {type(got).__name__}: {got!r}"
    assert got == ranking


# =================================================================================================
# MCP
# =================================================================================================

ALPHA = "http://alpha.test/sse"
BETA = "http://beta.test/sse"
ALPHA_HEADERS = {"Authorization": "Bearer alpha-token"}


def alpha_tool(**kw) -> OpenAIResponseInputToolMCP:
    return OpenAIResponseInputToolMCP(server_label="alpha", server_url=ALPHA, headers=ALPHA_HEADERS, **kw)


@pytest.fixture
def alpha(mcp):
    mcp.serve(
        ALPHA, mcp_tooldef("alpha_lookup", "Look a thing up on alpha", "query"), mcp_tooldef("alpha_other", "Other")
    )
    mcp.serve(BETA, mcp_tooldef("beta_lookup", "Look a thing up on beta", "query"))
    return mcp


async def test_mcp_list_and_call(create, inference, alpha, responses_store, stream):
    alpha.invoke.return_value = ToolInvocationResult(content=[TextContentItem(text="alpha says hi")])
    inference.script.tool_calls(ToolCall("call_m1", "alpha_lookup", '{"query": "llamas"}'))
    inference.script.text("Alpha said hi.")
    resp, events = await create("Ask alpha", tools=[alpha_tool()])

    alpha.list.assert_awaited_once_with(endpoint=ALPHA, headers=ALPHA_HEADERS)
    alpha.invoke.assert_awaited_once_with(
        endpoint=ALPHA, headers=ALPHA_HEADERS, tool_name="alpha_lookup", kwargs={"query": "llamas"}
    )
    tools = inference.script.call(0)["tools"]
    assert chat_tool_names(tools) == ["alpha_lookup", "alpha_other"]
    assert chat_tool(tools, "alpha_lookup")["description"] == "Look a thing up on alpha"
    assert chat_tool(tools, "alpha_lookup")["parameters"]["properties"]["query"]["type"] == "string"

    assert_output_types(
        resp.output, OpenAIResponseOutputMessageMCPListTools, OpenAIResponseOutputMessageMCPCall, OpenAIResponseMessage
    )
    listing, call, message = resp.output
    assert listing.server_label == "alpha"
    assert [t.name for t in listing.tools] == ["alpha_lookup", "alpha_other"]
    assert listing.tools[0].description == "Look a thing up on alpha"
    assert listing.tools[0].input_schema["properties"]["query"]["type"] == "string"
    assert (call.name, call.server_label, json.loads(call.arguments)) == ("alpha_lookup", "alpha", {"query": "llamas"})
    assert call.output == "alpha says hi"
    assert call.error is None
    assert isinstance(call, _compat.McpCallItem) and call.status == "completed"
    assert_text_message(message, "Alpha said hi.")
    assert summarize(inference.script.messages(1))[-1] == ("tool", "call_m1:alpha says hi")
    assert len(responses_store.stored()) == 1

    if stream:
        types = types_of(events)
        assert_ordered(
            types,
            "response.created",
            "response.mcp_list_tools.in_progress",
            "response.mcp_list_tools.completed",
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
            "response.output_text.delta",
            "response.completed",
        )
        assert "response.mcp_call.failed" not in types
        for e in events:
            if e.type.startswith("response.mcp_list_tools."):
                assert (e.item_id, e.output_index) == (listing.id, 0)
            elif e.type.startswith(("response.mcp_call.", "response.mcp_call_arguments.")):
                assert (e.item_id, e.output_index) == (call.id, 1)

        # the mcp_call item opens when the call runs (after the model's turn) and closes after it
        def item_event(i: int, kind: str) -> bool:
            return events[i].type == f"response.output_item.{kind}" and events[i].item.type == "mcp_call"

        opened = [i for i in range(len(events)) if item_event(i, "added")]
        closed = [i for i in range(len(events)) if item_event(i, "done")]
        assert len(opened) == len(closed) == 1
        window = types[opened[0] + 1 : closed[0]]
        assert window == [
            *["response.mcp_call_arguments.delta"] * len(of_type(events, "response.mcp_call_arguments.delta")),
            "response.mcp_call_arguments.done",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
        ]
        deltas = "".join(e.delta for e in of_type(events, "response.mcp_call_arguments.delta"))
        assert deltas == call.arguments
        assert of_type(events, "response.mcp_call_arguments.done")[0].arguments == call.arguments
        classes = {
            "response.mcp_list_tools.in_progress": OpenAIResponseObjectStreamResponseMcpListToolsInProgress,
            "response.mcp_list_tools.completed": OpenAIResponseObjectStreamResponseMcpListToolsCompleted,
            "response.mcp_call_arguments.delta": OpenAIResponseObjectStreamResponseMcpCallArgumentsDelta,
            "response.mcp_call_arguments.done": OpenAIResponseObjectStreamResponseMcpCallArgumentsDone,
            "response.mcp_call.in_progress": OpenAIResponseObjectStreamResponseMcpCallInProgress,
            "response.mcp_call.completed": OpenAIResponseObjectStreamResponseMcpCallCompleted,
        }
        for e in events:
            if e.type in classes:
                assert isinstance(e, classes[e.type]), (e.type, type(e).__mro__)


@TWO_MODES
@pytest.mark.parametrize(
    "allowed",
    [
        pytest.param(["alpha_lookup"], id="list"),
        pytest.param(AllowedToolsFilter(tool_names=["alpha_lookup"]), id="filter-object"),
        pytest.param({"tool_names": ["alpha_lookup"]}, id="filter-dict"),
    ],
)
async def test_mcp_allowed_tools_filter(create, inference, alpha, allowed):
    inference.script.text("ok")
    resp, _ = await create("Ask alpha", tools=[alpha_tool(allowed_tools=allowed)])
    assert chat_tool_names(inference.script.call(0)["tools"]) == ["alpha_lookup"]
    assert [t.name for t in resp.output[0].tools] == ["alpha_lookup"]


@TWO_MODES
async def test_two_mcp_servers_each_listed_and_called(create, inference, alpha, stream):
    alpha.invoke.side_effect = lambda endpoint, headers, tool_name, kwargs: ToolInvocationResult(
        content=f"{tool_name}@{endpoint}"
    )
    inference.script.tool_calls(
        ToolCall("call_a", "alpha_lookup", '{"query": "a"}'), ToolCall("call_b", "beta_lookup", '{"query": "b"}')
    )
    inference.script.text("Both answered.")
    beta = OpenAIResponseInputToolMCP(server_label="beta", server_url=BETA)
    resp, events = await create("Ask both", tools=[alpha_tool(allowed_tools=["alpha_lookup"]), beta])

    assert [c.kwargs for c in alpha.list.await_args_list] == [
        {"endpoint": ALPHA, "headers": ALPHA_HEADERS},
        {"endpoint": BETA, "headers": {}},
    ]
    assert chat_tool_names(inference.script.call(0)["tools"]) == ["alpha_lookup", "beta_lookup"]
    listings = [o for o in resp.output if isinstance(o, OpenAIResponseOutputMessageMCPListTools)]
    assert [(x.server_label, [t.name for t in x.tools]) for x in listings] == [
        ("alpha", ["alpha_lookup"]),
        ("beta", ["beta_lookup"]),
    ]
    calls = [o for o in resp.output if isinstance(o, OpenAIResponseOutputMessageMCPCall)]
    assert [(c.name, c.server_label, c.output) for c in calls] == [
        ("alpha_lookup", "alpha", f"alpha_lookup@{ALPHA}"),
        ("beta_lookup", "beta", f"beta_lookup@{BETA}"),
    ]
    assert [c.kwargs["endpoint"] for c in alpha.invoke.await_args_list] == [ALPHA, BETA]
    assert_text_message(resp.output[-1], "Both answered.")
    if stream:
        assert len(of_type(events, "response.mcp_list_tools.completed")) == 2
        assert len(of_type(events, "response.mcp_call.completed")) == 2


@pytest.mark.parametrize(
    "result, detail",
    [
        pytest.param(ToolInvocationResult(error_message="no such record", error_code=1), "no such record", id="both"),
        pytest.param(ToolInvocationResult(error_message="no such record"), "no such record", id="error_message"),
        # what llama-stack's invoke_mcp_tool returns for an MCP result with isError=True
        pytest.param(
            ToolInvocationResult(content=[TextContentItem(text="record not found")], error_code=1),
            "record not found",
            id="error_code",
        ),
    ],
)
async def test_mcp_tool_error_result(create, inference, alpha, responses_store, stream, result, detail):
    alpha.invoke.return_value = result
    inference.script.tool_calls(ToolCall("call_m1", "alpha_lookup", '{"query": "x"}'))
    inference.script.text("Sorry, that failed.")
    resp, events = await create("Ask alpha", tools=[alpha_tool()])

    assert resp.status == "completed"
    call = resp.output[1]
    assert isinstance(call, OpenAIResponseOutputMessageMCPCall)
    assert call.error, "an MCP tool error must be reported on the mcp_call item"
    # openai-python's shape on what is returned: an error object, and the item failed
    assert call.error["type"] == "mcp_tool_execution_error"
    assert detail in call.error["content"]
    assert call.status == "failed"
    assert call.output is None
    # llama-stack's record keeps llama-stack's string error
    stored_call = responses_store.stored()[0]["response_object"].output[1]
    assert isinstance(stored_call.error, str) and detail in stored_call.error
    assert_text_message(resp.output[2], "Sorry, that failed.")
    role, text = summarize(inference.script.messages(1))[-1]
    assert role == "tool" and text.startswith("call_m1:") and detail in text  # the model is told
    assert len(responses_store.stored()) == 1
    if stream:
        types = types_of(events)
        assert_ordered(types, "response.mcp_call.in_progress", "response.mcp_call.failed", "response.completed")
        assert "response.mcp_call.completed" not in types
        failed = of_type(events, "response.mcp_call.failed")[0]
        assert isinstance(failed, OpenAIResponseObjectStreamResponseMcpCallFailed)
        assert (failed.item_id, failed.output_index) == (call.id, 1)


async def test_mcp_tool_raising(impl_0212, inference, alpha, responses_store, stream):
    """A collaborator raising mid-turn fails only its call: the mcp_call item ends ``failed`` with an error
    naming the exception, the model is told, and the response goes on, completes and is stored (as
    llama-stack 0.2.12 does it). Non-streamed, nothing propagates."""
    alpha.invoke.side_effect = Boom("alpha is down")
    inference.script.tool_calls(ToolCall("call_m1", "alpha_lookup", '{"query": "x"}'))
    inference.script.text("Alpha is unavailable.")
    kw = {"input": "Ask alpha", "model": MODEL, "tools": [alpha_tool()], "stream": stream}
    final, events = await collect_0212(await impl_0212.create_openai_response(**kw))

    assert final.status == "completed", final.error
    assert final.error is None
    assert_output_types(
        final.output, OpenAIResponseOutputMessageMCPListTools, OpenAIResponseOutputMessageMCPCall, OpenAIResponseMessage
    )
    call = final.output[1]
    assert call.status == "failed"
    assert call.output is None
    assert call.error["type"] == "mcp_tool_execution_error"
    assert "Boom" in call.error["content"] and "alpha is down" in call.error["content"]
    assert_text_message(final.output[2], "Alpha is unavailable.")
    # the model is told what went wrong
    assert summarize(inference.script.messages(1))[-1] == ("tool", "call_m1:Error: Boom: alpha is down")
    assert inference.openai_chat_completion.await_count == 2
    stored = responses_store.stored()
    assert len(stored) == 1
    assert isinstance(stored[0]["response_object"].output[1].error, str)
    assert "alpha is down" in stored[0]["response_object"].output[1].error
    if stream:
        types = types_of(events)
        assert types[-1] == "response.completed"
        assert_ordered(types, "response.mcp_call.in_progress", "response.mcp_call.failed", "response.output_text.delta")
        assert "response.mcp_call.completed" not in types
        assert "response.failed" not in types
        failed = of_type(events, "response.mcp_call.failed")[0]
        assert (failed.item_id, failed.output_index) == (call.id, 1)


@pytest.mark.modes("nonstream-llama", "stream-openai")
async def test_mcp_list_tools_raising_leaves_the_server_out(impl_0212, inference, alpha, responses_store, stream):
    """An MCP listing that raises ends its mcp_list_tools item failed; the response goes on without that
    server's tools (the other server's tools are still offered)."""

    def listing(*args, endpoint=None, headers=None, **kwargs):
        if endpoint == ALPHA:
            raise Boom("alpha listing is down")
        return ListToolDefsResponse(data=alpha.servers[endpoint])

    alpha.list.side_effect = listing
    inference.script.text("Only beta is here.")
    beta = OpenAIResponseInputToolMCP(server_label="beta", server_url=BETA)
    final, events = await collect_0212(
        await impl_0212.create_openai_response(input="Ask both", model=MODEL, tools=[alpha_tool(), beta], stream=stream)
    )
    assert final.status == "completed", final.error
    assert chat_tool_names(inference.script.call(0)["tools"]) == ["beta_lookup"]
    listings = [o for o in final.output if isinstance(o, OpenAIResponseOutputMessageMCPListTools)]
    assert [(x.server_label, [t.name for t in x.tools]) for x in listings if x.server_label == "beta"] == [
        ("beta", ["beta_lookup"])
    ]
    assert_text_message(final.output[-1], "Only beta is here.")
    assert len(responses_store.stored()) == 1
    if stream:
        types = types_of(events)
        assert types.count("response.mcp_list_tools.failed") == 1
        assert types.count("response.mcp_list_tools.completed") == 1
        assert types[-1] == "response.completed"


@pytest.mark.modes("nonstream-llama", "stream-openai")
async def test_web_search_get_tool_raising_leaves_the_tool_out(
    impl_0212, inference, tool_groups_0212, tool_runtime, responses_store, stream, caplog
):
    """The host cannot serve web_search (``get_tool`` raises): the model is offered no such tool, a
    warning is logged, and the request goes on."""
    tool_groups_0212.get_tool.side_effect = Boom("no web_search here")
    inference.script.text("No search today.")
    with caplog.at_level("WARNING", logger="responses_rs"):
        final, _ = await collect_0212(
            await impl_0212.create_openai_response(
                input="Search llamas", model=MODEL, tools=[OpenAIResponseInputToolWebSearch()], stream=stream
            )
        )
    assert final.status == "completed", final.error
    tool_groups_0212.get_tool.assert_awaited_once_with("web_search")
    assert not inference.script.call(0)["tools"]
    tool_runtime.invoke_tool.assert_not_awaited()
    assert_output_types(final.output, OpenAIResponseMessage)
    assert_text_message(final.output[0], "No search today.")
    assert any("no web_search here" in r.getMessage() for r in caplog.records), caplog.text
    assert len(responses_store.stored()) == 1


async def test_a_bad_field_is_refused_before_the_previous_response_is_read(impl_0212, inference, responses_store):
    with pytest.raises(ValueError, match=r"^max_output_tokens: "):
        await impl_0212.create_openai_response(
            input="Hi", model=MODEL, previous_response_id="resp-earlier", max_output_tokens="lots"
        )
    assert responses_store.calls["get_response_object"] == []
    inference.openai_chat_completion.assert_not_awaited()


@pytest.mark.modes("nonstream-llama", "stream-openai")
async def test_tool_choice_naming_a_tool_the_host_cannot_serve_is_an_invalid_request(
    impl_0212, inference, tool_groups_0212, responses_store, stream
):
    """Only a tool_choice that names the left-out tool is an error: it is found after the lookup, so
    streamed it ends the stream `response.failed` with `invalid_request`; not streamed, a ValueError."""
    tool_groups_0212.get_tool.side_effect = Boom("no web_search here")
    create = impl_0212.create_openai_response(
        input="Search llamas",
        model=MODEL,
        tools=[OpenAIResponseInputToolWebSearch()],
        stream=stream,
        tool_choice={"type": "web_search"},
    )
    if not stream:
        with pytest.raises(ValueError, match=r"^tool_choice"):
            await create
    else:
        final, events = await collect_0212(await create)
        assert final.status == "failed"
        assert final.error.code == "invalid_request" and final.error.message.startswith("tool_choice")
    inference.openai_chat_completion.assert_not_awaited()
    assert responses_store.stored() == []


@pytest.mark.modes("nonstream-llama", "stream-openai")
async def test_web_search_invoke_raising_fails_only_the_call(
    impl_0212, inference, tool_runtime, responses_store, stream
):
    tool_runtime.invoke_tool.side_effect = Boom("search backend down")
    inference.script.tool_calls(ToolCall("call_ws", "web_search", '{"query": "llamas"}')).text("Could not search.")
    final, events = await collect_0212(
        await impl_0212.create_openai_response(
            input="Search llamas", model=MODEL, tools=[OpenAIResponseInputToolWebSearch()], stream=stream
        )
    )
    assert final.status == "completed", final.error
    assert_output_types(final.output, OpenAIResponseOutputMessageWebSearchToolCall, OpenAIResponseMessage)
    assert final.output[0].status == "failed"
    assert summarize(inference.script.messages(1))[-1] == ("tool", "call_ws:Error: Boom: search backend down")
    assert_text_message(final.output[1], "Could not search.")
    assert len(responses_store.stored()) == 1
    if stream:
        assert types_of(events)[-1] == "response.completed"


# =================================================================================================
# previous_response_id after server-side tools (llama-stack 0.2.12 itself fails with AttributeError)
# =================================================================================================


@pytest.mark.parametrize("tool_kind", ["web_search", "file_search", "mcp"])
async def test_previous_response_after_server_side_tool(
    create, impl_0212, inference, alpha, two_stores, responses_store, stream, tool_kind
):
    alpha.invoke.return_value = ToolInvocationResult(content="alpha result")
    tool, call = {
        "web_search": (OpenAIResponseInputToolWebSearch(), ToolCall("call_t", "web_search", '{"query": "q"}')),
        "file_search": (
            OpenAIResponseInputToolFileSearch(vector_store_ids=["vs_a"]),
            ToolCall("call_t", "knowledge_search", '{"query": "q"}'),
        ),
        "mcp": (alpha_tool(), ToolCall("call_t", "alpha_lookup", '{"query": "q"}')),
    }[tool_kind]
    inference.script.tool_calls(call).text("First answer.").text("Second answer.").text("Third answer.")

    r1, _ = await create("First question", tools=[tool])
    tool_item_types = [o.type for o in r1.output[:-1]]
    assert tool_item_types  # the server-side tool left its item(s) in the output

    r2, _ = await create("Second question", previous_response_id=r1.id)
    assert r2.status == "completed", r2.error
    assert_text_message(r2.output[0], "Second answer.")
    assert conversation(inference.script.messages(2)) == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]
    # r2 is stored and readable, with r1's items in its input
    assert dump(await impl_0212.get_openai_response(r2.id)) == dump(r2)
    items = await impl_0212.list_openai_response_input_items(r2.id, order=Order.asc)
    summary = item_summary(items.data)
    assert summary[0] == ("user", "First question")
    assert ("assistant", "First answer.") in summary
    assert summary[-1] == ("user", "Second question")
    if tool_kind != "mcp":  # llama-stack 0.2.12's input items have no MCP types; the others are kept
        assert f"{tool_kind}_call" in [t for t, _ in summary]

    r3, _ = await create("Third question", previous_response_id=r2.id)
    assert_text_message(r3.output[0], "Third answer.")
    assert conversation(inference.script.messages(3)) == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
        ("assistant", "Second answer."),
        ("user", "Third question"),
    ]
    assert len(responses_store.stored()) == 3


# =================================================================================================
# classes of what comes back
# =================================================================================================


@STREAM_MODES
async def test_stream_events_are_llama_stack_classes(create, inference):
    inference.script.tool_calls(ToolCall("call_ws", "web_search", '{"query": "llamas"}')).text("Llamas.")
    resp, events = await create("Llamas?", tools=[OpenAIResponseInputToolWebSearch()])
    assert isinstance(events[0], OpenAIResponseObjectStreamResponseCreated)
    assert isinstance(events[-1], OpenAIResponseObjectStreamResponseCompleted)
    assert events[-1].response.model_dump() == resp.model_dump()
    for e in of_type(events, "response.output_text.delta"):
        assert isinstance(e, OpenAIResponseObjectStreamResponseOutputTextDelta)
    for e in events:
        dumped = json.loads(e.model_dump_json())
        assert dumped["type"] == e.type
        assert dumped["sequence_number"] == e.sequence_number
        if hasattr(e, "response"):
            assert isinstance(e.response, OpenAIResponseObject)
            assert OpenAIResponseObject.model_validate(dumped["response"]).id == resp.id
