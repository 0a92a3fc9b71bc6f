"""A background response's stream events, kept for replay (`GET /v1/responses/{id}?stream=true&starting_after=N`).

While the response runs, its events are kept in memory (``EventLog``) by the server running it: a streamed
``background`` request and every replay on that server follow the same log (past events first, then the live
ones, until the terminal event). When it ends, the whole log is written with the response's row (the ``events``
column, SSE text), so any server on the same database replays a finished one.

On a store several servers share (PostgreSQL), the server running it also writes its new events while it runs, in
batches (``_background.EVENTS_FLUSH``), so that a replay on another server follows it live from the store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

_SEQUENCE = re.compile(rb'"sequence_number":(\d+)')


def split_events(data: bytes) -> list[tuple[int, bytes]]:
    """SSE text (as the core writes it: ``event: TYPE\\ndata: JSON\\n\\n`` each) into (sequence number, event)."""
    events = []
    for part in data.split(b"\n\n"):
        if part:
            found = _SEQUENCE.search(part)
            events.append((int(found.group(1)) if found else -1, part + b"\n\n"))
    return events


_TERMINAL = (b"event: response.completed\n", b"event: response.failed\n", b"event: response.incomplete\n")


def is_terminal(event: bytes) -> bool:
    """A response's last event (completed, failed or incomplete)."""
    return event.startswith(_TERMINAL)


def after(events: list[tuple[int, bytes]], starting_after: int) -> bytes:
    """The events whose sequence number is greater than ``starting_after``, as SSE bytes."""
    return b"".join(event for sequence, event in events if sequence > starting_after)


class EventLog:
    """A running background response's events, in order; followers are woken at every new batch."""

    __slots__ = ("events", "done", "ended", "_partial", "_changed")

    def __init__(self) -> None:
        self.events: list[tuple[int, bytes]] = []
        self.done = False
        self.ended = asyncio.Event()  # set with ``done``
        self._partial = b""
        self._changed = asyncio.Event()

    def add(self, data: bytes) -> None:
        """The core's SSE bytes (one or more whole events; a piece of one is held until the rest comes)."""
        data = self._partial + data
        cut = data.rfind(b"\n\n") + 2
        self._partial = data[cut:]
        if cut >= 2:
            self.events.extend(split_events(data[:cut]))
            self._wake()

    def close(self) -> None:
        """The response has ended: its terminal event is in the log."""
        self.done = True
        self.ended.set()
        self._wake()

    def text(self) -> str:
        return b"".join(event for _, event in self.events).decode()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, starting_after: int, emit: Callable[[bytes], Awaitable[None]]) -> None:
        """Send the events after ``starting_after``, then the new ones as they come, until the log is closed."""
        sent = 0
        while True:
            if sent < len(self.events):
                batch = self.events[sent:]
                sent += len(batch)
                out = after(batch, starting_after)
                if out:
                    await emit(out)
                continue
            if self.done:
                return
            await self._changed.wait()
