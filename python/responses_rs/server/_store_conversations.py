"""The stores' conversations (the Conversations API, ``_conversations.py``): one mixin per dialect, of
``Store`` (sqlite) and ``PostgresStore``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ._store_common import NotFound, immediate


class SqliteConversations:
    """``Store``'s conversations: a row per conversation, its items in ``seq`` order."""

    # Store's own: its connection (used on its worker thread) and how a call gets there.
    conn: sqlite3.Connection
    _run: Callable[..., Awaitable[Any]]

    async def create_conversation(
        self, id: str, owner: str, created_at: int, metadata: str, items: list[tuple[str, str]]
    ) -> None:
        await self._run(self._create_conversation, id, owner, created_at, metadata, items)

    def _create_conversation(
        self, id: str, owner: str, created_at: int, metadata: str, items: list[tuple[str, str]]
    ) -> None:
        conn = self.conn
        with immediate(conn):
            conn.execute(
                "INSERT INTO conversations (id, owner, created_at, metadata) VALUES (?, ?, ?, ?)",
                (id, owner, created_at, metadata),
            )
            conn.executemany(
                "INSERT INTO conversation_items (conversation_id, item_id, item) VALUES (?, ?, ?)",
                [(id, item_id, item) for item_id, item in items],
            )

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
        with immediate(conn):
            if conn.execute("DELETE FROM conversations WHERE id = ? AND owner = ?", (id, owner)).rowcount == 0:
                raise NotFound(id)
            conn.execute("DELETE FROM conversation_items WHERE conversation_id = ?", (id,))

    async def add_conversation_items(self, id: str, owner: str, items: list[tuple[str, str]]) -> None:
        await self._run(self._add_conversation_items, id, owner, items)

    def _add_conversation_items(self, id: str, owner: str, items: list[tuple[str, str]]) -> None:
        conn = self.conn
        with immediate(conn):
            self._get_conversation(id, owner)
            conn.executemany(
                "INSERT INTO conversation_items (conversation_id, item_id, item) VALUES (?, ?, ?)",
                [(id, item_id, item) for item_id, item in items],
            )

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


class PostgresConversations:
    """``PostgresStore``'s conversations, as the sqlite store's."""

    # PostgresStore's own: its asyncpg pool.
    pool: Any

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


async def _insert_items(conn: Any, id: str, items: list[tuple[str, str]]) -> None:
    if items:
        await conn.executemany(
            "INSERT INTO conversation_items (conversation_id, item_id, item) VALUES ($1, $2, $3)",
            [(id, item_id, item) for item_id, item in items],
        )
