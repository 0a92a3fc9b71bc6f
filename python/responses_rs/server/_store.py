"""The server's store: one sqlite file in the data directory, written off the event loop.

``Store`` is the sqlite store; its parts by concept: the schema and migrations in ``_store_schema.py`` (whose
docstring describes the tables), conversations in ``_store_conversations.py``, prompts in ``_store_prompts.py``,
files and vector stores in ``_store_vectors.py`` (each with PostgreSQL's part, ``_store_pg.py``, next to
sqlite's), the errors and rows both dialects share in ``_store_common.py`` (imported from here too).
Here: the responses and their chains.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ._store_common import (
    PROMPT_COLUMNS,
    RUNNING,
    STOPPED_INGESTION,
    LiveEvents,
    NotFound,
    PromptRow,
    StillRunning,
    Stored,
    VersionConflict,
    VersionNotFound,
    immediate,
    prompt_row,
)
from ._store_conversations import SqliteConversations
from ._store_prompts import SqlitePrompts
from ._store_schema import MIGRATIONS, statements
from ._store_vectors import SqliteVectorStores

__all__ = [
    "MIGRATIONS",
    "LiveEvents",
    "PROMPT_COLUMNS",
    "RUNNING",
    "STOPPED_INGESTION",
    "NotFound",
    "PromptRow",
    "StillRunning",
    "Store",
    "Stored",
    "VersionConflict",
    "VersionNotFound",
    "prompt_row",
    "statements",
]


class Store(SqliteConversations, SqlitePrompts, SqliteVectorStores):
    """sqlite in ``path``; every call runs on one worker thread (sqlite connections are not shared)."""

    # One server: its replays follow a running response in memory; its events are written once, when it ends.
    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="responses-rs-store")
        self._local = threading.local()
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the file and apply migrations (synchronously: before serving)."""
        self._executor.submit(self._open).result()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path}: schema version {version} is newer than this responses-rs ({len(MIGRATIONS)})"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements(script, "sqlite"):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (number,))
            # Files a stopped server was still adding to a vector store will never be added: they failed.
            conn.execute(
                "UPDATE vector_store_files SET status = 'failed', ingestion = NULL, last_error = ?"
                " WHERE status = 'in_progress'",
                (STOPPED_INGESTION,),
            )
            # Background responses a stopped server left under way can never end: they failed.
            conn.execute(
                "UPDATE responses SET status = 'failed', response = json_set(response, '$.status', 'failed',"
                " '$.error', json_object('code', 'server_error', 'message',"
                " 'the server stopped before the response ended')) WHERE status IN ('queued', 'in_progress')"
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._executor.submit(close).result()
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the store is not open")
        return self._conn

    # -- writes ----------------------------------------------------------------------------------

    async def put(
        self,
        *,
        id: str,
        owner: str,
        created_at: int,
        model: str,
        status: str,
        previous_response_id: str | None,
        response: str,
        input: str,
    ) -> None:
        await self._run(self._put, (id, owner, created_at, model, status, previous_response_id, response, input))

    def _put(self, row: tuple[Any, ...]) -> None:
        # A background response is written when it starts (queued) and again when it ends.
        self.conn.execute(
            "INSERT INTO responses (id, owner, created_at, model, status, previous_response_id, response, input)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " status = excluded.status, response = excluded.response, input = excluded.input",
            row,
        )

    async def set_response(self, id: str, status: str, response: str) -> bool:
        """A background response's new state (its end, failed, cancelled), only while it is still under way:
        the first of its end and a cancel (from any server on the database) wins. False: it had already ended,
        been cancelled or deleted."""
        return await self._run(self._set_response, id, status, response)

    def _set_response(self, id: str, status: str, response: str) -> bool:
        cursor = self.conn.execute(
            "UPDATE responses SET status = ?, response = ? WHERE id = ? AND status IN (?, ?)",
            (status, response, id, *RUNNING),
        )
        return cursor.rowcount > 0

    async def stopped(self, ids: list[str]) -> set[str]:
        """Which of these background responses are no longer under way in the store (cancelled or deleted,
        by this server or another on the same database): their tasks are stopped."""
        return await self._run(self._stopped, ids)

    def _stopped(self, ids: list[str]) -> set[str]:
        marks = ", ".join("?" * len(ids))
        rows = self.conn.execute(
            f"SELECT id FROM responses WHERE id IN ({marks}) AND status IN (?, ?)", (*ids, *RUNNING)
        ).fetchall()
        return set(ids) - {row[0] for row in rows}

    async def delete(self, id: str, owner: str) -> None:
        await self._run(self._delete, id, owner)

    def _delete(self, id: str, owner: str) -> None:
        conn = self.conn
        with immediate(conn):
            row = conn.execute(
                "SELECT 1 FROM responses WHERE id = ? AND owner = ? AND deleted = 0", (id, owner)
            ).fetchone()
            if row is None:
                raise NotFound(id)
            child = conn.execute("SELECT 1 FROM responses WHERE previous_response_id = ? LIMIT 1", (id,)).fetchone()
            conn.execute("DELETE FROM response_events WHERE response_id = ?", (id,))
            if child is None:
                conn.execute("DELETE FROM responses WHERE id = ?", (id,))
            else:
                # Only what the descendants' chains read is kept: the output.
                conn.execute(
                    "UPDATE responses SET deleted = 1, response = json_object('output', json(json_extract(response,"
                    " '$.output'))) WHERE id = ?",
                    (id,),
                )

    # -- reads -----------------------------------------------------------------------------------

    async def set_events(self, id: str, events: str) -> None:
        """A background response's stream events, kept for replay (written once, when it has ended)."""
        await self._run(self._set_events, id, events)

    def _set_events(self, id: str, events: str) -> None:
        conn = self.conn
        with immediate(conn):
            conn.execute("UPDATE responses SET events = ? WHERE id = ?", (events, id))
            conn.execute("DELETE FROM response_events WHERE response_id = ?", (id,))

    async def add_events(self, id: str, first_sequence: int, events: str) -> None:
        """A batch of a running background response's new events (whole events, SSE text), for replays on other
        servers (``live_events``); ``set_events`` replaces the batches with the whole log when it ends."""
        await self._run(
            lambda: self.conn.execute(
                "INSERT INTO response_events (response_id, first_sequence, events) VALUES (?, ?, ?)"
                " ON CONFLICT (response_id, first_sequence) DO UPDATE SET events = excluded.events",
                (id, first_sequence, events),
            )
        )

    async def heartbeat(self, id: str, now: int) -> None:
        """The server running a background response is alive (it had no new events to write for a while)."""
        await self._run(lambda: self.conn.execute("UPDATE responses SET heartbeat = ? WHERE id = ?", (now, id)))

    async def live_events(self, id: str, owner: str, after_first: int) -> LiveEvents:
        """The row's state and events, and the batches written while it runs whose first sequence number is
        greater than ``after_first``. NotFound when it is not this owner's (or was deleted)."""
        return await self._run(self._live_events, id, owner, after_first)

    def _live_events(self, id: str, owner: str, after_first: int) -> LiveEvents:
        row = self.conn.execute(
            "SELECT status, heartbeat, events FROM responses WHERE id = ? AND owner = ? AND deleted = 0", (id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(id)
        batches = self.conn.execute(
            "SELECT first_sequence, events FROM response_events WHERE response_id = ? AND first_sequence > ?"
            " ORDER BY first_sequence",
            (id, after_first),
        ).fetchall()
        return LiveEvents(row[0], row[1], row[2], [(int(b[0]), b[1]) for b in batches])

    async def end_stale(self, id: str, response: str, terminal: str) -> bool:
        """A running background response whose server stopped writing (a replay saw no sign of it for a while):
        stored failed, its batches and ``terminal`` (its last event) become its events; only while it is still
        under way (False otherwise: it ended or was cancelled meanwhile)."""
        return await self._run(self._end_stale, id, response, terminal)

    def _end_stale(self, id: str, response: str, terminal: str) -> bool:
        with immediate(self.conn) as conn:
            if not self._set_response(id, "failed", response):
                return False
            batches = conn.execute(
                "SELECT events FROM response_events WHERE response_id = ? ORDER BY first_sequence", (id,)
            ).fetchall()
            events = "".join(b[0] for b in batches) + terminal
            conn.execute("UPDATE responses SET events = ? WHERE id = ?", (events, id))
            conn.execute("DELETE FROM response_events WHERE response_id = ?", (id,))
            return True

    async def events(self, id: str, owner: str) -> tuple[str, str | None]:
        """A response's status and its kept stream events (None: none kept, or not yet)."""
        return await self._run(self._events, id, owner)

    def _events(self, id: str, owner: str) -> tuple[str, str | None]:
        row = self.conn.execute(
            "SELECT status, events FROM responses WHERE id = ? AND owner = ? AND deleted = 0", (id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(id)
        return row[0], row[1]

    async def get(self, id: str, owner: str) -> Stored:
        return await self._run(self._get, id, owner)

    def _get(self, id: str, owner: str) -> Stored:
        row = self.conn.execute(
            "SELECT id, response, input, previous_response_id, status FROM responses"
            " WHERE id = ? AND owner = ? AND deleted = 0",
            (id, owner),
        ).fetchone()
        if row is None:
            raise NotFound(id)
        return Stored(*row)

    async def chain_items(self, id: str, owner: str, *, with_output: bool) -> list[Any]:
        """Every item of the chain ending at response ``id``, oldest first: each response's new input, then
        its output (the last one's output only ``with_output``). NotFound when ``id`` is not this owner's; StillRunning
        (``with_output``) when it is a background response still under way.
        With ``with_output`` it is what a ``previous_response_id`` continues from; without, the response's
        input as the model saw it (``input_items``)."""
        return await self._run(self._chain_items, id, owner, with_output)

    def _chain_items(self, id: str, owner: str, with_output: bool) -> list[Any]:
        newest = self._get(id, owner)
        if with_output and newest.status in RUNNING:
            raise StillRunning(id)
        rows: list[tuple[str, str]] = [(newest.input, newest.response)]
        previous = newest.previous_response_id
        seen = {newest.id}
        while previous and previous not in seen:
            seen.add(previous)
            row = self.conn.execute(
                "SELECT input, response, previous_response_id FROM responses WHERE id = ? AND owner = ?",
                (previous, owner),
            ).fetchone()
            if row is None:
                break  # removed by hand: the chain starts here
            rows.append((row[0], row[1]))
            previous = row[2]
        items: list[Any] = []
        for n, (input_json, response_json) in enumerate(reversed(rows)):
            items.extend(json.loads(input_json))
            if with_output or n < len(rows) - 1:
                items.extend(json.loads(response_json).get("output") or [])
        return items

    async def stored_bytes(self) -> int:
        """Bytes of stored JSON (responses and inputs), for the linear-growth check."""
        return await self._run(
            lambda: self.conn.execute(
                "SELECT COALESCE(SUM(LENGTH(response) + LENGTH(input)), 0) FROM responses"
            ).fetchone()[0]
        )
