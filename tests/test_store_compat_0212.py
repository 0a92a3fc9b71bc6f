"""Store compatibility with llama-stack 0.2.12: llama-stack's own ``OpenAIResponsesImpl`` and ours share
one sqlite file through two real ``ResponsesStore`` instances (as two server processes would).

* a response written by either side is readable by the other (``get_openai_response``,
  ``list_openai_responses``, ``list_openai_response_input_items``) and can be continued by the other
  through ``previous_response_id``, with the messages in the right order;
* chains alternating implementations work;
* the row we store validates as llama-stack's ``OpenAIResponseObjectWithInput`` and has the same keys
  (top level, every input and output item, every content part) as llama-stack's row for the same
  request.

llama-stack's side always runs non-streamed (its events lack sequence numbers, and its non-streamed
path is the streamed one drained); ours runs streamed and non-streamed.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any
from unittest.mock import patch

import pytest
from json_shape import shape

if importlib.metadata.version("llama_stack") != "0.2.12":
    pytest.skip("llama-stack 0.2.12 store compatibility suite (installed: other version)", allow_module_level=True)

pytest_plugins = ["conftest_0212"]
pytest.register_assert_rewrite("conftest_0212")

from conftest import MODEL, ToolCall  # noqa: E402
from conftest_0212 import (  # noqa: E402
    OPENAI_EFFECTIVE_PARAMS,
    collect_0212,
    conversation,
    dump,
    item_summary,
    ls_class,
    make_responses_store,
    mcp_tooldef,
    page,
    rs_class,
    stored_rows,
    summarize,
)
from llama_stack.apis.agents import Order  # noqa: E402
from llama_stack.apis.agents.openai_responses import (  # noqa: E402
    OpenAIResponseInputFunctionToolCallOutput,
    OpenAIResponseInputMessageContentImage,
    OpenAIResponseInputMessageContentText,
    OpenAIResponseInputToolFileSearch,
    OpenAIResponseInputToolFunction,
    OpenAIResponseInputToolMCP,
    OpenAIResponseInputToolWebSearch,
    OpenAIResponseMessage,
    OpenAIResponseObject,
    OpenAIResponseObjectWithInput,
    OpenAIResponseOutputMessageContentOutputText,
    OpenAIResponseOutputMessageFunctionToolCall,
    OpenAIResponseText,
)
from llama_stack.apis.tools import ToolInvocationResult  # noqa: E402

pytestmark = pytest.mark.modes("nonstream-llama", "stream-openai")

LS_MODULE = "llama_stack.providers.inline.agents.meta_reference.openai_responses"
MCP_URL = "http://alpha.test/sse"
WEATHER_PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OTHER = {"ls": "rs", "rs": "ls"}


class Sides:
    """Both implementations over one sqlite file, sharing the scripted collaborators."""

    def __init__(self, impls: dict[str, Any], stores: dict[str, Any], db, inference, stream: bool):
        self.impls = impls
        self.stores = stores
        self.db = db
        self.inference = inference
        self.stream = stream

    async def create(self, side: str, input, **kw) -> OpenAIResponseObject:
        stream = self.stream if side == "rs" else False
        result = await self.impls[side].create_openai_response(input=input, model=MODEL, stream=stream, **kw)
        resp, _ = await collect_0212(result)
        assert isinstance(resp, OpenAIResponseObject)
        assert resp.status == "completed", resp.error
        return resp

    async def get(self, side: str, id: str) -> OpenAIResponseObject:
        got = await self.impls[side].get_openai_response(id)
        assert isinstance(got, OpenAIResponseObject)
        return got

    async def assert_same_everywhere(self, *responses: OpenAIResponseObject):
        """Each response reads back identically through both sides (get, list, input items)."""
        for r in responses:
            for side in ("ls", "rs"):
                assert dump(await self.get(side, r.id)) == dump(r), side
            ls_items = await self.impls["ls"].list_openai_response_input_items(r.id)
            rs_items = await self.impls["rs"].list_openai_response_input_items(r.id)
            assert rs_items.model_dump() == ls_items.model_dump()
        ls_list = await self.impls["ls"].list_openai_responses(None, 50, None, Order.asc)
        rs_list = await self.impls["rs"].list_openai_responses(None, 50, None, Order.asc)
        assert rs_list.model_dump() == ls_list.model_dump()
        assert {r.id for r in responses} <= {r.id for r in rs_list.data}


@pytest.fixture
async def sides(tmp_path, sql_engines, inference, tool_groups_0212, tool_runtime, vector_io, stream) -> Sides:
    db = tmp_path / "shared" / "responses.db"
    stores = {"ls": await make_responses_store(db), "rs": await make_responses_store(db)}
    impls = {
        side: cls(
            inference_api=inference,
            tool_groups_api=tool_groups_0212,
            tool_runtime_api=tool_runtime,
            responses_store=stores[side],
            vector_io_api=vector_io,
        )
        for side, cls in (("ls", ls_class()), ("rs", rs_class()))
    }
    return Sides(impls, stores, db, inference, stream)


@pytest.fixture
def mcp_both(mcp):
    """MCP patched for ours (conftest_0212's ``mcp``) and for llama-stack's module-level imports."""
    mcp.serve(MCP_URL, mcp_tooldef("alpha_lookup", "Look a thing up", "query"))
    mcp.invoke.return_value = ToolInvocationResult(content="alpha result")
    with patch(f"{LS_MODULE}.list_mcp_tools", mcp.list), patch(f"{LS_MODULE}.invoke_mcp_tool", mcp.invoke):
        yield mcp


# ------------------------------------------------------------------------------------------------
# reading and continuing the other side's responses
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["ls", "rs"])
async def test_response_readable_and_continuable_by_the_other_side(sides, writer):
    reader = OTHER[writer]
    sides.inference.script.text("B").text("D")
    r1 = await sides.create(writer, "A", instructions="Be brief.")
    assert len(sides.stores[writer].stored()) == 1
    await sides.assert_same_everywhere(r1)
    items = await sides.impls[reader].list_openai_response_input_items(r1.id)
    assert item_summary(items.data) == [("user", "A")]

    r2 = await sides.create(reader, "C", previous_response_id=r1.id)
    # the writer's instructions are not carried over; its input and output are
    assert summarize(sides.inference.script.messages(1)) == [("user", "A"), ("assistant", "B"), ("user", "C")]
    assert len(sides.stores[reader].stored()) == 1
    await sides.assert_same_everywhere(r1, r2)
    items = await sides.impls[writer].list_openai_response_input_items(r2.id, order=Order.asc)
    assert item_summary(items.data) == [("user", "A"), ("assistant", "B"), ("user", "C")]


@pytest.mark.parametrize("order", [("ls", "rs", "ls"), ("rs", "ls", "rs")], ids=["ls-rs-ls", "rs-ls-rs"])
async def test_three_response_chain_alternating(sides, order):
    sides.inference.script.text("B").text("D").text("F")
    r1 = await sides.create(order[0], "A")
    r2 = await sides.create(order[1], [OpenAIResponseMessage(role="user", content="C")], previous_response_id=r1.id)
    r3 = await sides.create(order[2], "E", previous_response_id=r2.id, instructions="Third only.")
    assert summarize(sides.inference.script.messages(2)) == [
        ("system", "Third only."),
        ("user", "A"),
        ("assistant", "B"),
        ("user", "C"),
        ("assistant", "D"),
        ("user", "E"),
    ]
    assert r3.output[0].content[0].text == "F"
    await sides.assert_same_everywhere(r1, r2, r3)
    items = await sides.impls["rs"].list_openai_response_input_items(r3.id, order=Order.asc)
    assert item_summary(items.data) == [
        ("user", "A"),
        ("assistant", "B"),
        ("user", "C"),
        ("assistant", "D"),
        ("user", "E"),
    ]


@pytest.mark.parametrize("tool_kind", ["web_search", "file_search"])
async def test_llamastack_tool_response_continued_by_ours(sides, vector_io, tool_kind):
    """(The other direction fails inside llama-stack 0.2.12 itself: it reads ``.content`` of the
    web_search_call / file_search_call items it finds in the previous output.)"""
    vector_io.pages["vs_1"] = page("q", ("file-1", "notes.txt", 0.8, "Llamas hum."))
    tool, call = {
        "web_search": (OpenAIResponseInputToolWebSearch(), ToolCall("call_t", "web_search", '{"query": "q"}')),
        "file_search": (
            OpenAIResponseInputToolFileSearch(vector_store_ids=["vs_1"]),
            ToolCall("call_t", "knowledge_search", '{"query": "q"}'),
        ),
    }[tool_kind]
    sides.inference.script.tool_calls(call).text("First answer.").text("Second answer.")
    r1 = await sides.create("ls", "First question", tools=[tool])
    assert r1.output[0].type == f"{tool_kind}_call"

    r2 = await sides.create("rs", "Second question", previous_response_id=r1.id)
    assert conversation(sides.inference.script.messages(2)) == [
        ("user", "First question"),
        ("assistant", "First answer."),
        ("user", "Second question"),
    ]
    await sides.assert_same_everywhere(r1, r2)


# ------------------------------------------------------------------------------------------------
# the stored row
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
    if scenario == "instructions-json-schema":
        script.text('{"city": "Dublin"}')
        return {
            "input": "Capital of Ireland?",
            "instructions": "Answer in JSON.",
            "text": OpenAIResponseText(
                format={"type": "json_schema", "name": "City", "schema": SCHEMA, "strict": True}
            ),
            "temperature": 0.2,
        }
    if scenario == "function-call-output":
        script.tool_calls(ToolCall("call_1", "get_weather", '{"city": "Paris"}'))
        return {
            "input": [OpenAIResponseMessage(role="user", content="Weather?")],
            "tools": [
                OpenAIResponseInputToolFunction(name="get_weather", description="Weather", parameters=WEATHER_PARAMS)
            ],
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
    if scenario == "mcp":
        script.tool_calls(ToolCall("call_m", "alpha_lookup", '{"query": "llamas"}'))
        script.text("Alpha answered.")
        return {
            "input": "Ask alpha",
            "tools": [OpenAIResponseInputToolMCP(server_label="alpha", server_url=MCP_URL)],
        }
    raise AssertionError(scenario)


SCENARIOS = [
    "string",
    "messages-with-parts",
    "instructions-json-schema",
    "function-call-output",
    "function-call-items-input",
    "web-search",
    "mcp",
]


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_stored_row_matches_llamastack(sides, mcp_both, scenario):
    ls_resp = await sides.create("ls", **_script_and_request(scenario, sides.inference.script))
    rs_request = _script_and_request(scenario, sides.inference.script)
    rs_resp = await sides.create("rs", **rs_request)

    rows = stored_rows(sides.db)
    ls_row, rs_row = rows[ls_resp.id], rows[rs_resp.id]
    parsed = OpenAIResponseObjectWithInput.model_validate(rs_row)
    assert dump(parsed) == dump(rs_resp)
    # the row keeps llama-stack's own values of the request parameters (not the full object's effective
    # top_p 1.0 / parallel_tool_calls True / truncation "disabled"), as llama-stack's row does; the
    # temperature is the request's (llama-stack 0.2.12 itself records none)
    params = OPENAI_EFFECTIVE_PARAMS - {"temperature"}
    assert (
        {k: rs_row[k] for k in params}
        == {k: ls_row[k] for k in params}
        == {
            "parallel_tool_calls": False,
            "top_p": None,
            "truncation": None,
        }
    )
    assert rs_row["temperature"] == rs_request.get("temperature")
    assert (rs_resp.top_p, rs_resp.parallel_tool_calls, rs_resp.truncation) == (1.0, True, "disabled")
    assert parsed.input == sides.stores["rs"].stored()[0]["input"]

    assert sorted(rs_row) == sorted(ls_row)
    assert shape(rs_row["input"]) == shape(ls_row["input"])
    assert shape(rs_row["output"]) == shape(ls_row["output"])
    assert shape(rs_row) == shape(ls_row)


async def test_stored_file_search_row_readable_and_keys_cover_llamastack(sides, vector_io):
    """file_search_call results: ours carry llama-stack's keys (file_id, filename, text, score) and may
    add OpenAI's ``attributes``; the rest of the row has llama-stack's shape."""
    vector_io.pages["vs_1"] = page("q", ("file-1", "notes.txt", 0.8, "Llamas hum."), attributes={"lang": "en"})
    for _ in ("ls", "rs"):
        sides.inference.script.tool_calls(ToolCall("call_fs", "knowledge_search", '{"query": "q"}')).text("Hum.")
    tools = [OpenAIResponseInputToolFileSearch(vector_store_ids=["vs_1"])]
    ls_resp = await sides.create("ls", "Llama facts?", tools=tools)
    rs_resp = await sides.create("rs", "Llama facts?", tools=tools)

    rows = stored_rows(sides.db)
    ls_row, rs_row = rows[ls_resp.id], rows[rs_resp.id]
    OpenAIResponseObjectWithInput.model_validate(rs_row)
    ls_results, rs_results = ls_row["output"][0].pop("results"), rs_row["output"][0].pop("results")
    assert len(rs_results) == len(ls_results) == 1
    assert set(ls_results[0]) <= set(rs_results[0])
    assert {k: rs_results[0][k] for k in ("file_id", "filename", "text", "score")} == {
        "file_id": "file-1",
        "filename": "notes.txt",
        "text": "Llamas hum.",
        "score": 0.8,
    }
    assert shape(rs_row) == shape(ls_row)
    await sides.assert_same_everywhere(ls_resp, rs_resp)
