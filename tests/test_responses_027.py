"""Behavioural contract of ``responses_rs.OpenAIResponsesImpl`` as a drop-in for llama-stack 0.2.7's
``OpenAIResponsesImpl``.

Every scenario runs streamed and non-streamed, with inference results built from llama-stack classes
and from openai SDK classes (the ``mode`` parametrisation of conftest.py).  Input items / tools are
additionally parametrised over llama-stack pydantic objects, openai SDK objects and plain dicts where
that is cheap (``style``).

Conventions checked throughout:
* validation errors (bad role / part / tool / item / previous_response_id) raise ``ValueError`` from
  ``await create_openai_response(...)`` itself, streamed or not, before inference is called and
  before anything is stored (llama-stack's server turns that into an HTTP 400);
* failures after the request was accepted (inference or a tool raising) propagate unchanged when not
  streaming, and become exactly one terminal ``response.failed`` event when streaming; nothing stored.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
from typing import Any, Literal
from unittest.mock import AsyncMock, patch

import pytest

if importlib.metadata.version("llama_stack") != "0.2.7":
    pytest.skip("llama-stack 0.2.7 contract suite (installed: other version)", allow_module_level=True)

from conftest import (  # noqa: E402
    MODEL,
    SEARCH_RESULT_TEXT,
    STORE_PREFIX,
    WEB_SEARCH_TOOLDEF,
    ToolCall,
    assert_full_openai_params,
    assert_llama_stack_record_params,
    assert_rejected_stream,
    bind_call,
    collect,
    impl_class,
    ls_dump,
    make_inference,
    make_tool_groups,
    make_tool_runtime,
    tc_delta,
    types_of,
)
from llama_stack.apis.agents.openai_responses import (  # noqa: E402
    OpenAIResponseInputFunctionToolCallOutput,
    OpenAIResponseInputItemList,
    OpenAIResponseInputMessageContentImage,
    OpenAIResponseInputMessageContentText,
    OpenAIResponseInputToolFileSearch,
    OpenAIResponseInputToolFunction,
    OpenAIResponseInputToolWebSearch,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseOutputMessageContentOutputText,
    OpenAIResponseOutputMessageFunctionToolCall,
    OpenAIResponseOutputMessageWebSearchToolCall,
)
from llama_stack.apis.inference.inference import (  # noqa: E402
    OpenAIAssistantMessageParam,
    OpenAIChatCompletionContentPartImageParam,
    OpenAIChatCompletionContentPartTextParam,
    OpenAIDeveloperMessageParam,
    OpenAIImageURL,
    OpenAISystemMessageParam,
    OpenAIToolMessageParam,
    OpenAIUserMessageParam,
)
from llama_stack.apis.tools import ToolInvocationResult  # noqa: E402
from llama_stack.providers.inline.agents.meta_reference.openai_responses import (  # noqa: E402
    OpenAIResponsePreviousResponseWithInputItems,
)
from llama_stack.providers.utils.kvstore.sqlite.sqlite import SqliteKVStoreImpl  # noqa: E402
from openai.types.responses import (  # noqa: E402
    EasyInputMessage,
    FileSearchTool,
    FunctionTool,
    ResponseFunctionToolCall,
    ResponseInputAudio,
    ResponseInputImage,
    ResponseInputText,
    ResponseOutputMessage,
    ResponseOutputText,
    WebSearchTool,
)
from openai.types.responses.response_input_item import FunctionCallOutput  # noqa: E402
from openai.types.responses.tool import CodeInterpreter, Mcp  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from stream_validator import validate_stream  # noqa: E402

STYLES = ("llama", "openai", "dict")
IMG = "https://example.com/llama.png"
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "City name"}},
    "required": ["city"],
}
TIME_PARAMS = {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}


class Boom(RuntimeError):
    """An exception type nobody else raises, so identity/propagation checks are unambiguous."""


# =================================================================================================
# building inputs in the three styles
# =================================================================================================


def message(style: str, role: str, content: Any, *, omit_type: bool = False):
    """A Responses input message. ``content``: str or list of part objects already in ``style``."""
    if style == "llama":
        return OpenAIResponseMessage(role=role, content=content)
    if style == "openai":
        if role == "assistant" and not isinstance(content, str):
            return ResponseOutputMessage(
                id="msg_prev", role="assistant", status="completed", type="message", content=content
            )
        return EasyInputMessage(role=role, content=content, type="message")
    d = {"role": role, "content": content}
    if not omit_type:
        d["type"] = "message"
    return d


def input_text(style: str, text: str):
    if style == "llama":
        return OpenAIResponseInputMessageContentText(text=text)
    if style == "openai":
        return ResponseInputText(text=text, type="input_text")
    return {"type": "input_text", "text": text}


def output_text(style: str, text: str):
    if style == "llama":
        return OpenAIResponseOutputMessageContentOutputText(text=text)
    if style == "openai":
        return ResponseOutputText(text=text, type="output_text", annotations=[])
    return {"type": "output_text", "text": text, "annotations": []}


def input_image(style: str, url: str, detail: str):
    if style == "llama":
        return OpenAIResponseInputMessageContentImage(image_url=url, detail=detail)
    if style == "openai":
        return ResponseInputImage(image_url=url, detail=detail, type="input_image")
    return {"type": "input_image", "image_url": url, "detail": detail}


def function_call_item(style: str, call_id: str, name: str, arguments: str, item_id: str = "fc_prev1"):
    if style == "llama":
        return OpenAIResponseOutputMessageFunctionToolCall(
            call_id=call_id, name=name, arguments=arguments, id=item_id, status="completed"
        )
    if style == "openai":
        return ResponseFunctionToolCall(
            call_id=call_id, name=name, arguments=arguments, id=item_id, status="completed", type="function_call"
        )
    return {
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "id": item_id,
        "status": "completed",
    }


def function_call_output(style: str, call_id: str, output: str):
    if style == "llama":
        return OpenAIResponseInputFunctionToolCallOutput(call_id=call_id, output=output)
    if style == "openai":
        return FunctionCallOutput(call_id=call_id, output=output, type="function_call_output")
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def function_tool(style: str, name: str, parameters: dict, description: str | None = None):
    if style == "llama":
        return OpenAIResponseInputToolFunction(name=name, description=description, parameters=parameters)
    if style == "openai":
        return FunctionTool(name=name, description=description, parameters=parameters, strict=None, type="function")
    return {"type": "function", "name": name, "description": description, "parameters": parameters}


def web_search_tool(style: str):
    if style == "llama":
        return OpenAIResponseInputToolWebSearch()
    if style == "openai":
        return WebSearchTool(type="web_search")
    return {"type": "web_search"}


# =================================================================================================
# normalising what inference received
# =================================================================================================


def text_of(content) -> str:
    """Text of a chat message content given as str or a list of text parts."""
    if isinstance(content, str):
        return content
    assert isinstance(content, list), f"unexpected content {content!r}"
    for part in content:
        assert isinstance(part, OpenAIChatCompletionContentPartTextParam), f"non-text part {part!r}"
    return "".join(p.text for p in content)


def as_dict(obj) -> dict:
    if isinstance(obj, BaseModel):
        return obj.model_dump()
    assert isinstance(obj, dict), f"unexpected {obj!r}"
    return obj


ROLE_CLASSES = {
    "user": OpenAIUserMessageParam,
    "system": OpenAISystemMessageParam,
    "developer": OpenAIDeveloperMessageParam,
    "assistant": OpenAIAssistantMessageParam,
    "tool": OpenAIToolMessageParam,
}


def summarize(messages: list) -> list[tuple[str, str]]:
    """[(role, text)] with the llama-stack class checked for every role."""
    out = []
    for m in messages:
        cls = ROLE_CLASSES.get(getattr(m, "role", None))
        assert cls is not None and type(m) is cls, f"message {m!r} is not the llama-stack class for its role"
        if isinstance(m, OpenAIAssistantMessageParam) and m.tool_calls:
            out.append(
                (
                    "assistant",
                    "tool_calls:" + ",".join(f"{t.id}:{t.function.name}:{t.function.arguments}" for t in m.tool_calls),
                )
            )
        elif isinstance(m, OpenAIToolMessageParam):
            out.append(("tool", f"{m.tool_call_id}:{text_of(m.content)}"))
        else:
            out.append((m.role, text_of(m.content)))
    return out


def assert_tool_calls_message(msg, expected: list[tuple[str, str, str]]):
    assert type(msg) is OpenAIAssistantMessageParam, f"expected an assistant message, got {msg!r}"
    assert msg.tool_calls, f"assistant message without tool_calls: {msg!r}"
    got = [(t.id, t.function.name, t.function.arguments) for t in msg.tool_calls]
    assert got == expected
    assert all(t.type == "function" for t in msg.tool_calls)
    assert msg.content in (None, "", []), f"unexpected assistant content {msg.content!r}"


def assert_tool_message(msg, call_id: str) -> str:
    assert type(msg) is OpenAIToolMessageParam, f"expected a tool message, got {msg!r}"
    assert msg.tool_call_id == call_id
    return text_of(msg.content)


def chat_tool(entry) -> dict:
    d = as_dict(entry)
    assert d.get("type") == "function", d
    fn = as_dict(d["function"])
    return fn


# =================================================================================================
# fixtures / helpers
# =================================================================================================


@pytest.fixture
def create(impl, stream, collect):
    async def _create(input, **kw):
        kw.setdefault("model", MODEL)
        result = await asyncio.wait_for(impl.create_openai_response(input=input, stream=stream, **kw), 10)
        if stream:
            assert not isinstance(result, OpenAIResponseObject), "stream=True must return an async iterator of events"
        else:
            assert isinstance(result, OpenAIResponseObject), f"expected OpenAIResponseObject, got {type(result)!r}"
        return await collect(result)

    return _create


async def assert_stored(kvstore, impl, *responses: OpenAIResponseObject, temperature: float | None = None):
    """Exactly one kvstore.set per response, under openai_responses:{id}, readable by both sides.

    The record is llama-stack's shape (its fields only, its values of the request parameters); what
    was returned carries the full OpenAI object and equals the record on llama-stack's fields."""
    assert kvstore.set_keys() == [f"{STORE_PREFIX}{r.id}" for r in responses]
    for r, value in zip(responses, kvstore.set_values(), strict=True):
        assert isinstance(value, str)
        stored = OpenAIResponsePreviousResponseWithInputItems.model_validate_json(value)
        assert ls_dump(stored.response) == ls_dump(r)
        raw = json.loads(value)["response"]
        assert set(raw) <= set(OpenAIResponseObject.model_fields), set(raw) - set(OpenAIResponseObject.model_fields)
        assert_llama_stack_record_params(raw, temperature)
        assert_full_openai_params(r, 1.0 if temperature is None else temperature)
        got = await impl.get_openai_response(r.id)
        assert isinstance(got, OpenAIResponseObject)
        assert ls_dump(got) == ls_dump(r)


def assert_text_response(resp: OpenAIResponseObject, text: str, *, index: int = 0, n_outputs: int | None = None):
    assert isinstance(resp, OpenAIResponseObject)
    assert resp.status == "completed"
    assert resp.model == MODEL
    assert resp.id
    if n_outputs is not None:
        assert len(resp.output) == n_outputs, resp.output
    item = resp.output[index]
    assert isinstance(item, OpenAIResponseMessage), item
    assert item.role == "assistant"
    assert item.id and item.id.startswith("msg_"), item.id
    assert item.status == "completed"
    assert isinstance(item.content, list) and len(item.content) == 1
    assert isinstance(item.content[0], OpenAIResponseOutputMessageContentOutputText)
    assert item.content[0].text == text


def of_type(events, t: str) -> list:
    return [e for e in events if e.type == t]


# =================================================================================================
# construction / lookup
# =================================================================================================


async def test_constructor_positional_and_keyword(kvstore):
    cls = impl_class()
    inf, groups, runtime = make_inference(), make_tool_groups(), make_tool_runtime()
    by_position = cls(kvstore, inf, groups, runtime)
    by_keyword = cls(persistence_store=kvstore, inference_api=inf, tool_groups_api=groups, tool_runtime_api=runtime)
    for impl in (by_position, by_keyword):
        inf.script.text("ok")
        resp = await impl.create_openai_response(input="hi", model=MODEL)
        assert isinstance(resp, OpenAIResponseObject)
        assert ls_dump(await impl.get_openai_response(resp.id)) == ls_dump(resp)


async def test_get_unknown_id_raises_value_error(kvstore):
    impl = impl_class()(kvstore, make_inference(), make_tool_groups(), make_tool_runtime())
    with pytest.raises(ValueError, match="resp-does-not-exist"):
        await impl.get_openai_response("resp-does-not-exist")


# =================================================================================================
# input conversion
# =================================================================================================


async def test_string_input(create, inference, kvstore, impl, stream):
    inference.script.text("Hello there!", chunks=["Hel", "lo ", "there!"])
    resp, events = await create("Hi")

    assert inference.openai_chat_completion.await_count == 1
    call = inference.script.call(0)
    assert call["model"] == MODEL
    assert call["messages"] == [OpenAIUserMessageParam(content="Hi")]
    assert "tools" in call and call["tools"] is None
    assert call["stream"] is stream
    assert "temperature" in call and call["temperature"] is None
    assert_text_response(resp, "Hello there!", n_outputs=1)
    await assert_stored(kvstore, impl, resp)


async def test_temperature_passed_through(create, inference, stream):
    inference.script.text("warm")
    await create("Hi", temperature=0.25)
    assert inference.script.call(0)["temperature"] == 0.25


@pytest.mark.parametrize("style", STYLES)
async def test_roles_map_to_message_classes(create, inference, style):
    inference.script.text("done")
    items = [
        message(style, "system", "You are terse."),
        message(style, "developer", "Answer in English.", omit_type=True),
        message(style, "user", "What is a llama?"),
        message(style, "assistant", "An animal."),
        message(style, "user", "Which family?"),
    ]
    resp, _ = await create(items)
    assert inference.script.messages(0) == [
        OpenAISystemMessageParam(content="You are terse."),
        OpenAIDeveloperMessageParam(content="Answer in English."),
        OpenAIUserMessageParam(content="What is a llama?"),
        OpenAIAssistantMessageParam(content="An animal."),
        OpenAIUserMessageParam(content="Which family?"),
    ]
    assert_text_response(resp, "done", n_outputs=1)


@pytest.mark.parametrize("style", STYLES)
async def test_content_parts(create, inference, style):
    inference.script.text("Yes, a llama.")
    items = [
        message(style, "user", [input_text(style, "What is in this image?"), input_image(style, IMG, "high")]),
        message(style, "assistant", [output_text(style, "It is a llama.")]),
        message(style, "user", "Are you sure?"),
    ]
    resp, _ = await create(items)
    assert inference.script.messages(0) == [
        OpenAIUserMessageParam(
            content=[
                OpenAIChatCompletionContentPartTextParam(text="What is in this image?"),
                OpenAIChatCompletionContentPartImageParam(image_url=OpenAIImageURL(url=IMG, detail="high")),
            ]
        ),
        OpenAIAssistantMessageParam(content=[OpenAIChatCompletionContentPartTextParam(text="It is a llama.")]),
        OpenAIUserMessageParam(content="Are you sure?"),
    ]
    assert_text_response(resp, "Yes, a llama.")


@pytest.mark.parametrize("style", STYLES)
async def test_function_call_and_output_items(create, inference, style):
    inference.script.text("It is sunny in Paris.")
    items = [
        message(style, "user", "What's the weather in Paris?"),
        function_call_item(style, "call_1", "get_weather", '{"city": "Paris"}'),
        function_call_output(style, "call_1", "sunny, 24C"),
    ]
    resp, _ = await create(items)
    msgs = inference.script.messages(0)
    assert len(msgs) == 3
    assert msgs[0] == OpenAIUserMessageParam(content="What's the weather in Paris?")
    assert_tool_calls_message(msgs[1], [("call_1", "get_weather", '{"city": "Paris"}')])
    assert assert_tool_message(msgs[2], "call_1") == "sunny, 24C"
    assert_text_response(resp, "It is sunny in Paris.")


# =================================================================================================
# previous_response_id
# =================================================================================================


async def test_previous_response_chain_order(create, inference, kvstore, impl):
    inference.script.text("B").text("D").text("F")
    r1, _ = await create("A")
    r2, _ = await create("C", previous_response_id=r1.id)
    r3, _ = await create([OpenAIResponseMessage(role="user", content="E")], previous_response_id=r2.id)

    assert summarize(inference.script.messages(1)) == [("user", "A"), ("assistant", "B"), ("user", "C")]
    assert summarize(inference.script.messages(2)) == [
        ("user", "A"),
        ("assistant", "B"),
        ("user", "C"),
        ("assistant", "D"),
        ("user", "E"),
    ]
    assert_text_response(r3, "F", n_outputs=1)
    await assert_stored(kvstore, impl, r1, r2, r3)


@pytest.mark.parametrize("style", STYLES)
async def test_previous_response_function_call_roundtrip(create, inference, tool_runtime, style):
    tools = [function_tool(style, "get_weather", WEATHER_PARAMS, "Get the weather")]
    inference.script.tool_calls(ToolCall("call_w1", "get_weather", '{"city": "Paris"}'))
    inference.script.text("It is sunny.")
    r1, _ = await create("What's the weather in Paris?", tools=tools)
    assert [type(o) for o in r1.output] == [OpenAIResponseOutputMessageFunctionToolCall]

    r2, _ = await create(
        [function_call_output(style, "call_w1", "sunny")],
        previous_response_id=r1.id,
        tools=tools,
    )
    assert summarize(inference.script.messages(1)) == [
        ("user", "What's the weather in Paris?"),
        ("assistant", 'tool_calls:call_w1:get_weather:{"city": "Paris"}'),
        ("tool", "call_w1:sunny"),
    ]
    assert_text_response(r2, "It is sunny.", n_outputs=1)
    tool_runtime.invoke_tool.assert_not_awaited()


async def test_unknown_previous_response_id(impl, inference, kvstore, stream):
    kw = {"input": "hi", "model": MODEL, "previous_response_id": "resp-missing-123", "stream": stream}
    if stream:
        _, events = await collect(await impl.create_openai_response(**kw), validate=False)
        assert_rejected_stream(events, "previous_response_not_found", "resp-missing-123")
    else:
        with pytest.raises(ValueError, match="resp-missing-123"):
            await impl.create_openai_response(**kw)
    inference.openai_chat_completion.assert_not_awaited()
    assert kvstore.set_calls == []


async def test_create_goes_through_prepend_helper(create, impl, inference):
    """create must call the Python-visible _prepend_previous_response and use what it returns."""
    inference.script.text("ok")
    patched = AsyncMock(return_value=[OpenAIResponseMessage(role="user", content="from the patched helper")])
    with patch.object(impl, "_prepend_previous_response", patched):
        await create("original input", previous_response_id="resp-anything")
    patched.assert_awaited_once()
    args = bind_call(lambda input, previous_response_id=None: None, patched.await_args)
    assert args["input"] == "original input"
    assert args["previous_response_id"] == "resp-anything"
    assert inference.script.messages(0) == [OpenAIUserMessageParam(content="from the patched helper")]


async def test_create_goes_through_get_previous_helper(create, impl, inference):
    """create must look previous responses up through the Python-visible _get_previous_response_with_input."""
    inference.script.text("new answer")
    previous = OpenAIResponsePreviousResponseWithInputItems(
        input_items=OpenAIResponseInputItemList(
            data=[
                OpenAIResponseMessage(
                    role="user", content=[OpenAIResponseInputMessageContentText(text="old question")], id="msg_old"
                )
            ]
        ),
        response=OpenAIResponseObject(
            created_at=1,
            id="resp-virtual",
            model=MODEL,
            status="completed",
            output=[
                OpenAIResponseMessage(
                    id="msg_oldans",
                    role="assistant",
                    status="completed",
                    content=[OpenAIResponseOutputMessageContentOutputText(text="old answer")],
                )
            ],
        ),
    )
    patched = AsyncMock(return_value=previous)
    with patch.object(impl, "_get_previous_response_with_input", patched):
        await create("new question", previous_response_id="resp-virtual")
    patched.assert_awaited_once()
    args = bind_call(lambda id: None, patched.await_args)
    assert args["id"] == "resp-virtual"
    assert summarize(inference.script.messages(0)) == [
        ("user", "old question"),
        ("assistant", "old answer"),
        ("user", "new question"),
    ]


# =================================================================================================
# store
# =================================================================================================


async def test_store_false_writes_nothing(create, impl, inference, kvstore):
    inference.script.text("not stored")
    resp, _ = await create("Hi", store=False)
    assert_text_response(resp, "not stored")
    assert kvstore.set_calls == []
    with pytest.raises(ValueError):
        await impl.get_openai_response(resp.id)


async def test_kvstore_called_with_keywords(create, inference, kvstore):
    """llama-stack calls persistence_store.get(key=...) / .set(key=..., value=...); other KVStore
    implementations (and wrappers around them) may rely on those keyword names."""
    inference.script.text("stored").text("again")
    resp, _ = await create("Hi")
    assert len(kvstore.set_calls) == 1
    args, kwargs = kvstore.set_calls[0]
    assert args == (), "persistence_store.set must be called with key=/value= keywords, like llama-stack"
    assert set(kwargs) == {"key", "value"}
    assert kwargs["key"] == f"{STORE_PREFIX}{resp.id}"
    raw = await SqliteKVStoreImpl.get(kvstore, key=kwargs["key"])
    assert raw == kwargs["value"]

    kvstore.get_calls.clear()
    await create("More", previous_response_id=resp.id)
    assert kvstore.get_calls == [((), {"key": f"{STORE_PREFIX}{resp.id}"})]
    assert len(kvstore.set_calls) == 2


# =================================================================================================
# function tools
# =================================================================================================


@pytest.mark.parametrize("style", STYLES)
async def test_function_tools_return_function_calls(create, inference, tool_runtime, kvstore, impl, style, stream):
    tools = [
        function_tool(style, "get_weather", WEATHER_PARAMS, "Get the weather"),
        function_tool(style, "get_time", TIME_PARAMS, "Get the time"),
    ]
    inference.script.tool_calls(
        ToolCall("call_a", "get_weather", '{"city": "Paris"}'),
        ToolCall("call_b", "get_time", '{"tz": "UTC"}'),
        interleave=True,
    )
    resp, events = await create("Weather and time?", tools=tools)

    assert inference.openai_chat_completion.await_count == 1
    sent = [chat_tool(t) for t in inference.script.call(0)["tools"]]
    assert [(t["name"], t.get("description"), t.get("parameters")) for t in sent] == [
        ("get_weather", "Get the weather", WEATHER_PARAMS),
        ("get_time", "Get the time", TIME_PARAMS),
    ]
    tool_runtime.invoke_tool.assert_not_awaited()
    assert resp.status == "completed"
    assert [type(o) for o in resp.output] == [OpenAIResponseOutputMessageFunctionToolCall] * 2
    got = [(o.call_id, o.name, o.arguments, o.status) for o in resp.output]
    assert got == [
        ("call_a", "get_weather", '{"city": "Paris"}', "completed"),
        ("call_b", "get_time", '{"tz": "UTC"}', "completed"),
    ]
    assert all(o.id.startswith("fc_") for o in resp.output)
    assert len({o.id for o in resp.output}) == 2
    await assert_stored(kvstore, impl, resp)


async def test_streamed_tool_call_deltas_are_aggregated(create, inference, tool_runtime):
    """Aggregation by index: missing type, None and "" argument deltas, interleaved parallel calls,
    several deltas in one chunk."""
    tools = [
        OpenAIResponseInputToolFunction(name="get_weather", parameters=WEATHER_PARAMS),
        OpenAIResponseInputToolFunction(name="get_time", parameters=TIME_PARAMS),
    ]
    inference.script.raw(
        [
            {"role": "assistant", "content": None},
            {"tool_calls": [tc_delta(0, id="call_a", name="get_weather", arguments=None)]},
            {"tool_calls": [tc_delta(1, id="call_b", name="get_time", arguments="", type=None)]},
            {"tool_calls": [tc_delta(0, arguments='{"city"', type=None)]},
            {"tool_calls": [tc_delta(1, arguments=None, type=None)]},
            {"tool_calls": [tc_delta(0, arguments="", type=None)]},
            {
                "tool_calls": [
                    tc_delta(1, arguments='{"tz": "UTC"}', type=None),
                    tc_delta(0, arguments=': "Paris"}', type=None),
                ]
            },
            {"finish_reason": "tool_calls"},
        ]
    )
    resp, _ = await create("Weather and time?", tools=tools)
    got = [(o.type, o.call_id, o.name, o.arguments) for o in resp.output]
    assert got == [
        ("function_call", "call_a", "get_weather", '{"city": "Paris"}'),
        ("function_call", "call_b", "get_time", '{"tz": "UTC"}'),
    ]
    tool_runtime.invoke_tool.assert_not_awaited()


async def test_mixed_tools_function_call_is_not_executed(create, inference, tool_runtime):
    """With web_search AND a function tool, a call of the function is returned to the client, not run."""
    tools = [
        OpenAIResponseInputToolWebSearch(),
        OpenAIResponseInputToolFunction(name="get_weather", parameters=WEATHER_PARAMS),
    ]
    inference.script.tool_calls(ToolCall("call_a", "get_weather", '{"city": "Paris"}'))
    resp, _ = await create("Weather?", tools=tools)
    tool_runtime.invoke_tool.assert_not_awaited()
    assert inference.openai_chat_completion.await_count == 1
    assert [(o.type, o.call_id, o.arguments) for o in resp.output] == [("function_call", "call_a", '{"city": "Paris"}')]


# =================================================================================================
# web_search
# =================================================================================================


@pytest.mark.parametrize("style", STYLES)
async def test_web_search_round_trip(create, inference, tool_groups, tool_runtime, kvstore, impl, style, stream):
    inference.script.tool_calls(ToolCall("call_ws1", "web_search", '{"query": "llama family"}'))
    inference.script.text("Llamas are camelids.")
    resp, events = await create("What family are llamas in?", tools=[web_search_tool(style)], temperature=0.5)

    tool_groups.get_tool.assert_awaited()
    assert bind_call(lambda tool_name: None, tool_groups.get_tool.await_args)["tool_name"] == "web_search"
    first = inference.script.call(0)
    [ws_def] = [chat_tool(t) for t in first["tools"]]
    assert ws_def["name"] == "web_search"
    assert ws_def.get("description") == WEB_SEARCH_TOOLDEF.description
    params = ws_def["parameters"]
    assert params["type"] == "object"
    assert params["properties"]["query"]["type"] == "string"
    assert params.get("required") == ["query"]

    tool_runtime.invoke_tool.assert_awaited_once()
    assert bind_call(lambda tool_name, kwargs: None, tool_runtime.invoke_tool.await_args) == {
        "tool_name": "web_search",
        "kwargs": {"query": "llama family"},
    }

    assert inference.openai_chat_completion.await_count == 2
    second = inference.script.call(1)
    assert second["model"] == MODEL
    assert second["stream"] is stream
    assert second["temperature"] == 0.5
    msgs = second["messages"]
    assert msgs[:-2] == first["messages"]
    assert summarize(first["messages"]) == [("user", "What family are llamas in?")]
    assert_tool_calls_message(msgs[-2], [("call_ws1", "web_search", '{"query": "llama family"}')])
    assert assert_tool_message(msgs[-1], "call_ws1") == SEARCH_RESULT_TEXT

    assert len(resp.output) == 2
    ws = resp.output[0]
    assert isinstance(ws, OpenAIResponseOutputMessageWebSearchToolCall)
    assert ws.status == "completed"
    assert ws.id
    assert_text_response(resp, "Llamas are camelids.", index=1, n_outputs=2)
    await assert_stored(kvstore, impl, resp, temperature=0.5)


async def test_web_search_multiple_rounds(create, inference, tool_runtime):
    """The model may search again after seeing results: tools stay available and the loop continues."""
    tools = [OpenAIResponseInputToolWebSearch()]
    inference.script.tool_calls(ToolCall("call_1", "web_search", '{"query": "llamas"}'))
    inference.script.tool_calls(ToolCall("call_2", "web_search", '{"query": "alpacas"}'))
    inference.script.text("Both are camelids.")
    resp, _ = await create("Compare llamas and alpacas", tools=tools)

    assert inference.openai_chat_completion.await_count == 3
    assert inference.script.call(1)["tools"], "tools must still be offered after a web_search round"
    assert [
        bind_call(lambda tool_name, kwargs: None, c)["kwargs"] for c in tool_runtime.invoke_tool.await_args_list
    ] == [
        {"query": "llamas"},
        {"query": "alpacas"},
    ]
    assert summarize(inference.script.messages(2)) == [
        ("user", "Compare llamas and alpacas"),
        ("assistant", 'tool_calls:call_1:web_search:{"query": "llamas"}'),
        ("tool", f"call_1:{SEARCH_RESULT_TEXT}"),
        ("assistant", 'tool_calls:call_2:web_search:{"query": "alpacas"}'),
        ("tool", f"call_2:{SEARCH_RESULT_TEXT}"),
    ]
    assert [o.type for o in resp.output] == ["web_search_call", "web_search_call", "message"]
    assert [o.status for o in resp.output[:2]] == ["completed", "completed"]
    assert_text_response(resp, "Both are camelids.", index=2)


async def test_web_search_loop_is_bounded(create, inference, tool_runtime):
    inference.script.tool_calls(ToolCall("call_x", "web_search", '{"query": "again"}'))
    inference.script.repeat_last = True
    resp, _ = await create("Search forever", tools=[OpenAIResponseInputToolWebSearch()])
    calls = inference.openai_chat_completion.await_count
    assert 3 <= calls <= 10, f"expected the tool loop to run but stop by 10 inference rounds, got {calls}"
    assert resp.status in ("completed", "incomplete")
    assert resp.output and all(o.type == "web_search_call" for o in resp.output)


async def test_web_search_failure_result_marks_call_failed(create, inference, tool_runtime):
    tool_runtime.invoke_tool.return_value = ToolInvocationResult(
        content=None, error_message="search backend down", error_code=503
    )
    inference.script.tool_calls(ToolCall("call_f", "web_search", '{"query": "llamas"}'))
    inference.script.text("Sorry, search failed.")
    resp, _ = await create("Search", tools=[OpenAIResponseInputToolWebSearch()])

    assert [o.type for o in resp.output] == ["web_search_call", "message"]
    assert resp.output[0].status == "failed"
    assert_text_response(resp, "Sorry, search failed.", index=1)
    msgs = inference.script.messages(1)
    assert_tool_calls_message(msgs[-2], [("call_f", "web_search", '{"query": "llamas"}')])
    assert "search backend down" in assert_tool_message(msgs[-1], "call_f")


@pytest.mark.parametrize(
    "bad_args", ['{"query": ', "not json at all", "[1, 2]"], ids=["truncated", "garbage", "not-an-object"]
)
async def test_malformed_web_search_arguments_do_not_crash(create, inference, tool_runtime, bad_args):
    inference.script.tool_calls(ToolCall("call_bad", "web_search", bad_args))
    inference.script.text("Let me try differently.")
    resp, _ = await create("Search", tools=[OpenAIResponseInputToolWebSearch()])

    tool_runtime.invoke_tool.assert_not_awaited()
    assert resp.status == "completed"
    assert [o.type for o in resp.output] == ["web_search_call", "message"]
    assert resp.output[0].status == "failed"
    msgs = inference.script.messages(1)
    assert_tool_calls_message(msgs[-2], [("call_bad", "web_search", bad_args)])
    note = assert_tool_message(msgs[-1], "call_bad")
    assert note.strip(), "the model must be told why the tool call failed"
    assert any(w in note.lower() for w in ("json", "argument", "parse", "invalid", "malformed", "error")), note


async def test_streamed_web_search_arguments_are_aggregated(create, inference, tool_runtime):
    inference.script.raw(
        [
            {"role": "assistant", "content": None},
            {"tool_calls": [tc_delta(0, id="call_s", name="web_search", arguments=None, type=None)]},
            {"tool_calls": [tc_delta(0, arguments="", type=None)]},
            {"tool_calls": [tc_delta(0, arguments='{"query"', type=None)]},
            {"tool_calls": [tc_delta(0, arguments=None, type=None)]},
            {"tool_calls": [tc_delta(0, arguments=': "llamas"}', type=None)]},
            {"finish_reason": "tool_calls"},
        ]
    )
    inference.script.text("Found it.")
    resp, _ = await create("Search", tools=[OpenAIResponseInputToolWebSearch()])
    assert bind_call(lambda tool_name, kwargs: None, tool_runtime.invoke_tool.await_args)["kwargs"] == {
        "query": "llamas"
    }
    assert [o.type for o in resp.output] == ["web_search_call", "message"]


# =================================================================================================
# validation errors
# =================================================================================================


class AudioPart(BaseModel):
    type: Literal["input_audio"] = "input_audio"
    data: str = "UklGRg=="


def _bad_role(style):
    if style == "llama":
        return [OpenAIResponseMessage.model_construct(role="robot", content="beep", type="message")]
    if style == "openai":
        return [EasyInputMessage.model_construct(role="robot", content="beep", type="message")]
    return [{"type": "message", "role": "robot", "content": "beep"}]


def _bad_part(style):
    if style == "llama":
        return [OpenAIResponseMessage.model_construct(role="user", content=[AudioPart()], type="message")]
    if style == "openai":
        part = ResponseInputAudio(input_audio={"data": "UklGRg==", "format": "wav"}, type="input_audio")
        return [EasyInputMessage.model_construct(role="user", content=[part], type="message")]
    return [
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}],
        }
    ]


class CodeInterpreterTool(BaseModel):
    type: Literal["code_interpreter"] = "code_interpreter"
    container: str = "cntr_1"


def _bad_tool(style):
    if style == "llama":
        return [CodeInterpreterTool()]
    if style == "openai":
        return [CodeInterpreter(type="code_interpreter", container="cntr_1")]
    return [{"type": "code_interpreter", "container": {"type": "auto"}}]


async def _assert_rejected_before_anything(impl, inference, kvstore, stream, match, **kw):
    """Non-streamed: ValueError naming the field. Streamed (the host has answered 200 already): a stream of
    ``response.created`` + ``response.failed`` with code ``invalid_request``, naming the field."""
    if stream:
        result = await impl.create_openai_response(model=MODEL, stream=stream, **kw)
        _, events = await collect(result, validate=False)  # no response.in_progress: checked here
        assert_rejected_stream(events, "invalid_request", match)
    else:
        with pytest.raises(ValueError, match=match):
            await impl.create_openai_response(model=MODEL, stream=stream, **kw)
    inference.openai_chat_completion.assert_not_awaited()
    assert kvstore.set_calls == []


@pytest.mark.parametrize("style", STYLES)
async def test_unknown_role_rejected(impl, inference, kvstore, stream, style):
    await _assert_rejected_before_anything(impl, inference, kvstore, stream, "robot", input=_bad_role(style))


@pytest.mark.parametrize("style", STYLES)
async def test_unknown_content_part_rejected(impl, inference, kvstore, stream, style):
    await _assert_rejected_before_anything(impl, inference, kvstore, stream, "input_audio", input=_bad_part(style))


@pytest.mark.parametrize("style", STYLES)
async def test_unknown_tool_type_rejected(impl, inference, kvstore, stream, style):
    await _assert_rejected_before_anything(
        impl, inference, kvstore, stream, "code_interpreter", input="hi", tools=_bad_tool(style)
    )


MCP_URL = "http://127.0.0.1:9/sse"  # never contacted: the request must be rejected first
TOOLS_UNSUPPORTED_IN_027 = {
    "file_search-llama": (lambda: OpenAIResponseInputToolFileSearch(vector_store_id=["vs_1"]), "file_search"),
    "file_search-openai": (lambda: FileSearchTool(type="file_search", vector_store_ids=["vs_1"]), "file_search"),
    "mcp-openai": (lambda: Mcp(type="mcp", server_label="kb", server_url=MCP_URL), "mcp"),
    "mcp-dict": (lambda: {"type": "mcp", "server_label": "kb", "server_url": MCP_URL}, "mcp"),
}


@pytest.mark.parametrize("case", list(TOOLS_UNSUPPORTED_IN_027))
async def test_tools_unsupported_in_027_rejected(impl, inference, kvstore, stream, case):
    """llama-stack 0.2.7 rejects file_search (this contract has no vector_io API) and knows no mcp tool;
    its OpenAIResponseObject cannot even hold file_search_call / mcp_* output items."""
    make, name = TOOLS_UNSUPPORTED_IN_027[case]
    await _assert_rejected_before_anything(impl, inference, kvstore, stream, name, input="hi", tools=[make()])


MALFORMED_ITEMS = {
    "message-without-role": ({"type": "message", "content": "hi"}, "role"),
    "message-without-content": ({"type": "message", "role": "user"}, "content"),
    "message-content-not-text": ({"type": "message", "role": "user", "content": 42}, "content"),
    "unknown-item-type": ({"type": "bogus_item", "foo": 1}, "bogus_item"),
    "function-call-output-without-call-id": ({"type": "function_call_output", "output": "x"}, "call_id"),
    "function-call-without-name": ({"type": "function_call", "call_id": "c1", "arguments": "{}"}, "name"),
}


@pytest.mark.parametrize("case", list(MALFORMED_ITEMS))
async def test_malformed_item_rejected(impl, inference, kvstore, stream, case):
    item, field_name = MALFORMED_ITEMS[case]
    await _assert_rejected_before_anything(impl, inference, kvstore, stream, field_name, input=[item])


# =================================================================================================
# failures after acceptance
# =================================================================================================


async def _assert_failed_or_raised(create, impl, kvstore, stream, exc, **kw):
    """Non-streamed: the very same exception propagates, nothing stored.  Streamed: exactly one
    terminal response.failed with an error naming the exception, nothing stored -- also when the
    *first* inference call fails (llama-stack 0.2.7 makes it before it returns the stream: the stream is
    returned all the same and ends in response.failed)."""
    if not stream:
        with pytest.raises(Boom) as info:
            await create(**kw)
        assert info.value is exc, "the original exception object must propagate unchanged"
        assert kvstore.set_calls == []
        return
    result = await asyncio.wait_for(impl.create_openai_response(model=MODEL, stream=True, **kw), 10)
    resp, events = await collect(result)
    assert types_of(events)[-1] == "response.failed"
    assert len(of_type(events, "response.failed")) == 1
    assert of_type(events, "response.completed") == []
    assert resp.status == "failed"
    assert resp.error is not None and str(exc) in resp.error.message
    assert kvstore.set_calls == []
    with pytest.raises(ValueError):
        await impl.get_openai_response(resp.id)


@pytest.mark.parametrize("where", ["at-call", "mid-stream", "second-round"])
async def test_inference_error(create, impl, inference, kvstore, stream, where):
    exc = Boom("inference exploded")
    tools = None
    if where == "second-round":
        tools = [OpenAIResponseInputToolWebSearch()]
        inference.script.tool_calls(ToolCall("call_1", "web_search", '{"query": "x"}'))
    inference.script.raise_(exc, after_chunks=2 if where != "at-call" else None)
    await _assert_failed_or_raised(create, impl, kvstore, stream, exc, input="Hi", tools=tools)


async def test_tool_error(create, impl, inference, tool_runtime, kvstore, stream):
    """A tool that raises fails only its call: the web_search_call item ends ``failed``, the model is told
    ("Error: <ExcType>: <msg>"), and the response completes and is stored; nothing propagates."""
    tool_runtime.invoke_tool.side_effect = Boom("tool exploded")
    inference.script.tool_calls(ToolCall("call_1", "web_search", '{"query": "x"}'))
    inference.script.text("The search failed.")
    resp, events = await create("Hi", tools=[OpenAIResponseInputToolWebSearch()])

    assert resp.status == "completed", resp.error
    assert resp.error is None
    assert [o.type for o in resp.output] == ["web_search_call", "message"]
    assert resp.output[0].status == "failed"
    assert_text_response(resp, "The search failed.", index=1, n_outputs=2)
    assert summarize(inference.script.messages(1))[-1] == ("tool", "call_1:Error: Boom: tool exploded")
    await assert_stored(kvstore, impl, resp)
    if stream:
        assert types_of(events)[-1] == "response.completed"
        assert "response.failed" not in types_of(events)


# =================================================================================================
# stream event shapes
# =================================================================================================

STREAM_MODES = ("stream-llama", "stream-openai")


@pytest.mark.modes(*STREAM_MODES)
async def test_stream_text_events(create, inference):
    inference.script.text("Hello there!", chunks=["Hel", "lo ", "there!"])
    resp, events = await create("Hi")
    assert types_of(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.delta for e in of_type(events, "response.output_text.delta")] == ["Hel", "lo ", "there!"]
    added = json.loads(events[2].model_dump_json())["item"]
    assert added["type"] == "message" and added["role"] == "assistant" and added["status"] == "in_progress"
    assert added["id"] == resp.output[0].id
    part = json.loads(events[3].model_dump_json())["part"]
    assert part == {"type": "output_text", "text": "", "annotations": []}
    assert of_type(events, "response.output_text.done")[0].text == "Hello there!"
    for e in events[2:-1]:
        assert e.output_index == 0
    for e in events[3:-2]:
        assert e.item_id == resp.output[0].id and e.content_index == 0
    assert events[0].response.status == "in_progress"
    assert events[-1].response.output == resp.output
    assert_text_response(resp, "Hello there!")


@pytest.mark.modes(*STREAM_MODES)
async def test_stream_first_inference_call_made_before_iteration(impl, inference):
    """llama-stack 0.2.7 calls inference inside ``await create_openai_response(stream=True)``; its own
    unit tests inspect ``openai_chat_completion.call_args_list[0]`` before iterating the stream."""
    inference.script.text("Hello")
    result = await impl.create_openai_response(input="Hi", model=MODEL, stream=True, temperature=0.1)
    assert inference.openai_chat_completion.await_count == 1
    first = inference.script.call(0)
    assert first["messages"][0].content == "Hi"
    assert first["temperature"] == 0.1
    assert first["stream"] is True
    final, _ = await collect(result)
    assert inference.openai_chat_completion.await_count == 1
    assert_text_response(final, "Hello")


@pytest.mark.modes(*STREAM_MODES)
async def test_stream_function_call_events(create, inference):
    tools = [OpenAIResponseInputToolFunction(name="get_weather", parameters=WEATHER_PARAMS)]
    inference.script.tool_calls(
        ToolCall("call_a", "get_weather", '{"city": "Paris"}', pieces=['{"ci', 'ty": ', '"Paris"}'])
    )
    resp, events = await create("Weather?", tools=tools)
    assert types_of(events)[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types_of(events)[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(types_of(events)[3:-3]) == {"response.function_call_arguments.delta"}
    added = json.loads(events[2].model_dump_json())["item"]
    assert added["type"] == "function_call"
    assert added["id"].startswith("fc_")
    assert (added["call_id"], added["name"]) == ("call_a", "get_weather")
    assert "".join(e.delta for e in of_type(events, "response.function_call_arguments.delta")) == '{"city": "Paris"}'
    assert of_type(events, "response.function_call_arguments.done")[0].arguments == '{"city": "Paris"}'
    assert resp.output[0].id == added["id"]


@pytest.mark.modes(*STREAM_MODES)
async def test_stream_web_search_events(create, inference):
    inference.script.tool_calls(ToolCall("call_ws1", "web_search", '{"query": "llamas"}'))
    inference.script.text("Camelids.", chunks=["Came", "lids."])
    resp, events = await create("Search", tools=[OpenAIResponseInputToolWebSearch()])
    ws_id = resp.output[0].id
    ws_events = [(e.type, getattr(e, "output_index", None)) for e in events if getattr(e, "output_index", None) == 0]
    assert ws_events == [
        ("response.output_item.added", 0),
        ("response.web_search_call.in_progress", 0),
        ("response.web_search_call.searching", 0),
        ("response.web_search_call.completed", 0),
        ("response.output_item.done", 0),
    ]
    for e in events:
        if getattr(e, "output_index", None) == 0 and hasattr(e, "item_id"):
            assert e.item_id == ws_id
    first_msg_event = next(i for i, e in enumerate(events) if getattr(e, "output_index", None) == 1)
    last_ws_event = max(i for i, e in enumerate(events) if getattr(e, "output_index", None) == 0)
    assert last_ws_event < first_msg_event
    assert [e.delta for e in of_type(events, "response.output_text.delta")] == ["Came", "lids."]
    assert [o.type for o in resp.output] == ["web_search_call", "message"]


@pytest.mark.modes(*STREAM_MODES)
async def test_stream_is_incremental(impl, inference, collect):
    """Events must be produced as chunks arrive, not after the model finished."""
    inference.script.text("Hello world", chunks=["Hello", " world"])
    inference.script.gate = asyncio.Event()
    inference.script.gate_after = 2  # role chunk + "Hello" flow; " world" waits for the gate
    result = await asyncio.wait_for(impl.create_openai_response(input="Hi", model=MODEL, stream=True), 2)
    it = result.__aiter__()
    seen = []
    try:
        while not seen or seen[-1].type != "response.output_text.delta":
            seen.append(await asyncio.wait_for(it.__anext__(), 2))
    except TimeoutError:
        pytest.fail(f"no output_text.delta before the model finished; events so far: {types_of(seen)}")
    assert seen[0].type == "response.created"
    assert seen[-1].delta == "Hello"
    assert inference.script.chunks_yielded == 2
    inference.script.gate.set()

    async def rest():
        return [e async for e in it]

    events = seen + await asyncio.wait_for(rest(), 5)
    final = validate_stream(events)
    assert_text_response(final, "Hello world")
