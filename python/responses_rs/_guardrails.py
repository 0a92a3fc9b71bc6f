"""Guardrails: a response whose input and output are checked by the host's moderation service.

Host-neutral; the host supplies `TurnDriver._moderate(text) -> violation message | None`. The rules are
OGX's builtin's (`streaming.py`, `run_guardrails`):

- before the first inference call, the text of every chat message (instructions, prompt, history and
  the new input) is checked; a violation answers with a refusal and no inference happens;
- during each inference round, the round's text and reasoning are checked every 200 characters
  (`_GUARDRAIL_BATCH_CHARS`), after every chunk while there is reasoning but no text yet, and once more
  at the end of the round (before any tool runs);
- a violation drops the round and completes the response with one assistant message whose only part is
  a `refusal` carrying the violation message (`Turn.refuse`).

Unlike the builtin, which releases the buffered text deltas after each passing check, a round's events
are held back until its last check has passed and then released at once: dropping a round is then a
clean rollback (no item left open on the wire) and the refusal message streams as an ordinary item.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import Turn
    from ._engine import TurnDriver

logger = logging.getLogger("responses_rs")

BATCH_CHARS = 200
_TEXT = "response.output_text.delta"
_REASONING = "response.reasoning_text.delta"


def messages_text(messages_json: str) -> str:
    """What the input check reads: every message's content, text parts as they are, an image as
    `<image>`, a file as `<file>`, joined by spaces."""
    pieces: list[str] = []
    for message in json.loads(messages_json):
        content = message.get("content")
        if isinstance(content, str):
            pieces.append(content)
        elif isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    pieces.append(part.get("text") or "")
                elif kind == "image_url":
                    pieces.append("<image>")
                elif kind == "file":
                    pieces.append("<file>")
    return " ".join(pieces)


async def guarded(
    driver: TurnDriver,
    turn: Turn,
    model: str,
    temperature: float | None,
    *,
    raise_errors: bool = False,
    perform: Callable[[Turn, Any], Awaitable[None]] | None = None,
) -> AsyncIterator[Any]:
    """Drive `turn` like `TurnDriver._stream`, with the checks above. `raise_errors`: a collaborator's
    exception propagates (a request that is not streamed) instead of ending in `response.failed`.
    `perform(turn, action)`: every action but inference (`driver._perform` unless given; a background
    response writes its record its own way)."""
    if perform is None:
        perform = driver._perform
    held: list[Any] = []
    input_checked = False
    try:
        while True:
            action = turn.next_action()
            for event in turn.drain():
                yield event
            kind = action[0]
            if kind == "infer":
                if not input_checked:
                    input_checked = True
                    verdict = await driver._moderate(messages_text(action[1]))
                    if verdict:
                        turn.refuse(verdict)
                        continue
                try:
                    verdict = await _round(driver, turn, action, model, temperature, held)
                except Exception as exc:
                    if driver._context_too_long(turn, exc):  # retried without the oldest turn, or failed
                        held.clear()
                        continue
                    raise
                if verdict:
                    held.clear()
                    turn.refuse(verdict)
                    continue
                turn.end_inference()
                for event in held:
                    yield event
                held.clear()
            elif kind == "done":
                for event in turn.drain():
                    yield event
                return
            else:
                await perform(turn, action)
    except Exception as exc:
        if raise_errors:
            raise
        logger.exception("responses-rs: response %s failed", turn.response_id)
        for event in held:  # what the failure closes must have been opened on the wire
            yield event
        turn.fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        for event in turn.drain():
            yield event


async def _round(
    driver: TurnDriver, turn: Turn, action: Any, model: str, temperature: float | None, held: list[Any]
) -> str | None:
    """One inference round with its events held back in `held`; the violation message, if any."""
    text: list[str] = []
    reasoning: list[str] = []
    since = 0
    pending = False

    def take(events: list[Any]) -> None:
        nonlocal since, pending
        for event in events:
            kind = getattr(event, "type", None)
            if kind == _TEXT:
                text.append(event.delta)
            elif kind == _REASONING:
                reasoning.append(event.delta)
            else:
                continue
            since += len(event.delta)
            pending = True
        held.extend(events)

    async def check() -> str | None:
        nonlocal since, pending
        verdict = await driver._moderate("".join(text + reasoning))
        since = 0
        pending = False
        return verdict

    result = await driver._infer(action, model, temperature)
    if action[3]:
        try:
            async for chunk in result:
                event = turn.feed(chunk)
                if event is not None:
                    take(event if type(event) is list else [event])
                if pending and (since >= BATCH_CHARS or not any(text)):
                    verdict = await check()
                    if verdict:
                        return verdict
        finally:
            close = getattr(result, "aclose", None)
            if close is not None:
                await close()
    else:
        turn.feed_completion(result)
        take(list(turn.drain()))
    if pending:
        return await check()
    return None
