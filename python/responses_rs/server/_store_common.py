"""What both stores (``_store.py`` sqlite, ``_store_pg.py`` PostgreSQL) and their parts share: their errors,
the states and rows they read and write."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

# last_error of a vector store file whose server stopped before adding it.
STOPPED_INGESTION = json.dumps({"code": "server_error", "message": "the server stopped before the file was processed"})

# A background response still under way (its row written when it started): the state a cancel or the end moves
# it from.
RUNNING = ("queued", "in_progress")


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One sqlite write transaction, the write lock taken at once (``BEGIN IMMEDIATE``): committed when the block
    ends, rolled back when it raises (the exception goes on)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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


class LiveEvents:
    """A background response's events as the store has them while another server runs it (``live_events``):
    the row's ``status``, ``heartbeat`` and ``events`` (the whole log, set once it has ended) and the batches
    written while it runs after a given first sequence number, ``(first_sequence, SSE text)`` in order."""

    __slots__ = ("status", "heartbeat", "events", "batches")

    def __init__(self, status: str, heartbeat: int | None, events: str | None, batches: list[tuple[int, str]]) -> None:
        self.status = status
        self.heartbeat = heartbeat
        self.events = events
        self.batches = batches
