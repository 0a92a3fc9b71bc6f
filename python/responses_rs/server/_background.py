"""Background responses (``background: true``) of ``responses-rs serve``: ``App``'s part that starts them, runs
them in tasks, keeps their events (``_replay.py``) for replay, stops those cancelled or deleted through another server
on the same database (the watcher), cancels them, and at shutdown stores those still under way failed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._live_events import follow_store, write_live
from ._replay import EventLog
from ._store import RUNNING, NotFound

if TYPE_CHECKING:
    from ._app import Emit, Receive, Request, Send
    from ._store import Store
    from ._store_pg import PostgresStore
    from ._vector_stores import Ingestion

logger = logging.getLogger("responses_rs.server")

# Seconds between two looks at the store for background responses cancelled through another server.
BACKGROUND_POLL = 0.5


class BackgroundRun:
    """A background response under way: its request, the task running it and its events (kept for replay)."""

    __slots__ = ("request", "task", "log")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.task: asyncio.Task[None] | None = None
        self.log = EventLog()


class BackgroundResponses:
    """``App``'s background responses: those this server runs are in ``_background`` and their event logs in
    ``_logs``, by response id."""

    # App's own.
    store: Store | PostgresStore
    ingestions: dict[str, Ingestion]
    _background: dict[str, BackgroundRun]
    _logs: dict[str, tuple[str, EventLog]]
    _watcher: asyncio.Task[None] | None
    _run: Callable[[Request, Emit | None], Awaitable[tuple[int, str, str] | None]]
    _stored: Callable[[str, str], Awaitable[Any]]

    async def _start_background(self, request: Request, send: Send, receive: Receive, stream: bool) -> None:
        """Write the queued response, run it in a task, answer with it at once (streamed: follow its events until
        its terminal event; a client that goes away stops following, the response runs on)."""
        from ._app import _answer, _stored_items

        turn = request.turn
        queued = turn.snapshot_json("queued")
        meta = json.loads(queued)
        await self.store.put(
            id=turn.response_id,
            owner=request.owner,
            created_at=int(meta.get("created_at") or 0),
            model=str(meta.get("model") or ""),
            status="queued",
            previous_response_id=request.stored_previous(meta),
            response=queued,
            input=json.dumps(_stored_items(request.items[request.prefix :])),
        )
        run = BackgroundRun(request)
        self._background[turn.response_id] = run
        self._logs[turn.response_id] = (request.owner, run.log)
        run.task = asyncio.create_task(self._background_run(run), name=f"responses-rs {turn.response_id}")
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_background(), name="responses-rs background watcher")
        if stream:
            await _follow(run.log, -1, send, receive)
            return
        await _answer(send, 200, queued.encode())

    async def _background_run(self, run: BackgroundRun) -> None:
        turn = run.request.turn
        writer: asyncio.Task[None] | None = None
        try:
            # Under way: what another server on the same database answers for it from now on (this one answers
            # with the response as it stands).
            if not await self.store.set_response(turn.response_id, "in_progress", turn.snapshot_json("in_progress")):
                return  # cancelled or deleted (through another server) before it started

            async def emit(out: bytes) -> None:
                run.log.add(out)

            if self.store.shared:  # other servers on the database replay it live from the store
                writer = asyncio.create_task(write_live(self.store, turn.response_id, run.log))
            await self._run(run.request, emit)
            if json.loads(turn.response_json()).get("status") == "failed":
                # It failed: stored failed, so that whoever polls learns why.
                await self.store.set_response(turn.response_id, "failed", turn.response_json())
        except asyncio.CancelledError:
            pass  # cancelled: the cancel wrote the response's state (the log has its terminal event)
        except Exception:
            logger.exception("responses-rs serve: background response %s", turn.response_id)
        finally:
            if self._background.get(turn.response_id) is run:
                del self._background[turn.response_id]
            if not run.log.events:
                # Cancelled or deleted before its run began: its followers still get a stream that begins with
                # response.created and ends with a terminal event.
                turn.fail(run.request.interrupted or "cancelled before it started")
                run.log.add(turn.drain_sse())
            run.log.close()
            if writer is not None:
                await asyncio.wait([writer])  # its last batch lands before the whole log replaces the batches
            await self._keep_events(turn.response_id, run.log)

    async def _keep_events(self, response_id: str, log: EventLog) -> None:
        """A background response has ended: its events are stored with it, for replay on any server."""
        try:
            if log.events:
                await self.store.set_events(response_id, log.text())
        except Exception:
            logger.exception("responses-rs serve: storing the events of %s", response_id)
        finally:
            if self._logs.get(response_id, (None, None))[1] is log:
                del self._logs[response_id]

    async def _replay(self, response_id: str, owner: str, query: dict[str, str], receive: Receive, send: Send) -> None:
        """`GET /v1/responses/{id}?stream=true&starting_after=N`: a background response's events after sequence
        number N (all without N), then, while it runs, the live ones until its terminal event: from its log when
        this server runs it, else from the store (``_live_events.follow_store``: the batches its server writes)."""
        from ._app import _SSE_HEADERS, ApiError, _not_found

        try:
            starting_after = int(query.get("starting_after", "-1"))
        except ValueError:
            raise ApiError(400, "starting_after: must be an integer", param="starting_after") from None
        entry = self._logs.get(response_id)
        if entry is not None and entry[0] == owner:
            await _follow(entry[1], starting_after, send, receive)
            return
        stored = await self._stored(response_id, owner)
        if not json.loads(stored.response).get("background"):
            raise ApiError(
                400,
                f"stream: response '{response_id}' was not a background response: its events were not kept",
                param="stream",
            )

        deadline = time.monotonic() + 2
        while True:
            try:
                status, events = await self.store.events(response_id, owner)
            except NotFound:
                raise _not_found(response_id) from None
            if events is not None or status in RUNNING or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)  # ended on another server an instant ago: its events are written just after
        if events is None and status not in RUNNING:
            raise ApiError(
                400,
                f"stream: no events were kept for response '{response_id}' (it ended before its server kept them)",
                param="stream",
            )

        async def emit(out: bytes) -> None:
            await send({"type": "http.response.body", "body": out, "more_body": True})

        # Run by another server (live: its events are written while it runs), or ended (its whole log).
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await _until_disconnect(follow_store(self.store, response_id, owner, starting_after, emit), send, receive)

    async def _watch_background(self) -> None:
        """While this server runs background responses, look every `BACKGROUND_POLL` seconds for those the
        store says are no longer under way (cancelled or deleted through another server on the same database)
        and stop their tasks (their upstream connections are dropped)."""
        while self._background:
            await asyncio.sleep(BACKGROUND_POLL)
            ids = list(self._background)
            if not ids:
                break
            try:
                stopped = await self.store.stopped(ids)
            except Exception:
                logger.exception("responses-rs serve: reading the background responses' state")
                continue
            for response_id in stopped:
                run = self._background.pop(response_id, None)
                if run is not None and run.task is not None:
                    run.request.interrupted = "cancelled"
                    run.task.cancel()

    async def abandon_background(self) -> None:
        """At shutdown: the background responses this server still runs can never end; stored failed (only
        those still under way: one cancelled meanwhile stays cancelled)."""
        runs = list(self._background.values())
        self._background.clear()
        for run in runs:
            if run.task is not None:
                run.task.cancel()
        tasks = [run.task for run in runs if run.task is not None]
        if tasks:  # their streams end (response.failed) and their events are stored
            await asyncio.wait(tasks, timeout=2)
        for run in runs:
            with contextlib.suppress(Exception):
                turn = run.request.turn
                try:
                    response = json.loads(turn.snapshot_json("failed"))
                except Exception:  # its task has ended the turn (failed): the response as it ended
                    response = json.loads(turn.response_json())
                error = {"code": "server_error", "message": "the server stopped before the response ended"}
                response["error"] = error
                await self.store.set_response(response["id"], "failed", json.dumps(response))
        if self._watcher is not None:
            self._watcher.cancel()
        if self.ingestions:
            from ._vector_stores import abandon_ingestions

            await abandon_ingestions(self)

    async def _cancel(self, response_id: str, owner: str, send: Send) -> None:
        from ._app import ApiError, _answer

        run = self._background.get(response_id)
        if run is not None and run.request.owner == owner:
            del self._background[response_id]
            if run.task is not None:
                run.request.interrupted = "cancelled"
                run.task.cancel()
            cancelled = run.request.turn.snapshot_json("cancelled")
            await self.store.set_response(response_id, "cancelled", cancelled)
            await _answer(send, 200, cancelled.encode())
            return
        stored = await self._stored(response_id, owner)
        response = json.loads(stored.response)
        if stored.status in RUNNING and response.get("background"):
            # Run by another server on the same database: the row is marked cancelled (if it is still under way
            # then); that server's watcher stops the task, and its end no longer overwrites the row.
            response["status"] = "cancelled"
            cancelled = json.dumps(response)
            if await self.store.set_response(response_id, "cancelled", cancelled):
                await _answer(send, 200, cancelled.encode())
                return
            stored = await self._stored(response_id, owner)  # it ended meanwhile
            response = json.loads(stored.response)
        if stored.status == "cancelled":
            await _answer(send, 200, stored.response.encode())
            return
        if not response.get("background"):
            raise ApiError(
                409,
                f"Cannot cancel response '{response_id}': only background responses can be cancelled",
                code="conflict",
            )
        raise ApiError(409, f"Cannot cancel response '{response_id}' with status '{stored.status}'", code="conflict")


async def _follow(log: EventLog, starting_after: int, send: Send, receive: Receive) -> None:
    """Stream a background response's events after `starting_after` until its terminal event (a client that goes
    away stops only this)."""
    from ._app import _SSE_HEADERS

    async def emit(out: bytes) -> None:
        await send({"type": "http.response.body", "body": out, "more_body": True})

    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    await _until_disconnect(log.follow(starting_after, emit), send, receive)


async def _until_disconnect(sending: Awaitable[None], send: Send, receive: Receive) -> None:
    """Run `sending` (the SSE body's events) until it ends or the client disconnects; then end the body."""
    handler = asyncio.current_task()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # a GET's (empty) body
        if handler is not None and not handler.done():
            handler.cancel()

    watcher = asyncio.create_task(watch())
    try:
        await sending
    except asyncio.CancelledError:
        if not watcher.done():
            raise  # not the client going away: shutdown
    finally:
        watcher.cancel()
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
