"""The server's sqlite store: migrations run once each, in order, keeping what is stored; a newer schema is
refused; chains rebuild from incremental rows."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from responses_rs.server._store import MIGRATIONS, NotFound, Store


def _version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version FROM schema_version").fetchone()[0]


def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    db = tmp_path / "responses.db"
    with sqlite3.connect(db) as conn:  # what the first release of the schema wrote
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.executescript(MIGRATIONS[0])
        response = {"id": "resp-1", "status": "completed", "output": [{"type": "message", "id": "m2"}]}
        conn.execute(
            "INSERT INTO responses (id, created_at, model, status, response, input)"
            " VALUES (?, 1, 'm', 'completed', ?, ?)",
            ("resp-1", json.dumps(response), json.dumps([{"type": "message", "id": "m1"}])),
        )
    store = Store(db)
    store.open()
    try:
        assert _version(db) == len(MIGRATIONS) >= 2
        items = asyncio.run(store.chain_items("resp-1", "", with_output=True))
        assert [i["id"] for i in items] == ["m1", "m2"]
        with pytest.raises(NotFound):
            asyncio.run(store.conversation_items("conv_x", ""))
        # Migration 4: the prompts table, empty.
        assert asyncio.run(store.list_prompts("")) == []
        with pytest.raises(NotFound):
            asyncio.run(store.get_prompt("pmpt_x", "", None))
    finally:
        store.close()
    # Opening again runs nothing twice.
    store = Store(db)
    store.open()
    store.close()
    assert _version(db) == len(MIGRATIONS)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "responses.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (?)", (len(MIGRATIONS) + 1,))
    store = Store(db)
    with pytest.raises(RuntimeError, match="newer than this responses-rs"):
        store.open()
    store._executor.shutdown()
