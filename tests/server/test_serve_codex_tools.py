"""The request Codex CLI sends on default settings, through a real ``responses-rs serve`` process with the official
openai client, every stream through the stream validator ("full" schema): ``custom`` (grammar), ``namespace`` and
client ``tool_search`` tools become chat functions upstream and come back as ``custom_tool_call``, namespaced
``function_call`` and ``tool_search_call`` items; ``web_search`` (no search backend) is left out of what the model
is offered; Codex's other fields (``store: false`` with client item ids, ``include`` of encrypted reasoning, a
replayed reasoning item, ``prompt_cache_key``, ``client_metadata``, ``text.verbosity``, developer messages) are
accepted; the calls and their outputs replay as chat tool calls and tool messages."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from openai.types.responses import Response
from serve_process import serve_fixtures, serve_process
from stream_validator import validate_stream

from responses_rs.testkit import ScriptedChatServer

MODEL = "scripted-model"
GRAMMAR = 'start: begin_patch hunk+ end_patch\nbegin_patch: "*** Begin Patch" LF\nend_patch: "*** End Patch" LF?'
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "exec_command",
        "description": "Runs a command",
        "strict": False,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
    },
    {
        "type": "custom",
        "name": "apply_patch",
        "description": "Apply a patch",
        "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR},
    },
    {
        "type": "namespace",
        "name": "multi_agent_v1",
        "description": "Tools for sub-agents.",
        "tools": [
            {
                "type": "function",
                "name": "close_agent",
                "description": "Close an agent",
                "strict": False,
                "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            }
        ],
    },
    {"type": "tool_search", "execution": "client", "description": "Find more tools"},
    {"type": "web_search", "external_web_access": False},
]


def codex_request(input: list[dict[str, Any]]) -> dict[str, Any]:
    """The fields Codex CLI 0.171 sends on default settings (see the module docstring)."""
    return {
        "model": MODEL,
        "input": input,
        "tools": TOOLS,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "0199-session",
        "client_metadata": {"session_id": "0199-session", "turn_id": "0199-turn"},
        "text": {"verbosity": "low"},
    }


FIRST_INPUT = [
    {
        "type": "message",
        "id": "msg_c0de-1",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Be a coding agent."}],
    },
    {"type": "message", "id": "msg_c0de-2", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}]},
]


chat_server, serve, client = serve_fixtures(MODEL)


def streamed(client: openai.OpenAI, body: dict[str, Any]) -> tuple[Response, list]:
    body = dict(body)
    # Fields the openai client has no parameter for go as they are on the wire.
    extra = {k: body.pop(k) for k in ("client_metadata",) if k in body}
    events = list(client.responses.create(stream=True, extra_body=extra, **body))
    return validate_stream(events, response_cls=Response, schema_host="full"), events


def test_codex_tools_go_upstream_as_chat_functions_and_come_back_as_their_items(
    client: openai.OpenAI, chat_server: ScriptedChatServer
) -> None:
    patch = "*** Begin Patch\n*** Update File: a.py\n@@\n-x = 1\n+x = 2\n*** End Patch\n"
    chat_server.script(
        [
            {
                "reasoning": "Patch it, then close the helper.",
                "tool_calls": [
                    {"name": "apply_patch", "arguments": {"input": patch}, "id": "call_patch"},
                    {"name": "multi_agent_v1__close_agent", "arguments": {"id": "agent-1"}, "id": "call_close"},
                    {"name": "tool_search", "arguments": {"query": "git"}, "id": "call_search"},
                ],
                "chunk_size": 7,
            }
        ]
    )
    final, events = streamed(client, codex_request(FIRST_INPUT))
    assert final.status == "completed"
    sent = chat_server.requests[-1]
    names = [t["function"]["name"] for t in sent["tools"]]
    assert names == ["exec_command", "apply_patch", "multi_agent_v1__close_agent", "tool_search"]
    patch_tool = sent["tools"][1]["function"]
    assert patch_tool["parameters"]["required"] == ["input"]
    assert "*** Begin Patch" in patch_tool["parameters"]["properties"]["input"]["description"]
    assert sent["messages"][0] == {"role": "developer", "content": [{"type": "text", "text": "Be a coding agent."}]}
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "custom_tool_call", "function_call", "tool_search_call"], kinds
    custom, close, search = final.output[1], final.output[2], final.output[3]
    assert (custom.name, custom.call_id, custom.input) == ("apply_patch", "call_patch", patch)
    assert (close.name, close.namespace, close.call_id) == ("close_agent", "multi_agent_v1", "call_close")
    assert json.loads(close.arguments) == {"id": "agent-1"}
    assert (search.execution, search.call_id, search.arguments) == ("client", "call_search", {"query": "git"})
    types = [e.type for e in events]
    assert types.count("response.custom_tool_call_input.done") == 1
    deltas = "".join(e.delta for e in events if e.type == "response.custom_tool_call_input.delta")
    assert deltas == patch
    # The echoed request has every tool as given; web_search was only left out of the model's offer.
    assert [t.type for t in final.tools] == ["function", "custom", "namespace", "tool_search", "web_search"]
    assert final.store is False and final.prompt_cache_key == "0199-session"
    assert final.text is not None and final.text.verbosity == "low"


def test_codex_items_replay_and_the_turn_completes(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    chat_server.script([{"text": "All done."}])
    replay = [
        *FIRST_INPUT,
        {"type": "reasoning", "id": "rs_0199", "summary": [], "encrypted_content": "gAAAA-opaque"},
        {
            "type": "custom_tool_call",
            "id": "ctc_1",
            "call_id": "call_patch",
            "name": "apply_patch",
            "input": "*** Begin Patch\n*** End Patch\n",
        },
        {"type": "custom_tool_call_output", "call_id": "call_patch", "output": "Success. Updated a.py"},
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_close",
            "name": "close_agent",
            "namespace": "multi_agent_v1",
            "arguments": "{}",
        },
        {"type": "function_call_output", "call_id": "call_close", "output": "closed"},
        {
            "type": "tool_search_call",
            "id": "tsc_1",
            "call_id": "call_search",
            "execution": "client",
            "arguments": {"query": "git"},
            "status": "completed",
        },
        {
            "type": "tool_search_output",
            "call_id": "call_search",
            "execution": "client",
            "status": "completed",
            "tools": [{"type": "function", "name": "git_log", "description": "git log"}],
        },
    ]
    final, _ = streamed(client, codex_request(replay))
    assert final.status == "completed" and final.output_text == "All done."
    messages = chat_server.requests[-1]["messages"]
    calls = [(c["id"], c["function"]["name"]) for m in messages if m.get("tool_calls") for c in m["tool_calls"]]
    assert calls == [
        ("call_patch", "apply_patch"),
        ("call_close", "multi_agent_v1__close_agent"),
        ("call_search", "tool_search"),
    ]
    tool_messages = [(m["tool_call_id"], m["content"]) for m in messages if m["role"] == "tool"]
    assert tool_messages[0] == ("call_patch", "Success. Updated a.py")
    assert tool_messages[1] == ("call_close", "closed")
    assert tool_messages[2][0] == "call_search" and "git_log" in tool_messages[2][1]
    # The encrypted reasoning item is not sent to a chat model (it has no field for it).
    assert "gAAAA-opaque" not in json.dumps(messages)


def test_bad_codex_tools_are_a_400_naming_the_field(client: openai.OpenAI) -> None:
    cases = [
        ({"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}, "tools[0].tools[0].type"),
        ({"type": "tool_search", "execution": "server"}, "tools[0].execution"),
        ({"type": "custom"}, "tools[0].name"),
    ]
    for tool, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            client.responses.create(model=MODEL, input="hi", tools=[tool])  # type: ignore[list-item]
        assert param in str(info.value), (param, info.value)


def test_developer_role_system_for_upstreams_without_it(
    chat_server: ScriptedChatServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    chat_server.reset()
    with serve_process(
        chat_server.base_url, tmp_path_factory.mktemp("serve-system"), "--developer-role", "system"
    ) as s:
        oai = openai.OpenAI(base_url=s.base_url, api_key="none", max_retries=0, timeout=30)
        final, _ = streamed(oai, codex_request(FIRST_INPUT))
        oai.close()
    assert final.status == "completed"
    messages = chat_server.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == [{"type": "text", "text": "Be a coding agent."}]
    # The response keeps the input as the client sent it.
    assert final.model_dump()["status"] == "completed"


def test_a_namespaced_tool_too_long_for_a_chat_name(client: openai.OpenAI, chat_server: ScriptedChatServer) -> None:
    # `{namespace}__{name}` past OpenAI's 64 characters (or with other characters than a-zA-Z0-9_-) goes upstream
    # under a short form; the model's call of it comes back with the namespace and name the request gave.
    namespace = "github_enterprise_server_for_the_platform_team"
    tools: list[dict[str, Any]] = [
        {
            "type": "namespace",
            "name": namespace,
            "description": "GitHub",
            "tools": [
                {"type": "function", "name": "list_pull_requests", "parameters": {"type": "object"}},
                {"type": "function", "name": "get.issue", "parameters": {"type": "object"}},
            ],
        }
    ]
    first = {"model": MODEL, "input": "list them", "tools": tools}
    chat_server.script([{"text": "Which repository?"}])
    streamed(client, first)
    offered = [t["function"]["name"] for t in chat_server.requests[-1]["tools"]]
    assert len(offered) == 2 and len(set(offered)) == 2
    for name in offered:
        assert len(name) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in name), name
    assert offered[0].startswith("github_enterprise_server_for_the_") and "__list_pull_requests_" in offered[0]
    chat_server.script(
        [{"tool_calls": [{"name": offered[0], "arguments": "{}", "id": "c1"}, {"name": offered[1], "id": "c2"}]}]
    )
    final, _ = streamed(client, first)
    calls = [(item.type, item.namespace, item.name, item.call_id) for item in final.output]
    assert calls == [
        ("function_call", namespace, "list_pull_requests", "c1"),
        ("function_call", namespace, "get.issue", "c2"),
    ]
    # Replayed, the calls go upstream under the names the model was offered.
    replay = [*(item.model_dump(exclude_none=True) for item in final.output)]
    replay += [{"type": "function_call_output", "call_id": c, "output": "[]"} for c in ("c1", "c2")]
    chat_server.script([{"text": "None open."}])
    done, _ = streamed(client, {**first, "input": [{"role": "user", "content": "list them"}, *replay]})
    assert done.output_text == "None open."
    sent = chat_server.requests[-1]["messages"]
    assert [c["function"]["name"] for c in sent[1]["tool_calls"]] == offered
