"""The host-neutral half of the driver: everything between the Rust core and a host's collaborators
that does not depend on which host (llama-stack 0.2.x, OGX) is serving.

The core (`responses_rs._core.Turn`) never awaits anything. It says what I/O it needs next; a
`TurnDriver` performs it on the host's collaborators, in the caller's own task, and feeds the result
back. A host contract is a subclass that supplies its classes and collaborators through a few hooks:

- `_event_classes`: the event `type` -> pydantic class map the core builds stream events with;
- `_response_object(json)`: the host's response class, validated from the core's response JSON;
- `_prepend_previous_response(input, previous_response_id)`: the stored chain, read from the host's store;
- `_infer(action, model, temperature)`: one chat completion call on the host's inference API;
- `_store(response_id, response_json, input_json)`: write the finished response (or `_store_turn(turn, ...)`,
  which also sees `turn.history_items`, the leading input items that came from the previous response);
- `_file_search(...)`: search vector stores (a host without one may leave it unimplemented);
- `_moderate(text)`: guardrails' moderation call (see `responses_rs._guardrails`);
- the contract switches below (`_stream_inference`, `_record_shape`, ...);
- for background mode, `_background_insert`, `_background_status`, `_background_update` (its record).

This module imports no host: llama-stack's contract is `responses_rs._driver`, OGX's `responses_rs.ogx`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import _mcp
from ._core import EventFactory, InvalidRequest, Turn, check_request, is_context_length_error, rejected_response

logger = logging.getLogger("responses_rs")

_DEFAULT_TEXT = {"format": {"type": "text"}}

_factories: dict[int, tuple[dict[str, Any], EventFactory]] = {}


def event_factory(classes: dict[str, Any]) -> EventFactory:
    """The core's event factory for one host's event classes (built once per class map)."""
    known = _factories.get(id(classes))
    if known is None or known[0] is not classes:
        known = (classes, EventFactory(classes))
        _factories[id(classes)] = known
    return known[1]


def _history_items(fresh: Any, merged: Any) -> int:
    """How many leading items of `merged` (what `_prepend_previous_response` returned for the request's own
    input `fresh`) came from the previous response."""
    if not isinstance(merged, list):
        return 0
    if merged is not fresh and hasattr(fresh, "history_items"):  # a host's input that already holds the chain
        return int(fresh.history_items)
    return max(0, len(merged) - (1 if isinstance(fresh, str) else len(fresh or ())))


class PreviousResponseNotFound(ValueError):
    """`previous_response_id` names no stored response (OpenAI's code `previous_response_not_found`)."""


_accepts_cache: dict[tuple[Any, str, bool], bool] = {}


def _accepts(method: Any, name: str, *, strict: bool = False) -> bool:
    """Does the collaborator's method take the keyword `name`? (Read once per function and name.)
    `strict`: a `**kwargs` catch-all does not count (a mock takes anything)."""
    func = getattr(method, "__func__", method)
    key = (func, name, strict)
    known = _accepts_cache.get(key)
    if known is None:
        try:
            params = inspect.signature(method).parameters
            known = name in params or (not strict and any(p.kind is p.VAR_KEYWORD for p in params.values()))
        except (TypeError, ValueError):
            known = False
        _accepts_cache[key] = known
    return known


class TurnDriver:
    """Drives one `Turn` per request on a host's collaborators. Subclassed once per host contract."""

    # The host's collaborators (set by the contract's constructor).
    inference_api: Any = None
    tool_groups_api: Any = None
    tool_runtime_api: Any = None
    vector_io_api: Any = None
    # Contract switches, set by the subclasses.
    _stream_inference = False
    _send_response_format = False
    _extended_tools = False
    # The host's server has already answered 200 when it awaits `create_openai_response` for a stream
    # (llama-stack 0.2.x): a request that fails up front is then a stream ending in `response.failed`.
    _errors_in_stream = True
    _record_shape = "llama-stack-0.2.12"
    # An inference call refused for a too long context (its error's `body` says so) is made again
    # without the conversation's oldest turn, as OGX's builtin does (the core decides; see
    # `Turn.truncate_and_retry`). Hosts that prime the first call (`prime=True`) leave it off.
    _truncate_on_context_length = False
    # OGX's file_search: a fixed `file_search` tool, `file_citation` annotations from the model's
    # `<|file-id|>` markers, `results` shown only when `include` asks (TurnConfig.file_search_citations).
    _file_search_citations = False
    # The event `type` -> class map the core builds this host's events with.
    _event_classes: dict[str, Any] = {}
    _factory: EventFactory
    # Split a leading `<think>...</think>` out of the model's text into a reasoning item, for servers
    # that stream a reasoning model's thoughts inline. Off by default; RESPONSES_RS_SPLIT_THINK=1 turns
    # it on for every instance, or set the attribute on one.
    split_think_tags = os.environ.get("RESPONSES_RS_SPLIT_THINK", "") not in ("", "0")

    # ------------------------------------------------------------------------------------------
    # Host hooks

    def _response_object(self, response_json: str) -> Any:
        """The host's response object, validated from the core's response JSON."""
        raise NotImplementedError

    async def _prepend_previous_response(
        self, input: str | list[Any], previous_response_id: str | None = None
    ) -> str | list[Any]:
        """The previous response's input items, then its output, then the new input."""
        raise NotImplementedError

    async def _infer(self, action: Any, model: str, temperature: float | None) -> Any:
        """One chat completion call: `action` is ("infer", messages_json, tools_json, stream,
        response_format, chat_params)."""
        raise NotImplementedError

    async def _store(self, response_id: str, response_json: str, input_json: str) -> Any:
        """Write the finished response; return the response object written, if one was built."""
        raise NotImplementedError

    async def _store_turn(self, turn: Turn, response_json: str, input_json: str) -> Any:
        """The store action of `turn`: `_store` by default. A host that also needs to know which leading
        input items came from the previous response (`turn.history_items`), or keeps more per response (OGX: the
        conversation's items and chat history), overrides this one."""
        return await self._store(turn.response_id, response_json, input_json)

    async def _file_search(
        self,
        query: str,
        vector_store_ids: list[str],
        filters: Any,
        max_num_results: int | None,
        ranking_options: Any,
    ) -> list[Any]:
        raise NotImplementedError("this host has no file search")

    async def _moderate(self, text: str) -> str | None:
        """Guardrails: check `text` with the host's moderation service; the violation message, or None."""
        raise NotImplementedError("this host has no moderation service")

    async def _list_mcp_tools(self, endpoint: str, headers: dict[str, Any]) -> Any:
        """An MCP server's tool listing (default: llama-stack's MCP client helpers)."""
        return await _mcp.list_mcp_tools(endpoint=endpoint, headers=headers)

    async def _invoke_mcp_tool(self, endpoint: str, headers: dict[str, Any], name: str, arguments: Any) -> Any:
        """One MCP tool call (default: llama-stack's MCP client helpers)."""
        return await _mcp.invoke_mcp_tool(endpoint=endpoint, headers=headers, tool_name=name, kwargs=arguments)

    async def _rejected_stream(
        self, model: Any, code: str, message: str, previous_response_id: str | None = None
    ) -> AsyncIterator[Any]:
        """A request that failed before anything started, for hosts whose server has already answered 200
        when it awaits the provider: `response.created`, then `response.failed` carrying the error code."""
        failed = json.loads(
            rejected_response(model if isinstance(model, str) else "", code, message, previous_response_id)
        )
        created = self._response_object(json.dumps({**failed, "status": "in_progress", "error": None}))
        yield self._event_classes["response.created"](response=created, sequence_number=0)
        yield self._event_classes["response.failed"](
            response=self._response_object(json.dumps(failed)), sequence_number=1
        )

    # ------------------------------------------------------------------------------------------
    # Shared machinery

    async def _create(
        self,
        input: Any,
        model: str,
        *,
        prime: bool,
        instructions: str | None,
        previous_response_id: str | None,
        store: bool | None,
        stream: bool,
        temperature: float | None,
        text: Any,
        tools: Any,
        max_infer_iters: int | None,
        options: dict[str, Any] | None = None,
        prepare: Callable[[Turn], None] | None = None,
        guardrails: bool = False,
        background: bool = False,
    ) -> Any:
        """`prepare(turn)` adds host context to the new turn before it starts (conversation history, a
        prompt template); `guardrails` checks input and output with `_moderate` (see `_guarded`)."""
        try:
            if previous_response_id:
                # Refuse a bad field before the I/O of reading the previous response.
                check_request(
                    model, tools, temperature=temperature, instructions=instructions, text=text, options=options
                )
            fresh = input
            input = await self._prepend_previous_response(input, previous_response_id)
            turn = self._new_turn(
                input,
                model,
                # Guardrails read the events (text deltas) even when the request is not streamed.
                stream or guardrails,
                store,
                instructions,
                previous_response_id,
                temperature,
                text,
                tools,
                max_infer_iters,
                options,
                history_items=_history_items(fresh, input) if previous_response_id else 0,
            )
            if prepare is not None:
                prepare(turn)
        except ValueError as exc:
            if stream and self._errors_in_stream:
                code = "previous_response_not_found" if isinstance(exc, PreviousResponseNotFound) else "invalid_request"
                return self._rejected_stream(model, code, str(exc), previous_response_id)
            raise
        if background:
            return await self._start_background(turn, model, temperature, guardrails=guardrails)
        if guardrails:
            if stream:
                return self._guarded(turn, model, temperature)
            async for _ in self._guarded(turn, model, temperature, raise_errors=True):
                pass
            return self._response_object(turn.response_json())
        if not stream:
            return await self._complete(turn, model, temperature)
        primed = await self._prime(turn, model, temperature) if prime else None
        return self._stream(turn, model, temperature, primed)

    def _new_turn(
        self,
        input: Any,
        model: Any,
        stream: bool,
        store: bool | None,
        instructions: Any,
        previous_response_id: str | None,
        temperature: Any,
        text: Any,
        tools: Any,
        max_infer_iters: int | None,
        options: dict[str, Any] | None,
        history_items: int = 0,
    ) -> Turn:
        # Every field is checked by the core, which names the field it refuses (ValueError).
        return Turn(
            self._factory,
            model,
            input,
            tools,
            temperature=temperature,
            emit_events=stream,
            # llama-stack stores only when `store` is truthy (None included as "no").
            store=bool(store),
            instructions=instructions,
            # 0.2.12 always records a text format (its response object's default); sending it keeps
            # pydantic from deep-copying that default on every validation, a third of a request's time.
            text=text if text is not None or not self._send_response_format else _DEFAULT_TEXT,
            previous_response_id=previous_response_id,
            max_rounds=max_infer_iters or 10,
            stream_inference=stream or self._stream_inference,
            send_response_format=self._send_response_format,
            extended_tools=self._extended_tools,
            options=options,
            record_shape=self._record_shape,
            split_think=self.split_think_tags,
            file_search_citations=self._file_search_citations,
            history_items=history_items,
        )

    async def _complete(self, turn: Turn, model: str, temperature: float | None) -> Any:
        """A request that is not streamed: no events, no generator, exceptions pass through unchanged."""
        while True:
            action = turn.next_action()
            kind = action[0]
            if kind == "infer":
                try:
                    result = await self._infer(action, model, temperature)
                    if action[3]:
                        feed = turn.feed
                        async for chunk in result:
                            feed(chunk)
                    else:
                        turn.feed_completion(result)
                except Exception as exc:
                    if self._context_too_long(turn, exc):
                        continue
                    raise
                turn.end_inference()
            elif kind == "store":
                await self._store_turn(turn, action[1], action[2])
                turn.stored()
            elif kind == "done":
                return self._response_object(turn.response_json())
            else:
                await self._perform(turn, action)

    async def _stream(
        self,
        turn: Turn,
        model: str,
        temperature: float | None,
        primed: tuple[Any, Any] | None = None,
    ) -> AsyncIterator[Any]:
        """A streamed request: yield the core's events as they happen.

        A collaborator's exception ends the stream with `response.failed` (every open item closed);
        nothing is stored then. Everything per chunk happens in this one generator, because each
        generator layer costs time on every chunk.
        """
        try:
            while True:
                if primed is not None:
                    action, result = primed
                    primed = None
                    if isinstance(result, BaseException):
                        raise result
                else:
                    action, result = turn.next_action(), None
                for event in turn.drain():
                    yield event
                kind = action[0]
                if kind == "infer":
                    try:
                        if result is None:
                            result = await self._infer(action, model, temperature)
                        if action[3]:  # a chunk stream: the per-chunk hot path
                            feed = turn.feed
                            async for chunk in result:
                                event = feed(chunk)
                                if event is None:
                                    continue
                                if type(event) is list:
                                    for e in event:
                                        yield e
                                else:
                                    yield event
                        else:
                            turn.feed_completion(result)
                    except Exception as exc:
                        if self._context_too_long(turn, exc):
                            continue
                        raise
                    turn.end_inference()
                elif kind == "done":
                    for event in turn.drain():
                        yield event
                    return
                else:
                    await self._perform(turn, action)
        except Exception as exc:
            if isinstance(exc, InvalidRequest):  # found bad only after I/O (a tool_choice naming a missing tool)
                turn.fail(str(exc), "invalid_request")
            else:
                logger.exception("responses-rs: response %s failed", turn.response_id)
                turn.fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            for event in turn.drain():
                yield event

    def _guarded(
        self, turn: Turn, model: str, temperature: float | None, *, raise_errors: bool = False
    ) -> AsyncIterator[Any]:
        """A response under guardrails (see `responses_rs._guardrails`)."""
        from ._guardrails import guarded

        return guarded(self, turn, model, temperature, raise_errors=raise_errors)

    def _context_too_long(self, turn: Turn, exc: Exception) -> bool:
        """Inference raised: if the host truncates and the error says the context is too long, the core
        drops the oldest turn and asks for the call again (or, with nothing left to drop, fails the
        turn with `context_length_exceeded`). False: an ordinary failure."""
        if not self._truncate_on_context_length:
            return False
        body = getattr(exc, "body", None)
        if not isinstance(body, dict) or not is_context_length_error(body):
            return False
        retrying = turn.truncate_and_retry()
        if retrying is None:  # the call had already produced output
            return False
        logger.warning(
            "responses-rs: response %s: the context is too long for the model; %s",
            turn.response_id,
            "retrying without the oldest turn" if retrying else "nothing more to drop",
        )
        return True

    async def _prime(self, turn: Turn, model: str, temperature: float | None) -> tuple[Any, Any]:
        """Perform the lookups and the first inference call now; their events stay queued in the turn.
        A failure is handed to the stream, which ends in `response.failed` (the host's server has
        already answered 200 when it iterates)."""
        try:
            while True:
                action = turn.next_action()
                if action[0] == "infer":
                    return action, await self._infer(action, model, temperature)
                await self._perform(turn, action)
        except Exception as exc:
            return ("prime",), exc

    async def _perform(self, turn: Turn, action: Any) -> None:
        """Every action but inference: do the I/O and feed the result back. A tool that raises fails
        only its own call (or, for a lookup, is left out of what the model is offered); the store's
        exceptions pass through and fail the response."""
        if action[0] == "store":
            await self._store_turn(turn, action[1], action[2])
            turn.stored()
            return
        try:
            await self._perform_tool(turn, action)
        except Exception as exc:
            logger.warning("responses-rs: %s failed: %s: %s", action[0], type(exc).__name__, exc)
            turn.tool_failed(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        for warning in turn.take_warnings():
            logger.warning("responses-rs: %s", warning)

    async def _perform_tool(self, turn: Turn, action: Any) -> None:
        kind = action[0]
        if kind == "get_tool":
            turn.provide_tool_def(await self.tool_groups_api.get_tool(action[1]))
        elif kind == "invoke_tool":
            turn.tool_result(await self.tool_runtime_api.invoke_tool(tool_name=action[1], kwargs=action[2]))
        elif kind == "list_mcp_tools":
            _, _label, endpoint, headers = action
            turn.provide_mcp_tools(await self._list_mcp_tools(endpoint, headers or {}))
        elif kind == "invoke_mcp":
            _, endpoint, headers, name, arguments = action
            headers = headers or {}
            result = await self._invoke_mcp_tool(endpoint, headers, name, arguments)
            turn.tool_result(result)
        elif kind == "file_search":
            turn.tool_result(await self._file_search(*action[1:]))
        else:  # pragma: no cover - the core and this driver are built together
            raise RuntimeError(f"responses-rs: unknown action {kind!r}")

    async def _store(self, response_id: str, response_json: str, input_json: str) -> Any:
        """Write the finished response; return the response object written, if one was built."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------
    # Background mode (`background: true`). Create answers at once with the `queued` record; the turn
    # runs in a task of its own, and its stored record goes queued -> in_progress -> completed /
    # incomplete / failed, or cancelled. Nothing else is written while it runs. A host serves it with
    # three hooks on its store (below) and cancels with `_background_lock` and `_stop_background`.

    # At most this many run at once (read at the first run); more wait `queued`, at most
    # `background_max_queued` of them (OGX's builtin: 10 workers, a queue of 100).
    background_max_running = 10
    background_max_queued = 100
    # A background response still running after this many seconds fails (OGX's builtin: 300).
    background_timeout = 300.0
    # How often a running response re-reads its record: cancelled (or deleted) through another
    # server on the same store, it stops within this many seconds.
    background_poll_interval = 1.0
    # How long shutdown() waits for its running responses to record that they were stopped.
    background_shutdown_grace = 5.0

    async def _background_insert(self, turn: Turn, response_json: str, input_json: str) -> Any:
        """Store the `queued` record (response and input, as `_store_turn` gets them); return the response
        object for the caller."""
        raise NotImplementedError("background: this host does not run background responses")

    async def _background_status(self, response_id: str) -> str | None:
        """The stored record's status, or None when there is no record (deleted)."""
        raise NotImplementedError

    async def _background_update(self, response_id: str, response_json: str) -> None:
        """Replace the stored record's response object; its input stays."""
        raise NotImplementedError

    async def _background_ending(self, turn: Turn, response_json: str, input_json: str) -> None:
        """Just before the record of a response that ended (completed or incomplete) is written, unless it
        was cancelled: a failure here fails the response instead."""
        return None

    def _background_scope(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """What a background run holds open while it runs (a request's own resources), if anything."""
        return contextlib.nullcontext()

    def _background_runs(self) -> BackgroundRuns:
        runs: BackgroundRuns | None = getattr(self, "_background_state", None)
        if runs is None:
            runs = BackgroundRuns()
            self._background_state = runs
        return runs

    def _background_lock(self, response_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around every status change of one background response in this process."""
        return self._background_runs().lock(response_id)

    def _stop_background(self, response_id: str, reason: str = "cancelled") -> bool:
        """Stop the response's run in this process, if it has one (its record is the caller's)."""
        run = self._background_runs().runs.get(response_id)
        if run is None:
            return False
        run.stop_reason = reason
        run.task.cancel()
        return True

    async def _shutdown_background(self) -> None:
        """Stop every background response of this process; each one still queued or running is
        recorded `failed` (the client polling it learns it will not finish)."""
        runs: BackgroundRuns | None = getattr(self, "_background_state", None)
        if runs is None or not runs.runs:
            return
        stopped = list(runs.runs.values())
        for response_id in list(runs.runs):
            self._stop_background(response_id, "shutdown")
        await asyncio.wait([run.task for run in stopped], timeout=self.background_shutdown_grace)
        for run in stopped:
            if not run.entered:  # cancelled before its first step: its coroutine never ran to say so
                try:
                    await self._background_end(run.turn, _SHUT_DOWN, "server_error")
                except Exception:
                    logger.exception(
                        "responses-rs: background response %s: recording the shutdown", run.turn.response_id
                    )

    async def _start_background(
        self, turn: Turn, model: str, temperature: float | None, *, guardrails: bool = False
    ) -> Any:
        """`guardrails`: the run checks input and output as a foreground response does (`_guarded`)."""
        runs = self._background_runs()
        if runs.waiting() >= self.background_max_queued:
            raise ValueError(f"Background response queue is full (max {self.background_max_queued}). Try again later.")
        queued = await self._background_insert(turn, turn.snapshot_json("queued"), turn.stored_input_json())
        # The task inherits this request's context (the caller's identity, for the store's access checks).
        run = _BackgroundRun(turn)
        run.guardrails = guardrails
        runs.add(run, asyncio.create_task(self._run_background(run, model, temperature)))
        return queued

    async def _background_write(
        self, response_id: str, expected: tuple[str, ...], response_json: str, before: Any = None
    ) -> bool:
        """Write the record if its stored status is one of `expected` (not cancelled, not deleted); `before()`
        is awaited first, under the same lock (what must be done before a poller sees the response ended)."""
        async with self._background_lock(response_id):
            if await self._background_status(response_id) not in expected:
                return False
            if before is not None:
                await before()
            await self._background_update(response_id, response_json)
            return True

    async def _background_end(self, turn: Turn, message: str, code: str) -> None:
        """Record a background response that will not finish as `failed` (items so far closed)."""
        turn.fail(message, code)
        await self._background_write(turn.response_id, ("queued", "in_progress"), turn.response_json())

    async def _run_background(self, run: _BackgroundRun, model: str, temperature: float | None) -> None:
        run.entered = True
        turn = run.turn
        response_id = turn.response_id
        try:
            async with self._background_runs().slots(self.background_max_running):
                run.running = True
                started = await self._background_write(response_id, ("queued",), turn.snapshot_json("in_progress"))
                if started:  # not cancelled (nor deleted) while queued
                    await self._supervise_background(run, turn, model, temperature)
        except asyncio.CancelledError:
            # Cancelled: the record says so already. Shut down: say it will not finish.
            if run.stop_reason == "shutdown":
                try:
                    await self._background_end(turn, _SHUT_DOWN, "server_error")
                except Exception:
                    logger.exception("responses-rs: background response %s: recording the shutdown", response_id)
        except Exception:
            logger.exception("responses-rs: background response %s", response_id)

    async def _supervise_background(
        self, run: _BackgroundRun, turn: Turn, model: str, temperature: float | None
    ) -> None:
        """Drive the turn in a child task; meanwhile re-read the record every `background_poll_interval`
        (a cancel through another server stops it) and enforce `background_timeout`."""
        response_id = turn.response_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.background_timeout
        drive = asyncio.create_task(self._drive_background(turn, model, temperature, guardrails=run.guardrails))
        try:
            while True:
                left = deadline - loop.time()
                done, _ = await asyncio.wait({drive}, timeout=max(0.0, min(self.background_poll_interval, left)))
                if done:
                    drive.result()
                    return
                if loop.time() >= deadline:
                    await _stop_task(drive)
                    message = f"Background response timed out after {self.background_timeout:g}s"
                    await self._background_end(turn, message, "processing_error")
                    return
                try:
                    status = await self._background_status(response_id)
                except Exception as exc:
                    logger.warning("responses-rs: background response %s: reading its status: %s", response_id, exc)
                    continue
                if status is None or status == "cancelled":
                    run.stop_reason = status or "deleted"
                    logger.info("responses-rs: background response %s stopped: %s", response_id, run.stop_reason)
                    await _stop_task(drive)
                    return
        finally:
            await _stop_task(drive)

    async def _drive_background(
        self, turn: Turn, model: str, temperature: float | None, *, guardrails: bool = False
    ) -> None:
        """The turn, as `_complete` drives it (under guardrails: as `_guarded` does); the record is written
        once, when it ends. A failure ends it `failed`, recorded (the client polls for it)."""
        response_id = turn.response_id
        try:
            async with self._background_scope():
                if guardrails:
                    await self._drive_background_guarded(turn, model, temperature)
                else:
                    await self._drive_background_turn(turn, model, temperature)
        except Exception as exc:
            if isinstance(exc, InvalidRequest):
                turn.fail(str(exc), "invalid_request")
            else:
                logger.exception("responses-rs: background response %s failed", response_id)
                turn.fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            await self._background_write(response_id, ("in_progress",), turn.response_json())

    async def _drive_background_turn(self, turn: Turn, model: str, temperature: float | None) -> None:
        """The turn, as `_complete` drives it; the record is written once, when it ends."""
        while True:
            action = turn.next_action()
            kind = action[0]
            if kind == "infer":
                result = await self._infer(action, model, temperature)
                if action[3]:
                    feed = turn.feed
                    try:
                        async for chunk in result:
                            feed(chunk)
                    finally:
                        aclose = getattr(result, "aclose", None)
                        if aclose is not None:
                            await aclose()  # a cancelled run closes its inference stream now
                else:
                    turn.feed_completion(result)
                turn.end_inference()
            elif kind == "store":
                await self._background_perform(turn, action)
            elif kind == "done":
                return
            else:
                await self._perform(turn, action)

    async def _drive_background_guarded(self, turn: Turn, model: str, temperature: float | None) -> None:
        """The turn under guardrails, as a foreground one (`responses_rs._guardrails`): the input checked
        before inference, the output during and after each round; a violation completes the response with
        its refusal message. Its events are not sent anywhere; its record is written as `_drive_background_turn`
        writes it."""
        from ._guardrails import guarded

        async for _ in guarded(self, turn, model, temperature, raise_errors=True, perform=self._background_perform):
            pass

    async def _background_perform(self, turn: Turn, action: Any) -> None:
        """An action of a background run other than inference: the store writes its ended record (unless it
        was cancelled or deleted meanwhile), everything else as `_perform`."""
        if action[0] != "store":
            await self._perform(turn, action)
            return
        _, response_json, input_json = action
        await self._background_write(
            turn.response_id,
            ("in_progress",),
            response_json,
            before=functools.partial(self._background_ending, turn, response_json, input_json),
        )
        turn.stored()


_SHUT_DOWN = "The server shut down before the background response finished"


class _BackgroundRun:
    """One background response queued or running in this process."""

    __slots__ = ("entered", "guardrails", "running", "stop_reason", "task", "turn")

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.task: asyncio.Task[None]
        self.entered = False  # its task has begun (a task cancelled before that never runs its code)
        self.running = False  # it holds a slot: no longer queued
        self.stop_reason: str | None = None
        self.guardrails = False  # checked by the host's moderation service (`_guarded`)


class BackgroundRuns:
    """A driver's background responses in this process: their tasks, the slots that bound how many
    run at once, and one lock per response id for its status changes."""

    def __init__(self) -> None:
        self.runs: dict[str, _BackgroundRun] = {}
        self._slots: asyncio.Semaphore | None = None
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    def slots(self, max_running: int) -> asyncio.Semaphore:
        """The slots a run holds while it runs (`max_running` of them, fixed at the first run)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(max_running)
        return self._slots

    def add(self, run: _BackgroundRun, task: asyncio.Task[None]) -> None:
        response_id = run.turn.response_id
        run.task = task
        self.runs[response_id] = run
        task.add_done_callback(lambda _: self.runs.pop(response_id, None))

    def waiting(self) -> int:
        """How many are queued (waiting for a slot)."""
        return sum(1 for run in self.runs.values() if not run.running)

    @contextlib.asynccontextmanager
    async def lock(self, response_id: str) -> AsyncIterator[None]:
        entry = self._locks.get(response_id)
        if entry is None:
            entry = self._locks[response_id] = (asyncio.Lock(), [0])
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if entry[1][0] == 0:
                del self._locks[response_id]


async def _stop_task(task: asyncio.Task[Any]) -> None:
    """Cancel a child task and wait until it has ended (its exception, if any, is logged by it)."""
    if task.done():
        if not task.cancelled():
            task.exception()
        return
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()
