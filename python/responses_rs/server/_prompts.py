"""The Prompts API (``/v1/prompts``, as OGX 1.5 serves it) and what a response's ``prompt`` brings.

A prompt is versioned text with ``{{ name }}`` placeholders and the list of variable names it declares (every
placeholder must be declared). Routes, JSON shapes, id format (``pmpt_`` + 48 hex digits) and rules are OGX's
(``ogx_api.prompts``, ``ogx.core.prompts.prompts``): create makes version 1, the default; update makes the next
version from the latest one (``version`` must name it), the default unless ``set_as_default: false``; a read
without ``version`` gets the default version; listing shows each prompt's default version; delete removes every
version. Owner-scoped like responses. Errors are this server's error objects.

``POST /v1/responses`` with ``prompt: {"id", "version"?, "variables"?}``: the version asked for (else the default)
is rendered by the core (``Turn.apply_prompt``: the variables must be declared ones) and sent as the first system
message of that request only, as OGX's builtin does (a continuation does not inherit it).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ._app import ApiError, _answer
from ._store import NotFound, PromptRow, VersionConflict, VersionNotFound

if TYPE_CHECKING:
    from ._app import App, Receive, Scope, Send

# A placeholder, as OGX finds them (`Prompt.validate_prompt_variables`).
_PLACEHOLDER = re.compile(r"{{\s*(\w+)\s*}}")


def new_prompt_id() -> str:
    return "pmpt_" + secrets.token_hex(24)


def _object(row: PromptRow) -> dict[str, Any]:
    """OGX's ``Prompt`` (its fields in its order)."""
    prompt_id, version, text, variables, is_default = row
    return {
        "prompt": text,
        "version": version,
        "prompt_id": prompt_id,
        "variables": json.loads(variables),
        "is_default": is_default,
    }


def _text_and_variables(body: dict[str, Any]) -> tuple[str, str]:
    """The body's ``prompt`` and ``variables`` (JSON), every placeholder of the text declared."""
    text = body.get("prompt")
    if not isinstance(text, str):
        raise ApiError(400, "prompt: is required, the prompt's text", param="prompt")
    variables = body.get("variables")
    if variables is None:
        variables = []
    if not isinstance(variables, list) or not all(isinstance(name, str) for name in variables):
        raise ApiError(400, "variables: must be a list of variable names", param="variables")
    undeclared = sorted(set(_PLACEHOLDER.findall(text)) - set(variables))
    if undeclared:
        raise ApiError(
            400,
            f"variables: the prompt contains undeclared variables: {undeclared} (each {{{{name}}}} must be declared)",
            param="variables",
        )
    return text, json.dumps(variables)


def _version(value: Any, field: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{field}: must be an integer version", param=field)
    return value


def _not_found(prompt_id: str, version: int | None = None, param: str | None = None) -> ApiError:
    if version is not None:
        return ApiError(404, f"Prompt version '{version}' not found.", param=param, code="not_found")
    return ApiError(404, f"Prompt '{prompt_id}' not found.", param=param, code="not_found")


async def route(app: App, scope: Scope, receive: Receive, send: Send, owner: str) -> None:
    from ._conversations import _json

    path: str = scope["path"]
    method: str = scope["method"]
    parts = path[len("/v1/prompts") :].strip("/").split("/") if path.rstrip("/") != "/v1/prompts" else []
    store = app.store
    if not parts:
        if method == "GET":
            listing = [_object(row) for row in await store.list_prompts(owner)]
            await _answer(send, 200, json.dumps({"data": listing}).encode())
        elif method == "POST":
            text, variables = _text_and_variables(await _json(app, receive))
            prompt_id = new_prompt_id()
            await store.create_prompt(prompt_id, owner, int(time.time()), text, variables)
            await _answer(send, 200, json.dumps(_object((prompt_id, 1, text, variables, True))).encode())
        else:
            raise ApiError(405, f"{method} is not allowed on /v1/prompts")
        return
    prompt_id = parts[0]
    sub = parts[1] if len(parts) == 2 else None
    if len(parts) > 2 or (sub is not None and sub not in ("versions", "set-default-version")):
        raise ApiError(404, f"no route {method} {path}", code="not_found")
    try:
        if sub is None and method == "GET":
            query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
            version = _version(query["version"], "version") if query.get("version") else None
            try:
                row = await store.get_prompt(prompt_id, owner, version)
            except VersionNotFound:
                raise _not_found(prompt_id, version) from None
            await _answer(send, 200, json.dumps(_object(row)).encode())
        elif sub is None and method == "PUT":
            body = await _json(app, receive)
            text, variables = _text_and_variables(body)
            if "version" not in body:
                raise ApiError(400, "version: is required, the prompt's latest version", param="version")
            based_on = _version(body["version"], "version")
            if based_on < 1:
                raise ApiError(400, f"version: must be >= 1, got {based_on}", param="version")
            set_as_default = body.get("set_as_default", True)
            if not isinstance(set_as_default, bool):
                raise ApiError(400, "set_as_default: must be a boolean", param="set_as_default")
            try:
                row = await store.add_prompt_version(
                    prompt_id, owner, based_on, text, variables, set_as_default, int(time.time())
                )
            except VersionConflict as exc:
                raise ApiError(
                    400,
                    f"version: must be the latest prompt version '{exc.latest}', got {based_on}",
                    param="version",
                ) from None
            await _answer(send, 200, json.dumps(_object(row)).encode())
        elif sub is None and method == "DELETE":
            await store.delete_prompt(prompt_id, owner)
            await _answer(send, 200, b"null")  # OGX's answer: its route returns None
        elif sub == "versions" and method == "GET":
            listing = [_object(row) for row in await store.prompt_versions(prompt_id, owner)]
            await _answer(send, 200, json.dumps({"data": listing}).encode())
        elif sub == "set-default-version" and method == "PUT":
            body = await _json(app, receive)
            if "version" not in body:
                raise ApiError(400, "version: is required", param="version")
            version = _version(body["version"], "version")
            try:
                row = await store.set_default_prompt_version(prompt_id, owner, version)
            except VersionNotFound:
                raise _not_found(prompt_id, version) from None
            await _answer(send, 200, json.dumps(_object(row)).encode())
        else:
            raise ApiError(405, f"{method} is not allowed on {path}")
    except NotFound:
        raise _not_found(prompt_id) from None


async def template(app: App, value: Any, owner: str) -> tuple[str, list[str]] | None:
    """A response's ``prompt``: the stored text and declared variables of the version it names (else the default
    one); None for an empty text (nothing is sent, as OGX's builtin). Refused naming the field: a bad shape (400),
    an unknown prompt or version (404)."""
    if not isinstance(value, dict):
        raise ApiError(400, f"prompt: must be an object, got {type(value).__name__}", param="prompt")
    prompt_id = value.get("id")
    if not isinstance(prompt_id, str) or not prompt_id:
        raise ApiError(400, "prompt.id: is required, a prompt id", param="prompt.id")
    raw = value.get("version")
    version = None
    if raw is not None and raw != "":
        if not isinstance(raw, str):  # OpenAI's and OGX's `version` is a string
            raise ApiError(400, f"prompt.version: must be a string, got {type(raw).__name__}", param="prompt.version")
        version = _version(raw, "prompt.version")
    try:
        row = await app.store.get_prompt(prompt_id, owner, version)
    except VersionNotFound:
        raise _not_found(prompt_id, version, "prompt.version") from None
    except NotFound:
        raise _not_found(prompt_id, None, "prompt") from None
    text = row[2]
    return (text, json.loads(row[3])) if text else None
