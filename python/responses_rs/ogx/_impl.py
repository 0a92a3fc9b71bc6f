"""`OGXResponsesImpl`: OGX's `Responses` protocol on the host-neutral driver.

Everything the request does is the Rust core's (conversion, stream assembly, the tool loop, field
checks); this module only says which classes, collaborators and store OGX has:

- responses and events are OGX's own classes (``ogx_api.openai_responses``), validated from the core's
  OpenAI-shaped JSON (``record_shape="full"``). OGX spells the MCP argument events
  ``response.mcp_call.arguments.*``; the core emits OpenAI's ``response.mcp_call_arguments.*``, so those two
  are OGX's classes with OpenAI's ``type``.
- inference is OGX's ``openai_chat_completion(params)`` with one
  ``OpenAIChatCompletionRequestWithExtraBody`` (streamed, with usage, as the builtin calls it);
- MCP servers are listed and called with OGX's MCP client (``ogx.providers.utils.tools.mcp``), with the
  tool's ``authorization`` and ``connector_id`` handled as the builtin handles them (`_tools`); approvals and
  listing reuse are the core's (``src/core/mcp.rs``);
- records go to OGX's ``ResponsesStore``, once, when the response ends: the response object and its
  input, chained rows stored incrementally (``input_storage_mode: incremental``, only the new turn's
  input) as the builtin stores them. ``messages`` is left empty: the builtin then converts the input
  (``_process_input_with_previous_response``), and this provider always does.
- compaction (``compact_openai_response`` and ``context_management``) is ``_compaction``'s; an inference
  call refused for a too long context is retried without the oldest turn (the driver's
  ``_truncate_on_context_length``, the core's rule), as the builtin does whatever ``truncation`` says.
- ``conversation``: the conversation's items (OGX's conversations API, every page) are the context
  before the new input (``Turn.prepend_history``); the stored response keeps only the new input. When
  a stored response completes, its input and output items are appended to the conversation
  (``sync_items``, ids kept) and the chat history is written to the store's ``conversation_messages``,
  as the builtin does, so either provider continues the conversation.
- ``prompt``: the template from OGX's prompts API, rendered by the core (``Turn.apply_prompt``);
  ``guardrails``: OGX's ``run_guardrails`` on the configured ``moderation_endpoint``
  (``responses_rs._guardrails``).
- ``background: true``: the record is inserted ``queued`` and returned at once, set ``in_progress`` when
  the run starts, and replaced by the final response when it ends (or by ``cancel``: ``cancelled``), in
  the builtin's format, so either provider retrieves and cancels the other's (see
  ``responses_rs._engine``, background mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import typing
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from ogx_api import (
    AddItemsRequest,
    CancelResponseRequest,
    CompactResponseRequest,
    ConflictError,
    CreateResponseRequest,
    DeleteResponseRequest,
    GetPromptRequest,
    InternalServerError,
    InvalidParameterError,
    ListItemsRequest,
    ListResponseInputItemsRequest,
    ListResponsesRequest,
    OpenAIChatCompletionRequestWithExtraBody,
    OpenAIMessageParam,
    OpenAIResponseInput,
    OpenAIResponseObject,
    OpenAIResponseObjectStream,
    ResponseNotFoundError,
    RetrieveResponseRequest,
    ServiceNotEnabledError,
)
from ogx_api import openai_responses as ogx_responses
from ogx_api.conversations.models import ConversationItem
from pydantic import BaseModel, Field, TypeAdapter

from .._core import Turn, check_request
from .._engine import BackgroundRuns, TurnDriver, event_factory
from . import _compaction
from ._memory import MemoryWrites

logger = logging.getLogger("responses_rs")


class _InputTokensDetails(ogx_responses.OpenAIResponseUsageInputTokensDetails):
    cache_write_tokens: int = 0  # openai-python 3.57 requires it; OGX's class has no such field


class _Usage(ogx_responses.OpenAIResponseUsage):
    input_tokens_details: _InputTokensDetails | None = None  # type: ignore[assignment]


class McpCall(ogx_responses.OpenAIResponseOutputMessageMCPCall):
    """OGX's mcp_call item with OpenAI's fields: `error` is openai-python's error object (OGX's class takes
    a string), `status`, and `approval_request_id` for a call that ran on an approval."""

    error: str | dict[str, Any] | None = None  # type: ignore[assignment]
    status: str | None = Field(default=None, exclude_if=lambda v: v is None)
    approval_request_id: str | None = Field(default=None, exclude_if=lambda v: v is None)


def _output_union() -> Any:
    members = typing.get_args(typing.get_args(ogx_responses.OpenAIResponseOutput)[0])
    swapped = tuple(McpCall if m is ogx_responses.OpenAIResponseOutputMessageMCPCall else m for m in members)
    return Annotated[typing.Union[swapped], Field(discriminator="type")]  # noqa: UP007


OutputItem = _output_union()


class ResponseObject(OpenAIResponseObject):
    """OGX's response object, with OpenAI's whole usage (`input_tokens_details.cache_write_tokens`) and
    OpenAI's mcp_call item."""

    usage: _Usage | None = None  # type: ignore[assignment]
    output: list[OutputItem]  # type: ignore[assignment, valid-type]


def _record_json(response_json: str) -> str:
    """The record as OGX's builtin writes it: an mcp_call's `error` is a string (the message)."""
    if '"mcp_call"' not in response_json:
        return response_json
    response = json.loads(response_json)
    for item in response.get("output", []):
        error = item.get("error") if item.get("type") == "mcp_call" else None
        if isinstance(error, dict):
            item["error"] = error.get("message") or error.get("content") or json.dumps(error)
    return json.dumps(response)


class CompactedResponse(ogx_responses.OpenAICompactedResponse):
    """OGX's compacted response object, with OpenAI's whole usage."""

    usage: _Usage  # type: ignore[assignment]


class _History(list[Any]):
    """An input that already holds the previous response's chain (read, and compacted, before the turn).
    ``history_items``: how many leading items are the previous response's input and output (0 when compacted:
    the row is then stored whole)."""

    history_items = 0


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

    # The output item events carry OpenAI's mcp_call item.
    items = [
        type(cls.__name__, (cls,), {"__annotations__": {"item": OutputItem}, "__module__": __name__})
        for cls in (
            ogx_responses.OpenAIResponseObjectStreamResponseOutputItemAdded,
            ogx_responses.OpenAIResponseObjectStreamResponseOutputItemDone,
        )
    ]

    # The events that carry the response: ours, so its usage keeps every field.
    carriers = [
        type(cls.__name__, (cls,), {"__annotations__": {"response": ResponseObject}, "__module__": __name__})
        for cls in classes.values()
        if "response" in cls.model_fields and cls.model_fields["response"].annotation is OpenAIResponseObject
    ]

    # OGX has no `response.queued` (OpenAI's second event of a background response's stream, status queued):
    # OGX's `response.created` carrying the response, under OpenAI's type.
    class ResponseQueued(ogx_responses.OpenAIResponseObjectStreamResponseCreated):
        type: Literal["response.queued"] = "response.queued"  # type: ignore[assignment]
        response: ResponseObject

    for cls in (
        ResponseQueued,
        McpCallArgumentsDelta,
        McpCallArgumentsDone,
        ContentPartAdded,
        ContentPartDone,
        *markers,
        *items,
        *carriers,
    ):
        classes[cls.model_fields["type"].default] = cls
    return classes


EVENT_CLASSES = _event_classes()
MESSAGES = TypeAdapter(list[OpenAIMessageParam])
INPUT_ITEMS = TypeAdapter(list[OpenAIResponseInput])
CONVERSATION_ITEMS = TypeAdapter(list[ConversationItem])

# CreateResponseRequest fields passed to the core by name; every other field set goes in `options`.
_NAMED = {"input", "model", "instructions", "previous_response_id", "store", "stream", "temperature", "text", "tools"}
# What OGX's builtin serves and this provider does not (yet): refused, naming the field (HTTP 501).
NOT_BUILT: tuple[str, ...] = ()
# Read here, not by the core: left out of the core's options.
_HOST_ONLY = ("guardrails",)


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


# The request's MCP sessions (OGX's `MCPSessionManager`): one session per server for its listing and calls,
# as the builtin keeps them per request (OGX's fix for its issue 4452).
_MCP_SESSIONS: contextvars.ContextVar[Any] = contextvars.ContextVar("responses_rs_mcp_sessions", default=None)
# The request's `extra_body` (a dict, or None), for `_infer` and compaction's tokenizer.
_EXTRA_BODY: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "responses_rs_extra_body", default=None
)


async def _with_mcp_sessions(stream: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A stream whose MCP I/O shares one `MCPSessionManager`, closed when the stream ends."""
    from ogx.providers.utils.tools.mcp import MCPSessionManager

    async with MCPSessionManager() as sessions:
        token = _MCP_SESSIONS.set(sessions)
        try:
            async for event in stream:
                yield event
        finally:
            try:
                _MCP_SESSIONS.reset(token)
            except ValueError:  # closed from another context: nothing of ours to restore there
                pass


def _split_authorization(headers: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The MCP tool's headers without the ``Authorization`` header `_tools` put there, and its token."""
    rest: dict[str, Any] = {}
    authorization = None
    for key, value in headers.items():
        if key.lower() == "authorization" and isinstance(value, str):
            authorization = value.removeprefix("Bearer ")
        else:
            rest[key] = value
    return rest, authorization


class OGXResponsesImpl(TurnDriver):
    """OGX 1.5's ``Responses`` protocol (``ogx_api.responses.api.Responses``) served by responses-rs."""

    _stream_inference = True  # the builtin always streams inference, with usage
    _send_response_format = True
    _extended_tools = True
    _errors_in_stream = False  # OGX's router turns an exception raised before the stream into HTTP 4xx/5xx
    _record_shape = "full"
    _file_search_citations = True
    _event_classes = EVENT_CLASSES
    _truncate_on_context_length = True  # the builtin's truncation.py, whatever `truncation` says

    def __init__(
        self,
        *,
        inference_api: Any,
        responses_store: Any,
        tool_groups_api: Any = None,
        tool_runtime_api: Any = None,
        vector_io_api: Any = None,
        connectors_api: Any = None,
        skills_api: Any = None,
        conversations_api: Any = None,
        prompts_api: Any = None,
        files_api: Any = None,
        config: Any = None,
    ) -> None:
        self.config = config
        self.files_api = files_api  # memory writes upload their Markdown file (see ._memory)
        self.connectors_api = connectors_api
        self.skills_api = skills_api  # OGX's optional Api.skills (see ._skills)
        self.conversations_api = conversations_api
        self.prompts_api = prompts_api
        self.inference_api = inference_api
        self.tool_groups_api = tool_groups_api
        self.tool_runtime_api = tool_runtime_api
        self.vector_io_api = vector_io_api
        self.responses_store = responses_store
        self._factory = event_factory(EVENT_CLASSES)
        # Made now, so a request's own driver (._request copies these attributes) shares it: its background
        # runs are the provider's (cancel, shutdown).
        self._background_state = BackgroundRuns()
        self._memory_writes = MemoryWrites()  # shared the same way (see ._memory)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        await self._shutdown_background()
        await self._memory_writes.shutdown()

    # ------------------------------------------------------------------------------------------
    # The Responses protocol

    async def create_openai_response(self, request: CreateResponseRequest) -> Any:
        for name in NOT_BUILT:
            if getattr(request, name, None):
                raise NotImplementedError(f"{name}: not supported by responses-rs (yet)")
        if request.background and request.stream:
            raise ValueError("OGX does not yet support 'stream' and 'background' together.")  # as the builtin
        extra_body = (request.model_extra or {}).get("extra_body")
        if extra_body is not None and not isinstance(extra_body, dict):
            raise ValueError(f"extra_body: expected an object, got {type(extra_body).__name__}")
        # As the builtin: extra_body's fields go into every chat completion request of this response (after
        # the request's own), and its `tokenizer_encoding` picks compaction's tokenizer. Set in the request's
        # own context, which its stream and its background run inherit.
        _EXTRA_BODY.set(extra_body or None)
        options = request.model_dump(mode="json", exclude_unset=True, exclude_none=True, exclude=_NAMED)
        for name in (*NOT_BUILT, *_HOST_ONLY):
            options.pop(name, None)
        if request.guardrails and not getattr(self.config, "moderation_endpoint", None):
            raise ServiceNotEnabledError(
                "moderation_endpoint",
                provider_specific_message="Guardrails require a moderation endpoint to be configured on the server "
                "(moderation_endpoint of the responses provider), or remove the 'guardrails' parameter.",
            )
        prepare, prompted = None, False
        if request.conversation is not None or request.prompt is not None:
            # Refuse a bad field (conversation with previous_response_id, say) before any I/O.
            check_request(
                request.model,
                _dump(request.tools),
                temperature=request.temperature,
                instructions=request.instructions,
                text=_dump(request.text),
                options={"previous_response_id": request.previous_response_id, **options},
            )
            prepare, prompted = await self._context(request)
        if not any(getattr(tool, "type", None) == "mcp" for tool in request.tools or ()):
            return await self._create_one(request, options, prepare, prompted)
        if request.background:  # its run opens its own sessions (_background_scope)
            return await self._create_one(request, options, prepare, prompted)
        if request.stream:
            result = await self._create_one(request, options, prepare, prompted)
            return _with_mcp_sessions(result) if not isinstance(result, BaseModel) else result
        from ogx.providers.utils.tools.mcp import MCPSessionManager

        async with MCPSessionManager() as sessions:
            token = _MCP_SESSIONS.set(sessions)
            try:
                return await self._create_one(request, options, prepare, prompted)
            finally:
                _MCP_SESSIONS.reset(token)

    async def _create_one(
        self, request: CreateResponseRequest, options: dict[str, Any], prepare: Any = None, prompted: bool = False
    ) -> Any:
        from ._request import request_driver

        # self, or this request's driver: its previous response read once, its skills, its memory (see ._request)
        driver = await request_driver(self, request)
        if driver is not self:  # its skills and memory context join the turn's host context
            prepare = driver.with_context(prepare, prompted)
        input = _dump(request.input)
        if request.context_management:
            input = await driver._auto_compact(request, input, options)
        response = await driver._create(
            input,
            request.model,
            prime=False,
            instructions=request.instructions,
            previous_response_id=request.previous_response_id,
            store=request.store,
            stream=bool(request.stream),
            temperature=request.temperature,
            text=_dump(request.text),
            tools=await self._tools(request.tools),
            max_infer_iters=request.max_infer_iters,
            options=options,
            prepare=prepare,
            guardrails=bool(request.guardrails),
            background=bool(request.background),
        )
        if isinstance(response, OpenAIResponseObject) and response.status == "failed":
            # Not streamed, failed without an exception (the context could not be made short enough):
            # the builtin raises its message as a 500.
            raise InternalServerError(response.error.message if response.error else "the response failed")
        return response

    async def _auto_compact(self, request: CreateResponseRequest, input: Any, options: dict[str, Any]) -> Any:
        """``context_management``: the history (the previous response's chain and the new input), compacted
        when it is past the threshold; a ``_History`` the turn takes as it is."""
        # A bad field is refused before any I/O (reading the previous response, the summarization call).
        check_request(
            request.model,
            _dump(request.tools),
            temperature=request.temperature,
            instructions=request.instructions,
            text=_dump(request.text),
            options=options,
        )
        history, previous = await self._history(input, request.previous_response_id)
        compacted = await _compaction.maybe_auto_compact(
            self.inference_api,
            self.responses_store,
            self.config,
            history,
            model=request.model,
            context_management=request.context_management or [],
            previous_usage=previous.usage if previous is not None else None,
            tokenizer_encoding=(_EXTRA_BODY.get() or {}).get("tokenizer_encoding"),
        )
        if compacted is not None:
            return _History(compacted)
        if previous is None:
            return input
        chain = _History(history)
        chain.history_items = len(previous.input) + len(previous.output)
        return chain

    async def _context(self, request: CreateResponseRequest) -> tuple[Any, bool]:
        """Read what `conversation` and `prompt` bring (OGX's conversations and prompts APIs): the function
        that hands it to the new turn, and whether a prompt message leads the messages."""
        from ogx.core.conversations.validation import CONVERSATION_ID_PATTERN

        history: list[Any] = []
        if request.conversation is not None:
            if not CONVERSATION_ID_PATTERN.fullmatch(request.conversation):
                raise InvalidParameterError(
                    "conversation",
                    request.conversation,
                    "Must match format 'conv_' followed by 48 lowercase hex characters.",
                )
            history = await self._conversation_items(request.conversation)  # unknown: 404
        template: tuple[str, list[str]] | None = None
        if request.prompt is not None and request.prompt.id:
            try:
                version = int(request.prompt.version) if request.prompt.version else None
            except ValueError:
                raise InvalidParameterError(
                    "prompt.version", request.prompt.version, "Must be an integer version."
                ) from None
            stored = await self.prompts_api.get_prompt(
                GetPromptRequest(prompt_id=request.prompt.id, version=version)
            )  # unknown: 404
            if stored is not None and stored.prompt:
                template = (stored.prompt, list(stored.variables or []))

        def prepare(turn: Turn) -> None:
            if history:
                turn.prepend_history(history)
            if template is not None:
                turn.apply_prompt(*template)

        return prepare, template is not None

    async def _conversation_items(self, conversation_id: str) -> list[Any]:
        """Every item of the conversation, oldest first (all pages)."""
        items: list[Any] = []
        after: str | None = None
        while True:
            page = await self.conversations_api.list_items(
                ListItemsRequest(conversation_id=conversation_id, order="asc", limit=100, after=after)
            )
            items.extend(_dump(item) for item in page.data)
            if not page.has_more or not page.data:
                return items
            after = page.data[-1].id

    async def _tools(self, tools: list[Any] | None) -> Any:
        """The request's tools as the core takes them. An MCP tool's `authorization` (which OGX's
        class leaves out of its dump) rides in its headers as ``Authorization: Bearer ...``, split out
        again for OGX's MCP client; an ``Authorization`` header given by the client is refused, as the
        builtin refuses it; a `connector_id` without `server_url` is resolved through OGX's
        connectors API, as the builtin resolves it."""
        dumped = _dump(tools)
        if not tools:
            return dumped
        for i, (tool, data) in enumerate(zip(tools, dumped, strict=True)):
            if getattr(tool, "type", None) != "mcp":
                continue
            headers = dict(data.get("headers") or {})
            if any(key.lower() == "authorization" for key in headers):
                raise InvalidParameterError(
                    f"tools[{i}].headers",
                    "Authorization",
                    "Authorization credentials must be passed via the 'authorization' parameter, not 'headers'.",
                )
            if tool.authorization:
                headers["Authorization"] = f"Bearer {tool.authorization}"
                data["headers"] = headers
            if tool.connector_id and not tool.server_url:
                if self.connectors_api is None:
                    raise InvalidParameterError(
                        f"tools[{i}].connector_id", tool.connector_id, "this stack has no connectors API"
                    )
                from ogx_api.connectors.models import GetConnectorRequest

                connector = await self.connectors_api.get_connector(GetConnectorRequest(connector_id=tool.connector_id))
                data["server_url"] = connector.url
        return dumped

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
        """As the builtin: a queued or running background response is recorded `cancelled` (its record
        as it stood, status changed) and its run stopped: here at once, on another server sharing the
        store when it next reads the record. Cancelling again returns it; a response that is not a
        background one, or has ended, is a ConflictError (409)."""
        response_id = request.response_id
        async with self._background_lock(response_id):
            stored = await self.responses_store.get_response_object(response_id, reconstruct_input=False)
            if stored.status == "cancelled":
                return stored.to_response_object()
            if not stored.background:
                raise ConflictError(
                    f"Cannot cancel response '{response_id}': only background responses can be cancelled"
                )
            if stored.status in ("completed", "failed", "incomplete"):
                raise ConflictError(f"Cannot cancel response '{response_id}' with status '{stored.status}'")
            stored.status = "cancelled"
            await self.responses_store.update_response_object(stored)
            self._stop_background(response_id)
            updated = await self.responses_store.get_response_object(response_id, reconstruct_input=False)
        return updated.to_response_object()

    async def compact_openai_response(self, request: CompactResponseRequest) -> CompactedResponse:
        """The history (``previous_response_id``'s chain, then ``input``; or ``input`` alone) summarized by one
        inference call: every user message, then one ``compaction`` item. Stored as a completed response, so
        its id continues a chain."""
        input = _dump(request.input)
        if request.previous_response_id:
            history, _ = await self._history([] if input is None else input, request.previous_response_id)
        elif input is not None:
            history = input
        else:
            raise InvalidParameterError(
                "input, previous_response_id", None, "Either 'input' or 'previous_response_id' must be provided."
            )
        compaction = await _compaction.compact(
            self.inference_api,
            self.responses_store,
            self.config,
            history,
            model=request.model,
            instructions=request.instructions,
            prompt_cache_key=request.prompt_cache_key,
        )
        return CompactedResponse.model_validate_json(compaction.compacted_json())

    # ------------------------------------------------------------------------------------------
    # Host hooks (see responses_rs._engine.TurnDriver)

    def _response_object(self, response_json: str) -> Any:
        return ResponseObject.model_validate_json(response_json)

    async def _prepend_previous_response(
        self, input: str | list[Any], previous_response_id: str | None = None
    ) -> str | list[Any]:
        if isinstance(input, _History):
            return list(input)
        history, _ = await self._history(input, previous_response_id)
        return history

    async def _history(self, input: str | list[Any], previous_response_id: str | None) -> tuple[str | list[Any], Any]:
        """The previous response's input and output, then ``input``; and the previous response (None without
        one: ``input`` alone)."""
        if not previous_response_id:
            return input, None
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
        return items, previous

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
        extra_body = _EXTRA_BODY.get()
        if extra_body:
            body.update(extra_body)
        return await self.inference_api.openai_chat_completion(OpenAIChatCompletionRequestWithExtraBody(**body))

    async def _store_turn(self, turn: Any, response_json: str, input_json: str) -> Any:
        """The response's row; with `conversation`, then its items and chat history (see `_sync_conversation`)."""
        response = await self._store(turn.response_id, response_json, input_json, history_items=turn.history_items)
        conversation = json.loads(response_json).get("conversation") if '"conversation":' in response_json else None
        if isinstance(conversation, dict) and conversation.get("id"):
            try:
                await self._sync_conversation(conversation["id"], input_json, response, turn)
            except Exception:
                # Nothing half-written: without its conversation items the response goes too.
                try:
                    await self.responses_store.delete_response_object(turn.response_id)
                except Exception:
                    logger.warning("responses-rs: could not delete %s", turn.response_id, exc_info=True)
                raise
        return response

    async def _store(self, response_id: str, response_json: str, input_json: str, history_items: int = 0) -> Any:
        """One ResponsesStore write. A chained response's row holds only this turn's input, as the builtin
        stores it (``incremental``): the chain before it is the previous response's (reconstructed) input
        and its output, the first ``history_items`` items, which the driver counted when it read them, so
        the previous response is not read again here."""
        response = OpenAIResponseObject.model_validate_json(_record_json(response_json))
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

    async def _sync_conversation(self, conversation_id: str, input_json: str, response: Any, turn: Turn) -> None:
        """Append the response's input and output items to the conversation (ids kept, ids already
        there skipped) and keep its chat history in the store, as the builtin does."""
        items = [_dump(item) for item in json.loads(input_json) if item.get("type") != "compaction"]
        items.extend(_dump(item) for item in response.output)
        await self.conversations_api.sync_items(
            conversation_id, AddItemsRequest(items=CONVERSATION_ITEMS.validate_python(items))
        )
        await self.responses_store.store_conversation_messages(
            conversation_id, MESSAGES.validate_json(turn.chat_history())
        )

    async def _moderate(self, text: str) -> str | None:
        from ogx.providers.inline.responses.builtin.responses.utils import run_guardrails

        return await run_guardrails(
            getattr(self.config, "moderation_endpoint", None),
            text,
            headers=getattr(self.config, "moderation_headers", None),
        )

    # Background mode: the record is inserted `queued` (in the request's context, so it carries the
    # caller's owner and access attributes as the builtin's does) by `_store`, as a finished one is
    # written, then only updated, which keeps them. The updates' response object is `_response_object`'s
    # (a request driver's echoes, skills say, included).

    def _background_record(self, response_json: str) -> OpenAIResponseObject:
        response = self._response_object(response_json)
        return OpenAIResponseObject.model_validate_json(_record_json(response.model_dump_json()))

    async def _background_insert(self, turn: Any, response_json: str, input_json: str) -> Any:
        await self._store(turn.response_id, response_json, input_json, history_items=turn.history_items)
        return self._response_object(response_json)

    async def _background_ending(self, turn: Any, response_json: str, input_json: str) -> None:
        """With `conversation`, the ended response's items and chat history go to it (as `_store_turn`), before
        its record says it ended."""
        conversation = json.loads(response_json).get("conversation") if '"conversation":' in response_json else None
        if isinstance(conversation, dict) and conversation.get("id"):
            await self._sync_conversation(conversation["id"], input_json, self._background_record(response_json), turn)

    @contextlib.asynccontextmanager
    async def _background_scope(self) -> AsyncIterator[None]:
        """A background run's MCP I/O shares one `MCPSessionManager`, as a request's does."""
        from ogx.providers.utils.tools.mcp import MCPSessionManager

        async with MCPSessionManager() as sessions:
            token = _MCP_SESSIONS.set(sessions)
            try:
                yield
            finally:
                _MCP_SESSIONS.reset(token)

    async def _background_status(self, response_id: str) -> str | None:
        try:
            stored = await self.responses_store.get_response_object(response_id, reconstruct_input=False)
        except ResponseNotFoundError:
            return None
        return stored.status

    async def _background_update(self, response_id: str, response_json: str) -> None:
        await self.responses_store.update_response_object(self._background_record(response_json))

    async def _list_mcp_tools(self, endpoint: str, headers: dict[str, Any]) -> Any:
        """OGX's MCP client (``ogx.providers.utils.tools.mcp``), as the builtin lists a server."""
        from ogx.providers.utils.tools.mcp import list_mcp_tools

        headers, authorization = _split_authorization(headers)
        return await list_mcp_tools(
            endpoint=endpoint, headers=headers, authorization=authorization, session_manager=_MCP_SESSIONS.get()
        )

    async def _invoke_mcp_tool(self, endpoint: str, headers: dict[str, Any], name: str, arguments: Any) -> Any:
        """OGX's MCP client, as the builtin calls a tool (an ``isError`` result has error_code 1)."""
        from ogx.providers.utils.tools.mcp import invoke_mcp_tool

        headers, authorization = _split_authorization(headers)
        return await invoke_mcp_tool(
            endpoint=endpoint,
            tool_name=name,
            kwargs=arguments,
            headers=headers,
            authorization=authorization,
            session_manager=_MCP_SESSIONS.get(),
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
