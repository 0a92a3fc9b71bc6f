"""A background response's replay on another replica of one PostgreSQL follows it live while it runs: the server
running it writes its events in batches (``_live_events.write_live``), the other follows the stored batches
(``follow_store``). Two real ``responses-rs serve`` processes (the fixtures of ``test_serve_postgres.py``), the
official openai client, the scripted model slowed per chunk; every stream through the stream validator. Also the
follow of a response whose server died (the store and ``follow_store`` on the real PostgreSQL).

Needs RESPONSES_RS_POSTGRES (``scripts/postgres.sh start`` prints it)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import openai
import pytest
import test_serve_postgres as two_servers
from openai.types.responses import Response
from stream_validator import validate_stream
from test_serve_postgres import MODEL, _run, _sql, status_in_db

# The fixtures of test_serve_postgres.py: a fresh database, the scripted model, two servers on it and their clients.
database = two_servers.database
chat_server = two_servers.chat_server
replicas = two_servers.replicas
clients = two_servers.clients

pytestmark = pytest.mark.skipif(
    not __import__("os").environ.get("RESPONSES_RS_POSTGRES"), reason="RESPONSES_RS_POSTGRES is unset"
)


def dumped(events: list[Any]) -> list[dict[str, Any]]:
    return [event.model_dump(mode="json") for event in events]


class Streamed(threading.Thread):
    """A background response streamed on one server, in a thread: its events and when each arrived."""

    def __init__(self, client: openai.OpenAI, text: str) -> None:
        super().__init__(daemon=True)
        self.client, self.text = client, text
        self.events: list[Any] = []
        self.arrived: list[float] = []

    def run(self) -> None:
        for event in self.client.responses.create(model=MODEL, input="Go on", background=True, stream=True):
            self.events.append(event)
            self.arrived.append(time.monotonic())

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, self.events
            time.sleep(0.02)


async def put_running(store: Any, response_id: str, snapshot: dict[str, Any]) -> None:
    """A background response's row as its server writes it when the run begins (in_progress, no input)."""
    await store.put(
        id=response_id,
        owner="",
        created_at=1,
        model=MODEL,
        status="in_progress",
        previous_response_id=None,
        response=json.dumps(snapshot),
        input="[]",
    )


def test_a_replay_on_the_other_server_follows_a_running_response_live(
    clients: list[openai.OpenAI], chat_server, database: str
) -> None:
    a, b = clients
    text = "live " * 40  # 200 characters in 50 chunks of 4, 0.06 s each: about 3 s
    chat_server.script([{"text": text, "chunk_size": 4, "delay": 0.06}])
    on_a = Streamed(a, text)
    on_a.start()
    on_a.wait_for(6)  # created, queued, in_progress, the message's start and a delta or so
    response_id = on_a.events[0].response.id
    starting_after = on_a.events[4].sequence_number
    replayed: list[Any] = []
    arrived: list[float] = []
    first_status = None
    with b.responses.retrieve(response_id, stream=True, starting_after=starting_after) as stream:
        for event in stream:
            if not replayed:
                first_status = status_in_db(database, response_id)
            replayed.append(event)
            arrived.append(time.monotonic())
    on_a.join(10)
    ended_on_a = on_a.arrived[-1]
    # B's replay began while A still ran it, and kept coming while it ran (not all at once at its end).
    assert first_status == "in_progress"
    assert arrived[0] < ended_on_a - 1.0, (arrived[0], ended_on_a)
    before_end = [t for t in arrived if t < ended_on_a - 0.5]
    assert len(before_end) > len(replayed) // 3 and len({round(t, 1) for t in before_end}) >= 4
    # Event for event A's stream after N, with its sequence numbers; together a valid stream.
    assert dumped(replayed) == dumped([e for e in on_a.events if e.sequence_number > starting_after])
    whole = on_a.events[:5] + replayed
    final = validate_stream(whole, response_cls=Response, schema_host="full")
    assert final.status == "completed" and final.output_text == text
    # Once ended, its batches were replaced by the whole log in the row.
    assert (
        _run(_sql(database, "SELECT count(*) AS n FROM response_events WHERE response_id = $1", response_id))[0]["n"]
        == 0
    )
    assert dumped(list(b.responses.retrieve(response_id, stream=True))) == dumped(on_a.events)


def test_a_response_cancelled_through_the_server_following_it(
    clients: list[openai.OpenAI], chat_server, database: str
) -> None:
    a, b = clients
    chat_server.script([{"text": "word " * 40, "chunk_size": 2, "delay": 0.05}])  # about 5 s
    started = a.responses.create(model=MODEL, input="Go on and on", background=True)
    replayed: list[Any] = []

    def follow() -> None:
        replayed.extend(b.responses.retrieve(started.id, stream=True))

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    deadline = time.monotonic() + 10
    while sum(e.type == "response.output_text.delta" for e in list(replayed)) < 3:
        assert time.monotonic() < deadline, replayed
        time.sleep(0.02)
    assert status_in_db(database, started.id) == "in_progress"
    cancelled_at = time.monotonic()
    assert b.responses.cancel(started.id).status == "cancelled"
    follower.join(10)
    assert not follower.is_alive()
    # A stopped it (its watcher saw the row cancelled), wrote its last events, and B's follow ended with them.
    assert time.monotonic() - cancelled_at < 4
    final = validate_stream(replayed, response_cls=Response, schema_host="full")
    assert replayed[-1].type == "response.failed" and final.error is not None and final.error.message == "cancelled"
    assert status_in_db(database, started.id) == "cancelled"
    assert dumped(list(a.responses.retrieve(started.id, stream=True))) == dumped(replayed)


def test_a_follow_of_a_response_whose_server_died_ends_failed(database: str, monkeypatch) -> None:
    """A row left `in_progress` with two batches, as a killed replica leaves it: a follower sends the batches, then,
    nothing having changed for STALE_AFTER, stores it failed and ends with `response.failed`."""
    from responses_rs.server import _live_events
    from responses_rs.server._store_pg import PostgresStore

    monkeypatch.setattr(_live_events, "STALE_AFTER", 1.0)
    monkeypatch.setattr(_live_events, "REPLAY_POLL", 0.05)
    response_id = "resp_dead_" + str(int(time.time() * 1000))
    snapshot = {"id": response_id, "object": "response", "status": "in_progress", "background": True, "output": []}

    def event(kind: str, n: int) -> str:
        return (
            f"event: {kind}\ndata: "
            + json.dumps({"type": kind, "sequence_number": n, "response": snapshot}, separators=(",", ":"))
            + "\n\n"
        )

    async def scenario() -> tuple[list[bytes], float, str, str]:
        store = PostgresStore(database)
        await store.open()
        try:
            await put_running(store, response_id, snapshot)
            await store.add_events(response_id, 0, event("response.created", 0) + event("response.queued", 1))
            await store.add_events(response_id, 2, event("response.in_progress", 2))
            sent: list[bytes] = []

            async def emit(out: bytes) -> None:
                sent.append(out)

            began = time.monotonic()
            await asyncio.wait_for(_live_events.follow_store(store, response_id, "", 0, emit), 10)
            took = time.monotonic() - began
            row = await store.get(response_id, "")
            status, events = await store.events(response_id, "")
            assert events is not None and row.status == status
            return sent, took, status, events
        finally:
            await store.close()

    sent, took, status, events = _run(scenario())
    body = b"".join(sent).decode()
    assert body.startswith("event: response.queued\n") and "event: response.in_progress\n" in body
    assert body.count("event: ") == 3 and body.rstrip().split("\n\n")[-1].startswith("event: response.failed\n")
    last = json.loads(body.rstrip().split("\n\n")[-1].split("data: ", 1)[1])
    assert last["sequence_number"] == 3 and last["response"]["status"] == "failed"
    assert "stopped" in last["response"]["error"]["message"]
    assert 1.0 <= took < 5
    # Stored failed, with its events (the batches and the terminal event) for later replays; no batches left.
    assert status == "failed" and events.count("event: ") == 4 and events.endswith(body.split("\n\n")[-2] + "\n\n")
    assert (
        _run(_sql(database, "SELECT count(*) AS n FROM response_events WHERE response_id = $1", response_id))[0]["n"]
        == 0
    )


def _event(kind: str, n: int, response: dict[str, Any]) -> str:
    data = json.dumps({"type": kind, "sequence_number": n, "response": response}, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n"


def test_the_writer_batches_events_and_beats_while_quiet(database: str, monkeypatch) -> None:
    """``write_live`` on the real PostgreSQL store: the events of an interval in one batch, a heartbeat while there
    are none, nothing after the log is closed (the end writes the whole log)."""
    from responses_rs.server import _live_events
    from responses_rs.server._replay import EventLog
    from responses_rs.server._store_pg import PostgresStore

    monkeypatch.setattr(_live_events, "HEARTBEAT", 0.3)
    response_id = "resp_writer_" + str(int(time.time() * 1000))
    snapshot = {"id": response_id, "object": "response", "status": "in_progress", "background": True, "output": []}

    async def scenario() -> tuple[list[Any], Any, list[Any]]:
        store = PostgresStore(database)
        await store.open()
        try:
            await put_running(store, response_id, snapshot)
            log = EventLog()
            writer = asyncio.create_task(_live_events.write_live(store, response_id, log))
            for n in range(3):  # three events well within one interval: one batch
                log.add(_event("response.created" if n == 0 else "response.in_progress", n, snapshot).encode())
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)  # quiet: heartbeats
            batches = await _sql(
                database, "SELECT first_sequence, events FROM response_events WHERE response_id = $1", response_id
            )
            heartbeat = (await _sql(database, "SELECT heartbeat FROM responses WHERE id = $1", response_id))[0][0]
            log.add(_event("response.completed", 3, snapshot).encode())
            log.close()
            await asyncio.wait_for(writer, 2)
            query = "SELECT first_sequence FROM response_events WHERE response_id = $1"
            after = await _sql(database, query, response_id)
            return batches, heartbeat, after
        finally:
            await store.close()

    batches, heartbeat, after = _run(scenario())
    assert [(b["first_sequence"], b["events"].count("event: ")) for b in batches] == [(0, 3)]
    assert heartbeat is not None and abs(heartbeat - time.time()) < 30
    # Closed within the interval: no batch for its terminal event (left to the end's whole log, ``set_events``).
    assert [row["first_sequence"] for row in after] == [0]


def test_a_follow_of_an_ended_row_whose_last_events_never_came(database: str, monkeypatch) -> None:
    """A row stored `completed` whose server died before writing its whole log: the follower sends the batches,
    then, after ENDED_GRACE, `response.completed` made from the stored response."""
    from responses_rs.server import _live_events
    from responses_rs.server._store_pg import PostgresStore

    monkeypatch.setattr(_live_events, "ENDED_GRACE", 0.5)
    monkeypatch.setattr(_live_events, "REPLAY_POLL", 0.05)
    response_id = "resp_ended_" + str(int(time.time() * 1000))
    running = {"id": response_id, "object": "response", "status": "in_progress", "background": True, "output": []}
    done = {**running, "status": "completed"}

    async def scenario() -> list[bytes]:
        store = PostgresStore(database)
        await store.open()
        try:
            await store.put(
                id=response_id,
                owner="",
                created_at=1,
                model=MODEL,
                status="completed",
                previous_response_id=None,
                response=json.dumps(done),
                input="[]",
            )
            await store.add_events(response_id, 0, _event("response.created", 0, running))
            sent: list[bytes] = []

            async def emit(out: bytes) -> None:
                sent.append(out)

            await asyncio.wait_for(_live_events.follow_store(store, response_id, "", -1, emit), 5)
            return sent
        finally:
            await store.close()

    body = b"".join(_run(scenario())).decode().rstrip().split("\n\n")
    assert [part.split("\n", 1)[0] for part in body] == ["event: response.created", "event: response.completed"]
    last = json.loads(body[-1].split("data: ", 1)[1])
    assert last["sequence_number"] == 1 and last["response"] == done
