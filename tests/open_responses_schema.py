"""Responses API objects checked against the Open Responses OpenAPI document.

The document is read from the checkout's sibling folder ``../shared/spec/`` (a fresh clone in CI has
``shared/`` beside it); nothing of it is copied into this repository. ``SPEC_AVAILABLE`` says whether
it is there.

    validate_response(obj, host=...)   # a response object (JSON dict) against ``ResponseResource``
    validate_event(event, host=...)    # a stream event (JSON dict) against the event schema its type selects

Both raise ``AssertionError`` naming the object, the spec component, the host and each offending field.

What is left out, and why, is in the tables right below: ``EXCLUDED_ITEM_TYPES`` and
``EXCLUDED_TOOL_TYPES`` and ``EXCLUDED_TOOL_CHOICE_TYPES`` and ``EXCLUDED_ANNOTATION_TYPES`` (every host),
``UNSPECIFIED_EVENT_TYPES`` (event types the spec does not define),
``HOST_EXCLUDED_FIELDS`` (per host) and ``SPEC_ERRATA``. Nothing else is relaxed.

How the document is used:
* It is OpenAPI 3.1.0 without ``jsonSchemaDialect``, so its schemas are JSON Schema 2020-12 (the OAS
  3.1 base dialect adds only annotation keywords such as ``discriminator``, ``example``, ``x-*``, which
  validation ignores). ``$ref``s (``#/components/schemas/...``) are resolved with ``referencing``
  against the whole document, registered under ``BASE_URI``.
* ``discriminator`` is an OpenAPI keyword that ``jsonschema`` ignores, so a discriminated union is a
  plain ``oneOf``: exactly one branch must match. Every ``oneOf`` that a response or an event reaches
  has branches with distinct, required ``type`` values, so no valid object matches two branches (the
  unit tests check this on the unmodified document), but a plain ``oneOf`` answers an invalid item
  with "is not valid under any of the given schemas" and cannot leave out the item types in
  ``EXCLUDED_ITEM_TYPES``. So each such ``oneOf`` is rewritten, in memory, into a dispatch on ``type``:
  ``type`` must be one of the branches' values and the object is validated against the one branch
  its ``type`` selects (an ``if``/``then`` per branch). Unions whose branches do not all carry a
  distinct required ``type`` keep their ``oneOf`` unchanged.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_FILE = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "open-responses-openapi-2026-04-24.json"
SPEC_AVAILABLE = SPEC_FILE.is_file()
BASE_URI = "urn:open-responses:openapi-2026-04-24"

# ================================================================================================
# Exclusions: the one place to look.
# ================================================================================================

# ---- every host -------------------------------------------------------------------------------

# Output item types the spec's ``ItemField`` union does not define (it has message, function_call,
# function_call_output, reasoning, compaction). Items of these types are accepted without
# validation wherever an item appears (``response.output``, ``output_item.added/done``'s ``item``).
EXCLUDED_ITEM_TYPES: dict[str, str] = {
    "web_search_call": "OpenAI's built-in web search item; the spec has no web search tool",
    "file_search_call": "OpenAI's built-in file search item; the spec has no file search tool",
    "mcp_call": "OpenAI's remote MCP tool call item; the spec has no MCP tool",
    "mcp_list_tools": "OpenAI's remote MCP tool listing item; the spec has no MCP tool",
    "mcp_approval_request": "OpenAI's request for approval of a remote MCP tool call; the spec has no MCP tool",
    "custom_tool_call": "OpenAI's call of a custom (free-form input) tool; the spec has no custom tool",
    "tool_search_call": "OpenAI's client-executed tool search call; the spec has no tool search",
}

# ``response.tool_choice`` objects naming a built-in tool: the spec's choices name only functions.
# Accepted without validation; an unknown type still fails.
EXCLUDED_TOOL_CHOICE_TYPES: dict[str, str] = {
    "web_search": "forces OpenAI's built-in web search tool",
    "web_search_preview": "the same, earlier name",
    "file_search": "forces OpenAI's built-in file search tool",
    "mcp": "forces a tool of one MCP server",
}

# Tool types the spec's ``Tool`` union does not define (it has only ``function``). Such entries of
# ``response.tools`` are accepted without validation; an unknown type still fails.
EXCLUDED_TOOL_TYPES: dict[str, str] = {
    "web_search": "OpenAI's built-in web search tool (llama-stack: builtin::websearch)",
    "web_search_preview": "OpenAI's earlier name of the web search tool",
    "web_search_preview_2025_03_11": "OpenAI's dated name of the web search tool (llama-stack accepts it)",
    "file_search": "OpenAI's built-in file search tool (llama-stack 0.2.12: vector stores)",
    "mcp": "OpenAI's remote MCP tool (llama-stack 0.2.12)",
    "custom": "OpenAI's custom tool with free-form input (Codex CLI's apply_patch)",
    "namespace": "OpenAI's group of function tools under a name (Codex CLI sends them)",
    "tool_search": "OpenAI's tool search, here executed by the client (Codex CLI sends it)",
}

# Annotation types the spec's ``Annotation`` union does not define (it has only ``url_citation``).
# Accepted without validation wherever an annotation appears (output_text parts,
# ``response.output_text.annotation.added``); an unknown type still fails.
EXCLUDED_ANNOTATION_TYPES: dict[str, str] = {
    "file_citation": "OpenAI's citation of a file its built-in file search found; the spec has no file search tool",
}

# Stream event types the spec does not define: (the spec's event of the same shape, if any;
# the fields the event must carry besides type and sequence_number; why it is not in the spec).
# An event with an alias is validated as that spec event. Any other is validated against a schema
# of the common fields (type, sequence_number, item_id, output_index, delta, arguments), with a
# ``response`` checked as the spec's ``ResponseResource`` and an ``item`` as its ``ItemField``.
UNSPECIFIED_EVENT_TYPES: dict[str, tuple[str | None, tuple[str, ...], str]] = {
    "response.reasoning_text.delta": (
        "response.reasoning.delta",
        (),
        "openai-python's name; the spec spells it response.reasoning.delta (same fields)",
    ),
    "response.reasoning_text.done": (
        "response.reasoning.done",
        (),
        "openai-python's name; the spec spells it response.reasoning.done (same fields)",
    ),
    "response.web_search_call.in_progress": (None, ("item_id", "output_index"), "no web search in the spec"),
    "response.web_search_call.searching": (None, ("item_id", "output_index"), "no web search in the spec"),
    "response.web_search_call.completed": (None, ("item_id", "output_index"), "no web search in the spec"),
    "response.file_search_call.in_progress": (None, ("item_id", "output_index"), "no file search in the spec"),
    "response.file_search_call.searching": (None, ("item_id", "output_index"), "no file search in the spec"),
    "response.file_search_call.completed": (None, ("item_id", "output_index"), "no file search in the spec"),
    "response.custom_tool_call_input.delta": (
        None,
        ("item_id", "output_index", "delta"),
        "no custom tools in the spec",
    ),
    "response.custom_tool_call_input.done": (None, ("item_id", "output_index"), "no custom tools in the spec"),
    "response.mcp_call_arguments.delta": (None, ("item_id", "output_index", "delta"), "no MCP in the spec"),
    "response.mcp_call_arguments.done": (None, ("item_id", "output_index", "arguments"), "no MCP in the spec"),
    "response.mcp_call.in_progress": (None, ("item_id", "output_index"), "no MCP in the spec"),
    "response.mcp_call.completed": (None, ("item_id", "output_index"), "no MCP in the spec"),
    "response.mcp_call.failed": (None, ("item_id", "output_index"), "no MCP in the spec"),
    "response.mcp_list_tools.in_progress": (None, ("item_id", "output_index"), "no MCP in the spec"),
    "response.mcp_list_tools.completed": (None, ("item_id", "output_index"), "no MCP in the spec"),
    "response.mcp_list_tools.failed": (None, ("item_id", "output_index"), "no MCP in the spec"),
    "response.compaction.compacting": (
        None,
        ("item_id", "output_index"),
        "openai-python's event of a compaction_trigger item; the spec has compaction only by /responses/compact",
    ),
}

# ---- per host ---------------------------------------------------------------------------------

# Fields the spec requires that a host's own response classes have no field for, by spec component.
# They are only dropped from the component's ``required`` list: when present they are validated.
#
# llama-stack 0.2.x answers with its ``OpenAIResponseObject`` (llama_stack/apis/agents/
# openai_responses.py): responses retrieved from its store are parsed back into that class, and
# output items are that module's item classes, whose ``output_text`` part
# (``OpenAIResponseOutputMessageContentOutputText``: text, type) has no ``annotations``.
# Note: the create route is registered with ``response_model=None`` (0.2.7 and 0.2.12), so a
# non-streamed create answer is whatever object the implementation returns, dumped as is: a field
# that responses-rs' own subclass adds at the top level (``instructions`` today) does reach the
# client. "full" is the strict check for such answers.
_LLAMA_STACK_0212_RESPONSE_LACKS = (
    "completed_at",
    "incomplete_details",
    "instructions",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "top_logprobs",
    "reasoning",
    "usage",
    "max_output_tokens",
    "max_tool_calls",
    "store",
    "background",
    "service_tier",
    "metadata",
    "safety_identifier",
    "prompt_cache_key",
)
HOST_EXCLUDED_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "full": {},
    "llama-stack-0.2.12": {
        # OpenAIResponseObject has: created_at error id model object output parallel_tool_calls
        # previous_response_id status temperature text top_p truncation user
        "ResponseResource": _LLAMA_STACK_0212_RESPONSE_LACKS,
        "OutputTextContent": ("annotations",),
    },
    "llama-stack-0.2.7": {
        # OpenAIResponseObject has: created_at error id model object output parallel_tool_calls
        # previous_response_id status temperature top_p truncation user (no ``text``)
        "ResponseResource": (*_LLAMA_STACK_0212_RESPONSE_LACKS, "text"),
        "OutputTextContent": ("annotations",),
    },
}
HOSTS = tuple(HOST_EXCLUDED_FIELDS)

# ---- spec errata ------------------------------------------------------------------------------

# Places where the document cannot be what it means; each is patched in memory as stated.
SPEC_ERRATA: dict[str, str] = {
    "JsonSchemaResponseFormat.schema": (
        "the document allows only null (anyOf [{type: null}]: the object branch was lost in generation); "
        "openai-python and the prose carry the JSON schema object here, so an object or null is accepted"
    ),
}

# ================================================================================================


def installed_host() -> str:
    """The host name of the installed llama-stack (``"full"`` without llama-stack or for another version)."""
    try:
        version = importlib.metadata.version("llama_stack")
    except importlib.metadata.PackageNotFoundError:
        return "full"
    host = f"llama-stack-{version}"
    return host if host in HOST_EXCLUDED_FIELDS else "full"


@functools.cache
def spec_document() -> dict[str, Any]:
    """The unmodified OpenAPI document."""
    if not SPEC_AVAILABLE:
        raise FileNotFoundError(f"the Open Responses OpenAPI document is not at {SPEC_FILE}")
    doc = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    version = str(doc.get("openapi", ""))
    if not version.startswith("3.1"):
        raise RuntimeError(
            f"{SPEC_FILE.name}: openapi {version!r}; this module reads OpenAPI 3.1 (JSON Schema 2020-12)"
        )
    if doc.get("jsonSchemaDialect") not in (None, "https://spec.openapis.org/oas/3.1/dialect/base"):
        raise RuntimeError(f"{SPEC_FILE.name}: unexpected jsonSchemaDialect {doc['jsonSchemaDialect']!r}")
    return doc


def _schemas(doc: dict) -> dict[str, Any]:
    return doc["components"]["schemas"]


def _ref_name(ref: str) -> str:
    prefix = "#/components/schemas/"
    assert ref.startswith(prefix), ref
    return ref[len(prefix) :]


def _single_type_value(schema: dict) -> str | None:
    """The one ``type`` value an object schema requires, if it requires exactly one."""
    prop = schema.get("properties", {}).get("type", {})
    values = prop.get("enum")
    if "type" in schema.get("required", ()) and isinstance(values, list) and len(values) == 1:
        return values[0]
    return None


def type_branches(node: dict, schemas: dict) -> dict[str, str] | None:
    """``{type value: $ref}`` of a ``oneOf`` whose branches are all $refs to object schemas that each
    require one distinct ``type`` value; None for any other union."""
    branches: dict[str, str] = {}
    for branch in node.get("oneOf", ()):
        ref = branch.get("$ref") if isinstance(branch, dict) else None
        if ref is None or len(branch) != 1:
            return None
        value = _single_type_value(schemas[_ref_name(ref)])
        if value is None or value in branches:
            return None
        branches[value] = ref
    return branches or None


def _dispatch(node: dict, branches: dict[str, str], unvalidated: dict[str, str]) -> dict:
    out = {k: v for k, v in node.items() if k not in ("oneOf", "discriminator")}
    out["type"] = "object"
    out["required"] = ["type"]
    out["properties"] = {"type": {"enum": [*branches, *unvalidated]}}
    out["allOf"] = [
        {
            "if": {"type": "object", "required": ["type"], "properties": {"type": {"const": value}}},
            "then": {"$ref": ref},
        }
        for value, ref in branches.items()
    ]
    return out


def _rewrite_unions(node: Any, schemas: dict, unvalidated: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_rewrite_unions(v, schemas, {}) for v in node]
    if not isinstance(node, dict):
        return node
    rewritten = {k: _rewrite_unions(v, schemas, {}) for k, v in node.items()}
    branches = type_branches(node, schemas)
    if branches is not None:
        return _dispatch(rewritten, branches, unvalidated)
    return rewritten


UNSPECIFIED_EVENT_SCHEMA = "x-responses-rs-UnspecifiedEvent"


@functools.cache
def host_document(host: str) -> dict[str, Any]:
    """The document as validated for ``host``: errata patched, host exclusions applied, unions dispatched."""
    if host not in HOST_EXCLUDED_FIELDS:
        raise ValueError(f"unknown host {host!r}; one of {HOSTS}")
    doc = copy.deepcopy(spec_document())
    schemas = _schemas(doc)
    # errata
    schemas["JsonSchemaResponseFormat"]["properties"]["schema"] = {
        "anyOf": [{"type": "object"}, {"type": "null"}],
        "description": "patched, see SPEC_ERRATA",
    }
    # per-host exclusions
    for component, fields in HOST_EXCLUDED_FIELDS[host].items():
        schema = schemas[component]
        unknown = [f for f in fields if f not in schema.get("properties", {})]
        assert not unknown, f"HOST_EXCLUDED_FIELDS[{host!r}][{component!r}] names fields the spec lacks: {unknown}"
        schema["required"] = [f for f in schema.get("required", ()) if f not in fields]
    # discriminated unions -> dispatch on type (every host: item and tool types the spec lacks)
    original = _schemas(spec_document())
    for name in list(schemas):
        unvalidated = {
            "ItemField": EXCLUDED_ITEM_TYPES,
            "Tool": EXCLUDED_TOOL_TYPES,
            "Annotation": EXCLUDED_ANNOTATION_TYPES,
        }.get(name, {})
        schemas[name] = _rewrite_unions(schemas[name], original, unvalidated)
    spec_choice = schemas["ResponseResource"]["properties"]["tool_choice"]
    schemas["ResponseResource"]["properties"]["tool_choice"] = {
        "anyOf": [
            spec_choice,
            {"type": "object", "required": ["type"], "properties": {"type": {"enum": [*EXCLUDED_TOOL_CHOICE_TYPES]}}},
        ]
    }
    # the schema for stream events the spec does not define (see UNSPECIFIED_EVENT_TYPES)
    schemas[UNSPECIFIED_EVENT_SCHEMA] = {
        "type": "object",
        "required": ["type", "sequence_number"],
        "properties": {
            "type": {"type": "string"},
            "sequence_number": {"type": "integer"},
            "item_id": {"type": "string"},
            "output_index": {"type": "integer"},
            "content_index": {"type": "integer"},
            "delta": {"type": "string"},
            "arguments": {"type": "string"},
            "response": {"$ref": "#/components/schemas/ResponseResource"},
            "item": {"$ref": "#/components/schemas/ItemField"},
        },
    }
    return doc


@functools.cache
def event_components() -> dict[str, str]:
    """``{event type: component name}`` for every streaming event the spec defines: the components
    that require a ``sequence_number`` and a single ``type`` value."""
    mapping: dict[str, str] = {}
    for name, schema in _schemas(spec_document()).items():
        if "sequence_number" not in schema.get("required", ()):
            continue
        value = _single_type_value(schema)
        if value is None:
            continue
        assert value not in mapping, f"event type {value!r} is defined by {mapping[value]} and {name}"
        mapping[value] = name
    overlap = set(mapping) & set(UNSPECIFIED_EVENT_TYPES)
    assert not overlap, f"UNSPECIFIED_EVENT_TYPES lists types the spec defines: {sorted(overlap)}"
    return mapping


@functools.cache
def _validator(host: str, component: str) -> jsonschema.Draft202012Validator:
    doc = host_document(host)
    assert component in _schemas(doc), f"no component {component!r} in the spec"
    registry = Registry().with_resource(BASE_URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"{BASE_URI}#/components/schemas/{component}"}, registry=registry)


def _path(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _leaf(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the error of the branch that came closest: the deepest one, and of
    equally deep ones not a plain type mismatch (``usage: {...}`` should name the missing field, not
    say that it is not null)."""
    while error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    return error


def _check(instance: Any, component: str, host: str, what: str) -> None:
    errors = sorted(
        (_leaf(e) for e in _validator(host, component).iter_errors(instance)), key=lambda e: list(e.absolute_path)
    )
    if not errors:
        return
    described: list[str] = []
    missing: dict[str, list[str]] = {}  # path -> missing required properties, reported together
    for error in errors:
        if error.validator == "required" and isinstance(error.instance, dict):
            names = missing.setdefault(_path(error), [])
            if not names:
                described.append(_path(error))  # placeholder, filled in below
            names += [n for n in error.validator_value if n not in error.instance and n not in names]
        else:
            described.append(f"{_path(error)}: {error.message}")
    described = [f"{d}: missing required {missing[d]}" if d in missing else d for d in described]
    shown = "; ".join(described[:8]) + (f" (and {len(described) - 8} more)" if len(described) > 8 else "")
    raise AssertionError(f"{what} does not follow the Open Responses spec ({component}, host {host}): {shown}")


def validate_response(obj: dict, *, host: str) -> None:
    """A response object (a JSON dict, as sent over HTTP) against the spec's ``ResponseResource``."""
    if not isinstance(obj, dict):
        raise AssertionError(f"response is not a JSON object: {type(obj)!r}")
    _check(obj, "ResponseResource", host, f"response {obj.get('id')!r}")


def validate_event(event: dict, *, host: str, what: str | None = None) -> None:
    """A stream event (a JSON dict, as sent over SSE) against the spec's schema for its ``type``."""
    if not isinstance(event, dict):
        raise AssertionError(f"event is not a JSON object: {type(event)!r}")
    what = what or f"event {event.get('type')!r} (sequence_number={event.get('sequence_number')!r})"
    event_type = event.get("type")
    component = event_components().get(event_type)
    if component is not None:
        _check(event, component, host, what)
        return
    if event_type not in UNSPECIFIED_EVENT_TYPES:
        raise AssertionError(
            f"{what}: type {event_type!r} is neither defined by the Open Responses spec nor listed in "
            "open_responses_schema.UNSPECIFIED_EVENT_TYPES"
        )
    alias, required, _reason = UNSPECIFIED_EVENT_TYPES[event_type]
    if alias is not None:
        _check({**event, "type": alias}, event_components()[alias], host, f"{what} (as the spec's {alias!r})")
        return
    missing = [name for name in required if name not in event]
    if missing:
        raise AssertionError(f"{what}: missing {missing} (UNSPECIFIED_EVENT_TYPES[{event_type!r}])")
    _check(event, UNSPECIFIED_EVENT_SCHEMA, host, what)
