"""End to end: the official openai client -> ``llama stack run`` (provider inline::responses_rs) -> a
scripted OpenAI-compatible model server, all over real HTTP on 127.0.0.1.

One stack per test session (startup takes a few seconds), started by the current interpreter with the
llama-stack installed in its environment, on 127.0.0.1 with sqlite stores in a temporary directory.
Its inference provider (remote::vllm) points at a ScriptedChatServer running in this process, which
each test scripts and inspects; the official ``openai`` client drives the stack.

Nothing here skips for missing dependencies: a missing server dependency (fastapi, uvicorn, sqlalchemy,
opentelemetry, mcp<2) makes the stack fail to start, and that fails the tests, with the server log in
the error. llama-stack 0.2.7 serves only create (streamed or not, function tools, previous_response_id)
and retrieve; the tests that need 0.2.12 say so when skipped.

(The fixtures live here, not in a conftest.py: other test modules import names from the suite's
top-level ``conftest`` module, which a second ``conftest`` module would shadow.)
"""

from __future__ import annotations

import importlib.metadata
import json
import urllib.request
from typing import Any, get_args, get_origin

import openai
import pytest
from open_responses_schema import installed_host, validate_response
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseMcpCallArgumentsDeltaEvent,
    ResponseMcpCallArgumentsDoneEvent,
    ResponseStreamEvent,
)
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.stack import LlamaStack, start_llama_stack

E2E_MODEL = "e2e-model"  # the id the chat_server fixture serves
LLAMA_STACK_VERSION = importlib.metadata.version("llama_stack")
V0212 = LLAMA_STACK_VERSION == "0.2.12"


def needs_0212(why: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not V0212, reason=f"llama-stack {LLAMA_STACK_VERSION}: {why}")


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}


def _openai_event_classes() -> dict[str, type]:
    union = ResponseStreamEvent
    if get_origin(union) is not None and hasattr(union, "__metadata__"):  # Annotated[Union, discriminator]
        union = get_args(union)[0]
    classes: dict[str, type] = {}
    for cls in get_args(union):
        for value in get_args(cls.model_fields["type"].annotation):
            classes[value] = cls
    return classes


OPENAI_EVENT_CLASSES = _openai_event_classes()


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def chat_server():
    server = ScriptedChatServer(models=[E2E_MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(chat_server, tmp_path_factory) -> LlamaStack:
    state_dir = tmp_path_factory.mktemp("llama-stack")
    running = start_llama_stack(chat_server.base_url, E2E_MODEL, state_dir=state_dir, timeout=90)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def client(stack) -> openai.OpenAI:
    oai = openai.OpenAI(base_url=stack.openai_base_url, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


@pytest.fixture(scope="session")
def mcp_server():
    """A real MCP server (FastMCP, SSE) on 127.0.0.1. llama-stack 0.2.x's MCP client needs mcp<2."""
    mcp_version = importlib.metadata.version("mcp")
    assert int(mcp_version.split(".")[0]) < 2, (
        f"mcp {mcp_version} is installed; llama-stack {LLAMA_STACK_VERSION}'s MCP client needs mcp<2"
    )
    from responses_rs.testkit.mcp_server import MCPTestServer

    server = MCPTestServer(name="kit").start()
    yield server
    server.stop()


@pytest.fixture
def model(chat_server) -> ScriptedChatServer:
    """The scripted model server, with no pending turns and no recorded requests."""
    chat_server.reset()
    yield chat_server
    chat_server.reset()


# ------------------------------------------------------------------------------------------------
# helpers


def stream_events(client: openai.OpenAI, **kwargs: Any) -> tuple[list[Any], Response]:
    """Create a streamed response; check every event's openai type; validate the stream.

    Returns the typed events and the terminal event's response.
    """
    events = list(client.responses.create(stream=True, **kwargs))
    assert events, "empty stream"
    # Every event is one openai-python knows, parsed as its own class: the MCP argument events too
    # (openai's spelling "response.mcp_call_arguments.delta" / ".done", not llama-stack 0.2.12's dotted
    # "response.mcp_call.arguments.*", which openai's union would parse as some other member).
    for i, event in enumerate(events):
        expected = OPENAI_EVENT_CLASSES.get(event.type)
        assert expected is not None, f"event #{i}: {event.type!r} is not an openai-python event type"
        assert type(event) is expected, f"event #{i} ({event.type}) parsed as {type(event).__name__}"
    # every event and the terminal response also against the Open Responses spec (the host's exclusions)
    final = validate_stream(events, response_cls=Response, schema_host=installed_host())
    assert isinstance(final, Response)
    return events, final


def text_of(content: Any) -> str:
    """Text of a message's content: a string, or a list of text parts (dicts or openai objects)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") if isinstance(part, dict) else part.text for part in content)


def conversation(request: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of each message a model request carried."""
    return [(m["role"], text_of(m.get("content"))) for m in request["messages"]]


def create(client: openai.OpenAI, stream: bool, **kwargs: Any) -> tuple[Response, list[Any]]:
    if stream:
        events, final = stream_events(client, **kwargs)
        return final, events
    response = client.responses.create(**kwargs)
    assert isinstance(response, Response)
    # exclude_unset: exactly the fields the server sent (a plain dump fills openai's unset fields with null)
    validate_response(response.model_dump(mode="json", exclude_unset=True), host=installed_host())
    return response, []


# ------------------------------------------------------------------------------------------------
# the stack itself


def get_json(stack, path: str) -> Any:
    """A llama-stack route outside the OpenAI-compatible prefix."""
    with urllib.request.urlopen(f"{stack.base_url}{path}", timeout=10) as r:
        return json.load(r)


def test_stack_serves_agents_with_responses_rs(stack, chat_server):
    assert chat_server.models == [E2E_MODEL]
    data = get_json(stack, "/v1/providers")["data"]
    agents = [p for p in data if p["api"] == "agents"]
    assert [p["provider_type"] for p in agents] == ["inline::responses_rs"]
    assert "persistence_store" in agents[0]["config"]


# ------------------------------------------------------------------------------------------------
# create


def test_create_non_streamed(client, model):
    model.script({"text": "Hello from the model.", "chunk_size": 5})
    response = client.responses.create(model=E2E_MODEL, input="Say hello")
    assert response.status == "completed"
    assert response.model == E2E_MODEL
    assert response.output_text == "Hello from the model."
    assert [item.type for item in response.output] == ["message"]
    assert response.output[0].role == "assistant"
    (request,) = model.requests
    assert request["model"] == E2E_MODEL
    assert conversation(request) == [("user", "Say hello")]


def test_create_streamed(client, model):
    model.script({"text": "Streaming works.", "chunk_size": 4})
    events, final = stream_events(client, model=E2E_MODEL, input="Stream please")
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Streaming works."
    assert len(deltas) == 4
    assert final.output_text == "Streaming works."
    (request,) = model.requests
    assert request["stream"] is True
    assert conversation(request) == [("user", "Stream please")]


# ------------------------------------------------------------------------------------------------
# function tools


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_function_tool_round_trip(client, model, stream):
    model.script(
        [
            {"tool_calls": [{"id": "call_w1", "name": "get_weather", "arguments": {"city": "Paris"}}]},
            {"text": "It is sunny in Paris."},
        ]
    )
    first, events = create(client, stream, model=E2E_MODEL, input="What's the weather in Paris?", tools=[WEATHER_TOOL])
    assert [item.type for item in first.output] == ["function_call"]
    call = first.output[0]
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_w1", "get_weather", {"city": "Paris"})
    if stream:
        types = [e.type for e in events]
        assert "response.function_call_arguments.delta" in types
        done = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert [json.loads(e.arguments) for e in done] == [{"city": "Paris"}]

    second, _ = create(
        client,
        stream,
        model=E2E_MODEL,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}],
        tools=[WEATHER_TOOL],
    )
    assert second.output_text == "It is sunny in Paris."
    assert second.id != first.id

    first_request, second_request = model.requests
    assert [t["function"]["name"] for t in first_request["tools"]] == ["get_weather"]
    assert first_request["tools"][0]["function"]["parameters"] == WEATHER_TOOL["parameters"]
    messages = second_request["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert text_of(messages[0]["content"]) == "What's the weather in Paris?"
    (tool_call,) = messages[1]["tool_calls"]
    assert tool_call["id"] == "call_w1"
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2]["tool_call_id"] == "call_w1"
    assert text_of(messages[2]["content"]) == '{"sky": "sunny"}'


# ------------------------------------------------------------------------------------------------
# MCP (llama-stack 0.2.12 only: 0.2.7 has no mcp tool type)


@needs_0212("no mcp tool type")
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_mcp_tool_call(client, model, mcp_server, stream):
    mcp_server.reset()
    model.script(
        [
            {"tool_calls": [{"id": "call_m1", "name": "add", "arguments": {"a": 2, "b": 3}}]},
            {"text": "2 + 3 = 5."},
        ]
    )
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"}]
    response, events = create(client, stream, model=E2E_MODEL, input="What is 2 + 3?", tools=tools)

    assert mcp_server.calls == [("add", {"a": 2, "b": 3})]
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    listing, mcp_call, _ = response.output
    assert listing.server_label == "kit"
    assert sorted(t.name for t in listing.tools) == ["add", "fail", "lookup"]
    assert (mcp_call.name, mcp_call.server_label, mcp_call.error) == ("add", "kit", None)
    assert json.loads(mcp_call.arguments) == {"a": 2, "b": 3}
    assert mcp_call.output == "5"
    assert response.output_text == "2 + 3 = 5."
    if stream:
        types = [e.type for e in events]
        for expected in (
            "response.mcp_list_tools.in_progress",
            "response.mcp_list_tools.completed",
            "response.mcp_call.in_progress",
            "response.mcp_call.completed",
        ):
            assert expected in types
        # openai-python's spelling of the arguments events, parsed as its classes
        assert "response.mcp_call_arguments.done" in types
        assert not {"response.mcp_call.arguments.delta", "response.mcp_call.arguments.done"} & set(types)
        deltas = [e for e in events if e.type == "response.mcp_call_arguments.delta"]
        done = [e for e in events if e.type == "response.mcp_call_arguments.done"]
        assert all(isinstance(e, ResponseMcpCallArgumentsDeltaEvent) for e in deltas)
        assert all(isinstance(e, ResponseMcpCallArgumentsDoneEvent) for e in done)

    first_request, second_request = model.requests
    assert sorted(t["function"]["name"] for t in first_request["tools"]) == ["add", "fail", "lookup"]
    tool_messages = [m for m in second_request["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], text_of(m["content"])) for m in tool_messages] == [("call_m1", "5")]


@needs_0212("no mcp tool type")
# llama-stack's mcp_call.error is a string; openai-python 3.x models it as an error object, so pydantic
# warns when the validator re-serialises openai's typed response.
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_mcp_tool_error(client, model, mcp_server):
    """An MCP tool that reports an error (CallToolResult.isError) shows up as a failed call."""
    mcp_server.reset()
    model.script(
        [{"tool_calls": [{"id": "call_f1", "name": "fail", "arguments": {"reason": "boom"}}]}, {"text": "No."}]
    )
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url}]
    response, events = create(client, True, model=E2E_MODEL, input="Try the failing tool", tools=tools)
    assert mcp_server.calls == [("fail", {"reason": "boom"})]
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    # llama-stack's invoke_mcp_tool reports isError as ToolInvocationResult(error_code=1, content=[text])
    mcp_call = response.output[1]
    assert mcp_call.error and "boom" in str(mcp_call.error)
    types = [e.type for e in events]
    assert "response.mcp_call.failed" in types and "response.mcp_call.completed" not in types
    tool_messages = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1 and "boom" in text_of(tool_messages[0]["content"])
    assert response.output_text == "No."


@needs_0212("no mcp tool type")
def test_previous_response_with_mcp_output(client, model, mcp_server):
    """Continuing a response whose output holds mcp_list_tools / mcp_call items (llama-stack 0.2.12's own
    implementation answers 500 here)."""
    model.script(
        [
            {"tool_calls": [{"id": "call_m2", "name": "add", "arguments": {"a": 2, "b": 3}}]},
            {"text": "2 + 3 = 5."},
            {"text": "Times two: 10."},
        ]
    )
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url}]
    first = client.responses.create(model=E2E_MODEL, input="What is 2 + 3?", tools=tools)
    assert [item.type for item in first.output] == ["mcp_list_tools", "mcp_call", "message"]
    second = client.responses.create(
        model=E2E_MODEL, input="And times two?", previous_response_id=first.id, tools=tools
    )
    assert second.output_text == "Times two: 10."
    assert client.responses.retrieve(second.id).output_text == "Times two: 10."
    roles_texts = conversation(model.requests[2])
    assert roles_texts[0] == ("user", "What is 2 + 3?")
    assert ("assistant", "2 + 3 = 5.") in roles_texts
    assert roles_texts[-1] == ("user", "And times two?")


# ------------------------------------------------------------------------------------------------
# previous_response_id


def test_chain_of_five(client, model):
    model.script([{"text": f"answer {i}"} for i in range(1, 6)])
    previous = None
    for i in range(1, 6):
        response = client.responses.create(
            model=E2E_MODEL, input=f"question {i}", **({"previous_response_id": previous.id} if previous else {})
        )
        assert response.output_text == f"answer {i}"
        previous = response
    requests = model.requests
    assert len(requests) == 5
    for i, request in enumerate(requests, start=1):
        expected = []
        for j in range(1, i):
            expected += [("user", f"question {j}"), ("assistant", f"answer {j}")]
        expected.append(("user", f"question {i}"))
        assert conversation(request) == expected, f"request {i}"


# ------------------------------------------------------------------------------------------------
# instructions and text.format (0.2.12)


@needs_0212("no instructions parameter")
def test_instructions(client, model):
    model.script([{"text": "Terse."}, {"text": "Still terse."}])
    first = client.responses.create(model=E2E_MODEL, input="Hi", instructions="Answer tersely.")
    assert first.output_text == "Terse."
    # instructions apply to their own request only: not carried over by previous_response_id
    second = client.responses.create(
        model=E2E_MODEL, input="Again", instructions="Be brief.", previous_response_id=first.id
    )
    assert second.output_text == "Still terse."
    first_request, second_request = model.requests
    assert conversation(first_request) == [("system", "Answer tersely."), ("user", "Hi")]
    assert conversation(second_request) == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Terse."),
        ("user", "Again"),
    ]


@needs_0212("no text parameter")
def test_text_format_json_schema(client, model):
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
        "additionalProperties": False,
    }
    model.script({"json": {"capital": "Dublin"}})
    response = client.responses.create(
        model=E2E_MODEL,
        input="Capital of Ireland?",
        text={"format": {"type": "json_schema", "name": "capital", "schema": schema, "strict": True}},
    )
    assert json.loads(response.output_text) == {"capital": "Dublin"}
    assert response.text.format.type == "json_schema"
    (request,) = model.requests
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "capital"
    assert response_format["json_schema"]["schema"] == schema


# ------------------------------------------------------------------------------------------------
# stored responses


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_retrieve(client, model, stream):
    model.script({"text": "Keep me."})
    created, _ = create(client, stream, model=E2E_MODEL, input="Store this")
    retrieved = client.responses.retrieve(created.id)
    assert isinstance(retrieved, Response)
    assert retrieved.id == created.id
    assert retrieved.status == "completed"
    assert retrieved.model == E2E_MODEL
    assert retrieved.output_text == "Keep me."
    assert [item.id for item in retrieved.output] == [item.id for item in created.output]


def test_retrieve_unknown_id(client, model):
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.retrieve("resp-does-not-exist")
    assert info.value.status_code in (400, 404)


@needs_0212("no GET /responses route")
def test_list_responses(client, model):
    model.script([{"text": "one"}, {"text": "two"}])
    first = client.responses.create(model=E2E_MODEL, input="first")
    second = client.responses.create(model=E2E_MODEL, input="second")
    # openai-python has no responses.list(); llama-stack 0.2.12 serves GET /responses
    page = client.get("/responses", cast_to=object, options={"params": {"limit": 50}})
    assert page["object"] == "list"
    by_id = {item["id"]: item for item in page["data"]}
    assert first.id in by_id and second.id in by_id
    assert by_id[second.id]["output"][0]["content"][0]["text"] == "two"
    assert [text_of(i["content"]) for i in by_id[second.id]["input"]] == ["second"]
    limited = client.get("/responses", cast_to=object, options={"params": {"limit": 1}})
    assert len(limited["data"]) == 1 and limited["has_more"] is True


@needs_0212("no input_items route")
def test_input_items(client, model):
    model.script([{"text": "a1"}, {"text": "a2"}])
    first = client.responses.create(model=E2E_MODEL, input="q1")
    second = client.responses.create(model=E2E_MODEL, input="q2", previous_response_id=first.id)
    items = client.responses.input_items.list(second.id, order="asc")
    # the new input string of a chained request is stored as-is (content a plain string), as llama-stack does
    got = [(item.type, item.role, text_of(item.content)) for item in items.data]
    assert got == [("message", "user", "q1"), ("message", "assistant", "a1"), ("message", "user", "q2")]
    newest_first = client.responses.input_items.list(second.id)  # default order: desc
    assert [item.id for item in newest_first.data] == [item.id for item in reversed(items.data)]


@needs_0212("no DELETE route either; checked on 0.2.12")
def test_delete(client, model, stack):
    routes = get_json(stack, "/v1/inspect/routes")["data"]
    has_delete = any(
        "DELETE" in route["method"].upper() and route["route"].startswith("/v1/openai/v1/responses") for route in routes
    )
    model.script({"text": "doomed"})
    response = client.responses.create(model=E2E_MODEL, input="delete me")
    if has_delete:  # a llama-stack that routes DELETE /responses/{id}
        client.responses.delete(response.id)
        with pytest.raises(openai.APIStatusError):
            client.responses.retrieve(response.id)
        return
    # llama-stack 0.2.12 has no DELETE route for responses: the server answers 405 (or 404)
    with pytest.raises(openai.APIStatusError) as info:
        client.responses.delete(response.id)
    assert info.value.status_code in (404, 405)
    assert client.responses.retrieve(response.id).id == response.id


# ------------------------------------------------------------------------------------------------
# errors


@needs_0212("an error locks its trace store for later tests (see docstring)")
def test_model_error(client, model):
    """The model server refuses the request (HTTP 400, not retried by llama-stack's client).

    0.2.12 only: on 0.2.7 an error response leaves llama-stack's sqlite trace store locked, and every
    later request then waits ~5 s for it (with llama-stack's own provider too). There, a streamed
    request whose first inference fails gets llama-stack's SSE error frame (0.2.7 calls inference
    before it returns the stream), which openai-python raises as APIError.
    """
    model.script([{"error": {"status": 400, "message": "context too long"}}] * 2)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=E2E_MODEL, input="Too long")
    # streamed: the failure arrives as the stream's terminal response.failed event
    events, final = stream_events(client, model=E2E_MODEL, input="Too long")
    assert events[-1].type == "response.failed"
    assert final.status == "failed" and "context too long" in final.error.message
    assert len(model.requests) == 2


# ================================================================================================
# The 2026 Responses semantics
#
# Strictly nested streams (one output item open at a time), reasoning items, usage, incomplete
# responses (length / content_filter), refusals, parallel calls closed one by one with their final
# call_id from the start, failing tools that fail only their call, openai-python's MCP argument
# events, response.failed for an unknown previous_response_id, and request controls applied and
# echoed. Every stream goes through stream_events (and so through the stream validator).
# ================================================================================================


def added_items(events: list[Any]) -> list[Any]:
    """The item of every ``response.output_item.added`` event, in stream order."""
    return [e.item for e in events if e.type == "response.output_item.added"]


def assert_strictly_nested(events: list[Any]) -> None:
    """At most one output item open at a time; every event aimed at an item falls inside that item's
    added/done window; content parts open and close one at a time inside their item."""
    open_index: int | None = None
    open_part: int | None = None
    for i, event in enumerate(events):
        where = f"event #{i} ({event.type})"
        if event.type == "response.output_item.added":
            assert open_index is None, f"{where}: item {event.output_index} opened while item {open_index} is open"
            open_index = event.output_index
        elif event.type == "response.output_item.done":
            assert event.output_index == open_index, f"{where}: closes item {event.output_index}, open: {open_index}"
            assert open_part is None, f"{where}: content part {open_part} still open"
            open_index = None
        elif event.type == "response.content_part.added":
            assert open_part is None, f"{where}: part {event.content_index} opened while part {open_part} is open"
            open_part = event.content_index
        elif event.type == "response.content_part.done":
            assert event.content_index == open_part, f"{where}: closes part {event.content_index}, open: {open_part}"
            open_part = None
        elif getattr(event, "output_index", None) is not None:
            assert event.output_index == open_index, f"{where}: aimed at item {event.output_index}, open: {open_index}"
    assert open_index is None or events[-1].type != "response.completed", "an item is still open at the end"


def reasoning_text(item: Any) -> str:
    return "".join(part.text for part in item.content or [])


def streamed_requests(model: ScriptedChatServer) -> list[dict[str, Any]]:
    return [r for r in model.requests if r.get("stream")]


# ------------------------------------------------------------------------------------------------
# reasoning


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_reasoning_item_before_message(client, model, field, stream):
    """The model's reasoning (vLLM/DeepSeek ``delta.reasoning_content`` or OpenRouter/newer vLLM
    ``delta.reasoning``) becomes a ``reasoning`` item before the message."""
    thoughts = "The user greets me. A short greeting back is enough."
    model.script({"reasoning": thoughts, "reasoning_field": field, "text": "Hello!", "chunk_size": 7})
    response, events = create(client, stream, model=E2E_MODEL, input="Hi")
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning, message = response.output
    assert reasoning_text(reasoning) == thoughts
    assert response.output_text == "Hello!"
    assert message.status == "completed"
    if stream:
        assert_strictly_nested(events)
        types = [e.type for e in events]
        deltas = [e for e in events if e.type == "response.reasoning_text.delta"]
        assert "".join(e.delta for e in deltas) == thoughts
        assert len(deltas) == len(range(0, len(thoughts), 7))
        (done,) = [e for e in events if e.type == "response.reasoning_text.done"]
        assert done.text == thoughts
        assert {e.item_id for e in [*deltas, done]} == {reasoning.id}
        # the reasoning item is closed before the message opens
        added = [i for i, t in enumerate(types) if t == "response.output_item.added"]
        closed = [i for i, t in enumerate(types) if t == "response.output_item.done"]
        assert closed[0] < added[1]
        assert all(types.index("response.reasoning_text.done") < i for i, t in enumerate(types) if "output_text" in t)


def test_reasoning_and_refusal_responses_are_stored_and_chainable(client, model):
    """llama-stack's own response classes (0.2.7 and 0.2.12) have no reasoning item and no refusal
    part, and its stores validate with them on the way out: the record keeps llama-stack's shape (the
    reasoning item is left out, a refusal is kept as the message's text), so such responses are still
    retrieved and chained, by either implementation."""
    model.script(
        [
            {"reasoning": "Be friendly.", "text": "Hello!"},
            {"refusal": "I won't do that."},
            {"text": "Hello again."},
        ]
    )
    first = client.responses.create(model=E2E_MODEL, input="Hi")
    refused = client.responses.create(model=E2E_MODEL, input="Do the bad thing", previous_response_id=first.id)
    stored_first = client.responses.retrieve(first.id)
    assert [item.type for item in first.output] == ["reasoning", "message"]
    assert reasoning_text(first.output[0]) == "Be friendly."
    # What llama-stack's record can carry: the message, not the reasoning item.
    assert [item.type for item in stored_first.output] == ["message"]
    assert stored_first.output_text == "Hello!"
    (part,) = refused.output[0].content
    assert (part.type, part.refusal) == ("refusal", "I won't do that.")
    stored_refused = client.responses.retrieve(refused.id)
    (part,) = stored_refused.output[0].content
    assert (part.type, part.text) == ("output_text", "I won't do that.")
    third = client.responses.create(model=E2E_MODEL, input="Hi again", previous_response_id=refused.id)
    assert third.output_text == "Hello again."
    turns = conversation(model.requests[2])
    assert turns[0] == ("user", "Hi") and ("assistant", "Hello!") in turns
    assert ("user", "Do the bad thing") in turns and turns[-1] == ("user", "Hi again")


# ------------------------------------------------------------------------------------------------
# usage


USAGE_ROUND_1 = {
    "prompt_tokens": 100,
    "completion_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 40},
    "completion_tokens_details": {"reasoning_tokens": 8},
}
USAGE_ROUND_2 = {
    "prompt_tokens": 150,
    "completion_tokens": 10,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 3},
}


def assert_usage(usage: Any, *rounds: dict[str, Any]) -> None:
    assert usage is not None, "the response has no usage"
    assert usage.input_tokens == sum(r["prompt_tokens"] for r in rounds)
    assert usage.output_tokens == sum(r["completion_tokens"] for r in rounds)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == sum(r["prompt_tokens_details"]["cached_tokens"] for r in rounds)
    assert usage.output_tokens_details.reasoning_tokens == sum(
        r["completion_tokens_details"]["reasoning_tokens"] for r in rounds
    )


def assert_asked_for_usage(model: ScriptedChatServer) -> None:
    """Every streamed inference request asks for the usage chunk."""
    for request in streamed_requests(model):
        assert request.get("stream_options") == {"include_usage": True}, request.get("stream_options")


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_usage_one_round(client, model, stream):
    model.script({"reasoning": "Short.", "text": "Done.", "usage": USAGE_ROUND_1})
    response, events = create(client, stream, model=E2E_MODEL, input="Go")
    assert_asked_for_usage(model)
    assert_usage(response.usage, USAGE_ROUND_1)
    if stream:
        assert events[-1].type == "response.completed"
        assert_usage(events[-1].response.usage, USAGE_ROUND_1)


@needs_0212("no mcp tool type: no second inference round inside one response")
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_usage_summed_over_an_mcp_round(client, model, mcp_server, stream):
    mcp_server.reset()
    model.script(
        [
            {"tool_calls": [{"id": "call_u1", "name": "add", "arguments": {"a": 1, "b": 2}}], "usage": USAGE_ROUND_1},
            {"text": "1 + 2 = 3.", "usage": USAGE_ROUND_2},
        ]
    )
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"}]
    response, events = create(client, stream, model=E2E_MODEL, input="1 + 2?", tools=tools)
    assert response.status == "completed" and response.output_text == "1 + 2 = 3."
    assert len(model.requests) == 2
    assert_asked_for_usage(model)
    assert_usage(response.usage, USAGE_ROUND_1, USAGE_ROUND_2)
    if stream:
        assert_strictly_nested(events)


# ------------------------------------------------------------------------------------------------
# incomplete responses


@pytest.mark.parametrize(
    ("finish_reason", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_incomplete(client, model, stream, finish_reason, reason):
    model.script({"text": "The first part of a longer", "finish_reason": finish_reason, "chunk_size": 6})
    response, events = create(client, stream, model=E2E_MODEL, input="Write a lot")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    assert response.error is None
    assert [item.type for item in response.output] == ["message"]
    assert response.output[0].status == "incomplete"
    assert response.output_text == "The first part of a longer"
    if stream:
        assert_strictly_nested(events)
        types = [e.type for e in events]
        assert types[-1] == "response.incomplete"
        assert "response.completed" not in types and "response.failed" not in types
        (item_done,) = [e for e in events if e.type == "response.output_item.done"]
        assert item_done.item.status == "incomplete"
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == response.output_text
    assert client.responses.retrieve(response.id).status == "incomplete"


def test_max_output_tokens_reaches_the_model_and_length_is_incomplete(client, model):
    model.script({"text": "Cut sh", "finish_reason": "length"})
    events, final = stream_events(client, model=E2E_MODEL, input="Long story", max_output_tokens=16)
    assert events[-1].type == "response.incomplete"
    assert final.max_output_tokens == 16
    assert final.incomplete_details.reason == "max_output_tokens"
    (request,) = model.requests
    assert request.get("max_tokens", request.get("max_completion_tokens")) == 16


# ------------------------------------------------------------------------------------------------
# refusal


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_refusal(client, model, stream):
    refusal = "I can't help with that request."
    model.script({"refusal": refusal, "chunk_size": 5})
    response, events = create(client, stream, model=E2E_MODEL, input="Something bad")
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["message"]
    (part,) = response.output[0].content
    assert (part.type, part.refusal) == ("refusal", refusal)
    assert response.output_text == ""
    if stream:
        assert_strictly_nested(events)
        (added,) = [e for e in events if e.type == "response.content_part.added"]
        assert added.part.type == "refusal"
        deltas = [e.delta for e in events if e.type == "response.refusal.delta"]
        assert "".join(deltas) == refusal and len(deltas) == len(range(0, len(refusal), 5))
        (done,) = [e for e in events if e.type == "response.refusal.done"]
        assert done.refusal == refusal
        assert not [e for e in events if e.type.startswith("response.output_text.")]


# ------------------------------------------------------------------------------------------------
# text, then calls


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_text_then_function_call(client, model, stream):
    model.script(
        {
            "text": "Let me look that up.",
            "tool_calls": [{"id": "call_t1", "name": "get_weather", "arguments": {"city": "Oslo"}}],
        }
    )
    response, events = create(client, stream, model=E2E_MODEL, input="Weather in Oslo?", tools=[WEATHER_TOOL])
    assert [item.type for item in response.output] == ["message", "function_call"]
    message, call = response.output
    assert text_of(message.content) == "Let me look that up."
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_t1", "get_weather", {"city": "Oslo"})
    if stream:
        assert_strictly_nested(events)
        types = [e.type for e in events]
        message_done = next(i for i, e in enumerate(events) if e.type == "response.output_item.done")
        call_added = [i for i, t in enumerate(types) if t == "response.output_item.added"][1]
        assert message_done < call_added, "the message must be closed before the call opens"


PARALLEL_CALLS = [
    {"id": "call_p1", "name": "get_weather", "arguments": {"city": "Paris"}},
    {"id": "call_p2", "name": "get_weather", "arguments": {"city": "Rome"}},
    {"id": "call_p3", "name": "get_weather", "arguments": {"city": "Lisbon"}},
]
PARALLEL_MODES = {
    "sequential": {},
    "interleaved": {"interleave": True},
    "ids_late": {"id_late": True},
    "ids_late_interleaved": {"id_late": True, "interleave": True},
    "odd_indexes": {"interleave": True, "indexes": [7, 3, 5]},
}


@pytest.mark.parametrize("mode", list(PARALLEL_MODES))
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_three_parallel_function_calls(client, model, stream, mode):
    options = dict(PARALLEL_MODES[mode])
    indexes = options.pop("indexes", None)
    calls = [dict(c, index=indexes[n]) if indexes else dict(c) for n, c in enumerate(PARALLEL_CALLS)]
    model.script({"tool_calls": calls, "chunk_size": 3, **options})
    response, events = create(client, stream, model=E2E_MODEL, input="Weather in three cities?", tools=[WEATHER_TOOL])
    assert response.status == "completed"
    assert [item.type for item in response.output] == ["function_call"] * 3
    got = [(c.call_id, c.name, json.loads(c.arguments), c.status) for c in response.output]
    assert got == [(c["id"], c["name"], c["arguments"], "completed") for c in PARALLEL_CALLS]
    assert len({c.id for c in response.output}) == 3
    if stream:
        assert_strictly_nested(events)
        # every call is announced with its final call_id, even when the model sent the id late
        assert [(i.call_id, i.name) for i in added_items(events)] == [(c["id"], c["name"]) for c in PARALLEL_CALLS]
        argument_deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
        for call in response.output:
            assert "".join(e.delta for e in argument_deltas if e.item_id == call.id) == call.arguments


# ------------------------------------------------------------------------------------------------
# MCP: argument events, failing tools


@needs_0212("no mcp tool type")
def test_mcp_argument_events_in_openai_spelling(client, model, mcp_server):
    mcp_server.reset()
    model.script(
        [
            {"tool_calls": [{"id": "call_a1", "name": "lookup", "arguments": {"query": "rust"}}], "chunk_size": 4},
            {"text": "Found it."},
        ]
    )
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"}]
    events, final = stream_events(client, model=E2E_MODEL, input="Look up rust", tools=tools)
    assert_strictly_nested(events)
    mcp_call = next(item for item in final.output if item.type == "mcp_call")
    deltas = [e for e in events if e.type == "response.mcp_call_arguments.delta"]
    (done,) = [e for e in events if e.type == "response.mcp_call_arguments.done"]
    assert deltas and all(isinstance(e, ResponseMcpCallArgumentsDeltaEvent) for e in deltas)
    assert isinstance(done, ResponseMcpCallArgumentsDoneEvent)
    assert {e.item_id for e in [*deltas, done]} == {mcp_call.id}
    assert "".join(e.delta for e in deltas) == done.arguments == mcp_call.arguments
    assert json.loads(mcp_call.arguments) == {"query": "rust"}
    assert not [e for e in events if e.type.startswith("response.mcp_call.arguments")]


@needs_0212("no mcp tool type; 0.2.7's only server-run tool, web_search, needs a search provider this stack lacks")
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_mcp_tool_that_raises_fails_only_its_call(client, model, mcp_server, stream):
    """The testkit MCP server's ``fail`` tool raises: its call is ``failed`` with the error, the model is
    told, and the response completes with the model's follow-up."""
    mcp_server.reset()
    model.script(
        [
            {"tool_calls": [{"id": "call_x1", "name": "fail", "arguments": {"reason": "disk on fire"}}]},
            {"text": "The tool failed; sorry."},
        ]
    )
    tools = [{"type": "mcp", "server_label": "kit", "server_url": mcp_server.url, "require_approval": "never"}]
    response, events = create(client, stream, model=E2E_MODEL, input="Use the failing tool", tools=tools)
    assert mcp_server.calls == [("fail", {"reason": "disk on fire"})]
    assert response.status == "completed" and response.error is None
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    mcp_call = response.output[1]
    assert mcp_call.status == "failed"
    assert mcp_call.error and "disk on fire" in str(mcp_call.error)
    assert mcp_call.output in (None, "")
    assert response.output_text == "The tool failed; sorry."
    (tool_message,) = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_message["tool_call_id"] == "call_x1" and "disk on fire" in text_of(tool_message["content"])
    if stream:
        assert_strictly_nested(events)
        types = [e.type for e in events]
        assert "response.mcp_call.failed" in types and "response.mcp_call.completed" not in types
        assert types[-1] == "response.completed"


@needs_0212("no mcp tool type; 0.2.7's only server-run tool, web_search, needs a search provider this stack lacks")
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_mcp_call_raising_in_the_client_fails_only_its_call(client, model, stream):
    """The MCP server goes away between listing its tools and the call, so invoking the tool raises in
    responses-rs itself (a connection error, not an MCP error result): only that call fails."""
    from responses_rs.testkit.mcp_server import MCPTestServer

    server = MCPTestServer(name="flaky").start()
    url = server.url

    def call_after_the_server_is_gone(body: dict[str, Any]) -> dict[str, Any]:
        server.stop()  # the tools were listed before this first inference request
        return {"tool_calls": [{"id": "call_g1", "name": "add", "arguments": {"a": 1, "b": 1}}]}

    try:
        model.script([call_after_the_server_is_gone, {"text": "The adder is unreachable."}])
        tools = [{"type": "mcp", "server_label": "flaky", "server_url": url, "require_approval": "never"}]
        response, events = create(client, stream, model=E2E_MODEL, input="1 + 1?", tools=tools)
    finally:
        server.stop()
    assert response.status == "completed" and response.error is None
    assert [item.type for item in response.output] == ["mcp_list_tools", "mcp_call", "message"]
    mcp_call = response.output[1]
    assert (mcp_call.status, mcp_call.name) == ("failed", "add")
    assert mcp_call.error
    assert response.output_text == "The adder is unreachable."
    assert len(model.requests) == 2
    (tool_message,) = [m for m in model.requests[1]["messages"] if m["role"] == "tool"]
    assert tool_message["tool_call_id"] == "call_g1" and text_of(tool_message["content"])
    if stream:
        assert_strictly_nested(events)
        types = [e.type for e in events]
        assert "response.mcp_call.failed" in types and types[-1] == "response.completed"


# ------------------------------------------------------------------------------------------------
# unknown previous_response_id


def test_unknown_previous_response_id_streamed(client, model):
    """llama-stack 0.2.x opens the 200 event stream before it calls the provider: the failure is the
    stream's own response.failed, with openai's error code."""
    stream = client.responses.create(
        model=E2E_MODEL, input="Continue", previous_response_id="resp_does_not_exist", stream=True
    )
    events = list(stream)
    for i, event in enumerate(events):
        assert type(event) is OPENAI_EVENT_CLASSES.get(event.type), f"event #{i} ({event.type}) is {type(event)}"
    types = [e.type for e in events]
    assert types in (
        ["response.created", "response.failed"],
        ["response.created", "response.in_progress", "response.failed"],
    ), types
    if "response.in_progress" in types:  # the validator wants in_progress second
        validate_stream(events, response_cls=Response)
    failed = events[-1].response
    assert failed.status == "failed" and failed.output == []
    assert failed.error is not None and failed.error.code == "previous_response_not_found"
    assert "resp_does_not_exist" in failed.error.message
    assert failed.previous_response_id == "resp_does_not_exist"
    assert model.requests == []


def test_unknown_previous_response_id_not_streamed(client, model):
    """Not streamed, llama-stack turns the provider's ValueError into HTTP 400."""
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=E2E_MODEL, input="Continue", previous_response_id="resp_does_not_exist")
    assert info.value.status_code == 400
    # llama-stack's body is {"detail": "Invalid value: ..."}, which openai-python does not read as a message
    assert "resp_does_not_exist" in info.value.response.text
    assert model.requests == []


# ------------------------------------------------------------------------------------------------
# request controls

CONTROLS: dict[str, Any] = {
    "max_output_tokens": 64,
    "top_p": 0.5,
    "metadata": {"team": "responses-rs", "case": "controls"},
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": False,
    "truncation": "disabled",
    "user": "user-42",
}


@pytest.mark.parametrize("stream", [False, True], ids=["nonstream", "stream"])
def test_request_controls_applied_and_echoed(client, model, stream):
    """llama-stack's route declares none of these fields (0.2.7 nor 0.2.12); the provider widens it to
    the ones responses-rs' create_openai_response accepts (responses_rs.llama_stack._widen_create)."""
    model.script({"tool_calls": [{"id": "call_c1", "name": "get_weather", "arguments": {"city": "Bern"}}]})
    response, _ = create(client, stream, model=E2E_MODEL, input="Weather in Bern?", tools=[WEATHER_TOOL], **CONTROLS)
    # echoed
    assert response.max_output_tokens == 64
    assert response.top_p == 0.5
    assert response.metadata == CONTROLS["metadata"]
    assert response.tool_choice.type == "function" and response.tool_choice.name == "get_weather"
    assert response.parallel_tool_calls is False
    assert response.truncation == "disabled"
    assert response.user == "user-42"
    # applied: the chat request carries them
    (request,) = model.requests
    assert request.get("max_tokens", request.get("max_completion_tokens")) == 64
    assert request["top_p"] == 0.5
    assert request["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert request["parallel_tool_calls"] is False
