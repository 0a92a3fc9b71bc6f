"""`OpenAIResponsesImpl`: the async driver around the Rust core.

The core (`responses_rs._core.Turn`) never awaits anything. It says what I/O it needs next; this
module performs it on the collaborators llama-stack handed in, in the caller's own task, and feeds the
result back. So contextvars, cancellation and exceptions behave exactly as in plain Python code.

`OpenAIResponsesImpl(...)` returns an instance of one subclass per llama-stack contract, chosen by the
constructor's arguments, because the two contracts order `create_openai_response`'s positional
parameters differently (llama-stack's `agents.py` delegates positionally) and store differently.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from . import _compat, _mcp
from ._core import EventFactory, InvalidRequest, Turn, check_request, rejected_response
from .events import EVENT_CLASSES

logger = logging.getLogger("responses_rs")

OPENAI_RESPONSES_PREFIX = "openai_responses:"

_PARAMS_027 = ("persistence_store", "inference_api", "tool_groups_api", "tool_runtime_api")
_PARAMS_0212 = ("inference_api", "tool_groups_api", "tool_runtime_api", "responses_store", "vector_io_api")

_DEFAULT_TEXT = {"format": {"type": "text"}}

_factory: EventFactory | None = None


def _event_factory() -> EventFactory:
    global _factory
    if _factory is None:
        _factory = EventFactory(EVENT_CLASSES)
    return _factory


def _bind_constructor(params: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if len(args) > len(params):
        raise TypeError(f"OpenAIResponsesImpl() takes {len(params)} positional arguments, got {len(args)}")
    bound = dict(zip(params, args, strict=False))
    for name, value in kwargs.items():
        if name not in params or name in bound:
            raise TypeError(f"OpenAIResponsesImpl() got an unexpected or repeated argument '{name}'")
        bound[name] = value
    missing = [p for p in params if p not in bound and p != "vector_io_api"]
    if missing:
        raise TypeError(f"OpenAIResponsesImpl() missing required arguments: {', '.join(missing)}")
    return bound


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


async def _rejected_stream(
    model: Any, code: str, message: str, previous_response_id: str | None = None
) -> AsyncIterator[Any]:
    """A request that failed before anything started, for hosts whose server has already answered 200
    when it awaits the provider: `response.created`, then `response.failed` carrying the error code."""
    failed = json.loads(rejected_response(model if isinstance(model, str) else "", code, message, previous_response_id))
    created = _compat.OpenAIResponseObject.model_validate({**failed, "status": "in_progress", "error": None})
    failed = _compat.OpenAIResponseObject.model_validate(failed)
    yield EVENT_CLASSES["response.created"](response=created, sequence_number=0)
    yield EVENT_CLASSES["response.failed"](response=failed, sequence_number=1)


class OpenAIResponsesImpl:
    """Drop-in for llama-stack's `OpenAIResponsesImpl` (meta-reference agents provider).

    The contract is chosen by the constructor's arguments:
    - 0.2.7:  `OpenAIResponsesImpl(persistence_store, inference_api, tool_groups_api, tool_runtime_api)`
    - 0.2.12: `OpenAIResponsesImpl(inference_api, tool_groups_api, tool_runtime_api, responses_store,
      vector_io_api)`
    """

    persistence_store: Any = None
    responses_store: Any = None
    vector_io_api: Any = None
    # Contract switches, set by the subclasses.
    _stream_inference = False
    _send_response_format = False
    _extended_tools = False
    # The host's server has already answered 200 when it awaits `create_openai_response` for a stream
    # (llama-stack 0.2.x): a request that fails up front is then a stream ending in `response.failed`.
    _errors_in_stream = True
    _record_shape = "llama-stack-0.2.12"
    # Split a leading `<think>...</think>` out of the model's text into a reasoning item, for servers
    # that stream a reasoning model's thoughts inline. Off by default; RESPONSES_RS_SPLIT_THINK=1 turns
    # it on for every instance, or set the attribute on one.
    split_think_tags = os.environ.get("RESPONSES_RS_SPLIT_THINK", "") not in ("", "0")

    def __new__(cls, *args: Any, **kwargs: Any) -> OpenAIResponsesImpl:
        if cls is OpenAIResponsesImpl:
            first = args[0] if args else None
            v027 = "persistence_store" in kwargs or (first is not None and not hasattr(first, "openai_chat_completion"))
            cls = _Impl027 if v027 else _Impl0212
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = _bind_constructor(self._constructor_params, args, kwargs)
        for name, value in bound.items():
            setattr(self, name, value)
        self._factory = _event_factory()

    _constructor_params: tuple[str, ...] = ()

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
    ) -> Any:
        try:
            if previous_response_id:
                # Refuse a bad field before the I/O of reading the previous response.
                check_request(
                    model, tools, temperature=temperature, instructions=instructions, text=text, options=options
                )
            input = await self._prepend_previous_response(input, previous_response_id)
            turn = self._new_turn(
                input,
                model,
                stream,
                store,
                instructions,
                previous_response_id,
                temperature,
                text,
                tools,
                max_infer_iters,
                options,
            )
        except ValueError as exc:
            if stream and self._errors_in_stream:
                code = "previous_response_not_found" if isinstance(exc, PreviousResponseNotFound) else "invalid_request"
                return _rejected_stream(model, code, str(exc), previous_response_id)
            raise
        if not stream:
            return await self._complete(turn, model, temperature, instructions)
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
        )

    @staticmethod
    def _response_object(response_json: str, instructions: str | None = None) -> Any:
        # A subclass of llama-stack's class that carries the whole OpenAI response object.
        return _compat.OpenAIResponseObject.model_validate_json(response_json)

    async def _complete(
        self, turn: Turn, model: str, temperature: float | None, instructions: str | None = None
    ) -> Any:
        """A request that is not streamed: no events, no generator, exceptions pass through unchanged."""
        while True:
            action = turn.next_action()
            kind = action[0]
            if kind == "infer":
                result = await self._infer(action, model, temperature)
                if action[3]:
                    feed = turn.feed
                    async for chunk in result:
                        feed(chunk)
                else:
                    turn.feed_completion(result)
                turn.end_inference()
            elif kind == "store":
                await self._store(turn.response_id, action[1], action[2])
                turn.stored()
            elif kind == "done":
                return self._response_object(turn.response_json(), instructions)
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

    async def _infer(self, action: Any, model: str, temperature: float | None) -> Any:
        _, messages_json, tools_json, stream, response_format, params = action
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": _compat.MESSAGES.validate_json(messages_json),
            "tools": json.loads(tools_json) if tools_json is not None else None,
            "stream": stream,
            "temperature": temperature,
        }
        if response_format is not None and _compat.RESPONSE_FORMAT is not None:
            kwargs["response_format"] = _compat.RESPONSE_FORMAT.validate_python(response_format)
        method = self.inference_api.openai_chat_completion
        if stream and _accepts(method, "stream_options"):
            kwargs["stream_options"] = {"include_usage": True}
        for key, value in params.items():
            # Only what the host's inference API takes (llama-stack 0.2.x has no reasoning_effort).
            if _accepts(method, key, strict=True):
                kwargs[key] = value
        return await self.inference_api.openai_chat_completion(**kwargs)

    async def _perform(self, turn: Turn, action: Any) -> None:
        """Every action but inference: do the I/O and feed the result back. A tool that raises fails
        only its own call (or, for a lookup, is left out of what the model is offered); the store's
        exceptions pass through and fail the response."""
        if action[0] == "store":
            await self._store(turn.response_id, action[1], action[2])
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
            turn.provide_mcp_tools(await _mcp.list_mcp_tools(endpoint=endpoint, headers=headers or {}))
        elif kind == "invoke_mcp":
            _, endpoint, headers, name, arguments = action
            headers = headers or {}
            result = await _mcp.invoke_mcp_tool(endpoint=endpoint, headers=headers, tool_name=name, kwargs=arguments)
            turn.tool_result(result)
        elif kind == "file_search":
            turn.tool_result(await self._file_search(*action[1:]))
        else:  # pragma: no cover - the core and this driver are built together
            raise RuntimeError(f"responses-rs: unknown action {kind!r}")

    async def _store(self, response_id: str, response_json: str, input_json: str) -> Any:
        """Write the finished response; return the response object written, if one was built."""
        raise NotImplementedError

    async def _file_search(
        self,
        query: str,
        vector_store_ids: list[str],
        filters: Any,
        max_num_results: int | None,
        ranking_options: Any,
    ) -> list[Any]:
        """Search every listed vector store at once; one store failing leaves the others' results."""

        if isinstance(ranking_options, dict) and _compat.SearchRankingOptions is not None:
            # llama-stack hands its own model to the vector store API, which reads attributes.
            ranking_options = _compat.SearchRankingOptions(**ranking_options)

        async def search(vector_store_id: str) -> Any:
            try:
                return await self.vector_io_api.openai_search_vector_store(
                    vector_store_id=vector_store_id,
                    query=query,
                    filters=filters,
                    max_num_results=max_num_results,
                    ranking_options=ranking_options,
                    rewrite_query=False,
                )
            except Exception:
                logger.warning("responses-rs: search of vector store %s failed", vector_store_id, exc_info=True)
                return {"data": []}

        return list(await asyncio.gather(*(search(v) for v in vector_store_ids)))

    # ------------------------------------------------------------------------------------------
    # Defined here, not in the contract subclasses: llama-stack's own tests patch these on the
    # class they import (`patch.object(OpenAIResponsesImpl, "_get_previous_response_with_input")`).

    async def _get_previous_response_with_input(self, id: str) -> Any:
        """0.2.7: the stored record (input items and response) of a previous response."""
        if self.persistence_store is None:
            raise NotImplementedError("the llama-stack 0.2.12 contract keeps responses in its responses store")
        response_json = await self.persistence_store.get(key=f"{OPENAI_RESPONSES_PREFIX}{id}")
        if response_json is None:
            raise PreviousResponseNotFound(f"OpenAI response with id '{id}' not found")
        return _compat.PreviousResponseWithInputItems.model_validate_json(response_json)

    async def _prepend_previous_response(
        self, input: str | list[Any], previous_response_id: str | None = None
    ) -> str | list[Any]:
        """The previous response's input items, then its output, then the new input."""
        if not previous_response_id:
            return input
        if self.persistence_store is not None:
            previous = await self._get_previous_response_with_input(previous_response_id)
            items = list(previous.input_items.data)
            items.extend(previous.response.output)
        else:
            try:
                with_input = await self.responses_store.get_response_object(previous_response_id)
            except ValueError as exc:
                raise PreviousResponseNotFound(str(exc)) from exc
            items = list(with_input.input)
            items.extend(with_input.output)
        return self._append_input(items, input)

    async def get_openai_response(self, response_id: str | None = None, *, id: str | None = None) -> Any:
        # 0.2.7 names the parameter `id`, 0.2.12 `response_id`; both are accepted by keyword.
        response_id = response_id if response_id is not None else id
        if response_id is None:
            raise TypeError("get_openai_response() missing required argument: 'response_id'")
        if self.persistence_store is not None:
            return (await self._get_previous_response_with_input(response_id)).response
        with_input = await self.responses_store.get_response_object(response_id)
        return _compat.LlamaStackResponseObject(**{k: v for k, v in with_input if k != "input"})

    @staticmethod
    def _append_input(previous_items: list[Any], input: str | list[Any]) -> list[Any]:
        if isinstance(input, str):
            previous_items.append(_compat.OpenAIResponseMessage(content=input, role="user"))
        else:
            previous_items.extend(input)
        return previous_items


class _Impl027(OpenAIResponsesImpl):
    """The llama-stack 0.2.7 contract: a KV persistence store, inference streamed only on request."""

    _constructor_params = _PARAMS_027
    _record_shape = "llama-stack-0.2.7"

    async def create_openai_response(
        self,
        input: str | list[Any],
        model: str,
        previous_response_id: str | None = None,
        store: bool | None = True,
        stream: bool | None = False,
        temperature: float | None = None,
        tools: list[Any] | None = None,
        **options: Any,
    ) -> Any:
        """`options`: the other Responses request fields, checked by the core (see the 0.2.12 contract)."""
        return await self._create(
            input,
            model,
            # llama-stack 0.2.7 calls inference before it returns the stream (its tests check the call
            # before iterating), so a failing first call raises from here.
            prime=True,
            instructions=None,
            previous_response_id=previous_response_id,
            store=store,
            stream=bool(stream),
            temperature=temperature,
            text=None,
            tools=tools,
            max_infer_iters=None,
            options=options,
        )

    async def delete_openai_response(self, response_id: str) -> Any:
        key = f"{OPENAI_RESPONSES_PREFIX}{response_id}"
        if await self.persistence_store.get(key=key) is None:
            raise ValueError(f"OpenAI response with id '{response_id}' not found")
        await self.persistence_store.delete(key=key)
        return _compat.deletion_result(response_id)

    async def _store(self, response_id: str, response_json: str, input_json: str) -> None:  # type: ignore[override]
        # The exact record llama-stack 0.2.7 writes, so either implementation reads the other's.
        record = '{"input_items":{"data":' + input_json + ',"object":"list"},"response":' + response_json + "}"
        await self.persistence_store.set(key=f"{OPENAI_RESPONSES_PREFIX}{response_id}", value=record)


class _Impl0212(OpenAIResponsesImpl):
    """The llama-stack 0.2.12 contract: a SQL responses store, inference always streamed."""

    _constructor_params = _PARAMS_0212
    _stream_inference = True
    _send_response_format = True
    _extended_tools = True

    async def create_openai_response(
        self,
        input: str | list[Any],
        model: str,
        instructions: str | None = None,
        previous_response_id: str | None = None,
        store: bool | None = True,
        stream: bool | None = False,
        temperature: float | None = None,
        text: Any = None,
        tools: list[Any] | None = None,
        max_infer_iters: int | None = 10,
        **options: Any,
    ) -> Any:
        """`options`: the other Responses request fields (max_output_tokens, top_p, tool_choice,
        parallel_tool_calls, max_tool_calls, metadata, truncation, user, ...), checked by the core."""
        return await self._create(
            input,
            model,
            prime=False,
            instructions=instructions,
            previous_response_id=previous_response_id,
            store=store,
            stream=bool(stream),
            temperature=temperature,
            text=text,
            tools=tools,
            max_infer_iters=max_infer_iters,
            options=options,
        )

    async def list_openai_responses(
        self, after: str | None = None, limit: int | None = 50, model: str | None = None, order: Any = None
    ) -> Any:
        """Delegated to the responses store, positionally, as llama-stack does."""
        if order is None:
            order = _compat.ORDER_DESC
        return await self.responses_store.list_responses(after, limit, model, order)

    async def list_openai_response_input_items(
        self,
        response_id: str,
        after: str | None = None,
        before: str | None = None,
        include: list[str] | None = None,
        limit: int | None = 20,
        order: Any = None,
    ) -> Any:
        """Delegated to the responses store, positionally, as llama-stack does."""
        if order is None:
            order = _compat.ORDER_DESC
        return await self.responses_store.list_response_input_items(response_id, after, before, include, limit, order)

    async def delete_openai_response(self, response_id: str) -> Any:
        """Delete a stored response where the store can (llama-stack 0.2.12's store cannot)."""
        for name in ("delete_response_object", "delete_response"):
            method = getattr(self.responses_store, name, None)
            if method is not None:
                result = await method(response_id)
                return result if result is not None else _compat.deletion_result(response_id)
        raise NotImplementedError("this llama-stack responses store cannot delete responses")

    async def _store(self, response_id: str, response_json: str, input_json: str) -> Any:
        # llama-stack's own class, so the stored row is exactly the one llama-stack writes.
        response = _compat.LlamaStackResponseObject.model_validate_json(response_json)
        await self.responses_store.store_response_object(
            response_object=response,
            input=_compat.storable_input(input_json),
        )
        return response
