"""The server's upstream HTTP/1.1 client against the scripted Chat Completions server, in process: keep-alive
connections are reused (also after a stream whose chunked terminator is read in the background), and the hot path
(`ChunkedBody` + `Turn.feed_sse`) turns the upstream's bytes into the client's SSE bytes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from responses_rs._core import EventFactory, Turn
from responses_rs.server._upstream import Upstream, UpstreamFailure
from responses_rs.testkit import ScriptedChatServer


@pytest.fixture
def chat() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer().start()
    yield server
    server.stop()


def _stream_body(text: str) -> bytes:
    return json.dumps(
        {
            "model": "m",
            "messages": [{"role": "user", "content": text}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()


async def test_connections_are_kept_alive_and_reused(chat: ScriptedChatServer) -> None:
    upstream = Upstream(chat.base_url, "sk-test", timeout=10)
    try:
        first = await upstream.request("GET", "/models")
        assert first.status == 200 and json.loads(await first.body())["data"][0]["id"] == "scripted-model"
        assert len(upstream._idle) == 1
        conn = upstream._idle[0]
        for n in range(3):
            chat.script([{"text": f"answer {n}", "chunk_size": 3}])
            turn = Turn(EventFactory({}), "m", f"q{n}", emit_events=True, stream_inference=True, record_shape="full")
            action = turn.next_action()
            assert action[0] == "infer"
            out = turn.drain_sse()
            response = await upstream.request("POST", "/chat/completions", _stream_body(f"q{n}"))
            while not turn.sse_done:
                data = await response.read()
                assert data
                out += turn.feed_sse(data)
            response.finish_later()
            response.close()  # what the server does after the stream: a no-op while the rest is read
            turn.end_inference()
            while turn.next_action()[0] != "done":
                turn.stored()
            out += turn.drain_sse()
            events = [json.loads(line[6:]) for line in out.decode().splitlines() if line.startswith("data: ")]
            assert events[-1]["type"] == "response.completed"
            assert events[-1]["response"]["output"][0]["content"][0]["text"] == f"answer {n}"
            for _ in range(100):  # the terminator is read in the background, then the connection is pooled
                if upstream._idle:
                    break
                await asyncio.sleep(0.01)
            assert upstream._idle == [conn]
        assert chat.requests[-1]["messages"][-1]["content"] == "q2"
    finally:
        upstream.close()


async def test_error_status_and_unreachable_upstream(chat: ScriptedChatServer) -> None:
    upstream = Upstream(chat.base_url, None, timeout=5)
    try:
        chat.script([{"error": {"status": 503, "message": "busy"}}])
        response = await upstream.request("POST", "/chat/completions", _stream_body("x"))
        assert response.status == 503 and b"busy" in await response.body()
    finally:
        upstream.close()
    port = chat.port
    chat.stop()
    dead = Upstream(f"http://127.0.0.1:{port}/v1", None, timeout=2)
    with pytest.raises(UpstreamFailure, match="cannot connect"):
        await dead.request("GET", "/models")
    with pytest.raises(ValueError, match="not an http"):
        Upstream("ftp://x/v1", None, timeout=1)
