"""`POST /v1/responses/input_tokens` (openai-python: `client.responses.input_tokens.count`).

The count is the upstream's own: the request is turned into the chat request the model would get for the first
round of that response (instructions, the chain of `previous_response_id` or the `conversation`, the input, the
tools offered, as the core maps them), sent with `max_tokens: 1` and not streamed, and the answer's
`usage.prompt_tokens` is the count (the chat template and the tool definitions included, as the model server
counts them). It costs the upstream one prefill and one generated token; nothing is stored.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import App, Send

# The fields of openai-python's `input_tokens.count` that shape the chat request (the others, `truncation`,
# `personality`, `parallel_tool_calls`, `tool_choice`, `reasoning`, are checked by the core like a create's).
COUNT_FIELDS = (
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "conversation",
    "tools",
    "text",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "truncation",
)


async def count(app: App, raw: bytes, owner: str, send: Send) -> None:
    from ._app import ApiError, _answer, _upstream_status

    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    unknown = sorted(k for k in body if k not in COUNT_FIELDS and k != "personality")
    if unknown:
        raise ApiError(400, f"{unknown[0]}: unknown parameter", param=unknown[0], code="unknown_parameter")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ApiError(400, "model: required (the upstream's model counts the tokens)", param="model")
    if body.get("input") is None:
        body["input"] = []
    request = await app._prepare({k: v for k, v in body.items() if k != "personality"} | {"store": False}, owner, False)
    turn = request.turn
    action = turn.next_action()
    while action[0] == "get_tool":  # web_search: no search backend here, left out as a create leaves it out
        turn.tool_failed("no search backend is configured")
        turn.take_warnings()
        action = turn.next_action()
    if action[0] != "infer":
        raise RuntimeError(f"input_tokens: expected the first inference, got {action[0]!r}")
    _, messages_json, tools_json, _stream, _format, _params = action
    parts = ['{"model":', json.dumps(request.model), ',"messages":', messages_json, ',"max_tokens":1,"stream":false']
    if tools_json is not None:
        parts += [',"tools":', tools_json]
    parts.append("}")
    upstream = request.upstream or app.upstream
    async with app._slots(upstream):
        response = await upstream.request("POST", "/chat/completions", "".join(parts).encode())
        try:
            answer = await response.body(4 << 20)
        finally:
            response.close()
    if response.status != 200:
        failure = _upstream_status(response.status, answer)
        status = failure.status if isinstance(failure.status, int) and 400 <= failure.status < 500 else 502
        raise ApiError(status, str(failure), code="upstream_error")
    tokens = _prompt_tokens(answer)
    if tokens is None:
        raise ApiError(502, "the model server's answer has no usage.prompt_tokens to count with", code="upstream_error")
    await _answer(send, 200, json.dumps({"object": "response.input_tokens", "input_tokens": tokens}).encode())


def _prompt_tokens(answer: bytes) -> int | None:
    try:
        usage: Any = json.loads(answer).get("usage") or {}
    except (ValueError, AttributeError):
        return None
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
