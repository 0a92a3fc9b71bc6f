"""The Prompts API of a real ``responses-rs serve`` process (OGX 1.5's routes and shapes; httpx, as openai-python
has no prompts resource), and responses made with ``prompt`` through the official openai client (streamed ones
through the strict stream validator), over HTTP, in the background and on the WebSocket: the rendered prompt is
the first message the scripted model received. On sqlite, and on PostgreSQL when ``RESPONSES_RS_POSTGRES`` is set
(``scripts/postgres.sh start`` prints it): a fresh database per run, dropped at the end."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
from openai._models import construct_type
from openai.types.responses import Response, ResponseStreamEvent
from serve_process import Serve, serve_fixtures, serve_process
from stream_validator import validate_stream
from websockets.sync.client import connect

MODEL = "scripted-model"
KEY, OTHER = "k-prompts", "k-other"
POSTGRES = os.environ.get("RESPONSES_RS_POSTGRES", "")

chat_server, _serve, _client = serve_fixtures(MODEL)


def _postgres_database() -> Iterator[str]:
    """A fresh database on the PostgreSQL of ``RESPONSES_RS_POSTGRES``, dropped afterwards."""
    asyncpg = pytest.importorskip("asyncpg", reason="the PostgreSQL store needs asyncpg (the [postgres] extra)")

    async def sql(query: str) -> None:
        conn = await asyncpg.connect(POSTGRES)
        try:
            await conn.execute(query)
        finally:
            await conn.close()

    name = "serve_prompts_" + uuid.uuid4().hex[:12]
    asyncio.run(sql(f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def serve(request: pytest.FixtureRequest, chat_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    flags = ["--api-key", KEY, "--api-key", OTHER]
    if request.param == "postgres":
        if not POSTGRES:
            pytest.skip("RESPONSES_RS_POSTGRES is unset: `scripts/postgres.sh start` starts a PostgreSQL and prints it")
        databases = _postgres_database()
        flags += ["--database-url", next(databases)]
    else:
        databases = None
    try:
        with serve_process(chat_server.base_url, tmp_path_factory.mktemp("serve-prompts"), *flags) as s:
            yield s
    finally:
        if databases is not None:
            databases.close()


@pytest.fixture
def client(serve: Serve, chat_server) -> Iterator[openai.OpenAI]:
    chat_server.reset()
    with openai.OpenAI(base_url=serve.base_url, api_key=KEY, max_retries=0, timeout=30) as oai:
        yield oai


@pytest.fixture
def api(serve: Serve) -> Iterator[httpx.Client]:
    """The prompts API (and raw requests) as KEY."""
    with httpx.Client(base_url=serve.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
        yield http


def create_prompt(api: httpx.Client, text: str, variables: list[str] | None = None) -> dict[str, Any]:
    answer = api.post("/prompts", json={"prompt": text, "variables": variables})
    assert answer.status_code == 200, answer.text
    return answer.json()


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return answer.json()["error"]


def streamed(client: openai.OpenAI, **kwargs: Any) -> Response:
    return validate_stream(
        list(client.responses.create(stream=True, **kwargs)), response_cls=Response, schema_host="full"
    )


def system_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "system"]


# ------------------------------------------------------------------------------------------------
# The prompts API


def test_create_retrieve_update_versions_default_delete(api: httpx.Client) -> None:
    created = create_prompt(api, "Hello {{ name }}, about {{topic}}.", ["name", "topic"])
    assert re.fullmatch(r"pmpt_[0-9a-f]{48}", created["prompt_id"]), created
    pid = created["prompt_id"]
    assert created == {
        "prompt": "Hello {{ name }}, about {{topic}}.",
        "version": 1,
        "prompt_id": pid,
        "variables": ["name", "topic"],
        "is_default": True,
    }
    assert api.get(f"/prompts/{pid}").json() == created
    # Without variables: an empty list.
    plain = create_prompt(api, "No placeholders here.")
    assert plain["variables"] == [] and plain["version"] == 1

    # Update: the next version from the latest, the default by default.
    v2 = api.put(f"/prompts/{pid}", json={"prompt": "Hi {{name}}.", "version": 1, "variables": ["name"]})
    assert v2.status_code == 200, v2.text
    assert v2.json() == {
        "prompt": "Hi {{name}}.",
        "version": 2,
        "prompt_id": pid,
        "variables": ["name"],
        "is_default": True,
    }
    stale = error_of(api.put(f"/prompts/{pid}", json={"prompt": "x", "version": 1}), 400)
    assert stale["param"] == "version" and "'2'" in stale["message"]
    v3 = api.put(f"/prompts/{pid}", json={"prompt": "Yo.", "version": 2, "set_as_default": False}).json()
    assert (v3["version"], v3["is_default"], v3["variables"]) == (3, False, [])
    assert api.get(f"/prompts/{pid}").json()["version"] == 2  # the default
    assert api.get(f"/prompts/{pid}", params={"version": 3}).json()["prompt"] == "Yo."
    assert api.get(f"/prompts/{pid}", params={"version": 1}).json()["is_default"] is False

    versions = api.get(f"/prompts/{pid}/versions").json()["data"]
    assert [(v["version"], v["is_default"], v["prompt"]) for v in versions] == [
        (1, False, "Hello {{ name }}, about {{topic}}."),
        (2, True, "Hi {{name}}."),
        (3, False, "Yo."),
    ]
    # The list: each prompt once, as its default version, prompt ids descending (as OGX orders them).
    listed = [(p["prompt_id"], p["version"]) for p in api.get("/prompts").json()["data"]]
    assert sorted([(pid, 2), (plain["prompt_id"], 1)], reverse=True) == [
        entry for entry in listed if entry[0] in (pid, plain["prompt_id"])
    ]

    # Set the default version.
    default = api.put(f"/prompts/{pid}/set-default-version", json={"version": 3})
    assert default.status_code == 200 and default.json()["version"] == 3 and default.json()["is_default"] is True
    assert api.get(f"/prompts/{pid}").json()["prompt"] == "Yo."
    assert [v["is_default"] for v in api.get(f"/prompts/{pid}/versions").json()["data"]] == [False, False, True]
    missing = error_of(api.put(f"/prompts/{pid}/set-default-version", json={"version": 9}), 404)
    assert missing["message"] == "Prompt version '9' not found."
    assert error_of(api.get(f"/prompts/{pid}", params={"version": 9}), 404)["code"] == "not_found"
    assert error_of(api.get(f"/prompts/{pid}", params={"version": "two"}), 400)["param"] == "version"

    # Delete: every version.
    deleted = api.delete(f"/prompts/{pid}")
    assert deleted.status_code == 200 and deleted.json() is None  # OGX's answer
    assert error_of(api.get(f"/prompts/{pid}"), 404)["message"] == f"Prompt '{pid}' not found."
    assert error_of(api.get(f"/prompts/{pid}/versions"), 404)["code"] == "not_found"
    assert error_of(api.delete(f"/prompts/{pid}"), 404)["code"] == "not_found"
    assert error_of(api.put(f"/prompts/{pid}", json={"prompt": "x", "version": 3}), 404)["code"] == "not_found"
    assert pid not in [p["prompt_id"] for p in api.get("/prompts").json()["data"]]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "Dear {{ who }}, {{what}}", "variables": ["who"]}, "variables"),
        ({"prompt": "Dear {{ who }}"}, "variables"),
        ({"variables": ["who"]}, "prompt"),
        ({"prompt": 7}, "prompt"),
        ({"prompt": "x", "variables": "who"}, "variables"),
        ({"prompt": "x", "variables": [1]}, "variables"),
    ],
)
def test_bad_prompts_are_refused_naming_the_field(api: httpx.Client, body: dict[str, Any], param: str) -> None:
    before = api.get("/prompts").json()["data"]
    error = error_of(api.post("/prompts", json=body), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error", error
    if "what" in str(body):
        assert "['what']" in error["message"]
    assert api.get("/prompts").json()["data"] == before  # nothing stored


def test_a_bad_update_is_refused_and_stores_nothing(api: httpx.Client) -> None:
    pid = create_prompt(api, "Hi {{ a }}", ["a"])["prompt_id"]
    for body, param in [
        ({"prompt": "Hi {{ b }}", "version": 1, "variables": ["a"]}, "variables"),
        ({"prompt": "Hi", "variables": ["a"]}, "version"),
        ({"prompt": "Hi", "version": 0}, "version"),
        ({"prompt": "Hi", "version": 1, "set_as_default": "yes"}, "set_as_default"),
    ]:
        assert error_of(api.put(f"/prompts/{pid}", json=body), 400)["param"] == param
    assert [v["version"] for v in api.get(f"/prompts/{pid}/versions").json()["data"]] == [1]


def test_two_updates_of_the_same_version_at_once_make_one_version(serve: Serve, api: httpx.Client) -> None:
    pid = create_prompt(api, "Base.")["prompt_id"]

    def update(text: str) -> int:
        with httpx.Client(base_url=serve.base_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as http:
            return http.put(f"/prompts/{pid}", json={"prompt": text, "version": 1}).status_code

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = sorted(pool.map(update, ["A.", "B.", "C.", "D."]))
        assert statuses == [200, 400, 400, 400]
        versions = api.get(f"/prompts/{pid}/versions").json()["data"]
        assert [v["version"] for v in versions] == [1, 2]
        assert [v["is_default"] for v in versions] == [False, True]
        api.delete(f"/prompts/{pid}")
        pid = create_prompt(api, "Base.")["prompt_id"]


def test_prompts_are_visible_only_to_their_key(
    serve: Serve, api: httpx.Client, client: openai.OpenAI, chat_server
) -> None:
    pid = create_prompt(api, "Mine.")["prompt_id"]
    with httpx.Client(base_url=serve.base_url, headers={"Authorization": f"Bearer {OTHER}"}, timeout=30) as other:
        assert pid not in [p["prompt_id"] for p in other.get("/prompts").json()["data"]]
        assert other.get(f"/prompts/{pid}").status_code == 404
        assert other.get(f"/prompts/{pid}/versions").status_code == 404
        assert other.put(f"/prompts/{pid}", json={"prompt": "Theirs.", "version": 1}).status_code == 404
        assert other.put(f"/prompts/{pid}/set-default-version", json={"version": 1}).status_code == 404
        assert other.delete(f"/prompts/{pid}").status_code == 404
        used = other.post("/responses", json={"model": MODEL, "input": "hi", "prompt": {"id": pid}})
        assert error_of(used, 404)["param"] == "prompt"
        # Their own prompts are theirs.
        theirs = other.post("/prompts", json={"prompt": "Theirs."}).json()["prompt_id"]
        assert theirs not in [p["prompt_id"] for p in api.get("/prompts").json()["data"]]
    assert httpx.get(serve.base_url + "/prompts").status_code == 401
    assert api.get(f"/prompts/{pid}/versions").json()["data"][0]["prompt"] == "Mine."  # untouched
    assert chat_server.requests == []


# ------------------------------------------------------------------------------------------------
# Responses with `prompt`


def test_a_streamed_response_renders_the_requested_version_first(
    api: httpx.Client, client: openai.OpenAI, chat_server
) -> None:
    pid = create_prompt(api, "You help {{ customer }} with {{topic}}.", ["customer", "topic"])["prompt_id"]
    api.put(
        f"/prompts/{pid}", json={"prompt": "Version two for {{customer}}.", "version": 1, "variables": ["customer"]}
    )
    chat_server.script([{"text": "Sure."}, {"text": "Again."}])
    prompt = {
        "id": pid,
        "version": "1",
        "variables": {"customer": "Ada", "topic": {"type": "input_text", "text": "billing"}},
    }
    response = streamed(client, model=MODEL, input="Hi", instructions="Be brief.", prompt=prompt)
    assert response.status == "completed" and response.output_text == "Sure."
    assert response.prompt is not None and response.prompt.id == pid and response.prompt.version == "1"
    sent = chat_server.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You help Ada with billing."}
    assert sent[1:] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    # Stored with its echo; its input items are the request's own (the prompt is not an input item).
    stored = client.responses.retrieve(response.id)
    assert stored.prompt is not None and stored.prompt.id == pid
    assert [item.type for item in client.responses.input_items.list(response.id).data] == ["message"]

    # Without a version: the default one (2); a placeholder without a value stays as it is.
    plain = client.responses.create(model=MODEL, input="Hi", prompt={"id": pid})
    assert plain.output_text == "Again." and plain.prompt is not None and plain.prompt.version is None
    assert system_messages(chat_server.requests[-1]) == ["Version two for {{customer}}."]


def test_an_image_variable_is_named_in_the_text_and_sent_as_an_image(
    api: httpx.Client, client: openai.OpenAI, chat_server
) -> None:
    pid = create_prompt(api, "Describe {{ pic }} for {{who}}.", ["pic", "who"])["prompt_id"]
    chat_server.script([{"text": "A cat."}])
    image = {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"}
    response = streamed(client, model=MODEL, input="Go", prompt={"id": pid, "variables": {"pic": image, "who": "Bo"}})
    assert response.output_text == "A cat."
    sent = chat_server.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Describe [Image: pic] for Bo."}
    assert sent[1] == {"role": "user", "content": "Go"}
    assert sent[-1]["role"] == "user" and sent[-1]["content"] == [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    ]


def test_a_prompt_along_a_chain_is_the_requests_own(api: httpx.Client, client: openai.OpenAI, chat_server) -> None:
    """As OGX's builtin: the rendered prompt leads only the request that names it; a continuation without
    `prompt` does not inherit it (neither does its echo), one with `prompt` gets it once, first."""
    pid = create_prompt(api, "Talk like {{ style }}.", ["style"])["prompt_id"]
    chat_server.script([{"text": "Ahoy."}, {"text": "Plain."}, {"text": "Arr."}])
    first = client.responses.create(model=MODEL, input="One", prompt={"id": pid, "variables": {"style": "a pirate"}})
    assert system_messages(chat_server.requests[-1]) == ["Talk like a pirate."]
    second = client.responses.create(model=MODEL, input="Two", previous_response_id=first.id)
    assert second.prompt is None and system_messages(chat_server.requests[-1]) == []
    assert [m["role"] for m in chat_server.requests[-1]["messages"]] == ["user", "assistant", "user"]
    third = streamed(
        client,
        model=MODEL,
        input="Three",
        previous_response_id=second.id,
        prompt={"id": pid, "variables": {"style": "a sailor"}},
    )
    assert third.output_text == "Arr." and third.prompt is not None
    sent = chat_server.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Talk like a sailor."}
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_a_background_response_and_the_websocket_use_the_prompt(
    serve: Serve, api: httpx.Client, client: openai.OpenAI, chat_server
) -> None:
    pid = create_prompt(api, "Answer in {{lang}}.", ["lang"])["prompt_id"]
    chat_server.script([{"text": "Oui."}, {"text": "Ja."}])
    started = client.responses.create(
        model=MODEL, input="Yes?", background=True, prompt={"id": pid, "variables": {"lang": "French"}}
    )
    assert started.status == "queued" and started.prompt is not None and started.prompt.id == pid
    deadline = time.monotonic() + 10
    while (done := client.responses.retrieve(started.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert done.status == "completed" and done.output_text == "Oui." and done.prompt is not None
    assert chat_server.requests[-1]["messages"][0] == {"role": "system", "content": "Answer in French."}

    url = serve.base_url.replace("http://", "ws://") + "/responses"
    with connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        request = {
            "model": MODEL,
            "input": "Yes?",
            "prompt": {"id": pid, "version": "1", "variables": {"lang": "German"}},
        }
        ws.send(json.dumps({"type": "response.create", **request}))
        events = []
        while not events or events[-1]["type"] not in ("response.completed", "response.failed", "error"):
            events.append(json.loads(ws.recv(timeout=30)))
        typed = [construct_type(value=e, type_=ResponseStreamEvent) for e in events]
        answered = validate_stream(typed, response_cls=Response, schema_host="full")
        assert answered.output_text == "Ja." and answered.prompt is not None and answered.prompt.version == "1"
        assert chat_server.requests[-1]["messages"][0] == {"role": "system", "content": "Answer in German."}
        # An unknown prompt on the WebSocket: an error frame naming the field, the connection goes on.
        ws.send(json.dumps({"type": "response.create", "model": MODEL, "input": "x", "prompt": {"id": "pmpt_nope"}}))
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and error["status"] == 404 and error["error"]["param"] == "prompt"


def test_unknown_prompts_versions_and_variables_are_refused_naming_the_field(
    api: httpx.Client, client: openai.OpenAI, chat_server
) -> None:
    pid = create_prompt(api, "Hi {{ name }}.", ["name"])["prompt_id"]
    cases = [
        ({"id": "pmpt_" + "0" * 48}, 404, "prompt"),
        ({"id": pid, "version": "7"}, 404, "prompt.version"),
        ({"id": pid, "version": "seven"}, 400, "prompt.version"),
        ({"id": pid, "version": 1}, 400, "prompt.version"),
        ({"id": pid, "variables": {"nickname": "Al"}}, 400, "prompt.variables"),
        ({"id": pid, "variables": {"name": {"type": "input_file", "file_id": "f"}}}, 400, "prompt.variables.name.type"),
        ({"id": pid, "variables": ["name"]}, 400, "prompt.variables"),
        ({"version": "1"}, 400, "prompt.id"),
        ("pmpt", 400, "prompt"),
    ]
    for prompt, status, param in cases:
        for stream in (False, True):
            answer = api.post("/responses", json={"model": MODEL, "input": "hi", "prompt": prompt, "stream": stream})
            error = error_of(answer, status)
            assert error["param"] == param, (prompt, error)
    assert (
        "nickname"
        in error_of(
            api.post(
                "/responses",
                json={"model": MODEL, "input": "hi", "prompt": {"id": pid, "variables": {"nickname": "x"}}},
            ),
            400,
        )["message"]
    )
    with pytest.raises(openai.NotFoundError, match="not found"):
        client.responses.create(model=MODEL, input="hi", prompt={"id": pid, "version": "7"})
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODEL, input="hi", prompt={"id": pid, "variables": {"nickname": "Al"}})
    assert chat_server.requests == []  # refused before the model was called
