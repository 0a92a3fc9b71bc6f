"""The installed llama-stack, read once: its version and the classes its contract is made of.

responses-rs serves llama-stack 0.2.7 and 0.2.12. Where they differ (constructor, method signatures,
storage, inference arguments) the driver asks this module instead of guessing per call.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from llama_stack.apis.agents import openai_responses as ls_responses
from llama_stack.apis.inference import inference as ls_inference
from llama_stack.providers.inline.agents.meta_reference import openai_responses as _ls_impl
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from ._construct import Builder, root_constructor

try:
    LLAMA_STACK_VERSION = _dist_version("llama_stack")
except PackageNotFoundError:  # an editable or vendored llama-stack
    LLAMA_STACK_VERSION = "unknown"

LlamaStackResponseObject = ls_responses.OpenAIResponseObject


OpenAIResponseMessage = ls_responses.OpenAIResponseMessage
OpenAIResponseInput = ls_responses.OpenAIResponseInput
OpenAIResponseOutput = ls_responses.OpenAIResponseOutput


# Output items in openai-python's shapes, where llama-stack's classes cannot carry them: a message
# with refusal parts and annotated output text, an MCP call with a status and an error object, and
# reasoning items (llama-stack 0.2.x has none). Subclasses where llama-stack has the class, so
# `isinstance` keeps holding.
class OutputTextPart(ls_responses.OpenAIResponseOutputMessageContentOutputText):  # type: ignore[misc, valid-type]
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = []


class RefusalPart(BaseModel):
    type: Literal["refusal"] = "refusal"
    refusal: str


class ReasoningTextPart(BaseModel):
    type: Literal["reasoning_text"] = "reasoning_text"
    text: str


OutputContentPart = Annotated[OutputTextPart | RefusalPart | ReasoningTextPart, Field(discriminator="type")]


class OutputMessage(OpenAIResponseMessage):  # type: ignore[misc, valid-type]
    # Tried in this order (an output message's parts first): half the cost of pydantic's smart union.
    content: Annotated[  # type: ignore[assignment]
        list[OutputContentPart] | str | list[ls_responses.OpenAIResponseInputMessageContent],  # type: ignore[valid-type]
        Field(union_mode="left_to_right"),
    ]


class ReasoningItem(BaseModel):
    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[Any] = []
    content: list[ReasoningTextPart] = []
    encrypted_content: str | None = Field(default=None, exclude_if=lambda v: v is None)
    status: str | None = None


_ls_mcp_call = getattr(ls_responses, "OpenAIResponseOutputMessageMCPCall", None)
_output_members: list[Any] = [OutputMessage, ReasoningItem]


class WebSearchCallItem(ls_responses.OpenAIResponseOutputMessageWebSearchToolCall):  # type: ignore[misc, valid-type]
    action: Any = None  # openai-python: what the search did ({"type": "search", "query": ...})


_output_members.append(WebSearchCallItem)
for _name in (
    "OpenAIResponseOutputMessageFileSearchToolCall",
    "OpenAIResponseOutputMessageFunctionToolCall",
    "OpenAIResponseOutputMessageMCPListTools",
):
    if hasattr(ls_responses, _name):
        _output_members.append(getattr(ls_responses, _name))
if _ls_mcp_call is not None:

    class McpCallItem(_ls_mcp_call):  # type: ignore[misc, valid-type]
        error: Any = None  # openai-python: an error object; llama-stack: a string
        status: str | None = None

    _output_members.append(McpCallItem)

OutputItem = Annotated[Union[tuple(_output_members)], Field(discriminator="type")]  # noqa: UP007


class _ResponseObject(LlamaStackResponseObject):  # type: ignore[misc, valid-type]
    model_config = ConfigDict(extra="allow")
    output: list[OutputItem]  # type: ignore[valid-type]


# The fields of OpenAI's response object that llama-stack's class lacks, declared (as they come, `Any`)
# rather than kept as extras: validating declared fields costs a third less.
_FULL_FIELDS = [
    name
    for name in (
        "completed_at incomplete_details instructions tools tool_choice text presence_penalty frequency_penalty "
        "top_logprobs reasoning usage max_output_tokens max_tool_calls store background service_tier metadata "
        "safety_identifier prompt_cache_key"
    ).split()
    if name not in LlamaStackResponseObject.model_fields
]

OpenAIResponseObject: Any = type(
    "OpenAIResponseObject",
    (_ResponseObject,),
    {
        "__module__": __name__,
        "__doc__": """llama-stack's response object carrying the whole OpenAI response: every field the core
    reports (instructions, usage, incomplete_details, tools, tool_choice, ...; kept as they come) and
    openai-python's item shapes. A subclass, so `isinstance(r, llama_stack...OpenAIResponseObject)`
    holds; records stored for llama-stack are written in llama-stack's own class, not this one.""",
        "__annotations__": dict.fromkeys(_FULL_FIELDS, Any),
        **dict.fromkeys(_FULL_FIELDS),
    },
)


# The response objects, built from the core's JSON as pydantic would validate them but without the
# validation (see responses_rs._construct): what a request returns, and what the 0.2.12 store writes.
response_object = Builder(OpenAIResponseObject)
record_object = Builder(LlamaStackResponseObject)


# Chat messages are built from the core's JSON in one validation call: the union is discriminated by
# `role`, so this yields exactly llama-stack's OpenAIUserMessageParam, OpenAIToolMessageParam, ...
MESSAGES = TypeAdapter(list[ls_inference.OpenAIMessageParam])
INPUT_ITEMS = TypeAdapter(list[OpenAIResponseInput])

# 0.2.12 passes `response_format`; 0.2.7 has no such type.
_response_format = getattr(ls_inference, "OpenAIResponseFormatParam", None)
RESPONSE_FORMAT: TypeAdapter[Any] | None = TypeAdapter(_response_format) if _response_format is not None else None


def ls_class(name: str, fallback: type[BaseModel] = BaseModel) -> type[BaseModel]:
    """llama-stack's class of that name in the Responses API module, when this version has it."""
    cls = getattr(ls_responses, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else fallback


# The record llama-stack 0.2.7 stores (the response and every input item that led to it). Both
# versions define the model in the provider module; llama-stack's own tests build it, so using that
# very class keeps `isinstance` and equality true for them.
PreviousResponseWithInputItems = _ls_impl.OpenAIResponsePreviousResponseWithInputItems


try:  # 0.2.12 lists responses in this order by default
    from llama_stack.apis.common.responses import Order as _Order

    ORDER_DESC: Any = _Order.desc
except ImportError:  # 0.2.7 has no listing
    ORDER_DESC = "desc"


def deletion_result(response_id: str) -> dict[str, Any]:
    """What the OpenAI API answers to DELETE /responses/{id}."""
    return {"id": response_id, "object": "response", "deleted": True}


try:  # 0.2.12's file_search ranking options, as llama-stack passes them to the vector store API
    from llama_stack.apis.vector_io import SearchRankingOptions as _SearchRankingOptions

    SearchRankingOptions: Any = _SearchRankingOptions
except ImportError:
    SearchRankingOptions = None

_INPUT_ITEM = TypeAdapter(OpenAIResponseInput)


def _input_members() -> dict[str, Any]:
    """The members of llama-stack's input union (`left_to_right`), by the `type` literal each one takes."""
    members: dict[str, Any] = {}
    union = get_args(OpenAIResponseInput)[0] if get_origin(OpenAIResponseInput) is Annotated else OpenAIResponseInput
    for member in get_args(union):
        type_field = getattr(member, "model_fields", {}).get("type")
        values = get_args(type_field.annotation) if type_field is not None else ()
        if len(values) != 1 or not isinstance(values[0], str) or values[0] in members:
            return {}  # not the shape this fast path knows: every item goes through the union itself
        members[values[0]] = member
    return members


_INPUT_MEMBERS = _input_members()


def _input_tag(item: Any) -> str:
    kind = item.get("type") if isinstance(item, dict) else getattr(item, "type", None)
    return kind if isinstance(kind, str) and kind in _INPUT_MEMBERS else ""


# llama-stack's input union tries its members left to right, and every member but the matching one fails
# on its `type` literal first: a union dispatched on `type` picks the very member the union would, in a
# third of the time (no failed attempts). An item without a known `type` goes through the union itself.
_FAST_INPUT_ITEMS: TypeAdapter[Any] = TypeAdapter(
    list[  # type: ignore[misc]
        Annotated[
            Union[  # noqa: UP007
                tuple(Annotated[member, Tag(tag)] for tag, member in _INPUT_MEMBERS.items())
                + (Annotated[OpenAIResponseInput, Tag("")],)
            ],
            Discriminator(_input_tag),
        ]
    ]
)

# The input items built without validation when they fit the plans (responses_rs._construct).
_INPUT_CONSTRUCTOR = root_constructor(list[OpenAIResponseInput])


def storable_input(input_json: str) -> list[Any]:
    """The input items as llama-stack's store takes them.

    A chained input holds the previous response's output, and llama-stack's input union has no MCP
    item types (`mcp_list_tools`, `mcp_call`), so those are left out of the stored input. They carry
    nothing the model is shown again (the conversion to messages skips them too).
    """
    if _INPUT_CONSTRUCTOR is not None:
        built = _INPUT_CONSTRUCTOR[0].build_root_json(_INPUT_CONSTRUCTOR[1], input_json)
        if built is not None:
            return built  # type: ignore[no-any-return]
    try:
        return _FAST_INPUT_ITEMS.validate_json(input_json)
    except ValueError:
        kept = []
        for item in json.loads(input_json):
            try:
                kept.append(_INPUT_ITEM.validate_python(item))
            except ValueError:
                continue
        return kept
