"""Two real ``ogx run`` servers with responses-rs as their responses provider on one PostgreSQL database
(``python -m responses_rs.ogx run-config --postgres``; each server keeps its own sqlite kv store): a chain
alternating between the servers continues with the whole history, and every response, its input items and the
list are the same on both; a background response running on one is cancelled through the other. The official
openai client, the project's scripted Chat Completions server.

PostgreSQL: ``RESPONSES_RS_POSTGRES`` (a ``postgresql://user:password@host:port/db`` URL whose user may create
databases; ``scripts/test.sh`` starts one with ``scripts/postgres.sh``), else this suite starts its own with
``scripts/postgres.sh`` when PostgreSQL is installed, else it is skipped. Each run uses a fresh database."""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import openai
import pytest
from ogx_server import ogx_server
from openai.types.responses import Response
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer
from responses_rs.testkit.ogx_run import free_port

MODEL = "pg-e2e-model"
TURNS = 6
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """The server's URL: RESPONSES_RS_POSTGRES, or one started here with scripts/postgres.sh."""
    url = os.environ.get("RESPONSES_RS_POSTGRES")
    if url:
        yield url
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        pytest.skip("RESPONSES_RS_POSTGRES is not set and PostgreSQL is not installed (scripts/postgres.sh starts one)")
    port = free_port()
    env = {**os.environ, "RESPONSES_RS_PG_DIR": f"/tmp/responses-rs-postgres-{port}", "RESPONSES_RS_PG_PORT": str(port)}
    out = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL
    ).stdout
    try:
        yield out.strip().splitlines()[-1].split("=", 1)[1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, check=False, capture_output=True)


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """A fresh database on the server for this run (dropped after); yields its URL."""
    name = f"ogx_e2e_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(postgres_url)._replace(path="/" + name))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def servers(
    database: str, chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """Two ``ogx run`` on the one database, started one after the other (both create the tables)."""
    url = urlsplit(database)
    env = {
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_DB": url.path.lstrip("/"),
        "POSTGRES_USER": url.username or "",
        "POSTGRES_PASSWORD": url.password or "",
    }
    options = {"base_url": chat_server.base_url, "model": MODEL, "run_config_args": ("--postgres",), "env": env}
    with ogx_server(tmp_path_factory.mktemp("ogx-a"), **options) as a:
        with ogx_server(tmp_path_factory.mktemp("ogx-b"), **options) as b:
            yield a, b


@pytest.fixture
def clients(servers: tuple[str, str], chat_server: ScriptedChatServer) -> Iterator[list[openai.OpenAI]]:
    chat_server.reset()
    pair = [openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=30) for base in servers]
    yield pair
    for oai in pair:
        oai.close()


def text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)  # type: ignore[union-attr]


def listed_ids(client: openai.OpenAI) -> list[str]:
    return [r["id"] for r in client.get("/responses", cast_to=dict, options={"params": {"limit": 100}})["data"]]


def test_chain_alternating_between_two_servers_on_one_database(clients: list[openai.OpenAI], chat_server) -> None:
    chain: list[Response] = []
    history: list[tuple[str, str]] = []  # (role, text) the model must get
    for turn in range(TURNS):
        client = clients[turn % 2]
        question, answer = f"Question {turn}?", f"Answer {turn}."
        chat_server.script({"text": answer})
        kwargs = {"model": MODEL, "input": question}
        if chain:
            kwargs["previous_response_id"] = chain[-1].id
        if turn % 4 in (1, 2):  # streamed and not, on both servers
            events = list(client.responses.create(stream=True, **kwargs))
            response = validate_stream(events, response_cls=Response, schema_host="full")
        else:
            response = client.responses.create(**kwargs)
        assert response.status == "completed" and response.output_text == answer
        assert response.previous_response_id == (chain[-1].id if chain else None)
        history.append(("user", question))
        # The model got the whole chain, though the previous turn was made on the other server.
        sent = [(m["role"], text_of(m["content"])) for m in chat_server.requests[-1]["messages"]]
        assert sent == history, f"turn {turn}"
        history.append(("assistant", answer))
        chain.append(response)

    ids = [r.id for r in chain]
    for turn, response in enumerate(chain):
        items = []
        for client in clients:
            stored = client.responses.retrieve(response.id)
            assert stored.id == response.id and stored.output_text == response.output_text
            assert stored.previous_response_id == response.previous_response_id
            # raw JSON: OGX answers a string input's item with string content, which the client's typed model
            # dumps with serializer warnings
            params = {"order": "asc", "limit": 100}
            listed = client.get(f"/responses/{response.id}/input_items", cast_to=dict, options={"params": params})
            items.append(listed["data"])
        assert items[0] == items[1]
        # the full input: every earlier question and answer, then this turn's question
        texts = [(item["role"], text_of(item["content"])) for item in items[0]]
        assert texts == history[: 2 * turn + 1]
    for client in clients:
        assert sorted(listed_ids(client)) == sorted(ids)

    # A delete on one server is seen by the other; the chain still continues there.
    clients[1].responses.delete(ids[0])
    with pytest.raises(openai.NotFoundError):
        clients[0].responses.retrieve(ids[0])
    chat_server.script({"text": "Still here."})
    last = clients[0].responses.create(model=MODEL, input="And now?", previous_response_id=ids[-1])
    assert last.output_text == "Still here."
    assert len(chat_server.requests[-1]["messages"]) == 2 * TURNS + 1
    assert sorted(listed_ids(clients[1])) == sorted(ids[1:] + [last.id])


def test_background_response_cancelled_through_the_other_server(clients: list[openai.OpenAI], chat_server) -> None:
    """A background response runs on server A; server B, which has no task for it, cancels it through the
    shared record; A never overwrites the cancellation (that A also stops its run on reading the record is
    checked in test_ogx_background.py)."""
    a, b = clients
    # 20 chunks, 0.15 s before each event: about three seconds, unless stopped.
    chat_server.script({"text": "z" * 40, "chunk_size": 2, "delay": 0.15})
    queued = a.responses.create(model=MODEL, input="Slowly, please", background=True)
    assert queued.status == "queued"
    chat_server.wait_for_requests(1)
    deadline = time.monotonic() + 30
    while (running := b.responses.retrieve(queued.id)).status == "queued":  # B sees A's progress
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert running.status == "in_progress"
    cancelled = b.responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and cancelled.id == queued.id
    time.sleep(4)  # past the end of the scripted stream: A would have written its result by now
    for client in clients:
        stored = client.responses.retrieve(queued.id)
        assert stored.status == "cancelled" and stored.output == []
    # A background response made on B and finished is read on A, which refuses to cancel it.
    chat_server.script({"text": "quick"})
    done = b.responses.create(model=MODEL, input="Quick one", background=True)
    while (done := a.responses.retrieve(done.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline + 10
        time.sleep(0.05)
    assert done.status == "completed" and done.output_text == "quick" and done.background is True
    with pytest.raises(openai.ConflictError):
        a.responses.cancel(done.id)
