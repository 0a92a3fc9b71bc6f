"""The Files API (``/v1/files``, openai-python's ``client.files``): upload (multipart/form-data), list, retrieve,
content, delete. Owner-scoped like every record of the store; a file's bytes are kept in the store (``files``
table), up to ``--max-file-bytes``.

multipart/form-data is parsed here with the standard library (``bytes.find`` over the body for the parts, the
``email`` package's header parser for each part's headers): the body is read whole anyway (it is stored whole), a
form has two fields, and a dependency (python-multipart) would be one more pin in every venv for ~40 lines.
"""

from __future__ import annotations

import json
import time
import uuid
from email.parser import BytesHeaderParser
from email.policy import HTTP
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._app import ApiError, _answer
from ._store import NotFound

if TYPE_CHECKING:
    from ._app import App, Receive, Scope, Send

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """An id as OpenAI's look (``file-`` and 22 letters and digits): a random 128-bit number in base 62."""
    n = uuid.uuid4().int
    out = []
    for _ in range(22):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return prefix + "".join(out)


def file_object(row: tuple[Any, ...]) -> dict[str, Any]:
    id, created_at, filename, purpose, size = row
    return {
        "id": id,
        "object": "file",
        "bytes": size,
        "created_at": created_at,
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename or None, bytes). ApiError when it is not one."""
    header = BytesHeaderParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1"))
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str) or not boundary:
        raise ApiError(400, "the body must be multipart/form-data with a boundary (fields file and purpose)")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    start = body.find(delimiter)
    if start < 0:
        raise ApiError(400, "multipart/form-data: no part found")
    position = start + len(delimiter)
    while body[position : position + 2] != b"--":
        if body[position : position + 2] != b"\r\n":
            raise ApiError(400, "multipart/form-data: malformed boundary line")
        head_end = body.find(b"\r\n\r\n", position + 2)
        end = body.find(b"\r\n" + delimiter, position + 2)
        if head_end < 0 or end < 0 or head_end > end:
            raise ApiError(400, "multipart/form-data: a part is not terminated")
        headers = BytesHeaderParser(policy=HTTP).parsebytes(body[position + 2 : head_end + 4])
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = (headers.get_filename(), body[head_end + 4 : end])
        position = end + 2 + len(delimiter)
    return fields


def _query(scope: Scope) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}


def page(objects: list[dict[str, Any]], scope: Scope, *, max_limit: int = 100, default_limit: int = 20) -> bytes:
    """A cursor page of `objects` (oldest first) as OpenAI lists: `order` (desc by default), `limit`, `after`,
    `before` (ids)."""
    query = _query(scope)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, f"order: must be 'asc' or 'desc', got {order!r}", param="order")
    try:
        limit = int(query.get("limit", str(default_limit)))
    except ValueError:
        raise ApiError(400, "limit: must be an integer", param="limit") from None
    if not 1 <= limit <= max_limit:
        raise ApiError(400, f"limit: must be between 1 and {max_limit}, got {limit}", param="limit")
    if order == "desc":
        objects = objects[::-1]
    ids = [o["id"] for o in objects]
    for name in ("after", "before"):
        cursor = query.get(name)
        if cursor:
            if cursor not in ids:
                raise ApiError(400, f"{name}: no object with id '{cursor}' in this list", param=name)
            at = ids.index(cursor)
            objects = objects[at + 1 :] if name == "after" else objects[:at]
            ids = [o["id"] for o in objects]
    data = objects[:limit]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(objects) > limit,
    }
    return json.dumps(body).encode()


def _not_found(file_id: str) -> ApiError:
    return ApiError(404, f"No such File object: {file_id}", param="file_id", code="not_found")


async def route(app: App, scope: Scope, receive: Receive, send: Send, owner: str) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    rest = path[len("/v1/files") :].strip("/")
    file_id, _, sub = rest.partition("/")
    if not file_id:
        if method == "POST":
            await _upload(app, scope, receive, send, owner)
        elif method == "GET":
            purpose = _query(scope).get("purpose")
            rows = [file_object(r) for r in await app.store.files(owner)]
            if purpose:
                rows = [r for r in rows if r["purpose"] == purpose]
            await _answer(send, 200, page(rows, scope, max_limit=10000, default_limit=10000))
        else:
            raise ApiError(405, f"{method} is not allowed on /v1/files")
        return
    try:
        if not sub and method == "GET":
            await _answer(send, 200, json.dumps(file_object(await app.store.file(file_id, owner))).encode())
        elif not sub and method == "DELETE":
            await app.store.delete_file(file_id, owner)
            await _answer(send, 200, json.dumps({"id": file_id, "object": "file", "deleted": True}).encode())
        elif sub == "content" and method == "GET":
            content = await app.store.file_content(file_id, owner)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")],
                }
            )
            await send({"type": "http.response.body", "body": content, "more_body": False})
        else:
            raise ApiError(404, f"no route {method} {path}", code="not_found")
    except NotFound:
        raise _not_found(file_id) from None


async def _upload(app: App, scope: Scope, receive: Receive, send: Send, owner: str) -> None:
    limit = app.config.max_file_bytes
    content_type = ""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
    # The form's own framing on top of the file: a little room past the file's limit.
    body = await app.read_body(
        receive, limit + (64 << 10), what=f"upload (the file's limit is {limit} bytes, --max-file-bytes)", param="file"
    )
    fields = parse_multipart(body, content_type)
    purpose_field = fields.get("purpose")
    purpose = purpose_field[1].decode("utf-8", "replace") if purpose_field else ""
    if purpose not in PURPOSES:
        raise ApiError(400, f"purpose: must be one of {', '.join(PURPOSES)}, got {purpose!r}", param="purpose")
    file_field = fields.get("file")
    if file_field is None or file_field[0] is None:
        raise ApiError(400, "file: a file part (with a filename) is required", param="file")
    filename, content = file_field
    if len(content) > limit:
        raise ApiError(413, f"file: larger than this server's limit of {limit} bytes (--max-file-bytes)", param="file")
    row = (new_id("file-"), int(time.time()), filename, purpose, len(content))
    await app.store.put_file(row[0], owner, row[1], filename, purpose, content)
    await _answer(send, 200, json.dumps(file_object(row)).encode())
