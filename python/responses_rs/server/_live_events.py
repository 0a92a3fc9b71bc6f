"""A running background response's events through a store several servers share (PostgreSQL): the server
running it writes its new events in batches while it runs (``write_live``), and a replay on another server follows
them from the store (``follow_store``) until its terminal event.

- Writes are batched: at most one per ``EVENTS_FLUSH`` seconds (never one per chunk), each an insert of the new
  events into ``response_events`` (keyed by the batch's first sequence number), so a write costs the batch, not
  the stream so far. When the response ends, its server writes the whole log into the row's ``events`` and
  removes the batches (``_background``; the store's ``set_events``), as before.
- While the response has no new events for ``HEARTBEAT`` seconds (a model thinking, a slow tool), its server bumps
  the row's ``heartbeat``: a follower tells a quiet response from one whose server died.
- A follower polls every ``REPLAY_POLL`` seconds. When nothing of the row (status, heartbeat, batches) has changed
  for ``STALE_AFTER`` seconds while it is still under way, its server is taken for dead: the row is stored failed
  (only while still under way: a late end or cancel wins) with its events so far and a ``response.failed``, which
  the follower sends last. A row that has ended whose last events never come (its server died between the two
  writes) ends the follow after ``ENDED_GRACE`` seconds with a terminal event made from the stored response.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._replay import EventLog, after, is_terminal, split_events
from ._store_common import RUNNING, NotFound

if TYPE_CHECKING:
    from ._store import Store
    from ._store_pg import PostgresStore

logger = logging.getLogger("responses_rs.server")

# Seconds between two writes of a running response's new events (batched: all the events of the interval).
EVENTS_FLUSH = 0.25
# Seconds without new events after which the running server bumps the row's heartbeat.
HEARTBEAT = 5.0
# Seconds between two looks of a follower at the store.
REPLAY_POLL = 0.25
# Seconds without any change of a row under way after which its server is taken for dead (6 missed heartbeats).
STALE_AFTER = 30.0
# Seconds a follower waits, once the row has ended, for its last events.
ENDED_GRACE = 5.0

STALE_MESSAGE = "the server running the response stopped (no sign of it for {seconds:g} s)"


async def write_live(store: Store | PostgresStore, response_id: str, log: EventLog) -> None:
    """Write ``log``'s new events as batches while the response runs, until the log is closed (its end is written
    whole by the caller, after this returns: await it, never cancel it, so no batch lands after that)."""
    written = 0
    quiet_since = time.monotonic()
    while not log.done:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(log.ended.wait(), EVENTS_FLUSH)
        if log.done:
            return
        try:
            if len(log.events) > written:
                batch = log.events[written:]
                await store.add_events(response_id, batch[0][0], b"".join(event for _, event in batch).decode())
                written += len(batch)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT:
                await store.heartbeat(response_id, int(time.time()))
                quiet_since = time.monotonic()
        except Exception:  # the next interval writes them (a batch from the same first event replaces this one)
            logger.exception("responses-rs serve: writing the events of %s", response_id)


def terminal_event(status: str, response_json: str, sequence_number: int, message: str | None = None) -> bytes:
    """The terminal event of a response whose own never reached the store: ``response.completed`` or
    ``response.incomplete`` as it was stored, ``response.failed`` otherwise (a cancelled one's response ``failed``
    with "cancelled", as its server sends it; one under way, failed with ``message``)."""
    response = json.loads(response_json)
    kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(status, "response.failed")
    if kind == "response.failed":
        if status == "cancelled":
            message = "cancelled"
        response["status"] = "failed"
        if message is not None or not response.get("error"):
            response["error"] = {"code": "server_error", "message": message or "failed"}
    data = json.dumps({"type": kind, "sequence_number": sequence_number, "response": response}, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def follow_store(
    store: Store | PostgresStore,
    response_id: str,
    owner: str,
    starting_after: int,
    emit: Callable[[bytes], Awaitable[None]],
) -> None:
    """Send a background response's events after ``starting_after`` from the store, then the new ones as its
    server writes them, until its terminal event (or it is deleted)."""
    last = starting_after  # the greatest sequence number sent or skipped
    after_first = -1  # batches whose first sequence number is greater are new
    state: tuple[object, ...] | None = None
    changed_at = time.monotonic()
    while True:
        try:
            live = await store.live_events(response_id, owner, after_first)
        except NotFound:
            return  # deleted meanwhile
        if live.events is not None:  # ended: the whole log
            out = after(split_events(live.events.encode()), last)
            if out:
                await emit(out)
            return
        for first, text in live.batches:
            events = split_events(text.encode())
            out = after(events, last)
            if out:
                await emit(out)
            after_first = first
            last = max([last, *(sequence for sequence, _ in events)])
            if any(is_terminal(event) for _, event in events):
                return
        now = time.monotonic()
        key = (live.status, live.heartbeat, after_first)
        if key != state:
            state, changed_at = key, now
        elif live.status not in RUNNING and now - changed_at > ENDED_GRACE:
            try:
                stored = await store.get(response_id, owner)
            except NotFound:
                return
            await emit(terminal_event(stored.status, stored.response, last + 1))
            return
        elif live.status in RUNNING and now - changed_at > STALE_AFTER:
            try:
                stored = await store.get(response_id, owner)
            except NotFound:
                return
            message = STALE_MESSAGE.format(seconds=STALE_AFTER)
            terminal = terminal_event(stored.status, stored.response, last + 1, message)
            failed = json.loads(terminal.split(b"data: ", 1)[1])["response"]
            if await store.end_stale(response_id, json.dumps(failed), terminal.decode()):
                logger.warning("responses-rs serve: background response %s: %s", response_id, message)
                out = after(split_events(terminal), last)
                await emit(out)
                return
            changed_at = now  # it ended or was cancelled meanwhile: its events come next
        await asyncio.sleep(REPLAY_POLL)
