"""Tests of tests/open_responses_schema.py: the Open Responses OpenAPI document as a validator.

Skipped only when the document is not beside the checkout (``../shared/spec/``).
"""

from __future__ import annotations

import copy
import importlib.metadata
from typing import Any

import jsonschema
import pytest
from open_responses_schema import (
    EXCLUDED_ITEM_TYPES,
    EXCLUDED_TOOL_CHOICE_TYPES,
    EXCLUDED_TOOL_TYPES,
    HOST_EXCLUDED_FIELDS,
    HOSTS,
    SPEC_AVAILABLE,
    SPEC_FILE,
    UNSPECIFIED_EVENT_TYPES,
    event_components,
    installed_host,
    spec_document,
    type_branches,
    validate_event,
    validate_response,
)
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

pytestmark = pytest.mark.skipif(not SPEC_AVAILABLE, reason=f"no Open Responses spec at {SPEC_FILE}")

LLAMA_STACK_HOSTS = ("llama-stack-0.2.7", "llama-stack-0.2.12")


def full_response() -> dict[str, Any]:
    """A response that follows the spec in full: every required field, a reasoning item, a message
    with a text part (with a URL citation) and a refusal part, a function call, usage."""
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_700_000_000,
        "completed_at": 1_700_000_002,
        "status": "completed",
        "incomplete_details": None,
        "model": "m",
        "previous_response_id": None,
        "instructions": "Be brief.",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": "The user wants the weather."}],
            },
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": "See example.com.",
                        "annotations": [
                            {
                                "type": "url_citation",
                                "url": "https://example.com",
                                "start_index": 4,
                                "end_index": 15,
                                "title": "Example",
                            }
                        ],
                    },
                    {"type": "refusal", "refusal": "I can't share more."},
                ],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "status": "completed",
            },
        ],
        "error": None,
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Current weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": None,
            }
        ],
        "tool_choice": "auto",
        "truncation": "disabled",
        "parallel_tool_calls": True,
        "text": {"format": {"type": "text"}},
        "top_p": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "top_logprobs": 0,
        "temperature": 1.0,
        "reasoning": {"effort": None, "summary": None},
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "total_tokens": 30,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 5},
        },
        "max_output_tokens": None,
        "max_tool_calls": None,
        "store": True,
        "background": False,
        "service_tier": "default",
        "metadata": {},
        "safety_identifier": None,
        "prompt_cache_key": None,
    }


def raw_validator(component: str) -> jsonschema.Draft202012Validator:
    """A validator over the unmodified document (plain oneOf, no exclusions, no errata)."""
    uri = "urn:test:raw-open-responses"
    registry = Registry().with_resource(uri, Resource.from_contents(spec_document(), default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"{uri}#/components/schemas/{component}"}, registry=registry)


# ------------------------------------------------------------------------------------------------
# responses


@pytest.mark.parametrize("host", HOSTS)
def test_full_response_passes(host):
    validate_response(full_response(), host=host)


def test_full_response_passes_the_unmodified_document_too():
    """The in-memory rewrites (dispatch on type, errata, exclusions) accept nothing new here."""
    errors = list(raw_validator("ResponseResource").iter_errors(full_response()))
    assert not errors, [e.message for e in errors]


def test_missing_completed_at_fails_naming_it():
    response = full_response()
    del response["completed_at"]
    with pytest.raises(
        AssertionError, match=r"response 'resp_1' .*ResponseResource.*missing required \['completed_at'\]"
    ):
        validate_response(response, host="full")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r.update(created_at="yesterday"), "created_at: 'yesterday' is not of type 'integer'"),
        (lambda r: r.update(temperature=None), "temperature: None is not of type 'number'"),
        (lambda r: r["output"][1].update(status="done"), r"output\[1\]\.status: 'done' is not one of"),
        (lambda r: r["output"][1]["content"][0].pop("annotations"), r"output\[1\]\.content\[0\]: missing required"),
        (lambda r: r["output"][2].pop("call_id"), r"output\[2\]: missing required \['call_id'\]"),
        (lambda r: r["output"][0].pop("summary"), r"output\[0\]: missing required \['summary'\]"),
        (
            lambda r: r["output"].append({"type": "bogus_call", "id": "x"}),
            r"output\[3\]\.type: 'bogus_call' is not one of",
        ),
        (lambda r: r["usage"].pop("input_tokens_details"), r"usage: missing required \['input_tokens_details'\]"),
        (lambda r: r.update(incomplete_details={}), r"incomplete_details: missing required \['reason'\]"),
        (lambda r: r.update(error={"message": "boom"}), r"error: missing required \['code'\]"),
        (lambda r: r["tools"][0].pop("strict"), r"tools\[0\]: missing required \['strict'\]"),
        (lambda r: r["tools"].append({"type": "code_interpreter"}), r"tools\[1\]\.type: 'code_interpreter' is not one"),
        (lambda r: r.update(tool_choice="sometimes"), "tool_choice"),
    ],
)
def test_broken_response_fails_naming_the_field(mutate, expected):
    response = full_response()
    mutate(response)
    with pytest.raises(AssertionError, match=expected):
        validate_response(response, host="full")


def test_excluded_item_types_are_skipped():
    """Items whose types the spec does not define are left out of validation (for every host), however
    they look; the other items are still validated."""
    response = full_response()
    response["output"] += [
        {"type": "mcp_call", "id": "mcp_1", "anything": ["goes"]},
        {"type": "mcp_list_tools"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "file_search_call", "id": "fs_1", "queries": [], "status": "completed"},
        {"type": "mcp_approval_request", "id": "mcpr_1", "name": "lookup"},
        {"type": "custom_tool_call", "id": "ctc_1", "call_id": "c", "name": "apply_patch", "input": "x"},
        {"type": "tool_search_call", "id": "tsc_1", "execution": "client", "arguments": {}, "status": "completed"},
    ]
    assert {item["type"] for item in response["output"][3:]} == set(EXCLUDED_ITEM_TYPES)
    for host in HOSTS:
        validate_response(response, host=host)
    del response["output"][1]["content"][0]["annotations"]
    with pytest.raises(AssertionError, match=r"output\[1\]\.content\[0\]: missing required \['annotations'\]"):
        validate_response(response, host="full")


def test_excluded_item_types_are_skipped_in_events():
    item = {"type": "mcp_call", "id": "mcp_1", "name": "lookup"}
    validate_event(
        {"type": "response.output_item.added", "sequence_number": 3, "output_index": 0, "item": item}, host="full"
    )


def test_excluded_tool_types_are_skipped():
    response = full_response()
    response["tools"] += [{"type": t, "whatever": 1} for t in EXCLUDED_TOOL_TYPES]
    validate_response(response, host="full")


def test_tool_choices_naming_built_in_tools_are_skipped_unknown_ones_fail():
    for kind in EXCLUDED_TOOL_CHOICE_TYPES:
        response = full_response()
        response["tool_choice"] = {"type": kind}
        validate_response(response, host="full")
    response = full_response()
    response["tool_choice"] = {"type": "teleport"}
    with pytest.raises(AssertionError, match="tool_choice"):
        validate_response(response, host="full")


def test_errata_json_schema_format_carries_its_schema():
    response = full_response()
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}}
    response["text"] = {
        "format": {"type": "json_schema", "name": "capital", "description": None, "schema": schema, "strict": True}
    }
    validate_response(response, host="full")
    # the unmodified document only allows null there
    assert list(raw_validator("ResponseResource").iter_errors(response))


# ------------------------------------------------------------------------------------------------
# per-host exclusions


def llama_stack_shaped_response() -> dict[str, Any]:
    """Only the fields llama-stack 0.2.12's OpenAIResponseObject has (values the spec accepts), output
    text parts without annotations, as that class serialises them."""
    full = full_response()
    keep = (
        "created_at error id model object output parallel_tool_calls previous_response_id status "
        "temperature text top_p truncation"
    ).split()
    response = {k: full[k] for k in keep}
    response["output"] = [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Hi."}],
        }
    ]
    response["user"] = None
    return response


def test_llama_stack_hosts_exclude_what_their_class_cannot_carry():
    response = llama_stack_shaped_response()
    validate_response(response, host="llama-stack-0.2.12")
    without_text = {k: v for k, v in response.items() if k != "text"}
    validate_response(without_text, host="llama-stack-0.2.7")
    with pytest.raises(AssertionError, match=r"missing required \['text'\]"):
        validate_response(without_text, host="llama-stack-0.2.12")
    with pytest.raises(AssertionError, match=r"missing required \['completed_at', 'incomplete_details'") as info:
        validate_response(response, host="full")
    assert r"output[0].content[0]: missing required ['annotations']" in str(info.value)


def test_host_exclusions_only_relax_required():
    """An excluded field that is present is still validated."""
    response = llama_stack_shaped_response()
    response["usage"] = {"input_tokens": 1}
    with pytest.raises(AssertionError, match=r"usage: missing required"):
        validate_response(response, host="llama-stack-0.2.12")


def test_host_table_matches_the_installed_llama_stack_class():
    """HOST_EXCLUDED_FIELDS for the installed llama-stack lists exactly the spec's required response fields
    that its OpenAIResponseObject has no field for (and the output_text part's annotations)."""
    from llama_stack.apis.agents.openai_responses import (
        OpenAIResponseObject,
        OpenAIResponseOutputMessageContentOutputText,
    )

    host = f"llama-stack-{importlib.metadata.version('llama_stack')}"
    assert host in LLAMA_STACK_HOSTS
    assert installed_host() == host
    required = spec_document()["components"]["schemas"]["ResponseResource"]["required"]
    lacks = [f for f in required if f not in OpenAIResponseObject.model_fields]
    assert sorted(HOST_EXCLUDED_FIELDS[host]["ResponseResource"]) == sorted(lacks)
    assert "annotations" not in OpenAIResponseOutputMessageContentOutputText.model_fields
    assert HOST_EXCLUDED_FIELDS[host]["OutputTextContent"] == ("annotations",)
    assert HOST_EXCLUDED_FIELDS["full"] == {}


def test_unknown_host_rejected():
    with pytest.raises(ValueError, match="unknown host 'ogx'"):
        validate_response(full_response(), host="ogx")


# ------------------------------------------------------------------------------------------------
# events


def test_event_type_map_is_built_from_the_spec():
    mapping = event_components()
    assert mapping["response.output_text.delta"] == "ResponseOutputTextDeltaStreamingEvent"
    assert mapping["response.completed"] == "ResponseCompletedStreamingEvent"
    assert mapping["response.refusal.done"] == "ResponseRefusalDoneStreamingEvent"
    assert all(name.endswith("StreamingEvent") for name in mapping.values())
    assert not set(mapping) & set(UNSPECIFIED_EVENT_TYPES)
    for alias, _required, _reason in UNSPECIFIED_EVENT_TYPES.values():
        assert alias is None or alias in mapping


def delta_event(**over) -> dict[str, Any]:
    event = {
        "type": "response.output_text.delta",
        "sequence_number": 5,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hel",
        "logprobs": [],
    }
    event.update(over)
    return event


def test_valid_events_pass():
    validate_event(delta_event(), host="full")
    response = full_response()
    validate_event({"type": "response.completed", "sequence_number": 9, "response": response}, host="full")
    part = {"type": "output_text", "text": "", "annotations": []}
    event = {"type": "response.content_part.added", "sequence_number": 2, "item_id": "msg_1", "output_index": 0}
    validate_event({**event, "content_index": 0, "part": part}, host="full")


def test_event_with_wrong_field_type_fails():
    with pytest.raises(AssertionError, match=r"'response.output_text.delta'.*delta: 7 is not of type 'string'"):
        validate_event(delta_event(delta=7), host="full")
    with pytest.raises(AssertionError, match=r"sequence_number: '5' is not of type 'integer'"):
        validate_event(delta_event(sequence_number="5"), host="full")


def test_event_response_payload_is_validated():
    response = full_response()
    del response["completed_at"]
    event = {"type": "response.completed", "sequence_number": 9, "response": response}
    with pytest.raises(AssertionError, match=r"response: missing required \['completed_at'\]"):
        validate_event(event, host="full")
    validate_event(event, host="llama-stack-0.2.12")


def test_unspecified_event_with_a_spec_alias_is_validated_as_the_alias():
    event = {
        "type": "response.reasoning_text.delta",
        "sequence_number": 3,
        "item_id": "rs_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hm",
    }
    validate_event(event, host="full")
    with pytest.raises(AssertionError, match=r"as the spec's 'response.reasoning.delta'.*missing required \['delta'\]"):
        validate_event({k: v for k, v in event.items() if k != "delta"}, host="full")


def test_unspecified_events_are_validated_for_their_common_fields():
    event = {"type": "response.web_search_call.searching", "sequence_number": 3, "item_id": "ws_1", "output_index": 0}
    validate_event(event, host="full")
    with pytest.raises(AssertionError, match=r"missing \['item_id'\]"):
        validate_event({k: v for k, v in event.items() if k != "item_id"}, host="full")
    with pytest.raises(AssertionError, match=r"output_index: '0' is not of type 'integer'"):
        validate_event({**event, "output_index": "0"}, host="full")
    args = {"type": "response.mcp_call_arguments.done", "sequence_number": 4, "item_id": "mcp_1", "output_index": 1}
    with pytest.raises(AssertionError, match=r"missing \['arguments'\]"):
        validate_event(args, host="full")
    validate_event({**args, "arguments": "{}"}, host="full")


def test_event_type_neither_in_the_spec_nor_listed_fails():
    # llama-stack 0.2.12's spelling of the MCP argument events is not accepted: openai's is
    event = {"type": "response.mcp_call.arguments.delta", "sequence_number": 1, "item_id": "m", "output_index": 0}
    with pytest.raises(AssertionError, match="neither defined by the Open Responses spec nor listed"):
        validate_event({**event, "delta": "{"}, host="full")


# ------------------------------------------------------------------------------------------------
# the document's unions


def _resolve(node: dict, schemas: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = schemas[node["$ref"].rsplit("/", 1)[1]]
    return node


def _reachable_unions(roots: list[str], schemas: dict) -> list[tuple[str, dict]]:
    seen: set[str] = set()
    found: list[tuple[str, dict]] = []

    def walk(node: Any, where: str):
        if isinstance(node, list):
            for v in node:
                walk(v, where)
        elif isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    walk(schemas[name], name)
            if "oneOf" in node:
                found.append((where, node))
            for k, v in node.items():
                if k != "$ref":
                    walk(v, where)

    for root in roots:
        walk({"$ref": f"#/components/schemas/{root}"}, root)
    return found


def _disjoint(a: dict, b: dict) -> bool:
    """Two branches no instance can both match: different JSON types, or objects requiring different
    single ``type`` values."""
    ta, tb = a.get("type"), b.get("type")
    if ta and tb and ta != tb:
        return True
    values = []
    for s in (a, b):
        prop = s.get("properties", {}).get("type", {})
        if "type" not in s.get("required", ()) or len(prop.get("enum", ())) != 1:
            return False
        values.append(prop["enum"][0])
    return values[0] != values[1]


def test_every_reachable_union_is_disjoint():
    """No valid response or event can match two branches of a oneOf, so the spec's oneOf never rejects a
    valid object; the module dispatches each one with distinct ``type`` values on ``type`` (clear errors,
    room for the excluded item types) and leaves the rest as they are."""
    schemas = spec_document()["components"]["schemas"]
    unions = _reachable_unions(["ResponseResource", *event_components().values()], schemas)
    assert unions
    dispatched = 0
    for where, node in unions:
        if type_branches(node, schemas) is not None:
            dispatched += 1
            continue
        branches = [_resolve(b, schemas) for b in node["oneOf"]]
        for i in range(len(branches)):
            for j in range(i + 1, len(branches)):
                assert _disjoint(branches[i], branches[j]), f"{where}: branches {i} and {j} of a oneOf overlap"
    assert dispatched >= 4  # ItemField, Tool, content parts, annotations, text formats


def test_raw_oneof_gives_no_field_names_the_dispatch_does():
    """Why the unions are dispatched: the plain oneOf only says 'not valid under any of the given schemas'."""
    response = full_response()
    del response["output"][2]["call_id"]
    raw = [e.message for e in raw_validator("ResponseResource").iter_errors(response)]
    assert any("is not valid under any of the given schemas" in m for m in raw)
    with pytest.raises(AssertionError, match=r"output\[2\]: missing required \['call_id'\]"):
        validate_response(copy.deepcopy(response), host="full")
