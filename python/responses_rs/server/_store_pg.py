"""The server's PostgreSQL store (``--database-url postgresql://...``): the same tables, migrations and
methods as the sqlite store (``_store.py``; the schema in ``_store_schema.py``), so that several
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

from ._store_common import RUNNING, LiveEvents, NotFound, StillRunning, Stored
from ._store_conversations import PostgresConversations
from ._store_prompts import PostgresPrompts
from ._store_schema import MIGRATIONS, statements
from ._store_vectors import PostgresVectorStores

try:
    import asyncpg
except ImportError:  # pragma: no cover - reported by PostgresStore.open
    asyncpg = None

# pg_advisory_xact_lock key for the migrations ("responses-rs" folded into 63 bits; any constant would do).
_MIGRATION_LOCK = 0x7265_7370_6F6E_7365


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


class PostgresStore(PostgresConversations, PostgresPrompts, PostgresVectorStores):
    """The store on PostgreSQL; ``open`` and every method run on the server's event loop."""

    # Several servers share it: a running background response's events are written while it runs (``_live_events``).
    shared = True

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
            await conn.execute("DELETE FROM response_events WHERE response_id = $1", id)
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
        """As the sqlite store's: the whole log in the row, its batches removed, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE responses SET events = $1 WHERE id = $2", events, id)
            await conn.execute("DELETE FROM response_events WHERE response_id = $1", id)

    async def add_events(self, id: str, first_sequence: int, events: str) -> None:
        await self.pool.execute(
            "INSERT INTO response_events (response_id, first_sequence, events) VALUES ($1, $2, $3)"
            " ON CONFLICT (response_id, first_sequence) DO UPDATE SET events = excluded.events",
            id,
            first_sequence,
            events,
        )

    async def heartbeat(self, id: str, now: int) -> None:
        await self.pool.execute("UPDATE responses SET heartbeat = $1 WHERE id = $2", now, id)

    async def live_events(self, id: str, owner: str, after_first: int) -> LiveEvents:
        """As the sqlite store's (two reads on one connection: a batch moved into ``events`` between them is
        read from ``events`` at the next look)."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT status, heartbeat, events FROM responses WHERE id = $1 AND owner = $2 AND deleted = 0",
                id,
                owner,
            )
            if row is None:
                raise NotFound(id)
            batches = await conn.fetch(
                "SELECT first_sequence, events FROM response_events WHERE response_id = $1 AND first_sequence > $2"
                " ORDER BY first_sequence",
                id,
                after_first,
            )
        return LiveEvents(row[0], row[1], row[2], [(int(b[0]), b[1]) for b in batches])

    async def end_stale(self, id: str, response: str, terminal: str) -> bool:
        """As the sqlite store's, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute(
                "UPDATE responses SET status = 'failed', response = $1 WHERE id = $2 AND status = ANY($3::text[])",
                response,
                id,
                list(RUNNING),
            )
            if result == "UPDATE 0":
                return False
            await conn.execute(
                "UPDATE responses SET events = COALESCE((SELECT string_agg(events, '' ORDER BY first_sequence)"
                " FROM response_events WHERE response_id = $1), '') || $2 WHERE id = $1",
                id,
                terminal,
            )
            await conn.execute("DELETE FROM response_events WHERE response_id = $1", id)
            return True

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
