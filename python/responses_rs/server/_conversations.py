"""The Conversations API (``/v1/conversations``) and what a response with ``conversation`` reads and adds.

A conversation is its metadata and an ordered list of items (each with an id). A response created with
``conversation`` sees every item of it before its own input (from a ``compaction`` item on, the compacted window:
``as_history``), and when it ends (completed or incomplete) its input items (then, when ``context_management``
compacted its history, the ``compaction`` item) and its output are appended. Owner-scoped like responses.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._app import ApiError, _answer, _stored_items
from ._store import NotFound

if TYPE_CHECKING:
    from ._app import App, Receive, Scope, Send

MAX_ITEMS_PER_CALL = 20
_ID_PREFIX = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
    "compaction": "cmp_",
}


def conversation_id(value: Any) -> str:
    """The request's `conversation`: an id, or an object with one."""
    if isinstance(value, dict):
        value = value.get("id")
        field = "conversation.id"
    else:
        field = "conversation"
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{field}: must be a conversation id", param=field)
    return value


def with_ids(items: list[Any]) -> list[tuple[str, str]]:
    """Items as stored in a conversation: every one with an id, messages with content parts."""
    rows = []
    for item in _stored_items(items):
        if isinstance(item, dict):
            if not item.get("id"):
                item["id"] = _ID_PREFIX.get(str(item.get("type")), "item_") + uuid.uuid4().hex
            rows.append((str(item["id"]), json.dumps(item)))
    return rows


def _is_user_message(item: Any) -> bool:
    return isinstance(item, dict) and item.get("type", "message") == "message" and item.get("role") == "user"


def as_history(items: list[Any]) -> list[Any]:
    """A conversation's items as a response's history (what a turn starts from). The conversation keeps every
    item; from its latest ``compaction`` item on (made by ``context_management``, or put there by the client), the
    history is the compacted window: the user messages before that item, the item, then everything after it. A
    compaction appends the turn's input, the compaction item, then the output, so this is exactly the window the
    model answered from, then its answer."""
    last = next((i for i in range(len(items) - 1, -1, -1) if _item_type(items[i]) == "compaction"), None)
    if last is None:
        return items
    return [item for item in items[:last] if _is_user_message(item)] + items[last:]


def _item_type(item: Any) -> Any:
    return item.get("type") if isinstance(item, dict) else None


def _check_items(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, f"{field}: must be a list of items", param=field)
    if len(value) > MAX_ITEMS_PER_CALL:
        raise ApiError(400, f"{field}: at most {MAX_ITEMS_PER_CALL} items at a time", param=field)
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("type", "message"), str):
            raise ApiError(400, f"{field}[{i}]: must be an item object", param=f"{field}[{i}]")
    return value


def _check_metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > 16:
        raise ApiError(400, "metadata: must be an object of at most 16 string values", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str) or len(key) > 64 or len(item) > 512:
            raise ApiError(
                400, f"metadata.{key}: keys of at most 64 and values of at most 512 characters", param="metadata"
            )
    return value


def _object(row: tuple[str, int, str]) -> bytes:
    return json.dumps(
        {"id": row[0], "object": "conversation", "created_at": row[1], "metadata": json.loads(row[2])}
    ).encode()


def _page(items: list[Any], scope: Scope, default_order: str) -> dict[str, Any]:
    query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
    order = query.get("order", default_order)
    if order not in ("asc", "desc"):
        raise ApiError(400, f"order: must be 'asc' or 'desc', got {order!r}", param="order")
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        raise ApiError(400, "limit: must be an integer", param="limit") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, f"limit: must be between 1 and 100, got {limit}", param="limit")
    if order == "desc":
        items = items[::-1]
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in items]
        if after not in ids:
            raise ApiError(404, f"after: no item with id '{after}'", param="after", code="not_found")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }


async def route(app: App, scope: Scope, receive: Receive, send: Send, owner: str) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    parts = path[len("/v1/conversations") :].strip("/").split("/") if path != "/v1/conversations" else []
    store = app.store
    try:
        if not parts:
            if method != "POST":
                raise ApiError(405, f"{method} is not allowed on /v1/conversations")
            body = await _json(app, receive)
            items = _check_items(body.get("items") or [], "items")
            metadata = _check_metadata(body.get("metadata"))
            new_id = "conv_" + uuid.uuid4().hex
            created = int(time.time())
            await store.create_conversation(new_id, owner, created, json.dumps(metadata), with_ids(items))
            await _answer(send, 200, _object((new_id, created, json.dumps(metadata))))
            return
        conv = parts[0]
        if len(parts) == 1:
            if method == "GET":
                await _answer(send, 200, _object(await store.get_conversation(conv, owner)))
            elif method == "POST":
                body = await _json(app, receive)
                if "metadata" not in body:
                    raise ApiError(400, "metadata: is required", param="metadata")
                metadata = json.dumps(_check_metadata(body["metadata"]))
                await store.update_conversation(conv, owner, metadata)
                await _answer(send, 200, _object(await store.get_conversation(conv, owner)))
            elif method == "DELETE":
                await store.delete_conversation(conv, owner)
                body = {"id": conv, "object": "conversation.deleted", "deleted": True}
                await _answer(send, 200, json.dumps(body).encode())
            else:
                raise ApiError(405, f"{method} is not allowed on /v1/conversations/{{id}}")
            return
        if parts[1] != "items" or len(parts) > 3:
            raise ApiError(404, f"no route {method} {path}", code="not_found")
        if len(parts) == 2:
            if method == "GET":
                items = await store.conversation_items(conv, owner)
                await _answer(send, 200, json.dumps(_page(items, scope, "desc")).encode())
            elif method == "POST":
                body = await _json(app, receive)
                rows = with_ids(_check_items(body.get("items"), "items"))
                await store.add_conversation_items(conv, owner, rows)
                data = [json.loads(item) for _, item in rows]
                listing = {
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": False,
                }
                await _answer(send, 200, json.dumps(listing).encode())
            else:
                raise ApiError(405, f"{method} is not allowed on /v1/conversations/{{id}}/items")
            return
        item_id = parts[2]
        if method == "GET":
            for item in await store.conversation_items(conv, owner):
                if item.get("id") == item_id:
                    await _answer(send, 200, json.dumps(item).encode())
                    return
            raise ApiError(404, f"Item with id '{item_id}' not found.", code="not_found")
        if method == "DELETE":
            await store.delete_conversation_item(conv, owner, item_id)
            await _answer(send, 200, _object(await store.get_conversation(conv, owner)))
            return
        raise ApiError(405, f"{method} is not allowed on /v1/conversations/{{id}}/items/{{item_id}}")
    except NotFound as exc:
        raise ApiError(404, f"Conversation or item '{exc.args[0]}' not found.", code="not_found") from None


async def _json(app: App, receive: Receive) -> dict[str, Any]:
    raw = await app._body(receive)
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    return body
