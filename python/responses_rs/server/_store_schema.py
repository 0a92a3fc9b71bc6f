"""The store's schema, one for both dialects (sqlite: ``_store.py``; PostgreSQL: ``_store_pg.py``).

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
- ``response_events``: a running background response's events in batches (PostgreSQL; migration 6), until it ends.
- ``prompts``: one row per version of a prompt (the Prompts API, ``_prompts.py``), owner-scoped the same way.
"""

from __future__ import annotations

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
    # 6: a running background response's events, written by its server while it runs (PostgreSQL), so that a
    # replay on another replica follows it live: one row per batch of whole events (SSE text), keyed by the
    # batch's first sequence number. Each write inserts a batch (its cost does not grow with the stream, as
    # rewriting a TEXT column would); when the response ends its batches become the row's `events` and are
    # removed. `heartbeat` (unix seconds) is bumped by the running server while it has no new events to write,
    # so that a follower tells a quiet response from one whose server died.
    """
    CREATE TABLE response_events (
        response_id TEXT NOT NULL,
        first_sequence INTEGER NOT NULL,
        events TEXT NOT NULL,
        PRIMARY KEY (response_id, first_sequence)
    );
    ALTER TABLE responses ADD COLUMN heartbeat INTEGER;
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


def statements(script: str, dialect: str) -> list[str]:
    """One migration's statements, in ``dialect`` (``sqlite`` or ``postgresql``)."""
    for phrase, replacement in _DIALECT[dialect].items():
        script = script.replace(phrase, replacement)
    return [statement.strip() for statement in script.split(";") if statement.strip()]
