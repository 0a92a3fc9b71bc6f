"""The server's store: one sqlite file in the data directory, written off the event loop.

Schema (``schema_version`` holds the number of migrations applied; ``MIGRATIONS`` run in order, each once,
in one transaction with the version bump):

- ``responses``: one row per finished response, written once when it ends. ``response`` is the full
  response object (OpenAI's shape, output included); ``input`` holds only the input items this turn added
  (a chained response's earlier items are its ancestors' rows): the chain is rebuilt by walking
  ``previous_response_id``, so a chain's stored bytes grow linearly with its length.
- ``owner`` scopes a row to the API key that created it (``''`` when the server has no keys).
- A deleted response whose descendants still need its items is kept with ``deleted = 1``: invisible to
  retrieve, input items, and as a ``previous_response_id``; only its input and output stay, for its descendants' chains.
  A response without descendants is removed.
- ``prompts``: one row per version of a prompt (the Prompts API, ``_prompts.py``), owner-scoped the same way.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MIGRATIONS: list[str] = [
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        model TEXT NOT NULL,
        status TEXT NOT NULL,
        previous_response_id TEXT,
        response TEXT NOT NULL,
        input TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX responses_previous ON responses (previous_response_id);
    CREATE INDEX responses_owner_created ON responses (owner, created_at);
    """,
    # 2: the Conversations API. Items keep their order in `seq`.
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        metadata TEXT NOT NULL
    );
    CREATE TABLE conversation_items (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id TEXT NOT NULL,
        item_id TEXT NOT NULL,
        item TEXT NOT NULL
    );
    CREATE INDEX conversation_items_by_conversation ON conversation_items (conversation_id, seq);
    """,
    # 3: a background response's stream events (SSE text, `event: ...\ndata: ...\n\n` each), written when it
    # ends, for `GET /v1/responses/{id}?stream=true&starting_after=N` on any server of the database.
    """
    ALTER TABLE responses ADD COLUMN events TEXT;
    """,
    # 4: the Prompts API (`_prompts.py`): one row per version of a prompt (`prompt` its text, `variables` a JSON
    # list of names); `is_default` (0 or 1) marks the version a reference without a version uses.
    """
    CREATE TABLE prompts (
        prompt_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        owner TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        prompt TEXT NOT NULL,
        variables TEXT NOT NULL,
        PRIMARY KEY (prompt_id, version)
    );
    CREATE INDEX prompts_owner ON prompts (owner, prompt_id);
    """,
    # 5: the Files and Vector stores APIs (file_search, `_vector_stores.py`). `seq` orders the lists (created_at has
    # only seconds). A file's bytes are in `content`; a vector store file's chunks are rows of
    # `vector_store_chunks`, each with its embedding as float32 (little endian) in `embedding`, unit length;
    # `attributes` and `metadata` are JSON text. `ingestion` names the run (on some server) that will write an
    # `in_progress` file's end: only that run writes it, and only while the row is still that run's.
    """
    CREATE TABLE files (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        filename TEXT NOT NULL,
        purpose TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        content BLOB NOT NULL
    );
    CREATE INDEX files_owner ON files (owner, seq);
    CREATE TABLE vector_stores (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL,
        name TEXT,
        metadata TEXT NOT NULL
    );
    CREATE INDEX vector_stores_owner ON vector_stores (owner, seq);
    CREATE TABLE vector_store_files (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        vector_store_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        status TEXT NOT NULL,
        attributes TEXT NOT NULL,
        chunking_strategy TEXT NOT NULL,
        last_error TEXT,
        usage_bytes INTEGER NOT NULL,
        ingestion TEXT,
        UNIQUE (vector_store_id, file_id)
    );
    CREATE TABLE vector_store_chunks (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        vector_store_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        text TEXT NOT NULL,
        embedding BLOB NOT NULL
    );
    CREATE INDEX vector_store_chunks_by_store ON vector_store_chunks (vector_store_id, file_id);
    CREATE TABLE vector_store_file_batches (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        vector_store_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        file_ids TEXT NOT NULL
    );
    """,
]


# What a migration says in sqlite's words and PostgreSQL's: MIGRATIONS are written once, in the subset both
# understand, and these are the only phrases translated (``statements``).
_DIALECT: dict[str, dict[str, str]] = {
    "sqlite": {},
    "postgresql": {
        "INTEGER PRIMARY KEY AUTOINCREMENT": "BIGSERIAL PRIMARY KEY",
        "created_at INTEGER": "created_at BIGINT",
        "BLOB": "BYTEA",
    },
}

# last_error of a vector store file whose server stopped before adding it.
STOPPED_INGESTION = json.dumps({"code": "server_error", "message": "the server stopped before the file was processed"})

# A background response still under way (its row written when it started): the state a cancel or the end moves
# it from.
RUNNING = ("queued", "in_progress")


def statements(script: str, dialect: str) -> list[str]:
    """One migration's statements, in ``dialect`` (``sqlite`` or ``postgresql``)."""
    for phrase, replacement in _DIALECT[dialect].items():
        script = script.replace(phrase, replacement)
    return [statement.strip() for statement in script.split(";") if statement.strip()]


class NotFound(LookupError):
    """No such response (or not this owner's)."""


class StillRunning(LookupError):
    """A ``previous_response_id`` names a background response still under way."""


class VersionNotFound(NotFound):
    """No such version of a prompt (or the prompt is not this owner's)."""


class VersionConflict(ValueError):
    """A prompt's new version was based on a version that is not its latest (``latest``)."""

    def __init__(self, latest: int) -> None:
        super().__init__(latest)
        self.latest = latest


# A stored prompt version: (prompt_id, version, prompt text, variables as JSON, is_default).
PromptRow = tuple[str, int, str, str, bool]
PROMPT_COLUMNS = "prompt_id, version, prompt, variables, is_default"


def prompt_row(row: Any) -> PromptRow:
    return (row[0], int(row[1]), row[2], row[3], bool(row[4]))


class Stored:
    """A stored response: its JSON text, and what the chain walk needs."""

    __slots__ = ("id", "response", "input", "previous_response_id", "status")

    def __init__(self, id: str, response: str, input: str, previous_response_id: str | None, status: str) -> None:
        self.id = id
        self.response = response
        self.input = input
        self.previous_response_id = previous_response_id
        self.status = status


class Store:
    """sqlite in ``path``; every call runs on one worker thread (sqlite connections are not shared)."""

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
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT 1 FROM responses WHERE id = ? AND owner = ? AND deleted = 0", (id, owner)
            ).fetchone()
            if row is None:
                raise NotFound(id)
            child = conn.execute("SELECT 1 FROM responses WHERE previous_response_id = ? LIMIT 1", (id,)).fetchone()
            if child is None:
                conn.execute("DELETE FROM responses WHERE id = ?", (id,))
            else:
                # Only what the descendants' chains read is kept: the output.
                conn.execute(
                    "UPDATE responses SET deleted = 1, response = json_object('output', json(json_extract(response,"
                    " '$.output'))) WHERE id = ?",
                    (id,),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- reads -----------------------------------------------------------------------------------

    async def set_events(self, id: str, events: str) -> None:
        """A background response's stream events, kept for replay (written once, when it has ended)."""
        await self._run(self._set_events, id, events)

    def _set_events(self, id: str, events: str) -> None:
        self.conn.execute("UPDATE responses SET events = ? WHERE id = ?", (events, id))

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

    # -- conversations -----------------------------------------------------------------------------

    async def create_conversation(
        self, id: str, owner: str, created_at: int, metadata: str, items: list[tuple[str, str]]
    ) -> None:
        await self._run(self._create_conversation, id, owner, created_at, metadata, items)

    def _create_conversation(
        self, id: str, owner: str, created_at: int, metadata: str, items: list[tuple[str, str]]
    ) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO conversations (id, owner, created_at, metadata) VALUES (?, ?, ?, ?)",
                (id, owner, created_at, metadata),
            )
            conn.executemany(
                "INSERT INTO conversation_items (conversation_id, item_id, item) VALUES (?, ?, ?)",
                [(id, item_id, item) for item_id, item in items],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def get_conversation(self, id: str, owner: str) -> tuple[str, int, str]:
        """(id, created_at, metadata JSON); NotFound when it is not this owner's."""
        return await self._run(self._get_conversation, id, owner)

    def _get_conversation(self, id: str, owner: str) -> tuple[str, int, str]:
        row = self.conn.execute(
            "SELECT id, created_at, metadata FROM conversations WHERE id = ? AND owner = ?", (id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(id)
        return row

    async def update_conversation(self, id: str, owner: str, metadata: str) -> None:
        await self._run(self._update_conversation, id, owner, metadata)

    def _update_conversation(self, id: str, owner: str, metadata: str) -> None:
        cursor = self.conn.execute(
            "UPDATE conversations SET metadata = ? WHERE id = ? AND owner = ?", (metadata, id, owner)
        )
        if cursor.rowcount == 0:
            raise NotFound(id)

    async def delete_conversation(self, id: str, owner: str) -> None:
        await self._run(self._delete_conversation, id, owner)

    def _delete_conversation(self, id: str, owner: str) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (id, owner)).rowcount == 0:
                raise NotFound(id)
            conn.execute("DELETE FROM conversation_items WHERE conversation_id = ?", (id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def add_conversation_items(self, id: str, owner: str, items: list[tuple[str, str]]) -> None:
        await self._run(self._add_conversation_items, id, owner, items)

    def _add_conversation_items(self, id: str, owner: str, items: list[tuple[str, str]]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._get_conversation(id, owner)
            conn.executemany(
                "INSERT INTO conversation_items (conversation_id, item_id, item) VALUES (?, ?, ?)",
                [(id, item_id, item) for item_id, item in items],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def conversation_items(self, id: str, owner: str) -> list[Any]:
        """Every item of the conversation, oldest first; NotFound when it is not this owner's."""
        return await self._run(self._conversation_items, id, owner)

    def _conversation_items(self, id: str, owner: str) -> list[Any]:
        self._get_conversation(id, owner)
        rows = self.conn.execute(
            "SELECT item FROM conversation_items WHERE conversation_id = ? ORDER BY seq", (id,)
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    async def delete_conversation_item(self, id: str, owner: str, item_id: str) -> None:
        await self._run(self._delete_conversation_item, id, owner, item_id)

    def _delete_conversation_item(self, id: str, owner: str, item_id: str) -> None:
        self._get_conversation(id, owner)
        cursor = self.conn.execute(
            "DELETE FROM conversation_items WHERE conversation_id = ? AND item_id = ?", (id, item_id)
        )
        if cursor.rowcount == 0:
            raise NotFound(item_id)

    # -- prompts -----------------------------------------------------------------------------------

    async def create_prompt(self, prompt_id: str, owner: str, created_at: int, prompt: str, variables: str) -> None:
        """A new prompt: its version 1, the default."""
        await self._run(self._create_prompt, prompt_id, owner, created_at, prompt, variables)

    def _create_prompt(self, prompt_id: str, owner: str, created_at: int, prompt: str, variables: str) -> None:
        self.conn.execute(
            "INSERT INTO prompts (prompt_id, version, owner, created_at, is_default, prompt, variables)"
            " VALUES (?, 1, ?, ?, 1, ?, ?)",
            (prompt_id, owner, created_at, prompt, variables),
        )

    async def get_prompt(self, prompt_id: str, owner: str, version: int | None) -> PromptRow:
        """A version of a prompt, without ``version`` its default one. VersionNotFound (a version asked for) or
        NotFound."""
        return await self._run(self._get_prompt, prompt_id, owner, version)

    def _get_prompt(self, prompt_id: str, owner: str, version: int | None) -> PromptRow:
        if version is None:
            row = self.conn.execute(
                f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = ? AND owner = ? AND is_default = 1",
                (prompt_id, owner),
            ).fetchone()
            if row is None:
                raise NotFound(prompt_id)
        else:
            row = self.conn.execute(
                f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = ? AND owner = ? AND version = ?",
                (prompt_id, owner, version),
            ).fetchone()
            if row is None:
                raise VersionNotFound(version)
        return prompt_row(row)

    async def list_prompts(self, owner: str) -> list[PromptRow]:
        """The owner's prompts, each as its default version, by prompt id descending (as OGX lists them)."""
        return await self._run(self._list_prompts, owner)

    def _list_prompts(self, owner: str) -> list[PromptRow]:
        rows = self.conn.execute(
            f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE owner = ? AND is_default = 1 ORDER BY prompt_id DESC",
            (owner,),
        ).fetchall()
        return [prompt_row(row) for row in rows]

    async def prompt_versions(self, prompt_id: str, owner: str) -> list[PromptRow]:
        """Every version of a prompt, oldest first; NotFound when it has none (or is not this owner's)."""
        return await self._run(self._prompt_versions, prompt_id, owner)

    def _prompt_versions(self, prompt_id: str, owner: str) -> list[PromptRow]:
        rows = self.conn.execute(
            f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = ? AND owner = ? ORDER BY version",
            (prompt_id, owner),
        ).fetchall()
        if not rows:
            raise NotFound(prompt_id)
        return [prompt_row(row) for row in rows]

    async def add_prompt_version(
        self,
        prompt_id: str,
        owner: str,
        based_on: int,
        prompt: str,
        variables: str,
        set_as_default: bool,
        created_at: int,
    ) -> PromptRow:
        """A prompt's next version, made from its latest one (``based_on``: VersionConflict otherwise; NotFound
        when the prompt has no version), the default when ``set_as_default``."""
        return await self._run(
            self._add_prompt_version, prompt_id, owner, based_on, prompt, variables, set_as_default, created_at
        )

    def _add_prompt_version(
        self,
        prompt_id: str,
        owner: str,
        based_on: int,
        prompt: str,
        variables: str,
        set_as_default: bool,
        created_at: int,
    ) -> PromptRow:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            latest = conn.execute(
                "SELECT MAX(version) FROM prompts WHERE prompt_id = ? AND owner = ?", (prompt_id, owner)
            ).fetchone()[0]
            if latest is None:
                raise NotFound(prompt_id)
            if latest != based_on:
                raise VersionConflict(latest)
            version = latest + 1
            conn.execute(
                "INSERT INTO prompts (prompt_id, version, owner, created_at, is_default, prompt, variables)"
                " VALUES (?, ?, ?, ?, 0, ?, ?)",
                (prompt_id, version, owner, created_at, prompt, variables),
            )
            if set_as_default:
                conn.execute(
                    "UPDATE prompts SET is_default = CASE WHEN version = ? THEN 1 ELSE 0 END"
                    " WHERE prompt_id = ? AND owner = ?",
                    (version, prompt_id, owner),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return (prompt_id, version, prompt, variables, set_as_default)

    async def set_default_prompt_version(self, prompt_id: str, owner: str, version: int) -> PromptRow:
        """Make ``version`` the prompt's default (VersionNotFound when it has no such version)."""
        return await self._run(self._set_default_prompt_version, prompt_id, owner, version)

    def _set_default_prompt_version(self, prompt_id: str, owner: str, version: int) -> PromptRow:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = ? AND owner = ? AND version = ?",
                (prompt_id, owner, version),
            ).fetchone()
            if row is None:
                raise VersionNotFound(version)
            conn.execute(
                "UPDATE prompts SET is_default = CASE WHEN version = ? THEN 1 ELSE 0 END"
                " WHERE prompt_id = ? AND owner = ?",
                (version, prompt_id, owner),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        found = prompt_row(row)
        return (found[0], found[1], found[2], found[3], True)

    async def delete_prompt(self, prompt_id: str, owner: str) -> None:
        """Every version of a prompt; NotFound when it has none (or is not this owner's)."""
        await self._run(self._delete_prompt, prompt_id, owner)

    def _delete_prompt(self, prompt_id: str, owner: str) -> None:
        cursor = self.conn.execute("DELETE FROM prompts WHERE prompt_id = ? AND owner = ?", (prompt_id, owner))
        if cursor.rowcount == 0:
            raise NotFound(prompt_id)

    # -- files and vector stores (file_search) ------------------------------------------------------
    # Rows: a file (id, created_at, filename, purpose, bytes); a vector store (id, created_at, name, metadata JSON);
    # a vector store file (vector_store_id, file_id, created_at, status, attributes JSON, chunking_strategy JSON,
    # last_error JSON or None, usage_bytes); a chunk for search (vector_store_id, file_id, filename, attributes
    # JSON, text, embedding float32 bytes).

    async def put_file(self, id: str, owner: str, created_at: int, filename: str, purpose: str, content: bytes) -> None:
        await self._run(
            lambda: self.conn.execute(
                "INSERT INTO files (id, owner, created_at, filename, purpose, bytes, content)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (id, owner, created_at, filename, purpose, len(content), content),
            )
        )

    async def files(self, owner: str) -> list[tuple[Any, ...]]:
        return await self._run(
            lambda: self.conn.execute(
                "SELECT id, created_at, filename, purpose, bytes FROM files WHERE owner = ? ORDER BY seq",
                (owner,),
            ).fetchall()
        )

    async def file(self, id: str, owner: str) -> tuple[Any, ...]:
        return await self._run(self._file, id, owner)

    def _file(self, id: str, owner: str) -> tuple[Any, ...]:
        row = self.conn.execute(
            "SELECT id, created_at, filename, purpose, bytes FROM files WHERE id = ? AND owner = ?", (id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(id)
        return tuple(row)

    async def file_content(self, id: str, owner: str) -> bytes:
        def read() -> bytes:
            row = self.conn.execute("SELECT content FROM files WHERE id = ? AND owner = ?", (id, owner)).fetchone()
            if row is None:
                raise NotFound(id)
            return bytes(row[0])

        return await self._run(read)

    async def delete_file(self, id: str, owner: str) -> None:
        """The file, and its chunks in every vector store (so no search finds a deleted file)."""

        def delete() -> None:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("DELETE FROM files WHERE id = ? AND owner = ?", (id, owner)).rowcount == 0:
                    raise NotFound(id)
                conn.execute("DELETE FROM vector_store_files WHERE file_id = ?", (id,))
                conn.execute("DELETE FROM vector_store_chunks WHERE file_id = ?", (id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(delete)

    async def create_vector_store(self, id: str, owner: str, created_at: int, name: str | None, metadata: str) -> None:
        await self._run(
            lambda: self.conn.execute(
                "INSERT INTO vector_stores (id, owner, created_at, name, metadata) VALUES (?, ?, ?, ?, ?)",
                (id, owner, created_at, name, metadata),
            )
        )

    async def vector_stores(self, owner: str) -> list[tuple[Any, ...]]:
        return await self._run(
            lambda: self.conn.execute(
                "SELECT id, created_at, name, metadata FROM vector_stores WHERE owner = ? ORDER BY seq",
                (owner,),
            ).fetchall()
        )

    async def vector_store(self, id: str, owner: str) -> tuple[Any, ...]:
        return await self._run(self._vector_store, id, owner)

    def _vector_store(self, id: str, owner: str) -> tuple[Any, ...]:
        row = self.conn.execute(
            "SELECT id, created_at, name, metadata FROM vector_stores WHERE id = ? AND owner = ?", (id, owner)
        ).fetchone()
        if row is None:
            raise NotFound(id)
        return tuple(row)

    async def delete_vector_store(self, id: str, owner: str) -> None:
        def delete() -> None:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("DELETE FROM vector_stores WHERE id = ? AND owner = ?", (id, owner)).rowcount == 0:
                    raise NotFound(id)
                conn.execute("DELETE FROM vector_store_files WHERE vector_store_id = ?", (id,))
                conn.execute("DELETE FROM vector_store_chunks WHERE vector_store_id = ?", (id,))
                conn.execute("DELETE FROM vector_store_file_batches WHERE vector_store_id = ?", (id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(delete)

    async def put_vector_store_file(
        self, owner: str, row: tuple[Any, ...], chunks: list[tuple[str, bytes]], ingestion: str | None = None
    ) -> None:
        """A vector store file (`row`, as read back) with its chunks, in one transaction, replacing the file's earlier
        ones in that store; NotFound when the store is not this owner's (or was deleted meanwhile). `ingestion`: the
        run that will write the end of an `in_progress` row (`finish_vector_store_file`)."""

        def put() -> None:
            conn = self.conn
            store_id, file_id = row[0], row[1]
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._vector_store(store_id, owner)
                conn.execute(
                    "DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (store_id, file_id)
                )
                conn.execute(
                    "DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?", (store_id, file_id)
                )
                conn.execute(
                    "INSERT INTO vector_store_files (vector_store_id, file_id, created_at, status, attributes,"
                    " chunking_strategy, last_error, usage_bytes, ingestion) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, ingestion),
                )
                conn.executemany(
                    "INSERT INTO vector_store_chunks (vector_store_id, file_id, text, embedding) VALUES (?, ?, ?, ?)",
                    [(store_id, file_id, text, embedding) for text, embedding in chunks],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(put)

    async def vector_store_files(self, id: str, owner: str) -> list[tuple[Any, ...]]:
        """The store's files, oldest first; NotFound when the store is not this owner's."""

        def read() -> list[tuple[Any, ...]]:
            self._vector_store(id, owner)
            return self.conn.execute(
                "SELECT vector_store_id, file_id, created_at, status, attributes, chunking_strategy, last_error,"
                " usage_bytes FROM vector_store_files WHERE vector_store_id = ? ORDER BY seq",
                (id,),
            ).fetchall()

        return await self._run(read)

    async def delete_vector_store_file(self, id: str, owner: str, file_id: str) -> None:
        def delete() -> None:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._vector_store(id, owner)
                cursor = conn.execute(
                    "DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (id, file_id)
                )
                if cursor.rowcount == 0:
                    raise NotFound(file_id)
                conn.execute("DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?", (id, file_id))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(delete)

    async def chunk_stamp(self, id: str, owner: str) -> tuple[int, int] | None:
        """What identifies a vector store's chunks as they stand: (how many, the highest `seq`); None when the store
        is not this owner's. Chunks are only ever added (with a higher `seq`) or deleted, so any change changes it."""

        def read() -> tuple[int, int] | None:
            row = self.conn.execute(
                "SELECT count(c.seq), coalesce(max(c.seq), 0) FROM vector_stores s"
                " LEFT JOIN vector_store_chunks c ON c.vector_store_id = s.id WHERE s.id = ? AND s.owner = ?"
                " GROUP BY s.id",
                (id, owner),
            ).fetchone()
            return None if row is None else (int(row[0]), int(row[1]))

        return await self._run(read)

    async def chunks(self, id: str, owner: str) -> list[tuple[Any, ...]]:
        """Every chunk of the vector store's completed files (this owner's only), without its text:
        (seq, file_id, filename, attributes JSON, embedding bytes), in `seq` order."""

        def read() -> list[tuple[Any, ...]]:
            return self.conn.execute(
                "SELECT c.seq, c.file_id, f.filename, vf.attributes, c.embedding"
                " FROM vector_store_chunks c"
                " JOIN vector_stores s ON s.id = c.vector_store_id"
                " JOIN vector_store_files vf ON vf.vector_store_id = c.vector_store_id AND vf.file_id = c.file_id"
                " JOIN files f ON f.id = c.file_id"
                " WHERE c.vector_store_id = ? AND s.owner = ? AND vf.status = 'completed' ORDER BY c.seq",
                (id, owner),
            ).fetchall()

        return await self._run(read)

    async def chunk_texts(self, seqs: list[int]) -> dict[int, str]:
        """The texts of these chunks (those still there)."""

        def read() -> dict[int, str]:
            marks = ", ".join("?" * len(seqs))
            rows = self.conn.execute(f"SELECT seq, text FROM vector_store_chunks WHERE seq IN ({marks})", seqs)
            return {int(seq): text for seq, text in rows.fetchall()}

        return await self._run(read)

    async def put_file_batch(self, id: str, store_id: str, created_at: int, file_ids: str) -> None:
        await self._run(
            lambda: self.conn.execute(
                "INSERT INTO vector_store_file_batches (id, vector_store_id, created_at, file_ids) VALUES (?, ?, ?, ?)",
                (id, store_id, created_at, file_ids),
            )
        )

    async def file_batch(self, id: str, store_id: str, owner: str) -> tuple[Any, ...]:
        """(id, created_at, file_ids JSON) of a batch of this owner's vector store; NotFound otherwise."""

        def read() -> tuple[Any, ...]:
            self._vector_store(store_id, owner)
            row = self.conn.execute(
                "SELECT id, created_at, file_ids FROM vector_store_file_batches WHERE id = ? AND vector_store_id = ?",
                (id, store_id),
            ).fetchone()
            if row is None:
                raise NotFound(id)
            return tuple(row)

        return await self._run(read)

    async def finish_vector_store_file(
        self,
        store_id: str,
        file_id: str,
        ingestion: str,
        status: str,
        last_error: str | None,
        usage: int,
        chunks: list[tuple[str, bytes]],
    ) -> bool:
        """The end of an ingestion: the row's state and its chunks in one transaction, only while the row is still
        `in_progress` under that run (not deleted, re-added, cancelled or the store deleted meanwhile). False:
        nothing was written."""

        def finish() -> bool:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = conn.execute(
                    "UPDATE vector_store_files SET status = ?, last_error = ?, usage_bytes = ?, ingestion = NULL"
                    " WHERE vector_store_id = ? AND file_id = ? AND ingestion = ? AND status = 'in_progress'",
                    (status, last_error, usage, store_id, file_id, ingestion),
                )
                if cursor.rowcount:
                    conn.executemany(
                        "INSERT INTO vector_store_chunks (vector_store_id, file_id, text, embedding)"
                        " VALUES (?, ?, ?, ?)",
                        [(store_id, file_id, text, embedding) for text, embedding in chunks],
                    )
                conn.execute("COMMIT")
                return bool(cursor.rowcount)
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        return await self._run(finish)

    async def cancel_vector_store_files(self, store_id: str, file_ids: list[str]) -> list[str]:
        """Mark these files of the store `cancelled` where still `in_progress` (their runs, on any server, then write
        nothing); the ids so marked."""

        def cancel() -> list[str]:
            marks = ", ".join("?" * len(file_ids))
            rows = self.conn.execute(
                "UPDATE vector_store_files SET status = 'cancelled', ingestion = NULL WHERE vector_store_id = ?"
                f" AND file_id IN ({marks}) AND status = 'in_progress' RETURNING file_id",
                (store_id, *file_ids),
            ).fetchall()
            return [row[0] for row in rows]

        return await self._run(cancel)
