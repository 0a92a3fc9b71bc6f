#!/usr/bin/env python3
"""Side-by-side CPU benchmark: OGX 1.5's own responses class vs responses_rs.ogx.OGXResponsesImpl.

OGX's builtin `OpenAIResponsesImpl` (ogx.providers.inline.responses.builtin.responses.openai_responses) and
ours run the same requests in one process and one event loop, each on its own REAL sqlite `ResponsesStore`
(OGX's class, as the provider builds it), with a zero-latency inference stub that returns an async iterator
over PRE-BUILT `ogx_api.ChatCompletionChunk` objects. CPU time is time.process_time (all threads:
aiosqlite's worker thread included), best of N, rounds interleaved.

Scenarios: (a) 1,000-chunk text stream, per chunk; (b) one message not streamed, per request, store=True and
store=False; (c) function-call arguments of 16/32/64 KB in 1-char deltas, per delta; (f) three parallel calls
with interleaved deltas, per delta; floor = a Python async generator reading each chunk's text.

    .venv-ogx-1.5.0/bin/python bench/bench_ogx.py [--quick]     # from the repository root

A benchmark, not a test: missed targets are reported, never raised. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import logging
import os
import platform
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ogx.core.storage.datatypes import ResponsesStoreReference, SqliteSqlStoreConfig
from ogx.core.storage.sqlstore.sqlstore import register_sqlstore_backends, shutdown_sqlstore_backends
from ogx.providers.inline.responses.builtin.responses.openai_responses import OpenAIResponsesImpl
from ogx.providers.utils.responses.responses_store import ResponsesStore
from ogx_api import CreateResponseRequest, OpenAIResponseInput
from ogx_api.openai_responses import OpenAIResponseInputToolFunction

# The chunk classes OGX's inference really yields: its OpenAI-compatible providers (OpenAIMixin) pass the openai
# SDK's objects through. (ogx_api's OpenAIChatCompletionToolCallFunction requires `name` on every delta.)
from openai.types.chat.chat_completion_chunk import (
    ChatCompletionChunk,
    Choice,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
)
from openai.types.completion_usage import CompletionUsage
from pydantic import TypeAdapter

OGX_VERSION = importlib.metadata.version("ogx")
MODEL = "bench-model"
TABLE = "responses"
N_TEXT_CHUNKS = 1000
ARG_SIZES = (16 * 1024, 32 * 1024, 64 * 1024)
SHORT_REPLY = "Hello! How can I help you today?"
TOOL_NAME = "write_blob"
ARGS_PREFIX, ARGS_SUFFIX = '{"blob": "', '"}'
PARALLEL_CALLS, PARALLEL_DELTAS = 3, 256  # (f): 256 deltas of 4 characters per call
TARGET_A_FLOOR, TARGET_B, TARGET_C, LINEARITY = 2.0, 0.1, 0.15, 1.25
INPUT_ITEMS = TypeAdapter(list[OpenAIResponseInput])
NOISY = 1.25  # flag a measurement whose median run is this much slower than its best


def set_ogx_log_level(level: str) -> list[str]:
    """OGX's loggers to `level` (default ERROR). At OGX's default WARNING the builtin logs "Service tier is None,
    setting to default" on every request: ~0.9 ms through the Rich console handler `ogx run` installs
    (`ogx.log.setup_logging`), which is installed here too for any level below ERROR. At ERROR structlog's
    processors still run (~7 us a call): that is OGX's code."""
    if logging.getLevelName(level) < logging.ERROR:
        from ogx.log import setup_logging

        setup_logging()
    names = [n for n in list(logging.root.manager.loggerDict) if n == "ogx" or n.startswith("ogx.")]
    for n in names:
        logging.getLogger(n).setLevel(level)
    return names


# --------------------------------------------------------------------------- fixtures (built before timing)


def _chunk(delta: ChoiceDelta | None, finish: str | None = None, usage: Any = None) -> ChatCompletionChunk:
    choices = [] if delta is None else [Choice(index=0, delta=delta, finish_reason=finish)]
    return ChatCompletionChunk(
        id="chatcmpl-bench",
        created=1_700_000_000,
        model=MODEL,
        object="chat.completion.chunk",
        choices=choices,
        usage=usage,
    )


USAGE = _chunk(None, usage=CompletionUsage(prompt_tokens=7, completion_tokens=4, total_tokens=11))


def text_stream(n: int) -> tuple[list[Any], str]:
    """n one-token chunks (the first with the role, the last with finish_reason=stop), then the usage chunk."""
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
    toks = [f"{words[i % len(words)]}{i} " for i in range(n)]
    chunks = [
        _chunk(ChoiceDelta(content=t, role="assistant" if i == 0 else None), "stop" if i == n - 1 else None)
        for i, t in enumerate(toks)
    ]
    return [*chunks, USAGE], "".join(toks)


def _call(index: int, arguments: str, name: str | None = None) -> ChatCompletionChunk:
    head = {"id": f"call_bench_{index}", "type": "function"} if name else {}
    fn = ChoiceDeltaToolCallFunction(arguments=arguments, **({"name": name} if name else {}))
    return _chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(index=index, function=fn, **head)]))


def tool_streams(sizes: tuple[int, ...]) -> dict[int, tuple[list[Any], str]]:
    """Per size: header (id, name, arguments="") + `size` 1-char argument deltas (valid JSON of exactly `size`
    characters) + finish (tool_calls) + usage. Body chunks are shared between sizes (read only)."""
    alphabet = string.ascii_letters + string.digits
    body = ARGS_PREFIX + "".join(alphabet[i % len(alphabet)] for i in range(max(sizes)))
    delta_chunks = [_call(0, ch) for ch in body]
    suffix = [_call(0, ch) for ch in ARGS_SUFFIX]
    finish = _chunk(ChoiceDelta(), "tool_calls")
    out = {}
    for size in sizes:
        n = size - len(ARGS_SUFFIX)
        args = body[:n] + ARGS_SUFFIX
        json.loads(args)
        out[size] = ([_call(0, "", TOOL_NAME), *delta_chunks[:n], *suffix, finish, USAGE], args)
    return out


def parallel_stream() -> tuple[list[Any], list[str]]:
    """(f): three headers, then the calls' 4-character deltas interleaved by index (0, 1, 2, 0, ...)."""
    all_args = []
    for i in range(PARALLEL_CALLS):
        filler = string.ascii_letters[i] * (PARALLEL_DELTAS * 4 - len(ARGS_PREFIX) - len(ARGS_SUFFIX))
        all_args.append(ARGS_PREFIX + filler + ARGS_SUFFIX)
    chunks = [_call(i, "", TOOL_NAME) for i in range(PARALLEL_CALLS)]
    for d in range(PARALLEL_DELTAS):
        chunks += [_call(i, all_args[i][d * 4 : d * 4 + 4]) for i in range(PARALLEL_CALLS)]
    return [*chunks, _chunk(ChoiceDelta(), "tool_calls"), USAGE], all_args


TOOLS = [
    OpenAIResponseInputToolFunction(
        name=TOOL_NAME,
        description="Store a blob.",
        parameters={"type": "object", "properties": {"blob": {"type": "string"}}, "required": ["blob"]},
    )
]


async def _agen(chunks: list[Any]) -> AsyncIterator[Any]:
    for c in chunks:
        yield c


class FakeInference:
    """OGX's inference API, zero latency: `openai_chat_completion(params)` -> async iterator of pre-built chunks.
    Records the `stream` flag of every call (both implementations must always stream)."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.streamed: list[bool] = []

    async def openai_chat_completion(self, params: Any) -> AsyncIterator[Any]:
        self.streamed.append(bool(params.stream))
        return _agen(self.chunks)


# --------------------------------------------------------------------------- harness


@dataclass
class Side:
    name: str  # "OGX" | "ours"
    impl: Any
    inference: FakeInference
    db_path: str
    store: Any = None

    def _sql(self, sql: str) -> Any:
        """Direct sqlite access, untimed (OGX creates the table lazily, on its first write)."""
        try:
            with sqlite3.connect(self.db_path, timeout=30) as db:
                return db.execute(sql).fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e):
                raise
            return (0,)

    def rows(self) -> int:
        return self._sql(f"SELECT COUNT(*) FROM {TABLE}")[0]

    def clear(self) -> None:
        self._sql(f"DELETE FROM {TABLE}")


@dataclass
class Scenario:
    key: str
    label: str
    unit: str
    units_per_request: int
    requests: int  # per timed run
    request: CreateResponseRequest
    chunks: list[Any]
    expect_text: str | None = None
    expect_args: list[str] | None = None


@dataclass
class Result:
    best: float | None = None  # CPU us per unit
    median: float | None = None
    runs: list[float] = field(default_factory=list)
    events: int | None = None
    writes: int | None = None  # ResponsesStore write calls in the sanity request
    final: Any = None  # the sanity request's response
    problems: list[str] = field(default_factory=list)
    error: str | None = None


async def run_requests(side: Side, sc: Scenario, n: int) -> None:
    create, req = side.impl.create_openai_response, sc.request
    if req.stream:
        for _ in range(n):
            async for _ev in await create(req):
                pass
    else:
        for _ in range(n):
            await create(req)


WRITES = ("store_response_object", "upsert_response_object", "update_response_object")


async def sanity(side: Side, sc: Scenario, res: Result) -> None:
    """One untimed request: expected text / arguments, status, rows stored, inference always streamed; counts
    the events and the store's write calls."""
    side.clear()
    side.inference.streamed.clear()
    calls: list[str] = []

    def counted(name: str) -> Any:
        method = getattr(side.store, name)

        async def wrapper(*a: Any, **kw: Any) -> Any:
            calls.append(name)
            return await method(*a, **kw)

        return wrapper

    for name in WRITES:
        setattr(side.store, name, counted(name))
    try:
        result = await side.impl.create_openai_response(sc.request)
        if sc.request.stream:
            evs = [e async for e in result]
            res.events = len(evs)
            done = [e for e in evs if getattr(e, "type", None) == "response.completed"]
            result = done[-1].response if done else None
    finally:
        for name in WRITES:
            delattr(side.store, name)
    res.writes, res.final = len(calls), result
    problems = []
    if result is None:
        problems.append("no response.completed event")
    else:
        if result.status != "completed":
            problems.append(f"status {result.status!r}")
        if sc.expect_text is not None:
            texts = [p.text for o in result.output if o.type == "message" for p in o.content]
            if texts != [sc.expect_text]:
                problems.append("output text differs from the streamed text")
        if sc.expect_args is not None:
            calls = [(o.name, o.arguments) for o in result.output if o.type == "function_call"]
            if calls != [(TOOL_NAME, a) for a in sc.expect_args]:
                problems.append("function_call items differ from the streamed arguments")
    want = 1 if sc.request.store is not False else 0
    if (rows := side.rows()) != want:
        problems.append(f"{rows} rows stored, expected {want}")
    if not side.inference.streamed or not all(side.inference.streamed):
        problems.append(f"inference stream flags {side.inference.streamed}")
    res.problems = problems


@dataclass
class Job:
    key: str
    who: str
    fn: Callable[[], Any]
    units: int
    prepare: Callable[[], None]
    result: Result = field(default_factory=Result)


def side_job(side: Side, sc: Scenario) -> Job:
    def prepare() -> None:
        side.inference.chunks = sc.chunks
        side.clear()  # untimed: every timed run starts from an empty table

    return Job(
        sc.key, side.name, lambda: run_requests(side, sc, sc.requests), sc.requests * sc.units_per_request, prepare
    )


def store_job(side: Side, response: Any, n: int) -> Job:
    """One `ResponsesStore.store_response_object` of (b)'s response and input, alone: n distinct ids."""
    objs = [response.model_copy(update={"id": f"resp_bench_{i}"}) for i in range(n)]
    items = INPUT_ITEMS.validate_python([{"type": "message", "role": "user", "content": "Hello"}])

    async def fn() -> None:
        for obj in objs:
            await side.store.store_response_object(response_object=obj, input=items, messages=[])

    return Job("store", side.name, fn, n, side.clear)


def floor_job(chunks: list[Any], streams: int) -> Job:
    inference, prebuilt = FakeInference(), object()
    inference.chunks = chunks

    async def floor_stream(source: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for chunk in source:
            for choice in chunk.choices:
                _ = choice.delta.content
            yield prebuilt

    async def fn() -> None:
        for _ in range(streams):
            async for _ev in floor_stream(
                await inference.openai_chat_completion(CreateResponseRequest(input="", model=MODEL, stream=True))
            ):
                pass

    return Job("floor", "floor", fn, streams * N_TEXT_CHUNKS, lambda: None)


async def run_jobs(jobs: list[Job], warmup: int, repeat: int) -> None:
    """Warm up, then time round-robin (round r runs every job once): a slow stretch of a shared host hits one
    run of every job, not all runs of one. Best and median kept."""
    for _ in range(warmup):
        for job in jobs:
            job.prepare()
            await job.fn()
    for _ in range(repeat):
        for job in jobs:
            job.prepare()
            gc.collect()
            t0 = time.process_time()
            await job.fn()
            job.result.runs.append((time.process_time() - t0) * 1e6 / job.units)
    for job in jobs:
        job.result.best, job.result.median = min(job.result.runs), statistics.median(job.result.runs)


# --------------------------------------------------------------------------- main


def fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="best of 3 after 1 warm-up, fewer requests per timing")
    ap.add_argument("--repeat", type=int, help="timed runs per measurement (default 10, quick 3)")
    ap.add_argument("--warmup", type=int, help="untimed rounds before timing (default 1)")
    ap.add_argument(
        "--ogx-log-level", default="ERROR", help="level of OGX's loggers (default ERROR; OGX's own default: WARNING)"
    )
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else 1
    n_streams, n_short, n_par = (3, 50, 5) if args.quick else (10, 200, 20)

    t_start = time.perf_counter()
    gc.disable()
    text_chunks, text = text_stream(N_TEXT_CHUNKS)
    short_chunks = [_chunk(ChoiceDelta(content=SHORT_REPLY, role="assistant"), "stop"), USAGE]
    tools = tool_streams(ARG_SIZES)
    par_chunks, par_args = parallel_stream()
    gc.enable()

    def req(**kw: Any) -> CreateResponseRequest:
        return CreateResponseRequest(model=MODEL, **kw)

    scenarios = [
        Scenario("a", f"(a) text stream, {N_TEXT_CHUNKS} chunks", "chunk", N_TEXT_CHUNKS, n_streams,
                 req(input="Tell me a long story.", stream=True, store=False), text_chunks, expect_text=text),
        Scenario("b", "(b) one message, not streamed, store", "request", 1, n_short,
                 req(input="Hello", stream=False, store=True), short_chunks, expect_text=SHORT_REPLY),
        Scenario("b0", "(b) same, store=False", "request", 1, n_short,
                 req(input="Hello", stream=False, store=False), short_chunks, expect_text=SHORT_REPLY),
    ]  # fmt: skip
    for size in ARG_SIZES:
        chunks, arguments = tools[size]
        scenarios.append(
            Scenario(f"c{size // 1024}k", f"(c) fn-call args {size // 1024} KB, 1-char deltas", "delta", size, 1,
                     req(input="Store a blob.", stream=True, store=False, tools=TOOLS), chunks, expect_args=[arguments])
        )  # fmt: skip
    scenarios.append(
        Scenario("f", f"(f) {PARALLEL_CALLS} parallel calls, interleaved", "delta", PARALLEL_CALLS * PARALLEL_DELTAS,
                 n_par, req(input="Store three blobs.", stream=True, store=False, tools=TOOLS), par_chunks,
                 expect_args=par_args)
    )  # fmt: skip
    gc.collect()
    gc.freeze()  # fixtures and OGX's import-time heap: not re-traversed by collections inside timed runs

    try:
        from responses_rs.ogx import OGXResponsesImpl

        ours_info = f"responses_rs {importlib.metadata.version('responses-rs')}"
    except Exception as e:  # noqa: BLE001
        OGXResponsesImpl, ours_info = None, f"import failed: {type(e).__name__}: {e}"
    quieted = set_ogx_log_level(args.ogx_log_level)
    tmp = tempfile.TemporaryDirectory(prefix="bench-ogx-")

    async def run_all() -> tuple[dict[str, dict[str, Result]], Result, Result]:
        paths = {n: os.path.join(tmp.name, f"{n}.db") for n in ("ogx", "ours")}
        register_sqlstore_backends({f"sql_{n}": SqliteSqlStoreConfig(db_path=p) for n, p in paths.items()})

        async def store(n: str) -> ResponsesStore:
            s = ResponsesStore(ResponsesStoreReference(backend=f"sql_{n}", table_name=TABLE), [])
            await s.initialize()
            return s

        sides = []
        inf = FakeInference()
        builtin = OpenAIResponsesImpl(
            inference_api=inf, tool_groups_api=None, tool_runtime_api=None, responses_store=await store("ogx"),
            vector_io_api=None, moderation_endpoint=None, conversations_api=None, prompts_api=None,
            files_api=None, connectors_api=None,
        )  # fmt: skip
        await builtin.initialize()
        sides.append(Side("OGX", builtin, inf, paths["ogx"], builtin.responses_store))
        if OGXResponsesImpl is not None:
            inf = FakeInference()
            ours = OGXResponsesImpl(inference_api=inf, responses_store=await store("ours"))
            sides.append(Side("ours", ours, inf, paths["ours"], ours.responses_store))
        results: dict[str, dict[str, Result]] = {}
        jobs = []
        for sc in scenarios:
            results[sc.key] = {}
            for side in sides:
                job = side_job(side, sc)
                results[sc.key][side.name] = job.result
                job.prepare()
                try:
                    await sanity(side, sc, job.result)
                    jobs.append(job)
                except Exception as e:  # noqa: BLE001
                    job.result.error = f"{type(e).__name__}: {e}"
            if sc.key == "a":
                floor = floor_job(text_chunks, n_streams)
                jobs.append(floor)
        # one store write alone, on OGX's side's store, with the response ours returned (or OGX's)
        b = results["b"].get("ours") or results["b"]["OGX"]
        store_only = store_job(sides[0], b.final, n_short) if b.final is not None else None
        jobs += [store_only] if store_only else []
        await run_jobs(jobs, warmup, repeat)
        await shutdown_sqlstore_backends()
        return results, floor.result, store_only.result if store_only else Result()

    results, floor, store_only = asyncio.run(run_all())
    tmp.cleanup()
    elapsed = time.perf_counter() - t_start

    def us(key: str, who: str) -> float | None:
        r = results[key].get(who)
        return r.best if r else None

    def ratio(key: str) -> float | None:
        o, t = us(key, "ours"), us(key, "OGX")
        return o / t if o is not None and t else None

    def mark(ok: bool | None) -> str:
        return "" if ok is None else ("  met" if ok else "  MISSED")

    c_keys = [f"c{s // 1024}k" for s in ARG_SIZES]
    targets = {"a": f"<= {TARGET_A_FLOOR:g}x floor = {fmt(floor.best and TARGET_A_FLOOR * floor.best)}"}
    targets["a"] += mark(
        None if us("a", "ours") is None or floor.best is None else us("a", "ours") <= TARGET_A_FLOOR * floor.best
    )
    targets["b"] = f"<= {TARGET_B:g}x OGX" + mark(None if ratio("b") is None else ratio("b") <= TARGET_B)
    for k in c_keys:
        targets[k] = f"<= {TARGET_C:g}x OGX" + mark(None if ratio(k) is None else ratio(k) <= TARGET_C)

    print()
    print(f"responses-rs vs OGX {OGX_VERSION} builtin OpenAIResponsesImpl  (Python {platform.python_version()})")
    print(f"ours: {ours_info}")
    print(
        f"CPU time = time.process_time (all threads), best of {repeat} after {warmup} warm-up, rounds interleaved; "
        f"gc on, fixtures frozen; {'quick' if args.quick else 'full'} mode"
    )
    print(
        f"requests per timing: (a) {n_streams}, (b) {n_short}, (c) 1 per size, (f) {n_par}; each side its own real "
        "sqlite ResponsesStore (emptied before each run, untimed)"
    )
    print(
        f"OGX loggers ({len(quieted)}) set to {args.ogx_log_level}: at OGX's default WARNING the builtin logs "
        '"Service tier is None, setting to default" on every request, ~0.9 ms each through its Rich console handler'
    )
    print()
    hdr = f"{'scenario':<40} {'unit':<11} {'OGX':>9} {'ours':>9} {'ours/OGX':>9} {'events O/R':>11}  target (ours)"
    print(hdr)
    print("-" * (len(hdr) + 24))
    for sc in scenarios:
        t, o = results[sc.key]["OGX"], results[sc.key].get("ours")
        ev = f"{'—' if t.events is None else t.events}/{'—' if o is None or o.events is None else o.events}"
        if not sc.request.stream:  # one response object: show the store write calls instead
            ev = f"{t.writes}/{'—' if o is None else o.writes} wr"
        r = ratio(sc.key)
        print(
            f"{sc.label:<40} {'us/' + sc.unit:<11} {fmt(t.best):>9} {fmt(o.best if o else None):>9} "
            f"{fmt(r, 3):>9} {ev:>11}  {targets.get(sc.key, '')}"
        )
    print("-" * (len(hdr) + 24))
    a_ours = us("a", "ours")
    print(
        f"{'floor: py async gen, read delta.content':<40} {'us/chunk':<11} {fmt(floor.best):>9}"
        + (f"   (a) ours = {a_ours / floor.best:.2f}x floor" if a_ours and floor.best else "")
        + (f", OGX = {us('a', 'OGX') / floor.best:.1f}x floor" if us("a", "OGX") and floor.best else "")
    )

    def lin(who: str) -> float | None:
        lo, hi = us(c_keys[0], who), us(c_keys[-1], who)
        return hi / lo if lo and hi else None

    lo = lin("ours")
    print(
        f"(c) linearity, us/delta {ARG_SIZES[-1] // 1024} KB / {ARG_SIZES[0] // 1024} KB: OGX {fmt(lin('OGX'))}, "
        f"ours {fmt(lo)}  target <= {LINEARITY}{mark(None if lo is None else lo <= LINEARITY)}"
    )
    if store_only.best is not None:
        w, wo = results["b"]["OGX"].writes, results["b"].get("ours", Result()).writes
        print(
            f"one ResponsesStore.store_response_object of (b)'s response, alone: {fmt(store_only.best, 1)} us "
            f"(real sqlite); the builtin writes {w}x per stored request, ours {wo}x"
        )
    print("events O/R = events yielded by OGX / ours; 'wr' = ResponsesStore write calls per request (sanity run)")
    notes = []
    for sc in scenarios:
        for who, r in results[sc.key].items():
            if r.error:
                notes.append(f"{sc.key} {who}: ERROR {r.error}")
            notes += [f"{sc.key} {who}: check failed: {p}" for p in r.problems]
            if r.best and r.median and r.median > NOISY * r.best:
                notes.append(f"{sc.key} {who}: noisy host, median {r.median / r.best:.2f}x best")
    print("notes:" if notes else "sanity: every scenario's text/arguments, rows stored and stream=True inference OK")
    for n in notes:
        print(f"  - {n}")
    print(f"total {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
