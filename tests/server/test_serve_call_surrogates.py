"""`responses-rs serve` end to end: a UTF-16 surrogate pair that the upstream splits across two pieces of a
tool call's `function.arguments` (a model writing an emoji into a JSON argument) comes out as the one character,
per call, with the calls' deltas interleaved; a half that never meets its other half is U+FFFD."""

from __future__ import annotations

import json

import openai
from openai.types.responses import Response
from serve_process import serve_fixtures
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
TOOLS = [
    {"type": "function", "name": name, "parameters": {"type": "object", "properties": {"text": {"type": "string"}}}}
    for name in ("post", "log")
]

chat_server, serve, client = serve_fixtures(MODEL, state="serve-call-surrogates")


def _turn() -> dict:
    return {
        "interleave": True,
        "tool_calls": [
            {"name": "post", "id": "call_post", "arguments_pieces": ['{"text": "hi \ud83d', '\ude00 there"}']},
            # The high half's next piece does not begin with the low half: U+FFFD; then a pair split again.
            {"name": "log", "id": "call_log", "arguments_pieces": ['{"text": "\ud83c', "x\ud83c", '\udf89"}']},
        ],
    }


EXPECTED = {"call_post": '{"text": "hi \U0001f600 there"}', "call_log": '{"text": "\ufffdx\U0001f389"}'}


def test_a_pair_split_across_argument_pieces_is_one_character(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    chat_server.script(_turn())
    events = list(client.responses.create(model=MODEL, input="post a smile", tools=TOOLS, stream=True))
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed"
    calls = {o.id: o.call_id for o in final.output if o.type == "function_call"}
    streamed: dict[str, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            streamed[calls[e.item_id]] = streamed.get(calls[e.item_id], "") + e.delta
    assert streamed == EXPECTED
    final_arguments = {o.call_id: o.arguments for o in final.output if o.type == "function_call"}
    assert final_arguments == EXPECTED
    assert json.loads(final_arguments["call_post"]) == {"text": "hi \U0001f600 there"}
    # As stored.
    stored = client.responses.retrieve(final.id)
    assert {o.call_id: o.arguments for o in stored.output if o.type == "function_call"} == EXPECTED
    # The calls go back upstream as the model's tool calls with the joined arguments.
    chat_server.script({"text": "posted"})
    outputs = [{"type": "function_call_output", "call_id": c, "output": "ok"} for c in EXPECTED]
    follow = client.responses.create(model=MODEL, previous_response_id=final.id, input=outputs, tools=TOOLS)
    assert follow.output_text == "posted"
    sent = [m for m in chat_server.requests[-1]["messages"] if m.get("tool_calls")]
    assert {c["id"]: c["function"]["arguments"] for c in sent[0]["tool_calls"]} == EXPECTED


def test_not_streamed_to_the_client_the_same_arguments(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script(_turn())
    final = client.responses.create(model=MODEL, input="post a smile", tools=TOOLS)
    assert {o.call_id: o.arguments for o in final.output if o.type == "function_call"} == EXPECTED


def test_a_half_that_ends_the_round_is_replaced(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script(
        {"tool_calls": [{"name": "post", "id": "call_cut", "arguments_pieces": ['{"text": "a', "\ud83d"]}]}
    )
    events = list(client.responses.create(model=MODEL, input="cut", tools=TOOLS, stream=True))
    final = validate_stream(events, response_cls=Response, schema_host="full")
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert deltas == '{"text": "a\ufffd'
    assert [o.arguments for o in final.output if o.type == "function_call"] == [deltas]
