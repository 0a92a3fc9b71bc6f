"""What writing a running background response's events while it runs costs (PostgreSQL; ``_live_events``).

1. ``serve``: a real ``responses-rs serve`` on a fresh database of RESPONSES_RS_POSTGRES, the testkit's scripted
   model, one streamed background response of 50 chunks and one of 2,000 (each with and without a per-chunk delay),
   with the live writes (as shipped) and without them (``PostgresStore.shared = False``: the events written once,
   at the end, as before): the client's time to the terminal event, the WAL bytes the database wrote meanwhile
   (``pg_current_wal_lsn``, cluster-wide: other load on the same PostgreSQL lands in it), and the events' size.
2. ``store``: the two ways to store a growing log, with the events of the 2,000-chunk response cut in the batches a
   0.25 s interval makes: appending each batch to the row's TEXT column (``events = events || batch``) or
   inserting it as a row of ``response_events``: time and WAL bytes of each write as the log grows.

    RESPONSES_RS_POSTGRES=... .venv-0.2.12/bin/python bench/bench_live_events.py [--batches 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import openai

from responses_rs.server import READY_PREFIX
from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
POSTGRES = os.environ.get("RESPONSES_RS_POSTGRES", "")


async def _sql(url: str, query: str, *args: object) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


def wal(url: str) -> int:
    return int(asyncio.run(_sql(url, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS n"))[0]["n"])


@contextmanager
def fresh_database() -> Iterator[str]:
    name = "bench_" + uuid.uuid4().hex[:12]
    asyncio.run(_sql(POSTGRES, f"CREATE DATABASE {name}"))
    try:
        yield POSTGRES.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(_sql(POSTGRES, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextmanager
def serve(upstream: str, url: str, *, live: bool) -> Iterator[str]:
    code = (
        "import sys; from responses_rs.server._store_pg import PostgresStore; "
        f"PostgresStore.shared = {live}; from responses_rs.server import main; sys.exit(main(sys.argv[1:]))"
    )
    with tempfile.TemporaryDirectory() as data:
        command = [sys.executable, "-c", code, "--upstream", upstream, "--port", "0", "--data-dir", data]
        command += ["--database-url", url, "--log-level", "warning"]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith(READY_PREFIX) and not base:
                    base.append(line.split()[1])
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        try:
            if not ready.wait(30) or not base:
                raise RuntimeError("responses-rs serve did not start")
            yield base[0]
        finally:
            proc.terminate()
            proc.wait(15)


def bench_serve(chat: ScriptedChatServer, repeat: int) -> str | None:
    """Part 1; returns the 2,000-chunk response's stored events (for part 2)."""
    kept = None
    print("serve: one streamed background response (client time to the terminal event; WAL bytes meanwhile)")
    print(f"{'chunks':>6} {'delay':>6} {'live':>5} {'time ms':>8} {'WAL kB':>8} {'events kB':>9}  medians of {repeat}")
    for chunks, delay in ((50, 0.0), (50, 0.02), (2000, 0.0), (2000, 0.005)):
        for live in (False, True):
            runs = []
            with fresh_database() as url, serve(chat.base_url, url, live=live) as base:
                client = openai.OpenAI(base_url=base, api_key="x", max_retries=0, timeout=120)
                text = "".join(f"{n * 7919 % 100003} " for n in range(chunks))[:chunks]  # little for pglz to fold
                chat.script([{"text": text, "chunk_size": 1, "delay": delay}] * (1 + repeat))
                list(client.responses.create(model=MODEL, input="warm", background=True, stream=True))
                for _ in range(repeat):
                    before = wal(url)
                    began = time.perf_counter()
                    events = list(client.responses.create(model=MODEL, input="Go", background=True, stream=True))
                    took = time.perf_counter() - began
                    time.sleep(0.3)  # its last write (the whole log) lands after its terminal event
                    runs.append((took, wal(url) - before))
                row = asyncio.run(_sql(url, "SELECT events FROM responses WHERE id = $1", events[0].response.id))
                stored = row[0]["events"] or ""
                client.close()
            took = statistics.median(r[0] for r in runs)
            written = statistics.median(r[1] for r in runs)
            print(
                f"{chunks:>6} {delay:>6} {live!s:>5} {took * 1000:>8.0f} {written / 1000:>8.1f}"
                f" {len(stored.encode()) / 1000:>9.1f}"
            )
            if chunks == 2000 and delay and live:
                kept = stored
    return kept


async def bench_store(url: str, events: str, batches: int) -> None:
    from responses_rs.server._replay import split_events

    parts = [event.decode() for _, event in split_events(events.encode())]
    size = -(-len(parts) // batches)
    cut = ["".join(parts[n : n + size]) for n in range(0, len(parts), size)]
    print(f"\nstore: {len(parts)} events ({len(events.encode()) / 1000:.0f} kB) in {len(cut)} batches")
    print(f"{'write':>5} {'log kB':>7} {'append ms':>9} {'append WAL kB':>13} {'insert ms':>9} {'insert WAL kB':>13}")
    from responses_rs.server._store_pg import PostgresStore

    store = PostgresStore(url)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(url)
    try:
        for name in ("a", "b"):
            await conn.execute(
                "INSERT INTO responses (id, created_at, model, status, response, input)"
                " VALUES ($1, 1, 'm', 'in_progress', '{}', '[]')",
                name,
            )
        lsn = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"
        totals = [0.0, 0, 0.0, 0]
        grown = 0
        for n, batch in enumerate(cut):
            grown += len(batch.encode())
            w0 = int(await conn.fetchval(lsn))
            t0 = time.perf_counter()
            await conn.execute("UPDATE responses SET events = COALESCE(events, '') || $1 WHERE id = 'a'", batch)
            t1 = time.perf_counter()
            w1 = int(await conn.fetchval(lsn))
            await conn.execute(
                "INSERT INTO response_events (response_id, first_sequence, events) VALUES ('b', $1, $2)", n, batch
            )
            t2 = time.perf_counter()
            w2 = int(await conn.fetchval(lsn))
            row = [(t1 - t0) * 1000, w1 - w0, (t2 - t1) * 1000, w2 - w1]
            totals = [a + b for a, b in zip(totals, row, strict=True)]
            if n in (0, 1, len(cut) // 4, len(cut) // 2, len(cut) - 1):
                print(
                    f"{n + 1:>5} {grown / 1000:>7.0f} {row[0]:>9.2f} {row[1] / 1000:>13.1f} {row[2]:>9.2f}"
                    f" {row[3] / 1000:>13.1f}"
                )
        print(
            f"{'all':>5} {grown / 1000:>7.0f} {totals[0]:>9.1f} {totals[1] / 1000:>13.1f} {totals[2]:>9.1f}"
            f" {totals[3] / 1000:>13.1f}"
        )
        w0 = int(await conn.fetchval(lsn))
        t0 = time.perf_counter()
        async with conn.transaction():  # the end: the whole log into the row, the batches removed
            await conn.execute("UPDATE responses SET events = $1 WHERE id = 'b'", events)
            await conn.execute("DELETE FROM response_events WHERE response_id = 'b'")
        print(
            f"the table's end (whole log into the row, batches removed): {(time.perf_counter() - t0) * 1000:.1f} ms,"
            f" {(int(await conn.fetchval(lsn)) - w0) / 1000:.1f} kB WAL"
        )
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40, help="batches of part 2 (0.25 s each: a 10 s stream)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each response in part 1 (medians)")
    args = parser.parse_args()
    if not POSTGRES:
        raise SystemExit("RESPONSES_RS_POSTGRES is unset (scripts/postgres.sh start prints it)")
    chat = ScriptedChatServer(models=[MODEL]).start()
    try:
        events = bench_serve(chat, args.repeat)
    finally:
        chat.stop()
    if events:
        with fresh_database() as url:
            asyncio.run(bench_store(url, events, args.batches))


if __name__ == "__main__":
    main()
