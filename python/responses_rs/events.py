"""Stream event classes, in the OpenAI Responses wire shape.

Each class subclasses llama-stack's class of the same event when the installed llama-stack has one,
so `isinstance` checks written against llama-stack keep holding, and adds what llama-stack leaves out
(`sequence_number` on the response events, `item_id` on the MCP markers, `logprobs` on text events).
Events llama-stack does not define at all (0.2.7 defines only two) are plain pydantic models. All of
them serialise with `model_dump_json()`, which is what llama-stack's server calls on each event.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from ._compat import OpenAIResponseObject, OutputContentPart, OutputItem, ls_class

# llama-stack's response class plus `instructions` (left out of the JSON when unset). One class, not a
# union with llama-stack's: a union validates every response twice.
ResponseField = OpenAIResponseObject


# Bases are chosen at import time from the installed llama-stack; type checkers see BaseModel.
_Created: Any = ls_class("OpenAIResponseObjectStreamResponseCreated")
_Completed: Any = ls_class("OpenAIResponseObjectStreamResponseCompleted")
_ItemAdded: Any = ls_class("OpenAIResponseObjectStreamResponseOutputItemAdded")
_ItemDone: Any = ls_class("OpenAIResponseObjectStreamResponseOutputItemDone")
_TextDelta: Any = ls_class("OpenAIResponseObjectStreamResponseOutputTextDelta")
_TextDone: Any = ls_class("OpenAIResponseObjectStreamResponseOutputTextDone")
_ArgsDelta: Any = ls_class("OpenAIResponseObjectStreamResponseFunctionCallArgumentsDelta")
_ArgsDone: Any = ls_class("OpenAIResponseObjectStreamResponseFunctionCallArgumentsDone")
_WebInProgress: Any = ls_class("OpenAIResponseObjectStreamResponseWebSearchCallInProgress")
_WebSearching: Any = ls_class("OpenAIResponseObjectStreamResponseWebSearchCallSearching")
_WebCompleted: Any = ls_class("OpenAIResponseObjectStreamResponseWebSearchCallCompleted")
_McpListInProgress: Any = ls_class("OpenAIResponseObjectStreamResponseMcpListToolsInProgress")
_McpListFailed: Any = ls_class("OpenAIResponseObjectStreamResponseMcpListToolsFailed")
_McpListCompleted: Any = ls_class("OpenAIResponseObjectStreamResponseMcpListToolsCompleted")
_McpArgsDelta: Any = ls_class("OpenAIResponseObjectStreamResponseMcpCallArgumentsDelta")
_McpArgsDone: Any = ls_class("OpenAIResponseObjectStreamResponseMcpCallArgumentsDone")
_McpInProgress: Any = ls_class("OpenAIResponseObjectStreamResponseMcpCallInProgress")
_McpFailed: Any = ls_class("OpenAIResponseObjectStreamResponseMcpCallFailed")
_McpCompleted: Any = ls_class("OpenAIResponseObjectStreamResponseMcpCallCompleted")


class ResponseCreatedEvent(_Created):
    response: ResponseField  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.created"] = "response.created"


class ResponseInProgressEvent(BaseModel):
    response: ResponseField  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.in_progress"] = "response.in_progress"


class ResponseCompletedEvent(_Completed):
    response: ResponseField  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.completed"] = "response.completed"


class ResponseIncompleteEvent(BaseModel):
    response: ResponseField  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.incomplete"] = "response.incomplete"


class ResponseFailedEvent(BaseModel):
    response: ResponseField  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.failed"] = "response.failed"


class ResponseOutputItemAddedEvent(_ItemAdded):
    item: OutputItem  # type: ignore[valid-type]
    output_index: int
    response_id: str
    sequence_number: int
    type: Literal["response.output_item.added"] = "response.output_item.added"


class ResponseOutputItemDoneEvent(_ItemDone):
    item: OutputItem  # type: ignore[valid-type]
    output_index: int
    response_id: str
    sequence_number: int
    type: Literal["response.output_item.done"] = "response.output_item.done"


class ResponseContentPartAddedEvent(BaseModel):
    content_index: int
    item_id: str
    output_index: int
    part: OutputContentPart  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.content_part.added"] = "response.content_part.added"


class ResponseContentPartDoneEvent(BaseModel):
    content_index: int
    item_id: str
    output_index: int
    part: OutputContentPart  # type: ignore[valid-type]
    sequence_number: int
    type: Literal["response.content_part.done"] = "response.content_part.done"


class ResponseTextDeltaEvent(_TextDelta):
    # Built without validation on the hot path (see src/glue/events.rs): keep the field set in step.
    content_index: int
    delta: str
    item_id: str
    logprobs: list[Any] = []
    output_index: int
    sequence_number: int
    type: Literal["response.output_text.delta"] = "response.output_text.delta"


class ResponseTextDoneEvent(_TextDone):
    content_index: int
    item_id: str
    logprobs: list[Any] = []
    output_index: int
    sequence_number: int
    text: str
    type: Literal["response.output_text.done"] = "response.output_text.done"


class ResponseRefusalDeltaEvent(BaseModel):
    # Built without validation on the hot path (see src/glue/events.rs): keep the field set in step.
    content_index: int
    delta: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.refusal.delta"] = "response.refusal.delta"


class ResponseRefusalDoneEvent(BaseModel):
    content_index: int
    item_id: str
    output_index: int
    refusal: str
    sequence_number: int
    type: Literal["response.refusal.done"] = "response.refusal.done"


class ResponseReasoningTextDeltaEvent(BaseModel):
    # Built without validation on the hot path (see src/glue/events.rs): keep the field set in step.
    content_index: int
    delta: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.reasoning_text.delta"] = "response.reasoning_text.delta"


class ResponseReasoningTextDoneEvent(BaseModel):
    content_index: int
    item_id: str
    output_index: int
    sequence_number: int
    text: str
    type: Literal["response.reasoning_text.done"] = "response.reasoning_text.done"


class ResponseFunctionCallArgumentsDeltaEvent(_ArgsDelta):
    delta: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.function_call_arguments.delta"] = "response.function_call_arguments.delta"


class ResponseFunctionCallArgumentsDoneEvent(_ArgsDone):
    arguments: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.function_call_arguments.done"] = "response.function_call_arguments.done"


class _ItemMarker(BaseModel):
    item_id: str
    output_index: int
    sequence_number: int


class ResponseWebSearchCallInProgressEvent(_ItemMarker, _WebInProgress):
    type: Literal["response.web_search_call.in_progress"] = "response.web_search_call.in_progress"


class ResponseWebSearchCallSearchingEvent(_ItemMarker, _WebSearching):
    type: Literal["response.web_search_call.searching"] = "response.web_search_call.searching"


class ResponseWebSearchCallCompletedEvent(_ItemMarker, _WebCompleted):
    type: Literal["response.web_search_call.completed"] = "response.web_search_call.completed"


class ResponseFileSearchCallInProgressEvent(_ItemMarker):
    type: Literal["response.file_search_call.in_progress"] = "response.file_search_call.in_progress"


class ResponseFileSearchCallSearchingEvent(_ItemMarker):
    type: Literal["response.file_search_call.searching"] = "response.file_search_call.searching"


class ResponseFileSearchCallCompletedEvent(_ItemMarker):
    type: Literal["response.file_search_call.completed"] = "response.file_search_call.completed"


class ResponseMcpListToolsInProgressEvent(_ItemMarker, _McpListInProgress):
    type: Literal["response.mcp_list_tools.in_progress"] = "response.mcp_list_tools.in_progress"


class ResponseMcpListToolsFailedEvent(_ItemMarker, _McpListFailed):
    type: Literal["response.mcp_list_tools.failed"] = "response.mcp_list_tools.failed"


class ResponseMcpListToolsCompletedEvent(_ItemMarker, _McpListCompleted):
    type: Literal["response.mcp_list_tools.completed"] = "response.mcp_list_tools.completed"


class ResponseMcpCallArgumentsDeltaEvent(_McpArgsDelta):
    delta: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.mcp_call_arguments.delta"] = "response.mcp_call_arguments.delta"  # type: ignore[assignment]


class ResponseMcpCallArgumentsDoneEvent(_McpArgsDone):
    arguments: str
    item_id: str
    output_index: int
    sequence_number: int
    type: Literal["response.mcp_call_arguments.done"] = "response.mcp_call_arguments.done"  # type: ignore[assignment]


class ResponseMcpCallInProgressEvent(_ItemMarker, _McpInProgress):
    type: Literal["response.mcp_call.in_progress"] = "response.mcp_call.in_progress"


class ResponseMcpCallFailedEvent(_ItemMarker, _McpFailed):
    type: Literal["response.mcp_call.failed"] = "response.mcp_call.failed"


class ResponseMcpCallCompletedEvent(_ItemMarker, _McpCompleted):
    type: Literal["response.mcp_call.completed"] = "response.mcp_call.completed"


EVENT_CLASSES: dict[str, type[BaseModel]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        ResponseCreatedEvent,
        ResponseInProgressEvent,
        ResponseCompletedEvent,
        ResponseIncompleteEvent,
        ResponseFailedEvent,
        ResponseOutputItemAddedEvent,
        ResponseOutputItemDoneEvent,
        ResponseContentPartAddedEvent,
        ResponseContentPartDoneEvent,
        ResponseTextDeltaEvent,
        ResponseTextDoneEvent,
        ResponseRefusalDeltaEvent,
        ResponseRefusalDoneEvent,
        ResponseReasoningTextDeltaEvent,
        ResponseReasoningTextDoneEvent,
        ResponseFunctionCallArgumentsDeltaEvent,
        ResponseFunctionCallArgumentsDoneEvent,
        ResponseWebSearchCallInProgressEvent,
        ResponseWebSearchCallSearchingEvent,
        ResponseWebSearchCallCompletedEvent,
        ResponseFileSearchCallInProgressEvent,
        ResponseFileSearchCallSearchingEvent,
        ResponseFileSearchCallCompletedEvent,
        ResponseMcpListToolsInProgressEvent,
        ResponseMcpListToolsFailedEvent,
        ResponseMcpListToolsCompletedEvent,
        ResponseMcpCallArgumentsDeltaEvent,
        ResponseMcpCallArgumentsDoneEvent,
        ResponseMcpCallInProgressEvent,
        ResponseMcpCallFailedEvent,
        ResponseMcpCallCompletedEvent,
    )
}
