"""`web_search` served by a search backend (``--search-url``) through a real ``responses-rs serve`` process: the
official openai client -> serve -> the scripted Chat Completions server, which calls web_search; serve searches a
small local HTTP server standing in for a SearXNG instance (its JSON API), all on 127.0.0.1. Every stream goes
through the stream validator ("full" schema). Without a backend web_search is left out of what the model is
offered: tests/server/test_serve_codex_tools.py."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import Response
from searxng_stand_in import SearxStandIn
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.server._app import Config
from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
KEY = "search-sekrit"


def seven_results(q: str) -> dict[str, Any]:
    """What the stand-in SearXNG answers: seven results on example.org."""
    results = [
        {
            "title": f"Result {i} for {q}",
            "url": f"https://example.org/{i}",
            "content": f"snippet {i} about {q}",
            "engine": "stand-in",
            "score": 1.0 / i,
        }
        for i in range(1, 8)
    ]
    return {"query": q, "number_of_results": 7, "results": results}


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend() -> Iterator[SearxStandIn]:
    b = SearxStandIn(seven_results)
    yield b
    b.close()


@pytest.fixture(scope="module")
def serve(
    chat_server: ScriptedChatServer, backend: SearxStandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    extra = ("--search-url", backend.url, "--search-key", KEY, "--search-timeout", "5")
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve"), *extra) as s:
        yield s


@pytest.fixture
def client(serve: Serve, chat_server: ScriptedChatServer, backend: SearxStandIn) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    backend.requests.clear()
    backend.status = 200
    backend.delay = 0.0
    oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=60)
    yield oai
    oai.close()


def offered(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools") or []]


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "tool"]


def script_search(chat_server: ScriptedChatServer, query: str) -> None:
    chat_server.script(
        [
            {"tool_calls": [{"name": "web_search", "arguments": {"query": query}, "id": "call_ws"}]},
            {"text": "Found it."},
        ]
    )


@pytest.mark.parametrize("tool_type", ["web_search", "web_search_preview"])
def test_a_streamed_web_search_round_trip(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn, tool_type: str
) -> None:
    script_search(chat_server, "rust sans-io")
    events = list(
        client.responses.create(model=MODEL, stream=True, input="Search it", tools=[{"type": tool_type}])  # type: ignore[list-item]
    )
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output_text == "Found it."
    assert [item.type for item in final.output] == ["web_search_call", "message"]
    call = final.output[0]
    assert call.type == "web_search_call" and call.status == "completed"
    assert call.action is not None and call.action.model_dump(exclude_none=True) == {
        "type": "search",
        "query": "rust sans-io",
    }
    # The query reached the backend, in SearXNG's JSON API, with the key as a bearer token.
    assert backend.requests == [({"q": ["rust sans-io"], "format": ["json"]}, f"Bearer {KEY}")]
    # The model was offered web_search and received the top results.
    assert offered(chat_server.requests[0]) == ["web_search"]
    [seen] = tool_messages(chat_server.requests[1])
    got = json.loads(seen)
    assert got["query"] == "rust sans-io"
    assert [r["url"] for r in got["results"]] == [f"https://example.org/{i}" for i in range(1, 6)]
    assert got["results"][0] == {
        "title": "Result 1 for rust sans-io",
        "url": "https://example.org/1",
        "content": "snippet 1 about rust sans-io",
    }
    types = [e.type for e in events]
    for kind in (
        "response.web_search_call.in_progress",
        "response.web_search_call.searching",
        "response.web_search_call.completed",
    ):
        assert types.count(kind) == 1, (kind, types)
    assert types.index("response.web_search_call.completed") < types.index("response.output_text.delta")
    # The echoed request has the tool (the core echoes web_search_preview as web_search).
    assert [t.type for t in final.tools] == ["web_search"]


def test_a_web_search_not_streamed(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn
) -> None:
    script_search(chat_server, "weather in Lyon")
    final = client.responses.create(model=MODEL, input="Weather?", tools=[{"type": "web_search"}])
    assert final.status == "completed" and final.output_text == "Found it."
    call = final.output[0]
    assert call.type == "web_search_call" and call.status == "completed"
    assert call.action is not None and getattr(call.action, "query", None) == "weather in Lyon"
    assert [q for q, _ in backend.requests] == [{"q": ["weather in Lyon"], "format": ["json"]}]
    assert "snippet 1 about weather in Lyon" in tool_messages(chat_server.requests[1])[0]
    # Stored as completed: read back the same.
    again = client.responses.retrieve(final.id)
    assert again.output[0].type == "web_search_call" and again.output[0].status == "completed"
    # A chain goes on after it (the core replays the earlier turn as its messages and answer; a web_search_call
    # item carries no results, so the search is not in the next turn's history) and nothing is searched again.
    chat_server.script([{"text": "Still sunny."}])
    follow = client.responses.create(
        model=MODEL, previous_response_id=final.id, input="And now?", tools=[{"type": "web_search"}]
    )
    assert follow.status == "completed" and follow.output_text == "Still sunny."
    history = chat_server.requests[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert "Found it." in json.dumps(history[1]["content"]) and "And now?" in json.dumps(history[2]["content"])
    assert len(backend.requests) == 1


def test_a_failing_search_fails_only_its_call(
    client: openai.OpenAI, chat_server: ScriptedChatServer, backend: SearxStandIn
) -> None:
    backend.status = 500
    script_search(chat_server, "anything")
    events = list(client.responses.create(model=MODEL, stream=True, input="Search", tools=[{"type": "web_search"}]))
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output_text == "Found it."
    call = final.output[0]
    assert call.type == "web_search_call" and call.status == "failed"
    assert "response.web_search_call.completed" not in [e.type for e in events]
    assert len(backend.requests) == 1
    # The model was told the search failed, and answered.
    [seen] = tool_messages(chat_server.requests[1])
    assert seen.startswith("Error") and "HTTP 500" in seen


def test_a_search_backend_down_fails_only_the_call(chat_server: ScriptedChatServer, tmp_path: Any) -> None:
    chat_server.reset()
    down = f"http://127.0.0.1:{_closed_port()}"
    with serve_process(chat_server.base_url, tmp_path, "--search-url", down) as s:
        oai = openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0, timeout=60)
        try:
            script_search(chat_server, "nobody home")
            final = oai.responses.create(model=MODEL, input="Search", tools=[{"type": "web_search"}])
        finally:
            oai.close()
        assert final.status == "completed" and final.output_text == "Found it."
        assert final.output[0].type == "web_search_call" and final.output[0].status == "failed"
        [seen] = tool_messages(chat_server.requests[1])
        assert seen.startswith("Error") and "could not be reached" in seen
        deadline = time.monotonic() + 5
        while not any("web_search failed" in line for line in s.log) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any("web_search failed" in line for line in s.log), s.log


def test_a_search_past_its_timeout_fails_only_the_call(
    chat_server: ScriptedChatServer, backend: SearxStandIn, tmp_path: Any
) -> None:
    chat_server.reset()
    backend.requests.clear()
    backend.delay = 2.0
    try:
        with serve_process(chat_server.base_url, tmp_path, "--search-url", backend.url, "--search-timeout", "0.3") as s:
            oai = openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0, timeout=60)
            try:
                script_search(chat_server, "slow")
                started = time.monotonic()
                final = oai.responses.create(model=MODEL, input="Search", tools=[{"type": "web_search"}])
                elapsed = time.monotonic() - started
            finally:
                oai.close()
    finally:
        backend.delay = 0.0
    assert final.status == "completed" and final.output[0].status == "failed"  # type: ignore[union-attr]
    assert elapsed < 1.8, elapsed
    assert len(backend.requests) == 1
    assert "did not answer within 0.3 s" in tool_messages(chat_server.requests[1])[0]


def test_a_bad_search_url_is_refused() -> None:
    with pytest.raises(ValueError, match="search_url"):
        Config(upstream="http://127.0.0.1:1/v1", search_url="ftp://search.example")
    with pytest.raises(ValueError, match="search_timeout"):
        Config(upstream="http://127.0.0.1:1/v1", search_url="http://127.0.0.1:1", search_timeout=0)
