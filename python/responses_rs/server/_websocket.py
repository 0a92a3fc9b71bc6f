"""The WebSocket mode of ``POST /v1/responses`` (Open Responses, "WebSocket Transport").

One connection runs its ``response.create`` messages one at a time; each event goes out as its own JSON
text frame (the core's SSE bytes, unframed). Responses created with ``store: false`` are kept in the
connection's own cache (only the newest of a chain: the items a continuation starts from), so a chain
continues on the same socket without being stored; with ``store: true`` a ``previous_response_id`` the cache
does not hold is read from the store. A failed continuation evicts the response it built on. ``generate: false``
(a warm-up) answers with a completed response with no output without calling the model. Failures are
``{"type": "error", "status", "error": {type, code, param, message}}`` envelopes.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from ._app import ApiError, Emit, _stored_items

if TYPE_CHECKING:
    from ._app import App, Receive, Request, Scope, Send

logger = logging.getLogger("responses_rs.server")

CONNECTION_LIMIT_SECONDS = 60 * 60
# HTTP/SSE transport fields: meaningless on a socket, dropped (as OGX's router does).
_TRANSPORT_FIELDS = ("type", "stream", "stream_options")


def _envelope(error: ApiError) -> str:
    body = {"type": error.type, "code": error.code, "param": error.param, "message": str(error)}
    return json.dumps({"type": "error", "status": error.status, "error": body})


async def serve_websocket(app: App, scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    try:
        owner = app._authorize(scope)
    except ApiError as exc:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _envelope(exc)})
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    opened = time.monotonic()
    cache: dict[str, list[Any]] = {}

    async def emit(out: bytes) -> None:
        # `event: TYPE\ndata: JSON\n\n` per event: each JSON its own text frame.
        for block in out.split(b"\n\n"):
            start = block.find(b"\ndata: ")
            if start >= 0:
                await send({"type": "websocket.send", "text": block[start + 7 :].decode()})

    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message["type"] != "websocket.receive":
            continue
        if time.monotonic() - opened > CONNECTION_LIMIT_SECONDS:
            limit = ApiError(
                400,
                "this connection reached its 60-minute limit: open a new one",
                code="websocket_connection_limit_reached",
            )
            await send({"type": "websocket.send", "text": _envelope(limit)})
            await send({"type": "websocket.close", "code": 1000})
            return
        raw = message.get("text")
        if raw is None:
            raw = (message.get("bytes") or b"").decode("utf-8", "replace")
        try:
            await _turn(app, raw, owner, cache, emit)
        except ApiError as exc:
            await send({"type": "websocket.send", "text": _envelope(exc)})


async def _turn(app: App, raw: str, owner: str, cache: dict[str, list[Any]], emit: Emit) -> None:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the message is not JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the message must be a JSON object", code="invalid_json")
    if body.get("type") != "response.create":
        raise ApiError(400, f"type: expected 'response.create', got {body.get('type')!r}", param="type")
    generate = body.pop("generate", True)
    if not isinstance(generate, bool):
        raise ApiError(400, f"generate: must be a boolean, got {type(generate).__name__}", param="generate")
    for name in _TRANSPORT_FIELDS:
        body.pop(name, None)
    if body.get("background"):
        raise ApiError(400, "background: not sent on a WebSocket", param="background")
    previous_id = body.get("previous_response_id")
    try:
        request = await app._prepare(body, owner, True, cache)
    except ApiError:
        if isinstance(previous_id, str):
            cache.pop(previous_id, None)
        raise
    if generate:
        await app._run(request, emit)
        response = json.loads(request.turn.response_json())
    else:
        response = await _warm_up(app, request, emit)
    if isinstance(previous_id, str):
        # Only the newest response of a chain is needed to continue it (a failure evicts it too).
        cache.pop(previous_id, None)
    if response.get("status") in ("completed", "incomplete") and body.get("store", True) is False:
        cache[response["id"]] = [*request.items, *(response.get("output") or [])]


async def _warm_up(app: App, request: Request, emit: Emit) -> dict[str, Any]:
    """`generate: false`: the request's state (instructions, tools, input) becomes a completed response with no
    output, without calling the model; a later turn continues from it with `previous_response_id`."""
    turn = request.turn
    turn.next_action()  # response.created and response.in_progress (a web_search lookup, if any, stays unanswered)
    await emit(turn.drain_sse())
    response = json.loads(turn.snapshot_json("in_progress"))
    response["status"] = "completed"
    response["completed_at"] = int(time.time())
    response_json = json.dumps(response)
    new_items = request.items[request.prefix :]
    if response.get("store"):
        await app.store.put(
            id=response["id"],
            owner=request.owner,
            created_at=int(response.get("created_at") or 0),
            model=str(response.get("model") or ""),
            status="completed",
            previous_response_id=request.stored_previous(response),
            response=response_json,
            input=json.dumps(_stored_items(list(new_items))),
        )
    if request.conversation is not None:
        from ._conversations import with_ids

        await app.store.add_conversation_items(request.conversation, request.owner, with_ids(request.to_conversation()))
    event = {"response": response, "sequence_number": 2, "type": "response.completed"}
    await emit(b"event: response.completed\ndata: " + json.dumps(event).encode() + b"\n\n")
    return response
