"""Two real ``responses-rs serve`` processes on one PostgreSQL (``--database-url``), driven with the official
openai client: a chain alternating between them continues with the whole history, each reads, lists and deletes
what the other stored, a background response started on one is cancelled through the other, conversations are
shared, and a long chain's stored bytes grow linearly. Also the PostgreSQL store's migrations.

Needs RESPONSES_RS_POSTGRES=postgresql://... (``scripts/postgres.sh start`` prints it; scripts/test.sh starts one);
each module run makes a fresh database there and drops it at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.server._store import MIGRATIONS, Store
from responses_rs.testkit import ScriptedChatServer

asyncpg = pytest.importorskip("asyncpg", reason="the PostgreSQL store needs asyncpg (the [postgres] extra)")

POSTGRES = os.environ.get("RESPONSES_RS_POSTGRES", "")
pytestmark = pytest.mark.skipif(
    not POSTGRES,
    reason="RESPONSES_RS_POSTGRES is unset: `scripts/postgres.sh start` starts a PostgreSQL and prints it "
    "(scripts/test.sh does both)",
)
MODEL = "scripted-model"
KEY = "key-shared"
# The long chain: the 1,000 turns by default (about 52 s on the 2-core machine; the time is quadratic, as
# every turn sends the whole chain to the model); RESPONSES_RS_LONG_CHAIN_TURNS=N for another length.
LONG_CHAIN_TURNS = int(os.environ.get("RESPONSES_RS_LONG_CHAIN_TURNS", "1000"))


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


async def _sql(url: str, query: str, *args: object) -> list:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    name = "serve_" + uuid.uuid4().hex[:12]
    _run(_sql(POSTGRES, f"CREATE DATABASE {name}"))
    try:
        yield _with_database(POSTGRES, name)
    finally:
        _run(_sql(POSTGRES, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(
    chat_server: ScriptedChatServer, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, Serve]]:
    flags = ("--database-url", database, "--api-key", KEY, "--api-key", "key-other", "--log-requests")
    # Each its own (unused) data directory: what they share is the database.
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("a"), *flags) as a:
        with serve_process(chat_server.base_url, tmp_path_factory.mktemp("b"), *flags, console_script=False) as b:
            yield a, b


@pytest.fixture
def clients(replicas: tuple[Serve, Serve], chat_server: ScriptedChatServer) -> Iterator[list[openai.OpenAI]]:
    chat_server.reset()
    pair = [openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0, timeout=30) for s in replicas]
    yield pair
    for c in pair:
        c.close()


def streamed(client: openai.OpenAI, **kwargs) -> Response:
    events = list(client.responses.create(stream=True, **kwargs))
    return validate_stream(events, response_cls=Response, schema_host="full")


def text_of(content: str | list) -> str:
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def status_in_db(url: str, response_id: str) -> str | None:
    rows = _run(_sql(url, "SELECT status FROM responses WHERE id = $1", response_id))
    return rows[0]["status"] if rows else None


# ------------------------------------------------------------------------------------------------
# The store


def test_migrations_run_once_under_two_servers_starting_together_and_match_sqlite(tmp_path: Path) -> None:
    from responses_rs.server._store_pg import PostgresStore

    with fresh_database() as url:

        async def open_two() -> None:
            stores = [PostgresStore(url), PostgresStore(url)]
            await asyncio.gather(*(s.open() for s in stores))
            for s in stores:
                await s.close()

        _run(open_two())
        assert [r["version"] for r in _run(_sql(url, "SELECT version FROM schema_version"))] == [len(MIGRATIONS)]
        pg_columns = {
            table: [
                r["column_name"]
                for r in _run(
                    _sql(
                        url,
                        "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
                        " ORDER BY ordinal_position",
                        table,
                    )
                )
            ]
            for table in ("responses", "conversations", "conversation_items", "prompts", "response_events")
        }
        # The same migrations made the same tables in sqlite.
        sqlite_store = Store(tmp_path / "responses.db")
        sqlite_store.open()
        sqlite_store.close()
        with sqlite3.connect(tmp_path / "responses.db") as conn:
            sqlite_columns = {
                table: [r[1] for r in conn.execute(f"PRAGMA table_info({table})")] for table in pg_columns
            }
        assert pg_columns == sqlite_columns and "previous_response_id" in pg_columns["responses"]
        assert "is_default" in pg_columns["prompts"]

        # A database a newer responses-rs migrated is refused, and the server says so and exits.
        _run(_sql(url, "UPDATE schema_version SET version = $1", len(MIGRATIONS) + 1))
        with pytest.raises(RuntimeError, match="newer than this responses-rs"):
            _run(PostgresStore(url).open())
        with pytest.raises(RuntimeError, match="newer than this responses-rs"):
            with serve_process("http://127.0.0.1:9/v1", tmp_path, "--database-url", url, timeout=15):
                pass


# ------------------------------------------------------------------------------------------------
# Two servers


def test_a_chain_alternating_between_two_servers_continues(
    clients: list[openai.OpenAI], chat_server: ScriptedChatServer, database: str
) -> None:
    previous = None
    ids = []
    for n in range(6):
        client = clients[n % 2]
        chat_server.script([{"text": f"answer {n}"}])
        kwargs = {"previous_response_id": previous} if previous else {}
        if n % 3 == 0:
            response = streamed(client, model=MODEL, input=f"question {n}", **kwargs)
        else:
            response = client.responses.create(model=MODEL, input=f"question {n}", **kwargs)
        assert response.status == "completed" and response.output_text == f"answer {n}"
        previous = response.id
        ids.append(response.id)
    # The model saw the whole chain, written by both servers, in order.
    messages = chat_server.requests[-1]["messages"]
    expected = []
    for n in range(6):
        expected.append(("user", f"question {n}"))
        if n < 5:
            expected.append(("assistant", f"answer {n}"))
    assert [(m["role"], text_of(m["content"])) for m in messages] == expected

    a, b = clients
    # Each reads what the other wrote.
    assert b.responses.retrieve(ids[0]).output_text == "answer 0"
    assert a.responses.retrieve(ids[5]).output_text == "answer 5"
    items = a.responses.input_items.list(ids[5], order="asc", limit=100).data  # ids[5] was written by B
    assert [i.role for i in items] == ["user", "assistant"] * 5 + ["user"]
    assert items[-1].content[0].text == "question 5"
    # Another key sees nothing of it, on either server.
    for base in (a.base_url, b.base_url):
        with openai.OpenAI(base_url=base, api_key="key-other", max_retries=0) as other:
            with pytest.raises(openai.NotFoundError):
                other.responses.retrieve(ids[0])
    # Delete on A what B wrote: gone for both; the chain before it still continues (on B).
    a.responses.delete(ids[5])
    assert status_in_db(database, ids[5]) is None
    for c in clients:
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(ids[5])
    # Delete on B the middle of the chain (A wrote it): hidden, but the chain after it still rebuilds.
    b.responses.delete(ids[2])
    with pytest.raises(openai.NotFoundError):
        a.responses.retrieve(ids[2])
    chat_server.script([{"text": "answer again"}])
    again = a.responses.create(model=MODEL, input="question again", previous_response_id=ids[4])
    assert again.output_text == "answer again"
    assert len(chat_server.requests[-1]["messages"]) == 11


def test_background_cancelled_through_the_other_server(
    clients: list[openai.OpenAI], chat_server: ScriptedChatServer, database: str, replicas: tuple[Serve, Serve]
) -> None:
    a, b = clients
    # About 6 s of model time (120 one-character chunks), if nobody stops it.
    chat_server.script([{"text": "word " * 24, "chunk_size": 1, "delay": 0.05}])
    started = a.responses.create(model=MODEL, input="Go on and on", background=True)
    assert started.status == "queued"
    chat_server.wait_for_requests(1)
    # B sees it in progress (A marked its row when the run started), and refuses to continue it while it runs.
    assert b.responses.retrieve(started.id).status == "in_progress"
    with pytest.raises(openai.BadRequestError) as refused:
        b.responses.create(model=MODEL, input="next", previous_response_id=started.id)
    assert refused.value.body["param"] == "previous_response_id"
    cancelled_at = time.monotonic()
    cancelled = b.responses.cancel(started.id)
    assert cancelled.status == "cancelled" and cancelled.id == started.id and cancelled.background is True
    # A stops the run itself (its watcher looks at the store every 0.5 s): its request log line comes long
    # before the model would have ended.
    log = replicas[0].log
    while not any(started.id in line for line in log) and time.monotonic() - cancelled_at < 3:
        time.sleep(0.05)
    assert any(started.id in line for line in log), log[-5:]
    assert time.monotonic() - cancelled_at < 3
    time.sleep(6.5)  # past the model's end: nothing overwrote the cancelled state
    assert status_in_db(database, started.id) == "cancelled"
    assert a.responses.cancel(started.id).status == "cancelled"  # idempotent, on either server
    assert b.responses.cancel(started.id).status == "cancelled"
    assert a.responses.retrieve(started.id).status == "cancelled"


def test_a_background_response_deleted_through_the_other_server_stops(
    clients: list[openai.OpenAI], chat_server: ScriptedChatServer, database: str, replicas: tuple[Serve, Serve]
) -> None:
    a, b = clients
    chat_server.script([{"text": "word " * 16, "chunk_size": 1, "delay": 0.05}])  # about 4 s
    started = a.responses.create(model=MODEL, input="Go on", background=True)
    chat_server.wait_for_requests(1)
    deleted_at = time.monotonic()
    b.responses.delete(started.id)
    log = replicas[0].log
    while not any(started.id in line for line in log) and time.monotonic() - deleted_at < 2.5:
        time.sleep(0.05)
    assert any(started.id in line for line in log), log[-5:]
    time.sleep(max(0.0, 4.5 - (time.monotonic() - deleted_at)))  # past the model's end: its end wrote nothing
    assert status_in_db(database, started.id) is None
    for c in clients:
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(started.id)


def test_background_completes_and_is_read_from_the_other_server(clients: list[openai.OpenAI], chat_server) -> None:
    a, b = clients
    chat_server.script([{"text": "done in the background", "delay": 0.05}])
    started = b.responses.create(model=MODEL, input="Hi", background=True)
    deadline = time.monotonic() + 10
    while (current := a.responses.retrieve(started.id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert current.status == "completed" and current.output_text == "done in the background"
    with pytest.raises(openai.ConflictError):
        a.responses.cancel(started.id)
    # It continues on A.
    assert a.responses.create(model=MODEL, input="and then", previous_response_id=started.id).status == "completed"


def test_a_streamed_background_response_replayed_on_the_other_server(clients: list[openai.OpenAI], chat_server) -> None:
    a, b = clients
    text = "streamed on A, replayed on B"
    chat_server.script([{"text": text, "chunk_size": 4, "delay": 0.03}])
    seen = []
    with a.responses.create(model=MODEL, input="Hi", background=True, stream=True) as stream:
        for event in stream:
            seen.append(event)
            if event.type == "response.output_text.delta":
                break  # A's client goes away: A runs it on
    response_id = seen[0].response.id
    # B replays it while A still runs it: B follows the events A writes to the database as it runs.
    events = list(b.responses.retrieve(response_id, stream=True, starting_after=seen[-1].sequence_number))
    assert events and events[0].sequence_number == seen[-1].sequence_number + 1
    assert validate_stream(seen + events, response_cls=Response, schema_host="full").output_text == text
    assert b.responses.retrieve(response_id).status == "completed"
    whole = [e.model_dump(mode="json") for e in b.responses.retrieve(response_id, stream=True)]
    assert whole == [e.model_dump(mode="json") for e in seen + events]


def test_a_conversation_shared_by_two_servers(clients: list[openai.OpenAI], chat_server) -> None:
    a, b = clients
    conversation = a.conversations.create(items=[{"type": "message", "role": "user", "content": "my name is Ada"}])
    chat_server.script([{"text": "hello Ada"}, {"text": "you are Ada"}])
    first = streamed(b, model=MODEL, input="hi", conversation=conversation.id)
    assert first.output_text == "hello Ada"
    second = a.responses.create(model=MODEL, input="who am I?", conversation=conversation.id)
    assert second.output_text == "you are Ada"
    seen = [(m["role"], text_of(m["content"])) for m in chat_server.requests[-1]["messages"]]
    assert seen == [
        ("user", "my name is Ada"),
        ("user", "hi"),
        ("assistant", "hello Ada"),
        ("user", "who am I?"),
    ]
    listed = b.conversations.items.list(conversation.id, order="asc").data
    assert len(listed) == 5 and listed[-1].content[0].text == "you are Ada"
    b.conversations.delete(conversation.id)
    with pytest.raises(openai.NotFoundError):
        a.conversations.retrieve(conversation.id)


def test_a_long_chain_stored_bytes_grow_linearly(
    clients: list[openai.OpenAI], chat_server: ScriptedChatServer, database: str
) -> None:
    """LONG_CHAIN_TURNS turns alternating between the servers, against the zero-latency scripted model (its
    default answer: "ok: " and the question). The stored bytes are read after every turn: the bytes a turn adds
    stay the same from the first turns to the last (a chain stored whole in each row would add bytes in
    proportion to its length)."""
    turns = LONG_CHAIN_TURNS
    window = max(5, turns // 20)
    previous = None
    added: list[int] = []
    before = _run(
        _sql(database, "SELECT COALESCE(SUM(octet_length(response) + octet_length(input)), 0) AS n FROM responses")
    )[0]["n"]

    async def drive() -> None:
        nonlocal previous, before
        conn = await asyncpg.connect(database)
        try:
            for n in range(turns):
                client = clients[n % 2]
                kwargs = {"previous_response_id": previous} if previous else {}
                response = await asyncio.to_thread(
                    client.responses.create, model=MODEL, input=f"turn {n:05d}", **kwargs
                )
                assert response.output_text == f"ok: turn {n:05d}"
                previous = response.id
                if n % 100 == 99 and n < turns - 1:
                    chat_server.reset()  # it keeps every request body: quadratic in the chain otherwise
                total = await conn.fetchval(
                    "SELECT COALESCE(SUM(octet_length(response) + octet_length(input)), 0) FROM responses"
                )
                added.append(total - before)
                before = total
        finally:
            await conn.close()

    started = time.monotonic()
    _run(drive())
    elapsed = time.monotonic() - started
    first = sum(added[:window]) / window
    last = sum(added[-window:]) / window
    print(
        f"\nlong chain: {turns} turns in {elapsed:.1f} s; bytes per turn:"
        f" first {window} turns {first:.0f}, last {window} turns {last:.0f}"
    )
    # The last request carried the whole chain.
    assert len(chat_server.requests[-1]["messages"]) == 2 * turns - 1
    # Linear: the per-turn bytes at the end are those at the start (up to the digits of growing token counts).
    assert 0.9 < last / first < 1.1, (first, last)


def test_concurrent_chains_and_appends_on_both_servers_lose_nothing(
    clients: list[openai.OpenAI], database: str
) -> None:
    """Eight chains at once, each turn on the other server, and both servers appending to one conversation at
    once (the scripted model answers "ok: " and the question): every response and every item is there."""
    from concurrent.futures import ThreadPoolExecutor

    conversation = clients[0].conversations.create()

    def chain(c: int) -> list[str]:
        previous = None
        ids = []
        for n in range(5):
            kwargs = {"previous_response_id": previous} if previous else {}
            response = clients[(c + n) % 2].responses.create(model=MODEL, input=f"chain {c} turn {n}", **kwargs)
            assert response.output_text == f"ok: chain {c} turn {n}"
            previous = response.id
            ids.append(response.id)
        return ids

    def append(c: int) -> None:
        for n in range(3):
            clients[(c + n) % 2].conversations.items.create(
                conversation.id, items=[{"type": "message", "role": "user", "content": f"note {c}.{n}"}]
            )

    with ThreadPoolExecutor(12) as pool:
        chains = list(pool.map(chain, range(8)))
        list(pool.map(append, range(4)))
    for c, ids in enumerate(chains):
        items = clients[c % 2].responses.input_items.list(ids[-1], order="asc", limit=100).data
        texts = [item.content[0].text for item in items]
        expected = []
        for n in range(5):
            expected.append(f"chain {c} turn {n}")
            if n < 4:
                expected.append(f"ok: chain {c} turn {n}")
        assert texts == expected
    rows = _run(_sql(database, "SELECT COUNT(*) AS n FROM responses WHERE id = ANY($1::text[])", sum(chains, [])))
    assert rows[0]["n"] == 40
    notes = [i.content[0].text for i in clients[1].conversations.items.list(conversation.id, limit=100).data]
    assert sorted(notes) == sorted(f"note {c}.{n}" for c in range(4) for n in range(3))
    # Each writer's own appends stay in its order.
    for c in range(4):
        mine = [t for t in reversed(notes) if t.startswith(f"note {c}.")]
        assert mine == [f"note {c}.{n}" for n in range(3)]
