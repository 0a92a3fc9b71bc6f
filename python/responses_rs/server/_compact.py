"""Compaction in ``responses-rs serve``: ``POST /v1/responses/compact`` and ``context_management``.

The steps are the core's (``responses_rs._core.Compaction``: the summarization call's messages, then the
compacted window: every user message of the history, then one ``compaction`` item whose ``encrypted_content``
is the summary in plain text); this module does the I/O around them: one non-streamed Chat Completions call
to the upstream. A compaction is not stored (as OpenAI's: the endpoint returns a window, not a response id;
the client sends the window back as ``input``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .._core import (
    COMPACTION_PROMPT,
    COMPACTION_SUMMARY_PREFIX,
    Compaction,
    InvalidRequest,
    compaction_text_segments,
)
from ._upstream import UpstreamFailure

if TYPE_CHECKING:
    from ._app import App

# The summarization prompt and the summary's prefix are the core's (the compaction_trigger item uses them too).
PROMPT = COMPACTION_PROMPT
SUMMARY_PREFIX = COMPACTION_SUMMARY_PREFIX
# The token estimate of context_management: characters / 4 (no tokenizer of the upstream's model here).
CHARS_PER_TOKEN = 4


def estimate_tokens(input: Any) -> int:
    """The input's texts (the core's ``compaction_text_segments``: message texts, summaries, call arguments
    and outputs) in characters, divided by ``CHARS_PER_TOKEN``."""
    segments = [input] if isinstance(input, str) else compaction_text_segments(input)
    return sum(len(s) for s in segments) // CHARS_PER_TOKEN


def thresholds(value: Any) -> list[int]:
    """``context_management`` checked: the ``compact_threshold`` of each ``compaction`` entry (an entry
    without one never compacts). ApiError naming the field when malformed."""
    from ._app import ApiError

    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError(400, "context_management: must be a list of entries", param="context_management")
    found = []
    for i, entry in enumerate(value):
        field = f"context_management[{i}]"
        if not isinstance(entry, dict):
            raise ApiError(400, f"{field}: must be an object", param=field)
        if entry.get("type") != "compaction":
            raise ApiError(
                400,
                f"{field}.type: expected 'compaction', got {entry.get('type')!r}",
                param=f"{field}.type",
            )
        threshold = entry.get("compact_threshold")
        if threshold is None:
            continue
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ApiError(
                400,
                f"{field}.compact_threshold: must be a positive integer, got {threshold!r}",
                param=f"{field}.compact_threshold",
            )
        found.append(threshold)
    return found


async def summarize(app: App, history: Any, model: str, instructions: str | None = None) -> Compaction:
    """One compaction: the history's summarization call to the upstream (not streamed). ApiError when the
    history is malformed (400 naming the field) or the upstream fails (502, or its own 4xx)."""
    from ._app import ApiError, _upstream_status, invalid

    try:
        compaction = Compaction(history, PROMPT, instructions)
    except InvalidRequest as exc:
        raise invalid(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from None
    messages_json = compaction.messages_json()
    if app.config.developer_role == "system":  # --developer-role system: as every other upstream call sends them
        messages = json.loads(messages_json)
        for message in messages:
            if message.get("role") == "developer":
                message["role"] = "system"
        messages_json = json.dumps(messages)
    upstream, model = await app.router.route(model)
    payload = ('{"model":' + json.dumps(model) + ',"messages":' + messages_json + ',"stream":false}').encode()
    try:
        async with app._slots(upstream):
            response = await upstream.request("POST", "/chat/completions", payload, accept="application/json")
            try:
                raw = await response.body()
                if response.status != 200:
                    raise _upstream_status(response.status, raw)
            finally:
                response.close()
        try:
            completion = json.loads(raw)
        except ValueError:
            raise UpstreamFailure("the model server's answer is not JSON") from None
        if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
            raise UpstreamFailure("the model server's answer is not a chat completion")
    except UpstreamFailure as exc:
        status = exc.status if isinstance(exc.status, int) and 400 <= exc.status < 500 else 502
        if status in (401, 403, 407):
            status = 502
        raise ApiError(status, f"compaction failed: {exc}", code="upstream_error") from None
    compaction.finish(completion, SUMMARY_PREFIX)
    return compaction


async def compact(app: App, raw: bytes, owner: str) -> bytes:
    """``POST /v1/responses/compact``: ``input`` and/or ``previous_response_id`` (the stored chain, then the
    input) summarized; answers the ``response.compaction`` object."""
    from ._app import ApiError, _after, _previous_not_found
    from ._store import NotFound, StillRunning

    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"the request body is not JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: a model name is required", param="model")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise ApiError(400, "instructions: must be a string", param="instructions")
    input = body.get("input")
    previous_id = body.get("previous_response_id")
    if input is None and previous_id is None:
        raise ApiError(400, "input: give input, previous_response_id or both", param="input")
    if input is not None and not isinstance(input, (str, list)):
        raise ApiError(400, "input: must be a string or a list of items", param="input")
    history: Any = input
    if previous_id is not None:
        if not isinstance(previous_id, str) or not previous_id:
            raise ApiError(400, "previous_response_id: must be a string", param="previous_response_id")
        if previous_id in app._background:
            raise ApiError(
                400,
                f"previous_response_id: response '{previous_id}' is still in progress",
                param="previous_response_id",
            )
        try:
            chain = await app.store.chain_items(previous_id, owner, with_output=True)
        except NotFound:
            raise _previous_not_found(previous_id) from None
        except StillRunning:
            raise ApiError(
                400,
                f"previous_response_id: response '{previous_id}' is still in progress",
                param="previous_response_id",
            ) from None
        history = _after(chain, input) if input is not None else chain
    compaction = await summarize(app, history, model, instructions)
    return compaction.compacted_json().encode()
