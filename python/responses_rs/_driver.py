"""`OpenAIResponsesImpl`: the async driver around the Rust core.

The core (`responses_rs._core.Turn`) never awaits anything. It says what I/O it needs next; the
host-neutral `TurnDriver` (`_engine.py`) performs it on the collaborators llama-stack handed in, in the
caller's own task, and feeds the result back. So contextvars, cancellation and exceptions behave exactly
as in plain Python code. This module is llama-stack's contract: its classes, store and inference call.

`OpenAIResponsesImpl(...)` returns an instance of one subclass per llama-stack contract, chosen by the
constructor's arguments, because the two contracts order `create_openai_response`'s positional
parameters differently (llama-stack's `agents.py` delegates positionally) and store differently.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from . import _compat
from ._core import EventFactory
from ._engine import PreviousResponseNotFound, TurnDriver, _accepts, event_factory, logger
from .events import EVENT_CLASSES

__all__ = ["OpenAIResponsesImpl", "PreviousResponseNotFound"]

OPENAI_RESPONSES_PREFIX = "openai_responses:"

_PARAMS_027 = ("persistence_store", "inference_api", "tool_groups_api", "tool_runtime_api")
_PARAMS_0212 = ("inference_api", "tool_groups_api", "tool_runtime_api", "responses_store", "vector_io_api")


def _event_factory() -> EventFactory:
    return event_factory(EVENT_CLASSES)


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


class OpenAIResponsesImpl(TurnDriver):
    """Drop-in for llama-stack's `OpenAIResponsesImpl` (meta-reference agents provider).

    The contract is chosen by the constructor's arguments:
    - 0.2.7:  `OpenAIResponsesImpl(persistence_store, inference_api, tool_groups_api, tool_runtime_api)`
    - 0.2.12: `OpenAIResponsesImpl(inference_api, tool_groups_api, tool_runtime_api, responses_store,
      vector_io_api)`
    """

    persistence_store: Any = None
    responses_store: Any = None
    _event_classes = EVENT_CLASSES

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
    # llama-stack's hooks (see responses_rs._engine.TurnDriver)

    @staticmethod
    def _response_object(response_json: str) -> Any:
        # A subclass of llama-stack's class that carries the whole OpenAI response object.
        return _compat.response_object(response_json)

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
        response = _compat.record_object(response_json)
        await self.responses_store.store_response_object(
            response_object=response,
            input=_compat.storable_input(input_json),
        )
        return response
