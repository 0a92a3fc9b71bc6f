"""Files, vector stores and `file_search` on the PostgreSQL store: two real ``responses-rs serve`` processes on one
database (``--database-url``), the official openai client; migration 5 makes the same tables as in sqlite.

Needs RESPONSES_RS_POSTGRES=postgresql://... (``scripts/postgres.sh start`` prints it); skipped without it."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import Response
from serve_process import Serve, serve_process
from stream_validator import validate_stream

from responses_rs.server._store import Store
from responses_rs.testkit import ScriptedChatServer

asyncpg = pytest.importorskip("asyncpg", reason="the PostgreSQL store needs asyncpg (the [postgres] extra)")

POSTGRES = os.environ.get("RESPONSES_RS_POSTGRES", "")
pytestmark = pytest.mark.skipif(
    not POSTGRES,
    reason="RESPONSES_RS_POSTGRES is unset: `scripts/postgres.sh start` starts a PostgreSQL and prints it",
)
MODEL = "scripted-model"
EMBEDDING = "scripted-embedding"
KEY = "key-shared"
TABLES = ("files", "vector_stores", "vector_store_files", "vector_store_chunks", "vector_store_file_batches")


async def _sql(url: str, query: str, *args: object) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = "serve_fs_" + uuid.uuid4().hex[:12]
    asyncio.run(_sql(POSTGRES, f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_sql(POSTGRES, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ScriptedChatServer]:
    server = ScriptedChatServer(models=[MODEL, EMBEDDING]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(
    chat_server: ScriptedChatServer, database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, Serve]]:
    flags = ("--database-url", database, "--api-key", KEY, "--api-key", "key-other", "--embedding-model", EMBEDDING)
    with serve_process(chat_server.base_url, tmp_path_factory.mktemp("a"), *flags) as a:
        with serve_process(chat_server.base_url, tmp_path_factory.mktemp("b"), *flags) as b:
            yield a, b


def test_migration_makes_the_same_tables_as_sqlite(
    replicas: tuple[Serve, Serve], database: str, tmp_path: Path
) -> None:
    query = (
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position"
    )
    pg = {t: [(r["column_name"], r["data_type"]) for r in asyncio.run(_sql(database, query, t))] for t in TABLES}
    store = Store(tmp_path / "responses.db")
    store.open()
    store.close()
    with sqlite3.connect(tmp_path / "responses.db") as conn:
        lite = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in TABLES}
    assert {t: [c for c, _ in cols] for t, cols in pg.items()} == lite
    assert ("embedding", "bytea") in pg["vector_store_chunks"] and ("content", "bytea") in pg["files"]


def test_ingested_on_one_server_searched_and_used_by_file_search_on_the_other(
    replicas: tuple[Serve, Serve], chat_server: ScriptedChatServer, database: str
) -> None:
    chat_server.reset()
    a, b = (openai.OpenAI(base_url=s.base_url, api_key=KEY, max_retries=0, timeout=30) for s in replicas)
    llamas = a.files.create(file=("llamas.txt", b"Llamas eat grass and hay."), purpose="assistants")
    bread = a.files.create(file=("bread.md", b"Bake bread with flour, water and yeast."), purpose="assistants")
    store = a.vector_stores.create(name="kb", file_ids=[llamas.id, bread.id])
    deadline = time.monotonic() + 20
    while (seen := b.vector_stores.retrieve(store.id)).file_counts.in_progress:  # run by a, seen from b
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert seen.file_counts.completed == 2 and seen.status == "completed"
    assert b.files.content(llamas.id).content == b"Llamas eat grass and hay."
    hits = list(b.vector_stores.search(vector_store_id=store.id, query="what do llamas eat"))
    assert hits[0].file_id == llamas.id and hits[0].content[0].text == "Llamas eat grass and hay."

    # A failing embeddings call on the other server: the file is failed and no chunk of it is written.
    extra = b.files.create(file=("more.txt", b"Llamas also eat leaves."), purpose="assistants")
    chat_server.embedding_errors.append({"status": 500, "message": "embedder is down"})
    failed = b.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=extra.id, attributes={"kind": "x"})
    assert failed.status == "failed" and failed.last_error is not None and failed.last_error.code == "server_error"
    rows = asyncio.run(_sql(database, "SELECT count(*) AS n FROM vector_store_chunks WHERE file_id = $1", extra.id))
    assert rows[0]["n"] == 0
    assert a.vector_stores.retrieve(store.id).file_counts.failed == 1

    def cite(request: dict[str, Any]) -> dict[str, Any]:
        tool = [m for m in request["messages"] if m["role"] == "tool"][-1]["content"]
        found = re.search(r"cite as <\|(file-[0-9A-Za-z]+)\|>", tool)
        assert found is not None
        return {"text": f"Grass <|{found.group(1)}|>."}

    chat_server.script([{"tool_calls": [{"name": "file_search", "arguments": {"query": "llamas eat"}}]}, cite])
    tools = [{"type": "file_search", "vector_store_ids": [store.id]}]
    events = list(b.responses.create(model=MODEL, input="Llamas?", tools=tools, stream=True))  # type: ignore[arg-type]
    final = validate_stream(events, response_cls=Response, schema_host="full")
    assert final.output[-1].content[0].annotations[0].file_id == llamas.id  # type: ignore[union-attr]

    batch = a.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[bread.id], attributes={"k": 1}
    )
    assert b.vector_stores.file_batches.retrieve(batch_id=batch.id, vector_store_id=store.id) == batch
    assert [
        f.attributes for f in b.vector_stores.file_batches.list_files(batch_id=batch.id, vector_store_id=store.id)
    ] == [{"k": 1}]
    # A batch run by a, cancelled through b: a's run then writes nothing.
    slow = a.files.create(file=("slow.txt", b"Slow llamas."), purpose="assistants")
    chat_server.embedding_delay = 0.5
    started = a.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=[slow.id])
    assert started.status == "in_progress"
    assert b.vector_stores.file_batches.cancel(batch_id=started.id, vector_store_id=store.id).status == "cancelled"
    time.sleep(0.8)
    chat_server.embedding_delay = 0.0
    assert a.vector_stores.files.retrieve(file_id=slow.id, vector_store_id=store.id).status == "cancelled"
    rows = asyncio.run(_sql(database, "SELECT count(*) AS n FROM vector_store_chunks WHERE file_id = $1", slow.id))
    assert rows[0]["n"] == 0
    a.vector_stores.files.delete(file_id=slow.id, vector_store_id=store.id)
    a.files.delete(llamas.id)
    # b's search matrix of the store (kept in memory) sees the deletion made through a.
    assert llamas.id not in [h.file_id for h in b.vector_stores.search(vector_store_id=store.id, query="llamas eat")]
    assert [f.id for f in b.vector_stores.files.list(vector_store_id=store.id)] == [
        bread.id,
        extra.id,
    ]  # newest first (bread re-added by the batch)
    assert b.vector_stores.delete(store.id).deleted
    for table in TABLES[1:]:
        column = "id" if table == "vector_stores" else "vector_store_id"
        left = asyncio.run(_sql(database, f"SELECT count(*) AS n FROM {table} WHERE {column} = $1", store.id))
        assert left[0]["n"] == 0, table
    a.close()
    b.close()
