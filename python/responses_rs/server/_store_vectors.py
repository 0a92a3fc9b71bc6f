"""The stores' files and vector stores (the Files and Vector stores APIs and file_search, ``_files.py``,
``_vector_stores.py``): one mixin per dialect, of ``Store`` (sqlite) and ``PostgresStore``."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ._store_common import NotFound, immediate


class SqliteVectorStores:
    """``Store``'s files, vector stores, their files, chunks and file batches."""

    # Store's own: its connection (used on its worker thread) and how a call gets there.
    conn: sqlite3.Connection
    _run: Callable[..., Awaitable[Any]]

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
            with immediate(conn):
                if conn.execute("DELETE FROM files WHERE id = ? AND owner = ?", (id, owner)).rowcount == 0:
                    raise NotFound(id)
                conn.execute("DELETE FROM vector_store_files WHERE file_id = ?", (id,))
                conn.execute("DELETE FROM vector_store_chunks WHERE file_id = ?", (id,))

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
            with immediate(conn):
                if conn.execute("DELETE FROM vector_stores WHERE id = ? AND owner = ?", (id, owner)).rowcount == 0:
                    raise NotFound(id)
                conn.execute("DELETE FROM vector_store_files WHERE vector_store_id = ?", (id,))
                conn.execute("DELETE FROM vector_store_chunks WHERE vector_store_id = ?", (id,))
                conn.execute("DELETE FROM vector_store_file_batches WHERE vector_store_id = ?", (id,))

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
            with immediate(conn):
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
            with immediate(conn):
                self._vector_store(id, owner)
                cursor = conn.execute(
                    "DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (id, file_id)
                )
                if cursor.rowcount == 0:
                    raise NotFound(file_id)
                conn.execute("DELETE FROM vector_store_chunks WHERE vector_store_id = ? AND file_id = ?", (id, file_id))

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
            with immediate(self.conn) as conn:
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
                return bool(cursor.rowcount)

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


class PostgresVectorStores:
    """``PostgresStore``'s files and vector stores, as the sqlite store's."""

    # PostgresStore's own: its asyncpg pool.
    pool: Any

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
