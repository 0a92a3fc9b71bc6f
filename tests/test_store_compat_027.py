"""Store compatibility with llama-stack 0.2.7: llama-stack's own ``OpenAIResponsesImpl`` and ours share
one real sqlite kvstore file (two ``SqliteKVStoreImpl`` instances, as two server processes would).

* a response written by either side is readable by the other (``get_openai_response``) and can be
  continued by the other through ``previous_response_id``, with the messages in the right order;
* chains alternating implementations work;
* the raw JSON we store validates with llama-stack's ``OpenAIResponsePreviousResponseWithInputItems``
  and has the same keys (top level, response, every input and output item, every content part) as
  what llama-stack writes for the same request.

llama-stack's side always runs non-streamed (its 0.2.7 streaming is a wrapper around the same code);
ours runs streamed and non-streamed.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest
from json_shape import shape

if importlib.metadata.version("llama_stack") != "0.2.7":
    pytest.skip("llama-stack 0.2.7 store compatibility suite (installed: other version)", allow_module_level=True)

from conftest import (  # noqa: E402
    MODEL,
    OPENAI_EFFECTIVE_PARAMS,
    STORE_PREFIX,
    ToolCall,
    assert_full_openai_params,
    assert_llama_stack_record_params,
    impl_class,
    llamastack_impl_class,
    ls_dump,
    make_kvstore,
)
from llama_stack.apis.agents.openai_responses import (  # noqa: E402
    OpenAIResponseInputFunctionToolCallOutput,
    OpenAIResponseInputMessageContentImage,
    OpenAIResponseInputMessageContentText,
    OpenAIResponseInputToolFunction,
    OpenAIResponseInputToolWebSearch,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseOutputMessageContentOutputText,
    OpenAIResponseOutputMessageFunctionToolCall,
)
from llama_stack.apis.inference.inference import (  # noqa: E402
    OpenAIAssistantMessageParam,
    OpenAIChatCompletionContentPartTextParam,
    OpenAIToolMessageParam,
)
from llama_stack.providers.inline.agents.meta_reference.openai_responses import (  # noqa: E402
    OpenAIResponsePreviousResponseWithInputItems,
)
from llama_stack.providers.utils.kvstore.sqlite.sqlite import SqliteKVStoreImpl  # noqa: E402

pytestmark = pytest.mark.modes("nonstream-llama", "stream-llama")

WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    assert all(isinstance(p, OpenAIChatCompletionContentPartTextParam) for p in content), content
    return "".join(p.text for p in content)


def summarize(messages) -> list[tuple[str, str]]:
    out = []
    for m in messages:
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


class Sides:
    """Both implementations over one sqlite file, sharing the scripted collaborators."""

    def __init__(self, ls_impl, rs_impl, ls_store, rs_store, inference, stream: bool, collect):
        self.impls = {"ls": ls_impl, "rs": rs_impl}
        self.stores = {"ls": ls_store, "rs": rs_store}
        self.inference = inference
        self.stream = stream
        self.collect = collect

    async def create(self, side: str, input, **kw) -> OpenAIResponseObject:
        stream = self.stream if side == "rs" else False
        result = await self.impls[side].create_openai_response(input=input, model=MODEL, stream=stream, **kw)
        resp, _ = await self.collect(result)
        assert isinstance(resp, OpenAIResponseObject)
        assert resp.status == "completed"
        return resp

    async def get(self, side: str, id: str) -> OpenAIResponseObject:
        got = await self.impls[side].get_openai_response(id)
        assert isinstance(got, OpenAIResponseObject)
        return got

    async def raw(self, id: str) -> str:
        value = await SqliteKVStoreImpl.get(self.stores["ls"], key=f"{STORE_PREFIX}{id}")
        assert value is not None, f"nothing stored for {id}"
        return value


@pytest.fixture
async def sides(tmp_path, inference, tool_groups, tool_runtime, stream, collect) -> Sides:
    db = tmp_path / "shared" / "kvstore.db"
    ls_store = await make_kvstore(db)
    rs_store = await make_kvstore(db)
    ls_impl = llamastack_impl_class()(ls_store, inference, tool_groups, tool_runtime)
    rs_impl = impl_class()(rs_store, inference, tool_groups, tool_runtime)
    return Sides(ls_impl, rs_impl, ls_store, rs_store, inference, stream, collect)


OTHER = {"ls": "rs", "rs": "ls"}


@pytest.mark.parametrize("writer", ["ls", "rs"])
async def test_response_readable_and_continuable_by_the_other_side(sides, writer):
    reader = OTHER[writer]
    sides.inference.script.text("B").text("D")
    r1 = await sides.create(writer, "A")
    assert ls_dump(await sides.get(reader, r1.id)) == ls_dump(r1)

    r2 = await sides.create(reader, "C", previous_response_id=r1.id)
    assert summarize(sides.inference.script.messages(1)) == [("user", "A"), ("assistant", "B"), ("user", "C")]
    assert ls_dump(await sides.get(writer, r2.id)) == ls_dump(r2)
    assert len(sides.stores[writer].set_calls) == 1
    assert len(sides.stores[reader].set_calls) == 1


@pytest.mark.parametrize("order", [("ls", "rs", "ls"), ("rs", "ls", "rs")], ids=["ls-rs-ls", "rs-ls-rs"])
async def test_three_response_chain_alternating(sides, order):
    sides.inference.script.text("B").text("D").text("F")
    r1 = await sides.create(order[0], "A")
    r2 = await sides.create(order[1], [OpenAIResponseMessage(role="user", content="C")], previous_response_id=r1.id)
    r3 = await sides.create(order[2], "E", previous_response_id=r2.id)
    assert summarize(sides.inference.script.messages(2)) == [
        ("user", "A"),
        ("assistant", "B"),
        ("user", "C"),
        ("assistant", "D"),
        ("user", "E"),
    ]
    for r in (r1, r2, r3):
        for side in ("ls", "rs"):
            assert ls_dump(await sides.get(side, r.id)) == ls_dump(r)


@pytest.mark.parametrize("writer", ["ls", "rs"])
async def test_function_call_chain_across_sides(sides, writer):
    tools = [OpenAIResponseInputToolFunction(name="get_weather", parameters=WEATHER_PARAMS)]
    sides.inference.script.tool_calls(ToolCall("call_w", "get_weather", '{"city": "Paris"}'))
    sides.inference.script.text("Sunny.")
    r1 = await sides.create(writer, "Weather in Paris?", tools=tools)
    assert [o.type for o in r1.output] == ["function_call"]
    r2 = await sides.create(
        OTHER[writer],
        [OpenAIResponseInputFunctionToolCallOutput(call_id="call_w", output="sunny")],
        previous_response_id=r1.id,
        tools=tools,
    )
    assert summarize(sides.inference.script.messages(1)) == [
        ("user", "Weather in Paris?"),
        ("assistant", 'tool_calls:call_w:get_weather:{"city": "Paris"}'),
        ("tool", "call_w:sunny"),
    ]
    assert r2.output[0].content[0].text == "Sunny."


# ------------------------------------------------------------------------------------------------
# raw stored JSON
# ------------------------------------------------------------------------------------------------


def _script_and_request(scenario: str, script) -> dict:
    if scenario == "string":
        script.text("Hello!")
        return {"input": "Hi"}
    if scenario == "messages-with-parts":
        script.text("A llama.")
        return {
            "input": [
                OpenAIResponseMessage(role="system", content="Be brief."),
                OpenAIResponseMessage(
                    role="user",
                    content=[
                        OpenAIResponseInputMessageContentText(text="What is this?"),
                        OpenAIResponseInputMessageContentImage(image_url="https://example.com/l.png", detail="low"),
                    ],
                ),
                OpenAIResponseMessage(
                    role="assistant", content=[OpenAIResponseOutputMessageContentOutputText(text="An animal.")]
                ),
                OpenAIResponseMessage(role="user", content="Which one?"),
            ]
        }
    if scenario == "function-call-output":
        script.tool_calls(ToolCall("call_1", "get_weather", '{"city": "Paris"}'))
        return {
            "input": [OpenAIResponseMessage(role="user", content="Weather?")],
            "tools": [OpenAIResponseInputToolFunction(name="get_weather", parameters=WEATHER_PARAMS)],
        }
    if scenario == "function-call-items-input":
        script.text("It is sunny.")
        return {
            "input": [
                OpenAIResponseMessage(role="user", content="Weather?"),
                OpenAIResponseOutputMessageFunctionToolCall(
                    call_id="call_1", name="get_weather", arguments='{"city": "Paris"}', id="fc_1", status="completed"
                ),
                OpenAIResponseInputFunctionToolCallOutput(call_id="call_1", output="sunny"),
            ]
        }
    if scenario == "web-search":
        script.tool_calls(ToolCall("call_ws", "web_search", '{"query": "llamas"}'))
        script.text("Llamas are camelids.")
        return {"input": "Tell me about llamas", "tools": [OpenAIResponseInputToolWebSearch()]}
    raise AssertionError(scenario)


SCENARIOS = ["string", "messages-with-parts", "function-call-output", "function-call-items-input", "web-search"]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_stored_json_matches_llamastack(sides, scenario):
    ls_resp = await sides.create("ls", **_script_and_request(scenario, sides.inference.script))
    rs_resp = await sides.create("rs", **_script_and_request(scenario, sides.inference.script))

    ls_raw, rs_raw = await sides.raw(ls_resp.id), await sides.raw(rs_resp.id)
    parsed = OpenAIResponsePreviousResponseWithInputItems.model_validate_json(rs_raw)
    assert ls_dump(parsed.response) == ls_dump(rs_resp)

    ls_json, rs_json = json.loads(ls_raw), json.loads(rs_raw)
    # the record keeps llama-stack's values of the request parameters, as llama-stack's own record does,
    # while what was returned carries OpenAI's effective ones
    params = sorted(OPENAI_EFFECTIVE_PARAMS)
    assert [rs_json["response"][k] for k in params] == [ls_json["response"][k] for k in params]
    assert_llama_stack_record_params(rs_json["response"])
    assert_full_openai_params(rs_resp)
    assert sorted(rs_json) == sorted(ls_json)
    assert sorted(rs_json["response"]) == sorted(ls_json["response"])
    assert sorted(rs_json["input_items"]) == sorted(ls_json["input_items"])
    assert shape(rs_json["input_items"]) == shape(ls_json["input_items"])
    assert shape(rs_json["response"]["output"]) == shape(ls_json["response"]["output"])
    assert shape(rs_json) == shape(ls_json)
