"""``responses-rs serve`` with no upstream: a real serve process answering with the project's scripted model
(``testkit.chat_server.trial_turn``, in the same process on a loopback port), the official openai client, every
stream through the strict stream validator; and ``trial_turn``'s answers on their own (the scripted chat server,
the openai client)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.chat_server import trial_turn

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "examples": ["Paris"]}, "unit": {"enum": ["celsius", "kelvin"]}},
        "required": ["city"],
    },
}
WARNING = re.compile(
    r"no --upstream given: answering with the project's scripted model at (http://127\.0\.0\.1:\d+/v1)"
)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with serve_process(None, tmp_path_factory.mktemp("trial")) as s:
        yield s


@pytest.fixture
def client(serve: Serve) -> Iterator[openai.OpenAI]:
    oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


def streamed(client: openai.OpenAI, **kwargs) -> Response:
    return validate_stream(
        list(client.responses.create(stream=True, **kwargs)), response_cls=Response, schema_host="full"
    )


def test_the_warning_names_the_scripted_model_on_its_own_loopback_port(serve: Serve, client: openai.OpenAI) -> None:
    found = [m for line in serve.log if (m := WARNING.search(line))]
    assert len(found) == 1, serve.log
    assert "WARNING" in next(line for line in serve.log if WARNING.search(line))
    trial_url = found[0].group(1)
    assert trial_url != serve.base_url  # its own port, not the server's
    # It is the one upstream: the scripted model's listing is what /v1/models serves.
    assert [m.id for m in client.models.list()] == ["scripted-model"]


def test_a_plain_streamed_request_is_answered_with_text(client: openai.OpenAI, serve: Serve) -> None:
    response = streamed(client, model="any-model-name", input="Hello there")
    assert response.status == "completed" and response.model == "any-model-name"
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text.startswith("You said: 'Hello there'.") and "--upstream" in response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    assert client.responses.retrieve(response.id).output_text == response.output_text
    assert serve.db.exists()  # the default store: sqlite in the data dir


def test_a_function_tool_round_trip_with_previous_response_id(client: openai.OpenAI) -> None:
    first = streamed(client, model="scripted-model", input="What is the weather in Paris?", tools=[WEATHER])
    assert first.status == "completed"
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}  # the required property, from its examples
    output = json.dumps({"city": "Paris", "sky": "sunny"})
    second = streamed(
        client,
        model="scripted-model",
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": output}],
        previous_response_id=first.id,
        tools=[WEATHER],
    )
    assert second.status == "completed" and second.previous_response_id == first.id
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text.startswith(f"get_weather returned: {output}")
    # Not streamed too, and a third turn along the chain: the user speaks again, the tool is called again.
    third = client.responses.create(
        model="scripted-model", input="And tomorrow?", previous_response_id=second.id, tools=[WEATHER]
    )
    assert [item.type for item in third.output] == ["function_call"]
    items = [item.type for item in client.responses.input_items.list(third.id, order="asc").data]
    assert items == ["message", "function_call", "function_call_output", "message", "message"]


def test_the_server_stops_with_its_scripted_model(tmp_path: Path) -> None:
    with serve_process(None, tmp_path) as s:
        found = [m for line in s.log if (m := WARNING.search(line))]
        assert found
        trial = openai.OpenAI(base_url=found[0].group(1), api_key="none", max_retries=0, timeout=5)
        assert [m.id for m in trial.models.list()] == ["scripted-model"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            trial.models.list()
        except openai.APIConnectionError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the scripted model still answers after the server stopped")


# trial_turn on its own: the scripted chat server with it as its default turn, the openai Chat Completions client.


@pytest.fixture
def chat() -> Iterator[openai.OpenAI]:
    with ScriptedChatServer(default_turn=trial_turn) as server:
        with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=10) as c:
            yield c


def chat_tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def test_trial_turn_arguments_from_the_schema(chat: openai.OpenAI) -> None:
    parameters = {
        "type": "object",
        "properties": {
            "q": {"type": "string"},
            "n": {"type": "integer"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "deep": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "optional": {"type": "string"},
        },
        "required": ["q", "n", "unit", "deep", "tags"],
    }
    done = chat.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "go"}], tools=[chat_tool("search", parameters)]
    )
    call = done.choices[0].message.tool_calls[0]
    assert done.choices[0].finish_reason == "tool_calls" and call.function.name == "search"
    assert json.loads(call.function.arguments) == {
        "q": "example",
        "n": 1,
        "unit": "c",
        "deep": {"on": True},
        "tags": [],
    }


def test_trial_turn_follows_tool_choice(chat: openai.OpenAI) -> None:
    tools = [chat_tool("a", {"type": "object", "properties": {}}), chat_tool("b", {})]
    user = [{"role": "user", "content": "hi"}]
    named = chat.chat.completions.create(
        model="m", messages=user, tools=tools, tool_choice={"type": "function", "function": {"name": "b"}}
    )
    assert named.choices[0].message.tool_calls[0].function.name == "b"
    assert json.loads(named.choices[0].message.tool_calls[0].function.arguments) == {}
    none = chat.chat.completions.create(model="m", messages=user, tools=tools, tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content.startswith("You said: 'hi'")


def test_the_default_turn_stays_ok_without_default_turn() -> None:
    with ScriptedChatServer() as server, openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        done = c.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], tools=[chat_tool("a", {})]
        )
        assert done.choices[0].message.content == "ok: hi" and done.choices[0].message.tool_calls is None
