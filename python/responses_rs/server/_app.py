"""The ASGI application of ``responses-rs serve``: a raw ASGI callable (no framework, no pydantic).

Per streamed request the Python here does a fixed amount of work (parse the request JSON once, build a
``Turn``, write the upstream request); per upstream *read* it makes one call into the core
(``Turn.feed_sse``: SSE bytes in, the client's SSE event bytes out) and one ASGI ``send``. No Python object
is built per chunk or per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .._core import EventFactory, InvalidRequest, Turn, UpstreamError, check_request
from ._background import BackgroundResponses, BackgroundRun
from ._mcp import McpSessions, mcp_headers
from ._replay import EventLog
from ._router import CallSlots, Router
from ._search import TOOL_DEF as WEB_SEARCH_DEF
from ._search import SearchBackend, SearchFailure
from ._store import NotFound, StillRunning, Store
from ._upstream import Response, Upstream, UpstreamFailure, per_upstream

if TYPE_CHECKING:
    from ._store_pg import PostgresStore
    from ._vector_stores import Ingestion, MatrixCache

logger = logging.getLogger("responses_rs.server")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Emit = Callable[[bytes], Awaitable[None]]

# The core builds no event objects here (events leave as SSE bytes), so its factory has no classes.
_FACTORY = EventFactory({})
# Request fields passed to the core by name; the others go in `options` (the core parses and echoes them).
_NAMED = ("input", "model", "instructions", "previous_response_id", "store", "stream", "temperature", "text", "tools")
# Server-side tools served only with a backend (`--search-url`), otherwise left out of what the model is offered.
LEFT_OUT_TOOLS = ("web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11")
# Open Responses fields this server does not serve yet: refused naming the field.
NOT_BUILT: tuple[str, ...] = ()
# Tool types served: the client-side ones the core maps onto chat functions (Codex sends all of these), and
# `web_search`, served by the search backend when one is configured (`_search.py`), otherwise left out of what the
# model is offered (Codex offers it on default settings): the core's lookup of its definition is answered "not
# available"; `mcp` (remote MCP servers, `_mcp.py`); `file_search` (this server's vector stores, `_vector_stores.py`,
# with `--embedding-model`).
SERVED_TOOLS = ("function", "custom", "namespace", "tool_search", "mcp", "file_search", *LEFT_OUT_TOOLS)

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class ApiError(Exception):
    """An answer with an Open Responses error body: ``{"error": {type, code, param, message}}``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.type = {
            401: "authentication_error",
            404: "invalid_request_error",
            413: "invalid_request_error",
        }.get(status, "invalid_request_error" if status < 500 else "server_error")

    def body(self) -> bytes:
        error = {"type": self.type, "code": self.code, "param": self.param, "message": str(self)}
        return json.dumps({"error": error}).encode()


def invalid(message: str, code: str = "invalid_request") -> ApiError:
    """A 400 for the core's `field: message` errors, `param` naming the field."""
    field = message.split(": ", 1)[0] if ": " in message else None
    if field is not None and (" " in field or len(field) > 200):
        field = None
    return ApiError(400, message, param=field, code=code)


class Config:
    def __init__(
        self,
        *,
        upstream: str | list[str],
        upstream_key: str | None | list[str | None] = None,
        aliases: dict[str, str] | None = None,
        api_keys: list[str] | None = None,
        upstream_timeout: float | list[float] = 300.0,
        max_upstream: int = 256,
        upstream_max: int | None | list[int | None] = None,
        max_body_bytes: int = 32 << 20,
        log_requests: bool = False,
        developer_role: str = "developer",
        mcp_timeout: float = 60.0,
        search_url: str | None = None,
        search_key: str | None = None,
        search_timeout: float = 15.0,
        embedding_model: str | None = None,
        max_file_bytes: int = 32 << 20,
    ) -> None:
        urls = [upstream] if isinstance(upstream, str) else list(upstream)
        keys = upstream_key if isinstance(upstream_key, list) else [upstream_key] * len(urls)
        if not urls:
            raise ValueError("upstream: at least one is required")
        if len(keys) != len(urls):
            raise ValueError(f"upstream_key: {len(keys)} keys for {len(urls)} upstreams (one per upstream, or none)")
        # (base URL, API key) per upstream, in routing order.
        self.upstreams: list[tuple[str, str | None]] = [(u, k or None) for u, k in zip(urls, keys, strict=True)]
        self.upstream = urls[0]
        self.upstream_key = keys[0] or None
        self.aliases = aliases or {}
        self.api_keys = api_keys or []
        # Per upstream, in --upstream order: seconds for a connect or a read, and its own cap on concurrent calls
        # (None: only max_upstream, the cap on all together). One value applies to every upstream.
        self.upstream_timeouts = per_upstream("upstream_timeout", upstream_timeout, len(urls))
        for timeout in self.upstream_timeouts:
            if timeout is None or not timeout > 0:
                raise ValueError(f"upstream_timeout: must be positive, got {timeout!r}")
        self.upstream_timeout = self.upstream_timeouts[0]
        self.upstream_max = per_upstream("upstream_max", upstream_max, len(urls))
        for cap in self.upstream_max:
            if cap is not None and cap < 1:
                raise ValueError(f"upstream_max: must be at least 1, got {cap!r}")
        self.max_upstream = max_upstream
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        if developer_role not in ("developer", "system"):
            raise ValueError(f"developer_role: expected developer or system, got {developer_role!r}")
        self.developer_role = developer_role
        if not mcp_timeout > 0:
            raise ValueError(f"mcp_timeout: must be positive, got {mcp_timeout!r}")
        self.mcp_timeout = mcp_timeout  # seconds for one MCP listing or tool call
        # `web_search`'s backend (a SearXNG JSON API); None: web_search is left out of what the model is offered.
        self.search = SearchBackend(search_url, search_key, search_timeout) if search_url else None
        # The model whose `POST /embeddings` embeds vector store chunks and file_search queries (None: the vector
        # store endpoints that need embeddings and `file_search` are refused, 400 naming the field).
        self.embedding_model = embedding_model or None
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes: must be positive, got {max_file_bytes!r}")
        self.max_file_bytes = max_file_bytes  # largest file `POST /v1/files` accepts


class Request:
    """A checked request, its turn built: what `_run` needs."""

    __slots__ = (
        "turn",
        "model",
        "upstream",
        "temperature",
        "owner",
        "prefix",
        "items",
        "background",
        "conversation",
        "conversation_input",
        "started",
        "interrupted",
        "compacted",
        "stream",
    )

    def __init__(
        self,
        turn: Turn,
        model: str,
        temperature: Any,
        owner: str,
        prefix: int,
        items: list[Any],
        background: bool = False,
    ) -> None:
        self.turn = turn
        self.model = model  # the upstream's name for it
        self.upstream: Upstream | None = None  # the upstream serving it (set by `_prepare`)
        self.temperature = temperature
        self.owner = owner
        self.prefix = prefix  # items of the chain before this turn's own input
        self.items = items  # the whole input: the chain, then this turn's input
        self.background = background
        self.conversation: str | None = None  # a conversation the response's items are appended to
        # What the conversation gets before the output, when not the turn's own input (`to_conversation`).
        self.conversation_input: list[Any] | None = None
        self.started = time.perf_counter()
        self.interrupted: str | None = None  # why its task was cancelled, when not at shutdown
        self.stream = False  # the client asked for a stream (a background run keeps its events either way)
        # context_management compacted the chain: `items` is the compacted window, stored as the response's own
        # input with no previous_response_id column, so a continuation's chain starts at the window.
        self.compacted = False

    def to_conversation(self) -> list[Any]:
        """The items a conversation gets before the response's output: the turn's own input; when
        context_management compacted the history, then the compaction item."""
        if self.conversation_input is not None:
            return list(self.conversation_input)
        return list(self.items[self.prefix :])

    def stored_previous(self, response: dict[str, Any]) -> str | None:
        """The `previous_response_id` column of the response's row (the chain a continuation walks)."""
        return None if self.compacted else response.get("previous_response_id")


def _owner(key: str) -> str:
    """What a stored row keeps of the API key that created it (never the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class App(BackgroundResponses):
    def __init__(self, config: Config, store: Store | PostgresStore) -> None:
        self.config = config
        self.store = store
        upstreams = [
            Upstream(url, key, timeout, max_calls=cap)  # type: ignore[arg-type]  # Config checked the timeouts
            for (url, key), timeout, cap in zip(
                config.upstreams, config.upstream_timeouts, config.upstream_max, strict=True
            )
        ]
        self.upstream = upstreams[0]
        self._owners = {f"Bearer {k}".encode(): _owner(k) for k in config.api_keys}
        # The caps on concurrent upstream calls: each upstream's own, then all together (--max-upstream).
        self._slots = CallSlots(config.max_upstream)
        self.router = Router(upstreams, config.aliases, self._slots)
        self._background: dict[str, BackgroundRun] = {}
        # Background responses' event logs on this server, from their start until their events are stored
        # (a little past their end): id -> (owner, log).
        self._logs: dict[str, tuple[str, EventLog]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self.vector_cache: MatrixCache | None = None  # vector stores' embeddings, made at the first search
        self.ingestions: dict[str, Ingestion] = {}  # files this server is adding to vector stores, by run id
        from ._vector_stores import INGESTIONS

        self.ingestion_slots = asyncio.Semaphore(INGESTIONS)  # files embedded at once

    # ------------------------------------------------------------------------------------------
    # ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if scope["path"] == "/v1/responses":
                from ._websocket import serve_websocket

                await serve_websocket(self, scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, receive, send)
        except ApiError as exc:
            await _answer(send, exc.status, exc.body())
        except Exception:
            logger.exception("responses-rs serve: %s %s failed", scope.get("method"), scope.get("path"))
            await _answer(send, 500, ApiError(500, "internal server error", code="server_error").body())

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/health":
            await _answer(send, 200, b'{"status":"ok"}')
            return
        owner = self._authorize(scope)
        if path == "/v1/responses":
            if method != "POST":
                raise ApiError(405, f"{method} is not allowed on /v1/responses")
            await self._create(await self._body(receive), owner, send, receive)
            return
        if path == "/v1/responses/compact":
            if method != "POST":
                raise ApiError(405, f"{method} is not allowed on /v1/responses/compact")
            from . import _compact

            await _answer(send, 200, await _compact.compact(self, await self._body(receive), owner))
            return
        if path == "/v1/responses/input_tokens" and method == "POST":
            from . import _input_tokens

            await _input_tokens.count(self, await self._body(receive), owner, send)
            return
        if path.startswith("/v1/responses/"):
            rest = path[len("/v1/responses/") :]
            response_id, _, sub = rest.partition("/")
            run = self._background.get(response_id)
            if run is not None and run.request.owner != owner:
                run = None
            if not sub and method == "GET":
                query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
                if query.get("stream", "false").lower() == "true":
                    await self._replay(response_id, owner, query, receive, send)
                    return
                if run is not None:  # under way: as it stands
                    await _answer(send, 200, run.request.turn.snapshot_json("in_progress").encode())
                    return
                stored = await self._stored(response_id, owner)
                await _answer(send, 200, stored.response.encode())
            elif sub == "cancel" and method == "POST":
                await self._cancel(response_id, owner, send)
            elif not sub and method == "DELETE":
                if run is not None and run.task is not None:
                    del self._background[response_id]
                    run.task.cancel()
                try:
                    await self.store.delete(response_id, owner)
                except NotFound:
                    raise _not_found(response_id) from None
                body = {"id": response_id, "object": "response.deleted", "deleted": True}
                await _answer(send, 200, json.dumps(body).encode())
            elif sub == "input_items" and method == "GET":
                await self._input_items(response_id, owner, scope, send)
            else:
                raise ApiError(404, f"no route {method} {path}", code="not_found")
            return
        if path == "/v1/conversations" or path.startswith("/v1/conversations/"):
            from . import _conversations

            await _conversations.route(self, scope, receive, send, owner)
            return
        if path == "/v1/prompts" or path.startswith("/v1/prompts/"):
            from . import _prompts

            await _prompts.route(self, scope, receive, send, owner)
            return
        if path == "/v1/files" or path.startswith("/v1/files/"):
            from . import _files

            await _files.route(self, scope, receive, send, owner)
            return
        if path == "/v1/vector_stores" or path.startswith("/v1/vector_stores/"):
            from . import _vector_stores

            await _vector_stores.route(self, scope, receive, send, owner)
            return
        if path in ("/v1/models", "/v1/models/") and method == "GET":
            await self._models(send)
            return
        raise ApiError(404, f"no route {method} {path}", code="not_found")

    def _authorize(self, scope: Scope) -> str:
        if not self._owners:
            return ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                owner = self._owners.get(value)
                if owner is not None:
                    return owner
                break
        raise ApiError(401, "missing or unknown API key (Authorization: Bearer KEY)", code="invalid_api_key")

    async def _body(self, receive: Receive) -> bytes:
        parts = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "the client went away before sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise ApiError(413, f"the request body is larger than {self.config.max_body_bytes} bytes")
            parts.append(chunk)
            if not message.get("more_body"):
                return b"".join(parts)

    async def read_body(
        self, receive: Receive, limit: int | None = None, what: str = "request body", param: str | None = None
    ) -> bytes:
        """The request body, at most `limit` bytes (default `--max-body-bytes`): 413 past it (naming `param`)."""
        limit = self.config.max_body_bytes if limit is None else limit
        parts = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "the client went away before sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the {what} is larger than {limit} bytes", param=param)
            parts.append(chunk)
            if not message.get("more_body"):
                return b"".join(parts)

    async def _stored(self, response_id: str, owner: str) -> Any:
        try:
            return await self.store.get(response_id, owner)
        except NotFound:
            raise _not_found(response_id) from None

    # ------------------------------------------------------------------------------------------
    # POST /v1/responses

    async def _create(self, raw: bytes, owner: str, send: Send, receive: Receive) -> None:
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"the request body is not JSON: {exc}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
        stream = body.get("stream") or False
        if not isinstance(stream, bool):
            raise ApiError(400, f"stream: must be a boolean, got {type(stream).__name__}", param="stream")
        request = await self._prepare(body, owner, stream)
        if request.background:
            await self._start_background(request, send, receive, stream)
            return
        if stream:

            async def emit(out: bytes) -> None:
                await send({"type": "http.response.body", "body": out, "more_body": True})

            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            # A client that goes away stops the response (and its upstream call): nothing is stored.
            watcher = asyncio.create_task(_on_disconnect(receive, request, asyncio.current_task()))
            try:
                await self._run(request, emit)
            except asyncio.CancelledError:
                pass  # the client went away, or shutdown: the stream has ended with response.failed
            finally:
                watcher.cancel()
                with contextlib.suppress(Exception):  # the body ends properly in every case
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        failure = await self._run(request, None)
        if failure is not None:
            status, code, message = failure
            raise ApiError(status, message, code=code)
        await _answer(send, 200, request.turn.response_json().encode())

    async def _prepare(
        self, body: dict[str, Any], owner: str, stream: bool, cache: dict[str, list[Any]] | None = None
    ) -> Request:
        """Check the request and build its turn (reading the chain it continues): ApiError when refused.
        `cache`: a WebSocket connection's store=false responses (id -> the items a continuation starts from)."""
        store = body.get("store", True)
        if not isinstance(store, bool):
            raise ApiError(400, f"store: must be a boolean, got {type(store).__name__}", param="store")
        for name in NOT_BUILT:
            if body.get(name) not in (None, False):
                raise ApiError(
                    400, f"{name}: not supported by responses-rs serve (yet)", param=name, code="unsupported_parameter"
                )
        tools = body.get("tools")
        if isinstance(tools, list):
            for i, tool in enumerate(tools):
                kind = tool.get("type") if isinstance(tool, dict) else None
                if isinstance(kind, str) and kind not in SERVED_TOOLS:
                    raise ApiError(
                        400,
                        f"tools[{i}].type: tool type '{kind}' is not served by responses-rs serve (yet)",
                        param=f"tools[{i}].type",
                        code="unsupported_parameter",
                    )
                if kind == "mcp":
                    try:
                        mcp_headers(tool)
                    except ValueError as exc:
                        raise ApiError(400, f"tools[{i}].{exc}", param=f"tools[{i}].authorization") from None
                if kind == "file_search":
                    from ._vector_stores import check_tool

                    await check_tool(self, owner, tool, i)
        from . import _compact

        compact_at = _compact.thresholds(body.get("context_management"))
        model = body.get("model")
        options = {k: v for k, v in body.items() if k not in _NAMED and k != "context_management" and v is not None}
        previous_id = body.get("previous_response_id")
        input = body.get("input")
        template: tuple[str, list[str]] | None = None
        if body.get("prompt") is not None:  # a stored prompt: rendered first (`_prompts.py`)
            from . import _prompts

            template = await _prompts.template(self, body["prompt"], owner)
        prefix = 0
        chain: list[Any] | None = None
        conversation = None
        if body.get("conversation") is not None:
            from ._conversations import as_history, conversation_id

            if previous_id is not None:
                raise ApiError(
                    400, "conversation: cannot be used together with previous_response_id", param="conversation"
                )
            conversation = conversation_id(body["conversation"])
            try:
                chain = as_history(await self.store.conversation_items(conversation, owner))
            except NotFound:
                raise ApiError(
                    404, f"Conversation with id '{conversation}' not found.", param="conversation", code="not_found"
                ) from None
            prefix = len(chain)
            input = _after(chain, input)
        try:
            if previous_id is not None:
                if not isinstance(previous_id, str) or not previous_id:
                    raise ApiError(400, "previous_response_id: must be a string", param="previous_response_id")
                # Refuse a bad field before the I/O of reading the chain.
                check_request(
                    model,
                    tools,
                    temperature=body.get("temperature"),
                    instructions=body.get("instructions"),
                    text=body.get("text"),
                    options=options,
                )
                if previous_id in self._background:
                    raise ApiError(
                        400,
                        f"previous_response_id: response '{previous_id}' is still in progress",
                        param="previous_response_id",
                    )
                cached = cache.get(previous_id) if cache is not None else None
                if cached is not None:
                    chain = list(cached)
                elif cache is not None and store is False:
                    # A store=false chain lives only in its connection: no persisted fallback.
                    raise _previous_not_found(previous_id)
                else:
                    try:
                        chain = await self.store.chain_items(previous_id, owner, with_output=True)
                    except NotFound:
                        raise _previous_not_found(previous_id) from None
                    except StillRunning:  # a background response another server on the database runs
                        raise ApiError(
                            400,
                            f"previous_response_id: response '{previous_id}' is still in progress",
                            param="previous_response_id",
                        ) from None
                prefix = len(chain)
                input = _after(chain, input)
            compacted = False
            conversation_input: list[Any] | None = None
            if compact_at and isinstance(model, str) and _compact.estimate_tokens(input) > min(compact_at):
                # Past the threshold: the whole history (chain and input) becomes the compacted window.
                compaction = await _compact.summarize(self, input, model)
                window = json.loads(compaction.input_json())
                if conversation is not None:
                    # The conversation keeps every item: this turn's input, then the compaction item (read back as
                    # a history, the conversation is then the window: `_conversations.as_history`).
                    conversation_input = [*input[prefix:], *(i for i in window if i.get("type") == "compaction")]
                input = window
                chain, prefix, compacted = None, 0, True
            turn = Turn(
                _FACTORY,
                model,
                input,
                tools,
                temperature=body.get("temperature"),
                emit_events=stream or body.get("background") is True,  # a background one keeps its events
                store=store,
                instructions=body.get("instructions"),
                text=body.get("text"),
                previous_response_id=previous_id,
                stream_inference=True,
                send_response_format=True,
                extended_tools=True,
                options=options,
                record_shape="full",
                developer_role=self.config.developer_role,
                compaction_trigger=True,
                file_search_citations=True,
            )
            if template is not None:
                turn.apply_prompt(*template)
        except InvalidRequest as exc:
            raise invalid(str(exc)) from None
        except (TypeError, ValueError) as exc:  # a field of the wrong Python type before the core saw it
            raise invalid(str(exc)) from None
        if chain is None:
            chain = [{"type": "message", "role": "user", "content": input}] if isinstance(input, str) else list(input)
        if turn.compacting:
            # The input ended with a compaction_trigger (the core checked it is the last item): the turn compacts
            # instead of answering. Its row is stored with the window's user messages as its input and no
            # previous_response_id column (as context_management's), so a continuation (a chain or a
            # WebSocket's cache: input, then the output's compaction item) starts at the window; a conversation
            # gets this turn's input without the trigger, then the compaction item.
            chain.pop()
            if conversation is None:
                chain, prefix = json.loads(turn.stored_input_json()), 0
            compacted = True
        if not isinstance(model, str):  # the core checked it
            raise invalid("model: required")
        upstream, upstream_model = await self.router.route(model)
        request = Request(
            turn, upstream_model, body.get("temperature"), owner, prefix, chain, body.get("background") is True
        )
        request.upstream = upstream
        request.conversation = conversation
        request.conversation_input = conversation_input
        request.compacted = compacted
        request.stream = stream
        return request

    async def _run(self, request: Request, emit: Emit | None) -> tuple[int, str, str] | None:
        """`_drive`, and with `--log-requests` one JSON line per response when it ends (never per chunk)."""
        if not self.config.log_requests:
            return await self._drive(request, emit)
        failure = None
        try:
            failure = await self._drive(request, emit)
            return failure
        finally:
            _log_request(request, request.stream if request.background else emit is not None, failure)

    async def _drive(self, request: Request, emit: Emit | None) -> tuple[int, str, str] | None:
        """Drive the turn to its end. Streamed (`emit` gets the SSE bytes), its events go out as they come; a
        failure ends the stream with `response.failed`. Not streamed, a failure comes back as
        (status, code, message)."""
        turn = request.turn
        mcp: McpSessions | None = None
        try:
            while True:
                action = turn.next_action()
                if emit is not None:
                    out = turn.drain_sse()
                    if out:
                        await emit(out)
                kind = action[0]
                if kind == "infer":
                    await self._infer(turn, action, request, emit)
                elif kind == "store":
                    await self._store(request, action[1], action[2])
                    turn.stored()
                elif kind == "get_tool":  # web_search's definition
                    if self.config.search is not None:
                        turn.provide_tool_def(WEB_SEARCH_DEF)
                    else:
                        turn.tool_failed("no search backend is configured")
                        turn.take_warnings()  # expected on every Codex request: not logged
                elif kind == "invoke_tool" and self.config.search is not None:
                    await _perform_search(turn, self.config.search, action)
                elif kind == "file_search":
                    await _perform_file_search(self, request.owner, turn, action)
                elif kind in ("list_mcp_tools", "invoke_mcp"):
                    if mcp is None:
                        mcp = McpSessions(self.config.mcp_timeout)
                    await _perform_mcp(turn, mcp, action)
                elif kind == "done":
                    if request.conversation is not None:
                        await self._append_to_conversation(request)
                    if emit is not None:
                        out = turn.drain_sse()
                        if out:
                            await emit(out)
                    return None
                else:  # the request's tools were checked: only client-side tools, web_search and mcp reach the core
                    raise RuntimeError(f"responses-rs serve cannot perform {kind!r}")
        except asyncio.CancelledError:
            # The server is shutting down past its grace period (or a background response was cancelled):
            # a stream still ends with its terminal event.
            turn.fail(request.interrupted or "interrupted: the server is shutting down")
            if emit is not None:
                with contextlib.suppress(Exception):
                    await emit(turn.drain_sse())
            raise
        except (UpstreamFailure, UpstreamError) as exc:
            logger.warning("responses-rs serve: response %s failed: %s", turn.response_id, exc)
            status = getattr(exc, "status", None)
            # The upstream refusing the request itself (an unknown model, a context too long) is the client's to
            # see as such; its refusing our key, or failing, is a bad gateway.
            if isinstance(status, int) and 400 <= status < 500 and status not in (401, 403, 407):
                failure = (status, "upstream_error", str(exc))
            else:
                failure = (502, "upstream_error", str(exc))
            turn.fail(str(exc))
        except InvalidRequest as exc:  # found bad only after I/O (a tool_choice naming a missing tool)
            failure = (400, "invalid_request", str(exc))
            turn.fail(str(exc), "invalid_request")
        except Exception as exc:
            logger.exception("responses-rs serve: response %s failed", turn.response_id)
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failure = (500, "server_error", message)
            turn.fail(message)
        finally:
            if mcp is not None:
                await mcp.close()
        if emit is not None:
            await emit(turn.drain_sse())
            return None
        return failure

    async def _infer(self, turn: Turn, action: Any, request: Request, emit: Emit | None) -> None:
        model, temperature, upstream = request.model, request.temperature, request.upstream or self.upstream
        _, messages_json, tools_json, _stream, response_format, params = action
        parts = [
            '{"model":',
            json.dumps(model),
            ',"messages":',
            messages_json,
            ',"stream":true,"stream_options":{"include_usage":true}',
        ]
        if tools_json is not None:
            parts += [',"tools":', tools_json]
        if temperature is not None:
            parts += [',"temperature":', json.dumps(temperature)]
        if response_format is not None:
            parts += [',"response_format":', json.dumps(response_format)]
        for key, value in params.items():
            parts += [",", json.dumps(key), ":", json.dumps(value)]
        parts.append("}")
        payload = "".join(parts).encode()
        async with self._slots(upstream):
            response = await upstream.request("POST", "/chat/completions", payload, accept="text/event-stream")
            try:
                if response.status != 200:
                    raise _upstream_status(response.status, await response.body(1 << 20))
                await _pump(turn, response, emit)
            finally:
                response.close()
        turn.end_inference()

    async def _store(self, request: Request, response_json: str, input_json: str | None) -> None:
        """Write a response: the whole row, or (a background response, whose row was written when it started)
        its new state. `input_json`: the whole input, of which the first `request.prefix` items are the chain's."""
        meta = json.loads(response_json)
        status = str(meta.get("status") or "")
        if request.background:
            await self.store.set_response(request.turn.response_id, status, response_json)
            return
        stored = json.loads(input_json) if input_json else []
        # A compacted turn's stored input is its window, whatever came before it.
        items = _stored_items(stored if request.compacted else stored[request.prefix :])
        await self.store.put(
            id=request.turn.response_id,
            owner=request.owner,
            created_at=int(meta.get("created_at") or 0),
            model=str(meta.get("model") or ""),
            status=status,
            previous_response_id=request.stored_previous(meta),
            response=response_json,
            input=json.dumps(items),
        )

    async def _append_to_conversation(self, request: Request) -> None:
        """A response that ended well adds its input items (then the compaction item, when its history was
        compacted) and its output to its conversation."""
        from ._conversations import with_ids

        response = json.loads(request.turn.response_json())
        if response.get("status") not in ("completed", "incomplete") or request.conversation is None:
            return
        items = [*request.to_conversation(), *(response.get("output") or [])]
        await self.store.add_conversation_items(request.conversation, request.owner, with_ids(items))

    # ------------------------------------------------------------------------------------------
    # The other routes

    async def _input_items(self, response_id: str, owner: str, scope: Scope, send: Send) -> None:
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, f"order: must be 'asc' or 'desc', got {order!r}", param="order")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise ApiError(400, "limit: must be an integer", param="limit") from None
        if not 1 <= limit <= 100:
            raise ApiError(400, f"limit: must be between 1 and 100, got {limit}", param="limit")
        try:
            items = await self.store.chain_items(response_id, owner, with_output=False)
        except NotFound:
            raise _not_found(response_id) from None
        if order == "desc":
            items.reverse()
        after = query.get("after")
        if after:
            ids = [item.get("id") if isinstance(item, dict) else None for item in items]
            if after not in ids:
                raise ApiError(404, f"after: no input item with id '{after}'", param="after", code="not_found")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        body = {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        }
        await _answer(send, 200, json.dumps(body).encode())

    async def _models(self, send: Send) -> None:
        """The union of the upstreams' model listings, then the aliases."""
        await _answer(send, 200, json.dumps(await self.router.models()).encode())


async def _perform_mcp(turn: Turn, mcp: McpSessions, action: Any) -> None:
    """An MCP listing or call the core asked for; a failure fails only it (the core is fed the error)."""
    try:
        if action[0] == "list_mcp_tools":
            _, label, url, headers = action
            turn.provide_mcp_tools(await mcp.list_tools(url, headers))
        else:
            _, url, headers, name, arguments = action
            turn.tool_result(await mcp.call_tool(url, headers, name, arguments))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.warning("responses-rs serve: %s failed: %s: %s", action[0], type(exc).__name__, exc)
        turn.tool_failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    turn.take_warnings()


async def _perform_file_search(app: App, owner: str, turn: Turn, action: Any) -> None:
    """A file_search call the model made; a search that fails (the query's embeddings call, a vector store deleted
    meanwhile) fails only it (the core is fed the failure; the model is told)."""
    from ._vector_stores import perform

    try:
        turn.tool_result(await perform(app, owner, action))
    except (asyncio.CancelledError, InvalidRequest):
        raise
    except Exception as exc:
        logger.warning("responses-rs serve: file_search failed: %s: %s", type(exc).__name__, exc)
        turn.tool_failed(str(exc) or type(exc).__name__)
    turn.take_warnings()


async def _perform_search(turn: Turn, search: SearchBackend, action: Any) -> None:
    """A web_search call the model made; a failing search fails only it (the core is fed the failure)."""
    try:
        turn.tool_result(await search.search(action[2], action[3]))
    except SearchFailure as exc:
        logger.warning("responses-rs serve: web_search failed: %s", exc)
        turn.tool_failed(str(exc))
    turn.take_warnings()


async def _pump(turn: Turn, response: Response, emit: Emit | None) -> None:
    """The hot path: upstream body bytes into the core, the client's SSE bytes out, one call per read."""
    feed = turn.feed_sse
    read = response.read
    while True:
        data = await read()
        if not data:
            return
        out = feed(data)
        if out and emit is not None:
            await emit(out)
        if turn.sse_done:
            # The rest of the body (the chunked terminator) is read in the background: the connection is kept.
            response.finish_later()
            return


def _upstream_status(status: int, raw: bytes) -> UpstreamFailure:
    message = raw[:500].decode("utf-8", "replace")
    try:
        error = json.loads(raw).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
    except (ValueError, AttributeError):
        pass
    return UpstreamFailure(f"the model server answered HTTP {status}: {message}", status=status, body=raw)


async def _on_disconnect(receive: Receive, request: Request, handler: asyncio.Task[Any] | None) -> None:
    """Cancel the request's handler task when its client disconnects (the body was read: `receive` now waits for
    that)."""
    message = await receive()
    if message["type"] == "http.disconnect" and handler is not None and not handler.done():
        request.interrupted = "interrupted: the client disconnected"
        handler.cancel()


request_log = logging.getLogger("responses_rs.server.requests")


def _log_request(request: Request, streamed: bool, failure: tuple[int, str, str] | None) -> None:
    try:
        response = json.loads(request.turn.response_json())
    except Exception:  # cancelled before it ended: no final response
        response = {"id": request.turn.response_id, "status": "cancelled"}
    usage = response.get("usage") or {}
    error = response.get("error") or {}
    record = {
        "event": "response",
        "id": response.get("id"),
        "status": response.get("status"),
        "model": response.get("model"),
        "stream": streamed,
        "background": request.background,
        "ms": round((time.perf_counter() - request.started) * 1000, 2),
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "error": error.get("code"),
        "http_status": failure[0] if failure else None,
    }
    request_log.info("%s", json.dumps(record))


def _stored_items(items: list[Any]) -> list[Any]:
    """Input items as stored: messages carry their type, ids (input_items pages by them) and content parts, as
    OpenAI's do (an easy input message, `{"role", "content"}`, has no type)."""
    for item in items:
        if isinstance(item, dict) and item.get("type", "message") == "message":
            item["type"] = "message"
            if not item.get("id"):
                item["id"] = "msg_" + uuid.uuid4().hex
            if isinstance(item.get("content"), str):
                kind = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": kind, "text": item["content"]}]
    return items


def _after(chain: list[Any], input: Any) -> list[Any]:
    """The earlier items (a conversation's, a previous response's chain), then the request's `input`."""
    if isinstance(input, str):
        chain.append({"type": "message", "role": "user", "content": input})
    elif isinstance(input, list):
        chain.extend(input)
    else:
        raise ApiError(400, "input: must be a string or a list of items", param="input")
    return chain


def _previous_not_found(previous_id: str) -> ApiError:
    return ApiError(
        404,
        f"Previous response with id '{previous_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{response_id}' not found.", code="not_found")


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON_HEADERS})
    await send({"type": "http.response.body", "body": body, "more_body": False})
