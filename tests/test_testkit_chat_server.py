"""Tests for the scripted Chat Completions server used as a stand-in model server.

They talk to it with the official ``openai`` client (and raw ``httpx``) so the
wire format is checked by the same code that responses-rs' users run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit import chat_server as chat_server_module

USER = [{"role": "user", "content": "hi there"}]


@pytest.fixture
def server() -> Iterator[ScriptedChatServer]:
    with ScriptedChatServer() as srv:
        yield srv


@pytest.fixture
def client(server: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0, timeout=10) as c:
        yield c


def _sse_events(text: str) -> list[Any]:
    """Parse an SSE body into JSON objects (``[DONE]`` kept as a string)."""
    events: list[Any] = []
    for block in text.split("\n\n"):
        block = block.strip()
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_base_url_and_context_manager() -> None:
    srv = ScriptedChatServer()
    with srv:
        assert srv.running
        assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
        assert srv.port > 0
    assert not srv.running
    with pytest.raises(RuntimeError):
        _ = srv.base_url


def test_streamed_text_reassembles(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script([{"text": "hello world", "chunk_size": 3}])
    stream = client.chat.completions.create(model="my-model", messages=USER, stream=True)
    chunks = list(stream)

    first = chunks[0]
    assert first.object == "chat.completion.chunk"
    assert first.id.startswith("chatcmpl-")
    assert first.model == "my-model"
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""

    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces == ["hel", "lo ", "wor", "ld"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hello world"

    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.choices[0].delta.content is None and last.choices[0].delta.tool_calls is None
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert all(c.choices[0].logprobs is None for c in chunks)
    assert len({c.id for c in chunks}) == 1


def test_default_chunk_size_and_include_usage(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"text": "abcdefghij"})
    chunks = list(
        client.chat.completions.create(model="m", messages=USER, stream=True, stream_options={"include_usage": True})
    )
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["abcd", "efgh", "ij"]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
    assert usage_chunk.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_usage_override(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"text": "x", "usage": {"prompt_tokens": 7, "completion_tokens": 5}})
    completion = client.chat.completions.create(model="m", messages=USER)
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        7,
        5,
        12,
    )


@pytest.mark.parametrize("interleave", [False, True])
def test_tool_calls_reassemble_with_client_accumulation(
    server: ScriptedChatServer, client: openai.OpenAI, interleave: bool
) -> None:
    server.script(
        {
            "text": "Let me check.",
            "tool_calls": [
                {"name": "get_weather", "arguments": '{"city": "Paris"}', "id": "call_1"},
                {"name": "get_time", "arguments": {"tz": "Europe/Paris"}, "id": "call_2"},
            ],
            "chunk_size": 5,
            "interleave": interleave,
        }
    )
    stream = client.chat.completions.create(
        model="m", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    state = ChatCompletionStreamState()
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        state.handle_chunk(chunk)
    final = state.get_final_completion()

    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [
        ("call_1", "function", "get_weather", '{"city": "Paris"}'),
        ("call_2", "function", "get_time", '{"tz": "Europe/Paris"}'),
    ]

    # Wire shape: first delta per call carries id/type/name and empty arguments,
    # later ones only index + an arguments piece.
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    firsts = [d for d in deltas if d.id is not None]
    assert [(d.index, d.type, d.function.name, d.function.arguments) for d in firsts] == [
        (0, "function", "get_weather", ""),
        (1, "function", "get_time", ""),
    ]
    rest = [d for d in deltas if d.id is None]
    assert rest and all(d.type is None and d.function.name is None for d in rest)
    assert all(0 < len(d.function.arguments) <= 5 for d in rest)
    indexes = [d.index for d in deltas]
    if interleave:
        assert indexes[:4] == [0, 1, 0, 1]
    else:
        assert indexes == sorted(indexes)

    # Text comes before any tool call.
    kinds = [
        "text" if c.choices[0].delta.content else "tool"
        for c in chunks
        if c.choices and (c.choices[0].delta.content or c.choices[0].delta.tool_calls)
    ]
    assert kinds == sorted(kinds, key=lambda k: k != "text")


def test_client_stream_helper_accumulates_tool_call(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"tool_calls": [{"name": "lookup", "arguments": '{"q": "rust"}'}], "chunk_size": 2})
    with client.chat.completions.stream(model="m", messages=USER) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "lookup"
    assert calls[0].function.arguments == '{"q": "rust"}'
    assert calls[0].id.startswith("call_")


def test_non_streamed_completion(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script(
        [
            {"text": "plain answer"},
            {"tool_calls": [{"name": "f", "arguments": "{}", "id": "call_x"}]},
            {"json": {"a": [1, 2]}},
        ]
    )
    c1 = client.chat.completions.create(model="my-model", messages=USER)
    assert c1.object == "chat.completion"
    assert c1.model == "my-model"
    assert c1.choices[0].message.role == "assistant"
    assert c1.choices[0].message.content == "plain answer"
    assert c1.choices[0].message.tool_calls is None
    assert c1.choices[0].finish_reason == "stop"
    assert c1.usage is not None and c1.usage.total_tokens > 0

    c2 = client.chat.completions.create(model="my-model", messages=USER)
    assert c2.choices[0].finish_reason == "tool_calls"
    assert c2.choices[0].message.content is None
    tool_calls = c2.choices[0].message.tool_calls
    assert tool_calls is not None
    assert tool_calls[0].id == "call_x" and tool_calls[0].function.name == "f"

    c3 = client.chat.completions.create(model="my-model", messages=USER)
    assert json.loads(c3.choices[0].message.content or "") == {"a": [1, 2]}


def test_default_turn_echoes_last_user_message(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "part"}]},
    ]
    c = client.chat.completions.create(model="m", messages=messages)
    assert c.choices[0].message.content == "ok: second part"
    chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "ok: second part"


@pytest.mark.parametrize("stream", [False, True])
def test_error_turn(server: ScriptedChatServer, client: openai.OpenAI, stream: bool) -> None:
    server.script([{"error": {"status": 500, "message": "boom"}}, {"error": {"status": 400, "message": "bad"}}])
    with pytest.raises(openai.InternalServerError) as excinfo:
        client.chat.completions.create(model="m", messages=USER, stream=stream)
    assert excinfo.value.status_code == 500
    assert "boom" in str(excinfo.value)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=USER, stream=stream)
    # the queue is drained: back to the default echo turn
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "ok: hi there"


def test_fail_after_chunks_drops_stream(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"text": "a long answer that never finishes", "chunk_size": 2, "fail_after_chunks": 3})
    stream = client.chat.completions.create(model="m", messages=USER, stream=True)
    received = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3
    # The server is still healthy afterwards.
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "ok: hi there"


def test_fail_after_chunks_non_streamed(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"text": "x", "fail_after_chunks": 0})
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=USER)


def test_requests_are_recorded(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    tools: list[Any] = [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    ]
    client.chat.completions.create(model="m1", messages=USER, temperature=0.25)
    list(client.chat.completions.create(model="m2", messages=USER, stream=True, tools=tools))
    reqs = server.wait_for_requests(2)
    assert [r["model"] for r in reqs] == ["m1", "m2"]
    assert reqs[0]["messages"] == USER
    assert reqs[0]["temperature"] == 0.25
    assert "stream" not in reqs[0] or not reqs[0]["stream"]
    assert reqs[1]["stream"] is True
    assert reqs[1]["tools"] == tools
    # snapshot semantics: mutating the copy does not affect the server
    reqs.clear()
    assert len(server.requests) == 2
    server.reset()
    assert server.requests == []


def test_callable_turns(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    seen: list[dict[str, Any]] = []

    def turn(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        if body.get("tools"):
            return {"tool_calls": [{"name": body["tools"][0]["function"]["name"], "arguments": "{}"}]}
        return {"text": f"{body['model']} got {len(body['messages'])} messages"}

    server.script([turn, turn])
    c = client.chat.completions.create(model="m", messages=USER)
    assert c.choices[0].message.content == "m got 1 messages"
    tools: list[Any] = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]
    c = client.chat.completions.create(model="m", messages=USER, tools=tools)
    tool_calls = c.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.name == "calc"
    assert len(seen) == 2 and server.pending == 0


def test_script_replaces_unless_append(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script([{"text": "one"}, {"text": "unused"}])
    server.script({"text": "two"})
    server.script([{"text": "three"}], append=True)
    assert server.pending == 2
    out = [client.chat.completions.create(model="m", messages=USER).choices[0].message.content for _ in range(2)]
    assert out == ["two", "three"]
    with pytest.raises(TypeError):
        server.script([42])  # type: ignore[list-item]


def test_models_endpoints() -> None:
    with ScriptedChatServer(models=["alpha", "beta"]) as srv:
        with openai.OpenAI(base_url=srv.base_url, api_key="k", max_retries=0) as c:
            assert [m.id for m in c.models.list()] == ["alpha", "beta"]
            model = c.models.retrieve("beta")
            assert model.id == "beta" and model.object == "model"
            with pytest.raises(openai.NotFoundError):
                c.models.retrieve("gamma")
            # the model defaults to the first one when the request omits it
        r = httpx.post(f"{srv.base_url}/chat/completions", json={"messages": USER})
        assert r.json()["model"] == "alpha"


def test_raw_wire_format_over_httpx(server: ScriptedChatServer) -> None:
    server.script({"text": "hey", "chunk_size": 10})
    with httpx.Client(base_url=server.base_url) as http:
        r = http.get("/models")
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
        assert r.json()["object"] == "list"

        with http.stream(
            "POST",
            "/chat/completions",
            json={"model": "m", "messages": USER, "stream": True, "stream_options": {"include_usage": True}},
        ) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["transfer-encoding"] == "chunked"
            body = resp.read().decode()
        # keep-alive: the same connection serves another request afterwards
        assert http.get("/models").status_code == 200

    events = _sse_events(body)
    assert events[-1] == "[DONE]"
    first, content, final, usage = events[:-1]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert content["choices"][0]["delta"] == {"content": "hey"}
    assert final["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    assert first["usage"] is None


def test_concurrent_requests(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        c = client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"n{i}"}], stream=False)
        results[i] = c.choices[0].message.content or ""

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {i: f"ok: n{i}" for i in range(8)}
    assert len(server.requests) == 8


def test_cli_prints_base_url_and_serves(tmp_path: Path) -> None:
    script = tmp_path / "turns.json"
    script.write_text(json.dumps([{"text": "from file"}]))
    pkg_root = str(Path(chat_server_module.__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with subprocess.Popen(
        [sys.executable, "-m", "responses_rs.testkit.chat_server", "--port", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            prefix, base_url = line.split(" ")
            assert prefix == "SCRIPTED_CHAT_SERVER"
            assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10) as c:
                assert c.chat.completions.create(model="m", messages=USER).choices[0].message.content == "from file"
                # out-of-process scripting through the control endpoint
                root = base_url[: -len("/v1")]
                httpx.post(f"{root}/__scripted__/script", json={"turns": [{"text": "remote"}]}).raise_for_status()
                assert c.chat.completions.create(model="m", messages=USER).choices[0].message.content == "remote"
                recorded = httpx.get(f"{root}/__scripted__/requests").json()["requests"]
                assert len(recorded) == 2
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0


# ---------------------------------------------------------------------------------------------------
# reasoning, refusal, late ids, arbitrary indexes, finish reasons, usage details


def _delta_extra(chunk: Any, key: str) -> Any:
    """A delta field the openai client does not model (``reasoning_content`` / ``reasoning``)."""
    delta = chunk.choices[0].delta
    return (delta.model_extra or {}).get(key)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_streamed_before_text(server: ScriptedChatServer, client: openai.OpenAI, field: str) -> None:
    turn: dict[str, Any] = {"reasoning": "Think: 2+2 is 4.", "text": "Four.", "chunk_size": 5}
    if field == "reasoning":
        turn["reasoning_field"] = "reasoning"
    server.script(turn)
    chunks = [c for c in client.chat.completions.create(model="m", messages=USER, stream=True) if c.choices]
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    assert all(_delta_extra(c, other) is None for c in chunks)
    reasoning = [_delta_extra(c, field) for c in chunks if _delta_extra(c, field) is not None]
    assert reasoning == ["Think", ": 2+2", " is 4", "."]
    # reasoning deltas carry only that key, all before the first content piece
    kinds = []
    for c in chunks[1:]:
        delta = c.choices[0].delta
        if _delta_extra(c, field) is not None:
            assert delta.content is None and delta.refusal is None and delta.tool_calls is None
            assert set(delta.model_dump(exclude_none=True)) == {field}
            kinds.append("reasoning")
        elif delta.content:
            kinds.append("text")
    assert kinds == ["reasoning"] * 4 + ["text"]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Four."

    server.script(turn)
    completion = client.chat.completions.create(model="m", messages=USER)
    message = completion.choices[0].message
    assert message.content == "Four."
    assert (message.model_extra or {}).get(field) == "Think: 2+2 is 4."
    assert other not in (message.model_extra or {})


def test_reasoning_raw_wire(server: ScriptedChatServer) -> None:
    server.script({"reasoning": "hmm", "text": "ok", "reasoning_field": "reasoning"})
    r = httpx.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    events = _sse_events(r.text)
    assert [e["choices"][0]["delta"] for e in events[1:-2]] == [{"reasoning": "hmm"}, {"content": "ok"}]


def test_reasoning_field_is_checked(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"reasoning": "x", "reasoning_field": "thoughts"})
    with pytest.raises(openai.InternalServerError, match="reasoning_field"):
        client.chat.completions.create(model="m", messages=USER)


def test_refusal_streamed_and_not(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"refusal": "I can't help with that.", "chunk_size": 8})
    with client.chat.completions.stream(model="m", messages=USER) as stream:
        chunks = []
        for event in stream:
            if event.type == "chunk":
                chunks.append(event.chunk)
        final = stream.get_final_completion()
    pieces = [c.choices[0].delta.refusal for c in chunks[1:] if c.choices and c.choices[0].delta.refusal]
    assert pieces == ["I can't ", "help wit", "h that."]
    assert all(not (c.choices and c.choices[0].delta.content) for c in chunks)
    assert final.choices[0].message.refusal == "I can't help with that."
    assert final.choices[0].finish_reason == "stop"

    server.script({"refusal": "No.", "reasoning": "policy"})
    message = client.chat.completions.create(model="m", messages=USER).choices[0].message
    assert (message.content, message.refusal) == (None, "No.")
    assert (message.model_extra or {})["reasoning_content"] == "policy"

    # order on the wire: reasoning, refusal, text
    server.script({"reasoning": "r", "refusal": "f", "text": "t"})
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    order = []
    for c in chunks[1:-1]:
        delta = c.choices[0].delta
        order += [k for k in ("reasoning_content", "refusal", "content") if delta.model_dump().get(k)]
    assert order == ["reasoning_content", "refusal", "content"]


@pytest.mark.parametrize("interleave", [False, True])
def test_tool_call_ids_late(server: ScriptedChatServer, client: openai.OpenAI, interleave: bool) -> None:
    server.script(
        {
            "tool_calls": [
                {"name": "a", "arguments": '{"x": 1}', "id": "call_a"},
                {"name": "b", "arguments": "", "id": "call_b"},
                {"name": "c", "arguments": '{"z": 3}', "id": "call_c"},
            ],
            "id_late": True,
            "interleave": interleave,
            "chunk_size": 3,
        }
    )
    stream = client.chat.completions.create(model="m", messages=USER, stream=True)
    state = ChatCompletionStreamState()
    deltas = []
    for chunk in stream:
        state.handle_chunk(chunk)
        if chunk.choices:
            deltas += chunk.choices[0].delta.tool_calls or []
    by_call: dict[int, list[Any]] = {}
    for d in deltas:
        by_call.setdefault(d.index, []).append(d)
    assert sorted(by_call) == [0, 1, 2]
    for index, name, call_id in ((0, "a", "call_a"), (1, "b", "call_b"), (2, "c", "call_c")):
        first, second, *rest = by_call[index]
        # first delta: index, type and name, no id; the id comes with the next delta of that call
        assert (first.id, first.type, first.function.name, first.function.arguments) == (None, "function", name, "")
        assert second.id == call_id and second.type is None and second.function.name is None
        assert all(d.id is None for d in rest)
    assert by_call[1][1].function.arguments == ""  # empty arguments: the id comes with an empty piece
    assert len(by_call[1]) == 2
    assert by_call[0][1].function.arguments == '{"x'
    if interleave:
        assert [d.index for d in deltas[:6]] == [0, 1, 2, 0, 1, 2]
    calls = state.get_final_completion().choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "a", '{"x": 1}'),
        ("call_b", "b", ""),
        ("call_c", "c", '{"z": 3}'),
    ]


def test_tool_call_id_late_per_call_and_non_streamed(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    turn = {"tool_calls": [{"name": "a", "id": "call_a", "id_late": True}, {"name": "b", "id": "call_b"}]}
    server.script([turn, turn])
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert [(d.index, d.id) for d in deltas] == [(0, None), (0, "call_a"), (1, "call_b")]
    message = client.chat.completions.create(model="m", messages=USER).choices[0].message
    assert [c.id for c in message.tool_calls or []] == ["call_a", "call_b"]


def test_tool_call_arbitrary_indexes(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    turn = {
        "tool_calls": [
            {"name": "a", "arguments": "{}", "index": 7},
            {"name": "b", "arguments": "{}", "index": 3},
        ],
        "interleave": True,
    }
    server.script(turn)
    # (openai-python's own stream accumulator takes the index for a list position, so it cannot
    # reassemble these; the deltas are checked as they come)
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert [d.index for d in deltas] == [7, 3, 7, 3]
    assert [(d.index, d.function.name) for d in deltas if d.id] == [(7, "a"), (3, "b")]
    assert [(d.index, d.function.arguments) for d in deltas if not d.id] == [(7, "{}"), (3, "{}")]

    server.script({"tool_calls": [{"name": "a", "index": 1}, {"name": "b", "index": 1}]})
    with pytest.raises(openai.InternalServerError, match="distinct"):
        client.chat.completions.create(model="m", messages=USER)


@pytest.mark.parametrize("reason", ["length", "content_filter"])
@pytest.mark.parametrize("stream", [False, True])
def test_finish_reason_after_partial_text(
    server: ScriptedChatServer, client: openai.OpenAI, reason: str, stream: bool
) -> None:
    server.script({"text": "The beginning of a long", "finish_reason": reason, "chunk_size": 8})
    if not stream:
        choice = client.chat.completions.create(model="m", messages=USER).choices[0]
        assert (choice.message.content, choice.finish_reason) == ("The beginning of a long", reason)
        return
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The beginning of a long"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == [reason]
    assert chunks[-1].choices[0].finish_reason == reason and chunks[-1].choices[0].delta.content is None


def test_finish_reason_length_with_tool_call_stream(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"tool_calls": [{"name": "f", "arguments": '{"a": '}], "finish_reason": "length"})
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize("stream", [False, True])
def test_usage_details(server: ScriptedChatServer, client: openai.OpenAI, stream: bool) -> None:
    turn = {
        "reasoning": "x" * 40,  # 10 reasoning tokens
        "text": "y" * 8,  # 2 text tokens
        "usage": {"prompt_tokens": 30, "prompt_tokens_details": {"cached_tokens": 12}},
    }
    server.script([turn, {"text": "z", "usage": {"completion_tokens_details": {"reasoning_tokens": 9}}}])
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="m", messages=USER, stream=True, stream_options={"include_usage": True}
            )
        )
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(model="m", messages=USER).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (30, 12, 42)
    assert usage.prompt_tokens_details is not None and usage.completion_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 12
    assert usage.prompt_tokens_details.audio_tokens == 0  # nested override merged key by key
    assert usage.completion_tokens_details.reasoning_tokens == 10
    assert usage.completion_tokens_details.accepted_prediction_tokens == 0

    second = client.chat.completions.create(model="m", messages=USER).usage
    assert second is not None and second.completion_tokens_details is not None
    assert second.completion_tokens_details.reasoning_tokens == 9
    assert second.prompt_tokens_details is not None and second.prompt_tokens_details.cached_tokens == 0


def test_usage_not_streamed_without_include_usage(server: ScriptedChatServer, client: openai.OpenAI) -> None:
    server.script({"text": "hi", "reasoning": "r"})
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
