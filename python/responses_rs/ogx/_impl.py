"""`OGXResponsesImpl`: OGX's `Responses` protocol on the host-neutral driver.

Everything the request does is the Rust core's (conversion, stream assembly, the tool loop, field
checks); this module only says which classes, collaborators and store OGX has:

- responses and events are OGX's own classes (``ogx_api.openai_responses``), validated from the core's
  OpenAI-shaped JSON (``record_shape="full"``). OGX spells the MCP argument events
  ``response.mcp_call.arguments.*``; the core emits OpenAI's ``response.mcp_call_arguments.*``, so those two
  are OGX's classes with OpenAI's ``type``.
- inference is OGX's ``openai_chat_completion(params)`` with one
  ``OpenAIChatCompletionRequestWithExtraBody`` (streamed, with usage, as the builtin calls it);
- records go to OGX's ``ResponsesStore``, once, when the response ends: the response object and its
  input, chained rows stored incrementally (``input_storage_mode: incremental``, only the new turn's
  input) as the builtin stores them. ``messages`` is left empty: the builtin then converts the input
  (``_process_input_with_previous_response``), and this provider always does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import typing
from typing import Annotated, Any, Literal

from ogx_api import (
    CancelResponseRequest,
    CompactResponseRequest,
    ConflictError,
    CreateResponseRequest,
    DeleteResponseRequest,
    ListResponseInputItemsRequest,
    ListResponsesRequest,
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAIMessageParam,
    OpenAIResponseInput,
    OpenAIResponseObject,
    OpenAIResponseObjectStream,
    RetrieveResponseRequest,
)
from ogx_api import openai_responses as ogx_responses
from pydantic import BaseModel, Field, TypeAdapter

from .._engine import TurnDriver, event_factory

logger = logging.getLogger("responses_rs")


class _InputTokensDetails(ogx_responses.OpenAIResponseUsageInputTokensDetails):
    cache_write_tokens: int = 0  # openai-python 3.57 requires it; OGX's class has no such field


class _Usage(ogx_responses.OpenAIResponseUsage):
    input_tokens_details: _InputTokensDetails | None = None  # type: ignore[assignment]


class ResponseObject(OpenAIResponseObject):
    """OGX's response object, with OpenAI's whole usage (`input_tokens_details.cache_write_tokens`)."""

    usage: _Usage | None = None  # type: ignore[assignment]


def _event_classes() -> dict[str, type[BaseModel]]:
    members = typing.get_args(typing.get_args(OpenAIResponseObjectStream)[0])
    classes: dict[str, type[BaseModel]] = {}
    for cls in members:
        default = cls.model_fields["type"].default if "type" in cls.model_fields else None
        if isinstance(default, str):
            classes[default] = cls

    class McpCallArgumentsDelta(ogx_responses.OpenAIResponseObjectStreamResponseMcpCallArgumentsDelta):
        type: Literal["response.mcp_call_arguments.delta"] = "response.mcp_call_arguments.delta"  # type: ignore[assignment]

    class McpCallArgumentsDone(ogx_responses.OpenAIResponseObjectStreamResponseMcpCallArgumentsDone):
        type: Literal["response.mcp_call_arguments.done"] = "response.mcp_call_arguments.done"  # type: ignore[assignment]

    # OGX's content part events require its own `response_id` (not OpenAI's field); the core does not
    # put one there, so it is optional here and left out of the JSON when absent. OGX's output_text part
    # writes `logprobs: null` when absent, where OpenAI has a list.
    class OutputTextPart(ogx_responses.OpenAIResponseContentPartOutputText):
        logprobs: list[ogx_responses.OpenAITokenLogProb] = Field(default_factory=list)  # type: ignore[assignment]

    ContentPart = Annotated[
        OutputTextPart
        | ogx_responses.OpenAIResponseContentPartRefusal
        | ogx_responses.OpenAIResponseContentPartReasoningText,
        Field(discriminator="type"),
    ]

    class ContentPartAdded(ogx_responses.OpenAIResponseObjectStreamResponseContentPartAdded):
        response_id: str | None = Field(default=None, exclude_if=lambda v: v is None)  # type: ignore[assignment]
        part: ContentPart  # type: ignore[assignment, valid-type]

    class ContentPartDone(ogx_responses.OpenAIResponseObjectStreamResponseContentPartDone):
        response_id: str | None = Field(default=None, exclude_if=lambda v: v is None)  # type: ignore[assignment]
        part: ContentPart  # type: ignore[assignment, valid-type]

    # OGX's MCP listing events and MCP call outcome events have no `item_id` / `output_index` (OpenAI's
    # required fields, which the core sends): declared here so they reach the wire.
    markers = []
    for name in (
        "McpListToolsInProgress",
        "McpListToolsFailed",
        "McpListToolsCompleted",
        "McpCallFailed",
        "McpCallCompleted",
    ):
        base = getattr(ogx_responses, "OpenAIResponseObjectStreamResponse" + name)
        markers.append(
            type(name, (base,), {"__annotations__": {"item_id": str, "output_index": int}, "__module__": __name__})
        )

    # The events that carry the response: ours, so its usage keeps every field.
    carriers = [
        type(cls.__name__, (cls,), {"__annotations__": {"response": ResponseObject}, "__module__": __name__})
        for cls in classes.values()
        if "response" in cls.model_fields and cls.model_fields["response"].annotation is OpenAIResponseObject
    ]

    for cls in (
        McpCallArgumentsDelta,
        McpCallArgumentsDone,
        ContentPartAdded,
        ContentPartDone,
        *markers,
        *carriers,
    ):
        classes[cls.model_fields["type"].default] = cls
    return classes


EVENT_CLASSES = _event_classes()
MESSAGES = TypeAdapter(list[OpenAIMessageParam])
INPUT_ITEMS = TypeAdapter(list[OpenAIResponseInput])

# CreateResponseRequest fields passed to the core by name; every other field set goes in `options`.
_NAMED = {"input", "model", "instructions", "previous_response_id", "store", "stream", "temperature", "text", "tools"}
# What OGX's builtin serves and this provider does not (yet): refused, naming the field (HTTP 501).
NOT_BUILT = ("background", "conversation", "prompt", "skills", "guardrails", "context_management", "memory")


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


class OGXResponsesImpl(TurnDriver):
    """OGX 1.5's ``Responses`` protocol (``ogx_api.responses.api.Responses``) served by responses-rs."""

    _stream_inference = True  # the builtin always streams inference, with usage
    _send_response_format = True
    _extended_tools = True
    _errors_in_stream = False  # OGX's router turns an exception raised before the stream into HTTP 4xx/5xx
    _record_shape = "full"
    _event_classes = EVENT_CLASSES

    def __init__(
        self,
        *,
        inference_api: Any,
        responses_store: Any,
        tool_groups_api: Any = None,
        tool_runtime_api: Any = None,
        vector_io_api: Any = None,
        config: Any = None,
    ) -> None:
        self.config = config
        self.inference_api = inference_api
        self.tool_groups_api = tool_groups_api
        self.tool_runtime_api = tool_runtime_api
        self.vector_io_api = vector_io_api
        self.responses_store = responses_store
        self._factory = event_factory(EVENT_CLASSES)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    # ------------------------------------------------------------------------------------------
    # The Responses protocol

    async def create_openai_response(self, request: CreateResponseRequest) -> Any:
        for name in NOT_BUILT:
            if getattr(request, name, None):
                raise NotImplementedError(f"{name}: not supported by responses-rs (yet)")
        extra = request.model_extra or {}
        if "extra_body" in extra:
            raise NotImplementedError("extra_body: not supported by responses-rs (yet)")
        options = request.model_dump(mode="json", exclude_unset=True, exclude_none=True, exclude=_NAMED)
        for name in NOT_BUILT:
            options.pop(name, None)
        return await self._create(
            _dump(request.input),
            request.model,
            prime=False,
            instructions=request.instructions,
            previous_response_id=request.previous_response_id,
            store=request.store,
            stream=bool(request.stream),
            temperature=request.temperature,
            text=_dump(request.text),
            tools=_dump(request.tools),
            max_infer_iters=request.max_infer_iters,
            options=options,
        )

    async def get_openai_response(self, request: RetrieveResponseRequest) -> OpenAIResponseObject:
        stored = await self.responses_store.get_response_object(request.response_id, reconstruct_input=False)
        return stored.to_response_object()

    async def list_openai_responses(self, request: ListResponsesRequest) -> Any:
        return await self.responses_store.list_responses(request.after, request.limit, request.model, request.order)

    async def list_openai_response_input_items(self, request: ListResponseInputItemsRequest) -> Any:
        return await self.responses_store.list_response_input_items(
            request.response_id, request.after, request.before, request.include, request.limit, request.order
        )

    async def delete_openai_response(self, request: DeleteResponseRequest) -> Any:
        return await self.responses_store.delete_response_object(request.response_id)

    async def cancel_openai_response(self, request: CancelResponseRequest) -> OpenAIResponseObject:
        # Only background responses can be cancelled (OGX's builtin: ConflictError for the others), and
        # responses-rs runs none: every stored response is finished.
        stored = await self.responses_store.get_response_object(request.response_id, reconstruct_input=False)
        raise ConflictError(
            f"Response {request.response_id} cannot be cancelled: it is {stored.status}, not a background response"
        )

    async def compact_openai_response(self, request: CompactResponseRequest) -> Any:
        raise NotImplementedError("compact_openai_response: not supported by responses-rs (yet)")

    # ------------------------------------------------------------------------------------------
    # Host hooks (see responses_rs._engine.TurnDriver)

    def _response_object(self, response_json: str) -> Any:
        return ResponseObject.model_validate_json(response_json)

    async def _prepend_previous_response(
        self, input: str | list[Any], previous_response_id: str | None = None
    ) -> str | list[Any]:
        if not previous_response_id:
            return input
        previous = await self.responses_store.get_response_object(previous_response_id)  # ResponseNotFoundError: 404
        if previous.status in ("queued", "in_progress"):
            raise ValueError(
                f"Response {previous_response_id} is still {previous.status}: it cannot be a previous_response_id"
            )
        items: list[Any] = [_dump(item) for item in previous.input]
        items.extend(_dump(item) for item in previous.output)
        if isinstance(input, str):
            items.append({"type": "message", "role": "user", "content": input})
        else:
            items.extend(input)
        return items

    async def _infer(self, action: Any, model: str, temperature: float | None) -> Any:
        _, messages_json, tools_json, stream, response_format, params = action
        body: dict[str, Any] = {"model": model, "messages": MESSAGES.validate_json(messages_json), "stream": stream}
        if tools_json is not None:
            body["tools"] = json.loads(tools_json)
        if temperature is not None:
            body["temperature"] = temperature
        if response_format is not None:
            body["response_format"] = response_format
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(params)
        return await self.inference_api.openai_chat_completion(OpenAIChatCompletionRequestWithExtraBody(**body))

    async def _store_turn(self, turn: Any, response_json: str, input_json: str) -> Any:
        return await self._store(turn.response_id, response_json, input_json, history_items=turn.history_items)

    async def _store(self, response_id: str, response_json: str, input_json: str, history_items: int = 0) -> Any:
        """One ResponsesStore write. A chained response's row holds only this turn's input, as the builtin
        stores it (``incremental``): the chain before it is the previous response's (reconstructed) input
        and its output, the first ``history_items`` items, which the driver counted when it read them, so
        the previous response is not read again here."""
        response = OpenAIResponseObject.model_validate_json(response_json)
        incremental = bool(response.previous_response_id) and history_items > 0
        if incremental:  # only this turn's items are validated: the chain before them grows every turn
            raw = json.loads(input_json)
            incremental = history_items <= len(raw)
            items = INPUT_ITEMS.validate_python(raw[history_items:] if incremental else raw)
        else:
            items = INPUT_ITEMS.validate_json(input_json)
        await self.responses_store.store_response_object(
            response_object=response, input=items, messages=[], incremental_input=incremental
        )
        return response

    async def _list_mcp_tools(self, endpoint: str, headers: dict[str, Any]) -> Any:
        raise NotImplementedError("MCP tools are not wired to OGX's MCP client in responses-rs yet")

    async def _invoke_mcp_tool(self, endpoint: str, headers: dict[str, Any], name: str, arguments: Any) -> Any:
        raise NotImplementedError("MCP tools are not wired to OGX's MCP client in responses-rs yet")

    async def _file_search(
        self,
        query: str,
        vector_store_ids: list[str],
        filters: Any,
        max_num_results: int | None,
        ranking_options: Any,
    ) -> list[Any]:
        """Search every listed vector store at once; one store failing leaves the others' results."""
        from ogx_api import OpenAISearchVectorStoreRequest

        fields: dict[str, Any] = {"query": query, "filters": filters, "rewrite_query": False}
        if max_num_results is not None:
            fields["max_num_results"] = max_num_results
        if ranking_options is not None:
            fields["ranking_options"] = ranking_options
        search_request = OpenAISearchVectorStoreRequest(**fields)

        async def search(vector_store_id: str) -> Any:
            try:
                return await self.vector_io_api.openai_search_vector_store(vector_store_id, search_request)
            except Exception:
                logger.warning("responses-rs: search of vector store %s failed", vector_store_id, exc_info=True)
                return {"data": []}

        return list(await asyncio.gather(*(search(v) for v in vector_store_ids)))
