#!/usr/bin/env python3
"""Side-by-side CPU benchmark: responses_rs.OpenAIResponsesImpl vs llama-stack's Python class.

Runs the same scenarios through both implementations in one process and one event loop,
with zero-latency collaborators (a plain async inference function over PRE-BUILT chunk
objects, an in-memory store), and prints CPU time (time.process_time, best of N) per
request / per chunk / per delta plus the ratio ours/theirs.

Scenarios: (a) text stream, (b) one message not streamed, (c) function-call arguments in
1-char deltas, (f) three parallel calls with interleaved deltas -- any llama-stack version;
(d) streamed MCP round (list tools, call, answer) and (e) streamed file_search round
(2 vector stores) -- llama-stack >= 0.2.12 only (0.2.7 has neither; their rows print n/a).

    .venv-0.2.7/bin/python bench/bench.py [--quick] [--json FILE]     # from the repository root

This is a benchmark, not a test: it never fails on a missed target, it only reports.
See bench/README.md for the methodology.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import inspect
import json
import logging
import platform
import statistics
import string
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# llama-stack emits pydantic warnings at import time; they are noise here.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from llama_stack.apis.agents import openai_responses as _ls_responses
    from llama_stack.apis.agents.openai_responses import OpenAIResponseInputToolFunction
    from llama_stack.apis.inference.inference import (
        OpenAIAssistantMessageParam,
        OpenAIChatCompletion,
        OpenAIChatCompletionChunk,
        OpenAIChatCompletionToolCall,
        OpenAIChatCompletionToolCallFunction,
        OpenAIChoice,
        OpenAIChoiceDelta,
        OpenAIChunkChoice,
    )
    from llama_stack.providers.inline.agents.meta_reference import openai_responses as _theirs_mod

TheirImpl = _theirs_mod.OpenAIResponsesImpl

# The class logs one INFO line per request through a Rich console handler in some
# scenarios (0.2.12: "Exiting inference loop since there is a function (client-side)
# tool call"). Console rendering is not what we measure, so raise that logger to WARNING.
# (logger.debug(f"...") f-strings are still evaluated: that cost is part of their code.)
logging.getLogger(_theirs_mod.__name__).setLevel(logging.WARNING)

LS_VERSION = importlib.metadata.version("llama_stack")

# llama-stack 0.2.7 as measured by this script (best of 15, 2-core KVM host), used for
# the "0.3x llama-stack 0.2.7" targets when running against another version. Override
# with --baseline FILE (the --json output of a 0.2.7 run) for same-machine numbers.
REF_027 = {"b": 50.5, "c16k": 1.91, "c32k": 2.10, "c64k": 2.38}  # us/request, us/delta
TARGET_A_US_PER_CHUNK = 0.5
TARGET_FACTOR_027 = 0.3
LINEARITY_TOLERANCE = 1.25  # us/delta at the largest size <= this x us/delta at the smallest
NOISY = 1.25  # flag a measurement whose median run is this much slower than its best
# The floor is a canary for a slow host: ~0.20-0.25 us/chunk on the 2-core reference machine.
FLOOR_REF_US = 0.22

MODEL = "bench-model"
N_TEXT_CHUNKS = 1000
ARG_SIZES = (16 * 1024, 32 * 1024, 64 * 1024)
SHORT_REPLY = "Hello! How can I help you today?"
TOOL_NAME = "write_blob"
ARGS_PREFIX = '{"blob": "'
ARGS_SUFFIX = '"}'
# (d)/(e): a tool round, then a text answer of this many chunks.
N_ANSWER_CHUNKS = 200
MCP_SERVER_URL = "http://127.0.0.1:1/sse"  # never contacted: the MCP helpers are replaced by fakes
MCP_TOOL_NAME = "bench_lookup"
MCP_ARG_DELTAS = 64
MCP_TOOL_OUTPUT = "bench_lookup result: 42 widgets in stock, next delivery on Tuesday."
VECTOR_STORE_IDS = ("vs_bench_1", "vs_bench_2")
N_SEARCH_RESULTS = 5  # per vector store
FS_ARG_DELTAS = 16


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


CTOR_FORM = "0.2.12" if _version_tuple(LS_VERSION) >= (0, 2, 12) else "0.2.7"
# (d) MCP and (e) file_search exist in llama-stack's Responses implementation from 0.2.12.
HAS_MCP_FS = CTOR_FORM == "0.2.12"
NA_MCP_FS = "n/a (0.2.7 has no MCP/file_search)"


# --------------------------------------------------------------------------- fixtures
#
# Everything below is built once, before any timing. The intermediate chunks carry
# finish_reason=None, as OpenAI-compatible providers send them; llama-stack's
# OpenAIChunkChoice declares `finish_reason: str`, so those choices are validated with a
# placeholder and then assigned None (plain attribute assignment, no validation;
# model_construct would do the same but is ~30x slower to build 64K of them).


def _choice(delta: OpenAIChoiceDelta, finish_reason: str | None) -> OpenAIChunkChoice:
    choice = OpenAIChunkChoice(delta=delta, finish_reason=finish_reason or "stop", index=0)
    if finish_reason is None:
        choice.finish_reason = None
    return choice


def _chunk(cid: str, delta: OpenAIChoiceDelta, finish_reason: str | None = None) -> OpenAIChatCompletionChunk:
    return OpenAIChatCompletionChunk(
        id=cid, choices=[_choice(delta, finish_reason)], created=1_700_000_000, model=MODEL
    )


def build_text_chunks(n: int) -> tuple[list[OpenAIChatCompletionChunk], str]:
    """n chunks, one short token each; the first carries role, the last finish_reason='stop'."""
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
    chunks, parts = [], []
    for i in range(n):
        tok = f"{words[i % len(words)]}{i} "
        parts.append(tok)
        delta = OpenAIChoiceDelta(content=tok, role="assistant" if i == 0 else None)
        chunks.append(_chunk("chatcmpl-text", delta, "stop" if i == n - 1 else None))
    return chunks, "".join(parts)


def build_short_reply() -> tuple[OpenAIChatCompletion, list[OpenAIChatCompletionChunk]]:
    """The one-message reply, both as a non-streamed completion and as a 1-chunk stream."""
    completion = OpenAIChatCompletion(
        id="chatcmpl-short",
        choices=[
            OpenAIChoice(
                message=OpenAIAssistantMessageParam(content=SHORT_REPLY),
                finish_reason="stop",
                index=0,
            )
        ],
        created=1_700_000_000,
        model=MODEL,
    )
    stream = [_chunk("chatcmpl-short", OpenAIChoiceDelta(content=SHORT_REPLY, role="assistant"), "stop")]
    return completion, stream


def build_tool_call_streams(sizes: tuple[int, ...]) -> dict[int, tuple[list[OpenAIChatCompletionChunk], str]]:
    """For each size: a function-tool-call stream whose arguments (valid JSON, exactly
    `size` characters) arrive in 1-character deltas, plus the expected arguments string.

    Stream = [header chunk (id, name, arguments="")] + size delta chunks + [finish chunk].
    The body chunk objects are shared between sizes (they are only read)."""
    cid = "chatcmpl-tool"
    alphabet = string.ascii_letters + string.digits
    body_len = max(sizes) - len(ARGS_PREFIX) - len(ARGS_SUFFIX)
    body_chars = [alphabet[i % len(alphabet)] for i in range(body_len)]

    def delta_chunk(ch: str) -> OpenAIChatCompletionChunk:
        tc = OpenAIChatCompletionToolCall(index=0, function=OpenAIChatCompletionToolCallFunction(arguments=ch))
        return _chunk(cid, OpenAIChoiceDelta(tool_calls=[tc]))

    header = _chunk(
        cid,
        OpenAIChoiceDelta(
            role="assistant",
            tool_calls=[
                OpenAIChatCompletionToolCall(
                    index=0,
                    id="call_bench_0",
                    type="function",
                    function=OpenAIChatCompletionToolCallFunction(name=TOOL_NAME, arguments=""),
                )
            ],
        ),
    )
    prefix = [delta_chunk(ch) for ch in ARGS_PREFIX]
    body = [delta_chunk(ch) for ch in body_chars]
    out = {}
    for size in sizes:
        n_body = size - len(ARGS_PREFIX) - len(ARGS_SUFFIX)
        suffix = [delta_chunk(ch) for ch in ARGS_SUFFIX]
        finish = _chunk(cid, OpenAIChoiceDelta(), "tool_calls")
        chunks = [header, *prefix, *body[:n_body], *suffix, finish]
        args = ARGS_PREFIX + "".join(body_chars[:n_body]) + ARGS_SUFFIX
        assert len(args) == size and len(chunks) == size + 2
        json.loads(args)
        out[size] = (chunks, args)
    return out


PARALLEL_CALLS = 3
PARALLEL_DELTAS = 256  # argument deltas per call in (f)


def build_parallel_calls() -> tuple[list[OpenAIChatCompletionChunk], list[str]]:
    """(f): three parallel calls to the same function, their headers first (id, name, arguments=""),
    then their argument deltas interleaved by index (call 0, 1, 2, 0, 1, 2, ...), as servers that
    interleave parallel calls send them; PARALLEL_DELTAS deltas of 4 characters per call."""
    cid = "chatcmpl-parallel"

    def call_chunk(index: int, **function: str) -> OpenAIChatCompletionChunk:
        head = {"id": f"call_par_{index}", "type": "function"} if "name" in function else {}
        tc = OpenAIChatCompletionToolCall(
            index=index, function=OpenAIChatCompletionToolCallFunction(**function), **head
        )
        return _chunk(cid, OpenAIChoiceDelta(tool_calls=[tc]))

    all_args = []
    for i in range(PARALLEL_CALLS):
        filler = string.ascii_letters[i] * (PARALLEL_DELTAS * 4 - len(ARGS_PREFIX) - len(ARGS_SUFFIX))
        args = ARGS_PREFIX + filler + ARGS_SUFFIX
        json.loads(args)
        all_args.append(args)
    chunks = [call_chunk(i, name=TOOL_NAME, arguments="") for i in range(PARALLEL_CALLS)]
    for d in range(PARALLEL_DELTAS):
        chunks += [call_chunk(i, arguments=all_args[i][d * 4 : d * 4 + 4]) for i in range(PARALLEL_CALLS)]
    chunks.append(_chunk(cid, OpenAIChoiceDelta(), "tool_calls"))
    return chunks, all_args


def build_tool_round(call_id: str, name: str, arguments: str, n_deltas: int) -> list[OpenAIChatCompletionChunk]:
    """One inference round that calls tool `name`: a header chunk (id, name, arguments=""),
    `arguments` split into n_deltas near-equal deltas, a finish chunk (tool_calls)."""
    cid = f"chatcmpl-{call_id}"
    header = _chunk(
        cid,
        OpenAIChoiceDelta(
            role="assistant",
            tool_calls=[
                OpenAIChatCompletionToolCall(
                    index=0,
                    id=call_id,
                    type="function",
                    function=OpenAIChatCompletionToolCallFunction(name=name, arguments=""),
                )
            ],
        ),
    )
    assert len(arguments) >= n_deltas
    bounds = [i * len(arguments) // n_deltas for i in range(n_deltas + 1)]
    parts = [arguments[bounds[i] : bounds[i + 1]] for i in range(n_deltas)]
    assert all(parts) and "".join(parts) == arguments
    body = [
        _chunk(
            cid,
            OpenAIChoiceDelta(
                tool_calls=[
                    OpenAIChatCompletionToolCall(index=0, function=OpenAIChatCompletionToolCallFunction(arguments=p))
                ]
            ),
        )
        for p in parts
    ]
    return [header, *body, _chunk(cid, OpenAIChoiceDelta(), "tool_calls")]


@dataclass
class ToolFixtures:
    """What the tool collaborators of (d)/(e) return: pre-built, shared by both impls."""

    tool_defs: dict[str, Any] = field(default_factory=dict)  # tool_groups_api.get_tool(name)
    search_page: Any = None  # vector_io_api.openai_search_vector_store(...)
    mcp_tools: Any = None  # list_mcp_tools(...)
    mcp_result: Any = None  # invoke_mcp_tool(...)


def build_tool_fixtures() -> ToolFixtures:
    """The objects llama-stack 0.2.12's real helpers return (llama_stack.providers.utils.tools.mcp
    builds ListToolDefsResponse / ToolInvocationResult exactly like this)."""
    from llama_stack.apis.common.content_types import TextContentItem
    from llama_stack.apis.tools import ListToolDefsResponse, ToolDef, ToolInvocationResult, ToolParameter
    from llama_stack.apis.vector_io import (
        VectorStoreContent,
        VectorStoreSearchResponse,
        VectorStoreSearchResponsePage,
    )

    query_param = ToolParameter(name="query", parameter_type="string", description="What to look up.")
    mcp_tools = ListToolDefsResponse(
        data=[
            ToolDef(
                name=MCP_TOOL_NAME,
                description="Look an item up in the bench inventory.",
                parameters=[query_param],
                metadata={"endpoint": MCP_SERVER_URL},
            )
        ]
    )
    mcp_result = ToolInvocationResult(content=[TextContentItem(text=MCP_TOOL_OUTPUT)], error_code=0)
    knowledge_search = ToolDef(
        name="knowledge_search",
        description="Search for information in a database.",
        parameters=[
            ToolParameter(
                name="query",
                parameter_type="string",
                description="The query to search for. Can be a natural language sentence or keywords.",
            )
        ],
    )
    lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt. "
    search_page = VectorStoreSearchResponsePage(
        search_query="widget delivery schedule",
        data=[
            VectorStoreSearchResponse(
                file_id=f"file-bench-{i}",
                filename=f"handbook-{i}.pdf",
                score=0.9 - 0.05 * i,
                attributes={"section": f"{i + 1}", "page": 10 + i},
                content=[VectorStoreContent(type="text", text=f"Chunk {i}: " + lorem * 4)],
            )
            for i in range(N_SEARCH_RESULTS)
        ],
    )
    return ToolFixtures({"knowledge_search": knowledge_search}, search_page, mcp_tools, mcp_result)


def install_mcp_fakes(fx: ToolFixtures, ours_loaded: bool) -> list[str]:
    """Replace the MCP client helpers with zero-latency fakes returning the pre-built objects,
    where each impl looks them up: llama-stack's module globals (it does
    `from llama_stack.providers.utils.tools.mcp import invoke_mcp_tool, list_mcp_tools`) and
    responses_rs._mcp (our driver calls `_mcp.list_mcp_tools` / `_mcp.invoke_mcp_tool`)."""

    async def list_mcp_tools(endpoint: str, headers: dict[str, Any]) -> Any:
        return fx.mcp_tools

    async def invoke_mcp_tool(endpoint: str, headers: dict[str, Any], tool_name: str, kwargs: dict[str, Any]) -> Any:
        return fx.mcp_result

    modules = [_theirs_mod]
    if ours_loaded:
        import responses_rs._mcp as ours_mcp

        modules.append(ours_mcp)
    patched = []
    for mod in modules:
        for name, fake in (("list_mcp_tools", list_mcp_tools), ("invoke_mcp_tool", invoke_mcp_tool)):
            if not hasattr(mod, name):  # a real call would hang on / fail against MCP_SERVER_URL
                raise RuntimeError(f"{mod.__name__} has no {name}: cannot install the MCP fake")
            setattr(mod, name, fake)
            patched.append(f"{mod.__name__}.{name}")
    return patched


TOOLS = [
    OpenAIResponseInputToolFunction(
        name=TOOL_NAME,
        description="Store a blob.",
        parameters={"type": "object", "properties": {"blob": {"type": "string"}}, "required": ["blob"]},
    )
]


# --------------------------------------------------------------------------- collaborators


async def _agen(chunks: list[Any]) -> AsyncIterator[Any]:
    for c in chunks:
        yield c


class FakeInference:
    """Zero-latency inference: a plain async function (no mocks) returning pre-built objects."""

    def __init__(self) -> None:
        self.chunks: list[OpenAIChatCompletionChunk] = []
        # (d)/(e): (tool-call round, answer round); the answer is served once the last
        # message is the tool result.
        self.rounds: tuple[list[OpenAIChatCompletionChunk], list[OpenAIChatCompletionChunk]] | None = None
        self.completion: OpenAIChatCompletion | None = None
        self.calls = [0, 0]  # [stream=False, stream=True]

    async def openai_chat_completion(self, model: str, messages: Any, *args: Any, stream: Any = None, **kwargs: Any):
        if stream:
            self.calls[1] += 1
            if self.rounds is not None:
                return _agen(self.rounds[1] if getattr(messages[-1], "role", None) == "tool" else self.rounds[0])
            return _agen(self.chunks)
        self.calls[0] += 1
        return self.completion


class MemoryKVStore:
    """In-memory KVStore (llama-stack 0.2.7 `persistence_store`)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def set(self, key: str, value: str, expiration: Any = None) -> None:
        self.data[key] = value

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def values_in_range(self, start_key: str, end_key: str) -> list[str]:
        return [v for k, v in sorted(self.data.items()) if start_key <= k <= end_key]

    async def keys_in_range(self, start_key: str, end_key: str) -> list[str]:
        return [k for k in sorted(self.data) if start_key <= k <= end_key]


class MemoryResponsesStore:
    """In-memory stand-in for llama-stack 0.2.12's ResponsesStore: store_response_object
    does what the real one does (model_dump the response and every input item) and keeps
    the JSON text the SQL JSON column would hold; only the SQL insert is a dict assignment.
    Persisted data is therefore JSON text in both versions (0.2.7's impl json-dumps itself
    before KVStore.set), and the store retains no Python object graph across requests."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def store_response_object(self, response_object: Any, input: Any) -> None:
        data = response_object.model_dump()
        data["input"] = [input_item.model_dump() for input_item in input]
        self.data[data["id"]] = json.dumps(data)

    async def get_response_object(self, response_id: str) -> Any:
        cls = _ls_responses.OpenAIResponseObjectWithInput  # not in 0.2.7
        return cls(**json.loads(self.data[response_id]))


class StubToolGroups:
    def __init__(self, fx: ToolFixtures) -> None:
        self.fx = fx

    async def get_tool(self, tool_name: str) -> Any:
        return self.fx.tool_defs.get(tool_name)


class StubToolRuntime:
    async def invoke_tool(self, tool_name: str, kwargs: dict[str, Any]) -> Any:
        return None


class StubVectorIO:
    def __init__(self, fx: ToolFixtures) -> None:
        self.fx = fx

    async def openai_search_vector_store(self, *args: Any, **kwargs: Any) -> Any:
        return self.fx.search_page


@dataclass
class Harness:
    name: str
    impl: Any
    inference: FakeInference
    store: MemoryKVStore | MemoryResponsesStore
    inference_modes: dict[str, str] = field(default_factory=dict)

    def stored_count(self) -> int:
        return len(self.store.data)


def make_harness(name: str, cls: Callable[..., Any], fx: ToolFixtures) -> Harness:
    inference = FakeInference()
    if CTOR_FORM == "0.2.12":
        store: Any = MemoryResponsesStore()
        kwargs = dict(
            inference_api=inference,
            tool_groups_api=StubToolGroups(fx),
            tool_runtime_api=StubToolRuntime(),
            responses_store=store,
            vector_io_api=StubVectorIO(fx),
        )
    else:
        store = MemoryKVStore()
        kwargs = dict(
            persistence_store=store,
            inference_api=inference,
            tool_groups_api=StubToolGroups(fx),
            tool_runtime_api=StubToolRuntime(),
        )
    return Harness(name, cls(**kwargs), inference, store)


def check_ctor_form() -> str | None:
    try:
        params = set(inspect.signature(TheirImpl.__init__).parameters) - {"self"}
    except (TypeError, ValueError):
        return None
    expected = (
        {"inference_api", "tool_groups_api", "tool_runtime_api", "responses_store", "vector_io_api"}
        if CTOR_FORM == "0.2.12"
        else {"persistence_store", "inference_api", "tool_groups_api", "tool_runtime_api"}
    )
    if params != expected:
        return f"llama-stack {LS_VERSION} constructor takes {sorted(params)}, expected {sorted(expected)}"
    return None


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    key: str
    label: str
    unit: str  # "chunk", "request", "delta"
    per_request_units: int  # chunks / 1 / deltas per request
    requests_per_timing: int
    request: dict[str, Any]
    chunks: list[OpenAIChatCompletionChunk] = field(default_factory=list)
    completion: OpenAIChatCompletion | None = None
    expect_text: str | None = None
    expect_args: str | None = None
    rounds: tuple[list[OpenAIChatCompletionChunk], list[OpenAIChatCompletionChunk]] | None = None
    check: Callable[[Any], list[str]] | None = None  # extra checks of the final response


def _items(resp: Any, type_: str) -> list[Any]:
    return [item for item in resp.output if getattr(item, "type", None) == type_]


def _check_answer(resp: Any, text: str) -> list[str]:
    last = resp.output[-1] if resp.output else None
    if getattr(last, "type", None) != "message":
        return [f"last output item is {getattr(last, 'type', None)!r}, expected the answer message"]
    if last.content[0].text != text:
        return ["answer text differs from the streamed text"]
    return []


def build_tool_scenarios(fx: ToolFixtures, n_requests: int) -> list[Scenario]:
    """(d) streamed MCP round and (e) streamed file_search round, llama-stack >= 0.2.12."""
    from llama_stack.apis.agents.openai_responses import (
        OpenAIResponseInputToolFileSearch,
        OpenAIResponseInputToolMCP,
    )

    answer_chunks, answer = build_text_chunks(N_ANSWER_CHUNKS)

    # (d) MCP: arguments are valid JSON of 256 characters, in MCP_ARG_DELTAS deltas of 4.
    q_len = MCP_ARG_DELTAS * 4 - len(json.dumps({"query": ""}))
    mcp_args = json.dumps({"query": ("widgets in stock and next delivery date, " * 8)[:q_len]})
    assert len(mcp_args) == MCP_ARG_DELTAS * 4
    mcp_round = build_tool_round("call_mcp_0", MCP_TOOL_NAME, mcp_args, MCP_ARG_DELTAS)

    def check_mcp(resp: Any) -> list[str]:
        out = []
        listed = _items(resp, "mcp_list_tools")
        if len(listed) != 1 or [t.name for t in listed[0].tools] != [MCP_TOOL_NAME]:
            out.append("no mcp_list_tools item listing the fake server's tool")
        calls = _items(resp, "mcp_call")
        if len(calls) != 1:
            out.append(f"{len(calls)} mcp_call items, expected 1")
        else:
            c = calls[0]
            if c.name != MCP_TOOL_NAME or c.arguments != mcp_args:
                out.append("mcp_call name/arguments differ from the streamed call")
            if c.output != MCP_TOOL_OUTPUT or c.error:
                out.append(f"mcp_call output {c.output!r} / error {c.error!r}")
        return out + _check_answer(resp, answer)

    # (e) file_search: knowledge_search({"query": ...}) in FS_ARG_DELTAS deltas.
    query = "widget delivery schedule"
    fs_args = json.dumps({"query": query})
    fs_round = build_tool_round("call_fs_0", "knowledge_search", fs_args, FS_ARG_DELTAS)
    n_results = N_SEARCH_RESULTS * len(VECTOR_STORE_IDS)

    def check_fs(resp: Any) -> list[str]:
        out = []
        calls = _items(resp, "file_search_call")
        if len(calls) != 1:
            out.append(f"{len(calls)} file_search_call items, expected 1")
        else:
            c = calls[0]
            if list(c.queries) != [query] or c.status != "completed":
                out.append(f"file_search_call queries {c.queries!r} status {c.status!r}")
            if len(c.results or []) != n_results:
                out.append(f"file_search_call has {len(c.results or [])} results, expected {n_results}")
        return out + _check_answer(resp, answer)

    return [
        Scenario(
            "d",
            f"(d) MCP round: {MCP_ARG_DELTAS} deltas + {N_ANSWER_CHUNKS} chunks",
            "request",
            1,
            n_requests,
            dict(
                input="How many widgets are in stock?",
                model=MODEL,
                stream=True,
                store=False,
                tools=[OpenAIResponseInputToolMCP(type="mcp", server_label="bench", server_url=MCP_SERVER_URL)],
            ),
            rounds=(mcp_round, answer_chunks),
            check=check_mcp,
        ),
        Scenario(
            "e",
            f"(e) file_search: {len(VECTOR_STORE_IDS)} stores + {N_ANSWER_CHUNKS} chunks",
            "request",
            1,
            n_requests,
            dict(
                input="When is the next widget delivery?",
                model=MODEL,
                stream=True,
                store=False,
                tools=[OpenAIResponseInputToolFileSearch(vector_store_ids=list(VECTOR_STORE_IDS))],
            ),
            rounds=(fs_round, answer_chunks),
            check=check_fs,
        ),
    ]


async def run_requests(h: Harness, sc: Scenario, n: int) -> None:
    """The timed unit: n full requests, `await create_openai_response(...)` and, for
    streamed requests, consuming the whole stream."""
    create = h.impl.create_openai_response
    req = sc.request
    if req.get("stream"):
        for _ in range(n):
            stream = await create(**req)
            async for _ev in stream:
                pass
    else:
        for _ in range(n):
            await create(**req)


def _final_response(result: Any, streamed: bool) -> Any:
    if not streamed:
        return result
    for ev in reversed(result):
        if getattr(ev, "type", None) == "response.completed":
            return ev.response
    return None


async def sanity_run(h: Harness, sc: Scenario) -> tuple[int | None, list[str]]:
    """One untimed request: count events and check the result is the expected one, so a
    fast-but-wrong implementation shows up. Returns (events yielded, problems)."""
    problems: list[str] = []
    h.inference.calls[:] = [0, 0]
    before = h.stored_count()
    result = await h.impl.create_openai_response(**sc.request)
    streamed = bool(sc.request.get("stream"))
    events = None
    if streamed:
        result = [ev async for ev in result]
        events = len(result)
    resp = _final_response(result, streamed)
    try:
        if resp is None:
            problems.append("no response.completed event")
        else:
            if getattr(resp, "status", None) != "completed":
                problems.append(f"status={getattr(resp, 'status', None)!r}")
            if sc.expect_text is not None and resp.output[0].content[0].text != sc.expect_text:
                problems.append("output text differs from the streamed text")
            if sc.expect_args is not None:
                item = resp.output[0]
                if item.type != "function_call" or item.name != TOOL_NAME or item.arguments != sc.expect_args:
                    problems.append("function_call item/arguments differ from the streamed arguments")
            if sc.check is not None:
                problems.extend(sc.check(resp))
    except Exception as e:
        problems.append(f"unexpected response shape: {type(e).__name__}: {e}")
    stored = h.stored_count() - before
    want_stored = 1 if sc.request.get("store") else 0
    if stored != want_stored:
        problems.append(f"store writes: {stored}, expected {want_stored}")
    modes = [m for m, c in zip(("stream=False", "stream=True"), h.inference.calls, strict=True) if c]
    h.inference_modes[sc.key] = ",".join(modes)
    return events, problems


@dataclass
class Result:
    cpu_us: float | None = None  # best CPU us per unit
    median_cpu_us: float | None = None
    wall_us: float | None = None  # best wall-clock us per unit (informational)
    runs_cpu_s: list[float] = field(default_factory=list)
    runs_wall_s: list[float] = field(default_factory=list)
    events: int | None = None
    problems: list[str] = field(default_factory=list)
    inference_mode: str | None = None
    error: str | None = None


@dataclass
class Job:
    """One measured thing: n requests of one scenario through one impl (or the floor)."""

    key: str
    who: str  # "theirs" | "ours" | "floor"
    fn: Callable[[], Awaitable[None]]
    units: int  # chunks / requests / deltas covered by one call of fn
    prepare: Callable[[], None]  # untimed: point the fake inference at this scenario, empty the store
    result: Result = field(default_factory=Result)


def impl_job(h: Harness, sc: Scenario) -> Job:
    def prepare() -> None:
        h.inference.chunks = sc.chunks
        h.inference.rounds = sc.rounds
        h.inference.completion = sc.completion
        h.store.data.clear()

    async def fn() -> None:
        await run_requests(h, sc, sc.requests_per_timing)

    return Job(sc.key, h.name, fn, sc.requests_per_timing * sc.per_request_units, prepare)


def floor_job(chunks: list[OpenAIChatCompletionChunk], streams: int) -> Job:
    """Floor: a Python async generator that only reads choices[0].delta.content of each
    chunk of the same fake inference stream and yields a pre-built object."""
    prebuilt = object()
    inference = FakeInference()
    inference.chunks = chunks

    async def floor_stream(source: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for chunk in source:
            _ = chunk.choices[0].delta.content
            yield prebuilt

    async def fn() -> None:
        for _ in range(streams):
            source = await inference.openai_chat_completion(model=MODEL, messages=[], stream=True)
            async for _ev in floor_stream(source):
                pass

    return Job("floor", "floor", fn, streams * len(chunks), lambda: None)


async def run_jobs(jobs: list[Job], warmup: int, repeat: int, disable_gc: bool) -> None:
    """Warm up every job, then time them round-robin: round r runs each job once.

    Interleaving spreads each job's `repeat` runs over the whole benchmark, so a slow
    stretch of the (shared, virtualised) host hits one run of every job rather than all
    runs of one job, and ours/theirs are measured under the same conditions. The best run
    is reported."""
    live = list(jobs)

    async def guarded(job: Job, timed: bool) -> None:
        job.prepare()
        if not timed:
            await job.fn()
            return
        gc.collect()
        if disable_gc:
            gc.disable()
        try:
            w0, c0 = time.perf_counter(), time.process_time()
            await job.fn()
            c1, w1 = time.process_time(), time.perf_counter()
        finally:
            if disable_gc:
                gc.enable()
        job.result.runs_cpu_s.append(c1 - c0)
        job.result.runs_wall_s.append(w1 - w0)

    for rnd in range(-warmup, repeat):
        print(
            f"  {'warm-up' if rnd < 0 else 'round'} {rnd + warmup + 1}/{warmup + repeat}", file=sys.stderr, flush=True
        )
        for job in list(live):
            try:
                await guarded(job, timed=rnd >= 0)
            except Exception as e:  # ours may be work in progress: report it, go on
                job.result.error = f"{type(e).__name__}: {e}"
                live.remove(job)
    for job in jobs:
        r = job.result
        if r.runs_cpu_s and r.error is None:
            r.cpu_us = min(r.runs_cpu_s) / job.units * 1e6
            r.median_cpu_us = statistics.median(r.runs_cpu_s) / job.units * 1e6
            r.wall_us = min(r.runs_wall_s) / job.units * 1e6


# --------------------------------------------------------------------------- ours


def load_ours() -> tuple[Any, str]:
    try:
        import responses_rs
    except Exception as e:
        return None, f"import responses_rs failed: {type(e).__name__}: {e}"
    cls = getattr(responses_rs, "OpenAIResponsesImpl", None)
    where = getattr(responses_rs, "__file__", None) or list(getattr(responses_rs, "__path__", []))
    if cls is None:
        return None, f"responses_rs ({where}) has no OpenAIResponsesImpl (not built yet?)"
    return cls, f"responses_rs from {where}"


# --------------------------------------------------------------------------- report


def fmt(v: float | None, nd: int = 2) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def load_baseline(path: str | None) -> tuple[dict[str, float], str]:
    """0.2.7 numbers for the 0.3x targets: --baseline if given, else this run if it is 0.2.7, else REF_027."""
    if path:
        with open(path) as f:
            data = json.load(f)
        base = {}
        for key, s in data["scenarios"].items():
            if s.get("theirs", {}).get("cpu_us") is not None:
                base[key] = s["theirs"]["cpu_us"]
        return base, f"{path} (llama-stack {data.get('llama_stack_version')})"
    return {}, "built-in reference figures (0.2.7, this script, 2-core machine)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~10 s run: best of 5, fewer requests per timing")
    ap.add_argument("--json", metavar="FILE", help="write the numbers as JSON to FILE")
    ap.add_argument("--repeat", type=int, help="timed runs per measurement (best is kept); default 15, quick 5")
    ap.add_argument("--warmup", type=int, help="untimed runs before timing; default 2, quick 1")
    ap.add_argument("--no-gc", action="store_true", help="gc.disable() during timed sections (default: gc on)")
    ap.add_argument(
        "--baseline",
        metavar="FILE",
        help="--json output of a llama-stack 0.2.7 run, for the 0.3x-of-0.2.7 targets when running another version",
    )
    ap.add_argument("--theirs-only", action="store_true", help="do not try to import responses_rs")
    args = ap.parse_args()
    args.repeat = args.repeat or (5 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    n_text_streams = 5 if args.quick else 20
    n_short = 500 if args.quick else 2000
    n_tool_rounds = 5 if args.quick else 20

    t_start = time.perf_counter()
    # gc off while building ~70K chunk objects: with llama-stack's large import-time heap,
    # the full collections they would trigger make building 5x slower.
    gc.disable()
    text_chunks, text = build_text_chunks(N_TEXT_CHUNKS)
    short_completion, short_stream = build_short_reply()
    tool_streams = build_tool_call_streams(ARG_SIZES)
    fx = build_tool_fixtures() if HAS_MCP_FS else ToolFixtures()
    tool_scenarios = build_tool_scenarios(fx, n_tool_rounds) if HAS_MCP_FS else []
    gc.enable()

    scenarios = [
        Scenario(
            "a",
            f"(a) text stream, {N_TEXT_CHUNKS} chunks",
            "chunk",
            N_TEXT_CHUNKS,
            n_text_streams,
            dict(input="Tell me a long story.", model=MODEL, stream=True, store=False),
            chunks=text_chunks,
            expect_text=text,
        ),
        Scenario(
            "b",
            "(b) one message, not streamed",
            "request",
            1,
            n_short,
            dict(input="Hello", model=MODEL, stream=False, store=True),
            chunks=short_stream,
            completion=short_completion,
            expect_text=SHORT_REPLY,
        ),
    ]
    for size in ARG_SIZES:
        chunks, arguments = tool_streams[size]
        scenarios.append(
            Scenario(
                f"c{size // 1024}k",
                f"(c) fn-call args {size // 1024} KB, 1-char deltas",
                "delta",
                size,
                1,
                dict(input="Store a blob.", model=MODEL, stream=True, store=False, tools=TOOLS),
                chunks=chunks,
                expect_args=arguments,
            )
        )
    parallel_chunks, parallel_args = build_parallel_calls()

    def check_parallel(resp: Any) -> list[str]:
        calls = _items(resp, "function_call")
        if [c.arguments for c in calls] != parallel_args:
            return ["the three function_call items differ from the streamed arguments"]
        return []

    scenarios.append(
        Scenario(
            "f",
            f"(f) {PARALLEL_CALLS} parallel calls, interleaved deltas",
            "delta",
            PARALLEL_CALLS * PARALLEL_DELTAS,
            n_tool_rounds,
            dict(input="Store three blobs.", model=MODEL, stream=True, store=False, tools=TOOLS),
            chunks=parallel_chunks,
            check=check_parallel,
        )
    )
    scenarios.extend(tool_scenarios)

    # Freeze the fixtures into the permanent GC generation: they stay alive for the whole
    # run and must not be re-traversed by collections triggered inside timed sections.
    gc.collect()
    gc.freeze()
    t_fixtures = time.perf_counter() - t_start

    ours_cls, ours_info = (None, "skipped (--theirs-only)") if args.theirs_only else load_ours()
    ctor_warning = check_ctor_form()
    mcp_patched: list[str] = []
    if HAS_MCP_FS:
        mcp_patched = install_mcp_fakes(fx, ours_cls is not None)

    async def run_all() -> tuple[dict[str, dict[str, Result]], float | None, str | None]:
        harnesses = [make_harness("theirs", TheirImpl, fx)]
        ours_err = None
        if ours_cls is not None:
            try:
                harnesses.append(make_harness("ours", ours_cls, fx))
            except Exception as e:
                ours_err = f"constructing responses_rs.OpenAIResponsesImpl failed: {type(e).__name__}: {e}"
        results: dict[str, dict[str, Result]] = {}
        jobs: list[Job] = []
        for sc in scenarios:
            results[sc.key] = {}
            for h in harnesses:
                job = impl_job(h, sc)
                results[sc.key][h.name] = job.result
                job.prepare()
                try:
                    job.result.events, job.result.problems = await sanity_run(h, sc)
                    job.result.inference_mode = h.inference_modes.get(sc.key) or None
                    jobs.append(job)
                except Exception as e:
                    job.result.error = f"{type(e).__name__}: {e}"
            if sc.key == "a":
                floor = floor_job(text_chunks, n_text_streams)
                jobs.append(floor)
        await run_jobs(jobs, args.warmup, args.repeat, args.no_gc)
        return results, floor.result.cpu_us, ours_err

    results, floor, ours_err = asyncio.run(run_all())
    elapsed = time.perf_counter() - t_start
    have_ours = ours_cls is not None and ours_err is None

    # ---- targets
    base, base_src = load_baseline(args.baseline)
    if not base and _version_tuple(LS_VERSION)[:3] == (0, 2, 7):
        base = {k: v["theirs"].cpu_us for k, v in results.items() if v["theirs"].cpu_us is not None}
        base_src = "this run (llama-stack 0.2.7)"
    if not base:
        base = dict(REF_027)
        base_src += ": " + ", ".join(f"{k} {v}" for k, v in REF_027.items())

    def ours_us(key: str) -> float | None:
        r = results[key].get("ours")
        return r.cpu_us if r is not None else None

    c_keys = [f"c{s // 1024}k" for s in ARG_SIZES]
    targets: dict[str, dict[str, Any]] = {}
    targets["a"] = {"limit": TARGET_A_US_PER_CHUNK, "text": f"<= {TARGET_A_US_PER_CHUNK} us/chunk"}
    if "b" in base:
        lim = TARGET_FACTOR_027 * base["b"]
        targets["b"] = {"limit": lim, "text": f"<= 0.3x 0.2.7 = {lim:.1f}"}
    for k in c_keys:
        if k in base:
            lim = TARGET_FACTOR_027 * base[k]
            targets[k] = {"limit": lim, "text": f"<= 0.3x 0.2.7 = {lim:.2f}"}
    for k, t in targets.items():
        v = ours_us(k)
        t["ours"] = v
        t["met"] = None if v is None else v <= t["limit"]

    def linearity(who: str) -> float | None:
        lo, hi = results[c_keys[0]].get(who), results[c_keys[-1]].get(who)
        if lo is None or hi is None or not lo.cpu_us or hi.cpu_us is None:
            return None
        return hi.cpu_us / lo.cpu_us

    lin_ours, lin_theirs = linearity("ours"), linearity("theirs")

    # ---- table
    print()
    print(
        f"responses-rs vs llama-stack {LS_VERSION}  (constructor form {CTOR_FORM}, Python {platform.python_version()})"
    )
    print(f"ours: {ours_info}" + (f"  -- {ours_err}" if ours_err else ""))
    if not have_ours:
        print("      => printing llama-stack + floor only")
    if ctor_warning:
        print(f"WARNING: {ctor_warning}")
    gc_mode = "disabled in timed sections" if args.no_gc else "enabled (fixtures gc.freeze()d)"
    print(
        f"CPU time = time.process_time, best of {args.repeat} after {args.warmup} warm-up; gc {gc_mode}; "
        f"{'quick' if args.quick else 'full'} mode"
    )
    print(
        f"requests per timing: (a) {n_text_streams}, (b) {n_short}, (c) 1 per size, (d)/(e) {n_tool_rounds}; "
        "store=True for (b), store=False for the others"
    )
    print(
        "(d) MCP and (e) file_search run on llama-stack >= 0.2.12 only"
        + (
            f"; MCP client helpers replaced by zero-latency fakes: {', '.join(mcp_patched)}"
            if HAS_MCP_FS
            else f" -- {LS_VERSION} installed, rows n/a"
        )
    )
    print()
    hdr = (
        f"{'scenario':<38} {'unit':<11} {'llama-stack':>11} {'ours':>9} {'ours/theirs':>11} "
        f"{'events L/O':>11}  target (ours)"
    )
    print(hdr)
    print("-" * (len(hdr) + 22))
    for sc in scenarios:
        t = results[sc.key]["theirs"]
        o = results[sc.key].get("ours")
        ratio = o.cpu_us / t.cpu_us if (o is not None and o.cpu_us is not None and t.cpu_us) else None
        if not sc.request.get("stream"):
            ev = "1 resp"
        else:
            ev = f"{'—' if t.events is None else t.events}/{'—' if o is None or o.events is None else o.events}"
        tgt = targets.get(sc.key)
        ttxt = ""
        if tgt:
            mark = "" if tgt["met"] is None else ("  met" if tgt["met"] else "  MISSED")
            ttxt = tgt["text"] + mark
        print(
            f"{sc.label:<38} {'us/' + sc.unit:<11} {fmt(t.cpu_us):>11} {fmt(o.cpu_us if o else None):>9} "
            f"{fmt(ratio, 3) if ratio is not None else '—':>11} {ev:>11}  {ttxt}"
        )
    if not HAS_MCP_FS:
        for label in (
            f"(d) MCP round: {MCP_ARG_DELTAS} deltas + {N_ANSWER_CHUNKS} chunks",
            f"(e) file_search: {len(VECTOR_STORE_IDS)} stores + {N_ANSWER_CHUNKS} chunks",
        ):
            print(f"{label:<38} {'us/request':<11} {NA_MCP_FS}")
    print("-" * (len(hdr) + 22))
    a_ours = ours_us("a")
    print(
        f"{'floor: py async gen, read delta.content':<38} {'us/chunk':<11} {fmt(floor):>11}"
        + (f"   (a) ours = {a_ours / floor:.2f}x floor" if a_ours and floor else "")
    )
    lin_txt = f"(c) linearity, us/delta {ARG_SIZES[-1] // 1024} KB / {ARG_SIZES[0] // 1024} KB: "
    lin_txt += f"llama-stack {fmt(lin_theirs)}, ours {fmt(lin_ours)}"
    if lin_ours is not None:
        lin_txt += f"  target <= {LINEARITY_TOLERANCE} {'met' if lin_ours <= LINEARITY_TOLERANCE else 'MISSED'}"
    print(lin_txt)
    print(f"0.2.7 baseline for the 0.3x targets: {base_src}")

    notes, noisy = [], []
    for sc in scenarios:
        for who, r in results[sc.key].items():
            if r.error:
                notes.append(f"{sc.key} {who}: ERROR {r.error}")
            for p in r.problems:
                notes.append(f"{sc.key} {who}: check failed: {p}")
            if r.cpu_us and r.median_cpu_us and r.median_cpu_us > NOISY * r.cpu_us:
                noisy.append(f"{sc.key} {who} median {r.median_cpu_us / r.cpu_us:.2f}x best")
    modes = {}
    for sc in scenarios:
        for who, r in results[sc.key].items():
            if r.inference_mode:
                modes.setdefault(who, []).append(f"{sc.key}:{r.inference_mode}")
    for who, m in modes.items():
        notes.append(f"inference called with ({who}): " + " ".join(m))
    if results["a"]["theirs"].events is not None and results["a"]["theirs"].events <= 3:
        notes.append(
            f"llama-stack {LS_VERSION} (a): only {results['a']['theirs'].events} events for "
            f"{N_TEXT_CHUNKS} chunks -- it buffers the whole stream (no per-chunk events)"
        )
    for key in ("d", "e"):
        r = results.get(key)
        if r is None:
            continue
        t_ev, o = r["theirs"].events, r.get("ours")
        o_ev = o.events if o is not None else None
        if t_ev is not None and t_ev == N_ANSWER_CHUNKS + 2:
            notes.append(
                f"({key}) llama-stack {LS_VERSION}: {t_ev} events = created + {N_ANSWER_CHUNKS} text deltas + "
                "completed (no output_item / tool-call events); "
                + (f"ours {o_ev} (full event sequence)" if o_ev is not None else "ours —")
            )
    if floor and floor > 1.4 * FLOOR_REF_US:
        notes.append(
            f"floor {floor:.2f} us/chunk vs ~{FLOOR_REF_US} usually seen on the 2-core reference machine: the host "
            "was slow for the whole run (absolute numbers inflated, ratios still comparable) -- rerun"
        )
    if noisy:
        notes.append("noisy host (best run reported, rerun to confirm): " + ", ".join(noisy))
    if notes:
        print("notes:")
        for n in notes:
            print(f"  - {n}")
    print(f"total {elapsed:.1f} s (fixtures {t_fixtures:.1f} s)")

    if args.json:

        def res_json(r: Result) -> dict[str, Any]:
            return {
                "cpu_us": r.cpu_us,
                "median_cpu_us": r.median_cpu_us,
                "wall_us": r.wall_us,
                "runs_cpu_s": r.runs_cpu_s,
                "runs_wall_s": r.runs_wall_s,
                "events": r.events,
                "inference_mode": r.inference_mode,
                "problems": r.problems,
                "error": r.error,
            }

        out = {
            "llama_stack_version": LS_VERSION,
            "constructor_form": CTOR_FORM,
            "python": platform.python_version(),
            "ours": {"available": have_ours, "info": ours_info, "error": ours_err},
            "settings": {
                "repeat": args.repeat,
                "warmup": args.warmup,
                "gc_disabled_in_timing": args.no_gc,
                "quick": args.quick,
                "requests_per_timing": {
                    "a": n_text_streams,
                    "b": n_short,
                    "c": 1,
                    "d": n_tool_rounds,
                    "e": n_tool_rounds,
                },
                "text_chunks": N_TEXT_CHUNKS,
                "arg_sizes": list(ARG_SIZES),
                "mcp_file_search": (
                    {
                        "answer_chunks": N_ANSWER_CHUNKS,
                        "mcp_arg_deltas": MCP_ARG_DELTAS,
                        "file_search_arg_deltas": FS_ARG_DELTAS,
                        "vector_stores": len(VECTOR_STORE_IDS),
                        "results_per_store": N_SEARCH_RESULTS,
                        "mcp_fakes": mcp_patched,
                    }
                    if HAS_MCP_FS
                    else NA_MCP_FS
                ),
            },
            "scenarios": {
                sc.key: {
                    "label": sc.label,
                    "unit": f"us/{sc.unit}",
                    **{who: res_json(r) for who, r in results[sc.key].items()},
                }
                for sc in scenarios
            },
            "floor_cpu_us_per_chunk": floor,
            "targets": targets,
            "linearity": {"theirs": lin_theirs, "ours": lin_ours, "tolerance": LINEARITY_TOLERANCE},
            "baseline_source": base_src,
            "elapsed_s": elapsed,
        }
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
