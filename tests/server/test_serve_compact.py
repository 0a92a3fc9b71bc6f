"""Compaction in a real ``responses-rs serve`` process with the official openai client: ``POST
/v1/responses/compact`` (input, a stored chain), continuing from the compacted window, ``context_management``
compaction before answering, and bad requests."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import CompactedResponse, Response
from serve_process import Serve, serve_fixtures, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
SUMMARY = "The user is Ada; her favourite colour is teal; she asked about paint."


chat_server, serve, client = serve_fixtures(MODEL, state="serve-compact")


def contents(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        c = m.get("content")
        out.append(c if isinstance(c, str) else "".join(p.get("text", "") for p in c or []))
    return out


def test_compact_input_then_continue_from_the_window(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": SUMMARY, "usage": {"prompt_tokens": 40, "completion_tokens": 12}}, {"text": "Teal."}])
    history: list[Any] = [
        {"role": "user", "content": "I am Ada."},
        {"role": "assistant", "content": "Hello Ada, an old answer that should not come back."},
        {"role": "user", "content": "My favourite colour is teal. Which paint?"},
    ]
    compacted = client.responses.compact(model=MODEL, input=history)
    assert isinstance(compacted, CompactedResponse) and compacted.object == "response.compaction"
    # One non-streamed summarization call: the history, then the summarization prompt.
    summarize = chat_server.requests[0]
    assert summarize["stream"] is False and summarize["model"] == MODEL
    sent = contents(summarize["messages"])
    assert sent[:3] == [h["content"] for h in history] and "Summarize" in sent[3]
    # The window: the user messages, then one compaction item holding the summary.
    kinds = [item.type for item in compacted.output]
    assert kinds == ["message", "message", "compaction"]
    assert [item.content[0].text for item in compacted.output[:2]] == ["I am Ada.", history[2]["content"]]
    compaction = compacted.output[2]
    assert compaction.id.startswith("cmp_") and SUMMARY in compaction.encrypted_content
    assert compacted.usage.input_tokens == 40 and compacted.usage.output_tokens == 12
    # Not a response: its id does not continue a chain (the window is sent back as input).
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(compacted.id)

    # (openai-python types a user message of the window as an output message: no serializer warnings.)
    window = [item.model_dump(exclude_none=True, warnings=False) for item in compacted.output]
    answer = client.responses.create(model=MODEL, input=[*window, {"role": "user", "content": "Remind me?"}])
    assert answer.output_text == "Teal."
    messages = chat_server.requests[1]["messages"]
    # The model receives the summary (as an assistant message) and the user messages, never the old answer.
    assert contents(messages) == ["I am Ada.", history[2]["content"], compaction.encrypted_content, "Remind me?"]
    assert [m["role"] for m in messages] == ["user", "user", "assistant", "user"]
    assert not any("old answer" in c for c in contents(messages))
    # The continuation is stored with the compaction item among its input items.
    items = client.responses.input_items.list(answer.id, order="asc").data
    assert [item.type for item in items] == ["message", "message", "compaction", "message"]


def test_compact_a_stored_chain(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": "Noted, blue."}, {"text": "Also noted, red."}, {"text": SUMMARY}])
    first = client.responses.create(model=MODEL, input="Remember blue.")
    second = client.responses.create(model=MODEL, input="And red.", previous_response_id=first.id)
    compacted = client.responses.compact(
        model=MODEL, previous_response_id=second.id, input="Now summarize.", instructions="Be brief."
    )
    sent = contents(chat_server.requests[2]["messages"])
    assert sent[:5] == ["Remember blue.", "Noted, blue.", "And red.", "Also noted, red.", "Now summarize."]
    assert sent[5].startswith("Be brief.\n\n")
    assert [i.type for i in compacted.output] == ["message", "message", "message", "compaction"]
    assert [i.content[0].text for i in compacted.output[:3]] == ["Remember blue.", "And red.", "Now summarize."]
    # Only previous_response_id: the chain alone.
    chat_server.script([{"text": SUMMARY}])
    alone = client.responses.compact(model=MODEL, previous_response_id=second.id)
    assert [i.type for i in alone.output] == ["message", "message", "compaction"]


def test_context_management_compacts_past_the_threshold(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    long = "word " * 200  # 1,000 characters: about 250 tokens by the server's estimate
    chat_server.script([{"text": "First answer, long gone later."}, {"text": "Short."}])
    first = client.responses.create(model=MODEL, input=long)
    # Under the threshold: no compaction, the chain as usual.
    under = client.responses.create(
        model=MODEL,
        input="Short question?",
        previous_response_id=first.id,
        context_management=[{"type": "compaction", "compact_threshold": 100_000}],
    )
    assert len(chat_server.requests) == 2 and chat_server.requests[1]["stream"] is True
    assert under.output_text == "Short."
    # Past it: one summarization call, then the answer sees the window (a streamed request, validated).
    chat_server.script([{"text": SUMMARY}, {"text": "Answer."}])
    with client.responses.create(
        model=MODEL,
        input="Next question?",
        previous_response_id=first.id,
        context_management=[{"type": "compaction", "compact_threshold": 100}],
        stream=True,
    ) as stream:
        events = list(stream)
    validate_stream(events, response_cls=Response, schema_host="full")
    final = events[-1].response
    assert final.status == "completed" and final.output_text == "Answer."
    assert final.previous_response_id == first.id
    summarize, answer = chat_server.requests[2], chat_server.requests[3]
    assert summarize["stream"] is False
    assert contents(summarize["messages"])[:3] == [long, "First answer, long gone later.", "Next question?"]
    sent = contents(answer["messages"])
    assert sent[0] == long and sent[1] == "Next question?" and SUMMARY in sent[2]
    assert not any("long gone" in c for c in sent)
    # A continuation starts from the window (not the compacted turns).
    chat_server.script([{"text": "Later."}])
    later = client.responses.create(model=MODEL, input="Later?", previous_response_id=final.id)
    sent = contents(chat_server.requests[4]["messages"])
    assert SUMMARY in sent[2] and sent[3:] == ["Answer.", "Later?"]
    assert not any("long gone" in c for c in sent) and later.output_text == "Later."


def test_bad_compaction_requests_name_the_field(client: openai.OpenAI, serve: Serve) -> None:
    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{serve.base_url}{path}", json=body, headers={"authorization": "Bearer x"})

    cases = [
        ("/responses/compact", {"input": "x"}, "model"),
        ("/responses/compact", {"model": MODEL}, "input"),
        ("/responses/compact", {"model": MODEL, "input": 5}, "input"),
        ("/responses/compact", {"model": MODEL, "input": "x", "instructions": 3}, "instructions"),
        ("/responses/compact", {"model": MODEL, "previous_response_id": 7}, "previous_response_id"),
        (
            "/responses/compact",
            {"model": MODEL, "input": [{"type": "message", "role": "wizard", "content": "x"}]},
            "input[0].role",
        ),
        (
            "/responses",
            {"model": MODEL, "input": "x", "context_management": {"type": "compaction"}},
            "context_management",
        ),
        (
            "/responses",
            {"model": MODEL, "input": "x", "context_management": [{"type": "truncate"}]},
            "context_management[0].type",
        ),
        (
            "/responses",
            {"model": MODEL, "input": "x", "context_management": [{"type": "compaction", "compact_threshold": -3}]},
            "context_management[0].compact_threshold",
        ),
    ]
    # A compaction_trigger must be the final input item (test_serve_compaction_trigger.py: the item itself).
    trigger = [{"type": "compaction_trigger"}, {"role": "user", "content": "x"}]
    cases.append(("/responses", {"model": MODEL, "input": trigger}, "input[0].type"))
    for path, body, param in cases:
        answer = post(path, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["param"] == param, (body, answer.text)
    missing = post("/responses/compact", {"model": MODEL, "previous_response_id": "resp_nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "previous_response_not_found"
    # Through the client: a 400 error the caller can read.
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.compact(model=MODEL)
    assert caught.value.body["param"] == "input"  # type: ignore[index]


def test_upstream_failure_of_the_summarization_is_a_502(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"error": {"status": 500, "message": "boom"}}])
    with pytest.raises(openai.APIStatusError) as caught:
        client.responses.compact(model=MODEL, input="Summarize me.")
    assert caught.value.status_code == 502 and "boom" in caught.value.message


def test_context_management_on_the_websocket_compacts_a_store_false_chain(
    serve: Serve, chat_server: ScriptedChatServer
) -> None:
    import json

    from openai._models import construct_type
    from openai.types.responses import ResponseStreamEvent
    from websockets.sync.client import connect

    def turn(ws: Any, **request: Any) -> Response:
        ws.send(json.dumps({"type": "response.create", **request}))
        events = []
        while True:
            event = json.loads(ws.recv(timeout=30))
            events.append(construct_type(value=event, type_=ResponseStreamEvent))
            if event["type"] in ("response.completed", "response.incomplete", "response.failed", "error"):
                assert event["type"] == "response.completed", event
                return validate_stream(events, response_cls=Response, schema_host="full")

    chat_server.reset()
    chat_server.script(
        [{"text": "An answer to forget. " * 20}, {"text": SUMMARY}, {"text": "Second."}, {"text": "Third."}]
    )
    manage = [{"type": "compaction", "compact_threshold": 50}]
    with connect(serve.base_url.replace("http://", "ws://") + "/responses") as ws:
        first = turn(ws, model=MODEL, input="One", store=False)
        second = turn(
            ws, model=MODEL, input="Two", store=False, previous_response_id=first.id, context_management=manage
        )
        assert second.output_text == "Second." and chat_server.requests[1]["stream"] is False
        # The connection's cache now holds the window: the next turn (under the threshold) starts from it.
        turn(ws, model=MODEL, input="Three", store=False, previous_response_id=second.id)
    sent = contents(chat_server.requests[3]["messages"])
    assert sent[:2] == ["One", "Two"] and SUMMARY in sent[2] and sent[3:] == ["Second.", "Three"]


def test_compact_codex_shaped_history_with_developer_role_system(
    chat_server: ScriptedChatServer, tmp_path: Any
) -> None:
    """What Codex sends to /responses/compact: developer messages, encrypted reasoning, tool calls and their
    outputs, an earlier compaction item; with `--developer-role system` the summarization call sends no
    developer role either."""
    chat_server.reset()
    chat_server.script([{"text": SUMMARY}])
    history: list[Any] = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "user", "id": "msg_a", "content": [{"type": "input_text", "text": "List files."}]},
        {"type": "reasoning", "id": "rs_a", "summary": [], "encrypted_content": "opaque"},
        {"type": "function_call", "call_id": "call_1", "name": "exec_command", "arguments": '{"cmd":"ls"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
        {"type": "custom_tool_call", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch"},
        {"type": "custom_tool_call_output", "call_id": "call_2", "output": "Done."},
        {"type": "compaction", "encrypted_content": "An earlier summary."},
    ]
    with serve_process(chat_server.base_url, tmp_path, "--developer-role", "system") as serve:
        with openai.OpenAI(base_url=serve.base_url, api_key="x", max_retries=0, timeout=30) as client:
            compacted = client.responses.compact(model=MODEL, input=history)
    messages = chat_server.requests[0]["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[3]["content"] == "a.txt" and messages[6]["content"] == "An earlier summary."
    # The window keeps the user message only, then the new summary.
    assert [i.type for i in compacted.output] == ["message", "compaction"]
    assert compacted.output[0].content[0].text == "List files." and SUMMARY in compacted.output[1].encrypted_content
