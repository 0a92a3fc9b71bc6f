"""`OpenAIResponsesImpl`: the async driver around the Rust core.

The core (`responses_rs._core.Turn`) never awaits anything. It says what I/O it needs next; this
module performs it on the collaborators llama-stack handed in, in the caller's own task, and feeds the
result back. So contextvars, cancellation and exceptions behave exactly as in plain Python code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from . import _compat, _mcp
from ._core import EventFactory, Turn
from .events import EVENT_CLASSES

logger = logging.getLogger("responses_rs")

OPENAI_RESPONSES_PREFIX = "openai_responses:"

_V027 = "0.2.7"
_V0212 = "0.2.12"

# Positional parameter order of create_openai_response in each contract (agents.py delegates
# positionally, so the order is part of the contract).
_CREATE_PARAMS = {
    _V027: ("input", "model", "previous_response_id", "store", "stream", "temperature", "tools"),
    _V0212: (
        "input",
        "model",
        "instructions",
        "previous_response_id",
        "store",
        "stream",
        "temperature",
        "text",
        "tools",
        "max_infer_iters",
    ),
}
_CREATE_DEFAULTS: dict[str, Any] = {
    "instructions": None,
    "previous_response_id": None,
    "store": True,
    "stream": False,
    "temperature": None,
    "text": None,
    "tools": None,
    "max_infer_iters": 10,
}


def _bind(params: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any], method: str) -> dict[str, Any]:
    if len(args) > len(params):
        raise TypeError(f"{method}() takes {len(params)} positional arguments but {len(args)} were given")
    bound = dict(zip(params, args, strict=False))
    for name, value in kwargs.items():
        if name not in params:
            raise TypeError(f"{method}() got an unexpected keyword argument '{name}'")
        if name in bound:
            raise TypeError(f"{method}() got multiple values for argument '{name}'")
        bound[name] = value
    for name in params:
        if name not in bound:
            if name not in _CREATE_DEFAULTS:
                raise TypeError(f"{method}() missing required argument: '{name}'")
            bound[name] = _CREATE_DEFAULTS[name]
    return bound


_factory: EventFactory | None = None


def _event_factory() -> EventFactory:
    global _factory
    if _factory is None:
        _factory = EventFactory(EVENT_CLASSES)
    return _factory


class OpenAIResponsesImpl:
    """Drop-in for llama-stack's `OpenAIResponsesImpl` (meta-reference agents provider).

    The contract is chosen by the constructor's arguments:
    - 0.2.7:  `OpenAIResponsesImpl(persistence_store, inference_api, tool_groups_api, tool_runtime_api)`
    - 0.2.12: `OpenAIResponsesImpl(inference_api, tool_groups_api, tool_runtime_api, responses_store,
      vector_io_api)`
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        first = args[0] if args else None
        if "persistence_store" in kwargs or (first is not None and not hasattr(first, "openai_chat_completion")):
            params: tuple[str, ...] = ("persistence_store", "inference_api", "tool_groups_api", "tool_runtime_api")
            self._contract = _V027
        else:
            params = ("inference_api", "tool_groups_api", "tool_runtime_api", "responses_store", "vector_io_api")
            self._contract = _V0212
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
        self.persistence_store = bound.get("persistence_store")
        self.inference_api = bound["inference_api"]
        self.tool_groups_api = bound["tool_groups_api"]
        self.tool_runtime_api = bound["tool_runtime_api"]
        self.responses_store = bound.get("responses_store")
        self.vector_io_api = bound.get("vector_io_api")
        self._factory = _event_factory()

    # ------------------------------------------------------------------------------------------
    # The two helpers llama-stack's own tests and subclasses call or patch (0.2.7 meaning).

    async def _get_previous_response_with_input(self, id: str) -> Any:
        if self._contract == _V027:
            response_json = await self.persistence_store.get(key=f"{OPENAI_RESPONSES_PREFIX}{id}")
            if response_json is None:
                raise ValueError(f"OpenAI response with id '{id}' not found")
            return _compat.PreviousResponseWithInputItems.model_validate_json(response_json)
        # 0.2.12 keeps responses in its responses store; it raises ValueError for an unknown id.
        return await self.responses_store.get_response_object(id)

    async def _prepend_previous_response(
        self, input: str | list[Any], previous_response_id: str | None = None
    ) -> str | list[Any]:
        if not previous_response_id:
            return input
        previous = await self._get_previous_response_with_input(previous_response_id)
        if self._contract == _V027:
            new_input_items = list(previous.input_items.data)
            new_input_items.extend(previous.response.output)
        else:
            new_input_items = list(previous.input)
            new_input_items.extend(previous.output)
        if isinstance(input, str):
            new_input_items.append(_compat.OpenAIResponseMessage(content=input, role="user"))
        else:
            new_input_items.extend(input)
        return new_input_items

    # ------------------------------------------------------------------------------------------

    async def get_openai_response(self, *args: Any, **kwargs: Any) -> Any:
        response_id = args[0] if args else kwargs.get("id", kwargs.get("response_id"))
        if self._contract == _V027:
            return (await self._get_previous_response_with_input(response_id)).response
        with_input = await self.responses_store.get_response_object(response_id)
        return _compat.OpenAIResponseObject(**{k: v for k, v in with_input if k != "input"})

    async def list_openai_responses(
        self, after: str | None = None, limit: int | None = 50, model: str | None = None, order: Any = None
    ) -> Any:
        """0.2.12: delegated to the responses store, positionally, as llama-stack does."""
        if order is None:
            order = _compat.ORDER_DESC
        return await self._store_required("list_openai_responses").list_responses(after, limit, model, order)

    async def list_openai_response_input_items(
        self,
        response_id: str,
        after: str | None = None,
        before: str | None = None,
        include: list[str] | None = None,
        limit: int | None = 20,
        order: Any = None,
    ) -> Any:
        """0.2.12: delegated to the responses store, positionally, as llama-stack does."""
        if order is None:
            order = _compat.ORDER_DESC
        store = self._store_required("list_openai_response_input_items")
        return await store.list_response_input_items(response_id, after, before, include, limit, order)

    async def delete_openai_response(self, response_id: str) -> Any:
        """Delete a stored response where the store can (llama-stack 0.2.12's store cannot)."""
        if self._contract == _V027:
            key = f"{OPENAI_RESPONSES_PREFIX}{response_id}"
            if await self.persistence_store.get(key=key) is None:
                raise ValueError(f"OpenAI response with id '{response_id}' not found")
            await self.persistence_store.delete(key=key)
            return _compat.deletion_result(response_id)
        store = self._store_required("delete_openai_response")
        for name in ("delete_response_object", "delete_response"):
            method = getattr(store, name, None)
            if method is not None:
                result = await method(response_id)
                return result if result is not None else _compat.deletion_result(response_id)
        raise NotImplementedError("this llama-stack responses store cannot delete responses")

    def _store_required(self, method: str) -> Any:
        if self.responses_store is None:
            raise NotImplementedError(f"{method} needs the llama-stack 0.2.12 contract (a responses_store)")
        return self.responses_store

    async def create_openai_response(self, *args: Any, **kwargs: Any) -> Any:
        req = _bind(_CREATE_PARAMS[self._contract], args, kwargs, "create_openai_response")
        stream = bool(req["stream"])
        input = await self._prepend_previous_response(req["input"], req["previous_response_id"])
        v0212 = self._contract == _V0212
        turn = Turn(
            self._factory,
            req["model"],
            input,
            req["tools"],
            temperature=req["temperature"],
            emit_events=stream,
            # llama-stack stores only when `store` is truthy (None included as "no").
            store=bool(req["store"]),
            instructions=req.get("instructions"),
            text=req.get("text"),
            previous_response_id=req["previous_response_id"],
            max_rounds=req.get("max_infer_iters") or 10,
            stream_inference=stream or v0212,
            send_response_format=v0212,
            extended_tools=v0212,
        )
        if stream:
            # llama-stack 0.2.7 calls inference before it returns the stream (its tests check the call
            # before iterating), so a failing first call raises here; 0.2.12 starts on first iteration.
            primed = None if v0212 else await self._prime(turn, req["model"], req["temperature"])
            return self._run(turn, req["model"], req["temperature"], True, primed)
        async for _ in self._run(turn, req["model"], req["temperature"], False):
            pass
        return self._response_object(turn.response_json())

    def _response_object(self, response_json: str) -> Any:
        return _compat.OpenAIResponseObject.model_validate_json(response_json)

    async def _prime(self, turn: Turn, model: str, temperature: float | None) -> tuple[Any, Any]:
        """Perform the lookups and the first inference call now; their events stay queued in the turn."""
        while True:
            action = turn.next_action()
            if action[0] == "infer":
                return action, await self._infer(action, model, temperature)
            await self._lookup(turn, action)

    async def _infer(self, action: Any, model: str, temperature: float | None) -> Any:
        _, messages_json, tools_json, stream, response_format = action
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": _compat.MESSAGES.validate_json(messages_json),
            "tools": json.loads(tools_json) if tools_json is not None else None,
            "stream": stream,
            "temperature": temperature,
        }
        if response_format is not None and _compat.RESPONSE_FORMAT is not None:
            kwargs["response_format"] = _compat.RESPONSE_FORMAT.validate_python(response_format)
        return await self.inference_api.openai_chat_completion(**kwargs)

    async def _lookup(self, turn: Turn, action: Any) -> None:
        """The actions that prepare tools before the first inference."""
        kind = action[0]
        if kind == "get_tool":
            turn.provide_tool_def(await self.tool_groups_api.get_tool(action[1]))
        elif kind == "list_mcp_tools":
            _, _label, endpoint, headers = action
            turn.provide_mcp_tools(await _mcp.list_mcp_tools(endpoint=endpoint, headers=headers or {}))
        else:  # pragma: no cover - the core and this driver are built together
            raise RuntimeError(f"responses-rs: unexpected action {kind!r}")

    async def _run(
        self,
        turn: Turn,
        model: str,
        temperature: float | None,
        stream: bool,
        primed: tuple[Any, Any] | None = None,
    ) -> AsyncIterator[Any]:
        """Perform what the core asks until it is done; yield its events when streaming.

        Streaming, a collaborator's exception ends the stream with `response.failed` (closing every open
        item); otherwise it propagates unchanged. One generator serves both, because each generator
        layer costs time on every streamed chunk.
        """
        try:
            while True:
                if primed is not None:
                    action, result = primed
                    primed = None
                else:
                    action, result = turn.next_action(), None
                if stream:
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
                            if event.__class__ is list:
                                for e in event:
                                    yield e
                            else:
                                yield event
                    else:
                        turn.feed_completion(result)
                    turn.end_inference()
                elif kind == "invoke_tool":
                    turn.tool_result(await self.tool_runtime_api.invoke_tool(tool_name=action[1], kwargs=action[2]))
                elif kind == "invoke_mcp":
                    _, endpoint, headers, name, arguments = action
                    result = await _mcp.invoke_mcp_tool(
                        endpoint=endpoint, headers=headers or {}, tool_name=name, kwargs=arguments
                    )
                    turn.tool_result(result)
                elif kind == "file_search":
                    turn.tool_result(await self._file_search(*action[1:]))
                elif kind == "store":
                    await self._store(turn.response_id, action[1], action[2])
                    turn.stored()
                elif kind == "done":
                    if stream:
                        for event in turn.drain():
                            yield event
                    return
                else:
                    await self._lookup(turn, action)
        except Exception as exc:
            if not stream:
                raise
            logger.exception("responses-rs: response %s failed", turn.response_id)
            turn.fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            for event in turn.drain():
                yield event

    async def _store(self, response_id: str, response_json: str, input_json: str) -> None:
        if self._contract == _V027:
            # The exact record llama-stack 0.2.7 writes, so either implementation reads the other's.
            record = '{"input_items":{"data":' + input_json + ',"object":"list"},"response":' + response_json + "}"
            await self.persistence_store.set(key=f"{OPENAI_RESPONSES_PREFIX}{response_id}", value=record)
            return
        await self.responses_store.store_response_object(
            response_object=self._response_object(response_json),
            input=_compat.INPUT_ITEMS.validate_json(input_json),
        )

    async def _file_search(
        self,
        query: str,
        vector_store_ids: list[str],
        filters: Any,
        max_num_results: int | None,
        ranking_options: Any,
    ) -> list[Any]:
        """Search every listed vector store at once; one store failing leaves the others' results."""

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
