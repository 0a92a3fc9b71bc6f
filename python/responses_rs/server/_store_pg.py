"""The server's PostgreSQL store (``--database-url postgresql://...``): the same tables, migrations and
methods as the sqlite store (``_store.py``, whose docstring describes the schema), so that several
``responses-rs serve`` replicas share one database. asyncpg (the ``[postgres]`` extra), a connection pool on the
server's event loop.

Differences from sqlite, all about several servers on one database:

- migrations run under a transaction-scoped advisory lock, so replicas starting together migrate once;
- at start-up nothing is marked failed: a ``queued`` row may be another replica's run under way (a replica marks
  its own runs failed when it stops; one that crashes leaves them ``queued``);
- a chain is read with one recursive query (one round trip however long the chain).
"""

from __future__ import annotations

import json
from typing import Any

from ._store import (
    MIGRATIONS,
    PROMPT_COLUMNS,
    RUNNING,
    NotFound,
    PromptRow,
    StillRunning,
    Stored,
    VersionConflict,
    VersionNotFound,
    prompt_row,
    statements,
)

try:
    import asyncpg
except ImportError:  # pragma: no cover - reported by PostgresStore.open
    asyncpg = None

# pg_advisory_xact_lock key for the migrations ("responses-rs" folded into 63 bits; any constant would do).
_MIGRATION_LOCK = 0x7265_7370_6F6E_7365


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class PostgresStore:
    """The store on PostgreSQL; ``open`` and every method run on the server's event loop."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self.url = url
        self.max_connections = max_connections
        self._pool: Any = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and apply the migrations not yet applied (before serving)."""
        if asyncpg is None:
            raise RuntimeError("a PostgreSQL store needs asyncpg: pip install 'responses-rs[postgres]'")
        self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=self.max_connections)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                version = await conn.fetchval("SELECT version FROM schema_version")
                if version is None:
                    version = 0
                    await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                if version > len(MIGRATIONS):
                    raise RuntimeError(
                        f"the database's schema version {version} is newer than this responses-rs ({len(MIGRATIONS)})"
                    )
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in statements(script, "postgresql"):
                        await conn.execute(statement)
                    await conn.execute("UPDATE schema_version SET version = $1", number)
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

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
        await self.pool.execute(
            "INSERT INTO responses (id, owner, created_at, model, status, previous_response_id, response, input)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
            " status = excluded.status, response = excluded.response, input = excluded.input",
            id,
            owner,
            created_at,
            model,
            status,
            previous_response_id,
            response,
            input,
        )

    async def set_response(self, id: str, status: str, response: str) -> bool:
        """As the sqlite store's: only while the row is still under way; False otherwise."""
        result = await self.pool.execute(
            "UPDATE responses SET status = $1, response = $2 WHERE id = $3 AND status = ANY($4::text[])",
            status,
            response,
            id,
            list(RUNNING),
        )
        return result != "UPDATE 0"

    async def stopped(self, ids: list[str]) -> set[str]:
        rows = await self.pool.fetch(
            "SELECT id FROM responses WHERE id = ANY($1::text[]) AND status = ANY($2::text[])", ids, list(RUNNING)
        )
        return set(ids) - {row[0] for row in rows}

    async def delete(self, id: str, owner: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT 1 FROM responses WHERE id = $1 AND owner = $2 AND deleted = 0 FOR UPDATE", id, owner
            )
            if row is None:
                raise NotFound(id)
            child = await conn.fetchrow("SELECT 1 FROM responses WHERE previous_response_id = $1 LIMIT 1", id)
            if child is None:
                await conn.execute("DELETE FROM responses WHERE id = $1", id)
            else:
                # Only what the descendants' chains read is kept: the output.
                await conn.execute(
                    "UPDATE responses SET deleted = 1,"
                    " response = jsonb_build_object('output', response::jsonb -> 'output')::text WHERE id = $1",
                    id,
                )

    # -- reads -----------------------------------------------------------------------------------

    async def set_events(self, id: str, events: str) -> None:
        await self.pool.execute("UPDATE responses SET events = $1 WHERE id = $2", events, id)

    async def events(self, id: str, owner: str) -> tuple[str, str | None]:
        row = await self.pool.fetchrow(
            "SELECT status, events FROM responses WHERE id = $1 AND owner = $2 AND deleted = 0", id, owner
        )
        if row is None:
            raise NotFound(id)
        return row[0], row[1]

    async def get(self, id: str, owner: str) -> Stored:
        row = await self.pool.fetchrow(
            "SELECT id, response, input, previous_response_id, status FROM responses"
            " WHERE id = $1 AND owner = $2 AND deleted = 0",
            id,
            owner,
        )
        if row is None:
            raise NotFound(id)
        return Stored(*row)

    async def chain_items(self, id: str, owner: str, *, with_output: bool) -> list[Any]:
        """As the sqlite store's, in one recursive query (newest first, ``depth`` 0 the response itself)."""
        rows = await self.pool.fetch(
            "WITH RECURSIVE chain (depth, input, response, previous_response_id, status) AS ("
            " SELECT 0, input, response, previous_response_id, status FROM responses"
            "  WHERE id = $1 AND owner = $2 AND deleted = 0"
            " UNION ALL"
            " SELECT chain.depth + 1, r.input, r.response, r.previous_response_id, r.status"
            "  FROM chain JOIN responses r ON r.id = chain.previous_response_id AND r.owner = $2"
            "  WHERE chain.depth < 1000000"
            ") SELECT depth, input, response, status FROM chain ORDER BY depth DESC",
            id,
            owner,
        )
        if not rows:
            raise NotFound(id)
        if with_output and rows[-1]["status"] in RUNNING:
            raise StillRunning(id)
        items: list[Any] = []
        last = len(rows) - 1
        for n, row in enumerate(rows):
            items.extend(json.loads(row["input"]))
            if with_output or n < last:
                items.extend(json.loads(row["response"]).get("output") or [])
        return items

    async def stored_bytes(self) -> int:
        """Bytes of stored JSON (responses and inputs), for the linear-growth check."""
        return int(
            await self.pool.fetchval(
                "SELECT COALESCE(SUM(octet_length(response) + octet_length(input)), 0) FROM responses"
            )
        )

    # -- conversations -----------------------------------------------------------------------------

    async def create_conversation(
        self, id: str, owner: str, created_at: int, metadata: str, items: list[tuple[str, str]]
    ) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO conversations (id, owner, created_at, metadata) VALUES ($1, $2, $3, $4)",
                id,
                owner,
                created_at,
                metadata,
            )
            await _insert_items(conn, id, items)

    async def get_conversation(self, id: str, owner: str) -> tuple[str, int, str]:
        """(id, created_at, metadata JSON); NotFound when it is not this owner's."""
        row = await self.pool.fetchrow(
            "SELECT id, created_at, metadata FROM conversations WHERE id = $1 AND owner = $2", id, owner
        )
        if row is None:
            raise NotFound(id)
        return (row[0], row[1], row[2])

    async def update_conversation(self, id: str, owner: str, metadata: str) -> None:
        result = await self.pool.execute(
            "UPDATE conversations SET metadata = $1 WHERE id = $2 AND owner = $3", metadata, id, owner
        )
        if result == "UPDATE 0":
            raise NotFound(id)

    async def delete_conversation(self, id: str, owner: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute("DELETE FROM conversations WHERE id = $1 AND owner = $2", id, owner)
            if result == "DELETE 0":
                raise NotFound(id)
            await conn.execute("DELETE FROM conversation_items WHERE conversation_id = $1", id)

    async def add_conversation_items(self, id: str, owner: str, items: list[tuple[str, str]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            # The conversation's row locked: two replicas appending to one conversation append in turn.
            row = await conn.fetchrow("SELECT 1 FROM conversations WHERE id = $1 AND owner = $2 FOR UPDATE", id, owner)
            if row is None:
                raise NotFound(id)
            await _insert_items(conn, id, items)

    async def conversation_items(self, id: str, owner: str) -> list[Any]:
        """Every item of the conversation, oldest first; NotFound when it is not this owner's."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            if await conn.fetchrow("SELECT 1 FROM conversations WHERE id = $1 AND owner = $2", id, owner) is None:
                raise NotFound(id)
            rows = await conn.fetch("SELECT item FROM conversation_items WHERE conversation_id = $1 ORDER BY seq", id)
        return [json.loads(row[0]) for row in rows]

    async def delete_conversation_item(self, id: str, owner: str, item_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchrow("SELECT 1 FROM conversations WHERE id = $1 AND owner = $2", id, owner) is None:
                raise NotFound(id)
            result = await conn.execute(
                "DELETE FROM conversation_items WHERE conversation_id = $1 AND item_id = $2", id, item_id
            )
            if result == "DELETE 0":
                raise NotFound(item_id)

    # -- prompts -----------------------------------------------------------------------------------

    async def create_prompt(self, prompt_id: str, owner: str, created_at: int, prompt: str, variables: str) -> None:
        await self.pool.execute(
            "INSERT INTO prompts (prompt_id, version, owner, created_at, is_default, prompt, variables)"
            " VALUES ($1, 1, $2, $3, 1, $4, $5)",
            prompt_id,
            owner,
            created_at,
            prompt,
            variables,
        )

    async def get_prompt(self, prompt_id: str, owner: str, version: int | None) -> PromptRow:
        """As the sqlite store's: the version asked for, else the default one."""
        if version is None:
            row = await self.pool.fetchrow(
                f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = $1 AND owner = $2 AND is_default = 1",
                prompt_id,
                owner,
            )
            if row is None:
                raise NotFound(prompt_id)
        else:
            row = await self.pool.fetchrow(
                f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = $1 AND owner = $2 AND version = $3",
                prompt_id,
                owner,
                version,
            )
            if row is None:
                raise VersionNotFound(version)
        return prompt_row(row)

    async def list_prompts(self, owner: str) -> list[PromptRow]:
        rows = await self.pool.fetch(
            f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE owner = $1 AND is_default = 1 ORDER BY prompt_id DESC",
            owner,
        )
        return [prompt_row(row) for row in rows]

    async def prompt_versions(self, prompt_id: str, owner: str) -> list[PromptRow]:
        rows = await self.pool.fetch(
            f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = $1 AND owner = $2 ORDER BY version",
            prompt_id,
            owner,
        )
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
        """As the sqlite store's. The prompt's rows are locked; two replicas adding a version to the same latest
        one at once: the second's insert meets the first's row (VersionConflict)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT version FROM prompts WHERE prompt_id = $1 AND owner = $2 FOR UPDATE", prompt_id, owner
                )
                if not rows:
                    raise NotFound(prompt_id)
                latest = max(int(row[0]) for row in rows)
                if latest != based_on:
                    raise VersionConflict(latest)
                version = latest + 1
                await conn.execute(
                    "INSERT INTO prompts (prompt_id, version, owner, created_at, is_default, prompt, variables)"
                    " VALUES ($1, $2, $3, $4, 0, $5, $6)",
                    prompt_id,
                    version,
                    owner,
                    created_at,
                    prompt,
                    variables,
                )
                if set_as_default:
                    await conn.execute(
                        "UPDATE prompts SET is_default = CASE WHEN version = $1 THEN 1 ELSE 0 END"
                        " WHERE prompt_id = $2 AND owner = $3",
                        version,
                        prompt_id,
                        owner,
                    )
        except asyncpg.UniqueViolationError:
            raise VersionConflict(based_on + 1) from None
        return (prompt_id, version, prompt, variables, set_as_default)

    async def set_default_prompt_version(self, prompt_id: str, owner: str, version: int) -> PromptRow:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {PROMPT_COLUMNS} FROM prompts WHERE prompt_id = $1 AND owner = $2 AND version = $3",
                prompt_id,
                owner,
                version,
            )
            if row is None:
                raise VersionNotFound(version)
            await conn.execute(
                "UPDATE prompts SET is_default = CASE WHEN version = $1 THEN 1 ELSE 0 END"
                " WHERE prompt_id = $2 AND owner = $3",
                version,
                prompt_id,
                owner,
            )
        found = prompt_row(row)
        return (found[0], found[1], found[2], found[3], True)

    async def delete_prompt(self, prompt_id: str, owner: str) -> None:
        result = await self.pool.execute("DELETE FROM prompts WHERE prompt_id = $1 AND owner = $2", prompt_id, owner)
        if result == "DELETE 0":
            raise NotFound(prompt_id)

    # -- files and vector stores (file_search): rows as the sqlite store's -----------------------------------

    async def put_file(self, id: str, owner: str, created_at: int, filename: str, purpose: str, content: bytes) -> None:
        await self.pool.execute(
            "INSERT INTO files (id, owner, created_at, filename, purpose, bytes, content)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            id,
            owner,
            created_at,
            filename,
            purpose,
            len(content),
            content,
        )

    async def files(self, owner: str) -> list[tuple[Any, ...]]:
        rows = await self.pool.fetch(
            "SELECT id, created_at, filename, purpose, bytes FROM files WHERE owner = $1 ORDER BY seq", owner
        )
        return [tuple(row) for row in rows]

    async def file(self, id: str, owner: str) -> tuple[Any, ...]:
        row = await self.pool.fetchrow(
            "SELECT id, created_at, filename, purpose, bytes FROM files WHERE id = $1 AND owner = $2", id, owner
        )
        if row is None:
            raise NotFound(id)
        return tuple(row)

    async def file_content(self, id: str, owner: str) -> bytes:
        row = await self.pool.fetchrow("SELECT content FROM files WHERE id = $1 AND owner = $2", id, owner)
        if row is None:
            raise NotFound(id)
        return bytes(row[0])

    async def delete_file(self, id: str, owner: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.execute("DELETE FROM files WHERE id = $1 AND owner = $2", id, owner) == "DELETE 0":
                raise NotFound(id)
            await conn.execute("DELETE FROM vector_store_files WHERE file_id = $1", id)
            await conn.execute("DELETE FROM vector_store_chunks WHERE file_id = $1", id)

    async def create_vector_store(self, id: str, owner: str, created_at: int, name: str | None, metadata: str) -> None:
        await self.pool.execute(
            "INSERT INTO vector_stores (id, owner, created_at, name, metadata) VALUES ($1, $2, $3, $4, $5)",
            id,
            owner,
            created_at,
            name,
            metadata,
        )

    async def vector_stores(self, owner: str) -> list[tuple[Any, ...]]:
        rows = await self.pool.fetch(
            "SELECT id, created_at, name, metadata FROM vector_stores WHERE owner = $1 ORDER BY seq", owner
        )
        return [tuple(row) for row in rows]

    async def vector_store(self, id: str, owner: str, conn: Any = None) -> tuple[Any, ...]:
        row = await (conn or self.pool).fetchrow(
            "SELECT id, created_at, name, metadata FROM vector_stores WHERE id = $1 AND owner = $2", id, owner
        )
        if row is None:
            raise NotFound(id)
        return tuple(row)

    async def delete_vector_store(self, id: str, owner: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.execute("DELETE FROM vector_stores WHERE id = $1 AND owner = $2", id, owner) == "DELETE 0":
                raise NotFound(id)
            await conn.execute("DELETE FROM vector_store_files WHERE vector_store_id = $1", id)
            await conn.execute("DELETE FROM vector_store_chunks WHERE vector_store_id = $1", id)
            await conn.execute("DELETE FROM vector_store_file_batches WHERE vector_store_id = $1", id)

    async def put_vector_store_file(
        self, owner: str, row: tuple[Any, ...], chunks: list[tuple[str, bytes]], ingestion: str | None = None
    ) -> None:
        store_id, file_id = row[0], row[1]
        async with self.pool.acquire() as conn, conn.transaction():
            if (
                await conn.fetchrow(
                    "SELECT 1 FROM vector_stores WHERE id = $1 AND owner = $2 FOR UPDATE", store_id, owner
                )
                is None
            ):
                raise NotFound(store_id)
            await conn.execute(
                "DELETE FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2", store_id, file_id
            )
            await conn.execute(
                "DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2", store_id, file_id
            )
            await conn.execute(
                "INSERT INTO vector_store_files (vector_store_id, file_id, created_at, status, attributes,"
                " chunking_strategy, last_error, usage_bytes, ingestion) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                *row,
                ingestion,
            )
            if chunks:
                await conn.executemany(
                    "INSERT INTO vector_store_chunks (vector_store_id, file_id, text, embedding)"
                    " VALUES ($1, $2, $3, $4)",
                    [(store_id, file_id, text, embedding) for text, embedding in chunks],
                )

    async def vector_store_files(self, id: str, owner: str) -> list[tuple[Any, ...]]:
        async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            await self.vector_store(id, owner, conn)
            rows = await conn.fetch(
                "SELECT vector_store_id, file_id, created_at, status, attributes, chunking_strategy, last_error,"
                " usage_bytes FROM vector_store_files WHERE vector_store_id = $1 ORDER BY seq",
                id,
            )
        return [tuple(row) for row in rows]

    async def delete_vector_store_file(self, id: str, owner: str, file_id: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self.vector_store(id, owner, conn)
            result = await conn.execute(
                "DELETE FROM vector_store_files WHERE vector_store_id = $1 AND file_id = $2", id, file_id
            )
            if result == "DELETE 0":
                raise NotFound(file_id)
            await conn.execute(
                "DELETE FROM vector_store_chunks WHERE vector_store_id = $1 AND file_id = $2", id, file_id
            )

    async def chunk_stamp(self, id: str, owner: str) -> tuple[int, int] | None:
        row = await self.pool.fetchrow(
            "SELECT count(c.seq), coalesce(max(c.seq), 0) FROM vector_stores s"
            " LEFT JOIN vector_store_chunks c ON c.vector_store_id = s.id WHERE s.id = $1 AND s.owner = $2"
            " GROUP BY s.id",
            id,
            owner,
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def chunks(self, id: str, owner: str) -> list[tuple[Any, ...]]:
        rows = await self.pool.fetch(
            "SELECT c.seq, c.file_id, f.filename, vf.attributes, c.embedding"
            " FROM vector_store_chunks c"
            " JOIN vector_stores s ON s.id = c.vector_store_id"
            " JOIN vector_store_files vf ON vf.vector_store_id = c.vector_store_id AND vf.file_id = c.file_id"
            " JOIN files f ON f.id = c.file_id"
            " WHERE c.vector_store_id = $1 AND s.owner = $2 AND vf.status = 'completed' ORDER BY c.seq",
            id,
            owner,
        )
        return [tuple(row) for row in rows]

    async def chunk_texts(self, seqs: list[int]) -> dict[int, str]:
        rows = await self.pool.fetch("SELECT seq, text FROM vector_store_chunks WHERE seq = ANY($1::bigint[])", seqs)
        return {int(row[0]): row[1] for row in rows}

    async def put_file_batch(self, id: str, store_id: str, created_at: int, file_ids: str) -> None:
        await self.pool.execute(
            "INSERT INTO vector_store_file_batches (id, vector_store_id, created_at, file_ids) VALUES ($1, $2, $3, $4)",
            id,
            store_id,
            created_at,
            file_ids,
        )

    async def file_batch(self, id: str, store_id: str, owner: str) -> tuple[Any, ...]:
        async with self.pool.acquire() as conn:
            await self.vector_store(store_id, owner, conn)
            row = await conn.fetchrow(
                "SELECT id, created_at, file_ids FROM vector_store_file_batches WHERE id = $1 AND vector_store_id = $2",
                id,
                store_id,
            )
        if row is None:
            raise NotFound(id)
        return tuple(row)

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
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute(
                "UPDATE vector_store_files SET status = $1, last_error = $2, usage_bytes = $3, ingestion = NULL"
                " WHERE vector_store_id = $4 AND file_id = $5 AND ingestion = $6 AND status = 'in_progress'",
                status,
                last_error,
                usage,
                store_id,
                file_id,
                ingestion,
            )
            if result == "UPDATE 0":
                return False
            if chunks:
                await conn.executemany(
                    "INSERT INTO vector_store_chunks (vector_store_id, file_id, text, embedding)"
                    " VALUES ($1, $2, $3, $4)",
                    [(store_id, file_id, text, embedding) for text, embedding in chunks],
                )
            return True

    async def cancel_vector_store_files(self, store_id: str, file_ids: list[str]) -> list[str]:
        rows = await self.pool.fetch(
            "UPDATE vector_store_files SET status = 'cancelled', ingestion = NULL WHERE vector_store_id = $1"
            " AND file_id = ANY($2::text[]) AND status = 'in_progress' RETURNING file_id",
            store_id,
            file_ids,
        )
        return [row[0] for row in rows]


async def _insert_items(conn: Any, id: str, items: list[tuple[str, str]]) -> None:
    if items:
        await conn.executemany(
            "INSERT INTO conversation_items (conversation_id, item_id, item) VALUES ($1, $2, $3)",
            [(id, item_id, item) for item_id, item in items],
        )
