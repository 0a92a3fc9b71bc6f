"""The stores' prompts (the Prompts API, ``_prompts.py``): one mixin per dialect, of ``Store`` (sqlite) and
``PostgresStore``."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from ._store_common import PROMPT_COLUMNS, NotFound, PromptRow, VersionConflict, VersionNotFound, immediate, prompt_row

try:
    import asyncpg
except ImportError:  # pragma: no cover - reported by PostgresStore.open
    asyncpg = None


class SqlitePrompts:
    """``Store``'s prompts: a row per version of a prompt."""

    # Store's own: its connection (used on its worker thread) and how a call gets there.
    conn: sqlite3.Connection
    _run: Callable[..., Awaitable[Any]]

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
        with immediate(conn):
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
        return (prompt_id, version, prompt, variables, set_as_default)

    async def set_default_prompt_version(self, prompt_id: str, owner: str, version: int) -> PromptRow:
        """Make ``version`` the prompt's default (VersionNotFound when it has no such version)."""
        return await self._run(self._set_default_prompt_version, prompt_id, owner, version)

    def _set_default_prompt_version(self, prompt_id: str, owner: str, version: int) -> PromptRow:
        conn = self.conn
        with immediate(conn):
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
        found = prompt_row(row)
        return (found[0], found[1], found[2], found[3], True)

    async def delete_prompt(self, prompt_id: str, owner: str) -> None:
        """Every version of a prompt; NotFound when it has none (or is not this owner's)."""
        await self._run(self._delete_prompt, prompt_id, owner)

    def _delete_prompt(self, prompt_id: str, owner: str) -> None:
        cursor = self.conn.execute("DELETE FROM prompts WHERE prompt_id = ? AND owner = ?", (prompt_id, owner))
        if cursor.rowcount == 0:
            raise NotFound(prompt_id)


class PostgresPrompts:
    """``PostgresStore``'s prompts, as the sqlite store's."""

    # PostgresStore's own: its asyncpg pool.
    pool: Any

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
