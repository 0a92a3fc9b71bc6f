"""Several upstreams behind one ``responses-rs serve`` process: two scripted Chat Completions servers serving
different models, the official openai client. Each model's request reaches the upstream that lists it (checked in
the scripted servers' recorded requests), ``GET /v1/models`` is the union, an unknown model is a 404 naming
``model``, aliases target models on either upstream, and a chain alternating between them continues."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.server import parser, upstream_pairs
from responses_rs.testkit import ScriptedChatServer

A_MODEL, B_MODEL, SHARED = "model-a", "model-b", "shared-model"


@pytest.fixture(scope="module")
def chat_a() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[A_MODEL, SHARED]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chat_b() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[B_MODEL, SHARED]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def serve(chat_a: ScriptedChatServer, chat_b: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("serve-upstreams")
    with serve_process(
        chat_a.base_url,
        data,
        "--upstream-key",
        "sk-a",
        "--upstream",
        chat_b.base_url,
        "--upstream-key",
        "",
        "--model-alias",
        f"fast={B_MODEL}",
        "--model-alias",
        f"big={A_MODEL}",
    ) as s:
        yield s


@pytest.fixture
def client(serve: Serve, chat_a: ScriptedChatServer, chat_b: ScriptedChatServer) -> Iterator[openai.OpenAI]:
    chat_a.reset()
    chat_b.reset()
    oai = openai.OpenAI(base_url=serve.base_url, api_key="none", max_retries=0, timeout=30)
    yield oai
    oai.close()


def _chat_requests(server: ScriptedChatServer) -> list[dict]:
    """The Chat Completions requests a scripted server received (its GET /models are not recorded)."""
    return server.requests


def _texts(request: dict) -> list[str]:
    out = []
    for message in request["messages"]:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        out.append(f"{message['role']}:{content}")
    return out


def test_each_model_reaches_its_own_upstream(client: openai.OpenAI, chat_a, chat_b) -> None:
    chat_a.script([{"text": "from A"}])
    chat_b.script([{"text": "from B"}])
    a = client.responses.create(model=A_MODEL, input="to A")
    assert a.status == "completed" and a.output_text == "from A" and a.model == A_MODEL
    events = list(client.responses.create(model=B_MODEL, input="to B", stream=True))
    b = validate_stream(events, response_cls=Response, schema_host="full")
    assert b.status == "completed" and b.output_text == "from B"
    [sent_a] = _chat_requests(chat_a)
    [sent_b] = _chat_requests(chat_b)
    assert sent_a["model"] == A_MODEL and _texts(sent_a)[-1] == "user:to A"
    assert sent_b["model"] == B_MODEL and _texts(sent_b)[-1] == "user:to B"
    # A model both list goes to the first upstream given.
    chat_a.script([{"text": "shared from A"}])
    assert client.responses.create(model=SHARED, input="s").output_text == "shared from A"
    assert [r["model"] for r in _chat_requests(chat_a)] == [A_MODEL, SHARED] and len(_chat_requests(chat_b)) == 1


def test_models_is_the_union_with_the_aliases(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert sorted(ids) == sorted([A_MODEL, SHARED, B_MODEL, "fast", "big"])


def test_an_unknown_model_is_a_404_naming_model(client: openai.OpenAI, chat_a, chat_b) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input="x")
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"], error["type"]) == ("model_not_found", "model", "invalid_request_error")
    assert "no-such-model" in error["message"]
    with pytest.raises(openai.NotFoundError):  # streamed: refused before any event
        list(client.responses.create(model="no-such-model", input="x", stream=True))
    assert _chat_requests(chat_a) == [] and _chat_requests(chat_b) == []


def test_aliases_target_models_on_either_upstream(client: openai.OpenAI, chat_a, chat_b) -> None:
    chat_b.script([{"text": "fast answer"}])
    chat_a.script([{"text": "big answer"}])
    assert client.responses.create(model="fast", input="q1").output_text == "fast answer"
    assert client.responses.create(model="big", input="q2").output_text == "big answer"
    assert [r["model"] for r in _chat_requests(chat_b)] == [B_MODEL]
    assert [r["model"] for r in _chat_requests(chat_a)] == [A_MODEL]


def test_a_chain_alternating_upstreams_continues(client: openai.OpenAI, chat_a, chat_b) -> None:
    chat_a.script([{"text": "one"}, {"text": "three"}])
    chat_b.script([{"text": "two"}])
    r1 = client.responses.create(model=A_MODEL, input="first")
    events = list(client.responses.create(model="fast", input="second", previous_response_id=r1.id, stream=True))
    r2 = validate_stream(events, response_cls=Response, schema_host="full")
    r3 = client.responses.create(model="big", input="third", previous_response_id=r2.id)
    assert (r1.output_text, r2.output_text, r3.output_text) == ("one", "two", "three")
    sent_a = _chat_requests(chat_a)
    [sent_b] = _chat_requests(chat_b)
    assert _texts(sent_b) == ["user:first", "assistant:one", "user:second"]
    assert _texts(sent_a[1]) == ["user:first", "assistant:one", "user:second", "assistant:two", "user:third"]
    items = client.responses.input_items.list(r3.id)
    assert len(items.data) == 5


def test_a_model_added_later_is_found_on_a_miss(client: openai.OpenAI, chat_b) -> None:
    chat_b.models.append("late-model")
    try:
        time.sleep(1.1)  # a miss reads the listings again at most once a second
        chat_b.script([{"text": "late"}])
        assert client.responses.create(model="late-model", input="x").output_text == "late"
        assert [r["model"] for r in _chat_requests(chat_b)] == ["late-model"]
    finally:
        chat_b.models.remove("late-model")


def test_input_tokens_and_compact_go_to_the_models_upstream(serve: Serve, client: openai.OpenAI, chat_a, chat_b):
    chat_b.script([{"text": "x", "usage": {"prompt_tokens": 42, "completion_tokens": 1}}])
    answer = httpx.post(
        serve.base_url + "/responses/input_tokens", json={"model": "fast", "input": "count me"}, timeout=30
    )
    assert answer.status_code == 200 and answer.json()["input_tokens"] == 42
    assert [r["model"] for r in _chat_requests(chat_b)] == [B_MODEL] and _chat_requests(chat_a) == []
    chat_a.script([{"text": "a summary"}])
    compacted = httpx.post(
        serve.base_url + "/responses/compact", json={"model": "big", "input": "a long story"}, timeout=30
    )
    assert compacted.status_code == 200, compacted.text
    assert [r["model"] for r in _chat_requests(chat_a)] == [A_MODEL]


def test_upstream_keys_pair_by_position(monkeypatch: pytest.MonkeyPatch) -> None:
    assert upstream_pairs(["http://a/v1", "http://b/v1"], ["sk-a", ""]) == [
        ("http://a/v1", "sk-a"),
        ("http://b/v1", None),
    ]
    assert upstream_pairs(["http://a/v1", "http://b/v1"], []) == [("http://a/v1", None), ("http://b/v1", None)]
    with pytest.raises(ValueError, match="--upstream-key: 1 keys for 2 upstreams"):
        upstream_pairs(["http://a/v1", "http://b/v1"], ["sk-a"])
    with pytest.raises(ValueError, match="--upstream"):
        upstream_pairs([], [])
    monkeypatch.setenv("RESPONSES_RS_UPSTREAM", "http://a/v1,http://b/v1")
    monkeypatch.setenv("RESPONSES_RS_UPSTREAM_KEY", "sk-a,")
    args = parser().parse_args([])
    assert upstream_pairs(args.upstream, args.upstream_key) == [("http://a/v1", "sk-a"), ("http://b/v1", None)]
    # Flags replace the variables (not add to them).
    args = parser().parse_args(["--upstream", "http://c/v1", "--upstream-key", "sk-c"])
    assert (args.upstream, args.upstream_key) == (["http://c/v1"], ["sk-c"])


def test_mismatched_keys_are_refused_at_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(sys.executable).parent / "responses-rs"
    env = {"PATH": str(script.parent), "HOME": str(tmp_path)}
    command = [str(script), "serve", "--upstream", "http://a/v1", "--upstream", "http://b/v1", "--upstream-key", "k"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2 and "--upstream-key" in done.stderr


def test_an_unreachable_upstream_leaves_the_others_serving(chat_a: ScriptedChatServer, tmp_path: Path) -> None:
    dead = ScriptedChatServer(models=["dead-model"]).start()
    dead_url = dead.base_url
    dead.stop()  # its port now refuses connections
    chat_a.reset()
    with serve_process(dead_url, tmp_path, "--upstream", chat_a.base_url) as s:
        with openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0, timeout=30) as oai:
            assert sorted(m.id for m in oai.models.list()) == sorted([A_MODEL, SHARED])
            chat_a.script([{"text": "still here"}])
            assert oai.responses.create(model=A_MODEL, input="x").output_text == "still here"
            with pytest.raises(openai.NotFoundError) as caught:
                oai.responses.create(model="dead-model", input="x")
            assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "model"
        assert any("listing the models of" in line and dead_url in line for line in s.log)
